"""Coverage: how many windows of a sliding-window layer read each input pixel.

A student's question about a stride that does not divide: which pixels does the layer never
see, and why do the corners count less than the middle? Pure integers, per axis:

    count(i) = #{(o, t) : 0 ≤ o < out, 0 ≤ t < F, o·S + t·D = i + P_before}

(window o starts at o·S in padded coordinates; its tap t reads padded position o·S + t·D).
The 2-D count of pixel (i, j) is count_H(i) · count_W(j): see `grid`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import gcd

from archcalc.calc.analyze import Analysis
from archcalc.calc.layers import layer_math
from archcalc.calc.shapes import Dim
from archcalc.errors import ArchcalcError

# Inputs up to this many rows and columns are shown pixel by pixel (32 counts of up to two
# digits, with the row labels, fit 80 columns folded in bands); larger ones as profiles.
GRID_MAX = 32
# The most rows or columns a profile lists: each is a printed number (a 10⁹-pixel axis would
# print for hours). Real inputs stop at a few thousand.
MAX_COVERAGE = 10_000


def _count_in(lo: int, hi: int, residue: int, modulus: int) -> int:
    """How many o in [lo, hi] have o ≡ residue (mod modulus)."""
    if hi < lo:
        return 0
    first = lo + (residue - lo) % modulus
    return 0 if first > hi else (hi - first) // modulus + 1


def axis_count(dim: Dim, index: int) -> int:
    """Windows along `dim` that read input index `index` (0-based, padding excluded).

    Tap t of window o reads padded position p = o·S + t·D, so o·S ≤ p ≤ o·S + (F − 1)·D
    gives the windows in reach, and o·S ≡ p (mod D) keeps those whose taps land on p
    (with D = 1 every window in reach does). Exact in O(log) integer steps per index."""
    p = index + dim.pad_before
    s, d = dim.stride, dim.dilation
    lo = max(0, -(-(p - (dim.kernel - 1) * d) // s))
    hi = min(dim.out - 1, p // s)
    if d == 1:
        return max(0, hi - lo + 1)
    # o·S ≡ p (mod D): solvable when g = gcd(S, D) divides p, then o ≡ o0 (mod D/g).
    g = gcd(s, d)
    if p % g:
        return 0
    modulus = d // g
    o0 = (p // g) * pow(s // g, -1, modulus) % modulus if modulus > 1 else 0
    return _count_in(lo, hi, o0, modulus)


def axis_counts(dim: Dim) -> list[int]:
    """count(i) for every input index i along the axis (the per-row or per-column profile)."""
    if dim.size > MAX_COVERAGE:
        raise ArchcalcError(f"--coverage lists a count for every row and column: the input's "
                            f"{dim.size:,} is more than {MAX_COVERAGE:,}",
                            fix=f"give an --input of at most {MAX_COVERAGE:,}×{MAX_COVERAGE:,}")
    return [axis_count(dim, i) for i in range(dim.size)]


@dataclass
class Coverage:
    """The per-axis counts of one layer on one input; the grid is their outer product."""

    dims: tuple[Dim, Dim]
    rows: list[int]     # H entries: windows (along H) that read row i
    columns: list[int]  # W entries: windows (along W) that read column j

    def grid(self) -> list[list[int]]:
        """H×W counts. A window is a rectangle, its rows × its columns: window (a, b) reads
        pixel (i, j) exactly when row-window a reads row i and column-window b reads column j.
        So the windows reading (i, j) are the pairs (a, b) of such windows, and there are
        rows[i]·columns[j] of them. (The same for every channel.)"""
        return [[r * c for c in self.columns] for r in self.rows]

    @property
    def small(self) -> bool:
        """Small enough to show pixel by pixel."""
        return len(self.rows) <= GRID_MAX and len(self.columns) <= GRID_MAX

    def unseen(self, axis: int) -> list[int]:
        """Indices along axis 0 (H) or 1 (W) that no window reads."""
        counts = self.rows if axis == 0 else self.columns
        return [i for i, n in enumerate(counts) if n == 0]


def coverage(dims: tuple[Dim, Dim]) -> Coverage:
    return Coverage(dims, axis_counts(dims[0]), axis_counts(dims[1]))


def layer_dims(analysis: Analysis) -> tuple[Dim, Dim]:
    """The sliding-window Dims of a one-layer analysis (archcalc layer conv / pool)."""
    leaf = next(iter(analysis.network.leaves()))
    dims = layer_math(leaf, analysis.network.input_shape, analysis.rows[0].name).dims
    if dims is None:
        raise ArchcalcError(f"{leaf.kind} has no sliding window to cover the input with",
                            fix="use --coverage with layer conv or layer pool")
    return dims


def runs(indices: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5, 7, 8] → [(0, 2), (5, 5), (7, 8)]: consecutive indices as ranges."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


# ---- as text, the way `archcalc layer ... --coverage` prints it --------------------------------
def coverage_lines(cov: Coverage, width: int | None = None) -> list[str]:
    """The grid (small inputs) or the two profiles, then what the 0s and the borders mean.
    `width`: fold the grid into bands of columns, and wrap the profiles, to that many cells;
    None prints each whole (a pipe)."""
    h, w = len(cov.rows), len(cov.columns)
    if cov.small:
        lines = [f"coverage: windows reading each pixel of the {h}×{w} input (padding not "
                 "shown; the same for every channel)"]
        lines += _grid_lines(cov.grid(), width)
    else:
        lines = [f"coverage of the {h}×{w} input, per row and per column: a pixel (i, j) is "
                 "read by rows[i] × columns[j] windows (padding not shown)"]
        if cov.rows == cov.columns:
            lines += _profile_lines("rows and columns", cov.rows, width)
        else:
            lines += _profile_lines("rows", cov.rows, width)
            lines += _profile_lines("columns", cov.columns, width)
    return lines + _unseen_lines(cov) + _overlap_lines(cov) + _border_lines(cov)


def _grid_lines(grid: list[list[int]], width: int | None) -> list[str]:
    """Row labels on the left, column numbers on top (their last digit where a number is
    wider than a cell), in bands of columns that fit `width`."""
    label = len(str(len(grid) - 1))
    cell = max(len(str(n)) for row in grid for n in row)
    columns = len(grid[0])
    per_band = columns if width is None else max(1, (width - label) // (cell + 1))
    lines: list[str] = []
    for start in range(0, columns, per_band):
        stop = min(columns, start + per_band)
        if per_band < columns:
            lines.append(f"columns {start}–{stop - 1}:")
        numbers = [str(j) if len(str(j)) <= cell else str(j % 10) for j in range(start, stop)]
        lines.append(" " * label + "".join(f" {n:>{cell}}" for n in numbers))
        lines += [f"{i:>{label}}" + "".join(f" {n:>{cell}}" for n in row[start:stop])
                  for i, row in enumerate(grid)]
    return lines


def _profile_lines(what: str, counts: list[int], width: int | None) -> list[str]:
    """'rows:' then the counts, each line led by the index of its first count."""
    label = len(str(len(counts) - 1))
    cell = max(len(str(n)) for n in counts)
    per_line = len(counts) if width is None else max(1, (width - label - 1) // (cell + 1))
    lines = [f"{what} (windows reading index i):"]
    for start in range(0, len(counts), per_line):
        part = counts[start:start + per_line]
        lines.append(f"{start:>{label}}:" + "".join(f" {n:>{cell}}" for n in part))
    return lines


def _indices(indices: list[int]) -> str:
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs(indices))


def _unseen_lines(cov: Coverage) -> list[str]:
    """What the 0s are: the input a stride that does not divide drops at the end, and the
    gaps a kernel narrower than its stride (or a dilation) leaves by design."""
    unseen = (cov.unseen(0), cov.unseen(1))
    if not unseen[0] and not unseen[1]:
        return ["No 0s: every input pixel is read by at least one window."]
    lines = ["0 = a pixel that no window reads: the layer's output never depends on it."]
    # A square layer on a square input drops the same rows as columns: say it once.
    same = cov.dims[0] == cov.dims[1]
    axes = [("row and column", "rows and columns", 0)] if same else [
        ("row", "rows", 0), ("column", "columns", 1)]
    for one, many, axis in axes:
        dim, zeros = cov.dims[axis], unseen[axis]
        tail = set(range(dim.size - dim.dropped_input, dim.size))
        dropped, gaps = [i for i in zeros if i in tail], [i for i in zeros if i not in tail]
        if dropped:
            noun = one if len(dropped) == 1 else many
            lines.append(
                f"{noun.capitalize()} {_indices(dropped)}: dropped by the stride, "
                f"{dim.formula()} → {dim.out} windows, which reach ({dim.out} − 1)·"
                f"{dim.stride} + {dim.span} = {dim.covered} of the {dim.padded} padded "
                f"pixels, so the last {dim.dropped_input} are never read.")
        if gaps:
            noun = one if len(gaps) == 1 else many
            why = (f"between the windows: the kernel spans {dim.span} < stride {dim.stride}, "
                   "so windows skip pixels by design" if dim.span < dim.stride else
                   f"between a window's taps: dilation {dim.dilation} reads one pixel in "
                   f"{dim.dilation}, and the stride never shifts a tap onto these")
            lines.append(f"{noun.capitalize()} {_indices(gaps)}: {why}.")
    return lines


def _overlap_lines(cov: Coverage) -> list[str]:
    """Why counts alternate inside: windows that overlap by F − S pixels read those twice."""
    same = {(d.span, d.stride, d.dilation) for d in cov.dims} == {
        (cov.dims[0].span, cov.dims[0].stride, cov.dims[0].dilation)}
    lines = []
    for axis, dim in zip(("rows", "columns"), cov.dims[:1] if same else cov.dims):
        if 1 < dim.stride < dim.span and dim.dilation == 1:
            where = "" if same else f" along the {axis}"
            lines.append(f"Stride {dim.stride} < kernel {dim.span}{where}: neighbouring "
                         f"windows overlap by {dim.span} − {dim.stride} = "
                         f"{dim.span - dim.stride}, so the overlapped pixels are read more "
                         "often than those between them.")
    return lines


def _border_lines(cov: Coverage) -> list[str]:
    """Why corners count less: fewer windows fit near a border, and a corner is near two."""
    top, most_r = cov.rows[0], max(cov.rows)
    left, most_c = cov.columns[0], max(cov.columns)
    # Only when the corner is read less than every pixel inside: with a stride, inner pixels
    # between windows can count as little, and then the border is not the reason.
    inner = min(cov.rows[1:-1], default=top) * min(cov.columns[1:-1], default=left)
    if top * left >= inner:
        return []
    lines = [f"Corners count less: row 0 is read by {top} window(s) and column 0 by {left}, "
             f"so pixel (0, 0) by {top}·{left} = {top * left}, against up to {most_r}·{most_c} "
             f"= {most_r * most_c} inside. A window lies within the padded input, so fewer "
             "windows reach a pixel near a border, and a corner is near two borders (a "
             "pixel's count is its row's count times its column's)."]
    if any(_padding_reads_border_more(d) for d in cov.dims):
        lines.append("Padding lets windows start outside the input, so the border is read "
                     "more often than without it (the padded pixels are not shown).")
    return lines


def _padding_reads_border_more(dim: Dim) -> bool:
    """Whether the padding makes more windows read the first or last pixel of this axis. It
    need not: with a stride, padding shifts the windows and can leave the first pixel between
    two of them."""
    if not (dim.pad_before or dim.pad_after):
        return False
    bare = replace(dim, pad_before=0, pad_after=0)
    if bare.out <= 0:                        # without padding no window fits at all
        return True
    last = dim.size - 1
    return (axis_count(dim, 0) > axis_count(bare, 0)
            or axis_count(dim, last) > axis_count(bare, last))
