"""Catalogue: training runs and checkpoints (issue 8, classes 6, 8 and 9 for train/evaluate):
run directories that hold another run, checkpoints that are missing, corrupt, cut, foreign,
bombs or from another spec, resumed runs that ask for other options, and options out of
range (seed, non-finite floats, shifts larger than the image)."""

from __future__ import annotations

import fcntl
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from archcalc.nn import build, data as datamod, save_weights, train, weights
from archcalc.spec import loads
from catalogue.runner import Case, check_case, measure

TINY = "name: tiny\ninput: [64]\nlayers: [{dense: 16}, relu, {dense: 10}]\n"
WIDE = TINY.replace("name: tiny", "name: wide").replace("dense: 16", "dense: 30")
SPECS = {"tiny.yaml": TINY, "wide.yaml": WIDE}
HELP = "(fix: see 'archcalc train --help')"       # click's runner names the program 'main'
NPZ_FIX = "(fix: point at a checkpoint or weights .npz written by archcalc)"


def trained_run(where: Path, seed: int = 0) -> None:
    """run/: one epoch of tiny on the digits, written by the library trainer."""
    net = loads(TINY)
    d = datamod.load("digits", net.input_shape, spec="tiny")
    setup = {"data": "digits", "val_split": 0.1, "dtype": "float32", "init": "he",
             "freeze": []}
    train.Trainer(build(net, seed=seed), d, train.TrainConfig(epochs=1, seed=seed),
                  out=where / "run", setup=setup).fit()


def plain_weights(where: Path) -> None:
    save_weights(build(loads(TINY)), where / "w.npz")


def cut_checkpoint(where: Path) -> None:
    trained_run(where)
    data = (where / "run" / "checkpoint.npz").read_bytes()
    (where / "cut.npz").write_bytes(data[: len(data) // 2])


def bomb(where: Path) -> None:
    """A 60 kB .npz whose one array inflates to 60 MB."""
    with zipfile.ZipFile(where / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("model/0.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.zeros(60_000_000 // 8))


def liar(where: Path) -> None:
    """An .npz whose array header promises 8 TB and holds 64 bytes."""
    with zipfile.ZipFile(where / "liar.npz", "w") as zf:
        with zf.open("model/0.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
            fh.write(b"\0" * 64)


def damaged_options(where: Path) -> None:
    """A checkpoint whose stored options say lr "fast" (hand-edited or foreign)."""
    state = build(loads(TINY)).state_dict()
    train.save_checkpoint(where / "odd.npz", state, {"t": np.array(0)}, None,
                          {"epoch": 1, "config": {"lr": "fast"}})


def fifo(where: Path) -> None:
    os.mkfifo(where / "pipe.npz")


_HELD: list[int] = []


def locked_run(where: Path) -> None:
    """run/ held by another training run (the flock a RunLock takes)."""
    (where / "run").mkdir()
    fd = os.open(where / "run", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(fd)                                 # released when the test module ends


def existing(*names: str):
    def setup(where: Path) -> None:
        (where / "run").mkdir()
        for name in names:
            (where / "run" / name).write_text("[]" if name.endswith(".json") else "x")
    return setup


T = ["train", "tiny.yaml"]
E = ["evaluate", "tiny.yaml"]
CASES = [
    # --- run directories (class 8) ---
    Case("train_existing_run_dir", [*T, "--out", "run"],
         "error: run: already holds a training run (checkpoint.npz, history.json) (fix: "
         "--resume run/checkpoint.npz continues it, --overwrite replaces it, or choose "
         "another --out)", files=SPECS, setup=existing("checkpoint.npz", "history.json")),
    Case("train_existing_metrics_only", [*T, "--out", "run"],
         "error: run: already holds a training run (metrics.json) (fix: --resume "
         "run/checkpoint.npz continues it, --overwrite replaces it, or choose another --out)",
         files=SPECS, setup=existing("metrics.json")),
    Case("train_resume_into_another_run", [*T, "--out", "run", "--resume", "old/w.npz"],
         "error: run: already holds a training run (history.json) (fix: --overwrite replaces "
         "that run with the resumed one, or resume into the checkpoint's own directory "
         "(--out old))", files=SPECS, setup=lambda w: (existing("history.json")(w),
                                                      (w / "old").mkdir(),
                                                      plain_weights(w / "old"))),
    Case("train_out_is_a_file", [*T, "--out", "f"],
         "error: train: invalid value for '--out': Directory 'f' is a file " + HELP,
         code=2, files={**SPECS, "f": "x"}),
    Case("train_run_dir_in_use", [*T, "--out", "run"],
         "error: run: another archcalc train is writing to this directory (fix: wait for it "
         "to finish, or choose another --out)", files=SPECS, setup=locked_run),
    # --- --resume with a bad checkpoint ---
    Case("train_resume_missing", [*T, "--resume", "nope.npz"],
         "error: no such checkpoint: nope.npz (fix: check the path)", files=SPECS),
    Case("train_resume_corrupt", [*T, "--resume", "bad.npz"],
         "error: bad.npz: not a readable .npz file (File is not a zip file) " + NPZ_FIX,
         files={**SPECS, "bad.npz": b"not a zip file at all"}),
    Case("train_resume_plain_weights", [*T, "--resume", "w.npz"],
         "error: w.npz: not a training checkpoint (no epoch in it) (fix: use --weights to "
         "start a new run from these weights)", files=SPECS, setup=plain_weights),
    Case("train_resume_other_spec", ["train", "wide.yaml", "--resume", "run"],
         "error: run/checkpoint.npz: the checkpoint's run trained spec 'tiny'; this spec is "
         "named 'wide' (fix: resume with the spec the run was trained with, or start a new "
         "run from its weights: --weights run/checkpoint.npz)", files=SPECS, setup=trained_run),
    Case("train_resume_other_seed", [*T, "--resume", "run", "--epochs", "2", "--seed", "7"],
         "error: run/checkpoint.npz: the checkpoint's run used --seed 0; this run asks for "
         "--seed 7 (fix: drop that option to continue the run as it was, or start a new run "
         "from its weights: --weights run/checkpoint.npz)", files=SPECS, setup=trained_run),
    Case("train_resume_other_data", [*T, "--resume", "run", "--epochs", "2", "--val-split",
                                     "0.2"],
         "error: run/checkpoint.npz: the checkpoint's run used --val-split 0.1; this run asks "
         "for --val-split 0.2 (fix: drop that option to continue the run as it was, or start "
         "a new run from its weights: --weights run/checkpoint.npz)",
         files=SPECS, setup=trained_run),
    Case("train_resume_finished", [*T, "--resume", "run", "--epochs", "1"],
         "error: run/checkpoint.npz: the checkpoint has already trained 1 epoch(s) and "
         "--epochs is 1 (fix: raise --epochs above 1 to train more)",
         files=SPECS, setup=trained_run),
    Case("train_resume_damaged_options", [*T, "--resume", "odd.npz"],
         "error: odd.npz: the checkpoint's stored options are damaged: lr is \"fast\", not "
         "a finite number > 0 (fix: start a new run from its weights with --weights)",
         files=SPECS, setup=damaged_options),
    Case("train_resume_and_weights", [*T, "--resume", "a.npz", "--weights", "b.npz"],
         "error: --resume and --weights exclude each other (fix: --resume continues a run; "
         "--weights starts a new one)", files=SPECS),
    # --- options out of range (class 9) ---
    Case("train_seed_negative", [*T, "--seed", "-1"],
         "error: train: invalid value for '--seed': -1 is not in the range "
         "0<=x<=4294967295 " + HELP, code=2, files=SPECS),
    Case("train_seed_too_big", [*T, "--seed", "4294967296"],
         "error: train: invalid value for '--seed': 4294967296 is not in the range "
         "0<=x<=4294967295 " + HELP, code=2, files=SPECS),
    Case("train_lr_inf", [*T, "--lr", "inf"],
         "error: train: invalid value for '--lr': inf is not a finite number in the range "
         "x>0 " + HELP, code=2, files=SPECS),
    Case("train_lr_nan", [*T, "--lr", "nan"],
         "error: train: invalid value for '--lr': nan is not a finite number in the range "
         "x>0 " + HELP, code=2, files=SPECS),
    Case("train_weight_decay_nan", [*T, "--weight-decay", "nan"],
         "error: train: invalid value for '--weight-decay': nan is not a finite number in "
         "the range x>=0 " + HELP, code=2, files=SPECS),
    Case("train_clip_norm_inf", [*T, "--clip-norm", "inf"],
         "error: train: invalid value for '--clip-norm': inf is not a finite number in the "
         "range x>0 " + HELP, code=2, files=SPECS),
    Case("train_val_split_nan", [*T, "--val-split", "nan"],
         "error: train: invalid value for '--val-split': nan is not a finite number in the "
         "range 0<=x<=0.9 " + HELP, code=2, files=SPECS),
    Case("train_epochs_too_many", [*T, "--epochs", "10000001"],
         "error: train: invalid value for '--epochs': 10000001 is not in the range "
         "1<=x<=1000000 " + HELP, code=2, files=SPECS),
    Case("train_class_weights_nan", [*T, "--class-weights", "nan,1,1,1,1,1,1,1,1,1",
                                     "--out", "run"],
         "error: train: invalid value for '--class-weights': class weights "
         "'nan,1,1,1,1,1,1,1,1,1': need one finite number >= 0 per class, at least one > 0 "
         "(fix: --class-weights balanced, or one weight per class, e.g. 1,1,5)", code=2,
         files=SPECS),
    Case("train_translate_huge", ["train", "lenet5", "--translate", "1000", "--out", "run"],
         "error: --translate 1000 would shift 32×32 images by up to 1000 pixels; the most is "
         "31 (fix: a few pixels, e.g. --translate 2, or 0 for none)"),
    Case("train_translate_flat_input", [*T, "--translate", "2", "--out", "run"],
         "error: augmentation needs C×H×W images; spec 'tiny' takes a flat input (fix: drop "
         "--translate/--flip)", files=SPECS),
    # --- evaluate with a bad checkpoint ---
    Case("evaluate_corrupt_npz", [*E, "bad.npz"],
         "error: bad.npz: not a readable .npz file (File is not a zip file) " + NPZ_FIX,
         files={**SPECS, "bad.npz": b"PK\x03\x04" + b"\x00" * 100}),
    Case("evaluate_truncated_npz", [*E, "cut.npz"],
         "error: cut.npz: not a readable .npz file (File is not a zip file) " + NPZ_FIX,
         files=SPECS, setup=cut_checkpoint),
    Case("evaluate_npy_not_npz", [*E, "one.npy"],
         "error: one.npy: holds a single array (.npy), not named weights (.npz) " + NPZ_FIX,
         files={**SPECS, "one.npy": b"\x93NUMPY" + b"\x01\x00" + b"v\x00" + b" " * 118}),
    Case("evaluate_text_file", [*E, "tiny.yaml"],
         "error: tiny.yaml: not a readable .npz file (File is not a zip file) " + NPZ_FIX,
         files=SPECS),
    Case("evaluate_fifo", [*E, "pipe.npz"],
         "error: pipe.npz: not a regular file (fix: point at a .npz file written by archcalc)",
         files=SPECS, setup=fifo),
    Case("evaluate_empty_dir", [*E, "d"],
         "error: no such checkpoint: d/checkpoint.npz (fix: check the path)",
         files={**SPECS, "d/.keep": ""}),
    Case("evaluate_other_spec", ["evaluate", "wide.yaml", "run"],
         "error: run/checkpoint.npz: weights: array 'fc1.weight' has shape 16×64, the model "
         "needs 30×64 (the checkpoint was saved from spec 'tiny', not 'wide') (fix: load "
         "weights saved from the same spec and input shape)", files=SPECS, setup=trained_run),
    Case("evaluate_compression_bomb", [*E, "bomb.npz"],
         "error: bomb.npz: not a readable .npz file (its arrays would take 60,000,128 bytes "
         "from a 58,554-byte file, more than 20× (a compression bomb?)) " + NPZ_FIX,
         files=SPECS, setup=bomb),
    Case("evaluate_lying_header", [*E, "liar.npz"],
         "error: liar.npz: not a readable .npz file (member 'model/0.npy' promises "
         "8,000,000,000,000 bytes and holds 192) " + NPZ_FIX, files=SPECS, setup=liar),
    Case("evaluate_over_the_size_limit", [*E, "w.npz"],
         "error: w.npz: its arrays hold 5,944 bytes, over the limit of 1,000 (fix: if the "
         "input is legitimate, raise the limit: ARCHCALC_MAX_CHECKPOINT_BYTES=<larger "
         "number>)", files=SPECS, setup=plain_weights,
         env={"ARCHCALC_MAX_CHECKPOINT_BYTES": "1000"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def teardown_module():
    while _HELD:
        os.close(_HELD.pop())


def test_reserved_looking_names_train_and_load(tmp_path, run):
    """Layers named like the checkpoint's own records (issue 8, class 6) train, save, and
    load back: the format keeps names out of its keys."""
    spec = tmp_path / "res.yaml"
    spec.write_text('name: res\ninput: [64]\nlayers:\n'
                    '  - dense: {units: 16, name: "@optimizer/m/conv1"}\n  - relu\n'
                    '  - dense: {units: 10, name: "@best"}\n')
    out = tmp_path / "run"
    result = run("train", str(spec), "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    ckpt = train.read_checkpoint(out / "checkpoint.npz")
    assert set(ckpt.state) == {"@optimizer/m/conv1.weight", "@optimizer/m/conv1.bias",
                               "@best.weight", "@best.bias"}
    assert {"m/@best.weight", "v/@optimizer/m/conv1.bias", "t"} <= set(ckpt.optimizer)
    result = run("evaluate", str(spec), str(out / "checkpoint.npz"))
    assert result.exit_code == 0 and "test accuracy" in result.output, result.output
    result = run("train", str(spec), "--epochs", "2", "--resume", str(out))
    assert result.exit_code == 0 and "resuming after epoch 1" in result.output, result.output


def test_translate_bomb_is_refused_before_allocating(tmp_path):
    """`--translate 1000` used to pad every batch to 2032×2032 (1 GB); now refused first."""
    m = measure(["train", "lenet5", "--translate", "1000", "--out", "run"], tmp_path)
    assert m.code == 1 and m.stderr.startswith("error: --translate 1000"), m.stderr
    assert m.peak_mb < 200 and m.cpu_s < 5, (m.peak_mb, m.cpu_s)


def test_checkpoint_bombs_stay_small(tmp_path):
    bomb(tmp_path)
    liar(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    for name in ("bomb.npz", "liar.npz"):
        m = measure(["evaluate", "tiny.yaml", name], tmp_path)
        assert m.code == 1 and "not a readable .npz file" in m.stderr, m.stderr
        assert m.peak_mb < 200 and m.cpu_s < 5, (name, m.peak_mb, m.cpu_s)


# --- hostile round 2: checkpoints whose every field is checked before use ------------------

def crafted(meta=None, parts=None, name: str = "ck.npz"):
    """A setup: a one-epoch run of tiny in base/, rewritten to `name` with meta (a function
    of the meta record) and parts (of the arrays) changed as a hostile user would."""
    def setup(where: Path) -> None:
        trained_run(where / "base")
        arrays, record = weights.read_archive(where / "base" / "run" / "checkpoint.npz")
        if meta:
            meta(record)
        if parts:
            parts(arrays)
        weights.write_archive(where / name, {k: v for k, v in arrays.items() if v}, record)
    return setup


def _set(where: str, **values):
    """meta[where].update(values), or meta.update(values) for where=''."""
    def mutate(meta):
        (meta[where] if where else meta).update(values)
    return mutate


def _array(part: str, key: str, value):
    def mutate(arrays):
        arrays[part][key] = value
    return mutate


def _digits_run_dir(where: Path) -> None:
    trained_run(where)


def idx_set(n_train: int, labels=None, n_test: int = 4):
    """d/: the four IDX files of 8×8 images (n_train to train on), labels given or i % 10."""
    def blob(values, code=0x08):
        arr = np.asarray(values)
        head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
        return head + arr.astype(">u1").tobytes()
    train_labels = np.arange(n_train) % 10 if labels is None else np.asarray(labels)
    return {"d/train-images-idx3-ubyte": blob(np.ones((n_train, 8, 8))),
            "d/train-labels-idx1-ubyte": blob(train_labels),
            "d/t10k-images-idx3-ubyte": blob(np.ones((n_test, 8, 8))),
            "d/t10k-labels-idx1-ubyte": blob(np.arange(n_test) % max(int(train_labels.max())
                                                                     + 1, 1))}


DAMAGED = "(fix: start a new run from its weights with --weights)"
RESUME = [*T, "--resume", "ck.npz", "--epochs", "2", "--out", "out"]
TINY1 = TINY.replace("name: tiny", "name: tiny1").replace("dense: 10", "dense: 1")
SPECS2 = {**SPECS, "tiny1.yaml": TINY1,
          "deep.yaml": "name: deep\ninput: [1, 224, 224]\nlayers:\n  - flatten\n"
                       "  - dense: 4096\n  - dense: 4096\n  - dense: 10\n"}
CASES2 = [
    # F1, F2: datasets a run cannot learn from, refused before anything is written
    Case("train_val_split_leaves_no_image", [*T, "--data", "idx:d", "--val-split", "0.9",
                                             "--out", "out"],
         "error: --val-split 0.9 holds out 2 of the 2 training image(s) of 'idx:d', "
         "leaving none to train on (fix: a smaller --val-split (0 for none), or more "
         "training images)",
         files={**SPECS2, **idx_set(2)}),
    Case("train_one_class_dataset", ["train", "tiny1.yaml", "--data", "idx:d", "--out", "out"],
         "error: dataset 'idx:d' has one class (every label is 0); classification needs at"
         " least 2 (fix: give a dataset whose labels name at least two classes (0, 1, "
         "...))", files={**SPECS2, **idx_set(20, labels=np.zeros(20))}),
    # F3: a crafted meta record or array, on --resume, --weights and evaluate
    Case("train_ckpt_best_value_text", RESUME,
         'error: ck.npz: the checkpoint\'s meta record is damaged: best.value is "abc", not'
         " a finite number (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("best", value="abc"))),
    Case("train_ckpt_epoch_negative", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: epoch is -1000000000, "
         "not a whole number in 0..1,000,000 (fix: start a new run from its weights with "
         "--weights)", files=SPECS,
         setup=crafted(_set("", epoch=-10**9))),
    Case("train_ckpt_epoch_fraction", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: epoch is 0.5, not a "
         "whole number in 0..1,000,000 (fix: start a new run from its weights with "
         "--weights)", files=SPECS,
         setup=crafted(_set("", epoch=0.5))),
    Case("train_ckpt_wait_text", RESUME,
         'error: ck.npz: the checkpoint\'s meta record is damaged: wait is "x", not a whole'
         " number >= 0 (fix: start a new run from its weights with --weights)",
         files=SPECS, setup=crafted(_set("", wait="x"))),
    Case("train_ckpt_history_too_long", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: history is 100 records, "
         "not one record per epoch (1) (fix: start a new run from its weights with "
         "--weights)", files=SPECS,
         setup=crafted(lambda m: m.update(history=m["history"] * 100))),
    Case("train_ckpt_history_nan", RESUME,
         'error: ck.npz: the checkpoint\'s meta record is damaged: history[0] is {"epoch": '
         '1, "train_loss": NaN, "train_acc": 0.0834621329211… (98 characters), not a '
         "finite train_loss (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(lambda m: m["history"][0].update(train_loss=float("nan")))),
    Case("train_ckpt_setup_data_record", RESUME,
         'error: ck.npz: the checkpoint\'s meta record is damaged: setup.data is {"a": 1}, '
         "not a --data source (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("setup", data={"a": 1}))),
    Case("train_ckpt_setup_val_split_text", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: setup.val_split is "
         '"abc", not a number in 0..0.9 (fix: start a new run from its weights with '
         "--weights)", files=SPECS,
         setup=crafted(_set("setup", val_split="abc"))),
    Case("train_ckpt_setup_val_split_5", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: setup.val_split is 5.0, "
         "not a number in 0..0.9 (fix: start a new run from its weights with --weights)",
         files=SPECS,
         setup=crafted(_set("setup", val_split=5.0))),
    Case("train_ckpt_setup_freeze_numbers", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: setup.freeze is [1, 2], "
         "not a list of names (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("setup", freeze=[1, 2]))),
    Case("train_ckpt_setup_freeze_text", RESUME,
         'error: ck.npz: the checkpoint\'s meta record is damaged: setup.freeze is "fc1", '
         "not a list of names (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("setup", freeze="fc1"))),
    Case("train_ckpt_setup_dtype", RESUME,
         "error: ck.npz: the checkpoint's meta record is damaged: setup.dtype is "
         '"float16", not float32 or float64 (fix: start a new run from its weights with '
         "--weights)", files=SPECS,
         setup=crafted(_set("setup", dtype="float16"))),
    Case("train_ckpt_stored_optimizer", RESUME,
         "error: ck.npz: the checkpoint's stored options are damaged: optimizer is "
         '"bogus", not one of sgd, momentum, nesterov, adagrad, rmsprop, adam (fix: start '
         "a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("config", optimizer="bogus"))),
    Case("train_ckpt_stored_schedule", RESUME,
         "error: ck.npz: the checkpoint's stored options are damaged: schedule is "
         '"exponential:-1", not a valid one (schedule \'exponential:-1\': the rate must be >'
         " 0) (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(_set("config", schedule="exponential:-1"))),
    Case("train_ckpt_model_text", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds <U1 values, not real "
         "floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.full((16, 64), "x")))),
    Case("train_ckpt_model_complex", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds complex128 values, not real "
         "floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.zeros((16, 64), complex)))),
    Case("train_ckpt_model_datetime", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds datetime64[s] values, not real "
         "floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight",
                                    np.zeros((16, 64), "datetime64[s]")))),
    Case("train_ckpt_model_record", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds [('a', '<f4')] values, not real"
         " floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.zeros((16, 64), [("a", "f4")])))),
    Case("train_ckpt_model_nan", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds a value nan (NaN or infinite) "
         "(fix: load the weights of a run that did not diverge)", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.full((16, 64), np.nan)))),
    Case("train_ckpt_model_beyond_float32", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' holds a value of 1e+300, beyond "
         "float32's range (fix: load the weights of a run that did not diverge, or use "
         "--dtype float64)", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.full((16, 64), 1e300)))),
    Case("train_ckpt_optimizer_text", RESUME,
         "error: ck.npz: optimizer state: 'm/fc1.weight' holds <U1 values, not real "
         "floating-point numbers (fix: start a new run from its weights with --weights)",
         files=SPECS,
         setup=crafted(parts=_array("optimizer", "m/fc1.weight", np.full((16, 64), "x")))),
    Case("train_ckpt_optimizer_shape", RESUME,
         "error: ck.npz: optimizer state: 'm/fc1.weight' has shape 3, its parameter 16×64 "
         "(fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(parts=_array("optimizer", "m/fc1.weight", np.zeros(3, np.float32)))),
    Case("train_ckpt_optimizer_stranger", RESUME,
         "error: ck.npz: optimizer state: 'm/nothere' belongs to no parameter of the model"
         " (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(parts=_array("optimizer", "m/nothere", np.zeros(3, np.float32)))),
    Case("train_ckpt_optimizer_steps", RESUME,
         "error: ck.npz: optimizer state: the step count is -5 (int64, shape ()), not a "
         "whole number >= 0 (fix: start a new run from its weights with --weights)", files=SPECS,
         setup=crafted(parts=_array("optimizer", "t", np.array(-5)))),
    Case("train_ckpt_best_wrong_shape", RESUME,
         "error: ck.npz: weights: array 'fc1.weight' has shape 3, the model needs 16×64 "
         "(fix: load weights saved from the same spec and input shape)", files=SPECS,
         setup=crafted(lambda m: m.update(ended_on_best=True),
                       lambda a: a.update(best={"fc1.weight": np.zeros(3, np.float32)}))),
    Case("train_weights_model_text", [*T, "--weights", "ck.npz", "--out", "out"],
         "error: ck.npz: weights: array 'fc1.weight' holds <U1 values, not real "
         "floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))",
         files=SPECS, setup=crafted(parts=_array("model", "fc1.weight",
                                                 np.full((16, 64), "x")))),
    Case("train_evaluate_model_text", [*E, "ck.npz"],
         "error: ck.npz: weights: array 'fc1.weight' holds <U1 values, not real "
         "floating-point numbers (fix: load weights saved by archcalc (float32 or "
         "float64))", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.full((16, 64), "x")))),
    Case("train_evaluate_stored_class_weights", [*E, "ck.npz"],
         "error: ck.npz: the checkpoint's stored class weights '1,2' give 2 number(s); "
         "dataset 'digits' has 10 classes (fix: evaluate on the dataset the run was "
         "trained on (--data))", files=SPECS,
         setup=crafted(_set("config", class_weights="1,2"))),
    Case("train_evaluate_stored_loss", [*E, "ck.npz"],
         'error: ck.npz: the checkpoint\'s stored options are damaged: loss is "bogus", not'
         " one of cross_entropy, bce, mse, half_sse, mae, hinge (fix: start a new run from its "
         "weights with --weights)", files=SPECS,
         setup=crafted(_set("config", loss="bogus"))),
    Case("train_evaluate_huge_weights", [*E, "ck.npz"],
         "error: ck.npz: the test loss is nan: these weights make the network's outputs "
         "overflow (fix: evaluate the checkpoint of a run that did not diverge)", files=SPECS,
         setup=crafted(parts=_array("model", "fc1.weight", np.full((16, 64), 3e38, np.float32)))),
    # F4: a header nested 100,000 deep
    Case("train_evaluate_deep_header", [*E, "deep.npz"],
         "error: deep.npz: its header does not match its arrays (damaged, or not written "
         "by archcalc) (fix: point at a checkpoint or weights .npz written by archcalc)",
         files=SPECS, setup=lambda w:
         _raw_header(w / "deep.npz", "[" * 100_000 + "]" * 100_000)),
    # F5: the spec's output size and the memory forecast, before the model is built
    Case("train_outputs_vs_classes_first", ["train", "vgg16", "--input", "1x224x224",
                                            "--memory-budget", "1000TB", "--out", "out"],
         "error: dataset 'digits' has 10 classes; spec 'vgg16' ends with 1,000 output "
         "value(s) per image (layer 'fc8') (fix: make the last layer give 10 units, e.g. "
         "'- dense: 10')"),
    # the forecast counts the 1,797 digits fitted to 512×512 (hostile4 F4)
    Case("train_memory_forecast", ["train", "lenet5", "--input", "1x512x512",
                                   "--memory-budget", "1.5GB", "--out", "out"],
         "error: training lenet5 at batch 64 needs about 3.8 GB (1.9 GB of activations and"
         " their gradients, 471.1 MB of fitted images, 1.4 GB of weights, gradients, "
         "optimizer state and scratch), more than the memory budget of 1.5 GB (fix: "
         "--batch-size 2 fits; or a smaller --input, or raise --memory-budget)"),
    Case("train_memory_nothing_fits", ["train", "deep.yaml", "--memory-budget", "500MB",
                                       "--out", "out"],
         "error: training deep at batch 64 needs about 6.3 GB (55.6 MB of activations and "
         "their gradients, 6.2 GB of weights, gradients, optimizer state and scratch), "
         "more than the memory budget of 500.0 MB (fix: even --batch-size 1 does not fit; "
         "or a smaller --input, or raise --memory-budget)", files=SPECS2),
    Case("train_memory_budget_bad", [*T, "--memory-budget", "lots"],
         "error: train: invalid value for '--memory-budget': bad memory size 'lots' (fix: "
         "write e.g. 2GB, 500MB or 1.5GiB)", code=2, files=SPECS),
    # F6: a schedule whose rate leaves the float range
    Case("train_schedule_overflows", [*T, "--lr", "1e-300", "--schedule", "exponential:1e200",
                                      "--epochs", "5", "--out", "out"],
         "error: --schedule exponential:1e200 with --lr 1e-300 overflows the float range "
         "at epoch 5: the rate would be about 1e+500 (fix: a factor nearer 1, fewer "
         "--epochs, or another --lr)", files=SPECS),
    Case("train_schedule_step_overflows", [*T, "--lr", "0.001", "--schedule", "step:1,1e308",
                                           "--epochs", "3", "--out", "out"],
         "error: --schedule step:1,1e308 with --lr 0.001 overflows the float range at "
         "epoch 3: the rate would be about 1e+613 (fix: a factor nearer 1, fewer --epochs,"
         " or another --lr)", files=SPECS),
    Case("train_schedule_underflows", [*T, "--schedule", "exponential:1e-200", "--epochs", "4",
                                       "--out", "out"],
         "error: --schedule exponential:1e-200 with --lr 0.001 underflows the float range "
         "at epoch 4: the rate would be about 1e-603 (fix: a factor nearer 1, fewer "
         "--epochs, or another --lr)", files=SPECS),
    Case("train_schedule_raises_the_rate", [*T, "--schedule", "exponential:1e10", "--epochs",
                                            "5", "--out", "out"],
         "error: training diverged: weight 'fc1.weight' became NaN or infinite at epoch 5,"
         " batch 1 (fix: the schedule exponential:1e10 raised the rate from 0.001 to "
         "1e+37; use a factor below 1; the last good checkpoint (epoch 4) is in "
         "out/checkpoint.npz)", files=SPECS),
    # F8: divergence in one line, without numpy's warnings
    Case("train_diverges_full_batch", [*T, "--lr", "1e25", "--optimizer", "sgd",
                                       "--batch-size", "full", "--epochs", "1", "--out", "out"],
         "error: training diverged: the validation loss became nan at the end of epoch 1 "
         "(fix: lower the learning rate, e.g. --lr 1e+24; the last good checkpoint (epoch "
         "0) is in out/checkpoint.npz)", files=SPECS),
    # B1, B2: options the library parses are usage errors, before any data is read
    Case("train_schedule_unknown", [*T, "--schedule", "bogus"],
         "error: train: invalid value for '--schedule': unknown schedule 'bogus' (fix: one"
         " of constant, inverse-time:k, exponential:gamma, inv-sqrt, step:every,gamma)",
         code=2, files=SPECS),
    Case("train_schedule_extra_argument", [*T, "--schedule", "Constant:5"],
         "error: train: invalid value for '--schedule': schedule 'Constant:5' takes 0 "
         "argument(s) (fix: write constant)", code=2,
         files=SPECS),
    Case("train_data_unknown", [*T, "--data", "bogus"],
         "error: train: invalid value for '--data': unknown data source 'bogus' (fix: "
         "--data digits, fashion-mnist, fashion-mnist:DIR or idx:DIR)", code=2, files=SPECS),
    Case("train_data_idx_without_dir", [*T, "--data", "idx"],
         "error: train: invalid value for '--data': --data idx needs a directory: idx:DIR "
         "(fix: e.g. --data idx:mnist)", code=2, files=SPECS),
    Case("train_class_weights_empty", [*T, "--class-weights", ""],
         "error: train: invalid value for '--class-weights': class weights '': need one "
         "finite number >= 0 per class, at least one > 0 (fix: --class-weights balanced, "
         "or one weight per class, e.g. 1,1,5)", code=2, files=SPECS),
    Case("train_class_weights_all_zero", [*T, "--class-weights", "0,0"],
         "error: train: invalid value for '--class-weights': class weights '0,0': need one"
         " finite number >= 0 per class, at least one > 0 (fix: --class-weights balanced, "
         "or one weight per class, e.g. 1,1,5)", code=2,
         files=SPECS),
    Case("train_class_weights_count", [*T, "--class-weights", "1,2", "--out", "out"],
         "error: class weights '1,2' give 2 number(s); dataset 'digits' has 10 classes "
         "(fix: --class-weights balanced, or 10 weights, one per class)",
         files=SPECS),
    # B7: run directories that cannot be written, found before the data is read
    Case("train_out_proc", [*T, "--out", "/proc/self"],
         "error: /proc/self: cannot create files in this directory (a virtual file system "
         "such as /proc?) (fix: choose another --out)", files=SPECS),
    Case("train_out_sys", [*T, "--out", "/sys/kernel"],
         "error: cannot write /sys/kernel/checkpoint.npz: Permission denied (fix: make "
         "/sys/kernel and the file writable (chmod; an immutable file needs chattr -i), or"
         " write somewhere else)", files=SPECS),
    Case("train_out_dangling_link", [*T, "--out", "link"],
         "error: link: --out is a symbolic link to a missing directory (/nonexistent/x) "
         "(fix: create its target, or choose another --out)", files=SPECS,
         setup=lambda w: os.symlink("/nonexistent/x", w / "link")),
    Case("train_data_dir_link_loop", [*T, "--data", "idx:loop", "--out", "out"],
         "error: loop: cannot open the data directory: Too many levels of symbolic links "
         "(fix: point --data at a real directory)",
         files=SPECS, setup=lambda w: os.symlink("loop", w / "loop")),
    Case("train_idx_file_link_loop", [*T, "--data", "idx:d", "--out", "out"],
         "error: d/t10k-labels-idx1-ubyte: cannot read the file: Too many levels of "
         "symbolic links (fix: check the file and its disk)",
         files={**SPECS, **{k: v for k, v in idx_set(20).items() if "t10k-labels" not in k}},
         setup=lambda w: os.symlink("t10k-labels-idx1-ubyte",
                                    w / "d" / "t10k-labels-idx1-ubyte")),
    # B9: an archive of 60,000 members is refused by its count
    Case("train_evaluate_many_members", [*E, "many.npz"],
         "error: many.npz: it holds 60,000 arrays, more than the limit of 50,000 (fix: if "
         "the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_CHECKPOINT_MEMBERS=<larger number>)", files=SPECS,
         setup=lambda w: _many_members(w / "many.npz", 60_000)),
]


def _raw_header(path: Path, text: str) -> None:
    """A format-2 archive whose header is `text` (not JSON archcalc writes)."""
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("header.npy", "w") as fh:
            np.lib.format.write_array(fh, np.array(text))


def _many_members(path: Path, count: int) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            zf.writestr(f"model/{i}.npy", b"")


@pytest.mark.parametrize("case", CASES2, ids=lambda c: c.id)
def test_case_round2(case, tmp_path):
    check_case(case, tmp_path)


def test_memory_forecast_and_output_size_come_before_the_model(tmp_path):
    """vgg16 at 1×224×224 used to build the model (748 MB, 7.6 s) before it found 10 classes
    vs 1,000 outputs, and to train itself out of memory (2 GB, then a traceback); now the
    calculator decides both before anything is built."""
    for args, start in (
            (["train", "vgg16", "--input", "1x224x224", "--memory-budget", "1000TB"],
             "error: dataset 'digits' has 10 classes; spec 'vgg16' ends with 1,000 output"),
            (["train", "vgg16", "--input", "1x224x224", "--memory-budget", "2GB"],
             "error: training vgg16 at batch 64 needs about")):
        m = measure([*args, "--out", "run"], tmp_path)
        assert m.code == 1 and m.stderr.startswith(start), m.stderr
        assert m.peak_mb < 200 and m.cpu_s < 5, (args, m.peak_mb, m.cpu_s)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_idx_image_size_is_decided_from_the_headers(tmp_path):
    """A 4 kB sparse IDX file whose header says 1×40,000×40,000 (1.6 GB of pixels) used to
    be read whole before the size check; the headers alone now refuse it."""
    files = idx_set(20)
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content)
    (tmp_path / "tiny.yaml").write_text(TINY)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        with open(tmp_path / "d" / name, "wb") as fh:
            fh.write(bytes([0, 0, 8, 3]) + struct.pack(">3i", 1, 40_000, 40_000))
            fh.truncate(16 + 40_000 * 40_000)                # sparse: no blocks on disk
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + struct.pack(">i", 1) + b"\x00")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + struct.pack(">i", 1) + b"\x01")
    m = measure(["train", "tiny.yaml", "--data", "idx:d", "--out", "run"], tmp_path)
    assert m.code == 1 and "has 40000×40000 images; spec 'tiny' takes a flat input of 64" \
        in m.stderr, m.stderr
    assert m.peak_mb < 200 and m.cpu_s < 5, (m.peak_mb, m.cpu_s)


def test_an_archive_of_60000_members_is_refused_by_its_count(tmp_path):
    """14 MB of empty members took 9.2 s and 104 MB (a header read each) before refusal."""
    _many_members(tmp_path / "many.npz", 60_000)
    (tmp_path / "tiny.yaml").write_text(TINY)
    m = measure(["evaluate", "tiny.yaml", "many.npz"], tmp_path)
    assert m.code == 1 and "it holds 60,000 arrays, more than the limit of 50,000" in m.stderr
    assert m.peak_mb < 200 and m.cpu_s < 5, (m.peak_mb, m.cpu_s)


# hostile4: resumes under another spec, batch norm at batch 1, --freeze as a text prefix,
# the fitted images in the memory forecast
RENAMED = TINY.replace("name: tiny", "name: other")
TANH = TINY.replace("relu", "tanh")
EXTRA = TINY.replace("{dense: 10}]", "{dense: 10}, relu]")
BN = "name: bn\ninput: [64]\nlayers: [{dense: 16}, batchnorm, relu, {dense: 10}]\n"
GAP = ("name: gap\ninput: [1, 8, 8]\nlayers: [{conv: {filters: 8, kernel: 3, padding: 1}}, "
       "relu, global_avgpool, flatten, {dense: 10}]\n")
SPEC_FIX = ("(fix: resume with the spec the run was trained with, or start a new run from "
            "its weights: --weights run/checkpoint.npz)")

CASES3 = [
    Case("train_resume_renamed_spec", ["train", "other.yaml", "--resume", "run", "--epochs", "2"],
         "error: run/checkpoint.npz: the checkpoint's run trained spec 'tiny'; this spec is "
         "named 'other' " + SPEC_FIX, files={**SPECS, "other.yaml": RENAMED}, setup=trained_run),
    Case("train_resume_other_activation", ["train", "t.yaml", "--resume", "run", "--epochs", "2"],
         "error: run/checkpoint.npz: the spec is not the one the checkpoint's run trained: "
         "layer 2 is 'tanh1' (tanh) here, 'relu1' (relu) in the checkpoint's run " + SPEC_FIX,
         files={**SPECS, "t.yaml": TANH}, setup=trained_run),
    Case("train_resume_extra_layer", ["train", "t.yaml", "--resume", "run", "--epochs", "2"],
         "error: run/checkpoint.npz: the spec is not the one the checkpoint's run trained: "
         "layer 4 'relu2' (relu) is not in the checkpoint's run " + SPEC_FIX,
         files={**SPECS, "t.yaml": EXTRA}, setup=trained_run),
    Case("train_bn_batch_of_one", ["train", "bn.yaml", "--batch-size", "1", "--out", "out"],
         "error: layer 'bn1' (batchnorm) normalises one value per channel over the batch, and "
         "--batch-size 1 gives batches of one example (fix: --batch-size 2 or more)",
         files={"bn.yaml": BN}),
    Case("train_freeze_is_not_a_text_prefix", [*T, "--freeze", "fc", "--out", "out"],
         "error: --freeze 'fc' matches no layer or block with parameters (fix: it names a "
         "whole layer or block, not the start of a name: --freeze fc1 --freeze fc2)",
         files=SPECS),
]


@pytest.mark.parametrize("case", CASES3, ids=lambda c: c.id)
def test_case_round4(case, tmp_path):
    check_case(case, tmp_path)
    assert not (tmp_path / "out").exists()          # a refused run leaves no empty --out


def test_fitted_images_count_in_the_memory_forecast(tmp_path):
    """F4: the digits fitted to 1×1200×1200 (5 GB) were allocated (2 GB, then the generic
    out-of-memory line naming a --batch option train does not have); refused from the
    headers now, by train and by evaluate."""
    (tmp_path / "gap.yaml").write_text(GAP)
    want = ("error: the images of 'digits' fitted to 1×1200×1200 take about 5.2 GB (all "
            "splits, while they are split), more than the memory budget of 1.0 GB (fix: a "
            "smaller --input, or raise --memory-budget)")
    m = measure(["train", "gap.yaml", "--batch-size", "1", "--input", "1x1200x1200",
                 "--memory-budget", "1GB", "--out", "run"], tmp_path)
    assert m.code == 1 and m.stderr.strip() == want, m.stderr
    assert m.peak_mb < 200 and m.cpu_s < 5, (m.peak_mb, m.cpu_s)
    assert not (tmp_path / "run").exists()
