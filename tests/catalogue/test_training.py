"""Catalogue: training runs and checkpoints (issue 8, classes 6, 8 and 9 for train/evaluate):
run directories that hold another run, checkpoints that are missing, corrupt, cut, foreign,
bombs or from another spec, resumed runs that ask for other options, and options out of
range (seed, non-finite floats, shifts larger than the image)."""

from __future__ import annotations

import fcntl
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from archcalc.nn import build, data as datamod, save_weights, train
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
         "error: run/checkpoint.npz: weights: array 'fc1.weight' has shape 16×64, the model "
         "needs 30×64 (the checkpoint was saved from spec 'tiny', not 'wide') (fix: load "
         "weights saved from the same spec and input shape)", files=SPECS, setup=trained_run),
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
