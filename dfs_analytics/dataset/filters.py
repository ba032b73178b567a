"""The loaders' work-order filters (``created_after``, ``reviewed``, ``tag``...) evaluated on
the stored work orders: which filters exist, the part Arrow evaluates while reading (and prunes
partitions with), the part applied to the rows read, and the canonical form of a filter value
(for cache keys and provenance). Dates are parsed by :func:`dfs_analytics.query.to_api_date`,
the parser the client uses, so both sides read a filter alike.

It never opens a table and never speaks HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigurationError
from ..query import LIST_FILTERS, to_api_date
from .arrow import PARTITION

# the loaders' work-order filters, evaluated on the stored work orders (ordering aside)
FILTERS = tuple(f for f in LIST_FILTERS if f != "ordering")


def timestamp(value: Any, name: str) -> pd.Timestamp:
    """A user's date (``value`` of the argument ``name``) as a UTC timestamp; a
    :class:`ConfigurationError` when it is not one."""
    return pd.Timestamp(to_api_date(value, name))  # the one parser of user dates


def check_filters(filters: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigurationError` for a filter name that is not in :data:`FILTERS`."""
    unknown = [k for k in filters if k not in FILTERS]
    if unknown:
        raise ConfigurationError(
            f"unknown filter(s) {', '.join(map(repr, unknown))}; known filters: "
            f"{', '.join(FILTERS)}."
        )


def plain_filter(value: Any) -> Any:
    """A filter value in a canonical JSON-able form (lists sorted, others as text)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, set)):
        return sorted(str(v) for v in value)
    return str(value)


def pushdown(filters: Mapping[str, Any]) -> pc.Expression | None:
    """Filters that Arrow evaluates while reading (and prunes partitions with)."""
    parts: list[pc.Expression] = []
    for key, value in filters.items():
        if key == "created_after":
            ts = timestamp(value, key)
            parts.append(pc.field("create_date") >= pa.scalar(ts, pa.timestamp("us", "UTC")))
            parts.append(pc.field(PARTITION) >= pa.scalar(f"{ts:%Y-%m}"))
        elif key == "created_before":
            ts = timestamp(value, key)
            parts.append(pc.field("create_date") < pa.scalar(ts, pa.timestamp("us", "UTC")))
            parts.append(pc.field(PARTITION) <= pa.scalar(f"{ts:%Y-%m}"))
        elif key == "updated_after":
            ts = timestamp(value, key)
            parts.append(pc.field("update_date") >= pa.scalar(ts, pa.timestamp("us", "UTC")))
        elif key == "updated_before":
            ts = timestamp(value, key)
            parts.append(pc.field("update_date") < pa.scalar(ts, pa.timestamp("us", "UTC")))
        elif key in ("name", "field_engineer_email"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}.")
            parts.append(pc.field(key) == pa.scalar(value))
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def columns_needed(filters: Mapping[str, Any]) -> set[str]:
    """The work-order columns :func:`apply_after_read` needs for ``filters``."""
    need = set()
    if "reviewed" in filters:
        need.add("review_date")
    if "tag" in filters:
        need.add("tags")
    return need


def apply_after_read(frame: pd.DataFrame, filters: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of ``frame`` (stored work orders, value columns as JSON text) that the
    filters Arrow does not evaluate (``reviewed``, ``tag``) select."""
    if "reviewed" in filters:
        want = filters["reviewed"]
        if not isinstance(want, bool):
            raise ConfigurationError(f"reviewed must be True or False, got {want!r}.")
        frame = frame[frame["review_date"].notna() == want]
    if "tag" in filters:
        tags = filters["tag"]
        tags = {tags} if isinstance(tags, str) else set(tags)
        keep = [
            tags <= set(json.loads(t) if t else []) for t in frame["tags"].to_numpy(dtype=object)
        ]
        frame = frame[np.asarray(keep, dtype=bool)]
    return frame
