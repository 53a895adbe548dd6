"""Per-layer bars: parameters, MACs and activation values, on log scales, to an image file.

Optional extra: matplotlib is imported inside `plot_layers`, so archcalc works without it and
a user who asks for a plot without it gets one line: install archcalc[plot].
"""

from __future__ import annotations

from pathlib import Path

from archcalc.calc.analyze import Analysis, Row
from archcalc.calc.shapes import fmt_shape
from archcalc.errors import ArchcalcError
from archcalc.report import fold

SERIES = (("params", "parameters"), ("macs", "MACs"), ("activations", "activation values"))


def plotted_rows(analysis: Analysis, depth: int | None = None) -> list[Row]:
    """The rows worth a bar: those with parameters, MACs or a new tensor (in-place
    activations, dropout and flatten have none of the three)."""
    return [r for r in fold(analysis, depth) if r.params or r.macs or r.activations]


def _matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ArchcalcError("plotting needs matplotlib, which is not installed",
                            fix="pip install 'archcalc[plot]'") from None
    return Figure


def plot_layers(analysis: Analysis, out: str | Path, depth: int | None = None) -> Path:
    """Draw three bar charts (one bar per layer, log scale) sharing the layer axis; write
    them to `out` (format from its suffix: .png, .svg, .pdf). Returns the path written."""
    Figure = _matplotlib()
    out = Path(out)
    rows = plotted_rows(analysis, depth)
    if not rows:
        raise ArchcalcError(f"{analysis.network.name} has no layer with parameters, MACs or "
                            "activations to plot")
    names = [r.name for r in rows]
    positions = list(range(len(rows)))
    fig = Figure(figsize=(max(8.0, 0.22 * len(rows) + 2), 9), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    net = analysis.network
    fig.suptitle(f"{net.name} — input {fmt_shape(net.input_shape)} (log scale; a layer "
                 "with none of a quantity has no bar)")
    for ax, (attr, label) in zip(axes, SERIES):
        values = [getattr(r, attr) for r in rows]
        ax.bar(positions, values, color="tab:blue" if attr == "params" else
               "tab:orange" if attr == "macs" else "tab:green")
        if any(values):
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(positions, names, rotation=90, fontsize=7)
    try:
        fig.savefig(out, dpi=110)
    except (OSError, ValueError) as exc:
        raise ArchcalcError(f"cannot write {out}: {exc}",
                            fix="check the directory exists and the suffix is .png, .svg or "
                                ".pdf") from None
    return out
