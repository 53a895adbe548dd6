"""`archcalc train --target input`: networks that give back their input image (encoder-decoder,
segmentation-style), trained with mse on the embedded digits, scored by pixel accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from archcalc.nn import train

# Dense decoder: a flat output of as many values as the image is accepted.
DENSE_AE = """
name: dense_ae
input: [1, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - relu
  - flatten
  - dense: 64
  - sigmoid
"""

# Segmentation-style: down with a strided conv, up with a transposed conv and bilinear
# upsampling, a padded (reflect) branch cropped back, a squeeze-and-excitation gate (mul), and
# the modern activations; every new kind of issue 9 on the way.
SEG = """
name: seg
input: [1, 8, 8]
layers:
  - pad: {padding: 1, mode: reflect}
  - conv: {filters: 8, kernel: 3, padding_mode: replicate, padding: 1}
  - hardswish
  - conv: {filters: 8, kernel: 2, stride: 2}
  - silu
  - mul: [[adaptive_avgpool: 1, conv: {filters: 8, kernel: 1}, hardsigmoid], []]
  - deconv: {filters: 8, kernel: 2, stride: 2}
  - relu6
  - concat: [[pad: {padding: 2, mode: symmetric}, crop: {size: [10, 10]}], []]
  - gelu: {approximate: tanh}
  - adaptive_maxpool: 5
  - upsample: {size: [10, 10], mode: bilinear}
  - crop: {cropping: 1}
  - conv: {filters: 1, kernel: 1}
  - sigmoid
"""


def _history(out):
    return json.loads((out / "history.json").read_text())


def test_a_dense_autoencoder_learns_to_give_back_the_digits(run, write_spec, tmp_path):
    out = tmp_path / "run"
    result = run("train", write_spec(DENSE_AE), "--target", "input", "--epochs", "3",
                 "--lr", "0.01", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "mse loss" in text and "target: the input images (reconstruction)" in text
    assert "test pixel accuracy" in text
    history = _history(out)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["test_acc"] <= 1.0
    ckpt = train.read_checkpoint(out / "checkpoint.npz")
    assert ckpt.meta["config"]["target"] == "input" and ckpt.meta["config"]["loss"] == "mse"
    # evaluate takes the target from the checkpoint: no confusion matrix, pixel accuracy
    result = run("evaluate", write_spec(DENSE_AE), str(out))
    assert result.exit_code == 0, result.output
    assert "(reconstruction): test pixel accuracy" in " ".join(result.output.split())


def test_a_network_with_every_new_kind_trains_with_mse(run, write_spec, tmp_path):
    out = tmp_path / "seg"
    result = run("train", write_spec(SEG), "--target", "input", "--epochs", "2",
                 "--translate", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    history = _history(out)
    assert all(np.isfinite(h["train_loss"]) for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_pixel_accuracy_counts_values_on_the_right_side_of_one_half():
    trainer = train.Trainer.__new__(train.Trainer)
    trainer.cfg = train.TrainConfig(target="input", loss="mse")
    trainer.last_kind = "sigmoid"
    scores = np.array([[0.9, 0.2, 0.6, 0.4], [0.1, 0.1, 0.1, 0.1]])
    targets = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert trainer.scores_right(scores, targets).tolist() == [0.75, 0.75]


@pytest.mark.parametrize("args, message", [
    (["--loss", "cross_entropy"], "error: --loss cross_entropy scores classes; --target input "
                                  "compares pixel values"),
    (["--class-weights", "balanced"], "error: --class-weights weigh classes; --target input "
                                      "has none"),
])
def test_reconstruction_refuses_class_options(run, write_spec, tmp_path, args, message):
    result = run("train", write_spec(DENSE_AE), "--target", "input", *args,
                 "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[0].startswith(message)
    assert not (tmp_path / "r").exists()


def test_a_classifier_cannot_reconstruct(run, write_spec, tmp_path):
    result = run("train", "lenet5", "--target", "input", "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert ("error: --target input trains spec 'lenet5' to give back its 1×32×32 input, but "
            "it ends with 10 (layer 'fc3')") in " ".join(result.output.split())


def test_bce_after_a_final_sigmoid_is_refused(run, write_spec, tmp_path):
    """bce takes logits: after a sigmoid it would train σ(σ(x)) without a word."""
    result = run("train", write_spec(DENSE_AE), "--target", "input", "--loss", "bce",
                 "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[0] == (
        "error: --loss bce takes logits, and spec 'dense_ae' already ends in a sigmoid (layer "
        "'sigmoid1') (fix: drop the final sigmoid (bce applies it), or use --loss mse)")
