"""libyaml and PyYAML's pure-Python parser read every spec alike (issue 14, goal 2).

archcalc.spec.yamlio reads a spec from libyaml's events when PyYAML has it (~40× faster) and
from the pure-Python parser otherwise; one builder turns either's events into values and
checks every bound. The oracle here is the pure-Python reading: on a corpus of hostile and
odd texts (the catalogue's spec files and bombs, and tags, numbers, anchors, merge keys and
syntax errors of every kind) both give the same values, or the same error line by line.
"""

from __future__ import annotations

import pytest

from archcalc.errors import ArchcalcError, SpecError
from archcalc.spec import yamlio
from archcalc.spec.yamlio import parse_text

needs_libyaml = pytest.mark.skipif(not yamlio.LIBYAML, reason="PyYAML built without libyaml")

# Texts that exercise one rule each: tags (allowed, refused, on the wrong kind of node),
# numbers (YAML 1.1-only forms refused, 1e309, huge integers), anchors and aliases (undefined,
# duplicate, inside themselves), merge keys (mapping, list, wrong kinds), keys (duplicate,
# unhashable, too long for a simple key), control characters, several documents, and the
# syntax errors libyaml words differently from PyYAML.
ODD = [
    "a: &x {k: 1}\nb: {<<: *x, j: 2}\n", "a: &x {k: 1}\nb: {<<: [*x, {k: 3, m: 1}], k: 9}\n",
    "b: {<<: 1}\n", "b: {<<: [1]}\n", "a: &s [1]\nb: {<<: *s}\n", "a: &s [{x: 1}, 2]\nb: {<<: *s}\n",
    "a: !!str [1]\n", "a: !!map [1]\n", "a: !!seq {a: 1}\n", "a: !!seq abc\n", "a: !!int abc\n",
    "a: !!int 010\n", "a: !!float 1\n", "a: !!bool yes\n", "a: !!null ''\n", "a: ! 12\n",
    "a: !foo 1\n", "a: !!python/object:os.system x\n", "- !!binary aGVsbG8=\n", "- !!set {a, b}\n",
    "- !!omap [a: 1]\n", "- !!timestamp 2001-01-01\n", "a: 2001-12-14\n", "=: 1\n", "a: =\n",
    "a: <<\n", "a: &a 1\nb: &a 2\n", "a: *nope\n", "a: &a [*a]\n", "a: &a {b: *a}\n",
    "--- 1\n--- 2\n", "", "# nothing\n", "a: 1\n\tb: 2\n", "a: [1, 2\n", "a: {b: 1, b: 2}\n",
    "? [1, 2]\n: x\n", "? {a: 1}\n: x\n", "a: 1:30\n", "a: 010\n", "a: 0b11\n", "a: 0x1F\n",
    "a: 1_000\n", "a: .inf\n", ".nan: 1\n", "a: 1e5\n", "a: 1e309\n", "a: 1.0e-5\n", "a: +12\n",
    "a: 09\n", "a: -0\n", "a: 00\n", "a: 99999999999999999999999\n", "a: " + "9" * 5000 + "\n",
    "a: 'x'\nb: \"y\\n\"\n", "a: |\n  text\n  more\n", "a: >\n  folded\n", "a: \x07\n",
    "a: b\x85c\n", "a: \u2028\n", "\ufeffa: 1\n", "a: 1\r\nb: 2\r\n", "a: 1\rb: 2\r",
    "[" * 600 + "]" * 600, "a: " + "[" * 300 + "1" + "]" * 300 + "\n",
    "%YAML 1.1\n---\na: 1\n", "%YAML 2.0\n---\na: 1\n", "%TAG ! tag:example.com,2000:\n---\na: !x 1\n",
    "a: b: c\n", "- a\nb: c\n", "a:\n  - 1\n - 2\n", "a: @x\n", "a: `x\n", "{a: 1}}\n",
    "a: 'unclosed\n", "a: [1, *b]\n", "a: &anchor\n", "a: 1\n...\n", "a: 1\n---\n",
    "? " + "k" * 1100 + "\n: 1\n", "a: [a: 1, b]\n", "a: {? b}\n", "a: [1,2,]\n",
    "a: {b: [1, {c: [&q 2, *q]}]}\n", "a: &a [1, 2]\nb: &b [*a, *a]\nc: [*b, *b, *b]\n",
    "a: true\nb: Yes\nc: off\nd: ~\ne: null\nf: NULL\n",
    # libyaml reads these and PyYAML refuses them (found by fuzzing the bundled specs):
    "a: {b: c?d}\n", "a: [c?d]\n", "a: {b?: 1}\n", "a: [x ?y]\n", "a: {b: 1 ?}\n",
    "a:\t1\n", "a: b\tc\n", "a: [1,\t2]\n", "- a\t# c\n", "a: \t\n", "a: {b:\t1}\n",
    "a: |#x\n  b\n", "a: >-#\n  b\n", "a: | #c\n  b\n", "# what?\na: [1, 2]\n",
    # ... and these, found by a hostile review: a byte-order mark past the start (libyaml
    # skips it where a token starts), a bare `!` tag on an empty value ('' against null).
    "a: 1\n\ufeffb: 2\n", "a: {b: \ufeff1}\n", "# c\ufeff\na: 1\n", "a:\n  \ufeff- 1\n",
    "a: !\n", "a: [!, 1]\n", "a: {b: !}\n", "a: ! x\n",
    # tagged values the tag cannot hold, and a plain scalar that only looks like a number
    "a: !!bool maybe\n", "a: !!bool ''\n", "a: !!int ''\n", "a: !!int _\n", "a: !!float _\n",
    "a: !!int 0b\n", "a: .\n", "a: 0x_\n",
]
ODD_JSON = ['{"a": 1, "a": 2}', '{"a": [1, 2,]}', '{"' + "k" * 1100 + '": 1}', '[1, 2',
            '{"a":\t1}', '{"a": 1e309}', '{"a": NaN}', "[" * 600 + "]" * 600]


def _catalogue() -> list[tuple[str, str, bool]]:
    """(id, text, json_mode) of every spec file in the hostile-input catalogue, but the two
    of over 100 KB (100,000 brackets, a 150 KB list), which the catalogue itself runs: the
    pure-Python scanner takes a second on each."""
    from catalogue import test_files, test_hostile, test_spec_bombs

    out = []
    for module in (test_hostile, test_spec_bombs, test_files):
        for case in module.CASES:
            for name, text in case.files.items():
                if (isinstance(text, str) and name.endswith((".yaml", ".yml", ".json"))
                        and len(text) < 100_000):
                    out.append((f"{case.id}/{name}", text, name.endswith(".json")))
    return out


def _reading(text: str, json_mode: bool, pure: bool) -> tuple[str, object]:
    """("ok", the values) or ("error", the line a user reads)."""
    try:
        return "ok", parse_text(text, json_mode=json_mode, pure=pure)
    except ArchcalcError as exc:
        return "error", exc.render()


CORPUS = ([(f"odd{i}", text, False) for i, text in enumerate(ODD)]
          + [(f"json{i}", text, True) for i, text in enumerate(ODD_JSON)])


@needs_libyaml
def test_libyaml_and_pure_python_agree_on_the_catalogue_and_odd_texts():
    cases = CORPUS + _catalogue()
    assert len(cases) > 150
    outcomes = set()
    for case_id, text, json_mode in cases:
        fast = _reading(text, json_mode, pure=False)
        pure = _reading(text, json_mode, pure=True)
        assert fast == pure, case_id
        outcomes.add(fast[0])
    assert outcomes == {"ok", "error"}  # the corpus has both


@needs_libyaml
def test_texts_libyaml_reads_more_kindly_go_to_pure_python():
    """A tab, a '?' or a comment glued to a block scalar's indicator: PyYAML refuses some
    of these where libyaml reads them, so such a text is read by PyYAML's parser."""
    for text in ("a: [c?d]\n", "a:\t1\n", "a: |#x\n  b\n"):
        assert isinstance(yamlio._events(text, pure=False), yamlio._Loader)
        with pytest.raises(SpecError, match="malformed YAML"):
            parse_text(text)
    assert not isinstance(yamlio._events("a: [1, 2]\n", pure=False), yamlio._Loader)
    # In JSON a '?' is inside a string, read alike by both.
    assert not isinstance(yamlio._events('{"a": "b?"}', pure=False, json_mode=True),
                          yamlio._Loader)


@needs_libyaml
def test_a_spec_is_read_from_libyaml_events_and_a_syntax_error_by_pure_python(monkeypatch):
    """Valid text never builds the pure-Python parser; a syntax error found by libyaml is
    read again by it, and its message (PyYAML's words and columns) is the one given."""
    built = []
    original = yamlio._Loader.__init__

    def spy(self, stream):
        built.append(stream)
        original(self, stream)

    monkeypatch.setattr(yamlio._Loader, "__init__", spy)
    assert parse_text("name: t\nlayers: [relu, {dense: 4}]\n") == {
        "name": "t", "layers": ["relu", {"dense": 4}]}
    assert built == []
    # libyaml would say "did not find expected ',' or ']'"; PyYAML's words are given.
    with pytest.raises(SpecError, match=r"line 2: malformed YAML: expected ',' or '\]', but got"):
        parse_text("name: t\nlayers: [relu\n")
    assert len(built) == 1


def test_without_libyaml_the_pure_parser_reads_alone(monkeypatch):
    monkeypatch.setattr(yamlio, "_CParser", None)
    assert parse_text("a: &x [1, 2]\nb: {<<: {k: *x}}\n") == {"a": [1, 2], "b": {"k": [1, 2]}}
    with pytest.raises(SpecError, match="is not allowed in a spec"):
        parse_text("a: !!python/object:os.system x\n")
    assert isinstance(yamlio._events("a: 1\n", pure=False), yamlio._Loader)


def test_lines_are_kept_for_every_mapping_list_and_item():
    text = "a:\n  - x\n  - {k: 1,\n     j: 2}\nb: [1,\n    2]\n"
    for pure in (False, True):
        data = parse_text(text, pure=pure)
        assert data.line == 1 and data.key_lines == {"a": 1, "b": 5}
        assert data["a"].line == 2 and data["a"].item_lines == [2, 3]
        assert data["a"][1].line == 3 and data["a"][1].key_lines == {"k": 3, "j": 4}
        assert data["b"].item_lines == [5, 6]


@pytest.mark.parametrize("pure", [False, True])
def test_merge_keys_first_mapping_wins_and_own_keys_override(pure):
    text = ("x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\n"
            "z: {d: 0, <<: [*x, *y], a: 9}\n")
    z = parse_text(text, pure=pure)["z"]
    assert z == {"a": 9, "b": 1, "c": 2, "d": 0}
    assert list(z) == ["a", "b", "c", "d"]  # merged keys first, as PyYAML's flatten_mapping
    assert z.key_lines == {"a": 3, "b": 1, "c": 2, "d": 3}


@pytest.mark.parametrize("pure", [False, True])
def test_an_alias_bomb_is_counted_not_built(monkeypatch, pure):
    """9 levels of 9 aliases: 9⁹ values once expanded, refused at the level that crosses the
    limit without expanding anything; the same file within a raised limit shares values."""
    from catalogue.test_spec_bombs import laughs

    with pytest.raises(SpecError, match="more than 400,000 values once its aliases"):
        parse_text("a: " + laughs() + "\n", pure=pure)
    monkeypatch.setenv("ARCHCALC_MAX_SPEC_NODES", str(10**9))
    value = parse_text("a: " + laughs(6) + "\n", pure=pure)["a"]
    assert value[5][0] is value[5][1]  # an alias is its anchor's value, not a copy


@pytest.mark.parametrize("text", ["a: !!bool maybe\n", "a: !!bool\n", "a: !!int ''\n",
                                  "a: !!int _\n", "a: !!float _\n", "a: .\n", "a: 0x_\n"])
@pytest.mark.parametrize("pure", [False, True])
def test_a_value_its_tag_cannot_hold_is_one_line_with_its_line(text, pure):
    """PyYAML's constructors raise KeyError/IndexError/ValueError on these: before, an
    'internal error' (or a message without a line); now the value, its column and line."""
    with pytest.raises(SpecError) as caught:
        parse_text("name: t\n" + text, pure=pure)
    message = str(caught.value)
    assert "line 2" in message and "column 4" in message, message
    assert "is not a value the tag" in message or "reads as a number" in message, message
