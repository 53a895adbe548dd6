"""archcalc.importers.onnx_wire: an .onnx file read without its weights' bytes.

The oracle is onnx itself: the light bytes must parse to the same ModelProto as the file,
less exactly the large data fields, and the walk must read a small part of the file.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.importers import onnx_wire  # noqa: E402
from archcalc.importers.onnx_import import convert, load_model, read  # noqa: E402


def _model(tmp_path, big_in_float_data: bool = False):
    """x (1×3×16×16) → conv (64×3×7×7 weight: 37,632 bytes, skipped) → Reshape to (1, −1)
    by a small constant shape (kept) → dense via Gemm (10×16384 weight, skipped; bias 10,
    kept)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 3, 7, 7)).astype(np.float32)
    fc = rng.standard_normal((10, 64 * 16 * 16)).astype(np.float32)
    w_proto = numpy_helper.from_array(w, "conv.weight")
    if big_in_float_data:  # some exporters write float_data, not raw_data
        w_proto = helper.make_tensor("conv.weight", TensorProto.FLOAT, w.shape, w.ravel())
    inits = [w_proto, numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             numpy_helper.from_array(fc, "fc.weight"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv",
                              kernel_shape=[7, 7], pads=[3, 3, 3, 3]),
             helper.make_node("Reshape", ["c", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc",
                              transB=1)]
    graph = helper.make_graph(nodes, "net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path, model


class _Counting(io.FileIO):
    """A file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        _Counting.read_bytes += len(data)
        return data


@pytest.mark.parametrize("float_data", [False, True])
def test_light_bytes_are_the_model_less_its_large_data_fields(tmp_path, float_data):
    path, model = _model(tmp_path, float_data)
    with open(path, "rb") as fh:
        light, skipped = onnx_wire.light_bytes(fh, path.stat().st_size)
    assert skipped == {"conv.weight", "fc.weight"}
    expected = onnx.ModelProto()
    expected.CopyFrom(model)
    for t in expected.graph.initializer:
        if t.name in skipped:
            t.ClearField("raw_data")
            t.ClearField("float_data")
    assert onnx.ModelProto.FromString(light) == expected
    assert len(light) < 2_000 < path.stat().st_size // 300


def test_the_walk_reads_a_small_part_of_the_file(tmp_path):
    path, _ = _model(tmp_path)
    _Counting.read_bytes = 0
    with _Counting(path, "rb") as fh:
        onnx_wire.light_bytes(fh, path.stat().st_size)
    size = path.stat().st_size  # 693 kB, nearly all of it fc.weight
    assert _Counting.read_bytes < 40_000 < size // 15


def test_the_light_read_converts_to_the_same_spec_as_the_whole_file(tmp_path):
    path, _ = _model(tmp_path)
    whole = convert(load_model(path, "m.onnx"), "m.onnx", None, "m")
    assert read(path, "m.onnx", None) == whole
    # the Reshape target (a kept constant) was folded: conv 64×16×16 → 16,384 features
    assert [item["type"] for item in whole["layers"]] == ["conv2d", "flatten", "dense"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "group"])
def test_bytes_the_walk_does_not_follow_give_none(tmp_path, damage):
    path, _ = _model(tmp_path)
    data = path.read_bytes()
    data = {"truncated": data[: len(data) // 2],
            "garbage": b"\xff" * 64,
            "group": b"\x0b\x0c" + data}[damage]  # wire type 3: a group
    damaged = tmp_path / "d.onnx"
    damaged.write_bytes(data)
    with open(damaged, "rb") as fh:
        assert onnx_wire.light_bytes(fh, len(data)) is None


def test_a_file_of_tiny_fields_past_the_bound_is_left_to_the_whole_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_wire, "MAX_FIELDS", 100)
    data = b"\x08\x01" * 101  # ir_version = 1, 101 times: valid protobuf, 101 fields
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert onnx_wire.light_bytes(fh, len(data)) is None
    monkeypatch.setattr(onnx_wire, "MAX_FIELDS", 101)
    with open(path, "rb") as fh:
        assert onnx_wire.light_bytes(fh, len(data)) == (data, frozenset())


def test_a_tensor_with_two_data_fields_is_left_to_the_whole_parse(tmp_path):
    """protobuf keeps the last raw_data of a tensor: a file whose first one is large (and
    would be skipped) and whose last holds the values must read as the whole parse reads it."""
    path, model = _model(tmp_path)
    shape = next(t for t in model.graph.initializer if t.name == "shape")
    real = shape.raw_data
    shape.ClearField("raw_data")
    big = TensorProto(raw_data=b"\0" * (onnx_wire.LARGE_BYTES + 8)).SerializeToString()
    last = TensorProto(raw_data=real).SerializeToString()
    tensor = shape.SerializeToString() + big + last  # raw_data twice, as a crafted file may
    model.graph.initializer.remove(shape)
    # a second graph field merges into the first: its initializer joins the list
    extra = onnx_wire._framed(5, tensor)
    data = model.SerializeToString() + onnx_wire._framed(7, extra)
    merged = onnx.ModelProto.FromString(data)
    kept = next(t for t in merged.graph.initializer if t.name == "shape")
    assert numpy_helper.to_array(kept).tolist() == [1, -1]  # the last raw_data wins
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert onnx_wire.light_bytes(fh, path.stat().st_size) is None
    assert read(path, "m.onnx", None) == convert(load_model(path, "m.onnx"), "m.onnx", None, "m")


def test_consecutive_kept_fields_are_copied_as_one_piece(tmp_path, monkeypatch):
    """A file of many small fields keeps a few slices, not one bytes object per field."""
    data = b"\x08\x01" * 50_000  # 50,000 ir_version fields
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    takes = []
    real = onnx_wire._Source.take

    def counting(self, begin, end):
        if end - begin > 10:  # the slices kept (varint reads take at most 10 bytes)
            takes.append(end - begin)
        return real(self, begin, end)

    monkeypatch.setattr(onnx_wire._Source, "take", counting)
    with open(path, "rb") as fh:
        assert onnx_wire.light_bytes(fh, len(data)) == (data, frozenset())
    assert takes == [len(data)]
