"""Calendar periods named the way people say them: ``"2026Q3"``, ``"2026-03"``, ``"2026-W10"``.

:func:`period_bounds` turns such a name into its UTC start (inclusive) and end (exclusive);
:func:`expand_created_in` turns the loaders' ``created_in=`` filter into ``created_after`` /
``created_before``. Weeks are ISO weeks (Monday to Monday); days (``"2026-03-05"``) and
years (``"2026"``) are accepted too.

It never reads the clock or the local time zone: every bound is UTC and depends only on the
period's name. It does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .errors import ConfigurationError

_FORMS = "a year (2026), quarter (2026Q3), month (2026-03), ISO week (2026-W10) or day (2026-03-05)"
_QUARTER = re.compile(r"(\d{4})-?Q([1-4])", re.IGNORECASE)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-?W(\d{2})", re.IGNORECASE)
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_YEAR = re.compile(r"(\d{4})")


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _next_month(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``(start, end)`` of a named period as UTC datetimes, start inclusive, end exclusive.

    ``"2026Q3"`` -> 2026-07-01 .. 2026-10-01; ``"2026-03"`` -> 2026-03-01 .. 2026-04-01;
    ``"2026-W10"`` -> Monday 2026-03-02 .. Monday 2026-03-09 (ISO week); ``"2026-03-05"`` one
    day; ``"2026"`` one year. Raises :class:`ConfigurationError` for anything else.
    """
    if not isinstance(period, str):
        raise ConfigurationError(f"created_in must be a string such as '2026Q3', got {period!r}.")
    text = period.strip()
    try:
        if m := _QUARTER.fullmatch(text):
            year, quarter = int(m[1]), int(m[2])
            start = date(year, 3 * quarter - 2, 1)
            end = _next_month(year, 3 * quarter)
        elif m := _WEEK.fullmatch(text):
            start = date.fromisocalendar(int(m[1]), int(m[2]), 1)
            end = start + timedelta(days=7)
        elif m := _DAY.fullmatch(text):
            start = date(int(m[1]), int(m[2]), int(m[3]))
            end = start + timedelta(days=1)
        elif m := _MONTH.fullmatch(text):
            start = date(int(m[1]), int(m[2]), 1)
            end = _next_month(int(m[1]), int(m[2]))
        elif m := _YEAR.fullmatch(text):
            start, end = date(int(m[1]), 1, 1), date(int(m[1]) + 1, 1, 1)
        else:
            raise ValueError("unknown form")
    except ValueError:
        raise ConfigurationError(f"created_in={period!r} is not a period; use {_FORMS}.") from None
    return _utc(start), _utc(end)


def expand_created_in(filters: Mapping[str, Any]) -> dict[str, Any]:
    """``filters`` with ``created_in`` replaced by ``created_after`` (inclusive) and
    ``created_before`` (exclusive) ISO strings; unchanged when ``created_in`` is absent or
    None. Raises :class:`ConfigurationError` when ``created_in`` is combined with
    ``created_after`` or ``created_before`` (which one would win is not obvious)."""
    if filters.get("created_in") is None:
        return {k: v for k, v in filters.items() if k != "created_in"}
    clash = [k for k in ("created_after", "created_before") if filters.get(k) is not None]
    if clash:
        raise ConfigurationError(
            f"created_in cannot be combined with {' or '.join(clash)}; give either a period "
            "(created_in='2026Q3') or dates (created_after=..., created_before=...)."
        )
    start, end = period_bounds(filters["created_in"])
    out = {k: v for k, v in filters.items() if k != "created_in"}
    out["created_after"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    out["created_before"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


__all__ = ["expand_created_in", "period_bounds"]
