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

import json
import math
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from archcalc.errors import ArchcalcError
from archcalc.nn import data as datamod
from archcalc.nn import losses, optim, schedules

CHECKPOINT_FORMAT = 1
EVAL_BATCH = 500           # examples per forward pass when only predicting
MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")


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


# --- checkpoints -------------------------------------------------------------------------

def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temp file in the same directory, then os.replace: a run killed while
    writing leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())            # mkstemp makes 0600; be a normal file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_checkpoint(path: Path, state: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    best: dict[str, np.ndarray] | None, meta: dict[str, Any]) -> None:
    """checkpoint.npz: the model's arrays under their own names (so executor.load_weights
    reads it), "@optimizer/<slot>/<param>", "@best/<name>" and a JSON "@meta" string.
    ('@' keeps them apart from layer names, which may contain '/'.)"""
    arrays = dict(state)
    arrays.update({f"@optimizer/{k}": v for k, v in optimizer.items()})
    arrays.update({f"@best/{k}": v for k, v in (best or {}).items()})
    arrays["@meta"] = np.array(json.dumps({"format": CHECKPOINT_FORMAT, **meta}))
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


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
    if not path.is_file():
        raise ArchcalcError(f"no such checkpoint: {path}", fix="check the path")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise ArchcalcError(f"not a readable checkpoint (.npz): {exc}", file=str(path),
                            fix="point at a checkpoint.npz written by archcalc train") from None
    meta = {}
    if "@meta" in arrays:
        try:
            meta = json.loads(str(arrays.pop("@meta")))
        except ValueError:
            raise ArchcalcError("the checkpoint's meta record is damaged", file=str(path),
                                fix="train again, or use an older checkpoint") from None
    parts: dict[str, dict[str, np.ndarray]] = {"@optimizer": {}, "@best": {}, "": {}}
    for key, arr in arrays.items():
        head, sep, rest = key.partition("/")
        if sep and head in ("@optimizer", "@best"):
            parts[head][rest] = arr
        else:
            parts[""][key] = arr
    return Checkpoint(path, parts[""], parts["@optimizer"], parts["@best"], meta)


def load_into(model, weights: dict[str, np.ndarray], ckpt: Checkpoint, spec: str) -> None:
    """Load weights into model; a checkpoint of another spec names the first mismatch."""
    try:
        model.load_state_dict(weights, source=str(ckpt.path))
    except ArchcalcError as exc:
        saved = ckpt.meta.get("spec")
        if saved and saved != spec:
            exc.message += f" (the checkpoint was saved from spec '{saved}', not '{spec}')"
        raise exc.located(file=str(ckpt.path)) from None


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


class Trainer:
    """Trains `model` (archcalc.nn.Model) on `data` (archcalc.nn.data.Data)."""

    def __init__(self, model, data: datamod.Data, config: TrainConfig, *,
                 spec: str = "", out: Path | None = None, progress: Progress | None = None):
        self.model, self.data, self.cfg = model, data, config
        self.spec = spec or getattr(model.network, "name", "")
        self.out = Path(out) if out is not None else None
        self.progress = progress or Progress()
        self.dtype = np.dtype(model.dtype).name
        if config.loss not in losses.LOSSES:
            raise ArchcalcError(f"unknown loss '{config.loss}'",
                                fix="one of " + ", ".join(losses.LOSSES))
        if config.monitor not in MONITORS:
            raise ArchcalcError(f"unknown monitor '{config.monitor}'", fix=", ".join(MONITORS))
        self.optimizer = optim.make(config.optimizer, config.lr)
        self.schedule = schedules.parse(config.schedule)
        self.outputs, self.last_kind = self._probe()
        self._check_fit()
        self.class_weights = self._class_weights()
        self.history: list[EpochRecord] = []
        self.epoch = 0                                  # epochs completed
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.wait = 0                                   # epochs since the best one
        self._good: tuple[dict, dict] | None = None    # last completed epoch, in memory
        self.notes: list[str] = []                      # said to the user before training

    # ---- set-up --------------------------------------------------------------------
    def _probe(self) -> tuple[int, str]:
        """Scores per example and the last layer's kind, from one forward on zeros."""
        y = self.model.forward(np.zeros((1, *self.model.input_shape), dtype=self.dtype))
        record = self.model.records[-1] if self.model.records else None
        self.last_name = record.name if record else "input"
        return int(np.prod(y.shape[1:])), (record.type if record else "")

    def _check_fit(self) -> None:
        c, k = self.data.classes, self.outputs
        binary = k == 1 and c <= 2 and self.cfg.loss in ("bce", "mse", "mae")
        if k != c and not binary:
            raise ArchcalcError(
                f"dataset '{self.data.name}' has {c} classes; spec '{self.spec}' ends with "
                f"{k} output value(s) per image (layer '{self.last_name}')",
                fix=f"make the last layer give {c} units, e.g. '- dense: {c}'")

    def _class_weights(self) -> np.ndarray | None:
        text = self.cfg.class_weights
        if not text:
            return None
        if text == "balanced":
            return balanced_weights(self.data.train.labels, self.data.classes)
        try:
            w = np.array([float(v) for v in text.split(",")])
        except ValueError:
            w = np.array([])
        if w.size != self.data.classes or (w < 0).any():
            raise ArchcalcError(f"class weights '{text}': need {self.data.classes} numbers >= 0",
                                fix="--class-weights balanced, or one weight per class")
        return w

    def loss_fn(self) -> Callable[..., losses.LossResult]:
        if self.cfg.loss == "cross_entropy" and self.last_kind == "softmax":
            return losses.probs_cross_entropy   # the spec already ends in a softmax
        return losses.LOSSES[self.cfg.loss]

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """(n, C) scores → (n,) predicted classes."""
        if scores.shape[1] > 1:
            return scores.argmax(axis=1)
        threshold = 0.5 if self.cfg.loss in ("mse", "mae") or self.last_kind == "sigmoid" else 0.0
        return (scores[:, 0] > threshold).astype(np.int64)

    # ---- resume / fine-tune --------------------------------------------------------
    def resume(self, path: Path) -> None:
        """Continue a run from its checkpoint: weights, optimizer state, epoch, history."""
        ckpt = read_checkpoint(Path(path))
        if "epoch" not in ckpt.meta:
            raise ArchcalcError("not a training checkpoint (no epoch in it)", file=str(path),
                                fix="use --weights to start a new run from these weights")
        saved_opt = ckpt.meta.get("optimizer")
        if saved_opt != self.cfg.optimizer:
            raise ArchcalcError(f"the checkpoint was trained with --optimizer {saved_opt}, this "
                                f"run asks for {self.cfg.optimizer}", file=str(path),
                                fix=f"resume with --optimizer {saved_opt}, or start a new run "
                                    "from its weights with --weights")
        load_into(self.model, ckpt.state, ckpt, self.spec)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.epoch = int(ckpt.meta["epoch"])
        self.history = [EpochRecord(**r) for r in ckpt.meta.get("history", [])]
        best = ckpt.meta.get("best") or {}
        self.best_value, self.best_epoch = best.get("value"), best.get("epoch")
        self.wait = int(ckpt.meta.get("wait", 0))
        self.best_state = ckpt.best or None
        saved = ckpt.meta.get("config", {})
        for key, value in asdict(self.cfg).items():
            if key not in ("epochs", "patience", "monitor", "restore_best") and key in saved \
                    and saved[key] != value:
                self.notes.append(f"{key} is {value!r}, the checkpoint's run used "
                                  f"{saved[key]!r}: not an exact continuation")
        if self.epoch >= self.cfg.epochs:
            raise ArchcalcError(f"the checkpoint has already trained {self.epoch} epoch(s) "
                                f"and --epochs is {self.cfg.epochs}", file=str(path),
                                fix=f"raise --epochs above {self.epoch} to train more")

    def start_from(self, path: Path) -> None:
        """Fine-tuning: start a new run from a checkpoint's (final) weights."""
        ckpt = read_checkpoint(Path(path))
        load_into(self.model, ckpt.final_weights, ckpt, self.spec)

    # ---- one epoch -----------------------------------------------------------------
    def _batch_x(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = self.data.train.x(idx, self.dtype)
        if self.cfg.translate and x.ndim == 4:
            x = datamod.translate(x, self.cfg.translate, rng)
        if self.cfg.flip and x.ndim == 4:
            x = datamod.hflip(x, rng)
        return x

    def step(self, x: np.ndarray, labels: np.ndarray,
             where: str = "a step") -> tuple[float, int]:
        """One update on a batch x (n, *input_shape), labels (n,); returns (data loss,
        correct predictions). `where` names the step in a divergence error."""
        # NaN and inf are detected below and reported in one line; numpy's warnings on the
        # way there would only be noise
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._update(x, labels, where)

    def _update(self, x: np.ndarray, labels: np.ndarray, where: str) -> tuple[float, int]:
        model, cfg = self.model, self.cfg
        y = model.forward(x, training=True)
        scores = y.reshape(y.shape[0], -1)
        loss, dscores = self.loss_fn()(scores, labels, self.class_weights)
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
        return loss, int((self.predict(scores) == labels).sum())

    def _diverged(self, what: str, where: str) -> ArchcalcError:
        kept = (f"the last good checkpoint (epoch {self.epoch}) is in {self.out / 'checkpoint.npz'}"
                if self.out is not None else f"the last good epoch was {self.epoch}")
        if self.out is not None:
            write_json(self.out / "history.json", [asdict(r) for r in self.history])
        return ArchcalcError(f"training diverged: {what} at {where}",
                             fix=f"lower the learning rate, e.g. --lr {self.optimizer.lr / 10:g}; "
                                 + kept)

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
        """(data loss, accuracy, predictions (n,)) in inference mode, in batches."""
        total, preds = 0.0, []
        fn = self.loss_fn()
        for i in range(0, len(split), EVAL_BATCH):
            idx = slice(i, i + EVAL_BATCH)
            y = self.model.forward(split.x(idx, self.dtype), training=False)
            scores = y.reshape(y.shape[0], -1)
            labels = split.labels[idx]
            total += fn(scores, labels, self.class_weights)[0] * labels.size
            preds.append(self.predict(scores))
        predicted = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        n = max(len(split), 1)
        return total / n, float((predicted == split.labels).sum()) / n, predicted

    # ---- early stopping and checkpoints --------------------------------------------
    def _monitored(self, r: EpochRecord) -> tuple[float, bool]:
        """(value, higher is better) of the monitored quantity for this epoch."""
        name = self.cfg.monitor
        if name.startswith("val_") and r.val_loss is None:
            name = "train_" + name[4:]                  # no validation split
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

    def _meta(self, ended_on_best: bool = False) -> dict[str, Any]:
        return {"spec": self.spec, "epoch": self.epoch, "optimizer": self.cfg.optimizer,
                "config": asdict(self.cfg), "data": self.data.name,
                "history": [asdict(r) for r in self.history], "wait": self.wait,
                "best": {"epoch": self.best_epoch, "value": self.best_value,
                         "monitor": self.cfg.monitor},
                "ended_on_best": ended_on_best}

    def _save(self, ended_on_best: bool = False) -> None:
        if self.out is None:
            return
        state, opt_state = self._good
        save_checkpoint(self.out / "checkpoint.npz", state, opt_state, self.best_state,
                        self._meta(ended_on_best))

    def _remember(self) -> None:
        """Keep the state of the epoch just completed (what a checkpoint holds)."""
        opt = {k: v.copy() for k, v in self.optimizer.state_dict().items()}
        self._good = (self.model.state_dict(), opt)

    # ---- the run -------------------------------------------------------------------
    def fit(self) -> Result:
        start = time.perf_counter()
        self.train_seconds, self.train_images = 0.0, 0
        self._remember()
        if self.epoch == 0:
            self._save()                    # so that even an early Ctrl-C leaves a checkpoint
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
        except KeyboardInterrupt:
            interrupted = True              # fall back to the last completed epoch
            self.model.load_state_dict(self._good[0])
            self.optimizer.load_state_dict(self._good[1])
        ended_on_best = bool(self.best_state) and self.cfg.restore_best and \
            self.cfg.patience is not None and self.best_epoch != self.epoch
        if ended_on_best:
            self.model.load_state_dict(self.best_state)
        if self.out is not None:
            self._save(ended_on_best)
        test_loss, test_acc, _ = self.evaluate(self.data.test)
        return Result(self.history, test_loss, test_acc, self.epoch,
                      time.perf_counter() - start,
                      self.train_images / self.train_seconds if self.train_seconds else 0.0,
                      self.best_epoch, stopped, interrupted)
