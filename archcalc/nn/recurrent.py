"""Sequences: rnn, lstm, gru (forward and backpropagation through time), embedding and
to_sequence.

Shapes (batch first, as the spec language reads a [T, F] input):
    recurrent  x (N, T, F) → y (N, T, D·H) with return_sequences, else (N, D·H)
    embedding  ids (N, T) (floats holding whole numbers 0 … vocab − 1) → (N, T, units)
    to_sequence x (N, C, H, W) → (N, W, C·H) (axis width) or (N, H, C·W) (axis height)

A recurrent layer's arrays are PyTorch's, one layer of nn.RNN / nn.LSTM / nn.GRU:
weight_ih (G·H, F), weight_hh (G·H, H), bias_ih and bias_hh (G·H,) — or one `bias` (G·H,)
with `biases: 1` — and the same with the suffix _reverse for the backward direction; the G
gate blocks are stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n). The initial
state is zero. The last-step output of a bidirectional layer is PyTorch's h_n: the forward
direction after step T beside the backward direction after step 1.

What a forward makes (and a training forward keeps in `cache` for backward), per direction:
every step's hidden state, in one (N, T, D·H) array `seq` (PyTorch's output layout; the
output itself with return_sequences); LSTM: the cell states (N, T, H) and the gates after
their activations (N, T, 4H); GRU: the gates r, z, n (N, T, 3H) and, reset_after, U_n·h + b_hn
(N, T, H). `made_bytes` reports them beside the output (archcalc check compares them with
calc.layers.recurrent_kept).
"""

from __future__ import annotations

import numpy as np

from archcalc.errors import ArchcalcError, ShapeError
from archcalc.nn.base import Layer
from archcalc.spec.layers import GATES


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) without overflow for large |z| (in place on z)."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1
    np.reciprocal(z, out=z)
    return z


def _shape(x: np.ndarray) -> str:
    return "×".join(map(str, x.shape[1:]))


class Recurrent(Layer):
    """rnn, lstm and gru: one layer, one or two directions."""

    keeps_input = True
    can_skip_dx = True

    def __init__(self, spec, name, store) -> None:
        super().__init__(spec, name, store)
        self.gates = GATES[spec.type]
        self.directions = ("", "_reverse") if spec.bidirectional else ("",)
        # its output is its hidden states, which its backward reads (base.py keeps_output)
        self.keeps_output = spec.return_sequences
        self.made_bytes = 0
        self.cache = None

    def check(self, x: np.ndarray) -> None:
        if x.ndim == 4:
            raise ShapeError(f"{self.spec.type} needs a sequence of T steps × F features, got "
                             f"the C×H×W map {_shape(x)}",
                             fix="add 'to_sequence' before it (W steps of C·H features; axis: "
                                 "height for H steps of C·W)")
        if x.ndim != 3:
            raise ShapeError(f"{self.spec.type} needs a sequence of T steps × F features, got "
                             f"{_shape(x)} flat features",
                             fix="give the spec an input [T, F], or token ids [T] and an "
                                 "'embedding' before it")

    def build(self, x: np.ndarray) -> None:
        """PyTorch's initialisation: every array uniform in ±1/√H."""
        f, h, gh = x.shape[2], self.spec.units, self.gates * self.spec.units
        bound = 1.0 / np.sqrt(h)
        for suffix in self.directions:
            shapes = [("weight_ih", (gh, f)), ("weight_hh", (gh, h))]
            if self.spec.bias:
                shapes += ([("bias_ih", (gh,)), ("bias_hh", (gh,))] if self.spec.biases == 2
                           else [("bias", (gh,))])
            for short, shape in shapes:
                self.add_param(short + suffix, self.store.rng.uniform(-bound, bound, shape))

    def kink_state(self) -> np.ndarray | None:
        """relu's sign at every step (a relu rnn is piecewise); None for the smooth kinds."""
        if self.spec.type != "rnn" or self.spec.nonlinearity != "relu" or self.cache is None:
            return None
        return self.cache[1] > 0

    # ---- the arrays of one direction --------------------------------------------------
    def _biases(self, suffix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(the bias added with W_ih·x, the bias added with W_hh·h): bias_ih and bias_hh,
        or `bias` and none."""
        if not self.spec.bias:
            return None, None
        if self.spec.biases == 1:
            return self.p("bias" + suffix), None
        return self.p("bias_ih" + suffix), self.p("bias_hh" + suffix)

    def _order(self, steps: int, reverse: bool) -> list[int]:
        return list(range(steps - 1, -1, -1)) if reverse else list(range(steps))

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        n, steps, _ = x.shape
        h, d = self.spec.units, len(self.directions)
        seq = np.empty((n, steps, d * h), dtype=x.dtype)
        kept = [seq]
        states = []
        for k, suffix in enumerate(self.directions):
            cols = slice(k * h, (k + 1) * h)
            states.append(self._run(x, seq, cols, suffix, k == 1))
            kept.extend(a for a in states[-1] if a is not None)
        if self.spec.return_sequences:
            y = seq
        else:  # PyTorch's h_n: forward after step T, backward after step 1
            y = np.empty((n, d * h), dtype=x.dtype)
            y[:, :h] = seq[:, steps - 1, :h]
            if d == 2:
                y[:, h:] = seq[:, 0, h:]
        self.made_bytes = sum(a.nbytes for a in kept if a is not y)
        self.cache = (x, seq, states) if training else None
        return y

    def _run(self, x, seq, cols, suffix, reverse):
        """One direction over every step; writes h_t into seq[:, t, cols]. Returns the
        direction's other kept arrays (cell states, gates, U_n·h + b_hn: None if none)."""
        kind, h = self.spec.type, self.spec.units
        w_ih, w_hh = self.p("weight_ih" + suffix), self.p("weight_hh" + suffix)
        b_x, b_h = self._biases(suffix)
        xw = x @ w_ih.T                                      # (N, T, G·H): T·G·H·F MACs
        if b_x is not None:
            xw += b_x
        if b_h is not None and kind != "gru":                # one sum of two biases
            xw += b_h
        n = x.shape[0]
        cells = np.empty((n, x.shape[1], h), dtype=x.dtype) if kind == "lstm" else None
        hn_all = (np.empty((n, x.shape[1], h), dtype=x.dtype)
                  if kind == "gru" and self.spec.reset_after else None)
        h_prev = np.zeros((n, h), dtype=x.dtype)
        c_prev = np.zeros((n, h), dtype=x.dtype)
        # GRU's reset_after false multiplies U_n by r⊙h_{t−1}, not by h_{t−1}
        u = w_hh[:2 * h] if kind == "gru" and not self.spec.reset_after else w_hh
        for t in self._order(x.shape[1], reverse):
            hw = h_prev @ u.T                                # G·H·H MACs, zero state included
            if kind == "rnn":
                pre = xw[:, t] + hw
                h_t = np.tanh(pre) if self.spec.nonlinearity == "tanh" else np.maximum(pre, 0)
            elif kind == "lstm":
                gates = xw[:, t]                             # a view: the kept gates
                gates += hw
                _sigmoid(gates[:, :2 * h])                   # i, f
                np.tanh(gates[:, 2 * h:3 * h], out=gates[:, 2 * h:3 * h])  # g
                _sigmoid(gates[:, 3 * h:])                   # o
                i, f, g, o = (gates[:, j * h:(j + 1) * h] for j in range(4))
                c_t = f * c_prev + i * g
                cells[:, t] = c_t
                h_t = o * np.tanh(c_t)
                c_prev = c_t
            else:
                h_t = self._gru_step(xw[:, t], hw, h_prev, b_h, w_hh, hn_all, t)
            seq[:, t, cols] = h_t
            h_prev = h_t
        if kind == "rnn":
            return (None, None, None)
        return (cells, xw, hn_all)

    def _gru_step(self, gates, hw, h_prev, b_h, w_hh, hn_all, t):
        """gates (N, 3H) holds W·x_t + b_i on entry and r, z, n on return."""
        h = self.spec.units
        if b_h is not None:
            hw += b_h[:hw.shape[1]]                          # U·h + b_h
        gates[:, :2 * h] += hw[:, :2 * h]
        _sigmoid(gates[:, :2 * h])
        r, z = gates[:, :h], gates[:, h:2 * h]
        n = gates[:, 2 * h:]
        if self.spec.reset_after:                            # n = tanh(W_n x + b_in + r⊙(U_n h + b_hn))
            hn_all[:, t] = hw[:, 2 * h:]
            n += r * hw[:, 2 * h:]
        else:                                                # n = tanh(W_n x + b_in + U_n (r⊙h) + b_hn)
            # the step's G·H·H MACs: 2H·H (U_r, U_z, above) + H·H (U_n, here)
            n += (r * h_prev) @ w_hh[2 * h:].T
            if b_h is not None:
                n += b_h[2 * h:]
        np.tanh(n, out=n)
        return (1 - z) * n + z * h_prev

    # ---- backward ------------------------------------------------------------------------
    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, T, D·H) or (N, D·H) → dx (N, T, F); fills the weights' gradients.
        Per direction: dX T·G·H·F MACs, dW T·G·H·(F + H), through time (T − 1)·G·H·H
        (calc/backward.py)."""
        x, seq, states = self.need_cache("cache")
        trainable = not self.frozen and any(self.wants_grad(s) for s in self.param_names)
        if not self.need_dx and not trainable:
            for short in self.param_names:
                self.zero_grad(short)
            return None
        n, steps, _ = x.shape
        h = self.spec.units
        if self.spec.return_sequences:
            dseq = dy
        else:
            dseq = np.zeros_like(seq)
            dseq[:, steps - 1, :h] = dy[:, :h]
            if len(self.directions) == 2:
                dseq[:, 0, h:] = dy[:, h:]
        dx = np.zeros_like(x) if self.need_dx else None
        for k, suffix in enumerate(self.directions):
            cols = slice(k * h, (k + 1) * h)
            self._direction_grads(x, seq, dseq, cols, suffix, k == 1, states[k], dx)
        return dx

    def _direction_grads(self, x, seq, dseq, cols, suffix, reverse, kept, dx) -> None:
        kind, h = self.spec.type, self.spec.units
        cells, gates, hn_all = kept
        w_ih, w_hh = self.p("weight_ih" + suffix), self.p("weight_hh" + suffix)
        n, steps, _ = x.shape
        hs = seq[:, :, cols]
        order = self._order(steps, reverse)
        # h_{t−1} of every step in forward order (zero before the first), for dW_hh
        h_prev_all = np.zeros_like(hs)
        for k in range(1, steps):
            h_prev_all[:, order[k]] = hs[:, order[k - 1]]
        d_x = np.empty((n, steps, self.gates * h), dtype=x.dtype)   # δ for W_ih, b_ih
        d_h = d_x if kind != "gru" else np.empty_like(d_x)          # δ for W_hh, b_hh
        rh_all = (np.zeros((n, steps, h), dtype=x.dtype)
                  if kind == "gru" and not self.spec.reset_after else None)
        dh_next = np.zeros((n, h), dtype=x.dtype)
        dc_next = np.zeros((n, h), dtype=x.dtype)
        for k in range(steps - 1, -1, -1):
            t = order[k]
            dh = dseq[:, t, cols] + dh_next
            h_prev = h_prev_all[:, t]
            if kind == "rnn":
                out = hs[:, t]
                d_x[:, t] = dh * ((1 - out * out) if self.spec.nonlinearity == "tanh"
                                  else (out > 0))
            elif kind == "lstm":
                i, f, g, o = (gates[:, t, j * h:(j + 1) * h] for j in range(4))
                c_prev = cells[:, order[k - 1]] if k else 0.0
                tc = np.tanh(cells[:, t])
                dc = dh * o * (1 - tc * tc) + dc_next
                d_x[:, t, :h] = dc * g * i * (1 - i)
                d_x[:, t, h:2 * h] = dc * c_prev * f * (1 - f)
                d_x[:, t, 2 * h:3 * h] = dc * i * (1 - g * g)
                d_x[:, t, 3 * h:] = dh * tc * o * (1 - o)
                dc_next = dc * f
            else:
                dh_direct = self._gru_grads(gates[:, t], hn_all, rh_all, d_x, d_h, t, dh,
                                            h_prev, w_hh, k)
            if k:  # through time: W_hhᵀ·δ_t into h_{t−1} (none into the zero state)
                if kind == "gru":
                    dh_next = dh_direct + d_h[:, t, :2 * h] @ w_hh[:2 * h]
                    if self.spec.reset_after:
                        dh_next += d_h[:, t, 2 * h:] @ w_hh[2 * h:]
                else:
                    dh_next = d_x[:, t] @ w_hh
        self._weight_grads(x, d_x, d_h, h_prev_all, rh_all, suffix)
        if dx is not None:
            dx += d_x @ w_ih

    def _gru_grads(self, gates, hn_all, rh_all, d_x, d_h, t, dh, h_prev, w_hh, k):
        """δ of r, z, n at step t into d_x (the W_ih side) and d_h (the U side); returns
        the part of dh_{t−1} that does not pass through U (z⊙dh, and r⊙U_nᵀδ_n when
        reset_after is false)."""
        h = self.spec.units
        r, z, n = gates[:, :h], gates[:, h:2 * h], gates[:, 2 * h:]
        dn = dh * (1 - z) * (1 - n * n)                      # δ_n (the tanh's input)
        dz = dh * (h_prev - n) * z * (1 - z)
        direct = dh * z
        if self.spec.reset_after:
            dr = dn * hn_all[:, t] * r * (1 - r)
            d_h[:, t, 2 * h:] = dn * r                       # δ of U_n·h + b_hn
        else:
            d_h[:, t, 2 * h:] = dn                           # δ of U_n·(r⊙h) + b_hn
            rh_all[:, t] = r * h_prev
            if k:  # U_nᵀ·δ_n, once for r's gradient and h_{t−1}'s (zero state: none)
                drh = dn @ w_hh[2 * h:]
                dr = drh * h_prev * r * (1 - r)
                direct = direct + drh * r
            else:
                dr = np.zeros_like(dn)
        d_x[:, t, :h], d_x[:, t, h:2 * h], d_x[:, t, 2 * h:] = dr, dz, dn
        d_h[:, t, :2 * h] = d_x[:, t, :2 * h]
        return direct

    def _weight_grads(self, x, d_x, d_h, h_prev_all, rh_all, suffix) -> None:
        """dW_ih = Σ δ_x·xᵀ (T·G·H·F), dW_hh = Σ δ_h·h_{t−1}ᵀ (T·G·H·H; GRU's reset_after
        false: the n rows against r⊙h_{t−1}), biases: sums of δ."""
        h, gh = self.spec.units, self.gates * self.spec.units
        flat_dx, flat_dh = d_x.reshape(-1, gh), d_h.reshape(-1, gh)
        self._grad("weight_ih" + suffix, lambda: flat_dx.T @ x.reshape(-1, x.shape[2]))

        def dw_hh():
            prev = h_prev_all.reshape(-1, h)
            if rh_all is None:
                return flat_dh.T @ prev
            return np.concatenate([flat_dh[:, :2 * h].T @ prev,
                                   flat_dh[:, 2 * h:].T @ rh_all.reshape(-1, h)])
        self._grad("weight_hh" + suffix, dw_hh)
        if not self.spec.bias:
            return
        if self.spec.biases == 1:
            self._grad("bias" + suffix, lambda: flat_dx.sum(axis=0))
        else:
            self._grad("bias_ih" + suffix, lambda: flat_dx.sum(axis=0))
            self._grad("bias_hh" + suffix, lambda: flat_dh.sum(axis=0))

    def _grad(self, short: str, compute) -> None:
        if self.wants_grad(short):
            self.set_grad(short, compute())
        else:
            self.zero_grad(short)


class Embedding(Layer):
    """weight (vocab, units); y[n, t] = weight[ids[n, t]]."""

    keeps_input = True
    can_skip_dx = True

    def check(self, x: np.ndarray) -> None:
        if x.ndim != 2:
            raise ShapeError(f"embedding reads T token ids, got {_shape(x)}",
                             fix="give the spec an input [T] of token ids and put embedding "
                                 "first")

    def build(self, x: np.ndarray) -> None:
        """PyTorch's initialisation: N(0, 1)."""
        self.add_param("weight", self.store.rng.standard_normal(
            (self.spec.vocab, self.spec.units)))

    def ids(self, x: np.ndarray) -> np.ndarray:
        """The token ids as integers; one line naming the first one out of 0 … vocab − 1."""
        vocab = self.spec.vocab
        bad = ~np.isfinite(x) | (x != np.round(x)) | (x < 0) | (x >= vocab)
        if bad.any():
            n, t = np.argwhere(bad)[0]
            raise _not_an_id(float(x[n, t]), f"example {n + 1}, step {t + 1}", vocab)
        return x.astype(np.intp)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        ids = self.ids(x)
        self.cache = x if training else None
        return self.p("weight")[ids]

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy (N, T, units) → dW: each row scatter-added at its id; ids have no gradient
        (zeros when one is asked for)."""
        x = self.need_cache("cache")
        if self.wants_grad("weight"):
            grad = np.zeros_like(self.p("weight"))
            np.add.at(grad, x.astype(np.intp).reshape(-1), dy.reshape(-1, dy.shape[-1]))
            self.set_grad("weight", grad)
        else:
            self.zero_grad("weight")
        return np.zeros_like(x) if self.need_dx else None


# A vocabulary past this is a typo, not a table (the spec language's MAX_SIZE): an id beyond it
# is not worth a "make the vocab that large" advice.
_LARGEST_VOCAB = 10**9


def _not_an_id(value: float, where: str, vocab: int) -> ArchcalcError:
    """One short line for a value that is not a token id of 0 … vocab − 1 (`where`: example
    and step)."""
    ids = f"0 … {vocab - 1:,}"
    if not np.isfinite(value) or value != round(value):
        return ArchcalcError(f"the value {value:.6g} ({where}) is not a whole number, so not a "
                             "token id", fix=f"give token ids, whole numbers in {ids}")
    if value < 0 or value >= _LARGEST_VOCAB:
        return ArchcalcError(f"{value:.6g} ({where}) is not a token id: outside the vocabulary "
                             f"of {vocab:,} ids ({ids})", fix=f"map the ids into {ids}")
    return ArchcalcError(f"token id {int(value):,} ({where}) is outside the vocabulary of "
                         f"{vocab:,} ids ({ids})",
                         fix=f"give the embedding vocab: {int(value) + 1:,} or more, or map "
                             f"the ids into {ids}")


class ToSequence(Layer):
    """(N, C, H, W) → (N, W, C·H) or (N, H, C·W): a transposed copy; backward a view of dy."""

    def check(self, x: np.ndarray) -> None:
        self.need_spatial(x)

    def forward(self, x: np.ndarray, training: bool, inplace: bool) -> np.ndarray:
        n, c, h, w = x.shape
        self.cache = x.shape
        if self.spec.axis == "width":  # step t: column t, features (c, h)
            return x.transpose(0, 3, 1, 2).copy().reshape(n, w, c * h)
        return x.transpose(0, 2, 1, 3).copy().reshape(n, h, c * w)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, c, h, w = self.need_cache("cache")
        if self.spec.axis == "width":
            return dy.reshape(n, w, c, h).transpose(0, 2, 3, 1)
        return dy.reshape(n, h, c, w).transpose(0, 2, 1, 3)
