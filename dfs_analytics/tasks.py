"""A work order's tasks and the values they take: finding a task by name or id, the values its
verdict rules allow, and turning what a user typed into the value to send.

Shared by single corrections, campaigns and the widgets. Never sends anything; what a value
or a verdict is comes from :mod:`~dfs_analytics.rules`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidCorrectionError
from .rules import (
    InvalidValue,
    coerce_value,
    is_missing,
    json_equal,
    matching_rule,
)


def find_task(work_order: Mapping[str, Any], task: str) -> Mapping[str, Any]:
    """The task of a work order given by id or by name; raises InvalidCorrectionError."""
    tasks = work_order.get("tasks") or []
    for t in tasks:
        if t.get("id") == task:
            return t
    named = [t for t in tasks if t.get("name") == task]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InvalidCorrectionError(
            f"work order {work_order.get('id')} has {len(named)} tasks named {task!r}; give the "
            "task id instead."
        )
    names = ", ".join(sorted(str(t.get("name")) for t in tasks))
    raise InvalidCorrectionError(
        f"work order {work_order.get('id')} has no task {task!r} (by id or name); "
        f"its tasks: {names}."
    )


def allowed_values(task: Mapping[str, Any]) -> list[tuple[Any, str | None]]:
    """Values the task's rules name explicitly, with their verdict sentence (for dropdowns).

    Boolean tasks without rules give ``[(True, None), (False, None)]``; rules whose schema is
    a range or a pattern add nothing (any matching value is allowed, see :func:`resolve_value`).
    """
    out: list[tuple[Any, str | None]] = []
    rules = task.get("outcome_validation") or []
    for rule in rules:
        schema = rule.get("schema") or {}
        values = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
        for v in values:
            if not any(json_equal(v, seen) for seen, _ in out):
                out.append((v, rule.get("sentence")))
    if not rules and task.get("outcome_type") == "Boolean":
        out = [(True, None), (False, None)]
    return out


def resolve_value(task: Mapping[str, Any], value: Any) -> Any:
    """The value to send for a correction of ``task``, checked against its type and rules.

    Accepts a Python value, its string form (``"true"``, ``"12.5"``) or a verdict sentence of
    the task's rules (``"OK"``, ``"Non conforme"``) when that sentence names exactly one value.
    Raises InvalidCorrectionError saying what the task accepts.
    """
    outcome_type = task.get("outcome_type") or "Text"
    name = task.get("name")
    rules = task.get("outcome_validation") or []
    if is_missing(value):
        raise InvalidCorrectionError(f"task {name!r}: a correction needs a value (got {value!r}).")
    # a verdict sentence, when it names one value
    if isinstance(value, str) and outcome_type != "Text":
        by_sentence = [v for v, sentence in allowed_values(task) if sentence == value.strip()]
        if len(by_sentence) == 1:
            return by_sentence[0]
    try:
        coerced = coerce_value(outcome_type, value)
    except InvalidValue as exc:
        raise InvalidCorrectionError(
            f"task {name!r} ({outcome_type}): {exc} {_accepted(task)}"
        ) from None
    if rules and matching_rule(rules, coerced) is None:
        if isinstance(value, str) and outcome_type == "Text":
            by_sentence = [v for v, sentence in allowed_values(task) if sentence == value.strip()]
            if len(by_sentence) == 1:
                return by_sentence[0]
        raise InvalidCorrectionError(
            f"task {name!r}: {value!r} matches none of its verdict rules. {_accepted(task)}"
        )
    return coerced


def _accepted(task: Mapping[str, Any]) -> str:
    named = allowed_values(task)
    rules = task.get("outcome_validation") or []
    if named and all(
        ("const" in (r.get("schema") or {}) or "enum" in (r.get("schema") or {})) for r in rules
    ):
        shown = ", ".join(f"{v!r}" + (f" ({s})" if s else "") for v, s in named)
        return f"Allowed: {shown}."
    if rules:
        shown = "; ".join(f"{r.get('sentence')!r}: {json.dumps(r.get('schema'))}" for r in rules)
        return f"Rules: {shown}."
    return f"Any {task.get('outcome_type', '')} value is allowed."
