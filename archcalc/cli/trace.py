"""`archcalc trace SPEC --input VALUES [--target VALUES]`: every number of one forward and
backward pass (archcalc.trace), as text lines a student can check or as JSON for programs.
"""

from __future__ import annotations

import json

import click

from archcalc.cli import main
from archcalc.cli.common import SEED, FiniteFloatRange, memory_budget_option, print_lines
from archcalc.errors import ArchcalcError
from archcalc.limits import echo


@main.command("trace")
@click.argument("spec")
@click.option("--weights", default=None, metavar="FILE",
              help="The weights: a YAML/JSON file {layer: {param: nested lists}} or an "
                   "archcalc .npz. Default: the file <spec>.weights.yml beside the spec if "
                   "there is one (the bundled backprop_example has it), else seeded random "
                   "weights.")
@click.option("--input", "input_values", required=True, metavar="VALUES",
              help="The example: numbers separated by commas (as many as the spec's input, "
                   "C order for C×H×W), a .json/.yaml/.txt/.npy file of them, or 'random'.")
@click.option("--target", default=None, metavar="VALUES",
              help="What the output should be: one value per output, or one class label. "
                   "Without it the trace stops after the forward pass.")
@click.option("--loss", default="half_sse", show_default=True, metavar="NAME",
              help="The loss: half_sse (½·Σ(t − a)², the notes' worked example), mse, mae, "
                   "bce, cross_entropy or hinge (as `archcalc train --loss`).")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=None,
              metavar="RATE", help="Also show one gradient step θ − RATE·∂J/∂θ and J after it.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of random weights, of --input random and of dropout masks.")
@click.option("--full", is_flag=True,
              help="Print every value; by default an array of more than 256 values is "
                   "summarised (shape, min, max, mean).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@memory_budget_option
def trace_command(spec: str, weights: str | None, input_values: str, target: str | None,
                  loss: str, lr: float | None, seed: int, full: bool, fmt: str,
                  memory_budget: int | None) -> None:
    """Print every number of one example's forward and backward pass: each layer's
    pre-activations (z) and activations (a), the loss, then every gradient (of each
    activation and each parameter) with the chain rule's factors, ∂J/∂a, ∂a/∂z, ∂z/∂θ.

    Runs in float64, batch 1, in training mode (as a training step would). Its memory
    (--memory-budget) and work (ARCHCALC_MAX_CHECK_WORK, as `check`'s) are estimated from
    the spec first, and a trace over either is refused before anything is allocated.

    \b
    Examples:
      archcalc trace backprop_example --input 0.05,0.10 --target 0.01,0.99 --lr 0.5
      archcalc trace backprop_example --input 0.05,0.10 --format json
      archcalc trace my_mlp.yaml --weights my_mlp.weights.yml --input 1,0 --target 1
      archcalc trace lenet5 --input random --target 3 --loss cross_entropy
    """
    from archcalc.spec import load
    from archcalc.spec.load import locate
    from archcalc.trace import beside, read_values, run_trace

    network = load(spec)
    _refuse_too_large(network, memory_budget, full, lr is not None)
    if weights is None:
        found = beside(locate(spec))
        weights = str(found) if found is not None else None
        said = echo(str(found)) if found is not None else None
    else:
        said = echo(weights)
    size = 1
    for dim in network.input_shape:
        size *= dim
    if input_values.strip().lower() == "random":
        values = _random_input(network, seed)
    else:
        values, _ = read_values(input_values, "--input", size, seed)
    wanted = None
    if target is not None:
        if target.strip().lower() == "random":
            raise ArchcalcError("--target random: a target is what the output should be",
                                fix="give the target values, or one class label")
        wanted, _ = read_values(target, "--target", 0, seed)
    result = run_trace(network, input_values=values, weights=weights, weights_said=said,
                       target=wanted, loss=loss, lr=lr, seed=seed, full=full)
    data = result.as_dict()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    from archcalc.trace_report import lines
    print_lines(lines(data))


def _refuse_too_large(network, memory_budget: int | None, full: bool, lr: bool) -> None:
    """check's forecast, from the spec alone: one line before anything is allocated."""
    from archcalc.calc import analyze
    from archcalc.check import default_budget, refuse_trace
    budget = memory_budget if memory_budget is not None else default_budget()
    refuse_trace(analyze(network, batch=1, dtype="float64"), budget, full, lr)


def _random_input(network, seed: int):
    """--input random: check's input (standard normal values, or token ids in 0 … vocab − 1
    for an embedding spec), drawn from the seed's own generator, flat (C order)."""
    import numpy as np

    from archcalc.check import check_input
    return check_input(network, np.random.default_rng([seed, 2]), 1, "float64").reshape(-1)
