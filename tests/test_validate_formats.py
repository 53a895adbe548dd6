"""`archcalc validate --format text|json|github` for machines, the pre-commit hook that runs
it, and click's shell completion through the real entry point."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import archcalc.cli.inspect  # noqa: F401 - registers `validate` and `schema`
from archcalc.limits import echo
from archcalc.spec.load import bundled_dir

ROOT = Path(__file__).resolve().parents[1]

TYPO = """name: typo
input: [3, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3, stirde: 1}
"""
# (8 − 3)/2 + 1 = 3.5: floored to 3, the last input row and column are never covered.
UNEVEN = """name: uneven
input: [1, 8, 8]
layers:
  - conv: {filters: 2, kernel: 3, stride: 2}
"""

# GitHub's workflow-command syntax: ::command k=v,k=v::message, where a property value holds
# no raw ',' or ':' and nothing holds a raw CR or LF (escaped as %2C %3A %0D %0A, % as %25).
ANNOTATION = re.compile(r"^::(error|warning) ((?:[a-z]+=[^,:\r\n]*)(?:,[a-z]+=[^,:\r\n]*)*)"
                        r"::([^\r\n]*)$")


def unescape(text: str) -> str:
    """The runner's decoding of an escaped value (the reverse of the escaping, % last)."""
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


def annotations(stdout: str) -> list[tuple[str, dict, str]]:
    """(severity, properties, message) of every workflow command in `stdout`; fails on a line
    that starts like a command but is not a well-formed one."""
    found = []
    for line in stdout.splitlines():
        if not line.startswith("::"):
            continue
        match = ANNOTATION.match(line)
        assert match, f"malformed workflow command: {line!r}"
        props = dict(p.split("=", 1) for p in match.group(2).split(","))
        found.append((match.group(1), {k: unescape(v) for k, v in props.items()},
                      unescape(match.group(3))))
    return found


def test_text_is_the_default_and_unchanged(run, write_spec):
    typo = write_spec(TYPO, "typo.yaml")
    default = run("validate", "lenet5", typo)
    text = run("validate", "lenet5", typo, "--format", "text")
    assert (default.exit_code, default.stdout, default.stderr) == \
        (text.exit_code, text.stdout, text.stderr)
    assert default.exit_code == 1
    assert default.stdout.startswith("ok: lenet5.yaml: lenet5, 12 layers, output 10, 61,706 params")
    assert default.stderr.splitlines() == [
        f"error: {typo}:4: layer 'conv1': conv2d: unknown field 'stirde' "
        "(fix: did you mean 'stride'?)", "1 problem(s) in 2 spec(s)"]


def test_json_lists_each_spec_with_problems_and_totals(run, write_spec):
    typo, uneven = write_spec(TYPO, "typo.yaml"), write_spec(UNEVEN, "uneven.yaml")
    result = run("validate", "lenet5", typo, uneven, "--format", "json")
    assert result.exit_code == 1 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert (doc["ok"], doc["errors"], doc["warnings"]) == (False, 1, 1)
    good, bad, warned = doc["specs"]
    summary = json.loads(run("summary", "lenet5", "--format", "json").stdout)
    assert good["ok"] and good["problems"] == [] and good["file"] == "lenet5.yaml"
    for key in ("params", "trainable_params", "macs"):
        assert good["totals"][key] == summary["totals"][key]
    assert good["totals"]["layers"] == len(summary["layers"])
    assert good["totals"]["output_shape"] == summary["layers"][-1]["output_shape"] == [10]
    assert bad["ok"] is False and "totals" not in bad
    assert bad["problems"] == [{
        "file": typo, "line": 4, "layer": "conv1",
        "message": "conv2d: unknown field 'stirde'", "fix": "did you mean 'stride'?",
        "severity": "error", "items": []}]
    assert warned["ok"] is True and warned["totals"]["warnings"] == 1
    [problem] = warned["problems"]
    assert (problem["severity"], problem["line"], problem["layer"]) == ("warning", 4, "conv1")
    assert "never covered" in problem["message"]


def test_json_strict_makes_warnings_errors_and_all_ok_exits_0(run, write_spec):
    uneven = write_spec(UNEVEN, "uneven.yaml")
    strict = json.loads(run("validate", uneven, "--format", "json", "--strict").stdout)
    assert (strict["ok"], strict["errors"], strict["warnings"]) == (False, 1, 0)
    assert strict["specs"][0]["problems"][0]["severity"] == "error"
    result = run("validate", "lenet5", uneven, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True


def test_github_annotations_name_file_line_and_message(run, write_spec):
    typo, uneven = write_spec(TYPO, "typo.yaml"), write_spec(UNEVEN, "uneven.yaml")
    result = run("validate", "lenet5", typo, uneven, "--format", "github")
    assert result.exit_code == 1
    assert annotations(result.stdout) == [
        ("error", {"file": typo, "line": "4", "title": "archcalc"},
         "layer 'conv1': conv2d: unknown field 'stirde' (fix: did you mean 'stride'?)"),
        ("warning", {"file": uneven, "line": "4", "title": "archcalc"},
         annotations(result.stdout)[1][2])]
    assert "never covered" in annotations(result.stdout)[1][2]
    assert "ok: lenet5.yaml" in result.stdout
    assert result.stderr == "1 problem(s) in 3 spec(s)\n"
    assert run("validate", "lenet5", "--format", "github").exit_code == 0


def test_github_escapes_user_text_so_it_cannot_inject_a_command(run, tmp_path):
    """A file name with ',' ':' '%' (and one with a newline), a layer name that spells out an
    escaped newline and a command: each problem is exactly one well-formed annotation, and
    decoding gives back what the user wrote."""
    layer = "a%0A::error title=x::pwned,line=1"
    spec = TYPO.replace("{filters: 4", '{name: "%s", filters: 4' % layer)
    odd = tmp_path / "x,line=1:title=y%0A::error::z.yaml"
    newline = tmp_path / "n\n::error file=evil.yaml::injected.yaml"
    for path in (odd, newline):
        path.write_text(spec, encoding="utf-8")
    result = run("validate", str(odd), str(newline), "--format", "github")
    assert result.exit_code == 1
    found = annotations(result.stdout)
    assert len(found) == 2  # two problems, two commands: nothing injected
    (_, props_odd, message_odd), (_, props_nl, message_nl) = found
    assert props_odd == {"file": str(odd), "line": "4", "title": "archcalc"}
    assert props_nl["file"] == echo(str(newline), 4096)  # the newline shown as \n, not kept
    for message in (message_odd, message_nl):
        assert message == (f"layer '{layer}': conv2d: unknown field 'stirde' "
                           "(fix: did you mean 'stride'?)")


# ---- the pre-commit hook ---------------------------------------------------------------------

def _hook() -> dict:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    [hook] = [h for h in hooks if h["id"] == "archcalc-validate"]
    return hook


def test_pre_commit_hook_runs_the_real_command(run, write_spec):
    hook = _hook()
    assert hook["language"] == "python"
    entry = shlex.split(hook["entry"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry[0] in scripts and scripts[entry[0]] == "archcalc.__main__:run"
    args = entry[1:] + hook.get("args", [])
    ok = run(*args, str(bundled_dir() / "lenet5.yaml"))
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ")
    assert run(*args, write_spec(TYPO, "typo.yaml")).exit_code == 1  # the commit is stopped


def test_pre_commit_hook_files_pattern_picks_spec_files():
    pattern = re.compile(_hook()["files"])
    for path in ("specs/resnet50.yaml", "models/specs/net.yml", "specs/net.json"):
        assert pattern.search(path), path
    for path in (".github/workflows/ci.yml", ".pre-commit-hooks.yaml", "specs/README.md",
                 "docs/conf.yaml"):
        assert not pattern.search(path), path


# ---- shell completion --------------------------------------------------------------------------

def test_shell_completion_env_var_works_through_the_entry_point():
    """README: eval "$(_ARCHCALC_COMPLETE=bash_source archcalc)". The variable is click's
    _<PROG>_COMPLETE for the prog_name the entry point (archcalc.__main__:run) passes."""
    code = "from archcalc.__main__ import run; run()"
    env = {**os.environ, "_ARCHCALC_COMPLETE": "bash_complete",
           "COMP_WORDS": "archcalc validate --format ", "COMP_CWORD": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["plain,text", "plain,json", "plain,github"]
    env.update(_ARCHCALC_COMPLETE="bash_source")
    script = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60).stdout
    assert "_archcalc_completion()" in script and "_ARCHCALC_COMPLETE=bash_complete" in script
