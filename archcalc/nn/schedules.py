"""Learning-rate schedules: the rate for epoch t (t = 0, 1, 2, ...) from the initial rate lr0.

    constant      lr0
    inverse-time  lr0 / (1 + k·t)
    exponential   lr0 · γ^t
    inv-sqrt      lr0 / √(1 + t)          (1/√t with t counted from 1)
    step          lr0 · γ^⌊t / s⌋           (staircase: drop by γ every s epochs)

A schedule is a pure function of the epoch, so a resumed run needs no schedule state.
The CLI form is NAME or NAME:ARG[,ARG] — "exponential:0.9", "step:5,0.5", "inverse-time:0.1".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from archcalc.errors import ArchcalcError
from archcalc.limits import MAX_EPOCHS, echo

# The rates a float64 holds as normal numbers: log(2.2e-308) .. log(1.8e308).
_LOG_MIN = math.log(2.2250738585072014e-308)
_LOG_MAX = math.log(1.7976931348623157e308) - 1e-9


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"
    rate: float = 0.0       # k for inverse-time, γ for exponential and step
    every: int = 1          # s for step

    def __call__(self, lr0: float, epoch: int) -> float:
        """The rate of epoch t: the formula itself (exact, as torch computes it), or through
        logarithms when an intermediate overflows (1e200 ** 3 is an OverflowError in
        Python, 1e-300 · 1e200³ is a fine 1e300). A rate beyond the float range is refused
        by `check` before a run starts."""
        t = epoch
        try:
            if self.kind == "constant":
                return lr0
            if self.kind == "inverse-time":
                return lr0 / (1 + self.rate * t)
            if self.kind == "exponential":
                return lr0 * self.rate ** t
            if self.kind == "inv-sqrt":
                return lr0 / math.sqrt(1 + t)
            if self.kind == "step":
                return lr0 * self.rate ** (t // self.every)
        except OverflowError:            # rate ** t beyond 1e308, even when lr0 brings it back
            return math.exp(min(self.log_factor(epoch) + math.log(lr0), _LOG_MAX))
        raise AssertionError(self.kind)

    def log_factor(self, epoch: int) -> float:
        """log(lr_t / lr0)."""
        t = epoch
        if self.kind == "constant":
            return 0.0
        if self.kind == "inverse-time":
            return -math.log1p(self.rate * t)
        if self.kind == "exponential":
            return t * math.log(self.rate)
        if self.kind == "inv-sqrt":
            return -0.5 * math.log1p(t)
        if self.kind == "step":
            return (t // self.every) * math.log(self.rate)
        raise AssertionError(self.kind)

    def check(self, lr0: float, epochs: int, text: str | None = None) -> None:
        """Every epoch's rate (0 .. epochs-1) is a normal positive float: a schedule that
        would reach 1e+400 or 1e-400 is refused with the numbers before the run starts.
        The extremes are the first and the last epoch (every schedule is monotonic)."""
        for t in (0, max(epochs - 1, 0)):
            log_lr = self.log_factor(t) + math.log(lr0)
            if not _LOG_MIN <= log_lr <= _LOG_MAX:
                way = "overflows" if log_lr > 0 else "underflows"
                raise ArchcalcError(
                    f"--schedule {echo(text or self.describe(), 60)} with --lr {lr0:g} {way} the float range at "
                    f"epoch {t + 1}: the rate would be about 1e{log_lr / math.log(10):+.0f}",
                    fix="a factor nearer 1, fewer --epochs, or another --lr")

    def describe(self) -> str:
        return {
            "constant": "constant",
            "inverse-time": f"lr0/(1+{self.rate:g}·t)",
            "exponential": f"lr0·{self.rate:g}^t",
            "inv-sqrt": "lr0/√(1+t)",
            "step": f"lr0·{self.rate:g}^⌊t/{self.every}⌋",
        }[self.kind]


# name -> (default args, what the args are)
_KINDS = {
    "constant": ((), ""),
    "inverse-time": ((0.1,), "k"),
    "exponential": ((0.95,), "gamma"),
    "inv-sqrt": ((), ""),
    "step": ((10, 0.1), "every,gamma"),
}
_ALIASES = {"none": "constant", "inverse_time": "inverse-time", "invtime": "inverse-time",
            "exp": "exponential", "sqrt": "inv-sqrt", "inv_sqrt": "inv-sqrt",
            "1/sqrt": "inv-sqrt", "staircase": "step"}


def parse(text: str) -> Schedule:
    """'step:5,0.5' → Schedule('step', 0.5, 5). Errors name the schedule and the fix."""
    name, _, args = (text or "constant").strip().partition(":")
    kind = _ALIASES.get(name.lower(), name.lower())
    if kind not in _KINDS:
        raise ArchcalcError(f"unknown schedule '{echo(name, 60)}'",
                            fix="one of " + ", ".join(
                                f"{k}:{a}" if a else k for k, (_, a) in _KINDS.items()))
    defaults, help_args = _KINDS[kind]
    try:
        values = [float(v) for v in args.split(",")] if args else list(defaults)
    except ValueError:
        values = None
    if values is None or len(values) != len(defaults):
        raise ArchcalcError(f"schedule '{echo(text, 60)}' takes {len(defaults)} argument(s)",
                            fix=f"write {kind}:{help_args}" if help_args else f"write {kind}")
    if not all(math.isfinite(v) for v in values):
        # inf epochs overflow int(); a nan rate trains a run that diverges at epoch 2.
        raise ArchcalcError(f"schedule '{echo(text, 60)}': every argument must be a finite number",
                            fix=f"e.g. {kind}:" + ",".join(f"{d:g}" for d in defaults))
    if kind == "step" and values[0] > MAX_EPOCHS:
        raise ArchcalcError(f"schedule '{echo(text, 60)}': {values[0]:g} epochs per step is more "
                            f"than any run ({MAX_EPOCHS:,})", fix="e.g. step:10,0.1")
    if kind == "step":
        every, gamma = values
        if every < 1 or every != int(every) or gamma <= 0:
            raise ArchcalcError(f"schedule '{echo(text, 60)}': need a whole number of epochs >= 1 and "
                                "a factor > 0", fix="e.g. step:10,0.1")
        return Schedule(kind, gamma, int(every))
    rate = values[0] if values else 0.0
    if kind in ("inverse-time", "exponential") and rate <= 0:
        raise ArchcalcError(f"schedule '{echo(text, 60)}': the rate must be > 0",
                            fix=f"e.g. {kind}:{defaults[0]}")
    return Schedule(kind, rate)
