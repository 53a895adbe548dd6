"""The on-disk format of weights and checkpoints (.npz), and atomic writes.

Format 2 (written since issue 8) keeps every name out of the archive's keys, so no layer
name, however it is spelled ('@optimizer/m/conv1', '@best', 'header', a name with '/' or
a NUL), can collide with another array or with the format's own records:

    header             a JSON string: {"format": 2, "parts": {"model": [name, ...],
                       "optimizer": [...], "best": [...]}, "meta": {...}}
    model/0, model/1   the arrays, in the order of header["parts"]["model"]
    optimizer/0, ...   likewise for each other part

Format 1 (older files) is still read: a model's arrays under their own names, and in a
checkpoint "@optimizer/<key>", "@best/<name>" and a JSON "@meta" string.

Reading is bounded before any array is read: every member's .npy header is checked against
its size in the archive (a header may not promise more than the member holds), and the
arrays' total must stay under a limit (ARCHCALC_MAX_CHECKPOINT_BYTES), so a small hostile
file cannot make archcalc allocate gigabytes.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.fileio import refuse_special, umask, write_error
from archcalc.limits import MAX_NPZ_RATIO, echo, limit, raise_hint

FORMAT = 2
HEADER = "header"
PARTS = ("model", "optimizer", "best")
_REWRITE = "point at a checkpoint or weights .npz written by archcalc"


# --- writing -------------------------------------------------------------------------------

def atomic_write(path, write: Callable[[Any], None]) -> None:
    """Write through a temp file in the same directory, fsync, then os.replace: a process
    killed at any moment leaves either the previous file or the new one, whole. An OSError
    (full disk, read-only file system, /proc) is one line naming `path`, never the temp file."""
    path = Path(path)
    refuse_special(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~umask())            # mkstemp makes 0600; be a normal file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _kill_window("before_rename", path)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:                          # never written, or already gone
                pass
    _kill_window("after_rename", path)


_writes = {"before_rename": 0, "after_rename": 0}


def _kill_window(phase: str, path: Path) -> None:
    """For tests/test_faults.py only, and inert unless ARCHCALC_TEST_KILL_WINDOW is set to
    "PHASE,K,MARKER": at the K-th write of a checkpoint.npz, at PHASE (before_rename: the temp
    file is complete and synced; after_rename: the new checkpoint is in place, history.json
    not yet), create the file MARKER and pause, so that the test's SIGKILL lands exactly
    there. It changes nothing that is written."""
    spec = os.environ.get("ARCHCALC_TEST_KILL_WINDOW")
    if not spec or path.name != "checkpoint.npz":
        return
    want, k, marker = spec.split(",", 2)
    if want != phase:
        return
    _writes[phase] += 1
    if _writes[phase] == int(k):
        Path(marker).touch()
        import time
        time.sleep(5.0)                              # the test kills well before this ends




def write_archive(path, parts: dict[str, dict[str, np.ndarray]], meta: dict[str, Any]) -> None:
    """Write `parts` ({"model": {name: array}, "optimizer": ..., "best": ...}) and `meta`
    (JSON-able) to `path` in format 2, atomically."""
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for part, table in parts.items():
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}")
        names[part] = list(table)
        for i, name in enumerate(names[part]):
            arrays[f"{part}/{i}"] = np.asarray(table[name])
    header = {"format": FORMAT, "parts": names, "meta": meta}
    arrays[HEADER] = np.array(json.dumps(header))
    atomic_write(Path(path), lambda fh: np.savez(fh, **arrays))


def save_weights(model, path) -> None:
    """Write every param and buffer of `model` to `path` (format 2, atomically)."""
    write_archive(path, {"model": {**model.params, **model.buffers}}, {"kind": "weights"})


# --- reading -------------------------------------------------------------------------------

def read_archive(path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """({"model": ..., "optimizer": ..., "best": ...}, meta) of a weights or checkpoint file,
    format 2 or 1. ArchcalcError naming the file when it is missing, not a regular file,
    not an .npz, damaged, or larger than the limit."""
    path = Path(path)
    if not path.exists():
        raise ArchcalcError(f"no such weights file: {path}", fix="check the path")
    if not path.is_file():
        raise ArchcalcError("not a regular file", file=str(path),
                            fix="point at a .npz file written by archcalc")
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise ArchcalcError(f"cannot read it: {exc.strerror or exc}", file=str(path),
                            fix="check its permissions") from None
    if magic == b"\x93NUMPY":
        raise ArchcalcError("holds a single array (.npy), not named weights (.npz)",
                            file=str(path), fix=_REWRITE)
    arrays = _read_arrays(path)
    if HEADER in arrays:
        return _split_v2(path, arrays)
    return _split_v1(path, arrays)


def _damaged(path: Path, what: str) -> ArchcalcError:
    return ArchcalcError(f"not a readable .npz file ({echo(what)})", file=str(path),
                         fix=_REWRITE)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            _check_count(path, len(members))
            _check_sizes(path, zf, members)
            return {i.filename[:-4] if i.filename.endswith(".npy") else i.filename:
                    _read_member(path, zf, i) for i in members}
    except zipfile.BadZipFile as exc:
        raise _damaged(path, str(exc)) from None
    except (OSError, EOFError, ValueError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; OSError/EOFError: cut short on disk
        raise _damaged(path, str(exc) or type(exc).__name__) from None


def _check_count(path: Path, count: int) -> None:
    """Each member costs a header read: an archive of 60,000 tiny members would take seconds
    before its sizes say anything, so the count is bounded first."""
    cap = limit("MAX_CHECKPOINT_MEMBERS")
    if count > cap:
        raise ArchcalcError(f"it holds {count:,} arrays, more than the limit of {cap:,}",
                            file=str(path), fix=raise_hint("MAX_CHECKPOINT_MEMBERS"))


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(fh, max_header_size=10_000)
    return shape, dtype


def _check_sizes(path: Path, zf: zipfile.ZipFile, members) -> None:
    """Before reading any data: every member is an .npy whose header promises no more bytes
    than the member holds, and all of them together stay under the limit."""
    total = 0
    for info in members:
        with zf.open(info) as fh:
            try:
                shape, dtype = _npy_header(fh)
            except ValueError as exc:
                raise _damaged(path, f"member '{info.filename}': {exc}") from None
        if dtype.hasobject:
            raise _damaged(path, f"member '{info.filename}' holds Python objects")
        need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if need > info.file_size:
            raise _damaged(path, f"member '{info.filename}' promises {need:,} bytes and "
                                 f"holds {info.file_size:,}")
        total += info.file_size
    on_disk = path.stat().st_size
    if total > MAX_NPZ_RATIO * on_disk + 1024 * 1024:
        raise _damaged(path, f"its arrays would take {total:,} bytes from a {on_disk:,}-byte "
                             f"file, more than {MAX_NPZ_RATIO}× (a compression bomb?)")
    cap = limit("MAX_CHECKPOINT_BYTES")
    if total > cap:
        raise ArchcalcError(f"its arrays hold {total:,} bytes, over the limit of {cap:,}",
                            file=str(path), fix=raise_hint("MAX_CHECKPOINT_BYTES"))


def _read_member(path: Path, zf: zipfile.ZipFile, info) -> np.ndarray:
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _split_v2(path: Path, arrays: dict[str, np.ndarray]):
    try:
        header = json.loads(str(arrays.pop(HEADER)))
        assert isinstance(header, dict) and header.get("format") == FORMAT
        names, meta = header["parts"], header.get("meta", {})
        assert isinstance(names, dict) and isinstance(meta, dict)
        parts: dict[str, dict[str, np.ndarray]] = {p: {} for p in PARTS}
        for part, listed in names.items():
            assert part in PARTS and isinstance(listed, list)
            for i, name in enumerate(listed):
                assert isinstance(name, str)
                parts[part][name] = arrays.pop(f"{part}/{i}")
        assert not arrays                           # nothing the header does not list
    except (ValueError, AssertionError, KeyError, TypeError, RecursionError, MemoryError):
        # RecursionError: JSON nested 100,000 deep; MemoryError: a header that inflates
        raise ArchcalcError("its header does not match its arrays (damaged, or not written "
                            "by archcalc)", file=str(path), fix=_REWRITE) from None
    return parts, meta


def _split_v1(path: Path, arrays: dict[str, np.ndarray]):
    """Format 1: plain names, "@optimizer/", "@best/", "@meta" (files written before the
    namespaced format)."""
    meta: dict[str, Any] = {}
    if "@meta" in arrays:
        try:
            meta = json.loads(str(arrays.pop("@meta")))
            assert isinstance(meta, dict)
        except (ValueError, AssertionError, RecursionError, MemoryError):
            raise ArchcalcError("the checkpoint's meta record is damaged", file=str(path),
                                fix="train again, or use an older checkpoint") from None
    parts: dict[str, dict[str, np.ndarray]] = {p: {} for p in PARTS}
    for key, arr in arrays.items():
        head, sep, rest = key.partition("/")
        if sep and head in ("@optimizer", "@best"):
            parts[head[1:]][rest] = arr
        else:
            parts["model"][key] = arr
    return parts, meta


def read_npz(path) -> dict[str, np.ndarray]:
    """The model's arrays of a weights or checkpoint file (a checkpoint's last epoch)."""
    return read_archive(path)[0]["model"]


def load_weights(model, path, *, strict: bool = False) -> None:
    """Load params and buffers saved by save_weights (or a checkpoint); ArchcalcError names
    the first missing or misshapen array (nothing is changed then)."""
    model.load_state_dict(read_npz(path), strict=strict, source=str(path))
