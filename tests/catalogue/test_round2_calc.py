"""Catalogue: calculations whose work grew faster than their input (issue 8, round 2, calc).

Comparisons of specs sharing thousands of stage names (each stage looked up by walking every
row: quadratic), pooling with a kernel far larger than the input (work ∝ kernel²), local
response normalisation with a window far wider than the channels (a padded copy of `size`
channels), byte counts past terabytes printed as float noise, budgets in PB refused, and a
gradcheck fix that named the option the user had already given.

Slow ones run in a fresh process by `measure()`: under 200 MB and 5 s of CPU.
"""

from __future__ import annotations

import pytest

from catalogue.runner import Case, check_case, measure


def _many(n: int) -> str:
    return f"name: many\ninput: [1, 2, 2]\nlayers:\n  - repeat: {n}\n    layers: [relu]\n"


def _pool(kind: str, k: int) -> str:
    return (f"name: p\ninput: [1, 1, 1]\nlayers:\n"
            f"  - {kind}: {{kernel: {k}, padding: {k // 2}, stride: 1}}\n")


def _lrn(size: int) -> str:
    return f"name: l\ninput: [3, 4, 4]\nlayers:\n  - lrn: {{size: {size}}}\n"


CASES: list[Case] = []

# Commands that must finish quickly, with the exit code they end with.
SLOW: list[tuple[str, list[str], dict[str, str], int]] = [
    ("calc_compare_many_stages", ["compare", "m.yaml", "m.yaml", "--format", "json"],
     {"m.yaml": _many(4000)}, 0),
    ("calc_compare_many_stages_inputs",
     ["compare", "m.yaml", "--input", "1x2x2", "--input", "1x3x3", "--format", "markdown"],
     {"m.yaml": _many(4000)}, 0),
    ("calc_report_many_stages", ["report", "m.yaml", "m.yaml", "--out", "r.md"],
     {"m.yaml": _many(4000)}, 0),
    # a kernel of 50 000 on a 1×1 input: 2.5·10⁹ offsets unless those reading only padding
    # are skipped
    ("calc_check_maxpool_huge_kernel", ["check", "p.yaml"],
     {"p.yaml": _pool("maxpool", 50000)}, 0),
    ("calc_check_avgpool_huge_kernel", ["check", "p.yaml"],
     {"p.yaml": _pool("avgpool", 20000)}, 0),
    ("calc_gradcheck_maxpool_big_kernel", ["gradcheck", "p.yaml"],
     {"p.yaml": _pool("maxpool", 1000)}, 0),
    # an LRN window of 10⁹ channels over 3: a (1, 10⁹+2, 4, 4) padded copy unless clamped
    ("calc_check_lrn_huge_size", ["check", "l.yaml"], {"l.yaml": _lrn(10**9)}, 0),
    ("calc_gradcheck_lrn_huge_size", ["gradcheck", "l.yaml"], {"l.yaml": _lrn(3 * 10**8)}, 0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case: Case, tmp_path) -> None:
    check_case(case, tmp_path)


@pytest.mark.parametrize("case_id,args,files,code", SLOW, ids=[s[0] for s in SLOW])
def test_bounded(case_id, args, files, code, tmp_path) -> None:
    for rel, content in files.items():
        (tmp_path / rel).write_text(content, encoding="utf-8")
    used = measure(args, tmp_path, timeout=60)
    assert used.code == code, used.stderr
    assert used.peak_mb < 200 and used.cpu_s < 5, (case_id, used.peak_mb, used.cpu_s)
