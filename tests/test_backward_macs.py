"""Backward MACs per layer (calc/backward.py) and `summary --training`, without torch.

The per-kind figures are worked out by hand from the formulas (output sizes by
(W − D·(F − 1) − 1 + 2P)/S + 1); which layers need dX follows autograd's rule, tested against
PyTorch itself in tests/test_backward_torch.py.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.cells import cell_len

from archcalc import report
from archcalc.calc import analyze
from archcalc.calc.backward import BackwardCost, backward_costs
from archcalc.spec import load
from archcalc.spec.load import loads

HEAD = "name: t\ninput: {input}\nlayers:\n"


def costs_of(text: str, input_shape: str) -> dict[str, tuple[int, int]]:
    """{row name: (dX, dW)} of a spec given as its layer lines."""
    analysis = analyze(loads(HEAD.format(input=input_shape) + text))
    return {c.name: (c.dx_macs, c.dw_macs) for c in backward_costs(analysis)}


def test_one_cost_per_row_in_order_with_the_rows_names():
    analysis = analyze(load("googlenet"))
    costs = backward_costs(analysis)
    assert [c.name for c in costs] == [r.name for r in analysis.rows]
    assert all(isinstance(c, BackwardCost) for c in costs)


def test_grouped_dilated_strided_conv_by_hand():
    costs = costs_of("""
  - {conv: {name: c1, filters: 6, kernel: [3, 2], stride: [2, 1], padding: [1, 2], dilation: [2, 1], groups: 2}}
  - relu
  - {conv: {name: c2, filters: 9, kernel: 3, stride: 2, padding: 1, groups: 3, bias: false}}
""", "[4, 11, 13]")
    # c1: H (11 − 2·2 − 1 + 2)/2 + 1 = 5, W (13 − 1 − 1 + 4)/1 + 1 = 16; 5·16·6·3·2·(4/2).
    # The first weighted layer: no dX.
    assert costs["c1"] == (0, 5 * 16 * 6 * 3 * 2 * 2) == (0, 5_760)
    # c2: H (5 − 3 + 2)/2 + 1 = 3, W (16 − 3 + 2)/2 + 1 = 8 (7.5 floored + 1); 3·8·9·3·3·(6/3).
    assert costs["c2"] == (3 * 8 * 9 * 9 * 2,) * 2 == (3_888, 3_888)
    assert costs["relu1"] == (0, 0)


def test_conv_transpose2d_by_hand():
    costs = costs_of("""
  - {conv: {name: c, filters: 4, kernel: 1}}
  - {conv_transpose2d: {name: up, filters: 6, kernel: 2, stride: 2, groups: 2}}
""", "[2, 3, 3]")
    assert costs["c"] == (0, 3 * 3 * 4 * 2)
    # H_in·W_in·C_in·K_h·K_w·C_out/groups, dX and dW alike.
    assert costs["up"] == (3 * 3 * 4 * 2 * 2 * 3,) * 2 == (432, 432)


def test_dense_by_hand_and_the_bias_gradient_costs_no_macs():
    text = """
  - {dense: {name: fc1, units: 7, bias: BIAS}}
  - relu
  - {dense: {name: fc2, units: 3, bias: BIAS}}
"""
    with_bias = costs_of(text.replace("BIAS", "true"), "[20]")
    assert with_bias["fc1"] == (0, 20 * 7)
    assert with_bias["fc2"] == (7 * 3, 7 * 3)
    assert costs_of(text.replace("BIAS", "false"), "[20]") == with_bias


def test_nothing_before_the_first_weighted_layer_needs_dx():
    costs = costs_of("""
  - {maxpool: {name: p, kernel: 2}}
  - relu
  - {conv: {name: a, filters: 3, kernel: 3}}
  - {conv: {name: b, filters: 3, kernel: 3}}
""", "[2, 10, 10]")
    assert costs["p"] == costs["relu1"] == (0, 0)
    assert costs["a"][0] == 0 and costs["b"][0] == costs["b"][1] > 0


def test_branches_each_judged_by_its_own_input():
    costs = costs_of("""
  - concat:
      - [{conv: {name: a, filters: 4, kernel: 3, padding: 1}}]
      - [{maxpool: {name: p, kernel: 3, stride: 1, padding: 1}}, {conv: {name: b, filters: 2, kernel: 1}}]
      - [{conv: {name: e, filters: 2, kernel: 1}}, {conv: {name: f, filters: 2, kernel: 1}}]
      - []
  - {conv: {name: c, filters: 5, kernel: 3, stride: 2}}
""", "[3, 12, 12]")
    assert [name for name in "abefc" if costs[name][0] == 0] == ["a", "b", "e"]
    assert all(costs[name][1] > 0 for name in "abefc")


def test_an_identity_shortcut_hands_on_a_gradient_free_input():
    """A merge of gradient-free branches (a pool and the identity) stays gradient-free: a
    needs no dX. add([b], []) depends on b's weights: c needs dX, and b (after a) too."""
    costs = costs_of("""
  - add: [[{maxpool: {kernel: 3, stride: 1, padding: 1}}], []]
  - {conv: {name: a, filters: 3, kernel: 1}}
  - add: [[{conv: {name: b, filters: 3, kernel: 1}}], []]
  - {conv: {name: c, filters: 3, kernel: 1}}
""", "[3, 6, 6]")
    assert costs["a"][0] == 0 and costs["b"][0] > 0 and costs["c"][0] > 0


@pytest.mark.parametrize("first", ["bn", "ln"])
def test_a_normalisation_first_makes_the_next_layer_need_dx(first):
    """Its γ and β are trainable parameters: the conv's input depends on them."""
    costs = costs_of(f"  - {first}\n  - {{conv: {{name: a, filters: 4, kernel: 3}}}}\n",
                     "[3, 6, 6]")
    assert costs["a"] == (4 * 4 * 4 * 9 * 3,) * 2


def test_frozen_layers_have_no_dw_and_do_not_start_the_gradient():
    costs = costs_of("""
  - {bn: {name: bn, trainable: false}}
  - {conv: {name: a, filters: 4, kernel: 3, trainable: false}}
  - {conv: {name: b, filters: 4, kernel: 3}}
  - {conv: {name: c, filters: 4, kernel: 3, trainable: false}}
""", "[3, 10, 10]")
    b = 6 * 6 * 4 * 9 * 4
    c = 4 * 4 * 4 * 9 * 4
    assert (costs["a"], costs["b"], costs["c"]) == ((0, 0), (0, b), (c, 0))


def test_resnet50_the_issue_figure():
    """Issue 12: PyTorch's FlopCounterMode measures 48,598,155,264 FLOPs for forward +
    backward of ResNet-50 on a batch of 2 in training mode; 2 FLOPs per MAC."""
    analysis = analyze(load("resnet50"), batch=2)
    costs = backward_costs(analysis)
    backward = sum(c.dx_macs + c.dw_macs for c in costs)
    assert 2 * 2 * (analysis.totals.macs + backward) == 48_598_155_264
    # The first conv (7×7/2 to 64×112×112 from 3 channels) is the only one without dX.
    assert [c.name for c in costs if c.dw_macs and not c.dx_macs] == ["conv1"]
    assert analysis.totals.macs - sum(c.dx_macs for c in costs) == 112 * 112 * 64 * 7 * 7 * 3


def test_costs_are_per_image_whatever_the_batch():
    assert backward_costs(analyze(load("lenet5"), batch=7)) == \
        backward_costs(analyze(load("lenet5")))


# ---- summary --training --------------------------------------------------------------------
def test_table_has_the_columns_and_totals(run):
    result = run("summary", "lenet5", "--training")
    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("Layer"))
    assert header.split()[-4:] == ["dX", "MACs", "dW", "MACs"]
    conv1 = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["conv1"])
    assert conv1.split()[-2:] == ["—", "117,600"]  # first layer: no dX
    analysis = analyze(load("lenet5"))
    costs = backward_costs(analysis)
    dx, dw = sum(c.dx_macs for c in costs), sum(c.dw_macs for c in costs)
    assert f"Backward MACs per image: {dx + dw:,}" in result.stdout
    assert f"dX {dx:,} + dW {dw:,}" in result.stdout
    assert f"forward + backward = {analysis.totals.macs + dx + dw:,} MACs" in result.stdout


def test_without_training_nothing_changes(run):
    plain = run("summary", "lenet5").stdout
    assert "dX MACs" not in plain and "Backward" not in plain
    data = json.loads(run("summary", "lenet5", "--format", "json").stdout)
    assert not any(key.startswith("backward") for key in data["totals"])
    assert not any(key.startswith("backward") for layer in data["layers"] for key in layer)


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "mobilenet_v2", "unet"])
def test_json_rows_sum_to_the_totals(run, name):
    data = json.loads(run("summary", name, "--format", "json", "--training",
                          "--batch", "3").stdout)
    totals, layers = data["totals"], data["layers"]
    dx = sum(layer["backward_dx_macs"] for layer in layers)
    dw = sum(layer["backward_dw_macs"] for layer in layers)
    assert (totals["backward_dx_macs"], totals["backward_dw_macs"]) == (dx, dw)
    assert totals["backward_macs"] == dx + dw
    assert totals["backward_flops"] == 2 * (dx + dw)
    assert totals["batch_backward_macs"] == 3 * (dx + dw)
    # Every weighted layer has dW = its forward MACs (nothing is frozen in these).
    assert dw == totals["macs"]


@pytest.mark.parametrize("depth", [None, "1", "2"])
def test_csv_columns_sum_to_the_totals_at_every_depth(run, depth):
    args = ["summary", "resnet50", "--format", "csv", "--training"]
    rows = list(csv.DictReader(io.StringIO(run(*args, *(["--depth", depth] if depth else []))
                                           .stdout)))
    costs = backward_costs(analyze(load("resnet50")))
    assert sum(int(r["backward_dx_macs"]) for r in rows) == sum(c.dx_macs for c in costs)
    assert sum(int(r["backward_dw_macs"]) for r in rows) == sum(c.dw_macs for c in costs)
    assert rows[0]["name"] == "input" and rows[0]["backward_dx_macs"] == "0"


def test_csv_with_chosen_columns_puts_the_backward_last(run):
    text = run("summary", "lenet5", "--format", "csv", "--training", "--columns", "macs").stdout
    assert text.splitlines()[0] == "name,type,macs,backward_dx_macs,backward_dw_macs"
    assert "conv2,conv2d,240000,240000,240000" in text


def test_markdown_has_the_columns_and_totals(run):
    text = run("summary", "lenet5", "--format", "markdown", "--training").stdout
    assert "| dX MACs | dW MACs |" in text
    assert "| conv1 | conv2d |" in text and "| 0 | 117,600 |" in text
    assert "Backward MACs per image:" in text and "_Backward (training):" in text


def test_folded_rows_sum_their_layers():
    analysis = analyze(load("resnet50"))
    cells = report.training_cells(analysis, 1)
    assert len(cells) == 1 + len(report.fold(analysis, 1))
    costs = backward_costs(analysis)
    assert sum(c[0] for c in cells) == sum(c.dx_macs for c in costs)
    layer1 = report.fold(analysis, 1).index(next(r for r in report.fold(analysis, 1)
                                                 if r.name == "layer1"))
    in_layer1 = [c for c in costs if c.name.startswith("layer1.")]
    assert cells[1 + layer1] == (sum(c.dx_macs for c in in_layer1),
                                 sum(c.dw_macs for c in in_layer1))


def test_the_table_fits_an_80_column_terminal_and_keeps_the_backward():
    grid = report.summary_grid(analyze(load("resnet50")), 1, None, training=True)
    text = report.render_text(grid.fit(80), 80)
    lines = text.splitlines()
    assert all(cell_len(line.rstrip()) <= 80 for line in lines)
    header = next(line for line in lines if line.strip().startswith("Layer"))
    assert "dX MACs" in header and "dW MACs" in header


def test_the_help_names_the_option(run):
    assert "--training" in run("summary", "--help").stdout
