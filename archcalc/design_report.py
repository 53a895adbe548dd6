"""Views of the design what-ifs (compare, bottleneck, factorize, sweep, memory) and the
Markdown design report that gathers them.

Rendering only: each `*_grid` turns the plain data of an archcalc.calc module into a Grid
(archcalc.tables: title, header, rows of strings, footer lines), which prints as a rich table,
fitted to a terminal, or as Markdown. Each grid names the columns a narrow terminal hides
first (`drop`).
Every number is formatted from the exact integer the calculator gave.
"""

from __future__ import annotations

from fractions import Fraction

from archcalc import __version__, report
from archcalc.calc.bottleneck import Bottlenecks, Case, find
from archcalc.calc.compare import Comparison, compare
from archcalc.calc.factorize import Factorization
from archcalc.calc.shapes import fmt_shape
from archcalc.calc.whatif import Fit, MemoryEstimate, SweepPoint
from archcalc.report import human_bytes
from archcalc.spec.layers import pair
from archcalc.tables import Grid


def times(value: Fraction | float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}×"


def _n(value: int) -> str:
    return f"{value:,}"


# ---- compare ----------------------------------------------------------------------------------
def compare_grid(cmp: Comparison) -> Grid:
    base = cmp.base
    base_m = base.metrics() if base else {}
    cols = cmp.columns
    metrics = [c.metrics() if c.ok else None for c in cols]

    def counted(label: str, key: str) -> list[str]:
        cells = []
        for col, m in zip(cols, metrics):
            if m is None:
                cells.append("n/a")
                continue
            text = _n(m[key])
            if col is not base and base_m.get(key):
                text += f" ({times(Fraction(m[key], base_m[key]))})"
            cells.append(text)
        return [label] + cells

    def shown(label: str, render) -> list[str]:
        return [label] + [render(m) if m else "n/a" for m in metrics]

    def rf(m: dict) -> str:
        if m["receptive_field"] is None:
            return "—"
        (rh, rw), (jh, jw) = m["receptive_field"], m["effective_stride"]
        r = str(rh) if rh == rw else f"{rh}×{rw}"
        j = str(jh) if jh == jw else f"{jh}×{jw}"
        return f"{r} /{j} ({m['receptive_field_at']})"

    rows = [
        ["input"] + [fmt_shape(c.input_shape) for c in cols],
        ["output"] + [fmt_shape(m["output_shape"]) if m else f"n/a: {c.error}"
                      for c, m in zip(cols, metrics)],
        counted("params", "params"),
        counted("trainable params", "trainable_params"),
        counted("non-trainable params", "non_trainable_params"),
        counted("MACs / image", "macs"),
        counted("activations / image (values)", "activations"),
        shown(f"activation memory / image ({cmp.dtype})",
              lambda m: f"{human_bytes(m['activation_bytes'])}"),
        counted("weight layers (conv + dense)", "weight_layers"),
        counted("depth (longest path)", "depth"),
        shown("receptive field /stride", rf),
        shown("dense params (share)",
              lambda m: f"{m['dense_params']:,} ({float(m['dense_share']) * 100:.1f}%)"),
    ]
    ruled = {2, 5, 8, 10}
    for name in cmp.stage_names:
        ruled.add(len(rows))
        for what, attr in (("params", "params"), ("MACs", "macs"),
                           ("activations", "activations")):
            base_stage = cmp.stage(base, name) if base else None
            cells = [f"{name} {what}"]
            for col in cols:
                stage = cmp.stage(col, name)
                if not col.ok:
                    cells.append("n/a")
                elif stage is None:
                    cells.append("—")
                else:
                    value = getattr(stage, attr)
                    text = _n(value)
                    if col is not base and base_stage and getattr(base_stage, attr):
                        text += f" ({times(Fraction(value, getattr(base_stage, attr)))})"
                    cells.append(text)
            rows.append(cells)
    footer = []
    if base is not None and len(cols) > 1:
        footer.append(f"(n.nn×) = ratio to {base.label}.")
    footer += [
        "Depth: conv + dense layers on the longest input→output path (a merge counts its "
        "deepest branch); weight layers counts every conv and dense layer, projection "
        "shortcuts included.",
        "Receptive field /stride: at the last feature map, the output of the last layer "
        "before the first flatten or global pooling (named in brackets), in input pixels.",
        "MACs: conv H_out·W_out·C_out·K_h·K_w·C_in/groups, dense in·out; activations: the "
        "input plus every new tensor (as `archcalc summary`).",
    ]
    wrap = {i + 1: 40 for i, c in enumerate(cols) if not c.ok}
    # The labels wrap on a narrow terminal (every column is a spec: none is hidden, and a
    # label cut to "activati…" would say nothing).
    wrap[0] = None
    labels = ", ".join(c.label for c in cols)
    return Grid(f"Comparison: {labels}", [""] + [c.label for c in cols], rows, footer, wrap,
                ruled)


# ---- bottleneck -------------------------------------------------------------------------------
def bottleneck_grid(result: Bottlenecks) -> Grid:
    net = result.analysis.network
    rows = []
    for case in result.cases:
        rows.append([case.name, case.kernels, case.channels,
                     f"{fmt_shape(case.input_shape)} → {fmt_shape(case.output_shape)}",
                     _n(case.with_macs), _n(case.without_macs), times(case.macs_factor, 1),
                     _n(case.with_params), _n(case.without_params),
                     times(case.params_factor, 1)])
    if result.cases:
        rows.append([f"total ({len(result.cases)} cases)", "", "", "", _n(result.with_macs),
                     _n(result.without_macs),
                     times(Fraction(result.without_macs, result.with_macs), 1),
                     _n(result.with_params), _n(result.without_params),
                     times(Fraction(result.without_params, result.with_params), 1)])
    t = result.analysis.totals
    footer = []
    if result.cases:
        footer += [
            f"Whole network: {t.macs:,} MACs and {t.params:,} params as specified; "
            f"{result.network_macs_without:,} MACs "
            f"({times(Fraction(result.network_macs_without, t.macs), 2)}) and "
            f"{result.network_params_without:,} params "
            f"({times(Fraction(result.network_params_without, t.params), 2)}) with every "
            "reduction undone.",
            "With: the chain's convolutions as the spec has them (the sum of their rows in "
            "`archcalc summary`). Without: the chain's larger kernel applied directly to the "
            "unreduced input, giving the same output: H_out·W_out·C_out·K_h·K_w·C_in MACs, "
            "K_h·K_w·C_in·C_out (+ C_out biases) params. Params are convolution weights and "
            "biases; normalisation layers are left out of both sides.",
        ]
    else:
        footer.append(f"No 1×1 convolution in {net.name} reduces channels before a larger "
                      "kernel or an expansion.")
    if result.skipped:
        footer.append("Not bottlenecks (the 1×1 does not reduce channels): "
                      + ", ".join(result.skipped) + ".")
    footer += [f"{case.name}: {case.note}" for case in result.cases if case.note]
    title = f"1×1 bottlenecks in {net.name} — input {fmt_shape(net.input_shape)}"
    # A narrow terminal keeps the MAC savings; the params group goes whole (two "saving"s).
    return Grid(title, ["1×1 reduce", "kernels", "channels", "input → output", "MACs with",
                        "MACs without", "saving", "params with", "params without", "saving"],
                rows, footer, ruled={len(result.cases)} if result.cases else set(),
                drop=[3, 2, 1, 9, 7, 8])


def case_lines(case: Case, title: str | None = None) -> list[str]:
    """Every product behind one case, the way the notes write the Inception example."""
    terms, direct = case.terms()
    head = title or case.name
    lines = [f"{head}: {fmt_shape(case.input_shape)} → {case.kernels} "
             f"({case.channels} channels) → {fmt_shape(case.output_shape)}",
             "  with the 1×1 reduction:"]
    for row, term in zip(case.rows, terms):
        lines.append(f"    {row.name}: MACs {term.macs_text()}; params {term.params_text()}")
    if len(terms) > 1:
        lines.append("    total: MACs " + " + ".join(f"{t.macs:,}" for t in terms)
                     + f" = {case.with_macs:,}; params "
                     + " + ".join(f"{t.params:,}" for t in terms) + f" = {case.with_params:,}")
    kernel = case.kernels.split(", ")[1]
    lines += [f"  without (the {kernel} applied directly to the {case.input_shape[0]} input "
              "channels):",
              f"    direct: MACs {direct.macs_text()}; params {direct.params_text()}",
              f"  saving: {case.without_macs:,} / {case.with_macs:,} = "
              f"{times(case.macs_factor, 1)} fewer MACs (multiplications); "
              f"{case.without_params:,} / {case.with_params:,} = "
              f"{times(case.params_factor, 1)} fewer parameters"]
    if case.note:
        lines.append(f"  note: {case.note}")
    return lines


# ---- factorize --------------------------------------------------------------------------------
def factorize_grid(result: Factorization) -> Grid:
    first = result.variants[0]
    rows = []
    for v in result.variants:
        layers = ", ".join(f"{'×'.join(str(k) for k in _kernel(leaf))}: {r.input_shape[0]}→"
                           f"{r.output_shape[0]}" for leaf, r in v.convs)
        rf = v.receptive_field
        rows.append([v.name, layers, _n(v.params), _n(v.macs), _n(v.activations),
                     f"{rf[0]}×{rf[1]}", str(v.nonlinearities),
                     times(Fraction(v.params, first.params)),
                     times(Fraction(v.macs, first.macs))])
    footer = []
    for v in result.variants:
        terms = v.terms()
        macs = " + ".join(t.macs_text().split(" = ")[0] for t in terms)
        params = " + ".join(f"({t.params_text().split(' = ')[0]})" if t.biases and len(terms) > 1
                            else t.params_text().split(" = ")[0] for t in terms)
        footer.append(f"{v.name}: MACs {macs} = {v.macs:,}; params {params} = {v.params:,}")
    footer += result.notes
    footer.append("Stride 1, 'same' padding, a ReLU after every convolution; activations are "
                  "the values of the tensors each variant makes (its input not included).")
    title = (f"Factorising a {result.kernel}×{result.kernel} convolution — input "
             f"{fmt_shape(result.input_shape)}, {result.filters} filters"
             + (f", {result.mid} in between" if result.mid != result.filters else ""))
    return Grid(title, ["variant", "layers", "params", "MACs", "activations", "RF",
                        "nonlinearities", "params ×", "MACs ×"], rows, footer,
                drop=[6, 4, 5, 1])


def _kernel(leaf) -> tuple[int, int]:
    return pair(leaf.spec.kernel)


# ---- sweep and memory -------------------------------------------------------------------------
def sweep_grid(name: str, points: list[SweepPoint], fit: Fit, dtype: str) -> Grid:
    rows = []
    for p in points:
        if p.analysis is None:
            rows.append([fmt_shape(p.input_shape), "does not fit", "—", "—", "—", "—",
                         p.error or ""])
            continue
        t = p.analysis.totals
        rows.append([fmt_shape(p.input_shape), fmt_shape(p.analysis.output_shape),
                     _n(t.params), _n(t.macs), _n(t.activations),
                     human_bytes(t.activation_bytes), ""])
    below = fit.below
    why = f"; at {fmt_shape(below.input_shape)}: {below.error}" if below else ""
    if fit.smallest is not None:
        first = f"Smallest square input that fits: {fmt_shape(fit.smallest.input_shape)}{why}."
    elif fit.complete:
        first = f"No square input from 1 to {fit.upto:,} fits{why}."
    else:  # the search stopped at its bounds: say how far it knows, not more
        first = (f"No square input from 1 to {fit.known_upto:,} fits (larger sizes, up to "
                 f"{fit.upto:,}, were not searched: MAX_SWEEP_SCAN, MAX_SWEEP_WORK){why}.")
    footer = [first]
    footer.append(f"MACs and activations per image (input included), memory in {dtype}; "
                  "params change with the input only where a dense layer follows a flatten.")
    return Grid(f"{name} across input sizes", ["input", "output", "params", "MACs",
                                               "activations", "memory / image", "note"],
                rows, footer, wrap={6: 60}, drop=[4, 2, 1])


def memory_grid(name: str, estimates: list[MemoryEstimate]) -> Grid:
    e0 = estimates[0]
    rows = [[e.optimizer, str(e.copies), human_bytes(e.weight_bytes),
             human_bytes(e.gradient_bytes), human_bytes(e.state_bytes),
             human_bytes(e.activation_bytes), human_bytes(e.total_bytes), _n(e.total_bytes)]
            for e in estimates]
    footer = [
        f"P = {e0.params:,} parameters, P_t = {e0.trainable:,} trainable, A = "
        f"{e0.activations:,} activation values per image (input included), N = {e0.batch}, "
        f"{e0.bytes_per_value} bytes per value ({e0.dtype}).",
        "total = (P weights + P_t gradients + k·P_t optimizer state + N·A activations kept "
        "for backward)·bytes, k = optimizer state copies:",
    ] + [f"  {e.optimizer}: {e.formula()}" for e in estimates] + [
        "Not counted: gradients of activations during backward, framework workspace, "
        "allocator overhead.",
    ]
    return Grid(f"Training memory of {name}, batch {e0.batch}, {e0.dtype}",
                ["optimizer", "k", "weights", "gradients", "optimizer state",
                 f"activations ×{e0.batch}", "total", "total bytes"], rows, footer,
                drop=[7, 3, 1])


# ---- the Markdown report ----------------------------------------------------------------------
def design_report(refs: list[str], inputs: list[tuple[int, ...]] | None = None,
                  depth: int | None = 1, dtype: str = "float32") -> str:
    """Comparison, bottleneck tables and depth-folded summaries of `refs`, as Markdown."""
    cmp = compare(refs, inputs, dtype)
    parts = [f"# Design report: {', '.join(c.label for c in cmp.columns)}", "",
             f"Computed by archcalc {__version__} from the specs; every number is exact and "
             "reproducible with `archcalc summary`, `archcalc compare` and "
             "`archcalc bottleneck`.", "",
             compare_grid(cmp).markdown(level=2)]
    parts.append("## Bottlenecks\n")
    for col in cmp.columns:
        if col.analysis is None:
            parts.append(f"- {col.label}: n/a: {col.error}\n")
            continue
        result = find(col.analysis)
        grid = bottleneck_grid(result)
        parts.append(grid.markdown(level=3))
    parts.append("## Summaries\n")
    for col in cmp.columns:
        if col.analysis is not None:
            parts.append(report.to_markdown(col.analysis, depth))
    return "\n".join(parts)
