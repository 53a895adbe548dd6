"""`archcalc import MODEL --out model.yaml`: a model file (ONNX, Keras) written as a spec.

The importer gives the raw spec mapping every command already takes (archcalc.importers);
this command validates and analyses it like any spec, then writes it as readable YAML
(archcalc.importers.write), so that the network can be read, edited and versioned.
"""

from __future__ import annotations

import errno
import os

from pathlib import Path

import click

from archcalc.cli import main
from archcalc.cli.common import SHAPE, print_lines
from archcalc.errors import ArchcalcError
from archcalc.fileio import write_error
from archcalc.importers import check_partial, has_weights
from archcalc.limits import echo


@main.command("import")
@click.argument("model")
@click.option("--out", "out", required=True, metavar="FILE.yaml",
              help="Where to write the spec (YAML).")
@click.option("--input", "input_shape", type=SHAPE, default=None, metavar="CxHxW",
              help="The input shape, for a model whose height and width are dynamic (or to "
                   "replace the model's own), e.g. 3x224x224.")
@click.option("--weights-out", default=None, metavar="FILE.npz",
              help="Also write the model's weights (.onnx files) as an archcalc weights file, "
                   "for `check --weights` and `train --weights`.")
@click.option("--partial", is_flag=True,
              help="An .onnx model with nodes archcalc cannot express: import the network up "
                   "to the first of them (the last whole sequence or merge before it) and say "
                   "where it stopped, instead of failing.")
@click.option("--force", is_flag=True, help="Replace --out (and --weights-out) if they exist.")
def import_model(model: str, out: str, input_shape, weights_out: str | None,
                 partial: bool, force: bool) -> None:
    """Turn a model file into an archcalc spec: ONNX (.onnx), Keras 3 (.keras) or a Keras
    model.to_json() file (.json).

    Prints one line (layers, parameters, MACs) and writes the spec to --out; every command
    that takes SPEC also reads the model file directly.

    \b
    Examples:
      archcalc import resnet18.onnx --out resnet18.yaml
      archcalc import model.onnx --out model.yaml --input 3x224x224
      archcalc import mnist.keras --out mnist.yaml
      archcalc import resnet18.onnx --out resnet18.yaml --weights-out resnet18.npz
      archcalc import detector.onnx --out backbone.yaml --partial
    """
    from archcalc.calc import analyze
    from archcalc.fileio import replacing
    from archcalc.importers.write import to_yaml
    from archcalc.spec import from_dict

    target = Path(out)
    if weights_out and os.path.abspath(weights_out) == os.path.abspath(out):
        raise ArchcalcError(f"--out and --weights-out are the same file, {echo(out)}: the spec "
                            "would overwrite the weights", fix="give them different names")
    # Refused before the (possibly long) import: the user's files are never replaced unasked,
    # and both files go into directories that exist (neither is made on the way).
    for name, option in ((out, "--out"), (weights_out, "--weights-out")):
        if name and Path(name).exists() and not Path(name).is_dir() and not force:
            raise ArchcalcError(f"{echo(name)} exists",
                                fix=f"pass --force to replace it, or choose another {option}")
        if name and not Path(os.path.abspath(name)).parent.is_dir():
            raise write_error(Path(name), FileNotFoundError(errno.ENOENT,
                                                            os.strerror(errno.ENOENT)))
    if weights_out and not has_weights(model):
        raise ArchcalcError(f"--weights-out reads the weights of .onnx and .keras files, not "
                            f"of {echo(model)}", fix="leave --weights-out out for this file")
    if partial:
        check_partial(model)
    raw, display, table = read_raw(model, input_shape, with_weights=bool(weights_out),
                                   partial=partial)
    try:
        network = from_dict(raw, file=display, input_shape=input_shape)
    except ArchcalcError as exc:
        raise exc.located(file=display) from None
    analysis = analyze(network)
    text = to_yaml(raw)
    if weights_out:  # every array is checked against the built network before anything is written
        from archcalc.importers import imported_weights, write_weights_npz
        write_weights_npz(weights_out, imported_weights(network, table, display), source=display)
    with replacing(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    unreadable = _read_back(text, out, input_shape)
    totals = analysis.totals
    layers = sum(1 for _ in network.leaves())
    # Wrapped at spaces on a terminal; one line in a pipe, where a script reads it.
    print_lines([f"{echo(display)}: {layers:,} layers, {totals.params:,} params "
                 f"({totals.trainable_params:,} trainable), {totals.macs:,} MACs at "
                 f"{'×'.join(map(str, network.input_shape))}; wrote {echo(out)}"
               + (f" and {echo(weights_out)}" if weights_out else "")])
    if unreadable:
        click.echo(f"warning: {unreadable}", err=True)
    if partial:
        from archcalc.importers.onnx_import import partial_note
        note = partial_note(raw)
        if note:
            click.echo(f"note: {note}")


def _read_back(text: str, out: str, input_shape: tuple[int, ...] | None) -> str | None:
    """None when the written spec loads as a spec file (its size, YAML values and depth
    within the limits a spec file has); else why not, and how to read it anyway. The model
    file itself is not bound by those limits, so a very large network imports but its YAML
    may need a raised limit."""
    from archcalc.spec.load import loads
    try:
        loads(text, file=out, input_shape=input_shape)
    except ArchcalcError as exc:
        return (f"{echo(out)} was written, but reading it back as a spec fails: "
                f"{exc.message}" + (f" ({exc.fix})" if exc.fix else "")
                + "; the model file itself is not bound by a spec file's limits")
    return None


def read_raw(ref: str, input_shape: tuple[int, ...] | None, with_weights: bool = False,
             partial: bool = False) -> tuple[dict, str, dict | None]:
    """The raw spec mapping of the model file `ref`, the name errors give it, and (an .onnx
    file, with_weights) its weights by layer name. partial: an .onnx file (checked by the
    command) cut before its first unsupported node."""
    from archcalc.importers import from_keras_json, is_keras_json, is_model_file, read_model
    from archcalc.spec.load import decode, locate, read_bounded
    from archcalc.spec.yamlio import parse_text

    path = locate(ref)
    display = ref
    try:
        if with_weights:  # a file that holds its weights (checked by the command)
            from archcalc.importers import read_with_weights
            options = {"partial": True} if partial else {}  # an .onnx file (checked too)
            raw, table = read_with_weights(path, display, input_shape, **options)
            return raw, display, table
        if is_model_file(path):
            return read_model(path, display, input_shape, partial), display, None
        if path.suffix.lower() == ".json":
            raw = parse_text(decode(read_bounded(path, ref, "MAX_MODEL_BYTES")), json_mode=True)
            if is_keras_json(raw):
                return from_keras_json(raw, display, input_shape), display, None
            raise ArchcalcError("a JSON file that is not a Keras model.to_json() document",
                                fix="an archcalc spec needs no import: give it to any "
                                    "command as it is")
    except ArchcalcError as exc:
        raise exc.located(file=display) from None
    raise ArchcalcError("not a model file archcalc can import", file=display,
                        fix="give an .onnx, .keras or Keras .json file (a .yaml spec needs "
                            "no import)")
