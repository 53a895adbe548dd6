"""Saving and loading weights: round trip, atomic writes, and one clear line for a file that
is corrupt or belongs to another network (naming the first bad array)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import build, load_weights, save_weights, weights
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
    parts, meta = weights.read_archive(path)
    assert sorted(parts["model"]) == sorted(list(a.params) + list(a.buffers))
    assert "mixed/conv1.weight" in parts["model"] and meta == {"kind": "weights"}
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
    assert weights.read_npz(path)["conv1.weight"].shape == (4, 2, 3, 3)


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


# --- names the format must never confuse with its own keys (issue 8, class 6) -------------

HOSTILE = ["@optimizer/m/conv1", "@best", "@meta", "header", "model/0", "optimizer/t",
           "best/0", "a/b/c", "/lead", "trail/", "a\\b", "[/]", "ü名前", "t", " "]


def hostile_net():
    layers = "\n".join(f"  - dense: {{units: 3, name: {json.dumps(n)}}}" for n in HOSTILE)
    return loads(f"name: hostile\ninput: [4]\nlayers:\n{layers}\n")


def test_every_name_round_trips(tmp_path):
    """Layer names spelled like the format's own keys (and with '/', '@', '..', unicode)
    come back exactly, in weights files and checkpoints alike."""
    from archcalc.nn import train
    a, b = build(hostile_net(), seed=0), build(hostile_net(), seed=1)
    assert {k.rsplit(".", 1)[0] for k in a.params} == set(HOSTILE)
    save_weights(a, tmp_path / "w.npz")
    load_weights(b, tmp_path / "w.npz", strict=True)
    for key, value in a.state_dict().items():
        assert np.array_equal(value, b.state_dict()[key]), key
    state = a.state_dict()
    opt = {"t": np.array(3), **{f"m/{k}": v + 1 for k, v in state.items()}}
    best = {k: v + 2 for k, v in state.items()}
    train.save_checkpoint(tmp_path / "c.npz", state, opt, best, {"epoch": 1, "spec": "@meta"})
    ckpt = train.read_checkpoint(tmp_path / "c.npz")
    assert ckpt.meta == {"format": 2, "epoch": 1, "spec": "@meta"}
    for table, want in ((ckpt.state, state), (ckpt.optimizer, opt), (ckpt.best, best)):
        assert set(table) == set(want)
        for key in want:
            assert np.array_equal(table[key], want[key]), key


def test_format_1_files_still_load(tmp_path):
    """Weights and checkpoints written before format 2 (names as keys, '@' records)."""
    from archcalc.nn import train
    m = trained()
    np.savez(tmp_path / "old.npz", **m.state_dict())
    other = build(network(), seed=4)
    load_weights(other, tmp_path / "old.npz", strict=True)
    assert np.array_equal(other.params["conv1.weight"], m.params["conv1.weight"])
    arrays = {**m.state_dict(), "@optimizer/t": np.array(2),
              "@best/conv1.weight": m.params["conv1.weight"] * 0,
              "@meta": np.array(json.dumps({"format": 1, "epoch": 2}))}
    np.savez(tmp_path / "old_ckpt.npz", **arrays)
    ckpt = train.read_checkpoint(tmp_path / "old_ckpt.npz")
    assert ckpt.meta == {"format": 1, "epoch": 2} and set(ckpt.state) == set(m.state_dict())
    assert set(ckpt.optimizer) == {"t"} and set(ckpt.best) == {"conv1.weight"}


def test_a_header_that_does_not_match_its_arrays(tmp_path):
    path = tmp_path / "w.npz"
    header = {"format": 2, "parts": {"model": ["a.weight", "b.weight"]}, "meta": {}}
    np.savez(path, header=np.array(json.dumps(header)), **{"model/0": np.zeros(2)})
    with pytest.raises(ArchcalcError, match="its header does not match its arrays"):
        weights.read_archive(path)


def test_a_compression_bomb_is_refused_before_inflating(tmp_path):
    import zipfile
    path = tmp_path / "bomb.npz"
    big = np.zeros(50_000_000 // 8)                       # 50 MB of zeros: ~50 kB deflated
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("model/0.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, big)
    assert path.stat().st_size < 200_000
    with pytest.raises(ArchcalcError, match=r"more than 20× \(a compression bomb\?\)"):
        weights.read_archive(path)


def test_a_header_promising_more_than_its_member_holds(tmp_path):
    import zipfile
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("model/0.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
            fh.write(b"\0" * 64)
    with pytest.raises(ArchcalcError, match="promises 8,000,000,000,000 bytes and holds"):
        weights.read_archive(path)


def test_the_size_limit_names_its_variable(tmp_path, monkeypatch):
    save_weights(trained(), tmp_path / "w.npz")
    monkeypatch.setenv("ARCHCALC_MAX_CHECKPOINT_BYTES", "100")
    with pytest.raises(ArchcalcError) as err:
        load_weights(trained(), tmp_path / "w.npz")
    assert "over the limit of 100" in err.value.message
    assert "ARCHCALC_MAX_CHECKPOINT_BYTES" in err.value.fix
