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


class LazyGroup(AppGroup):
    """The top-level group: subcommands load from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"archcalc.cli.{COMMANDS[name]}")  # registers it on main
        return self.commands.get(name)


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
