"""Hostile model files given to the importers through the CLI: each must give one line and
exit 1 (never a traceback or exit 70), never read a file the model names, and stay bounded
in time. Files are hand-made with onnx.helper (a graph no exporter would write) and zipfile.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(nodes, inits=(), dims=(1, 3, 8, 8)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _save(tmp_path, model, name="m.onnx") -> str:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    text = result.output.strip()
    assert text.startswith("error:") and "\n" not in text, text
    assert "internal error" not in text
    for word in words:
        assert word in text, text
    return text


def _external(name, dims, dtype, location):
    tensor = TensorProto(name=name, data_type=dtype, dims=dims)
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


@pytest.mark.parametrize("location", ["/dev/zero", "../../../../etc/passwd", "secret.bin"])
def test_external_data_is_never_read(run, tmp_path, monkeypatch, location):
    # A relative location would be read relative to the working directory (onnx's base_dir
    # ""): the secret there must not turn into weights, nor the path into a traceback.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.bin").write_bytes(np.arange(108, dtype=np.float32).tobytes())
    conv = _save(tmp_path, _model([helper.make_node("Conv", ["x", "W"], ["y"])],
                                  [_external("W", [4, 3, 3, 3], TensorProto.FLOAT, location)]))
    _one_line_error(run("check", conv), "'W'", "external file")
    # a small constant (a Reshape target) is folded on demand: the same refusal
    reshape = _save(tmp_path, _model([helper.make_node("Reshape", ["x", "S"], ["y"])],
                                     [_external("S", [2], TensorProto.INT64, location)]), "r.onnx")
    _one_line_error(run("summary", reshape), "'S'", "external file")


def test_initializer_with_less_data_than_its_dims(run, tmp_path):
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10**6, 3, 3, 3],
                         raw_data=b"\0" * 16)
    path = _save(tmp_path, _model([helper.make_node("Conv", ["x", "W"], ["y"])], [weight]))
    _one_line_error(run("check", path), "'W'", "1000000×3×3×3", "does not hold")


@pytest.mark.parametrize("case, words", [
    ("kernel", ["Conv whose kernel_shape 5×5 disagrees with its weight's 3×3", "node 'conv'"]),
    ("channels", ["Conv whose weight (4×2×3×3) reads 2 input channels but its input has 3"]),
    ("bias", ["Conv whose bias (5) does not match its 4 outputs"]),
    ("gemm", ["Gemm whose weight (10×7) reads 7 input channels but its input has 192"]),
])
def test_attributes_that_disagree_with_the_weights_are_refused_by_summary(run, tmp_path, case,
                                                                           words):
    """The summary counts from attributes and dims without reading the weights: a file whose
    attributes and weight dims disagree (damaged, or edited by hand) is refused, node named,
    instead of counted one way and run another."""
    w = numpy_helper.from_array(np.zeros((4, 2 if case == "channels" else 3, 3, 3),
                                         np.float32), "W")
    inits = [w]
    conv_inputs = ["x", "W"]
    attrs = {"kernel_shape": [5, 5] if case == "kernel" else [3, 3], "pads": [1, 1, 1, 1]}
    if case == "bias":
        inits.append(numpy_helper.from_array(np.zeros(5, np.float32), "B"))
        conv_inputs.append("B")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], name="conv", **attrs)]
    if case == "gemm":  # 3×8×8 input → conv 4×8×8 → flatten 256 … but the Gemm reads 7
        inits[0] = numpy_helper.from_array(np.zeros((3, 3, 3, 3), np.float32), "W")
        nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]),
                 helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                 helper.make_node("Gemm", ["f", "G"], ["y"], name="fc", transB=1)]
        inits.append(numpy_helper.from_array(np.zeros((10, 7), np.float32), "G"))
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu"))
    path = _save(tmp_path, _model(nodes, inits))
    _one_line_error(run("summary", path), *words)


def test_cycle_and_unsorted_graph(run, tmp_path):
    cycle = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "c"], ["b"]),
             helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    _one_line_error(run("summary", _save(tmp_path, _model(cycle))), "'c'", "cycle")
    unsorted = [helper.make_node("Relu", ["a"], ["y"]), helper.make_node("Relu", ["x"], ["a"])]
    _one_line_error(run("summary", _save(tmp_path, _model(unsorted), "u.onnx")),
                    "topological order")


def test_tensor_written_twice(run, tmp_path):
    # Before: the second writer silently won (a sigmoid network from a relu one).
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    _one_line_error(run("summary", _save(tmp_path, _model(nodes))), "'a'", "already written")


def test_many_unnamed_nodes_name_in_linear_time(run, tmp_path):
    # 20,000 unnamed Relus all want the name 'relu': was quadratic (64 s), now ~1 s.
    n = 20_000
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i}"],
                              ["y" if i == n - 1 else f"t{i + 1}"]) for i in range(n)]
    path = _save(tmp_path, _model(nodes))
    start = time.perf_counter()
    result = run("summary", path, "--depth", "1")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 20


def _ladder(n):
    """Concat(x, c0, …, c_{i−1}, relu(c_{i−1})) for i < n: every merge reads all earlier ones."""
    nodes, outs = [], ["x"]
    for i in range(n):
        nodes.append(helper.make_node("Relu", [outs[-1]], [f"r{i}"]))
        nodes.append(helper.make_node("Concat", [*outs, f"r{i}"], [f"c{i}"], axis=1))
        outs.append(f"c{i}")
    nodes.append(helper.make_node("Relu", [outs[-1]], ["y"]))
    return _model(nodes)


@pytest.mark.parametrize("n, words", [(300, "merges nest more"), (500, "125,750 inputs")])
def test_concat_ladder_is_bounded(run, tmp_path, n, words):
    # 300 steps took 58 s (a structure rebuilt per inner merge); 3,000 would take hours.
    path = _save(tmp_path, _ladder(n))
    start = time.perf_counter()
    _one_line_error(run("summary", path), words)
    assert time.perf_counter() - start < 15


def test_constant_of_huge_shape_is_not_allocated(run, tmp_path):
    # A Reshape target computed from a 4·10⁹-element ConstantOfShape (16 GB if folded).
    nodes = [helper.make_node("Constant", [], ["n"],
                              value=numpy_helper.from_array(np.array([4 * 10**9], np.int64))),
             helper.make_node("ConstantOfShape", ["n"], ["big"],
                              value=numpy_helper.from_array(np.array([1.0], np.float32))),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
             helper.make_node("Cast", ["s"], ["si"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "si"], ["y"])]
    path = _save(tmp_path, _model(nodes))
    start = time.perf_counter()
    _one_line_error(run("summary", path), "Reshape")
    assert time.perf_counter() - start < 15


def test_long_chains_of_constants_do_not_recurse(run, tmp_path):
    # 20,000 Identities before a Conv's weight: `check` folds them to the weight. It was
    # "the input nests too deeply" (a RecursionError in the constant folding).
    k = 20_000
    nodes = [helper.make_node("Identity", ["W" if i == 0 else f"w{i}"], [f"w{i + 1}"])
             for i in range(k)] + [helper.make_node("Conv", ["x", f"w{k}"], ["y"])]
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W")
    result = run("check", _save(tmp_path, _model(nodes, [weight])))
    assert result.exit_code == 0, result.output
    assert "the file's own" in result.output
    # 2,000 Neg nodes computing a Reshape target (an even count: [1, -1] again): folded, and
    # the Reshape is the flatten it amounts to (3·8·8 = 192 features).
    k = 2_000
    nodes = [helper.make_node("Constant", [], ["s0"],
                              value=numpy_helper.from_array(np.array([1, -1], np.int64)))]
    nodes += [helper.make_node("Neg", [f"s{i}"], [f"s{i + 1}"]) for i in range(k)]
    nodes += [helper.make_node("Reshape", ["x", f"s{k}"], ["y"])]
    result = run("summary", _save(tmp_path, _model(nodes), "r.onnx"))
    assert result.exit_code == 0, result.output
    assert "192" in result.output and "flatten" in result.output


def test_a_graph_of_many_dead_constants_is_refused_before_shape_inference(run, tmp_path,
                                                                          monkeypatch):
    # 10⁶ Constant nodes (44 MB) took 17 s and 2.6 GB; the bound is 5 entries per layer of
    # MAX_LAYERS (here lowered to 100, so 501 nodes are too many and 500 are not).
    monkeypatch.setenv("ARCHCALC_MAX_LAYERS", "100")
    dead = [helper.make_node("Constant", [], [f"k{i}"], value_float=1.0) for i in range(500)]
    relu = helper.make_node("Relu", ["x"], ["y"])
    _one_line_error(run("summary", _save(tmp_path, _model([*dead, relu]))),
                    "501 nodes", "at most 500", "ARCHCALC_MAX_LAYERS")
    result = run("summary", _save(tmp_path, _model([*dead[:-1], relu]), "ok.onnx"))
    assert result.exit_code == 0, result.output


_EVIL = "evil\n\x1b[31mRED\u202eabc" + "z" * 100_000


@pytest.mark.parametrize("where", ["node", "input", "producer"])
def test_names_from_the_file_are_echoed_on_one_line(run, tmp_path, where):
    # Node and input names went raw into errors (two lines, 100 kB, a bidi override); a
    # producer name with a newline made the spec's source invalid.
    model = _model([helper.make_node("Sin" if where == "node" else "Relu", ["x"], ["y"],
                                     name=_EVIL)])
    if where == "input":
        model.graph.input[0].name = model.graph.node[0].input[0] = "x" + _EVIL
        model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    if where == "producer":
        model.producer_name = _EVIL
        result = run("summary", _save(tmp_path, model))
        assert result.exit_code == 0, result.output
        return
    text = _one_line_error(run("summary", _save(tmp_path, model)), "\\n", "\\u202e",
                           "characters)")
    assert len(text) < 1000 and "\u202e" not in text


@pytest.mark.parametrize("op_type", ["pool", "scalar", "_init__", "merge", "target"])
def test_op_types_never_reach_the_classifiers_helpers(run, tmp_path, op_type):
    # op_type "pool" dispatched to _Classifier._pool (exit 70: KeyError / TypeError).
    path = _save(tmp_path, _model([helper.make_node(op_type, ["x"], ["y"])]))
    _one_line_error(run("summary", path), f"cannot express: {op_type} ")


def test_node_without_outputs_is_ignored(run, tmp_path):
    nodes = [helper.make_node("Relu", ["x"], []), helper.make_node("Relu", ["x"], ["y"])]
    result = run("summary", _save(tmp_path, _model(nodes)))
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------
# Keras archives (hand-made: config.json of a one-Conv2D Sequential, model.weights.h5 by h5py)

_CONV_CONFIG = {"class_name": "Sequential", "keras_version": "2.15.0", "config": {
    "name": "m", "layers": [{"class_name": "Conv2D", "config": {
        "name": "conv", "trainable": True, "batch_input_shape": [None, 8, 8, 3], "filters": 4,
        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "activation": "linear",
        "use_bias": True, "data_format": "channels_last"}}]}}


def _keras(tmp_path, build, name="m.keras", metadata=None) -> str:
    """A .keras zip with the config above and the model.weights.h5 that build(h5file) writes."""
    import io
    import json
    import zipfile
    h5py = pytest.importorskip("h5py")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        build(h5)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(_CONV_CONFIG))
        archive.writestr("model.weights.h5", buffer.getvalue())
        if metadata is not None:
            archive.writestr("metadata.json", metadata)
    return str(path)


def _bias(h5):
    h5.create_dataset("layers/conv2d/vars/1", data=np.zeros(4, np.float32))


def test_keras_weights_in_an_hdf5_external_file_are_never_read(run, tmp_path):
    # HDF5 external storage names any file; before, check ran on its bytes as the kernel.
    secret = tmp_path / "secret.raw"
    secret.write_bytes(np.arange(108, dtype=np.float32).tobytes())

    def build(h5):
        h5.create_dataset("layers/conv2d/vars/0", shape=(3, 3, 3, 4), dtype="f4",
                          external=[(str(secret), 0, 432)])
        _bias(h5)
    path = _keras(tmp_path, build)
    _one_line_error(run("check", path), "vars/0", "another file")
    _one_line_error(run("import", path, "--out", str(tmp_path / "o.yaml"), "--weights-out",
                        str(tmp_path / "o.npz")), "another file")
    assert not (tmp_path / "o.npz").exists()


def test_keras_variable_declaring_more_than_the_file_holds(run, tmp_path):
    # 4·10¹⁰ bytes of never-written chunks in a 5 kB file: refused before any allocation.
    def build(h5):
        h5.create_dataset("layers/conv2d/vars/0", shape=(10**5, 10**5), dtype="f4",
                          chunks=(1000, 1000), compression="gzip")
        _bias(h5)
    _one_line_error(run("check", _keras(tmp_path, build)), "100000×100000",
                    "40,000,000,000 bytes")


def test_keras_kernel_of_the_wrong_rank(run, tmp_path):
    # Was an internal error (exit 70: "axes don't match array").
    def build(h5):
        h5.create_dataset("layers/conv2d/vars/0", data=np.ones(5, np.float32))
        _bias(h5)
    _one_line_error(run("check", _keras(tmp_path, build)), "'conv'", "shapes 5, 4")


def test_keras_oversized_metadata_says_a_fix_that_works(run, tmp_path):
    # metadata.json's bound is fixed (64 KiB): raising MAX_SPEC_BYTES would not help.
    path = _keras(tmp_path, _bias, metadata="[" * 100_000)
    text = _one_line_error(run("summary", path), "metadata.json", "65,536")
    assert "MAX_SPEC_BYTES" not in text


@pytest.mark.parametrize("training, words", [
    (True, ["Dropout with training_mode true (node 'drop', #0)"]),
    (False, None),
])
def test_dropout_in_training_mode_is_not_taken_for_inference_dropout(run, tmp_path, training,
                                                                     words):
    """Dropout (opset 12+) with a training_mode input of true drops at inference too, which
    archcalc's dropout never does: refused by name. false is the usual inference dropout."""
    inits = [numpy_helper.from_array(np.array(0.25, np.float32), "ratio"),
             numpy_helper.from_array(np.array(training), "training")]
    nodes = [helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="drop")]
    path = _save(tmp_path, _model(nodes, inits))
    result = run("summary", path, "--format", "json")
    if words:
        _one_line_error(result, *words)
    else:
        from archcalc.importers.onnx_import import read
        assert result.exit_code == 0, result.output
        assert [(i["type"], i["rate"]) for i in read(path, "m.onnx", None)["layers"]] == \
            [("dropout", 0.25)]


def test_a_gemm_bias_that_is_not_one_per_unit_is_refused_as_a_damaged_file(run, tmp_path):
    """ONNX lets Gemm's C broadcast; a dense layer's bias is one value per unit: 7 for 10
    units is refused (summary counted 10 while check refused the file), named as damage."""
    inits = [numpy_helper.from_array(np.zeros((10, 192), np.float32), "G"),
             numpy_helper.from_array(np.zeros(7, np.float32), "B")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "G", "B"], ["y"], name="fc", transB=1)]
    path = _save(tmp_path, _model(nodes, inits))
    text = _one_line_error(run("summary", path),
                           "Gemm whose bias (7) is not one value per unit (10)")
    assert text.endswith("(fix: the file's attributes contradict its weights (damaged or "
                         "edited by hand): export the model again)")
