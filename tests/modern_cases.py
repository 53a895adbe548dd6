"""What the executor tests of issue 9's kinds share: a small network from a list of items, and
the whole-network gradient check every case must pass (float64, relative error < 1e-6, every
entry compared)."""

from __future__ import annotations

from archcalc.nn import gradcheck as gc
from archcalc.spec import loads


def net(layers: str, shape=(2, 5, 7)):
    """A network of the given items (YAML flow text) on a C×H×W input."""
    return loads(f"name: t\ninput: {list(shape)}\nlayers: {layers}\n")


def assert_gradcheck(layers: str) -> None:
    results = gc.gradcheck(net(layers), batch=2, seed=1)
    assert results[-1].param == "input"
    for r in results:
        assert r.checked == r.size, f"{r.layer}.{r.param}: {r.skipped} entries skipped"
        assert r.error < 1e-6, f"{r.layer}.{r.param}: relative error {r.error:.2e}"
