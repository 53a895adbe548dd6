"""Catalogue: command-line mistakes (issue 8, classes 9 and 11). Each is one line on stderr,
`error: COMMAND: click's message (fix: ...)`, exit 2: an option out of its range (the range
in the message), a value that is not a number, inf/nan, an unknown option or command, a
missing argument or value, a choice that is not offered. Never click's four-line form."""

from __future__ import annotations

import pytest

from archcalc.limits import echo
from catalogue.runner import Case, check_case


def usage(command: str, message: str, fix: str | None = None) -> str:
    where = f"{command}: " if command else ""
    help_ = f"see 'archcalc {command} --help'" if command else "see 'archcalc --help'"
    return f"error: {where}{message} (fix: {fix or help_})"


SEED_RANGE = "is not in the range 0<=x<=4294967295"
COUNT_RANGE = "is not in the range 1<=x<=1000000000"
HUGE = "9" * 5000

CASES = [
    # --seed: what NumPy's generators accept
    Case("opt_check_seed_negative", ["check", "lenet5", "--seed", "-1"],
         usage("check", f"invalid value for '--seed': -1 {SEED_RANGE}"), code=2),
    Case("opt_gradcheck_seed_negative", ["gradcheck", "lenet5", "--seed", "-1"],
         usage("gradcheck", f"invalid value for '--seed': -1 {SEED_RANGE}"), code=2),
    Case("opt_check_seed_2_32", ["check", "lenet5", "--seed", "4294967296"],
         usage("check", f"invalid value for '--seed': 4294967296 {SEED_RANGE}"), code=2),
    # counts and sizes
    Case("opt_summary_batch_zero", ["summary", "lenet5", "--batch", "0"],
         usage("summary", "invalid value for '--batch': 0 is not in the range x>=1"), code=2),
    Case("opt_memory_batch_negative", ["memory", "lenet5", "--batch", "-3"],
         usage("memory", "invalid value for '--batch': -3 is not in the range x>=1"), code=2),
    Case("opt_check_batch_zero", ["check", "lenet5", "--batch", "0"],
         usage("check", "invalid value for '--batch': 0 is not in the range x>=1"), code=2),
    Case("opt_gradcheck_batch_huge", ["gradcheck", "lenet5", "--batch", "257"],
         usage("gradcheck", "invalid value for '--batch': 257 is not in the range 1<=x<=256"),
         code=2),
    Case("opt_gradcheck_samples_negative", ["gradcheck", "lenet5", "--samples", "-1"],
         usage("gradcheck", "invalid value for '--samples': -1 is not in the range x>=0"),
         code=2),
    Case("opt_summary_depth_zero", ["summary", "lenet5", "--depth", "0"],
         usage("summary", "invalid value for '--depth': 0 is not in the range x>=1"), code=2),
    Case("opt_report_depth_zero", ["report", "lenet5", "--depth", "0"],
         usage("report", "invalid value for '--depth': 0 is not in the range x>=1"), code=2),
    # floats: finite, in range
    Case("opt_gradcheck_tolerance_nan", ["gradcheck", "lenet5", "--tolerance", "nan"],
         usage("gradcheck", "invalid value for '--tolerance': 'nan' is not a finite number"),
         code=2),
    Case("opt_gradcheck_tolerance_inf", ["gradcheck", "lenet5", "--tolerance", "inf"],
         usage("gradcheck", "invalid value for '--tolerance': 'inf' is not a finite number"),
         code=2),
    Case("opt_gradcheck_tolerance_zero", ["gradcheck", "lenet5", "--tolerance", "0"],
         usage("gradcheck", "invalid value for '--tolerance': 0.0 is not in the range 0<x<=1"),
         code=2),
    # the ad hoc layers
    Case("opt_layer_conv_filters_zero",
         ["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "0"],
         usage("layer conv", f"invalid value for '--filters': 0 {COUNT_RANGE}"), code=2),
    Case("opt_layer_conv_kernel_zero_axis",
         ["layer", "conv", "--input", "3x8x8", "--kernel", "3x0", "--filters", "4"],
         usage("layer conv", f"invalid value for '--kernel': 0 {COUNT_RANGE}",
               "a positive integer or HxW, e.g. --kernel 3"), code=2),
    Case("opt_layer_conv_groups_huge",
         ["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "4", "--groups",
          "10000000000"],
         usage("layer conv", f"invalid value for '--groups': 10000000000 {COUNT_RANGE}"), code=2),
    Case("opt_layer_conv_dilation_zero",
         ["layer", "conv", "--input", "3x8x8", "--kernel", "3", "--filters", "4", "--dilation",
          "0"],
         usage("layer conv", f"invalid value for '--dilation': 0 {COUNT_RANGE}",
               "a positive integer or HxW, e.g. --dilation 3"), code=2),
    Case("opt_layer_pool_kernel_huge_digits",
         ["layer", "pool", "--input", "3x8x8", "--kernel", HUGE],
         usage("layer pool", f"invalid value for '--kernel': '{echo(HUGE, 40)}' is not an "
               "integer or HxW", "e.g. --kernel 3 or --kernel 1x7"), code=2),
    Case("opt_layer_dense_units_zero", ["layer", "dense", "--input", "9216", "--units", "0"],
         usage("layer dense", f"invalid value for '--units': 0 {COUNT_RANGE}"), code=2),
    Case("opt_bottleneck_stride_zero",
         ["bottleneck", "--input", "192x28x28", "--kernel", "5", "--filters", "32", "--reduce",
          "16", "--stride", "0"],
         usage("bottleneck", f"invalid value for '--stride': 0 {COUNT_RANGE}"), code=2),
    Case("opt_factorize_kernel_negative",
         ["factorize", "--input", "64x56x56", "--kernel", "-5", "--filters", "64"],
         usage("factorize", f"invalid value for '--kernel': -5 {COUNT_RANGE}"), code=2),
    # not a number, a value the parser refuses (its own fix), a huge number echoed in part
    Case("opt_batch_not_a_number", ["summary", "lenet5", "--batch", "abc"],
         usage("summary", "invalid value for '--batch': 'abc' is not a valid integer range"),
         code=2),
    Case("opt_memory_budget_words", ["check", "lenet5", "--memory-budget", "lots"],
         usage("check", "invalid value for '--memory-budget': bad memory size 'lots'",
               "write e.g. 2GB, 500MB or 1.5GiB"), code=2),
    Case("opt_input_shape_bad", ["summary", "lenet5", "--input", "3x"],
         usage("summary", "invalid value for '--input': bad input shape '3x'",
               "write CxHxW, e.g. --input 3x224x224"), code=2),
    # the shape of the command line itself
    Case("opt_unknown_option", ["summary", "lenet5", "--bogus"],
         usage("summary", "no such option '--bogus'. Did you mean '--columns'?"), code=2),
    Case("opt_unknown_global_option", ["--bogus"], usage("", "no such option '--bogus'"),
         code=2),
    Case("opt_unknown_command", ["summarise", "lenet5"],
         usage("", "no such command 'summarise'. Did you mean 'summary'?"), code=2),
    Case("opt_missing_argument", ["summary"], usage("summary", "missing argument 'SPEC'"),
         code=2),
    Case("opt_missing_required_option", ["plot", "lenet5"],
         usage("plot", "missing option '--out'"), code=2),
    Case("opt_option_without_value", ["summary", "lenet5", "--batch"],
         usage("summary", "option '--batch' requires an argument"), code=2),
    Case("opt_nested_group_option_without_value", ["layer", "conv", "--input"],
         usage("layer conv", "option '--input' requires an argument"), code=2),
    Case("opt_bad_format_choice", ["summary", "lenet5", "--format", "xml"],
         usage("summary", "invalid value for '--format': 'xml' is not one of 'table', 'json', "
               "'csv', 'markdown'"), code=2),
    Case("opt_bad_optimizer_choice", ["memory", "lenet5", "--optimizer", "lion"],
         usage("memory", "invalid value for '--optimizer': 'lion' is not one of 'sgd', "
               "'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam'"), code=2),
    # the same through `python -m archcalc`, a real process
    Case("opt_seed_negative_subprocess", ["check", "lenet5", "--seed", "-1"],
         usage("check", f"invalid value for '--seed': -1 {SEED_RANGE}"), code=2,
         subprocess=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_usage_errors_are_one_line(tmp_path):
    """Not just the first line: click's Usage/Try/blank/Error form is gone."""
    from catalogue.runner import run_case
    for case in CASES:
        if not case.subprocess:
            code, out, err = run_case(case, tmp_path)
            assert err.count("\n") == 1 and "Usage:" not in err, (case.id, err)
