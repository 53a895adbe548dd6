"""Start-up: archcalc's commands as whole processes, against the torchinfo script they replace.

    python benchmarks/startup.py [--repeat 7] [--quick]

Rows (issue 14, goals 1 and 4), each the median of --repeat runs taking turns:
  - `archcalc summary resnet50` against a script that prints torchinfo's summary of
    torchvision's ResNet-50 at 1×3×224×224 (goal: at least 30× faster), wall time and peak RSS;
  - `archcalc --version` and `archcalc --help` (goal: under 0.1 s), next to `python -c pass`;
  - `archcalc check resnet152` (goal: under 2 s), with the build/forward split it prints.
Then where `summary`'s time goes: the modules it imports, grouped by package (python -X
importtime, self times, median of 3), and the interpreter's own start.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import archcalc_argv, describe, median_runs  # noqa: E402

# torchvision's wheel does not import with this torch (its compiled operators fail to
# register), but its model files are pure Python: a stub package whose __path__ is the
# installed folder lets torchvision.models.resnet import (as tests/torchvision_models.py does).
TORCHINFO_SCRIPT = """
import importlib.util, os, sys, types
found = importlib.util.find_spec("torchvision")
stub = types.ModuleType("torchvision")
stub.__path__ = [os.path.dirname(found.origin)]
sys.modules["torchvision"] = stub
from torchvision.models.resnet import resnet50
import torchinfo
print(torchinfo.summary(resnet50(weights=None), input_size=(1, 3, 224, 224), verbose=0))
"""


def have(*modules: str) -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in modules)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def import_profile(args: list[str], runs: int = 3) -> list[tuple[str, float]]:
    """(package, median self import milliseconds) for `archcalc ARGS`, largest first."""
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    totals: list[collections.Counter] = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archcalc", *args],
                              capture_output=True, text=True, env=env, check=True)
        tot: collections.Counter = collections.Counter()
        for line in done.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
            if m:
                name = m.group(2)
                top = ".".join(name.split(".")[:2]) if name.startswith("archcalc") else \
                    name.split(".")[0]
                tot[top] += int(m.group(1))
        totals.append(tot)
    keys = set().union(*totals)
    med = {k: statistics.median(t[k] for t in totals) / 1000 for k in keys}
    return sorted(med.items(), key=lambda kv: -kv[1])


def rows(quick: bool, repeat: int | None = None) -> list[dict]:
    repeat = repeat or (3 if quick else 7)
    out: list[dict] = []
    commands = {"summary": archcalc_argv("summary", "resnet50"),
                "version": archcalc_argv("--version"),
                "help": archcalc_argv("--help"),
                "pass": [sys.executable, "-c", "pass"]}
    peer = have("torch", "torchinfo", "torchvision")
    if peer:
        commands["torchinfo"] = [sys.executable, "-c", TORCHINFO_SCRIPT]
    got = median_runs(commands, repeat)
    s = got["summary"]
    if peer:
        t = got["torchinfo"]
        ratio = t.wall / s.wall
        out.append({"what": "summary resnet50 vs torchinfo script (process, wall)",
                    "archcalc": f"{ms(s.wall)}, {mib(s.rss)}",
                    "peer": f"{ms(t.wall)}, {mib(t.rss)}", "ratio": ratio,
                    "goal": "≥ 30× faster", "met": ratio >= 30})
    else:
        out.append({"what": "summary resnet50 (process, wall)",
                    "archcalc": f"{ms(s.wall)}, {mib(s.rss)}", "peer": "— (no torch/torchinfo)",
                    "ratio": None, "goal": "≥ 30× faster than torchinfo", "met": None})
    base = got["pass"]
    for name in ("version", "help"):
        r = got[name]
        out.append({"what": f"archcalc --{name}", "archcalc": ms(r.wall),
                    "peer": f"python -c pass: {ms(base.wall)}", "ratio": r.wall / base.wall,
                    "goal": "< 100 ms", "met": r.wall < 0.1})
    check = median_runs({"check": archcalc_argv("check", "resnet152")}, 1 if quick else 3)
    out.append({"what": "archcalc check resnet152 (process, wall)",
                "archcalc": f"{ms(check['check'].wall)}, {mib(check['check'].rss)}",
                "peer": "—", "ratio": None, "goal": "< 2 s", "met": check["check"].wall < 2})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(describe())
    for row in rows(args.quick, args.repeat):
        ratio = "" if row["ratio"] is None else f"  ratio {row['ratio']:.1f}"
        print(f"{row['what']}: {row['archcalc']}  |  {row['peer']}{ratio}  "
              f"(goal {row['goal']}: {'met' if row['met'] else 'not met'})")
    print("\nwhere `archcalc summary resnet50` spends its imports (self ms, median of 3):")
    profile = import_profile(["summary", "resnet50"])
    for name, t in profile[:15]:
        print(f"  {t:6.1f}  {name}")
    print(f"  {sum(t for _, t in profile):6.1f}  all imports")


if __name__ == "__main__":
    main()
