"""The list / summary / validate commands through click's CliRunner."""

from __future__ import annotations

import json

from archcalc import __version__
from archcalc.spec import bundled_names


def test_version_and_help(run):
    assert run("--version").stdout.strip().endswith(__version__)
    for command in ("summary", "validate", "list"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "archcalc" in result.stdout  # every help has an example


def test_list_shows_every_bundled_spec(run):
    result = run("list")
    assert result.exit_code == 0
    for name in bundled_names():
        assert name in result.stdout
    assert "60,965,224" in result.stdout and "724,406,816" in result.stdout


def test_summary_json_keys(run):
    result = run("summary", "resnet18", "--format", "json", "--batch", "4", "--dtype", "float16")
    data = json.loads(result.stdout)
    assert {"name", "input_shape", "batch", "dtype", "layers", "totals", "warnings"} <= set(data)
    assert data["batch"] == 4 and data["dtype"] == "float16"
    layer = data["layers"][0]
    assert set(layer) >= {"name", "type", "input_shape", "output_shape", "params",
                          "trainable_params", "non_trainable_params", "macs", "activations",
                          "receptive_field", "effective_stride"}
    assert layer["output_shape"] == [64, 112, 112]
    assert {"params", "trainable_params", "non_trainable_params", "macs", "flops",
            "activations", "activation_bytes", "param_bytes"} <= set(data["totals"])
    flat = [l for l in data["layers"] if l["type"] == "flatten"][0]
    assert flat["output_shape"] == [512]


def test_summary_input_override_reports_the_riddle(run):
    result = run("summary", "alexnet", "--input", "3x224x224", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["input_shape"] == [3, 224, 224]
    assert any("54.25" in w for w in data["warnings"])
    table = run("summary", "alexnet", "--input", "3x224x224")
    assert "warning: conv1: (224 − 11 + 2·0)/4 + 1 = 54.25" in table.stdout


def test_summary_strict_fails_on_uneven(run):
    result = run("summary", "alexnet", "--input", "3x224x224", "--strict")
    assert result.exit_code == 1
    assert "uneven division" in result.stderr and result.stdout == ""


def test_summary_markdown_and_depth(run):
    result = run("summary", "googlenet", "--format", "markdown", "--depth", "1")
    assert result.exit_code == 0
    assert "| inception_3a | inception | 192×28×28 | 256×28×28 |" in result.stdout
    assert "inception_3a/1x1" not in result.stdout


def test_validate_many_files(run, write_spec):
    good = write_spec("name: g\ninput: [1, 8, 8]\nlayers: [{conv: {filters: 2, kernel: 3}}]\n", "g.yaml")
    bad = write_spec("name: b\ninput: [1, 8, 8]\nlayers: [{conv: {filters: 2, kernel: 30}}]\n", "b.yaml")
    ok = run("validate", good, "lenet5", "resnet50")
    assert ok.exit_code == 0
    assert ok.stdout.count("ok: ") == 3
    mixed = run("validate", good, bad)
    assert mixed.exit_code == 1
    assert "ok: " in mixed.stdout and "b.yaml" in mixed.stderr
    assert "1 problem(s) in 2 spec(s)" in mixed.stderr


def test_validate_all_bundled_strict(run):
    """Every bundled spec passes --strict but torchvision's SqueezeNet 1.0 at 224, whose conv1
    drops the last input row and column (as torchvision's model does)."""
    even = [n for n in bundled_names() if n != "squeezenet1_0"]
    result = run("validate", "--strict", *even)
    assert result.exit_code == 0, result.stderr
    result = run("validate", "--strict", "squeezenet1_0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "layer 'conv1'" in result.stderr
    assert "(224 − 7 + 2·0)/2 + 1 = 109.5" in result.stderr


def test_validate_strict_lists_every_uneven_layer(run):
    result = run("validate", "alexnet", "--input", "3x224x224", "--strict")
    assert result.exit_code == 1
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert [l.split("layer '")[1].split("'")[0] for l in lines] == ["conv1", "pool1", "pool2", "pool5"]
