"""The NumPy executor: builds a runnable network from a resolved spec and runs it.

    model = build(network, seed=0, dtype="float32", init="he")
    y = model.forward(x, training=False)     # x (N, *input_shape) → y (N, *output_shape)
    dx = model.backward(dy)                  # after a training forward; fills model.grads

It derives every shape from the arrays it computes and never imports the calculator
(tests/test_nn_independence.py fails if it does): otherwise `archcalc check` proves nothing.
"""

from archcalc.nn.network import LayerRecord, Model, build
from archcalc.nn.weights import load_weights, save_weights

__all__ = ["LayerRecord", "Model", "build", "load_weights", "save_weights"]
