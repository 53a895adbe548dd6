"""The `archcalc` command: thin click commands over the library.

Each command lives in its own module and is registered below. Commands parse options, call
the library, render, and set the exit code; an ArchcalcError becomes one line on stderr and
exit 1 (2 for bad usage, as click does), never a traceback.
"""

from __future__ import annotations

import click

from archcalc import __version__
from archcalc.cli.common import AppGroup


@click.group(cls=AppGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


# Register commands (one module each).
from archcalc.cli import inspect  # noqa: E402,F401
from archcalc.cli import check  # noqa: E402,F401
from archcalc.cli import train  # noqa: E402,F401
from archcalc.cli import gradcheck  # noqa: E402,F401
from archcalc.cli import design  # noqa: E402,F401
from archcalc.cli import importcmd  # noqa: E402,F401
