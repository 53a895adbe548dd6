"""The peak walk's two paths against a step-by-step recount from scratch.

archcalc.calc.peak walks a network in two ways: with a detail batch (the timeline) through
leaf()/record()/keep(), keeping each step's sums as tensors come and go and its largest
tensors in a heap; without one (envelope, peaks, summary's peak fields) through the inline
loops forward_lines/backward_lines, which yield only each step's (per_image, fixed) line.

The oracle here is the plainest account: at every step of the detail walk, the distinct
arrays held are the union of every pending backward's kept arrays, what enclosing merges
hold and the step's own arrays, summed afresh (O(held) a step). The detail walk's sums,
counts and largest tensors must equal it, and the line-only walk must give the very same
(per_image, fixed) sequence, step by step (its `lines` replaced by a list that keeps the
order). tests/test_peak.py ties the detail walk to the executor's own arrays.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from archcalc.calc import analyze
from archcalc.calc.analyze import DTYPE_BYTES
from archcalc.calc.peak import (
    MODES, TOP, Tensor, _lines, _replay, _Walk, envelope, peaks, timeline)
from archcalc.errors import ShapeError
from archcalc.spec import bundled_names, load, loads
from test_peak import KINDS_SPEC
from test_property_shapes import _network, valid_specs


class _Reference(_Walk):
    """The detail walk, recounting every step from scratch beside it."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.recount: list[tuple[str, str, int, int, int, list[int]]] = []

    def record(self, name, phase, tensors, done=None) -> None:
        held: dict[int, Tensor] = {}
        for kept in self.pending.values():
            held.update((id(t), t) for t in kept)
        held.update((id(t), t) for t in [*self.held, *tensors] if t is not None)
        sizes = sorted((t.bytes(self.batch) for t in held.values()), reverse=True)
        self.recount.append((name, phase, sum(t.per_image for t in held.values()),
                             sum(t.fixed for t in held.values()), len(held), sizes[:TOP]))
        super().record(name, phase, tensors, done)


class _Ordered(list):
    """A list standing in for the walk's dict of lines: every step's line, in order."""

    def __setitem__(self, line, _) -> None:
        self.append(line)


def assert_paths_agree(analysis, batches=(1, 3)) -> None:
    size = DTYPE_BYTES[analysis.totals.dtype]
    for mode in MODES:
        training = mode == "training"
        fast = _Walk(analysis, training, size)
        fast.lines = _Ordered()
        fast_lines = _replay(fast).lines
        for batch in batches:
            ref = _replay(_Reference(analysis, training, size, batch))
            detail = [(name, phase, per_image, fixed, count,
                       [-minus for minus, _, _ in largest])
                      for name, phase, (largest, count), per_image, fixed in ref.steps]
            assert len(detail) == len(ref.recount), mode
            for got, want in zip(detail, ref.recount):
                assert got == want, f"{analysis.network.name} {mode} at batch {batch}"
            assert fast_lines == [(s[2], s[3]) for s in detail], \
                f"{analysis.network.name} {mode}: the line-only walk's steps differ"
        assert list(_lines(analysis, mode, size)) == list(dict.fromkeys(fast_lines))
        assert sorted(set(fast_lines)) == envelope(analysis, mode, "sgd").lines


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_spec_walks_the_same_both_ways(name):
    analysis = analyze(load(name))
    assert_paths_agree(analysis)
    # peaks takes one max for every optimizer's envelope: each is still its own timeline's
    # largest step
    for batch in (1, 3):
        at = analyze(load(name), batch=batch)
        found = peaks(at, batch)
        assert found.inference_bytes == max(s.bytes for s in timeline(at, "inference"))
        for opt in ("sgd", "adam"):
            assert found.training_bytes[opt] == max(
                s.bytes for s in timeline(at, "training", opt))


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_every_kind_walks_the_same_both_ways(dtype):
    assert_paths_agree(analyze(loads(KINDS_SPEC), dtype=dtype))


def test_a_long_flat_spec_walks_the_same_both_ways():
    """The shape summary's 100,000-layer spec has, a thousand layers long: kept arrays
    pile up through the forward and go one by one in the backward."""
    layers = "".join("  - dense: 16\n  - relu\n" for _ in range(500))
    assert_paths_agree(analyze(loads(f"name: flat\ninput: [16]\nlayers:\n{layers}")),
                       batches=(2,))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_specs())
def test_random_specs_walk_the_same_both_ways(spec):
    try:
        analysis = analyze(_network(spec))
    except ShapeError:
        return  # the generator's own account slipped (test_property_shapes covers it)
    assert_paths_agree(analysis)
