"""Property tests of the spec parser: valid specs round-trip, and no input at all (random JSON, mutated
specs, random text) makes it raise anything but :class:`SpecError`."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pach_airflow.errors import SpecError
from pach_airflow.spec import dump_spec, input_name, iter_inputs, parse_specs, spec_from_dict
from tests.strategies import JSON_VALUES, SPEC_TEXTS, camel_case_keys, mutated_specs, valid_specs

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(valid_specs())
def test_valid_specs_parse_and_round_trip(doc):
    spec = spec_from_dict(doc)
    dumped = dump_spec(spec)
    assert spec_from_dict(dumped) == spec
    assert dump_spec(spec_from_dict(dumped)) == dumped  # normalising twice changes nothing
    assert parse_specs(yaml.safe_dump(dumped)) == [spec]
    assert spec.datum_tries >= 1 and spec.parallelism_spec.constant >= 1 and spec.output_branch
    for inp in iter_inputs(spec.input):
        if hasattr(inp, "glob"):
            assert inp.name and inp.branch
        else:
            assert inp.repo == f"{spec.pipeline.name}_{inp.name}" or inp.repo
    _assert_sorted(spec.input)


def _assert_sorted(inp):
    for field in ("cross", "union", "join", "group"):
        children = getattr(inp, field) or []
        names = [input_name(c) for c in children]
        assert names == sorted(names)
        for c in children:
            _assert_sorted(c)


@SETTINGS
@given(valid_specs())
def test_camel_case_files_give_the_same_spec(doc):
    assert spec_from_dict(camel_case_keys(doc)) == spec_from_dict(doc)


def _only_spec_errors(text: str, source: str = "fuzz.yaml"):
    try:
        specs = parse_specs(text, source)
    except SpecError as exc:
        assert exc.problems and all(isinstance(p, str) and p.startswith(source + ": ") for p in exc.problems)
        assert all("\n" not in p for p in exc.problems)
        return None
    for spec in specs:  # whatever is accepted must also round-trip
        assert spec_from_dict(dump_spec(spec)) == spec
    return specs


@SETTINGS
@given(mutated_specs())
def test_mutated_specs_raise_only_spec_error(doc):
    _only_spec_errors(json.dumps(doc), "fuzz.json")


@SETTINGS
@given(mutated_specs())
def test_mutated_specs_as_yaml_raise_only_spec_error(doc):
    _only_spec_errors(yaml.safe_dump(doc), "fuzz.yaml")


@SETTINGS
@given(JSON_VALUES)
def test_random_json_raises_only_spec_error(value):
    _only_spec_errors(json.dumps(value), "fuzz.json")


@SETTINGS
@given(st.fixed_dictionaries({"pipeline": st.fixed_dictionaries({"name": st.text(max_size=60)}),
                              "transform": JSON_VALUES, "input": JSON_VALUES}))
def test_random_fields_raise_only_spec_error(doc):
    _only_spec_errors(json.dumps(doc), "fuzz.json")


@SETTINGS
@given(SPEC_TEXTS)
def test_random_text_raises_only_spec_error(text):
    _only_spec_errors(text)
