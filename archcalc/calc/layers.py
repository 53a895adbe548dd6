"""Per-kind arithmetic: output shape, parameters, MACs and the window for the receptive field.

Conventions (README, "Conventions"): a MAC is one multiply-accumulate of a convolution or a
dense layer (conv: H_out·W_out·C_out·K_h·K_w·C_in/groups; dense: in·out); bias adds,
activations, pooling, normalisation and merges are not MACs. Parameters: weights, biases and
normalisation γ/β are trainable; batch-norm running mean and variance are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcalc.calc.shapes import Dim, fmt_shape, prod
from archcalc.errors import ShapeError, WindowTooLargeError
from archcalc.spec.layers import explicit_pads, pair, same_pads
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
    # Flatten and global pooling have one window the size of the whole map.
    window: tuple[tuple[int, int], tuple[int, int]] | None = None
    dims: tuple[Dim, Dim] | None = None
    notes: list[str] = field(default_factory=list)
    kernel: tuple[int, int] | None = None  # (Kh, Kw) of a conv or pooling window
    trainable: int = field(init=False)
    non_trainable: int = field(init=False)

    def __post_init__(self) -> None:
        self.trainable = self.weights + self.biases
        self.non_trainable = self.buffers


def _need_chw(leaf: Leaf, shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
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


def conv2d(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    spec = leaf.spec
    c_in = _need_chw(leaf, shape, name)[0]
    if c_in % spec.groups:
        raise ShapeError(f"input channels ({c_in}) not divisible by groups ({spec.groups})",
                         layer=name, fix="make the previous layer's channels a multiple of groups")
    dh, dw = _sliding(leaf, shape, name, spec.kernel, spec.stride, spec.padding, spec.dilation)
    kh, kw = pair(spec.kernel)
    weights = kh * kw * (c_in // spec.groups) * spec.filters
    out = (spec.filters, dh.out, dw.out)
    macs = dh.out * dw.out * spec.filters * kh * kw * c_in // spec.groups
    return LayerMath(out, weights, spec.filters if spec.bias else 0, 0, macs,
                     ((dh.span, dh.stride), (dw.span, dw.stride)), dims=(dh, dw),
                     kernel=(kh, kw))


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
    if len(shape) != 1:
        raise ShapeError(f"dense needs a flat input, got {fmt_shape(shape)}", layer=name,
                         fix="add 'flatten' (or global_avgpool with keepdims: false) before it")
    units = leaf.spec.units
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


KINDS = {
    "conv2d": conv2d, "maxpool": pool, "avgpool": pool, "global_avgpool": global_avgpool,
    "dense": dense, "flatten": flatten, "batchnorm": batchnorm, "lrn": lrn,
    "layernorm": layernorm, "maxout": maxout, "dropout": elementwise, "relu": elementwise,
    "leaky_relu": elementwise, "elu": elementwise, "sigmoid": elementwise, "tanh": elementwise,
    "softmax": elementwise,
}


def layer_math(leaf: Leaf, shape: tuple[int, ...], name: str) -> LayerMath:
    result = KINDS[leaf.kind](leaf, tuple(shape), name)
    if not leaf.trainable:  # frozen: its weights still count, as non-trainable (Keras)
        result.non_trainable += result.trainable
        result.trainable = 0
    return result
