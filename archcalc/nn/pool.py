"""Max, average and global average pooling, forward and backward.

Shapes: x (N, C, H, W) → y (N, C, H_out, W_out). Each pooling window is read through a
strided slice per kernel offset (at most kH·kW vectorised operations over the whole batch; no
loop over pixels; offsets that only ever read padding are skipped, see _Pool.frame). Max pooling pads with −inf so padding never wins; average pooling counts the
padded zeros in the divisor (PyTorch's count_include_pad=True) but not the extra overhang a
ceil-mode window may have past the padding (PyTorch divides by the window clipped to the
padded input: aten/src/ATen/native/cpu/AvgPoolKernel.cpp).
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer, by_images
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

    def frame(self, x_shape, geometry):
        """The part of the padded input that some window reads, per axis: the kernel offsets
        whose strided slice lands on at least one input row (column), and the stretch of
        padded coordinates those offsets read, (offsets, start, length). An offset that only
        ever reads padding changes nothing (−inf never wins a max; a padded zero adds 0 to a
        sum, and the divisor is counted apart), so a kernel far larger than the input costs
        O(min(K, 2·H)) offsets, not K, and the padded copy is at most about 3·H long."""
        pads, _, kernel, stride, out_hw = geometry
        return (_span(x_shape[2], kernel[0], stride[0], pads[0], out_hw[0]),
                _span(x_shape[3], kernel[1], stride[1], pads[2], out_hw[1]))

    def padded(self, x: np.ndarray, pads, frame) -> np.ndarray:
        """The padded input cut to `frame`: x placed at its padded coordinates, `fill` around."""
        (_, start_h, len_h), (_, start_w, len_w) = frame
        rows = _placed(x.shape[2], pads[0], start_h, len_h)
        cols = _placed(x.shape[3], pads[2], start_w, len_w)
        inner = x[:, :, rows[0]:rows[1], cols[0]:cols[1]]
        return pad(inner, (rows[2], len_h - rows[2] - (rows[1] - rows[0]),
                           cols[2], len_w - cols[2] - (cols[1] - cols[0])), self.fill)

    @staticmethod
    def offsets(kernel, stride, out_hw, frame):
        """(k, rows, cols) for each kernel offset that reads input: k = i·kW + j numbers the
        offset in the whole kernel (increasing), rows/cols its strided slice of the frame."""
        (offs_h, start_h, _), (offs_w, start_w, _) = frame
        for i in offs_h:
            rows = offset_slice(i - start_h, 1, stride[0], out_hw[0])
            for j in offs_w:
                yield i * kernel[1] + j, rows, offset_slice(j - start_w, 1, stride[1], out_hw[1])

    def scatter(self, shape, dtype, geometry, grad, where=None) -> np.ndarray:
        """dx of `shape` (N, C, H, W): each kernel offset k adds `grad` (N, C, H_out, W_out),
        or grad(k) if it is a function, into the input positions it read, only where
        where(k) holds (if given). Input rows/columns no window reads get 0."""
        pads, extra, kernel, stride, out_hw = geometry
        frame = self.frame(shape, geometry)
        n, c, h, w = shape
        (_, start_h, len_h), (_, start_w, len_w) = frame
        dxp = np.zeros((n, c, len_h, len_w), dtype=dtype)
        for k, rows, cols in self.offsets(kernel, stride, out_hw, frame):
            target = dxp[:, :, rows, cols]
            add = grad(k) if callable(grad) else grad
            if where is None:
                target += add
            else:
                np.add(target, add, out=target, where=where(k))
        r0, r1, top = _placed(h, pads[0], start_h, len_h)
        c0, c1, left = _placed(w, pads[2], start_w, len_w)
        if (r0, r1, c0, c1) == (0, h, 0, w):
            return np.ascontiguousarray(dxp[:, :, top:top + h, left:left + w])
        dx = np.zeros(shape, dtype=dtype)
        dx[:, :, r0:r1, c0:c1] = dxp[:, :, top:top + r1 - r0, left:left + c1 - c0]
        return dx


def pool_cost(spec, input_shape, output_shape) -> tuple[int, int]:
    """For the estimates, per image and channel: (offsets visited, values of the padded copy).
    A forward pass does offsets × H_out·W_out comparisons or additions per channel."""
    (_, h, w), (_, ho, wo) = input_shape, output_shape
    kernel, stride = pair(spec.kernel), spec.strides
    pads = resolve_pads(spec.padding, h, w, kernel, stride)
    offs_h, _, len_h = _span(h, kernel[0], stride[0], pads[0], ho)
    offs_w, _, len_w = _span(w, kernel[1], stride[1], pads[2], wo)
    return len(offs_h) * len(offs_w), len_h * len_w


def _span(size: int, kernel: int, stride: int, before: int, out: int):
    """Along one axis: the kernel offsets i for which some output o reads an input row,
    before <= i + stride·o < before + size, and the padded stretch they read."""
    kept = []
    # outside [before − stride·(out−1), before + size − 1] no output of offset i can land
    for i in range(max(0, before - stride * (out - 1)), min(kernel - 1, before + size - 1) + 1):
        first = max(0, -((i - before) // stride))  # the first output at or past `before`
        if first < out and i + stride * first < before + size:
            kept.append(i)
    if not kept:  # geometry() refuses windows of padding only; this guards the invariant
        raise ShapeError(f"no pooling window reads the input (kernel {kernel}, padding "
                         f"{before}, size {size})", fix="use padding <= kernel // 2")
    start = kept[0]
    return kept, start, kept[-1] + stride * (out - 1) + 1 - start


def _placed(size: int, before: int, start: int, length: int) -> tuple[int, int, int]:
    """Input rows [lo, hi) that fall inside the padded stretch [start, start + length), and
    where the first of them sits in that stretch."""
    lo = max(0, start - before)
    hi = min(size, start + length - before)
    return lo, hi, before + lo - start


class MaxPool(_Pool):
    fill = -np.inf

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        geometry = self.geometry(x)
        pads, extra, kernel, stride, out_hw = geometry
        frame = self.frame(x.shape, geometry)
        xp = self.padded(x, pads, frame)
        offsets = list(self.offsets(kernel, stride, out_hw, frame))
        y = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
        # which offset won, as small an integer as the kernel allows
        argmax = (np.empty(y.shape, dtype=np.min_scalar_type(kernel[0] * kernel[1]))
                  if training else None)
        by_images(lambda p: _max_windows(xp[p], offsets, y[p],
                                         None if argmax is None else argmax[p]), x)
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

        def part(p):
            for i in range(kh):
                for j in range(kw):
                    np.multiply(dy[p], argmax[p] == i * kw + j, out=tiles[p, :, :, i, :, j])
        by_images(part, dx)
        return dx


def _max_windows(xp, offsets, y, argmax) -> None:
    """y (n, C, H_out, W_out) = the max over the windows of the padded input xp, offset by
    offset (k, rows, cols) in increasing k; argmax (same shape, or None) = the first k that
    reached it."""
    temps = None
    for k, rows, cols in offsets:
        window = xp[:, :, rows, cols]
        if temps is None:
            np.copyto(y, window)
            if argmax is not None:
                argmax.fill(k)
            temps = (np.empty(y.shape, dtype=bool), np.empty_like(argmax)) \
                if argmax is not None else ()
            continue
        if argmax is not None:  # strictly greater: on a tie the first offset keeps the gradient
            won, stamp = temps
            np.greater(window, y, out=won)
            # offsets come in increasing order, so argmax < k so far: max(argmax, k·won)
            # sets k exactly where this offset won. (A masked copyto took 4.6× longer on
            # a 256×6×28×28 map, measured 2026-11-22.)
            np.maximum(argmax, np.multiply(won, argmax.dtype.type(k), out=stamp), out=argmax)
        np.maximum(y, window, out=y)


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
        frame = self.frame(x.shape, geometry)
        xp = self.padded(x, pads, frame)
        y = None
        for _, rows, cols in self.offsets(kernel, stride, out_hw, frame):
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
