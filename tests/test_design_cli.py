"""The design commands through click's CliRunner: output, formats, exit codes, one-line errors."""

from __future__ import annotations

import builtins
import json

import pytest


def one_error(result, *fragments: str) -> None:
    """Exit 1, exactly one 'error:' line on stderr containing every fragment, no traceback."""
    assert result.exit_code == 1, result.output
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_every_design_command_has_help_with_an_example(run):
    for command in ("compare", "bottleneck", "factorize", "sweep", "memory", "plot", "report",
                    "layer"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "archcalc" in result.stdout


# ---- bottleneck -------------------------------------------------------------------------------
def test_bottleneck_inception_textbook_case(run):
    result = run("bottleneck", "--input", "192x28x28", "--kernel", "5", "--filters", "32",
                 "--reduce", "16")
    assert result.exit_code == 0
    out = result.stdout
    assert "28·28·16·192 = 2,408,448" in out
    assert "28·28·32·5·5·16 = 10,035,200" in out
    assert "2,408,448 + 10,035,200 = 12,443,648" in out
    assert "28·28·32·5·5·192 = 120,422,400" in out
    assert "120,422,400 / 12,443,648 = 9.7× fewer MACs" in out


def test_bottleneck_resnet_style_adhoc_json(run):
    result = run("bottleneck", "--input", "256x56x56", "--kernel", "3", "--filters", "64",
                 "--reduce", "64", "--expand", "256", "--no-bias", "--format", "json")
    case = json.loads(result.stdout)["cases"][0]
    assert (case["with_macs"], case["without_macs"]) == (218_365_952, 1_849_688_064)
    assert case["channels"] == "256 → 64 → 64 → 256"


def test_bottleneck_spec_lists_cases_with_a_total(run):
    result = run("bottleneck", "googlenet")
    assert result.exit_code == 0
    assert result.stdout.count("inception_") == 18
    assert "total (18 cases)" in result.stdout
    data = json.loads(run("bottleneck", "resnet50", "--format", "json").stdout)
    assert len(data["cases"]) == 15
    assert data["total"]["with_macs"] == sum(c["with_macs"] for c in data["cases"])
    assert data["network"]["macs"] == 4_089_184_256


def test_bottleneck_formulas_and_markdown(run):
    out = run("bottleneck", "resnet50", "--formulas").stdout
    assert "56·56·256·3·3·256 = 1,849,688,064" in out
    md = run("bottleneck", "googlenet", "--format", "markdown").stdout
    assert md.startswith("### 1×1 bottlenecks in googlenet")
    assert "| inception_3a/5x5_reduce | 1×1, 5×5 | 192 → 16 → 32 |" in md


@pytest.mark.parametrize("args, fragments", [
    (["--input", "192x28x28", "--kernel", "5", "--filters", "32", "--reduce", "200"],
     ["--reduce 200 is not fewer than the 192 input channels"]),
    (["--input", "192x28x28", "--kernel", "31", "--filters", "32", "--reduce", "16"],
     ["--kernel 31 is larger than the 28×28 input"]),
    (["--input", "0x28x28", "--kernel", "5", "--filters", "32", "--reduce", "16"],
     ["bad input shape '0x28x28'"]),
    (["googlenet", "--kernel", "5"], ["--kernel describe an ad hoc case"]),
    (["nosuchnet"], ["unknown spec 'nosuchnet'"]),
])
def test_bottleneck_nonsense_is_one_line(run, args, fragments):
    one_error(run("bottleneck", *args), *fragments)


# ---- compare ----------------------------------------------------------------------------------
def test_compare_table(run):
    result = run("compare", "vgg16", "resnet50")
    assert result.exit_code == 0
    out = result.stdout
    for text in ("138,357,544", "25,610,152 (0.19×)", "15,470,264,320", "4,089,184,256 (0.26×)",
                 "212 /32 (block5.pool)", "123,642,856 (89.4%)", "ratio to vgg16"):
        assert text in out, text


def test_compare_na_column_and_json(run):
    result = run("compare", "alexnet", "vgg16", "--input", "3x64x64", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["base"] == "vgg16"
    assert data["columns"][0]["ok"] is False and "pool5" in data["columns"][0]["error"]
    table = run("compare", "alexnet", "vgg16", "--input", "3x64x64").stdout
    assert "n/a: layer 'pool5'" in table


def test_compare_one_spec_two_inputs_markdown(run):
    md = run("compare", "resnet50", "--input", "3x224x224", "--input", "3x448x448",
             "--format", "markdown").stdout
    assert "| layer1 MACs |" in md and "resnet50 @ 3×448×448" in md


def test_compare_needs_two_columns(run):
    one_error(run("compare", "vgg16"), "two or more specs")


# ---- factorize, layer -------------------------------------------------------------------------
def test_factorize(run):
    out = run("factorize", "--input", "64x56x56", "--kernel", "5", "--filters", "64").stdout
    assert "2 × 3×3" in out and "5×1 + 1×5" in out
    assert "56·56·64·5·5·64 = 321,126,400" in out
    one_error(run("factorize", "--input", "64x4x4", "--kernel", "5", "--filters", "8"),
              "--kernel 5 is larger than the 4×4 input")


def test_layer_conv_pool_dense(run):
    out = run("layer", "conv", "--input", "3x227x227", "--kernel", "11", "--stride", "4",
              "--filters", "96").stdout
    assert "(227 − 11 + 2·0)/4 + 1 = 55 → 96×55×55" in out
    assert "11·11·3·96 + 96 = 34,944" in out and "55·55·96·11·11·3 = 105,415,200" in out
    pool = run("layer", "pool", "--input", "64x112x112", "--kernel", "3", "--stride", "2",
               "--ceil-mode").stdout
    assert "ceil mode rounds up: 56 → 64×56×56" in pool
    dense = run("layer", "dense", "--input", "9216", "--units", "4096").stdout
    assert "9216·4096 + 4096 = 37,752,832" in dense and "MACs: 9216·4096 = 37,748,736" in dense
    asym = run("layer", "conv", "--input", "8x17x17", "--kernel", "1x7", "--padding", "0x3",
               "--filters", "8").stdout
    assert "17·17·8·1·7·8 = 129,472" in asym and "padding H 0, W 3" in asym


@pytest.mark.parametrize("args, fragment", [
    (["conv", "--input", "3x8x8", "--kernel", "11", "--filters", "4"],
     "kernel 11 larger than the padded input 8"),
    (["pool", "--input", "9216", "--kernel", "2"], "needs a C×H×W input"),
])
def test_layer_nonsense_is_one_line(run, args, fragment):
    one_error(run("layer", *args), fragment)


def usage_error(result, line: str) -> None:
    """Exit 2, stderr exactly `line` (one line), no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [line], result.stderr
    assert "Traceback" not in result.output


RANGE = "is not in the range 1<=x<=1000000000"


@pytest.mark.parametrize("args, line", [
    (["bottleneck", "--input", "192x28x28", "--kernel", "0", "--filters", "32", "--reduce", "16"],
     f"error: bottleneck: invalid value for '--kernel': 0 {RANGE} "
     "(fix: see 'archcalc bottleneck --help')"),
    (["bottleneck", "--input", "192x28x28", "--kernel", "5", "--filters", "-2", "--reduce", "16"],
     f"error: bottleneck: invalid value for '--filters': -2 {RANGE} "
     "(fix: see 'archcalc bottleneck --help')"),
    (["factorize", "--input", "64x8x8", "--kernel", "5", "--filters", "8", "--mid", "0"],
     f"error: factorize: invalid value for '--mid': 0 {RANGE} "
     "(fix: see 'archcalc factorize --help')"),
    (["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "0"],
     f"error: layer conv: invalid value for '--filters': 0 {RANGE} "
     "(fix: see 'archcalc layer conv --help')"),
    (["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "4", "--groups", "0"],
     f"error: layer conv: invalid value for '--groups': 0 {RANGE} "
     "(fix: see 'archcalc layer conv --help')"),
    (["layer", "conv", "--input", "3x8x8", "--kernel", "3x0", "--filters", "4"],
     f"error: layer conv: invalid value for '--kernel': 0 {RANGE} "
     "(fix: a positive integer or HxW, e.g. --kernel 3)"),
    (["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "4", "--stride",
      "2x5000000000"],
     f"error: layer conv: invalid value for '--stride': 5000000000 {RANGE} "
     "(fix: a positive integer or HxW, e.g. --stride 3)"),
    (["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "4", "--padding", "-1"],
     "error: layer conv: invalid value for '--padding': '-1' is not a padding (each value in "
     "0<=x<=1000000000) (fix: an integer >= 0, HxW, top,bottom,left,right, 'same' or 'valid')"),
    (["layer", "pool", "--input", "3x8x8", "--kernel", "a"],
     "error: layer pool: invalid value for '--kernel': 'a' is not an integer or HxW "
     "(fix: e.g. --kernel 3 or --kernel 1x7)"),
    (["layer", "dense", "--input", "9216", "--units", "0"],
     f"error: layer dense: invalid value for '--units': 0 {RANGE} "
     "(fix: see 'archcalc layer dense --help')"),
])
def test_numeric_options_have_click_ranges(run, args, line):
    usage_error(run(*args), line)


def test_pair_options_still_parse(run):
    out = run("layer", "conv", "--input", "8x17x17", "--kernel", "1x7", "--padding", "0,0,3,3",
              "--stride", "1x2", "--filters", "8").stdout
    assert "stride 1×2, padding H 0, W 3" in out and "→ 8×17×9" in out, out


# ---- sweep, memory ----------------------------------------------------------------------------
def test_sweep_alexnet(run):
    out = run("sweep", "alexnet", "--sizes", "32,66,67,227").stdout
    assert out.count("does not fit") == 2
    assert "Smallest square input that fits: 3×67×67" in out
    data = json.loads(run("sweep", "alexnet", "--from", "60", "--to", "70", "--step", "5",
                          "--format", "json").stdout)
    assert [p["size"] for p in data["points"]] == [60, 65, 70]
    assert data["smallest_fit"] == 67
    one_error(run("sweep", "alexnet", "--sizes", "32,abc"), "bad --sizes")


def test_memory_shows_the_formula(run):
    out = run("memory", "vgg16", "--batch", "32", "--optimizer", "adam").stdout
    # (P + 3·P_t + 32·A)·4 with P = P_t = 138,357,544 and A = 15,237,608
    total = (138_357_544 + 3 * 138_357_544 + 32 * 15_237_608) * 4
    assert f"adam: (138,357,544 + (1 + 2)·138,357,544 + 32·15,237,608)·4 = {total:,} B" in out
    data = json.loads(run("memory", "lenet5", "--format", "json").stdout)
    assert [e["optimizer"] for e in data["estimates"]] == ["sgd", "momentum", "nesterov",
                                                          "adagrad", "rmsprop", "adam"]


# ---- plot, report -----------------------------------------------------------------------------
def test_plot_writes_a_png(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lenet5.png"
    result = run("plot", "lenet5", "--out", str(out))
    assert result.exit_code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_one_line(run, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "x.png"
    one_error(run("plot", "lenet5", "--out", str(out)), "matplotlib", "archcalc[plot]")
    assert not out.exists()


def test_plotted_rows_skip_in_place_layers():
    from archcalc.calc import analyze
    from archcalc.plot import plotted_rows
    from archcalc.spec import load
    rows = plotted_rows(analyze(load("vgg16")))
    assert [r.name for r in rows][-3:] == ["fc6", "fc7", "fc8"]
    assert not any(r.type in ("relu", "dropout", "flatten") for r in rows)


def test_report_gathers_the_tables(run, tmp_path):
    out = tmp_path / "report.md"
    result = run("report", "vgg16", "resnet50", "--out", str(out))
    assert result.exit_code == 0
    text = out.read_text()
    for heading in ("# Design report: vgg16, resnet50", "## Comparison: vgg16, resnet50",
                    "## Bottlenecks", "### 1×1 bottlenecks in resnet50", "## Summaries",
                    "### vgg16 — input 3×224×224", "### resnet50 — input 3×224×224"):
        assert heading in text, heading
    assert "| layer1 | " in text            # summaries folded to depth 1
    assert "| layer1.0.conv1 |" not in text
    one_error(run("report", "vgg16", "--out", str(tmp_path / "no" / "dir.md")), "cannot write")


def test_docs_design_plain_text_examples_are_real_output(run):
    """The width-independent examples in docs/design.md (ad hoc bottleneck, layer) are
    exactly what the commands print."""
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    blocks = re.findall(r"```\n\$ archcalc ((?:layer|bottleneck --input)[^\n]*)\n(.*?)```", doc,
                        re.S)
    checked = 0
    for command, body in blocks:
        if "error:" in body:
            continue
        result = run(*shlex.split(command))
        assert result.exit_code == 0
        assert [l.rstrip() for l in result.stdout.strip().splitlines()] == \
            body.strip().splitlines(), command
        checked += 1
    assert checked == 6


@pytest.mark.parametrize("args, line", [
    (["layer", "conv", "--kernel", "3", "--filters", "4"],
     "error: layer conv: missing option '--input' (fix: see 'archcalc layer conv --help')"),
    (["layer", "dense", "--units", "5"],
     "error: layer dense: missing option '--input' (fix: see 'archcalc layer dense --help')"),
    (["factorize", "--kernel", "5", "--filters", "3"],
     "error: factorize: missing option '--input' (fix: see 'archcalc factorize --help')"),
    (["bottleneck", "--input", "192x28x28", "--kernel", "5"],
     "error: bottleneck: give a SPEC, or the ad hoc case: --input, --kernel, --filters and "
     "--reduce (missing --filters, --reduce) (fix: e.g. archcalc bottleneck --input 192x28x28 "
     "--kernel 5 --filters 32 --reduce 16)"),
])
def test_a_missing_option_is_a_usage_error(run, args, line):
    usage_error(run(*args), line)


def test_conv_groups_message_names_both_numbers(run):
    result = run("layer", "conv", "--input", "1x8x8", "--kernel", "3", "--filters", "2",
                 "--groups", "3")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: filters (2) must be divisible by groups (3) (fix: give --filters a multiple "
        "of --groups)"]
