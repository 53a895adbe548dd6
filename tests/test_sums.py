"""Per-layer columns sum to the printed totals (torchinfo's habit), in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest

from archcalc.calc import analyze
from archcalc.report import fold, to_csv
from archcalc.spec import bundled_names, load


@pytest.mark.parametrize("name", bundled_names())
def test_json_columns_sum_to_totals(run, name):
    result = run("summary", name, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    totals, layers = data["totals"], data["layers"]
    for column in ("params", "trainable_params", "non_trainable_params", "macs"):
        assert sum(layer[column] for layer in layers) == totals[column], column
    assert totals["params"] == totals["trainable_params"] + totals["non_trainable_params"]
    assert totals["flops"] == 2 * totals["macs"]
    input_values = 1
    for v in data["input_shape"]:
        input_values *= v
    assert input_values + sum(layer["activations"] for layer in layers) == totals["activations"]
    assert totals["activation_bytes"] == totals["activations"] * 4
    assert totals["param_bytes"] == totals["params"] * 4
    for layer in layers:
        assert layer["params"] == layer["trainable_params"] + layer["non_trainable_params"]


@pytest.mark.parametrize("name, depth", [("resnet50", 1), ("resnet50", 2), ("googlenet", 1),
                                         ("vgg16", 1)])
def test_csv_columns_sum_to_totals_at_every_depth(run, name, depth):
    result = run("summary", name, "--format", "csv", "--depth", str(depth))
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    totals = analyze(load(name)).totals
    assert sum(int(r["params"]) for r in rows) == totals.params
    assert sum(int(r["macs"]) for r in rows) == totals.macs
    assert sum(int(r["activations"]) for r in rows) == totals.activations
    assert all(len(r["name"].split(".")) <= depth for r in rows if "/" not in r["name"])


def test_fold_depth_one_gives_one_row_per_stage():
    analysis = analyze(load("resnet50"))
    names = [r.name for r in fold(analysis, 1)]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "flatten1", "fc"]
    stage = {r.name: r for r in fold(analysis, 1)}["layer2"]
    assert stage.type == "stage"
    assert stage.input_shape == (256, 56, 56) and stage.output_shape == (512, 28, 28)


def test_table_totals_are_printed_exactly(run):
    result = run("summary", "vgg16")
    assert result.exit_code == 0
    out = result.stdout
    assert "138,357,544" in out
    assert "15,470,264,320" in out
    assert "15,237,608 values (input 150,528 included)" in out
    assert "FLOPs = 2·MACs = 30,940,528,640" in out
    assert "1 MAC = one multiply-accumulate" in out  # the convention is in the footer
