"""Per-layer output shapes of every reference spec, against the papers' and notes' tables."""

from __future__ import annotations

import pytest

from archcalc.calc import analyze
from archcalc.spec import bundled_names, load


def shapes(name: str, kinds=("conv2d", "maxpool", "avgpool", "dense", "concat", "add",
                             "global_avgpool", "lrn")) -> dict[str, tuple]:
    return {r.name: r.output_shape for r in analyze(load(name)).rows if r.type in kinds}


def test_vgg16_matches_the_cs231n_table_row_by_row():
    # cs231n "CNN architectures" VGG16 table: memory (values) of every row.
    rows = [r for r in analyze(load("vgg16")).rows if r.activations]
    expected = ([224 * 224 * 64] * 2 + [112 * 112 * 64] + [112 * 112 * 128] * 2
                + [56 * 56 * 128] + [56 * 56 * 256] * 3 + [28 * 28 * 256]
                + [28 * 28 * 512] * 3 + [14 * 14 * 512] + [14 * 14 * 512] * 3
                + [7 * 7 * 512] + [4096, 4096, 1000])
    assert [r.activations for r in rows] == expected
    # and the parameter column: 3·3·C_in·C_out + C_out per conv, in·out + out per dense.
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    dense = [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]
    weights = [r.params for r in rows if r.params]
    assert weights == [9 * i * o + o for i, o in convs] + [i * o + o for i, o in dense]


def test_alexnet_layer_shapes():
    got = shapes("alexnet")
    assert got["conv1"] == (96, 55, 55)      # (227 − 11)/4 + 1 = 55
    assert got["pool1"] == (96, 27, 27)      # (55 − 3)/2 + 1 = 27
    assert got["conv2"] == (256, 27, 27)     # (27 − 5 + 4)/1 + 1
    assert got["pool2"] == (256, 13, 13)
    assert got["conv3"] == (384, 13, 13)
    assert got["conv4"] == (384, 13, 13)
    assert got["conv5"] == (256, 13, 13)
    assert got["pool5"] == (256, 6, 6)
    assert (got["fc6"], got["fc7"], got["fc8"]) == ((4096,), (4096,), (1000,))


def test_alexnet_at_224_is_the_riddle():
    analysis = analyze(load("alexnet", (3, 224, 224)))
    rows = {r.name: r for r in analysis.rows}
    assert rows["conv1"].output_shape == (96, 54, 54)
    assert rows["pool5"].output_shape == (256, 5, 5)
    assert "conv1: (224 − 11 + 2·0)/4 + 1 = 54.25" in analysis.warnings[0]
    assert "floored to 54" in analysis.warnings[0]
    # 53·4 + 11 = 223 pixels covered of 224: the last row and column are never seen.
    assert "the last 1 input row(s) and column(s) are never covered" in analysis.warnings[0]


def test_googlenet_table1_output_sizes():
    got = shapes("googlenet")
    table1 = {  # Szegedy et al. 2014, Table 1, "output size" column
        "conv1": (64, 112, 112), "pool1": (64, 56, 56), "conv2": (192, 56, 56),
        "pool2": (192, 28, 28),
        "inception_3a/output": (256, 28, 28), "inception_3b/output": (480, 28, 28),
        "pool3": (480, 14, 14),
        "inception_4a/output": (512, 14, 14), "inception_4b/output": (512, 14, 14),
        "inception_4c/output": (512, 14, 14), "inception_4d/output": (528, 14, 14),
        "inception_4e/output": (832, 14, 14), "pool4": (832, 7, 7),
        "inception_5a/output": (832, 7, 7), "inception_5b/output": (1024, 7, 7),
        "pool5": (1024, 1, 1), "classifier": (1000,),
    }
    for name, shape in table1.items():
        assert got[name] == shape, name
    assert got["inception_3a/5x5_reduce"] == (16, 28, 28)
    assert got["inception_3a/pool_proj"] == (32, 28, 28)


@pytest.mark.parametrize("name, widths", [
    ("resnet18", (64, 128, 256, 512)), ("resnet34", (64, 128, 256, 512)),
    ("resnet50", (256, 512, 1024, 2048)), ("resnet101", (256, 512, 1024, 2048)),
    ("resnet152", (256, 512, 1024, 2048)),
])
def test_resnet_stage_outputs(name, widths):
    rows = analyze(load(name)).rows
    by_name = {r.name: r.output_shape for r in rows}
    assert by_name["conv1"] == (64, 112, 112)
    assert by_name["maxpool"] == (64, 56, 56)
    sizes = (56, 28, 14, 7)
    for stage, (width, size) in enumerate(zip(widths, sizes), start=1):
        last_add = [r for r in rows if r.name.startswith(f"layer{stage}.") and r.type == "add"][-1]
        assert last_add.output_shape == (width, size, size)
    assert by_name["avgpool"] == (widths[-1], 1, 1)
    assert by_name["fc"] == (1000,)


@pytest.mark.parametrize("name, blocks", [
    ("resnet18", (2, 2, 2, 2)), ("resnet34", (3, 4, 6, 3)), ("resnet50", (3, 4, 6, 3)),
    ("resnet101", (3, 4, 23, 3)), ("resnet152", (3, 8, 36, 3)),
])
def test_resnet_blocks_per_stage(name, blocks):
    rows = analyze(load(name)).rows
    for stage, count in enumerate(blocks, start=1):
        adds = [r for r in rows if r.name.startswith(f"layer{stage}.") and r.type == "add"]
        assert len(adds) == count


def test_lenet5_shapes():
    got = shapes("lenet5")
    assert list(got.values()) == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5),
                                  (120,), (84,), (10,)]


def test_receptive_fields_alexnet():
    # r_out = r_in + (k − 1)·j_in, j_out = j_in·s (Araujo et al. 2019); AlexNet's is 195.
    rows = {r.name: r for r in analyze(load("alexnet")).rows}
    expected = {"conv1": (11, 4), "pool1": (19, 8), "conv2": (51, 8), "pool2": (67, 16),
                "conv3": (99, 16), "conv4": (131, 16), "conv5": (163, 16), "pool5": (195, 32)}
    for name, (rf, jump) in expected.items():
        assert rows[name].receptive_field == (rf, rf), name
        assert rows[name].effective_stride == (jump, jump), name


def test_receptive_field_through_branches_is_the_largest():
    rows = {r.name: r for r in analyze(load("googlenet")).rows}
    merge = rows["inception_3a/output"]
    branch_rfs = [rows[f"inception_3a/{n}"].receptive_field[0]
                  for n in ("1x1", "3x3", "5x5", "pool_proj")]
    assert merge.receptive_field[0] == max(branch_rfs) == rows["inception_3a/5x5"].receptive_field[0]


UNEVEN_AT_OWN_INPUT = {"squeezenet1_0": ["conv1"]}


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_spec_analyses_cleanly(name):
    analysis = analyze(load(name))
    assert analysis.rows
    # Bundled specs at their own input divide evenly, but for torchvision's SqueezeNet 1.0 at
    # 224, whose conv1 really drops a row and a column: (224 − 7)/2 + 1 = 109.5.
    expected = UNEVEN_AT_OWN_INPUT.get(name, [])
    assert [w.split(":")[0] for w in analysis.warnings] == expected
