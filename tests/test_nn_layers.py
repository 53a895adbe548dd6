"""Hand-computed forward values of every executor layer kind, records, in-place safety and
the shape errors the calculator would also raise.

The numbers below are worked by hand in the comments, not produced by the code.
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import build
from archcalc.spec import loads

# x[i, j] = 4i + j + 1: the 4×4 input of the seeds' examples
X44 = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
W22 = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)


def model(layers: str, shape, **kw):
    net = loads(f"name: t\ninput: {list(shape)}\nlayers: {layers}\n")
    return build(net, dtype=kw.pop("dtype", "float64"), **kw)


def conv22(padding, stride=1):
    m = model(f"[{{conv: {{filters: 1, kernel: 2, stride: {stride}, padding: {padding}}}}}]",
              (1, 4, 4))
    m.params["conv1.weight"][...] = W22
    m.params["conv1.bias"][...] = 0
    return m.forward(X44)[0, 0]


# With w = [[1, 2], [3, 4]] a window whose top-left value is v holds v, v+1, v+4, v+5, so
# an unpadded output is 1·v + 2·(v+1) + 3·(v+4) + 4·(v+5) = 10v + 34.
VALID = [[44, 54, 64], [84, 94, 104], [124, 134, 144]]


def test_conv_zero_padding():
    assert np.array_equal(conv22(0), VALID)


def test_conv_stride_2():
    # windows start at v = 1, 3, 9, 11
    assert np.array_equal(conv22(0, stride=2), [[44, 64], [124, 144]])


def test_conv_symmetric_padding():
    # padding 1: 5×5. Row 0 sees only x row 0 through w's bottom row: 3·x[0, j−1] + 4·x[0, j]
    # (4, 3+8, 6+12, 9+16, 12); row 4 sees x row 3 through w's top row: x[3, j−1] + 2·x[3, j]
    # (26, 13+28, 14+30, 15+32, 16); column 0 of rows 1..3: 2·x[i−1, 0] + 4·x[i, 0]
    # (2+20, 10+36, 18+52); column 4: x[i−1, 3] + 3·x[i, 3] (4+24, 8+36, 12+48).
    expected = [[4, 11, 18, 25, 12],
                [22, 44, 54, 64, 28],
                [46, 84, 94, 104, 44],
                [70, 124, 134, 144, 60],
                [26, 41, 44, 47, 16]]
    assert np.array_equal(conv22(1), expected)


def test_conv_asymmetric_padding_and_same():
    # [top, bottom, left, right] = [0, 1, 0, 1]: 4×4; the valid 3×3 plus a last column
    # x[i, 3] + 3·x[i+1, 3] = 28, 44, 60, a last row x[3, j] + 2·x[3, j+1] = 41, 44, 47,
    # and the corner 1·16. "same" at stride 1 pads a 2-kernel the same way (extra after).
    expected = [[44, 54, 64, 28], [84, 94, 104, 44], [124, 134, 144, 60], [41, 44, 47, 16]]
    assert np.array_equal(conv22("[0, 1, 0, 1]"), expected)
    assert np.array_equal(conv22("same"), expected)


def test_conv_bias_dilation_groups():
    # dilation 2, 2×2 kernel of ones: each output sums x[i, j] + x[i, j+2] + x[i+2, j] +
    # x[i+2, j+2] = 4v + 20 for v = 1, 2, 5, 6; bias 0.5 added
    m = model("[{conv: {filters: 1, kernel: 2, dilation: 2}}]", (1, 4, 4))
    m.params["conv1.weight"][...] = 1
    m.params["conv1.bias"][...] = 0.5
    assert np.array_equal(m.forward(X44)[0, 0], [[24.5, 28.5], [40.5, 44.5]])
    # groups 2: output channel 0 sees only input channel 0, channel 1 only channel 1
    m = model("[{conv: {filters: 2, kernel: 1, groups: 2, bias: false}}]", (2, 1, 2))
    m.params["conv1.weight"][...] = np.array([2.0, -1.0]).reshape(2, 1, 1, 1)
    x = np.array([[[[1.0, 2.0]], [[3.0, 5.0]]]])
    assert np.array_equal(m.forward(x)[0], [[[2, 4]], [[-3, -5]]])
    assert "conv1.bias" not in m.params


def test_maxpool_2x2_stride_2():
    m = model("[{maxpool: {kernel: 2, stride: 2}}]", (1, 4, 4))
    assert np.array_equal(m.forward(X44)[0, 0], [[6, 8], [14, 16]])


def test_maxpool_padding_ceil_mode():
    # 3×3/2, padding 1, ceil: out = ceil((4 + 2 − 3)/2) + 1 = 3 (the last window starts at
    # padded row 4 < 4 + 1, so it stays). Window rows {0,1}, {1,2,3}, {3}; x grows along
    # both axes, so each max is x[last row, last col]: rows 1, 3, 3 × cols 1, 3, 3.
    # The padding holds −inf: a negative input still wins over it.
    m = model("[{maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]", (1, 4, 4))
    assert np.array_equal(m.forward(X44)[0, 0], [[6, 8, 8], [14, 16, 16], [14, 16, 16]])
    assert np.array_equal(m.forward(-X44)[0, 0], [[-1, -2, -4], [-5, -6, -8], [-13, -14, -16]])


def test_avgpool_counts_padding_not_overhang():
    m = model("[{avgpool: {kernel: 2, stride: 2}}]", (1, 4, 4))
    assert np.array_equal(m.forward(X44)[0, 0], [[3.5, 5.5], [11.5, 13.5]])
    # 3×3/2, padding 1, ceil: window starts 0, 2, 4 in the padded 6 rows cover 3, 3, 2 of
    # them (the third overhangs past the padding, which does not count). Sum over rows R,
    # cols C of 4r + c + 1 = 4·|C|·ΣR + |R|·Σ(c+1): R = {0,1}, {1,2,3}, {3}, same for C.
    sums = [[14, 30, 12], [57, 99, 36], [27, 45, 16]]
    divisors = [[9, 9, 6], [9, 9, 6], [6, 6, 4]]
    m = model("[{avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]", (1, 4, 4))
    assert np.allclose(m.forward(X44)[0, 0], np.array(sums) / np.array(divisors), rtol=0, atol=1e-12)


def test_global_avgpool_keepdims():
    m = model("[gap]", (1, 4, 4))
    y = m.forward(X44)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 8.5  # (1 + 16)/2
    m = model("[{global_avgpool: {keepdims: false}}]", (1, 4, 4))
    assert m.forward(X44).shape == (1, 1)


def test_dense_and_flatten():
    # flatten is C, H, W order: [[[1, 2]], [[3, 4]]] → [1, 2, 3, 4]
    m = model("[flatten, {dense: 2}]", (2, 1, 2))
    m.params["fc1.weight"][...] = [[1, 0, -1, 0], [2, 1, 0, 1]]
    m.params["fc1.bias"][...] = [0.5, -1]
    y = m.forward(np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]]))
    assert np.array_equal(y, [[1 - 3 + 0.5, 2 + 2 + 4 - 1]])
    assert m.params["fc1.weight"].shape == (2, 4)  # PyTorch's (out, in)


def test_dropout_inverted_and_identity():
    m = model("[{dropout: 0.25}]", (400,), seed=3)
    x = np.ones((5, 400))
    assert np.array_equal(m.forward(x), x)  # inference: identity
    assert m.records[0].kept_bytes == 0
    y = m.forward(x, training=True)
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.75)  # survivors scaled by 1/(1 − rate)
    assert 0.70 < kept.mean() < 0.80
    again = build(m.network, seed=3, dtype="float64").forward(x, training=True)
    assert np.array_equal(y, again)  # seeded


def test_batchnorm_train_and_inference():
    # one feature, batch [1, 3]: mean 2, biased var 1 → xhat = ±1/√(1 + eps)
    m = model("[{bn: {eps: 0.001, momentum: 0.1}}]", (1,))
    y = m.forward(np.array([[1.0], [3.0]]), training=True)
    assert np.allclose(y[:, 0], [-1 / np.sqrt(1.001), 1 / np.sqrt(1.001)], rtol=0, atol=1e-15)
    # running stats move by momentum 0.1 towards mean 2 and the unbiased variance 2
    assert np.allclose(m.buffers["bn1.running_mean"], [0.2])
    assert np.allclose(m.buffers["bn1.running_var"], [0.9 * 1 + 0.1 * 2])
    y = m.forward(np.array([[1.2]]))
    assert np.allclose(y, [[1.0 / np.sqrt(1.101)]])  # (1.2 − 0.2)/√(1.1 + 0.001)


def test_batchnorm_per_channel_on_images():
    # channel 0 holds 0 and 2 (mean 1, var 1), channel 1 holds 5 everywhere (var 0)
    m = model("[bn]", (2, 1, 2))
    x = np.array([[[[0.0, 2.0]], [[5.0, 5.0]]]])
    y = m.forward(x, training=True)
    assert np.allclose(y[0, 0, 0], [-1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(1 + 1e-5)])
    assert np.allclose(y[0, 1], 0)


def test_lrn_pytorch_form():
    # one pixel, channels a = 1, 2, 3; size 3, alpha 3, beta 1, k 1: window c−1..c+1, so
    # Σa² = 1+4, 1+4+9, 4+9 = 5, 14, 13 and b = a / (1 + 3/3·Σ) = 1/6, 2/15, 3/14
    m = model("[{lrn: {size: 3, alpha: 3, beta: 1, k: 1}}]", (3, 1, 1))
    y = m.forward(np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1))
    assert np.allclose(y.ravel(), [1 / 6, 2 / 15, 3 / 14], rtol=0, atol=1e-15)
    # size 2 (even): window c−1..c: Σ = 1, 5, 13; alpha 2 → b = a / (1 + Σ) = 1/2, 2/6, 3/14
    m = model("[{lrn: {size: 2, alpha: 2, beta: 1, k: 1}}]", (3, 1, 1))
    y = m.forward(np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1))
    assert np.allclose(y.ravel(), [1 / 2, 2 / 6, 3 / 14], rtol=0, atol=1e-15)


def test_layernorm_over_all_values():
    # [1, 2, 3, 4]: mean 2.5, var 1.25; weight/bias have the per-example shape
    m = model("[ln]", (1, 2, 2))
    assert m.params["ln1.weight"].shape == (1, 2, 2)
    m.params["ln1.weight"][...] = 2
    m.params["ln1.bias"][...] = 1
    y = m.forward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2))
    expected = 2 * (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5) + 1
    assert np.allclose(y.ravel(), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind, x, expected", [
    ("relu", [-1.0, 0.0, 2.0], [0, 0, 2]),
    ("{leaky_relu: {slope: 0.1}}", [-1.0, 2.0], [-0.1, 2]),
    ("{elu: {alpha: 2}}", [-np.log(2), 1.0], [-1, 1]),  # 2·(1/2 − 1)
    ("sigmoid", [0.0, np.log(3), -np.log(3)], [0.5, 0.75, 0.25]),  # 3/(3+1)
    ("tanh", [0.0, np.log(2)], [0, 0.6]),  # (2 − 1/2)/(2 + 1/2)
    ("softmax", [0.0, np.log(3)], [0.25, 0.75]),  # 1/(1+3), 3/(1+3)
])
def test_activations(kind, x, expected):
    m = model(f"[{kind}]", (len(x),))
    assert np.allclose(m.forward(np.array([x]))[0], expected, rtol=0, atol=1e-15)


def test_softmax_over_channels_of_images():
    m = model("[softmax]", (2, 1, 2))
    x = np.array([[[[0.0, 1000.0]], [[np.log(3), 1000.0]]]])  # stable at 1000 too
    assert np.allclose(m.forward(x)[0, :, 0], [[0.25, 0.5], [0.75, 0.5]])


def test_maxout_consecutive_channels():
    # channels 1, 5, 3, 2 with 2 pieces: max(1, 5), max(3, 2)
    m = model("[{maxout: 2}]", (4, 1, 1))
    assert np.array_equal(m.forward(np.array([1.0, 5, 3, 2]).reshape(1, 4, 1, 1)).ravel(), [5, 3])


@pytest.mark.parametrize("branches", ["[[relu], []]", "[[], [relu]]"])
def test_add_with_identity_never_corrupts_the_shortcut(branches):
    # add(relu(x), x) for x = [−1, 2] is [−1, 4] whichever order the branches run in:
    # relu must not work in place on the input the identity branch returns
    m = model(f"[{{add: {branches}}}]", (2,))
    assert np.array_equal(m.forward(np.array([[-1.0, 2.0]])), [[-1, 4]])


def test_concat_on_channels():
    m = model("[{concat: [[{maxout: 2}], []]}]", (2, 1, 1))
    assert np.array_equal(m.forward(np.array([3.0, 7.0]).reshape(1, 2, 1, 1)).ravel(), [7, 3, 7])


def test_records_names_order_and_kept_bytes():
    m = model("[{conv: {filters: 2, kernel: 1}}, relu, {add: [[{conv: {filters: 2, kernel: 1}}], []]},"
              " relu, flatten, dropout, {dense: 3}]", (1, 2, 2), dtype="float32")
    names = [r.name for r in m.records]
    assert names == ["conv1", "relu1", "conv2", "add1", "relu2", "flatten1", "dropout1", "fc1"]
    kept = {r.name: r.kept_bytes for r in m.records}
    assert kept["conv1"] == kept["conv2"] == kept["add1"] == 2 * 2 * 2 * 4
    assert kept["relu1"] == kept["relu2"] == kept["flatten1"] == kept["dropout1"] == 0
    assert kept["fc1"] == 3 * 4
    params = {r.name: (r.trainable_params, r.non_trainable_params) for r in m.records}
    assert params["conv1"] == (2 * 1 + 2, 0) and params["fc1"] == (8 * 3 + 3, 0)
    assert [r.output_shape for r in m.records][-3:] == [(8,), (8,), (3,)]
    m.forward(np.ones((4, 1, 2, 2)))
    assert kept["conv1"] * 4 == m.records[0].kept_bytes  # nbytes of the whole batch


def test_frozen_layers_count_as_non_trainable():
    m = model("[{conv: {filters: 2, kernel: 1, trainable: false}}, bn, flatten, {dense: 2}]", (1, 1, 1))
    assert {"conv1.weight", "conv1.bias"} <= m.frozen
    assert m.records[0].trainable_params == 0 and m.records[0].non_trainable_params == 4
    assert m.records[1].non_trainable_params == 4  # running mean and var


def test_in_place_relu_at_inference_but_training_is_intact():
    m = model("[{conv: {filters: 2, kernel: 1, bias: false}}, relu]", (1, 1, 1))
    m.params["conv1.weight"][...] = [[[[1.0]]], [[[-1.0]]]]
    x = np.array([[[[2.0]]]])
    assert np.array_equal(m.forward(x, training=True).ravel(), [2, 0])
    dx = m.backward(np.ones((1, 2, 1, 1)))
    # relu passes the first channel only; the conv's weight gradient needs its own input 2
    assert np.array_equal(m.grads["conv1.weight"].ravel(), [2, 0]) and dx.ravel()[0] == 1
    assert np.array_equal(x, [[[[2.0]]]])  # the caller's array is never written


@pytest.mark.parametrize("layers, shape, words", [
    ("[{dense: 3}]", (2, 4, 4), "flat input"),
    ("[{conv: {filters: 1, kernel: 5}}]", (1, 4, 4), "larger than the padded input"),
    ("[{conv: {filters: 2, kernel: 1, groups: 2}}]", (3, 4, 4), "not divisible by groups"),
    ("[{maxout: 3}]", (4, 1, 1), "not divisible by pieces"),
    ("[flatten, relu, lrn]", (2, 2, 2), "needs a C×H×W input"),
    ("[{add: [[{conv: {filters: 3, kernel: 1}}], []]}]", (2, 2, 2), "add needs equal shapes"),
    ("[{concat: [[{maxpool: {kernel: 2}}], []]}]", (2, 2, 2), "concat needs equal H×W"),
    ("[{maxpool: {kernel: 2, padding: 2}}]", (1, 4, 4), "more than half the kernel"),
])
def test_shape_errors_name_the_layer(layers, shape, words):
    with pytest.raises(ArchcalcError) as err:
        model(layers, shape)
    assert words in err.value.message
    assert err.value.layer is not None and err.value.line is not None


def test_bad_input_shape_and_options():
    m = model("[relu]", (2,))
    with pytest.raises(ArchcalcError, match="does not match"):
        m.forward(np.zeros((1, 3)))
    with pytest.raises(ArchcalcError, match="dtype"):
        model("[relu]", (2,), dtype="float16")
    with pytest.raises(ArchcalcError, match="initialiser"):
        model("[relu]", (2,), init="orthogonal")


def test_initialisers_scale_and_seed():
    layers = "[flatten, {dense: 400}]"
    he = model(layers, (1, 20, 20), seed=1).params["fc1.weight"]
    assert np.isclose(he.std(), np.sqrt(2 / 400), rtol=0.02)
    lecun = model(layers, (1, 20, 20), seed=1, init="lecun").params["fc1.weight"]
    assert np.isclose(lecun.std(), np.sqrt(1 / 400), rtol=0.02)
    xavier = model(layers, (1, 20, 20), seed=1, init="xavier").params["fc1.weight"]
    bound = np.sqrt(6 / 800)
    assert np.abs(xavier).max() <= bound and np.isclose(xavier.std(), bound / np.sqrt(3), rtol=0.02)
    assert np.array_equal(he, model(layers, (1, 20, 20), seed=1).params["fc1.weight"])
    assert not np.array_equal(he, model(layers, (1, 20, 20), seed=2).params["fc1.weight"])
    assert np.all(model(layers, (1, 20, 20)).params["fc1.bias"] == 0)


def test_float32_default_and_conv_chunking(monkeypatch):
    import archcalc.nn.conv as conv
    m = model("[{conv: {filters: 3, kernel: 3, stride: 2, padding: 1}}]", (2, 9, 9), dtype="float32")
    x = np.random.default_rng(0).standard_normal((5, 2, 9, 9))
    whole = m.forward(x, training=True)
    dx = m.backward(np.ones_like(whole))
    dw = m.grads["conv1.weight"].copy()
    assert whole.dtype == np.float32 and m.params["conv1.weight"].dtype == np.float32
    # a bound smaller than one image's buffer forces chunks of rows of single images
    monkeypatch.setattr(conv, "MAX_COLS_BYTES", 2 * 9 * 5 * 4 * 2)
    chunked = m.forward(x, training=True)
    assert np.allclose(chunked, whole, atol=1e-6)
    assert np.allclose(m.backward(np.ones_like(whole)), dx, atol=1e-6)
    assert np.allclose(m.grads["conv1.weight"], dw, atol=1e-5)
    assert list(conv.chunks(5, 5, 2 * 9 * 5 * 4))[0] == (0, 1, 0, 2)


def test_backward_without_input_gradient_keeps_param_grads():
    m = model("[{conv: {filters: 2, kernel: 2}}, relu, flatten, {dense: 2}]", (1, 3, 3))
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 3))
    r = np.random.default_rng(1).standard_normal((2, 2))
    m.forward(x, training=True)
    assert m.backward(r).shape == x.shape
    full = {k: v.copy() for k, v in m.grads.items()}
    m.forward(x, training=True)
    assert m.backward(r, input_grad=False) is None
    for key, value in full.items():
        assert np.array_equal(m.grads[key], value), key
    assert m.backward(r).shape == x.shape  # the first layer computes dx again afterwards


def test_freeze_prefixes_and_frozen_batchnorm():
    m = model("[{conv: {filters: 2, kernel: 1}}, bn, {blk: [{conv: {filters: 2, kernel: 1}}, bn]}, flatten, {dense: 2}]",
              (1, 2, 2))
    assert m.freeze(["blk"]) == {"blk.conv1.weight", "blk.conv1.bias", "blk.bn1.weight", "blk.bn1.bias"}
    with pytest.raises(ArchcalcError, match="matches no layer or block with parameters"):
        m.freeze("conv")  # whole names only: 'conv' is not 'conv1'
    x = np.random.default_rng(0).standard_normal((3, 1, 2, 2))
    y = m.forward(x, training=True)
    m.backward(np.ones_like(y))
    assert np.all(m.grads["blk.conv1.weight"] == 0) and np.any(m.grads["conv1.weight"] != 0)
    # a frozen batch norm normalises with its running statistics and leaves them alone
    assert np.array_equal(m.buffers["blk.bn1.running_mean"], [0, 0])
    assert not np.array_equal(m.buffers["bn1.running_mean"], [0, 0])
    record = {r.name: r for r in m.records}["blk.conv1"]
    assert (record.trainable_params, record.non_trainable_params) == (0, 2 * 2 + 2)
