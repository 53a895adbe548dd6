"""The receptive field of the calculator, proved on the executor's gradients.

An output pixel's receptive field is the set of input pixels its value depends on: those
where the gradient of that one output (dy one-hot) is nonzero. With every weight and every
input value positive and no nonlinearity whose slope can vanish (sigmoid's never does), no
product of the chain rule is zero and no sum cancels, so the nonzero gradient is exactly the
dependency. The calculator's figure is the
most input rows (and columns) any output pixel sees: the maximum over all output positions,
borders included, of the rows (columns) holding a nonzero gradient.

All output pixels are taken at once: a batch of N copies of the input, sample n carrying the
one-hot dy of position n (the samples do not interact: no batch norm here).
"""

from __future__ import annotations

import numpy as np
import pytest

from archcalc.calc import analyze
from archcalc.nn.network import build
from archcalc.spec.load import load

CONV3 = "  - conv: {filters: 1, kernel: 3, padding: 1}\n"

# (input H = W, the layers, the calculator's field as the comment derives it)
CHAINS = {
    # nearest ×2 then a 3×3: three neighbouring upsampled pixels come from 2 input pixels.
    "nearest_x2_conv3": (6, "  - upsample: 2\n" + CONV3, 2),
    # a 2×2 stride-2 up-convolution: output o gets input ⌊o/2⌋ alone.
    "deconv_k2_s2": (6, "  - deconv: {filters: 1, kernel: 2, stride: 2}\n", 1),
    "deconv_k2_s2_conv3": (6, "  - deconv: {filters: 1, kernel: 2, stride: 2}\n" + CONV3, 2),
    # 3×3 stride 2: an even output gets inputs o/2 − 1 and o/2 (⌈3/2⌉ = 2); a 3×3 after: 3.
    "deconv_k3_s2": (6, "  - deconv: {filters: 1, kernel: 3, stride: 2}\n", 2),
    "deconv_k3_s2_conv3": (6, "  - deconv: {filters: 1, kernel: 3, stride: 2, padding: 1,"
                              " output_padding: 1}\n" + CONV3, 3),
    # bilinear ×2 reads two neighbours (but the clamped corner row reads one); a 3×3 after: 3.
    "bilinear_x2": (6, "  - upsample: {scale: 2, mode: bilinear}\n", 2),
    "bilinear_x2_conv3": (6, "  - upsample: {scale: 2, mode: bilinear}\n" + CONV3, 3),
    "bilinear_corners_conv3": (7, "  - upsample: {scale: 2, mode: bilinear, align_corners: true}\n"
                                  + CONV3, 3),
    # adaptive 7 → 3: bins [0,3) [2,5) [4,7); a 2-wide conv after it sees [0,5) or [2,7).
    "adaptive_7_to_3": (7, "  - adaptive_avgpool: 3\n", 3),
    "adaptive_7_to_3_conv2": (7, "  - adaptive_avgpool: 3\n"
                                 "  - conv: {filters: 1, kernel: 2}\n", 5),
    # a 3×3, ×3, then a 2-wide conv: 3 + 1·1/3 → 4.
    "conv3_x3_conv2": (6, CONV3 + "  - upsample: 3\n  - conv: {filters: 1, kernel: 2}\n", 4),
    # a squeeze-and-excitation product: the gate's mean reads the whole 6×6 map.
    "se_gate": (6, "  - mul:\n    - []\n    - [gap, sigmoid]\n", 6),
    # a 3×3 stride 2 and back up by a 4×4 stride-2 up-convolution: 3 + (2 − 1)·2 = 5.
    "down_up": (9, "  - conv: {filters: 1, kernel: 3, stride: 2}\n"
                   "  - deconv: {filters: 1, kernel: 4, stride: 2, padding: 1}\n", 5),
}


def _measure(tmp_path, size: int, layers: str):
    """(calculator's row, the most rows and columns of input one output pixel depends on)."""
    path = tmp_path / "net.yaml"
    path.write_text(f"name: rf\ninput: [1, {size}, {size}]\nlayers:\n{layers}", encoding="utf-8")
    network = load(str(path))
    row = analyze(network).rows[-1]
    rng = np.random.default_rng(0)
    model = build(network, dtype="float64")
    for value in model.params.values():
        value[...] = rng.uniform(0.5, 1.5, value.shape)  # positive: nothing cancels
    channels, height, width = row.output_shape
    count = height * width
    x = np.repeat(rng.uniform(0.5, 1.5, (1, 1, size, size)), count, axis=0)
    model.forward(x, training=True)
    dy = np.zeros((count, channels, height, width))
    dy[np.arange(count), 0, np.arange(count) // width, np.arange(count) % width] = 1.0
    seen = model.backward(dy)[:, 0] != 0                     # (count, size, size)
    rows = seen.any(axis=2).sum(axis=1)                      # input rows each output sees
    cols = seen.any(axis=1).sum(axis=1)
    return row, int(rows.max()), int(cols.max())


@pytest.mark.parametrize("case", sorted(CHAINS))
def test_receptive_field_is_what_one_output_pixel_depends_on(tmp_path, case):
    size, layers, expected = CHAINS[case]
    row, rows, cols = _measure(tmp_path, size, layers)
    assert row.receptive_field == (expected, expected)   # the calculator, as derived above
    assert (rows, cols) == (expected, expected)          # the executor's gradients


def test_fractional_windows_that_fall_evenly_are_overcounted(tmp_path):
    """The recurrence is an upper bound: after ×2, a 2×2 stride-2 conv reads the two copies of
    one input pixel (1 pixel), but r = 1 + (2 − 1)·1/2 = 3/2 rounds up to 2: where the
    fractional windows fall depends on the phase, which the recurrence does not track."""
    row, rows, cols = _measure(tmp_path, 6, "  - upsample: 2\n"
                                             "  - conv: {filters: 1, kernel: 2, stride: 2}\n")
    assert (rows, cols) == (1, 1)
    assert row.receptive_field == (2, 2)
