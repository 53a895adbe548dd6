"""`archcalc export`: options, overwriting, weights files, missing packages, failed writes.

The written ONNX files are checked with onnx.checker and run with onnxruntime against the
executor on the weights the command says it wrote (random seed 0, a --weights file, or an
.onnx SPEC's own).
"""

from __future__ import annotations

import builtins
import py_compile

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from archcalc.nn.network import build  # noqa: E402
from archcalc.nn.weights import save_weights  # noqa: E402
from archcalc.spec import load  # noqa: E402


def one_error(result, *parts: str) -> None:
    """Exit 1 with one line on stderr, 'error: …', holding every part; no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def initializers(path) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_export_writes_a_valid_model_with_the_seed_0_weights(run, tmp_path):
    out = tmp_path / "lenet5.onnx"
    result = run("export", "lenet5", "--onnx", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.output == (f"lenet5: wrote {out} (ONNX opset 17, 12 nodes, 61,706 weights: "
                             "random (seed 0))\n")
    onnx.checker.check_model(str(out), full_check=True)
    model = build(load("lenet5"), seed=0)
    x = np.random.default_rng(3).standard_normal((4, 1, 32, 32)).astype(np.float32)
    expected = model.forward(x)
    assert np.abs(run_onnx(out, x) - expected).max() < 1e-5 * np.abs(expected).max()


def test_weights_file_is_what_the_model_holds(run, tmp_path):
    model = build(load("lenet5"), seed=7)
    ckpt = tmp_path / "w.npz"
    save_weights(model, ckpt)
    out = tmp_path / "m.onnx"
    result = run("export", "lenet5", "--onnx", str(out), "--weights", str(ckpt))
    assert result.exit_code == 0, result.stderr
    assert result.output.endswith(f"weights: {ckpt})\n")
    arrays = initializers(out)
    for key, value in model.params.items():
        np.testing.assert_array_equal(arrays[key], value)


def test_weights_of_another_spec_is_one_line_and_no_file(run, tmp_path):
    ckpt = tmp_path / "resnet.npz"
    save_weights(build(load("squeezenet1_0"), seed=0), ckpt)
    out = tmp_path / "m.onnx"
    one_error(run("export", "lenet5", "--onnx", str(out), "--weights", str(ckpt)),
              str(ckpt), "weights: array 'conv1.weight' has shape")
    assert list(tmp_path.iterdir()) == [ckpt]  # no output, no temporary file


def test_weights_with_an_array_too_many_is_refused(run, tmp_path):
    model = build(load("lenet5"), seed=0)
    state = {**model.params, "extra.weight": np.zeros(3, dtype=np.float32)}
    ckpt = tmp_path / "w.npz"
    from archcalc.nn.weights import write_archive
    write_archive(ckpt, {"model": state}, {"kind": "weights"})
    one_error(run("export", "lenet5", "--onnx", str(tmp_path / "m.onnx"), "--weights", str(ckpt)),
              "unexpected array 'extra.weight'")
    assert not (tmp_path / "m.onnx").exists()


def test_an_existing_file_needs_force(run, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    one_error(run("export", "lenet5", "--onnx", str(out)), f"{out} exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert run("export", "lenet5", "--onnx", str(out), "--force").exit_code == 0
    onnx.checker.check_model(str(out))


def test_opset_and_input_options(run, tmp_path):
    out = tmp_path / "m.onnx"
    result = run("export", "lenet5", "--onnx", str(out), "--opset", "20", "--input", "1x28x28")
    assert result.exit_code == 0, result.stderr
    proto = onnx.load(str(out))
    assert [o.version for o in proto.opset_import] == [20]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 1, 28, 28]
    result = run("export", "lenet5", "--onnx", str(tmp_path / "n.onnx"), "--opset", "12")
    assert result.exit_code == 2  # a bad option value, like every other range (click's)
    assert result.stderr.strip() == ("error: export: invalid value for '--opset': 12 is not in "
                                     "the range 17<=x<=21 (fix: see 'archcalc export --help')")
    assert not (tmp_path / "n.onnx").exists()


def test_the_commands_opset_range_is_the_exporters():
    """cli/export.py keeps its own copy (the exporter imports NumPy): the same figures."""
    from archcalc.cli.export import DEFAULT_OPSET, OPSET_RANGE
    from archcalc.exporters.onnx_export import DEFAULT_OPSET as EXPORTER_DEFAULT, OPSETS
    assert (DEFAULT_OPSET, OPSET_RANGE) == (EXPORTER_DEFAULT, (min(OPSETS), max(OPSETS)))


def test_a_failed_second_file_leaves_the_first_target_as_it_was(run, tmp_path, monkeypatch):
    """Both files are written to temporaries first and renamed only when both are whole: a
    failure on the second (here its write) leaves the user's old first file in place."""
    import archcalc.cli.export as export_cmd
    first, second = tmp_path / "a.onnx", tmp_path / "a.py"
    first.write_text("OLD")
    real = export_cmd._torch_text

    def failing(network, weights):
        data, said = real(network, weights)
        return _Unwritable(data), said

    class _Unwritable(bytes):
        pass

    from pathlib import Path
    original = Path.write_bytes

    def write_bytes(self, data):
        if isinstance(data, _Unwritable):
            raise OSError(28, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(export_cmd, "_torch_text", failing)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = run("export", "lenet5", "--onnx", str(first), "--torch", str(second), "--force")
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert first.read_text() == "OLD" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx"]  # no temporary left


@pytest.mark.parametrize("where", ["dir", "missing"])
def test_a_target_that_cannot_be_a_file_is_refused_before_the_work(run, tmp_path, where):
    bad = tmp_path / "d" if where == "dir" else tmp_path / "none" / "m.py"
    if where == "dir":
        bad.mkdir()
    first = tmp_path / "m.onnx"
    one_error(run("export", "lenet5", "--onnx", str(first), "--torch", str(bad)),
              f"cannot write {bad}")
    assert not first.exists()


def test_no_output_option_is_a_usage_line(run):
    result = run("export", "lenet5")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: export: give --onnx OUT.onnx, --torch OUT.py, or both "
        "(fix: see 'archcalc export --help')"]


@pytest.mark.parametrize("where", ["missing/m.onnx", "."])
def test_unwritable_path_is_one_line(run, tmp_path, where):
    target = tmp_path / where
    one_error(run("export", "lenet5", "--onnx", str(target)), "cannot write")
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_missing_onnx_gives_the_pip_line(run, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    one_error(run("export", "lenet5", "--onnx", str(tmp_path / "m.onnx")),
              "exporting ONNX needs the onnx package", "pip install 'archcalc[onnx]'")
    assert not (tmp_path / "m.onnx").exists()


def test_an_onnx_spec_exports_with_its_own_weights(run, tmp_path):
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    ckpt = tmp_path / "w.npz"
    save_weights(build(load("lenet5"), seed=5), ckpt)
    assert run("export", "lenet5", "--onnx", str(first), "--weights", str(ckpt)).exit_code == 0
    result = run("export", str(first), "--onnx", str(second))
    assert result.exit_code == 0, result.stderr
    assert result.output.endswith(f"weights: the file's own ({first}))\n")
    a, b = initializers(first), initializers(second)
    for key in ("conv1.weight", "conv1.bias", "fc3.weight", "fc3.bias"):
        np.testing.assert_array_equal(a[key], b[key])


# ---- --torch (the PyTorch exporter is another module; skipped until it is there) ----------
def test_torch_and_onnx_together(run, tmp_path):
    pytest.importorskip("archcalc.exporters.torch_export")
    py, model = tmp_path / "lenet5.py", tmp_path / "lenet5.onnx"
    result = run("export", "lenet5", "--torch", str(py), "--onnx", str(model))
    assert result.exit_code == 0, result.stderr
    lines = result.output.splitlines()
    assert lines[0].startswith(f"lenet5: wrote {model} (ONNX opset 17")
    assert lines[1] == f"lenet5: wrote {py} (PyTorch module)"
    py_compile.compile(str(py), doraise=True)


def test_same_file_for_both_is_refused(run, tmp_path):
    out = tmp_path / "x"
    one_error(run("export", "lenet5", "--torch", str(out), "--onnx", str(out)),
              "--onnx and --torch are the same file")


def test_a_failed_second_write_leaves_no_first_file(run, tmp_path):
    pytest.importorskip("archcalc.exporters.torch_export")
    model = tmp_path / "m.onnx"
    one_error(run("export", "lenet5", "--onnx", str(model), "--torch",
                  str(tmp_path / "missing" / "m.py")), "cannot write")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, said", [
    ("input: [1000000000, 2]\nlayers:\n  - gru: {units: 4, bidirectional: true}\n  - dense: 2\n",
     "needs about 176.0 GB"),
    ("input: [4, 8]\nlayers:\n  - lstm: {units: 100000}\n  - dense: 10\n", "needs about 160.0 GB"),
])
def test_an_export_over_the_memory_budget_is_refused_before_the_build(run, tmp_path, monkeypatch,
                                                                      text, said):
    """The batch-1 pass that learns the shapes used 7.9 GB before 'out of memory'."""
    import archcalc.nn.network
    monkeypatch.setattr(archcalc.nn.network, "build", lambda *a, **k: pytest.fail("built"))
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\n" + text)
    result = run("export", str(spec), "--onnx", str(tmp_path / "x.onnx"), "--memory-budget", "2GB")
    one_error(result, "an ONNX export (one forward pass) of big at batch 1", said,
              "more than the memory budget of 2.0 GB", "raise --memory-budget")
    assert not (tmp_path / "x.onnx").exists()


def test_a_long_export_is_refused_with_its_time(run, tmp_path, monkeypatch):
    """A 4-unit GRU over 3·10⁶ steps exported in 59 s: the steps are in the work estimate."""
    import archcalc.nn.network
    monkeypatch.setattr(archcalc.nn.network, "build", lambda *a, **k: pytest.fail("built"))
    monkeypatch.setenv("ARCHCALC_MAX_CHECK_WORK", str(10**11))
    spec = tmp_path / "long.yaml"
    spec.write_text("name: long\ninput: [3000000, 2]\nlayers:\n"
                    "  - gru: {units: 4, bidirectional: true}\n  - dense: 2\n")
    result = run("export", str(spec), "--onnx", str(tmp_path / "x.onnx"))
    one_error(result, "~60 s here (6,000,000 recurrent steps", "a shorter T",
              "ARCHCALC_MAX_CHECK_WORK")
