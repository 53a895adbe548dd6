"""A spec's `train:` mapping (archcalc.spec.recipe): the defaults reach the trainer, the
command line overrides them, a bad key is one line naming it; the bundled Fashion-MNIST
recipe is well formed and `train lenet5 --data fashion-mnist` points at it.

No full training run here: the recipe's accuracy is measured by benchmarks/fashion.py."""

from __future__ import annotations

import pytest

from archcalc.cli.train import FASHION_RECIPE, apply_recipe, fashion_note
from archcalc.errors import SpecError
from archcalc.nn import optim, schedules, train
from archcalc.nn import data as datamod
from archcalc.spec import load, loads
from archcalc.spec.recipe import MONITOR_NAMES, OPTIMIZER_NAMES, TrainDefaults

RECIPE = """
name: tiny
input: [1, 8, 8]
train:
  epochs: 2
  batch_size: 32
  optimizer: momentum
  lr: 0.05
  schedule: exponential:0.5
  flip: true
  translate: 0
layers:
  - conv: {filters: 4, kernel: 3}
  - bn
  - relu
  - flatten
  - dense: 10
"""


def _config(out) -> dict:
    return train.read_checkpoint(out / "checkpoint.npz").meta["config"]


def test_the_language_names_the_executors_optimizers_and_monitors():
    assert OPTIMIZER_NAMES == tuple(optim.OPTIMIZERS)
    assert MONITOR_NAMES == train.MONITORS


def test_every_key_is_a_train_option():
    from archcalc.cli.train import train_command
    options = {p.name for p in train_command.params} | {"data"}
    assert set(TrainDefaults.model_fields) <= options


def test_the_specs_defaults_reach_the_trainer_and_the_command_line_wins(run, write_spec,
                                                                        tmp_path):
    spec = write_spec(RECIPE)
    out = tmp_path / "a"
    result = run("train", spec, "--out", str(out))
    assert result.exit_code == 0, result.output
    cfg = _config(out)
    assert (cfg["epochs"], cfg["batch_size"], cfg["optimizer"], cfg["lr"], cfg["schedule"],
            cfg["flip"], cfg["translate"]) == (2, 32, "momentum", 0.05, "exponential:0.5",
                                               True, 0)
    assert "recipe: tiny's train: gives epochs 2, batch_size 32" in " ".join(result.output.split())
    out = tmp_path / "b"
    result = run("train", spec, "--out", str(out), "--epochs", "1", "--lr", "0.02",
                 "--batch-size", "full")
    assert result.exit_code == 0, result.output
    cfg = _config(out)
    assert (cfg["epochs"], cfg["lr"], cfg["batch_size"], cfg["optimizer"]) == (1, 0.02, 0,
                                                                               "momentum")
    said = " ".join(result.output.split())
    assert "the command line overrides --epochs 1 (spec: 2)" in said
    assert "--batch-size full (spec: 32)" in said


def test_another_optimizer_on_the_command_line_does_not_take_the_specs_rate():
    net = loads(RECIPE)
    opts = {"optimizer": "adam", "lr": None, "source": "digits", "epochs": 20}
    came = apply_recipe(net, opts, {"optimizer"})
    assert opts["lr"] is None and opts["epochs"] == 2 and came["lr"].startswith("not used")


BAD = {  # the replaced line → the key the one-line error names
    "  lr: 0.05": ("  lr: -1", "train.lr"),
    "  epochs: 2": ("  epochs: 2.5", "train.epochs"),
    "  optimizer: momentum": ("  optimizer: adamw", "train.optimizer"),
    "  flip: true": ("  flip: 1", "train.flip"),
    "  batch_size: 32": ("  batch_sise: 32", "train.batch_sise"),
}


@pytest.mark.parametrize("old", sorted(BAD))
def test_a_bad_key_is_one_line_naming_it_and_its_line(old):
    new, key = BAD[old]
    text = RECIPE.replace(old, new)
    with pytest.raises(SpecError) as info:
        loads(text, file="net.yaml")
    err = info.value
    line = text.splitlines().index(new) + 1
    assert f"'{key}'" in err.message and err.line == line and err.file == "net.yaml"
    assert "\n" not in str(err)
    if key == "train.batch_sise":
        assert "batch_size" in err.fix        # the near miss is suggested


@pytest.mark.parametrize("old, new, key", [
    ("  schedule: exponential:0.5", "  schedule: exponential:-1", "train.schedule"),
    ("  flip: true", "  data: mnist", "train.data")])
def test_a_value_only_the_trainer_reads_is_refused_by_train_in_one_line(run, write_spec,
                                                                       tmp_path, old, new, key):
    spec = write_spec(RECIPE.replace(old, new))
    result = run("train", spec, "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    line = RECIPE.splitlines().index(old) + 1
    assert result.output.startswith(f"error: {spec}:{line}: '{key}'"), result.output
    assert len(result.output.strip().splitlines()) == 1 and "(fix: " in result.output
    assert not (tmp_path / "r").exists()


def test_the_bundled_recipe_is_well_formed_and_lenet5_points_at_it():
    name, measured = FASHION_RECIPE
    net = load(name)
    values = net.train.values
    schedules.parse(values["schedule"]).check(values["lr"], values["epochs"])
    assert values["epochs"] <= 10 and "%" in measured
    assert fashion_note(load("lenet5"), "fashion-mnist").startswith(
        f"a recipe for Fashion-MNIST is bundled: `archcalc train {name} --data fashion-mnist`")
    assert fashion_note(load("lenet5"), "digits") is None
    assert fashion_note(net, "fashion-mnist") is None        # it is the recipe
    assert "fashion-mnist" in datamod.FASHION_NAMES


def test_the_schema_checks_the_train_keys_as_archcalc_does():
    jsonschema = pytest.importorskip("jsonschema")
    from archcalc.spec.schema import schema
    from archcalc.spec.yamlio import parse_text
    import json
    validator = jsonschema.Draft202012Validator(schema())

    def errors(text):
        return list(validator.iter_errors(json.loads(json.dumps(parse_text(text)))))

    assert errors(RECIPE) == []
    for old in sorted(BAD):
        assert errors(RECIPE.replace(old, BAD[old][0])), BAD[old]


def test_evaluate_reads_the_recipes_data_set_unless_told(run, write_spec, tmp_path):
    spec = write_spec(RECIPE)
    out = tmp_path / "a"
    assert run("train", spec, "--out", str(out), "--epochs", "1").exit_code == 0
    missing = tmp_path / "no-such-dir"
    other = write_spec(RECIPE.replace("  flip: true", f"  data: idx:{missing}"), "other.yaml")
    result = run("evaluate", other, str(out))
    assert result.exit_code == 1 and str(missing) in result.output, result.output
    result = run("evaluate", other, str(out), "--data", "digits")
    assert result.exit_code == 0 and "test accuracy" in result.output, result.output
