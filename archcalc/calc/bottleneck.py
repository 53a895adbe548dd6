"""What 1×1 bottlenecks save: each reducing 1×1 convolution against its absence.

A case is a chain inside one branch/sequence (activations and normalisation in between are
passed over, anything else breaks the chain):

    reduce 1×1 (C_in → r, r < C_in) → k×k conv (r → f)                  Inception branch
    reduce 1×1 (C_in → r)           → k×k conv (r → f) → 1×1 (f → C_out > f)   ResNet bottleneck
    reduce 1×1 (C_in → r)           → 1×1 (r → C_out > r)                 squeeze/expand

"With" is what the spec does: the MACs and parameters of the chain's convolutions, read off
the calculator's rows (the numbers of `summary`). "Without" is the chain's main convolution
applied directly to the unreduced input, producing the chain's output: the same kernel,
padding, dilation and groups, the chain's total stride, C_in input channels and C_out
filters. Its numbers come from a one-layer network run through the same calculator.
Parameters are convolution weights and biases only: normalisation layers would be there
either way, so both sides leave them out.

The textbook case (cs231n / Szegedy et al. 2014): 192×28×28, 5×5 conv to 32 filters:
direct 28·28·32·5·5·192 = 120,422,400 MACs; with a 1×1 reduce to 16 first,
28·28·16·192 + 28·28·32·5·5·16 = 2,408,448 + 10,035,200 = 12,443,648 MACs: 9.7× fewer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from archcalc.calc.analyze import Analysis, Row, analyze
from archcalc.calc.explain import ConvTerms, chain, conv_terms, make_layer, need_chw, positive
from archcalc.calc.shapes import fmt_shape
from archcalc.errors import ArchcalcError, ShapeError
from archcalc.spec.layers import pair
from archcalc.spec.tree import Leaf, Merge, Network, Node, Sequence

# Layers a chain passes over: they keep the shape and are there with or without a reduction.
PASS_THROUGH = frozenset({"relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "dropout",
                          "batchnorm", "lrn", "layernorm"})


@dataclass
class Case:
    """One reducing 1×1 and the convolutions it feeds, with the direct alternative."""

    leaves: list[Leaf]        # the chain's convolutions: reduce, main[, expand]
    rows: list[Row]           # their calculator rows
    direct_leaf: Leaf         # the main convolution applied to the unreduced input
    direct: Row               # its calculator row
    note: str | None = None

    @property
    def name(self) -> str:
        return self.rows[0].name

    @property
    def kind(self) -> str:
        """'reduce' (Inception: 1×1 → k×k) or 'reduce-expand' (ResNet: 1×1 → k×k → 1×1)."""
        return "reduce-expand" if len(self.rows) == 3 or _is_1x1(self.leaves[1]) else "reduce"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.rows[0].input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape

    @property
    def channels(self) -> str:
        """'192 → 16 → 32' (the channel counts along the chain)."""
        return " → ".join([str(self.input_shape[0])] + [str(r.output_shape[0]) for r in self.rows])

    @property
    def kernels(self) -> str:
        """'1×1, 5×5' (the chain's kernels)."""
        return ", ".join("×".join(map(str, pair(leaf.spec.kernel))) for leaf in self.leaves)

    @property
    def with_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def with_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def without_macs(self) -> int:
        return self.direct.macs

    @property
    def without_params(self) -> int:
        return self.direct.params

    @property
    def macs_factor(self) -> Fraction:
        return Fraction(self.without_macs, self.with_macs)

    @property
    def params_factor(self) -> Fraction:
        return Fraction(self.without_params, self.with_params)

    def terms(self) -> tuple[list[ConvTerms], ConvTerms]:
        """The products behind every number (for --formulas and the ad hoc command)."""
        return ([conv_terms(leaf.spec, row) for leaf, row in zip(self.leaves, self.rows)],
                conv_terms(self.direct_leaf.spec, self.direct))

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "layers": [r.name for r in self.rows],
            "kernels": self.kernels, "channels": self.channels,
            "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "with_macs": self.with_macs, "without_macs": self.without_macs,
            "macs_factor": float(self.macs_factor),
            "with_params": self.with_params, "without_params": self.without_params,
            "params_factor": float(self.params_factor), "note": self.note,
        }


@dataclass
class Bottlenecks:
    analysis: Analysis
    cases: list[Case]
    skipped: list[str] = field(default_factory=list)  # 1×1 → larger conv that does not reduce

    @property
    def with_macs(self) -> int:
        return sum(c.with_macs for c in self.cases)

    @property
    def without_macs(self) -> int:
        return sum(c.without_macs for c in self.cases)

    @property
    def with_params(self) -> int:
        return sum(c.with_params for c in self.cases)

    @property
    def without_params(self) -> int:
        return sum(c.without_params for c in self.cases)

    @property
    def network_macs_without(self) -> int:
        """The whole network with every reduction undone. Exact: each direct convolution
        gives the chain's own output shape, so no other layer changes."""
        return self.analysis.totals.macs - self.with_macs + self.without_macs

    @property
    def network_params_without(self) -> int:
        return self.analysis.totals.params - self.with_params + self.without_params

    def as_dict(self) -> dict:
        t = self.analysis.totals
        return {
            "name": self.analysis.network.name,
            "input_shape": list(self.analysis.network.input_shape),
            "cases": [c.as_dict() for c in self.cases],
            "total": {"with_macs": self.with_macs, "without_macs": self.without_macs,
                      "with_params": self.with_params, "without_params": self.without_params},
            "network": {"macs": t.macs, "macs_without_reductions": self.network_macs_without,
                        "params": t.params,
                        "params_without_reductions": self.network_params_without},
            "skipped": list(self.skipped),
        }


def _is_conv(node: Node) -> bool:
    return isinstance(node, Leaf) and node.kind == "conv2d"


def _is_1x1(leaf: Leaf) -> bool:
    return pair(leaf.spec.kernel) == (1, 1)


def _items(seq: Sequence) -> list[Node]:
    """A sequence's layers in order, nested sequences opened (they run in the same flow)."""
    out: list[Node] = []
    for child in seq.children:
        out.extend(_items(child) if isinstance(child, Sequence) else [child])
    return out


def _next_conv(items: list[Node], start: int) -> int | None:
    """Index of the next conv after `start`, passing over shape-keeping layers only."""
    for j in range(start + 1, len(items)):
        node = items[j]
        if _is_conv(node):
            return j
        if not (isinstance(node, Leaf) and node.kind in PASS_THROUGH):
            return None
    return None


def _chains(seq: Sequence, rows: dict) -> list[tuple[list[Leaf], bool]]:
    """(convolutions, reduces) for every 1×1 that feeds a larger kernel or an expansion."""
    items = _items(seq)
    found: list[tuple[list[Leaf], bool]] = []
    for i, node in enumerate(items):
        if isinstance(node, Merge):
            for branch in node.branches:
                found += _chains(branch, rows)
            continue
        if not (_is_conv(node) and _is_1x1(node)):
            continue
        j = _next_conv(items, i)
        if j is None:
            continue
        reduce, main = node, items[j]
        r_in, r_out = rows[reduce.path].input_shape[0], rows[reduce.path].output_shape[0]
        grows = rows[main.path].output_shape[0] > rows[main.path].input_shape[0]
        if _is_1x1(main) and not grows:
            continue                      # 1×1 → 1×1 that does not expand: not a bottleneck
        leaves = [reduce, main]
        k = _next_conv(items, j) if not _is_1x1(main) else None
        if k is not None and _is_1x1(items[k]):
            out_row = rows[items[k].path]
            if out_row.output_shape[0] > out_row.input_shape[0]:
                leaves.append(items[k])   # the ResNet expansion back to C_out
        found.append((leaves, r_out < r_in))
    return found


def _direct(network: Network, leaves: list[Leaf], rows: list[Row]) -> tuple[Leaf, Row, str | None]:
    """The main conv applied to the unreduced input with the chain's stride and output."""
    main = leaves[1]
    # A stride anywhere along the chain (v1 ResNets put it in the 1×1) is the direct conv's.
    stride = tuple(math.prod(pair(leaf.spec.stride)[axis] for leaf in leaves) for axis in (0, 1))
    c_in, c_out = rows[0].input_shape[0], rows[-1].output_shape[0]
    update = {"filters": c_out, "stride": stride, "name": "direct"}
    groups = main.spec.groups
    if groups > 1 and (c_in % groups or c_out % groups):
        update["groups"] = 1
    spec = main.spec.model_copy(update=update)
    leaf = Leaf(leaves[0].path[:-1] + ("direct",), spec)
    try:
        row = analyze(Network("direct", rows[0].input_shape, Sequence((), (leaf,), "network"),
                              network.separator)).rows[0]
    except ShapeError as exc:  # pragma: no cover - the chain itself fitted, so this cannot
        raise exc.located(layer=rows[0].name)
    note = None
    if row.output_shape != rows[-1].output_shape:
        note = (f"the direct convolution gives {fmt_shape(row.output_shape)}, the chain "
                f"{fmt_shape(rows[-1].output_shape)} (stride or padding differ along the chain)")
    elif "groups" in update:
        note = f"groups {groups} does not divide the unreduced channels; the direct conv uses 1"
    return leaf, row, note


def find(analysis: Analysis) -> Bottlenecks:
    """Every reducing 1×1 of a network, in execution order, with and without its reduction."""
    network = analysis.network
    rows = {row.path: row for row in analysis.rows}
    cases: list[Case] = []
    skipped: list[str] = []
    for leaves, reduces in _chains(network.root, rows):
        chain_rows = [rows[leaf.path] for leaf in leaves]
        if not reduces:
            skipped.append(f"{chain_rows[0].name} ({chain_rows[0].input_shape[0]} → "
                           f"{chain_rows[0].output_shape[0]} channels)")
            continue
        direct_leaf, direct_row, note = _direct(network, leaves, chain_rows)
        cases.append(Case(leaves, chain_rows, direct_leaf, direct_row, note))
    return Bottlenecks(analysis, cases, skipped)


def adhoc(input_shape: tuple[int, ...], *, kernel: int, filters: int, reduce: int,
          expand: int | None = None, stride: int = 1, padding="same",
          bias: bool = True) -> Bottlenecks:
    """The textbook case on its own: a 1×1 reduce to `reduce` channels, then a kernel×kernel
    conv to `filters` (and, with `expand`, a 1×1 back up to `expand` channels, ResNet-style),
    against the kernel×kernel conv applied directly to the input."""
    c, h, w = need_chw(input_shape, "bottleneck")
    positive(kernel=kernel, filters=filters, reduce=reduce, expand=expand, stride=stride)
    if reduce >= c:
        raise ArchcalcError(f"--reduce {reduce} is not fewer than the {c} input channels: "
                            "a 1×1 that does not reduce saves nothing",
                            fix=f"choose --reduce below {c}, e.g. {max(1, c // 8)}")
    if kernel > h or kernel > w:
        raise ArchcalcError(f"--kernel {kernel} is larger than the {h}×{w} input",
                            fix=f"use a kernel of at most {min(h, w)}, or a larger --input")
    if kernel == 1:
        raise ArchcalcError("--kernel 1: after the 1×1 reduce there is no larger kernel to "
                            "save on", fix="give the larger convolution's kernel, e.g. --kernel 3")
    if expand is not None and expand <= filters:
        raise ArchcalcError(f"--expand {expand} does not expand the {filters} filters",
                            fix=f"choose --expand above {filters} (ResNet: 4 × --filters)")
    layers = [make_layer("conv2d", name="reduce", filters=reduce, kernel=1, bias=bias),
              make_layer("relu", name="relu1"),
              make_layer("conv2d", name="conv", filters=filters, kernel=kernel, stride=stride,
                         padding=padding, bias=bias),
              make_layer("relu", name="relu2")]
    if expand is not None:
        layers.append(make_layer("conv2d", name="expand", filters=expand, kernel=1, bias=bias))
    result = find(analyze(chain("bottleneck", input_shape, layers)))
    assert len(result.cases) == 1, result.cases
    return result
