"""A crop is a window of its input (a view, no new tensor); flattening a window that is not one
run of memory per image copies it. The calculator's rule and the executor's arrays agree."""

from __future__ import annotations

import pytest

from archcalc.calc.analyze import analyze
from archcalc.spec import load

SPEC = """
name: crop_flatten
input: [{c}, 8, 8]
layers:
  - crop: {{cropping: {crop}}}
  - relu
  - flatten
  - dense: 4
"""


@pytest.mark.parametrize("c, crop, copies", [
    (1, "[1, 1, 0, 0]", False),   # whole rows of one channel: one run per image, a view
    (2, "[1, 1, 0, 0]", True),    # two channels: the runs are broken between channels
    (1, "[0, 0, 1, 0]", True),    # a column removed: every row is a separate run
    (3, "0", False),              # nothing removed: the input itself
    (2, "[3, 4, 3, 4]", False),   # a 1×1 window of two channels: one value per run, evenly
                                  # spaced, which a single stride describes (a view)
    (1, "[0, 0, 0, 7]", False),   # one column of one channel: evenly spaced too
    (3, "[1, 2, 0, 7]", True),    # one column of five rows of three channels: two strides
])
def test_flatten_copies_only_a_broken_window(run, write_spec, c, crop, copies):
    path = write_spec(SPEC.format(c=c, crop=crop))
    rows = {r.type: r for r in analyze(load(path)).rows}
    assert rows["crop"].activations == 0
    assert rows["flatten"].activations == (rows["flatten"].output_shape[0] if copies else 0)
    # the executor measures its own arrays (batch 3: views of a batch, not of one image)
    result = run("check", path, "--batch", "3")
    assert result.exit_code == 0, result.output
    assert "all 4 layers agree" in result.output


def test_a_second_crop_can_make_a_window_flatten_as_a_view(run, write_spec):
    """2×8×8 cropped to 2×8×6 (broken rows), then to 1×1: one value per channel, 64 apart."""
    path = write_spec("name: t\ninput: [2, 8, 8]\nlayers:\n"
                      "  - crop: {cropping: [0, 0, 1, 1]}\n  - crop: [1, 1]\n"
                      "  - flatten\n  - dense: 3\n")
    rows = {r.type: r for r in analyze(load(path)).rows}
    assert rows["flatten"].activations == 0
    result = run("check", path, "--batch", "2")
    assert result.exit_code == 0, result.output
