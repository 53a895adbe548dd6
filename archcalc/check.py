"""Calculator vs executor: every computed shape, parameter and byte, proven on real arrays.

The only module that imports both the calculator (archcalc.calc) and the executor
(archcalc.nn): if the executor asked the calculator for a shape, this check would prove
nothing (README, "three rooms").

run_check(network, batch=N):
  1. analyse the network with the calculator (a spec it rejects is rejected here the same way);
  2. estimate the memory a real run needs, before allocating anything, and refuse with an
     ArchcalcError when the estimate is over the budget;
  3. build the network with the executor and run one forward pass (inference) on a seeded
     random batch x of shape (N, *input_shape);
  4. pair the calculator's rows with the executor's records by name, in execution order, and
     compare per layer: output shape per example, trainable and non-trainable parameters,
     and activation bytes (predicted: row.activations · N · dtype size; measured: nbytes of
     the new array the layer kept, 0 when its output is a view of or shares its input).
"""

from __future__ import annotations

import difflib
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from archcalc.calc import DTYPE_BYTES, Analysis, Row, analyze
from archcalc.calc.shapes import fmt_shape, prod
from archcalc.errors import ArchcalcError
from archcalc.limits import MAX_MEMORY_BUDGET, echo, elide, limit
from archcalc.nn import build
from archcalc.nn.conv import MAX_COLS_BYTES
from archcalc.report import power_of_ten
from archcalc.nn.pool import pool_cost
from archcalc.spec.layers import explicit_pads, pair, same_pads
from archcalc.spec.tree import Network

# The default budget: this fraction of the memory the kernel says is available now.
DEFAULT_BUDGET_FRACTION = 0.5

# ---- sizes ---------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40, "p": 10**15, "pb": 10**15, "pib": 2**50,
          # past the 1 PB cap, but named so they get the cap's message, not "bad memory size"
          "e": 10**18, "eb": 10**18, "eib": 2**60}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """'2GB' → 2·10⁹ bytes, '500MB', '1.5GiB', '4096' (bytes). K/M/G/T/P are decimal; the
    KiB/MiB/GiB/TiB/PiB forms are binary. Exact (Decimal): '1PB' is 10¹⁵, not a float near it."""
    match = _SIZE_RE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ArchcalcError(f"bad memory size '{echo(text, 40)}'",
                            fix="write e.g. 2GB, 500MB or 1.5GiB")
    number = Decimal(match.group(1)) * _UNITS[unit]
    if not number <= MAX_MEMORY_BUDGET:
        raise ArchcalcError(f"memory size '{echo(text, 40)}' is more than "
                            "1 PB (10^15 bytes)", fix="e.g. --memory-budget 2GB")
    value = int(number)
    if value <= 0:
        raise ArchcalcError(f"memory size must be more than 0 bytes (got '{echo(text, 40)}')",
                            fix="e.g. --memory-budget 2GB")
    return value


_BYTE_UNITS = (("EB", 10**18), ("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6),
               ("kB", 10**3))


def fmt_bytes(n: int | float) -> str:
    """Decimal units, as disks and `free -h --si` print them: 1.2 GB; from 1000 EB on, three
    significant digits and a power of ten: 4.00 × 10^24 B. Computed in Decimal (exact for an
    int or a float), so no float noise and the same text for the same count."""
    exact = Decimal(n)
    if abs(exact) >= 1000 * 10**18:
        return f"{power_of_ten(exact)} B"
    for unit, scale in _BYTE_UNITS:
        if abs(exact) >= scale:
            return f"{(exact / scale).quantize(Decimal('0.1'), ROUND_HALF_EVEN)} {unit}"
    return f"{int(n)} B"


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int | None:
    free = available_memory()
    return int(free * DEFAULT_BUDGET_FRACTION) if free else None


# ---- the memory estimate -------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a check run holds at its peak, from the spec alone (no arrays). An upper
    estimate: the executor may free activations earlier than the calculator assumes."""

    batch: int
    activation_bytes: int  # the input (and its copy) and every kept output, whole batch
    param_bytes: int       # parameters and buffers
    scratch_bytes: int     # the largest convolution workspace

    @property
    def total(self) -> int:
        return self.activation_bytes + self.param_bytes + self.scratch_bytes

    def describe(self) -> str:
        return (f"{fmt_bytes(self.activation_bytes)} of activations at batch {self.batch}, "
                f"{fmt_bytes(self.param_bytes)} of parameters, "
                f"{fmt_bytes(self.scratch_bytes)} of scratch")


def _conv_workspace(network: Network, rows: list[Row], batch: int, itemsize: int) -> int:
    """The largest scratch one convolution needs: its zero-padded input copy, its im2col
    buffer of (N·H_out·W_out) × (C_in/groups·K_h·K_w) values, which the executor cuts into
    chunks of at most MAX_COLS_BYTES (one output row at least), and a chunk's product."""
    leaves = {leaf.path: leaf for leaf in network.leaves()}
    largest = 0
    for row in rows:
        if row.type == "conv_transpose2d":
            largest = max(largest, _transposed_workspace(leaves[row.path].spec, row, batch,
                                                         itemsize))
        if row.type != "conv2d":
            continue
        spec = leaves[row.path].spec
        c_in, h, w = row.input_shape
        filters, h_out, w_out = row.output_shape
        kh, kw = pair(spec.kernel)
        pads = explicit_pads(spec.padding)
        if pads is None:
            sh, sw = pair(spec.stride)
            dh, dw = pair(spec.dilation)
            pads = same_pads(h, kh, sh, dh) + same_pads(w, kw, sw, dw)
        padded = batch * c_in * (h + pads[0] + pads[1]) * (w + pads[2] + pads[3]) * itemsize
        row_bytes = c_in * kh * kw * w_out * itemsize
        cols = min(batch * h_out * row_bytes, max(MAX_COLS_BYTES, row_bytes))
        product = min(batch * filters * h_out * w_out * itemsize,
                      cols // max(row_bytes, 1) * filters * w_out * itemsize)
        largest = max(largest, padded + cols + product)
    return largest


def _transposed_workspace(spec, row: Row, batch: int, itemsize: int) -> int:
    """A transposed convolution runs as a convolution's input gradient: the uncropped output
    canvas ((H − 1)·S + D·(K − 1) + 1 + output_padding per axis, before `padding` crops it),
    and column gradients of (N·H·W) × (C_out·K_h·K_w) values, in chunks of at most
    MAX_COLS_BYTES (one input row at least)."""
    c_in, h, w = row.input_shape
    filters = row.output_shape[0]
    kh, kw = pair(spec.kernel)
    (sh, sw), (dh, dw), (oh, ow) = pair(spec.stride), pair(spec.dilation), pair(spec.output_padding)
    canvas = (batch * filters * ((h - 1) * sh + dh * (kh - 1) + 1 + oh)
              * ((w - 1) * sw + dw * (kw - 1) + 1 + ow) * itemsize)
    row_bytes = filters * kh * kw * w * itemsize
    cols = min(batch * h * row_bytes, max(MAX_COLS_BYTES, row_bytes))
    return canvas + cols


POOL_KINDS = frozenset({"maxpool", "avgpool"})


def _pool_costs(analysis: Analysis) -> list[tuple[Row, int, int]]:
    """(row, offsets visited, padded-copy values per channel) of every max/avg pooling."""
    leaves = {leaf.path: leaf for leaf in analysis.network.leaves()}
    return [(row, *pool_cost(leaves[row.path].spec, row.input_shape, row.output_shape))
            for row in analysis.rows if row.type in POOL_KINDS]


def _pool_workspace(analysis: Analysis, batch: int, itemsize: int) -> int:
    """The largest pooling scratch: its padded copy and one window slice (and an argmax)."""
    largest = 0
    for row, _, frame in _pool_costs(analysis):
        channels = row.input_shape[0]
        largest = max(largest, batch * channels * (frame + 2 * prod(row.output_shape[1:]))
                      * itemsize)
    return largest


def _pool_work(analysis: Analysis) -> int:
    """Per image: one operation per output value per kernel offset visited (a pooling row
    counts 0 MACs, yet a kernel of 1,000 is 10⁶ of them per output)."""
    return sum(offsets * prod(row.output_shape) for row, offsets, _ in _pool_costs(analysis))


def estimate_memory(analysis: Analysis, batch: int) -> MemoryEstimate:
    """Input (twice) + kept activations for `batch` images; parameters and buffers; and the
    largest convolution workspace. Not counted: the gradient arrays (np.zeros pages, mapped
    lazily, which a forward pass never touches) and the initialiser's scratch (it draws
    each weight directly in the model's dtype). Measured peak RSS of `archcalc check vgg16`:
    0.79 GB, of which ~0.05 GB is the interpreter; this estimate: 0.76 GB."""
    totals = analysis.totals
    itemsize = totals.dtype_bytes
    return MemoryEstimate(
        batch=batch,
        # the input twice: the caller's batch and the executor's private copy of it
        activation_bytes=(totals.activations + totals.input_values) * batch * itemsize,
        param_bytes=totals.params * itemsize,
        scratch_bytes=max(_conv_workspace(analysis.network, analysis.rows, batch, itemsize),
                          _pool_workspace(analysis, batch, itemsize)),
    )


def largest_fitting_batch(analysis: Analysis, budget: int, upto: int) -> int:
    """The largest batch below `upto` whose estimate fits the budget (0 if none)."""
    lo, hi = 0, upto - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_memory(analysis, mid).total <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def refuse_if_over(analysis: Analysis, batch: int, budget: int | None,
                   what: str = "a check", fix: str | None = None) -> MemoryEstimate:
    """The estimate, or one line if it is over the budget. `what` names the run ("a check",
    "an export's forward pass"); `fix` replaces the --batch advice for a command that runs
    batch 1 only."""
    estimate = estimate_memory(analysis, batch)
    if budget is None or estimate.total <= budget:
        return estimate
    if fix is None:
        fits = largest_fitting_batch(analysis, budget, batch)
        hint = f"--batch {fits} fits" if fits else "even batch 1 does not fit"
        fix = f"use a smaller --batch ({hint}) or a smaller --input, or raise --memory-budget"
    raise ArchcalcError(
        f"{what} of {analysis.network.name} at batch {batch} needs about "
        f"{fmt_bytes(estimate.total)} ({estimate.describe()}), more than the memory budget "
        f"of {fmt_bytes(budget)}", fix=fix)


# A pooling offset is one NumPy pass over the output (memory-bound): measured here at about a
# tenth of the rate of a MAC in a BLAS product (a 301×301 max pool over 64×200×200: 1.0·10¹¹
# offsets × outputs in 174 s, vgg16's 1.5·10¹⁰ MACs in ~5 s).
POOL_OFFSET_WORK = 10


# The recurrent executor runs its steps one at a time in Python: each step is a few small
# NumPy calls whatever its size, so T steps cost T times a fixed overhead that MACs do not
# show (a 4-unit GRU over 3·10⁶ steps is 4·10⁸ MACs, yet a minute). Measured on this machine
# (2-core AMD EPYC, batch 1, units 4, bidirectional, T = 20,000): forward 2.3 µs a step for
# rnn, 10.1 for lstm, 9.4 for gru; backward 5.3, 14.9, 15.4 µs. In work units at ~3·10⁹ a
# second, rounded up: (forward, backward) per step and direction.
RECURRENT_STEP_WORK = {"rnn": (7_000, 16_000), "lstm": (30_000, 45_000),
                       "gru": (30_000, 47_000)}
WORK_PER_SECOND = 3 * 10**9  # vgg16's 1.5·10¹⁰ MACs in ~5 s


def recurrent_steps(analysis: Analysis) -> list[tuple[str, int]]:
    """(kind, steps) of every rnn/lstm/gru: T of its input, twice when bidirectional."""
    leaves = {leaf.path: leaf for leaf in analysis.network.leaves()}
    return [(row.type, row.input_shape[0] * (2 if leaves[row.path].spec.bidirectional else 1))
            for row in analysis.rows if row.type in RECURRENT_STEP_WORK]


def step_work(analysis: Analysis, backward: bool = False) -> int:
    """The recurrent layers' per-step overhead of one forward pass, or of one backward pass."""
    return sum(steps * RECURRENT_STEP_WORK[kind][1 if backward else 0]
               for kind, steps in recurrent_steps(analysis))


def pass_work(analysis: Analysis, batch: int, pool_weight: int = 1) -> int:
    """One forward pass in work units: MACs, pooling window offsets (× `pool_weight`) and
    values made for the batch, plus a fixed cost per layer call and per recurrent step."""
    totals = analysis.totals
    return (batch * (totals.macs + pool_weight * _pool_work(analysis) + totals.activations)
            + GRADCHECK_LAYER_WORK * len(analysis.rows) + step_work(analysis))


def check_work(analysis: Analysis, batch: int, build: bool = True) -> int:
    """A check's forward pass, pooling offsets weighted by POOL_OFFSET_WORK. `build`: also
    the executor's build, itself a batch-1 pass on zeros, counted by its recurrent steps only
    (its other work is a batch-1 share of the check's); measured: `check` of a 4-unit GRU
    over 3·10⁶ steps took 113 s, 56 s of it the build; estimated 3.6·10¹¹ units, ~120 s."""
    return pass_work(analysis, batch, POOL_OFFSET_WORK) + (step_work(analysis) if build else 0)


def _too_much_work(what: str, work: int, allowed: int, steps: int, fix: str) -> ArchcalcError:
    """The work line. With recurrent steps it names them and the time they take (the line
    without them is unchanged)."""
    if not steps:
        return ArchcalcError(
            f"{what} is about {work:,} units of work (MACs + 10 per pooling offset + values "
            f"+ 50,000 a layer), more than the {allowed:,} allowed (~3·10⁹ a second)", fix=fix)
    return ArchcalcError(
        f"{what} is about {work:,} units of work, ~{_seconds(work)} here ({steps:,} "
        f"recurrent steps run one at a time), more than the {allowed:,} allowed "
        f"(~{_seconds(allowed)})", fix=fix)


def _seconds(work: int) -> str:
    """Work units as the time they take here: '60 s', '0.33 s'."""
    seconds = work / WORK_PER_SECOND
    return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


def refuse_long_check(analysis: Analysis, batch: int, what: str = "a check",
                      fix: str | None = None, build: bool = True) -> None:
    """A spec that fits in memory may still take hours (a 301×301 pool over 64×200×200 is
    2·10¹¹ operations; a GRU over 3·10⁶ steps is 6·10⁶ Python steps): refuse it before
    building, with the numbers. `what`/`fix` as refuse_if_over's; `build` as check_work's
    (False when the build's pass is the only one)."""
    work, allowed = check_work(analysis, batch, build), limit("MAX_CHECK_WORK")
    if work > allowed:
        steps = sum(n for _, n in recurrent_steps(analysis))
        shorter = "a shorter sequence (T) in the spec, " if steps else ""
        raise _too_much_work(
            f"{what} of {analysis.network.name} at batch {batch}", work, allowed, steps,
            (fix or f"{shorter}a smaller --batch or --input")
            + "; or raise the limit: ARCHCALC_MAX_CHECK_WORK=<larger number>")


# ---- trace's estimate ----------------------------------------------------------------------
# `archcalc trace` prints one example's forward and backward pass in float64 (batch 1). With
# --full every value becomes a Python float in a list and then a line of text: ~100 bytes each.
FULL_VALUE_BYTES = 100


def backward_bytes(memory: MemoryEstimate) -> int:
    """What a backward pass adds to a forward's estimate: the parameters' gradients and a
    copy of them (gradcheck's analytic copy; trace's --lr step), and the gradient of each
    kept activation."""
    return 2 * memory.param_bytes + memory.activation_bytes


def _smaller_trace(analysis: Analysis, memory: MemoryEstimate) -> str:
    """What to shrink in the spec: the layers when their parameters dominate, else the input."""
    if memory.param_bytes > memory.activation_bytes:
        return "fewer units (or a smaller vocab) in the spec"
    if recurrent_steps(analysis):
        return "a shorter sequence (T) in the spec"
    return "a smaller input in the spec"


def refuse_trace(analysis: Analysis, budget: int | None, full: bool = False,
                 lr: bool = False) -> MemoryEstimate:
    """One line before anything is allocated if a trace of `analysis` (float64, batch 1) is
    over the memory budget or MAX_CHECK_WORK. Its work: the forward pass as check counts it,
    the backward's (twice the MACs, the recurrent steps' backward overhead) and (`lr`) the
    forward after an --lr step. The same bound as check's: a trace is one example's pass, and the
    bound is about a machine's minutes, not the reader's patience (T = 100,000 steps, about
    7 s, is summarised per array unless --full)."""
    memory = estimate_memory(analysis, 1)
    # and the backward's scratch: as much as the largest layer keeps (the gradients of its
    # gates or columns, made from those arrays); measured peak of a 20,000-step GRU's trace
    # (tracemalloc): 14.9 MB, forward + backward_bytes alone 14.1 MB, with this 21 MB.
    itemsize = analysis.totals.dtype_bytes
    extra = (backward_bytes(memory)
             + max((row.activations for row in analysis.rows), default=0) * itemsize)
    if full:
        totals = analysis.totals
        extra += 2 * (totals.activations + totals.input_values) * FULL_VALUE_BYTES
    total = memory.total + extra
    name = analysis.network.name
    smaller = _smaller_trace(analysis, memory)
    if budget is not None and total > budget:
        raise ArchcalcError(
            f"a trace of {name} needs about {fmt_bytes(total)} in float64 (activations "
            f"{fmt_bytes(memory.activation_bytes)}, parameters {fmt_bytes(memory.param_bytes)}, "
            f"gradients{' and printed values' if full else ''} {fmt_bytes(extra)}), more than "
            f"the memory budget of {fmt_bytes(budget)}",
            fix=smaller + ("; without --full" if full else "") + "; or raise --memory-budget")
    # build's pass, the traced forward, its backward (twice the MACs), and with --lr one
    # more forward (J after the step). Measured: T = 100,000 (a bidirectional 4-unit GRU)
    # 7.2 s; estimated 2.1·10¹⁰ units, ~7 s.
    forwards = 3 if lr else 2
    work = (forwards * check_work(analysis, 1, build=False) + 2 * analysis.totals.macs
            + step_work(analysis, backward=True))
    allowed = limit("MAX_CHECK_WORK")
    if work > allowed:
        steps = sum(n for _, n in recurrent_steps(analysis))
        raise _too_much_work(f"a trace of {name}", work, allowed, steps,
                             f"{smaller}; or raise the limit: "
                             "ARCHCALC_MAX_CHECK_WORK=<larger number>")
    return memory


# ---- gradcheck's estimate ------------------------------------------------------------------
# Forward passes one checked entry costs at the least (five-point differences at two steps);
# halving the step adds two more, up to GRADCHECK_MAX_PASSES when it never converges.
GRADCHECK_PASSES = 6
GRADCHECK_MAX_PASSES = 22  # STEP 1e-3 halved down to MIN_STEP 1e-6: 10 levels
# Outputs gradcheck holds at once: the unperturbed one, the loss weights R, and one per
# offset tried for the entry being checked.
GRADCHECK_OUTPUTS = 2 + GRADCHECK_MAX_PASSES
GRADCHECK_LAYER_WORK = 50_000


@dataclass(frozen=True)
class GradcheckEstimate:
    """What `archcalc gradcheck` will hold and do, from the spec alone (float64)."""

    memory: MemoryEstimate  # the float64 forward at this batch, as `check` counts it
    extra_bytes: int        # gradients, their analytic copy, backward's arrays, kept outputs
    entries: int            # parameter and input entries checked (an upper estimate)
    work: int               # MACs, values and layer calls of the forward passes, at the most

    @property
    def total_bytes(self) -> int:
        return self.memory.total + self.extra_bytes

    @property
    def passes(self) -> int:
        """Forward passes at the most (an entry whose step never converges)."""
        return self.entries * GRADCHECK_MAX_PASSES


def estimate_gradcheck(analysis: Analysis, batch: int, samples: int | None) -> GradcheckEstimate:
    """`analysis` in float64 (analyze(..., dtype="float64")). Each parameter row is taken to
    have two arrays (weight and bias, γ and β), each checked at `samples` entries (None: all);
    the input at `samples` entries of its batch. Each entry costs GRADCHECK_PASSES to
    GRADCHECK_MAX_PASSES forward passes, each the network's MACs plus its activations for
    the batch, plus a fixed cost per layer call."""
    base = estimate_memory(analysis, batch)
    totals = analysis.totals
    itemsize = totals.dtype_bytes
    output_values = batch * prod(analysis.output_shape)
    extra = backward_bytes(base) + GRADCHECK_OUTPUTS * output_values * itemsize

    def checked(size: int, arrays: int) -> int:
        return size if samples is None else min(size, arrays * samples)

    entries = sum(checked(row.trainable_params, 2) for row in analysis.rows
                  if row.trainable_params)
    entries += checked(batch * totals.input_values, 1)
    # A layer's call costs ~20 µs whatever its size: as much as ~50,000 MACs here.
    per_pass = pass_work(analysis, batch)
    # At the most: batch norm over small maps halves the step to MIN_STEP (resnet18 at
    # 3x16x16, --samples 2: 94 s measured, 1.2·10¹¹ estimated).
    return GradcheckEstimate(base, extra, entries, entries * GRADCHECK_MAX_PASSES * per_pass)


def largest_gradcheck_batch(analysis: Analysis, samples: int | None, budget: int,
                            upto: int) -> int:
    """The largest batch below `upto` whose gradcheck estimate fits `budget` (0 if none)."""
    lo, hi = 0, upto - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_gradcheck(analysis, mid, samples).total_bytes <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def refuse_gradcheck(analysis: Analysis, batch: int, samples: int | None, budget: int | None,
                     max_work: int) -> GradcheckEstimate:
    """The estimate, or one line if it is over the memory budget or the work limit."""
    estimate = estimate_gradcheck(analysis, batch, samples)
    name = analysis.network.name
    if budget is not None and estimate.total_bytes > budget:
        fits = largest_gradcheck_batch(analysis, samples, budget, batch)
        hint = f"--batch {fits} fits" if fits else "even --batch 1 does not fit: a smaller --input"
        raise ArchcalcError(
            f"a gradcheck of {name} at batch {batch} needs about "
            f"{fmt_bytes(estimate.total_bytes)} in float64 ({estimate.memory.describe()}, "
            f"{fmt_bytes(estimate.extra_bytes)} of gradients and kept outputs), more than the "
            f"memory budget of {fmt_bytes(budget)}",
            fix=f"{hint}; or raise --memory-budget")
    if estimate.work > max_work:
        raise ArchcalcError(
            f"a gradcheck of {name} checks about {estimate.entries:,} entries × "
            f"up to {GRADCHECK_MAX_PASSES} forward passes of {estimate.work // max(estimate.passes, 1):,} "
            f"units each (MACs + values + 50,000 a layer"
            f"{' + recurrent steps' if recurrent_steps(analysis) else ''}) = {estimate.work:,}, "
            f"more than the {max_work:,} allowed (~3·10⁹ a second)",
            fix=f"{_fewer_samples(samples)}, a smaller --input or --batch; or "
                "raise the limit: ARCHCALC_MAX_GRADCHECK_WORK=<larger number>")
    return estimate


def _fewer_samples(samples: int | None) -> str:
    """The --samples advice for what was given: None is --samples 0, every entry."""
    if samples is None:
        return "a --samples above 0, e.g. --samples 5 (--samples 0 checks every entry)"
    if samples <= 1:  # there is no fewer: 0 means every entry
        return "a network with fewer parameters"
    return f"fewer than --samples {samples} (but not 0: it checks every entry)"


# ---- per-layer comparison ------------------------------------------------------------------


@dataclass
class LayerCheck:
    """One layer (or merge) as the calculator says and as the executor did.
    A side that has no layer of this name has None in its fields."""

    name: str
    type: str
    calculated_shape: tuple[int, ...] | None
    actual_shape: tuple[int, ...] | None
    calculated_params: tuple[int, int] | None  # (trainable, non-trainable)
    actual_params: tuple[int, int] | None
    predicted_bytes: int | None
    measured_bytes: int | None

    @property
    def problems(self) -> list[str]:
        if self.actual_shape is None:
            return ["no such layer in the executor's records"]
        if self.calculated_shape is None:
            return ["the executor ran a layer the calculator does not have"]
        found = []
        if self.calculated_shape != self.actual_shape:
            found.append(f"shape {fmt_shape(self.calculated_shape)} calculated, "
                         f"{fmt_shape(self.actual_shape)} actual")
        if self.calculated_params != self.actual_params:
            found.append(f"params {_params_text(self.calculated_params)} calculated, "
                         f"{_params_text(self.actual_params)} actual")
        if self.predicted_bytes != self.measured_bytes:
            found.append(f"activation bytes {self.predicted_bytes:,} predicted, "
                         f"{self.measured_bytes:,} measured")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def calculated_total(self) -> int | None:
        return sum(self.calculated_params) if self.calculated_params else None

    @property
    def actual_total(self) -> int | None:
        return sum(self.actual_params) if self.actual_params else None

    def as_dict(self) -> dict[str, Any]:
        def listed(shape):
            return list(shape) if shape is not None else None

        def part(params, i):
            return params[i] if params is not None else None

        return {
            "name": self.name, "type": self.type,
            "calculated_shape": listed(self.calculated_shape),
            "actual_shape": listed(self.actual_shape),
            "calculated_params": self.calculated_total, "actual_params": self.actual_total,
            "calculated_trainable_params": part(self.calculated_params, 0),
            "actual_trainable_params": part(self.actual_params, 0),
            "calculated_non_trainable_params": part(self.calculated_params, 1),
            "actual_non_trainable_params": part(self.actual_params, 1),
            "predicted_bytes": self.predicted_bytes, "measured_bytes": self.measured_bytes,
            "ok": self.ok, "problems": self.problems,
        }


def _params_text(params: tuple[int, int] | None) -> str:
    if params is None:
        return "none"
    return f"{sum(params):,} ({params[0]:,} trainable + {params[1]:,} non-trainable)"


def pair_by_name(rows: list[Any], records: list[Any]) -> list[tuple[Any | None, Any | None]]:
    """Align two name-ordered lists: (row, record) where the names match in order,
    (row, None) for a layer only the calculator has, (None, record) for one only the
    executor ran. A layer executed out of order shows as missing on one side and extra on
    the other, which is a disagreement too."""
    matcher = difflib.SequenceMatcher(None, [r.name for r in rows],
                                      [r.name for r in records], autojunk=False)
    pairs: list[tuple[Any | None, Any | None]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(rows[i1:i2], records[j1:j2]))
        else:
            pairs.extend((row, None) for row in rows[i1:i2])
            pairs.extend((None, rec) for rec in records[j1:j2])
    return pairs


def compare(rows: list[Row], records: Iterable[Any], batch: int,
            itemsize: int) -> list[LayerCheck]:
    checks = []
    for row, rec in pair_by_name(list(rows), list(records)):
        calc = row is not None
        done = rec is not None
        checks.append(LayerCheck(
            name=(row or rec).name,
            type=row.type if calc else str(getattr(rec, "type", "?")),
            calculated_shape=tuple(row.output_shape) if calc else None,
            actual_shape=tuple(int(v) for v in rec.output_shape) if done else None,
            calculated_params=(row.trainable_params, row.non_trainable_params) if calc else None,
            actual_params=(int(rec.trainable_params), int(rec.non_trainable_params))
            if done else None,
            predicted_bytes=row.activations * batch * itemsize if calc else None,
            measured_bytes=int(rec.kept_bytes) if done else None,
        ))
    return checks


# ---- the run -------------------------------------------------------------------------------


@dataclass
class CheckResult:
    name: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    seed: int
    layers: list[LayerCheck]
    predicted_activation_bytes: int       # input + kept outputs, whole batch
    measured_activation_bytes: int | None  # x.nbytes + Σ kept_bytes; None if nothing ran
    estimate: MemoryEstimate
    budget: int | None
    seconds: float = 0.0
    build_seconds: float = 0.0
    forward_seconds: float = 0.0
    predicted_input_bytes: int = 0
    input_bytes: int = 0                  # measured: x.nbytes
    executor_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.executor_error is None and all(c.ok for c in self.layers)
                and self.predicted_activation_bytes == self.measured_activation_bytes)

    @property
    def first_failure(self) -> LayerCheck | None:
        return next((c for c in self.layers if not c.ok), None)

    def verdict(self) -> str:
        where = f"{self.name} at {fmt_shape(self.input_shape)}, batch {self.batch}"
        if self.ok:
            return (f"✓ {where}: all {len(self.layers)} layers agree "
                    "(shapes, parameters, activation bytes)")
        first = self.first_failure
        first_text = f"first: {elide(first.name, 80)}: {'; '.join(first.problems)}" if first else ""
        if self.executor_error:
            return f"✗ {where}: the executor failed ({self.executor_error})" + (
                f"; {first_text}" if first else "")
        if first is None:
            return (f"✗ {where}: total activation bytes {self.predicted_activation_bytes:,} "
                    f"predicted, {self.measured_activation_bytes:,} measured")
        bad = sum(not c.ok for c in self.layers)
        return f"✗ {where}: {bad} of {len(self.layers)} layers disagree; {first_text}"

    def as_dict(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "name": self.name, "ok": self.ok,
            "input_shape": list(self.input_shape), "batch": self.batch, "dtype": self.dtype,
            "seed": self.seed,
            "layers": [c.as_dict() for c in self.layers],
            "seconds": round(self.seconds, 4),
            "build_seconds": round(self.build_seconds, 4),
            "forward_seconds": round(self.forward_seconds, 4),
            "predicted_activation_bytes": self.predicted_activation_bytes,
            "measured_activation_bytes": self.measured_activation_bytes,
            "predicted_input_bytes": self.predicted_input_bytes,
            "measured_input_bytes": self.input_bytes,
            "first_failure": first.name if first else None,
            "executor_error": self.executor_error,
            "estimated_memory_bytes": self.estimate.total,
            "memory_budget_bytes": self.budget,
            "verdict": self.verdict(),
        }


def _where(exc: BaseException) -> str:
    """'ValueError: ... (archcalc/nn/conv.py:88)': the innermost frame, for the report."""
    frames = traceback.extract_tb(exc.__traceback__)
    site = ""
    if frames:  # named from the package down, wherever it is installed
        parts = Path(frames[-1].filename).parts
        start = max((i for i, p in enumerate(parts) if p == "archcalc"), default=len(parts) - 1)
        site = f" ({'/'.join(parts[start:])}:{frames[-1].lineno})"
    message = exc.render() if isinstance(exc, ArchcalcError) else echo(exc)
    return f"{type(exc).__name__}: {message}{site}"


def check_input(network: Network, rng: np.random.Generator, batch: int,
                dtype: str) -> np.ndarray:
    """A seeded batch (batch, *input_shape): standard normal values, or token ids drawn
    uniformly from 0 … vocab − 1 when the network reads them with an embedding first."""
    first = next(network.leaves(), None)
    shape = (batch, *network.input_shape)
    if first is not None and first.kind == "embedding":
        return rng.integers(0, first.spec.vocab, shape).astype(np.dtype(dtype))
    return rng.standard_normal(shape, dtype=np.dtype(dtype))


def run_check(network: Network, batch: int = 1, seed: int = 0,
              memory_budget: int | None = None, dtype: str = "float32",
              prepare: Callable[[Any], None] | None = None) -> CheckResult:
    """Calculator vs executor on one network. `memory_budget` in bytes; None means
    DEFAULT_BUDGET_FRACTION of the available memory (no limit if that is unknown).
    `prepare(model)` runs right after the model is built (it loads other weights than the
    seeded random ones); an ArchcalcError it raises is the user's (a weights file that does not
    fit) and is raised, not recorded.
    Raises ArchcalcError for a spec the calculator rejects and for a run over the budget;
    an executor failure on a spec the calculator accepts is a disagreement, not a raise."""
    start = time.perf_counter()
    analysis = analyze(network, batch=batch, dtype=dtype)
    budget = memory_budget if memory_budget is not None else default_budget()
    estimate = refuse_if_over(analysis, batch, budget)
    refuse_long_check(analysis, batch)
    itemsize = DTYPE_BYTES[dtype]
    result = CheckResult(
        name=network.name, input_shape=tuple(network.input_shape), batch=batch, dtype=dtype,
        seed=seed, layers=[], estimate=estimate, budget=budget,
        predicted_activation_bytes=analysis.totals.activations * batch * itemsize,
        predicted_input_bytes=analysis.totals.input_values * batch * itemsize,
        measured_activation_bytes=None, warnings=list(analysis.warnings))
    records: list[Any] = []
    try:
        t0 = time.perf_counter()
        model = build(network, seed=seed, dtype=dtype)
        if prepare is not None:
            prepare(model)
        result.build_seconds = time.perf_counter() - t0
        # The batch comes from its own generator: the weights' draws stay those of `seed`.
        rng = np.random.default_rng([seed, 1])
        x = check_input(network, rng, batch, dtype)
        result.input_bytes = x.nbytes
        t1 = time.perf_counter()
        model.forward(x, training=False)
        result.forward_seconds = time.perf_counter() - t1
        records = list(model.records)
        result.measured_activation_bytes = x.nbytes + sum(int(r.kept_bytes) for r in records)
    except ArchcalcError:  # prepare's: weights that do not fit the spec
        raise
    except Exception as exc:  # an executor failure on a spec the calculator accepts
        result.executor_error = _where(exc)
    result.layers = compare(analysis.rows, records, batch, itemsize)
    result.seconds = time.perf_counter() - start
    return result
