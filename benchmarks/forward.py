"""Forward-pass benchmark: the NumPy executor against numpy's own GEMM and against PyTorch.

    python benchmarks/forward.py                      # every bundled network, torch if present
    python benchmarks/forward.py --networks lenet5,vgg16 --repeat 7 --no-torch
    python benchmarks/forward.py --json runs/forward.json

What it measures, per network (batch 1 at the spec's input, and LeNet-5 at batch 256):
  - the median wall time of model.forward(x, training=False) over --repeat runs (after a
    warm-up run), for the executor and, when torch imports, for the same network translated to
    torch.nn with the same weights, timed in two blocks right after each other with a pause
    between (see `settle`); the outputs are compared: max |Δ| / max |y| is printed;
  - the conv layers alone: the sum of the conv layers' own times (the executor's
    LayerRecord.seconds; forward hooks in torch), median over the runs, and their achieved
    GFLOP/s = 2·MACs / time, MACs from the calculator (H_out·W_out·C_out·K_h·K_w·C_in/groups);
  - next to numpy's own float32 matrix-product rate on this machine (an n×n @ n×n product,
    2·n³ FLOPs, timed in turns with the executor's runs so that both see the same load),
    the ceiling an im2col + GEMM convolution can approach.
torch runs with as many threads as numpy's BLAS (--threads, or numpy's count). This is a
script, not a test.

`rows(quick)` gives the issue-14 rows (benchmarks/run.py): VGG16 at batch 1 (goal: within
1.3× of PyTorch) and ResNet-50 at batch 1 (information), both sides with their DEFAULT
threads, timed in blocks that take turns (executor, pause, torch, pause, ...); medians.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py

from archcalc.calc import analyze  # noqa: E402
from machine import cpu_model  # noqa: E402
from archcalc.nn import build  # noqa: E402
from archcalc.spec import bundled_names, load  # noqa: E402
from archcalc.spec.layers import IN_PLACE, explicit_pads, pair, same_pads  # noqa: E402
from archcalc.spec.tree import Leaf, Merge, Network  # noqa: E402

try:
    import torch
    from torch import nn
except ImportError:  # the benchmark still runs, without the torch columns
    torch = None


# ---- the machine ---------------------------------------------------------------------------

def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS that numpy's wheels bundle (numpy.libs/), if that is numpy's BLAS."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                       "*openblas*")):
        return ctypes.CDLL(path)
    return None


def _openblas_call(action: str, *args: int) -> int | None:
    lib = _openblas()
    if lib is None:
        return None
    for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
        func = getattr(lib, f"{prefix}{action}_num_threads{suffix}", None)
        if func is not None:
            func.restype = ctypes.c_int if action == "get" else None
            return func(*args)
    return None


def blas_threads() -> int | None:
    """Threads of the BLAS numpy calls."""
    try:
        from threadpoolctl import threadpool_info  # optional

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return int(pool["num_threads"])
    except ImportError:
        pass
    return _openblas_call("get")


def set_blas_threads(count: int) -> None:
    try:
        from threadpoolctl import threadpool_limits  # optional

        threadpool_limits(count, user_api="blas")
        return
    except ImportError:
        pass
    if _openblas_call("get") is None:
        raise SystemExit("cannot set numpy's BLAS threads here; set OPENBLAS_NUM_THREADS "
                         "(or install threadpoolctl) instead of --threads")
    _openblas_call("set", count)


def blas_name() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        return "unknown"


def machine() -> dict[str, Any]:
    info = {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "blas": blas_name(), "blas_threads": blas_threads(),
        "torch": torch.__version__ if torch is not None else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    return info


# ---- timing --------------------------------------------------------------------------------

def median_time(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: first-touch page faults, BLAS thread start-up, torch's kernel choice
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Gemm:
    """numpy's own float32 matrix product, n×n @ n×n = 2·n³ FLOPs: the ceiling an
    im2col + GEMM convolution can approach on this machine."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.n = n
        self.a = rng.standard_normal((n, n), dtype=np.float32)
        self.b = rng.standard_normal((n, n), dtype=np.float32)
        self.out = np.empty((n, n), dtype=np.float32)

    def __call__(self) -> None:
        np.matmul(self.a, self.b, out=self.out)

    def gflops(self, seconds: float) -> float:
        return 2 * self.n ** 3 / seconds / 1e9


# ---- spec → torch.nn, with the executor's weights -------------------------------------------

if torch is not None:
    class Maxout(nn.Module):
        """Max over `pieces` consecutive channels: (N, C, ...) → (N, C/pieces, ...)."""

        def __init__(self, pieces: int) -> None:
            super().__init__()
            self.pieces = pieces

        def forward(self, x):
            return x.unflatten(1, (x.shape[1] // self.pieces, self.pieces)).amax(2)

    class MergeModule(nn.Module):
        """Branches on the same input, concatenated on channels or added."""

        def __init__(self, mode: str, branches: list) -> None:
            super().__init__()
            self.mode = mode
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            outs = [branch(x) for branch in self.branches]
            if self.mode == "concat":
                return torch.cat(outs, dim=1)
            y = outs[0] + outs[1]
            for other in outs[2:]:
                y = y + other
            return y


class TorchTranslator:
    """Builds a torch.nn.Module from the resolved spec tree. Input shapes come from the
    calculator's rows ('same' padding needs the size); weights from the executor's params."""

    def __init__(self, network: Network, params: dict, buffers: dict) -> None:
        self.network = network
        self.params, self.buffers = params, buffers
        self.rows = {row.path: row for row in analyze(network).rows}
        self.convs: list = []  # the torch conv modules, for timing them alone

    def module(self):
        return self.node(self.network.root).eval()

    def node(self, node, fresh: bool = False):
        """`fresh`: the node's input is a tensor made inside this sequence, so an activation
        may overwrite it (never the network's input or a merge's shared input)."""
        if isinstance(node, Leaf):
            return self.leaf(node, fresh)
        if isinstance(node, Merge):
            return MergeModule(node.mode, [self.node(b) for b in node.branches])
        modules = []
        for child in node.children:
            modules.append(self.node(child, fresh))
            fresh = fresh or not (isinstance(child, Leaf) and child.kind in IN_PLACE)
        return nn.Sequential(*modules)

    def tensor(self, key: str, source: dict | None = None):
        return torch.from_numpy(np.array((source or self.params)[key], dtype=np.float32))

    def leaf(self, leaf: Leaf, inplace: bool):
        """One layer; activations in place where safe, like torchvision's ReLU(inplace=True)."""
        spec, name = leaf.spec, self.network.display(leaf.path)
        shape = self.rows[leaf.path].input_shape
        kind = spec.type
        if kind == "conv2d":
            return self.conv(spec, name, shape)
        if kind in ("maxpool", "avgpool"):
            pads = explicit_pads(spec.padding)
            if pads is None:
                k, s = pair(spec.kernel), spec.strides
                pads = same_pads(shape[1], k[0], s[0], 1) + same_pads(shape[2], k[1], s[1], 1)
            if pads[0] != pads[1] or pads[2] != pads[3]:
                raise NotImplementedError(f"{name}: asymmetric pool padding")
            cls = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
            return cls(pair(spec.kernel), spec.strides, (pads[0], pads[2]),
                       ceil_mode=spec.ceil_mode)
        if kind == "global_avgpool":
            pool = nn.AdaptiveAvgPool2d(1)
            return pool if spec.keepdims else nn.Sequential(pool, nn.Flatten())
        if kind == "dense":
            layer = nn.Linear(shape[0], spec.units, bias=spec.bias)
            return self.load(layer, name, ("weight", "bias") if spec.bias else ("weight",))
        if kind == "batchnorm":
            cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            layer = cls(shape[0], eps=spec.eps, momentum=spec.momentum)
            self.load(layer, name, ("weight", "bias"))
            layer.running_mean.copy_(self.tensor(f"{name}.running_mean", self.buffers))
            layer.running_var.copy_(self.tensor(f"{name}.running_var", self.buffers))
            return layer
        if kind == "layernorm":
            return self.load(nn.LayerNorm(list(shape), eps=spec.eps), name, ("weight", "bias"))
        simple = {
            "flatten": lambda: nn.Flatten(), "dropout": lambda: nn.Dropout(spec.rate),
            "relu": lambda: nn.ReLU(inplace=inplace),
            "leaky_relu": lambda: nn.LeakyReLU(spec.slope, inplace=inplace),
            "elu": lambda: nn.ELU(spec.alpha, inplace=inplace), "sigmoid": lambda: nn.Sigmoid(),
            "tanh": lambda: nn.Tanh(), "softmax": lambda: nn.Softmax(dim=1),
            "maxout": lambda: Maxout(spec.pieces),
            "lrn": lambda: nn.LocalResponseNorm(spec.size, spec.alpha, spec.beta, spec.k),
        }
        return simple[kind]()

    def conv(self, spec, name: str, shape: tuple[int, ...]):
        kernel, stride, dilation = pair(spec.kernel), pair(spec.stride), pair(spec.dilation)
        pads = explicit_pads(spec.padding)
        if pads is None:
            pads = (same_pads(shape[1], kernel[0], stride[0], dilation[0])
                    + same_pads(shape[2], kernel[1], stride[1], dilation[1]))
        symmetric = pads[0] == pads[1] and pads[2] == pads[3]
        layer = nn.Conv2d(shape[0], spec.filters, kernel, stride,
                          (pads[0], pads[2]) if symmetric else 0, dilation, spec.groups,
                          bias=spec.bias)
        self.load(layer, name, ("weight", "bias") if spec.bias else ("weight",))
        self.convs.append(layer)
        if symmetric:
            return layer
        return nn.Sequential(nn.ZeroPad2d((pads[2], pads[3], pads[0], pads[1])), layer)

    def load(self, layer, name: str, shorts: tuple[str, ...]):
        with torch.no_grad():
            for short in shorts:
                getattr(layer, short).copy_(self.tensor(f"{name}.{short}"))
        return layer


def torch_conv_seconds(module, convs: list, x, repeat: int) -> float:
    """The conv modules' own time in one forward pass (hooks around each), median."""
    spent: list[float] = [0.0]
    starts: dict[int, float] = {}

    def before(mod, _inputs):
        starts[id(mod)] = time.perf_counter()

    def after(mod, _inputs, _output):
        spent[0] += time.perf_counter() - starts[id(mod)]

    handles = [c.register_forward_pre_hook(before) for c in convs]
    handles += [c.register_forward_hook(after) for c in convs]
    totals = []
    try:
        with torch.inference_mode():
            module(x)
            for _ in range(repeat):
                spent[0] = 0.0
                module(x)
                totals.append(spent[0])
    finally:
        for handle in handles:
            handle.remove()
    return statistics.median(totals)


# ---- one network ---------------------------------------------------------------------------

def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (a, b, a, b, ...) after one warm-up
    each, so that on a shared machine all of them see the same background load. Only for
    functions on the same thread pool (see `settle`)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def settle() -> None:
    """Let the other library's worker threads go to sleep. OpenBLAS and OpenMP workers spin
    for a while after a call; measured here, a torch forward started right after a numpy
    GEMM ran 2-3× slower on 2 cores. So numpy and torch are timed in separate blocks, one
    right after the other, with this pause between them."""
    time.sleep(0.5)


def bench(name: str, batch: int, repeat: int, use_torch: bool, gemm: Gemm) -> dict[str, Any]:
    network = load(name)
    rows = analyze(network, batch=batch).rows
    conv_macs = sum(r.macs for r in rows if r.type == "conv2d") * batch
    macs = sum(r.macs for r in rows) * batch
    model = build(network, seed=0)
    x = np.random.default_rng(1).standard_normal((batch, *network.input_shape),
                                                 dtype=np.float32)
    conv_times: list[float] = []

    def numpy_forward():
        model.forward(x, training=False)
        conv_times.append(sum(r.seconds for r in model.records if r.type == "conv2d"))

    result: dict[str, Any] = {
        "network": name, "batch": batch, "input": list(network.input_shape),
        "gflop": 2 * macs / 1e9, "conv_gflop": 2 * conv_macs / 1e9,
    }
    # the GEMM reference runs in the same turns: its rate is measured under the same load
    fns: dict[str, Callable[[], Any]] = {"numpy": numpy_forward, "gemm": gemm}
    module = translator = None
    if use_torch:
        try:
            translator = TorchTranslator(network, model.params, model.buffers)
            module = translator.module()
        except NotImplementedError as exc:
            result["torch_skipped"] = str(exc)
    if module is not None:
        xt = torch.from_numpy(x)

        def torch_forward():
            with torch.inference_mode():
                return module(xt)

    medians = interleaved(fns, repeat)
    if module is not None:
        settle()
        medians["torch"] = median_time(torch_forward, repeat)
        settle()
    result["numpy_s"] = medians["numpy"]
    result["gemm_gflops"] = gemm.gflops(medians["gemm"])
    conv_s = statistics.median(conv_times[1:])  # the warm-up run left out
    result["numpy_conv_s"] = conv_s
    result["numpy_conv_gflops"] = 2 * conv_macs / conv_s / 1e9 if conv_macs else None
    if conv_macs:
        result["conv_of_gemm"] = result["numpy_conv_gflops"] / result["gemm_gflops"]
    if module is not None:
        result["torch_s"] = medians["torch"]
        result["ratio"] = result["numpy_s"] / result["torch_s"]
        expected = model.forward(x, training=False)
        diff = np.abs(torch_forward().numpy() - expected)
        settle()
        # relative to the output's scale: logits of a deep random network can be large
        result["max_rel_diff"] = float(diff.max() / max(float(np.abs(expected).max()), 1e-30))
        if conv_macs:
            tconv = torch_conv_seconds(module, translator.convs, xt, repeat)
            settle()
            result["torch_conv_s"] = tconv
            result["torch_conv_gflops"] = 2 * conv_macs / tconv / 1e9
    return result


def conv_detail(name: str, repeat: int) -> None:
    """Per conv layer of one network at batch 1: the executor's time next to the time of
    the bare matrix product of the same shape, (G, F/G, K) @ (G, K, H_out·W_out) with
    K = C_in/G·kH·kW, so that what im2col and the rest cost shows apart from what the
    product's shape costs."""
    network = load(name)
    model = build(network, seed=0)
    x = np.random.default_rng(1).standard_normal((1, *network.input_shape), dtype=np.float32)
    per_layer: dict[str, list[float]] = {}
    for _ in range(repeat + 1):
        model.forward(x, training=False)
        for rec in model.records:
            if rec.type == "conv2d":
                per_layer.setdefault(rec.name, []).append(rec.seconds)
    leaves = {network.display(leaf.path): leaf for leaf in network.leaves()}
    rng = np.random.default_rng(2)
    print(f"\n{name}: conv layers at batch 1 (executor vs its bare matrix product)")
    print(f"{'layer':<28}{'GEMM shape (F/G×K @ K×M)':>28}{'conv ms':>9}{'GEMM ms':>9}"
          f"{'conv GF/s':>10}{'GEMM GF/s':>10}")
    total_conv = total_gemm = flops_all = 0.0
    for row in analyze(network).rows:
        if row.type != "conv2d":
            continue
        spec = leaves[row.name].spec
        kh, kw = pair(spec.kernel)
        g = spec.groups
        k = row.input_shape[0] // g * kh * kw
        m = row.output_shape[1] * row.output_shape[2]
        a = rng.standard_normal((g, spec.filters // g, k), dtype=np.float32)
        b = rng.standard_normal((g, k, m), dtype=np.float32)
        gemm = median_time(lambda: np.matmul(a, b), repeat)
        conv = statistics.median(per_layer[row.name][1:])
        flops = 2 * row.macs
        total_conv, total_gemm, flops_all = total_conv + conv, total_gemm + gemm, flops_all + flops
        shape = f"{spec.filters // g}×{k} @ {k}×{m}" + (f" ×{g}" if g > 1 else "")
        print(f"{row.name:<28}{shape:>28}"
              f"{conv * 1e3:9.2f}{gemm * 1e3:9.2f}{flops / conv / 1e9:10.1f}"
              f"{flops / gemm / 1e9:10.1f}")
    print(f"{'all conv layers':<28}{'':>28}{total_conv * 1e3:9.1f}{total_gemm * 1e3:9.1f}"
          f"{flops_all / total_conv / 1e9:10.1f}{flops_all / total_gemm / 1e9:10.1f}")


# ---- report --------------------------------------------------------------------------------

def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:9.1f}" if seconds is not None else f"{'—':>9}"


def _num(value: float | None, fmt: str = "7.1f") -> str:
    return format(value, fmt) if value is not None else f"{'—':>{int(fmt.split('.')[0])}}"


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, "
          f"load average {', '.join(f'{v:.2f}' for v in info['load_average'] or [])}")
    print(f"python {info['python']}, numpy {info['numpy']} ({info['blas']}, "
          f"{info['blas_threads']} threads), torch {info['torch'] or 'not installed'}")


def print_table(results: list[dict[str, Any]], gemm_n: int) -> None:
    print("GEMM GF/s = the same product timed in turns with each network's runs (same load); "
          "np conv = the executor's conv layers alone")
    head = (f"{'network':<13}{'batch':>6}{'GFLOP':>7}{'numpy ms':>10}{'torch ms':>10}"
            f"{'np/torch':>9}{'GEMM GF/s':>10}{'np conv':>8}{'% GEMM':>7}{'torch conv':>11}"
            f"{'max|Δ|/max|y|':>15}")
    print(head)
    print("-" * len(head))
    for r in results:
        share = r.get("conv_of_gemm")
        print(f"{r['network']:<13}{r['batch']:>6}{r['gflop']:>7.2f}{_ms(r['numpy_s']):>10}"
              f"{_ms(r.get('torch_s')):>10}{_num(r.get('ratio'), '9.2f')}"
              f"{r['gemm_gflops']:>10.1f}{_num(r.get('numpy_conv_gflops'), '8.1f')}"
              f"{_num(100 * share if share else None, '6.0f')}%"
              f"{_num(r.get('torch_conv_gflops'), '11.1f')}"
              f"{_num(r.get('max_rel_diff'), '15.1e')}")


def print_goals(results: list[dict[str, Any]]) -> None:
    print()
    vgg = next((r for r in results if r["network"] == "vgg16" and r["batch"] == 1), None)
    if vgg and vgg.get("ratio"):
        verdict = "met" if vgg["ratio"] <= 2 else "NOT met"
        print(f"goal 1, VGG16 batch-1 forward within 2× of PyTorch: numpy/torch = "
              f"{vgg['ratio']:.2f} ({verdict})")
    convs = [r for r in results if r.get("conv_of_gemm")]
    if convs:
        # time-weighted: all conv FLOPs over all conv seconds, against the GEMM rate of the
        # same turns weighted the same way
        seconds = sum(r["numpy_conv_s"] for r in convs)
        rate = sum(r["conv_gflop"] for r in convs) / seconds
        ceiling = sum(r["gemm_gflops"] * r["numpy_conv_s"] for r in convs) / seconds
        verdict = "met" if rate >= 0.6 * ceiling else "NOT met"
        print(f"goal 2, conv layers at ≥ 60% of numpy's GEMM rate: all networks' conv layers "
              f"together {rate:.1f} GFLOP/s = {100 * rate / ceiling:.0f}% of {ceiling:.1f} "
              f"({verdict})")
        if vgg and vgg.get("conv_of_gemm"):
            print(f"        VGG16's conv layers alone: {vgg['numpy_conv_gflops']:.1f} GFLOP/s "
                  f"= {100 * vgg['conv_of_gemm']:.0f}% of {vgg['gemm_gflops']:.1f}")


def turns(fns: dict[str, Callable[[], Any]], rounds: int, block: int) -> dict[str, float]:
    """Median seconds of each function, run in blocks of `block` calls that take turns
    (a a a, pause, b b b, pause, a a a, ...) `rounds` times, one untimed warm-up call
    opening every block. Blocks rather than alternate calls, because each library's worker
    threads must go to sleep before the other's run (see `settle`); turns, so that a change
    of load on a shared machine hits both alike."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
            settle()
    return {key: statistics.median(values) for key, values in times.items()}


ROWS_GOALS = {"vgg16": 1.3, "resnet50": None}  # issue 14, goal 3 (ResNet-50: information)


def rows(quick: bool) -> list[dict]:
    """Issue 14's forward rows: VGG16 and ResNet-50 at batch 1, executor / PyTorch."""
    print(f"forward: {cpu_model()}, {os.cpu_count()} cores, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}, numpy BLAS {blas_threads()} "
          f"threads, torch {torch.get_num_threads() if torch is not None else '—'} threads",
          file=sys.stderr)
    out = []
    for name, goal in ROWS_GOALS.items():
        network = load(name)
        model = build(network, seed=0)
        x = np.random.default_rng(1).standard_normal((1, *network.input_shape),
                                                     dtype=np.float32)
        fns: dict[str, Callable[[], Any]] = {"numpy": lambda: model.forward(x, training=False)}
        if torch is not None:
            module = TorchTranslator(network, model.params, model.buffers).module()
            xt = torch.from_numpy(x)

            def torch_forward():
                with torch.inference_mode():
                    return module(xt)
            fns["torch"] = torch_forward
        got = turns(fns, 3 if quick else 5, 3 if quick else 5)
        what = f"{'VGG16' if name == 'vgg16' else 'ResNet-50'} forward, batch 1 (float32, " \
               "default threads)"
        row = {"what": what, "archcalc": f"{got['numpy'] * 1e3:.1f} ms", "peer": "—",
               "ratio": None, "goal": f"≤ {goal}× PyTorch" if goal else "(information)",
               "met": None}
        if "torch" in got:
            ratio = got["numpy"] / got["torch"]
            row.update(peer=f"PyTorch {got['torch'] * 1e3:.1f} ms", ratio=ratio,
                       met=ratio <= goal if goal else None)
        else:
            row["note"] = "PyTorch is not installed: pip install torch to compare"
        out.append(row)
    print(f"forward: load average at the end {', '.join(f'{v:.2f}' for v in os.getloadavg())}",
          file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(bundled_names()),
                        help="comma-separated bundled names (default: all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per network")
    parser.add_argument("--lenet-batch", type=int, default=256)
    parser.add_argument("--gemm-n", type=int, default=2048)
    parser.add_argument("--threads", type=int,
                        help="threads for numpy's BLAS and torch (default: numpy's own count)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--detail", help="comma-separated networks: per conv layer, the "
                                         "executor vs the bare matrix product of its shape")
    args = parser.parse_args(argv)
    use_torch = torch is not None and not args.no_torch
    if args.threads:
        set_blas_threads(args.threads)
    threads = blas_threads()
    if use_torch and threads:
        torch.set_num_threads(threads)  # the same number of cores for both
    info = machine()
    gemm = Gemm(args.gemm_n)
    info["gemm_alone_gflops"] = gemm.gflops(median_time(gemm, args.repeat))
    print_machine(info)
    print(f"numpy float32 GEMM {args.gemm_n}×{args.gemm_n} @ {args.gemm_n}×{args.gemm_n} "
          f"alone: {info['gemm_alone_gflops']:.1f} GFLOP/s\n")
    runs = [(name, 1) for name in args.networks.split(",") if name]
    if "lenet5" in args.networks.split(","):
        runs.append(("lenet5", args.lenet_batch))
    results = []
    for name, batch in runs:
        results.append(bench(name, batch, args.repeat, use_torch, gemm))
        print(f"  measured {name} at batch {batch}", file=sys.stderr)
    info["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print_table(results, args.gemm_n)
    print_goals(results)
    end = info["load_average_end"] or []
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in end)}")
    for name in filter(None, (args.detail or "").split(",")):
        conv_detail(name, args.repeat)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": info, "gemm_n": args.gemm_n,
                                               "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
