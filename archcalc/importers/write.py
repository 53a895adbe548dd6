"""A raw spec mapping (what an importer returns, what a YAML spec parses to) → YAML text a
person can read: the text `archcalc import` writes.

Style, chosen to look like the bundled specs:
- top-level keys in the order name, source, description, family, input, separator, init,
  blocks, layers (then any other key);
- every layer item on one line in flow style when it fits in WIDTH columns
  (`- conv: {name: conv1, filters: 64, kernel: 7, stride: 2, padding: 3, bias: false}`);
- lists of items (`layers:`, a merge's branches, a named sequence too long for one line) as
  block lists; a merge (`concat:`, `add:`, `mul:`) always as a block list of its branches,
  each branch a block list of items, and an identity branch as `[]`;
- no tags, no anchors; a string is written plain only when every YAML reader (archcalc's YAML
  1.2 number rules and PyYAML's 1.1 ones) reads it back as that same string, else it is
  double-quoted ("0", "yes", "1e5", "null", "5x5 reduce").

The text round-trips: archcalc.spec.loads(to_yaml(raw)) resolves to the network that
archcalc.spec.from_dict(raw) gives.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from archcalc.spec.layers import ALIASES, MODELS
from archcalc.spec.tree import MERGE_MODES
from archcalc.spec.yamlio import _Loader

WIDTH = 100  # columns a flow-style line may take, its indentation included
TOP_ORDER = ("name", "source", "description", "family", "input", "separator", "init", "blocks",
             "layers")
# Keys whose list value is a list of items or branches: always a block list (one per line),
# so that a network reads top to bottom even when it is short.
_ITEM_LISTS = frozenset({"layers", "branches", "sequence", *MERGE_MODES})
# Characters a plain scalar may hold in flow and block context alike (no ':', ',', '#',
# brackets, quotes or spaces, which YAML reads as structure in one context or the other).
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/+]*$")
_STR = "tag:yaml.org,2002:str"
# YAML 1.1's booleans that PyYAML's resolver leaves out but other YAML 1.1 readers apply
_YAML11_WORDS = frozenset({"y", "n"})


def to_yaml(raw: dict) -> str:
    """The YAML text of the raw spec mapping `raw` (top-level keys in TOP_ORDER)."""
    keys = [k for k in TOP_ORDER if k in raw] + [k for k in raw if k not in TOP_ORDER]
    lines: list[str] = []
    for key in keys:
        value = readable(raw[key]) if key in ("layers", "blocks") else raw[key]
        _entry(lines, 0, key, value, force_block=key in ("layers", "blocks"))
    return "\n".join(lines) + "\n"


# ---- the items as a person writes them -----------------------------------------------------
# The keyword a canonical item is written under (`conv:` as the bundled specs write it).
_KEYWORD = {"conv2d": "conv"}


def readable(value: Any) -> Any:
    """The same items, written as a person writes them: the canonical form
    `{type: conv2d, filters: 64, ..., name: c}` as `{conv: {name: c, filters: 64, ...}}`
    with the fields that equal their defaults left out (a field-less layer as its bare
    keyword: `relu`), and `name` first in every mapping. Everything else is kept as it is."""
    if isinstance(value, list):
        return [readable(v) for v in value]
    if not isinstance(value, dict):
        return value
    leaf = _canonical_leaf(value)
    if leaf is not None:
        return leaf
    ordered = {k: value[k] for k in sorted(value, key=lambda k: k != "name")}
    return {k: readable(v) for k, v in ordered.items()}


def _canonical_leaf(item: dict) -> Any:
    """`item` in keyword form when it is a canonical layer (a known `type` and only its
    model's fields), else None."""
    kind = ALIASES.get(item.get("type")) if isinstance(item.get("type"), str) else None
    if kind is None:
        return None
    fields = MODELS[kind].model_fields
    if any(k not in fields for k in item):
        return None
    kept = {}
    for key in sorted(item, key=lambda k: k != "name"):
        info = fields[key]
        if key == "type" or (not info.is_required() and _same(item[key], info.default)):
            continue
        kept[key] = item[key]
    word = _KEYWORD.get(kind, kind)
    return {word: kept} if kept else word


def _same(value: Any, default: Any) -> bool:
    # True == 1 in Python: a bool field's default must match a bool, an int's an int
    return type(value) is type(default) and value == default


# ---- block style ---------------------------------------------------------------------------
def _entry(lines: list[str], indent: int, key: Any, value: Any, force_block: bool = False) -> None:
    """`key: value` at `indent`: on one line if it fits and nothing forces a block."""
    head = " " * indent + _scalar(key) + ":"
    if not _needs_block(value, key, force_block):
        flow = _flow(value)
        # a scalar (a long source line) has no block form: it stays on its line
        if len(head) + 1 + len(flow) <= WIDTH or not isinstance(value, (list, dict)) or not value:
            lines.append(f"{head} {flow}")
            return
    lines.append(head)
    if isinstance(value, dict):
        for sub, item in value.items():
            _entry(lines, indent + 2, sub, item)
    else:  # a list: its items one level in, each after '- '
        _items(lines, indent + 2, value, branches=key in MERGE_MODES or key == "branches")


def _items(lines: list[str], indent: int, items: list, branches: bool = False) -> None:
    """A block list at `indent`. Branches (`branches=True`) that are lists are themselves block
    lists of items (`- - conv...`), except the identity branch `[]`."""
    pad = " " * indent
    for item in items:
        if branches and isinstance(item, list) and item:
            nested: list[str] = []
            _items(nested, indent + 2, item)
            lines.append(pad + "- " + nested[0].lstrip())
            lines.extend(nested[1:])
            continue
        # `- conv: {...}` reads better than `- {conv: {...}}`: a one-key mapping keeps its key
        # on the dash's line and its value in flow style where it fits.
        one_key = isinstance(item, dict) and len(item) == 1
        if not one_key and not _needs_block(item, None, False):
            flow = _flow(item)
            if indent + 2 + len(flow) <= WIDTH:
                lines.append(f"{pad}- {flow}")
                continue
        if isinstance(item, dict) and item:
            nested = []
            for key, value in item.items():
                _entry(nested, indent + 2, key, value)
            lines.append(pad + "- " + nested[0].lstrip())
            lines.extend(nested[1:])
        elif isinstance(item, list) and item:
            nested = []
            _items(nested, indent + 2, item)
            lines.append(pad + "- " + nested[0].lstrip())
            lines.extend(nested[1:])
        else:  # a scalar, or an empty list / mapping
            lines.append(f"{pad}- {_flow(item)}")


def _needs_block(value: Any, key: Any, force_block: bool) -> bool:
    """Whether `value` must be written in block style wherever it fits: a merge's branches, a
    list of items, or anything that holds one of them."""
    if force_block and isinstance(value, (list, dict)) and value:
        return True
    if isinstance(value, list):
        if key in _ITEM_LISTS and value and any(v != [] for v in value):
            return True
        return any(_needs_block(v, None, False) for v in value)
    if isinstance(value, dict):
        return any(_needs_block(v, k, False) for k, v in value.items())
    return False


# ---- flow style and scalars ----------------------------------------------------------------
def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    return text if _plain_ok(text) else json.dumps(text, ensure_ascii=False)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # 1e-05 is a float to YAML 1.2 but a string to YAML 1.1 readers (PyYAML's safe_load):
    # 1.0e-05 is a float to both.
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _plain_ok(text: str) -> bool:
    """Whether `text` written unquoted reads back as the same string in archcalc's loader
    and in PyYAML's YAML 1.1 one (where yes, on, 010 and 1:30 are not strings)."""
    if not _PLAIN.match(text) or text.lower() in _YAML11_WORDS:
        return False
    for loader in (_Loader, yaml.SafeLoader):
        if loader.resolve(loader, yaml.ScalarNode, text, (True, False)) != _STR:
            return False
    # PyYAML's YAML 1.1 rules also catch the forms archcalc refuses rather than reads
    # (010 octal, 0b1 binary): they resolve to int there, so they are quoted here.
    return True
