"""Design commands: compare, bottleneck, factorize, layer, sweep, memory, plot, report.

Thin: parse options, call archcalc.calc (compare, bottleneck, factorize, explain, whatif),
render with archcalc.design_report. Every numeric option has a range that click checks
(--kernel 0 is a usage error: one line, exit 2, the range in the message); what depends on
the input (a kernel larger than it, a --reduce that does not reduce) is checked by the
library: one `error:` line and exit 1, like every other user mistake.
"""

from __future__ import annotations

import json
import re
from functools import partial

import click

from archcalc.calc import analyze
from archcalc.calc.bottleneck import adhoc, find
from archcalc.calc.compare import compare as compare_specs
from archcalc.calc.coverage import GRID_MAX, coverage, coverage_lines, layer_dims
from archcalc.calc.explain import explain_conv, explain_dense, explain_pool
from archcalc.calc.factorize import factorize as factorize_conv
from archcalc.calc.whatif import (OPTIMIZER_COPIES, check_work, parse_sizes,
                                  smallest_fit, sweep as sweep_sizes, training_memory)
from archcalc.cli import main
from archcalc.cli.common import (COUNT, ParsedParam, batch_option, console, dtype_option,
                                 fitting, input_option, print_lines, print_wide, wide_option)
from archcalc.design_report import (Grid, bottleneck_grid, case_lines, compare_grid,
                                    design_report, factorize_grid, memory_grid, sweep_grid)
from archcalc.errors import ArchcalcError
from archcalc.fileio import replacing
from archcalc.limits import MAX_SIZE, echo, limit
from archcalc.spec import load, parse_shape

FORMATS = click.Choice(["table", "json", "markdown"])
format_option = click.option("--format", "fmt", type=FORMATS, default="table",
                             show_default=True, help="Output format.")
# An ad hoc input is parsed by the library (a bad one is exit 1, not a usage error).
adhoc_input = click.option("--input", "input_text", metavar="CxHxW",
                           help="The input the layer(s) see, e.g. 192x28x28.")
# Where the input is the whole question (layer, factorize), leaving it out is a usage error
# (exit 2), like any other missing required option.
required_input = click.option("--input", "input_text", metavar="CxHxW", required=True,
                              help="The input the layer(s) see, e.g. 192x28x28.")


def _show(grid: Grid, fmt: str, data: dict, extra: list[str] | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt == "markdown":
        click.echo(grid.markdown())
        for line in extra or []:
            click.echo(f"    {line}")
    else:
        print_wide(grid)
        print_lines(extra or [])


def _need_input(text: str | None, command: str) -> tuple[int, ...]:
    if not text:
        raise ArchcalcError(f"{command} needs --input CxHxW", fix="e.g. --input 192x28x28")
    return parse_shape(text)


# At most 10 digits a value: a range check, not int(), meets a 5,000-digit argument.
_PAIR_RE = re.compile(r"^\s*(\d{1,10})\s*(?:[x×,]\s*(\d{1,10}))?\s*$")


def _pair(name: str, text: str):
    """'3' → 3, '3x1' → (3, 1); every value in 1..MAX_SIZE."""
    match = _PAIR_RE.match(str(text))
    if not match:
        raise ArchcalcError(f"'{echo(text, 40)}' is not an integer or HxW",
                            fix=f"e.g. --{name} 3 or --{name} 1x7")
    values = [int(v) for v in match.groups() if v is not None]
    for value in values:
        if not 1 <= value <= MAX_SIZE:
            raise ArchcalcError(f"{value} is not in the range 1<=x<={MAX_SIZE}",
                                fix=f"a positive integer or HxW, e.g. --{name} 3")
    return values[0] if len(values) == 1 else tuple(values)


def _padding(text: str):
    """'1', '1x2' (H, W), '0,1,0,1' (top, bottom, left, right), 'same' or 'valid'."""
    if text in ("same", "valid"):
        return text
    parts = re.split(r"[x×,]", str(text).replace(" ", ""))
    values = [int(v) for v in parts if v.isascii() and v.isdigit() and len(v) <= 10]
    if len(values) != len(parts) or len(values) not in (1, 2, 4) or max(values) > MAX_SIZE:
        raise ArchcalcError(f"'{echo(text, 40)}' is not a padding (each value in "
                            f"0<=x<={MAX_SIZE})",
                            fix="an integer >= 0, HxW, top,bottom,left,right, 'same' or 'valid'")
    return values[0] if len(values) == 1 else tuple(values)


def pair_option(name: str, **kwargs):
    """--kernel / --stride / --dilation: K or KhxKw, range-checked by click (exit 2)."""
    return click.option(f"--{name}", type=ParsedParam("K|KhxKw", partial(_pair, name),
                                                      (int, tuple)), **kwargs)


PADDING = ParsedParam("P|PhxPw|T,B,L,R|same|valid", _padding, (int, tuple))
padding_option = click.option(
    "--padding", type=PADDING, default="0", show_default=True, help="P, PhxPw, top,bottom,left,right, 'same' or 'valid'.")


# ---- compare ----------------------------------------------------------------------------------
@main.command()
@click.argument("specs", nargs=-1, required=True)
@input_option(multiple=True)
@dtype_option
@format_option
@wide_option
def compare(specs: tuple[str, ...], input_shape, dtype: str, fmt: str) -> None:
    """Specs side by side: params, MACs, memory, depth, receptive field, dense share.

    One column per SPEC (or per --input, repeated, for one spec at several sizes); ratios
    against the first column; per-stage rows where specs share stage names. A spec that
    does not fit an input shows "n/a" with the reason.

    \b
    Examples:
      archcalc compare vgg16 resnet50
      archcalc compare vgg16 vgg19 --format markdown
      archcalc compare resnet50 --input 3x224x224 --input 3x448x448
    """
    if len(specs) < 2 and len(input_shape) < 2:
        raise ArchcalcError("compare needs two or more specs, or one spec with two or more "
                            "--input", fix="e.g. archcalc compare vgg16 resnet50")
    result = compare_specs(list(specs), list(input_shape), dtype)
    _show(compare_grid(result), fmt, result.as_dict())


# ---- bottleneck -------------------------------------------------------------------------------
@main.command()
@click.argument("spec", required=False)
@adhoc_input
@click.option("--kernel", type=COUNT, help="Ad hoc: the larger convolution's kernel (e.g. 5).")
@click.option("--filters", type=COUNT, help="Ad hoc: its filters (output channels).")
@click.option("--reduce", "reduce_to", type=COUNT, help="Ad hoc: channels of the 1×1 reduction.")
@click.option("--expand", type=COUNT, default=None,
              help="Ad hoc: a 1×1 back up to this many channels (ResNet bottleneck).")
@click.option("--stride", type=COUNT, default=1, show_default=True,
              help="Ad hoc: the larger convolution's stride.")
@click.option("--padding", type=PADDING, default="same", show_default=True, help="Ad hoc: the larger convolution's padding.")
@click.option("--no-bias", is_flag=True, help="Ad hoc: convolutions without biases.")
@click.option("--formulas", is_flag=True, help="With SPEC: print every product, per case.")
@format_option
@wide_option
def bottleneck(spec, input_text, kernel, filters, reduce_to, expand, stride, padding,
               no_bias, formulas, fmt) -> None:
    """What each 1×1 reduction saves: MACs and params with it and without it.

    With SPEC, every 1×1 convolution that reduces channels before a larger kernel (Inception)
    or before an expansion (ResNet bottleneck) is listed with a total; --input overrides the
    spec's input. Without SPEC, the ad hoc case of --input/--kernel/--filters/--reduce.

    \b
    Examples:
      archcalc bottleneck googlenet
      archcalc bottleneck resnet50 --formulas
      archcalc bottleneck --input 192x28x28 --kernel 5 --filters 32 --reduce 16
      archcalc bottleneck --input 256x56x56 --kernel 3 --filters 64 --reduce 64 --expand 256
    """
    given = [n for n, v in (("--kernel", kernel), ("--filters", filters),
                            ("--reduce", reduce_to), ("--expand", expand)) if v is not None]
    if spec is not None:
        if given:
            raise ArchcalcError(f"{', '.join(given)} describe an ad hoc case; with a SPEC the "
                                "cases come from the spec", fix="drop SPEC or those options")
        shape = parse_shape(input_text) if input_text else None
        result = find(analyze(load(spec, shape)))
        extra = [line for case in result.cases for line in case_lines(case)] if formulas else []
        _show(bottleneck_grid(result), fmt, result.as_dict(), extra)
        return
    missing = [n for n, v in (("--kernel", kernel), ("--filters", filters),
                              ("--reduce", reduce_to)) if v is None]
    if not input_text:
        missing.insert(0, "--input")
    if missing:  # options left out: a usage error (exit 2), as click's own required options
        failure = click.UsageError("give a SPEC, or the ad hoc case: --input, --kernel, "
                                   f"--filters and --reduce (missing {', '.join(missing)})")
        failure.fix = ("e.g. archcalc bottleneck --input 192x28x28 --kernel 5 --filters 32 "
                       "--reduce 16")
        raise failure
    result = adhoc(_need_input(input_text, "bottleneck"), kernel=kernel, filters=filters,
                   reduce=reduce_to, expand=expand, stride=stride,
                   padding=padding, bias=not no_bias)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        print_lines(case_lines(result.cases[0], title="bottleneck"))


# ---- factorize --------------------------------------------------------------------------------
@main.command()
@required_input
@click.option("--kernel", type=COUNT, required=True, help="The k×k convolution to factorise.")
@click.option("--filters", type=COUNT, required=True, help="Its output channels.")
@click.option("--mid", type=COUNT, default=None,
              help="Channels between the factors (default: --filters).")
@click.option("--no-bias", is_flag=True, help="Convolutions without biases.")
@format_option
@wide_option
def factorize(input_text, kernel, filters, mid, no_bias, fmt) -> None:
    """A k×k convolution vs a stack of 3×3s and vs k×1 + 1×k, same receptive field.

    Stride 1, 'same' padding, a ReLU after every convolution. Shows params, MACs,
    activations, receptive field and nonlinearities, with ratios to the k×k.

    \b
    Examples:
      archcalc factorize --input 64x56x56 --kernel 5 --filters 64
      archcalc factorize --input 192x17x17 --kernel 7 --filters 192 --mid 160
    """
    result = factorize_conv(_need_input(input_text, "factorize"), kernel=kernel,
                            filters=filters, mid=mid, bias=not no_bias)
    _show(factorize_grid(result), fmt, result.as_dict())


# ---- layer ------------------------------------------------------------------------------------
@main.group()
def layer() -> None:
    """One layer's arithmetic, step by step: conv, pool or dense.

    \b
    Examples:
      archcalc layer conv --input 3x227x227 --kernel 11 --stride 4 --filters 96
      archcalc layer pool --input 64x112x112 --kernel 3 --stride 2 --ceil-mode
      archcalc layer dense --input 9216 --units 4096
    """


coverage_option = click.option(
    "--coverage", "show_coverage", is_flag=True,
    help=f"Also print how many windows read each input pixel (0 = never seen): a grid for "
         f"inputs up to {GRID_MAX}×{GRID_MAX}, else the count per row and per column.")


@layer.command("conv")
@required_input
@pair_option("kernel", required=True, help="K or KhxKw, e.g. 11 or 1x7.")
@click.option("--filters", type=COUNT, required=True, help="Output channels.")
@pair_option("stride", default="1", show_default=True, help="S or ShxSw.")
@padding_option
@pair_option("dilation", default="1", show_default=True, help="D or DhxDw.")
@click.option("--groups", type=COUNT, default=1, show_default=True)
@click.option("--no-bias", is_flag=True)
@dtype_option
@coverage_option
@wide_option
def layer_conv(input_text, kernel, filters, stride, padding, dilation, groups, no_bias,
               dtype, show_coverage) -> None:
    """A convolution: (W − F + 2P)/S + 1 per axis, weights, MACs, activations.

    \b
    Example:
      archcalc layer conv --input 1x6x6 --kernel 3 --stride 2 --filters 1 --coverage
    """
    result = explain_conv(_need_input(input_text, "layer conv"), filters=filters,
                          kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                          groups=groups, bias=not no_bias, dtype=dtype)
    _explained(result, show_coverage)


@layer.command("pool")
@required_input
@pair_option("kernel", required=True, help="K or KhxKw.")
@pair_option("stride", default=None, help="S or ShxSw (default: the kernel).")
@padding_option
@click.option("--ceil-mode", is_flag=True, help="Round the output size up (Caffe, GoogLeNet).")
@click.option("--avg", is_flag=True, help="Average instead of max pooling.")
@dtype_option
@coverage_option
@wide_option
def layer_pool(input_text, kernel, stride, padding, ceil_mode, avg, dtype,
               show_coverage) -> None:
    """Max or average pooling, with ceil mode: the output size and why.

    \b
    Example:
      archcalc layer pool --input 64x7x7 --kernel 2 --coverage
    """
    result = explain_pool(_need_input(input_text, "layer pool"), kernel=kernel, stride=stride,
                          padding=padding,
                          ceil_mode=ceil_mode, mode="avg" if avg else "max", dtype=dtype)
    _explained(result, show_coverage)


def _explained(result, show_coverage: bool) -> None:
    """The explanation's lines, then (--coverage) the coverage grid or profiles."""
    # Counted before anything is printed: a too-large input is one error line, alone.
    counts = coverage(layer_dims(result.analysis)) if show_coverage else None
    print_lines(result.text().splitlines())
    if counts is not None:
        out = console()
        print_lines([""] + coverage_lines(counts, out.width if fitting(out) else None))


@layer.command("dense")
@required_input
@click.option("--units", type=COUNT, required=True, help="Output features.")
@click.option("--no-bias", is_flag=True)
@dtype_option
@wide_option
def layer_dense(input_text, units, no_bias, dtype) -> None:
    """A dense layer on N features (a CxHxW input is flattened): weights and MACs."""
    result = explain_dense(_need_input(input_text, "layer dense"), units=units,
                           bias=not no_bias, dtype=dtype)
    print_lines(result.text().splitlines())


# ---- sweep, memory ----------------------------------------------------------------------------
# A size's range: click states the real limit (10⁹, the spec's own) in its message.

@main.command()
@click.argument("spec")
@click.option("--sizes", default=None,
              help="Comma-separated square sizes, e.g. 32,64,128,224 (at most "
                   "ARCHCALC_MAX_SWEEP_SIZES, default 1,000; also for a range).")
@click.option("--from", "start", type=COUNT, default=None, help="First size of a range.")
@click.option("--to", "stop", type=COUNT, default=None,
              help="Last size of a range (included).")
@click.option("--step", type=COUNT, default=None, help="Step of the range (default 1).")
@dtype_option
@format_option
@wide_option
def sweep(spec, sizes, start, stop, step, dtype, fmt) -> None:
    """MACs and activation memory of SPEC at square inputs C×S×S, and where it stops fitting.

    Also finds the smallest square input at which every layer has an output.

    \b
    Examples:
      archcalc sweep alexnet --sizes 32,64,67,128,227
      archcalc sweep resnet50 --from 32 --to 512 --step 32
    """
    wanted = parse_sizes(sizes, start, stop, step)   # bounded before the spec is even read
    network = load(spec)
    scan = check_work(network, wanted)               # and the whole sweep before it starts
    points = sweep_sizes(network, wanted, dtype)
    fit = smallest_fit(network, max(wanted), scan)
    smallest = fit.smallest
    data = {"name": network.name, "points": [p.as_dict() for p in points],
            "smallest_fit": smallest.size if smallest else None,
            "below_smallest": fit.below.as_dict() if fit.below else None,
            "smallest_fit_searched_upto": fit.known_upto}
    _show(sweep_grid(network.name, points, fit, dtype), fmt, data)


def _budget(text: str) -> int:
    from archcalc.check import parse_size  # here: check imports NumPy, the CLI starts without
    try:
        return parse_size(text)
    except ArchcalcError as exc:
        exc.fix = "e.g. --budget 16GiB, 500MB or 1.5GB"
        raise


@main.command()
@click.argument("spec")
@input_option()
@batch_option
@dtype_option
@click.option("--optimizer", "optimizers", multiple=True,
              type=click.Choice(list(OPTIMIZER_COPIES)),
              help="Repeatable; default: all of them.")
@click.option("--timeline", is_flag=True,
              help="Bytes held after every layer (the peak under the freeing policy).")
@click.option("--mode", type=click.Choice(["training", "inference"]), default="training",
              show_default=True, help="What --timeline and --plot show.")
@click.option("--plot", "plot_out", default=None, metavar="FILE",
              help="Draw the timeline to FILE (.png, .svg or .pdf; needs matplotlib).")
@click.option("--budget", type=ParsedParam("SIZE", _budget, int), default=None,
              help="The largest batch whose peak fits, e.g. 16GiB or 500MB.")
@format_option
@wide_option
def memory(spec, input_shape, batch, dtype, optimizers, timeline, mode, plot_out, budget,
           fmt) -> None:
    """Training memory per optimizer: weights + gradients + optimizer state + activations.

    --timeline and --plot show the bytes held after every step of an inference pass or a
    training step (with the first --optimizer, default adam), and the peak; --budget gives
    the largest batch whose peak fits, for inference and for training per optimizer.

    \b
    Examples:
      archcalc memory vgg16 --batch 32
      archcalc memory resnet50 --batch 64 --optimizer sgd --optimizer adam --dtype float16
      archcalc memory resnet18 --timeline --batch 8
      archcalc memory resnet50 --budget 16GiB
    """
    analysis = analyze(load(spec, input_shape), batch=batch, dtype=dtype)
    if not (timeline or plot_out or budget):
        estimates = training_memory(analysis, list(optimizers) or None)
        _show(memory_grid(analysis.network.name, estimates), fmt,
              {"name": analysis.network.name, "estimates": [e.as_dict() for e in estimates]})
        return
    from archcalc.calc.peak import timeline as steps_of
    from archcalc.peak_report import budget_grid, fits, timeline_grid

    data: dict = {"name": analysis.network.name, "batch": batch, "dtype": dtype}
    grids: list[Grid] = []
    optimizer = None if mode == "inference" else (optimizers[0] if optimizers else "adam")
    if timeline or plot_out:
        steps = steps_of(analysis, mode, optimizer)
        if plot_out:
            from archcalc.plot import plot_timeline  # matplotlib is optional: imported on use
            click.echo(f"wrote {plot_timeline(analysis, steps, mode, optimizer, plot_out)}",
                       err=fmt == "json")
        if timeline:
            data.update(mode=mode, optimizer=optimizer,
                        peak_bytes=max(s.bytes for s in steps),
                        timeline=[s.as_dict() for s in steps])
            grids.append(timeline_grid(analysis, steps, mode, optimizer))
    if budget:
        results = fits(analysis, budget, list(optimizers) or None)
        data.update(budget_bytes=budget, fits=[r.as_dict() for r in results])
        grids.append(budget_grid(analysis, budget, results))
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for grid in grids:
        _show(grid, fmt, data)


# ---- plot, report -----------------------------------------------------------------------------
@main.command()
@click.argument("spec")
@click.option("--out", required=True, help="Image file to write (.png, .svg or .pdf).")
@input_option()
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Fold layers nested deeper than N name levels into one bar per block.")
def plot(spec, out, input_shape, depth) -> None:
    """Bars per layer: parameters, MACs and activation values, log scale (needs matplotlib).

    \b
    Examples:
      archcalc plot vgg16 --out vgg16.png
      archcalc plot resnet50 --depth 2 --out resnet50.svg
    """
    from archcalc.plot import plot_layers  # matplotlib is optional: imported on use

    written, used = plot_layers(analyze(load(spec, input_shape)), out, depth)
    if used != depth:
        click.echo(f"note: folded to --depth {used}: too many layers for one bar each "
                   f"(at most {limit('MAX_PLOT_BARS'):,}; ARCHCALC_MAX_PLOT_BARS raises it)",
                   err=True)
    click.echo(f"wrote {written}")


@main.command("report")
@click.argument("specs", nargs=-1, required=True)
@click.option("--out", default=None, help="Markdown file to write (default: print it).")
@input_option(multiple=True)
@click.option("--depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Fold the summaries to N name levels.")
@dtype_option
def report_cmd(specs, out, input_shape, depth, dtype) -> None:
    """A Markdown design report: comparison, bottleneck tables and folded summaries.

    \b
    Examples:
      archcalc report vgg16 resnet50 --out report.md
      archcalc report googlenet --depth 2
    """
    if out is None:
        click.echo(design_report(list(specs), list(input_shape), depth, dtype))
        return
    # The temporary file beside OUT is made first: an unwritable place fails before the work,
    # and a failed write (full disk) leaves no partial report (one line naming the file).
    with replacing(out) as tmp:
        tmp.write_text(design_report(list(specs), list(input_shape), depth, dtype),
                       encoding="utf-8")
    click.echo(f"wrote {out}")
