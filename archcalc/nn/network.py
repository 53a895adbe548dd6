"""Build a runnable model from a resolved spec tree and run it forward and backward.

The model walks archcalc.spec.tree itself (Sequence / Merge / Leaf): a sequence applies its
children in order, a merge runs every branch on the same input and concatenates the results
on axis 1, adds them, or multiplies them elementwise (mul: a C×1×1 branch, a squeeze-and-
excitation gate, broadcasts over H×W); an empty branch is the identity. Shapes:
    forward:  x (N, *input_shape) → y (N, *output_shape)
    backward: dy (N, *output_shape) → dx (N, *input_shape), filling model.grads

In-place work. An activation, dropout or flatten writes over (or views) its input when the
input is "owned": no later forward and no pending backward will read it. Ownership passes
down the network: a new array is owned unless its layer reads its own output in backward
(training); a merge gives its input to a branch only at inference, only to the last branch,
and only when no earlier branch's output shares memory with it. So at inference relu keeps
0 new bytes, and training never corrupts an array a backward needs. A mul merge keeps its
branches' outputs for backward (training only); they are safe there, because in training no
branch is given the merge's input and the merge's own result is a new array.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from archcalc.errors import ArchcalcError, ShapeError
from archcalc.limits import echo
from archcalc.nn.base import Layer, Store
from archcalc.nn.dense import Dropout
from archcalc.nn.init import INITS
from archcalc.nn.layers import make_layer
from archcalc.spec.tree import Leaf, Merge, Network, Sequence

DTYPES = ("float32", "float64")


@dataclass
class LayerRecord:
    """What one leaf or merge did in the last forward pass (per example, except bytes)."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    trainable_params: int
    non_trainable_params: int
    # nbytes of the new array it allocated for the whole batch (0 if in place), and of the
    # step states a recurrent layer made beside it
    kept_bytes: int
    seconds: float = 0.0


class _LeafNode:
    def __init__(self, leaf: Leaf, name: str, layer: Layer) -> None:
        self.leaf, self.name, self.layer = leaf, name, layer


class _SeqNode:
    def __init__(self, children: list) -> None:
        self.children = children


class _MergeNode:
    def __init__(self, merge: Merge, name: str, branches: list[_SeqNode]) -> None:
        self.merge, self.name, self.branches = merge, name, branches
        self.splits: list[int] | None = None  # channel counts of the branches (concat)
        self.factors: list[np.ndarray] | None = None  # branch outputs (mul, training)


def check_values(name: str, arr: np.ndarray, source: str | None, dtype: np.dtype) -> None:
    """A weight is a real float and finite: a complex, integer-coded, text, date or record
    array is not weights (copying it would cast silently or crash mid-run), and a NaN or inf
    weight makes every output NaN."""
    if arr.dtype.kind != "f":
        raise ArchcalcError(f"weights: array '{name}' holds {arr.dtype} values, not real "
                            "floating-point numbers", file=source,
                            fix="load weights saved by archcalc (float32 or float64)")
    if arr.size and not np.isfinite(arr).all():
        bad = arr.reshape(-1)[np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0]]
        raise ArchcalcError(f"weights: array '{name}' holds a value {bad} (NaN or infinite)",
                            file=source, fix="load the weights of a run that did not diverge")
    top = float(np.abs(arr).max()) if arr.size else 0.0
    if top > float(np.finfo(dtype).max):       # a Python float: no cast to float32
        raise ArchcalcError(f"weights: array '{name}' holds a value of {top:.3g}, beyond "
                            f"{np.dtype(dtype).name}'s range", file=source,
                            fix="load the weights of a run that did not diverge, or use "
                                "--dtype float64")


def _fmt(shape) -> str:
    return "×".join(str(v) for v in shape)


class Model:
    """A network of executor layers with its params, grads and buffers (see contract)."""

    def __init__(self, network: Network, *, seed: int = 0, dtype: str = "float32",
                 init: str = "he") -> None:
        if dtype not in DTYPES:
            raise ArchcalcError(f"unknown dtype '{dtype}' for the executor",
                                fix="use float32 or float64")
        if init not in INITS:
            raise ArchcalcError(f"unknown initialiser '{init}'", fix="use one of: " + ", ".join(INITS))
        self.network = network
        self.dtype = np.dtype(dtype)
        self.store = Store(self.dtype, np.random.default_rng(seed), init,
                           noise=np.random.default_rng([seed, 1]))
        self.layers: dict[str, Layer] = {}
        self.root = self._make(network.root)
        self.records: list[LayerRecord] = []
        self._trained = False
        # a MemoryRecorder (below) to observe the arrays held at every step; None: no cost
        self.recorder: MemoryRecorder | None = None

    # ---- the arrays ----------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.store.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.store.grads

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self.store.buffers

    @property
    def frozen(self) -> set[str]:
        return self.store.frozen

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.network.input_shape)

    def freeze(self, prefixes) -> set[str]:
        """Mark every param whose name is a prefix or starts with "<prefix>." / "<prefix>/"
        as frozen; returns the names frozen. An unknown prefix is a user mistake."""
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        newly: set[str] = set()
        for prefix in prefixes:
            prefix = prefix.rstrip("./")
            hits = {name for name in self.params
                    if name.startswith(prefix + ".") or name.startswith(prefix + "/")}
            if not hits:
                raise ArchcalcError(f"--freeze '{echo(prefix, 60)}' matches no layer or block "
                                    "with parameters", fix=self._freeze_fix(prefix))
            newly |= hits
        self.store.frozen |= newly
        for layer in self.layers.values():  # a layer with every param frozen acts frozen
            keys = [layer.key(p) for p in layer.param_names]
            if keys and all(k in self.store.frozen for k in keys):
                layer.frozen = True
        return newly

    def _freeze_fix(self, prefix: str) -> str:
        """Name the layers a text prefix would have meant ('fc' → fc1, fc2)."""
        near = sorted({name for name, layer in self.layers.items()
                       if name.startswith(prefix) and layer.param_names})
        if near:
            shown = " ".join(f"--freeze {echo(n, 40)}" for n in near[:4])
            return ("it names a whole layer or block, not the start of a name: "
                    + shown + (" …" if len(near) > 4 else ""))
        return "name a layer or block, e.g. 'conv1' or 'layer2'; see `archcalc summary`"

    def reseed_noise(self, seed) -> None:
        """Restart the generator of dropout masks (the trainer does so every epoch, from the
        run's seed and the epoch, so that a resumed run draws the same masks)."""
        self.store.noise = np.random.default_rng(seed)

    def fix_dropout(self, fixed: bool = True) -> None:
        """Make dropout reuse its last mask (for gradient checks)."""
        for layer in self.layers.values():
            if isinstance(layer, Dropout):
                layer.fixed = fixed

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every param and buffer, by name."""
        out = {k: v.copy() for k, v in self.params.items()}
        out.update({k: v.copy() for k, v in self.buffers.items()})
        return out

    def load_state_dict(self, state, *, strict: bool = False, source: str | None = None) -> None:
        """Copy arrays into the model. Checks every name and shape first, so a bad file
        changes nothing; names the first missing or misshapen array. Extra arrays (e.g. an
        optimizer's state in a checkpoint) are ignored unless strict."""
        wanted = {**self.params, **self.buffers}
        for name, target in wanted.items():
            if name not in state:
                raise ArchcalcError(f"weights: array '{name}' is missing", file=source,
                                    fix="load weights saved from the same spec")
            shape = tuple(np.shape(state[name]))
            if shape != target.shape:
                raise ArchcalcError(f"weights: array '{name}' has shape {_fmt(shape) or 'scalar'}, "
                                    f"the model needs {_fmt(target.shape)}", file=source,
                                    fix="load weights saved from the same spec and input shape")
            check_values(name, np.asarray(state[name]), source, target.dtype)
        if strict:
            extra = [k for k in state if k not in wanted]
            if extra:
                raise ArchcalcError(f"weights: unexpected array '{extra[0]}'", file=source,
                                    fix="load weights saved from the same spec")
        for name, target in wanted.items():
            # real floats only (checked above): float64 → float32 is the one cast left
            np.copyto(target, np.asarray(state[name]), casting="same_kind")

    # ---- building the tree ---------------------------------------------------------
    def _make(self, node):
        if isinstance(node, Leaf):
            name = self.network.display(node.path)
            layer = make_layer(node.spec, name, self.store)
            self.layers[name] = layer
            return _LeafNode(node, name, layer)
        if isinstance(node, Sequence):
            return _SeqNode([self._make(child) for child in node.children])
        return _MergeNode(node, self.network.display(node.path),
                          [self._make(branch) for branch in node.branches])

    # ---- forward -------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, *input_shape) → y (N, *output_shape); fills self.records."""
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ArchcalcError(f"input of shape {_fmt(x.shape)} does not match the network's "
                                f"N×{_fmt(self.input_shape)}", layer=None,
                                fix=f"pass an array of shape (N, {', '.join(map(str, self.input_shape))})")
        # a private copy: the caller's array is never written, and layers may own it
        x = np.array(x, dtype=self.dtype, copy=True)
        self.records = []
        if self.recorder is not None:
            self.recorder.start(training)
        y, _ = self._forward(self.root, x, True, training)
        self._trained = training
        return y

    def _forward(self, node, x, owned: bool, training: bool):
        if isinstance(node, _LeafNode):
            return self._leaf(node, x, owned, training)
        if isinstance(node, _SeqNode):
            for child in node.children:
                x, owned = self._forward(child, x, owned, training)
            return x, owned
        return self._merge(node, x, owned, training)

    def _locate(self, exc: ArchcalcError, name: str, line) -> ArchcalcError:
        return exc.located(file=self.network.file, line=line, layer=name)

    def _leaf(self, node: _LeafNode, x, owned: bool, training: bool):
        layer = node.layer
        start = time.perf_counter()
        try:
            y = layer(x, training, owned)
        except ArchcalcError as exc:
            raise self._locate(exc, node.name, node.leaf.line) from None
        seconds = time.perf_counter() - start
        shared = y is x or np.shares_memory(y, x)
        kept = (0 if shared else y.nbytes) + layer.made_bytes
        self._record(node.name, layer.spec.type, y, kept, layer, seconds)
        if self.recorder is not None:
            self.recorder.step(node.name, "forward", (x, y), layer if training else None)
        keeps = training and (layer.keeps_output or (shared and layer.keeps_input))
        return y, (owned or not shared) and not keeps

    def _merge(self, node: _MergeNode, x, owned: bool, training: bool):
        outs = []
        last = len(node.branches) - 1
        rec = self.recorder
        mark = len(rec.held) if rec is not None else 0
        for i, branch in enumerate(node.branches):
            if rec is not None:  # held meanwhile: the outputs so far, x for later branches
                rec.held[mark:] = outs + ([x] if i < last else [])
            give = (owned and not training and i == last
                    and not any(np.may_share_memory(o, x) for o in outs))
            y, _ = self._forward(branch, x, give, training)
            outs.append(y)
        start = time.perf_counter()
        try:
            y = self._combine(node, outs, training)
        except ArchcalcError as exc:
            raise self._locate(exc, node.name, node.merge.line) from None
        self._record(node.name, node.merge.mode, y, y.nbytes, None, time.perf_counter() - start)
        if rec is not None:
            rec.held[mark:] = outs
            rec.step(node.name, "forward", (y,), node if node.factors is not None else None)
            del rec.held[mark:]
        return y, True

    def _combine(self, node: _MergeNode, outs: list[np.ndarray], training: bool) -> np.ndarray:
        first = outs[0]
        if node.merge.mode == "mul":
            node.factors = outs if training else None
            return _product(outs)
        if node.merge.mode == "add":
            for i, other in enumerate(outs[1:], start=2):
                if other.shape != first.shape:
                    raise ShapeError(f"add needs equal shapes: branch 1 gives {_fmt(first.shape[1:])}, "
                                     f"branch {i} gives {_fmt(other.shape[1:])}",
                                     fix="use a projection shortcut (1×1 conv with the same "
                                         "stride and filters)")
            y = first.copy() if len(outs) == 1 else np.add(outs[0], outs[1])
            for other in outs[2:]:
                y += other
            return y
        for i, other in enumerate(outs[1:], start=2):
            if other.ndim != first.ndim or other.shape[2:] != first.shape[2:]:
                raise ShapeError(f"concat needs equal H×W: branch 1 gives {_fmt(first.shape[1:])}, "
                                 f"branch {i} gives {_fmt(other.shape[1:])}",
                                 fix="give the branches the same stride and 'same' padding")
        node.splits = [o.shape[1] for o in outs]
        return np.concatenate(outs, axis=1)

    def _record(self, name: str, kind: str, y: np.ndarray, kept: int, layer, seconds) -> None:
        trainable = non_trainable = 0
        if layer is not None:
            for short in layer.param_names:
                size = self.params[layer.key(short)].size
                if layer.key(short) in self.frozen:
                    non_trainable += size
                else:
                    trainable += size
            non_trainable += sum(self.buffers[layer.key(b)].size for b in layer.buffer_names)
        self.records.append(LayerRecord(name, kind, tuple(y.shape[1:]), trainable,
                                        non_trainable, kept, seconds))

    # ---- backward ------------------------------------------------------------------
    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """dy (N, *output_shape) → dx (N, *input_shape); fills self.grads.

        input_grad=False (a trainer's choice) lets a first conv or dense layer skip the
        gradient of the network input, which nothing uses; then None is returned."""
        if not self._trained:
            raise RuntimeError("backward needs a forward(x, training=True) first")
        first = self.root.children[0] if self.root.children else None
        skip = (not input_grad and isinstance(first, _LeafNode)
                and first.layer.can_skip_dx)
        if skip:
            first.layer.need_dx = False
        try:
            dy = np.asarray(dy, dtype=self.dtype)
            if self.recorder is not None:  # the loss has read the output and made dy
                self.recorder.step("loss", "backward", (self.recorder.output, dy))
            dx = self._backward(self.root, dy)
        finally:
            if skip:
                first.layer.need_dx = True
        return None if not input_grad else dx

    def _backward(self, node, dy):
        rec = self.recorder
        if isinstance(node, _LeafNode):
            dx = node.layer.backward(dy)
            if rec is not None:
                rec.step(node.name, "backward", (dy, dx), done=node.layer)
            return dx
        if isinstance(node, _SeqNode):
            for child in reversed(node.children):
                if dy is None:  # only the skipped input gradient is None
                    break
                dy = self._backward(child, dy)
            return dy
        if node.merge.mode == "concat":
            bounds = np.cumsum(node.splits)[:-1]
            parts = np.split(dy, bounds, axis=1)
        elif node.merge.mode == "mul":
            # every part before any branch's backward runs: the factors stay untouched
            parts = _product_grads(dy, node.factors)
        else:
            parts = [dy] * len(node.branches)
        mark = len(rec.held) if rec is not None else 0
        if rec is not None:
            rec.step(node.name, "backward", (dy, *parts), done=node)
        dx = None
        for i, (branch, part) in enumerate(zip(node.branches, parts)):
            if rec is not None:  # held meanwhile: later branches' parts, the sum so far
                rec.held[mark:] = list(parts[i + 1:]) + ([] if dx is None else [dx])
            d = self._backward(branch, part)
            total = d if dx is None else dx + d  # a new array: never written over a branch's
            if rec is not None and dx is not None:
                rec.step(node.name, "backward", (dx, d, total))
            dx = total
        if rec is not None:
            del rec.held[mark:]
        return dx


class MemoryRecorder:
    """Opt-in (model.recorder = MemoryRecorder()): after every leaf and merge of a forward,
    and of a backward (the loss, each leaf, each merge's split of dy and each sum of its
    branches' gradients), the bytes of the activation and gradient arrays the model holds
    for that step: the step's own arrays (input and output; dy and dx), those the walker
    holds for later (a merge's input for its later branches, the branch outputs so far;
    gradient parts of later branches, the sum so far) and every cache a layer keeps for a
    backward that has not run yet (layer.cache, dropout's mask, a mul merge's factors).

    Each array counts as the whole buffer it views (followed through .base), once. Not
    counted: parameters, their gradients, buffers and optimizer state (the caller adds
    their nbytes), temporaries inside one layer's call (im2col columns, masks of a
    comparison), references Python frames keep past an array's last reader, and caches
    of layers whose backward has already run (the executor keeps them until the next
    forward). steps: (name, phase, bytes) in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, int]] = []
        self.held: list = []
        self.pending: dict[int, object] = {}   # id → layer or merge node with a live cache
        self.output = None                      # the last forward step's result

    def start(self, training: bool) -> None:
        self.steps, self.held, self.pending, self.output = [], [], {}, None

    def step(self, name: str, phase: str, arrays, keeps=None, done=None) -> None:
        if keeps is not None:
            self.pending[id(keeps)] = keeps
        found: list = [*self.held, *arrays]
        for owner in self.pending.values():
            found += _cached(owner)
        roots: dict[int, int] = {}
        for arr in found:
            if isinstance(arr, np.ndarray):
                while isinstance(arr.base, np.ndarray):
                    arr = arr.base
                roots[id(arr)] = arr.nbytes
        self.steps.append((name, phase, sum(roots.values())))
        if phase == "forward":
            self.output = arrays[-1]
        if done is not None:
            self.pending.pop(id(done), None)


def _cached(owner) -> list:
    """The arrays a layer (cache, dropout's mask) or a mul merge (factors) keeps."""
    out: list = []
    stack = [getattr(owner, "cache", None), getattr(owner, "mask", None),
             getattr(owner, "factors", None)]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            out.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
    return out


def _is_gate(out: np.ndarray, full: tuple[int, ...]) -> bool:
    """out is N×C×1×1 against an N×C×H×W full shape (a squeeze-and-excitation gate)."""
    return out.ndim == 4 == len(full) and out.shape[:2] == full[:2] and out.shape[2:] == (1, 1)


def _gate_fix(branch: int, full: tuple[int, ...]) -> str:
    if len(full) != 4:
        return f"make branch {branch} give {_fmt(full[1:])} too"
    return (f"make branch {branch} give {_fmt(full[1:])} or a {full[1]}×1×1 gate (e.g. "
            f"global_avgpool, then a 1×1 conv with {full[1]} filters)")


def _product(outs: list[np.ndarray]) -> np.ndarray:
    """The elementwise product of the branch outputs, a new (N, C, H, W) array; a branch of
    (N, C, 1, 1) broadcasts over H×W, any other shape must equal the full one."""
    full = next((o.shape for o in outs if o.ndim != 4 or o.shape[2:] != (1, 1)), outs[0].shape)
    widest = next(i for i, o in enumerate(outs, start=1) if o.shape == full)
    for i, other in enumerate(outs, start=1):
        if other.shape != full and not _is_gate(other, full):
            raise ShapeError(f"mul needs equal shapes or a C×1×1 gate: branch {widest} gives "
                             f"{_fmt(full[1:])}, branch {i} gives {_fmt(other.shape[1:])}",
                             fix=_gate_fix(i, full))
    if len(outs) == 1:
        return outs[0].copy()
    y = np.multiply(outs[0], outs[1])
    for other in outs[2:]:
        y = np.multiply(y, other, out=y if y.shape == full else None)
    return y


def _product_grads(dy: np.ndarray, factors: list[np.ndarray] | None) -> list[np.ndarray]:
    """dL/d(branch i) = dy · Π_{j≠i} branch j, summed over H×W for a broadcast C×1×1 branch;
    dy and the parts are (N, C, H, W) except those sums, (N, C, 1, 1)."""
    if factors is None:
        raise RuntimeError("mul: backward called without a training forward")
    parts = []
    for i, own in enumerate(factors):
        part = dy
        for j, other in enumerate(factors):
            if j != i:  # the first product makes a new array; the rest write into it
                part = np.multiply(part, other, out=None if part is dy else part)
        if part.shape != own.shape:
            part = part.sum(axis=(2, 3), keepdims=True)
        parts.append(part)
    return parts


def build(network: Network, *, seed: int = 0, dtype: str = "float32", init: str = "he") -> Model:
    """A Model with every parameter created by one inference pass on zeros (1, *input)."""
    model = Model(network, seed=seed, dtype=dtype, init=init)
    model.forward(np.zeros((1,) + tuple(network.input_shape), dtype=model.dtype), training=False)
    return model


# ---- the architecture's fingerprint ------------------------------------------------------

ARCH_LAYERS_STORED = 2000       # layers whose digests a checkpoint keeps (to name a change)


def architecture(network: Network) -> list[tuple[str, str, str]]:
    """The resolved architecture as (path, kind, fields as JSON) per node: what a layer
    computes, not how the YAML was written (comments, spacing, block shorthand) — so that a
    resume can tell a changed layer from a reformatted file."""
    import json

    def walk(node):
        if isinstance(node, Leaf):
            fields = {k: v for k, v in node.spec.model_dump(mode="json").items()
                      if k not in ("name", "type")}
            yield (network.display(node.path), node.kind,
                   json.dumps(fields, sort_keys=True, separators=(',', ':')))
        elif isinstance(node, Sequence):
            for child in node.children:
                yield from walk(child)
        else:
            yield network.display(node.path), f"merge:{node.mode}", str(len(node.branches))
            for branch in node.branches:
                yield from walk(branch)
                yield network.display(node.path), "end-branch", ""
    return list(walk(network.root))


def fingerprint(network: Network) -> dict:
    """{"hash": the architecture's sha256, "layers": ["path kind digest", ...]} (the first
    ARCH_LAYERS_STORED nodes), stored in a checkpoint's meta record."""
    import hashlib
    import json
    nodes = architecture(network)
    lines = [json.dumps(node) for node in nodes]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    short = [f"{path} {kind} " + hashlib.sha256(line.encode()).hexdigest()[:8]
             for (path, kind, _), line in zip(nodes[:ARCH_LAYERS_STORED], lines)]
    return {"hash": digest, "layers": short}


def arch_difference(stored: dict, network: Network) -> str | None:
    """None when `network` is the architecture of the stored fingerprint; else what
    differs first, e.g. "layer 'relu1' is tanh here, relu in the checkpoint's run"."""
    mine = fingerprint(network)
    if mine["hash"] == stored.get("hash"):
        return None
    theirs = stored.get("layers") or []
    for i, (a, b) in enumerate(zip(mine["layers"], theirs)):
        if a != b:
            path, kind = a.rsplit(" ", 1)[0].rsplit(" ", 1)
            spath, skind = b.rsplit(" ", 1)[0].rsplit(" ", 1)
            if (path, kind) != (spath, skind):
                return (f"layer {i + 1} is '{path}' ({kind}) here, '{spath}' ({skind}) in "
                        "the checkpoint's run")
            return f"layer '{path}' ({kind}) has other settings than in the checkpoint's run"
    n, m = len(mine["layers"]), len(theirs)
    if n > m and m < ARCH_LAYERS_STORED:
        path, kind = mine["layers"][m].rsplit(" ", 1)[0].rsplit(" ", 1)
        return f"layer {m + 1} '{path}' ({kind}) is not in the checkpoint's run"
    if n < m:
        return f"the spec ends after layer {n}; the checkpoint's run had {m} layers"
    return "the layers differ after the first ones the checkpoint records"
