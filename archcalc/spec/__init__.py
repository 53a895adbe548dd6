"""The spec language: pydantic models per layer kind, blocks, and the resolved tree."""

from archcalc.spec.load import bundled_names, from_dict, load, loads, parse_shape
from archcalc.spec.tree import Leaf, Merge, Network, Sequence

__all__ = ["Leaf", "Merge", "Network", "Sequence", "bundled_names", "from_dict", "load", "loads",
           "parse_shape"]
