"""Designs side by side: one column per spec (or per input), the calculator's totals as rows.

Rows: parameters (trainable / non-trainable), MACs, activations per image, weight layers
(conv + dense count), depth (weight layers on the longest input→output path: ResNet-50's 50,
GoogLeNet's 22), receptive field at the last feature map (the output of the last layer before
the first flatten / global pooling: what one position of the final feature map sees), and the
share of parameters in dense layers. Ratios are against the first column that applies.
Stage rows (params, MACs, activations per top-level scope: layer1..layer4, block1..block5)
appear for every stage name that at least two columns share.

A column whose shapes do not work at its input is "n/a" with the calculator's reason; the
other columns are still compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from fractions import Fraction

from archcalc.calc.analyze import Analysis, Row, analyze
from archcalc.calc.explain import reason
from archcalc.calc.shapes import fmt_shape
from archcalc.errors import ShapeError
from archcalc.spec import load
from archcalc.spec.tree import Leaf, Merge, Node, Sequence

WEIGHT_KINDS = frozenset({"conv2d", "dense"})
# Layers that end the spatial part of a network: the feature map before them is the last.
SPATIAL_END = frozenset({"flatten", "global_avgpool"})


def weight_layers(analysis: Analysis) -> int:
    """Number of conv and dense layers (projection shortcuts included)."""
    return sum(1 for r in analysis.rows if r.type in WEIGHT_KINDS)


def depth(node: Node) -> int:
    """Weight layers on the longest path: a sequence adds up, a merge takes its deepest branch."""
    if isinstance(node, Leaf):
        return 1 if node.kind in WEIGHT_KINDS else 0
    if isinstance(node, Sequence):
        return sum(depth(child) for child in node.children)
    assert isinstance(node, Merge)
    return max((depth(branch) for branch in node.branches), default=0)


def last_feature_map(analysis: Analysis) -> Row | None:
    """The last row with a C×H×W output before the first flatten / global pooling."""
    found = None
    for row in analysis.rows:
        if row.type in SPATIAL_END:
            break
        if len(row.output_shape) == 3:
            found = row
    return found


def dense_params(analysis: Analysis) -> int:
    return sum(r.params for r in analysis.rows if r.type == "dense")


@dataclass
class Stage:
    name: str
    params: int
    macs: int
    activations: int
    output_shape: tuple[int, ...]


def stages(analysis: Analysis) -> dict[str, Stage]:
    """Per top-level scope (rows whose path has more than one level), in order."""
    out: dict[str, Stage] = {}
    for row in analysis.rows:
        if len(row.path) < 2:
            continue
        name = row.path[0]
        stage = out.setdefault(name, Stage(name, 0, 0, 0, row.output_shape))
        stage.params += row.params
        stage.macs += row.macs
        stage.activations += row.activations
        stage.output_shape = row.output_shape
    return out


@dataclass
class Column:
    """One spec at one input: its analysis, or why it does not apply."""

    label: str
    ref: str
    input_shape: tuple[int, ...]
    analysis: Analysis | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.analysis is not None

    @cached_property
    def stages(self) -> dict[str, Stage]:
        """Per-stage totals, walked once: every stage row of every report looks them up here,
        so a comparison stays linear in rows however many stage names the specs share."""
        return stages(self.analysis) if self.analysis is not None else {}

    def metrics(self) -> dict:
        """The compared figures as plain data (exact integers; shares as fractions).

        A copy: callers reshape it, and the base column's figures are asked for once per
        other column, so they are computed once (_metrics)."""
        return dict(self._metrics)

    @cached_property
    def _metrics(self) -> dict:
        a = self.analysis
        assert a is not None
        t = a.totals
        fmap = last_feature_map(a)
        dense = dense_params(a)
        return {
            "input_shape": a.network.input_shape, "output_shape": a.output_shape,
            "params": t.params, "trainable_params": t.trainable_params,
            "non_trainable_params": t.non_trainable_params, "macs": t.macs,
            "activations": t.activations, "activation_bytes": t.activation_bytes,
            "weight_layers": weight_layers(a), "depth": depth(a.network.root),
            "receptive_field": fmap.receptive_field if fmap else None,
            "effective_stride": fmap.effective_stride if fmap else None,
            "receptive_field_at": fmap.name if fmap else None,
            "dense_params": dense,
            "dense_share": Fraction(dense, t.params) if t.params else Fraction(0),
        }


@dataclass
class Comparison:
    columns: list[Column]
    dtype: str = "float32"
    stage_names: list[str] = field(default_factory=list)

    @property
    def base(self) -> Column | None:
        """The column ratios are taken against: the first that applies."""
        return next((c for c in self.columns if c.ok), None)

    def stage(self, column: Column, name: str) -> Stage | None:
        return column.stages.get(name) if column.ok else None

    def as_dict(self) -> dict:
        base = self.base
        out = []
        for col in self.columns:
            entry: dict = {"label": col.label, "spec": col.ref,
                           "input_shape": list(col.input_shape), "ok": col.ok,
                           "error": col.error}
            if col.ok:
                m = col.metrics()
                m["dense_share"] = float(m["dense_share"])
                entry.update({k: list(v) if isinstance(v, tuple) else v for k, v in m.items()})
                entry["stages"] = {name: {"params": s.params, "macs": s.macs,
                                          "activations": s.activations,
                                          "output_shape": list(s.output_shape)}
                                   for name in self.stage_names
                                   if (s := self.stage(col, name)) is not None}
                if base is not None and col is not base:
                    bm = base.metrics()
                    entry["ratios"] = {k: ratio(m[k], bm[k]) for k in RATIO_KEYS}
            out.append(entry)
        return {"base": base.label if base else None, "dtype": self.dtype, "columns": out,
                "stages": list(self.stage_names)}


RATIO_KEYS = ("params", "trainable_params", "non_trainable_params", "macs", "activations",
              "weight_layers", "depth")


def ratio(value: int, base: int) -> float | None:
    return None if not base else value / base


def _shared_stages(columns: list[Column]) -> list[str]:
    seen: dict[str, int] = {}
    for col in columns:
        if col.ok:
            for name in col.stages:
                seen[name] = seen.get(name, 0) + 1
    return [name for name, count in seen.items() if count >= 2]


def compare(refs: list[str], inputs: list[tuple[int, ...]] | None = None,
            dtype: str = "float32") -> Comparison:
    """Analyse every spec at every input (the spec's own input when none is given).

    A spec that cannot be loaded is the user's mistake and raises; a spec whose shapes fail
    at an input becomes an n/a column with the reason."""
    inputs = list(inputs or [])
    columns: list[Column] = []
    for ref in refs:
        for shape in inputs or [None]:
            network = load(ref, shape)
            label = network.name
            if len(inputs) > 1:
                label += f" @ {fmt_shape(network.input_shape)}"
            column = Column(label, ref, tuple(network.input_shape))
            try:
                column.analysis = analyze(network, dtype=dtype)
            except ShapeError as exc:
                column.error = reason(exc)
            columns.append(column)
    return Comparison(columns, dtype, _shared_stages(columns))
