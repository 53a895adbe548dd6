"""The text view of a trace (archcalc.trace): lines a student can check by hand.

It reads the trace's plain data (Trace.as_dict(), the same dict `--format json` prints), so
the text and JSON views cannot disagree. Each array prints whole, or as its summary past the
trace's limit; a small one (at most EXPAND values) also prints the arithmetic behind each
value, as the notes write it: z[1] = 0.15·0.05 + 0.2·0.1 + 0.35 = 0.3775. Indices count
from 1, as in the notes. No NumPy here: the CLI renders without importing it twice.
"""

from __future__ import annotations

from typing import Any, Iterator

from archcalc.limits import echo

EXPAND = 16  # values per array whose arithmetic is spelled out, one line each


def num(value: float) -> str:
    """8 significant digits: the notes' numbers to their last printed digit."""
    text = f"{value:.8g}"
    return "0" if text == "-0" else text


def _par(value: float) -> str:
    """A factor of a product: a negative one in parentheses."""
    return f"({num(value)})" if value < 0 else num(value)


def shown(values: dict[str, Any]) -> str:
    """[0.3775, 0.3925], a matrix as nested lists, or a summary of a large array."""
    if "summary" in values:
        s = values["summary"]
        shape = "×".join(map(str, values["shape"]))
        return (f"{shape} values: min {num(s['min'])}, max {num(s['max'])}, "
                f"mean {num(s['mean'])} (--full prints them all)")
    return _nested(values["values"])


def _nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return num(value)


def _flat(values: dict[str, Any] | None) -> list[float] | None:
    """Every value in C order, or None for a summary (or no values)."""
    if values is None or "values" not in values:
        return None
    out: list[float] = []

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        else:
            out.append(float(v))
    walk(values["values"])
    return out


def _small(values: dict[str, Any] | None) -> list[float] | None:
    flat = _flat(values)
    return flat if flat is not None and len(flat) <= EXPAND else None


def _index(i: int, shape: list[int]) -> str:
    """Flat index i of an array of `shape` as the notes' 1-based [row,column]."""
    parts = []
    for size in reversed(shape or [1]):
        parts.append(str(i % size + 1))
        i //= size
    return "[" + ",".join(reversed(parts)) + "]"


def lines(trace: dict[str, Any]) -> Iterator[str]:
    """The whole trace as text lines."""
    limit = trace["summarised_above"]
    yield (f"trace of {echo(trace['spec'])}: one example, float64, training mode; weights: "
           f"{trace['weights']}")
    yield ("indices count from 1, as in the notes"
           + (f"; arrays of more than {limit} values are summarised (--full prints them)"
              if limit is not None else ""))
    yield ""
    yield f"input: a = {shown(trace['input'])}"
    forward = {step["layer"]: step for step in trace["forward"]}
    outputs = {name: step["output"] for name, step in forward.items()}
    outputs.setdefault("input", trace["input"])
    yield ""
    yield "forward"
    for step in trace["forward"]:
        yield from _forward(step, outputs)
    if trace["loss"] is None:
        yield ""
        yield "no --target: forward only (give --target to see the loss and every gradient)"
        return
    last = trace["forward"][-1] if trace["forward"] else None
    yield ""
    yield from _loss(trace["loss"], last["output"] if last else trace["input"],
                     last["symbol"] if last else "a")
    yield ""
    yield ("backward: the chain rule, last layer first (∂J/∂z = ∂J/∂a · ∂a/∂z, "
           "∂J/∂θ = ∂J/∂z · ∂z/∂θ)")
    for step in trace["backward"]:
        yield from _backward(step, forward)
    if trace["update"] is not None:
        yield ""
        yield from _update(trace["update"], forward)


def _title(step: dict[str, Any]) -> str:
    return f"{echo(step['layer'])} ({step['kind']})"


def _forward(step: dict[str, Any], outputs: dict[str, Any]) -> Iterator[str]:
    source = step.get("input_from")
    came = f", its input from {echo(source)}" if source not in (None, "input") else ""
    yield f"{_title(step)}: {step['formula']}{came}"
    for name, values in (step.get("params") or {}).items():
        yield f"  {values.get('symbol', name)} = {shown(values)}"
    sym = step["symbol"]
    out = step["output"]
    x = _flat(outputs.get(source or "", None))
    y = _small(out)
    if y is not None and step["kind"] == "dense" and x is not None and len(x) <= 8:
        w = _flat(step["params"]["weight"])
        b = _flat(step["params"].get("bias"))
        for i, value in enumerate(y):
            terms = [f"{_par(w[i * len(x) + j])}·{_par(x[j])}" for j in range(len(x))]
            if b is not None:
                terms.append(_par(b[i]))
            yield f"  {sym}[{i + 1}] = {' + '.join(terms)} = {num(value)}"
        return
    if y is not None and x is not None and len(x) == len(y) and step["kind"] in _FUNCS:
        for i, value in enumerate(y):
            yield f"  {sym}[{i + 1}] = {_FUNCS[step['kind']]}({num(x[i])}) = {num(value)}"
        return
    yield f"  {sym} = {shown(out)}"


_FUNCS = {"sigmoid": "σ", "tanh": "tanh", "relu": "max(0, ·)", "relu6": "relu6",
          "leaky_relu": "leaky_relu", "elu": "elu", "silu": "silu", "gelu": "gelu",
          "hardsigmoid": "hardsigmoid", "hardswish": "hardswish"}


def _loss(loss: dict[str, Any], output: dict[str, Any], sym: str) -> Iterator[str]:
    target = loss["target"]
    label = loss.get("target_is_label")
    t_text = (f"class {int(_flat(target)[0])}" if label and _flat(target) else shown(target))
    yield f"loss ({loss['name']}): {loss['formula']}, t = {t_text}"
    a, t = _small(output), _flat(target)
    if loss["name"] == "half_sse" and a is not None and t is not None and not label:
        squares = " + ".join(f"({num(ti)} − {num(ai)})²" for ai, ti in zip(a, t))
        yield f"  J = ½·({squares}) = {num(loss['value'])}"
    else:
        yield f"  J = {num(loss['value'])}"
    grad = loss["gradient"]
    yield f"  {grad['symbol']} = {grad['formula']}"
    g = _small(grad["values"])
    if loss["name"] == "half_sse" and g is not None and a is not None and t is not None \
            and not label:
        for i, value in enumerate(g):
            yield f"    {grad['symbol']}[{i + 1}] = {num(a[i])} − {num(t[i])} = {num(value)}"
    else:
        yield f"    = {shown(grad['values'])}"


def _backward(step: dict[str, Any], forward: dict[str, Any]) -> Iterator[str]:
    """A layer's factors after the incoming gradient (the previous layer's last line)."""
    yield _title(step)
    factors = step["factors"]
    incoming = _flat(factors[0]["values"]) if factors else None
    fwd = forward.get(step["layer"], {})
    previous: list[float] | None = None
    for factor in factors[1:] if len(factors) > 1 else factors:
        values = factor.get("values")
        symbol = factor["symbol"]
        if factor.get("of") == "input" and factors and symbol == factors[0]["symbol"]:
            symbol += " of its input"          # batch norm: z in, z out
        head = f"  {symbol} = {factor['formula']}"
        if factor.get("note") and not factor.get("shared"):
            head += f" ({factor['note']})"
        if values is None:
            yield head
            continue
        expanded = list(_expand(step, factor, fwd, incoming, previous))
        previous = _flat(values)
        if expanded:
            yield head
            yield from ("    " + line for line in expanded)
        else:
            yield f"{head} = {shown(values)}"


def _expand(step, factor, fwd, incoming, previous) -> Iterator[str]:
    """The arithmetic behind each value of a small factor, for the kinds the notes use;
    `previous`: the values of the factor before it (∂a/∂z before ∂J/∂z, ∂z/∂W before ∂J/∂W)."""
    values = _small(factor.get("values"))
    if values is None or incoming is None or factor.get("shared"):
        return
    sym, kind = factor["symbol"], step["kind"]
    out = _flat(fwd.get("output"))
    if kind == "sigmoid" and not sym.startswith("∂J") and out is not None:
        for i, v in enumerate(values):
            yield f"{_entry(sym, i)} = {num(out[i])}·(1 − {num(out[i])}) = {num(v)}"
    elif kind in _FUNCS and sym.startswith("∂J") and previous is not None:
        for i, v in enumerate(values):
            yield f"{sym}[{i + 1}] = {_par(incoming[i])}·{_par(previous[i])} = {num(v)}"
    elif kind == "dense" and factor.get("param") == "weight" and sym.startswith("∂J") \
            and previous is not None:
        for k, v in enumerate(values):
            i, j = divmod(k, len(previous))
            yield f"{sym}[{i + 1},{j + 1}] = {_par(incoming[i])}·{_par(previous[j])} = {num(v)}"
    elif kind == "dense" and factor.get("param") is None and sym.startswith("∂J"):
        w = _flat(fwd.get("params", {}).get("weight"))
        if w is None:
            return
        for j, v in enumerate(values):
            terms = [f"{_par(w[i * len(values) + j])}·{_par(incoming[i])}"
                     for i in range(len(incoming))]
            yield f"{sym}[{j + 1}] = {' + '.join(terms)} = {num(v)}"


def _entry(sym: str, i: int) -> str:
    """∂a/∂z → ∂a[1]/∂z[1]."""
    top, bottom = sym.split("/")
    return f"{top}[{i + 1}]/{bottom}[{i + 1}]"


def _update(update: dict[str, Any], forward: dict[str, Any]) -> Iterator[str]:
    yield f"update: {update['formula']}, η = {num(update['lr'])}"
    params = {}
    for step in forward.values():
        for name, values in (step.get("params") or {}).items():
            params[f"{step['layer']}.{name}"] = values
    for row in update["params"]:
        key = row["param"]
        new = row["values"]
        if row.get("shared"):
            yield (f"  {echo(key)} as one shared b: b − η·Σᵢ ∂J/∂bᵢ = "
                   f"{num(new['values'])}")
            continue
        old, small, grad = _small(params.get(key)), _small(new), _flat(row.get("gradient"))
        if old is not None and small is not None and grad is not None:
            for k, v in enumerate(small):
                g = grad[k]
                yield (f"  {echo(key)}{_index(k, new['shape'])} = {num(old[k])} − "
                       f"{num(update['lr'])}·{_par(g)} = {num(v)}")
        else:
            yield f"  {echo(key)} = {shown(new)}"
    yield (f"  J after the step: {num(update['loss_after'])} (every parameter updated, "
           "each bias entry on its own)")
