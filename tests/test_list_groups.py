"""`archcalc list` groups the specs by their `family:` key, in a fixed order."""

from __future__ import annotations

import importlib

import pytest

from archcalc.cli.inspect import FAMILY_ORDER, family_groups
from archcalc.spec import bundled_names, load

# The modules, not the functions of the same name that archcalc.spec and archcalc.cli export.
load_module = importlib.import_module("archcalc.spec.load")
inspect_module = importlib.import_module("archcalc.cli.inspect")

# The bundled specs this slice gave a family, and theirs.
OWN_FAMILIES = {
    "lenet5": "classic", "alexnet_1gpu": "classic", "vgg11": "classic", "vgg13": "classic",
    "vgg16": "classic", "vgg19": "classic", "googlenet": "inception",
    "resnet18": "residual", "resnet34": "residual", "resnet50": "residual",
    "resnet101": "residual", "resnet152": "residual",
}


def _headings(text: str) -> list[str]:
    """The heading rows ('classic:' alone on its line) in printed order."""
    return [line.split()[0][:-1] for line in text.splitlines()
            if len(line.split()) == 1 and line.split()[0].endswith(":")]


def _members(text: str, names: list[str]) -> dict[str, str]:
    """spec name → the heading it is printed under."""
    under, heading = {}, None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 1 and words[0].endswith(":"):
            heading = words[0][:-1]
        elif words and words[0] in names:
            under[words[0]] = heading
    return under


def test_order_of_families():
    groups = family_groups({"z1": None, "u": "segmentation", "a": "zoo", "r": "residual",
                            "c": "classic", "b": "attention", "m": "mobile", "d": "dense",
                            "i": "inception", "s": "squeeze", "c2": "Classic", "z2": " "})
    assert [family for family, _ in groups] == [
        "classic", "inception", "residual", "dense", "squeeze", "mobile", "segmentation",
        "attention", "zoo", "other"]
    assert dict(groups)["classic"] == ["c", "c2"]       # given order kept; case folded
    assert dict(groups)["other"] == ["z1", "z2"]        # no family, or a blank one


def test_the_owned_specs_carry_their_family():
    for name, family in OWN_FAMILIES.items():
        assert load(name).family == family, name


def test_bundled_list_is_grouped_in_order(run):
    result = run("list")
    assert result.exit_code == 0
    names = bundled_names()
    families = {name: load(name).family for name in names}
    expected = [family for family, _ in family_groups(families)]
    headings = _headings(result.stdout)
    assert headings == expected
    # the known families keep the fixed order among themselves
    known = [f for f in headings if f in FAMILY_ORDER]
    assert known == sorted(known, key=FAMILY_ORDER.index)
    under = _members(result.stdout, names)
    for name in names:
        assert under[name] == (families[name] or "other"), name
    assert under["vgg16"] == "classic" and under["resnet50"] == "residual"
    assert under["googlenet"] == "inception"


SPEC = """name: {name}
{family}input: [1, 8, 8]
layers: [{{conv: {{filters: 2, kernel: 3}}}}]
"""


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A bundled directory of small specs: name → family (None: no family key)."""
    def make(specs: dict[str, str | None]) -> None:
        for name, family in specs.items():
            line = f"family: {family}\n" if family else ""
            (tmp_path / f"{name}.yaml").write_text(SPEC.format(name=name, family=line),
                                                   encoding="utf-8")
        monkeypatch.setattr(load_module, "bundled_dir", lambda: tmp_path)
        monkeypatch.setattr(inspect_module, "bundled_dir", lambda: tmp_path)
    return make


def test_other_families_alphabetically_then_other(run, bundled):
    bundled({"n1": None, "t1": "transformer", "a1": "attention", "m1": "mobile",
             "c1": "classic", "m2": "mobile"})
    result = run("list")
    assert result.exit_code == 0, result.output
    assert _headings(result.stdout) == ["classic", "mobile", "attention",
                                               "transformer", "other"]
    assert _members(result.stdout, ["n1", "t1", "a1", "m1", "c1", "m2"]) == {
        "c1": "classic", "m1": "mobile", "m2": "mobile", "a1": "attention",
        "t1": "transformer", "n1": "other"}
    assert "6 specs in 5 families" in result.stdout


def test_no_family_anywhere_is_one_group(run, bundled):
    bundled({"x": None, "y": None})
    text = run("list").stdout
    assert _headings(text) == ["other"]
    assert "2 specs in 1 family," in text
