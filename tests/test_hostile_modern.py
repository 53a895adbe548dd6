"""Issue 9's kinds under attack: what a hostile or mistaken user found, kept as regressions.

Each test names the attack. Reference values are PyTorch 2.13's (measured once, written
here), NumPy's, or worked by hand.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from archcalc.nn.base import Store
from archcalc.nn.layers import make_layer
from archcalc.spec.layers import MODELS


def layer(kind: str, dtype: str, **fields):
    store = Store(np.dtype(dtype), np.random.default_rng(0))
    return make_layer(MODELS[kind](**fields), kind, store)


# ---- gelu at huge inputs -------------------------------------------------------------
# x³ (tanh form) and x² overflowed past |x| ≈ 7·10¹² (float32) / 10¹⁰² (float64): the
# forward warned, and the tanh form's gradient was ∞·0 = NaN (PyTorch's is NaN too) where
# the function is exactly x (slope 1) or 0 (slope 0).
HUGE = {"float32": [-1e30, -1e13, 1e13, 1e30], "float64": [-1e300, -1e160, 1e160, 1e300]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_huge_inputs_give_x_or_zero_and_slopes_one_or_zero(dtype, approximate):
    gelu = layer("gelu", dtype, approximate=approximate)
    x = np.array(HUGE[dtype], dtype=dtype).reshape(1, 1, 1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning reaches the user's terminal
        y = gelu.forward(x.copy(), True, False)
        dx = gelu.backward(np.ones_like(y))
    positive = x > 0
    assert np.array_equal(y, np.where(positive, x, 0))
    assert np.array_equal(dx, positive.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_tanh_clip_changes_no_value_below_it(dtype):
    """The clip at |x| = 10⁴ only touches values where tanh is already exactly ±1: the
    derivative just inside and outside it is the same 1 or 0 as at 10⁴ itself, and a
    moderate value is PyTorch's (F.gelu(approximate='tanh'), float64: 1.127710793151433
    at x = 1.5 for the slope, 1.3995715769802328 for the value)."""
    gelu = layer("gelu", dtype, approximate="tanh")
    x = np.array([-2e4, -1e4, -9999.0, 1.5, 9999.0, 1e4, 2e4], dtype=dtype).reshape(1, 1, 1, -1)
    y = gelu.forward(x.copy(), True, False)
    dx = gelu.backward(np.ones_like(y)).ravel()
    assert np.array_equal(dx[[0, 1, 2, 4, 5, 6]], np.array([0, 0, 0, 1, 1, 1], dtype=dtype))
    tol = 1e-6 if dtype == "float32" else 1e-15
    assert abs(dx[3] - 1.127710793151433) < tol
    assert abs(y.ravel()[3] - 1.3995715769802328) < tol


# ---- the receptive field of a dilated transposed convolution ------------------------
# ⌈(D·(F − 1) + 1)/S⌉ overcounted when the dilation's taps of one input land on outputs of
# different residues mod S: kernel 2, stride 2, dilation 3 gave 2 where every output pixel
# depends on exactly one input pixel.
def _executor_field(tmp_path, size: int, deconv: str) -> tuple[int, int]:
    """(calculator's RF rows, the most input rows one output pixel depends on), measured
    as tests/test_rf_executor.py does: positive weights and inputs, one-hot dy per pixel."""
    from archcalc.calc import analyze
    from archcalc.nn.network import build
    from archcalc.spec.load import load

    path = tmp_path / "net.yaml"
    path.write_text(f"name: rf\ninput: [1, {size}, 1]\nlayers:\n  - deconv: {deconv}\n",
                    encoding="utf-8")
    network = load(str(path))
    row = analyze(network).rows[-1]
    rng = np.random.default_rng(0)
    model = build(network, dtype="float64")
    for value in model.params.values():
        value[...] = rng.uniform(0.5, 1.5, value.shape)
    _, height, width = row.output_shape
    count = height * width
    x = np.repeat(rng.uniform(0.5, 1.5, (1, 1, size, 1)), count, axis=0)
    model.forward(x, training=True)
    dy = np.zeros((count, 1, height, width))
    dy[np.arange(count), 0, np.arange(count) // width, np.arange(count) % width] = 1.0
    seen = model.backward(dy)[:, 0, :, 0] != 0                # (count, size)
    extent = [np.ptp(np.flatnonzero(s)) + 1 for s in seen if s.any()]
    return row.receptive_field[0], max(extent)


@pytest.mark.parametrize("kernel, stride, dilation, expected", [
    (2, 2, 3, 1),   # taps 0 and 3 apart: even outputs hear tap 0, odd ones tap 1
    (4, 2, 3, 4),   # taps 0, 2 reach one output from inputs 3 apart: 3 + 1
    (5, 3, 4, 5),   # taps 0, 3 reach one output from inputs 4 apart
    (3, 2, 2, 3),   # g = 2: every tap reaches a shared output, inputs 1 apart
    (3, 2, 1, 2),   # undilated: ⌈3/2⌉
])
def test_dilated_deconv_field_is_the_inputs_one_output_hears(tmp_path, kernel, stride,
                                                              dilation, expected):
    spec = f"{{filters: 1, kernel: [{kernel}, 1], stride: [{stride}, 1], dilation: [{dilation}, 1]}}"
    calculated, measured = _executor_field(tmp_path, 12, spec)
    assert (calculated, measured) == (expected, expected)


def test_deconv_sources_match_enumeration():
    """Every (F, S, D) up to 6, 5, 5: the widest run of inputs i with i·S + k·D = o."""
    from archcalc.calc.shapes import TransposedDim

    for kernel in range(1, 7):
        for stride in range(1, 6):
            for dilation in range(1, 6):
                dim = TransposedDim(40, kernel, stride, 0, 0, dilation, 0)
                widest = 0
                for o in range(dim.out):
                    heard = [i for i in range(40) for k in range(kernel)
                             if i * stride + k * dilation == o]
                    if heard:
                        widest = max(widest, max(heard) - min(heard) + 1)
                assert dim.sources == widest, (kernel, stride, dilation)


def test_gradcheck_refuses_outputs_that_overflow_in_one_line(run, write_spec):
    """relu6(x)^1000 overflows float64: no difference of inf means anything."""
    branches = ", ".join(["[relu6]"] * 1000)
    path = write_spec(f"name: m\ninput: [3, 8, 8]\nlayers:\n  - mul: [{branches}]\n")
    result = run("gradcheck", path)
    assert result.exit_code == 1
    assert "Warning" not in result.output
    assert result.stderr.splitlines()[0] == (
        "error: 'm' gives outputs that are not finite (they overflow float64) on gradcheck's "
        "random input, so no gradient can be checked (fix: keep the values finite: normalise "
        "between layers that multiply (mul merges) or grow the values)")
