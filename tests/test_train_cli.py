"""`archcalc train` and `archcalc evaluate` through click: files, output, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np

from archcalc.nn import train

TINY = """
name: tiny
input: [64]
layers:
  - dense: 24
  - relu
  - dense: 10
"""

HISTORY_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "run_id"}


def test_train_writes_every_file(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    out = tmp_path / "run"
    result = run("train", spec, "--epochs", "2", "--batch-size", "32", "--lr", "0.01",
                 "--init", "lecun", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "input: 8×8 images flattened to 64 values; pixels ÷16 to 0..1" in result.output
    assert "data:  digits, 1,294 train / 144 val / 359 test, 10 classes" in result.output
    assert "2/2  loss" in result.output and "test accuracy" in result.output
    assert "augment: none" in result.output and "lecun init" in result.output
    history = json.loads((out / "history.json").read_text())
    assert [set(h) for h in history] == [HISTORY_KEYS, HISTORY_KEYS]
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["lr"] == 0.01
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_acc", "test_loss", "epochs", "seconds", "images_per_second"} <= set(metrics)
    assert metrics["epochs"] == 2 and metrics["test_acc"] > 0.8 and metrics["init"] == "lecun"
    ckpt = train.read_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["epoch"] == 2 and "t" in ckpt.optimizer
    if importlib.util.find_spec("matplotlib"):
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert not (out / "curves.png").exists() and "pip install 'archcalc[plot]'" in result.output


def test_without_matplotlib_curves_are_skipped_with_a_hint(run, write_spec, tmp_path,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib fails
    out = tmp_path / "[run]"                                 # brackets are not rich markup
    result = run("train", write_spec(TINY), "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert not (out / "curves.png").exists() and (out / "metrics.json").exists()
    assert (f"wrote checkpoint.npz, history.json, metrics.json to {out} (curves.png needs "
            "matplotlib: pip install 'archcalc[plot]')") in " ".join(result.output.split())


def test_resume_continues_and_evaluate_prints_confusion(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    out = tmp_path / "run"
    assert run("train", spec, "--epochs", "1", "--out", str(out)).exit_code == 0
    result = run("train", spec, "--epochs", "2", "--out", str(out),
                 "--resume", str(out / "checkpoint.npz"))
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1" in result.output and "note:" not in result.output
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    result = run("evaluate", spec, str(out / "checkpoint.npz"))
    assert result.exit_code == 0, result.output
    assert f"test accuracy {metrics['test_acc']:.2%}" in result.output
    assert "confusion matrix (rows: true class, columns: predicted)" in result.output
    assert "recall" in result.output
    rows = [line for line in result.output.splitlines() if line.strip()[:1].isdigit()
            and "│" not in line]
    counts = [[int(v) if v.isdigit() else 0 for v in line.split()[1:11]] for line in rows[:10]]
    assert np.sum(counts) == 359                     # every test image in the matrix


def test_fine_tune_with_frozen_layers(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    first = tmp_path / "first"
    assert run("train", spec, "--epochs", "1", "--out", str(first)).exit_code == 0
    result = run("train", spec, "--epochs", "1", "--out", str(tmp_path / "tuned"),
                 "--weights", str(first / "checkpoint.npz"), "--freeze", "fc1",
                 "--optimizer", "sgd")
    assert result.exit_code == 0, result.output
    assert "250 trainable parameters, 1,560 frozen" in result.output
    a = train.read_checkpoint(first / "checkpoint.npz").state
    b = train.read_checkpoint(tmp_path / "tuned" / "checkpoint.npz").state
    assert (a["fc1.weight"] == b["fc1.weight"]).all()
    assert not (a["fc2.weight"] == b["fc2.weight"]).all()


def test_one_line_errors(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    five = write_spec(TINY.replace("dense: 10", "dense: 5"), "five.yaml")
    cases = [
        (["train", spec, "--data", f"idx:{tmp_path / 'none'}"], "no such data directory"),
        (["train", five, "--out", str(tmp_path / "x")],
         "dataset 'digits' has 10 classes; spec 'tiny' ends with 5 output value(s)"),
        (["train", "lenet5", "--input", "3x32x32"],
         "1-channel (grayscale) 8×8 images; spec 'lenet5' takes 3×32×32"),
        (["train", spec, "--resume", str(tmp_path / "nope.npz")], "no such checkpoint"),
        (["train", spec, "--freeze", "conv9", "--out", str(tmp_path / "y")],
         "--freeze 'conv9' matches no layer or block with parameters"),
        (["train", spec, "--translate", "2"], "augmentation needs C×H×W images"),
        (["evaluate", spec, str(tmp_path / "nope.npz")], "no such checkpoint"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.output)
        assert message in lines[0], (args, lines[0])
    # options the library parses are usage errors (exit 2), found before any data is read
    usage = [(["train", spec, "--data", "mnist"], "unknown data source 'mnist'"),
             (["train", spec, "--schedule", "cosine"], "unknown schedule 'cosine'")]
    for args, message in usage:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.output)


def test_checkpoint_of_another_spec_names_the_array(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    wide = write_spec(TINY.replace("name: tiny", "name: wide").replace("dense: 24", "dense: 30"),
                      "wide.yaml")
    out = tmp_path / "run"
    assert run("train", spec, "--epochs", "1", "--out", str(out)).exit_code == 0
    result = run("evaluate", wide, str(out / "checkpoint.npz"))
    assert result.exit_code == 1
    assert "array 'fc1.weight' has shape 24×64, the model needs 30×64" in result.output
    assert "saved from spec 'tiny', not 'wide'" in result.output


def test_bad_batch_size_is_a_usage_error(run, write_spec):
    result = run("train", write_spec(TINY), "--batch-size", "0")
    assert result.exit_code == 2 and "'0' is not a batch size" in result.output


def test_digits_on_an_image_input_are_shifted_by_default(run, write_spec, tmp_path):
    cnn = write_spec("""
name: cnn
input: [1, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3}
  - relu
  - flatten
  - dense: 10
""")
    result = run("train", cnn, "--epochs", "1", "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert "input: 8×8 images, used as they are; pixels ÷16 to 0..1" in result.output
    assert ("augment: random shifts of up to 2 px (digits default; --translate 0 turns it off)"
            in result.output)
    # a resumed run takes the options its checkpoint was trained with ...
    result = run("train", cnn, "--epochs", "2", "--resume", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert "augment: random shifts of up to 2 px\n" in result.output
    # ... and refuses one given on the command line that differs, naming the stored value
    ckpt = tmp_path / "a" / "checkpoint.npz"
    result = run("train", cnn, "--epochs", "3", "--translate", "0", "--resume", str(ckpt))
    assert result.exit_code == 1
    assert result.output == (
        f"error: {ckpt}: the checkpoint's run used --translate 2; this run asks for "
        f"--translate 0 (fix: drop that option to continue the run as it was, or start a new "
        f"run from its weights: --weights {ckpt})\n")


def test_ctrl_c_saves_then_exits_130(run, write_spec, tmp_path, monkeypatch):
    from archcalc.cli import train as cli_train

    def interrupt(self, batch, loss, acc):
        if self.epochs and "2/" in self.bar.tasks[0].description and batch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_train.RichProgress, "batch_end", interrupt)
    out = tmp_path / "run"
    result = run("train", write_spec(TINY), "--epochs", "5", "--out", str(out))
    assert result.exit_code == 130, result.output
    assert "interrupted: stopped after epoch 1 (the last one completed)" in result.output
    assert f"resume with: --resume {out / 'checkpoint.npz'}" in result.output
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert json.loads((out / "metrics.json").read_text())["interrupted"] is True
    assert train.read_checkpoint(out / "checkpoint.npz").meta["epoch"] == 1


# --- run directories (issue 8, class 8) ------------------------------------------------------

def run_ids(out):
    ckpt = train.read_checkpoint(out / "checkpoint.npz")
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return ckpt.meta["run_id"], {h["run_id"] for h in history}, metrics["run_id"]


def test_an_existing_run_is_refused_unless_overwrite(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    out = tmp_path / "run"
    assert run("train", spec, "--epochs", "2", "--out", str(out)).exit_code == 0
    before = (out / "checkpoint.npz").read_bytes()
    first_id, history_ids, metrics_id = run_ids(out)
    assert history_ids == {first_id} and metrics_id == first_id
    result = run("train", spec, "--epochs", "1", "--out", str(out))
    assert result.exit_code == 1 and "already holds a training run" in result.output
    assert "--overwrite replaces it" in result.output
    assert (out / "checkpoint.npz").read_bytes() == before          # nothing touched
    result = run("train", spec, "--epochs", "1", "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    new_id, history_ids, metrics_id = run_ids(out)
    assert new_id != first_id and history_ids == {new_id} and metrics_id == new_id
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_resume_without_the_seed_continues_the_same_run(run, write_spec, tmp_path):
    """The issue's reproducer: --seed 5, resumed without --seed, silently used seed 0."""
    spec = write_spec(TINY)
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--seed", "5", "--batch-size", "50", "--lr", "0.01", "--optimizer", "momentum"]
    assert run("train", spec, "--epochs", "3", "--out", str(a), *common).exit_code == 0
    assert run("train", spec, "--epochs", "1", "--out", str(b), *common).exit_code == 0
    result = run("train", spec, "--epochs", "3", "--resume", str(b))
    assert result.exit_code == 0, result.output
    assert "momentum, lr 0.01, batch 50" in result.output and "seed 5" in result.output
    straight = train.read_checkpoint(a / "checkpoint.npz")
    resumed = train.read_checkpoint(b / "checkpoint.npz")
    for name, value in straight.state.items():
        np.testing.assert_array_equal(value, resumed.state[name], err_msg=name)
    ckpt_id, history_ids, metrics_id = run_ids(b)       # one run, resumed: one run id
    assert history_ids == {ckpt_id} and metrics_id == ckpt_id


def test_orphaned_temp_files_are_cleaned_and_only_ours(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    out = tmp_path / "run"
    assert run("train", spec, "--epochs", "1", "--out", str(out)).exit_code == 0
    orphans = [".checkpoint.npz.k2j4_x9a.tmp", ".history.json.abcdefgh.tmp"]
    kept = [".checkpoint.npz.not-ours.tmp", "notes.tmp", ".data.npz.abcdefgh.tmp"]
    for name in orphans + kept:
        (out / name).write_bytes(b"half")
    result = run("train", spec, "--epochs", "2", "--resume", str(out))
    assert result.exit_code == 0, result.output
    left = {p.name for p in out.iterdir()}
    assert not left & set(orphans) and set(kept) <= left


# --- hostile round 2 -------------------------------------------------------------------------

def test_ctrl_c_before_the_first_epoch_does_not_blame_matplotlib(run, write_spec, tmp_path,
                                                                 monkeypatch):
    from archcalc.cli import train as cli_train

    def interrupt(self, batch, loss, acc):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train.RichProgress, "batch_end", interrupt)
    out = tmp_path / "run"
    result = run("train", write_spec(TINY), "--epochs", "5", "--out", str(out))
    assert result.exit_code == 130, result.output
    assert "interrupted: stopped after epoch 0" in result.output
    assert "matplotlib" not in result.output
    assert "no curves.png: no epoch completed" in result.output
    assert train.read_checkpoint(out / "checkpoint.npz").meta["epoch"] == 0


def test_sigterm_saves_and_exits_143_like_ctrl_c(write_spec, tmp_path):
    """SIGTERM (kill, a cancelled CI job) stops after the current batch, writes everything,
    says how to resume, and exits 128 + 15."""
    import os
    import signal
    import subprocess
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", "train", write_spec(TINY),
                             "--epochs", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1"})
    for line in proc.stdout:                         # the first completed epoch's line
        if "/100000  loss" in line:
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM): stopped after epoch" in stdout
    assert f"resume with: --resume {out / 'checkpoint.npz'}" in stdout
    assert json.loads((out / "metrics.json").read_text())["interrupted"] is True
    assert "Traceback" not in stderr


def test_monitor_val_acc_without_a_validation_split_says_what_it_watches(run, write_spec,
                                                                         tmp_path):
    result = run("train", write_spec(TINY), "--epochs", "2", "--val-split", "0", "--monitor",
                 "val_acc", "--patience", "1", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "note: no validation split: --monitor val_acc watches train_acc" in result.output
    assert "no progress in val_acc" not in result.output


def test_weights_accepts_a_run_directory(run, write_spec, tmp_path):
    spec = write_spec(TINY)
    assert run("train", spec, "--epochs", "1", "--out", str(tmp_path / "a")).exit_code == 0
    result = run("train", spec, "--epochs", "1", "--weights", str(tmp_path / "a"), "--out",
                 str(tmp_path / "b"))
    assert result.exit_code == 0, result.output


def test_float64_pixels_near_1e300_train_without_warnings(tmp_path, write_spec):
    """Pixels are scaled in float64 before the cast to float32 (1e300 is no float32), and
    the transform says the divisor in a few digits, not 300."""
    import subprocess
    import struct
    d = tmp_path / "d"
    d.mkdir()
    rng = np.random.default_rng(0)

    def blob(values, code, dtype):
        arr = np.asarray(values)
        head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
        return head + arr.astype(dtype).tobytes()
    for part, n in (("train", 50), ("t10k", 20)):
        (d / f"{part}-images-idx3-ubyte").write_bytes(
            blob(rng.random((n, 8, 8)) * 1e300, 0x0E, ">f8"))
        (d / f"{part}-labels-idx1-ubyte").write_bytes(blob(np.arange(n) % 10, 0x08, ">u1"))
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "archcalc",
                           "train", write_spec(TINY), "--data", f"idx:{d}", "--epochs", "1",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "pixels ÷9.99" in proc.stdout and "e+299 to 0..1" in proc.stdout


def test_a_full_disk_names_the_file_and_the_checkpoint_on_disk(run, write_spec, tmp_path,
                                                              monkeypatch):
    """The second checkpoint write fails with ENOSPC: one line naming checkpoint.npz and
    saying that epoch 0's checkpoint is on disk, with its history.json put back."""
    import errno
    from archcalc.nn import weights
    real, calls = weights.np.savez, []

    def savez(fh, **arrays):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, **arrays)

    monkeypatch.setattr(weights.np, "savez", savez)
    out = tmp_path / "run"
    result = run("train", write_spec(TINY), "--epochs", "2", "--out", str(out))
    assert result.exit_code == 1
    ckpt = out / "checkpoint.npz"
    assert result.stderr.strip() == (
        f"error: cannot write {ckpt}: No space left on device (fix: free space on that disk "
        f"(or quota), or write to another disk; {ckpt} still holds epoch 0)"), result.output
    assert json.loads((out / "history.json").read_text()) == []
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# --- hostile4 --------------------------------------------------------------------------------

def test_an_unwritable_curves_png_is_a_warning_after_a_complete_run(run, write_spec, tmp_path,
                                                                     monkeypatch):
    """F3b: a full disk at curves.png failed a finished run (exit 1, no test accuracy)."""
    import archcalc.cli.train as cli

    def full(history, path):
        raise train.write_error(path, OSError(28, "No space left on device"))
    monkeypatch.setattr(cli, "plot_curves", full)
    out = tmp_path / "run"
    result = run("train", write_spec(TINY), "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == (f"warning: could not write {out / 'curves.png'}: No space left on "
                         "device; the run is saved")
    assert any(line.startswith("test accuracy") for line in lines)
    assert json.loads((out / "metrics.json").read_text())["interrupted"] is False


def test_sigterm_after_the_last_epoch_lets_the_run_finish(run, write_spec, tmp_path,
                                                          monkeypatch):
    """F6: SIGTERM while the files were written ended in a bare 'terminated' with no
    curves and metrics saying 'not interrupted'; the run now completes and says so."""
    import os
    import signal
    import archcalc.cli.train as cli
    plot = cli.plot_curves

    def killed_while_plotting(history, path):
        os.kill(os.getpid(), signal.SIGTERM)
        return plot(history, path)
    monkeypatch.setattr(cli, "plot_curves", killed_while_plotting)
    out = tmp_path / "run"
    result = run("train", write_spec(TINY), "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        "note: SIGTERM came after the last epoch; the run completed and every file is written")
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_a_refused_run_leaves_no_empty_out_directory(run, write_spec, tmp_path):
    """F7: `--freeze fc` (layers fc1, fc2) is refused, names the layers, and the --out it
    created is gone; a directory that was there before stays."""
    spec = write_spec(TINY.replace("dense: 24", "dense: {units: 24, name: fc1}"))
    out = tmp_path / "new" / "run"
    result = run("train", spec, "--epochs", "1", "--out", str(out), "--freeze", "fc")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --freeze 'fc' matches no layer or block with parameters (fix: it names a "
        "whole layer or block, not the start of a name: --freeze fc1 --freeze fc2)")
    assert not out.exists()
    out.mkdir(parents=True)
    assert run("train", spec, "--out", str(out), "--freeze", "fc").exit_code == 1
    assert out.is_dir()
