"""The importers' one check of a file's weights against the built network (match_state):
each format keeps its own words for a missing array and a shape that disagrees."""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.importers import keras_weights, onnx_weights
from archcalc.nn.network import build
from archcalc.spec import loads

NET = loads("name: t\ninput: [1, 4, 4]\nlayers:\n  - {conv: {filters: 2, kernel: 3}, name: c}\n")


def _table(weight_shape=(2, 1, 3, 3)):
    return {"c": {"weight": ("W", np.zeros(weight_shape, np.float32)),
                  "bias": ("B", np.zeros(2, np.float32))}}


@pytest.mark.parametrize("module", [onnx_weights, keras_weights])
def test_a_whole_table_gives_the_models_state(module):
    state = module.state_for(build(NET), _table(), "m")
    assert sorted(state) == ["c.bias", "c.weight"] and state["c.weight"].shape == (2, 1, 3, 3)


@pytest.mark.parametrize("module, line", [
    (onnx_weights, "error: m: weights: initializer 'W' has shape 2×1×5×5, layer 'c' needs its "
                   "weight as 2×1×3×3 (fix: re-export the model; archcalc reads PyTorch's "
                   "layouts)"),
    (keras_weights, "error: m: weights: W has shape 2×1×5×5 in archcalc's layout, layer 'c' "
                    "needs its weight as 2×1×3×3 (fix: give the input the model was saved for "
                    "(--input))"),
])
def test_a_shape_that_disagrees_is_one_line_in_the_formats_words(module, line):
    with pytest.raises(ArchcalcError) as info:
        module.state_for(build(NET), _table((2, 1, 5, 5)), "m")
    assert info.value.render() == line


@pytest.mark.parametrize("module, holder", [(onnx_weights, "the file"),
                                            (keras_weights, "the Keras file")])
def test_a_missing_array_names_the_layer(module, holder):
    table = _table()
    del table["c"]["bias"]
    with pytest.raises(ArchcalcError) as info:
        module.state_for(build(NET), table, "m")
    assert info.value.render().startswith(f"error: m: weights: {holder} holds no bias for "
                                          "layer 'c' (fix: ")
