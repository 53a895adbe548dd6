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
    line: int | None = None
    key_lines: dict | None = None  # the line of each key


class LineList(list):
    line: int | None = None
    item_lines: list[int] | None = None  # the line of each element (scalars have no .line)


class _Loader(yaml.SafeLoader):
    """A SafeLoader that bounds nesting and size while it composes, and measures the composed
    graph with its aliases expanded before constructing anything from it."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._nodes = 0        # nodes composed, each alias once
        self._depth = 0        # lists and mappings open around the node being composed
        self._shared = False   # a list or mapping has an anchor: aliases may multiply it
        self._max_nodes = limit("MAX_SPEC_NODES")
        self._max_depth = max_depth()

    def compose_node(self, parent: Any, index: Any) -> Any:
        # Called once per node: kept lean (the 100,000-layer spec composes 1.5M nodes).
        self._nodes += 1
        if self._nodes > self._max_nodes:
            raise _too_many(self.peek_event().start_mark.line + 1)
        return yaml.SafeLoader.compose_node(self, parent, index)

    def compose_scalar_node(self, anchor: Any) -> Any:
        event = self.peek_event()
        _check_tag(event)
        if event.style is None and event.tag is None:  # a plain scalar: its type is guessed
            _check_number(event.value, event.start_mark)
        return yaml.SafeLoader.compose_scalar_node(self, anchor)

    def compose_sequence_node(self, anchor: Any) -> Any:
        _check_tag(self.peek_event())
        self._open(anchor)
        try:
            return yaml.SafeLoader.compose_sequence_node(self, anchor)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        _check_tag(self.peek_event())
        self._open(anchor)
        try:
            return yaml.SafeLoader.compose_mapping_node(self, anchor)
        finally:
            self._depth -= 1

    def _open(self, anchor: Any) -> None:
        # The composer recurses once per level: refuse deep nesting before Python's stack does.
        self._depth += 1
        if self._depth > self._max_depth:
            raise _too_deep(self.peek_event().start_mark.line + 1)
        self._shared = self._shared or anchor is not None

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        # Without an anchored list or mapping the graph is a tree (an alias of a scalar is one
        # value) and composing it counted it exactly; with one, measure the expansion.
        if node is not None and self._shared:
            check_expansion(node)
        return node


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


_Loader.yaml_implicit_resolvers = _number_resolvers()


def _too_many(line: int | None) -> SpecError:
    return SpecError(f"the spec expands to more than {limit('MAX_SPEC_NODES'):,} values once its "
                     "aliases (*name) are expanded", line=line, fix=raise_hint("MAX_SPEC_NODES"))


def _too_deep(line: int | None) -> SpecError:
    return SpecError(f"lists and mappings nest more than {limit('MAX_SPEC_DEPTH'):,} levels deep",
                     line=line, fix=raise_hint("MAX_SPEC_DEPTH"))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand past MAX_SPEC_NODES values or
    MAX_SPEC_DEPTH levels, or that contains itself (`&a [*a]`).

    One iterative post-order walk over the distinct nodes, memoised by node identity, so the
    cost is linear in the file however large the expansion is; sizes saturate just past the
    limit, so no count grows into a huge integer. The error points at the smallest value
    that crosses the limit: the anchor or alias that multiplies."""
    max_values, deepest = limit("MAX_SPEC_NODES"), max_depth()
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done and key in size:  # measured already (an alias seen again)
            continue
        kids = _children(node)
        if not children_done:
            if key in on_path:  # reached again below itself: an alias inside its own anchor
                raise SpecError("a value contains itself through an alias (*name)",
                                line=node.start_mark.line + 1,
                                fix="an anchor (&name) cannot be used inside its own value")
            on_path.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in size)
            continue
        on_path.discard(key)
        total = 1 + sum(size[id(kid)] for kid in kids)
        size[key] = min(total, max_values + 1)
        nested = isinstance(node, yaml.CollectionNode)
        depth[key] = nested + max((depth[id(kid)] for kid in kids), default=0)
        if total > max_values:
            raise _too_many(node.start_mark.line + 1)
        if depth[key] > deepest:
            raise _too_deep(node.start_mark.line + 1)


def _key(loader: _Loader, key_node: yaml.Node) -> Hashable:
    key = loader.construct_object(key_node, deep=True)
    if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
        raise SpecError(f"a key must be a name, got {brief(key)}",
                        line=key_node.start_mark.line + 1, fix="write name: value")
    return key


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    # Duplicates among the mapping's own keys are an error; keys merged in with `<<: *anchor`
    # may be overridden (they come first after flatten_mapping, so the last one wins).
    own: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _key(loader, key_node)
        if key in own:
            raise SpecError(f"duplicate key '{echo(key)}'", line=key_node.start_mark.line + 1,
                            fix="keep one of them; YAML would silently drop the first")
        own.add(key)
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = _key(loader, key_node)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


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


def parse_text(text: str, *, json_mode: bool = False) -> Any:
    """Parse spec text; raise SpecError with the line of a syntax error."""
    with stack_room():
        return _parse_text(text, json_mode)


def _parse_text(text: str, json_mode: bool) -> Any:
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
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
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
