"""Verdict rules (``dfs_analytics.rules``) as JSON Schema defines them: ECMA-262 patterns, JSON
equality at every depth, JSON types, and every finite double as a Number."""

from __future__ import annotations

from typing import Any

import pytest

from dfs_analytics import rules

MAX_DOUBLE = 1.7976931348623157e308


def matches(pattern: str, text: str) -> bool:
    return rules.schema_matches({"pattern": pattern}, text)


# -- patterns: ECMA-262 character classes ----------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (r"^\d$", "7", True),
        (r"^\d$", "\u0663", False),  # ARABIC-INDIC DIGIT THREE: \d is [0-9]
        (r"^\d$", "\uff17", False),  # FULLWIDTH DIGIT SEVEN
        (r"^\D$", "\u0663", True),
        (r"^[\d]$", "\u0663", False),
        (r"^[^\d]$", "\u0663", True),
        (r"^\w$", "_", True),
        (r"^\w$", "é", False),  # \w is [A-Za-z0-9_]
        (r"^\w$", "ß", False),
        (r"^\W$", "é", True),
        (r"^[\w-]+$", "abc-é", False),
        (r"^[\W]$", "é", True),
    ],
)
def test_digit_and_word_classes_are_ascii(pattern: str, text: str, expected: bool):
    assert matches(pattern, text) is expected


@pytest.mark.parametrize("terminator", ["\n", "\r", "\u2028", "\u2029"])
def test_dot_excludes_every_line_terminator(terminator: str):
    assert not matches("^a.b$", f"a{terminator}b")
    assert matches(r"^a[^.]b$", f"a{terminator}b")  # '.' in a class is a dot


@pytest.mark.parametrize("char", ["\t", "\x0b", "\x0c", "\x85", "\x1c", "é", "\U0001f600"])
def test_dot_takes_every_other_character(char: str):
    assert matches("^a.b$", f"a{char}b")


@pytest.mark.parametrize(
    "space",
    [
        "\t",
        "\n",
        "\x0b",
        "\x0c",
        "\r",
        " ",
        "\xa0",
        "\u1680",
        "\u2000",
        "\u2028",
        "\u3000",
        "\ufeff",
    ],
)
def test_space_is_ecma_white_space_and_line_terminators(space: str):
    assert matches(r"^\s$", space)
    assert matches(r"^[\s]$", space)
    assert not matches(r"^\S$", space)
    assert not matches(r"^[^\s]$", space)


@pytest.mark.parametrize("other", ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u180e", "a"])
def test_space_is_not_python_white_space(other: str):
    assert not matches(r"^\s$", other)
    assert matches(r"^\S$", other)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^a$", "a\n", False),  # '$' is the very end, not before a final newline
        ("^a$", "a", True),
        ("^a", "b\na", False),  # no multiline mode
        ("b", "abc", True),  # unanchored: a search, not a full match
        ("[$]", "a$", True),
        (r"a\$", "a$", True),
    ],
)
def test_anchors_and_search(pattern: str, text: str, expected: bool):
    assert matches(pattern, text) is expected


def test_a_lone_surrogate_stands_in_as_a_replacement_character():
    assert matches("^a.b$", "a\ud800b")
    assert matches("b$", "\udfffb")
    assert not matches(r"^\w+$", "a\ud800")


def test_a_pattern_is_compiled_once():
    rules._ecma_pattern.cache_clear()
    for text in ("AB12", "ab12", "AB12", "XY99"):
        matches("^[A-Z]{2}[0-9]{2}$", text)
    info = rules._ecma_pattern.cache_info()
    assert (info.misses, info.hits) == (1, 3)


@pytest.mark.parametrize("pattern", ["a**", "(?i)^ab[0-9]+$"])  # the second is Python-only
def test_a_rule_whose_pattern_is_not_ecma_262_matches_nothing_and_says_so(pattern: str):
    rules._ecma_pattern.cache_clear()
    with pytest.warns(RuntimeWarning, match="not an ECMA-262 regular expression"):
        assert not matches(pattern, "ab12")
    rule = {"schema": {"type": "string", "pattern": pattern}, "is_conformity_validated": True}
    assert rules.verdict_label([rule], "ab12") == rules.NO_RULE  # a verdict, not a crash


def test_patterns_only_apply_to_strings():
    assert rules.schema_matches({"pattern": "^x$"}, 12)
    assert rules.schema_matches({"pattern": "^x$"}, [1])


# -- JSON equality ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        ([1], [True], False),
        ([1], [1.0], True),
        ([[0, "a"]], [[False, "a"]], False),
        ([[0, "a"]], [[0.0, "a"]], True),
        ({"a": 1}, {"a": True}, False),
        ({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1, 2, 3], False),
        ([1], (1,), True),  # a tuple is an array too
        ("1", 1, False),
        ("a", ["a"], False),
        (None, None, True),
        (None, False, False),
        ([], {}, False),
        (2**53 + 1, float(2**53), False),  # exact, as Python compares int and float
    ],
)
def test_json_equality_at_every_depth(a: Any, b: Any, expected: bool):
    assert rules.json_equal(a, b) is expected
    assert rules.json_equal(b, a) is expected


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        ({"const": [1]}, [True], False),
        ({"const": [1]}, [1.0], True),
        ({"const": {"ok": True}}, {"ok": 1}, False),
        ({"enum": [[0, "a"]]}, [False, "a"], False),
        ({"enum": [[0, "a"], [False, "a"]]}, [False, "a"], True),
        ({"enum": [1, "x"]}, True, False),
        ({"enum": [1, "x"]}, 1.0, True),
    ],
)
def test_const_and_enum_use_json_equality(schema: dict[str, Any], value: Any, expected: bool):
    assert rules.schema_matches(schema, value) is expected


# -- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", 2.0, True),
        ("integer", 2.5, False),
        ("integer", 10**400, True),  # beyond a double, still an integer
        ("integer", True, False),
        ("number", True, False),
        ("number", 1e308, True),
        ("boolean", 0, False),
        ("string", "", True),
        ("null", None, True),
        ("null", False, False),
        ("array", [1], True),
        ("array", "ab", False),
        ("object", {"a": 1}, True),
        ("object", [], False),
        (["string", "null"], None, True),
        (["string", "null"], 1, False),
        (["integer", "boolean"], True, True),
        ("no-such-type", 1, True),  # a name JSON Schema does not know is ignored
    ],
)
def test_json_types(kind: Any, value: Any, expected: bool):
    assert rules.schema_matches({"type": kind}, value) is expected


# -- Number values: every finite double ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**308, 10**308),
        (-(10**308), -(10**308)),
        (2**1023 + 1, 2**1023 + 1),
        (int(MAX_DOUBLE), int(MAX_DOUBLE)),
        (MAX_DOUBLE, MAX_DOUBLE),
        ("1e308", 1e308),
        (" 2.50 ", 2.5),
        ("12", 12),
    ],
)
def test_number_takes_every_finite_double(value: Any, expected: Any):
    got = rules.coerce_value("Number", value)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    "value", [2**1024, -(2**1024), 10**309, "1e309", float("inf"), float("nan"), True, "0x10"]
)
def test_number_refuses_what_no_double_holds(value: Any):
    with pytest.raises(rules.InvalidValue):
        rules.coerce_value("Number", value)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (True, 1),
        (False, 0),
        ([1], [1.0]),
        ([True], [1]),
        ({"a": 1, "b": [2]}, {"b": [2.0], "a": 1}),
        ({"a": True}, {"a": 1}),
        ("1", 1),
        (2**53 + 1, float(2**53)),
        (None, float("nan")),
        ("OK", "OK"),
    ],
)
def test_json_key_is_equal_exactly_when_the_values_are_json_equal(a: Any, b: Any):
    same = (rules.is_missing(a) and rules.is_missing(b)) or rules.json_equal(a, b)
    assert (rules.json_key(a) == rules.json_key(b)) is same
    if same:
        assert hash(rules.json_key(a)) == hash(rules.json_key(b))
