"""`archcalc trace`: every number of the lecture notes' backpropagation example, and any spec.

Oracles: the notes' own numbers (the 2-2-2 sigmoid network of Mazur's worked example, quoted
from the notes), PyTorch autograd on the same weights (skipped without torch), and centred
differences of the executor's forward pass.
"""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

from archcalc.errors import ArchcalcError
from archcalc.nn import losses as L
from archcalc.nn.network import build
from archcalc.nn.weights import save_weights
from archcalc.spec import bundled_names, load
from archcalc.spec.load import bundled_dir
from archcalc.trace import run_trace

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "specs" / "backprop_example.weights.yml"
EXAMPLE = ["backprop_example", "--weights", str(WEIGHTS), "--input", "0.05,0.10",
           "--target", "0.01,0.99", "--loss", "half_sse"]


def sig(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant figures."""
    return float(f"{value:.{digits - 1}e}")


def example(lr=None, **kw):
    return run_trace(load("backprop_example"), input_values=[0.05, 0.10], weights=str(WEIGHTS),
                     target=[0.01, 0.99], loss="half_sse", lr=lr, **kw).as_dict()


def factor(trace, layer, symbol, param=None, shared=False):
    step = next(s for s in trace["backward"] if s["layer"] == layer)
    return next(f for f in step["factors"] if f["symbol"] == symbol
                and f.get("param") == param and bool(f.get("shared")) == shared)


# ---- the notes' numbers ------------------------------------------------------------------

def test_every_number_of_the_worked_example():
    t = example(lr=0.5)
    out = {s["layer"]: s["output"]["values"] for s in t["forward"]}
    assert sig(out["hidden"][0]) == 0.3775                       # z of h1
    assert sig(out["hidden_sigmoid"][0]) == 0.5933               # a of h1
    assert [sig(v) for v in out["out_sigmoid"]] == [0.7514, 0.7729]
    assert sig(t["loss"]["value"]) == 0.2984
    dw = factor(t, "out", "∂J/∂W", "weight")["values"]["values"]
    assert sig(dw[0][0]) == 0.08217 and round(dw[0][0], 4) == 0.0822        # ∂J/∂w5
    dw1 = factor(t, "hidden", "∂J/∂W", "weight")["values"]["values"][0][0]
    assert sig(dw1) == 0.0004386 and sig(dw1, 3) == 0.000439              # ∂J/∂w1
    new = {r["param"]: r["values"]["values"] for r in t["update"]["params"] if not r.get("shared")}
    assert round(new["out.weight"][0][0], 8) == 0.35891648             # w5 after one step
    # the notes' other updated weights (w6, w7, w8, w1) to their printed 9 digits
    assert [round(v, 9) for v in new["out.weight"][0] + new["out.weight"][1]] == \
        [0.358916480, 0.408666186, 0.511301270, 0.561370121]
    assert round(new["hidden.weight"][0][0], 9) == 0.149780716


def test_the_chain_rule_factors_are_the_notes():
    t = example()
    assert [s["symbol"] for s in t["forward"]] == ["z", "a", "z", "a"]
    assert t["loss"]["formula"] == "J = ½·Σ(t − a)²"
    assert t["loss"]["gradient"]["symbol"] == "∂J/∂a"
    assert sig(t["loss"]["gradient"]["values"]["values"][0], 8) == 0.74136507   # a − t
    o1 = factor(t, "out_sigmoid", "∂a/∂z")
    assert o1["formula"] == "a·(1 − a)" and sig(o1["values"]["values"][0], 8) == 0.1868156
    # the shared b of the notes (equal entries): its gradient is the sum of the units'
    per_unit = factor(t, "out", "∂J/∂b", "bias")["values"]["values"]
    shared = factor(t, "out", "∂J/∂b", "bias", shared=True)["values"]["values"]
    assert shared == pytest.approx(sum(per_unit), rel=1e-15)
    assert factor(t, "out", "∂z/∂W", "weight")["values"]["values"] == \
        [s for s in t["forward"] if s["layer"] == "hidden_sigmoid"][0]["output"]["values"]


def test_the_example_against_torch():
    torch = pytest.importorskip("torch")
    t = example(lr=0.5)
    w1 = torch.tensor([[0.15, 0.20], [0.25, 0.30]], dtype=torch.float64, requires_grad=True)
    b1 = torch.tensor([0.35, 0.35], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor([[0.40, 0.45], [0.50, 0.55]], dtype=torch.float64, requires_grad=True)
    b2 = torch.tensor([0.60, 0.60], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.05, 0.10], dtype=torch.float64)
    a = torch.sigmoid(w2 @ torch.sigmoid(w1 @ x + b1) + b2)
    loss = 0.5 * ((torch.tensor([0.01, 0.99], dtype=torch.float64) - a) ** 2).sum()
    loss.backward()
    assert t["loss"]["value"] == pytest.approx(loss.item(), rel=1e-14)
    for layer, w, b in (("out", w2, b2), ("hidden", w1, b1)):
        got_w = factor(t, layer, "∂J/∂W", "weight")["values"]["values"]
        got_b = factor(t, layer, "∂J/∂b", "bias")["values"]["values"]
        np.testing.assert_allclose(got_w, w.grad.numpy(), rtol=1e-13)
        np.testing.assert_allclose(got_b, b.grad.numpy(), rtol=1e-13)
    new = {r["param"]: r["values"]["values"] for r in t["update"]["params"] if not r.get("shared")}
    np.testing.assert_allclose(new["out.weight"], (w2 - 0.5 * w2.grad).detach().numpy(),
                               rtol=1e-14)


def test_half_sse_is_half_the_squared_error():
    torch = pytest.importorskip("torch")
    s = np.array([[0.3, -1.2, 2.0], [0.1, 0.4, -0.5]])
    t = np.array([[0.0, 1.0, 2.5], [1.0, 0.0, 0.0]])
    value, grad = L.half_sse(s, t)
    st = torch.tensor(s, requires_grad=True)
    want = 0.5 * ((st - torch.tensor(t)) ** 2).sum(dim=1).mean()   # per example, then mean
    want.backward()
    assert value == pytest.approx(want.item(), rel=1e-14)
    np.testing.assert_allclose(grad, st.grad.numpy(), rtol=1e-14)


# ---- the command -------------------------------------------------------------------------

def test_text_prints_the_notes_numbers(run):
    result = run("trace", *EXAMPLE, "--lr", "0.5")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for expected in ("z[1] = 0.15·0.05 + 0.2·0.1 + 0.35 = 0.3775", "a[1] = σ(0.3775) = 0.59326999",
                     "= 0.75136507", "= 0.77292847", "= 0.29837111",
                     "∂J/∂W[1,1] = 0.13849856·0.59326999 = 0.082167041",
                     "∂J/∂W[1,1] = 0.0087713547·0.05 = 0.00043856773",
                     "out.weight[1,1] = 0.4 − 0.5·0.082167041 = 0.35891648",
                     "∂a/∂z = a·(1 − a)", "∂J/∂z = ∂J/∂a · ∂a/∂z"):
        assert expected in text, expected
    # layer by layer: forward in order, then the loss, then backward last layer first
    order = [text.index(f"\n{name} (") for name in
             ("hidden", "hidden_sigmoid", "out", "out_sigmoid")]
    assert order == sorted(order)
    assert text.index("loss (half_sse)") < text.index("\nout_sigmoid (sigmoid)\n") \
        < text.index("\nhidden (dense)\n")


def test_json_is_the_same_trace(run):
    result = run("trace", *EXAMPLE, "--lr", "0.5", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == json.loads(json.dumps(example(lr=0.5) | {"weights": data["weights"]}))
    assert [s["layer"] for s in data["backward"]] == ["out_sigmoid", "out",
                                                      "hidden_sigmoid", "hidden"]


def test_the_bundled_weights_are_found_beside_the_spec(run):
    result = run("trace", "backprop_example", "--input", "0.05,0.10", "--target", "0.01,0.99",
                 "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["weights"].endswith("backprop_example.weights.yml")
    assert sig(data["loss"]["value"]) == 0.2984


def test_without_target_the_trace_stops_after_forward(run):
    result = run("trace", "backprop_example", "--input", "0.05 0.10")
    assert result.exit_code == 0
    assert "0.75136507" in result.stdout and "forward only" in result.stdout
    assert "∂J" not in result.stdout


def test_npz_and_json_weights_give_the_same_trace(tmp_path):
    model = build(load("backprop_example"), dtype="float64")
    rows = {"hidden": {"weight": [[0.15, 0.20], [0.25, 0.30]], "bias": [0.35, 0.35]},
            "out": {"weight": [[0.40, 0.45], [0.50, 0.55]], "bias": [0.60, 0.60]}}
    for layer, params in rows.items():
        for name, value in params.items():
            model.params[f"{layer}.{name}"][...] = value
    save_weights(model, tmp_path / "w.npz")
    (tmp_path / "w.json").write_text(json.dumps(rows))
    want = example()
    for path in ("w.npz", "w.json"):
        got = run_trace(load("backprop_example"), input_values=[0.05, 0.10],
                        weights=str(tmp_path / path), target=[0.01, 0.99]).as_dict()
        assert got["loss"] == want["loss"] and got["backward"] == want["backward"], path


def test_the_weights_file_is_not_a_bundled_spec(run):
    assert "backprop_example" in bundled_names()
    assert not any("weights" in name for name in bundled_names())
    assert "backprop_example.weights" not in run("list").stdout
    assert WEIGHTS.suffix == ".yml"                         # specs/*.yaml are all specs
    assert not fnmatch(WEIGHTS.name, "*.yaml")


def test_the_weights_file_is_installed_with_the_specs():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["archcalc.specs"]
    assert any(fnmatch(WEIGHTS.name, p) for p in patterns)


# ---- bad input: one line naming the layer and the fix, exit 1 ------------------------------

GOOD = """hidden:
  weight: [[0.15, 0.20], [0.25, 0.30]]
  bias: [0.35, 0.35]
out:
  weight: [[0.40, 0.45], [0.50, 0.55]]
  bias: [0.60, 0.60]
"""

BAD_WEIGHTS = [
    (GOOD.replace("  bias: [0.60, 0.60]\n", ""), "layer 'out': weights: 'bias' is missing",
     "give out.bias, 2 values"),
    (GOOD.replace("[[0.40, 0.45], [0.50, 0.55]]", "[[0.40, 0.45, 0.5]]"),
     "layer 'out': weights: 'weight' has shape 1×3, the layer needs 2×2", "2 rows of 2"),
    (GOOD.replace("[0.35, 0.35]", "[0.35, abc]"), "layer 'hidden': weights 'bias': 'abc' is "
     "not a number", "write numbers"),
    (GOOD.replace("[0.35, 0.35]", "[0.35, true]"), "'True' is not a number", "write numbers"),
    (GOOD.replace("[[0.15, 0.20], [0.25, 0.30]]", "[[0.15, 0.20], [0.25]]"), "ragged",
     "same number of values"),
    (GOOD.replace("[0.35, 0.35]", "[0.35, .nan]"), "not a finite number", "finite"),
    (GOOD.replace("hidden:", "hiden:"), "the spec has no layer 'hiden'", "did you mean 'hidden'"),
    (GOOD + "  gamma: [1, 1]\n", "layer 'out': weights: no parameter 'gamma'",
     "its parameters are weight, bias"),
    ("- 1\n- 2\n", "a weights file is a mapping", "layer's name"),
]


@pytest.mark.parametrize("text, message, fix", BAD_WEIGHTS)
def test_a_bad_weights_file_is_one_line(run, tmp_path, text, message, fix):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    result = run("trace", "backprop_example", "--weights", str(path), "--input", "0.05,0.1",
                 "--target", "0.01,0.99")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert message in lines[0] and f"(fix: " in lines[0] and fix in lines[0], lines[0]
    assert "Traceback" not in result.output


BAD_VALUES = [
    (["--input", "0.05,0.10,0.2"], "layer 'input': --input has 3 value(s); the spec's input 2 "
     "needs 2", "give 2 numbers"),
    (["--input", "0.05,x"], "--input: 'x' is not a number", "separated by commas"),
    (["--input", "0.05,nan"], "not a finite number", "finite"),
    (["--input", "0.05,0.1", "--target", "1,2,3"], "layer 'out_sigmoid': --target has 3 "
     "value(s); the network gives 2", "give 2 target values"),
    (["--input", "0.05,0.1", "--target", "0.5", "--loss", "cross_entropy"],
     "layer 'out_sigmoid': --target 0.5 is not a class label", "one integer in 0..1"),
    (["--input", "0.05,0.1", "--target", "1", "--loss", "nope"], "unknown loss 'nope'",
     "half_sse"),
]


@pytest.mark.parametrize("args, message, fix", BAD_VALUES)
def test_bad_values_are_one_line(run, args, message, fix):
    result = run("trace", "backprop_example", *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and fix in lines[0], lines


# ---- any spec: conv nets and merges, summarised -----------------------------------------

CONV = """name: tiny
input: [1, 6, 6]
layers:
  - conv: {filters: 2, kernel: 3, name: conv}
  - relu: {name: relu}
  - maxpool: {kernel: 2, name: pool}
  - flatten: {name: flat}
  - dense: {units: 3, name: fc}
"""


def test_a_conv_net_against_torch(write_spec):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    network = load(write_spec(CONV))
    x = np.random.default_rng(5).standard_normal(36)
    t = run_trace(network, input_values=x, target=[2], loss="cross_entropy", seed=3,
                  full=True).as_dict()
    params = {s["layer"] + "." + k: np.array(v["values"])
              for s in t["forward"] for k, v in (s.get("params") or {}).items()}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x.reshape(1, 1, 6, 6))
    h = F.max_pool2d(F.relu(F.conv2d(xt, tp["conv.weight"], tp["conv.bias"])), 2)
    z = F.linear(h.reshape(1, -1), tp["fc.weight"], tp["fc.bias"])
    loss = F.cross_entropy(z, torch.tensor([2]))
    loss.backward()
    assert t["loss"]["value"] == pytest.approx(loss.item(), rel=1e-13)
    for layer, short in (("conv", "weight"), ("conv", "bias"), ("fc", "weight")):
        got = factor(t, layer, "∂J/∂" + {"weight": "W", "bias": "b"}[short], short)
        np.testing.assert_allclose(got["values"]["values"], tp[f"{layer}.{short}"].grad.numpy(),
                                   rtol=1e-12, atol=1e-15)


RESIDUAL = """name: res
input: [2, 5, 5]
layers:
  - conv: {filters: 2, kernel: 3, padding: 1, name: stem}
  - relu: {name: stem_relu}
  - add:
      - [conv: {filters: 2, kernel: 3, padding: 1, name: branch}, batchnorm: {name: bn}]
      - []
    name: join
  - relu: {name: out_relu}
  - global_avgpool: {name: gap}
  - flatten: {name: flat}
  - dense: {units: 2, name: fc}
"""


def test_a_branched_net_input_gradient_is_the_centred_difference(write_spec):
    network = load(write_spec(RESIDUAL))
    x = np.random.default_rng(7).standard_normal(50)
    t = run_trace(network, input_values=x, target=[0.3, -0.2], loss="half_sse", full=True,
                  seed=1).as_dict()
    merges = [s for s in t["backward"] if s["layer"] == "join"]
    assert len(merges) == 2 and merges[1]["factors"][0]["formula"] == "Σ over the branches"
    dx = np.array(factor(t, "stem", "∂J/∂a")["values"]["values"]).reshape(-1)

    def J(v):
        return run_trace(network, input_values=v, target=[0.3, -0.2], seed=1).loss["value"]
    for i in (0, 17, 49):
        e = np.zeros(50)
        e[i] = 1e-6
        assert dx[i] == pytest.approx((J(x + e) - J(x - e)) / 2e-6, rel=1e-5, abs=1e-9)


def test_large_arrays_are_summarised_unless_full(write_spec):
    spec = CONV.replace("[1, 6, 6]", "[1, 20, 20]")
    network = load(write_spec(spec))
    x = np.random.default_rng(2).standard_normal(400)
    short = run_trace(network, input_values=x, target=[1]).as_dict()
    full = run_trace(network, input_values=x, target=[1], full=True).as_dict()
    conv_short, conv_full = short["forward"][0]["output"], full["forward"][0]["output"]
    assert conv_short["shape"] == [2, 18, 18] and "values" not in conv_short
    values = np.array(conv_full["values"])
    assert conv_short["summary"] == {"min": values.min(), "max": values.max(),
                                     "mean": pytest.approx(values.mean(), rel=1e-12)}
    assert short["forward"][-1]["output"]["values"] == full["forward"][-1]["output"]["values"]


def test_lenet_traces_in_text(run):
    result = run("trace", "lenet5", "--input", "random", "--target", "3", "--loss",
                 "cross_entropy")
    assert result.exit_code == 0
    assert "6×28×28 values: min" in result.stdout and "∂J/∂W" in result.stdout
    assert result.stdout.count("\nconv1 (conv2d)") == 2     # forward and backward


def test_value_files(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0.05, 0.10]]))
    (tmp_path / "x.json").write_text("[0.05, 0.10]")
    from archcalc.trace import read_values
    for name in ("x.npy", "x.json"):
        values, _ = read_values(str(tmp_path / name), "--input", 2, 0)
        assert list(np.asarray(values).reshape(-1)) == [0.05, 0.10]
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY junk")
    with pytest.raises(ArchcalcError, match="not a readable .npy"):
        read_values(str(tmp_path / "bad.npy"), "--input", 2, 0)
    first, said = read_values("random", "--input", 3, 0)
    assert len(first) == 3 and said == "random (seed 0)"
    assert not np.array_equal(first, read_values("random", "--input", 3, 1)[0])


# ---- forecasts before anything is allocated (review of issue 13) ---------------------------

HUGE_T = ("name: huge_t\ninput: [1000000000, 2]\nlayers:\n"
          "  - gru: {units: 4, bidirectional: true}\n  - dense: 2\n")
HUGE_UNITS = "name: huge_units\ninput: [4, 8]\nlayers:\n  - lstm: {units: 100000}\n  - dense: 10\n"
HUGE_VOCAB = ("name: huge_vocab\ninput: [3]\nlayers:\n  - embedding: {vocab: 1000000000, "
              "units: 1000}\n  - rnn: 2\n  - dense: 2\n")
EMB = ("name: emb\ninput: [5]\nlayers:\n  - embedding: {vocab: 7, units: 3}\n  - lstm: 2\n"
       "  - dense: 2\n")


def _nothing_built(monkeypatch):
    """Any build or random draw fails the test: a refusal must come before them."""
    import archcalc.check
    import archcalc.nn.network

    def boom(*args, **kwargs):
        raise AssertionError("allocated before the forecast refused")
    monkeypatch.setattr(archcalc.nn.network, "build", boom)
    monkeypatch.setattr(archcalc.check, "check_input", boom)


@pytest.mark.parametrize("text, shrink", [(HUGE_T, "a shorter sequence (T)"),
                                          (HUGE_UNITS, "fewer units"),
                                          (HUGE_VOCAB, "fewer units (or a smaller vocab)")])
def test_a_trace_over_the_memory_budget_is_refused_first(run, write_spec, monkeypatch, text,
                                                         shrink):
    """These grew to 23 GB (big T) or allocated before a generic out-of-memory line."""
    _nothing_built(monkeypatch)
    result = run("trace", write_spec(text), "--input", "random", "--target", "1",
                 "--memory-budget", "2GB")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs about" in lines[0] and "memory budget of 2.0 GB" in lines[0]
    assert shrink in lines[0] and "raise --memory-budget" in lines[0], lines[0]


def test_the_trace_memory_forecast_covers_the_run(write_spec):
    """The forecast (float64 forward + backward) bounds what a small trace really holds."""
    import tracemalloc

    from archcalc.calc import analyze
    from archcalc.check import refuse_trace
    network = load(write_spec(HUGE_T.replace("1000000000", "20000")))
    analysis = analyze(network, batch=1, dtype="float64")
    refuse_trace(analysis, None)
    with pytest.raises(ArchcalcError, match="needs about") as refused:
        refuse_trace(analysis, 1)
    forecast = float(re.search(r"needs about ([0-9.]+) MB", str(refused.value)).group(1)) * 1e6
    tracemalloc.start()
    run_trace(network, input_values=np.zeros(40_000), target=[0.0, 0.0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= forecast <= 2 * peak


def test_a_long_recurrent_trace_is_refused_with_its_time(run, write_spec, monkeypatch):
    """T = 100,000 took 7.2 s: the per-step cost is in the work estimate (a lower limit
    makes it refuse; before, MACs alone were ~10⁸)."""
    _nothing_built(monkeypatch)
    monkeypatch.setenv("ARCHCALC_MAX_CHECK_WORK", str(10**10))
    result = run("trace", write_spec(HUGE_T.replace("1000000000", "100000")), "--input", "random")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "units of work, ~7.2 s here (200,000 recurrent steps" in line, line
    assert "a shorter sequence (T)" in line and "ARCHCALC_MAX_CHECK_WORK" in line


def test_random_input_of_an_embedding_is_token_ids(run, write_spec):
    result = run("trace", write_spec(EMB), "--input", "random", "--format", "json")
    assert result.exit_code == 0, result.stderr
    ids = np.asarray(json.loads(result.stdout)["input"]["values"])
    assert ids.shape == (5,) and np.array_equal(ids, np.round(ids)) and ids.min() >= 0
    assert ids.max() <= 6


@pytest.mark.parametrize("value, message, fix", [
    ("1e300", "1e+300 (example 1, step 1) is not a token id: outside the vocabulary of 7 ids",
     "map the ids into 0 … 6"),
    ("1.5", "the value 1.5 (example 1, step 1) is not a whole number, so not a token id",
     "whole numbers in 0 … 6"),
    ("9", "token id 9 (example 1, step 1) is outside the vocabulary of 7 ids",
     "vocab: 10 or more"),
])
def test_a_bad_token_id_is_one_short_line(run, write_spec, value, message, fix):
    spec = write_spec(EMB)
    result = run("trace", spec, "--input", f"{value},1,2,3,4")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and len(line.replace(spec, "")) <= 200, line  # 1e300 gave ~600
    assert message in line and fix in line, line


def test_an_input_that_is_not_a_file_of_values(run, tmp_path):
    import os
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "g.txt").write_text("1 2 3\n4 5 six\n")
    (tmp_path / "o.json").write_text('{"a": 1}')
    for ref, said in ((fifo, "is a named pipe (FIFO), not a file of values"),
                      (tmp_path / "dir.npy", "is a directory, not a file of values"),
                      ("/dev/zero", "is a device, not a file of values")):
        result = run("trace", "backprop_example", "--input", str(ref))
        assert result.exit_code == 1 and said in result.stderr, result.stderr
        assert "spec file" not in result.stderr and ".txt/.npy file" in result.stderr
    result = run("trace", "backprop_example", "--input", str(tmp_path / "g.txt"))
    assert "g.txt" in result.stderr and "'six' is not a number" in result.stderr
    result = run("trace", "backprop_example", "--input", str(tmp_path / "o.json"))
    assert "an object (a mapping of keys), not a list of numbers" in result.stderr
    assert "Dict" not in result.stderr
