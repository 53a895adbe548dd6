"""Importers: foreign model files become the same raw spec mapping a YAML file parses to.

An importer reads a model file (bounded by MAX_MODEL_BYTES before any parsing) and returns a
plain mapping with `name`, `source`, `input` and `layers` in the spec language, so that every
command that takes SPEC works on it and `archcalc import` can write it out as YAML. Importers
never see the calculator (DESIGN.md: they sit at the edges).

Each importer module has `read(path, display, input_shape) -> dict`; the registry below maps a
file suffix to its module, imported only when such a file is named (their optional
dependencies load only then).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# file suffix → importer module (archcalc.importers.<module>)
IMPORTERS: dict[str, str] = {".onnx": "onnx_import", ".keras": "keras_import"}


def is_model_file(path: Path) -> bool:
    return path.suffix.lower() in IMPORTERS


def read_model(path: Path, display: str, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """The raw spec mapping of a model file, by its suffix's importer."""
    module = importlib.import_module(f"archcalc.importers.{IMPORTERS[path.suffix.lower()]}")
    return module.read(path, display, input_shape)


def is_keras_json(raw: Any) -> bool:
    """A Keras `model.to_json()` document (a JSON file that is not an archcalc spec)."""
    return isinstance(raw, dict) and "class_name" in raw and "config" in raw and "layers" not in raw


def from_keras_json(raw: dict, display: str, input_shape: tuple[int, ...] | None) -> dict[str, Any]:
    module = importlib.import_module("archcalc.importers.keras_import")
    return module.from_json(raw, display, input_shape)
