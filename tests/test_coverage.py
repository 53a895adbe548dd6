"""`archcalc layer conv|pool --coverage`: how many windows read each input pixel.

The grids below are worked out by hand on a 6×6 input with a 3×3 filter: list the windows'
first index along an axis (o·S − P for o = 0 .. out − 1), count per index how many of the
spans [start, start + 2] hold it, and multiply the row's count by the column's.
"""

from __future__ import annotations


import pytest
from rich.cells import cell_len

from archcalc.calc.coverage import MAX_COVERAGE, axis_count, coverage, coverage_lines
from archcalc.calc.shapes import Dim
from archcalc.errors import ArchcalcError

# Stride 1, padding 0: 4 windows per axis starting at 0, 1, 2, 3.
# Per index: 1 2 3 3 2 1.
S1_P0 = [
    [1, 2, 3, 3, 2, 1],
    [2, 4, 6, 6, 4, 2],
    [3, 6, 9, 9, 6, 3],
    [3, 6, 9, 9, 6, 3],
    [2, 4, 6, 6, 4, 2],
    [1, 2, 3, 3, 2, 1],
]
# Stride 2, padding 0: (6 − 3)/2 + 1 = 2.5 → 2 windows, at 0..2 and 2..4; index 5 is never read.
# Per index: 1 1 2 1 1 0.
S2_P0 = [
    [1, 1, 2, 1, 1, 0],
    [1, 1, 2, 1, 1, 0],
    [2, 2, 4, 2, 2, 0],
    [1, 1, 2, 1, 1, 0],
    [1, 1, 2, 1, 1, 0],
    [0, 0, 0, 0, 0, 0],
]
# Stride 1, padding 1: 6 windows at −1, 0, 1, 2, 3, 4 (−1 and 6 are padding).
# Per index: 2 3 3 3 3 2.
S1_P1 = [
    [4, 6, 6, 6, 6, 4],
    [6, 9, 9, 9, 9, 6],
    [6, 9, 9, 9, 9, 6],
    [6, 9, 9, 9, 9, 6],
    [6, 9, 9, 9, 9, 6],
    [4, 6, 6, 6, 6, 4],
]
# Stride 2, padding 1: (6 − 3 + 2)/2 + 1 = 3.5 → 3 windows at −1..1, 1..3, 3..5: only the
# trailing padding (index 6) goes unread. Per index: 1 2 1 2 1 1.
S2_P1 = [
    [1, 2, 1, 2, 1, 1],
    [2, 4, 2, 4, 2, 2],
    [1, 2, 1, 2, 1, 1],
    [2, 4, 2, 4, 2, 2],
    [1, 2, 1, 2, 1, 1],
    [1, 2, 1, 2, 1, 1],
]


def _dims(size=6, kernel=3, stride=1, pad=0, dilation=1, ceil_mode=False):
    dim = Dim(size, kernel, stride, pad, pad, dilation, ceil_mode)
    return (dim, dim)


@pytest.mark.parametrize("stride, pad, expected", [
    (1, 0, S1_P0), (2, 0, S2_P0), (1, 1, S1_P1), (2, 1, S2_P1)])
def test_hand_worked_grids(stride, pad, expected):
    assert coverage(_dims(stride=stride, pad=pad)).grid() == expected


def _printed_grid(text: str, size: int = 6) -> list[list[int]]:
    """The grid's rows as printed after the column-number line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("coverage:")) + 2
    return [[int(v) for v in line.split()[1:]] for line in lines[start:start + size]]


@pytest.mark.parametrize("command, options, expected", [
    ("conv", ["--filters", "4"], S1_P0),
    ("conv", ["--filters", "4", "--stride", "2"], S2_P0),
    ("conv", ["--filters", "4", "--padding", "1"], S1_P1),
    ("conv", ["--filters", "4", "--stride", "2", "--padding", "1"], S2_P1),
    ("pool", ["--stride", "2"], S2_P0),
    ("pool", ["--stride", "2", "--padding", "1"], S2_P1),
])
def test_layer_commands_print_the_grid(run, command, options, expected):
    result = run("layer", command, "--input", "2x6x6", "--kernel", "3", *options, "--coverage")
    assert result.exit_code == 0, result.output
    assert _printed_grid(result.stdout) == expected


def test_the_notes_say_what_0s_mean_and_why_corners_count_less(run):
    text = run("layer", "conv", "--input", "1x6x6", "--kernel", "3", "--filters", "1",
               "--stride", "2", "--coverage").stdout
    assert "0 = a pixel that no window reads" in text
    assert ("Row and column 5: dropped by the stride, (6 − 3 + 2·0)/2 + 1 = 2.5 → 2 windows, "
            "which reach (2 − 1)·2 + 3 = 5 of the 6 padded pixels, so the last 1 are never "
            "read.") in text
    # with stride 2, pixel (1, 1) between windows is read once too: not a border effect
    assert "Corners count less" not in text
    plain = run("layer", "conv", "--input", "1x6x6", "--kernel", "3", "--filters", "1",
                "--coverage").stdout
    assert "so pixel (0, 0) by 1·1 = 1, against up to 3·3 = 9 inside" in plain
    padded = run("layer", "conv", "--input", "1x6x6", "--kernel", "3", "--filters", "1",
                 "--padding", "1", "--coverage").stdout
    assert "No 0s: every input pixel is read" in padded
    assert "so pixel (0, 0) by 2·2 = 4, against up to 3·3 = 9 inside" in padded
    assert "padding" in padded.lower()


def test_without_the_option_nothing_changes(run):
    args = ["layer", "pool", "--input", "1x6x6", "--kernel", "3", "--stride", "2"]
    plain, covered = run(*args).stdout, run(*args, "--coverage").stdout
    assert "coverage" not in plain and covered.startswith(plain)


def test_uneven_along_one_axis_names_rows_and_columns_apart():
    dims = (Dim(7, 3, 2), Dim(6, 3, 2))  # (7 − 3)/2 + 1 = 3 divides; (6 − 3)/2 + 1 does not
    cov = coverage(dims)
    assert cov.rows == [1, 1, 2, 1, 2, 1, 1] and cov.columns == [1, 1, 2, 1, 1, 0]
    text = "\n".join(coverage_lines(cov))
    assert "Column 5: dropped by the stride" in text and "Row " not in text


def test_gaps_between_windows_and_taps():
    # kernel 1, stride 2: (6 − 1)/2 + 1 = 3.5 → 3 windows at 0, 2, 4, reaching 5 of 6:
    # 1 and 3 lie between windows, 5 is past the last one.
    cov = coverage(_dims(kernel=1, stride=2))
    assert cov.rows == [1, 0, 1, 0, 1, 0]
    text = "\n".join(coverage_lines(cov))
    assert "Rows and columns 1, 3: between the windows" in text
    assert "Row and column 5: dropped by the stride" in text
    # 3 taps dilated by 2 (span 5), stride 1 on 8: windows at 0..3, taps o, o+2, o+4.
    dilated = coverage(_dims(size=8, dilation=2))
    assert dilated.rows == [1, 1, 2, 2, 2, 2, 1, 1]
    # stride 2 with dilation 2: taps at even positions only; odd ones are never read.
    even = coverage(_dims(size=9, dilation=2, stride=2))
    assert even.rows == [1, 0, 2, 0, 3, 0, 2, 0, 1]
    assert "between a window's taps" in "\n".join(coverage_lines(even))


@pytest.mark.parametrize("size, kernel, stride, pad, dilation, ceil_mode", [
    (13, 3, 2, 1, 1, False), (11, 4, 3, 2, 2, False), (10, 3, 2, 0, 1, True),
    (9, 2, 5, 1, 3, False), (17, 5, 3, 2, 2, True), (8, 3, 6, 3, 1, True)])
def test_count_equals_enumerating_every_tap(size, kernel, stride, pad, dilation, ceil_mode):
    """The closed form against the definition: every tap of every window, counted."""
    dim = Dim(size, kernel, stride, pad, pad, dilation, ceil_mode)
    taps = [o * stride - pad + t * dilation for o in range(dim.out) for t in range(kernel)]
    assert [axis_count(dim, i) for i in range(size)] == [taps.count(i) for i in range(size)]


def test_64_by_64_is_a_profile_folded_to_the_width():
    # 3×3, stride 1, padding 0 on 64: per index 1, 2, then 3 for 2..61, then 2, 1.
    cov = coverage(_dims(size=64))
    profile = [1, 2] + [3] * 60 + [2, 1]
    assert cov.rows == profile and cov.columns == profile and not cov.small
    lines = coverage_lines(cov, width=80)
    # the counts are folded here; the prose lines are wrapped by the CLI (print_lines)
    assert all(cell_len(line) <= 80 for line in lines if line[0].isdigit() or line[0] == " ")
    head = lines.index("rows and columns (windows reading index i):")
    body = []
    for line in lines[head + 1:]:
        if ":" not in line or not line.split(":")[0].strip().isdigit():
            break
        start, counts = line.split(":")
        assert int(start) == len(body)  # each line says the index its first count is at
        body += [int(v) for v in counts.split()]
    assert body == profile
    assert len(lines) > head + 2  # folded: more than one line of counts
    # unfolded (a pipe): one line
    assert lines != coverage_lines(cov)
    assert "  0: " + " ".join(map(str, profile)) in [" " + l for l in coverage_lines(cov)]


def test_profile_rows_and_columns_apart(run):
    text = run("layer", "pool", "--input", "1x40x64", "--kernel", "2", "--coverage").stdout
    assert "rows (windows reading index i):" in text
    assert "columns (windows reading index i):" in text
    assert "\n 0: " + " ".join(["1"] * 40) in text


def test_grids_fit_80_columns():
    # 5×5 at stride 1 on 32×32: counts up to 25 (two digits) are folded into column bands.
    cov = coverage(_dims(size=32, kernel=5))
    lines = coverage_lines(cov, width=80)
    assert all(cell_len(line) <= 80 for line in lines if not line[0].isalpha())
    assert "columns 0–25:" in lines and "columns 26–31:" in lines
    whole = coverage_lines(cov)
    assert max(cell_len(line) for line in whole[1:34]) > 80  # a pipe gets the whole grid


def test_in_a_terminal_every_line_fits_80():
    from tests.test_fit_terminal import in_terminal, widest
    for args in (["layer", "conv", "--input", "1x32x32", "--kernel", "5", "--filters", "1",
                  "--coverage"],
                 ["layer", "pool", "--input", "8x100x100", "--kernel", "3", "--stride", "2",
                  "--coverage"]):
        text = in_terminal(args, 80, columns=80)
        assert widest(text) <= 80, text
        assert "Traceback" not in text


def test_too_large_for_a_profile_is_one_line(run):
    big = MAX_COVERAGE + 1
    result = run("layer", "pool", "--input", f"1x{big}x8", "--kernel", "2", "--coverage")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"{big:,}" in result.stderr
    with pytest.raises(ArchcalcError):
        coverage((Dim(big, 2, 2), Dim(8, 2, 2)))


def test_padding_is_credited_only_where_it_reads_the_border_more(run):
    # stride 3 with 2 columns of padding on the left: column 0 falls between windows
    shifted = run("layer", "conv", "--input", "1x5x7", "--kernel", "3x2", "--stride", "2x3",
                  "--dilation", "2x1", "--padding", "1,0,2,1", "--filters", "1",
                  "--coverage").stdout
    assert "Padding lets windows start outside the input" not in shifted
    plain = run("layer", "conv", "--input", "1x6x6", "--kernel", "3", "--filters", "1",
                "--padding", "1", "--coverage").stdout
    assert "Padding lets windows start outside the input" in plain
