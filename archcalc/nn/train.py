"""The trainer: mini-batch gradient descent on a Model, with checkpoints and early stopping.

One step (shapes for a batch of n):
    x (n, *input_shape) → model.forward(training=True) → y (n, *output_shape)
    scores = y as (n, C) → loss, dscores (n, C) → model.backward → model.grads
    + penalty gradients (L2/L1 on weights) → clip by global norm → optimizer.step
Every epoch ends with a validation pass and, when an output directory is given, an atomic
checkpoint: weights, optimizer state, epoch, history, best weights — enough to resume the
run exactly (shuffling and augmentation draw from generators seeded by (seed, epoch), and a
schedule is a function of the epoch, so neither has state to save).

A NaN or inf in the loss or the weights stops the run at once (ArchcalcError naming the
epoch and batch); the checkpoint on disk is then still the last good epoch's. Ctrl-C stops
after the current batch, puts back the last completed epoch and writes everything out.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.fileio import write_error
from archcalc.limits import MAX_EPOCHS, SEED_MAX, echo
from archcalc.nn import data as datamod
from archcalc.nn import init, losses, network, optim, schedules, weights

CHECKPOINT_FORMAT = 2           # the meta record's version (2: run id, setup, namespaced file)
EVAL_BATCH = 500           # examples per forward pass when only predicting
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")
# What the network learns to output: the images' class labels, or the images themselves
# (reconstruction: an autoencoder or a segmentation-style network, with mse, mae or bce).
TARGETS = ("labels", "input")
RECONSTRUCTION_LOSSES = ("mse", "mae", "bce")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64           # 0: full batch; 1: single example (pure SGD)
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"     # see archcalc.nn.schedules.parse
    loss: str = "cross_entropy"    # a key of archcalc.nn.losses.LOSSES
    weight_decay: float = 0.0      # L2 penalty λ: R = λ/2 Σ w²
    l1: float = 0.0
    class_weights: str | None = None   # None, "balanced", or "w0,w1,..."
    clip_norm: float | None = None
    seed: int = 0
    patience: int | None = None    # early stopping after this many epochs without progress
    monitor: str = "val_loss"      # val_loss | val_acc | train_loss | train_acc
    restore_best: bool = True      # with early stopping, end on the best epoch's weights
    translate: int = 0             # augmentation: random shift of up to this many pixels
    flip: bool = False             # augmentation: random horizontal mirror
    target: str = "labels"         # labels | input (reconstruct the image)


@dataclass
class EpochRecord:
    """One line of history.json."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float


_RECORD_KEYS = [f.name for f in fields(EpochRecord)]


@dataclass
class Result:
    history: list[EpochRecord]
    test_loss: float
    test_acc: float
    epochs: int                    # epochs completed in total (a resumed run counts all)
    seconds: float                 # wall time of this run
    images_per_second: float       # training images per second of training steps
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        out = {"test_acc": self.test_acc, "test_loss": self.test_loss, "epochs": self.epochs,
               "seconds": round(self.seconds, 3),
               "images_per_second": round(self.images_per_second, 1),
               "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
               "interrupted": self.interrupted}
        out.update(self.extra)
        return out


class Progress:
    """What the trainer reports while it runs; the CLI draws a rich progress bar."""

    def epoch_start(self, epoch: int, epochs: int, batches: int, lr: float) -> None: ...
    def batch_end(self, batch: int, loss: float, acc: float) -> None: ...
    def epoch_end(self, record: EpochRecord) -> None: ...
    def finishing(self) -> None:
        """The epochs are over (completed or interrupted): only the files remain to write."""


# --- checkpoints -------------------------------------------------------------------------

atomic_write = weights.atomic_write        # one writer for every file of a run


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_checkpoint(path: Path, state: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    best: dict[str, np.ndarray] | None, meta: dict[str, Any]) -> None:
    """checkpoint.npz (archcalc.nn.weights format 2): the model's arrays, the optimizer's
    state, the best epoch's weights and a JSON meta record, each in its own namespace, so a
    layer may have any name (executor.load_weights reads the model's part)."""
    parts = {"model": state, "optimizer": optimizer}
    if best:
        parts["best"] = best
    weights.write_archive(path, parts, {"format": CHECKPOINT_FORMAT, **meta})


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    best: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def final_weights(self) -> dict[str, np.ndarray]:
        """The weights a finished run ended on: the best epoch's when it kept them."""
        return self.best if self.meta.get("ended_on_best") and self.best else self.state


def read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint (or a plain weights .npz) split into its parts; one line if unreadable."""
    path = Path(path)
    if not path.exists():
        raise ArchcalcError(f"no such checkpoint: {path}", fix="check the path")
    parts, meta = weights.read_archive(path)
    check_meta(meta, path)
    return Checkpoint(path, parts["model"], parts["optimizer"], parts["best"], meta)


def load_into(model, weights: dict[str, np.ndarray], ckpt: Checkpoint, spec: str) -> None:
    """Load weights into model; a checkpoint of another spec names the first mismatch."""
    try:
        model.load_state_dict(weights, source=str(ckpt.path))
    except ArchcalcError as exc:
        saved = ckpt.meta.get("spec")
        if saved and saved != spec:
            exc.message += (f" (the checkpoint was saved from spec '{echo(saved, 60)}', "
                            f"not '{spec}')")
        raise exc.located(file=str(ckpt.path)) from None


# --- run directories ---------------------------------------------------------------------
# A run directory holds checkpoint.npz (the truth: weights, optimizer, epoch, history, run
# id) and views of it: history.json (rewritten after every checkpoint), metrics.json and
# curves.png (written when the run ends). Every record in history.json and metrics.json
# carries the run id, and history.json is removed before each checkpoint is replaced and
# written again after, so whatever moment a run is killed at, the files present agree with
# the checkpoint (one may be missing; the checkpoint holds the history).

CHECKPOINT = "checkpoint.npz"
VIEWS = ("history.json", "metrics.json", "curves.png")
RUN_FILES = (CHECKPOINT, *VIEWS)
_TEMP = re.compile(r"^\.(" + "|".join(map(re.escape, RUN_FILES)) + r")\.[a-z0-9_]{8}\.tmp$")


def run_files(out: Path) -> list[str]:
    """The files of a run that `out` holds."""
    return [name for name in RUN_FILES if (out / name).exists()]


def check_run_dir(out: Path, *, resume: Path | None = None, overwrite: bool = False) -> None:
    """Refuse to start a run in a directory that holds another run, unless told to replace
    it (overwrite) or to continue it (resume from its own checkpoint)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArchcalcError("--out is a file, not a directory", file=str(out),
                            fix="choose a directory for the run's files")
    present = run_files(out)
    if not present or overwrite:
        return
    own = out / CHECKPOINT
    if resume is not None and own.exists() and os.path.samefile(resume, own):
        return
    if resume is not None:
        fix = (f"--overwrite replaces that run with the resumed one, or resume into the "
               f"checkpoint's own directory (--out {echo(Path(resume).parent, 80)})")
    else:
        fix = (f"--resume {echo(own, 80)} continues it, --overwrite replaces it, or choose "
               "another --out")
    raise ArchcalcError(f"already holds a training run ({', '.join(present)})", file=str(out),
                        fix=fix)


class RunLock:
    """An exclusive lock on a run directory (flock on the directory itself) for as long as a
    run writes there: a second run in the same directory is refused, and temp files found
    there at the start can only be orphans of a killed run. The kernel drops the lock when
    the process dies, even by SIGKILL, so there is no stale lock file to clean."""

    def __init__(self, out: Path) -> None:
        self.out, self.fd = Path(out), None

    def __enter__(self) -> "RunLock":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.out, os.O_RDONLY)
        except OSError as exc:
            raise ArchcalcError(f"cannot use it as the run directory: {exc.strerror or exc}",
                                file=str(self.out), fix="choose another --out") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ArchcalcError("another archcalc train is writing to this directory",
                                file=str(self.out),
                                fix="wait for it to finish, or choose another --out") from None
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)                            # closing drops the lock


def clean_temps(out: Path) -> list[str]:
    """Remove the temp files a killed run left (only names atomic_write gives run files)."""
    removed = []
    for entry in os.scandir(out):
        if _TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed


# --- options -------------------------------------------------------------------------------

# Options that may change when a run is resumed: they decide how long it goes on, not what
# each epoch computes. Every other option (and every key of `setup`) must match.
RESUME_MAY_CHANGE = ("epochs", "patience", "restore_best")


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def config_problems(cfg: TrainConfig) -> list[tuple[str, Any, str]]:
    """(field, value, what it must be) for every field of a TrainConfig out of its range or
    not a known name: the CLI's click types say the same; this guards library callers and
    the options stored in a checkpoint."""
    finite, whole = _finite, _whole

    def known(v, names) -> bool:
        return isinstance(v, str) and v in names

    checks = [
        ("epochs", whole(cfg.epochs) and 1 <= cfg.epochs <= MAX_EPOCHS,
         f"a whole number in 1..{MAX_EPOCHS:,}"),
        ("batch_size", whole(cfg.batch_size) and cfg.batch_size >= 0,
         "a whole number >= 1, or full"),
        ("lr", finite(cfg.lr) and cfg.lr > 0, "a finite number > 0"),
        ("weight_decay", finite(cfg.weight_decay) and cfg.weight_decay >= 0,
         "a finite number >= 0"),
        ("l1", finite(cfg.l1) and cfg.l1 >= 0, "a finite number >= 0"),
        ("clip_norm", cfg.clip_norm is None or finite(cfg.clip_norm) and cfg.clip_norm > 0,
         "a finite number > 0"),
        ("seed", whole(cfg.seed) and 0 <= cfg.seed <= SEED_MAX,
         f"a whole number in 0..{SEED_MAX}"),
        ("patience", cfg.patience is None or whole(cfg.patience)
         and 1 <= cfg.patience <= MAX_EPOCHS, f"a whole number in 1..{MAX_EPOCHS:,}"),
        ("translate", whole(cfg.translate) and cfg.translate >= 0, "a whole number >= 0"),
        ("optimizer", known(cfg.optimizer, optim.OPTIMIZERS),
         "one of " + ", ".join(optim.OPTIMIZERS)),
        ("loss", known(cfg.loss, losses.LOSSES), "one of " + ", ".join(losses.LOSSES)),
        ("monitor", known(cfg.monitor, MONITORS), "one of " + ", ".join(MONITORS)),
        ("target", known(cfg.target, TARGETS), "one of " + ", ".join(TARGETS)),
        ("flip", isinstance(cfg.flip, bool), "true or false"),
        ("restore_best", isinstance(cfg.restore_best, bool), "true or false"),
    ]
    problems = [(key, getattr(cfg, key), want) for key, ok, want in checks if not ok]
    for key, parse in (("schedule", schedules.parse), ("class_weights", parse_class_weights)):
        value = getattr(cfg, key)
        if key == "class_weights" and value is None:
            continue
        if not isinstance(value, str):
            problems.append((key, value, "text"))
            continue
        try:
            parse(value)
        except ArchcalcError as exc:
            problems.append((key, value, f"a valid one ({exc.message})"))
    return problems


def check_config(cfg: TrainConfig) -> None:
    """The first of config_problems as one line naming the command-line option."""
    for key, value, want in config_problems(cfg)[:1]:
        flag = "--" + key.replace("_", "-")
        raise ArchcalcError(f"{flag} {echo(value, 40)} is out of range: {want}",
                            fix=f"give {flag} {want}" if len(want) < 60 else f"fix {flag}")


_DAMAGED_FIX = "start a new run from its weights with --weights"


def config_from_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The options a checkpoint's run used (only TrainConfig's fields), checked like the
    CLI's: a damaged or hand-made meta record gives one line naming the checkpoint and the
    stored option (not a command-line option `evaluate` does not have), not a crash mid-run."""
    saved = meta.get("config", {})
    if not isinstance(saved, dict):
        raise ArchcalcError("the checkpoint's stored options are damaged", file=str(path),
                            fix=_DAMAGED_FIX)
    known = {f.name for f in fields(TrainConfig)}
    stored = {k: v for k, v in saved.items() if k in known}
    for key, value, want in config_problems(TrainConfig(**stored))[:1]:
        raise ArchcalcError(f"the checkpoint's stored options are damaged: {key} is "
                            f"{echo(json.dumps(value), 60)}, not {want}", file=str(path),
                            fix=_DAMAGED_FIX)
    return stored


def parse_class_weights(text: str) -> np.ndarray | None:
    """'balanced' → None (computed from the labels); '1,1,5' → array([1., 1., 5.]). The
    count is checked against the dataset later (the dataset decides it)."""
    if text.strip().lower() == "balanced":
        return None
    try:
        w = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        w = np.array([np.nan])
    if not text.strip() or not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ArchcalcError(f"class weights '{echo(text, 80)}': need one finite number >= 0 "
                            "per class, at least one > 0",
                            fix="--class-weights balanced, or one weight per class, e.g. 1,1,5")
    return w


# --- the meta record of a checkpoint ----------------------------------------------------------

SETUP_DTYPES = network.DTYPES
SETUP_INITS = init.INITS


def _meta_problems(meta: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(field, value, what it must be) for each field of a meta record that is not what
    archcalc writes there. Only fields present are checked (a weights file has none)."""
    out: list[tuple[str, Any, str]] = []

    def need(key: str, value: Any, ok: bool, want: str) -> None:
        if not ok:
            out.append((key, value, want))

    epoch = meta.get("epoch", 0)
    need("epoch", epoch, _whole(epoch) and 0 <= epoch <= MAX_EPOCHS,
         f"a whole number in 0..{MAX_EPOCHS:,}")
    wait = meta.get("wait", 0)
    need("wait", wait, _whole(wait) and 0 <= wait <= MAX_EPOCHS, "a whole number >= 0")
    for key in ("run_id", "spec"):
        if key in meta:
            need(key, meta[key], isinstance(meta[key], str) and len(meta[key]) <= 1000,
                 "text of at most 1,000 characters")
    if "ended_on_best" in meta:
        need("ended_on_best", meta["ended_on_best"], isinstance(meta["ended_on_best"], bool),
             "true or false")
    best = meta.get("best") or {}
    need("best", best, isinstance(best, dict), "a record")
    if isinstance(best, dict):
        need("best.value", best.get("value"), best.get("value") is None
             or _finite(best.get("value")), "a finite number")
        need("best.epoch", best.get("epoch"), best.get("epoch") is None
             or _whole(best.get("epoch")) and 0 <= best["epoch"] <= MAX_EPOCHS,
             "a whole number >= 0")
    history = meta.get("history", [])
    need("history", "…", isinstance(history, list) and len(history) <= MAX_EPOCHS,
         "a list of epoch records")
    if "history" in meta and isinstance(history, list) and _whole(epoch):
        need("history", f"{len(history):,} records", len(history) == epoch,
             f"one record per epoch ({epoch:,})")
    for i, record in enumerate(history if isinstance(history, list) else []):
        problem = _record_problem(record)
        if problem:
            need(f"history[{i}]", echo(json.dumps(record), 80), False, problem)
            break
    arch = meta.get("arch", {})
    need("arch", "…", isinstance(arch, dict) and isinstance(arch.get("hash", ""), str)
         and isinstance(arch.get("layers", []), list)
         and len(arch.get("layers", [])) <= network.ARCH_LAYERS_STORED
         and all(isinstance(v, str) and len(v) <= 2000 for v in arch.get("layers", [])),
         "a record of the spec's layers")
    setup = meta.get("setup", {})
    need("setup", setup, isinstance(setup, dict), "a record")
    if isinstance(setup, dict):
        out += _setup_problems(setup)
    return out


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or not all(k in record for k in _RECORD_KEYS):
        return "a record with " + ", ".join(_RECORD_KEYS)
    if not _whole(record["epoch"]):
        return "a whole epoch number"
    for key in ("train_loss", "train_acc", "lr", "seconds"):
        if not _finite(record[key]):
            return f"a finite {key}"
    for key in ("val_loss", "val_acc"):
        if record[key] is not None and not _finite(record[key]):
            return f"a finite {key} or null"
    return None


def _setup_problems(setup: dict[str, Any]) -> list[tuple[str, Any, str]]:
    out = []
    checks = {
        "data": (lambda v: isinstance(v, str) and _source_ok(v), "a --data source"),
        "val_split": (lambda v: _finite(v) and 0 <= v <= 0.9, "a number in 0..0.9"),
        "dtype": (lambda v: v in SETUP_DTYPES, " or ".join(SETUP_DTYPES)),
        "init": (lambda v: v in SETUP_INITS, "one of " + ", ".join(SETUP_INITS)),
        "freeze": (lambda v: isinstance(v, list) and all(isinstance(p, str) and p
                                                          for p in v), "a list of names"),
    }
    for key, (ok, want) in checks.items():
        if key in setup and not _safe(ok, setup[key]):
            out.append((f"setup.{key}", setup[key], want))
    return out


def _safe(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except TypeError:                                 # e.g. a list compared with a str
        return False


def _source_ok(text: str) -> bool:
    try:
        datamod.parse_source(text)
    except ArchcalcError:
        return False
    return True


def check_meta(meta: dict[str, Any], path: Path) -> None:
    """Everything a checkpoint's meta record says, checked before any of it is used (its
    options by config_from_meta): one line naming the file and the first bad field."""
    for key, value, want in _meta_problems(meta)[:1]:
        shown = value if key.startswith("history") else _json(value)
        raise ArchcalcError(f"the checkpoint's meta record is damaged: {key} is "
                            f"{echo(shown, 60)}, not {want}", file=str(path), fix=_DAMAGED_FIX)


def _json(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def option_text(key: str, value: Any) -> str:
    """How a user writes an option on the command line: '--seed 5', 'no --clip-norm'."""
    flag = "--data" if key == "data" else "--" + key.replace("_", "-")
    if value is None or value is False or value == []:
        return f"no {flag}"
    if value is True:
        return flag
    if key == "batch_size" and value == 0:
        value = "full"
    if isinstance(value, list):
        return " ".join(f"{flag} {echo(v, 40)}" for v in value)
    return f"{flag} {echo(value, 60)}"


# --- the trainer -------------------------------------------------------------------------

def balanced_weights(labels: np.ndarray, classes: int) -> np.ndarray:
    """n / (C · count_c) per class: every class then weighs as much in total."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    return np.where(counts > 0, labels.size / (classes * np.maximum(counts, 1)), 0.0)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m


def check_fit(classes: int, outputs: int, loss: str, dataset: str, spec: str,
              last: str) -> None:
    """The network gives one score per class (or one for two classes, with bce/mse/mae).
    The CLI calls it with the calculator's output size before building the model."""
    binary = outputs == 1 and classes == 2 and loss in ("bce", "mse", "mae")
    if outputs != classes and not binary:
        raise ArchcalcError(
            f"dataset '{echo(dataset, 80)}' has {classes} classes; spec '{spec}' ends with "
            f"{outputs:,} output value(s) per image (layer '{last}')",
            fix=f"make the last layer give {classes} units, e.g. '- dense: {classes}'")


def check_reconstruction(input_shape: tuple[int, ...], output_shape: tuple[int, ...],
                         loss: str, class_weights: str | None, spec: str, last: str) -> None:
    """--target input: the network gives back an image of the input's shape (or as many
    values, flat), scored with a loss of values (not of classes). The CLI calls it with the
    calculator's output shape."""
    flat = len(output_shape) == 1 and output_shape[0] == math.prod(input_shape)
    if tuple(output_shape) != tuple(input_shape) and not flat:  # a dense decoder: flat
        fmt = "×".join
        raise ArchcalcError(
            f"--target input trains spec '{spec}' to give back its {fmt(map(str, input_shape))} "
            f"input, but it ends with {fmt(map(str, output_shape))} (layer '{last}')",
            fix=f"make the last layer give {fmt(map(str, input_shape))}, e.g. a 1×1 conv to "
                f"{input_shape[0]} filter(s) after upsampling back to the input size")
    if loss not in RECONSTRUCTION_LOSSES:
        raise ArchcalcError(f"--loss {loss} scores classes; --target input compares pixel "
                            "values", fix="--loss mse (the default with --target input), "
                                          "mae or bce")
    if class_weights is not None:
        raise ArchcalcError("--class-weights weigh classes; --target input has none",
                            fix="drop --class-weights")


def check_image_input(network, spec: str) -> None:
    """The trainer feeds images: as C×H×W, flat, or [T, F] sequences read row by row
    (data.fit_images). A network whose first layer is an embedding reads token ids, which no
    image is; refused before any data is read, not at the first batch's pixel 0.0625."""
    first = next(network.leaves(), None)
    if first is not None and first.kind == "embedding":
        raise ArchcalcError(
            f"spec '{spec}' reads token ids (its first layer '{network.display(first.path)}' "
            "is an embedding); the training data are images, whose pixels are not ids",
            fix="train a spec whose input is [T, F] (an image read row by row: T rows of F "
                "pixels) or C×H×W")


def pixel_threshold(loss: str, last_kind: str) -> float:
    """Where an output value counts as ink (1) rather than background (0): 0.5 for values
    (mse, mae, or a sigmoid output), 0 for bce's logits (σ(0) = 0.5)."""
    return 0.5 if loss in ("mse", "mae") or last_kind == "sigmoid" else 0.0


class Trainer:
    """Trains `model` (archcalc.nn.Model) on `data` (archcalc.nn.data.Data)."""

    def __init__(self, model, data: datamod.Data, config: TrainConfig, *,
                 spec: str = "", out: Path | None = None, progress: Progress | None = None,
                 setup: dict[str, Any] | None = None, overwrite: bool = False,
                 config_source: Path | None = None):
        """`setup`: the choices made outside the trainer that decide the result (data
        source, validation split, dtype, init, frozen layers); stored in the checkpoint and
        compared on resume. `overwrite`: the run may replace another run in `out`.
        `config_source`: the checkpoint `config` was read from (evaluate), which its errors
        then name instead of a command-line option."""
        self.model, self.data, self.cfg = model, data, config
        self.spec = spec or getattr(model.network, "name", "")
        self.out = Path(out) if out is not None else None
        self.progress = progress or Progress()
        self.dtype = np.dtype(model.dtype).name
        self.setup = dict(setup or {})
        self.overwrite = overwrite
        self.run_id = uuid.uuid4().hex[:12]             # a resumed run keeps its own
        self.resumed_from: Path | None = None
        self.started_from: Path | None = None
        self.config_source = config_source
        self.eval_batch = EVAL_BATCH                     # the CLI lowers it to fit memory
        self.saved_epoch: int | None = None             # the epoch of the checkpoint on disk
        check_config(config)  # refuses an unknown loss or monitor too
        check_image_input(model.network, self.spec)
        self._check_augment()
        self.optimizer = optim.make(config.optimizer, config.lr)
        self.schedule = schedules.parse(config.schedule)
        self.schedule.check(config.lr, config.epochs, config.schedule)
        self.outputs, self.last_kind, self.output_shape = self._probe()
        self._check_fit()
        self._check_batch_norm()
        self.class_weights = self._class_weights()
        self.history: list[EpochRecord] = []
        self.epoch = 0                                  # epochs completed
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.wait = 0                                   # epochs since the best one
        self._good: tuple[dict, dict] | None = None    # last completed epoch, in memory
        self.notes: list[str] = []                      # said to the user before training
        if config.monitor != self.monitor:
            self.notes.append(f"no validation split: --monitor {config.monitor} watches "
                              f"{self.monitor}")

    # ---- set-up --------------------------------------------------------------------
    def _check_augment(self) -> None:
        """A shift must leave part of the image (and bounds the padded copy it makes)."""
        shape, t = self.model.input_shape, self.cfg.translate
        if (t or self.cfg.flip) and len(shape) not in (2, 3):
            # (a [T, F] sequence is shifted as its T×F image: see _batch_x)
            raise ArchcalcError(f"augmentation needs C×H×W images; spec '{self.spec}' takes "
                                "a flat input", fix="drop --translate/--flip")
        if t and t >= min(shape[-2:]):
            h, w = shape[-2:]
            raise ArchcalcError(f"--translate {t} would shift {h}×{w} images by up to {t} "
                                f"pixels; the most is {min(h, w) - 1}",
                                fix="a few pixels, e.g. --translate 2, or 0 for none")

    def _probe(self) -> tuple[int, str, tuple[int, ...]]:
        """Scores per example, the last layer's kind and the output shape, from one forward
        on zeros."""
        y = self.model.forward(np.zeros((1, *self.model.input_shape), dtype=self.dtype))
        record = self.model.records[-1] if self.model.records else None
        self.last_name = record.name if record else "input"
        return int(np.prod(y.shape[1:])), (record.type if record else ""), tuple(y.shape[1:])

    def _check_batch_norm(self) -> None:
        """Batch norm in training needs two values per channel in a batch. batch_indices
        never makes a one-example batch from a batch size ≥ 2, so only --batch-size 1 or a
        training split of one example can give one: refused now, not mid-epoch."""
        n = len(self.data.train)
        if self.cfg.batch_size != 1 and n != 1:
            return
        for record in self.model.records:
            layer = self.model.layers.get(record.name)
            if (record.type == "batchnorm" and not getattr(layer, "frozen", False)
                    and math.prod(record.output_shape[1:]) < 2):
                why = ("the training split holds one example" if n == 1
                       else "--batch-size 1 gives batches of one example")
                fix = ("more training images (a smaller --val-split)" if n == 1
                       else "--batch-size 2 or more")
                raise ArchcalcError(f"layer '{record.name}' (batchnorm) normalises one value "
                                    f"per channel over the batch, and {why}", fix=fix)

    def _check_fit(self) -> None:
        if self.cfg.loss == "bce" and self.last_kind == "sigmoid":
            # bce applies its own sigmoid to the scores: it would train σ(σ(x))
            raise ArchcalcError(f"--loss bce takes logits, and spec '{self.spec}' already ends "
                                f"in a sigmoid (layer '{self.last_name}')",
                                fix="drop the final sigmoid (bce applies it), or use --loss mse")
        if self.reconstructs:
            check_reconstruction(self.model.input_shape, self.output_shape, self.cfg.loss,
                                 self.cfg.class_weights, self.spec, self.last_name)
            return
        check_fit(self.data.classes, self.outputs, self.cfg.loss, self.data.name, self.spec,
                  self.last_name)

    @property
    def reconstructs(self) -> bool:
        return self.cfg.target == "input"

    def _class_weights(self) -> np.ndarray | None:
        """The per-class weights, scaled so that the largest is 1: the loss is a weighted
        mean (scale-free), and 1e38 weights would otherwise overflow float32."""
        text = self.cfg.class_weights
        if text is None:
            return None
        w = parse_class_weights(text)
        if w is None:
            w = balanced_weights(self.data.train.labels, self.data.classes)
        elif w.size != self.data.classes:
            what = f"class weights '{echo(text, 80)}' give {w.size} number(s)"
            where = f"; dataset '{self.data.name}' has {self.data.classes} classes"
            if self.config_source is not None:
                raise ArchcalcError(f"the checkpoint's stored {what}{where}",
                                    file=str(self.config_source),
                                    fix="evaluate on the dataset the run was trained on (--data)")
            raise ArchcalcError(what + where, fix=f"--class-weights balanced, or "
                                f"{self.data.classes} weights, one per class")
        return w / w.max()

    def loss_fn(self) -> Callable[..., losses.LossResult]:
        if self.cfg.loss == "cross_entropy" and self.last_kind == "softmax":
            return losses.probs_cross_entropy   # the spec already ends in a softmax
        return losses.LOSSES[self.cfg.loss]

    @property
    def monitor(self) -> str:
        """What early stopping and the best epoch watch: a val_ quantity falls back to its
        train_ twin when there is no validation split (and a note says so)."""
        name = self.cfg.monitor
        if name.startswith("val_") and len(self.data.val) == 0:
            return "train_" + name[4:]
        return name

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """(n, C) scores → (n,) predicted classes."""
        if scores.shape[1] > 1:
            return scores.argmax(axis=1)
        threshold = pixel_threshold(self.cfg.loss, self.last_kind)
        return (scores[:, 0] > threshold).astype(np.int64)

    def targets(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """What the loss compares the scores with: the labels (n,), or the images (n, values)."""
        return x.reshape(x.shape[0], -1) if self.reconstructs else labels

    def scores_right(self, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per example: 1/0 for a right/wrong class, or for a reconstruction the pixel
        accuracy (the fraction of values on the right side of the ink threshold: the image
        targets are scaled to 0..1, so 0.5 splits ink from background), (n,) floats."""
        if not self.reconstructs:
            return (self.predict(scores) == targets).astype(np.float64)
        threshold = pixel_threshold(self.cfg.loss, self.last_kind)
        return ((scores > threshold) == (targets > 0.5)).mean(axis=1)

    # ---- resume / fine-tune --------------------------------------------------------
    def resume(self, source: Path | Checkpoint) -> None:
        """Continue a run from its checkpoint: weights, optimizer state, epoch, history,
        run id. Every option that decides the result must be the checkpoint's (the CLI fills
        in the ones not given); a different one is an error naming the stored value."""
        ckpt = source if isinstance(source, Checkpoint) else read_checkpoint(Path(source))
        path = ckpt.path
        if "epoch" not in ckpt.meta:
            raise ArchcalcError("not a training checkpoint (no epoch in it)", file=str(path),
                                fix="use --weights to start a new run from these weights")
        self._check_same_run(ckpt)
        if ckpt.best:                   # checked like the weights: loaded once, replaced next
            load_into(self.model, ckpt.best, ckpt, self.spec)
        load_into(self.model, ckpt.state, ckpt, self.spec)
        # after the weights: a changed layer size is named with its shapes there
        self._check_same_arch(ckpt)
        try:
            self.optimizer.load_state_dict(ckpt.optimizer, self.model.params)
        except ArchcalcError as exc:
            raise exc.located(file=str(path)) from None
        # read_checkpoint's check_meta has checked every field used here
        self.epoch = ckpt.meta["epoch"]
        self.history = [EpochRecord(**{k: r[k] for k in _RECORD_KEYS})
                        for r in ckpt.meta.get("history", [])]
        best = ckpt.meta.get("best") or {}
        self.best_value, self.best_epoch = best.get("value"), best.get("epoch")
        self.wait = ckpt.meta.get("wait", 0)
        self.best_state = ckpt.best or None
        self.run_id = str(ckpt.meta.get("run_id") or self.run_id)
        self.resumed_from = path
        if self.out is not None and _same_file(path, self.out / CHECKPOINT):
            # the checkpoint resumed from is this run's on disk: a write that fails before
            # the next epoch's leaves it (and its history, put back) as it was
            self.saved_epoch = self.epoch
            self._saved_history = self.history_records()
        if self.epoch >= self.cfg.epochs:
            raise ArchcalcError(f"the checkpoint has already trained {self.epoch} epoch(s) "
                                f"and --epochs is {self.cfg.epochs}", file=str(path),
                                fix=f"raise --epochs above {self.epoch} to train more")

    def _check_same_run(self, ckpt: Checkpoint) -> None:
        """Every result-deciding option equals the checkpoint's: anything else would not
        continue that run but silently start a different one from its middle."""
        self._check_same_name(ckpt)
        stored = config_from_meta(ckpt.meta, ckpt.path)
        if "optimizer" not in stored and "optimizer" in ckpt.meta:
            stored["optimizer"] = ckpt.meta["optimizer"]     # format-1 checkpoints
        mine = asdict(self.cfg)
        pairs = [(k, v, mine[k]) for k, v in stored.items() if k not in RESUME_MAY_CHANGE]
        setup = ckpt.meta.get("setup")
        if isinstance(setup, dict):
            pairs += [(k, v, self.setup[k]) for k, v in setup.items()
                      if k in self.setup and k != "init"]
        for key, saved, given in pairs:
            if saved != given:
                raise ArchcalcError(
                    f"the checkpoint's run used {option_text(key, saved)}; this run asks for "
                    f"{option_text(key, given)}", file=str(ckpt.path),
                    fix=f"drop that option to continue the run as it was, or start a new run "
                        f"from its weights: --weights {echo(ckpt.path, 80)}")

    def _spec_fix(self, ckpt: Checkpoint) -> str:
        return (f"resume with the spec the run was trained with, or start a new run from "
                f"its weights: --weights {echo(ckpt.path, 80)}")

    def _check_same_name(self, ckpt: Checkpoint) -> None:
        saved = ckpt.meta.get("spec")
        if saved and saved != self.spec:
            raise ArchcalcError(f"the checkpoint's run trained spec '{echo(saved, 60)}'; "
                                f"this spec is named '{echo(self.spec, 60)}'",
                                file=str(ckpt.path), fix=self._spec_fix(ckpt))

    def _check_same_arch(self, ckpt: Checkpoint) -> None:
        """The spec's resolved architecture is the checkpoint's (its fingerprint: a
        reformatted file is the same spec, relu → tanh or an extra parameter-free layer is
        not). Checkpoints written before the fingerprint are taken as they are."""
        arch = ckpt.meta.get("arch")
        what = network.arch_difference(arch, self.model.network) if arch else None
        if what:
            raise ArchcalcError(f"the spec is not the one the checkpoint's run trained: "
                                f"{echo(what, 200)}", file=str(ckpt.path),
                                fix=self._spec_fix(ckpt))

    def start_from(self, path: Path) -> None:
        """Fine-tuning: start a new run from a checkpoint's (final) weights."""
        ckpt = read_checkpoint(Path(path))
        load_into(self.model, ckpt.final_weights, ckpt, self.spec)
        self.started_from = ckpt.path

    # ---- one epoch -----------------------------------------------------------------
    def _batch_x(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Training images (n, *input_shape), augmented. A [T, F] sequence is an image read
        row by row (data.fit_images), so it is shifted and mirrored as the 1×T×F image."""
        x = self.data.train.x(idx, self.dtype)
        if not (self.cfg.translate or self.cfg.flip) or x.ndim not in (3, 4):
            return x
        image = x[:, None] if x.ndim == 3 else x
        if self.cfg.translate:
            image = datamod.translate(image, self.cfg.translate, rng)
        if self.cfg.flip:
            image = datamod.hflip(image, rng)
        return image[:, 0] if x.ndim == 3 else image

    def step(self, x: np.ndarray, labels: np.ndarray,
             where: str = "a step") -> tuple[float, float]:
        """One update on a batch x (n, *input_shape), labels (n,); returns (data loss,
        correct predictions: a count, or the sum of pixel accuracies with --target input).
        `where` names the step in a divergence error."""
        # NaN and inf are detected below and reported in one line; numpy's warnings on the
        # way there would only be noise
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._update(x, labels, where)

    def _update(self, x: np.ndarray, labels: np.ndarray, where: str) -> tuple[float, float]:
        model, cfg = self.model, self.cfg
        y = model.forward(x, training=True)
        scores = y.reshape(y.shape[0], -1)
        targets = self.targets(x, labels)
        loss, dscores = self.loss_fn()(scores, targets, self.class_weights)
        trainable = [n for n in model.params if n not in model.frozen]
        names = losses.penalized_names(model.params, model.frozen)
        reg, reg_grads = losses.penalty(model.params, names, l2=cfg.weight_decay, l1=cfg.l1)
        if not math.isfinite(loss + reg):
            raise self._diverged(f"the loss became {loss + reg}", where)
        model.backward(dscores.reshape(y.shape), input_grad=False)  # nothing uses dL/dx
        for name, g in reg_grads.items():
            model.grads[name] += g
        if cfg.clip_norm:
            optim.clip_grad_norm(model.grads, cfg.clip_norm, trainable)
        self.optimizer.step(model.params, model.grads, model.frozen)
        for name in trainable:
            if not np.isfinite(model.params[name].sum()):
                raise self._diverged(f"weight '{name}' became NaN or infinite", where)
        return loss, float(self.scores_right(scores, targets).sum())

    def _diverged(self, what: str, where: str) -> ArchcalcError:
        # the checkpoint and history.json on disk are the last completed epoch's already
        kept = (f"the last good checkpoint (epoch {self.saved_epoch}) is in "
                f"{self.out / CHECKPOINT}" if self.out is not None and self.saved_epoch
                is not None else f"the last good epoch was {self.epoch}")
        return ArchcalcError(f"training diverged: {what} at {where}",
                             fix=self._divergence_cause() + "; " + kept)

    def _divergence_cause(self) -> str:
        """What to change: the rate the schedule raised, the loaded weights, or --lr. A
        resumed run keeps its options, so the change is a new run from its weights."""
        lr0, lr = self.cfg.lr, self.optimizer.lr
        raised = lr > lr0 * 1.000001
        if self.resumed_from is not None:
            ckpt = (self.out / CHECKPOINT if self.out is not None and self.saved_epoch
                    is not None else self.resumed_from)
            new = (f"start a new run from these weights: --weights {echo(ckpt, 80)} "
                   + ("--schedule (a factor below 1)" if raised else f"--lr {lr0 / 10:g}")
                   + " --out NEW_DIR")
            why = (f"the schedule {self.cfg.schedule} raised the rate from {lr0:g} to {lr:g}"
                   if raised else f"the learning rate {lr0:g} is too high for this run")
            return f"{why}; {new}"
        if raised:
            return (f"the schedule {self.cfg.schedule} raised the rate from {lr0:g} to "
                    f"{lr:g}; use a factor below 1")
        loaded = self.started_from
        if loaded is not None and self.epoch == self._first_epoch:
            return (f"lower the learning rate (e.g. --lr {lr0 / 10:g}), or start from other "
                    f"weights than {echo(loaded, 80)}: this run diverged in its first epoch "
                    "from them")
        return f"lower the learning rate, e.g. --lr {lr0 / 10:g}"

    def _epoch(self, epoch: int) -> EpochRecord:
        """Train one epoch (1-based `epoch`), validate, and return its record."""
        cfg = self.cfg
        start = time.perf_counter()
        self.optimizer.lr = self.schedule(cfg.lr, epoch - 1)
        shuffle = np.random.default_rng([cfg.seed, epoch, 0])
        augment = np.random.default_rng([cfg.seed, epoch, 1])
        self.model.reseed_noise([cfg.seed, epoch, 2])  # dropout masks: same on resume
        parts = datamod.batch_indices(len(self.data.train), cfg.batch_size, shuffle)
        self.progress.epoch_start(epoch, cfg.epochs, len(parts), self.optimizer.lr)
        total_loss = seen = correct = 0
        for b, idx in enumerate(parts, start=1):
            labels = self.data.train.labels[idx]
            loss, right = self.step(self._batch_x(idx, augment), labels,
                                     f"epoch {epoch}, batch {b}")
            total_loss += loss * idx.size
            seen += idx.size
            correct += right
            self.progress.batch_end(b, total_loss / seen, correct / seen)
        self.train_seconds += time.perf_counter() - start
        self.train_images += seen
        val_loss, val_acc = (self.evaluate(self.data.val)[:2] if len(self.data.val)
                             else (None, None))
        if val_loss is not None and not math.isfinite(val_loss):
            raise self._diverged(f"the validation loss became {val_loss}",
                                 f"the end of epoch {epoch}")
        return EpochRecord(epoch, total_loss / seen, correct / seen, val_loss, val_acc,
                           self.optimizer.lr, round(time.perf_counter() - start, 3))

    def evaluate(self, split: datamod.Split) -> tuple[float, float, np.ndarray]:
        """(data loss, accuracy, predictions (n,)) in inference mode, in batches of
        eval_batch; with --target input the accuracy is the mean pixel accuracy and the
        predictions are each image's pixel accuracy. Overflow gives a loss of inf or nan (the caller decides what that
        means), never a warning on the user's terminal."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return self._evaluate(split)

    def _evaluate(self, split: datamod.Split) -> tuple[float, float, np.ndarray]:
        total, preds = 0.0, []
        fn = self.loss_fn()
        step = max(1, self.eval_batch)
        for i in range(0, len(split), step):
            idx = slice(i, i + step)
            y = self.model.forward(split.x(idx, self.dtype), training=False)
            scores = y.reshape(y.shape[0], -1)
            labels = split.labels[idx]
            if self.reconstructs:
                targets = split.x(idx, self.dtype).reshape(labels.size, -1)
                total += fn(scores, targets, None)[0] * labels.size
                preds.append(self.scores_right(scores, targets))
                continue
            total += fn(scores, labels, self.class_weights)[0] * labels.size
            preds.append(self.predict(scores))
        predicted = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        n = max(len(split), 1)
        right = predicted.sum() if self.reconstructs else (predicted == split.labels).sum()
        return total / n, float(right) / n, predicted

    # ---- early stopping and checkpoints --------------------------------------------
    def _monitored(self, r: EpochRecord) -> tuple[float, bool]:
        """(value, higher is better) of the monitored quantity for this epoch."""
        name = self.monitor
        return getattr(r, name), name.endswith("acc")

    def _track_best(self, r: EpochRecord) -> bool:
        """Update best/wait; True when early stopping says stop."""
        value, higher = self._monitored(r)
        better = (self.best_value is None
                  or (value > self.best_value if higher else value < self.best_value))
        if better:
            self.best_value, self.best_epoch, self.wait = value, r.epoch, 0
            if self.cfg.patience is not None and self.cfg.restore_best:
                self.best_state = self.model.state_dict()
        else:
            self.wait += 1
        return self.cfg.patience is not None and self.wait >= self.cfg.patience

    def _meta(self, ended_on_best: bool = False, epoch: int | None = None) -> dict[str, Any]:
        epoch = self.epoch if epoch is None else epoch
        return {"run_id": self.run_id, "spec": self.spec, "epoch": epoch,
                "arch": self._fingerprint(),
                "optimizer": self.cfg.optimizer, "config": asdict(self.cfg),
                "setup": self.setup, "data": self.data.name,
                "history": [asdict(r) for r in self.history[:epoch]], "wait": self.wait,
                "best": {"epoch": self.best_epoch, "value": self.best_value,
                         "monitor": self.cfg.monitor},
                "ended_on_best": ended_on_best}

    def _fingerprint(self) -> dict[str, Any]:
        if getattr(self, "_arch", None) is None:      # once per run: the spec is fixed
            self._arch = network.fingerprint(self.model.network)
        return self._arch

    def _save(self, ended_on_best: bool = False) -> None:
        """Checkpoint, then history.json. history.json goes first, so that a kill between
        the two leaves no history of another epoch beside the checkpoint. A write that fails
        (full disk, read-only file system) says which checkpoint is on disk then."""
        if self.out is None:
            return
        state, opt_state = self._good
        epoch = self._good_epoch
        try:
            _unlink(self.out / "history.json")
            save_checkpoint(self.out / CHECKPOINT, state, opt_state, self.best_state,
                            self._meta(ended_on_best, epoch))
        except ArchcalcError as exc:
            raise self._write_failed(exc) from None
        self.saved_epoch, self._saved_history = epoch, self.history_records()[:epoch]
        try:
            write_json(self.out / "history.json", self._saved_history)
        except ArchcalcError as exc:
            raise self._write_failed(exc) from None

    def _write_failed(self, exc: ArchcalcError) -> ArchcalcError:
        """exc, with what is on disk now: the last checkpoint written (it holds the history;
        history.json is put back beside it if the disk lets us)."""
        ckpt = self.out / CHECKPOINT
        if self.saved_epoch is None:
            on_disk = "no checkpoint of this run is on disk"
        else:
            on_disk = f"{echo(ckpt)} still holds epoch {self.saved_epoch}"
            try:
                write_json(self.out / "history.json", self._saved_history)
            except ArchcalcError:
                on_disk += " (and its history; history.json could not be written)"
        exc.fix = (exc.fix + "; " if exc.fix else "") + on_disk
        return exc

    def history_records(self) -> list[dict[str, Any]]:
        """history.json: one record per epoch, each with the run id."""
        return [{**asdict(r), "run_id": self.run_id} for r in self.history]

    def _start_dir(self) -> None:
        """At the start of a run: refuse another run's directory, remove orphaned temp
        files and the views of an earlier run or segment, then write this run's checkpoint
        (epoch 0, or the one resumed from) and its history."""
        check_run_dir(self.out, resume=self.resumed_from, overwrite=self.overwrite)
        clean_temps(self.out)
        for name in VIEWS:
            _unlink(self.out / name)
        self._save()

    def _remember(self) -> None:
        """Keep the state of the epoch just completed (what a checkpoint holds)."""
        opt = {k: v.copy() for k, v in self.optimizer.state_dict().items()}
        self._good = (self.model.state_dict(), opt)
        self._good_epoch = self.epoch

    # ---- the run -------------------------------------------------------------------
    def fit(self) -> Result:
        if self.out is None:
            return self._fit()
        with RunLock(self.out):
            return self._fit()

    def _fit(self) -> Result:
        start = time.perf_counter()
        self.train_seconds, self.train_images = 0.0, 0
        self._first_epoch = self.epoch
        self._remember()
        if self.out is not None:
            self._start_dir()               # so that even an early Ctrl-C leaves a checkpoint
        stopped = interrupted = False
        try:
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
                record = self._epoch(epoch)
                self.history.append(record)
                self.epoch = epoch
                stop = self._track_best(record)
                self._remember()
                self._save()
                self.progress.epoch_end(record)
                if stop:
                    stopped = True
                    break
            self.progress.finishing()
        except KeyboardInterrupt:          # Ctrl-C, or SIGTERM (the CLI turns it into one)
            interrupted = True              # fall back to the last completed epoch
            self.model.load_state_dict(self._good[0])
            self.optimizer.load_state_dict(self._good[1])
            self.epoch = self._good_epoch
            self.progress.finishing()
        ended_on_best = bool(self.best_state) and self.cfg.restore_best and \
            self.cfg.patience is not None and self.best_epoch != self.epoch
        if ended_on_best:
            self.model.load_state_dict(self.best_state)
        if self.out is not None:
            self._save(ended_on_best)
        test_loss, test_acc, _ = self.evaluate(self.data.test)
        result = Result(self.history, test_loss, test_acc, self.epoch,
                        time.perf_counter() - start,
                        self.train_images / self.train_seconds if self.train_seconds else 0.0,
                        self.best_epoch, stopped, interrupted)
        result.extra.update(self._about())
        if self.out is not None:
            write_json(self.out / "metrics.json", result.metrics())
        return result

    def _about(self) -> dict[str, Any]:
        """What metrics.json says about the run besides its figures."""
        cfg = self.cfg
        about = {"run_id": self.run_id, "data": self.data.name, "spec": self.spec,
                 "optimizer": cfg.optimizer, "lr": cfg.lr, "batch_size": cfg.batch_size,
                 "seed": cfg.seed, "translate": cfg.translate, "flip": cfg.flip}
        if "init" in self.setup:
            about["init"] = self.setup["init"]
        return about


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _unlink(path: Path) -> None:
    """Remove path if it is there. A read-only file system says EROFS even for a file that
    does not exist: that is only an error when the file is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if os.path.lexists(path):
            raise write_error(path, exc) from None
