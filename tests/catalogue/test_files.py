"""Catalogue: spec files that are missing, unreadable, not files at all, too large, or not
text (issue 8, classes 2 and 10). A device or a pipe is refused by its kind, before it is
opened (it would read forever or block); a file is read up to the size limit plus one byte;
bytes that are not UTF-8 are named by their offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archcalc.limits import DEFAULTS
from catalogue.runner import Case, check_case, measure

FIX_FILE = "(fix: name a .yaml or .json file)"
FIX_UTF8 = "(fix: save the file as UTF-8)"
GOOD = "name: t\ninput: [1, 8, 8]\nlayers: [relu]\n"


def _fifo(where: Path) -> None:
    os.mkfifo(where / "pipe.yaml")


def _dir(where: Path) -> None:
    (where / "net.yaml").mkdir()


def _link_to_zero(where: Path) -> None:
    (where / "zero.yaml").symlink_to("/dev/zero")


def _sparse_huge(where: Path) -> None:
    # 65 MiB by its size, no bytes on disk: refused from its size, never read.
    with open(where / "huge.yaml", "wb") as handle:
        handle.truncate(65 * 1024 * 1024)


CASES = [
    Case("missing_file", ["summary", "nope.yaml"],
         "error: no such file: nope.yaml (fix: check the path)"),
    # Not regular files: refused from os.stat, never opened (subprocess: a regression would
    # hang or fill memory here, and the runner's timeout ends it).
    Case("spec_dev_zero", ["summary", "/dev/zero"],
         f"error: /dev/zero: is a character device, not a spec file {FIX_FILE}", subprocess=True),
    Case("spec_dev_urandom", ["validate", "/dev/urandom"],
         f"error: /dev/urandom: is a character device, not a spec file {FIX_FILE}",
         subprocess=True),
    Case("spec_fifo", ["summary", "pipe.yaml"],
         f"error: pipe.yaml: is a named pipe (FIFO), not a spec file {FIX_FILE}",
         setup=_fifo, subprocess=True),
    Case("spec_symlink_to_device", ["summary", "zero.yaml"],
         f"error: zero.yaml: is a character device, not a spec file {FIX_FILE}",
         setup=_link_to_zero, subprocess=True),
    Case("spec_directory", ["summary", "net.yaml"],
         f"error: net.yaml: is a directory, not a spec file {FIX_FILE}", setup=_dir),
    Case("spec_directory_no_suffix", ["validate", "./"],
         f"error: ./: is a directory, not a spec file {FIX_FILE}"),
    # Too large: by the file's size, before reading.
    Case("spec_too_large", ["summary", "huge.yaml"],
         "error: huge.yaml: the file is 68,157,440 bytes; a spec may have at most "
         f"{DEFAULTS['MAX_SPEC_BYTES'][0]:,} "
         "bytes (fix: if the input is legitimate, raise the limit: "
         "ARCHCALC_MAX_SPEC_BYTES=<larger number>)", setup=_sparse_huge),
    Case("spec_too_large_env", ["summary", "net.yaml"],
         "error: net.yaml: the file is 40 bytes; a spec may have at most 20 bytes (fix: if the "
         "input is legitimate, raise the limit: ARCHCALC_MAX_SPEC_BYTES=<larger number>)",
         files={"net.yaml": GOOD}, env={"ARCHCALC_MAX_SPEC_BYTES": "20"}),
    Case("spec_limit_env_not_a_number", ["summary", "net.yaml"],
         "error: ARCHCALC_MAX_SPEC_BYTES='lots' is not a positive integer (fix: unset it "
         f"(default {DEFAULTS['MAX_SPEC_BYTES'][0]:,}: bytes in one spec file) or give a number)",
         files={"net.yaml": GOOD}, env={"ARCHCALC_MAX_SPEC_BYTES": "lots"}),
    # Not UTF-8 text: the byte, the line, the fix.
    Case("spec_latin1", ["validate", "net.yaml"],
         f"error: net.yaml:4: not UTF-8 text at byte 45 (0xe9) {FIX_UTF8}",
         files={"net.yaml": GOOD.encode() + "# café\n".encode("latin-1")}),
    Case("spec_binary_png", ["summary", "net.yaml"],
         f"error: net.yaml:1: not UTF-8 text at byte 0 (0x89) {FIX_UTF8}",
         files={"net.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))}),
    Case("spec_binary_elf", ["summary", "net.yaml"],
         f"error: net.yaml:1: not UTF-8 text at byte 18 (0xb7) {FIX_UTF8}",
         files={"net.yaml": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x03\x00\xb7\x00"}),
    Case("spec_utf16", ["summary", "net.yaml"],
         f"error: net.yaml:1: UTF-16 text, not UTF-8 {FIX_UTF8}",
         files={"net.yaml": GOOD.encode("utf-16")}),
    Case("spec_nul_bytes", ["summary", "net.yaml"],
         "error: net.yaml:1: control character #x0000 at column 8: YAML text cannot hold it "
         "(fix: remove it; is this a binary file?)",
         files={"net.yaml": b"name: t\x00\ninput: [1, 8, 8]\n"}),
    # Empty, or not a spec at all.
    Case("spec_empty", ["summary", "net.yaml"],
         "error: net.yaml: the file is empty (fix: a spec has name:, input: and layers:; see "
         "README, Spec language)", files={"net.yaml": ""}),
    Case("spec_blank", ["validate", "net.yaml"],
         "error: net.yaml: the file is empty (fix: a spec has name:, input: and layers:; see "
         "README, Spec language)", files={"net.yaml": "\n  \n\t\n"}),
    Case("spec_only_comments", ["summary", "net.yaml"],
         "error: net.yaml: a spec is a mapping with name, input and layers (fix: start the "
         "file with 'name: ...')", files={"net.yaml": "# nothing here\n"}),
    Case("spec_a_list", ["summary", "net.yaml"],
         "error: net.yaml:1: a spec is a mapping with name, input and layers (fix: start the "
         "file with 'name: ...')", files={"net.yaml": "- conv\n- relu\n"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


def test_a_utf8_byte_order_mark_is_fine(run, tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    result = run("validate", str(path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("target", ["/dev/zero", "pipe.yaml"])
def test_devices_and_pipes_cost_nothing(tmp_path, target):
    if target == "pipe.yaml":
        _fifo(tmp_path)
    used = measure(["summary", target], tmp_path, timeout=30)
    assert used.code == 1 and "not a spec file" in used.stderr
    assert used.peak_mb < 200 and used.cpu_s < 5, (used.peak_mb, used.cpu_s)
