"""`archcalc train` and `archcalc evaluate`: the executor learns a spec on real images."""

from __future__ import annotations

import errno
import io
import math
import os
import resource
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click
from rich import box
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.console import Console
from rich.table import Table
from rich.text import Text

from click.core import ParameterSource

from archcalc.cli import main
from archcalc.cli.common import (MEMORY, SEED, ParsedParam, console, fitting, input_option,
                                 print_wide)
from archcalc.errors import ArchcalcError
from archcalc.fileio import write_error
from archcalc.limits import MAX_EPOCHS, echo
from archcalc.nn import build
from archcalc.nn import data as datamod
from archcalc.nn import optim, train
from archcalc.nn.losses import LOSSES
from archcalc.spec import load

# A learning rate that works for each optimizer when --lr is not given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
              "rmsprop": 0.001, "adam": 0.001}

# The bundled recipe for Fashion-MNIST (specs/fashion_cnn.yaml, its `train:` defaults) and
# what it measured (docs/training.md, benchmarks/fashion.py): told to a run on
# Fashion-MNIST with a spec that brings no recipe of its own.
FASHION_RECIPE = ("fashion_cnn", "91.48–91.97% test accuracy in 10 epochs, seeds 0–4")


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




class ScheduleText(str):
    """A --schedule value that schedules.parse has accepted (the text itself)."""


class ClassWeightsText(str):
    """A --class-weights value whose form is right (its count is the dataset's to check)."""


def _schedule(text: str) -> ScheduleText:
    from archcalc.nn import schedules
    schedules.parse(text)
    return ScheduleText(text)


def _class_weights(text: str) -> ClassWeightsText:
    train.parse_class_weights(text)
    return ClassWeightsText(text)


# Options the library parses: a mistake in them is a usage error (exit 2), found before the
# spec, the data or the model is touched.
SOURCE = ParsedParam("SOURCE", datamod.parse_source, datamod.Source)
SCHEDULE = ParsedParam("SCHEDULE", _schedule, ScheduleText)
CLASS_WEIGHTS = ParsedParam("WEIGHTS", _class_weights, ClassWeightsText)


class RichProgress(train.Progress):
    """A rich bar per epoch with live loss and accuracy, and one summary line per epoch."""

    def __init__(self, bar: Progress, on_finish=None) -> None:
        self.bar, self.on_finish = bar, on_finish
        self.task = bar.add_task("", total=1, loss=0.0, acc=0.0, visible=False)

    def epoch_start(self, epoch, epochs, batches, lr):
        self.epochs = epochs
        self.bar.reset(self.task, total=batches, description=f"epoch {epoch}/{epochs}",
                       loss=0.0, acc=0.0, visible=True)

    def batch_end(self, batch, loss, acc):
        self.bar.update(self.task, completed=batch, loss=loss, acc=acc)

    def finishing(self):
        if self.on_finish is not None:
            self.on_finish()

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
@click.option("--data", "source", type=SOURCE, default="digits", show_default=True,
              help="digits (embedded), fashion-mnist[:DIR], or idx:DIR (MNIST-format files).")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=20, show_default=True)
@click.option("--batch-size", type=BatchSize(), default="64", show_default=True,
              help="Examples per step; 1 = single example, 'full' = full batch.")
@click.option("--optimizer", type=click.Choice(list(optim.OPTIMIZERS)), default="adam",
              show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Initial learning rate [default: 0.001 for adam/rmsprop, 0.01 for "
                   "momentum/nesterov/adagrad, 0.1 for sgd].")
@click.option("--schedule", type=SCHEDULE, default="constant", show_default=True,
              help="constant, inverse-time:K, exponential:GAMMA, inv-sqrt, step:EVERY,GAMMA.")
@click.option("--target", type=click.Choice(list(train.TARGETS)), default="labels",
              show_default=True,
              help="What the network learns to output: the class labels, or the input image "
                   "itself (reconstruction: the spec must end in the input's C×H×W shape, or "
                   "as many values flat; scored by pixel accuracy).")
@click.option("--loss", type=click.Choice(list(LOSSES)), default=None,
              help="[default: cross_entropy; mse with --target input]")
@click.option("--weight-decay", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="L2 penalty λ on conv/dense weights (λ/2·Σw²).")
@click.option("--l1", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="L1 penalty on conv/dense weights.")
@click.option("--class-weights", type=CLASS_WEIGHTS, default=None,
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
@click.option("--freeze", multiple=True, metavar="NAME",
              help="Do not train layer NAME, or every layer of block NAME (a whole scope: "
                   "'layer2' freezes layer2.0.conv1…; 'fc' does not match fc1). Repeatable.")
@click.option("--patience", type=click.IntRange(1, MAX_EPOCHS), default=None,
              help="Stop after this many epochs without improvement of --monitor.")
@click.option("--monitor", type=click.Choice(["val_loss", "val_acc", "train_loss", "train_acc"]),
              default="val_loss", show_default=True)
@click.option("--restore-best/--no-restore-best", default=True, show_default=True,
              help="With --patience, end on the best epoch's weights.")
@click.option("--translate", type=click.IntRange(min=0), default=None,
              help="Augmentation: shift each image by up to N pixels (a [T, F] input: its "
                   "T×F image, rows as steps) [default: 2 for digits on a C×H×W input, "
                   "else 0].")
@click.option("--flip", is_flag=True, help="Augmentation: mirror half the images left-right.")
@click.option("--val-split", type=FiniteFloat(0, 0.9), default=0.1, show_default=True,
              help="Fraction of the training images held out for validation.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--memory-budget", type=MEMORY, default=None,
              help="Refuse a run whose forecast memory is larger, e.g. 2GB [default: half "
                   "the memory available now].")
@input_option()
def train_command(spec, **opts):
    """Train SPEC with the NumPy executor and write history.json, metrics.json,
    checkpoint.npz and curves.png to --out.

    A spec may carry a recipe, a top-level `train:` mapping of these options' defaults
    (fashion_cnn does): an option given on the command line overrides it.

    \b
    Examples:
      archcalc train lenet5
      archcalc train fashion_cnn --data fashion-mnist   # its recipe: 10 epochs, >= 91%
      archcalc train lenet5 --data fashion-mnist --epochs 10 --translate 2 --flip
      archcalc train lenet5 --optimizer momentum --lr 0.05 --schedule step:5,0.5
      archcalc train lenet5 --resume runs/lenet5 --epochs 30
      archcalc train lenet5 --weights runs/lenet5/checkpoint.npz --freeze conv1 --freeze conv2
      archcalc train lstm_digits                 # input [8, 8]: each image row by row

    A spec whose input is [T, F] reads each image row by row: step t is row t, its F
    features that row's pixels (the image first fitted to T×F as for a 1×T×F input).
    """
    with _sigterm_as_interrupt() as term:
        try:
            _train(spec, opts, term)
        except KeyboardInterrupt:
            if not term:
                raise                                # the boundary: "interrupted", 130
            click.echo("terminated", err=True)
            raise SystemExit(143) from None
        if term.deferred:
            name = "SIGTERM" if term.deferred[0] == signal.SIGTERM else "Ctrl-C"
            click.echo(f"note: {name} came after the last epoch; the run completed and "
                       "every file is written", err=True)


class _Signals(list):
    """The SIGTERMs received (non-empty once one came). Once the last epoch is saved
    (`defer()`), SIGTERM and Ctrl-C no longer stop the run: it only has its files to write,
    and stopping half-way would leave them saying another story than the checkpoint (no
    curves, metrics that say 'not interrupted'). A second signal then still stops it."""

    def __init__(self) -> None:
        super().__init__()
        self.deferring = False
        self.deferred: list[int] = []

    def defer(self) -> None:
        self.deferring = True

    def handler(self, signum, frame):
        if self.deferring and not self.deferred:
            self.deferred.append(signum)
            return
        if signum == signal.SIGTERM:
            self.append(signum)
        raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, systemd, a CI job cancelled) is handled like Ctrl-C: the run stops
    after the current batch, saves, prints where it stopped, and exits 128 + 15. The
    handlers are installed first thing in the command (before the spec is read)."""
    term = _Signals()
    try:
        previous = {sig: signal.signal(sig, term.handler)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:                   # not the main thread (a test's runner): no handler
        yield term
        return
    try:
        yield term
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _train(spec, o, term) -> None:
    if o["resume"] and o["weights"]:
        raise ArchcalcError("--resume and --weights exclude each other",
                            fix="--resume continues a run; --weights starts a new one")
    net = load(spec, o["input_shape"])
    o["_from"] = apply_recipe(net, o, _given(o))
    ckpt = None
    if o["resume"]:
        o["resume"] = _checkpoint_path(o["resume"])
        ckpt = train.read_checkpoint(o["resume"])
        _take_stored(o, ckpt)
    if o["loss"] is None:
        o["loss"] = "mse" if o["target"] == "input" else "cross_entropy"
    if o["weights"]:
        o["weights"] = _checkpoint_path(o["weights"])    # a run directory, like --resume
    out_dir = o["out"] or (o["resume"].parent if o["resume"] else Path("runs") / net.name)
    train.check_run_dir(out_dir, resume=o["resume"], overwrite=o["overwrite"])
    with _removed_if_left_empty(out_dir):
        _probe_out(out_dir)
        _run(net, ckpt, out_dir, o, term)


@contextmanager
def _removed_if_left_empty(out: Path):
    """A run refused or stopped before it wrote anything leaves no empty --out behind (when
    this run created it; a directory that was there stays)."""
    created = not os.path.lexists(out)
    try:
        yield
    except BaseException:
        if created:
            try:
                os.rmdir(out)                    # only an empty directory goes
            except OSError:
                pass
        raise


def _given(opts: dict) -> set[str]:
    """The options given on the command line (or by environment variables): the rest may
    take the spec's `train:` defaults."""
    ctx = click.get_current_context()
    return {k for k in opts if ctx.get_parameter_source(k) in (ParameterSource.COMMANDLINE,
                                                               ParameterSource.ENVIRONMENT)}


def apply_recipe(net, opts: dict, given: set[str]) -> dict[str, str]:
    """Put the spec's `train:` defaults into `opts` for the options not in `given`; check
    the values only the trainer can (a schedule's grammar, a data source) as the spec's
    mistakes (file, line, train.KEY). Returns where each recipe key's value came from:
    'spec', or 'command line' when an option given there won (for the intro)."""
    recipe = getattr(net, "train", None)
    if recipe is None:
        return {}
    values = dict(recipe.values)
    _check_recipe(net, recipe, values)
    came: dict[str, str] = {}
    for key, value in values.items():
        param = _PARAM.get(key, key)
        if param in given:
            came[key] = "command line"
            continue
        if key == "lr" and "optimizer" in given and opts["optimizer"] != values.get("optimizer"):
            # the spec's rate is tuned for its optimizer, not for the one asked for
            came[key] = f"not used: it is for {values.get('optimizer') or 'adam'}"
            continue
        opts[param] = datamod.Source(value) if key == "data" else value
        came[key] = "spec"
    return came


def _check_recipe(net, recipe, values: dict) -> None:
    """The keys whose grammar belongs to the trainer, checked before anything is read."""
    from archcalc.nn import schedules
    where = net.file
    try:
        if "schedule" in values:
            key = "schedule"
            schedules.parse(values["schedule"])
        if "data" in values:
            key = "data"
            datamod.parse_source(values["data"])
    except ArchcalcError as exc:
        raise recipe.error(key, exc.message, exc.fix or "see docs/training.md", where) from None


def _recipe_lines(net, came: dict[str, str], opts: dict) -> list[str]:
    """What the intro says about the spec's `train:` defaults: which it took, and which the
    command line overrode."""
    recipe = getattr(net, "train", None)
    if recipe is None:
        return []
    def show(key, value):
        if key == "batch_size" and value == 0:
            value = "full"
        return f"{key} {str(value).lower() if isinstance(value, bool) else value}"
    taken = [show(k, v) for k, v in recipe.values.items() if came.get(k) == "spec"]
    lines = [f"recipe: {net.name}'s train: gives " + (", ".join(taken) or "nothing used here")]
    over = [f"{option_text(k)} {show(k, opts[_PARAM.get(k, k)]).split(' ', 1)[1]} (spec: "
            f"{show(k, v).split(' ', 1)[1]})" for k, v in recipe.values.items()
            if came.get(k) == "command line"]
    if over:
        lines.append("        the command line overrides " + ", ".join(over))
    if came.get("lr", "").startswith("not"):
        lines.append(f"        the spec's lr {recipe.values['lr']:g} ({came['lr']})")
    return lines


def option_text(key: str) -> str:
    return "--" + key.replace("_", "-")


def fashion_note(net, source: str) -> str | None:
    """One line pointing a Fashion-MNIST run of a spec without its own recipe at the
    bundled one."""
    if getattr(net, "train", None) is not None:
        return None
    if str(source).partition(":")[0].strip().lower() not in datamod.FASHION_NAMES:
        return None
    name, measured = FASHION_RECIPE
    return (f"a recipe for Fashion-MNIST is bundled: `archcalc train {name} --data "
            f"fashion-mnist` ({measured})")


def _run(net, ckpt, out_dir: Path, o: dict, term) -> None:
    train.check_image_input(net, net.name)    # before any data is read
    lr = o["lr"] or DEFAULT_LR[o["optimizer"]]
    from archcalc.nn import schedules
    schedules.parse(o["schedule"]).check(lr, o["epochs"], o["schedule"])
    analysis = _analysis(net, o["dtype"])
    budget = _budget(o["memory_budget"])
    # a run that cannot fit even at batch 1 is refused before the data is read
    _forecast(analysis, o, None, budget)
    fits: dict[str, int] = {}

    def before_fit(classes: int, n_train: int, dataset: str, data_bytes: int) -> None:
        _outputs_check(analysis, o["loss"], o["target"], o["class_weights"])(
            classes, n_train, dataset, data_bytes)
        _data_fits(analysis, dataset, data_bytes, budget, "--memory-budget")
        fits["eval_batch"] = _forecast(analysis, o, n_train, budget, data_bytes)

    data = datamod.load(o["source"], net.input_shape, spec=net.name, val_fraction=o["val_split"],
                        before_fit=before_fit)
    augment_default = o["translate"] is None and "translate" in data.augment
    if o["translate"] is None:
        o["translate"] = data.augment.get("translate", 0)
    cfg = train.TrainConfig(
        lr=lr, **{k: o[k] for k in ("epochs", "batch_size", "optimizer", "schedule", "loss",
                                    "weight_decay", "l1", "class_weights", "clip_norm",
                                    "seed", "patience", "monitor", "restore_best",
                                    "translate", "flip", "target")})
    train.check_config(cfg)
    eval_batch = fits["eval_batch"]
    # a spec may name its initialiser (a top-level `init:`)
    init = o["init"] or getattr(net, "init", None) or "he"
    model = build(net, seed=cfg.seed, dtype=o["dtype"], init=init)
    if o["freeze"]:
        model.freeze(list(o["freeze"]))
    setup = {"data": str(o["source"]), "val_split": o["val_split"], "dtype": o["dtype"],
             "init": init, "freeze": list(o["freeze"])}
    out_con = console()
    bar = progress_bar(out_con)
    trainer = train.Trainer(model, data, cfg, spec=net.name, out=out_dir,
                            progress=RichProgress(bar, term.defer), setup=setup, overwrite=o["overwrite"])
    trainer.eval_batch = eval_batch
    if ckpt is not None:
        trainer.resume(ckpt)
    elif o["weights"]:
        trainer.start_from(o["weights"])
    _intro(out_con, net, data, cfg, model, trainer, o["resume"], augment_default, init)
    for line in _recipe_lines(net, o.get("_from", {}), o):
        out_con.print(line, markup=False)
    note = fashion_note(net, o["source"])
    if note:
        out_con.print(f"note: {note}", markup=False)
    try:
        with bar:
            result = trainer.fit()
    except MemoryError:
        raise ArchcalcError("out of memory while training (the forecast said it would fit)",
                            fix="a smaller --batch-size or --memory-budget; " + _on_disk(trainer)
                            ) from None
    _finish(out_con, result, trainer, out_dir, data, terminated=bool(term))


def _checkpoint_path(path: Path) -> Path:
    """A run directory stands for its checkpoint.npz (--resume, --weights, evaluate)."""
    return path / train.CHECKPOINT if path.is_dir() else path


def _on_disk(trainer: train.Trainer) -> str:
    if trainer.saved_epoch is None:
        return "nothing was saved"
    return f"the checkpoint on disk holds epoch {trainer.saved_epoch} ({trainer.out / train.CHECKPOINT})"


def _probe_out(out: Path) -> None:
    """Before any data is read: the run directory can be made and written. A dangling
    symlink, a read-only file system, /proc or /sys are found now, in one line that names
    the run's checkpoint, not after a minute of loading and building."""
    target = out / train.CHECKPOINT
    if out.is_symlink() and not out.exists():
        raise ArchcalcError(f"--out is a symbolic link to a missing directory "
                            f"({echo(os.readlink(out), 80)})", file=str(out),
                            fix="create its target, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # the name atomic_write gives its temp files, so a killed probe is cleaned too
        fd, name = tempfile.mkstemp(prefix=f".{train.CHECKPOINT}.", suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        if exc.errno == errno.ENOENT and out.is_dir():
            # /proc/self and the like: a directory that exists and takes no new files
            raise ArchcalcError("cannot create files in this directory (a virtual file "
                                "system such as /proc?)", file=str(out),
                                fix="choose another --out") from None
        raise write_error(target, exc) from None


def _analysis(net, dtype: str):
    """The calculator's figures for the spec (batch 1): output size and memory per image."""
    from archcalc.calc.analyze import analyze
    return analyze(net, batch=1, dtype=dtype)


def _outputs_check(analysis, loss: str, target: str = "labels",
                   class_weights: str | None = None):
    """check_classes for datamod.load: the calculator's output size against the dataset's
    classes (or, with --target input, its output shape against the input's), before the
    images are fitted and the model is built."""
    last = analysis.rows[-1].name if analysis.rows else "input"
    net = analysis.network

    def check(classes: int, n_train: int, dataset: str, data_bytes: int = 0) -> None:
        if target == "input":
            train.check_reconstruction(net.input_shape, analysis.output_shape, loss,
                                       class_weights, net.name, last)
            return
        train.check_fit(classes, math.prod(analysis.output_shape), loss, dataset,
                        net.name, last)
    return check


def _budget(given: int | None) -> int | None:
    """--memory-budget, else half the memory available now, and never above what the
    address-space limit (ulimit -v) leaves this process."""
    if given is not None:
        return given
    from archcalc.check import default_budget
    budget = default_budget()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/statm", encoding="ascii") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            used = 0
        left = max(soft - used, 0)
        budget = left if budget is None else min(budget, left)
    return budget


def training_bytes(analysis, cfg, batch: int):
    """(total, forward estimate) of a training step at `batch`: the forward pass as check
    forecasts it (activations, parameters, the largest convolution's scratch), plus the
    backward pass (a gradient per kept activation), the gradients, the optimizer's slots,
    and the trainer's copies of the last good epoch (weights and slots) and of the best."""
    from archcalc.calc.whatif import OPTIMIZER_COPIES
    from archcalc.check import estimate_memory
    forward = estimate_memory(analysis, batch)
    slots = OPTIMIZER_COPIES.get(cfg["optimizer"], 2)
    copies = 1 + slots + (1 + slots) + (1 if cfg["patience"] is not None else 0)
    return forward.total + forward.activation_bytes + copies * forward.param_bytes, forward


def _data_fits(analysis, dataset: str, data_bytes: int, budget: int | None,
               raise_it: str | None) -> None:
    """The dataset's images fitted to the spec's input (all splits) fit the budget: the
    forecast counts them before any image is fitted (1,797 digits at 1×1200×1200 are
    gigabytes)."""
    from archcalc.check import fmt_bytes
    if budget is None or data_bytes <= budget:
        return
    shape = "×".join(map(str, analysis.network.input_shape))
    fix = "a smaller --input" + (f", or raise {raise_it}" if raise_it else ", or free memory")
    raise ArchcalcError(f"the images of '{echo(dataset, 80)}' fitted to {shape} take about "
                        f"{fmt_bytes(data_bytes)} (all splits, while they are split), more "
                        f"than the memory budget of {fmt_bytes(budget)}", fix=fix)


def _forecast(analysis, opts: dict, n_train: int | None, budget: int | None,
              data_bytes: int = 0) -> int:
    """Refuse a run whose forecast is over the budget, naming the largest batch that fits;
    return the evaluation batch that fits (at most train.EVAL_BATCH). Without n_train (the
    data not read yet) only a run that does not fit at batch 1 is refused."""
    from archcalc.check import fmt_bytes
    asked = opts["batch_size"]
    if n_train is None:
        batch, least = asked or 1, 1
    else:
        batch = n_train if asked == 0 else min(asked, max(n_train, 1))
        least = batch
    if budget is None:
        return train.EVAL_BATCH
    # the fitted images stay in memory for the whole run (half of data_bytes: the copies
    # made while splitting are gone by then)
    held = data_bytes // 2
    room = max(budget - held, 0)
    least_need, least_forward = training_bytes(analysis, opts, least)
    if least_need > room:
        need, forward = training_bytes(analysis, opts, batch)
        lo, hi = 0, batch - 1                         # the largest batch that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            fits = training_bytes(analysis, opts, mid)[0] <= room
            lo, hi = (mid, hi) if fits else (lo, mid - 1)
        hint = f"--batch-size {lo} fits" if lo else "even --batch-size 1 does not fit"
        acts = 2 * forward.activation_bytes
        images = f"{fmt_bytes(held)} of fitted images, " if held >= 1 << 20 else ""
        raise ArchcalcError(
            f"training {analysis.network.name} at batch {batch} needs about "
            f"{fmt_bytes(need + held)} ({fmt_bytes(acts)} of activations and their gradients, "
            f"{images}{fmt_bytes(need - acts)} of weights, gradients, optimizer state and "
            f"scratch), more than the memory budget of {fmt_bytes(budget)}",
            fix=f"{hint}; or a smaller --input, or raise --memory-budget")
    return _eval_batch(analysis, room,
                       least_need - least_forward.activation_bytes - least_forward.total)


def _eval_batch(analysis, budget: int, held: int) -> int:
    """The largest inference batch (at most EVAL_BATCH) whose forward pass fits the budget
    beside what the trainer holds."""
    from archcalc.check import largest_fitting_batch
    return max(1, largest_fitting_batch(analysis, budget - held, train.EVAL_BATCH + 1))


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
    if trainer.reconstructs:
        out.print("target: the input images (reconstruction); accuracy is pixel accuracy: "
                  "the share of values on the same side of 0.5 as the image's")
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


def _finish(out, result: train.Result, trainer: train.Trainer, out_dir: Path, data,
            terminated: bool = False) -> None:
    if result.interrupted:
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        out.print(f"{how}: stopped after epoch {result.epochs} (the last one completed)")
    elif result.stopped_early:
        out.print(f"early stop: no progress in {trainer.monitor} for "
                  f"{trainer.cfg.patience} epoch(s); best epoch {result.best_epoch}")
    # the trainer wrote the checkpoint, history.json and metrics.json
    warning = None
    try:
        plotted = plot_curves(result.history, out_dir / "curves.png") if result.history else None
    except (ArchcalcError, OSError) as exc:
        # curves.png is a view of history.json: the run is complete and saved without it
        plotted = False
        what = exc.message if isinstance(exc, ArchcalcError) else (exc.strerror or str(exc))
        what = what.removeprefix(f"cannot write {echo(out_dir / 'curves.png')}: ")
        warning = (f"warning: could not write {echo(out_dir / 'curves.png', 80)}: "
                   f"{echo(what, 120)}; the run is saved")
    what = "pixel accuracy" if trainer.reconstructs else "accuracy"
    out.print(f"test {what} {result.test_acc:.2%}, loss {result.test_loss:.4f} "
              f"({len(data.test):,} images); {result.epochs} epochs in {result.seconds:.1f}s, "
              f"{result.images_per_second:,.0f} images/s")
    wrote = "checkpoint.npz, history.json, metrics.json" + (", curves.png" if plotted else "")
    if warning:
        why = ""
    elif plotted is None:
        why = " (no curves.png: no epoch completed)"
    elif not plotted:
        why = " (curves.png needs matplotlib: pip install 'archcalc[plot]')"
    else:
        why = ""
    out.print(f"wrote {wrote} to {out_dir}{why}", markup=False)  # "[plot]", paths: not markup
    if warning:
        click.echo(warning, err=True)
    if result.interrupted:
        out.print(f"resume with: --resume {out_dir / 'checkpoint.npz'}", markup=False)
        # the shell's codes for "stopped by a signal": 128 + SIGINT (2) or SIGTERM (15)
        raise SystemExit(143 if terminated else 130)


@main.command("evaluate")
@click.argument("spec")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", "source", default="digits",
              help="digits (embedded), fashion-mnist[:DIR], or idx:DIR [default: the "
                   "spec's train: data, else digits].")
@input_option()
def evaluate_command(spec, checkpoint, source, input_shape):
    """Test accuracy and confusion matrix of SPEC with the weights in CHECKPOINT (a
    checkpoint.npz or a weights .npz, or a run directory).

    \b
    Example:
      archcalc evaluate lenet5 runs/lenet5/checkpoint.npz --data digits
    """
    net = load(spec, input_shape)
    opts = {"source": source}
    apply_recipe(net, opts, _given(opts))  # a recipe's data set is evaluate's default too
    source = opts["source"]
    checkpoint = _checkpoint_path(checkpoint)
    ckpt = train.read_checkpoint(checkpoint)      # every field of its meta record checked
    # the loss (and class weights) the run was trained with; no augmentation when scoring
    stored = train.config_from_meta(ckpt.meta, ckpt.path)
    cfg = train.TrainConfig(**{**stored, "translate": 0, "flip": False})
    analysis = _analysis(net, "float32")
    budget = _budget(None)
    outputs = _outputs_check(analysis, cfg.loss, cfg.target, cfg.class_weights)

    def before_fit(classes: int, n_train: int, dataset: str, data_bytes: int) -> None:
        outputs(classes, n_train, dataset)
        _data_fits(analysis, dataset, data_bytes, budget, None)
        fits["held"] = data_bytes // 2

    fits = {"held": 0}
    data = datamod.load(source, net.input_shape, spec=net.name, before_fit=before_fit)
    eval_batch = _inference_batch(analysis, budget, fits["held"])
    model = build(net, dtype="float32")
    trainer = train.Trainer(model, data, cfg, spec=net.name, config_source=ckpt.path)
    trainer.eval_batch = eval_batch
    train.load_into(model, ckpt.final_weights, ckpt, net.name)
    _note_other_arch(ckpt, net)
    loss, acc, predicted = trainer.evaluate(data.test)
    if not math.isfinite(loss):
        raise ArchcalcError(f"the test loss is {loss}: these weights make the network's "
                            "outputs overflow", file=str(ckpt.path),
                            fix="evaluate the checkpoint of a run that did not diverge")
    out = console()
    if trainer.reconstructs:
        out.print(f"{net.name} on {data.name} (reconstruction): test pixel accuracy {acc:.2%} "
                  f"({len(data.test):,} images), loss {loss:.4f}", markup=False)
        return
    matrix = train.confusion_matrix(data.test.labels, predicted, data.classes)
    out.print(f"{net.name} on {data.name}: test accuracy {acc:.2%} "
              f"({int(matrix.trace()):,}/{len(data.test):,}), loss {loss:.4f}", markup=False)
    print_confusion(out, matrix, data.class_names)


def _note_other_arch(ckpt: train.Checkpoint, net) -> None:
    """The weights fit, but the checkpoint's run trained another architecture (say relu →
    tanh): evaluating them is legitimate (an experiment), so it is a note on stderr, not
    an error. A renamed spec with the same layers says nothing."""
    from archcalc.nn.network import arch_difference
    arch = ckpt.meta.get("arch")
    what = arch_difference(arch, net) if arch else None
    if what:
        click.echo(f"note: {echo(ckpt.path, 80)}: {echo(what, 200)}; its weights fit this "
                   "spec, so they are evaluated with it", err=True)


def print_confusion(out, matrix, names: list[str]) -> None:
    """The confusion matrix; on a terminal too narrow for the class names (Fashion-MNIST's),
    the classes are numbered and one legend line says which is which."""
    table = confusion_table(matrix, names)
    if fitting(out) and Console(width=10_000, file=io.StringIO()).measure(table).maximum > out.width:
        numbers = [str(i) for i in range(len(names))]
        print_wide(confusion_table(matrix, numbers), width=out.width)
        out.print(Text("classes: " + ", ".join(f"{n} = {c}" for n, c in zip(numbers, names))))
        return
    print_wide(table)


def _inference_batch(analysis, budget: int | None, held: int = 0) -> int:
    """The evaluation batch whose forward pass fits `budget` (half the available memory)
    beside the `held` bytes of fitted images, or one line when even one image does not."""
    from archcalc.check import estimate_memory, fmt_bytes
    if budget is None:
        return train.EVAL_BATCH
    budget = max(budget - held, 0)                   # the fitted images held beside it
    one = estimate_memory(analysis, 1)
    if one.total > budget:
        raise ArchcalcError(f"evaluating {analysis.network.name} needs about "
                            f"{fmt_bytes(one.total)} for one image ({one.describe()}), more "
                            f"than the memory available ({fmt_bytes(budget)})",
                            fix="a smaller --input, or free memory")
    return _eval_batch(analysis, budget, 0)


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
