"""Issue 10's proof: torchvision's classification models, exported to ONNX by torch and read by
archcalc, give torch's own figures.

For each model (built by torchvision through tests/torchvision_models.py, batch 1 at its usual
input: 224, Inception-v3 299) exported with torch.onnx.export(dynamo=False,
training=PRESERVE, opset 17) — PRESERVE keeps BatchNormalization apart from the convolutions
— archcalc's analysis of the .onnx file must equal the torch model's:
  - trainable parameters (torch's parameters) and non-trainable ones (BatchNorm's running
    mean and variance; not num_batches_tracked, which ONNX does not carry);
  - MACs, counted by forward hooks on the torch modules: a Conv2d out.numel()·C_in/groups·K_h·K_w,
    a Linear in·out;
  - every Conv2d/Linear output shape, in execution order.
For resnet18, mobilenet_v3_small and densenet121, the executor's logits on the imported
weights equal onnxruntime's on the same file (float32, max |Δ| < 1e-4 · max |logit|).

FAST models always run; the large ones (VGG, ResNet-101/152, DenseNet-161/201, Wide ResNet,
EfficientNet-B2/B3, RegNet), whose export writes up to 575 MB each, run only with
ARCHCALC_SLOW_TESTS=1 (measured on the 2-core machine: the FAST set about 70 s, the rest
several minutes more). Skipped without torch, torchvision or onnx.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from torchvision_models import model

SLOW = os.environ.get("ARCHCALC_SLOW_TESTS") == "1"

# id → (torchvision module, builder, keyword arguments, input size)
NO_AUX = {"aux_logits": False, "init_weights": False}
MODELS = {
    "alexnet": ("alexnet", "alexnet", {}, 224),
    "resnet18": ("resnet", "resnet18", {}, 224),
    "resnet34": ("resnet", "resnet34", {}, 224),
    "resnet50": ("resnet", "resnet50", {}, 224),
    "resnext50_32x4d": ("resnet", "resnext50_32x4d", {}, 224),
    "googlenet": ("googlenet", "googlenet", NO_AUX, 224),
    "inception_v3": ("inception", "inception_v3", NO_AUX, 299),
    "densenet121": ("densenet", "densenet121", {}, 224),
    "densenet169": ("densenet", "densenet169", {}, 224),
    "squeezenet1_0": ("squeezenet", "squeezenet1_0", {}, 224),
    "squeezenet1_1": ("squeezenet", "squeezenet1_1", {}, 224),
    "mobilenet_v2": ("mobilenetv2", "mobilenet_v2", {}, 224),
    "mobilenet_v3_small": ("mobilenetv3", "mobilenet_v3_small", {}, 224),
    "mobilenet_v3_large": ("mobilenetv3", "mobilenet_v3_large", {}, 224),
    "efficientnet_b0": ("efficientnet", "efficientnet_b0", {}, 224),
    "efficientnet_b1": ("efficientnet", "efficientnet_b1", {}, 224),
    "mnasnet0_5": ("mnasnet", "mnasnet0_5", {}, 224),
    "mnasnet1_0": ("mnasnet", "mnasnet1_0", {}, 224),
    # the large ones: ARCHCALC_SLOW_TESTS=1
    "vgg11": ("vgg", "vgg11", {}, 224),
    "vgg11_bn": ("vgg", "vgg11_bn", {}, 224),
    "vgg13": ("vgg", "vgg13", {}, 224),
    "vgg13_bn": ("vgg", "vgg13_bn", {}, 224),
    "vgg16": ("vgg", "vgg16", {}, 224),
    "vgg16_bn": ("vgg", "vgg16_bn", {}, 224),
    "vgg19": ("vgg", "vgg19", {}, 224),
    "vgg19_bn": ("vgg", "vgg19_bn", {}, 224),
    "resnet101": ("resnet", "resnet101", {}, 224),
    "resnet152": ("resnet", "resnet152", {}, 224),
    "wide_resnet50_2": ("resnet", "wide_resnet50_2", {}, 224),
    "densenet161": ("densenet", "densenet161", {}, 224),
    "densenet201": ("densenet", "densenet201", {}, 224),
    "efficientnet_b2": ("efficientnet", "efficientnet_b2", {}, 224),
    "efficientnet_b3": ("efficientnet", "efficientnet_b3", {}, 224),
    "regnet_x_400mf": ("regnet", "regnet_x_400mf", {}, 224),
    "regnet_y_400mf": ("regnet", "regnet_y_400mf", {}, 224),
}
FAST = ("alexnet", "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "googlenet",
        "inception_v3", "densenet121", "densenet169", "squeezenet1_0", "squeezenet1_1",
        "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
        "efficientnet_b1", "mnasnet0_5", "mnasnet1_0")
LOGITS = ("resnet18", "mobilenet_v3_small", "densenet121")


def _params(name: str):
    marks = [] if name in FAST else [
        pytest.mark.skipif(not SLOW, reason="a large model: set ARCHCALC_SLOW_TESTS=1")]
    return pytest.param(name, id=name, marks=marks)


def _importer() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("archcalc.importers.onnx_import",
                        reason="the ONNX importer is not in this checkout yet")


def build_and_export(name: str, folder):
    """(torch model, its example input, path of its ONNX export in `folder`)."""
    _importer()
    torch = pytest.importorskip("torch")
    module, builder, kwargs, size = MODELS[name]
    torch.manual_seed(0)
    net = model(module, builder, **kwargs)
    x = torch.randn(1, 3, size, size)
    path = folder / f"{name}.onnx"
    torch.onnx.export(net, x, str(path), dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, opset_version=17)
    return net, x, path


def torch_figures(net, x):
    """(trainable, non-trainable, MACs, [(kind, output shape)] of every Conv2d/Linear in the
    order they run) of a torch model at input x (batch 1)."""
    import torch

    layers: list[tuple[str, tuple[int, ...]]] = []
    macs = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs[0] += output.numel() * module.in_channels // module.groups * kh * kw
            layers.append(("conv2d", tuple(output.shape[1:])))
        else:
            macs[0] += module.in_features * module.out_features
            layers.append(("dense", tuple(output.shape[1:])))

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in net.named_buffers()
                  if n.endswith(("running_mean", "running_var")))
    return trainable, buffers, macs[0], layers


def archcalc_figures(path):
    from archcalc.calc import analyze
    from archcalc.spec import load

    analysis = analyze(load(str(path)))
    t = analysis.totals
    layers = [(r.type, tuple(r.output_shape)) for r in analysis.rows
              if r.type in ("conv2d", "dense")]
    return t.trainable_params, t.non_trainable_params, t.macs, layers


@pytest.mark.parametrize("name", [_params(n) for n in MODELS])
def test_imported_model_has_torchs_figures(name, tmp_path):
    net, x, path = build_and_export(name, tmp_path)
    try:
        want = torch_figures(net, x)
        got = archcalc_figures(path)
    finally:
        path.unlink()  # up to 575 MB each: not left for the session's end
    assert got[0] == want[0], f"trainable: archcalc {got[0]:,}, torch {want[0]:,}"
    assert got[1] == want[1], f"non-trainable: archcalc {got[1]:,}, torch {want[1]:,}"
    assert got[2] == want[2], f"MACs: archcalc {got[2]:,}, torch {want[2]:,}"
    assert len(got[3]) == len(want[3])
    for index, (ours, theirs) in enumerate(zip(got[3], want[3])):
        assert ours == theirs, f"conv/linear #{index}: archcalc {ours}, torch {theirs}"


def imported_weights(path, tmp_path):
    """The imported weights as the executor's state dict, through `archcalc import
    --weights-out` (skips while the importer writes no weights)."""
    from click.testing import CliRunner

    from archcalc.cli import main
    from archcalc.nn.weights import read_npz

    pytest.importorskip("archcalc.importers.onnx_weights",
                        reason="the ONNX importer reads no weights in this checkout yet")
    assert "--weights-out" in CliRunner().invoke(main, ["import", "--help"]).output
    npz = tmp_path / "weights.npz"
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "m.yaml"),
                                       "--weights-out", str(npz)])
    assert result.exit_code == 0, result.output
    return read_npz(npz)


@pytest.mark.parametrize("name", LOGITS)
def test_executor_logits_equal_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from archcalc.nn import build
    from archcalc.spec import load

    _, x, path = build_and_export(name, tmp_path)
    state = imported_weights(path, tmp_path)
    executor = build(load(str(path)))
    executor.load_state_dict(state, strict=True)
    inputs = x.numpy().astype(np.float32)
    ours = executor.forward(inputs, training=False).reshape(1, -1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: inputs})[0].reshape(1, -1)
    path.unlink()
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    error = float(np.max(np.abs(ours - theirs)))
    scale = float(np.max(np.abs(theirs)))
    assert error < 1e-4 * scale, f"max |Δ| {error:.3g}, largest |logit| {scale:.3g}"
