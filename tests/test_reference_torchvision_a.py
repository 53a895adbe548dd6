"""Reference networks, part A: torchvision's AlexNet, VGG-16-BN, DenseNet-121, Inception-v3
and SqueezeNet 1.0, exact against torchvision 0.28; and the bundled AlexNet's LRN in the
paper's form.

Without torch: each spec's totals (trainable, non-trainable, MACs) and output shape, every
conv, pool and dense output shape of AlexNet and SqueezeNet written out, counts and named
shapes of the larger three. With torch: the same model built by torchvision, its parameter
counts, and every conv, pool and linear layer's output shape and MACs in execution order,
including the pools torchvision calls as functions (Inception's branch pools, DenseNet's
final pool), which a module hook cannot see.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from archcalc.calc import analyze
from archcalc.nn import build
from archcalc.spec import load, loads
from torchvision_models import model

# name, input, trainable, non-trainable (BN running mean + var), MACs per image, output.
# Trainable parameters and MACs are issue 9's (torchvision 0.28's counts); the running
# statistics are torchvision's buffers (without num_batches_tracked), derived by hand below.
TOTALS = [
    ("alexnet_torchvision", (3, 224, 224), 61_100_840, 0, 714_188_480, (1000,)),
    ("vgg16_bn", (3, 224, 224), 138_365_992, 8_448, 15_470_264_320, (1000,)),
    ("densenet121", (3, 224, 224), 7_978_856, 83_648, 2_834_161_664, (1000,)),
    ("inception_v3", (3, 299, 299), 23_834_568, 34_432, 5_713_216_096, (1000,)),
    ("squeezenet1_0", (3, 224, 224), 1_248_424, 0, 818_924_576, (1000,)),
]
FAMILIES = {"alexnet_torchvision": "classic", "vgg16_bn": "classic", "densenet121": "dense",
            "inception_v3": "inception", "squeezenet1_0": "squeeze", "alexnet": "classic"}

CONV = ("conv2d",)
POOLS = ("maxpool", "avgpool", "adaptive_avgpool", "global_avgpool")
DENSE = ("dense",)


def rows_of(name: str):
    return analyze(load(name)).rows


def layer_shapes(name: str) -> list[tuple[str, tuple]]:
    """(name, output shape) of every conv, pool and dense row, in order."""
    return [(r.name, r.output_shape) for r in rows_of(name) if r.type in CONV + POOLS + DENSE]


def counts(name: str) -> tuple[int, int, int]:
    rows = rows_of(name)
    return tuple(sum(r.type in kinds for r in rows) for kinds in (CONV, POOLS, DENSE))


# ---- without torch -------------------------------------------------------------------------

@pytest.mark.parametrize("name, shape, trainable, frozen, macs, output", TOTALS,
                         ids=[t[0] for t in TOTALS])
def test_totals(name, shape, trainable, frozen, macs, output):
    analysis = analyze(load(name))
    assert analysis.network.input_shape == shape
    assert analysis.totals.trainable_params == trainable
    assert analysis.totals.non_trainable_params == frozen
    assert analysis.totals.macs == macs
    assert analysis.output_shape == output


@pytest.mark.parametrize("name, family", FAMILIES.items())
def test_family(name, family):
    assert load(name).family == family


def test_alexnet_torchvision_every_layer():
    # conv1 padded by 2: (224 + 4 − 11)/4 + 1 = 55.25 → 55; 3×3/2 pools: 55 → 27 → 13 → 6.
    assert layer_shapes("alexnet_torchvision") == [
        ("conv1", (64, 55, 55)), ("pool1", (64, 27, 27)),
        ("conv2", (192, 27, 27)), ("pool2", (192, 13, 13)),
        ("conv3", (384, 13, 13)), ("conv4", (256, 13, 13)), ("conv5", (256, 13, 13)),
        ("pool5", (256, 6, 6)), ("avgpool", (256, 6, 6)),
        ("fc6", (4096,)), ("fc7", (4096,)), ("fc8", (1000,)),
    ]


def test_alexnet_torchvision_adaptive_pool_keeps_the_classifier_at_other_sizes():
    # At 320 the features end at 9×9; the adaptive pool still hands fc6 256·6·6 = 9,216.
    rows = {r.name: r for r in analyze(load("alexnet_torchvision", (3, 320, 320))).rows}
    assert rows["pool5"].output_shape == (256, 9, 9)
    assert rows["avgpool"].output_shape == (256, 6, 6)
    assert rows["fc6"].trainable_params == 9216 * 4096 + 4096


def _fire(squeeze: int, expand: int, size: int) -> list[tuple]:
    return [(squeeze, size, size), (expand, size, size), (expand, size, size)]


def test_squeezenet1_0_every_layer():
    # conv1 7×7/2: (224 − 7)/2 + 1 = 109.5 → 109; ceil-mode 3×3/2 pools: 109 → 54, 54 → 27
    # (26.5 ceiled), 27 → 13. Fire modules (Table 1): s1x1, e1x1, e3x3.
    expected = ([(96, 109, 109), (96, 54, 54)]
                + _fire(16, 64, 54) + _fire(16, 64, 54) + _fire(32, 128, 54) + [(256, 27, 27)]
                + _fire(32, 128, 27) + _fire(48, 192, 27) + _fire(48, 192, 27)
                + _fire(64, 256, 27) + [(512, 13, 13)]
                + _fire(64, 256, 13) + [(1000, 13, 13), (1000, 1, 1)])
    got = layer_shapes("squeezenet1_0")
    assert [shape for _, shape in got] == expected
    names = [name for name, _ in got]
    assert names[:5] == ["conv1", "maxpool1", "fire2.squeeze", "fire2.expand1x1",
                         "fire2.expand3x3"]
    assert names[-2:] == ["conv10", "avgpool10"]
    rows = {r.name: r for r in rows_of("squeezenet1_0")}
    assert rows["fire9.cat"].output_shape == (512, 13, 13)
    assert rows["conv10"].trainable_params == 512 * 1000 + 1000  # no dense layer at all


def test_squeezenet1_0_at_224_never_sees_the_last_row():
    # torchvision's documented 224 input does not divide evenly; the paper's 111×111 needs 227.
    warnings = analyze(load("squeezenet1_0")).warnings
    assert len(warnings) == 1
    assert warnings[0].startswith("conv1: (224 − 7 + 2·0)/2 + 1 = 109.5 → floored to 109")
    assert "the last 1 input row(s) and column(s) are never covered" in warnings[0]
    at_227 = {r.name: r.output_shape for r in analyze(load("squeezenet1_0", (3, 227, 227))).rows}
    assert (at_227["conv1"], at_227["maxpool1"], at_227["maxpool4"], at_227["maxpool8"]) == (
        (96, 111, 111), (96, 55, 55), (256, 27, 27), (512, 13, 13))


def test_vgg16_bn():
    assert counts("vgg16_bn") == (13, 5 + 1, 3)
    rows = {r.name: r for r in rows_of("vgg16_bn")}
    assert rows["block1.conv1"].output_shape == (64, 224, 224)
    assert rows["block5.pool"].output_shape == (512, 7, 7)
    assert rows["avgpool"].output_shape == (512, 7, 7)
    assert rows["fc6"].output_shape == (4096,)
    # BN: γ, β trainable and mean, var not, per channel of the 13 convs; no MACs.
    channels = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512
    plain, with_bn = analyze(load("vgg16")).totals, analyze(load("vgg16_bn")).totals
    assert with_bn.trainable_params == plain.trainable_params + 2 * channels
    assert with_bn.non_trainable_params == 2 * channels
    assert with_bn.macs == plain.macs


def test_densenet121():
    # conv0; two convs in each of 6 + 12 + 24 + 16 dense layers; three transition convs.
    assert counts("densenet121") == (1 + 2 * 58 + 3, 1 + 3 + 1, 1)
    got = {r.name: r.output_shape for r in rows_of("densenet121")}
    expected = {"conv0": (64, 112, 112), "pool0": (64, 56, 56),
                "denseblock1.1.conv1": (128, 56, 56), "denseblock1.1.conv2": (32, 56, 56),
                "denseblock1.1.cat": (96, 56, 56), "denseblock1.6.cat": (256, 56, 56),
                "transition1.pool": (128, 28, 28), "denseblock2.12.cat": (512, 28, 28),
                "transition2.pool": (256, 14, 14), "denseblock3.24.cat": (1024, 14, 14),
                "transition3.pool": (512, 7, 7), "denseblock4.16.cat": (1024, 7, 7),
                "avgpool": (1024, 1, 1), "classifier": (1000,)}
    for name, shape in expected.items():
        assert got[name] == shape, name


def test_densenet121_batchnorm_channels_by_hand():
    # norm0 64; a dense layer's norm1 sees its input c0 + i·32, norm2 the 4·32 = 128 bottleneck;
    # each block's output c0 + n·32 feeds one norm (transition1–3's, then norm5).
    channels = 64
    for c0, layers in ((64, 6), (128, 12), (256, 24), (512, 16)):
        channels += sum(c0 + i * 32 + 128 for i in range(layers)) + c0 + layers * 32
    assert analyze(load("densenet121")).totals.non_trainable_params == 2 * channels == 83_648


def test_inception_v3():
    # 5 stem convs; Mixed_5b–d 7 each; 6a 4; 6b–e 10 each; 7a 6; 7b–c 9 each.
    assert counts("inception_v3") == (5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9, 2 + 3 + 2 + 4 + 2 + 1, 1)
    got = {r.name: r.output_shape for r in rows_of("inception_v3")}
    expected = {"Conv2d_1a_3x3.conv": (32, 149, 149), "Conv2d_2b_3x3.conv": (64, 147, 147),
                "maxpool1": (64, 73, 73), "Conv2d_4a_3x3.conv": (192, 71, 71),
                "maxpool2": (192, 35, 35), "Mixed_5b.cat": (256, 35, 35),
                "Mixed_5d.cat": (288, 35, 35), "Mixed_6a.cat": (768, 17, 17),
                "Mixed_6e.cat": (768, 17, 17), "Mixed_7a.cat": (1280, 8, 8),
                "Mixed_7b.branch3x3": (768, 8, 8), "Mixed_7c.cat": (2048, 8, 8),
                "avgpool": (2048, 1, 1), "fc": (1000,)}
    for name, shape in expected.items():
        assert got[name] == shape, name


def test_inception_v3_factorisations():
    rows = {r.name: r for r in rows_of("inception_v3")}
    kernel = {name: rows[f"{name}.conv"].kernel for name in (
        "Mixed_5b.branch5x5_2", "Mixed_5b.branch3x3dbl_2", "Mixed_5b.branch3x3dbl_3",
        "Mixed_6b.branch7x7_2", "Mixed_6b.branch7x7_3",
        "Mixed_7b.branch3x3_2a", "Mixed_7b.branch3x3_2b")}
    assert kernel == {"Mixed_5b.branch5x5_2": (5, 5), "Mixed_5b.branch3x3dbl_2": (3, 3),
                      "Mixed_5b.branch3x3dbl_3": (3, 3), "Mixed_6b.branch7x7_2": (1, 7),
                      "Mixed_6b.branch7x7_3": (7, 1), "Mixed_7b.branch3x3_2a": (1, 3),
                      "Mixed_7b.branch3x3_2b": (3, 1)}
    # 1×7 then 7×1 (128 → 128 → 192 at 17×17) costs 7 + 7 taps where a 7×7 costs 49.
    assert rows["Mixed_6b.branch7x7_2.conv"].macs == 17 * 17 * 128 * 128 * 7
    assert rows["Mixed_6b.branch7x7_3.conv"].macs == 17 * 17 * 192 * 128 * 7
    # every convolution is a BasicConv2d: one BN (eps 0.001) per conv, no conv bias
    leaves = list(load("inception_v3").leaves())
    norms = [leaf.spec for leaf in leaves if leaf.kind == "batchnorm"]
    convs = [leaf.spec for leaf in leaves if leaf.kind == "conv2d"]
    assert len(norms) == len(convs) == 94
    assert {n.eps for n in norms} == {0.001} and not any(c.bias for c in convs)
    assert analyze(load("inception_v3")).totals.non_trainable_params == 2 * sum(
        c.filters for c in convs)


def test_alexnet_lrn_is_the_papers_sum_form():
    # Krizhevsky et al. 2012, §3.3: b = a / (k + α·Σa²)^β, k = 2, n = 5, α = 1e-4, β = 0.75.
    norms = [leaf.spec for leaf in load("alexnet").leaves() if leaf.kind == "lrn"]
    assert [(n.form, n.size, n.alpha, n.beta, n.k) for n in norms] == [("sum", 5, 1e-4, 0.75, 2)] * 2
    assert norms[0].alpha_per_square == 1e-4
    # the executor on one pixel of 5 channels a = 10, 20, 30, 40, 50: at channel c the window
    # is c−2 … c+2, so Σa² = 1400, 3000, 5500, 5400, 5000 (not divided by 5)
    net = loads("name: t\ninput: [5, 1, 1]\nlayers:\n"
                "  - lrn: {size: 5, alpha: 0.0001, beta: 0.75, k: 2, form: sum}\n")
    a = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    y = build(net, dtype="float64").forward(a.reshape(1, 5, 1, 1)).ravel()
    sums = np.array([1400.0, 3000.0, 5500.0, 5400.0, 5000.0])
    assert np.allclose(y, a / (2 + 1e-4 * sums) ** 0.75, rtol=1e-14, atol=0)


# ---- against PyTorch -----------------------------------------------------------------------

# Our kinds and the torch module each must be. A global average pool is torch's
# AdaptiveAvgPool2d((1, 1)), as SqueezeNet and Inception-v3 build it.
TORCH_KINDS = {"conv2d": "Conv2d", "maxpool": "MaxPool2d", "avgpool": "AvgPool2d",
               "adaptive_avgpool": "AdaptiveAvgPool2d", "global_avgpool": "AdaptiveAvgPool2d",
               "dense": "Linear"}
# Pools torchvision calls as functions inside forward(): the module each stands for.
FUNCTIONAL_POOLS = {"max_pool2d": "MaxPool2d", "avg_pool2d": "AvgPool2d",
                    "adaptive_avg_pool2d": "AdaptiveAvgPool2d"}

# spec, (torchvision module, builder), kwargs, pools called as functions in one forward
TORCHVISION = [
    ("alexnet_torchvision", ("alexnet", "alexnet"), {}, 0),
    ("vgg16_bn", ("vgg", "vgg16_bn"), {}, 0),
    # F.relu then F.adaptive_avg_pool2d after the features
    ("densenet121", ("densenet", "densenet121"), {}, 1),
    # the branch pools of Mixed_5b–d, 6b–e, 7b–c (F.avg_pool2d) and Mixed_6a, 7a (F.max_pool2d)
    ("inception_v3", ("inception", "inception_v3"), {"aux_logits": False, "init_weights": False},
     3 + 4 + 2 + 2),
    ("squeezenet1_0", ("squeezenet", "squeezenet1_0"), {}, 0),
]


class _RecordingFunctional:
    """Stands in for torch.nn.functional inside one torchvision model file: the pools it
    calls are recorded, everything else is passed through. torch's own pooling modules call
    the real torch.nn.functional, so a pool is never recorded twice."""

    def __init__(self, functional, record):
        self._functional, self._record = functional, record

    def __getattr__(self, name):
        fn = getattr(self._functional, name)
        if name not in FUNCTIONAL_POOLS:
            return fn

        def pool(*args, **kwargs):
            out = fn(*args, **kwargs)
            self._record((FUNCTIONAL_POOLS[name], tuple(out.shape[1:]), 0), functional=True)
            return out
        return pool


def torch_counts(net) -> tuple[int, int]:
    """(trainable parameters, BN running mean + var values; num_batches_tracked excluded)."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in net.named_buffers()
                  if n.endswith(("running_mean", "running_var")))
    return trainable, buffers


def torch_layers(net, file: str, shape: tuple[int, ...], monkeypatch) -> tuple[list, int]:
    """(module name, output shape per image, MACs) of every conv, pool and linear layer in the
    order one forward pass on the meta device runs them, and how many were functional pools.
    conv: out.numel()·(C_in/groups)·Kh·Kw; linear: in·out."""
    import torch

    seen: list[tuple] = []
    calls = [0]

    def record(entry: tuple, functional: bool = False) -> None:
        seen.append(entry)
        calls[0] += functional

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs = output[0].numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, torch.nn.Linear):
            macs = module.in_features * module.out_features
        else:
            macs = 0
        record((type(module).__name__, tuple(output.shape[1:]), macs))

    source = importlib.import_module(f"torchvision.models.{file}")
    if hasattr(source, "F"):  # alexnet, vgg and squeezenet.py never import the functional API
        monkeypatch.setattr(source, "F", _RecordingFunctional(source.F, record))
    kinds = tuple(getattr(torch.nn, k) for k in set(TORCH_KINDS.values()))
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            net(torch.zeros((1, *shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return seen, calls[0]


def ours(name: str) -> list[tuple]:
    return [(TORCH_KINDS[r.type], r.output_shape, r.macs) for r in rows_of(name)
            if r.type in TORCH_KINDS]


@pytest.mark.parametrize("name, where, kwargs, functional", TORCHVISION,
                         ids=[t[0] for t in TORCHVISION])
def test_against_torchvision(name, where, kwargs, functional, monkeypatch):
    torch = pytest.importorskip("torch")
    # On the meta device: PyTorch's shape rules and parameter tensors without drawing 138M
    # initial weights or computing 15 GMACs (the whole test takes about a second).
    with torch.device("meta"):
        net = model(*where, **kwargs)
    if name == "inception_v3":
        # without pretrained weights torchvision does not rescale the input channels (and
        # its rescaling would be elementwise: no layer, no MAC)
        assert net.transform_input is False and net.AuxLogits is None
    analysis = analyze(load(name))
    assert torch_counts(net) == (analysis.totals.trainable_params,
                                 analysis.totals.non_trainable_params)
    theirs, calls = torch_layers(net, where[0], analysis.network.input_shape, monkeypatch)
    assert calls == functional
    assert ours(name) == theirs
    assert sum(m for _, _, m in theirs) == analysis.totals.macs
    # batch norm: the same count and eps (Inception-v3's BasicConv2d uses 0.001)
    torch_eps = [m.eps for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    our_eps = [leaf.spec.eps for leaf in load(name).leaves() if leaf.kind == "batchnorm"]
    assert sorted(torch_eps) == sorted(our_eps)
