"""Image classification data for training: the embedded digits, IDX files, Fashion-MNIST.

Every source gives grayscale images (N, h, w) of small integers and labels (N,). They are
fitted once to the spec's input shape by a deterministic transform (`fit_images`) and kept
as integers; a batch becomes floats in [0, 1] only when it is drawn (`Split.x`), so 60,000
Fashion-MNIST images cost 61 MB, not 245.

Sources (the `--data` option):
    digits              8×8 UCI optical digits shipped in archcalc/data (1,797 images, 0..16)
    fashion-mnist[:DIR] Fashion-MNIST IDX files in DIR, by default Debian's
                        /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)
    idx:DIR             any MNIST-family directory with the four standard IDX files
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import struct
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.limits import echo, limit, raise_hint

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = {  # role -> standard file stem (LeCun's MNIST names)
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "IDX format")
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLIT_SEED = 0  # splits never depend on --seed, so every run is scored on the same test set


@dataclass
class Split:
    """Images already fitted to the spec: (N, *input_shape) integers, and (N,) labels."""

    images: np.ndarray
    labels: np.ndarray
    scale: float            # images * scale lies in [0, 1]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def x(self, idx: np.ndarray | slice = slice(None), dtype: str = "float32") -> np.ndarray:
        """The selected images as floats in [0, 1]: (n, *input_shape). Float64 pixels are
        scaled before they are cast (1e300 is not a float32, 1e300/1e300 is); integers are
        exact in float32 and are cast first (half the memory of a float64 copy)."""
        images = self.images[idx]
        if images.dtype.kind == "f" and images.dtype.itemsize > np.dtype(dtype).itemsize:
            with np.errstate(under="ignore"):      # tiny pixels of a 1e300-scaled image
                return (images * self.scale).astype(dtype)
        return images.astype(dtype) * np.asarray(self.scale, dtype=dtype)

    def take(self, idx: np.ndarray) -> "Split":
        return Split(self.images[idx], self.labels[idx], self.scale)


@dataclass
class Data:
    name: str
    train: Split
    val: Split
    test: Split
    classes: int
    class_names: list[str]
    image_size: tuple[int, int]   # (h, w) of the source images
    transform: str                # how they were fitted to the spec, printed at start
    # augmentation this source trains best with unless told otherwise (TrainConfig fields)
    augment: dict = field(default_factory=dict)


# --- sources -----------------------------------------------------------------------------

def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits: images (1797, 8, 8) uint8 in 0..16, labels (1797,) uint8."""
    ref = resources.files("archcalc.data").joinpath("digits.npz")
    with ref.open("rb") as fh, np.load(fh) as z:
        return z["images"], z["labels"]


# --- IDX files -----------------------------------------------------------------------------
#
# An IDX file is untrusted input: its header alone decides how much memory the data takes, and
# a .gz file may inflate a thousandfold. So every header is read and checked (magic, type,
# dimensions, size against the limits and against the file) before a byte of data is
# allocated, and a .gz file is inflated in bounded pieces, never past what its header promised
# plus one byte (the byte that tells "trailing data" from "exactly right").

IDX_TYPE_NAMES = {0x08: "ubyte", 0x09: "sbyte", 0x0B: "short", 0x0C: "int", 0x0D: "float",
                  0x0E: "double"}
CHUNK = 1 << 20            # bytes read (or inflated) per step
GZIP_RATIO_FREE = 1 << 20  # promises this small are never refused for their ratio
REDOWNLOAD = "the file is damaged or not what it claims to be: download or write it again"


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header declares: the value type, the dimensions, the header's length."""

    code: int
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(IDX_TYPES[self.code])

    @property
    def offset(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def nbytes(self) -> int:
        """Bytes of data the header promises (Python ints: no overflow, however large)."""
        return math.prod(self.dims) * self.dtype.itemsize

    def describe(self) -> str:
        """'60,000×28×28 ubyte values (47,040,000 bytes)'."""
        return (f"{'×'.join(f'{d:,}' for d in self.dims)} {IDX_TYPE_NAMES[self.code]} values "
                f"({self.nbytes:,} bytes)")


def _error(path: Path, message: str, fix: str = REDOWNLOAD) -> ArchcalcError:
    return ArchcalcError(message, file=str(path), fix=fix)  # render() escapes it


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turns what opening, reading or inflating `path` can raise into one line."""
    try:
        yield
    except PermissionError:
        raise _error(path, "permission denied", "give read permission (chmod +r), or copy "
                     "the files somewhere readable") from None
    except FileNotFoundError:
        raise _error(path, "no such file", "check the path") from None
    except EOFError:   # gzip: the compressed stream stops before its end marker
        raise _error(path, "truncated gzip file: the compressed stream ends before its "
                     "end-of-stream marker") from None
    except (gzip.BadGzipFile, zlib.error) as exc:   # CRC, length, bad block, bad header
        raise _error(path, f"corrupt gzip file ({echo(exc, 80)})") from None
    except MemoryError:
        raise _error(path, "not enough memory to hold its data",
                     "free memory, or use a smaller dataset") from None
    except OSError as exc:
        raise _error(path, f"cannot read the file: {exc.strerror or exc}",
                     "check the file and its disk") from None


def _open_idx(path: Path, stack: ExitStack) -> tuple[BinaryIO, int, bool]:
    """(a stream of the IDX bytes, the size on disk, whether it is gzipped)."""
    info = path.stat()                  # stat, not open: opening a FIFO would block
    if stat.S_ISDIR(info.st_mode):
        raise _error(path, "is a directory, not an IDX file",
                     "remove or rename it; the data directory needs the four IDX files")
    if not stat.S_ISREG(info.st_mode):
        raise _error(path, "not a regular file (a device, FIFO or socket)",
                     "give a regular IDX file")
    fh = stack.enter_context(open(path, "rb"))
    gz = fh.read(2) == b"\x1f\x8b"      # gzip magic, whatever the suffix
    fh.seek(0)
    stream = stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb")) if gz else fh
    return stream, info.st_size, gz


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes (fewer only at the end of the data)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(min(n - got, CHUNK))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _parse_header(stream: BinaryIO, path: Path) -> IdxHeader:
    head = _read_exactly(stream, 4)
    if len(head) < 4 or head[:2] != b"\0\0":
        raise _error(path, f"not an IDX file: it starts with bytes {head.hex(' ') or '(none)'}, "
                     "an IDX file starts with 00 00 TYPE NDIM",
                     "give the MNIST-format files, e.g. train-images-idx3-ubyte")
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} {n}" for c, n in IDX_TYPE_NAMES.items())
        raise _error(path, f"unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise _error(path, "the IDX header declares 0 dimensions")
    raw = _read_exactly(stream, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise _error(path, f"truncated IDX file: it ends inside its header ({ndim} dimensions "
                     f"need {4 + 4 * ndim} bytes, the file holds {4 + len(raw)})")
    dims = struct.unpack(f">{ndim}i", raw)   # IDX sizes are signed big-endian int32
    for axis, size in enumerate(dims):
        if size < 1:
            raise _error(path, f"the IDX header's dimension {axis} is {size:,} (dimensions "
                         f"{'×'.join(map(str, dims))}); every dimension must be at least 1")
    return IdxHeader(code, dims)


def _check_promise(header: IdxHeader, path: Path, disk: int, gz: bool) -> None:
    """The header's promise against the limits and, for a plain file, the file's size."""
    cap = limit("MAX_DATA_BYTES")
    if header.nbytes > cap:
        raise _error(path, f"its header promises {header.describe()}, more than the limit of "
                     f"{cap:,} bytes (MAX_DATA_BYTES)", raise_hint("MAX_DATA_BYTES"))
    if gz:
        ratio = limit("MAX_GZIP_RATIO")
        if header.nbytes > max(GZIP_RATIO_FREE, ratio * disk):
            raise _error(path, f"its header promises {header.describe()} from {disk:,} "
                         f"compressed bytes, more than {ratio:,} times the file (a gzip bomb?)",
                         raise_hint("MAX_GZIP_RATIO"))
        return
    held = disk - header.offset
    if held < header.nbytes:
        raise _error(path, f"truncated IDX file: its header promises {header.describe()}, "
                     f"the file holds {held:,} after its {header.offset}-byte header")
    if held > header.nbytes:
        raise _error(path, f"the IDX file is longer than its header promises: "
                     f"{header.describe()}, the file holds {held:,} after its "
                     f"{header.offset}-byte header ({held - header.nbytes:,} trailing bytes)")


def _read_values(stream: BinaryIO, header: IdxHeader, path: Path, gz: bool) -> np.ndarray:
    """The data, read in pieces into one array of exactly the promised size, then one more
    byte asked for: there must be none."""
    out = np.empty(header.nbytes, np.uint8)
    view, got = memoryview(out), 0
    data = "the decompressed data" if gz else "the file's data"
    while got < header.nbytes:
        n = stream.readinto(view[got:got + CHUNK])
        if not n:
            raise _error(path, f"truncated IDX file: its header promises {header.describe()}, "
                         f"{data} holds {got:,}")
        got += n
    if stream.read(1):
        raise _error(path, f"{data} is longer than its header promises: "
                     f"{header.describe()}; reading stopped there")
    return out.view(header.dtype).reshape(header.dims)


def read_idx_header(path: Path) -> IdxHeader:
    """The checked header of an IDX file (gzipped or not); reads no more than the header."""
    path = Path(path)
    with _reading(path), ExitStack() as stack:
        stream, disk, gz = _open_idx(path, stack)
        header = _parse_header(stream, path)
        _check_promise(header, path, disk, gz)
        return header


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array of its declared type and dimensions.

    Layout: 2 zero bytes, a type byte, the number of dimensions d, then d big-endian int32
    sizes, then the values, big-endian, row-major. The header is checked before anything is
    allocated; the data must be exactly as long as the header promises.
    """
    path = Path(path)
    with _reading(path), ExitStack() as stack:
        stream, disk, gz = _open_idx(path, stack)
        header = _parse_header(stream, path)
        _check_promise(header, path, disk, gz)
        return _read_values(stream, header, path, gz)


def find_idx_file(directory: Path, stem: str) -> Path:
    """stem, stem.gz, or the dotted variant (train-images.idx3-ubyte) inside directory.

    Any existing entry counts (a directory or FIFO of that name is then refused by
    read_idx with what it is, rather than reported missing)."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        # lexists: a symlink loop or a dangling link is there, and read_idx says what it is
        if os.path.lexists(directory / name):
            return directory / name
    raise ArchcalcError(f"missing IDX file {echo(directory / stem)} (or .gz)",
                        fix="the directory needs train-images-idx3-ubyte, train-labels-idx1-"
                            "ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")


def _check_directory(directory: Path) -> None:
    where = echo(directory)
    need = "give a directory holding the four MNIST-format IDX files (idx:DIR)"
    try:
        if not os.path.lexists(directory):
            raise ArchcalcError(f"no such data directory: {where}", fix=need)
        try:
            os.stat(directory)
        except OSError as exc:          # a symlink loop (ELOOP), a dangling link (ENOENT)
            if isinstance(exc, PermissionError):
                raise
            raise ArchcalcError(f"cannot open the data directory: {exc.strerror or exc}",
                                file=where, fix="point --data at a real directory") from None
        if not directory.is_dir():
            raise ArchcalcError("the data source is a file, not a directory", file=where,
                                fix=need)
        os.listdir(directory)   # so that an unreadable directory is said as such
    except PermissionError:
        raise ArchcalcError("permission denied on the data directory", file=where,
                            fix="give read and execute permission (chmod +rx)") from None


def _check_headers(headers: dict[str, IdxHeader], paths: dict[str, Path]) -> None:
    """Images N×H×W, labels N of an integer type, and the same N: from the headers alone."""
    for role, header in headers.items():
        want = 1 if role.endswith("labels") else 3
        if len(header.dims) != want:
            shape = "N labels" if want == 1 else "N images of H×W"
            raise _error(paths[role], f"the header declares {len(header.dims)} dimension(s) "
                         f"({header.describe()}); {role.replace('_', ' ')} need {want}: {shape}",
                         f"write the {role.split('_')[1]} as an idx{want} file of {shape}")
        if role.endswith("labels") and header.dtype.kind == "f":
            # Refused by type, not by value: a float label file is a regression target or a
            # mistake, and whether it loads must not depend on whether every value is whole.
            raise _error(paths[role], f"labels must be integers (class numbers), the header "
                         f"declares {IDX_TYPE_NAMES[header.code]} values (type 0x"
                         f"{header.code:02X})", "write the labels as ubyte (type 0x08), e.g. "
                         "labels.astype(numpy.uint8)")
    for part in ("train", "test"):
        n_img, n_lab = headers[f"{part}_images"].dims[0], headers[f"{part}_labels"].dims[0]
        if n_img != n_lab:
            raise _error(paths[f"{part}_labels"], f"{n_lab:,} labels for {n_img:,} images in "
                         f"{echo(paths[part + '_images'].name, 80)}",
                         "give one label per image (the files of one part must match)")


def _check_values(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    """Labels are class numbers 0 ≤ y < MAX_CLASSES; pixels are finite and ≥ 0."""
    cap = limit("MAX_CLASSES")
    for role, values in arrays.items():
        if role.endswith("labels"):
            bad = np.flatnonzero((values < 0) | (values >= cap))
            if bad.size:
                i = int(bad[0])
                what = "negative" if values[i] < 0 else f"not below the limit of {cap:,} classes"
                raise _error(paths[role], f"label {int(values[i]):,} (label #{i:,}) is {what}; "
                             "labels are class numbers 0, 1, 2, …",
                             "number the classes from 0" if values[i] < 0
                             else raise_hint("MAX_CLASSES"))
        elif values.dtype.kind == "f" and not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values.reshape(-1)))[0])
            raise _error(paths[role], f"pixel value #{i:,} is {values.reshape(-1)[i]}",
                         "images must hold finite numbers")
        elif values.dtype.kind in "if" and values.min() < 0:
            raise _error(paths[role], f"negative pixel value {values.min()}",
                         "images must hold values >= 0 (they are scaled by their maximum)")


def load_idx_dir(directory: Path, input_shape: tuple[int, ...] | None = None, *,
                 source: str = "", spec: str = "the spec") -> dict[str, np.ndarray]:
    """The four standard IDX files of directory: {role: array} (see IDX_FILES).

    All four headers are checked against each other, and (given input_shape) the images'
    size against the spec's input and the fitted arrays' size against the limit, before
    any data is read: the headers decide all of it."""
    _check_directory(directory)
    paths = {role: find_idx_file(directory, stem) for role, stem in IDX_FILES.items()}
    headers = {role: read_idx_header(path) for role, path in paths.items()}
    _check_headers(headers, paths)
    if input_shape is not None:
        for part in ("train", "test"):
            n, h, w = headers[f"{part}_images"].dims
            plan_fit(h, w, tuple(input_shape), source=source or str(directory), spec=spec)
            _check_fitted_size(n, tuple(input_shape), headers[f"{part}_images"].dtype.itemsize,
                               source or str(directory), spec)
    arrays = {role: read_idx(path) for role, path in paths.items()}
    _check_values(arrays, paths)
    return arrays


# --- fitting images to the spec ----------------------------------------------------------

def fit_images(images: np.ndarray, input_shape: tuple[int, ...], *, source: str,
               spec: str) -> tuple[np.ndarray, str]:
    """(N, h, w) grayscale → (N, *input_shape) by a deterministic transform, and its text.

    For C×H×W: nearest upscaling by the largest whole factor k with k·h ≤ H and k·w ≤ W
    (each pixel repeated k×k times), then zero padding centred to H×W (the extra pixel of
    an odd margin goes after). 8×8 → 32×32 is k = 4; 28×28 → 32×32 is 2 pixels of padding
    on every side, as LeCun et al. 1998 padded MNIST for LeNet-5. A flat input of h·w
    values takes the image flattened; of s² values, the image fitted to s×s then flattened.
    A sequence input [T, F] reads the image row by row (see _fit_sequence).
    """
    n, h, w = images.shape
    _check_fitted_size(n, input_shape, images.dtype.itemsize, source, spec)
    k = plan_fit(h, w, input_shape, source=source, spec=spec)
    if len(input_shape) == 2:
        return _fit_sequence(images, input_shape, source=source, spec=spec)
    if len(input_shape) == 1:
        (size,) = input_shape
        if size == h * w:
            return images.reshape(n, size), f"{h}×{w} images flattened to {size} values"
        side = int(round(size ** 0.5))
        fitted, text = fit_images(images, (1, side, side), source=source, spec=spec)
        return fitted.reshape(n, size), text + f", flattened to {size} values"
    c, hh, ww = input_shape
    out = images if k == 1 else images.repeat(k, axis=1).repeat(k, axis=2)
    top, left = (hh - k * h) // 2, (ww - k * w) // 2
    out = np.pad(out, ((0, 0), (top, hh - k * h - top), (left, ww - k * w - left)))
    steps = []
    if k > 1:
        steps.append(f"nearest upscaling ×{k} to {k * h}×{k * w}")
    if (hh, ww) != (k * h, k * w):
        steps.append(f"zero padding (top {top}, bottom {hh - k * h - top}, left {left}, "
                     f"right {ww - k * w - left}) to {hh}×{ww}")
    return out[:, None], f"{h}×{w} images, " + (", ".join(steps) or "used as they are")


def _fit_sequence(images: np.ndarray, input_shape: tuple[int, ...], *, source: str,
                  spec: str) -> tuple[np.ndarray, str]:
    """(N, h, w) → (N, T, F): the image fitted to a 1×T×F map by the C×H×W rule (an h×w
    image into [h, w] is used as it is), then read row by row, top to bottom: step t is
    row t, its F features that row's pixels from left to right. This is what `to_sequence`
    with axis height gives for a 1×T×F map, and how the 8×8 digits become 8 steps of 8."""
    steps, features = input_shape
    fitted, text = fit_images(images, (1, steps, features), source=source, spec=spec)
    return fitted[:, 0], (f"{text}, read row by row as {steps} steps of {features} "
                          "features (step t: row t, left to right)")


def _plan_sequence(h: int, w: int, input_shape: tuple[int, ...], *, source: str,
                   spec: str) -> int:
    """plan_fit for a [T, F] input: the image must fit a 1×T×F map; the error names the
    sequence and the input that reads these images row by row."""
    steps, features = input_shape
    if steps < h or features < w:
        raise ArchcalcError(
            f"dataset '{source}' has {h:,}×{w:,} images; spec '{spec}' takes sequences of "
            f"{steps:,} steps × {features:,} features, and an image is read row by row (one "
            f"step per row): {h:,} rows of {w:,} pixels do not fit",
            fix=f"give the spec input [{h}, {w}] ({h} steps of {w} features), or train it on "
                f"images of at most {steps}×{features} pixels")
    return plan_fit(h, w, (1, steps, features), source=source, spec=spec)


def plan_fit(h: int, w: int, input_shape: tuple[int, ...], *, source: str,
             spec: str) -> int:
    """Whether h×w grayscale images fit input_shape (see fit_images), from the sizes alone:
    the upscaling factor k (0 for a flat input), or an ArchcalcError."""
    source = echo(source, 80)
    if len(input_shape) == 2:
        return _plan_sequence(h, w, input_shape, source=source, spec=spec)
    if len(input_shape) == 1:
        (size,) = input_shape
        side = int(round(size ** 0.5))
        if size == h * w:
            return 0
        if side * side == size and side >= min(h, w):
            return plan_fit(h, w, (1, side, side), source=source, spec=spec)
        raise ArchcalcError(f"dataset '{source}' has {h}×{w} images; spec '{spec}' takes a "
                            f"flat input of {size} values", fix=f"give the spec input [{h * w}]")
    if len(input_shape) != 3:
        raise ArchcalcError(f"dataset '{source}' has {h}×{w} images; spec '{spec}' takes "
                            f"{'×'.join(map(str, input_shape))}",
                            fix=f"use a spec with input [1, {h}, {w}]")
    c, hh, ww = input_shape
    if c != 1:
        raise ArchcalcError(f"dataset '{source}' has 1-channel (grayscale) {h}×{w} images; "
                            f"spec '{spec}' takes {c}×{hh}×{ww}",
                            fix=f"use a spec with input [1, {hh}, {ww}]")
    k = min(hh // h, ww // w)
    if k == 0:
        raise ArchcalcError(f"dataset '{source}' has {h:,}×{w:,} images, larger than spec "
                            f"'{spec}''s input 1×{hh}×{ww}",
                            fix=f"use a spec with input of at least [1, {h}, {w}]")
    return k


def _check_fitted_size(n: int, input_shape: tuple[int, ...], itemsize: int, source: str,
                       spec: str) -> None:
    """Upscaling repeats pixels: 60,000 tiny images fitted to a 1×2000×2000 input would take
    240 GB. The fitted array is bounded like a data file, before it is made."""
    need, cap = n * math.prod(input_shape) * itemsize, limit("MAX_DATA_BYTES")
    if need > cap:
        raise ArchcalcError(f"dataset '{echo(source, 80)}': {n:,} image{'s' * (n != 1)} fitted to spec "
                            f"'{echo(spec, 80)}''s input {'×'.join(map(str, input_shape))} "
                            f"take {need:,} bytes, more than the limit of {cap:,} "
                            "(MAX_DATA_BYTES)", fix="use a spec with a smaller input, or "
                            + raise_hint("MAX_DATA_BYTES"))


# --- splits ------------------------------------------------------------------------------

def split_indices(n: int, fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n): (the rest, round(fraction·n) held out), each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    held = held_count(n, fraction)
    return np.sort(order[held:]), np.sort(order[:held])


def held_count(n: int, fraction: float) -> int:
    """How many of n images a validation split of `fraction` holds out."""
    return int(round(fraction * n))


class Source(str):
    """A --data value whose form parse_source has checked (the text itself)."""


SOURCE_FIX = "--data digits, fashion-mnist, fashion-mnist:DIR or idx:DIR"
FASHION_NAMES = ("fashion-mnist", "fashion_mnist", "fashion")  # --data spellings
_FASHION = FASHION_NAMES


def parse_source(text: str) -> Source:
    """Check the form of a --data value without reading anything: digits, fashion-mnist,
    fashion-mnist:DIR or idx:DIR (a usage error, before any data is loaded)."""
    name, _, arg = str(text).partition(":")
    name = name.strip().lower()
    if (name == "digits" and not arg) or name in _FASHION or (name == "idx" and arg):
        return Source(text)
    if name == "idx":
        raise ArchcalcError("--data idx needs a directory: idx:DIR", fix="e.g. --data idx:mnist")
    raise ArchcalcError(f"unknown data source '{echo(text, 80)}'", fix=SOURCE_FIX)


def load(source: str, input_shape: tuple[int, ...], *, spec: str = "the spec",
         val_fraction: float = 0.1, test_fraction: float = 0.2,
         before_fit: Callable[[int, int, str], None] | None = None) -> Data:
    """Load a `--data` source fitted to input_shape, split into train / val / test.

    before_fit(classes, training images, dataset name, fitted_bytes), if given, is called
    once the labels
    are read and before the images are fitted (upscaling can take far more memory than the
    files): the CLI refuses there a spec whose output size is not the number of classes, or
    a run whose memory forecast is over the budget.

    digits has no official split: test_fraction of it is held out for test. IDX sources
    keep their own test set. val_fraction of what remains for training is held out for
    validation (early stopping, curves). Every split is drawn with SPLIT_SEED.
    """
    parse_source(source)
    name, _, arg = source.partition(":")
    name = name.strip().lower()
    if name == "digits":
        images, labels = load_digits()
        scale, names = 1 / 16, [str(d) for d in range(10)]
        rest, test = split_indices(len(labels), test_fraction)
        parts = {"train_images": images[rest], "train_labels": labels[rest],
                 "test_images": images[test], "test_labels": labels[test]}
        label = "digits"
    elif name in _FASHION:
        directory = Path(arg) if arg else FASHION_DIR
        if not directory.is_dir():
            raise ArchcalcError(f"no Fashion-MNIST directory at {echo(directory)}",
                                fix="apt-get install dataset-fashion-mnist, or --data "
                                    "fashion-mnist:DIR with the four IDX files")
        parts = load_idx_dir(directory, input_shape, source="fashion-mnist", spec=spec)
        scale, names, label = 1 / 255, FASHION_CLASSES, "fashion-mnist"
    else:
        label = f"idx:{arg}"
        parts = load_idx_dir(Path(arg), input_shape, source=label, spec=spec)
        scale, names = _scale_of(parts["train_images"]), None
    data = _assemble(label, parts, scale, names, input_shape, spec, val_fraction,
                     before_fit)
    if label == "digits" and len(input_shape) == 3:
        # the 8×8 digits are few (1,294 to train on): shifts of up to 2 pixels of the
        # fitted image are what lifts LeNet-5 from ~97.9% to ~98.9% test accuracy
        data.augment = {"translate": 2}
    return data


def _scale_of(images: np.ndarray) -> float:
    """1/255 for 8-bit images, 1/max otherwise (so that values land in [0, 1])."""
    top = float(images.max()) if images.size else 1.0
    return 1 / 255 if images.dtype.itemsize == 1 and top > 16 else 1 / max(top, 1.0)


def fitted_bytes(parts: dict[str, np.ndarray], input_shape: tuple[int, ...]) -> int:
    """The memory the images take while they are fitted and split: every image (train,
    validation and test) at input_shape in its stored dtype, twice (the fitted arrays and
    the train/validation copies taken from them), known from the shapes before any pixel
    is fitted."""
    count = sum(len(parts[f"{p}_labels"]) for p in ("train", "test"))
    itemsize = np.dtype(parts["train_images"].dtype).itemsize
    return 2 * count * math.prod(input_shape) * itemsize


def _assemble(label: str, parts: dict[str, np.ndarray], scale: float,
              names: list[str] | None, input_shape: tuple[int, ...], spec: str,
              val_fraction: float, before_fit=None) -> Data:
    all_labels = np.concatenate([parts["train_labels"], parts["test_labels"]])
    if all_labels.size == 0:
        raise ArchcalcError(f"dataset '{label}' is empty", fix="give a dataset with images")
    if all_labels.min() < 0:
        raise ArchcalcError(f"dataset '{label}' has a negative label ({all_labels.min()})")
    classes = int(all_labels.max()) + 1
    if classes < 2:
        # one class: every prediction is right, the accuracy means nothing, and a one-output
        # network's 0/1 predictions name a class the confusion matrix does not have
        raise ArchcalcError(f"dataset '{echo(label, 80)}' has one class (every label is 0); "
                            "classification needs at least 2", fix="give a dataset whose "
                            "labels name at least two classes (0, 1, ...)")
    held_out = held_count(len(parts["train_labels"]), val_fraction)
    if held_out >= len(parts["train_labels"]):
        n = len(parts["train_labels"])
        raise ArchcalcError(f"--val-split {val_fraction:g} holds out {held_out:,} of the "
                            f"{n:,} training image(s) of '{echo(label, 80)}', leaving none to "
                            "train on", fix="a smaller --val-split (0 for none), or more "
                                            "training images")
    if before_fit is not None:
        before_fit(classes, len(parts["train_labels"]) - held_out, label,
                   fitted_bytes(parts, input_shape))
    fitted = {}
    for part in ("train", "test"):
        fitted[part], transform = fit_images(np.asarray(parts[f"{part}_images"]), input_shape,
                                             source=label, spec=spec)
    train = Split(fitted["train"], parts["train_labels"].astype(np.int64), scale)
    test = Split(fitted["test"], parts["test_labels"].astype(np.int64), scale)
    keep, held = split_indices(len(train), val_fraction)
    h, w = parts["train_images"].shape[1:]
    return Data(label, train.take(keep), train.take(held), test, classes,
                names or [str(c) for c in range(classes)], (h, w),
                f"{transform}; pixels ÷{1 / scale:.6g} to 0..1")


# --- batches and augmentation ------------------------------------------------------------

def batch_indices(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled pass over range(n) in batches; batch_size 0 (or ≥ n) is one full batch.
    A last batch of one example (n = k·batch + 1) is folded into the batch before it: a
    one-example step is not what a batch ≥ 2 asked for, and batch norm cannot normalise it
    (PyTorch users drop it with drop_last; folding keeps every example in every epoch)."""
    order = rng.permutation(n)
    size = n if batch_size <= 0 or batch_size >= n else batch_size
    parts = [order[i:i + size] for i in range(0, n, size)]
    if size >= 2 and len(parts) >= 2 and parts[-1].size == 1:
        parts[-2:] = [order[n - size - 1:]]
    return parts


def translate(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image (N, C, H, W) by a random (dy, dx) in [-max_shift, max_shift]²,
    filling the uncovered border with zeros. Returns a new array."""
    n, _, h, w = x.shape
    k = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (k, k), (k, k)))
    shifts = rng.integers(-k, k + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(shifts):
        # the window starting at (k - dy, k - dx) of the padded image is the image moved by (dy, dx)
        out[i] = padded[i, :, k - dy:k - dy + h, k - dx:k - dx + w]
    return out


def hflip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image (N, C, H, W) left-right with probability p. Returns a new array."""
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out
