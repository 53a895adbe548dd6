"""The catalogue holds at least 80 bad inputs, with unique ids (issue 8)."""

from __future__ import annotations

import importlib
import pkgutil

import catalogue


def all_cases():
    cases = []
    for info in pkgutil.iter_modules(catalogue.__path__):
        if info.name.startswith("test_") and info.name != "test_size":
            module = importlib.import_module(f"catalogue.{info.name}")
            cases += [case for name, value in vars(module).items()
                      if name.startswith("CASES") and isinstance(value, list) for case in value]
    return cases


def test_catalogue_has_80_unique_cases():
    cases = all_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(cases) >= 80, len(cases)
