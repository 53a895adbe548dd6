"""An ONNX file's weights in the executor's layout, so that the imported network runs the
real model (`archcalc check model.onnx`, `archcalc import --weights-out model.npz`).

The importer (onnx_import.convert_with_weights) hands every emitted layer's node here and
gets back {param: (initializer name, array)}; `state_for` then keys them as the executor
does ("<layer name>.<param>") and checks every shape against the built model, naming the
initializer and the layer when they disagree. Layouts (the executor's are PyTorch's):
    conv2d            Conv W (F, C/g, kh, kw), B (F,)                     → weight, bias
    conv_transpose2d  ConvTranspose W (C_in, C_out/g, kh, kw), B (C_out,) → weight, bias
    dense             Gemm transB=1: B (units, D); transB=0: B (D, units) → weight (units, D)
                      MatMul W (D, units) [+ Add bias (units,)]           → weight (units, D)
    batchnorm         scale, B, mean, var (C,) → weight, bias, running_mean, running_var
    layernorm         Scale, B (C, H, W)                                  → weight, bias
    embedding         Gather's data (vocab, units)                        → weight
    rnn, lstm, gru    W (D, G·H, F), R (D, G·H, H), B (D, 2·G·H) = [Wb, Rb], gates in ONNX's
                      order (LSTM iofc, GRU zrh) → weight_ih, weight_hh, bias_ih, bias_hh
                      per direction (suffix _reverse for the second), gates in PyTorch's
                      order (i, f, g, o; r, z, n); `biases: 1` (B = Pad(Wb)) → bias = Wb
A Conv into which the exporter folded a BatchNormalization is just a Conv with a bias.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.importers import match_state
from archcalc.limits import echo
from archcalc.spec.layers import GATES

Arrays = dict[str, tuple[str, np.ndarray]]   # param short name → (initializer, array)


def _const(consts: Any, name: str, layer: str, display: str) -> tuple[str, np.ndarray]:
    """The initializer `name` (through Identity nodes) as a float array."""
    source = consts._through_identity(name)
    value = consts.value(name)
    if value is None:
        raise ArchcalcError(f"weights: '{echo(source, 60)}' of layer '{echo(layer, 60)}' is "
                            "not a constant archcalc can evaluate", file=display,
                            fix="export the model with its weights as initializers "
                                "(do_constant_folding=True)")
    value = np.asarray(value)
    if value.dtype.kind != "f":
        raise ArchcalcError(f"weights: initializer '{echo(source, 60)}' of layer "
                            f"'{echo(layer, 60)}' holds {value.dtype} values (a quantized "
                            "model?), not floating-point numbers", file=display,
                            fix="export the float32 model")
    # float16 / bfloat16 files run in float32; float64 stays (the executor may be float64)
    return source, value.astype(np.float32) if value.dtype.itemsize < 4 else value


def layer_arrays(op: Any, consts: Any, display: str) -> Arrays:
    """The parameters of one imported layer (an onnx_import._Op with its item and name),
    in the executor's layout; {} for a layer without parameters."""
    kind = (op.item or {}).get("type")
    node, name = op.node, op.name
    inputs = list(node.input)

    def get(k: int) -> tuple[str, np.ndarray] | None:
        return _const(consts, inputs[k], name, display) if len(inputs) > k and inputs[k] \
            else None

    out: Arrays = {}
    if kind in ("conv2d", "conv_transpose2d"):
        out["weight"] = get(1)
        if op.item.get("bias", True) and get(2) is not None:
            out["bias"] = get(2)
    elif kind == "batchnorm":
        for k, short in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
            out[short] = get(k)
    elif kind == "layernorm":
        out["weight"], out["bias"] = get(1), get(2)
    elif kind == "dense":
        out.update(_dense(op, consts, display, get))
    elif kind == "embedding":
        out["weight"] = get(0)
    elif kind in GATES:
        out.update(_recurrent(op, consts, display))
    return {k: v for k, v in out.items() if v is not None}


# PyTorch's gate blocks as indices of ONNX's: LSTM i, f, g, o from i, o, f, c; GRU r, z, n
# from z, r, h (the inverse of archcalc.exporters.onnx_export.ONNX_GATES).
TORCH_GATES: dict[str, tuple[int, ...]] = {"rnn": (0,), "lstm": (0, 2, 3, 1), "gru": (1, 0, 2)}


def _torch_order(kind: str, array: np.ndarray) -> np.ndarray:
    blocks = np.split(array, len(TORCH_GATES[kind]), axis=0)
    return np.concatenate([blocks[k] for k in TORCH_GATES[kind]], axis=0)


def _recurrent(op: Any, consts: Any, display: str) -> Arrays:
    """The RNN/LSTM/GRU node's W, R, B (see the module docstring) per direction."""
    node, kind, name = op.extra["rnn"], op.item["type"], op.name
    inputs = list(node.input) + [""] * 4
    w_source, w = _const(consts, inputs[1], name, display)
    r_source, r = _const(consts, inputs[2], name, display)
    arrays = {"weight_ih": (w_source, w), "weight_hh": (r_source, r)}
    if op.item.get("bias", True) and inputs[3]:
        if op.extra.get("biases") == 1:  # B = Pad(Wb): the vector before the pad
            pad = consts.producers[consts._through_identity(inputs[3])]
            arrays["bias"] = _const(consts, pad.input[0], name, display)
        else:
            b_source, b = _const(consts, inputs[3], name, display)
            half = b.shape[-1] // 2
            arrays["bias_ih"], arrays["bias_hh"] = (b_source, b[..., :half]), \
                (b_source, b[..., half:])
    out: Arrays = {}
    for short, (source, value) in arrays.items():
        for k, suffix in enumerate(("", "_reverse")[:value.shape[0]]):
            out[short + suffix] = (source, _torch_order(kind, value[k]))
    return out


def _dense(op: Any, consts: Any, display: str, get) -> Arrays:
    """Gemm or MatMul (+ the fused Add's bias) → weight (units, D), bias (units,)."""
    source, w = get(1)
    transposed = op.node.op_type == "Gemm" and any(
        a.name == "transB" and a.i for a in op.node.attribute)
    out: Arrays = {"weight": (source, w if transposed else w.T)}
    bias = get(2) if op.node.op_type == "Gemm" else (
        _const(consts, op.extra["bias"], op.name, display) if "bias" in op.extra else None)
    if bias is not None and op.item.get("bias"):
        b_source, b = bias
        units = op.item["units"]
        # Gemm's C broadcasts: (units,), (1, units) or a single value
        out["bias"] = (b_source, np.broadcast_to(b.reshape(-1), (units,)).copy()
                       if b.size in (1, units) else b)
    return out


def state_for(model: Any, table: dict[str, Arrays], display: str) -> dict[str, np.ndarray]:
    """{"<layer>.<param>": array} for a built executor Model of the imported network; one
    line naming the initializer and the layer when a shape disagrees or an array is
    missing (nothing is loaded then)."""
    return match_state(model, table, display, holder="the file",
                       fix_missing="export the model with its weights as initializers",
                       shape_of=lambda source, dims: (f"initializer '{echo(source, 60)}' has "
                                                      f"shape {dims}"),
                       fix_shape="re-export the model; archcalc reads PyTorch's layouts")
