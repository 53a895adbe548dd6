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


def print_wide(renderable, width: int | None = None) -> Console:
    """Print without ever truncating a number: if the table needs more columns than the
    terminal has, widen the console (the terminal wraps) rather than cut cells. Returns
    the console used, for the lines that follow the table."""
    out = console(width)
    if width is None:
        wide = Console(width=10_000, file=io.StringIO())
        parts = renderable.renderables if isinstance(renderable, Group) else [renderable]
        needed = max((wide.measure(p).maximum for p in parts if isinstance(p, Table)), default=0)
        if needed > out.width:
            out = console(needed)
    out.print(renderable)
    return out
