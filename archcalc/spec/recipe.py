"""A spec's training recipe: the optional top-level `train:` mapping.

    train:
      epochs: 10
      optimizer: adam
      lr: 0.003
      schedule: exponential:0.75
      flip: true

Each key is an `archcalc train` option (`batch_size` is --batch-size); the values are the
defaults train takes for the options not given on its command line, as a Keras model keeps
its compile() settings and a torchvision weights entry its recipe. Only the keys written
are carried: an unwritten key leaves the option's own default.

The types and ranges are checked when the spec is loaded (every command); the grammar of
`schedule` and `data` is the trainer's and is checked by `archcalc train`, which names the
key and its line (the spec language does not import the executor, so that `summary` starts
without NumPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from archcalc.errors import SpecError
from archcalc.limits import MAX_EPOCHS, echo
from archcalc.spec.resolve import nearest
from archcalc.spec.yamlio import brief

# archcalc.nn.optim.OPTIMIZERS' names (tests/test_recipe.py asserts they are the same).
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
MONITOR_NAMES = ("val_loss", "val_acc", "train_loss", "train_acc")

# `epochs: true` or `epochs: 2.5` is a mistake, not 1 or 2
_Epochs = Annotated[int, Strict(), Field(ge=1, le=MAX_EPOCHS)]
_Rate = Annotated[float, Field(gt=0)]


class TrainDefaults(BaseModel):
    """Training defaults: `archcalc train` uses them for every option not given on its
    command line (which always wins)."""

    model_config = ConfigDict(extra="forbid")
    data: str | None = Field(None, max_length=4096, description=(
        "The data set, as --data takes it: digits, fashion-mnist[:DIR] or idx:DIR."))
    epochs: _Epochs | None = Field(None, description="--epochs.")
    batch_size: Annotated[int, Strict(), Field(ge=1)] | Literal["full"] | None = Field(
        None, description="--batch-size: examples per step, or 'full' for the whole "
                          "training set.")
    optimizer: Literal[OPTIMIZER_NAMES] | None = Field(None, description="--optimizer.")
    lr: _Rate | None = Field(None, description=(
        "--lr, the initial learning rate. It goes with this mapping's optimizer: a "
        "different --optimizer on the command line takes its own default rate."))
    schedule: str | None = Field(None, max_length=100, description=(
        "--schedule: constant, inverse-time:K, exponential:GAMMA, inv-sqrt or "
        "step:EVERY,GAMMA (the rate of epoch t from the initial rate)."))
    weight_decay: Annotated[float, Field(ge=0)] | None = Field(None, description=(
        "--weight-decay: the L2 penalty λ on conv/dense weights (λ/2·Σw²)."))
    l1: Annotated[float, Field(ge=0)] | None = Field(None, description=(
        "--l1: the L1 penalty on conv/dense weights."))
    clip_norm: _Rate | None = Field(None, description=(
        "--clip-norm: clip the gradients' global norm to this value."))
    translate: Annotated[int, Strict(), Field(ge=0, le=1000)] | None = Field(None, description=(
        "--translate: augmentation, shift each image by up to this many pixels."))
    flip: Annotated[bool, Strict()] | None = Field(None, description=(
        "--flip: augmentation, mirror half the images left-right."))
    val_split: Annotated[float, Field(ge=0, le=0.9)] | None = Field(None, description=(
        "--val-split: the fraction of the training images held out for validation."))
    patience: _Epochs | None = Field(None, description=(
        "--patience: stop after this many epochs without improvement of monitor."))
    monitor: Literal[MONITOR_NAMES] | None = Field(None, description=(
        "--monitor: what early stopping and the best epoch watch."))

    @field_validator("lr", "weight_decay", "l1", "clip_norm", "val_split")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def given(self) -> dict[str, Any]:
        """The keys the spec wrote, with their values (batch_size 'full' as the CLI's 0),
        in the order of the fields."""
        out = {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set
               and getattr(self, k) is not None}
        if out.get("batch_size") == "full":
            out["batch_size"] = 0
        return out


# The CLI option of each key, for messages ("batch_size" is --batch-size).
def option_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def train_error(exc: ValidationError, raw: Any, file: str | None,
                line: int | None) -> SpecError:
    """The first problem of a `train:` mapping as one line naming `train.KEY` and its line.
    exc is from NetworkSpec (locations start with 'train') or from TrainDefaults."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(p) for p in err["loc"] if str(p) != "train"]
    # pydantic names a union's member ('int', 'literal[...]'); the key is the first part
    key = loc[0] if loc else ""
    key_lines = getattr(raw, "key_lines", None) or {}
    where = key_lines.get(key) or line
    fields = list(TrainDefaults.model_fields)
    if not isinstance(raw, dict):
        return SpecError(f"'train' must be a mapping of training options (got {brief(raw)})",
                         file=file, line=line, fix="e.g. train: {epochs: 10, lr: 0.003}")
    if err["type"] == "extra_forbidden":
        hint = nearest(key, fields)
        return SpecError(f"unknown key 'train.{echo(key)}'", file=file, line=where,
                         fix=f"did you mean '{hint}'?" if hint
                         else "train keys: " + ", ".join(fields))
    got = brief(raw.get(key)) if key in raw else brief(err.get("input"))
    msg = _message(key, err)
    return SpecError(f"'train.{key}': {msg} (got {got})", file=file, line=where,
                     fix=f"{key}: {_EXAMPLES.get(key, 'see docs/training.md')}, as "
                         f"{option_name(key)} takes it")


def _message(key: str, err: dict) -> str:
    field = TrainDefaults.model_fields.get(key)
    if key == "batch_size":
        return "must be a whole number >= 1 or 'full'"
    if field is not None and err["type"] in ("literal_error", "enum"):
        names = OPTIMIZER_NAMES if key == "optimizer" else MONITOR_NAMES
        return "must be one of " + ", ".join(names)
    text = str(err["msg"]).removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


_EXAMPLES = {"data": "fashion-mnist", "epochs": "10", "batch_size": "64 or full",
             "optimizer": "adam", "lr": "0.003", "schedule": "exponential:0.75",
             "weight_decay": "0.0005", "l1": "0.0001", "clip_norm": "5", "translate": "2",
             "flip": "true", "val_split": "0.1", "patience": "3", "monitor": "val_loss"}


@dataclass(frozen=True)
class Recipe:
    """A loaded `train:` mapping: the values it gives (by TrainDefaults key; batch_size
    'full' is 0, as the CLI stores it), the line of each key, and the line of `train:`."""

    values: dict[str, Any]
    # where they were written: two recipes with the same values are the same recipe
    lines: dict[str, int] = field(default_factory=dict, compare=False)
    line: int | None = field(default=None, compare=False)

    @classmethod
    def of(cls, model: TrainDefaults, raw: Any, line: int | None) -> "Recipe":
        lines = getattr(raw, "key_lines", None) or {}
        return cls(model.given(), {str(k): v for k, v in lines.items()}, line)

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key) or self.line

    def error(self, key: str, message: str, fix: str, file: str | None) -> SpecError:
        """A value the trainer refuses (a schedule, a data source): one line naming
        train.KEY, the file and the key's line."""
        return SpecError(f"'train.{key}': {message}", file=file, line=self.line_of(key), fix=fix)


def inline_schema(schema: dict[str, Any]) -> None:
    """NetworkSpec.train's JSON Schema, written in place: TrainDefaults' own schema instead
    of pydantic's reference to it (json_schema_extra; runs only when a schema is made)."""
    own = TrainDefaults.model_json_schema()
    default = schema.get("default")
    schema.clear()
    schema.update({"anyOf": [own, {"type": "null"}], "default": default})
