"""Time a LeNet-5 training step in the NumPy executor and in PyTorch; measure its memory.

    python benchmarks/train_step.py [--batches 64 256] [--steps 30] [--spec lenet5]

Speed: one step = forward (training mode) + softmax cross-entropy + backward + SGD with
momentum 0.9, lr 0.01, on real images (the embedded digits fitted to 1×32×32), float32.
The executor step is archcalc's own Trainer.step (it also checks the loss and weights for
NaN); the PyTorch step is the same architecture with the same initial weights. The median
of --steps timed steps is reported (after warm-up; the two take turns in blocks of 20
steps), and the ratio executor / PyTorch.

Memory: the peak of everything NumPy allocates during training steps (tracemalloc; NumPy
reports its buffers to it), above what was allocated before the first step (the weights,
their gradients, the data), against the calculator's forward+backward estimate for that
batch (2 × kept activations × batch × 4 bytes, torchinfo's "forward/backward pass size").
Measured before torch is imported, so that only the executor is counted.

Thread counts matter on a small machine. Both sides run with their defaults unless told
otherwise: NumPy's BLAS takes OPENBLAS_NUM_THREADS (set it before starting Python), the
executor's own chunk threads archcalc.nn.base.THREADS (--threads), PyTorch --torch-threads.

`rows(quick)` gives the issue-14 rows (benchmarks/run.py): batch 64 and 256, default threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
import tracemalloc

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from machine import cpu_model, load_average  # noqa: E402

from archcalc.calc import analyze  # noqa: E402 - the benchmark may compare with the calculator          # the benchmark may compare with the calculator
from archcalc.nn import build  # noqa: E402
from archcalc.nn import data as datamod  # noqa: E402
from archcalc.nn.train import TrainConfig, Trainer  # noqa: E402
from archcalc.spec import load  # noqa: E402

GOALS = {64: 1.3, 256: 1.5}  # issue 14, goal 3: executor / PyTorch at most this


def executor_trainer(spec: str, seed: int = 0) -> Trainer:
    net = load(spec)
    data = datamod.load("digits", net.input_shape, spec=net.name)
    model = build(net, seed=seed, dtype="float32")
    return Trainer(model, data, TrainConfig(optimizer="momentum", lr=0.01, seed=seed),
                   spec=net.name)


def batch_of(trainer: Trainer, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n real training images (repeated if the set is smaller) and their labels."""
    idx = np.random.default_rng(seed).integers(0, len(trainer.data.train), n)
    return trainer.data.train.x(idx), trainer.data.train.labels[idx]


def time_steps(steps_by_name: dict, rounds: int, block: int = 20,
               warmup: int = 5) -> dict[str, float]:
    """Median seconds of one call of each step function. The functions take turns in
    blocks of `block` calls (each runs warm, in its steady state, yet a load change on a
    shared machine hits them alike); `rounds` calls of each in all."""
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for start in range(0, rounds, block):
        for name, step in steps_by_name.items():
            # let the other library's worker threads go to sleep first: OpenBLAS's spin
            # for up to ~0.1 s after a product, libgomp's for a while after a region, and
            # a spinning thread takes a core from the block being timed
            time.sleep(0.2)
            # re-warm after the other ran: BLAS and OpenMP threads of the one before may
            # still be spinning for a few milliseconds
            for _ in range(warmup if start == 0 else 3):
                step()
            for _ in range(min(block, rounds - start)):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def measure_memory(spec: str, batch: int, steps: int = 3) -> tuple[int, int, int]:
    """(peak bytes above the pre-training baseline, calculator forward+backward bytes,
    ru_maxrss growth in bytes) for `steps` training steps at this batch."""
    trainer = executor_trainer(spec)
    x, y = batch_of(trainer, batch)
    estimate = analyze(trainer.model.network, batch=batch, dtype="float32").totals
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(steps):
        trainer.step(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return peak - base, estimate.forward_backward_bytes, rss_after - rss_before


def torch_model(torch, trainer: Trainer):
    """LeNet-5 in torch.nn with the executor's initial weights (same names, same layouts)."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    ours = [v for k, v in trainer.model.params.items()]
    theirs = [p for p in model.parameters()]
    assert [tuple(p.shape) for p in theirs] == [v.shape for v in ours], "not LeNet-5"
    with torch.no_grad():
        for p, v in zip(theirs, ours):
            p.copy_(torch.from_numpy(v.copy()))
    return model


def speed(spec: str, batch: int, steps: int, torch) -> tuple[float, float | None, float]:
    """(executor s/step, torch s/step or None, |loss difference| on the first step)."""
    trainer = executor_trainer(spec)
    x, y = batch_of(trainer, batch)
    gap = float("nan")
    t_torch = None
    if torch is not None:
        model = torch_model(torch, trainer)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()
            return loss.item()

        first_torch = torch_step()
        first_ours, _ = trainer.step(x, y)
        gap = abs(first_torch - first_ours)     # same weights in: the same loss out
        times = time_steps({"ours": lambda: trainer.step(x, y), "torch": torch_step}, steps)
        return times["ours"], times["torch"], gap
    return time_steps({"ours": lambda: trainer.step(x, y)}, steps)["ours"], None, gap


def rows(quick: bool) -> list[dict]:
    """Issue 14's LeNet-5 rows: one step at batch 64 and 256, executor vs PyTorch, both with
    their default threads, taking turns in blocks of 20 steps; medians."""
    steps = 60 if quick else 200
    try:
        import torch
    except ImportError:
        torch = None
    print(f"train_step: {cpu_model()}, {os.cpu_count()} cores, load average {load_average()}, "
          f"PyTorch {'%d threads' % torch.get_num_threads() if torch else 'not installed'}",
          file=sys.stderr)
    out = []
    for batch, goal in GOALS.items():
        ours, theirs, _ = speed("lenet5", batch, steps, torch)
        row = {"what": f"LeNet-5 training step, batch {batch} (SGD + momentum, float32, "
                       "default threads)",
               "archcalc": f"{ours * 1e3:.2f} ms", "peer": "—", "ratio": None,
               "goal": f"≤ {goal}× PyTorch", "met": None}
        if theirs is None:
            row["note"] = "PyTorch is not installed: pip install torch to compare"
        else:
            ratio = ours / theirs
            row.update(peer=f"PyTorch {theirs * 1e3:.2f} ms", ratio=ratio, met=ratio <= goal)
        out.append(row)
    print(f"train_step: load average at the end {load_average()}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="lenet5")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="the executor's chunk threads (archcalc.nn.base.THREADS; "
                             "default: the cores this process may use)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--cols-mib", type=float, default=None,
                        help="Cap the executor's im2col buffers (archcalc.nn.conv."
                             "MAX_COLS_BYTES) to trade speed for peak memory.")
    args = parser.parse_args()
    if args.threads is not None:
        from archcalc.nn import base
        base.THREADS = args.threads
    if args.cols_mib is not None:
        from archcalc.nn import conv
        conv.MAX_COLS_BYTES = int(args.cols_mib * 2**20)

    from archcalc.nn import base
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_average()}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"executor threads {base.THREADS}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
          + (f", im2col buffers capped at {args.cols_mib:g} MiB" if args.cols_mib else ""))
    print("\nmemory of a training step (executor; tracemalloc peak above the weights and data)")
    for batch in args.batches:
        peak, estimate, rss = measure_memory(args.spec, batch)
        print(f"  batch {batch:>4}: peak {peak / 2**20:7.2f} MiB   calculator forward+backward "
              f"{estimate / 2**20:7.2f} MiB   ratio {peak / estimate:5.2f}×   "
              f"(ru_maxrss grew {rss / 2**20:.1f} MiB)")

    torch = None
    if not args.no_torch:
        try:
            import torch
            if args.torch_threads:
                torch.set_num_threads(args.torch_threads)
            print(f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads")
        except ImportError:
            print("\nPyTorch is not installed: executor times only")
    print(f"\ntraining step of {args.spec} (SGD momentum 0.9, float32), median of {args.steps}")
    for batch in args.batches:
        ours, theirs, gap = speed(args.spec, batch, args.steps, torch)
        line = f"  batch {batch:>4}: executor {ours * 1e3:8.2f} ms"
        if theirs is not None:
            line += (f"   PyTorch {theirs * 1e3:8.2f} ms   ratio {ours / theirs:5.2f}×   "
                     f"(first-step loss gap {gap:.1e})")
        print(line + f"   {batch / ours:,.0f} images/s")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
