"""Tables fit the terminal they are printed on (issue 8, "Tables people can read").

On a terminal (a real pty here, not CliRunner, whose stdout is never a tty) every table
command fits its width: columns hidden by priority, then figures abbreviated, then names cut.
A pipe, a file or --wide gets the full table with exact figures (the golden files).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.cells import cell_len

from archcalc.report import render_text
from archcalc.tables import Grid, abbreviate

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

COMMANDS = [
    ["list"],
    ["summary", "vgg16"],
    ["summary", "googlenet"],
    ["check", "lenet5"],
    ["compare", "vgg16", "resnet50"],
    ["compare", "vgg16", "resnet50", "alexnet"],  # folded into records at 80
    ["bottleneck", "resnet50"],
    ["bottleneck", "googlenet", "--formulas"],
    ["factorize", "--input", "64x56x56", "--kernel", "5", "--filters", "64"],
    ["layer", "conv", "--input", "3x227x227", "--kernel", "11", "--stride", "4",
     "--filters", "96"],
    ["layer", "pool", "--input", "64x112x112", "--kernel", "3", "--stride", "2", "--ceil-mode"],
    ["sweep", "alexnet", "--sizes", "32,64,67,128,227"],
    ["memory", "vgg16", "--batch", "32"],
]


def _env(columns: int | None) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", TERM="xterm")
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return env


def in_terminal(args: list[str], width: int, columns: int | None = None) -> str:
    """archcalc ARGS with stdout on a pty `width` cells wide; the text it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=_env(columns))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks)[-2000:]
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    return ANSI.sub("", text)


def in_pipe(args: list[str], columns: int | None) -> str:
    result = subprocess.run([sys.executable, "-m", "archcalc", *args], capture_output=True,
                            text=True, env=_env(columns), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def widest(text: str) -> int:
    return max(cell_len(line) for line in text.splitlines())


# ---- a real terminal ---------------------------------------------------------------------
@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_line_fits_the_terminal(args, width):
    text = in_terminal(args, width, columns=width)
    assert widest(text) <= width, text
    assert "Traceback" not in text


def test_acceptance_summary_and_list_at_80_columns():
    """The issue's check: COLUMNS=80 archcalc summary vgg16 / list, in a terminal."""
    summary = in_terminal(["summary", "vgg16"], 80, columns=80)
    assert widest(summary) <= 80
    # what torchinfo/Keras users read first stays: name, type, output, params, MACs, exact
    assert re.search(r"^ fc6 +dense +4096 +102,764,544 +102,760,448 $", summary, re.M)
    assert "Hidden to fit 80 columns: Input, Activations, RF /stride" in summary
    listing = in_terminal(["list"], 80, columns=80)
    assert widest(listing) <= 80
    assert re.search(r"^ vgg16 +3×224×224 +138,357,544 +15,470,264,320 $", listing, re.M)


def test_the_terminal_size_counts_when_COLUMNS_is_not_set():
    assert widest(in_terminal(["summary", "vgg16"], 80)) <= 80


def test_COLUMNS_wins_over_the_terminal_size_as_in_rich():
    text = in_terminal(["summary", "vgg16"], 200, columns=80)
    assert widest(text) <= 80 and "Hidden to fit 80 columns" in text


def test_names_are_cut_and_figures_abbreviated_when_hiding_is_not_enough():
    text = in_terminal(["summary", "googlenet"], 60, columns=60)
    assert widest(text) <= 60
    assert "Figures abbreviated" in text and "--wide or --format json" in text
    assert "incep…_3x3_reduce" in text  # the start and the telling end of the name
    # conv2: 110,784 params, 346,816,512 MACs
    assert re.search(r"^ conv2 .* 111 k +347 M $", text, re.M)


def test_wide_prints_the_full_table_on_a_terminal():
    full = in_pipe(["summary", "vgg16"], columns=80)
    wide = in_terminal(["summary", "vgg16", "--wide"], 80, columns=80)
    assert wide == full
    assert widest(wide) > 100 and "RF /stride" in wide


@pytest.mark.parametrize("args", [["list"], ["check", "lenet5"], ["bottleneck", "resnet50"],
                                  ["memory", "vgg16", "--batch", "32"]], ids=" ".join)
def test_wide_on_every_table_command(args):
    fitted = in_terminal(args, 80, columns=80)
    wide = in_terminal(args + ["--wide"], 80, columns=80)
    assert widest(fitted) <= 80 < widest(wide)
    assert "Hidden to fit" in fitted and "Hidden to fit" not in wide


# ---- a pipe keeps today's output -----------------------------------------------------------
def test_a_pipe_gets_the_full_table_whatever_COLUMNS_says():
    """`COLUMNS=80 archcalc summary vgg16 | cat`: scripts read the full table."""
    text = in_pipe(["summary", "vgg16"], columns=80)
    assert widest(text) > 100
    assert re.search(r"^ fc6 +dense +25088 +4096 +102,764,544 +102,760,448 +4,096 +404 /224 $",
                     text, re.M)
    assert "Hidden" not in text and "abbreviated" not in text


def test_check_has_the_style_of_every_other_table(run):
    text = run("check", "lenet5").stdout
    assert not set("┏┃┡│└") & set(text)  # no heavy or light box: summary's SIMPLE_HEAD
    assert re.search(r"^ layer +calculated shape +actual shape +calc params", text, re.M)


# ---- the abbreviation and the fitting, unit by unit ----------------------------------------
@pytest.mark.parametrize("n, text", [
    (0, "0"), (7, "7"), (999, "999"), (1000, "1.00 k"), (1790, "1.79 k"),
    (1785, "1.79 k"),              # half up, in integers (float 1.785 rounds down)
    (12_345, "12.3 k"), (99_949, "99.9 k"), (99_950, "100 k"), (123_456, "123 k"),
    (999_499, "999 k"), (999_500, "1.00 M"), (999_999, "1.00 M"),  # never "1000 k"
    (86_700_000, "86.7 M"), (15_470_264_320, "15.5 G"), (999_999_999_999, "1.00 T"),
    (-1790, "-1.79 k"),
])
def test_abbreviate(n, text):
    assert abbreviate(n) == text


def _grid() -> Grid:
    rows = [["a_rather_long_layer_name_number_one", "conv2d", "3×224×224", "64×224×224",
             "1,792", "86,704,128"],
            ["[/]", "relu", "64×224×224", "64×224×224", "—", "—"]]
    return Grid("net", ["Layer", "Type", "Input", "Output", "Params", "MACs"], rows,
                ["Total params: 1,792"], left={1}, drop=[2])


def _lines(renderable, width: int) -> list[str]:
    return render_text(renderable, width).splitlines()


def test_fit_hides_columns_before_abbreviating():
    # full 94 cells wide; 81 without Input; abbreviated 90, or 77 without Input
    lines = _lines(_grid().fit(85), 85)
    assert all(cell_len(line) <= 85 for line in lines)
    text = "\n".join(lines)
    assert "Input" not in lines[2] and "Output" in lines[2] and "86,704,128" in text
    assert "Hidden to fit 85 columns: Input" in text and "abbreviated" not in text


def test_fit_keeps_every_column_when_they_fit():
    assert _lines(_grid().fit(200), 200) == _lines(_grid().rich(), 200)


def test_fit_abbreviates_then_cuts_the_name_then_folds():
    grid = _grid()
    short = "\n".join(_lines(grid.fit(78), 78))
    assert "86.7 M" in short and "1.79 k" in short and "Figures abbreviated" in short
    assert "a_rather_long_layer_name_number_one" in short  # abbreviation was enough
    cut = _lines(grid.fit(60), 60)
    assert all(cell_len(line) <= 60 for line in cut)
    assert "a_rat…e_number_one" in "\n".join(cut) and "Long names cut" in "\n".join(cut)
    for width in (45, 24):
        folded = _lines(grid.fit(width), width)
        assert all(cell_len(line) <= width for line in folded)
        assert "Rows folded" in "\n".join(folded)
    assert "[/]: Type relu;" in "\n".join(folded)  # user text is never markup


def test_footer_lines_wrap_at_spaces_never_inside_a_number():
    text = "\n".join(_lines(Grid("t", ["a", "b"], [["x", "1"]],
                                 ["MACs per image: 15,470,264,320 (15.47 G) and more words"])
                            .fit(30), 30))
    assert "15,470,264,320" in text and all(cell_len(l) <= 30 for l in text.splitlines())



def test_evaluate_numbers_the_classes_when_their_names_do_not_fit(capsys):
    """evaluate's confusion matrix for Fashion-MNIST on an 80-column terminal: its class
    names make it 130 columns wide, so the classes are numbered, with one legend line."""
    import io

    import numpy as np
    from rich.console import Console

    from archcalc.cli.train import print_confusion
    from archcalc.nn.data import FASHION_CLASSES

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    out = Console(file=term, width=80, no_color=True)
    matrix = np.full((10, 10), 7) + np.diag(np.full(10, 993))
    print_confusion(out, matrix, FASHION_CLASSES)
    table = capsys.readouterr().out
    assert widest(table) <= 80, table
    assert "Trouser" not in table and "1000" in table
    assert term.getvalue().startswith("classes: 0 = T-shirt/top, 1 = Trouser, 2 = Pullover")
    assert widest(term.getvalue()) <= 80


# ---- narrow terminals: hostile round 2, finding 10 -----------------------------------------
NARROW = [
    ["gradcheck", "lenet5", "--samples", "2"],  # the result table is a Grid (counts hidden)
    ["validate", "vgg16", "lenet5"],  # the ok: lines wrap at spaces
    ["layer", "conv", "--input", "3x227x227", "--kernel", "11", "--stride", "4",
     "--filters", "96"],  # a formula with no spaces is folded after a '·' or '/'
]


@pytest.mark.parametrize("args", NARROW, ids=" ".join)
def test_narrow_terminal_fits(args):
    text = in_terminal(args, 40, columns=40)
    # The progress bar redraws with '\r': only what stayed on screen counts.
    shown = "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())
    assert widest(shown) <= 40, text
    assert "Traceback" not in text


def test_validate_ok_line_stays_whole_in_a_pipe():
    text = in_pipe(["validate", "vgg16"], columns=40)
    assert text.splitlines() == ["ok: vgg16.yaml: vgg16, 39 layers, output 1000, "
                                 "138,357,544 params, 15,470,264,320 MACs"]


def test_a_word_wider_than_the_line_is_folded_after_an_operator():
    from archcalc.tables import wrap_words
    pieces = wrap_words("  (H_out·W_out·C_out·K_h·K_w·C_in/groups; FLOPs = 2·MACs)", 30)
    assert all(cell_len(p) <= 30 for p in pieces), pieces
    assert pieces[0].endswith("·") and "".join(p.strip() for p in pieces).startswith(
        "(H_out·W_out·C_out·K_h·K_w·C_in/groups;")
