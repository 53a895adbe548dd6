"""Shared fixtures: a CLI runner with a fixed terminal width and no colour."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from archcalc.cli import main


@pytest.fixture
def run():
    """run(*args) -> click Result; COLUMNS fixed so rich tables render the same everywhere."""
    runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})

    def invoke(*args: str, **kwargs):
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name='net.yaml') -> path of a spec file in a temp dir."""

    def write(text: str, name: str = "net.yaml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write
