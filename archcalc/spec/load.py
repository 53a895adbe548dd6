"""Load a spec: a bundled name (vgg16) or a path to a YAML/JSON file → a resolved Network."""

from __future__ import annotations

import os
import re
import stat
from importlib import resources
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from archcalc.errors import ArchcalcError, SpecError
from archcalc.importers import (IMPORTERS, check_partial, from_keras_json, is_keras_json,
                                is_model_file, read_model)
from archcalc.limits import MAX_SIZE, echo, limit, max_depth, raise_hint, stack_room
from archcalc.spec.recipe import Recipe, TrainDefaults, inline_schema, train_error
from archcalc.spec.resolve import Resolver, nearest
from archcalc.spec.text import check_text
from archcalc.spec.tree import Network
from archcalc.spec.yamlio import brief, line_of, parse_text

_SHAPE_RE = re.compile(r"^\s*\d+(\s*[x×,]\s*\d+)*\s*$")


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' (or 3×224×224, 3,224,224) → (3, 224, 224); a flat input (or T token ids)
    is one number, a sequence of T steps of F features two: '28x28' → (28, 28)."""
    if len(str(text)) > 100 or not _SHAPE_RE.match(str(text)):
        raise ArchcalcError(f"bad input shape '{echo(text, 40)}'",
                            fix="write CxHxW, e.g. --input 3x224x224")
    shape = tuple(int(v) for v in re.split(r"[x×,]", str(text).replace(" ", "")))
    if len(shape) not in (1, 2, 3):
        raise ArchcalcError(f"bad input shape '{text}': {len(shape)} sizes, need C×H×W "
                            "(3 sizes), T×F (2, a sequence) or N (1, a flat input or T token "
                            "ids)", fix="e.g. --input 3x224x224")
    if min(shape) <= 0:
        raise ArchcalcError(f"bad input shape '{text}': every size must be at least 1",
                            fix="e.g. --input 3x224x224")
    if max(shape) > MAX_SIZE:
        raise ArchcalcError(f"bad input shape '{text}': {max(shape):,} is more than "
                            f"{MAX_SIZE:,} (10⁹), the largest size archcalc takes",
                            fix="give each of C, H and W at most 1000000000")
    return shape




class NetworkSpec(BaseModel):
    """The top level of a spec file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    source: str | None = None
    description: str | None = None
    # What `archcalc list` groups by: classic, inception, residual, dense, mobile, segmentation ...
    family: str | None = Field(None, max_length=40)
    input: tuple[Annotated[int, Strict(), Field(gt=0, le=MAX_SIZE)], ...]
    separator: Literal[".", "/"] = "."
    init: Literal["he", "xavier", "lecun"] | None = None  # the executor's default initialiser
    blocks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    layers: list[Any] = Field(min_length=1)
    # `archcalc train`'s defaults for this network (archcalc.spec.recipe); its schema is
    # written inline, so that the top level's schema needs no $defs of its own
    train: TrainDefaults | None = Field(None, json_schema_extra=inline_schema)

    @field_validator("input", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_shape(value)
            except ArchcalcError as exc:
                raise ValueError(exc.message) from None
        if isinstance(value, list) and len(value) not in (1, 2, 3):
            raise ValueError("input must be [C, H, W], [T, F] (a sequence of T steps of F "
                             "features) or [N] (a flat input, or T token ids)")
        return value


_TOP_FIXES = {
    "input": "input: [C, H, W] with positive integers, e.g. [3, 224, 224]; [T, F] for a "
             "sequence, [T] for token ids",
    "layers": "layers: a list of at least one layer",
    "blocks": "blocks: {name: {args: [...], layers: [...]}}",
    "separator": "separator: '.' or '/'",
    "init": "init: he, xavier or lecun",
    "name": "name: a string",
    "train": "train: {epochs: 10, lr: 0.003, ...}, the defaults of archcalc train",
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
    if not ref.strip():  # Path('') is '.', the current directory: say what is really wrong
        raise ArchcalcError("the spec argument is empty",
                            fix="give a bundled name (see 'archcalc list') or a .yaml/.json file")
    path = FsPath(ref)
    if (path.suffix.lower() in (".yaml", ".yml", ".json", *IMPORTERS) or os.sep in ref
            or path.exists()):
        _regular_file(path, ref)
        return path
    candidate = bundled_dir() / f"{ref}.yaml"
    if candidate.exists():
        return candidate
    names = bundled_names()
    hint = nearest(ref, names)
    raise ArchcalcError(f"unknown spec '{echo(ref)}': neither a file nor a bundled name",
                        fix=(f"did you mean '{hint}'? " if hint else "")
                        + "bundled: " + ", ".join(names))


_NOT_FILES = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
              (stat.S_ISSOCK, "a socket"))


def _regular_file(path: FsPath, ref: str) -> os.stat_result:
    """Stat `path` (never open it): a device or a pipe would read forever or block."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ArchcalcError(f"no such file: {echo(ref)}", fix="check the path") from None
    except OSError as exc:
        raise ArchcalcError(f"cannot read {echo(ref)}: {exc.strerror or exc}",
                            fix="check the path and its permissions") from None
    _check_kind(info.st_mode, ref)
    return info


def _check_kind(mode: int, ref: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _NOT_FILES if test(mode)), "not a regular file")
    raise ArchcalcError(f"is {kind}, not a spec file", file=ref,
                        fix="name a .yaml or .json file")


def open_bounded(path: FsPath, ref: str, cap_name: str = "MAX_SPEC_BYTES"):
    """The open file, refused first by size (at most the limit `cap_name`: MAX_SPEC_BYTES, or
    MAX_MODEL_BYTES for an importer) and by kind. A reader that seeks in it (a zip archive
    reads only its directory and the members it wants) takes it as it is; read_bounded reads
    it whole."""
    cap = limit(cap_name)
    info = _regular_file(path, ref)
    if info.st_size > cap:
        raise _too_large(info.st_size, cap, cap_name)
    try:
        # O_NONBLOCK: if the path became a FIFO since the stat, opening it does not block;
        # fstat of the opened file then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ArchcalcError(f"cannot read {echo(ref)}: {exc.strerror or exc}",
                            fix="check the file's permissions") from None
    handle = os.fdopen(fd, "rb")
    try:
        _check_kind(os.fstat(fd).st_mode, ref)
    except ArchcalcError:
        handle.close()
        raise
    return handle


def read_bounded(path: FsPath, ref: str, cap_name: str = "MAX_SPEC_BYTES") -> bytes:
    """The file's bytes (open_bounded's checks), reading no more than the limit plus one byte
    in case the size lied (a file still growing)."""
    cap = limit(cap_name)
    with open_bounded(path, ref, cap_name) as handle:
        try:
            data = handle.read(cap + 1)
        except OSError as exc:
            raise ArchcalcError(f"cannot read {echo(ref)}: {exc.strerror or exc}",
                                fix="check the file") from None
    if len(data) > cap:
        raise _too_large(None, cap, cap_name)
    return data


def _too_large(size: int | None, cap: int, cap_name: str = "MAX_SPEC_BYTES") -> ArchcalcError:
    what = f"{size:,} bytes" if size is not None else "larger than that"
    whose = "a spec" if cap_name == "MAX_SPEC_BYTES" else "an imported model file"
    return SpecError(f"the file is {what}; {whose} may have at most {cap:,} bytes",
                     fix=raise_hint(cap_name))


def decode(data: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or one line saying where it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # the byte-order mark Windows tools write
            raise SpecError("UTF-16 text, not UTF-8", line=line,
                            fix="save the file as UTF-8") from None
        raise SpecError(f"not UTF-8 text at byte {exc.start:,} (0x{data[exc.start]:02x})",
                        line=line, fix="save the file as UTF-8") from None


def load(ref: str, input_shape: tuple[int, ...] | None = None, *,
         partial: bool = False) -> Network:
    """Load, validate and resolve a spec. Every error names the file (and line). partial: an
    .onnx graph is cut before its first unsupported node (its `source` says where)."""
    for name in ("MAX_SPEC_BYTES", "MAX_SPEC_NODES", "MAX_SPEC_DEPTH", "MAX_LAYERS",
                 "MAX_NAME_CHARS", "MAX_UNROLLED"):
        limit(name)  # a bad ARCHCALC_* value is the environment's mistake, not the file's
    max_depth()
    if partial:
        check_partial(ref)
    path = locate(ref)
    # Errors name the file as the user wrote it; a bundled spec by its file name.
    display = ref if FsPath(ref).exists() else path.name  # error lines escape it (render)
    try:
        if is_model_file(path):           # ONNX, Keras: the importer gives the raw mapping
            return from_dict(read_model(path, display, input_shape, partial), file=display,
                             input_shape=input_shape)
        text = decode(read_bounded(path, ref))
        return loads(text, file=display, json_mode=path.suffix.lower() == ".json",
                     input_shape=input_shape)
    except ArchcalcError as exc:
        raise exc.located(file=display) from None


def loads(text: str, *, file: str | None = None, json_mode: bool = False,
          input_shape: tuple[int, ...] | None = None) -> Network:
    cap = limit("MAX_SPEC_BYTES")
    if len(text) > cap:
        raise _too_large(len(text), cap).located(file=file)
    if not text.strip():
        raise SpecError("the file is empty", file=file,
                        fix="a spec has name:, input: and layers:; see README, Spec language")
    raw = parse_text(text, json_mode=json_mode)
    if json_mode and is_keras_json(raw):  # a Keras model.to_json(), not an archcalc spec
        raw = from_keras_json(raw, file or "<json>", input_shape)
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
        key_line = (getattr(raw, "key_lines", None) or {}).get(field) or line_of(raw)
        if field == "train":                  # one line naming train.KEY and its line
            raise train_error(exc, raw.get("train"), file, key_line) from None
        if err["type"] == "extra_forbidden":
            hint = nearest(field, list(NetworkSpec.model_fields))
            raise SpecError(f"unknown top-level key '{echo(field)}'", file=file, line=key_line,
                            fix=f"did you mean '{hint}'?" if hint else
                            "top-level keys: " + ", ".join(NetworkSpec.model_fields)) from None
        if err["type"] == "missing":
            raise SpecError(f"missing top-level key '{field}'", file=file, line=line_of(raw),
                            fix=f"add '{field}:'") from None
        got = brief(err.get("input"))
        msg = err["msg"][:1].lower() + err["msg"][1:]  # keep C×H×W in our own messages
        raise SpecError(f"'{field}': {msg} (got {got})", file=file,
                        line=key_line, fix=_TOP_FIXES.get(field, "see README, Spec language")) from None
    key_lines = getattr(raw, "key_lines", None) or {}
    for key, prose in (("name", False), ("source", False), ("description", True),
                       ("family", False)):
        try:
            check_text(getattr(spec, key), f"the spec's {key}", line=key_lines.get(key),
                       prose=prose)
        except ArchcalcError as exc:
            raise exc.located(file=file) from None
    # The raw mappings keep their line numbers (pydantic copies them into plain dicts).
    try:
        with stack_room():
            resolver = Resolver(raw.get("blocks") or {}, spec.separator)
            root = resolver.resolve(raw["layers"])
    except ArchcalcError as exc:
        raise exc.located(file=file) from None
    except RecursionError:  # only past the depth limits' own checks: a bug, but named
        raise SpecError("the spec nests too deeply for archcalc to follow", file=file,
                        fix="flatten the nesting of blocks, repeats and branches") from None
    shape = tuple(input_shape) if input_shape is not None else tuple(spec.input)
    recipe = (None if spec.train is None else
              Recipe.of(spec.train, raw.get("train"), key_lines.get("train")))
    return Network(spec.name, shape, root, spec.separator, spec.source, file, resolver.lines,
                   spec.init, spec.family, recipe)
