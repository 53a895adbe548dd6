"""Gradient checks: every layer kind's backward against centred differences (float64),
the checker's own ability to fail, and the `archcalc gradcheck` command."""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.nn import gradcheck as gc
from archcalc.nn.activations import ReLU
from archcalc.nn.norm import LRN
from archcalc.calc import analyze
from archcalc.spec import load, loads

# Each case puts the kind after a small conv, so its backward is checked both through the
# input gradient and through the conv's parameters upstream.
CASES = {
    "conv_stride_asym_pad_dilation_groups":
        "[{conv: {filters: 4, kernel: 3, stride: 2, padding: [1, 0, 2, 1], dilation: [1, 2], groups: 2}}]",
    "conv_same_no_bias": "[{conv: {filters: 3, kernel: [2, 3], stride: 2, padding: same, bias: false}}]",
    "maxpool_pad_ceil": "[{conv: {filters: 2, kernel: 1}}, {maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]",
    "avgpool_pad_ceil": "[{conv: {filters: 2, kernel: 1}}, {avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true}}]",
    "avgpool_asym_same": "[{conv: {filters: 2, kernel: 1}}, {avgpool: {kernel: 2, stride: 2, padding: same}}]",
    "global_avgpool": "[{conv: {filters: 2, kernel: 1}}, gap, {global_avgpool: {keepdims: false}}]",
    "flatten_dense": "[{conv: {filters: 2, kernel: 2}}, flatten, {dense: 3}, {dense: {units: 2, bias: false}}]",
    "dropout": "[{conv: {filters: 2, kernel: 1}}, {dropout: 0.5}, flatten, {dense: 3}, {dropout: 0.3}]",
    "batchnorm_images": "[{conv: {filters: 3, kernel: 2}}, {bn: {momentum: 0.3}}]",
    "batchnorm_flat": "[{conv: {filters: 2, kernel: 2}}, flatten, {dense: 4}, bn]",
    "lrn": "[{conv: {filters: 5, kernel: 1}}, {lrn: {size: 3, alpha: 0.5, beta: 0.75, k: 1}}, {lrn: {size: 2, alpha: 0.2, beta: 1.5, k: 2}}]",
    # windows wider than the channels (clamped to them, divided by size)
    "lrn_size_past_channels": "[{conv: {filters: 3, kernel: 1}}, {lrn: {size: 8, alpha: 2.0, beta: 0.75, k: 1}}, {lrn: {size: 100001, alpha: 500.0, beta: 1.5, k: 1}}]",
    "layernorm": "[{conv: {filters: 2, kernel: 2}}, ln, flatten, ln]",
    "relu": "[{conv: {filters: 2, kernel: 2}}, relu]",
    "leaky_relu": "[{conv: {filters: 2, kernel: 2}}, {leaky_relu: {slope: 0.2}}]",
    "elu": "[{conv: {filters: 2, kernel: 2}}, {elu: {alpha: 0.7}}]",
    "sigmoid": "[{conv: {filters: 2, kernel: 2}}, sigmoid]",
    "tanh": "[{conv: {filters: 2, kernel: 2}}, tanh]",
    "softmax": "[{conv: {filters: 3, kernel: 2}}, softmax, flatten, {dense: 3}, softmax]",
    "maxout": "[{conv: {filters: 6, kernel: 1}}, {maxout: 3}]",
    "concat": "[{conv: {filters: 2, kernel: 1}}, {concat: [[{conv: {filters: 2, kernel: 3, padding: 1}}], "
              "[{maxpool: {kernel: 3, stride: 1, padding: 1}}], []]}]",
    "add_identity": "[{conv: {filters: 2, kernel: 1}}, {add: [[{conv: {filters: 2, kernel: 3, padding: 1}}, relu], []]}, relu]",
    "add_projection": "[{conv: {filters: 2, kernel: 1}}, {add: [[{conv: {filters: 3, kernel: 3, stride: 2, padding: 1}}, bn], "
                      "[{conv: {filters: 3, kernel: 1, stride: 2}}, bn]]}]",
}


def net(layers: str, shape=(2, 5, 5)):
    return loads(f"name: t\ninput: {list(shape)}\nlayers: {layers}\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_layer_kind_passes(case):
    results = gc.gradcheck(net(CASES[case]), batch=2, seed=1)
    assert results[-1].param == "input"
    for r in results:
        assert r.checked == r.size, f"{r.layer}.{r.param}: {r.skipped} entries skipped"
        assert r.error < 1e-6, f"{r.layer}.{r.param}: relative error {r.error:.2e}"
        assert r.ok


def test_a_broken_backward_is_caught(monkeypatch):
    # relu that lets the gradient through unchanged: wrong wherever the input was negative
    monkeypatch.setattr(ReLU, "grad", lambda self, dy, y: dy)
    results = gc.gradcheck(net(CASES["relu"]), batch=2, seed=1)
    assert not all(r.ok for r in results)
    assert max(r.error for r in results) > 1e-2


def test_a_slightly_wrong_backward_is_caught(monkeypatch):
    # an error of one part in 10⁴ in LRN's backward must not pass a 1e-6 tolerance
    original = LRN.backward
    monkeypatch.setattr(LRN, "backward", lambda self, dy: original(self, dy) * (1 + 1e-4))
    results = gc.gradcheck(net(CASES["lrn"]), batch=2, seed=1)
    assert not results[-1].ok and 5e-5 < results[-1].error < 2e-4


def test_kinks_are_detected_not_passed():
    # one step so large that almost every relu input changes sign: entries whose nudges
    # cross a kink at every step tried are counted as skipped, never compared
    old = gc.STEP, gc.MIN_STEP
    try:
        gc.STEP, gc.MIN_STEP = 10.0, 6.0
        results = gc.gradcheck(net(CASES["relu"]), batch=2, seed=1)
    finally:
        gc.STEP, gc.MIN_STEP = old
    assert sum(r.skipped for r in results) > 0
    assert all(r.checked + r.skipped == r.size for r in results)
    assert all(not r.ok for r in results if r.checked == 0)


def test_samples_frozen_and_buffers_restored():
    network = net("[{conv: {filters: 2, kernel: 1, trainable: false}}, bn, flatten, {dense: 3}]")
    results = gc.gradcheck(network, batch=3, samples=4)
    assert [(r.layer, r.param) for r in results] == [
        ("bn1", "weight"), ("bn1", "bias"), ("fc1", "weight"), ("fc1", "bias"), ("(input)", "input")]
    assert [r.checked for r in results] == [2, 2, 4, 3, 4]


def test_relative_error_floor():
    # a true zero measured as 1e-13 against a network scale of 1 is agreement, not 100% error
    assert gc.relative_error(np.array([0.0]), np.array([1e-13]), 1.0) < 1e-9
    assert gc.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2]), 2.0) == pytest.approx(0.2 / 2.2)


def test_cli_passes(run):
    result = run("gradcheck", "lenet5", "--input", "1x16x16", "--samples", "3")
    assert result.exit_code == 0, result.output
    assert "conv1" in result.output and "fc3" in result.output and "✓ all 11 arrays" in result.output


def test_cli_fails_and_names_the_first_layer(run, write_spec, monkeypatch):
    monkeypatch.setattr(ReLU, "grad", lambda self, dy, y: dy)
    path = write_spec("name: t\ninput: [2, 5, 5]\nlayers: " + CASES["relu"] + "\n")
    result = run("gradcheck", path, "--samples", "0")
    assert result.exit_code == 1
    assert "✗" in result.output and "first: conv1.weight" in result.output


def test_cli_bad_spec_is_one_line(run, write_spec):
    path = write_spec("name: t\ninput: [2, 3, 3]\nlayers: [{conv: {filters: 2, kernel: 5}}]\n")
    result = run("gradcheck", path)
    assert result.exit_code == 1
    assert "larger than the padded input" in result.output and "Traceback" not in result.output


# ---- bounded before it starts (issue 8) -------------------------------------------------------
def test_gradcheck_refuses_over_its_memory_budget_with_the_batch_that_fits(run):
    result = run("gradcheck", "lenet5", "--batch", "64", "--memory-budget", "8MB")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("error: a gradcheck of lenet5 at batch 64 needs about ")
    assert "more than the memory budget of 8.0 MB (fix: --batch " in line
    fits = int(line.split("(fix: --batch ")[1].split()[0])
    assert 1 <= fits < 64
    assert run("gradcheck", "lenet5", "--batch", str(fits), "--samples", "1",
               "--memory-budget", "8MB").exit_code == 0


def test_gradcheck_refuses_work_over_the_limit_with_the_numbers(run, tmp_path):
    """75 bytes of two 20,000-unit dense layers: refused from the estimate, not after GBs."""
    spec = tmp_path / "g.yaml"
    spec.write_text("name: t\ninput: [1, 1, 1]\nlayers:\n  - flatten\n  - dense: 20000\n"
                    "  - dense: 20000\n")
    result = run("gradcheck", str(spec), "--memory-budget", "100TB")
    assert result.exit_code == 1
    assert ("checks about 82 entries × up to 22 forward passes of 800,270,002 units each"
            in result.stderr)
    assert "ARCHCALC_MAX_GRADCHECK_WORK=<larger number>" in result.stderr
    assert run("gradcheck", "lenet5", "--samples", "0").exit_code == 1  # 63,754 entries


def test_gradcheck_estimate_bounds_the_entries_it_checks():
    from archcalc.check import estimate_gradcheck
    from archcalc.nn.gradcheck import gradcheck

    network = load("lenet5")
    estimate = estimate_gradcheck(analyze(network, batch=2, dtype="float64"), 2, 3)
    results = gradcheck(network, batch=2, samples=3)
    assert sum(r.checked + r.skipped for r in results) <= estimate.entries
