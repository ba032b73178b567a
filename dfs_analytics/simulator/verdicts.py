"""The simulator's own judge of task values: JSON-schema rules checked with ``jsonschema``.

The first rule whose schema a value matches gives the verdict, and a correction must match one
rule when there are any (CONTRACT.md). Checked with ``jsonschema`` (Draft 2020-12) and
``regress`` for ``pattern``, so it is an oracle independent of :mod:`dfs_analytics.rules`
(``tests/simulator/test_validation_oracle.py`` compares the two). A correction's type check is
a JSON schema too.

This module never imports the client's rule checks, never does I/O, and needs the ``sim``
extra: the rest of the simulator imports it lazily.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import regress
from jsonschema import Draft202012Validator, ValidationError, validators


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema's own 'pattern' uses Python's re, whose '$' also matches before a final
    # newline; JSON Schema says ECMA-262, where it does not
    if validator.is_type(instance, "string") and _search(pattern, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _search(pattern: str, text: str) -> Any:
    try:
        return _regex(pattern).find(text)
    except UnicodeEncodeError:
        # a lone surrogate (JSON allows "\ud800"): regress takes UTF-8 only, so it stands in
        # as U+FFFD, which any pattern that is not about surrogates treats alike
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return _regex(pattern).find(clean)


RuleValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
"""Draft 2020-12 with an ECMA-262 ``pattern``: the validator of rule and type schemas."""


@lru_cache(maxsize=256)
def _regex(pattern: str) -> regress.Regex:
    return regress.Regex(pattern)


MAX_DOUBLE = 1.7976931348623157e308
# the type check of a correction value per outcome type: a JSON value, or its string form
# (white space around a Boolean or Number string form is ignored)
TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Boolean": {
        "anyOf": [
            {"type": "boolean"},
            {"type": "string", "pattern": r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"},
        ]
    },
    "Number": {
        "anyOf": [
            {"type": "number"},
            {
                "type": "string",
                "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$",
            },
        ]
    },
    "Text": {"type": "string"},
}
_TYPE_ERRORS = {
    "Boolean": "Must be a valid boolean, got {!r}.",
    "Number": "A valid number is required, got {!r}.",
    "Text": "Not a valid string, got {!r}.",
}
_TYPE_VALIDATORS = {name: RuleValidator(schema) for name, schema in TYPE_SCHEMAS.items()}


class InvalidCorrection(ValueError):
    """A correction value that does not fit its task's type; the message says why."""


def typed_value(outcome_type: str, value: Any) -> Any:
    """``value`` (a JSON value or its string form) as a value of ``outcome_type``.

    Returns a bool, a number (an integral float below 2**53 as an int) or a str. Raises
    :class:`InvalidCorrection` for null, a value of another type, or a number that is not
    finite or is beyond the range of a double.
    """
    if value is None:
        raise InvalidCorrection("This field may not be null.")
    check = _TYPE_VALIDATORS.get(outcome_type)
    if check is None:
        raise InvalidCorrection(f"Unknown outcome type {outcome_type!r}.")
    raw = value
    if isinstance(value, str) and outcome_type != "Text":
        value = value.strip()
    if not check.is_valid(value):
        raise InvalidCorrection(_TYPE_ERRORS[outcome_type].format(raw))
    if outcome_type == "Boolean":
        return value if isinstance(value, bool) else value.lower() == "true"
    if outcome_type == "Text":
        return value
    number = float(value) if isinstance(value, str) else value
    try:
        finite = math.isfinite(number) and abs(float(number)) <= MAX_DOUBLE
    except OverflowError:
        finite = False
    if not finite:
        raise InvalidCorrection("A finite number within the range of a double is required.")
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def schema_allows(schema: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid against the rule schema ``schema`` (JSON Schema 2020-12)."""
    return RuleValidator(schema).is_valid(value)


def _schema_of(rule: Mapping[str, Any]) -> Any:
    schema = rule.get("schema")
    return {} if schema is None else schema


class RuleJudge:
    """The rules of one task, compiled once: verdicts and whether a correction is allowed.

    Verdicts of scalar values are remembered (the generator asks the same few values many
    times); the key holds the value's type, so ``True`` and ``1`` are judged apart.
    """

    def __init__(self, rules: Sequence[Mapping[str, Any]] | None):
        self.rules = [r for r in rules or () if isinstance(r, Mapping)]
        self.has_rules = bool(rules)
        # a rule without a schema matches every value; a boolean schema keeps its meaning
        self._checks = [RuleValidator(_schema_of(r)) for r in self.rules]
        self._memo: Callable[[type, Any], int | None] = lru_cache(maxsize=1024)(self._find)

    def _find(self, kind: type, value: Any) -> int | None:
        for i, check in enumerate(self._checks):
            if check.is_valid(value):
                return i
        return None

    def matching_rule(self, value: Any) -> Mapping[str, Any] | None:
        """The first rule whose schema ``value`` matches, or None."""
        try:
            i = self._memo(type(value), value)
        except TypeError:  # a list or an object: not hashable, judged every time
            i = self._find(type(value), value)
        return None if i is None else self.rules[i]

    def verdict(self, value: Any) -> tuple[str | None, bool | None]:
        """``(sentence, is_conformity_validated)`` of the first matching rule, else both None."""
        rule = self.matching_rule(value)
        if rule is None:
            return None, None
        return rule.get("sentence"), rule.get("is_conformity_validated")

    def allows(self, value: Any) -> bool:
        """Whether a correction to ``value`` is accepted: any value when there are no rules."""
        return not self.has_rules or self.matching_rule(value) is not None
