"""`archcalc list`, `archcalc summary`, `archcalc validate`: the calculator's commands."""

from __future__ import annotations

import sys

import click
from rich.text import Text

from archcalc import report
from archcalc.calc import analyze
from archcalc.cli import main
from archcalc.cli.common import (batch_option, dtype_option, input_option, print_lines,
                                 print_wide, wide_option)
from archcalc.errors import ArchcalcError
from archcalc.limits import echo
from archcalc.spec import bundled_names, load
from archcalc.spec.load import bundled_dir
from archcalc.tables import Grid


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
@wide_option
def summary(spec: str, input_shape, batch: int, dtype: str, depth: int | None, fmt: str,
            strict: bool, columns: tuple[str, ...] | None, partial: bool) -> None:
    """Per-layer shapes, parameters, MACs, activations and receptive fields, with totals.

    SPEC is a bundled name (see `archcalc list`) or a path to a YAML/JSON spec.

    \b
    Examples:
      archcalc summary vgg16
      archcalc summary alexnet --input 3x224x224
      archcalc summary resnet50 --depth 1 --batch 32 --dtype float16
      archcalc summary my_net.yaml --format json > my_net.json
      archcalc summary vgg16 --columns output,weights,biases,macs
      archcalc summary detector.onnx --partial
    """
    network = load(spec, input_shape, partial=partial)
    analysis = analyze(network, batch=batch, dtype=dtype, strict=strict)
    # JSON and CSV are written in pieces: the same text, never the whole of it in memory.
    if fmt == "json":
        for piece in report.iter_json(analysis):
            click.echo(piece, nl=False)
        click.echo("")
    elif fmt == "csv":
        for piece in report.iter_csv(analysis, depth, columns=columns):
            click.echo(piece, nl=False)
    elif fmt == "markdown":
        click.echo(report.to_markdown(analysis, depth, columns))
    else:
        print_wide(report.summary_grid(analysis, depth, columns))
    if partial:  # on stderr, so that JSON and CSV stay parseable
        from archcalc.importers.onnx_import import partial_note
        note = partial_note({"source": network.source or ""})
        if note:
            click.echo(f"note: {echo(spec)}: {note}", err=True)


@main.command()
@click.argument("specs", nargs=-1, required=True)
@input_option()
@click.option("--strict", is_flag=True,
              help="Also fail on uneven divisions that leave input pixels uncovered.")
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
def validate(specs: tuple[str, ...], input_shape, strict: bool, quiet: bool) -> None:
    """Check specs for CI: exit 0 when every spec is valid, else 1 with one line per problem.

    Each problem names the file, the line, the layer, what is wrong with its numbers, and
    the fix. SPEC may be bundled names or paths; many at once.

    \b
    Examples:
      archcalc validate specs/*.yaml
      archcalc validate my_net.yaml --input 3x299x299 --strict
    """
    problems = 0
    for ref in specs:
        try:
            analysis = analyze(load(ref, input_shape))
        except ArchcalcError as exc:
            problems += 1
            click.echo(exc.render(), err=True)
            continue
        failures = analysis.uneven if strict else []
        for error in failures:
            click.echo(error.located(file=analysis.network.file).render(), err=True)
        problems += len(failures)
        if not failures and not quiet:
            t = analysis.totals
            # Wrapped at spaces on a terminal; one line in a pipe, where CI logs parse it.
            print_lines([f"ok: {echo(analysis.network.file)}: {analysis.network.name}, "
                         f"{len(analysis.rows)} layers, output "
                         f"{'×'.join(map(str, analysis.output_shape))}, {t.params:,} params, "
                         f"{t.macs:,} MACs" + (f", {len(analysis.warnings)} warning(s)"
                                               if analysis.warnings else "")])
    if problems:
        click.echo(f"{problems} problem(s) in {len(specs)} spec(s)", err=True)
        sys.exit(1)
