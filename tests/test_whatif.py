"""Scaling what-ifs: the input-size sweep, the smallest input that fits, training memory."""

from __future__ import annotations

import pytest

from archcalc.calc import analyze
from archcalc.calc.whatif import (OPTIMIZER_COPIES, parse_sizes, smallest_fit, sweep,
                                  training_memory)
from archcalc.errors import ArchcalcError
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
    optim = pytest.importorskip("archcalc.nn.optim")
    for name, copies in OPTIMIZER_COPIES.items():
        assert len(optim.OPTIMIZERS[name].slots) == copies


def test_unknown_optimizer_is_an_error():
    with pytest.raises(ArchcalcError, match="unknown optimizer 'adamw'"):
        training_memory(analyze(loads(SMALL)), ["adamw"])
