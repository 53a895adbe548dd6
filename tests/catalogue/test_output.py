"""Catalogue: output that cannot be written (issue 8, class 7) and names that look like rich
markup (class 5).

An output file in a missing directory, under a file, on a directory, under /proc, with a
suffix no image format has, or a stdout that is a full device: one line naming what could not
be written, why and the fix, exit 1, no file left behind. A spec named `[/]` with a layer
named `[bold]x[/]` runs through every command without a MarkupError, and an error about that
layer names it exactly as written. (Disk-full and unwritable directories simulated in-process,
and closed pipes: tests/test_io_errors.py; names printed in tables: tests/test_markup.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalogue.runner import ENV, Case, check_case

MARKUP_SPEC = """\
name: "[/]"
input: [1, 8, 8]
layers:
  - conv2d: {name: "[bold]x[/]", filters: 4, kernel: 3, padding: 1}
  - relu: {}
  - conv2d: {name: "[red]r", filters: 2, kernel: 1}
  - conv2d: {name: "[i]k", filters: 4, kernel: 3}
  - flatten: {}
  - dense: {name: ":fire:[/]", units: 10}
"""
# the same network whose first layer cannot run on its input
BAD_SPEC = MARKUP_SPEC.replace("kernel: 3, padding: 1", "kernel: 9")
BAD_LINE = ("error: m.yaml:4: layer '[bold]x[/]': kernel 9 larger than the padded input 8 along "
            "H: (8 − 9 + 2·0)/1 + 1 = 0 → output size 0 (fix: use a larger --input, more "
            "padding, or a smaller kernel/stride earlier)")
ENOENT_FIX = "create the directory first (mkdir -p {d}) or fix the path"


def _mkdir(name: str):
    def setup(where: Path) -> None:
        (where / name).mkdir()
    return setup


def _cannot(path: str, why: str, fix: str) -> str:
    return f"error: cannot write {path}: {why} (fix: {fix})"


CASES = [
    # files that cannot be written: one line, exit 1, nothing left behind
    Case("out_report_missing_dir", ["report", "lenet5", "--out", "missing/r.md"],
         _cannot("missing/r.md", "No such file or directory", ENOENT_FIX.format(d="missing"))),
    Case("out_report_under_a_file", ["report", "lenet5", "--out", "afile/r.md"],
         _cannot("afile/r.md", "Not a directory",
                 "a part of the path is a file, not a directory; fix the path"),
         files={"afile": "not a directory"}),
    Case("out_report_onto_a_directory", ["report", "lenet5", "--out", "adir"],
         _cannot("adir", "Is a directory", "that is a directory; give a file name inside it"),
         setup=_mkdir("adir")),
    Case("out_report_proc", ["report", "lenet5", "--out", "/proc/x.md"],
         _cannot("/proc/x.md", "No such file or directory", ENOENT_FIX.format(d="/proc"))),
    Case("out_report_missing_dir_subprocess", ["report", "lenet5", "--out", "no/r.md"],
         _cannot("no/r.md", "No such file or directory", ENOENT_FIX.format(d="no")),
         subprocess=True),
    Case("out_plot_missing_dir", ["plot", "lenet5", "--out", "missing/p.png"],
         _cannot("missing/p.png", "No such file or directory", ENOENT_FIX.format(d="missing"))),
    Case("out_plot_proc", ["plot", "lenet5", "--out", "/proc/p.png"],
         _cannot("/proc/p.png", "No such file or directory", ENOENT_FIX.format(d="/proc"))),
    Case("out_plot_bad_suffix", ["plot", "lenet5", "--out", "p.txt"],
         _cannot("p.txt", "'.txt' is not an image format matplotlib writes",
                 "end the file name with .png, .svg or .pdf")),
    Case("out_plot_no_suffix", ["plot", "lenet5", "--out", "plot"],
         _cannot("plot", "a name without a suffix is not an image format matplotlib writes",
                 "end the file name with .png, .svg or .pdf")),
]

# names that look like markup: every command runs (no stderr, exit 0) ...
_OK_RUNS = {
    "summary": ["summary", "m.yaml"],
    "validate": ["validate", "m.yaml"],
    "check": ["check", "m.yaml"],
    "gradcheck": ["gradcheck", "m.yaml", "--samples", "2"],
    "memory": ["memory", "m.yaml"],
    "sweep": ["sweep", "m.yaml", "--sizes", "2,8"],
    "bottleneck": ["bottleneck", "m.yaml", "--formulas"],
    "report": ["report", "m.yaml"],
    "summary_markdown": ["summary", "m.yaml", "--format", "markdown"],
}
CASES += [Case(f"out_markup_runs_{name}", args, "", code=0, files={"m.yaml": MARKUP_SPEC})
          for name, args in _OK_RUNS.items()]
# ... and an error about the layer names it as written
_ERROR_RUNS = {
    "summary": ["summary", "m.yaml"],
    "check": ["check", "m.yaml"],
    "gradcheck": ["gradcheck", "m.yaml"],
    "memory": ["memory", "m.yaml"],
    "validate": ["validate", "m.yaml"],
    "bottleneck": ["bottleneck", "m.yaml"],
    "plot": ["plot", "m.yaml", "--out", "p.png"],
}
CASES += [Case(f"out_markup_error_{name}", args, BAD_LINE, files={"m.yaml": BAD_SPEC})
          for name, args in _ERROR_RUNS.items()]

# compare's column headers are the specs' names: printed literally, never read as markup.
CASES += [
    Case("out_markup_runs_compare", ["compare", "m.yaml", "m.yaml"], "", code=0,
         files={"m.yaml": MARKUP_SPEC}),
    Case("out_markup_runs_compare_inputs",
         ["compare", "m.yaml", "--input", "1x8x8", "--input", "1x9x9"], "", code=0,
         files={"m.yaml": MARKUP_SPEC}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir()
                  if p.name not in case.files and p.name not in ("adir", ".measure"))
    assert made == [], f"{case.id}: left behind {made}"  # no partial or temporary file


@pytest.mark.parametrize("args", [["summary", "vgg16"], ["summary", "vgg16", "--format", "csv"],
                                  ["list"], ["--help"], ["--version"], ["layer", "--help"],
                                  ["summary", "--help"]])
def test_out_stdout_dev_full(args, tmp_path):
    """stdout on a full device, for real: `archcalc summary vgg16 > /dev/full`; also --help
    and --version, which click runs while it parses (before invoke)."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "archcalc", *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, **ENV}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: cannot write to standard output: No space left on device (fix: free space "
        "where the output goes, or redirect it to another file or disk)"]
