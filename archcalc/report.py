"""Views of an Analysis: a rich table, JSON, CSV, Markdown. Rendering only, no arithmetic
beyond sums of the rows (so every printed total is the sum of the printed column)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from rich.console import Console
from rich.text import Text

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, Row
from archcalc.calc.backward import backward_costs
from archcalc.calc.shapes import fmt_shape
from archcalc.tables import Grid

CONVENTIONS = (
    "Shapes are C×H×W per image. 1 MAC = one multiply-accumulate of a conv or dense layer "
    "(conv: H_out·W_out·C_out·K_h·K_w·C_in/groups; dense: in·out); bias adds, activations, "
    "pooling, normalisation and merges are not MACs; FLOPs = 2·MACs. Activations = the input "
    "plus every new tensor a layer makes (in-place activations, dropout, flatten and crop add none). "
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


def step_text(value: int | Fraction) -> str:
    """An effective stride as written: 4, or 1/2 after upsampling by 2 (neighbouring outputs
    half an input pixel apart). Never through a float: 1/3 stays 1/3."""
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    return str(int(value))


def _stride_in_rf(value: int | Fraction) -> str:
    """A fractional stride in parentheses after the field: '7 /(7/4)', not '7 /7/4'."""
    text = step_text(value)
    return f"({text})" if "/" in text else text


def _rf_size(value: int | Fraction) -> int:
    """The receptive field as printed: the most input pixels an output can see (its ceiling)."""
    return math.ceil(value)


def rf_text(row: Row) -> str:
    """'11 /4', '7×1 /1', '6 /(1/2)' (a fractional stride after upsampling); '—' past the
    layer where the calculator stopped following it (see analyze.RF_DIGITS)."""
    if row.receptive_field is None:
        return "—"
    (rh, rw), (jh, jw) = map(_rf_size, row.receptive_field), row.effective_stride
    r = str(rh) if rh == rw else f"{rh}×{rw}"
    j = _stride_in_rf(jh) if jh == jw else f"{_stride_in_rf(jh)}×{_stride_in_rf(jw)}"
    return f"{r} /{j}"


def _csv_pair(values) -> str:
    """A pair for CSV: 224x224, a fractional stride as 1/2x1/2; empty when not followed."""
    return "" if values is None else "x".join(step_text(v) for v in values)


def _rf_cells(row: Row) -> list[str]:
    """The receptive field and the effective stride as two CSV fields."""
    rf = row.receptive_field
    return [_csv_pair(None if rf is None else map(_rf_size, rf)), _csv_pair(row.effective_stride)]


def _largest_pairs(pairs: list) -> tuple | None:
    """Per axis, the largest of the group's pairs; None when any is None (not followed)."""
    if any(p is None for p in pairs):
        return None
    return (max(p[0] for p in pairs), max(p[1] for p in pairs))


# ---- folding (--depth) --------------------------------------------------------------------
def fold_groups(analysis: Analysis, depth: int | None) -> list[list[int]]:
    """Indices into analysis.rows, one list per printed row: a row with at most `depth` name
    levels alone, a run of deeper rows of the same block together (torchinfo's depth)."""
    if depth is None:
        return [[index] for index in range(len(analysis.rows))]
    groups: list[list[int]] = []
    rows = analysis.rows
    for index, row in enumerate(rows):
        if len(row.path) <= depth:
            groups.append([index])
            continue
        head = rows[groups[-1][0]].path if groups else None
        if head is not None and len(head) > depth and head[:depth] == row.path[:depth]:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def fold(analysis: Analysis, depth: int | None) -> list[Row]:
    """Rows with more than `depth` name levels fold into one row per block (torchinfo's depth)."""
    if depth is None:
        return list(analysis.rows)
    out: list[Row] = []
    for indices in fold_groups(analysis, depth):
        group = [analysis.rows[i] for i in indices]
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
            weights=sum(r.weights for r in group), biases=sum(r.biases for r in group),
            macs=sum(r.macs for r in group), activations=sum(r.activations for r in group),
            receptive_field=_largest_pairs([r.receptive_field for r in group]),
            effective_stride=_largest_pairs([r.effective_stride for r in group]),
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


# ---- training cost (summary --training) ------------------------------------------------------
TRAINING_HEADERS = ("dX MACs", "dW MACs")
TRAINING_FIELDS = ("backward_dx_macs", "backward_dw_macs")  # CSV columns and JSON keys
TRAINING_CONVENTION = (
    "Backward (training): dX MACs = the gradient w.r.t. a layer's input, dW MACs = w.r.t. its "
    "weights; for conv, transposed conv and dense each equals the layer's forward MACs, and a "
    "bias gradient is sums only. No dX where the input depends on no trainable parameter (the "
    "first weighted layer of each path from the input, and every layer before it); no dW for "
    "frozen layers. Per image, as MACs.")


def training_pairs(analysis: Analysis) -> list[tuple[int, int]]:
    """(dX, dW) MACs per image for each row of analysis.rows (calc.backward's figures)."""
    return [(c.dx_macs, c.dw_macs) for c in backward_costs(analysis)]


def training_cells(analysis: Analysis, depth: int | None = None) -> list[tuple[int, int]]:
    """(dX, dW) per printed row: the input row (0, 0), then one per row of fold(analysis,
    depth), a folded block the sum of its rows (so each column sums to its total)."""
    pairs = training_pairs(analysis)
    return [(0, 0)] + [(sum(pairs[i][0] for i in group), sum(pairs[i][1] for i in group))
                       for group in fold_groups(analysis, depth)]


def training_totals(analysis: Analysis, pairs: list[tuple[int, int]] | None = None) -> dict:
    """The JSON totals of the backward pass: per image, and backward MACs for the batch."""
    pairs = training_pairs(analysis) if pairs is None else pairs
    dx, dw = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    return {"backward_dx_macs": dx, "backward_dw_macs": dw, "backward_macs": dx + dw,
            "backward_flops": 2 * (dx + dw), "batch_backward_macs": (dx + dw) * analysis.totals.batch}


def training_lines(analysis: Analysis) -> list[str]:
    """The backward totals under the table, and a training step (forward + backward)."""
    t = training_totals(analysis)
    backward, step = t["backward_macs"], t["backward_macs"] + analysis.totals.macs
    lines = [
        f"Backward MACs per image: {backward:,} ({human(backward)}) = dX "
        f"{t['backward_dx_macs']:,} + dW {t['backward_dw_macs']:,}",
        f"Training step per image: forward + backward = {step:,} MACs ({human(step)})    "
        f"FLOPs = 2·MACs = {2 * step:,}",
    ]
    batch = analysis.totals.batch
    if batch > 1:
        lines.append(f"Training step per batch of {batch}: {step * batch:,} MACs "
                     f"({human(step * batch)})")
    return lines


# ---- columns (summary --columns, torchinfo's col_names) ----------------------------------------
@dataclasses.dataclass(frozen=True)
class Column:
    """One column `summary --columns` can choose: its header, what it means (--help), and
    its value for a row: an int (a count: exact in every format, '—' for 0 in a table) or
    text (a shape, a kernel, the receptive field)."""

    name: str
    header: str
    meaning: str
    value: Callable[[Row, int], int | str]  # (row, bytes per value of the dtype)
    numeric: bool = True
    # What a text column's cell depends on (a table formats each distinct one once); a
    # count's cell depends on its value alone.
    key: Callable[[Row], Any] | None = None


COLUMNS: dict[str, Column] = {c.name: c for c in [
    Column("input", "Input", "the layer's input shape C×H×W",
           lambda r, _: "" if r.type == "input" else fmt_shape(r.input_shape), numeric=False,
           key=lambda r: (r.type == "input", r.input_shape)),
    Column("output", "Output", "its output shape",
           lambda r, _: fmt_shape(r.output_shape), numeric=False,
           key=lambda r: r.output_shape),
    Column("kernel", "Kernel", "Kh×Kw of a convolution or pooling (adaptive: its largest bin)",
           lambda r, _: "×".join(map(str, r.kernel)) if r.kernel else "", numeric=False,
           key=lambda r: (r.type == "input", r.kernel)),
    Column("params", "Params", "all parameters: trainable + non-trainable",
           lambda r, _: r.params),
    Column("weights", "Weights", "kernels, weight matrices and normalisation γ (no biases)",
           lambda r, _: r.weights),
    Column("biases", "Biases", "bias vectors and normalisation β",
           lambda r, _: r.biases),
    Column("trainable", "Trainable", "trainable parameters (without batch-norm running "
           "statistics or frozen layers)", lambda r, _: r.trainable_params),
    Column("macs", "MACs", "multiply-accumulates per image", lambda r, _: r.macs),
    Column("flops", "FLOPs", "2·MACs", lambda r, _: 2 * r.macs),
    Column("activations", "Activations", "values of the new tensor the layer makes (none in "
           "place; the input row: the input)", lambda r, _: r.activations),
    Column("bytes", "Act. bytes", "those activations in bytes of --dtype",
           lambda r, size: r.activations * size),
    Column("rf", "RF /stride", "receptive field and effective stride at the output, in "
           "input pixels", lambda r, _: "" if r.type == "input" else rf_text(r), numeric=False,
           key=lambda r: (r.type == "input", r.receptive_field, r.effective_stride)),
]}
DEFAULT_COLUMNS = ("input", "output", "params", "macs", "activations", "rf")
# What a narrow terminal hides first (torchinfo and Keras users read name, type, output,
# params and MACs first): the default table hides RF /stride, then Input, then Activations.
_DROP_ORDER = ["rf", "input", "activations", "kernel", "bytes", "flops", "biases", "weights",
               "trainable"]


def parse_columns(text: str) -> tuple[str, ...]:
    """'weights,biases' → ('weights', 'biases'); an unknown or repeated name is a ValueError
    whose message lists the valid names."""
    names = tuple(name.strip().lower() for name in text.split(","))
    valid = ", ".join(COLUMNS)
    for index, name in enumerate(names):
        if name not in COLUMNS:
            what = f"unknown column '{name[:40]}'" if name else "an empty column name"
            raise ValueError(f"{what}; valid: {valid}")
        if name in names[:index]:
            raise ValueError(f"column '{name}' is given twice; valid: {valid}")
    return names


def _table_cell(column: Column, row: Row, size: int) -> str:
    value = column.value(row, size)
    if column.numeric:
        return f"{value:,}" if value else "—"
    if column.name == "kernel" and not value and row.type != "input":
        return "—"  # a layer without a window, as a layer without params or MACs
    return value


def _markdown_cell(column: Column, row: Row, size: int) -> str:
    value = column.value(row, size)
    return f"{value:,}" if column.numeric else value


def _csv_cells(column: Column, row: Row, size: int) -> list:
    """One column's CSV fields: exact integers, shapes as 3x224x224, the receptive field and
    the effective stride as two fields (as the default CSV has them)."""
    if column.name == "rf":
        return _rf_cells(row)
    if column.name in ("input", "output"):
        return ["x".join(map(str, row.input_shape if column.name == "input"
                             else row.output_shape))]
    if column.name == "kernel":
        return ["x".join(map(str, row.kernel)) if row.kernel else ""]
    return [column.value(row, size)]


_CSV_NAMES = {"input": ["input_shape"], "output": ["output_shape"], "kernel": ["kernel"],
              "trainable": ["trainable_params"], "bytes": ["activation_bytes"],
              "rf": ["receptive_field", "effective_stride"]}


def _chosen(columns: Sequence[str] | None) -> list[Column]:
    return [COLUMNS[name] for name in (columns or DEFAULT_COLUMNS)]


def summary_grid(analysis: Analysis, depth: int | None = None,
                 columns: Sequence[str] | None = None, training: bool = False) -> Grid:
    """The per-layer table with the totals, warnings, notes and conventions below it.
    `columns` (names of COLUMNS, in order) follow Layer and Type; by default Input, Output,
    Params, MACs, Activations, RF /stride. A narrow terminal hides columns in _DROP_ORDER.
    `training` adds dX MACs and dW MACs last (never hidden: the user asked for them) and
    their totals under the table."""
    net = analysis.network
    chosen = _chosen(columns)
    size = DTYPE_BYTES[analysis.totals.dtype]
    extra = training_cells(analysis, depth) if training else None
    rows = _Cells([input_row(analysis)] + fold(analysis, depth), chosen, size, extra)
    names = [c.name for c in chosen]
    drop = [2 + names.index(name) for name in _DROP_ORDER if name in names]
    left = {1} | {2 + i for i, c in enumerate(chosen) if c.name == "kernel"}
    headers = ["Layer", "Type"] + [c.header for c in chosen]
    return Grid(f"{net.name} — input {fmt_shape(net.input_shape)}",
                headers + (list(TRAINING_HEADERS) if training else []), rows,
                _footer(analysis, training), left=left, drop=drop)


def _footer(analysis: Analysis, training: bool = False) -> list:
    lines = totals_lines(analysis) + (training_lines(analysis) if training else [])
    footer: list = [Text("\n".join(lines))]
    footer += [Text(f"warning: {warning}", style="yellow") for warning in analysis.warnings]
    footer += [Text(f"note: {note}", style="dim") for note in analysis.notes]
    footer += [Text(line, style="dim") for line in convention_lines(analysis)]
    if training:
        footer.append(Text(TRAINING_CONVENTION, style="dim"))
    return footer


# The kinds whose counting is not obvious from CONVENTIONS: said under the table only when
# the network has one (issue 9), in one line.
_KIND_RULES = [
    ({"conv_transpose2d"}, "conv_transpose2d MACs = H_in·W_in·C_in·K_h·K_w·C_out/groups (each "
                           "input pixel scatters one kernel)"),
]
# How the receptive field is counted through them (README, "Receptive field"), one line.
_RF_RULES = [
    ({"adaptive_avgpool", "adaptive_maxpool"},
     "adaptive pooling's window is its largest bin, its stride the largest step between bins"),
    ({"upsample", "conv_transpose2d"},
     "upsampling and transposed convs divide the stride (printed as a fraction when it is one, "
     "e.g. (1/2)); the RF shown is then the most input pixels one output can see"),
]
_NOT_MACS = [("mul", "mul"), ("upsample", "upsampling"), ("pad", "padding"),
             ("crop", "cropping"), ("embedding", "embedding lookups"),
             ("to_sequence", "to_sequence")]
# Recurrent layers (README, "Sequences"): said when the network has one, with the sequence
# shapes the table prints and the dense layer applied at every step, if there is one.
RECURRENT_RULE = ("rnn, lstm and gru MACs = T·D·G·H·(F + H) per sequence (T steps of F "
                  "features, H units, G gate blocks: 1 rnn, 3 gru, 4 lstm; D = 2 when "
                  "bidirectional, else 1); T×F shapes are T steps of F features")
TIME_DISTRIBUTED_RULE = "a time_distributed dense costs T·in·out (the same layer at each step)"


def kind_conventions(analysis: Analysis) -> str | None:
    """'conv_transpose2d MACs = …; no MACs for mul, upsampling or cropping.', for the kinds
    the network has, or None."""
    kinds = {row.type for row in analysis.rows}
    parts = [rule for rule_kinds, rule in _KIND_RULES if rule_kinds & kinds]
    if kinds & {"rnn", "lstm", "gru"}:
        parts.append(RECURRENT_RULE)
    # a dense on a T×F input is the time_distributed form (calc.layers.dense refuses others)
    if any(row.type == "dense" and len(row.input_shape) == 2 for row in analysis.rows):
        parts.append(TIME_DISTRIBUTED_RULE)
    free = [word for kind, word in _NOT_MACS if kind in kinds]
    if free:
        listed = free[0] if len(free) == 1 else ", ".join(free[:-1]) + " or " + free[-1]
        parts.append(f"{'no' if parts else 'No'} MACs for {listed}")
    return "; ".join(parts) + "." if parts else None


def rf_conventions(analysis: Analysis) -> str | None:
    """'RF: adaptive pooling's window is …', for the kinds the network has, or None."""
    kinds = {row.type for row in analysis.rows}
    parts = [rule for rule_kinds, rule in _RF_RULES if rule_kinds & kinds]
    return "RF: " + "; ".join(parts) + "." if parts else None


def convention_lines(analysis: Analysis) -> list[str]:
    extra = [kind_conventions(analysis), rf_conventions(analysis)]
    return [CONVENTIONS] + [line for line in extra if line]


def summary_cells(row: Row, columns: Sequence[Column] | None = None, size: int = 4) -> list[str]:
    """One row of the summary table, as printed."""
    return [row.name, row.type] + [_table_cell(c, row, size) for c in columns or _chosen(None)]


# Every field of a Row but where it is (path, line) and its name: what a row's figures are.
_figures = operator.attrgetter(*[f.name for f in dataclasses.fields(Row)
                                 if f.name not in ("path", "name", "line")])
_MEMO_ROWS = 4096  # distinct rows remembered: a long network repeats a few kinds of layer


class _Cells(Sequence):
    """The summary table's rows, made when read: a 100,000-layer table is drawn in two
    passes (widths, then lines) without holding 800,000 cell strings."""

    def __init__(self, rows: list[Row], columns: list[Column], size: int,
                 extra: list[tuple[int, ...]] | None = None) -> None:
        self._rows, self._columns, self._size = rows, columns, size
        # One tuple of counts per row, printed after the columns (summary --training).
        self._extra = extra
        self._memo: dict[tuple, list[str]] = {}
        self._column_memo: list[dict] = [{} for _ in columns]  # per column: its key → cell

    def _cell(self, column: Column, memo: dict, row: Row) -> str:
        """_table_cell, each distinct count, shape or receptive field formatted once."""
        key = column.value(row, self._size) if column.numeric else (
            column.key(row) if column.key is not None else None)
        if key is None:
            return _table_cell(column, row, self._size)
        cell = memo.get(key)
        if cell is None:
            if len(memo) >= _MEMO_ROWS:
                memo.clear()
            cell = memo[key] = _table_cell(column, row, self._size)
        return cell

    def __len__(self) -> int:
        return len(self._rows)

    def _cells(self, index: int) -> list[str]:
        row = self._rows[index]
        # Past the name, the cells depend on the row's figures, which repeat from row to row
        # in a long network (shapes, counts, receptive fields): each distinct set is
        # formatted once.
        key = _figures(row)
        tail = self._memo.get(key)
        if tail is None:
            tail = [self._cell(column, cache, row) for column, cache in
                    zip(self._columns, self._column_memo)]
            if len(self._memo) < _MEMO_ROWS:
                self._memo[key] = tail
        cells = [row.name, row.type, *tail]
        if self._extra is not None:
            cells += [f"{value:,}" if value else "—" for value in self._extra[index]]
        return cells

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._cells(i) for i in range(len(self._rows))[index]]
        return self._cells(range(len(self._rows))[index])

    def __iter__(self) -> Iterator[list[str]]:
        return map(self._cells, range(len(self._rows)))


def render_text(renderable, width: int = 120) -> str:
    """Render to a string (no colour) — for tests and for printing all at once."""
    console = Console(width=width, record=False, color_system=None, force_terminal=False,
                      file=io.StringIO(), highlight=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ---- machine formats ------------------------------------------------------------------------
def to_json(analysis: Analysis, training: bool = False) -> str:
    return "".join(iter_json(analysis, training=training))


# Stands for the layers in the dumped document until they are written one by one.
_LAYERS = "\u0000layers\u0000"


def iter_json(analysis: Analysis, chunk: int = 1000, training: bool = False) -> Iterator[str]:
    """json.dumps(analysis.as_dict(), indent=2) in pieces, the layers `chunk` at a time:
    the same text without building the whole document (586 MB for 100,000 layers).
    `training` adds backward_dx_macs and backward_dw_macs to every layer and the backward
    totals (training_totals) to `totals`."""
    pairs = training_pairs(analysis) if training else None
    head = dataclasses.replace(analysis, rows=analysis.rows[-1:]).as_dict(peaks=False)
    head["totals"].update(analysis.peak_fields())  # of the whole network, not the last row
    if pairs is not None:
        head["totals"].update(training_totals(analysis, pairs))
    head["layers"] = _LAYERS
    before, after = json.dumps(head, indent=2).split(f'"layers": {json.dumps(_LAYERS)}', 1)
    if not analysis.rows:
        yield before + '"layers": []' + after
        return
    yield before + '"layers": [\n'
    memo: dict[tuple, str] = {}
    for start in range(0, len(analysis.rows), chunk):
        part = analysis.rows[start:start + chunk]
        text = ",\n".join(_row_json(row, pairs, start + i, memo)
                          for i, row in enumerate(part))
        yield ("" if start == 0 else ",\n") + text
    yield "\n  ]" + after


def _row_json(row: Row, pairs: list[tuple[int, int]] | None, index: int,
              memo: dict[tuple, str]) -> str:
    """A layer's JSON object as iter_json writes it (indented by 4): its name, then the rest,
    which depends only on the row's figures and is written once per distinct set of them."""
    key = (_figures(row), pairs[index] if pairs is not None else None)
    rest = memo.get(key)
    if rest is None:
        fields = _row_dict(row, pairs, index)
        if next(iter(fields)) != "name":  # the name is not first: no shared rest
            return "    " + _indented(fields, "    ")
        del fields["name"]
        rest = _indented(fields, "    ")[1:]  # after the "{"
        if len(memo) < _MEMO_ROWS:
            memo[key] = rest
    return '    {\n      "name": ' + _STRING(row.name) + "," + rest


def _row_dict(row: Row, pairs: list[tuple[int, int]] | None, index: int) -> dict:
    """A layer's JSON object; with the training pairs, its backward MACs last."""
    fields = row.as_dict()
    if pairs is not None:
        fields.update(zip(TRAINING_FIELDS, pairs[index]))
    return fields


_STRING = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str


# (indentation, key) → the text before a value: the same few keys start every layer's lines.
_KEYS: dict[tuple[str, str], str] = {}


def _indented(value, pad: str) -> str:
    """json.dumps(value, indent=2) for a value nested at indentation `pad` (its first line
    not indented): the same text, ~6× faster. json.dumps with an indent runs its pure-Python
    encoder, ~60 µs a layer (6 s for 100,000 layers); the rows hold only dicts with str keys,
    lists, str, int and None, written here, and anything else is left to json.dumps."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _STRING(value)
    if value is None:
        return "null"
    if kind is not dict and kind is not list and kind is not tuple:
        return json.dumps(value, indent=2).replace("\n", "\n" + pad)
    if not value:
        return "{}" if kind is dict else "[]"
    inner = pad + "  "
    if kind is dict:
        parts = []
        for key, item in value.items():
            prefix = _KEYS.get((inner, key))
            if prefix is None:
                if type(key) is not str:
                    return json.dumps(value, indent=2).replace("\n", "\n" + pad)
                prefix = inner + _STRING(key) + ": "
                if len(_KEYS) < 1000:  # a layer's few keys; never a user's many
                    _KEYS[(inner, key)] = prefix
            kind = type(item)
            parts.append(prefix + (int.__repr__(item) if kind is int else
                                   _STRING(item) if kind is str else
                                   "null" if item is None else _indented(item, inner)))
        return "{\n" + ",\n".join(parts) + "\n" + pad + "}"
    if all(type(item) is int for item in value):  # a shape, a kernel, a receptive field
        return ("[\n" + inner + (",\n" + inner).join(map(int.__repr__, value)) + "\n"
                + pad + "]")
    return ("[\n" + ",\n".join(inner + _indented(item, inner) for item in value)
            + "\n" + pad + "]")


_CSV_FIELDS = ["name", "type", "input_shape", "output_shape", "params", "trainable_params",
               "non_trainable_params", "macs", "activations", "receptive_field",
               "effective_stride"]


def to_csv(analysis: Analysis, depth: int | None = None,
           columns: Sequence[str] | None = None, training: bool = False) -> str:
    """One row per layer (after folding), preceded by the input row, so that every numeric
    column sums to the corresponding total."""
    return "".join(iter_csv(analysis, depth, columns=columns, training=training))


def iter_csv(analysis: Analysis, depth: int | None = None, chunk: int = 1000,
             columns: Sequence[str] | None = None, training: bool = False) -> Iterator[str]:
    """to_csv's text in pieces of `chunk` rows. Without `columns`, the fields of _CSV_FIELDS;
    with them, name, type and the chosen columns' fields in their order. `training` adds
    backward_dx_macs and backward_dw_macs last."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    chosen = [COLUMNS[name] for name in columns] if columns else None
    size = DTYPE_BYTES[analysis.totals.dtype]
    extra = training_cells(analysis, depth) if training else None
    more = list(TRAINING_FIELDS) if training else []
    if chosen is None:
        writer.writerow(_CSV_FIELDS + more)
    else:
        writer.writerow(["name", "type"] + [field for c in chosen
                                            for field in _CSV_NAMES.get(c.name, [c.name])]
                        + more)
    for count, row in enumerate([input_row(analysis)] + fold(analysis, depth), 1):
        tail = list(extra[count - 1]) if extra is not None else []
        if chosen is None:
            writer.writerow([row.name, row.type, "x".join(map(str, row.input_shape)),
                             "x".join(map(str, row.output_shape)), row.params,
                             row.trainable_params, row.non_trainable_params, row.macs,
                             row.activations, *_rf_cells(row), *tail])
        else:
            writer.writerow([row.name, row.type] + [cell for c in chosen
                                                    for cell in _csv_cells(c, row, size)]
                            + tail)
        if count % chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def to_markdown(analysis: Analysis, depth: int | None = None,
                columns: Sequence[str] | None = None, training: bool = False) -> str:
    net = analysis.network
    chosen = _chosen(columns)
    size = DTYPE_BYTES[analysis.totals.dtype]
    extra = training_cells(analysis, depth) if training else None
    headers = [c.header for c in chosen] + (list(TRAINING_HEADERS) if training else [])
    lines = [f"### {net.name} — input {fmt_shape(net.input_shape)}", ""]
    if net.source:
        lines += [f"Source: {net.source}", ""]
    lines += ["| Layer | Type | " + " | ".join(headers) + " |",
              "|---|---|" + "|".join("---:" for _ in headers) + "|"]
    for index, row in enumerate([input_row(analysis)] + fold(analysis, depth)):
        cells = [row.name, row.type] + [_markdown_cell(c, row, size) for c in chosen]
        if extra is not None:
            cells += [f"{value:,}" for value in extra[index]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"    {line}" for line in totals_lines(analysis)
              + (training_lines(analysis) if training else [])]
    lines.append("")
    lines += [f"- warning: {w}" for w in analysis.warnings]
    lines += [f"- note: {n}" for n in analysis.notes]
    lines.append("")
    lines += [f"_{line}_" for line in convention_lines(analysis)
              + ([TRAINING_CONVENTION] if training else [])]
    lines.append("")
    return "\n".join(lines)
