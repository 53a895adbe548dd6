"""One pydantic model per layer kind, and the discriminated union over them.

Each model holds only what the spec says; shapes are the calculator's and the executor's
business. Integer pairs (kernel, stride, dilation) accept an int or [h, w]; padding accepts
an int, [h, w], [top, bottom, left, right], "valid" or "same" (see `Padding`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from archcalc.limits import MAX_SIZE

# Strict: YAML's `true` is not the integer 1, and 3.5 filters is an error, not 3.
# Every float field refuses inf and nan (allow_inf_nan=False): `eps: .inf` or `slope: 1e309`
# would pass a `gt=0` bound and turn every value the executor computes into nan; a field with
# no natural upper bound stops at MAX_SIZE (10⁹), past which float32 arithmetic overflows.
PositiveInt = Annotated[int, Strict(), Field(gt=0, le=MAX_SIZE)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=MAX_SIZE)]
IntPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
IntPairOrZero = Union[NonNegInt, tuple[NonNegInt, NonNegInt]]
# Explicit padding amounts: p (all sides), [h, w] (top = bottom = h, left = right = w) or
# [top, bottom, left, right].
PadAmounts = Union[
    NonNegInt,
    tuple[NonNegInt, NonNegInt],
    tuple[NonNegInt, NonNegInt, NonNegInt, NonNegInt],
]
PadSpec = Union[PadAmounts, Literal["valid", "same"]]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """An int or (h, w) as (h, w)."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def explicit_pads(padding: PadSpec) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) for an explicit padding; None for "same"."""
    if padding == "same":
        return None
    if padding == "valid":
        return (0, 0, 0, 0)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)  # type: ignore[return-value]


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding (before, after) for "same": the output has ceil(size / stride) positions.

    TensorFlow's rule (the extra pixel of an odd total goes after): total padding
    max((out - 1)·stride + dilation·(kernel - 1) + 1 - size, 0), before = total // 2.
    At stride 1 this is PyTorch's padding="same".
    """
    out = -(-size // stride)
    eff = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + eff - size, 0)
    return (total // 2, total - total // 2)


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    # False freezes the layer: its weights count as non-trainable and are not updated.
    trainable: bool = True

    @property
    def kind(self) -> str:
        return self.type  # type: ignore[attr-defined]


class Conv2D(_Layer):
    """2-D convolution: `filters` kernels of `kernel` over in_channels/groups channels."""

    type: Literal["conv2d"] = "conv2d"
    filters: PositiveInt
    kernel: IntPair
    stride: IntPair = 1
    padding: PadSpec = 0
    dilation: IntPair = 1
    groups: PositiveInt = 1
    bias: bool = True
    # What the padded border holds (PyTorch's padding_mode): zeros, the mirror image without
    # the edge pixel (reflect), the edge pixel repeated (replicate), or the opposite edge
    # (circular: the image wraps around).
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    @model_validator(mode="after")
    def _groups_divide_filters(self) -> "Conv2D":
        if self.filters % self.groups:
            raise ValueError(
                f"filters ({self.filters}) must be divisible by groups ({self.groups})")
        return self


class ConvTranspose2D(_Layer):
    """Transposed convolution ("deconvolution", up-convolution): every input pixel scatters
    one C_out/groups×K_h×K_w kernel, placed `stride` apart; `padding` crops the result,
    `output_padding` adds rows/columns at the end (bottom, right) to pick among the sizes a
    strided convolution maps to the same input size.
    Output size: (W − 1)·S − P_before − P_after + D·(F − 1) + output_padding + 1."""

    type: Literal["conv_transpose2d"] = "conv_transpose2d"
    filters: PositiveInt
    kernel: IntPair
    stride: IntPair = 1
    padding: PadAmounts = 0
    output_padding: IntPairOrZero = 0
    dilation: IntPair = 1
    groups: PositiveInt = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self) -> "ConvTranspose2D":
        if self.filters % self.groups:
            raise ValueError(
                f"filters ({self.filters}) must be divisible by groups ({self.groups})")
        # PyTorch's rule: an output_padding of stride (or dilation) or more would add rows
        # that no input pixel reaches.
        for axis, op, s, d in zip("HW", pair(self.output_padding), pair(self.stride),
                                  pair(self.dilation)):
            if op >= max(s, d):
                raise ValueError(f"output_padding {op} along {axis} must be smaller than the "
                                 f"stride ({s}) or the dilation ({d})")
        return self


class _Pool(_Layer):
    kernel: IntPair
    stride: IntPair | None = None  # defaults to the kernel (non-overlapping windows)
    padding: PadSpec = 0
    ceil_mode: bool = False

    @property
    def strides(self) -> tuple[int, int]:
        return pair(self.stride if self.stride is not None else self.kernel)


class MaxPool(_Pool):
    """Max pooling; padded positions never win (they hold -inf)."""

    type: Literal["maxpool"] = "maxpool"


class AvgPool(_Pool):
    """Average pooling; padded zeros count in the divisor (PyTorch's count_include_pad=True)."""

    type: Literal["avgpool"] = "avgpool"


class GlobalAvgPool(_Layer):
    """Mean over H×W: C×H×W → C×1×1 (keepdims, as PyTorch's AdaptiveAvgPool2d(1)) or C."""

    type: Literal["global_avgpool"] = "global_avgpool"
    keepdims: bool = True


class _AdaptivePool(_Layer):
    """Pooling to a fixed output size h×w whatever the input (PyTorch's AdaptiveAvgPool2d /
    AdaptiveMaxPool2d): output row i pools input rows ⌊i·H/h⌋ … ⌈(i+1)·H/h⌉ − 1."""

    output: IntPair


class AdaptiveAvgPool(_AdaptivePool):
    type: Literal["adaptive_avgpool"] = "adaptive_avgpool"


class AdaptiveMaxPool(_AdaptivePool):
    type: Literal["adaptive_maxpool"] = "adaptive_maxpool"


class Upsample(_Layer):
    """Resize by an integer `scale` (int or [h, w]) or to a `size` [h, w], as F.interpolate:
    nearest copies input pixel ⌊o·H_in/H_out⌋; bilinear interpolates the two nearest
    neighbours per axis, with align_corners (false: pixel centres, PyTorch's default)."""

    type: Literal["upsample"] = "upsample"
    scale: IntPair | None = None
    size: tuple[PositiveInt, PositiveInt] | None = None
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "Upsample":
        if (self.scale is None) == (self.size is None):
            raise ValueError("give exactly one of scale (e.g. 2) and size ([h, w])")
        if self.align_corners and self.mode != "bilinear":
            raise ValueError("align_corners only applies to mode: bilinear")
        return self


class Crop(_Layer):
    """Cut the map down: `size: [h, w]` (or s for s×s) keeps a centred h×w window (an odd
    surplus leaves its extra row/column at the bottom/right, as Keras's CenterCrop does), or
    `cropping` removes p, [h, w] or [top, bottom, left, right] pixels from the sides (Keras's
    Cropping2D). A view: no new tensor."""

    type: Literal["crop"] = "crop"
    size: tuple[PositiveInt, PositiveInt] | None = None
    cropping: PadAmounts | None = None

    @field_validator("size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        """`crop: 56` is a 56×56 window (torchvision's CenterCrop(56))."""
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_form(self) -> "Crop":
        if (self.size is None) == (self.cropping is None):
            raise ValueError("give exactly one of size ([h, w], centred) and cropping "
                             "([top, bottom, left, right])")
        return self


class Pad(_Layer):
    """Pad the borders: `padding` as conv takes it (p, [h, w] or [top, bottom, left, right]).
    Modes: zeros (the constant `value`; NumPy's "constant"), reflect (mirror without the edge
    pixel) and symmetric (mirror with it), as NumPy names the two mirrors, and replicate (the
    edge pixel repeated; NumPy's "edge"). NumPy's "constant" and "edge" are accepted."""

    type: Literal["pad"] = "pad"
    padding: PadAmounts
    mode: Literal["zeros", "reflect", "replicate", "symmetric"] = "zeros"
    value: float = Field(0.0, ge=-MAX_SIZE, le=MAX_SIZE, allow_inf_nan=False)

    @field_validator("mode", mode="before")
    @classmethod
    def _numpy_names(cls, value: Any) -> Any:
        return {"constant": "zeros", "edge": "replicate"}.get(value, value) \
            if isinstance(value, str) else value

    @model_validator(mode="after")
    def _value_is_for_zeros(self) -> "Pad":
        if self.value != 0.0 and self.mode != "zeros":
            raise ValueError(f"value applies to mode: zeros only (mode is {self.mode})")
        return self


class Dense(_Layer):
    """Fully connected layer on a flat input of N features: N·units weights (+ units biases)."""

    type: Literal["dense"] = "dense"
    units: PositiveInt
    bias: bool = True


class Flatten(_Layer):
    """C×H×W → C·H·W features (a view: no new tensor)."""

    type: Literal["flatten"] = "flatten"


class Dropout(_Layer):
    """Inverted dropout: zero with probability `rate` in training, identity at inference."""

    type: Literal["dropout"] = "dropout"
    rate: float = Field(0.5, ge=0.0, lt=1.0, allow_inf_nan=False)


class BatchNorm(_Layer):
    """Batch norm per channel: γ, β trainable; running mean and variance not trainable."""

    type: Literal["batchnorm"] = "batchnorm"
    eps: float = Field(1e-5, gt=0, le=MAX_SIZE, allow_inf_nan=False)
    momentum: float = Field(0.1, gt=0, le=1, allow_inf_nan=False)


class LRN(_Layer):
    """Local response norm across channels over `size` neighbouring channels:
    form average (PyTorch's and Caffe's): b = a / (k + alpha/size · Σ a²)^beta;
    form sum (the AlexNet paper's, Krizhevsky et al. 2012, §3.3): b = a / (k + alpha · Σ a²)^beta.
    The same alpha is `size` times stronger in the sum form."""

    type: Literal["lrn"] = "lrn"
    size: PositiveInt = 5
    alpha: float = Field(1e-4, ge=0, le=MAX_SIZE, allow_inf_nan=False)
    beta: float = Field(0.75, ge=0, le=MAX_SIZE, allow_inf_nan=False)
    k: float = Field(1.0, gt=0, le=MAX_SIZE, allow_inf_nan=False)
    form: Literal["average", "sum"] = "average"

    @property
    def alpha_per_square(self) -> float:
        """The factor of each a² in the sum: alpha/size (average) or alpha (sum)."""
        return self.alpha / self.size if self.form == "average" else self.alpha


class LayerNorm(_Layer):
    """Normalise each example over all its values; γ, β of the input's full shape
    (PyTorch's nn.LayerNorm(normalized_shape=input shape))."""

    type: Literal["layernorm"] = "layernorm"
    eps: float = Field(1e-5, gt=0, le=MAX_SIZE, allow_inf_nan=False)


class ReLU(_Layer):
    type: Literal["relu"] = "relu"


class LeakyReLU(_Layer):
    type: Literal["leaky_relu"] = "leaky_relu"
    slope: float = Field(0.01, ge=0, le=MAX_SIZE, allow_inf_nan=False)


class ELU(_Layer):
    type: Literal["elu"] = "elu"
    alpha: float = Field(1.0, gt=0, le=MAX_SIZE, allow_inf_nan=False)


class ReLU6(_Layer):
    """min(max(0, x), 6) (MobileNet-v2)."""

    type: Literal["relu6"] = "relu6"


class HardSigmoid(_Layer):
    """relu6(x + 3)/6 (MobileNet-v3)."""

    type: Literal["hardsigmoid"] = "hardsigmoid"


class HardSwish(_Layer):
    """x·relu6(x + 3)/6 (MobileNet-v3)."""

    type: Literal["hardswish"] = "hardswish"


class SiLU(_Layer):
    """x·σ(x), also called swish (EfficientNet)."""

    type: Literal["silu"] = "silu"


class GELU(_Layer):
    """x·Φ(x) with Φ the standard normal CDF (approximate: none), or PyTorch's tanh form
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""

    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"


class Sigmoid(_Layer):
    type: Literal["sigmoid"] = "sigmoid"


class Tanh(_Layer):
    type: Literal["tanh"] = "tanh"


class Softmax(_Layer):
    """Softmax over the channel (feature) axis."""

    type: Literal["softmax"] = "softmax"


class Maxout(_Layer):
    """Max over `pieces` consecutive channels: C → C/pieces (Goodfellow et al. 2013)."""

    type: Literal["maxout"] = "maxout"
    pieces: Annotated[int, Strict(), Field(ge=2, le=MAX_SIZE)] = 2


_ALL = (Conv2D, ConvTranspose2D, MaxPool, AvgPool, GlobalAvgPool, AdaptiveAvgPool,
        AdaptiveMaxPool, Upsample, Crop, Pad, Dense, Flatten, Dropout, BatchNorm, LRN, LayerNorm,
        ReLU, ReLU6, LeakyReLU, ELU, Sigmoid, HardSigmoid, HardSwish, SiLU, GELU, Tanh, Softmax,
        Maxout)

LayerSpec = Annotated[Union[_ALL], Field(discriminator="type")]

MODELS: dict[str, type[_Layer]] = {m.model_fields["type"].default: m for m in _ALL}

# Spellings a user may write for each kind (Keras, PyTorch and lecture-note names).
ALIASES: dict[str, str] = {
    "conv": "conv2d", "conv2d": "conv2d", "convolution": "conv2d",
    "maxpool": "maxpool", "max_pool": "maxpool", "maxpool2d": "maxpool", "pool": "maxpool",
    "avgpool": "avgpool", "avg_pool": "avgpool", "avgpool2d": "avgpool",
    "global_avgpool": "global_avgpool", "gap": "global_avgpool",
    "global_average_pooling": "global_avgpool", "global_avg_pool": "global_avgpool",
    "dense": "dense", "fc": "dense", "linear": "dense", "fully_connected": "dense",
    "flatten": "flatten", "dropout": "dropout",
    "batchnorm": "batchnorm", "bn": "batchnorm", "batch_norm": "batchnorm",
    "lrn": "lrn", "local_response_norm": "lrn",
    "layernorm": "layernorm", "layer_norm": "layernorm", "ln": "layernorm",
    "relu": "relu", "leaky_relu": "leaky_relu", "leakyrelu": "leaky_relu", "elu": "elu",
    "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "maxout": "maxout",
    "conv_transpose2d": "conv_transpose2d", "conv_transpose": "conv_transpose2d",
    "convtranspose2d": "conv_transpose2d", "deconv": "conv_transpose2d",
    "adaptive_avgpool": "adaptive_avgpool", "adaptive_avg_pool": "adaptive_avgpool",
    "adaptiveavgpool2d": "adaptive_avgpool",
    "adaptive_maxpool": "adaptive_maxpool", "adaptive_max_pool": "adaptive_maxpool",
    "adaptivemaxpool2d": "adaptive_maxpool",
    "upsample": "upsample", "interpolate": "upsample", "crop": "crop", "pad": "pad",
    "relu6": "relu6", "hardsigmoid": "hardsigmoid", "hard_sigmoid": "hardsigmoid",
    "hardswish": "hardswish", "hard_swish": "hardswish", "silu": "silu", "swish": "silu",
    "gelu": "gelu",
}

# The field a scalar shorthand fills: `dense: 4096`, `dropout: 0.5`, `maxout: 2`.
# `adaptive_avgpool: 7` (or [7, 7]), `upsample: 2`, `pad: 1`, `crop: [56, 56]`, `maxpool: 2`
# (Keras's MaxPooling2D(2): a 2×2 window, stride 2).
SCALAR_FIELD: dict[str, str] = {"dense": "units", "dropout": "rate", "maxout": "pieces",
                                "maxpool": "kernel", "avgpool": "kernel",
                                "adaptive_avgpool": "output", "adaptive_maxpool": "output",
                                "upsample": "scale", "pad": "padding", "crop": "size"}
# Kinds whose shorthand may also be a list ([h, w]): `crop: [56, 56]`, `upsample: [2, 1]`.
LIST_SHORTHAND: frozenset[str] = frozenset(
    {"adaptive_avgpool", "adaptive_maxpool", "upsample", "pad", "crop", "maxpool", "avgpool"})

# Prefix of a derived name (conv1, fc2, bn1 ...), per kind.
NAME_PREFIX: dict[str, str] = {
    "conv2d": "conv", "maxpool": "maxpool", "avgpool": "avgpool", "global_avgpool": "avgpool",
    "dense": "fc", "flatten": "flatten", "dropout": "dropout", "batchnorm": "bn",
    "lrn": "lrn", "layernorm": "ln", "relu": "relu", "leaky_relu": "lrelu", "elu": "elu",
    "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "maxout": "maxout",
    "conv_transpose2d": "deconv", "adaptive_avgpool": "avgpool", "adaptive_maxpool": "maxpool",
    "upsample": "up", "crop": "crop", "pad": "pad", "relu6": "relu", "hardsigmoid": "hsigmoid",
    "hardswish": "hswish", "silu": "silu", "gelu": "gelu",
}

# Activation memory (README, "Conventions"): elementwise activations overwrite their input
# when nothing else reads it (else they make a new tensor); flatten (a view) and dropout (the
# identity at inference) never make one, nor does crop (a window of its input: a view).
# Maxout changes the shape and so is not among them. hardswish, silu and gelu make a new
# tensor: their backward needs their input, which their output does not give back (relu6 and
# hardsigmoid read their gradient off the output, as relu does).
IN_PLACE: frozenset[str] = frozenset(
    {"relu", "relu6", "hardsigmoid", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"})
PASS_THROUGH: frozenset[str] = frozenset({"dropout", "flatten", "crop"})
