"""One table style for every command, and the fitting of a table to a terminal.

A Grid is plain data (title, headers, rows of strings, footer lines). `rich()` draws the full
table: what a pipe, a file or `--wide` gets, exact figures, however wide. `fit(width)` draws
the same table within `width` columns, giving up detail in a fixed order (what torchinfo and
Keras users expect to keep: name, type, output, params, MACs):

1. hide the columns listed in `drop`, first listed first;
2. abbreviate figures (1,790 → 1.79 k), keeping as many columns as then fit;
3. cut the name column with '…' (unless it is one that wraps, like compare's labels);
4. on a terminal too narrow even for that, fold each row into a record of wrapped lines.

Every cell is rich Text, never markup: names are user text ("[/]" is a valid layer name).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

# The narrowest width worth giving a column that wraps (notes, sources): narrower, it is
# a column of word fragments, so it is hidden or the figures abbreviated instead.
FOLD_MIN = 24
# The narrowest cut name still worth reading ("inceptio…"); below it rows are folded.
NAME_MIN = 9
# A figure as every view prints an exact count: comma-grouped digits (1,790; 86,700,000).
_FIGURE = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d.]|,\d)")


_PREFIXES = ("", " k", " M", " G", " T", " P", " E")


def abbreviate(n: int) -> str:
    """An exact count in 3 significant digits for a narrow table: 1790 → '1.79 k',
    86700000 → '86.7 M', 999 → '999', 0 → '0'. Integer arithmetic rounds half up, and a
    rounding that reaches 1000 moves to the next prefix (999999 → '1.00 M', never '1000 k')."""
    if n < 0:
        return "-" + abbreviate(-n)
    if n < 1000:
        return str(n)
    digits = len(str(n))
    unit = 10 ** (digits - 3)
    top = (2 * n + unit) // (2 * unit)  # the first three digits, rounded half up
    if top == 1000:
        top, digits = 100, digits + 1
    group = min((digits - 1) // 3, len(_PREFIXES) - 1)
    whole = digits - 3 * group  # digits before the decimal point
    text = str(top)
    text = text + "0" * (whole - 3) if whole >= 3 else f"{text[:whole]}.{text[whole:]}"
    return text + _PREFIXES[group]


def _short(cell: str) -> str:
    """The cell with each exact figure abbreviated; shapes, ratios and bytes unchanged."""
    return _FIGURE.sub(lambda m: abbreviate(int(m.group().replace(",", ""))), cell)


def _text(value: str | Text) -> Text:
    return value if isinstance(value, Text) else Text(value)


@dataclass
class Grid:
    title: str
    headers: list[str]
    rows: list[list[str]]
    footer: list[str | Text] = field(default_factory=list)
    # Columns allowed to wrap (index → max width or None), for n/a reasons, notes, sources.
    wrap: dict[int, int | None] = field(default_factory=dict)
    # Rows drawn with a rule above them (totals).
    ruled: set[int] = field(default_factory=set)
    # Text columns besides the first (left-justified, never abbreviated).
    left: set[int] = field(default_factory=set)
    # Columns hidden to fit a narrow terminal, in this order.
    drop: list[int] = field(default_factory=list)
    # Row index → rich style (a failed check's row in red).
    styles: dict[int, str] = field(default_factory=dict)

    # ---- the full table ----------------------------------------------------------------------
    def rich(self) -> Group:
        if not self.rows:  # nothing to tabulate: the title and what the footer says
            return Group(Text(self.title), *[_text(line) for line in self.footer])
        return Group(self._table(set(), short=False), *[_text(line) for line in self.footer])

    # ---- fitted to a width -------------------------------------------------------------------
    def fit(self, width: int, exact: str = "--wide") -> Group:
        """The table within `width` columns; a dim line says what was hidden, abbreviated or
        cut, and that `exact` (the options that give exact figures) shows everything."""
        if not self.rows:
            return self.rich()
        for short in (False, True):
            for count in range(len(self.drop) + 1):
                hidden = set(self.drop[:count])
                if self.width(hidden, short) <= width:
                    return self._fitted(self._table(hidden, short), hidden, short, False,
                                        width, exact)
        hidden = set(self.drop)
        name = self._natural(0, short=True) - (self.width(hidden, True) - width)
        if name >= NAME_MIN and 0 not in self.wrap:  # labels that wrap are never cut
            return self._fitted(self._table(hidden, True, name=name), hidden, True, True,
                                width, exact)
        return self._folded(width, exact)

    def width(self, hidden: set[int], short: bool) -> int:
        """Columns the table needs with `hidden` columns left out, wrapping columns counted
        at FOLD_MIN (rich narrows them to the terminal when they are wider)."""
        return _measure(self._table(hidden, short, folded_at=FOLD_MIN))

    def _natural(self, index: int, short: bool) -> int:
        cells = [self.headers[index]] + [row[index] for row in self.rows]
        return max(Text(_short(c) if short else c).cell_len for c in cells)

    def _fitted(self, table: Table, hidden: set[int], short: bool, cut: bool, width: int,
                exact: str) -> Group:
        notes = []
        if hidden:
            names = ", ".join(self.headers[i] for i in sorted(hidden))
            notes.append(f"Hidden to fit {width} columns: {names}; --wide shows every column.")
        if short and self._abbreviates(hidden):
            notes.append("Figures abbreviated (3 significant digits; k = 10³, M = 10⁶, "
                          f"G = 10⁹); {exact} for exact figures.")
        if cut:
            notes.append("Long names cut with '…'; --wide shows them whole.")
        return Group(table, *[_text(line) for line in self.footer],
                     *[Text(note, style="dim") for note in notes])

    def _folded(self, width: int, exact: str) -> Group:
        """One record per row: the name, then 'header value;' items, packed into lines of
        `width` cells and broken between items (an item is broken at spaces only if it
        alone is wider than the line)."""
        lines = wrap_words(self.title, width)
        for row in self.rows:
            items = [f"{h} {_short(c)}".strip() for h, c in zip(self.headers[1:], row[1:])
                     if c.strip()]
            items = [f"{row[0]}:"] + [f"{item};" for item in items[:-1]] + items[-1:]
            lines += _pack(items, width)
        note = (f"Rows folded to fit {width} columns"
                + (", figures abbreviated" if self._abbreviates(set()) else "")
                + f"; {exact} for the full table.")
        return Group(Text("\n".join(lines)), *[_text(line) for line in self.footer],
                     Text(note, style="dim"))

    # ---- drawing -----------------------------------------------------------------------------
    def _numeric(self, hidden: set[int]) -> set[int]:
        """The shown columns whose figures may be abbreviated (not names, text or notes)."""
        return {i for i in range(1, len(self.headers))
                if i not in hidden and i not in self.wrap and i not in self.left}

    def _abbreviates(self, hidden: set[int]) -> bool:
        return any(_short(row[i]) != row[i] for row in self.rows for i in self._numeric(hidden))

    def _table(self, hidden: set[int], short: bool, name: int | None = None,
               folded_at: int | None = None) -> Table:
        """The table without `hidden` columns; `short` abbreviates figures, `name` cuts the
        first column to that width, `folded_at` caps wrapping columns (for measuring)."""
        shown = [i for i in range(len(self.headers)) if i not in hidden]
        table = Table(title=Text(self.title), box=box.SIMPLE_HEAD, title_justify="left",
                      pad_edge=False)
        for i in shown:
            wraps = i in self.wrap
            limit = self.wrap.get(i)
            if wraps and folded_at is not None:
                limit = min(limit or folded_at, folded_at)
            table.add_column(_text(self.headers[i]),
                             justify="left" if i == 0 or wraps or i in self.left else "right",
                             no_wrap=not wraps, max_width=name if i == 0 and name else limit,
                             overflow="fold" if wraps else "ellipsis")
        abbreviated = self._numeric(hidden) if short else set()
        for index, row in enumerate(self.rows):
            cells = [_short(row[i]) if i in abbreviated else row[i] for i in shown]
            if name and shown[0] == 0:
                cells[0] = _cut(cells[0], name)
            cells = [Text(cell) for cell in cells]
            table.add_row(*cells, style=self.styles.get(index),
                          end_section=index + 1 in self.ruled)
        return table

    # ---- Markdown ----------------------------------------------------------------------------
    def markdown(self, level: int = 3) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")
        if not self.rows:
            return "\n".join([f"{'#' * level} {self.title}", ""]
                              + [f"- {line}" for line in self.footer]) + "\n"
        lines = [f"{'#' * level} {self.title}", "",
                 "| " + " | ".join(cell(h) for h in self.headers) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.footer:
            lines += [""] + [f"- {line}" for line in self.footer]
        return "\n".join(lines) + "\n"


def _measure(table: Table) -> int:
    """The width a table takes when nothing limits it."""
    return Console(width=10_000, file=io.StringIO()).measure(table).maximum


def wrap_words(line: str, width: int) -> list[str]:
    """`line` in pieces of at most `width` cells, broken at spaces only, so a number or a
    formula is never split (a single word wider than `width` keeps its own piece). Pieces
    after the first are indented two past the line's own indent, to read as one item."""
    indent = line[:len(line) - len(line.lstrip(" "))]
    pieces: list[str] = []
    current = indent
    for gap, word in re.findall(r"(\s*)(\S+)", line[len(indent):]):
        joined = current + (gap if current.strip() else "") + word
        if cell_len(joined) <= width or not current.strip():
            current = joined
        else:
            pieces.append(current)
            current = indent + "  " + word
    pieces.append(current)
    return pieces


def _pack(items: list[str], width: int) -> list[str]:
    """Items joined by spaces into lines of at most `width` cells, continuation lines
    indented by two; an item wider than a line is itself wrapped at spaces."""
    lines: list[str] = []
    current = ""
    for item in items:
        joined = f"{current} {item}" if current.strip() else (current + item)
        if cell_len(joined) <= width or not current.strip():
            current = joined
        else:
            lines.append(current)
            current = "  " + item
    lines.append(current)
    return [piece for line in lines for piece in
            (wrap_words(line, width) if cell_len(line) > width else [line])]


def _cut(name: str, width: int) -> str:
    """`name` in `width` cells: its start, '…', and its end, which tells neighbouring rows
    apart (inception_3a/relu_3x3_reduce → incep…_3x3_reduce)."""
    if cell_len(name) <= width:
        return name
    head = ""
    for char in name:
        if cell_len(head + char) > (width - 1) // 3:
            break
        head += char
    tail = ""
    for char in reversed(name):
        if cell_len(head + char + tail) > width - 1:
            break
        tail = char + tail
    return f"{head}…{tail}"
