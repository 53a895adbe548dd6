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
    fit = smallest_fit(load("alexnet"), 227)
    smallest, below = fit.smallest, fit.below
    assert fit.complete and below.too_small
    assert smallest.size == 67 and smallest.analysis.output_shape == (1000,)
    assert below.size == 66 and "pool5" in below.error and "output size 0" in below.error


def test_the_issues_63_is_torchvisions_alexnet_with_padding_2():
    """torchvision pads conv1 by 2: (63 + 4 − 11)/4 + 1 = 15 → 7 → 3 → 1 fits; 62 gives
    (62 + 4 − 11)/4 + 1 = 14.75 → 14 → 6 → 2 → 0."""
    text = (bundled_dir() / "alexnet.yaml").read_text()
    padded = text.replace("kernel: 11, stride: 4}", "kernel: 11, stride: 4, padding: 2}")
    assert padded != text
    fit = smallest_fit(loads(padded), 227)
    assert (fit.smallest.size, fit.below.size) == (63, 62)


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
    with pytest.raises(ArchcalcError, match="sweep varies a C×H×W input.s H and W; spec .t. "
                                            "takes a flat"):
        sweep(loads("name: t\ninput: [4]\nlayers:\n  - dense: 3\n"), [8])


@pytest.mark.parametrize("args, expected", [
    (("32,64, 128", None, None, None), [32, 64, 128]),
    ((None, 32, 128, 32), [32, 64, 96, 128]),
    ((None, 5, 7, None), [5, 6, 7]),
    (("0067,000000000000224", None, None, None), [67, 224]),
])
def test_parse_sizes(args, expected):
    assert parse_sizes(*args) == expected


@pytest.mark.parametrize("args, message", [
    (("32,x", None, None, None), "bad --sizes"),
    (("0,32", None, None, None), "input size 0 in --sizes is outside 1..1,000,000,000"),
    (("32", 1, 2, None), "not both"),
    ((None, 64, 32, None), "below --from"),
    ((None, 32, 64, 0), r"--step 0 is outside 1..1,000,000,000"),
    ((None, 0, 64, 1), r"--from 0 is outside 1..1,000,000,000"),
    ((None, 1, 10**9 + 1, 1), r"--to 1000000001 is outside"),
    ((None, 1, 10**9, None), r"--from 1 --to 1,000,000,000 --step 1 is 1,000,000,000 sizes, "
                             r"more than the limit of 1,000 \(MAX_SWEEP_SIZES\) \(fix: use "
                             r"--step 1,000,000 or more"),
    (("1," * 1000 + "1", None, None, None), "--sizes lists 1,001 sizes"),
    (("1000000001", None, None, None), "outside 1..1,000,000,000"),
    (("9" * 5000, None, None, None), "outside 1..1,000,000,000"),
    ((",,", None, None, None), "lists no size"),
    (("6²", None, None, None), "bad --sizes value '6²'"),
    (("+6", None, None, None), "bad --sizes value"),
    ((None, None, None, None), "no sizes"),
])
def test_parse_sizes_errors(args, message):
    with pytest.raises(ArchcalcError, match=message):
        parse_sizes(*args)


@pytest.mark.parametrize("start, stop, step", [(1, 1000, 1), (1, 1001, 2), (7, 5007, 6),
                                              (5, 10**9, 10**6)])
def test_the_suggested_step_is_the_least_that_fits_the_cap(start, stop, step):
    """At the cap exactly: the range is accepted, one less step is refused with that step."""
    assert len(parse_sizes(None, start, stop, step)) <= 1000
    if step > 1:
        with pytest.raises(ArchcalcError, match=f"use --step {step:,} or more"):
            parse_sizes(None, start, stop, step - 1)


# ---- the smallest fit: bisection on "too small", then a bounded scan ------------------------
EVEN_ONLY = """
name: even_only
input: [1, 32, 32]
layers:
  - concat:
      - [{conv: {filters: 2, kernel: 1, stride: 2}}]
      - [{maxpool: {kernel: 2, stride: 2}}]
  - conv: {filters: 2, kernel: 3}
"""
NEVER = """
name: never
input: [1, 32, 32]
layers:
  - add:
      - [{conv: {filters: 2, kernel: 3}}]
      - [{conv: {filters: 2, kernel: 1}}]
"""


def test_fit_at_even_sizes_only_is_found_past_the_bisection():
    """Branches (1×1 stride 2 → ⌈W/2⌉, 2×2/2 pool → ⌊W/2⌋) agree only at even W, and the
    3×3 conv after them needs ⌈W/2⌉ ≥ 3. W = 4 is too small; 5 is not, but its branches
    disagree (3 vs 2): the bisection stops at 4/5 and the scan finds 6, proven smallest."""
    fit = smallest_fit(loads(EVEN_ONLY), 1000)
    assert fit.smallest.size == 6 and fit.below.size == 5 and "concat" in fit.below.error
    assert [p.ok for p in sweep(loads(EVEN_ONLY), [4, 5, 6, 7, 8])] == [False, False, True,
                                                                         False, True]


def test_a_spec_that_never_fits_is_searched_in_bounded_work(monkeypatch):
    """The issue: --sizes 1000000000 on a spec that never fits scanned 10⁹ sizes. Now:
    ~30 bisection steps and MAX_SWEEP_SCAN sizes, and the answer says how far it knows."""
    calls = []
    import archcalc.calc.whatif as whatif
    real = whatif._at
    monkeypatch.setattr(whatif, "_at", lambda *a: calls.append(a[1]) or real(*a))
    monkeypatch.setenv("ARCHCALC_MAX_SWEEP_SCAN", "50")
    fit = smallest_fit(loads(NEVER), 10**9)
    assert fit.smallest is None and not fit.complete
    assert fit.known_upto == 52 and "add needs equal shapes" in fit.below.error  # 1, 2 too small
    assert len(calls) <= 31 + 50


def test_too_small_everywhere_is_complete():
    fit = smallest_fit(load("alexnet"), 66)
    assert fit.smallest is None and fit.complete and fit.below.size == 66


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "resnet18", "lenet5", "vgg11"])
def test_too_small_is_downward_closed(name):
    """The bisection's premise, checked: once a size is too small, every smaller size fails;
    and the bisection's answer is the first size that fits, scanning one by one."""
    network = load(name)
    points = sweep(network, list(range(1, 120)))
    for point in points:
        if point.too_small:
            assert not any(p.ok for p in points[:point.size - 1]), (name, point.size)
    first = next((p.size for p in points if p.ok), None)
    fit = smallest_fit(network, 119)
    assert (fit.smallest.size if fit.smallest else None) == first


def test_ceil_mode_and_same_padding_keep_the_premise():
    spec = """
name: mixed
input: [1, 32, 32]
layers:
  - conv: {filters: 2, kernel: 3, stride: 2, padding: same}
  - maxpool: {kernel: 3, stride: 2, ceil_mode: true}
  - conv: {filters: 2, kernel: 3, dilation: 2}
  - maxpool: {kernel: 2, stride: 2, padding: 1, ceil_mode: true}
"""
    network = loads(spec)
    points = sweep(network, list(range(1, 200)))
    first = next(p.size for p in points if p.ok)
    assert all(p.too_small for p in points[:first - 1])
    assert all(p.ok for p in points[first - 1:])      # monotone here: no merges
    assert smallest_fit(network, 199).smallest.size == first


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


def test_work_is_bounded_before_the_sweep_and_the_scan_gets_what_is_left(monkeypatch):
    """alexnet has 23 layers; 196 sizes up to 227 need 196 + 8 bisection steps."""
    from archcalc.calc.whatif import check_work
    network = load("alexnet")
    sizes = parse_sizes(None, 32, 227, None)
    assert check_work(network, sizes) == 256                  # plenty left: MAX_SWEEP_SCAN
    monkeypatch.setenv("ARCHCALC_MAX_SWEEP_WORK", str(23 * (196 + 8) + 23 * 10 + 5))
    assert check_work(network, sizes) == 10                   # what the budget leaves
    monkeypatch.setenv("ARCHCALC_MAX_SWEEP_WORK", str(23 * (196 + 8) - 1))
    with pytest.raises(ArchcalcError, match=r"23 layers\) takes 4,692 layer evaluations .* "
                                            r"sweep at most 195 sizes"):
        check_work(network, sizes)
    fit = smallest_fit(network, 227, scan=1)                 # 66 too small, 67 fits: one is enough
    assert fit.smallest.size == 67
