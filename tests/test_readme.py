"""The README's promises: its complete example spec works and its Quick start is two commands."""

from __future__ import annotations

import re
from pathlib import Path

from archcalc.calc import analyze
from archcalc.spec import loads

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_complete_example_spec_analyses():
    section = README.split("### A complete example", 1)[1]
    text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    analysis = analyze(loads(text, file="README example"))
    names = [r.name for r in analysis.rows]
    for name in ("stem", "bn1", "stage1.0.conv1", "stage1.0.add1", "stage2.0.shortcut.conv1", "fc1"):
        assert name in names
    assert analysis.output_shape == (10,)
    # stem 3·3·3·16; four 3×3 16→16 convs; 3×3 16→32 + 3×3 32→32 + 1×1 16→32; two 3×3 32→32;
    # BN γ, β on 16 (×5 with the stem's) and 32 channels (×5); dense 32·10 + 10.
    convs = 3 * 3 * 3 * 16 + 4 * 9 * 16 * 16 + 9 * 16 * 32 + 9 * 32 * 32 + 16 * 32 + 2 * 9 * 32 * 32
    bn = 5 * 2 * 16 + 5 * 2 * 32
    assert analysis.totals.trainable_params == convs + bn + 32 * 10 + 10


def test_quick_start_has_exactly_two_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ['pip install . && archcalc summary vgg16',
                        'pip install ".[test]" && python -m pytest']


def test_comparison_example_is_real_output():
    from click.testing import CliRunner

    from archcalc.cli import main

    section = README.split("### Comparing designs", 1)[1]
    block = re.search(r"```\n\$ archcalc compare vgg16 resnet50\n(.*?)```", section, re.S).group(1)
    result = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["compare", "vgg16", "resnet50"])
    assert result.exit_code == 0

    def rows(text: str) -> list[str]:  # the table rows, whatever the terminal width
        return [" ".join(line.split()) for line in text.splitlines()
                if line.strip() and not line.startswith(("Depth", "Receptive", "MACs", "weight", "flatten", "new", "("))]

    table = [r for r in rows(block) if "×" in r or "," in r]
    produced = rows(result.stdout)
    for row in table:
        assert row in produced, row


def test_reliability_lists_every_limit_with_its_default():
    """The README's limits table and archcalc.limits.DEFAULTS name the same limits, with the
    same defaults (written 64 MiB / 4 GiB or with thousands separators)."""
    from archcalc.limits import DEFAULTS, env_name

    section = README.split("### Limits", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(ARCHCALC_\w+)` \| ([^|]+) \|", section, re.M))
    assert set(rows) == {env_name(name) for name in DEFAULTS}

    def value(text: str) -> int:
        number, _, unit = text.strip().partition(" ")
        return int(number.replace(",", "")) * {"": 1, "MiB": 2**20, "GiB": 2**30}[unit]

    for name, (default, _) in DEFAULTS.items():
        assert value(rows[env_name(name)]) == default, name
