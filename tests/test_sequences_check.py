"""`archcalc check` on sequence specs (issue 13): the executor's arrays prove the
calculator's shapes, parameters and bytes (a recurrent layer's bytes are its output and the
step states it makes for backpropagation through time), and the cross-check fails when
either side is wrong."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from archcalc.calc import layers as calc_layers
from archcalc.check import run_check
from archcalc.cli import main
from archcalc.nn import recurrent
from archcalc.spec import loads

SPECS = {
    "crnn": """name: crnn
input: [1, 16, 40]
layers:
  - conv: {filters: 8, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: [2, 2]}
  - conv: {filters: 8, kernel: 3, padding: 1}
  - maxpool: {kernel: [4, 1]}
  - to_sequence                      # 20 steps of 8·2 features
  - lstm: {units: 12, return_sequences: true, bidirectional: true}
  - dropout: 0.2
  - lstm: {units: 12, return_sequences: true, bidirectional: true, biases: 1}
  - dense: {units: 11, time_distributed: true}
  - softmax
""",
    "text": """name: text
input: [30]
layers:
  - embedding: {vocab: 500, units: 16}
  - gru: {units: 20, return_sequences: true}
  - dropout: 0.3
  - gru: {units: 20, reset_after: false}
  - dense: 4
""",
    "rows": """name: rows
input: [8, 8]
layers:
  - rnn: {units: 10, nonlinearity: relu, return_sequences: true}
  - layernorm
  - rnn: {units: 6, bidirectional: true}
  - dense: 10
""",
    "height": """name: height
input: [3, 12, 10]
layers:
  - to_sequence: {axis: height}
  - lstm: 5
""",
}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("batch", [1, 3])
def test_check_passes(name, batch):
    result = run_check(loads(SPECS[name]), batch=batch)
    assert result.ok, result.verdict()
    assert result.executor_error is None
    kinds = {c.type for c in result.layers}
    assert kinds & {"rnn", "lstm", "gru"}
    # the recurrent rows' bytes are more than their output: the states are counted
    for check in result.layers:
        if check.type in ("lstm", "gru"):
            out = 4 * batch
            for size in check.calculated_shape:
                out *= size
            assert check.measured_bytes > out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_check_command_exit_0(name, tmp_path):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPECS[name])
    result = CliRunner().invoke(main, ["check", str(path), "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "✓" in result.output


def test_check_fails_when_the_calculator_miscounts_the_states(monkeypatch):
    """One value fewer in the calculator's BPTT states: the lstm row disagrees on bytes."""
    real = calc_layers.recurrent_kept
    monkeypatch.setattr(calc_layers, "recurrent_kept", lambda *a: real(*a) - 1)
    result = run_check(loads(SPECS["height"]), batch=2)
    assert not result.ok
    assert result.first_failure.name == "lstm1"
    assert "activation bytes" in result.first_failure.problems[0]


def test_check_fails_when_the_calculator_miscounts_the_params(monkeypatch):
    real = calc_layers.recurrent_counts
    monkeypatch.setattr(calc_layers, "recurrent_counts",
                        lambda kind, f, h, bias, biases, d: real(kind, f, h, bias, 2, d))
    result = run_check(loads(SPECS["crnn"]), batch=1)  # its second lstm has biases: 1
    assert not result.ok
    assert result.first_failure.name == "lstm2"
    assert "params" in result.first_failure.problems[0]


def test_check_fails_when_the_executor_makes_other_shapes(monkeypatch):
    """An executor that read the map row by row (axis height) instead of column by column."""
    def wrong(self, x, training, inplace):
        n, c, h, w = x.shape
        return x.transpose(0, 2, 1, 3).copy().reshape(n, h, c * w)
    monkeypatch.setattr(recurrent.ToSequence, "forward", wrong)
    result = run_check(loads(SPECS["crnn"]), batch=1)
    assert not result.ok
    assert result.first_failure.name == "seq1"


def test_a_long_sequence_is_refused_by_its_steps_before_the_build(monkeypatch):
    """A 4-unit GRU over 3·10⁶ steps is ~4·10⁸ MACs yet 113 s of Python steps (build and
    forward): its work now counts each step, so a limit it passed before refuses it, with
    the time and the fix, before anything is built."""
    import archcalc.check
    spec = loads("name: long\ninput: [3000000, 2]\nlayers:\n"
                 "  - gru: {units: 4, bidirectional: true}\n  - dense: 2\n")
    monkeypatch.setattr(archcalc.check, "build", lambda *a, **k: pytest.fail("built"))
    monkeypatch.setenv("ARCHCALC_MAX_CHECK_WORK", str(10**11))  # MACs alone: 5·10⁸
    with pytest.raises(Exception) as refused:
        run_check(spec)
    text = refused.value.render()
    assert "6,000,000 recurrent steps run one at a time" in text, text
    seconds = float(text.split(" units of work, ~")[1].split(" s here")[0])
    assert 60 <= seconds <= 240  # measured: 113 s on a 2-core AMD EPYC
    assert "a shorter sequence (T)" in text and "ARCHCALC_MAX_CHECK_WORK" in text

