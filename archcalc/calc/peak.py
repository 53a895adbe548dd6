"""Peak memory under a stated freeing policy, step by step: inference and one training step.

A sum of every kept tensor (summary's activation memory, `memory`'s estimate) is what a
network would need if nothing were ever freed. A runtime frees tensors, so what bounds the
batch is the largest amount held at any one moment: the peak. This module walks the resolved
tree the way the NumPy executor (archcalc/nn/network.py) runs it and says, after every step,
which tensors are held and how many bytes they take.

The policy (the executor's, measured by archcalc.nn.network.MemoryRecorder):

Inference: a tensor is freed after its last reader. A merge's input lives until the first
layer of its last branch has read it (every branch reads it); a branch output lives until the
merge has combined them. Activations, dropout, flatten and crop make no new tensor when their
input has no other reader (archcalc's activation-memory convention, README "Conventions").
A step is one layer or merge: its input and its output are both held while it runs.

Training (forward, the loss, backward): every layer keeps what its backward reads until its
backward has run (KEEPS below, read off the executor's caches in archcalc/nn/*.py: conv and
dense their input, relu-like activations their output, batch norm x̂ and 1/σ, max pooling its
argmax, dropout its mask, a mul merge its factors, ...). No layer writes over an array a
backward reads, and a merge hands no branch its input to overwrite (network.py's ownership
rule). The loss holds the output and its gradient dy. Each layer's backward holds dy and
makes dx; dy is freed after use (a merge's dy lives until its last branch has read its part;
the sum of the branches' gradients is a new tensor). The first layer, a conv or dense, makes
no input gradient (the trainer asks for none). Parameters, their gradients (one per trainable
parameter) and the optimizer's slots per trainable parameter (archcalc/nn/optim.py: SGD 0;
momentum, Nesterov, Adagrad, RMSProp 1; Adam 2) are held throughout.

Held bytes at a step are a·N + b for a batch of N: a from the tensors, b from arrays the
batch does not size (batch norm's 1/σ per channel, resampling taps, a spare row a stride-1
unpadded conv's input gradient is computed in). The peak, the largest over the steps, is
therefore nondecreasing and convex in N (affine when no b is present), which is what lets
`largest_batch` search it by bisection.

Not counted (measure them apart: benchmarks/peak_memory.py): temporaries inside one layer's
call (the im2col columns, comparison masks, a padded copy), allocator overhead, references
an interpreter keeps past a tensor's last reader, the loss's own arrays.
"""

from __future__ import annotations

import gc
import heapq
import math
from dataclasses import dataclass, field

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, Row
from archcalc.calc.shapes import prod
from archcalc.calc.whatif import OPTIMIZER_COPIES
from archcalc.errors import ArchcalcError
from archcalc.calc.layers import recurrent_kept
from archcalc.spec.layers import IN_PLACE, RECURRENT, explicit_pads, pair
from archcalc.spec.tree import Leaf, Merge, Node, Path, Sequence

INDEX_BYTES = 8  # NumPy's default integer (int64) for argmax and tap indices

# What each kind's backward reads, as archcalc/nn keeps it in `cache` after a training
# forward (and dropout in `mask`): "input" / "output" are the step's tensors themselves,
# the rest are new arrays sized in _kept.
KEEPS: dict[str, tuple[str, ...]] = {
    "conv2d": ("input",), "conv_transpose2d": ("input",), "dense": ("input",),  # conv.py, dense.py
    **{kind: ("output",) for kind in IN_PLACE},        # activations.py _Elementwise: y
    "hardswish": ("input",), "silu": ("input",), "gelu": ("input",),  # activations.py _Smooth
    "batchnorm": ("xhat", "invstd_c"),                  # norm.py BatchNorm: (x̂, 1/σ per channel)
    "layernorm": ("xhat", "invstd_n"),                  # norm.py LayerNorm: (x̂, 1/σ per image)
    "lrn": ("input", "scale"),                          # norm.py LRN: (x, k + α'Σa²)
    "maxpool": ("argmax",),                             # pool.py MaxPool: smallest int type
    "adaptive_maxpool": ("argmax64",),                  # resample.py: int64 H·W index
    "maxout": ("argmax64",),                            # activations.py Maxout: int64 index
    "adaptive_avgpool": ("taps",), "upsample": ("taps",),  # resample.py _Separable: taps
    "dropout": ("mask",),                               # dense.py Dropout: mask, x's size
    "avgpool": (), "global_avgpool": (), "flatten": (), "crop": (), "pad": (),  # shapes only
    # recurrent.py: the input (for dW_ih) and every step's states (recurrent_kept: hidden
    # states, LSTM cells and gates, GRU gates and U_n·h + b_hn); with return_sequences the
    # hidden states are the output itself
    "rnn": ("input", "states"), "lstm": ("input", "states"), "gru": ("input", "states"),
    "embedding": ("input",),                            # recurrent.py Embedding: the ids
    "to_sequence": (),                                  # a transposed copy: shapes only
}
# Layers whose backward reads their input (base.py keeps_input): a view they pass on is kept.
KEEPS_INPUT = frozenset(k for k, v in KEEPS.items() if "input" in v)
# The first layer may skip the input gradient (network.py backward, can_skip_dx).
SKIPS_DX = frozenset({"conv2d", "conv_transpose2d", "dense", "embedding", *RECURRENT})
MODES = ("inference", "training")
TOP = 3  # the largest tensors a timeline step names (the rest are counted)
_VIEWS = frozenset({"crop", "dropout"})  # a view of the input (dropout at inference: itself)
_INPUT, _OUTPUT = ("input",), ("output",)
# The kinds _Walk.forward_lines walks inline, and what each keeps: its input, its output or
# nothing (None). The others keep arrays of their own (kept()) or their output (recurrent).
_LINES = {kind: {(): None, _INPUT: "input", _OUTPUT: "output"}[keeps]
          for kind, keeps in KEEPS.items()
          if keeps in ((), _INPUT, _OUTPUT) and kind not in RECURRENT}


class Tensor:
    """One array: bytes per image and bytes the batch does not size; identity = buffer.
    kept: how many pending backwards keep it (its walk's count: a kept tensor is held
    until the last of them has run). Slotted, and equal only to itself: a walk makes one
    per layer and step (300,000 for a 100,000-layer training step)."""

    __slots__ = ("label", "per_image", "fixed", "kept")

    def __init__(self, label: str, per_image: int, fixed: int = 0) -> None:
        self.label = label
        self.per_image = per_image
        self.fixed = fixed
        self.kept = 0

    def bytes(self, batch: int) -> int:
        return self.per_image * batch + self.fixed

    def __repr__(self) -> str:
        return f"Tensor({self.label!r}, {self.per_image}, {self.fixed})"


@dataclass
class Step:
    """After one layer or merge ran: what is held. bytes = static_bytes + held_bytes."""

    name: str
    phase: str                       # forward | backward
    held_bytes: int                  # activations and gradients held at this step
    static_bytes: int                # weights (+ gradients + optimizer state in training)
    held: tuple[tuple[str, int], ...]  # the TOP largest (tensor, bytes), largest first
    per_image: int = 0               # held_bytes = per_image·N + fixed
    fixed: int = 0
    held_count: int = 0              # how many tensors are held in all

    @property
    def bytes(self) -> int:
        return self.static_bytes + self.held_bytes

    def as_dict(self) -> dict:
        return {"name": self.name, "phase": self.phase, "bytes": self.bytes,
                "held_bytes": self.held_bytes, "static_bytes": self.static_bytes,
                "held_count": self.held_count,
                "largest_held": [{"tensor": t, "bytes": b} for t, b in self.held]}


@dataclass
class Peaks:
    """Peak bytes for a batch: inference, and one training step per optimizer."""

    batch: int
    dtype: str
    inference_bytes: int
    training_bytes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"batch": self.batch, "dtype": self.dtype,
                "peak_inference_bytes": self.inference_bytes,
                "peak_training_bytes": dict(self.training_bytes)}


# ---- the walk ----------------------------------------------------------------------------------
class _Walk:
    """Replays the executor's forward (and backward) on shapes: one Step per layer/merge."""

    def __init__(self, analysis: Analysis, training: bool, itemsize: int,
                 detail_batch: int | None = None, rows: _Rows | None = None) -> None:
        self.analysis = analysis
        # Each step's sums of what it holds are kept as tensors come and go, not summed
        # again at every step, so a 100,000-layer training walk stays linear. detail_batch:
        # each step also names its TOP largest tensors at that batch (the timeline), from a
        # heap of the kept ones: O(log n) a step, never the whole list. Without it a step
        # is only its (per_image, fixed) line, gathered in `lines` (what envelope needs).
        self.batch = detail_batch
        self.kept_count = 0                      # distinct kept (detail_batch only)
        self.kept_entry: dict[int, tuple] = {}   # id → its heap entry (detail_batch only)
        self.kept_per_image = 0                  # sums over the distinct kept tensors
        self.kept_fixed = 0
        self.kept_heap: list[tuple[int, int, Tensor]] = []  # (−bytes, order, tensor)
        self.order = 0
        self.layout = _Rows(analysis) if rows is None else rows
        self.rows = self.layout.by_path
        self.training = training
        self.size = itemsize
        self.held: list[Tensor] = []              # held by an enclosing merge
        self.pending: dict[Path, list[Tensor]] = {}  # kept for a backward not yet run
        # ... and in forward_lines/backward_lines: id(leaf) → the one tensor it keeps. A
        # leaf of _LINES goes through both loops or through neither.
        self.line_keeps: dict[int, Tensor] = {}
        self.steps: list[tuple[str, str, tuple, int, int]] = []  # with detail_batch
        self.out_shapes: dict[Path, list[tuple[int, ...]]] = {}  # merge → branch outputs
        # (per_image, fixed) per step, without detail_batch: a dict, not a set, so that
        # the distinct lines stay in the order the steps made them, runs that rise through
        # the forward and fall through the backward, which sorted() merges in linear time
        self.lines: dict[tuple[int, int], None] = {}
        self.first = (analysis.network.root.children[0]
                      if analysis.network.root.children else None)

    def new(self, label: str, shape) -> Tensor:
        return Tensor(label, math.prod(shape) * self.size)

    def record(self, name: str, phase: str, tensors: list, done: Path | None = None) -> None:
        """One step: `tensors` (this step's arrays, None for none) are held with what an
        enclosing merge holds and every kept array, each distinct array once; done: the
        path whose kept arrays are freed after the step."""
        if self.batch is not None:
            self._record_detail(name, phase, tensors)
        else:
            if self.held:
                tensors = self.held + tensors
            per_image, fixed = self.sums(self.kept_per_image, self.kept_fixed, tensors)
            self.lines[per_image, fixed] = None
        if done is not None:
            dropped = self.pending.pop(done, None)
            if dropped is not None:
                self._drop(dropped)

    def sums(self, per_image: int, fixed: int, tensors: list) -> tuple[int, int]:
        """(per_image, fixed) plus every distinct array of `tensors` that is not kept.
        Plain sums and an identity check against the few arrays counted so far (`in` on a
        list compares by identity first; Tensor has no __eq__): no dict, no generator."""
        if len(tensors) > 8:   # a wide merge's outputs: no quadratic `in`
            tensors = list({id(t): t for t in tensors}.values())
        counted: list[Tensor] = []
        for t in tensors:
            if t is not None and not t.kept and t not in counted:
                counted.append(t)
                per_image += t.per_image
                fixed += t.fixed
        return per_image, fixed

    def _record_detail(self, name: str, phase: str, tensors: list) -> None:
        """A timeline step: its sums and its TOP largest tensors at self.batch."""
        others: dict[int, Tensor] = {}           # held by a merge or by this step, not kept
        for t in [*self.held, *tensors]:
            if t is not None and not t.kept:
                others[id(t)] = t
        per_image = self.kept_per_image + sum(t.per_image for t in others.values())
        fixed = self.kept_fixed + sum(t.fixed for t in others.values())
        # ties: a merge's and this step's tensors first, in order, then the kept ones
        step_own = [(-t.bytes(self.batch), i - len(others), t)
                    for i, t in enumerate(others.values())]
        largest = (heapq.nsmallest(TOP, [*self._largest_kept(), *step_own]),
                   self.kept_count + len(others))
        self.steps.append((name, phase, largest, per_image, fixed))

    def keep(self, path: Path, tensors: list[Tensor]) -> None:
        """From now until `path`'s backward, `tensors` (none None) are kept."""
        dropped = self.pending.pop(path, None)
        if dropped is not None:
            self._drop(dropped)
        self.pending[path] = tensors
        for t in tensors:
            t.kept += 1
            if t.kept == 1:
                self.kept_count += 1
                self.kept_per_image += t.per_image
                self.kept_fixed += t.fixed
                if self.batch is not None:
                    self.order += 1
                    entry = (-t.bytes(self.batch), self.order, t)
                    heapq.heappush(self.kept_heap, entry)
                    self.kept_entry[id(t)] = entry

    def _largest_kept(self) -> list[tuple[int, int, Tensor]]:
        """The TOP largest kept tensors' heap entries; entries of tensors no longer kept are
        dropped from the heap as they surface."""
        found: list[tuple[int, int, Tensor]] = []
        while self.kept_heap and len(found) < TOP:
            entry = heapq.heappop(self.kept_heap)
            if self.kept_entry.get(id(entry[2])) is entry:
                found.append(entry)
        for entry in found:
            heapq.heappush(self.kept_heap, entry)
        return found

    def _drop(self, tensors: list[Tensor]) -> None:
        """One pending list's backward has run: its tensors are kept by one list fewer."""
        for t in tensors:
            t.kept -= 1
            if not t.kept:
                self.kept_count -= 1
                self.kept_entry.pop(id(t), None)
                self.kept_per_image -= t.per_image
                self.kept_fixed -= t.fixed

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, node: Node, x: Tensor, shape, owned: bool):
        if isinstance(node, Sequence):
            if self.batch is None:
                return self.forward_lines(node, x, shape, owned)
            leaf = self.leaf
            for child in node.children:
                if type(child) is Leaf:   # most nodes: one call, not two
                    x, shape, owned = leaf(child, x, owned)
                else:
                    x, shape, owned = self.forward(child, x, shape, owned)
            return x, shape, owned
        if isinstance(node, Leaf):
            return self.leaf(node, x, owned)
        return self.merge(node, x, shape, owned)

    def leaf(self, leaf: Leaf, x: Tensor, owned: bool):
        row = self.rows[leaf.path]
        kind = row.type            # = leaf.kind, without the property call
        if kind in IN_PLACE or (kind == "dropout" and self.training):
            # activations.py / dense.py: in place when the input is theirs to overwrite
            y = x if owned else Tensor(f"{row.name} output",
                                       math.prod(row.output_shape) * self.size)
        elif kind in _VIEWS or (kind == "flatten" and not row.activations):
            y = x                                      # a view (or the identity)
        else:
            y = Tensor(f"{row.name} output", math.prod(row.output_shape) * self.size)
        if not self.training:
            self.record(row.name, "forward", [x, y])
            return y, row.output_shape, owned or y is not x
        self.keep(leaf.path, self.kept(leaf, row, x, y))
        self.record(row.name, "forward", [x, y])
        # network.py _leaf: an array a backward reads is no longer free to overwrite
        if kind in IN_PLACE or (y is x and kind in KEEPS_INPUT) or _keeps_output(leaf):
            return y, row.output_shape, False
        return y, row.output_shape, owned or y is not x

    def kept(self, leaf: Leaf, row: Row, x: Tensor, y: Tensor) -> list[Tensor]:
        """The arrays `leaf` keeps for its backward (KEEPS, sized as archcalc/nn makes them)."""
        keeps = KEEPS[row.type]
        if keeps == _INPUT:            # the commonest rules, without the loop
            return [x]
        if keeps == _OUTPUT:
            return [y]
        name, out_values = row.name, prod(row.output_shape)
        made = []
        for what in keeps:
            if what == "input":
                made.append(x)
            elif what == "output":
                made.append(y)
            elif what == "xhat":
                made.append(self.new(f"{name} x̂", row.output_shape))
            elif what == "invstd_c":
                made.append(Tensor(f"{name} 1/σ", 0, row.input_shape[0] * self.size))
            elif what == "invstd_n":
                made.append(Tensor(f"{name} 1/σ", self.size))
            elif what in ("scale", "mask"):
                made.append(self.new(f"{name} {what}", row.input_shape))
            elif what == "argmax":
                kh, kw = pair(leaf.spec.kernel)
                made.append(Tensor(f"{name} argmax", out_values * _uint_bytes(kh * kw)))
            elif what == "argmax64":
                made.append(Tensor(f"{name} argmax", out_values * INDEX_BYTES))
            elif what == "taps":
                made.append(Tensor(f"{name} taps", 0, self.taps(leaf, row)))
            elif what == "states":
                made.extend(self.states(leaf, row, y))
        return made

    def states(self, leaf: Leaf, row: Row, y: Tensor) -> list[Tensor]:
        """A recurrent layer's step states (calc.layers.recurrent_kept less its output,
        which is the hidden states themselves with return_sequences, else a new array
        backward does not read)."""
        spec = leaf.spec
        steps = row.input_shape[0]
        d = 2 if spec.bidirectional else 1
        out = prod(row.output_shape)
        values = recurrent_kept(leaf.kind, steps, spec.units, d,
                                getattr(spec, "reset_after", False), spec.return_sequences)
        if spec.return_sequences:
            return [y, Tensor(f"{row.name} states", (values - out) * self.size)]
        return [Tensor(f"{row.name} states", (values - out) * self.size)]

    def taps(self, leaf: Leaf, row: Row) -> int:
        """Bytes of the (index, weight) taps resample.py keeps per axis: adaptive average
        pooling one int64 index and one weight per output position and bin offset; nearest
        upsampling one index; bilinear two indices and two weights."""
        total = 0
        for size, out in zip(row.input_shape[1:], row.output_shape[1:]):
            if leaf.kind == "adaptive_avgpool":
                longest = max(-(-(i + 1) * size // out) - i * size // out for i in range(out))
                total += longest * out * (INDEX_BYTES + self.size)
            elif leaf.spec.mode == "nearest":
                total += out * INDEX_BYTES
            else:
                total += 2 * out * (INDEX_BYTES + self.size)
        return total

    def merge(self, merge: Merge, x: Tensor, shape, owned: bool):
        row = self.rows[merge.path]
        outs, shapes, mark = [], [], len(self.held)
        last = len(merge.branches) - 1
        for i, branch in enumerate(merge.branches):
            self.held[mark:] = outs + ([x] if i < last else [])
            give = owned and not self.training and i == last and all(o is not x for o in outs)
            y, y_shape, _ = self.forward(branch, x, shape, give)
            outs.append(y)
            shapes.append(y_shape)
        self.out_shapes[merge.path] = shapes
        self.held[mark:] = outs
        y = self.new(f"{row.name} output", row.output_shape)
        if self.training and merge.mode == "mul":
            self.keep(merge.path, list(outs))
        self.record(row.name, "forward", [y])
        del self.held[mark:]
        return y, row.output_shape, True

    # ---- the same walk, lines only ---------------------------------------------------------
    # Without detail_batch a step is only its (per_image, fixed) line, and a Sequence's
    # leaves of the kinds in _LINES are walked here inline: what leaf()/dx(), keep() and
    # record() do for them, with the kept sums in locals, no list per step and no call,
    # and tensors without labels (no step names them).
    # Everything else (merges, the other kinds) goes through those methods. A 100,000-layer
    # training step is 300,000 steps; tests/test_peak_fastpath.py holds these loops equal
    # to the detail walk's steps on every bundled spec and on random ones.
    def forward_lines(self, node: Sequence, x: Tensor, shape, owned: bool):
        line_keeps, lines, held = self.line_keeps, self.lines, self.held
        training, size = self.training, self.size
        per_image, fixed = self.kept_per_image, self.kept_fixed
        for child, row in zip(node.children, self.layout.children(node)):
            if row is None or row.type not in _LINES:
                self.kept_per_image, self.kept_fixed = per_image, fixed
                x, shape, owned = self.forward(child, x, shape, owned)
                per_image, fixed = self.kept_per_image, self.kept_fixed
                continue
            kind = row.type
            if kind in IN_PLACE or (kind == "dropout" and training):
                y = x if owned else Tensor("", math.prod(row.output_shape) * size)
            elif kind in _VIEWS or (kind == "flatten" and not row.activations):
                y = x
            else:
                y = Tensor("", math.prod(row.output_shape) * size)
            if training:
                what = _LINES[kind]
                if what is not None:
                    t = x if what == "input" else y
                    line_keeps[id(child)] = t
                    t.kept += 1
                    if t.kept == 1:   # (kept_count is for detail_batch: not kept here)
                        per_image += t.per_image
                        fixed += t.fixed
            if held:
                lines[self.sums(per_image, fixed, held + [x, y])] = None
            else:
                a, b = per_image, fixed
                if not x.kept:
                    a += x.per_image
                    b += x.fixed
                if y is not x and not y.kept:
                    a += y.per_image
                    b += y.fixed
                lines[a, b] = None
            shape = row.output_shape
            # network.py _leaf: an array a backward reads is no longer free to overwrite
            if training and (kind in IN_PLACE or (y is x and kind in KEEPS_INPUT)):
                owned = False
            else:
                owned = owned or y is not x
            x = y
        self.kept_per_image, self.kept_fixed = per_image, fixed
        return x, shape, owned

    def backward_lines(self, node: Sequence, dy: Tensor | None) -> Tensor | None:
        line_keeps, lines, held = self.line_keeps, self.lines, self.held
        size, first = self.size, self.first
        per_image, fixed = self.kept_per_image, self.kept_fixed
        for child, row in zip(reversed(node.children), reversed(self.layout.children(node))):
            if dy is None:
                break
            if row is None or row.type not in _LINES:
                self.kept_per_image, self.kept_fixed = per_image, fixed
                dy = self.backward(child, dy)
                per_image, fixed = self.kept_per_image, self.kept_fixed
                continue
            kind = row.type
            if child is first and kind in SKIPS_DX:
                dx = None
            elif kind in ("flatten", "to_sequence"):
                dx = dy
            elif kind in ("pad", "conv2d"):   # a view of dy, or spare values: dx() says
                dx = self.dx(child, row, dy)
            else:
                dx = Tensor("", math.prod(row.input_shape) * size)
            if held:
                lines[self.sums(per_image, fixed, held + [dy, dx])] = None
            else:
                a, b = per_image, fixed
                if not dy.kept:
                    a += dy.per_image
                    b += dy.fixed
                if dx is not None and dx is not dy and not dx.kept:
                    a += dx.per_image
                    b += dx.fixed
                lines[a, b] = None
            t = line_keeps.pop(id(child), None)
            if t is not None:
                t.kept -= 1
                if not t.kept:
                    per_image -= t.per_image
                    fixed -= t.fixed
            dy = dx
        self.kept_per_image, self.kept_fixed = per_image, fixed
        return dy

    # ---- backward ----------------------------------------------------------------------------
    def backward(self, node: Node, dy: Tensor | None) -> Tensor | None:
        if isinstance(node, Leaf):
            row = self.rows[node.path]
            dx = None if node is self.first and row.type in SKIPS_DX else self.dx(node, row, dy)
            self.record(row.name, "backward", [dy, dx], done=node.path)
            return dx
        if isinstance(node, Sequence):
            if self.batch is None:
                return self.backward_lines(node, dy)
            for child in reversed(node.children):
                if dy is None:
                    break
                dy = self.backward(child, dy)
            return dy
        return self.merge_backward(node, dy)

    def dx(self, leaf: Leaf, row: Row, dy: Tensor) -> Tensor:
        """The input gradient: a view of dy for flatten and an empty pad, else a new array of
        the input's size; a stride-1 conv without padding computes it in a flat buffer with
        (kW − 1)·D_w spare values (conv.py conv_grads, col2im_flat)."""
        kind = row.type
        if kind in ("flatten", "to_sequence") or (
                kind == "pad" and not any(explicit_pads(leaf.spec.padding))):
            return dy  # a view of dy (to_sequence: dy transposed back)
        dx = Tensor(f"d {row.name} input", math.prod(row.input_shape) * self.size)
        if kind == "conv2d" and _unpadded_stride1(leaf, row):
            kw, dil = pair(leaf.spec.kernel)[1], pair(leaf.spec.dilation)[1]
            dx.fixed = (kw - 1) * dil * self.size
        return dx

    def merge_backward(self, merge: Merge, dy: Tensor) -> Tensor:
        row = self.rows[merge.path]
        if merge.mode == "mul":   # network.py _product_grads: a new array per branch
            parts = [self.new(f"d {row.name} branch {i + 1}", s)
                     for i, s in enumerate(self.out_shapes[merge.path])]
        else:                     # concat: views of dy; add: dy itself
            parts = [dy] * len(merge.branches)
        mark = len(self.held)
        self.record(row.name, "backward", [dy, *parts], done=merge.path)
        dx = None
        for i, (branch, part) in enumerate(zip(merge.branches, parts)):
            self.held[mark:] = parts[i + 1:] + ([] if dx is None else [dx])
            d = self.backward(branch, part)
            total = d if dx is None else self.new(f"d {row.name} input", row.input_shape)
            if dx is not None:
                self.record(row.name, "backward", [dx, d, total])
            dx = total
        del self.held[mark:]
        return dx


def _keeps_output(leaf: Leaf) -> bool:
    """A recurrent layer with return_sequences keeps its output (its hidden states) for its
    own backward: no later layer may overwrite it (base.py keeps_output)."""
    return leaf.kind in RECURRENT and leaf.spec.return_sequences


def _uint_bytes(values: int) -> int:
    """Bytes of np.min_scalar_type(values), the argmax type pool.py MaxPool uses."""
    return 1 if values < 2**8 else 2 if values < 2**16 else 4 if values < 2**32 else 8


def _unpadded_stride1(leaf: Leaf, row: Row) -> bool:
    """A conv at stride 1 whose resolved padding is zero: at stride 1 the output size fixes
    the total padding, H_out = H + P − D·(K − 1)."""
    if pair(leaf.spec.stride) != (1, 1):
        return False
    kernel, dilation = pair(leaf.spec.kernel), pair(leaf.spec.dilation)
    return all(o == i - d * (k - 1) for o, i, k, d in
               zip(row.output_shape[1:], row.input_shape[1:], kernel, dilation))


# ---- the public functions ----------------------------------------------------------------------
class _Rows:
    """An analysis' rows by path, and by position among each Sequence's children (None for
    a merge or a sequence): what the walks over one analysis look up, made once for all."""

    def __init__(self, analysis: Analysis) -> None:
        self.by_path: dict[Path, Row] = {r.path: r for r in analysis.rows}
        self.sequences: dict[int, list[Row | None]] = {}   # id(Sequence) → its rows

    def children(self, node: Sequence) -> list[Row | None]:
        found = self.sequences.get(id(node))
        if found is None:
            by_path = self.by_path
            self.sequences[id(node)] = found = [
                by_path[child.path] if type(child) is Leaf else None
                for child in node.children]
        return found


def _run(analysis: Analysis, mode: str, itemsize: int, detail_batch: int | None = None,
         rows: _Rows | None = None) -> _Walk:
    """One walk of an inference pass or a training step: its `steps` with detail_batch,
    else its `lines`. rows: _Rows(analysis), when the caller walks more than once."""
    if mode not in MODES:
        raise ArchcalcError(f"unknown mode '{mode}'", fix="inference or training")
    return _replay(_Walk(analysis, mode == "training", itemsize, detail_batch, rows))


def _replay(walk: _Walk) -> _Walk:
    """Runs `walk`: the forward, and in training the loss and the backward."""
    net, itemsize = walk.analysis.network, walk.size
    # The walk makes no reference cycles, but its hundreds of thousands of live tensors
    # and lists would set off full collections that traverse the whole analysis too
    # (a third of a 100,000-layer training walk): the collector waits until it is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        x = Tensor("input", prod(net.input_shape) * itemsize)
        y, shape, _ = walk.forward(net.root, x, tuple(net.input_shape), True)
        if walk.training:
            dy = walk.new("d output", shape)
            walk.record("loss", "backward", [y, dy])
            walk.backward(net.root, dy)
    finally:
        if collecting:
            gc.enable()
    return walk


def _walk(analysis: Analysis, mode: str, itemsize: int, detail_batch: int
          ) -> list[tuple[str, str, tuple, int, int]]:
    """(name, phase, (the TOP largest heap entries, how many are held) at detail_batch,
    the bytes per image held, the fixed bytes held) per step."""
    return _run(analysis, mode, itemsize, detail_batch).steps


def _lines(analysis: Analysis, mode: str, itemsize: int,
           rows: _Rows | None = None) -> dict[tuple[int, int], None]:
    """The distinct (bytes per image held, fixed bytes held) over the steps, as the keys
    of a dict, in the order the steps first made them."""
    return _run(analysis, mode, itemsize, rows=rows).lines


def static_bytes(analysis: Analysis, mode: str, optimizer: str | None, itemsize: int) -> int:
    """Weights and buffers; in training also one gradient and k optimizer slots per
    trainable parameter (OPTIMIZER_COPIES, as archcalc/nn/optim.py keeps them)."""
    t = analysis.totals
    if mode == "inference":
        return t.params * itemsize
    if optimizer not in OPTIMIZER_COPIES:
        raise ArchcalcError(f"unknown optimizer '{optimizer}'",
                            fix="one of " + ", ".join(OPTIMIZER_COPIES))
    return (t.params + (1 + OPTIMIZER_COPIES[optimizer]) * t.trainable_params) * itemsize


def timeline(analysis: Analysis, mode: str, optimizer: str | None = "adam") -> list[Step]:
    """The steps of one inference pass (mode "inference") or one training step (forward,
    loss, backward; "training") at the analysis' batch and dtype, with what each holds."""
    batch, itemsize = analysis.totals.batch, DTYPE_BYTES[analysis.totals.dtype]
    static = static_bytes(analysis, mode, optimizer, itemsize)
    steps = []
    for name, phase, (largest, count), per_image, fixed in _walk(analysis, mode, itemsize,
                                                                 batch):
        held = tuple((t.label, -minus) for minus, _, t in largest)
        steps.append(Step(name, phase, per_image * batch + fixed, static, held,
                          per_image, fixed, count))
    return steps


@dataclass
class Envelope:
    """peak(N) = static + max over steps of (a·N + b), for one mode and optimizer."""

    static: int
    lines: list[tuple[int, int]]     # distinct (a, b) per step

    def peak(self, batch: int) -> int:
        return self.static + max(a * batch + b for a, b in self.lines)


def envelope(analysis: Analysis, mode: str, optimizer: str | None = None,
             dtype: str | None = None) -> Envelope:
    itemsize = DTYPE_BYTES[dtype or analysis.totals.dtype]
    return _envelope(analysis, mode, optimizer, itemsize, _Rows(analysis))


def _envelope(analysis: Analysis, mode: str, optimizer: str | None, itemsize: int,
              rows: _Rows) -> Envelope:
    lines = _lines(analysis, mode, itemsize, rows)
    return Envelope(static_bytes(analysis, mode, optimizer, itemsize), sorted(lines))


def envelopes(analysis: Analysis, optimizers=None, dtype: str | None = None
              ) -> tuple[Envelope, dict[str, Envelope]]:
    """(inference's envelope, training's per optimizer): one walk of the training step
    serves every optimizer, which differ in their static bytes only."""
    itemsize = DTYPE_BYTES[dtype or analysis.totals.dtype]
    rows = _Rows(analysis)   # both walks look layers up in it
    training = _envelope(analysis, "training", "sgd", itemsize, rows)
    return _envelope(analysis, "inference", None, itemsize, rows), {
        opt: Envelope(static_bytes(analysis, "training", opt, itemsize), training.lines)
        for opt in optimizers or OPTIMIZER_COPIES}


def peaks(analysis: Analysis, batch: int = 1, dtype: str = "float32") -> Peaks:
    """Peak inference bytes and peak training bytes per optimizer for `batch` images."""
    if dtype not in DTYPE_BYTES:
        raise ArchcalcError(f"unknown dtype '{dtype}'", fix="float16, float32 or float64")
    inference, training = envelopes(analysis, dtype=dtype)
    # every optimizer's envelope shares one list of lines (envelopes): its max is taken
    # once, env.peak(batch) = env.static + that max
    held: dict[int, int] = {}
    for env in training.values():
        if id(env.lines) not in held:
            held[id(env.lines)] = max([a * batch + b for a, b in env.lines])
    return Peaks(batch, dtype, inference.peak(batch),
                 {opt: env.static + held[id(env.lines)] for opt, env in training.items()})


def peak_fields(analysis: Analysis) -> dict:
    """The peaks as `summary --format json` writes them among the totals, for the analysis's
    own batch and dtype: peak_inference_bytes, and peak_training_bytes per optimizer."""
    found = peaks(analysis, analysis.totals.batch, analysis.totals.dtype)
    return {"peak_inference_bytes": found.inference_bytes,
            "peak_training_bytes": dict(found.training_bytes)}


def largest_batch(env: Envelope, budget: int) -> int:
    """The largest N with env.peak(N) <= budget (0 if not even one image fits), by
    bisection: peak is nondecreasing in N (every a >= 0). Bounded: every step holds the
    input or a gradient, so the largest a, A > 0, and peak(N) >= static + A·N > budget
    from N = (budget − static)//A + 1 on."""
    if env.peak(1) > budget:
        return 0
    slope = max(a for a, _ in env.lines)
    lo, hi = 1, (budget - env.static) // slope + 1   # peak(lo) fits, peak(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if env.peak(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
