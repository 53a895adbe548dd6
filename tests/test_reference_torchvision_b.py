"""Reference networks after 2014, part B: MobileNet-v2, MobileNet-v3-Large, EfficientNet-B0,
U-Net and FCN-ResNet50, exact against torchvision (and, for U-Net, the paper and a PyTorch
U-Net written here from its description).

Without torch: each spec's totals, output shape, layer counts and the shapes its paper's table
gives. With torch: the same model built by PyTorch, its parameter count, and every conv,
transposed conv, pooling and linear layer's output shape and MACs, in execution order.
"""

from __future__ import annotations

import pytest

from archcalc.calc import analyze
from archcalc.spec import load
from torchvision_models import model

# name, trainable, non-trainable (BN running mean + var), MACs per image, output shape.
# The first four are torchvision 0.28's counts (issue 9); U-Net's parameters are the issue's,
# its MACs the sum of test_unet_macs_by_hand's formula; FCN's are torchvision's as measured.
TOTALS = [
    ("mobilenet_v2", 3_504_872, 34_112, 300_774_272, (1000,)),
    ("mobilenet_v3_large", 5_483_032, 24_400, 216_589_760, (1000,)),
    ("efficientnet_b0", 5_288_548, 42_016, 385_814_752, (1000,)),
    ("unet", 31_030_658, 0, 150_428_424_448, (2, 388, 388)),
    ("fcn_resnet50", 32_957_013, 54_144, 26_484_498_432, (21, 224, 224)),
]

CONVS = ("conv2d", "conv_transpose2d")
POOLS = ("maxpool", "avgpool", "global_avgpool", "adaptive_avgpool", "adaptive_maxpool")


def rows_of(name: str, shape=None):
    return analyze(load(name, shape)).rows


def by_name(name: str) -> dict[str, tuple]:
    return {r.name: r.output_shape for r in rows_of(name)}


# ---- without torch -------------------------------------------------------------------------

@pytest.mark.parametrize("name, trainable, frozen, macs, output", TOTALS,
                         ids=[t[0] for t in TOTALS])
def test_totals(name, trainable, frozen, macs, output):
    analysis = analyze(load(name))
    assert analysis.totals.trainable_params == trainable
    assert analysis.totals.non_trainable_params == frozen
    assert analysis.totals.macs == macs
    assert analysis.output_shape == output


def _counts(name: str) -> tuple[int, int, int]:
    rows = rows_of(name)
    return (sum(r.type in CONVS for r in rows), sum(r.type in POOLS for r in rows),
            sum(r.type == "dense" for r in rows))


def test_mobilenet_v2_layer_counts():
    # stem; 17 bottlenecks of 3 convs, but the t = 1 one has no expansion; the last 1×1 conv.
    # One global average pool; one classifier.
    assert _counts("mobilenet_v2") == (1 + 17 * 3 - 1 + 1, 1, 1)


def test_mobilenet_v3_large_layer_counts():
    # stem; 15 bnecks of 3 convs but the first (no expansion); 8 SE rows of 2 convs each and
    # 1 pool; the last 1×1 conv; the final pool; two dense layers.
    assert _counts("mobilenet_v3_large") == (1 + 15 * 3 - 1 + 8 * 2 + 1, 8 + 1, 2)


def test_efficientnet_b0_layer_counts():
    # stem; 16 MBConv blocks (1+2+2+3+3+4+1) of 3 convs + 2 SE convs, the MBConv1 one without
    # expansion; every block's SE pool and the final pool; the head conv; one classifier.
    blocks = 1 + 2 + 2 + 3 + 3 + 4 + 1
    assert _counts("efficientnet_b0") == (1 + blocks * 5 - 1 + 1, blocks + 1, 1)


def test_unet_layer_counts():
    # 9 double convs (4 down, the bottom, 4 up) + the 1×1 output; 4 up-convs; 4 max pools.
    assert _counts("unet") == (9 * 2 + 1 + 4, 4, 0)
    assert sum(r.type == "conv_transpose2d" for r in rows_of("unet")) == 4
    assert sum(r.type == "crop" for r in rows_of("unet")) == 4


def test_fcn_resnet50_layer_counts():
    # ResNet-50's 1 + 16·3 + 4 downsample convs, the head's two; the stem's max pool; no dense.
    assert _counts("fcn_resnet50") == (1 + 16 * 3 + 4 + 2, 1, 0)


def test_mobilenet_v2_table2_shapes():
    got = by_name("mobilenet_v2")
    assert got["conv1"] == (32, 112, 112)
    # Table 2's "input" column is the output of the row above it.
    last = {"stage1.0.bn2": (16, 112, 112), "stage2.1.add1": (24, 56, 56),
            "stage3.2.add1": (32, 28, 28), "stage4.3.add1": (64, 14, 14),
            "stage5.2.add1": (96, 14, 14), "stage6.2.add1": (160, 7, 7),
            "stage7.0.bn3": (320, 7, 7), "conv2": (1280, 7, 7), "classifier": (1000,)}
    for name, shape in last.items():
        assert got[name] == shape, name
    # the depthwise conv of stage 4's first block carries the stride: 6·32 channels at 14².
    assert got["stage4.0.conv2"] == (192, 14, 14)


def test_mobilenet_v3_table1_shapes():
    rows = {r.name: r for r in rows_of("mobilenet_v3_large")}
    table1 = {"bneck1.add1": (16, 112, 112), "bneck2.block.project.bn": (24, 56, 56),
              "bneck4.block.project.bn": (40, 28, 28), "bneck7.block.project.bn": (80, 14, 14),
              "bneck11.block.project.bn": (112, 14, 14), "bneck13.block.project.bn": (160, 7, 7),
              "bneck15.add1": (160, 7, 7), "conv2.conv": (960, 7, 7), "avgpool": (960, 1, 1),
              "fc1": (1280,), "fc2": (1000,)}
    for name, shape in table1.items():
        assert rows[name].output_shape == shape, name
    # SE on bneck4: pool to 72×1×1, squeeze to _make_divisible(72 // 4, 8) = 24, gate 72×28×28.
    assert rows["bneck4.block.squeeze.fc1"].output_shape == (24, 1, 1)
    assert rows["bneck4.block.squeeze.mul1"].output_shape == (72, 28, 28)
    assert rows["bneck4.block.squeeze.mul1"].macs == 0


def test_efficientnet_b0_table1_shapes():
    got = by_name("efficientnet_b0")
    table1 = {"stage1.stem.conv": (32, 112, 112), "stage2.0.project.bn": (16, 112, 112),
              "stage3.1.add1": (24, 56, 56), "stage4.1.add1": (40, 28, 28),
              "stage5.2.add1": (80, 14, 14), "stage6.2.add1": (112, 14, 14),
              "stage7.3.add1": (192, 7, 7), "stage8.0.project.bn": (320, 7, 7),
              "stage9.head.conv": (1280, 7, 7), "stage9.classifier": (1000,)}
    for name, shape in table1.items():
        assert got[name] == shape, name
    # SE squeezes to a quarter of the block's INPUT channels: 16 // 4 = 4 of the 96 expanded.
    assert got["stage3.0.squeeze.fc1"] == (4, 1, 1)
    assert got["stage3.0.squeeze.fc2"] == (96, 1, 1)


def test_unet_figure1_shapes():
    got = by_name("unet")
    figure1 = {"down1.conv1": (64, 570, 570), "down1.conv2": (64, 568, 568),
               "pool1": (64, 284, 284), "down4.conv2": (512, 64, 64), "pool4": (512, 32, 32),
               "bottom.conv2": (1024, 28, 28), "upconv4": (512, 56, 56),
               "copy_crop4": (512, 56, 56), "concat4": (1024, 56, 56), "up4.conv2": (512, 52, 52),
               "upconv1": (64, 392, 392), "copy_crop1": (64, 392, 392),
               "concat1": (128, 392, 392), "up1.conv2": (64, 388, 388), "output": (2, 388, 388)}
    for name, shape in figure1.items():
        assert got[name] == shape, name


def test_unet_macs_by_hand():
    # Every valid 3×3 conv: out² · C_out · 9 · C_in; every 2×2 up-conv: in² · C_in · 4 · C_out;
    # the 1×1 output: 388² · 2 · 64. Sizes from Figure 1.
    convs = [(1, 64, 570), (64, 64, 568), (64, 128, 282), (128, 128, 280),
             (128, 256, 138), (256, 256, 136), (256, 512, 66), (512, 512, 64),
             (512, 1024, 30), (1024, 1024, 28),
             (1024, 512, 54), (512, 512, 52), (512, 256, 102), (256, 256, 100),
             (256, 128, 198), (128, 128, 196), (128, 64, 390), (64, 64, 388)]
    ups = [(1024, 512, 28), (512, 256, 52), (256, 128, 100), (128, 64, 196)]
    macs = (sum(s * s * o * 9 * i for i, o, s in convs)
            + sum(s * s * i * 4 * o for i, o, s in ups) + 388 * 388 * 2 * 64)
    assert analyze(load("unet")).totals.macs == macs == TOTALS[3][3]


def test_unet_crops_hold_at_every_valid_input():
    # The crops remove fixed amounts from each side, so any 572 − 16·k input works: 188 is the
    # smallest (every pooled map even, output 4×4).
    rows = {r.name: r.output_shape for r in rows_of("unet", (1, 188, 188))}
    assert rows["output"] == (2, 4, 4)
    assert rows["copy_crop1"] == rows["upconv1"] == (64, 8, 8)


def test_fcn_resnet50_shapes():
    got = by_name("fcn_resnet50")
    # dilated layer3 and layer4 keep layer2's 28×28 (output stride 8, not 32)
    expected = {"backbone.conv1": (64, 112, 112), "backbone.maxpool": (64, 56, 56),
                "backbone.layer1.2.add1": (256, 56, 56), "backbone.layer2.3.add1": (512, 28, 28),
                "backbone.layer3.5.add1": (1024, 28, 28),
                "backbone.layer4.2.add1": (2048, 28, 28), "classifier.0": (512, 28, 28),
                "classifier.4": (21, 28, 28), "upsample": (21, 224, 224)}
    for name, shape in expected.items():
        assert got[name] == shape, name


# ---- against PyTorch -----------------------------------------------------------------------

# Our kinds that are modules in the PyTorch models, and the module each must be. Global
# average pooling is left out: MobileNet-v2 and FCN call it (or interpolate) as a function.
TORCH_KINDS = {"conv2d": "Conv2d", "conv_transpose2d": "ConvTranspose2d", "maxpool": "MaxPool2d",
               "avgpool": "AvgPool2d", "adaptive_avgpool": "AdaptiveAvgPool2d",
               "adaptive_maxpool": "AdaptiveMaxPool2d", "dense": "Linear"}


def torch_counts(net) -> tuple[int, int]:
    """(trainable parameters, BN running mean + var values; num_batches_tracked excluded)."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in net.named_buffers()
                  if n.endswith(("running_mean", "running_var")))
    return trainable, buffers


def torch_layers(net, shape: tuple[int, ...], device: str = "cpu") -> list[tuple]:
    """(module class, output shape per image, MACs) of every conv, transposed conv, pooling and
    linear module, in the order the forward pass runs them."""
    import torch

    kinds = tuple(getattr(torch.nn, k) for k in TORCH_KINDS.values())
    seen: list[tuple] = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.ConvTranspose2d):  # every input pixel scatters a kernel
            kh, kw = module.kernel_size
            macs = inputs[0].numel() * kh * kw * module.out_channels // module.groups
        elif isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs = output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, torch.nn.Linear):
            macs = module.in_features * module.out_features
        else:
            macs = 0
        seen.append((type(module).__name__, tuple(output.shape[1:]), macs))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            net.to(device)(torch.zeros((1, *shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def ours(name: str, shape=None) -> list[tuple]:
    return [(TORCH_KINDS[r.type], r.output_shape, r.macs) for r in rows_of(name, shape)
            if r.type in TORCH_KINDS]


TORCHVISION = [
    ("mobilenet_v2", ("mobilenetv2", "mobilenet_v2"), {}),
    ("mobilenet_v3_large", ("mobilenetv3", "mobilenet_v3_large"), {}),
    ("efficientnet_b0", ("efficientnet", "efficientnet_b0"), {}),
    ("fcn_resnet50", ("segmentation.fcn", "fcn_resnet50"),
     {"weights_backbone": None, "aux_loss": False}),
]


@pytest.mark.parametrize("name, where, kwargs", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_against_torchvision(name, where, kwargs):
    torch = pytest.importorskip("torch")
    # Built and run on the meta device: PyTorch's own shape rules and parameter tensors,
    # without drawing 33M initial weights or computing a forward pass (3.4 s → 0.1 s for FCN).
    with torch.device("meta"):
        net = model(*where, **kwargs)
    analysis = analyze(load(name))
    assert torch_counts(net) == (analysis.totals.trainable_params,
                                 analysis.totals.non_trainable_params)
    theirs = torch_layers(net, analysis.network.input_shape, device="meta")
    assert ours(name) == theirs
    assert sum(m for _, _, m in theirs) == analysis.totals.macs


def _torch_unet():
    """Ronneberger et al. 2015 from the paper's text (not from our spec): valid 3×3 convs +
    ReLU, 2×2 max pool, 2×2 up-conv halving the channels, centre crop of the skip to the
    up-conv's size, [skip, up] concatenated, a final 1×1 conv to 2 classes."""
    import torch
    from torch import nn

    def double(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, widths=(64, 128, 256, 512, 1024), classes=2):
            super().__init__()
            ins = (1,) + widths[:-1]
            self.down = nn.ModuleList(double(i, o) for i, o in zip(ins, widths))
            self.pools = nn.ModuleList(nn.MaxPool2d(2) for _ in widths[:-1])
            pairs = list(zip(widths[:0:-1], widths[-2::-1]))  # (1024, 512) … (128, 64)
            self.ups = nn.ModuleList(nn.ConvTranspose2d(i, o, 2, stride=2) for i, o in pairs)
            self.up_convs = nn.ModuleList(double(i, o) for i, o in pairs)
            self.output = nn.Conv2d(widths[0], classes, 1)

        def forward(self, x):
            skips = []
            for level, down in enumerate(self.down):
                x = down(x)
                if level < len(self.pools):
                    skips.append(x)
                    x = self.pools[level](x)
            for up, convs, skip in zip(self.ups, self.up_convs, reversed(skips)):
                x = up(x)
                top = (skip.shape[-2] - x.shape[-2]) // 2
                left = (skip.shape[-1] - x.shape[-1]) // 2
                skip = skip[..., top:top + x.shape[-2], left:left + x.shape[-1]]
                x = convs(torch.cat([skip, x], dim=1))
            return self.output(x)

    return UNet()


@pytest.mark.parametrize("size", [572, 188])
def test_unet_against_a_pytorch_unet(size):
    pytest.importorskip("torch")
    net = _torch_unet().eval()
    analysis = analyze(load("unet", (1, size, size)))
    assert torch_counts(net) == (analysis.totals.trainable_params, 0)
    # On the meta device (as above): 150 GMACs at 572 cost nothing, and the hooks still see
    # every layer's output shape.
    theirs = torch_layers(net, (1, size, size), device="meta")
    assert ours("unet", (1, size, size)) == theirs
    assert theirs[-1][1] == analysis.output_shape


# `archcalc check` (calculator vs executor) runs on every bundled spec in test_check.py.
