"""The receptive field is followed exactly while its figures have at most 18 digits; past that
(thousands of upsampling layers, or upsampling alternating with adaptive pooling, whose exact
fractions grow without end) a note says where it stopped, and every view still prints in
bounded time: no 4,300-digit integer ever reaches str()."""

from __future__ import annotations

import json

import pytest

from archcalc.calc.analyze import RF_DIGITS, analyze
from archcalc.spec import load

DEEP = """
name: deep
input: [1, 2, 2]
layers:
  - repeat: 16000
    layers: [{upsample: 2}, {crop: [2, 2]}]
  - flatten
  - dense: 3
"""

GROWING = """
name: growing
input: [1, 5, 5]
layers:
  - repeat: 3000
    layers: [{upsample: {size: [7, 7], mode: bilinear}}, {adaptive_maxpool: 5}]
"""


def test_the_field_stops_at_the_first_layer_past_the_bound(write_spec):
    analysis = analyze(load(write_spec(DEEP)))
    followed = [r for r in analysis.rows if r.receptive_field is not None]
    stopped = [r for r in analysis.rows if r.receptive_field is None]
    assert followed and stopped and analysis.rows.index(stopped[0]) == len(followed)
    # the last stride followed is 1/2^k with 2^k ≤ 10^18 < 2^(k+1): k = 59
    assert followed[-1].effective_stride == (pytest.approx(2.0 ** -59),) * 2
    assert 2 ** 59 <= 10 ** RF_DIGITS < 2 ** 60
    assert [n for n in analysis.notes if "not followed" in n] == [
        f"{stopped[0].name}: the receptive field is not followed past this layer: its exact "
        f"value or effective stride needs more than {RF_DIGITS} digits (far beyond any input)"]


@pytest.mark.parametrize("spec", [DEEP, GROWING])
@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_every_view_prints_past_the_bound(run, write_spec, spec, fmt):
    result = run("summary", write_spec(spec), "--format", fmt, "--wide")
    assert result.exit_code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.stdout)["layers"]
        assert rows[-1]["receptive_field"] is None and rows[-1]["effective_stride"] is None


def test_compare_and_depth_folding_past_the_bound(run, write_spec):
    path = write_spec(DEEP)
    assert run("summary", path, "--depth", "1").exit_code == 0
    result = run("compare", path, "lenet5")
    assert result.exit_code == 0, result.output
