"""The calculator's sequence arithmetic (issue 13): shapes, parameters in both bias forms
(against torch's own parameter count), MACs forward and backward (against PyTorch's
FlopCounterMode, which decomposes nn.RNN, nn.GRU and — oneDNN off — nn.LSTM into the
matrix products it counts), what backpropagation through time keeps (against the executor's
MemoryRecorder, step by step), and the bad inputs of the issue, one line each."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from archcalc.calc.analyze import analyze
from archcalc.calc.backward import backward_costs
from archcalc.calc.peak import timeline
from archcalc.cli import main
from archcalc.errors import ShapeError
from archcalc.nn.network import MemoryRecorder, Model
from archcalc.spec import loads

G = {"rnn": 1, "gru": 3, "lstm": 4}


def net(layers: str, shape):
    return loads(f"name: seq\ninput: {list(shape)}\nlayers: {layers}\n")


def row(layers: str, shape, index: int = 0):
    return analyze(net(layers, shape)).rows[index]


# ---- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,shape,out", [
    ("[{lstm: 8}]", [5, 3], (8,)),
    ("[{lstm: {units: 8, return_sequences: true}}]", [5, 3], (5, 8)),
    ("[{gru: {units: 8, bidirectional: true}}]", [5, 3], (16,)),
    ("[{rnn: {units: 8, bidirectional: true, return_sequences: true}}]", [5, 3], (5, 16)),
    ("[{embedding: {vocab: 100, units: 16}}]", [12], (12, 16)),
    ("[to_sequence]", [64, 1, 25], (25, 64)),
    ("[{to_sequence: {axis: height}}]", [4, 6, 25], (6, 100)),
    ("[{dense: {units: 3, time_distributed: true}}]", [5, 7], (5, 3)),
    ("[flatten]", [5, 7], (35,)),
])
def test_shapes(layers, shape, out):
    assert row(layers, shape).output_shape == out


# ---- parameters: both bias forms --------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(G))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias,biases", [(True, 2), (True, 1), (False, 2)])
def test_params_by_formula_and_torch(kind, bidirectional, bias, biases):
    f, h, d = 7, 5, 2 if bidirectional else 1
    r = row(f"[{{{kind}: {{units: {h}, bidirectional: {str(bidirectional).lower()}, "
            f"bias: {str(bias).lower()}, biases: {biases}}}}}]", [4, f])
    g = G[kind]
    assert r.weights == d * g * h * (f + h)
    assert r.biases == (d * biases * g * h if bias else 0)
    torch = pytest.importorskip("torch")
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        f, h, bias=bias, bidirectional=bidirectional)
    torch_count = sum(p.numel() for p in module.parameters())
    # PyTorch always keeps two bias vectors: the one-bias form has D·G·H fewer values
    assert r.params == torch_count - (d * g * h if bias and biases == 1 else 0)


def test_embedding_and_to_sequence_params_and_macs():
    r = row("[{embedding: {vocab: 1000, units: 32}}]", [20])
    assert (r.params, r.macs, r.activations) == (32_000, 0, 20 * 32)
    r = row("[to_sequence]", [8, 2, 10])
    assert (r.params, r.macs, r.activations) == (0, 0, 160)


# ---- MACs: the formula and FlopCounterMode ----------------------------------------------------
CASES = [("rnn", False, False), ("rnn", True, True), ("gru", False, True),
         ("gru", True, False), ("lstm", False, True), ("lstm", True, False)]


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
@pytest.mark.parametrize("kind,bidirectional,return_sequences", CASES)
def test_forward_and_backward_macs_equal_flop_counter(kind, bidirectional, return_sequences):
    """Forward: T·D·G·H·(F + H); backward: dX T·D·G·H·F, dW T·D·G·H·(F + H) + (T − 1)·D·G·H·H
    through time. FlopCounterMode counts 2 FLOPs per MAC, for the whole batch."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    t, f, h, n = 6, 3, 4, 2
    d = 2 if bidirectional else 1
    network = net(f"[{{{kind}: {{units: {h}, bidirectional: {str(bidirectional).lower()}, "
                  f"return_sequences: {str(return_sequences).lower()}}}}}]", [t, f])
    analysis = analyze(network)
    r = analysis.rows[0]
    g = G[kind]
    assert r.macs == t * d * g * h * (f + h)
    # the layer's input carries a gradient only when something before it has weights: put
    # a dense layer (time-distributed) before it so that dX is computed, as torch does for
    # an input that requires grad
    with_dx = analyze(net(f"[{{dense: {{units: {f}, time_distributed: true}}}}, "
                          f"{{{kind}: {{units: {h}, bidirectional: "
                          f"{str(bidirectional).lower()}}}}}]", [t, f]))
    cost = backward_costs(with_dx)[1]
    assert cost.dx_macs == t * d * g * h * f
    assert cost.dw_macs == t * d * g * h * (f + h) + (t - 1) * d * g * h * h
    first = backward_costs(analysis)[0]
    assert first.dx_macs == 0 and first.dw_macs == cost.dw_macs

    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        f, h, batch_first=True, bidirectional=bidirectional)
    x = torch.randn(n, t, f, requires_grad=True)
    with torch.backends.mkldnn.flags(enabled=False):  # LSTM: the decomposed kernel
        with FlopCounterMode(display=False) as forward:
            out = module(x)[0]
        with FlopCounterMode(display=False) as step:
            module(x)[0].sum().backward()
    assert forward.get_total_flops() == 2 * n * r.macs
    assert step.get_total_flops() - forward.get_total_flops() == \
        2 * n * (cost.dx_macs + cost.dw_macs)
    assert out.shape[1:] == (t, d * h)


def test_frozen_recurrent_charges_the_gradient_through_time_to_dx():
    t, f, h = 5, 3, 2
    costs = backward_costs(analyze(net(
        f"[{{dense: {{units: {f}, time_distributed: true}}}}, "
        f"{{lstm: {{units: {h}, trainable: false}}}}]", [t, f])))
    assert costs[1].dw_macs == 0
    assert costs[1].dx_macs == t * 4 * h * f + (t - 1) * 4 * h * h


def test_time_distributed_dense_macs_and_backward():
    r = row("[{dense: {units: 3, time_distributed: true}}]", [5, 7])
    assert (r.macs, r.weights, r.biases) == (5 * 7 * 3, 21, 3)


# ---- what backpropagation through time keeps: the executor's arrays, step by step -------------
KEPT_SPECS = {
    "cnn_lstm_bi": ("[{conv: {filters: 3, kernel: 3, padding: 1}}, relu, to_sequence, "
                    "{lstm: {units: 4, return_sequences: true, bidirectional: true}}, "
                    "{dropout: 0.3}, {gru: {units: 3}}, {dense: 2}]", [1, 4, 9]),
    "gru_rnn_td": ("[{gru: {units: 3, reset_after: false, return_sequences: true}}, tanh, "
                   "{rnn: {units: 2, nonlinearity: relu, return_sequences: true}}, relu, "
                   "{dense: {units: 2, time_distributed: true}}, softmax]", [5, 3]),
    "first_lstm": ("[{lstm: {units: 3, bidirectional: true}}, {dense: 2}]", [4, 2]),
}


@pytest.mark.parametrize("case", sorted(KEPT_SPECS))
@pytest.mark.parametrize("batch", [1, 3])
def test_peak_steps_equal_the_executor(case, batch):
    """Inference and a training step: the bytes held at every step (KEEPS: input and step
    states) equal the executor's arrays (MemoryRecorder), and a dropout or activation after
    a return_sequences layer never overwrites the states its backward reads."""
    network = net(*KEPT_SPECS[case])
    model = Model(network)
    model.forward(np.zeros((1,) + model.input_shape, dtype=model.dtype))
    for mode in ("inference", "training"):
        model.recorder = MemoryRecorder()
        x = np.random.default_rng(0).standard_normal((batch,) + model.input_shape)
        y = model.forward(x, training=mode == "training")
        if mode == "training":
            model.backward(np.ones_like(y) / y.size, input_grad=False)
        got, model.recorder = model.recorder.steps, None
        want = [(s.name, s.phase, s.held_bytes)
                for s in timeline(analyze(network, batch=batch), mode, "sgd")]
        assert got == want, mode


def test_activations_are_what_bptt_keeps():
    """Per example, S = T·D·H: rnn S, lstm 6S, gru 5S (reset_after) or 4S, plus a last-step
    output D·H."""
    t, f, h = 10, 3, 4
    for layers, want in [
        (f"[{{rnn: {{units: {h}, return_sequences: true}}}}]", t * h),
        (f"[{{lstm: {h}}}]", 6 * t * h + h),
        (f"[{{lstm: {{units: {h}, bidirectional: true}}}}]", 12 * t * h + 2 * h),
        (f"[{{gru: {{units: {h}, return_sequences: true}}}}]", 5 * t * h),
        (f"[{{gru: {{units: {h}, reset_after: false}}}}]", 4 * t * h + h),
    ]:
        assert row(layers, [t, f]).activations == want, layers


# ---- bad input: one line naming the layer and the fix, exit 1 ---------------------------------
BAD = {
    "lstm on a map": ("name: s\ninput: [64, 1, 25]\nlayers: [{lstm: 8}]\n",
                      ["layer 'lstm1'", "C×H×W map 64×1×25", "to_sequence"]),
    "dense after a sequence": ("name: s\ninput: [5, 3]\nlayers: [{lstm: {units: 8, "
                               "return_sequences: true}}, {dense: 2}]\n",
                               ["layer 'fc1'", "which step", "return_sequences: false",
                                "time_distributed: true"]),
    "gru on flat features": ("name: s\ninput: [30]\nlayers: [{gru: 4}]\n",
                             ["layer 'gru1'", "embedding", "[T, F]"]),
    "batchnorm on a sequence": ("name: s\ninput: [5, 3]\nlayers: [bn]\n",
                                ["layer 'bn1'", "layernorm"]),
    # review 13: concat joins axis 0 (time for a sequence): refused, with the ways to write it
    "concat of sequences": ("name: s\ninput: [6, 4]\nlayers: [{concat: [[{lstm: {units: 3, "
                            "return_sequences: true}}], [{gru: {units: 3, return_sequences: "
                            "true}}]]}]\n",
                            ["layer 'concat1'", "concat of sequence branches",
                             "6×3 (6 steps × 3 features)", "return_sequences: false", "add"]),
    "concat of sequences of other features": (
        "name: s\ninput: [6, 4]\nlayers: [{concat: [[{lstm: {units: 3, return_sequences: "
        "true, bidirectional: true}}], [{dense: {units: 5, time_distributed: true}}]]}]\n",
        ["concat of sequence branches", "6×6", "6×5", "return_sequences: false"]),
    "add of a sequence and a last step": (
        "name: s\ninput: [6, 4]\nlayers: [{add: [[{lstm: 3}], [{lstm: {units: 3, "
        "return_sequences: true}}]]}]\n",
        ["layer 'add1'", "3 (3 features, no steps)", "6×3 (6 steps × 3 features)",
         "set return_sequences the same"]),
    "mul of sequences of other features": (
        "name: s\ninput: [1, 4]\nlayers: [{mul: [[{lstm: {units: 3, return_sequences: true}}], "
        "[{gru: {units: 2, return_sequences: true}}]]}]\n",
        ["layer 'mul1'", "1×3 (1 step × 3 features)", "1×2 (1 step × 2 features)",
         "same units"]),
    "dense after one step": ("name: s\ninput: [1, 4]\nlayers: [{dense: 2}]\n",
                             ["a sequence of 1 step × 4 features"]),
    "embedding of a map": ("name: s\ninput: [3, 8, 8]\nlayers: [{embedding: {vocab: 3, "
                           "units: 2}}]\n", ["layer 'embed1'", "token ids"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line(case, tmp_path):
    text, needles = BAD[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in result.output, err
    for needle in needles:
        assert needle in err, (needle, err)
    # a sequence merge gives no conv advice (strides, 'same' padding, 1×1 convs, C×1×1 gates)
    for conv in ("stride", "'same' padding", "1×1 conv", "×1×1", "1 steps"):
        assert conv not in err, (conv, err)
    with pytest.raises(ShapeError):
        analyze(loads(text))


def test_sequence_input_forms(tmp_path):
    """[T, F] in the spec, T×F on the command line (--input 9x3 runs 9 steps)."""
    import json
    assert net("[{lstm: 2}]", [7, 3]).input_shape == (7, 3)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ninput: [7, 3]\nlayers: [{lstm: 2}]\n")
    result = CliRunner().invoke(main, ["summary", str(path), "--format", "json",
                                       "--input", "9x3"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["input_shape"] == [9, 3] and doc["layers"][0]["macs"] == 9 * 4 * 2 * (3 + 2)
