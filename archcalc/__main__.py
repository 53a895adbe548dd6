"""`python -m archcalc` and the `archcalc` console script (pyproject.toml's [project.scripts]).

`run` is the entry point, not the click group itself: importing the commands (click, rich,
NumPy, pydantic) takes a noticeable moment, and a Ctrl-C or a closed pipe during that moment
happens before click's error boundary exists. Here it is still one line (or silence) and the
conventional exit code, however early it comes.
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        try:
            from archcalc.cli import main  # the slow part: every command's imports
        except Exception as exc:
            # Python wraps what a class body's __set_name__ raises (pydantic's models) in a
            # RuntimeError: a Ctrl-C that lands there is still a Ctrl-C.
            if _caused_by_interrupt(exc):
                raise KeyboardInterrupt from None
            raise
        main(prog_name="archcalc")  # not "python -m archcalc" in help and messages
    except KeyboardInterrupt:
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        sys.exit(130)
    except BrokenPipeError:  # a closed pipe outside the boundary: quiet, exit 1 as inside it
        from archcalc.cli.common import silence_stdout  # imported by now: main ran

        silence_stdout()
        sys.exit(1)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 100:  # a cause chain is short; a cycle must not hang
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


if __name__ == "__main__":
    run()
