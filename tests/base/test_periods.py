"""Named periods (2026Q3, 2026-03, 2026-W10) and the loaders' created_in= filter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.errors import ConfigurationError
from dfs_analytics.periods import expand_created_in, period_bounds


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("2026Q3", utc(2026, 7, 1), utc(2026, 10, 1)),
        ("2026q4", utc(2026, 10, 1), utc(2027, 1, 1)),
        ("2026-Q1", utc(2026, 1, 1), utc(2026, 4, 1)),
        ("2026-03", utc(2026, 3, 1), utc(2026, 4, 1)),
        ("2026-12", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("2026-02", utc(2026, 2, 1), utc(2026, 3, 1)),
        ("2026-03-05", utc(2026, 3, 5), utc(2026, 3, 6)),
        ("2026", utc(2026, 1, 1), utc(2027, 1, 1)),
    ],
)
def test_period_bounds(name: str, start: datetime, end: datetime) -> None:
    assert period_bounds(name) == (start, end)


@pytest.mark.parametrize(("year", "week"), [(2026, 1), (2026, 10), (2020, 53)])
def test_iso_weeks_run_monday_to_monday(year: int, week: int) -> None:
    start, end = period_bounds(f"{year}-W{week:02d}")
    assert start.weekday() == 0 and end - start == timedelta(days=7)
    assert start.date().isocalendar()[:2] == (year, week)
    assert (end - timedelta(days=1)).date().isocalendar()[:2] == (year, week)


@pytest.mark.parametrize("bad", ["2026Q5", "2026-13", "2026-W60", "March", "", "26-03", 2026])
def test_bad_periods_are_refused_with_the_accepted_forms(bad) -> None:
    with pytest.raises(ConfigurationError, match=r"2026Q3|string"):
        period_bounds(bad)


def test_expand_created_in() -> None:
    assert expand_created_in({"created_in": "2026-W10", "reviewed": True}) == {
        "reviewed": True,
        "created_after": "2026-03-02T00:00:00Z",
        "created_before": "2026-03-09T00:00:00Z",
    }
    assert expand_created_in({"created_in": None, "tag": "a"}) == {"tag": "a"}
    for other in ("created_after", "created_before"):
        with pytest.raises(ConfigurationError, match=f"created_in cannot be combined with {other}"):
            expand_created_in({"created_in": "2026Q3", other: "2026-01-01"})


def test_loaders_accept_created_in(dfs_simulator, client_for) -> None:
    client = client_for(dfs_simulator)
    everything = dfs.load_work_orders(client)
    for period in ("2026Q1", "2026-03", "2026-W10"):
        start, end = (pd.Timestamp(t) for t in period_bounds(period))
        wos = dfs.load_work_orders(client, created_in=period)
        expected = everything[
            (everything["create_date"] >= start) & (everything["create_date"] < end)
        ]
        assert len(wos) > 0
        assert sorted(wos["work_order_id"]) == sorted(expected["work_order_id"])
        tasks = dfs.load_tasks(client, created_in=period, columns=["work_order_id", "create_date"])
        assert set(tasks["work_order_id"]) == set(expected["work_order_id"])
    result = dfs.sync(client, created_in="2026Q1")
    assert result.filters["created_after"].startswith("2026-01-01")
    with pytest.raises(ConfigurationError, match="created_in"):
        dfs.load_tasks(client, created_in="2026Q1", created_after="2026-02-01")
    with pytest.raises(ConfigurationError, match="created_in"):
        dfs.load_work_orders(client, created_in="2026Q9")
