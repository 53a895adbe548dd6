"""Issue 13's loose ends: the JSON Schema takes [T, F] and [T] inputs, the summary footer
states the recurrent MAC rule, and gradcheck gives an embedding spec token ids."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from archcalc.calc import analyze
from archcalc.check import check_input
from archcalc.errors import ArchcalcError
from archcalc.nn.gradcheck import gradcheck
from archcalc.report import RECURRENT_RULE, convention_lines
from archcalc.spec import load, loads
from archcalc.spec.layers import GATES
from archcalc.spec.yamlio import parse_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ---- fix 1: the schema --------------------------------------------------------------------------
@pytest.mark.parametrize("given,ok", [
    ("[8, 8]", True), ("8x8", True), ("'8×8'", True), ("[50]", True), ("'50'", True),
    ("[3, 8, 8]", True), ("3x8x8", True),
    ("[3, 8, 8, 8]", False), ("3x8x8x8", False), ("[]", False), ("'x8'", False),
])
def test_the_schema_takes_the_inputs_archcalc_takes(given, ok):
    """archcalc's loader is the oracle: the schema accepts exactly the inputs it loads."""
    jsonschema = pytest.importorskip("jsonschema")
    from archcalc.spec.schema import schema
    layers = ("[{embedding: {vocab: 9, units: 2}}, {lstm: 3}]" if given in ("[50]", "'50'")
              else "[{lstm: 3}]" if given in ("[8, 8]", "8x8", "'8×8'")
              else "[{conv: {filters: 2, kernel: 1}}]")
    text = f"name: t\ninput: {given}\nlayers: {layers}\n"
    try:
        loads(text)
        loaded = True
    except ArchcalcError:
        loaded = False
    assert loaded == ok
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(
        json.loads(json.dumps(parse_text(text)))))
    assert (not errors) == ok, [e.message for e in errors]


def test_the_bundled_schema_file_is_the_generated_one():
    from archcalc.spec.schema import schema_text
    bundled = Path(__file__).resolve().parents[1] / "archcalc" / "spec" / "archcalc.schema.json"
    assert bundled.read_text(encoding="utf-8") == schema_text()


# ---- fix 2: the footer --------------------------------------------------------------------------
RECURRENT_NET = """
name: rec
input: [6, 5]
layers:
  - gru: {units: 4, bidirectional: true, return_sequences: true}
  - rnn: {units: 3, return_sequences: true}
  - lstm: {units: 2, biases: 1}
  - dense: 2
"""


def stated_rule(row, spec) -> int:
    """T·D·G·H·(F + H), read off the row's input shape and the layer's settings."""
    steps, features = row.input_shape
    d, h = 2 if spec.bidirectional else 1, spec.units
    return steps * d * GATES[row.type] * h * (features + h)


def test_the_footer_states_the_recurrent_rule_and_it_gives_the_table_macs(run, write_spec):
    network = loads(RECURRENT_NET)
    analysis = analyze(network)
    leaves = {network.display(leaf.path): leaf.spec for leaf in network.leaves()}
    recurrent = [r for r in analysis.rows if r.type in GATES]
    assert len(recurrent) == 3
    for row in recurrent:
        assert stated_rule(row, leaves[row.name]) == row.macs, row.name
    assert any(RECURRENT_RULE in line for line in convention_lines(analysis))
    out = " ".join(run("summary", write_spec(RECURRENT_NET)).output.split())
    assert "rnn, lstm and gru MACs = T·D·G·H·(F + H) per sequence" in out
    assert "G gate blocks: 1 rnn, 3 gru, 4 lstm; D = 2 when bidirectional" in out
    markdown = run("summary", write_spec(RECURRENT_NET), "--format", "markdown").output
    assert "T·D·G·H·(F + H)" in markdown


def test_the_footer_says_the_time_distributed_rule_and_nothing_for_a_cnn(run):
    spec = EXAMPLES.parent / "specs" / "lstm_digits.yaml"
    lstm = " ".join(run("summary", str(spec)).output.split())
    assert "a time_distributed dense costs T·in·out" in lstm
    analysis = analyze(load(str(EXAMPLES.parent / "specs" / "lstm_digits.yaml")))
    td = analysis.rows[0]
    assert td.type == "dense" and td.macs == math.prod(td.input_shape) * td.output_shape[1]
    lenet = " ".join(run("summary", "lenet5").output.split())
    assert "T·D·G·H" not in lenet and "time_distributed" not in lenet
    crnn = " ".join(run("summary", str(EXAMPLES / "crnn_digits.yaml")).output.split())
    assert "No MACs for to_sequence" in crnn or "no MACs for to_sequence" in crnn


# ---- fix 3: gradcheck of an embedding spec ------------------------------------------------------
EMBED_NET = """
name: tok
input: [5]
layers:
  - embedding: {vocab: 7, units: 3}
  - lstm: {units: 4, return_sequences: true}
  - dense: {units: 2, time_distributed: true}
"""


def test_gradcheck_command_gives_an_embedding_spec_token_ids(run, write_spec):
    result = run("gradcheck", write_spec(EMBED_NET), "--samples", "0")
    assert result.exit_code == 0, result.output
    assert not re.search(r"^ \(input\)", result.output, re.M)    # no row for the ids
    assert "token ids" in result.output and "no (input) row" in " ".join(result.output.split())
    rows = re.findall(r"^ (\S+)\s+(\w+)\s+(\d+)/(\d+)", result.output, re.M)
    assert {(layer, param) for layer, param, *_ in rows} >= {("embed1", "weight"),
                                                              ("lstm1", "weight_ih")}
    assert all(a == b for *_, a, b in rows)   # --samples 0: every entry checked


def test_gradcheck_library_draws_ids_through_check_input():
    network = loads(EMBED_NET)
    seen = []

    def ids(rng):
        x = check_input(network, rng, 2, "float64")
        seen.append(x)
        return x

    results = gradcheck(network, batch=2, seed=1, samples=None, draw_input=ids)
    assert all(r.ok for r in results) and "(input)" not in {r.layer for r in results}
    x = seen[0]
    assert x.shape == (2, 5) and (x == np.round(x)).all() and 0 <= x.min() and x.max() <= 6
    with pytest.raises(ArchcalcError, match="reads token ids"):
        gradcheck(network, batch=2)


def test_check_input_leaves_a_float_network_s_gradcheck_as_it_was():
    """check_input draws the same standard normal values from the same generator: passing it
    for a network without an embedding changes nothing."""
    network = loads("name: f\ninput: [4, 3]\nlayers: [{gru: 2}, {dense: 2}]\n")
    plain = gradcheck(network, batch=2, seed=2, samples=3)
    drawn = gradcheck(network, batch=2, seed=2, samples=3,
                      draw_input=lambda rng: check_input(network, rng, 2, "float64"))
    assert [(r.layer, r.param, r.error, r.checked) for r in plain] == \
        [(r.layer, r.param, r.error, r.checked) for r in drawn]
