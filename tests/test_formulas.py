"""The formulas of archcalc.calc.shapes, parametrised like Keras' operation_utils tests:
(input, kernel, stride, padding, dilation, ceil) → expected output, worked by hand."""

from __future__ import annotations

import pytest

from archcalc.calc.shapes import Dim, receptive_step


@pytest.mark.parametrize("size, kernel, stride, pb, pa, dilation, ceil, expected", [
    (227, 11, 4, 0, 0, 1, False, 55),    # AlexNet conv1: (227 − 11)/4 + 1
    (224, 11, 4, 0, 0, 1, False, 54),    # 54.25 floored
    (224, 7, 2, 3, 3, 1, False, 112),    # ResNet conv1: 112.5 floored
    (112, 3, 2, 0, 0, 1, True, 56),      # GoogLeNet pool1: 55.5 ceiled
    (112, 3, 2, 0, 0, 1, False, 55),     # the same in floor mode
    (5, 2, 2, 0, 0, 1, True, 3),         # ceil: windows at 0, 2, 4 (the last starts inside)
    (4, 2, 2, 1, 1, 1, True, 3),         # ceil with padding: (6 − 2)/2 + 1 = 3, no extra window
    (5, 2, 2, 1, 1, 1, True, 3),         # ceil 3.5 → 4, but window 4 would start at 6, in the
                                         # trailing padding (5 + 1): PyTorch drops it → 3
    (2, 3, 2, 0, 0, 1, True, 1),         # ceil: a 3×3/2 pool on a 2×2 map still gives 1 (PyTorch)
    (6, 3, 3, 0, 0, 1, True, 2),         # ceil where it divides: unchanged
    (10, 3, 1, 0, 0, 2, False, 6),       # dilation 2: span 5, (10 − 5)/1 + 1
    (10, 3, 1, 2, 2, 2, False, 10),      # dilated 'same'
    (4, 2, 1, 0, 0, 1, False, 3),        # the 4×4, 2×2 example without padding
    (4, 2, 1, 1, 0, 1, False, 4),        # asymmetric padding (1 before, 0 after)
    (4, 2, 1, 1, 1, 1, False, 5),        # symmetric padding
    (4, 2, 2, 0, 0, 1, False, 2),        # stride 2
])
def test_output_size(size, kernel, stride, pb, pa, dilation, ceil, expected):
    assert Dim(size, kernel, stride, pb, pa, dilation, ceil).out == expected


def test_formula_text_is_exact():
    assert Dim(224, 11, 4).formula() == "(224 − 11 + 2·0)/4 + 1 = 54.25"
    assert Dim(227, 11, 4).formula() == "(227 − 11 + 2·0)/4 + 1 = 55"
    assert Dim(10, 2, 3).formula() == "(10 − 2 + 2·0)/3 + 1 ≈ 3.667"
    assert Dim(8, 3, 2, 0, 1).formula() == "(8 − 3 + 0 + 1)/2 + 1 = 4"
    big = 10**30  # exact decimal text however large (no float rounding)
    assert Dim(big, 1, 4).formula() == f"({big} − 1 + 2·0)/4 + 1 = {(big - 1) // 4 + 1}.75"


def test_ceil_drop_is_explained():
    from archcalc.calc import analyze
    from archcalc.spec import loads

    net = loads("name: t\ninput: [1, 5, 5]\n"
                "layers: [{maxpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}}]\n")
    analysis = analyze(net)
    assert analysis.output_shape == (1, 3, 3)
    assert "= 3.5 → ceiled to 4, less the last window" in analysis.notes[0]
    assert analysis.notes[0].endswith("i.e. to 3; only padding goes uncovered")


def test_uncovered_pixels():
    d = Dim(224, 11, 4)          # windows cover 53·4 + 11 = 223 of 224
    assert (d.covered, d.dropped_input, d.dropped_padding) == (223, 1, 0)
    d = Dim(224, 7, 2, 3, 3)     # 111·2 + 7 = 229 of 230 padded: only padding is lost
    assert (d.dropped_input, d.dropped_padding) == (0, 1)
    d = Dim(112, 3, 2, ceil_mode=True)
    assert d.overhang == 1       # 55·2 + 3 = 113 > 112


def test_receptive_step():
    assert receptive_step(1, 1, 11, 4) == (11, 4)
    assert receptive_step(11, 4, 3, 2) == (19, 8)
