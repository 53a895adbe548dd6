"""The executor must never import the calculator (or the checker that joins the two):
otherwise `archcalc check` would compare the calculator with itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import archcalc.nn

FORBIDDEN = ("archcalc.calc", "archcalc.check")
NN_DIR = Path(archcalc.nn.__file__).parent


def imported_modules(source: str) -> set[str]:
    """Every absolute module name an `import` or `from ... import` statement names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.add("." * node.level + (node.module or ""))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def forbidden(names: set[str]) -> list[str]:
    bad = []
    for name in names:
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            bad.append(name)
        # relative imports reaching out of archcalc.nn: "..calc", "..check"
        if name.startswith("..") and name.lstrip(".").split(".")[0] in ("calc", "check"):
            bad.append(name)
        # "from archcalc import calc"
        if name in ("archcalc.calc", "archcalc.check"):
            bad.append(name)
    return bad


def test_the_scanner_sees_every_form():
    source = ("import archcalc.calc\nfrom archcalc.calc.shapes import Dim\nfrom archcalc import check\n"
              "from ..calc import analyze\nimportlib.import_module('archcalc.calc')\n")
    assert len(set(forbidden(imported_modules(source)))) >= 5
    assert forbidden(imported_modules("import numpy as np\nfrom archcalc.spec import load\n")) == []


def test_no_module_of_archcalc_nn_imports_the_calculator():
    files = sorted(NN_DIR.rglob("*.py"))
    assert len(files) >= 8  # the package is really there
    for path in files:
        bad = forbidden(imported_modules(path.read_text(encoding="utf-8")))
        assert not bad, f"{path.name} imports {bad}"


def test_importing_archcalc_nn_loads_no_calculator_module():
    modules = ", ".join(f"'{p.stem}'" for p in sorted(NN_DIR.glob("*.py")) if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        "import archcalc.nn\n"
        f"for name in [{modules}]:\n"
        "    importlib.import_module('archcalc.nn.' + name)\n"
        "from archcalc.nn import build\n"
        "from archcalc.spec import loads\n"
        "m = build(loads('name: t\\ninput: [1, 4, 4]\\nlayers: [{conv: {filters: 2, kernel: 3}}, relu]\\n'))\n"
        "bad = sorted(n for n in sys.modules if n.startswith(('archcalc.calc', 'archcalc.check')))\n"
        "print('LOADED:' + ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED:" in out.stdout
    assert out.stdout.strip().split("LOADED:")[1] == "", out.stdout
