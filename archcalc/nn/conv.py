"""2-D convolution as one matrix product per group (im2col + GEMM), forward and backward.

Shapes (cs231n style):
    x:      (N, C, H, W)              input
    weight: (F, C/G, kH, kW)          PyTorch's layout; F filters, G groups
    bias:   (F,)
    y:      (N, F, H_out, W_out)
    cols:   (G, C/G·kH·kW, n·H_out·W_out)   the im2col buffer of one chunk of n images

The im2col buffer is copied out of a strided view of the padded input; the product is
weight (G, F/G, C/G·kH·kW) @ cols → (G, F/G, n·H_out·W_out). No buffer ever exceeds
MAX_COLS_BYTES: the batch (and, for a single huge image, its output rows) is processed in
chunks. The forward pass cuts finer still, into chunks of about CACHE_COLS_BYTES (but at
least MIN_CHUNK_COLS output positions), so that a chunk is still in cache when the product
reads it: measured on VGG16's 64→64 3×3 layer at 224², one 110 MiB buffer took 92 ms and
2–4 MiB chunks 62 ms (docs/performance.md). A 1×1 convolution without padding needs no
im2col at all: its input, subsampled by the stride, already is the column matrix.
Backward works in chunks too (about BACKWARD_COLS_BYTES, same reused-buffer scheme): it
recomputes each chunk's cols for the weight gradient and scatters the chunk's column
gradient straight into dx with one vectorised add per kernel offset (col2im), clipped to
the unpadded input so that no padded copy of dx is needed (at stride 1, one per kernel row
into a flat padded dx: col2im_flat).

The chunks of one call are split over base.THREADS threads (NumPy releases the GIL in its
copies, adds and BLAS calls): each thread has its own buffers and its own partial weight
gradient; the input gradient is split by whole images, as one image's chunks add into the
same pixels. At stride 1 the input gradient's product runs over kW shifted copies of dy
(shift_columns), so that it sums over the kernel's columns itself and col2im_flat is left
with kH adds of whole rows per chunk.

Those two products (conv_forward; conv_grads, the weight and input gradients) are all the
layers here compute. conv2d's padding_mode pads a copy by its rule (archcalc.nn.padding)
and folds that copy's gradient back. conv_transpose2d is the adjoint of a convolution: its
forward is conv_grads' input gradient, its backward conv_forward plus conv_grads' weight
gradient with the roles of input and output swapped (see ConvTranspose2D), so it inherits
the chunking and memory bounds above.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn import base
from archcalc.nn.base import Layer, parallel
from archcalc.nn.padding import check_pads, fold, pad_mode
from archcalc.nn.windows import check_fits, out_size, pad, patches, resolve_pads, span
from archcalc.spec.layers import explicit_pads, pair

MAX_COLS_BYTES = 256 * 2**20  # hard bound on one im2col buffer (forward and backward)
# forward: aim for chunks this size, so they stay in cache. 2 MiB rather than 4: both were
# equally fast on VGG16 (docs/performance.md) and on LeNet-5, but 4 MiB put LeNet-5's
# training peak at batch 64 at 2.25× the calculator's estimate (2 MiB: 1.61×)
CACHE_COLS_BYTES = 2 * 2**20
# backward: cols and dcols are each about this size (smaller than the forward's chunks: two
# buffers live at once, next to every cached activation, and a training step's peak is there)
BACKWARD_COLS_BYTES = 1 * 2**20
MIN_CHUNK_COLS = 1024  # ... but give each chunk's product at least this many columns (both)
# ... and the weight gradient's product dy (F/G × m) @ colsᵀ (m × C/G·kH·kW), whose inner
# dimension m is the chunk's output positions, at most this many: OpenBLAS slows down 5×
# past it (LeNet-5's first conv, batch 256, one thread: 0.77 ms per step at m = 6,272,
# 3.89 ms at m = 10,192, measured 2026-11-30)
WEIGHT_GRAD_MAX_COLS = 6144
# One product at a time, even when the chunks run in threads: OpenBLAS gives every product
# above a small size to its own threads, and a second caller whose product needs them spins
# until they are free, on a core the first one needs (measured on 2 cores under load: a
# LeNet-5 step at batch 256 went from 116 ms to 85 ms, lower quartiles, with the lock).
# The threads overlap their copies and col2im adds with the other's product instead.
_BLAS = threading.Lock()
# below this many bytes of columns a layer runs in the calling thread: handing chunks to
# the pool costs tens of microseconds
PARALLEL_MIN_BYTES = 256 * 2**10


def _matmul(*args, **kwargs):
    with _BLAS:
        return np.matmul(*args, **kwargs)


def _after_fork() -> None:  # a lock held by another thread at fork stays held in the child
    global _BLAS
    _BLAS = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def chunks(n: int, rows: int, bytes_per_row: int, limit: int | None = None):
    """(n0, n1, r0, r1) blocks of images × output rows whose buffers stay under `limit`
    (default MAX_COLS_BYTES); a single output row is the smallest block."""
    limit = MAX_COLS_BYTES if limit is None else limit
    per_image = rows * bytes_per_row
    if per_image <= limit:
        step = max(1, limit // max(per_image, 1))
        for n0 in range(0, n, step):
            yield n0, min(n, n0 + step), 0, rows
        return
    step = max(1, limit // max(bytes_per_row, 1))
    for n0 in range(n):
        for r0 in range(0, rows, step):
            yield n0, n0 + 1, r0, min(rows, r0 + step)


def check_groups(layer: Layer, x: np.ndarray) -> None:
    """A C×H×W input whose channels the layer's groups divide."""
    layer.need_spatial(x)
    groups = layer.spec.groups
    if x.shape[1] % groups:
        raise ShapeError(f"input channels ({x.shape[1]}) not divisible by groups ({groups})",
                         fix="make the previous layer's channels a multiple of groups")


class Conv2D(Layer):
    keeps_input = True
    can_skip_dx = True

    def check(self, x: np.ndarray) -> None:
        check_groups(self, x)
        mode = self.spec.padding_mode
        if mode != "zeros":  # refused before any weight is drawn
            check_pads(mode, self.geometry(x)[0], x.shape[2], x.shape[3], "conv2d padding_mode")

    def build(self, x: np.ndarray) -> None:
        kh, kw = pair(self.spec.kernel)
        c_in = x.shape[1] // self.spec.groups
        f = self.spec.filters
        self.add_weight("weight", (f, c_in, kh, kw), c_in * kh * kw, f * kh * kw)
        if self.spec.bias:
            self.add_param("bias", np.zeros(f))

    def geometry(self, x: np.ndarray):
        """Pads, kernel, stride, dilation and output size for this input array."""
        n, c, h, w = x.shape
        kernel, stride, dilation = pair(self.spec.kernel), pair(self.spec.stride), pair(self.spec.dilation)
        pads = resolve_pads(self.spec.padding, h, w, kernel, stride, dilation)
        eh, ew = span(kernel[0], dilation[0]), span(kernel[1], dilation[1])
        ho = out_size(h, eh, stride[0], pads[0], pads[1])
        wo = out_size(w, ew, stride[1], pads[2], pads[3])
        check_fits("H", h, eh, pads[0], pads[1], ho, stride[0])
        check_fits("W", w, ew, pads[2], pads[3], wo, stride[1])
        return pads, kernel, stride, dilation, (ho, wo)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        """x: (N, C, H, W) → y: (N, F, H_out, W_out)."""
        pads, kernel, stride, dilation, (ho, wo) = self.geometry(x)
        g, f = self.spec.groups, self.spec.filters
        weight = self.p("weight").reshape(g, f // g, -1)
        y = np.empty((x.shape[0], f, ho, wo), dtype=x.dtype)
        # the bias is added piece by piece while each piece of y is still in cache
        bias = self.p("bias")[:, None] if self.spec.bias else None
        source, pads = self.padded(x, pads)
        conv_forward(source, weight, bias, pads, kernel, stride, dilation, y)
        self.cache = x if training else None
        return y

    def padded(self, x: np.ndarray, pads):
        """(array the windows read, pads still to add as zeros): a padding_mode other than
        zeros pads a copy by its rule here (the same size as the zero-padded copy the
        im2col path makes anyway), so the products below only ever see zero padding."""
        mode = self.spec.padding_mode
        if mode == "zeros" or not any(pads):
            return x, pads
        return pad_mode(x, pads, mode), (0, 0, 0, 0)  # pads checked in check()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, F, H_out, W_out) → dx: (N, C, H, W); fills weight and bias grads.

        Chunk by chunk (about BACKWARD_COLS_BYTES each, in buffers reused across chunks):
        cols (G, C/G·kH·kW, m) is recomputed for dW (G, F/G, C/G·kH·kW) += dy_chunk @ colsᵀ,
        and dcols = Wᵀ @ dy_chunk is scattered into dx straight away (col2im), so no buffer
        the size of the whole batch's columns is ever built. With a padding_mode the
        gradient of the padded copy is folded back onto the pixels its border copied."""
        x = self.need_cache("cache")
        pads, kernel, stride, dilation, (ho, wo) = self.geometry(x)
        g, f = self.spec.groups, self.spec.filters
        weight = self.p("weight").reshape(g, f // g, -1)
        want_w, need_dx = self.wants_grad("weight"), self.need_dx
        dw = np.zeros_like(weight) if want_w else None
        dx = None
        if want_w or need_dx:
            source, zero_pads = self.padded(x, pads)
            dx = conv_grads(dy, weight, source.shape, zero_pads, kernel, stride, dilation,
                            x=source, dw=dw, need_dx=need_dx)
            if dx is not None and source is not x:
                dx = fold(dx, pads, self.spec.padding_mode)
        param_grads(self, dw, dy)
        return dx


def param_grads(layer: Layer, dw, dy: np.ndarray) -> None:
    """Store a convolution's weight gradient dw (None: frozen) and its bias gradient, the
    sum of dy (N, F, H, W) over images and positions."""
    if dw is not None:
        layer.set_grad("weight", dw.reshape(layer.p("weight").shape))
    else:
        layer.zero_grad("weight")
    if layer.spec.bias:
        if layer.wants_grad("bias"):
            layer.set_grad("bias", dy.sum(axis=(0, 2, 3)))
        else:
            layer.zero_grad("bias")


class ConvTranspose2D(Layer):
    """Transposed convolution, built as the adjoint of Conv2D (no new product code):

        x: (N, C_in, H, W)   weight: (C_in, C_out/G, kH, kW) (PyTorch's layout)
        y: (N, C_out, H_out, W_out), H_out = (H − 1)·S − P_top − P_bottom + D·(kH − 1)
                                             + output_padding + 1

    Read the weight as a convolution's (F = C_in filters over C = C_out channels): that
    convolution maps a C_out×H_out map to C_in×H×W, and this layer is its transpose. So
        forward          = that convolution's input gradient (conv_grads with dx only),
        backward dx      = that convolution's forward pass applied to dy,
        backward dweight = that convolution's weight gradient, with dy as its input and x
                           as its output gradient.
    The convolution's padding is P_top on top and P_bottom − output_padding at the bottom;
    when output_padding exceeds P_bottom, the last output_padding − P_bottom rows lie past
    every kernel's reach: they hold the bias only, and the convolution sees the rows above
    them ("core" below)."""

    keeps_input = True
    can_skip_dx = True

    def check(self, x: np.ndarray) -> None:
        check_groups(self, x)
        self.geometry(x)

    def build(self, x: np.ndarray) -> None:
        kh, kw = pair(self.spec.kernel)
        c_in, per_group = x.shape[1], self.spec.filters // self.spec.groups
        # PyTorch computes the fans from the weight's dims 1 and 0 whatever the layer:
        # fan_in = (C_out/G)·kH·kW, fan_out = C_in·kH·kW
        self.add_weight("weight", (c_in, per_group, kh, kw), per_group * kh * kw,
                        c_in * kh * kw)
        if self.spec.bias:
            self.add_param("bias", np.zeros(self.spec.filters))

    def geometry(self, x: np.ndarray):
        """(output H×W, core H×W, the convolution's pads, kernel, stride, dilation)."""
        kernel, stride = pair(self.spec.kernel), pair(self.spec.stride)
        dilation, extra = pair(self.spec.dilation), pair(self.spec.output_padding)
        pads = explicit_pads(self.spec.padding)
        out, core, conv_pads = [], [], []
        for i, axis in enumerate("HW"):
            size, before, after = x.shape[2 + i], pads[2 * i], pads[2 * i + 1]
            full = (size - 1) * stride[i] + span(kernel[i], dilation[i])
            o = full - before - after + extra[i]
            if o <= 0:
                raise ShapeError(
                    f"conv_transpose2d padding {before} + {after} crops the whole output "
                    f"along {axis}: ({size} − 1)·{stride[i]} + {full - (size - 1) * stride[i]}"
                    f" − {before + after} + {extra[i]} = {o}",
                    fix="use less padding, a larger kernel or stride, or a larger input")
            out.append(o)
            core.append(o - max(0, extra[i] - after))
            conv_pads += [before, max(0, after - extra[i])]
        return tuple(out), tuple(core), tuple(conv_pads), kernel, stride, dilation

    def weight(self) -> np.ndarray:
        """The weight as the convolution's (G, C_in/G, C_out/G·kH·kW)."""
        return self.p("weight").reshape(self.spec.groups, -1,
                                        self.p("weight")[0].size)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        """x (N, C_in, H, W) → y (N, C_out, H_out, W_out): every input pixel scatters its
        kernel into y (col2im), chunk by chunk as the convolution's backward does."""
        out, core, pads, kernel, stride, dilation = self.geometry(x)
        shape = (x.shape[0], self.spec.filters) + core
        if min(core) <= 0:  # every output row (or column) lies past the kernels' reach
            y = np.zeros(shape[:2] + out, dtype=x.dtype)
        else:
            y = conv_grads(x, self.weight(), shape, pads, kernel, stride, dilation)
            if core != out:
                full = np.zeros(shape[:2] + out, dtype=x.dtype)
                full[:, :, :core[0], :core[1]] = y
                y = full
        if self.spec.bias:
            y += self.p("bias")[:, None, None]
        self.cache = x if training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, C_out, H_out, W_out) → dx (N, C_in, H, W); fills weight and bias grads."""
        x = self.need_cache("cache")
        out, core, pads, kernel, stride, dilation = self.geometry(x)
        weight = self.weight()
        want_w = self.wants_grad("weight")
        dw = np.zeros_like(weight) if want_w else None
        dx = None
        if self.need_dx:  # conv_forward writes every value; with no core, all are 0
            dx = (np.empty if min(core) > 0 else np.zeros)(x.shape, dtype=dy.dtype)
        if min(core) > 0:
            dy_core = dy[:, :, :core[0], :core[1]]
            if dx is not None:
                conv_forward(dy_core, weight, None, pads, kernel, stride, dilation, dx)
            if dw is not None:
                conv_grads(x, weight, dy_core.shape, pads, kernel, stride, dilation,
                           x=dy_core, dw=dw, need_dx=False)
        param_grads(self, dw, dy)
        return dx


# ---- the two products every convolution is made of --------------------------------------
def conv_forward(x, weight, bias, pads, kernel, stride, dilation, y) -> None:
    """y (N, F, H_out, W_out) = x (N, C, H, W) zero-padded by `pads`, convolved with weight
    (G, F/G, C/G·kH·kW) (+ bias (F, 1) if not None)."""
    if kernel == (1, 1) and not any(pads):
        _pointwise(x, weight, bias, stride, y)
    else:
        _im2col_forward(x, weight, bias, pads, kernel, stride, dilation, y)


def _pointwise(x, weight, bias, stride, y) -> None:
    """1×1, unpadded: y[n] (G, F/G, H_out·W_out) = weight (G, F/G, C/G) @ x[n] (G, C/G,
    H_out·W_out) (+ bias (F, 1)), x subsampled by the stride; one product per image."""
    g = weight.shape[0]
    if stride != (1, 1):  # a 1×1 window at stride s reads every s-th pixel
        x = x[:, :, ::stride[0], ::stride[1]]
    x = np.ascontiguousarray(x)
    n, c, ho, wo = x.shape
    for i in range(n):
        np.matmul(weight, x[i].reshape(g, c // g, ho * wo),
                  out=y[i].reshape(g, weight.shape[1], ho * wo))
        if bias is not None:
            y[i].reshape(-1, ho * wo)[:] += bias

def _im2col_forward(x, weight, bias, pads, kernel, stride, dilation, y) -> None:
    """y (N, F, H_out, W_out) (+ bias (F, 1)) filled chunk by chunk from cache-sized
    im2col buffers; the chunks are split over base.THREADS threads (each writes its own
    part of y, with its own buffers)."""
    n, c = x.shape[:2]
    ho, wo = y.shape[2:]
    view = patches(pad(x, pads), kernel, stride, dilation, (ho, wo))
    row_bytes = c * kernel[0] * kernel[1] * wo * x.itemsize
    blocks = _blocks(n, ho, row_bytes, CACHE_COLS_BYTES, wo)
    parallel(lambda part: _forward_blocks(part, view, weight, bias, y),
             _split(blocks, base.THREADS, row_bytes, whole_images=False))


def _blocks(n: int, rows: int, row_bytes: int, target: int, wo: int,
            max_cols: int | None = None) -> list:
    """The chunks (n0, n1, r0, r1) of one product: about `target` bytes of columns each (but
    at least MIN_CHUNK_COLS columns, at most MAX_COLS_BYTES and, if given, about max_cols
    output positions), and, when the work is worth threads (PARALLEL_MIN_BYTES), small
    enough that every thread gets at least one."""
    min_bytes = -(-MIN_CHUNK_COLS // wo) * row_bytes
    total = n * rows * row_bytes
    if base.THREADS > 1 and total >= PARALLEL_MIN_BYTES:
        target = min(target, -(-total // base.THREADS))
    limit = min(MAX_COLS_BYTES, max(target, min_bytes))
    if max_cols is not None:
        limit = min(limit, max(1, max_cols // wo) * row_bytes)
    return list(chunks(n, rows, row_bytes, limit))


def _split(blocks: list, parts: int, row_bytes: int, whole_images: bool) -> list[list]:
    """Contiguous runs of blocks, at most `parts`, of about equal work (output rows), for
    the threads; with whole_images the runs are cut only where an image starts (the input
    gradient's col2im adds of one image's row blocks overlap: one thread must do them all)."""
    if parts <= 1 or len(blocks) <= 1 or _rows(blocks) * row_bytes < PARALLEL_MIN_BYTES:
        return [blocks]
    total = _rows(blocks)
    runs, current, done = [], [], 0
    for block in blocks:
        starts_image = block[2] == 0
        if (current and len(runs) < parts - 1 and (starts_image or not whole_images)
                and done >= total * (len(runs) + 1) / parts):
            runs.append(current)
            current = []
        current.append(block)
        done += (block[1] - block[0]) * (block[3] - block[2])
    runs.append(current)
    return runs


def _rows(blocks) -> int:
    return sum((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks)


def _forward_blocks(blocks, view, weight, bias, y) -> None:
    """Fill y's part of these blocks: im2col each into a buffer, multiply, place."""
    f, ho, wo = y.shape[1:]
    g = weight.shape[0]
    k = view.shape[1] * view.shape[2] * view.shape[3]
    # one buffer for every chunk's columns and one for its product, reused: a fresh
    # allocation per chunk would fault its pages in again each time
    most = max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks) * wo
    cols_buf = np.empty(k * most, dtype=y.dtype)
    prod_buf = np.empty(f * most, dtype=y.dtype)
    for n0, n1, r0, r1 in blocks:
        part = view[n0:n1, :, :, :, r0:r1].transpose(1, 2, 3, 0, 4, 5)
        m = (n1 - n0) * (r1 - r0) * wo
        cols = cols_buf[:k * m].reshape(part.shape)
        np.copyto(cols, part)
        cols = cols.reshape(g, k // g, m)
        if n1 - n0 == 1 and r1 - r0 == ho:  # one whole image: write straight into y
            _matmul(weight, cols, out=y[n0].reshape(g, f // g, ho * wo))
            if bias is not None:
                y[n0].reshape(f, ho * wo)[:] += bias
            continue
        # matmul into a strided slice of y would leave BLAS (measured: 5× slower), so
        # the product goes to a contiguous buffer and is copied into place
        prod = _matmul(weight, cols, out=prod_buf[:f * m].reshape(g, f // g, m))
        if bias is not None:
            prod.reshape(f, m)[:] += bias
        if n1 - n0 == 1:
            y[n0].reshape(f, ho * wo)[:, r0 * wo:r1 * wo] = prod.reshape(f, m)
        else:
            y[n0:n1, :, r0:r1] = prod.reshape(f, n1 - n0, r1 - r0, wo).transpose(1, 0, 2, 3)


def conv_grads(dy, weight, shape, pads, kernel, stride, dilation, *, x=None, dw=None,
               need_dx=True):
    """The two gradients of a convolution of an input of `shape` (N, C, H, W) (padded by
    `pads` to the map the windows slide over) with weight (G, F/G, C/G·kH·kW), given
    dy (N, F, H_out, W_out): accumulate dw (G, F/G, C/G·kH·kW) (if not None; then x, the
    unpadded input, is needed) over blocks of images × output rows; return dx (N, C, H, W)
    if need_dx (else None). dx alone is also a transposed convolution's forward pass.
    The blocks are split over base.THREADS threads by whole images (dx of two images never
    overlaps), each with its own buffers and its own partial dw, summed at the end."""
    n, c, h, w = shape
    wo = dy.shape[3]
    k = c * kernel[0] * kernel[1]
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    # at stride 1, dx is built from "wide" column gradients (whole padded rows, see
    # col2im_flat): their rows are W_pad long instead of W_out
    wide = need_dx and stride == (1, 1)
    row_bytes = k * (wp if wide else wo) * dy.itemsize
    blocks = _blocks(n, dy.shape[2], row_bytes, BACKWARD_COLS_BYTES, wo,
                     WEIGHT_GRAD_MAX_COLS if dw is not None else None)
    job = _Grads(dy, weight, shape, pads, kernel, stride, dilation, wide)
    if dw is not None:
        job.view = patches(pad(x, pads), kernel, stride, dilation, dy.shape[2:])
    if need_dx and wide:
        # the padded dx, flat, with (kW−1)·D_w spare elements at the end (peak.py counts
        # them; col2im_flat no longer writes there, see its docstring)
        job.flat = np.zeros(n * c * hp * wp + (kernel[1] - 1) * dilation[1], dtype=dy.dtype)
    elif need_dx:
        job.dx = np.zeros(shape, dtype=dy.dtype)
    runs = _split(blocks, base.THREADS, row_bytes, whole_images=need_dx)
    parts = parallel(lambda run: job.run(run, dw if run is runs[0] else None,
                                         dw is not None, need_dx), runs)
    for part in parts[1:]:
        if part is not None:
            dw += part
    if not need_dx:
        return None
    if not wide:
        return job.dx
    dxp = job.flat[:n * c * hp * wp].reshape(n, c, hp, wp)
    if not any(pads):
        return dxp
    return np.ascontiguousarray(dxp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w])


class _Grads:
    """One conv_grads call's shared arrays (dy, the weight, the input's patch view, the dx
    being built) and the work of one thread over its run of blocks."""

    view = flat = dx = None

    def __init__(self, dy, weight, shape, pads, kernel, stride, dilation, wide) -> None:
        self.dy, self.weight, self.shape, self.pads = dy, weight, shape, pads
        self.kernel, self.stride, self.dilation, self.wide = kernel, stride, dilation, wide

    def weight_by_rows(self) -> np.ndarray:
        """The weight (G, F/G, C/G·kH·kW) as (G, kH·C/G, kW·F/G): row (i, c), column (j, f)
        holds W[f, c, i, j], the product col2im_flat's shifted columns need."""
        g, fg, _ = self.weight.shape
        kh, kw = self.kernel
        w5 = self.weight.reshape(g, fg, -1, kh, kw)
        return np.ascontiguousarray(w5.transpose(0, 3, 2, 4, 1)).reshape(g, -1, kw * fg)

    def run(self, blocks, dw, want_w: bool, need_dx: bool):
        """Accumulate this run's weight gradient into dw (a new array if dw is None and
        want_w; returned) and add its column gradients into dx (or flat)."""
        dy, weight, kernel, wide = self.dy, self.weight, self.kernel, self.wide
        n, c, h, w = self.shape
        f, wo = dy.shape[1], dy.shape[3]
        g = weight.shape[0]
        k = c * kernel[0] * kernel[1]
        hp = h + self.pads[0] + self.pads[1]
        wp = w + self.pads[2] + self.pads[3]
        most = max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks)  # n·rows
        # reused across chunks: fresh buffers would fault their pages in again each time
        if want_w:
            if dw is None:
                dw = np.zeros_like(weight)
            cols_buf = np.empty(k * most * wo, dtype=dy.dtype)
            dw_part = np.empty_like(dw)
        if want_w or not wide:
            dy_buf = np.empty(f * most * wo, dtype=dy.dtype)
        if need_dx and not wide:
            dcols_buf = np.empty(k * most * wo, dtype=dy.dtype)
            w_t = weight.transpose(0, 2, 1)
        if need_dx and wide:
            kh, kw = kernel
            dyw_buf = np.empty(f * most * wp, dtype=dy.dtype)
            shifted_buf = np.empty(kw * f * most * wp, dtype=dy.dtype)
            dcols_buf = np.empty(kh * c * most * wp, dtype=dy.dtype)
            w_rows = self.weight_by_rows()
        for n0, n1, r0, r1 in blocks:
            nb, rb = n1 - n0, r1 - r0
            m = nb * rb * wo
            if want_w or not wide:
                dyb = dy_buf[:f * m].reshape(f, nb, rb, wo)
                np.copyto(dyb, dy[n0:n1, :, r0:r1].transpose(1, 0, 2, 3))
                dyb = dyb.reshape(g, f // g, m)
            if want_w:
                cols = cols_buf[:k * m].reshape(c, kernel[0], kernel[1], nb, rb, wo)
                np.copyto(cols, self.view[n0:n1, :, :, :, r0:r1].transpose(1, 2, 3, 0, 4, 5))
                _matmul(dyb, cols.reshape(g, k // g, m).transpose(0, 2, 1), out=dw_part)
                dw += dw_part
            if not need_dx:
                continue
            if not wide:
                dcols = _matmul(w_t, dyb, out=dcols_buf[:k * m].reshape(g, k // g, m))
                col2im(dcols.reshape(c, kernel[0], kernel[1], nb, rb, wo), self.dx[n0:n1],
                       r0, self.pads, self.stride, self.dilation)
                continue
            length = rb * wp
            dyw = dyw_buf[:f * nb * length].reshape(f, nb, rb, wp)
            # zero gradient in the extra columns, so their column gradients are 0 and the
            # shifted runs below may carry them over a row's end (non-finite weights would
            # break this, but they already stop training)
            dyw[..., wo:] = 0
            dyw[..., :wo] = dy[n0:n1, :, r0:r1].transpose(1, 0, 2, 3)
            shifted = shifted_buf[:kw * f * nb * length].reshape(g, kw, f // g, nb, length)
            shift_columns(dyw.reshape(g, f // g, nb, length), shifted, self.dilation[1])
            dcols = _matmul(w_rows, shifted.reshape(g, kw * f // g, nb * length),
                            out=dcols_buf[:kh * c * nb * length].reshape(g, kh * c // g,
                                                                         nb * length))
            col2im_flat(dcols.reshape(g, kh, c // g, nb, length), self.flat, n0, r0,
                        (hp, wp), self.dilation)
        return dw if want_w else None


def shift_columns(dyw: np.ndarray, shifted: np.ndarray, dilation: int) -> None:
    """shifted[g, j, f, n, q] = dyw[g, f, n, q − j·D_w] (0 where q < j·D_w): dyw (G, F/G,
    n, rows·W_pad) is the output gradient on the wide grid, each run of rows·W_pad values
    one image's rows of one filter; shifted (G, kW, F/G, n, rows·W_pad). Each copy moves
    whole runs, so it costs about as much as a plain copy of dyw."""
    for j in range(shifted.shape[1]):
        s = j * dilation
        if s:
            shifted[:, j, :, :, :s] = 0
        shifted[:, j, :, :, s:] = dyw[..., :dyw.shape[-1] - s]


def col2im_flat(dcols: np.ndarray, flat: np.ndarray, n0: int, r0: int, plane, dilation) -> None:
    """Stride-1 col2im over whole rows, one add per kernel row. dcols (G, kH, C/G, n,
    rows·W_pad): for kernel row i, the input gradient that output rows r0 … r0+rows−1 of
    images n0 … n0+n−1 send to padded input rows r0+i·D_h … (already summed over the
    kernel's columns j, see below). flat: the padded dx (N, C, H_pad, W_pad) flattened,
    plus (kW−1)·D_w spare elements (which nothing here touches any more).

    At stride 1 output (y, x) under kernel offset (i, j) reads padded input (y + i·D_h,
    x + j·D_w), i.e. flat index (y + i·D_h)·W_pad + x + j·D_w of its plane. On a grid
    W_pad wide (zero gradient past W_out), the offset j is a shift of the run by j·D_w:
    shift_columns makes kW shifted copies of dy, so that one product
        (kH·C/G × kW·F/G) @ (kW·F/G × n·rows·W_pad)
    sums over j and f at once, and what is left per kernel row i is one add of whole
    contiguous runs rows·W_pad long (inner loops that long, not W_out), shifted by i·D_h
    rows. kH adds per chunk instead of kH·kW, of C·kH rows instead of C·kH·kW: LeNet-5's
    second conv at batch 256, one thread, col2im 3.6 → 0.8 ms per step (2026-11-30; 19 ms
    before whole rows, 2026-11-22). The runs end inside each image's own plane (the last
    row reaches padded row H_out − 1 + (kH−1)·D_h = H_pad − 1), so threads working on
    different images never touch the same element."""
    g, kh, cg, n, length = dcols.shape
    hp, wp = plane
    c = g * cg
    size = flat.itemsize
    # one view (kH, n, G, C/G, rows·W_pad) for all kernel rows (they overlap one another,
    # but each add below writes through one row only)
    targets = np.lib.stride_tricks.as_strided(
        flat[n0 * c * hp * wp + r0 * wp:], (kh, n, g, cg, length),
        (dilation[0] * wp * size, c * hp * wp * size, cg * hp * wp * size, hp * wp * size,
         size))
    for i in range(kh):
        target = targets[i]
        target += dcols[:, i].transpose(2, 0, 1, 3)


def clipped(offset: int, before: int, stride: int, first: int, last: int, size: int):
    """For one kernel offset (already times the dilation) along one axis: the output
    positions in [first, last) whose input position o·S + offset − before lies inside
    [0, size), as (slice into the input, slice into the outputs relative to `first`), or
    None. Clipping here spares col2im a padded copy of dx."""
    shift = offset - before
    lo = max(first, -(-max(0, -shift) // stride))
    hi = min(last, (size - 1 - shift) // stride + 1) if size - 1 - shift >= 0 else first
    if lo >= hi:
        return None
    start = lo * stride + shift
    return (slice(start, start + (hi - lo - 1) * stride + 1, stride),
            slice(lo - first, hi - first))


def col2im(dcols: np.ndarray, dx: np.ndarray, r0: int, pads, stride, dilation) -> None:
    """Scatter-add dcols (C, kH, kW, n, rows, W_out), the gradient of the columns of output
    rows r0 … r0+rows−1 of n images, into dx (n, C, H, W): one vectorised add per kernel
    offset over a strided slice (a loop over the kernel, not over the pixels)."""
    c, kh, kw, n, rows, wo = dcols.shape
    h, w = dx.shape[2:]
    for i in range(kh):
        along_h = clipped(i * dilation[0], pads[0], stride[0], r0, r0 + rows, h)
        if along_h is None:
            continue
        for j in range(kw):
            along_w = clipped(j * dilation[1], pads[2], stride[1], 0, wo, w)
            if along_w is None:
                continue
            target = dx[:, :, along_h[0], along_w[0]]
            target += dcols[:, i, j, :, along_h[1], along_w[1]].transpose(1, 0, 2, 3)
