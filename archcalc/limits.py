"""Every limit archcalc puts on its input, in one place.

A limit bounds the work done on untrusted input *before* the work is done (a 465-byte YAML
file must not expand to gigabytes; a gzip file must not inflate past what its header
promises). Each is a named constant with the environment variable that raises it, for the
rare real network that needs more; the README's "Reliability" section lists them all.

Read a limit with `limit(NAME)`: the environment variable (a positive integer) wins over the
default, so tests and users can raise or lower it without touching code.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from archcalc.errors import ArchcalcError

# name → (default, what it bounds). The environment variable is ARCHCALC_<NAME>.
DEFAULTS: dict[str, tuple[int, str]] = {
    # Spec files (archcalc.spec).
    # The spec limits admit a 100,000-layer spec (issue 14: e.g. dense and relu alternating,
    # 1.1 MB and 200,000 values as YAML or JSON) and are calibrated (tests/test_scale_bounds.py,
    # ARCHCALC_SLOW_TESTS=1): the worst spec inside all of them — 100,000 conv layers with
    # every field, from a repeat — is validated in 2.6-2.9 s and 250 MB, summarised as a
    # table in 4.0-4.2 s and 270 MB and as JSON in 6.5-6.6 s and 325 MB (CPU time, two runs,
    # 2-core AMD EPYC at load ~4);
    # 100,000 merges in < 5 s and 190 MB, a flat file at MAX_SPEC_BYTES in < 2 s and
    # 105 MB. The work is linear in each: reading ~1.5 µs a YAML value (libyaml's events), a
    # layer ~15-60 µs and ~1.2-2.5 KB through load, analyze and the table; a bomb is refused
    # by its count before it is built.
    "MAX_SPEC_BYTES": (2 * 1024 * 1024, "bytes in one spec file"),
    "MAX_SPEC_NODES": (400_000, "YAML values in a spec once its aliases (*anchor) are expanded"),
    "MAX_SPEC_DEPTH": (500, "nesting depth of a spec (lists, mappings, blocks, repeats)"),
    "MAX_LAYERS": (100_000, "layers in a resolved spec (repeats and blocks unrolled)"),
    "MAX_NAME_CHARS": (1000, "characters in one layer name of a spec"),
    # Every row carries its full path (table, JSON, errors): in `summary` each million
    # characters of all rows' paths together cost ~3.3 MB (measured at 100,000 rows: paths of
    # 1,010 characters 497 MB, of 2,010 characters 799 MB, short ones 160 MB). A path may be
    # long (500 nested blocks make 2,500 characters); the sum over the rows is what is bounded.
    "MAX_PATH_CHARS": (50_000_000, "characters of all the rows' full paths together (each "
                                   "row's scope names joined by the separator)"),
    "MAX_UNROLLED": (202_000, "items, repetitions and substituted values a spec's repeats "
                                  "and block uses unroll to, all together"),
    # Model files read by the importers (archcalc.importers): refused by size before parsing
    # (protobuf itself stops at 2 GiB; ResNet-152's ONNX file is 230 MB, VGG-19's 550 MB).
    "MAX_MODEL_BYTES": (1024 * 1024 * 1024, "bytes of one imported model file (.onnx, .keras)"),
    # Data files (archcalc.nn.data).
    "MAX_DATA_BYTES": (4 * 1024 * 1024 * 1024, "bytes of one decompressed IDX data file"),
    # Weights and checkpoints (archcalc.nn.weights).
    "MAX_CHECKPOINT_BYTES": (4 * 1024 * 1024 * 1024,
                             "bytes of the arrays in one weights or checkpoint .npz"),
    "MAX_CHECKPOINT_MEMBERS": (50_000, "arrays in one weights or checkpoint .npz (a model's "
                                       "params and buffers, optimizer slots, best weights)"),
    "MAX_GZIP_RATIO": (100, "decompressed ÷ compressed size a .gz IDX file may promise "
                            "(above 1 MiB; MNIST's is 5)"),
    "MAX_CLASSES": (10_000, "distinct class numbers (largest label + 1) in an IDX dataset"),
    # archcalc gradcheck (archcalc.check.estimate_gradcheck): ~3·10⁹ units a second here.
    "MAX_CHECK_WORK": (10**12, "work of one check's forward pass: (MACs + 10 per pooling offset + "
                               "values) × batch + 50,000 a layer (~3·10⁹ a second)"),
    "MAX_GRADCHECK_WORK": (10**11, "work of one gradcheck: entries checked × 22 forward passes × "
                                   "(MACs + values + 50,000 a layer) of each pass"),
    # archcalc plot (archcalc.plot): ~10 ms and ~0.2 MB a bar drawn (400 bars: ~4.5 s, ~170 MB); more bars fold by --depth.
    "MAX_PLOT_BARS": (400, "bars in one plot (layers drawn after --depth folding)"),
    # archcalc sweep (archcalc.calc.whatif).
    "MAX_SWEEP_SIZES": (1_000, "input sizes in one sweep (--sizes, or a --from/--to/--step range)"),
    "MAX_SWEEP_SCAN": (256, "sizes tried one by one, past the bisection, for the smallest fit"),
    "MAX_SWEEP_WORK": (1_000_000, "layer evaluations in one sweep (layers × sizes analysed)"),
}

# Fixed ranges: options and values outside them are typos, not networks; they also keep every
# product exact and every loop short. Not raised by the environment (click states them).
MAX_SIZE = 10**9  # any C, H, W, channel count, kernel, stride, --sizes value
SEED_MAX = 2**32 - 1  # --seed, as NumPy's legacy seeding takes it
MAX_EPOCHS = 1_000_000  # --epochs, --patience and a step schedule's period (an epoch takes >= 1 ms)
MAX_GRADCHECK_BATCH = 256  # float64 finite differences: a larger batch only multiplies the time
MAX_MEMORY_BUDGET = 10**15  # --memory-budget (1 PB): more is a typo, and floats lose exactness
# Arrays in a weights/checkpoint .npz may inflate to at most 20× the file: archcalc writes them
# uncompressed, and float weights compress by about 1.1× (np.savez_compressed), so more is a bomb.
MAX_NPZ_RATIO = 20

# How much user text an error line may echo (a value, a name) before it is cut with '…'.
MAX_ECHO = 200


# No limit read from the environment may exceed this: a value passed to read(), range() or
# NumPy must fit a signed 64-bit size with room for the +1 a reader asks for past a limit.
LIMIT_CEILING = 2**62


def env_name(name: str) -> str:
    return f"ARCHCALC_{name}"


def limit(name: str) -> int:
    """The limit `name`: ARCHCALC_<name> from the environment if set, else the default."""
    default, what = DEFAULTS[name]
    raw = os.environ.get(env_name(name))
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ArchcalcError(f"{env_name(name)}={raw[:40]!r} is not a positive integer",
                            fix=f"unset it (default {default:,}: {what}) or give a number")
    if value > LIMIT_CEILING:  # a limit is used as a byte count or a product (read(n + 1))
        raise ArchcalcError(f"{env_name(name)}={raw[:40]!r} is above the ceiling "
                            f"{LIMIT_CEILING:,} (2**62) any limit may have",
                            fix=f"give a number up to {LIMIT_CEILING:,}, or unset it "
                                f"(default {default:,}: {what})")
    return value


def raise_hint(name: str) -> str:
    """The fix part of a message: how to raise limit `name` if the input is legitimate."""
    return f"if the input is legitimate, raise the limit: {env_name(name)}=<larger number>"


def elide(text: str, limit_chars: int = 200) -> str:
    """A long layer path for an error line, cut in the middle: both ends say where it is
    (block1.block2.….conv3), and a 500-deep path of long names stays one short line."""
    if len(text) <= limit_chars:
        return text
    head = limit_chars // 3
    return text[:head] + "…" + text[len(text) - (limit_chars - head - 1):]


def echo(text: object, limit_chars: int = MAX_ECHO) -> str:
    """User data for an error line: repr-free, one line, at most `limit_chars` characters.
    Every character a terminal would act on or hide (newline, ESC, BEL, bidi overrides,
    zero-width characters) is shown as its escape (\\n, \\x1b, \\u202e): a path or value
    cannot forge a line, clear the screen or reorder what follows it."""
    s = str(text)
    shown = s[:limit_chars]  # escaped after the cut: a 1 GB value costs what is shown
    if not shown.isprintable():
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    if len(s) <= limit_chars and len(shown) <= limit_chars:
        return shown
    return shown[:limit_chars] + f"… ({len(s):,} characters)"


# Python frames one level of nesting costs (composer, constructor, resolver: about 5; twice
# that for room) and the most the recursion limit is ever raised to. At that limit no command
# overflows the C stack (measured: specs nested 1,890 deep through blocks, lists and branches
# run summary, check, compare, report, gradcheck and plot; 9,000 deep stop at the recursion
# limit with one line, never a crash).
_FRAMES_PER_LEVEL = 10
_MAX_RECURSION = 20_000
# The deepest nesting archcalc can follow: ARCHCALC_MAX_SPEC_DEPTH may not go past it.
DEPTH_CEILING = (_MAX_RECURSION - 1000) // _FRAMES_PER_LEVEL


def max_depth() -> int:
    """MAX_SPEC_DEPTH, refused past DEPTH_CEILING (a deeper spec would reach Python's
    recursion limit in some walk of its tree however the limit were raised)."""
    depth = limit("MAX_SPEC_DEPTH")
    if depth > DEPTH_CEILING:
        raise ArchcalcError(f"ARCHCALC_MAX_SPEC_DEPTH={depth:,} is more than {DEPTH_CEILING:,}, "
                            "the deepest nesting archcalc can follow",
                            fix=f"give at most {DEPTH_CEILING}, or flatten the spec's nesting")
    return depth


@contextmanager
def stack_room() -> Iterator[None]:
    """Raise Python's recursion limit to what MAX_SPEC_DEPTH levels of nesting need, for a
    whole command (the boundary, archcalc.cli.common) or a library call that reads a spec:
    parsing, resolving and every later walk of the tree recurse once per level. The depth
    limits are checked before the recursion gets there, so a refused spec never reaches it."""
    try:
        depth = min(limit("MAX_SPEC_DEPTH"), DEPTH_CEILING)
    except ArchcalcError:  # a bad ARCHCALC_MAX_SPEC_DEPTH is said by the command that reads it
        depth = DEPTH_CEILING
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _FRAMES_PER_LEVEL * depth + 1000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
