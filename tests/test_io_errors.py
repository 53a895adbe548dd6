"""Output that cannot be written (issue 8, class 7), and Ctrl-C at start-up.

A full disk, an unwritable or missing directory, a file where a directory should be, a full
or closed stdout: one line (what could not be written, why, the fix), exit 1 (a closed pipe:
silence, exit 1, as click and rich do), and no partial file left behind. Disk-full is simulated in-process by a
write that fails with ENOSPC after writing part of its data, and is met for real by a
subprocess whose stdout is /dev/full.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archcalc.cli import main

ENV = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
ENOSPC_FIX = "free space on that disk (or quota), or write to another disk"


def one_line(result, line: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == [line], result.stderr
    assert "Traceback" not in result.output


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _enospc_after_half(original):
    """A write that puts half its data on the disk and then finds it full."""
    def write(self, data, *args, **kwargs):
        original(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


# ---- report ----------------------------------------------------------------------------------
def test_report_disk_full_leaves_the_old_file_whole(run, tmp_path, monkeypatch):
    out = tmp_path / "r.md"
    out.write_text("the previous report\n")
    monkeypatch.setattr(Path, "write_text", _enospc_after_half(Path.write_text))
    result = run("report", "lenet5", "--out", str(out))
    one_line(result, f"error: cannot write {out}: No space left on device (fix: {ENOSPC_FIX})")
    assert out.read_text() == "the previous report\n"
    assert leftovers(tmp_path) == ["r.md"]  # no temporary file left


def test_report_disk_full_leaves_no_file(run, tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "write_text", _enospc_after_half(Path.write_text))
    result = run("report", "lenet5", "--out", str(tmp_path / "r.md"))
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert leftovers(tmp_path) == []  # not even a 0-byte r.md


def test_report_writes_whole_file(run, tmp_path):
    out = tmp_path / "r.md"
    result = run("report", "lenet5", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == f"wrote {out}\n"
    assert out.read_text(encoding="utf-8").startswith("# Design report: lenet5")
    assert leftovers(tmp_path) == ["r.md"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("where, fix", [
    ("missing/r.md", "create the directory first (mkdir -p {d}/missing) or fix the path"),
    ("afile/r.md", "a part of the path is a file, not a directory; fix the path"),
    ("adir", "that is a directory; give a file name inside it"),
])
def test_report_bad_places(run, tmp_path, where, fix):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    target = tmp_path / where
    result = run("report", "lenet5", "--out", str(target))
    why = {"missing/r.md": "No such file or directory", "afile/r.md": "Not a directory",
           "adir": "Is a directory"}[where]
    one_line(result, f"error: cannot write {target}: {why} (fix: {fix.format(d=tmp_path)})")
    assert leftovers(tmp_path) == ["adir", "afile"]


def test_report_into_proc(run):
    one_line(run("report", "lenet5", "--out", "/proc/x.md"),
             "error: cannot write /proc/x.md: No such file or directory (fix: create the "
             "directory first (mkdir -p /proc) or fix the path)")


def test_unwritable_directory_simulated(run, tmp_path, monkeypatch):
    """A read-only or immutable directory (EACCES / EPERM from creating the temporary file):
    simulated, since root (the CI's user) writes through chmod."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "r.md"
    one_line(run("report", "lenet5", "--out", str(out)),
             f"error: cannot write {out}: Operation not permitted (fix: make {tmp_path} and "
             "the file writable (chmod; an immutable file needs chattr -i), or write somewhere "
             "else)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o500 directory; "
                    "test_unwritable_directory_simulated covers it")
def test_read_only_directory_for_real(run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = run("report", "lenet5", "--out", str(folder / "r.md"))
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 1 and "Permission denied" in result.stderr
    assert leftovers(folder) == []


# ---- plot ------------------------------------------------------------------------------------
def test_plot_disk_full_leaves_no_file(run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def full(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Figure, "savefig", full)
    out = tmp_path / "p.png"
    one_line(run("plot", "lenet5", "--out", str(out)),
             f"error: cannot write {out}: No space left on device (fix: {ENOSPC_FIX})")
    assert leftovers(tmp_path) == []


def test_plot_bad_suffix_before_drawing(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.txt"
    one_line(run("plot", "lenet5", "--out", str(out)),
             f"error: cannot write {out}: '.txt' is not an image format matplotlib writes "
             "(fix: end the file name with .png, .svg or .pdf)")
    assert leftovers(tmp_path) == []


def test_plot_into_missing_directory(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "no" / "p.png"
    one_line(run("plot", "lenet5", "--out", str(out)),
             f"error: cannot write {out}: No such file or directory (fix: create the directory "
             f"first (mkdir -p {tmp_path}/no) or fix the path)")


# ---- stdout, in this process -----------------------------------------------------------------
class _Failing(io.StringIO):
    def __init__(self, exc: OSError) -> None:
        super().__init__()
        self.exc = exc

    def write(self, text):
        raise self.exc


def _run_with_stdout(monkeypatch, stream, args):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit) as exit_:
        main.main(args, prog_name="archcalc")
    return exit_.value.code, err.getvalue()


@pytest.mark.parametrize("args", [["summary", "lenet5"], ["summary", "lenet5", "--format", "json"],
                                  ["validate", "lenet5"], ["layer", "dense", "--input", "4",
                                                           "--units", "2"]])
def test_stdout_full(monkeypatch, args):
    code, err = _run_with_stdout(monkeypatch, _Failing(OSError(errno.ENOSPC, "No space left on "
                                                                "device")), args)
    assert code == 1
    assert err == ("error: cannot write to standard output: No space left on device (fix: free "
                   "space where the output goes, or redirect it to another file or disk)\n")


def test_stdout_closed_pipe_is_quiet(monkeypatch):
    """click.echo's path (rich's own, Console.on_broken_pipe, is met in a subprocess below)."""
    code, err = _run_with_stdout(monkeypatch, _Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")),
                                 ["summary", "lenet5", "--format", "json"])
    assert (code, err) == (1, "")


# ---- for real, in a subprocess ---------------------------------------------------------------
def test_dev_full_stdout_subprocess(tmp_path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "archcalc", "summary", "vgg16"],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=ENV,
                              timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: cannot write to standard output: No space left on device (fix: free space "
        "where the output goes, or redirect it to another file or disk)"]


def test_closed_pipe_subprocess():
    """`archcalc summary resnet50 | head -0`: the reader is gone before the first write."""
    proc = subprocess.Popen([sys.executable, "-m", "archcalc", "summary", "resnet50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""


# ---- Ctrl-C at start-up ----------------------------------------------------------------------
_INTERRUPT_DURING_IMPORT = r"""
import builtins, sys
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    if name.startswith("rich"):          # in the middle of importing the commands
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.argv = ["archcalc", "list"]
from archcalc.__main__ import run
run()
"""


def test_ctrl_c_during_imports_is_one_line():
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "interrupted\n")


def _default_sigint() -> None:
    """In the child: SIGINT's default action. A test runner started in the background of a
    non-interactive shell (`bash .ci/run &`) ignores SIGINT, and its children inherit that:
    Python then never installs its handler, and the interrupt is lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_sigint_early_is_one_line(delay, tmp_path):
    """A real SIGINT while the command is imported or just after. `archcalc list`, used
    before, now ends within 0.15 s: `validate` of a 60,000-layer spec reads and resolves for
    about a second (pure Python, no worker threads)."""
    spec = tmp_path / "long.yaml"
    spec.write_text("name: long\ninput: [16]\nlayers:\n" + "  - dense: 16\n  - relu\n" * 30_000,
                    encoding="utf-8")
    for _ in range(3):  # a SIGINT that lands in a finalizer is "ignored" by CPython: again
        proc = subprocess.Popen([sys.executable, "-m", "archcalc", "validate", str(spec)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV, preexec_fn=_default_sigint)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            break
    else:
        pytest.fail(f"`archcalc validate` of 60,000 layers finished three times although "
                    f"interrupted after {delay} s: {err[-300:]}")
    # 130, or killed by SIGINT itself (-2; a shell shows both as 130): about 1 run in 16, the
    # interpreter ends the process by SIGINT after archcalc handled the interrupt and asked
    # for 130 (seen with the code before issue 14 too; an open issue).
    assert proc.returncode in (130, -signal.SIGINT), err
    assert err.strip().splitlines() == ["interrupted"], err


def test_console_script_entry_point_is_the_wrapper():
    import tomllib
    with open(Path(__file__).parent.parent / "pyproject.toml", "rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    assert scripts["archcalc"] == "archcalc.__main__:run"


def test_output_into_a_deleted_working_directory(tmp_path):
    """`report --out p.md` from a directory that was deleted: the fix says so (not 'mkdir -p .')."""
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    script = ("import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
              "sys.argv = ['archcalc', 'report', 'lenet5', '--out', 'p.md']; "
              "from archcalc.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", script, str(gone)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: cannot write p.md: No such file or directory (fix: the current directory was "
        "deleted; cd to an existing one or give an absolute path)"]


def test_a_device_or_fifo_is_never_replaced_by_a_saved_file(run, tmp_path):
    """Saving renames a new file over the target: over a FIFO (or /dev/null, as root) that
    would replace the special file itself. Refused in one line, the FIFO left as it was."""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run("report", "lenet5", "--out", str(fifo))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: cannot write {fifo}: it is a named pipe (FIFO), which a saved file would "
        "replace (fix: write to a regular file's path)")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    from archcalc.errors import ArchcalcError
    from archcalc.nn.weights import atomic_write
    with pytest.raises(ArchcalcError, match="named pipe"):
        atomic_write(fifo, lambda fh: fh.write(b"x"))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_import_refuses_one_file_for_both_spec_and_weights(run, tmp_path):
    model = tmp_path / "m.json"
    model.write_text("{}")
    same = tmp_path / "m.out"
    result = run("import", str(model), "--out", str(same), "--weights-out", str(same))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: --out and --weights-out are the same file, {same}: the spec would overwrite "
        "the weights (fix: give them different names)")
    assert not same.exists()
