"""The executor's modern kinds, part B: conv_transpose2d, conv2d's padding_mode, pad and crop.
Each: a float64 gradient check, and parity with PyTorch (float32, same inputs and weights:
outputs, input and weight gradients within 1e-4 of the largest value) or with np.pad.
Transposed convolutions are the layers most often wrong at the borders: the cases use odd
sizes (5×7), stride 3, output_padding 1 and 2, asymmetric padding, dilation and groups.
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ShapeError
from archcalc.nn.network import build

from modern_cases import assert_gradcheck, net


def run(layers: str, shape=(2, 5, 7), batch=2, dtype="float32", seed=0):
    """Our model, its input x, output y, a random output gradient r and dx = backward(r)."""
    model = build(net(layers, shape), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 11)
    x = rng.standard_normal((batch,) + shape).astype(dtype)
    y = model.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(dtype)
    return model, x, y, r, model.backward(r)


# ---- gradient checks (float64) --------------------------------------------------------
DECONV = {
    "deconv_stride3_op2_asym_pad": "{deconv: {filters: 3, kernel: 3, stride: 3, padding: [1, 2, 0, 1], output_padding: 2}}",
    "deconv_dilation2_groups2_no_bias": "{deconv: {filters: 4, kernel: [3, 2], stride: 2, padding: 1, "
                                        "output_padding: 1, dilation: 2, groups: 2, bias: false}}",
    # output_padding past the bottom/right padding: the last rows hold the bias only
    "deconv_op_past_padding": "{conv_transpose2d: {filters: 2, kernel: 2, stride: 3, output_padding: [1, 2]}}",
    "deconv_stride1_padded": "{deconv: {filters: 3, kernel: 3, padding: [2, 0, 1, 1]}}",
    "deconv_1x1_stride2": "{deconv: {filters: 3, kernel: 1, stride: 2, output_padding: 1}}",
}
GRAD_CASES = {
    **{name: f"[{{conv: {{filters: 2, kernel: 1}}}}, {layer}]" for name, layer in DECONV.items()},
    **{f"conv_{mode}_{tag}": f"[{{conv: {{filters: 3, kernel: {k}, stride: {s}, padding: {p}, "
                             f"padding_mode: {mode}}}}}]"
       for mode in ("reflect", "replicate", "circular")
       for tag, k, s, p in (("same_even_kernel", "[2, 4]", 1, "same"),
                            ("asym_stride2", 3, 2, "[1, 2, 0, 1]"))},
    **{f"pad_{mode}": f"[{{conv: {{filters: 2, kernel: 1}}}}, {{pad: {{padding: [2, 1, 0, 3], mode: {mode}}}}}]"
       for mode in ("reflect", "symmetric", "replicate")},
    "pad_zeros_value": "[{conv: {filters: 2, kernel: 1}}, {pad: {padding: [1, 2], value: 0.5}}]",
    "crop_centred_odd_surplus": "[{conv: {filters: 2, kernel: 1}}, {crop: [2, 4]}]",
    "crop_cropping_then_conv": "[{conv: {filters: 2, kernel: 1}}, {crop: {cropping: [1, 0, 2, 1]}}, "
                               "{conv: {filters: 2, kernel: 2}}]",
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradcheck(case):
    assert_gradcheck(GRAD_CASES[case])


# ---- PyTorch parity (float32) ---------------------------------------------------------


def close(ours, theirs, tol=1e-4):
    """max |ours − theirs| ≤ tol · the largest |theirs|."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = float(np.abs(theirs).max())
    assert np.abs(ours - theirs).max() <= tol * scale


def torch_grads(torch, model, x, r, fn, names):
    """fn(x, *params) with torch autograd, params taken from our model by `names`."""
    params = [torch.tensor(model.params[n], requires_grad=True) if n in model.params else None
              for n in names]
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(xt, *params)
    (yt * torch.tensor(r)).sum().backward()
    return yt, xt.grad, [p.grad if p is not None else None for p in params]


def check_torch(model, x, y, r, dx, yt, dxt, grads, names):
    close(y, yt)
    close(dx, dxt)
    for name, grad in zip(names, grads):
        if grad is not None:
            close(model.grads[name], grad)


# (kernel, stride, padding [t, b, l, r], output_padding, dilation, groups, bias, C_in, C_out)
DECONV_TORCH = {
    "stride3_op1": (3, 3, [0, 0, 0, 0], 1, 1, 1, True, 2, 3),
    "stride3_op2_padded": (4, 3, [1, 1, 1, 1], 2, 1, 1, True, 2, 3),
    "asymmetric_padding_op2": (3, 3, [1, 2, 0, 3], 2, 1, 1, True, 2, 3),
    "dilation2": (3, 2, [1, 1, 2, 2], 1, 2, 1, True, 3, 2),
    "groups2_no_bias": ([3, 2], 2, [1, 1, 0, 0], 0, 1, 2, False, 4, 6),
    "op_past_padding": (2, 3, [0, 0, 1, 0], [2, 1], 1, 1, True, 2, 2),
    "unet_up_k2_s2": (2, 2, [0, 0, 0, 0], 0, 1, 1, True, 4, 2),
    "stride1": (3, 1, [1, 1, 1, 1], 0, 1, 1, True, 2, 3),
}


@pytest.mark.parametrize("case", sorted(DECONV_TORCH))
def test_conv_transpose2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    k, s, (t, b, l, rt), op, d, g, bias, c_in, c_out = DECONV_TORCH[case]
    layers = (f"[{{deconv: {{filters: {c_out}, kernel: {k}, stride: {s}, padding: {[t, b, l, rt]}, "
              f"output_padding: {op}, dilation: {d}, groups: {g}, bias: {str(bias).lower()}}}}}]")
    model, x, y, r, dx = run(layers, (c_in, 5, 7), batch=3)
    names = ["deconv1.weight", "deconv1.bias"]

    def fn(xt, w, bt):
        # torch pads symmetrically: give it no padding and crop its output instead
        full = torch.nn.functional.conv_transpose2d(
            xt, w, bt, s, 0, op if isinstance(op, int) else tuple(op), g, d)
        return full[:, :, t:full.shape[2] - b, l:full.shape[3] - rt]
    yt, dxt, grads = torch_grads(torch, model, x, r, fn, names)
    check_torch(model, x, y, r, dx, yt, dxt, grads, names)


def test_conv_transpose2d_symmetric_padding_is_torchs_padding():
    torch = pytest.importorskip("torch")
    layers = "[{deconv: {filters: 3, kernel: 5, stride: 3, padding: 2, output_padding: 2}}]"
    model, x, y, r, dx = run(layers, (2, 5, 7))
    names = ["deconv1.weight", "deconv1.bias"]
    yt, dxt, grads = torch_grads(
        torch, model, x, r,
        lambda xt, w, bt: torch.nn.functional.conv_transpose2d(xt, w, bt, 3, 2, 2), names)
    # (W − 1)·S − 2P + D·(F − 1) + output_padding + 1: (5 − 1)·3 − 4 + 4 + 2 + 1 = 15, and 21
    assert y.shape == (2, 3, 15, 21)
    check_torch(model, x, y, r, dx, yt, dxt, grads, names)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, stride", [(1, 1), (2, 2), ("same", 1)])
def test_conv_padding_mode_matches_torch_module(mode, padding, stride):
    torch = pytest.importorskip("torch")
    kernel = [3, 4] if padding == "same" else 3  # an even kernel: "same" pads 1 and 2
    layers = (f"[{{conv: {{filters: 3, kernel: {kernel}, stride: {stride}, padding: {padding}, "
              f"padding_mode: {mode}}}}}]")
    model, x, y, r, dx = run(layers, (2, 5, 7))
    conv = torch.nn.Conv2d(2, 3, kernel, stride, padding, padding_mode=mode)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(model.params["conv1.weight"]))
        conv.bias.copy_(torch.tensor(model.params["conv1.bias"]))
    xt = torch.tensor(x, requires_grad=True)
    yt = conv(xt)
    (yt * torch.tensor(r)).sum().backward()
    close(y, yt)
    close(dx, xt.grad)
    close(model.grads["conv1.weight"], conv.weight.grad)
    close(model.grads["conv1.bias"], conv.bias.grad)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_mode_asymmetric_matches_torch_pad_then_conv(mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layers = f"[{{conv: {{filters: 4, kernel: 3, stride: 2, padding: [1, 2, 0, 1], padding_mode: {mode}, groups: 2}}}}]"
    model, x, y, r, dx = run(layers, (2, 5, 7))
    names = ["conv1.weight", "conv1.bias"]
    yt, dxt, grads = torch_grads(
        torch, model, x, r,
        lambda xt, w, bt: F.conv2d(F.pad(xt, (0, 1, 1, 2), mode=mode), w, bt, 2, 0, 1, 2), names)
    check_torch(model, x, y, r, dx, yt, dxt, grads, names)


@pytest.mark.parametrize("mode, numpy_mode", [("zeros", "constant"), ("reflect", "reflect"),
                                              ("symmetric", "symmetric"), ("replicate", "edge")])
def test_pad_matches_numpy(mode, numpy_mode):
    model, x, y, r, dx = run(f"[{{pad: {{padding: [2, 1, 0, 3], mode: {mode}}}}}]", (2, 4, 5))
    assert np.array_equal(y, np.pad(x, ((0, 0), (0, 0), (2, 1), (0, 3)), mode=numpy_mode))
    # the backward is the pad's adjoint: <pad(x), r> = <x, fold(r)> for every x, r
    assert np.isclose(float((y.astype(float) * r).sum()), float((x.astype(float) * dx).sum()),
                      rtol=1e-5)


@pytest.mark.parametrize("mode, torch_mode", [("zeros", "constant"), ("reflect", "reflect"),
                                              ("replicate", "replicate")])
def test_pad_matches_torch(mode, torch_mode):
    torch = pytest.importorskip("torch")
    value = ", value: -1.5" if mode == "zeros" else ""
    model, x, y, r, dx = run(f"[{{pad: {{padding: [3, 1, 2, 4], mode: {mode}{value}}}}}]", (2, 5, 7))
    kw = {"value": -1.5} if mode == "zeros" else {}
    yt, dxt, _ = torch_grads(
        torch, model, x, r,
        lambda xt: torch.nn.functional.pad(xt, (2, 4, 3, 1), mode=torch_mode, **kw), [])
    close(y, yt)
    close(dx, dxt)


@pytest.mark.parametrize("fields, box", [
    ("[2, 4]", (1, 2, 1, 2)),                 # centred: surplus 3 → 1 above, 2 below
    ("{cropping: 1}", (1, 1, 1, 1)),
    ("{cropping: [2, 1]}", (2, 2, 1, 1)),
    ("{cropping: [0, 3, 2, 1]}", (0, 3, 2, 1)),
])
def test_crop_forward_backward(fields, box):
    model, x, y, r, dx = run(f"[{{crop: {fields}}}]", (2, 5, 7), dtype="float64")
    t, b, l, rt = box
    assert np.array_equal(y, x[:, :, t:5 - b, l:7 - rt])
    expected = np.zeros_like(x)
    expected[:, :, t:5 - b, l:7 - rt] = r
    assert np.array_equal(dx, expected)


def test_crop_is_a_view_not_a_copy():
    model = build(net("[{conv: {filters: 2, kernel: 1}}, {crop: [2, 3]}, relu]"), dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 7))
    model.forward(x)
    crop = next(rec for rec in model.records if rec.type == "crop")
    conv = next(rec for rec in model.records if rec.type == "conv2d")
    assert crop.kept_bytes == 0 and conv.kept_bytes == 2 * 2 * 5 * 7 * 8
    layer = model.layers["crop1"]
    y = layer(x, False, False)
    assert np.shares_memory(y, x) and y.base is x


def test_pad_always_makes_a_new_tensor():
    # the calculator counts every pad's output, a pad of 0 included
    model = build(net("[{pad: 0}, {pad: {padding: [0, 1, 0, 0], mode: symmetric}}]", (2, 3, 4)),
                  dtype="float64")
    model.forward(np.ones((2, 2, 3, 4)))
    assert [rec.kept_bytes for rec in model.records] == [2 * 2 * 3 * 4 * 8, 2 * 2 * 4 * 4 * 8]


def test_conv_transpose2d_init_uses_torchs_fan_in():
    # PyTorch's fan_in for a ConvTranspose2d weight (C_in, C_out/G, kH, kW) is C_out/G·kH·kW
    model = build(net("[{deconv: {filters: 32, kernel: 3, stride: 2, groups: 2}}]", (64, 3, 3)))
    weight = model.params["deconv1.weight"]
    assert weight.shape == (64, 16, 3, 3)
    assert np.isclose(weight.std(), np.sqrt(2 / (16 * 9)), rtol=0.03)
    assert np.all(model.params["deconv1.bias"] == 0)


def test_conv_transpose2d_chunks_like_conv(monkeypatch):
    # a bound smaller than one image's buffers forces row chunks in forward and backward
    import archcalc.nn.conv as conv
    layers = "[{deconv: {filters: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1}}]"
    whole = run(layers, (4, 9, 9), batch=3, dtype="float64")
    monkeypatch.setattr(conv, "MAX_COLS_BYTES", 2 * 3 * 9 * 9 * 8)
    monkeypatch.setattr(conv, "BACKWARD_COLS_BYTES", 3 * 9 * 9 * 8)
    monkeypatch.setattr(conv, "CACHE_COLS_BYTES", 3 * 9 * 9 * 8)
    monkeypatch.setattr(conv, "MIN_CHUNK_COLS", 1)
    chunked = run(layers, (4, 9, 9), batch=3, dtype="float64")
    for a, b in zip(whole[2:], chunked[2:]):
        assert np.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("layers, shape, words", [
    ("[{deconv: {filters: 2, kernel: 1, groups: 2}}]", (3, 4, 4), "not divisible by groups"),
    ("[{crop: [6, 2]}]", (1, 5, 7), "crop to 6×2 is larger than the input 5×7"),
    ("[{crop: {cropping: [0, 0, 4, 3]}}]", (1, 5, 7), "leaves nothing"),
    ("[{conv: {filters: 1, kernel: 3, padding: 5, padding_mode: circular}}]", (1, 5, 4),
     "circular padding 5 along W is too large"),
])
def test_shape_errors_are_one_line(layers, shape, words):
    with pytest.raises(ShapeError, match=words) as info:
        build(net(layers, shape))
    assert "\n" not in info.value.render() and "fix:" in info.value.render()
