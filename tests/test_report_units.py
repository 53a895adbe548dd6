"""human_bytes: binary units, exact (no float noise) however large the count."""

from __future__ import annotations

import pytest

from archcalc.report import human_bytes


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (553_430_176, "527.79 MiB"),
    (2**40, "1.00 TiB"), (3 * 2**50, "3.00 PiB"), (5 * 2**60, "5.00 EiB"),
    (2**70 - 1, "1024.00 EiB"),
    (4 * 10**36, "4.00 × 10^36 B"),  # a 10⁹ × 10⁹ dense layer's float32 weights, no noise
    (9_995 * 10**30, "1.00 × 10^34 B"),
])
def test_human_bytes(n, text):
    assert human_bytes(n) == text
