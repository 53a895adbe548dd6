"""`archcalc gradcheck SPEC`: numerical vs analytic gradients of every parameter, per layer."""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from archcalc.calc import analyze
from archcalc.cli import main
from archcalc.cli.common import (SEED, FiniteFloatRange, console, input_option,
                                 memory_budget_option, plain, print_wide, wide_option)
from archcalc.nn import gradcheck as gradcheck_module
from archcalc.nn.gradcheck import DEFAULT_TOLERANCE, gradcheck
from archcalc.check import check_input, default_budget, refuse_gradcheck
from archcalc.limits import MAX_GRADCHECK_BATCH, limit
from archcalc.spec import load
from archcalc.tables import Grid



@contextmanager
def entry_progress() -> Iterator[None]:
    """A progress bar on stderr, one array at a time, ticked per checked entry; only on a
    terminal (a pipe or a log gets nothing extra).

    archcalc.nn.gradcheck has no progress hook, so this wraps its per-array function for the
    length of one run and counts the calls to that array's `numerical` (an instance attribute,
    so only this run's loss object is touched); the wrapping is undone on the way out."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    original = gradcheck_module._check_array
    # markup=False: the description holds a layer name, printed as written
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)
    arrays = 0

    def check_array(loss, array, analytic, samples, rng, layer, param, *rest):
        nonlocal arrays
        arrays += 1
        entries = array.size if samples is None else min(samples, array.size)
        task = bar.add_task("", total=entries)
        bar.update(task, description=f"array {arrays}: {layer}.{param}")
        numerical = loss.numerical

        def counted(*args, **kwargs):
            try:
                return numerical(*args, **kwargs)
            finally:
                bar.advance(task)

        loss.numerical = counted
        try:
            return original(loss, array, analytic, samples, rng, layer, param, *rest)
        finally:
            del loss.numerical  # back to the class's method
            bar.remove_task(task)

    gradcheck_module._check_array = check_array
    try:
        with bar:
            yield
    finally:
        gradcheck_module._check_array = original


@main.command("gradcheck")
@click.argument("spec")
@input_option()
@click.option("--batch", type=click.IntRange(1, MAX_GRADCHECK_BATCH), default=2, show_default=True,
              help="Examples in the random batch (batch norm needs 2 on flat inputs).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seeds the weights, the input and the loss weights.")
@click.option("--tolerance", type=FiniteFloatRange(0, 1, min_open=True),
              default=DEFAULT_TOLERANCE, show_default=True,
              help="Largest relative error that passes.")
@click.option("--samples", type=click.IntRange(min=0), default=20, show_default=True,
              help="Entries checked per array, chosen at random (0: every entry).")
@memory_budget_option
@wide_option
def gradcheck_command(spec: str, input_shape, batch: int, seed: int, tolerance: float,
                      samples: int, memory_budget: int | None) -> None:
    """Check the executor's backward pass against centred differences in float64.

    Every parameter array (and the input) gets a row: the largest relative error between
    its analytic and numerical gradient over the checked entries. Each entry costs six or more
    forward passes, so give large networks a small --input and a few --samples. The memory
    (--memory-budget) and the forward passes (ARCHCALC_MAX_GRADCHECK_WORK, about half a
    minute's work) are estimated first and a run over either is refused with the numbers.
    On a terminal a progress bar shows the array being checked.

    \b
    Examples (each a second or two):
      archcalc gradcheck lenet5
      archcalc gradcheck lenet5 --samples 5 --tolerance 1e-7
      archcalc gradcheck lenet5 --batch 4 --seed 7
    """
    network = load(spec, input_shape)
    # The calculator rejects a spec whose shapes do not work before anything is printed or
    # built, with the same line as every other command (the executor would say it later).
    # Its float64 figures bound the run before anything is allocated: memory (the budget)
    # and forward passes (MAX_GRADCHECK_WORK), each refused with the numbers.
    analysis = analyze(network, batch=batch, dtype="float64")
    budget = memory_budget if memory_budget is not None else default_budget()
    refuse_gradcheck(analysis, batch, samples or None, budget, limit("MAX_GRADCHECK_WORK"))
    out = console()
    shape = "×".join(map(str, network.input_shape))
    out.print(plain(f"gradcheck {network.name}: input {batch}×{shape}, float64, seed {seed}, "
                    f"{'every entry' if samples == 0 else f'up to {samples} entries per array'}"))
    if batch * math.prod(network.input_shape) > 100_000:
        out.print(Text("each checked entry costs six or more float64 forward passes at this "
                       "size; a smaller --input (or --samples) is faster", style="dim"))
    start = time.perf_counter()
    with entry_progress():
        # check's input: standard normal values, or token ids for an embedding spec
        results = gradcheck(network, batch=batch, seed=seed, tolerance=tolerance,
                            samples=samples or None,
                            draw_input=lambda rng: check_input(network, rng, batch, "float64"))
    seconds = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    # A Grid, so a narrow terminal hides the counts before cutting a layer's name.
    print_wide(Grid("", ["Layer", "Param", "Checked", "Kinks skipped", "Max rel. error", ""],
                    [[r.layer, r.param, f"{r.checked}/{r.size}", str(r.skipped),
                      f"{r.error:.2e}", "✓" if r.ok else "✗"] for r in results],
                    left={1}, drop=[3, 2],
                    styles={i: "bold red" for i, r in enumerate(results) if not r.ok}))
    if gradcheck_module.reads_token_ids(network):
        out.print(Text("the input is token ids (drawn from 0 … vocab − 1), which have no "
                       "gradient: no (input) row", style="dim"))
    if failed:
        first = failed[0]
        why = ("every checked entry crossed a kink" if first.checked == 0
               else f"relative error {first.error:.2e} ≥ {tolerance:g}")
        out.print(plain(f"✗ {len(failed)} of {len(results)} arrays fail; first: "
                        f"{first.layer}.{first.param} ({why}) [{seconds:.1f} s]"))
        sys.exit(1)
    out.print(plain(f"✓ all {len(results)} arrays agree within {tolerance:g} [{seconds:.1f} s]"))
