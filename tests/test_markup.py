"""User text is never parsed as rich markup (issue 8, class 5): every command, run on a spec
named `[/]` whose layers are named `[bold]x[/]`, `[red]r` and `:fire:[/]`, exits 0 and prints
those names exactly as written (a str given to rich would be a MarkupError, a bold 'x', or
an emoji)."""

from __future__ import annotations

import pytest

SPEC = """\
name: "[/]"
input: [1, 8, 8]
layers:
  - conv2d: {name: "[bold]x[/]", filters: 4, kernel: 3, padding: 1}
  - relu: {}
  - conv2d: {name: "[red]r", filters: 2, kernel: 1}
  - conv2d: {name: "[i]k", filters: 4, kernel: 3}
  - relu: {}
  - flatten: {}
  - dense: {name: ":fire:[/]", units: 10}
"""

LAYER = "[bold]x[/]"


@pytest.fixture
def spec(write_spec):
    return write_spec(SPEC, "markup.yaml")


# command arguments (SPEC is replaced by the spec's path) → text that must appear literally
# compare's column headers are the specs' names: they print literally once archcalc/tables.py
# gives Grid headers to rich as Text (Grid._table, add_column); until then compare fails here.

CASES = {
    "summary": (["summary", "SPEC"], ["[/] — input", LAYER, "[red]r", ":fire:[/]"]),
    "summary-markdown": (["summary", "SPEC", "--format", "markdown"], [LAYER, ":fire:[/]"]),
    "validate": (["validate", "SPEC"], ["[/], 7 layers"]),
    "check": (["check", "SPEC"], ["[/] · input 1×8×8", LAYER, ":fire:[/]", "✓ [/] at 1×8×8"]),
    "gradcheck": (["gradcheck", "SPEC", "--samples", "2"],
                  ["gradcheck [/]: input", LAYER, ":fire:[/]"]),
    "compare-two-inputs": (["compare", "SPEC", "--input", "1x8x8", "--input", "1x9x9"],
                           ["Comparison: [/]"]),
    "compare-two-specs": (["compare", "SPEC", "SPEC"], ["Comparison: [/]"]),
    "bottleneck": (["bottleneck", "SPEC"], ["1×1 bottlenecks in [/]", "[red]r"]),
    "bottleneck-formulas": (["bottleneck", "SPEC", "--formulas"], ["[red]r: MACs"]),
    "sweep": (["sweep", "SPEC", "--sizes", "2,8"], ["[/] across input sizes", "layer '[i]k'"]),
    "memory": (["memory", "SPEC"], ["Training memory of [/]"]),
    "report": (["report", "SPEC"], ["# Design report: [/]", LAYER]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_names_print_literally(run, spec, name):
    args, expected = CASES[name]
    result = run(*[spec if a == "SPEC" else a for a in args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert "🔥" not in result.output  # ':fire:' is a name, not an emoji code
    for text in expected:
        assert text in result.stdout, (text, result.stdout)


def test_plot_titles_are_not_mathtext(run, write_spec, tmp_path):
    pytest.importorskip("matplotlib")
    # '$\\frac' would be a mathtext parse error if matplotlib read the names
    path = write_spec(SPEC.replace(':fire:[/]', '$\\\\frac{a}$[/]'), "math.yaml")
    out = tmp_path / "m.svg"
    result = run("plot", path, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0 and result.stdout == f"wrote {out}\n"


def test_train_and_evaluate_print_names_literally(run, spec, tmp_path):
    out = tmp_path / "run"
    result = run("train", spec, "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    result = run("evaluate", spec, str(out / "checkpoint.npz"))
    assert result.exit_code == 0, result.output


def test_errors_echo_names_literally(run, write_spec):
    bad = write_spec(SPEC.replace("kernel: 1}", "kernel: 99}"), "bad.yaml")
    result = run("summary", bad)
    assert result.exit_code == 1
    assert "layer '[red]r'" in result.stderr and "Traceback" not in result.output


# rich refreshes the bar in a thread: a MarkupError there must fail the test, not warn
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_gradcheck_progress_bar_shows_names_literally(spec):
    """On a terminal the progress bar's description is a layer name: not markup either."""
    from click.testing import CliRunner

    from archcalc.cli import main
    runner = CliRunner(env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"})
    result = runner.invoke(main, ["gradcheck", spec, "--samples", "300"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "✓ all 9 arrays agree" in result.stdout
