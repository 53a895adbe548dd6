"""`archcalc conventions` without the peers: each peer's figures on small specs checked by hand
from the rules cited in archcalc/calc/conventions.py, the figures issue 12 and DESIGN.md
measured with the tools themselves (ResNet-50, ResNet-152), and the command's output.

tests/test_conventions_peers.py runs the real tools."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import archcalc.cli.conventions  # noqa: F401 - registers the command (until the lazy table has it)
from archcalc.calc import analyze
from archcalc.calc.conventions import PEERS, conventions
from archcalc.cli import main
from archcalc.spec import bundled_names, load, loads

TINY = """
name: tiny
input: [3, 8, 8]
layers:
  - conv: {name: conv1, filters: 4, kernel: 3, padding: 1}
  - batchnorm: {name: bn1}
  - relu: {name: relu1}
  - maxpool: {name: pool1, kernel: 2}
  - global_avgpool: {name: gap}
  - flatten: {name: flat}
  - dense: {name: fc, units: 3}
"""
# By hand: conv1 3×8×8 → 4×8×8: weights 4·3·3·3 = 108, bias 4, MACs 8·8·4·27 = 6,912, output
# 256 values; bn1: γ, β 8, running mean/var 8, output 256; relu1 in place; pool1 → 4×4×4 = 64
# (input 256); gap → 4×1×1 (input 64); fc 4 → 3: 12 weights, 3 biases, 12 MACs.
# archcalc: params 143 (135 trainable + 8), MACs 6,924, input 192, kept 256+256+64+4+3 = 583.


def figures(text: str, batch: int = 1) -> dict:
    return {p.key: p.as_dict() for p in conventions(analyze(loads(text), batch=batch))}


def test_tiny_by_hand():
    got = figures(TINY)
    assert {k: got["torchinfo"][k] for k in (
        "total_params", "trainable_params", "total_mult_adds", "total_input",
        "total_output_bytes", "total_param_bytes", "estimated_total_size")} == {
        "total_params": 135, "trainable_params": 135,
        # conv (108 + 4)·64 + bn 8 + fc 15
        "total_mult_adds": 7_168 + 8 + 15,
        "total_input": 192 * 4 + 64,
        # 2 × 4 B × (conv 256 + bn 256 + fc 3): only layers that own parameters
        "total_output_bytes": 8 * 515,
        "total_param_bytes": 540,
        "estimated_total_size": 832 + 4_120 + 540}
    assert got["torchinfo"]["printed"]["Input size (MB)"] == "0.00"
    # conv + fc MACs, bn 2·256, gap 1·64; activations: conv and fc outputs
    assert (got["fvcore"]["FlopCountAnalysis"], got["fvcore"]["ActivationCountAnalysis"]) == (
        6_912 + 12 + 512 + 64, 256 + 3)
    # bn 4·256, gap (16 + 1)·4
    assert (got["thop"]["macs"], got["thop"]["params"]) == (6_912 + 12 + 1_024 + 68, 135)
    # conv + bias 256, bn 512, relu 2·256, pool 2·256, gap 2·64, fc 12 + 3
    assert got["ptflops_pytorch"]["macs"] == 6_912 + 256 + 512 + 512 + 512 + 128 + 15
    assert got["ptflops_aten"]["macs"] == 6_912 + 256 + 12 + 3
    assert got["ptflops_pytorch"]["params"] == got["ptflops_aten"]["params"] == 135
    # 2 × (forward 6,924 + conv1 dW 6,912 (no dX: first layer) + fc dX 12 + dW 12)
    assert got["pytorch_flop_counter"]["forward"] == 13_848
    assert got["pytorch_flop_counter"]["forward_backward"] == 2 * (6_924 + 6_912 + 24)
    assert (got["keras"]["count_params"], got["keras"]["trainable_params"],
            got["keras"]["non_trainable_params"]) == (143, 135, 8)
    # macc: conv + fc + the Scale of bn (256); activation: input 192 + conv 256 + BatchNorm
    # and Scale 2·256 + relu 256 + pool 64 + gap 4 + fc 3; param: conv 112 + BatchNorm 2·4 + fc 15
    assert (got["netscope"]["macc"], got["netscope"]["activation"],
            got["netscope"]["param"]) == (7_180, 1_287, 135)
    assert all(got[p]["complete"] for p in PEERS)


def test_batch_scales_every_peer_but_ptflops():
    one, two = figures(TINY), figures(TINY, batch=2)
    assert two["torchinfo"]["total_mult_adds"] == 2 * one["torchinfo"]["total_mult_adds"]
    assert two["torchinfo"]["total_input"] == 2 * 192 * 4 + 64  # one header, twice the data
    assert two["fvcore"]["FlopCountAnalysis"] == 2 * one["fvcore"]["FlopCountAnalysis"]
    assert two["thop"]["macs"] == 2 * one["thop"]["macs"]
    assert two["netscope"]["activation"] == 2 * one["netscope"]["activation"]
    assert two["ptflops_pytorch"] == one["ptflops_pytorch"]  # one image, whatever the batch


DEPTHWISE = """
name: dw
input: [4, 6, 6]
layers:
  - conv: {name: dw, filters: 4, kernel: 3, padding: 1, groups: 4, bias: false}
  - conv: {name: pw, filters: 8, kernel: 1}
"""


def test_flop_counter_counts_a_grouped_weight_gradient_groups_times():
    # dw: MACs 36·4·9·1 = 1,296, the first layer (no dX), dW 1,296 counted 4 times by
    # conv_backward_flop; pw: MACs 36·8·4 = 1,152, dX and dW 1,152 each.
    got = figures(DEPTHWISE)["pytorch_flop_counter"]
    assert got["forward_backward"] == 2 * (2_448 + 4 * 1_296 + 2 * 1_152)
    assert any("+7,776 grouped convolutions' weight gradients" in line for line in got["why"])


# Measured with the tools themselves (issue 12's table; DESIGN.md's facts).
def test_resnet50_is_issue_12s_table():
    got = {p.key: p.as_dict() for p in conventions(analyze(load("resnet50")))}
    assert got["torchinfo"]["total_mult_adds"] == 4_089_238_376
    assert got["fvcore"]["FlopCountAnalysis"] == 4_111_512_576
    assert got["thop"]["macs"] == 4_133_742_592
    assert got["ptflops_pytorch"]["macs"] == 4_132_436_968
    assert got["ptflops_aten"]["macs"] == 4_089_185_256
    assert got["pytorch_flop_counter"]["forward"] == 8_178_368_512
    assert analyze(load("resnet50")).totals.macs == 4_089_184_256
    # issue 12, item 5: forward + backward on a batch of 2 in training mode
    two = {p.key: p.as_dict() for p in conventions(analyze(load("resnet50"), batch=2))}
    assert two["pytorch_flop_counter"]["forward_backward"] == 48_598_155_264


def test_resnet152_torchinfo_forward_backward_size():
    got = {p.key: p.as_dict() for p in conventions(analyze(load("resnet152")))}
    assert got["torchinfo"]["total_output_bytes"] == 360_873_792
    assert got["torchinfo"]["printed"]["Forward/backward pass size (MB)"] == "360.87"


@pytest.mark.parametrize("name", bundled_names())
def test_every_difference_is_explained(name):
    """On every bundled spec, each figure's reasons add up to its difference from archcalc,
    none is the catch-all "other difference", and a peer without a rule for a kind says so."""
    for peer in conventions(analyze(load(name))):
        for fig in peer.figures:
            assert sum(count for count, _ in fig.reasons) == fig.difference, (peer.key, fig.key)
            assert all(text != "other difference" for _, text in fig.reasons), (peer.key, fig.key)
        if not peer.complete:
            assert "not reproduced" in peer.why()[-1]


def test_a_kind_without_a_rule_is_named_not_zero():
    text = TINY.replace("- relu: {name: relu1}", "- maxout: {name: mo, pieces: 2}")
    got = figures(text)
    assert not got["netscope"]["complete"]
    assert "maxout (1)" in got["netscope"]["why"][-1]


SEQ = """
name: seq
input: [3, 4]
layers:
  - lstm: 2
  - dense: 1
"""
# By hand: lstm F 4, H 2, T 3: weights 4·2·(4 + 2) = 48, biases b_ih + b_hh 2·8 = 16, MACs
# 3·8·6 = 144; dense 2 → 1: 2 weights, 1 bias, 2 MACs. archcalc: params 67, MACs 146.


def test_sequence_rules_by_hand():
    got = figures(SEQ)
    # every weight and bias once per step: 3·64; dense 2 + 1 (its bias once)
    assert got["torchinfo"]["total_mult_adds"] == 192 + 3
    # count_lstm: 3 steps × (4 gate blocks × (2·6 + 2 + 2·2) + 3·2 + 2); dense 2
    assert got["thop"]["macs"] == 3 * (4 * 18 + 8) + 2
    # rnn_flops_counter_hook: 3 × (8·4 + 8·2 + 10·2 + 8 + 8); dense 2 + 1
    assert got["ptflops_pytorch"]["macs"] == 3 * 84 + 3
    # nn.LSTM on CPU is aten.mkldnn_rnn_layer: 0 for ptflops's aten backend and PyTorch
    assert got["ptflops_aten"]["macs"] == 3
    assert got["pytorch_flop_counter"]["forward"] == 2 * 2
    assert got["fvcore"]["FlopCountAnalysis"] == 2  # aten::lstm: skipped
    assert got["keras"]["count_params"] == 67 - 8  # Keras's LSTM: one bias of 4H
    assert all(got[p]["complete"] for p in PEERS if p != "netscope")


def test_a_left_out_layer_is_one_reason_with_its_count():
    """Netscope has no rule for an LSTM: its figures leave it out, and the whole of the
    difference is one reason naming it (not batch norm, not "other")."""
    got = figures(SEQ)["netscope"]
    assert (got["macc"], got["param"], got["complete"]) == (2, 3, False)
    kept = analyze(loads(SEQ)).rows[0].activations  # what the LSTM keeps for BPTT
    left = [line for line in got["why"] if "left out" in line]
    assert left == [
        f"{key}: −{n} left out: 1 layer of kind lstm (1) — no rule read from the tool's "
        "source for them" for key, n in (("macc", 144), ("activation", kept), ("param", 64))]
    assert not any("batch norm" in line for line in got["why"])


def test_thop_params_name_what_is_not_counted():
    """thop counts parameters of hooked modules: an LSTM's are counted, an embedding's
    are not, and neither is attributed to batch-norm buffers."""
    text = """
name: mixed
input: [6]
layers:
  - embedding: {vocab: 10, units: 4}
  - lstm: 3
  - dense: 4
  - batchnorm
"""
    got = figures(text)["thop"]
    # embedding 40 not counted; lstm 4·3·7 + 24 = 108, dense 3·4 + 4 = 16, bn γ β 8 counted
    assert got["params"] == 108 + 16 + 8
    lines = [line for line in got["why"] if line.startswith("params:")]
    assert [line.split(" ")[1] for line in lines] == ["−8", "−40"]
    assert "running mean" in lines[0] and "does not hook" in lines[1]


# ---- the command --------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, ["conventions", *args], env={"COLUMNS": "100"})


def test_json_keys_are_the_issues():
    result = run("resnet18", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [k for k in doc if k in PEERS] == list(PEERS)
    assert set(doc["torchinfo"]) >= {"total_params", "trainable_params", "total_mult_adds",
                                     "total_input", "total_output_bytes", "total_param_bytes",
                                     "estimated_total_size", "why"}
    assert set(doc["fvcore"]) >= {"FlopCountAnalysis", "ActivationCountAnalysis", "why"}
    assert set(doc["netscope"]) >= {"macc", "activation", "param", "why"}
    assert doc["name"] == "resnet18"


def test_table_and_reasons():
    result = run("resnet50")
    assert result.exit_code == 0, result.output
    assert "4,089,238,376" in result.output and "4,133,742,592" in result.output
    assert "+64 B the Python object header" in result.output
    for peer in PEERS:
        assert peer in result.output


def test_a_users_mistake_is_one_line():
    result = run("no_such_spec")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_names_are_not_markup(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text(TINY.replace("name: tiny", "name: '[bold]x[/]'"))
    result = run(str(spec))
    assert result.exit_code == 0, result.output
    assert "[bold]x[/]" in result.output


# ---- docs/conventions.md cannot drift ----------------------------------------------------------

def _produced() -> set[str]:
    """Every exact figure `conventions` produces for ResNet-50 (batch 1 and 2) and ResNet-152,
    comma-grouped as the page writes them."""
    numbers: set[int] = set()
    for name, batch in (("resnet50", 1), ("resnet50", 2), ("resnet152", 1)):
        analysis = analyze(load(name), batch=batch)
        totals = analysis.totals
        numbers |= {totals.macs, totals.flops, totals.params, totals.trainable_params,
                    totals.non_trainable_params, totals.input_values, totals.activations,
                    totals.input_bytes}
        for peer in conventions(analysis):
            for fig in peer.figures:
                numbers |= {int(fig.value), fig.ours, abs(int(fig.difference))}
                numbers |= {abs(int(count)) for count, _ in fig.reasons}
            for line in peer.why():
                numbers |= {int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+",
                                                                        line)}
    return {f"{n:,}" for n in numbers}


def test_the_docs_page_is_the_codes():
    page = (Path(__file__).parent.parent / "docs" / "conventions.md").read_text()
    written = set(re.findall(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?!\d|,\d)", page))
    produced = _produced()
    assert written - produced == set()  # every figure on the page comes from the code
    resnet50 = {p.key: p for p in conventions(analyze(load("resnet50")))}
    for peer in resnet50.values():  # and every peer figure is on the page
        for fig in peer.figures:
            assert f"{int(fig.value):,}" in written, (peer.key, fig.key)
