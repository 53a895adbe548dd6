"""One pydantic model per layer kind, and the discriminated union over them.

Each model holds only what the spec says; shapes are the calculator's and the executor's
business. Integer pairs (kernel, stride, dilation) accept an int or [h, w]; padding accepts
an int, [h, w], [top, bottom, left, right], "valid" or "same" (see `Padding`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from archcalc.limits import MAX_SIZE

# Strict: YAML's `true` is not the integer 1, and 3.5 filters is an error, not 3.
# Every float field refuses inf and nan (allow_inf_nan=False): `eps: .inf` or `slope: 1e309`
# would pass a `gt=0` bound and turn every value the executor computes into nan; a field with
# no natural upper bound stops at MAX_SIZE (10⁹), past which float32 arithmetic overflows.
PositiveInt = Annotated[int, Strict(), Field(gt=0, le=MAX_SIZE)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=MAX_SIZE)]
IntPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
PadSpec = Union[
    NonNegInt,
    tuple[NonNegInt, NonNegInt],
    tuple[NonNegInt, NonNegInt, NonNegInt, NonNegInt],
    Literal["valid", "same"],
]


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

    @model_validator(mode="after")
    def _groups_divide_filters(self) -> "Conv2D":
        if self.filters % self.groups:
            raise ValueError(
                f"filters ({self.filters}) must be divisible by groups ({self.groups})")
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
    """Local response norm across channels, PyTorch's form:
    b = a / (k + alpha/size · Σ a²)^beta over `size` neighbouring channels."""

    type: Literal["lrn"] = "lrn"
    size: PositiveInt = 5
    alpha: float = Field(1e-4, ge=0, le=MAX_SIZE, allow_inf_nan=False)
    beta: float = Field(0.75, ge=0, le=MAX_SIZE, allow_inf_nan=False)
    k: float = Field(1.0, gt=0, le=MAX_SIZE, allow_inf_nan=False)


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


LayerSpec = Annotated[
    Union[
        Conv2D, MaxPool, AvgPool, GlobalAvgPool, Dense, Flatten, Dropout, BatchNorm, LRN,
        LayerNorm, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, Maxout,
    ],
    Field(discriminator="type"),
]

MODELS: dict[str, type[_Layer]] = {
    m.model_fields["type"].default: m
    for m in (Conv2D, MaxPool, AvgPool, GlobalAvgPool, Dense, Flatten, Dropout, BatchNorm,
              LRN, LayerNorm, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, Maxout)
}

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
}

# The field a scalar shorthand fills: `dense: 4096`, `dropout: 0.5`, `maxout: 2`.
SCALAR_FIELD: dict[str, str] = {"dense": "units", "dropout": "rate", "maxout": "pieces"}

# Prefix of a derived name (conv1, fc2, bn1 ...), per kind.
NAME_PREFIX: dict[str, str] = {
    "conv2d": "conv", "maxpool": "maxpool", "avgpool": "avgpool", "global_avgpool": "avgpool",
    "dense": "fc", "flatten": "flatten", "dropout": "dropout", "batchnorm": "bn",
    "lrn": "lrn", "layernorm": "ln", "relu": "relu", "leaky_relu": "lrelu", "elu": "elu",
    "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "maxout": "maxout",
}

# Activation memory (README, "Conventions"): elementwise activations overwrite their input
# when nothing else reads it (else they make a new tensor); flatten (a view) and dropout (the
# identity at inference) never make one. Maxout changes the shape and so is not among them.
IN_PLACE: frozenset[str] = frozenset(
    {"relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"})
PASS_THROUGH: frozenset[str] = frozenset({"dropout", "flatten"})
