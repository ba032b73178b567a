"""Task values and verdict rules, as the platform defines them.

The first rule of a task's ``outcome_validation`` whose JSON schema (a Draft 2020-12 subset,
``pattern`` run by the ECMA-262 ``regress`` engine) matches a value gives its verdict. Also
the one home of what a value *is*: :func:`effective`, :func:`effective_values`, missing
values (:func:`is_missing`) and JSON equality. The keywords and their meaning:
docs/architecture.md ("Verdict rules").

Both the toolkit and the simulator import it. It never does I/O and never imports the rest
of the package.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeGuard

import regress

OUTCOME_TYPES = ("Boolean", "Text", "Number")
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a JSON number: an int or a float, never a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    """Whether ``value`` is a JSON integer: an int (never a bool) or an integral float."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": is_number,
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
JSON_TYPES = frozenset(_TYPE_CHECKS)
"""The type names of JSON Schema (a ``type`` keyword's name outside them is ignored)."""


def _type_matches(kind: object, value: object) -> bool:
    """Whether ``value`` is of the JSON type ``kind`` (a name or a list of names); names JSON
    Schema does not know are ignored."""
    if isinstance(kind, str):
        check = _TYPE_CHECKS.get(kind)
        return check is None or check(value)
    if isinstance(kind, list):
        checks = [_TYPE_CHECKS[k] for k in kind if isinstance(k, str) and k in _TYPE_CHECKS]
        return not checks or any(check(value) for check in checks)
    return True


def schema_matches(schema: dict[str, Any], value: object) -> bool:
    """Whether ``value`` matches the JSON Schema subset used by verdict rules.

    Supported keywords: ``type`` (a JSON type name or a list of them), ``const``, ``enum``,
    ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``pattern``
    (ECMA-262), ``minLength``, ``maxLength``. Unknown keywords are ignored, as JSON Schema does.
    """
    if "type" in schema and not _type_matches(schema["type"], value):
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
def _ecma_pattern(pattern: str) -> regress.Regex | None:
    """A JSON Schema ``pattern`` compiled as the ECMA-262 expression it is (cached); None, with
    a warning (once per pattern), when it is not one: such a rule matches no value, rather than
    one bad rule failing a whole load."""
    try:
        return regress.Regex(pattern)
    except regress.RegressError as exc:
        warnings.warn(
            f"The rule pattern {pattern!r} is not an ECMA-262 regular expression ({exc}); "
            "the rule matches no value.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def _ecma_search(pattern: str, value: str) -> regress.Match | None:
    """The first match of the ECMA-262 ``pattern`` anywhere in ``value``, or None (also for a
    pattern that does not compile)."""
    compiled = _ecma_pattern(pattern)
    if compiled is None:
        return None
    try:
        return compiled.find(value)
    except UnicodeEncodeError:
        # a lone surrogate (JSON allows "\ud800"): regress takes UTF-8 only, so it stands in
        # as U+FFFD, as in the simulator's judge; only a pattern about surrogates could tell
        clean = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return compiled.find(clean)


_SCALARS = (str, int, float, type(None))
_PLAIN = frozenset(_SCALARS)  # exactly these types (a bool is an int, but not exactly)


def _json_equal(a: object, b: object) -> bool:
    """JSON equality at every depth: true is not 1, 1 equals 1.0, arrays and objects compare
    item by item."""
    if type(a) in _PLAIN and type(b) in _PLAIN:  # the common case, quickly
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, _SCALARS) or isinstance(b, _SCALARS):  # no container equals a scalar
        return a == b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (
            isinstance(a, (list, tuple))
            and isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (
            isinstance(a, Mapping)
            and isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(_json_equal(a[k], b[k]) for k in a)
        )
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
        if not _is_finite_double(number):
            raise InvalidValue("A finite number within the range of a double is required.")
        if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    if outcome_type == "Text":
        if isinstance(value, str):
            return value
        raise InvalidValue(f"Not a valid string, got {value!r}.")
    raise InvalidValue(f"Unknown outcome type {outcome_type!r}.")


def _is_finite_double(number: float) -> bool:
    """Whether ``number`` is finite and within the range of a double (an int that rounds to
    one: up to about 1.8e308)."""
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an int too large for a double
        return False


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


def json_key(value: object) -> Hashable:
    """A hashable key of a task value: two values get equal keys exactly when
    :func:`json_equal` finds them equal (``true`` is not ``1``, ``1`` is ``1.0``, at every
    depth of arrays and objects), and every missing value (:func:`is_missing`) gets the same
    key. For grouping and counting values."""
    if is_missing(value):
        return ("missing",)
    if isinstance(value, bool):
        return ("bool", value)
    if is_number(value):
        return ("number", value)  # 1 == 1.0 and hash(1) == hash(1.0); big ints stay exact
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, (list, tuple)):
        return ("array", tuple(json_key(item) for item in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((k, json_key(v)) for k, v in value.items()))
    return ("other", repr(value))


def json_equal(a: object, b: object) -> bool:
    """JSON equality at every depth: ``true`` is not ``1`` (nor ``[true]`` ``[1]``), ``1``
    equals ``1.0``."""
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
