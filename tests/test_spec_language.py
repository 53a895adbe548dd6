"""The spec language: item forms, blocks, repeat, naming, padding forms, JSON."""

from __future__ import annotations

import json

import pytest

from archcalc.calc import analyze
from archcalc.spec import load, loads


def names(text: str) -> list[str]:
    net = loads(text)
    return [net.display(leaf.path) for leaf in net.leaves()]


def test_derived_names_count_per_kind():
    assert names("""
name: t
input: [1, 8, 8]
layers: [{conv: {filters: 2, kernel: 3}}, relu, {conv: {filters: 2, kernel: 3}}, relu, flatten, {dense: 3}]
""") == ["conv1", "relu1", "conv2", "relu2", "flatten1", "fc1"]


def test_every_item_form_is_the_same_layer():
    forms = ["{conv: {filters: 4, kernel: 3}}", "{type: conv2d, filters: 4, kernel: 3}",
             "{conv2d: {filters: 4, kernel: [3, 3]}}", "{mine: {conv: {filters: 4, kernel: 3}}}"]
    specs = [next(loads(f"name: t\ninput: [1, 8, 8]\nlayers: [{form}]\n").leaves()).spec
             for form in forms]
    assert {(s.filters, s.kernel if isinstance(s.kernel, int) else s.kernel[0]) for s in specs} == {(4, 3)}
    assert specs[3].name == "mine"


def test_scalar_shorthands():
    net = loads("name: t\ninput: [8]\nlayers: [{dense: 16}, {dropout: 0.25}, {dense: 4}]\n")
    leaves = list(net.leaves())
    assert leaves[0].spec.units == 16 and leaves[1].spec.rate == 0.25


def test_blocks_with_arithmetic_and_names():
    text = """
name: t
input: [8, 8, 8]
blocks:
  bottle:
    args: [planes]
    layers:
      - add:
          - [{conv: {filters: planes, kernel: 1}}, {conv: {filters: 4 * planes, kernel: 1}}]
          - {name: downsample, layers: [{conv: {name: "0", filters: 4 * planes, kernel: 1}}]}
layers:
  - layer1: {repeat: 2, use: bottle, with: [2]}
"""
    assert names(text) == [
        "layer1.0.conv1", "layer1.0.conv2", "layer1.0.downsample.0",
        "layer1.1.conv1", "layer1.1.conv2", "layer1.1.downsample.0"]
    analysis = analyze(loads(text))
    assert [r.name for r in analysis.rows if r.type == "add"] == ["layer1.0.add1", "layer1.1.add1"]
    assert analysis.output_shape == (8, 8, 8)


def test_named_block_arguments_and_errors():
    base = """
name: t
input: [3, 8, 8]
blocks:
  cbr: {args: [f, k], layers: [{conv: {filters: f, kernel: k}}, relu]}
layers:
  - {use: cbr, with: %s}
"""
    net = loads(base % "{f: 5, k: 3}")
    assert next(net.leaves()).spec.filters == 5
    with pytest.raises(Exception, match=r"block 'cbr' takes 2 argument\(s\) \(f, k\), got 1"):
        loads(base % "[5]")
    with pytest.raises(Exception, match="missing k"):
        loads(base % "{f: 5}")


def test_repeat_inline_and_start():
    text = """
name: t
input: [2, 8, 8]
blocks:
  unit: {args: [], layers: [{conv: {filters: 2, kernel: 3, padding: 1}}]}
layers:
  - repeat: 2
    inline: true
    layers: [{conv: {filters: 2, kernel: 3, padding: 1}}, relu]
  - stage:
      - {use: unit, name: "0"}
      - {repeat: 2, start: 1, use: unit}
"""
    assert names(text) == ["conv1", "relu1", "conv2", "relu2",
                           "stage.0.conv1", "stage.1.conv1", "stage.2.conv1"]


def test_googlenet_names_use_its_separator():
    net = load("googlenet")
    all_names = [net.display(leaf.path) for leaf in net.leaves()]
    assert "inception_3a/5x5_reduce" in all_names
    assert "inception_5b/pool_proj" in all_names


def test_resnet_names_follow_torchvision():
    net = load("resnet50")
    all_names = {net.display(leaf.path) for leaf in net.leaves()}
    assert {"conv1", "bn1", "layer2.0.conv1", "layer2.0.downsample.0", "layer4.2.bn3",
            "fc"} <= all_names


@pytest.mark.parametrize("padding, size, expected", [
    ("0", 8, 6), ("1", 8, 8), ("[1, 0]", 8, (8, 6)), ("[0, 1, 2, 0]", 8, (7, 8)),
    ("valid", 8, 6), ("same", 8, 8), ("same", 7, 7),
])
def test_padding_forms(padding, size, expected):
    net = loads(f"name: t\ninput: [1, {size}, {size}]\n"
                f"layers: [{{conv: {{filters: 1, kernel: 3, padding: {padding}}}}}]\n")
    out = analyze(net).output_shape
    h, w = expected if isinstance(expected, tuple) else (expected, expected)
    assert out == (1, h, w)


@pytest.mark.parametrize("size, stride, expected", [(7, 2, 4), (8, 2, 4), (9, 3, 3), (10, 3, 4)])
def test_same_padding_with_stride_gives_ceil(size, stride, expected):
    net = loads(f"name: t\ninput: [1, {size}, {size}]\n"
                f"layers: [{{conv: {{filters: 1, kernel: 3, stride: {stride}, padding: same}}}}]\n")
    assert analyze(net).output_shape == (1, expected, expected)


def test_json_spec_file(run, tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"name": "j", "input": [1, 28, 28], "layers": [
        {"conv": {"filters": 4, "kernel": 5}}, "relu", "flatten", {"dense": 10}]}))
    result = run("summary", str(path), "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["layers"][0]["output_shape"] == [4, 24, 24]
    assert data["totals"]["params"] == 4 * 25 + 4 + 4 * 24 * 24 * 10 + 10


def test_input_override_and_string_input():
    net = loads("name: t\ninput: 1x16x16\nlayers: [{maxpool: {kernel: 2}}]\n", input_shape=(2, 8, 8))
    assert analyze(net).output_shape == (2, 4, 4)


def test_frozen_layers_count_as_non_trainable():
    net = loads("name: t\ninput: [4]\nlayers: [{dense: {units: 3, trainable: false}}, {dense: 2}]\n")
    totals = analyze(net).totals
    assert totals.non_trainable_params == 4 * 3 + 3
    assert totals.trainable_params == 3 * 2 + 2


def test_bundled_specs_work_from_any_directory(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("summary", "lenet5", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["totals"]["params"] == 61_706


def test_trainable_false_on_a_block_freezes_every_layer_in_it():
    net = loads("""
name: t
input: [4]
blocks:
  head: {args: [], layers: [{dense: 3}, {dense: 2}]}
layers:
  - {use: head, trainable: false}
  - {add: [[{dense: 2}], []], trainable: false}
  - {dense: 2}
""")
    totals = analyze(net).totals
    assert totals.non_trainable_params == (4 * 3 + 3) + (3 * 2 + 2) + (2 * 2 + 2)
    assert totals.trainable_params == 2 * 2 + 2


def test_yaml_merge_keys_may_override():
    net = loads("""
name: t
input: [1, 8, 8]
layers:
  - conv: &c3 {filters: 8, kernel: 3, padding: 1}
  - conv: {<<: *c3, kernel: 1, padding: 0}
""")
    second = list(net.leaves())[1].spec
    assert (second.filters, second.kernel, second.padding) == (8, 1, 0)


def test_modern_shorthands_and_numpy_mode_names(write_spec):
    """`crop: 5` is a 5×5 window (torchvision's CenterCrop(5)); pad's NumPy mode names
    constant and edge are zeros and replicate."""
    from archcalc.spec import load

    net = load(write_spec("""
name: t
input: [1, 9, 9]
layers:
  - crop: 5
  - pad: {padding: 1, mode: edge}
  - pad: {padding: 1, mode: constant, value: 2.5}
"""))
    crop, edge, constant = (leaf.spec for leaf in net.leaves())
    assert crop.size == (5, 5)
    assert (edge.mode, constant.mode, constant.value) == ("replicate", "zeros", 2.5)


def test_padding_words_on_a_kind_that_takes_amounts_say_so(run, write_spec):
    path = write_spec("name: t\ninput: [2, 4, 4]\nlayers:\n"
                      "  - deconv: {filters: 2, kernel: 2, padding: same}\n")
    result = run("summary", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith(
        ":4: layer 'deconv1': conv_transpose2d: 'padding' takes amounts, not 'same' "
        "(fix: an int >= 0, [h, w] or [top, bottom, left, right])")


def test_pool_shorthand_is_the_kernel_and_short_pairs_are_named(run, write_spec):
    from archcalc.spec import load

    net = load(write_spec("name: t\ninput: [1, 8, 8]\nlayers:\n  - maxpool: 2\n"
                          "  - avgpool: [2, 1]\n"))
    pool, avg = (leaf.spec for leaf in net.leaves())
    assert (pool.kernel, pool.strides, avg.kernel, avg.strides) == (2, (2, 2), (2, 1), (2, 1))
    result = run("summary", write_spec("name: t\ninput: [1, 4, 4]\nlayers:\n"
                                       "  - upsample: {size: [4]}\n"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith(
        ":4: layer 'up1': upsample: 'size' needs more values (got [4]) (fix: [h, w])")
