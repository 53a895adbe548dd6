"""`archcalc trace`: every number of one forward and backward pass, as plain data.

One example (batch 1) runs through the executor in float64, in training mode (what a
training step computes: dropout draws a mask, batch norm uses this example's statistics).
The trace holds, in order:

    forward   per layer (and per merge): its output, named as the lecture notes name it —
              z for a pre-activation (dense, conv, normalisation), a for an activation —
              with the formula the layer applies and, for a layer with parameters, their values
    loss      the loss J, its formula, the target, and ∂J/∂a of the network's output
    backward  per layer, last first: the chain rule's factors with their formulas,
              ∂a/∂z (an activation's local derivative), ∂z/∂θ and ∂J/∂θ (each parameter),
              and the gradient handed to the layer before (∂J/∂a or ∂J/∂z of its input)
    update    with a learning rate η: one plain gradient step, θ − η·∂J/∂θ, per parameter

Every array is a `Values`: its shape and either every value (nested lists, C order) or, past
`limit` values, a summary (min, max, mean) so that a conv net's trace stays readable.

The executor is read only through its public face: a Model, its layers (by name), its params
and grads, and the `recorder` hook its forward and backward call after every step (the
protocol of archcalc.nn.network.MemoryRecorder). Nothing here imports the calculator.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.limits import echo

SUMMARY_LIMIT = 256  # values per array printed in full; beyond it: shape, min, max, mean

# Activation kinds whose Jacobian is diagonal: backward(ones) is exactly ∂a/∂z, element by
# element. Dropout's "derivative" is its scaled mask. (softmax and maxout mix elements.)
ELEMENTWISE = frozenset({"relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "hardsigmoid",
                         "hardswish", "silu", "gelu", "dropout"})
ACTIVATIONS = ELEMENTWISE - {"dropout"} | {"softmax", "maxout"}
# Layers whose output the notes call a pre-activation z: weighted sums and normalisations.
PRE_ACTIVATIONS = frozenset({"dense", "conv2d", "conv_transpose2d", "batchnorm", "layernorm"})
# Losses that read a class label only, not target values.
LABEL_LOSSES = frozenset({"cross_entropy", "hinge"})

FORWARD = {
    "dense": "z = W·a + b",
    "conv2d": "z = W ∗ a + b (each filter slid over the input)",
    "conv_transpose2d": "z = Wᵀ ∗ a + b (a transposed convolution)",
    "batchnorm": "z = γ·(a − μ)/√(σ² + ε) + β (this example's statistics)",
    "layernorm": "z = γ·(a − μ)/√(σ² + ε) + β (over the features)",
    "sigmoid": "a = σ(z) = 1/(1 + e⁻ᶻ)",
    "tanh": "a = tanh(z)",
    "relu": "a = max(0, z)",
    "relu6": "a = min(max(0, z), 6)",
    "leaky_relu": "a = z if z > 0 else slope·z",
    "elu": "a = z if z > 0 else α·(eᶻ − 1)",
    "hardsigmoid": "a = relu6(z + 3)/6",
    "hardswish": "a = z·relu6(z + 3)/6",
    "silu": "a = z·σ(z)",
    "gelu": "a = z·Φ(z)",
    "softmax": "a = eᶻ/Σ eᶻ",
    "maxout": "a = max over each group of pieces",
    # {o}: z when an activation reads the output (the notes' pre-activation), else a
    "dropout": "{o} = input·m/(1 − rate), m ~ Bernoulli(1 − rate)",
    "maxpool": "{o} = max over each window",
    "avgpool": "{o} = mean over each window",
    "global_avgpool": "{o} = mean over H×W",
    "flatten": "{o} = the input as one vector",
    "add": "{o} = Σ of the branches",
    "concat": "{o} = the branches stacked on channels",
    "mul": "{o} = Π of the branches",
}

LOCAL = {  # ∂a/∂z of the elementwise kinds, written as the notes write it
    "sigmoid": "a·(1 − a)",
    "tanh": "1 − a²",
    "relu": "1 if z > 0 else 0",
    "relu6": "1 if 0 < z < 6 else 0",
    "leaky_relu": "1 if z > 0 else slope",
    "elu": "1 if z > 0 else a + α",
    "hardsigmoid": "1/6 if −3 < z < 3 else 0",
    "hardswish": "0, 2z/6 + 1/2 or 1 by piece",
    "silu": "σ(z)·(1 + z·(1 − σ(z)))",
    "gelu": "Φ(z) + z·φ(z)",
    "dropout": "m/(1 − rate)",
}

# (kind, param) → (∂out/∂θ or None, how ∂J/∂θ is formed); {out}, {inp}: the symbols of the
# layer's output and input (z, a)
PARAM_GRADS = {
    ("dense", "weight"): ("{inp} (the layer's input: ∂{out}ᵢ/∂Wᵢⱼ = {inp}ⱼ)",
                          "∂J/∂{out} · ∂{out}/∂W: ∂J/∂{out}ᵢ·{inp}ⱼ"),
    ("dense", "bias"): ("1", "∂J/∂{out}"),
    ("conv2d", "weight"): ("{inp} (the input patch under the filter)",
                           "Σ over output positions ∂J/∂{out} · {inp}"),
    ("conv2d", "bias"): ("1", "Σ over output positions ∂J/∂{out}"),
}
PARAM_GRAD_OTHER = "from ∂J/∂{out} by {kind}'s backward"
PARAM_SYMBOLS = {  # the textbook's letter for a parameter, by kind
    ("batchnorm", "weight"): "γ", ("batchnorm", "bias"): "β",
    ("layernorm", "weight"): "γ", ("layernorm", "bias"): "β",
}

INPUT_GRADS = {  # ∂J/∂(input) of the other kinds, from ∂J/∂(output)
    "dense": "Wᵀ · ∂J/∂{out} (∂{out}/∂{inp} = W)",
    "conv2d": "∂J/∂{out} correlated with the flipped W (a transposed convolution)",
    "maxpool": "∂J/∂{out} routed to each window's maximum",
    "avgpool": "∂J/∂{out} spread evenly over each window",
    "global_avgpool": "∂J/∂{out}/(H·W) at every position",
    "flatten": "∂J/∂{out} reshaped back",
}
INPUT_GRAD_OTHER = "from ∂J/∂{out} by {kind}'s backward"

LOSS_FORMULAS = {  # J and its gradient for one example; {o}: the output's symbol (a or z)
    "half_sse": ("J = ½·Σ(t − {o})²", "∂J/∂{o} = {o} − t"),
    "mse": ("J = Σ({o} − t)²/C", "∂J/∂{o} = 2·({o} − t)/C"),
    "mae": ("J = Σ|{o} − t|/C", "∂J/∂{o} = sign({o} − t)/C"),
    "bce": ("J = Σ[max(z, 0) − z·t + log(1 + e⁻|ᶻ|)]/C (from logits z)",
            "∂J/∂z = (σ(z) − t)/C"),
    "cross_entropy": ("J = −log softmax(z)_y (from logits z)", "∂J/∂z = softmax(z) − onehot(y)"),
    "hinge": ("J = Σ_{{j≠y}} max(0, z_j − z_y + 1)",
              "∂J/∂z = 1 per violated margin j, minus their count at y"),
}


# ---- values ---------------------------------------------------------------------------------

@dataclass
class Values:
    """An array as plain data: `values` (nested lists) or, past the limit, `summary`."""

    shape: tuple[int, ...]
    values: list | float | None = None
    summary: dict[str, float] | None = None

    @classmethod
    def of(cls, arr: np.ndarray, limit: int | None) -> "Values":
        arr = np.asarray(arr, dtype=np.float64)
        if limit is not None and arr.size > limit:
            return cls(tuple(arr.shape), summary={"min": float(arr.min()),
                                                  "max": float(arr.max()),
                                                  "mean": float(arr.mean())})
        return cls(tuple(arr.shape), values=arr.tolist())

    def flat(self) -> list[float] | None:
        """Every value in C order, or None for a summary."""
        if self.values is None:
            return None
        return np.asarray(self.values, dtype=np.float64).reshape(-1).tolist()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape)}
        if self.values is not None:
            out["values"] = self.values
        else:
            out["summary"] = self.summary
        return out


@dataclass
class Factor:
    """One quantity of the chain rule: its symbol (∂J/∂z), the formula, the values."""

    symbol: str
    formula: str
    values: Values | None = None
    param: str | None = None  # the parameter it belongs to (weight, bias), if any
    note: str | None = None
    shared: bool = False      # the gradient of the notes' one bias shared by a layer
    of: str | None = None     # "output" / "input": a gradient of the layer's output or input

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbol, "formula": self.formula}
        if self.param is not None:
            out["param"] = self.param
        if self.values is not None:
            out["values"] = self.values.as_dict()
        if self.note is not None:
            out["note"] = self.note
        if self.shared:
            out["shared"] = True
        if self.of is not None:
            out["of"] = self.of
        return out


@dataclass
class Step:
    """One layer or merge: forward (its output) or backward (its factors)."""

    layer: str
    kind: str
    symbol: str              # what its output is called: z or a
    formula: str
    values: Values | None = None          # forward: the output
    input_from: str | None = None         # forward: the layer whose output it reads
    params: dict[str, Values] = field(default_factory=dict)   # forward: its parameters
    layer_input: Values | None = None     # forward, a layer with parameters: its input
    factors: list[Factor] = field(default_factory=list)       # backward

    def as_dict(self, phase: str) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "kind": self.kind, "symbol": self.symbol}
        if phase == "forward":
            out["formula"] = self.formula.replace("{o}", self.symbol)
            out["input_from"] = self.input_from
            out["output"] = self.values.as_dict() if self.values else None
            if self.params:
                out["params"] = {k: {"symbol": param_symbol(self.kind, k), **v.as_dict()}
                                 for k, v in self.params.items()}
        else:
            out["factors"] = [f.as_dict() for f in self.factors]
        return out


@dataclass
class Trace:
    spec: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights: str
    input: Values
    forward: list[Step]
    limit: int | None
    loss: dict[str, Any] | None = None
    backward: list[Step] = field(default_factory=list)
    update: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec, "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape), "dtype": "float64", "batch": 1,
            "mode": "training", "weights": self.weights,
            "summarised_above": self.limit,
            "input": self.input.as_dict(),
            "forward": [s.as_dict("forward") for s in self.forward],
            "loss": self.loss,
            "backward": [s.as_dict("backward") for s in self.backward],
            "update": self.update,
        }


# ---- reading values: --input, --target ---------------------------------------------------

_NUMBERS = re.compile(r"^[\s,;]*[-+0-9.eE]+([\s,;]+[-+0-9.eE]+)*[\s,;]*$")


def parse_numbers(text: str, option: str) -> list[float]:
    """'0.05,0.10' (commas, semicolons or spaces) → [0.05, 0.1]; one line naming the first
    word that is not a finite number."""
    words = [w for w in re.split(r"[\s,;]+", text.strip()) if w]
    if not words:
        raise ArchcalcError(f"{option} is empty", fix=f"give numbers, e.g. {option} 0.05,0.10")
    out = []
    for word in words:
        try:
            value = float(word)
        except ValueError:
            raise ArchcalcError(f"{option}: '{echo(word, 40)}' is not a number",
                                fix=f"give numbers separated by commas, e.g. {option} "
                                    "0.05,0.10, or a .json/.yaml/.npy file of them") from None
        if not math.isfinite(value):
            raise ArchcalcError(f"{option}: '{echo(word, 40)}' is not a finite number",
                                fix="give finite numbers")
        out.append(value)
    return out


def read_values(ref: str, option: str, size: int, seed: int) -> tuple[list[float] | np.ndarray, str]:
    """(the values, how to name them) from VALUES: numbers, 'random' (seeded standard normal,
    `size` of them), or a file: .npy, or .json/.yaml/.yml/.txt holding (nested) numbers."""
    text = ref.strip()
    if text.lower() == "random":
        return np.random.default_rng([seed, 2]).standard_normal(size), f"random (seed {seed})"
    if _NUMBERS.match(text) or not Path(text).exists():
        return parse_numbers(text, option), "given"
    return _read_value_file(Path(text), ref, option), echo(ref)


def _read_value_file(path: Path, ref: str, option: str) -> np.ndarray:
    from archcalc.spec.load import decode, read_bounded
    from archcalc.spec.yamlio import parse_text

    _refuse_not_a_file(path, ref, option)
    if path.suffix.lower() == ".npy":
        return _read_npy(path, ref, option)
    data = read_bounded(path, ref)  # MAX_SPEC_BYTES: a few tens of thousands of numbers
    try:
        raw = parse_text(decode(data), json_mode=path.suffix.lower() == ".json")
    except ArchcalcError as exc:
        raise exc.located(file=ref) from None
    if isinstance(raw, str):  # a .txt file of numbers parses as one YAML string
        try:
            return np.asarray(parse_numbers(raw, option))
        except ArchcalcError as exc:
            raise exc.located(file=ref) from None
    return np.asarray(nested_numbers(raw, f"{option} file", ref)[1])


VALUE_FORMS = ("numbers separated by commas, a .json/.yaml/.txt/.npy file of them, "
               "or random")


def _refuse_not_a_file(path: Path, ref: str, option: str) -> None:
    """A directory, a FIFO or a device is not a file of values: said as such, with the forms
    VALUES takes (the spec reader's refusal would call it "not a spec file")."""
    import stat
    try:
        mode = path.stat().st_mode
    except OSError:  # unreadable: the reader says why
        return
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    raise ArchcalcError(f"{option} {echo(ref, 80)} is {kind}, not a file of values",
                        fix=f"give {VALUE_FORMS}")


def _read_npy(path: Path, ref: str, option: str) -> np.ndarray:
    """A .npy array, its header checked against the file's size before any data is read."""
    from archcalc.limits import limit, raise_hint
    from archcalc.spec.load import open_bounded
    with open_bounded(path, ref, "MAX_CHECKPOINT_BYTES") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, order, dtype = read(fh, max_header_size=10_000)
            if dtype.hasobject or dtype.kind not in "fiu":
                raise ValueError(f"it holds {dtype} values, not numbers")
            need = math.prod(shape) * dtype.itemsize
            if need > path.stat().st_size or need > limit("MAX_CHECKPOINT_BYTES"):
                raise ValueError(f"its header promises {need:,} bytes")
            fh.seek(0)
            arr = np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArchcalcError(f"{option}: not a readable .npy file of numbers ({echo(exc, 80)})",
                                file=ref, fix="save it with numpy.save(path, array)"
                                + f"; {raise_hint('MAX_CHECKPOINT_BYTES')}"
                                if "promises" in str(exc) else
                                "save it with numpy.save(path, array)") from None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size and not np.isfinite(arr).all():
        raise ArchcalcError(f"{option}: the file holds a NaN or infinite value", file=ref,
                            fix="give finite numbers")
    return arr.reshape(-1)


def nested_numbers(obj: Any, what: str, file: str | None,
                   layer: str | None = None) -> tuple[tuple[int, ...], list[float]]:
    """(shape, flat values) of a number or rectangular nested list of numbers; one line
    naming the first non-number (a string, a boolean, a mapping) or a ragged row."""
    from archcalc.spec.yamlio import line_of

    def fail(message: str, node: Any, fix: str) -> ArchcalcError:
        return ArchcalcError(f"{what}: {message}", file=file, line=line_of(node),
                             layer=layer, fix=fix)

    def walk(node: Any, parent: Any) -> tuple[tuple[int, ...], list[float]]:
        if isinstance(node, dict):  # the parser's own mapping class is no name for a user
            raise fail("an object (a mapping of keys), not a list of numbers", node,
                       "write numbers (0.15, -2, 1e-3) in nested lists")
        if isinstance(node, bool) or not isinstance(node, (int, float, list)):
            raise fail(f"'{echo(node, 40)}' is not a number", parent,
                       "write numbers (0.15, -2, 1e-3) in nested lists")
        if not isinstance(node, list):
            value = float(node)
            if not math.isfinite(value):
                raise fail(f"{node} is not a finite number", parent, "give finite numbers")
            return (), [value]
        if not node:
            raise fail("an empty list", node, "give every row its values")
        parts = [walk(item, node) for item in node]
        if any(shape != parts[0][0] for shape, _ in parts):
            raise fail("rows of different lengths (a ragged array)", node,
                       "give every row the same number of values")
        return (len(node),) + parts[0][0], [v for _, vals in parts for v in vals]

    return walk(obj, obj)


# ---- weights ---------------------------------------------------------------------------------

WEIGHT_SUFFIXES = (".yaml", ".yml", ".json", ".npz")


def read_weights(ref: str, model) -> dict[str, np.ndarray]:
    """The file's arrays by "layer.param": archcalc's .npz (archcalc.nn.weights), or a small
    YAML/JSON file {layer name: {param name: nested lists}}. Every parameter of the model
    must be given with its exact shape; a name the model lacks is an error (a typo would
    otherwise leave random weights in place). Buffers (batch norm's running statistics) may
    be left out: a training-mode forward does not read them."""
    path = Path(ref)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from archcalc.nn.weights import read_archive
        state = dict(read_archive(path)[0]["model"])
        lines: dict[str, int | None] = {}
    elif suffix in WEIGHT_SUFFIXES:
        state, lines = _read_weight_text(path, ref)
    else:
        raise ArchcalcError("not a weights file archcalc reads", file=ref,
                            fix="give a .yaml/.yml/.json file {layer: {param: values}} or an "
                                "archcalc .npz")
    check_weights(state, lines, model, ref)
    return state


def _read_weight_text(path: Path, ref: str) -> tuple[dict[str, np.ndarray], dict[str, int | None]]:
    from archcalc.spec.load import decode, read_bounded
    from archcalc.spec.yamlio import line_of, parse_text

    try:
        raw = parse_text(decode(read_bounded(path, ref)), json_mode=path.suffix.lower() == ".json")
    except ArchcalcError as exc:
        if "may have at most" in exc.message:  # read_bounded speaks of a spec
            raise ArchcalcError(f"weights file: {exc.message.split(';')[0]}; a YAML/JSON weights "
                                "file is read like a spec (the same limit)", file=ref,
                                fix="save large weights as an archcalc .npz "
                                    "(archcalc train --save-weights)") from None
        raise exc.located(file=ref) from None
    if not isinstance(raw, dict):
        raise ArchcalcError("a weights file is a mapping {layer name: {param name: values}}",
                            file=ref, line=line_of(raw),
                            fix="start with a layer's name, e.g. 'hidden:'")
    state: dict[str, np.ndarray] = {}
    lines: dict[str, int | None] = {}
    for layer, params in raw.items():
        key_line = (getattr(raw, "key_lines", None) or {}).get(layer)
        if not isinstance(params, dict):
            raise ArchcalcError("a layer's entry maps parameter names to values",
                                file=ref, line=key_line, layer=str(layer),
                                fix=f"write {echo(layer, 40)}: {{weight: [[...]], bias: [...]}}")
        for name, value in params.items():
            shape, flat = nested_numbers(value, f"weights '{echo(name, 40)}'", ref, str(layer))
            key = f"{layer}.{name}"
            state[key] = np.asarray(flat, dtype=np.float64).reshape(shape)
            lines[key] = (getattr(params, "key_lines", None) or {}).get(name, key_line)
    return state, lines


def _split(model, key: str) -> tuple[str, str]:
    """"layer.param" → (layer, param), for layer names that hold dots themselves."""
    for name, layer in model.layers.items():
        if key.startswith(name + "."):
            short = key[len(name) + 1:]
            if short in layer.param_names or short in layer.buffer_names:
                return name, short
    layer, _, short = key.rpartition(".")
    return layer, short


def check_weights(state: dict[str, np.ndarray], lines: dict[str, int | None], model,
                  ref: str) -> None:
    """Every parameter present and of the model's shape; no name the model lacks."""
    from archcalc.spec.resolve import nearest

    wanted = {**model.params, **model.buffers}
    for key, arr in state.items():
        if key in wanted:
            continue
        layer, short = _split(model, key)
        if layer in model.layers:
            have = model.layers[layer].param_names + model.layers[layer].buffer_names
            raise ArchcalcError(f"weights: no parameter '{echo(short, 60)}' in this layer",
                                file=ref, line=lines.get(key), layer=layer,
                                fix="its parameters are " + (", ".join(have) or "none: "
                                                             "leave the layer out"))
        hint = nearest(layer, [n for n, l in model.layers.items() if l.param_names])
        raise ArchcalcError(f"weights: the spec has no layer '{echo(layer, 60)}'", file=ref,
                            line=lines.get(key),
                            fix=(f"did you mean '{hint}'? " if hint else "")
                            + "name layers as `archcalc summary` does")
    for name, layer in model.layers.items():
        for short in layer.param_names:
            key = layer.key(short)
            target = model.params[key]
            if key not in state:
                raise ArchcalcError(f"weights: '{short}' is missing", file=ref, layer=name,
                                    fix=f"give {name}.{short}, {_fmt(target.shape)} values")
            _check_shape(state[key], target, ref, lines.get(key), name, short)
        for short in layer.buffer_names:
            key = layer.key(short)
            if key in state:
                _check_shape(state[key], model.buffers[key], ref, lines.get(key), name, short)


def _check_shape(arr: np.ndarray, target: np.ndarray, ref: str, line, layer: str,
                 short: str) -> None:
    if tuple(np.shape(arr)) != target.shape:
        raise ArchcalcError(f"weights: '{short}' has shape {_fmt(np.shape(arr)) or 'scalar'}, "
                            f"the layer needs {_fmt(target.shape)}", file=ref, line=line,
                            layer=layer, fix=_shape_fix(layer, short, target.shape))


def _shape_fix(layer: str, short: str, shape: tuple[int, ...]) -> str:
    if short == "weight" and len(shape) == 2:
        return (f"give {shape[0]} rows of {shape[1]} values: (out, in), row i holds the "
                f"weights into unit i")
    return f"give {_fmt(shape)} values"


def _fmt(shape) -> str:
    return "×".join(str(v) for v in shape)


def beside(spec_path: Path) -> Path | None:
    """The weights file that sits beside a spec, <stem>.weights.yml (or .yaml/.json/.npz)."""
    for suffix in (".yml", ".yaml", ".json", ".npz"):
        candidate = spec_path.with_name(f"{spec_path.stem}.weights{suffix}")
        if candidate.is_file():
            return candidate
    return None


# ---- the run ---------------------------------------------------------------------------------

class _Tap:
    """The model's recorder (MemoryRecorder's protocol): keeps, after every step of the
    forward and backward, what the trace shows, as Values (copied or summarised at once:
    in-place layers overwrite their input later)."""

    def __init__(self, model, limit: int | None, from_file: bool) -> None:
        self.model, self.limit, self.from_file = model, limit, from_file
        self.held: list = []      # the protocol's list (the network writes to it)
        self.output = None
        self.forward: list[Step] = []
        self.backward: list[Step] = []
        self.producer: dict[int, str] = {}   # id(array) → the step that made it
        self.loss_grad: np.ndarray | None = None
        self.by_name: dict[str, Step] = {}
        self._alive: list = []
        self._merges_seen: set[str] = set()
        self._summed: str | None = None
        self._phase = "forward"

    def start(self, training: bool) -> None:
        self.forward, self.backward, self.held = [], [], []
        self._phase = "forward"

    def step(self, name: str, phase: str, arrays, keeps=None, done=None) -> None:
        if phase == "forward":
            self._forward(name, arrays)
        elif self._phase == "forward":       # the first backward step: the loss's dy
            self._phase = "backward"
            self._alive = []
            self.loss_grad = np.array(arrays[1], dtype=np.float64)
        elif name in self.model.layers:
            self._leaf_backward(name, arrays)
        else:
            self._merge_backward(name, arrays)

    def _forward(self, name: str, arrays) -> None:
        y = arrays[-1]
        self.output = y
        layer = self.model.layers.get(name)
        kind = layer.spec.type if layer is not None else _merge_mode(self.model, name)
        # a leaf's step gives (x, y), a merge's (y,); x is whatever array the step before
        # made (an in-place layer's output keeps its input's identity, and takes it over)
        source = self.producer.get(id(arrays[0]), "input") if len(arrays) == 2 else None
        symbol = "z" if kind in PRE_ACTIVATIONS else "a"
        if kind in ACTIVATIONS and source in self.by_name:
            self.by_name[source].symbol = "z"       # what an activation reads is a z
        step = Step(name, kind, symbol, FORWARD.get(kind, f"{{o}} = {kind}(input)"),
                    Values.of(y[0], self.limit), source)
        if layer is not None and layer.param_names:
            step.params = {p: Values.of(self.model.params[layer.key(p)], self.limit)
                           for p in layer.param_names}
            step.layer_input = Values.of(arrays[0][0], self.limit)  # ∂z/∂W reads it
        self.forward.append(step)
        self.by_name[name] = step
        self.producer[id(y)] = name
        self._alive.append(y)  # while ids name arrays, no array may die and lend its id

    def _symbols(self, name: str) -> tuple[str, str]:
        """(the symbol of the layer's output, of its input): z or a."""
        step = self.by_name.get(name)
        if step is None:
            return "a", "a"
        if step.kind in ACTIVATIONS:
            return "a", "z"
        source = self.by_name.get(step.input_from or "")
        return step.symbol, source.symbol if source is not None else "a"

    def _leaf_backward(self, name: str, arrays) -> None:
        dy, dx = arrays
        layer = self.model.layers[name]
        kind = layer.spec.type
        out, inp = self._symbols(name)
        names = {"out": out, "inp": inp, "kind": kind}
        step = Step(name, kind, out, "", factors=[
            Factor(f"∂J/∂{out}", "from the step after", Values.of(dy[0], self.limit),
                   of="output")])
        if kind in ELEMENTWISE:
            local = layer.backward(np.ones_like(dy))  # the Jacobian's diagonal, exactly
            step.factors.append(Factor(f"∂{out}/∂{inp}", LOCAL.get(kind, "f′"),
                                       Values.of(local[0], self.limit)))
            step.factors.append(Factor(f"∂J/∂{inp}", f"∂J/∂{out} · ∂{out}/∂{inp}",
                                       Values.of(dx[0], self.limit), of="input"))
        else:
            for short in layer.param_names:
                step.factors += self._param_factors(layer, short, names)
            if dx is not None:
                formula = INPUT_GRADS.get(kind, INPUT_GRAD_OTHER).format(**names)
                step.factors.append(Factor(f"∂J/∂{inp}", formula, Values.of(dx[0], self.limit),
                                           of="input"))
        self.backward.append(step)

    def _param_factors(self, layer, short: str, names: dict[str, str]) -> list[Factor]:
        key = layer.key(short)
        grad = self.model.grads[key]  # written by this layer's backward just now
        local, total = PARAM_GRADS.get((names["kind"], short),
                                       (None, PARAM_GRAD_OTHER.replace("{param}", short)))
        symbol = param_symbol(names["kind"], short)
        out = []
        if local is not None:
            values = self.by_name[layer.name].layer_input if short == "weight" else None
            out.append(Factor(f"∂{names['out']}/∂{symbol}", local.format(**names), values,
                              param=short))
        note = "frozen: not updated" if key in self.model.frozen else None
        out.append(Factor(f"∂J/∂{symbol}", total.format(**names), Values.of(grad, self.limit),
                          param=short, note=note))
        if short == "bias" and self.from_file and shared_bias(self.model.params[key]):
            # the notes' one b shared by the layer's units, written as equal entries: its
            # gradient is the sum of the units' (every unit's z moves with it)
            out.append(Factor("∂J/∂b", "Σᵢ ∂J/∂bᵢ (one b shared by the layer's units)",
                              Values.of(np.array(grad.sum()), self.limit), param=short,
                              shared=True, note="the bias entries are all equal: the notes' "
                                                "one b per layer"))
        return out

    def _merge_backward(self, name: str, arrays) -> None:
        kind = self.by_name[name].kind if name in self.by_name else "merge"
        if name not in self._merges_seen:            # the split of dy into the branches
            self._merges_seen.add(name)
            how = {"add": "copied to every branch", "concat": "split by channels",
                   "mul": "times the product of the other branches"}.get(kind, "split")
            self.backward.append(Step(name, kind, "a", "", factors=[
                Factor(f"∂J/∂{self.by_name[name].symbol if name in self.by_name else 'a'}",
                       f"from the step after, {how}", Values.of(arrays[0][0], self.limit),
                       of="output")]))
            return
        # a running sum over the branches (dx, d, total): the last one is the merge input's
        total = Step(name, kind, "a", "", factors=[Factor(
            "∂J/∂a", "Σ over the branches",
            Values.of(arrays[-1][0], self.limit), of="input")])
        if self.backward[-1].layer == name and self._summed == name:
            self.backward[-1] = total
        else:
            self.backward.append(total)
        self._summed = name


def param_symbol(kind: str, short: str) -> str:
    """W, b, γ, β as the textbooks write them; another parameter by its own name."""
    return PARAM_SYMBOLS.get((kind, short)) or {"weight": "W", "bias": "b"}.get(short, short)


def shared_bias(bias: np.ndarray) -> bool:
    """A bias vector of equal, nonzero entries: how a weights file writes the notes' one b
    per layer (b1 = 0.35 for both hidden units). Zeros are a bias at its initial value, not a
    shared one; the caller asks only of weights read from a file."""
    return (bias.ndim == 1 and bias.size > 1 and bool(np.all(bias == bias[0]))
            and bias[0] != 0)


def _merge_mode(model, name: str) -> str:
    for record in model.records:
        if record.name == name:
            return record.type
    return "merge"


def run_trace(network, *, input_values, weights: str | None = None, weights_said: str | None = None,
              target=None, loss: str = "half_sse", lr: float | None = None, seed: int = 0,
              full: bool = False) -> Trace:
    """Run one example forward (and, with a target, the loss, backward and with `lr` one
    update) and return the trace. weights: a weights file (read_weights), or None for the
    executor's seeded initial weights. input_values: as many as the spec's input, C order;
    target: as many as the output, or one class label. A value count that does not fit or a
    bad weights file is one ArchcalcError naming the layer."""
    from archcalc.nn.losses import LOSSES
    from archcalc.nn.network import build

    if loss not in LOSSES:
        raise ArchcalcError(f"unknown loss '{echo(loss, 40)}'", fix="one of " + ", ".join(LOSSES))
    model = build(network, seed=seed, dtype="float64", init=network.init or "he")
    x = _as_input(np.asarray(input_values, dtype=np.float64), network)
    if weights is not None:
        model.load_state_dict({**model.state_dict(), **read_weights(weights, model)},
                              source=weights)
    said = weights_said or (echo(weights) if weights else f"random (seed {seed})")
    limit = None if full else SUMMARY_LIMIT
    tap = _Tap(model, limit, from_file=weights is not None)
    model.recorder = tap
    y = model.forward(x, training=True)
    trace = Trace(network.name, tuple(network.input_shape), tuple(y.shape[1:]), said,
                  Values.of(x[0], limit), tap.forward, limit)
    if target is None:
        return trace
    last = tap.forward[-1] if tap.forward else None
    scores = y.reshape(1, -1)  # a C×H×W output is scored as C·H·W values
    t = _as_target(np.asarray(target, dtype=np.float64), scores.shape[1], loss,
                   last.layer if last else "input")
    value, dscores = LOSSES[loss](scores, t)
    model.backward(dscores.reshape(y.shape))
    J, dJ = (f.format(o=last.symbol if last else "a") for f in LOSS_FORMULAS.get(
        loss, (f"J = {loss}({{o}}, t)", "∂J/∂{o} = its gradient")))
    symbol = dJ.split(" = ", 1)[0]
    trace.loss = {"name": loss, "formula": J, "value": value,
                  "target": Values.of(t.reshape(-1), limit).as_dict(),
                  "target_is_label": t.ndim == 1,
                  "gradient": {"symbol": symbol, "formula": dJ.split(" = ", 1)[-1],
                               "values": Values.of(tap.loss_grad[0], limit).as_dict()}}
    trace.backward = tap.backward
    if lr is not None:
        trace.update = _update(model, lr, limit, x, scores.shape, t, loss,
                               shared=weights is not None)
    return trace


def _as_input(values: np.ndarray, network) -> np.ndarray:
    shape = tuple(network.input_shape)
    need = math.prod(shape)
    if values.size != need:
        raise ArchcalcError(f"--input has {values.size:,} value(s); the spec's input "
                            f"{_fmt(shape)} needs {need:,}", layer="input",
                            fix=f"give {need:,} numbers (C order for C×H×W), "
                                "a file of them, or --input random")
    return values.reshape((1,) + shape)


def _as_target(values: np.ndarray, outputs: int, loss: str, last: str) -> np.ndarray:
    """(1, C) target values, or (1,) a class label (one integer, when C > 1 or the loss
    reads labels only)."""
    one_label = values.size == 1 and float(values.reshape(-1)[0]).is_integer()
    if loss in LABEL_LOSSES or (one_label and outputs > 1):
        if not one_label or not 0 <= values.reshape(-1)[0] < outputs:
            shown = ",".join(f"{v:g}" for v in values.reshape(-1)[:4])
            raise ArchcalcError(f"--target {echo(shown, 40)} is not a class label of the "
                                f"{outputs:,} outputs" + (f" (--loss {loss} reads a label)"
                                                          if loss in LABEL_LOSSES else ""),
                                layer=last, fix=f"give one integer in 0..{outputs - 1}")
        return values.reshape(1).astype(np.intp)
    if values.size != outputs:
        raise ArchcalcError(f"--target has {values.size:,} value(s); the network gives "
                            f"{outputs:,}", layer=last,
                            fix=f"give {outputs:,} target values (or one class label "
                                f"0..{outputs - 1})" if outputs > 1 else "give 1 target value")
    return values.reshape(1, outputs)


def _update(model, lr: float, limit, x, shape, t, loss, shared: bool) -> dict[str, Any]:
    """One plain gradient step on every trainable parameter, and J after it."""
    from archcalc.nn.losses import LOSSES
    rows = []
    new = {}
    for key, p in model.params.items():
        if key in model.frozen:
            continue
        new[key] = p - lr * model.grads[key]
        rows.append({"param": key, "values": Values.of(new[key], limit).as_dict(),
                     "gradient": Values.of(model.grads[key], limit).as_dict()})
        if shared and key.endswith(".bias") and shared_bias(p):
            one_b = float(p.reshape(-1)[0] - lr * model.grads[key].sum())
            rows.append({"param": key, "shared": True, "values": {"shape": [], "values": one_b}})
    for key, value in new.items():
        model.params[key][...] = value
    model.recorder = None
    model.fix_dropout()  # J after the step sees the same dropout mask as the step
    after = model.forward(x, training=True)
    j_after = LOSSES[loss](after.reshape(shape), t)[0]
    return {"lr": lr, "formula": "θ ← θ − η·∂J/∂θ", "params": rows, "loss_after": j_after}
