"""The trainer: it learns, resumes exactly, stops on NaN, stops early, respects frozen layers."""

from __future__ import annotations

import math
import warnings

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import build, losses
from archcalc.nn import data as datamod
from archcalc.nn import train
from archcalc.spec import loads

MLP = """
name: tiny_mlp
input: [64]
layers:
  - dense: 32
  - relu
  - dense: {units: UNITS}
"""

CNN = """
name: tiny_cnn
input: [1, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2}
  - flatten
  - dense: 10
"""


def mlp(units: int = 10, hidden: int = 32):
    return loads(MLP.replace("UNITS", str(units)).replace("32", str(hidden)))


@pytest.fixture(scope="module")
def digits64():
    return datamod.load("digits", (64,), spec="tiny_mlp")


def small(d: datamod.Data, n: int) -> datamod.Data:
    """The first n training images only (for step-count tests)."""
    return replace(d, train=d.train.take(np.arange(n)))


def fit(net, data, out=None, **kw):
    model = build(net, seed=kw.get("seed", 0))
    trainer = train.Trainer(model, data, train.TrainConfig(**kw), out=out)
    return trainer, trainer.fit()


# --- it learns ---------------------------------------------------------------------------

def test_tiny_mlp_learns_digits(digits64):
    """CI's training test: the loss falls and accuracy is far above chance (10%)."""
    _, result = fit(mlp(), digits64, epochs=3, batch_size=32, lr=3e-3)
    losses_ = [r.train_loss for r in result.history]
    assert losses_[0] > losses_[1] > losses_[2]
    assert result.history[0].train_loss > 2 * result.history[-1].train_loss
    assert result.test_acc > 0.85 and result.history[-1].val_acc > 0.85
    assert result.images_per_second > 0 and result.epochs == 3


def test_tiny_cnn_learns_digits():
    d = datamod.load("digits", (1, 8, 8), spec="tiny_cnn")
    _, result = fit(loads(CNN), d, epochs=2, batch_size=32, lr=1e-2, translate=1)
    assert result.history[1].train_loss < result.history[0].train_loss
    assert result.test_acc > 0.6


@pytest.mark.parametrize("loss,acc", [("hinge", 0.9), ("mse", 0.7), ("bce", 0.9), ("mae", None)])
def test_every_loss_trains(digits64, loss, acc):
    _, result = fit(mlp(), digits64, epochs=3, batch_size=32, lr=1e-2, loss=loss)
    first, *_, last = [r.train_loss for r in result.history]
    assert last < 0.75 * first
    if acc is not None:  # MAE on one-hot targets settles near "all zeros": no accuracy claim
        assert result.test_acc > acc


def test_softmax_ending_uses_probabilities(digits64):
    net = loads(MLP.replace("UNITS", "10") + "  - softmax\n")
    trainer, result = fit(net, digits64, epochs=3, batch_size=32, lr=1e-2)
    assert trainer.loss_fn() is losses.probs_cross_entropy
    assert result.test_acc > 0.9


# --- batch modes -------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size,steps", [(0, 2), (1, 2 * 20), (8, 2 * 3)])
def test_full_single_and_mini_batch(digits64, batch_size, steps):
    trainer, _ = fit(mlp(), small(digits64, 20), epochs=2, batch_size=batch_size, optimizer="sgd",
                     lr=0.01)
    assert trainer.optimizer.t == steps


def test_schedule_sets_lr_per_epoch(digits64):
    _, result = fit(mlp(), small(digits64, 40), epochs=3, optimizer="sgd", lr=0.1,
                    schedule="step:2,0.5")
    assert [r.lr for r in result.history] == [0.1, 0.1, 0.05]


# --- checkpoints and resume --------------------------------------------------------------

def test_resume_is_exact(digits64, tmp_path):
    straight, r_all = fit(mlp(), digits64, out=tmp_path / "a", epochs=4, translate=0,
                          batch_size=50)
    fit(mlp(), digits64, out=tmp_path / "b", epochs=2, batch_size=50)
    model = build(mlp(), seed=99)              # different weights: the checkpoint must win
    resumed = train.Trainer(model, digits64, train.TrainConfig(epochs=4, batch_size=50),
                            out=tmp_path / "b")
    resumed.resume(tmp_path / "b" / "checkpoint.npz")
    assert resumed.epoch == 2 and resumed.optimizer.t == 2 * 26
    r_rest = resumed.fit()
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(p, model.params[name], err_msg=name)
    assert [r.train_loss for r in r_rest.history] == [r.train_loss for r in r_all.history]
    assert r_rest.test_acc == r_all.test_acc


def test_checkpoint_holds_weights_optimizer_and_meta(digits64, tmp_path):
    trainer, _ = fit(mlp(), digits64, out=tmp_path, epochs=1, optimizer="momentum", lr=0.01)
    ckpt = train.read_checkpoint(tmp_path / "checkpoint.npz")
    assert set(ckpt.state) == set(trainer.model.state_dict())
    assert {k.split("/")[0] for k in ckpt.optimizer} == {"t", "velocity"}
    assert ckpt.meta["epoch"] == 1 and ckpt.meta["spec"] == "tiny_mlp"
    assert ckpt.meta["optimizer"] == "momentum" and len(ckpt.meta["history"]) == 1
    np.testing.assert_array_equal(ckpt.state["fc1.weight"], trainer.model.params["fc1.weight"])


def test_resume_errors(digits64, tmp_path):
    fit(mlp(), digits64, out=tmp_path, epochs=1)
    path = tmp_path / "checkpoint.npz"
    other = train.Trainer(build(mlp(hidden=16)), digits64, train.TrainConfig(epochs=2))
    with pytest.raises(ArchcalcError, match="'fc1.weight' has shape 32×64, the model needs 16×64"):
        other.resume(path)
    sgd = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=2, optimizer="sgd"))
    with pytest.raises(ArchcalcError, match="run used --optimizer adam; this run asks for --optimizer sgd"):
        sgd.resume(path)
    done = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=1))
    with pytest.raises(ArchcalcError, match="already trained 1 epoch"):
        done.resume(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ArchcalcError, match="not a readable .npz file"):
        train.read_checkpoint(bad)


def test_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"old and good")

    def dies_half_way(fh):
        fh.write(b"half a new fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.atomic_write(path, dies_half_way)
    assert path.read_bytes() == b"old and good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]      # no temp left


# --- bad runs ----------------------------------------------------------------------------

class Where(train.Progress):
    """Knows which epoch and batch the trainer is on."""

    def epoch_start(self, epoch, epochs, batches, lr):
        self.epoch, self.batch = epoch, 1

    def batch_end(self, batch, loss, acc):
        self.batch = batch + 1


def test_nan_loss_stops_at_once_and_keeps_last_good_checkpoint(digits64, tmp_path, monkeypatch):
    real = losses.LOSSES["cross_entropy"]
    where = Where()

    def poisoned(scores, labels, class_weights=None):
        loss, d = real(scores, labels, class_weights)
        return (float("nan"), d) if (where.epoch, where.batch) == (2, 3) else (loss, d)

    monkeypatch.setitem(losses.LOSSES, "cross_entropy", poisoned)
    trainer = train.Trainer(build(mlp()), digits64,
                            train.TrainConfig(epochs=3, batch_size=50, lr=0.01), out=tmp_path,
                            progress=where)
    with pytest.raises(ArchcalcError) as exc:
        trainer.fit()
    text = exc.value.render()
    assert "the loss became nan at epoch 2, batch 3" in text
    assert "lower the learning rate, e.g. --lr 0.001" in text and "(epoch 1)" in text
    ckpt = train.read_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.meta["epoch"] == 1 and all(np.isfinite(a).all() for a in ckpt.state.values())
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1


def test_exploding_weights_stop_the_run(digits64):
    trainer = train.Trainer(build(mlp()), digits64,
                            train.TrainConfig(epochs=1, optimizer="sgd", lr=1e38))
    with pytest.raises(ArchcalcError, match=r"(loss became|weight '.*' became NaN or infinite) "
                                            r"at epoch 1, batch \d+"):
        trainer.fit()


def test_dataset_must_fit_the_spec(digits64):
    with pytest.raises(ArchcalcError, match=r"dataset 'digits' has 10 classes; spec 'tiny_mlp' "
                                            r"ends with 5 output value\(s\) per image \(layer 'fc2'\)"):
        train.Trainer(build(mlp(units=5)), digits64, train.TrainConfig())
    with pytest.raises(ArchcalcError, match="class weights '1,2' give 2 number\\(s\\); dataset 'digits' has 10 classes"):
        train.Trainer(build(mlp()), digits64, train.TrainConfig(class_weights="1,2"))
    with pytest.raises(ArchcalcError, match="--monitor val_f1 is out of range: one of val_loss"):
        train.Trainer(build(mlp()), digits64, train.TrainConfig(monitor="val_f1"))


# --- early stopping, frozen layers, Ctrl-C -----------------------------------------------

def scripted(trainer, val_losses):
    """Replace the epoch with a script: bump fc1.bias by the epoch number, report val_loss."""
    def epoch(e):
        trainer.model.params["fc1.bias"][:] = e
        trainer.train_images += 1
        return train.EpochRecord(e, 1.0, 0.5, val_losses[e - 1], 0.5, 0.1, 0.0)
    trainer._epoch = epoch


def test_early_stopping_restores_best(digits64, tmp_path):
    trainer = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=10, patience=2),
                            out=tmp_path)
    scripted(trainer, [1.0, 0.8, 0.9, 0.95, 0.1, 0.1])
    result = trainer.fit()
    assert result.stopped_early and result.epochs == 4 and result.best_epoch == 2
    assert (trainer.model.params["fc1.bias"] == 2).all()            # the best epoch's weights
    ckpt = train.read_checkpoint(tmp_path / "checkpoint.npz")
    assert (ckpt.state["fc1.bias"] == 4).all()                       # resume state: last epoch
    assert (ckpt.final_weights["fc1.bias"] == 2).all()               # what evaluate uses
    keep = train.Trainer(build(mlp()), digits64,
                         train.TrainConfig(epochs=10, patience=2, restore_best=False))
    scripted(keep, [1.0, 0.8, 0.9, 0.95])
    keep.fit()
    assert (keep.model.params["fc1.bias"] == 4).all()


def test_frozen_layers_do_not_change(digits64):
    model = build(mlp())
    model.freeze(["fc1"])
    before = {k: v.copy() for k, v in model.params.items()}
    train.Trainer(model, digits64, train.TrainConfig(epochs=1, weight_decay=0.1, l1=0.01)).fit()
    assert (model.params["fc1.weight"] == before["fc1.weight"]).all()
    assert (model.params["fc1.bias"] == before["fc1.bias"]).all()
    assert not (model.params["fc2.weight"] == before["fc2.weight"]).all()


def test_ctrl_c_stops_cleanly_on_the_last_completed_epoch(digits64, tmp_path):
    class Interrupt(train.Progress):
        def batch_end(self, batch, loss, acc):
            if self.epoch == 2 and batch == 3:
                raise KeyboardInterrupt

        def epoch_start(self, epoch, epochs, batches, lr):
            self.epoch = epoch

    model = build(mlp())
    trainer = train.Trainer(model, digits64, train.TrainConfig(epochs=5), out=tmp_path,
                            progress=Interrupt())
    result = trainer.fit()
    assert result.interrupted and result.epochs == 1 and len(result.history) == 1
    ckpt = train.read_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.meta["epoch"] == 1
    for name, arr in ckpt.state.items():
        np.testing.assert_array_equal(model.state_dict()[name], arr)
    assert 0 < result.test_acc <= 1


def test_confusion_and_balanced_weights():
    m = train.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    w = train.balanced_weights(np.array([0, 0, 0, 1]), 2)
    assert w.tolist() == pytest.approx([4 / 6, 2.0])


def test_checkpoint_is_loadable_by_the_executor(digits64, tmp_path):
    from archcalc.nn import load_weights
    fit(mlp(), digits64, out=tmp_path, epochs=1)
    model = build(mlp(), seed=5)
    load_weights(model, Path(tmp_path / "checkpoint.npz"))
    ckpt = train.read_checkpoint(tmp_path / "checkpoint.npz")
    np.testing.assert_array_equal(model.params["fc2.weight"], ckpt.state["fc2.weight"])


def test_checkpoint_keeps_slashed_layer_names_apart(tmp_path):
    """GoogLeNet-style names hold '/', and a layer may even be called 'best'."""
    state = {"inception_3a/1x1.weight": np.ones(2), "best/conv.weight": np.zeros(1)}
    opt = {"t": np.array(3), "m/inception_3a/1x1.weight": np.full(2, 0.5)}
    best = {"inception_3a/1x1.weight": np.full(2, 5.0)}
    train.save_checkpoint(tmp_path / "c.npz", state, opt, best, {"epoch": 1})
    ckpt = train.read_checkpoint(tmp_path / "c.npz")
    assert set(ckpt.state) == set(state) and set(ckpt.optimizer) == set(opt)
    assert ckpt.best["inception_3a/1x1.weight"].tolist() == [5.0, 5.0]
    assert ckpt.meta == {"format": 2, "epoch": 1}


def test_class_weights_reach_the_loss(digits64):
    labels = digits64.train.labels
    t = train.Trainer(build(mlp()), digits64, train.TrainConfig(class_weights="balanced"))
    balanced = labels.size / (10 * np.bincount(labels))
    # scaled so that the largest is 1 (the weighted mean does not change)
    np.testing.assert_allclose(t.class_weights, balanced / balanced.max())
    heavy = train.Trainer(build(mlp()), digits64,
                          train.TrainConfig(class_weights=",".join(["1"] * 9 + ["50"])))
    plain = train.Trainer(build(mlp()), digits64, train.TrainConfig())
    # the same weights score the validation set differently once class 9 weighs 50×
    assert heavy.evaluate(digits64.val)[0] != pytest.approx(plain.evaluate(digits64.val)[0])
    assert heavy.evaluate(digits64.val)[1] == plain.evaluate(digits64.val)[1]


# --- run directories and options (issue 8) ---------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("lr", float("inf"), "--lr inf is out of range: a finite number > 0"),
    ("lr", float("nan"), "--lr nan is out of range"),
    ("seed", -1, "--seed -1 is out of range: a whole number in 0..4294967295"),
    ("seed", 2**32, "--seed 4294967296 is out of range"),
    ("weight_decay", float("nan"), "--weight-decay nan is out of range"),
    ("clip_norm", float("inf"), "--clip-norm inf is out of range"),
    ("batch_size", -3, "--batch-size -3 is out of range"),
    ("translate", 8, "--translate 8 would shift 8×8 images by up to 8 pixels; the most is 7"),
])
def test_library_callers_get_the_same_ranges(key, value, message):
    net = loads(CNN)
    d = datamod.load("digits", net.input_shape, spec="tiny_cnn")
    with pytest.raises(ArchcalcError, match=message.replace("+", r"\+")):
        train.Trainer(build(net), d, train.TrainConfig(**{key: value}))


def test_a_second_run_in_the_same_directory_is_refused(digits64, tmp_path):
    with train.RunLock(tmp_path):
        trainer = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=1),
                                out=tmp_path)
        with pytest.raises(ArchcalcError, match="another archcalc train is writing"):
            trainer.fit()
    trainer.fit()                                    # the lock went with its holder
    assert train.read_checkpoint(tmp_path / "checkpoint.npz").meta["epoch"] == 1


def test_library_refuses_another_run_too(digits64, tmp_path):
    fit(mlp(), digits64, out=tmp_path, epochs=1)
    with pytest.raises(ArchcalcError, match="already holds a training run"):
        fit(mlp(), digits64, out=tmp_path, epochs=1)
    model = build(mlp())
    train.Trainer(model, digits64, train.TrainConfig(epochs=1), out=tmp_path,
                  overwrite=True).fit()


def test_resume_refuses_each_result_deciding_option(digits64, tmp_path):
    setup = {"data": "digits", "val_split": 0.1, "dtype": "float32", "freeze": []}
    train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=1), out=tmp_path,
                  setup=setup).fit()
    path = tmp_path / "checkpoint.npz"
    for change, said in [({"seed": 1}, "--seed 0; this run asks for --seed 1"),
                         ({"batch_size": 0}, "--batch-size 64; this run asks for --batch-size full"),
                         ({"clip_norm": 1.0}, "no --clip-norm; this run asks for --clip-norm 1.0"),
                         ({"loss": "hinge"}, "--loss cross_entropy; this run asks for --loss hinge")]:
        t = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=2, **change),
                          setup=setup)
        with pytest.raises(ArchcalcError, match=said):
            t.resume(path)
    t = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=2),
                      setup={**setup, "dtype": "float64"})
    with pytest.raises(ArchcalcError, match="--dtype float32; this run asks for --dtype float64"):
        t.resume(path)
    ok = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=5, patience=2),
                       setup=setup)
    ok.resume(path)                                  # epochs and patience may change
    assert ok.epoch == 1


def test_a_batch_of_zero_weighted_classes_teaches_nothing_and_huge_weights_do_not_overflow(
        digits64):
    """--class-weights 1,0,...,0 --batch-size 1: most batches weigh 0 in total; they used to
    stop the run mid-epoch. Weights of 1e38 used to overflow float32 (loss 0, warnings)."""
    zero = "1," + ",".join(["0"] * 9)
    t = train.Trainer(build(mlp()), digits64, train.TrainConfig(
        epochs=1, batch_size=1, class_weights=zero))
    assert math.isfinite(t.fit().test_loss)
    huge = ",".join(["1e38"] * 10)
    t = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=1, class_weights=huge))
    np.testing.assert_array_equal(t.class_weights, np.ones(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = t.fit()
    assert result.test_loss > 0.01


def test_a_schedule_that_leaves_the_float_range_is_refused_before_training(digits64):
    with pytest.raises(ArchcalcError, match=r"--schedule exponential:1e200 with --lr 1e-300 "
                                            r"overflows the float range at epoch 5"):
        train.Trainer(build(mlp()), digits64, train.TrainConfig(
            epochs=5, lr=1e-300, schedule="exponential:1e200"))
    s = train.schedules.parse("exponential:1e200")
    assert s(1e-300, 2) == pytest.approx(1e100)                  # 1e200 ** 2 alone overflows


# --- hostile4 --------------------------------------------------------------------------------

BN_FLAT = "name: bnflat\ninput: [64]\nlayers: [{dense: 16}, batchnorm, relu, {dense: 10}]\n"


def test_a_last_batch_of_one_is_folded_into_the_one_before():
    parts = datamod.batch_indices(9, 4, np.random.default_rng(0))
    assert [p.size for p in parts] == [4, 5]
    assert sorted(np.concatenate(parts).tolist()) == list(range(9))
    assert [p.size for p in datamod.batch_indices(3, 1, np.random.default_rng(0))] == [1, 1, 1]


def test_batch_norm_trains_when_the_last_batch_would_hold_one_example(digits64):
    """F1: 2·16 + 1 examples at batch 16 died in epoch 1 with "train with a batch of at
    least 2"; batch norm at batch 1 is refused before training instead."""
    net = loads(BN_FLAT)
    trainer, result = fit(net, small(digits64, 33), epochs=1, batch_size=16)
    assert result.epochs == 1 and math.isfinite(result.history[0].train_loss)
    with pytest.raises(ArchcalcError, match="layer 'bn1' \\(batchnorm\\) normalises one value "
                       "per channel over the batch, and --batch-size 1 gives batches"):
        train.Trainer(build(net), small(digits64, 33), train.TrainConfig(batch_size=1))


def test_a_failed_write_on_resume_keeps_the_resumed_checkpoint(digits64, tmp_path,
                                                                monkeypatch):
    """F3: a full disk on --resume said "no checkpoint of this run is on disk" and left no
    history.json; the checkpoint resumed from is still there, and so is its history."""
    fit(mlp(), digits64, out=tmp_path, epochs=1)
    trainer = train.Trainer(build(mlp()), digits64, train.TrainConfig(epochs=2), out=tmp_path)
    trainer.resume(tmp_path / "checkpoint.npz")

    def full(path, *args):
        raise train.write_error(path, OSError(28, "No space left on device"))
    monkeypatch.setattr(train, "save_checkpoint", full)
    with pytest.raises(ArchcalcError, match="still holds epoch 1") as info:
        trainer.fit()
    assert "no checkpoint" not in str(info.value)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1]


def test_divergence_on_resume_names_a_new_run_from_the_weights(digits64, tmp_path):
    """F5: --resume refuses --lr, so the fix is a new run from the checkpoint's weights."""
    cfg = dict(epochs=1, optimizer="sgd", lr=1e30)
    with pytest.raises(ArchcalcError):
        fit(mlp(), digits64, out=tmp_path, **cfg)
    trainer = train.Trainer(build(mlp()), digits64, train.TrainConfig(**{**cfg, "epochs": 2}),
                            out=tmp_path)
    trainer.resume(tmp_path / "checkpoint.npz")
    with pytest.raises(ArchcalcError, match=r"start a new run from these weights: --weights "
                       r".*checkpoint.npz --lr 1e\+29 --out NEW_DIR"):
        trainer.fit()
