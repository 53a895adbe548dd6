"""The executor's modern kinds, part A: relu6, hardsigmoid, hardswish, silu, gelu (both forms),
lrn's sum form, the mul merge, adaptive average/max pooling and upsampling (nearest,
bilinear). Each: a float64 gradient check, hand-worked values, and PyTorch parity in float32
(same inputs and weights; outputs and gradients within 1e-4 of the largest value).
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ShapeError
from archcalc.nn.base import Store
from archcalc.nn.layers import make_layer
from archcalc.nn.network import build
from archcalc.nn.resample import adaptive_bins, bilinear_weights, nearest_index
from archcalc.spec.layers import MODELS
from archcalc.spec.load import load

from modern_cases import assert_gradcheck, net


def layer(kind: str, dtype="float64", **fields):
    """One executor layer built straight from its spec model."""
    store = Store(np.dtype(dtype), np.random.default_rng(0))
    return make_layer(MODELS[kind](**fields), kind, store)


# ---- gradient checks (float64, the network's whole backward) ---------------------------
# Each kind follows a small conv, so its backward is checked through the input gradient and
# the conv's parameters; maps have odd sizes, and the adaptive bins are uneven.
GRAD_CASES = {
    "relu6": "[{conv: {filters: 2, kernel: 1}}, relu6]",
    "hardsigmoid": "[{conv: {filters: 2, kernel: 1}}, hardsigmoid]",
    "hardswish": "[{conv: {filters: 2, kernel: 1}}, hardswish]",
    "silu": "[{conv: {filters: 2, kernel: 1}}, swish]",
    "gelu_none": "[{conv: {filters: 2, kernel: 1}}, gelu]",
    "gelu_tanh": "[{conv: {filters: 2, kernel: 1}}, {gelu: {approximate: tanh}}]",
    "lrn_sum": "[{conv: {filters: 5, kernel: 1}}, {lrn: {size: 3, alpha: 0.5, beta: 0.75, k: 1, form: sum}}, "
               "{lrn: {size: 4, alpha: 0.2, beta: 1.5, k: 2, form: sum}}]",
    "adaptive_avg_7_to_3_and_5_to_7": "[{conv: {filters: 2, kernel: 1}}, {adaptive_avgpool: [3, 7]}]",
    "adaptive_avg_1x1": "[{conv: {filters: 2, kernel: 1}}, {adaptive_avgpool: 1}]",
    "adaptive_max_7_to_3_and_5_to_7": "[{conv: {filters: 2, kernel: 1}}, {adaptive_maxpool: [3, 7]}]",
    "adaptive_max_1x1": "[{conv: {filters: 2, kernel: 1}}, {adaptive_maxpool: 1}]",
    "nearest_scale_pair": "[{conv: {filters: 2, kernel: 1}}, {upsample: [2, 3]}]",
    "nearest_size": "[{conv: {filters: 2, kernel: 1}}, {upsample: {size: [8, 11]}}]",
    "bilinear_scale2": "[{conv: {filters: 2, kernel: 1}}, {upsample: {scale: 2, mode: bilinear}}]",
    "bilinear_scale3_corners": "[{conv: {filters: 2, kernel: 1}}, "
                               "{upsample: {scale: 3, mode: bilinear, align_corners: true}}]",
    "bilinear_size": "[{conv: {filters: 2, kernel: 1}}, {upsample: {size: [11, 6], mode: bilinear}}]",
    "bilinear_size_corners": "[{conv: {filters: 2, kernel: 1}}, "
                             "{upsample: {size: [11, 6], mode: bilinear, align_corners: true}}]",
    "mul_gate_and_identity": "[{conv: {filters: 3, kernel: 1}}, "
                             "{mul: [[gap, {conv: {filters: 3, kernel: 1}}, hardsigmoid], []]}]",
    # x·g(x): both branches' gradients add up at the input
    "mul_identity_swish": "[{conv: {filters: 2, kernel: 1}}, {mul: [[], [tanh]]}]",
    "mul_three_two_gates": "[{conv: {filters: 2, kernel: 1}}, "
                           "{mul: [[gap], [{conv: {filters: 2, kernel: 3, padding: 1}}], [gap, sigmoid]]}]",
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradcheck(case):
    assert_gradcheck(GRAD_CASES[case])


# Every piece of the piecewise activations, away from their kinks (the network check above
# mostly sees |x| < 3): five-point differences of the elementwise function.
WIDE = np.concatenate([np.linspace(-9, 9, 181), [-3.5, -2.5, 2.5, 3.5, 5.5, 6.5]])


@pytest.mark.parametrize("kind,fields", [("relu6", {}), ("hardsigmoid", {}), ("hardswish", {}),
                                         ("silu", {}), ("gelu", {}),
                                         ("gelu", {"approximate": "tanh"})])
def test_derivative_on_every_piece(kind, fields):
    x = WIDE[np.min(np.abs(WIDE[:, None] - np.array([-3, 0, 3, 6])), axis=1) > 0.05]
    x = x.reshape(1, -1, 1, 1)
    f = layer(kind, **fields)
    f(x.copy(), True, False)
    analytic = f.backward(np.ones_like(x))
    h = 1e-3

    def at(v):
        return layer(kind, **fields)(v.copy(), False, False)
    numeric = (8 * (at(x + h) - at(x - h)) - (at(x + 2 * h) - at(x - 2 * h))) / (12 * h)
    assert np.abs(analytic - numeric).max() < 1e-9


# ---- hand-worked values -----------------------------------------------------------------
def test_activation_values_by_hand():
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 6.0, 7.0]).reshape(1, -1, 1, 1)

    def run(kind, **fields):
        return layer(kind, **fields)(x.copy(), False, False).ravel().tolist()
    assert run("relu6") == [0, 0, 0, 0, 1.5, 3, 6, 6]
    assert run("hardsigmoid") == [0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    # x·(x + 3)/6 inside: −1.5·1.5/6 = −0.375, 1.5·4.5/6 = 1.125
    assert run("hardswish") == [0, 0, -0.375, 0, 1.125, 3, 6, 7]
    # Φ(0) = 1/2, so gelu(0) = 0, and x·Φ(x) → x for large x, → 0 for very negative x
    gelu = run("gelu")
    assert gelu[3] == 0 and abs(gelu[7] - 7) < 1e-10 and abs(gelu[0]) < 1e-3
    assert run("silu")[3] == 0


def test_in_place_kinds_keep_nothing_and_the_others_a_new_array():
    x = np.array([-1.0, 2.0, 7.0]).reshape(1, 3, 1, 1)
    for kind in ("relu6", "hardsigmoid"):
        given = x.copy()
        assert layer(kind)(given, True, True) is given  # written over its input
        assert layer(kind).keeps_output and not layer(kind).keeps_input
    for kind in ("hardswish", "silu", "gelu"):
        given = x.copy()
        y = layer(kind)(given, True, True)
        assert y is not given and (given == x).all()  # its input is kept for backward


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_the_networks(dtype):
    network = net("[relu6, hardsigmoid, hardswish, silu, gelu, {gelu: {approximate: tanh}}, "
                  "{lrn: {form: sum}}, {adaptive_avgpool: 3}, {adaptive_maxpool: 2}, "
                  "{upsample: {scale: 2, mode: bilinear}}, upsample: 2, "
                  "{mul: [[gap], []]}]", (3, 5, 7))
    model = build(network, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7))
    y = model.forward(x, training=True)
    assert y.dtype == np.dtype(dtype) and y.shape == (2, 3, 8, 8)
    assert model.backward(np.ones_like(y)).dtype == np.dtype(dtype)


# 1×5×1×1 by hand: a = 1 2 3 4 5, size 3 (channels c−1 .. c+1), k = 1, alpha = 1, beta = 1,
# sum form: b_c = a_c / (1 + Σ a²):
#   c0: 1/(1 + 1 + 4) = 1/6          c1: 2/(1 + 1 + 4 + 9) = 2/15     c2: 3/(1 + 4 + 9 + 16) = 1/10
#   c3: 4/(1 + 9 + 16 + 25) = 4/51   c4: 5/(1 + 16 + 25) = 5/42
# The average form gives the same with alpha = 3 (alpha/size = 1).
LRN_HAND = [1 / 6, 2 / 15, 1 / 10, 4 / 51, 5 / 42]
A = np.arange(1.0, 6.0).reshape(1, 5, 1, 1)


def test_lrn_both_forms_by_hand():
    total = layer("lrn", size=3, alpha=1.0, beta=1.0, k=1.0, form="sum")(A, False, False)
    average = layer("lrn", size=3, alpha=3.0, beta=1.0, k=1.0, form="average")(A, False, False)
    assert total.ravel() == pytest.approx(LRN_HAND, rel=1e-15)
    assert average.ravel() == pytest.approx(LRN_HAND, rel=1e-15)


def test_lrn_alexnet_paper_constants_by_hand():
    # k = 2, n = 5 (channels c−2 .. c+2), alpha = 1e-4, beta = 0.75; the window sums of a²
    # worked by hand: 1+4+9 = 14, 1+4+9+16 = 30, 55, 4+9+16+25 = 54, 9+16+25 = 50
    sums = [14, 30, 55, 54, 50]
    paper = [a / (2 + 1e-4 * s) ** 0.75 for a, s in zip([1, 2, 3, 4, 5], sums)]
    pytorch = [a / (2 + 1e-4 / 5 * s) ** 0.75 for a, s in zip([1, 2, 3, 4, 5], sums)]
    fields = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    assert layer("lrn", form="sum", **fields)(A, False, False).ravel() == pytest.approx(paper, rel=1e-14)
    assert layer("lrn", **fields)(A, False, False).ravel() == pytest.approx(pytorch, rel=1e-14)


def test_adaptive_bins_by_hand():
    # 7 → 3: starts ⌊0⌋, ⌊7/3⌋, ⌊14/3⌋ = 0 2 4; ends ⌈7/3⌉, ⌈14/3⌉, 7 = 3 5 7 (overlapping)
    assert [b.tolist() for b in adaptive_bins(7, 3)] == [[0, 2, 4], [3, 5, 7]]
    # 5 → 7 (more outputs than inputs): ⌊5i/7⌋ and ⌈5(i+1)/7⌉
    assert [b.tolist() for b in adaptive_bins(5, 7)] == [[0, 0, 1, 2, 2, 3, 4], [1, 2, 3, 3, 4, 5, 5]]


def test_adaptive_pools_by_hand():
    x = np.array([3.0, 1, 9, 1, 5, 4, 2]).reshape(1, 1, 1, 7)
    # bins [0, 3), [2, 5), [4, 7) of 3 1 9 1 5 4 2: (3 1 9), (9 1 5), (5 4 2)
    avg = layer("adaptive_avgpool", output=[1, 3])(x, False, False).ravel()
    assert avg == pytest.approx([13 / 3, 5, 11 / 3], rel=1e-15)
    mx = layer("adaptive_maxpool", output=[1, 3])
    assert mx(x, True, False).ravel().tolist() == [9, 9, 5]
    # the 9 at position 2 wins both bins that share it: its gradients add up
    assert mx.backward(np.array([1.0, 10, 100]).reshape(1, 1, 1, 3)).ravel().tolist() == [
        0, 0, 11, 0, 100, 0, 0]


def test_adaptive_max_ties_go_to_the_first():
    x = np.array([[2.0, 5], [5, 5]]).reshape(1, 1, 2, 2)
    pool = layer("adaptive_maxpool", output=1)
    pool(x, True, False)
    assert pool.backward(np.ones((1, 1, 1, 1))).ravel().tolist() == [0, 1, 0, 0]


def test_upsample_by_hand():
    x = np.array([0.0, 4.0]).reshape(1, 1, 1, 2)
    # pixel centres: src = (o + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (last)
    up = layer("upsample", scale=[1, 2], mode="bilinear")(x, False, False).ravel()
    assert up.tolist() == [0, 1, 3, 4]
    # corners aligned: src = o·(2 − 1)/(4 − 1) = 0, 1/3, 2/3, 1
    up = layer("upsample", size=[1, 4], mode="bilinear", align_corners=True)(x, False, False)
    assert up.ravel() == pytest.approx([0, 4 / 3, 8 / 3, 4], rel=1e-15)
    near = layer("upsample", size=[1, 5])(np.array([1.0, 2, 3]).reshape(1, 1, 1, 3), False, False)
    assert near.ravel().tolist() == [1, 1, 2, 2, 3]  # ⌊o·3/5⌋ = 0 0 1 1 2


def test_upsample_backward_is_the_adjoint():
    rng = np.random.default_rng(3)
    for fields in ({"scale": 3, "mode": "bilinear"}, {"size": [11, 6], "mode": "bilinear",
                                                      "align_corners": True},
                   {"size": [4, 3], "mode": "bilinear"}, {"size": [8, 11]}):
        up = layer("upsample", **fields)
        x = rng.standard_normal((2, 3, 5, 7))
        y = up(x, True, False)
        dy = rng.standard_normal(y.shape)
        assert np.sum(y * dy) == pytest.approx(np.sum(x * up.backward(dy)), rel=1e-12)


def test_bilinear_weights_clamp_at_the_borders():
    i0, i1, l0, l1 = bilinear_weights(3, 7, None, False, np.dtype("float64"))
    assert i0.min() == 0 and i1.max() == 2 and (i1 >= i0).all()
    assert np.allclose(l0 + l1, 1) and (l0 >= 0).all() and (l1 >= 0).all()
    assert i0[-1] == i1[-1] == 2  # past the last centre: the last pixel alone


# ---- the mul merge ------------------------------------------------------------------------
def test_mul_shape_error_is_one_line():
    network = net("[{mul: [[gap, {conv: {filters: 2, kernel: 1}}], []]}]", (3, 5, 7))
    with pytest.raises(ShapeError) as err:
        build(network)
    message = str(err.value)
    assert "mul needs equal shapes or a C×1×1 gate" in message
    assert "3×5×7" in message and "2×1×1" in message and "\n" not in err.value.args[0]


@pytest.mark.parametrize("layers", ["[{mul: [[relu6], []]}]", "[{mul: [[], [relu6]]}]",
                                    "[{mul: [[], []]}]"])
@pytest.mark.parametrize("training", [False, True])
def test_mul_identity_is_never_overwritten(layers, training):
    # relu6 may act in place only on an array nobody else reads: the identity branch reads x
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)) * 4
    model = build(net(layers, (3, 5, 7)), dtype="float64")
    y = model.forward(x, training=training)
    other = x if "relu6" not in layers else np.clip(x, 0, 6)
    assert np.array_equal(y, x * other)
    assert model.records[-1].kept_bytes == y.nbytes
    if training:
        dx = model.backward(np.ones_like(y))
        # d(x·x)/dx = 2x; d(x·relu6(x))/dx = relu6(x) + x·[0 < x < 6]
        want = 2 * x if "relu6" not in layers else other + x * ((x > 0) & (x < 6))
        assert np.allclose(dx, want, rtol=1e-14, atol=0)


def test_mul_spec_file_loads_and_runs(tmp_path):
    path = tmp_path / "se.yaml"
    path.write_text(SE_SPEC, encoding="utf-8")
    model = build(load(str(path)))
    assert [r.type for r in model.records][-3:] == ["hardsigmoid", "mul", "silu"]
    assert model.records[-2].output_shape == (4, 5, 7)


SE_SPEC = """\
name: se
input: [3, 5, 7]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - mul:
      - [gap, {conv: {filters: 2, kernel: 1}}, relu, {conv: {filters: 4, kernel: 1}}, hardsigmoid]
      - []
  - silu
"""


# ---- PyTorch parity (float32) --------------------------------------------------------------
def _close(ours, theirs):
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def _parity(layers, shape, fn, scale=1.0, seed=0):
    """Our float32 network of `layers` against fn(x) in torch: output and input gradient."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2,) + shape) * scale).astype(np.float32)
    model = build(net(layers, shape), dtype="float32")
    y = model.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    dx = model.backward(r)
    xt = torch.tensor(x, requires_grad=True)
    yt = fn(xt)
    (yt * torch.tensor(r)).sum().backward()
    _close(y, yt.detach().numpy())
    _close(dx, xt.grad.numpy())


ACTIVATIONS = {"relu6": "relu6", "hardsigmoid": "hardsigmoid", "hardswish": "hardswish",
               "silu": "silu", "gelu": "gelu", "gelu_tanh": "{gelu: {approximate: tanh}}"}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_torch_activations(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn = {"relu6": F.relu6, "hardsigmoid": F.hardsigmoid, "hardswish": F.hardswish,
          "silu": F.silu, "gelu": F.gelu,
          "gelu_tanh": lambda v: F.gelu(v, approximate="tanh")}[name]
    _parity(f"[{ACTIVATIONS[name]}]", (3, 5, 7), fn, scale=4.0)


@pytest.mark.parametrize("kind", ["relu6", "hardsigmoid", "hardswish"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_gradient_at_the_kinks(kind, dtype):
    torch = pytest.importorskip("torch")
    points = np.array([-6.0, -3.0, 0.0, 3.0, 6.0], dtype=dtype).reshape(1, 5, 1, 1)
    f = layer(kind, dtype=dtype)
    f(points.copy(), True, False)
    ours = f.backward(np.ones_like(points))
    xt = torch.tensor(points, requires_grad=True)
    getattr(torch.nn.functional, kind)(xt).sum().backward()
    # torch's hardsigmoid slope is the float 1/6 even in float64: compare to float32 precision
    assert np.allclose(ours, xt.grad.numpy(), rtol=1e-7, atol=0)


@pytest.mark.parametrize("form", ["average", "sum"])
def test_torch_lrn(form):
    torch = pytest.importorskip("torch")
    size, alpha = 5, 0.3
    # the sum form is PyTorch's with alpha·size
    torch_alpha = alpha if form == "average" else alpha * size
    _parity(f"[{{lrn: {{size: {size}, alpha: {alpha}, beta: 0.75, k: 2, form: {form}}}}}]",
            (7, 3, 5), lambda v: torch.nn.functional.local_response_norm(v, size, torch_alpha, 0.75, 2))


ADAPTIVE = [((3, 7, 7), 3), ((3, 7, 5), [3, 7]), ((3, 5, 7), 1), ((2, 1, 1), [2, 3]),
            ((2, 6, 9), [4, 4])]


@pytest.mark.parametrize("shape,output", ADAPTIVE)
@pytest.mark.parametrize("kind", ["adaptive_avgpool", "adaptive_maxpool"])
def test_torch_adaptive_pools(kind, shape, output):
    torch = pytest.importorskip("torch")
    fn = (torch.nn.functional.adaptive_avg_pool2d if kind == "adaptive_avgpool"
          else torch.nn.functional.adaptive_max_pool2d)
    _parity(f"[{{{kind}: {output}}}]", shape, lambda v: fn(v, output))


UPSAMPLE = [
    ("{upsample: 2}", {"scale_factor": 2}),
    ("{upsample: [2, 3]}", {"scale_factor": (2, 3)}),
    ("{upsample: {size: [8, 11]}}", {"size": (8, 11)}),
    ("{upsample: {size: [11, 6]}}", {"size": (11, 6)}),
    ("{upsample: {size: [74, 13]}}", {"size": (74, 13)}),  # float32 index arithmetic (6 → 74)
]
for _corners in (False, True):
    _flag = str(_corners).lower()
    UPSAMPLE += [
        (f"{{upsample: {{scale: 2, mode: bilinear, align_corners: {_flag}}}}}",
         {"scale_factor": 2, "mode": "bilinear", "align_corners": _corners}),
        (f"{{upsample: {{scale: 3, mode: bilinear, align_corners: {_flag}}}}}",
         {"scale_factor": 3, "mode": "bilinear", "align_corners": _corners}),
        (f"{{upsample: {{size: [11, 6], mode: bilinear, align_corners: {_flag}}}}}",
         {"size": (11, 6), "mode": "bilinear", "align_corners": _corners}),
        (f"{{upsample: {{size: [1, 13], mode: bilinear, align_corners: {_flag}}}}}",
         {"size": (1, 13), "mode": "bilinear", "align_corners": _corners}),
    ]


@pytest.mark.parametrize("layers,kw", UPSAMPLE, ids=[u[0] for u in UPSAMPLE])
def test_torch_upsample(layers, kw):
    torch = pytest.importorskip("torch")
    shape = (2, 6, 6) if kw.get("size") == (74, 13) else (2, 5, 7)
    _parity(f"[{layers}]", shape, lambda v: torch.nn.functional.interpolate(v, **kw))


def test_nearest_index_is_torchs_float32_arithmetic():
    # 6 → 74 is one of the pairs where ⌊o·6/74⌋ in exact arithmetic and PyTorch differ
    exact = (np.arange(74) * 6) // 74
    assert not np.array_equal(nearest_index(6, 74, None), exact)
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(1, 1, 1, 6)
    theirs = torch.nn.functional.interpolate(t, size=(1, 74)).reshape(-1).long().numpy()
    assert np.array_equal(nearest_index(6, 74, None), theirs)


def test_torch_squeeze_excitation_network(tmp_path):
    """The SE spec (conv, gate of gap → 1×1 conv → relu → 1×1 conv → hardsigmoid, times
    the identity, silu) against the same computation in torch: outputs, input and weight
    gradients."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    path = tmp_path / "se.yaml"
    path.write_text(SE_SPEC, encoding="utf-8")
    model = build(load(str(path)), dtype="float32", seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    y = model.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    dx = model.backward(r)

    P = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    c = F.conv2d(xt, P["conv1.weight"], P["conv1.bias"], padding=1)
    g = c.mean(dim=(2, 3), keepdim=True)
    g = F.relu(F.conv2d(g, P["conv2.weight"], P["conv2.bias"]))
    g = F.hardsigmoid(F.conv2d(g, P["conv3.weight"], P["conv3.bias"]))
    yt = F.silu(c * g)
    (yt * torch.tensor(r)).sum().backward()
    _close(y, yt.detach().numpy())
    _close(dx, xt.grad.numpy())
    for key, value in P.items():
        _close(model.grads[key], value.grad.numpy())


def test_torch_mul_identity_times_branch():
    torch = pytest.importorskip("torch")
    _parity("[{mul: [[], [silu]]}]", (3, 5, 7), lambda v: v * torch.nn.functional.silu(v),
            scale=3.0)
