"""Read a YAML (or JSON) spec keeping the line of every mapping and list.

`yaml.safe_load` forgets where things were; a typo must point at its line, so mappings load
as `LineDict` and lists as `LineList`, each with a `.line` (1-based). Duplicate keys, which
PyYAML silently resolves to the last one, are an error here.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import yaml

from archcalc.errors import SpecError


class LineDict(dict):
    line: int | None = None
    key_lines: dict | None = None  # the line of each key


class LineList(list):
    line: int | None = None
    item_lines: list[int] | None = None  # the line of each element (scalars have no .line)


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    # Duplicates among the mapping's own keys are an error; keys merged in with `<<: *anchor`
    # may be overridden (they come first after flatten_mapping, so the last one wins).
    own: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise SpecError(f"a key must be a name, got {key!r}", line=key_node.start_mark.line + 1,
                            fix="write name: value")
        if key in own:
            raise SpecError(f"duplicate key '{key}'", line=key_node.start_mark.line + 1,
                            fix="keep one of them; YAML would silently drop the first")
        own.add(key)
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise SpecError(f"a key must be a name, got {key!r}", line=key_node.start_mark.line + 1,
                            fix="write name: value")
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


def parse_text(text: str, *, json_mode: bool = False) -> Any:
    """Parse spec text; raise SpecError with the line of a syntax error."""
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
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except SpecError:
        raise
    except RecursionError:
        raise SpecError("the file nests too deeply to read", fix="flatten the nesting") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"a value cannot be read: {str(exc).splitlines()[0][:120]}",
                        fix="check the numbers in the file") from None
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
