"""Losses for classification, each returning (loss, dscores), and the weight penalties.

Shapes (cs231n style): `scores` is (N, C) — one row of raw network outputs per example;
`targets` is either (N,) integer class labels or an (N, C) array of target values.
Every loss returns a Python float and dscores (N, C), the gradient of that float with respect
to `scores`, in the dtype of `scores`.

Class weights (for unbalanced data) are an array of C weights, one per class; example i
counts w[y_i] times, and the loss is the weighted mean  Σ_i w_{y_i} L_i / Σ_i w_{y_i},
which is PyTorch's `reduction="mean"` rule for cross_entropy(weight=...). With all weights
equal it is the plain mean. A batch whose examples all weigh 0 has loss 0 and no gradient
(PyTorch gives NaN there; a batch of one zero-weighted example is common with --batch-size 1).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from archcalc.errors import ArchcalcError

LossResult = tuple[float, np.ndarray]


def _labels(targets: np.ndarray, n: int, classes: int) -> np.ndarray:
    """(N,) integer labels in 0..classes-1, or an ArchcalcError naming the bad one."""
    y = np.asarray(targets)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ArchcalcError(f"labels must be {n} integers, got an array of shape {y.shape} "
                            f"and dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= classes):
        bad = int(y[(y < 0) | (y >= classes)][0])
        raise ArchcalcError(f"label {bad} is outside 0..{classes - 1}: the network outputs "
                            f"{classes} scores per example")
    return y.astype(np.intp, copy=False)


def _example_weights(y: np.ndarray, class_weights: np.ndarray | None,
                     dtype: np.dtype) -> np.ndarray:
    """w_i = class_weights[y_i] (N,), normalised so that Σ_i w_i = 1."""
    if class_weights is None:
        w = np.ones(y.shape[0], dtype=dtype)
    else:
        w = np.asarray(class_weights, dtype=dtype)[y]
    total = w.sum()
    if not total > 0:
        # every example of this batch is of a class weighted 0 (a batch of 1 often is): the
        # batch teaches nothing, as the whole epoch would with those classes only
        return np.zeros_like(w)
    return w / total


def _dense_targets(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Targets as an (N, C) array like `scores`, and the labels when they were labels.

    A single score column with labels 0/1 (binary) takes the labels themselves as targets;
    C columns take one-hot rows.
    """
    t = np.asarray(targets)
    n, c = scores.shape
    if t.shape == scores.shape and not (c == 1 and t.ndim == 1):
        return t.astype(scores.dtype, copy=False), None
    if c == 1:
        y = _labels(t.reshape(-1), n, 2)
        return y.astype(scores.dtype).reshape(n, 1), y
    y = _labels(t, n, c)
    onehot = np.zeros_like(scores)
    onehot[np.arange(n), y] = 1
    return onehot, y


def softmax_cross_entropy(scores: np.ndarray, targets: np.ndarray,
                          class_weights: np.ndarray | None = None) -> LossResult:
    """Softmax cross-entropy from logits, computed stably.

    scores: (N, C) logits; targets: (N,) labels.
    L_i = -log softmax(s_i)[y_i] = logsumexp(s_i) - s_{i,y_i}; subtracting the row max first
    keeps exp() from overflowing. dL/ds_i = w_i (softmax(s_i) - onehot(y_i)).
    """
    n, c = scores.shape
    y = _labels(targets, n, c)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z                                   # (N, C) log-probabilities
    w = _example_weights(y, class_weights, scores.dtype)
    rows = np.arange(n)
    loss = float(-(w * log_p[rows, y]).sum())
    dscores = np.exp(log_p)
    dscores[rows, y] -= 1
    dscores *= w[:, None]
    return loss, dscores


def probs_cross_entropy(probs: np.ndarray, targets: np.ndarray,
                        class_weights: np.ndarray | None = None) -> LossResult:
    """Cross-entropy for a network whose last layer is already a softmax.

    probs: (N, C) probabilities; targets: (N,) labels. L_i = -log p_{i,y_i}, clipped at
    1e-12 so that a zero probability gives a large finite loss; the softmax layer's own
    backward then turns dL/dp into dL/dlogits.
    """
    n, c = probs.shape
    y = _labels(targets, n, c)
    w = _example_weights(y, class_weights, probs.dtype)
    rows = np.arange(n)
    picked = np.maximum(probs[rows, y], 1e-12)
    loss = float(-(w * np.log(picked)).sum())
    dprobs = np.zeros_like(probs)
    dprobs[rows, y] = -w / picked
    return loss, dprobs


def binary_cross_entropy(scores: np.ndarray, targets: np.ndarray,
                         class_weights: np.ndarray | None = None) -> LossResult:
    """Binary cross-entropy from logits, one independent sigmoid per score.

    scores: (N, C) logits; targets: (N,) labels (one-hot for C > 1, 0/1 for C = 1) or
    (N, C) values in [0, 1]. Per value, with x the logit and t the target,
    l = max(x, 0) - x·t + log(1 + exp(-|x|))  (never exponentiates a positive number),
    dl/dx = sigmoid(x) - t. The loss is the (weighted) mean over the N·C values.
    """
    n, c = scores.shape
    t, y = _dense_targets(scores, targets)
    per_value = np.maximum(scores, 0) - scores * t + np.log1p(np.exp(-np.abs(scores)))
    w = _row_weights(y, class_weights, n, scores.dtype, binary=c == 1) / c
    loss = float((w[:, None] * per_value).sum())
    sig = _sigmoid(scores)
    return loss, (sig - t) * w[:, None]


def mse(scores: np.ndarray, targets: np.ndarray,
        class_weights: np.ndarray | None = None) -> LossResult:
    """Mean squared error against one-hot rows (labels) or given (N, C) targets.

    L = mean over N·C values of (s - t)^2; dL/ds = 2 (s - t) / (N·C) (PyTorch's MSELoss).
    """
    n, c = scores.shape
    t, y = _dense_targets(scores, targets)
    w = _row_weights(y, class_weights, n, scores.dtype, binary=c == 1) / c
    diff = scores - t
    return float((w[:, None] * diff * diff).sum()), 2 * diff * w[:, None]


def half_sse(scores: np.ndarray, targets: np.ndarray,
             class_weights: np.ndarray | None = None) -> LossResult:
    """Half the sum of squared errors per example, the loss of the backpropagation worked
    example in the lecture notes: J = ½·Σ_c (t_c − s_c)², so that dJ/ds = s − t (the ½
    cancels the square's 2). Over a batch: the (weighted) mean of the examples' J, so one
    example gives exactly the notes' J.

    `mse` divides by the C outputs (PyTorch's MSELoss) where this halves: equal when C = 2.
    Targets: (N, C) values, or (N,) labels taken as one-hot rows (0/1 for C = 1).
    """
    n, c = scores.shape
    t, y = _dense_targets(scores, targets)
    w = _row_weights(y, class_weights, n, scores.dtype, binary=c == 1)
    diff = scores - t
    return float((w[:, None] * diff * diff).sum()) / 2, diff * w[:, None]


def mae(scores: np.ndarray, targets: np.ndarray,
        class_weights: np.ndarray | None = None) -> LossResult:
    """Mean absolute error against one-hot rows (labels) or given (N, C) targets.

    L = mean of |s - t|; dL/ds = sign(s - t) / (N·C), 0 where s = t (PyTorch's L1Loss).
    """
    n, c = scores.shape
    t, y = _dense_targets(scores, targets)
    w = _row_weights(y, class_weights, n, scores.dtype, binary=c == 1) / c
    diff = scores - t
    return float((w[:, None] * np.abs(diff)).sum()), np.sign(diff) * w[:, None]


def multiclass_hinge(scores: np.ndarray, targets: np.ndarray,
                     class_weights: np.ndarray | None = None, margin: float = 1.0) -> LossResult:
    """Multiclass SVM loss (Weston & Watkins; cs231n's "SVM loss").

    scores: (N, C); targets: (N,) labels.
    L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + Δ), Δ = margin; L = (weighted) mean of L_i.
    Each violated margin adds +1 to dL/ds_j and -1 to dL/ds_{y_i}. (PyTorch's
    MultiMarginLoss divides each L_i by C as well; this loss does not, as in cs231n.)
    """
    n, c = scores.shape
    y = _labels(targets, n, c)
    rows = np.arange(n)
    margins = scores - scores[rows, y][:, None] + margin
    margins[rows, y] = 0
    active = margins > 0
    w = _example_weights(y, class_weights, scores.dtype)
    loss = float((w * np.where(active, margins, 0).sum(axis=1)).sum())
    dscores = active.astype(scores.dtype)
    dscores[rows, y] = -active.sum(axis=1)
    dscores *= w[:, None]
    return loss, dscores


def _row_weights(y: np.ndarray | None, class_weights: np.ndarray | None, n: int,
                 dtype: np.dtype, binary: bool) -> np.ndarray:
    """Per-example weights summing to 1; class weights need labels to pick them."""
    if class_weights is None or y is None:
        if class_weights is not None:
            raise ArchcalcError("class weights need integer labels, not target arrays")
        return np.full(n, 1.0 / n, dtype=dtype) if n else np.zeros(0, dtype=dtype)
    return _example_weights(y, class_weights, dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


LOSSES: dict[str, Callable[..., LossResult]] = {
    "cross_entropy": softmax_cross_entropy,
    "bce": binary_cross_entropy,
    "mse": mse,
    "half_sse": half_sse,
    "mae": mae,
    "hinge": multiclass_hinge,
}


def penalized_names(params: dict[str, np.ndarray], frozen: Iterable[str] = ()) -> list[str]:
    """The parameters a weight penalty applies to: conv and dense weights (2-D or more),
    not biases or normalisation scales/shifts (cs231n regularises W only), nor frozen ones."""
    skip = set(frozen)
    return [name for name, p in params.items() if p.ndim >= 2 and name not in skip]


def penalty(params: dict[str, np.ndarray], names: Iterable[str], *, l2: float = 0.0,
            l1: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
    """L2 (weight decay) and L1 penalties on the named parameters.

    R = l2/2 · Σ w² + l1 · Σ |w|;  dR/dw = l2·w + l1·sign(w).
    The ½ makes l2 equal to PyTorch's `weight_decay` (which adds l2·w to the gradient).
    Returns (R, {name: dR/dw}) with each gradient shaped like its parameter.
    """
    value = 0.0
    grads: dict[str, np.ndarray] = {}
    if not l2 and not l1:
        return value, grads
    for name in names:
        w = params[name]
        g = np.zeros_like(w)
        if l2:
            value += 0.5 * l2 * float(np.vdot(w, w))
            g += l2 * w
        if l1:
            value += l1 * float(np.abs(w).sum())
            g += l1 * np.sign(w)
        grads[name] = g
    return value, grads
