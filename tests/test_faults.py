"""SIGKILL a training run at random moments and inside its checkpoint writes; after every
kill, what remains must load and the run directory's files must agree (issue 8).

Each kill hits `python -m archcalc train` in one run directory, alternately starting over
(--overwrite) and resuming (--resume), with a few runs let finish in between so that a
metrics.json and curves.png are there to go stale. Three kinds of moment:

- random: a uniform delay after the process starts (some land in start-up, most in training;
  with a tiny network and batch 16 an epoch takes milliseconds, so checkpoints are written
  many times a second and some kills land while one is being written);
- before_rename / after_rename: the K-th checkpoint write pauses at that point and creates a
  marker file (ARCHCALC_TEST_KILL_WINDOW, see archcalc.nn.weights._kill_window); the test
  kills as soon as the marker appears, so the kill lands exactly between a finished temp file
  and its rename, or between the new checkpoint and the history written after it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from archcalc.cli import main
from archcalc.nn import build, train
from archcalc.spec import load

SPEC = """
name: tiny
input: [64]
layers: [{dense: 16}, relu, {dense: 10}]
"""
FOREVER = "100000"                 # --epochs of a run that is always killed


def start(where: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "archcalc", "train", "tiny.yaml", "--out", "run",
         "--batch-size", "16", *args], cwd=where, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env={**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})})


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < end, "the checkpoint write never came"
        time.sleep(0.002)


def temps(run: Path) -> list[str]:
    return [p.name for p in run.iterdir() if p.name.endswith(".tmp")] if run.exists() else []


def check_consistent(where: Path, run: Path) -> dict:
    """What remains loads (library and `archcalc evaluate`), and every file agrees with the
    checkpoint: same run id, same epoch, same history."""
    ckpt_path = run / "checkpoint.npz"
    if not ckpt_path.exists():                     # killed before the first checkpoint
        assert not (run / "history.json").exists() and not (run / "metrics.json").exists()
        return {"epoch": None}
    ckpt = train.read_checkpoint(ckpt_path)
    model = build(load(str(where / "tiny.yaml")))
    train.load_into(model, ckpt.state, ckpt, "tiny")
    result = CliRunner().invoke(main, ["evaluate", str(where / "tiny.yaml"), str(ckpt_path)])
    assert result.exit_code == 0 and "test accuracy" in result.output, result.output
    run_id, epoch = ckpt.meta["run_id"], ckpt.meta["epoch"]
    if (run / "history.json").exists():
        history = json.loads((run / "history.json").read_text())
        assert [r["epoch"] for r in history] == list(range(1, epoch + 1))
        assert {r.pop("run_id") for r in history} <= {run_id}
        assert history == ckpt.meta["history"]
    if (run / "metrics.json").exists():
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["run_id"] == run_id and metrics["epochs"] == epoch
    return {"epoch": epoch}


def test_sigkill_never_leaves_a_run_that_does_not_load_or_disagrees(tmp_path):
    began = time.monotonic()
    (tmp_path / "tiny.yaml").write_text(SPEC)
    run = tmp_path / "run"
    rng = random.Random(8)
    plan = (["random"] * 7 + ["before_rename"] * 7 + ["after_rename"] * 7
            + ["finish"] * 3)
    rng.shuffle(plan)
    plan = ["finish"] + plan                       # a finished run is there to go stale first
    seen = {"kills": 0, "orphans": 0, "no_history": 0, "epochs": set()}
    for i, moment in enumerate(plan):
        epoch = check_consistent(tmp_path, run)["epoch"]
        resume = epoch is not None and rng.random() < 0.5
        how = ["--resume", "run"] if resume else ["--overwrite"]
        if moment == "finish":
            target = str((epoch or 0) + 2) if resume else "2"
            proc = start(tmp_path, [*how, "--epochs", target])
            assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()[-2000:]
            assert temps(run) == [], "a finished run cleaned the orphaned temp files"
            assert {"metrics.json", "history.json"} <= {p.name for p in run.iterdir()}
        elif moment == "random":
            proc = start(tmp_path, [*how, "--epochs", FOREVER])
            time.sleep(rng.uniform(0.0, 1.5))
            kill(proc)
        else:
            marker = tmp_path / f"marker{i}"
            window = f"{moment},{rng.randint(1, 4)},{marker}"
            proc = start(tmp_path, [*how, "--epochs", FOREVER],
                         {"ARCHCALC_TEST_KILL_WINDOW": window})
            wait_for(marker, proc)
            kill(proc)
            if moment == "before_rename":          # the kill hit a finished, unrenamed temp
                assert temps(run), "no temp file: the kill missed the write window"
                seen["orphans"] += 1
            else:                                  # the new checkpoint, history not yet back
                assert not (run / "history.json").exists()
                seen["no_history"] += 1
        seen["kills"] += moment != "finish"
        seen["epochs"].add(check_consistent(tmp_path, run)["epoch"])
    proc = start(tmp_path, ["--overwrite", "--epochs", "1"])
    assert proc.wait(timeout=60) == 0
    assert temps(run) == []
    check_consistent(tmp_path, run)
    assert seen["kills"] >= 20 and seen["orphans"] >= 5 and seen["no_history"] >= 5
    assert len(seen["epochs"]) >= 3, seen          # the kills met runs at different epochs
    print(f"{seen['kills']} kills in {time.monotonic() - began:.1f} s")
