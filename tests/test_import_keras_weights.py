"""A .keras archive's weights in the executor's layout: the imported network, run by archcalc's
NumPy executor on the file's own weights, predicts what Keras predicts (issue 10)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

# Keras's torch backend warns about NumPy 2's copy keyword: not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.importers import (  # noqa: E402
    has_weights, imported_weights, load_with_weights)
from archcalc.nn.network import build  # noqa: E402

L = keras.layers


@pytest.fixture(autouse=True)
def _seeded_keras():
    """Keras draws its initial weights unseeded: about one model in 40 of the first test had
    every ReLU before its last Dense dead, an all-zero output and a 0/0 ratio (NaN)."""
    keras.utils.set_random_seed(0)


def _randomise_bn(model, seed: int = 7) -> None:
    """Moving statistics far from 0 / 1 (and γ, β too), so that a swapped mean and variance
    or a missed one changes the prediction."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomise_bn(layer, seed + 1)
        elif isinstance(layer, L.BatchNormalization):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 1, c),
                               rng.normal(0, 1, c), rng.uniform(0.2, 3, c)])


def _agree(model, tmp_path, name: str) -> float:
    """Save `model`, run Keras and archcalc on the same seeded input; the largest difference
    as a fraction of the largest |Keras output|."""
    _randomise_bn(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    expected = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    assert np.abs(expected).max() > 0, "Keras's output is all zeros: nothing to compare"
    network, table = load_with_weights(str(path), None)
    executor = build(network)
    executor.load_state_dict(imported_weights(network, table, str(path)))
    got = executor.forward(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)
    if got.ndim == 4:
        got = got.transpose(0, 2, 3, 1)
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def test_conv_bn_pool_flatten_dense(tmp_path):
    model = keras.Sequential([
        keras.Input((9, 7, 3)), L.Conv2D(5, 3, padding="same", name="conv"),
        L.BatchNormalization(name="bn"), L.ReLU(), L.MaxPooling2D(2),
        L.Conv2D(4, (2, 3), activation="relu"),
        L.Flatten(), L.Dropout(0.3), L.Dense(6, activation="relu"), L.Dense(3)])
    assert _agree(model, tmp_path, "seq") < 1e-4


def test_functional_residual_concat_and_nested_model(tmp_path):
    inner = keras.Sequential([keras.Input((8, 8, 6)), L.Conv2D(6, 3, padding="same"),
                              L.BatchNormalization()], name="inner")
    i = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", use_bias=False)(i)
    x = L.BatchNormalization()(x)
    y = L.Activation("relu")(L.Conv2D(6, 1)(x))
    x = L.Add()([x, inner(y)])
    x = L.Concatenate()([L.Conv2D(2, 1)(x), L.Conv2D(3, 3, padding="same")(x)])
    x = L.GlobalAveragePooling2D()(x)
    x = L.BatchNormalization()(x)
    out = L.Dense(4)(x)
    assert _agree(keras.Model(i, out), tmp_path, "func") < 1e-4


def test_depthwise_and_separable(tmp_path):
    model = keras.Sequential([
        keras.Input((10, 10, 3)), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
        L.SeparableConv2D(5, 3, strides=2, depth_multiplier=2, activation="relu"),
        L.DepthwiseConv2D(3, use_bias=False), L.SeparableConv2D(4, 1, use_bias=False)])
    assert _agree(model, tmp_path, "dw") < 1e-4


def test_conv_transpose_and_upsampling(tmp_path):
    # kernel − stride even: Keras's torch backend places the rows as TensorFlow does
    model = keras.Sequential([
        keras.Input((5, 6, 3)), L.Conv2DTranspose(4, 4, strides=2, padding="same"),
        L.UpSampling2D(2), L.Conv2DTranspose(2, 3, strides=1, padding="valid"),
        L.Conv2DTranspose(3, (3, 2), strides=(2, 2), padding="valid", use_bias=False)])
    assert _agree(model, tmp_path, "tr") < 1e-4


def test_dense_on_an_image_and_flatten_into_batchnorm(tmp_path):
    model = keras.Sequential([
        keras.Input((4, 5, 3)), L.Dense(6, activation="relu"), L.Flatten(),
        L.BatchNormalization(), L.Dense(2)])
    assert _agree(model, tmp_path, "dense_img") < 1e-4


def test_two_nested_functional_models_in_a_sequential(tmp_path):
    """Keras saves them as layers/functional and layers/functional_1, whatever their names."""
    i = keras.Input((8, 8, 3))
    first = keras.Model(i, L.BatchNormalization()(L.Conv2D(4, 3)(i)), name="stem")
    j = keras.Input((6, 6, 4))
    second = keras.Model(j, L.Add()([j, L.Conv2D(4, 3, padding="same")(j)]), name="block")
    model = keras.Sequential([keras.Input((8, 8, 3)), first, second, L.Flatten(), L.Dense(3)])
    assert _agree(model, tmp_path, "nested") < 1e-4


def test_keras_applications_mobilenet_v2(tmp_path):
    """ZeroPadding2D, strided DepthwiseConv2D, ReLU(6), BatchNormalization, residual Adds,
    global pooling and the classifier, on a small input."""
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                           classes=7)
    assert _agree(model, tmp_path, "mnv2") < 1e-4


def test_swapped_moving_statistics_would_fail(tmp_path):
    """The comparison can fail: loading BatchNorm's variance as its mean changes the output."""
    model = keras.Sequential([keras.Input((4, 4, 2)), L.BatchNormalization(name="bn"),
                              L.Flatten(), L.Dense(3)])
    # positive means, so that the swapped "variance" is a real one and the output finite
    model.get_layer("bn").set_weights([np.ones(2), np.zeros(2), np.array([0.5, 2.0]),
                                       np.array([3.0, 0.25])])
    path = tmp_path / "bn.keras"
    model.save(path)
    network, table = load_with_weights(str(path), None)
    bn = table["bn"]
    assert bn["running_mean"][0].endswith("vars/2") and bn["running_var"][0].endswith("vars/3")
    bn["running_mean"], bn["running_var"] = bn["running_var"], bn["running_mean"]
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    executor = build(network)
    executor.load_state_dict(imported_weights(network, table, str(path)))
    assert np.abs(executor.forward(x.transpose(0, 3, 1, 2)) - expected).max() > 1e-3


def test_archive_without_weights_is_one_line(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 2)), L.Conv2D(2, 3)])
    path = tmp_path / "m.keras"
    model.save(path)
    stripped = tmp_path / "stripped.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
        for name in src.namelist():
            if name != "model.weights.h5":
                dst.writestr(name, src.read(name))
    with pytest.raises(ArchcalcError, match="holds no model.weights.h5"):
        load_with_weights(str(stripped), None)
    assert has_weights(str(path)) and not has_weights("model.json")


def test_missing_h5py_is_one_line(tmp_path, monkeypatch):
    import builtins
    model = keras.Sequential([keras.Input((4, 4, 2)), L.Conv2D(2, 3)])
    path = tmp_path / "m.keras"
    model.save(path)
    real = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(ArchcalcError) as err:
        load_with_weights(str(path), None)
    assert "needs h5py" in str(err.value) and "pip install h5py" in err.value.fix


def _small_keras(tmp_path):
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    path = tmp_path / "small.keras"
    model.save(path)
    return path


def test_check_runs_a_keras_file_on_its_own_weights(run, tmp_path):
    result = run("check", str(_small_keras(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("weights: the file's own (")
    assert "layers agree" in result.output


def test_check_without_h5py_checks_the_architecture_on_random_weights(run, tmp_path,
                                                                       monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "h5py" else real(name, *a))
    result = run("check", str(_small_keras(tmp_path)))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "weights: random: the file's own need h5py (pip install h5py)")


def test_import_writes_a_keras_files_weights_in_the_executors_layout(run, tmp_path):
    """--weights-out on a .keras file: check --weights with that file agrees, on the same
    weights as the archive's own."""
    path = _small_keras(tmp_path)
    npz = tmp_path / "small.npz"
    result = run("import", str(path), "--out", str(tmp_path / "small.yaml"), "--weights-out",
                 str(npz))
    assert result.exit_code == 0, result.output
    own = run("check", str(path), "--format", "json")
    given = run("check", str(path), "--weights", str(npz), "--format", "json")
    assert own.exit_code == given.exit_code == 0
    import json
    assert json.loads(given.stdout)["weights"] == str(npz)
    network, table = load_with_weights(str(path), None)
    state = imported_weights(network, table, str(path))
    from archcalc.nn.weights import read_npz
    stored = read_npz(str(npz))
    assert set(stored) == set(state)
    assert all(np.array_equal(stored[k], state[k]) for k in state)
