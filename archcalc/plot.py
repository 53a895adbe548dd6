"""Per-layer bars: parameters, MACs and activation values, on log scales, to an image file.

Optional extra: matplotlib is imported inside `plot_layers`, so archcalc works without it and
a user who asks for a plot without it gets one line: install archcalc[plot].
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archcalc.calc.analyze import Analysis, Row
from archcalc.calc.shapes import fmt_shape
from archcalc.errors import ArchcalcError
from archcalc.fileio import replacing
from archcalc.limits import echo, limit, raise_hint
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


# The formats matplotlib writes by itself. Others it lists need outside programs (.pgf runs
# xelatex) or are raw buffers no viewer opens; they are refused before any work.
FORMATS = ("png", "svg", "pdf")


def image_format(out: Path, supported: dict[str, str]) -> str:
    """The format named by `out`'s suffix, checked before any drawing is done."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in FORMATS or suffix not in supported:
        what = f"'{echo(out.suffix, 20)}' is not" if out.suffix else "a name without a suffix is not"
        # "writes" means by itself: the wording (and the catalogue's cases) predate FORMATS.
        raise ArchcalcError(f"cannot write {echo(out)}: {what} an image format matplotlib "
                            "writes", fix="end the file name with "
                            + ", ".join(f".{f}" for f in FORMATS[:-1]) + f" or .{FORMATS[-1]}")
    return suffix


def bounded_rows(analysis: Analysis, depth: int | None) -> tuple[list[Row], int | None]:
    """The rows to draw and the depth they were folded to. The drawing costs time and memory
    per bar (~10 ms and ~0.2 MB each), so past MAX_PLOT_BARS the deepest folding that fits is
    chosen; a network with more top-level layers than that is refused before any drawing."""
    most = limit("MAX_PLOT_BARS")
    rows = plotted_rows(analysis, depth)
    if len(rows) <= most:
        return rows, depth
    deepest = max(len(r.path) for r in analysis.rows)
    for level in range(min(depth or deepest, deepest) - 1, 0, -1):
        folded = plotted_rows(analysis, level)
        if len(folded) <= most:
            return folded, level
    raise ArchcalcError(f"{echo(analysis.network.name)} has {len(rows):,} layers to plot, more "
                        f"than {most:,} bars even folded to --depth 1",
                        fix="plot a part of the network, or " + raise_hint("MAX_PLOT_BARS"))


def _draw(Figure, analysis: Analysis, rows: list[Row]):
    """The figure: three log-scale bar charts sharing the layer axis. Names are user text:
    parse_math=False keeps a '$' in a name from being read as mathtext (which would fail or
    print something else)."""
    names = [r.name for r in rows]
    positions = list(range(len(rows)))
    fig = Figure(figsize=(max(8.0, 0.22 * len(rows) + 2), 9), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    net = analysis.network
    fig.suptitle(f"{net.name} — input {fmt_shape(net.input_shape)} (log scale; a layer "
                 "with none of a quantity has no bar)", parse_math=False)
    for ax, (attr, label) in zip(axes, SERIES):
        # Exact ints may pass 2**63 (two 10⁹-filter convs), which matplotlib's int64 arrays
        # cannot hold; a bar's height only needs a float's precision.
        values = [float(getattr(r, attr)) for r in rows]
        ax.bar(positions, values, color="tab:blue" if attr == "params" else
               "tab:orange" if attr == "macs" else "tab:green")
        if any(values):
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(positions, names, rotation=90, fontsize=7, parse_math=False)
    return fig


def plot_layers(analysis: Analysis, out: str | Path, depth: int | None = None,
                ) -> tuple[Path, int | None]:
    """Draw three bar charts (one bar per layer, log scale) sharing the layer axis; write
    them to `out` (format from its suffix: .png, .svg or .pdf), whole or not at all
    (a full disk leaves no partial image). Returns the path written and the depth the rows
    were folded to (bounded_rows may fold more than asked)."""
    out = Path(out)
    with _quiet_matplotlib():
        Figure, fmt = _figure_class(out)
        rows, used = bounded_rows(analysis, depth)
        if not rows:
            raise ArchcalcError(f"{echo(analysis.network.name)} has no layer with parameters, "
                                "MACs or activations to plot")
        # The temporary file is made first, so an unwritable directory fails before the
        # drawing; its name ends in .tmp, so the format is given, not guessed from the name.
        with replacing(out) as tmp:
            _save(_draw(Figure, analysis, rows), tmp, fmt, out)
    return out, used


def _figure_class(out: Path):
    """(matplotlib's Figure class, the image format `out`'s suffix names). An unknown suffix
    is refused before matplotlib is imported."""
    if out.suffix.lower().lstrip(".") not in FORMATS:
        image_format(out, {})
    Figure = _matplotlib()
    return Figure, image_format(out, Figure().canvas.get_supported_filetypes())


def _save(fig, tmp: Path, fmt: str, out: Path) -> None:
    try:
        fig.savefig(tmp, dpi=110, format=fmt)
    except OSError:
        raise  # replacing() words these (full disk, permissions)
    except Exception as exc:  # noqa: BLE001 - a matplotlib failure (a font, a backend) is one line
        raise ArchcalcError(f"cannot write {echo(out)}: matplotlib failed: "
                            f"{type(exc).__name__}: {echo(exc, 120)}",
                            fix="try another format (.png or .svg)") from None


@contextmanager
def _quiet_matplotlib() -> Iterator[None]:
    """matplotlib's warnings and log lines (a layout it could not fit for thousands of bars,
    an MPLCONFIGDIR it could not write, a font cache it builds) are its own business: a plot
    that was written is one 'wrote' line, and a failure is archcalc's one error line."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# ---- the memory timeline ----------------------------------------------------------------------
def plot_timeline(analysis: Analysis, steps, mode: str, optimizer: str | None,
                  out: str | Path) -> Path:
    """Bytes held after every step (archcalc.calc.peak.timeline): the total as a line, the
    static part (weights, gradients, optimizer state) as a band under it, backward steps
    shaded, the peak marked with its layer. Written whole or not at all, like plot_layers."""
    out = Path(out)
    with _quiet_matplotlib():
        Figure, fmt = _figure_class(out)
        with replacing(out) as tmp:
            _save(_draw_timeline(Figure, analysis, steps, mode, optimizer), tmp, fmt, out)
    return out


def _draw_timeline(Figure, analysis: Analysis, steps, mode: str, optimizer: str | None):
    mib = 2.0 ** 20
    positions = list(range(1, len(steps) + 1))
    totals = [s.bytes / mib for s in steps]
    static = [s.static_bytes / mib for s in steps]
    fig = Figure(figsize=(max(8.0, min(40.0, 0.05 * len(steps) + 6)), 5), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(positions, 0, static, step="mid", color="tab:gray", alpha=0.4,
                    label="weights" + ("" if mode == "inference" else
                                       f", gradients, {optimizer} state"))
    ax.step(positions, totals, where="mid", color="tab:blue", label="total held")
    backward = [p for p, s in zip(positions, steps) if s.phase == "backward"]
    if backward:
        ax.axvspan(backward[0] - 0.5, backward[-1] + 0.5, color="tab:orange", alpha=0.08,
                   label="backward")
    peak = max(range(len(steps)), key=lambda i: steps[i].bytes)
    ax.plot([positions[peak]], [totals[peak]], "o", color="tab:red")
    ax.annotate(f"peak {totals[peak]:,.2f} MiB: {steps[peak].name}", (positions[peak],
                totals[peak]), textcoords="offset points", xytext=(6, 6), fontsize=8,
                parse_math=False)
    t = analysis.totals
    what = "inference" if mode == "inference" else f"training step, {optimizer}"
    ax.set_title(f"{analysis.network.name}: memory held per step ({what}, batch {t.batch}, "
                 f"{t.dtype})", parse_math=False)
    ax.set_xlabel("step (one layer or merge; forward, then loss and backward)")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig
