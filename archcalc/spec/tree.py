"""The resolved network: blocks expanded, repeats unrolled, every layer named.

Both the calculator and the executor walk this tree; neither sees YAML. A node's `path` is
its name as a tuple of scope names, e.g. ("layer2", "0", "conv1"); the network's separator
joins it for display ("layer2.0.conv1", or "inception_3a/5x5_reduce" with "/").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Union

from archcalc.spec.layers import LayerSpec

Path = tuple[str, ...]

# How a merge combines its branches; the spec keyword is the mode's name.
MERGE_MODES: tuple[str, ...] = ("concat", "add", "mul")


@dataclass(frozen=True)
class Leaf:
    """One layer of one kind; `spec` is its validated pydantic model."""

    path: Path
    spec: LayerSpec
    line: int | None = None

    @property
    def kind(self) -> str:
        return self.spec.type

    @property
    def trainable(self) -> bool:
        return self.spec.trainable


@dataclass(frozen=True)
class Sequence:
    """Children applied one after another. `label` says where it came from (a block name,
    'repeat', 'branch', 'sequence'); `path` is its scope."""

    path: Path
    children: tuple["Node", ...]
    label: str = "sequence"
    line: int | None = None


@dataclass(frozen=True)
class Merge:
    """Parallel branches on the same input, merged by channel concat, elementwise add or
    elementwise product (mul; a C×1×1 branch broadcasts over H×W, as squeeze-and-excitation
    gates do). An empty branch is the identity (a residual shortcut). `path` names the merge."""

    path: Path
    mode: str  # one of MERGE_MODES
    branches: tuple[Sequence, ...]
    line: int | None = None


Node = Union[Leaf, Sequence, Merge]


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: tuple[int, ...]
    root: Sequence
    separator: str = "."
    source: str | None = None
    file: str | None = None
    lines: dict[Path, int] = field(default_factory=dict, compare=False)
    init: str | None = None  # he | xavier | lecun: how the executor draws weights by default
    family: str | None = None  # the group `archcalc list` shows it in
    # the spec's `train:` mapping (archcalc.spec.recipe.Recipe): archcalc train's defaults
    train: Any = field(default=None, compare=False)

    def display(self, path: Path) -> str:
        return self.separator.join(path)

    def leaves(self) -> Iterator[Leaf]:
        yield from iter_leaves(self.root)

    def line_of(self, path: Path) -> int | None:
        return self.lines.get(path)

    def with_input(self, shape: tuple[int, ...]) -> "Network":
        return replace(self, input_shape=tuple(shape))


def iter_leaves(node: Node) -> Iterator[Leaf]:
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Sequence):
        for child in node.children:
            yield from iter_leaves(child)
    else:
        for branch in node.branches:
            yield from iter_leaves(branch)
