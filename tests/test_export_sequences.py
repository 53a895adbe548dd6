"""Sequence layers (issue 13: rnn, lstm, gru, embedding, to_sequence, dense on every step,
softmax over a sequence's features) out to ONNX and PyTorch and back, against oracles
archcalc did not write: onnx.checker (full_check), ONNX's shape inference (every layer's
node against the calculator's row), onnxruntime (against the executor, float32, max
|difference| < 1e-4 of the largest |output|) at every opset written, the importer (the
same parameters, MACs, shapes and names, and the weights come back: the imported network
computes what the original did), torch.onnx's own export of nn.LSTM / nn.GRU / nn.RNN
(imported: torch's parameter count, FLOPs counted by torch's FlopCounterMode, and
onnxruntime's logits on the imported weights), and the generated PyTorch module (the
executor's outputs and the calculator's parameter counts).
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.calc import analyze
from archcalc.nn.network import build
from archcalc.spec import load, loads

TOLERANCE = 1e-4
VOCAB = 9

# name → (items as YAML flow text, input): every option of every sequence kind
CASES: dict[str, tuple[str, list[int]]] = {
    "rnn_tanh_sequences": ("[{rnn: {units: 4, return_sequences: true}}]", [5, 3]),
    "rnn_relu_bidirectional_last": ("[{rnn: {units: 4, nonlinearity: relu, "
                                    "bidirectional: true}}]", [5, 3]),
    "rnn_no_bias_one_bias_ignored": ("[{rnn: {units: 3, bias: false, biases: 1}}]", [4, 2]),
    "lstm_last": ("[{lstm: 4}]", [5, 3]),
    "lstm_bidirectional_sequences_one_bias": (
        "[{lstm: {units: 3, bidirectional: true, return_sequences: true, biases: 1}}]", [4, 3]),
    "lstm_no_bias_bidirectional_last": ("[{lstm: {units: 3, bias: false, "
                                        "bidirectional: true}}]", [4, 2]),
    "gru_reset_after_bidirectional_sequences": (
        "[{gru: {units: 3, bidirectional: true, return_sequences: true}}]", [5, 2]),
    "gru_reset_before_last": ("[{gru: {units: 4, reset_after: false}}]", [5, 3]),
    "gru_reset_before_bidirectional_one_bias": (
        "[{gru: {units: 3, reset_after: false, bidirectional: true, biases: 1}}]", [4, 3]),
    "gru_reset_after_one_bias_sequences": (
        "[{gru: {units: 3, biases: 1, return_sequences: true}}]", [4, 3]),
    "stacked_dropout_every_step_dense_softmax": (
        "[{lstm: {units: 4, return_sequences: true}}, {dropout: 0.3}, "
        "{gru: {units: 3, return_sequences: true, bidirectional: true}}, "
        "{dense: {units: 3, time_distributed: true}}, softmax]", [6, 2]),
    "every_step_dense_no_bias": ("[{dense: {units: 3, time_distributed: true, bias: false}}, "
                                 "tanh, {lstm: 2}]", [4, 5]),
    "embedding_lstm_dense": (f"[{{embedding: {{vocab: {VOCAB}, units: 4}}}}, "
                             "{lstm: {units: 3, bidirectional: true}}, {dense: 2}]", [6]),
    "cnn_to_sequence_width_lstm": ("[{conv: {filters: 3, kernel: 3, padding: 1}}, relu, "
                                   "to_sequence, {lstm: {units: 4, return_sequences: true}}, "
                                   "{lstm: 3}, {dense: 2}]", [1, 4, 6]),
    "to_sequence_height_gru_flatten": ("[{to_sequence: {axis: height}}, {gru: {units: 3, "
                                       "bidirectional: true, return_sequences: true}}, "
                                       "flatten, {dense: 2}]", [2, 3, 5]),
}


def network(name: str):
    layers, shape = CASES[name]
    return loads(f"name: seq\ninput: {shape}\nlayers: {layers}\n")


def randomised(net, seed: int = 0, noise: float = 0.3):
    """The executor's model with every array moved (the biases start at zero elsewhere;
    here PyTorch's uniform, but moved all the same)."""
    model = build(net, seed=seed)
    rng = np.random.default_rng(seed)
    for value in model.params.values():
        value += (noise * rng.standard_normal(value.shape)).astype(value.dtype)
    return model


def inputs(net, batch: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(what the executor reads, what ONNX reads): float32 values, or token ids as floats
    holding whole numbers and as ONNX's int64."""
    rng = np.random.default_rng(seed)
    shape = (batch, *net.input_shape)
    if next(net.leaves()).kind == "embedding":
        ids = rng.integers(0, VOCAB, shape)
        return ids.astype(np.float32), ids.astype(np.int64)
    x = rng.standard_normal(shape).astype(np.float32)
    return x, x


def relative(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / np.abs(want).max())


def rows(net) -> list[tuple]:
    return [(r.name, r.type, r.output_shape, r.params, r.macs) for r in analyze(net).rows]


# ---- ONNX out ---------------------------------------------------------------------------------
OPSETS = (17, 18, 19, 20, 21)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", list(CASES))
def test_onnx_is_valid_has_the_calculators_shapes_and_onnxruntimes_numbers(name, opset):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from archcalc.exporters.onnx_export import to_onnx
    net = network(name)
    model = randomised(net)
    proto = to_onnx(model, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.output)}
    by_name = {node.name: node.output[0] for node in proto.graph.node}
    for row in analyze(net).rows:
        assert shapes[by_name[row.name]] == ["N", *row.output_shape], row.name
    x, feed = inputs(net)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert relative(session.run(None, {"input": feed})[0], model.forward(x)) < TOLERANCE


def test_onnx_gate_order_is_onnxs():
    """The W initializer holds ONNX's gate order: LSTM i, o, f, c (PyTorch's i, f, g, o),
    GRU z, r, h (PyTorch's r, z, n); direction 1 is the executor's _reverse arrays."""
    onnx = pytest.importorskip("onnx")
    from archcalc.exporters.onnx_export import to_onnx
    for layers, order in (("[{lstm: {units: 2, bidirectional: true}}]", (0, 3, 1, 2)),
                          ("[{gru: {units: 2, bidirectional: true}}]", (1, 0, 2))):
        model = randomised(loads(f"name: g\ninput: [3, 4]\nlayers: {layers}\n"))
        proto = to_onnx(model)
        arrays = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
        layer = next(iter(model.layers))
        w = arrays[f"{layer}.W"]
        for k, suffix in enumerate(("", "_reverse")):
            torch_blocks = np.split(model.params[f"{layer}.weight_ih{suffix}"], len(order))
            onnx_blocks = np.split(w[k], len(order))
            for onnx_index, torch_index in enumerate(order):
                np.testing.assert_array_equal(onnx_blocks[onnx_index], torch_blocks[torch_index])


def test_token_ids_are_an_int64_input():
    pytest.importorskip("onnx")
    from onnx import TensorProto
    from archcalc.exporters.onnx_export import to_onnx
    proto = to_onnx(build(network("embedding_lstm_dense")))
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.INT64
    proto = to_onnx(build(network("lstm_last")))
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT


# ---- and back in --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_onnx_export_then_import_gives_the_same_rows_and_weights(name, tmp_path):
    """Names, kinds, shapes, parameters and MACs row by row; then the file's weights, read
    by the importer into the imported network, compute what the original did."""
    onnx = pytest.importorskip("onnx")
    from archcalc.exporters.onnx_export import to_onnx
    from archcalc.importers import imported_weights, load_with_weights
    net = network(name)
    model = randomised(net)
    path = tmp_path / f"{name}.onnx"
    onnx.save(to_onnx(model), str(path))
    assert rows(load(str(path))) == rows(net)
    imported, table = load_with_weights(str(path), None)
    twin = build(imported)
    twin.load_state_dict(imported_weights(imported, table, str(path)), strict=True)
    x, _ = inputs(net)
    want, got = model.forward(x), twin.forward(x)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(1.0, float(np.max(np.abs(want))))
    # the one-vector form comes back as one vector (not PyTorch's pair with zeros)
    assert bias_forms(imported) == bias_forms(net)


def bias_forms(net) -> list:
    """Each recurrent layer's biases (1 or 2), or None without a bias."""
    return [leaf.spec.biases if leaf.spec.bias else None for leaf in net.leaves()
            if leaf.kind in ("rnn", "lstm", "gru")]


# ---- PyTorch out --------------------------------------------------------------------------------
def torch_module(net, model, tmp_path):
    """The generated file imported, its module built with the executor's weights loaded
    through the file's own loader."""
    from archcalc.exporters.torch_export import export
    from archcalc.nn.weights import save_weights
    from test_export_torch import import_source
    exported = export(net)
    module = import_source(exported.source, tmp_path)
    save_weights(model, tmp_path / "weights.npz")
    return module, getattr(module, exported.class_name)(weights=str(tmp_path / "weights.npz"))


@pytest.mark.parametrize("name", list(CASES))
def test_torch_module_equals_the_executor(name, tmp_path):
    """Outputs (float32, < 1e-4 of the largest), trainable parameters (the calculator's
    count; `biases: 1`'s zero vector is no parameter), names through the file's mapping."""
    torch = pytest.importorskip("torch")
    net = network(name)
    model = randomised(net)
    module, torch_net = torch_module(net, model, tmp_path)
    torch_net.eval()
    assert sum(p.numel() for p in torch_net.parameters()) == analyze(net).totals.params
    assert {module.archcalc_name(k) for k in torch_net.state_dict()} == set(model.params)
    x, ids = inputs(net)
    with torch.no_grad():
        got = torch_net(torch.from_numpy(ids)).numpy()
    assert relative(got, model.forward(x)) < TOLERANCE


def test_torch_module_trains_and_its_weights_come_back(tmp_path):
    """A gradient step in torch on the forms torch has no module for (one bias, the GRU
    that resets before U_n); save_archcalc_weights; the executor reads them and computes
    what torch does."""
    torch = pytest.importorskip("torch")
    from archcalc.nn.weights import load_weights
    net = loads("name: t\ninput: [5, 3]\nlayers: [{lstm: {units: 3, biases: 1, "
                "return_sequences: true, bidirectional: true}}, {gru: {units: 2, "
                "reset_after: false, biases: 1, bidirectional: true}}, {dense: 2}]\n")
    model = randomised(net)
    module, torch_net = torch_module(net, model, tmp_path)
    x, _ = inputs(net)
    torch_net(torch.from_numpy(x)).square().sum().backward()
    with torch.no_grad():
        for p in torch_net.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0
            p.sub_(0.1 * p.grad)
        got = torch_net(torch.from_numpy(x)).numpy()
    module.save_archcalc_weights(torch_net, str(tmp_path / "back.npz"))
    again = build(net, seed=5)
    load_weights(again, tmp_path / "back.npz", strict=True)
    assert relative(again.forward(x), got) < TOLERANCE
    assert relative(again.forward(x), model.forward(x)) > 1e-3  # the step moved it
