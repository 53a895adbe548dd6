"""Losses: hand-worked values, numeric gradients, PyTorch as an oracle, penalties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import losses as L


def numeric_grad(f, x, h=1e-6):
    """Centred differences of the scalar f at x (float64), one value at a time."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f(x)
        x[idx] = old - h
        fm = f(x)
        x[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


# --- hand-worked cases -------------------------------------------------------------------

def test_cross_entropy_by_hand():
    # softmax([1, 2, 3]) = [0.090031, 0.244728, 0.665241]; -log 0.665241 = 0.407606
    loss, d = L.softmax_cross_entropy(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    assert loss == pytest.approx(0.4076059644, abs=1e-9)
    np.testing.assert_allclose(d, [[0.0900305732, 0.2447284711, -0.3347590443]], atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    scores = np.array([[1000.0, 0.0], [1000.0, 0.0]], dtype=np.float32)
    loss, d = L.softmax_cross_entropy(scores, np.array([0, 1]))
    assert math.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx(500.0)          # (0 + 1000) / 2
    assert d.dtype == np.float32


def test_cross_entropy_class_weights_by_hand():
    scores = np.array([[0.0, 0.0], [0.0, 0.0]])  # every example has loss log 2
    loss, d = L.softmax_cross_entropy(scores, np.array([0, 1]), class_weights=np.array([1.0, 3.0]))
    assert loss == pytest.approx(math.log(2))    # weighted mean of equal losses
    # example 1 carries 3/4 of the weight: its gradient is 3x example 0's
    np.testing.assert_allclose(d, [[-0.125, 0.125], [0.375, -0.375]])


def test_hinge_cs231n_example():
    # cs231n linear-classify notes: scores [3.2, 5.1, -1.7] for a cat (class 0) -> 2.9
    loss, d = L.multiclass_hinge(np.array([[3.2, 5.1, -1.7]]), np.array([0]))
    assert loss == pytest.approx(2.9)
    np.testing.assert_allclose(d, [[-1.0, 1.0, 0.0]])


def test_mse_mae_bce_by_hand():
    s = np.array([[0.5, -0.5]])
    loss, d = L.mse(s, np.array([0]))            # one-hot [1, 0]: diffs -0.5, -0.5
    assert loss == pytest.approx(0.25)
    np.testing.assert_allclose(d, [[-0.5, -0.5]])
    loss, d = L.mae(s, np.array([0]))
    assert loss == pytest.approx(0.5)
    np.testing.assert_allclose(d, [[-0.5, -0.5]])
    loss, d = L.binary_cross_entropy(np.array([[0.0]]), np.array([1]))
    assert loss == pytest.approx(math.log(2))
    np.testing.assert_allclose(d, [[-0.5]])
    loss, _ = L.binary_cross_entropy(np.array([[-800.0, 800.0]]), np.array([[0.0, 1.0]]))
    assert loss == pytest.approx(0.0, abs=1e-12)  # no overflow for large |logit|


def test_probs_cross_entropy_matches_logits_version():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 5))
    y = np.array([0, 4, 2, 2])
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    a, _ = L.softmax_cross_entropy(s, y)
    b, dp = L.probs_cross_entropy(p, y)
    assert a == pytest.approx(b)
    assert dp[0, 0] == pytest.approx(-1 / (4 * p[0, 0]))


def test_bad_labels_are_one_line_errors():
    with pytest.raises(ArchcalcError, match="label 7 is outside 0..2"):
        L.softmax_cross_entropy(np.zeros((2, 3)), np.array([1, 7]))
    with pytest.raises(ArchcalcError, match="3 integers"):
        L.multiclass_hinge(np.zeros((3, 3)), np.array([0.5, 1.0, 2.0]))


# --- numeric gradients -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(L.LOSSES))
@pytest.mark.parametrize("weighted", [False, True])
def test_gradients_match_centred_differences(name, weighted):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(5, 4))
    y = np.array([0, 3, 1, 1, 2])
    cw = np.array([1.0, 2.0, 0.5, 3.0]) if weighted else None
    fn = L.LOSSES[name]
    _, d = fn(scores, y, class_weights=cw)
    num = numeric_grad(lambda s: fn(s, y, class_weights=cw)[0], scores.copy())
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-8)


def test_penalty_by_hand_and_skips_biases():
    params = {"fc.weight": np.array([[1.0, -2.0]]), "fc.bias": np.array([5.0]),
              "conv.weight": np.ones((1, 1, 1, 1))}
    names = L.penalized_names(params, frozen={"conv.weight"})
    assert names == ["fc.weight"]
    value, grads = L.penalty(params, names, l2=0.1)
    assert value == pytest.approx(0.25)          # 0.1/2 · (1 + 4)
    np.testing.assert_allclose(grads["fc.weight"], [[0.1, -0.2]])
    value, grads = L.penalty(params, names, l2=0.1, l1=0.5)
    assert value == pytest.approx(0.25 + 1.5)
    np.testing.assert_allclose(grads["fc.weight"], [[0.6, -0.7]])
    assert L.penalty(params, names) == (0.0, {})


# --- PyTorch as an oracle ----------------------------------------------------------------

def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    s = rng.normal(size=(6, 4))
    y = np.array([0, 1, 2, 3, 3, 1])
    cw = np.array([0.5, 1.0, 2.0, 4.0])
    onehot = np.eye(4)[y]

    def check(ours, fn, target):
        st = torch.tensor(s, requires_grad=True)
        out = fn(st, target)
        out.backward()
        assert ours[0] == pytest.approx(out.item(), rel=1e-12)
        np.testing.assert_allclose(ours[1], st.grad.numpy(), rtol=1e-10, atol=1e-14)

    yt, cwt = torch.tensor(y), torch.tensor(cw)
    check(L.softmax_cross_entropy(s, y), F.cross_entropy, yt)
    check(L.softmax_cross_entropy(s, y, cw), lambda a, b: F.cross_entropy(a, b, weight=cwt), yt)
    check(L.binary_cross_entropy(s, y), F.binary_cross_entropy_with_logits,
          torch.tensor(onehot))
    check(L.mse(s, y), F.mse_loss, torch.tensor(onehot))
    check(L.mae(s, y), F.l1_loss, torch.tensor(onehot))
    # torch's MultiMarginLoss divides by C and, with weights, sums over examples
    check(L.multiclass_hinge(s, y), lambda a, b: F.multi_margin_loss(a, b) * 4, yt)
    check(L.multiclass_hinge(s, y, cw),
          lambda a, b: F.multi_margin_loss(a, b, weight=cwt, reduction="sum") * 4
          / cwt[b].sum(), yt)
