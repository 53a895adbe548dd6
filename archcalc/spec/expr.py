"""Block arguments: substitute them into a block's body, with small integer arithmetic.

Inside a block, a string value that is an expression over the block's arguments is
replaced by its value: `filters: planes` or `filters: 4*planes`. Only + - * // % ( ) and
integer/float literals are allowed; anything else stays a string (names such as
"5x5_reduce", paddings such as "same").
"""

from __future__ import annotations

import ast
import operator
from typing import Any

from archcalc.spec.yamlio import LineDict, LineList

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Div: operator.truediv,
}


class _NotAnExpression(Exception):
    pass


class ExprError(Exception):
    """An expression over block arguments that cannot be computed (a string times 4, /0)."""


def _num(value: Any, text: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"cannot compute '{text}': {value!r} is not a number")
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
    raise _NotAnExpression(ast.dump(node))


def evaluate(text: str, env: dict[str, Any]) -> Any:
    """The value of `text` if it is an arithmetic expression over `env`, else `text`."""
    if len(text) > 200:  # not an expression anyone writes; don't parse megabytes
        return text
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return text
    try:
        return _eval(tree, env, text.strip())
    except _NotAnExpression:
        return text


def substitute(obj: Any, env: dict[str, Any]) -> Any:
    """A deep copy of `obj` with argument expressions replaced; line numbers kept."""
    if not env:
        return obj
    if isinstance(obj, str):
        return evaluate(obj, env)
    if isinstance(obj, dict):
        out = LineDict((k, substitute(v, env)) for k, v in obj.items())
        out.line = getattr(obj, "line", None)
        return out
    if isinstance(obj, list):
        out_list = LineList(substitute(v, env) for v in obj)
        out_list.line = getattr(obj, "line", None)
        out_list.item_lines = getattr(obj, "item_lines", None)
        return out_list
    return obj
