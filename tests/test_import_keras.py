"""Keras models in: the lecture notes' Keras examples, saved as .keras archives and as
model.to_json() documents, analysed by archcalc: the totals equal Keras's count_params() and
its trainable / non-trainable split, and every Keras layer's output shape (channels-last,
permuted to C×H×W) equals the row of the same name."""

from __future__ import annotations

import json
import os
import zipfile
from math import prod

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow
keras = pytest.importorskip("keras")

# The lecture notes write input_shape= on the first layer (Keras 3 warns, and still builds the
# model as written); Keras's torch backend warns about NumPy 2's copy keyword. Neither is ours.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
from keras import layers as L  # noqa: E402
from keras.regularizers import l2  # noqa: E402

from archcalc.calc.analyze import analyze  # noqa: E402
from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.spec.load import load  # noqa: E402
from archcalc.spec.tree import Merge  # noqa: E402


def _chw(shape) -> tuple[int, ...]:
    """Keras's (None, H, W, C) or (None, N) as archcalc's (C, H, W) or (N,)."""
    shape = tuple(shape[1:])
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def _sizes(weights) -> int:
    return sum(prod(w.shape) for w in weights)


def _layers(model):
    """The model's layers, those of a model used as a layer included (archcalc inlines it)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        elif not isinstance(layer, L.InputLayer):
            yield layer


def _both(model, tmp_path):
    """The model saved both ways, loaded and analysed by archcalc."""
    model.save(tmp_path / "m.keras")
    (tmp_path / "m.json").write_text(model.to_json())
    return [analyze(load(str(tmp_path / name))) for name in ("m.keras", "m.json")]


def _assert_matches(model, tmp_path):
    for analysis in _both(model, tmp_path):
        totals = analysis.totals
        assert totals.params == model.count_params()
        assert totals.trainable_params == _sizes(model.trainable_weights)
        assert totals.non_trainable_params == _sizes(model.non_trainable_weights)
        rows = {row.name: row for row in analysis.rows}
        for layer in _layers(model):
            assert rows[layer.name].output_shape == _chw(layer.output.shape), layer.name
        assert analysis.output_shape == _chw(model.outputs[0].shape)
        assert "converted from channels-last" in analysis.network.source


def test_lecture_conv_maxpool_flatten_dense(tmp_path):
    model = keras.Sequential([L.Conv2D(32, (3, 3), input_shape=(28, 28, 1)),
                              L.MaxPool2D((2, 2)), L.Flatten(), L.Dense(256)])
    _assert_matches(model, tmp_path)
    # hand count: 3·3·1·32 + 32 = 320; 13·13·32 = 5408 features · 256 + 256
    assert model.count_params() == 320 + 5408 * 256 + 256


def test_lecture_with_activation_arguments(tmp_path):
    model = keras.Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                              L.MaxPool2D((2, 2)), L.Flatten(),
                              L.Dense(256, activation="relu"), L.Dense(10, activation="softmax")])
    _assert_matches(model, tmp_path)
    kinds = [row.type for row in analyze(load(str(tmp_path / "m.keras"))).rows]
    assert kinds == ["conv2d", "relu", "maxpool", "flatten", "dense", "relu", "dense", "softmax"]


def test_lecture_dense_batchnorm_stack(tmp_path):
    model = keras.Sequential([
        L.Dense(128, input_dim=200), L.BatchNormalization(), L.Activation("sigmoid"),
        L.Dense(256), L.BatchNormalization(), L.Activation("sigmoid"),
        L.Dense(5), L.Activation("softmax")])
    _assert_matches(model, tmp_path)
    network = load(str(tmp_path / "m.keras"))
    assert network.input_shape == (200,)
    bn = next(leaf.spec for leaf in network.leaves() if leaf.kind == "batchnorm")
    assert bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)
    # Keras: BatchNormalization holds 4·C, 2·C of them non-trainable (moving mean, variance)
    assert analyze(network).totals.non_trainable_params == 2 * 128 + 2 * 256


def test_lecture_dense_with_regularizer(tmp_path):
    model = keras.Sequential([L.Dense(128, input_dim=20, kernel_regularizer=l2(0.01))])
    _assert_matches(model, tmp_path)
    assert model.count_params() == 20 * 128 + 128


def test_functional_residual_add_and_inception_concat(tmp_path):
    x = keras.Input((16, 16, 8))
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="res_conv")(x)
    y = L.BatchNormalization(name="res_bn")(y)
    y = L.Add(name="res_add")([y, x])
    b1 = L.Conv2D(4, 1, name="b1x1")(y)
    b2 = L.Conv2D(6, 3, padding="same", name="b3x3")(L.Conv2D(3, 1, name="b3x3_reduce")(y))
    b3 = L.Conv2D(2, 1, name="bpool_proj")(
        L.MaxPooling2D(3, strides=1, padding="same", name="bpool")(y))
    y = L.Concatenate(name="inception")([b1, b2, b3])
    y = L.GlobalAveragePooling2D(name="gap")(y)
    model = keras.Model(x, L.Dense(3, name="fc")(y))
    _assert_matches(model, tmp_path)
    network = load(str(tmp_path / "m.json"))
    merges = [child for child in network.root.children if isinstance(child, Merge)]
    assert [m.mode for m in merges] == ["add", "concat"]
    assert [len(m.branches) for m in merges] == [2, 3]


def test_mobile_layers(tmp_path):
    model = keras.Sequential([
        keras.Input((15, 15, 3)),
        L.ZeroPadding2D(((1, 2), (0, 1))),
        L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same"),
        L.ReLU(max_value=6.0),
        L.SeparableConv2D(10, 3, padding="same", activation="relu"),
        L.SeparableConv2D(5, 3, depth_multiplier=3, use_bias=False),
        L.Cropping2D(((1, 0), (0, 1))),
        L.LeakyReLU(),
        L.Dropout(0.25),
        L.GlobalAveragePooling2D(keepdims=True),
        L.Dense(4, activation="hard_sigmoid"),
        L.Flatten(),
    ])
    _assert_matches(model, tmp_path)


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [
    (3, 2, "same", None), (4, 2, "same", None), (1, 3, "same", None), (2, 3, "valid", None),
    (3, 2, "valid", None), (5, 3, "same", 1), (3, 2, "valid", 1), (4, 2, "same", 0)])
def test_transposed_conv_sizes(tmp_path, kernel, stride, padding, output_padding):
    model = keras.Sequential([
        keras.Input((7, 6, 3)),
        L.Conv2DTranspose(4, kernel, strides=stride, padding=padding,
                          output_padding=output_padding),
        L.UpSampling2D((2, 3), interpolation="bilinear"), L.UpSampling2D(2)])
    _assert_matches(model, tmp_path)


def test_squeeze_excitation_multiply(tmp_path):
    x = keras.Input((8, 8, 6))
    y = L.Conv2D(6, 3, padding="same")(x)
    gate = L.GlobalAveragePooling2D(keepdims=True)(y)
    gate = L.Dense(2, activation="relu")(gate)  # on a 1×1×C map: a 1×1 conv
    gate = L.Dense(6, activation="sigmoid")(gate)
    model = keras.Model(x, L.Multiply()([y, gate]))
    _assert_matches(model, tmp_path)


def test_frozen_layers_count_as_non_trainable(tmp_path):
    model = keras.Sequential([keras.Input((10,)), L.Dense(4), L.Dense(3)])
    model.layers[0].trainable = False
    _assert_matches(model, tmp_path)
    assert _sizes(model.non_trainable_weights) == 44


def test_nested_models_are_inlined(tmp_path):
    """Transfer learning: a frozen functional base inside a Sequential, and a Sequential
    block called inside a functional model."""
    x = keras.Input((12, 12, 3))
    y = L.Conv2D(4, 3, strides=2, padding="same", name="base_conv")(x)
    y = L.BatchNormalization(name="base_bn")(y)
    base = keras.Model(x, L.Add(name="base_add")([y, L.Conv2D(4, 1, strides=2,
                                                                name="base_proj")(x)]))
    base.trainable = False
    block = keras.Sequential([L.Conv2D(4, 1, name="block_conv"), L.ReLU(name="block_relu")],
                             name="block")
    z = keras.Input((12, 12, 3))
    h = base(z)
    h = L.Concatenate(name="cat")([h, block(h)])
    inner = keras.Model(z, h, name="inner")
    model = keras.Sequential([keras.Input((12, 12, 3)), inner, L.GlobalAveragePooling2D(),
                              L.Dense(2, name="head")])
    _assert_matches(model, tmp_path)
    assert _sizes(model.non_trainable_weights) == 3 * 3 * 3 * 4 + 4 + 4 * 4 + 3 * 4 + 4


def test_input_override_and_open_sizes(tmp_path):
    model = keras.Sequential([keras.Input((None, None, 3)), L.Conv2D(4, 3),
                              L.GlobalAveragePooling2D()])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ArchcalcError, match=r"sizes left open.*\n?") as err:
        load(str(tmp_path / "m.keras"))
    assert "--input" in err.value.render()
    assert analyze(load(str(tmp_path / "m.keras"), (3, 32, 32))).rows[0].output_shape \
        == (4, 30, 30)


# ---------------------------------------------------------------------------------------------
# Bad files: one line each


def _error(path) -> str:
    with pytest.raises(ArchcalcError) as err:
        load(str(path))
    line = err.value.render()
    assert "\n" not in line
    return line


def test_not_a_zip(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"this is not a zip file")
    assert "not a zip" in _error(tmp_path / "m.keras")


def test_zip_without_config(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    assert "no config.json" in _error(tmp_path / "m.keras")


def test_config_that_inflates_past_the_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_BYTES", "1024")
    with zipfile.ZipFile(tmp_path / "m.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", " " * (64 * 1024 + 1))
    assert "65,537 bytes; at most 65,536" in _error(tmp_path / "m.keras")


def test_unsupported_layers_named_in_one_line(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="c"),
                              L.LayerNormalization(name="ln"), L.PReLU(name="p"),
                              L.Activation("softplus", name="sp")])
    (tmp_path / "m.json").write_text(model.to_json())
    line = _error(tmp_path / "m.json")
    assert "3 Keras layers archcalc cannot express" in line
    assert "LayerNormalization 'ln'" in line and "PReLU 'p'" in line
    assert "Activation 'sp' (activation 'softplus')" in line


def test_many_unsupported_layers_are_counted(tmp_path):
    model = keras.Sequential([keras.Input((4,))] + [L.LayerNormalization() for _ in range(23)])
    (tmp_path / "m.json").write_text(model.to_json())
    assert "23 Keras layers" in (line := _error(tmp_path / "m.json")) and "and 3 more" in line


def test_channels_first_is_refused(tmp_path):
    doc = json.loads(keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3)]).to_json())
    doc["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    assert "data_format 'channels_first'" in _error(tmp_path / "m.json")


def test_average_pool_same_that_pads_is_refused(tmp_path):
    x = keras.Input((7, 7, 2))
    keras.Model(x, L.AveragePooling2D(3, 1, padding="same")(x)).save(tmp_path / "m.keras")
    assert "padding='same' pads a 7-pixel axis: Keras leaves the padding out of the average" \
        in _error(tmp_path / "m.keras")
    model = keras.Sequential([keras.Input((8, 8, 2)), L.AveragePooling2D(2, padding="same")])
    model.save(tmp_path / "m.keras")  # a Sequential records no size for a pooling layer
    assert "padding='same' on an input of unknown size" in _error(tmp_path / "m.keras")
    # on an 8×8 input a 2×2 window at stride 2 pads nothing: the same as archcalc's (a
    # functional model records the size each layer reads; a Sequential's pools do not)
    x = keras.Input((8, 8, 2))
    model = keras.Model(x, L.AveragePooling2D(2, padding="same")(L.Conv2D(3, 1)(x)))
    _assert_matches(model, tmp_path)


def test_non_series_parallel_graph_is_refused(tmp_path):
    x = keras.Input((4, 4, 2))
    a, b = L.Conv2D(2, 1, name="a")(x), L.Conv2D(2, 1, name="b")(x)
    inner = L.Add(name="inner")([a, b])
    model = keras.Model(x, L.Add(name="outer")([a, inner]))
    (tmp_path / "m.json").write_text(model.to_json())
    assert "not series-parallel" in _error(tmp_path / "m.json")


def test_shared_layer_is_refused(tmp_path):
    x = keras.Input((4,))
    dense = L.Dense(4, name="shared")
    model = keras.Model(x, L.Add()([dense(x), dense(dense(x))]))
    (tmp_path / "m.json").write_text(model.to_json())
    assert "'shared' (Dense) is called 3 times" in _error(tmp_path / "m.json")


# ---------------------------------------------------------------------------------------------
# Keras 2 documents (tf.keras's to_json), written by hand: read without Keras


def _keras2_layer(cls, name, inbound=None, **config):
    layer = {"class_name": cls, "config": {"name": name, "trainable": True, **config}}
    if inbound is not None:
        layer["name"] = name
        layer["inbound_nodes"] = [[[source, 0, 0, {}] for source in inbound]]
    return layer


def test_keras2_sequential_with_batch_input_shape(tmp_path):
    doc = {"class_name": "Sequential", "keras_version": "2.15.0", "backend": "tensorflow",
           "config": {"name": "lecture", "layers": [
               _keras2_layer("Conv2D", "conv", batch_input_shape=[None, 28, 28, 1], filters=32,
                             kernel_size=[3, 3], strides=[1, 1], padding="valid",
                             activation="relu", use_bias=True, data_format="channels_last"),
               _keras2_layer("MaxPooling2D", "pool", pool_size=[2, 2], strides=None,
                             padding="valid"),
               _keras2_layer("Flatten", "flat"),
               _keras2_layer("Dense", "fc", units=256, activation="linear", use_bias=True)]}}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    analysis = analyze(load(str(tmp_path / "m.json")))
    shapes = {row.name: row.output_shape for row in analysis.rows}
    assert shapes == {"conv": (32, 26, 26), "conv_relu": (32, 26, 26), "pool": (32, 13, 13),
                      "flat": (5408,), "fc": (256,)}
    assert analysis.totals.params == 3 * 3 * 32 + 32 + 5408 * 256 + 256


def test_keras2_functional_inbound_nodes(tmp_path):
    doc = {"class_name": "Model", "keras_version": "2.15.0", "config": {
        "name": "res", "input_layers": [["in", 0, 0]], "output_layers": [["sum", 0, 0]],
        "layers": [
            _keras2_layer("InputLayer", "in", [], batch_input_shape=[None, 8, 8, 3]),
            _keras2_layer("Conv2D", "c", ["in"], filters=3, kernel_size=1, padding="same"),
            _keras2_layer("BatchNormalization", "bn", ["c"], axis=[3], momentum=0.9,
                          epsilon=1e-5),
            _keras2_layer("Add", "sum", ["bn", "in"])]}}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    analysis = analyze(load(str(tmp_path / "m.json")))
    assert [row.name for row in analysis.rows] == ["c", "bn", "sum"]
    assert analysis.output_shape == (3, 8, 8)
    # 1·1·3·3 + 3 conv, 4·3 batch norm of which 2·3 non-trainable
    assert (analysis.totals.trainable_params, analysis.totals.non_trainable_params) == (18, 6)


def test_keras_applications_mobilenet_v2(tmp_path):
    """A real application (ZeroPadding2D, DepthwiseConv2D, ReLU(6.), BatchNormalization,
    residual Add), small: alpha 0.35 at 32×32."""
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                           classes=10)
    _assert_matches(model, tmp_path)
