"""What every command shares: the error boundary, option types, the console."""

from __future__ import annotations

import errno
import io
import math
import os
import sys
from typing import Any, Callable, NoReturn

from typing import TYPE_CHECKING

import click

from archcalc.errors import ArchcalcError
from archcalc.limits import MAX_SIZE, SEED_MAX, echo

if TYPE_CHECKING:
    from rich.console import Console

# rich (and archcalc.tables, built on it) loads with the first table: `--help`, `--version`
# and a command that fails on its input never pay its 25 ms.
_TABLES = ("Drawn", "Grid", "plain", "wrap_words")


def __getattr__(name: str) -> Any:
    """archcalc.tables' names, re-exported for commands, loaded on first use (PEP 562)."""
    if name in _TABLES:
        from archcalc import tables
        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class AppGroup(click.Group):
    """The error boundary: a user's mistake (ArchcalcError) is one line on stderr and exit 1;
    a usage error (click's) is one line and exit 2; an output that cannot be written (a full
    disk behind stdout) is one line; a closed pipe exits 1 in silence; Ctrl-C is
    `interrupted` and exit 130. Never a traceback."""

    group_class = type  # `layer` and any later subgroup get this same boundary

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:  # the group's own options and arguments: `archcalc --bogus`
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # the command's name, options and arguments
            if exc.ctx is None:  # click's parser leaves it out ("requires an argument")
                exc.ctx = self._command_context(ctx)
            raise one_line(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure is one line
            fail(exc)
        except KeyboardInterrupt:  # before click turns it into "Aborted!"
            fail_interrupted()

    def _command_context(self, ctx: click.Context) -> click.Context:
        """A bare context of the subcommand being parsed, so the message can name it (click
        records its name before it parses the subcommand's arguments)."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return click.Context(command, info_name=name, parent=ctx) if command else ctx

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # The whole run is inside the boundary: click runs eager options (--help, --version)
        # while it parses, before invoke, and their output can fail too (`--help > /dev/full`).
        # Output still buffered when the command ends is written here, not by the interpreter
        # at exit (where a full disk would be "Exception ignored" and exit code 120).
        from archcalc.cli.encoding import ascii_fallback
        from archcalc.limits import stack_room

        if sys.stdout is None:
            stdout_closed()
        ascii_fallback()  # PYTHONIOENCODING=ascii: × as x, not a UnicodeEncodeError
        try:
            # Every walk of a spec's tree (resolve, analyze, build, compare) recurses once per
            # level: the whole command gets the room MAX_SPEC_DEPTH levels need.
            with stack_room():
                try:
                    return super().main(*args, **kwargs)
                finally:
                    flush_stdout()
        except Exception as exc:  # noqa: BLE001 - what escaped click's own handling
            fail(exc)


def fail(exc: Exception) -> NoReturn:
    """The boundary's answer to an exception: one line on stderr and the exit code."""
    if isinstance(exc, ArchcalcError):
        _say(exc.render())
        sys.exit(1)
    if isinstance(exc, OSError):  # what is left of I/O after the library's own messages
        output_failed(exc)
    if isinstance(exc, MemoryError):
        # The commands estimate memory before they allocate; this is the net under them.
        _say("error: out of memory: this run needs more memory than the machine gave it "
             "(fix: a smaller input or batch, or close other programs)")
        sys.exit(1)
    if isinstance(exc, RecursionError):
        _say("error: the input nests too deeply for archcalc to follow (fix: flatten the "
             "nesting, e.g. of blocks and branches)")
        sys.exit(1)
    if os.environ.get("ARCHCALC_DEBUG"):
        raise exc
    _say(f"error: internal error ({type(exc).__name__}: {echo(exc, 200)}): a bug in archcalc, "
         "not in your input (fix: please report it with the command and spec; "
         "ARCHCALC_DEBUG=1 shows the traceback)")
    sys.exit(70)  # EX_SOFTWARE (sysexits.h): not the user's mistake (1) or usage (2)


def fail_interrupted() -> NoReturn:
    _say("interrupted")
    sys.exit(130)


def _say(line: str) -> None:
    """A line on stderr; if stderr is closed or full, the exit code is all that is left."""
    try:
        click.echo(line, err=True)
    except (OSError, ValueError):
        pass


def stdout_closed() -> NoReturn:
    """Standard output was closed before archcalc started (`archcalc summary vgg16 >&-`):
    Python then has no sys.stdout at all. Like a closed pipe, there is nothing to say on it;
    unlike a pipe that a reader closed, the user may not know, so stderr says so once."""
    _say("error: standard output is closed: archcalc has nowhere to print (fix: run it "
         "without '>&-', or redirect its output to a file or /dev/null)")
    sys.exit(1)


class OneLineUsageError(click.UsageError):
    """click's usage error, shown as the house's one line (click prints four: Usage, Try,
    a blank line, Error)."""

    def __init__(self, line: str, ctx: click.Context | None) -> None:
        super().__init__(line, ctx)
        self.line = line

    def show(self, file: Any = None) -> None:
        click.echo(self.line, err=True)


def _lower_first(text: str) -> str:
    # "Invalid value" reads as "invalid value" after "error: cmd: "; "SPEC" stays "SPEC".
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def usage_line(exc: click.UsageError) -> str:
    """`error: COMMAND: click's message (fix: ...)`: the fix is the parser's own when it has
    one (ParsedParam), else where the help is. The message echoes at most ~300 characters."""
    # The root is always called archcalc (`python -m archcalc` and a test's runner name it
    # otherwise): the command is the chain of subcommand names below the root.
    names, ctx = [], exc.ctx
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(reversed(names))
    path = f"archcalc {command}" if command else "archcalc"
    message = echo(_lower_first(exc.format_message().strip().rstrip(".")), 300)
    fix = getattr(exc, "fix", None) or f"see '{path} --help'"
    return f"error: {command + ': ' if command else ''}{message} (fix: {fix})"


def one_line(exc: click.UsageError) -> click.UsageError:
    """`exc` as a one-line usage error; help shown for a bare group stays help."""
    if isinstance(exc, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return exc
    converted = OneLineUsageError(usage_line(exc), exc.ctx)
    converted.exit_code = exc.exit_code
    return converted


# ---- output that cannot be written ------------------------------------------------------------
def silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so the interpreter's last flush of what is
    still buffered succeeds quietly (a closed pipe or a full disk has been reported)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real descriptor (a test's runner)
        pass


def _raised_writing_stdout(exc: OSError) -> bool:
    """Whether `exc` came from writing stdout: some frame of its traceback was writing to it
    (click.echo's `file`, a rich Console's `self`, a stream's `self`). A write error carries
    no file name and a failed write drops its buffer, so the traceback is the only witness."""
    streams = [sys.stdout, getattr(sys.stdout, "buffer", None), sys.__stdout__]
    rich_console = sys.modules.get("rich.console")  # no Console exists before rich loads
    console_type = rich_console.Console if rich_console is not None else ()
    tb = exc.__traceback__
    while tb is not None:
        for name in ("self", "file", "stream"):
            obj = tb.tb_frame.f_locals.get(name)
            if isinstance(obj, console_type):
                obj = obj.file
            if obj is not None and any(obj is s for s in streams):
                return True
        tb = tb.tb_next
    return False


def output_failed(exc: OSError, stdout: bool = False) -> NoReturn:
    """One line for an OSError that reached the boundary, then exit; `stdout`: the caller
    knows it came from writing stdout. A closed pipe (`archcalc summary vgg16 | head -1`) is
    not an error: exit 1 quietly, as click and rich (Console.on_broken_pipe) already do for
    the writes they make."""
    if exc.errno == errno.EPIPE:
        silence_stdout()
        sys.exit(1)
    why = exc.strerror or str(exc)
    if exc.filename is None and (stdout or _raised_writing_stdout(exc)):
        line = (f"error: cannot write to standard output: {why} (fix: free space where the "
                "output goes, or redirect it to another file or disk)")
    else:
        where = f"{echo(exc.filename)}: " if exc.filename is not None else ""
        line = f"error: {where}{why} (fix: check the path, its permissions and the free space)"
    _say(line)
    silence_stdout()
    sys.exit(1)


def flush_stdout() -> None:
    """Flush stdout inside the boundary (see AppGroup.main)."""
    if sys.stdout is None:  # closed before the start: said so by main
        return
    try:
        sys.stdout.flush()
    except OSError as exc:
        output_failed(exc, stdout=True)
    except ValueError:  # already closed
        pass


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
            failure = click.BadParameter(exc.message, ctx, param)
            failure.fix = exc.fix  # the parser's fix replaces "see --help" in the one line
            raise failure from None


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses inf and nan (nan compares false with every bound, so a
    plain FloatRange lets it through)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


# A seed is what NumPy's generators and the executor accept: 0 .. 2**32 - 1.
SEED = click.IntRange(0, SEED_MAX)
COUNT = click.IntRange(1, MAX_SIZE)  # filters, units, groups, channels, strides


def _parse_shape(text: str) -> tuple[int, ...]:
    """archcalc.spec's parse_shape, imported when an option is parsed: the spec language
    (pydantic, its models) costs 0.12 s that `archcalc --version` and `--help` need not pay."""
    from archcalc.spec import parse_shape
    return parse_shape(text)


SHAPE = ParsedParam("CxHxW", _parse_shape, tuple)  # 3x224x224, or N for a flat input

DTYPES = click.Choice(["float16", "float32", "float64"])


def _memory_size(text: str) -> int:
    from archcalc.check import parse_size  # here: check imports NumPy, the CLI starts without
    return parse_size(text)


MEMORY = ParsedParam("SIZE", _memory_size, int)  # 2GB, 500MB, 1.5GiB: --memory-budget
memory_budget_option = click.option(
    "--memory-budget", type=MEMORY, default=None,
    help="Refuse runs estimated above this, e.g. 2GB or 500MB "
         "[default: half the available memory].")


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
    from rich.console import Console

    out = Console(width=width, soft_wrap=False, highlight=False)
    if out.width < 40:  # COLUMNS=0 printed nothing, COLUMNS=1 a character a line
        out.width = 40
    return out


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
    from rich.console import Console, Group
    from rich.table import Table

    from archcalc.tables import Drawn, Grid

    out = console(width)
    if isinstance(renderable, Grid):
        if width is None and fitting(out):
            out.print(renderable.fit(out.width, _exact_hint()))
            return out
        renderable = renderable.rich()
    parts = renderable.renderables if isinstance(renderable, Group) else [renderable]
    if width is None:
        wide = Console(width=10_000, file=io.StringIO())
        needed = max((wide.measure(p).maximum for p in parts if isinstance(p, (Table, Drawn))),
                     default=0)
        if needed > out.width:
            out = console(needed)
    if out.color_system is None and any(isinstance(p, Drawn) for p in parts):
        _print_streamed(out, parts)
    else:
        out.print(renderable)
    out.soft_wrap = True  # the lines after a full table stay whole, like the table
    return out


def _print_streamed(out: Console, parts: list) -> None:
    """Print a Group part by part, a Drawn table as text in chunks of lines: the same bytes
    as out.print(Group(...)) without holding a 100,000-row table's segments at once."""
    from archcalc.tables import Drawn

    file = out.file  # named `file` for _raised_writing_stdout
    for part in parts:
        if not isinstance(part, Drawn):
            out.print(part)
            continue
        chunk: list[str] = []
        for line in part.text(out):
            chunk.append(line)
            if len(chunk) >= 1000:
                file.write("".join(chunk))
                chunk.clear()
        file.write("".join(chunk))


def print_lines(lines) -> None:
    """Lines of text (formulas, a layer's arithmetic): wrapped at spaces to a terminal,
    never inside a number, continuation lines indented; unchanged in a pipe or with --wide."""
    from archcalc.tables import wrap_words

    out = console()
    fit = fitting(out)
    for line in lines:
        for piece in wrap_words(line, out.width) if fit else [line]:
            click.echo(piece)
