"""A `.keras` archive's weights in the executor's layout, so that the imported network runs
the real model (`archcalc check model.keras`, `archcalc import model.keras --weights-out`).

Keras 3 saves them in the archive's model.weights.h5, each layer's variables as datasets
layers/<slot>/vars/0, 1, ... where <slot> is the layer's class in snake case numbered in the
model's layer order (conv2d, conv2d_1, ...; a nested model's layers one level deeper:
layers/sequential/layers/conv2d). keras_import records each node's slot (_Node.h5); this
module reads the variables (with h5py, needed only here) and rearranges them:
    Conv2D           kernel (kh, kw, C/g, F)        → weight (F, C/g, kh, kw), bias (F,)
    DepthwiseConv2D  kernel (kh, kw, C, m)          → weight (C·m, 1, kh, kw): output channel
                                                      c·m + j is kernel[..., c, j]
    SeparableConv2D  depthwise (kh, kw, C, m)       → <name>_depthwise's weight (as above),
                     pointwise (1, 1, C·m, F), bias → <name>'s weight (F, C·m, 1, 1), bias
    Conv2DTranspose  kernel (kh, kw, F, C)          → weight (C, F, kh, kw), bias (F,)
    Dense            kernel (D, units), bias        → weight (units, D); on an image, the
                                                      1×1 conv's (units, D, 1, 1)
    BatchNorm        γ, β, moving mean, variance    → weight, bias, running_mean, running_var
A layer that reads a Flatten of a channels-last map (H, W, C) sees its inputs in H·W·C
order where archcalc's flatten gives C·H·W: its rows (a Dense's kernel, a BatchNorm's
vectors) are permuted so that the same feature meets the same weight.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.importers import dims_text, match_state
from archcalc.limits import echo, limit

Arrays = dict[str, tuple[str, np.ndarray]]   # param short name → (h5 path, array)
WEIGHTS_MEMBER = "model.weights.h5"
REQUIRES = "h5py"  # reads WEIGHTS_MEMBER; the architecture needs nothing
SAVE_AGAIN = "save the model again with model.save('model.keras') (Keras 3)"


# ---------------------------------------------------------------------------------------------
# The archive's weights file


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ArchcalcError("reading the weights of a .keras file needs h5py",
                            fix="pip install h5py") from None
    return h5py


def _weights_bytes(handle: Any, display: str) -> bytes:
    """model.weights.h5 of the open .keras zip, inflated in memory within the size the
    zip's directory states and MAX_MODEL_BYTES (a read of at most that plus one)."""
    cap = limit("MAX_MODEL_BYTES")
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ArchcalcError("not a Keras archive: the file is not a zip", file=display,
                            fix=SAVE_AGAIN) from None
    with archive:
        try:
            info = archive.getinfo(WEIGHTS_MEMBER)
        except KeyError:
            raise ArchcalcError(f"the Keras archive holds no {WEIGHTS_MEMBER} (a model saved "
                                "without its weights?)", file=display, fix=SAVE_AGAIN) from None
        if info.file_size > cap:
            raise ArchcalcError(f"{WEIGHTS_MEMBER} in the archive inflates to "
                                f"{info.file_size:,} bytes; at most {cap:,} are read",
                                file=display, fix="raise ARCHCALC_MAX_MODEL_BYTES")
        bound = info.file_size
        try:
            with archive.open(info) as member:
                data = member.read(bound + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                NotImplementedError, ValueError) as exc:
            raise ArchcalcError(f"cannot read {WEIGHTS_MEMBER} in the archive: "
                                f"{echo(exc, 120)}", file=display, fix=SAVE_AGAIN) from None
    if len(data) > bound:  # the directory understated it
        raise ArchcalcError(f"{WEIGHTS_MEMBER} in the archive inflates past the "
                            f"{bound:,} bytes its directory states", file=display,
                            fix=SAVE_AGAIN)
    return data


def weights_table(handle: Any, nodes: list, display: str) -> dict[str, Arrays]:
    """{layer name: {param: (h5 path, array)}} for the translated keras_import nodes of the
    open .keras file `handle`, in the executor's layout."""
    h5py = _h5py()
    data = _weights_bytes(handle, display)
    try:
        h5 = h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as exc:
        raise ArchcalcError(f"{WEIGHTS_MEMBER} in the archive is not an HDF5 file: "
                            f"{echo(exc, 120)}", file=display, fix=SAVE_AGAIN) from None
    table: dict[str, Arrays] = {}
    with h5:
        for node in nodes:
            if any(_has_params(item) for item in node.items):
                variables = _variables(h5, node, display, len(data))
                for name, arrays in _fitted(node, variables, display).items():
                    table[name] = arrays
    return table


def _has_params(item: dict) -> bool:
    return item.get("type") in ("conv2d", "conv_transpose2d", "dense", "batchnorm")


def _fitted(node: Any, variables: list, display: str) -> dict[str, Arrays]:
    """_node_arrays, with variables of the wrong rank for their layer (a kernel saved as a
    vector) said in one line rather than failing inside a transpose."""
    try:
        return _node_arrays(node, variables, display)
    except (ValueError, IndexError, TypeError):
        shapes = ", ".join(dims_text(v.shape) for _, v in variables)
        raise ArchcalcError(f"weights: the variables of Keras layer '{echo(node.keras_name, 60)}'"
                            f" ({echo(node.cls, 40)}) have shapes {echo(shapes, 120)}, which do "
                            "not fit the layer", file=display, fix=SAVE_AGAIN) from None


def _safe_dataset(dataset: Any, path: str, display: str, most: int | None) -> None:
    """Refuse, before reading, a dataset whose data lies outside the archive (HDF5 external
    storage or a virtual dataset may name any file: reading it would read that file) or that
    declares more bytes than the whole model.weights.h5 holds (Keras stores variables
    uncompressed: a larger one is a chunked, compressed bomb of 10¹⁰ zeros)."""
    if getattr(dataset, "external", None) or getattr(dataset, "is_virtual", False):
        raise ArchcalcError(f"weights: {echo(path, 80)} keeps its data in another file; "
                            f"archcalc reads only the archive's {WEIGHTS_MEMBER}",
                            file=display, fix=SAVE_AGAIN)
    declared = int(dataset.size) * dataset.dtype.itemsize
    if most is not None and declared > most:
        raise ArchcalcError(f"weights: {echo(path, 80)} declares {dims_text(dataset.shape)} values "
                            f"({declared:,} bytes), more than the {most:,} bytes of "
                            f"{WEIGHTS_MEMBER}", file=display, fix=SAVE_AGAIN)


def _variables(h5: Any, node: Any, display: str,
               most: int | None = None) -> list[tuple[str, np.ndarray]]:
    """The node's saved variables, in order, as (h5 path, float array); `most`: the bytes of
    model.weights.h5 (no honest variable is larger)."""
    group = h5.get(f"{node.h5}/vars") if node.h5 else None
    if group is None or not hasattr(group, "keys"):
        raise ArchcalcError(f"weights: {WEIGHTS_MEMBER} holds no variables for Keras layer "
                            f"'{echo(node.keras_name, 60)}' ({echo(node.cls, 40)}; looked in "
                            f"{echo(node.h5 or '?', 80)}/vars)", file=display, fix=SAVE_AGAIN)
    found = []
    for index in range(len(group)):
        path = f"{node.h5}/vars/{index}"
        dataset = group.get(str(index))
        if dataset is not None and hasattr(dataset, "shape"):
            _safe_dataset(dataset, path, display, most)
        value = np.asarray(dataset[()]) if dataset is not None and hasattr(dataset, "shape") \
            else None
        if value is None or value.dtype.kind != "f":
            what = "missing" if value is None else f"holds {value.dtype} values"
            raise ArchcalcError(f"weights: {path} of Keras layer '{echo(node.keras_name, 60)}' "
                                f"is {what}, not floating-point numbers (a quantized model?)",
                                file=display, fix="save the float32 model")
        # float16 / bfloat16 models run in float32; float64 stays (the executor may be float64)
        found.append((path, value.astype(np.float32) if value.dtype.itemsize < 4 else value))
    return found


# ---------------------------------------------------------------------------------------------
# Keras's layouts → the executor's


def _conv_kernel(k: np.ndarray) -> np.ndarray:
    """(kh, kw, C/g, F) → (F, C/g, kh, kw); also Conv2DTranspose's (kh, kw, F, C) →
    (C, F, kh, kw), PyTorch's transposed layout."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def _depthwise_kernel(k: np.ndarray) -> np.ndarray:
    """(kh, kw, C, m) → (C·m, 1, kh, kw): channel c's j-th filter is output c·m + j."""
    kh, kw, c, m = k.shape
    return np.ascontiguousarray(k.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))


def _rows_chw(rows: np.ndarray, channels: int) -> np.ndarray:
    """Rows (axis 0) indexed in H·W·C order → C·H·W order: row s·C + c moves to c·HW + s."""
    d = rows.shape[0]
    hw = d // channels
    return np.ascontiguousarray(
        rows.reshape(hw, channels, *rows.shape[1:]).swapaxes(0, 1).reshape(rows.shape))


def _node_arrays(node: Any, variables: list, display: str) -> dict[str, Arrays]:
    """{item name: {param: (h5 path, array)}} of one Keras layer's emitted items."""
    items = {item["name"]: item for item in node.items if _has_params(item)}
    cls = node.cls
    if cls in ("SeparableConv2D", "SeparableConvolution2D"):
        wanted = 2 + sum(1 for i in items.values() if i.get("bias", True) and
                         not i["name"].endswith("_depthwise"))
    elif cls == "BatchNormalization":
        wanted = 4
    else:
        wanted = 1 + sum(1 for i in items.values() if i.get("bias", True))
    if len(variables) != wanted:
        raise ArchcalcError(f"weights: Keras layer '{echo(node.keras_name, 60)}' "
                            f"({echo(cls, 40)}) saved {len(variables)} variables, archcalc "
                            f"reads {wanted} ({echo(node.h5, 80)}/vars)", file=display,
                            fix="archcalc reads Keras 3's built-in layers, unquantized, "
                                "without LoRA")
    order = node.flat_order
    if order is None and cls in ("Dense", "BatchNormalization"):
        raise ArchcalcError(f"weights: Keras layer '{echo(node.keras_name, 60)}' reads "
                            "flattened maps joined by a Concatenate, whose order archcalc "
                            "cannot map to its own flatten", file=display,
                            fix="global-pool the maps before joining them, or leave the "
                                "weights out")
    out: dict[str, Arrays] = {}
    if cls == "BatchNormalization":
        arrays = [(p, _rows_chw(v, order) if order != 1 else v) for p, v in variables]
        out[node.name] = dict(zip(("weight", "bias", "running_mean", "running_var"), arrays))
        return out
    if cls in ("SeparableConv2D", "SeparableConvolution2D"):
        (dp, dk), (pp, pk), *bias = variables
        out[node.name + "_depthwise"] = {"weight": (dp, _depthwise_kernel(dk))}
        out[node.name] = {"weight": (pp, _conv_kernel(pk))}
    else:
        (kp, k), *bias = variables
        (name, item), = items.items()
        if cls == "DepthwiseConv2D":
            weight = _depthwise_kernel(k)
        elif cls == "Dense" and item["type"] == "conv2d":  # on an image: a 1×1 conv
            weight = np.ascontiguousarray(k.T[:, :, None, None])
        elif cls == "Dense":
            weight = np.ascontiguousarray((_rows_chw(k, order) if order != 1 else k).T)
        else:
            weight = _conv_kernel(k)
        out[name] = {"weight": (kp, weight)}
    if bias:
        out[node.name]["bias"] = bias[0]
    return out


# ---------------------------------------------------------------------------------------------
# The executor's state (the same shapes as archcalc.importers.onnx_weights)


def state_for(model: Any, table: dict[str, Arrays], display: str) -> dict[str, np.ndarray]:
    """{"<layer>.<param>": array} for a built executor Model of the imported network; one
    line naming the h5 variable and the layer when a shape disagrees or an array is missing
    (nothing is loaded then)."""
    return match_state(model, table, display, holder="the Keras file", fix_missing=SAVE_AGAIN,
                       shape_of=lambda source, dims: (f"{echo(source, 80)} has shape {dims} "
                                                      "in archcalc's layout"),
                       fix_shape="give the input the model was saved for (--input)")
