"""Catalogue: `archcalc sweep` ranges and size lists that are too long, backwards, out of
range or nonsense (issue 8, class 3): each is refused before a list is built."""

from __future__ import annotations

import pytest

from catalogue.runner import Case, check_case, measure, run_case

FLAT = "name: flat\ninput: [16]\nlayers:\n  - dense: 4\n"
# Its branches never agree (3×3 without padding vs 1×1): no size fits, however large.
NEVER = """name: never
input: [1, 32, 32]
layers:
  - add:
      - [{conv: {filters: 2, kernel: 3}}]
      - [{conv: {filters: 2, kernel: 1}}]
"""
SW = ["sweep", "alexnet"]

CASES = [
    Case("sweep_range_billion", SW + ["--from", "1", "--to", "1000000000"],
         "error: --from 1 --to 1,000,000,000 --step 1 is 1,000,000,000 sizes, more than the "
         "limit of 1,000 (MAX_SWEEP_SIZES) (fix: use --step 1,000,000 or more, a shorter "
         "range, or ARCHCALC_MAX_SWEEP_SIZES=<larger number>)"),
    Case("sweep_range_one_over", SW + ["--from", "1", "--to", "1001"],
         "error: --from 1 --to 1,001 --step 1 is 1,001 sizes, more than the limit of 1,000 "
         "(MAX_SWEEP_SIZES) (fix: use --step 2 or more, a shorter range, or "
         "ARCHCALC_MAX_SWEEP_SIZES=<larger number>)"),
    Case("sweep_range_env_cap", SW + ["--from", "100", "--to", "110"],
         "error: --from 100 --to 110 --step 1 is 11 sizes, more than the limit of 10 "
         "(MAX_SWEEP_SIZES) (fix: use --step 2 or more, a shorter range, or "
         "ARCHCALC_MAX_SWEEP_SIZES=<larger number>)",
         env={"ARCHCALC_MAX_SWEEP_SIZES": "10"}),
    Case("sweep_env_cap_not_positive", SW + ["--sizes", "67"],
         "error: ARCHCALC_MAX_SWEEP_SIZES='0' is not a positive integer (fix: unset it "
         "(default 1,000: input sizes in one sweep (--sizes, or a --from/--to/--step range)) "
         "or give a number)",
         env={"ARCHCALC_MAX_SWEEP_SIZES": "0"}),
    Case("sweep_step_zero", SW + ["--from", "1", "--to", "9", "--step", "0"],
         "error: sweep: invalid value for '--step': 0 is not in the range 1<=x<=1000000000 "
         "(fix: see 'archcalc sweep --help')", code=2),
    Case("sweep_step_negative", SW + ["--from", "1", "--to", "9", "--step", "-4"],
         "error: sweep: invalid value for '--step': -4 is not in the range 1<=x<=1000000000 "
         "(fix: see 'archcalc sweep --help')", code=2),
    Case("sweep_step_beyond_max", SW + ["--from", "1", "--to", "9", "--step", "1000000001"],
         "error: sweep: invalid value for '--step': 1000000001 is not in the range "
         "1<=x<=1000000000 (fix: see 'archcalc sweep --help')",
         code=2),
    Case("sweep_from_zero", SW + ["--from", "0", "--to", "9"],
         "error: sweep: invalid value for '--from': 0 is not in the range 1<=x<=1000000000 "
         "(fix: see 'archcalc sweep --help')", code=2),
    Case("sweep_to_beyond_max", SW + ["--from", "1", "--to", "1000000001"],
         "error: sweep: invalid value for '--to': 1000000001 is not in the range "
         "1<=x<=1000000000 (fix: see 'archcalc sweep --help')", code=2),
    Case("sweep_to_not_a_number", SW + ["--from", "1", "--to", "1e9"],
         "error: sweep: invalid value for '--to': '1e9' is not a valid integer range (fix: "
         "see 'archcalc sweep --help')", code=2),
    Case("sweep_backwards", SW + ["--from", "512", "--to", "32"],
         "error: --to 32 is below --from 512 (fix: swap them)"),
    Case("sweep_no_to", SW + ["--from", "32"],
         "error: no sizes to sweep (fix: give --sizes 32,64,128 or --from 32 --to 512 --step "
         "32)"),
    Case("sweep_both_forms", SW + ["--sizes", "32", "--from", "1", "--to", "3"],
         "error: give either --sizes or --from/--to/--step, not both (fix: e.g. --sizes "
         "32,64,128,224)"),
    Case("sweep_sizes_beyond_max", SW + ["--sizes", "1000000001"],
         "error: input size 1000000001 in --sizes is outside 1..1,000,000,000 (fix: give "
         "sizes from 1 to 1,000,000,000)"),
    Case("sweep_sizes_zero", SW + ["--sizes", "0,32"],
         "error: input size 0 in --sizes is outside 1..1,000,000,000 (fix: give sizes from 1 "
         "to 1,000,000,000)"),
    Case("sweep_sizes_negative", SW + ["--sizes", "64,-3"],
         "error: input size -3 in --sizes is outside 1..1,000,000,000 (fix: give sizes from 1 "
         "to 1,000,000,000)"),
    Case("sweep_sizes_junk", SW + ["--sizes", "32,abc"],
         "error: bad --sizes value 'abc' (fix: comma-separated integers, e.g. --sizes "
         "32,64,128,224)"),
    Case("sweep_sizes_float", SW + ["--sizes", "67.5"],
         "error: bad --sizes value '67.5' (fix: comma-separated integers, e.g. --sizes "
         "32,64,128,224)"),
    Case("sweep_sizes_empty", SW + ["--sizes", " , "],
         "error: --sizes lists no size (fix: e.g. --sizes 32,64,128,224)"),
    Case("sweep_sizes_too_many", SW + ["--sizes", "67," * 1000 + "67"],
         "error: --sizes lists 1,001 sizes, more than the limit of 1,000 (MAX_SWEEP_SIZES) "
         "(fix: sweep fewer sizes, or if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_SWEEP_SIZES=<larger number>)"),
    Case("sweep_sizes_5000_digits", SW + ["--sizes", "9" * 5000],
         "error: input size 9999999999999999999999999999999999999999… (5,000 characters) in "
         "--sizes is outside 1..1,000,000,000 (fix: give sizes from 1 to 1,000,000,000)"),
    Case("sweep_work_env_cap", SW + ["--from", "32", "--to", "227"],
         "error: alexnet.yaml: sweeping 196 sizes of spec 'alexnet' (23 layers) takes 4,692 "
         "layer evaluations with the search for the smallest fit, more than the limit of "
         "2,000 (MAX_SWEEP_WORK) (fix: sweep at most 78 sizes, or if the input is legitimate, "
         "raise the limit: ARCHCALC_MAX_SWEEP_WORK=<larger number>)",
         env={"ARCHCALC_MAX_SWEEP_WORK": "2000"}),
    Case("sweep_flat_spec", ["sweep", "flat.yaml", "--sizes", "32"],
         "error: flat.yaml: sweep varies a C×H×W input's H and W; spec 'flat' takes a flat "
         "input of 16 values (fix: sweep a spec whose input is [C, H, W])",
         files={"flat.yaml": FLAT}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_a_spec_that_never_fits_says_how_far_it_searched(tmp_path):
    """--sizes 1000000000 on a spec that never fits scanned 10⁹ sizes one by one. Now the
    bisection and MAX_SWEEP_SCAN bound it, and the footer says how far the search knows."""
    (tmp_path / "never.yaml").write_text(NEVER)
    case = Case("-", ["sweep", "never.yaml", "--sizes", "1000000000"], "", code=0)
    code, out, err = run_case(case, tmp_path)
    assert (code, err) == (0, ""), err
    assert ("No square input from 1 to 258 fits (larger sizes, up to 1,000,000,000, were not "
            "searched: MAX_SWEEP_SCAN, MAX_SWEEP_WORK); at 1×258×258: layer 'add1': add needs "
            "equal shapes"
            ) in " ".join(out.split())     # the footer is folded at 80 columns


def test_sweep_bombs_stay_small(tmp_path):
    """The issue's two sweep bombs, measured in a fresh process (getrusage)."""
    (tmp_path / "never.yaml").write_text(NEVER)
    (tmp_path / "deep.yaml").write_text("name: deep\ninput: [1, 8, 8]\nlayers:\n"
                                        "  - {repeat: 30000, layers: [relu]}\n")
    for args in (["sweep", "alexnet", "--from", "1", "--to", "1000000000"],
                 ["sweep", "never.yaml", "--sizes", "1000000000"],
                 ["sweep", "deep.yaml", "--from", "1", "--to", "1000"],  # 30,000 × 1,010
                 ["sweep", "resnet50", "--sizes", "1000000000", "--format", "json"]):
        m = measure(args, tmp_path)
        assert m.code in (0, 1) and "Traceback" not in m.stderr, m.stderr
        assert m.code == 0 or "MAX_SWEEP" in m.stderr, m.stderr
        assert m.peak_mb < 200 and m.cpu_s < 5, (args, m.peak_mb, m.cpu_s)
