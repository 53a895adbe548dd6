"""Training cost per layer: the MACs of one backward pass, split into the gradient with respect
to the layer's input (dX) and with respect to its weights (dW).

All figures are per image, like Row.macs; a batch of B multiplies every one by B (the totals
scale by batch as the forward MACs do).

Per kind (the forward MACs convention of calc/layers.py; padded positions count, as they do
forward):

- conv2d, output C_out×H_out×W_out, kernel K_h×K_w, C_in input channels, `groups`:
    dX = H_out·W_out·C_out·K_h·K_w·C_in/groups   every output-gradient pixel scatters its
         kernel window back onto the input (a transposed convolution with the same kernel);
    dW = H_out·W_out·C_out·K_h·K_w·C_in/groups   each of the C_out·K_h·K_w·C_in/groups weights
         accumulates over the H_out·W_out positions it was used at.
  Stride, dilation and padding enter only through H_out and W_out; a group sees only its own
  C_in/groups channels in all three passes.
- conv_transpose2d, input C_in×H_in×W_in, kernel K_h×K_w, C_out filters, `groups`:
    dX = H_in·W_in·C_in·K_h·K_w·C_out/groups   an ordinary convolution of the output gradient;
    dW = H_in·W_in·C_in·K_h·K_w·C_out/groups   each weight accumulates over the input pixels.
- dense, `in` inputs and `out` units:
    dX = in·out (the output gradient times the matrix), dW = in·out (its outer product with
    the input); time_distributed, the same at each of T steps: T·in·out each.
- rnn, lstm, gru over T steps of F features, H units, G gate blocks (rnn 1, lstm 4, gru 3),
  D directions (2 when bidirectional), per direction (backpropagation through time):
    dX = T·G·H·F          the input gradient W_ihᵀ·δ_t at every step;
    dW = T·G·H·(F + H)    dW_ih = Σ_t δ_t·x_tᵀ and dW_hh = Σ_t δ_t·h_{t−1}ᵀ, the zero
                          initial state's step included (as forward counts it);
       + (T − 1)·G·H·H    the gradient through time W_hhᵀ·δ_t into h_{t−1}, for t = T … 2
                          (the zero initial state needs none). It is needed by dW and dX
                          alike: it is charged to dW when the layer is trainable, else to
                          dX when its input carries a gradient (else the backward is skipped).
  δ_t are the gate pre-activations' gradients (elementwise from the kept states); GRU's
  reset_after false computes U_nᵀ·δ_n once per step for both h_{t−1} and r (r's gradient
  is (U_nᵀ·δ_n)⊙h_{t−1}), reset_after true multiplies δ_n by r before U_nᵀ: G·H·H either
  way. PyTorch 2.13's FlopCounterMode counts exactly these products for nn.RNN and nn.GRU
  (tests/test_sequences_calc.py).
- embedding: dW is a scatter-add of the output gradient's rows (additions, 0 MACs); token
  ids have no gradient (dX = 0).
- A bias's gradient is the output gradient summed over positions: additions only, 0 MACs.
  Batch-norm/layer-norm γ and β, pooling, activations and merges are not MACs forward (README
  "Conventions") and are not MACs backward either: 0. So is every row without weights.

Which layers compute dX (the rule autograd follows, PyTorch's `requires_grad`): a tensor
*carries a gradient* when it was computed from some trainable parameter. The network's input
does not. A layer's output carries one when its input does or the layer owns trainable
parameters (conv, dense, batch norm, layer norm γ/β; a layer with `trainable: false` owns none).
A merge's output carries one when any branch's output does; an empty branch (the identity)
hands on the merge's input as it is. A weighted layer computes dX only when its input carries a
gradient — so the first layer that owns weights computes none, nor does anything before it,
and in branches each branch is judged by its own input: the first weighted layer of every
branch that reads a gradient-free input computes no dX. dW is computed only for trainable
weights (a frozen layer's dW is 0, but its dX is still needed when its input carries a
gradient).

Exact integer arithmetic throughout; no NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.spec.layers import GATES, RECURRENT
from archcalc.spec.tree import Leaf, Merge, Node, Path, Sequence

WEIGHTED_KINDS: frozenset[str] = frozenset({"conv2d", "conv_transpose2d", "dense", *RECURRENT})


@dataclass(frozen=True)
class BackwardCost:
    name: str        # the row's display name, as in analysis.rows
    dx_macs: int     # MACs of the gradient w.r.t. the layer's input (0 when none is needed)
    dw_macs: int     # MACs of the gradient w.r.t. its weights (a bias add's gradient: 0)


def backward_costs(analysis) -> list[BackwardCost]:
    """One BackwardCost per row of analysis.rows, in order (per image)."""
    leaves: dict[Path, Leaf] = {}
    carries: list[tuple[Path, bool]] = []
    _walk(analysis.network.root, False, analysis.rows, leaves, carries)
    if [path for path, _ in carries] != [row.path for row in analysis.rows]:
        raise AssertionError("backward_costs: the tree walk and analysis.rows disagree")
    costs = []
    for row, (_, input_carries) in zip(analysis.rows, carries):
        leaf = leaves.get(row.path)
        if leaf is None or leaf.kind not in WEIGHTED_KINDS:
            costs.append(BackwardCost(row.name, 0, 0))
            continue
        if leaf.kind in RECURRENT:
            costs.append(_recurrent_cost(row.name, leaf, row.input_shape, input_carries))
            continue
        macs = row.macs  # dX = dW = the forward MACs for conv, transposed conv and dense
        costs.append(BackwardCost(row.name, macs if input_carries else 0,
                                  macs if leaf.trainable else 0))
    return costs


def backward_totals(costs: list[BackwardCost]) -> tuple[int, int]:
    """(dX, dW) MACs per image, summed over the rows."""
    return sum(c.dx_macs for c in costs), sum(c.dw_macs for c in costs)


def _recurrent_cost(name: str, leaf: Leaf, in_shape: tuple[int, ...],
                    input_carries: bool) -> BackwardCost:
    """The module docstring's rule for rnn, lstm and gru."""
    spec = leaf.spec
    steps, features = in_shape
    gh = (2 if spec.bidirectional else 1) * GATES[leaf.kind] * spec.units
    through_time = (steps - 1) * gh * spec.units
    dx = steps * gh * features if input_carries else 0
    if leaf.trainable:
        return BackwardCost(name, dx, steps * gh * (features + spec.units) + through_time)
    return BackwardCost(name, dx + (through_time if input_carries else 0), 0)


def _walk(node: Node, carries: bool, rows, leaves: dict[Path, Leaf],
          out: list[tuple[Path, bool]]) -> bool:
    """Visit the tree in the calculator's row order (a leaf; a sequence's children; a merge's
    branches, then the merge itself), appending (path, whether the input carries a
    gradient) per row. Returns whether the node's output carries a gradient."""
    if isinstance(node, Leaf):
        leaves[node.path] = node
        out.append((node.path, carries))
        row = rows[len(out) - 1]
        return carries or row.trainable_params > 0
    if isinstance(node, Sequence):
        for child in node.children:
            carries = _walk(child, carries, rows, leaves, out)
        return carries
    assert isinstance(node, Merge)
    merged = False
    for branch in node.branches:
        merged = _walk(branch, carries, rows, leaves, out) or merged
    out.append((node.path, carries))
    return merged
