"""Max, average and global average pooling, forward and backward.

Shapes: x (N, C, H, W) → y (N, C, H_out, W_out). Each pooling window is read through a
strided slice per kernel offset (kH·kW vectorised operations over the whole batch; no loop
over pixels). Max pooling pads with −inf so padding never wins; average pooling counts the
padded zeros in the divisor (PyTorch's count_include_pad=True) but not the extra overhang a
ceil-mode window may have past the padding (PyTorch divides by the window clipped to the
padded input: aten/src/ATen/native/cpu/AvgPoolKernel.cpp).
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer
from archcalc.nn.windows import check_fits, offset_slice, out_size, pad, resolve_pads
from archcalc.spec.layers import pair


class _Pool(Layer):
    fill = 0.0  # what the padding holds

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)

    def geometry(self, x: np.ndarray):
        """Explicit pads, the ceil-mode overhang (extra bottom/right), kernel, stride, output."""
        h, w = x.shape[2:]
        kernel, stride = pair(self.spec.kernel), self.spec.strides
        pads = resolve_pads(self.spec.padding, h, w, kernel, stride)
        for k, before, after in ((kernel[0], pads[0], pads[1]), (kernel[1], pads[2], pads[3])):
            if 2 * max(before, after) > k:
                raise ShapeError(f"pool padding {max(before, after)} is more than half the "
                                 f"kernel {k}: a window could see only padding",
                                 fix="use padding <= kernel // 2")
        ceil = self.spec.ceil_mode
        ho = out_size(h, kernel[0], stride[0], pads[0], pads[1], ceil)
        wo = out_size(w, kernel[1], stride[1], pads[2], pads[3], ceil)
        check_fits("H", h, kernel[0], pads[0], pads[1], ho, stride[0])
        check_fits("W", w, kernel[1], pads[2], pads[3], wo, stride[1])
        # a ceil-mode window may reach past the padded input: pad that overhang too
        extra_h = max(0, (ho - 1) * stride[0] + kernel[0] - (h + pads[0] + pads[1]))
        extra_w = max(0, (wo - 1) * stride[1] + kernel[1] - (w + pads[2] + pads[3]))
        return pads, (extra_h, extra_w), kernel, stride, (ho, wo)

    def padded(self, x: np.ndarray, pads, extra) -> np.ndarray:
        top, bottom, left, right = pads
        return pad(x, (top, bottom + extra[0], left, right + extra[1]), self.fill)

    def offsets(self, kernel, stride, out_hw):
        """(k, rows, cols) for each kernel offset: the strided slice it reads."""
        k = 0
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                yield k, offset_slice(i, 1, stride[0], out_hw[0]), offset_slice(j, 1, stride[1], out_hw[1])
                k += 1

    def scatter(self, shape, dtype, geometry, grad, where=None) -> np.ndarray:
        """dx of `shape` (N, C, H, W): each kernel offset k adds `grad` (N, C, H_out, W_out),
        or grad(k) if it is a function, into the input positions it read, only where
        where(k) holds (if given)."""
        pads, extra, kernel, stride, out_hw = geometry
        n, c, h, w = shape
        dxp = np.zeros((n, c, h + pads[0] + pads[1] + extra[0], w + pads[2] + pads[3] + extra[1]),
                       dtype=dtype)
        for k, rows, cols in self.offsets(kernel, stride, out_hw):
            target = dxp[:, :, rows, cols]
            add = grad(k) if callable(grad) else grad
            if where is None:
                target += add
            else:
                np.add(target, add, out=target, where=where(k))
        top, left = pads[0], pads[2]
        return np.ascontiguousarray(dxp[:, :, top:top + h, left:left + w])


class MaxPool(_Pool):
    fill = -np.inf

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        geometry = self.geometry(x)
        pads, extra, kernel, stride, out_hw = geometry
        xp = self.padded(x, pads, extra)
        y = argmax = None
        for k, rows, cols in self.offsets(kernel, stride, out_hw):
            window = xp[:, :, rows, cols]
            if y is None:
                y = window.copy()
                if training:  # which offset won, as small an integer as the kernel allows
                    argmax = np.zeros(y.shape, dtype=np.min_scalar_type(kernel[0] * kernel[1]))
                    won, stamp = np.empty(y.shape, dtype=bool), np.empty_like(argmax)
                continue
            if training:  # strictly greater: on a tie the first offset keeps the gradient
                np.greater(window, y, out=won)
                # offsets come in increasing order, so argmax < k so far: max(argmax, k·won)
                # sets k exactly where this offset won. (A masked copyto took 4.6× longer on
                # a 256×6×28×28 map, measured 2026-11-22.)
                np.maximum(argmax, np.multiply(won, argmax.dtype.type(k), out=stamp), out=argmax)
            np.maximum(y, window, out=y)
        self.cache = (x.shape, x.dtype, geometry, argmax) if training else None
        return y

    def kink_state(self):
        return None if self.cache is None else self.cache[3]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, H_out, W_out) → dx (N, C, H, W): each output's gradient goes to the
        input position that won its window (argmax), nothing to the others."""
        shape, dtype, geometry, argmax = self.need_cache("cache")
        pads, extra, kernel, stride, out_hw = geometry
        if not np.isfinite(dy).all():
            # the fast paths multiply by a 0/1 mask, and 0·inf is NaN: where a non-winner
            # must get exactly 0, mask the add instead (about 10× slower)
            return self.scatter(shape, dtype, geometry, dy, where=lambda k: argmax == k)
        if tuple(stride) == tuple(kernel) and not any(pads) and not any(extra):
            return self._tiled_backward(shape, dtype, kernel, out_hw, dy, argmax)
        # overlapping windows: unmasked adds of dy·[argmax = k] (numpy's masked add, one
        # per offset, took 13× longer on a 256×6×28×28 map, measured 2026-11-22)
        grad = np.empty_like(dy)

        def masked(k):
            return np.multiply(dy, argmax == k, out=grad)
        return self.scatter(shape, dtype, geometry, masked)

    @staticmethod
    def _tiled_backward(shape, dtype, kernel, out_hw, dy, argmax) -> np.ndarray:
        """Windows that tile the input (stride = kernel, no padding): each input position is
        in at most one window, so dx is written, not added to, one kernel offset at a time
        through a (N, C, H_out, kH, W_out, kW) view of it: 2.0 ms instead of 26.7 ms for a
        256×6×28×28 map (measured 2026-11-22, one thread)."""
        n, c, h, w = shape
        (kh, kw), (ho, wo) = kernel, out_hw
        exact = h == ho * kh and w == wo * kw
        # rows or columns past the last window get no gradient: then start from zeros
        dx = np.empty(shape, dtype=dtype) if exact else np.zeros(shape, dtype=dtype)
        s0, s1, s2, s3 = dx.strides
        tiles = np.lib.stride_tricks.as_strided(
            dx, (n, c, ho, kh, wo, kw), (s0, s1, s2 * kh, s2, s3 * kw, s3))
        k = 0
        for i in range(kh):
            for j in range(kw):
                np.multiply(dy, argmax == k, out=tiles[:, :, :, i, :, j])
                k += 1
        return dx


class AvgPool(_Pool):
    fill = 0.0

    def divisor(self, shape, dtype, geometry) -> np.ndarray:
        """(H_out, W_out): how many input-or-padding positions each window covers."""
        pads, _, kernel, stride, (ho, wo) = geometry
        limit_h = shape[2] + pads[0] + pads[1]
        limit_w = shape[3] + pads[2] + pads[3]
        starts_h = np.arange(ho) * stride[0]
        starts_w = np.arange(wo) * stride[1]
        count_h = np.minimum(starts_h + kernel[0], limit_h) - starts_h
        count_w = np.minimum(starts_w + kernel[1], limit_w) - starts_w
        return np.outer(count_h, count_w).astype(dtype)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        geometry = self.geometry(x)
        pads, extra, kernel, stride, out_hw = geometry
        xp = self.padded(x, pads, extra)
        y = None
        for _, rows, cols in self.offsets(kernel, stride, out_hw):
            if y is None:
                y = xp[:, :, rows, cols].copy()
            else:
                y += xp[:, :, rows, cols]
        y /= self.divisor(x.shape, x.dtype, geometry)
        self.cache = (x.shape, x.dtype, geometry) if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, dtype, geometry = self.need_cache("cache")
        return self.scatter(shape, dtype, geometry, dy / self.divisor(shape, dtype, geometry))


class GlobalAvgPool(Layer):
    """x (N, C, H, W) → y (N, C, 1, 1) with keepdims, else (N, C)."""

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        y = x.mean(axis=(2, 3), keepdims=self.spec.keepdims)
        self.cache = x.shape if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self.need_cache("cache")
        dy = dy.reshape(n, c, 1, 1) / (h * w)
        return np.broadcast_to(dy, (n, c, h, w)).copy()
