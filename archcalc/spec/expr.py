"""Block arguments: substitute them into a block's body, with small integer arithmetic.

Inside a block, a string value that is an expression over the block's arguments is
replaced by its value: `filters: planes` or `filters: 4*planes`. Only + - * // % ( ) and
integer/float literals are allowed; anything else stays a string (names such as
"5x5_reduce", paddings such as "same"). A string that uses an argument but cannot be
computed (`f ** 100`, `4 * f + x`) is an error that says why, not a string that a numeric
field later rejects as "not a valid integer".
"""

from __future__ import annotations

import ast
import functools
import keyword
import operator
from typing import Any, Callable

from archcalc.spec.yamlio import LineDict, LineList, brief

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Div: operator.truediv,
}


class _NotAnExpression(Exception):
    pass


class ExprError(Exception):
    """An expression over block arguments that cannot be computed (a string times 4, /0)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


ALLOWED = "+ - * // % ( )"
_OP_TEXT = {ast.Pow: "**", ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|",
            ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@", ast.Invert: "~",
            ast.Not: "not", ast.UAdd: "unary +"}
_KNOWN_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load,
                ast.operator, ast.unaryop)


def _parse(text: str) -> ast.Expression | None:
    if len(text) > 200:  # not an expression anyone writes; don't parse megabytes
        return None
    return _parse_short(text)


# A block's body is substituted once per use, and most of its strings are the same few words
# and formulas: 1,000 spec files parsed 381,000 texts, nearly all repeats. The trees are only
# read (evaluated and walked), never changed, so one tree per text can be shared.
@functools.lru_cache(maxsize=4096)
def _parse_short(text: str) -> ast.Expression | None:
    try:
        return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def problem(text: str, args: list[str] | tuple[str, ...] | None) -> tuple[str, str] | None:
    """(what is wrong, the fix) if `text` looks like arithmetic (has an operator) but is not
    block arithmetic over `args` (None: not inside a block); None for plain words ("same",
    "5x5_reduce")."""
    tree = _parse(text)
    if tree is None or isinstance(tree.body, (ast.Name, ast.Constant)):
        return None
    shown = text.strip()
    only = f"block arithmetic has only {ALLOWED}"
    for node in ast.walk(tree):
        op = getattr(node, "op", None)
        if type(op) in _OP_TEXT:
            return f"'{_OP_TEXT[type(op)]}' is not allowed in '{shown}'", only
        if not isinstance(node, _KNOWN_NODES):
            return f"'{shown}' is not block arithmetic", only + " on numbers and block args"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in (args or ()):
            if args is None:
                fix = "arithmetic works inside a block, on its args"
            else:
                fix = f"block args are {', '.join(args)}" if args else "this block has no args"
            return f"unknown name '{node.id}' in '{shown}'", fix
    return None


def _uses(tree: ast.AST, env: dict[str, Any]) -> bool:
    return any(isinstance(node, ast.Name) and node.id in env for node in ast.walk(tree))


def _num(value: Any, text: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"cannot compute '{text}': {brief(value)} is not a number")
    return value


def _eval(node: ast.AST, env: dict[str, Any], text: str = "") -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env, text)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        raise _NotAnExpression(node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _num(_eval(node.left, env, text), text)
        right = _num(_eval(node.right, env, text), text)
        try:
            return _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"cannot compute '{text}': division by zero") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_num(_eval(node.operand, env, text), text)
    raise _NotAnExpression(type(node).__name__)


def evaluate(text: str, env: dict[str, Any]) -> Any:
    """The value of `text` if it is an arithmetic expression over `env`, else `text`."""
    if text.isascii() and text.isidentifier() and not keyword.iskeyword(text):  # a word
        return env.get(text, text)
    tree = _parse(text)
    if tree is None:
        return text
    try:
        return _eval(tree, env, text.strip())
    except _NotAnExpression:
        # Words stay words; but a formula over an argument that cannot be computed is a
        # mistake to name here, with the reason (the numeric field would only say "integer").
        why = problem(text, list(env)) if _uses(tree, env) else None
        if why is not None:
            raise ExprError(why[0], fix=why[1]) from None
        return text


def substitute(obj: Any, env: dict[str, Any],
               spend: Callable[[int], None] | None = None) -> Any:
    """A copy of `obj` with argument expressions replaced; line numbers kept.
    `spend(n)` is told of every n values copied (it may raise to stop a copy too large).
    A value shared through YAML aliases is substituted once and stays shared in the copy, so
    the copy costs what the file holds, not what its aliases expand to."""
    if not env:
        return obj
    return _substitute(obj, env, spend, {})


def _substitute(obj: Any, env: dict[str, Any], spend: Callable[[int], None] | None,
                done: dict[int, Any]) -> Any:
    if isinstance(obj, str):
        return evaluate(obj, env)
    if not isinstance(obj, (dict, list)):
        return obj
    if id(obj) in done:
        return done[id(obj)]
    if spend is not None:
        spend(len(obj) + 1)
    if isinstance(obj, dict):
        out: Any = LineDict((k, _substitute(v, env, spend, done)) for k, v in obj.items())
    else:
        out = LineList(_substitute(v, env, spend, done) for v in obj)
        out.item_lines = getattr(obj, "item_lines", None)
    out.line = getattr(obj, "line", None)
    done[id(obj)] = out
    return out
