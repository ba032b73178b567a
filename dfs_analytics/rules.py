"""Task values and verdict rules, as the platform defines them.

A task's ``outcome_validation`` is a list of rules; the first rule whose JSON-schema matches a
value gives that value's verdict (its ``sentence``, e.g. "OK" or "Photo incorrecte") and
whether it counts as conform (``is_conformity_validated``). A task may have one rule, several,
or none (``[]`` or ``null``: any value of its type is allowed, with no verdict).

Schemas use a small JSON-schema subset: ``type`` (boolean, integer, number, string), ``const``,
``enum``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``pattern``
(ECMA-262 semantics: ``$`` is the very end), ``minLength``, ``maxLength``; other keywords are
ignored, as JSON-schema does.

This module is also the one home of what a task's value *is*: :func:`effective` (the corrected
value when set, else the analysed one), :func:`effective_values` (the same over frame columns)
and :func:`is_missing` / :func:`none_if_missing` (None, NaN, ``pd.NA`` and ``NaT`` all mean "no
value"). Both the toolkit and the simulator may import it. It never does I/O and never imports
the rest of the package.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

OUTCOME_TYPES = ("Boolean", "Text", "Number")
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def schema_matches(schema: dict[str, Any], value: object) -> bool:
    """Whether ``value`` matches the JSON-schema subset used by verdict rules.

    Supported keywords: ``type`` (boolean, integer, number, string), ``const``, ``enum``,
    ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``pattern``,
    ``minLength``, ``maxLength``. Unknown keywords are ignored, as JSON-schema does.
    """
    kind = schema.get("type")
    if kind == "boolean" and not isinstance(value, bool):
        return False
    if kind == "number" and not is_number(value):
        return False
    if kind == "integer" and not (is_number(value) and float(value).is_integer()):
        return False
    if kind == "string" and not isinstance(value, str):
        return False
    if "const" in schema and not _json_equal(schema["const"], value):
        return False
    if "enum" in schema and not any(_json_equal(v, value) for v in schema["enum"]):
        return False
    if is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
    if isinstance(value, str):
        if "pattern" in schema and _ecma_search(schema["pattern"], value) is None:
            return False
        if "minLength" in schema and len(value) < schema["minLength"]:
            return False
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return False
    return True


@lru_cache(maxsize=256)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a JSON-schema (ECMA-262) pattern: ``$`` is the very end, not before a newline."""
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "]":
            in_class = False
            out.append(ch)
        elif ch == "$" and not in_class:
            out.append(r"\Z")
        else:
            out.append(ch)
    return re.compile("".join(out))


def _ecma_search(pattern: str, value: str) -> re.Match[str] | None:
    return _ecma_pattern(pattern).search(value)


def _json_equal(a: object, b: object) -> bool:
    # JSON equality: true is not 1, 1 equals 1.0
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


class InvalidValue(ValueError):
    """A value that does not fit a task's type; the message says why."""


def coerce_value(outcome_type: str, value: object) -> object:
    """Turn a correction value (JSON value or its string form) into the task's type.

    Booleans take a JSON boolean or ``"true"``/``"false"`` in any case (never 0/1), numbers a
    JSON number or a numeric string, text only strings. Raises :class:`InvalidValue`.
    """
    if value is None:
        raise InvalidValue("This field may not be null.")
    if outcome_type == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InvalidValue(f"Must be a valid boolean, got {value!r}.")
    if outcome_type == "Number":
        if is_number(value):
            number = value
        elif isinstance(value, str):
            if not JSON_NUMBER.fullmatch(value.strip()):
                raise InvalidValue(f"A valid number is required, got {value!r}.")
            number = float(value.strip())
        else:
            raise InvalidValue(f"A valid number is required, got {value!r}.")
        if (isinstance(number, int) and abs(number) > 2**1023) or not math.isfinite(number):
            raise InvalidValue("A finite number within the range of a double is required.")
        if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    if outcome_type == "Text":
        if isinstance(value, str):
            return value
        raise InvalidValue(f"Not a valid string, got {value!r}.")
    raise InvalidValue(f"Unknown outcome type {outcome_type!r}.")


_MISSING_TYPES = frozenset({"NAType", "NaTType"})  # pandas' missing markers, without pandas


def is_missing(value: object) -> bool:
    """Whether ``value`` means "no value": None, a float NaN, ``pd.NA`` or ``pd.NaT``."""
    if value is None:
        return True
    if isinstance(value, float):
        return bool(value != value)
    return type(value).__name__ in _MISSING_TYPES


def none_if_missing(value: Any) -> Any:
    """``value``, or None when it is missing (see :func:`is_missing`)."""
    return None if is_missing(value) else value


def effective(state: Mapping[str, Any] | None) -> Any:
    """A task state's effective value: its ``corrected_value`` when set, else its
    ``analyzed_value``; None for no state."""
    if not state:
        return None
    corrected = state.get("corrected_value")
    return state.get("analyzed_value") if is_missing(corrected) else corrected


def effective_values(corrected: Any, analyzed: Any) -> Any:
    """:func:`effective` over two aligned pandas Series (or an array mask's worth of values):
    the corrected value where set, else the analysed one. Returns a Series of objects."""
    return corrected.astype(object).where(corrected.notna(), analyzed.astype(object))


def json_equal(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` equals ``1.0``."""
    return _json_equal(a, b)


def matching_rule(
    rules: Sequence[Mapping[str, Any]] | None, value: object
) -> Mapping[str, Any] | None:
    """The first rule whose schema matches ``value``, or None."""
    for rule in rules or ():
        if isinstance(rule, Mapping) and schema_matches(rule.get("schema") or {}, value):
            return rule
    return None


def allows(rules: Sequence[Mapping[str, Any]] | None, value: object) -> bool:
    """Whether a task with these rules accepts ``value`` (any value when it has no rules)."""
    return not rules or matching_rule(rules, value) is not None


NO_RULE = "no rule"
"""The verdict of a value that matches none of its task's rules (a verdict of its own)."""


def rule_labels(rules: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """A stable label per rule of a task, in rule order: ``"conform"`` / ``"not conform"``
    (``"conform #2"`` ... when several rules share a conformity; ``"rule #3"`` for a rule that
    states none). Labels rest on the rule's place and conformity, not on its sentence, so a
    reworded sentence in a new app version keeps its label."""
    kinds = []
    for i, rule in enumerate(rules or ()):
        ok = rule.get("is_conformity_validated") if isinstance(rule, Mapping) else None
        kinds.append(
            "conform" if ok is True else "not conform" if ok is False else f"rule #{i + 1}"
        )
    seen: dict[str, int] = {}
    labels = []
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        labels.append(kind if kinds.count(kind) == 1 else f"{kind} #{seen[kind]}")
    return labels


def verdict_label(rules: Sequence[Mapping[str, Any]] | None, value: object) -> str | None:
    """The stable verdict label of ``value`` (see :func:`rule_labels`): that of the first rule
    it matches, :data:`NO_RULE` when it matches none, None when the task has no rules (no
    verdict) or there is no value."""
    if not rules or is_missing(value):
        return None
    labels = rule_labels(rules)
    for label, rule in zip(labels, rules, strict=True):
        if isinstance(rule, Mapping) and schema_matches(rule.get("schema") or {}, value):
            return label
    return NO_RULE
