"""archcalc: exact arithmetic for convolutional networks, proven on real arrays.

Three rooms, one direction of flow (see README):
    spec (archcalc.spec) -> calculator (archcalc.calc) -> report (archcalc.report)
    spec (archcalc.spec) -> executor (archcalc.nn)
Only archcalc.check imports both the calculator and the executor.
"""

__version__ = "0.1.0"
