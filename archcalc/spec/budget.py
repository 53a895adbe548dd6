"""What a spec's layers will unroll to, computed before any of them is built.

`repeat: 1000` of `repeat: 1000` of a block is a few bytes that would build a million layers;
two blocks that use each other never stop. The resolver walks the items once per repetition
and once per use, so this module first walks them once per *distinct* (block, arguments)
pair, multiplying instead of repeating, and refuses before building anything:

- a block that leads back to itself with the same arguments (a loop that cannot end),
  named once: block 'a' → 'b' → 'a';
- more than MAX_SPEC_DEPTH levels of nesting (lists, blocks, repeats);
- more than MAX_LAYERS layers once every repeat and block is unrolled;
- more than MAX_UNROLLED units of work to unroll them: items read, repetitions made (a
  repeat of an empty body still loops) and values copied to substitute block arguments.

It mirrors the resolver's grammar (resolve.py) but only counts: whatever it cannot read counts
as nothing, and the resolver then reports the mistake in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archcalc.errors import SpecError
from archcalc.limits import limit, max_depth, raise_hint
from archcalc.spec.layers import ALIASES
from archcalc.spec.tree import MERGE_MODES
from archcalc.spec.yamlio import line_of

COMPOSITES = (*MERGE_MODES, "repeat", "use", "sequence", "layers")
FORMS = ("repeat", "use", *MERGE_MODES, "sequence", "layers")  # the resolver's precedence


@dataclass(frozen=True)
class Cost:
    layers: int = 0
    work: int = 0  # items read + repetitions made + values copied by substituting arguments

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.layers + other.layers, self.work + other.work)

    def times(self, count: int) -> "Cost":
        return Cost(self.layers * count, self.work * count)


NOTHING = Cost()
ONE_LAYER = Cost(1, 0)
ONE_STEP = Cost(0, 1)

# A block body with its arguments substituted: (block name, `with:` value, line, spend) → body.
# `spend(n)` is called as values are copied; it raises once the copies pass the limit.
Expand = Callable[[str, Any, "int | None", Callable[[int], None]], Any]


def is_kind_map(item: dict) -> bool:
    keys = [k for k in item if k not in ("name", "trainable")]
    return len(keys) == 1 and str(keys[0]) in ALIASES


def looks_like_item(value: dict) -> bool:
    return "type" in value or any(k in value for k in COMPOSITES) or is_kind_map(value)


class Forecast:
    """Counts what `Resolver.resolve(items)` would build; raises SpecError past a limit."""

    def __init__(self, blocks: dict[str, Any], expand: Expand) -> None:
        self.blocks = blocks
        self.expand = expand
        self.max_layers = limit("MAX_LAYERS")
        self.max_work = limit("MAX_UNROLLED")
        self.max_depth = max_depth()
        self.memo: dict[tuple, Cost] = {}
        self.stack: list[tuple[str, tuple]] = []  # the (block, arguments) being expanded
        self.keep: list[Any] = []  # arguments whose id() is part of a memo key stay alive
        self.spent = 0  # values this forecast itself copied: bounded by the same limit

    # ---- the grammar, as resolve.py reads it -----------------------------------------------
    def items(self, items: Any, depth: int, line: int | None) -> Cost:
        if not isinstance(items, list):
            items = [items]
        lines = getattr(items, "item_lines", None) or [line_of(items) or line] * len(items)
        layers = work = 0  # plain ints: a 100,000-item list makes no Cost per item
        for item, item_line in zip(items, lines):
            where = line_of(item) or item_line
            cost = self.item(item, depth, where)
            layers += cost.layers
            work += cost.work + 1  # ONE_STEP: reading the item
            if layers > self.max_layers or work > self.max_work:
                self.check(Cost(layers, work), where)
        return Cost(layers, work)

    def item(self, item: Any, depth: int, line: int | None) -> Cost:
        if depth > self.max_depth:
            raise self.too_deep(line)
        if isinstance(item, str):
            if item in ALIASES:
                return ONE_LAYER
            return self.use(item, None, depth, line) if item in self.blocks else NOTHING
        if isinstance(item, list):
            return self.items(item, depth + 1, line)
        if not isinstance(item, dict):
            return NOTHING
        if "type" in item:
            return ONE_LAYER
        form = next((k for k in FORMS if k in item), None)
        if form is not None:
            return self.composite(form, item, depth, line)
        keys = [k for k in item if k not in ("name", "trainable")]
        if len(keys) != 1:
            return NOTHING
        value = item[keys[0]]
        if str(keys[0]) in ALIASES:
            return ONE_LAYER
        if isinstance(value, str) and (value in ALIASES or value in self.blocks):
            return self.item(value, depth, line)
        if isinstance(value, list):
            return self.items(value, depth + 1, line)
        if isinstance(value, dict) and looks_like_item(value):
            return self.item(value, depth, line)
        return NOTHING

    def composite(self, form: str, item: dict, depth: int, line: int | None) -> Cost:
        if form == "repeat":
            return self.repeat(item, depth, line)
        if form == "use":
            block = item["use"]
            return self.use(block, item.get("with"), depth, line) if _is_name(block) else NOTHING
        if form in MERGE_MODES:
            spec = item[form]
            branches = spec.get("branches") if isinstance(spec, dict) else spec
            if not isinstance(branches, list):
                return NOTHING
            total = ONE_LAYER  # the merge's own row
            for raw in branches:
                if isinstance(raw, dict) and "layers" in raw and set(raw) <= {"name", "layers"}:
                    raw = raw["layers"]
                total = self.check(total + self.items(raw, depth + 1, line_of(raw) or line), line)
            return total
        return self.items(item[form], depth + 1, line)

    def repeat(self, item: dict, depth: int, line: int | None) -> Cost:
        count = item["repeat"]
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            return NOTHING  # zero repeats build nothing; a bad count is the resolver's to report
        if "use" in item:
            block = item["use"]
            if not _is_name(block):
                return NOTHING
            body = self.use(block, item.get("with"), depth, line)
        elif "layers" in item:
            body = self.items(item["layers"], depth + 1, line)
        else:
            return NOTHING
        total = (body + ONE_STEP).times(count)  # each repetition is a step, even if empty
        if total.layers > self.max_layers:
            raise SpecError(f"repeat: {count:,} × {body.layers:,} layer(s) = {total.layers:,} "
                            f"layers, more than archcalc unrolls ({self.max_layers:,})",
                            line=line, fix="check the repeat counts; " + raise_hint("MAX_LAYERS"))
        return self.check(total, line)

    def use(self, block: str, args: Any, depth: int, line: int | None) -> Cost:
        """The cost of one use of `block`: its body one level deeper, plus what substituting
        its arguments copies. Memoised: a block used a thousand times is read once."""
        if block not in self.blocks:
            return NOTHING
        key = (block, freeze(args, self.keep))
        if key in self.stack:
            raise self.loop(block, self.stack.index(key), line)
        if key in self.memo:
            return self.memo[key]
        copied = 0

        def spend(values: int) -> None:
            nonlocal copied
            copied += values
            self.spent += values
            if self.spent > self.max_work:
                raise self.too_much_work(line)

        try:
            body = self.expand(block, args, line, spend)
        except SpecError:
            if self.spent > self.max_work:  # spend() stopped the substitution: over budget
                raise
            return NOTHING  # a wrong use: the resolver says what is wrong with it
        self.stack.append(key)
        try:
            cost = self.items(body, depth + 1, line) + Cost(0, copied)
        finally:
            self.stack.pop()
        self.memo[key] = cost
        return self.check(cost, line)

    # ---- keys, limits and messages ---------------------------------------------------------
    def check(self, cost: Cost, line: int | None) -> Cost:
        if cost.layers > self.max_layers:
            raise SpecError(f"the spec unrolls to more than {self.max_layers:,} layers "
                            "(the most archcalc unrolls)", line=line,
                            fix="check the repeat counts; " + raise_hint("MAX_LAYERS"))
        if cost.work > self.max_work:
            raise self.too_much_work(line)
        return cost

    def too_much_work(self, line: int | None) -> SpecError:
        return SpecError(f"repeats and blocks expand to more than {self.max_work:,} "
                         "items and values once unrolled", line=line,
                         fix=raise_hint("MAX_UNROLLED"))

    def loop(self, block: str, start: int, line: int | None) -> SpecError:
        names = [name for name, _ in self.stack[start:]] + [block]
        chain = " → ".join(f"'{name}'" for name in names)
        return SpecError(
            f"block {chain} is a loop that never ends (each uses the next with the same "
            "arguments)", line=line, fix="remove the 'use' that closes the loop")

    def too_deep(self, line: int | None) -> SpecError:
        names = [name for name, _ in self.stack]
        message = f"items nest more than {self.max_depth:,} levels deep"
        fix = raise_hint("MAX_SPEC_DEPTH")
        again = next((n for n in names if names.count(n) > 1), None)
        if again is not None:  # recursion whose arguments change but never reach its end
            message += (f": block '{again}' uses itself {names.count(again):,} levels deep, "
                        "with changing arguments")
            fix = "make the recursion end sooner (repeat: 0 stops it), or " + fix
        elif names:
            message += f" (blocks in use: {_chain(names)})"
        return SpecError(message, line=line, fix=fix)


def freeze(value: Any, keep: list[Any], room: list[int] | None = None) -> Any:
    """A hashable key equal for equal small values, types included (1, 1.0 and True differ;
    so do 0.0 and -0.0, by repr); a large list or mapping is keyed by identity and kept alive
    in `keep`, so that building keys never costs more than reading the file. Keys the
    forecast's memo and the resolver's substituted block bodies."""
    room = room if room is not None else [64]
    room[0] -= 1
    if isinstance(value, (list, tuple, dict)) and room[0] < 0:
        keep.append(value)
        return ("id", id(value))
    if isinstance(value, dict):
        return ("dict",) + tuple((freeze(k, keep, room), freeze(v, keep, room))
                                 for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ("list",) + tuple(freeze(v, keep, room) for v in value)
    if type(value) is float:
        return ("float", repr(value))
    return (type(value).__name__, value if _hashable(value) else id(value))


def _chain(names: list[str]) -> str:
    """'b3' → 'b2' → 'b1', shortened in the middle past six names."""
    quoted = [f"'{name}'" for name in names]
    if len(quoted) > 6:
        quoted = quoted[:3] + ["…"] + quoted[-2:] + [f"({len(names):,} blocks)"]
        return " → ".join(quoted[:-1]) + " " + quoted[-1]
    return " → ".join(quoted)


def _is_name(value: Any) -> bool:
    return isinstance(value, str)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
