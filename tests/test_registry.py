"""Adding a layer kind touches one place per room: this test lists every kind of the spec
language and asserts each room handles it (DESIGN.md: "if it touches more, the registry is
missing")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archcalc.calc.layers import KINDS as CALC_KINDS
from archcalc.nn.layers import KINDS as NN_KINDS
from archcalc.spec.layers import ALIASES, IN_PLACE, MODELS, NAME_PREFIX, PASS_THROUGH, SCALAR_FIELD
from archcalc.spec.tree import MERGE_MODES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
KINDS = sorted(MODELS)


def _layer_table() -> str:
    start = README.index("### Layer kinds")
    return README[start:README.index("\n### ", start + 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_room_handles_the_kind(kind):
    assert kind in CALC_KINDS, f"the calculator has no arithmetic for {kind}"
    assert kind in NN_KINDS, f"the executor has no layer for {kind}"
    assert kind in NAME_PREFIX and ALIASES[kind] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_the_readme_layer_table_lists_the_kind(kind):
    assert re.search(rf"`{re.escape(kind)}`", _layer_table()), f"README lacks {kind}"


def test_rooms_know_no_kind_the_language_lacks():
    assert set(CALC_KINDS) == set(MODELS) and set(NN_KINDS) == set(MODELS)
    assert set(ALIASES.values()) == set(MODELS)
    assert IN_PLACE <= set(MODELS) and PASS_THROUGH <= set(MODELS)
    assert set(SCALAR_FIELD) <= set(MODELS)
    for kind, field in SCALAR_FIELD.items():
        assert field in MODELS[kind].model_fields


@pytest.mark.parametrize("mode", MERGE_MODES)
def test_every_merge_mode_is_documented(mode):
    assert f"{mode}:" in README
