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
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    name: str | None = Field(
        None, description="The layer's name in tables, errors and checkpoints (default: the "
                          "kind's prefix and a counter in its scope: conv1, relu2, fc1).")
    # False freezes the layer: its weights count as non-trainable and are not updated.
    trainable: bool = Field(
        True, description="false freezes the layer: its weights count as non-trainable and "
                          "training does not update them.")

    @property
    def kind(self) -> str:
        return self.type  # type: ignore[attr-defined]


class Conv2D(_Layer):
    """2-D convolution: `filters` kernels of `kernel` over in_channels/groups channels."""

    type: Literal["conv2d"] = Field("conv2d", description="The layer kind.")
    filters: PositiveInt = Field(description="Output channels (number of kernels).")
    kernel: IntPair = Field(description="Kernel size F: an int or [h, w].")
    stride: IntPair = Field(1, description="Step S between windows: an int or [h, w].")
    padding: PadSpec = Field(
        0, description="Border P: an int, [h, w], [top, bottom, left, right], 'valid' (0) or "
                       "'same' (TensorFlow's: output = ceil(input / stride)).")
    dilation: IntPair = Field(1, description="Spacing D between kernel taps: an int or [h, w]; "
                                             "the window spans D·(F − 1) + 1 pixels.")
    groups: PositiveInt = Field(1, description="Grouped convolution: each of `groups` groups "
                                               "sees in_channels/groups channels; filters and "
                                               "in_channels must divide by it.")
    bias: bool = Field(True, description="Add a bias per output channel.")
    # What the padded border holds (PyTorch's padding_mode): zeros, the mirror image without
    # the edge pixel (reflect), the edge pixel repeated (replicate), or the opposite edge
    # (circular: the image wraps around).
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = Field(
        "zeros", description="What the padded border holds: zeros, reflect (mirror without the "
                             "edge pixel), replicate (the edge pixel repeated) or circular "
                             "(the opposite edge).")

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

    type: Literal["conv_transpose2d"] = Field("conv_transpose2d", description="The layer kind.")
    filters: PositiveInt = Field(description="Output channels.")
    kernel: IntPair = Field(description="Kernel size F: an int or [h, w].")
    stride: IntPair = Field(1, description="Upsampling step S: kernels are placed S pixels "
                                           "apart; an int or [h, w].")
    padding: PadAmounts = Field(
        0, description="Rows/columns cropped from the result: an int, [h, w] or [top, bottom, "
                       "left, right].")
    output_padding: IntPairOrZero = Field(
        0, description="Rows/columns added at the bottom/right, smaller than the stride or the "
                       "dilation: an int or [h, w].")
    dilation: IntPair = Field(1, description="Spacing D between kernel taps: an int or [h, w].")
    groups: PositiveInt = Field(1, description="Grouped transposed convolution; filters and "
                                               "in_channels must divide by it.")
    bias: bool = Field(True, description="Add a bias per output channel.")

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
    kernel: IntPair = Field(description="Window size F: an int or [h, w].")
    # defaults to the kernel (non-overlapping windows)
    stride: IntPair | None = Field(None, description="Step S between windows: an int or [h, "
                                                     "w]; default (null): the kernel.")
    padding: PadSpec = Field(
        0, description="Border P (at most kernel/2): an int, [h, w], [top, bottom, left, "
                       "right], 'valid' or 'same'.")
    ceil_mode: bool = Field(False, description="Round the output size up instead of down "
                                               "(PyTorch's ceil_mode).")

    @property
    def strides(self) -> tuple[int, int]:
        return pair(self.stride if self.stride is not None else self.kernel)


class MaxPool(_Pool):
    """Max pooling; padded positions never win (they hold -inf)."""

    type: Literal["maxpool"] = Field("maxpool", description="The layer kind.")


class AvgPool(_Pool):
    """Average pooling; padded zeros count in the divisor (PyTorch's count_include_pad=True)."""

    type: Literal["avgpool"] = Field("avgpool", description="The layer kind.")


class GlobalAvgPool(_Layer):
    """Mean over H×W: C×H×W → C×1×1 (keepdims, as PyTorch's AdaptiveAvgPool2d(1)) or C."""

    type: Literal["global_avgpool"] = Field("global_avgpool", description="The layer kind.")
    keepdims: bool = Field(True, description="true: output C×1×1 (PyTorch); false: C features.")


class _AdaptivePool(_Layer):
    """Pooling to a fixed output size h×w whatever the input (PyTorch's AdaptiveAvgPool2d /
    AdaptiveMaxPool2d): output row i pools input rows ⌊i·H/h⌋ … ⌈(i+1)·H/h⌉ − 1."""

    output: IntPair = Field(description="Output size h×w, whatever the input: an int or "
                                        "[h, w].")


class AdaptiveAvgPool(_AdaptivePool):
    """Adaptive average pooling to a fixed h×w (PyTorch's AdaptiveAvgPool2d)."""

    type: Literal["adaptive_avgpool"] = Field("adaptive_avgpool", description="The layer kind.")


class AdaptiveMaxPool(_AdaptivePool):
    """Adaptive max pooling to a fixed h×w (PyTorch's AdaptiveMaxPool2d)."""

    type: Literal["adaptive_maxpool"] = Field("adaptive_maxpool", description="The layer kind.")


class Upsample(_Layer):
    """Resize by an integer `scale` (int or [h, w]) or to a `size` [h, w], as F.interpolate:
    nearest copies input pixel ⌊o·H_in/H_out⌋; bilinear interpolates the two nearest
    neighbours per axis, with align_corners (false: pixel centres, PyTorch's default)."""

    type: Literal["upsample"] = Field("upsample", description="The layer kind.")
    scale: IntPair | None = Field(None, description="Integer factor: an int or [h, w] "
                                                    "(give scale or size).")
    size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="Output size [h, w] (give scale or size).")
    mode: Literal["nearest", "bilinear"] = Field(
        "nearest", description="nearest (copy the nearest input pixel) or bilinear "
                               "(F.interpolate's).")
    align_corners: bool = Field(False, description="Bilinear only: corner pixels line up "
                                                   "(false: pixel centres, PyTorch's default).")

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

    type: Literal["crop"] = Field("crop", description="The layer kind.")
    size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="Keep a centred window [h, w] (or s for s×s); give size or cropping.")
    cropping: PadAmounts | None = Field(
        None, description="Remove p, [h, w] or [top, bottom, left, right] pixels from the "
                          "sides; give size or cropping.")

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

    type: Literal["pad"] = Field("pad", description="The layer kind.")
    padding: PadAmounts = Field(description="Pixels added: p, [h, w] or [top, bottom, left, "
                                            "right].")
    mode: Literal["zeros", "reflect", "replicate", "symmetric"] = Field(
        "zeros", description="zeros (the constant value), reflect (mirror without the edge "
                             "pixel), symmetric (mirror with it) or replicate (the edge pixel "
                             "repeated); NumPy's constant and edge are accepted too.")
    value: float = Field(0.0, ge=-MAX_SIZE, le=MAX_SIZE, allow_inf_nan=False,
                         description="The constant of mode zeros.")

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
    """Fully connected layer on a flat input of N features: N·units weights (+ units biases);
    with time_distributed, on each step of a T×N sequence."""

    type: Literal["dense"] = Field("dense", description="The layer kind.")
    units: PositiveInt = Field(description="Output features.")
    bias: bool = Field(True, description="Add a bias per output feature.")
    # Keras's TimeDistributed(Dense): without it a T×F sequence is refused, so that a
    # forgotten return_sequences: false is an error, not T times the classifier.
    time_distributed: bool = Field(
        False, description="true: apply the same layer to every step of a T×F sequence "
                           "(Keras's TimeDistributed(Dense), nn.Linear on (N, T, F)): "
                           "T×units out.")


class Flatten(_Layer):
    """C×H×W → C·H·W features (a view: no new tensor)."""

    type: Literal["flatten"] = Field("flatten", description="The layer kind.")


class Dropout(_Layer):
    """Inverted dropout: zero with probability `rate` in training, identity at inference."""

    type: Literal["dropout"] = Field("dropout", description="The layer kind.")
    rate: float = Field(0.5, ge=0.0, lt=1.0, allow_inf_nan=False,
                        description="Probability of zeroing each value in training, in [0, 1).")


class BatchNorm(_Layer):
    """Batch norm per channel: γ, β trainable; running mean and variance not trainable."""

    type: Literal["batchnorm"] = Field("batchnorm", description="The layer kind.")
    eps: float = Field(1e-5, gt=0, le=MAX_SIZE, allow_inf_nan=False,
                       description="Added to the variance before its square root.")
    momentum: float = Field(0.1, gt=0, le=1, allow_inf_nan=False,
                            description="Weight of the new batch in the running mean and "
                                        "variance (PyTorch's convention), in (0, 1].")


class LRN(_Layer):
    """Local response norm across channels over `size` neighbouring channels:
    form average (PyTorch's and Caffe's): b = a / (k + alpha/size · Σ a²)^beta;
    form sum (the AlexNet paper's, Krizhevsky et al. 2012, §3.3): b = a / (k + alpha · Σ a²)^beta.
    The same alpha is `size` times stronger in the sum form."""

    type: Literal["lrn"] = Field("lrn", description="The layer kind.")
    size: PositiveInt = Field(5, description="Neighbouring channels in the sum.")
    alpha: float = Field(1e-4, ge=0, le=MAX_SIZE, allow_inf_nan=False,
                         description="Scale of the sum of squares.")
    beta: float = Field(0.75, ge=0, le=MAX_SIZE, allow_inf_nan=False,
                        description="Exponent of the denominator.")
    k: float = Field(1.0, gt=0, le=MAX_SIZE, allow_inf_nan=False,
                     description="Additive constant of the denominator.")
    form: Literal["average", "sum"] = Field(
        "average", description="average: alpha/size per square (PyTorch, Caffe); sum: alpha "
                               "per square (the AlexNet paper).")

    @property
    def alpha_per_square(self) -> float:
        """The factor of each a² in the sum: alpha/size (average) or alpha (sum)."""
        return self.alpha / self.size if self.form == "average" else self.alpha


class LayerNorm(_Layer):
    """Normalise each example over all its values; γ, β of the input's full shape
    (PyTorch's nn.LayerNorm(normalized_shape=input shape))."""

    type: Literal["layernorm"] = Field("layernorm", description="The layer kind.")
    eps: float = Field(1e-5, gt=0, le=MAX_SIZE, allow_inf_nan=False,
                       description="Added to the variance before its square root.")


class ReLU(_Layer):
    """max(0, x)."""

    type: Literal["relu"] = Field("relu", description="The layer kind.")


class LeakyReLU(_Layer):
    """x for x > 0, slope·x otherwise."""

    type: Literal["leaky_relu"] = Field("leaky_relu", description="The layer kind.")
    slope: float = Field(0.01, ge=0, le=MAX_SIZE, allow_inf_nan=False,
                         description="The slope for negative inputs.")


class ELU(_Layer):
    """x for x > 0, alpha·(exp(x) − 1) otherwise."""

    type: Literal["elu"] = Field("elu", description="The layer kind.")
    alpha: float = Field(1.0, gt=0, le=MAX_SIZE, allow_inf_nan=False,
                         description="The value negative inputs saturate to is −alpha.")


class ReLU6(_Layer):
    """min(max(0, x), 6) (MobileNet-v2)."""

    type: Literal["relu6"] = Field("relu6", description="The layer kind.")


class HardSigmoid(_Layer):
    """relu6(x + 3)/6 (MobileNet-v3)."""

    type: Literal["hardsigmoid"] = Field("hardsigmoid", description="The layer kind.")


class HardSwish(_Layer):
    """x·relu6(x + 3)/6 (MobileNet-v3)."""

    type: Literal["hardswish"] = Field("hardswish", description="The layer kind.")


class SiLU(_Layer):
    """x·σ(x), also called swish (EfficientNet)."""

    type: Literal["silu"] = Field("silu", description="The layer kind.")


class GELU(_Layer):
    """x·Φ(x) with Φ the standard normal CDF (approximate: none), or PyTorch's tanh form
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""

    type: Literal["gelu"] = Field("gelu", description="The layer kind.")
    approximate: Literal["none", "tanh"] = Field(
        "none", description="none: the exact x·Φ(x); tanh: PyTorch's tanh approximation.")


class Sigmoid(_Layer):
    """1 / (1 + exp(−x))."""

    type: Literal["sigmoid"] = Field("sigmoid", description="The layer kind.")


class Tanh(_Layer):
    """tanh(x)."""

    type: Literal["tanh"] = Field("tanh", description="The layer kind.")


class Softmax(_Layer):
    """Softmax over the channel (feature) axis."""

    type: Literal["softmax"] = Field("softmax", description="The layer kind.")


class Maxout(_Layer):
    """Max over `pieces` consecutive channels: C → C/pieces (Goodfellow et al. 2013)."""

    type: Literal["maxout"] = Field("maxout", description="The layer kind.")
    pieces: Annotated[int, Strict(), Field(ge=2, le=MAX_SIZE)] = Field(
        2, description="Channels per max: the output has C/pieces channels.")


class _Recurrent(_Layer):
    """A recurrent layer over a T×F sequence (one layer of PyTorch's nn.RNN / nn.LSTM /
    nn.GRU, batch_first). Its weights are PyTorch's: weight_ih (G·H, F), weight_hh (G·H, H)
    with the G gate blocks stacked in PyTorch's order, bias_ih and bias_hh (G·H each; with
    `biases: 1` one vector `bias`), and the same four with the suffix _reverse for the
    backward direction of a bidirectional layer. The initial state is zero."""

    units: PositiveInt = Field(description="Hidden size H (features of every step's output).")
    return_sequences: bool = Field(
        False, description="false: the last step's output, H features (2·H bidirectional: the "
                           "forward direction at step T and the backward one at step 1, "
                           "PyTorch's h_n); true: every step's, T×H (T×2·H).")
    bidirectional: bool = Field(False, description="Also run the sequence backwards and "
                                                   "concatenate both outputs (2·H features).")
    bias: bool = Field(True, description="Add biases to the gates.")
    biases: Literal[1, 2] = Field(
        2, description="Bias vectors per direction: 2 (PyTorch's bias_ih and bias_hh, "
                       "G·H each) or 1 (Keras's LSTM: one vector of G·H). Two biases in one "
                       "sum are one bias; only GRU's reset_after gives the second a role of "
                       "its own.")


class RNN(_Recurrent):
    """Elman recurrent layer (PyTorch's nn.RNN): h_t = f(W_ih·x_t + b_ih + W_hh·h_{t−1} +
    b_hh), f = tanh or relu; G = 1."""

    type: Literal["rnn"] = Field("rnn", description="The layer kind.")
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="f: tanh or relu.")


class LSTM(_Recurrent):
    """Long short-term memory (PyTorch's nn.LSTM), gates in PyTorch's order i, f, g, o
    (G = 4): i, f, o = σ(W_i·x_t + U_i·h_{t−1} + b), g = tanh(…), c_t = f⊙c_{t−1} + i⊙g,
    h_t = o⊙tanh(c_t)."""

    type: Literal["lstm"] = Field("lstm", description="The layer kind.")


class GRU(_Recurrent):
    """Gated recurrent unit (PyTorch's nn.GRU), gates in PyTorch's order r, z, n (G = 3):
    r, z = σ(W·x_t + b_i + U·h_{t−1} + b_h), h_t = (1 − z)⊙n + z⊙h_{t−1}, and
    reset_after true (PyTorch; Keras's default): n = tanh(W_n·x_t + b_in + r⊙(U_n·h_{t−1} +
    b_hn)); reset_after false (Cho et al. 2014; Keras's reset_after=False):
    n = tanh(W_n·x_t + b_in + U_n·(r⊙h_{t−1}) + b_hn)."""

    type: Literal["gru"] = Field("gru", description="The layer kind.")
    reset_after: bool = Field(
        True, description="true: the reset gate multiplies U_n·h + b_hn (PyTorch, Keras's "
                          "default); false: it multiplies h before U_n (Cho et al. 2014).")


class Embedding(_Layer):
    """Token ids → vectors (PyTorch's nn.Embedding): a T-step input of integer ids in
    0 … vocab − 1 becomes T×units, row id of `weight` (vocab, units) per step."""

    type: Literal["embedding"] = Field("embedding", description="The layer kind.")
    vocab: PositiveInt = Field(description="Number of token ids: ids run 0 … vocab − 1.")
    units: PositiveInt = Field(description="Features of each token's vector.")


class ToSequence(_Layer):
    """A C×H×W map as a sequence, as CRNN text recognisers read it: axis width gives W steps
    of C·H features (step t: column t, features in (c, h) order), axis height H steps of C·W
    (step t: row t, features in (c, w) order). A new tensor (a transposed copy)."""

    type: Literal["to_sequence"] = Field("to_sequence", description="The layer kind.")
    axis: Literal["width", "height"] = Field(
        "width", description="width: W steps of C·H features (left to right); height: H steps "
                             "of C·W (top to bottom).")


_ALL = (Conv2D, ConvTranspose2D, MaxPool, AvgPool, GlobalAvgPool, AdaptiveAvgPool,
        AdaptiveMaxPool, Upsample, Crop, Pad, Dense, Flatten, Dropout, BatchNorm, LRN, LayerNorm,
        ReLU, ReLU6, LeakyReLU, ELU, Sigmoid, HardSigmoid, HardSwish, SiLU, GELU, Tanh, Softmax,
        Maxout, RNN, LSTM, GRU, Embedding, ToSequence)

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
    "rnn": "rnn", "simple_rnn": "rnn", "simplernn": "rnn", "lstm": "lstm", "gru": "gru",
    "embedding": "embedding", "embed": "embedding",
    "to_sequence": "to_sequence", "tosequence": "to_sequence", "map_to_sequence": "to_sequence",
}

# The field a scalar shorthand fills: `dense: 4096`, `dropout: 0.5`, `maxout: 2`.
# `adaptive_avgpool: 7` (or [7, 7]), `upsample: 2`, `pad: 1`, `crop: [56, 56]`, `maxpool: 2`
# (Keras's MaxPooling2D(2): a 2×2 window, stride 2).
SCALAR_FIELD: dict[str, str] = {"dense": "units", "dropout": "rate", "maxout": "pieces",
                                "maxpool": "kernel", "avgpool": "kernel",
                                "adaptive_avgpool": "output", "adaptive_maxpool": "output",
                                "upsample": "scale", "pad": "padding", "crop": "size",
                                "rnn": "units", "lstm": "units", "gru": "units",
                                "to_sequence": "axis"}
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
    "rnn": "rnn", "lstm": "lstm", "gru": "gru", "embedding": "embed", "to_sequence": "seq",
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

# Gate blocks per recurrent kind (G): the rows of weight_ih and weight_hh are G·H.
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
RECURRENT: frozenset[str] = frozenset(GATES)
