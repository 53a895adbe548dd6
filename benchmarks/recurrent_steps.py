"""Recurrent layers' step cost: check's work estimate against the executor's measured time.

    python benchmarks/recurrent_steps.py                # T = 4,000, 4 units, bidirectional
    python benchmarks/recurrent_steps.py --steps 20000 --units 8

archcalc.check.RECURRENT_STEP_WORK charges every step of an rnn, lstm or gru a fixed amount
of work (the executor runs the steps one at a time in Python, so a small layer's time is its
per-step overhead, not its MACs). This prints, per kind, the estimated seconds of one
forward pass (check_work / WORK_PER_SECOND) beside the measured median of 3, so the
constants can be recalibrated on another machine. A script, not a test: timings vary with
the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from forward import cpu_model  # noqa: E402

from archcalc.calc import analyze  # noqa: E402
from archcalc.check import WORK_PER_SECOND, check_input, check_work  # noqa: E402
from archcalc.nn import build  # noqa: E402
from archcalc.spec import loads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--units", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for kind in ("rnn", "lstm", "gru"):
        spec = loads(f"name: {kind}\ninput: [{args.steps}, 2]\nlayers:\n"
                     f"  - {kind}: {{units: {args.units}, bidirectional: true}}\n  - dense: 2\n")
        model = build(spec)
        x = check_input(spec, np.random.default_rng(0), 1, "float32")
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.forward(x, training=False)
            times.append(time.perf_counter() - start)
        measured = statistics.median(times)
        estimated = check_work(analyze(spec, batch=1), 1, build=False) / WORK_PER_SECOND
        print(f"{kind}: T = {args.steps:,}, {args.units} units, bidirectional: estimated "
              f"{estimated:.3f} s, measured {measured:.3f} s ({measured / estimated:.2f}×)")


if __name__ == "__main__":
    main()
