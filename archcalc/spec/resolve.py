"""From parsed YAML to the resolved tree: normalise items, expand blocks, name layers.

Item forms (see README, "Spec language"):
    relu                                   a kind with its defaults
    {conv: {filters: 64, kernel: 3}}       a kind with fields (name optional inside)
    {dense: 4096} {dropout: 0.5}           a scalar shorthand
    {type: conv2d, filters: 64, ...}       the canonical form
    {concat: [branch, ...]} {add: [...]}   parallel branches ({mul: [...]} multiplies them);
                                           a branch is a list of items,
                                           an item, or {name: x, layers: [...]}; [] = identity
    {repeat: 3, layers: [...]}             also with use/with; `inline: true` adds no scope
    {use: block, with: [args]}             a reusable block (or {with: {arg: value}})
    {some_name: <any item or a list>}      the same item, named some_name

Naming: a layer without a name gets its kind's prefix and a counter within its scope
(conv1, conv2, relu1, fc1). Blocks, named sequences and repetitions open a scope.
"""

from __future__ import annotations

import difflib
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable

from pydantic import ValidationError

from archcalc.errors import SpecError
from archcalc.limits import echo, elide, limit, max_depth, raise_hint
from archcalc.spec.budget import (COMPOSITES, FORMS, Forecast, freeze, is_kind_map,
                                  looks_like_item)
from archcalc.spec.expr import ExprError, problem, substitute
from archcalc.spec.layers import (ALIASES, LIST_SHORTHAND, MODELS, NAME_PREFIX, SCALAR_FIELD)
from archcalc.spec.text import check_text
from archcalc.spec.tree import MERGE_MODES, Leaf, Merge, Node, Path, Sequence
from archcalc.spec.yamlio import brief, line_of

# The keys each composite form takes (besides its own keyword).
_COMPOSITE_KEYS = {
    "use": {"use", "with", "name", "trainable"},
    "concat": {"concat", "name", "trainable"},
    "add": {"add", "name", "trainable"},
    "mul": {"mul", "name", "trainable"},
    "sequence": {"sequence", "name", "trainable"},
    "layers": {"layers", "name", "trainable"},
    "repeat": {"repeat", "start", "use", "with", "layers", "name", "inline", "trainable"},
}
_BLOCK_KEYS = {"args", "description", "layers", "sequence", *MERGE_MODES, "repeat", "use"}


def nearest(word: str, choices: list[str]) -> str | None:
    if not isinstance(word, str) or len(word) > 100:  # no name is that long: no near miss
        return None
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _pydantic_message(exc: ValidationError, kind: str,
                      args: tuple[str, ...] | None) -> tuple[str, str]:
    """The first validation error as (message, fix)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    # With a discriminated union pydantic prefixes the tag; drop it.
    if loc and loc[0] == kind:
        loc = loc[1:]
    field = loc[0] if loc else ""
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = [f for f in MODELS[kind].model_fields if f != "type"]
        hint = nearest(field, allowed)
        fix = f"did you mean '{hint}'?" if hint else f"{kind} takes: {', '.join(allowed)}"
        return f"{kind}: unknown field '{field}'", fix
    if etype == "missing" and any(isinstance(p, int) for p in err["loc"]):
        # a pair or a 4-tuple given too few values ([4] for [h, w])
        return (f"{kind}: '{field}' needs more values (got {brief(err.get('input'))})",
                _FIXES.get(field, f"write {field}: [h, w]"))
    if etype == "missing":
        return f"{kind}: missing field '{field}'", f"add '{field}: <value>'"
    if etype == "value_error" and not loc:  # a model's own check: its message has the numbers
        return f"{kind}: {err['ctx']['error']}", _MODEL_FIXES.get(kind, "see README, Spec language")
    got = err.get("input")
    fix = _FIXES.get(field, "see README, Spec language")
    where = f"field '{field}'" if loc else "fields"
    # A formula left as text ('f ** 100', '4 * x'): say what stops it being arithmetic.
    why = problem(got, args) if isinstance(got, str) else None
    if why is not None:
        return f"{kind}: {where}: {why[0]}", why[1]
    if len(loc) > 1:  # a union (kernel, padding ...): pydantic names the member it tried
        hint = nearest(got, ["same", "valid"]) if isinstance(got, str) else None
        if hint is not None and hint == got:  # conv's word, on a kind that takes amounts
            return (f"{kind}: '{field}' takes amounts, not '{got}'",
                    "an int >= 0, [h, w] or [top, bottom, left, right]")
        return (f"{kind}: bad value for '{field}' (got {brief(got)})",
                f"did you mean '{hint}'?" if hint else fix)
    return f"{kind}: {where}: {err['msg'].lower()} (got {brief(got)})", fix


# The fix for each model's own check across fields (archcalc.spec.layers' model validators).
_MODEL_FIXES = {"conv2d": "make filters a multiple of groups"}

_FIXES = {
    "filters": "a positive integer divisible by groups",
    "kernel": "a positive int or [h, w]",
    "stride": "a positive int or [h, w]",
    "dilation": "a positive int or [h, w]",
    "padding": "an int >= 0, [h, w], [top, bottom, left, right] (conv and pools: also 'valid' "
               "or 'same')",
    "size": "[h, w]",
    "output": "an int or [h, w]",
    "scale": "a positive int or [h, w]",
    "units": "a positive integer",
    "rate": "a number in [0, 1)",
    "pieces": "an integer >= 2",
    "eps": "a small positive number, e.g. 1e-5",
    "momentum": "a number in (0, 1], e.g. 0.1",
    "alpha": "a finite number, e.g. 1e-4 (lrn) or 1.0 (elu)",
    "beta": "a finite number >= 0, e.g. 0.75",
    "k": "a finite number > 0, e.g. 1.0 or 2.0",
    "slope": "a finite number >= 0, e.g. 0.01",
}


def validate_leaf(params: dict, *, line: int | None, layer: Callable[[], str | None],
                  args: tuple[str, ...] | None = ()) -> Any:
    """The layer's pydantic model (its kind's own: only the kinds a spec uses are built).
    `layer()` names the layer for an error line (made only on error: a 100,000-layer spec
    joins no paths); `args`: the names of the block arguments in scope (None outside any
    block), to explain a formula that did not compute."""
    kind = params["type"]
    try:
        return MODELS[kind].model_validate(params)
    except ValidationError as exc:
        message, fix = _pydantic_message(exc, kind, args)
        raise SpecError(message, line=line, layer=layer(), fix=fix) from None


def _key_line(mapping: Any, key: str) -> int | None:
    """The line of `key` in a parsed mapping (else the mapping's own line)."""
    return (getattr(mapping, "key_lines", None) or {}).get(key) or line_of(mapping)


class _Scope:
    """Names used in one scope and the per-prefix counters for derived names."""

    def __init__(self, path: Path, separator: str, max_name: int, chars: int = 0) -> None:
        self.path = path
        self.separator = separator
        self.max_name = max_name  # MAX_NAME_CHARS, read once per spec, not once per name
        self.chars = chars  # len(separator.join(path)): this scope's part of every path in it
        self.counters: Counter[str] = Counter()
        self.used: set[str] = set()

    def display(self, name: str) -> str:
        """The dotted path of `name` for an error line (elided past 200 characters)."""
        return elide(self.separator.join(self.path + (name,)))

    def derive(self, prefix: str) -> str:
        while True:
            self.counters[prefix] += 1
            name = f"{prefix}{self.counters[prefix]}"
            if name not in self.used:
                self.used.add(name)
                return name

    def claim(self, name: Any, line: int | None, fix: str | None = None) -> str:
        if isinstance(name, (list, dict)):  # str() of a list shared through aliases is huge
            raise SpecError(f"a name must be text, got {brief(name)}", line=line,
                            layer=self.separator.join(self.path) or None, fix="name: conv1")
        name = str(name)
        if len(name) > self.max_name:
            raise SpecError(f"a name of {len(name):,} characters ('{echo(name, 40)}'): names "
                            f"have at most {self.max_name:,}", line=line,
                            layer=self.separator.join(self.path) or None,
                            fix="a shorter name; " + raise_hint("MAX_NAME_CHARS"))
        check_text(name, "the name", line=line, layer=self.separator.join(self.path) or None)
        if not name or self.separator in name:
            raise SpecError(f"bad name '{echo(name)}': names must be non-empty and must not contain "
                            f"the separator '{self.separator}'", line=line,
                            layer=self.separator.join(self.path) or None,
                            fix="rename the layer")
        if name in self.used:
            raise SpecError(f"duplicate name '{self.display(name)}'", line=line,
                            layer=self.display(name),
                            fix=fix or "give one of the two layers another name (or drop 'inline')")
        self.used.add(name)
        return name

    def child(self, name: str) -> "_Scope":
        return _Scope(self.path + (name,), self.separator, self.max_name, self.path_chars(name))

    def path_chars(self, name: str) -> int:
        """The length of `name`'s full path in this scope (as Network.display joins it)."""
        return self.chars + (len(self.separator) if self.path else 0) + len(name)


class Resolver:
    """Expands one network's items. `lines` collects the line of every named node."""

    def __init__(self, blocks: dict[str, Any], separator: str) -> None:
        self.blocks = blocks
        self.separator = separator
        self.lines: dict[Path, int] = {}
        self.bodies: dict[tuple, Any] = {}  # (block, arguments) → its substituted body
        self.kept: list[Any] = []  # large arguments keyed by identity stay alive
        self.frozen = 0   # > 0 inside a composite marked trainable: false
        self.rows_made = 0
        self.max_layers = limit("MAX_LAYERS")
        self.max_name = limit("MAX_NAME_CHARS")
        self.max_path_chars = limit("MAX_PATH_CHARS")
        self.path_chars = 0  # of every row made so far
        self.max_depth = max_depth()
        # The argument names of the block being expanded (None: not inside a block), innermost
        # last, to explain a formula that did not compute.
        self.args: list[tuple[str, ...] | None] = []
        for name, definition in blocks.items():
            self._check_block(name, definition)

    def _count_row(self, line: int | None) -> None:
        """One more leaf or merge; the forecast refused a spec over MAX_LAYERS already, so
        this is a safety net."""
        self.rows_made += 1
        if self.rows_made > self.max_layers:
            raise SpecError(f"the spec unrolls to more than {self.max_layers:,} layers",
                            line=line, fix=raise_hint("MAX_LAYERS"))

    def _count_path(self, scope: _Scope, name: str, line: int | None) -> None:
        """Every row carries its full path (table, JSON): their sum is bounded, so that 100,000
        rows of 50 KB paths (a 74 KB file) cannot hold gigabytes."""
        self.path_chars += scope.path_chars(name)
        if self.path_chars > self.max_path_chars:
            raise SpecError(f"the layers' full paths add up to more than "
                            f"{self.max_path_chars:,} characters", line=line,
                            layer=scope.display(name),
                            fix="shorter names or less nesting; " + raise_hint("MAX_PATH_CHARS"))

    def _check_block(self, name: Any, definition: Any) -> None:
        line = line_of(definition)
        if isinstance(name, str) and len(name) > self.max_name:
            raise SpecError(f"a block name of {len(name):,} characters ('{echo(name, 40)}'): "
                            f"names have at most {self.max_name:,}", line=line,
                            fix="a shorter name; " + raise_hint("MAX_NAME_CHARS"))
        if not isinstance(name, str) or not name.replace("_", "a").replace("-", "a").isalnum():
            raise SpecError(f"bad block name {brief(name)}", line=line,
                            fix="use letters, digits, '_' or '-' (no '.' or '/')")
        if name in ALIASES or name in COMPOSITES:
            raise SpecError(f"block name '{name}' is a layer kind or keyword", line=line,
                            fix=f"rename the block, e.g. '{name}_block'")
        if not isinstance(definition, dict):
            raise SpecError(f"block '{name}' must be a mapping with args and layers", line=line,
                            fix=f"{name}: {{args: [...], layers: [...]}}")
        check_text(definition.get("description"), f"block '{name}': the description",
                   line=_key_line(definition, "description"), prose=True)
        args = definition.get("args", [])
        if args is None:
            args = []
        if not isinstance(args, list) or not all(isinstance(a, str) and a.isidentifier()
                                                 for a in args):
            raise SpecError(f"block '{name}': args must be a list of names (got {brief(args)})",
                            line=line, fix="args: [filters, stride]")
        unknown = [str(k) for k in definition if k not in _BLOCK_KEYS]
        if unknown:
            hint = nearest(unknown[0], sorted(_BLOCK_KEYS))
            raise SpecError(f"block '{name}': unknown key(s) {echo(', '.join(unknown))}", line=line,
                            fix=f"did you mean '{hint}'?" if hint else "a block has args and layers")
        bodies = [k for k in definition if k not in ("args", "description")]
        if len(bodies) != 1:
            raise SpecError(f"block '{name}' needs exactly one body (layers, concat, add, "
                            f"mul, repeat or use), got {', '.join(bodies) or 'none'}", line=line,
                            fix=f"{name}: {{args: [...], layers: [...]}}")

    # ---- entry point -------------------------------------------------------------------
    def resolve(self, items: list) -> Sequence:
        # What the items unroll to, bounded before anything is built (archcalc.spec.budget).
        Forecast(self.blocks, self._forecast_body).items(items, 0, line_of(items))
        scope = _Scope((), self.separator, self.max_name)
        children = self._items(items, scope, depth=0)
        return Sequence((), tuple(children), "network", line_of(items))

    # ---- items -------------------------------------------------------------------------
    def _items(self, items: Any, scope: _Scope, depth: int) -> list[Node]:
        if not isinstance(items, list):
            items = [items]
        out: list[Node] = []
        lines = getattr(items, "item_lines", None) or [line_of(items)] * len(items)
        for item, line in zip(items, lines):
            out.extend(self._item(item, scope, depth, name=None, line=line))
        return out

    def _item(self, item: Any, scope: _Scope, depth: int, name: Any,
              line: int | None) -> list[Node]:
        if depth > self.max_depth:  # the forecast refused this already; a safety net
            raise SpecError(f"items nest more than {self.max_depth:,} levels deep", line=line,
                            fix=raise_hint("MAX_SPEC_DEPTH"))
        line = line_of(item) or line
        if isinstance(item, str):
            return self._from_word(item, scope, depth, name, line)
        if isinstance(item, list):
            return [self._sequence(item, scope, depth, name, line, label="sequence")]
        if not isinstance(item, dict):
            raise SpecError(f"cannot read layer item {brief(item)}", line=line,
                            layer=scope.display(str(name)) if name else None,
                            fix="write a layer kind such as 'relu' or {conv: {...}}")
        if len(item) == 1:  # {conv: {...}}, {dense: 4096}: the commonest item, read directly
            key = next(iter(item))
            if isinstance(key, str) and key in ALIASES:
                return [self._leaf(self._kind_params(key, item[key], line, scope), scope, name,
                                   line)]
        if "name" in item and name is None and not is_kind_map(item):
            name = item["name"]
        if "type" in item:
            return [self._leaf(dict(item), scope, name, line)]
        form = next((k for k in FORMS if k in item), None)
        if form is not None:
            unknown = [str(k) for k in item if k not in _COMPOSITE_KEYS[form]]
            if unknown:
                hint = nearest(unknown[0], sorted(_COMPOSITE_KEYS[form]))
                raise SpecError(f"{form}: unknown field(s) {echo(', '.join(unknown))}", line=line,
                                layer=scope.display(str(name)) if name else None,
                                fix=f"did you mean '{hint}'?" if hint else
                                f"{form} takes: {', '.join(sorted(_COMPOSITE_KEYS[form]))}")
            frozen = item.get("trainable", True) is False
            self.frozen += frozen
            try:
                return self._composite(form, item, scope, depth, name, line)
            finally:
                self.frozen -= frozen
        keys = [k for k in item if k not in ("name", "trainable")]
        if len(keys) != 1:
            raise SpecError(f"cannot tell what this item is (keys: {echo(', '.join(map(str, item)))})",
                            line=line, fix="one layer kind per list item, e.g. {conv: {...}}")
        key = keys[0]
        value = item[key]
        if str(key) in ALIASES:
            params = self._kind_params(str(key), value, line, scope)
            if "name" in item:
                params.setdefault("name", item["name"])
            if "trainable" in item:
                params.setdefault("trainable", item["trainable"])
            return [self._leaf(params, scope, name, line)]
        # `some_name: <item>` names the item.
        if name is not None:
            raise self._unknown(key, line, scope)
        if isinstance(value, str) and (value in ALIASES or value in self.blocks):
            return self._item(value, scope, depth, name=key, line=line)
        if isinstance(value, list):
            return [self._sequence(value, scope, depth, key, line, label="sequence")]
        if isinstance(value, dict) and looks_like_item(value):
            return self._item(value, scope, depth, name=key, line=line)
        raise self._unknown(key, line, scope)

    def _composite(self, form: str, item: dict, scope: _Scope, depth: int, name: Any,
                   line: int | None) -> list[Node]:
        if form == "repeat":
            return self._repeat(item, scope, depth, name, line)
        if form == "use":
            return [self._use(item, scope, depth, name, line)]
        if form in MERGE_MODES:
            return [self._merge(form, item, scope, depth, name, line)]
        return [self._sequence(item[form], scope, depth, name, line, label="sequence")]

    def _unknown(self, key: Any, line: int | None, scope: _Scope) -> SpecError:
        choices = sorted(set(ALIASES) | set(self.blocks) | {*MERGE_MODES, "repeat", "use"})
        hint = nearest(str(key), choices)
        fix = f"did you mean '{hint}'?" if hint else "known kinds: " + ", ".join(sorted(set(ALIASES.values())))
        return SpecError(f"unknown layer type '{echo(key if isinstance(key, str) else brief(key))}'",
                         line=line, layer=scope.display(echo(key)) if scope.path else None,
                         fix=fix)

    def _from_word(self, word: str, scope: _Scope, depth: int, name: Any,
                   line: int | None) -> list[Node]:
        if word in ALIASES:
            return [self._leaf({"type": ALIASES[word]}, scope, name, line)]
        if word in self.blocks:
            return [self._use({"use": word}, scope, depth, name, line)]
        raise self._unknown(word, line, scope)

    def _kind_params(self, key: str, value: Any, line: int | None, scope: _Scope) -> dict:
        kind = ALIASES[key]
        if value is None:
            return {"type": kind}
        if isinstance(value, dict):
            params = dict(value)
            params["type"] = kind
            return params
        if kind in SCALAR_FIELD and not isinstance(value, bool) and (
                not isinstance(value, list) or kind in LIST_SHORTHAND):
            return {"type": kind, SCALAR_FIELD[kind]: value}
        raise SpecError(f"{kind}: expected a mapping of fields, got {brief(value)}", line=line,
                        layer=scope.display(kind) if scope.path else None,
                        fix=f"write {key}: {{field: value, ...}}")

    def _leaf(self, params: dict, scope: _Scope, name: Any, line: int | None) -> Leaf:
        kind = params.get("type")
        if not isinstance(kind, str) or kind not in ALIASES:
            raise self._unknown(kind, line, scope)
        params["type"] = ALIASES[kind]
        if self.frozen:
            params["trainable"] = False
        self._count_row(line)
        if name is None:
            name = params.get("name")
        leaf_name = scope.claim(name, line) if name is not None else scope.derive(
            NAME_PREFIX[params["type"]])
        params["name"] = leaf_name
        self._count_path(scope, leaf_name, line)
        spec = validate_leaf(params, line=line, layer=lambda: scope.display(leaf_name),
                             args=self.args[-1] if self.args else None)
        path = scope.path + (leaf_name,)
        if line:
            self.lines[path] = line
        return Leaf(path, spec, line)

    def _sequence(self, body: Any, scope: _Scope, depth: int, name: Any, line: int | None,
                  label: str) -> Sequence:
        seq_name = scope.claim(name, line) if name is not None else scope.derive("seq")
        inner = scope.child(seq_name)
        if line:
            self.lines[inner.path] = line
        return Sequence(inner.path, tuple(self._items(body, inner, depth + 1)), label, line)

    def _merge(self, mode: str, item: dict, scope: _Scope, depth: int, name: Any,
               line: int | None) -> Merge:
        spec = item[mode]
        if isinstance(spec, dict) and name is None and "name" in spec:
            name = spec["name"]
        branches_raw = spec.get("branches") if isinstance(spec, dict) else spec
        if not isinstance(branches_raw, list) or len(branches_raw) < 2:
            raise SpecError(f"{mode}: needs a list of at least two branches", line=line,
                            layer=scope.display(str(name)) if name else None,
                            fix=f"{mode}: [[layers of branch 1], [layers of branch 2]]"
                                + ("" if mode == "concat" else "; [] is the identity shortcut"))
        branches: list[Sequence] = []
        for index, raw in enumerate(branches_raw):
            bline = line_of(raw) or line
            if isinstance(raw, dict) and "layers" in raw and set(raw) <= {"name", "layers"}:
                if "name" in raw:
                    branches.append(self._sequence(raw["layers"], scope, depth, raw["name"],
                                                   bline, label="branch"))
                    continue
                raw = raw["layers"]
            # An unnamed branch shares its parent's scope: inception_3a/5x5_reduce.
            children = tuple(self._items(raw, scope, depth + 1)) if raw != [] else ()
            branches.append(Sequence(scope.path, children, "branch", bline))
        self._count_row(line)  # a merge is a row of its own: it counts against MAX_LAYERS too
        merge_name = scope.claim(name, line) if name is not None else scope.derive(mode)
        self._count_path(scope, merge_name, line)
        path = scope.path + (merge_name,)
        if line:
            self.lines[path] = line
        return Merge(path, mode, tuple(branches), line)

    def _bind(self, block: str, args: Any, line: int | None, scope: _Scope) -> dict:
        definition = self.blocks[block]
        params = definition.get("args", []) or []
        where = scope.display(block)
        if isinstance(args, bool) or not isinstance(args, (list, dict, int, float, str, type(None))):
            raise SpecError(f"block '{block}': 'with' must be a list or a mapping (got {brief(args)})",
                            line=line, layer=where, fix=f"with: [{', '.join(params)}]")
        if args is None:
            args = []
        if isinstance(args, dict):
            missing = [p for p in params if p not in args]
            extra = [a for a in args if a not in params]
            if missing or extra:
                raise SpecError(
                    f"block '{block}' takes ({', '.join(params)})"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {echo(', '.join(map(str, extra)))}" if extra else ""),
                    line=line, layer=where, fix=f"with: {{{', '.join(p + ': ...' for p in params)}}}")
            return {p: args[p] for p in params}
        if not isinstance(args, list):
            args = [args]
        if len(args) != len(params):
            raise SpecError(f"block '{block}' takes {len(params)} argument(s) "
                            f"({', '.join(params)}), got {len(args)}", line=line, layer=where,
                            fix=f"with: [{', '.join(params)}]")
        return dict(zip(params, args))

    def _block_body(self, item: dict, scope: _Scope, name: Any, line: int | None,
                    spend: Callable[[int], None] | None = None) -> Any:
        """The body of the block `item` uses, with its arguments substituted (`spend` is told
        of every value copied)."""
        block = item["use"]
        if not isinstance(block, str) or block not in self.blocks:
            hint = nearest(block, list(self.blocks))
            shown = echo(block) if isinstance(block, str) else brief(block)
            raise SpecError(f"unknown block '{shown}'", line=line,
                            layer=scope.display(str(name)) if name else None,
                            fix=f"did you mean '{hint}'?" if hint else
                            "define it under 'blocks:' (defined: " + (", ".join(self.blocks) or "none") + ")")
        env = self._bind(block, item.get("with"), line, scope)
        # One substitution per block and arguments: a block used 40 times with the same
        # `with:` is copied once (the resolver only reads a body; it copies what it keeps).
        key = (block, freeze(env, self.kept))
        if key in self.bodies:
            return self.bodies[key]
        body = {k: v for k, v in self.blocks[block].items() if k not in ("args", "description")}
        try:
            body = substitute(body, env, spend)
        except ExprError as exc:
            raise SpecError(f"block '{block}': {exc}", line=line,
                            layer=scope.display(str(name)) if name else None,
                            fix=exc.fix or "pass numbers in 'with:' for arguments used in "
                                           "arithmetic") from None
        body = body["layers"] if set(body) == {"layers"} else body
        self.bodies[key] = body
        return body

    def _forecast_body(self, block: str, args: Any, line: int | None,
                       spend: Callable[[int], None]) -> Any:
        """For the forecast: the body one use of `block` with `with: args` resolves."""
        scope = _Scope((), self.separator, self.max_name)
        return self._block_body({"use": block, "with": args}, scope, None, line, spend)

    def _arg_names(self, block: str) -> tuple[str, ...]:
        return tuple(self.blocks[block].get("args") or ())

    def _use(self, item: dict, scope: _Scope, depth: int, name: Any,
             line: int | None) -> Sequence:
        body = self._block_body(item, scope, name, line)
        use_name = scope.claim(name, line) if name is not None else scope.derive(item["use"])
        inner = scope.child(use_name)
        if line:
            self.lines[inner.path] = line
        self.args.append(self._arg_names(item["use"]))
        try:
            with _used_at(item["use"], line):
                children = tuple(self._items(body, inner, depth + 1))
        finally:
            self.args.pop()
        return Sequence(inner.path, children, item["use"], line)

    def _repeat(self, item: dict, scope: _Scope, depth: int, name: Any,
                line: int | None) -> list[Node]:
        count, start = item["repeat"], item.get("start", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            why = problem(count, self.args[-1] if self.args else None) \
                if isinstance(count, str) else None
            raise SpecError(f"repeat: {why[0]}" if why else
                            f"repeat: count must be an integer >= 0 (got {brief(count)})",
                            line=line, fix=why[1] if why else "repeat: 3")
        if count > self.max_layers:  # even of an empty body: the loop below would spin
            raise SpecError(f"repeat: {count:,} repetitions is more than archcalc unrolls "
                            f"({self.max_layers:,})", line=line,
                            fix="check the repeat count; " + raise_hint("MAX_LAYERS"))
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise SpecError(f"repeat: start must be an integer >= 0 (got {brief(start)})", line=line,
                            fix="start: 1")
        if "use" in item:
            body: Any = {"use": item["use"], "with": item.get("with")}
        elif "layers" in item:
            body = item["layers"]
        else:
            raise SpecError("repeat: needs 'layers: [...]' or 'use: block'", line=line,
                            fix="repeat: 2\n  layers: [...]")
        if item.get("inline"):
            out: list[Node] = []
            for _ in range(count):
                out.extend(self._items(body, scope, depth + 1))
            return out
        outer = scope
        nodes: list[Node] = []
        if name is not None:
            rep_name = scope.claim(name, line)
            outer = scope.child(rep_name)
            if line:
                self.lines[outer.path] = line
        for i in range(start, start + count):
            inner_name = outer.claim(str(i), line, fix="two unnamed repeats share a scope: name "
                                     "one (stage2: {repeat: ...}), give it start:, or inline: true")
            inner = outer.child(inner_name)
            if line:
                self.lines[inner.path] = line
            if isinstance(body, dict) and "use" in body:
                label, layers = body["use"], self._block_body(body, outer, inner_name, line)
                self.args.append(self._arg_names(label))
            else:
                label, layers = "repeat", body
                self.args.append(self.args[-1] if self.args else None)
            try:
                with _used_at(label if label != "repeat" else None, line):
                    children = tuple(self._items(layers, inner, depth + 1))
            finally:
                self.args.pop()
            nodes.append(Sequence(inner.path, children, label, line))
        if name is not None:
            what = f"{body['use']}" if isinstance(body, dict) and "use" in body else "repeat"
            return [Sequence(outer.path, tuple(nodes), f"{what}×{count}", line)]
        return nodes


@contextmanager
def _used_at(block: str | None, line: int | None):
    """Errors inside a block's body point at the body; add where the block was used."""
    try:
        yield
    except SpecError as exc:
        # Only the innermost use: a block used inside a block used inside ... would otherwise
        # add one clause per level (200 of them for a 200-deep nesting).
        if block is not None and line is not None and exc.line != line \
                and not getattr(exc, "use_noted", False):
            exc.message += f" (in block '{block}' used at line {line})"
            exc.use_noted = True  # type: ignore[attr-defined]
        raise
