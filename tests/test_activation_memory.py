"""The activation-memory rule (README, Conventions) where in-place work is not possible:
an activation whose input another branch still reads must make a new tensor."""

from __future__ import annotations

from archcalc.calc import analyze
from archcalc.check import run_check
from archcalc.spec import loads

SPEC = """
name: branch_relu
input: [2, 4, 4]
layers:
  - conv: {filters: 2, kernel: 1}
  - concat: [[relu], [{conv: {filters: 2, kernel: 1}}]]   # relu1: branch 2 still reads conv1
  - add: [[], [relu]]                                     # relu2: the identity hands x on
  - add: [[relu], [dropout]]                              # relu3: not the last branch
  - add: [[{conv: {filters: 4, kernel: 1}}], [relu]]      # relu4: last branch, x is free
  - relu                                                  # relu5: on the add's new tensor
"""


def test_activations_on_shared_inputs_make_new_tensors():
    rows = {r.name: r.activations for r in analyze(loads(SPEC)).rows}
    assert rows["relu1"] == 2 * 4 * 4
    assert rows["relu2"] == 4 * 4 * 4
    assert rows["relu3"] == 4 * 4 * 4
    assert rows["dropout1"] == 0
    assert rows["relu4"] == 0
    assert rows["relu5"] == 0


def test_the_executor_measures_the_same_bytes():
    result = run_check(loads(SPEC), batch=3)
    assert result.ok, result.verdict if hasattr(result, "verdict") else result
