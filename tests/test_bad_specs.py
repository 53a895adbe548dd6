"""Every bad-spec case of issue 2: one line naming file, line, layer and fix; exit 1; no traceback."""

from __future__ import annotations

import pytest

CASES = {
    "malformed_yaml": ("layers:\n  - conv: {filters: 4, kernel: 3\n  - relu\n",
                       [":4:", "malformed YAML", "flow mapping"]),
    "unknown_type": ("layers:\n  - conv: {filters: 4, kernel: 3}\n  - relux\n",
                     [":5:", "unknown layer type 'relux'", "did you mean 'relu'?"]),
    "unknown_type_with_fields": ("layers:\n  - convv: {filters: 4, kernel: 3}\n",
                                 [":4:", "unknown layer type 'convv'", "did you mean 'conv'?"]),
    "missing_field": ("layers:\n  - relu\n  - conv: {kernel: 3}\n",
                      [":5:", "layer 'conv1'", "missing field 'filters'"]),
    "negative_field": ("layers:\n  - conv: {filters: -4, kernel: 3}\n",
                       [":4:", "layer 'conv1'", "'filters'", "got -4"]),
    "unknown_field": ("layers:\n  - conv: {filters: 4, kernel: 3, stirde: 2}\n",
                      [":4:", "unknown field 'stirde'", "did you mean 'stride'?"]),
    "bad_padding": ("layers:\n  - conv: {filters: 4, kernel: 3, padding: samee}\n",
                    [":4:", "'padding'", "did you mean 'same'?"]),
    "kernel_too_large": ("layers:\n  - conv: {filters: 4, kernel: 3}\n  - conv: {filters: 4, kernel: 9}\n",
                         [":5:", "layer 'conv2'", "kernel 9 larger than the padded input 6",
                          "(6 − 9 + 2·0)/1 + 1 = -2", "larger --input"]),
    "add_mismatch": ("layers:\n  - add:\n    - [{conv: {filters: 8, kernel: 3, padding: 1}}]\n    - []\n",
                     [":4:", "layer 'add1'", "8×8×8", "branch 2 (identity) gives 1×8×8",
                      "projection shortcut"]),
    "concat_mismatch": ("layers:\n  - concat:\n    - [{conv: {filters: 8, kernel: 3, padding: 1}}]\n"
                        "    - [{conv: {filters: 8, kernel: 3}}]\n",
                        ["layer 'concat1'", "branch 1 (ending at conv1) gives 8×8×8",
                         "branch 2 (ending at conv2) gives 8×6×6"]),
    "groups": ("layers:\n  - conv: {filters: 4, kernel: 3, groups: 4}\n",
               ["layer 'conv1'", "input channels (1) not divisible by groups (4)"]),
    "dense_needs_flatten": ("layers:\n  - conv: {filters: 4, kernel: 3}\n  - dense: 10\n",
                            [":5:", "layer 'fc1'", "dense needs a flat input, got 4×6×6",
                             "add 'flatten'"]),
    "duplicate_key": ("input: [1, 9, 9]\nlayers: [relu]\n", [":3:", "duplicate key 'input'"]),
    "duplicate_name": ("layers:\n  - conv: {name: a, filters: 4, kernel: 3}\n"
                       "  - conv: {name: a, filters: 4, kernel: 3}\n",
                       [":5:", "duplicate name 'a'"]),
    "unknown_block": ("blocks:\n  unit: {args: [], layers: [relu]}\nlayers:\n  - {use: unti}\n",
                      [":6:", "unknown block 'unti'", "did you mean 'unit'?"]),
    "recursive_block": ("blocks:\n  loop: {args: [], layers: [{use: loop}]}\nlayers:\n  - {use: loop}\n",
                        [":4:", "block 'loop' → 'loop' is a loop that never ends",
                         "remove the 'use' that closes the loop"]),
    "maxout_channels": ("layers:\n  - conv: {filters: 5, kernel: 3}\n  - maxout: 2\n",
                        ["layer 'maxout1'", "5 channels not divisible by pieces (2)"]),
    "string_times_number": ("blocks:\n  b: {args: [p], layers: [{conv: {filters: 4 * p, kernel: 1}}]}\n"
                            "layers:\n  - {use: b, with: ['16']}\n",
                            [":6:", "cannot compute '4 * p': '16' is not a number"]),
    "division_by_zero": ("blocks:\n  b: {args: [p], layers: [{conv: {filters: p // 0, kernel: 1}}]}\n"
                         "layers:\n  - {use: b, with: [16]}\n", ["division by zero"]),
    "repeat_of_string": ("blocks:\n  b: {args: [n], layers: [{repeat: n - 1, layers: [relu]}]}\n"
                         "layers:\n  - {use: b, with: [three]}\n", ["'three' is not a number"]),
    "use_not_a_name": ("layers:\n  - {use: [a]}\n", ["unknown block '['a']'"]),
    "type_not_a_name": ("layers:\n  - {type: [conv]}\n", ["unknown layer type"]),
    "unhashable_key": ("layers:\n  - {[1, 2]: relu}\n", [":4:", "a key must be a name"]),
    "args_not_a_list": ("blocks:\n  b: {args: 5, layers: [relu]}\nlayers: [b]\n",
                        [":4:", "args must be a list of names"]),
    "args_a_string": ("blocks:\n  b: {args: planes, layers: [relu]}\nlayers: [b]\n",
                      ["args must be a list of names"]),
    "block_without_body": ("blocks:\n  b: {args: [x]}\nlayers: [b]\n",
                           ["block 'b' needs exactly one body"]),
    "block_named_like_a_kind": ("blocks:\n  relu: {layers: [relu]}\nlayers: [relu]\n",
                                ["block name 'relu' is a layer kind"]),
    "bool_kernel": ("layers:\n  - conv: {filters: 4, kernel: true}\n", ["'kernel'", "got True"]),
    "float_filters": ("layers:\n  - conv: {filters: 3.5, kernel: 3}\n", ["'filters'", "3.5"]),
    "composite_unknown_key": ("layers:\n  - {add: [[relu], []], foo: 1}\n",
                              ["add: unknown field(s) foo"]),
    "huge_repeat": ("layers:\n  - {repeat: 100000000000, layers: [relu]}\n",
                    ["more than archcalc unrolls"]),
    "unnamed_repeats_collide": ("layers:\n  - {repeat: 2, layers: [relu]}\n"
                                "  - {repeat: 2, layers: [relu]}\n",
                                [":5:", "duplicate name '0'", "two unnamed repeats"]),
    "error_inside_block": ("blocks:\n  b: {args: [f], layers: [{conv: {filters: f, kernel: 1}}]}\n"
                           "layers:\n  - relu\n  - x: {use: b, with: [-3]}\n",
                           [":4:", "'filters'", "got -3", "used at line 7"]),
    "shape_error_inside_block": ("blocks:\n  b: {args: [k], layers: [{conv: {filters: 2, kernel: k}}]}\n"
                                 "layers:\n  - relu\n  - x: {use: b, with: [30]}\n",
                                 [":4:", "layer 'x.conv1'", "(in 'x', line 7)"]),
    "huge_integer": ("layers:\n  - conv: {filters: 1%s, kernel: 3}\n" % ("0" * 5000,),
                     ["a value cannot be read"]),
    "deep_nesting": ("layers: " + "[" * 3000 + "relu" + "]" * 3000 + "\n",
                     ["nest"]),
    "top_level_typo": ("inputs: [1, 8, 8]\nlayers: [relu]\n",
                       [":3:", "unknown top-level key 'inputs'", "did you mean 'input'?"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_one_clear_line(run, write_spec, case):
    body, expected = CASES[case]
    header = "name: t\ninput: [1, 8, 8]\n"
    path = write_spec(header + body, f"{case}.yaml")
    for command in (["validate", path], ["summary", path]):
        result = run(*command)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        line = errors[0]
        assert f"{case}.yaml" in line
        assert "(fix:" in line
        for fragment in expected:
            assert fragment in line, (fragment, line)
        if command[0] == "summary":
            assert result.stdout == ""  # nothing half-printed


def test_missing_top_level_key(run, write_spec):
    result = run("validate", write_spec("name: t\nlayers: [relu]\n"))
    assert result.exit_code == 1
    assert "missing top-level key 'input'" in result.stderr and "(fix: add 'input:')" in result.stderr


def test_json_spec_errors_have_lines_and_reject_duplicates(run, tmp_path):
    path = tmp_path / "net.json"
    path.write_text('{\n "name": "j",\n "input": [1, 8, 8],\n "layers": [\n'
                    '  {"conv": {"filters": 4, "kernel": 3, "stirde": 1}}\n ]\n}\n')
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert "net.json:5:" in result.stderr and "did you mean 'stride'?" in result.stderr
    path.write_text('{"name": "j", "input": [1, 8, 8], "input": [3, 8, 8], "layers": ["relu"]}')
    result = run("validate", str(path))
    assert result.exit_code == 1 and "duplicate key 'input'" in result.stderr


def test_names_are_not_rich_markup(run, write_spec):
    path = write_spec("name: 'net[/x]'\ninput: [4]\nlayers: [{dense: {name: 'a[b]', units: 2}}]\n")
    result = run("summary", path)
    assert result.exit_code == 0
    assert "net[/x]" in result.stdout and "a[b]" in result.stdout


def test_huge_input_option(run):
    result = run("summary", "lenet5", "--input", "1x" + "9" * 5000 + "x32")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_not_a_mapping(run, write_spec):
    result = run("validate", write_spec("- a\n- b\n"))
    assert result.exit_code == 1
    assert "a spec is a mapping" in result.stderr


def test_missing_file_and_directory(run, tmp_path):
    result = run("summary", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "no such file" in result.stderr
    result = run("summary", str(tmp_path))
    assert result.exit_code == 1
    assert "is a directory" in result.stderr


def test_unknown_bundled_name_suggests(run):
    result = run("summary", "vgg61")
    assert result.exit_code == 1
    assert "unknown spec 'vgg61'" in result.stderr
    assert "did you mean 'vgg16'?" in result.stderr or "did you mean 'vgg19'?" in result.stderr


@pytest.mark.parametrize("bad", ["3x", "axbxc", "3x0x4", "3x4x4x4", "-3x4x4"])  # 3x4: T×F
def test_bad_input_option(run, bad):
    result = run("summary", "lenet5", "--input", bad)
    assert result.exit_code == 2
    assert "invalid value for '--input'" in result.output.lower()
    assert "Traceback" not in result.output


def test_input_too_small_names_the_layer(run):
    result = run("summary", "lenet5", "--input", "1x2x2")
    assert result.exit_code == 1
    assert "layer 'conv1'" in result.stderr and "kernel 5 larger than the padded input 2" in result.stderr
