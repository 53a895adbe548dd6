"""`archcalc layer`'s step-by-step arithmetic: the printed products multiply out to the
printed results, and the results are the calculator's (the same as `summary` on a spec)."""

from __future__ import annotations

import math
import re

import pytest

from archcalc.calc import analyze
from archcalc.calc.explain import conv_terms, explain_conv, explain_dense, explain_pool
from archcalc.errors import ArchcalcError, ShapeError
from archcalc.spec import loads

_FACTOR = r"(?:\d+|\(\d+/\d+\))"  # 55 or (96/2)
PRODUCT = re.compile(rf"(?<![\d()/])((?:{_FACTOR}·)+{_FACTOR})(?: \+ (\d+))? = ([\d,]+)")


def _value(factor: str) -> int:
    if factor.startswith("("):
        factor = factor[1:-1]
    if "/" in factor:
        num, den = factor.split("/")
        assert int(num) % int(den) == 0
        return int(num) // int(den)
    return int(factor)


def products_hold(text: str) -> int:
    """Every 'a·b·c (+ d) = n' in `text` multiplies out to n; returns how many were checked."""
    checked = 0
    for factors, bias, result in PRODUCT.findall(text):
        value = math.prod(_value(f) for f in factors.split("·")) + int(bias or 0)
        assert value == int(result.replace(",", "")), (factors, bias, result)
        checked += 1
    return checked


def test_alexnet_conv1_as_in_the_notes():
    text = explain_conv((3, 227, 227), filters=96, kernel=11, stride=4).text()
    assert "(227 − 11 + 2·0)/4 + 1 = 55 → 96×55×55" in text
    # weights K·K·C_in·C_out + biases: 11·11·3·96 + 96 = 34,848 + 96
    assert "11·11·3·96 + 96 = 34,944" in text
    # MACs H_out·W_out·C_out·K·K·C_in: 3025·96·363 = 105,415,200
    assert "55·55·96·11·11·3 = 105,415,200" in text
    assert "96·55·55 = 290,400 values = 1,161,600 B in float32" in text
    assert products_hold(text) == 3


def test_explained_numbers_are_summarys_numbers():
    """The same layer in a YAML spec through analyze gives the same row."""
    net = loads("name: t\ninput: [3, 227, 227]\nlayers:\n"
                "  - conv: {filters: 96, kernel: 11, stride: 4}\n")
    row = analyze(net).rows[0]
    explained = explain_conv((3, 227, 227), filters=96, kernel=11, stride=4).row
    assert (explained.output_shape, explained.params, explained.macs, explained.activations) == \
        (row.output_shape, row.params, row.macs, row.activations)


def test_uneven_division_explained_with_dim():
    text = explain_conv((3, 224, 224), filters=96, kernel=11, stride=4).text()
    assert "(224 − 11 + 2·0)/4 + 1 = 54.25 → floored: 54 → 96×54×54" in text
    # (54 − 1)·4 + 11 = 223 of 224 pixels: one row and one column never seen
    assert "(54 − 1)·4 + 11 = 223 of the 224 padded pixels" in text
    assert "the last 1 input row(s) and column(s) are never seen" in text
    assert products_hold(text) == 3


def test_grouped_conv_divides_channels():
    text = explain_conv((96, 27, 27), filters=256, kernel=5, padding=2, groups=2).text()
    # AlexNet conv2 per GPU: 5·5·48·256 + 256 = 307,456
    assert "5·5·(96/2)·256 + 256 = 307,456" in text
    assert "27·27·256·5·5·(96/2) = 223,948,800" in text
    assert products_hold(text) == 3


def test_uneven_axes_dilation_and_same_padding():
    e = explain_conv((3, 32, 30), filters=8, kernel=3, stride=2, dilation=2, padding="same")
    text = e.text()
    assert "2·(3 − 1) + 1 = 5" in text
    # same padding at stride 2: out = ceil(32/2) = 16, ceil(30/2) = 15
    assert "H: (32 − 5 + 1 + 2)/2 + 1 = 16" in text and "W: (30 − 5 + 1 + 2)/2 + 1 = 15" in text
    assert e.row.output_shape == (8, 16, 15)
    assert products_hold(text) == 3


def test_pool_ceil_mode_rounds_up_and_says_why():
    e = explain_pool((64, 112, 112), kernel=3, stride=2, ceil_mode=True)
    assert "(112 − 3 + 2·0)/2 + 1 = 55.5 → ceil mode rounds up: 56 → 64×56×56" in e.text()
    assert "1 past the 112 padded pixels" in e.text()
    floor = explain_pool((64, 112, 112), kernel=3, stride=2)
    assert floor.row.output_shape == (64, 55, 55)
    assert "floored: 55" in floor.text() and "never seen" in floor.text()
    assert e.row.params == 0 and e.row.macs == 0


def test_pool_ceil_window_starting_in_padding_is_dropped():
    # 5 + 2·1 = 7 padded; (7 − 2)/2 + 1 = 3.5; ceil → 4, but window 4 starts at 6 = the
    # trailing padding, so PyTorch keeps 3.
    e = explain_pool((8, 5, 5), kernel=2, stride=2, padding=1, ceil_mode=True)
    assert e.row.output_shape == (8, 3, 3)
    assert "is dropped" in e.text() and "only padding is left uncovered" in e.text()


def test_dense_weights_and_macs():
    text = explain_dense((9216,), units=4096).text()
    assert "9216·4096 + 4096 = 37,752,832" in text
    assert "MACs: 9216·4096 = 37,748,736" in text
    flat = explain_dense((256, 6, 6), units=4096, bias=False).text()
    assert "flatten: 256·6·6 = 9,216 features" in flat
    assert "weights: 9216·4096 = 37,748,736" in flat


def test_conv_terms_match_every_conv_of_a_spec():
    """The written products of every conv row of GoogLeNet-sized layers equal the rows."""
    net = loads("name: t\ninput: [16, 13, 11]\nlayers:\n"
                "  - conv: {filters: 8, kernel: [3, 1], stride: [2, 1], padding: [1, 0]}\n"
                "  - conv: {filters: 6, kernel: 1, groups: 2, bias: false}\n"
                "  - conv: {filters: 4, kernel: 3, dilation: 2, padding: same}\n")
    analysis = analyze(net)
    for leaf, row in zip(net.leaves(), analysis.rows):
        terms = conv_terms(leaf.spec, row)
        assert products_hold(terms.macs_text()) == 1
        assert terms.params == row.params and terms.macs == row.macs


def test_kernel_larger_than_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="kernel 11 larger than the padded input 8"):
        explain_conv((3, 8, 8), filters=4, kernel=11)


def test_flat_input_to_conv_is_an_error():
    with pytest.raises(ArchcalcError, match="needs a C×H×W input"):
        explain_conv((9216,), filters=4, kernel=3)
