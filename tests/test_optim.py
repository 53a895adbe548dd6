"""Optimizers, schedules and clipping: hand-worked steps and torch.optim step by step."""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import optim, schedules


def run(opt, grads_seq, p0=1.0):
    """Apply one scalar-parameter update per gradient; return p after each step."""
    params = {"w": np.array([p0])}
    out = []
    for g in grads_seq:
        opt.step(params, {"w": np.array([g])})
        out.append(float(params["w"][0]))
    return out


# --- hand-worked cases (p0 = 1) ----------------------------------------------------------

def test_sgd_by_hand():
    assert run(optim.SGD(0.1), [2.0]) == pytest.approx([0.8])


def test_momentum_by_hand():
    # v1 = 1 -> p = 1 - 0.1;  v2 = 0.9·1 + 1 = 1.9 -> p = 0.9 - 0.19
    assert run(optim.Momentum(0.1, 0.9), [1.0, 1.0]) == pytest.approx([0.9, 0.71])


def test_nesterov_by_hand():
    # v1 = 1: p -= 0.1·(1 + 0.9·1);  v2 = 1.9: p -= 0.1·(1 + 0.9·1.9)
    assert run(optim.Nesterov(0.1, 0.9), [1.0, 1.0]) == pytest.approx([0.81, 0.539])


def test_adagrad_by_hand():
    # G = 4: p -= 0.1·2/2;  G = 8: p -= 0.1·2/√8
    assert run(optim.Adagrad(0.1), [2.0, 2.0]) == pytest.approx([0.9, 0.8292893219])


def test_rmsprop_by_hand():
    # E = 0.01·1 = 0.01: p -= 0.01·1/(0.1 + 1e-8)
    assert run(optim.RMSProp(0.01, 0.99), [1.0]) == pytest.approx([0.90000001], abs=1e-10)


def test_adam_by_hand_bias_corrected():
    # step 1, g = 3: m = 0.3, v = 0.009, m̂ = 3, v̂ = 9 -> p -= 0.1·3/3 (a full lr step)
    # step 2, g = 1: m = 0.37, v = 0.009991, m̂ = 0.37/0.19, v̂ = 0.009991/0.001999
    assert run(optim.Adam(0.1), [3.0, 1.0]) == pytest.approx([0.9, 0.8128936053])


def test_frozen_params_do_not_move_and_get_no_state():
    opt = optim.Adam(0.1)
    params = {"a": np.ones(2), "b": np.ones(2)}
    opt.step(params, {"a": np.ones(2), "b": np.ones(2)}, frozen={"b"})
    assert params["b"].tolist() == [1.0, 1.0]
    assert params["a"].tolist() == pytest.approx([0.9, 0.9])
    assert not any(k.endswith("/b") for k in opt.state_dict())


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_dict_resumes_exactly(name):
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=(3, 2))} for _ in range(5)]
    straight = {"w": np.ones((3, 2))}
    opt = optim.make(name, 0.05)
    for g in grads:
        opt.step(straight, g)
    resumed = {"w": np.ones((3, 2))}
    first = optim.make(name, 0.05)
    for g in grads[:3]:
        first.step(resumed, g)
    saved = {k: v.copy() for k, v in first.state_dict().items()}
    second = optim.make(name, 0.05)
    second.load_state_dict(saved)
    for g in grads[3:]:
        second.step(resumed, g)
    np.testing.assert_array_equal(resumed["w"], straight["w"])


def test_bad_optimizer_and_lr():
    with pytest.raises(ArchcalcError, match="unknown optimizer 'adamw'"):
        optim.make("adamw", 0.1)
    with pytest.raises(ArchcalcError, match="learning rate must be > 0"):
        optim.make("sgd", 0.0)
    with pytest.raises(ArchcalcError, match="slot 'velocity'"):
        optim.make("adam", 0.1).load_state_dict({"t": np.array(1), "velocity/w": np.zeros(1)})


# --- clipping ----------------------------------------------------------------------------

def test_clip_by_global_norm_by_hand():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    norm = optim.clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose([grads["a"][0], grads["b"][0]], [0.6, 0.8], rtol=1e-6)
    small = {"a": np.array([0.3])}
    optim.clip_grad_norm(small, 1.0)
    assert small["a"][0] == 0.3                    # under the limit: untouched


# --- schedules ---------------------------------------------------------------------------

def test_schedules_by_hand():
    lr0 = 0.1
    assert schedules.parse("constant")(lr0, 7) == lr0
    assert schedules.parse("inverse-time:0.5")(lr0, 2) == pytest.approx(0.05)
    assert schedules.parse("exponential:0.9")(lr0, 2) == pytest.approx(0.081)
    assert schedules.parse("inv-sqrt")(lr0, 3) == pytest.approx(0.05)
    step = schedules.parse("step:3,0.5")
    assert [step(lr0, t) for t in range(7)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


@pytest.mark.parametrize("text,match", [("cosine", "unknown schedule 'cosine'"),
                                        ("step:3", "takes 2 argument"),
                                        ("exponential:x", "takes 1 argument"),
                                        ("step:0,0.5", "whole number"),
                                        ("inverse-time:-1", "must be > 0"),
                                        ("step:inf,0.5", "finite number"),
                                        ("exponential:nan", "finite number"),
                                        ("inverse-time:nan", "finite number"),
                                        ("step:1e300,0.5", "more than any run")])
def test_bad_schedules(text, match):
    with pytest.raises(ArchcalcError, match=match):
        schedules.parse(text)


# --- torch.optim as an oracle, step by step ----------------------------------------------

def _torch_optimizer(torch, name, tensors, lr):
    o = torch.optim
    return {
        "sgd": lambda: o.SGD(tensors, lr=lr),
        "momentum": lambda: o.SGD(tensors, lr=lr, momentum=0.9),
        "nesterov": lambda: o.SGD(tensors, lr=lr, momentum=0.9, nesterov=True),
        "adagrad": lambda: o.Adagrad(tensors, lr=lr),
        "rmsprop": lambda: o.RMSprop(tensors, lr=lr, alpha=0.99),
        "adam": lambda: o.Adam(tensors, lr=lr),
    }[name]()


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_matches_torch_optim_step_by_step(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    params = {"conv.weight": rng.normal(size=(2, 1, 3, 3)), "conv.bias": rng.normal(size=2)}
    tensors = [torch.tensor(p.copy(), requires_grad=True) for p in params.values()]
    ours = optim.make(name, 0.01)
    theirs = _torch_optimizer(torch, name, tensors, 0.01)
    schedule = schedules.parse("step:2,0.5")
    for step in range(6):
        lr = schedule(0.01, step)                      # change the rate as a trainer would
        ours.lr = lr
        for group in theirs.param_groups:
            group["lr"] = lr
        grads = {k: rng.normal(size=p.shape) for k, p in params.items()}
        ours.step(params, grads)
        for t, g in zip(tensors, grads.values()):
            t.grad = torch.tensor(g)
        theirs.step()
        for (key, p), t in zip(params.items(), tensors):
            np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} step {step} {key}")


def test_schedules_match_torch_lr_scheduler():
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    cases = {
        "exponential:0.9": lambda o: S.ExponentialLR(o, gamma=0.9),
        "step:3,0.5": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
        "inverse-time:0.5": lambda o: S.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t)),
        "inv-sqrt": lambda o: S.LambdaLR(o, lambda t: (1 + t) ** -0.5),
    }
    for text, make in cases.items():
        o = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = make(o)
        ours = schedules.parse(text)
        for epoch in range(8):
            assert ours(0.1, epoch) == pytest.approx(o.param_groups[0]["lr"], rel=1e-12), text
            o.step()
            sched.step()


def test_clip_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    grads = {"a": rng.normal(size=(3, 3)) * 5, "b": rng.normal(size=4) * 5}
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    theirs = torch.nn.utils.clip_grad_norm_(tensors, 2.0)
    ours = optim.clip_grad_norm(grads, 2.0)
    assert ours == pytest.approx(theirs.item())
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
