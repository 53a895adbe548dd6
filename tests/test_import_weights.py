"""ONNX weights (archcalc/importers/onnx_weights.py): the imported network, run by the NumPy
executor on the file's own weights, gives onnxruntime's logits (float32, max error below
1e-4 of the largest logit), and `archcalc check model.onnx` runs on those weights.

The batch-norm statistics are drawn at random before export: with PyTorch's defaults (mean
0, variance 1, scale 1, shift 0) swapping the mean and the variance, or the scale and the
shift, would go unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn = torch.nn
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.importers import (imported_weights, load_with_weights,  # noqa: E402
                                state_for, write_weights_npz)
from archcalc.nn.network import build  # noqa: E402
from archcalc.nn.weights import load_weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning", "ignore::FutureWarning")
TOLERANCE = 1e-4


# ---- helpers ------------------------------------------------------------------------------
def randomise_batchnorm(model, seed: int = 0):
    """Seeded non-default statistics and affine parameters in every BatchNorm2d."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
    return model


def export(model, shape, path: Path, *, preserve: bool = True) -> str:
    extra = {"training": torch.onnx.TrainingMode.PRESERVE} if preserve else {}
    torch.onnx.export(model.eval(), torch.randn(1, *shape), str(path), dynamo=False,
                      opset_version=17, **extra)
    return str(path)


def onnxruntime_output(path: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def executor_output(path: str, x: np.ndarray):
    """(the executor's output on the file's weights, the imported network)."""
    network, table = load_with_weights(path, None)
    model = build(network, dtype="float32")
    model.load_state_dict(state_for(model, table, path), strict=True)
    return model.forward(x, training=False), network


def sample(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, *shape), dtype=np.float32)


def assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    top = float(np.abs(reference).max())
    assert top > 1e-3                        # a real signal, not a network of zeros
    assert ours.shape == reference.shape
    assert float(np.abs(ours - reference).max()) < TOLERANCE * top


# ---- torchvision models against onnxruntime ------------------------------------------------
@pytest.mark.parametrize("module, builder", [("resnet", "resnet18"),
                                             ("mobilenetv3", "mobilenet_v3_small"),
                                             ("densenet", "densenet121")])
def test_torchvision_logits_equal_onnxruntime(tmp_path, module, builder):
    from torchvision_models import model as tv
    torch.manual_seed(0)
    net = randomise_batchnorm(tv(module, builder))
    path = export(net, (3, 64, 64), tmp_path / f"{builder}.onnx")
    x = sample((3, 64, 64))
    ours, network = executor_output(path, x)
    assert any(leaf.kind == "batchnorm" for leaf in network.leaves())  # PRESERVE kept them
    assert_close(ours, onnxruntime_output(path, x))


class Small(nn.Module):
    """Conv + BN (folded by the exporter), a grouped ConvTranspose, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.fc = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(self.up(x), 1))


def test_folded_batchnorm_and_conv_transpose_layout(tmp_path):
    torch.manual_seed(1)
    net = randomise_batchnorm(Small(), seed=1)
    path = export(net, (3, 4, 4), tmp_path / "small.onnx", preserve=False)
    x = sample((3, 4, 4), seed=1)
    ours, network = executor_output(path, x)
    kinds = [leaf.kind for leaf in network.leaves()]
    assert "batchnorm" not in kinds and "conv_transpose2d" in kinds  # BN folded into conv
    assert_close(ours, onnxruntime_output(path, x))


# ---- hand-built dense graphs ---------------------------------------------------------------
def dense_file(tmp_path, nodes, inits, name) -> str:
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [numpy_helper.from_array(a, n)
                                              for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_gemm_without_transb_and_matmul_add(tmp_path):
    """Gemm(transB=0) reads W as (in, out) and MatMul + Add as x·W + b: both become the
    executor's (out, in) weight; the reference is plain NumPy."""
    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((6, 4), dtype=np.float32), rng.standard_normal(
        (1, 4), dtype=np.float32)
    w2, b2 = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal(
        3, dtype=np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="/fc1/Gemm"),
             helper.make_node("MatMul", ["h", "w2"], ["m"], name="/fc2/MatMul"),
             helper.make_node("Add", ["m", "b2"], ["y"], name="/fc2/Add")]
    path = dense_file(tmp_path, nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, "d.onnx")
    x = sample((6,), seed=3)
    ours, _ = executor_output(path, x)
    reference = (x @ w1 + b1) @ w2 + b2
    assert_close(ours, reference)
    assert_close(ours, onnxruntime_output(path, x))


def test_an_initializer_of_the_wrong_shape_names_both(tmp_path):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Gemm", ["x", "w", "fc.bias"], ["y"], name="/fc/Gemm", transB=1)]
    inits = {"w": rng.standard_normal((4, 6), dtype=np.float32),
             "fc.bias": rng.standard_normal(5, dtype=np.float32)}   # 5 biases for 4 units
    path = dense_file(tmp_path, nodes, inits, "bad.onnx")
    # refused when the graph is read, before any weight is: the bias does not fit the units
    with pytest.raises(ArchcalcError) as info:
        load_with_weights(path, None)
    line = info.value.render()
    assert "Gemm whose bias (5) is not one value per unit (4) (node '/fc/Gemm', #0)" in line
    assert "\n" not in line


# ---- the weights file and the check command ------------------------------------------------
def test_weights_npz_loads_into_the_imported_network(tmp_path):
    torch.manual_seed(2)
    net = randomise_batchnorm(Small(), seed=2)
    path = export(net, (3, 4, 4), tmp_path / "small.onnx")
    network, table = load_with_weights(path, None)
    target = tmp_path / "small.npz"
    write_weights_npz(target, imported_weights(network, table, path), source=path)
    model = build(network, seed=5)                 # other random weights, then the file's
    load_weights(model, target, strict=True)
    x = sample((3, 4, 4), seed=2)
    assert_close(model.forward(x), onnxruntime_output(path, x))


def test_check_runs_an_onnx_file_on_its_own_weights(run, tmp_path):
    torch.manual_seed(0)
    path = export(randomise_batchnorm(Small()), (3, 4, 4), tmp_path / "small.onnx")
    result = run("check", path)
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("weights: the file's own") and "small.onnx" in first
    result = run("check", path, "--format", "json", "--dtype", "float64")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["weights"].startswith("the file's own")
    # --weights loads into the same hook: an archive of the wrong arrays is one line
    wrong = tmp_path / "wrong.npz"
    write_weights_npz(wrong, {"conv.weight": np.zeros((1, 1, 1, 1), np.float32)})
    result = run("check", path, "--weights", str(wrong))
    assert result.exit_code != 0
    assert "weights: array 'conv.weight' has shape 1×1×1×1" in result.output
