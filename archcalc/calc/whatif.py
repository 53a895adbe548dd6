"""Scaling what-ifs: a spec across input sizes, and its training memory per optimizer.

Sweep: the spec at square inputs C×S×S for each S, with MACs and activation memory per
image (and parameters, which change when a dense layer follows a flatten), or the reason
the spec does not fit at S. `smallest_fit` finds the first size at which every layer has an
output (AlexNet as in the paper: 67; its last pool needs a 3×3 map) by bisection on "a
window is larger than its input", then a bounded scan (see its docstring for why that is
exact). Every sweep is bounded before it is built (MAX_SWEEP_SIZES, MAX_SWEEP_SCAN).

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

import re
from dataclasses import dataclass

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, analyze
from archcalc.calc.explain import reason
from archcalc.errors import ArchcalcError, ShapeError, WindowTooLargeError
from archcalc.limits import MAX_SIZE, echo, limit, raise_hint
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
    too_small: bool = False     # failed because a window is larger than its input

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


def _size(text: str) -> int:
    """One size of --sizes: an integer in 1..MAX_SIZE (10⁹, the spec's own bound)."""
    part = text.strip()
    if not re.fullmatch(r"-?[0-9]+", part):   # ASCII only: '²'.isdigit() is True
        raise ArchcalcError(f"bad --sizes value '{echo(part, 40)}'",
                            fix="comma-separated integers, e.g. --sizes 32,64,128,224")
    digits = part.lstrip("-").lstrip("0")      # counted before int(): 5,000 digits is no size
    if len(digits) > len(str(MAX_SIZE)) or not 1 <= int(part) <= MAX_SIZE:
        raise ArchcalcError(f"input size {echo(part, 40)} in --sizes is outside 1..{MAX_SIZE:,}",
                            fix=f"give sizes from 1 to {MAX_SIZE:,}")
    return int(part)


def _range_sizes(start: int | None, stop: int | None, step: int | None, cap: int) -> list[int]:
    """--from/--to/--step: the range's length is counted (arithmetic) before it is built."""
    if start is None or stop is None:
        raise ArchcalcError("no sizes to sweep", fix="give --sizes 32,64,128 or "
                            "--from 32 --to 512 --step 32")
    step = 1 if step is None else step
    for name, value in (("--from", start), ("--to", stop), ("--step", step)):
        if not 1 <= value <= MAX_SIZE:
            raise ArchcalcError(f"{name} {value} is outside 1..{MAX_SIZE:,}",
                                fix=f"give {name} from 1 to {MAX_SIZE:,}")
    if stop < start:
        raise ArchcalcError(f"--to {stop:,} is below --from {start:,}", fix="swap them")
    count = (stop - start) // step + 1
    if count > cap:
        least = (stop - start) // cap + 1       # the smallest step giving at most cap sizes
        raise ArchcalcError(f"--from {start:,} --to {stop:,} --step {step:,} is {count:,} sizes, "
                            f"more than the limit of {cap:,} (MAX_SWEEP_SIZES)",
                            fix=f"use --step {least:,} or more, a shorter range, or "
                                "ARCHCALC_MAX_SWEEP_SIZES=<larger number>")
    return list(range(start, stop + 1, step))


def parse_sizes(text: str | None, start: int | None, stop: int | None,
                step: int | None) -> list[int]:
    """--sizes 32,64,128 or --from 32 --to 512 --step 32 → the sizes, validated.

    Bounded before anything is built: a list is counted by its commas, a range by
    arithmetic, against MAX_SWEEP_SIZES; every size lies in 1..MAX_SIZE."""
    cap = limit("MAX_SWEEP_SIZES")
    if text is not None and (start, stop, step) != (None, None, None):
        raise ArchcalcError("give either --sizes or --from/--to/--step, not both",
                            fix="e.g. --sizes 32,64,128,224")
    if text is None:
        return _range_sizes(start, stop, step, cap)
    count = text.count(",") + 1
    if count > cap:
        raise ArchcalcError(f"--sizes lists {count:,} sizes, more than the limit of {cap:,} "
                            "(MAX_SWEEP_SIZES)", fix="sweep fewer sizes, or "
                            + raise_hint("MAX_SWEEP_SIZES"))
    sizes = [_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise ArchcalcError("--sizes lists no size", fix="e.g. --sizes 32,64,128,224")
    return sizes


def _channels(network: Network) -> int:
    """C of a C×H×W spec: a sweep varies H = W, which a flat input does not have."""
    if len(network.input_shape) != 3:
        name = echo(network.name, 80)
        raise ArchcalcError(f"sweep varies a C×H×W input's H and W; spec '{name}' takes a flat "
                            f"input of {network.input_shape[0]:,} values",
                            file=network.file, fix="sweep a spec whose input is [C, H, W]")
    return network.input_shape[0]


def _at(network: Network, size: int, dtype: str) -> SweepPoint:
    shape = (_channels(network), size, size)
    try:
        full = analyze(network.with_input(shape), dtype=dtype)
    except ShapeError as exc:
        return SweepPoint(size, shape, error=reason(exc), too_small=_too_small(exc))
    # A sweep shows totals and the output shape: keep the last row, not every layer's (1,000
    # sizes of ResNet-152 kept whole took 265 MB).
    slim = Analysis(full.network, full.rows[-1:], full.totals, full.warnings, full.notes)
    return SweepPoint(size, shape, slim)


def _too_small(exc: ShapeError) -> bool:
    """A sliding window (conv, pool) larger than its padded input: the input is too small."""
    return isinstance(exc, WindowTooLargeError)


def sweep(network: Network, sizes: list[int], dtype: str = "float32") -> list[SweepPoint]:
    return [_at(network, size, dtype) for size in sizes]


def check_work(network: Network, sizes: list[int]) -> int:
    """Bound a sweep's work before any of it is done; return how many sizes smallest_fit may
    then scan.

    Each size analyses every layer, and so does each step of smallest_fit: the sizes and the
    bisection (⌈log2(max size + 1)⌉ steps) must fit in MAX_SWEEP_WORK layer evaluations, or
    the sweep is refused; the scan gets what is left (at least one size, at most
    MAX_SWEEP_SCAN). About 8 µs per layer evaluation here: the default 10⁶ is ~8 s;
    ResNet-152 (465 layers) at 1,000 sizes is 0.47·10⁶."""
    _channels(network)
    layers = max(1, sum(1 for _ in network.leaves()))
    fixed = len(sizes) + (max(sizes) + 1).bit_length()
    cap = limit("MAX_SWEEP_WORK")
    if layers * fixed > cap:
        most = cap // layers - (max(sizes) + 1).bit_length()
        raise ArchcalcError(f"sweeping {len(sizes):,} sizes of spec '{echo(network.name, 80)}' "
                            f"({layers:,} layers) takes {layers * fixed:,} layer evaluations "
                            f"with the search for the smallest fit, more than the limit of "
                            f"{cap:,} (MAX_SWEEP_WORK)", file=network.file,
                            fix=(f"sweep at most {most:,} sizes, or " if most > 0 else "")
                            + raise_hint("MAX_SWEEP_WORK"))
    return max(1, min(limit("MAX_SWEEP_SCAN"), (cap - layers * fixed) // layers))


@dataclass
class Fit:
    """The smallest square input that fits, as far as it was searched.

    smallest: the first size at which every layer has an output (None if none was found);
    below: the size just below it, or the last size tried, with why it does not fit;
    known_upto: every size up to this one is known (fits from `smallest` on, or fails);
    upto: the largest size asked about."""

    smallest: SweepPoint | None
    below: SweepPoint | None
    known_upto: int
    upto: int

    @property
    def complete(self) -> bool:
        return self.smallest is not None or self.known_upto >= self.upto


def smallest_fit(network: Network, upto: int, scan: int | None = None) -> Fit:
    """The first size in 1..upto at which the spec fits, proven, in O(log upto) + a bounded
    scan of evaluations (never one by one from 1).

    Why it is right: every output size the calculator computes, (W + P − D·(K − 1) − 1)/S + 1
    floored or ceiled (with PyTorch's last-window rule), 'same' padding's ⌈W/S⌉, a global
    pool's 1, is non-decreasing in its input size, so every tensor of the network is. Hence if
    some window is larger than its padded input at size S ("too small"), at any S' < S that
    window's input is no larger, and S' fails too (at that layer or earlier). Bisection finds
    a size lo that is too small with lo + 1 not too small (or lo = 0); every size ≤ lo fails.
    Fitting is not monotone beyond that (branches merged by add/concat may agree only at some
    sizes: strides 2 with kernels 1 and 2 agree only at even sizes), so the sizes from lo + 1
    up are evaluated one by one, at most `scan` of them (default MAX_SWEEP_SCAN); the first
    that fits is the smallest. tests/test_whatif.py checks the premise on the bundled specs."""
    seen: dict[int, SweepPoint] = {}

    def at(size: int) -> SweepPoint:
        if size not in seen:
            seen[size] = _at(network, size, "float32")
        return seen[size]

    lo, hi = 0, upto + 1        # invariant: lo is too small (or 0); hi is not (or upto + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if at(mid).too_small:
            lo = mid
        else:
            hi = mid
    last = min(upto, lo + (limit("MAX_SWEEP_SCAN") if scan is None else max(1, scan)))
    for size in range(lo + 1, last + 1):
        if at(size).ok:
            return Fit(at(size), seen.get(size - 1), size, upto)
    return Fit(None, seen.get(last), last, upto)   # last ≥ lo, and every size ≤ last was tried


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
