"""Sliding windows on real arrays: padding, output sizes, strided patch views.

Everything here reads sizes off the array it is given; nothing comes from the calculator.
Output size along one axis (cs231n: W input, F kernel, P padding, S stride, D dilation):
    out = floor((W + P_before + P_after − (D·(F − 1) + 1)) / S) + 1
PyTorch's ceil mode rounds up instead, but drops a last window that would start in the
trailing padding (torch.nn.MaxPool2d docs, "ceil_mode"; aten/src/ATen/native/Pool.h
pooling_output_shape).
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.spec.layers import explicit_pads, pair, same_pads

Pads = tuple[int, int, int, int]  # top, bottom, left, right


def resolve_pads(padding, h: int, w: int, kernel, stride, dilation=1) -> Pads:
    """(top, bottom, left, right) for this array's H×W; "same" is computed here."""
    pads = explicit_pads(padding)
    if pads is not None:
        return tuple(int(p) for p in pads)  # type: ignore[return-value]
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    return same_pads(h, kh, sh, dh) + same_pads(w, kw, sw, dw)


def span(kernel: int, dilation: int) -> int:
    """The extent a dilated kernel covers: D·(F − 1) + 1."""
    return dilation * (kernel - 1) + 1


def out_size(size: int, extent: int, stride: int, before: int, after: int,
             ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (PyTorch's rule in ceil mode)."""
    room = size + before + after - extent
    if not ceil_mode:
        return room // stride + 1 if room >= 0 else 0
    # In ceil mode a window may overhang even a map smaller than the kernel (PyTorch: 2×2
    # under a 3×3/2 pool gives 1×1).
    out = -(-room // stride) + 1
    if (out - 1) * stride >= size + before:  # the last window would start in the padding
        out -= 1
    return out


def check_fits(name_axis: str, size: int, extent: int, before: int, after: int,
               out: int, stride: int) -> None:
    if out <= 0:
        raise ShapeError(
            f"kernel {extent} larger than the padded input {size + before + after} along "
            f"{name_axis}: ({size} − {extent} + {before} + {after})/{stride} + 1 ≤ 0",
            fix="use a larger --input, more padding, or a smaller kernel/stride earlier")


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of an N×C×H×W array (a new array; x itself when no padding)."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    h, w = x.shape[2:]
    out = np.empty(x.shape[:2] + (h + top + bottom, w + left + right), dtype=x.dtype)
    # fill only the border: filling the whole array first would write the interior twice
    # (measured on VGG16's 64×226×226 input: 4.3 ms with np.full)
    out[:, :, :top] = value
    out[:, :, top + h:] = value
    out[:, :, top:top + h, :left] = value
    out[:, :, top:top + h, left + w:] = value
    out[:, :, top:top + h, left:left + w] = x
    return out


def patches(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """A read-only strided view (N, C, kH, kW, H_out, W_out) of a padded N×C×H×W array:
    view[n, c, i, j, y, x] = xp[n, c, y·S_h + i·D_h, x·S_w + j·D_w]. No copy."""
    n, c = xp.shape[:2]
    s0, s1, s2, s3 = xp.strides
    shape = (n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])
    strides = (s0, s1, s2 * dilation[0], s3 * dilation[1], s2 * stride[0], s3 * stride[1])
    # bounds: the last window ends at (H_out−1)·S + (kH−1)·D ≤ H_padded − 1, asserted by
    # the callers' output sizes
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def offset_slice(i: int, dilation: int, stride: int, count: int) -> slice:
    """Rows (or columns) of the padded input that kernel offset i touches, one per output."""
    start = i * dilation
    return slice(start, start + stride * (count - 1) + 1, stride)
