"""Normalisation layers: batch norm, local response norm, layer norm.

Batch norm (Ioffe & Szegedy 2015), PyTorch's conventions: statistics per channel over
(N, H, W) for N×C×H×W input or over N for N×F; in training it normalises with the batch's
biased variance and moves running_mean / running_var towards the batch's mean and
*unbiased* variance by `momentum` (r ← (1 − m)·r + m·batch). At inference (and for a
frozen layer, as Keras does) it uses the running statistics.

LRN in two forms that differ only in the factor of each square (spec.alpha_per_square):
    b_c = a_c / (k + α' · Σ_{c' = c − ⌊size/2⌋}^{c + ⌊(size−1)/2⌋} a_{c'}²)^beta
with zero padding past the first and last channel; α' = alpha/size in the "average" form
(PyTorch's torch.nn.LocalResponseNorm, Caffe's) and α' = alpha in the "sum" form (the AlexNet
paper, Krizhevsky et al. 2012, §3.3), which is PyTorch's with alpha·size.

Layer norm (Ba et al. 2016): each example over all its values, weight and bias of the
per-example shape (PyTorch's nn.LayerNorm(normalized_shape = input shape)).
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer


def _normalised_grad(dxhat: np.ndarray, xhat: np.ndarray, invstd: np.ndarray,
                     axes: tuple[int, ...]) -> np.ndarray:
    """dx of xhat = (x − mean(x))·invstd, statistics over `axes`:
    dx = invstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))."""
    mean_d = dxhat.mean(axis=axes, keepdims=True)
    mean_dx = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return invstd * (dxhat - mean_d - xhat * mean_dx)


class BatchNorm(Layer):
    def build(self, x: np.ndarray) -> None:
        c = x.shape[1]
        self.add_param("weight", np.ones(c))
        self.add_param("bias", np.zeros(c))
        self.add_buffer("running_mean", np.zeros(c))
        self.add_buffer("running_var", np.ones(c))

    def shape_of(self, x: np.ndarray) -> tuple[int, ...]:
        """(1, C, 1, 1) or (1, C): how a per-channel vector broadcasts against x."""
        return (1, x.shape[1]) + (1,) * (x.ndim - 2)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        axes = (0,) + tuple(range(2, x.ndim))
        shape = self.shape_of(x)
        batch_stats = training and not self.frozen
        if batch_stats:
            count = x.size // x.shape[1]
            if count < 2:
                raise ShapeError("batch norm in training needs more than one value per channel",
                                 fix="train with a batch of at least 2")
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = self.spec.momentum
            running_mean, running_var = self.b("running_mean"), self.b("running_var")
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += m * var * (count / (count - 1))
        else:
            mean, var = self.b("running_mean"), self.b("running_var")
            if not training:  # fold into one scale and shift: two passes over x
                scale = self.p("weight") / np.sqrt(var + self.spec.eps)
                shift = self.p("bias") - mean * scale
                y = x * scale.astype(x.dtype).reshape(shape)
                y += shift.astype(x.dtype).reshape(shape)
                self.cache = None
                return y
        invstd = (1.0 / np.sqrt(var + self.spec.eps)).astype(x.dtype).reshape(shape)
        xhat = (x - mean.reshape(shape).astype(x.dtype)) * invstd
        y = xhat * self.p("weight").reshape(shape) + self.p("bias").reshape(shape)
        self.cache = (xhat, invstd, axes, batch_stats) if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, invstd, axes, batch_stats = self.need_cache("cache")
        shape = self.shape_of(dy)
        if self.wants_grad("weight"):
            self.set_grad("weight", (dy * xhat).sum(axis=axes))
            self.set_grad("bias", dy.sum(axis=axes))
        else:
            self.zero_grad("weight")
            self.zero_grad("bias")
        dxhat = dy * self.p("weight").reshape(shape)
        if not batch_stats:  # running statistics are constants
            return dxhat * invstd
        return _normalised_grad(dxhat, xhat, invstd, axes)


class LRN(Layer):
    keeps_input = True

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)

    def window_sum(self, v: np.ndarray, before: int, after: int) -> np.ndarray:
        """Σ over channels c − before .. c + after of v (zero outside), (N, C, H, W).

        Channel c − d exists only for d <= C − 1 (and c + d likewise), so a window wider than
        the channels reads nothing more past C − 1 on either side: clamping both reaches
        keeps the sum exact and the work (and the padded copy) within 2C − 1 channels,
        whatever `size` is. The caller still weighs it by alpha/size in the average form."""
        c = v.shape[1]
        before, after = min(before, c - 1), min(after, c - 1)
        padded = np.zeros((v.shape[0], c + before + after) + v.shape[2:], dtype=v.dtype)
        padded[:, before:before + c] = v
        total = padded[:, 0:c].copy()
        for offset in range(1, before + after + 1):  # a loop over the window, not the pixels
            total += padded[:, offset:offset + c]
        return total

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        size = self.spec.size
        squares = self.window_sum(x * x, size // 2, (size - 1) // 2)
        scale = self.spec.k + self.spec.alpha_per_square * squares
        y = x * scale ** -self.spec.beta
        self.cache = (x, scale) if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dx_i = dy_i·s_i^−β − 2α'β · x_i · Σ_{c: i in window(c)} dy_c·x_c·s_c^(−β−1),
        α' = spec.alpha_per_square."""
        x, scale = self.need_cache("cache")
        size, beta = self.spec.size, self.spec.beta
        scaled = scale ** -beta
        t = dy * x * scaled / scale
        # channel i is inside window(c) for c from i − ⌊(size−1)/2⌋ to i + ⌊size/2⌋
        back = self.window_sum(t, (size - 1) // 2, size // 2)
        return dy * scaled - (2 * self.spec.alpha_per_square * beta) * x * back


class LayerNorm(Layer):
    def build(self, x: np.ndarray) -> None:
        self.add_param("weight", np.ones(x.shape[1:]))
        self.add_param("bias", np.zeros(x.shape[1:]))

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        if x.shape[1:] != self.p("weight").shape:
            raise ShapeError(f"layernorm was built for {'×'.join(map(str, self.p('weight').shape))} "
                             f"but got {'×'.join(map(str, x.shape[1:]))}",
                             fix="run the model at the input shape it was built with")
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
        invstd = 1.0 / np.sqrt(var + x.dtype.type(self.spec.eps))
        xhat = (x - mean) * invstd
        y = xhat * self.p("weight") + self.p("bias")
        self.cache = (xhat, invstd, axes) if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, invstd, axes = self.need_cache("cache")
        if self.wants_grad("weight"):
            self.set_grad("weight", (dy * xhat).sum(axis=0))
            self.set_grad("bias", dy.sum(axis=0))
        else:
            self.zero_grad("weight")
            self.zero_grad("bias")
        return _normalised_grad(dy * self.p("weight"), xhat, invstd, axes)
