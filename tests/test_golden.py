"""Golden output of the rich table (torchinfo's habit): fixed width, no colour.

After a deliberate change of the table, regenerate with  UPDATE_GOLDEN=1 pytest tests/test_golden.py
and review the diff by hand: every number in these files has been checked against the paper.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("args, name", [
    (["summary", "lenet5"], "lenet5.txt"),
    (["summary", "resnet18", "--depth", "1"], "resnet18_depth1.txt"),
    (["summary", "alexnet", "--input", "3x224x224"], "alexnet_224.txt"),
])
def test_golden_table(run, args, name):
    result = run(*args)
    assert result.exit_code == 0
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("args, name", [
    (["summary", "lenet5", "--wide"], "lenet5.txt"),
    (["summary", "resnet18", "--depth", "1", "--wide"], "resnet18_depth1.txt"),
])
def test_wide_in_a_pipe_is_the_golden_table(run, args, name):
    """Not a terminal: the full table with or without --wide (tests/test_fit_terminal.py
    covers the terminal)."""
    result = run(*args)
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / name).read_text(encoding="utf-8")
