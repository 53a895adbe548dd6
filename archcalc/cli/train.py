"""`archcalc train` and `archcalc evaluate`: the executor learns a spec on real images."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich import box
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from click.core import ParameterSource

from archcalc.cli import main
from archcalc.cli.common import console, input_option, print_wide
from archcalc.errors import ArchcalcError
from archcalc.limits import MAX_EPOCHS, SEED_MAX
from archcalc.nn import build
from archcalc.nn import data as datamod
from archcalc.nn import optim, train
from archcalc.nn.losses import LOSSES
from archcalc.spec import load

# A learning rate that works for each optimizer when --lr is not given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
              "rmsprop": 0.001, "adam": 0.001}


class BatchSize(click.ParamType):
    """A whole number >= 1, or "full" for full-batch gradient descent (stored as 0)."""

    name = "N|full"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        if str(value).lower() == "full":
            return 0
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"'{value}' is not a batch size (a whole number >= 1, or 'full')",
                      param, ctx)
        return n


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: click's FloatRange lets inf through when the
    range is open above, and nan through always (every comparison with nan is false)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number in the range {self._describe_range()}",
                      param, ctx)
        return number


SEED = click.IntRange(0, SEED_MAX)


class RichProgress(train.Progress):
    """A rich bar per epoch with live loss and accuracy, and one summary line per epoch."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("", total=1, loss=0.0, acc=0.0, visible=False)

    def epoch_start(self, epoch, epochs, batches, lr):
        self.epochs = epochs
        self.bar.reset(self.task, total=batches, description=f"epoch {epoch}/{epochs}",
                       loss=0.0, acc=0.0, visible=True)

    def batch_end(self, batch, loss, acc):
        self.bar.update(self.task, completed=batch, loss=loss, acc=acc)

    def epoch_end(self, r):
        val = (f"val loss {r.val_loss:.4f} acc {r.val_acc:6.2%}" if r.val_loss is not None
               else "(no validation split)")
        self.bar.console.print(f"{r.epoch:>3}/{self.epochs}  loss {r.train_loss:.4f} acc "
                               f"{r.train_acc:6.2%} | {val} | lr {r.lr:.3g} {r.seconds:.1f}s")


def progress_bar(out) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=out, transient=True)


def plot_curves(history: list[train.EpochRecord], path: Path) -> bool:
    """curves.png: loss and accuracy per epoch (train and validation). False without
    matplotlib (the optional extra archcalc[plot])."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [getattr(r, f"train_{key}") for r in history], "o-", label="train")
        if any(getattr(r, f"val_{key}") is not None for r in history):
            ax.plot(epochs, [getattr(r, f"val_{key}") for r in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    train.atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)
    return True


@main.command("train")
@click.argument("spec")
@click.option("--data", "source", default="digits", show_default=True,
              help="digits (embedded), fashion-mnist[:DIR], or idx:DIR (MNIST-format files).")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=20, show_default=True)
@click.option("--batch-size", type=BatchSize(), default="64", show_default=True,
              help="Examples per step; 1 = single example, 'full' = full batch.")
@click.option("--optimizer", type=click.Choice(list(optim.OPTIMIZERS)), default="adam",
              show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Initial learning rate [default: 0.001 for adam/rmsprop, 0.01 for "
                   "momentum/nesterov/adagrad, 0.1 for sgd].")
@click.option("--schedule", default="constant", show_default=True,
              help="constant, inverse-time:K, exponential:GAMMA, inv-sqrt, step:EVERY,GAMMA.")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="cross_entropy",
              show_default=True)
@click.option("--weight-decay", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="L2 penalty λ on conv/dense weights (λ/2·Σw²).")
@click.option("--l1", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="L1 penalty on conv/dense weights.")
@click.option("--class-weights", default=None,
              help="'balanced' or one weight per class, e.g. 1,1,5.")
@click.option("--clip-norm", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Clip the gradients' global norm to this value.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seeds the weights, the shuffling, augmentation and dropout.")
@click.option("--init", type=click.Choice(["he", "xavier", "lecun"]), default=None,
              help="Weight initialiser [default: the spec's 'init', else he].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory [default: runs/<spec name>].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue a run exactly from its checkpoint.npz (or its directory), with "
                   "the options it was started with; --out defaults to its directory.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run that --out already holds (without it, train refuses).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Start a new run from a checkpoint's weights (fine-tuning).")
@click.option("--freeze", multiple=True, metavar="PREFIX",
              help="Do not train the layers whose names start with PREFIX (repeatable).")
@click.option("--patience", type=click.IntRange(1, MAX_EPOCHS), default=None,
              help="Stop after this many epochs without improvement of --monitor.")
@click.option("--monitor", type=click.Choice(["val_loss", "val_acc", "train_loss", "train_acc"]),
              default="val_loss", show_default=True)
@click.option("--restore-best/--no-restore-best", default=True, show_default=True,
              help="With --patience, end on the best epoch's weights.")
@click.option("--translate", type=click.IntRange(min=0), default=None,
              help="Augmentation: shift each image by up to N pixels [default: 2 for "
                   "digits on a C×H×W input, else 0].")
@click.option("--flip", is_flag=True, help="Augmentation: mirror half the images left-right.")
@click.option("--val-split", type=FiniteFloat(0, 0.9), default=0.1, show_default=True,
              help="Fraction of the training images held out for validation.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@input_option()
def train_command(spec, **opts):
    """Train SPEC with the NumPy executor and write history.json, metrics.json,
    checkpoint.npz and curves.png to --out.

    \b
    Examples:
      archcalc train lenet5
      archcalc train lenet5 --data fashion-mnist --epochs 10 --translate 2 --flip
      archcalc train lenet5 --optimizer momentum --lr 0.05 --schedule step:5,0.5
      archcalc train lenet5 --resume runs/lenet5 --epochs 30
      archcalc train lenet5 --weights runs/lenet5/checkpoint.npz --freeze conv1 --freeze conv2
    """
    o = opts
    if o["resume"] and o["weights"]:
        raise ArchcalcError("--resume and --weights exclude each other",
                            fix="--resume continues a run; --weights starts a new one")
    net = load(spec, o["input_shape"])
    ckpt = None
    if o["resume"]:
        if o["resume"].is_dir():
            o["resume"] = o["resume"] / train.CHECKPOINT
        ckpt = train.read_checkpoint(o["resume"])
        _take_stored(o, ckpt)
    out_dir = o["out"] or (o["resume"].parent if o["resume"] else Path("runs") / net.name)
    train.check_run_dir(out_dir, resume=o["resume"], overwrite=o["overwrite"])
    data = datamod.load(o["source"], net.input_shape, spec=net.name, val_fraction=o["val_split"])
    augment_default = o["translate"] is None and "translate" in data.augment
    if o["translate"] is None:
        o["translate"] = data.augment.get("translate", 0)
    cfg = train.TrainConfig(
        lr=o["lr"] or DEFAULT_LR[o["optimizer"]],
        **{k: o[k] for k in ("epochs", "batch_size", "optimizer", "schedule", "loss",
                             "weight_decay", "l1", "class_weights", "clip_norm", "seed",
                             "patience", "monitor", "restore_best", "translate", "flip")})
    # a spec may name its initialiser (a top-level `init:`)
    init = o["init"] or getattr(net, "init", None) or "he"
    model = build(net, seed=cfg.seed, dtype=o["dtype"], init=init)
    if o["freeze"]:
        model.freeze(list(o["freeze"]))
    setup = {"data": o["source"], "val_split": o["val_split"], "dtype": o["dtype"],
             "init": init, "freeze": list(o["freeze"])}
    out_con = console()
    bar = progress_bar(out_con)
    trainer = train.Trainer(model, data, cfg, spec=net.name, out=out_dir,
                            progress=RichProgress(bar), setup=setup, overwrite=o["overwrite"])
    if ckpt is not None:
        trainer.resume(ckpt)
    elif o["weights"]:
        trainer.start_from(o["weights"])
    _intro(out_con, net, data, cfg, model, trainer, o["resume"], augment_default, init)
    with bar:
        result = trainer.fit()
    _finish(out_con, result, trainer, out_dir, data)


# The CLI's name of each stored key (the rest are the same): setup["data"] is --data.
_PARAM = {"data": "source"}


def _take_stored(opts: dict, ckpt: train.Checkpoint) -> None:
    """On --resume, every option not given on the command line takes the value the
    checkpoint's run used; the trainer then refuses the given ones that differ."""
    ctx = click.get_current_context()
    stored = dict(train.config_from_meta(ckpt.meta, ckpt.path))
    setup = ckpt.meta.get("setup")
    if isinstance(setup, dict):
        stored.update(setup)
    for key, value in stored.items():
        param = _PARAM.get(key, key)
        if key in train.RESUME_MAY_CHANGE or param not in opts:
            continue
        if ctx.get_parameter_source(param) in (ParameterSource.COMMANDLINE,
                                               ParameterSource.ENVIRONMENT):
            continue
        opts[param] = tuple(value) if param == "freeze" and isinstance(value, list) else value


def _intro(out, net, data, cfg, model, trainer, resume, augment_default, init) -> None:
    counts = f"{len(data.train):,} train / {len(data.val):,} val / {len(data.test):,} test"
    out.print(f"data:  {data.name}, {counts}, {data.classes} classes", markup=False)
    out.print(f"input: {data.transform}", markup=False)
    trainable = sum(p.size for k, p in model.params.items() if k not in model.frozen)
    frozen = sum(p.size for k, p in model.params.items() if k in model.frozen)
    out.print(f"model: {net.name} ({'×'.join(map(str, net.input_shape))}), {trainable:,} "
              "trainable parameters" + (f", {frozen:,} frozen" if frozen else ""), markup=False)
    lr = trainer.schedule.describe().replace("lr0", f"{cfg.lr:g}")
    if lr == "constant":
        lr = f"{cfg.lr:g}"
    # a batch larger than the training set is the full batch (say so, not "batch 100000")
    full = cfg.batch_size == 0 or cfg.batch_size >= len(data.train)
    batch = "full batch" if full else f"batch {cfg.batch_size}"
    out.print(f"train: {cfg.optimizer}, lr {lr}, {batch}, {cfg.loss} loss, {init} init, "
              f"seed {cfg.seed}, {cfg.epochs} epochs")
    augment = [f"random shifts of up to {cfg.translate} px"] if cfg.translate else []
    augment += ["random left-right flips"] if cfg.flip else []
    out.print("augment: " + (", ".join(augment) or "none")
              + (f" ({data.name} default; --translate 0 turns it off)" if augment_default else ""))
    if trainer.loss_fn() is not train.losses.LOSSES[cfg.loss]:
        out.print("note: the spec ends with a softmax, so cross-entropy is taken on its "
                  "probabilities")
    if resume:
        out.print(f"resuming after epoch {trainer.epoch} from {resume}", markup=False)
    for note in trainer.notes:
        out.print(f"note: {note}", markup=False)


def _finish(out, result: train.Result, trainer: train.Trainer, out_dir: Path, data) -> None:
    if result.interrupted:
        out.print(f"interrupted: stopped after epoch {result.epochs} (the last one completed)")
    elif result.stopped_early:
        out.print(f"early stop: no progress in {trainer.cfg.monitor} for "
                  f"{trainer.cfg.patience} epoch(s); best epoch {result.best_epoch}")
    # the trainer wrote the checkpoint, history.json and metrics.json
    plotted = plot_curves(result.history, out_dir / "curves.png") if result.history else False
    out.print(f"test accuracy {result.test_acc:.2%}, loss {result.test_loss:.4f} "
              f"({len(data.test):,} images); {result.epochs} epochs in {result.seconds:.1f}s, "
              f"{result.images_per_second:,.0f} images/s")
    wrote = "checkpoint.npz, history.json, metrics.json" + (", curves.png" if plotted else "")
    out.print(f"wrote {wrote} to {out_dir}"
              + ("" if plotted else " (curves.png needs matplotlib: pip install 'archcalc[plot]')"),
              markup=False)  # "[plot]" and paths are text, not rich markup
    if result.interrupted:
        out.print(f"resume with: --resume {out_dir / 'checkpoint.npz'}", markup=False)
        raise SystemExit(130)           # the shell's code for "stopped by Ctrl-C"


@main.command("evaluate")
@click.argument("spec")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", "source", default="digits", show_default=True,
              help="digits (embedded), fashion-mnist[:DIR], or idx:DIR.")
@input_option()
def evaluate_command(spec, checkpoint, source, input_shape):
    """Test accuracy and confusion matrix of SPEC with the weights in CHECKPOINT (a
    checkpoint.npz or a weights .npz, or a run directory).

    \b
    Example:
      archcalc evaluate lenet5 runs/lenet5/checkpoint.npz --data digits
    """
    net = load(spec, input_shape)
    if checkpoint.is_dir():                          # a run directory
        checkpoint = checkpoint / train.CHECKPOINT
    ckpt = train.read_checkpoint(checkpoint)
    # the loss (and class weights) the run was trained with; no augmentation when scoring
    stored = train.config_from_meta(ckpt.meta, ckpt.path)
    cfg = train.TrainConfig(**{**stored, "translate": 0, "flip": False})
    data = datamod.load(source, net.input_shape, spec=net.name)
    model = build(net, dtype="float32")
    trainer = train.Trainer(model, data, cfg, spec=net.name)
    train.load_into(model, ckpt.final_weights, ckpt, net.name)
    loss, acc, predicted = trainer.evaluate(data.test)
    matrix = train.confusion_matrix(data.test.labels, predicted, data.classes)
    out = console()
    out.print(f"{net.name} on {data.name}: test accuracy {acc:.2%} "
              f"({int(matrix.trace()):,}/{len(data.test):,}), loss {loss:.4f}", markup=False)
    print_wide(confusion_table(matrix, data.class_names))


def confusion_table(matrix, names: list[str]) -> Table:
    """Rows: true class; columns: predicted class; the diagonal in bold."""
    table = Table(title="confusion matrix (rows: true class, columns: predicted)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("true \\ pred", no_wrap=True)
    for name in names:
        table.add_column(escape(name), justify="right", no_wrap=True)
    table.add_column("recall", justify="right")
    for i, row in enumerate(matrix):
        cells = [f"[bold]{v}[/bold]" if i == j else (str(v) if v else "[dim]·[/dim]")
                 for j, v in enumerate(row)]
        recall = f"{row[i] / row.sum():.1%}" if row.sum() else "-"
        table.add_row(escape(names[i]), *cells, recall)
    return table
