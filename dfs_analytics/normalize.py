"""Raw API JSON -> typed pandas DataFrames, through ONE column spec per frame.

Each frame has a spec (:data:`TASK_SPEC`...): its columns, where each comes from, its dtype.
Dates become UTC datetimes, names and verdicts categoricals, flags nullable booleans; task
values stay Python objects. Unknown keys are kept as extra columns (``metadata.<key>``,
``state.<key>``). :func:`task_row` is the one reading of a single task's state as a row.

What a value *is* comes from :mod:`dfs_analytics.rules`. This module never decides those
rules itself, never does I/O (no HTTP, no files, no dataset), never mutates the records it is
given, and never drops a key it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .rules import (
    effective,
    effective_values,
    is_missing,
    is_number,
    json_equal,
    matching_rule,
    verdict_label,
)


@dataclass(frozen=True)
class Column:
    """One column of a frame: its name, its source key (None: derived) and its kind."""

    name: str
    source: str | None
    kind: str  # string | category | datetime | boolean | Int64 | float | object


def C(name: str, source: str | None = None, kind: str = "object") -> Column:
    return Column(name, source if source is not None else name, kind)


def D(name: str, kind: str) -> Column:
    """A derived column."""
    return Column(name, None, kind)


WORK_ORDER_SPEC: tuple[Column, ...] = (
    C("work_order_id", "id", "string"),
    C("name", kind="string"),
    C("site_id", kind="category"),
    C("app_version_id", kind="category"),
    C("create_date", kind="datetime"),
    C("update_date", kind="datetime"),
    C("review_date", kind="datetime"),
    D("reviewed", "boolean"),
    C("progress_score", kind="Int64"),
    C("field_engineer_email", kind="category"),
    C("field_engineer_name", kind="category"),
    C("first_analysis_id", kind="string"),
    C("latest_analysis_id", kind="string"),
    C("tags", kind="object"),
    C("types", kind="object"),
    D("n_tasks", "Int64"),
)
# keys of a work order that are not columns of the work-order frame
_WO_CONSUMED = {c.source for c in WORK_ORDER_SPEC if c.source} | {
    "metadata",
    "tasks",
    "task_groups",
    "inputs",
}

TASK_SPEC: tuple[Column, ...] = (
    D("work_order_id", "string"),
    D("work_order_name", "string"),
    C("task_group_name", kind="category"),
    C("task_group_id", kind="category"),
    C("task_id", "id", "category"),
    C("task_name", "name", "category"),
    C("sentence", kind="category"),
    C("outcome_type", kind="category"),
    C("conformity_status", kind="boolean"),
    C("only_for_dashboard", kind="boolean"),
    C("mandatory", kind="boolean"),
    D("analyzed", "boolean"),
    D("analyzed_value", "object"),
    D("corrected_value", "object"),
    D("value", "object"),
    D("message", "category"),
    D("is_conform", "boolean"),
    D("ai_message", "category"),
    D("ai_is_conform", "boolean"),
    D("ai_verdict", "category"),
    D("verdict", "category"),
    D("is_corrected", "boolean"),
    D("is_overridden", "boolean"),
    D("is_verdict_overridden", "boolean"),
    D("analysis_id", "string"),
    D("state_update_date", "datetime"),
    D("reviewed", "boolean"),
    D("field_engineer_email", "category"),
    D("app_version_id", "category"),
    D("create_date", "datetime"),
    D("update_date", "datetime"),
    D("review_date", "datetime"),
)
_TASK_CONSUMED = {c.source for c in TASK_SPEC if c.source} | {
    "state",
    "outcome_validation",
    "questionnaire_id",
    "outcome_display",
}
_STATE_ORDER = (
    "analyzed_value",
    "corrected_value",
    "message",
    "is_conform",
    "analysis_id",
    "update_date",
)
_STATE_KEYS = set(_STATE_ORDER)

TIMELINE_SPEC: tuple[Column, ...] = (
    D("work_order_id", "string"),
    C("event_id", "id", "string"),
    C("date", kind="datetime"),
    C("type", kind="category"),
    C("user", kind="category"),
    C("analysis_id", kind="string"),
    C("task_group_name", kind="category"),
    D("task_id", "category"),
    D("task_name", "category"),
    D("analyzed_value", "object"),
    D("corrected_value", "object"),
    D("message", "category"),
    D("is_conform", "boolean"),
)
_EVENT_CONSUMED = {c.source for c in TIMELINE_SPEC if c.source} | {"states"}
_EVENT_SOURCES = tuple(c.source for c in TIMELINE_SPEC if c.source)
_EVENT_NAMES = tuple(c.name for c in TIMELINE_SPEC if c.source)
_EVENT_STATE_ORDER = (
    "task_id",
    "task_name",
    "analyzed_value",
    "corrected_value",
    "message",
    "is_conform",
)
_EVENT_STATE_KEYS = set(_EVENT_STATE_ORDER)

TASK_GROUP_SPEC: tuple[Column, ...] = (
    D("task_group_id", "category"),
    D("task_group_name", "category"),
    D("order", "Int64"),
    C("task_id", "id", "category"),
    C("task_name", "name", "category"),
    C("sentence", kind="category"),
    C("outcome_type", kind="category"),
    C("conformity_status", kind="boolean"),
    C("only_for_dashboard", kind="boolean"),
    C("mandatory", kind="boolean"),
    C("outcome_display", kind="category"),
    C("rules", "outcome_validation", "object"),
)
_TG_TASK_CONSUMED = {c.source for c in TASK_GROUP_SPEC if c.source} | {"questionnaire_id"}


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------


# epoch numbers: below 1e11 they are seconds (up to year 5138), then milliseconds, then
# microseconds, then nanoseconds; the factor turns each into microseconds
_EPOCH_UNITS = ((1e11, 10**6), (1e14, 10**3), (1e17, 1))


def _epoch_micros(value: Any) -> int | None:
    """An epoch number (seconds, milliseconds, microseconds or nanoseconds, told apart by
    magnitude) as whole microseconds, rounded; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    size = abs(value)
    for limit, factor in _EPOCH_UNITS:
        if size < limit:
            return value * factor if isinstance(value, int) else round(value * factor)
    return value // 1000 if isinstance(value, int) else round(value / 1000)


_EPOCH_TEXT = re.compile(r"[+-]?\d{9,}(\.\d*)?")  # an epoch number written as a string


def _other_date(value: Any) -> pd.Timestamp | None:
    """A date that is not ISO-8601 text: an epoch number (or its digits as a string), or a
    Python/NumPy/pandas datetime (naive means UTC); None for anything else."""
    if isinstance(value, str):
        if not _EPOCH_TEXT.fullmatch(value.strip()):
            return None
        text = value.strip()
        value = float(text) if "." in text else int(text)
    if isinstance(value, (datetime, np.datetime64)):
        ts = pd.Timestamp(value)
        if pd.isna(ts):
            return None
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.floor("us")
    micros = _epoch_micros(value)
    if micros is None:
        return None
    try:
        return pd.Timestamp(micros, unit="us", tz="UTC")
    except (OverflowError, ValueError):  # out of range: unknown
        return None


def utc_dates(values: Sequence[Any]) -> pd.Series:
    """Dates as the API may send them, as UTC datetimes at microsecond precision (the
    dataset's): ISO-8601 strings with any offset (naive means UTC; digits past the
    microsecond are dropped) and epoch numbers, or their digits as a string (seconds,
    milliseconds, microseconds or nanoseconds, told apart by magnitude). Anything else
    (None, an empty or unparseable string, a boolean, an object, a date out of range) is
    NaT: unknown, never a guess.

    The one reading of a date: the sync compares what the server lists with what the
    dataset holds through it, so the same value always gives the same stored date."""
    values = values if isinstance(values, list) else list(values)
    others = [i for i, v in enumerate(values) if v is not None and type(v) is not str]
    texts = values
    if others:
        texts = list(values)
        for i in others:
            texts[i] = None
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    # each distinct text parsed once, on plain arrays (a Series per step costs more than the
    # parsing itself at a batch's size)
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    micros = np.full(len(codes), _NAT, dtype=np.int64)
    if len(uniques):
        parsed = pd.to_datetime(uniques, utc=True, format="ISO8601", errors="coerce")
        parsed = parsed.floor("us").as_unit("us")
        found = parsed.asi8.copy()
        for u in np.flatnonzero(parsed.isna()).tolist():
            found[u] = _micros(_other_date(uniques[u]))
        known = codes >= 0
        micros[known] = found[codes[known]]
    for i in others:
        micros[i] = _micros(_other_date(values[i]))
    return pd.Series(pd.DatetimeIndex(micros.view("M8[us]")).tz_localize("UTC"))


_NAT = np.iinfo(np.int64).min  # NaT as an int64


def micros(value: Any) -> int | None:
    """A date (a timestamp with a time zone, or naive in UTC) as microseconds since the
    epoch in UTC, the dataset's precision; None when it is missing."""
    if is_missing(value):
        return None
    return int(pd.Timestamp(value).as_unit("us").asm8.astype(np.int64))


def _micros(ts: pd.Timestamp | None) -> int:
    """:func:`micros`, with NaT's int64 for a missing date."""
    found = micros(ts)
    return int(_NAT) if found is None else found


def convert_column(values: Sequence[Any], kind: str, *, categories: bool = True) -> Any:
    """``values`` as a column of ``kind`` (a spec's kind: datetime, category, boolean, Int64,
    Float64, string, object), the one conversion every frame and the dataset use.
    ``categories=False`` gives a category column's same texts as pandas strings (quicker to
    build when the frame is only stored)."""
    if kind == "datetime":
        return utc_dates(values)
    if kind == "category":
        texts = [v if v is None or isinstance(v, str) else str(v) for v in values]
        if not categories:
            return pd.array(pa.array(texts, type=pa.large_string()), dtype="string")
        return categorical(texts)
    if kind == "boolean":
        try:
            return pd.array(values, dtype="boolean")
        except (TypeError, ValueError):
            return pd.array([v if isinstance(v, bool) else None for v in values], dtype="boolean")
    if kind == "Int64":
        return pd.array(
            [int(v) if is_number(v) and not is_missing(v) else None for v in values],
            dtype="Int64",
        )
    if kind == "float":
        return pd.array([float(v) if v is not None else None for v in values], dtype="Float64")
    if kind == "string":
        if type(values) is list:  # strings and None, nearly always: straight into Arrow
            try:
                return pd.array(pa.array(values, type=pa.large_string()), dtype="string")
            except (TypeError, ValueError, pa.ArrowException):
                pass  # numbers, NaN...: pandas' own reading below
        try:
            return pd.array(values, dtype="string")
        except (TypeError, ValueError):
            return pd.array([None if v is None else str(v) for v in values], dtype="string")
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    # a Series, so pandas keeps Python objects (it would infer "str" from an object array)
    return pd.Series(arr, dtype=object)


def categorical(texts: list[str | None]) -> Any:
    """``pd.Categorical(texts)`` (strings and None): the same categories, codes and dtype,
    built 2 to 4x quicker. The distinct values are found by one hash pass, and only they go
    through pandas' own inference and sort (a column of thousands of rows has a few dozen)."""
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    if not len(uniques):  # empty or all missing: pandas' own conventions for the dtype
        return pd.Categorical(texts)
    distinct = pd.Categorical(list(uniques))  # sorted categories, the position of each
    return pd.Categorical.from_codes(
        np.where(codes < 0, -1, distinct.codes.take(codes)), dtype=distinct.dtype
    )


def extra_column(values: list[Any]) -> pd.Series:
    """An unknown key's column: inferred dtype when uniform, else Python objects."""
    s = pd.Series(values, dtype=object)
    if all(isinstance(v, (dict, list)) for v in values if v is not None):
        return s
    return s.infer_objects()


def _build(
    spec: Sequence[Column],
    cols: Mapping[str, Sequence[Any]],
    extras: Mapping[str, list[Any]],
    n: int,
    categories: bool = True,
) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for col in spec:
        values = cols.get(col.name, [None] * n)
        data[col.name] = convert_column(values, col.kind, categories=categories)
    for name in sorted(extras):
        if name not in data:
            data[name] = extra_column(extras[name])
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _rules_of(task: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    rules = task.get("outcome_validation")
    return rules if isinstance(rules, list) else None


class _Extras:
    """Unknown keys, collected sparsely (row -> value) and padded with None at the end."""

    def __init__(self) -> None:
        self.found: dict[str, dict[int, Any]] = {}
        self.n = 0

    def add(self, values: Mapping[str, Any] | None) -> None:
        if values:
            for key, value in values.items():
                self.found.setdefault(key, {})[self.n] = value
        self.n += 1

    def put(self, row: int, key: str, value: Any) -> None:
        self.found.setdefault(key, {})[row] = value

    def columns(self, n: int | None = None) -> dict[str, list[Any]]:
        n = self.n if n is None else n
        out = {}
        for key, rows in self.found.items():
            col: list[Any] = [None] * n
            for r, v in rows.items():
                col[r] = v
            out[key] = col
        return out


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------


def work_orders_frame(
    work_orders: Iterable[Mapping[str, Any]], *, categories: bool = True
) -> pd.DataFrame:
    """One row per work order (columns of WORK_ORDER_SPEC, ``metadata.<key>``, unknown keys).
    ``categories=False``: category columns as pandas strings (the same texts)."""
    wos = list(work_orders)
    cols: dict[str, list[Any]] = {c.name: [] for c in WORK_ORDER_SPEC}
    direct = [(c.name, c.source) for c in WORK_ORDER_SPEC if c.source]
    extras = _Extras()
    for wo in wos:
        for name, source in direct:
            cols[name].append(wo.get(source))
        cols["reviewed"].append(wo.get("review_date") is not None)
        tasks = wo.get("tasks")
        cols["n_tasks"].append(len(tasks) if isinstance(tasks, list) else None)
        row: dict[str, Any] = {}
        metadata = wo.get("metadata")
        if isinstance(metadata, Mapping):
            for key, value in metadata.items():
                row[f"metadata.{key}"] = value
        for key, value in wo.items():
            if key not in _WO_CONSUMED:
                row[key] = value
        extras.add(row)
    for name in ("tags", "types"):
        cols[name] = [v if isinstance(v, list) else ([] if v is None else [v]) for v in cols[name]]
    return _build(WORK_ORDER_SPEC, cols, extras.columns(), len(wos), categories)


_WO_LEVEL = (
    "work_order_id",
    "work_order_name",
    "reviewed",
    "field_engineer_email",
    "app_version_id",
    "create_date",
    "update_date",
    "review_date",
)
_TASK_DEF_LEVEL = tuple(c.name for c in TASK_SPEC if c.source)


def tasks_frame(
    work_orders: Iterable[Mapping[str, Any]], *, categories: bool = True
) -> pd.DataFrame:
    """One row per work order x task, with its state (columns of TASK_SPEC + unknown keys);
    ``categories=False``: category columns as pandas strings (the same texts).

    ``value`` is the corrected value when there is one, else the analysed one;
    ``is_overridden`` is True when a corrected value differs from the analysed one.
    ``ai_verdict`` / ``verdict`` are the stable verdict labels (:func:`rules.verdict_label`:
    the rule's identity within the task of that app version, not its sentence) of the
    analysed and of the final value; ``is_verdict_overridden`` is True when the corrected
    value matches another rule than the analysed one ("no rule" counts as a verdict), False
    for an analysed task whose verdict stood, and missing for tasks without rules (no
    verdict) or never analysed.
    """
    wos = list(work_orders)
    wo_index: list[int] = []
    def_index: list[int] = []
    defs: list[Mapping[str, Any]] = []
    seen_defs: dict[Any, int] = {}
    state_rows: list[tuple[Any, ...]] = []
    extras = _Extras()
    consumed = _TASK_CONSUMED
    get_state = itemgetter(*_STATE_ORDER)
    get_def = itemgetter("id", "name", "task_group_name")
    no_state = (None,) * len(_STATE_ORDER)
    n_state_keys = len(_STATE_ORDER)
    row = 0
    for i, wo in enumerate(wos):
        tasks = wo.get("tasks") or ()
        wo_index.extend([i] * len(tasks))
        for task in tasks:
            try:
                key = get_def(task)
            except KeyError:
                key = (task.get("id"), task.get("name"), task.get("task_group_name"))
            d = seen_defs.get(key)
            if d is None:
                d = seen_defs[key] = len(defs)
                defs.append(task)
            def_index.append(d)
            state = task.get("state")
            if state:
                try:
                    state_rows.append(get_state(state))
                except KeyError:
                    state_rows.append(tuple(state.get(k) for k in _STATE_ORDER))
                if len(state) != n_state_keys or not state.keys() <= _STATE_KEYS:
                    for k in state.keys() - _STATE_KEYS:
                        extras.put(row, f"state.{k}", state[k])
            else:
                state_rows.append(no_state)
            if not task.keys() <= consumed:
                for k in task.keys() - consumed:
                    extras.put(row, k, task[k])
            row += 1
    if state_rows:
        analyzed_v, corrected_v, messages, conform, analysis_ids, state_dates = (
            list(col) for col in zip(*state_rows, strict=True)
        )
    else:
        analyzed_v, corrected_v, messages, conform, analysis_ids, state_dates = (
            [] for _ in range(6)
        )
    n = row
    wo_level = _build(
        tuple(c for c in TASK_SPEC if c.name in _WO_LEVEL),
        {
            "work_order_id": [wo.get("id") for wo in wos],
            "work_order_name": [wo.get("name") for wo in wos],
            "reviewed": [wo.get("review_date") is not None for wo in wos],
            "field_engineer_email": [wo.get("field_engineer_email") for wo in wos],
            "app_version_id": [wo.get("app_version_id") for wo in wos],
            "create_date": [wo.get("create_date") for wo in wos],
            "update_date": [wo.get("update_date") for wo in wos],
            "review_date": [wo.get("review_date") for wo in wos],
        },
        {},
        len(wos),
        categories,
    )
    def_level = _build(
        tuple(c for c in TASK_SPEC if c.name in _TASK_DEF_LEVEL),
        {c.name: [t.get(c.source) for t in defs] for c in TASK_SPEC if c.source},
        {},
        len(defs),
        categories,
    )
    by_wo = np.asarray(wo_index, dtype=np.intp)
    by_def = np.asarray(def_index, dtype=np.intp)
    av = convert_column(analyzed_v, "object")
    cv = convert_column(corrected_v, "object")
    has_a = av.notna().to_numpy()
    has_c = cv.notna().to_numpy()
    values = effective_values(cv, av)
    final_v = values.to_numpy()
    overridden = has_c.copy()
    for r in np.flatnonzero(has_c):
        overridden[r] = not json_equal(corrected_v[r], analyzed_v[r])
    # the AI's own verdict: the task's rule that its analysed value matches
    ai_message: list[Any] = [None] * n
    ai_conform: list[Any] = [None] * n
    memo: dict[tuple[int, str, str], tuple[Any, Any]] = {}
    for r in np.flatnonzero(has_a):
        value = analyzed_v[r]
        key = (def_index[r], type(value).__name__, repr(value))
        verdict = memo.get(key)
        if verdict is None:
            rule = matching_rule(_rules_of(defs[def_index[r]]), value)
            verdict = memo[key] = (
                (rule.get("sentence"), rule.get("is_conformity_validated"))
                if rule
                else (None, None)
            )
        ai_message[r], ai_conform[r] = verdict
    # stable verdict labels, compared by rule identity within the task (same app version)
    ai_label: list[Any] = [None] * n
    final_label: list[Any] = [None] * n
    verdict_flip: list[Any] = [None] * n
    labels: dict[tuple[int, str, str], Any] = {}

    def label_of(r: int, value: Any) -> Any:
        key = (def_index[r], type(value).__name__, repr(value))
        if key not in labels:
            labels[key] = verdict_label(_rules_of(defs[def_index[r]]), value)
        return labels[key]

    for r in np.flatnonzero(has_a | has_c).tolist():
        if not _rules_of(defs[def_index[r]]):
            continue
        final_label[r] = label_of(r, final_v[r])
        if has_a[r]:
            ai_label[r] = label_of(r, analyzed_v[r])
            verdict_flip[r] = bool(has_c[r]) and final_label[r] != ai_label[r]
    derived = {
        "analyzed": pd.array(has_a, dtype="boolean"),
        "analyzed_value": av,
        "corrected_value": cv,
        "value": values,
        "message": convert_column(messages, "category", categories=categories),
        "is_conform": convert_column(conform, "boolean"),
        "ai_message": convert_column(ai_message, "category", categories=categories),
        "ai_is_conform": convert_column(ai_conform, "boolean"),
        "ai_verdict": convert_column(ai_label, "category", categories=categories),
        "verdict": convert_column(final_label, "category", categories=categories),
        "is_corrected": pd.array(has_c, dtype="boolean"),
        "is_overridden": pd.array(overridden, dtype="boolean"),
        "is_verdict_overridden": pd.array(verdict_flip, dtype="boolean"),
        "analysis_id": convert_column(analysis_ids, "string"),
        "state_update_date": convert_column(state_dates, "datetime"),
    }
    data: dict[str, Any] = {}
    for col in TASK_SPEC:
        if col.name in _WO_LEVEL:
            data[col.name] = wo_level[col.name].array.take(by_wo)
        elif col.name in _TASK_DEF_LEVEL:
            data[col.name] = def_level[col.name].array.take(by_def)
        else:
            data[col.name] = derived[col.name]
    for name, values in sorted(extras.columns(n).items()):
        if name not in data:
            data[name] = extra_column(values)
    return pd.DataFrame(data, index=pd.RangeIndex(n))


TASK_ROW_COLUMNS = (
    "work_order_id",
    "task_group_name",
    "task_id",
    "task_name",
    "outcome_type",
    "analyzed_value",
    "corrected_value",
    "value",
    "message",
    "is_conform",
)
"""The keys of :func:`task_row`: columns of :data:`TASK_SPEC`, named as in the tasks frame."""
# where task_row reads its task-level keys: TASK_SPEC's sources (``task_id`` is ``id``...)
_ROW_SOURCES = {c.name: c.source for c in TASK_SPEC if c.source and c.name in TASK_ROW_COLUMNS}


def task_row(work_order_id: str | None, task: Mapping[str, Any] | None) -> dict[str, Any]:
    """One task of a work order, as the API sends it, as a row of the tasks frame would read
    it, in plain Python values (no dtypes): a dict of :data:`TASK_ROW_COLUMNS`. ``value`` is
    the effective value (:func:`rules.effective`); a task without state (or ``task=None``)
    gives None state columns. For the one task a view or an action shows, where
    :func:`tasks_frame` builds whole frames."""
    task = task or {}
    state = task.get("state") or {}
    row = {name: task.get(source) for name, source in _ROW_SOURCES.items()}
    row.update({key: state.get(key) for key in _STATE_ORDER if key in TASK_ROW_COLUMNS})
    row.update(work_order_id=work_order_id, value=effective(state))
    return {name: row[name] for name in TASK_ROW_COLUMNS}


def timeline_frame(
    timelines: Mapping[str, Sequence[Mapping[str, Any]]], *, categories: bool = True
) -> pd.DataFrame:
    """One row per event x changed task state (columns of TIMELINE_SPEC + unknown keys).

    ``timelines`` maps a work order id to its events. Events without states keep one row with
    null task columns. ``categories=False``: category columns as pandas strings (the same
    texts).
    """
    wo_ids: list[Any] = []
    event_rows: list[tuple[Any, ...]] = []  # the event's columns, once per row
    state_rows: list[tuple[Any, ...]] = []
    extras = _Extras()
    get_event = itemgetter(*_EVENT_SOURCES)
    get_state = itemgetter(*_EVENT_STATE_ORDER)
    no_state = (None,) * len(_EVENT_STATE_ORDER)
    row = 0
    for wo_id, events in timelines.items():
        for event in events:
            values = _values(event, get_event, _EVENT_SOURCES)
            states = event.get("states") or [None]
            base_extra = [(k, v) for k, v in event.items() if k not in _EVENT_CONSUMED]
            for state in states:
                wo_ids.append(wo_id)
                event_rows.append(values)
                for key, value in base_extra:
                    extras.put(row, key, value)
                if isinstance(state, Mapping):
                    state_rows.append(_values(state, get_state, _EVENT_STATE_ORDER))
                    if not state.keys() <= _EVENT_STATE_KEYS:
                        for key, value in state.items():
                            if key not in _EVENT_STATE_KEYS:
                                extras.put(row, f"state.{key}", value)
                else:
                    state_rows.append(no_state)
                row += 1
    cols: dict[str, list[Any]] = {"work_order_id": wo_ids}
    cols.update(_columns(_EVENT_NAMES, event_rows))
    cols.update(_columns(_EVENT_STATE_ORDER, state_rows))
    return _build(TIMELINE_SPEC, cols, extras.columns(row), row, categories)


def _values(
    record: Mapping[str, Any], get: Callable[[Any], tuple[Any, ...]], keys: Sequence[str]
) -> tuple[Any, ...]:
    """``tuple(record.get(k) for k in keys)``, through ``get`` (their itemgetter) for a
    plain dict that has them all."""
    if type(record) is dict:
        try:
            return get(record)
        except KeyError:
            pass
    return tuple(record.get(k) for k in keys)


def _columns(names: Sequence[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows of values (one per name) as one list per name."""
    if not rows:
        return {name: [] for name in names}
    return {name: list(col) for name, col in zip(names, zip(*rows, strict=True), strict=True)}


def task_groups_frame(task_groups: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per task of each task group (columns of TASK_GROUP_SPEC + unknown keys)."""
    cols: dict[str, list[Any]] = {c.name: [] for c in TASK_GROUP_SPEC}
    direct = [(c.name, c.source) for c in TASK_GROUP_SPEC if c.source]
    extras = _Extras()
    for group in task_groups:
        group_extra = {
            f"task_group.{k}": v
            for k, v in group.items()
            if k not in ("id", "name", "order", "tasks")
        }
        for task in group.get("tasks") or ():
            cols["task_group_id"].append(group.get("id"))
            cols["task_group_name"].append(group.get("name"))
            cols["order"].append(group.get("order"))
            for name, source in direct:
                cols[name].append(task.get(source))
            row = dict(group_extra)
            for key, value in task.items():
                if key not in _TG_TASK_CONSUMED:
                    row[key] = value
            extras.add(row)
    n = len(cols["task_id"])
    return _build(TASK_GROUP_SPEC, cols, extras.columns(), n)
