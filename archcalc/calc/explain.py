"""One layer's arithmetic, step by step, the way the lecture notes write it out.

    archcalc layer conv --input 3x227x227 --kernel 11 --stride 4 --filters 96
    output:  (227 − 11 + 2·0)/4 + 1 = 55 → 96×55×55
    weights: 11·11·3·96 + 96 = 34,944
    MACs:    55·55·96·11·11·3 = 105,415,200

Every number comes from the calculator: the layer is put into a one-layer Network and run
through `analyze`, the code behind `summary`. This module only writes out the factors that
were multiplied, and checks that their product is the number the calculator gave.

It is also the home of the small helpers the other what-ifs use to build hypothetical
layers and networks (`make_layer`, `chain`, `conv_terms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from pydantic import ValidationError

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, Row, analyze
from archcalc.calc.layers import layer_math
from archcalc.calc.shapes import Dim, fmt_shape
from archcalc.errors import ArchcalcError
from archcalc.limits import elide
from archcalc.spec.layers import MODELS, pair
from archcalc.spec.tree import Leaf, Network, Sequence
from archcalc.spec.yamlio import brief


# ---- hypothetical layers and networks --------------------------------------------------------
def make_layer(kind: str, **fields):
    """A validated layer model of `kind` (a key of archcalc.spec.layers.MODELS); None fields
    are left at their defaults. A bad value is the user's mistake: one ArchcalcError line."""
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        return MODELS[kind].model_validate(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "value_error" and not err["loc"]:  # the model's own check
            # (filters and groups): its message has the numbers, the options are named alike
            raise ArchcalcError(str(err["ctx"]["error"]),
                                fix=_MODEL_FIXES.get(kind, "see 'archcalc layer --help'")) from None
        where = ".".join(str(p) for p in err["loc"]) or kind
        raise ArchcalcError(f"{kind}: {where}: {err['msg'].lower()} (got {brief(err.get('input'))})",
                            fix="see 'archcalc layer --help'") from None


_MODEL_FIXES = {"conv2d": "give --filters a multiple of --groups"}


def chain(name: str, input_shape: tuple[int, ...], layers: Iterable) -> Network:
    """A network that applies `layers` (layer models, each with a name) one after another."""
    leaves = tuple(Leaf((spec.name,), spec) for spec in layers)
    return Network(name, tuple(input_shape), Sequence((), leaves, "network"))


def positive(**values: int | None) -> None:
    """Raise one clear line for the first option that is not a positive integer."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ArchcalcError(f"--{name.replace('_', '-')} must be a positive integer "
                                f"(got {value})", fix=f"e.g. --{name.replace('_', '-')} 3")


def reason(exc: ArchcalcError) -> str:
    """Why a spec does not fit, short enough for a table cell: the layer and the numbers."""
    return (f"layer '{elide(exc.layer)}': " if exc.layer else "") + exc.message


def need_chw(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ArchcalcError(f"{what} needs a C×H×W input, got {fmt_shape(shape)}",
                            fix="e.g. --input 3x224x224")
    return shape  # type: ignore[return-value]


# ---- factors of a convolution's products -----------------------------------------------------
def product_text(factors: list[str]) -> str:
    return "·".join(factors)


@dataclass(frozen=True)
class ConvTerms:
    """The factors of one convolution's MACs and weights, as the notes write them.

    MACs    = H_out·W_out·C_out·K_h·K_w·C_in/groups   (K_h·K_w omitted for a 1×1)
    weights = K_h·K_w·C_in/groups·C_out (+ C_out biases)
    """

    mac_factors: list[str]
    weight_factors: list[str]
    biases: int
    macs: int
    weights: int

    @property
    def params(self) -> int:
        return self.weights + self.biases

    def macs_text(self) -> str:
        return f"{product_text(self.mac_factors)} = {self.macs:,}"

    def params_text(self) -> str:
        bias = f" + {self.biases}" if self.biases else ""
        return f"{product_text(self.weight_factors)}{bias} = {self.params:,}"


def conv_terms(spec, row: Row) -> ConvTerms:
    """Write out the products behind a conv2d row; checks they give the row's numbers."""
    c_in = row.input_shape[0]
    c_out, h_out, w_out = row.output_shape
    kh, kw = pair(spec.kernel)
    g = spec.groups
    per_group = f"({c_in}/{g})" if g > 1 else str(c_in)
    kernel = [] if (kh, kw) == (1, 1) else [str(kh), str(kw)]
    mac_factors = [str(h_out), str(w_out), str(c_out)] + kernel + [per_group]
    weight_factors = kernel + [per_group, str(c_out)]
    macs = h_out * w_out * c_out * kh * kw * (c_in // g)
    weights = kh * kw * (c_in // g) * c_out
    biases = c_out if spec.bias else 0
    # The calculator is the source of truth; the text must multiply out to its numbers.
    assert macs == row.macs and weights + biases == row.params, (row.name, macs, row.macs)
    return ConvTerms(mac_factors, weight_factors, biases, macs, weights)


# ---- step-by-step explanations ---------------------------------------------------------------
@dataclass
class Explanation:
    title: str
    lines: list[str]
    analysis: Analysis

    @property
    def row(self) -> Row:
        return self.analysis.rows[-1]

    def text(self) -> str:
        return "\n".join([self.title] + self.lines)


def _size_lines(dims: tuple[Dim, Dim], out_shape: tuple[int, ...]) -> list[str]:
    """'H and W: (227 − 11 + 2·0)/4 + 1 = 55 → 96×55×55', one line per axis when they differ."""
    lines = []
    spans = {(d.dilation, d.kernel, d.span) for d in dims if d.span != d.kernel}
    if spans:
        lines.append("dilated kernel span F' = D·(F − 1) + 1: " + ", ".join(
            f"{d}·({k} − 1) + 1 = {s}" for d, k, s in sorted(spans)))
    same = dims[0] == dims[1]
    axes = ([("H and W", dims[0], "row(s) and column(s)")] if same else
            [("H", dims[0], "row(s)"), ("W", dims[1], "column(s)")])
    for axis, dim, unit in axes:
        step = dim.formula()
        if not dim.divides:
            floor_out = (dim.padded - dim.span) // dim.stride + 1
            if not dim.ceil_mode:
                step += f" → floored: {dim.out}"
            elif dim.out > floor_out:
                step += f" → ceil mode rounds up: {dim.out}"
            else:
                step += f" → {dim.out} (ceil mode's extra window is dropped, see below)"
        lines.append(f"{axis}: {step}" + (f" → {fmt_shape(out_shape)}" if same else ""))
        lines += [f"  {text}" for text in uneven_text(dim, unit)]
    if not same:
        lines.append(f"→ {fmt_shape(out_shape)}")
    return lines


def uneven_text(dim: Dim, unit: str = "pixel(s)") -> list[str]:
    """Why a division is uneven and what it costs, from the Dim's own bookkeeping."""
    if dim.divides:
        return []
    reach = f"the {dim.out} windows reach ({dim.out} − 1)·{dim.stride} + {dim.span} = {dim.covered}"
    if dim.ceil_mode:
        floor_out = (dim.padded - dim.span) // dim.stride + 1
        if dim.out == floor_out:
            return [f"ceil mode's extra window would start at position {floor_out}·{dim.stride}"
                    f" = {floor_out * dim.stride}, in the trailing padding (the leading padding "
                    f"and the input end at position {dim.size + dim.pad_before - 1}), so it is "
                    "dropped (PyTorch's rule)"] + uneven_text(
                        Dim(dim.size, dim.kernel, dim.stride, dim.pad_before, dim.pad_after,
                            dim.dilation, False), unit)
        if dim.overhang:
            return [f"{reach}, {dim.overhang} past the {dim.padded} padded pixels: the last "
                    "window uses only the pixels inside; no input is lost"]
    if dim.span < dim.stride:
        return [f"{reach} of the {dim.padded} padded pixels; the kernel ({dim.span}) is smaller "
                f"than the stride ({dim.stride}), so windows skip pixels by design"]
    if dim.dropped_input:
        return [f"{reach} of the {dim.padded} padded pixels: the last {dim.dropped_input} "
                f"input {unit} are never seen"]
    return [f"{reach} of the {dim.padded} padded pixels: only padding is left uncovered, "
            "no input is lost"]


def _pads_text(dims: tuple[Dim, Dim], given=None) -> str:
    """'0', '1 before, 2 after', or per axis 'H 0, W 3'; 'same (…)' when derived."""
    def one(d: Dim) -> str:
        return (str(d.pad_before) if d.pad_before == d.pad_after
                else f"{d.pad_before} before, {d.pad_after} after")
    text = (one(dims[0]) if one(dims[0]) == one(dims[1])
            else f"H {one(dims[0])}, W {one(dims[1])}")
    return f"'same' ({text})" if given == "same" else text


def _memory_line(row: Row, dtype: str) -> str:
    values = math.prod(row.output_shape)
    return (f"activations: {product_text([str(v) for v in row.output_shape])} = {values:,} values "
            f"= {values * DTYPE_BYTES[dtype]:,} B in {dtype}")


def _rf_line(row: Row) -> str:
    (rh, rw), (jh, jw) = row.receptive_field, row.effective_stride
    apart = str(jh) if jh == jw else f"{jh}×{jw}"
    return f"receptive field: {rh}×{rw} input pixels per output, neighbouring outputs {apart} apart"


def explain_conv(input_shape: tuple[int, ...], *, filters: int, kernel, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True,
                 dtype: str = "float32") -> Explanation:
    """conv2d on a C×H×W input: output size per axis, weights, MACs, activations, RF."""
    need_chw(input_shape, "conv")
    spec = make_layer("conv2d", name="conv", filters=filters, kernel=kernel, stride=stride,
                      padding=padding, dilation=dilation, groups=groups, bias=bias)
    analysis = analyze(chain("conv", input_shape, [spec]), dtype=dtype)
    row = analysis.rows[0]
    dims = layer_math(Leaf(("conv",), spec), input_shape, "conv").dims
    terms = conv_terms(spec, row)
    kh, kw = pair(spec.kernel)
    sh, sw = pair(spec.stride)
    title = (f"conv2d: {filters} filters of {kh}×{kw}, stride "
             f"{sh if sh == sw else f'{sh}×{sw}'}, padding {_pads_text(dims, spec.padding)}"
             + (f", groups {groups}" if groups > 1 else "")
             + f", on {fmt_shape(input_shape)}")
    lines = ["output size (W − F + 2P)/S + 1:"]
    lines += [f"  {s}" for s in _size_lines(dims, row.output_shape)]
    lines += [
        f"weights: {terms.params_text()}    (K_h·K_w·C_in/groups·C_out"
        + (" + C_out biases)" if bias else ", no bias)"),
        f"MACs: {terms.macs_text()}    (H_out·W_out·C_out·K_h·K_w·C_in/groups; "
        f"FLOPs = 2·MACs = {2 * row.macs:,})",
        _memory_line(row, dtype),
        _rf_line(row),
    ]
    return Explanation(title, lines, analysis)


def explain_pool(input_shape: tuple[int, ...], *, kernel, stride=None, padding=0,
                 ceil_mode: bool = False, mode: str = "max",
                 dtype: str = "float32") -> Explanation:
    """Max or average pooling: output size (with ceil mode), no weights, no MACs."""
    need_chw(input_shape, "pool")
    kind = "maxpool" if mode == "max" else "avgpool"
    spec = make_layer(kind, name="pool", kernel=kernel, stride=stride, padding=padding,
                      ceil_mode=ceil_mode)
    analysis = analyze(chain("pool", input_shape, [spec]), dtype=dtype)
    row = analysis.rows[0]
    dims = layer_math(Leaf(("pool",), spec), input_shape, "pool").dims
    kh, kw = pair(spec.kernel)
    sh, sw = spec.strides
    title = (f"{kind}: {kh}×{kw}, stride {sh if sh == sw else f'{sh}×{sw}'}, padding "
             f"{_pads_text(dims, spec.padding)}{', ceil mode' if ceil_mode else ''}, on {fmt_shape(input_shape)}")
    rule = "⌈(W − F + 2P)/S⌉ + 1 (ceil mode)" if ceil_mode else "(W − F + 2P)/S + 1"
    lines = [f"output size {rule}:"] + [f"  {s}" for s in _size_lines(dims, row.output_shape)]
    lines += [
        "weights: none (pooling has no parameters)",
        f"MACs: none ({'a max' if mode == 'max' else 'a mean'} over {kh}·{kw} = {kh * kw} "
        "values per output; pooling is not counted as MACs)",
        _memory_line(row, dtype),
        _rf_line(row),
    ]
    return Explanation(title, lines, analysis)


def explain_dense(input_shape: tuple[int, ...], *, units: int, bias: bool = True,
                  dtype: str = "float32") -> Explanation:
    """Dense on N features (a C×H×W input is flattened first): weights and MACs."""
    layers = []
    lines = []
    if len(input_shape) == 3:
        layers.append(make_layer("flatten", name="flatten"))
        lines.append(f"flatten: {product_text([str(v) for v in input_shape])} = "
                     f"{math.prod(input_shape):,} features")
    layers.append(make_layer("dense", name="dense", units=units, bias=bias))
    analysis = analyze(chain("dense", input_shape, layers), dtype=dtype)
    row = analysis.rows[-1]
    n_in = row.input_shape[0]
    weights = n_in * units
    assert weights + (units if bias else 0) == row.params and weights == row.macs
    title = (f"dense: {units} units on {fmt_shape(input_shape)}"
             + (" features" if len(input_shape) == 1 else ""))
    lines += [
        f"output: {units}",
        f"weights: {n_in}·{units}" + (f" + {units}" if bias else "")
        + f" = {row.params:,}    (in·out" + (" + out biases)" if bias else ", no bias)"),
        f"MACs: {n_in}·{units} = {row.macs:,}    (in·out; FLOPs = 2·MACs = {2 * row.macs:,})",
        f"activations: {units:,} values = {units * DTYPE_BYTES[dtype]:,} B in {dtype}",
    ]
    return Explanation(title, lines, analysis)
