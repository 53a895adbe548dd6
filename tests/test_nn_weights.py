"""Saving and loading weights: round trip, atomic writes, and one clear line for a file that
is corrupt or belongs to another network (naming the first bad array)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import build, load_weights, save_weights
from archcalc.spec import loads

SPEC = """
name: small
input: [2, 6, 6]
separator: /
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - bn
  - relu
  - mixed:
    - concat: [[{conv: {filters: 2, kernel: 1}}], [{maxpool: {kernel: 3, stride: 1, padding: 1}}]]
  - flatten
  - dense: 3
"""


def network(text=SPEC):
    return loads(text)


def trained(seed=0):
    """A model whose batch-norm buffers have moved away from their initial values."""
    m = build(network(), seed=seed)
    m.forward(np.random.default_rng(seed).standard_normal((4, 2, 6, 6)), training=True)
    return m


def test_round_trip(tmp_path):
    a, b = trained(0), build(network(), seed=1)
    assert not np.array_equal(a.params["conv1.weight"], b.params["conv1.weight"])
    path = tmp_path / "w.npz"
    save_weights(a, path)
    with np.load(path) as archive:
        assert sorted(archive.files) == sorted(list(a.params) + list(a.buffers))
        assert "mixed/conv1.weight" in archive.files  # "/" names survive
    load_weights(b, path)
    for key in list(a.params) + list(a.buffers):
        assert np.array_equal(a.state_dict()[key], b.state_dict()[key]), key
    x = np.random.default_rng(5).standard_normal((2, 2, 6, 6))
    assert np.array_equal(a.forward(x), b.forward(x))


def test_save_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    save_weights(trained(), path)
    assert os.listdir(tmp_path) == ["w.npz"]  # no temp file left behind
    assert np.load(path)["conv1.weight"].shape == (4, 2, 3, 3)


def test_save_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_weights(trained(0), path)
    before = path.read_bytes()

    def killed(handle, **arrays):  # a run killed halfway through writing
        handle.write(b"PK half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        save_weights(trained(1), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_misshapen_array_is_named_and_nothing_changes(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(trained(), path)
    other = build(network(SPEC.replace("filters: 4", "filters: 5")), seed=3)
    before = other.state_dict()
    with pytest.raises(ArchcalcError) as err:
        load_weights(other, path)
    assert "'conv1.weight' has shape 4×2×3×3, the model needs 5×2×3×3" in err.value.message
    assert err.value.file == str(path)
    for key, value in other.state_dict().items():
        assert np.array_equal(value, before[key])


def test_missing_array_is_named(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(trained(), path)
    bigger = build(network(SPEC + "  - dense: 2\n"))
    with pytest.raises(ArchcalcError, match="array 'fc2.weight' is missing"):
        load_weights(bigger, path)


def test_corrupt_truncated_and_absent_files(tmp_path):
    m = trained()
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ArchcalcError, match="not a readable .npz"):
        load_weights(m, junk)
    good = tmp_path / "good.npz"
    save_weights(m, good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArchcalcError, match="cut.npz"):
        load_weights(m, cut)
    with pytest.raises(ArchcalcError, match="no such weights file"):
        load_weights(m, tmp_path / "absent.npz")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ArchcalcError, match="single array"):
        load_weights(m, single)


def test_state_dict_copies_and_strict_extras():
    m = trained()
    state = m.state_dict()
    state["conv1.weight"][...] = 0
    assert not np.all(m.params["conv1.weight"] == 0)  # a copy, not the live array
    state["optimizer.step"] = np.array(3)
    m.load_state_dict(state)  # extras ignored by default (checkpoints carry more)
    assert np.all(m.params["conv1.weight"] == 0)
    with pytest.raises(ArchcalcError, match="unexpected array 'optimizer.step'"):
        m.load_state_dict(state, strict=True)


def test_load_keeps_array_identity_and_dtype(tmp_path):
    a = trained()
    path = tmp_path / "w.npz"
    save_weights(a, path)
    b = build(network(), dtype="float64")
    live = b.params["fc1.weight"]
    load_weights(b, path)
    assert b.params["fc1.weight"] is live and live.dtype == np.float64
    assert np.allclose(live, a.params["fc1.weight"])
