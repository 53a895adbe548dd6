"""`archcalc memory --budget/--timeline/--plot`, and the largest batch against the executor.

The oracle for the budget: the executor run with MemoryRecorder at the batch the formula
allows and at one more image; its measured peak (the largest recorded step + the nbytes of
its weights, gradients and optimizer slots) must fit at the first and not at the second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from archcalc.calc.analyze import analyze
from archcalc.calc.peak import envelope, largest_batch
from archcalc.nn import optim
from archcalc.nn.network import MemoryRecorder, Model
from archcalc.spec import load


def measured_peak(network, batch: int, optimizer: str | None) -> int:
    """The executor's peak bytes for one inference pass (optimizer None) or one training
    step with `optimizer`: recorded activations and gradients + its static arrays."""
    model = Model(network)
    model.forward(np.zeros((1,) + model.input_shape, dtype=model.dtype))
    static = sum(a.nbytes for a in model.params.values()) + sum(
        a.nbytes for a in model.buffers.values())
    model.recorder = MemoryRecorder()
    x = np.random.default_rng(0).standard_normal((batch,) + model.input_shape)
    y = model.forward(x, training=optimizer is not None)
    if optimizer is not None:
        model.backward(np.ones_like(y), input_grad=False)
        opt = optim.make(optimizer, 0.01)
        opt.step(model.params, model.grads, model.frozen)
        static += sum(a.nbytes for a in model.grads.values()) + sum(
            a.nbytes for table in opt.state.values() for a in table.values())
    return static + max(b for _, _, b in model.recorder.steps)


@pytest.mark.parametrize("optimizer", [None, "sgd", "adam"])
def test_the_largest_batch_fits_and_one_more_does_not(optimizer):
    network = load("lenet5")
    budget = 2_000_000          # about 10-50 images of lenet5, depending on the case
    mode = "inference" if optimizer is None else "training"
    n = largest_batch(envelope(analyze(network), mode, optimizer), budget)
    assert n >= 2
    assert measured_peak(network, n, optimizer) <= budget < measured_peak(network, n + 1,
                                                                          optimizer)


def test_bisection_equals_a_scan():
    """On the exact formula: the first batch a scan finds too big, minus one, for budgets
    around every step's line (where the argmax step changes with N)."""
    for name in ("lenet5", "mobilenet_v3_large"):
        env = envelope(analyze(load(name)), "training", "adam")
        for budget in (env.peak(1) - 1, env.peak(1), env.peak(7) + 3, env.peak(40)):
            n = 0
            while env.peak(n + 1) <= budget:
                n += 1
            assert largest_batch(env, budget) == n


def test_budget_cli_table_and_json(run):
    out = run("memory", "lenet5", "--budget", "2MB").stdout
    assert "Largest batch of lenet5 within 1.91 MiB" in out
    assert "training, adam" in out and "bisection" in out
    data = json.loads(run("memory", "lenet5", "--budget", "2MB", "--optimizer", "sgd",
                          "--format", "json").stdout)
    assert data["budget_bytes"] == 2_000_000
    assert [(f["mode"], f["optimizer"]) for f in data["fits"]] == [("inference", None),
                                                                  ("training", "sgd")]
    for fit in data["fits"]:
        assert fit["peak_bytes"] <= 2_000_000 < fit["next_batch_peak_bytes"]
    none = json.loads(run("memory", "vgg16", "--budget", "100MB", "--format",
                          "json").stdout)["fits"]
    assert all(f["largest_batch"] == 0 and f["peak_bytes"] is None for f in none[1:])


@pytest.mark.parametrize("bad", ["lots", "0", "2EB", "-1GB"])
def test_a_bad_budget_is_one_line(run, bad):
    result = run("memory", "lenet5", "--budget", bad)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--budget" in result.output


def test_timeline_cli(run):
    data = json.loads(run("memory", "lenet5", "--timeline", "--batch", "3", "--optimizer",
                          "momentum", "--format", "json").stdout)
    steps = data["timeline"]
    assert data["mode"] == "training" and data["optimizer"] == "momentum"
    assert [s["phase"] for s in steps].count("forward") == 12   # one per layer
    assert data["peak_bytes"] == max(s["bytes"] for s in steps)
    assert all(s["bytes"] == s["held_bytes"] + s["static_bytes"] for s in steps)
    out = run("memory", "lenet5", "--timeline", "--mode", "inference").stdout
    assert "Memory timeline of lenet5 (inference)" in out and "Peak: step" in out
    # the default output is unchanged by the new options
    assert "Memory timeline" not in run("memory", "lenet5").stdout


def test_timeline_plot(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "t.png"
    result = run("memory", "lenet5", "--plot", str(out))
    assert result.exit_code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run("memory", "lenet5", "--plot", str(tmp_path / "t.gif"))
    assert bad.exit_code == 1 and "Traceback" not in bad.output
