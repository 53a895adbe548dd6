"""The limits on loading a spec (issue 8, class 1) refuse bombs but not real networks: deep
block nesting, recursion that ends, large flat specs, and aliases used sensibly all load; the
counts behind the limits are exact and cost time linear in the file."""

from __future__ import annotations

import sys

import pytest

from archcalc.errors import SpecError
from archcalc.spec import bundled_names, load, loads
from archcalc.spec.budget import Forecast
from archcalc.spec.load import locate
from archcalc.spec.resolve import Resolver
from archcalc.spec.tree import Leaf, Merge
from archcalc.spec.yamlio import brief, parse_text

HEAD = "name: t\ninput: [1, 8, 8]\n"


def _leaves(root, merges: bool = False) -> int:
    """Leaves below `root` (and merges too, with merges=True: each is a row of its own)."""
    count, stack = 0, [root]  # iterative: the trees here are deeper than Python's stack
    while stack:
        node = stack.pop()
        if isinstance(node, Leaf):
            count += 1
        else:
            count += merges and isinstance(node, Merge)
            stack.extend(node.branches if isinstance(node, Merge) else node.children)
    return count


def _chain_blocks(count: int) -> str:
    lines = ["  b0: {layers: [relu]}"]
    lines += [f"  b{i}: {{layers: [b{i - 1}]}}" for i in range(1, count)]
    return HEAD + "blocks:\n" + "\n".join(lines) + f"\nlayers: [b{count - 1}]\n"


def test_200_deep_block_nesting_loads_and_runs(run, write_spec):
    path = write_spec(_chain_blocks(200))
    for command in ("validate", "summary", "check"):
        result = run(command, path)
        assert result.exit_code == 0, result.output[-500:]
    net = load(path)
    leaf = net.root.children[0]
    while not isinstance(leaf, Leaf):
        leaf = leaf.children[0]
    assert len(leaf.path) == 201  # b199 / b198 / ... / b0 / relu1


def test_200_deep_lists_load():
    net = loads(HEAD + "layers: " + "[" * 200 + "relu" + "]" * 200 + "\n")
    assert _leaves(net.root) == 1


def test_raising_the_depth_limit_admits_a_deeper_spec(monkeypatch):
    text = _chain_blocks(600)
    with pytest.raises(SpecError, match="nest more than 500 levels"):
        loads(text)
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_DEPTH", "700")
    assert _leaves(loads(text).root) == 1


def test_loading_leaves_the_recursion_limit_as_it_was():
    before = sys.getrecursionlimit()
    loads(_chain_blocks(300))
    with pytest.raises(SpecError):
        loads(_chain_blocks(600))
    assert sys.getrecursionlimit() == before


def test_recursion_that_ends_loads():
    # t(n) uses t(n - 1) while n > 0: `repeat: (n + 99) // 100` is 1 for 1..100, 0 at 0.
    text = (HEAD + "blocks:\n  t: {args: [n], layers: [relu, {repeat: (n + 99) // 100, "
            "use: t, with: [n - 1]}]}\nlayers:\n  - {use: t, with: [40]}\n")
    assert _leaves(loads(text).root) == 41


def test_a_large_flat_spec_loads():
    items = "  - conv: {filters: 4, kernel: 3, padding: 1}\n  - relu\n" * 2500
    assert _leaves(loads(HEAD + "layers:\n" + items).root) == 5000


@pytest.mark.parametrize("name", bundled_names())
def test_forecast_counts_what_the_resolver_builds(name):
    raw = parse_text(locate(name).read_text())
    resolver = Resolver(raw.get("blocks") or {}, raw.get("separator", "."))
    predicted = Forecast(resolver.blocks, resolver._forecast_body).items(raw["layers"], 0, 1)
    assert predicted.layers == _leaves(resolver.resolve(raw["layers"]), merges=True)


def test_merges_count_against_the_layer_limit(monkeypatch):
    """`repeat: N` of an empty add is N rows: it used to pass the forecast as 0 layers."""
    monkeypatch.setenv("ARCHCALC_MAX_LAYERS", "1000")
    spec = HEAD + "layers:\n  - {repeat: 1001, layers: [{add: [[], []]}]}\n"
    with pytest.raises(SpecError, match="1,001 layers, more than archcalc unrolls"):
        loads(spec)
    loads(HEAD + "layers:\n  - {repeat: 1000, layers: [{add: [[], []]}]}\n")


def test_forecast_reads_each_block_once(monkeypatch):
    # b_i = [b_{i-1}, b_{i-1}] with an argument: 2^50 layers, counted by multiplying.
    monkeypatch.setenv("ARCHCALC_MAX_LAYERS", str(2**62))  # the ceiling of any limit
    monkeypatch.setenv("ARCHCALC_MAX_UNROLLED", str(2**62))
    lines = ["  b0: {args: [f], layers: [{conv: {filters: f, kernel: 1}}, relu]}"]
    lines += [f"  b{i}: {{args: [f], layers: [{{use: b{i - 1}, with: [f]}}, "
              f"{{use: b{i - 1}, with: [f]}}]}}" for i in range(1, 50)]
    raw = parse_text(HEAD + "blocks:\n" + "\n".join(lines) + "\nlayers: [{use: b49, with: [4]}]\n")
    resolver = Resolver(raw["blocks"], ".")
    forecast = Forecast(resolver.blocks, resolver._forecast_body)
    cost = forecast.items(raw["layers"], 0, 1)
    assert cost.layers == 2**50
    assert len(forecast.memo) == 50  # one entry per block: linear, not 2^50 visits


def test_every_alias_counts_each_time_it_is_used(monkeypatch):
    # root 1 + key a 1 + [1,2,3] 4 + key b 1 + [*a, *a] (1 + 4 + 4) = 16 values
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_NODES", "16")
    assert parse_text(text) == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_NODES", "15")
    with pytest.raises(SpecError, match="more than 15 values once its aliases"):
        parse_text(text)


def test_aliases_used_sensibly_still_load():
    text = HEAD + "layers:\n  - conv: &c3 {filters: 4, kernel: 3, padding: 1}\n  - conv: *c3\n"
    assert _leaves(loads(text).root) == 2


def test_brief_shows_a_shared_value_without_expanding_it():
    value: list = [1] * 9
    for _ in range(12):  # 9^13 values if expanded
        value = [value] * 9
    shown = brief(value)
    assert shown.startswith("[[[[") and shown.endswith("…") and len(shown) == 61
    assert brief("x" * 10**6, 20) == "'" + "x" * 19 + "…"
