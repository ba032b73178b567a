"""The work-order filter vocabulary: its names, dates as the API writes them, validation, and
one canonical form.

Every layer that takes the loaders' filters (the client's query parameters, the sync's
bookkeeping, the dataset's pushdown) reads them here, so a filter means the same everywhere.
This module never sends a request and never reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

from .errors import ConfigurationError
from .periods import expand_created_in

LIST_FILTERS = (
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "reviewed",
    "name",
    "tag",
    "field_engineer_email",
    "ordering",
)
ORDERINGS = ("create_date", "-create_date", "update_date", "-update_date")
# the earliest and latest instants pandas (nanoseconds) can hold, as the API's dates
_MIN_DATE = datetime(1677, 9, 22, tzinfo=timezone.utc)
_MAX_DATE = datetime(2262, 4, 11, tzinfo=timezone.utc)


def to_api_date(value: Any, name: str = "date") -> str:
    """Any date-like value as the API's ISO-8601 UTC form (``2026-03-05T08:52:30Z``).

    Accepts ISO strings (with or without time or offset), ``date``, ``datetime`` and pandas
    ``Timestamp``; naive values are taken as UTC. Raises ConfigurationError otherwise.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            d = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
        except ValueError:
            raise ConfigurationError(
                f"{name}={value!r} is not a date: use ISO-8601 such as '2026-03-01' or "
                "'2026-03-01T08:00:00Z', a datetime.date/datetime, or a pandas Timestamp."
            ) from None
    elif isinstance(value, datetime):  # includes pandas.Timestamp (and NaT)
        if value != value:  # NaT
            raise ConfigurationError(f"{name} is NaT (not a time): give a date, or None.")
        d = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    elif isinstance(value, date):
        d = datetime(value.year, value.month, value.day)
    else:
        raise ConfigurationError(
            f"{name}={value!r} is not a date: use an ISO-8601 string, a date/datetime or a "
            "pandas Timestamp."
        )
    try:
        d = d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)
        in_range = _MIN_DATE <= d <= _MAX_DATE
    except (OverflowError, ValueError):
        in_range = False
    if not in_range:
        raise ConfigurationError(
            f"{name}={value!r} is out of range: dates must fall between 1677-09-22 and "
            "2262-04-11 (what pandas can hold); leave the filter out (None) for no bound."
        )
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{d.microsecond:06d}Z" if d.microsecond else "Z")


def list_params(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Check work-order list filters and turn them into query parameters.

    Raises ConfigurationError naming an unknown filter or a bad value, or a start date after
    its end date (``created_after`` > ``created_before``...), before any request.
    """
    unknown = [k for k in filters if k not in LIST_FILTERS]
    if unknown:
        raise ConfigurationError(
            f"unknown work-order filter(s) {', '.join(map(repr, unknown))}; "
            f"known filters: {', '.join(LIST_FILTERS)}."
        )
    params: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None:
            continue
        if key.endswith(("_after", "_before")):
            params[key] = to_api_date(value, key)
        elif key == "reviewed":
            if not isinstance(value, bool):
                raise ConfigurationError(f"reviewed must be True or False, got {value!r}.")
            params[key] = "true" if value else "false"
        elif key == "tag":
            tags = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(t, str) and t for t in tags):
                raise ConfigurationError(
                    f"tag must be a string or a list of strings, got {value!r}."
                )
            if tags:
                params[key] = sorted(set(tags))
        elif key == "ordering":
            if value not in ORDERINGS:
                raise ConfigurationError(
                    f"ordering must be one of {', '.join(ORDERINGS)}, got {value!r}."
                )
            params[key] = value
        else:
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}.")
            params[key] = value
    for field in ("created", "updated"):
        after, before = params.get(f"{field}_after"), params.get(f"{field}_before")
        if after is not None and before is not None and _instant(after) > _instant(before):
            raise ConfigurationError(
                f"{field}_after ({after}) is after {field}_before ({before}): nothing could "
                "match; swap them?"
            )
    return params


def _instant(api_date: str) -> datetime:
    return datetime.fromisoformat(api_date[:-1] + "+00:00")


def split_filters(filters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the loaders' filters; returns (the list endpoint's query parameters, the
    filters as the dataset evaluates them). ``created_in`` (a period such as ``"2026Q3"``)
    becomes ``created_after`` and ``created_before``; ``ordering`` is not a filter of rows.
    Raises ConfigurationError before any request."""
    filters = expand_created_in(filters)
    params = list_params(filters)
    params.pop("ordering", None)
    local = {k: v for k, v in filters.items() if v is not None and k != "ordering"}
    return params, local


def canonical(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Filters in one form, whatever form they were given in: dates as the API writes them,
    tags as a sorted list of distinct tags; what two equal selections have in common."""
    out: dict[str, Any] = {}
    for k, v in filters.items():
        if k.endswith(("_after", "_before")):
            out[k] = to_api_date(v, k)
        elif k == "tag":
            out[k] = sorted({v} if isinstance(v, str) else set(v))
        else:
            out[k] = v
    return out


def check_work_order_ids(ids: Any) -> list[str]:
    """``work_order_ids`` as a list of distinct ids, checked: a single string (not a list),
    blanks or non-strings raise ConfigurationError saying what to write."""
    if isinstance(ids, (str, bytes)):
        raise ConfigurationError(
            f"work_order_ids must be a list of ids, got the single string {ids!r}: "
            f"write work_order_ids=[{ids!r}]."
        )
    out = []
    for i in ids:
        if not isinstance(i, str) or not i.strip():
            raise ConfigurationError(f"work order ids must be non-empty strings, got {i!r}.")
        out.append(i.strip())
    return list(dict.fromkeys(out))
