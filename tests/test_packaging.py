"""pyproject.toml lists the packages by hand (specs/ is installed as archcalc.specs): a new
subpackage missing from the list works in the checkout and is absent from a plain
`pip install .`. This keeps the list whole."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_of_archcalc_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "archcalc").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"
    assert "archcalc.specs" in listed
