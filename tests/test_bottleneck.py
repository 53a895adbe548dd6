"""1×1 bottleneck savings: the textbook Inception case, ResNet-50 blocks derived by hand,
the cases found in the bundled specs, and the whole-network total without reductions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from archcalc.calc import analyze
from archcalc.calc.bottleneck import adhoc, find
from archcalc.errors import ArchcalcError
from archcalc.spec import load, loads


def test_inception_textbook_case():
    """cs231n / Szegedy et al.: 192×28×28 input, 5×5 conv to 32 filters, 1×1 reduce to 16."""
    case = adhoc((192, 28, 28), kernel=5, filters=32, reduce=16).cases[0]
    reduce_macs = 28 * 28 * 16 * 192          # the 1×1: 2,408,448
    conv_macs = 28 * 28 * 32 * 5 * 5 * 16     # the 5×5 on 16 channels: 10,035,200
    assert [r.macs for r in case.rows] == [2_408_448, 10_035_200] == [reduce_macs, conv_macs]
    assert case.with_macs == 12_443_648
    assert case.without_macs == 120_422_400 == 28 * 28 * 32 * 5 * 5 * 192
    assert round(float(case.macs_factor), 1) == 9.7
    # params with biases: (192·16 + 16) + (5·5·16·32 + 32) vs 5·5·192·32 + 32
    assert case.with_params == 3_088 + 12_832 == 15_920
    assert case.without_params == 153_632
    assert case.output_shape == case.direct.output_shape == (32, 28, 28)


def test_googlenet_has_eighteen_cases_the_3a_one_is_the_textbook_case():
    result = find(analyze(load("googlenet")))
    names = [c.name for c in result.cases]
    modules = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    assert names == [f"inception_{m}/{b}" for m in modules for b in ("3x3_reduce", "5x5_reduce")]
    first5 = result.cases[1]
    assert (first5.with_macs, first5.without_macs) == (12_443_648, 120_422_400)
    # conv2_reduce (64 → 64) feeds conv2 but reduces nothing
    assert result.skipped == ["conv2_reduce (64 → 64 channels)"]
    assert all(c.kind == "reduce" and c.note is None for c in result.cases)


def test_resnet50_identity_block_by_hand():
    """layer1.1: 256×56×56 → 1×1 to 64 → 3×3 64 → 1×1 to 256, no biases (torchvision)."""
    result = find(analyze(load("resnet50")))
    case = next(c for c in result.cases if c.name == "layer1.1.conv1")
    hw = 56 * 56
    conv1 = hw * 64 * 256            # 51,380,224
    conv2 = hw * 64 * 3 * 3 * 64     # 115,605,504
    conv3 = hw * 256 * 64            # 51,380,224
    assert [r.macs for r in case.rows] == [51_380_224, 115_605_504, 51_380_224]
    assert case.with_macs == conv1 + conv2 + conv3 == 218_365_952
    # a 3×3 from 256 to 256 channels at 56×56, no bias
    assert case.without_macs == hw * 256 * 3 * 3 * 256 == 1_849_688_064
    assert case.with_params == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632
    assert case.without_params == 9 * 256 * 256 == 589_824
    assert case.macs_factor == Fraction(1_849_688_064, 218_365_952)
    assert round(float(case.macs_factor), 2) == 8.47
    assert case.channels == "256 → 64 → 64 → 256" and case.kind == "reduce-expand"


def test_resnet50_strided_block_by_hand():
    """layer2.0 (v1.5, stride in the 3×3): 256×56×56 → 512×28×28; the direct 3×3 has the
    same stride 2 and gives the same 512×28×28."""
    case = next(c for c in find(analyze(load("resnet50"))).cases if c.name == "layer2.0.conv1")
    with_macs = 56 * 56 * 128 * 256 + 28 * 28 * 128 * 9 * 128 + 28 * 28 * 512 * 128
    assert case.with_macs == with_macs == 269_746_176
    assert case.without_macs == 28 * 28 * 512 * 9 * 256 == 924_844_032
    assert case.direct.output_shape == case.output_shape == (512, 28, 28)


@pytest.mark.parametrize("name, blocks", [("resnet50", [3, 4, 6, 3]), ("resnet101", [3, 4, 23, 3]),
                                          ("resnet152", [3, 8, 36, 3])])
def test_every_resnet_block_but_the_first_reduces(name, blocks):
    result = find(analyze(load(name)))
    # layer1.0's 1×1 sees the stem's 64 channels and keeps 64: not a reduction
    assert len(result.cases) == sum(blocks) - 1
    assert result.skipped == ["layer1.0.conv1 (64 → 64 channels)"]


def test_plain_networks_have_none():
    for name in ("vgg16", "alexnet", "resnet18"):
        assert find(analyze(load(name))).cases == []


REDUCED = """
name: reduced
input: [32, 10, 10]
layers:
  - conv: {filters: 16, kernel: 3, padding: 1}
  - concat:
      - - {conv: {name: r, filters: 4, kernel: 1}}
        - relu
        - {conv: {name: c, filters: 8, kernel: 5, padding: 2}}
        - relu
      - [{conv: {name: one, filters: 8, kernel: 1}}]
  - global_avgpool
  - flatten
  - dense: 10
"""


def test_network_total_without_reductions_is_the_unreduced_spec():
    """Undoing the reduction in the spec itself gives exactly network_macs_without."""
    result = find(analyze(loads(REDUCED)))
    assert [c.name for c in result.cases] == ["r"]
    direct = REDUCED.replace("{conv: {name: r, filters: 4, kernel: 1}}\n        - relu\n        - ", "")
    assert direct != REDUCED and find(analyze(loads(direct))).cases == []
    unreduced = analyze(loads(direct)).totals
    assert result.network_macs_without == unreduced.macs
    assert result.network_params_without == unreduced.params


def test_stride_in_the_reducing_1x1_moves_to_the_direct_conv():
    """ResNet v1 puts the stride in the first 1×1; the direct 3×3 gets it."""
    net = loads("name: v1\ninput: [64, 9, 9]\nlayers:\n"
                "  - conv: {filters: 16, kernel: 1, stride: 2, bias: false}\n  - bn\n  - relu\n"
                "  - conv: {filters: 16, kernel: 3, padding: 1, bias: false}\n  - bn\n  - relu\n"
                "  - conv: {filters: 64, kernel: 1, bias: false}\n")
    case = find(analyze(net)).cases[0]
    assert case.output_shape == (64, 5, 5) == case.direct.output_shape
    assert case.note is None
    assert case.without_macs == 5 * 5 * 64 * 9 * 64


@pytest.mark.parametrize("kwargs, message", [
    (dict(reduce=192), "--reduce 192 is not fewer than the 192 input channels"),
    (dict(reduce=300), "not fewer than the 192 input channels"),
    (dict(kernel=29), "--kernel 29 is larger than the 28×28 input"),
    (dict(kernel=0), "--kernel must be a positive integer"),
    (dict(filters=-1), "--filters must be a positive integer"),
    (dict(kernel=1), "no larger kernel"),
    (dict(kernel=1, expand=64), "no larger kernel"),
    (dict(expand=32), "--expand 32 does not expand the 32 filters"),
])
def test_adhoc_nonsense_is_one_clear_error(kwargs, message):
    args = dict(kernel=5, filters=32, reduce=16) | kwargs
    with pytest.raises(ArchcalcError, match=message.replace("(", r"\(")):
        adhoc((192, 28, 28), **args)
