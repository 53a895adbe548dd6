"""Per-kind arithmetic: output shape, parameters, MACs and the window for the receptive field.

Conventions (README, "Conventions"): a MAC is one multiply-accumulate of a convolution or a
dense layer (conv: H_out·W_out·C_out·K_h·K_w·C_in/groups; transposed conv:
H_in·W_in·C_in·K_h·K_w·C_out/groups; dense: in·out); bias adds, activations, pooling,
normalisation, merges (mul too), upsampling, padding and cropping are not MACs. Parameters: weights, biases and
normalisation γ/β are trainable; batch-norm running mean and variance are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from archcalc.calc.shapes import (Dim, TransposedDim, adaptive_largest_bin,
                                  adaptive_largest_step, fmt_shape, prod)
from archcalc.errors import ShapeError, WindowTooLargeError
from archcalc.limits import MAX_SIZE
from archcalc.spec.layers import GATES, RECURRENT, explicit_pads, pair, same_pads
from archcalc.spec.tree import Leaf


@dataclass
class LayerMath:
    """What one layer costs. weights: kernels, matrices and normalisation γ; biases: bias
    vectors and normalisation β; buffers: batch-norm running mean and variance (neither
    weights nor biases). trainable/non_trainable are derived (frozen layers move their
    weights and biases to non_trainable in layer_math)."""

    out_shape: tuple[int, ...]
    weights: int = 0
    biases: int = 0
    buffers: int = 0
    macs: int = 0
    # (span, stride) per spatial dim for the receptive field; None: no spatial window.
    # Flatten and global pooling have one window the size of the whole map. The span is the
    # most input pixels one output pixel reads; the stride may be a Fraction (upsampling).
    window: tuple[tuple[int, Fraction | int], tuple[int, Fraction | int]] | None = None
    dims: tuple[Dim, Dim] | None = None
    notes: list[str] = field(default_factory=list)
    kernel: tuple[int, int] | None = None  # (Kh, Kw) of a conv or pooling window
    # Values per example of the arrays the layer's forward makes, when they are more than its
    # output: a recurrent layer's step states, kept for backpropagation through time.
    kept: int | None = None
    trainable: int = field(init=False)
    non_trainable: int = field(init=False)

    def __post_init__(self) -> None:
        self.trainable = self.weights + self.biases
        self.non_trainable = self.buffers


def _need_chw(leaf: Leaf, shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
    if len(shape) == 2:
        raise ShapeError(f"{leaf.kind} needs a C×H×W input, got {fmt_shape(shape)} (a sequence "
                         "of T steps × F features)", layer=name,
                         fix="move the layer before 'to_sequence', or give the spec a C×H×W "
                             "input")
    if len(shape) != 3:
        raise ShapeError(f"{leaf.kind} needs a C×H×W input, got {fmt_shape(shape)} "
                         "(the input is already flat)", layer=name,
                         fix="move the layer before 'flatten', or give the spec a C×H×W input")
    return shape  # type: ignore[return-value]


def _sliding(leaf: Leaf, shape: tuple[int, ...], name: str, kernel, stride, padding,
             dilation=1, ceil_mode=False) -> tuple[Dim, Dim]:
    _, h, w = _need_chw(leaf, shape, name)
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pads = explicit_pads(padding)
    if pads is None:
        pads = same_pads(h, kh, sh, dh) + same_pads(w, kw, sw, dw)
    top, bottom, left, right = pads
    dims = (Dim(h, kh, sh, top, bottom, dh, ceil_mode), Dim(w, kw, sw, left, right, dw, ceil_mode))
    for axis, dim in zip(("H", "W"), dims):
        # Ceil mode may start a last window inside the input that overhangs it (PyTorch does).
        if dim.out <= 0 or (dim.span > dim.padded and not dim.ceil_mode):
            raise WindowTooLargeError(
                f"{dim.kernel_text()} larger than the padded input {dim.padded} along {axis}: "
                f"{dim.formula()} → output size {dim.out}", layer=name,
                fix="use a larger --input, more padding, or a smaller kernel/stride earlier")
    return dims


def _need_groups(c_in: int, groups: int, name: str) -> None:
    """A grouped convolution splits its input channels into `groups` equal parts."""
    if c_in % groups:
        raise ShapeError(f"input channels ({c_in}) not divisible by groups ({groups})",
                         layer=name, fix="make the previous layer's channels a multiple of groups")


def conv2d(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    spec = leaf.spec
    c_in = _need_chw(leaf, shape, name)[0]
    _need_groups(c_in, spec.groups, name)
    dh, dw = _sliding(leaf, shape, name, spec.kernel, spec.stride, spec.padding, spec.dilation)
    _check_pad_mode(spec.padding_mode, dh, dw, name, "padding_mode",
                    "use padding_mode: replicate or zeros, less padding, or a larger input")
    kh, kw = pair(spec.kernel)
    weights = kh * kw * (c_in // spec.groups) * spec.filters
    out = (spec.filters, dh.out, dw.out)
    macs = dh.out * dw.out * spec.filters * kh * kw * c_in // spec.groups
    return LayerMath(out, weights, spec.filters if spec.bias else 0, 0, macs,
                     ((dh.span, dh.stride), (dw.span, dw.stride)), dims=(dh, dw),
                     kernel=(kh, kw))


# The padding modes that copy input pixels into the border, and how far each can reach:
# a mirror without the edge pixel (reflect) has size − 1 pixels to copy, a mirror with it
# (symmetric) or the wrap-around (circular) has size.
_MIRROR_REACH = {"reflect": ("<", 1), "symmetric": ("<=", 0), "circular": ("<=", 0)}


def _check_pad_mode(mode: str, dh, dw, name: str, field_name: str, fix: str) -> None:
    """Reflect needs every pad < the size on its axis; symmetric and circular pad <= size."""
    if mode not in _MIRROR_REACH:
        return
    relation, less = _MIRROR_REACH[mode]
    for axis, dim, sides in (("H", dh, ("top", "bottom")), ("W", dw, ("left", "right"))):
        limit = dim.size - less
        for side, pad in zip(sides, (dim.pad_before, dim.pad_after)):
            if pad > limit:
                raise ShapeError(
                    f"{field_name} {mode} needs every pad {relation} the input size on its "
                    f"axis: {side} pad {pad} along {axis}, input {axis} = {dim.size}",
                    layer=name, fix=fix)


def conv_transpose2d(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """Transposed convolution: params C_in·(C_out/groups)·Kh·Kw (+ C_out biases); MACs
    H_in·W_in·C_in·Kh·Kw·C_out/groups (every input pixel scatters one kernel)."""
    spec = leaf.spec
    c_in, h, w = _need_chw(leaf, shape, name)
    _need_groups(c_in, spec.groups, name)
    top, bottom, left, right = explicit_pads(spec.padding)
    (kh, kw), (sh, sw), (dh_, dw_) = pair(spec.kernel), pair(spec.stride), pair(spec.dilation)
    oph, opw = pair(spec.output_padding)
    dims = (TransposedDim(h, kh, sh, top, bottom, dh_, oph),
            TransposedDim(w, kw, sw, left, right, dw_, opw))
    for axis, dim in zip("HW", dims):
        if dim.out <= 0:
            most = dim.out + dim.pad_before + dim.pad_after - 1
            sides = "top + bottom" if axis == "H" else "left + right"
            raise ShapeError(f"the padding crops the whole output along {axis}: {dim.formula()}",
                             layer=name, fix=f"use at most {most} padding along {axis} "
                                             f"({sides}), or a larger input")
        _within_size(dim.out, axis, name, "conv_transpose2d", "use a smaller stride or kernel")
    out = (spec.filters, dims[0].out, dims[1].out)
    per_group = spec.filters // spec.groups
    weights = c_in * per_group * kh * kw
    macs = h * w * c_in * kh * kw * per_group
    window = tuple((dim.sources, Fraction(1, dim.stride)) for dim in dims)
    return LayerMath(out, weights, spec.filters if spec.bias else 0, 0, macs, window,
                     kernel=(kh, kw))


def _within_size(size: int, axis: str, name: str, kind: str, fix: str) -> None:
    """A layer that makes the map larger must keep it within MAX_SIZE (as the spec's own
    sizes are): past it, no array could hold it and the arithmetic after it is moot."""
    if size > MAX_SIZE:
        raise ShapeError(f"{kind} gives {size:,} along {axis}, more than {MAX_SIZE:,} (10⁹), "
                         "the largest size archcalc takes", layer=name, fix=fix)


def adaptive_pool(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """Pooling to `output` h×w, PyTorch's bins: row i pools ⌊i·H/h⌋ … ⌈(i+1)·H/h⌉ − 1. The
    receptive field uses the largest bin and the largest step between bin starts."""
    c, h, w = _need_chw(leaf, shape, name)
    oh, ow = pair(leaf.spec.output)
    bins = (adaptive_largest_bin(h, oh), adaptive_largest_bin(w, ow))
    steps = (adaptive_largest_step(h, oh), adaptive_largest_step(w, ow))
    return LayerMath((c, oh, ow), window=((bins[0], steps[0]), (bins[1], steps[1])),
                     kernel=bins)


def upsample(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """Resize to in·scale or to size: not MACs. An output pixel reads 1 input pixel (nearest)
    or 2 per axis (bilinear); output pixels are H_in/H_out input pixels apart
    ((H_in − 1)/(H_out − 1) with align_corners)."""
    spec = leaf.spec
    c, h, w = _need_chw(leaf, shape, name)
    if spec.size is not None:
        oh, ow = spec.size
    else:
        sh, sw = pair(spec.scale)
        oh, ow = h * sh, w * sw
    for axis, size in zip("HW", (oh, ow)):
        _within_size(size, axis, name, "upsample", "use a smaller scale or size")
    window = []
    for size_in, size_out in ((h, oh), (w, ow)):
        span = 1 if spec.mode == "nearest" else min(2, size_in)
        if spec.align_corners:  # corners on corners: src = dst·(in − 1)/(out − 1)
            step = Fraction(size_in - 1, size_out - 1) if size_out > 1 else Fraction(0)
        else:
            step = Fraction(size_in, size_out)
        window.append((span, step))
    return LayerMath((c, oh, ow), window=tuple(window))


def crop(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """Centred `size` (the odd surplus's extra row/column goes to the bottom/right) or
    `cropping` amounts per side. A view of its input."""
    c, h, w = _need_chw(leaf, shape, name)
    spec = leaf.spec
    if spec.size is not None:
        oh, ow = spec.size
        if oh > h or ow > w:
            raise ShapeError(f"crop to {oh}×{ow} is larger than the input {h}×{w}", layer=name,
                             fix=f"crop to at most {h}×{w}, or give the branch a larger input")
    else:
        top, bottom, left, right = explicit_pads(spec.cropping)
        oh, ow = h - top - bottom, w - left - right
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"cropping [top {top}, bottom {bottom}, left {left}, right {right}]"
                             f" removes the whole {h}×{w} input (leaves {oh}×{ow})", layer=name,
                             fix=f"crop less than {h} rows and {w} columns in all")
    return LayerMath((c, oh, ow))


def pad(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """Pad the borders (NumPy's modes: reflect needs pad < size, symmetric pad <= size)."""
    c, h, w = _need_chw(leaf, shape, name)
    top, bottom, left, right = explicit_pads(leaf.spec.padding)
    dh, dw = Dim(h, 1, 1, top, bottom), Dim(w, 1, 1, left, right)
    _check_pad_mode(leaf.spec.mode, dh, dw, name, "mode",
                    "use less padding, a larger input, or mode: replicate or zeros")
    for axis, dim in zip("HW", (dh, dw)):
        _within_size(dim.padded, axis, name, "pad", "use less padding")
    return LayerMath((c, dh.padded, dw.padded))


def pool(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    spec = leaf.spec
    dh, dw = _sliding(leaf, shape, name, spec.kernel, spec.strides, spec.padding, 1,
                      spec.ceil_mode)
    for dim in (dh, dw):
        if 2 * max(dim.pad_before, dim.pad_after) > dim.kernel:
            raise ShapeError(f"pool padding {max(dim.pad_before, dim.pad_after)} is more than "
                             f"half the kernel {dim.kernel}: a window could see only padding",
                             layer=name, fix="use padding <= kernel // 2")
    return LayerMath((shape[0], dh.out, dw.out), window=((dh.span, dh.stride), (dw.span, dw.stride)),
                     dims=(dh, dw), kernel=(dh.kernel, dw.kernel))


def _whole_map(shape: tuple[int, ...]):
    """The receptive-field window of a layer that sees the whole H×W map at once."""
    return ((shape[1], shape[1]), (shape[2], shape[2])) if len(shape) == 3 else None


def global_avgpool(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    c, _, _ = _need_chw(leaf, shape, name)
    return LayerMath((c, 1, 1) if leaf.spec.keepdims else (c,), window=_whole_map(shape))


def dense(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """in·units MACs and weights (+ units biases); time_distributed: the same layer at each
    of T steps, T·in·units MACs."""
    units = leaf.spec.units
    if len(shape) == 2 and leaf.spec.time_distributed:
        steps, features = shape
        return LayerMath((steps, units), features * units, units if leaf.spec.bias else 0, 0,
                         steps * features * units)
    if len(shape) == 2:
        steps = f"{shape[0]} step{'' if shape[0] == 1 else 's'}"
        raise ShapeError(f"dense after a sequence of {steps} × "
                         f"{shape[1]} feature{'' if shape[1] == 1 else 's'}: "
                         "which step does it read?", layer=name,
                         fix="return_sequences: false on the recurrent layer before it (the "
                             "last step), or time_distributed: true on this dense (every "
                             "step)")
    if leaf.spec.time_distributed:
        raise ShapeError(f"dense with time_distributed needs a T×F sequence, got "
                         f"{fmt_shape(shape)}", layer=name,
                         fix="drop time_distributed, or give it a sequence (return_sequences: "
                             "true on the recurrent layer before it)")
    if len(shape) != 1:
        raise ShapeError(f"dense needs a flat input, got {fmt_shape(shape)}", layer=name,
                         fix="add 'flatten' (or global_avgpool with keepdims: false) before it")
    return LayerMath((units,), shape[0] * units, units if leaf.spec.bias else 0, 0,
                     shape[0] * units)


def flatten(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    return LayerMath((prod(shape),), window=_whole_map(shape))


def batchnorm(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    c = shape[0]
    return LayerMath(shape, c, c, 2 * c)  # γ | β | running mean, running variance


def lrn(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    _need_chw(leaf, shape, name)
    return LayerMath(shape)


def _number(value: float) -> str:
    """0.0001 (not 1e-04), 2 (not 2.0), 0.75: the float as written, without an exponent."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def lrn_form(spec) -> str:
    """Which LRN function a spec computes, in one phrase:
    'lrn in the sum form (the AlexNet paper's): b = a / (2 + 0.0001·Σ a²)^0.75 over 5 channels'."""
    k, alpha, beta = _number(spec.k), _number(spec.alpha), _number(spec.beta)
    if spec.form == "sum":
        return (f"lrn in the sum form (the AlexNet paper's): b = a / ({k} + {alpha}·Σ a²)^{beta}"
                f" over {spec.size} channels")
    return (f"lrn in the average form (PyTorch's alpha/size): b = a / ({k} + {alpha}/{spec.size}"
            f"·Σ a²)^{beta} over {spec.size} channels")


def layernorm(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    return LayerMath(shape, prod(shape), prod(shape))  # γ | β


def maxout(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    pieces = leaf.spec.pieces
    if shape[0] % pieces:
        raise ShapeError(f"maxout: {shape[0]} channels not divisible by pieces ({pieces})",
                         layer=name, fix=f"give the previous layer a multiple of {pieces} channels")
    return LayerMath((shape[0] // pieces,) + tuple(shape[1:]))


def elementwise(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    return LayerMath(tuple(shape))


# ---- sequences --------------------------------------------------------------------------------

def recurrent_counts(kind: str, features: int, units: int, bias: bool, biases: int,
                     directions: int) -> tuple[int, int]:
    """(weights, biases) of a recurrent layer with G gate blocks (rnn 1, lstm 4, gru 3):
    per direction weight_ih G·H·F + weight_hh G·H·H, and `biases` vectors of G·H."""
    g = GATES[kind]
    return (directions * g * units * (features + units),
            directions * biases * g * units if bias else 0)


def recurrent_kept(kind: str, steps: int, units: int, directions: int, reset_after: bool,
                   return_sequences: bool) -> int:
    """Values per example of the arrays the executor's forward makes and a training forward
    keeps for backpropagation through time (archcalc/nn/recurrent.py), S = T·D·H:
    every step's hidden state (S; the output itself when return_sequences), plus
    lstm: the cell states (S) and the four gates after their activations (4S);
    gru: the gates r, z, n (3S) and, reset_after, U_n·h_{t−1} + b_hn (S);
    rnn: nothing more (f' is read off h_t). A last-step output is a new array of D·H."""
    s = steps * directions * units
    extra = {"rnn": 0, "lstm": 5 * s, "gru": (4 if reset_after else 3) * s}[kind]
    return s + extra + (0 if return_sequences else directions * units)


def _need_sequence(leaf: Leaf, shape: tuple[int, ...], name: str) -> tuple[int, int]:
    if len(shape) == 3:
        raise ShapeError(f"{leaf.kind} needs a sequence of T steps × F features, got the "
                         f"C×H×W map {fmt_shape(shape)}", layer=name,
                         fix="add 'to_sequence' before it (W steps of C·H features; axis: "
                             "height for H steps of C·W)")
    if len(shape) != 2:
        raise ShapeError(f"{leaf.kind} needs a sequence of T steps × F features, got "
                         f"{fmt_shape(shape)} flat features", layer=name,
                         fix="give the spec an input [T, F], or token ids [T] and an "
                             "'embedding' before it")
    return shape  # type: ignore[return-value]


def recurrent(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """rnn, lstm, gru over T×F, H units, D directions: output T×D·H (return_sequences) or
    D·H; MACs T·D·G·H·(F + H) (per step and direction the products W_ih·x_t and W_hh·h_{t−1},
    the zero initial state's included, as PyTorch computes them; gate products, biases and
    activations are not MACs)."""
    spec = leaf.spec
    steps, features = _need_sequence(leaf, shape, name)
    d, h = (2 if spec.bidirectional else 1), spec.units
    weights, biases = recurrent_counts(leaf.kind, features, h, spec.bias, spec.biases, d)
    out = (steps, d * h) if spec.return_sequences else (d * h,)
    macs = steps * d * GATES[leaf.kind] * h * (features + h)
    kept = recurrent_kept(leaf.kind, steps, h, d, getattr(spec, "reset_after", False),
                          spec.return_sequences)
    return LayerMath(out, weights, biases, 0, macs, kept=kept)


def embedding(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """T token ids → T×units: vocab·units weights, 0 MACs (a row lookup)."""
    if len(shape) != 1:
        raise ShapeError(f"embedding reads T token ids, got {fmt_shape(shape)}", layer=name,
                         fix="give the spec an input [T] of token ids and put embedding first")
    return LayerMath((shape[0], leaf.spec.units), leaf.spec.vocab * leaf.spec.units)


def to_sequence(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    """C×H×W → W×(C·H) (axis width) or H×(C·W) (axis height); 0 MACs, a new tensor."""
    c, h, w = _need_chw(leaf, shape, name)
    return LayerMath((w, c * h) if leaf.spec.axis == "width" else (h, c * w))


def _sequence_guard(leaf: Leaf, shape: tuple[int, ...], name: str) -> None:
    """Batch norm and maxout read axis 0 as channels: on a T×F sequence that is the steps.
    (The spatial kinds refuse a sequence in _need_chw; elementwise kinds, layer norm,
    dropout, flatten, softmax (over each step's features) and dense take it.)"""
    if len(shape) == 2 and leaf.kind in ("batchnorm", "maxout"):
        raise ShapeError(f"{leaf.kind} does not take a sequence of T steps × F features "
                         f"({fmt_shape(shape)}): axis 0 would be the steps", layer=name,
                         fix="use it before 'to_sequence'" + (
                             ", or layernorm on the sequence" if leaf.kind == "batchnorm"
                             else ""))

KINDS = {
    "conv2d": conv2d, "maxpool": pool, "avgpool": pool, "global_avgpool": global_avgpool,
    "dense": dense, "flatten": flatten, "batchnorm": batchnorm, "lrn": lrn,
    "layernorm": layernorm, "maxout": maxout, "dropout": elementwise, "relu": elementwise,
    "leaky_relu": elementwise, "elu": elementwise, "sigmoid": elementwise, "tanh": elementwise,
    "softmax": elementwise,
    "conv_transpose2d": conv_transpose2d, "adaptive_avgpool": adaptive_pool,
    "adaptive_maxpool": adaptive_pool, "upsample": upsample, "crop": crop, "pad": pad,
    "relu6": elementwise, "hardsigmoid": elementwise, "hardswish": elementwise,
    "silu": elementwise, "gelu": elementwise,
    "rnn": recurrent, "lstm": recurrent, "gru": recurrent, "embedding": embedding,
    "to_sequence": to_sequence,
}


def layer_math(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    shape = tuple(shape)
    if len(shape) == 2:  # the only shape _sequence_guard refuses
        _sequence_guard(leaf, shape, name)
    result = KINDS[leaf.kind](leaf, shape, name)
    if not leaf.trainable:  # frozen: its weights still count, as non-trainable (Keras)
        result.non_trainable += result.trainable
        result.trainable = 0
    return result
