"""Views of an Analysis: a rich table, JSON, CSV, Markdown. Rendering only, no arithmetic
beyond sums of the rows (so every printed total is the sum of the printed column)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from decimal import ROUND_HALF_EVEN, Decimal
from collections.abc import Iterator, Sequence

from rich.console import Console
from rich.text import Text

from archcalc.calc.analyze import Analysis, Row
from archcalc.calc.shapes import fmt_shape
from archcalc.tables import Grid

CONVENTIONS = (
    "Shapes are C×H×W per image. 1 MAC = one multiply-accumulate of a conv or dense layer "
    "(conv: H_out·W_out·C_out·K_h·K_w·C_in/groups; dense: in·out); bias adds, activations, "
    "pooling, normalisation and merges are not MACs; FLOPs = 2·MACs. Activations = the input "
    "plus every new tensor a layer makes (in-place activations, dropout and flatten add none). "
    "RF = receptive field (and effective stride) at the layer's output, in input pixels."
)


def human(n: float, unit: str = "") -> str:
    """15470264320 → '15.47 G' (SI) for counts."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def power_of_ten(exact: Decimal) -> str:
    """Three significant digits and a power of ten, rounded half to even: 4.00 × 10^24."""
    digits = exact.adjusted()
    mantissa = exact.scaleb(-digits).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    if abs(mantissa) >= 10:  # 9.995 rounds up to the next power
        digits, mantissa = digits + 1, (mantissa / 10).quantize(Decimal("0.01"))
    return f"{mantissa} × 10^{digits}"


_BINARY = ((2**60, "EiB"), (2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"),
           (2**10, "KiB"))


def human_bytes(n: float) -> str:
    """Binary units: 553430176 → '527.79 MiB'; from 1024 EiB on, three significant digits and
    a power of ten (4.00 × 10^24 B). Computed in Decimal (exact for an int), so a huge count
    prints without float noise."""
    exact = Decimal(n)
    if abs(exact) >= 2**70:
        return f"{power_of_ten(exact)} B"
    for scale, prefix in _BINARY:
        if abs(exact) >= scale:
            return f"{(exact / scale).quantize(Decimal('0.01'), ROUND_HALF_EVEN)} {prefix}"
    return f"{int(n)} B"


def rf_text(row: Row) -> str:
    rf, jump = row.receptive_field, row.effective_stride
    r = str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}×{rf[1]}"
    j = str(jump[0]) if jump[0] == jump[1] else f"{jump[0]}×{jump[1]}"
    return f"{r} /{j}"


# ---- folding (--depth) --------------------------------------------------------------------
def fold(analysis: Analysis, depth: int | None) -> list[Row]:
    """Rows with more than `depth` name levels fold into one row per block (torchinfo's depth)."""
    if depth is None:
        return list(analysis.rows)
    out: list[Row] = []
    groups: list[list[Row]] = []
    for row in analysis.rows:
        if len(row.path) <= depth:
            groups.append([row])
            continue
        key = row.path[:depth]
        if groups and len(groups[-1][0].path) > depth and groups[-1][0].path[:depth] == key:
            groups[-1].append(row)
        else:
            groups.append([row])
    for group in groups:
        first, last = group[0], group[-1]
        if len(group) == 1 and len(first.path) <= depth:
            out.append(first)
            continue
        key = first.path[:depth]
        out.append(Row(
            path=key, name=analysis.network.display(key),
            type=analysis.labels.get(key, "block"),
            input_shape=first.input_shape, output_shape=last.output_shape,
            trainable_params=sum(r.trainable_params for r in group),
            non_trainable_params=sum(r.non_trainable_params for r in group),
            macs=sum(r.macs for r in group), activations=sum(r.activations for r in group),
            receptive_field=(max(r.receptive_field[0] for r in group),
                             max(r.receptive_field[1] for r in group)),
            effective_stride=(max(r.effective_stride[0] for r in group),
                              max(r.effective_stride[1] for r in group)),
            line=first.line))
    return out


def input_row(analysis: Analysis) -> Row:
    shape = analysis.network.input_shape
    return Row(("input",), "input", "input", shape, shape, 0, 0, 0,
               analysis.totals.input_values, (1, 1), (1, 1))


# ---- rich table ----------------------------------------------------------------------------
def _non_trainable_label(analysis: Analysis) -> str:
    """What the non-trainable parameters are: batch-norm running statistics, frozen weights."""
    rows = [r for r in analysis.rows if r.non_trainable_params]
    if not rows:
        return ""
    stats_only = all(r.type == "batchnorm" and r.trainable_params == r.non_trainable_params
                     for r in rows)
    if stats_only:
        return "  (batch-norm running mean and variance)"
    return "  (batch-norm running statistics and the weights of frozen layers)"


def totals_lines(analysis: Analysis) -> list[str]:
    t = analysis.totals
    lines = [
        f"Total params:          {t.params:,}",
        f"  trainable:           {t.trainable_params:,}",
        f"  non-trainable:       {t.non_trainable_params:,}" + _non_trainable_label(analysis),
        f"MACs per image:        {t.macs:,} ({human(t.macs)})    FLOPs = 2·MACs = {t.flops:,}",
        f"Activations per image: {t.activations:,} values (input {t.input_values:,} included)"
        f" = {t.activation_bytes:,} B ({human_bytes(t.activation_bytes)}) in {t.dtype}",
        f"Param bytes:           {t.param_bytes:,} B ({human_bytes(t.param_bytes)})",
    ]
    if t.batch > 1:
        lines.append(f"MACs per batch of {t.batch}:  {t.macs * t.batch:,} ({human(t.macs * t.batch)})")
    lines += [
        f"Batch {t.batch}, {t.dtype}: input {human_bytes(t.input_bytes)} + forward/backward "
        f"{human_bytes(t.forward_backward_bytes)} (2 × layer activations) + params "
        f"{human_bytes(t.param_bytes)} = estimated total {human_bytes(t.total_bytes)}",
    ]
    return lines


def summary_grid(analysis: Analysis, depth: int | None = None) -> Grid:
    """The per-layer table with the totals, warnings, notes and conventions below it. A
    narrow terminal hides RF /stride, then Input, then Activations (torchinfo and Keras
    users read name, type, output, params and MACs first)."""
    net = analysis.network
    rows = _Cells([input_row(analysis)] + fold(analysis, depth))
    footer: list = [Text("\n".join(totals_lines(analysis)))]
    footer += [Text(f"warning: {warning}", style="yellow") for warning in analysis.warnings]
    footer += [Text(f"note: {note}", style="dim") for note in analysis.notes]
    footer.append(Text(CONVENTIONS, style="dim"))
    return Grid(f"{net.name} — input {fmt_shape(net.input_shape)}",
                ["Layer", "Type", "Input", "Output", "Params", "MACs", "Activations",
                 "RF /stride"], rows, footer, left={1}, drop=[7, 2, 6])


def summary_cells(row: Row) -> list[str]:
    """One row of the summary table, as printed."""
    return [row.name, row.type,
            "" if row.type == "input" else fmt_shape(row.input_shape),
            fmt_shape(row.output_shape),
            f"{row.params:,}" if row.params else "—",
            f"{row.macs:,}" if row.macs else "—",
            f"{row.activations:,}" if row.activations else "—",
            "" if row.type == "input" else rf_text(row)]


class _Cells(Sequence):
    """The summary table's rows, made when read: a 100,000-layer table is drawn in two
    passes (widths, then lines) without holding 800,000 cell strings."""

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [summary_cells(row) for row in self._rows[index]]
        return summary_cells(self._rows[index])

    def __iter__(self) -> Iterator[list[str]]:
        return map(summary_cells, self._rows)


def render_text(renderable, width: int = 120) -> str:
    """Render to a string (no colour) — for tests and for printing all at once."""
    console = Console(width=width, record=False, color_system=None, force_terminal=False,
                      file=io.StringIO(), highlight=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ---- machine formats ------------------------------------------------------------------------
def to_json(analysis: Analysis) -> str:
    return "".join(iter_json(analysis))


# Stands for the layers in the dumped document until they are written one by one.
_LAYERS = "\u0000layers\u0000"


def iter_json(analysis: Analysis, chunk: int = 1000) -> Iterator[str]:
    """json.dumps(analysis.as_dict(), indent=2) in pieces, the layers `chunk` at a time:
    the same text without building the whole document (586 MB for 100,000 layers)."""
    head = dataclasses.replace(analysis, rows=analysis.rows[-1:]).as_dict()  # output_shape
    head["layers"] = _LAYERS
    before, after = json.dumps(head, indent=2).split(f'"layers": {json.dumps(_LAYERS)}', 1)
    if not analysis.rows:
        yield before + '"layers": []' + after
        return
    yield before + '"layers": [\n'
    for start in range(0, len(analysis.rows), chunk):
        part = analysis.rows[start:start + chunk]
        text = ",\n".join(json.dumps(row.as_dict(), indent=2) for row in part)
        yield ("" if start == 0 else ",\n") + _indent(text, "    ")
    yield "\n  ]" + after


def _indent(text: str, pad: str) -> str:
    return pad + text.replace("\n", "\n" + pad)


_CSV_FIELDS = ["name", "type", "input_shape", "output_shape", "params", "trainable_params",
               "non_trainable_params", "macs", "activations", "receptive_field",
               "effective_stride"]


def to_csv(analysis: Analysis, depth: int | None = None) -> str:
    """One row per layer (after folding), preceded by the input row, so that every numeric
    column sums to the corresponding total."""
    return "".join(iter_csv(analysis, depth))


def iter_csv(analysis: Analysis, depth: int | None = None, chunk: int = 1000) -> Iterator[str]:
    """to_csv's text in pieces of `chunk` rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for count, row in enumerate([input_row(analysis)] + fold(analysis, depth), 1):
        writer.writerow([row.name, row.type, "x".join(map(str, row.input_shape)),
                         "x".join(map(str, row.output_shape)), row.params,
                         row.trainable_params, row.non_trainable_params, row.macs,
                         row.activations, "x".join(map(str, row.receptive_field)),
                         "x".join(map(str, row.effective_stride))])
        if count % chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def to_markdown(analysis: Analysis, depth: int | None = None) -> str:
    net = analysis.network
    lines = [f"### {net.name} — input {fmt_shape(net.input_shape)}", ""]
    if net.source:
        lines += [f"Source: {net.source}", ""]
    lines += ["| Layer | Type | Input | Output | Params | MACs | Activations | RF /stride |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in [input_row(analysis)] + fold(analysis, depth):
        lines.append(
            f"| {row.name} | {row.type} | "
            f"{'' if row.type == 'input' else fmt_shape(row.input_shape)} | "
            f"{fmt_shape(row.output_shape)} | {row.params:,} | {row.macs:,} | "
            f"{row.activations:,} | {'' if row.type == 'input' else rf_text(row)} |")
    lines.append("")
    lines += [f"    {line}" for line in totals_lines(analysis)]
    lines.append("")
    lines += [f"- warning: {w}" for w in analysis.warnings]
    lines += [f"- note: {n}" for n in analysis.notes]
    lines += ["", f"_{CONVENTIONS}_", ""]
    return "\n".join(lines)
