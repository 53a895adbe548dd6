"""Layers that map an H×W map onto a grid of another size: adaptive average and max pooling
(torch.nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d) and upsampling (F.interpolate, nearest and
bilinear). Shapes: x (N, C, H, W) → y (N, C, h, w).

Every one of them is separable: along each axis, output position o reads a short run of input
positions. An axis is described once as taps, (index, weight) pairs of (out,) arrays: tap k
reads input position index[k][o] with weight weight[k][o], and y = Σ_k x[index_k]·weight_k
(max pooling takes the max over taps instead). Forward and backward apply the taps to whole
arrays, so no loop ever runs over pixels, only over the few positions one output reads, and
the work is linear in the map (a dense h×H matrix would cost h·H·W per channel).

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


def bin_taps(size: int, out: int, dtype=None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Taps d = 0 .. L − 1 (L the longest bin) reading min(start + d, end − 1): a short bin
    re-reads its last row. With a dtype, each tap weighs 1/len inside the bin and 0 on a
    re-read (the average); without one, weight None (max pooling: a re-read never wins a
    strict comparison against itself)."""
    start, end = adaptive_bins(size, out)
    length = end - start
    taps = []
    for d in range(int(length.max())):
        weight = None if dtype is None else ((d < length) / length).astype(dtype)
        taps.append((np.minimum(start + d, end - 1), weight))
    return taps


def _along(x: np.ndarray, axis: int, taps) -> np.ndarray:
    """Σ over taps of x.take(index, axis)·weight (a new array)."""
    shape = (-1,) + (1,) * (x.ndim - 1 - axis)
    y = None
    for index, weight in taps:
        part = np.take(x, index, axis=axis)
        if weight is not None:
            part *= weight.reshape(shape)
        y = part if y is None else np.add(y, part, out=y)
    return y


def _adjoint(dy: np.ndarray, axis: int, size: int, taps) -> np.ndarray:
    """The adjoint of _along: each tap's share of dy added back, weighted, into the input
    positions it read, (…, size, …) along `axis`. A tap's index is non-decreasing (every
    resampling here reads the input in order), so the outputs that read one input position
    form a run, which np.add.reduceat sums in one call; the runs' heads are distinct."""
    shape = (-1,) + (1,) * (dy.ndim - 1 - axis)
    dx = np.zeros(dy.shape[:axis] + (size,) + dy.shape[axis + 1:], dtype=dy.dtype)
    target = [slice(None)] * dy.ndim
    for index, weight in taps:
        part = dy if weight is None else dy * weight.reshape(shape)
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        target[axis] = index[starts]
        dx[tuple(target)] += np.add.reduceat(part, starts, axis=axis)
    return dx


def _spatial(layer: Layer, x: np.ndarray) -> None:
    layer.need_spatial(x)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ShapeError(f"{layer.spec.type} needs a non-empty map, got "
                         f"{'×'.join(map(str, x.shape[1:]))}",
                         fix="remove layers that shrink the map to nothing before it")


class _Separable(Layer):
    """y = the taps of axis 2 applied, then those of axis 3; backward in reverse order."""

    def check(self, x: np.ndarray) -> None:
        _spatial(self, x)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        rows, cols = self.taps(x)
        self.cache = (x.shape, rows, cols) if training else None
        return _along(_along(x, 2, rows), 3, cols)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, rows, cols = self.need_cache("cache")
        return _adjoint(_adjoint(dy, 3, shape[3], cols), 2, shape[2], rows)


class AdaptiveAvgPool(_Separable):
    """y[i, j] = mean of x over bin_h(i) × bin_w(j) (the mean of the row means: the bins
    are rectangles)."""

    def taps(self, x: np.ndarray):
        (h, w), (oh, ow) = x.shape[2:], pair(self.spec.output)
        return bin_taps(h, oh, x.dtype), bin_taps(w, ow, x.dtype)


class AdaptiveMaxPool(Layer):
    """y[i, j] = max of x over bin_h(i) × bin_w(j), the first maximum in row-major order
    winning (taps in increasing order, strict comparisons)."""

    def check(self, x: np.ndarray) -> None:
        _spatial(self, x)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        (h, w), (oh, ow) = x.shape[2:], pair(self.spec.output)
        y = argmax = None
        for r, _ in bin_taps(h, oh):
            band = x[:, :, r, :]                      # (N, C, oh, W)
            for c, _ in bin_taps(w, ow):
                window = band[:, :, :, c]            # (N, C, oh, ow)
                at = r[:, None] * w + c[None, :]     # (oh, ow): the H·W index read
                if y is None:
                    y = window.copy()
                    if training:
                        argmax = np.broadcast_to(at, y.shape).copy()
                    continue
                if training:  # strictly greater: the first maximum keeps the gradient
                    np.copyto(argmax, at, where=window > y)
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


class Upsample(_Separable):
    """Resize to in·scale or to size (see the module docstring for the exact arithmetic)."""

    def geometry(self, x: np.ndarray):
        """Per axis: (input size, output size, scale or None when `size` is given)."""
        h, w = x.shape[2:]
        if self.spec.size is not None:
            oh, ow = self.spec.size
            return (h, oh, None), (w, ow, None)
        sh, sw = pair(self.spec.scale)
        return (h, h * sh, sh), (w, w * sw, sw)

    def taps(self, x: np.ndarray):
        """Per axis: one tap (nearest) or two (bilinear)."""
        out = []
        for size, o, scale in self.geometry(x):
            if self.spec.mode == "nearest":
                out.append([(nearest_index(size, o, scale), None)])
            else:
                i0, i1, l0, l1 = bilinear_weights(size, o, scale, self.spec.align_corners,
                                                  x.dtype)
                out.append([(i0, l0), (i1, l1)])
        return out
