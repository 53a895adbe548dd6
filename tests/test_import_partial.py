"""`archcalc import MODEL.onnx --partial` and onnx_import.read(..., partial=True): a graph with
nodes archcalc cannot express is analysed up to the first of them.

The graphs are built here with onnx.helper, small enough to count by hand: the cut is the
last tensor every path to the output passes (so a branch holding the unsupported node is
left out with its whole merge), and the note names the node and counts what was left out.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.importers.onnx_import import partial_note, read  # noqa: E402
from archcalc.spec import from_dict, load  # noqa: E402


def _conv(name: str, x: str, y: str, c_in: int, c_out: int, inits: list) -> object:
    """A 3×3 'same' Conv without bias; its weight (c_out, c_in, 3, 3) joins `inits`."""
    w = np.full((c_out, c_in, 3, 3), 0.1, dtype=np.float32)
    inits.append(numpy_helper.from_array(w, f"{name}.w"))
    return helper.make_node("Conv", [x, f"{name}.w"], [y], name=name, kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1])


def _save(tmp_path, nodes: list, inits: list, out: str, out_dims: list, name="m.onnx"):
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_dims)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def chain(tmp_path):
    """conv1 → relu1 → Sin (#2, unsupported) → relu2 → flatten: cut after relu1."""
    inits: list = []
    nodes = [_conv("conv1", "x", "a", 3, 4, inits),
             helper.make_node("Relu", ["a"], ["b"], name="relu1"),
             helper.make_node("Sin", ["b"], ["c"], name="sin"),
             helper.make_node("Relu", ["c"], ["d"], name="relu2"),
             helper.make_node("Flatten", ["d"], ["y"], name="flat")]
    return _save(tmp_path, nodes, inits, "y", [1, 256])


@pytest.fixture
def branch(tmp_path):
    """conv1 → relu1 → [conv_a → Sin (#3)] + [conv_b] → Add → relu2: the Sin sits inside
    a branch, so the cut is before the whole Add: conv1, relu1 kept, 5 nodes left out."""
    inits: list = []
    nodes = [_conv("conv1", "x", "a", 3, 4, inits),
             helper.make_node("Relu", ["a"], ["b"], name="relu1"),
             _conv("conv_a", "b", "ca", 4, 4, inits),
             helper.make_node("Sin", ["ca"], ["sa"], name="sin"),
             _conv("conv_b", "b", "cb", 4, 4, inits),
             helper.make_node("Add", ["sa", "cb"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu2")]
    return _save(tmp_path, nodes, inits, "y", [1, 4, 8, 8])


def _types(raw: dict) -> list[str]:
    return [item["type"] for item in raw["layers"]]


def test_chain_stops_before_the_unsupported_node(chain):
    raw = read(chain, "m.onnx", None, partial=True)
    assert _types(raw) == ["conv2d", "relu"]
    assert partial_note(raw) == "stopped before node 'sin' (Sin, #2): 3 nodes left out"
    network = from_dict(raw)  # a valid spec: conv 3→4 at 8×8, then relu
    assert network.input_shape == (3, 8, 8)
    assert sum(1 for _ in network.leaves()) == 2


def test_an_unsupported_node_inside_a_branch_drops_its_whole_merge(branch):
    raw = read(branch, "m.onnx", None, partial=True)
    assert _types(raw) == ["conv2d", "relu"]
    assert [item["name"] for item in raw["layers"]] == ["conv1", "relu1"]
    assert partial_note(raw) == "stopped before node 'sin' (Sin, #3): 5 nodes left out"


def test_without_partial_the_same_graph_is_an_error(run, chain, tmp_path):
    out = tmp_path / "m.yaml"
    result = run("import", str(chain), "--out", str(out))
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {chain}: 1 ONNX node archcalc cannot express: "
                            "Sin (node 'sin', #2)")
    assert first.endswith("; `--partial` (summary, import) keeps the "
                          "network before the first of them)")
    assert not out.exists()


def test_import_partial_writes_the_cut_spec_and_says_where(run, branch, tmp_path):
    out = tmp_path / "m.yaml"
    result = run("import", str(branch), "--out", str(out), "--partial")
    assert result.exit_code == 0, result.stderr
    lines = result.output.splitlines()
    # conv1: 4·3·3·3 = 108 params, 8·8·4·27 = 6,912 MACs; relu1: none
    assert lines[0] == (f"{branch}: 2 layers, 108 params (108 trainable), 6,912 MACs at "
                        f"3×8×8; wrote {out}")
    assert lines[1] == "note: stopped before node 'sin' (Sin, #3): 5 nodes left out"
    written = load(str(out))
    assert [leaf.path for leaf in written.leaves()] == [("conv1",), ("relu1",)]
    assert "partial: stopped before node 'sin'" in out.read_text()


def test_partial_with_weights_writes_the_kept_layers_weights(run, chain, tmp_path):
    out, npz = tmp_path / "m.yaml", tmp_path / "m.npz"
    result = run("import", str(chain), "--out", str(out), "--weights-out", str(npz),
                 "--partial")
    assert result.exit_code == 0, result.stderr
    assert result.output.splitlines()[-1] == \
        "note: stopped before node 'sin' (Sin, #2): 3 nodes left out"
    with np.load(npz) as arrays:
        weights = [k for k in arrays.files if arrays[k].shape == (4, 3, 3, 3)]
        assert len(weights) == 1 and np.all(arrays[weights[0]] == np.float32(0.1))


def test_a_model_without_unsupported_nodes_is_whole_and_has_no_note(tmp_path, run):
    inits: list = []
    nodes = [_conv("conv1", "x", "a", 3, 4, inits),
             helper.make_node("Relu", ["a"], ["y"], name="relu1")]
    path = _save(tmp_path, nodes, inits, "y", [1, 4, 8, 8])
    raw = read(path, "m.onnx", None, partial=True)
    assert raw == read(path, "m.onnx", None) and partial_note(raw) is None
    result = run("import", str(path), "--out", str(tmp_path / "m.yaml"), "--partial")
    assert result.exit_code == 0, result.stderr
    assert len(result.output.splitlines()) == 1


def test_an_unsupported_first_node_leaves_nothing(run, tmp_path):
    inits: list = []
    nodes = [helper.make_node("Sin", ["x"], ["s"], name="sin"),
             _conv("conv1", "s", "y", 3, 4, inits)]
    path = _save(tmp_path, nodes, inits, "y", [1, 4, 8, 8])
    result = run("import", str(path), "--out", str(tmp_path / "m.yaml"), "--partial")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        f"error: {path}: no layer comes before the first unsupported node, node 'sin' "
        "(Sin, #0): nothing to analyse (fix: ")
    assert "Traceback" not in result.output + result.stderr


def test_partial_is_refused_for_files_other_than_onnx(run, tmp_path):
    spec = tmp_path / "m.keras"
    spec.write_bytes(b"PK")
    result = run("import", str(spec), "--out", str(tmp_path / "m.yaml"), "--partial")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: --partial cuts .onnx graphs, not {spec} "
                                     "(fix: leave --partial out for this file)")


def test_a_merge_before_the_unsupported_node_is_kept_whole(tmp_path):
    """conv1 → [conv_a] + [] (Add) → Cos (#3) → relu: the residual block stays, as a merge."""
    inits: list = []
    nodes = [_conv("conv1", "x", "a", 3, 4, inits),
             _conv("conv_a", "a", "ca", 4, 4, inits),
             helper.make_node("Add", ["ca", "a"], ["s"], name="add"),
             helper.make_node("Cos", ["s"], ["c"], name="cos"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    raw = read(_save(tmp_path, nodes, inits, "y", [1, 4, 8, 8]), "m.onnx", None, partial=True)
    assert raw["layers"][0]["type"] == "conv2d"
    assert [len(b) for b in raw["layers"][1]["add"]] == [1, 0]  # conv_a, and the identity
    assert len(raw["layers"]) == 2
    assert partial_note(raw) == "stopped before node 'cos' (Cos, #3): 2 nodes left out"


def test_summary_partial_analyses_the_cut_graph_and_says_where_on_stderr(run, branch):
    """`summary MODEL.onnx --partial`: the same cut as import's; the note goes to stderr so
    that JSON stays parseable."""
    result = run("summary", str(branch), "--partial", "--format", "json")
    assert result.exit_code == 0, result.stderr
    import json
    data = json.loads(result.stdout)
    # conv1: 4·3·3·3 = 108 params, 8·8·4·27 = 6,912 MACs; relu1: none
    assert data["totals"]["params"] == 108 and data["totals"]["macs"] == 6912
    assert [row["name"] for row in data["layers"]] == ["conv1", "relu1"]
    assert result.stderr.strip() == (f"note: {branch}: stopped before node 'sin' (Sin, #3): "
                                     "5 nodes left out")


def test_summary_without_partial_refuses_the_graph_and_names_the_option(run, branch):
    result = run("summary", str(branch))
    assert result.exit_code == 1
    assert "`--partial` (summary, import) keeps the network" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_summary_partial_is_refused_for_a_yaml_spec(run, tmp_path):
    result = run("summary", "lenet5", "--partial")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: --partial cuts .onnx graphs, not lenet5 "
                                     "(fix: leave --partial out for this file)")
