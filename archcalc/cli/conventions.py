"""`archcalc conventions SPEC`: what torchinfo, fvcore, thop, ptflops, PyTorch's FlopCounterMode,
Keras and Netscope would print for the same network, next to archcalc's own figures, with the
count behind every difference (archcalc.calc.conventions holds the rules)."""

from __future__ import annotations

import json

import click

from archcalc.cli import main
from archcalc.cli.common import (batch_option, dtype_option, input_option, print_lines,
                                 print_wide, wide_option)
from archcalc.tables import Grid


@main.command("conventions")
@click.argument("spec")
@input_option()
@batch_option
@dtype_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table: one row per figure; json: one object per peer "
                                      "(torchinfo, fvcore, thop, ptflops_pytorch, ptflops_aten, "
                                      "pytorch_flop_counter, keras, netscope) with the peer's "
                                      "own field names and a `why` list.")
@wide_option
def conventions_command(spec: str, input_shape, batch: int, dtype: str, fmt: str) -> None:
    """Every peer's figures for SPEC, to the integer, and why each differs from archcalc's.

    The network is read as one torch module per layer (as `archcalc export` writes it), in
    eval mode, with --batch images; each peer's rules come from its source (cited in `why`).

    \b
    Examples:
      archcalc conventions resnet50
      archcalc conventions mobilenet_v2 --batch 2 --format json
    """
    from archcalc.calc import analyze
    from archcalc.calc.conventions import conventions
    from archcalc.spec import load

    analysis = analyze(load(spec, input_shape), batch=batch, dtype=dtype)
    peers = conventions(analysis)
    if fmt == "json":
        doc = {"name": analysis.network.name, "input_shape": list(analysis.network.input_shape),
               "batch": batch, "dtype": dtype}
        doc.update({peer.key: peer.as_dict() for peer in peers})
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    print_wide(conventions_grid(analysis, peers))
    print_lines(why_lines(peers))


def _number(value) -> str:
    if getattr(value, "denominator", 1) != 1:
        return f"{value.numerator:,}/{value.denominator:,}"
    return f"{int(value):,}"


def _signed(value) -> str:
    if value == 0:
        return "="
    text = _number(abs(value))
    return ("+" if value > 0 else "−") + text


def conventions_grid(analysis, peers) -> Grid:
    """One row per figure: the peer, its name for the figure, its value, archcalc's figure
    for the same quantity and the difference (the reasons follow the table: why_lines)."""
    rows, ruled = [], set()
    for peer in peers:
        ruled.add(len(rows))
        for index, fig in enumerate(peer.figures):
            unit = f" {fig.unit}" if fig.unit else ""
            label = peer.key if peer.complete else f"{peer.key} (incomplete)"
            rows.append([label if index == 0 else "", fig.label, _number(fig.value) + unit,
                         _number(fig.ours) + unit, _signed(fig.difference)])
    t = analysis.totals
    shape = "×".join(map(str, analysis.network.input_shape))
    footer = [f"{analysis.network.name} at {shape}, batch {t.batch}, {t.dtype}; the network as "
              "one torch module per layer (`archcalc export`), in eval mode. MACs = "
              "multiply-accumulates, FLOPs = 2 × MACs. Each peer's figure follows its rules, "
              "read from its source; the tools are not run. A peer marked (incomplete) meets "
              "a layer kind no rule was read for: its figures leave those layers out (named "
              "below), so the tool's own figure may differ. Why each differs:"]
    return Grid(f"Conventions: {analysis.network.name}",
                ["Peer", "Figure", "Peer's value", "archcalc", "Difference"], rows,
                footer=footer, ruled=ruled - {0}, left={1}, drop=[3])


def why_lines(peers) -> list[str]:
    """The reasons, one line each, peer by peer: `peer figure: ±count what (source)`."""
    lines = []
    for peer in peers:
        why = peer.why()
        if peer.printed:
            why.append("prints " + ", ".join(f"{k} {v}" for k, v in peer.printed.items()))
        lines.extend(f"  {peer.key} {line}" for line in why)
    return lines
