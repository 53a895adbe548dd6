"""ONNX → the raw spec mapping: a model file becomes the items a hand-written spec would hold.

The walk has four steps, one function group each:
  1. read: bounded bytes → ModelProto; versions, the single input and its C×H×W checked.
  2. classify: every node that reads the activation flowing from the input becomes an `_Op`
     (a layer item, a merge, an alias of its input, or unsupported); nodes that only compute
     constants (weights, Reshape's target shape, Pad's amounts) stay out and are evaluated on
     demand. Patterns an exporter spells in several nodes are fused here: x·Sigmoid(x) → silu,
     x·HardSigmoid(x) → hardswish, MatMul + Add(bias) → dense, zero Pad + Conv/AveragePool →
     the layer's padding, Pad(reflect/edge) + Conv → padding_mode, x·½·(1 + erf(x/√2)) → gelu.
  3. structure: the activation DAG, one source and one sink, is turned into nested sequences
     and merges by its post-dominators: a tensor read by several nodes forks, and its
     immediate post-dominator must be the Add / Concat / Mul that joins the branches
     (a series-parallel graph). DenseNet's Concat(x0, x1, …, xk) is first rewritten as
     Concat(Concat(x0, …, xk−1), xk) where that inner Concat exists.
  4. name: torch's node names '/layer1/layer1.0/conv1/Conv' become the module path
     'layer1.0.conv1'; the separator is '/', so the dots stay readable inside one name.

Array shapes: ONNX tensors are N×C×H×W (or N×F); the spec's are C×H×W (or F), batch apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archcalc.errors import ArchcalcError, SpecError
from archcalc.importers import dims_text
from archcalc.limits import echo, limit
from archcalc.spec.layers import GATES

# What this importer knows: IR versions from ONNX 1.2's (3) up to the installed onnx
# package's own (newer files may hold fields it cannot read), and the operator sets whose
# attributes it reads (7: Upsample's scales attribute … 23).
MIN_IR = 3
OPSET_RANGE = (7, 23)
_FIX_INPUT = "give the input size with --input CxHxW, e.g. --input 3x224x224"


@dataclass
class _Op:
    """One activation node after classification. `inputs`: the activation tensors it reads."""

    node: Any
    index: int                      # position in graph.node (reported for unsupported nodes)
    inputs: list[str]
    out: str
    item: dict | None = None        # a layer item (type + fields), or
    merge: str | None = None        # add / concat / mul, or
    alias: bool = False             # the identity: out is inputs[0]
    unsupported: str | None = None  # why (the op type, or op type and the attribute)
    name: str = ""
    extra: dict = field(default_factory=dict)


class _Damaged(str):
    """A reason a node is refused that is damage, not a missing mapping: its attributes
    contradict its weights (the file was damaged or edited by hand). The error's fix says
    to export again instead of listing what archcalc maps."""


_EXPORTER_GRAPH_NAMES = frozenset({"main_graph", "torch_jit", "torch-jit-export"})


def read(path: Path, display: str, input_shape: tuple[int, ...] | None,
         partial: bool = False) -> dict[str, Any]:
    """The raw spec mapping of the ONNX file at `path` (`display`: its name in errors).
    partial: a graph with unsupported nodes gives the network up to the first of them (see
    convert) instead of an error. The weights' bytes are never read (onnx_wire)."""
    model, skipped = load_light(path, display)
    return convert(model, display, input_shape, Path(path).stem, partial, skipped)


def _need_onnx(display: str) -> None:
    try:
        import onnx  # noqa: F401  (an optional extra)
    except ImportError:
        raise ArchcalcError("reading .onnx files needs the onnx package", file=display,
                            fix="pip install 'archcalc[onnx]'") from None


def load_model(path: Path, display: str) -> Any:
    """The file's onnx.ModelProto, read within MAX_MODEL_BYTES (the file's own faults are
    said before a missing onnx package is)."""
    from archcalc.spec.load import read_bounded
    data = read_bounded(path, display, "MAX_MODEL_BYTES")
    _need_onnx(display)
    return parse(data, display)


def load_light(path: Path, display: str) -> tuple[Any, frozenset[str]]:
    """(the file's ModelProto without the initializers' large data, the names of those
    initializers): the structure and every dim, at a fraction of the cost of reading the
    weights. A file the wire walk does not follow is read whole (load_model's errors)."""
    import os
    from archcalc.importers.onnx_wire import light_bytes
    from archcalc.spec.load import open_bounded
    with open_bounded(path, display, "MAX_MODEL_BYTES") as handle:
        light = light_bytes(handle, os.fstat(handle.fileno()).st_size)
    if light is None:
        return load_model(path, display), frozenset()
    _need_onnx(display)
    return parse(light[0], display), light[1]


# ---- 1. read ----------------------------------------------------------------------------
def parse(data: bytes, display: str) -> Any:
    """Bytes → onnx.ModelProto, or one line saying why they are not an ONNX model."""
    import onnx
    from google.protobuf.message import DecodeError
    fix = "export the model again (torch.onnx.export) and check the file was copied whole"
    if not data:
        raise SpecError("the file is empty, not an ONNX model", file=display, fix=fix)
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise SpecError(f"not a readable ONNX model: the protobuf is truncated or corrupt "
                        f"({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})",
                        file=display, fix=fix) from None
    # Protobuf parses many byte strings as some message; a model has a graph with nodes.
    if not model.HasField("graph") or not model.graph.node or not model.ir_version:
        raise SpecError("not an ONNX model: no graph with nodes and no IR version found",
                        file=display, fix=fix)
    return model


def _opset(model: Any, display: str) -> int:
    versions = {o.domain: o.version for o in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    import onnx
    lo, hi = MIN_IR, onnx.IR_VERSION
    if not lo <= model.ir_version <= hi:
        raise SpecError(f"ONNX IR version {model.ir_version} is outside what archcalc reads "
                        f"({lo}–{hi})", file=display,
                        fix=f"export with an ONNX version whose IR is {lo}–{hi}, or upgrade "
                            "the onnx package (pip install -U onnx)")
    lo, hi = OPSET_RANGE
    if opset is None or not lo <= opset <= hi:
        raise SpecError(f"ONNX opset {opset} is outside what archcalc reads ({lo}–{hi})",
                        file=display, fix=f"export with opset_version between {lo} and {hi}, "
                                          "e.g. torch.onnx.export(..., opset_version=17)")
    return opset


def _graph_input(graph: Any, display: str) -> Any:
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(f"'{echo(i.name, 60)}'" for i in inputs[:5]) or "none"
        raise SpecError(f"the graph has {len(inputs)} inputs ({names}); archcalc analyses "
                        "networks with one image (or feature) input", file=display,
                        fix="export the model with a single input tensor")
    if len(graph.output) != 1:
        raise SpecError(f"the graph has {len(graph.output)} outputs; archcalc analyses "
                        "networks with one output", file=display,
                        fix="export the model with a single output (e.g. without aux heads)")
    return inputs[0]


def _input_shape(value: Any, display: str,
                 given: tuple[int, ...] | None) -> tuple[int, ...]:
    """C×H×W (or F, T×F, T) of the input; the batch dimension (dim 0) may be symbolic.
    A 2-D input of integers is T token ids (an embedding reads them), a 3-D one a sequence
    of T steps × F features."""
    ttype = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in ttype.shape.dim] if ttype.HasField("shape") else None
    if dims is not None and len(dims) not in (2, 3, 4):
        raise SpecError(f"the input '{echo(value.name, 60)}' has {len(dims)} dimensions; archcalc reads "
                        "N×C×H×W images, N×T×F sequences or N×F features", file=display,
                        fix="export with a 4-D (N, C, H, W), 3-D (N, T, F) or 2-D (N, F) input")
    if given is not None:
        if dims is not None and len(given) != len(dims) - 1:
            raise SpecError(f"--input has {len(given)} sizes but the model's input has "
                            f"{len(dims) - 1} besides the batch", file=display,
                            fix="give C×H×W for an image model, F for a flat one")
        if dims is not None and len(dims) == 4:
            for axis, (want, have) in enumerate(zip(given, dims[1:])):
                if have is not None and axis == 0 and want != have:
                    raise SpecError(f"--input gives {want} channels but the model takes "
                                    f"{have}", file=display, fix=f"--input {have}x...")
        return tuple(given)
    if dims is None or any(d is None for d in dims[1:]):
        shown = "×".join("?" if d is None else str(d) for d in (dims or [])[1:]) or "unknown"
        raise SpecError(f"the input '{echo(value.name, 60)}' has dynamic or unknown sizes ({shown})",
                        file=display, fix=_FIX_INPUT)
    return tuple(dims[1:])


def _shapes(model: Any, value: Any, shape: tuple[int, ...]) -> dict[str, list]:
    """Every tensor's inferred dims (int or None) at batch 1, by ONNX shape inference with
    data propagation (it follows torch's Shape → Gather → Concat → Reshape chains)."""
    import onnx
    dims = value.type.tensor_type.shape.dim
    del dims[:]
    for size in (1, *shape):
        dims.add().dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(_light_model(model), data_prop=True)
    except Exception:  # noqa: BLE001 — inference is a help; without it ranks are unknown
        return {}
    out = {}
    inputs = inferred.graph.input[:len(model.graph.input)]  # not the weights made inputs
    for info in (*inferred.graph.value_info, *inferred.graph.output, *inputs):
        t = info.type.tensor_type
        if t.HasField("shape"):
            out[info.name] = [d.dim_value if d.HasField("dim_value") else None
                              for d in t.shape.dim]
    return out


# Initializers up to this many elements keep their data in the light model: the constants
# data propagation folds (Reshape targets, Pad amounts, Resize scales, Clip bounds) are all
# far smaller; weights are far larger, and only their dims matter to shape inference.
SMALL_CONSTANT = 1024


def _light_model(model: Any) -> Any:
    """A ModelProto for shape inference without the weights' bytes: infer_shapes serialises
    the model it is given and parses it again in C++ (2 s for ResNet-152's 240 MB). Each
    large initializer becomes a graph input of its name, dtype and dims — the same shape
    information — and the graph is built anew, so no tensor's data is copied."""
    import onnx
    from onnx import helper
    graph = model.graph
    small, large = [], []
    for t in graph.initializer:
        (small if math.prod(t.dims) <= SMALL_CONSTANT else large).append(t)
    listed = {i.name for i in graph.input}
    out = onnx.ModelProto(ir_version=model.ir_version)
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    light = out.graph
    light.name = graph.name
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in large if t.name not in listed)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    light.initializer.extend(small)
    light.sparse_initializer.extend(graph.sparse_initializer)
    return out


# ---- constants ----------------------------------------------------------------------------
class _Consts:
    """Constant tensors: initializers, Constant nodes, and nodes that only read constants
    (evaluated on demand by ONNX's reference evaluator: torch computes Pad amounts that way)."""

    def __init__(self, graph: Any, producers: dict[str, Any], live: set[str],
                 opset: int, display: str = "", skipped: frozenset[str] = frozenset()) -> None:
        self.opset = opset
        self.skipped = skipped              # initializers whose data was not read
        self.display = display
        self.inits = {t.name: t for t in graph.initializer}
        self.producers = producers
        self.live = live                    # activation tensors: never constant
        self.cache: dict[str, Any] = {}

    def is_const(self, name: str) -> bool:
        return name in self.inits or (name in self.producers and name not in self.live)

    def dims(self, name: str) -> list[int] | None:
        """A constant's shape without loading its data (weights may be hundreds of MB)."""
        name = self._through_identity(name)
        if name in self.inits:
            return list(self.inits[name].dims)
        value = self.value(name)
        return None if value is None else list(value.shape)

    def _through_identity(self, name: str) -> str:
        while name in self.producers and self.producers[name].op_type == "Identity":
            name = self.producers[name].input[0]
        return name

    def value(self, name: str) -> Any:
        """The constant's NumPy array, or None when it is not a constant (or not computable)."""
        if not name:
            return None
        # Depth first with an explicit stack, not recursion: a chain of 20,000 constant
        # nodes (or Identities before a weight) is a few lines of a crafted file. The graph
        # is topologically sorted (checked by _producers), so every push is of an earlier
        # node and the walk ends.
        stack = [name]
        while stack:
            tensor = stack[-1]
            if tensor in self.cache:
                stack.pop()
                continue
            if tensor in self.inits:
                self.cache[tensor] = (None if tensor in self.skipped else
                                      _array(self.inits[tensor], self.display))
                continue
            if tensor not in self.producers or tensor in self.live:
                self.cache[tensor] = None
                continue
            node = self.producers[tensor]
            pending = [i for i in node.input if i and i not in self.cache]
            if pending and node.op_type != "Constant":
                stack.extend(pending)
                continue
            self.cache[tensor] = self._evaluate(node, tensor)
        return self.cache[name]

    def _evaluate(self, node: Any, name: str) -> Any:
        from onnx import helper
        if node.op_type == "Constant":
            attr = node.attribute[0]
            if attr.name == "value":
                return _array(attr.t, self.display, node.output[0])
            import numpy as np
            return np.array(helper.get_attribute_value(attr))
        args = [self.value(i) if i else None for i in node.input]
        if any(a is None for a, i in zip(args, node.input) if i):
            return None
        if _output_elements(node.op_type, args) > MAX_FOLDED:
            return None  # not a shape computation: left unknown rather than allocated
        try:
            from onnx.reference import ReferenceEvaluator
            inputs = [f"in{k}" if i else "" for k, i in enumerate(node.input)]
            one = helper.make_node(node.op_type, inputs, list(node.output), domain=node.domain)
            one.attribute.extend(node.attribute)
            feeds = {f"in{k}": a for k, a in enumerate(args) if a is not None}
            graph = helper.make_graph(
                [one], "const", [helper.make_tensor_value_info(k, 0, None) for k in feeds],
                [helper.make_tensor_value_info(o, 0, None) for o in node.output])
            outs = ReferenceEvaluator(graph, opsets={"": self.opset}).run(None, feeds)
            return outs[list(node.output).index(name)]
        except Exception:  # noqa: BLE001 — a constant we cannot fold is simply unknown
            return None


def _array(tensor: Any, display: str, name: str = "") -> Any:
    """A TensorProto's NumPy array. Data kept in an external file is never read (its
    'location' may name any file: /dev/zero, ../../etc/passwd), and a tensor whose dims
    promise more values than it holds is an error, not a traceback."""
    from onnx import TensorProto, numpy_helper
    name = name or tensor.name
    fix = "save the model as one file: onnx.save(onnx.load(path), out, save_as_external_data=False)"
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise SpecError(f"tensor '{echo(name, 60)}' keeps its data in an external file; "
                        "archcalc reads only the .onnx file itself", file=display, fix=fix)
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise SpecError(f"tensor '{echo(name, 60)}' ({'×'.join(map(str, tensor.dims)) or 'scalar'}"
                        f") does not hold the data its dims declare "
                        f"({echo(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 80)})",
                        file=display, fix="export the model again and check the file was "
                                          "copied whole") from None


# Constants folded on demand are shape computations and small attributes (Pad amounts,
# Reshape targets); an op whose output would be larger than this is not folded, so a crafted
# ConstantOfShape / Expand / Tile / Range cannot allocate gigabytes.
MAX_FOLDED = 10**7


def _output_elements(op_type: str, args: list) -> int:
    """How many elements the constant op would produce, for the ops whose output size is
    set by their inputs' values (0 for the others: their output is no larger than the
    inputs, which are already in memory)."""
    import numpy as np
    try:
        if op_type == "ConstantOfShape":
            return math.prod(int(v) for v in np.ravel(args[0]))
        if op_type == "Expand":
            shape = np.broadcast_shapes(np.shape(args[0]), tuple(int(v) for v in np.ravel(args[1])))
            return math.prod(shape)
        if op_type == "Tile":
            return np.size(args[0]) * math.prod(int(v) for v in np.ravel(args[1]))
        if op_type == "Range":
            start, limit, delta = (float(np.ravel(a)[0]) for a in args[:3])
            return 0 if delta == 0 else max(0, math.ceil((limit - start) / delta))
        if op_type in ("Resize", "Upsample", "Pad", "OneHot", "EyeLike", "RandomNormal",
                       "RandomUniform", "Multinomial"):
            return MAX_FOLDED + 1  # never a shape computation of torch's exports
    except (ValueError, TypeError, OverflowError, IndexError):
        return MAX_FOLDED + 1
    return 0


# ---- 2. classify --------------------------------------------------------------------------
def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, list):  # a list of strings (RNN's activations) as str
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _num(value: float) -> float:
    """A float32 attribute as the decimal it was written as (0.8999999762 → 0.9)."""
    return float(f"{float(value):.7g}")


def _compact(top: int, bottom: int, left: int, right: int) -> Any:
    """Padding as the spec writes it: p, [h, w] or [top, bottom, left, right]."""
    if top == bottom == left == right:
        return top
    if top == bottom and left == right:
        return [top, left]
    return [top, bottom, left, right]


def _pair(values: list[int]) -> Any:
    return values[0] if values[0] == values[1] else list(values)


def _onnx_pads(attrs: dict, what: str) -> tuple[int, int, int, int] | str:
    """ONNX pads [top, left, bottom, right] → (top, bottom, left, right), or why not."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("NOTSET", ""):
        return f"{what} auto_pad {auto}"
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        return f"{what} with {len(pads) // 2} spatial axes"
    return (pads[0], pads[2], pads[1], pads[3])


class _Classifier:
    """Turns each activation node into an _Op (see the module's docstring, step 2)."""

    def __init__(self, graph: Any, opset: int, consts: _Consts,
                 shapes: dict[str, list], resized: bool = False) -> None:
        self.graph = graph
        # --input gave another image size than the file's: a dense layer's features follow
        # it (a what-if, as for a YAML spec), so they may differ from its weight's.
        self.resized = resized
        self.opset = opset
        self.consts = consts
        self.shapes = shapes

    def rank(self, tensor: str) -> int | None:
        dims = self.shapes.get(tensor)
        return None if dims is None else len(dims)

    def channels(self, tensor: str) -> int | None:
        """Dim 1 of an activation (its channels, or features), when inference knows it."""
        dims = self.shapes.get(tensor)
        return dims[1] if dims and len(dims) > 1 and dims[1] else None

    def disagreement(self, node: Any, kernel: list[int], w: list[int], reads: int,
                     units: int) -> str | None:
        """Why a weighted node's attributes and weight dims disagree (a damaged or
        hand-edited file: the summary would count one and the weights hold the other), or
        None. reads: the input channels (features) the weight reads; units: its outputs."""
        if kernel and list(kernel) != list(w[2:]):
            return _Damaged(f"{node.op_type} whose kernel_shape {dims_text(kernel)} disagrees "
                            f"with its weight's {dims_text(w[2:])}")
        have = self.channels(node.input[0])
        if self.resized and node.op_type in ("Gemm", "MatMul"):
            have = None
        if have is not None and have != reads:
            return _Damaged(f"{node.op_type} whose weight ({dims_text(w)}) reads {reads} input "
                            f"channels but its input has {have}")
        if len(node.input) > 2 and node.input[2]:
            bias = self.consts.dims(node.input[2])
            if bias is not None and bias != [units]:
                return _Damaged(f"{node.op_type} whose bias ({dims_text(bias)}) does not match "
                                f"its {units} outputs")
        return None

    def op(self, node: Any, index: int, live: set[str]) -> _Op:
        inputs = [i for i in node.input if i in live]
        op = _Op(node, index, inputs, node.output[0])
        if node.domain not in ("", "ai.onnx"):
            op.unsupported = f"{node.domain}.{node.op_type}"
            return op
        # Only ONNX's op names (CamelCase) reach a handler: an op_type "pool" or "_init__"
        # must not call this class's helpers (_pool, __init__).
        handler = getattr(self, f"_{node.op_type}", None) if node.op_type[:1].isupper() \
            else None
        if handler is None:
            op.unsupported = node.op_type
            return op
        attrs = _attrs(node)
        result = handler(node, attrs, op)
        if isinstance(result, str):
            op.unsupported = result
        elif isinstance(result, dict):
            op.item = result
        if op.item is None and op.merge is None and not op.alias and op.unsupported is None:
            op.unsupported = node.op_type
        if op.item is not None and len(inputs) != 1:
            op.unsupported = f"{node.op_type} reading {len(inputs)} activations"
        # only the first output may be used (MaxPool's indices, Dropout's mask are not);
        # a recurrent op's Y or Y_h is chosen by _fuse_recurrent
        if not op.extra.get("recurrent") and any(
                o in self._read_elsewhere for o in node.output[1:] if o):
            op.unsupported = f"{node.op_type} with its second output used"
        return op

    _read_elsewhere: set[str] = set()

    # -- convolutions
    def _Conv(self, node: Any, a: dict, op: _Op) -> Any:
        w = self.consts.dims(node.input[1]) if len(node.input) > 1 else None
        if w is None or len(w) != 4:
            return "Conv (not 2-D, or its weight is not a constant)"
        pads = _onnx_pads(a, "Conv")
        if isinstance(pads, str):
            if a.get("auto_pad") != "SAME_UPPER":
                return pads
            pads = "same"
        bad = self.disagreement(node, list(a.get("kernel_shape", w[2:])), w,
                                w[1] * int(a.get("group", 1)), w[0])
        if bad:
            return bad
        item = {"type": "conv2d", "filters": w[0], "kernel": _pair(list(a.get("kernel_shape", w[2:]))),
                "stride": _pair(list(a.get("strides", [1, 1]))),
                "padding": pads if pads == "same" else _compact(*pads),
                "dilation": _pair(list(a.get("dilations", [1, 1]))),
                "groups": int(a.get("group", 1)),
                "bias": len(node.input) > 2 and bool(node.input[2])}
        op.extra["pads"] = pads
        return _drop_defaults(item, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})

    def _ConvTranspose(self, node: Any, a: dict, op: _Op) -> Any:
        w = self.consts.dims(node.input[1]) if len(node.input) > 1 else None
        if w is None or len(w) != 4:
            return "ConvTranspose (not 2-D, or its weight is not a constant)"
        if "output_shape" in a:
            return "ConvTranspose with output_shape"
        pads = _onnx_pads(a, "ConvTranspose")
        if isinstance(pads, str):
            return pads
        group = int(a.get("group", 1))
        bad = self.disagreement(node, list(a.get("kernel_shape", w[2:])), w, w[0], w[1] * group)
        if bad:
            return bad
        item = {"type": "conv_transpose2d", "filters": w[1] * group,
                "kernel": _pair(list(a.get("kernel_shape", w[2:]))),
                "stride": _pair(list(a.get("strides", [1, 1]))), "padding": _compact(*pads),
                "output_padding": _pair(list(a.get("output_padding", [0, 0]))),
                "dilation": _pair(list(a.get("dilations", [1, 1]))), "groups": group,
                "bias": len(node.input) > 2 and bool(node.input[2])}
        return _drop_defaults(item, {"stride": 1, "padding": 0, "output_padding": 0,
                                     "dilation": 1, "groups": 1})

    # -- dense
    def _Gemm(self, node: Any, a: dict, op: _Op) -> Any:
        w = self.consts.dims(node.input[1])
        if w is None or len(w) != 2 or a.get("transA", 0) or _num(a.get("alpha", 1.0)) != 1:
            return "Gemm (transposed input, alpha ≠ 1, or a weight that is not a constant)"
        units, reads = (w[0], w[1]) if a.get("transB", 0) else (w[1], w[0])
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = self.consts.dims(node.input[2]) if has_bias else None
        if bias is not None and bias not in ([units], [1, units]):
            # C may broadcast in ONNX, but a dense layer's bias is one value per unit
            return _Damaged(f"Gemm whose bias ({dims_text(bias)}) is not one value per unit "
                            f"({units})")
        bad = self.disagreement(node, [], w, reads, units)
        if bad and "bias" not in bad:  # the bias was checked above ([1, units] is fine)
            return bad
        if has_bias and _num(a.get("beta", 1.0)) != 1:
            return "Gemm with beta ≠ 1"
        return {"type": "dense", "units": units, "bias": has_bias}

    def _MatMul(self, node: Any, a: dict, op: _Op) -> Any:
        w = self.consts.dims(node.input[1])
        if w is None or len(w) != 2 or node.input[1] in self.consts.live:
            return "MatMul (of two activations, or a weight that is not 2-D)"
        have = self.channels(node.input[0]) if self.rank(node.input[0]) == 2 else None
        if have is not None and have != w[0] and not self.resized:
            return f"MatMul whose weight ({dims_text(w)}) reads {w[0]} features but its input has {have}"
        if op.inputs and self.rank(op.inputs[0]) == 3:  # nn.Linear on (N, T, F): every step
            dims = self.shapes[op.inputs[0]]
            if dims[2] is not None and dims[2] != w[0]:
                return f"MatMul whose weight ({dims_text(w)}) reads {w[0]} features but its " \
                       f"input has {dims[2]}"
            return {"type": "dense", "units": w[1], "bias": False, "time_distributed": True}
        return {"type": "dense", "units": w[1], "bias": False}

    # -- normalisation
    def _BatchNormalization(self, node: Any, a: dict, op: _Op) -> Any:
        item = {"type": "batchnorm", "eps": _num(a.get("epsilon", 1e-5))}
        momentum = _num(1 - _num(a.get("momentum", 0.9)))  # ONNX: running = m·running + …
        if 0 < momentum <= 1:
            item["momentum"] = momentum
        return item

    def _LRN(self, node: Any, a: dict, op: _Op) -> Any:
        # ONNX's LRN is the average form: alpha/size · Σ a² (as PyTorch and Caffe)
        return {"type": "lrn", "size": int(a["size"]), "alpha": _num(a.get("alpha", 1e-4)),
                "beta": _num(a.get("beta", 0.75)), "k": _num(a.get("bias", 1.0))}

    # -- activations
    def _Relu(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "relu"}

    def _LeakyRelu(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "leaky_relu", "slope": _num(a.get("alpha", 0.01))}

    def _Elu(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "elu", "alpha": _num(a.get("alpha", 1.0))}

    def _Sigmoid(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "sigmoid"}

    def _Tanh(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "tanh"}

    def _HardSwish(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "hardswish"}

    def _HardSigmoid(self, node: Any, a: dict, op: _Op) -> Any:
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            return "HardSigmoid with alpha ≠ 1/6 or beta ≠ 0.5"
        return {"type": "hardsigmoid"}

    def _Gelu(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "gelu", "approximate": a.get("approximate", "none")}

    def _Softmax(self, node: Any, a: dict, op: _Op) -> Any:
        rank = self.rank(op.inputs[0]) if op.inputs else None
        axis = a.get("axis", 1 if self.opset < 13 else -1)
        if rank == 2 and axis in (1, -1):
            return {"type": "softmax"}
        if rank == 3 and axis in (2, -1):  # a sequence's features, each step on its own
            return {"type": "softmax"}
        if rank == 4 and self.opset >= 13 and axis in (1, -3):
            return {"type": "softmax"}
        return f"Softmax over axis {axis} of a {rank or '?'}-D tensor"

    def _Clip(self, node: Any, a: dict, op: _Op) -> Any:
        if self.opset < 11:
            low, high = a.get("min"), a.get("max")
        else:
            low, high = (self._scalar(node, k) for k in (1, 2))
        if low == 0 and high == 6:
            return {"type": "relu6"}
        if low == 0 and high is None:
            return {"type": "relu"}
        return f"Clip({low}, {high}) (only Clip(0, 6) is relu6)"

    def _scalar(self, node: Any, k: int) -> float | None:
        if len(node.input) <= k or not node.input[k]:
            return None
        value = self.consts.value(node.input[k])
        return None if value is None or value.size != 1 else float(value.reshape(()))

    # -- pooling
    def _pool(self, node: Any, a: dict, kind: str, op: _Op) -> Any:
        kernel = list(a["kernel_shape"])
        if len(kernel) != 2:
            return f"{node.op_type} over {len(kernel)} axes"
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            return f"{node.op_type} with dilations"
        pads = _onnx_pads(a, node.op_type)
        if isinstance(pads, str):
            return pads
        if kind == "avgpool" and any(pads) and not a.get("count_include_pad", 0):
            return "AveragePool with pads and count_include_pad=0 (archcalc's counts the padding)"
        op.extra["pads"] = pads  # a zero Pad before an AveragePool folds into it (_fuse_pad)
        item = {"type": kind, "kernel": _pair(kernel),
                "stride": _pair(list(a.get("strides", [1, 1]))), "padding": _compact(*pads),
                "ceil_mode": bool(a.get("ceil_mode", 0))}
        return _drop_defaults(item, {"padding": 0, "ceil_mode": False})

    def _MaxPool(self, node: Any, a: dict, op: _Op) -> Any:
        return self._pool(node, a, "maxpool", op)

    def _AveragePool(self, node: Any, a: dict, op: _Op) -> Any:
        return self._pool(node, a, "avgpool", op)

    def _GlobalAveragePool(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "global_avgpool"}

    def _ReduceMean(self, node: Any, a: dict, op: _Op) -> Any:
        """x.mean([2, 3]) (MnasNet's head): global average pooling."""
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            found = self.consts.value(node.input[1])
            axes = None if found is None else [int(v) for v in found.reshape(-1)]
        rank = self.rank(op.inputs[0]) if op.inputs else 4
        if axes is None or sorted(k % (rank or 4) for k in axes) != [2, 3]:
            return f"ReduceMean over axes {axes} (only the spatial axes 2, 3 are a pool)"
        return {"type": "global_avgpool", "keepdims": bool(a.get("keepdims", 1))}

    def _GlobalMaxPool(self, node: Any, a: dict, op: _Op) -> Any:
        return {"type": "adaptive_maxpool", "output": 1}

    # -- shape
    def _Flatten(self, node: Any, a: dict, op: _Op) -> Any:
        if a.get("axis", 1) != 1:
            return f"Flatten at axis {a.get('axis')}"
        return {"type": "flatten"}

    def _Reshape(self, node: Any, a: dict, op: _Op) -> Any:
        out = self.shapes.get(op.out)
        target = self.consts.value(node.input[1])
        if target is not None:  # read by the sequence fusions (_fuse_to_sequence, layouts)
            op.extra["target"] = [int(v) for v in target.reshape(-1)]
        flat = out is not None and len(out) == 2
        if target is not None:
            flat = target.size == 2 and int(target.reshape(-1)[1]) == -1
        if not flat:
            pieces = self._maxout_pieces(op, target)
            if pieces:
                op.extra["maxout_pieces"] = pieces
            return "Reshape (other than to (N, −1))"
        return {"type": "flatten"}

    def _maxout_pieces(self, op: _Op, target: Any) -> int | None:
        """p for a Reshape of (N, C, rest…) to (N, C/p, p, rest…) — maxout's first half."""
        dims = self.shapes.get(op.inputs[0]) if op.inputs else None
        if target is None or dims is None or None in dims[1:]:
            return None
        t = [int(v) for v in target.reshape(-1)]
        if len(t) != len(dims) + 1 or t[0] not in (0, -1) or t[3:] != dims[2:]:
            return None
        return t[2] if t[1] > 0 and t[2] >= 2 and t[1] * t[2] == dims[1] else None

    def _Slice(self, node: Any, a: dict, op: _Op) -> Any:
        """Slice on H and W with step 1: a crop of [top, bottom, left, right] pixels."""
        if self.opset < 10:
            starts, ends, axes, steps = a.get("starts"), a.get("ends"), a.get("axes"), None
        else:
            starts, ends, axes, steps = (self._ints_at(node, k) for k in (1, 2, 3, 4))
        dims = self.shapes.get(op.inputs[0]) if op.inputs else None
        if starts is None or ends is None or dims is None or len(dims) != 4:
            return "Slice whose bounds are not constants, or not of an N×C×H×W map"
        axes = list(range(len(starts))) if axes is None else [k % 4 for k in axes]
        if any(k not in (2, 3) for k in axes) or any(s != 1 for s in steps or []):
            return "Slice other than a crop of H and W (channels, batch, or a step)"
        amounts = {2: [0, 0], 3: [0, 0]}
        for axis, start, end in zip(axes, starts, ends):
            size = dims[axis]
            if size is None:
                return "Slice of a map whose size is unknown"
            start = min(max(start + size if start < 0 else start, 0), size)
            end = min(max(end + size if end < 0 else end, 0), size)
            if end <= start:
                return "Slice that keeps nothing"
            amounts[axis] = [start, size - end]
        return {"type": "crop", "cropping": _compact(*amounts[2], *amounts[3])}

    def _ints_at(self, node: Any, k: int) -> list[int] | None:
        value = self._const_at(node, k)
        return None if value is None else [int(v) for v in value.reshape(-1)]

    def _ReduceMax(self, node: Any, a: dict, op: _Op) -> Any:
        """Only as the second half of maxout: Reshape (N, C/p, p, …) + ReduceMax over axis 2
        without keepdims (_fuse_maxout)."""
        axes = a.get("axes") if self.opset < 18 else self._ints_at(node, 1)
        if axes == [2] and not a.get("keepdims", 1):
            op.extra["max_over_pieces"] = True
        return "ReduceMax (other than maxout's: Reshape (N, C/p, p, …) + max over the pieces)"

    def _LayerNormalization(self, node: Any, a: dict, op: _Op) -> Any:
        """Over all of an example's values (axis 1) with a scale and a bias of that shape:
        archcalc's layernorm (PyTorch's nn.LayerNorm(input shape))."""
        dims = self.shapes.get(op.inputs[0]) if op.inputs else None
        axis = a.get("axis", -1)
        if dims is None or axis % len(dims) != 1:
            return f"LayerNormalization over axis {axis} (archcalc's normalises each example " \
                   "over all its values: axis 1)"
        scale = self.consts.dims(node.input[1]) if len(node.input) > 1 else None
        bias = self.consts.dims(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or bias is None or scale != dims[1:] or bias != dims[1:]:
            return "LayerNormalization without a constant scale and bias of the example's shape"
        if any(o in self._read_elsewhere for o in node.output[1:] if o):
            return "LayerNormalization with its mean or inverse deviation used"
        return {"type": "layernorm", "eps": _num(a.get("epsilon", 1e-5))}

    def _Dropout(self, node: Any, a: dict, op: _Op) -> Any:
        rate = a.get("ratio", 0.5)
        if self.opset >= 12:  # ratio and training_mode are inputs
            given = len(node.input) > 1 and node.input[1]
            rate = self._scalar(node, 1)
            if given and rate is None:
                return "Dropout whose ratio is not a constant"
            rate = 0.5 if rate is None else rate
            if len(node.input) > 2 and node.input[2]:
                training = self._scalar(node, 2)
                if training is None:
                    return "Dropout whose training_mode is not a constant"
                if training:  # drops at inference too: archcalc's dropout is training-only
                    return "Dropout with training_mode true"
        return {"type": "dropout", "rate": _num(rate)}

    def _Identity(self, node: Any, a: dict, op: _Op) -> Any:
        op.alias = True

    # -- sequences
    def _Transpose(self, node: Any, a: dict, op: _Op) -> Any:
        """Only around a recurrent op (_fuse_recurrent) or as to_sequence's first half."""
        rank = self.rank(op.inputs[0]) if op.inputs else None
        perm = list(a.get("perm", range((rank or 0) - 1, -1, -1)))
        op.extra["perm"] = perm
        return f"Transpose {perm} (archcalc reads it around RNN/LSTM/GRU, or with a " \
               "Reshape as to_sequence)"

    def _Squeeze(self, node: Any, a: dict, op: _Op) -> Any:
        """Only among a recurrent op's layout nodes (_fuse_recurrent)."""
        axes = a.get("axes") if self.opset < 13 else self._ints_at(node, 1)
        if axes:
            op.extra["squeeze"] = list(axes)
        return "Squeeze (archcalc reads it around RNN/LSTM/GRU)"

    def _Gather(self, node: Any, a: dict, op: _Op) -> Any:
        """Gather(weight, ids) along axis 0: an embedding (torch's nn.Embedding). A Gather
        of one step of a recurrent output is read by _fuse_recurrent."""
        index = self._const_at(node, 1)
        if index is not None and index.size == 1:
            op.extra["index"] = int(index.reshape(()))
            op.extra["axis"] = int(a.get("axis", 0))
        w = self.consts.dims(node.input[0])
        if node.input[0] in self.consts.live or w is None or len(w) != 2 \
                or a.get("axis", 0) != 0:
            return "Gather other than an embedding or the last step of a one-direction " \
                   "recurrent output (a bidirectional one's is h_n, not out[:, -1])"
        return {"type": "embedding", "vocab": w[0], "units": w[1]}

    def _RNN(self, node: Any, a: dict, op: _Op) -> Any:
        return self._recurrent(node, a, op, "rnn")

    def _LSTM(self, node: Any, a: dict, op: _Op) -> Any:
        return self._recurrent(node, a, op, "lstm")

    def _GRU(self, node: Any, a: dict, op: _Op) -> Any:
        return self._recurrent(node, a, op, "gru")

    def _recurrent(self, node: Any, a: dict, op: _Op, kind: str) -> Any:
        """RNN / LSTM / GRU as one archcalc layer: forward or both directions, zero initial
        state, PyTorch's activations; return_sequences is decided by the nodes that read
        its output (_fuse_recurrent)."""
        op.extra["recurrent"] = True
        what = node.op_type
        direction = a.get("direction", "forward")
        d, gates = (2 if direction == "bidirectional" else 1), GATES[kind]
        w = self.consts.dims(node.input[1]) if len(node.input) > 1 else None
        r = self.consts.dims(node.input[2]) if len(node.input) > 2 else None
        x = self.shapes.get(node.input[0]) or []
        layout = int(a.get("layout", 0))
        # Set before any refusal: _fuse_recurrent follows the layout nodes of a refused
        # node too, so that the error names it and its reason, not a Transpose next to it.
        h = int(a.get("hidden_size", w[1] // gates if w and len(w) == 3 else 0))
        op.extra.update(layout=layout, directions=d, units=h,
                        steps=x[1 - layout] if len(x) == 3 and layout in (0, 1) else None)
        if direction not in ("forward", "bidirectional"):
            return f"{what} direction {direction} (archcalc's run forward, or both ways)"
        if w is None or r is None:
            return f"{what} whose W or R is not a constant"
        if len(w) != 3 or w[0] != d or w[1] % gates:
            return _Damaged(f"{what} whose W ({dims_text(w)}) does not match (directions {d}, "
                            f"{gates}·hidden, features)")
        if w[1] != gates * h or r != [d, gates * h, h]:
            return _Damaged(f"{what} whose W ({dims_text(w)}) and R ({dims_text(r)}) disagree "
                            f"with hidden_size {h}")
        # the importer's summary counts W as the input's F features (as Conv's channels)
        features = x[2] if len(x) == 3 and not self.resized else None
        if features and features != w[2]:
            return _Damaged(f"{what} whose W ({dims_text(w)}) reads {w[2]} input features but "
                            f"its input has {features}")
        bad = self._recurrent_options(node, a, kind, d)
        if bad:
            return bad
        item: dict = {"type": kind, "units": h}
        if kind == "rnn" and a.get("activations", ["Tanh"])[0] == "Relu":
            item["nonlinearity"] = "relu"
        if kind == "gru" and not a.get("linear_before_reset", 0):
            item["reset_after"] = False  # ONNX's default; PyTorch's GRU is linear_before_reset
        if d == 2:
            item["bidirectional"] = True
        biases = self._recurrent_biases(node, d, gates * h)
        if isinstance(biases, str):
            return type(biases)(f"{what} {biases}")  # a _Damaged reason stays one
        if biases == 0:
            item["bias"] = False
        elif biases == 1:
            item["biases"] = 1
        return item

    _ACTIVATIONS = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"]}

    def _recurrent_options(self, node: Any, a: dict, kind: str, d: int) -> str | None:
        """Why an RNN/LSTM/GRU node computes something archcalc's layer does not, or None."""
        what = node.op_type
        for attr in ("clip", "activation_alpha", "activation_beta"):
            if attr in a:
                return f"{what} with {attr}"
        if a.get("input_forget", 0):
            return f"{what} with input_forget"
        if kind == "rnn":
            acts = list(a.get("activations", ["Tanh"] * d))
            if len(set(acts)) != 1 or acts[0] not in ("Tanh", "Relu"):
                return f"RNN with activations {acts} (archcalc's rnn is tanh or relu)"
        elif list(a.get("activations", self._ACTIVATIONS[kind] * d)) != \
                self._ACTIVATIONS[kind] * d:
            return f"{what} with activations {a['activations']} (not PyTorch's)"
        inputs = list(node.input) + [""] * 8
        if inputs[4]:
            return f"{what} with sequence_lens (archcalc's sequences have one length)"
        if kind == "lstm" and inputs[7]:
            return "LSTM with peepholes (P)"
        for k in (5, 6):
            if inputs[k] and not self._zero(inputs[k]):
                return f"{what} with an initial state (archcalc's recurrent layers start at zero)"
        return None

    _SELECTS = frozenset({"Identity", "Slice", "Gather", "Squeeze", "Unsqueeze", "Reshape",
                          "Expand"})

    def _zero(self, tensor: str) -> bool:
        """A tensor known to be zeros: a constant of zeros, ConstantOfShape of 0 (torch's
        initial state, shaped by the batch at run time), or a selection of either (a stack's
        state sliced per layer, a zero Expanded: the values move but stay zero)."""
        while tensor not in self.consts.live:
            value = self.consts.value(tensor)
            if value is not None:
                return not value.any()
            node = self.consts.producers.get(tensor)
            if node is not None and node.op_type == "ConstantOfShape":
                fill = next((a.t for a in node.attribute if a.name == "value"), None)
                return fill is None or not _array(fill, self.consts.display).any()
            if node is None or node.op_type not in self._SELECTS or not node.input:
                return False
            tensor = node.input[0]
        return False

    def _recurrent_biases(self, node: Any, d: int, gh: int) -> int | str:
        """How many bias vectors the node's B holds per direction: 0 (no B), 2 (a constant
        (D, 2·G·H): PyTorch's pair), or 1 when B is Pad(Wb) with G·H zeros after it
        (archcalc's export of `biases: 1`). Read off the graph, not off the values."""
        if len(node.input) <= 3 or not node.input[3]:
            return 0
        name = self.consts._through_identity(node.input[3])
        if name in self.consts.live:
            return "whose B is not a constant"
        pad = self.consts.producers.get(name)
        if pad is not None and pad.op_type == "Pad" and len(pad.input) >= 2:
            inner = self.consts.dims(pad.input[0])
            amounts = self.consts.value(pad.input[1])
            mode = _attrs(pad).get("mode", "constant")
            fill = self.consts.value(pad.input[2]) if len(pad.input) > 2 and pad.input[2] \
                else None
            if inner == [d, gh] and amounts is not None and mode == "constant" \
                    and [int(v) for v in amounts.reshape(-1)] == [0, 0, 0, gh] \
                    and (fill is None or not fill.any()):
                return 1
        b = self.consts.dims(name)
        if b != [d, 2 * gh]:
            return _Damaged(f"whose B ({dims_text(b or [])}) does not match (directions, "
                            "2·gates·hidden)")
        return 2

    # -- resizing and padding
    def _Resize(self, node: Any, a: dict, op: _Op) -> Any:
        mode = a.get("mode", "nearest")
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if mode == "nearest":
            if ctm != "asymmetric" or a.get("nearest_mode", "round_prefer_floor") != "floor":
                return f"Resize nearest with {ctm} / {a.get('nearest_mode')} (PyTorch's " \
                       "nearest is asymmetric / floor)"
            item = {"type": "upsample", "mode": "nearest"}
        elif mode == "linear":
            if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
                return f"Resize linear with coordinate_transformation_mode {ctm}"
            item = {"type": "upsample", "mode": "bilinear"}
            if ctm == "align_corners":
                item["align_corners"] = True
        else:
            return f"Resize mode {mode}"
        scales_at, sizes_at = (1, 2) if self.opset < 11 else (2, 3)
        return self._target(node, item, scales_at, sizes_at)

    def _Upsample(self, node: Any, a: dict, op: _Op) -> Any:
        if a.get("mode", "nearest") != "nearest":
            return "Upsample linear (its asymmetric rule is not PyTorch's bilinear)"
        item = {"type": "upsample", "mode": "nearest"}
        if "scales" in a:
            return self._scale(item, list(a["scales"]))
        return self._target(node, item, 1, None)

    def _target(self, node: Any, item: dict, scales_at: int, sizes_at: int | None) -> Any:
        scales = self._const_at(node, scales_at)
        if scales is not None and scales.size:
            return self._scale(item, [float(s) for s in scales.reshape(-1)])
        sizes = self._const_at(node, sizes_at) if sizes_at is not None else None
        if sizes is None or not sizes.size:
            out = self.shapes.get(node.output[0])
            if out is None or len(out) != 4 or None in out[2:]:
                return f"{node.op_type} whose scales and sizes are not constants"
            sizes = out
        sizes = [int(s) for s in list(sizes)]
        return {**item, "size": sizes[2:]}

    def _const_at(self, node: Any, k: int) -> Any:
        if len(node.input) <= k or not node.input[k]:
            return None
        return self.consts.value(node.input[k])

    @staticmethod
    def _scale(item: dict, scales: list[float]) -> Any:
        if len(scales) != 4 or scales[:2] != [1.0, 1.0] or any(
                s != int(s) or s < 1 for s in scales[2:]):
            return f"resizing by {scales} (archcalc's upsample takes whole H, W scales)"
        return {**item, "scale": _pair([int(s) for s in scales[2:]])}

    def _Pad(self, node: Any, a: dict, op: _Op) -> Any:
        if self.opset < 11:
            pads, value = list(a.get("pads", [])), a.get("value", 0.0)
        else:
            found = self._const_at(node, 1)
            pads = None if found is None else [int(p) for p in found.reshape(-1)]
            value = self._scalar(node, 2) or 0.0
            if len(node.input) > 3 and node.input[3]:
                return "Pad with axes"
        if pads is None or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            return "Pad whose amounts are not constant H, W pads"
        if min(pads) < 0:
            return "Pad with negative amounts (a crop)"
        mode = {"constant": "zeros", "reflect": "reflect", "edge": "replicate",
                "wrap": "circular"}.get(a.get("mode", "constant"))
        if mode is None:
            return f"Pad mode {a.get('mode')}"
        item = {"type": "pad", "padding": _compact(pads[2], pads[6], pads[3], pads[7]),
                "mode": mode}
        if mode == "zeros" and value:
            item["value"] = _num(value)
        op.extra["pads"] = (pads[2], pads[6], pads[3], pads[7])
        return item

    # -- merges
    def _merge(self, op: _Op, mode: str) -> Any:
        if len(op.inputs) >= 2 and all(not self.consts.is_const(i) for i in op.node.input):
            op.merge = mode
            return None
        return f"{op.node.op_type} with a constant"

    def _Add(self, node: Any, a: dict, op: _Op) -> Any:
        return self._merge(op, "add")

    def _Sum(self, node: Any, a: dict, op: _Op) -> Any:
        return self._merge(op, "add")

    def _Mul(self, node: Any, a: dict, op: _Op) -> Any:
        return self._merge(op, "mul")

    def _Concat(self, node: Any, a: dict, op: _Op) -> Any:
        rank = self.rank(op.inputs[0]) if op.inputs else None
        if a.get("axis") not in (1, -3 if rank == 4 else -1):
            return f"Concat along axis {a.get('axis')} (archcalc concatenates channels)"
        if len(op.inputs) == 1 and len(node.input) == 1:
            op.alias = True
            return None
        return self._merge(op, "concat")


def _drop_defaults(item: dict, defaults: dict) -> dict:
    """The item without fields at their default value (a shorter, hand-written-looking spec)."""
    return {k: v for k, v in item.items() if k not in defaults or v != defaults[k]}


# ---- fusing what an exporter spells in several nodes --------------------------------------
def _fuse(ops: dict[str, _Op], consumers: dict[str, list[_Op]], consts: _Consts,
          sink: str = "") -> None:
    """Rewrite `ops` (keyed by output tensor) in place; fused-away nodes become aliases."""
    needed = _ancestors(ops, sink)
    for op in list(ops.values()):  # first: the layout nodes around them are theirs
        if op.extra.get("recurrent"):
            _fuse_recurrent(op, ops, consumers, needed)
    for op in list(ops.values()):
        if op.node.op_type == "Reshape" and op.unsupported and not op.extra.get("dead"):
            _fuse_to_sequence(op, ops, consumers)
    for op in list(ops.values()):
        kind = op.node.op_type
        if kind == "Mul" and len(op.inputs) == 2 and op.merge:
            _fuse_gate(op, ops, consumers)
        elif kind == "Add" and op.unsupported and len(op.inputs) == 1:
            _fuse_bias(op, ops, consumers, consts)
        elif kind == "Pad" and op.item is not None:
            _fuse_pad(op, consumers)
        elif kind == "ReduceMax" and op.extra.get("max_over_pieces"):
            _fuse_maxout(op, ops, consumers)
    for op in ops.values():  # a wrap Pad archcalc reads only as a conv's padding_mode
        if op.item is not None and op.item.get("mode") == "circular":
            op.item, op.unsupported = None, "Pad mode wrap not before a Conv"
    for op in list(ops.values()):
        if op.node.op_type == "Mul" and op.unsupported and len(op.inputs) == 1:
            _fuse_gelu(op, ops, consumers, consts)


def _single(tensor: str, consumers: dict[str, list[_Op]]) -> _Op | None:
    users = consumers.get(tensor, [])
    return users[0] if len(users) == 1 else None


def _fuse_gate(op: _Op, ops: dict[str, _Op], consumers: dict) -> None:
    """Mul(x, Sigmoid(x)) → silu; Mul(x, HardSigmoid(x)) → hardswish."""
    for gate_t, x in ((op.inputs[1], op.inputs[0]), (op.inputs[0], op.inputs[1])):
        gate = ops.get(gate_t)
        if gate is None or gate.inputs != [x] or _single(gate_t, consumers) is not op:
            continue
        kind = {"sigmoid": "silu", "hardsigmoid": "hardswish"}.get((gate.item or {}).get("type"))
        if kind:
            op.merge, op.item, op.inputs = None, {"type": kind}, [x]
            gate.alias, gate.item = True, None
            gate.extra["dead"] = True
            return


def _fuse_bias(op: _Op, ops: dict, consumers: dict, consts: _Consts) -> None:
    """MatMul(x, W) + b → dense with a bias."""
    src = ops.get(op.inputs[0])
    if src is None or src.node.op_type != "MatMul" or src.item is None:
        return
    other = [i for i in op.node.input if i != op.inputs[0]]
    dims = consts.dims(other[0]) if len(other) == 1 else None
    if _single(src.out, consumers) is op and dims is not None and \
            math.prod(dims) == src.item["units"]:
        src.item["bias"] = True
        src.extra["bias"] = other[0]   # the initializer onnx_weights reads as the bias
        op.unsupported, op.alias = None, True


def _fuse_pad(op: _Op, consumers: dict) -> None:
    """Pad + Conv (zeros, reflect, replicate) or zero Pad + AveragePool: the layer's padding."""
    user = _single(op.out, consumers)
    if user is None or user.item is None or user.extra.get("pads") != (0, 0, 0, 0):
        return
    mode, pads = op.item["mode"], op.extra["pads"]
    kind = user.item["type"]
    if kind == "conv2d" and "value" not in op.item:
        user.item["padding"] = _compact(*pads)
        if mode != "zeros":
            user.item["padding_mode"] = mode
    elif kind == "avgpool" and mode == "zeros" and "value" not in op.item:
        kernel = user.item["kernel"]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        if max(pads[:2]) > kh // 2 or max(pads[2:]) > kw // 2:
            return  # archcalc's pools pad at most kernel/2: keep the pad layer
        user.item["padding"] = _compact(*pads)
    else:
        return
    op.item, op.alias = None, True


def _fuse_maxout(op: _Op, ops: dict[str, _Op], consumers: dict) -> None:
    """Reshape (N, C/p, p, …) + ReduceMax over axis 2 → maxout with p pieces."""
    reshape = ops.get(op.inputs[0]) if len(op.inputs) == 1 else None
    if reshape is None or not reshape.extra.get("maxout_pieces") \
            or _single(reshape.out, consumers) is not op:
        return
    op.item, op.unsupported = {"type": "maxout", "pieces": reshape.extra["maxout_pieces"]}, None
    reshape.unsupported, reshape.alias = None, True


# ---- sequences: a recurrent op with the layout nodes around it -----------------------------
# ONNX's RNN/LSTM/GRU read (T, N, F) (layout 0; (N, T, F) with layout 1) and write Y
# (T, D, N, H) and Y_h (D, N, H) ((N, T, D, H) and (N, D, H) with layout 1); exporters
# move those to batch-first around the op (torch.onnx: Transpose, Squeeze, Reshape,
# Gather of the last step; archcalc: Transpose + Reshape). _fuse_recurrent follows the
# output through such nodes as named axes — each axis a tuple of atoms: N batch, T steps, D
# directions (left out when 1), H hidden; a merged axis holds several — until it reads
# (N, T, D·H) (return_sequences) or (N, D·H) (the last step, PyTorch's h_n).
def _ancestors(ops: dict[str, _Op], sink: str) -> set[str]:
    """The tensors `sink` is computed from (itself included), through every node input and
    every output (an RNN's Y_h is its second)."""
    return _reachable([sink], {o: op for op in ops.values() for o in op.node.output if o})


def _reachable(starts: list[str], producer: dict[str, _Op]) -> set[str]:
    """The tensors in `producer` that `starts` are computed from, themselves included."""
    seen, stack = set(), list(starts)
    while stack:
        t = stack.pop()
        if t in seen or t not in producer:
            continue
        seen.add(t)
        stack.extend(i for i in producer[t].node.input if i in producer)
    return seen


def _fuse_recurrent(op: _Op, ops: dict[str, _Op], consumers: dict, needed: set[str]) -> None:
    """The recurrent op becomes one layer from the batch-first sequence before its input
    Transpose to the batch-first output after its layout nodes: the last of those nodes
    carries the layer (its name, in an archcalc file, is the layer's), the others go."""
    node, what = op.node, op.node.op_type
    refused = op.unsupported  # its own reason: the layout nodes are still its own
    layout, d = op.extra["layout"], op.extra["directions"]
    if layout not in (0, 1):
        return
    steps = op.extra.get("steps")
    source, dead = node.input[0], [op]
    if layout == 0 and ops.get(source) is not None and ops[source].extra.get("time_major"):
        pass  # the layer below (torch's num_layers > 1) hands its time-major output on
    elif layout == 0:
        before = ops.get(source)
        if before is None or before.extra.get("perm") != [1, 0, 2] \
                or _single(source, consumers) is not op:
            op.unsupported = refused or f"{what} whose input is not a batch-first " \
                                        "sequence moved to (T, N, F) by a Transpose [1, 0, 2]"
            return
        source = before.inputs[0]
        dead.append(before)
    # the outputs the graph's output depends on (torch also concatenates a stack's h_n)
    used = [k for k, t in enumerate(node.output)
            if t and any(set(c.node.output) & needed for c in consumers.get(t, []))]
    if len(used) != 1 or used[0] == 2 or steps is None:
        op.unsupported = refused or (f"{what} with several outputs used" if len(used) > 1 else
                          f"{what} whose cell state Y_c is used" if used == [2] else
                          f"{what} whose output is not used" if not used else
                          f"{what} over an unknown number of steps")
        return
    sizes = {"N": None, "T": steps, "D": d, "H": op.extra["units"]}
    directions = ("D",) if d == 2 else ()
    if used[0] == 0:
        axes = [("T",), directions, ("N",), ("H",)] if layout == 0 else \
            [("N",), ("T",), directions, ("H",)]
    else:
        axes = [directions, ("N",), ("H",)] if layout == 0 else [("N",), directions, ("H",)]
    feats = directions + ("H",)
    tensor, chain, best = node.output[used[0]], [], None
    while True:
        if axes in ([("N",), ("T",), feats], [("N",), feats]):
            best = (len(chain), len(axes) == 3)
        user = _single(tensor, consumers)
        if best is None and chain and axes == [("T",), ("N",), feats] and user is not None \
                and user.extra.get("recurrent") and user.extra.get("layout") == 0 \
                and user.node.input[0] == tensor:
            best = (len(chain), True)  # time-major into the next layer (torch's stacks)
            chain[-1].extra["time_major"] = True
            break
        axes = _layout_step(user, axes, sizes) if user is not None else None
        if axes is None:
            break
        chain.append(user)
        tensor = user.out
    if best is None:
        op.unsupported = refused or f"{what} whose output is not read back as batch-first " \
                         "(N, T, D·H) or (N, D·H) by Transpose / Squeeze / Reshape / Gather nodes"
        return
    length, sequences = best
    final, item = chain[length - 1], op.item
    for gone in dead + chain[:length - 1]:
        gone.item, gone.merge, gone.unsupported, gone.alias = None, None, None, True
        gone.extra["dead"] = True
    if refused:  # one unsupported node where the layer would be, named as the recurrent one
        final.item, final.merge, final.alias, final.unsupported = None, None, False, refused
        final.inputs = [source]
        final.extra["culprit"] = op
        return
    final.item = {**item, **({"return_sequences": True} if sequences else {})}
    final.unsupported, final.merge, final.alias = None, None, False
    final.inputs = [source]
    final.extra.update(rnn=node, biases=item.get("biases", 2))


def _layout_step(user: _Op, axes: list[tuple], sizes: dict) -> list[tuple] | None:
    """The named axes after one layout node (Identity, Transpose, Squeeze, Reshape, Gather
    of the last step or of a size-1 axis), or None for any other node."""
    kind, extra = user.node.op_type, user.extra
    if kind == "Identity":
        return axes
    if kind == "Transpose":
        perm = extra.get("perm")
        return [axes[p] for p in perm] if perm and sorted(perm) == list(range(len(axes))) \
            else None
    if kind == "Squeeze":
        found = extra.get("squeeze")
        drop = {k % len(axes) for k in found} if found else set()
        return [a for k, a in enumerate(axes) if k not in drop] \
            if drop and all(axes[k] == () for k in drop) else None
    if kind == "Gather" and "index" in extra:
        k, index = extra["axis"] % len(axes), extra["index"]
        if axes[k] == () and index in (0, -1):
            return axes[:k] + axes[k + 1:]
        # the last step of a one-direction output (a bidirectional one's is not h_n)
        if axes[k] == ("T",) and sizes["D"] == 1 and index in (-1, sizes["T"] - 1):
            return axes[:k] + axes[k + 1:]
        return None
    if kind == "Reshape" and "target" in extra:
        return _reshape_axes(axes, extra["target"], sizes)
    return None


def _size(axis: tuple, sizes: dict) -> int | None:
    if "N" in axis:
        return None
    return math.prod(sizes[a] for a in axis)


def _reshape_axes(axes: list[tuple], target: list[int], sizes: dict) -> list[tuple] | None:
    """Reshape's target (0: keep that axis, −1: the rest, n: axes whose sizes multiply to
    n) as groups of consecutive named axes, merged; None where it splits an axis or the
    batch's size would be needed."""
    if target.count(-1) > 1:
        return None
    cut = target.index(-1) if -1 in target else len(target)
    out: list[tuple] = []
    i = 0
    for j, want in enumerate(target[:cut]):
        if want == 0:
            if i != j or i >= len(axes):
                return None
            out.append(axes[i])
            i += 1
            continue
        group, size = (), 1
        while i < len(axes) and size < want:
            step = _size(axes[i], sizes)
            if step is None:
                return None
            group, size, i = group + axes[i], size * step, i + 1
        if size != want:
            return None
        out.append(group)
    tail: list[tuple] = []
    k = len(axes)
    for j in range(len(target) - 1, cut, -1):
        want = target[j]
        if want == 0:
            if k - 1 != j or k - 1 < i:
                return None
            tail.insert(0, axes[k - 1])
            k -= 1
            continue
        group, size = (), 1
        while k > i and size < want:
            step = _size(axes[k - 1], sizes)
            if step is None:
                return None
            group, size, k = axes[k - 1] + group, size * step, k - 1
        if size != want:
            return None
        tail.insert(0, group)
    if cut < len(target):
        out.append(tuple(a for axis in axes[i:k] for a in axis))
    elif i != k:
        return None
    return out + tail


def _fuse_to_sequence(op: _Op, ops: dict[str, _Op], consumers: dict) -> None:
    """Transpose (N, C, H, W) → (N, W, C, H) + Reshape [0, 0, −1] → to_sequence (axis
    width); perm [0, 2, 1, 3] → axis height (archcalc's export, x.permute(…).flatten(2))."""
    moved = ops.get(op.inputs[0]) if len(op.inputs) == 1 else None
    if moved is None or moved.extra.get("dead") or op.extra.get("target") != [0, 0, -1] \
            or _single(moved.out, consumers) is not op:
        return
    axis = {(0, 3, 1, 2): "width", (0, 2, 1, 3): "height"}.get(tuple(moved.extra.get("perm", ())))
    if axis is None:
        return
    op.item, op.unsupported = {"type": "to_sequence", "axis": axis}, None
    op.inputs = list(moved.inputs)
    moved.item, moved.unsupported, moved.alias = None, None, True
    moved.extra["dead"] = True


def _fuse_gelu(op: _Op, ops: dict, consumers: dict, consts: _Consts) -> None:
    """torch's GELU before opset 20: Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5) → gelu."""
    def const_of(node_op: _Op) -> float | None:
        others = [i for i in node_op.node.input if i not in node_op.inputs]
        value = consts.value(others[0]) if len(others) == 1 else None
        return None if value is None or value.size != 1 else float(value.reshape(()))

    inner = ops.get(op.inputs[0])
    if const_of(op) is None or abs(const_of(op) - 0.5) > 1e-6 or inner is None \
            or inner.merge != "mul":
        return
    for x, add_t in ((inner.inputs[0], inner.inputs[1]), (inner.inputs[1], inner.inputs[0])):
        add = ops.get(add_t)
        erf = ops.get(add.inputs[0]) if add is not None and add.inputs else None
        div = ops.get(erf.inputs[0]) if erf is not None and erf.inputs else None
        if (add is None or add.node.op_type != "Add" or erf is None
                or erf.node.op_type != "Erf" or div is None or div.node.op_type != "Div"
                or div.inputs != [x] or const_of(add) != 1.0
                or abs((const_of(div) or 0) - math.sqrt(2)) > 1e-5):
            continue
        chain = (div, erf, add, inner)
        if any(_single(c.out, consumers) is None for c in chain):
            return
        for c in chain:
            c.unsupported, c.item, c.merge, c.alias = None, None, None, True
            c.extra["dead"] = True
        op.unsupported, op.item, op.inputs = None, {"type": "gelu"}, [x]
        return


# ---- 3. structure -------------------------------------------------------------------------
class _Structure:
    """Series-parallel reduction of the layer DAG by immediate post-dominators."""

    SOURCE = "<input>"

    def __init__(self, layers: list[_Op], source: str, sink: str, display: str) -> None:
        self.display = display
        self.by_out = {op.out: op for op in layers}
        self.source_tensor = source
        self.sink = sink
        self.users: dict[str, list[_Op]] = {}
        for op in layers:
            for t in dict.fromkeys(op.inputs):
                self.users.setdefault(t, []).append(op)
        self.order = {source: -1, **{op.out: k for k, op in enumerate(layers)}}
        self.ipdom = self._post_dominators(layers)
        self.emitted: set[str] = set()

    def _post_dominators(self, layers: list[_Op]) -> dict[str, str | None]:
        """Immediate post-dominator of each tensor's producer, keyed by output tensor."""
        ipdom: dict[str, str | None] = {}

        def meet(a: str | None, b: str | None) -> str | None:
            while a != b:
                if a is None or b is None:  # paths that never join (a dead end)
                    return None
                if self.order[a] < self.order[b]:
                    a = ipdom[a]
                else:
                    b = ipdom[b]
            return a

        for tensor in [*reversed([op.out for op in layers]), self.source_tensor]:
            succ = [u.out for u in self.users.get(tensor, [])]
            if tensor == self.sink or not succ:
                ipdom[tensor] = None
                continue
            found = succ[0]
            for s in succ[1:]:
                found = meet(found, s)  # type: ignore[assignment]
            ipdom[tensor] = found
        return ipdom

    def reach(self, tensor: str, merge: _Op) -> set[str]:
        """The tensors reachable from `tensor` before `merge` (`tensor` included)."""
        seen, stack = {tensor}, [tensor]
        while stack:
            for user in self.users.get(stack.pop(), []):
                if user is not merge and user.out not in seen:
                    seen.add(user.out)
                    stack.append(user.out)
        return seen

    def fail(self, op: _Op | None, why: str) -> ArchcalcError:
        where = _where(op) if op else \
            "the input"
        return SpecError(f"the graph is not a chain of sequences and branches at {where}: {why}",
                         file=self.display,
                         fix="archcalc reads branches that fork from one tensor and re-join "
                             "at one Add, Concat or Mul")

    def items(self) -> list[dict]:
        return self.walk(self.source_tensor, self.sink, None)

    def walk(self, tensor: str, stop: str, merge_stop: str | None) -> list[dict]:
        """Items from `tensor` (exclusive) to `stop` (inclusive)."""
        items: list[dict] = []
        while tensor != stop:
            users = self.users.get(tensor, [])
            if not users:
                raise self.fail(self.by_out.get(tensor), "its output leads nowhere")
            if len(users) == 1 and users[0].merge is None:
                tensor = self.emit(users[0], items)
                continue
            join = self.ipdom.get(tensor)
            merge = self.by_out.get(join) if join else None
            if merge is None or merge.merge is None or join == merge_stop:
                raise self.fail(users[0], "a fork that does not re-join at one Add, Concat or Mul")
            items.append(self.branches(tensor, merge))
            self.emitted.add(merge.out)
            tensor = merge.out
        return items

    def emit(self, op: _Op, items: list[dict]) -> str:
        if op.out in self.emitted:
            raise self.fail(op, "a node reached twice")
        self.emitted.add(op.out)
        items.append({**op.item, "name": op.name})
        return op.out

    def branches(self, fork: str, merge: _Op) -> dict:
        firsts: dict[str, _Op] = {}
        for user in self.users[fork]:
            if user is merge:
                continue
            end = self.branch_end(user, merge)
            if end in firsts or end not in merge.inputs:
                raise self.fail(user, f"its branch does not end at an input of "
                                      f"'{echo(merge.node.name or merge.out, 60)}'")
            firsts[end] = user
        branches = []
        for inp in merge.inputs:
            if inp == fork:
                branches.append([])
                continue
            first = firsts.pop(inp, None)
            if first is None:
                raise self.fail(merge, "an input that does not come from the fork")
            if first.merge is not None:
                raise self.fail(first, "a merge at the head of a branch")
            body: list[dict] = []
            start = self.emit(first, body)
            branches.append(body + self.walk(start, inp, merge.out))
        return {merge.merge: branches, "name": merge.name}

    def branch_end(self, op: _Op, merge: _Op) -> str:
        """The input of `merge` that the branch starting at `op` reaches."""
        tensor = op.out
        while True:
            nxt = self.ipdom.get(tensor)
            if nxt == merge.out or nxt is None:
                return tensor
            tensor = nxt


# ---- 4. names -----------------------------------------------------------------------------
_OP_SUFFIX = re.compile(r"^[A-Z][A-Za-z]*(_\d+)?$")


def _module_path(node_name: str) -> tuple[str, str]:
    """'/layer1/layer1.0/conv1/Conv' → ('layer1.0.conv1', 'Conv'); 'Conv_12' → ('', 'Conv_12')."""
    parts = [p for p in node_name.split("/") if p]
    if not parts:
        return "", ""
    op_part = parts.pop() if len(parts) > 1 or _OP_SUFFIX.match(parts[-1]) else ""
    # Each part is a module's name in its parent ('conv1') or that name with the parent's
    # prefixed ('layer1.0' under 'layer1', 'downsample.0' under 'downsample').
    segments: list[str] = []
    for part in parts:
        if segments and part.startswith(segments[-1] + "."):
            segments[-1] = part
        else:
            segments.append(part)
    return ".".join(segments), op_part


def _clean(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_.")
    return text[:200]


_ARCHCALC_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,200}")


def _verbatim_names(model: Any, ops: list[_Op]) -> str | None:
    """A file archcalc exported (its metadata says so) names each layer's node by the
    layer's display name: those names are kept as they are, so the round trip gives the
    same rows. Returns the separator of the imported spec ('/', or '.' when a name holds a
    '/', as GoogLeNet's do), or None — and nothing named — when the file is not archcalc's,
    a name is missing, repeated, holds both separators or other characters."""
    if not any(p.key == "archcalc.separator" for p in model.metadata_props):
        return None
    names = [op.node.name for op in ops]
    if len(set(names)) != len(names) or not all(_ARCHCALC_NAME.fullmatch(n) for n in names):
        return None
    slash, dot = any("/" in n for n in names), any("." in n for n in names)
    if slash and dot:
        return None
    for op, name in zip(ops, names):
        op.name = name
    return "." if slash else "/"


def _name_ops(ops: list[_Op]) -> str:
    """A unique readable name for every op: the torch module path (the op type appended
    where that module also holds other modules, e.g. a residual block's Add). Returns the
    imported spec's separator, '/': the dots stay readable inside one name."""
    # a recurrent layer is named by its RNN/LSTM/GRU node (torch's '/rnn/LSTM'), not by the
    # last of the layout nodes after it
    paths = [_module_path((op.extra.get("rnn") or op.node).name) for op in ops]
    containers = set()
    for path, _ in paths:
        while "." in path:
            path = path.rsplit(".", 1)[0]
            containers.add(path)
    used: set[str] = set()
    tried: dict[str, int] = {}  # base → the next suffix to try (linear for 10⁵ unnamed nodes)
    for op, (path, op_part) in zip(ops, paths):
        kind = (op.item or {}).get("type") or op.merge or op.node.op_type.lower()
        suffix = _clean(op_part.lower()) or kind
        if op.item and op.node.op_type == "Mul" and op.item["type"] in ("silu", "hardswish", "gelu"):
            suffix = op.item["type"]
        if op.extra.get("inner"):
            suffix += "_inner"
        base = _clean(path)
        if not base or base in containers or op.merge:
            base = f"{base}.{suffix}" if base else suffix
        base = base or kind
        name, k = base, tried.get(base, 1)
        while name in used:
            name, k = f"{base}_{k}", k + 1
        tried[base] = k
        used.add(name)
        op.name = name
    return "/"


# ---- the whole conversion -----------------------------------------------------------------
def unsupported_report(ops: list[_Op]) -> list[str]:
    """One item per unsupported node: what it is, its name and its position in the graph (the
    error prints at most errors.MAX_ITEMS of them, one a line, then a count)."""
    return [f"{echo(op.unsupported, 160)} "
            f"(node '{echo(_culprit(op).node.name or op.out, 60)}', #{_culprit(op).index})"
            for op in ops]


def _culprit(op: _Op) -> _Op:
    """The node an unsupported op stands for: a refused RNN/LSTM/GRU's own node, where the
    last of its layout nodes carries the refusal (_fuse_recurrent); else the op itself."""
    return op.extra.get("culprit", op)


def convert(model: Any, display: str, input_shape: tuple[int, ...] | None,
            stem: str = "model", partial: bool = False,
            skipped: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A parsed ModelProto → the raw spec mapping. partial: where the graph has unsupported
    nodes, the spec ends at the last tensor of the main path (every path from the input to
    the output goes through it) computed without any of them, and its `source` ends with
    the note partial_note gives."""
    return _convert(model, display, input_shape, stem, partial, skipped)[0]


PARTIAL_MARK = "; partial: "


def partial_note(raw: dict[str, Any]) -> str | None:
    """"stopped before node 'X' (Op, #N): K nodes left out" for a spec convert(partial=True)
    cut short, else None."""
    source = raw.get("source", "")
    return source.split(PARTIAL_MARK, 1)[1] if PARTIAL_MARK in source else None


def read_with_weights(path: Path, display: str, input_shape: tuple[int, ...] | None,
                      partial: bool = False) -> tuple[dict[str, Any], dict]:
    """(the raw spec mapping, its weights by layer name) of the ONNX file at `path`; the
    weights as archcalc.importers.onnx_weights.layer_arrays gives them."""
    return convert_with_weights(load_model(path, display), display, input_shape,
                                Path(path).stem, partial)


def convert_with_weights(model: Any, display: str, input_shape: tuple[int, ...] | None,
                         stem: str = "model",
                         partial: bool = False) -> tuple[dict[str, Any], dict]:
    """(the raw spec mapping, {layer name: {param: (initializer name, array)}}): the
    weights travel beside the mapping, because a spec has no place for arrays."""
    from archcalc.importers.onnx_weights import layer_arrays
    raw, layers, consts = _convert(model, display, input_shape, stem, partial)
    table = {}
    for op in layers:
        arrays = layer_arrays(op, consts, display)
        if arrays:
            table[op.name] = arrays
    return raw, table


def _convert(model: Any, display: str, input_shape: tuple[int, ...] | None,
             stem: str, partial: bool = False, skipped: frozenset[str] = frozenset()
             ) -> tuple[dict[str, Any], list[_Op], _Consts]:
    """(the raw spec mapping, the ops it was built from, the graph's constants). skipped:
    initializers read without their data (load_light): their dims are known, their values
    are not."""
    opset = _opset(model, display)
    graph = model.graph
    _bound_graph(graph, display)
    value = _graph_input(graph, display)
    shape = _input_shape(value, display, input_shape)
    source, sink = value.name, graph.output[0].name
    shapes = _shapes(model, value, shape)

    producers = _producers(graph, source, display)
    live = {source}
    act_nodes: list[tuple[int, Any]] = []
    for index, node in enumerate(graph.node):
        if node.op_type in ("Shape", "Size") or not any(i in live for i in node.input):
            continue  # a constant, or a shape computation (not an activation)
        if not node.output or not node.output[0]:
            continue  # writes nothing (or only optional outputs): no effect on the output
        act_nodes.append((index, node))
        live.update(o for o in node.output if o)
    consts = _Consts(graph, producers, live, opset, display, skipped)
    classifier = _Classifier(graph, opset, consts, shapes, input_shape is not None)
    read_by_act = {i for _, n in act_nodes for i in n.input} | {sink}
    classifier._read_elsewhere = read_by_act
    ops = {}
    for index, node in act_nodes:
        op = classifier.op(node, index, live)
        ops[op.out] = op
    consumers: dict[str, list[_Op]] = {}
    for op in ops.values():
        for t in dict.fromkeys(op.inputs):
            consumers.setdefault(t, []).append(op)
    _fuse(ops, consumers, consts, sink)
    fan_in = sum(len(op.inputs) for op in ops.values() if op.merge)
    if fan_in > MAX_MERGE_INPUTS:
        raise SpecError(f"the graph's Add/Concat/Mul nodes read {fan_in:,} inputs together, "
                        f"more than archcalc analyses ({MAX_MERGE_INPUTS:,})", file=display,
                        fix="give a smaller model")

    layers = _resolve(list(ops.values()), source, sink, display)
    bad = [op for op in layers if op.unsupported]
    note = None
    if bad and partial:
        sink, note = _cut(layers, ops, source, sink, display)
        layers = _resolve(list(ops.values()), source, sink, display)
        bad = []
    if bad:
        report = unsupported_report(bad)
        what, items = ((f"1 ONNX node archcalc cannot express: {report[0]}", None)
                       if len(bad) == 1 else
                       (f"{len(bad)} ONNX nodes archcalc cannot express, one a line below",
                        report))
        if any(isinstance(op.unsupported, _Damaged) for op in bad):
            raise ArchcalcError(what, file=display, items=items,
                                fix="the file's attributes contradict its weights (damaged or "
                                    "edited by hand): export the model again")
        raise ArchcalcError(what, file=display, items=items,
                            fix="archcalc maps Conv, ConvTranspose, BatchNormalization, pools, "
                                "Gemm/MatMul, Flatten, Resize, Pad, LRN, Dropout, activations "
                                "and Add/Concat/Mul branches (README, 'Layer kinds'); "
                                "`--partial` (summary, import) keeps the "
                                "network before the first of them")
    _rewrite_concats(layers)
    layers = _nest_merges(layers, source, _resolved_sink(ops, sink), display)
    separator = _verbatim_names(model, layers) or _name_ops(layers)
    structure = _Structure(layers, source, _resolved_sink(ops, sink), display)
    items = structure.items()
    missing = [op for op in layers if op.out not in structure.emitted]
    if missing:
        raise structure.fail(missing[0], "a node outside every sequence and branch")
    producer = echo(" ".join(p for p in (model.producer_name, model.producer_version) if p), 80)
    # torch names every exported graph "main_graph" (older exporters "torch_jit"): the
    # file's name says more.
    given = "" if graph.name in _EXPORTER_GRAPH_NAMES else _clean(graph.name)
    return ({"name": given or _clean(stem) or "model",
             "source": f"imported from {display} (ONNX opset {opset}"
                       + (f", producer {producer})" if producer else ")")
                       + (PARTIAL_MARK + note if note else ""),
             "input": list(shape), "separator": separator, "layers": items}, layers, consts)


# Graph entries (nodes, initializers, inputs) per layer archcalc analyses: torch's exports hold
# one to three nodes per layer and one to four initializers; shape inference of 200,000
# tiny nodes takes 2.4 s and 0.4 GB, so a file of a million Constant nodes (44 MB: well within
# MAX_MODEL_BYTES) is refused before it, not analysed in 17 s and 2.6 GB.
ENTRIES_PER_LAYER = 5


def _where(op: _Op) -> str:
    """An op as errors name it: names and op types come from the file, so they are echoed
    (control and bidi characters escaped, 10⁵ characters cut) and the error stays one line."""
    return f"node '{echo(op.node.name or op.out, 60)}' ({echo(op.node.op_type, 40)}, #{op.index})"


def _bound_graph(graph: Any, display: str) -> None:
    cap = ENTRIES_PER_LAYER * limit("MAX_LAYERS")
    for what, count in (("nodes", len(graph.node)), ("initializers", len(graph.initializer)),
                        ("inputs", len(graph.input))):
        if count > cap:
            raise SpecError(f"the graph has {count:,} {what}; archcalc reads at most {cap:,} "
                            f"({ENTRIES_PER_LAYER} per layer of MAX_LAYERS)", file=display,
                            fix="raise ARCHCALC_MAX_LAYERS if the model is legitimate")


def _producers(graph: Any, source: str, display: str) -> dict[str, Any]:
    """Each tensor's producing node. ONNX graphs are in single assignment and topological
    order (the standard requires both); a tensor written twice, or read before the node that
    writes it (an unsorted graph, or a cycle), is said here — the walks below rely on both."""
    producers: dict[str, Any] = {}
    known = {source, *(t.name for t in graph.initializer), *(i.name for i in graph.input)}
    for index, node in enumerate(graph.node):
        where = f"node '{echo(node.name or node.output[0] if node.output else '', 60)}' " \
                f"({echo(node.op_type, 40)}, #{index})"
        for t in node.input:
            if t and t not in known and t not in producers:
                later = any(t in n.output for n in graph.node[index:])
                raise SpecError(f"{where} reads '{echo(t, 60)}', "
                                + ("which a later node writes: the graph has a cycle or is "
                                   "not in topological order" if later else
                                   "which no node, input or initializer provides"),
                                file=display, fix="export the model again (ONNX graphs list "
                                                  "each node after the nodes it reads)")
        for o in node.output:
            if o in producers or (o and o in known):
                raise SpecError(f"{where} writes '{echo(o, 60)}', which is already written "
                                "earlier (ONNX tensors are assigned once)", file=display,
                                fix="export the model again; onnx.checker.check_model finds "
                                    "such faults")
            if o:
                producers[o] = node
    return producers


def _cut(layers: list[_Op], ops: dict[str, _Op], source: str, output: str,
         display: str) -> tuple[str, str]:
    """(the new output tensor, the note) for convert(partial=True): the last tensor on the
    main path — the chain of immediate post-dominators from the input, which every path
    to the output passes — whose computation needs no unsupported node. Cutting there
    leaves whole the sequences and merges before it, and no branch half-read."""
    first = min((op for op in layers if op.unsupported), key=lambda op: _culprit(op).index)
    ipdom = _Structure(layers, source, _resolved_sink(ops, output), display).ipdom
    cut, tensor = source, ipdom.get(source)
    while tensor is not None and not any(op.unsupported for op in _needed(ops, tensor)):
        cut, tensor = tensor, ipdom.get(tensor)
    where = _where(_culprit(first))
    if cut == source:
        why = "" if first.unsupported == _culprit(first).node.op_type \
            else f" ({first.unsupported})"
        raise ArchcalcError(f"no layer comes before the first unsupported node, "
                            f"{where}{why}: nothing to analyse", file=display,
                            fix="archcalc maps Conv, ConvTranspose, BatchNormalization, "
                                "pools, Gemm/MatMul, Flatten, Resize, Pad, LRN, Dropout, "
                                "activations and Add/Concat/Mul branches (README, 'Layer "
                                "kinds')")
    left = _left_out(ops, cut, output)
    return cut, f"stopped before {where}: {left:,} node{'s' if left != 1 else ''} left out"


def _needed(ops: dict[str, _Op], tensor: str) -> list[_Op]:
    """The ops `tensor` is computed from (itself included), through the resolved inputs."""
    seen, stack, found = set(), [tensor], []
    while stack:
        t = stack.pop()
        if t in seen or t not in ops:
            continue
        seen.add(t)
        found.append(ops[t])
        stack.extend(ops[t].inputs)
    return found


def _left_out(ops: dict[str, _Op], cut: str, sink: str) -> int:
    """How many ONNX activation nodes the output needs that the cut spec does not hold: the
    nodes the output is computed from (through each node's own inputs) less those `cut` is
    computed from — with the aliases that stand for `cut` itself (an Identity, or the bias
    Add fused into a MatMul's dense) counted as kept."""
    standing = [op.out for op in ops.values() if op.alias and op.inputs == [cut]
                and not op.extra.get("dead") and op.node.op_type != "Pad"]
    return len(_reachable([sink], ops) - _reachable([cut, *standing], ops))


def _resolved_sink(ops: dict[str, _Op], sink: str) -> str:
    while sink in ops and ops[sink].alias:
        sink = ops[sink].inputs[0]
    return sink


def _resolve(ops: list[_Op], source: str, sink: str, display: str) -> list[_Op]:
    """Aliases removed (their readers read what they alias), and only the ops the output
    depends on kept, in graph order."""
    by_out = {op.out: op for op in ops}

    def real(t: str) -> str:
        while t in by_out and by_out[t].alias and by_out[t].inputs:
            t = by_out[t].inputs[0]
        return t

    for op in ops:
        op.inputs = [real(t) for t in op.inputs]
    needed, stack = set(), [real(sink)]
    while stack:
        t = stack.pop()
        if t in needed or t not in by_out:
            continue
        needed.add(t)
        stack.extend(by_out[t].inputs)
    if real(sink) == source:
        raise SpecError("the graph's output is its input: no layers", file=display,
                        fix="export a model with at least one layer")
    return [op for op in ops if op.out in needed and not op.alias]


# Each inner merge put back rebuilds the structure (len(layers) steps and more): real networks
# need a few (Inception-v3: one per nested cat); a crafted ladder of Concats would need one per
# node, cubic time. The first pass is free (a 40,000-layer chain needs only it).
MAX_NEST_WORK = 30_000
# Inputs of all merges together: DenseNet-201's Concats of every earlier feature map hold a
# few thousand; a crafted graph of 10⁴ Concats of 10⁴ inputs each would cost 10⁸ steps and more.
MAX_MERGE_INPUTS = 100_000


def _nest_merges(layers: list[_Op], source: str, sink: str, display: str) -> list[_Op]:
    """torch merges nested concatenations into one Concat (Inception-v3's Mixed_7b:
    cat([b1, cat([b2a, b2b]), ...]) becomes Concat(b1, b2a, b2b, ...)). Where a fork inside
    one branch reaches a run of the merge's inputs, put back the inner merge of that run."""
    work = 0
    for _ in range(len(layers)):
        if work > MAX_NEST_WORK:
            raise SpecError(f"the graph's merges nest more than archcalc unpicks (over "
                            f"{MAX_NEST_WORK:,} layer visits to put back inner Concat/Add "
                            "merges)", file=display,
                            fix="export the model with its nested merges as separate nodes")
        structure = _Structure(layers, source, sink, display)
        work += len(layers)
        found = _inner_run(structure, [source, *(op.out for op in layers)])
        if found is None:
            return layers
        merge, run = found
        inner = _Op(merge.node, merge.index, [merge.inputs[k] for k in run],
                    f"{merge.out}#{run[0]}", merge=merge.merge)
        inner.extra["inner"] = True
        merge.inputs = merge.inputs[:run[0]] + [inner.out] + merge.inputs[run[-1] + 1:]
        layers.insert(layers.index(merge), inner)
    return layers


def _inner_run(structure: "_Structure", tensors: list[str]) -> tuple[_Op, list[int]] | None:
    """(merge, positions of its inputs) for the innermost fork that reaches only some of the
    inputs of the merge it re-joins at, or None."""
    for tensor in reversed(tensors):
        if len(structure.users.get(tensor, [])) < 2:
            continue
        merge = structure.by_out.get(structure.ipdom.get(tensor) or "")
        if merge is None or merge.merge is None:
            continue
        reached = structure.reach(tensor, merge)
        run = [k for k, t in enumerate(merge.inputs) if t in reached]
        if 2 <= len(run) < len(merge.inputs) and run == list(range(run[0], run[-1] + 1)):
            return merge, run
    return None


def _rewrite_concats(layers: list[_Op]) -> None:
    """DenseNet: Concat(x0, …, xk) where Concat(x0, …, xk−1) exists → Concat(that, xk)."""
    seen: dict[tuple[str, ...], str] = {}
    for op in layers:
        if op.merge != "concat":
            continue
        inputs = tuple(op.inputs)
        for cut in range(len(inputs) - 1, 1, -1):
            inner = seen.get(inputs[:cut])
            if inner is not None:
                op.inputs = [inner, *inputs[cut:]]
                break
        seen.setdefault(inputs, op.out)
