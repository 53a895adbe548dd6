"""Optimizers: SGD, momentum, Nesterov, Adagrad, RMSProp, Adam; gradient clipping by norm.

Each optimizer updates `params` in place from `grads` (dicts keyed by parameter name, the
executor's `model.params` / `model.grads`), skipping the names in `frozen`. The update rules
are the ones torch.optim implements (so runs can be compared step by step):

    SGD       p ← p − lr·g
    momentum  v ← μ·v + g;            p ← p − lr·v
    Nesterov  v ← μ·v + g;            p ← p − lr·(g + μ·v)
    Adagrad   G ← G + g²;             p ← p − lr·g / (√G + ε)            (Duchi et al. 2011)
    RMSProp   E ← ρ·E + (1−ρ)·g²;     p ← p − lr·g / (√E + ε)            (Hinton, lecture 6e)
    Adam      m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
              m̂ = m / (1−β1^t);  v̂ = v / (1−β2^t);  p ← p − lr·m̂ / (√v̂ + ε)  (Kingma & Ba 2015)

(The cs231n form v ← μv − lr·g; p ← p + v is the same as "momentum" while lr is constant.)
Weight decay lives in the loss (archcalc.nn.losses.penalty), not here.

`state_dict()` returns every slot as flat arrays (plus the step count) so that a checkpoint
can resume a run exactly; `load_state_dict()` puts them back.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.limits import echo


class Optimizer:
    """Base class: per-parameter slots (arrays shaped like the parameter) and a step count."""

    name = "optimizer"
    slots: tuple[str, ...] = ()

    def __init__(self, lr: float) -> None:
        if not lr > 0:
            raise ArchcalcError(f"learning rate must be > 0 (got {lr})", fix="e.g. --lr 0.01")
        self.lr = float(lr)
        self.t = 0                                   # steps taken so far
        self.state: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slots}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             frozen: Iterable[str] = ()) -> None:
        """One update of every parameter not in `frozen`, in place."""
        self.t += 1
        skip = set(frozen)
        for name, p in params.items():
            if name in skip or name not in grads:
                continue
            slots = {s: self._slot(s, name, p) for s in self.slots}
            self.update(p, grads[name].astype(p.dtype, copy=False), slots)

    def _slot(self, slot: str, name: str, p: np.ndarray) -> np.ndarray:
        table = self.state[slot]
        if name not in table:
            table[name] = np.zeros_like(p)
        return table[name]

    def update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """{"t": step count, "<slot>/<param name>": array, ...}: plain arrays for an .npz."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        for slot, table in self.state.items():
            for name, arr in table.items():
                out[f"{slot}/{name}"] = arr
        return out

    def load_state_dict(self, d: dict[str, np.ndarray],
                        params: dict[str, np.ndarray] | None = None) -> None:
        """Put back a state_dict(). With `params` (the model's), every slot is checked
        first: it belongs to a parameter, has its shape, holds finite real floats; the step
        count is a whole number >= 0. Nothing changes when a check fails."""
        t = _step_count(d.get("t", np.array(0)))
        state: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slots}
        for key, arr in d.items():
            if key == "t":
                continue
            slot, _, name = key.partition("/")
            if slot not in state:
                raise ArchcalcError(f"optimizer state has a slot '{echo(slot, 60)}' that "
                                    f"{self.name} does not use", fix="resume with the "
                                    "optimizer it was saved with")
            arr = np.asarray(arr)
            if params is not None:
                _check_slot(key, arr, params.get(name))
            state[slot][name] = np.array(arr, dtype=params[name].dtype if params else None)
        self.t, self.state = t, state


_STATE_FIX = "start a new run from its weights with --weights"


def _step_count(t) -> int:
    """The stored step count: a whole number 0 ≤ t < 2⁵³ (Adam raises β to it)."""
    t = np.asarray(t)
    if t.shape != () or t.dtype.kind not in "iu" or not 0 <= int(t) < 2**53:
        raise ArchcalcError(f"optimizer state: the step count is {echo(t, 40)} ({t.dtype}, "
                            f"shape {t.shape}), not a whole number >= 0", fix=_STATE_FIX)
    return int(t)


def _check_slot(key: str, arr: np.ndarray, param: np.ndarray | None) -> None:
    """One optimizer slot against the parameter it belongs to."""
    if param is None:
        raise ArchcalcError(f"optimizer state: '{echo(key, 80)}' belongs to no parameter of "
                            "the model", fix=_STATE_FIX)
    if arr.dtype.kind != "f":
        raise ArchcalcError(f"optimizer state: '{echo(key, 80)}' holds {arr.dtype} values, "
                            "not real floating-point numbers", fix=_STATE_FIX)
    if arr.shape != param.shape:
        shape = "×".join(map(str, arr.shape)) or "scalar"
        raise ArchcalcError(f"optimizer state: '{echo(key, 80)}' has shape {shape}, its "
                            f"parameter {'×'.join(map(str, param.shape))}", fix=_STATE_FIX)
    top = float(np.finfo(param.dtype).max)            # Python floats: no cast to float32
    if arr.size and not (np.isfinite(arr).all() and float(np.abs(arr).max()) <= top):
        raise ArchcalcError(f"optimizer state: '{echo(key, 80)}' holds NaN, infinite or "
                            f"out-of-range values for {param.dtype}", fix=_STATE_FIX)


class SGD(Optimizer):
    name = "sgd"

    def update(self, p, g, slots):
        p -= self.lr * g


class Momentum(Optimizer):
    name = "momentum"
    slots = ("velocity",)

    def __init__(self, lr: float, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.mu = momentum

    def update(self, p, g, slots):
        v = slots["velocity"]
        v *= self.mu
        v += g
        p -= self.lr * v


class Nesterov(Momentum):
    """Nesterov's accelerated gradient in the form of Sutskever et al. 2013 / torch.optim."""

    name = "nesterov"

    def update(self, p, g, slots):
        v = slots["velocity"]
        v *= self.mu
        v += g
        p -= self.lr * (g + self.mu * v)


class Adagrad(Optimizer):
    name = "adagrad"
    slots = ("sum_sq",)

    def __init__(self, lr: float, eps: float = 1e-10) -> None:
        super().__init__(lr)
        self.eps = eps

    def update(self, p, g, slots):
        s = slots["sum_sq"]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    name = "rmsprop"
    slots = ("mean_sq",)

    def __init__(self, lr: float, rho: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.rho = rho
        self.eps = eps

    def update(self, p, g, slots):
        e = slots["mean_sq"]
        e *= self.rho
        e += (1 - self.rho) * g * g
        p -= self.lr * g / (np.sqrt(e) + self.eps)


class Adam(Optimizer):
    name = "adam"
    slots = ("m", "v")

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def update(self, p, g, slots):
        m, v = slots["m"], slots["v"]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1 ** self.t)   # bias correction: m, v start at 0
        v_hat = v / (1 - self.beta2 ** self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, Adagrad, RMSProp, Adam)
}


def make(name: str, lr: float) -> Optimizer:
    """An optimizer by name with its usual defaults (momentum 0.9, ρ 0.99, Adam 0.9/0.999)."""
    if name not in OPTIMIZERS:
        raise ArchcalcError(f"unknown optimizer '{name}'",
                            fix="one of " + ", ".join(OPTIMIZERS))
    return OPTIMIZERS[name](lr)


def global_norm(grads: dict[str, np.ndarray], names: Iterable[str]) -> float:
    """√(Σ over the named gradients of Σ g²): the norm of all of them as one vector."""
    return float(np.sqrt(sum(float(np.vdot(grads[n], grads[n])) for n in names)))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float,
                   names: Iterable[str] | None = None) -> float:
    """Scale the named gradients in place so that their global norm is at most max_norm.

    Returns the norm before clipping. As torch.nn.utils.clip_grad_norm_: the factor is
    max_norm / (norm + 1e-6), applied only when it is below 1.
    """
    names = list(grads if names is None else names)
    norm = global_norm(grads, names)
    factor = max_norm / (norm + 1e-6)
    if factor < 1:
        for n in names:
            grads[n] *= factor
    return norm
