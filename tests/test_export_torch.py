"""PyTorch export: the generated file against torch itself (it must run there), the executor
(same weights in, same outputs out) and the calculator (the same parameter counts).

Bundled specs run at a reduced input (the architecture whole, the images small): twelve of
them by default, one or more of each family; ARCHCALC_SLOW_TESTS=1 runs all of them, at the
reduced input and at their own. Small specs cover every layer kind and every option the exporter
treats apart (same / uneven padding, padding modes, ceil pools, both LRN forms ...).
"""

from __future__ import annotations

import importlib.util
import io
import os
import py_compile
import sys
import tokenize

import numpy as np
import pytest

from archcalc.calc.analyze import analyze
from archcalc.errors import ArchcalcError
from archcalc.exporters.torch_export import KIND_MAP, RESERVED, export, torch_source
from archcalc.nn.layers import KINDS
from archcalc.nn.network import build
from archcalc.nn.weights import load_weights, save_weights
from archcalc.spec import bundled_names, load, loads
from archcalc.spec.layers import MODELS

SLOW = os.environ.get("ARCHCALC_SLOW_TESTS") == "1"

# The input each bundled spec runs at by default: small, but large enough for every layer.
# (AlexNet and VGG flatten a fixed map into their first dense layer: smaller images give
# them a smaller first dense layer, still exported and compared like the rest.)
SMALL = {"inception_v3": 75, "googlenet": 224, "alexnet": 67, "alexnet_1gpu": 67,
         "alexnet_torchvision": 63, "squeezenet1_0": 63, "unet": 188, "fcn_resnet50": 64}
SMALL_SIDE = 32
# Run by default (one of each family and every kind the bundled specs use, about 10 s in
# all); the others' depth or size adds time, not coverage, so they wait for the slow run.
DEFAULT = {"lenet5", "alexnet_1gpu", "resnet18", "densenet121", "efficientnet_b0",
           "fcn_resnet50", "inception_v3", "mobilenet_v2", "mobilenet_v3_large",
           "squeezenet1_0", "unet", "vgg11"}


# ---- helpers ------------------------------------------------------------------------------------

def import_source(source: str, tmp_path, name: str = "exported"):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scramble(model, seed: int = 1) -> None:
    """Batch and layer norms start as the identity (γ 1, β 0, mean 0, var 1) and biases at
    0; give them values, so that every array's mapping is tested, not only the kernels'."""
    rng = np.random.default_rng(seed)
    for name, arr in {**model.params, **model.buffers}.items():
        if name.endswith("running_var") or np.all(arr == 1):
            arr[...] = rng.uniform(0.5, 1.5, arr.shape)
        elif name.endswith(("running_mean", "bias")):
            arr[...] = rng.normal(0, 0.1, arr.shape)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def state_names(module, net) -> set[str]:
    """The archcalc names of the torch module's arrays, through the file's own mapping."""
    to_archcalc = getattr(module, "archcalc_name", lambda key: key)
    return {to_archcalc(k) for k in net.state_dict() if not k.endswith("num_batches_tracked")}


def counts(net) -> tuple[int, int]:
    """(trainable, non-trainable) values of a torch module: parameters that require a
    gradient, and the frozen ones plus the running statistics."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    stats = sum(b.numel() for name, b in net.named_buffers()
                if not name.endswith("num_batches_tracked"))
    return trainable, frozen + stats


def check_network(network, tmp_path, *, batch: int = 2, seed: int = 0):
    """Export, import, load the executor's weights through the file's own loader, compare
    outputs, counts and names; return (module, torch net, executor model, input)."""
    torch = pytest.importorskip("torch")
    exported = export(network)
    module = import_source(exported.source, tmp_path)
    model = build(network, seed=seed)
    scramble(model, seed + 1)
    weights = tmp_path / "weights.npz"
    save_weights(model, weights)
    net = getattr(module, exported.class_name)(weights=str(weights)).eval()

    totals = analyze(network).totals
    assert counts(net) == (totals.trainable_params, totals.non_trainable_params)
    assert state_names(module, net) == set(model.params) | set(model.buffers)
    assert {**exported.params, **exported.buffers} == \
        {k: v.shape for k, v in {**model.params, **model.buffers}.items()}

    x = np.random.default_rng(seed + 2).standard_normal(
        (batch,) + tuple(network.input_shape)).astype(np.float32)
    want = model.forward(x, training=False)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert relative_error(got, want) < 1e-4
    return module, net, model, x


# ---- the kinds ----------------------------------------------------------------------------------

def test_every_kind_has_a_mapping():
    assert set(KIND_MAP) == set(MODELS) == set(KINDS)


def test_reserved_names_cover_torch():
    nn = pytest.importorskip("torch").nn
    public = {n for cls in (nn.Module, nn.ModuleDict, nn.ModuleList) for n in dir(cls())
              if not n.startswith("_")}
    assert public <= RESERVED


def net_of(layers: str, shape=(3, 12, 13), extra: str = ""):
    return loads(f"name: case\ninput: {list(shape)}\n{extra}layers: {layers}\n")


CASES = {
    "conv_same": "[{conv: {filters: 4, kernel: 3, stride: 2, padding: same}}, "
                 "{conv: {filters: 4, kernel: [2, 4], padding: same, dilation: [1, 2]}}, "
                 "{conv: {filters: 4, kernel: 4, stride: [3, 2], padding: same, "
                 "padding_mode: reflect, dilation: 1}}]",
    "conv_uneven": "[{conv: {filters: 6, kernel: 3, padding: [0, 1, 2, 1], bias: false}}, "
                   "{conv: {filters: 6, kernel: 3, padding: 2, padding_mode: reflect}}, "
                   "{conv: {filters: 6, kernel: 3, padding: [1, 2], padding_mode: replicate, "
                   "groups: 3}}, "
                   "{conv: {filters: 4, kernel: 3, padding: [1, 0, 2, 1], "
                   "padding_mode: circular}}, {conv: {filters: 4, kernel: 1, stride: 2}}]",
    "conv_transpose": "[{conv_transpose2d: {filters: 4, kernel: 3, stride: 2, padding: 1, "
                      "output_padding: 1}}, "
                      "{conv_transpose2d: {filters: 2, kernel: [2, 3], stride: [2, 1], "
                      "padding: [0, 1, 1, 0], groups: 2, dilation: [1, 2], bias: false}}, "
                      "{conv_transpose2d: {filters: 2, kernel: 3, stride: 3, "
                      "padding: [0, 1, 0, 0], output_padding: 2}}]",
    "pools": "[{maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}, "
             "{avgpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}}, "
             "{maxpool: {kernel: [3, 2], stride: 1}}]",
    "pools_same": "[{maxpool: {kernel: 3, stride: 2, padding: same}}, "
                  "{avgpool: {kernel: 2, stride: 1, padding: same}}, "
                  "{avgpool: {kernel: 3, stride: 2, padding: same}}]",
    "pools_uneven": "[{maxpool: {kernel: 2, stride: 2, padding: [0, 1, 0, 1]}}, "
                    "{avgpool: {kernel: 3, stride: 1, padding: [1, 0, 0, 1]}}]",
    "pools_uneven_ceil": "[{maxpool: {kernel: 2, stride: 2, padding: [0, 1, 1, 0], "
                         "ceil_mode: true}}, {avgpool: {kernel: 3, stride: 2, "
                         "padding: [1, 0, 0, 1], ceil_mode: true}}]",
    "adaptive": "[{adaptive_avgpool: [2, 3]}, {adaptive_maxpool: 2}, "
                "{global_avgpool: {keepdims: false}}, {dense: 5}]",
    "adaptive_up": "[{adaptive_maxpool: [5, 7]}, global_avgpool]",
    "upsample": "[{upsample: 2}, {upsample: {scale: [2, 1], mode: bilinear}}, "
                "{upsample: {size: [9, 11], mode: bilinear, align_corners: true}}, "
                "{upsample: {size: [5, 7]}}]",
    "pad_crop": "[{pad: {padding: [1, 2, 0, 3], mode: symmetric}}, "
                "{pad: {padding: 1, mode: reflect}}, {pad: {padding: [1, 2], mode: replicate}}, "
                "{pad: {padding: 1, value: 1.5}}, {pad: 1}, {crop: [9, 10]}, "
                "{crop: {cropping: [1, 0, 2, 1]}}, {pad: {padding: [0, 0, 3, 0], "
                "mode: symmetric}}]",
    "norms": "[batchnorm, {lrn: {size: 3, alpha: 0.01, beta: 0.75, k: 2, form: sum}}, "
             "{lrn: {size: 4, alpha: 0.001}}, layernorm, flatten, batchnorm, {dropout: 0.3}, "
             "{layernorm: {eps: 0.001}}, {dense: {units: 3, bias: false}}]",
    "activations": "[{conv: {filters: 8, kernel: 1}}, {concat: [[relu], [relu6], "
                   "[{leaky_relu: {slope: 0.2}}], [{elu: {alpha: 0.5}}], [sigmoid], [tanh], "
                   "[hardsigmoid], [hardswish], [silu], [gelu], [{gelu: {approximate: tanh}}], "
                   "[{maxout: 2}], [softmax], [{leaky_relu: {slope: 0.01}}], [elu], []]}]",
    "merges": "[{conv: {filters: 4, kernel: 3, padding: 1}}, "
              "{add: [[{conv: {filters: 4, kernel: 3, padding: 1}}, "
              "{mul: [[global_avgpool, {conv: {filters: 4, kernel: 1}}, sigmoid], []]}], []]}, "
              "{concat: [[], [{conv: {filters: 2, kernel: 1}}], "
              "[{maxpool: {kernel: 3, stride: 1, padding: 1}}, {add: [[relu], [tanh], []]}]]}, "
              "{mul: [[], [sigmoid]]}]",
    "names": "[{conv: {name: 1x1, filters: 4, kernel: 1}}, "
             "{conv: {name: a.b, filters: 4, kernel: 1}}, "
             "{name: blk, layers: [{conv: {name: train, filters: 4, kernel: 1}}, "
             "{bn: {name: items, trainable: false}}, {conv: {name: x y, filters: 4, kernel: 1, "
             "trainable: false}}, {bn: {name: '0'}}]}, "
             "{conv: {name: blk.train, filters: 4, kernel: 1}}, "
             "{conv: {name: _hidden, filters: 4, kernel: 1}}, {relu: {name: class}}]",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kinds_match_the_executor(case, tmp_path):
    extra = "separator: /\n" if case == "names" else ""
    check_network(net_of(CASES[case], extra=extra), tmp_path)


def test_flat_input_kinds(tmp_path):
    network = net_of("[batchnorm, {dense: 12}, layernorm, {maxout: 3}, {dropout: 0.2}, gelu, "
                     "{dense: 6}, softmax]", shape=(20,))
    check_network(network, tmp_path)


def test_cases_cover_every_kind():
    """Here and in tests/test_export_sequences.py (the sequence kinds and options)."""
    from test_export_sequences import CASES as SEQUENCE_CASES, network
    seen = {leaf.kind for case, text in CASES.items() if case != "names"
            for leaf in net_of(text).leaves()}
    seen |= {leaf.kind for case in SEQUENCE_CASES for leaf in network(case).leaves()}
    assert seen == set(MODELS)


def test_frozen_batchnorm_keeps_running_statistics(tmp_path):
    """A frozen batch norm normalises with its running statistics in training too (as the
    executor's does): the module's train() leaves it in eval mode."""
    torch = pytest.importorskip("torch")
    network = net_of("[{conv: {filters: 4, kernel: 3}}, {bn: {trainable: false}}, relu]")
    module, net, model, x = check_network(network, tmp_path, batch=4)
    net.train()
    want = model.forward(x, training=True)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert relative_error(got, want) < 1e-4


# ---- the bundled specs --------------------------------------------------------------------------

def small(name: str):
    network = load(name)
    side = SMALL.get(name, SMALL_SIDE)
    return network.with_input((network.input_shape[0], side, side))


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_small_input(name, tmp_path):
    if name not in DEFAULT and not SLOW:
        pytest.skip("a larger spec of a family tested already: set ARCHCALC_SLOW_TESTS=1")
    check_network(small(name), tmp_path, batch=1)


@pytest.mark.skipif(not SLOW, reason="full-size inputs: set ARCHCALC_SLOW_TESTS=1")
@pytest.mark.parametrize("name", bundled_names())
def test_bundled_own_input(name, tmp_path):
    check_network(load(name), tmp_path, batch=1)


# ---- back into archcalc -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "names"])
def test_trained_weights_come_back(name, tmp_path):
    """torch → save_archcalc_weights → archcalc's own loader (strict) → the executor gives
    the torch module's outputs for the changed weights; the names case uses '/', renames
    and frozen layers."""
    torch = pytest.importorskip("torch")
    network = small(name) if name in DEFAULT else net_of(CASES[name], extra="separator: /\n")
    module, net, model, x = check_network(network, tmp_path, batch=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name_, b in net.named_buffers():
            if name_.endswith("running_mean"):
                b.add_(0.05)
        got = net(torch.from_numpy(x)).numpy()
    back = tmp_path / "back.npz"
    module.save_archcalc_weights(net, str(back))
    again = build(network, seed=5)
    load_weights(again, back, strict=True)
    assert relative_error(got, again.forward(x, training=False)) < 1e-4
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_loader_reads_checkpoints_and_names_bad_files(tmp_path):
    """The file's reader takes a checkpoint (model part among optimizer arrays) and a
    float64 file; a file of another spec is refused by torch with the array's name."""
    torch = pytest.importorskip("torch")
    from archcalc.nn.weights import write_archive

    network = load("lenet5")
    module = import_source(torch_source(network), tmp_path)
    model = build(network, seed=3, dtype="float64")
    parts = {"model": model.state_dict(),
             "optimizer": {"fc1.weight/m": np.ones((120, 400))}}
    write_archive(tmp_path / "ckpt.npz", parts, {"kind": "checkpoint"})
    net = module.Lenet5(weights=str(tmp_path / "ckpt.npz"))
    assert torch.equal(net.fc1.weight, torch.from_numpy(model.params["fc1.weight"]).float())
    other = build(small("resnet18"))
    save_weights(other, tmp_path / "other.npz")
    with pytest.raises(RuntimeError, match="conv1.weight|layer1"):
        module.Lenet5(weights=str(tmp_path / "other.npz"))


# ---- the weights given to the exporter ----------------------------------------------------------

def test_export_with_weights_loads_them_by_default(tmp_path):
    torch = pytest.importorskip("torch")
    network = load("lenet5")
    model = build(network, seed=7)
    save_weights(model, tmp_path / "w.npz")
    module = import_source(torch_source(network, weights=tmp_path / "w.npz"), tmp_path)
    net = module.Lenet5()
    assert torch.equal(net.conv1.weight, torch.from_numpy(model.params["conv1.weight"]))
    assert not torch.equal(module.Lenet5(weights=None).conv1.weight, net.conv1.weight)


def test_export_refuses_weights_of_another_shape(tmp_path):
    save_weights(build(net_of("[{conv: {filters: 4, kernel: 3}}]")), tmp_path / "w.npz")
    with pytest.raises(ArchcalcError, match="conv1.weight' has shape 4×3×3×3, the module "
                                            "needs 5×3×3×3"):
        torch_source(net_of("[{conv: {filters: 5, kernel: 3}}]"), weights=tmp_path / "w.npz")
    with pytest.raises(ArchcalcError, match="'fc1.weight' is missing"):
        torch_source(net_of("[{conv: {filters: 4, kernel: 3}}, flatten, {dense: 2}]"),
                     weights=tmp_path / "w.npz")
    save_weights(build(net_of("[{conv: {filters: 4, kernel: 3}}, {conv: {filters: 2, "
                              "kernel: 1}}]")), tmp_path / "two.npz")
    with pytest.raises(ArchcalcError, match="'conv2.weight' is not in this spec"):
        torch_source(net_of("[{conv: {filters: 4, kernel: 3}}]"), weights=tmp_path / "two.npz")


# ---- reads like a person wrote it ---------------------------------------------------------------

def pyflakes_messages(source: str) -> list[str]:
    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    out = io.StringIO()
    check(source, "exported.py", Reporter(out, out))
    return out.getvalue().splitlines()


SEQUENCES = ("stacked_dropout_every_step_dense_softmax", "embedding_lstm_dense",
             "cnn_to_sequence_width_lstm", "gru_reset_before_bidirectional_one_bias")


@pytest.mark.parametrize("name", bundled_names() + sorted(CASES) + list(SEQUENCES))
def test_reads_like_code_a_person_wrote(name):
    pytest.importorskip("pyflakes")
    if name in CASES:
        network = net_of(CASES[name], extra="separator: /\n" if name == "names" else "")
    elif name in SEQUENCES:
        from test_export_sequences import network as sequence_network
        network = sequence_network(name)
    else:
        network = load(name)
    source = torch_source(network)
    lines = source.split("\n")
    assert pyflakes_messages(source) == []
    assert max(len(line) for line in lines) <= 100
    assert not any(line != line.rstrip() for line in lines)
    assert "\n\n\n\n" not in source
    # comments say why, a handful per file whatever its size, never one per layer
    comments = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT]
    assert len(comments) <= 8, [t.string for t in comments]
    assert "generated" not in source.lower()
    compile(source, "exported.py", "exec")


def test_attribute_names_are_the_spec_names():
    """resnet18's modules are reached as its names read: layer2[0].downsample["0"]."""
    source = torch_source(load("resnet18"))
    assert "self.layer2[0].conv1 = nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False)" \
        in source
    assert 'self.layer2[0].downsample["0"] = nn.Conv2d(64, 128, 1, stride=2, bias=False)' \
        in source
    assert "x = y + x" in source
    googlenet = torch_source(load("googlenet"))
    assert 'self.inception_3a["5x5_reduce"] = nn.Conv2d(192, 16, 1)' in googlenet
    assert "x = torch.cat([y1, y2, y3, y4], 1)" in googlenet


def test_torch_is_not_imported_by_the_exporter():
    """Writing the file needs no torch (archcalc never depends on it)."""
    import subprocess

    code = ("import sys; from archcalc.spec import load; "
            "from archcalc.exporters.torch_export import torch_source; "
            "torch_source(load('resnet18')); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ['x""" + __import__("os").getcwd() + """', "a\\N{b}\\x", "q'\"z"])
def test_a_hostile_spec_name_stays_text_in_the_generated_file(name, tmp_path):
    """The spec's name reaches the module's docstrings: quotes and backslashes are escaped,
    so no name can close the docstring and run as code (nor break the file's compilation)."""
    import json
    network = loads(json.dumps({"name": name, "input": [1, 4, 4],
                                "layers": [{"conv": {"filters": 1, "kernel": 3}}]}),
                    json_mode=True)
    text = torch_source(network)
    path = tmp_path / "hostile.py"
    path.write_text(text, encoding="utf-8")
    py_compile.compile(str(path), doraise=True)
    code = compile(text, str(path), "exec")
    assert "__import__" not in code.co_names and "getcwd" not in code.co_names
    doc = next(line for line in text.splitlines() if "exported by archcalc" in line)
    assert json.dumps(name)[1:-1] in doc


def test_weights_for_the_module_are_checked_as_the_executor_checks_them(tmp_path):
    """NaN and non-float arrays are refused at export (as the ONNX path refuses them), and a
    format-1 .npz (arrays under their own names) loads in the generated module."""
    torch = pytest.importorskip("torch")
    network = load("lenet5")
    model = build(network, seed=3)
    state = {**model.params, **model.buffers}
    bad = dict(state, **{"conv1.weight": np.full_like(state["conv1.weight"], np.nan)})
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(ArchcalcError, match="NaN or infinite"):
        torch_source(network, weights=tmp_path / "nan.npz")
    np.savez(tmp_path / "int.npz", **dict(state, **{"fc1.bias": np.zeros(120, np.int64)}))
    with pytest.raises(ArchcalcError, match="holds int64 values"):
        torch_source(network, weights=tmp_path / "int.npz")
    np.savez(tmp_path / "v1.npz", **state)  # format 1: no header, names as members
    path = tmp_path / "lenet_v1.py"
    path.write_text(torch_source(network, weights=tmp_path / "v1.npz"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("lenet_v1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Lenet5().eval()
    x = np.random.default_rng(0).standard_normal((2, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    want = model.forward(x)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))
