"""Resuming a run with dropout draws the same masks as the straight run (the trainer reseeds
the executor's dropout generator from the run's seed and the epoch)."""

from __future__ import annotations

import numpy as np

from archcalc.nn import build
from archcalc.nn import data as datamod
from archcalc.nn import train
from archcalc.spec import loads

NET = """
name: drop_mlp
input: [64]
init: xavier
layers: [{dense: 32}, relu, {dropout: 0.5}, {dense: 10}]
"""


def test_resume_with_dropout_is_exact(tmp_path):
    data = datamod.load("digits", (64,), spec="drop_mlp")
    cfg = dict(epochs=3, batch_size=64, translate=0)
    straight = train.Trainer(build(loads(NET)), data, train.TrainConfig(**cfg), out=tmp_path / "a")
    r_all = straight.fit()
    first = train.Trainer(build(loads(NET)), data, train.TrainConfig(**{**cfg, "epochs": 1}),
                          out=tmp_path / "b")
    first.fit()
    resumed = train.Trainer(build(loads(NET), seed=7), data, train.TrainConfig(**cfg),
                            out=tmp_path / "b")
    resumed.resume(tmp_path / "b" / "checkpoint.npz")
    r_rest = resumed.fit()
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(p, resumed.model.params[name], err_msg=name)
    assert [h.train_loss for h in r_rest.history] == [h.train_loss for h in r_all.history]


def test_spec_chooses_the_initialiser():
    assert loads(NET).init == "xavier"
    assert loads(NET.replace("init: xavier\n", "")).init is None
