"""normalize.utc_dates: every shape of date the API may send, read as one UTC microsecond
date each, the same alone as within a column; anything else is NaT, never a guess."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from dfs_analytics import normalize


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text.rstrip("Z"), tz="UTC")


CASES: list[tuple[Any, Any]] = [
    ("2024-01-01T10:00:00.123456789+02:00", T("2024-01-01 08:00:00.123456Z")),
    ("2024-01-01T10:00:00", T("2024-01-01 10:00Z")),  # naive means UTC
    ("2024-01-01", T("2024-01-01Z")),
    ("  2024-01-01T00:00:00Z ", T("2024-01-01Z")),
    (1_700_000_000, T("2023-11-14 22:13:20Z")),  # seconds
    (1_700_000_000_123, T("2023-11-14 22:13:20.123Z")),  # milliseconds
    (1_700_000_000_123_456, T("2023-11-14 22:13:20.123456Z")),  # microseconds
    (1_700_000_000_123_456_789, T("2023-11-14 22:13:20.123456Z")),  # nanoseconds
    ("1700000000", T("2023-11-14 22:13:20Z")),
    ("1700000000.5", T("2023-11-14 22:13:20.5Z")),
    (1.7e9 + 0.25, T("2023-11-14 22:13:20.25Z")),
    (-1, T("1969-12-31 23:59:59Z")),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 678901), T("2024-01-02 03:04:05.678901Z")),
    (
        dt.datetime(2024, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        T("2024-01-02 08:00Z"),
    ),
    (np.datetime64("2024-01-01T00:00:00.123456789"), T("2024-01-01 00:00:00.123456Z")),
    (None, pd.NaT),
    ("", pd.NaT),
    ("garbage", pd.NaT),
    ("2024-13-01", pd.NaT),
    ("99999-01-01", pd.NaT),
    (True, pd.NaT),
    ({"a": 1}, pd.NaT),
    ([1], pd.NaT),
    (float("nan"), pd.NaT),
    (float("inf"), pd.NaT),
    (10**30, pd.NaT),  # past any date
    (pd.NaT, pd.NaT),
]


def _same(got: Any, want: Any) -> bool:
    return (pd.isna(got) and pd.isna(want)) or got == want


def test_every_shape_in_one_column() -> None:
    values = [v for v, _ in CASES] * 2  # repeated values are parsed once, read alike
    got = normalize.utc_dates(values)
    assert str(got.dtype) == "datetime64[us, UTC]"
    assert list(got.index) == list(range(len(values)))
    for (value, want), have in zip(CASES * 2, got, strict=True):
        assert _same(have, want), (value, have, want)


def test_each_value_alone_reads_as_in_a_column() -> None:
    column = normalize.utc_dates([v for v, _ in CASES])
    for n, (value, _) in enumerate(CASES):
        alone = normalize.utc_dates([value])
        assert _same(alone.iloc[0], column.iloc[n]), value


def test_empty_and_all_missing() -> None:
    assert len(normalize.utc_dates([])) == 0
    assert str(normalize.utc_dates([]).dtype) == "datetime64[us, UTC]"
    missing = normalize.utc_dates([None, "", "x"])
    assert missing.isna().all() and str(missing.dtype) == "datetime64[us, UTC]"
    assert normalize.utc_dates(iter(["2024-01-01"])).iloc[0] == T("2024-01-01Z")
