"""Keras models as archcalc specs, read without Keras: a `.keras` archive (Keras 3: a zip of
config.json, metadata.json and model.weights.h5) or a `model.to_json()` document.

Both hold the same serialised model config: {"class_name": "Sequential" | "Functional" |
"Model", "config": {"name", "layers": [...], ...}}. Each Keras layer becomes one or more spec
items; Keras is channels-last, so an (H, W, C) input becomes archcalc's [C, H, W] and a layer's
channel axis (-1) is archcalc's channel axis. A functional graph's forks that re-join at Add,
Concatenate or Multiply become `add` / `concat` / `mul` branches (the graph must be
series-parallel: every merge re-joins branches that fork from one tensor).

Parameter counts agree with Keras's by construction: Conv2D/Dense kernels plus one bias each,
DepthwiseConv2D as a conv with groups = C_in, SeparableConv2D as its depthwise and pointwise
halves (one bias, on the pointwise, as Keras keeps it), BatchNormalization as γ, β
(trainable) and the moving mean and variance (non-trainable): 4·C with 2·C non-trainable.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from archcalc.errors import ArchcalcError
from archcalc.limits import MAX_SIZE, echo, limit

# A Keras 3 archive holds three members (plus an assets/ folder for some layers); thousands
# would be a zip made to make us walk its directory.
MAX_ZIP_MEMBERS = 1000
# config.json may inflate to at most this many times MAX_SPEC_BYTES (32 MiB by default): a
# 1,000-layer model's config is ~3 MB of JSON, so more is not a model but a zip bomb.
CONFIG_FACTOR = 64
MAX_METADATA_BYTES = 64 * 1024
# Unsupported layers named in the one error line before "and N more".
MAX_NAMED = 20

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
MERGES = {"Add": "add", "Concatenate": "concat", "Multiply": "mul"}


def read(path: Any, display: str, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """The raw spec mapping of a Keras 3 `.keras` archive."""
    from archcalc.spec.load import open_bounded  # here: load imports the importers' seam

    # the zip is read in place: its directory and config.json, never the weights
    with open_bounded(path, display, "MAX_MODEL_BYTES") as handle:
        config, version = _archive(handle)
    return _convert(config, input_shape, version, "a Keras archive")


def read_with_weights(path: Any, display: str, input_shape: tuple[int, ...] | None
                      ) -> tuple[dict[str, Any], dict]:
    """(the raw spec mapping, {layer name: {param: (h5 path, array)}}) of a `.keras` archive:
    the weights in the executor's layout (archcalc.importers.keras_weights), beside the
    mapping because a spec has no place for arrays."""
    from archcalc.importers.keras_weights import weights_table
    from archcalc.spec.load import open_bounded

    with open_bounded(path, display, "MAX_MODEL_BYTES") as handle:
        config, version = _archive(handle)
        nodes: list[_Node] = []
        raw = _convert(config, input_shape, version, "a Keras archive", nodes)
        return raw, weights_table(handle, nodes, display)


def from_json(raw: Any, display: str, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """The raw spec mapping of a Keras `model.to_json()` document (already parsed)."""
    version = raw.get("keras_version") if isinstance(raw, dict) else None
    return _convert(raw, input_shape, version if isinstance(version, str) else None,
                    "Keras model.to_json()")


# ---------------------------------------------------------------------------------------------
# The archive


def _archive(data: Any) -> tuple[Any, str | None]:
    """config.json (parsed) and metadata.json's keras_version of a .keras zip (bytes or an
    open file), every read bounded by the sizes the zip's directory states and by a read of at
    most that plus one."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ArchcalcError("not a Keras archive: the file is not a zip",
                            fix="save the model with model.save('model.keras') (Keras 3), or "
                                "write model.to_json() to a .json file") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise ArchcalcError(f"not a Keras archive: the zip holds {len(members):,} files; "
                                f"a .keras archive holds a few (at most {MAX_ZIP_MEMBERS:,} "
                                "are read)", fix="give the file model.save() wrote")
        names = {m.filename: m for m in members}
        if "config.json" not in names:
            listed = ", ".join(sorted(names)[:5]) or "nothing"
            raise ArchcalcError(f"not a Keras archive: the zip has no config.json (it holds "
                                f"{echo(listed, 120)})",
                                fix="save the model with model.save('model.keras') (Keras 3)")
        cap = limit("MAX_SPEC_BYTES") * CONFIG_FACTOR
        text = _member(archive, names["config.json"], cap)
        version = None
        if "metadata.json" in names:
            meta = _json(_member(archive, names["metadata.json"], MAX_METADATA_BYTES,
                                 "give the file model.save() wrote (its metadata.json holds "
                                 "a few hundred bytes)"), "metadata.json")
            found = meta.get("keras_version") if isinstance(meta, dict) else None
            version = found if isinstance(found, str) else None
    return _json(text, "config.json"), version


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int,
            fix: str = "raise ARCHCALC_MAX_SPEC_BYTES (the bound is 64 times it)") -> bytes:
    """The member's bytes, at most `cap` (`fix`: what to do when it is larger — the
    metadata's fixed bound is not raised by any setting)."""
    if info.file_size > cap:
        raise ArchcalcError(f"{info.filename} in the archive inflates to {info.file_size:,} "
                            f"bytes; at most {cap:,} are read", fix=fix)
    try:
        with archive.open(info) as handle:
            data = handle.read(cap + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
            NotImplementedError, ValueError) as exc:
        raise ArchcalcError(f"cannot read {info.filename} in the archive: {echo(exc, 120)}",
                            fix="the file is corrupt or encrypted; save the model again") from None
    if len(data) > cap:  # the directory understated it
        raise ArchcalcError(f"{info.filename} in the archive inflates past {cap:,} bytes",
                            fix=fix)
    return data


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArchcalcError(f"{what} in the archive is not valid JSON: {echo(exc, 120)}",
                            fix="save the model again with model.save('model.keras')") from None


# ---------------------------------------------------------------------------------------------
# The graph


@dataclass
class _Node:
    """One Keras layer called once: its inputs are the names of the layers it reads."""

    name: str            # the spec name (sanitised, unique)
    keras_name: str
    cls: str
    config: dict
    inputs: list[str]
    recorded: tuple | None = None  # Keras's recorded input shape (channels-last, no batch)
    items: list = field(default_factory=list)
    out: tuple[int, int | None] = (3, None)  # (rank 3 image | 1 flat, channels or features)
    frozen: bool = False  # trainable=False on the layer or on a model around it
    # Where Keras 3 saved the layer's variables in model.weights.h5 (see _h5_slot).
    h5: str = ""
    # The layer reads a flat vector that Keras flattened from a channels-last map of this
    # many channels (H·W·C order, archcalc's is C·H·W: its weights' rows are permuted);
    # 1 when the order is archcalc's, None when it is not known (a concat of flattened maps).
    flat_order: int | None = 1


class _Problems:
    """Unsupported layers, collected over the whole model and raised as one line."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, node: _Node, why: str = "") -> None:
        self.found.append(f"{echo(node.cls, 60)} '{echo(node.keras_name, 60)}'"
                          + (f" ({why})" if why else ""))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        named = "; ".join(self.found[:MAX_NAMED])
        more = len(self.found) - MAX_NAMED
        raise ArchcalcError(
            f"{len(self.found)} Keras layer{'s' if len(self.found) > 1 else ''} archcalc cannot "
            f"express: {named}" + (f"; and {more} more" if more > 0 else ""),
            fix="archcalc imports Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, "
                "Max/AveragePooling2D, GlobalAverage/MaxPooling2D, Dense, Flatten, Dropout, "
                "BatchNormalization, activations, ZeroPadding2D, Cropping2D, UpSampling2D, "
                "Add, Concatenate and Multiply (channels-last)")


def _convert(doc: Any, input_shape: tuple[int, ...] | None, version: str | None,
             origin: str, keep: list | None = None) -> dict[str, Any]:
    """The raw spec mapping; `keep` (a list) receives the translated nodes, for the weights."""
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), (dict, list)):
        raise ArchcalcError("not a Keras model: no 'config' mapping at the top",
                            fix="give model.to_json()'s output or a .keras archive")
    cls = doc.get("class_name")
    if not isinstance(cls, str) or cls not in MODEL_CLASSES:
        raise ArchcalcError(f"not a Keras model: class_name is {echo(repr(cls), 60)}",
                            fix="the top level must be a Sequential or Functional model")
    config = doc["config"]
    if isinstance(config, list):  # Keras 2.0-2.2 wrote a Sequential's config as its layers
        config = {"layers": config}
    layers = config.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArchcalcError("the Keras model has no layers", fix="give a built model")
    max_layers = limit("MAX_LAYERS")
    if len(layers) > max_layers:
        raise ArchcalcError(f"the Keras model has {len(layers):,} layers; at most "
                            f"{max_layers:,} are read", fix="raise ARCHCALC_MAX_LAYERS")
    name = config.get("name") if isinstance(config.get("name"), str) else "keras_model"
    if cls == "Sequential":
        root, nodes, first = _sequential(layers, config)
    else:
        root, nodes, first = _functional(layers, config)
    shape = _input_shape(first, input_shape)
    frozen = config.get("trainable") is False
    _translate(nodes, shape, version, frozen, recorded_ok=_same_input(first, input_shape))
    items = _assemble(root, nodes, first["output"])
    if keep is not None:
        keep.extend(nodes.values())
    if not items:
        raise ArchcalcError("the Keras model has no layer archcalc counts (only inputs)",
                            fix="give a model with at least one layer")
    kind = "Sequential" if cls == "Sequential" else "functional"
    ver = f", Keras {echo(version, 20)}" if version else ""
    return {"name": _clean(name) or "keras_model",
            "source": f"imported from {origin} ({kind} model '{echo(name, 60)}'{ver}); "
                      "converted from channels-last (H, W, C) to C×H×W",
            "input": list(shape), "layers": items}


def _layer_parts(layer: Any, index: int) -> tuple[str, str, dict]:
    if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
        raise ArchcalcError(f"the Keras model's layer {index} is not a {{class_name, config}} "
                            "mapping", fix="give model.to_json()'s output or a .keras archive")
    cls = layer.get("class_name")
    cfg = layer["config"]
    lname = layer.get("name", cfg.get("name"))
    if not isinstance(cls, str) or not isinstance(lname, str) or not lname:
        raise ArchcalcError(f"the Keras model's layer {index} has no class_name or name",
                            fix="give model.to_json()'s output or a .keras archive")
    return cls, lname, cfg


def _recorded(layer: dict) -> tuple | None:
    """The input shape Keras 3 recorded when it built the layer (without the batch axis)."""
    build = layer.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    return tuple(shape[1:]) if isinstance(shape, list) and shape else None


# A model used as a layer (transfer learning: Sequential([base_model, ...])) is inlined;
# this bounds how deep models may nest in one another.
MAX_NESTING = 8


class _Graph:
    """The nodes of the whole model, nested models inlined, under unique spec names."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.names = _Names()
        self.cap = limit("MAX_LAYERS")
        self.prefix = ""  # the h5 group of the model being read ("" at the top)

    def add(self, node: _Node) -> _Node:
        if len(self.nodes) >= self.cap:
            raise ArchcalcError(f"the Keras model has more than {self.cap:,} layers",
                                fix="raise ARCHCALC_MAX_LAYERS")
        self.nodes[node.name] = node
        return node

    def node(self, cls: str, lname: str, cfg: dict, inputs: list[str],
             recorded: tuple | None, frozen: bool, h5: str = "") -> _Node:
        return self.add(_Node(self.names.claim(lname), lname, cls, cfg, inputs, recorded,
                              frozen=frozen or cfg.get("trainable") is False, h5=h5))

    def slot(self, used: dict[str, int], cls: str) -> str:
        """Where Keras 3 saves the next layer of a model: saving_lib names each layer by its
        class in snake case, numbered _1, _2 ... in the model's layer order, never by the
        layer's own name (autogenerated names are not reproducible)."""
        base = _snake("Functional" if cls == "Model" else cls)
        used[base] = used.get(base, -1) + 1
        return f"{self.prefix}layers/{base}" + (f"_{used[base]}" if used[base] else "")


def _snake(name: str) -> str:
    """Keras's naming.to_snake_case: 'SeparableConv2D' → 'separable_conv2d'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _sequential(layers: list, config: dict) -> tuple[str, dict[str, _Node], dict]:
    """A chain: every layer reads the one before. Returns the root name, the nodes and what
    the input shape is read from."""
    graph = _Graph()
    root = "\0input"  # not a spec name: no Keras layer can clash with it
    first: dict = {"build_input_shape": config.get("build_input_shape")}
    first["output"] = _chain(graph, layers, root, first, 0, False)
    return root, graph.nodes, first


def _chain(graph: _Graph, layers: list, entry: str, first: dict | None, depth: int,
           frozen: bool) -> str:
    """A Sequential's layers after `entry`; the name of the last node. `first` (the top
    level only) collects what the input shape is read from."""
    previous = entry
    used: dict[str, int] = {}
    for index, layer in enumerate(layers):
        cls, lname, cfg = _layer_parts(layer, index)
        slot = graph.slot(used, cls)
        if cls == "InputLayer":
            if index:
                raise ArchcalcError(f"InputLayer '{echo(lname, 60)}' in the middle of a "
                                    "Sequential model", fix="give a model Keras can load")
            if first is not None:
                first["input_layer"] = cfg
            continue
        if first is not None and "first_layer" not in first:
            first["first_layer"] = cfg
            first["first_recorded"] = _recorded(layer)
        if cls in MODEL_CLASSES:
            previous = _nested(graph, layer, previous, depth + 1, frozen, slot)
        else:
            previous = graph.node(cls, lname, cfg, [previous], _recorded(layer),
                                  frozen, slot).name
    return previous


def _nested(graph: _Graph, layer: dict, entry: str, depth: int, frozen: bool,
            slot: str) -> str:
    """A model used as a layer, inlined after `entry` (its weights under the h5 group
    `slot`); the name of its output node."""
    cls, lname, cfg = layer["class_name"], layer["config"].get("name"), layer["config"]
    if depth > MAX_NESTING:
        raise ArchcalcError(f"Keras model '{echo(lname, 60)}' nests models more than "
                            f"{MAX_NESTING} deep", fix="give a model with fewer nested models")
    layers = cfg.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArchcalcError(f"the Keras model '{echo(lname, 60)}' inside the model has no "
                            "layers", fix="give a built model")
    frozen = frozen or cfg.get("trainable") is False
    outer, graph.prefix = graph.prefix, slot + "/"
    try:
        if cls == "Sequential":
            return _chain(graph, layers, entry, None, depth, frozen)
        return _scope(graph, layers, cfg, entry, None, depth, frozen)
    finally:
        graph.prefix = outer


def _functional(layers: list, config: dict) -> tuple[str, dict[str, _Node], dict]:
    """A graph: each layer's inbound node names the layers it reads (Keras 3's
    {"args": [keras tensors]} or Keras 2's [[name, node_index, tensor_index, kwargs]])."""
    graph = _Graph()
    root = "\0input"
    first: dict = {}
    first["output"] = _scope(graph, layers, config, root, first, 0, False)
    return root, graph.nodes, first


def _scope(graph: _Graph, layers: list, config: dict, entry: str, first: dict | None,
           depth: int, frozen: bool) -> str:
    """A functional model's layers, its InputLayer standing for `entry`; the name of its
    output node. Layers read one another by Keras name within the model, resolved once
    all are known; a nested model is entered through an identity node that reads its
    caller's input, so that the caller's name can be resolved like any other."""
    by_keras: dict[str, str] = {}
    inputs: list[str] = []
    created: list[_Node] = []
    used: dict[str, int] = {}
    for index, layer in enumerate(layers):
        cls, lname, cfg = _layer_parts(layer, index)
        slot = graph.slot(used, cls)
        if lname in by_keras:
            raise ArchcalcError(f"two Keras layers are named '{echo(lname, 60)}'",
                                fix="give a model Keras can load")
        calls = layer.get("inbound_nodes") or []
        if not isinstance(calls, list):
            calls = []
        if len(calls) > 1:
            raise ArchcalcError(f"Keras layer '{echo(lname, 60)}' ({echo(cls, 40)}) is called "
                                f"{len(calls)} times (a shared layer): archcalc's layers each "
                                "have their own weights",
                                fix="build the model with one layer per call")
        sources = _inbound(calls[0], lname) if calls else []
        if cls == "InputLayer":
            inputs.append(lname)
            by_keras[lname] = entry
            if first is not None:
                first["input_layer"] = cfg
            continue
        if not sources:
            raise ArchcalcError(f"Keras layer '{echo(lname, 60)}' reads no input",
                                fix="give a model Keras can load")
        if cls in MODEL_CLASSES:
            gate = graph.node("Identity", lname + "_input", {}, sources, None, frozen)
            created.append(gate)
            by_keras[lname] = _nested(graph, layer, gate.name, depth + 1, frozen, slot)
            continue
        node = graph.node(cls, lname, cfg, sources, _tensor_shape(calls[0]), frozen, slot)
        created.append(node)
        by_keras[lname] = node.name
    if len(inputs) != 1:
        raise ArchcalcError(f"the Keras model has {len(inputs)} inputs; archcalc analyses "
                            "a network with one input", fix="give a single-input model")
    for node in created:
        unknown = [s for s in node.inputs if s not in by_keras]
        if unknown:
            raise ArchcalcError(f"Keras layer '{echo(node.keras_name, 60)}' reads "
                                f"'{echo(unknown[0], 60)}', which is not a layer of the model",
                                fix="give a model Keras can load")
        node.inputs = [by_keras[s] for s in node.inputs]
    outputs = _endpoints(config.get("output_layers"))
    if len(outputs) != 1 or outputs[0] not in by_keras:
        raise ArchcalcError(f"the Keras model has {len(outputs)} outputs; archcalc analyses "
                            "a network with one output", fix="give a single-output model")
    return by_keras[outputs[0]]


def _endpoints(value: Any) -> list[str]:
    """output_layers: ["name", 0, 0] (Keras 3, one) or [["name", 0, 0], ...]."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value[0]]
    if isinstance(value, list):
        return [v[0] for v in value if isinstance(v, list) and v and isinstance(v[0], str)]
    return []


def _inbound(call: Any, lname: str) -> list[str]:
    """The layer names one call reads, in order."""
    if isinstance(call, dict):  # Keras 3
        tensors = _tensors(call.get("args"))
        if _tensors(call.get("kwargs")):
            raise ArchcalcError(f"Keras layer '{echo(lname, 60)}' takes a tensor as a keyword "
                                "argument (a mask or a second input)",
                                fix="archcalc follows tensors passed positionally")
        return tensors
    if isinstance(call, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        found = []
        for entry in call:
            if not (isinstance(entry, list) and len(entry) >= 3 and isinstance(entry[0], str)):
                raise ArchcalcError(f"Keras layer '{echo(lname, 60)}': an inbound node "
                                    "archcalc cannot read", fix="give a model Keras can load")
            _check_history(entry, lname)
            found.append(entry[0])
        return found
    raise ArchcalcError(f"Keras layer '{echo(lname, 60)}': an inbound node archcalc cannot "
                        "read", fix="give a model Keras can load")


def _tensors(value: Any, depth: int = 0) -> list[str]:
    """Layer names of the Keras 3 tensors in `value` (nested lists of tensor mappings)."""
    if depth > 4:
        return []
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        config = value.get("config")
        history = config.get("keras_history") if isinstance(config, dict) else None
        if not (isinstance(history, list) and len(history) >= 3 and isinstance(history[0], str)):
            raise ArchcalcError("a Keras tensor without its keras_history",
                                fix="give a model Keras can load")
        _check_history(history, history[0])
        return [history[0]]
    if isinstance(value, (list, tuple)):
        return [name for v in value for name in _tensors(v, depth + 1)]
    if isinstance(value, dict):
        return [name for v in value.values() for name in _tensors(v, depth + 1)]
    return []


def _check_history(history: list, lname: str) -> None:
    if history[1] != 0 or history[2] != 0:  # a second call or a second output of a layer
        raise ArchcalcError(f"Keras layer '{echo(history[0], 60)}' is read at call "
                            f"{echo(history[1], 10)}, output {echo(history[2], 10)}: archcalc "
                            "follows layers called once with one output",
                            fix="build the model with one layer per call")


def _tensor_shape(call: Any) -> tuple | None:
    """The recorded shape (no batch axis) of the first tensor a Keras 3 call reads."""
    if not isinstance(call, dict):
        return None
    args = call.get("args")
    while isinstance(args, list) and args:
        args = args[0]
    if isinstance(args, dict) and isinstance(args.get("config"), dict):
        shape = args["config"].get("shape")
        if isinstance(shape, list) and shape:
            return tuple(shape[1:])
    return None


class _Names:
    """Spec names from Keras names: characters other than letters, digits, '_' and '-'
    become '_' (a '.' would open a scope), and a clash gets a suffix."""

    def __init__(self, used: set[str] | None = None) -> None:
        self.used = set(used or ())

    def claim(self, name: str) -> str:
        base = _clean(name) or "layer"
        found, count = base, 1
        while found in self.used:
            count += 1
            found = f"{base}_{count}"
        self.used.add(found)
        return found


def _clean(name: str) -> str:
    return re.sub(r"[^\w\-]", "_", name[:200], flags=re.ASCII)


# ---------------------------------------------------------------------------------------------
# The input


def _keras_shape(value: Any) -> tuple | None:
    """A Keras shape list (batch axis first) without its batch axis."""
    if isinstance(value, list) and len(value) >= 2:
        return tuple(value[1:])
    return None


def _declared(first: dict) -> tuple | None:
    """The channels-last input shape the model declares, first found of: the InputLayer's
    batch_shape (Keras 3) or batch_input_shape (Keras 2), the first layer's
    batch_input_shape (Keras 2's input_shape= / input_dim=), the Sequential's
    build_input_shape, the first layer's recorded build shape."""
    layer = first.get("input_layer") or {}
    for value in (layer.get("batch_shape"), layer.get("batch_input_shape"),
                  (first.get("first_layer") or {}).get("batch_input_shape"),
                  first.get("build_input_shape")):
        shape = _keras_shape(value)
        if shape is not None:
            return shape
    return first.get("first_recorded")


def _input_shape(first: dict, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """archcalc's input: [C, H, W] from Keras's (H, W, C), or [N] from (N,)."""
    if given is not None:
        return tuple(given)
    shape = _declared(first)
    if shape is None:
        raise ArchcalcError("the Keras model does not say its input shape",
                            fix="give --input CxHxW (e.g. --input 3x224x224)")
    if len(shape) not in (1, 3):
        raise ArchcalcError(f"the Keras model's input has shape {_show(shape)}; archcalc takes "
                            "images (H, W, C) and flat vectors (N,)",
                            fix="give an image or a flat-vector model")
    if not all(_is_size(v) for v in shape):
        raise ArchcalcError(f"the Keras model's input shape {_show(shape)} has sizes left open",
                            fix="give --input CxHxW (e.g. --input 3x224x224)")
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


def _same_input(first: dict, given: tuple[int, ...] | None) -> bool:
    """Whether the shapes Keras recorded hold for the input analysed (no --input, or the
    same one)."""
    if given is None:
        return True
    try:
        return tuple(given) == _input_shape(first, None)
    except ArchcalcError:
        return False


def _show(shape: tuple) -> str:
    return "(" + ", ".join("None" if v is None else echo(v, 12) for v in shape) + ")"


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


# ---------------------------------------------------------------------------------------------
# Layers → spec items


@dataclass
class _Context:
    problems: _Problems
    version: str | None
    recorded_ok: bool  # Keras's recorded shapes hold for the input analysed
    frozen: bool       # the whole model has trainable=False


IMAGE, FLAT = 3, 1


def _bad(node: _Node, key: str, value: Any, want: str) -> ArchcalcError:
    return ArchcalcError(f"Keras layer '{echo(node.keras_name, 60)}' ({echo(node.cls, 40)}): "
                         f"{key} is {echo(repr(value), 60)}, not {want}",
                         fix="give a model Keras can load")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(node: _Node, key: str, value: Any) -> float:
    """A field's value as a float, or one line naming the layer, the field and the value."""
    if not _is_number(value):
        raise _bad(node, key, value, "a number")
    return float(value)


def _int(node: _Node, key: str, default: Any = None, low: int = 1) -> int:
    value = node.config.get(key, default)
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_SIZE):
        raise _bad(node, key, value, f"an integer from {low} to {MAX_SIZE:,}")
    return value


def _pair(node: _Node, key: str, default: Any = None, low: int = 1) -> list[int]:
    """An int or a 2-list of ints (Keras's kernel_size, strides ...) as [h, w]."""
    value = node.config.get(key, default)
    values = [value, value] if not isinstance(value, (list, tuple)) else list(value)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                   and low <= v <= MAX_SIZE for v in values):
        raise _bad(node, key, value, f"an integer or a pair of integers from {low}")
    return values


def _sides(node: _Node, key: str) -> list[int]:
    """ZeroPadding2D's padding / Cropping2D's cropping: p, (h, w) or ((t, b), (l, r)) as
    [top, bottom, left, right]."""
    value = node.config.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if isinstance(value, list) and len(value) == 2:
        flat = [v for part in value
                for v in (part if isinstance(part, list) and len(part) == 2 else [part, part])]
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SIZE
               for v in flat):
            return flat
    raise _bad(node, key, value, "p, (h, w) or ((top, bottom), (left, right))")


# Fields left out when they hold the spec's default (a pool's stride defaults to its kernel,
# not 1: kept), so an imported spec reads like a hand-written one (`archcalc import`).
DEFAULTS = {"stride": 1, "dilation": 1, "groups": 1, "bias": True, "padding": 0,
            "output_padding": 0}


def _compact(value: Any) -> Any:
    """[a, a] (and [p, p, p, p]) as a; 'valid' as 0 (the spec's default padding)."""
    if isinstance(value, list) and len(value) in (2, 4) and len(set(value)) == 1:
        return value[0]
    return 0 if value == "valid" else value


def _leaf(node: _Node, ctx: _Context, kind: str, suffix: str = "", **fields: Any) -> dict:
    fields = {key: _compact(value) for key, value in fields.items()}
    item = {"type": kind, "name": node.name + suffix,
            **{key: value for key, value in fields.items()
               if key not in DEFAULTS or value != DEFAULTS[key]
               or (key == "stride" and kind.endswith("pool"))}}  # a pool's is its kernel
    if ctx.frozen or node.frozen:
        item["trainable"] = False  # Keras counts a frozen layer's weights as non-trainable
    return item


# Keras 3's activation functions by their serialised name → the spec item. leaky_relu's
# default slope is Keras's 0.2 (keras.activations.leaky_relu); hard_sigmoid is Keras 3's
# relu6(x + 3)/6 (Keras 2's was clip(0.2·x + 0.5), see _activation); gelu is the exact form.
ACTIVATIONS: dict[str, dict | None] = {
    "linear": None, "relu": {"type": "relu"}, "sigmoid": {"type": "sigmoid"},
    "tanh": {"type": "tanh"}, "softmax": {"type": "softmax"}, "elu": {"type": "elu"},
    "relu6": {"type": "relu6"}, "hard_sigmoid": {"type": "hardsigmoid"},
    "hard_silu": {"type": "hardswish"}, "hard_swish": {"type": "hardswish"},
    "silu": {"type": "silu"}, "swish": {"type": "silu"},
    "gelu": {"type": "gelu", "approximate": "none"},
    "leaky_relu": {"type": "leaky_relu", "slope": 0.2},
}


def _activation(node: _Node, ctx: _Context, value: Any, suffix: str) -> list[dict] | None:
    """The item(s) of an activation argument ('relu', or Keras 3's serialised function);
    [] for linear; None (after naming the problem) for one archcalc does not have."""
    if isinstance(value, dict):  # {"class_name": "function", "config": "relu", ...}
        value = value.get("config")
    if value is None:
        value = "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        ctx.problems.add(node, f"activation {echo(repr(value), 40)}")
        return None
    if value == "hard_sigmoid" and (ctx.version or "3").startswith(("1.", "2.")):
        ctx.problems.add(node, "Keras 2's hard_sigmoid, clip(0.2·x + 0.5, 0, 1)")
        return None
    item = ACTIVATIONS[value]
    return [] if item is None else [_leaf(node, ctx, item["type"], suffix,
                                          **{k: v for k, v in item.items() if k != "type"})]


def _with_activation(node: _Node, ctx: _Context, items: list[dict]) -> None:
    act = _activation(node, ctx, node.config.get("activation"), "_" + str(
        node.config.get("activation") if isinstance(node.config.get("activation"), str)
        else "act"))
    node.items = items + (act or [])


def _channels_last(node: _Node, ctx: _Context) -> bool:
    fmt = node.config.get("data_format")
    if fmt not in (None, "channels_last"):
        ctx.problems.add(node, f"data_format {echo(repr(fmt), 30)}: archcalc reads "
                               "channels-last models")
        return False
    return True


def _image_input(node: _Node, ctx: _Context, inp: tuple[int, int | None]) -> bool:
    if inp[0] != IMAGE:
        ctx.problems.add(node, "on a flat input")
        return False
    return _channels_last(node, ctx)


def _padding(node: _Node, ctx: _Context) -> str | None:
    padding = node.config.get("padding", "valid")
    if padding not in ("valid", "same"):
        ctx.problems.add(node, f"padding {echo(repr(padding), 20)}")
        return None
    return padding


def _conv(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """Conv2D: Keras 'same' is TensorFlow's rule, which is archcalc's `padding: same`."""
    filters = _int(node, "filters")
    padding = _padding(node, ctx)
    if not _image_input(node, ctx, inp) or padding is None:
        return (IMAGE, filters)
    _with_activation(node, ctx, [_leaf(
        node, ctx, "conv2d", filters=filters, kernel=_pair(node, "kernel_size"),
        stride=_pair(node, "strides", 1), padding=padding,
        dilation=_pair(node, "dilation_rate", 1), groups=_int(node, "groups", 1),
        bias=node.config.get("use_bias", True) is not False)])
    return (IMAGE, filters)


def _depthwise(node: _Node, ctx: _Context, inp: tuple, suffix: str = "") -> list[dict] | None:
    """A depthwise conv: one group per input channel, depth_multiplier filters each."""
    padding = _padding(node, ctx)
    if not _image_input(node, ctx, inp) or padding is None or inp[1] is None:
        return None
    mult = _int(node, "depth_multiplier", 1)
    return [_leaf(node, ctx, "conv2d", suffix, filters=inp[1] * mult,
                  kernel=_pair(node, "kernel_size"), stride=_pair(node, "strides", 1),
                  padding=padding, dilation=_pair(node, "dilation_rate", 1), groups=inp[1],
                  bias=not suffix and node.config.get("use_bias", True) is not False)]


def _depthwise_conv(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    items = _depthwise(node, ctx, inp)
    if items is not None:
        _with_activation(node, ctx, items)
    return (IMAGE, (inp[1] or 1) * _int(node, "depth_multiplier", 1))


def _separable(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """SeparableConv2D: the depthwise conv (no bias: Keras keeps one, on the pointwise
    output) then the 1×1 pointwise conv that carries the layer's name."""
    filters = _int(node, "filters")
    items = _depthwise(node, ctx, inp, "_depthwise")
    if items is not None:
        items.append(_leaf(node, ctx, "conv2d", filters=filters, kernel=1,
                           bias=node.config.get("use_bias", True) is not False))
        _with_activation(node, ctx, items)
    return (IMAGE, filters)


def _transpose_axis(kernel: int, stride: int, dilation: int, padding: str,
                    output_padding: int | None) -> tuple[int, int, int]:
    """(crop before, crop after, output_padding) that give Keras's output length.

    Keras (deconv_output_length, _get_output_shape_given_tf_padding), with Fd = D·(K − 1) + 1:
      valid: out = (W − 1)·S + Fd + op, op defaulting to max(Fd, S) − Fd;
      same:  out = W·S without op, else (W − 1)·S + Fd % 2 + op.
    Where the rows go is TensorFlow's (and Keras's JAX backend's) rule: of the full
    (W − 1)·S + Fd rows, the first Fd − 1 − min(⌈pad_len/2⌉, Fd − 1) are cut, pad_len =
    out − (W − 1)·S + Fd − 2; the rest of the difference is cut at the end, or added there
    as output_padding when the output is longer. (Keras's torch backend pads symmetrically
    instead: one row moves from top to bottom when Fd − S is odd; the sizes are the same.)
    """
    fd = dilation * (kernel - 1) + 1
    if padding == "valid":
        extra = fd + (max(fd, stride) - fd if output_padding is None else output_padding)
    else:
        extra = stride if output_padding is None else fd % 2 + output_padding
    # extra = out − (W − 1)·S: independent of W, so the same items hold for any input size
    pad_len = extra + fd - 2
    before = fd - 1 - min(-(-pad_len // 2), fd - 1)
    after = fd - extra - before
    return (before, after, 0) if after >= 0 else (before, 0, -after)


def _conv_transpose(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    filters = _int(node, "filters")
    padding = _padding(node, ctx)
    if not _image_input(node, ctx, inp) or padding is None:
        return (IMAGE, filters)
    kernel, stride = _pair(node, "kernel_size"), _pair(node, "strides", 1)
    dilation = _pair(node, "dilation_rate", 1)
    given = node.config.get("output_padding")
    ops = [None, None] if given is None else _pair(node, "output_padding", low=0)
    axes = [_transpose_axis(k, s, d, padding, o)
            for k, s, d, o in zip(kernel, stride, dilation, ops)]
    _with_activation(node, ctx, [_leaf(
        node, ctx, "conv_transpose2d", filters=filters, kernel=kernel, stride=stride,
        padding=[axes[0][0], axes[0][1], axes[1][0], axes[1][1]],
        output_padding=[axes[0][2], axes[1][2]], dilation=dilation,
        bias=node.config.get("use_bias", True) is not False)])
    return (IMAGE, filters)


def _dense(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """Dense on a flat input; on an image Keras applies it to the channel axis of every
    pixel, which is a 1×1 convolution (the same weights, the same count)."""
    units = _int(node, "units")
    bias = node.config.get("use_bias", True) is not False
    if inp[0] == IMAGE:
        item = _leaf(node, ctx, "conv2d", filters=units, kernel=1, bias=bias)
    else:
        item = _leaf(node, ctx, "dense", units=units, bias=bias)
    _with_activation(node, ctx, [item])
    return (inp[0], units)


def _pool(kind: str) -> Any:
    def convert(node: _Node, ctx: _Context, inp: tuple) -> tuple:
        padding = _padding(node, ctx)
        if not _image_input(node, ctx, inp) or padding is None:
            return inp
        kernel = _pair(node, "pool_size", 2)
        stride = _pair(node, "strides", kernel) if node.config.get("strides") is not None \
            else kernel
        if kind == "avgpool" and padding == "same" and not _pads_nothing(node, ctx, kernel,
                                                                           stride):
            return inp
        node.items = [_leaf(node, ctx, kind, kernel=kernel, stride=stride, padding=padding)]
        return inp
    return convert


def _pads_nothing(node: _Node, ctx: _Context, kernel: list[int], stride: list[int]) -> bool:
    """Keras's AveragePooling2D 'same' leaves padded pixels out of the average; archcalc's
    avgpool counts them (PyTorch's count_include_pad): the two agree only where 'same' pads
    nothing, checked on the input size Keras recorded for the layer."""
    shape = node.recorded if ctx.recorded_ok else None
    if not (shape and len(shape) == 3 and all(_is_size(v) for v in shape[:2])):
        ctx.problems.add(node, "padding='same' on an input of unknown size: Keras leaves the "
                               "padding out of the average, archcalc counts it")
        return False
    for size, k, s in zip(shape[:2], kernel, stride):
        if max((-(-size // s) - 1) * s + k - size, 0):
            ctx.problems.add(node, f"padding='same' pads a {size}-pixel axis: Keras leaves the "
                                   "padding out of the average, archcalc counts it")
            return False
    return True


def _global_pool(kind: str) -> Any:
    def convert(node: _Node, ctx: _Context, inp: tuple) -> tuple:
        if not _image_input(node, ctx, inp):
            return inp
        keep = node.config.get("keepdims", False) is True
        if kind == "global_avgpool":
            node.items = [_leaf(node, ctx, kind, keepdims=keep)]
        else:  # global max pooling: an adaptive max pool to 1×1
            node.items = [_leaf(node, ctx, "adaptive_maxpool", output=1)]
            if not keep:
                node.items.append(_leaf(node, ctx, "flatten", "_flatten"))
        return (IMAGE if keep else FLAT, inp[1])
    return convert


def _flatten(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """Keras flattens H, W, C in that order and archcalc C, H, W: the same count (the
    next Dense's weights would be permuted, not its size)."""
    if inp[0] == FLAT:
        return inp  # already flat: Keras's Flatten changes nothing
    if _channels_last(node, ctx):
        node.items = [_leaf(node, ctx, "flatten")]
    return (FLAT, None, inp[1])  # flattened in H·W·C order (see _Node.flat_order)


def _reshape(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """Reshape((-1,)) or Reshape((N,)) of an image is a flatten; other reshapes are not."""
    target = node.config.get("target_shape")
    if isinstance(target, list) and len(target) == 1 and (
            target[0] == -1 or (inp[0] == IMAGE and node.recorded and len(node.recorded) == 3
                                and all(_is_size(v) for v in node.recorded)
                                and target[0] == node.recorded[0] * node.recorded[1]
                                * node.recorded[2])
            or (inp[0] == FLAT and target[0] == inp[1])):
        if inp[0] == IMAGE:
            node.items = [_leaf(node, ctx, "flatten")]
            return (FLAT, None, inp[1])  # flattened in H·W·C order (see _Node.flat_order)
        return inp
    ctx.problems.add(node, f"target_shape {echo(repr(target), 40)} is not a flatten")
    return inp


def _batchnorm(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """Keras's momentum keeps that much of the old moving average; PyTorch's (archcalc's)
    is the weight of the new batch: 0.99 → 0.01."""
    cfg = node.config
    if cfg.get("axis", -1) not in (-1, inp[0], [-1], [inp[0]]):
        ctx.problems.add(node, f"axis {echo(repr(cfg.get('axis')), 20)}: archcalc normalises "
                               "the channel axis (-1 channels-last)")
    elif cfg.get("center", True) is False or cfg.get("scale", True) is False:
        ctx.problems.add(node, "center=False or scale=False: archcalc's batchnorm has both "
                               "γ and β")
    elif cfg.get("renorm") is True:
        ctx.problems.add(node, "renorm=True")
    else:
        eps = cfg.get("epsilon", 1e-3)
        momentum = cfg.get("momentum", 0.99)
        if not (_is_number(eps) and _is_number(momentum)):
            raise _bad(node, "epsilon/momentum", (eps, momentum), "numbers")
        node.items = [_leaf(node, ctx, "batchnorm", eps=float(eps),
                            momentum=round(1.0 - float(momentum), 12))]
    return inp


def _dropout(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    rate = _number(node, "rate", node.config.get("rate", 0.5))
    node.items = [_leaf(node, ctx, "dropout", rate=rate)]
    return inp


def _activation_layer(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    items = _activation(node, ctx, node.config.get("activation"), "")
    node.items = items or []
    return inp


def _relu_layer(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """ReLU(max_value, negative_slope, threshold): relu, relu6 or leaky_relu."""
    cfg = node.config
    top, slope, threshold = cfg.get("max_value"), cfg.get("negative_slope", 0), \
        cfg.get("threshold", 0)
    if threshold not in (0, 0.0, None):
        ctx.problems.add(node, f"threshold {echo(repr(threshold), 20)}")
    elif top is None and slope in (0, 0.0, None):
        node.items = [_leaf(node, ctx, "relu")]
    elif top in (6, 6.0) and slope in (0, 0.0, None):
        node.items = [_leaf(node, ctx, "relu6")]
    elif top is None and _is_number(slope):
        node.items = [_leaf(node, ctx, "leaky_relu", slope=float(slope))]
    else:
        ctx.problems.add(node, f"max_value {echo(repr(top), 20)} with negative_slope "
                               f"{echo(repr(slope), 20)}")
    return inp


def _leaky_relu(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    # Keras 3 names the slope negative_slope, Keras 2 alpha; both default to 0.3.
    slope = _number(node, "negative_slope",
                    node.config.get("negative_slope", node.config.get("alpha", 0.3)))
    node.items = [_leaf(node, ctx, "leaky_relu", slope=slope)]
    return inp


def _elu(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    alpha = _number(node, "alpha", node.config.get("alpha", 1.0))
    node.items = [_leaf(node, ctx, "elu", alpha=alpha)]
    return inp


def _softmax(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    if node.config.get("axis", -1) not in (-1, inp[0], [-1]):
        ctx.problems.add(node, f"axis {echo(repr(node.config.get('axis')), 20)}: archcalc's "
                               "softmax runs over the channels")
    else:
        node.items = [_leaf(node, ctx, "softmax")]
    return inp


def _zero_padding(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    if _image_input(node, ctx, inp):
        node.items = [_leaf(node, ctx, "pad", padding=_sides(node, "padding"))]
    return inp


def _cropping(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    if _image_input(node, ctx, inp):
        node.items = [_leaf(node, ctx, "crop", cropping=_sides(node, "cropping"))]
    return inp


def _upsampling(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    """UpSampling2D: nearest copies, or bilinear with half-pixel centres (ops.image.resize,
    PyTorch's align_corners=False)."""
    mode = node.config.get("interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        ctx.problems.add(node, f"interpolation {echo(repr(mode), 20)}")
    elif _image_input(node, ctx, inp):
        node.items = [_leaf(node, ctx, "upsample", scale=_pair(node, "size", 2), mode=mode)]
    return inp


def _identity(node: _Node, ctx: _Context, inp: tuple) -> tuple:
    return inp


CONVERTERS: dict[str, Any] = {
    "Conv2D": _conv, "Convolution2D": _conv, "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv2D": _separable, "SeparableConvolution2D": _separable,
    "Conv2DTranspose": _conv_transpose, "Deconvolution2D": _conv_transpose,
    "Dense": _dense, "MaxPooling2D": _pool("maxpool"), "MaxPool2D": _pool("maxpool"),
    "AveragePooling2D": _pool("avgpool"), "AvgPool2D": _pool("avgpool"),
    "GlobalAveragePooling2D": _global_pool("global_avgpool"),
    "GlobalAvgPool2D": _global_pool("global_avgpool"),
    "GlobalMaxPooling2D": _global_pool("adaptive_maxpool"),
    "GlobalMaxPool2D": _global_pool("adaptive_maxpool"),
    "Flatten": _flatten, "Reshape": _reshape, "BatchNormalization": _batchnorm,
    # Both are the identity at inference; in training SpatialDropout2D drops whole channels
    # where archcalc's executor drops single values (the same expected scale).
    "Dropout": _dropout, "SpatialDropout2D": _dropout,
    "Activation": _activation_layer, "ReLU": _relu_layer, "LeakyReLU": _leaky_relu,
    "ELU": _elu, "Softmax": _softmax, "ZeroPadding2D": _zero_padding,
    "Cropping2D": _cropping, "UpSampling2D": _upsampling, "Identity": _identity,
}


def _merge_out(node: _Node, ctx: _Context, ins: list[tuple]) -> tuple:
    """Add / Multiply keep the shape (a C×1×1 gate broadcasts in mul); Concatenate joins
    channels-last axis -1, archcalc's channel axis."""
    if node.cls == "Concatenate":
        axis = node.config.get("axis", -1)
        rank = ins[0][0]
        if axis not in (-1, rank) or any(i[0] != rank for i in ins):
            ctx.problems.add(node, f"axis {echo(repr(axis), 20)}: archcalc concatenates "
                                   "channels (axis -1)")
            return ins[0]
        channels = [i[1] for i in ins]
        joined = (rank, sum(channels) if None not in channels else None)
        # flattened maps joined end to end: no one channel count says their order
        return joined + (None,) if any(len(i) > 2 for i in ins) else joined
    return ins[0]


def _translate(nodes: dict[str, _Node], shape: tuple[int, ...], version: str | None,
               frozen: bool, recorded_ok: bool) -> None:
    """Fill every node's items and (rank, channels), in an order where a node's inputs
    come first; raise the unsupported layers as one line."""
    ctx = _Context(_Problems(), version, recorded_ok, frozen)
    outs: dict[str, tuple] = {}
    start = (IMAGE, shape[0]) if len(shape) == 3 else (FLAT, shape[0])
    for node in _topological(nodes):
        ins = [outs.get(i, start) for i in node.inputs]
        if ins and len(ins[0]) > 2:  # reads a flattened channels-last map
            node.flat_order = ins[0][2]
        if node.cls in MERGES:
            if len(ins) < 2:  # keras.ops x + 3.0: MobileNetV3's relu6(x + 3)/6 spelt out
                ctx.problems.add(node, "an operation with a constant operand: archcalc's "
                                       f"{MERGES[node.cls]} combines tensors")
            node.out = _merge_out(node, ctx, ins)
        elif len(ins) != 1:
            ctx.problems.add(node, f"{len(ins)} inputs")
            node.out = ins[0] if ins else start
        elif node.cls in CONVERTERS:
            node.out = CONVERTERS[node.cls](node, ctx, ins[0])
        else:
            ctx.problems.add(node)
            node.out = ins[0]
        outs[node.name] = node.out
    ctx.problems.raise_if_any()


def _topological(nodes: dict[str, _Node]) -> list[_Node]:
    """Kahn's order over the nodes (inputs outside `nodes` are the model's input)."""
    waiting = {n.name: sum(1 for i in set(n.inputs) if i in nodes) for n in nodes.values()}
    readers: dict[str, list[str]] = {}
    for n in nodes.values():
        for i in set(n.inputs):
            readers.setdefault(i, []).append(n.name)
    ready = [name for name, count in waiting.items() if count == 0]
    order: list[_Node] = []
    while ready:
        name = ready.pop()
        order.append(nodes[name])
        for reader in readers.get(name, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if len(order) != len(nodes):
        stuck = next(n for n, c in waiting.items() if c > 0)
        raise ArchcalcError(f"the Keras graph has a cycle through layer '{echo(stuck, 60)}'",
                            fix="give a model Keras can load")
    return order


# ---------------------------------------------------------------------------------------------
# The graph → nested sequences and merges


def _assemble(root: str, nodes: dict[str, _Node], output: str) -> list:
    """The spec items from the model's input to its output.

    Walking back from the output: a one-input layer is preceded by what produced its input;
    a merge is preceded by the tensor its branches fork from, its immediate dominator (the
    last tensor every path from the input to the merge passes), and each branch is the walk
    back from one merge input to that fork ([] when the input is the fork itself: an
    identity shortcut). Every layer must be placed exactly once, or the graph is not
    series-parallel (a tensor read across two branches that re-join at different merges).
    """
    idom = _dominators(root, nodes)
    placed: set[str] = set()

    def walk(end: str, start: str) -> list:
        items: list = []
        current = end
        while current != start:
            if current == root:  # walked past the fork: cannot happen in series-parallel
                raise _not_series_parallel(end)
            node = nodes[current]
            if node.name in placed:
                raise _not_series_parallel(node.keras_name)
            placed.add(node.name)
            if node.cls in MERGES:
                fork = idom[node.name]
                branches = [walk(i, fork) for i in node.inputs]
                items[:0] = [{MERGES[node.cls]: branches, "name": node.name}]
                current = fork
            else:
                items[:0] = node.items
                current = node.inputs[0]
        return items

    try:
        items = walk(output, root)
    except RecursionError:
        raise ArchcalcError("the Keras graph nests its branches too deeply for archcalc",
                            fix="a model with fewer nested merges") from None
    missing = [n.keras_name for n in nodes.values() if n.name not in placed]
    if missing:
        raise ArchcalcError(f"Keras layer '{echo(missing[0], 60)}' does not lead to the "
                            "model's output" + (f" (and {len(missing) - 1} more)"
                                                if len(missing) > 1 else ""),
                            fix="give a model whose every layer feeds its one output")
    return items


def _dominators(root: str, nodes: dict[str, _Node]) -> dict[str, str]:
    """Each node's immediate dominator (Cooper, Harvey & Kennedy's intersection, in
    topological order: a DAG needs one pass)."""
    order = {root: 0}
    for index, node in enumerate(_topological(nodes), 1):
        order[node.name] = index
    idom: dict[str, str] = {root: root}

    def meet(a: str, b: str) -> str:
        while a != b:
            while order[a] > order[b]:
                a = idom[a]
            while order[b] > order[a]:
                b = idom[b]
        return a

    for name in sorted(order, key=order.get)[1:]:
        found = None
        for pred in nodes[name].inputs:
            found = pred if found is None else meet(found, pred)
        idom[name] = found if found is not None else root
    return idom


def _not_series_parallel(name: str) -> ArchcalcError:
    return ArchcalcError(f"the Keras graph is not series-parallel at layer '{echo(name, 60)}': "
                         "its output is read by branches that re-join at different merges",
                         fix="archcalc's spec expresses branches that fork from one tensor "
                             "and re-join at one Add, Concatenate or Multiply")
