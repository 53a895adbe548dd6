"""The formulas, one small function each, with messages that echo the numbers.

Output size along one spatial dimension (cs231n's notation, W input, F kernel, P padding,
S stride):  out = (W − F + 2P)/S + 1, floored (or ceiled for ceil-mode pooling).
With dilation D the kernel spans F' = D·(F − 1) + 1. With asymmetric padding 2P is
P_before + P_after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class _Axis:
    """What a convolution and a transposed one share along one spatial dimension."""

    size: int
    kernel: int
    stride: int
    pad_before: int = 0
    pad_after: int = 0
    dilation: int = 1

    @property
    def span(self) -> int:
        """The kernel's extent with dilation: D·(F − 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class Dim(_Axis):
    """One spatial dimension of one sliding-window layer."""

    ceil_mode: bool = False

    def kernel_text(self) -> str:
        """'kernel 5', or 'kernel 7 dilated by 2 spans 13' (the span alone would read as a
        kernel size the spec never wrote)."""
        if self.dilation == 1:
            return f"kernel {self.kernel}"
        return f"kernel {self.kernel} dilated by {self.dilation} spans {self.span},"

    @property
    def padded(self) -> int:
        return self.size + self.pad_before + self.pad_after

    @property
    def exact(self) -> Fraction:
        """(W − F' + P_b + P_a)/S + 1 as an exact fraction."""
        return Fraction(self.padded - self.span, self.stride) + 1

    @property
    def out(self) -> int:
        """Floor, or PyTorch's ceil mode: round up, but the last window must start inside
        the input or its leading padding (else it is dropped)."""
        numerator = self.padded - self.span
        if not self.ceil_mode:
            return numerator // self.stride + 1
        out = -(-numerator // self.stride) + 1
        if (out - 1) * self.stride >= self.size + self.pad_before:
            out -= 1
        return out

    @property
    def divides(self) -> bool:
        return (self.padded - self.span) % self.stride == 0

    @property
    def covered(self) -> int:
        """How far into the padded input the windows reach."""
        return (self.out - 1) * self.stride + self.span

    @property
    def dropped_input(self) -> int:
        """Input pixels at the end that no window covers (trailing padding excluded)."""
        return max(0, self.padded - self.covered - self.pad_after)

    @property
    def dropped_padding(self) -> int:
        return max(0, min(self.pad_after, self.padded - self.covered))

    @property
    def overhang(self) -> int:
        """Ceil mode: how far the last window reaches past the padded input."""
        return max(0, self.covered - self.padded)

    def formula(self) -> str:
        """'(224 − 11 + 2·0)/4 + 1 = 54.25' (or '≈' for a repeating fraction)."""
        kernel = str(self.span)
        pad = _pad_text(self.pad_before, self.pad_after, "+")
        value = self.exact
        text = _fraction_text(value)
        return f"({self.size} − {kernel} + {pad})/{self.stride} + 1 {text}"


@dataclass(frozen=True)
class TransposedDim(_Axis):
    """One spatial dimension of a transposed convolution (PyTorch's ConvTranspose2d): every
    input pixel scatters a kernel of span D·(F − 1) + 1 placed S apart, the padding crops the
    result and output_padding adds rows/columns at the end.
    out = (W − 1)·S − P_before − P_after + D·(F − 1) + output_padding + 1."""

    output_padding: int = 0

    @property
    def out(self) -> int:
        return ((self.size - 1) * self.stride - self.pad_before - self.pad_after
                + self.span + self.output_padding)

    @property
    def sources(self) -> int:
        """The widest run of input pixels one output pixel receives from (first to last,
        as a dilated kernel's span counts its holes). Output o gets input i through tap k
        when i·S + k·D = o: the taps that reach one output are those k of one residue class,
        every S/g-th (g = gcd(D, S)), and neighbouring ones come from inputs D/g apart; the
        class starting at k = 0 holds the most, ⌈F/(S/g)⌉. So the run is
        (⌈F·g/S⌉ − 1)·D/g + 1; with D = 1 that is ⌈F/S⌉. ⌈span/S⌉ would overcount some
        dilated kernels: kernel 2, stride 2, dilation 3 sends an input's two taps to outputs
        of different parity, so each output hears one input, not ⌈4/2⌉ = 2."""
        g = math.gcd(self.dilation, self.stride)
        taps = -(-self.kernel * g // self.stride)
        return (taps - 1) * (self.dilation // g) + 1

    def formula(self) -> str:
        """'(7 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 14'."""
        pad = _pad_text(self.pad_before, self.pad_after, "−")
        return (f"({self.size} − 1)·{self.stride} − {pad} + {self.dilation}·({self.kernel} − 1) "
                f"+ {self.output_padding} + 1 = {self.out}")


def adaptive_largest_bin(size: int, out: int) -> int:
    """The largest bin of adaptive pooling from `size` to `out` positions, PyTorch's bins
    [⌊i·size/out⌋, ⌈(i+1)·size/out⌉). A bin holds ⌈f + size/out⌉ pixels where f is the
    fractional part of i·size/out; f reaches 1 − g/out (g = gcd(size, out)), so with
    r = size mod out the largest is ⌊size/out⌋ + 2 when r > g, + 1 when r = g > 0, + 0 when
    r = 0 (closed form: out may be 10⁹)."""
    whole, rest = divmod(size, out)
    if rest == 0:
        return whole
    return whole + (2 if rest > math.gcd(size, out) else 1)


def adaptive_largest_step(size: int, out: int) -> int:
    """The largest distance between the starts of two neighbouring bins (⌊(i+1)·size/out⌋ −
    ⌊i·size/out⌋, each ⌊size/out⌋ or ⌈size/out⌉). Of all `out` steps up to ⌊out·size/out⌋ =
    size, r = size mod out are the larger; the last one (to `size`, no bin starts there) is
    always one of them, so a real step is the larger only when r >= 2. One bin: the whole
    map (like global pooling)."""
    if out == 1:
        return size
    whole, rest = divmod(size, out)
    return whole + (1 if rest >= 2 else 0)


def _pad_text(before: int, after: int, sign: str) -> str:
    """The padding term of a formula: '2·1' when both sides pad alike, else '1 + 2' (added
    by a convolution) or '1 − 2' (cropped by a transposed one)."""
    return f"2·{before}" if before == after else f"{before} {sign} {after}"


def _fraction_text(value: Fraction) -> str:
    """'= 54.25' when the fraction has a finite decimal form (printed exactly, in integer
    arithmetic, whatever its size), else '≈ 3.667'."""
    if value.denominator == 1:
        return f"= {value.numerator}"
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    digits = max(twos, fives) if den == 1 else 3
    scaled = value * 10**digits
    rounded = round(scaled)  # exact when den == 1
    sign = "-" if rounded < 0 else ""
    whole, frac = divmod(abs(rounded), 10**digits)
    text = f"{sign}{whole}.{frac:0{digits}d}"
    return f"= {text.rstrip('0').rstrip('.')}" if den == 1 else f"≈ {text}"


def receptive_step(rf, jump, span: int, stride):
    """One layer of the receptive-field recurrence (Araujo et al. 2019, Distill):
    r_out = r_in + (F' − 1)·j_in,  j_out = j_in·S.

    F' is how many of its input pixels one output pixel reads (at most); S may be a
    Fraction below 1 (upsampling, transposed convolution), and then so may the jump and the
    field: an output pixel k apart from another is k·j input pixels away, so r is an upper
    bound whose ceiling is the most input pixels an output pixel can see."""
    return rf + (span - 1) * jump, jump * stride


def whole(value):
    """A Fraction that is a whole number as an int (3, not Fraction(3, 1)); others as given."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return value


def ceil_int(value) -> int:
    """⌈value⌉ of an int or a Fraction."""
    return -(-value.numerator // value.denominator) if isinstance(value, Fraction) else value


def prod(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape)


def channels_last_hint(shape: tuple[int, ...]) -> str | None:
    """The fix for a shape error when the input looks channels-last (28×28×1, 224×224×3, as
    Keras and NumPy images write it): archcalc reads C×H×W, so 28×28×1 is 28 channels of
    28×1 and the first kernel does not fit. None when the shape does not look like that."""
    if len(shape) != 3:
        return None
    h, w, c = shape
    if c not in (1, 3) or h <= 4 * c or w <= 4 * c:
        return None
    return (f"archcalc reads the input as C×H×W and {h}×{w}×{c} looks like H×W×C "
            f"(channels last): use {c}x{h}x{w}")
