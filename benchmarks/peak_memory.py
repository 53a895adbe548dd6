"""Peak memory of one training step: archcalc's prediction, the NumPy executor, PyTorch (CPU).

    python benchmarks/peak_memory.py [--batch 4] [--size 224] [--optimizer sgd]

ResNet-18 (specs/resnet18.yaml, torchvision's resnet18: the same layers), one training step
(forward in training mode, a loss, backward, an optimizer step), float32.

- predicted: archcalc.calc.peak (`archcalc memory resnet18 --timeline`): weights + gradients +
  optimizer state + the most activations and gradients held at any step under its policy.
- executor, recorded: the executor's MemoryRecorder (the prediction's oracle; equal to it).
- executor, whole process: tracemalloc's peak of every NumPy buffer during the step (NumPy
  reports its allocations to it), plus the weights, gradients and slots that existed before:
  the difference to "predicted" is what the policy leaves out (im2col columns, temporaries,
  caches the executor keeps after their backward, frames' references) — measured apart here.
- PyTorch: torch.profiler with profile_memory=True, the CPU memory timeline
  (export_memory_timeline's categories summed): its peak over the step.
The ratio PyTorch / predicted is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB ({n:,} B)"


def archcalc_figures(batch: int, size: int, optimizer: str):
    from archcalc.calc.analyze import analyze
    from archcalc.calc.peak import timeline
    from archcalc.nn import optim
    from archcalc.nn.losses import softmax_cross_entropy
    from archcalc.nn.network import MemoryRecorder, Model
    from archcalc.spec import load

    tracemalloc.start()   # before any array: every buffer of the run is traced
    network = load("resnet18", (3, size, size))
    steps = timeline(analyze(network, batch=batch), "training", optimizer)
    predicted = max(s.bytes for s in steps)
    model = Model(network)
    model.forward(np.zeros((1,) + model.input_shape, dtype=model.dtype))
    opt = optim.make(optimizer, 0.01)
    x = np.random.default_rng(0).standard_normal((batch,) + model.input_shape).astype(np.float32)
    labels = np.arange(batch) % 1000

    def step():
        y = model.forward(x, training=True)
        _, dy = softmax_cross_entropy(y, labels)
        model.backward(dy, input_grad=False)
        opt.step(model.params, model.grads, model.frozen)

    step()  # the slots exist from here on; caches of this step stay (the executor's way)
    static = sum(a.nbytes for d in (model.params, model.buffers, model.grads) for a in d.values())
    static += sum(a.nbytes for t in opt.state.values() for a in t.values())
    model.recorder = MemoryRecorder()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    process = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    recorded = static + max(b for _, _, b in model.recorder.steps)
    # the previous step's caches were alive at `before` and are freed as this step runs
    stale = before - static - x.nbytes
    return predicted, recorded, static + stale + process, stale


def torch_peak(batch: int, size: int, optimizer: str) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from torchvision_models import model as tv_model

    net = tv_model("resnet", "resnet18").train()
    opts = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01),
            "momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
            "adam": lambda p: torch.optim.Adam(p, lr=0.01)}
    opt = opts[optimizer](net.parameters())
    x = torch.randn(batch, 3, size, size)
    labels = torch.arange(batch) % 1000

    def step():
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.cross_entropy(net(x), labels)
        loss.backward()
        opt.step()

    step()  # gradients and optimizer state exist from here on
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path, encoding="utf-8") as fh:
            times, sizes = json.load(fh)
    # sizes: one list per time stamp, the bytes of each category at that time
    return max(sum(row) for row in sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    args = parser.parse_args()
    predicted, recorded, process, stale = archcalc_figures(args.batch, args.size, args.optimizer)
    print(f"resnet18, batch {args.batch}, 3×{args.size}×{args.size}, float32, "
          f"{args.optimizer}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"  predicted peak (archcalc.calc.peak):     {mib(predicted)}")
    print(f"  executor, recorded (MemoryRecorder):     {mib(recorded)}")
    print(f"  executor, every NumPy buffer (tracemalloc): {mib(process)}; of which the "
          f"previous step's caches {mib(stale)}")
    print(f"    left out by the policy: {mib(process - predicted)} "
          f"({process / predicted:.3f}× predicted)")
    try:
        peak = torch_peak(args.batch, args.size, args.optimizer)
    except ImportError as exc:
        print(f"  PyTorch: not measured ({exc})")
        return
    print(f"  PyTorch CPU peak (profiler memory timeline): {mib(peak)}")
    print(f"    PyTorch / predicted = {peak / predicted:.3f}")


if __name__ == "__main__":
    main()
