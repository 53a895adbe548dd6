"""Data: the embedded digits, the IDX reader, fitting images to a spec, splits, augmentation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import data


def write_idx(path: Path, array: np.ndarray, gz: bool = False, cut: int = 0) -> Path:
    """Write `array` (uint8) as an IDX file; `cut` drops that many bytes from the end."""
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_idx_dir(tmp_path: Path, n_train=30, n_test=10, size=28, gz=False) -> Path:
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte{sfx}",
                  rng.integers(0, 256, (n, size, size)), gz)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte{sfx}", np.arange(n) % 10, gz)
    return tmp_path


def test_embedded_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 16 and images.min() == 0
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the first image of the UCI set is a 0: its top row is 0 0 5 13 9 1 0 0
    assert labels[0] == 0 and images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_fit_lenet_by_nearest_upscaling():
    d = data.load("digits", (1, 32, 32), spec="lenet5")
    assert (len(d.train), len(d.val), len(d.test)) == (1294, 144, 359)
    assert d.classes == 10 and d.image_size == (8, 8) and d.augment == {"translate": 2}
    assert data.load("digits", (64,)).augment == {}
    assert "nearest upscaling ×4 to 32×32" in d.transform and "pixels ÷16 to 0..1" in d.transform
    images, labels = data.load_digits()
    _, test_idx = data.split_indices(1797, 0.2)
    x = d.test.x(slice(0, 1))
    assert x.shape == (1, 1, 32, 32) and x.dtype == np.float32
    original = images[test_idx[0]] / 16
    np.testing.assert_allclose(x[0, 0, ::4, ::4], original, rtol=1e-6)    # block corners
    np.testing.assert_allclose(x[0, 0, 3::4, 3::4], original, rtol=1e-6)  # block ends
    assert d.test.labels[0] == labels[test_idx[0]]


def test_splits_are_fixed_and_disjoint():
    a, b = data.split_indices(100, 0.25)
    a2, b2 = data.split_indices(100, 0.25)
    assert len(b) == 25 and not set(a) & set(b) and sorted({*a, *b}) == list(range(100))
    assert a.tolist() == a2.tolist() and b.tolist() == b2.tolist()


def test_fit_pads_28_to_32_and_flattens():
    img = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    out, text = data.fit_images(img, (1, 32, 32), source="s", spec="lenet5")
    assert out.shape == (2, 1, 32, 32)
    assert out[:, 0, 2:30, 2:30].tolist() == img.tolist()
    assert out[:, 0, :2].sum() == 0 and out[:, 0, :, 30:].sum() == 0
    assert "top 2, bottom 2, left 2, right 2" in text
    flat, _ = data.fit_images(img[:, :8, :8], (64,), source="s", spec="mlp")
    assert flat.shape == (2, 64) and flat[1].tolist() == img[1, :8, :8].ravel().tolist()
    flat, _ = data.fit_images(img[:, :8, :8], (256,), source="s", spec="mlp")
    assert flat.shape == (2, 256)                                  # 8×8 → 16×16 → 256


@pytest.mark.parametrize("shape,match", [
    ((3, 32, 32), "1-channel .*8×8 images; spec 'net' takes 3×32×32"),
    ((1, 4, 4), "8×8 images, larger than spec 'net''s input 1×4×4"),
    ((50,), "8×8 images; spec 'net' takes a flat input of 50"),
    ((1, 10**6, 10**6), r"1 image fitted to spec 'net''s input 1×1000000×1000000 take "
                        r"1,000,000,000,000 bytes, more than the limit of 4,294,967,296"),
])
def test_fit_refuses_what_does_not_fit(shape, match):
    with pytest.raises(ArchcalcError, match=match):
        data.fit_images(np.zeros((1, 8, 8), np.uint8), shape, source="digits", spec="net")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arr = np.random.default_rng(1).integers(0, 256, (3, 5, 4)).astype(np.uint8)
    back = data.read_idx(write_idx(tmp_path / "a-idx3-ubyte", arr, gz))
    assert back.shape == (3, 5, 4) and (back == arr).all()


def test_idx_errors_name_the_file(tmp_path):
    arr = np.zeros((10, 28, 28), np.uint8)
    short = write_idx(tmp_path / "short", arr, cut=100)
    with pytest.raises(ArchcalcError, match=r"short: truncated IDX file: .*10×28×28 ubyte values "
                                            r"\(7,840 bytes\), the file holds 7,740") as exc:
        data.read_idx(short)
    assert exc.value.file == str(short)
    cutgz = tmp_path / "cut.gz"
    noise = np.random.default_rng(0).integers(0, 256, 4000).astype(np.uint8).tobytes()
    cutgz.write_bytes(gzip.compress(b"\0\0\x08\x01" + struct.pack(">i", 4000) + noise)[:-500])
    with pytest.raises(ArchcalcError, match="cut.gz: truncated gzip file"):
        data.read_idx(cutgz)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04hello")
    with pytest.raises(ArchcalcError, match="junk: not an IDX file"):
        data.read_idx(junk)


def test_idx_directory_source(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    d = data.load(f"idx:{tmp_path}", (1, 32, 32), spec="lenet5")
    assert (len(d.train), len(d.val), len(d.test)) == (27, 3, 10)
    assert d.classes == 10 and "÷255" in d.transform and "left 2" in d.transform
    x = d.train.x()
    assert x.shape == (27, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    f = data.load(f"fashion-mnist:{tmp_path}", (1, 28, 28))
    assert f.class_names[9] == "Ankle boot" and f.transform.startswith("28×28 images, used")


def test_missing_data_is_one_line(tmp_path):
    with pytest.raises(ArchcalcError, match="no such data directory"):
        data.load(f"idx:{tmp_path / 'nope'}", (1, 28, 28))
    with pytest.raises(ArchcalcError, match="no Fashion-MNIST directory at"):
        data.load(f"fashion-mnist:{tmp_path / 'nope'}", (1, 28, 28))
    make_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ArchcalcError, match="missing IDX file .*t10k-labels-idx1-ubyte"):
        data.load(f"idx:{tmp_path}", (1, 28, 28))
    with pytest.raises(ArchcalcError, match="unknown data source 'mnist'"):
        data.load("mnist", (1, 28, 28))


def test_idx_counts_must_agree(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29))
    with pytest.raises(ArchcalcError, match=r"train-labels-idx1-ubyte: 29 labels for 30 images"):
        data.load(f"idx:{tmp_path}", (1, 28, 28))


def test_batches_cover_every_example_once():
    rng = np.random.default_rng(0)
    parts = data.batch_indices(10, 4, rng)
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [len(p) for p in data.batch_indices(10, 0, rng)] == [10]       # full batch
    assert [len(p) for p in data.batch_indices(3, 1, rng)] == [1, 1, 1]   # single example
    a = data.batch_indices(50, 8, np.random.default_rng(5))
    b = data.batch_indices(50, 8, np.random.default_rng(5))
    assert all((x == y).all() for x, y in zip(a, b))                      # seeded


def test_translate_moves_each_image_within_the_limit():
    rng = np.random.default_rng(0)
    x = rng.random((20, 2, 6, 6)).astype(np.float32)
    out = data.translate(x, 2, rng)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    moved = 0
    for i in range(20):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if (padded[i, :, 2 - dy:8 - dy, 2 - dx:8 - dx] == out[i]).all()]
        assert len(found) == 1
        moved += found[0] != (0, 0)
    assert moved >= 10
    assert (data.translate(x, 0, rng) == x).all()


def test_hflip():
    rng = np.random.default_rng(0)
    x = rng.random((50, 1, 3, 4))
    out = data.hflip(x, rng)
    flipped = [(out[i] == x[i, ..., ::-1]).all() for i in range(50)]
    kept = [(out[i] == x[i]).all() for i in range(50)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 40
    assert (data.hflip(x, rng, p=1.0) == x[..., ::-1]).all()


# ---- hostile IDX files: checked before allocating, inflated no further than promised -------
def _bomb(tmp_path: Path, promise: tuple[int, ...], zeros: int) -> Path:
    """A .gz of an IDX header promising `promise` ubyte values followed by `zeros` zero bytes."""
    head = bytes([0, 0, 0x08, len(promise)]) + struct.pack(f">{len(promise)}i", *promise)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(head + bytes(zeros), compresslevel=9))
    return path


def test_gzip_is_inflated_no_further_than_the_promise_plus_one_byte(tmp_path, monkeypatch):
    inflated = []

    class Counting(gzip.GzipFile):   # readinto() goes through read() too
        def read(self, size=-1):
            out = super().read(size)
            inflated.append(len(out))
            return out

    monkeypatch.setattr(data.gzip, "GzipFile", Counting)
    path = _bomb(tmp_path, (10, 4, 4), 64 << 20)
    with pytest.raises(ArchcalcError, match="decompressed data is longer than its header"):
        data.read_idx(path)
    assert sum(inflated) == 16 + 160 + 1          # header, the promised values, one byte more


@pytest.mark.parametrize("dims, message", [
    ((-1, 28, 28), "dimension 0 is -1"),
    ((60000, 0, 28), "dimension 1 is 0"),
    ((2**31 - 1, 2**31 - 1), "more than the limit of 4,294,967,296 bytes"),
])
def test_bad_dimensions_are_refused_from_the_header(tmp_path, dims, message):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}i", *dims))
    with pytest.raises(ArchcalcError, match=message):
        data.read_idx_header(path)


def test_an_honest_bomb_is_refused_by_its_ratio(tmp_path, monkeypatch):
    path = _bomb(tmp_path, (64, 1024, 1024), 0)      # 64 MiB promised by a 60-byte file
    with pytest.raises(ArchcalcError, match=r"64×1,024×1,024 ubyte values \(67,108,864 bytes\) "
                                            r"from \d+ compressed bytes, more than 100 times"):
        data.read_idx(path)
    monkeypatch.setenv("ARCHCALC_MAX_GZIP_RATIO", str(10**9))
    with pytest.raises(ArchcalcError, match="truncated IDX file: .*decompressed data holds 0"):
        data.read_idx(path)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """Run as root here, so chmod cannot deny a read: the OS's answer is simulated."""
    path = write_idx(tmp_path / "a-idx3-ubyte", np.zeros((2, 3, 3)))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data, "open", denied, raising=False)
    with pytest.raises(ArchcalcError, match=r"a-idx3-ubyte: permission denied \(fix: give read"):
        data.read_idx(path)
    monkeypatch.setattr(data.os, "listdir", denied)
    with pytest.raises(ArchcalcError, match="permission denied on the data directory"):
        data.load_idx_dir(tmp_path)


def test_float_labels_are_refused_even_when_whole(tmp_path):
    """By type, not by value: 3.0 is refused like 3.7 (see _check_headers)."""
    make_idx_dir(tmp_path)
    whole = (np.arange(30) % 10).astype(">f4")
    raw = bytes([0, 0, 0x0D, 1]) + struct.pack(">i", 30) + whole.tobytes()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(raw)
    with pytest.raises(ArchcalcError, match="labels must be integers .* float values"):
        data.load(f"idx:{tmp_path}", (1, 28, 28))


def test_wider_integer_types_load(tmp_path):
    """short and int images and sbyte labels are read big-endian, as IDX stores them."""
    make_idx_dir(tmp_path)
    images = np.arange(30 * 28 * 28).reshape(30, 28, 28) % 1000
    raw = bytes([0, 0, 0x0B, 3]) + struct.pack(">3i", 30, 28, 28) + images.astype(">i2").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw)
    labels = (bytes([0, 0, 0x09, 1]) + struct.pack(">i", 30)
              + (np.arange(30) % 10).astype("i1").tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    arrays = data.load_idx_dir(tmp_path)
    assert (arrays["train_images"] == images).all() and arrays["train_labels"][13] == 3
