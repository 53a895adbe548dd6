"""Layers that map an H×W map onto a grid of another size: adaptive average and max pooling
(torch.nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d) and upsampling (F.interpolate, nearest and
bilinear). Shapes: x (N, C, H, W) → y (N, C, h, w).

Every one of them is separable: along each axis, output position o reads a short run of input
positions with fixed weights. An axis is described once (indices and weights per output
position, or bins), and forward and backward apply that description to whole arrays, so no
loop ever runs over pixels, only over the few positions one output reads.

Adaptive pooling's bins (PyTorch's, aten/src/ATen/native/AdaptivePooling.h): output row i
pools input rows start_i = ⌊i·H/h⌋ to end_i = ⌈(i+1)·H/h⌉ (exclusive). Bins may differ in
length and overlap; when h > H some input rows sit in several bins. Averages divide by the
bin's own area; max pooling takes the first maximum in row-major order within the bin, as
PyTorch does, and backward gives each output's gradient to that position (adding up where
bins overlap).

Upsampling follows F.interpolate (aten/src/ATen/native/UpSample.h) to the float: nearest
copies input row min(⌊o·s⌋, H − 1) with s = H/h computed in float32, as PyTorch computes it
(the exact ⌊o·H/h⌋ differs for 11 of the pairs H ≤ 40, h ≤ 80, e.g. 6 → 74); bilinear reads
rows i0 = min(⌊src⌋, H − 1) and i1 = i0 + 1 (or i0 at the last row) with weights 1 − λ and
λ = src − i0 clamped to [0, 1], where src = o·(H − 1)/(h − 1) with align_corners (0 when
h = 1), else max((o + 0.5)·H/h − 0.5, 0). The ratio H/h is 1/scale when `scale` is given, as
PyTorch's scale_factor path does (the same number for an integer scale). Backward is the
adjoint: each output's gradient is added back, with the same weights, into the rows it read.
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer
from archcalc.spec.layers import pair


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) per output position, each (out,): PyTorch's adaptive pooling bins."""
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _bin_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size): row i holds 1/len over bin i, so A @ column averages each bin."""
    start, end = adaptive_bins(size, out)
    cols = np.arange(size)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def _spatial(layer: Layer, x: np.ndarray) -> None:
    layer.need_spatial(x)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ShapeError(f"{layer.spec.type} needs a non-empty map, got "
                         f"{'×'.join(map(str, x.shape[1:]))}",
                         fix="remove layers that shrink the map to nothing before it")


class AdaptiveAvgPool(Layer):
    """y[i, j] = mean of x over bin_h(i) × bin_w(j); as matrices y = A_h · x · A_wᵀ, so
    backward is dx = A_hᵀ · dy · A_w (one BLAS product per axis)."""

    def check(self, x: np.ndarray) -> None:
        _spatial(self, x)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        (h, w), (oh, ow) = x.shape[2:], pair(self.spec.output)
        rows, cols = _bin_matrix(h, oh, x.dtype), _bin_matrix(w, ow, x.dtype)
        self.cache = (rows, cols) if training else None
        return np.matmul(np.matmul(rows, x), cols.T)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        rows, cols = self.need_cache("cache")
        return np.matmul(np.matmul(rows.T, dy), cols)


class AdaptiveMaxPool(Layer):
    """y[i, j] = max of x over bin_h(i) × bin_w(j). The bins along an axis are read as
    L = longest-bin offsets, offset d reading row min(start + d, end − 1): a short bin
    re-reads its last row, which can never win a strict comparison against itself."""

    def check(self, x: np.ndarray) -> None:
        _spatial(self, x)

    @staticmethod
    def offsets(size: int, out: int) -> list[np.ndarray]:
        """The input index each output position reads at offset d = 0 .. L − 1, (out,) each."""
        start, end = adaptive_bins(size, out)
        return [np.minimum(start + d, end - 1) for d in range(int((end - start).max()))]

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        (h, w), (oh, ow) = x.shape[2:], pair(self.spec.output)
        y = argmax = None
        for r in self.offsets(h, oh):
            band = x[:, :, r, :]                      # (N, C, oh, W)
            for c in self.offsets(w, ow):
                window = band[:, :, :, c]            # (N, C, oh, ow)
                if y is None:
                    y = window.copy()
                    if training:
                        argmax = np.broadcast_to((r[:, None] * w + c[None, :]), y.shape).copy()
                    continue
                if training:  # strictly greater: the first maximum (row-major) keeps it
                    np.copyto(argmax, r[:, None] * w + c[None, :], where=window > y)
                np.maximum(y, window, out=y)
        self.cache = (x.shape, argmax) if training else None
        return y

    def kink_state(self):
        return None if self.cache is None else self.cache[1]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C, oh, ow) → dx (N, C, H, W): each gradient added at its argmax (H·W index)."""
        shape, argmax = self.need_cache("cache")
        n, c, h, w = shape
        planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
        # np.bincount sums in float64; the cast back is the one rounding
        dx = np.bincount((planes + argmax).reshape(-1), weights=dy.reshape(-1),
                         minlength=n * c * h * w)
        return dx.astype(dy.dtype, copy=False).reshape(shape)


def _ratio(size: int, out: int, scale: int | None, dtype: np.dtype):
    """in/out as PyTorch's compute_scales_value gives it in `dtype`: 1/scale (computed in
    double, then rounded) when a scale is given, else size/out divided in `dtype`."""
    t = np.dtype(dtype).type
    return t(1.0 / scale) if scale is not None else t(size) / t(out)


def nearest_index(size: int, out: int, scale: int | None) -> np.ndarray:
    """(out,) input index of each output position, min(⌊o·ratio⌋, size − 1), in float32
    arithmetic as PyTorch's nearest_idx computes it (whatever the tensor's dtype)."""
    o = np.arange(out, dtype=np.float32)
    ratio = _ratio(size, out, scale, np.float32)
    return np.minimum(np.floor(o * ratio).astype(np.int64), size - 1)


def bilinear_weights(size: int, out: int, scale: int | None, align_corners: bool, dtype):
    """(i0, i1, l0, l1), each (out,): output o = l0·x[i0] + l1·x[i1] along one axis, in
    `dtype` arithmetic as PyTorch computes them in the tensor's (its opmath type)."""
    t = np.dtype(dtype).type
    o = np.arange(out, dtype=dtype)
    if align_corners:
        src = o * (t(size - 1) / t(out - 1) if out > 1 else t(0))
    else:
        src = np.maximum((o + t(0.5)) * _ratio(size, out, scale, dtype) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    l1 = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype, copy=False)
    i1 = i0 + (i0 < size - 1)
    return i0, i1, (1 - l1).astype(dtype, copy=False), l1


def _adjoint(dy: np.ndarray, index: np.ndarray, weight, axis: int, into: np.ndarray) -> None:
    """into += the adjoint of y = x.take(index, axis)·weight: dy's slices along `axis`,
    weighted, summed into the input positions they were read from. index is non-decreasing
    (every resampling here reads the input in order), so equal indices form runs that
    np.add.reduceat sums in one call."""
    part = dy if weight is None else dy * weight.reshape((-1,) + (1,) * (dy.ndim - 1 - axis))
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    sums = np.add.reduceat(part, starts, axis=axis)
    target = [slice(None)] * dy.ndim
    target[axis] = index[starts]
    into[tuple(target)] += sums


class Upsample(Layer):
    """Resize to in·scale or to size (see the module docstring for the exact arithmetic)."""

    def check(self, x: np.ndarray) -> None:
        _spatial(self, x)

    def geometry(self, x: np.ndarray):
        """Per axis: (input size, output size, scale or None when `size` is given)."""
        h, w = x.shape[2:]
        if self.spec.size is not None:
            oh, ow = self.spec.size
            return (h, oh, None), (w, ow, None)
        sh, sw = pair(self.spec.scale)
        return (h, h * sh, sh), (w, w * sw, sw)

    def axes(self, x: np.ndarray):
        """Per axis (2 and 3): (i0, i1, l0, l1); i1, l0, l1 are None for nearest."""
        out = []
        for size, o, scale in self.geometry(x):
            if self.spec.mode == "nearest":
                out.append((nearest_index(size, o, scale), None, None, None))
            else:
                out.append(bilinear_weights(size, o, scale, self.spec.align_corners, x.dtype))
        return out

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        axes = self.axes(x)
        y = x
        for axis, (i0, i1, l0, l1) in zip((2, 3), axes):
            y = self._along(y, axis, i0, i1, l0, l1)
        self.cache = (x.shape, axes) if training else None
        return y if y is not x else x.copy()

    @staticmethod
    def _along(x, axis, i0, i1, l0, l1):
        if i1 is None:
            return np.take(x, i0, axis=axis)
        shape = (-1,) + (1,) * (x.ndim - 1 - axis)
        y = np.take(x, i0, axis=axis) * l0.reshape(shape)
        y += np.take(x, i1, axis=axis) * l1.reshape(shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, axes = self.need_cache("cache")
        for axis, (i0, i1, l0, l1) in reversed(list(zip((2, 3), axes))):
            size = shape[axis]
            out_shape = dy.shape[:axis] + (size,) + dy.shape[axis + 1:]
            dx = np.zeros(out_shape, dtype=dy.dtype)
            _adjoint(dy, i0, l0, axis, dx)
            if i1 is not None:
                _adjoint(dy, i1, l1, axis, dx)
            dy = dx
        return dy
