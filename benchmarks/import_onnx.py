"""Import benchmark: `archcalc summary model.onnx` against onnx-tool's profile of the same file.

    python benchmarks/import_onnx.py                          # resnet152 and densenet201
    python benchmarks/import_onnx.py --models resnet18 --repeat 5 --dir /tmp/onnx
    python benchmarks/import_onnx.py --json runs/import.json

Each model is built by torchvision (through tests/torchvision_models.py, which needs torch and
torchvision) and exported once into --dir with torch.onnx.export(dynamo=False,
training=PRESERVE, opset 17), batch 1 at 3×224×224: the BatchNormalization nodes stay apart,
as in the import tests. Then, median wall time over --repeat runs (after one warm-up):

  archcalc, in process   load(path) + analyze + the summary table rendered (what
                         `archcalc summary` does after its imports), via click's runner;
  archcalc, CLI          `python -m archcalc summary PATH > /dev/null`, a fresh process
                         (interpreter start-up and imports included);
  onnx-tool, in process  onnx_tool.model_profile(PATH) with its table sent to /dev/null
                         (load, shape inference, profile, print: what its CLI does);
  onnx-tool, CLI         `python -m onnx_tool -i PATH > /dev/null`.

and the MACs each reports. onnx-tool is not a dependency of archcalc; install it beside it
(`pip install onnx-tool`, which brings tabulate) or into a folder named with --onnx-tool-path
(`pip install --target /tmp/onnxtool onnx-tool`). Without it the script times archcalc alone.

MACs: archcalc counts convolutions and dense layers only (H_out·W_out·C_out·K_h·K_w·C_in/groups,
in·out); onnx-tool also counts one or more MACs per element for BatchNormalization, Relu,
pooling, Add and the Gemm's bias. The script prints onnx-tool's MACs of Conv + Gemm alone
(bias adds subtracted: C_out·H_out·W_out per Conv with a bias, out per Gemm) next to its total
and the other op types' share, so the two conventions can be compared where they agree.
This is a script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "tests"))  # torchvision_models
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forward import cpu_model  # noqa: E402  (the machine, as every benchmark names it)

MODULES = {"resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
           "densenet": ("densenet121", "densenet161", "densenet169", "densenet201"),
           "vgg": ("vgg11", "vgg16", "vgg19"), "mobilenetv2": ("mobilenet_v2",),
           "mobilenetv3": ("mobilenet_v3_small", "mobilenet_v3_large")}


def module_of(name: str) -> str:
    for module, names in MODULES.items():
        if name in names:
            return module
    raise SystemExit(f"unknown model {name!r}: one of {sorted(sum(MODULES.values(), ()))}")


def export(name: str, folder: Path) -> Path:
    """folder/NAME.onnx, exported by torch unless it is there already."""
    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    import torch
    from torchvision_models import model

    net = model(module_of(name), name)
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), str(path), dynamo=False,
                      training=torch.onnx.TrainingMode.PRESERVE, opset_version=17)
    return path


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of fn() over `repeat` runs after one warm-up run, and its last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cli_time(args: list[str], repeat: int, env: dict[str, str] | None = None
             ) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds: user + sys) of `python ARGS` in a fresh
    process. CPU time is the steadier figure on a shared machine. Bytecode caching is on, as
    for an installed package (pip compiles it at install; a PYTHONDONTWRITEBYTECODE in the
    environment would make every run compile archcalc's sources again)."""
    child_env = {**os.environ, **(env or {})}
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    cpu: list[float] = []

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, env=child_env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    wall = median_time(run, repeat)[0]
    return wall, statistics.median(cpu[1:])  # the warm-up's CPU time left out too


# ---- archcalc --------------------------------------------------------------------------------
def archcalc_in_process(path: Path) -> None:
    from click.testing import CliRunner

    from archcalc.cli import main

    result = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["summary", str(path)])
    if result.exit_code != 0:
        raise SystemExit(f"archcalc summary {path} failed: {result.stderr or result.output}")


def archcalc_macs(path: Path) -> int:
    """Outside the timing: the summary command alone is timed."""
    from archcalc.calc import analyze
    from archcalc.spec import load

    return analyze(load(str(path))).totals.macs


# ---- onnx-tool -------------------------------------------------------------------------------
def onnx_tool_profile(path: Path) -> None:
    import onnx_tool

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        onnx_tool.model_profile(str(path))


def onnx_tool_macs(path: Path) -> dict[str, int]:
    """onnx-tool's forward MACs: total, by op type, and Conv + Gemm without their bias adds."""
    import onnx_tool

    with contextlib.redirect_stdout(io.StringIO()):
        graph = onnx_tool.loadmodel(str(path), {"verbose": False}).graph
        graph.graph_reorder_nodes()
        graph.shape_infer(None)
        graph.profile(exclude_ops=onnx_tool.NoMacsOps)
    by_op: Counter = Counter()
    bias_adds = 0
    for node in graph.nodemap.values():
        macs = getattr(node, "macs", None)
        if macs is None:
            continue
        by_op[node.op_type] += int(round(macs[0]))
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            shape = graph.tensormap[node.output[0]].get_shape()
            out = 1
            for size in shape:
                out *= int(size)
            bias_adds += out
    return {"total": int(round(graph.macs[0])), "conv_gemm": by_op["Conv"] + by_op["Gemm"],
            "conv_gemm_no_bias": by_op["Conv"] + by_op["Gemm"] - bias_adds,
            **{f"op:{op}": v for op, v in by_op.most_common()}}


def have_onnx_tool(extra_path: str | None) -> bool:
    if extra_path:
        sys.path.insert(0, extra_path)
    try:
        import onnx_tool  # noqa: F401
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet152,densenet201")
    parser.add_argument("--dir", default="/tmp/archcalc-import-bench",
                        help="where the exported .onnx files are kept (reused if present)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--onnx-tool-path", default=None,
                        help="a folder where onnx-tool was installed with pip --target")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    folder = Path(args.dir)
    tool = have_onnx_tool(args.onnx_tool_path)
    tool_env = {"PYTHONPATH": os.pathsep.join(filter(None, [args.onnx_tool_path,
                                                            os.environ.get("PYTHONPATH")]))}
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"median of {args.repeat} after a warm-up; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if not tool:
        print("onnx-tool is not installed: timing archcalc alone (pip install onnx-tool)")
    results = []
    for name in args.models.split(","):
        path = export(name, folder)
        size = path.stat().st_size
        row: dict[str, Any] = {"model": name, "bytes": size}
        row["archcalc_s"] = median_time(lambda: archcalc_in_process(path), args.repeat)[0]
        row["archcalc_macs"] = archcalc_macs(path)
        row["archcalc_cli_s"], row["archcalc_cli_cpu_s"] = cli_time(
            ["-m", "archcalc", "summary", str(path)], args.repeat)
        line = (f"{name}: {size / 1e6:.0f} MB; archcalc summary {row['archcalc_s']:.2f} s in "
                f"process, {row['archcalc_cli_s']:.2f} s as a command "
                f"({row['archcalc_cli_cpu_s']:.2f} s CPU); MACs {row['archcalc_macs']:,}")
        if tool:
            row["onnx_tool_s"] = median_time(lambda: onnx_tool_profile(path), args.repeat)[0]
            row["onnx_tool_cli_s"], row["onnx_tool_cli_cpu_s"] = cli_time(
                ["-m", "onnx_tool", "-i", str(path)], args.repeat, tool_env)
            row["onnx_tool_macs"] = onnx_tool_macs(path)
            macs = row["onnx_tool_macs"]
            line += (f"\n  onnx-tool profile {row['onnx_tool_s']:.2f} s in process, "
                     f"{row['onnx_tool_cli_s']:.2f} s as a command "
                     f"({row['onnx_tool_cli_cpu_s']:.2f} s CPU): onnx-tool takes "
                     f"{row['onnx_tool_s'] / row['archcalc_s']:.1f}× in process, "
                     f"{row['onnx_tool_cli_s'] / row['archcalc_cli_s']:.1f}× as a command "
                     f"({row['onnx_tool_cli_cpu_s'] / row['archcalc_cli_cpu_s']:.1f}× in CPU "
                     f"time) archcalc's time"
                     f"\n  onnx-tool MACs {macs['total']:,} in all; Conv + Gemm "
                     f"{macs['conv_gemm']:,}, without their bias adds "
                     f"{macs['conv_gemm_no_bias']:,} "
                     f"({'equal to' if macs['conv_gemm_no_bias'] == row['archcalc_macs'] else 'not'}"
                     f" archcalc's); the rest by op: "
                     + ", ".join(f"{k[3:]} {v:,}" for k, v in macs.items()
                                 if k.startswith("op:") and k not in ("op:Conv", "op:Gemm")
                                 and v))
        row["load_average"] = os.getloadavg()[0]
        print(line + f"\n  load average after this model {row['load_average']:.2f}", flush=True)
        results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
