"""PyTorch out: one readable Python file, depending on torch alone, that builds the spec.

`torch_source(network, weights=None)` walks the resolved tree and writes:

- an nn.Module subclass named after the spec (CamelCase of its name) whose submodules carry
  the spec's layer names, nested as the names are: "layer2.0.conv1" is
  `self.layer2[0].conv1` (an nn.ModuleList of nn.ModuleDicts), "inception_3a/5x5_reduce" is
  `self.inception_3a["5x5_reduce"]`. So `state_dict()` keys are the executor's own array
  names ("layer2.0.conv1.weight"), with the spec's separator written as "." when it is
  another one. A name with dots (torchvision's "layer2.0.conv1" imported under separator
  "/") nests at its dots, as torch nested it. A name torch cannot hold as a submodule (a
  leading "_", one of nn.Module's attributes such as "train"; at the top, one that is no
  identifier) gets a new one, listed in the file's RENAMED table;
- a forward that follows the spec's branches (torch.cat / + / * merges, identity branches);
- load_archcalc_weights / save_archcalc_weights: archcalc's .npz (format 2, see
  archcalc.nn.weights) read and written with zipfile and the .npy header, not numpy: torch
  does not require numpy, and the file should run wherever torch does.

Every layer kind maps through KIND_MAP (one entry per kind, see the test that compares it
with the spec's registry). Sequences: rnn / lstm / gru are nn.RNN / nn.LSTM / nn.GRU
(batch_first; the last step is their h_n, directions side by side, via last_state), whose
arrays torch names weight_ih_l0 for archcalc's weight_ih (the file's archcalc_name /
torch_key map them); `biases: 1` is one_bias (bias_l0 in bias_ih's place, bias_hh a zero
buffer) and a GRU with reset_after: false the file's ResetBeforeGRU. Where nn has no module for a kind's exact arithmetic (maxout,
crops, NumPy's symmetric padding, TensorFlow's "same" or uneven padding), the file defines
a small class for it, and only the ones the spec uses.

Shapes come from the calculator's public analysis (each layer's input shape gives the
in_channels/in_features a person would write); the executor's arrays are only read to
check a weights file against the shapes the module will have.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from archcalc.errors import ArchcalcError
from archcalc.limits import echo
from archcalc.spec.load import bundled_names
from archcalc.spec.layers import GATES, explicit_pads, pair, same_pads
from archcalc.spec.tree import Leaf, Merge, Network, Path, Sequence, iter_leaves

LINE = 100  # the longest line the file may have

# Attributes of nn.Module, nn.ModuleDict and nn.ModuleList (torch 2.13): a submodule of one
# of these names would be shadowed by the method, or refused by add_module. A test checks
# this list against the installed torch.
RESERVED = frozenset("""
    T_destination add_module append apply bfloat16 buffers call_super_init children clear
    compile cpu cuda double dump_patches eval extend extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule half insert ipu items keys load_state_dict
    modules mtia named_buffers named_children named_modules named_parameters parameters pop
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train
    training type update values xpu zero_grad
""".split())


# ---- literals ---------------------------------------------------------------------------------

def lit(value) -> str:
    """A Python literal: (3, 3) → 3, (1, 7) → (1, 7), floats in their shortest exact form."""
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and value[0] == value[1]:
            return lit(value[0])
        return "(" + ", ".join(lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def call(func: str, *args, **kwargs) -> str:
    """`func(a, b, k=v)`; arguments whose value is None (a default) are left out."""
    parts = [lit(a) for a in args if a is not None]
    parts += [f"{k}={lit(v)}" for k, v in kwargs.items() if v is not None]
    return f"{func}({', '.join(parts)})"


def torch_pads(pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """archcalc's (top, bottom, left, right) in F.pad's order (left, right, top, bottom)."""
    top, bottom, left, right = pads
    return (left, right, top, bottom)


# ---- one entry per layer kind -------------------------------------------------------------------

@dataclass
class Made:
    """A layer's constructor expression, the helper definitions it needs, and the shapes of
    the arrays its module holds ({short name: shape}, as the executor names them)."""

    code: str
    helpers: tuple[str, ...] = ()
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # how forward calls it: {module} and {x} filled in (a recurrent layer picks its output)
    apply: str = "{module}({x})"


def _biased(made: Made, spec, out: int) -> Made:
    if spec.bias:
        made.params["bias"] = (out,)
    return made


def _conv2d(spec, shape) -> Made:
    c, h, w = shape
    kernel, stride, dilation = pair(spec.kernel), pair(spec.stride), pair(spec.dilation)
    pads = explicit_pads(spec.padding)
    if pads is None and stride == (1, 1):  # at stride 1 "same" does not depend on the size
        pads = same_pads(h, kernel[0], 1, dilation[0]) + same_pads(w, kernel[1], 1, dilation[1])
    even = pads is not None and pads[0] == pads[1] and pads[2] == pads[3]
    args = dict(stride=stride if stride != (1, 1) else None,
                padding=(pads[0], pads[2]) if even and any(pads) else None,
                dilation=dilation if dilation != (1, 1) else None,
                groups=spec.groups if spec.groups != 1 else None,
                bias=False if not spec.bias else None,
                padding_mode=spec.padding_mode if spec.padding_mode != "zeros" else None)
    params = {"weight": (spec.filters, c // spec.groups) + kernel}
    if even:
        code = call("nn.Conv2d", c, spec.filters, kernel, **args)
        return _biased(Made(code, params=params), spec, spec.filters)
    uneven = '"same"' if pads is None else lit(torch_pads(pads))
    code = call("PaddedConv2d", c, spec.filters, kernel, **args)[:-1] + f", pads={uneven})"
    return _biased(Made(code, ("PaddedConv2d",), params), spec, spec.filters)


def _conv_transpose2d(spec, shape) -> Made:
    c = shape[0]
    kernel, stride, dilation = pair(spec.kernel), pair(spec.stride), pair(spec.dilation)
    top, bottom, left, right = explicit_pads(spec.padding)
    even = top == bottom and left == right
    extra = pair(spec.output_padding)
    args = dict(stride=stride if stride != (1, 1) else None,
                padding=(top, left) if even and (top or left) else None,
                output_padding=extra if any(extra) else None,
                groups=spec.groups if spec.groups != 1 else None,
                bias=False if not spec.bias else None,
                dilation=dilation if dilation != (1, 1) else None)
    params = {"weight": (c, spec.filters // spec.groups) + kernel}
    if even:
        code = call("nn.ConvTranspose2d", c, spec.filters, kernel, **args)
        return _biased(Made(code, params=params), spec, spec.filters)
    code = (call("CroppedConvTranspose2d", c, spec.filters, kernel, **args)[:-1]
            + f", crop={lit((top, bottom, left, right))})")
    return _biased(Made(code, ("CroppedConvTranspose2d",), params), spec, spec.filters)


def _pool(torch_name: str, padded: str):
    def make(spec, shape) -> Made:
        kernel, stride = pair(spec.kernel), spec.strides
        pads = explicit_pads(spec.padding)
        ceil = True if spec.ceil_mode else None
        if pads is not None and pads[0] == pads[1] and pads[2] == pads[3]:
            even = (pads[0], pads[2])
            return Made(call(torch_name, kernel, stride=stride if stride != kernel else None,
                             padding=even if any(even) else None, ceil_mode=ceil))
        # the helper reads kernel_size and stride as pairs: written out as pairs
        uneven = '"same"' if pads is None else lit(torch_pads(pads))
        code = f"{padded}({_pair(kernel)}, {_pair(stride)}, {uneven}"
        return Made(code + (", ceil_mode=True)" if ceil else ")"), (padded,))
    return make


def _pair(value: tuple[int, int]) -> str:
    return f"({value[0]}, {value[1]})"


def _global_avgpool(spec, shape) -> Made:
    if spec.keepdims:
        return Made("nn.AdaptiveAvgPool2d(1)")
    return Made("nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())")


def _adaptive(torch_name: str):
    return lambda spec, shape: Made(call(torch_name, pair(spec.output)))


def _upsample(spec, shape) -> Made:
    scale = pair(spec.scale) if spec.scale is not None else None
    return Made(call("nn.Upsample", size=spec.size, scale_factor=scale,
                     mode=spec.mode if spec.mode != "nearest" else None,
                     align_corners=True if spec.align_corners else None))


def _crop(spec, shape) -> Made:
    if spec.size is not None:
        return Made(call("CenterCrop", tuple(spec.size)), ("CenterCrop",))
    return Made(call("Crop", explicit_pads(spec.cropping)), ("Crop",))


def _pad(spec, shape) -> Made:
    pads = torch_pads(explicit_pads(spec.padding))
    if spec.mode == "symmetric":
        return Made(call("SymmetricPad2d", pads), ("SymmetricPad2d",))
    if spec.mode == "zeros" and spec.value != 0.0:
        return Made(call("nn.ConstantPad2d", pads, spec.value))
    module = {"zeros": "nn.ZeroPad2d", "reflect": "nn.ReflectionPad2d",
              "replicate": "nn.ReplicationPad2d"}[spec.mode]
    return Made(call(module, pads))


def _dense(spec, shape) -> Made:
    # nn.Linear acts on the last axis: a T×F sequence's every step (time_distributed) too
    code = call("nn.Linear", shape[-1], spec.units, bias=False if not spec.bias else None)
    return _biased(Made(code, params={"weight": (spec.units, shape[-1])}), spec, spec.units)


def _softmax(spec, shape) -> Made:
    # over channels (features); over a sequence's features, each step on its own
    return Made(f"nn.Softmax(dim={2 if len(shape) == 2 else 1})")


_TORCH_RECURRENT = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}


def _recurrent(spec, shape) -> Made:
    """One nn.RNN / nn.LSTM / nn.GRU (batch_first), or the file's ResetBeforeGRU for
    reset_after: false (torch's GRU resets after U_n only); `biases: 1` through one_bias.
    Its arrays are the executor's, named as torch names them (weight_ih_l0 for weight_ih)."""
    f, h = shape[-1], spec.units
    gh = GATES[spec.type] * h
    one = spec.bias and spec.biases == 1
    args = dict(batch_first=True, bias=False if not spec.bias else None,
                bidirectional=True if spec.bidirectional else None)
    if spec.type == "rnn" and spec.nonlinearity == "relu":
        args["nonlinearity"] = "relu"
    helpers: tuple[str, ...] = ()
    if spec.type == "gru" and not spec.reset_after:
        code = call("ResetBeforeGRU", f, h, bias=args["bias"],
                    bidirectional=args["bidirectional"], one_bias=True if one else None)
        helpers = ("ResetBeforeGRU",)
    else:
        code = call(_TORCH_RECURRENT[spec.type], f, h, **args)
        if one:
            code, helpers = f"one_bias({code})", ("one_bias",)
    params: dict[str, tuple[int, ...]] = {}
    for suffix in ("", "_reverse") if spec.bidirectional else ("",):
        params.update({f"weight_ih{suffix}": (gh, f), f"weight_hh{suffix}": (gh, h)})
        if spec.bias:
            params.update({f"bias{suffix}": (gh,)} if one else
                          {f"bias_ih{suffix}": (gh,), f"bias_hh{suffix}": (gh,)})
    if spec.return_sequences:
        return Made(code, helpers, params, apply="{module}({x})[0]")
    return Made(code, helpers + ("last_state",), params, apply="last_state({module}({x}))")


def _embedding(spec, shape) -> Made:
    # the ids may come as floats holding whole numbers (archcalc's executor takes them so)
    return Made(call("nn.Embedding", spec.vocab, spec.units),
                params={"weight": (spec.vocab, spec.units)}, apply="{module}({x}.long())")


def _batchnorm(spec, shape) -> Made:
    c = shape[0]
    module = "nn.BatchNorm2d" if len(shape) == 3 else "nn.BatchNorm1d"
    code = call(module, c, eps=spec.eps if spec.eps != 1e-5 else None,
                momentum=spec.momentum if spec.momentum != 0.1 else None)
    return Made(code, params={"weight": (c,), "bias": (c,)},
                buffers={"running_mean": (c,), "running_var": (c,)})


def _lrn(spec, shape) -> Made:
    # torch's LocalResponseNorm is the average form; the sum form's alpha is size times larger
    alpha = spec.alpha if spec.form == "average" else spec.alpha * spec.size
    return Made(call("nn.LocalResponseNorm", spec.size, alpha=alpha, beta=spec.beta, k=spec.k))


def _layernorm(spec, shape) -> Made:
    code = call("nn.LayerNorm", list(shape) if len(shape) > 1 else shape[0],
                eps=spec.eps if spec.eps != 1e-5 else None)
    return Made(code.replace("[", "(").replace("]", ")"), params={"weight": tuple(shape),
                                                                  "bias": tuple(shape)})


def _plain(code: str, helper: str | None = None):
    return lambda spec, shape: Made(code, (helper,) if helper else ())


KIND_MAP: dict[str, Callable[..., Made]] = {
    "conv2d": _conv2d,
    "conv_transpose2d": _conv_transpose2d,
    "maxpool": _pool("nn.MaxPool2d", "PaddedMaxPool2d"),
    "avgpool": _pool("nn.AvgPool2d", "PaddedAvgPool2d"),
    "global_avgpool": _global_avgpool,
    "adaptive_avgpool": _adaptive("nn.AdaptiveAvgPool2d"),
    "adaptive_maxpool": _adaptive("nn.AdaptiveMaxPool2d"),
    "upsample": _upsample,
    "crop": _crop,
    "pad": _pad,
    "dense": _dense,
    "flatten": _plain("nn.Flatten()"),
    "dropout": lambda spec, shape: Made(call("nn.Dropout", spec.rate if spec.rate != 0.5
                                             else None)),
    "batchnorm": _batchnorm,
    "lrn": _lrn,
    "layernorm": _layernorm,
    "relu": _plain("nn.ReLU()"),
    "relu6": _plain("nn.ReLU6()"),
    "leaky_relu": lambda spec, shape: Made(call("nn.LeakyReLU", spec.slope if spec.slope != 0.01
                                                else None)),
    "elu": lambda spec, shape: Made(call("nn.ELU", spec.alpha if spec.alpha != 1.0 else None)),
    "sigmoid": _plain("nn.Sigmoid()"),
    "tanh": _plain("nn.Tanh()"),
    "softmax": _softmax,
    "hardsigmoid": _plain("nn.Hardsigmoid()"),
    "hardswish": _plain("nn.Hardswish()"),
    "silu": _plain("nn.SiLU()"),
    "gelu": lambda spec, shape: Made(call("nn.GELU", approximate=spec.approximate
                                          if spec.approximate != "none" else None)),
    "maxout": lambda spec, shape: Made(call("Maxout", spec.pieces), ("Maxout",)),
    "rnn": _recurrent, "lstm": _recurrent, "gru": _recurrent,
    "embedding": _embedding,
    "to_sequence": lambda spec, shape: Made(call("ToSequence", spec.axis), ("ToSequence",)),
}


# ---- the helper classes the generated file may need -------------------------------------------

_SAME = '''
def same_padding(x, kernel_size, stride, dilation=(1, 1)):
    """(left, right, top, bottom) of TensorFlow's "same" padding for x: ceil(size / stride)
    outputs, the odd pixel of an uneven total after."""
    pads = []
    for size, k, s, d in zip(x.shape[:-3:-1], kernel_size[::-1], stride[::-1], dilation[::-1]):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return pads
'''

HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (source, helpers it uses)
    "same_padding": (_SAME, ()),
    "PaddedConv2d": ('''
class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d with padding it cannot take itself: uneven sides (left, right, top,
    bottom), or "same" computed from the input's size as TensorFlow does."""

    def __init__(self, *args, pads, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = pads

    def forward(self, x):
        pads = self.pads
        if pads == "same":
            pads = same_padding(x, self.kernel_size, self.stride, self.dilation)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.conv2d(F.pad(x, pads, mode=mode), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)
''', ("same_padding",)),
    "PaddedPool": ('''
class PaddedPool:
    """A pool with uneven padding (left, right, top, bottom) or "same", padded with `fill`
    before the pool runs (the base class's own padding is even only)."""

    def __init__(self, kernel_size, stride, pads, ceil_mode=False):
        super().__init__(kernel_size, stride, ceil_mode=ceil_mode)
        self.pads = pads

    def forward(self, x):
        pads = self.pads
        if pads == "same":
            pads = same_padding(x, self.kernel_size, self.stride)
        y = super().forward(F.pad(x, pads, value=self.fill))
        if self.ceil_mode:
            # drop a last window that starts in the bottom (right) padding: torch drops
            # those in its own padding, not in padding F.pad added
            rows = -(-(x.shape[2] + pads[2]) // self.stride[0])
            cols = -(-(x.shape[3] + pads[0]) // self.stride[1])
            y = y[:, :, :rows, :cols]
        return y
''', ("same_padding",)),
    "PaddedMaxPool2d": ('''
class PaddedMaxPool2d(PaddedPool, nn.MaxPool2d):
    """nn.MaxPool2d padded with -inf, which never wins."""

    fill = float("-inf")
''', ("PaddedPool",)),
    "PaddedAvgPool2d": ('''
class PaddedAvgPool2d(PaddedPool, nn.AvgPool2d):
    """nn.AvgPool2d padded with zeros, which count in the average as nn.AvgPool2d counts
    its own."""

    fill = 0.0
''', ("PaddedPool",)),
    "CroppedConvTranspose2d": ('''
class CroppedConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d that crops uneven amounts (top, bottom, left, right) off its full
    output, as nn.ConvTranspose2d's padding crops even ones."""

    def __init__(self, *args, crop, **kwargs):
        super().__init__(*args, **kwargs)
        self.crop = crop

    def forward(self, x):
        y = super().forward(x)
        top, bottom, left, right = self.crop
        return y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]
''', ()),
    "Crop": ('''
class Crop(nn.Module):
    """Cut (top, bottom, left, right) pixels off the sides."""

    def __init__(self, box):
        super().__init__()
        self.box = box

    def forward(self, x):
        top, bottom, left, right = self.box
        return x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right]
''', ()),
    "CenterCrop": ('''
class CenterCrop(nn.Module):
    """The centred h×w window; an odd surplus leaves its extra row (column) at the bottom
    (right)."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        h, w = self.size
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, top:top + h, left:left + w]
''', ()),
    "SymmetricPad2d": ('''
class SymmetricPad2d(nn.Module):
    """Mirror padding that repeats the edge pixel (NumPy's "symmetric"; torch's "reflect"
    mirrors without it). padding: (left, right, top, bottom)."""

    def __init__(self, padding):
        super().__init__()
        self.padding = padding

    def forward(self, x):
        left, right, top, bottom = self.padding
        w, h = x.shape[3], x.shape[2]
        x = torch.cat([x[:, :, :, :left].flip(3), x, x[:, :, :, w - right:].flip(3)], 3)
        return torch.cat([x[:, :, :top].flip(2), x, x[:, :, h - bottom:].flip(2)], 2)
''', ()),
    "ToSequence": ('''
class ToSequence(nn.Module):
    """A C×H×W map as a sequence (CRNN): axis "width" gives W steps of C·H features (step t
    is column t), "height" H steps of C·W."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        x = x.permute(0, 3, 1, 2) if self.axis == "width" else x.permute(0, 2, 1, 3)
        return x.flatten(2)
''', ()),
    "last_state": ('''
def last_state(result):
    """(N, D·H): the last step of an nn.RNN / nn.LSTM / nn.GRU's (output, h_n) — an LSTM's
    h_n is (h_n, c_n)'s first — with its D directions side by side: the forward one after
    step T, the backward one after step 1 (torch's h_n, archcalc's last step)."""
    h_n = result[1][0] if isinstance(result[1], tuple) else result[1]
    return torch.cat(tuple(h_n), 1)
''', ()),
    "one_bias": ('''
def one_bias(layer):
    """An nn.RNN / nn.LSTM / nn.GRU with one bias vector per direction (Keras's form), as
    archcalc's `biases: 1`: bias_l0 (bias_l0_reverse) takes bias_ih's place and bias_hh
    becomes a zero buffer, neither trained nor saved. torch's layer reads its arrays by
    the names in _flat_weights_names, so those follow."""
    names, renamed = layer._flat_weights_names, {}
    for k, name in enumerate(names):
        value = layer._parameters.pop(name) if name.startswith("bias_") else None
        if value is None:
            continue
        if name.startswith("bias_ih"):
            names[k] = renamed[name] = name.replace("bias_ih", "bias")
            layer.register_parameter(names[k], value)
        else:
            layer.register_buffer(name, torch.zeros_like(value.detach()), persistent=False)
    layer._all_weights = [[renamed.get(n, n) for n in group] for group in layer._all_weights]
    layer._init_flat_weights()
    return layer
''', ()),
    "ResetBeforeGRU": ('''
class ResetBeforeGRU(nn.Module):
    """A GRU whose reset gate multiplies h before U_n (Cho et al. 2014; Keras's
    reset_after=False): n = tanh(W_n·x + b_in + U_n·(r⊙h) + b_hn); nn.GRU resets after U_n.
    Gates r, z, n and arrays named as nn.GRU's (weight_ih_l0 …; one_bias: one bias_l0 per
    direction); batch-first; returns (output, h_n) as nn.GRU does."""

    def __init__(self, input_size, hidden_size, bias=True, bidirectional=False,
                 one_bias=False):
        super().__init__()
        self.hidden_size = hidden_size
        self.suffixes = ["", "_reverse"] if bidirectional else [""]
        gates, bound = 3 * hidden_size, hidden_size ** -0.5
        shapes = {"weight_ih": (gates, input_size), "weight_hh": (gates, hidden_size)}
        if bias:
            shapes.update({"bias": (gates,)} if one_bias else
                          {"bias_ih": (gates,), "bias_hh": (gates,)})
        for suffix in self.suffixes:
            for name, shape in shapes.items():
                value = torch.empty(shape).uniform_(-bound, bound)
                self.register_parameter(f"{name}_l0{suffix}", nn.Parameter(value))

    def forward(self, x):
        h_size, outputs, last = self.hidden_size, [], []
        for suffix in self.suffixes:
            arrays = {name: getattr(self, f"{name}_l0{suffix}", None)
                      for name in ("weight_ih", "weight_hh", "bias", "bias_ih", "bias_hh")}
            w_hh, b_hh = arrays["weight_hh"], arrays["bias_hh"]
            b_rz, b_n = (None, None) if b_hh is None else (b_hh[:2 * h_size], b_hh[2 * h_size:])
            b_x = arrays["bias"] if arrays["bias"] is not None else arrays["bias_ih"]
            xw = F.linear(x, arrays["weight_ih"], b_x)
            h = x.new_zeros(x.shape[0], h_size)
            steps = list(range(x.shape[1]))
            out = [h] * len(steps)
            for t in steps[::-1] if suffix else steps:
                r, z = torch.sigmoid(xw[:, t, :2 * h_size]
                                     + F.linear(h, w_hh[:2 * h_size], b_rz)).chunk(2, 1)
                n = torch.tanh(xw[:, t, 2 * h_size:] + F.linear(r * h, w_hh[2 * h_size:], b_n))
                h = (1 - z) * n + z * h
                out[t] = h
            outputs.append(torch.stack(out, 1))
            last.append(h)
        return torch.cat(outputs, 2), torch.stack(last)
''', ()),
    "Maxout": ('''
class Maxout(nn.Module):
    """Output channel j is the largest of input channels j·pieces … j·pieces + pieces − 1."""

    def __init__(self, pieces):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return x.unflatten(1, (-1, self.pieces)).amax(2)
''', ()),
}


def _with_dependencies(names: set[str]) -> list[str]:
    """The helpers `names` need, each once, dependencies first, in HELPERS' order."""
    wanted, todo = set(), list(names)
    while todo:  # a helper's helpers too (PaddedMaxPool2d → PaddedPool → same_padding)
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(HELPERS[name][1])
    return [name for name in HELPERS if name in wanted]


# ---- weights in and out (the generated file's tail) -----------------------------------------

_IO = '''
def read_archcalc_npz(path):
    """{name: tensor} of the model in an archcalc .npz (weights or checkpoint, format 2: a
    JSON "header" member lists the names, member "model/<i>" holds array i; format 1 holds
    each array under its own name)."""
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
        if "header.npy" not in members:
            return {m[:-4]: _from_npy(archive.read(m)) for m in members
                    if m.endswith(".npy") and not m.startswith("@")}
        header = json.loads(_from_npy(archive.read("header.npy")))
        names = header["parts"]["model"]
        return {name: _from_npy(archive.read(f"model/{i}.npy")) for i, name in enumerate(names)}


def load_archcalc_weights(model, path):
    """Copy the weights of an archcalc .npz (`archcalc train`'s checkpoint.npz, or weights
    written by save_archcalc_weights) into model; torch names any missing or misshapen array."""
    LOAD_STATE


def save_archcalc_weights(model, path):
    """Write model's parameters and running statistics to an archcalc weights .npz (format 2)
    that `archcalc evaluate SPEC path` reads; through a temporary file, so a failed write
    leaves no partial file behind."""
    state = {ARCHCALC_NAME: value for key, value in model.state_dict().items()
             if not key.endswith("num_batches_tracked")}
    header = json.dumps({"format": 2, "parts": {"model": list(state)},
                         "meta": {"kind": "weights"}})
    temporary = f"{path}.tmp"
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr("header.npy",
                             _to_npy(f"<U{len(header)}", (), header.encode("utf-32-le")))
            for i, value in enumerate(state.values()):
                value = value.detach().to("cpu", torch.float32).contiguous()
                # the tensor's memory as it is (bytes() of a storage goes value by value)
                body = ctypes.string_at(value.data_ptr(), value.numel() * value.element_size())
                archive.writestr(f"model/{i}.npy", _to_npy("<f4", tuple(value.shape), body))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


# .npy, the format numpy.save writes: magic, version, header length, a dict literal
# {'descr': ..., 'fortran_order': ..., 'shape': ...}, then the raw little-endian values.
_DTYPES = {"<f4": torch.float32, "<f8": torch.float64, "<f2": torch.float16}


def _from_npy(data):
    """The tensor (or, for a text array, the str) that the bytes of one .npy file hold."""
    if data[:6] != b"\\x93NUMPY":
        raise ValueError("not a .npy array")
    length, start = (struct.unpack("<H", data[8:10])[0], 10) if data[6] == 1 else \\
        (struct.unpack("<I", data[8:12])[0], 12)
    header = ast.literal_eval(data[start:start + length].decode("latin1"))
    descr, shape, body = header["descr"], header["shape"], data[start + length:]
    if descr.startswith("<U"):
        return body.decode("utf-32-le").rstrip("\\0")
    if descr not in _DTYPES:
        raise ValueError(f"cannot read an array of {descr}")
    flat = torch.frombuffer(bytearray(body), dtype=_DTYPES[descr], count=math.prod(shape))
    if header["fortran_order"]:
        return flat.reshape(shape[::-1]).permute(*reversed(range(len(shape))))
    return flat.reshape(shape)


def _to_npy(descr, shape, body):
    """The bytes of a .npy file (version 1.0) holding `body`, values of `descr`."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\\n"  # numpy aligns the data to 64
    return b"\\x93NUMPY\\x01\\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + body
'''

_NAMING = """
def archcalc_name(key):
    \"\"\"The archcalc name of a state_dict key:
    {key} → {name}.\"\"\"
    layer, array = key.rsplit(".", 1)
    return {to_archcalc} + "." + array


def torch_key(name):
    \"\"\"The state_dict key of an archcalc array name (archcalc_name's inverse).\"\"\"
    layer, array = name.rsplit(".", 1)
    return {to_torch} + "." + array
"""


_NAMING_RECURRENT = """
def archcalc_name(key):
    \"\"\"The archcalc name of a state_dict key:
    {key} → {name}.\"\"\"
    layer, array = key.rsplit(".", 1){to_archcalc}
    if layer in RECURRENT:  # torch numbers the arrays of its stacked layers: weight_ih_l0
        array = array.replace("_l0", "", 1)
    return layer + "." + array


def torch_key(name):
    \"\"\"The state_dict key of an archcalc array name (archcalc_name's inverse).\"\"\"
    layer, array = name.rsplit(".", 1)
    if layer in RECURRENT:
        base, reverse = (array[:-8], "_reverse") if array.endswith("_reverse") else (array, "")
        array = base + "_l0" + reverse
    return {to_torch} + "." + array
"""


# ---- naming -------------------------------------------------------------------------------------

def quoted(text: object) -> str:
    """User text (a spec's name or path) for a docstring or a comment of the generated file:
    one line, every quote, backslash and control character escaped, so no name can end the
    docstring and become code (or fail to compile, as a stray \\N would)."""
    return json.dumps(str(text))[1:-1]


def class_name(name: str) -> str:
    """CamelCase of a spec name: resnet18 → Resnet18, vgg16_bn → Vgg16Bn."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    text = "".join(w[0].upper() + w[1:] for w in words) or "Network"
    if text[0].isdigit():
        text = "Net" + text
    if text in HELPERS or text in ("F", "nn", "torch"):
        text += "Net"
    return text


def _identifier(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text)


class _Naming:
    """Each leaf's path of torch submodule names: the spec's scope names, each further split
    at its dots (an imported torchvision name 'layer2.0.conv1' nests as torch nested it). A
    part torch cannot hold (empty, a leading "_", an nn.Module attribute; at the top, not an
    identifier) gets a new name, unique across the network so that the mapping inverts; a
    leaf whose split path would clash with another's keeps its whole name as one part."""

    def __init__(self, network: Network) -> None:
        self.network = network
        leaves = list(network.leaves())
        self.taken = {sub for leaf in leaves for part in leaf.path for sub in part.split(".")}
        self.fresh_names: dict[tuple[str, bool], str] = {}
        self.path: dict[Path, tuple[str, ...]] = {}
        used: set[tuple[str, ...]] = set()
        containers: set[tuple[str, ...]] = set()
        for leaf in leaves:
            subs = [sub for part in leaf.path for sub in part.split(".")]
            path = tuple(self._part(sub, depth == 0) for depth, sub in enumerate(subs))
            if path in used or path in containers or any(path[:d] in used
                                                         for d in range(1, len(path))):
                path = (self._fresh(network.display(leaf.path)),)
            used.add(path)
            containers.update(path[:d] for d in range(1, len(path)))
            self.path[leaf.path] = path

    def _part(self, sub: str, top: bool) -> str:
        fine = sub and not sub.startswith("_") and sub not in RESERVED
        if fine and (not top or _identifier(sub)):
            return sub
        if (sub, top) not in self.fresh_names:
            self.fresh_names[(sub, top)] = self._fresh(sub)
        return self.fresh_names[(sub, top)]

    def _fresh(self, text: str) -> str:
        new = re.sub(r"\W", "_", text).strip("_") or "layer"
        if not _identifier(new):
            new = "layer_" + new
        new += "_"
        while new in self.taken or new in RESERVED:
            new += "_"
        self.taken.add(new)
        return new

    def mapping(self, layers: list[Path]) -> tuple[str, dict[str, str]]:
        """How the file turns state_dict keys into archcalc names for these layers (the ones
        with arrays): ("same", {}) when they are equal; else a rule, "same" or "separator"
        (torch's dots are the spec's separator), and the layers the rule misses
        ({torch layer: archcalc layer}), whichever rule misses fewer."""
        sep = self.network.separator
        pairs = [(".".join(self.path[p]), self.network.display(p)) for p in layers]
        same = {t: a for t, a in pairs if t != a}
        by_sep = {t: a for t, a in pairs if t.replace(".", sep) != a or a.replace(sep, ".") != t}
        if sep == "." or len(same) <= len(by_sep):
            return "same", same
        return "separator", by_sep


class _Scopes:
    """The containers of the module tree: a scope whose children are named 0 … n−1, all of
    them scopes, is an nn.ModuleList (reached as [i]); any other an nn.ModuleDict (reached as
    .name, or ["name"] when the name is no identifier)."""

    def __init__(self, leaves: list[tuple[str, ...]]) -> None:
        self.children: dict[tuple[str, ...], list[str]] = {}
        self.leaves = set(leaves)
        self.lists: dict[tuple[str, ...], bool] = {}
        for path in leaves:
            for depth in range(len(path)):
                kids = self.children.setdefault(path[:depth], [])
                if path[depth] not in kids:
                    kids.append(path[depth])

    def is_list(self, scope: tuple[str, ...]) -> bool:
        if scope not in self.lists:
            kids = self.children.get(scope, [])
            self.lists[scope] = (
                bool(scope) and kids == [str(i) for i in range(len(kids))]
                and all(scope + (k,) not in self.leaves and not self.is_list(scope + (k,))
                        for k in kids))
        return self.lists[scope]

    def access(self, path: tuple[str, ...]) -> str:
        text = "self"
        for depth, part in enumerate(path):
            if self.is_list(path[:depth]):
                text += f"[{part}]"
            elif _identifier(part):
                text += "." + part
            else:
                text += f"[{lit(part)}]"
        return text

    def container(self, scope: tuple[str, ...]) -> str:
        if self.is_list(scope):
            return f"nn.ModuleList(nn.ModuleDict() for _ in range({len(self.children[scope])}))"
        return "nn.ModuleDict()"


# ---- the file -----------------------------------------------------------------------------------

@dataclass
class Exported:
    """What export builds: the file, its class, and the arrays its module holds under the
    executor's names ({archcalc name: shape})."""

    source: str
    class_name: str
    params: dict[str, tuple[int, ...]]
    buffers: dict[str, tuple[int, ...]]


def torch_source(network: Network, weights=None) -> str:
    """The Python source of a torch module for `network`; with `weights` (an archcalc .npz,
    checked here against the module's arrays), the module loads them by default."""
    return export(network, weights).source


@dataclass
class _Module:
    """The __init__ lines of the module under construction, and what they need."""

    init: list[str] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    weighted: list[Path] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    frozen_bn: list[str] = field(default_factory=list)
    applies: dict[Path, str] = field(default_factory=dict)   # Made.apply of each leaf
    recurrent: list[str] = field(default_factory=list)       # their arrays torch suffixes _l0


def export(network: Network, weights=None) -> Exported:
    from archcalc.calc.analyze import analyze  # shapes: the calculator's public analysis

    shapes = {row.path: row.input_shape for row in analyze(network).rows}
    naming = _Naming(network)
    leaves = list(network.leaves())
    scopes = _Scopes([naming.path[leaf.path] for leaf in leaves])
    module = _Module()
    made_scopes: set[tuple[str, ...]] = set()
    for leaf in leaves:
        path = naming.path[leaf.path]
        for depth in range(1, len(path)):
            scope = path[:depth]
            if scope not in made_scopes and not scopes.is_list(path[:depth - 1]):
                module.init.append(f"{scopes.access(scope)} = {scopes.container(scope)}")
            made_scopes.add(scope)
        made = KIND_MAP[leaf.kind](leaf.spec, shapes[leaf.path])
        module.helpers.update(made.helpers)
        name = network.display(leaf.path)
        module.params.update({f"{name}.{k}": v for k, v in made.params.items()})
        module.buffers.update({f"{name}.{k}": v for k, v in made.buffers.items()})
        module.init.append(f"{scopes.access(path)} = {made.code}")
        module.applies[leaf.path] = made.apply
        if leaf.kind in GATES:
            module.recurrent.append(name)
        if made.params or made.buffers:
            module.weighted.append(leaf.path)
        if not leaf.trainable and made.params:
            module.frozen.append(scopes.access(path))
            if leaf.kind == "batchnorm":
                module.frozen_bn.append(scopes.access(path))
    if weights is not None:
        _check_weights(weights, {**module.params, **module.buffers})
    forward = _Forward(scopes, naming.path, module.applies)
    forward.sequence(network.root, "x", "x", 0)
    cls = class_name(network.name)
    text = _File(network, cls, naming, module, weights).text(forward.lines)
    return Exported(text, cls, module.params, module.buffers)


class _Forward:
    """The body of forward(): a sequence reads and writes one variable; each branch of a
    merge computes into its own (y1, y2 … one letter further per nesting level), an empty
    branch is the merge's input itself."""

    LETTERS = "xyzuvwst"

    def __init__(self, scopes: _Scopes, paths: dict[Path, tuple[str, ...]],
                 applies: dict[Path, str]) -> None:
        self.scopes, self.paths, self.applies = scopes, paths, applies
        self.lines: list[str] = []

    def var(self, depth: int, index: int | None) -> str:
        base = self.LETTERS[depth] if depth < len(self.LETTERS) else f"h{depth}_"
        return base if index is None else f"{base}{index}"

    def sequence(self, seq: Sequence, src: str, dst: str, depth: int) -> str:
        """Emit seq reading `src`; returns the variable holding its result (src if empty)."""
        current = src
        for child in seq.children:
            if isinstance(child, Leaf):
                module = self.scopes.access(self.paths[child.path])
                self.lines.append(f"{dst} = " + self.applies[child.path].format(module=module,
                                                                               x=current))
                current = dst
            elif isinstance(child, Sequence):
                current = self.sequence(child, current, dst, depth)
            else:
                self.merge(child, current, dst, depth)
                current = dst
        return current

    def merge(self, merge: Merge, src: str, dst: str, depth: int) -> None:
        busy = [b for b in merge.branches if any(True for _ in iter_leaves(b))]
        outs = []
        for i, branch in enumerate(merge.branches, start=1):
            out = self.var(depth + 1, i if len(busy) > 1 else None)
            outs.append(self.sequence(branch, src, out, depth + 1))
        if merge.mode == "concat":
            self.lines.append(f"{dst} = torch.cat([{', '.join(outs)}], 1)")
        else:
            self.lines.append(f"{dst} = " + (" + " if merge.mode == "add" else " * ").join(outs))


def _split_top(text: str) -> list[str]:
    """`text` cut at the commas outside brackets and strings."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def _wrap(line: str, indent: str) -> list[str]:
    """`line` at `indent`; one longer than LINE that ends its first call (or dict) is broken
    between the arguments (items), continued under the opening bracket, or, when that
    bracket is far right, on lines of their own indented by eight."""
    opening = min((i for i in (line.find("("), line.find("{")) if i >= 0), default=-1)
    if len(indent) + len(line) <= LINE or opening < 0 or line[-1] not in ")}":
        return [indent + line]
    head, items = line[:opening + 1], _split_top(line[opening + 1:-1])
    pieces = [item + "," for item in items[:-1]] + [items[-1] + line[-1]]
    if len(indent) + len(head) > LINE // 2:
        lines, pad = [indent + head], indent + " " * 8
        current, fresh = pad, True
    else:
        lines, pad = [], indent + " " * len(head)
        current, fresh = indent + head, True
    for piece in pieces:
        if not fresh and len(current) + 1 + len(piece) > LINE:
            lines.append(current)
            current, fresh = pad, True
        current += piece if fresh else " " + piece
        fresh = False
    return lines + [current]


class _File:
    """The generated file, top to bottom: docstring, imports, constants, helpers, the
    module, the weights functions."""

    def __init__(self, network: Network, cls: str, naming: _Naming, module: _Module,
                 weights) -> None:
        self.network, self.cls, self.naming, self.module = network, cls, naming, module
        self.weights = weights
        self.rule, self.renamed = naming.mapping(module.weighted)
        self.identity = self.rule == "same" and not self.renamed and not module.recurrent

    def first_key(self, torch: bool, differing: bool = False) -> str | None:
        """A weight's state_dict key (torch) or archcalc name: the first layer's, or with
        `differing` the first whose two names differ (a recurrent layer's always do:
        weight_ih_l0, weight_ih)."""
        for path in self.module.weighted:
            names = ".".join(self.naming.path[path]), self.network.display(path)
            arrays = ("weight_ih_l0", "weight_ih") \
                if names[1] in self.module.recurrent else ("weight", "weight")
            keys = names[0] + "." + arrays[0], names[1] + "." + arrays[1]
            if not differing or keys[0] != keys[1]:
                return keys[0 if torch else 1]
        return None

    def docstring(self) -> list[str]:
        net, cls = self.network, self.cls
        bundled = net.name in bundled_names() and not net.file or net.file == f"{net.name}.yaml"
        spec = net.name if bundled else (net.file or net.name)
        origin = "its bundled spec" if bundled else spec
        if self.weights is None:
            build = f"    model = {cls}()  # {cls}(weights=\"checkpoint.npz\"): archcalc's weights"
        else:
            build = f"    model = {cls}()  # loads WEIGHTS; {cls}(weights=None) starts afresh"
        key = self.first_key(True)
        keys = f"({key} ...)" if key else "(this one has no weights)"
        dims = ", ".join(map(str, net.input_shape))
        first = next(net.leaves(), None)
        sample = f"torch.randint({first.spec.vocab}, (8, {dims}))" \
            if first is not None and first.kind == "embedding" else f"torch.rand(8, {dims})"
        return [f'"""{quoted(net.name)}, exported by archcalc from {quoted(origin)}.', "",
                build, f"    y = model({sample})",
                '    save_archcalc_weights(model, "trained.npz")',
                f"    # then: archcalc evaluate {quoted(spec)} trained.npz", "",
                "The submodules carry the spec's layer names, so state_dict() keys read like "
                "the spec", f"{keys}. Needs torch only.", '"""']

    def constants(self) -> list[str]:
        out = []
        if self.weights is not None:
            out.append(f"WEIGHTS = {lit(os.path.abspath(os.fspath(self.weights)))}")
        if self.rule == "separator":
            out.append(f"SEPARATOR = {lit(self.network.separator)}  # archcalc joins scope "
                       "names with it")
        if self.module.recurrent:
            out += _wrap(f"RECURRENT = {{{', '.join(lit(n) for n in self.module.recurrent)}}}",
                         "")
        if self.renamed:
            pairs = ", ".join(f"{lit(t)}: {lit(a)}" for t, a in self.renamed.items())
            out += ["# layers torch names otherwise than the spec (torch's name: the spec's)",
                    *_wrap(f"RENAMED = {{{pairs}}}", ""),
                    "TORCH_NAMES = {spec: torch for torch, spec in RENAMED.items()}"]
        return ["", "", *out] if out else []

    def naming_functions(self) -> list[str]:
        if self.identity:
            return []
        to_archcalc, to_torch = "layer", "layer"
        if self.rule == "separator":
            to_archcalc = 'layer.replace(".", SEPARATOR)'
            to_torch = 'layer.replace(SEPARATOR, ".")'
        if self.renamed:
            to_archcalc = f"RENAMED.get(layer, {to_archcalc})"
            to_torch = f"TORCH_NAMES.get(layer, {to_torch})"
        if self.module.recurrent:  # the layer's archcalc name first, then its arrays'
            template = _NAMING_RECURRENT
            to_archcalc = "" if to_archcalc == "layer" else f"\n    layer = {to_archcalc}"
        else:
            template = _NAMING
        text = template.format(key=repr(self.first_key(True, True)),
                               name=repr(self.first_key(False, True)),
                               to_archcalc=to_archcalc, to_torch=to_torch)
        return text.split("\n")

    def io(self) -> list[str]:
        if self.identity:
            load = "model.load_state_dict(read_archcalc_npz(path))"
            name = "key"
        else:
            load = ("state = read_archcalc_npz(path)\n    model.load_state_dict("
                    "{torch_key(name): value for name, value in state.items()})")
            name = "archcalc_name(key)"
        return _IO.replace("LOAD_STATE", load).replace("ARCHCALC_NAME", name).split("\n")

    def module_class(self, forward: list[str]) -> list[str]:
        m, shape = self.module, "×".join(str(v) for v in self.network.input_shape)
        default = "WEIGHTS" if self.weights is not None else "None"
        out = [f"class {self.cls}(nn.Module):", f'    """{quoted(self.network.name)}: N×{shape} in."""',
               "", f"    def __init__(self, weights={default}):", "        super().__init__()"]
        for line in m.init:
            out += _wrap(line, "        ")
        out += [f"        {access}.requires_grad_(False)" for access in m.frozen]
        out += ["        if weights is not None:",
                "            load_archcalc_weights(self, weights)",
                "", "    def forward(self, x):"]
        out += [f"        {line}" for line in forward] + ["        return x"]
        if m.frozen_bn:
            out += ["", "    def train(self, mode=True):",
                    "        # frozen batch norms normalise with their running statistics, as "
                    "archcalc's do", "        super().train(mode)"]
            out += [f"        {access}.eval()" for access in m.frozen_bn] + ["        return self"]
        return out

    def text(self, forward: list[str]) -> str:
        helpers = _with_dependencies(self.module.helpers)
        imports = ["ast", "ctypes", "json", "math", "os", "struct", "zipfile"]
        out = self.docstring() + [""] + [f"import {name}" for name in imports]
        out += ["", "import torch", "from torch import nn"]
        if any(HELPERS[name][0].count("F.") for name in helpers):
            out.append("from torch.nn import functional as F")
        out += self.constants()
        for name in helpers:
            out += ["", "", *HELPERS[name][0].strip("\n").split("\n")]
        out += ["", "", *self.module_class(forward), ""]
        out += self.naming_functions() + self.io()
        return "\n".join(out).rstrip("\n") + "\n"


def _check_weights(weights, wanted: dict[str, tuple[int, ...]]) -> None:
    """The file's model arrays are the module's, name for name and shape for shape."""
    from archcalc.nn.weights import read_npz

    path = os.fspath(weights)
    state = read_npz(path)
    fix = "export with weights trained from the same spec and input shape"
    for name, shape in wanted.items():
        if name not in state:
            raise ArchcalcError(f"weights: array '{echo(name, 80)}' is missing", file=path,
                                fix=fix)
        got = tuple(state[name].shape)
        if got != shape:
            raise ArchcalcError(f"weights: array '{echo(name, 80)}' has shape "
                                f"{'×'.join(map(str, got)) or 'scalar'}, the module needs "
                                f"{'×'.join(map(str, shape))}", file=path, fix=fix)
    extra = [name for name in state if name not in wanted]
    if extra:
        raise ArchcalcError(f"weights: array '{echo(extra[0], 80)}' is not in this spec",
                            file=path, fix=fix)
    from archcalc.nn.network import check_values
    for name, array in state.items():  # real, finite floats, as the executor loads them
        check_values(name, array, path, "float32")
