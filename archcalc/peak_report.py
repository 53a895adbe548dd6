"""Views of archcalc.calc.peak: the per-step timeline and the batch that fits a budget."""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.calc.analyze import Analysis
from archcalc.calc.peak import Step, envelopes, largest_batch
from archcalc.report import human_bytes
from archcalc.tables import Grid

POLICY = {
    "inference": "Policy: a tensor is freed after its last reader (a merge's input after its "
                 "last branch's first layer); in-place activations, dropout, flatten and crop "
                 "make no new tensor. Held = the step's input and output and what merges hold.",
    "training": "Policy: every layer keeps what its backward reads until its backward runs; "
                "gradients of activations are freed after use; weights, their gradients and "
                "the optimizer's slots are held throughout.",
}
LEFT_OUT = ("Not counted: temporaries inside one layer (im2col columns, masks), the loss's own "
            "arrays, allocator overhead.")


def _top(step: Step) -> str:
    shown = ", ".join(f"{name} {human_bytes(size)}" for name, size in step.held)
    more = step.held_count - len(step.held)
    return shown + (f" (+{more} more)" if more > 0 else "")


def timeline_grid(analysis: Analysis, steps: list[Step], mode: str,
                  optimizer: str | None) -> Grid:
    peak = max(range(len(steps)), key=lambda i: steps[i].bytes)
    rows = [[str(i + 1), s.name, s.phase, human_bytes(s.held_bytes), human_bytes(s.bytes),
             f"{s.bytes:,}", _top(s)] for i, s in enumerate(steps)]
    t = analysis.totals
    what = "inference" if mode == "inference" else f"one training step, {optimizer}"
    static = steps[0].static_bytes
    footer = [
        f"Peak: step {peak + 1} ({steps[peak].name}, {steps[peak].phase}): "
        f"{steps[peak].bytes:,} B ({human_bytes(steps[peak].bytes)}) = held "
        f"{steps[peak].held_bytes:,} B + static {static:,} B "
        + ("(weights and buffers)." if mode == "inference" else
           "(weights, gradients and optimizer state)."),
        POLICY[mode], LEFT_OUT,
    ]
    return Grid(f"Memory timeline of {analysis.network.name} ({what}), batch {t.batch}, "
                f"{t.dtype}", ["#", "layer", "phase", "held", "total", "total bytes",
                               "largest tensors held"], rows, footer, left={1, 2, 6},
                drop=[5, 6, 2, 0], styles={peak: "bold"})  # no wrapping: drawn fast (Drawn)


@dataclass
class Fit:
    """The largest batch whose peak fits a budget, for one mode (and optimizer)."""

    mode: str
    optimizer: str | None
    batch: int
    peak: int | None        # at `batch` (None when not even one image fits)
    next_peak: int          # at batch + 1

    def as_dict(self) -> dict:
        return {"mode": self.mode, "optimizer": self.optimizer, "largest_batch": self.batch,
                "peak_bytes": self.peak, "next_batch_peak_bytes": self.next_peak}


def fits(analysis: Analysis, budget: int, optimizers: list[str] | None = None) -> list[Fit]:
    """Inference, then training per optimizer: the largest batch with peak <= budget."""
    out = []
    inference, training = envelopes(analysis, optimizers)
    cases = [("inference", None, inference)] + [("training", o, env)
                                                for o, env in training.items()]
    for mode, opt, env in cases:
        n = largest_batch(env, budget)
        out.append(Fit(mode, opt, n, env.peak(n) if n else None, env.peak(n + 1)))
    return out


def budget_grid(analysis: Analysis, budget: int, results: list[Fit]) -> Grid:
    rows = [[r.mode if r.optimizer is None else f"training, {r.optimizer}",
             f"{r.batch:,}" if r.batch else "none",
             human_bytes(r.peak) if r.peak is not None else "—",
             human_bytes(r.next_peak), f"{r.peak:,}" if r.peak is not None else "—"]
            for r in results]
    footer = [
        f"Budget {budget:,} B ({human_bytes(budget)}), {analysis.totals.dtype}. peak(N) = "
        "static + the largest over the steps of (a·N + b) (`archcalc memory --timeline`), "
        "nondecreasing in N: the largest batch is found by bisection on it, exactly.",
        POLICY["training"], LEFT_OUT,
    ]
    return Grid(f"Largest batch of {analysis.network.name} within {human_bytes(budget)}",
                ["case", "largest batch", "peak", "peak at batch + 1", "peak bytes"], rows,
                footer, drop=[4, 3])
