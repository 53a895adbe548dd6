"""What every benchmark prints with its figures: the machine, and whole-process measurements.

`describe()` names the CPU, cores, memory, load average and the array libraries, so that a
figure is never quoted without the machine it came from. `run_process(argv)` runs one command
in a fresh process and returns its wall time, CPU time (user + sys) and peak resident memory,
each of that process alone (os.wait4 gives one child's own rusage).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def describe() -> str:
    """One paragraph: CPU, cores, memory, OS, Python, NumPy and its BLAS, torch if present."""
    parts = [f"{cpu_model()}, {os.cpu_count()} cores"]
    mem = memory_gb()
    if mem is not None:
        parts.append(f"{mem:.0f} GB")
    parts.append(f"{platform.system()} {platform.release()}")
    parts.append(f"Python {platform.python_version()}")
    try:
        import numpy as np
        blas = "?"
        try:
            info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
        except Exception:  # noqa: BLE001 - older NumPy: the version alone
            pass
        parts.append(f"NumPy {np.__version__} ({blas})")
    except ImportError:
        parts.append("no NumPy")
    try:
        import importlib.metadata as md
        parts.append(f"torch {md.version('torch')}")
    except Exception:  # noqa: BLE001 - not installed
        parts.append("no torch")
    parts.append(f"load average {load_average()}")
    return "; ".join(parts)


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + sys
    rss: int  # bytes, peak resident set


# Linux keeps a process's peak RSS across fork + exec (signal->maxrss): a command started
# straight from this process, after it has held VGG16 in NumPy and torch, would report that
# size. So every command is started by a small Python launcher, which reports its child's own
# figures (RUSAGE_CHILDREN: the child was forked from the launcher's small image).
_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
wall = time.perf_counter() - start
use = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    json.dump([done.returncode, wall, use.ru_utime + use.ru_stime, use.ru_maxrss * 1024], fh)
"""


def run_process(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run argv to completion (output discarded); raise CalledProcessError on failure.
    Wall time, CPU time and peak RSS are the command's own (see _LAUNCHER). Bytecode caching
    is on, as for an installed package: pip compiles at install, and a
    PYTHONDONTWRITEBYTECODE in this environment would recompile archcalc on every run."""
    child_env = {**os.environ, **(env or {})}
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "run.json")
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, report, *argv],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=child_env)
        with open(report, encoding="utf-8") as fh:
            code, wall, cpu, rss = json.load(fh)
    if code != 0:
        raise subprocess.CalledProcessError(code, argv, stderr=proc.stderr)
    return Run(wall, cpu, rss)


def median_runs(commands: dict[str, Any], repeat: int, env: dict[str, str] | None = None,
                run: Callable[[Any], Run] | None = None) -> dict[str, Run]:
    """Each command `repeat` times (after one warm-up run each), the commands taking turns
    so that a change of load on a shared machine hits them alike; the median of each
    figure per command. A command is an argv for run_process (with `env`), or whatever
    `run` takes."""
    run = run or (lambda argv: run_process(argv, env))
    for command in commands.values():
        run(command)  # warm the page cache and the .pyc files
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            runs[name].append(run(command))
    return {name: Run(statistics.median(r.wall for r in rs), statistics.median(r.cpu for r in rs),
                      int(statistics.median(r.rss for r in rs)))
            for name, rs in runs.items()}


def archcalc_argv(*args: str) -> list[str]:
    """The `archcalc` command as users run it: the console script installed beside this
    interpreter, else `python -m archcalc`."""
    script = os.path.join(os.path.dirname(sys.executable), "archcalc")
    if os.access(script, os.X_OK):
        return [script, *args]
    return [sys.executable, "-m", "archcalc", *args]
