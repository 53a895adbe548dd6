"""The executor's sequence layers (archcalc/nn/recurrent.py, issue 13): backpropagation
through time checked numerically (float64, < 1e-6, every kind and option), and against
PyTorch's nn.RNN / nn.LSTM / nn.GRU / nn.Embedding with the same weights (float32, < 1e-4
relative: outputs and every gradient), bidirectional, return_sequences both ways, stacked
layers with dropout between them, dense on the last step and on every step, and gradient
clipping by norm on top."""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import optim
from archcalc.nn.gradcheck import _check_array, _Loss, gradcheck
from archcalc.nn.network import build
from archcalc.spec import loads

TOL32 = 1e-4


def net(layers: str, shape) -> object:
    return loads(f"name: seq\ninput: {list(shape)}\nlayers: {layers}\n")


# ---- gradcheck (float64) ----------------------------------------------------------------------
GRADCHECK = {
    "rnn_tanh": ("[{rnn: {units: 3, return_sequences: true}}]", [4, 3]),
    "rnn_relu_bi_last": ("[{rnn: {units: 3, nonlinearity: relu, bidirectional: true}}]", [4, 3]),
    "lstm_last": ("[{lstm: 3}]", [4, 2]),
    "lstm_bi_seq_one_bias": ("[{lstm: {units: 2, bidirectional: true, return_sequences: true, "
                             "biases: 1}}]", [3, 3]),
    "gru_reset_after": ("[{gru: {units: 3, return_sequences: true}}]", [4, 2]),
    "gru_reset_before_bi": ("[{gru: {units: 2, reset_after: false, bidirectional: true}}]",
                            [4, 3]),
    "gru_reset_before_one_bias": ("[{gru: {units: 3, reset_after: false, biases: 1, "
                                  "return_sequences: true}}]", [3, 2]),
    "no_bias": ("[{lstm: {units: 2, bias: false, return_sequences: true}}, "
                "{gru: {units: 2, bias: false}}]", [3, 2]),
    "stacked_dropout_td_dense_softmax": (
        "[{lstm: {units: 3, return_sequences: true}}, {dropout: 0.3}, "
        "{gru: {units: 2, return_sequences: true, bidirectional: true}}, "
        "{dense: {units: 3, time_distributed: true}}, softmax]", [4, 2]),
    "cnn_to_sequence_width": ("[{conv: {filters: 2, kernel: 3, padding: 1}}, to_sequence, "
                              "{rnn: {units: 2}}, {dense: 2}]", [1, 3, 4]),
    "to_sequence_height": ("[{to_sequence: {axis: height}}, {gru: 2}]", [2, 3, 4]),
}


@pytest.mark.parametrize("case", sorted(GRADCHECK))
def test_gradcheck(case):
    layers, shape = GRADCHECK[case]
    results = gradcheck(net(layers, shape), batch=2, seed=3)
    for r in results:
        assert r.ok and r.checked == r.size, (r.layer, r.param, r.error, r.skipped)
    assert max(r.error for r in results) < 1e-6


def test_gradcheck_embedding():
    """The input is token ids (no gradient): every weight, checked with ids as input."""
    network = net("[{embedding: {vocab: 5, units: 3}}, {lstm: {units: 2, "
                  "return_sequences: true}}, {dense: {units: 2, time_distributed: true}}]", [4])
    model = build(network, seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x = np.array([[0, 4, 4, 1], [2, 0, 3, 4]], dtype=np.float64)
    weights = rng.standard_normal((2, 4, 2))
    loss = _Loss(model, x, weights)
    model.forward(x, training=True)
    model.backward(weights)
    analytic = {k: v.copy() for k, v in model.grads.items()}
    scale = max(float(np.abs(g).max()) for g in analytic.values())
    for key, array in model.params.items():
        result = _check_array(loss, array, analytic[key], None, rng, *key.rsplit(".", 1),
                              1e-6, scale)
        assert result.ok and result.error < 1e-6, (key, result.error)
    # an id used twice accumulates both rows' gradients; an unused id (none here) none
    assert np.abs(analytic["embed1.weight"][4]).sum() > 0


# ---- PyTorch parity (float32) -----------------------------------------------------------------
def _rel(got, want) -> float:
    return float(np.abs(np.asarray(got) - np.asarray(want)).max()
                 / max(np.abs(np.asarray(want)).max(), 1e-30))


def _torch_recurrent(torch, leaf_spec, features, model, name):
    """The torch module of one archcalc recurrent layer, holding the executor's arrays
    (biases: 1 → bias_ih = bias, bias_hh = 0)."""
    kind = leaf_spec.type
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    kw = {"nonlinearity": leaf_spec.nonlinearity} if kind == "rnn" else {}
    module = cls(features, leaf_spec.units, batch_first=True, bias=leaf_spec.bias,
                 bidirectional=leaf_spec.bidirectional, **kw)
    with torch.no_grad():
        for pname, p in module.named_parameters():
            short = pname.replace("_l0", "")
            if leaf_spec.biases == 1 and short.startswith("bias_hh"):
                p.zero_()
            else:
                short = short.replace("bias_ih", "bias") if leaf_spec.biases == 1 else short
                p.copy_(torch.from_numpy(model.params[f"{name}.{short}"]))
    return module


def _torch_grads(leaf_spec, module, name) -> dict:
    out = {}
    for pname, p in module.named_parameters():
        short = pname.replace("_l0", "")
        if leaf_spec.biases == 1:
            if short.startswith("bias_hh"):
                continue
            short = short.replace("bias_ih", "bias")
        out[f"{name}.{short}"] = p.grad.numpy()
    return out


def _last_step(torch, result, kind):
    """PyTorch's h_n (both directions side by side): the archcalc last-step output."""
    hn = result[1][0] if kind == "lstm" else result[1]
    return torch.cat(list(hn), dim=1)


PARITY = {
    "rnn_tanh_last": "[{rnn: 5}]",
    "rnn_relu_bi_seq": "[{rnn: {units: 5, nonlinearity: relu, bidirectional: true, "
                       "return_sequences: true}}]",
    "rnn_bi_last": "[{rnn: {units: 4, bidirectional: true}}]",
    "lstm_last": "[{lstm: 6}]",
    "lstm_seq": "[{lstm: {units: 6, return_sequences: true}}]",
    "lstm_bi_last": "[{lstm: {units: 6, bidirectional: true}}]",
    "lstm_bi_seq_one_bias": "[{lstm: {units: 4, bidirectional: true, return_sequences: true, "
                            "biases: 1}}]",
    "gru_last_no_bias": "[{gru: {units: 5, bias: false}}]",
    "gru_seq": "[{gru: {units: 5, return_sequences: true}}]",
    "gru_bi_last_one_bias": "[{gru: {units: 5, bidirectional: true, biases: 1}}]",
    "gru_bi_seq": "[{gru: {units: 3, bidirectional: true, return_sequences: true}}]",
}


@pytest.mark.parametrize("case", sorted(PARITY))
def test_torch_parity_one_layer(case):
    torch = pytest.importorskip("torch")
    network = net(PARITY[case], [7, 4])
    leaf = next(network.leaves())
    name = network.display(leaf.path)
    model = build(network, seed=2)
    x = np.random.default_rng(0).standard_normal((3, 7, 4)).astype(np.float32)
    y = model.forward(x, training=True)
    r = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx = model.backward(r)
    module = _torch_recurrent(torch, leaf.spec, 4, model, name)
    xt = torch.from_numpy(x).requires_grad_()
    result = module(xt)
    yt = result[0] if leaf.spec.return_sequences else _last_step(torch, result, leaf.kind)
    (yt * torch.from_numpy(r)).sum().backward()
    assert _rel(y, yt.detach().numpy()) < TOL32
    assert _rel(dx, xt.grad.numpy()) < TOL32
    for key, want in _torch_grads(leaf.spec, module, name).items():
        assert _rel(model.grads[key], want) < TOL32, key
    assert set(_torch_grads(leaf.spec, module, name)) == set(model.grads)


def _stacked_parity(torch, layers: str, head: str):
    """embedding → lstm (sequences) → dropout → bidirectional gru → dense on the last step
    (head "last") or on every step (head "every"), in training: the executor's dropout mask
    is applied between the torch modules; outputs and every gradient compared."""
    network = net(layers, [6])
    model = build(network, seed=4)
    ids = np.array([[1, 7, 3, 3, 0, 9], [2, 2, 8, 5, 6, 1]], dtype=np.float32)
    y = model.forward(ids, training=True)
    r = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    model.backward(r, input_grad=False)
    leaves = {network.display(leaf.path): leaf for leaf in network.leaves()}
    emb = torch.nn.Embedding(10, 4)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(model.params["embed1.weight"]))
    lstm = _torch_recurrent(torch, leaves["lstm1"].spec, 4, model, "lstm1")
    gru = _torch_recurrent(torch, leaves["gru1"].spec, 5, model, "gru1")
    fc = torch.nn.Linear(6, 3)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(model.params["fc1.weight"]))
        fc.bias.copy_(torch.from_numpy(model.params["fc1.bias"]))
    mask = torch.from_numpy(model.layers["dropout1"].mask)
    h = lstm(emb(torch.from_numpy(ids).long()))[0] * mask
    result = gru(h)
    yt = fc(result[0] if head == "every" else _last_step(torch, result, "gru"))
    (yt * torch.from_numpy(r)).sum().backward()
    assert _rel(y, yt.detach().numpy()) < TOL32
    want = {"embed1.weight": emb.weight.grad.numpy(), "fc1.weight": fc.weight.grad.numpy(),
            "fc1.bias": fc.bias.grad.numpy(),
            **_torch_grads(leaves["lstm1"].spec, lstm, "lstm1"),
            **_torch_grads(leaves["gru1"].spec, gru, "gru1")}
    assert set(want) == set(model.grads)
    for key, value in want.items():
        assert _rel(model.grads[key], value) < TOL32, key
    return model, (emb, lstm, gru, fc)


def test_torch_parity_stacked_dropout_dense_on_the_last_step():
    torch = pytest.importorskip("torch")
    _stacked_parity(torch, "[{embedding: {vocab: 10, units: 4}}, {lstm: {units: 5, "
                           "return_sequences: true}}, {dropout: 0.4}, {gru: {units: 3, "
                           "bidirectional: true}}, {dense: 3}]", "last")


def test_torch_parity_stacked_dropout_dense_on_every_step():
    torch = pytest.importorskip("torch")
    _stacked_parity(torch, "[{embedding: {vocab: 10, units: 4}}, {lstm: {units: 5, "
                           "return_sequences: true}}, {dropout: 0.4}, {gru: {units: 3, "
                           "bidirectional: true, return_sequences: true}}, "
                           "{dense: {units: 3, time_distributed: true}}]", "every")


def test_clip_by_norm_equals_torch():
    """The trainer's clip (optim.clip_grad_norm, the notes' threshold rule) on a stacked
    sequence network's gradients: the same scaled gradients as torch's clip_grad_norm_."""
    torch = pytest.importorskip("torch")
    model, modules = _stacked_parity(
        torch, "[{embedding: {vocab: 10, units: 4}}, {lstm: {units: 5, return_sequences: "
               "true}}, {dropout: 0.4}, {gru: {units: 3, bidirectional: true}}, {dense: 3}]",
        "last")
    params = [p for m in modules for p in m.parameters()]
    norm_torch = float(torch.nn.utils.clip_grad_norm_(params, 0.05))
    norm = optim.clip_grad_norm(model.grads, 0.05)
    assert abs(norm - norm_torch) < TOL32 * norm_torch and norm > 0.05  # it did clip
    assert abs(optim.global_norm(model.grads, list(model.grads)) - 0.05) < 1e-4
    emb = modules[0]
    assert _rel(model.grads["embed1.weight"], emb.weight.grad.numpy()) < TOL32


def test_to_sequence_equals_torch_crnn_reading():
    """CRNN's map-to-sequence: (N, C, H, W).permute(0, 3, 1, 2).reshape(N, W, C·H); height:
    permute(0, 2, 1, 3).reshape(N, H, C·W)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    xt = torch.from_numpy(x)
    for axis, want in (("width", xt.permute(0, 3, 1, 2).reshape(2, 5, 12)),
                       ("height", xt.permute(0, 2, 1, 3).reshape(2, 4, 15))):
        model = build(net(f"[{{to_sequence: {{axis: {axis}}}}}]", [3, 4, 5]))
        y = model.forward(x, training=True)
        assert np.array_equal(y, want.numpy())
        dx = model.backward(y * 2)  # the inverse reading: every value back in its place
        assert np.array_equal(dx, 2 * x)


def test_embedding_ids_out_of_the_vocabulary_are_one_line():
    model = build(net("[{embedding: {vocab: 10, units: 2}}, {lstm: 2}]", [3]))
    with pytest.raises(ArchcalcError) as err:
        model.forward(np.array([[1.0, 12.0, 3.0]]))
    text = err.value.render()
    assert "embed1" in text and "token id 12" in text and "vocab: 13" in text
    assert "\n" not in text
    with pytest.raises(ArchcalcError, match="not a token id"):
        model.forward(np.array([[1.0, 2.5, 3.0]]))
    with pytest.raises(ArchcalcError, match="outside the vocabulary"):
        model.forward(np.array([[-1.0, 2.0, 3.0]]))
