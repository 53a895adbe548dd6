"""The reference totals of issue 2: measured facts, matched exactly."""

from __future__ import annotations

import pytest

from archcalc.calc import analyze
from archcalc.spec import load


@pytest.mark.parametrize("name, trainable, macs", [
    ("lenet5", 61_706, 416_520),
    ("alexnet", 60_965_224, 724_406_816),
    ("vgg16", 138_357_544, 15_470_264_320),
    ("resnet50", 25_557_032, 4_089_184_256),
])
def test_params_and_macs(name, trainable, macs):
    totals = analyze(load(name)).totals
    assert totals.trainable_params == trainable
    assert totals.macs == macs
    assert totals.flops == 2 * macs


@pytest.mark.parametrize("name, trainable", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnet101", 44_549_160), ("resnet152", 60_192_808),
])
def test_resnet_trainable_params_match_torchvision(name, trainable):
    totals = analyze(load(name)).totals
    assert totals.trainable_params == trainable


@pytest.mark.parametrize("name, bn_channels", [
    # Σ channels over every batch norm; running mean + running var = 2 values per channel.
    ("resnet18", 4_800), ("resnet50", 26_560),
])
def test_resnet_batchnorm_buffers_are_non_trainable(name, bn_channels):
    totals = analyze(load(name)).totals
    assert totals.non_trainable_params == 2 * bn_channels
    assert totals.params == totals.trainable_params + totals.non_trainable_params


def test_resnet18_batchnorm_channels_by_hand():
    # bn1 64; layer1: 2 blocks × 2 BN × 64; layer2: 2×2×128 + downsample 128;
    # layer3: 2×2×256 + 256; layer4: 2×2×512 + 512.
    channels = 64 + 4 * 64 + 4 * 128 + 128 + 4 * 256 + 256 + 4 * 512 + 512
    totals = analyze(load("resnet18")).totals
    assert totals.non_trainable_params == 2 * channels


def test_resnet50_batchnorm_channels_by_hand():
    # Each bottleneck has BNs of planes, planes, 4·planes; each stage's first block adds a
    # downsample BN of 4·planes. Blocks per stage 3, 4, 6, 3.
    stages = [(64, 3), (128, 4), (256, 6), (512, 3)]
    channels = 64 + sum(n * 6 * p + 4 * p for p, n in stages)
    totals = analyze(load("resnet50")).totals
    assert totals.non_trainable_params == 2 * channels


@pytest.mark.parametrize("name, macs", [
    # Golden values, printed in the README; they agree with the papers' rounded figures:
    # GoogLeNet "1.5 billion multiply-adds" (Szegedy et al. 2014, Section 5); ResNet
    # 1.8 / 3.6 / 7.6-7.8 / 11.3-11.5 × 10^9 (He et al. 2015, Table 1; torchvision's v1.5
    # stride placement adds a little).
    ("googlenet", 1_582_671_872), ("alexnet_1gpu", 1_135_256_096),
    ("resnet18", 1_814_073_344), ("resnet34", 3_663_761_408),
    ("resnet101", 7_801_405_440), ("resnet152", 11_513_626_624),
])
def test_golden_macs(name, macs):
    assert analyze(load(name)).totals.macs == macs


def test_alexnet_one_gpu_form():
    one = {r.name: r.params for r in analyze(load("alexnet_1gpu")).rows}
    two = {r.name: r.params for r in analyze(load("alexnet")).rows}
    assert sum(one.values()) == 62_378_344
    # The two-GPU groups halve the weights of conv2, conv4 and conv5 (biases unchanged).
    assert one["conv2"] - two["conv2"] == 5 * 5 * 96 * 256 - 5 * 5 * 48 * 256
    assert one["conv4"] - two["conv4"] == 3 * 3 * 384 * 384 - 3 * 3 * 192 * 384
    assert one["conv5"] - two["conv5"] == 3 * 3 * 384 * 256 - 3 * 3 * 192 * 256


def test_vgg16_activations_match_cs231n_rows():
    totals = analyze(load("vgg16")).totals
    assert totals.activations == 15_237_608
    assert totals.input_values == 3 * 224 * 224
    assert totals.activation_bytes == 15_237_608 * 4


def test_googlenet_params_and_output():
    analysis = analyze(load("googlenet"))
    # Caffe's bvlc_googlenet without its auxiliary heads (biases, no batch norm).
    assert analysis.totals.params == 6_998_552
    assert analysis.output_shape == (1000,)


def test_dtype_and_batch_scale_bytes():
    base = analyze(load("lenet5")).totals
    half = analyze(load("lenet5"), dtype="float16", batch=8).totals
    assert half.param_bytes == base.params * 2
    assert half.activation_bytes == base.activations * 2
    assert half.input_bytes == 1024 * 8 * 2
    assert half.forward_backward_bytes == 2 * (base.activations - 1024) * 8 * 2
    assert half.total_bytes == half.input_bytes + half.forward_backward_bytes + half.param_bytes
