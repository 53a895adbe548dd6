"""Save and load a model's params and buffers as .npz (names as in model.state_dict())."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from archcalc.errors import ArchcalcError


def save_weights(model, path) -> None:
    """Write every param and buffer to `path` atomically: a temp file in the same
    directory, then os.replace, so a run killed mid-write leaves the old file intact."""
    path = Path(path)
    arrays = {**model.params, **model.buffers}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; ArchcalcError naming the file (and the array) when it
    is missing, not an .npz, or damaged."""
    path = Path(path)
    if not path.exists():
        raise ArchcalcError(f"no such weights file: {path}", fix="check the path")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ArchcalcError(f"{path} is not a readable .npz weights file ({exc})",
                            fix="save the weights again with archcalc") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ArchcalcError(f"{path} holds a single array, not named weights (.npz)",
                            fix="save the weights again with archcalc")
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                raise ArchcalcError(f"{path}: array '{name}' is damaged ({exc})",
                                    fix="save the weights again with archcalc") from None
    return arrays


def load_weights(model, path, *, strict: bool = False) -> None:
    """Load params and buffers saved by save_weights; ArchcalcError names the first missing
    or misshapen array (nothing is changed then)."""
    model.load_state_dict(read_npz(path), strict=strict, source=str(path))
