"""Weight initialisers, drawn from a seeded generator.

He (Kaiming) normal: N(0, 2/fan_in)                    He et al. 2015, "Delving deep into rectifiers"
Xavier (Glorot) uniform: U(−a, a), a = √(6/(fan_in + fan_out))   Glorot & Bengio 2010
LeCun normal: N(0, 1/fan_in)                           LeCun et al. 1998, "Efficient BackProp"

Fans follow PyTorch's convention: for a conv weight (C_out, C_in/groups, kH, kW),
fan_in = C_in/groups·kH·kW and fan_out = C_out·kH·kW; for a dense weight (out, in),
fan_in = in and fan_out = out. Biases start at zero.
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ArchcalcError

INITS = ("he", "xavier", "lecun")


def initialise(kind: str, rng: np.random.Generator, shape: tuple[int, ...],
               fan_in: int, fan_out: int) -> np.ndarray:
    """An array of `shape` (float64; the caller casts) drawn by the named scheme."""
    if kind == "he":
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if kind == "xavier":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)
    if kind == "lecun":
        return rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)
    raise ArchcalcError(f"unknown initialiser '{kind}'", fix="use one of: " + ", ".join(INITS))
