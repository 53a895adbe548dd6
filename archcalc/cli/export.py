"""`archcalc export SPEC --onnx OUT.onnx --torch OUT.py`: the network for other frameworks.

--onnx writes an ONNX model (archcalc.exporters.onnx_export) with the executor's weights: a
--weights file, the model file's own weights (an .onnx or .keras SPEC), or else the seeded
random weights `check` and `train` start from. --torch writes a PyTorch module's source
(archcalc.exporters.torch_export) that loads --weights by default. Every file is complete or
absent: each is made whole in memory first, then written through a temporary file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from archcalc.cli import main
from archcalc.cli.common import SHAPE, memory_budget_option
from archcalc.errors import ArchcalcError
from archcalc.limits import echo

# archcalc.exporters.onnx_export's DEFAULT_OPSET and OPSETS, not imported here (it imports
# NumPy); tests/test_export_cli.py keeps them equal.
DEFAULT_OPSET, OPSET_RANGE = 17, (17, 21)


@main.command("export")
@click.argument("spec")
@click.option("--onnx", "onnx_out", default=None, metavar="OUT.onnx",
              help="Write an ONNX model (onnx.checker-valid; batch dimension 'N').")
@click.option("--torch", "torch_out", default=None, metavar="OUT.py",
              help="Write a PyTorch module (one Python file that needs only torch).")
@click.option("--weights", default=None, metavar="CKPT.npz",
              help="The weights to export (saved by train, or import --weights-out); "
                   "without it, the model file's own or seeded random ones.")
@click.option("--opset", type=click.IntRange(*OPSET_RANGE), default=DEFAULT_OPSET,
              show_default=True, help="ONNX operator set (17–21).")
@click.option("--input", "input_shape", type=SHAPE, default=None, metavar="CxHxW",
              help="Override the spec's input shape, e.g. 3x227x227.")
@click.option("--force", is_flag=True, help="Replace output files that exist.")
@memory_budget_option
def export(spec: str, onnx_out: str | None, torch_out: str | None, weights: str | None,
           opset: int, input_shape, force: bool, memory_budget: int | None) -> None:
    """Write SPEC as an ONNX model and/or a PyTorch module, with its weights.

    \b
    Examples:
      archcalc export lenet5 --onnx lenet5.onnx
      archcalc export lenet5 --onnx lenet5.onnx --weights runs/lenet5/checkpoint.npz
      archcalc export resnet18 --torch resnet18.py --weights resnet18.npz
      archcalc export my_net.yaml --onnx my_net.onnx --opset 20 --input 3x64x64
    """
    _check_targets(onnx_out, torch_out, force)
    from archcalc.spec import load
    network = load(spec, input_shape)
    files: list[tuple[str, bytes, str]] = []  # (path, contents, what the status line says)
    if onnx_out:
        _refuse_too_large(network, memory_budget)
        files.append((onnx_out, *_onnx_bytes(spec, network, weights, opset)))
    if torch_out:
        files.append((torch_out, *_torch_text(network, weights)))
    _write_all(files)
    for path, _, said in files:
        click.echo(f"{echo(network.name)}: wrote {echo(path)} ({said})")


def _check_targets(onnx_out: str | None, torch_out: str | None, force: bool) -> None:
    if not onnx_out and not torch_out:
        raise click.UsageError("give --onnx OUT.onnx, --torch OUT.py, or both")
    if onnx_out and torch_out and os.path.abspath(onnx_out) == os.path.abspath(torch_out):
        raise ArchcalcError(f"--onnx and --torch are the same file, {echo(onnx_out)}",
                            fix="give them different names")
    # Refused before the (possibly long) export: a user's file is never replaced unasked,
    # and a target that cannot be a file (a directory, a missing directory) is said at once.
    from archcalc.fileio import write_error
    for name, option in ((onnx_out, "--onnx"), (torch_out, "--torch")):
        if not name:
            continue
        target = Path(name)
        if target.is_dir():
            raise write_error(target, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
        if not Path(os.path.abspath(name)).parent.is_dir():
            raise write_error(target, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))
        if target.exists() and not force:
            raise ArchcalcError(f"{echo(name)} exists",
                                fix=f"pass --force to replace it, or choose another {option}")


def _refuse_too_large(network, memory_budget: int | None) -> None:
    """check's forecast of the build and one batch-1 forward pass, before either happens."""
    from archcalc.calc import analyze
    from archcalc.check import default_budget, refuse_if_over, refuse_long_check
    analysis = analyze(network, batch=1)
    budget = memory_budget if memory_budget is not None else default_budget()
    what = "an ONNX export (one forward pass)"
    fix = "a smaller --input, fewer units or a shorter T in the spec"
    refuse_if_over(analysis, 1, budget, what=what, fix=f"{fix}; or raise --memory-budget")
    refuse_long_check(analysis, 1, what=what, fix=fix, build=False)  # build's pass is the one


def _onnx_bytes(spec: str, network, weights: str | None, opset: int) -> tuple[bytes, str]:
    """The serialised ONNX model, and what its status line says."""
    try:
        import onnx  # noqa: F401  (an optional extra)
    except ImportError:
        raise ArchcalcError("exporting ONNX needs the onnx package",
                            fix="pip install 'archcalc[onnx]'") from None
    from archcalc.exporters.onnx_export import to_onnx
    from archcalc.nn.network import build

    model = build(network, seed=0)
    said = _load_weights(model, spec, weights)
    proto = to_onnx(model, opset=opset)
    params = sum(a.size for a in model.state_dict().values())
    return (proto.SerializeToString(),
            f"ONNX opset {opset}, {len(proto.graph.node):,} nodes, {params:,} weights: {said}")


def _load_weights(model, spec: str, weights: str | None) -> str:
    """Load --weights (every array of the spec, nothing else: strict) or the model file's
    own weights into `model`; says which weights it holds."""
    if weights is not None:
        from archcalc.nn.weights import load_weights
        load_weights(model, weights, strict=True)
        return echo(weights)
    from archcalc.importers import has_weights, load_with_weights, state_for, weights_requirement
    if not has_weights(spec):
        return "random (seed 0)"
    need = weights_requirement(spec)
    if need is not None:  # the architecture needed nothing more; say what the weights need
        return f"random (seed 0): the file's own need {need} (pip install {need})"
    _, table = load_with_weights(spec, tuple(model.network.input_shape))
    model.load_state_dict(state_for(model, table, spec), source=spec)
    return f"the file's own ({echo(spec)})"


def _torch_text(network, weights: str | None) -> tuple[bytes, str]:
    try:
        from archcalc.exporters.torch_export import torch_source
    except ImportError:
        raise ArchcalcError("this archcalc has no PyTorch exporter yet",
                            fix="update archcalc") from None
    text = torch_source(network, weights=weights)
    said = f"PyTorch module, loads {echo(weights)}" if weights else "PyTorch module"
    return text.encode("utf-8"), said


def _write_all(files: list[tuple[str, bytes, str]]) -> None:
    """Write every file to a temporary file beside it first, and rename them into place only
    when all are written: a write that fails (a full disk, a read-only directory) leaves
    every target as it was, the user's old files included."""
    from contextlib import ExitStack

    from archcalc.fileio import replacing
    with ExitStack() as stack:  # each replacing() renames on a clean exit, else removes
        for path, data, _ in files:
            stack.enter_context(replacing(Path(path))).write_bytes(data)
