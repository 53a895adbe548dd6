"""Large specs within the default limits stay cheap and linear (issues 8 and 14).

Two kinds of tests:
- Drawn (archcalc.tables) draws a Grid's table character for character as rich's Table
  does, for every bundled spec's summary and for random grids, in every width `fit` uses,
  with and without colour;
- the worst specs inside the limits (a repeat of conv layers at MAX_LAYERS, merges at
  MAX_LAYERS, nested repeats of an empty body at MAX_UNROLLED, a flat file at MAX_SPEC_BYTES)
  are validated and summarised (table, json, csv) in a subprocess measured by
  catalogue.runner.measure(): their peak memory is bounded (no timed asserts: the figures are
  printed, and limits.py's comment quotes them). Each takes seconds, so they run with
  ARCHCALC_SLOW_TESTS=1; one past a limit is refused before the work in every run.
"""

from __future__ import annotations

import io
import os
import random
import re

import pytest
from rich.console import Console

from archcalc import report
from archcalc.calc import analyze
from archcalc.spec import bundled_names, load
from archcalc.tables import Drawn, Grid


def _render(renderable, width: int, colour: bool = False) -> str:
    out = Console(width=width, file=io.StringIO(), color_system="truecolor" if colour else None,
                  force_terminal=colour, highlight=False, soft_wrap=False)
    out.print(renderable)
    return out.file.getvalue()


def _assert_same(grid: Grid, hidden: set[int], short: bool, name: int | None = None) -> None:
    rich_table = grid._rich_table(hidden, short, name)
    drawn = Drawn(grid, hidden, short, name)
    width = drawn.width
    expected = _render(rich_table, width)
    assert _render(drawn, width) == expected
    # In colour the same characters, styles added: an unstyled row is drawn as one string.
    assert re.sub("\x1b\\[[0-9;]*m", "", _render(drawn, width, colour=True)) == expected
    assert "".join(drawn.text(Console(width=width, file=io.StringIO()))) == expected
    assert Console(width=10_000, file=io.StringIO()).measure(rich_table).maximum == width


@pytest.mark.parametrize("name", bundled_names())
def test_drawn_equals_rich_for_every_bundled_summary(name):
    grid = report.summary_grid(analyze(load(name)))
    assert grid._plain()
    _assert_same(grid, set(), False)
    _assert_same(grid, {7, 2, 6}, True)
    _assert_same(grid, {7, 2, 6}, True, name=12)
    depth = report.summary_grid(analyze(load(name)), depth=1)
    _assert_same(depth, {7}, False)


_WORDS = ["conv1", "relu", "3×224×224", "—", "", " ", "1,790", "86,700,000", "表格", "a b",
          "x ", " y", "inception_3a/5x5_reduce", "é", "[/]", "[bold]x", ":fire:", "😀"]


def _random_grid(rng: random.Random) -> Grid:
    columns = rng.randint(1, 6)
    rows = [[rng.choice(_WORDS) + rng.choice(_WORDS) for _ in range(columns)]
            for _ in range(rng.randint(1, 12))]
    title = rng.choice(["", "t", "a — input 3×32×32", "long title " * rng.randint(1, 12)])
    return Grid(title, [rng.choice(_WORDS) for _ in range(columns)], rows,
                ruled={rng.randint(0, len(rows)) for _ in range(2)},
                left={rng.randint(1, 6)}, styles={0: "red"})


@pytest.mark.parametrize("seed", range(40))
def test_drawn_equals_rich_for_random_grids(seed):
    rng = random.Random(seed)
    grid = _random_grid(rng)
    for short in (False, True):
        hidden = {rng.randint(1, 5)} if len(grid.headers) > 2 else set()
        _assert_same(grid, hidden, short)
    _assert_same(grid, set(), True, name=rng.randint(9, 20))


def test_grids_that_drawn_cannot_draw_go_to_rich():
    """A line break or control code in a cell, or a wrapping column, keeps rich's Table."""
    for rows, wrap in (([["a\nb", "1"]], {}), ([["a\tb", "1"]], {}), ([["a", "1"]], {1: 10})):
        grid = Grid("t", ["Name", "N"], rows, wrap=wrap)
        assert not grid._plain()
        assert not isinstance(grid._table(set(), False), Drawn)


def test_print_wide_streams_the_same_bytes_as_rich(capsys):
    """The full table of a pipe, through print_wide, is what rich would print for it."""
    from archcalc.cli.common import print_wide

    grid = report.summary_grid(analyze(load("resnet18")))
    print_wide(grid)
    streamed = capsys.readouterr().out
    drawn = grid.rich()
    width = drawn.renderables[0].width
    rich_group = type(drawn)(grid._rich_table(set(), False), *drawn.renderables[1:])
    assert streamed == _render(rich_group, max(width, 80))


def test_json_and_csv_pieces_are_the_whole_text():
    """summary --format json/csv is written in pieces: together they are json.dumps of the
    whole analysis and one csv writer's text, for any size of piece."""
    import csv
    import json

    analysis = analyze(load("googlenet"))
    whole = json.dumps(analysis.as_dict(), indent=2)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for line in report.iter_csv(analysis, chunk=10**9):
        buf.write(line)
    for chunk in (1, 7, 1000):
        assert "".join(report.iter_json(analysis, chunk)) == whole
        assert "".join(report.iter_csv(analysis, chunk=chunk)) == buf.getvalue()
    del writer


# ---- the worst specs inside the default limits ------------------------------------------------
from catalogue.runner import measure  # noqa: E402

from archcalc.limits import limit  # noqa: E402

HEAD = "name: t\ninput: [4, 8, 8]\nlayers:\n"
# The costliest layer per row found (every field a conv takes: ~2.5 KB and ~60 µs a layer).
CONV = "{conv: {filters: 4, kernel: 3, stride: 1, padding: same, dilation: 1, groups: 2, bias: true}}"
MERGE = "{add: [[], []]}"  # a merge row of no layers: bounded by MAX_UNROLLED only


def _layers_at_limit() -> str:
    """MAX_LAYERS conv layers: a repeat of a body of ten."""
    return HEAD + f"  - repeat: {limit('MAX_LAYERS') // 10}\n    layers: [{', '.join([CONV] * 10)}]\n"


def _merges_at_limit() -> str:
    """As many merge rows as the limits allow: a merge is a row (MAX_LAYERS), and each costs a
    step of unrolling, as does each repetition (MAX_UNROLLED)."""
    rows = min(limit("MAX_LAYERS"), limit("MAX_UNROLLED") * 10 // 11)
    return HEAD + f"  - repeat: {rows // 10}\n    layers: [{', '.join([MERGE] * 10)}]\n"


def _empty_at_limit() -> str:
    """Nested repeats of an empty body: work and no layer."""
    outer = limit("MAX_UNROLLED") // 402
    return HEAD + f"  - {{repeat: {outer}, layers: [{{repeat: 200, layers: [[]]}}]}}\n  - relu\n"


def _flat_at_limit() -> str:
    """A flat file of conv layers with as many YAML values as MAX_SPEC_NODES and
    MAX_SPEC_BYTES allow (17 values a layer)."""
    count = min((limit("MAX_SPEC_NODES") - 20) // 17,
                (limit("MAX_SPEC_BYTES") - len(HEAD)) // (len(CONV) + 5))  # "  - " and "\n"
    return HEAD + f"  - {CONV}\n" * count


WORST = {"layers": _layers_at_limit, "merges": _merges_at_limit, "empty": _empty_at_limit,
         "flat": _flat_at_limit}


SLOW = pytest.mark.skipif(os.environ.get("ARCHCALC_SLOW_TESTS") != "1",
                          reason="seconds each: set ARCHCALC_SLOW_TESTS=1")


@SLOW
@pytest.mark.parametrize("spec, args", [
    ("layers", ["validate"]),
    ("layers", ["summary"]),
    ("layers", ["summary", "--format", "json"]),
    ("merges", ["summary"]),
    ("merges", ["summary", "--format", "json"]),
    ("flat", ["validate"]),
    ("flat", ["summary", "--format", "csv"]),
    ("empty", ["validate"]),
])
def test_the_worst_spec_inside_the_limits_is_bounded(tmp_path, spec, args):
    text = WORST[spec]()
    assert len(text.encode()) <= limit("MAX_SPEC_BYTES")
    (tmp_path / "net.yaml").write_text(text, encoding="utf-8")
    used = measure([*args, "net.yaml"], tmp_path, timeout=300)
    assert used.code == 0, used.stderr
    print(f"{spec} {' '.join(args)}: {used.cpu_s:.2f} s CPU, {used.peak_mb:.0f} MB")
    assert used.peak_mb < 400, (spec, args, used.peak_mb, used.cpu_s)


@pytest.mark.parametrize("over", ["layers", "bytes"])
def test_just_over_a_limit_is_refused_cheaply(tmp_path, over):
    if over == "layers":
        text = HEAD + f"  - repeat: {limit('MAX_LAYERS') + 1}\n    layers: [relu]\n"
        want = "more than archcalc unrolls"
    else:
        text = HEAD + "  - relu\n" + "#" * (limit("MAX_SPEC_BYTES") - len(HEAD) - 8) + "\n"
        want = "a spec may have at most"
    (tmp_path / "net.yaml").write_text(text, encoding="utf-8")
    used = measure(["summary", "net.yaml"], tmp_path, timeout=60)
    assert used.code == 1 and want in used.stderr, used.stderr
    assert used.peak_mb < 100, (over, used.peak_mb, used.cpu_s)  # refused before the work
