"""The JSON Schema (draft 2020-12) of the spec language, for editors and CI.

An editor with a YAML language server offers completion, hover text and checking as you type
from it; `archcalc schema` prints it. It is built from what archcalc itself reads a spec with,
so the two cannot drift apart:

- every kind's fields, their types, bounds, defaults and descriptions: its pydantic model
  (archcalc.spec.layers.MODELS); the top-level keys: NetworkSpec (archcalc.spec.load);
- the item grammar: the forms the resolver accepts (archcalc.spec.resolve), with its own
  keyword sets, kind aliases and scalar shorthands.

The item grammar comes twice: once for `layers:`, once (names ending in `_in_block`) for
the bodies of blocks, where a numeric field also takes an arithmetic expression over the
block's arguments (`filters: 4 * planes`). Outside a block such a string is an error for
archcalc, and so for the schema: `filters: sixty` in `layers:` is flagged as you type.

What JSON Schema cannot say is left to `archcalc validate`: checks across fields (filters
divisible by groups, exactly one of scale and size), whether a word names a block the file
defines, and every shape.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from archcalc.spec.budget import COMPOSITES, FORMS
from pydantic import TypeAdapter

from archcalc.spec.layers import (ALIASES, LIST_SHORTHAND, MODELS, SCALAR_FIELD, IntPair,
                                  IntPairOrZero, PadAmounts, PadSpec, PositiveInt)
from archcalc.spec.load import NetworkSpec
from archcalc.spec.resolve import _BLOCK_KEYS, _COMPOSITE_KEYS
from archcalc.spec.tree import MERGE_MODES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
IN_BLOCK = "_in_block"

# A block name: what Resolver._check_block accepts (letters, digits, '_' and '-').
BLOCK_NAME = r"^[\w-]+$"
# A block argument: a Python identifier, as Resolver._check_block requires.
IDENTIFIER = r"^[^\W\d]\w*$"
# Block arithmetic (archcalc.spec.expr): names, numbers, + - * // % ( ) and spaces.
EXPRESSION = r"^[\w .+\-*/%()]+$"

# Before-validators widen what a field accepts beyond its type; pydantic's schema shows only
# the type. Each one is mirrored here (tests/test_schema.py finds every before-validator and
# fails on one missing from this table). (kind, field) → the schema of the extra input.
_POSITIVE = {"type": "integer", "exclusiveMinimum": 0, "maximum": 1_000_000_000}
WIDENED: dict[tuple[str, str], dict] = {
    ("crop", "size"): _POSITIVE,                          # crop: 56 is a 56×56 window
    ("pad", "mode"): {"enum": ["constant", "edge"]},      # NumPy's names for zeros, replicate
    # input: 3x224x224, 8x8 (T×F) or 64: one to three sizes, as load.parse_shape reads them
    ("network", "input"): {"type": "string", "pattern":
                           r"^\s*\d+(\s*[x×,]\s*\d+){0,2}\s*$"},
}

# The top-level keys, described here: NetworkSpec gives their types and defaults.
TOP_DESCRIPTIONS = {
    "name": "The network's name.",
    "source": "Where the design comes from (paper, table); shown by `archcalc list`.",
    "description": "Free text.",
    "family": "The group `archcalc list` shows it in: classic, inception, residual, dense, "
              "squeeze, mobile, segmentation or any other word.",
    "input": "The input shape per example: [C, H, W]; [T, F], a sequence of T steps of F "
             "features; [N], a flat input (or T token ids for an embedding); or the text "
             "'3x224x224'. --input overrides it.",
    "separator": "Joins scope names in layer names: '.' (layer2.0.conv1) or '/' "
                 "(inception_3a/5x5_reduce).",
    "init": "The executor's weight initialiser for this spec (default: he).",
    "blocks": "Reusable parameterised blocks: name: {args: [...], layers: [...]}, used as "
              "{use: name, with: [...]}.",
    "layers": "The network: a list of items applied in order.",
    "train": "Training defaults for `archcalc train` (a recipe): each key is one of its "
             "options (batch_size is --batch-size); an option given on the command line "
             "wins.",
}


def _ref(name: str, block: bool = False, **notes: Any) -> dict:
    """A reference to $defs/name; with notes (description, default) the reference is wrapped
    in allOf: draft-07 tools, which editors still use, ignore keywords beside a $ref."""
    ref = {"$ref": f"#/$defs/{name}{IN_BLOCK if block else ''}"}
    return {"allOf": [ref], **notes} if notes else ref


def _described(schema: dict, text: str, **extra: Any) -> dict:
    if set(schema) == {"$ref"}:
        return {"allOf": [schema], "description": text, **extra}
    return {**schema, "description": text, **extra}


def _clean(node: Any) -> Any:
    """pydantic's schema without its "title"s (Title Case of the field names: noise in hover),
    and with a tuple of one element type as `items` + min/maxItems instead of prefixItems:
    the same constraint, understood by draft-07 editors as well as draft 2020-12."""
    if isinstance(node, list):
        return [_clean(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _clean(v) for k, v in node.items() if k != "title"}
    prefix = out.get("prefixItems")
    if prefix and all(p == prefix[0] for p in prefix) and "items" not in out:
        out.pop("prefixItems")
        out["items"] = prefix[0]
    return out


def _with_expressions(node: Any) -> Any:
    """`node` where every integer or number also takes an expression string (in a block)."""
    if isinstance(node, list):
        return [_with_expressions(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("integer", "number"):
        return {"anyOf": [node, {"$ref": "#/$defs/expression"}]}
    out = {k: _with_expressions(v) if k in ("prefixItems", "items") else v
           for k, v in node.items()}
    if "anyOf" in node:  # keep one flat list of alternatives
        members: list = []
        for member in _with_expressions(node["anyOf"]):
            members += member["anyOf"] if set(member) == {"anyOf"} else [member]
        out["anyOf"] = [m for i, m in enumerate(members) if m not in members[:i]]
    return out


def _widen(schema: dict, extra: dict) -> dict:
    """A field's schema that also accepts `extra` (annotations stay on top)."""
    notes = {k: schema[k] for k in ("description", "default") if k in schema}
    core = {k: v for k, v in schema.items() if k not in notes}
    members = core["anyOf"] if set(core) == {"anyOf"} else [core]
    return {"anyOf": members + [extra], **notes}


# ---- leaf kinds ---------------------------------------------------------------------------

# The value types many fields share (layers.py's aliases), each defined once and referenced:
# a field's own entry keeps only its description and default.
VALUE_TYPES: dict[str, Any] = {
    "int_pair": IntPair, "optional_int_pair": IntPair | None,
    "int_pair_or_zero": IntPairOrZero, "pad_amounts": PadAmounts,
    "optional_pad_amounts": PadAmounts | None, "padding": PadSpec,
    "size": tuple[PositiveInt, PositiveInt], "optional_size": tuple[PositiveInt, PositiveInt] | None,
}


@lru_cache(maxsize=2)
def _value_types(block: bool) -> dict[str, dict]:
    """name → schema of each VALUE_TYPES entry (in a block: with expressions). Cached: every
    field compares itself with them; schema() hands out a copy."""
    out = {}
    for name, annotation in VALUE_TYPES.items():
        core = _clean(TypeAdapter(annotation).json_schema())
        out[name] = _with_expressions(core) if block else core
    return out


def _shared_type(schema: dict, block: bool) -> dict:
    """`schema` as a $ref to its value type, if it is one (its description and default kept)."""
    notes = {k: schema[k] for k in ("description", "default") if k in schema}
    core = {k: v for k, v in schema.items() if k not in notes}
    for name, value in _value_types(block).items():
        if core == value:
            return _ref(name, block, **notes)
    return schema

def _fields(kind: str, block: bool) -> tuple[dict, list[str]]:
    """The properties (every field but `type`) of `kind` and its required fields."""
    model = _clean(MODELS[kind].model_json_schema())
    props = {}
    for field, schema in model["properties"].items():
        if field == "type":
            continue
        if field == "name":
            schema = _ref("layer_name", description=schema["description"],
                          default=schema["default"])
        elif (kind, field) in WIDENED:
            schema = _widen(schema, WIDENED[(kind, field)])
        if block:
            notes = {k: schema.pop(k) for k in ("description", "default") if k in schema}
            schema = {**_with_expressions(schema), **notes}
        props[field] = _shared_type(schema, block)
    return props, list(model.get("required", []))


def aliases_of(kind: str) -> list[str]:
    """Every spelling of `kind` (conv2d: conv, conv2d, convolution), sorted."""
    return sorted(a for a, k in ALIASES.items() if k == kind)


def _kind_defs(kind: str, block: bool) -> dict[str, dict]:
    """fields_<kind> (the mapping after `conv:`), leaf_<kind> (the same with `type:`) and
    body_<kind> (whatever may follow `conv:`: the mapping, null, a scalar shorthand)."""
    doc = " ".join((MODELS[kind].__doc__ or "").split())
    props, required = _fields(kind, block)
    suffix = IN_BLOCK if block else ""
    # Each field once, as kind.field: the mapping after `conv:` and the typed form share it.
    field_defs = {f"{kind}.{field}{suffix}": schema for field, schema in props.items()}
    refs = {field: {"$ref": f"#/$defs/{kind}.{field}{suffix}"} for field in props}
    fields = {"type": "object", "description": doc, "properties": refs,
              "additionalProperties": False}
    if required:
        fields["required"] = required
    kind_enum = {"enum": aliases_of(kind), "description": f"The layer kind: {kind}."}
    leaf = {**fields, "properties": {"type": kind_enum, **refs},
            "required": ["type", *required]}
    body: list[dict] = [_ref(f"fields_{kind}", block)]
    if not required:  # `relu:` or `bn:` alone: every field at its default
        body.append({"type": "null"})
    if kind in SCALAR_FIELD:  # `dense: 4096`, `maxpool: [2, 1]`
        short = props[SCALAR_FIELD[kind]]
        members = short["anyOf"] if "anyOf" in short else [
            {k: v for k, v in short.items() if k not in ("description", "default")}]
        body += [m for m in members if m.get("type") != "null"
                 and (m.get("type") != "array" or kind in LIST_SHORTHAND)]
    return {**field_defs, f"fields_{kind}{suffix}": fields, f"leaf_{kind}{suffix}": leaf,
            f"body_{kind}{suffix}": {"anyOf": body, "description": doc}}


# ---- items --------------------------------------------------------------------------------

def _typed_leaf(block: bool) -> dict:
    """{type: conv2d, filters: 64, ...}: the `type` picks the kind's fields."""
    return {
        "type": "object", "required": ["type"],
        "description": "A layer in the canonical form: {type: conv2d, filters: 64, kernel: 3}.",
        "properties": {"type": {"enum": sorted(ALIASES), "description": "The layer kind."}},
        "allOf": [{"if": {"properties": {"type": {"enum": aliases_of(kind)}},
                          "required": ["type"]},
                   "then": _ref(f"leaf_{kind}", block)} for kind in MODELS],
    }


def _kind_map(block: bool) -> dict:
    """{conv: {filters: 64, kernel: 3}}, {dense: 4096}, {relu: null}: one kind key, with an
    optional name and trainable beside it."""
    props: dict[str, Any] = {}
    for alias in sorted(ALIASES):  # hover text: body_<kind>'s description
        props[alias] = _ref(f"body_{ALIASES[alias]}", block)
    props["name"] = _ref("layer_name")
    props["trainable"] = _ref("trainable")
    return {"type": "object",
            "description": "A layer as {kind: {fields}}, {kind: shorthand} or {kind: null}.",
            "properties": props, "additionalProperties": False,
            "oneOf": [{"required": [alias]} for alias in sorted(ALIASES)]}


def _words() -> list[str]:
    """The kinds a bare word may name: those without a required field (relu, bn, flatten)."""
    return sorted(a for a, k in ALIASES.items()
                  if not any(f.is_required() for f in MODELS[k].model_fields.values()))


_KEY_TEXT = {
    "repeat": "How many times to repeat the body (unrolled; each copy a scope named 0, 1, ...).",
    "start": "The first repetition's scope name (default 0).",
    "inline": "true: the repetitions open no scope (names continue: conv1, conv2, ...).",
    "use": "The block to expand (defined under `blocks:`).",
    "with": "The block's arguments: a list in the order of its args, or a mapping by name.",
    "layers": "The items, in order.",
    "sequence": "The items, in order (a named scope).",
    "concat": "Branches whose outputs are concatenated on channels (Inception, DenseNet).",
    "add": "Branches summed elementwise (residual); [] is the identity shortcut.",
    "mul": "Branches multiplied elementwise (squeeze-and-excitation); [] is the identity.",
}


def _key_schema(key: str, block: bool) -> dict:
    count = {"type": "integer", "minimum": 0}
    if key in ("repeat", "start"):
        schema = _with_expressions(count) if block else count
        return _described(schema, _KEY_TEXT[key], **({"default": 0} if key == "start" else {}))
    if key == "inline":
        return {"type": "boolean", "default": False, "description": _KEY_TEXT[key]}
    if key == "name":
        return _ref("layer_name")
    if key == "trainable":
        return _ref("trainable")
    if key == "use":
        return _described(_ref("block_name"), _KEY_TEXT[key])
    if key == "with":
        return _described(_ref("arguments"), _KEY_TEXT[key])
    if key in MERGE_MODES:
        return _described(_ref("branches", block), _KEY_TEXT[key])
    return _described(_ref("item", block), _KEY_TEXT[key])  # layers, sequence


def _composite(form: str, block: bool) -> dict:
    keys = sorted(_COMPOSITE_KEYS[form], key=lambda k: (k != form, k))
    schema = {"type": "object", "required": [form],
              "properties": {k: _key_schema(k, block) for k in keys},
              "additionalProperties": False}
    if form == "repeat":
        schema["anyOf"] = [{"required": ["layers"]}, {"required": ["use"]}]
    return schema


def _item_defs(block: bool) -> dict[str, dict]:
    suffix = IN_BLOCK if block else ""
    word = {"anyOf": [{"enum": _words()}, {"type": "string", "pattern": BLOCK_NAME}],
            "description": "A kind with its defaults (relu, bn, flatten) or a block's name."}
    array = {"type": "array", "items": _ref("item", block),
             "description": "A sequence of items."}
    forms = [_ref(f"{form}_item", block) for form in FORMS]
    shapes = [_ref("word"), array, _ref("typed_leaf", block), _ref("kind_map", block), *forms]
    reserved = sorted({*ALIASES, *COMPOSITES, "type", "name", "trainable"})
    defs = {
        f"item{suffix}": {
            "description": "An item: a layer, a sequence, branches, a repeat, a block use, "
                           "or {some_name: item} naming any of them.",
            "anyOf": [*shapes, _ref("named", block)]},
        f"named{suffix}": {
            "type": "object", "minProperties": 1, "maxProperties": 1,
            "description": "{some_name: item}: the item, named some_name (a scope, for a "
                           "sequence or a block).",
            "propertyNames": {"minLength": 1, "not": {"enum": reserved}},
            "additionalProperties": {"anyOf": shapes}},
        f"typed_leaf{suffix}": _typed_leaf(block),
        f"kind_map{suffix}": _kind_map(block),
        f"branches{suffix}": {"anyOf": [
            {"type": "array", "minItems": 2, "items": _ref("branch", block)},
            {"type": "object", "required": ["branches"], "additionalProperties": False,
             "properties": {"branches": {"type": "array", "minItems": 2,
                                         "items": _ref("branch", block)},
                            "name": _ref("layer_name")}}]},
        f"branch{suffix}": {
            "description": "A branch: a list of items ([] hands the input on), one item, or "
                           "{name: scope, layers: [...]}.",
            "anyOf": [{"type": "object", "required": ["layers"], "additionalProperties": False,
                       "properties": {"layers": _ref("item", block),
                                      "name": _ref("layer_name")}},
                      _ref("item", block)]},
    }
    for form in FORMS:
        defs[f"{form}_item{suffix}"] = _composite(form, block)
    for kind in MODELS:
        defs.update(_kind_defs(kind, block))
    if not block:
        defs["word"] = word
    return defs


def _shared_defs() -> dict[str, dict]:
    return {
        "expression": {"type": "string", "pattern": EXPRESSION,
                       "description": "Inside a block: arithmetic over the block's args with "
                                      "+ - * // % ( ) and numbers, e.g. 4 * planes."},
        # A number is a name too (`name: 0` is "0", torchvision's downsample.0).
        "layer_name": {"type": ["string", "number", "null"], "minLength": 1,
                       "description": "The name in tables and errors (default: derived from "
                                      "the kind: conv1, relu2)."},
        "trainable": {"type": "boolean", "default": True,
                      "description": "false freezes every layer inside: its weights count as "
                                     "non-trainable and training does not update them."},
        "block_name": {"type": "string", "pattern": BLOCK_NAME},
        "arguments": {"anyOf": [{"type": "array"}, {"type": "object"}, {"type": "number"},
                                {"type": "string"}, {"type": "null"}]},
        "block": _block(),
    }


def _block() -> dict:
    bodies = sorted(_BLOCK_KEYS - {"args", "description", "repeat"})  # repeat alone needs a body
    props: dict[str, Any] = {
        "args": {"anyOf": [{"type": "array", "items": {"type": "string", "pattern": IDENTIFIER}},
                           {"type": "null"}], "default": [],
                 "description": "The argument names, used in the body by name or in "
                                "arithmetic (4 * planes)."},
        "description": {"type": "string", "description": "Free text."},
    }
    for key in bodies:
        props[key] = _key_schema(key, True)
    return {"type": "object", "description": "A reusable block: args and exactly one body.",
            "properties": props, "additionalProperties": False,
            "oneOf": [{"required": [key]} for key in bodies]}


def _top() -> dict:
    model = _clean(NetworkSpec.model_json_schema())
    props: dict[str, Any] = {}
    for field, schema in model["properties"].items():
        if field == "input":
            # [C, H, W], [T, F] or [N] (NetworkSpec's own check), or the text form
            schema = {"anyOf": [{**schema, "minItems": n, "maxItems": n} for n in (1, 2, 3)]
                      + [WIDENED[("network", "input")]]}
        elif field == "blocks":
            schema = {"type": "object", "default": {}, "additionalProperties": _ref("block"),
                      "propertyNames": {"pattern": BLOCK_NAME, "not": {
                          "enum": sorted({*ALIASES, *COMPOSITES})}}}
        elif field == "layers":
            schema = {"type": "array", "minItems": 1, "items": _ref("item")}
        props[field] = {**schema, "description": TOP_DESCRIPTIONS[field]}
    return {"type": "object", "required": model["required"], "properties": props,
            "additionalProperties": False}


def schema() -> dict:
    """The JSON Schema of a spec file (a dict, draft 2020-12)."""
    defs = {**_shared_defs(), **_value_types(False),
            **{f"{name}{IN_BLOCK}": value for name, value in _value_types(True).items()},
            **_item_defs(False), **_item_defs(True)}
    return copy.deepcopy({"$schema": DIALECT, "title": "archcalc spec",
                          "description": "A network for archcalc (see its README, 'The spec "
                                         "language').", **_top(), "$defs": defs})


def schema_text() -> str:
    """schema() as the text `archcalc schema` prints and writes (stable: a file kept in a
    repository changes only when the language does)."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
