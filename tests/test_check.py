"""`archcalc check`: calculator vs executor on every bundled spec, and what makes it fail."""

from __future__ import annotations

import importlib
import json
import re
import tracemalloc
from types import SimpleNamespace

import pytest

import archcalc.check as check_module
from archcalc.calc import analyze
from archcalc.calc import layers as calc_layers
from archcalc.calc.shapes import Dim
from archcalc.check import (estimate_memory, fmt_bytes, pair_by_name, parse_size, refuse_if_over,
                            run_check)
from archcalc.errors import ArchcalcError
from archcalc.spec import bundled_names, load
from archcalc.spec.load import parse_shape

BN_SPEC = """\
name: small_bn
input: [3, 12, 12]
layers:
  - conv: {filters: 4, kernel: 3, padding: 1, bias: false}
  - bn
  - relu
  - maxpool: {kernel: 2}
  - flatten
  - dense: 5
"""


# ---- every bundled spec ------------------------------------------------------------------

# U-Net at its paper's 1×572×572 is 150 GMACs (two minutes of NumPy on two cores): the suite
# checks it at its smallest valid input, where every layer kind and the crops still occur (its
# totals at 572 are tested exactly in test_reference_torchvision_b.py).
CHECK_INPUT = {"unet": "1x188x188"}


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_spec_checks_clean(run, name):
    """Batch 1 at the spec's own input (VGG16, ResNet-152, Inception-v3 included)."""
    given = CHECK_INPUT.get(name)
    result = run("check", name, *(["--input", given] if given else []))
    rows = analyze(load(name, parse_shape(given) if given else None)).rows
    assert result.exit_code == 0, result.output
    assert "✗" not in result.output
    # one ✓ per layer, one on the totals row, one in the verdict
    assert result.output.count("✓") == len(rows) + 2
    assert f"all {len(rows)} layers agree" in result.output


def test_json_has_the_issue_fields_and_agrees(run):
    result = run("check", "lenet5", "--format", "json", "--batch", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"name", "ok", "layers", "seconds", "predicted_activation_bytes",
            "measured_activation_bytes"} <= set(data)
    assert data["name"] == "lenet5" and data["ok"] is True
    rows = analyze(load("lenet5")).rows
    assert [layer["name"] for layer in data["layers"]] == [r.name for r in rows]
    for layer, row in zip(data["layers"], rows):
        assert {"name", "calculated_shape", "actual_shape", "calculated_params",
                "actual_params", "ok"} <= set(layer)
        assert layer["calculated_shape"] == layer["actual_shape"] == list(row.output_shape)
        assert layer["calculated_params"] == layer["actual_params"] == row.params
        assert layer["ok"] is True
    # 3 images of 1×32×32 float32 plus the kept outputs, 4 bytes each
    totals = analyze(load("lenet5")).totals
    assert data["predicted_activation_bytes"] == data["measured_activation_bytes"] \
        == totals.activations * 3 * 4
    assert data["seconds"] > 0


def test_check_agrees_in_float64_with_a_larger_batch_and_input(run):
    result = run("check", "alexnet", "--input", "3x99x99", "--batch", "2", "--dtype", "float64",
                 "--format", "json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["ok"], data["verdict"]
    conv1 = data["layers"][0]
    assert conv1["actual_shape"] == [96, 23, 23]  # (99 − 11)/4 + 1
    assert conv1["measured_bytes"] == 2 * 96 * 23 * 23 * 8


# ---- a broken calculator is caught --------------------------------------------------------

def test_off_by_one_output_size_fails_at_the_first_layer(run, monkeypatch):
    correct = Dim.out.fget
    monkeypatch.setattr(Dim, "out", property(lambda self: correct(self) + 1))
    result = run("check", "lenet5")
    assert result.exit_code == 1
    assert "first: conv1: shape 6×29×29 calculated, 6×28×28 actual" in result.output
    assert "✗" in result.output


def test_broken_pool_rule_names_the_pool_not_the_layers_before_it(run, monkeypatch):
    correct = calc_layers.KINDS["maxpool"]

    def wrong(leaf, shape, name):  # forgets the stride: a 2×2/2 pool keeps H−1
        result = correct(leaf, shape, name)
        result.out_shape = (shape[0], shape[1] - 1, shape[2] - 1)
        return result

    monkeypatch.setitem(calc_layers.KINDS, "maxpool", wrong)
    result = run("check", "lenet5", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["first_failure"] == "maxpool1"
    assert [layer["ok"] for layer in data["layers"][:3]] == [True, True, False]
    assert data["layers"][2]["calculated_shape"] == [6, 27, 27]
    assert data["layers"][2]["actual_shape"] == [6, 14, 14]


def test_wrong_parameter_count_is_a_disagreement(run, write_spec, monkeypatch):
    correct = calc_layers.KINDS["batchnorm"]

    def wrong(leaf, shape, name):  # forgets the running mean and variance
        result = correct(leaf, shape, name)
        result.non_trainable = 0
        return result

    monkeypatch.setitem(calc_layers.KINDS, "batchnorm", wrong)
    result = run("check", write_spec(BN_SPEC))
    assert result.exit_code == 1
    assert ("first: bn1: params 8 (8 trainable + 0 non-trainable) calculated, "
            "16 (8 trainable + 8 non-trainable) actual") in result.output


def test_wrong_activation_bytes_is_a_disagreement(monkeypatch):
    walker = importlib.import_module("archcalc.calc.analyze")  # the module, not the function
    # claim maxpool works in place: the calculator then predicts 0 bytes for it
    monkeypatch.setattr(walker, "PASS_THROUGH", walker.PASS_THROUGH | {"maxpool"})
    result = run_check(load("lenet5"))
    assert not result.ok
    assert result.first_failure.name == "maxpool1"
    assert result.first_failure.problems == ["activation bytes 0 predicted, 4,704 measured"]


# ---- pairing by name ----------------------------------------------------------------------

def _named(*names):
    return [SimpleNamespace(name=n) for n in names]


def test_pairing_aligns_by_name_and_reports_both_sides():
    rows, recs = _named("a", "b", "c", "d"), _named("a", "c", "x", "d")
    pairs = [(r and r.name, e and e.name) for r, e in pair_by_name(rows, recs)]
    assert pairs == [("a", "a"), ("b", None), ("c", "c"), (None, "x"), ("d", "d")]


def test_a_layer_the_executor_did_not_record_fails_the_check(run, monkeypatch):
    real_build = check_module.build

    class Dropping:
        def __init__(self, model):
            self.model = model

        def forward(self, x, training=False):
            return self.model.forward(x, training=training)

        @property
        def records(self):
            return [r for r in self.model.records if r.name != "relu2"]

    monkeypatch.setattr(check_module, "build",
                        lambda network, **kw: Dropping(real_build(network, **kw)))
    result = run("check", "lenet5")
    assert result.exit_code == 1
    assert "first: relu2: no such layer in the executor's records" in result.output


def test_an_executor_crash_is_reported_not_raised(run, monkeypatch):
    class Broken:
        records: list = []

        def forward(self, x, training=False):
            raise ValueError("matmul: Input operand 1 has a mismatch")

    monkeypatch.setattr(check_module, "build", lambda network, **kw: Broken())
    result = run("check", "lenet5", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["executor_error"].startswith("ValueError: matmul: Input operand 1")
    assert data["first_failure"] == "conv1"
    assert all(layer["actual_shape"] is None for layer in data["layers"])


# ---- refused before allocating ------------------------------------------------------------

def test_memory_budget_refuses_before_building(run, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("build() must not run when the estimate is over the budget")

    monkeypatch.setattr(check_module, "build", no_build)
    result = run("check", "vgg16", "--batch", "8", "--memory-budget", "100MB")
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output
    assert "more than the memory budget of 100.0 MB" in message
    assert "even batch 1 does not fit" in message
    assert "smaller --batch" in message and "--input" in message


def test_refusal_suggests_a_batch_that_fits():
    analysis = analyze(load("lenet5"))
    budget = parse_size("100MB")
    with pytest.raises(ArchcalcError) as info:
        refuse_if_over(analysis, 100_000, budget)
    fits = int(re.search(r"--batch (\d+) fits", info.value.fix).group(1))
    assert estimate_memory(analysis, fits).total <= budget
    assert estimate_memory(analysis, fits + 1).total > budget


def test_refusal_allocates_nothing():
    """A batch of 64 VGG16 inputs alone is 38.5 MB; the refusal must allocate far less."""
    network = load("vgg16")
    tracemalloc.start()
    try:
        with pytest.raises(ArchcalcError, match="memory budget"):
            run_check(network, batch=64, memory_budget=parse_size("1GB"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_the_estimate_counts_activations_parameters_and_scratch():
    analysis = analyze(load("vgg16"))
    one, two = estimate_memory(analysis, 1), estimate_memory(analysis, 2)
    per_image = analysis.totals.activations + 3 * 224 * 224  # the executor copies the input
    assert one.activation_bytes == per_image * 4
    assert two.activation_bytes == 2 * one.activation_bytes
    assert one.param_bytes == 138_357_544 * 4
    # conv1_2's scratch: the padded 64×226×226 input, its 576 × 224·224 im2col buffer
    # (under the executor's 256 MiB chunk bound) and the 64×224×224 product
    assert one.scratch_bytes == (64 * 226 * 226 + 576 * 224 * 224 + 64 * 224 * 224) * 4
    assert two.scratch_bytes > one.scratch_bytes


# ---- the calculator's rejection, the sizes -------------------------------------------------

def test_a_spec_the_calculator_rejects_is_rejected_the_same_way(run):
    with pytest.raises(ArchcalcError) as info:
        analyze(load("lenet5", (1, 4, 4)))
    result = run("check", "lenet5", "--input", "1x4x4")
    assert result.exit_code == 1
    assert result.stderr.strip() == info.value.render()


@pytest.mark.parametrize("text, size", [
    ("2GB", 2 * 10**9), ("500MB", 500 * 10**6), ("1.5GiB", 3 * 2**29), ("4096", 4096),
    ("64 kB", 64_000), ("2g", 2 * 10**9), ("10MiB", 10 * 2**20),
    # up to the 1 PB cap, exactly (no float rounding of the product)
    ("1PB", 10**15), ("1pb", 10**15), ("0.5PiB", 2**49), ("999999999999999.9", 999999999999999),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "2PB", "", "-1GB", "0MB", "1.2.3GB"])
def test_parse_size_rejects(text):
    with pytest.raises(ArchcalcError, match="memory size"):
        parse_size(text)


def test_bad_budget_is_a_usage_error(run):
    result = run("check", "lenet5", "--memory-budget", "lots")
    assert result.exit_code == 2
    assert "bad memory size 'lots'" in result.output


@pytest.mark.parametrize("text", ["2000TB", "9" * 400 + "GB", "2PB", "1PiB", "1EB"])
def test_parse_size_bounds_huge_sizes(text):
    # 400 digits are a float overflow (inf): refused, never an OverflowError
    with pytest.raises(ArchcalcError, match=r"is more than 1 PB \(10\^15 bytes\)"):
        parse_size(text)


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (999, "999 B"), (1234, "1.2 kB"), (12_345_678_901, "12.3 GB"),
    (5 * 10**15, "5.0 PB"), (999 * 10**18, "999.0 EB"), (10**21, "1.00 × 10^21 B"),
    (4 * 10**36 + 8 * 10**27, "4.00 × 10^36 B"), (9_996 * 10**20, "1.00 × 10^24 B"),
    (1.5e9, "1.5 GB"),
])
def test_fmt_bytes_is_exact_at_every_size(n, text):
    # once "4000000007999999828819968.0 TB": float division, units ending at TB
    assert fmt_bytes(n) == text


# ---- gradcheck: fast --help examples, progress only on a terminal ---------------------------

def test_gradcheck_help_examples_finish_in_seconds(tmp_path):
    """Each example in `archcalc gradcheck --help` runs in a fresh process under 5 s of CPU
    (the old `--samples 0` example ran over 5 minutes)."""
    from click.testing import CliRunner

    from archcalc.cli import main
    from catalogue.runner import measure

    text = CliRunner().invoke(main, ["gradcheck", "--help"]).stdout
    examples = [line.split()[1:] for line in text.splitlines()
                if line.strip().startswith("archcalc gradcheck ")]
    assert len(examples) >= 2
    for args in examples:
        used = measure(args, tmp_path)
        assert used.code == 0, (args, used.stderr)
        assert used.cpu_s < 5, (args, used.cpu_s)


def test_gradcheck_progress_only_on_a_terminal(monkeypatch):
    """On a terminal the per-array function is wrapped for the run (a bar ticks per entry)
    and restored after; elsewhere nothing is touched. Results are the same either way."""
    import archcalc.nn.gradcheck as gc
    from archcalc.cli.gradcheck import entry_progress

    original = gc._check_array
    network = load("lenet5")
    plain = gc.gradcheck(network, samples=2)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    with entry_progress():
        assert gc._check_array is original  # pytest's stderr is not a terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stderr as a terminal
    with entry_progress():
        assert gc._check_array is not original
        shown = gc.gradcheck(network, samples=2)
    assert gc._check_array is original
    assert [(r.layer, r.param, r.checked, r.error) for r in shown] == \
           [(r.layer, r.param, r.checked, r.error) for r in plain]
