"""The calculator: pure integer arithmetic over a resolved spec, no arrays."""

from archcalc.calc.analyze import DTYPE_BYTES, Analysis, Row, Totals, analyze

__all__ = ["DTYPE_BYTES", "Analysis", "Row", "Totals", "analyze"]
