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
from typing import Any, Iterator, Sequence

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group
from rich.measure import Measurement
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

# The narrowest width worth giving a column that wraps (notes, sources): narrower, it is
# a column of word fragments, so it is hidden or the figures abbreviated instead.
FOLD_MIN = 24
# The narrowest cut name still worth reading ("inceptio…"); below it rows are folded.
NAME_MIN = 9
# Text the plain drawer (Drawn) would not draw as rich does: control codes (rich strips some,
# expands tabs) and line breaks (rich splits a cell into lines there). A grid with any of them
# in a header or cell is drawn by rich's Table.
_NOT_PLAIN = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
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


def plain(value: Any) -> Any:
    """User text for rich, never parsed: a str becomes a Text, so '[/]' or ':fire:' in a
    spec's name prints as written (rich would read markup and emoji codes in a str)."""
    return Text(value) if isinstance(value, str) else value


@dataclass
class Grid:
    title: str
    headers: list[str]
    rows: Sequence[Sequence[str]]  # a list, or a lazy sequence (a 100,000-layer summary's)
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
            return Group(Text(self.title), *[plain(line) for line in self.footer])
        return Group(self._table(set(), short=False), *[plain(line) for line in self.footer])

    # ---- fitted to a width -------------------------------------------------------------------
    def fit(self, width: int, exact: str = "--wide") -> Group:
        """The table within `width` columns; a dim line says what was hidden, abbreviated or
        cut, and that `exact` (the options that give exact figures) shows everything."""
        if not self.rows:
            return self.rich()
        for short in (False, True):
            for count in range(len(self.drop) + 1):
                hidden = set(self.drop[:count])
                table = self._if_fits(hidden, short, width)
                if table is not None:
                    return self._fitted(table, hidden, short, False, width, exact)
        hidden = set(self.drop)
        name = self._natural(0, short=True) - (self.width(hidden, True) - width)
        if name >= NAME_MIN and 0 not in self.wrap:  # labels that wrap are never cut
            return self._fitted(self._table(hidden, True, name=name), hidden, True, True,
                                width, exact)
        return self._folded(width, exact)

    def _if_fits(self, hidden: set[int], short: bool, width: int) -> "Table | Drawn | None":
        """The table without `hidden` columns if it fits `width`, else None. A plain grid is
        drawn once: the drawing that was measured is the one printed."""
        if self._plain():
            drawn = Drawn(self, hidden, short)
            return drawn if drawn.width <= width else None
        return self._table(hidden, short) if self.width(hidden, short) <= width else None

    def width(self, hidden: set[int], short: bool) -> int:
        """Columns the table needs with `hidden` columns left out, wrapping columns counted
        at FOLD_MIN (rich narrows them to the terminal when they are wider)."""
        if self._plain():
            return Drawn(self, hidden, short).width
        return _measure(self._table(hidden, short, folded_at=FOLD_MIN))

    def _natural(self, index: int, short: bool) -> int:
        if self._plain():  # measured once, in the scan
            return self._widest(short)[index]
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
        return Group(table, *[plain(line) for line in self.footer],
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
        return Group(Text("\n".join(lines)), *[plain(line) for line in self.footer],
                     Text(note, style="dim"))

    # ---- drawing -----------------------------------------------------------------------------
    def _numeric(self, hidden: set[int]) -> set[int]:
        """The shown columns whose figures may be abbreviated (not names, text or notes)."""
        return {i for i in range(1, len(self.headers))
                if i not in hidden and i not in self.wrap and i not in self.left}

    def _abbreviates(self, hidden: set[int]) -> bool:
        if self._plain():
            self._widest(True)
            return bool(self._scan.changed & self._numeric(hidden))
        return any(_short(row[i]) != row[i] for row in self.rows for i in self._numeric(hidden))

    def _plain(self) -> bool:
        """Whether Drawn draws this grid exactly as rich's Table would: no column wraps and
        no header or cell holds a control code or line break. Cached: it reads every row."""
        if not hasattr(self, "_scan"):
            self._scan = _Scan(self)
        return self._scan.plain

    def _widest(self, short: bool) -> list[int]:
        """Each column's widest cell (header included) of a plain grid, its figures
        abbreviated if `short`; measured once per `short`, so fitting a table to a terminal
        tries every set of hidden columns without reading the rows again."""
        scan = self._scan
        if short not in scan.widest:
            scan.measure_short(self._numeric(set()))
        return scan.widest[short]

    def _rows(self) -> Iterator[Sequence[str]]:
        """The rows' cells: from the scan's packed lines when it kept them (each row's
        cells are then made once, however many times the table is measured and drawn)."""
        packed = getattr(self, "_scan", None)
        if packed is None or packed.lines is None:
            return iter(self.rows)
        return (line.split(_SEP) for line in packed.lines)

    def _cells(self, hidden: set[int], short: bool, name: int | None) -> Iterator[list[str]]:
        """Each row's shown cells as the table prints them (abbreviated, name cut)."""
        shown = [i for i in range(len(self.headers)) if i not in hidden]
        abbreviated = self._numeric(hidden) if short else set()
        if not hidden and not abbreviated and not name:  # every cell as it is
            yield from map(list, self._rows())
            return
        for row in self._rows():
            cells = [_short(row[i]) if i in abbreviated else row[i] for i in shown]
            if name and shown[0] == 0:
                cells[0] = _cut(cells[0], name)
            yield cells

    def _table(self, hidden: set[int], short: bool, name: int | None = None,
               folded_at: int | None = None) -> "Table | Drawn":
        """The table without `hidden` columns; `short` abbreviates figures, `name` cuts the
        first column to that width, `folded_at` caps wrapping columns (for measuring).
        Drawn, not rich's Table, when it draws the same characters: rich spends ~1 ms a row
        (20 s for a 20,000-layer summary), Drawn a few µs."""
        if self._plain():
            return Drawn(self, hidden, short, name)
        return self._rich_table(hidden, short, name, folded_at)

    def _rich_table(self, hidden: set[int], short: bool, name: int | None = None,
                    folded_at: int | None = None) -> Table:
        shown = [i for i in range(len(self.headers)) if i not in hidden]
        table = Table(title=Text(self.title), box=box.SIMPLE_HEAD, title_justify="left",
                      pad_edge=False)
        for i in shown:
            wraps = i in self.wrap
            limit = self.wrap.get(i)
            if wraps and folded_at is not None:
                limit = min(limit or folded_at, folded_at)
            table.add_column(plain(self.headers[i]),
                             justify="left" if i == 0 or wraps or i in self.left else "right",
                             no_wrap=not wraps, max_width=name if i == 0 and name else limit,
                             overflow="fold" if wraps else "ellipsis")
        for index, cells in enumerate(self._cells(hidden, short, name)):
            table.add_row(*[Text(cell) for cell in cells], style=self.styles.get(index),
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


# Joins a plain row's cells in the scan's packed line: a control code, so no plain cell has it.
_SEP = "\x1f"
# _NOT_PLAIN in a packed line, less the separators (a cell's own \x1f changes their count).
_NOT_PLAIN_PACKED = re.compile("[\x00-\x1e\x7f\x85\u2028\u2029]")
# A cell of a packed line that ends in whitespace (what str.rstrip would strip).
_TRAILING = re.compile("[^\\S\x1f](?:\x1f|$)")


class _Scan:
    """One pass over a Grid's rows (which may be made lazily, ~10 µs a row): whether Drawn
    can draw them, each column's widest cell, and, for a plain grid, the rows kept as one
    packed line each (~100 bytes a row, against ~500 for the list of cell strings), so the
    cells are made once and not again for each measure and for the drawing."""

    def __init__(self, grid: Grid) -> None:
        headers = list(grid.headers)
        self.headers = headers
        self.widest: dict[bool, list[int]] = {}
        self.changed: set[int] = set()  # the columns abbreviating changes
        self.wide: set[int] = set()  # columns with a cell wider than its length (表, 😀)
        self.trailing = False  # a cell ends in whitespace (a right-justified one is stripped)
        self.lines: list[str] | None = None
        self.plain = not grid.wrap and not _NOT_PLAIN.search("".join(headers))
        if not self.plain:
            return
        widest = [cell_len(h) for h in headers]
        lines: list[str] = []
        chunk: list[Sequence[str]] = []
        for cells in grid.rows:
            line = _SEP.join(cells)
            # A cell holding _SEP holds a control code: the count of separators catches it.
            if line.count(_SEP) != len(headers) - 1 or _NOT_PLAIN_PACKED.search(line):
                self.plain = False
                return
            lines.append(line)
            if not self.trailing and _TRAILING.search(line):
                self.trailing = True
            chunk.append(cells)
            if len(chunk) == 1000:
                self._measure(chunk, widest)
                chunk = []
        self._measure(chunk, widest)
        self.lines = lines
        self.widest[False] = widest

    def _measure(self, rows: list[Sequence[str]], widest: list[int]) -> None:
        """Widen `widest` to the rows' cells, a column at a time (len in C for ASCII)."""
        for column, cells in enumerate(zip(*rows)):
            if all(map(str.isascii, cells)):
                n = max(map(len, cells))
            else:
                n = 0
                for cell in cells:
                    width = len(cell) if cell.isascii() else cell_len(cell)
                    if width != len(cell):
                        self.wide.add(column)
                    n = max(n, width)
            if n > widest[column]:
                widest[column] = n

    def measure_short(self, numeric: set[int]) -> None:
        """The widest cells with figures abbreviated, in one more pass over the lines."""
        widest = [cell_len(h) for h in self.headers]
        chunk: list[list[str]] = []
        for line in self.lines or ():
            cells = line.split(_SEP)
            for column in numeric:
                short = _short(cells[column])
                if short != cells[column]:
                    self.changed.add(column)
                    cells[column] = short
            chunk.append(cells)
            if len(chunk) == 1000:
                self._measure(chunk, widest)
                chunk = []
        self._measure(chunk, widest)
        self.widest[True] = widest


class Drawn:
    """A Grid's table drawn line by line, character for character what rich's Table draws
    for it (box.SIMPLE_HEAD, pad_edge=False, title justified left, one line per cell, every
    column at its natural width, styles on the same cells), in a few µs a row and without
    holding the table: the rows are read twice, once for the widths and once to draw.
    tests/test_scale_bounds.py compares both drawings for every bundled spec and random grids.

    Rich shrinks a Table that is wider than the console; Drawn is never given less than its
    width: print_wide widens the console to the full table, and fit() only draws tables that
    fit (their width is measured here too)."""

    def __init__(self, grid: Grid, hidden: set[int], short: bool, name: int | None = None):
        self.grid, self.short, self.name = grid, short, name
        self.hidden = set(hidden)
        self.shown = [i for i in range(len(grid.headers)) if i not in self.hidden]
        self.headers = [grid.headers[i] for i in self.shown]
        last = len(self.shown) - 1
        # Padding as rich gives it: one space between columns, none at the table's edges.
        self.pads = [(0 if i == 0 else 1, 0 if i == last else 1) for i in range(last + 1)]
        self.right = [not (i == 0 or i in grid.left) for i in self.shown]
        if name is None and grid._plain():  # measured once for every set of hidden columns
            every = grid._widest(short)
            widest = [every[i] for i in self.shown]
        else:
            widest = [cell_len(h) for h in self.headers]
            for cells in grid._cells(self.hidden, short, name):
                for column, cell in enumerate(cells):
                    n = len(cell) if cell.isascii() else cell_len(cell)
                    if n > widest[column]:
                        widest[column] = n
        if name and self.shown[0] == 0:  # the cut names' column: its header is cut too
            widest[0] = min(widest[0], name)
        # A column whose cells are all empty and unpadded is still one cell wide (rich's `or 1`).
        self.widths = [(w + left + right) or 1 for w, (left, right) in zip(widest, self.pads)]
        self.width = sum(self.widths) + len(self.widths) + 1  # two edges, a divider between columns
        # Per shown column: (left padding, right padding, room for the text, right-justified).
        self._layout = [(" " * before, " " * after, width - before - after, right)
                        for (before, after), width, right in zip(self.pads, self.widths,
                                                                  self.right)]
        # Rows of a plain grid whose shown cells all take one cell a character, and whose
        # widths came from those very cells (no name cut), are one str.format call a row.
        self._formats: dict[tuple[str, str, str], str] | None = (
            {} if name is None and grid._plain() and not (grid._scan.wide & set(self.shown))
            else None)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        plain = console.color_system is None  # no styles to draw: one segment per line
        for pieces in self.lines(console, options):
            if plain:
                yield Segment("".join(text for text, _ in pieces))
            else:
                for text, style in pieces:
                    yield Segment(text, console.get_style(style) if style else None)
            yield Segment.line()

    def text(self, console: Console) -> Iterator[str]:
        """The drawing as plain text lines ending in a newline (a console without colour)."""
        for pieces in self.lines(console, console.options):
            yield "".join(text for text, _ in pieces) + "\n"

    def lines(self, console: Console, options: ConsoleOptions) -> Iterator[list[tuple[str, str]]]:
        """Each line as (text, style name) pieces."""
        grid, widths = self.grid, self.widths
        # The box characters rich would use on this console (ASCII where it cannot print ─).
        chars = box.SIMPLE_HEAD.substitute(options, safe=console.safe_box)
        if grid.title:
            for line in Text(grid.title).wrap(console, self.width, justify="left",
                                              overflow="fold"):
                yield [(line.plain, "table.title")]
        yield [(chars.get_top(widths), "")]
        yield self._row(self.headers, chars.head_left, chars.head_vertical, chars.head_right,
                        "table.header")
        yield [(chars.get_row(widths, "head", edge=True), "")]
        count = len(grid.rows)
        spacer = chars.get_row(widths, "row", edge=True)
        styles = grid.styles
        for index, cells in enumerate(grid._cells(self.hidden, self.short, self.name)):
            last = index == count - 1
            left, divider, right = ((chars.foot_left, chars.foot_vertical, chars.foot_right)
                                    if last else
                                    (chars.mid_left, chars.mid_vertical, chars.mid_right))
            style = styles.get(index) if styles else None
            if style:
                yield self._row(cells, left, divider, right, style)
            else:  # one piece: one segment a line, however many columns
                yield [(self._row_text(cells, left, divider, right), "")]
            if index + 1 in grid.ruled and not last:
                yield [(spacer, "")]
        yield [(chars.get_bottom(widths), "")]

    def _row_text(self, cells: list[str], left: str, divider: str, right: str) -> str:
        """An unstyled row's line: "".join of _row's pieces' text, without the pieces."""
        if self._formats is not None:
            form = self._formats.get((left, divider, right))
            if form is None:
                form = self._formats[(left, divider, right)] = self._format(left, divider, right)
            if not self.grid._scan.trailing:
                return form.format(*cells)
            return form.format(*[cell.rstrip() if right_justified else cell
                                 for cell, right_justified in zip(cells, self.right)])
        parts = []
        for cell, (before, after, room, right_justified) in zip(cells, self._layout):
            if right_justified:
                cell = cell.rstrip()
            n = len(cell) if cell.isascii() else cell_len(cell)
            if n > room:  # a header over cut names: _row cuts it
                return "".join(text for text, _ in self._row(cells, left, divider, right, ""))
            fill = " " * (room - n)
            parts.append(before + fill + cell + after if right_justified
                         else before + cell + fill + after)
        return left + divider.join(parts) + right

    def _format(self, left: str, divider: str, right: str) -> str:
        """The format string of a row: every cell fits its column (the widths are the widest
        cells), and str.format pads by characters, which are cells here."""
        def escape(text: str) -> str:
            return text.replace("{", "{{").replace("}", "}}")
        fields = [escape(before) + "{:" + (">" if right_justified else "<") + f"{room}}}"
                  + escape(after) for before, after, room, right_justified in self._layout]
        return escape(left) + escape(divider).join(fields) + escape(right)

    def _row(self, cells: list[str], left: str, divider: str, right: str,
             style: str) -> list[tuple[str, str]]:
        pieces = [(left, "")]
        for column, cell in enumerate(cells):
            before, after = self.pads[column]
            room = self.widths[column] - before - after
            if self.right[column]:
                cell = cell.rstrip()
            n = len(cell) if cell.isascii() else cell_len(cell)
            if n > room:  # only a header over cut names: cut as rich's overflow="ellipsis"
                cell, n = set_cell_size(cell, room - 1) + "…", room
            cell = " " * (room - n) + cell if self.right[column] else cell + " " * (room - n)
            pieces.append((" " * before + cell + " " * after, style))
            if column < len(cells) - 1:
                pieces.append((divider, ""))
        pieces.append((right, ""))
        return pieces


def print_streamed(out: Console, group: Group, chunk: int = 1000) -> None:
    """out.print(group), the same bytes, with each Drawn table in it written `chunk` lines
    at a time: rich renders a whole print call before writing it, which for a 100,000-row
    table on a terminal held every row's segments (~70 MB) until the last was drawn. An
    unstyled line (every row but a styled one) is written as its text, which is what rich
    writes for it; a styled one (title, header) is printed by rich."""
    for part in group.renderables:
        if not isinstance(part, Drawn):
            out.print(part)
            continue
        text: list[str] = []
        for pieces in part.lines(out, out.options):
            if len(pieces) == 1 and not pieces[0][1]:
                text.append(pieces[0][0] + "\n")
                if len(text) >= chunk:
                    out.file.write("".join(text))
                    text.clear()
                continue
            if text:
                out.file.write("".join(text))
                text.clear()
            out.print(Segments([Segment(piece, out.get_style(style) if style else None)
                                for piece, style in pieces] + [Segment.line()]))
        out.file.write("".join(text))


def _measure(table: Table) -> int:
    """The width a table takes when nothing limits it."""
    return Console(width=10_000, file=io.StringIO()).measure(table).maximum


def wrap_words(line: str, width: int) -> list[str]:
    """`line` in pieces of at most `width` cells, broken at spaces, so a number or a formula
    is not split; a single word wider than a line (a formula with no spaces) is folded, after
    a '·', '/' or ',' where it has one (_fold_word). Pieces after the first are indented two
    past the line's own indent, to read as one item."""
    indent = line[:len(line) - len(line.lstrip(" "))]
    more = indent + "  "
    pieces: list[str] = []
    current = indent
    for gap, word in re.findall(r"(\s*)(\S+)", line[len(indent):]):
        joined = current + (gap if current.strip() else "") + word
        if cell_len(joined) <= width:
            current = joined
            continue
        if current.strip():
            pieces.append(current)
            current = more
        parts = _fold_word(word, max(width - cell_len(current), 8))
        for part in parts[:-1]:
            pieces.append(current + part)
            current = more
        current += parts[-1]
    pieces.append(current)
    return pieces


FOLD_AFTER = "·/,;=+×*)"  # where a formula reads well broken (never inside a number's digits)


def _fold_word(word: str, room: int) -> list[str]:
    """`word` in pieces of at most `room` cells, each cut after the last FOLD_AFTER character
    in its second half, else at `room` itself."""
    parts: list[str] = []
    while cell_len(word) > room:
        cut = room
        while cell_len(word[:cut]) > room:  # wide characters take two cells
            cut -= 1
        best = max((i + 1 for i in range(cut // 2, cut) if word[i] in FOLD_AFTER), default=cut)
        parts.append(word[:best])
        word = word[best:]
    parts.append(word)
    return parts


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
