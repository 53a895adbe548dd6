"""A resolved spec with the executor's weights → an onnx.ModelProto.

The graph has one input "input" of shape (N, C, H, W) (or (N, F) features, (N, T, F) a
sequence, (N, T) int64 token ids before an embedding), with the batch N a symbolic dimension,
and one output "output". Each layer becomes one node named by the layer's display
name ("layer2.0.conv1", "inception_3a/5x5_reduce"), or a few nodes where ONNX has no single
operator for it; those helper nodes are named "<layer>/<Op>" and the last one carries the
layer's name. The weights are initializers named "<layer>.<param>", the executor's own arrays
in its (PyTorch's) layouts, written as float32.

EXPORTERS maps every layer kind of the spec language to the function that emits it; a test
holds it equal to the kinds of archcalc.spec.layers. Where ONNX can say a thing in the form
archcalc's ONNX importer reads back (Pad + Conv for padding_mode, x·Sigmoid(x) for silu,
torch's erf pattern for gelu before opset 20), that form is used. Kinds the importer has no
reading for still export exactly (numbers checked against onnxruntime in the tests):
  maxout            Reshape (N, C/p, p, H, W) + ReduceMax over the p pieces
  lrn               LRN, whose alpha is ONNX's alpha/size form: the spec's sum form gives
                    alpha·size. ONNX centres an even window one channel later than PyTorch,
                    so an even size is Mul + Pad (channels) + AveragePool + Pow + Div
  pad symmetric     Slices of the mirrored rows (negative step) concatenated around the map;
                    ONNX's Pad has no mode that repeats the edge pixel in its mirror
  circular (< 19)   Slices of the opposite edge concatenated (Pad's "wrap" from opset 19)
  adaptive pools    a pool when the bins are even (equal length and step), else a Slice and
                    a ReduceMean/ReduceMax per bin, along H then along W (the bins are
                    rectangles, so the mean of row means is the mean)
  crop              Slice on H and W
  layernorm         LayerNormalization over axes 1..
  rnn, lstm, gru    Transpose to (T, N, F) + RNN/LSTM/GRU (layout 0) + Transpose and Reshape
                    back to (N, T, D·H), or from Y_h to (N, D·H); initializers W, R, B in
                    ONNX's gate order (LSTM iofc, GRU zrh); `biases: 1` is B = Pad(Wb)
  embedding         Gather of the weight's rows at the int64 ids
  to_sequence       Transpose + Reshape
  dense on a sequence (time_distributed)  MatMul by Transpose(weight) + Add
Pools in ceil mode: PyTorch (and archcalc) drop a last window that would start in the
trailing padding; onnxruntime does too, but ONNX's shape inference does not, so where that
rule drops a window the pool is written in floor mode, which then has the same windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.spec.layers import explicit_pads, pair, same_pads
from archcalc.spec.tree import Leaf, Merge, Network, Sequence

DEFAULT_OPSET = 17
# The operator sets written here, each tested against onnxruntime. 17 is torch.onnx's
# default and has LayerNormalization; 19 adds Pad's wrap mode, 20 the Gelu operator.
OPSETS = range(17, 22)
INPUT, OUTPUT = "input", "output"
# ONNX keeps a model in one protobuf message, which cannot exceed 2 GiB.
MAX_PROTO_BYTES = 2**31 - 2**20


def check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise ArchcalcError(f"--opset {opset} is not one archcalc writes "
                            f"({OPSETS.start}–{OPSETS.stop - 1})",
                            fix=f"use --opset {DEFAULT_OPSET} (the default) or another "
                                f"between {OPSETS.start} and {OPSETS.stop - 1}")


# ---- the graph under construction ---------------------------------------------------------
class _Graph:
    """Nodes and initializers, appended in order (a topological order: every node's inputs
    are made before it)."""

    def __init__(self, opset: int) -> None:
        from onnx import helper
        self.helper = helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.names: set[str] = set()       # tensors
        self.node_names: set[str] = set()

    def tensor(self, base: str) -> str:
        """A tensor name not used yet, `base` itself when free."""
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def const(self, name: str, value: Any, dtype=np.float32) -> str:
        """An initializer holding `value` (float32 unless dtype says int64)."""
        from onnx import numpy_helper
        array = np.array(value, dtype=dtype)  # 0-d stays 0-d (ascontiguousarray makes it 1-d)
        tensor = numpy_helper.from_array(array, self.tensor(name))
        self.inits.append(tensor)
        return tensor.name

    def ints(self, name: str, values) -> str:
        return self.const(name, list(values), np.int64)

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        """Append one node with one output (a tensor named like the node); returns it. The
        node keeps `name` even where the tensor cannot (a layer named "output" or "input":
        the graph's own tensors), so the importer reads the layer's name back."""
        out = self.tensor(name)
        node_name = name if name not in self.node_names else out
        self.node_names.add(node_name)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=node_name, **attrs))
        return out

    def reduce(self, op: str, x: str, axes: list[int], name: str, keepdims: int = 1) -> str:
        """ReduceMean / ReduceMax over `axes`: an attribute before opset 18, an input since."""
        if self.opset >= 18:
            return self.node(op, [x, self.ints(f"{name}.axes", axes)], name, keepdims=keepdims)
        return self.node(op, [x], name, axes=axes, keepdims=keepdims)

    def slice(self, x: str, axis: int, start: int, end: int, step: int, name: str) -> str:
        return self.node("Slice", [x, self.ints(f"{name}.starts", [start]),
                                   self.ints(f"{name}.ends", [end]),
                                   self.ints(f"{name}.axes", [axis]),
                                   self.ints(f"{name}.steps", [step])], name)


@dataclass
class _Layer:
    """What one leaf's exporter needs: its name, spec, input tensor and per-example shapes
    (read off the executor's arrays), and its weights by short name."""

    graph: _Graph
    name: str
    spec: Any
    x: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    arrays: dict[str, np.ndarray]

    def weight(self, short: str) -> str:
        return self.graph.const(f"{self.name}.{short}", self.arrays[short])

    def helper(self, op: str) -> str:
        """The name of a helper node of this layer: "<layer>/<Op>"."""
        return f"{self.name}/{op}"


# ---- padding helpers ------------------------------------------------------------------------
def _onnx_pads(pads: tuple[int, int, int, int]) -> list[int]:
    """(top, bottom, left, right) → ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = pads
    return [top, left, bottom, right]


def _pad_node(layer: _Layer, x: str, pads, mode: str, value: float = 0.0) -> str:
    """x padded on H and W by `mode` (an archcalc mode name). Pad covers zeros, reflect and
    replicate (and circular from opset 19); symmetric, and circular before 19, are slices."""
    g = layer.graph
    onnx_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}.get(mode)
    if mode == "circular" and g.opset >= 19:
        onnx_mode = "wrap"
    if onnx_mode is None:
        return _mirror_concat(layer, x, pads, mode)
    top, bottom, left, right = pads
    amounts = g.ints(f"{layer.name}.pads", [0, 0, top, left, 0, 0, bottom, right])
    inputs = [x, amounts]
    if onnx_mode == "constant" and value:
        inputs.append(g.const(f"{layer.name}.value", value))
    return g.node("Pad", inputs, layer.helper("Pad"), mode=onnx_mode)


def _mirror_concat(layer: _Layer, x: str, pads, mode: str) -> str:
    """symmetric (rows p−1 … 0 before, S−1 … S−q after) or circular (rows S−p … S−1 before,
    0 … q−1 after), as archcalc.nn.padding takes them: W first, then whole padded rows on H,
    which fills the corners by the same rule. Each side is one Slice; a Concat joins them."""
    g = layer.graph
    _, h, w = layer.in_shape
    for axis, size, before, after in ((3, w, pads[2], pads[3]), (2, h, pads[0], pads[1])):
        parts = []
        if before:
            if mode == "symmetric":  # rows before−1 down to 0; the end −size−1 means "past 0"
                parts.append(g.slice(x, axis, before - 1, -size - 1, -1, layer.helper("Slice")))
            else:
                parts.append(g.slice(x, axis, size - before, size, 1, layer.helper("Slice")))
        parts.append(x)
        if after:
            if mode == "symmetric":
                end = size - 1 - after  # exclusive; −1 would mean the last row: say "past 0"
                parts.append(g.slice(x, axis, size - 1, end if end >= 0 else -size - 1, -1,
                                     layer.helper("Slice")))
            else:
                parts.append(g.slice(x, axis, 0, after, 1, layer.helper("Slice")))
        if len(parts) > 1:
            x = g.node("Concat", parts, layer.helper("Concat"), axis=axis)
    return x


def _resolved(padding, in_shape, kernel, stride, dilation=1) -> tuple[int, int, int, int]:
    """Explicit (top, bottom, left, right) pads; "same" resolved for this input's H×W."""
    pads = explicit_pads(padding)
    if pads is not None:
        return tuple(int(p) for p in pads)  # type: ignore[return-value]
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    return same_pads(in_shape[1], kh, sh, dh) + same_pads(in_shape[2], kw, sw, dw)


# ---- one function per kind ------------------------------------------------------------------
def _conv2d(layer: _Layer) -> str:
    spec, g = layer.spec, layer.graph
    kernel, stride, dilation = pair(spec.kernel), pair(spec.stride), pair(spec.dilation)
    pads = _resolved(spec.padding, layer.in_shape, kernel, stride, dilation)
    x = layer.x
    if spec.padding_mode != "zeros" and any(pads):
        # a Pad node before the Conv: the form torch.onnx writes and the importer folds back
        x = _pad_node(layer, x, pads, spec.padding_mode)
        pads = (0, 0, 0, 0)
    inputs = [x, layer.weight("weight")] + ([layer.weight("bias")] if spec.bias else [])
    return g.node("Conv", inputs, layer.name, kernel_shape=list(kernel), strides=list(stride),
                  pads=_onnx_pads(pads), dilations=list(dilation), group=spec.groups)


def _conv_transpose2d(layer: _Layer) -> str:
    spec = layer.spec
    inputs = [layer.x, layer.weight("weight")] + ([layer.weight("bias")] if spec.bias else [])
    return layer.graph.node(
        "ConvTranspose", inputs, layer.name, kernel_shape=list(pair(spec.kernel)),
        strides=list(pair(spec.stride)), pads=_onnx_pads(explicit_pads(spec.padding)),
        output_padding=list(pair(spec.output_padding)), dilations=list(pair(spec.dilation)),
        group=spec.groups)


def _pool_out(size: int, kernel: int, stride: int, before: int, after: int, ceil: bool) -> int:
    """Windows along one axis by ONNX's formula (ceil mode without PyTorch's drop rule)."""
    room = size + before + after - kernel
    return (-(-room // stride) if ceil else room // stride) + 1


def _pool(layer: _Layer, op: str) -> str:
    spec = layer.spec
    kernel, stride = pair(spec.kernel), spec.strides
    pads = _resolved(spec.padding, layer.in_shape, kernel, stride)
    ceil = spec.ceil_mode
    if ceil:
        # ceil mode where ONNX's formula gives the executor's windows; floor mode where
        # PyTorch's rule dropped the last window (then floor has exactly those windows)
        want = layer.out_shape[1:]
        ceil = all(_pool_out(n, k, s, b, a, True) == o for n, k, s, b, a, o in
                   ((layer.in_shape[1], kernel[0], stride[0], pads[0], pads[1], want[0]),
                    (layer.in_shape[2], kernel[1], stride[1], pads[2], pads[3], want[1])))
    extra = {"count_include_pad": 1} if op == "AveragePool" else {}
    return layer.graph.node(op, [layer.x], layer.name, kernel_shape=list(kernel),
                            strides=list(stride), pads=_onnx_pads(pads), ceil_mode=int(ceil),
                            **extra)


def _maxpool(layer: _Layer) -> str:
    return _pool(layer, "MaxPool")


def _avgpool(layer: _Layer) -> str:
    return _pool(layer, "AveragePool")


def _global_avgpool(layer: _Layer) -> str:
    if layer.spec.keepdims:
        return layer.graph.node("GlobalAveragePool", [layer.x], layer.name)
    return layer.graph.reduce("ReduceMean", layer.x, [2, 3], layer.name, keepdims=0)


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins along one axis: [⌊i·size/out⌋, ⌈(i+1)·size/out⌉)."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive(layer: _Layer, pool: str, reduce: str) -> str:
    g = layer.graph
    _, h, w = layer.in_shape
    oh, ow = pair(layer.spec.output)
    if (oh, ow) == (1, 1):
        return g.node(f"Global{pool}", [layer.x], layer.name)
    rows, cols = _bins(h, oh), _bins(w, ow)
    even = []
    for bins in (rows, cols):
        lengths = {b - a for a, b in bins}
        steps = {b[0] - a[0] for a, b in zip(bins, bins[1:])} or {1}
        even.append((lengths.pop(), steps.pop()) if len(lengths) == len(steps) == 1 else None)
    if all(even):
        (kh, sh), (kw, sw) = even  # type: ignore[misc]
        return g.node(pool, [layer.x], layer.name, kernel_shape=[kh, kw], strides=[sh, sw])
    x = layer.x
    for axis, bins in ((2, rows), (3, cols)):
        parts = [g.reduce(reduce, g.slice(x, axis, a, b, 1, layer.helper("Slice")), [axis],
                          layer.helper(reduce)) for a, b in bins]
        x = g.node("Concat", parts, layer.name if axis == 3 else layer.helper("Concat"),
                   axis=axis)
    return x


def _adaptive_avgpool(layer: _Layer) -> str:
    return _adaptive(layer, "AveragePool", "ReduceMean")


def _adaptive_maxpool(layer: _Layer) -> str:
    return _adaptive(layer, "MaxPool", "ReduceMax")


def _upsample(layer: _Layer) -> str:
    """Resize as F.interpolate: nearest is ONNX's asymmetric coordinates with floor; bilinear
    is half_pixel (PyTorch's source index (o + ½)·H/h − ½, clamped at 0) or align_corners."""
    spec, g = layer.spec, layer.graph
    if spec.mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode":
                 "align_corners" if spec.align_corners else "half_pixel"}
    if spec.scale is not None:
        sh, sw = pair(spec.scale)
        inputs = [layer.x, "", g.const(f"{layer.name}.scales", [1, 1, sh, sw])]
    elif spec.mode == "nearest" and not _resize_picks_torch_rows(layer):
        return _gather_rows(layer)
    else:
        inputs = [layer.x, "", "", _sizes(layer, list(spec.size))]
    return g.node("Resize", inputs, layer.name, **attrs)


def _torch_rows(size: int, out: int) -> np.ndarray:
    """The input row F.interpolate's nearest mode reads for each output row, given a `size`:
    min(⌊o·s⌋, size − 1) with s = size/out rounded to float32 first (PyTorch's arithmetic)."""
    ratio = np.float32(size) / np.float32(out)
    return np.minimum(np.floor(np.arange(out, dtype=np.float32) * ratio), size - 1).astype(np.int64)


def _resize_picks_torch_rows(layer: _Layer) -> bool:
    """Whether Resize (asymmetric, floor) reads the same rows: it divides o by the float32
    scale out/size instead of multiplying by size/out, which differs for a few pairs
    (6 → 74: output row 37 reads row 2 under PyTorch's rule, 3 under ONNX's)."""
    for size, out in zip(layer.in_shape[1:], layer.spec.size):
        scale = np.float32(out) / np.float32(size)
        onnx_rows = np.minimum(np.floor(np.arange(out, dtype=np.float32) / scale), size - 1)
        if not np.array_equal(onnx_rows.astype(np.int64), _torch_rows(size, out)):
            return False
    return True


def _gather_rows(layer: _Layer) -> str:
    """Nearest resizing as two Gathers of PyTorch's rows (then columns): exact for every
    size pair, where Resize's own arithmetic would pick other rows."""
    g = layer.graph
    (_, h, w), (oh, ow) = layer.in_shape, layer.spec.size
    rows = g.node("Gather", [layer.x, g.ints(f"{layer.name}.rows", _torch_rows(h, oh))],
                  layer.helper("Gather"), axis=2)
    return g.node("Gather", [rows, g.ints(f"{layer.name}.columns", _torch_rows(w, ow))],
                  layer.name, axis=3)


def _sizes(layer: _Layer, size: list[int]) -> str:
    """Resize's sizes (N, C, h, w), N read off the input at run time (Shape, Slice, Concat):
    the graph's batch is symbolic, and Resize's axes input (which would spare this) only
    exists from opset 18."""
    g = layer.graph
    shape = g.node("Shape", [layer.x], layer.helper("Shape"))
    batch = g.slice(shape, 0, 0, 1, 1, layer.helper("Slice"))
    rest = g.ints(f"{layer.name}.sizes", [layer.in_shape[0]] + size)
    return g.node("Concat", [batch, rest], layer.helper("Concat"), axis=0)


def _crop(layer: _Layer) -> str:
    _, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    spec, g = layer.spec, layer.graph
    if spec.size is not None:
        top, left = (h - oh) // 2, (w - ow) // 2
    else:
        top, _, left, _ = explicit_pads(spec.cropping)
    return g.node("Slice", [layer.x, g.ints(f"{layer.name}.starts", [top, left]),
                            g.ints(f"{layer.name}.ends", [top + oh, left + ow]),
                            g.ints(f"{layer.name}.axes", [2, 3])], layer.name)


def _pad(layer: _Layer) -> str:
    spec = layer.spec
    pads = explicit_pads(spec.padding)
    # `pad: 0` still makes a new tensor (as the executor and the calculator count it): a Pad
    # of zero amounts, which the importer reads back as a pad layer (an Identity would vanish)
    mode = spec.mode if any(pads) else "zeros"
    out = _pad_node(layer, layer.x, pads, mode, spec.value)
    return _rename_last(layer, out)


def _rename_last(layer: _Layer, out: str) -> str:
    """Give the last node of a layer's run of nodes the layer's name (its output tensor too),
    so that the layer reads as itself in Netron and in the importer."""
    g = layer.graph
    last = g.nodes[-1]
    if last.output[0] != out or out == layer.name:
        return out
    name = g.tensor(layer.name)
    g.names.discard(out)
    last.output[0] = name
    last.name = name
    return name


def _dense(layer: _Layer) -> str:
    if len(layer.in_shape) == 2:  # time_distributed: every step of a T×F sequence
        return _sequence_dense(layer)
    inputs = [layer.x, layer.weight("weight")] + (
        [layer.weight("bias")] if layer.spec.bias else [])
    return layer.graph.node("Gemm", inputs, layer.name, transB=1)  # weight (units, D)


def _flatten(layer: _Layer) -> str:
    return layer.graph.node("Flatten", [layer.x], layer.name, axis=1)


def _dropout(layer: _Layer) -> str:
    # the identity at inference (training_mode is false by default)
    ratio = layer.graph.const(f"{layer.name}.ratio", layer.spec.rate)
    return layer.graph.node("Dropout", [layer.x, ratio], layer.name)


def _batchnorm(layer: _Layer) -> str:
    inputs = [layer.x] + [layer.weight(k) for k in
                          ("weight", "bias", "running_mean", "running_var")]
    # ONNX's momentum weighs the running value (running = m·running + (1 − m)·batch)
    return layer.graph.node("BatchNormalization", inputs, layer.name, epsilon=layer.spec.eps,
                            momentum=1.0 - layer.spec.momentum)


def _lrn(layer: _Layer) -> str:
    spec, g = layer.spec, layer.graph
    if spec.size % 2:
        # ONNX's LRN is the average form: alpha/size · Σ a²
        return g.node("LRN", [layer.x], layer.name, size=spec.size,
                      alpha=spec.alpha_per_square * spec.size, beta=spec.beta, bias=spec.k)
    return _lrn_even(layer)


def _lrn_even(layer: _Layer) -> str:
    """b_c = a_c / (k + α'·Σ a²)^β over channels c − ⌊size/2⌋ … c + ⌊(size−1)/2⌋ (PyTorch's
    window; ONNX's LRN puts an even window's extra channel after c, not before): the squares
    as (N, 1, C, H, W), zero-padded on C, averaged over `size` channels by a 3-D pool."""
    spec, g = layer.spec, layer.graph
    size = spec.size
    squares = g.node("Mul", [layer.x, layer.x], layer.helper("Mul"))
    stacked = g.node("Unsqueeze", [squares, g.ints(f"{layer.name}.axes", [1])],
                     layer.helper("Unsqueeze"))
    padded = g.node("Pad", [stacked, g.ints(f"{layer.name}.pads",
                                            [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])],
                    layer.helper("Pad"), mode="constant")
    mean = g.node("AveragePool", [padded], layer.helper("AveragePool"),
                  kernel_shape=[size, 1, 1])
    back = g.node("Squeeze", [mean, g.ints(f"{layer.name}.squeeze_axes", [1])],
                  layer.helper("Squeeze"))
    # k + α'·Σ = k + (α'·size)·mean
    scaled = g.node("Mul", [back, g.const(f"{layer.name}.alpha", spec.alpha_per_square * size)],
                    layer.helper("Mul"))
    shifted = g.node("Add", [scaled, g.const(f"{layer.name}.k", spec.k)], layer.helper("Add"))
    power = g.node("Pow", [shifted, g.const(f"{layer.name}.beta", spec.beta)],
                   layer.helper("Pow"))
    return g.node("Div", [layer.x, power], layer.name)


def _layernorm(layer: _Layer) -> str:
    inputs = [layer.x, layer.weight("weight"), layer.weight("bias")]
    return layer.graph.node("LayerNormalization", inputs, layer.name, axis=1,
                            epsilon=layer.spec.eps)


def _unary(op: str, **attrs: Any) -> Callable[[_Layer], str]:
    def emit(layer: _Layer) -> str:
        return layer.graph.node(op, [layer.x], layer.name, **attrs)
    emit.__doc__ = f"One {op} node."
    return emit


def _leaky_relu(layer: _Layer) -> str:
    return layer.graph.node("LeakyRelu", [layer.x], layer.name, alpha=layer.spec.slope)


def _elu(layer: _Layer) -> str:
    return layer.graph.node("Elu", [layer.x], layer.name, alpha=layer.spec.alpha)


def _relu6(layer: _Layer) -> str:
    g = layer.graph
    return g.node("Clip", [layer.x, g.const(f"{layer.name}.min", 0.0),
                           g.const(f"{layer.name}.max", 6.0)], layer.name)


def _hardsigmoid(layer: _Layer) -> str:
    return layer.graph.node("HardSigmoid", [layer.x], layer.name, alpha=1.0 / 6, beta=0.5)


def _silu(layer: _Layer) -> str:
    gate = layer.graph.node("Sigmoid", [layer.x], layer.helper("Sigmoid"))
    return layer.graph.node("Mul", [layer.x, gate], layer.name)


def _gelu(layer: _Layer) -> str:
    g, approximate = layer.graph, layer.spec.approximate
    if g.opset >= 20:
        return g.node("Gelu", [layer.x], layer.name, approximate=approximate)
    if approximate == "none":
        # torch.onnx's pattern before opset 20 (the importer reads it back as gelu):
        # x·(erf(x/√2) + 1)·½
        div = g.node("Div", [layer.x, g.const(f"{layer.name}.sqrt2", math.sqrt(2))],
                     layer.helper("Div"))
        erf = g.node("Erf", [div], layer.helper("Erf"))
        add = g.node("Add", [erf, g.const(f"{layer.name}.one", 1.0)], layer.helper("Add"))
        mul = g.node("Mul", [layer.x, add], layer.helper("Mul"))
        return g.node("Mul", [mul, g.const(f"{layer.name}.half", 0.5)], layer.name)
    # ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    cube = g.node("Mul", [layer.x, g.node("Mul", [layer.x, layer.x], layer.helper("Mul"))],
                  layer.helper("Mul"))
    inner = g.node("Add", [layer.x, g.node("Mul", [cube, g.const(f"{layer.name}.c", 0.044715)],
                                           layer.helper("Mul"))], layer.helper("Add"))
    tanh = g.node("Tanh", [g.node("Mul", [inner, g.const(f"{layer.name}.s",
                                                         math.sqrt(2 / math.pi))],
                                  layer.helper("Mul"))], layer.helper("Tanh"))
    one = g.node("Add", [tanh, g.const(f"{layer.name}.one", 1.0)], layer.helper("Add"))
    half = g.node("Mul", [layer.x, g.const(f"{layer.name}.half", 0.5)], layer.helper("Mul"))
    return g.node("Mul", [half, one], layer.name)


def _softmax(layer: _Layer) -> str:
    # over channels (features); a sequence's (N, T, F): over F, each step on its own
    axis = 2 if len(layer.in_shape) == 2 else 1
    return layer.graph.node("Softmax", [layer.x], layer.name, axis=axis)


def _maxout(layer: _Layer) -> str:
    """Output channel j = max of channels j·p … j·p + p − 1: (N, C, …) → (N, C/p, p, …),
    then the max over the pieces axis."""
    g, p = layer.graph, layer.spec.pieces
    c, rest = layer.in_shape[0], list(layer.in_shape[1:])
    shape = g.ints(f"{layer.name}.shape", [0, c // p, p] + rest)  # 0: keep the batch
    pieces = g.node("Reshape", [layer.x, shape], layer.helper("Reshape"))
    return g.reduce("ReduceMax", pieces, [2], layer.name, keepdims=0)


# ---- sequences (issue 13) -------------------------------------------------------------------
# ONNX's RNN, LSTM and GRU read X time-major, (T, N, F), with the default layout 0:
# onnxruntime's CPU kernels refuse layout 1 (batch-first, opset 14), and torch.onnx writes
# layout 0 too, so the importer reads one form. The spec's sequences are batch-first
# (N, T, F): a Transpose before the op, and after it a Transpose + Reshape back.
# Gate blocks in ONNX's order, as indices of PyTorch's (the executor's) blocks:
# LSTM i, o, f, c from PyTorch's i, f, g, o; GRU z, r, h from r, z, n.
ONNX_GATES: dict[str, tuple[int, ...]] = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def onnx_gate_order(kind: str, array: np.ndarray) -> np.ndarray:
    """A PyTorch-ordered (G·H, …) array with its G gate blocks in ONNX's order."""
    blocks = np.split(array, len(ONNX_GATES[kind]), axis=0)
    return np.concatenate([blocks[k] for k in ONNX_GATES[kind]], axis=0)


def _directions(spec) -> tuple[str, ...]:
    return ("", "_reverse") if spec.bidirectional else ("",)


def _stacked(layer: _Layer, short: str) -> np.ndarray:
    """(D, G·H, …): the executor's `short` array of each direction, gates in ONNX's order."""
    kind = layer.spec.type
    return np.stack([onnx_gate_order(kind, layer.arrays[short + suffix])
                     for suffix in _directions(layer.spec)])


def _recurrent_bias(layer: _Layer) -> str:
    """ONNX's B (D, 2·G·H) = [Wb, Rb]: PyTorch's bias_ih and bias_hh; with `biases: 1` the
    one vector is Wb and Rb is zeros, written as a Pad of the vector (so the importer knows
    the second half is no parameter of the layer, without reading any value)."""
    g, name = layer.graph, layer.name
    if layer.spec.biases == 2:
        both = np.concatenate([_stacked(layer, "bias_ih"), _stacked(layer, "bias_hh")], axis=1)
        return g.const(f"{name}.B", both)
    wb = _stacked(layer, "bias")
    zeros = g.ints(f"{name}.B_pads", [0, 0, 0, wb.shape[1]])  # Rb: G·H zeros after Wb
    return g.node("Pad", [g.const(f"{name}.Wb", wb), zeros], layer.helper("Pad"),
                  mode="constant")


def _recurrent(layer: _Layer) -> str:
    """rnn / lstm / gru: Transpose (N, T, F) → (T, N, F); the op; then Y (T, D, N, H) →
    Transpose (N, T, D, H) → Reshape (N, T, D·H) with return_sequences, else Y_h (D, N, H)
    → Transpose (N, D, H) → Reshape (N, D·H): PyTorch's h_n, the forward direction after
    step T beside the backward one after step 1, as the executor's last step."""
    spec, g, name = layer.spec, layer.graph, layer.name
    kind, d = spec.type, len(_directions(spec))
    x = g.node("Transpose", [layer.x], layer.helper("Transpose"), perm=[1, 0, 2])
    inputs = [x, g.const(f"{name}.W", _stacked(layer, "weight_ih")),
              g.const(f"{name}.R", _stacked(layer, "weight_hh"))]
    if spec.bias:
        inputs.append(_recurrent_bias(layer))
    attrs: dict[str, Any] = {"hidden_size": spec.units,
                             "direction": "bidirectional" if d == 2 else "forward"}
    if kind == "rnn":
        attrs["activations"] = ["Tanh" if spec.nonlinearity == "tanh" else "Relu"] * d
    if kind == "gru":  # PyTorch's GRU (reset_after) is ONNX's linear_before_reset
        attrs["linear_before_reset"] = int(spec.reset_after)
    op = _OP[kind]
    outs = [g.tensor(f"{name}/{op}_Y"), g.tensor(f"{name}/{op}_Y_h")]
    node_name = g.tensor(layer.helper(op))
    g.nodes.append(g.helper.make_node(op, inputs, outs, name=node_name, **attrs))
    if spec.return_sequences:
        y = g.node("Transpose", [outs[0]], layer.helper("Transpose"), perm=[2, 0, 1, 3])
        target = [0, 0, -1]
    else:
        y = g.node("Transpose", [outs[1]], layer.helper("Transpose"), perm=[1, 0, 2])
        target = [0, -1]
    return g.node("Reshape", [y, g.ints(f"{name}.shape", target)], name)


def _embedding(layer: _Layer) -> str:
    """Gather of the rows of weight (vocab, units) at the int64 ids (N, T)."""
    return layer.graph.node("Gather", [layer.weight("weight"), layer.x], layer.name, axis=0)


def _to_sequence(layer: _Layer) -> str:
    """(N, C, H, W) → Transpose (N, W, C, H) → Reshape (N, W, C·H): step t is column t
    (axis height: (N, H, C, W) → (N, H, C·W))."""
    g = layer.graph
    perm = [0, 3, 1, 2] if layer.spec.axis == "width" else [0, 2, 1, 3]
    moved = g.node("Transpose", [layer.x], layer.helper("Transpose"), perm=perm)
    return g.node("Reshape", [moved, g.ints(f"{layer.name}.shape", [0, 0, -1])], layer.name)


def _sequence_dense(layer: _Layer) -> str:
    """time_distributed dense on (N, T, F): MatMul by weightᵀ (+ bias), torch.onnx's form of
    nn.Linear on a 3-D input (Gemm is 2-D only). The initializer is the executor's weight
    (units, F); a Transpose node turns it (ONNX's constant folding makes it one array)."""
    g = layer.graph
    w = g.node("Transpose", [layer.weight("weight")], layer.helper("Transpose"), perm=[1, 0])
    # the MatMul carries the layer's name (the importer names the dense by it; the Add of
    # the bias keeps its shape)
    y = g.node("MatMul", [layer.x, w], layer.name)
    if not layer.spec.bias:
        return y
    return g.node("Add", [y, layer.weight("bias")], layer.helper("Add"))


EXPORTERS: dict[str, Callable[[_Layer], str]] = {
    "conv2d": _conv2d, "conv_transpose2d": _conv_transpose2d,
    "maxpool": _maxpool, "avgpool": _avgpool, "global_avgpool": _global_avgpool,
    "adaptive_avgpool": _adaptive_avgpool, "adaptive_maxpool": _adaptive_maxpool,
    "upsample": _upsample, "crop": _crop, "pad": _pad,
    "dense": _dense, "flatten": _flatten, "dropout": _dropout,
    "batchnorm": _batchnorm, "lrn": _lrn, "layernorm": _layernorm,
    "relu": _unary("Relu"), "relu6": _relu6, "leaky_relu": _leaky_relu, "elu": _elu,
    "sigmoid": _unary("Sigmoid"), "hardsigmoid": _hardsigmoid,
    "hardswish": _unary("HardSwish"), "silu": _silu, "gelu": _gelu,
    "tanh": _unary("Tanh"), "softmax": _softmax, "maxout": _maxout,
    "rnn": _recurrent, "lstm": _recurrent, "gru": _recurrent,
    "embedding": _embedding, "to_sequence": _to_sequence,
}


# ---- the walk --------------------------------------------------------------------------------
class _Walk:
    """Emits the nodes of a network in the executor's order, tracking each tensor's
    per-example shape from the executor's records."""

    def __init__(self, model: Any, graph: _Graph) -> None:
        self.network: Network = model.network
        self.model, self.graph = model, graph
        self.shapes = {r.name: tuple(r.output_shape) for r in model.records}

    def node(self, node, x: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        if isinstance(node, Leaf):
            return self.leaf(node, x, shape)
        if isinstance(node, Sequence):
            for child in node.children:
                x, shape = self.node(child, x, shape)
            return x, shape
        return self.merge(node, x, shape)

    def leaf(self, leaf: Leaf, x: str, shape) -> tuple[str, tuple[int, ...]]:
        name = self.network.display(leaf.path)
        executor = self.model.layers[name]
        stored = {**self.model.params, **self.model.buffers}
        arrays = {short: np.asarray(stored[executor.key(short)], dtype=np.float32)
                  for short in [*executor.param_names, *executor.buffer_names]}
        out_shape = self.shapes[name]
        layer = _Layer(self.graph, name, leaf.spec, x, tuple(shape), tuple(out_shape), arrays)
        emit = EXPORTERS.get(leaf.kind)
        if emit is None:  # a kind added to the spec language without an ONNX mapping
            raise ArchcalcError(f"layer kind '{leaf.kind}' has no ONNX mapping yet",
                                layer=name, file=self.network.file,
                                fix="export a spec without it, or add it to "
                                    "archcalc.exporters.onnx_export.EXPORTERS")
        return emit(layer), out_shape

    def merge(self, merge: Merge, x: str, shape) -> tuple[str, tuple[int, ...]]:
        outs = [self.node(branch, x, shape)[0] for branch in merge.branches]
        name = self.network.display(merge.path)
        g = self.graph
        if merge.mode == "concat":
            out = g.node("Concat", outs, name, axis=1)
        elif merge.mode == "add":  # (the spec language gives a merge two branches or more)
            out = g.node("Add" if len(outs) == 2 else "Sum", outs, name)
        else:  # mul: a C×1×1 gate broadcasts over H×W as NumPy's rules say
            out = outs[0]
            for k, other in enumerate(outs[1:], start=2):
                out = g.node("Mul", [out, other], name if k == len(outs) else f"{name}/Mul")
        return out, self.shapes[name]


def to_onnx(model: Any, *, opset: int = DEFAULT_OPSET, doc: str | None = None) -> Any:
    """An onnx.ModelProto of the executor Model `model` (archcalc.nn.network.build, weights
    loaded): input "input" (N, *input_shape), output "output" (N, *output_shape), N symbolic.
    Shapes come from the model's last forward pass (build runs one)."""
    from onnx import TensorProto, helper

    check_opset(opset)
    network: Network = model.network
    graph = _Graph(opset)
    graph.names.update((INPUT, OUTPUT))  # the graph's own tensors: no layer's may take them
    out, out_shape = _Walk(model, graph).node(
        network.root, INPUT, tuple(network.input_shape))
    if out == INPUT:  # a network with no layers: the identity
        out = graph.node("Identity", [INPUT], "identity")
    _rename_output(graph, out)
    size = sum(t.ByteSize() for t in graph.inits)
    if size > MAX_PROTO_BYTES:
        raise ArchcalcError(f"the weights take {size / 2**30:.1f} GiB; an ONNX file holds at "
                            "most 2 GiB in one protobuf", file=network.file,
                            fix="export a smaller network (or its architecture at a smaller "
                                "--input)")
    dims = lambda shape: ["N", *shape]  # noqa: E731
    # token ids are int64 (Gather's indices, and torch.onnx's nn.Embedding input); the
    # executor takes them as floats holding whole numbers
    dtype = TensorProto.INT64 if takes_token_ids(network) else TensorProto.FLOAT
    onnx_graph = helper.make_graph(
        graph.nodes, network.name,
        [helper.make_tensor_value_info(INPUT, dtype, dims(network.input_shape))],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, dims(out_shape))],
        initializer=graph.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="archcalc",
                              ir_version=helper.find_min_ir_version_for(opsets))
    from archcalc import __version__
    proto.producer_version = __version__
    proto.doc_string = doc or f"{network.name}, exported by archcalc {__version__}"
    helper.set_model_props(proto, {"archcalc.separator": network.separator,
                                   **({"archcalc.source": network.source}
                                      if network.source else {})})
    return proto


def takes_token_ids(network: Network) -> bool:
    """The input is (N, T) token ids: the first layer is an embedding."""
    first = next(network.leaves(), None)
    return first is not None and first.kind == "embedding"


def _rename_output(graph: _Graph, tensor: str) -> None:
    """The last tensor becomes the graph's "output" (wherever a node reads or writes it)."""
    for node in graph.nodes:
        for i, name in enumerate(node.output):
            if name == tensor:
                node.output[i] = OUTPUT
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = OUTPUT
