"""Other tools' figures for the same network: each peer's counting rules as a view of the
calculator's rows (DESIGN.md: one rule per place, the peer's source cited, never a second
calculator).

"The same network" is the spec written one torch module per layer, as `archcalc export`
writes it (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d(1) for a
global average pool, nn.Linear, ...; merges as torch.cat, `+` and `*`), in eval mode with a
float input of `--batch` images; for Keras the same layers as Keras layers; for Netscope the
Caffe prototxt of it (a batch norm is Caffe's BatchNorm + Scale pair). A tool that hooks
modules (thop, ptflops's pytorch backend) sees a layer that a model calls as a function
differently: that is the model's code, not the network, and the `why` list says so.

Each peer gets a function that walks the rows once with a per-row rule. A rule returns the
row's contribution split into named parts, e.g. {"macs": 118_013_952, "bias": 802_816}; the
part "macs" is what archcalc counts itself, every other part is a difference with a reason
(its text in the peer's REASONS table). A kind a peer's rule was not read for returns None:
the peer's figure is then marked incomplete and the kinds are named, never counted as zero
in silence.

Figures scale with the batch as each tool's do (torchinfo, fvcore, thop, FlopCounterMode and
Netscope count the whole batch; ptflops always measures one image). Exact integers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from archcalc.calc.analyze import Analysis, Row
from archcalc.calc.shapes import prod
from archcalc.spec.layers import GATES, explicit_pads, pair
from archcalc.spec.tree import Leaf, Path

PEERS: tuple[str, ...] = ("torchinfo", "fvcore", "thop", "ptflops_pytorch", "ptflops_aten",
                          "pytorch_flop_counter", "keras", "netscope")

# torchinfo's "Input size" is sys.getsizeof(tensor.untyped_storage()) (torchinfo.py
# get_total_memory_used): the data plus the Python object's header, 64 bytes on 64-bit
# CPython 3.11 (measured here for every shape and dtype: sys.getsizeof(storage) − nbytes).
TORCHINFO_STORAGE_HEADER = 64

CONVS = ("conv2d", "conv_transpose2d")
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "softmax",
               "hardsigmoid", "hardswish", "silu", "gelu")
# Layers that neither compute nor keep anything in any tool's eyes: views and the identity.
# to_sequence is a permutation of the map (ToSequence: permute + flatten): no arithmetic.
NOTHING = ("flatten", "dropout", "crop", "to_sequence")
MERGES = ("add", "concat", "mul")


@dataclass
class Figure:
    """One figure a peer prints, next to archcalc's own figure for the same quantity."""

    key: str                # the peer's own field name (the JSON key)
    label: str              # how the table names it
    value: int | Fraction
    ours: int               # archcalc's figure
    ours_label: str
    reasons: list[tuple[int | Fraction, str]] = field(default_factory=list)  # (count, why)
    unit: str = ""          # "B" for bytes

    @property
    def difference(self) -> int | Fraction:
        return self.value - self.ours


@dataclass
class Peer:
    key: str                # the JSON key: torchinfo, fvcore, ...
    title: str              # the tool and version whose source the rules follow
    figures: list[Figure]
    notes: list[str] = field(default_factory=list)      # why-lines that are not a count
    unread: dict[str, int] = field(default_factory=dict)  # kind → layers without a rule
    printed: dict[str, str] = field(default_factory=dict)  # strings as the tool prints them

    @property
    def complete(self) -> bool:
        return not self.unread

    def why(self) -> list[str]:
        """Every difference from archcalc with its count, then the caveats."""
        lines = []
        for fig in self.figures:
            for count, text in fig.reasons:
                lines.append(f"{fig.key}: {_signed(count)}{fig.unit and ' ' + fig.unit} {text}")
        lines.extend(self.notes)
        if self.unread:
            kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(self.unread.items()))
            lines.append(f"not reproduced: layers of kind {kinds}: this view has no rule read "
                         "from the tool's source for them, so its figures leave them out")
        return lines

    def as_dict(self) -> dict:
        out: dict = {fig.key: _json_number(fig.value) for fig in self.figures}
        if self.printed:
            out["printed"] = dict(self.printed)
        out["complete"] = self.complete
        out["why"] = self.why()
        return out


def _json_number(value: int | Fraction) -> int | str:
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    return int(value)


def _signed(count: int | Fraction) -> str:
    sign = "+" if count >= 0 else "−"
    count = abs(count)
    if isinstance(count, Fraction) and count.denominator != 1:
        return f"{sign}{count.numerator:,}/{count.denominator}"
    return f"{sign}{int(count):,}"


# ---- the rows as each tool meets them ---------------------------------------------------------

Rule = Callable[[Row, "Leaf | None"], "dict[str, int | Fraction] | None"]


@dataclass
class _Context:
    analysis: Analysis
    leaves: dict[Path, Leaf]
    batch: int
    dtype_bytes: int

    @property
    def rows(self) -> list[Row]:
        return self.analysis.rows

    def tally(self, rule: Rule, ours: Callable[[Row], dict] | None = None
              ) -> tuple[dict[str, int | Fraction], dict[str, int]]:
        """(parts summed over the rows, per image; kinds the rule has no answer for). A row
        without a rule is left out of the peer's figure; `ours(row)` gives archcalc's part
        of it (e.g. {"!unread": row.macs}), added to the parts so that the difference it
        makes is its own named reason (_left_out), never "other" nor a wrong one."""
        parts: dict[str, int | Fraction] = {}
        unread: dict[str, int] = {}
        for row in self.rows:
            leaf = self.leaves.get(row.path)
            got = rule(row, leaf)
            if got is None:
                kind = _kind_name(row, leaf)
                unread[kind] = unread.get(kind, 0) + 1
                got = ours(row) if ours is not None else {}
            for key, count in got.items():
                parts[key] = parts.get(key, 0) + count
        return parts, unread


def _kind_name(row: Row, leaf: Leaf | None) -> str:
    """The kind as a peer's rule tells it apart: a dense layer at every step of a sequence
    and a GRU exported as the file's ResetBeforeGRU are other modules to the tools."""
    if _time_distributed(row):
        return "dense (time_distributed)"
    if row.type == "gru" and leaf is not None and not leaf.spec.reset_after:
        return "gru (reset_after: false)"
    return row.type


def _left_out(unread: dict[str, int]) -> str:
    """The one reason for every row a peer's view has no rule for."""
    n = sum(unread.values())
    kinds = ", ".join(f"{kind} ({count})" for kind, count in sorted(unread.items()))
    return (f"left out: {n} layer{'s' if n != 1 else ''} of kind {kinds} — no rule read "
            "from the tool's source for them")


def _reasons(table: dict[str, str], unread: dict[str, int]) -> dict[str, str]:
    return {**table, "!unread": _left_out(unread)} if unread else table


def _time_distributed(row: Row) -> bool:
    """A dense layer applied at every step of a T×F sequence."""
    return row.type == "dense" and len(row.input_shape) == 2


def _steps_directions(row: Row, leaf: Leaf) -> tuple[int, int]:
    """(T, D) of a recurrent row: its input's steps and its directions."""
    return row.input_shape[0], 2 if leaf.spec.bidirectional else 1


def _torch_recurrent(leaf: Leaf | None) -> bool:
    """A recurrent layer exported as nn.RNN / nn.LSTM / nn.GRU (torch_export.py), not the
    file's ResetBeforeGRU (a GRU with reset_after: false)."""
    return (leaf is not None and leaf.kind in GATES
            and not (leaf.kind == "gru" and not leaf.spec.reset_after))


def _figure(key: str, label: str, parts: dict, ours: int, ours_label: str,
            reasons: dict[str, str], scale: int = 1, unit: str = "",
            extra: list[tuple[int, str]] | None = None) -> Figure:
    """A figure from parts summed over the rows: its value is their sum × scale, except the
    parts whose key starts with "!" (what archcalc counts and the peer does not). Every part
    other than "macs" (archcalc's own count) is a reason: "!" parts with a minus sign;
    `extra` adds reasons that no row gives (the network's input); whatever is left
    unexplained is said as "other" (the tests require there is none)."""
    value = sum(count for k, count in parts.items() if not k.startswith("!")) * scale
    found = [(count * scale, reasons[k]) for k, count in parts.items()
             if k != "macs" and not k.startswith("!") and count]
    found += [(-count * scale, reasons[k]) for k, count in parts.items()
              if k.startswith("!") and count]
    found += [(count, text) for count, text in (extra or []) if count]
    fig = Figure(key, label, value, ours, ours_label, found, unit)
    rest = fig.difference - sum(count for count, _ in found)
    if rest:
        fig.reasons.append((rest, reasons.get("other", "other difference")))
    return fig


def _n(shape: tuple[int, ...]) -> int:
    return prod(shape)


def _params(row: Row) -> int:
    """The layer's torch parameters (weights, biases, γ, β; not running statistics)."""
    return row.weights + row.biases


def _trainable(leaf: Leaf | None) -> bool:
    return leaf is not None and leaf.trainable


# ---- torchinfo 1.8 ------------------------------------------------------------------------------

def _torchinfo_macs(row: Row, leaf: Leaf | None):
    """layer_info.py LayerInfo.calculate_macs: for every parameter named weight or bias, a
    module whose class name contains "Conv" adds params × N·H_out·W_out, any other adds
    params × N (batch only); a parameter named otherwise (an RNN's weight_ih_l0, bias_hh_l0,
    one_bias's bias_l0) adds params × N·T, output_size[:2] of the output sequence. So a dense
    layer at every step counts its weights once per sequence, an embedding its whole table.
    Modules without parameters add nothing."""
    if row.type in GATES:
        steps, _ = _steps_directions(row, leaf)
        return {"macs": row.macs, "recurrent": steps * _params(row) - row.macs}
    if row.type == "embedding":
        return {"embedding": _params(row)}
    if _time_distributed(row):
        return {"macs": row.macs, "bias": row.biases, "per_step": row.weights - row.macs}
    if row.type in CONVS:
        spatial = _n(row.output_shape[1:])
        parts = {"macs": row.macs, "bias": row.biases * spatial}
        if row.type == "conv_transpose2d":  # counted at the output's positions, not input's
            parts["transposed"] = row.weights * spatial - row.macs
        return parts
    if row.type == "dense":
        return {"macs": row.macs, "bias": row.biases}
    if row.type in ("batchnorm", "layernorm"):
        return {"norm": _params(row)}
    if _params(row):
        return None
    return {}


def _torchinfo_outputs(row: Row, leaf: Leaf | None):
    """model_statistics.py ModelStatistics.__init__: total_output_bytes adds
    2 × output_bytes of every leaf module with num_params > 0 ("x2 for gradients"); layers
    without parameters (pools, activations, merges) add nothing. As values per image,
    against archcalc's kept tensors (Row.activations). A recurrent module's output is the
    tuple (output, h_n): torchinfo sizes its first tensor, the N×T×D·H sequence, whatever
    the layer passes on."""
    if row.type in GATES:
        steps, directions = _steps_directions(row, leaf)
        return {"macs": row.activations,
                "sequence": steps * directions * leaf.spec.units - row.activations}
    if _params(row):
        return {"macs": row.activations, "not_kept": _n(row.output_shape) - row.activations}
    return {"!parameterless": row.activations}


TORCHINFO_REASONS = {
    "bias": "bias adds: torchinfo counts every bias once per output position "
            "(layer_info.py LayerInfo.calculate_macs)",
    "norm": "batch/layer-norm γ and β counted as mult-adds once per image "
            "(layer_info.py LayerInfo.calculate_macs)",
    "transposed": "transposed convolutions counted at the output's positions "
                  "(layer_info.py LayerInfo.calculate_macs)",
    "running": "batch-norm running mean and variance: buffers, not parameters, in torch",
    "header": "the Python object header of the input tensor's storage: torchinfo's input "
              "size is sys.getsizeof(storage) (torchinfo.py get_total_memory_used)",
    "!parameterless": "outputs of layers without parameters (pools, merges, activations that "
                     "make a new tensor): torchinfo counts only layers that own parameters "
                     "(model_statistics.py ModelStatistics.__init__)",
    "not_kept": "outputs of parameterised layers that archcalc does not keep",
    "recurrent": "recurrent layers: every weight and bias once per step (layer_info.py "
                 "LayerInfo.calculate_macs: params × N·T for names like weight_ih_l0)",
    "embedding": "embedding tables: every entry counted once per sequence (layer_info.py "
                 "LayerInfo.calculate_macs: output_size[0] × params)",
    "per_step": "dense layers at every step: weights counted once per sequence, not per "
                "step (layer_info.py LayerInfo.calculate_macs: output_size[0] × params)",
    "sequence": "recurrent layers: torchinfo counts the output sequence, N·T·D·H values "
                "(the first tensor of the module's output tuple), archcalc the states it "
                "keeps for backpropagation through time",
}


def _torchinfo(ctx: _Context) -> Peer:
    t = ctx.analysis.totals
    b, n = ctx.dtype_bytes, ctx.batch
    torch_params = sum(_params(r) for r in ctx.rows)
    trainable = sum(_params(r) for r in ctx.rows if _trainable(ctx.leaves.get(r.path)))
    macs, unread = ctx.tally(_torchinfo_macs, lambda r: {"!unread": r.macs})
    outputs, _ = ctx.tally(_torchinfo_outputs, lambda r: {"!unread": r.activations})
    reasons = _reasons(TORCHINFO_REASONS, unread)
    input_bytes = t.input_values * n * b + TORCHINFO_STORAGE_HEADER
    param_bytes = torch_params * b
    ours_fb = 2 * t.layer_activations * n * b
    figures = [
        Figure("total_params", "Total params", torch_params, t.params, "params",
               [(torch_params - t.params, TORCHINFO_REASONS["running"])]
               if torch_params != t.params else []),
        Figure("trainable_params", "Trainable params", trainable, t.trainable_params,
               "trainable params"),
        _figure("total_mult_adds", "Total mult-adds", macs, t.macs * n, "MACs",
                reasons, scale=n),
        Figure("total_input", "Input size", input_bytes, t.input_bytes, "input bytes",
               [(TORCHINFO_STORAGE_HEADER, TORCHINFO_REASONS["header"])], "B"),
        _figure("total_output_bytes", "Forward/backward pass size", outputs, ours_fb,
                "2 × kept layer outputs", reasons, scale=2 * n * b, unit="B"),
        Figure("total_param_bytes", "Params size", param_bytes, t.param_bytes, "param bytes",
               [(param_bytes - t.param_bytes, TORCHINFO_REASONS["running"])]
               if param_bytes != t.param_bytes else [], "B"),
    ]
    output_bytes = figures[4].value
    total = input_bytes + output_bytes + param_bytes
    ours_total = t.input_bytes + ours_fb + t.param_bytes
    parts = [(f.difference, f"from {f.label}") for f in figures[3:6] if f.difference]
    figures.append(Figure("estimated_total_size", "Estimated Total Size", total, ours_total,
                          "input + 2 × kept outputs + params", parts, "B"))
    printed = {  # what summary() prints: its own float formatting of bytes / 1e6
        "Input size (MB)": f"{input_bytes / 1e6:0.2f}",
        "Forward/backward pass size (MB)": f"{output_bytes / 1e6:0.2f}",
        "Params size (MB)": f"{param_bytes / 1e6:0.2f}",
        "Estimated Total Size (MB)": f"{total / 1e6:0.2f}",
    }
    return Peer("torchinfo", "torchinfo 1.8 summary()", figures, unread=unread,
                printed=printed)


# ---- fvcore 0.1.5 -------------------------------------------------------------------------------

def _fvcore_flops(row: Row, leaf: Leaf | None):
    """flop_count.py _DEFAULT_SUPPORTED_OPS with jit_handles.py's handles, in eval mode:
    aten::_convolution conv_flop_jit (batch·prod(w)·prod(out HW): MACs, bias ignored; a
    transposed one at the input's positions), aten::linear/addmm (in·out, no bias),
    aten::batch_norm batchnorm_flop_jit (eval: 2 per input value with affine), layer_norm
    norm_flop_counter (5 per input value with affine), adaptive_avg_pool2d
    elementwise_flop_counter(1, 0) (1 per input value), upsample_nearest2d (1 per output
    value), upsample_bilinear2d (4 per output value). Every other op (max/avg pooling, relu,
    add, cat, mul, softmax, ...) is unsupported and skipped with a warning: 0 — aten::lstm,
    aten::gru, aten::rnn_tanh / rnn_relu (nn.LSTM / nn.GRU / nn.RNN) and aten::embedding
    too. aten::linear on a T×F sequence counts every step. The file's ResetBeforeGRU
    computes with F.linear step by step: not reproduced."""
    if row.type in GATES or row.type == "embedding":
        return {"!skipped": row.macs} if row.type == "embedding" or _torch_recurrent(leaf) \
            else None
    if row.type in CONVS or row.type == "dense":
        return {"macs": row.macs}
    if row.type == "batchnorm":
        return {"batchnorm": 2 * _n(row.input_shape)}
    if row.type == "layernorm":
        return {"layernorm": 5 * _n(row.input_shape)}
    if row.type in ("adaptive_avgpool", "global_avgpool"):
        return {"adaptive_pool": _n(row.input_shape)}
    if row.type == "upsample":
        per = 1 if leaf.spec.mode == "nearest" else 4
        return {"upsample": per * _n(row.output_shape)}
    if row.type in ACTIVATIONS + NOTHING + MERGES + ("maxpool", "avgpool", "adaptive_maxpool",
                                                     "pad", "lrn"):
        return {}
    return None


def _fvcore_activations(row: Row, leaf: Leaf | None):
    """activation_count.py _DEFAULT_SUPPORTED_OPS: generic_activation_jit (the output's
    numel) for aten::_convolution, addmm, linear, matmul, bmm, einsum only; against
    archcalc's kept tensors (Row.activations)."""
    if row.type in CONVS or row.type == "dense":
        return {"macs": row.activations, "not_kept": _n(row.output_shape) - row.activations}
    if row.type in GATES and not _torch_recurrent(leaf):
        return None
    if row.type in ACTIVATIONS + NOTHING + MERGES + tuple(GATES) + ("embedding",) + (
            "batchnorm", "layernorm", "maxpool", "avgpool", "adaptive_avgpool",
            "global_avgpool", "adaptive_maxpool", "upsample", "pad", "lrn"):
        return {"!uncounted": row.activations}
    return None


FVCORE_REASONS = {
    "batchnorm": "batch norm at inference: 2 per input value (jit_handles.py "
                 "batchnorm_flop_jit)",
    "layernorm": "layer norm: 5 per input value (jit_handles.py norm_flop_counter)",
    "adaptive_pool": "adaptive/global average pools: 1 per input value (flop_count.py "
                     "elementwise_flop_counter(1, 0))",
    "upsample": "upsampling: 1 (nearest) or 4 (bilinear) per output value (flop_count.py)",
    "!uncounted": "kept outputs of layers other than conv and dense (batch norm, pools, "
                  "merges, ...): fvcore counts only conv and dense outputs "
                  "(activation_count.py _DEFAULT_SUPPORTED_OPS)",
    "not_kept": "conv/dense outputs archcalc does not keep",
    "!skipped": "recurrent layers and embeddings: aten::lstm, aten::gru, aten::rnn_tanh, "
                "aten::rnn_relu and aten::embedding have no handle in flop_count.py "
                "_DEFAULT_SUPPORTED_OPS: skipped, 0",
}


def _fvcore(ctx: _Context) -> Peer:
    t, n = ctx.analysis.totals, ctx.batch
    flops, unread = ctx.tally(_fvcore_flops, lambda r: {"!unread": r.macs})
    acts, unread2 = ctx.tally(_fvcore_activations, lambda r: {"!unread": r.activations})
    flops_reasons, acts_reasons = _reasons(FVCORE_REASONS, unread), _reasons(FVCORE_REASONS,
                                                                             unread2)
    for kind, count in unread2.items():
        unread.setdefault(kind, count)
    figures = [
        _figure("FlopCountAnalysis", "FlopCountAnalysis.total()", flops, t.macs * n, "MACs",
                flops_reasons, scale=n),
        _figure("ActivationCountAnalysis", "ActivationCountAnalysis.total()", acts,
                t.activations * n, "activations (input + kept)", acts_reasons, scale=n,
                extra=[(-t.input_values * n, "the network's input: fvcore counts outputs of "
                        "operators only")]),
    ]
    notes = ["fvcore's 'flops' are MACs: one fused multiply-add counts 1 (flop_count.py "
             "FlopCountAnalysis docstring)"]
    return Peer("fvcore", "fvcore 0.1.5 FlopCountAnalysis / ActivationCountAnalysis",
                figures, notes, unread)


# ---- thop ---------------------------------------------------------------------------------------

def _thop_macs(row: Row, leaf: Leaf | None):
    """profile.py register_hooks with vision/basic_hooks.py and calc_func.py; only modules
    of those types are hooked, per call:
    Conv: count_convNd → calculate_conv2d_flops, out numel·(C_in/groups)·K_h·K_w (no bias;
    a transposed one at its output's positions); Linear: count_linear, in_features·out numel;
    BatchNorm/LayerNorm: count_normalization, calculate_norm = 2·input numel, ×2 with affine;
    AvgPool: count_avgpool, output numel; AdaptiveAvgPool: count_adap_avgpool,
    (prod(in HW / out HW) + 1)·output numel; Upsample: calculate_upsample, output numel × 1
    (nearest) or 11 (bilinear); Softmax: calculate_softmax, (numel/C)·(3C − 1);
    ReLU, ReLU6, LeakyReLU (count_relu → 0), MaxPool, AdaptiveMaxPool, Dropout, ZeroPad2d:
    0. Other modules (Sigmoid, Tanh, ELU, SiLU, GELU, Hardswish, Flatten, LocalResponseNorm)
    have no hook: 0. Merges are tensor operations, not modules: 0.
    nn.RNN / nn.GRU / nn.LSTM: rnn_hooks.py count_rnn / count_gru / count_lstm, per step and
    direction the cell's _count_*_cell (see _thop_cell); nn.Embedding and the file's
    ResetBeforeGRU have no hook: 0."""
    if row.type in GATES:
        if not _torch_recurrent(leaf):
            return {"!unhooked": row.macs}
        steps, directions = _steps_directions(row, leaf)
        extra = steps * directions * _thop_cell(row.type, row.input_shape[1], leaf.spec.units,
                                                leaf.spec.bias) - row.macs
        return {"macs": row.macs, "cell": extra}
    if row.type == "embedding":  # no hook: 0 (a lookup: archcalc counts 0 MACs too)
        return {}
    if row.type == "conv2d" or row.type == "dense":
        return {"macs": row.macs}
    if row.type == "conv_transpose2d":
        c_in, k = row.input_shape[0], prod(pair(leaf.spec.kernel))
        counted = _n(row.output_shape) * (c_in // leaf.spec.groups) * k
        return {"macs": row.macs, "transposed": counted - row.macs}
    if row.type in ("batchnorm", "layernorm"):
        return {"norm": 4 * _n(row.input_shape)}
    if row.type == "avgpool":
        return {"pool": _n(row.output_shape)}
    if row.type in ("adaptive_avgpool", "global_avgpool"):
        window = Fraction(_n(row.input_shape[1:]), _n(row.output_shape[1:] or (1,)))
        # calculate_adaptive_avg: int((kernel + 1) · output numel) on float64
        return {"pool": int((window + 1) * _n(row.output_shape))}
    if row.type == "upsample":
        return {"upsample": (1 if leaf.spec.mode == "nearest" else 11) * _n(row.output_shape)}
    if row.type == "softmax":
        c = row.input_shape[0]
        return {"softmax": _n(row.input_shape) // c * (3 * c - 1)}
    if row.type in ACTIVATIONS + NOTHING + MERGES + ("maxpool", "adaptive_maxpool", "pad",
                                                     "lrn"):
        return {}
    return None


def _thop_cell(kind: str, f: int, h: int, bias: bool) -> int:
    """rnn_hooks.py _count_rnn_cell / _count_gru_cell / _count_lstm_cell: one step of one
    direction. Each gate block: H·(F + H) + H, + 2H with bias (b_ih and b_hh, whatever
    the number of bias vectors); GRU adds H for r ⊙ (…) and 3H for h' = (1 − z)·n + z·h,
    LSTM 3H for c' = f·c + i·g and H for h' = o·tanh(c')."""
    gate = h * (f + h) + h + (2 * h if bias else 0)
    return {"rnn": gate, "gru": 3 * gate + h + 3 * h, "lstm": 4 * gate + 3 * h + h}[kind]


def _thop_hooked(row: Row, leaf: Leaf | None) -> bool:
    """Whether thop counts the layer's parameters: profile.py counts m.parameters() of the
    modules it hooks only."""
    return row.type in THOP_HOOKED or (row.type in GATES and _torch_recurrent(leaf))


THOP_HOOKED = ("conv2d", "conv_transpose2d", "dense", "batchnorm", "layernorm")

THOP_REASONS = {
    "norm": "batch/layer norm: 4 per input value (basic_hooks.py count_normalization: "
            "2·numel, doubled for the affine γ, β)",
    "pool": "average pools: avg 1 per output value, adaptive (window + 1) per output value "
            "(basic_hooks.py count_avgpool, count_adap_avgpool)",
    "upsample": "upsampling: 1 (nearest) or 11 (bilinear) per output value (calc_func.py "
                "calculate_upsample)",
    "softmax": "softmax: 3C − 1 per vector of C (calc_func.py calculate_softmax)",
    "transposed": "transposed convolutions counted at the output's positions (calc_func.py "
                  "calculate_conv2d_flops)",
    "running": "batch-norm running mean and variance: buffers, which thop does not count "
               "(basic_hooks.py count_parameters: m.parameters() only)",
    "cell": "recurrent cells: per step and direction H·(F + H) + H per gate block, + 2H "
            "with bias, and the gates' element-wise products (rnn_hooks.py _count_*_cell)",
    "!unhooked": "the file's ResetBeforeGRU (a GRU with reset_after: false) is no module "
                 "thop hooks: 0 (profile.py register_hooks)",
    "unhooked_params": "parameters of modules thop does not hook (nn.Embedding, the "
                       "file's ResetBeforeGRU): profile.py counts hooked modules only",
}


def _thop(ctx: _Context) -> Peer:
    t, n = ctx.analysis.totals, ctx.batch
    macs, unread = ctx.tally(_thop_macs, lambda r: {"!unread": r.macs})
    hooked = [_thop_hooked(r, ctx.leaves.get(r.path)) for r in ctx.rows]
    params = sum(_params(r) for r, h in zip(ctx.rows, hooked) if h)
    running = sum(_params(r) for r in ctx.rows) - t.params
    unhooked = -sum(_params(r) for r, h in zip(ctx.rows, hooked) if not h)
    figures = [
        _figure("macs", "profile() MACs", macs, t.macs * n, "MACs",
                _reasons(THOP_REASONS, unread), scale=n),
        Figure("params", "profile() params", params, t.params, "params",
               [(count, THOP_REASONS[key]) for count, key in
                ((running, "running"), (unhooked, "unhooked_params")) if count]),
    ]
    notes = ["thop hooks modules: a layer a model calls as a function (F.relu, "
             "F.adaptive_avg_pool2d in torchvision's DenseNet and MobileNetV2) adds nothing "
             "there (profile.py add_hooks)"]
    return Peer("thop", "thop profile()", figures, notes, unread)


# ---- ptflops 0.7.5 ------------------------------------------------------------------------------

def _ptflops_pytorch(row: Row, leaf: Leaf | None):
    """pytorch_ops.py MODULES_MAPPING (forward hooks) plus FUNCTIONAL_MAPPING, which
    pytorch_engine.py patch_functional installs over torch.nn.functional during the run: a
    module whose forward calls a patched function is counted twice. Per image (batch 1).
    Conv: conv_flops_counter_hook, K·C_in·C_out/groups per output position (input position if
    transposed) + bias: output numel; Linear: linear_flops_counter_hook, in·out + out (F.linear
    is not patched); BatchNorm: bn_flops_counter_hook, input numel ×2 with affine (LayerNorm
    has no `affine`: ×1); ReLU, ELU, GELU: relu_flops_counter_hook (output numel) + F.relu /
    F.elu / F.gelu (input numel) = 2 per value; LeakyReLU: hook only (F.leaky_relu is not
    patched); ReLU6: hook only (its forward calls F.hardtanh, not patched); SiLU, Softmax: no
    hook, patched F.silu / F.softmax: 1 per value; Max/Avg/Adaptive pools:
    pool_flops_counter_hook (input numel) + the patched F.*pool* (input numel) = 2 per input
    value; Upsample: upsample_flops_counter_hook + F.interpolate: 2 per output value.
    Sigmoid, Tanh, Hardswish, Hardsigmoid, Flatten, Dropout, padding, and merges (`+`, `*`,
    torch.cat): 0. A Linear on a T×F sequence: (in·out + out)·T (linear_flops_counter_hook
    multiplies by the leading dimensions). nn.RNN / nn.GRU / nn.LSTM:
    rnn_flops_counter_hook (see _ptflops_cell); with `biases: 1` the hook reads bias_ih_l0,
    which one_bias renamed: not reproduced. The file's ResetBeforeGRU has no hook and calls
    no patched function: 0. nn.Embedding: not reproduced."""
    if row.type in GATES:
        if not _torch_recurrent(leaf):
            return {"!unhooked": row.macs}
        if leaf.spec.bias and leaf.spec.biases == 1:
            return None
        steps, directions = _steps_directions(row, leaf)
        h, gh = leaf.spec.units, GATES[row.type] * leaf.spec.units
        cell = {"rnn": h, "gru": 7 * h, "lstm": 10 * h}[row.type]
        return {"macs": row.macs, "cell": steps * directions * cell,
                "rnn_bias": steps * directions * 2 * gh if leaf.spec.bias else 0}
    if row.type == "embedding":
        return None
    if row.type in CONVS or row.type == "dense":
        return {"macs": row.macs, "bias": _n(row.output_shape) if row.biases else 0}
    if row.type == "batchnorm":
        return {"norm": 2 * _n(row.input_shape)}
    if row.type == "layernorm":
        return {"norm": _n(row.input_shape)}
    if row.type in ("relu", "elu", "gelu"):
        return {"activation": 2 * _n(row.output_shape)}
    if row.type in ("leaky_relu", "relu6", "silu", "softmax"):
        return {"activation": _n(row.output_shape)}
    if row.type in ("maxpool", "avgpool", "adaptive_avgpool", "global_avgpool",
                    "adaptive_maxpool"):
        return {"pool": 2 * _n(row.input_shape)}
    if row.type == "upsample":
        return {"upsample": 2 * _n(row.output_shape)}
    if row.type in ("sigmoid", "tanh", "hardswish", "hardsigmoid", "pad") + NOTHING + MERGES:
        return {}
    return None  # lrn: F.local_response_norm calls the patched avg_pool3d; not verified


def _ptflops_aten(row: Row, leaf: Leaf | None):
    """aten_ops.py ATEN_OPS_MAPPING: aten.convolution conv_flop (prod(w)·conv positions +
    bias: output numel), aten.addmm addmm_flop (in·out + out), aten.mm/matmul/bmm; every
    other aten op is a zero-op. Per image (batch 1). On CPU, nn.RNN and nn.GRU run as
    aten.addmm / aten.mm per step (each gate block's matrix products, and b_ih, b_hh added
    by the addmm: 2·G·H per step and direction with bias); nn.LSTM runs as one
    aten.mkldnn_rnn_layer (oneDNN), which is no op of the mapping: 0. nn.Embedding:
    aten.embedding, 0. The file's ResetBeforeGRU: not reproduced."""
    if row.type in GATES:
        if not _torch_recurrent(leaf):
            return None
        if row.type == "lstm":
            return {"!opaque": row.macs}
        steps, directions = _steps_directions(row, leaf)
        bias = steps * directions * 2 * GATES[row.type] * leaf.spec.units
        return {"macs": row.macs, "rnn_bias": bias if leaf.spec.bias else 0}
    if row.type in CONVS or row.type == "dense":
        return {"macs": row.macs, "bias": _n(row.output_shape) if row.biases else 0}
    if row.type == "maxout":
        return None
    return {}


PTFLOPS_REASONS = {
    "bias": "bias adds: conv bias once per output value, dense bias once per unit (at "
            "every step of a sequence) (pytorch_ops.py conv_flops_counter_hook / "
            "linear_flops_counter_hook; aten_ops.py conv_flop_count / addmm_flop)",
    "norm": "batch norm: 2 per input value (layer norm: 1) (pytorch_ops.py "
            "bn_flops_counter_hook)",
    "activation": "activations: ReLU/ELU/GELU 2 per value (the module hook plus the patched "
                  "F.relu its forward calls), ReLU6/LeakyReLU/SiLU/Softmax 1 "
                  "(pytorch_ops.py relu_flops_counter_hook, FUNCTIONAL_MAPPING)",
    "pool": "pools: 2 per input value (pytorch_ops.py pool_flops_counter_hook plus the "
            "patched F.*pool* the module calls)",
    "upsample": "upsampling: 2 per output value (upsample_flops_counter_hook plus the "
                "patched F.interpolate)",
    "frozen": "parameters of frozen layers: ptflops counts requires_grad parameters only "
              "(pytorch_engine.py get_model_parameters_number)",
    "running": "batch-norm running mean and variance: buffers, not parameters",
    "cell": "recurrent cells' element-wise work per step and direction: RNN H, GRU 7H, "
            "LSTM 10H (pytorch_ops.py rnn_flops)",
    "rnn_bias": "recurrent biases: b_ih and b_hh added at every step and direction "
                "(pytorch_ops.py rnn_flops_counter_hook; aten_ops.py addmm_flop)",
    "!unhooked": "the file's ResetBeforeGRU (a GRU with reset_after: false): no module "
                 "hook and no patched function, 0 (pytorch_ops.py MODULES_MAPPING)",
    "!opaque": "LSTM layers: on CPU nn.LSTM runs as aten.mkldnn_rnn_layer, which "
               "aten_ops.py ATEN_OPS_MAPPING does not map: 0",
}


def _ptflops(ctx: _Context, aten: bool) -> Peer:
    t = ctx.analysis.totals
    macs, unread = ctx.tally(_ptflops_aten if aten else _ptflops_pytorch,
                             lambda r: {"!unread": r.macs})
    trainable = sum(_params(r) for r in ctx.rows if _trainable(ctx.leaves.get(r.path)))
    figures = [
        _figure("macs", "MACs (one image)", macs, t.macs, "MACs per image",
                _reasons(PTFLOPS_REASONS, unread)),
        Figure("params", "params", trainable, t.params, "params",
               [(trainable - t.params, "batch-norm running statistics and frozen layers: "
                 "ptflops counts requires_grad parameters (pytorch_engine.py "
                 "get_model_parameters_number)")] if trainable != t.params else []),
    ]
    notes = ["ptflops measures one image whatever the batch (flops_counter.py "
             "get_model_complexity_info builds a (1, C, H, W) input)"]
    if not aten:
        notes.append("functions the model calls itself are counted once, modules whose "
                     "forward calls a patched function twice (pytorch_engine.py "
                     "patch_functional): a model written with F.relu prints less than this")
    key = "ptflops_aten" if aten else "ptflops_pytorch"
    title = f"ptflops 0.7.5 get_model_complexity_info(backend='{'aten' if aten else 'pytorch'}')"
    return Peer(key, title, figures, notes, unread)


# ---- PyTorch FlopCounterMode --------------------------------------------------------------------

def _flop_counter_forward(row: Row, leaf: Leaf | None):
    """torch/utils/flop_counter.py: conv_flop (conv_flop_count: 2·prod(out HW)·K·C_out·C_in
    per image, the transposed one at the input's positions; bias ignored), addmm_flop /
    mm_flop (2·m·n·k, bias ignored). No other op of these layers is registered: 0. On CPU
    nn.RNN and nn.GRU run as aten.addmm / aten.mm per step: their MACs, forward and backward
    as archcalc counts them (backward.py); nn.LSTM runs as aten.mkldnn_rnn_layer (oneDNN),
    which has no formula: 0 forward and backward. aten.embedding: 0. The file's
    ResetBeforeGRU: not reproduced."""
    if row.type in GATES:
        if not _torch_recurrent(leaf):
            return None
        return {"!opaque": row.macs} if row.type == "lstm" else {"macs": row.macs}
    if row.type in CONVS or row.type == "dense":
        return {"macs": row.macs}
    if row.type == "maxout":
        return None
    return {}


FLOP_COUNTER_REASONS = {
    "overcount": "grouped convolutions' weight gradients counted groups times: "
                 "conv_backward_flop ignores groups (torch/utils/flop_counter.py)",
    "!opaque": "LSTM layers: on CPU nn.LSTM runs as aten.mkldnn_rnn_layer (and its "
               "backward), which have no formula in torch/utils/flop_counter.py: 0",
}


def _flop_counter(ctx: _Context) -> Peer:
    from archcalc.calc.backward import backward_costs  # noqa: PLC0415 - only this view

    t, n = ctx.analysis.totals, ctx.batch
    fwd, unread = ctx.tally(_flop_counter_forward, lambda r: {"!unread": r.macs})
    dx = dw = overcount = opaque = left_out = 0
    for row, cost in zip(ctx.rows, backward_costs(ctx.analysis)):
        dx += cost.dx_macs
        dw += cost.dw_macs
        got = _flop_counter_forward(row, ctx.leaves.get(row.path))
        if got is None:  # left out of the figure, backward too
            left_out += cost.dx_macs + cost.dw_macs
        elif "!opaque" in got:
            opaque += cost.dx_macs + cost.dw_macs
        # conv_backward_flop's grad_weight branch calls conv_flop_count(t(x), t(grad_out),
        # t(grad_weight)): c_out·c_in there are C_out·N and the group count never enters,
        # so a grouped convolution's weight gradient is counted `groups` times.
        leaf = ctx.leaves.get(row.path)
        if row.type in CONVS and cost.dw_macs:
            overcount += (leaf.spec.groups - 1) * cost.dw_macs
    ours_step = 2 * n * (t.macs + dx + dw)
    reasons = _reasons(FLOP_COUNTER_REASONS, unread)
    missing = fwd.get("!opaque", 0) + fwd.get("!unread", 0)  # forward MACs not counted
    step_reasons = [(2 * n * overcount, FLOP_COUNTER_REASONS["overcount"]),
                    (-2 * n * (fwd.get("!opaque", 0) + opaque), reasons["!opaque"])]
    if unread:
        step_reasons.append((-2 * n * (fwd.get("!unread", 0) + left_out), reasons["!unread"]))
    figures = [
        _figure("forward", "forward FLOPs", fwd, t.flops * n, "FLOPs (2 × MACs)", reasons,
                scale=2 * n),
        Figure("forward_backward", "forward + backward FLOPs (train)",
               2 * n * (t.macs + dx + dw + overcount - missing - opaque - left_out),
               ours_step, "2 × (MACs + dX + dW MACs)",
               [(count, text) for count, text in step_reasons if count]),
    ]
    notes = [f"backward: dX {dx * n:,} + dW {dw * n:,} MACs for the batch (the first "
             "weighted layer computes no dX: its input needs no gradient)",
             "FLOPs = 2 × MACs; bias adds, batch norm, pooling, activations and merges are "
             "not registered ops: 0 (torch/utils/flop_counter.py register_flop_formula)"]
    return Peer("pytorch_flop_counter", "PyTorch 2.13 torch.utils.flop_counter.FlopCounterMode",
                figures, notes, unread)


# ---- Keras 3 ------------------------------------------------------------------------------------

def _keras(ctx: _Context) -> Peer:
    """keras/src/utils/summary_utils.py print_summary: trainable_count =
    count_params(model.trainable_weights), non_trainable_count =
    count_params(model.non_trainable_weights); model.count_params() is their sum. Keras's
    BatchNormalization holds γ, β (trainable) and moving mean, moving variance
    (non-trainable): archcalc's own split. Recurrent layers hold the bias vectors Keras's
    cells build (_keras_bias_difference); Embedding, its vocab × units table."""
    t = ctx.analysis.totals
    trainable = frozen = 0
    for row in ctx.rows:
        leaf = ctx.leaves.get(row.path)
        if leaf is not None and leaf.kind in GATES:
            delta = _keras_bias_difference(leaf)
            trainable += delta if leaf.trainable else 0
            frozen += 0 if leaf.trainable else delta
    text = ("recurrent biases in Keras's form: one vector per gate set for LSTM, SimpleRNN "
            "and GRU(reset_after=False), two for GRU(reset_after=True) (keras/src/layers/"
            "rnn/lstm.py, simple_rnn.py, gru.py: the cells' build)")
    figures = [
        Figure("count_params", "count_params()", t.params + trainable + frozen, t.params,
               "params", [(trainable + frozen, text)] if trainable + frozen else []),
        Figure("trainable_params", "Trainable params", t.trainable_params + trainable,
               t.trainable_params, "trainable", [(trainable, text)] if trainable else []),
        Figure("non_trainable_params", "Non-trainable params", t.non_trainable_params + frozen,
               t.non_trainable_params, "non-trainable", [(frozen, text)] if frozen else []),
    ]
    return Peer("keras", "Keras 3 model.summary() / count_params()", figures)


def _keras_bias_difference(leaf: Leaf) -> int:
    """Keras's bias count minus archcalc's for a recurrent layer: LSTMCell and SimpleRNNCell
    build one bias of G·H, GRUCell one of 3H with reset_after=False and a (2, 3H) one with
    reset_after=True; Bidirectional holds one layer per direction."""
    spec = leaf.spec
    if not spec.bias:
        return 0
    keras_biases = 2 if leaf.kind == "gru" and spec.reset_after else 1
    directions = 2 if spec.bidirectional else 1
    return (keras_biases - spec.biases) * GATES[leaf.kind] * spec.units * directions


# ---- Netscope -----------------------------------------------------------------------------------

def _netscope_rule(row: Row, leaf: Leaf | None):
    """dgschwend/netscope src/analyzer.coffee (HEAD 8ae36d8, 2018), Analyzer.analyze, per
    Caffe layer (batchOut = the batch): convolution comp.macc = K·H_out·W_out·C_in·C_out/group,
    mem.param = K·C_in·C_out/group + bias; innerproduct macc = in·out, param = in·out + bias;
    batchnorm: param = 2·C (mean, variance), plus the Scale layer Caffe pairs with it
    (γ, β): macc = 1 per value; lrn macc = local_size per value, param 2; eltwise PROD
    macc = 1 per value; deconvolution macc = C_in·C_out·H_out·W_out·(K_w/S_w)·(K_h/S_h).
    Every layer's mem.activation is its output's numel (in-place ReLU and Dropout too, each
    BatchNorm and Scale apart; a Crop's output too). Flatten has no Caffe layer (InnerProduct
    flattens): 0. Caffe has no adaptive pooling, upsampling or the newer activations (SiLU,
    Hardswish, ...): not reproduced, nor sequences (Netscope has no rule for Caffe's
    recurrent layers, Embed or a dense layer at every step)."""
    if _time_distributed(row):
        return None
    out = _n(row.output_shape)
    if row.type == "conv2d":
        return {"macs": row.macs, "act": out, "param": _params(row)}
    if row.type == "dense":
        return {"macs": row.macs, "act": out, "param": _params(row)}
    if row.type == "conv_transpose2d":
        (kh, kw), (sh, sw) = pair(leaf.spec.kernel), pair(leaf.spec.stride)
        macc = row.input_shape[0] * out * Fraction(kw, sw) * Fraction(kh, sh)
        return {"macs": row.macs, "transposed": macc - row.macs, "act": out,
                "param": row.weights * leaf.spec.groups}
    if row.type == "batchnorm":
        return {"scale": out, "act": 2 * out, "param": 2 * row.output_shape[0]}
    if row.type == "lrn":
        return {"lrn": _n(row.input_shape) * leaf.spec.size, "act": out, "param": 2}
    if row.type == "mul":
        return {"eltwise_prod": out, "act": out}
    if row.type in ("relu", "relu6", "elu", "leaky_relu", "dropout", "softmax", "maxpool",
                    "avgpool", "global_avgpool", "concat", "add", "crop"):
        return {"act": out}
    if row.type == "flatten":
        return {}
    return None


NETSCOPE_REASONS = {
    "scale": "batch norm's Scale layer (γ, β): 1 MACC per value",
    "lrn": "LRN: local_size MACCs per value (Σx²)",
    "eltwise_prod": "element-wise products: 1 MACC per value",
    "transposed": "deconvolution counted as C_in·C_out·H_out·W_out·(K/S)²",
}


def _netscope(ctx: _Context) -> Peer:
    t, n = ctx.analysis.totals, ctx.batch
    parts, unread = ctx.tally(_netscope_rule, lambda r: {
        "!unread": r.macs, "unread_act": r.activations, "unread_param": r.params})
    macc = {k: v for k, v in parts.items() if k not in ("act", "param") and "_" not in k}
    act = parts.get("act", 0)
    param = parts.get("param", 0)
    left_act, left_param = parts.get("unread_act", 0), parts.get("unread_param", 0)
    act_reasons = [(-left_act * n, _left_out(unread))] if left_act else []
    # archcalc keeps input + new tensors; Netscope adds every layer's output.
    extra_act = (t.input_values + act) - (t.activations - left_act)
    if extra_act:
        act_reasons.append((extra_act * n, "every Caffe layer's output counts, in-place ReLU "
                            "and Dropout, BatchNorm and its Scale apart (renderer.coffee "
                            "summarizeTable sums mem.activation over all layers)"))
    figures = [
        _figure("macc", "TOTAL macc", macc, t.macs * n, "MACs",
                _reasons(NETSCOPE_REASONS, unread), scale=n),
        Figure("activation", "TOTAL activation", (t.input_values + act) * n,
               t.activations * n, "activations (input + kept)", act_reasons),
        Figure("param", "TOTAL param", param, t.params, "params",
               [(count, text) for count, text in (
                   (param - t.params + left_param, "batch norm: 2·C (the BatchNorm layer's "
                    "mean, variance; the Scale layer's γ, β are not counted), LRN: 2 (α, β)"),
                   (-left_param, _left_out(unread) if unread else "")) if count]),
    ]
    notes = ["Netscope is a web tool for Caffe prototxt (dgschwend/netscope, a fork of "
             "ethereon/netscope); its rules are read from src/analyzer.coffee and "
             "src/renderer.coffee, not run here"]
    for row in ctx.rows:
        ceiled = _caffe_pool_size(row, ctx.leaves.get(row.path))
        if ceiled is not None and ceiled != tuple(row.output_shape[1:]):
            notes.append(f"{row.name}: Netscope rounds pooling outputs up (Caffe's rule): it "
                         f"would compute {ceiled[0]}×{ceiled[1]} here, not "
                         f"{row.output_shape[1]}×{row.output_shape[2]}; these figures keep "
                         "archcalc's shapes")
            break
    return Peer("netscope", "Netscope CNN Analyzer (dgschwend)", figures, notes, unread)


def _caffe_pool_size(row: Row, leaf: Leaf | None) -> tuple[int, int] | None:
    """Netscope's pooling output: ceil((W + 2·pad − K)/S) + 1 (analyzer.coffee, "pooling")."""
    if row.type not in ("maxpool", "avgpool") or leaf is None:
        return None
    pads = explicit_pads(leaf.spec.padding)
    if pads is None or pads[0] != pads[1] or pads[2] != pads[3]:
        return None
    (kh, kw) = pair(leaf.spec.kernel)
    stride = pair(leaf.spec.stride if leaf.spec.stride is not None else leaf.spec.kernel)
    sizes = []
    for size, k, s, p in zip(row.input_shape[1:], (kh, kw), stride, (pads[0], pads[2])):
        sizes.append(-(-(size + 2 * p - k) // s) + 1)
    return tuple(sizes)


# ---- all of them --------------------------------------------------------------------------------

def conventions(analysis: Analysis) -> list[Peer]:
    """Every peer's figures for the analysed network, at the analysis's batch and dtype."""
    ctx = _Context(analysis, {leaf.path: leaf for leaf in analysis.network.leaves()},
                   analysis.totals.batch, analysis.totals.dtype_bytes)
    return [_torchinfo(ctx), _fvcore(ctx), _thop(ctx), _ptflops(ctx, aten=False),
            _ptflops(ctx, aten=True), _flop_counter(ctx), _keras(ctx), _netscope(ctx)]
