"""A crop is a window of its input (a view, no new tensor); flattening a window that is not one
run of memory per image copies it. The calculator's rule and the executor's arrays agree."""

from __future__ import annotations

import pytest

from archcalc.calc.analyze import analyze
from archcalc.spec import load

SPEC = """
name: crop_flatten
input: [{c}, 8, 8]
layers:
  - crop: {{cropping: {crop}}}
  - relu
  - flatten
  - dense: 4
"""


@pytest.mark.parametrize("c, crop, copies", [
    (1, "[1, 1, 0, 0]", False),   # whole rows of one channel: one run per image, a view
    (2, "[1, 1, 0, 0]", True),    # two channels: the runs are broken between channels
    (1, "[0, 0, 1, 0]", True),    # a column removed: every row is a separate run
    (3, "0", False),              # nothing removed: the input itself
])
def test_flatten_copies_only_a_broken_window(run, write_spec, c, crop, copies):
    path = write_spec(SPEC.format(c=c, crop=crop))
    rows = {r.type: r for r in analyze(load(path)).rows}
    assert rows["crop"].activations == 0
    assert rows["flatten"].activations == (rows["flatten"].output_shape[0] if copies else 0)
    # the executor measures its own arrays (batch 3: views of a batch, not of one image)
    result = run("check", path, "--batch", "3")
    assert result.exit_code == 0, result.output
    assert "all 4 layers agree" in result.output
