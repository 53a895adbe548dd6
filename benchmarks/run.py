"""Every benchmark of issue 14 in one run, as one table of ratios against the peers.

    python benchmarks/run.py            # the full run: ~5 minutes, then Fashion-MNIST's five
                                        # 10-epoch trainings (~20 minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer repetitions; Fashion-MNIST from its last full
                                        # run (benchmarks/results/fashion.json)
    python benchmarks/run.py --only startup,scale --json runs/bench.json

Each benchmark module gives `rows(quick)`: dicts with what was measured, archcalc's figure,
the peer's figure measured in the same run (torch, torchinfo; "—" when not installed, with
the reason), their ratio, the goal and whether it is met. The machine (CPU, cores, load,
NumPy's BLAS, torch) is printed first: a figure means nothing without it. docs/performance.md
and the README's performance section are written from this output.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from machine import describe  # noqa: E402

# module → what it measures (issue 14's goals), in the order of the issue.
BENCHMARKS = {
    "startup": "1, 4: start-up, check resnet152",
    "scale": "2: 100,000-layer specs, 1,000 files",
    "train_step": "3: LeNet-5 training step",
    "forward": "3: VGG16 forward",
    "fashion": "5: Fashion-MNIST recipe",
}


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "—"}[met]


def table(rows: list[dict]) -> str:
    """A plain-text table (Markdown pipes, so it pastes into docs/performance.md)."""
    header = ["what", "archcalc", "peer", "ratio", "goal", ""]
    body = [[r["what"], r["archcalc"], r["peer"], fmt_ratio(r.get("ratio")), r["goal"],
             verdict(r.get("met"))] for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |"
             for line in [header, *body]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--json", type=Path, help="also write the rows and machine here")
    args = parser.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                     + ", ".join(BENCHMARKS))
    machine = describe()
    print(machine, flush=True)
    rows: list[dict] = []
    failed: list[str] = []
    for name in chosen:
        start = time.perf_counter()
        print(f"… {name} ({BENCHMARKS[name]})", file=sys.stderr, flush=True)
        try:
            got = importlib.import_module(name).rows(args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed.append(name)
            traceback.print_exc()
            continue
        for row in got:
            row.setdefault("benchmark", name)
        rows.extend(got)
        print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print()
    print(table(rows))
    print(f"\nload average at the end: {describe().rsplit('load average ', 1)[-1]}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
