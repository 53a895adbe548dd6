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


DENSEBIG = ("name: densebig\ninput: [1000000000, 1000000000, 1000000000]\n"
            "layers:\n  - flatten\n  - dense: 1000000000\n  - dense: 1000000000\n")

CASES: list[Case] = [
    # once "needs about 4000000007999999828819968.0 TB": units past TB, no float noise
    Case("calc_check_bytes_past_exabytes", ["check", "d.yaml", "--memory-budget", "1GB"],
         "error: a check of densebig at batch 1 needs about 4.00 × 10^36 B (8.00 × 10^27 B of "
         "activations at batch 1, 4.00 × 10^36 B of parameters, 0 B of scratch), more than the "
         "memory budget of 1.0 GB (fix: use a smaller --batch (even batch 1 does not fit) or a "
         "smaller --input, or raise --memory-budget)", files={"d.yaml": DENSEBIG}),
    # the README's 1 PB cap, now reachable by name
    Case("calc_budget_one_petabyte", ["check", "lenet5", "--memory-budget", "1PB"], "", code=0),
    Case("calc_budget_petabyte_binary", ["check", "lenet5", "--memory-budget", "0.5PiB"], "",
         code=0),
    Case("calc_budget_past_petabyte", ["check", "lenet5", "--memory-budget", "1PiB"],
         "error: check: invalid value for '--memory-budget': memory size '1PiB' is more than "
         "1 PB (10^15 bytes) (fix: e.g. --memory-budget 2GB)", code=2),
    # --samples 0 was told "fewer --samples"
    Case("calc_gradcheck_work_samples_zero", ["gradcheck", "vgg16", "--samples", "0"],
         "error: a gradcheck of vgg16 checks about 138,658,600 entries × up to 22 forward passes "
         "of 30,985,196,800 units each (MACs + values + 50,000 a layer) = "
         "94,520,008,198,274,560,000, more than the 100,000,000,000 allowed (~3·10⁹ a second) "
         "(fix: a --samples above 0, e.g. --samples 5 (--samples 0 checks every entry), a smaller "
         "--input or --batch; or raise the limit: ARCHCALC_MAX_GRADCHECK_WORK=<larger number>)"),
    # pooling counts its windows (kernel 301 over 200×200: 0 MACs, 2.3·10¹¹ comparisons)
    Case("calc_gradcheck_counts_pool_windows", ["gradcheck", "p.yaml", "--samples", "1"],
         "error: a gradcheck of pbig checks about 1 entries × up to 22 forward passes of "
         "463,887,410,000 units each (MACs + values + 50,000 a layer) = 10,205,523,020,000, "
         "more than the 100,000,000,000 allowed (~3·10⁹ a second) (fix: a network with fewer "
         "parameters, a smaller --input or --batch; or raise the limit: "
         "ARCHCALC_MAX_GRADCHECK_WORK=<larger number>)",
         files={"p.yaml": "name: pbig\ninput: [64, 200, 200]\nlayers:\n"
                          "  - maxpool: {kernel: 301, padding: 150, stride: 1}\n"}),
    Case("calc_check_counts_pool_scratch", ["check", "p.yaml", "--memory-budget", "50MB"],
         "error: a check of pbig at batch 1 needs about 115.2 MB (30.7 MB of activations at "
         "batch 1, 0 B of parameters, 84.5 MB of scratch), more than the memory budget of "
         "50.0 MB (fix: use a smaller --batch (even batch 1 does not fit) or a smaller --input, "
         "or raise --memory-budget)",
         files={"p.yaml": "name: pbig\ninput: [64, 200, 200]\nlayers:\n"
                          "  - maxpool: {kernel: 301, padding: 150, stride: 1}\n"}),
    # Fits in memory, yet ran 375 s before this bound (174 s of them the forward pass).
    Case("calc_check_refuses_hours_of_work", ["check", "p.yaml"],
         "error: a check of pbig at batch 1 is about 2,319,390,770,000 units of work (MACs + "
         "10 per pooling offset + values + 50,000 a layer), more than the 1,000,000,000,000 "
         "allowed (~3·10⁹ a second) (fix: a smaller --batch or --input; or raise the limit: "
         "ARCHCALC_MAX_CHECK_WORK=<larger number>)",
         files={"p.yaml": "name: pbig\ninput: [64, 200, 200]\nlayers:\n"
                          "  - maxpool: {kernel: 301, padding: 150, stride: 1}\n"}),
]

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
