"""The simulator's rule checks (``jsonschema``) against the client's own (``dfs_analytics.rules``).

The simulator is an oracle independent of the client: it judges values with the ``jsonschema``
library and an ECMA-262 ``pattern``. Property tests generate verdict rules (schemas with
``type`` (a JSON type name or a list of them), ``const``, ``enum``, bounds, ``pattern``,
lengths) and values (booleans, integers, floats, strings, null, arrays, objects) and require
both sides to pick the same rule and to allow the same corrections, and to read a correction's
value alike.

Where the two disagreed, JSON Schema (ECMA-262 regular expressions, JSON equality) decided which
side was right; those cases, where Python's ``re`` and ``==`` differ from JSON Schema, are kept
in ``JSON_SCHEMA_CASES`` and both sides must follow JSON Schema on them. The generated strings
and patterns hold the characters and classes on which those cases turn too.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfs_analytics import rules
from dfs_analytics.simulator.verdicts import (
    InvalidCorrection,
    RuleJudge,
    schema_allows,
    typed_value,
)

from .helpers import Api, assert_error, task_of

FAST = settings(max_examples=150, deadline=None)

# -- strategies ------------------------------------------------------------------------------

# characters and classes on which Python's re and ECMA-262 agree, and some on which they do not
# (\r, U+2028, non-ASCII digits and letters, U+FEFF, U+001C: see JSON_SCHEMA_CASES)
ALPHABET = "abAZxy09 -_\n\t.\r\u2028\u0663\xe9\ufeff\x1c"
PATTERN_PARTS = [
    *("a", "b?", "[A-Z]+", "[0-9]{2,3}", r"\d", r"\d+", ".", "x|y", "[a-z]*", r"\.", " "),
    *(r"\w", r"\s", r"\S", r"[^\d]"),
]

bounds = st.one_of(st.integers(-5, 5), st.integers(-10, 10).map(lambda n: n / 2))
texts = st.text(ALPHABET, max_size=5)
scalars = st.one_of(
    st.booleans(),
    st.integers(-6, 6),
    st.floats(-6, 6, allow_nan=False).map(lambda x: round(x * 2) / 2),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
objects = st.dictionaries(st.sampled_from("ab"), scalars, max_size=2)
values = st.one_of(scalars, st.none(), st.lists(scalars, max_size=3), objects)
JSON_TYPES = ["boolean", "integer", "number", "string", "null", "array", "object"]
types = st.one_of(
    st.sampled_from(JSON_TYPES),
    st.lists(st.sampled_from(JSON_TYPES), min_size=1, max_size=3, unique=True),
)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(st.sampled_from(PATTERN_PARTS), min_size=1, max_size=3)))
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


schemas = st.fixed_dictionaries(
    {},
    optional={
        "type": types,
        "const": st.one_of(scalars, st.lists(scalars, max_size=2), objects),
        "enum": st.lists(st.one_of(scalars, st.lists(scalars, max_size=2)), min_size=1, max_size=4),
        "minimum": bounds,
        "maximum": bounds,
        "exclusiveMinimum": bounds,
        "exclusiveMaximum": bounds,
        "pattern": patterns(),
        "minLength": st.integers(0, 4),
        "maxLength": st.integers(0, 4),
    },
)


@st.composite
def rule_lists(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    found = draw(st.lists(schemas, max_size=4))
    if not found:
        return draw(st.sampled_from([None, []]))
    return [
        {"schema": s, "sentence": f"rule {i}", "is_conformity_validated": draw(st.booleans())}
        for i, s in enumerate(found)
    ]


def rule_values(task_rules: list[dict[str, Any]] | None) -> st.SearchStrategy[Any]:
    """Values, plus the consts and enum members of the rules (so that some rules match)."""
    named = [
        v
        for r in task_rules or ()
        for v in [r["schema"].get("const"), *r["schema"].get("enum", ())]
        if v is not None
    ]
    return st.one_of(values, st.sampled_from(named)) if named else values


# -- properties ------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_the_simulator_picks_the_rule_the_client_picks(data: st.DataObject):
    task_rules = data.draw(rule_lists())
    value = data.draw(rule_values(task_rules))
    judge = RuleJudge(task_rules)
    assert judge.matching_rule(value) is rules.matching_rule(task_rules, value)
    assert judge.allows(value) == rules.allows(task_rules, value)
    rule = rules.matching_rule(task_rules, value)
    expected = (None, None) if rule is None else (rule["sentence"], rule["is_conformity_validated"])
    assert judge.verdict(value) == expected


@FAST
@given(schemas, values)
def test_one_schema_judged_alike(schema: dict[str, Any], value: Any):
    assert schema_allows(schema, value) == rules.schema_matches(schema, value)


@FAST
@given(
    st.sampled_from(rules.OUTCOME_TYPES),
    st.one_of(
        values,
        st.sampled_from(["true", " TRUE", "False ", "12", "-0", "1e3", "2.50", "1_2", "nan"]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
    ),
)
def test_a_correction_value_is_read_alike(outcome_type: str, value: Any):
    try:
        expected = rules.coerce_value(outcome_type, value)
    except rules.InvalidValue:
        with pytest.raises(InvalidCorrection):
            typed_value(outcome_type, value)
        return
    got = typed_value(outcome_type, value)
    assert got == expected
    assert type(got) is type(expected)


# -- where Python's re and == are not JSON Schema ---------------------------------------------

JSON_SCHEMA_CASES = [
    pytest.param(
        {"type": "string", "pattern": r"^\d+$"},
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        False,
        id="ecma-digit-is-ascii",
    ),
    pytest.param({"pattern": "^a.b$"}, "a\rb", False, id="ecma-dot-excludes-cr"),
    pytest.param({"pattern": "^a.b$"}, "a\u2028b", False, id="ecma-dot-excludes-ls"),
    pytest.param({"pattern": r"^\w$"}, "é", False, id="ecma-word-is-ascii"),
    pytest.param({"pattern": r"^\s$"}, "\ufeff", True, id="ecma-space-has-bom"),
    pytest.param({"pattern": r"^\s$"}, "\x1c", False, id="ecma-space-not-file-separator"),
    pytest.param({"const": [1]}, [True], False, id="json-equality-inside-arrays"),
    pytest.param({"enum": [[0, "a"]]}, [False, "a"], False, id="json-equality-inside-enum"),
]


@pytest.mark.parametrize(("schema", "value", "json_schema_says"), JSON_SCHEMA_CASES)
def test_the_simulator_follows_json_schema(schema: dict[str, Any], value: Any, json_schema_says):
    assert schema_allows(schema, value) is json_schema_says


@pytest.mark.parametrize(("schema", "value", "json_schema_says"), JSON_SCHEMA_CASES)
def test_the_client_follows_json_schema(schema: dict[str, Any], value: Any, json_schema_says):
    assert rules.schema_matches(schema, value) is json_schema_says


@pytest.mark.parametrize(
    ("schema", "value", "json_schema_says"),
    [
        ({"pattern": "^a$"}, "a\n", False),  # '$' is the very end (both sides handle it)
        ({"const": 1}, True, False),
        ({"const": 1}, 1.0, True),
        ({"enum": [0]}, False, False),
        ({"type": "integer"}, 2.0, True),
        ({"type": "number"}, True, False),
        ({"minimum": 3}, "2", True),  # bounds only apply to numbers
        ({"maxLength": 1}, 12, True),  # lengths only apply to strings
    ],
)
def test_both_follow_json_schema_on_the_dialect(schema, value, json_schema_says):
    assert schema_allows(schema, value) is json_schema_says
    assert rules.schema_matches(schema, value) is json_schema_says


@pytest.mark.parametrize("number", [10**308, 2**1023 + 1, int(1.7976931348623157e308), -(10**308)])
def test_both_take_every_number_a_double_holds(number: int):
    assert typed_value("Number", number) == number
    assert rules.coerce_value("Number", number) == number


@pytest.mark.parametrize("number", [2**1024, 10**309, "1e309", float("inf")])
def test_both_refuse_a_number_beyond_a_double(number: Any):
    with pytest.raises(InvalidCorrection):
        typed_value("Number", number)
    with pytest.raises(rules.InvalidValue):
        rules.coerce_value("Number", number)


# -- over HTTP -------------------------------------------------------------------------------


def test_a_correction_matching_no_rule_is_refused_over_http(api: Api):
    wo = api.create(name="oracle-refusal")
    wo = api.analyze(wo["id"], "pm-ouvert-apres", numero_serie="PM48213A77")
    task = task_of(wo, "numero_serie")
    path = f"work-orders/{wo['id']}/tasks/{task['id']}/correction/"
    for value in ("PM48213A77\n", "pm48213a77", "PM4821"):
        r = api.patch(path, json={"corrected_value": value})
        body = assert_error(r, 400, "corrected_value")
        assert "matches no verdict rule" in body["corrected_value"][0]
    r = api.patch(path, json={"corrected_value": "PM11408C55"})
    assert r.status_code == 200, r.text
    assert r.json()["state"]["message"] is not None
