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
