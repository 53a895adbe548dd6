"""Importers: foreign model files become the same raw spec mapping a YAML file parses to.

An importer reads a model file (bounded by MAX_MODEL_BYTES before any parsing) and returns a
plain mapping with `name`, `source`, `input` and `layers` in the spec language, so that every
command that takes SPEC works on it and `archcalc import` can write it out as YAML. Importers
never see the calculator (DESIGN.md: they sit at the edges).

Each importer module has `read(path, display, input_shape) -> dict`; the registry below maps a
file suffix to its module, imported only when such a file is named (their optional
dependencies load only then). A format that carries its weights also has
`read_with_weights(path, display, input_shape) -> (raw, table)` in its importer and a weights
module with `state_for(model, table, display)` (the executor's arrays, checked, its errors
worded for that format) and REQUIRES (a package its weights need beyond the importer's).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from archcalc.errors import ArchcalcError
from archcalc.limits import echo

# file suffix → importer module (archcalc.importers.<module>)
IMPORTERS: dict[str, str] = {".onnx": "onnx_import", ".keras": "keras_import"}
# file suffix → weights module, for the formats whose files hold the weights (a Keras
# model.to_json() holds none)
WEIGHTS: dict[str, str] = {".onnx": "onnx_weights", ".keras": "keras_weights"}


def is_model_file(path: Path) -> bool:
    return path.suffix.lower() in IMPORTERS


# the formats whose graphs can be cut before their first unsupported node (--partial)
PARTIAL: frozenset[str] = frozenset({".onnx"})


def read_model(path: Path, display: str, input_shape: tuple[int, ...] | None,
               partial: bool = False) -> dict[str, Any]:
    """The raw spec mapping of a model file, by its suffix's importer. partial: an .onnx
    graph is cut before its first unsupported node (the caller checks the suffix with
    check_partial)."""
    module = importlib.import_module(f"archcalc.importers.{IMPORTERS[path.suffix.lower()]}")
    return module.read(path, display, input_shape, partial=True) if partial else \
        module.read(path, display, input_shape)


def check_partial(ref: str) -> None:
    """--partial is refused, in one line, for a file that is not an .onnx graph."""
    if Path(ref).suffix.lower() not in PARTIAL:
        raise ArchcalcError(f"--partial cuts .onnx graphs, not {echo(ref)}",
                            fix="leave --partial out for this file")


def is_keras_json(raw: Any) -> bool:
    """A Keras `model.to_json()` document (a JSON file that is not an archcalc spec)."""
    return isinstance(raw, dict) and "class_name" in raw and "config" in raw and "layers" not in raw


def from_keras_json(raw: dict, display: str, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    module = importlib.import_module("archcalc.importers.keras_import")
    return module.from_json(raw, display, input_shape)


# ---- weights ------------------------------------------------------------------------------
def has_weights(ref: str) -> bool:
    return Path(ref).suffix.lower() in WEIGHTS


def _module(table: dict[str, str], ref: Any) -> Any:
    return importlib.import_module(f"archcalc.importers.{table[Path(ref).suffix.lower()]}")


def weights_requirement(ref: str) -> str | None:
    """The package the file's weights need that is not installed (h5py for .keras), or None."""
    need = getattr(_module(WEIGHTS, ref), "REQUIRES", None)
    return need if need and importlib.util.find_spec(need) is None else None


def read_with_weights(path: Path, display: str, input_shape: tuple[int, ...] | None,
                      **options: Any) -> tuple[dict[str, Any], dict]:
    """(raw spec mapping, weights table) of a model file that holds its weights."""
    return _module(IMPORTERS, path).read_with_weights(path, display, input_shape, **options)


def load_with_weights(ref: str, input_shape: tuple[int, ...] | None):
    """(Network, weights table) of the model file `ref`; errors name the file as written."""
    from archcalc.errors import ArchcalcError
    from archcalc.spec import from_dict
    from archcalc.spec.load import locate
    path = locate(ref)
    try:
        raw, table = read_with_weights(path, ref, input_shape)
        return from_dict(raw, file=ref, input_shape=input_shape), table
    except ArchcalcError as exc:
        raise exc.located(file=ref) from None


def state_for(model: Any, table: dict, display: str) -> dict:
    """The state `model` loads from the table of the file `display` (its format's checks)."""
    return _module(WEIGHTS, display).state_for(model, table, display)


def dims_text(dims: Any) -> str:
    """A shape for an error line: 16×3×3×3, or 'scalar'."""
    return "×".join(map(str, dims)) or "scalar"


def match_state(model: Any, table: dict, display: str, *, holder: str, fix_missing: str,
                shape_of: Any, fix_shape: str) -> dict:
    """{"<layer>.<param>": array} of a built executor Model from a format's table
    ({layer name: {param: (where the file keeps it, array)}}): every array the model has
    must be there with the model's shape, else one line naming the layer (and where the
    file keeps the array) and nothing is loaded. The format gives its words: `holder` (the
    file, as "the file holds no ..." says it), `shape_of(source, dims)` (the mismatch's
    opening words) and the two fixes."""
    state: dict = {}
    for layer_name, layer in model.layers.items():
        wanted = [*layer.param_names, *layer.buffer_names]
        if not wanted:
            continue
        arrays = table.get(layer.spec.name or layer_name, {})
        for short in wanted:
            key = layer.key(short)
            need = model.params.get(key, model.buffers.get(key))
            if short not in arrays:
                raise ArchcalcError(f"weights: {holder} holds no {short} for layer "
                                    f"'{echo(layer_name, 60)}'", file=display, fix=fix_missing)
            source, value = arrays[short]
            if tuple(value.shape) != tuple(need.shape):
                raise ArchcalcError(
                    f"weights: {shape_of(source, dims_text(value.shape))}, layer "
                    f"'{echo(layer_name, 60)}' needs its {short} as {dims_text(need.shape)}",
                    file=display, fix=fix_shape)
            state[key] = value
    return state


def imported_weights(network: Any, table: dict, display: str, dtype: str = "float32") -> dict:
    """The state the executor loads for `network` (built here to learn every shape)."""
    from archcalc.nn.network import build
    return state_for(build(network, dtype=dtype), table, display)


def write_weights_npz(path: Any, weights: dict, source: str | None = None) -> None:
    """Write {"<layer>.<param>": array} as a weights .npz the executor loads (archcalc's
    format 2, atomically: an interrupted write leaves the old file or the new one)."""
    from archcalc.nn.weights import write_archive
    meta = {"kind": "weights"}
    if source:
        meta["source"] = source
    write_archive(path, {"model": dict(weights)}, meta)
