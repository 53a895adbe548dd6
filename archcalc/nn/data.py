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
import zlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from archcalc.errors import ArchcalcError

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
        """The selected images as floats in [0, 1]: (n, *input_shape)."""
        return self.images[idx].astype(dtype) * np.asarray(self.scale, dtype=dtype)

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


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array of its declared type and dimensions.

    Layout: 2 zero bytes, a type byte, the number of dimensions d, then d big-endian int32
    sizes, then the values, big-endian, row-major.
    """
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":                       # gzip magic, whatever the suffix
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise ArchcalcError(f"cannot read the file: {exc.strerror or exc}", file=str(path),
                            fix="check the file, or download it again") from None
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise ArchcalcError("truncated or corrupt gzip file", file=str(path),
                            fix="download it again") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise ArchcalcError("not an IDX file (bad magic number)", file=str(path),
                            fix="give the MNIST-format files, e.g. train-images-idx3-ubyte")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ArchcalcError("truncated IDX file: it ends inside its header", file=str(path),
                            fix="download it again")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">i4", ndim, 4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - head < need:
        raise ArchcalcError(
            f"truncated IDX file: its header promises {'×'.join(map(str, dims))} values "
            f"({need} bytes), the file holds {len(raw) - head}", file=str(path),
            fix="download it again")
    return np.frombuffer(raw, dtype, need // dtype.itemsize, head).reshape(dims)


def find_idx_file(directory: Path, stem: str) -> Path:
    """stem, stem.gz, or the dotted variant (train-images.idx3-ubyte) inside directory."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise ArchcalcError(f"missing IDX file {directory / stem} (or .gz)",
                        fix="the directory needs train-images-idx3-ubyte, train-labels-idx1-"
                            "ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")


def load_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    """The four standard IDX files of directory: {role: array} (see IDX_FILES)."""
    if not directory.is_dir():
        raise ArchcalcError(f"no such data directory: {directory}",
                            fix="give a directory holding the four MNIST-format IDX files")
    arrays: dict[str, np.ndarray] = {}
    paths = {}
    for role, stem in IDX_FILES.items():
        paths[role] = find_idx_file(directory, stem)
        arrays[role] = read_idx(paths[role])
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ArchcalcError(
                f"{paths[part + '_images']} holds images of shape {images.shape} but "
                f"{paths[part + '_labels']} holds labels of shape {labels.shape}",
                fix="need N×H×W images and N labels")
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
    """
    n, h, w = images.shape
    if len(input_shape) == 1:
        (size,) = input_shape
        side = int(round(size ** 0.5))
        if size == h * w:
            return images.reshape(n, size), f"{h}×{w} images flattened to {size} values"
        if side * side == size and side >= min(h, w):
            fitted, text = fit_images(images, (1, side, side), source=source, spec=spec)
            return fitted.reshape(n, size), text + f", flattened to {size} values"
        raise ArchcalcError(f"dataset '{source}' has {h}×{w} images; spec '{spec}' takes a "
                            f"flat input of {size} values", fix=f"give the spec input [{h * w}]")
    c, hh, ww = input_shape
    if c != 1:
        raise ArchcalcError(f"dataset '{source}' has 1-channel (grayscale) {h}×{w} images; "
                            f"spec '{spec}' takes {c}×{hh}×{ww}",
                            fix=f"use a spec with input [1, {hh}, {ww}]")
    k = min(hh // h, ww // w)
    if k == 0:
        raise ArchcalcError(f"dataset '{source}' has {h}×{w} images, larger than spec "
                            f"'{spec}''s input 1×{hh}×{ww}",
                            fix=f"use a spec with input of at least [1, {h}, {w}]")
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


# --- splits ------------------------------------------------------------------------------

def split_indices(n: int, fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n): (the rest, round(fraction·n) held out), each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    held = int(round(fraction * n))
    return np.sort(order[held:]), np.sort(order[:held])


def load(source: str, input_shape: tuple[int, ...], *, spec: str = "the spec",
         val_fraction: float = 0.1, test_fraction: float = 0.2) -> Data:
    """Load a `--data` source fitted to input_shape, split into train / val / test.

    digits has no official split: test_fraction of it is held out for test. IDX sources
    keep their own test set. val_fraction of what remains for training is held out for
    validation (early stopping, curves). Every split is drawn with SPLIT_SEED.
    """
    name, _, arg = source.partition(":")
    name = name.strip().lower()
    if name == "digits" and not arg:
        images, labels = load_digits()
        scale, names = 1 / 16, [str(d) for d in range(10)]
        rest, test = split_indices(len(labels), test_fraction)
        parts = {"train_images": images[rest], "train_labels": labels[rest],
                 "test_images": images[test], "test_labels": labels[test]}
        label = "digits"
    elif name in ("fashion-mnist", "fashion_mnist", "fashion"):
        directory = Path(arg) if arg else FASHION_DIR
        if not directory.is_dir():
            raise ArchcalcError(f"no Fashion-MNIST directory at {directory}",
                                fix="apt-get install dataset-fashion-mnist, or --data "
                                    "fashion-mnist:DIR with the four IDX files")
        parts, scale, names, label = load_idx_dir(directory), 1 / 255, FASHION_CLASSES, "fashion-mnist"
    elif name == "idx" and arg:
        parts = load_idx_dir(Path(arg))
        scale, names, label = _scale_of(parts["train_images"]), None, f"idx:{arg}"
    else:
        raise ArchcalcError(f"unknown data source '{source}'",
                            fix="--data digits, fashion-mnist, fashion-mnist:DIR or idx:DIR")
    data = _assemble(label, parts, scale, names, input_shape, spec, val_fraction)
    if label == "digits" and len(input_shape) == 3:
        # the 8×8 digits are few (1,294 to train on): shifts of up to 2 pixels of the
        # fitted image are what lifts LeNet-5 from ~97.9% to ~98.9% test accuracy
        data.augment = {"translate": 2}
    return data


def _scale_of(images: np.ndarray) -> float:
    """1/255 for 8-bit images, 1/max otherwise (so that values land in [0, 1])."""
    top = float(images.max()) if images.size else 1.0
    return 1 / 255 if images.dtype.itemsize == 1 and top > 16 else 1 / max(top, 1.0)


def _assemble(label: str, parts: dict[str, np.ndarray], scale: float,
              names: list[str] | None, input_shape: tuple[int, ...], spec: str,
              val_fraction: float) -> Data:
    all_labels = np.concatenate([parts["train_labels"], parts["test_labels"]])
    if all_labels.size == 0:
        raise ArchcalcError(f"dataset '{label}' is empty", fix="give a dataset with images")
    if all_labels.min() < 0:
        raise ArchcalcError(f"dataset '{label}' has a negative label ({all_labels.min()})")
    classes = int(all_labels.max()) + 1
    fitted = {}
    for part in ("train", "test"):
        fitted[part], transform = fit_images(np.asarray(parts[f"{part}_images"]), input_shape,
                                             source=label, spec=spec)
    train = Split(fitted["train"], parts["train_labels"].astype(np.int64), scale)
    test = Split(fitted["test"], parts["test_labels"].astype(np.int64), scale)
    keep, held = split_indices(len(train), val_fraction)
    h, w = parts["train_images"].shape[1:]
    denominator = round(1 / scale)
    return Data(label, train.take(keep), train.take(held), test, classes,
                names or [str(c) for c in range(classes)], (h, w),
                f"{transform}; pixels ÷{denominator} to 0..1")


# --- batches and augmentation ------------------------------------------------------------

def batch_indices(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled pass over range(n) in batches; batch_size 0 (or ≥ n) is one full batch."""
    order = rng.permutation(n)
    size = n if batch_size <= 0 or batch_size >= n else batch_size
    return [order[i:i + size] for i in range(0, n, size)]


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
