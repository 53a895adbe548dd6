"""Issue 14, goal 2: linear at scale.

Generates, in a temporary directory, 100,000-layer specs (a flat list in YAML and in JSON,
and one built from a block and `repeat`) and 1,000 realistic spec files (the bundled specs
at other input sizes and widths), then times each command as a whole process (median of 3,
the commands taking turns; wall time, CPU and peak RSS from os.wait4) next to a peer run in
the same turns: PyYAML's libyaml loader (yaml.load with CSafeLoader) or json.load reading the
same file(s) in a fresh process, i.e. what merely reading the spec costs.

Peak memory per layer is the slope between the 50,000- and 100,000-layer specs (the process's
fixed start-up memory cancels). Where the time goes is measured in one process per stage on
25,000 / 50,000 / 100,000 layers: the time per layer stays flat when a stage is linear.

    python benchmarks/scale.py            # full: every size, 3 runs each
    python benchmarks/scale.py --quick    # the goal rows only

Stage complexity (n = layers, v = YAML values of the file, a = alias expansions):
  parse    O(v): libyaml's events, one pass of archcalc.spec.yamlio._Builder; aliases add
           their anchor's counted size, never a copy: O(v) however large a is (refused past
           MAX_SPEC_NODES).
  resolve  O(n + unrolled): the forecast first (per block once), then one pydantic model per
           layer (archcalc.spec.resolve).
  analyze  O(n): one walk, a Row per layer (archcalc.calc.analyze).
  render   O(n): table: one scan of the rows (widths, packed lines), then lines written in
           chunks of 1,000 (a pipe) or drawn one string a row (a terminal); json/csv written
           in chunks of 1,000 rows.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import (Run, archcalc_argv, describe, load_average, median_runs,  # noqa: E402
                     run_process)

LAYERS = 100_000
FILES = 1_000
GOALS = {"table": 3.0, "json": 2.0, "validate": 2.0, "files": 5.0}  # seconds, issue 14


# ---- the specs --------------------------------------------------------------------------------
def flat_yaml(layers: int) -> str:
    """`layers` layers: dense 16 and relu alternating, on a flat input of 16 (as the issue's
    measurement had them): ~9.5 bytes and 1.5 YAML values a layer."""
    return ("name: flat\ninput: [16]\nlayers:\n"
            + "  - dense: 16\n  - relu\n" * (layers // 2))


def flat_json(layers: int) -> str:
    items = [{"dense": 16}, "relu"] * (layers // 2)
    return json.dumps({"name": "flat", "input": [16], "layers": items})


def repeat_yaml(layers: int) -> str:
    """The same count of convolutions and relus from a block and a repeat: a few lines."""
    return ("name: blocks\ninput: [4, 8, 8]\nblocks:\n"
            "  unit: {layers: [{conv: {filters: 4, kernel: 3, padding: 1}}, relu]}\n"
            f"layers:\n  - repeat: {layers // 2}\n    layers: [unit]\n")


_INPUT = re.compile(r"^input: \[3, (\d+), (\d+)\]\s*$", re.M)
_FILTERS = re.compile(r"(filters: )(\d+)")


def realistic_files(folder: Path, count: int) -> list[Path]:
    """`count` spec files: the bundled specs with a C×H×W input, at other input sizes
    (+32k pixels) and widths (every literal `filters:` ×2), each kept only if it loads and
    analyses (a variant may not fit its network's arithmetic)."""
    from archcalc.calc import analyze
    from archcalc.spec import bundled_names, loads
    from archcalc.spec.load import bundled_dir

    paths: list[Path] = []
    texts = {name: (bundled_dir() / f"{name}.yaml").read_text(encoding="utf-8")
             for name in bundled_names()}
    texts = {name: text for name, text in texts.items() if _INPUT.search(text)}
    step = 0
    while len(paths) < count and step < 200:
        for name, text in texts.items():
            if len(paths) >= count:
                break
            size = int(_INPUT.search(text).group(1)) + 32 * (step // 2)
            variant = _INPUT.sub(f"input: [3, {size}, {size}]", text, count=1)
            if step % 2:
                variant = _FILTERS.sub(lambda m: m.group(1) + str(2 * int(m.group(2))), variant)
            try:
                analyze(loads(variant))
            except Exception:  # noqa: BLE001 - a variant the network's arithmetic refuses
                continue
            path = folder / f"f{len(paths) + 1}.yaml"
            path.write_text(variant, encoding="utf-8")
            paths.append(path)
        step += 1
    return paths


# ---- whole processes --------------------------------------------------------------------------
def run_on_terminal(argv: list[str], columns: int = 120) -> Run:
    """argv with stdout on a pseudo-terminal `columns` wide (the table fitted to it), the
    terminal's output read and discarded as it comes."""
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                if not os.read(master, 1 << 16):
                    break
            except OSError:  # the child closed the terminal
                break
        elif proc.poll() is not None:
            break
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    os.close(master)
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), argv)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def turns(commands: dict[str, tuple], repeat: int) -> dict[str, Run]:
    """Each command `repeat` times after a warm-up, taking turns; the median of each figure.
    A command is (argv, env) or (argv, env, 'tty')."""
    def once(spec: tuple) -> Run:
        argv, env, *how = spec
        if how:
            return run_on_terminal(argv)
        return run_process(argv, env)

    return median_runs(commands, repeat, run=once)


PEER_YAML = ("import sys, yaml\nfor p in sys.argv[1:]:\n"
             "    with open(p, encoding='utf-8') as f: yaml.load(f, Loader=yaml.CSafeLoader)\n")
PEER_JSON = ("import sys, json\nfor p in sys.argv[1:]:\n"
             "    with open(p, encoding='utf-8') as f: json.load(f)\n")


def peer(paths: list[Path]) -> list[str]:
    script = PEER_JSON if str(paths[0]).endswith(".json") else PEER_YAML
    return [sys.executable, "-c", script, *map(str, paths)]


def secs(run: Run) -> str:
    return f"{run.wall:.2f} s"


def mb(run: Run) -> str:
    return f"{run.rss / 1e6:.0f} MB"


# ---- stages in one process --------------------------------------------------------------------
def stages(path: Path) -> dict[str, float]:
    """Seconds of each stage for one spec file, in this process."""
    from archcalc import report
    from archcalc.calc import analyze
    from archcalc.cli.common import print_wide
    from archcalc.spec.load import from_dict
    from archcalc.spec.yamlio import parse_text

    from archcalc.cli.inspect import _fewer_collections

    with _fewer_collections():  # as the commands run
        return _stages(path, parse_text, from_dict, analyze, report, print_wide)


def _stages(path, parse_text, from_dict, analyze, report, print_wide) -> dict[str, float]:
    out: dict[str, float] = {}
    start = time.perf_counter()
    raw = parse_text(path.read_text(encoding="utf-8"), json_mode=path.suffix == ".json")
    out["parse"] = time.perf_counter() - start
    start = time.perf_counter()
    net = from_dict(raw, file=str(path))
    out["resolve"] = time.perf_counter() - start
    del raw
    start = time.perf_counter()
    analysis = analyze(net)
    out["analyze"] = time.perf_counter() - start
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        print_wide(report.summary_grid(analysis))
    out["table"] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in report.iter_json(analysis):
        pass
    out["json"] = time.perf_counter() - start
    return out


# ---- the rows ---------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    """The default limits: the 100,000-layer specs must pass them (goal 2)."""
    return {}


def _row(what: str, run: Run, peer_run: Run | None, peer_name: str, goal: float) -> dict:
    return {"what": what, "archcalc": f"{secs(run)} (CPU {run.cpu:.2f} s), {mb(run)}",
            "peer": f"{peer_name} {secs(peer_run)}" if peer_run else "—",
            "ratio": run.wall / peer_run.wall if peer_run else None,
            "goal": f"< {goal:g} s", "met": run.wall < goal}


def rows(quick: bool) -> list[dict]:
    """Goal 2's rows: each command on the 100,000-layer specs and on 1,000 files, with the
    time PyYAML's libyaml loader (or json.load) takes to read the same file(s) as the peer."""
    repeat = 3
    print(f"scale: {describe()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="archcalc-scale-") as tmp:
        folder = Path(tmp)
        flat = folder / "flat100k.yaml"
        flat.write_text(flat_yaml(LAYERS), encoding="utf-8")
        half = folder / "flat50k.yaml"
        half.write_text(flat_yaml(LAYERS // 2), encoding="utf-8")
        as_json = folder / "flat100k.json"
        as_json.write_text(flat_json(LAYERS), encoding="utf-8")
        blocks = folder / "repeat100k.yaml"
        blocks.write_text(repeat_yaml(LAYERS), encoding="utf-8")
        files = realistic_files(folder, FILES)
        ac = archcalc_argv
        env = _env()
        commands = {
            "validate": (ac("validate", str(flat)), env),
            "validate50k": (ac("validate", str(half)), env),
            "json": (ac("summary", "--format", "json", str(flat)), env),
            "table": (ac("summary", str(flat)), env),
            "peer_yaml": (peer([flat]), env),
            "files": (ac("validate", "--quiet", *map(str, files)), env),
            "peer_files": (peer(files), env),
        }
        if not quick:
            commands.update({
                "table_tty": (ac("summary", str(flat)), env, "tty"),
                "csv": (ac("summary", "--format", "csv", str(flat)), env),
                "json_json": (ac("summary", "--format", "json", str(as_json)), env),
                "peer_json": (peer([as_json]), env),
                "validate_repeat": (ac("validate", str(blocks)), env),
                "json_repeat": (ac("summary", "--format", "json", str(blocks)), env),
            })
        got = turns(commands, repeat)
        per_layer = (got["validate"].rss - got["validate50k"].rss) / (LAYERS - LAYERS // 2)
        print(f"scale: load average {load_average()}; peak RSS of validate: "
              f"{per_layer:,.0f} bytes per layer (50k → 100k layers)", file=sys.stderr)
        out = [
            _row("summary of 100,000 layers, table to a pipe", got["table"], got["peer_yaml"],
                 "yaml CSafeLoader", GOALS["table"]),
            _row("summary --format json, 100,000 layers", got["json"], got["peer_yaml"],
                 "yaml CSafeLoader", GOALS["json"]),
            _row("validate, 100,000 layers", got["validate"], got["peer_yaml"],
                 "yaml CSafeLoader", GOALS["validate"]),
            _row(f"validate {len(files):,} files in one process", got["files"],
                 got["peer_files"], "yaml CSafeLoader", GOALS["files"]),
            {"what": "validate: peak memory per layer (50k → 100k)",
             "archcalc": f"{per_layer:,.0f} B/layer", "peer": "—", "ratio": None,
             "goal": "linear", "met": None},
        ]
        if not quick:
            out[1:1] = [
                _row("summary of 100,000 layers, table on a 120-column terminal",
                     got["table_tty"], got["peer_yaml"], "yaml CSafeLoader", GOALS["table"]),
                _row("summary --format csv, 100,000 layers", got["csv"], got["peer_yaml"],
                     "yaml CSafeLoader", GOALS["table"]),
                _row("summary --format json of a 100,000-layer JSON spec", got["json_json"],
                     got["peer_json"], "json.load", GOALS["json"]),
                _row("validate, 100,000 layers from a block and repeat",
                     got["validate_repeat"], None, "", GOALS["validate"]),
                _row("summary --format json, 100,000 layers from a block and repeat",
                     got["json_repeat"], None, "", GOALS["json"]),
            ]
        return out


def stage_table(sizes: tuple[int, ...]) -> str:
    """Each stage's µs per layer at each size: flat figures are linear work."""
    lines = ["| layers | " + " | ".join(["parse", "resolve", "analyze", "table", "json"])
             + " |  (µs per layer, one process)", "|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="archcalc-stages-") as tmp:
        for size in sizes:
            path = Path(tmp) / f"flat{size}.yaml"
            path.write_text(flat_yaml(size), encoding="utf-8")
            took = stages(path)
            lines.append(f"| {size:,} | " + " | ".join(f"{took[k] / size * 1e6:.1f}" for k in
                                                       ("parse", "resolve", "analyze", "table",
                                                        "json")) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the goal rows only")
    args = parser.parse_args()
    table = rows(args.quick)
    print("| what | archcalc | peer | ratio | goal | met |")
    print("|---|---:|---:|---:|---|---|")
    for r in table:
        ratio = f"{r['ratio']:.1f}×" if r["ratio"] is not None else "—"
        met = {True: "yes", False: "NO", None: "—"}[r["met"]]
        print(f"| {r['what']} | {r['archcalc']} | {r['peer']} | {ratio} | {r['goal']} | {met} |")
    if not args.quick:
        print()
        print(stage_table((25_000, 50_000, 100_000)))
    print(f"\nload average {load_average()}")


if __name__ == "__main__":
    main()
