"""`archcalc check SPEC`: the calculator's numbers next to a real forward pass, layer by layer.

Exit 0 when every layer agrees, 1 on any disagreement (the verdict names the first layer
that differs) and on a spec the calculator rejects or a run over the memory budget.
"""

from __future__ import annotations

import json
from typing import Any

import click

from archcalc.calc.shapes import fmt_shape
from archcalc.check import CheckResult, LayerCheck, fmt_bytes, run_check
from archcalc.cli import main
from archcalc.cli.common import (SEED, input_option, memory_budget_option, plain, print_wide,
                                 wide_option)
from archcalc.limits import echo
from archcalc.spec import load
from archcalc.tables import Grid

@main.command("check")
@click.argument("spec")
@input_option()
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images in the random batch.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the weights and of the random batch.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True, help="Precision of the executor's arrays.")
@memory_budget_option
@click.option("--weights", "weights", default=None, metavar="PATH.npz",
              help="Run on these weights (saved by train or import --weights-out) instead "
                   "of seeded random ones. An .onnx SPEC runs on its own weights unasked.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@wide_option
@click.pass_context
def check_command(ctx: click.Context, spec: str, input_shape: tuple[int, ...] | None,
                  batch: int, seed: int, dtype: str, memory_budget: int | None,
                  weights: str | None, fmt: str) -> None:
    """Prove the calculator on real arrays: build SPEC, run a forward pass on a seeded
    random batch, and compare every layer's shape, parameters and activation bytes.

    \b
    Examples:
      archcalc check lenet5
      archcalc check vgg16 --batch 2
      archcalc check resnet50 --input 3x128x128 --format json
      archcalc check resnet18.onnx          (the file's own weights)
      archcalc check model.keras            (its own weights, with h5py installed)
    """
    network, state_of, said = _network_and_weights(spec, input_shape, weights)
    source = weights or spec

    def load_weights(model) -> None:  # a file that does not fit is one line, not a ✗
        model.load_state_dict(state_of(model), source=source)

    result = run_check(network, batch=batch, seed=seed, memory_budget=memory_budget,
                       dtype=dtype, prepare=load_weights if state_of is not None else None)
    if fmt == "json":
        out = result.as_dict()
        out["weights"] = said or f"random (seed {seed})"
        click.echo(json.dumps(out, indent=2))
    else:
        if said:
            click.echo(plain(f"weights: {said}"))
        render(result)
    ctx.exit(0 if result.ok else 1)


def _network_and_weights(spec: str, input_shape, weights: str | None):
    """(network, a function model → state to load or None, the line saying which weights)."""
    from archcalc.importers import (has_weights, load_with_weights, state_for,
                                    weights_requirement)
    if weights is not None:
        from archcalc.nn.weights import read_npz
        state = read_npz(weights)              # before the run: a bad file is one line
        return load(spec, input_shape), (lambda model: state), f"{echo(weights)}"
    if has_weights(spec):
        need = weights_requirement(spec)
        if need is not None:                   # the architecture needs nothing more
            return (load(spec, input_shape), None,
                    f"random: the file's own need {need} (pip install {need})")
        network, table = load_with_weights(spec, input_shape)
        count = sum(len(arrays) for arrays in table.values())
        return (network, (lambda model: state_for(model, table, spec)),
                f"the file's own ({echo(spec)}, {count:,} arrays)")
    return load(spec, input_shape), None, None


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _shape(shape: tuple[int, ...] | None) -> str:
    return fmt_shape(shape) if shape is not None else "—"


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "—"


def _row(check: LayerCheck) -> list[Any]:
    return [check.name, _shape(check.calculated_shape), _shape(check.actual_shape),
            _count(check.calculated_total), _count(check.actual_total),
            _count(check.predicted_bytes), _count(check.measured_bytes), _mark(check.ok)]


def build_table(result: CheckResult) -> Grid:
    """One row per layer, the input first and the totals last, so the byte columns sum
    to the totals (as torchinfo's tables do). The style of every table (a Grid: names print
    as written); a narrow terminal hides the executor's columns (each row's ✓ stays)."""
    shape = fmt_shape(result.input_shape)
    ran = result.measured_activation_bytes is not None
    rows = [["input", shape, shape if ran else "—", "", "", f"{result.predicted_input_bytes:,}",
             _count(result.input_bytes) if ran else "—", ""]]
    rows += [_row(check) for check in result.layers]
    calc_total = sum(c.calculated_total or 0 for c in result.layers)
    actual_total = sum(c.actual_total or 0 for c in result.layers)
    rows.append(["total", "", "", f"{calc_total:,}", f"{actual_total:,}",
                 f"{result.predicted_activation_bytes:,}",
                 _count(result.measured_activation_bytes), _mark(result.ok)])
    failed = {index + 1: "bold red" for index, check in enumerate(result.layers) if not check.ok}
    return Grid(f"{result.name} · input {shape} · batch {result.batch} · {result.dtype} · "
                f"seed {result.seed}",
                ["layer", "calculated shape", "actual shape", "calc params", "actual params",
                 "predicted bytes", "measured bytes", ""], rows, ruled={len(rows) - 1},
                styles=failed, drop=[2, 4, 6])


def render(result: CheckResult) -> None:
    # The lines after the table wrap on a terminal and stay whole in a pipe (print_wide's
    # console); plain(): names in warnings and the verdict print as written.
    out = print_wide(build_table(result))
    for warning in result.warnings:
        out.print(plain(f"warning: {warning}"))
    out.print(plain(f"seconds: {result.seconds:.2f} (build {result.build_seconds:.2f}, "
                    f"forward {result.forward_seconds:.2f}); memory estimate "
                    f"{fmt_bytes(result.estimate.total)}"
                    + (f" of a {fmt_bytes(result.budget)} budget" if result.budget else "")))
    out.print(plain(result.verdict()))
