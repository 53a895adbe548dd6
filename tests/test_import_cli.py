"""`archcalc import` and the YAML writer behind it (archcalc.importers.write).

The writer is tested on raw mappings: every bundled spec's, parsed as a file parses, and
hand-made ones with merges, identity branches and names YAML would misread. The command is
tested end to end on a small ONNX file that torch exports here (skipped without torch/onnx or
before the ONNX importer exists).
"""

from __future__ import annotations

import json

import numpy as np

from dataclasses import fields

import pytest
import yaml

from archcalc.importers.write import WIDTH, to_yaml
from archcalc.spec import from_dict, load, loads
from archcalc.spec.load import bundled_dir, bundled_names
from archcalc.spec.tree import Leaf, Merge, Network, Sequence
from archcalc.spec.yamlio import parse_text


def shape_of(node):
    """A resolved node without its line numbers: what two equal networks must share."""
    if isinstance(node, Leaf):
        return ("leaf", node.path, node.spec)
    if isinstance(node, Sequence):
        return ("seq", node.path, node.label, tuple(shape_of(c) for c in node.children))
    assert isinstance(node, Merge)
    return ("merge", node.path, node.mode, tuple(shape_of(b) for b in node.branches))


def same_network(a: Network, b: Network) -> None:
    for f in fields(Network):
        if f.name in ("root", "lines", "file"):
            continue
        assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert shape_of(a.root) == shape_of(b.root)


def round_trip(raw: dict) -> str:
    text = to_yaml(raw)
    same_network(loads(text), from_dict(raw))
    return text


# ---- the writer ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", bundled_names())
def test_bundled_specs_round_trip(name):
    raw = parse_text((bundled_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    text = round_trip(raw)
    for event in yaml.parse(text):  # no anchor, alias or explicit tag anywhere
        assert not isinstance(event, yaml.AliasEvent)
        assert getattr(event, "anchor", None) is None and getattr(event, "tag", None) is None


MERGES = {
    "name": "merges",
    "input": [8, 16, 16],
    "layers": [
        {"conv": {"name": "stem", "filters": 8, "kernel": 3, "padding": 1}},
        {"add": [[{"conv": {"filters": 8, "kernel": 3, "padding": 1}}, "bn", "relu"], []]},
        {"concat": [[], [{"conv": {"name": "b1", "filters": 4, "kernel": 1}}],
                    [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}]]},
        {"mul": [[], ["gap", {"conv": {"filters": 20, "kernel": 1}}, "hardsigmoid"]]},
        {"add": [{"name": "main", "layers": [{"conv": {"filters": 20, "kernel": 1}}]},
                 {"name": "skip", "layers": []}], "name": "res"},
        {"concat": {"name": "cat", "branches": [[], ["relu6"]]}},
        {"type": "dropout", "rate": 0.25},
        "flatten",
        {"dense": 10},
    ],
}


def test_merges_round_trip_as_block_lists_of_branches():
    text = round_trip(MERGES)
    lines = text.splitlines()
    # Each merge opens a block list of branches; a list branch starts `- - item`, and the
    # identity branch is `[]` on its own line.
    add = lines.index("  - add:")
    assert lines[add + 1] == "      - - conv: {filters: 8, kernel: 3, padding: 1}"
    assert lines[add + 2] == "        - bn"
    assert lines[add + 4] == "      - []"
    assert "  - conv: {name: stem, filters: 8, kernel: 3, padding: 1}" in lines
    assert "  - dense: 10" in lines and "  - flatten" in lines


def test_top_level_keys_in_reading_order():
    raw = {"layers": ["relu"], "separator": "/", "input": [1, 4, 4], "family": "mine",
           "source": "a test", "name": "order"}
    text = round_trip(raw)
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert keys == ["name", "source", "family", "input", "separator", "layers"]


@pytest.mark.parametrize("word", ["0", "1", "yes", "no", "on", "off", "y", "n", "true", "True",
                                  "null", "Null", "~", "1e5", "1.5", "0x10", "010", "0b11",
                                  "1_000", ".inf", "1:30", "a: b", "- x", "#c", "[x]", "{x}",
                                  "a, b", "' q", '" q', "x #y", "%x", "@x", "`x", "!x", "&x",
                                  "*x", "|", ">", "", " lead", "3×3", "é"])
def test_names_yaml_would_misread_come_back_as_strings(word):
    raw = {"name": word or "empty", "input": [1, 4, 4],
           "layers": [{"relu": {"name": word or "x"}}, {word or "y": ["relu"]}]}
    text = to_yaml(raw)
    # Both YAML readers get the same strings back: archcalc's (1.2 numbers) and PyYAML's (1.1).
    assert parse_text(text)["layers"] == raw["layers"]
    assert yaml.safe_load(text)["layers"] == raw["layers"]


def test_plain_words_stay_plain():
    raw = {"name": "plain", "input": [1, 4, 4], "separator": "/",
           "layers": [{"conv": {"name": "layer2.0.conv1", "filters": 2, "kernel": 1}},
                      {"relu": {"name": "5x5_relu-2+b"}}]}
    text = round_trip(raw)
    assert "name: layer2.0.conv1," in text and "name: 5x5_relu-2+b}" in text


def test_floats_read_as_floats_by_yaml_1_1_too():
    raw = {"name": "eps", "input": [2, 4, 4],
           "layers": [{"bn": {"eps": 1e-05, "momentum": 0.1}}, {"leaky_relu": {"slope": 1e-20}}]}
    text = round_trip(raw)
    assert "eps: 1.0e-05" in text
    assert yaml.safe_load(text)["layers"] == raw["layers"]


def test_long_items_break_into_blocks_within_the_width():
    names = [f"a_rather_long_layer_name_{i}" for i in range(6)]
    raw = {"name": "wide", "input": [3, 8, 8],
           "layers": [{"conv": {"name": "x" * 30, "filters": 4, "kernel": 3, "stride": 1,
                                "padding": 1, "dilation": 1, "groups": 1, "bias": False,
                                "padding_mode": "zeros"}},
                      {"stage": [{"relu": {"name": n}} for n in names]}]}
    text = round_trip(raw)
    for line in text.splitlines():
        assert len(line) <= WIDTH, line
    assert "  - conv:" in text.splitlines()


# ---- the command -----------------------------------------------------------------------------
def test_existing_out_is_refused_before_reading_the_model(run, tmp_path):
    out = tmp_path / "net.yaml"
    out.write_text("mine\n")
    result = run("import", str(tmp_path / "missing.onnx"), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {out} exists (fix: pass --force to replace it, "
                                     "or choose another --out)")
    assert out.read_text() == "mine\n"


def test_a_spec_is_not_imported(run, tmp_path):
    result = run("import", "vgg16", "--out", str(tmp_path / "v.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: vgg16: not a model file archcalc can import")
    assert not (tmp_path / "v.yaml").exists()


def test_a_json_spec_is_not_a_keras_model(run, tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"name": "t", "input": [1, 4, 4], "layers": ["relu"]}')
    result = run("import", str(spec), "--out", str(tmp_path / "v.yaml"))
    assert result.exit_code == 1
    assert "not a Keras model.to_json() document" in result.stderr


class _Small:
    """A small torch network with every merge mode, exported to ONNX."""

    @staticmethod
    def build():
        torch = pytest.importorskip("torch")
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(8)
                self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
                self.conv3 = nn.Conv2d(8, 4, 1)
                self.fc = nn.Linear(12 * 4 * 4, 5)

            def forward(self, x):
                x = torch.relu(self.bn1(self.conv1(x)))
                x = torch.relu(x + self.conv2(x))
                x = torch.cat([x, self.conv3(x)], 1)
                x = nn.functional.max_pool2d(x, 2)
                return self.fc(torch.flatten(x, 1))

        return Net().eval()


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("archcalc.importers.onnx_import",
                        reason="the ONNX importer is not in this checkout yet")
    torch = pytest.importorskip("torch")
    model = _Small.build()
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 8, 8), str(path), dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, opset_version=17)
    return path, model


def test_import_writes_a_spec_that_loads_as_the_model(run, tmp_path, small_onnx):
    path, model = small_onnx
    out = tmp_path / "small.yaml"
    result = run("import", str(path), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    trainable = sum(p.numel() for p in model.parameters())
    buffers = 2 * 8  # bn1's running mean and variance
    macs = 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 8 * 9 + 8 * 8 * 4 * 8 + 12 * 16 * 5
    line = result.stdout.strip()
    assert f"{trainable + buffers:,} params ({trainable:,} trainable), {macs:,} MACs at 3×8×8" \
        in line and line.endswith(f"wrote {out}")
    net = loads(out.read_text(encoding="utf-8"))
    same_network(net, load(str(path)))
    # Readable: the merges are block lists, the items one line each.
    text = out.read_text(encoding="utf-8")
    assert "  - conv: {name: conv1, filters: 8, kernel: 3, padding: 1, bias: false}" in text
    assert "    add:" in text and "    concat:" in text and "      - []" in text
    assert all(len(l) <= WIDTH for l in text.splitlines() if not l.startswith("source:"))


def test_import_refuses_then_replaces_with_force(run, tmp_path, small_onnx):
    path, _ = small_onnx
    out = tmp_path / "small.yaml"
    out.write_text("old\n")
    assert run("import", str(path), "--out", str(out)).exit_code == 1
    assert out.read_text() == "old\n"
    result = run("import", str(path), "--out", str(out), "--force")
    assert result.exit_code == 0, result.stderr
    assert out.read_text(encoding="utf-8").startswith("name: ")


def test_import_with_input_writes_that_input(run, tmp_path, small_onnx):
    path, _ = small_onnx
    out = tmp_path / "big.yaml"
    result = run("import", str(path), "--out", str(out), "--input", "3x16x16")
    assert result.exit_code == 0, result.stderr
    assert "MACs at 3×16×16; wrote" in result.stdout
    net = loads(out.read_text(encoding="utf-8"))
    assert net.input_shape == (3, 16, 16)


def test_import_with_the_wrong_channels_is_one_line_and_writes_nothing(run, tmp_path,
                                                                        small_onnx):
    path, _ = small_onnx
    out = tmp_path / "bad.yaml"
    result = run("import", str(path), "--out", str(out), "--input", "1x8x8")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert not out.exists()


def test_canonical_items_are_written_under_their_keyword_without_defaults():
    # What the importers return: the canonical form, every field spelt out.
    raw = {"name": "canon", "input": [3, 8, 8], "layers": [
        {"type": "conv2d", "filters": 4, "kernel": 3, "stride": 1, "padding": 1,
         "bias": True, "name": "c1"},
        {"type": "batchnorm", "eps": 1e-05, "momentum": 0.1, "name": "bn1"},
        {"type": "relu"},
        {"type": "dropout", "rate": 0.5},
        {"type": "leaky_relu", "slope": 0.2},
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "units": 1, "bias": False}]}
    lines = round_trip(raw).splitlines()
    assert lines[lines.index("layers:") + 1:] == [
        "  - conv: {name: c1, filters: 4, kernel: 3, padding: 1}",
        "  - batchnorm: {name: bn1}",
        "  - relu",
        "  - dropout",
        "  - leaky_relu: {slope: 0.2}",
        "  - flatten: {name: flat}",
        "  - dense: {units: 1, bias: false}"]


def test_import_of_a_keras_json(run, tmp_path):
    # A model.to_json() document, written by hand (no Keras needed): 8×8×3 → Conv2D(2, 3×3,
    # relu) → Flatten → Dense(4). Params 3·3·3·2 + 2 = 56 and 6·6·2·4 + 4 = 292; MACs
    # 6·6·2·27 = 1,944 and 72·4 = 288.
    pytest.importorskip("archcalc.importers.keras_import")
    doc = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 3], "name": "in"}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3],
                                            "strides": [1, 1], "padding": "valid",
                                            "activation": "relu", "use_bias": True,
                                            "data_format": "channels_last"}},
        {"class_name": "Flatten", "config": {"name": "f"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 4, "activation": "linear",
                                           "use_bias": True}}]}}
    src = tmp_path / "k.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "k.yaml"
    result = run("import", str(src), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "348 params (348 trainable), 2,232 MACs at 3×8×8" in result.stdout
    text = out.read_text(encoding="utf-8")
    assert "  - conv: {name: c, filters: 2, kernel: 3}" in text.splitlines()
    same_network(loads(text), load(str(src)))


def test_weights_out_writes_the_models_arrays(run, tmp_path, small_onnx):
    pytest.importorskip("archcalc.importers.onnx_weights",
                        reason="the ONNX importer reads no weights in this checkout yet")
    from archcalc.nn import build
    from archcalc.nn.weights import read_npz

    path, model = small_onnx
    out, npz = tmp_path / "s.yaml", tmp_path / "s.npz"
    result = run("import", str(path), "--out", str(out), "--weights-out", str(npz))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith(f"wrote {out} and {npz}")
    state = read_npz(npz)
    executor = build(loads(out.read_text(encoding="utf-8")))
    executor.load_state_dict(state, strict=True)  # every array, each of the right shape
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    got = executor.forward(x.numpy(), training=False)
    assert np.max(np.abs(got - want)) < 1e-4 * np.max(np.abs(want))


def test_weights_out_is_refused_for_other_files_and_existing_files(run, tmp_path):
    spec = tmp_path / "k.json"
    spec.write_text("{}")
    result = run("import", str(spec), "--out", str(tmp_path / "k.yaml"), "--weights-out",
                 str(tmp_path / "k.npz"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --weights-out reads the weights of .onnx and .keras "
                                     f"files, not of {spec} (fix: leave --weights-out out for "
                                     "this file)")
    npz = tmp_path / "old.npz"
    npz.write_bytes(b"old")
    result = run("import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "m.yaml"),
                 "--weights-out", str(npz))
    assert result.stderr.strip() == (f"error: {npz} exists (fix: pass --force to replace it, "
                                     "or choose another --weights-out)")
    assert npz.read_bytes() == b"old"


def test_weights_out_into_a_missing_directory_is_refused_before_the_import(run, tmp_path,
                                                                            small_onnx):
    """--out and --weights-out alike: neither makes a directory on the way."""
    path, _ = small_onnx
    for args in (["--out", str(tmp_path / "none" / "m.yaml")],
                 ["--out", str(tmp_path / "m.yaml"), "--weights-out",
                  str(tmp_path / "none" / "m.npz")]):
        result = run("import", str(path), *args)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: cannot write {tmp_path / 'none'}/m.")
        assert "No such file or directory" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "none").exists() and not (tmp_path / "m.yaml").exists()


def test_a_written_spec_over_a_spec_files_limits_is_written_with_a_warning(run, tmp_path,
                                                                          small_onnx,
                                                                          monkeypatch):
    path, _ = small_onnx
    out = tmp_path / "m.yaml"
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_BYTES", "100")
    result = run("import", str(path), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    size = len(out.read_bytes())
    assert size > 100
    assert result.stderr.strip() == (
        f"warning: {out} was written, but reading it back as a spec fails: the file is "
        f"{size:,} bytes; a spec may have at most 100 bytes (if the input is legitimate, raise "
        "the limit: ARCHCALC_MAX_SPEC_BYTES=<larger number>); the model file itself is not "
        "bound by a spec file's limits")
    monkeypatch.delenv("ARCHCALC_MAX_SPEC_BYTES")
    assert loads(out.read_text(encoding="utf-8")).name  # it is a whole, valid spec
    result = run("import", str(path), "--out", str(out), "--force")
    assert result.exit_code == 0 and result.stderr == ""


def test_the_status_line_wraps_on_a_terminal_and_stays_one_line_in_a_pipe(tmp_path, small_onnx):
    from test_fit_terminal import in_pipe, in_terminal, widest
    path, _ = small_onnx
    out = tmp_path / ("a_rather_long_directory_name_" * 2)
    out.mkdir()
    args = ["import", str(path), "--out", str(out / "model.yaml"), "--force"]
    shown = in_terminal(args, 60, columns=60)
    assert widest(shown) <= 60 and len(shown.splitlines()) > 1, shown
    piped = in_pipe(args, 60)
    assert len(piped.splitlines()) == 1 and len(piped) > 60
    assert "".join(shown.split()) == "".join(piped.split())  # the same words
