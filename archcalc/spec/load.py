"""Load a spec: a bundled name (vgg16) or a path to a YAML/JSON file → a resolved Network."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from archcalc.errors import ArchcalcError, SpecError
from archcalc.spec.resolve import Resolver, nearest
from archcalc.spec.tree import Network
from archcalc.spec.yamlio import line_of, parse_text

_SHAPE_RE = re.compile(r"^\s*\d+(\s*[x×,]\s*\d+)*\s*$")


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' (or 3×224×224, 3,224,224) → (3, 224, 224); a flat input is one number."""
    if len(str(text)) > 100 or not _SHAPE_RE.match(str(text)):
        raise ArchcalcError(f"bad input shape '{str(text)[:40]}'",
                            fix="write CxHxW, e.g. --input 3x224x224")
    shape = tuple(int(v) for v in re.split(r"[x×,]", str(text).replace(" ", "")))
    if len(shape) not in (1, 3) or min(shape) <= 0 or max(shape) > MAX_SIZE:
        raise ArchcalcError(f"bad input shape '{text}': need C×H×W (or N) with every size > 0",
                            fix="e.g. --input 3x224x224")
    return shape


MAX_SIZE = 10**9  # any larger C, H or W is a typo; it also keeps every product exact and fast


class NetworkSpec(BaseModel):
    """The top level of a spec file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    source: str | None = None
    description: str | None = None
    input: tuple[Annotated[int, Strict(), Field(gt=0, le=MAX_SIZE)], ...]
    separator: Literal[".", "/"] = "."
    init: Literal["he", "xavier", "lecun"] | None = None  # the executor's default initialiser
    blocks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    layers: list[Any] = Field(min_length=1)

    @field_validator("input", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_shape(value)
            except ArchcalcError as exc:
                raise ValueError(exc.message) from None
        if isinstance(value, list) and len(value) not in (1, 3):
            raise ValueError("input must be [C, H, W] (or [N] for a flat input)")
        return value


_TOP_FIXES = {
    "input": "input: [C, H, W] with positive integers, e.g. [3, 224, 224]",
    "layers": "layers: a list of at least one layer",
    "blocks": "blocks: {name: {args: [...], layers: [...]}}",
    "separator": "separator: '.' or '/'",
    "init": "init: he, xavier or lecun",
    "name": "name: a string",
}


def bundled_dir() -> FsPath:
    """Where the bundled specs are: the installed archcalc.specs package, or ../specs
    next to the source tree when archcalc runs from a checkout."""
    try:
        return FsPath(str(resources.files("archcalc.specs")))
    except ModuleNotFoundError:
        return FsPath(__file__).resolve().parents[2] / "specs"


def bundled_names() -> list[str]:
    """Bundled spec names in natural order (resnet18 before resnet101)."""
    def key(name: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return sorted((p.stem for p in bundled_dir().glob("*.yaml")), key=key)


def locate(ref: str) -> FsPath:
    """A bundled name or a file path → the file. Raises ArchcalcError with a suggestion."""
    path = FsPath(ref)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or os.sep in ref or path.exists():
        if not path.exists():
            raise ArchcalcError(f"no such file: {ref}", fix="check the path")
        if path.is_dir():
            raise ArchcalcError(f"{ref} is a directory, not a spec file",
                                fix="name a .yaml or .json file")
        return path
    candidate = bundled_dir() / f"{ref}.yaml"
    if candidate.exists():
        return candidate
    names = bundled_names()
    hint = nearest(ref, names)
    raise ArchcalcError(f"unknown spec '{ref}': neither a file nor a bundled name",
                        fix=(f"did you mean '{hint}'? " if hint else "")
                        + "bundled: " + ", ".join(names))


def load(ref: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """Load, validate and resolve a spec. Every error names the file (and line)."""
    path = locate(ref)
    # Errors name the file as the user wrote it; a bundled spec by its file name.
    display = ref if FsPath(ref).exists() else path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchcalcError(f"cannot read {path}: {exc}", file=display) from None
    try:
        return loads(text, file=display, json_mode=path.suffix.lower() == ".json",
                     input_shape=input_shape)
    except ArchcalcError as exc:
        raise exc.located(file=display) from None


def loads(text: str, *, file: str | None = None, json_mode: bool = False,
          input_shape: tuple[int, ...] | None = None) -> Network:
    raw = parse_text(text, json_mode=json_mode)
    return from_dict(raw, file=file, input_shape=input_shape)


def from_dict(raw: Any, *, file: str | None = None,
              input_shape: tuple[int, ...] | None = None) -> Network:
    if not isinstance(raw, dict):
        raise SpecError("a spec is a mapping with name, input and layers", file=file,
                        line=line_of(raw), fix="start the file with 'name: ...'")
    try:
        spec = NetworkSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key shows up twice (unknown 'inputs', missing 'input'): report the typo.
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        field = str(err["loc"][0]) if err["loc"] else ""
        node = raw.get(field) if field in raw else raw
        key_line = (getattr(raw, "key_lines", None) or {}).get(field) or line_of(raw)
        if err["type"] == "extra_forbidden":
            hint = nearest(field, list(NetworkSpec.model_fields))
            raise SpecError(f"unknown top-level key '{field}'", file=file, line=key_line,
                            fix=f"did you mean '{hint}'?" if hint else
                            "top-level keys: " + ", ".join(NetworkSpec.model_fields)) from None
        if err["type"] == "missing":
            raise SpecError(f"missing top-level key '{field}'", file=file, line=line_of(raw),
                            fix=f"add '{field}:'") from None
        got = repr(err.get("input"))
        raise SpecError(f"'{field}': {err['msg'].lower()} (got {got[:60]})", file=file,
                        line=key_line, fix=_TOP_FIXES.get(field, "see README, Spec language")) from None
    # The raw mappings keep their line numbers (pydantic copies them into plain dicts).
    try:
        resolver = Resolver(raw.get("blocks") or {}, spec.separator)
        root = resolver.resolve(raw["layers"])
    except ArchcalcError as exc:
        raise exc.located(file=file) from None
    shape = tuple(input_shape) if input_shape is not None else tuple(spec.input)
    return Network(spec.name, shape, root, spec.separator, spec.source, file, resolver.lines,
                   spec.init)
