"""Catalogue: IDX data files that lie, are cut, inflate, or are not files at all (issue 8,
class 4). `archcalc train SPEC --data idx:d` reads the four MNIST-format files of d/."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from catalogue.runner import Case, check_case, measure, run_case

SPEC = "name: tiny\ninput: [16]\nlayers:\n  - dense: 10\n"   # 4×4 images, 10 classes
TRAIN = ["train", "tiny.yaml", "--data", "idx:d", "--epochs", "1", "--out", "run"]
IMAGES, LABELS = "d/train-images-idx3-ubyte", "d/train-labels-idx1-ubyte"
REDOWNLOAD = "(fix: the file is damaged or not what it claims to be: download or write it again)"


def idx(values, dims=None, code: int = 0x08) -> bytes:
    """IDX bytes: 00 00 TYPE NDIM, the dims as big-endian int32, then the values."""
    arr = np.asarray(values)
    dims = arr.shape if dims is None else dims
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims)
    return head + arr.astype(dtype).tobytes()


def dataset(**replace: bytes) -> dict[str, bytes | str]:
    """A valid 20 + 10 image dataset of 4×4 images in d/, with some files replaced:
    train_images=..., test_labels=... (None removes the file)."""
    rng = np.random.default_rng(0)
    files = {"train_images": idx(rng.integers(0, 256, (20, 4, 4))),
             "train_labels": idx(np.arange(20) % 10),
             "test_images": idx(rng.integers(0, 256, (10, 4, 4))),
             "test_labels": idx(np.arange(10))}
    files.update(replace)
    names = {"train_images": IMAGES, "train_labels": LABELS,
             "test_images": "d/t10k-images-idx3-ubyte", "test_labels": "d/t10k-labels-idx1-ubyte"}
    out: dict[str, bytes | str] = {"tiny.yaml": SPEC}
    out.update({names[role]: content for role, content in files.items() if content is not None})
    return out


def gz(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=9, mtime=0)


def gz_bomb(head: bytes, zeros_mib: int) -> bytes:
    """A valid gzip file of `head` followed by zeros_mib MiB of zeros, built in a fraction of a
    second: 1 MiB of zeros is deflated once at level 9, ending on a full flush (a byte-aligned
    piece that refers to nothing before it), and that piece is repeated."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(1 << 20)
    piece = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(zeros_mib):
        crc = zlib.crc32(zeros, crc)
    size = (len(head) + (zeros_mib << 20)) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff" + first + piece * zeros_mib + deflate.flush()
            + struct.pack("<II", crc, size))


def header(dims, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims)


GOOD_IMAGES = idx(np.random.default_rng(0).integers(0, 256, (20, 4, 4)))
GOOD_GZ = gz(GOOD_IMAGES)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _mkfifo(where: Path) -> None:
    os.mkfifo(where / IMAGES)


def _subdir(where: Path) -> None:
    (where / IMAGES).mkdir(parents=True)


CASES = [
    # headers that lie about what they are
    Case("data_bad_magic", TRAIN,
         "error: d/train-images-idx3-ubyte: not an IDX file: it starts with bytes 50 4b 03 "
         "04, an IDX file starts with 00 00 TYPE NDIM (fix: give the MNIST-format files, e.g. "
         "train-images-idx3-ubyte)", files=dataset(train_images=b"PK\x03\x04hello")),
    Case("data_empty_file", TRAIN,
         "error: d/train-images-idx3-ubyte: not an IDX file: it starts with bytes (none), an "
         "IDX file starts with 00 00 TYPE NDIM (fix: give the MNIST-format files, e.g. "
         "train-images-idx3-ubyte)", files=dataset(train_images=b"")),
    Case("data_unknown_type", TRAIN,
         "error: d/train-images-idx3-ubyte: unknown IDX type code 0x07 (known: 0x08 ubyte, "
         "0x09 sbyte, 0x0B short, 0x0C int, 0x0D float, 0x0E double) (fix: the file is "
         "damaged or not what it claims to be: download or write it again)",
         files=dataset(train_images=header((20, 4, 4), 0x07))),
    Case("data_zero_dims", TRAIN,
         "error: d/train-images-idx3-ubyte: the IDX header declares 0 dimensions (fix: the "
         "file is damaged or not what it claims to be: download or write it again)",
         files=dataset(train_images=b"\0\0\x08\0")),
    Case("data_header_cut", TRAIN,
         "error: d/train-images-idx3-ubyte: truncated IDX file: it ends inside its header (3 "
         "dimensions need 16 bytes, the file holds 9) (fix: the file is damaged or not what "
         "it claims to be: download or write it again)",
         files=dataset(train_images=header((20, 4, 4))[:9])),
    # dimensions: negative, zero, overflowing (the issue: a count of -1 trained with exit 0)
    Case("data_negative_count", TRAIN,
         "error: d/train-images-idx3-ubyte: the IDX header's dimension 0 is -1 (dimensions "
         "-1×4×4); every dimension must be at least 1 (fix: the file is damaged or not what "
         "it claims to be: download or write it again)",
         files=dataset(train_images=header((-1, 4, 4)))),
    Case("data_zero_count", TRAIN,
         "error: d/train-labels-idx1-ubyte: the IDX header's dimension 0 is 0 (dimensions 0); "
         "every dimension must be at least 1 (fix: the file is damaged or not what it claims "
         "to be: download or write it again)", files=dataset(train_labels=header((0,)))),
    Case("data_zero_width", TRAIN,
         "error: d/train-images-idx3-ubyte: the IDX header's dimension 2 is 0 (dimensions "
         "20×4×0); every dimension must be at least 1 (fix: the file is damaged or not what "
         "it claims to be: download or write it again)",
         files=dataset(train_images=header((20, 4, 0)))),
    Case("data_int32_overflow", TRAIN,
         "error: d/train-images-idx3-ubyte: its header promises "
         "2,147,483,647×2,147,483,647×2,147,483,647 double values "
         "(79,228,162,403,583,873,202,826,248,184 bytes), more than the limit of "
         "4,294,967,296 bytes (MAX_DATA_BYTES) (fix: if the input is legitimate, raise the "
         "limit: ARCHCALC_MAX_DATA_BYTES=<larger number>)",
         files=dataset(train_images=header((2**31 - 1,) * 3, 0x0E))),
    Case("data_over_limit", TRAIN,
         "error: d/train-images-idx3-ubyte: its header promises 20×4×4 ubyte values (320 "
         "bytes), more than the limit of 100 bytes (MAX_DATA_BYTES) (fix: if the input is "
         "legitimate, raise the limit: ARCHCALC_MAX_DATA_BYTES=<larger number>)",
         files=dataset(), env={"ARCHCALC_MAX_DATA_BYTES": "100"}),
    Case("data_limit_env_not_a_number", TRAIN,
         "error: ARCHCALC_MAX_DATA_BYTES='lots' is not a positive integer (fix: unset it "
         "(default 4,294,967,296: bytes of one decompressed IDX data file) or give a number)",
         files=dataset(),
         env={"ARCHCALC_MAX_DATA_BYTES": "lots"}),
    # the header against the data
    Case("data_truncated", TRAIN,
         "error: d/train-images-idx3-ubyte: truncated IDX file: its header promises 20×4×4 "
         "ubyte values (320 bytes), the file holds 310 after its 16-byte header (fix: the "
         "file is damaged or not what it claims to be: download or write it again)",
         files=dataset(train_images=GOOD_IMAGES[:-10])),
    Case("data_trailing_bytes", TRAIN,
         "error: d/train-images-idx3-ubyte: the IDX file is longer than its header promises: "
         "20×4×4 ubyte values (320 bytes), the file holds 327 after its 16-byte header (7 "
         "trailing bytes) (fix: the file is damaged or not what it claims to be: download or "
         "write it again)", files=dataset(train_images=GOOD_IMAGES + bytes(7))),
    Case("data_gz_truncated_values", TRAIN,
         "error: d/train-images-idx3-ubyte: truncated IDX file: its header promises 20×4×4 "
         "ubyte values (320 bytes), the decompressed data holds 310 (fix: the file is damaged "
         "or not what it claims to be: download or write it again)",
         files=dataset(train_images=gz(GOOD_IMAGES[:-10]))),
    Case("data_gz_trailing_values", TRAIN,
         "error: d/train-images-idx3-ubyte: the decompressed data is longer than its header "
         "promises: 20×4×4 ubyte values (320 bytes); reading stopped there (fix: the file is "
         "damaged or not what it claims to be: download or write it again)",
         files=dataset(train_images=gz(GOOD_IMAGES + bytes(7)))),
    Case("data_gz_cut_stream", TRAIN,
         "error: d/train-images-idx3-ubyte: truncated gzip file: the compressed stream ends "
         "before its end-of-stream marker (fix: the file is damaged or not what it claims to "
         "be: download or write it again)", files=dataset(train_images=GOOD_GZ[:-20])),
    Case("data_gz_crc", TRAIN,
         "error: d/train-images-idx3-ubyte: corrupt gzip file (CRC check failed 0x7ba0d873 != "
         "0x7b5fd873) (fix: the file is damaged or not what it claims to be: download or "
         "write it again)", files=dataset(train_images=_flip(GOOD_GZ, len(GOOD_GZ) - 6))),
    Case("data_gz_bad_block", TRAIN,
         "error: d/train-images-idx3-ubyte: corrupt gzip file (Error -3 while decompressing "
         "data: invalid stored block lengths) (fix: the file is damaged or not what it claims "
         "to be: download or write it again)", files=dataset(train_images=_flip(GOOD_GZ, 12))),
    Case("data_gz_bomb_honest_header", TRAIN,
         "error: d/train-images-idx3-ubyte: its header promises 4,096×512×512 ubyte values "
         "(1,073,741,824 bytes) from 39 compressed bytes, more than 100 times the file (a "
         "gzip bomb?) (fix: if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_GZIP_RATIO=<larger number>)",
         files=dataset(train_images=gz_bomb(header((4096, 512, 512)), 0))),
    # the same kind of file, 1.3 MB of 7s, passes when the ratio is raised (and then is
    # refused for what it is: 256×256 images for a spec that takes 16 values)
    Case("data_gz_ratio_raised", TRAIN,
         "error: dataset 'idx:d' has 256×256 images; spec 'tiny' takes a flat input of 16 "
         "values (fix: give the spec input [65536])",
         files=dataset(train_images=gz(idx(np.full((20, 256, 256), 7)))),
         env={"ARCHCALC_MAX_GZIP_RATIO": "100000"}),
    # labels
    Case("data_float_labels", TRAIN,
         "error: d/train-labels-idx1-ubyte: labels must be integers (class numbers), the "
         "header declares float values (type 0x0D) (fix: write the labels as ubyte (type "
         "0x08), e.g. labels.astype(numpy.uint8))",
         files=dataset(train_labels=idx(np.arange(20) % 10 + 0.7, code=0x0D))),
    Case("data_double_labels", TRAIN,
         "error: d/t10k-labels-idx1-ubyte: labels must be integers (class numbers), the "
         "header declares double values (type 0x0E) (fix: write the labels as ubyte (type "
         "0x08), e.g. labels.astype(numpy.uint8))",
         files=dataset(test_labels=idx(np.arange(10), code=0x0E))),
    Case("data_labels_2d", TRAIN,
         "error: d/train-labels-idx1-ubyte: the header declares 2 dimension(s) (20×1 ubyte "
         "values (20 bytes)); train labels need 1: N labels (fix: write the labels as an idx1 "
         "file of N labels)", files=dataset(train_labels=idx(np.zeros((20, 1))))),
    Case("data_images_2d", TRAIN,
         "error: d/train-images-idx3-ubyte: the header declares 2 dimension(s) (20×16 ubyte "
         "values (320 bytes)); train images need 3: N images of H×W (fix: write the images as "
         "an idx3 file of N images of H×W)", files=dataset(train_images=idx(np.zeros((20, 16))))),
    Case("data_count_mismatch", TRAIN,
         "error: d/train-labels-idx1-ubyte: 19 labels for 20 images in "
         "train-images-idx3-ubyte (fix: give one label per image (the files of one part must "
         "match))", files=dataset(train_labels=idx(np.arange(19) % 10))),
    Case("data_test_count_mismatch", TRAIN,
         "error: d/t10k-labels-idx1-ubyte: 10 labels for 9 images in t10k-images-idx3-ubyte "
         "(fix: give one label per image (the files of one part must match))",
         files=dataset(test_images=idx(np.zeros((9, 4, 4))))),
    Case("data_negative_label", TRAIN,
         "error: d/train-labels-idx1-ubyte: label -1 (label #0) is negative; labels are class "
         "numbers 0, 1, 2, … (fix: number the classes from 0)",
         files=dataset(train_labels=idx(np.arange(20) % 10 - 1, code=0x09))),
    Case("data_huge_label", TRAIN,
         "error: d/t10k-labels-idx1-ubyte: label 2,147,483,647 (label #9) is not below the "
         "limit of 10,000 classes; labels are class numbers 0, 1, 2, … (fix: if the input is "
         "legitimate, raise the limit: ARCHCALC_MAX_CLASSES=<larger number>)",
         files=dataset(test_labels=idx([0] * 9 + [2**31 - 1], code=0x0C))),
    Case("data_labels_beyond_spec", TRAIN,
         "error: dataset 'idx:d' has 201 classes; spec 'tiny' ends with 10 output value(s) "
         "per image (layer 'fc1') (fix: make the last layer give 201 units, e.g. '- dense: "
         "201')",
         files=dataset(train_labels=idx([200] + [1] * 19))),
    # pixels
    Case("data_nan_pixels", TRAIN,
         "error: d/t10k-images-idx3-ubyte: pixel value #0 is nan (fix: images must hold "
         "finite numbers)",
         files=dataset(test_images=idx(np.full((10, 4, 4), np.nan), code=0x0D))),
    Case("data_negative_pixels", TRAIN,
         "error: d/t10k-images-idx3-ubyte: negative pixel value -3 (fix: images must hold "
         "values >= 0 (they are scaled by their maximum))",
         files=dataset(test_images=idx(np.full((10, 4, 4), -3), code=0x09))),
    # 20 images of 4×4 upscaled for a 1×100,000×100,000 input: 200 GB, refused before
    Case("data_fit_too_large", ["train", "huge.yaml", "--data", "idx:d", "--memory-budget",
                                "1000TB"],
         "error: dataset 'idx:d': 20 images fitted to spec 'huge''s input 1×100000×100000 "
         "take 200,000,000,000 bytes, more than the limit of 4,294,967,296 (MAX_DATA_BYTES) "
         "(fix: use a spec with a smaller input, or if the input is legitimate, raise the "
         "limit: ARCHCALC_MAX_DATA_BYTES=<larger number>)",
         files={**dataset(), "huge.yaml": "name: huge\ninput: [1, 100000, 100000]\nlayers:\n"
                "  - global_avgpool\n  - flatten\n  - dense: 10\n"}),
    # the directory and its entries
    Case("data_missing_file", TRAIN,
         "error: missing IDX file d/t10k-labels-idx1-ubyte (or .gz) (fix: the directory needs "
         "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
         "t10k-labels-idx1-ubyte)", files=dataset(test_labels=None)),
    Case("data_no_directory", ["train", "tiny.yaml", "--data", "idx:nope"],
         "error: no such data directory: nope (fix: give a directory holding the four "
         "MNIST-format IDX files (idx:DIR))",
         files={"tiny.yaml": SPEC}),
    Case("data_directory_is_a_file", ["train", "tiny.yaml", "--data", "idx:tiny.yaml"],
         "error: tiny.yaml: the data source is a file, not a directory (fix: give a directory "
         "holding the four MNIST-format IDX files (idx:DIR))",
         files={"tiny.yaml": SPEC}),
    Case("data_entry_is_a_directory", TRAIN,
         "error: d/train-images-idx3-ubyte: is a directory, not an IDX file (fix: remove or "
         "rename it; the data directory needs the four IDX files)",
         files=dataset(train_images=None),
         setup=_subdir),
    Case("data_entry_is_a_fifo", TRAIN,
         "error: d/train-images-idx3-ubyte: not a regular file (a device, FIFO or socket) "
         "(fix: give a regular IDX file)", files=dataset(train_images=None), setup=_mkfifo),
    Case("data_fashion_dir_bad", ["train", "tiny.yaml", "--data", "fashion-mnist:d"],
         "error: d/t10k-images-idx3-ubyte: the IDX header's dimension 0 is -5 (dimensions "
         "-5×4×4); every dimension must be at least 1 (fix: the file is damaged or not what "
         "it claims to be: download or write it again)",
         files=dataset(test_images=header((-5, 4, 4)))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_the_valid_dataset_trains(tmp_path):
    """The catalogue's baseline: the unbroken dataset (plain and gzipped) trains, so every
    case above fails for the one thing it breaks."""
    files = dataset()
    files.update({f"g/{Path(rel).name}.gz": gz(content) for rel, content in files.items()
                  if rel.startswith("d/")})
    for data in ("idx:d", "idx:g"):
        case = Case("-", ["train", "tiny.yaml", "--data", data, "--epochs", "1", "--out",
                          f"run-{data[-1]}"], "", code=0, files=files)
        code, out, err = run_case(case, tmp_path)
        assert code == 0 and err == "", err
        assert "data:  idx:" in out and "18 train / 2 val / 10 test, 10 classes" in out


def test_gzip_bomb_stops_at_its_headers_promise(tmp_path):
    """1 GiB of zeros behind a header that promises 20×4×4 values, 1 MB on disk: it used to
    be inflated whole (gzip.decompress) before any check; now reading stops at byte 321 of
    the data. And a header that honestly promises 1 GiB from 1 MB is refused by its ratio."""
    bomb = gz_bomb(header((20, 4, 4)), 1024)
    assert len(bomb) < 2_000_000
    honest = gz_bomb(header((1024, 1024, 1024)), 1024)
    for name, content, message in (
            ("d", bomb, "the decompressed data is longer than its header promises"),
            ("e", honest, "more than 100 times the file (a gzip bomb?)")):
        for rel, value in dataset(train_images=content).items():
            path = tmp_path / rel.replace("d/", f"{name}/", 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(value.encode() if isinstance(value, str) else value)
        m = measure(["train", "tiny.yaml", "--data", f"idx:{name}", "--out", "run"], tmp_path)
        assert m.code == 1 and message in m.stderr.splitlines()[0], m.stderr
        assert m.peak_mb < 200 and m.cpu_s < 5, (name, m.peak_mb, m.cpu_s)
