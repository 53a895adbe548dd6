"""Read a YAML (or JSON) spec keeping the line of every mapping and list.

`yaml.safe_load` forgets where things were; a typo must point at its line, so mappings load
as `LineDict` and lists as `LineList`, each with a `.line` (1-based). Duplicate keys, which
PyYAML silently resolves to the last one, are an error here.

The file is untrusted: YAML anchors (&a) and aliases (*a) let a few hundred bytes describe
billions of values ("billion laughs"). PyYAML composes the node graph in time linear in the
file (an alias reuses its anchor's node object), so the graph is measured *before* any
Python object is built: its size once every alias is expanded, and its nesting depth. Both
are bounded by archcalc.limits (MAX_SPEC_NODES, MAX_SPEC_DEPTH).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterator
from typing import Any, NoReturn

import yaml

from archcalc.errors import SpecError
from archcalc.limits import echo, limit, max_depth, raise_hint, stack_room


class LineDict(dict):
    """A mapping and its lines: `line` (its own) and `key_lines` (each key's), unset on a
    mapping not read from YAML text (read them with getattr(obj, name, None), as line_of
    does). Slotted: a 100,000-layer spec holds 50,000 of them."""

    __slots__ = ("line", "key_lines")


class LineList(list):
    """A list and its lines: `line` and `item_lines` (each element's; scalars have no .line)."""

    __slots__ = ("line", "item_lines")


# ---- where the events come from ---------------------------------------------------------------
# libyaml (PyYAML's C extension) scans and parses ~40× faster than PyYAML's pure-Python reader,
# scanner and parser (a 100,000-layer spec: 0.17 s against 7 s). Either only gives events: the
# one builder below turns them into values, so every bound, tag, number and key rule is the
# same code whichever parser ran.
try:
    from yaml.cyaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python parser alone
    _CParser = None

LIBYAML = _CParser is not None


class _Resolver(yaml.resolver.Resolver):
    """SafeLoader's implicit types, with archcalc's numbers (yaml_implicit_resolvers is set
    below, once _number_resolvers is defined)."""


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Resolver):
    """PyYAML's pure-Python reader, scanner and parser: the events of a text. It is the
    reference: whenever libyaml refuses a text, this one reads it again and says why in
    PyYAML's words, so an error never depends on whether libyaml is installed."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Resolver.__init__(self)


# Where libyaml reads more than PyYAML's parser does: a tab after a token or inside a plain
# scalar (`a:<tab>1`, `[1,<tab>2]`), and a '?' inside a plain scalar in a flow collection
# (`[c?d]`, `{b: 1 ?}`), and a comment right after a block scalar's indicator (`|#`), which
# PyYAML refuses. Two more found by a hostile review: a byte-order mark (U+FEFF) past the
# file's start, which libyaml skips where a token starts and PyYAML reads as text, and a bare
# `!` tag, whose empty value libyaml reads as '' and PyYAML as null. A text with any of them is
# read by the pure-Python parser, whose reading is the reference (fuzzing the bundled specs,
# 6,000 mutations, found no other case).
_LIBYAML_READS_MORE = re.compile("[\t?\ufeff]|[|>][-+0-9]*#|(?<![^\\s\\[{,:])!(?=[\\s,\\]}]|\\Z)")


def _events(text: str, pure: bool, json_mode: bool = False) -> Any:
    """An event source for `text`: libyaml's when it is installed and reads the text as
    PyYAML's parser does: no character YAML refuses (the pure reader refuses those before
    reading anything, at the character's own position; libyaml would count UTF-8 bytes,
    later), and no tab or '?' (_LIBYAML_READS_MORE; in JSON a '?' is inside a string)."""
    if (pure or _CParser is None or yaml.reader.Reader.NON_PRINTABLE.search(text)
            or (_LIBYAML_READS_MORE.search(text) if not json_mode
                else "\t" in text or "\ufeff" in text)):
        return _Loader(text)
    return _CParser(text)

# ---- what YAML may say in a spec ------------------------------------------------------------
# Explicit tags that only restate what a value is; every other tag (!!python/object:...,
# !!binary, !!set, !!timestamp, a local !tag) builds something a spec has no use for.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}"
                        for name in ("str", "int", "float", "bool", "null", "seq", "map"))


def _check_tag(event: Any) -> None:
    tag = getattr(event, "tag", None)
    if tag is None or tag == "!" or tag in _PLAIN_TAGS:
        return
    shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag
    raise SpecError(f"the YAML tag '{echo(shown, 60)}' (column {event.start_mark.column + 1}) "
                    "is not allowed in a spec",
                    line=event.start_mark.line + 1,
                    fix="remove the tag: a spec holds text, numbers, lists and mappings")


# Numbers: YAML 1.1 (PyYAML's) and YAML 1.2 (JSON's, most other tools') read some plain
# scalars differently. A spec means the same to every reader, so archcalc reads integers as
# decimal (or 0x hex, which both agree on), floats with or without a dot (1e-5 and 1.0e-5,
# as JSON does), and refuses the forms only YAML 1.1 reads as numbers: base 60 (1:30 = 90),
# a leading zero (010 = 8) and 0b binary.
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_INT_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$")
_FLOAT_RE = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_YAML11_ONLY = (
    (re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"),
     "a base-60 number in YAML 1.1 (1:30 is 90) and text in YAML 1.2"),
    (re.compile(r"^[-+]?0[0-7_]+$"), "an octal number in YAML 1.1 (010 is 8) and decimal in "
                                     "YAML 1.2"),
    (re.compile(r"^[-+]?0b[01_]+$"), "a binary number in YAML 1.1 and text in YAML 1.2"),
)


def _check_number(value: str, mark: Any) -> None:
    if not value[:1] or value[0] not in "-+0123456789":
        return
    for pattern, meaning in _YAML11_ONLY:
        if pattern.match(value):
            raise SpecError(f"'{echo(value, 40)}' (column {mark.column + 1}) is {meaning}: "
                            "archcalc does not guess", line=mark.line + 1,
                            fix="write the number in decimal, or quote it if it is text")


def _number_resolvers() -> dict:
    """SafeLoader's implicit resolvers with int and float replaced by the rules above."""
    table = {first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
             for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, pattern, firsts in ((_INT, _INT_RE, "-+0123456789"),
                                 (_FLOAT, _FLOAT_RE, "-+0123456789.")):
        for first in firsts:
            table.setdefault(first, []).append((tag, pattern))
    return table


_Resolver.yaml_implicit_resolvers = _number_resolvers()


def _too_many(line: int | None) -> SpecError:
    return SpecError(f"the spec expands to more than {limit('MAX_SPEC_NODES'):,} values once its "
                     "aliases (*name) are expanded", line=line, fix=raise_hint("MAX_SPEC_NODES"))


def _too_deep(line: int | None) -> SpecError:
    return SpecError(f"lists and mappings nest more than {limit('MAX_SPEC_DEPTH'):,} levels deep",
                     line=line, fix=raise_hint("MAX_SPEC_DEPTH"))


# ---- events → values, bounded while they are read ---------------------------------------------
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_NO_KEY = object()     # a mapping waiting for its next key
_MERGE_KEY = object()  # the key `<<`: its value is merged into the mapping
_CONSTRUCTORS = yaml.constructor.SafeConstructor.yaml_constructors
_SCALARS = yaml.constructor.SafeConstructor()  # builds the rarer scalars (bool, float, ...)


class _Open:
    """A list or mapping whose end event has not come yet. `size` counts it and every value
    below it with aliases expanded; `deepest` is the nesting of its deepest child."""

    __slots__ = ("value", "is_map", "mark", "anchor", "size", "deepest", "key", "key_line",
                 "merged", "marks")

    def __init__(self, value: Any, is_map: bool, mark: Any, anchor: str | None,
                 keep_marks: bool) -> None:
        self.value, self.is_map, self.mark, self.anchor = value, is_map, mark, anchor
        self.size, self.deepest = 1, 0
        self.key, self.key_line = _NO_KEY, 0
        self.merged: list[LineDict] = []
        self.marks: list | None = [] if keep_marks else None


def _kind(value: Any) -> str:
    """PyYAML's name for the node a value came from (ScalarNode.id and the others)."""
    return ("mapping" if isinstance(value, LineDict) else
            "sequence" if isinstance(value, LineList) else "scalar")


class _Builder:
    """Turns one document's events into LineDict / LineList / scalars, iteratively (no
    recursion, so nesting costs no Python stack), in one pass linear in the events.

    Bounds, checked as the events arrive (the work done before an error is at most the
    file's own events): MAX_SPEC_NODES values once aliases are expanded (an alias adds the
    size of its anchor's value, so a billion-laughs file is refused at the list where the
    count crosses, without expanding anything), MAX_SPEC_DEPTH levels (with aliases
    expanded too), tags, YAML 1.1-only numbers, duplicate and unhashable keys, and an
    alias inside its own anchor. An alias shares its anchor's value, as PyYAML does."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.resolve = _Resolver().resolve
        self.anchors: dict[str, tuple | _Open] = {}  # name → (value, size, depth, mark)
        self.plain: dict[str, str] = {}  # a plain scalar's text → its resolved tag
        # A plain scalar's text → its value, for text and decimal integers (the same value
        # wherever the text is, key or value; `<<` is not among them).
        self.known: dict[str, Any] = {}
        self.item_marks: dict[int, list] = {}  # id(anchored or merged list) → its items' marks
        self.count = 0  # events of values seen, an alias once (the file's own size)
        self.max_nodes = limit("MAX_SPEC_NODES")
        self.max_depth = max_depth()

    def document(self) -> Any:
        """The single document's value (None for an empty stream)."""
        events = self.events
        events.get_event()  # stream start
        if events.check_event(yaml.StreamEndEvent):
            return None
        events.get_event()  # document start
        value, mark = self.value()
        events.get_event()  # document end
        if not events.check_event(yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", mark,
                "but found another document", events.get_event().start_mark)
        return value

    def value(self) -> tuple[Any, Any]:
        """The next value and the mark where it starts."""
        stack: list[_Open] = []
        get = self.events.get_event
        known = self.known
        scalar_event = yaml.ScalarEvent
        while True:
            event = get()
            kind = type(event)
            if (kind is scalar_event and stack and event.anchor is None and event.tag is None
                    and self.count < self.max_nodes):
                # The common case, inline (most of a spec's events): an untagged scalar seen
                # before, or a quoted one (text), added to the list or mapping it is in.
                value = event.value if event.style else known.get(event.value, _NO_KEY)
                if value is not _NO_KEY:
                    self.count += 1
                    top = stack[-1]
                    key = top.key
                    if not top.is_map:
                        top.size += 1
                        top.value.append(value)
                        top.value.item_lines.append(event.start_mark.line + 1)
                        if top.marks is not None:
                            top.marks.append(event.start_mark)
                    elif key is _NO_KEY or key is _MERGE_KEY:
                        self._add(top, value, 1, 0, event.start_mark)
                    else:  # a mapping's value
                        top.size += 1
                        top.value[key] = value
                        top.value.key_lines[key] = top.key_line
                        top.key = _NO_KEY
                    continue
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                done = self._close(stack.pop())
            else:
                self.count += 1
                if self.count > self.max_nodes:
                    raise _too_many(event.start_mark.line + 1)
                if kind is yaml.ScalarEvent:
                    done = self._scalar(event, stack[-1] if stack else None)
                elif kind is yaml.AliasEvent:
                    done = self._alias(event)
                else:
                    stack.append(self._open(event, kind is yaml.MappingStartEvent,
                                            stack[-1] if stack else None, len(stack) + 1))
                    continue
            if not stack:
                return done[0], done[3]
            self._add(stack[-1], *done)

    # ---- one event -----------------------------------------------------------------------
    def _anchor(self, event: Any) -> None:
        first = self.anchors.get(event.anchor)
        if first is not None:
            mark = first.mark if isinstance(first, _Open) else first[3]
            raise yaml.composer.ComposerError(
                f"found duplicate anchor {event.anchor!r}; first occurrence", mark,
                "second occurrence", event.start_mark)

    def _scalar(self, event: Any, parent: _Open | None) -> tuple:
        if event.anchor is not None:
            self._anchor(event)
        text, tag, mark = event.value, event.tag, event.start_mark
        if tag is not None:
            _check_tag(event)
        # A plain scalar (style None from PyYAML's parser, '' from libyaml's): its type is
        # guessed.
        if tag is None and not event.style:
            tag = self.plain.get(text)
            if tag is None:  # each distinct text checked and resolved once ('relu', '16')
                _check_number(text, mark)
                tag = self.plain[text] = self.resolve(yaml.ScalarNode, text, event.implicit)
                if tag == _STR and event.anchor is None:
                    self.known[text] = text
        elif tag is None or tag == "!":
            tag = self.resolve(yaml.ScalarNode, text, event.implicit)
        is_key = parent is not None and parent.is_map and parent.key is _NO_KEY
        if tag == _STR:
            value = text
        elif tag == _INT and event.tag is None and text.isdigit():  # the common number
            value = int(text)
            if not event.style and event.anchor is None:
                self.known[text] = value
        elif is_key and tag == _MERGE:
            value = _MERGE_KEY
        else:
            value = self._construct(tag, event)
        done = (value, 1, 0, mark)
        if event.anchor is not None:
            self.anchors[event.anchor] = done
        return done

    def _construct(self, tag: str, event: Any) -> Any:
        """A scalar of another type (bool, float, null, timestamp), or the error PyYAML's
        SafeConstructor gives for its tag."""
        if tag in (_SEQ, _MAP):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a {'sequence' if tag == _SEQ else 'mapping'} node, "
                "but found scalar", event.start_mark)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                               style=event.style or None)
        build = _CONSTRUCTORS.get(tag) or _CONSTRUCTORS[None]  # None: construct_undefined
        try:
            return build(_SCALARS, node)
        except (KeyError, IndexError, ValueError) as exc:  # `!!bool maybe`, `!!int ''`, `.`
            if isinstance(exc, ValueError) and "digits" in str(exc):
                raise  # an int past Python's 4300-digit limit: _yaml_error says so
            where = f"'{echo(event.value, 40)}' (column {event.start_mark.column + 1})"
            if event.tag is None:  # a plain scalar that only looks like a number: `.`
                raise SpecError(f"{where} reads as a number but is not one",
                                line=event.start_mark.line + 1,
                                fix="write the number, or quote it if it is text") from None
            shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith(
                "tag:yaml.org,2002:") else tag
            raise SpecError(f"{where} is not a value the tag {shown} can hold",
                            line=event.start_mark.line + 1,
                            fix="remove the tag, or write a value of its type") from None

    def _alias(self, event: Any) -> tuple:
        target = self.anchors.get(event.anchor)
        if target is None:
            raise yaml.composer.ComposerError(None, None, f"found undefined alias "
                                              f"{event.anchor!r}", event.start_mark)
        if isinstance(target, _Open):  # `&a [*a]`: the value would contain itself
            raise SpecError("a value contains itself through an alias (*name)",
                            line=target.mark.line + 1,
                            fix="an anchor (&name) cannot be used inside its own value")
        return target

    def _open(self, event: Any, is_map: bool, parent: _Open | None, depth: int) -> _Open:
        if event.anchor is not None:
            self._anchor(event)
        tag, mark = event.tag, event.start_mark
        if tag is not None:
            _check_tag(event)
        if depth > self.max_depth:  # refused before Python's stack or memory is at stake
            raise _too_deep(mark.line + 1)
        if tag is not None and tag not in ("!", _MAP if is_map else _SEQ):
            want = ("sequence" if tag == _SEQ else "mapping" if tag == _MAP else "scalar")
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a {want} node, but found "
                f"{'mapping' if is_map else 'sequence'}", mark)
        merging = parent is not None and parent.key is _MERGE_KEY
        value: Any = LineDict() if is_map else LineList()
        value.line = mark.line + 1
        if is_map:
            value.key_lines = {}
        else:
            value.item_lines = []
        frame = _Open(value, is_map, mark, event.anchor,
                      not is_map and (merging or event.anchor is not None))
        if event.anchor is not None:
            self.anchors[event.anchor] = frame
        return frame

    def _add(self, frame: _Open, value: Any, size: int, depth: int, mark: Any) -> None:
        frame.size += size
        if frame.size > self.max_nodes:  # only aliases get here: the events were counted
            raise _too_many(frame.mark.line + 1)
        if depth > frame.deepest:
            frame.deepest = depth
        if not frame.is_map:
            frame.value.append(value)
            frame.value.item_lines.append(mark.line + 1)
            if frame.marks is not None:
                frame.marks.append(mark)
        elif frame.key is _NO_KEY:
            self._key(frame, value, mark)
        elif frame.key is _MERGE_KEY:
            frame.merged += self._mergeable(frame, value, mark)
            frame.key = _NO_KEY
        else:
            frame.value[frame.key] = value
            frame.value.key_lines[frame.key] = frame.key_line
            frame.key = _NO_KEY

    def _key(self, frame: _Open, key: Any, mark: Any) -> None:
        if key is not _MERGE_KEY:
            if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
                raise SpecError(f"a key must be a name, got {brief(key)}", line=mark.line + 1,
                                fix="write name: value")
            if key in frame.value:
                raise SpecError(f"duplicate key '{echo(key)}'", line=mark.line + 1,
                                fix="keep one of them; YAML would silently drop the first")
        frame.key, frame.key_line = key, mark.line + 1

    def _mergeable(self, frame: _Open, value: Any, mark: Any) -> list[LineDict]:
        """The mappings `<<: value` merges in: one mapping or a list of them."""
        if isinstance(value, LineDict):
            return [value]
        if isinstance(value, LineList):
            for item, item_mark in zip(value, self.item_marks[id(value)]):
                if not isinstance(item, LineDict):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", frame.mark,
                        f"expected a mapping for merging, but found {_kind(item)}", item_mark)
            return list(value)
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping", frame.mark, "expected a mapping or list of "
            f"mappings for merging, but found {_kind(value)}", mark)

    def _close(self, frame: _Open) -> tuple:
        depth = frame.deepest + 1
        if depth > self.max_depth:  # only aliases get here: open lists were counted
            raise _too_deep(frame.mark.line + 1)
        value = frame.value
        if frame.merged:
            value = _merged(frame.merged, value)
        if frame.marks is not None:
            self.item_marks[id(value)] = frame.marks
        done = (value, frame.size, depth, frame.mark)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = done
        return done


def _merged(sources: list[LineDict], own: LineDict) -> LineDict:
    """`<<` merge keys resolved: the merged mappings' keys first (the first mapping that has
    a key gives its value, as the YAML merge-key spec says), then the mapping's own keys,
    which override them. Each merged mapping is read once: the cost is its size, which the
    expansion count has already bounded."""
    out = LineDict()
    out.line, out.key_lines = own.line, {}
    for source in sources:
        for key, item in source.items():
            if key not in out:
                out[key] = item
                out.key_lines[key] = source.key_lines[key]
    for key, item in own.items():
        out[key] = item
        out.key_lines[key] = own.key_lines[key]
    return out

def brief(value: Any, limit_chars: int = 60) -> str:
    """repr(value) cut to about `limit_chars` characters, built piece by piece so that a value
    shared through YAML aliases (which repr would expand to gigabytes) costs only what is
    shown."""
    out: list[str] = []
    size = 0
    for piece in _repr_pieces(value, limit_chars):
        out.append(piece)
        size += len(piece)
        if size > limit_chars:
            return "".join(out)[:limit_chars] + "…"
    return "".join(out)


def _repr_pieces(value: Any, limit_chars: int) -> Iterator[str]:
    if isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _repr_pieces(key, limit_chars)
            yield ": "
            yield from _repr_pieces(item, limit_chars)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "(" if isinstance(value, tuple) else "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _repr_pieces(item, limit_chars)
        yield ")" if isinstance(value, tuple) else "]"
    elif isinstance(value, str):
        yield repr(value[:limit_chars + 1])
    else:
        try:
            yield repr(value)[:limit_chars + 1]
        except ValueError:  # an int past Python's 4300-digit str() limit
            yield "<a number too long to show>"


def parse_text(text: str, *, json_mode: bool = False, pure: bool = False) -> Any:
    """Parse spec text; raise SpecError with the line of a syntax error. pure: read it with
    PyYAML's pure-Python parser even when libyaml is installed (the same values and errors,
    ~40× slower to parse; tests compare both)."""
    with stack_room():
        return _parse_text(text, json_mode, pure)


def _parse_text(text: str, json_mode: bool, pure: bool = False) -> Any:
    if json_mode:
        # JSON's own parser gives JSON's syntax errors; the YAML loader (JSON is YAML) then
        # gives the same line numbers and duplicate-key checks as a YAML spec.
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"malformed JSON: {exc.msg} (column {exc.colno})", line=exc.lineno,
                            fix="check commas, quotes and brackets near that line") from None
        except (RecursionError, ValueError) as exc:
            raise SpecError(f"JSON too deep or too large to read: {type(exc).__name__}",
                            fix="simplify the file") from None
        # JSON strings cannot hold a raw tab (json.loads refused it above), so every tab is
        # whitespace between tokens, which YAML refuses as indentation (json.dump(indent='\t')).
        text = text.replace("\t", " ")
    try:
        return _read(text, pure, json_mode)
    except SpecError:
        raise
    except yaml.YAMLError:
        if not json_mode:
            _yaml_error(text)
    except (RecursionError, ValueError):
        _yaml_error(text)
    # Valid JSON that YAML still reads otherwise (a key past 1,024 characters, a character
    # YAML text cannot hold): JSON's own reading, without line numbers, is the file's meaning.
    return _parse_json(text)


# What libyaml may refuse in its own words: the pure parser then reads the text again.
_PARSER_ERRORS = (yaml.reader.ReaderError, yaml.scanner.ScannerError, yaml.parser.ParserError)


def _read(text: str, pure: bool, json_mode: bool = False) -> Any:
    """The text's single YAML document as values (None if it has none). A syntax error found
    by libyaml is said by the pure-Python parser, which reads the text again from its start
    (so its first error is the one reported, in PyYAML's words and columns); only a broken
    file pays for that second reading."""
    events = _events(text, pure, json_mode)
    if isinstance(events, _Loader):
        return _Builder(events).document()
    try:
        return _Builder(events).document()
    except _PARSER_ERRORS:
        return _Builder(_Loader(text)).document()


def _parse_json(text: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> LineDict:
        out = LineDict()
        for key, value in items:
            if key in out:
                raise SpecError(f"duplicate key '{echo(key)}'",
                                fix="keep one of them; JSON readers silently drop the first")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except (RecursionError, ValueError) as exc:
        raise SpecError(f"JSON too deep or too large to read: {type(exc).__name__}",
                        fix="simplify the file") from None
    _check_json_size(data)
    return data


def _check_json_size(data: Any) -> None:
    """The bounds the YAML path checks while composing (values, depth), on JSON's result:
    one iterative walk (JSON has no aliases, so the walk is as large as the file)."""
    max_values, deepest = limit("MAX_SPEC_NODES"), max_depth()
    stack, values = [(data, 0)], 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > max_values:
            raise _too_many(None)
        if isinstance(value, (dict, list)):
            if depth + 1 > deepest:
                raise _too_deep(None)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


def _yaml_error(text: str) -> NoReturn:
    """The exception being handled (called from an `except` block) as one SpecError with
    its line."""
    try:
        raise
    except RecursionError:  # MAX_SPEC_DEPTH raised past what Python's stack can take
        raise SpecError("the file nests too deeply for Python to read",
                        fix="flatten the nesting, or lower ARCHCALC_MAX_SPEC_DEPTH") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"a value cannot be read: {str(exc).splitlines()[0][:120]}",
                        fix="check the numbers in the file") from None
    except yaml.reader.ReaderError as exc:  # a control character: checked before parsing
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character  # a code point for text input
        code = char if isinstance(char, int) else ord(str(char)[:1] or " ")
        raise SpecError(f"control character #x{code:04x} at column {column:,}: YAML text "
                        "cannot hold it", line=line,
                        fix="remove it; is this a binary file?") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        where = f" (line {line}, column {mark.column + 1})" if mark is not None else ""
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None and cmark.line + 1 != line:
            # An unclosed bracket is reported where the file ends; point at where it opened.
            where += f", {context} that starts here"
            line = cmark.line + 1
        raise SpecError(f"malformed YAML: {problem}{where}", line=line,
                        fix="check the indentation and the ':' / '-' on that line") from None


def line_of(obj: Any) -> int | None:
    return getattr(obj, "line", None)
