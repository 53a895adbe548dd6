"""The layer protocol of the executor, and the store every layer keeps its arrays in.

A layer computes `forward(x, training, inplace)` and `backward(dy)`; it creates its parameters
lazily from the first input it sees (Keras-style build), so every shape comes from a real
array and never from the calculator. Parameters, gradients and buffers live in the model's
dicts under "<layer name>.<param>"; a layer looks them up by name on every call, so an
optimizer may replace an array in `model.params` and the layer still sees it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from archcalc.errors import ShapeError
from archcalc.nn.init import initialise


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Threads the executor's layers split independent chunks of work over (im2col copies, the
# products and col2im adds of separate images). NumPy releases the GIL in copies, ufuncs
# and BLAS, so two chunks really run at once. 1 runs every chunk in the calling thread (the
# sequential path, which the tests compare the threaded one against).
THREADS = min(_cores(), 8)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child inherits the pool object but none of its threads (work handed to it
    would never run), and perhaps a lock held by a thread it does not have: start afresh."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def parallel(fn, parts: list) -> list:
    """[fn(part) for part in parts], parts[1:] on a process-wide pool of THREADS − 1 workers
    and parts[0] in the calling thread (so a caller never waits for a pool busy with
    another caller's work to run its own first part). fn must not call parallel itself."""
    global _pool
    if len(parts) <= 1:
        return [fn(part) for part in parts]
    with _pool_lock:
        if _pool is None or _pool._max_workers < len(parts) - 1:
            _pool = ThreadPoolExecutor(max(THREADS - 1, len(parts) - 1),
                                       thread_name_prefix="archcalc-nn")
        pool = _pool
    futures = [pool.submit(fn, part) for part in parts[1:]]
    try:
        first = fn(parts[0])
    finally:  # never return (or raise) while a worker may still write into shared arrays
        wait(futures)
    return [first] + [f.result() for f in futures]


# an elementwise pass over fewer bytes than this stays in the calling thread: below it the
# hand-over to the pool (tens of microseconds) costs about what the second core saves
SPLIT_MIN_BYTES = 2 * 2**20


def image_parts(x: np.ndarray) -> list[slice]:
    """Slices of x's first axis (images), one per thread, when x is large enough
    (SPLIT_MIN_BYTES) for threads to pay; else one slice of everything."""
    n = x.shape[0] if x.ndim else 1
    parts = min(THREADS, n) if x.nbytes >= SPLIT_MIN_BYTES else 1
    bounds = [n * i // max(parts, 1) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def by_images(fn, *arrays: np.ndarray) -> None:
    """fn(part) for each slice of image_parts(arrays[0]), in threads: fn writes only its
    part of its outputs, so the parts never touch one another's memory."""
    parallel(fn, image_parts(arrays[0]))


@dataclass
class Store:
    """The arrays of one model: params, grads (same keys), buffers, frozen names."""

    dtype: np.dtype
    rng: np.random.Generator  # draws the initial weights, in execution order
    init: str = "he"
    params: dict[str, np.ndarray] = field(default_factory=dict)
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    # seeded generator for dropout masks; separate from `rng` so that training never
    # changes which weights a seed gives
    noise: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


class Layer:
    """One leaf of the network.

    keeps_input / keeps_output say what backward reads after a *training* forward; the
    network uses them to decide when a later layer may overwrite an array in place.
    """

    keeps_input = False
    keeps_output = False
    # False while the network's backward has no use for this layer's input gradient (the
    # first layer, when the caller asks for no input gradient): backward may return None.
    # Only layers whose backward honours it say so (can_skip_dx).
    need_dx = True
    can_skip_dx = False
    # Bytes of the arrays the last forward made besides its output (a recurrent layer's step
    # states); the network's LayerRecord adds them to the output's.
    made_bytes = 0

    def __init__(self, spec, name: str, store: Store) -> None:
        self.spec = spec
        self.name = name
        self.store = store
        self.param_names: list[str] = []
        self.buffer_names: list[str] = []
        self.built = False
        self.frozen = not spec.trainable

    # ---- arrays owned by the layer -------------------------------------------------
    def key(self, short: str) -> str:
        return f"{self.name}.{short}"

    def p(self, short: str) -> np.ndarray:
        return self.store.params[self.key(short)]

    def b(self, short: str) -> np.ndarray:
        return self.store.buffers[self.key(short)]

    def add_param(self, short: str, value: np.ndarray) -> None:
        key = self.key(short)
        self.store.params[key] = np.ascontiguousarray(value, dtype=self.store.dtype)
        # np.zeros maps fresh zero pages lazily: no cost until a backward writes a gradient
        self.store.grads[key] = np.zeros(self.store.params[key].shape, dtype=self.store.dtype)
        if self.frozen:
            self.store.frozen.add(key)
        self.param_names.append(short)

    def add_weight(self, short: str, shape: tuple[int, ...], fan_in: int, fan_out: int) -> None:
        self.add_param(short, initialise(self.store.init, self.store.rng, shape, fan_in, fan_out,
                                         self.store.dtype))

    def add_buffer(self, short: str, value: np.ndarray) -> None:
        self.store.buffers[self.key(short)] = np.ascontiguousarray(value, dtype=self.store.dtype)
        self.buffer_names.append(short)

    def wants_grad(self, short: str) -> bool:
        return self.key(short) not in self.store.frozen

    def set_grad(self, short: str, value: np.ndarray) -> None:
        """Write a gradient into the existing array (its identity stays stable)."""
        self.store.grads[self.key(short)][...] = value

    def zero_grad(self, short: str) -> None:
        self.store.grads[self.key(short)][...] = 0

    # ---- the protocol --------------------------------------------------------------
    def build(self, x: np.ndarray) -> None:
        """Create the parameters from the first input. Default: none."""

    def check(self, x: np.ndarray) -> None:
        """Raise ShapeError when the layer cannot take x (the calculator's rejections)."""

    def kink_state(self) -> np.ndarray | None:
        """After a training forward: which piece of a piecewise function each value took
        (relu's sign, max pooling's argmax), or None for a smooth layer. A gradient check
        compares it before and after a nudge to tell a crossed kink from a wrong gradient."""
        return None

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        self.check(x)
        if not self.built:
            self.build(x)
            self.built = True
        return self.forward(x, training, inplace)

    # ---- helpers -------------------------------------------------------------------
    def need_spatial(self, x: np.ndarray) -> None:
        if x.ndim != 4:
            raise ShapeError(f"{self.spec.type} needs a C×H×W input, got "
                             f"{'×'.join(map(str, x.shape[1:]))} (the input is already flat)",
                             fix="move the layer before 'flatten', or give the spec a C×H×W "
                                 "input")

    def need_cache(self, what: str):
        value = getattr(self, what, None)
        if value is None:
            raise RuntimeError(f"{self.name}: backward called without a training forward")
        return value
