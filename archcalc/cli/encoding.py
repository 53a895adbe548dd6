"""Output to a stream that cannot encode archcalc's characters (PYTHONIOENCODING=ascii, a
latin-1 locale, an old terminal): each character it cannot encode is written as its ASCII
equivalent (× as x, — as -, ✓ as ok, 10⁹ as 10^9, a box line as - | +), never an
UnicodeEncodeError (which was exit 70 on the first '×') and never a silent '?' where a
readable spelling exists. A UTF-8 stream is left alone: nothing changes for it.

rich already draws its tables' boxes in ASCII when the stream's encoding is not UTF-8
(Console.encoding); this covers everything else archcalc prints.
"""

from __future__ import annotations

import codecs
import sys
import unicodedata

HANDLER = "archcalc-ascii"

# Characters archcalc prints (grep the package for non-ASCII) and how they read in ASCII.
ASCII = {
    "×": "x", "·": "*", "—": "-", "–": "-", "−": "-", "…": "...", "→": "->", "←": "<-",
    "≤": "<=", "≥": ">=", "≈": "~", "≠": "!=", "±": "+/-", "÷": "/", "√": "sqrt",
    "⌊": "floor(", "⌋": ")", "⌈": "ceil(", "⌉": ")", "✓": "ok", "✗": "FAIL",
    "Σ": "sum", "Δ": "delta", "α": "alpha", "β": "beta", "γ": "gamma", "ε": "eps",
    "θ": "theta", "λ": "lambda", "µ": "u", "μ": "mu", "ρ": "rho", "½": "1/2",
    "∂": "d", "σ": "sigma", "η": "eta", "∗": "*",
    "‘": "'", "’": "'", "“": '"', "”": '"', "•": "*", "\u0302": "^", "ᵀ": "^T",
}
# Superscripts that form one exponent together (10¹² → 10^12, e⁻ᶻ → e^-z).
SUPERSCRIPTS = {**{ch: str(i) for i, ch in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}, "⁻": "-", "⁺": "+",
                "ᶻ": "z", "ˣ": "x"}


def _box(ch: str) -> str | None:
    """A box-drawing character (U+2500-257F, drawn by our own tables) as - | or +."""
    if not "\u2500" <= ch <= "\u257f":
        return None
    words = set(unicodedata.name(ch, "").split())
    if words & {"AND", "UP", "DOWN", "LEFT", "RIGHT"}:  # a corner or a junction (┳ ┼ ┐)
        return "+"
    if "HORIZONTAL" in words:
        return "-"
    return "|" if "VERTICAL" in words else "+"


def _one(ch: str) -> str:
    if ch in ASCII:
        return ASCII[ch]
    box = _box(ch)
    if box is not None:
        return box
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return plain or "?"  # é → e; a character with no ASCII reading at all → ?


def transliterate(text: str) -> str:
    """`text` in ASCII: a run of superscript digits is one exponent (10¹² → 10^12)."""
    out: list[str] = []
    digits = ""
    for ch in text:
        if ch in SUPERSCRIPTS:
            digits += SUPERSCRIPTS[ch]
            continue
        if digits:
            out.append("^" + digits)
            digits = ""
        out.append(ch if ch.isascii() else _one(ch))
    if digits:
        out.append("^" + digits)
    return "".join(out)


def _handler(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    # The replacement must itself be encodable: ASCII is, in every codec Python offers
    # for a text stream (UTF-16 aside, which never fails to encode).
    return transliterate(exc.object[exc.start:exc.end]), exc.end


codecs.register_error(HANDLER, _handler)

# The stream gets a codec of its own, "archcalc_<its encoding>", not only errors=HANDLER:
# click treats an ASCII stream as a misconfigured locale and writes UTF-8 to its buffer
# behind the stream's back, so click.echo and rich would disagree on one stream.
PREFIX = "archcalc_"


def _codec(name: str) -> codecs.CodecInfo | None:
    if not name.startswith(PREFIX):
        return None
    try:
        base = codecs.lookup(name[len(PREFIX):])
    except LookupError:
        return None

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return base.encode(text, HANDLER)

    class Encoder(codecs.IncrementalEncoder):
        def encode(self, text: str, final: bool = False) -> bytes:
            return base.encode(text, HANDLER)[0]

    return codecs.CodecInfo(encode, base.decode, name=PREFIX + base.name,
                            incrementalencoder=Encoder,
                            incrementaldecoder=base.incrementaldecoder,
                            streamreader=base.streamreader, streamwriter=base.streamwriter)


codecs.register(_codec)


def _needs_it(stream) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not encoding or encoding.startswith(PREFIX):
        return False
    try:
        "×—✓−⁹…─".encode(encoding)
    except UnicodeEncodeError:
        return True
    except LookupError:
        return False
    return False


def ascii_fallback() -> None:
    """Make sys.stdout and sys.stderr transliterate what they cannot encode (see above)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and _needs_it(stream) and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(encoding=PREFIX + codecs.lookup(stream.encoding).name)
            except (ValueError, OSError, LookupError):  # closed: the boundary deals with it
                pass
