"""Every spec in examples/ loads, and the executor agrees with the calculator on it."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_strictly_and_checks(run, path):
    result = run("validate", "--strict", str(path))
    assert result.exit_code == 0, result.output
    result = run("check", str(path))
    assert result.exit_code == 0, result.output
    assert "layers agree" in result.output
