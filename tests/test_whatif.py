"""Scaling what-ifs: the input-size sweep, the smallest input that fits, training memory."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from archcalc.calc import analyze
from archcalc.calc.whatif import (OPTIMIZER_COPIES, parse_sizes, smallest_fit, sweep,
                                  training_memory)
from archcalc.errors import ArchcalcError
from archcalc.nn import build, optim
from archcalc.spec import load, loads
from archcalc.spec.load import bundled_dir


def test_alexnet_smallest_input_is_67():
    """Backwards from pool5 (3×3/2 needs a 3×3 map): pool2 input ≥ (3 − 1)·2 + 3 = 7,
    pool1 input ≥ (7 − 1)·2 + 3 = 15, conv1 (11/4, no padding) input ≥ (15 − 1)·4 + 11 = 67."""
    smallest, below = smallest_fit(load("alexnet"), 227)
    assert smallest.size == 67 and smallest.analysis.output_shape == (1000,)
    assert below.size == 66 and "pool5" in below.error and "output size 0" in below.error


def test_the_issues_63_is_torchvisions_alexnet_with_padding_2():
    """torchvision pads conv1 by 2: (63 + 4 − 11)/4 + 1 = 15 → 7 → 3 → 1 fits; 62 gives
    (62 + 4 − 11)/4 + 1 = 14.75 → 14 → 6 → 2 → 0."""
    text = (bundled_dir() / "alexnet.yaml").read_text()
    padded = text.replace("kernel: 11, stride: 4}", "kernel: 11, stride: 4, padding: 2}")
    assert padded != text
    smallest, below = smallest_fit(loads(padded), 227)
    assert (smallest.size, below.size) == (63, 62)


def test_sweep_marks_sizes_that_do_not_fit():
    points = sweep(load("alexnet"), [32, 66, 67, 227])
    assert [p.ok for p in points] == [False, False, True, True]
    assert "pool2" in points[0].error
    assert points[3].analysis.totals.macs == 724_406_816   # the spec's own total


def test_sweep_params_change_where_dense_follows_flatten():
    points = sweep(load("vgg16"), [32, 224])
    small, big = (p.analysis.totals.params for p in points)
    # fc6 sees 512·1·1 instead of 512·7·7 features
    assert big - small == (512 * 7 * 7 - 512) * 4096
    assert points[0].analysis.totals.activation_bytes == 4 * points[0].analysis.totals.activations


def test_sweep_needs_a_chw_spec():
    with pytest.raises(ArchcalcError, match="needs a C×H×W input"):
        sweep(loads("name: t\ninput: [4]\nlayers:\n  - dense: 3\n"), [8])


@pytest.mark.parametrize("args, expected", [
    (("32,64, 128", None, None, None), [32, 64, 128]),
    ((None, 32, 128, 32), [32, 64, 96, 128]),
    ((None, 5, 7, None), [5, 6, 7]),
])
def test_parse_sizes(args, expected):
    assert parse_sizes(*args) == expected


@pytest.mark.parametrize("args, message", [
    (("32,x", None, None, None), "bad --sizes"),
    (("0,32", None, None, None), "positive"),
    (("32", 1, 2, None), "not both"),
    ((None, 64, 32, None), "below --from"),
    ((None, 32, 64, 0), "--step must be a positive integer"),
    ((None, None, None, None), "no sizes"),
])
def test_parse_sizes_errors(args, message):
    with pytest.raises(ArchcalcError, match=message):
        parse_sizes(*args)


SMALL = """
name: small
input: [1, 6, 6]
layers:
  - conv: {filters: 2, kernel: 3}
  - bn
  - relu
  - flatten
  - dense: 3
"""


def test_training_memory_by_hand():
    analysis = analyze(loads(SMALL), batch=8)
    # params: conv 3·3·1·2 + 2 = 20, bn γβ 4 (+ 4 running), dense 32·3 + 3 = 99
    trainable, params = 20 + 4 + 99, 20 + 8 + 99
    # activations per image: input 36 + conv 32 + bn 32 + dense 3 (relu, flatten in place)
    acts = 36 + 32 + 32 + 3
    estimates = {e.optimizer: e for e in training_memory(analysis)}
    for name, k in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        e = estimates[name]
        assert e.total_bytes == 4 * (params + (1 + k) * trainable + 8 * acts)
        assert e.formula() == (f"({params:,} + (1 + {k})·{trainable:,} + 8·{acts:,})·4 = "
                               f"{e.total_bytes:,} B")
    assert training_memory(analysis, ["adam"], batch=1)[0].activation_bytes == 4 * acts


def test_optimizer_copies_are_the_executors_slots():
    for name, copies in OPTIMIZER_COPIES.items():
        assert len(optim.OPTIMIZERS[name].slots) == copies


def test_unknown_optimizer_is_an_error():
    with pytest.raises(ArchcalcError, match="unknown optimizer 'adamw'"):
        training_memory(analyze(loads(SMALL)), ["adamw"])


# ---- the estimate against the executor --------------------------------------------------------
MERGES = """
name: merges
input: [3, 12, 12]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1}
  - bn
  - relu
  - add:
      - [{conv: {filters: 4, kernel: 3, padding: 1}}, bn, relu,
         {conv: {filters: 4, kernel: 3, padding: 1}}, bn]
      - []
  - relu
  - concat:
      - [{conv: {filters: 2, kernel: 1}}, relu, {conv: {filters: 3, kernel: 3, padding: 1}}]
      - [{maxpool: {kernel: 3, stride: 1, padding: 1}}, {conv: {filters: 2, kernel: 1}}]
  - maxpool: {kernel: 2}
  - flatten
  - dense: 10
"""


def _training_step(network, batch: int, optimizer: str):
    """One forward (training), backward and optimizer step of the NumPy executor."""
    x = np.random.default_rng(0).standard_normal((batch,) + network.input_shape)
    x = x.astype(np.float32)
    model = build(network, seed=0)
    y = model.forward(x, training=True)   # the model keeps its own copy of x
    model.backward(np.ones_like(y))
    opt = optim.make(optimizer, 0.01)
    opt.step(model.params, model.grads, model.frozen)
    return model, opt, x


@pytest.mark.parametrize("spec, batch, optimizer", [
    (MERGES, 4, name) for name in OPTIMIZER_COPIES] + [("lenet5", 8, "sgd"), ("lenet5", 8, "adam")])
def test_estimate_is_what_the_executor_keeps(spec, batch, optimizer):
    """Weights, gradients, optimizer slots and the activations the executor holds after a
    training step (the input copy plus every array a layer allocated, read off its records)
    add up to the estimate, byte for byte."""
    network = loads(spec) if "\n" in spec else load(spec)
    model, opt, x = _training_step(network, batch, optimizer)
    nbytes = lambda arrays: sum(a.nbytes for a in arrays)  # noqa: E731
    state = [a for key, a in opt.state_dict().items() if key != "t"]
    measured = (nbytes(model.params.values()) + nbytes(model.buffers.values())
                + nbytes(model.grads.values()) + nbytes(state)
                + x.nbytes
                + sum(r.kept_bytes for r in model.records))
    estimate = training_memory(analyze(network, batch=batch), [optimizer])[0]
    assert measured == estimate.total_bytes


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_estimate_against_the_measured_peak(optimizer):
    """tracemalloc (NumPy reports its buffers to it) over build + one training step of
    LeNet-5: what is still held afterwards is the estimate plus Python bookkeeping; the peak
    is higher by the transients the estimate leaves out (im2col buffers, activation
    gradients, the optimizer's temporaries)."""
    network, batch = load("lenet5"), 8
    estimate = training_memory(analyze(network, batch=batch), [optimizer])[0].total_bytes
    gc.collect()
    tracemalloc.start()
    try:
        model, opt, x = _training_step(network, batch, optimizer)
        del x  # the caller's array; the model holds its own copy
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert estimate <= held <= estimate + 256 * 1024, (estimate, held)
    assert held < peak < 4 * estimate, (estimate, peak)
