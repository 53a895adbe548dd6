"""What every command shares: the error boundary, option types, the console."""

from __future__ import annotations

import io
import sys
from typing import Any, Callable

import click
from rich.console import Console, Group
from rich.table import Table

from archcalc.errors import ArchcalcError
from archcalc.spec import parse_shape


class AppGroup(click.Group):
    """Turns a user's mistake (ArchcalcError) into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchcalcError as exc:
            click.echo(exc.render(), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


class ParsedParam(click.ParamType):
    """An option value read by one of the library's parsers; its ArchcalcError becomes
    click's usage error (exit 2) with the parser's message and fix."""

    def __init__(self, name: str, parse: Callable[[str], Any], parsed: type) -> None:
        self.name, self.parse, self.parsed = name, parse, parsed

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, self.parsed):  # a default, already parsed
            return value
        try:
            return self.parse(value)
        except ArchcalcError as exc:
            self.fail(f"{exc.message} ({exc.fix})", param, ctx)


SHAPE = ParsedParam("CxHxW", parse_shape, tuple)  # 3x224x224, or N for a flat input

DTYPES = click.Choice(["float16", "float32", "float64"])


def input_option(multiple: bool = False):
    return click.option("--input", "input_shape", type=SHAPE, multiple=multiple,
                        default=None if not multiple else (),
                        help="Override the spec's input shape, e.g. 3x227x227.")


batch_option = click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Images per batch (scales memory and MAC totals).")
dtype_option = click.option("--dtype", type=DTYPES, default="float32", show_default=True,
                            help="Bytes per value for memory figures.")


def console(width: int | None = None) -> Console:
    """The console every table goes to; tests fix the width (COLUMNS) and get no colour."""
    return Console(width=width, soft_wrap=False, highlight=False)


_WIDE = "archcalc.wide"


def _remember_wide(ctx: click.Context, param: Any, value: bool) -> None:
    if value:
        ctx.meta[_WIDE] = True  # meta is shared by the whole context chain


wide_option = click.option(
    "--wide", is_flag=True, expose_value=False, callback=_remember_wide,
    help="Print the full table with exact figures even when it is wider than the terminal "
         "(a pipe or file always gets the full table).")


def fitting(out: Console) -> bool:
    """Whether tables are fitted to `out`: on a terminal (width from COLUMNS or the terminal,
    as rich reads it) unless --wide. A pipe or file keeps the full table that scripts and
    golden files rely on, whatever COLUMNS says."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_WIDE):
        return False
    try:
        return out.file.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


def _exact_hint() -> str:
    """What gives exact figures in the current command: --wide, and --format json if it has it."""
    ctx = click.get_current_context(silent=True)
    formats = [p for p in (ctx.command.params if ctx else []) if p.name == "fmt"]
    if formats and "json" in getattr(formats[0].type, "choices", ()):
        return "--wide or --format json"
    return "--wide"


def print_wide(renderable, width: int | None = None) -> Console:
    """Print a table. A Grid (archcalc.tables) on a terminal is fitted to its width; the full
    table (a pipe, a file, --wide, or any other renderable) never truncates a number: if it
    needs more columns than the console has, the console is widened (a terminal wraps) rather
    than cells cut. Returns the console used, for the lines that follow the table: wrapped
    to the terminal after a fitted table, never wrapped after a full one."""
    from archcalc.tables import Grid

    out = console(width)
    if isinstance(renderable, Grid):
        if width is None and fitting(out):
            out.print(renderable.fit(out.width, _exact_hint()))
            return out
        renderable = renderable.rich()
    if width is None:
        wide = Console(width=10_000, file=io.StringIO())
        parts = renderable.renderables if isinstance(renderable, Group) else [renderable]
        needed = max((wide.measure(p).maximum for p in parts if isinstance(p, Table)), default=0)
        if needed > out.width:
            out = console(needed)
    out.print(renderable)
    out.soft_wrap = True  # the lines after a full table stay whole, like the table
    return out


def print_lines(lines) -> None:
    """Lines of text (formulas, a layer's arithmetic): wrapped at spaces to a terminal,
    never inside a number, continuation lines indented; unchanged in a pipe or with --wide."""
    from archcalc.tables import wrap_words

    out = console()
    fit = fitting(out)
    for line in lines:
        for piece in wrap_words(line, out.width) if fit else [line]:
            click.echo(piece)
