"""User text a spec gives that archcalc prints: names (of the network, its layers, its blocks),
`source`, `description`.

That text reaches terminals, tables and CI logs as it is. A newline in a name forges a second
output line (`::error file=x::` is a GitHub Actions command), ESC and BEL drive the terminal
(clear it, retitle the window), bidi overrides reorder what follows them and zero-width
characters make two names look the same or misalign a table. None has a use in a name, so a
spec holding one is refused where it is loaded, naming the line and the character.
"""

from __future__ import annotations

import unicodedata

from archcalc.errors import SpecError

# Unicode categories refused: Cc (C0 and C1 controls, DEL), Cf (format: bidi overrides and
# isolates, zero-width space and joiners, soft hyphen, BOM), Cs (lone surrogates, which a
# "\ud800" escape makes and no terminal can encode), Zl / Zp (line and paragraph separators).
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Prose (a description) may span lines and hold tabs.
_PROSE_OK = frozenset("\n\t")


def _kind(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cc":
        return "a control character"
    if category == "Cs":
        return "a lone surrogate"
    name = unicodedata.name(char, "")
    return name.lower() if name else "an invisible formatting character"


def bad_char(text: str, prose: bool = False) -> tuple[int, str] | None:
    """(position, character) of the first refused character of `text`, or None."""
    if text.isprintable():  # the common case, checked in C
        return None
    for index, char in enumerate(text):
        if prose and char in _PROSE_OK:
            continue
        if unicodedata.category(char) in _REFUSED:
            return index, char
    return None


def check_text(text: object, what: str, *, line: int | None = None,
               layer: str | None = None, prose: bool = False) -> None:
    """Refuse `text` (the `what` of the spec, e.g. "the layer name") if it holds a character
    a terminal acts on or hides. `prose`: line breaks and tabs are allowed."""
    if not isinstance(text, str):
        return
    found = bad_char(text, prose)
    if found is None:
        return
    index, char = found
    raise SpecError(f"{what} holds U+{ord(char):04X} ({_kind(char)}) at character "
                    f"{index + 1:,}: it would reach terminals and logs as it is",
                    line=line, layer=layer,
                    fix="remove it; names, source and description are printed text")
