"""The catalogue of bad inputs: each case is a command, the files it needs, the exact first
line it must print on stderr and the exit code it must give.

Each module `test_*.py` in this folder lists its cases as `CASES = [Case(...), ...]` and runs
them with `run_case`. The cases run in a fresh temporary directory (the case's files are
written there) through click's runner in this process, with a fixed 80-column terminal and no
colour; `subprocess=True` runs `python -m archcalc` instead (for faults the process itself
must meet: signals, /dev/full, resource limits).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from click.testing import CliRunner

from archcalc.cli import main

ENV = {"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    first_line: str  # the exact first line on stderr (the line a user reads)
    code: int = 1
    files: dict[str, bytes | str] = field(default_factory=dict)  # relative path → content
    env: dict[str, str] = field(default_factory=dict)
    subprocess: bool = False
    setup: Callable[[Path], None] | None = None  # more preparation in the case's directory
    stdin: str | None = None


def _write_files(case: Case, where: Path) -> None:
    for rel, content in case.files.items():
        path = where / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.setup is not None:
        case.setup(where)


def run_case(case: Case, where: Path) -> tuple[int, str, str]:
    """Run `case` in directory `where`; return (exit code, stdout, stderr)."""
    _write_files(case, where)
    env = {**ENV, **case.env}
    if case.subprocess:
        proc = subprocess.run([sys.executable, "-m", "archcalc", *case.args], cwd=where,
                              env={**os.environ, **env}, capture_output=True, text=True,
                              input=case.stdin, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    old = os.getcwd()
    os.chdir(where)
    try:
        result = CliRunner(env=env).invoke(main, case.args, input=case.stdin,
                                           catch_exceptions=True)
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.id}: {type(result.exception).__name__}: "
                             f"{result.exception}") from result.exception
    return result.exit_code, result.stdout, result.stderr


def check_case(case: Case, where: Path) -> None:
    """Assert the case's exit code and exact first stderr line, and that no traceback shows."""
    code, out, err = run_case(case, where)
    assert "Traceback" not in out + err, f"{case.id}: traceback\n{err[-2000:]}"
    first = err.splitlines()[0] if err else ""
    assert first == case.first_line, f"{case.id}:\n got: {first!r}\nwant: {case.first_line!r}"
    assert code == case.code, f"{case.id}: exit {code}, want {case.code}\n{err}"
    for line in err.splitlines():
        assert len(line) <= 1000, f"{case.id}: a {len(line)}-character line on stderr"


@dataclass
class Measured:
    code: int
    stderr: str
    peak_mb: float  # peak resident memory of the process, MiB (ru_maxrss)
    cpu_s: float  # user + system CPU seconds


def measure(args: list[str], where: Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> Measured:
    """Run `archcalc ARGS` in a fresh process in `where` and read its own peak memory and CPU
    time with resource.getrusage (RUSAGE_SELF, written at exit), not a wall-clock guess."""
    out = where / ".measure"
    script = Path(__file__).with_name("measured.py")
    proc = subprocess.run([sys.executable, str(script), *args], cwd=where,
                          env={**os.environ, **ENV, **(env or {}),
                               "ARCHCALC_MEASURE_OUT": str(out)},
                          capture_output=True, text=True, timeout=timeout)
    rss_kb, cpu = out.read_text().split()
    return Measured(proc.returncode, proc.stderr, int(rss_kb) / 1024, float(cpu))
