"""The lecture notes' padding examples, through a real spec file: the executor's padded image
(every value written out by hand from the rule) and the calculator's output shape.

The image is the notes' 3×3 [[1, 9, 5], [5, 3, 12], [6, 2, 11]]. Along one axis of size 3 a
pad of 2 reads these source rows (0-based), which is how each matrix below was written:
    symmetric (with the edge):  1 0 | 0 1 2 | 2 1
    reflect (without the edge): 2 1 | 0 1 2 | 1 0
    replicate (the edge):       0 0 | 0 1 2 | 2 2
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.calc.analyze import analyze
from archcalc.errors import ShapeError
from archcalc.nn.network import build
from archcalc.spec.load import load

IMAGE = [[1, 9, 5], [5, 3, 12], [6, 2, 11]]

CASES = {
    # the notes' symmetric padding (2, 2): first row 3 5 5 3 12 12 3, second 9 1 1 9 5 5 9
    "symmetric (2, 2)": ("padding: [2, 2], mode: symmetric", [
        [3, 5, 5, 3, 12, 12, 3],
        [9, 1, 1, 9, 5, 5, 9],
        [9, 1, 1, 9, 5, 5, 9],
        [3, 5, 5, 3, 12, 12, 3],
        [2, 6, 6, 2, 11, 11, 2],
        [2, 6, 6, 2, 11, 11, 2],
        [3, 5, 5, 3, 12, 12, 3]]),
    "zeros (1, 1)": ("padding: [1, 1]", [
        [0, 0, 0, 0, 0],
        [0, 1, 9, 5, 0],
        [0, 5, 3, 12, 0],
        [0, 6, 2, 11, 0],
        [0, 0, 0, 0, 0]]),
    # (rows, columns) = (2, 1): two zero rows above and below, one zero column each side
    "zeros (2, 1)": ("padding: [2, 1], mode: zeros", [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 1, 9, 5, 0],
        [0, 5, 3, 12, 0],
        [0, 6, 2, 11, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0]]),
    "reflect (2, 2)": ("padding: [2, 2], mode: reflect", [
        [11, 2, 6, 2, 11, 2, 6],
        [12, 3, 5, 3, 12, 3, 5],
        [5, 9, 1, 9, 5, 9, 1],
        [12, 3, 5, 3, 12, 3, 5],
        [11, 2, 6, 2, 11, 2, 6],
        [12, 3, 5, 3, 12, 3, 5],
        [5, 9, 1, 9, 5, 9, 1]]),
    "replicate (2, 2)": ("padding: [2, 2], mode: replicate", [
        [1, 1, 1, 9, 5, 5, 5],
        [1, 1, 1, 9, 5, 5, 5],
        [1, 1, 1, 9, 5, 5, 5],
        [5, 5, 5, 3, 12, 12, 12],
        [6, 6, 6, 2, 11, 11, 11],
        [6, 6, 6, 2, 11, 11, 11],
        [6, 6, 6, 2, 11, 11, 11]]),
    # asymmetric [top, bottom, left, right] = [1, 0, 0, 2], symmetric rule
    "symmetric [1, 0, 0, 2]": ("padding: [1, 0, 0, 2], mode: symmetric", [
        [1, 9, 5, 5, 9],
        [1, 9, 5, 5, 9],
        [5, 3, 12, 12, 3],
        [6, 2, 11, 11, 2]]),
}


def spec_file(tmp_path, pad_fields: str):
    path = tmp_path / "lecture_pad.yaml"
    path.write_text("name: lecture_pad\ninput: [1, 3, 3]\nlayers:\n"
                    f"  - pad: {{{pad_fields}}}\n")
    return load(str(path))


@pytest.mark.parametrize("case", list(CASES))
def test_the_notes_padded_image(tmp_path, case):
    fields, expected = CASES[case]
    network = spec_file(tmp_path, fields)
    model = build(network, dtype="float64")
    y = model.forward(np.array(IMAGE, dtype=float)[None, None], training=False)
    assert y.shape == (1, 1) + np.shape(expected)
    assert np.array_equal(y[0, 0], np.array(expected, dtype=float))
    # the calculator gives the same size from the spec alone
    assert analyze(network).rows[-1].output_shape == (1,) + np.shape(expected)


@pytest.mark.parametrize("fields, words", [
    ("padding: 3, mode: reflect", "reflect padding 3 along H is too large for an input of 3"),
    ("padding: [0, 4], mode: symmetric", "symmetric padding 4 along W is too large"),
])
def test_a_pad_the_rule_cannot_fill_is_one_error(tmp_path, fields, words):
    network = spec_file(tmp_path, fields)
    with pytest.raises(ShapeError, match=words) as info:
        build(network, dtype="float64")
    assert "fix:" in info.value.render() and "\n" not in info.value.render()
    with pytest.raises(ShapeError):  # the calculator refuses the same spec
        analyze(network)
