"""Activations: relu, leaky_relu, elu, sigmoid, tanh, softmax (over axis 1), maxout.

All keep the input's shape except maxout, (N, C, ...) → (N, C/pieces, ...). With `inplace`
the result is written over x (the network only allows it when no one else reads x), so the
layer keeps no new array, as the calculator's memory convention assumes. Backward reads the
layer's output, which is why these layers declare keeps_output.
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer


class _Elementwise(Layer):
    keeps_output = True

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        y = self.apply(x, x if inplace else np.empty_like(x))
        self.cache = y if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.grad(dy, self.need_cache("cache"))


class _Kinked(_Elementwise):
    def kink_state(self):
        return None if self.cache is None else self.cache > 0


class ReLU(_Kinked):
    def apply(self, x, out):
        return np.maximum(x, 0, out=out)

    def grad(self, dy, y):
        return dy * (y > 0)


class LeakyReLU(_Kinked):
    """y = x for x > 0, slope·x otherwise."""

    def apply(self, x, out):
        negative = x < 0
        if out is not x:
            out[...] = x
        np.multiply(out, out.dtype.type(self.spec.slope), out=out, where=negative)
        return out

    def grad(self, dy, y):
        # slope >= 0, so y > 0 exactly where x > 0
        return dy * np.where(y > 0, 1, self.spec.slope).astype(dy.dtype)


class ELU(_Kinked):
    """y = x for x > 0, alpha·(eˣ − 1) otherwise (Clevert et al. 2015)."""

    def apply(self, x, out):
        negative = x <= 0
        if out is not x:
            out[...] = x
        np.expm1(out, out=out, where=negative)
        np.multiply(out, out.dtype.type(self.spec.alpha), out=out, where=negative)
        return out

    def grad(self, dy, y):
        # for x <= 0, dy/dx = alpha·eˣ = y + alpha
        return dy * np.where(y > 0, 1, y + self.spec.alpha).astype(dy.dtype)


class Sigmoid(_Elementwise):
    def apply(self, x, out):
        # stable both ways: e = exp(−|x|) never overflows
        e = np.exp(-np.abs(x))
        positive = x >= 0
        denom = 1 + e
        np.divide(1, denom, out=out, where=positive)
        np.divide(e, denom, out=out, where=~positive)
        return out

    def grad(self, dy, y):
        return dy * y * (1 - y)


class Tanh(_Elementwise):
    def apply(self, x, out):
        return np.tanh(x, out=out)

    def grad(self, dy, y):
        return dy * (1 - y * y)


class Softmax(_Elementwise):
    """Over axis 1 (channels or features), shifted by the max for stability."""

    def apply(self, x, out):
        np.subtract(x, x.max(axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def grad(self, dy, y):
        return y * (dy - (dy * y).sum(axis=1, keepdims=True))


class Maxout(Layer):
    """Out channel j = max of channels j·p .. j·p + p − 1 (Goodfellow et al. 2013)."""

    def check(self, x: np.ndarray) -> None:
        p = self.spec.pieces
        if x.shape[1] % p:
            raise ShapeError(f"maxout: {x.shape[1]} channels not divisible by pieces ({p})",
                             fix=f"give the previous layer a multiple of {p} channels")

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        p = self.spec.pieces
        grouped = x.reshape((x.shape[0], x.shape[1] // p, p) + x.shape[2:])
        if training:
            index = grouped.argmax(axis=2)[:, :, None]
            self.cache = (x.shape, index)
            return np.take_along_axis(grouped, index, axis=2)[:, :, 0]
        self.cache = None
        return grouped.max(axis=2)

    def kink_state(self):
        return None if self.cache is None else self.cache[1]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, index = self.need_cache("cache")
        p = self.spec.pieces
        dx = np.zeros((shape[0], shape[1] // p, p) + shape[2:], dtype=dy.dtype)
        np.put_along_axis(dx, index, dy[:, :, None], axis=2)
        return dx.reshape(shape)
