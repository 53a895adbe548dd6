"""The executor against PyTorch (an oracle for tests only; skipped when torch is absent).

Same weights in → same forward outputs (max abs error < 1e-4 in float32), same gradients
for the input and every parameter, same running statistics, for every layer kind, and end to
end for the bundled lenet5, alexnet, googlenet and resnet18. The torch side walks the same
resolved tree with torch.nn.functional ops, so every number it produces is PyTorch's.
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.nn import build
from archcalc.spec import load, loads
from archcalc.spec.layers import explicit_pads, pair, same_pads
from archcalc.spec.tree import Leaf, Merge, Sequence

torch = pytest.importorskip("torch")
F = torch.nn.functional


# ---- a torch interpreter of the resolved tree ------------------------------------------
def _pads(spec, x, dilation=(1, 1)):
    pads = explicit_pads(spec.padding)
    if pads is None:
        kh, kw = pair(spec.kernel)
        stride = pair(spec.stride) if spec.type == "conv2d" else spec.strides
        pads = (same_pads(x.shape[2], kh, stride[0], dilation[0])
                + same_pads(x.shape[3], kw, stride[1], dilation[1]))
    return pads


def _pool(spec, x, fn, fill):
    t, b, l, r = _pads(spec, x)
    k, s = pair(spec.kernel), spec.strides
    if t == b and l == r:
        if fn is F.avg_pool2d:
            return fn(x, k, s, (t, l), ceil_mode=spec.ceil_mode, count_include_pad=True)
        return fn(x, k, s, (t, l), ceil_mode=spec.ceil_mode)
    assert not spec.ceil_mode, "asymmetric padding with ceil mode has no torch equivalent"
    return fn(F.pad(x, (l, r, t, b), value=fill), k, s, 0)


def torch_leaf(leaf: Leaf, name, x, P, B, training):
    s, kind = leaf.spec, leaf.kind
    if kind == "conv2d":
        dil = pair(s.dilation)
        t, b, l, r = _pads(s, x, dil)
        return F.conv2d(F.pad(x, (l, r, t, b)), P[f"{name}.weight"], P.get(f"{name}.bias"),
                        pair(s.stride), 0, dil, s.groups)
    if kind == "maxpool":
        return _pool(s, x, F.max_pool2d, float("-inf"))
    if kind == "avgpool":
        return _pool(s, x, F.avg_pool2d, 0.0)
    if kind == "global_avgpool":
        return x.mean(dim=(2, 3), keepdim=s.keepdims)
    if kind == "dense":
        return F.linear(x, P[f"{name}.weight"], P.get(f"{name}.bias"))
    if kind == "flatten":
        return x.flatten(1)
    if kind == "dropout":
        assert not training, "torch's dropout masks differ from ours"
        return x
    if kind == "batchnorm":
        return F.batch_norm(x, B[f"{name}.running_mean"], B[f"{name}.running_var"],
                            P[f"{name}.weight"], P[f"{name}.bias"], training, s.momentum, s.eps)
    if kind == "lrn":
        # PyTorch's form divides alpha by size; the paper's sum form is alpha·size there
        return F.local_response_norm(x, s.size, s.alpha_per_square * s.size, s.beta, s.k)
    if kind == "layernorm":
        return F.layer_norm(x, x.shape[1:], P[f"{name}.weight"], P[f"{name}.bias"], s.eps)
    if kind == "maxout":
        return x.unflatten(1, (x.shape[1] // s.pieces, s.pieces)).max(dim=2).values
    return {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "softmax": lambda v: F.softmax(v, dim=1),
            "leaky_relu": lambda v: F.leaky_relu(v, getattr(s, "slope", 0)),
            "elu": lambda v: F.elu(v, getattr(s, "alpha", 1))}[kind](x)


def torch_run(network, node, x, P, B, training):
    if isinstance(node, Leaf):
        return torch_leaf(node, network.display(node.path), x, P, B, training)
    if isinstance(node, Sequence):
        for child in node.children:
            x = torch_run(network, child, x, P, B, training)
        return x
    assert isinstance(node, Merge)
    outs = [torch_run(network, branch, x, P, B, training) for branch in node.branches]
    return torch.cat(outs, dim=1) if node.mode == "concat" else sum(outs[1:], outs[0])


def tensors(arrays, grad=False):
    return {k: torch.tensor(v.copy(), requires_grad=grad and k.endswith(("weight", "bias")))
            for k, v in arrays.items()}


def close(ours, theirs, tol=1e-4):
    """max |a − b| ≤ tol·max(1, max |b|): absolute for O(1) values, relative for sums."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    assert ours.shape == theirs.shape
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    err = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    assert err <= tol * scale, f"max abs error {err:.3g} (scale {scale:.3g})"
    return err


def compare(network, batch=3, seed=0, training=True, grads=True):
    """Forward (training and inference), backward and running stats: ours vs torch."""
    m = build(network, seed=seed, dtype="float32")
    rng = np.random.default_rng(seed + 7)
    x = rng.standard_normal((batch,) + tuple(network.input_shape)).astype(np.float32)
    P, B = tensors(m.params, grad=True), tensors(m.buffers)
    if training:
        y = m.forward(x, training=True)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch_run(network, network.root, xt, P, B, True)
        assert np.abs(y - yt.detach().numpy()).max() < 1e-4
        if grads:
            r = rng.standard_normal(y.shape).astype(np.float32)
            dx = m.backward(r)
            (yt * torch.tensor(r)).sum().backward()
            close(dx, xt.grad)
            for key, tensor in P.items():
                if key not in m.frozen:
                    close(m.grads[key], tensor.grad)
        for key, tensor in B.items():  # running statistics moved the same way
            close(m.buffers[key], tensor)
    y = m.forward(x)
    with torch.no_grad():
        yt = torch_run(network, network.root, torch.tensor(x), P, B, False)
    assert np.abs(y - yt.numpy()).max() < 1e-4
    return m


def net(layers: str, shape):
    return loads(f"name: t\ninput: {list(shape)}\nlayers: {layers}\n")


CASES = {
    "conv_stride_asym_pad_dilation_groups": (
        "[{conv: {filters: 6, kernel: 3, stride: 2, padding: [1, 0, 2, 1], dilation: [1, 2], groups: 3}}]", (3, 9, 8)),
    "conv_same_stride_no_bias": ("[{conv: {filters: 4, kernel: [3, 2], stride: 2, padding: same, bias: false}}]", (2, 7, 6)),
    "conv_symmetric": ("[{conv: {filters: 4, kernel: 5, padding: 2}}]", (3, 6, 6)),
    "conv_depthwise_dilated": ("[{conv: {filters: 4, kernel: 3, padding: 2, dilation: 2, groups: 4}}]", (4, 6, 6)),
    "maxpool_ceil_pad": ("[{maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]", (2, 8, 7)),
    "maxpool_ceil": ("[{maxpool: {kernel: 3, stride: 2, ceil_mode: true}}]", (2, 6, 6)),
    "maxpool_same": ("[{maxpool: {kernel: 3, stride: 2, padding: same}}]", (2, 6, 5)),
    "avgpool_ceil_pad": ("[{avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]", (2, 8, 7)),
    "avgpool_ceil_odd": ("[{avgpool: {kernel: 2, ceil_mode: true}}]", (2, 5, 5)),
    "avgpool_same": ("[{avgpool: {kernel: 2, stride: 2, padding: same}}]", (2, 5, 5)),
    # kernels far larger than the input: only the offsets that read input are visited
    "maxpool_kernel_past_input": ("[{maxpool: {kernel: 41, padding: 20, stride: 1}}]", (2, 1, 2)),
    "maxpool_big_kernel_stride_ceil": (
        "[{maxpool: {kernel: [9, 7], padding: [4, 3], stride: [3, 2], ceil_mode: true}}]", (2, 3, 4)),
    "avgpool_kernel_past_input": ("[{avgpool: {kernel: 41, padding: 20, stride: 1}}]", (2, 2, 3)),
    "avgpool_big_kernel_stride_ceil": (
        "[{avgpool: {kernel: [8, 11], padding: [4, 5], stride: [2, 3], ceil_mode: true}}]", (2, 3, 5)),
    "global_avgpool": ("[{conv: {filters: 3, kernel: 1}}, gap, {global_avgpool: {keepdims: false}}]", (2, 4, 5)),
    "flatten_dense": ("[flatten, {dense: 5}, {dense: {units: 3, bias: false}}]", (2, 3, 3)),
    "batchnorm_images": ("[{bn: {momentum: 0.3, eps: 0.001}}]", (3, 4, 4)),
    "batchnorm_flat": ("[flatten, bn]", (5, 1, 1)),
    "lrn": ("[{lrn: {size: 5, alpha: 0.001, beta: 0.75, k: 2}}]", (7, 3, 3)),
    "lrn_even_large_alpha": ("[{lrn: {size: 4, alpha: 0.5, beta: 1.2, k: 1}}]", (6, 2, 3)),
    # windows wider than the channels: clamped to them, still divided by size
    "lrn_size_past_channels": ("[{lrn: {size: 9, alpha: 0.3, beta: 0.75, k: 1}}]", (3, 2, 2)),
    "lrn_even_size_past_channels": ("[{lrn: {size: 1000, alpha: 50.0, beta: 0.6, k: 1}}]", (4, 2, 3)),
    "layernorm": ("[ln, flatten, {ln: {eps: 0.01}}]", (3, 2, 4)),
    "relu": ("[relu]", (3, 4, 4)),
    "leaky_relu": ("[{leaky_relu: {slope: 0.2}}]", (3, 4, 4)),
    "elu": ("[{elu: {alpha: 0.5}}]", (3, 4, 4)),
    "sigmoid": ("[sigmoid]", (3, 4, 4)),
    "tanh": ("[tanh]", (3, 4, 4)),
    "softmax": ("[softmax, flatten, softmax]", (4, 2, 2)),
    "maxout": ("[{maxout: 3}]", (6, 2, 2)),
    "concat": ("[{concat: [[{conv: {filters: 2, kernel: 1}}], [{maxpool: {kernel: 3, stride: 1, padding: 1}}], []]}]", (2, 4, 4)),
    "add_projection": ("[{add: [[{conv: {filters: 3, kernel: 3, stride: 2, padding: 1}}, bn, relu], "
                       "[{conv: {filters: 3, kernel: 1, stride: 2}}, bn]]}, relu]", (2, 6, 6)),
    "add_identity": ("[{add: [[relu, {conv: {filters: 2, kernel: 3, padding: 1}}], []]}]", (2, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_kind_matches_torch(case):
    layers, shape = CASES[case]
    compare(net(layers, shape))


def test_dropout_matches_torch_conventions():
    network = net("[{dropout: 0.4}]", (1000,))
    m = compare(network, training=False)  # inference: the identity, as torch's eval mode
    x = np.ones((4, 1000), dtype=np.float32)
    ours = m.forward(x, training=True)
    theirs = F.dropout(torch.ones(4, 1000), 0.4, training=True).numpy()
    # both scale survivors by 1/(1 − p) at training time (inverted dropout)
    assert np.allclose(np.unique(ours), [0, 1 / 0.6]) and np.allclose(np.unique(theirs), [0, 1 / 0.6])
    r = np.random.default_rng(0).standard_normal(ours.shape).astype(np.float32)
    assert np.allclose(m.backward(r), r * (ours != 0) / 0.6, rtol=1e-6, atol=0)


def test_lenet5_end_to_end():
    network = load("lenet5")
    compare(network, batch=4)


def test_alexnet_end_to_end_forward():
    compare(load("alexnet"), batch=1, training=False)


@pytest.mark.parametrize("name, shape", [("googlenet", (3, 224, 224)), ("resnet18", (3, 64, 64))])
def test_branched_networks_end_to_end(name, shape):
    network = load(name, shape)
    has_dropout = any(leaf.kind == "dropout" for leaf in network.leaves())
    compare(network, batch=2, training=not has_dropout)


def test_same_weights_give_same_forward_in_float64_too():
    network = net("[{conv: {filters: 4, kernel: 3, stride: 2, padding: 1}}, bn, relu, {lrn: {size: 3}}]", (3, 7, 7))
    m = build(network, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 7))
    y = m.forward(x)
    P, B = tensors(m.params), tensors(m.buffers)
    yt = torch_run(network, network.root, torch.tensor(x), P, B, False)
    assert np.abs(y - yt.numpy()).max() < 1e-12
