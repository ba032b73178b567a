"""The stored form of the dataset's tables: their names, keys and Arrow schemas, and the one
conversion between the loaders' pandas frames and stored Arrow rows (both ways).

Values whose type varies by task (``value``, ``tags``...) are stored as JSON text, and keys the
spec does not know as one JSON object per row (``_extra``); categoricals are decoded on read.
This module never opens a table, never reads or writes a file, and never pickles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import normalize
from ..errors import ConfigurationError
from ..rules import is_missing

SCHEMA_VERSION = 2  # 2: tasks gained ai_verdict, verdict, is_verdict_overridden
TABLES = ("work_orders", "tasks", "timeline", "task_groups")
SPECS: dict[str, tuple[normalize.Column, ...]] = {
    "work_orders": normalize.WORK_ORDER_SPEC,
    "tasks": normalize.TASK_SPEC,
    "timeline": normalize.TIMELINE_SPEC,
    "task_groups": normalize.TASK_GROUP_SPEC,
}
KEYS: dict[str, tuple[str, ...]] = {
    "work_orders": ("work_order_id",),
    "tasks": ("work_order_id", "task_id"),
    "timeline": ("work_order_id", "event_id", "task_id"),
    "task_groups": ("task_group_id", "task_id"),
}
PARTITION = "create_month"
NO_MONTH = "none"  # partition of rows whose work order has no creation date
# stored columns that are not frame columns
POS, EXTRA = "_pos", "_extra"
SYNCED_AT, TIMELINE_AT = "_synced_at", "_timeline_update_date"
_INTERNAL = {PARTITION, POS, EXTRA, SYNCED_AT, TIMELINE_AT}

_ARROW = {
    "string": pa.string(),
    "category": pa.string(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
    "Int64": pa.int64(),
    "float": pa.float64(),
    "object": pa.string(),  # JSON text
}
# the version table: one row per dataset version
SYNCS_SCHEMA = pa.schema(
    [
        ("version", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("schema_version", pa.int64()),
        ("filters", pa.string()),
        ("listed", pa.int64()),
        ("fetched", pa.int64()),
        ("updated", pa.int64()),
        ("deleted", pa.int64()),
        ("timelines", pa.int64()),
        ("requests", pa.int64()),
        ("seconds", pa.float64()),
        ("complete", pa.bool_()),
        ("with_timelines", pa.bool_()),
        *((f"{t}_version", pa.int64()) for t in TABLES),
    ]
)


def arrow_schema(table: str) -> pa.Schema:
    """The stored schema of one table."""
    fields = [pa.field(c.name, _ARROW[c.kind]) for c in SPECS[table]]
    fields.append(pa.field(POS, pa.int64()))
    fields.append(pa.field(EXTRA, pa.string()))
    if table == "work_orders":
        fields.append(pa.field(SYNCED_AT, pa.timestamp("us", tz="UTC")))
        fields.append(pa.field(TIMELINE_AT, pa.timestamp("us", tz="UTC")))
    fields.append(pa.field(PARTITION, pa.string()))
    return pa.schema(fields)


def check_table(table: str) -> None:
    """Raise :class:`ConfigurationError` unless ``table`` is one of :data:`TABLES`."""
    if table not in TABLES:
        raise ConfigurationError(f"unknown table {table!r}; tables: {', '.join(TABLES)}.")


def _json(value: Any) -> str | None:
    """``value`` as compact JSON text; None for a missing value (None, NaN, NA, NaT)."""
    if is_missing(value):
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _json_array(values: Iterable[Any]) -> pa.Array:
    """A column of Python values as JSON text, encoding each distinct scalar once."""
    memo: dict[tuple[type, Any], str | None] = {}
    out: list[str | None] = []
    for v in values:
        if isinstance(v, (str, bool, int, float)) or v is None:
            key = (type(v), v)
            text = memo.get(key, _MISSING)
            if text is _MISSING:
                text = memo[key] = _json(v)
            out.append(text)
        else:
            out.append(_json(v))
    return pa.array(out, type=pa.string())


_MISSING: Any = object()


def _strings(series: pd.Series) -> pa.Array:
    """A column of texts (a categorical of strings, or pandas strings) as Arrow strings, in
    Arrow: a categorical's distinct values are decoded once, not a Python object per row.
    Anything else (Python objects) goes through Python values, missing ones as null."""
    dtype = series.dtype
    texts = isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.CategoricalDtype)
        and dtype.categories.inferred_type in ("string", "empty")
    )
    if texts:
        arr = pa.Array.from_pandas(series)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        return arr.cast(pa.string())
    return pa.array(series.astype(object).where(series.notna(), None), pa.string())


def month_of(dates: pd.Series) -> np.ndarray:
    """``YYYY-MM`` of each UTC date (``none`` where missing): the partition value."""
    out = dates.dt.strftime("%Y-%m").astype(object).to_numpy().copy()
    out[pd.isna(dates).to_numpy()] = NO_MONTH
    return out


def to_arrow(table: str, frame: pd.DataFrame, months: Sequence[str] | np.ndarray) -> pa.Table:
    """One frame of ``table`` (as ``normalize`` builds it, plus the internal columns that are
    present) as an Arrow table of the stored schema. ``months`` is each row's partition."""
    schema = arrow_schema(table)
    spec_names = {c.name for c in SPECS[table]}
    arrays: list[pa.Array] = []
    n = len(frame)
    for col in SPECS[table]:
        series = frame[col.name] if col.name in frame else pd.Series([None] * n, dtype=object)
        if col.kind == "object":
            arrays.append(_json_array(series))
        elif col.kind == "category":
            arrays.append(_strings(series))
        else:
            arrays.append(pa.Array.from_pandas(series).cast(_ARROW[col.kind], safe=False))
    pos = frame[POS] if POS in frame else pd.Series(np.arange(n))
    arrays.append(pa.array(pos.to_numpy(dtype=np.int64), pa.int64()))
    extras = [c for c in frame.columns if c not in spec_names and c not in _INTERNAL]
    if extras:
        rows: list[str | None] = []
        columns = [frame[c].to_numpy(dtype=object) for c in extras]
        for row in zip(*columns, strict=True):
            found = {k: v for k, v in zip(extras, row, strict=True) if not is_missing(v)}
            rows.append(_json(found) if found else None)
        arrays.append(pa.array(rows, pa.string()))
    else:
        arrays.append(pa.nulls(n, pa.string()))
    if table == "work_orders":
        for name in (SYNCED_AT, TIMELINE_AT):
            dates = frame[name] if name in frame else pd.Series([pd.NaT] * n)
            arrays.append(
                pa.Array.from_pandas(pd.to_datetime(dates, utc=True)).cast(
                    schema.field(name).type, safe=False
                )
            )
    arrays.append(pa.array(np.asarray(months, dtype=object), pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema)


def _decode_json(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    """JSON text -> Python objects, parsing each distinct text once (the distinct texts are
    found in Arrow: no Python object per row but the parsed values themselves)."""
    whole = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    enc = whole.dictionary_encode()
    uniques = enc.dictionary.to_pylist()
    parsed = np.empty(len(uniques) + 1, dtype=object)
    for n, text in enumerate(uniques):  # one by one: numpy would broadcast nested lists
        parsed[n] = json.loads(text)
    parsed[-1] = None
    codes = pc.fill_null(enc.indices, len(uniques)).to_numpy(zero_copy_only=False)
    return pd.Series(parsed[codes], dtype=object)


def _categorical(arr: pa.ChunkedArray) -> pd.Categorical:
    """Strings as a categorical with sorted categories (as ``normalize`` builds them),
    hashing each distinct string once, in Arrow."""
    whole = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(whole) == 0 or whole.null_count == len(whole):
        return pd.Categorical([None] * len(whole))
    enc = whole.dictionary_encode()
    words = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    order = np.argsort(words, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    codes = np.where(idx < 0, -1, rank[np.where(idx < 0, 0, idx)])
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(words[order])))


# Arrow type -> the pandas dtype a column of that kind is read as, converted in Arrow (no
# Python object per value); a column stored with another type is converted by ``astype``
_DTYPES: dict[str, tuple[Any, Any]] = {
    "string": (pa.string(), pd.StringDtype()),
    "boolean": (pa.bool_(), pd.BooleanDtype()),
    "Int64": (pa.int64(), pd.Int64Dtype()),
    "float": (pa.float64(), pd.Float64Dtype()),
}
_ASTYPE = {"string": "string", "boolean": "boolean", "Int64": "Int64", "float": "Float64"}
_UTC_MICROS = pd.DatetimeTZDtype("us", "UTC")


def _column(arr: pa.ChunkedArray, kind: str) -> Any:
    if kind == "object":
        return _decode_json(arr)
    if kind == "category":
        return _categorical(arr)
    if kind == "text":  # a categorical read as plain strings (Dask partitions)
        return arr.to_pandas().astype("str")
    if kind == "datetime":
        out = arr.to_pandas()
        return out if out.dtype == _UTC_MICROS else out.astype(_UTC_MICROS)
    if kind in _DTYPES:
        arrow_type, dtype = _DTYPES[kind]
        out = arr.to_pandas(types_mapper={arrow_type: dtype}.get)
        return out if out.dtype == dtype else out.astype(_ASTYPE[kind])
    raise ValueError(kind)


def from_arrow(
    table: str,
    data: pa.Table,
    columns: Sequence[str] | None = None,
    *,
    categories: bool = True,
) -> pd.DataFrame:
    """Stored rows of ``table`` as the loaders' frame: the spec's columns with their dtypes,
    then extra keys in name order (or only ``columns``, in that order)."""
    spec = SPECS[table]
    n = data.num_rows
    out: dict[str, Any] = {}
    for col in spec:
        if columns is not None and col.name not in columns:
            continue
        kind = col.kind if categories or col.kind != "category" else "text"
        if col.name in data.column_names:
            out[col.name] = _column(data.column(col.name), kind)
        else:  # written by an older spec: the column is missing, so it is null
            nulls = [None] * n
            out[col.name] = normalize.convert_column(nulls, "string" if kind == "text" else kind)
            if kind == "text":
                out[col.name] = pd.Series([None] * n, dtype="str")
    if EXTRA in data.column_names:
        raw = data.column(EXTRA)
        if raw.null_count < n:
            found: dict[str, dict[int, Any]] = {}
            for row, text in enumerate(raw.to_pylist()):
                if text is not None:
                    for key, value in json.loads(text).items():
                        found.setdefault(key, {})[row] = value
            for key in sorted(found):
                if key in out or (columns is not None and key not in columns):
                    continue
                values: list[Any] = [None] * n
                for row, value in found[key].items():
                    values[row] = value
                out[key] = normalize.extra_column(values)
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            known = [c.name for c in spec]
            raise ConfigurationError(
                f"unknown column(s) {', '.join(map(repr, missing))} in {table}; "
                f"known: {', '.join(known)}, and any extra key the server sent."
            )
        frame = frame[list(columns)]
    return frame
