"""Writing a user's output file: all of it, or nothing, and one clear line when it fails.

Every file archcalc writes for a user (a report, a plot) goes through a temporary file in the
same directory, renamed over the target only once it is complete and flushed: a full disk, a
read-only or immutable directory or a Ctrl-C never leaves a 0-byte or half-written file, and
an existing file stays whole. An OSError becomes an ArchcalcError that says what could not be
written, why (with the system's words), and what to do about it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from archcalc.errors import ArchcalcError
from archcalc.limits import echo


def _cwd_exists() -> bool:
    try:
        os.getcwd()
        return True
    except OSError:
        return False


def _fix(code: int | None, path: Path) -> str:
    """What a user can do about `code` when writing `path`."""
    folder = str(path.parent) or "."
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that disk (or quota), or write to another disk"
    if code == errno.EROFS:
        return "that file system is read-only; write somewhere else"
    if code in (errno.EACCES, errno.EPERM):
        return (f"make {echo(folder)} and the file writable (chmod; an immutable file needs "
                "chattr -i), or write somewhere else")
    if code == errno.ENOENT and not path.is_absolute() and not _cwd_exists():
        return "the current directory was deleted; cd to an existing one or give an absolute path"
    if code == errno.ENOENT:
        return f"create the directory first (mkdir -p {echo(folder)}) or fix the path"
    if code == errno.ENOTDIR:
        return "a part of the path is a file, not a directory; fix the path"
    if code == errno.EISDIR:
        return "that is a directory; give a file name inside it"
    return "check the path, its permissions and the free space"


def write_error(path: str | Path, exc: OSError) -> ArchcalcError:
    """One line for a failed write of `path`."""
    path = Path(path)
    why = exc.strerror or str(exc)
    return ArchcalcError(f"cannot write {echo(path)}: {why}", fix=_fix(exc.errno, path))


def umask() -> int:
    """The process's umask (reading it means setting it: set it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_only(path: Path) -> bool:
    """Whether `path` is an existing file its owner made read-only. access() answers for the
    current user, but root may write anything, so a file no one has a write bit on counts as
    read-only too."""
    try:
        mode = path.stat().st_mode
    except OSError:  # missing (the normal case) or unreadable: the write itself will tell
        return False
    return not os.access(path, os.W_OK) or not mode & 0o222


def refuse_special(path: Path) -> None:
    """A write renames a new regular file over its target: over a device, a FIFO or a socket
    (`--out /dev/null`, run as root) that would replace the device itself. Refused instead."""
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:  # not there (the usual case), or unreadable: the write will say
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # directories are refused by the caller
        return
    kind = ("a character device" if stat.S_ISCHR(mode) else "a block device"
            if stat.S_ISBLK(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise ArchcalcError(f"cannot write {echo(path)}: it is {kind}, which a saved file would "
                        "replace", fix="write to a regular file's path")


def _refuse_read_only(path: Path) -> None:
    # The write is a rename of a new file over the old one, which needs only the directory's
    # permission: without this check a chmod 444 file would be silently replaced.
    if _read_only(path):
        raise ArchcalcError(f"cannot write {echo(path)}: the file exists and is read-only",
                            fix=f"make it writable (chmod u+w {echo(path)}), remove it, "
                                "or write to another name")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, the
    temporary file (flushed to disk) replaces `path`; on any error it is removed. OSErrors
    become ArchcalcError (write_error)."""
    path = Path(path)
    if path.is_dir():  # os.replace would say "Is a directory" only after all the work
        raise write_error(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    refuse_special(path)
    _refuse_read_only(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                    dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise write_error(path, exc) from None
    tmp = Path(name)
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the result is a normal file
        yield tmp
        with open(tmp, "rb+") as fh:  # the data is on the disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        try:
            tmp.unlink()
        except OSError:  # already renamed (the normal case), or gone
            pass

