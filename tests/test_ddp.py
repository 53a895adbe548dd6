"""examples/train_ddp.py under torchrun: two processes on this machine (gloo) train lenet5 for
a few steps on the embedded digits. The loss falls, both processes end with the same
weights, and archcalc reads the weights rank 0 wrote: `archcalc evaluate` scores them on the
same test images as the example's own torch evaluation, and must find the same accuracy.
About 10 s on 2 cores."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from archcalc.nn.network import build
from archcalc.nn.weights import load_weights
from archcalc.spec import load

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_ddp.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp.npz"
    # python -m torch.distributed.run is torchrun, from this interpreter's torch
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               str(EXAMPLE), "--spec", "lenet5", "--steps", "30", "--log-every", "3",
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout

    losses = [float(v) for v in re.findall(r"^step \d+ loss ([0-9.]+)$", text, re.M)]
    assert len(losses) == 11  # step 1, then every third step to 30
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses

    digests = dict(re.findall(r"^rank (\d): weights sha256 ([0-9a-f]{64})$", text, re.M))
    assert set(digests) == {"0", "1"}
    assert digests["0"] == digests["1"]

    model = build(load("lenet5"))
    load_weights(model, out, strict=True)
    torch_accuracy = re.search(r"^test accuracy ([0-9.]+)%$", text, re.M).group(1)
    evaluate = subprocess.run([sys.executable, "-m", "archcalc", "evaluate", "lenet5", str(out)],
                              capture_output=True, text=True, timeout=60)
    assert evaluate.returncode == 0, evaluate.stderr
    assert f"test accuracy {torch_accuracy}%" in evaluate.stdout
