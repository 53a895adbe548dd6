"""Catalogue: model files that cannot be imported (issue 10, deliverable 4). Each is one line,
exit 1, no traceback: bytes that are not ONNX, a truncated or empty file, a directory named
.onnx, a file over MAX_MODEL_BYTES (refused by its size before parsing), a graph with two
inputs or dynamic H×W, unsupported operators (listed, at most 20, then a count), a .keras
that is not a zip, a Keras JSON with an unknown layer class, and the onnx package missing
(its pip command).

The ONNX files are built with onnx.helper (small and exact); the cases that need onnx or an
importer skip without them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from catalogue.runner import Case, check_case, run_case

FIX_EXPORT = ("(fix: export the model again (torch.onnx.export) and check the file was copied "
              "whole)")
CORRUPT = ("not a readable ONNX model: the protobuf is truncated or corrupt (Error parsing "
           "message with type 'onnx.ModelProto': Wire format was corrupt)")


def _onnx_file(name: str, nodes, inputs: list[tuple[str, list]]) -> None:
    """Write a float32 ONNX model (opset 17) whose last node's output is the graph's. onnx is
    imported when the case runs (those cases skip without it), not when the module loads."""
    def build(where: Path) -> None:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node(op, ins, outs, name=n) for op, ins, outs, n in nodes], "g",
            [helper.make_tensor_value_info(i, TensorProto.FLOAT, shape) for i, shape in inputs],
            [helper.make_tensor_value_info(nodes[-1][2][0], TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        (where / name).write_bytes(model.SerializeToString())
    return build


def _sines(count: int) -> list:
    return [("Sin", [f"t{i - 1}" if i else "x"], [f"t{i}"], f"sin{i}") for i in range(count)]


def _relu_onnx(name: str):
    return _onnx_file(name, [("Relu", ["x"], ["y"], "relu")], [("x", [1, 3, 8, 8])])


def _truncated(where: Path) -> None:
    _relu_onnx("whole.onnx")(where)
    data = (where / "whole.onnx").read_bytes()
    (where / "cut.onnx").write_bytes(data[: len(data) // 2])


def _directory(where: Path) -> None:
    (where / "x.onnx").mkdir()


def _no_onnx_package(where: Path) -> None:
    _relu_onnx("good.onnx")(where)
    (where / "fake").mkdir()
    (where / "fake" / "onnx.py").write_text('raise ImportError("no onnx here")\n')


KERAS_UNKNOWN = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 3], "name": "in"}},
    {"class_name": "Frobnicate", "config": {"name": "frob"}}]}})

ONNX_CASES = [
    Case("onnx_not_onnx", ["summary", "net.onnx"], f"error: net.onnx: {CORRUPT} {FIX_EXPORT}",
         files={"net.onnx": b"this is not an ONNX model, just text\n" * 4}),
    Case("onnx_truncated", ["summary", "cut.onnx"], f"error: cut.onnx: {CORRUPT} {FIX_EXPORT}",
         setup=_truncated),
    Case("onnx_empty", ["summary", "empty.onnx"],
         f"error: empty.onnx: the file is empty, not an ONNX model {FIX_EXPORT}",
         files={"empty.onnx": b""}),
    Case("onnx_two_inputs", ["summary", "two.onnx"],
         "error: two.onnx: the graph has 2 inputs ('x', 'y'); archcalc analyses networks with "
         "one image (or feature) input (fix: export the model with a single input tensor)",
         setup=_onnx_file("two.onnx", [("Add", ["x", "y"], ["z"], "add")],
                          [("x", [1, 3, 8, 8]), ("y", [1, 3, 8, 8])])),
    Case("onnx_dynamic_size", ["summary", "dyn.onnx"],
         "error: dyn.onnx: the input 'x' has dynamic or unknown sizes (3×?×?) (fix: give the "
         "input size with --input CxHxW, e.g. --input 3x224x224)",
         setup=_onnx_file("dyn.onnx", [("Relu", ["x"], ["y"], "relu")],
                          [("x", ["n", 3, "h", "w"])])),
    Case("onnx_dynamic_size_import", ["import", "dyn.onnx", "--out", "dyn.yaml"],
         "error: dyn.onnx: the input 'x' has dynamic or unknown sizes (3×?×?) (fix: give the "
         "input size with --input CxHxW, e.g. --input 3x224x224)",
         setup=_onnx_file("dyn.onnx", [("Relu", ["x"], ["y"], "relu")],
                          [("x", ["n", 3, "h", "w"])])),
    Case("onnx_unsupported_ops", ["summary", "sin.onnx"],
         "error: sin.onnx: 23 ONNX nodes archcalc cannot express, one a line below (fix: "
         "archcalc maps Conv, ConvTranspose, BatchNormalization, pools, Gemm/MatMul, Flatten, "
         "Resize, Pad, LRN, Dropout, activations and Add/Concat/Mul branches (README, 'Layer "
         "kinds'); `--partial` (summary, import) keeps the network before "
         "the first of them)", setup=_onnx_file("sin.onnx", _sines(23), [("x", [1, 3, 8, 8])])),
    Case("onnx_missing_package", ["summary", "good.onnx"],
         "error: good.onnx: reading .onnx files needs the onnx package (fix: pip install "
         "'archcalc[onnx]')", setup=_no_onnx_package, env={"PYTHONPATH": "fake"},
         subprocess=True),
]
# Before parsing: these need no importer.
FILE_CASES = [
    Case("onnx_directory", ["summary", "x.onnx"],
         "error: x.onnx: is a directory, not a spec file (fix: name a .yaml or .json file)",
         setup=_directory),
    Case("onnx_too_large", ["summary", "big.onnx"],
         "error: big.onnx: the file is 200 bytes; an imported model file may have at most 100 "
         "bytes (fix: if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_MODEL_BYTES=<larger number>)",
         files={"big.onnx": bytes(range(200))}, env={"ARCHCALC_MAX_MODEL_BYTES": "100"}),
]
KERAS_CASES = [
    Case("keras_not_a_zip", ["summary", "net.keras"],
         "error: net.keras: not a Keras archive: the file is not a zip (fix: save the model "
         "with model.save('model.keras') (Keras 3), or write model.to_json() to a .json file)",
         files={"net.keras": b"this is not a zip\n"}),
    Case("keras_unknown_layer", ["summary", "net.json"],
         "error: net.json: 1 Keras layer archcalc cannot express: Frobnicate 'frob' (fix: "
         "archcalc imports Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, "
         "Max/AveragePooling2D, GlobalAverage/MaxPooling2D, Dense, Flatten, Dropout, "
         "BatchNormalization, activations, ZeroPadding2D, Cropping2D, UpSampling2D, Add, "
         "Concatenate and Multiply (channels-last))", files={"net.json": KERAS_UNKNOWN}),
]


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _needs(*modules: str):
    missing = [m for m in modules if not _have(m)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


ONNX = _needs("onnx", "archcalc.importers.onnx_import")
KERAS = _needs("archcalc.importers.keras_import")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=ONNX) for c in ONNX_CASES]
                         + [pytest.param(c, id=c.id) for c in FILE_CASES]
                         + [pytest.param(c, id=c.id, marks=KERAS) for c in KERAS_CASES])
def test_case(case, tmp_path):
    check_case(case, tmp_path)


@ONNX
def test_too_large_is_refused_before_parsing(tmp_path, monkeypatch):
    # A file over the limit never reaches the protobuf parser (a 2 GB file would be read).
    import onnx

    def parse(*args, **kwargs):
        raise AssertionError("parsed a file over MAX_MODEL_BYTES")

    monkeypatch.setattr(onnx.ModelProto, "FromString", parse)
    monkeypatch.setattr(onnx, "load", parse)
    monkeypatch.setattr(onnx, "load_model_from_string", parse)
    case = FILE_CASES[1]
    code, _, err = run_case(case, tmp_path)
    assert code == 1 and err.startswith(case.first_line)


@ONNX
def test_nothing_is_written_when_the_import_fails(tmp_path):
    case = ONNX_CASES[5]  # import of a dynamic-size graph
    check_case(case, tmp_path)
    assert not (tmp_path / "dyn.yaml").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dyn.onnx"]  # no temporary file left


@ONNX
def test_unsupported_nodes_are_listed_one_a_line_then_counted(tmp_path):
    case = next(c for c in ONNX_CASES if c.id == "onnx_unsupported_ops")
    code, _, err = run_case(case, tmp_path)
    lines = err.splitlines()
    assert code == 1 and lines[0] == case.first_line
    assert lines[1:] == [f"  Sin (node 'sin{i}', #{i})" for i in range(20)] + ["  ... and 3 more"]
