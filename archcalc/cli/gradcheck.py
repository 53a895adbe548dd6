"""`archcalc gradcheck SPEC`: numerical vs analytic gradients of every parameter, per layer."""

from __future__ import annotations

import math
import sys
import time

import click
from rich import box
from rich.table import Table

from archcalc.cli import main
from archcalc.cli.common import console, input_option, print_wide
from archcalc.nn.gradcheck import DEFAULT_TOLERANCE, gradcheck
from archcalc.spec import load


@main.command("gradcheck")
@click.argument("spec")
@input_option()
@click.option("--batch", type=click.IntRange(min=1), default=2, show_default=True,
              help="Examples in the random batch (batch norm needs 2 on flat inputs).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the weights, the input and the loss weights.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_TOLERANCE, show_default=True,
              help="Largest relative error that passes.")
@click.option("--samples", type=click.IntRange(min=0), default=20, show_default=True,
              help="Entries checked per array, chosen at random (0: every entry).")
def gradcheck_command(spec: str, input_shape, batch: int, seed: int, tolerance: float,
                      samples: int) -> None:
    """Check the executor's backward pass against centred differences in float64.

    Every parameter array (and the input) gets a row: the largest relative error between
    its analytic and numerical gradient over the checked entries. Each entry costs six or more
    forward passes, so give large networks a small --input.

    \b
    Examples:
      archcalc gradcheck lenet5
      archcalc gradcheck alexnet --input 3x67x67 --samples 5
      archcalc gradcheck my_net.yaml --samples 0 --tolerance 1e-7
    """
    network = load(spec, input_shape)
    out = console()
    shape = "×".join(map(str, network.input_shape))
    out.print(f"gradcheck {network.name}: input {batch}×{shape}, float64, seed {seed}, "
              f"{'every entry' if samples == 0 else f'up to {samples} entries per array'}")
    if batch * math.prod(network.input_shape) > 100_000:
        out.print("[dim]each checked entry costs six or more float64 forward passes at this size; "
                  "a smaller --input (or --samples) is faster[/dim]")
    start = time.perf_counter()
    with out.status("comparing gradients…"):
        results = gradcheck(network, batch=batch, seed=seed, tolerance=tolerance,
                            samples=samples or None)
    seconds = time.perf_counter() - start
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for title, justify in (("Layer", "left"), ("Param", "left"), ("Checked", "right"),
                           ("Kinks skipped", "right"), ("Max rel. error", "right"), ("", "center")):
        table.add_column(title, justify=justify, no_wrap=True)
    failed = []
    for r in results:
        if not r.ok:
            failed.append(r)
        table.add_row(r.layer, r.param, f"{r.checked}/{r.size}", str(r.skipped),
                      f"{r.error:.2e}", "✓" if r.ok else "✗")
    print_wide(table)
    if failed:
        first = failed[0]
        why = ("every checked entry crossed a kink" if first.checked == 0
               else f"relative error {first.error:.2e} ≥ {tolerance:g}")
        out.print(f"✗ {len(failed)} of {len(results)} arrays fail; first: "
                  f"{first.layer}.{first.param} ({why}) [{seconds:.1f} s]")
        sys.exit(1)
    out.print(f"✓ all {len(results)} arrays agree within {tolerance:g} [{seconds:.1f} s]")
