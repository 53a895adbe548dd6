"""`archcalc schema`: the JSON Schema of the spec language, checked against archcalc's own
loader (the oracle): what archcalc accepts, the schema accepts; the typos archcalc rejects,
the schema rejects too; descriptions and defaults are the pydantic models'."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jsonschema = pytest.importorskip("jsonschema")

import archcalc.cli.inspect  # noqa: E402,F401 - registers `schema` and `validate`
from archcalc.errors import ArchcalcError  # noqa: E402
from archcalc.spec import bundled_names, from_dict, loads  # noqa: E402
from archcalc.spec.budget import FORMS  # noqa: E402
from archcalc.spec.layers import ALIASES, MODELS  # noqa: E402
from archcalc.spec.load import NetworkSpec, bundled_dir  # noqa: E402
from archcalc.spec.resolve import _BLOCK_KEYS, _COMPOSITE_KEYS  # noqa: E402
from archcalc.spec.schema import (DIALECT, IN_BLOCK, TOP_DESCRIPTIONS, WIDENED,  # noqa: E402
                                  schema, schema_text)
from archcalc.spec.yamlio import parse_text  # noqa: E402
from test_fuzz_specs import _paths  # noqa: E402 - one walk of a spec's values for both fuzzers

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = schema()
DEFS = SCHEMA["$defs"]
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def as_json(text: str) -> object:
    """The spec as an editor's YAML reader gives it: archcalc's own parse, as plain JSON."""
    return json.loads(json.dumps(parse_text(text)))


def schema_errors(data: object) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


def test_the_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == DIALECT
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", sorted(bundled_dir().glob("*.yaml"))
                         + sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_and_example_spec_validates(path):
    assert schema_errors(as_json(path.read_text(encoding="utf-8"))) == []


def test_bundled_names_are_the_files_validated():
    assert sorted(bundled_names()) == sorted(p.stem for p in bundled_dir().glob("*.yaml"))


# Every form README's "The spec language" shows, in one spec. archcalc loads it (so it is
# valid), and the schema must accept it.
EVERY_FORM = """
name: forms
source: written for the schema test
description: every item form
family: residual
separator: "."
init: xavier
input: 3x32x32
blocks:
  unit:
    args: [planes, k]
    description: arithmetic on args in numeric fields, pairs and repeat counts
    layers:
      - {conv: {filters: 2 * planes, kernel: [k, k], padding: (k - 1) // 2, stride: 1}}
      - {repeat: planes // 4 - 1, inline: true, layers: [relu]}
      - {dense: planes} # never reached: not used below with a flat input
  concat_body:
    args: []
    concat: [[relu], [{conv: {filters: 3, kernel: 1}}]]
  nothing:
    args: null
    layers: [swish]
layers:
  - relu
  - bn
  - {conv: {filters: 8, kernel: 3, padding: same, padding_mode: reflect}}
  - {type: conv2d, filters: 8, kernel: 3, padding: [1, 1, 1, 1]}
  - {type: conv, filters: 8, kernel: 1}
  - {conv: {filters: 8, kernel: 1}, name: conv_named_outside, trainable: false}
  - stem: {conv2d: {filters: 8, kernel: 3, padding: 1}}
  - {relu: null}
  - {maxpool: 1}
  - {maxpool: [1, 1]}
  - {dropout: 0.25}
  - {crop: 30}
  - {crop: [28, 28]}
  - {pad: {padding: 1, mode: edge}}
  - {pad: 1}
  - {upsample: 2}
  - {deconv: {filters: 8, kernel: 2, stride: 2}}
  - {adaptive_avgpool: 15}
  - {concat: [[], [bn, relu, {conv: {filters: 4, kernel: 3, padding: 1}}]]}
  - {add: [[{conv: {filters: 12, kernel: 1}}], {name: shortcut, layers: []}]}
  - {mul: {name: gate, branches: [[], [gap, {conv: {filters: 12, kernel: 1}}, hardsigmoid]]}}
  - {add: [relu, []], trainable: false}
  - repeat: 2
    layers: [{conv: {filters: 12, kernel: 1}}]
  - stage: {repeat: 2, start: 1, use: unit, with: [4, 3]}
  - {use: unit, with: {planes: 6, k: 1}, name: u1}
  - {use: concat_body, trainable: false}
  - nothing
  - seq: [relu, [relu]]
  - {sequence: [relu], name: "7"}
  - {layers: [gelu, {gelu: {approximate: tanh}}], name: 8}
  - {lrn: {size: 3, form: sum}}
  - {ln: {eps: 1.0e-3}}
  - gap: {keepdims: false}
  - {fc: 10}
  - {linear: {units: 10, bias: false}}
  - {maxout: 2}
  - softmax
"""


def test_every_form_of_the_language_validates():
    loads(EVERY_FORM)  # archcalc accepts it: the oracle
    assert schema_errors(as_json(EVERY_FORM)) == []


def _spec(layers: str, blocks: str = "", top: str = "") -> str:
    return f"name: t\ninput: [3, 8, 8]\n{top}{blocks}layers:\n{layers}"


# Specs archcalc rejects for a mistake a schema can see: the schema must reject them too.
INVALID = {
    "unknown kind": _spec("  - relux\n  - {convv: {filters: 4, kernel: 3}}\n"),
    "unknown kind as type": _spec("  - {type: convolution2d, filters: 4, kernel: 3}\n"),
    "misspelt field": _spec("  - {conv: {filters: 4, kernel: 3, stirde: 2}}\n"),
    "misspelt field in the typed form": _spec("  - {type: conv2d, filters: 4, kernl: 3}\n"),
    "misspelt field in a block": _spec(
        "  - {use: b, with: [4]}\n",
        blocks="blocks:\n  b: {args: [f], layers: [{conv: {filters: f, kernel: 3, pading: 1}}]}\n"),
    "misspelt top-level key": "name: t\ninputs: [3, 8, 8]\nlayers: [relu]\n",
    "misspelt composite key": _spec("  - {repeat: 2, layer: [relu]}\n"),
    "misspelt block key": _spec("  - {use: b}\n", blocks="blocks:\n  b: {args: [], layer: [relu]}\n"),
    "wrong type: text for an integer": _spec("  - {conv: {filters: sixty, kernel: 3}}\n"),
    "wrong type: arithmetic outside a block": _spec("  - {conv: {filters: 4 * 16, kernel: 3}}\n"),
    "wrong type: boolean for an integer": _spec("  - {dense: true}\n"),
    "wrong type: a triple for a pair": _spec("  - {conv: {filters: 4, kernel: [3, 3, 3]}}\n"),
    "wrong type: a list shorthand on dense": _spec("  - flatten\n  - {dense: [4]}\n"),
    "out of range": _spec("  - {dropout: 1.5}\n"),
    "bad enum": _spec("  - {conv: {filters: 4, kernel: 3, padding_mode: mirror}}\n"),
    "bad padding word": _spec("  - {conv: {filters: 4, kernel: 3, padding: half}}\n"),
    "missing required field": _spec("  - {conv: {kernel: 3}}\n"),
    "kind without its required fields": _spec("  - {conv: null}\n"),
    "two kinds in one item": _spec("  - {relu: null, tanh: null}\n"),
    "one branch": _spec("  - {add: [[relu]]}\n"),
    "repeat without a body": _spec("  - {repeat: 2}\n"),
    "negative repeat": _spec("  - {repeat: -1, layers: [relu]}\n"),
    "input of four sizes": "name: t\ninput: [3, 8, 8, 8]\nlayers: [relu]\n",  # [T, F]: issue 13
    "empty layers": "name: t\ninput: [3, 8, 8]\nlayers: []\n",
    "bad separator": _spec("  - relu\n", top="separator: ':'\n"),
    "bad init": _spec("  - relu\n", top="init: glorot\n"),
    "block named as a kind": _spec("  - relu\n", blocks="blocks:\n  relu: {args: [], layers: [tanh]}\n"),
    "block with two bodies": _spec(
        "  - {use: b}\n", blocks="blocks:\n  b: {args: [], layers: [relu], concat: [[], []]}\n"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_mistakes_archcalc_rejects_the_schema_rejects(case):
    text = INVALID[case]
    with pytest.raises(ArchcalcError):
        loads(text)
    assert schema_errors(as_json(text)), f"the schema accepts: {case}"


def _kind_field_defs():
    for kind, model in MODELS.items():
        for field, info in model.model_fields.items():
            if field != "type":
                yield kind, field, info


def test_every_field_of_every_kind_has_a_description_in_both_grammars():
    for kind, field, info in _kind_field_defs():
        assert info.description, (kind, field)
        for suffix in ("", IN_BLOCK):
            assert DEFS[f"{kind}.{field}{suffix}"]["description"] == info.description
        assert DEFS[f"fields_{kind}"]["description"]  # the kind's own docstring
    for field, entry in SCHEMA["properties"].items():
        assert entry["description"] == TOP_DESCRIPTIONS[field]
    assert set(TOP_DESCRIPTIONS) == set(NetworkSpec.model_fields)


def test_defaults_in_the_schema_are_the_pydantic_defaults():
    for kind, field, info in _kind_field_defs():
        entry = DEFS[f"{kind}.{field}"]
        if info.is_required():
            assert "default" not in entry and field in DEFS[f"fields_{kind}"]["required"]
        else:
            assert entry["default"] == info.default, (kind, field)
            assert type(entry["default"]) is type(info.default)  # 1e-05 stays a float
    for field, info in NetworkSpec.model_fields.items():
        entry = SCHEMA["properties"][field]
        if info.is_required():
            assert field in SCHEMA["required"]
        else:
            default = info.default_factory() if info.default_factory else info.default
            assert entry["default"] == default, field


def test_every_before_validator_is_mirrored_in_the_schema():
    """A before-validator widens a field past its type (crop: 56); the schema must know."""
    models = {**MODELS, "network": NetworkSpec}
    found = set()
    for kind, model in models.items():
        for decorator in model.__pydantic_decorators__.field_validators.values():
            if decorator.info.mode == "before":
                found |= {(kind, field) for field in decorator.info.fields}
    assert found == set(WIDENED)


def test_the_grammar_has_the_resolvers_keywords_and_kinds():
    for form in FORMS:
        assert set(DEFS[f"{form}_item"]["properties"]) == _COMPOSITE_KEYS[form]
    assert set(DEFS["block"]["properties"]) == _BLOCK_KEYS - {"repeat"}
    assert set(DEFS["kind_map"]["properties"]) == set(ALIASES) | {"name", "trainable"}
    assert DEFS["typed_leaf"]["properties"]["type"]["enum"] == sorted(ALIASES)
    # completion offers the modes of a field as an enum
    assert DEFS["conv2d.padding_mode"]["enum"] == ["zeros", "reflect", "replicate", "circular"]


# ---- what archcalc accepts, the schema accepts: mutated bundled specs ------------------------

SPECS = {name: yaml.safe_load((bundled_dir() / f"{name}.yaml").read_text())
         for name in ("lenet5", "googlenet", "resnet18", "mobilenet_v3_large")}
JUNK = st.one_of(st.none(), st.integers(-2, 300), st.floats(0, 2), st.sampled_from(
    ["same", "valid", "relu", "conv", "gap", "p * 2", "3x32x32", "edge", "tanh"]),
    st.lists(st.integers(0, 5), max_size=4), st.just([]), st.just({}),
    st.dictionaries(st.sampled_from(["use", "with", "type", "repeat", "name", "layers", "x"]),
                    st.integers(0, 3), max_size=2))


BOOLEAN_KEYS = {"inline"} | {field for model in MODELS.values()
                             for field, info in model.model_fields.items() if info.annotation is bool}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(SPECS)), st.data())
def test_mutated_specs_archcalc_reads_are_valid_for_the_schema(name, data):
    """archcalc's laxness is not copied, where a value is not what README documents: a
    boolean given as a number (`bias: 0`: pydantic's lax bool; `inline: 2`: truthy), and a
    `type:` inside {kind: {...}} (the resolver overwrites it). The schema flags them."""
    spec = copy.deepcopy(SPECS[name])
    paths = [p for p in _paths(spec) if p]
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(paths))
        parent = spec
        try:
            for key in path[:-1]:
                parent = parent[key]
            value = parent[path[-1]] = data.draw(JUNK)
        except (KeyError, IndexError, TypeError):
            continue
        if path[-1] in BOOLEAN_KEYS and not isinstance(value, bool):
            return
        if path[-1] in ALIASES and isinstance(value, dict) and "type" in value:
            return
    try:
        from_dict(copy.deepcopy(spec), file="fuzz.yaml")
    except ArchcalcError:
        return  # archcalc refuses it; the schema may or may not see why
    assert schema_errors(json.loads(json.dumps(spec))) == [], json.dumps(spec)[:2000]


# ---- the command ----------------------------------------------------------------------------

def test_schema_command_prints_the_bundled_file(run):
    """The bundled file (archcalc/spec/archcalc.schema.json, for a `$schema` URL that needs no
    install) is what the command generates: regenerate it with
    `archcalc schema --output archcalc/spec/archcalc.schema.json` after changing the language."""
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == SCHEMA
    bundled = Path(archcalc.spec.__file__).with_name("archcalc.schema.json")
    assert bundled.read_text(encoding="utf-8") == result.stdout == schema_text()


def test_schema_output_writes_the_file_whole(run, tmp_path):
    out = tmp_path / "archcalc.schema.json"
    result = run("schema", "--output", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8")) == SCHEMA
    missing = tmp_path / "no" / "such" / "dir" / "s.json"
    result = run("schema", "--output", str(missing))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write") and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [out]  # nothing half-written left behind
