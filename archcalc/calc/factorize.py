"""Factorisation what-ifs: one k×k convolution against smaller ones that see as much.

For C_in → F channels on a C_in×H×W input, stride 1, 'same' padding, a ReLU after each conv:

    k×k              one conv                       receptive field k, 1 nonlinearity
    n × 3×3          n = (k − 1)/2 stacked 3×3s     receptive field 1 + 2n = k, n nonlinearities
                     (5×5 → 2, 7×7 → 3; Simonyan & Zisserman 2014, Section 2.3)
    k×1 + 1×k        asymmetric pair                receptive field k, 2 nonlinearities
                     (Szegedy et al. 2015, Rethinking the Inception architecture, Section 3.2)

Intermediate layers have `mid` channels (default F). Every number is the calculator's: each
variant is a small network run through `analyze`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archcalc.calc.analyze import Analysis, Row, analyze
from archcalc.calc.explain import ConvTerms, chain, conv_terms, make_layer, need_chw, positive
from archcalc.errors import ArchcalcError
from archcalc.spec.layers import pair
from archcalc.spec.tree import Leaf


@dataclass
class Variant:
    name: str
    analysis: Analysis

    @property
    def convs(self) -> list[tuple[Leaf, Row]]:
        leaves = {leaf.path: leaf for leaf in self.analysis.network.leaves()}
        return [(leaves[r.path], r) for r in self.analysis.rows if r.type == "conv2d"]

    @property
    def params(self) -> int:
        return self.analysis.totals.params

    @property
    def macs(self) -> int:
        return self.analysis.totals.macs

    @property
    def activations(self) -> int:
        """Values of the tensors the variant makes (its input not included)."""
        return self.analysis.totals.layer_activations

    @property
    def receptive_field(self) -> tuple[int, int]:
        return self.analysis.rows[-1].receptive_field

    @property
    def nonlinearities(self) -> int:
        return sum(1 for r in self.analysis.rows if r.type == "relu")

    def terms(self) -> list[ConvTerms]:
        return [conv_terms(leaf.spec, row) for leaf, row in self.convs]

    def as_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "macs": self.macs,
                "activations": self.activations,
                "receptive_field": list(self.receptive_field),
                "nonlinearities": self.nonlinearities,
                "layers": [{"name": r.name, "kernel": list(pair(leaf.spec.kernel)),
                            "input_shape": list(r.input_shape),
                            "output_shape": list(r.output_shape), "params": r.params,
                            "macs": r.macs} for leaf, r in self.convs]}


@dataclass
class Factorization:
    input_shape: tuple[int, ...]
    kernel: int
    filters: int
    mid: int
    variants: list[Variant]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"input_shape": list(self.input_shape), "kernel": self.kernel,
                "filters": self.filters, "mid": self.mid,
                "variants": [v.as_dict() for v in self.variants], "notes": list(self.notes)}


# Where both factorisations live in a real network: the bundled Inception-v3 (torchvision's
# names; tests/test_columns.py checks, through the kernel column, that these layers exist with
# these kernels).
IN_A_NETWORK = (
    "In a network: `archcalc summary inception_v3`. Mixed_5b, Mixed_5c and Mixed_5d (block "
    "inception_a) see a 5×5 field with two stacked 3×3s (branch3x3dbl_2, branch3x3dbl_3); "
    "Mixed_6b to Mixed_6e (block inception_c) see a 7×7 field with 1×7 then 7×1 "
    "(branch7x7_2, branch7x7_3), and twice over (branch7x7dbl_2 to branch7x7dbl_5).")


def _variant(name: str, input_shape, convs: list[tuple[str, object, int]], bias: bool) -> Variant:
    """convs: (layer name, kernel, filters) applied in order, each followed by a ReLU."""
    layers = []
    for index, (layer, kernel, filters) in enumerate(convs, start=1):
        layers.append(make_layer("conv2d", name=layer, filters=filters, kernel=kernel,
                                 padding="same", bias=bias))
        layers.append(make_layer("relu", name=f"relu{index}"))
    return Variant(name, analyze(chain(name, input_shape, layers)))


# The most 3×3 convolutions the stack variant may have (a kernel of at most 2·1000 + 1):
# each is a layer the calculator builds and a row the output lists, and a 10⁹ kernel would
# ask for 5·10⁸ of them (measured before this bound: kernel 20,000,001 took 2.5 GB; a
# 1,000-layer stack takes well under a second). Real factorisations stack 2 to 3.
MAX_STACK = 1000


def _check_stack(kernel: int) -> None:
    n = (kernel - 1) // 2
    if kernel % 2 and n > MAX_STACK:
        raise ArchcalcError(f"--kernel {kernel:,} would be compared with a stack of {n:,} 3×3 "
                            f"convolutions; archcalc builds at most {MAX_STACK:,}",
                            fix=f"give --kernel at most {2 * MAX_STACK + 1:,}")


def factorize(input_shape: tuple[int, ...], *, kernel: int, filters: int,
              mid: int | None = None, bias: bool = True) -> Factorization:
    _, h, w = need_chw(input_shape, "factorize")
    positive(kernel=kernel, filters=filters, mid=mid)
    if kernel < 2:
        raise ArchcalcError("--kernel 1: a 1×1 convolution has nothing to factorise",
                            fix="give --kernel 5 or 7")
    if kernel > h or kernel > w:
        raise ArchcalcError(f"--kernel {kernel} is larger than the {h}×{w} input",
                            fix=f"use a kernel of at most {min(h, w)}, or a larger --input")
    _check_stack(kernel)  # before any layer is built
    mid = filters if mid is None else mid
    k = kernel
    variants = [_variant(f"{k}×{k}", input_shape, [("conv", k, filters)], bias)]
    notes = []
    if k % 2 == 0:
        notes.append(f"no stack of 3×3s sees exactly {k}×{k} (n stacked 3×3s see 2n + 1)")
    elif k == 3:
        notes.append("a 3×3 is already the smallest stack (2n + 1 = 3 for n = 1)")
    else:
        n = (k - 1) // 2
        stack = [(f"conv{i}", 3, mid if i < n else filters) for i in range(1, n + 1)]
        variants.append(_variant(f"{n} × 3×3", input_shape, stack, bias))
    asym = [("conv1", (k, 1), mid), ("conv2", (1, k), filters)]
    variants.append(_variant(f"{k}×1 + 1×{k}", input_shape, asym, bias))
    notes.append(IN_A_NETWORK)
    return Factorization(tuple(input_shape), k, filters, mid, variants, notes)
