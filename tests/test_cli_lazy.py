"""The CLI loads a command's module only when that command runs (DESIGN.md: start-up is a
feature). `archcalc summary` must not pay for NumPy, the executor or the trainer."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import archcalc.cli
import click

from archcalc.cli import COMMANDS, SHORT_HELP, main


def test_the_lazy_table_names_every_command_the_modules_register():
    for info in pkgutil.iter_modules(archcalc.cli.__path__):
        importlib.import_module(f"archcalc.cli.{info.name}")
    registered = {name: command.callback.__module__ for name, command in main.commands.items()}
    assert registered == {name: f"archcalc.cli.{module}" for name, module in COMMANDS.items()}


def _modules_after(*args: str) -> set[str]:
    """The archcalc and heavy modules a fresh interpreter has loaded after running the CLI."""
    code = ("import sys\nfrom archcalc.cli import main\n"
            "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    sys.stdout.flush()\n"
            "    print('\\n'.join(m for m in sys.modules if m.split('.')[0] in "
            "('archcalc', 'numpy', 'onnx')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stderr.split())


def test_summary_loads_neither_numpy_nor_the_executor_nor_other_commands():
    loaded = _modules_after("summary", "lenet5")
    assert "archcalc.cli.inspect" in loaded and "archcalc.calc.analyze" in loaded
    for module in ("numpy", "archcalc.nn", "archcalc.check", "archcalc.cli.train",
                   "archcalc.cli.check", "archcalc.cli.design", "archcalc.importers.onnx_import"):
        assert module not in loaded, module


def test_help_lists_every_command_without_loading_any():
    """`archcalc --help` lists the commands from SHORT_HELP: no command module, no NumPy, no
    pydantic spec models, not even rich (issue 14: --help under 0.1 s)."""
    loaded = _modules_after("--help")
    commands = {f"archcalc.cli.{module}" for module in COMMANDS.values()}
    assert not commands & loaded, sorted(commands & loaded)
    assert not any(m.startswith(("archcalc.spec", "archcalc.tables", "numpy")) for m in loaded)
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom archcalc.cli import main\n"
                           "main(['--help'])\nprint(sorted(sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert "'rich'" not in done.stdout and "'pydantic'" not in done.stdout


def test_the_short_help_table_is_each_commands_own_short_help():
    for info in pkgutil.iter_modules(archcalc.cli.__path__):
        importlib.import_module(f"archcalc.cli.{info.name}")
    assert set(SHORT_HELP) == set(COMMANDS)
    for name, command in main.commands.items():
        for limit in (10**6, 60, 45, 20):
            assert (click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit)
                    == command.get_short_help_str(limit)), (name, limit)


def test_the_lazy_command_list_is_clicks_own_list(monkeypatch):
    """The list --help prints from the table equals the one click prints from the loaded
    commands, at a wide and a narrow terminal."""
    for columns in ("120", "50"):
        monkeypatch.setenv("COLUMNS", columns)
        lazy = subprocess.run([sys.executable, "-m", "archcalc", "--help"], capture_output=True,
                              text=True, timeout=120).stdout
        code = ("import importlib, pkgutil, click, archcalc.cli\n"
                "from archcalc.cli import main\n"
                "for i in pkgutil.iter_modules(archcalc.cli.__path__):\n"
                "    importlib.import_module('archcalc.cli.' + i.name)\n"
                "ctx = click.Context(main, info_name='archcalc')\n"
                "f = ctx.make_formatter()\n"
                "click.Group.format_commands(main, ctx, f)\n"
                "print(f.getvalue(), end='')")
        eager = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120).stdout
        assert eager.startswith("Commands:") and eager in lazy, (columns, eager, lazy)


def test_version_loads_no_spec_language_and_no_command():
    """`archcalc --version` needs click alone: not pydantic's spec models (0.12 s), not a
    command's module (issue 14: start-up is a feature)."""
    loaded = _modules_after("--version")
    assert not any(m.startswith("archcalc.spec") for m in loaded), sorted(loaded)
    commands = {f"archcalc.cli.{module}" for module in COMMANDS.values()}
    assert not commands & loaded, sorted(commands & loaded)
