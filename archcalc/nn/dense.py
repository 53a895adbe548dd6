"""Dense (fully connected) layer, flatten and dropout.

Shapes: dense x (N, D) → y (N, units) with weight (units, D) (PyTorch's layout), bias (units,)
(time_distributed: x (N, T, D) → y (N, T, units), the same weights at every step);
flatten x (N, C, H, W) → (N, C·H·W) as a view; dropout keeps shape.
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer


class Dense(Layer):
    keeps_input = True
    can_skip_dx = True

    def check(self, x: np.ndarray) -> None:
        if x.ndim == 3 and self.spec.time_distributed:
            return
        if x.ndim == 3:
            raise ShapeError(f"dense after a sequence of {x.shape[1]} steps × {x.shape[2]} "
                             "features: which step does it read?",
                             fix="return_sequences: false on the recurrent layer before it "
                                 "(the last step), or time_distributed: true on this dense "
                                 "(every step)")
        if x.ndim != 2:
            raise ShapeError(f"dense needs a flat input, got {'×'.join(map(str, x.shape[1:]))}",
                             fix="add 'flatten' (or global_avgpool with keepdims: false) before it")

    def build(self, x: np.ndarray) -> None:
        d, units = x.shape[-1], self.spec.units
        self.add_weight("weight", (units, d), d, units)
        if self.spec.bias:
            self.add_param("bias", np.zeros(units))

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        y = x @ self.p("weight").T
        if self.spec.bias:
            y += self.p("bias")
        self.cache = x if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, units) → dx (N, D); dW = dyᵀ·x, db = Σ_n dy. Time-distributed: dy
        (N, T, units) → dx (N, T, D), the sums over every step too."""
        x = self.need_cache("cache")
        flat_dy = dy.reshape(-1, dy.shape[-1])
        if self.wants_grad("weight"):
            self.set_grad("weight", flat_dy.T @ x.reshape(-1, x.shape[-1]))
        else:
            self.zero_grad("weight")
        if self.spec.bias:
            if self.wants_grad("bias"):
                self.set_grad("bias", flat_dy.sum(axis=0))
            else:
                self.zero_grad("bias")
        return dy @ self.p("weight") if self.need_dx else None


class Flatten(Layer):
    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)  # a view of a contiguous input

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.need_cache("cache"))


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014; scaling at training time as in cs231n):
    training: y = x·m/(1 − rate) with m ~ Bernoulli(1 − rate); inference: y = x (the same array).

    With `fixed` set (gradient checks), the last mask is reused while the shape matches.
    """

    fixed = False

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        if not training:
            return x
        mask = getattr(self, "mask", None)
        if not (self.fixed and mask is not None and mask.shape == x.shape):
            keep = 1.0 - self.spec.rate
            draw = self.store.noise.random(x.shape, dtype=x.dtype if x.dtype in
                                           (np.float32, np.float64) else np.float64)
            mask = (draw < keep).astype(x.dtype) / x.dtype.type(keep)
            self.mask = mask
        if inplace:
            x *= mask
            return x
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.need_cache("mask")
