"""One error type for every user mistake, rendered as one line.

The line names where (file:line), what (the layer path), what is wrong (with the numbers)
and the fix. The CLI prints `render()` and exits non-zero; no traceback reaches a user.
An error about a list of things (the unsupported nodes of an imported model) may carry
`items`: each becomes one more line of its own after the first, at most MAX_ITEMS of them,
then one line with the count of the rest.
"""

from __future__ import annotations


MAX_ITEMS = 20  # listed items of one error; the rest are counted


class ArchcalcError(Exception):
    """A user-facing error: bad spec, impossible shape, bad option, missing file."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        layer: str | None = None,
        fix: str | None = None,
        items: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.layer = layer
        self.fix = fix
        self.items = list(items or [])

    def located(self, *, file: str | None = None, line: int | None = None,
                layer: str | None = None) -> "ArchcalcError":
        """Fill in location facts that were not known where the error was raised."""
        if self.file is None:
            self.file = file
        if self.line is None:
            self.line = line
        if self.layer is None:
            self.layer = layer
        return self

    def render(self) -> str:
        from archcalc.limits import echo, elide  # here: limits itself imports this module

        where = ""
        if self.file:  # a path as the user typed it: escaped, so it cannot forge a line
            where = echo(self.file) + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        layer = f"layer '{echo(elide(self.layer))}': " if self.layer else ""
        fix = f" (fix: {self.fix})" if self.fix else ""
        first = f"error: {where}{layer}{self.message}{fix}"
        if not self.items:
            return first
        lines = [first] + ["  " + echo(item) for item in self.items[:MAX_ITEMS]]
        if len(self.items) > MAX_ITEMS:
            lines.append(f"  ... and {len(self.items) - MAX_ITEMS:,} more")
        return "\n".join(lines)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.render()


class SpecError(ArchcalcError):
    """The spec itself is malformed: YAML, unknown kind, missing or bad field."""


class ShapeError(ArchcalcError):
    """The spec is well formed but its shapes do not work for the given input."""


class WindowTooLargeError(ShapeError):
    """A sliding window (conv, pool) larger than its padded input: the input is too small.
    `sweep` searches for the smallest input on exactly this error."""
