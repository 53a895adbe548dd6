"""A 100,000-layer spec is accepted by the default limits, and the table of a long network is
made in one pass and streamed with the same bytes (issue 14, goal 2).

The timings themselves are benchmarks/scale.py's: no test here asserts a time.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random

import pytest
from rich.cells import cell_len
from rich.console import Console

from archcalc import report
from archcalc.calc import analyze
from archcalc.limits import DEFAULTS, limit
from archcalc.spec import loads
from archcalc.spec.budget import Forecast
from archcalc.spec.resolve import Resolver
from archcalc.spec.yamlio import parse_text
from archcalc.tables import Drawn, Grid, _short

LAYERS = 100_000
FLAT_YAML = "name: flat\ninput: [16]\nlayers:\n" + "  - dense: 16\n  - relu\n" * (LAYERS // 2)
FLAT_JSON = json.dumps({"name": "flat", "input": [16],
                        "layers": [{"dense": 16}, "relu"] * (LAYERS // 2)})
REPEAT_YAML = ("name: blocks\ninput: [4, 8, 8]\nblocks:\n"
               "  unit: {layers: [{conv: {filters: 4, kernel: 3, padding: 1}}, relu]}\n"
               f"layers:\n  - repeat: {LAYERS // 2}\n    layers: [unit]\n")


@pytest.fixture
def default_limits(monkeypatch):
    for name in DEFAULTS:
        monkeypatch.delenv(f"ARCHCALC_{name}", raising=False)


def test_a_100000_layer_flat_spec_loads_with_the_default_limits(default_limits):
    net = loads(FLAT_YAML)
    analysis = analyze(net)
    assert len(analysis.rows) == LAYERS
    assert analysis.totals.params == (LAYERS // 2) * (16 * 16 + 16)


@pytest.mark.parametrize("text, json_mode", [(FLAT_JSON, True), (REPEAT_YAML, False)])
def test_other_100000_layer_specs_are_within_the_default_limits(default_limits, text,
                                                                json_mode):
    """The JSON form and the block-and-repeat form: within the byte and value limits when
    read, and within the layer and unrolling limits by the forecast that guards resolving."""
    assert len(text.encode()) <= limit("MAX_SPEC_BYTES")
    raw = parse_text(text, json_mode=json_mode)  # refuses past MAX_SPEC_NODES / DEPTH
    resolver = Resolver(raw.get("blocks") or {}, ".")
    cost = Forecast(resolver.blocks, resolver._forecast_body).items(raw["layers"], 0, 1)
    assert cost.layers == LAYERS <= limit("MAX_LAYERS")
    assert cost.work <= limit("MAX_UNROLLED")


def test_the_limits_still_refuse_just_past_them(default_limits):
    from archcalc.errors import SpecError

    with pytest.raises(SpecError, match="more than archcalc unrolls"):
        loads("name: t\ninput: [16]\nlayers:\n"
              f"  - repeat: {limit('MAX_LAYERS') + 1}\n    layers: [relu]\n")
    # A list of 1,000 values used through aliases past MAX_SPEC_NODES: refused by its count.
    uses = limit("MAX_SPEC_NODES") // 1001 + 1
    with pytest.raises(SpecError, match="more than 400,000 values"):
        parse_text("a: &a [" + "1, " * 1000 + "]\nb: [" + "*a, " * uses + "]\n")


def test_the_rows_paths_together_past_max_path_chars_are_refused(default_limits, monkeypatch):
    """Every row carries its full path: a 74 KB file of 50 nested 999-character scopes around
    `repeat: 100000` held 5.2 GB. The sum of the rows' path lengths is bounded; at the limit
    the spec loads, one character past it is refused at the row that passes it."""
    from archcalc.errors import SpecError

    def spec(repeats: int) -> str:  # each path: 'a' * 989 + '.0.' + '<i>' + '.relu1'
        return ("name: t\ninput: [4, 8, 8]\nlayers:\n"
                f"  - {'a' * 989}:\n      repeat: 1\n      layers:\n"
                f"        - {{repeat: {repeats}, layers: [relu]}}\n")

    net = loads(spec(9))
    total = sum(len(net.display(leaf.path)) for leaf in net.leaves())
    monkeypatch.setenv("ARCHCALC_MAX_PATH_CHARS", str(total))
    assert len(list(loads(spec(9)).leaves())) == 9
    with pytest.raises(SpecError, match=f"the layers' full paths add up to more than "
                                        f"{total:,} characters") as caught:
        loads(spec(10))
    assert "ARCHCALC_MAX_PATH_CHARS" in str(caught.value) and "line 7" in str(caught.value)
    assert ".0.9.relu1" in str(caught.value)  # the tenth row is the one past it
    # A deep path alone is no problem: 490 nested blocks (a 2,300-character path) load.
    monkeypatch.delenv("ARCHCALC_MAX_PATH_CHARS")
    blocks = "".join(f"  b{i}:\n    layers: [b{i + 1}]\n" for i in range(490))
    deep = loads(f"name: t\ninput: [1, 4, 4]\nblocks:\n{blocks}  b490:\n    layers: [relu]\n"
                 "layers: [b0]\n")
    assert len(deep.display(next(deep.leaves()).path)) > 2_000


# ---- the table of a long network ---------------------------------------------------------------
def _long_analysis(layers: int = 2_600):
    text = ("name: long\ninput: [3, 16, 16]\nlayers:\n  - repeat: " + str(layers // 4) + "\n"
            "    layers: [{conv: {filters: 8, kernel: 3, padding: 1}}, batchnorm, relu, "
            "{add: [[], [{conv: {filters: 8, kernel: 1}}]]}]\n")
    return analyze(loads(text))


def test_a_long_table_streamed_to_a_pipe_equals_it_printed_at_once(capsys):
    """print_wide writes the full table in chunks of 1,000 lines; the bytes are those of
    one console.print of the same drawing."""
    from archcalc.cli.common import print_wide

    grid = report.summary_grid(_long_analysis())
    print_wide(grid)
    streamed = capsys.readouterr().out
    group = grid.rich()
    width = group.renderables[0].width
    once = Console(width=max(width, 80), file=io.StringIO(), color_system=None,
                   highlight=False, soft_wrap=False)
    once.print(group)
    assert streamed == once.file.getvalue()
    assert streamed.count("\n") > 3_000  # several chunks


def _cells_widest(grid: Grid, short: bool) -> list[int]:
    """Each column's widest cell, straight from the rows (the oracle for the scan)."""
    numeric = grid._numeric(set())
    widest = [cell_len(h) for h in grid.headers]
    for row in grid.rows:
        for i, cell in enumerate(row):
            widest[i] = max(widest[i], cell_len(_short(cell) if short and i in numeric
                                                else cell))
    return widest


@pytest.mark.parametrize("seed", range(12))
def test_one_scan_measures_every_column_as_the_rows_do(seed):
    """The widths fit() compares for every set of hidden columns come from one scan of the
    rows; they are the widest cells, abbreviated or not, and a fitted table draws every
    row as rich's Table would at that width."""
    rng = random.Random(seed)
    words = ["1,790", "86,700,000", "3×224×224", "—", "relu", "表格", "x ", "12 /4", "😀"]
    rows = [[f"layer{rng.randint(0, 10**rng.randint(1, 5))}"]
            + [rng.choice(words) + rng.choice(words) for _ in range(5)]
            for _ in range(rng.randint(1, 60))]
    grid = Grid("t", ["Layer", "Type", "A", "B", "C", "D"], rows, left={1}, drop=[5, 3])
    assert grid._plain()
    for short in (False, True):
        assert grid._widest(short) == _cells_widest(grid, short)
    direct = any(_short(row[i]) != row[i] for row in rows for i in grid._numeric(set()))
    assert grid._abbreviates(set()) == direct
    for width in (30, 45, 60, 200):
        fitted = grid.fit(width)
        table = fitted.renderables[0]
        if isinstance(table, Drawn):
            assert table.width <= width
            out = Console(width=width, file=io.StringIO(), color_system=None)
            rich_table = grid._rich_table(table.hidden, table.short, table.name)
            out.print(rich_table)
            assert "".join(table.text(out)) == out.file.getvalue()


@pytest.mark.parametrize("width", [60, 100, 250])
def test_a_fitted_table_printed_in_chunks_equals_it_printed_at_once(width):
    """On a terminal (colour, fitted to its width) summary prints the table a chunk of lines
    at a time: the bytes are those of one console.print of the fitted table."""
    from archcalc.tables import print_streamed

    analysis = _long_analysis(400)
    analysis.rows[3] = dataclasses.replace(analysis.rows[3], name="表格" + "x" * 30)

    def terminal() -> Console:
        return Console(width=width, file=io.StringIO(), color_system="truecolor",
                       force_terminal=True, highlight=False, soft_wrap=False)

    grid = report.summary_grid(analysis)
    once = terminal()
    once.print(grid.fit(width))
    for chunk in (7, 1000):
        chunked = terminal()
        print_streamed(chunked, report.summary_grid(analysis).fit(width), chunk=chunk)
        assert chunked.file.getvalue() == once.file.getvalue()
    assert once.file.getvalue().count("\n") > 400
