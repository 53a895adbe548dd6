"""The executor's fast paths against its sequential path, a naive convolution and PyTorch.

The convolution splits its chunks over threads (archcalc.nn.base.THREADS): separate images'
input gradients in separate threads, each thread with its own partial weight gradient, and
col2im_flat stops every add at its own image's plane. These tests shrink the chunk sizes and
the threading threshold (monkeypatch) so that small arrays already take every branch: many
chunks per thread, chunks of several images, chunks of a few rows of one image, more threads
than cores. Then, for strided, padded, dilated, grouped and 1×1 convolutions, transposed
convolutions and pools: the threaded result equals the sequential one (THREADS = 1) exactly
up to summation order, and both equal an independent oracle — a float64 convolution written
as one einsum over a strided window view, and PyTorch (forward and every gradient) when it
is installed. No timing here: benchmarks/train_step.py and forward.py print the figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.nn import base, conv
from archcalc.nn.conv import conv_forward, conv_grads
from archcalc.spec.load import loads
from archcalc.nn import build

# (C_in, H, W, filters, kernel, stride, padding (top, bottom, left, right), dilation, groups)
CASES = [
    (3, 11, 9, 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),      # stride 1, no pad: col2im_flat
    (4, 10, 10, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),     # padded, grouped
    (3, 13, 12, 5, (5, 3), (2, 2), (2, 1, 0, 2), (1, 1), 1),     # strided, asymmetric pads
    (2, 12, 12, 4, (3, 3), (1, 2), (2, 2, 2, 2), (2, 2), 1),     # dilated, mixed stride
    (6, 9, 9, 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 6),       # depthwise, strided
    (4, 8, 8, 6, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 2),       # 1×1 strided (pointwise)
    (2, 14, 10, 3, (5, 5), (1, 1), (0, 0, 0, 0), (2, 1), 1),     # dilated, stride 1, flat
]
IDS = ["flat", "pad-group", "stride-asym", "dilated", "depthwise", "pointwise", "flat-dilated"]


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of a few hundred bytes and threads from the first byte: every branch of the
    chunking and splitting runs on arrays of a few kilobytes."""
    monkeypatch.setattr(conv, "CACHE_COLS_BYTES", 512)
    monkeypatch.setattr(conv, "BACKWARD_COLS_BYTES", 512)
    monkeypatch.setattr(conv, "MIN_CHUNK_COLS", 4)
    monkeypatch.setattr(conv, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(base, "SPLIT_MIN_BYTES", 0)  # relu and max pooling by images


def arrays(case, n, dtype=np.float64, seed=0):
    c, h, w, f, kernel, stride, pads, dilation, g = case
    rng = np.random.default_rng(seed)
    eh, ew = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    ho = (h + pads[0] + pads[1] - eh) // stride[0] + 1
    wo = (w + pads[2] + pads[3] - ew) // stride[1] + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c // g, *kernel)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    dy = rng.standard_normal((n, f, ho, wo)).astype(dtype)
    return x, weight, bias, dy


def naive(case, x, weight, bias):
    """The convolution by its definition, in float64: y[n, f, p, q] = b[f] + Σ_{c, i, j}
    W[f, c, i, j] · x_pad[n, g(f)·C/G + c, p·S_h + i·D_h, q·S_w + j·D_w]."""
    c, h, w, f, kernel, stride, pads, dilation, g = case
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pads[:2], pads[2:]))
    n = x.shape[0]
    ho = (xp.shape[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (xp.shape[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    y = np.empty((n, f, ho, wo))
    for i_g in range(g):
        xs = xp[:, i_g * (c // g):(i_g + 1) * (c // g)]
        ws = weight[i_g * (f // g):(i_g + 1) * (f // g)].astype(np.float64)
        acc = np.zeros((n, f // g, ho, wo))
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                win = xs[:, :, i * dilation[0]:i * dilation[0] + stride[0] * (ho - 1) + 1:stride[0],
                         j * dilation[1]:j * dilation[1] + stride[1] * (wo - 1) + 1:stride[1]]
                acc += np.einsum("nchw,fc->nfhw", win, ws[:, :, i, j])
        y[:, i_g * (f // g):(i_g + 1) * (f // g)] = acc
    return y + bias[None, :, None, None]


def naive_grads(case, x, weight, bias, dy):
    """dx, dW and db of Σ y·dy: `naive`'s einsums transposed by hand (y is linear in x and
    in W), offset by offset, in float64."""
    c, h, w, f, kernel, stride, pads, dilation, g = case
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pads[:2], pads[2:]))
    dxp = np.zeros_like(xp)
    dw = np.zeros(weight.shape)
    ho, wo = dy.shape[2:]
    for i_g in range(g):
        cs = slice(i_g * (c // g), (i_g + 1) * (c // g))
        fs = slice(i_g * (f // g), (i_g + 1) * (f // g))
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (wo - 1) + 1, stride[1])
                dw[fs, :, i, j] = np.einsum("nfhw,nchw->fc", dy[:, fs], xp[:, cs, rows, cols])
                dxp[:, cs, rows, cols] += np.einsum("nfhw,fc->nchw", dy[:, fs],
                                                    weight[fs, :, i, j].astype(np.float64))
    dx = dxp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def ours(case, x, weight, bias, dy, threads, monkeypatch):
    """(y, dx, dW) from conv_forward and conv_grads with this many threads."""
    c, h, w, f, kernel, stride, pads, dilation, g = case
    monkeypatch.setattr(base, "THREADS", threads)
    w3 = weight.reshape(g, f // g, -1)
    y = np.empty(dy.shape, dtype=x.dtype)
    conv_forward(x, w3, bias[:, None], pads, kernel, stride, dilation, y)
    dw = np.zeros_like(w3)
    dx = conv_grads(dy, w3, x.shape, pads, kernel, stride, dilation, x=x, dw=dw)
    return y, dx, dw.reshape(weight.shape)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("n", [1, 5])
def test_threaded_conv_equals_sequential_and_naive(case, n, tiny_chunks, monkeypatch):
    x, weight, bias, dy = arrays(case, n)
    y_ref, dx_ref, dw_ref = naive(case, x, weight, bias), *naive_grads(case, x, weight, bias,
                                                                        dy)[:2]
    seq = ours(case, x, weight, bias, dy, 1, monkeypatch)
    for threads in (2, 3):
        got = ours(case, x, weight, bias, dy, threads, monkeypatch)
        for a, b in zip(got, seq):  # the same sums, at most in another order
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(seq, (y_ref, dx_ref, dw_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_rows_of_one_image_stay_in_one_thread(monkeypatch):
    """A chunk smaller than one image's columns: the image's row chunks overlap in dx, so
    the split may cut only between images (whole_images); with one image, one thread."""
    monkeypatch.setattr(conv, "PARALLEL_MIN_BYTES", 0)
    blocks = list(conv.chunks(3, 8, 100, 250))  # 2 rows per chunk, 4 chunks per image
    runs = conv._split(blocks, 2, 100, whole_images=True)
    assert len(runs) == 2 and all(b[2] == 0 for b in (run[0] for run in runs))
    images = [{n0 for n0, *_ in run} for run in runs]
    assert not images[0] & images[1]
    one = list(conv.chunks(1, 8, 100, 250))
    assert conv._split(one, 2, 100, whole_images=True) == [one]
    assert len(conv._split(one, 2, 100, whole_images=False)) == 2


def test_flat_col2im_writes_nothing_past_each_image(tiny_chunks, monkeypatch):
    """The stride-1 input gradient is built in one flat buffer with spare values after the
    last plane; no add may reach past an image's own plane (another thread's image), so
    the spare values stay exactly zero even when the weights are huge."""
    case = CASES[0]
    x, weight, bias, dy = arrays(case, 4)
    monkeypatch.setattr(base, "THREADS", 2)
    g, f = case[8], case[3]
    dx = conv_grads(dy, weight.reshape(g, f // g, -1) * 1e30, x.shape, (0, 0, 0, 0),
                    case[4], (1, 1), (1, 1))
    flat = dx.base
    while flat.base is not None:
        flat = flat.base
    assert flat.size == dx.size + case[4][1] - 1  # peak.py counts exactly these spares
    assert not flat.reshape(-1)[dx.size:].any()


# ---- against PyTorch: layers, every gradient ------------------------------------------------
def _spec(layer: str, shape) -> str:
    return f"name: t\ninput: {list(shape)}\nlayers:\n  - {layer}\n"


LAYERS = [
    ("conv: {filters: 4, kernel: 3, stride: 2, padding: 1, bias: true}", (3, 15, 13)),
    ("conv: {filters: 6, kernel: 3, padding: 2, dilation: 2, groups: 3, bias: true}", (6, 12, 12)),
    ("conv: {filters: 5, kernel: 5, bias: true}", (2, 16, 14)),
    ("conv: {filters: 4, kernel: [3, 1], stride: [1, 2], padding: [1, 0], bias: true}", (4, 9, 10)),
    ("conv_transpose2d: {filters: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1, "
     "bias: true}", (3, 7, 6)),
    ("conv_transpose2d: {filters: 6, kernel: 3, dilation: 2, groups: 2, bias: true}", (4, 6, 7)),
    ("maxpool: {kernel: 3, stride: 2, padding: 1}", (3, 11, 10)),
    ("maxpool: {kernel: 2}", (3, 12, 12)),
    ("avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}", (3, 10, 11)),
    ("maxpool: {kernel: 2, ceil_mode: true}", (2, 9, 7)),
    ("relu", (3, 5, 6)),
]


def _torch_layer(torch, model, layer: str, x):
    F = torch.nn.functional
    P = {k.split(".", 1)[1]: torch.tensor(v, requires_grad=True)
         for k, v in model.params.items()}
    if layer.startswith("conv:"):
        spec = model.network.root.children[0].spec
        from archcalc.spec.layers import explicit_pads, pair
        pads = explicit_pads(spec.padding)
        xp = F.pad(x, (pads[2], pads[3], pads[0], pads[1]))
        return F.conv2d(xp, P["weight"], P["bias"], pair(spec.stride), 0, pair(spec.dilation),
                        spec.groups), P
    if layer.startswith("conv_transpose2d"):
        spec = model.network.root.children[0].spec
        from archcalc.spec.layers import pair
        return F.conv_transpose2d(x, P["weight"], P["bias"], pair(spec.stride),
                                  pair(spec.padding), pair(spec.output_padding), spec.groups,
                                  pair(spec.dilation)), P
    if layer == "relu":
        return F.relu(x), P
    spec = model.network.root.children[0].spec
    from archcalc.spec.layers import pair
    pool = F.max_pool2d if layer.startswith("maxpool") else F.avg_pool2d
    return pool(x, pair(spec.kernel), spec.strides, pair(spec.padding),
                ceil_mode=spec.ceil_mode), P


@pytest.mark.parametrize("layer, shape", LAYERS, ids=[l.split(":")[0] + str(i)
                                                      for i, (l, _) in enumerate(LAYERS)])
@pytest.mark.parametrize("threads", [1, 2])
def test_layers_match_torch_forward_and_every_gradient(layer, shape, threads, tiny_chunks,
                                                        monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(base, "THREADS", threads)
    model = build(loads(_spec(layer, shape)), seed=1, dtype="float64")
    x = np.random.default_rng(2).standard_normal((4, *shape))
    x[0, 0, 0, :2] = x[0, 0, 0, 2]  # ties: the first offset of a window keeps the gradient
    y = model.forward(x, training=True)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    dx = model.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt, P = _torch_layer(torch, model, layer, xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    for short, p in P.items():
        np.testing.assert_allclose(model.grads[f"{model.records[0].name}.{short}"],
                                   p.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_a_forked_child_gets_a_working_pool(tiny_chunks, monkeypatch):
    """The pool's threads do not survive a fork: a child that convolves must not hand its
    chunks to threads it does not have (it would wait for ever)."""
    import os
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    monkeypatch.setattr(base, "THREADS", 2)
    case = CASES[0]
    x, weight, bias, dy = arrays(case, 3)
    expected = ours(case, x, weight, bias, dy, 2, monkeypatch)[1]  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the threaded path ran and agreed
        try:
            got = ours(case, x, weight, bias, dy, 2, monkeypatch)[1]
            os._exit(0 if np.allclose(got, expected) else 1)
        except BaseException:  # noqa: BLE001 - any failure is the child's exit status
            os._exit(2)
    import signal
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on the executor's thread pool")
