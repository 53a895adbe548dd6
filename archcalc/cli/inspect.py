"""`archcalc list`, `archcalc summary`, `archcalc validate`, `archcalc schema`: the calculator's
commands, and the spec language's schema for editors and CI."""

from __future__ import annotations

import gc
import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import click
from rich.text import Text

from archcalc import report
from archcalc.calc import analyze
from archcalc.cli import main
from archcalc.cli.common import (batch_option, dtype_option, input_option, print_lines,
                                 print_wide, wide_option)
from archcalc.errors import MAX_ITEMS, ArchcalcError
from archcalc.limits import echo, elide
from archcalc.spec import bundled_names, load
from archcalc.spec.load import bundled_dir
from archcalc.tables import Grid


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic collector runs every 700 new objects and walks the young ones; a spec
    builds a tree (parsed values, layer models, rows: no cycles to find) of ~20 objects a
    layer, so for 100,000 layers it ran thousands of times for nothing, a quarter of
    `validate`'s time. Every 20,000 objects instead, for the command."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 20_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class _Columns(click.ParamType):
    """--columns a,b,c: names of report.COLUMNS, each once; anything else is a usage error
    (exit 2) that lists the valid names."""

    name = "a,b,c"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return report.parse_columns(value)
        except ValueError as exc:
            failure = click.BadParameter(str(exc), ctx, param)
            failure.fix = "e.g. --columns output,weights,biases"
            raise failure from None


COLUMNS = _Columns()


# `archcalc list`'s groups, in this order (roughly the order the ideas came in); families
# not listed here follow alphabetically, and specs without a `family:` come last, as "other".
FAMILY_ORDER = ("classic", "inception", "residual", "dense", "squeeze", "mobile",
                "segmentation")
NO_FAMILY = "other"


def family_groups(families: dict[str, str | None]) -> list[tuple[str, list[str]]]:
    """{spec name: family or None} → [(family, names)], families in FAMILY_ORDER, then the
    others alphabetically, then "other"; names keep their given order within a family."""
    groups: dict[str, list[str]] = {}
    for name, family in families.items():
        key = (family or "").strip().lower() or NO_FAMILY
        groups.setdefault(key, []).append(name)

    def rank(family: str) -> tuple:
        if family in FAMILY_ORDER:
            return (0, FAMILY_ORDER.index(family), "")
        return (2, 0, "") if family == NO_FAMILY else (1, 0, family)
    return [(family, groups[family]) for family in sorted(groups, key=rank)]


@main.command("list")
@wide_option
def list_specs() -> None:
    """List the bundled specs by family: name, input, parameters, MACs, source.

    Families (a spec's `family:` key) come in this order: classic, inception, residual,
    dense, squeeze, mobile, segmentation, then any other alphabetically; specs without one
    are listed under "other".

    \b
    Example:
      archcalc list
    """
    names = bundled_names()
    cells: dict[str, list[str]] = {}
    families: dict[str, str | None] = {}
    for name in names:
        analysis = analyze(load(name))
        net = analysis.network
        t = analysis.totals
        families[name] = net.family
        cells[name] = [name, "×".join(map(str, net.input_shape)), f"{t.params:,}",
                       f"{t.trainable_params:,}", f"{t.macs:,}", net.source or ""]
    # One heading row per family ('classic:' alone in the first column, a rule above it),
    # then its specs. Names are not indented: a name column starts each spec's row, as in
    # every other table (and as scripts that grep the list read it).
    rows: list[list[str]] = []
    headings: set[int] = set()
    groups = family_groups(families)
    for family, members in groups:
        headings.add(len(rows))
        rows.append([f"{family}:", "", "", "", "", ""])
        rows += [cells[name] for name in members]
    footer = [Text(f"{len(names)} specs in {len(groups)} "
                   f"{'family' if len(groups) == 1 else 'families'}, in {bundled_dir()}; "
                   "`archcalc summary NAME` shows one.", style="dim")]
    # Source wraps; a narrow terminal hides Trainable, then Source.
    print_wide(Grid("", ["Name", "Input", "Params", "Trainable", "MACs", "Source"], rows,
                    footer, wrap={5: None}, drop=[3, 5], ruled=headings - {0},
                    styles={index: "bold" for index in headings}))


@main.command()
@click.argument("spec")
@input_option()
@batch_option
@dtype_option
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Fold layers nested deeper than N name levels into one row per block.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]),
              default="table", show_default=True, help="Output format.")
@click.option("--strict", is_flag=True, help="Uneven divisions that drop input pixels are errors.")
@click.option("--columns", type=COLUMNS, default=None, metavar="a,b,c",
              help="The columns after Layer and Type, in this order (table, markdown and csv; "
                   "json keeps every field): " + "; ".join(
                       f"{c.name} = {c.meaning}" for c in report.COLUMNS.values())
                   + ". Default: " + ",".join(report.DEFAULT_COLUMNS) + ".")
@click.option("--partial", is_flag=True,
              help="An .onnx graph with unsupported nodes: analyse it up to the first of them "
                   "(stderr says where it stopped).")
@click.option("--training", is_flag=True,
              help="Also the backward pass per layer: dX MACs (gradient w.r.t. the layer's "
                   "input; none where the input depends on no trainable parameter) and dW MACs "
                   "(w.r.t. its weights), with their totals; json/csv add backward_dx_macs and "
                   "backward_dw_macs.")
@wide_option
def summary(spec: str, input_shape, batch: int, dtype: str, depth: int | None, fmt: str,
            strict: bool, columns: tuple[str, ...] | None, partial: bool,
            training: bool) -> None:
    """Per-layer shapes, parameters, MACs, activations and receptive fields, with totals.

    SPEC is a bundled name (see `archcalc list`) or a path to a YAML/JSON spec.

    \b
    Examples:
      archcalc summary vgg16
      archcalc summary alexnet --input 3x224x224
      archcalc summary resnet50 --depth 1 --batch 32 --dtype float16
      archcalc summary my_net.yaml --format json > my_net.json
      archcalc summary vgg16 --columns output,weights,biases,macs
      archcalc summary resnet50 --training --depth 1
      archcalc summary detector.onnx --partial
    """
    with _fewer_collections():
        _summary(spec, input_shape, batch, dtype, depth, fmt, strict, columns, partial,
                 training)


def _summary(spec: str, input_shape, batch: int, dtype: str, depth: int | None, fmt: str,
             strict: bool, columns: tuple[str, ...] | None, partial: bool,
             training: bool) -> None:
    network = load(spec, input_shape, partial=partial)
    analysis = analyze(network, batch=batch, dtype=dtype, strict=strict)
    # JSON and CSV are written in pieces: the same text, never the whole of it in memory.
    if fmt == "json":
        for piece in report.iter_json(analysis, training=training):
            click.echo(piece, nl=False)
        click.echo("")
    elif fmt == "csv":
        for piece in report.iter_csv(analysis, depth, columns=columns, training=training):
            click.echo(piece, nl=False)
    elif fmt == "markdown":
        click.echo(report.to_markdown(analysis, depth, columns, training))
    else:
        _print_table(report.summary_grid(analysis, depth, columns, training))
    if partial:  # on stderr, so that JSON and CSV stay parseable
        from archcalc.importers.onnx_import import partial_note
        note = partial_note({"source": network.source or ""})
        if note:
            click.echo(f"note: {echo(spec)}: {note}", err=True)


def _print_table(grid: Grid) -> None:
    """The summary table: fitted to a terminal and printed a thousand rows at a time (the
    same bytes as print_wide, which renders the whole fitted table before writing it), or
    in full to a pipe or file by print_wide, which streams it."""
    from archcalc.cli.common import _exact_hint, console, fitting
    from archcalc.tables import print_streamed

    out = console()
    if fitting(out):
        print_streamed(out, grid.fit(out.width, _exact_hint()))
    else:
        print_wide(grid)


@main.command()
@click.argument("specs", nargs=-1, required=True)
@input_option()
@click.option("--strict", is_flag=True,
              help="Also fail on uneven divisions that leave input pixels uncovered.")
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True,
              help="text: one line per spec or problem; json: one document on stdout (each "
                   "spec's problems and totals); github: GitHub Actions annotations "
                   "(::error file=...,line=...::message) on stdout.")
def validate(specs: tuple[str, ...], input_shape, strict: bool, quiet: bool, fmt: str) -> None:
    """Check specs for CI: exit 0 when every spec is valid, else 1 with one line per problem.

    Each problem names the file, the line, the layer, what is wrong with its numbers, and
    the fix. SPEC may be bundled names or paths; many at once. Uneven divisions that drop
    input pixels are warnings (errors with --strict).

    \b
    Examples:
      archcalc validate specs/*.yaml
      archcalc validate my_net.yaml --input 3x299x299 --strict
      archcalc validate specs/*.yaml --format github
      archcalc validate specs/*.yaml --format json > validate.json
    """
    outcomes = (_outcome(ref, input_shape, strict) for ref in specs)  # checked one by one
    with _fewer_collections():
        if fmt == "json":
            problems = _json_report(list(outcomes))
        else:
            problems = 0
            for outcome in outcomes:
                problems += len(outcome.errors)
                _print_outcome(outcome, fmt, quiet)
    if problems:
        if fmt != "json":  # the JSON document has the counts; stdout stays one document
            click.echo(f"{problems} problem(s) in {len(specs)} spec(s)", err=True)
        sys.exit(1)


class _Outcome(NamedTuple):
    """One spec's check: its analysis (None when it did not load or its shapes failed), the
    problems that fail it, and the warnings (uneven divisions without --strict)."""

    ref: str
    analysis: Any
    errors: list[ArchcalcError]
    warnings: list[ArchcalcError]


def _outcome(ref: str, input_shape, strict: bool) -> _Outcome:
    try:
        analysis = analyze(load(ref, input_shape))
    except ArchcalcError as exc:
        return _Outcome(ref, None, [exc], [])
    uneven = [error.located(file=analysis.network.file) for error in analysis.uneven]
    return _Outcome(ref, analysis, uneven if strict else [], [] if strict else uneven)


def _ok_line(analysis) -> str:
    t = analysis.totals
    return (f"ok: {echo(analysis.network.file)}: {analysis.network.name}, "
            f"{len(analysis.rows)} layers, output "
            f"{'×'.join(map(str, analysis.output_shape))}, {t.params:,} params, "
            f"{t.macs:,} MACs" + (f", {len(analysis.warnings)} warning(s)"
                                  if analysis.warnings else ""))


def _print_outcome(outcome: _Outcome, fmt: str, quiet: bool) -> None:
    """text: problems on stderr as the error boundary prints them; github: annotations on
    stdout, where the runner reads workflow commands. The ok line is the same in both."""
    if fmt == "github":
        for error in outcome.errors:
            click.echo(github_annotation(error, "error"))
        for warning in outcome.warnings:
            click.echo(github_annotation(warning, "warning"))
    else:
        for error in outcome.errors:
            click.echo(error.render(), err=True)
    if outcome.analysis is not None and not outcome.errors and not quiet:
        # Wrapped at spaces on a terminal; one line in a pipe, where CI logs parse it.
        print_lines([_ok_line(outcome.analysis)])


def _problem(error: ArchcalcError, severity: str) -> dict:
    return {"file": error.file, "line": error.line, "layer": error.layer,
            "message": error.message, "fix": error.fix, "severity": severity,
            "items": list(error.items)}


def _json_report(outcomes: list[_Outcome]) -> int:
    """Print the JSON document of `outcomes`; the number of problems (errors)."""
    specs = []
    for o in outcomes:
        entry: dict[str, Any] = {
            "spec": o.ref,
            "file": o.analysis.network.file if o.analysis is not None else o.errors[0].file,
            "ok": not o.errors,
            "problems": [_problem(e, "error") for e in o.errors]
                        + [_problem(w, "warning") for w in o.warnings]}
        if o.analysis is not None and not o.errors:
            a, t = o.analysis, o.analysis.totals
            entry["totals"] = {
                "name": a.network.name, "layers": len(a.rows),
                "input_shape": list(a.network.input_shape), "output_shape": list(a.output_shape),
                "params": t.params, "trainable_params": t.trainable_params, "macs": t.macs,
                "warnings": len(o.warnings)}
        specs.append(entry)
    errors = sum(len(o.errors) for o in outcomes)
    click.echo(json.dumps({"ok": errors == 0, "specs": specs, "errors": errors,
                           "warnings": sum(len(o.warnings) for o in outcomes)}, indent=2))
    return errors


# GitHub's workflow-commands escaping (actions/toolkit, command.ts): a message may not hold
# a raw %, CR or LF (a newline would start a line the runner reads as a new command); a
# property value also not ':' or ',' (they separate the command's properties).
def _github_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(error: ArchcalcError, severity: str) -> str:
    """`::error file=F,line=L,title=archcalc::message` for one problem (severity error or
    warning). User text is echo()'d (no control or bidi characters reach the log) and
    escaped, so it can neither end the command nor start another."""
    props = []
    if error.file:
        props.append(f"file={_github_property(echo(error.file, 4096))}")
    if error.line:
        props.append(f"line={int(error.line)}")
    props.append("title=archcalc")
    layer = f"layer '{echo(elide(error.layer))}': " if error.layer else ""
    fix = f" (fix: {error.fix})" if error.fix else ""
    lines = [echo(f"{layer}{error.message}{fix}", 4096)]
    lines += [echo(item, 400) for item in error.items[:MAX_ITEMS]]  # one line each in the note
    return f"::{severity} {','.join(props)}::{_github_data(chr(10).join(lines))}"


@main.command("schema")
@click.option("--output", "-o", default=None, metavar="FILE",
              help="Write the schema to FILE (all of it or nothing) instead of stdout.")
def schema_command(output: str | None) -> None:
    """Print the JSON Schema (draft 2020-12) of the spec language, for editors and CI.

    Generated from the layer models: every kind, field, default and description, the item
    forms and blocks. A YAML language server (VS Code's YAML extension, and others) gives
    completion and checking as you type with this first line in a spec:

    \b
      # yaml-language-server: $schema=archcalc.schema.json

    \b
    Examples:
      archcalc schema --output archcalc.schema.json
      archcalc schema > archcalc.schema.json
    """
    from archcalc.spec.schema import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    from archcalc.fileio import replacing

    with replacing(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    click.echo(f"wrote {echo(output)}", err=True)
