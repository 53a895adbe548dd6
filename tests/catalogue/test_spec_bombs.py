"""Catalogue: specs that would make loading explode or mislead (issue 8, classes 1 and 10).

YAML alias bombs ("billion laughs": a few hundred bytes whose anchors expand to 9⁹ values)
through every route a value takes (a layer field, a block argument, a layer name, the
network's name/source/description, a key, a mapping), nesting past the depth limit, repeats
and blocks that unroll past the layer limit, block loops, and the messages that used to
mislead (a loop printed 32 times, `**` called "not a valid integer", a dilated kernel's span
without its kernel, a channels-last --input called "kernel larger than input").

Each bomb is also run in a fresh process by `measure()`: under 200 MB and 5 s of CPU.
"""

from __future__ import annotations

import pytest

from archcalc.limits import DEFAULTS
from catalogue.runner import Case, check_case, measure

HEAD = "name: t\ninput: [1, 8, 8]\n"
NODES, LAYERS, UNROLLED = (f"{DEFAULTS[name][0]:,}"
                           for name in ("MAX_SPEC_NODES", "MAX_LAYERS", "MAX_UNROLLED"))
RAISE = "(fix: if the input is legitimate, raise the limit: ARCHCALC_{}=<larger number>)"
TOO_MANY = (f"the spec expands to more than {NODES} values once its aliases (*name) are "
            "expanded " + RAISE.format("MAX_SPEC_NODES"))
DEEP = "lists and mappings nest more than 500 levels deep " + RAISE.format("MAX_SPEC_DEPTH")


def laughs(levels: int = 9, width: int = 9) -> str:
    """A flow list [&a [1 × width], &b [*a × width], ...]: width^levels values once expanded,
    about 40 bytes per level."""
    names = "abcdefghijklmnopqrstuvwxyz"
    parts = ["&a [" + ", ".join(["1"] * width) + "]"]
    for level in range(1, levels):
        parts.append(f"&{names[level]} [" + ", ".join([f"*{names[level - 1]}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def mapping_laughs(levels: int = 9, width: int = 9) -> str:
    """The same with mappings: {k0: *a, k1: *a, ...}."""
    names = "abcdefghijklmnopqrstuvwxyz"
    parts = ["&a {" + ", ".join(f"k{i}: 1" for i in range(width)) + "}"]
    for level in range(1, levels):
        parts.append(f"&{names[level]} {{" + ", ".join(f"k{i}: *{names[level - 1]}"
                                                       for i in range(width)) + "}")
    return "[" + ", ".join(parts) + "]"


def merge_laughs(levels: int = 9, width: int = 9) -> str:
    """Merge keys: {<<: [*a, *a, ...]} — PyYAML's flatten_mapping would copy width^levels
    key/value pairs before any duplicate is dropped."""
    names = "abcdefghijklmnopqrstuvwxyz"
    parts = ["&a {k0: 1, k1: 1, k2: 1}"]
    for level in range(1, levels):
        parts.append(f"&{names[level]} {{<<: [" + ", ".join([f"*{names[level - 1]}"] * width)
                     + "]}")
    return "[" + ", ".join(parts) + "]"


BOMB = laughs()

# Every route a value takes through loading: each was 30 s or more and GBs before.
BOMBS = {
    "spec_bomb_field": HEAD + f"layers:\n  - conv: {{filters: 4, kernel: {BOMB}}}\n",
    "spec_bomb_with": HEAD + "blocks:\n  b: {args: [k], layers: [{conv: {filters: 4, "
                      f"kernel: k}}}}]}}\nlayers:\n  - {{use: b, with: [{BOMB}]}}\n",
    "spec_bomb_layer_name": HEAD + f"layers:\n  - conv: {{name: {BOMB}, filters: 4, kernel: 3}}\n",
    "spec_bomb_source": f"name: t\nsource: {BOMB}\ninput: [1, 8, 8]\nlayers: [relu]\n",
    "spec_bomb_description": HEAD + f"blocks:\n  b: {{description: {BOMB}, layers: [relu]}}\n"
                             "layers: [b]\n",
    "spec_bomb_network_name": f"name: {BOMB}\ninput: [1, 8, 8]\nlayers: [relu]\n",
    "spec_bomb_key": HEAD + f"layers:\n  - {{? {BOMB}\n     : relu}}\n",
    "spec_bomb_mapping": HEAD + "layers:\n  - conv: {filters: 4, kernel: 3, x: "
                         + mapping_laughs() + "}\n",
    "spec_bomb_merge_keys": HEAD + "layers:\n  - conv: {filters: 4, kernel: 3, x: "
                            + merge_laughs() + "}\n",
}
BOMB_LINES = {
    "spec_bomb_field": 4, "spec_bomb_with": 6, "spec_bomb_layer_name": 4, "spec_bomb_source": 2,
    "spec_bomb_description": 4, "spec_bomb_network_name": 1, "spec_bomb_key": 4,
    "spec_bomb_mapping": 4, "spec_bomb_merge_keys": 4,
}


def _chain_blocks(count: int, body: str = "[relu]") -> str:
    lines = [f"  b0: {{layers: {body}}}"]
    lines += [f"  b{i}: {{layers: [b{i - 1}]}}" for i in range(1, count)]
    return "blocks:\n" + "\n".join(lines) + f"\nlayers: [b{count - 1}]\n"


def _doubling_blocks(count: int) -> str:
    """b_i = [b_{i-1}, b_{i-1}]: 2^count layers from a few hundred bytes."""
    lines = ["  b0: {layers: [relu, relu]}"]
    lines += [f"  b{i}: {{layers: [b{i - 1}, b{i - 1}]}}" for i in range(1, count)]
    return "blocks:\n" + "\n".join(lines) + f"\nlayers: [b{count - 1}]\n"


# A block whose body is 3,000 values that build nothing (a repeat of 0), used 10,000 times:
# substituting its argument would copy 30 million values for no layer at all.
COPIES = (HEAD + "blocks:\n  b: {args: [k], layers: [{repeat: 0, layers: ["
          + ", ".join(f"{{conv: {{filters: k, kernel: {i}}}}}" for i in range(1, 301))
          + "]}]}\nlayers:\n  - {repeat: 10000, use: b, with: [4]}\n")

CASES = [Case(case_id, ["validate", "bomb.yaml"],
              f"error: bomb.yaml:{BOMB_LINES[case_id]}: {TOO_MANY}", files={"bomb.yaml": text})
         for case_id, text in BOMBS.items()]
CASES += [
    Case("spec_alias_of_itself", ["summary", "net.yaml"],
         "error: net.yaml:4: a value contains itself through an alias (*name) (fix: an anchor "
         "(&name) cannot be used inside its own value)",
         files={"net.yaml": HEAD + "layers:\n  - &a [relu, *a]\n"}),
    Case("spec_nesting_600", ["summary", "net.yaml"], f"error: net.yaml:3: {DEEP}",
         files={"net.yaml": HEAD + "layers: " + "[" * 600 + "relu" + "]" * 600 + "\n"}),
    Case("spec_nesting_100000", ["validate", "net.yaml"], f"error: net.yaml:3: {DEEP}",
         files={"net.yaml": HEAD + "layers: " + "[" * 100_000 + "relu" + "]" * 100_000 + "\n"}),
    Case("spec_nesting_through_aliases", ["summary", "net.yaml"], f"error: net.yaml:4: {DEEP}",
         files={"net.yaml": HEAD + "layers: " + "".join(f"&n{i} [" for i in range(300))
                + "relu" + "]" * 300 + "\nx: " + "[" * 250 + "*n0" + "]" * 250 + "\n"}),
    Case("spec_values_limit_env", ["summary", "net.yaml"],
         "error: net.yaml:3: the spec expands to more than 50 values once its aliases (*name) "
         "are expanded " + RAISE.format("MAX_SPEC_NODES"),
         files={"net.yaml": HEAD + "layers: [" + ", ".join(["relu"] * 60) + "]\n"},
         env={"ARCHCALC_MAX_SPEC_NODES": "50"}),
    # Unrolling: refused from the counts, before a layer is built.
    Case("spec_repeat_of_repeat", ["summary", "net.yaml"],
         "error: net.yaml:4: repeat: 1,000 × 2,000 layer(s) = 2,000,000 layers, more than "
         f"archcalc unrolls ({LAYERS}) (fix: check the repeat counts; if the input is "
         "legitimate, raise the limit: ARCHCALC_MAX_LAYERS=<larger number>)",
         files={"net.yaml": HEAD + "layers:\n  - repeat: 1000\n    layers:\n"
                "      - {repeat: 1000, layers: [relu, relu]}\n"}),
    Case("spec_repeat_huge", ["validate", "net.yaml"],
         "error: net.yaml:4: repeat: 100,000,000,000 × 1 layer(s) = 100,000,000,000 layers, "
         f"more than archcalc unrolls ({LAYERS}) (fix: check the repeat counts; if the input "
         "is legitimate, raise the limit: ARCHCALC_MAX_LAYERS=<larger number>)",
         files={"net.yaml": HEAD + "layers:\n  - {repeat: 100000000000, layers: [relu]}\n"}),
    Case("spec_repeat_of_nothing_huge", ["validate", "net.yaml"],
         f"error: net.yaml:4: repeats and blocks expand to more than {UNROLLED} items and values "
         "once unrolled " + RAISE.format("MAX_UNROLLED"),
         files={"net.yaml": HEAD + "layers:\n  - {repeat: 100000000000, layers: []}\n"}),
    Case("spec_doubling_blocks", ["summary", "net.yaml"],
         f"error: net.yaml:20: the spec unrolls to more than {LAYERS} layers (the most archcalc "
         "unrolls) (fix: check the repeat counts; if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_LAYERS=<larger number>)",
         files={"net.yaml": HEAD + _doubling_blocks(40)}),
    Case("spec_layers_limit_env", ["summary", "net.yaml"],
         "error: net.yaml:4: repeat: 11 × 1 layer(s) = 11 layers, more than archcalc unrolls "
         "(10) (fix: check the repeat counts; if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_LAYERS=<larger number>)",
         files={"net.yaml": HEAD + "layers:\n  - {repeat: 11, layers: [relu]}\n"},
         env={"ARCHCALC_MAX_LAYERS": "10"}),
    Case("spec_substitution_copies", ["summary", "net.yaml"],
         f"error: net.yaml:6: repeats and blocks expand to more than {UNROLLED} items and values "
         "once unrolled " + RAISE.format("MAX_UNROLLED"),
         files={"net.yaml": COPIES}),
    Case("spec_empty_repeats", ["validate", "net.yaml"],
         f"error: net.yaml:6: repeats and blocks expand to more than {UNROLLED} items and values "
         "once unrolled " + RAISE.format("MAX_UNROLLED"),
         files={"net.yaml": HEAD + "layers:\n  - repeat: 1000\n    layers:\n      - repeat: 1000\n"
                "        layers: [{repeat: 1000, layers: []}]\n  - relu\n"}),
    # Block loops and depth: named once, with the blocks.
    Case("spec_block_uses_itself", ["summary", "net.yaml"],
         "error: net.yaml:4: block 'loop' → 'loop' is a loop that never ends (each uses the "
         "next with the same arguments) (fix: remove the 'use' that closes the loop)",
         files={"net.yaml": HEAD + "blocks:\n  loop: {args: [], layers: [{use: loop}]}\n"
                "layers:\n  - {use: loop}\n"}),
    Case("spec_blocks_use_each_other", ["validate", "net.yaml"],
         "error: net.yaml:5: block 'a' → 'b' → 'a' is a loop that never ends (each uses the "
         "next with the same arguments) (fix: remove the 'use' that closes the loop)",
         files={"net.yaml": HEAD + "blocks:\n  a: {layers: [b]}\n  b: {layers: [a]}\n"
                "layers: [a]\n"}),
    Case("spec_block_loop_of_three", ["summary", "net.yaml"],
         "error: net.yaml:6: block 'a' → 'b' → 'c' → 'a' is a loop that never ends (each "
         "uses the next with the same arguments) (fix: remove the 'use' that closes the loop)",
         files={"net.yaml": HEAD + "blocks:\n  a: {args: [f], layers: [{use: b, with: [f]}]}\n"
                "  b: {args: [f], layers: [relu, {use: c, with: [f]}]}\n"
                "  c: {args: [f], layers: [{use: a, with: [f]}]}\n"
                "layers:\n  - {use: a, with: [4]}\n"}),
    Case("spec_block_recursion_never_ends", ["summary", "net.yaml"],
         "error: net.yaml:4: items nest more than 500 levels deep: block 't' uses itself 501 "
         "levels deep, with changing arguments (fix: make the recursion end sooner (repeat: 0 "
         "stops it), or if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_SPEC_DEPTH=<larger number>)",
         files={"net.yaml": HEAD + "blocks:\n  t: {args: [n], layers: [relu, {use: t, with: "
                "[n + 1]}]}\nlayers:\n  - {use: t, with: [0]}\n"}),
    Case("spec_blocks_600_deep", ["summary", "net.yaml"],
         "error: net.yaml:103: items nest more than 500 levels deep (blocks in use: 'b599' → "
         "'b598' → 'b597' → … → 'b100' → 'b99' (501 blocks)) "
         + RAISE.format("MAX_SPEC_DEPTH"),
         files={"net.yaml": HEAD + _chain_blocks(600)}),
    # Formulas in blocks: what is wrong, not "should be a valid integer".
    Case("spec_expr_power", ["summary", "net.yaml"],
         "error: net.yaml:6: block 'b': '**' is not allowed in 'f ** 100' (fix: block "
         "arithmetic has only + - * // % ( ))",
         files={"net.yaml": HEAD + "blocks:\n  b: {args: [f], layers: [{conv: {filters: f ** 100,"
                " kernel: 1}}]}\nlayers:\n  - {use: b, with: [2]}\n"}),
    Case("spec_expr_unknown_name", ["summary", "net.yaml"],
         "error: net.yaml:4: layer 'b1.conv1': conv2d: field 'filters': unknown name 'x' in "
         "'4 * x' (in block 'b' used at line 6) (fix: block args are f)",
         files={"net.yaml": HEAD + "blocks:\n  b: {args: [f], layers: [{conv: {filters: 4 * x, "
                "kernel: 1}}]}\nlayers:\n  - {use: b, with: [2]}\n"}),
    Case("spec_expr_unknown_name_beside_arg", ["summary", "net.yaml"],
         "error: net.yaml:6: block 'b': unknown name 'x' in '4 * f + x' (fix: block args are f)",
         files={"net.yaml": HEAD + "blocks:\n  b: {args: [f], layers: [{conv: {filters: 4 * f + x,"
                " kernel: 1}}]}\nlayers:\n  - {use: b, with: [2]}\n"}),
    Case("spec_expr_function_call", ["summary", "net.yaml"],
         "error: net.yaml:6: block 'b': 'max(f, 2)' is not block arithmetic (fix: block "
         "arithmetic has only + - * // % ( ) on numbers and block args)",
         files={"net.yaml": HEAD + "blocks:\n  b: {args: [f], layers: [{conv: {filters: "
                "'max(f, 2)', kernel: 1}}]}\nlayers:\n  - {use: b, with: [2]}\n"}),
    Case("spec_expr_outside_block", ["summary", "net.yaml"],
         "error: net.yaml:4: layer 'conv1': conv2d: field 'filters': unknown name 'width' in "
         "'2 * width' (fix: arithmetic works inside a block, on its args)",
         files={"net.yaml": HEAD + "layers:\n  - conv: {filters: 2 * width, kernel: 3}\n"}),
    Case("spec_expr_repeat_count", ["summary", "net.yaml"],
         "error: net.yaml:4: repeat: unknown name 'n' in 'n - 1' (fix: arithmetic works inside "
         "a block, on its args)",
         files={"net.yaml": HEAD + "layers:\n  - {repeat: n - 1, layers: [relu]}\n"}),
    # Names and echoed values: bounded, whatever the file holds.
    Case("spec_name_a_list", ["summary", "net.yaml"],
         "error: net.yaml:4: a name must be text, got ['a', 'b'] (fix: name: conv1)",
         files={"net.yaml": HEAD + "layers:\n  - conv: {name: [a, b], filters: 4, kernel: 3}\n"}),
    Case("spec_name_too_long", ["summary", "net.yaml"],
         "error: net.yaml:4: a name of 5,000 characters ('" + "n" * 40
         + "… (5,000 characters)'): names have at most 1,000 (fix: a shorter name; if the input is legitimate, raise the "
         "limit: ARCHCALC_MAX_NAME_CHARS=<larger number>)",
         files={"net.yaml": HEAD + "layers:\n  - conv: {name: " + "n" * 5000
                + ", filters: 4, kernel: 3}\n"}),
    Case("spec_block_name_too_long", ["summary", "net.yaml"],
         "error: net.yaml:5: a block name of 100,000 characters ('" + "b" * 40
         + "… (100,000 characters)'): names have at most 1,000 (fix: a shorter name; if the "
         "input is legitimate, raise the limit: ARCHCALC_MAX_NAME_CHARS=<larger number>)",
         files={"net.yaml": HEAD + "blocks:\n  ? " + "b" * 100_000 + "\n  : {layers: [relu]}\n"
                "layers: [relu]\n"}),
    Case("spec_long_value_echo", ["summary", "net.yaml"],
         "error: net.yaml:4: layer 'conv1': conv2d: bad value for 'kernel' (got '"
         + "x" * 59 + "…) (fix: a positive int or [h, w])",
         files={"net.yaml": HEAD + "layers:\n  - conv: {filters: 4, kernel: " + "x" * 100_000
                + "}\n"}),
    Case("spec_long_list_echo", ["summary", "net.yaml"],
         "error: net.yaml:2: 'input': value error, input must be [C, H, W], [T, F] (a "
         "sequence of T steps of F features) or [N] (a flat input, or T token ids) (got [1, 1, "
         "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,…) (fix: input: [C, H, W] with "
         "positive integers, e.g. [3, 224, 224]; [T, F] for a sequence, [T] for token ids)",
         files={"net.yaml": "name: t\ninput: [" + ", ".join(["1"] * 50_000)
                + "]\nlayers: [relu]\n"}),
    # Shapes: say what the numbers are.
    Case("spec_dilated_kernel", ["summary", "net.yaml"],
         "error: net.yaml:4: layer 'conv1': kernel 7 dilated by 2 spans 13, larger than the "
         "padded input 8 along H: (8 − 13 + 2·0)/1 + 1 = -4 → output size -4 (fix: use a "
         "larger --input, more padding, or a smaller kernel/stride earlier)",
         files={"net.yaml": HEAD + "layers:\n  - conv: {filters: 4, kernel: 7, dilation: 2}\n"}),
    Case("spec_channels_last_option", ["summary", "lenet5", "--input", "28x28x1"],
         "error: lenet5.yaml:9: layer 'conv1': kernel 5 larger than the padded input 1 along "
         "W: (1 − 5 + 2·0)/1 + 1 = -3 → output size -3 (fix: archcalc reads the input as "
         "C×H×W and 28×28×1 looks like H×W×C (channels last): use 1x28x28)"),
    Case("spec_channels_last_in_file", ["summary", "net.yaml"],
         "error: net.yaml:4: layer 'conv1': kernel 5 larger than the padded input 3 along W: "
         "(3 − 5 + 2·0)/1 + 1 = -1 → output size -1 (fix: archcalc reads the input as C×H×W "
         "and 224×224×3 looks like H×W×C (channels last): use 3x224x224)",
         files={"net.yaml": "name: t\ninput: [224, 224, 3]\nlayers:\n"
                "  - conv: {filters: 64, kernel: 5}\n"}),
    Case("spec_input_over_limit", ["summary", "lenet5", "--input", "1x1000000001x1"],
         "error: summary: invalid value for '--input': bad input shape '1x1000000001x1': "
         "1,000,000,001 is more than 1,000,000,000 (10⁹), the largest size archcalc takes "
         "(fix: give each of C, H and W at most 1000000000)", code=2),
    Case("spec_input_zero", ["summary", "lenet5", "--input", "0x28x28"],
         "error: summary: invalid value for '--input': bad input shape '0x28x28': every size "
         "must be at least 1 (fix: e.g. --input 3x224x224)", code=2),
    # Two sizes are a sequence (T steps × F features, issue 13): a conv cannot take one.
    Case("spec_input_two_sizes", ["summary", "lenet5", "--input", "28x28"],
         "error: lenet5.yaml:9: layer 'conv1': conv2d needs a C×H×W input, got 28×28 (a "
         "sequence of T steps × F features) (fix: move the layer before 'to_sequence', or give "
         "the spec a C×H×W input)"),
    Case("spec_input_field_over_limit", ["summary", "net.yaml"],
         "error: net.yaml:2: 'input': value error, bad input shape '1x1000000001x1': "
         "1,000,000,001 is more than 1,000,000,000 (10⁹), the largest size archcalc takes "
         "(got '1x1000000001x1') (fix: input: [C, H, W] with positive integers, e.g. "
         "[3, 224, 224]; [T, F] for a sequence, [T] for token ids)",
         files={"net.yaml": "name: t\ninput: 1x1000000001x1\nlayers: [relu]\n"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


# The bombs in a fresh process: each was 30 s or more and 2.6 GB (or past the 3 GiB safety
# net) before the limits.
RESOURCE = {**BOMBS, "spec_repeat_of_repeat": None, "spec_doubling_blocks": None,
            "spec_substitution_copies": None, "spec_nesting_100000": None,
            "spec_empty_repeats": None,
            "spec_blocks_use_each_other": None}


@pytest.mark.parametrize("case_id", sorted(RESOURCE))
def test_bomb_costs_little(case_id, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    for rel, content in case.files.items():
        (tmp_path / rel).write_text(content, encoding="utf-8")
    used = measure(case.args, tmp_path, timeout=60)
    assert used.code == 1, used.stderr
    assert used.stderr.splitlines()[0] == case.first_line
    assert used.peak_mb < 200 and used.cpu_s < 5, (case_id, used.peak_mb, used.cpu_s)
