"""The heart of the cross-check: random small specs, calculator vs executor, layer by layer.

Hypothesis writes specs (as the dicts a YAML file would load to, fed through
archcalc.spec.loads) with random conv kernels, strides, dilations, groups and every padding
form; max/avg pools with padding ≤ kernel/2 and ceil mode; batch norm, LRN, layer norm,
maxout, dropout and every activation; concat branches and residual adds (identity and
projection); flatten / global-pool + dense heads; and, now and then, a flat input.

Activation bytes are compared too, under the calculator's convention that activations,
dropout and flatten keep no new tensor. That holds wherever the layer's input is owned by
the pass; the generator therefore never starts the network or a merge branch with an
activation (an activation on a branch's shared input must copy, and does: a known gap in
the calculator's convention, reported apart).

The generator keeps its own rough account of the shape so that it emits valid networks,
and for every one of them the calculator's output shape, parameters (trainable and not) and
activation bytes must equal what the executor measured on real arrays. If the generator's
account ever disagrees with the calculator so that the calculator rejects a spec, the test
does not discard it: the executor must then reject it too (with a ShapeError). A second
property generates specs with one deliberate defect and requires both sides to reject them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from archcalc.calc import analyze
from archcalc.errors import ArchcalcError, ShapeError
from archcalc.nn import build
from archcalc.spec import loads

ACTIVATIONS = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "dropout"]
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- a rough shape account for the generator (the calculator is the one under test) -------

def _out(size: int, span: int, stride: int, before: int, after: int, ceil: bool = False) -> int:
    room = size + before + after - span
    if not ceil:
        return room // stride + 1
    out = -(-room // stride) + 1
    return out - 1 if (out - 1) * stride >= size + before else out


def _same(size: int, span: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _pads(padding) -> tuple[int, int, int, int] | None:
    if padding == "same":
        return None
    if padding == "valid":
        return (0, 0, 0, 0)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pair_spec(draw, h: int, w: int):
    """(h, w) written as an int when equal and the coin says so, else [h, w]."""
    return h if h == w and draw(st.booleans()) else [h, w]


# ---- layers --------------------------------------------------------------------------------

@st.composite
def padding_spec(draw, most: int):
    """Any padding form with every side ≤ `most`."""
    form = draw(st.sampled_from(["int", "pair", "quad", "valid", "same"]))
    side = st.integers(0, most)
    if form == "int":
        return draw(side)
    if form == "pair":
        return [draw(side), draw(side)]
    if form == "quad":
        return [draw(side) for _ in range(4)]
    return form


@st.composite
def conv(draw, shape, *, stride_one: bool = False, same: bool = False, filters=None):
    """A conv2d item valid on a C×H×W input, and its output shape."""
    c, h, w = shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    f = filters if filters is not None else groups * draw(st.integers(1, 3))
    if f % groups:
        groups = 1
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (1, 1) if stride_one else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = "same" if same else draw(padding_spec(3))
    pads = _pads(padding)
    kernel = []
    for axis, size in enumerate((h, w)):
        room = size + (pads[2 * axis] + pads[2 * axis + 1] if pads else 10 ** 6)
        biggest = min(5, (room - 1) // dil[axis] + 1)
        kernel.append(draw(st.integers(1, biggest)))
    spans = [dil[i] * (kernel[i] - 1) + 1 for i in range(2)]
    if pads is None:
        pads = _same(h, spans[0], stride[0]) + _same(w, spans[1], stride[1])
    out = (f, _out(h, spans[0], stride[0], pads[0], pads[1]),
           _out(w, spans[1], stride[1], pads[2], pads[3]))
    fields = {"filters": f, "kernel": _pair_spec(draw, *kernel)}
    if stride != (1, 1) or draw(st.booleans()):
        fields["stride"] = _pair_spec(draw, *stride)
    if padding != 0:
        fields["padding"] = padding
    if dil != (1, 1):
        fields["dilation"] = _pair_spec(draw, *dil)
    if groups > 1:
        fields["groups"] = groups
    if draw(st.booleans()):
        fields["bias"] = draw(st.booleans())
    if draw(st.integers(0, 9)) == 0:
        fields["trainable"] = False
    return {"conv": fields}, out


@st.composite
def pool(draw, shape):
    """A max or average pool with padding ≤ kernel/2 (the calculator's and PyTorch's rule)."""
    c, h, w = shape
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = draw(padding_spec(min(kernel) // 2))
    pads = _pads(padding)
    if pads is not None:
        kernel = (min(kernel[0], h + pads[0] + pads[1]), min(kernel[1], w + pads[2] + pads[3]))
        if any(2 * p > kernel[i // 2] for i, p in enumerate(pads)):
            padding, pads = 0, (0, 0, 0, 0)
            kernel = (min(kernel[0], h), min(kernel[1], w))
    stride = None if draw(st.booleans()) else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = stride or kernel
    ceil = draw(st.booleans())
    if pads is None:
        pads = _same(h, kernel[0], strides[0]) + _same(w, kernel[1], strides[1])
    out = (c, _out(h, kernel[0], strides[0], pads[0], pads[1], ceil),
           _out(w, kernel[1], strides[1], pads[2], pads[3], ceil))
    fields = {"kernel": _pair_spec(draw, *kernel)}
    if stride is not None:
        fields["stride"] = _pair_spec(draw, *stride)
    if padding != 0:
        fields["padding"] = padding
    if ceil:
        fields["ceil_mode"] = True
    return {kind: fields}, out


@st.composite
def pointwise(draw, shape):
    """A layer that keeps the shape (or, maxout, divides the channels)."""
    spatial = len(shape) == 3
    choices = ["activation", "batchnorm", "layernorm", "maxout"] + (["lrn"] if spatial else [])
    kind = draw(st.sampled_from(choices))
    if kind == "activation":
        act = draw(st.sampled_from(ACTIVATIONS))
        if act == "leaky_relu" and draw(st.booleans()):
            return {"leaky_relu": {"slope": draw(st.sampled_from([0.0, 0.1, 0.3]))}}, shape
        if act == "elu" and draw(st.booleans()):
            return {"elu": {"alpha": draw(st.sampled_from([0.5, 1.0, 2.0]))}}, shape
        if act == "dropout" and draw(st.booleans()):
            return {"dropout": draw(st.sampled_from([0.0, 0.25, 0.5]))}, shape
        return act, shape
    if kind == "batchnorm":
        if draw(st.booleans()):
            return "batchnorm", shape
        return {"bn": {"eps": 1e-3, "momentum": 0.2}}, shape
    if kind == "layernorm":
        return "layernorm", shape
    if kind == "lrn":
        size, k = draw(st.integers(1, 5)), draw(st.sampled_from([1.0, 2.0]))
        return {"lrn": {"size": size, "k": k}}, shape
    pieces = [p for p in (2, 3) if shape[0] % p == 0]
    if not pieces:
        return "relu", shape
    p = draw(st.sampled_from(pieces))
    item = "maxout" if p == 2 and draw(st.booleans()) else {"maxout": p}  # 2 is the default
    return item, (shape[0] // p,) + tuple(shape[1:])


@st.composite
def branch_keeping_hw(draw, shape):
    """A concat branch whose output has the input's H×W: 'same' convs at stride 1, or a
    3×3/1 pool with padding 1 (optionally then a 1×1 conv). Never starts with an
    activation: an in-place layer on a shared input must copy (see the module docstring)."""
    kind = draw(st.sampled_from(["convs", "convs", "pool"]))
    if kind == "pool":
        c, h, w = shape
        items = [{draw(st.sampled_from(["maxpool", "avgpool"])):
                  {"kernel": 3, "stride": 1, "padding": draw(st.sampled_from([1, "same"]))}}]
        out = shape
        if draw(st.booleans()):
            item, out = draw(conv(shape, stride_one=True, same=True))
            items.append(item)
        return items, out
    items, out = [], shape
    for _ in range(draw(st.integers(1, 2))):
        item, out = draw(conv(out, stride_one=True, same=True))
        items.append(item)
        if draw(st.booleans()):
            act, out = draw(pointwise(out))
            items.append(act)
    return items, out


@st.composite
def concat(draw, shape):
    branches, channels = [], 0
    for _ in range(draw(st.integers(2, 3))):
        if draw(st.integers(0, 4)) == 0:
            items, out = [], shape  # the identity branch: the input itself joins the concat
        else:
            items, out = draw(branch_keeping_hw(shape))
        branches.append(items)
        channels += out[0]
    return {"concat": branches}, (channels,) + tuple(shape[1:])


@st.composite
def residual(draw, shape, index: int):
    """A residual add: identity shortcut (branch keeps C×H×W) or a projection shortcut
    (1×1 conv with the main branch's stride and filters)."""
    c, h, w = shape
    if draw(st.booleans()):
        main, out = [], shape
        for _ in range(draw(st.integers(1, 2))):
            item, out = draw(conv(out, stride_one=True, same=True, filters=c))
            main.append(item)
            main.extend(draw(st.lists(st.sampled_from(["bn", "relu"]), max_size=2)))
        shortcut: list | dict = []
        out = shape
    else:
        f = draw(st.integers(1, 6))
        s = draw(st.integers(1, 2))
        form = draw(st.sampled_from(["pad1", "same"]))
        if form == "pad1":  # (H + 2 − 3)/s + 1 on the main path = (H − 1)/s + 1 on the 1×1
            main = [{"conv": {"filters": f, "kernel": 3, "stride": s, "padding": 1}}]
            out = (f, (h - 1) // s + 1, (w - 1) // s + 1)
        else:
            main = [{"conv": {"filters": f, "kernel": draw(st.integers(1, 3)), "stride": s,
                              "padding": "same"}}]
            out = (f, -(-h // s), -(-w // s))
        main.append("bn")
        shortcut = [{"conv": {"filters": f, "kernel": 1, "stride": s, "bias": False}}, "bn"]
        if draw(st.booleans()):
            shortcut = {"name": f"shortcut{index}", "layers": shortcut}  # a scope of its own
    items: list = [{"add": [main, shortcut]}]
    if draw(st.booleans()):
        items.append("relu")
    return items, out


@st.composite
def head(draw, shape):
    """Flatten or global average pooling, then dense layers with something in between."""
    items: list = []
    if len(shape) == 3:
        route = draw(st.sampled_from(["flatten", "gap", "gap_keep", "none"]))
        if route == "none":
            return items, shape
        if route == "flatten":
            items.append("flatten")
            shape = (shape[0] * shape[1] * shape[2],)
        elif route == "gap":
            items.append({"global_avgpool": {"keepdims": False}})
            shape = (shape[0],)
        else:
            items += ["gap", "flatten"]
            shape = (shape[0],)
    for _ in range(draw(st.integers(1, 3))):
        units = draw(st.integers(1, 8))
        items.append({"dense": units} if draw(st.booleans()) else
                     {"fc": {"units": units, "bias": draw(st.booleans())}})
        shape = (units,)
        if draw(st.booleans()):
            item, shape = draw(pointwise(shape))
            items.append(item)
    return items, shape


@st.composite
def valid_specs(draw):
    """A small valid network, as the dict its YAML would load to."""
    if draw(st.integers(0, 9)) == 0:  # a flat input: dense, norms and activations only
        features = draw(st.integers(1, 12))
        items, _ = draw(head((features,)))
        return {"name": "flat", "input": [features], "layers": items}
    shape = (draw(st.integers(1, 4)), draw(st.integers(5, 20)), draw(st.integers(5, 20)))
    start = shape
    items = []
    first, shape = draw(conv(shape)) if draw(st.booleans()) else draw(pool(shape))
    items.append(first)
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "pointwise", "pointwise",
                                     "concat", "residual"]))
        if kind == "conv":
            item, shape = draw(conv(shape))
            items.append(item)
        elif kind == "pool":
            item, shape = draw(pool(shape))
            items.append(item)
        elif kind == "pointwise":
            item, shape = draw(pointwise(shape))
            items.append(item)
        elif kind == "concat":
            item, shape = draw(concat(shape))
            items.append(item)
        else:
            more, shape = draw(residual(shape, index))
            items.extend(more)
    more, shape = draw(head(shape))
    items.extend(more)
    return {"name": "random", "input": list(start), "layers": items}


# ---- the properties ------------------------------------------------------------------------

def _network(spec: dict):
    return loads(json.dumps(spec), json_mode=True)


def _run(network, batch: int = 2):
    """Build (seeded) and run one inference forward pass on a random batch."""
    model = build(network, seed=0)
    x = np.random.default_rng(1).standard_normal((batch, *network.input_shape),
                                                 dtype=np.float32)
    y = model.forward(x, training=False)
    return model, x, y


@SETTINGS
@given(valid_specs())
def test_calculator_matches_executor_on_random_specs(spec):
    network = _network(spec)
    try:
        analysis = analyze(network)
    except ShapeError:
        # the generator's own account slipped: then both sides must refuse the spec
        event("rejected by the calculator")
        with pytest.raises(ShapeError):
            _run(network)
        return
    model, x, y = _run(network)
    rows, records = analysis.rows, model.records
    assert [r.name for r in records] == [r.name for r in rows]
    for row, rec in zip(rows, records):
        where = f"{row.name} ({row.type}) in {json.dumps(spec)}"
        assert tuple(rec.output_shape) == row.output_shape, where
        assert (rec.trainable_params, rec.non_trainable_params) == \
            (row.trainable_params, row.non_trainable_params), where
        assert rec.kept_bytes == row.activations * x.shape[0] * x.itemsize, where
    assert y.shape == (x.shape[0], *analysis.output_shape)
    assert sum(a.size for a in model.params.values()) + sum(
        b.size for b in model.buffers.values()) == analysis.totals.params
    event(f"{len(rows)} layers" if len(rows) < 10 else ">= 10 layers")


# ---- one deliberate defect -----------------------------------------------------------------

@st.composite
def defective_specs(draw):
    """A valid C×H×W prefix, then one layer that cannot work on its input."""
    start = (draw(st.integers(1, 4)), draw(st.integers(5, 12)), draw(st.integers(5, 12)))
    items = [{"conv": {"filters": draw(st.integers(1, 4)) * 6, "kernel": 3, "padding": 1}}]
    shape = (items[0]["conv"]["filters"],) + start[1:]
    defect = draw(st.sampled_from(["kernel", "groups", "maxout", "dense", "after_flatten",
                                   "concat_hw", "add_channels", "add_hw", "pool_padding"]))
    # a pool could shrink H×W to 1×1, where stride 2 no longer changes it
    if defect not in ("concat_hw", "add_hw") and draw(st.booleans()):
        item, shape = draw(pool(shape))
        items.append(item)
    c, h, w = shape
    if defect == "kernel":  # the kernel spans more than the padded input
        pad = draw(st.integers(0, 2))
        items.append({"conv": {"filters": 2, "kernel": [h + 2 * pad + draw(st.integers(1, 3)), 1],
                               "padding": pad}})
    elif defect == "groups":  # groups that divide the filters but not the input channels
        groups = draw(st.sampled_from([g for g in (5, 7, 11, 25) if c % g]))
        items.append({"conv": {"filters": groups, "kernel": 1, "groups": groups}})
    elif defect == "maxout":
        items.append({"maxout": draw(st.sampled_from([p for p in (5, 7, 25) if c % p]))})
    elif defect == "dense":  # dense on C×H×W without flatten
        items.append({"dense": 3})
    elif defect == "after_flatten":
        items.append("flatten")
        items.append(draw(st.sampled_from([{"conv": {"filters": 2, "kernel": 1}}, "lrn",
                                           {"maxpool": {"kernel": 1}}, "gap"])))
    elif defect == "concat_hw":  # one branch halves H×W, the other keeps it
        items.append({"concat": [[{"conv": {"filters": 2, "kernel": 1, "stride": 2}}],
                                 [{"conv": {"filters": 2, "kernel": 1}}]]})
    elif defect == "add_channels":
        items.append({"add": [[{"conv": {"filters": c + draw(st.integers(1, 3)), "kernel": 1}}],
                              []]})
    elif defect == "add_hw":
        items.append({"add": [[{"conv": {"filters": c, "kernel": 3, "stride": 2, "padding": 1}}],
                              []]})
    else:  # pool padding above half the kernel: a window could see only padding
        k = draw(st.integers(1, 3))
        items.append({draw(st.sampled_from(["maxpool", "avgpool"])):
                      {"kernel": k, "stride": 1, "padding": k // 2 + 1}})
    event(defect)
    return {"name": "defective", "input": list(start), "layers": items}


@settings(max_examples=100, deadline=None)
@given(defective_specs())
def test_both_sides_reject_a_defective_spec(spec):
    network = _network(spec)
    with pytest.raises(ShapeError):
        analyze(network)
    with pytest.raises(ArchcalcError):
        _run(network)
