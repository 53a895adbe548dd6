"""Scaling what-ifs: a spec across input sizes, and its training memory per optimizer.

Sweep: the spec at square inputs C×S×S for each S, with MACs and activation memory per
image (and parameters, which change when a dense layer follows a flatten), or the reason
the spec does not fit at S. `smallest_fit` scans S = 1, 2, ... for the first size at which
every layer has an output (AlexNet as in the paper: 67; its last pool needs a 3×3 map).

Training memory for a batch of N (every figure × bytes per value):

    weights      P                 all parameters (batch-norm running statistics included)
    gradients    P_t               one per trainable parameter
    optimizer    k·P_t             k slots per trainable parameter: SGD 0; momentum, Nesterov,
                                   Adagrad, RMSProp 1; Adam 2 (first and second moments)
    activations  N·A               A = activations per image: the input plus every new tensor a
                                   layer makes, which backward reads (summary's count)
    total        (P + (1 + k)·P_t + N·A)·bytes

Not counted: the transient gradients of activations during backward, framework workspace
(e.g. im2col buffers) and allocator overhead; a framework's peak is higher by those.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, analyze
from archcalc.calc.explain import need_chw, reason
from archcalc.errors import ArchcalcError, ShapeError
from archcalc.spec.tree import Network

# Slots per trainable parameter, as archcalc.nn.optim keeps them (and torch.optim does).
OPTIMIZER_COPIES: dict[str, int] = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1,
                                    "rmsprop": 1, "adam": 2}


# ---- input-size sweep ------------------------------------------------------------------------
@dataclass
class SweepPoint:
    size: int
    input_shape: tuple[int, ...]
    analysis: Analysis | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.analysis is not None

    def as_dict(self) -> dict:
        out: dict = {"size": self.size, "input_shape": list(self.input_shape), "ok": self.ok,
                     "error": self.error}
        if self.analysis is not None:
            t = self.analysis.totals
            out.update({"output_shape": list(self.analysis.output_shape), "params": t.params,
                        "macs": t.macs, "activations": t.activations,
                        "activation_bytes": t.activation_bytes})
        return out


def parse_sizes(text: str | None, start: int | None, stop: int | None,
                step: int | None) -> list[int]:
    """--sizes 32,64,128 or --from 32 --to 512 --step 32 → the sizes, validated."""
    if text is not None and (start, stop, step) != (None, None, None):
        raise ArchcalcError("give either --sizes or --from/--to/--step, not both",
                            fix="e.g. --sizes 32,64,128,224")
    if text is not None:
        try:
            sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise ArchcalcError(f"bad --sizes '{text}'", fix="comma-separated integers, "
                                "e.g. --sizes 32,64,128,224") from None
    else:
        if start is None or stop is None:
            raise ArchcalcError("no sizes to sweep", fix="give --sizes 32,64,128 or "
                                "--from 32 --to 512 --step 32")
        step = 1 if step is None else step
        if step < 1:
            raise ArchcalcError(f"--step must be a positive integer (got {step})",
                                fix="e.g. --step 32")
        if stop < start:
            raise ArchcalcError(f"--to {stop} is below --from {start}", fix="swap them")
        sizes = list(range(start, stop + 1, step))
    if not sizes or min(sizes) < 1:
        raise ArchcalcError(f"input sizes must be positive integers (got {text or sizes})",
                            fix="e.g. --sizes 32,64,128,224")
    if len(sizes) > 1000:
        raise ArchcalcError(f"{len(sizes)} sizes is more than a sweep needs",
                            fix="use a larger --step (at most 1000 sizes)")
    return sizes


def _at(network: Network, size: int, dtype: str) -> SweepPoint:
    channels = need_chw(network.input_shape, "sweep")[0]
    shape = (channels, size, size)
    try:
        return SweepPoint(size, shape, analyze(network.with_input(shape), dtype=dtype))
    except ShapeError as exc:
        return SweepPoint(size, shape, error=reason(exc))


def sweep(network: Network, sizes: list[int], dtype: str = "float32") -> list[SweepPoint]:
    return [_at(network, size, dtype) for size in sizes]


def smallest_fit(network: Network, upto: int) -> tuple[SweepPoint | None, SweepPoint | None]:
    """(the first size in 1..upto at which the spec fits, the size just below it) —
    scanned one by one, since fitting need not be monotone in the size."""
    below = None
    for size in range(1, upto + 1):
        point = _at(network, size, "float32")
        if point.ok:
            return point, below
        below = point
    return None, below


# ---- training memory -------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    optimizer: str
    copies: int
    batch: int
    dtype: str
    params: int           # P
    trainable: int        # P_t
    activations: int      # A, per image, input included

    @property
    def bytes_per_value(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def weight_bytes(self) -> int:
        return self.params * self.bytes_per_value

    @property
    def gradient_bytes(self) -> int:
        return self.trainable * self.bytes_per_value

    @property
    def state_bytes(self) -> int:
        return self.copies * self.trainable * self.bytes_per_value

    @property
    def activation_bytes(self) -> int:
        return self.batch * self.activations * self.bytes_per_value

    @property
    def total_values(self) -> int:
        return self.params + (1 + self.copies) * self.trainable + self.batch * self.activations

    @property
    def total_bytes(self) -> int:
        b = self.bytes_per_value
        assert self.total_values * b == (self.weight_bytes + self.gradient_bytes
                                         + self.state_bytes + self.activation_bytes)
        return self.total_values * b

    def formula(self) -> str:
        """The total with the numbers substituted, reproducible by hand."""
        return (f"({self.params:,} + (1 + {self.copies})·{self.trainable:,} + "
                f"{self.batch}·{self.activations:,})·{self.bytes_per_value} = "
                f"{self.total_bytes:,} B")

    def as_dict(self) -> dict:
        return {"optimizer": self.optimizer, "copies": self.copies, "batch": self.batch,
                "dtype": self.dtype, "params": self.params, "trainable_params": self.trainable,
                "activations_per_image": self.activations, "weight_bytes": self.weight_bytes,
                "gradient_bytes": self.gradient_bytes, "optimizer_bytes": self.state_bytes,
                "activation_bytes": self.activation_bytes, "total_bytes": self.total_bytes}


def training_memory(analysis: Analysis, optimizers: list[str] | None = None,
                    batch: int | None = None) -> list[MemoryEstimate]:
    """One estimate per optimizer for the analysis's batch (or `batch`) and dtype."""
    names = optimizers or list(OPTIMIZER_COPIES)
    for name in names:
        if name not in OPTIMIZER_COPIES:
            raise ArchcalcError(f"unknown optimizer '{name}'",
                                fix="one of " + ", ".join(OPTIMIZER_COPIES))
    t = analysis.totals
    n = t.batch if batch is None else batch
    if n < 1:
        raise ArchcalcError(f"batch must be >= 1 (got {n})", fix="--batch 32")
    return [MemoryEstimate(name, OPTIMIZER_COPIES[name], n, t.dtype, t.params,
                           t.trainable_params, t.activations) for name in names]
