"""Numerical gradient check of a whole network's backward pass, in float64.

For a fixed random input x (N, *input_shape) and a fixed random R of the output's shape the
scalar loss is L = Σ y·R, so dL/dy = R. The analytic gradients come from one backward(R);
each numerical one is the five-point centred difference (Abramowitz & Stegun 25.3.6)
    dL/dθ_i ≈ (8·(L(θ_i + h) − L(θ_i − h)) − (L(θ_i + 2h) − L(θ_i − 2h))) / 12h
whose truncation error is O(h⁴): with h = 1e-3 both truncation and float64 round-off stay
far below 1e-6, where the two-point formula at any h leaves one of them near 1e-6 for small
gradients. Outputs are subtracted before being weighted by R, so unchanged outputs cancel
exactly.

Relative error of one array: max_i |a_i − n_i| / max(|a_i|, |n_i|, floor), where the floor
is FLOOR_FRACTION of the largest analytic gradient anywhere in the network: an entry whose
true gradient is 0 (the bias of a conv before a batch norm) is then judged against the
network's gradient scale instead of dividing round-off by round-off.

The step starts at STEP and halves (each halving costs two more forward passes, since the
outputs at ±h are reused) until two successive estimates agree to CONVERGED·tolerance by
Richardson's error bound, or MIN_STEP is reached; strongly curved functions (batch norm over
two values, say) thus get the small step they need and smooth ones stop after six passes.

Piecewise layers (relu, max pooling, maxout, leaky relu, elu) have kinks; a nudge that
crosses one gives a meaningless difference. Every forward pass compares the layers'
kink_state with the unperturbed pass; a step whose points cross a kink is not used, and an
entry whose every step crossed one is counted as skipped and reported (an array with no
compared entry fails), never passed silently. Dropout reuses one fixed mask so the function
is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.nn.network import Model, build
from archcalc.spec.tree import Network

STEP = 1e-3  # the first step; halved while two levels disagree or a kink is crossed
MIN_STEP = 1e-6  # below this, float64 round-off outweighs the O(h⁴) truncation
CONVERGED = 0.1  # two levels agree when the error bound is a tenth of the tolerance
FLOOR_FRACTION = 1e-3
DEFAULT_TOLERANCE = 1e-6


@dataclass
class GradResult:
    """One array's check: a parameter of a layer, or the network's input."""

    layer: str  # layer display name; "(input)" for the network input
    param: str  # "weight", "bias", ...; "input" for the network input
    error: float  # max relative error over the checked entries
    checked: int  # entries compared
    size: int  # entries in the array
    skipped: int  # entries whose every step crossed a kink
    ok: bool  # error < tolerance and at least one entry compared


class _Loss:
    """L = Σ y·R on a float64 model, with the kink states of the unperturbed pass."""

    def __init__(self, model: Model, x: np.ndarray, weights: np.ndarray) -> None:
        self.model, self.x, self.weights = model, x, weights
        self.layers = list(model.layers.values())
        self.y0 = model.forward(x, training=True)
        self.state0 = self.states()

    def states(self) -> list:
        return [layer.kink_state() for layer in self.layers]

    def crossed(self) -> bool:
        for before, after in zip(self.state0, self.states()):
            if before is not None and not np.array_equal(before, after):
                return True
        return False

    def output(self, array: np.ndarray, index: tuple, value: float) -> np.ndarray | None:
        """The output with array[index] = value, or None if that crossed a kink."""
        array[index] = value
        y = self.model.forward(self.x, training=True)
        return None if self.crossed() else y

    def numerical(self, array: np.ndarray, index: tuple, floor: float,
                  tolerance: float) -> float | None:
        """dL/d array[index] by five-point differences at steps STEP, STEP/2, STEP/4, ...

        Halving the step reuses the outputs at ±h, so each further level costs two forward
        passes. Two successive levels that agree (Richardson: the finer one's error is about
        |D(h) − D(h/2)|/15 for an O(h⁴) formula) end the search; a level that crossed a kink
        is skipped. Returns the estimate with the smallest error bound, None if every level
        crossed a kink."""
        original = array[index]
        outputs: dict[float, np.ndarray | None] = {}

        def at(offset: float):
            if offset not in outputs:
                outputs[offset] = self.output(array, index, original + offset)
            return outputs[offset]

        def five_point(h: float) -> float | None:
            ys = [at(h), at(-h), at(2 * h), at(-2 * h)]
            if any(y is None for y in ys):
                return None
            combined = 8 * (ys[0] - ys[1]) - (ys[2] - ys[3])
            return float(np.sum(combined * self.weights) / (12 * h))

        best, best_bound, previous, single = None, np.inf, None, None
        step = STEP
        try:
            while step >= MIN_STEP:
                value = five_point(step)
                single = value if value is not None else single
                if value is not None and previous is not None:
                    bound = abs(previous - value) / 15
                    if bound < best_bound:
                        best, best_bound = value, bound
                    if bound <= CONVERGED * tolerance * max(abs(value), floor):
                        return value
                previous = value
                step /= 2
        finally:
            array[index] = original
        return best if best is not None else single


def relative_error(analytic: np.ndarray, numerical: np.ndarray, scale: float) -> float:
    """max_i |a_i − n_i| / max(|a_i|, |n_i|, FLOOR_FRACTION·scale) (see the module docstring);
    scale is the largest gradient in the network."""
    if analytic.size == 0:
        return 0.0
    floor = max(FLOOR_FRACTION * scale, np.finfo(np.float64).tiny)
    denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numerical)), floor)
    return float((np.abs(analytic - numerical) / denom).max())


def _indices(size: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if samples is None or samples >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, samples, replace=False))


def _check_array(loss: _Loss, array: np.ndarray, analytic: np.ndarray, samples, rng,
                 layer: str, param: str, tolerance: float, scale: float) -> GradResult:
    flat_index = _indices(array.size, samples, rng)
    got_a, got_n, skipped = [], [], 0
    floor = FLOOR_FRACTION * scale
    for flat in flat_index:
        index = np.unravel_index(flat, array.shape)
        value = loss.numerical(array, index, floor, tolerance)
        if value is None:
            skipped += 1
            continue
        got_a.append(analytic[index])
        got_n.append(value)
    error = relative_error(np.array(got_a), np.array(got_n), scale)
    # an array none of whose entries could be compared has not passed
    ok = error < tolerance and (len(got_a) > 0 or array.size == 0)
    return GradResult(layer, param, error, len(got_a), array.size, skipped, ok)


def _need_finite(y: np.ndarray, name: str) -> None:
    """Differences of inf or nan mean nothing: a network whose outputs overflow (a product of
    many branches, say) is refused in one line rather than reported as a failed check."""
    if not np.isfinite(y).all():
        raise ArchcalcError(f"'{name}' gives outputs that are not finite (they overflow "
                            "float64) on gradcheck's random input, so no gradient can be "
                            "checked", fix="keep the values finite: normalise between layers "
                                           "that multiply (mul merges) or grow the values")


def reads_token_ids(network: Network) -> bool:
    """Whether the network's input is token ids: its first layer is an embedding."""
    first = next(network.leaves(), None)
    return first is not None and first.kind == "embedding"


def gradcheck(network: Network, *, batch: int = 2, seed: int = 0,
              tolerance: float = DEFAULT_TOLERANCE, samples: int | None = None,
              init: str = "he",
              draw_input: Callable[[np.random.Generator], np.ndarray] | None = None
              ) -> list[GradResult]:
    """Check every parameter (and the input) of `network` at its input shape.

    samples: entries checked per array (None: all of them; each costs six or more forward
    passes).
    draw_input(rng): the batch x (batch, *input_shape), float64, drawn from gradcheck's
    generator; by default standard normal values. A network that reads token ids needs ids
    (archcalc.check.check_input draws them; the executor does not import the checker), and
    its input, ids, has no gradient to check.
    Returns one GradResult per parameter array, in execution order, then one for the input
    (none for token ids).
    """
    ids = reads_token_ids(network)
    if ids and draw_input is None:
        raise ArchcalcError(f"'{network.name}' reads token ids (its first layer is an "
                            "embedding), and standard normal values are not ids",
                            fix="pass draw_input, e.g. lambda rng: archcalc.check.check_input("
                                "network, rng, batch, 'float64')")
    model = build(network, seed=seed, dtype="float64", init=init)
    model.fix_dropout(True)
    rng = np.random.default_rng([seed, 2])
    shape = (batch,) + tuple(network.input_shape)
    x = (np.asarray(draw_input(rng), dtype=np.float64) if draw_input is not None
         else rng.standard_normal(shape))
    if x.shape != shape:
        raise ValueError(f"draw_input gave an array of shape {x.shape}, not {shape}")
    saved = {k: v.copy() for k, v in model.buffers.items()}
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # said below, in one line
            y = model.forward(x, training=True)  # draws the dropout masks, kept from here on
        _need_finite(y, network.name)
        weights = rng.standard_normal(y.shape)
        loss = _Loss(model, x, weights)
        model.forward(x, training=True)
        dx = model.backward(weights, input_grad=not ids)
        analytic = {k: v.copy() for k, v in model.grads.items()}
        scale = max([float(np.abs(dx).max()) if not ids else 0.0]
                    + [float(np.abs(g).max()) for k, g in analytic.items()
                       if g.size and k not in model.frozen])
        results = []
        for key, array in model.params.items():
            if key in model.frozen:
                continue
            layer, param = key.rsplit(".", 1)
            results.append(_check_array(loss, array, analytic[key], samples, rng, layer, param,
                                        tolerance, scale))
        if not ids:  # a nudged id is no id: token ids have no gradient
            results.append(_check_array(loss, x, dx, samples, rng, "(input)", "input",
                                        tolerance, scale))
    finally:
        for k, v in saved.items():
            model.buffers[k][...] = v
    return results
