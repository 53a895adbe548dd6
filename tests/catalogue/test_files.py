"""Catalogue: spec files that are missing, unreadable or not files at all (issue 8, class 2)."""

from __future__ import annotations

import pytest

from catalogue.runner import Case, check_case

CASES = [
    Case("missing_file", ["summary", "nope.yaml"],
         "error: no such file: nope.yaml (fix: check the path)"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)
