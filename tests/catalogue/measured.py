"""Run `archcalc ARGS` and write its own peak RSS (KiB) and CPU seconds to $ARCHCALC_MEASURE_OUT.

Started by runner.measure() as `python measured.py ARGS`. Linux keeps a process's peak RSS
across fork + exec (signal->maxrss), so a process started straight from a large pytest would
report pytest's size: this script first starts itself again from its own small interpreter,
and the inner run measures only itself.
"""

import atexit
import os
import resource
import subprocess
import sys

if os.environ.get("ARCHCALC_MEASURE_STAGE") != "run":
    env = {**os.environ, "ARCHCALC_MEASURE_STAGE": "run"}
    sys.exit(subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env).returncode)


def _report() -> None:
    use = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["ARCHCALC_MEASURE_OUT"], "w") as fh:
        fh.write(f"{use.ru_maxrss} {use.ru_utime + use.ru_stime}")


atexit.register(_report)
# A safety net so that a regression fails its test instead of the machine: 3 GiB of address space.
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
sys.argv = ["archcalc", *sys.argv[1:]]
sys.path.pop(0)  # this folder is not where archcalc lives
from archcalc.cli import main  # noqa: E402

main()
