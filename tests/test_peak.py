"""The peak-memory prediction (archcalc.calc.peak) against the executor's own arrays.

The oracle is the NumPy executor run with archcalc.nn.network.MemoryRecorder: after every
step of a forward and of a training step it sums the nbytes of the buffers the model holds
(the step's arrays, what a merge holds for later, every layer cache a pending backward
reads). The prediction must equal it step by step, to the byte, not just at the peak.

Bundled specs: lenet5 runs at its own input; the others at a reduced input (the policy does
not depend on the input size, and the 224² networks take minutes in NumPy): resnet18,
squeezenet1_0, mobilenet_v2, mobilenet_v3_large and efficientnet_b0 in CI; every other
bundled spec with ARCHCALC_SLOW_TESTS=1. A small spec of every remaining kind (KINDS_SPEC)
covers what the bundled ones do not use.
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from archcalc.calc.analyze import analyze
from archcalc.calc.peak import KEEPS, envelope, peaks, static_bytes, timeline
from archcalc.calc.whatif import OPTIMIZER_COPIES
from archcalc.nn import optim
from archcalc.nn.layers import KINDS
from archcalc.nn.network import MemoryRecorder, Model
from archcalc.spec import load, loads

SLOW = os.environ.get("ARCHCALC_SLOW_TESTS") == "1"

# every kind the bundled specs leave out, and the corners of the policy: a padding_mode
# conv, a dilated unpadded stride-1 conv (its dx has spare values), dropout in place and
# not, an identity branch, a C×1×1 mul gate, an empty pad, a crop then flatten, a 17×17
# max pool (uint16 argmax), both upsampling modes
KINDS_SPEC = """
name: kinds
input: [4, 12, 12]
layers:
  - conv: {filters: 6, kernel: 3, padding: 1, padding_mode: reflect}
  - elu
  - dropout: {rate: 0.25}
  - conv: {filters: 6, kernel: 3, dilation: 2}
  - leaky_relu
  - concat:
      - - tanh
      - []
      - - {conv: {filters: 4, kernel: 1}}
        - sigmoid
  - mul:
      - - gelu
      - - global_avgpool
        - {conv: {filters: 16, kernel: 1}}
        - hardsigmoid
  - pad: {padding: 1, mode: replicate}
  - pad: {padding: 0}
  - maxout: {pieces: 2}
  - crop: {cropping: [1, 0, 0, 1]}
  - upsample: {scale: 2, mode: bilinear}
  - {maxpool: {kernel: 17, stride: 2, padding: 8}}
  - upsample: {size: [7, 5]}
  - adaptive_maxpool: {output: [3, 4]}
  - conv_transpose2d: {filters: 5, kernel: 3, stride: 2}
  - lrn: {size: 3}
  - layernorm
  - silu
  - adaptive_avgpool: {output: [3, 2]}
  - batchnorm
  - hardswish
  - avgpool: {kernel: 2, stride: 1}
  - crop: {size: [1, 1]}
  - flatten
  - dense: {units: 7}
  - relu6
  - dropout: {rate: 0.5}
  - softmax
"""

CI = [("lenet5", None), ("resnet18", (3, 64, 64)), ("squeezenet1_0", (3, 64, 64)),
      ("mobilenet_v2", (3, 64, 64)), ("mobilenet_v3_large", (3, 64, 64)),
      ("efficientnet_b0", (3, 64, 64))]
SLOW_SPECS = [("alexnet", (3, 67, 67)), ("alexnet_1gpu", (3, 67, 67)),
              ("alexnet_torchvision", (3, 67, 67)), ("vgg11", (3, 32, 32)),
              ("vgg13", (3, 32, 32)), ("vgg16", (3, 32, 32)), ("vgg16_bn", (3, 32, 32)),
              ("vgg19", (3, 32, 32)), ("resnet34", (3, 64, 64)), ("resnet50", (3, 64, 64)),
              ("resnet101", (3, 64, 64)), ("resnet152", (3, 64, 64)),
              ("googlenet", (3, 224, 224)), ("inception_v3", (3, 75, 75)),
              ("densenet121", (3, 64, 64)), ("fcn_resnet50", (3, 64, 64)),
              ("unet", (1, 188, 188))]


def measured(model: Model, batch: int, training: bool, seed: int = 0):
    """[(name, phase, bytes)] the recorder saw in one inference pass or training step."""
    model.recorder = MemoryRecorder()
    x = np.random.default_rng(seed).standard_normal((batch,) + model.input_shape)
    y = model.forward(x, training=training)
    if training:  # as the trainer does: no gradient of the network input
        model.backward(np.ones_like(y) / y.size, input_grad=False)
    steps, model.recorder = model.recorder.steps, None
    return steps


def predicted(network, batch: int, mode: str, dtype: str = "float32"):
    return [(s.name, s.phase, s.held_bytes)
            for s in timeline(analyze(network, batch=batch, dtype=dtype), mode, "sgd")]


def built(network, dtype: str = "float32") -> Model:
    model = Model(network, dtype=dtype)
    model.forward(np.zeros((1,) + model.input_shape, dtype=model.dtype))
    return model


def assert_steps_equal(network, batch: int, dtype: str = "float32") -> None:
    model = built(network, dtype)
    for mode in ("inference", "training"):
        got = measured(model, batch, mode == "training")
        want = predicted(network, batch, mode, dtype)
        assert len(got) == len(want), mode
        for g, w in zip(got, want):
            assert g == w, f"{mode}: executor {g}, prediction {w}"


@pytest.mark.parametrize("name,shape", CI, ids=[n for n, _ in CI])
def test_bundled_spec_steps_equal_the_executor(name, shape):
    assert_steps_equal(load(name, shape), batch=2)


@pytest.mark.skipif(not SLOW, reason="ARCHCALC_SLOW_TESTS=1 runs every bundled spec")
@pytest.mark.parametrize("name,shape", SLOW_SPECS, ids=[n for n, _ in SLOW_SPECS])
def test_every_bundled_spec_steps_equal_the_executor(name, shape):
    assert_steps_equal(load(name, shape), batch=2)


@pytest.mark.parametrize("dtype,batch", [("float32", 2), ("float64", 3)])
def test_every_kind_steps_equal_the_executor(dtype, batch):
    assert_steps_equal(loads(KINDS_SPEC), batch, dtype)


def test_every_executor_kind_has_a_rule():
    assert set(KEEPS) == set(KINDS)


def test_held_bytes_are_affine_in_the_batch():
    """Per step held(N) = a·N + b: the second difference over N = 1, 2, 3 is zero, a is the
    step's per_image, and the executor agrees at N = 3 (lenet5 has no b; KINDS_SPEC has
    batch norm's 1/σ, taps and a spare dx row)."""
    for network in (load("lenet5"), loads(KINDS_SPEC)):
        for mode in ("inference", "training"):
            runs = [timeline(analyze(network, batch=n), mode, "sgd") for n in (1, 2, 3)]
            for s1, s2, s3 in zip(*runs):
                assert s3.held_bytes - s2.held_bytes == s2.held_bytes - s1.held_bytes
                assert s2.held_bytes - s1.held_bytes == s1.per_image
                assert s1.held_bytes == s1.per_image + s1.fixed
            env = envelope(analyze(network), mode, "sgd")
            for n, run in zip((1, 2, 3), runs):
                assert env.peak(n) == run[0].static_bytes + max(s.held_bytes for s in run)
    fixed = timeline(analyze(loads(KINDS_SPEC), batch=2), "training", "sgd")
    assert any(s.fixed for s in fixed) and not any(s.fixed for s in timeline(
        analyze(loads(KINDS_SPEC), batch=2), "inference"))


@pytest.mark.parametrize("opt", list(OPTIMIZER_COPIES))
def test_static_bytes_are_the_executors_arrays(opt):
    """Weights + buffers (inference); + gradients + the optimizer's slots after one step."""
    network = load("lenet5")
    model = built(network)
    analysis = analyze(network)
    weights = sum(a.nbytes for a in model.params.values()) + sum(
        a.nbytes for a in model.buffers.values())
    assert static_bytes(analysis, "inference", None, 4) == weights
    optimizer = optim.make(opt, 0.01)
    measured(model, 2, training=True)
    optimizer.step(model.params, model.grads, model.frozen)
    state = sum(a.nbytes for table in optimizer.state.values() for a in table.values())
    grads = sum(a.nbytes for a in model.grads.values())
    assert static_bytes(analysis, "training", opt, 4) == weights + grads + state


def test_peaks_are_the_timelines_largest_step():
    analysis = analyze(load("resnet18"), batch=4)
    result = peaks(analysis, batch=4)
    assert result.inference_bytes == max(s.bytes for s in timeline(analysis, "inference"))
    assert list(result.training_bytes) == list(OPTIMIZER_COPIES)
    for opt, value in result.training_bytes.items():
        assert value == max(s.bytes for s in timeline(analysis, "training", opt))
    # the peak is below the sum of every kept tensor plus weights (summary's figure)
    assert result.inference_bytes < analysis.totals.activation_bytes * 4 + \
        analysis.totals.param_bytes


def test_the_process_holds_at_least_the_prediction():
    """tracemalloc sees every NumPy buffer (temporaries and im2col columns too): during a
    training step its peak is at least the predicted peak; the difference is what the
    policy leaves out (benchmarks/peak_memory.py prints it)."""
    network = load("lenet5")
    model = built(network)
    optimizer = optim.make("adam", 0.01)
    measured(model, 8, training=True)
    optimizer.step(model.params, model.grads, model.frozen)   # slots exist from here on
    x = np.random.default_rng(1).standard_normal((8,) + model.input_shape)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        y = model.forward(x, training=True)
        model.backward(np.ones_like(y), input_grad=False)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    analysis = analyze(network, batch=8)
    held = max(s.held_bytes for s in timeline(analysis, "training", "adam"))
    # the static arrays (and the caller's x) existed before `base`
    assert peak >= held > 0


def test_summary_json_carries_the_peaks_of_its_batch_and_dtype(run):
    import json

    from archcalc.calc import analyze
    from archcalc.calc.peak import peaks
    from archcalc.spec import load
    result = run("summary", "lenet5", "--format", "json", "--batch", "4", "--dtype", "float64")
    assert result.exit_code == 0, result.stderr
    totals = json.loads(result.stdout)["totals"]
    want = peaks(analyze(load("lenet5"), batch=4, dtype="float64"), 4, "float64")
    assert totals["peak_inference_bytes"] == want.inference_bytes
    assert totals["peak_training_bytes"] == want.training_bytes
    assert set(want.training_bytes) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                        "adam"}
    # a training step holds more than inference, and Adam's two slots more than SGD's none
    assert want.inference_bytes < want.training_bytes["sgd"] < want.training_bytes["adam"]


def test_a_timeline_step_names_its_largest_tensors_and_counts_the_rest():
    """Each step names at most TOP tensors (largest first) and counts all it holds: the
    timeline of a deep network stays linear in its layers (naming every kept tensor at every
    step was quadratic: 4,000 rows took 40 s and 6.5 GB)."""
    from archcalc.calc import analyze
    from archcalc.calc.peak import TOP, timeline
    from archcalc.spec import load
    steps = timeline(analyze(load("resnet18"), batch=2), "training", "sgd")
    assert all(len(s.held) <= TOP for s in steps)
    assert all(list(b for _, b in s.held) == sorted((b for _, b in s.held), reverse=True)
               for s in steps)
    deepest = max(steps, key=lambda s: s.held_count)
    assert deepest.held_count > 40 and len(deepest.held) == TOP
    # the named ones are the largest: none of them is smaller than what the rest average
    rest = deepest.held_bytes - sum(b for _, b in deepest.held)
    assert min(b for _, b in deepest.held) * (deepest.held_count - TOP) >= rest
