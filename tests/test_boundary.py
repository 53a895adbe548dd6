"""The CLI's last nets: what escapes every command's own checks is still one line and an exit
code, never a traceback (issue 8). Each failure is injected where `summary` computes."""

from __future__ import annotations

import pytest

import archcalc.cli.inspect as inspect_cli


def _fail_with(exc: BaseException):
    def analyze(*args, **kwargs):
        raise exc
    return analyze


@pytest.mark.parametrize("exc,code,line", [
    (MemoryError(), 1, "error: out of memory: this run needs more memory than the machine gave "
                       "it (fix: a smaller input or batch, or close other programs)"),
    (RecursionError("maximum recursion depth exceeded"), 1,
     "error: the input nests too deeply for archcalc to follow (fix: flatten the nesting, "
     "e.g. of blocks and branches)"),
    (ZeroDivisionError("division by zero"), 70,
     "error: internal error (ZeroDivisionError: division by zero): a bug in archcalc, not in "
     "your input (fix: please report it with the command and spec; ARCHCALC_DEBUG=1 shows "
     "the traceback)"),
])
def test_escaped_errors_are_one_line(run, monkeypatch, exc, code, line):
    monkeypatch.setattr(inspect_cli, "analyze", _fail_with(exc))
    result = run("summary", "lenet5")
    assert result.exit_code == code
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""


def test_debug_shows_the_bug(monkeypatch):
    from click.testing import CliRunner

    from archcalc.cli import main
    monkeypatch.setattr(inspect_cli, "analyze", _fail_with(ZeroDivisionError("x")))
    result = CliRunner(env={"ARCHCALC_DEBUG": "1"}).invoke(main, ["summary", "lenet5"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_a_ctrl_c_wrapped_by_a_class_body_is_still_a_ctrl_c():
    """Python wraps an exception from __set_name__ (pydantic model creation at import time) in
    a RuntimeError; the entry point must still see the Ctrl-C inside it."""
    from archcalc.__main__ import _caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("Error calling __set_name__") from inner
    except RuntimeError as wrapped:
        assert _caused_by_interrupt(wrapped)
    assert not _caused_by_interrupt(RuntimeError("a real bug"))


def test_an_error_about_a_list_gives_one_line_per_item_up_to_twenty(run):
    """The issue's rule for unsupported nodes: one line each (at most 20, then a count)."""
    from archcalc.errors import ArchcalcError

    items = [f"Op{i} (node 'n{i}', #{i})" for i in range(23)]
    lines = ArchcalcError("23 nodes are not supported", file="m.onnx", items=items).render() \
        .splitlines()
    assert lines[0] == "error: m.onnx: 23 nodes are not supported"
    assert lines[1:21] == ["  " + item for item in items[:20]]
    assert lines[21:] == ["  ... and 3 more"]
    # an item cannot forge a line of its own: control characters are escaped
    forged = ArchcalcError("1 node", items=["Op\nerror: fake"]).render().splitlines()
    assert len(forged) == 2 and "\\n" in forged[1]


def test_model_files_are_refused_by_size_before_reading(run, tmp_path, monkeypatch):
    """.keras (opened in place) and .onnx (read whole) files over MAX_MODEL_BYTES."""
    monkeypatch.setenv("ARCHCALC_MAX_MODEL_BYTES", "1000")
    for name in ("big.keras", "big.onnx"):
        path = tmp_path / name
        path.write_bytes(b"\0" * 1001)
        result = run("summary", str(path))
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0].startswith(
            f"error: {path}: the file is 1,001 bytes; an imported model file may have at most "
            "1,000 bytes (fix: ")
