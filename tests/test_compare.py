"""compare: the figures per column, ratios, shared stages, n/a columns."""

from __future__ import annotations

from fractions import Fraction

import pytest

from archcalc.calc import analyze
from archcalc.calc.compare import compare, depth, last_feature_map, weight_layers
from archcalc.errors import ArchcalcError
from archcalc.spec import load, loads


def test_vgg16_vs_resnet50():
    cmp = compare(["vgg16", "resnet50"])
    vgg, res = (c.metrics() for c in cmp.columns)
    assert cmp.base is cmp.columns[0]
    # published totals (Simonyan & Zisserman; torchvision)
    assert vgg["params"] == 138_357_544 and res["trainable_params"] == 25_557_032
    # VGG16's dense layers: fc6 25088·4096 + 4096, fc7 4096·4096 + 4096, fc8 4096·1000 + 1000
    dense = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert vgg["dense_params"] == dense
    assert vgg["dense_share"] == Fraction(dense, 138_357_544)
    assert res["dense_params"] == 2048 * 1000 + 1000
    # 13 conv + 3 dense; ResNet-50: 1 + 16·3 + 4 projections conv + 1 dense
    assert (vgg["weight_layers"], vgg["depth"]) == (16, 16)
    assert (res["weight_layers"], res["depth"]) == (1 + 16 * 3 + 4 + 1, 50)
    # VGG16's receptive field at its last pool: 212 pixels, stride 32 (Araujo et al. 2019)
    assert vgg["receptive_field"] == (212, 212) and vgg["effective_stride"] == (32, 32)
    assert vgg["receptive_field_at"] == "block5.pool"
    assert res["receptive_field_at"] == "layer4.2.relu3"
    data = cmp.as_dict()
    assert data["columns"][1]["ratios"]["macs"] == res["macs"] / vgg["macs"]
    assert data["stages"] == []  # block1..5 vs layer1..4: nothing shared


def test_googlenet_depth_is_the_papers_22():
    net = load("googlenet")
    # "22 layers deep when counting only layers with parameters" (Szegedy et al. 2014)
    assert depth(net.root) == 22
    assert weight_layers(analyze(net)) == 3 + 9 * 6 + 1


def test_last_feature_map_stops_at_flatten_or_global_pool():
    a = analyze(loads("name: t\ninput: [1, 9, 9]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n"
                      "  - maxpool: {kernel: 2}\n  - relu\n  - flatten\n  - dense: 3\n"))
    row = last_feature_map(a)
    assert row.name == "relu1" and row.receptive_field == (4, 4)   # 3 + (2 − 1)·1
    b = analyze(loads("name: t\ninput: [4]\nlayers:\n  - dense: 3\n"))
    assert last_feature_map(b) is None


def test_shared_stages_of_vgg16_and_vgg19():
    cmp = compare(["vgg16", "vgg19"])
    assert cmp.stage_names == ["block1", "block2", "block3", "block4", "block5"]
    v16, v19 = cmp.columns
    # block3: 3 vs 4 convs of 3×3; the first 128 → 256, the rest 256 → 256 (with biases)
    first, rest = 9 * 128 * 256 + 256, 9 * 256 * 256 + 256
    assert cmp.stage(v16, "block3").params == first + 2 * rest
    assert cmp.stage(v19, "block3").params == first + 3 * rest


def test_one_spec_at_two_inputs_scales_conv_macs_by_four():
    cmp = compare(["resnet50"], [(3, 224, 224), (3, 448, 448)])
    small, large = (c.analysis.totals.macs for c in cmp.columns)
    fc = 2048 * 1000
    # every spatial size doubles exactly (224 and 448 halve evenly to 7 and 14)
    assert large - fc == 4 * (small - fc)
    assert [c.label for c in cmp.columns] == ["resnet50 @ 3×224×224", "resnet50 @ 3×448×448"]
    assert cmp.stage_names == ["layer1", "layer2", "layer3", "layer4"]


def test_a_column_that_does_not_fit_is_na_and_the_rest_compare():
    cmp = compare(["alexnet", "vgg16"], [(3, 64, 64)])
    alex, vgg = cmp.columns
    assert not alex.ok and "pool5" in alex.error and "output size 0" in alex.error
    assert vgg.ok and cmp.base is vgg
    data = cmp.as_dict()
    assert data["base"] == "vgg16" and data["columns"][0]["ok"] is False


def test_an_unknown_spec_fails_the_comparison():
    with pytest.raises(ArchcalcError, match="unknown spec 'vgg61'"):
        compare(["vgg16", "vgg61"])
