"""Fuzz: mutate the bundled specs at random; whatever comes out, the user sees either a result
or one ArchcalcError line — never another exception (that would be a traceback)."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archcalc.calc import analyze
from archcalc.errors import ArchcalcError
from archcalc.report import render_text, summary_grid, to_csv, to_json
from archcalc.spec import bundled_names, from_dict
from archcalc.spec.load import locate

SPECS = {name: yaml.safe_load(locate(name).read_text()) for name in ("lenet5", "googlenet", "resnet18")}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                 st.text(max_size=6), st.sampled_from(["same", "valid", "relu", "conv", "[/b]", "p * 2"]),
                 st.lists(st.integers(-1, 5), max_size=5), st.just({}), st.just([]),
                 st.dictionaries(st.sampled_from(["use", "with", "type", "repeat", "name", "x"]),
                                 st.integers(-1, 3), max_size=2))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _paths(value, prefix + (index,))


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(SPECS)), st.data())
def test_mutated_specs_fail_cleanly(name, data):
    spec = copy.deepcopy(SPECS[name])
    paths = [p for p in _paths(spec) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = spec
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = data.draw(JUNK)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        analysis = analyze(from_dict(spec, file="fuzz.yaml"))
    except ArchcalcError as exc:
        assert exc.render().startswith("error: fuzz.yaml")
        return
    render_text(summary_grid(analysis).rich())
    to_json(analysis)
    to_csv(analysis)


def test_bundled_names_cover_the_fuzzed_specs():
    assert set(SPECS) <= set(bundled_names())
