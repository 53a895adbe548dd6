"""Padding by a rule (zeros, reflect, symmetric, replicate, circular) and cropping, forward
and backward; the `pad` and `crop` layers, and the padded copy conv2d's padding_mode needs.

Shapes: x (N, C, H, W); pads (top, bottom, left, right); padded (N, C, H + top + bottom,
W + left + right). Every mode is separable: padded[y, x] = input[src_h(y), src_w(x)] with one
source map per axis, so a pad is done axis by axis, and along one axis each side is ONE
slice of the input (reversed for the mirrors, a single row for replicate):

    side    reflect (no edge)  symmetric (with it)  replicate     circular (wrap)
    before  rows p … 1         rows p−1 … 0         row 0 (×p)    rows S−p … S−1
    after   rows S−2 … S−1−q   rows S−1 … S−q       row S−1 (×q)  rows 0 … q−1

(NumPy's np.pad modes 'reflect', 'symmetric', 'edge', 'wrap'; PyTorch's F.pad 'reflect',
'replicate', 'circular'.) Within one side no input row is read twice, so the backward pass
folds each side's gradient back with one slice add (a sum over the side for replicate):
no per-pixel loop and no np.add.at.
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.base import Layer
from archcalc.nn.windows import Pads, pad as zero_pad
from archcalc.spec.layers import explicit_pads, pair

# the largest pad each mode allows, given the size S of the axis (PyTorch's and NumPy's
# rules: a reflection that would need the edge pixel twice, or a wrap past the whole
# image, has no source row)
_LIMIT = {"reflect": lambda s: s - 1, "symmetric": lambda s: s, "circular": lambda s: s,
          "replicate": lambda s: None, "zeros": lambda s: None}
_WHY = {"reflect": "reflect mirrors without the edge pixel, so it needs pad < size",
        "symmetric": "symmetric mirrors the image once, so it needs pad <= size",
        "circular": "circular wraps the image around once, so it needs pad <= size"}


def check_pads(mode: str, pads: Pads, h: int, w: int, what: str) -> None:
    """ShapeError when a side's pad is larger than `mode` can fill from an H×W input."""
    for axis, size, before, after in (("H", h, pads[0], pads[1]), ("W", w, pads[2], pads[3])):
        limit = _LIMIT[mode](size)
        amount = max(before, after)
        if limit is not None and amount > limit:
            raise ShapeError(f"{what}: {mode} padding {amount} along {axis} is too large for "
                             f"an input of {size} ({_WHY[mode]})",
                             fix=f"pad by at most {max(limit, 0)} along {axis}, use "
                                 "replicate or zeros, or pad a larger input")


def _sides(size: int, before: int, after: int, mode: str):
    """[(destination slice in the padded axis, source slice in the input axis, repeat)] for
    the two sides; repeat means the one source row fills the whole destination."""
    end = before + size
    out = []
    if before:
        src = {"reflect": slice(before, 0, -1),
               "symmetric": slice(before - 1, None, -1),
               "replicate": slice(0, 1),
               "circular": slice(size - before, size)}[mode]
        out.append((slice(0, before), src, mode == "replicate"))
    if after:
        src = {"reflect": slice(size - 2, size - 2 - after, -1),
               "symmetric": slice(size - 1, size - 1 - after, -1),
               "replicate": slice(size - 1, size),
               "circular": slice(0, after)}[mode]
        # a reversed slice that should stop before row 0 must say None, not −1
        if src.step == -1 and src.stop < 0:
            src = slice(src.start, None, -1)
        out.append((slice(end, end + after), src, mode == "replicate"))
    return out


def _at(axis: int, index) -> tuple:
    """An index tuple selecting `index` along `axis` (2 = H, 3 = W) of a 4-D array."""
    return (slice(None),) * axis + (index,)


def pad_mode(x: np.ndarray, pads: Pads, mode: str, value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) → padded (N, C, H + top + bottom, W + left + right), a new array (x
    itself when no pad). The W borders are filled inside the input rows first, then the H
    borders copy whole padded rows, which fills the corners by the same rule."""
    if mode == "zeros" or not any(pads):
        return zero_pad(x, pads, value)
    top, bottom, left, right = pads
    h, w = x.shape[2:]
    out = np.empty(x.shape[:2] + (h + top + bottom, w + left + right), dtype=x.dtype)
    rows = out[:, :, top:top + h]
    rows[:, :, :, left:left + w] = x
    inner = rows[:, :, :, left:left + w]
    for dst, src, _ in _sides(w, left, right, mode):
        rows[_at(3, dst)] = inner[_at(3, src)]  # a 1-wide source broadcasts (replicate)
    for dst, src, _ in _sides(h, top, bottom, mode):
        out[_at(2, dst)] = rows[_at(2, src)]
    return out


def fold(grad: np.ndarray, pads: Pads, mode: str) -> np.ndarray:
    """The adjoint of pad_mode: grad (N, C, H_pad, W_pad) → dx (N, C, H, W), a new array.
    Each padded value's gradient is added to the input value it copied (zeros: dropped)."""
    top, bottom, left, right = pads
    h = grad.shape[2] - top - bottom
    w = grad.shape[3] - left - right
    if mode == "zeros" or not any(pads):
        return np.ascontiguousarray(grad[:, :, top:top + h, left:left + w])
    # fold H first on whole padded rows (the corners' gradient goes to the border columns,
    # which the W fold then moves on to their sources)
    rows = grad[:, :, top:top + h].copy()
    for dst, src, repeat in _sides(h, top, bottom, mode):
        part = grad[_at(2, dst)]
        rows[_at(2, src)] += part.sum(axis=2, keepdims=True) if repeat else part
    dx = np.ascontiguousarray(rows[:, :, :, left:left + w])
    for dst, src, repeat in _sides(w, left, right, mode):
        part = rows[_at(3, dst)]
        dx[_at(3, src)] += part.sum(axis=3, keepdims=True) if repeat else part
    return dx


class Pad(Layer):
    """x (N, C, H, W) → (N, C, H + top + bottom, W + left + right), a new array."""

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)
        check_pads(self.spec.mode, self.pads(), x.shape[2], x.shape[3], "pad")

    def pads(self) -> Pads:
        return explicit_pads(self.spec.padding)  # a Pad takes explicit amounts only

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        self.cache = True if training else None
        pads = self.pads()
        if not any(pads):  # still a new tensor, as the calculator counts every pad's output
            return x.copy()
        return pad_mode(x, pads, self.spec.mode, self.spec.value)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.need_cache("cache")
        return fold(dy, self.pads(), self.spec.mode)


def crop_box(spec, h: int, w: int) -> Pads:
    """(top, bottom, left, right) rows/columns a crop removes from an H×W map: a centred
    `size` [h, w] (an odd surplus leaves its extra row/column at the bottom/right) or the
    `cropping` amounts. ShapeError when nothing would be left."""
    if spec.size is not None:
        want_h, want_w = pair(spec.size)
        if want_h > h or want_w > w:
            raise ShapeError(f"crop to {want_h}×{want_w} is larger than the input {h}×{w}",
                             fix="crop to at most the input's size, or crop a larger map")
        top, left = (h - want_h) // 2, (w - want_w) // 2
        return (top, h - want_h - top, left, w - want_w - left)
    box = explicit_pads(spec.cropping)
    if box[0] + box[1] >= h or box[2] + box[3] >= w:
        raise ShapeError(f"cropping {list(box)} (top, bottom, left, right) leaves nothing of "
                         f"the input {h}×{w}",
                         fix="crop less than the input's height and width")
    return box


class Crop(Layer):
    """x (N, C, H, W) → a VIEW x[:, :, top:H − bottom, left:W − right] (no copy, so the
    network records no new tensor); backward puts dy back into a zero map of x's shape."""

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)
        crop_box(self.spec, x.shape[2], x.shape[3])

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        top, bottom, left, right = crop_box(self.spec, x.shape[2], x.shape[3])
        h, w = x.shape[2:]
        self.cache = (x.shape, (top, bottom, left, right)) if training else None
        return x[:, :, top:h - bottom, left:w - right]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape, pads = self.need_cache("cache")
        return zero_pad(dy, pads) if any(pads) else dy.copy()
