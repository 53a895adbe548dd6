"""Walk a resolved network with shapes only: one Row per layer and merge, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fractions import Fraction

from archcalc.calc.layers import layer_math, lrn_form
from archcalc.calc.shapes import (Dim, ceil_int, channels_last_hint, fmt_shape, prod,
                                  receptive_step, whole)
from archcalc.errors import ArchcalcError, ShapeError
from archcalc.limits import MAX_SIZE, echo, elide
from archcalc.spec.layers import IN_PLACE, PASS_THROUGH
from archcalc.spec.tree import Leaf, Merge, Network, Node, Path, Sequence

DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8}


@dataclass(slots=True)
class Row:
    """One layer (or merge) of the network, per image. Slotted: a 100,000-layer analysis
    holds 100,000 of them (~150 bytes each, against ~400 with a __dict__)."""

    path: Path
    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    trainable_params: int
    non_trainable_params: int
    macs: int
    activations: int  # values of the new tensor this layer keeps (0 if in place)
    # The most input pixels one output pixel can see (the ceiling of the exact recurrence),
    # and how far apart neighbouring output pixels are in input pixels: an int, or a
    # Fraction after upsampling or a transposed convolution (1/2 after ×2). None past the
    # layer where the exact figures outgrow RF_DIGITS digits (see _bounded).
    receptive_field: tuple[int, int] | None
    effective_stride: tuple[int | Fraction, int | Fraction] | None
    line: int | None = None
    # weights: kernels, matrices, normalisation γ; biases: bias vectors, normalisation β;
    # weights + biases = params − batch-norm running statistics.
    weights: int = 0
    biases: int = 0
    kernel: tuple[int, int] | None = None  # (Kh, Kw) of a conv or pool; adaptive: largest bin

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    def as_dict(self) -> dict:
        return {
            "name": self.name, "type": self.type,
            "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "params": self.params, "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "weights": self.weights, "biases": self.biases,
            "kernel": list(self.kernel) if self.kernel is not None else None,
            "macs": self.macs, "activations": self.activations,
            "receptive_field": (list(self.receptive_field) if self.receptive_field is not None
                                else None),
            "effective_stride": ([_json_number(v) for v in self.effective_stride]
                                 if self.effective_stride is not None else None),
        }


def _json_number(value: int | Fraction) -> int | str:
    """An int as itself, a Fraction that is not whole as the string 'p/q' (JSON has no
    exact fractions, and a float 0.333... would not be the exact figure)."""
    value = whole(value)
    return value if isinstance(value, int) else f"{value.numerator}/{value.denominator}"


@dataclass
class Totals:
    trainable_params: int
    non_trainable_params: int
    macs: int
    input_values: int
    layer_activations: int
    batch: int
    dtype: str

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def activations(self) -> int:
        """Values per image, the input included (cs231n's VGG16 table)."""
        return self.input_values + self.layer_activations

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def param_bytes(self) -> int:
        return self.params * self.dtype_bytes

    @property
    def activation_bytes(self) -> int:
        """Per image."""
        return self.activations * self.dtype_bytes

    @property
    def input_bytes(self) -> int:
        """For the whole batch."""
        return self.input_values * self.batch * self.dtype_bytes

    @property
    def forward_backward_bytes(self) -> int:
        """For the whole batch: every kept layer output and its gradient, archcalc's own
        rule: 2 × layer activations × batch × dtype size (every new tensor a layer makes,
        see Row.activations). Not torchinfo's 'forward/backward pass size', which counts
        only the outputs of layers that own parameters (`archcalc conventions` prints it)."""
        return 2 * self.layer_activations * self.batch * self.dtype_bytes

    @property
    def total_bytes(self) -> int:
        """Input + forward/backward + parameters (archcalc's sum; the layout of torchinfo's
        'estimated total size', not its figure: see forward_backward_bytes)."""
        return self.input_bytes + self.forward_backward_bytes + self.param_bytes

    def as_dict(self) -> dict:
        return {
            "params": self.params, "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "macs": self.macs, "flops": self.flops,
            "batch_macs": self.macs * self.batch,
            "input_activations": self.input_values,
            "activations": self.activations, "activation_bytes": self.activation_bytes,
            "param_bytes": self.param_bytes, "input_bytes": self.input_bytes,
            "forward_backward_bytes": self.forward_backward_bytes,
            "total_bytes": self.total_bytes,
        }


@dataclass
class Analysis:
    network: Network
    rows: list[Row]
    totals: Totals
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: dict[Path, str] = field(default_factory=dict)  # scope path -> block label
    uneven: list[ShapeError] = field(default_factory=list)  # warnings that drop input pixels

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape if self.rows else self.network.input_shape

    def peak_fields(self) -> dict:
        """Peak inference and training bytes (archcalc.calc.peak's freeing policy)."""
        from archcalc.calc.peak import peak_fields  # peak builds on this module
        return peak_fields(self)

    def as_dict(self, peaks: bool = True) -> dict:
        """The JSON document; peaks=False leaves the peak fields out of the totals (a
        caller that writes the rows apart computes them on the whole network)."""
        return {
            "name": self.network.name, "source": self.network.source,
            "input_shape": list(self.network.input_shape),
            "output_shape": list(self.output_shape),
            "batch": self.totals.batch, "dtype": self.totals.dtype,
            "layers": [r.as_dict() for r in self.rows],
            "totals": {**self.totals.as_dict(), **(self.peak_fields() if peaks else {})},
            "warnings": list(self.warnings), "notes": list(self.notes),
        }


# The receptive field and effective stride are followed exactly while their numerators and
# denominators have at most this many digits: past that (2^60 after sixty stride-2 layers, or
# the ever-longer fractions of alternating upsampling and adaptive pooling), the field is far
# beyond any input, and exact arithmetic on thousand-digit numbers would cost seconds per
# layer. Rows after that point show no receptive field, and a note says where it stopped.
RF_DIGITS = 18


@dataclass(slots=True)
class _State:
    shape: tuple[int, ...]
    rf: tuple[int | Fraction, int | Fraction] | None  # exact; rows show the ceiling
    jump: tuple[int | Fraction, int | Fraction] | None
    # Nothing else will read this tensor: an elementwise activation may overwrite it.
    free: bool = True
    # Where each image's values lie, as element strides of (C, H, W): None for a tensor of
    # its own (C-contiguous). A crop is a window of its input and keeps the input's strides;
    # flattening it is a view only when its non-unit axes still merge, else a copy (NumPy's
    # reshape rule, and PyTorch's flatten's).
    strides: tuple[int, int, int] | None = None


class _Walker:
    def __init__(self, network: Network, strict: bool) -> None:
        self.net = network
        self.strict = strict
        self.rows: list[Row] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.uneven: list[ShapeError] = []  # the warnings as errors, for validate --strict
        self.labels: dict[Path, str] = {}
        self.lrn_forms: dict[str, list[str]] = {}  # form text -> layers that compute it

    def fail(self, exc: ArchcalcError, path: Path) -> ArchcalcError:
        line = self.net.line_of(path)
        # Inside a block the layer's line is the block's body: also say where it was used.
        for depth in range(len(path) - 1, 0, -1):
            used = self.net.line_of(path[:depth])
            if used is not None and used != line:
                exc.message += f" (in '{elide(self.net.display(path[:depth]))}', line {used})"
                break
        # "Kernel larger than input" for 28×28×1 is really a channels-last input: say so.
        hint = channels_last_hint(self.net.input_shape) if isinstance(exc, ShapeError) else None
        if hint is not None:
            exc.fix = hint
        return exc.located(file=self.net.file, line=line, layer=self.net.display(path))

    def walk(self, node: Node, state: _State) -> _State:
        if isinstance(node, Leaf):
            return self.leaf(node, state)
        if isinstance(node, Sequence):
            if node.path:
                self.labels.setdefault(node.path, node.label)
            for child in node.children:
                state = self.walk(child, state)
            return state
        return self.merge(node, state)

    def leaf(self, leaf: Leaf, state: _State) -> _State:
        name = self.net.display(leaf.path)
        kind = leaf.kind  # a property: read once
        try:
            math = layer_math(leaf, state.shape, name)
        except ArchcalcError as exc:
            raise self.fail(exc, leaf.path) from None
        rf, jump = state.rf, state.jump
        if math.window is not None and rf is not None:
            (sh, th), (sw, tw) = math.window
            rh, jh = receptive_step(rf[0], jump[0], sh, th)
            rw, jw = receptive_step(rf[1], jump[1], sw, tw)
            rf, jump = self.bounded(name, (whole(rh), whole(rw)), (whole(jh), whole(jw)))
        if kind in _SEQUENCE_KINDS:
            # a step's output reads every step before it (and after it, bidirectional): no
            # spatial receptive field to follow past a sequence layer
            rf = jump = None
        if kind == "lrn":
            self.lrn_forms.setdefault(lrn_form(leaf.spec), []).append(name)
        if math.dims is not None:
            self.check_division(name, leaf, math.dims)
        strides = None
        if kind == "flatten" and not _merges(state.shape, state.strides):
            activations, free = prod(math.out_shape), True  # a copy of a cropped window
        elif kind in PASS_THROUGH:          # a view, or the identity at inference
            activations, free = 0, state.free
            if kind == "crop":
                strides = state.strides or _own_strides(state.shape)
            elif kind != "flatten":
                strides = state.strides
        elif kind in IN_PLACE and state.free:  # overwrites its input
            activations, free, strides = 0, True, state.strides
        elif math.kept is not None:               # a new tensor and the states it keeps
            activations, free = math.kept, True
        else:                                     # a new tensor
            activations, free = prod(math.out_shape), True
        self.rows.append(Row(leaf.path, name, kind, state.shape, math.out_shape,
                             math.trainable, math.non_trainable, math.macs, activations,
                             _ceil(rf), jump, leaf.line, math.weights, math.biases,
                             math.kernel))
        return _State(math.out_shape, rf, jump, free, strides)

    def bounded(self, name: str, rf, jump):
        """(rf, jump), or (None, None) with a note once they outgrow RF_DIGITS digits."""
        limit = 10 ** RF_DIGITS
        values = (*rf, *jump)
        if all(type(v) is int and -limit <= v <= limit for v in values):
            return rf, jump  # the common case, without making four Fractions
        if all(abs(v.numerator) <= limit and v.denominator <= limit
               for v in map(Fraction, values)):
            return rf, jump
        self.notes.append(f"{name}: the receptive field is not followed past this layer: its "
                          f"exact value or effective stride needs more than {RF_DIGITS} digits "
                          "(far beyond any input)")
        return None, None

    def check_division(self, name: str, leaf: Leaf, dims: tuple[Dim, Dim]) -> None:
        """Say when (W − F + 2P)/S + 1 is not a whole number, and what is lost."""
        if dims[0] == dims[1]:
            axes = [("", dims[0], "row(s) and column(s)")]
        else:
            axes = [(" along H", dims[0], "row(s)"), (" along W", dims[1], "column(s)")]
        for axis, dim, unit in axes:
            if dim.divides:
                continue
            rounded = "ceiled" if dim.ceil_mode else "floored"
            ceiled = -(-(dim.padded - dim.span) // dim.stride) + 1
            if dim.ceil_mode and dim.out < ceiled:
                # PyTorch drops a last window that would start in the trailing padding.
                rounded = (f"ceiled to {ceiled}, less the last window (it would start in the "
                           "trailing padding), i.e.")
            text = f"{name}{axis}: {dim.formula()} → {rounded} to {dim.out}"
            if dim.span < dim.stride:
                self.notes.append(f"{text}; kernel {dim.span} < stride {dim.stride} samples "
                                  "with gaps by design")
            elif dim.dropped_input:
                lost = f"the last {dim.dropped_input} input {unit} are never covered"
                error = ShapeError(f"uneven division{axis}: {dim.formula()} → {rounded} to "
                                   f"{dim.out}; {lost}", file=self.net.file,
                                   line=leaf.line, layer=name,
                                   fix="change --input, padding or stride so that it divides "
                                       "evenly, or drop --strict")
                if self.strict:
                    raise error
                self.uneven.append(error)
                self.warnings.append(f"{text}; {lost}")
            elif dim.overhang:
                self.notes.append(f"{text}; the last window overhangs the input by "
                                  f"{dim.overhang} (ceil mode), no input is lost")
            else:
                self.notes.append(f"{text}; only padding goes uncovered")

    def merge(self, merge: Merge, state: _State) -> _State:
        name = self.net.display(merge.path)
        outs: list[tuple[str, _State]] = []
        count = len(merge.branches)
        for index, branch in enumerate(merge.branches, start=1):
            # Every branch reads the merge's input: only the last may overwrite it, and only
            # if no earlier branch passed it on unchanged (an identity shortcut, say).
            free = (state.free and index == count
                    and not any(_passes_through(b) for b in merge.branches[:index - 1]))
            out = self.walk(branch, replace(state, free=free))
            last = _last_leaf(branch)
            label = (f"branch {index} (ending at {elide(self.net.display(last.path), 80)})" if last
                     else f"branch {index} (identity)")
            outs.append((label, out))
        first_label, first = outs[0]
        if merge.mode == "mul":
            shape = self.mul_shape(merge, name, outs)
        elif merge.mode == "add":
            for label, other in outs[1:]:
                if other.shape != first.shape and _sequence_merge(outs):
                    raise self.sequence_mismatch("add", merge, name, (first_label, first),
                                                 (label, other))
                if other.shape != first.shape:
                    raise ShapeError(
                        f"add needs equal shapes: {first_label} gives {fmt_shape(first.shape)}, "
                        f"{label} gives {fmt_shape(other.shape)}",
                        file=self.net.file, line=merge.line, layer=name,
                        fix="use a projection shortcut (1×1 conv with the same stride and filters)")
            shape = first.shape
        else:
            if _sequence_merge(outs):
                raise self.sequence_concat(merge, name, outs)
            for label, other in outs[1:]:
                if len(other.shape) != len(first.shape) or other.shape[1:] != first.shape[1:]:
                    raise ShapeError(
                        f"concat needs equal H×W: {first_label} gives {fmt_shape(first.shape)}, "
                        f"{label} gives {fmt_shape(other.shape)}",
                        file=self.net.file, line=merge.line, layer=name,
                        fix="give the branches the same stride and 'same' padding")
            shape = (sum(o.shape[0] for _, o in outs),) + tuple(first.shape[1:])
            # Concats of concats double the channels each time (2^20000 has no printable
            # end); every branch is within the bound, so this sum is small when it fails.
            if shape[0] > MAX_SIZE:
                raise ShapeError(
                    f"concat gives {shape[0]:,} channels, more than {MAX_SIZE:,} (10⁹), the "
                    "largest size archcalc takes", file=self.net.file, line=merge.line,
                    layer=name,
                    fix="check the repeats around this concat: each one multiplies the channels")
        rf = jump = None
        if all(o.rf is not None for _, o in outs):
            rf = (max(o.rf[0] for _, o in outs), max(o.rf[1] for _, o in outs))
            # The output's pixels are those of the branches with its H×W: a broadcast C×1×1
            # gate (mul) widens the field to the whole map but does not space the pixels apart.
            spaced = [o for _, o in outs if o.shape[1:] == shape[1:]]
            jump = (max(o.jump[0] for o in spaced), max(o.jump[1] for o in spaced))
        self.rows.append(Row(merge.path, name, merge.mode, state.shape, shape, 0, 0, 0,
                             prod(shape), _ceil(rf), jump, merge.line))
        return _State(shape, rf, jump, True)

    def mul_shape(self, merge: Merge, name: str, outs: list[tuple[str, _State]]):
        """The elementwise product's shape: every branch the full shape, or a C×1×1 gate
        with the same C that broadcasts over H×W (squeeze-and-excitation)."""
        full_label, full = max(outs, key=lambda item: prod(item[1].shape))
        for label, other in outs:
            if other.shape != full.shape and _sequence_merge(outs):
                raise self.sequence_mismatch("mul", merge, name, (full_label, full),
                                             (label, other))
            gate = (len(other.shape) == len(full.shape) == 3 and other.shape[0] == full.shape[0]
                    and other.shape[1:] == (1, 1))
            if other.shape != full.shape and not gate:
                raise ShapeError(
                    f"mul needs equal shapes or a C×1×1 gate with the same C: {full_label} "
                    f"gives {fmt_shape(full.shape)}, {label} gives {fmt_shape(other.shape)}",
                    file=self.net.file, line=merge.line, layer=name,
                    fix=f"make the gate {full.shape[0] if len(full.shape) == 3 else 'C'}×1×1 "
                        "(its last layer's filters = the feature map's channels) or give the "
                        "branches equal shapes")
        return full.shape

    def sequence_concat(self, merge: Merge, name: str,
                        outs: list[tuple[str, _State]]) -> ShapeError:
        """concat joins axis 0: the channels of a C×H×W map, but the steps of a T×F sequence
        (Keras's Concatenate and torch.cat(dim=-1) join the features). Rather than count
        either silently, a sequence branch is refused with the ways to write it."""
        shapes = ", ".join(f"{label} gives {_seq_shape(o.shape)}" for label, o in outs)
        return ShapeError(
            f"concat of sequence branches is not supported (it would join the steps, not the "
            f"features): {shapes}", file=self.net.file, line=merge.line, layer=name,
            fix="end each branch with return_sequences: false to join their last steps' "
                "features, use add or mul for equal T×F, or one bidirectional layer (it joins "
                "its two directions' features per step)")

    def sequence_mismatch(self, mode: str, merge: Merge, name: str, one: tuple[str, _State],
                          two: tuple[str, _State]) -> ShapeError:
        """add / mul of branches where one gives a sequence and the shapes differ: the
        advice is about return_sequences and units, not strides and 1×1 convs."""
        (label_a, a), (label_b, b) = one, two
        if len(a.shape) != len(b.shape):
            fix = ("set return_sequences the same on every branch's last recurrent layer: "
                   "true for every step's output, false for the last step's")
        else:
            fix = ("give every branch's last layer the same units (a bidirectional layer "
                   "gives 2·units per step) and the branches the same steps")
        return ShapeError(f"{mode} needs equal shapes: {label_a} gives {_seq_shape(a.shape)}, "
                          f"{label_b} gives {_seq_shape(b.shape)}", file=self.net.file,
                          line=merge.line, layer=name, fix=fix)

    def lrn_notes(self) -> list[str]:
        """One note per distinct LRN function: 'norm1, norm2: lrn in the sum form ...'."""
        notes = []
        for form, names in self.lrn_forms.items():
            who = ", ".join(names) if len(names) <= 3 else (
                f"{names[0]} and {len(names) - 1} more lrn layers")
            notes.append(f"{elide(who, 120)}: {form}")
        return notes


def _sequence_merge(outs: list[tuple[str, _State]]) -> bool:
    """Whether a merge's branches include a T×F sequence (the only 2-d shape)."""
    return any(len(o.shape) == 2 for _, o in outs)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _seq_shape(shape: tuple[int, ...]) -> str:
    """A branch's shape in a sequence merge's message: '6×3 (6 steps × 3 features)', or
    '3 (3 features: one step)' for a vector."""
    if len(shape) == 2:
        return (f"{fmt_shape(shape)} ({_plural(shape[0], 'step')} × "
                f"{_plural(shape[1], 'feature')})")
    if len(shape) == 1:
        return f"{fmt_shape(shape)} ({_plural(shape[0], 'feature')}, no steps)"
    return fmt_shape(shape)


_SEQUENCE_KINDS = frozenset({"rnn", "lstm", "gru", "embedding", "to_sequence"})


def _ceil(rf) -> tuple[int, int] | None:
    if rf is None:
        return None
    if type(rf[0]) is int and type(rf[1]) is int:  # the common case: no upsampling before
        return rf
    return (ceil_int(rf[0]), ceil_int(rf[1]))


def _own_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element strides of a C-contiguous tensor of this shape."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _merges(shape: tuple[int, ...], strides: tuple[int, ...] | None) -> bool:
    """Whether the axes can be flattened into one without a copy: along the axes longer than
    1, each stride is the next one's stride times its size (the last may be anything)."""
    if strides is None:
        return True
    axes = [(size, stride) for size, stride in zip(shape, strides) if size > 1]
    return all(stride == nxt_stride * nxt_size
               for (_, stride), (nxt_size, nxt_stride) in zip(axes, axes[1:]))


def _passes_through(node: Node) -> bool:
    """True when a branch hands on its input itself (empty, or only views / dropout)."""
    if isinstance(node, Leaf):
        return node.kind in PASS_THROUGH
    if isinstance(node, Merge):
        return False
    return all(_passes_through(child) for child in node.children)


def _last_leaf(node: Node) -> Leaf | None:
    if isinstance(node, Leaf):
        return node
    children = node.children if isinstance(node, Sequence) else node.branches
    for child in reversed(children):
        found = _last_leaf(child)
        if found is not None:
            return found
    return None


def analyze(network: Network, *, batch: int = 1, dtype: str = "float32",
            strict: bool = False) -> Analysis:
    """Shapes, parameters, MACs, activations and receptive fields of every layer."""
    if dtype not in DTYPE_BYTES:
        raise ArchcalcError(f"unknown dtype '{dtype}'", fix="float16, float32 or float64")
    if batch < 1:
        raise ArchcalcError(f"batch must be >= 1 (got {batch})", fix="--batch 1")
    walker = _Walker(network, strict)
    shape = tuple(network.input_shape)
    try:
        walker.walk(network.root, _State(shape, (1, 1), (1, 1)))
    except RecursionError:  # the depth limits keep specs out of here; named if one gets in
        raise ArchcalcError(f"{echo(network.name)} nests too deeply to analyse",
                            file=network.file,
                            fix="flatten the nesting of blocks, repeats and branches") from None
    rows = walker.rows
    totals = Totals(
        trainable_params=sum(r.trainable_params for r in rows),
        non_trainable_params=sum(r.non_trainable_params for r in rows),
        macs=sum(r.macs for r in rows),
        input_values=prod(shape),
        layer_activations=sum(r.activations for r in rows),
        batch=batch, dtype=dtype,
    )
    return Analysis(network, rows, totals, walker.warnings,
                    walker.lrn_notes() + walker.notes, walker.labels, walker.uneven)
