"""The `archcalc` command: thin click commands over the library.

Each command lives in its own module and is registered below. Commands parse options, call
the library, render, and set the exit code; an ArchcalcError becomes one line on stderr and
exit 1 (2 for bad usage, as click does), never a traceback.
"""

from __future__ import annotations

import importlib

import click

from archcalc import __version__
from archcalc.cli.common import AppGroup

# command name → the module (archcalc.cli.<module>) that registers it. A command's module is
# imported only when that command runs (or --help lists them all): `archcalc summary x.onnx`
# never loads NumPy's executor or the trainer. tests/test_cli_lazy.py keeps this table equal
# to what the modules register.
COMMANDS: dict[str, str] = {
    "list": "inspect", "summary": "inspect", "validate": "inspect", "schema": "inspect",
    "check": "check", "gradcheck": "gradcheck", "train": "train", "evaluate": "train",
    "compare": "design", "bottleneck": "design", "factorize": "design", "layer": "design",
    "sweep": "design", "memory": "design", "plot": "design", "report": "design",
    "import": "importcmd", "conventions": "conventions",
    "export": "export", "trace": "trace",
}


# command name → the first sentence of its help, for `archcalc --help`: listing the commands
# must not import them all (NumPy, the executor, the trainer: 0.4 s of a 0.5 s --help).
# tests/test_cli_lazy.py keeps each line equal to the command's own short help.
SHORT_HELP: dict[str, str] = {
    "list": "List the bundled specs by family: name, input, parameters, MACs, source.",
    "summary": "Per-layer shapes, parameters, MACs, activations and receptive fields, with "
               "totals.",
    "validate": "Check specs for CI: exit 0 when every spec is valid, else 1 with one line per "
                "problem.",
    "schema": "Print the JSON Schema (draft 2020-12) of the spec language, for editors and CI.",
    "check": "Prove the calculator on real arrays: build SPEC, run a forward pass on a seeded "
             "random batch, and compare every layer's shape, parameters and activation bytes.",
    "gradcheck": "Check the executor's backward pass against centred differences in float64.",
    "train": "Train SPEC with the NumPy executor and write history.json, metrics.json, "
             "checkpoint.npz and curves.png to --out.",
    "evaluate": "Test accuracy and confusion matrix of SPEC with the weights in CHECKPOINT (a "
                "checkpoint.npz or a weights .npz, or a run directory).",
    "compare": "Specs side by side: params, MACs, memory, depth, receptive field, dense share.",
    "bottleneck": "What each 1×1 reduction saves: MACs and params with it and without it.",
    "factorize": "A k×k convolution vs a stack of 3×3s and vs k×1 + 1×k, same receptive field.",
    "layer": "One layer's arithmetic, step by step: conv, pool or dense.",
    "sweep": "MACs and activation memory of SPEC at square inputs C×S×S, and where it stops "
             "fitting.",
    "memory": "Training memory per optimizer: weights + gradients + optimizer state + "
              "activations.",
    "plot": "Bars per layer: parameters, MACs and activation values, log scale (needs "
            "matplotlib).",
    "report": "A Markdown design report: comparison, bottleneck tables and folded summaries.",
    "import": "Turn a model file into an archcalc spec: ONNX (.onnx), Keras 3 (.keras) or a "
              "Keras model.to_json() file (.json).",
    "conventions": "Every peer's figures for SPEC, to the integer, and why each differs from "
                   "archcalc's.",
    "export": "Write SPEC as an ONNX model and/or a PyTorch module, with its weights.",
    "trace": "Print every number of one example's forward and backward pass: each layer's "
             "pre-activations (z) and activations (a), the loss, then every gradient (of each "
             "activation and each parameter) with the chain rule's factors, ∂J/∂a, ∂a/∂z, "
             "∂z/∂θ.",
}


class LazyGroup(AppGroup):
    """The top-level group: subcommands load from COMMANDS on first use; --help lists them
    from SHORT_HELP without loading any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"archcalc.cli.{COMMANDS[name]}")  # registers it on main
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list (same limit, same truncation), from SHORT_HELP for every
        command not yet loaded."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            else:
                text = click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archcalc")
def main() -> None:
    """Exact arithmetic for convolutional networks.

    \b
    Examples:
      archcalc list
      archcalc summary vgg16
      archcalc summary alexnet --input 3x224x224 --format json
      archcalc validate specs/*.yaml --strict
    """
