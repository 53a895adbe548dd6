"""Factorisation what-ifs: k×k vs a 3×3 stack vs k×1 + 1×k, numbers derived by hand."""

from __future__ import annotations

import pytest

from archcalc.calc.factorize import factorize
from archcalc.errors import ArchcalcError


def test_five_by_five_vs_two_three_by_threes():
    result = factorize((64, 56, 56), kernel=5, filters=64)
    five, stack, asym = result.variants
    assert [v.name for v in result.variants] == ["5×5", "2 × 3×3", "5×1 + 1×5"]
    hw = 56 * 56
    assert five.params == 5 * 5 * 64 * 64 + 64
    assert five.macs == hw * 64 * 25 * 64
    assert stack.params == 2 * (3 * 3 * 64 * 64 + 64)
    assert stack.macs == 2 * hw * 64 * 9 * 64          # 18/25 of the 5×5
    assert asym.params == 2 * (5 * 64 * 64 + 64)
    assert asym.macs == 2 * hw * 64 * 5 * 64           # 10/25 of the 5×5
    assert [v.receptive_field for v in result.variants] == [(5, 5)] * 3
    assert [v.nonlinearities for v in result.variants] == [1, 2, 2]
    # the stack keeps one more 64×56×56 tensor
    assert stack.activations == 2 * 64 * hw and five.activations == 64 * hw


def test_seven_by_seven_with_fewer_channels_in_between():
    result = factorize((192, 17, 17), kernel=7, filters=192, mid=160, bias=False)
    seven, stack, asym = result.variants
    hw = 17 * 17
    assert stack.name == "3 × 3×3"
    assert stack.macs == hw * 9 * (192 * 160 + 160 * 160 + 160 * 192)
    assert asym.params == 7 * 192 * 160 + 7 * 160 * 192
    assert seven.params == 49 * 192 * 192
    assert stack.receptive_field == (7, 7) and stack.nonlinearities == 3


def test_even_and_three_kernels_have_no_stack():
    assert [v.name for v in factorize((8, 9, 9), kernel=4, filters=8).variants] == \
        ["4×4", "4×1 + 1×4"]
    three = factorize((8, 9, 9), kernel=3, filters=8)
    assert [v.name for v in three.variants] == ["3×3", "3×1 + 1×3"]
    assert "already the smallest" in three.notes[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel=1), "nothing to factorise"),
    (dict(kernel=10), "--kernel 10 is larger than the 9×9 input"),
    (dict(filters=0), "--filters must be a positive integer"),
    (dict(mid=-3), "--mid must be a positive integer"),
])
def test_nonsense_is_one_clear_error(kwargs, message):
    with pytest.raises(ArchcalcError, match=message):
        factorize((8, 9, 9), **(dict(kernel=5, filters=8) | kwargs))
