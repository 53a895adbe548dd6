"""Catalogue: a hostile tester's second round (spec language and CLI).

A closed stdout (`>&-`) or --help into a full disk, specs nested within the depth limit that
later walks of the tree could not follow, plots of values past 2⁶³, a factorised kernel that
asked for ten million layers, control characters that forge output lines or drive the
terminal, non-finite floats, tab-indented JSON, YAML 1.1's number and tag quirks, and
messages that misled. Cases that need a real process (a closed descriptor, /dev/full, a
terminal, a deep stack) run as one (subprocess=True or their own tests below).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from archcalc.limits import DEFAULTS
from catalogue.runner import ENV, Case, check_case, measure

HEAD = "name: t\ninput: [1, 8, 8]\n"
RAISE = "(fix: if the input is legitimate, raise the limit: ARCHCALC_{}=<larger number>)"
PRINTED = "it would reach terminals and logs as it is (fix: remove it; names, source and " \
          "description are printed text)"
TAG_FIX = "(fix: remove the tag: a spec holds text, numbers, lists and mappings)"
NUMBER_FIX = "(fix: write the number in decimal, or quote it if it is text)"


def chain(depth: int) -> str:
    """Blocks b0 → b1 → … → b{depth}: a spec whose resolved tree is `depth` levels deep
    while its YAML is flat."""
    lines = [HEAD + "blocks:"]
    for i in range(depth):
        lines.append(f"  b{i}:\n    layers: [b{i + 1}]")
    lines.append(f"  b{depth}:\n    layers: [{{conv: {{filters: 2, kernel: 1}}}}, relu]")
    return "\n".join(lines) + "\nlayers: [b0]\n"


HUGE = HEAD + ("layers:\n  - conv: {filters: 1000000000, kernel: 1}\n"
               "  - conv: {filters: 1000000000, kernel: 1}\n")
TABS = '{\n\t"name": "t",\n\t"input": [\n\t\t1,\n\t\t8,\n\t\t8\n\t],\n\t"layers": [\n\t\t"relu"\n\t]\n}\n'

CASES = [
    # ---- F3: a spec within the depth limit runs every command --------------------------------
    *[Case(f"cli_deep_chain_{cmd[0]}", [*cmd], "", code=0, files={"c.yaml": chain(490)})
      for cmd in (["check", "c.yaml"], ["compare", "c.yaml", "lenet5"], ["report", "c.yaml"],
                  ["gradcheck", "c.yaml"])],
    # the deepest nesting the ceiling allows, in a real process (a C stack overflow would be
    # a crash, not an exit code)
    Case("cli_deep_chain_at_ceiling", ["check", "c.yaml"], "", code=0,
         files={"c.yaml": chain(1890)}, env={"ARCHCALC_MAX_SPEC_DEPTH": "1900"},
         subprocess=True),
    Case("cli_depth_limit_past_ceiling", ["summary", "lenet5"],
         "error: ARCHCALC_MAX_SPEC_DEPTH=100,000 is more than 1,900, the deepest nesting "
         "archcalc can follow (fix: give at most 1900, or flatten the spec's nesting)",
         env={"ARCHCALC_MAX_SPEC_DEPTH": "100000"}),
    Case("spec_deep_chain_past_limit", ["summary", "c.yaml"],
         "error: c.yaml:1005: items nest more than 500 levels deep (blocks in use: 'b0' → "
         "'b1' → 'b2' → … → 'b499' → 'b500' (501 blocks)) " + RAISE.format("MAX_SPEC_DEPTH"),
         files={"c.yaml": chain(600)}),
    # ---- F4: values past 2⁶³ are drawn, matplotlib's chatter is not printed --------------------
    Case("cli_plot_values_past_int64", ["plot", "h.yaml", "--out", "h.png"], "", code=0,
         files={"h.yaml": HUGE}),
    Case("cli_plot_bad_mplconfigdir", ["plot", "lenet5", "--out", "l.png"], "", code=0,
         env={"MPLCONFIGDIR": "/proc/no/such/dir"}, subprocess=True),
    # ---- F5: factorize bounds its stack before building it -----------------------------------
    Case("cli_factorize_stack_bound",
         ["factorize", "--input", "1x20000001x20000001", "--kernel", "20000001", "--filters", "1"],
         "error: --kernel 20,000,001 would be compared with a stack of 10,000,000 3×3 "
         "convolutions; archcalc builds at most 1,000 (fix: give --kernel at most 2,001)"),
    # ---- F8: text a terminal would act on ----------------------------------------------------
    Case("spec_name_newline_forges_a_line", ["validate", "n.yaml"],
         "error: n.yaml:1: the spec's name holds U+000A (a control character) at character 2: "
         + PRINTED, files={"n.yaml": 'name: "t\\n::error file=x::injected"\n'
                                     "input: [1, 8, 8]\nlayers: [relu]\n"}),
    Case("spec_name_escape_sequences", ["validate", "e.yaml"],
         "error: e.yaml:1: the spec's name holds U+001B (a control character) at character 2: "
         + PRINTED, files={"e.yaml": 'name: "x\\e[2J\\e]0;PWNED\\a"\ninput: [1, 8, 8]\n'
                                     "layers: [relu]\n"}),
    Case("spec_layer_name_bidi_override", ["summary", "b.yaml"],
         "error: b.yaml:4: the name holds U+202E (right-to-left override) at character 2: "
         + PRINTED, files={"b.yaml": HEAD + 'layers:\n  - relu: {name: "r\\u202eevil"}\n'}),
    Case("spec_layer_name_zero_width", ["summary", "z.yaml"],
         "error: z.yaml:4: the name holds U+200B (zero width space) at character 5: " + PRINTED,
         files={"z.yaml": HEAD + "layers:\n  - relu: {name: \"relu\u200b\"}\n"}),
    Case("spec_sequence_name_bel", ["summary", "s.yaml"],
         "error: s.yaml:4: the name holds U+0007 (a control character) at character 2: "
         + PRINTED, files={"s.yaml": HEAD + 'layers:\n  - {name: "s\\a", layers: [relu]}\n'}),
    Case("spec_source_c1_control", ["summary", "c.yaml"],
         "error: c.yaml:2: the spec's source holds U+009B (a control character) at character "
         "2: " + PRINTED, files={"c.yaml": 'name: t\nsource: "a\\x9b2J"\ninput: [1, 8, 8]\n'
                                           "layers: [relu]\n"}),
    Case("spec_block_description_escape", ["summary", "d.yaml"],
         "error: d.yaml:5: block 'blk': the description holds U+001B (a control character) "
         "at character 1: " + PRINTED,
         files={"d.yaml": HEAD + 'blocks:\n  blk:\n    description: "\\e[2J"\n'
                                 "    layers: [relu]\nlayers: [blk]\n"}),
    # a description is prose: it may span lines
    Case("spec_description_multiline_ok", ["validate", "m.yaml"], "", code=0,
         files={"m.yaml": "name: t\ndescription: |\n  two\n  lines\tand a tab\n"
                          "input: [1, 8, 8]\nlayers: [relu]\n"}),
    # an argv path is echoed escaped in error lines
    Case("cli_path_with_escape_echoed_escaped", ["summary", "\x1b[2Jx.yaml"],
         "error: no such file: \\x1b[2Jx.yaml (fix: check the path)"),
    Case("cli_file_named_with_escape", ["summary", "\x1b]0;t\x07.yaml"],
         "error: \\x1b]0;t\\x07.yaml:4: unknown layer type 'bad' (fix: did you mean 'pad'?)",
         files={"\x1b]0;t\x07.yaml": HEAD + "layers:\n  - bad\n"}),
    # ---- F10: non-finite and huge numbers -------------------------------------------------------
    Case("spec_bn_eps_inf", ["summary", "f.yaml"],
         "error: f.yaml:4: layer 'bn1': batchnorm: field 'eps': input should be a finite number "
         "(got inf) (fix: a small positive number, e.g. 1e-5)",
         files={"f.yaml": HEAD + "layers:\n  - bn: {eps: .inf}\n"}),
    Case("spec_lrn_alpha_inf", ["check", "f.yaml"],
         "error: f.yaml:4: layer 'lrn1': lrn: field 'alpha': input should be a finite number "
         "(got inf) (fix: a finite number, e.g. 1e-4 (lrn) or 1.0 (elu))",
         files={"f.yaml": HEAD + "layers:\n  - lrn: {alpha: .inf}\n"}),
    Case("spec_leaky_slope_1e309", ["gradcheck", "f.yaml"],
         "error: f.yaml:4: layer 'lrelu1': leaky_relu: field 'slope': input should be a finite "
         "number (got inf) (fix: a finite number >= 0, e.g. 0.01)",
         files={"f.yaml": HEAD + "layers:\n  - leaky_relu: {slope: 1e309}\n"}),
    Case("spec_json_infinity", ["summary", "f.json"],
         "error: f.json:1: layer 'lrelu1': leaky_relu: field 'slope': input should be a finite "
         "number (got 'Infinity') (fix: a finite number >= 0, e.g. 0.01)",
         files={"f.json": '{"name": "t", "input": [1, 8, 8], '
                          '"layers": [{"leaky_relu": {"slope": Infinity}}]}'}),
    Case("spec_json_1e309", ["summary", "f.json"],
         "error: f.json:1: layer 'lrelu1': leaky_relu: field 'slope': input should be a finite "
         "number (got inf) (fix: a finite number >= 0, e.g. 0.01)",
         files={"f.json": '{"name": "t", "input": [1, 8, 8], '
                          '"layers": [{"leaky_relu": {"slope": 1e309}}]}'}),
    Case("spec_elu_alpha_past_1e9", ["summary", "f.yaml"],
         "error: f.yaml:4: layer 'elu1': elu: field 'alpha': input should be less than or equal "
         "to 1000000000 (got 1e+20) (fix: a finite number, e.g. 1e-4 (lrn) or 1.0 (elu))",
         files={"f.yaml": HEAD + "layers:\n  - elu: {alpha: 1.0e+20}\n"}),
    Case("spec_maxout_pieces_huge", ["summary", "f.yaml"],
         "error: f.yaml:4: layer 'maxout1': maxout: field 'pieces': input should be less than "
         "or equal to 1000000000 (got 100000000000000000000000) (fix: an integer >= 2)",
         files={"f.yaml": HEAD + "layers:\n  - maxout: 100000000000000000000000\n"}),
    # ---- F11: JSON indented with tabs ------------------------------------------------------------
    Case("spec_json_tab_indented", ["summary", "t.json"], "", code=0, files={"t.json": TABS}),
    Case("spec_json_tab_indented_duplicate_key", ["summary", "t.json"],
         "error: t.json:3: duplicate key 'name' (fix: keep one of them; YAML would silently "
         "drop the first)", files={"t.json": TABS.replace('"input"', '"name"', 1)}),
    # valid JSON that YAML reads otherwise (an implicit key past 1,024 characters)
    Case("spec_json_long_key_is_json", ["summary", "k.json"],
         "error: k.json: unknown top-level key '" + "k" * 200 + "… (1,100 characters)' "
         "(fix: top-level keys: name, source, description, family, input, separator, init, blocks, "
         "layers, train)",
         files={"k.json": '{"name": "t", "input": [1, 8, 8], "layers": ["relu"], "'
                          + "k" * 1100 + '": 1}'}),
    # ---- F12: misleading one-liners --------------------------------------------------------------
    Case("cli_layer_conv_groups",
         ["layer", "conv", "--input", "1x8x8", "--kernel", "3", "--filters", "2", "--groups", "3"],
         "error: filters (2) must be divisible by groups (3) (fix: give --filters a multiple of "
         "--groups)"),
    Case("spec_conv_groups", ["summary", "g.yaml"],
         "error: g.yaml:4: layer 'conv1': conv2d: filters (2) must be divisible by groups (3) "
         "(fix: make filters a multiple of groups)",
         files={"g.yaml": "name: t\ninput: [3, 8, 8]\nlayers:\n"
                          "  - conv: {filters: 2, kernel: 3, groups: 3}\n"}),
    Case("cli_layer_dense_missing_input", ["layer", "dense", "--units", "5"],
         "error: layer dense: missing option '--input' (fix: see 'archcalc layer dense --help')",
         code=2),
    Case("cli_factorize_missing_input", ["factorize", "--kernel", "5", "--filters", "3"],
         "error: factorize: missing option '--input' (fix: see 'archcalc factorize --help')",
         code=2),
    Case("spec_tag_python_object", ["summary", "t.yaml"],
         "error: t.yaml:4: the YAML tag '!!python/object:os.system' (column 5) is not allowed "
         "in a spec " + TAG_FIX,
         files={"t.yaml": HEAD + "layers:\n  - !!python/object:os.system {}\n"}),
    Case("spec_tag_binary_name", ["summary", "t.yaml"],
         "error: t.yaml:1: the YAML tag '!!binary' (column 7) is not allowed in a spec "
         + TAG_FIX, files={"t.yaml": "name: !!binary aGVsbG8=\ninput: [1, 8, 8]\n"
                                     "layers: [relu]\n"}),
    # YAML 1.1 reads 1e-5 (no dot) as text: archcalc reads it as the number JSON reads
    Case("spec_float_without_dot_in_block_args", ["summary", "b.yaml"], "", code=0,
         files={"b.yaml": HEAD + "blocks:\n  nb:\n    args: [e]\n    layers: [{bn: {eps: e}}]\n"
                                 "layers: [{use: nb, with: [1e-5]}]\n"}),
    Case("spec_sexagesimal_int", ["summary", "s.yaml"],
         "error: s.yaml:4: '1:30' (column 21) is a base-60 number in YAML 1.1 (1:30 is 90) and "
         "text in YAML 1.2: archcalc does not guess " + NUMBER_FIX,
         files={"s.yaml": HEAD + "layers:\n  - conv: {filters: 1:30, kernel: 1}\n"}),
    Case("spec_leading_zero_octal", ["summary", "s.yaml"],
         "error: s.yaml:4: '010' (column 21) is an octal number in YAML 1.1 (010 is 8) and "
         "decimal in YAML 1.2: archcalc does not guess " + NUMBER_FIX,
         files={"s.yaml": HEAD + "layers:\n  - conv: {filters: 010, kernel: 1}\n"}),
    Case("cli_empty_spec_argument", ["summary", ""],
         "error: the spec argument is empty (fix: give a bundled name (see 'archcalc list') or "
         "a .yaml/.json file)"),
    # Concats of concats double the channels: 20,000 of them would pass any printable number.
    Case("spec_concat_doubling", ["summary", "s.yaml"],
         "error: s.yaml:5: layer '29.concat1': concat gives 1,073,741,824 channels, more than "
         "1,000,000,000 (10⁹), the largest size archcalc takes (fix: check the repeats around "
         "this concat: each one multiplies the channels)",
         files={"s.yaml": "name: t\ninput: [1, 4, 4]\nlayers:\n  - repeat: 40\n"
                          "    layers: [{concat: [[relu], [relu]]}]\n"}),
    Case("spec_repeat_of_merges", ["validate", "s.yaml"],
         "error: s.yaml:4: repeat: 900,000 × 1 layer(s) = 900,000 layers, more than archcalc "
         f"unrolls ({DEFAULTS['MAX_LAYERS'][0]:,}) (fix: check the repeat counts; if the input is "
         "legitimate, raise the limit: ARCHCALC_MAX_LAYERS=<larger number>)",
         files={"s.yaml": "name: t\ninput: [1, 4, 4]\nlayers:\n  - repeat: 900000\n"
                          "    layers: [{add: [[], []]}]\n"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_factorize_bound_costs_nothing(tmp_path):
    """Before the bound: 2.5 GB and most of a minute (one layer per 3×3 of the stack)."""
    run = measure(["factorize", "--input", "1x20000001x20000001", "--kernel", "20000001",
                   "--filters", "1"], tmp_path)
    assert run.code == 1, run.stderr
    assert run.peak_mb < 200 and run.cpu_s < 5, (run.peak_mb, run.cpu_s)


def test_plot_of_huge_values_writes_the_image(tmp_path):
    check_case(CASES[[c.id for c in CASES].index("cli_plot_values_past_int64")], tmp_path)
    assert (tmp_path / "h.png").stat().st_size > 0


# ---- a closed stdout, a full disk behind --help ------------------------------------------------
def _closed_stdout() -> None:
    os.close(1)


CLOSED = ("error: standard output is closed: archcalc has nowhere to print (fix: run it "
          "without '>&-', or redirect its output to a file or /dev/null)")


@pytest.mark.parametrize("args", [
    ["summary", "lenet5"], ["summary", "lenet5", "--format", "json"], ["--help"],
    ["--version"], ["list"], ["validate", "lenet5"], ["check", "lenet5"], ["--bogus"],
    ["summary"], ["layer", "conv", "--help"],
], ids=lambda a: "_".join(a))
def test_cli_stdout_closed(args, tmp_path):
    """`archcalc ... >&-`: Python starts with sys.stdout None; one line, exit 1."""
    proc = subprocess.run([sys.executable, "-m", "archcalc", *args], stderr=subprocess.PIPE,
                          text=True, cwd=tmp_path, env={**os.environ, **ENV}, timeout=60,
                          preexec_fn=_closed_stdout)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [CLOSED]



# ---- a terminal 0 or 1 columns wide ------------------------------------------------------------
def _on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run archcalc with stdout on a pseudo-terminal; return (exit code, what it printed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", *args], stdout=follower,
                            stderr=subprocess.PIPE, cwd=cwd,
                            env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", **env})
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    code = proc.wait(timeout=30)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("columns", ["0", "1"])
def test_cli_tiny_columns_on_a_terminal(columns, tmp_path):
    """COLUMNS=0 printed nothing (exit 0); COLUMNS=1 printed 7,043 one-character lines."""
    code, out = _on_a_terminal(["summary", "vgg16"], {"COLUMNS": columns}, tmp_path)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("vgg16 — input 3×224×224")
    assert "block5.conv3" in out  # the layers are there
    assert len(lines) < 400 and max(len(line.rstrip()) for line in lines) > 20
