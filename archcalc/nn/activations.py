"""Activations: relu, relu6, hardsigmoid, leaky_relu, elu, sigmoid, tanh, softmax (over
axis 1), hardswish, silu, gelu, maxout.

All keep the input's shape except maxout, (N, C, ...) → (N, C/pieces, ...). With `inplace`
the result is written over x (the network only allows it when no one else reads x), so the
layer keeps no new array, as the calculator's memory convention assumes. Backward reads the
layer's output, which is why these layers declare keeps_output.

hardswish, silu and gelu cannot recover their input from their output (none of them is
monotonic), so they always make a new array and keep their input for backward (keeps_input),
as the spec's IN_PLACE set says. At the kinks the derivative is PyTorch's (2.13, measured):
relu6 and hardsigmoid pass the gradient only strictly inside their linear piece (0 at x = 0
and 6, at x = ±3); hardswish's is 0 for x <= −3, x/3 + 1/2 for −3 < x < 3 and 1 for x >= 3.
"""

from __future__ import annotations

import math

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer, by_images


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


class _Clipped(_Elementwise):
    """A function linear between two kinks and flat outside them, y in [0, top]: the
    derivative is `slope` where 0 < y < top, else 0, read off the output alone."""

    top = 6.0
    slope = 1.0

    def kink_state(self):
        if self.cache is None:
            return None
        return (self.cache > 0).astype(np.int8) + (self.cache >= self.top)

    def grad(self, dy, y):
        inside = (y > 0) & (y < self.top)
        return np.where(inside, dy * dy.dtype.type(self.slope), 0).astype(dy.dtype, copy=False)


class ReLU6(_Clipped):
    """min(max(0, x), 6) (MobileNet-v2)."""

    def apply(self, x, out):
        return np.clip(x, 0, 6, out=out)


class HardSigmoid(_Clipped):
    """relu6(x + 3)/6: 0 for x <= −3, 1 for x >= 3 (MobileNet-v3). In place, so its
    gradient is read off the output, 1/6 where 0 < y < 1: an x so close to ±3 that y rounds
    to 0 or 1 (within 3·2⁻²⁴ in float32) gets 0 where PyTorch, which keeps x, gives 1/6."""

    top = 1.0
    slope = 1 / 6

    def apply(self, x, out):
        np.add(x, 3, out=out)
        np.clip(out, 0, 6, out=out)
        out /= 6
        return out


class ReLU(_Kinked):
    """The two passes split over threads by images (base.by_images) when large."""

    def apply(self, x, out):
        by_images(lambda part: np.maximum(x[part], 0, out=out[part]), x)
        return out

    def grad(self, dy, y):
        dx = np.empty_like(dy)

        def part(p):
            # the 0/1 factor written straight as floats, then multiplied in place: a third
            # faster than dy * (y > 0), which converts a boolean temporary
            np.greater(y[p], 0, out=dx[p])
            dx[p] *= dy[p]
        by_images(part, dx)
        return dx


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


def _sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """σ(x) into out (may be x), stable both ways: e = exp(−|x|) never overflows."""
    e = np.exp(-np.abs(x))
    positive = x >= 0
    denom = 1 + e
    np.divide(1, denom, out=out, where=positive)
    np.divide(e, denom, out=out, where=~positive)
    return out


class Sigmoid(_Elementwise):
    def apply(self, x, out):
        return _sigmoid(x, out)

    def grad(self, dy, y):
        return dy * y * (1 - y)


class Tanh(_Elementwise):
    def apply(self, x, out):
        return np.tanh(x, out=out)

    def grad(self, dy, y):
        return dy * (1 - y * y)


class Softmax(_Elementwise):
    """Over the channels or features (axis 1; a sequence's (N, T, F): F, each step's own),
    shifted by the max for stability."""

    @staticmethod
    def _axis(x) -> int:
        return 2 if x.ndim == 3 else 1

    def apply(self, x, out):
        axis = self._axis(x)
        np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        return out

    def grad(self, dy, y):
        return y * (dy - (dy * y).sum(axis=self._axis(y), keepdims=True))


class _Smooth(Layer):
    """y = f(x) into a new array; backward = dy·f'(x) from the kept input."""

    keeps_input = True

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        self.cache = x if training else None
        return self.apply(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.derivative(self.need_cache("cache"))


class HardSwish(_Smooth):
    """x·relu6(x + 3)/6 (MobileNet-v3): 0 for x <= −3, x for x >= 3."""

    def apply(self, x):
        y = np.add(x, 3)
        np.clip(y, 0, 6, out=y)
        y *= x
        y /= 6
        return y

    def kink_state(self):
        if self.cache is None:
            return None
        return (self.cache > -3).astype(np.int8) + (self.cache >= 3)

    def derivative(self, x):
        # PyTorch's pieces (see the module docstring): the middle one is (2x + 3)/6
        d = np.where(x < 3, x / 3 + 0.5, 1).astype(x.dtype, copy=False)
        d[x <= -3] = 0
        return d


class SiLU(_Smooth):
    """x·σ(x), also called swish (EfficientNet); derivative σ(x)·(1 + x·(1 − σ(x)))."""

    def apply(self, x):
        return _sigmoid(x, np.empty_like(x)) * x

    def derivative(self, x):
        s = _sigmoid(x, np.empty_like(x))
        return s * (1 + x * (1 - s))


# the exact error function element by element: NumPy has none, and math.erf is libm's
# (correctly rounded to about 1 ulp), which a float64 gradient check needs; ~0.1 µs a value
_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_TANH_CUBIC = 0.044715
_TANH_FLAT = 1e4  # |x| beyond which gelu's tanh form is exactly x or 0


class GELU(_Smooth):
    """approximate none: x·Φ(x), Φ(x) = (1 + erf(x/√2))/2, derivative Φ(x) + x·φ(x);
    approximate tanh (PyTorch's): x·(1 + tanh(u))/2 with u = √(2/π)·(x + 0.044715·x³)."""

    def apply(self, x):
        if self.spec.approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(self._u(x)))
        return x * self._cdf(x)

    def derivative(self, x):
        if self.spec.approximate == "tanh":
            t = np.tanh(self._u(x))
            xc = np.clip(x, -_TANH_FLAT, _TANH_FLAT)  # see _u: the tail is 0 past the clip
            du = _SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * xc * xc)
            return (0.5 * (1 + t) + 0.5 * xc * (1 - t * t) * du).astype(x.dtype, copy=False)
        # φ(x) is exactly 0 in float64 well before |x| = 10⁴; the clip keeps x² finite
        wide = np.clip(x.astype(np.float64), -_TANH_FLAT, _TANH_FLAT)
        pdf = np.exp(-0.5 * wide ** 2) * _INV_SQRT_2PI
        return (self._cdf(x) + x * pdf.astype(x.dtype)).astype(x.dtype, copy=False)

    @staticmethod
    def _u(x):
        # past |x| = 10⁴, tanh(u) is exactly ±1 in float32 and float64 alike, so clipping
        # there changes no value; it keeps x³ (and the derivative's x²) finite, where an
        # infinite u' times a zero 1 − tanh² would make the gradient NaN
        x = np.clip(x, -_TANH_FLAT, _TANH_FLAT)
        return _SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x)

    @staticmethod
    def _cdf(x):
        """Φ(x) in x's dtype, computed in float64."""
        erf = _erf(x.astype(np.float64) * _SQRT_HALF).astype(np.float64)
        return (0.5 * (1 + erf)).astype(x.dtype, copy=False)


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
