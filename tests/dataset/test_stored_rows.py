"""The stored rows of a sync: frames built without categoricals (as the sync builds them)
store exactly the rows the categorical frames would, odd values included."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from dfs_analytics import normalize
from dfs_analytics.dataset.arrow import month_of, to_arrow
from dfs_analytics.simulator import Simulator
from tests.helpers import small_work_orders, store_events, store_work_orders

pytestmark = pytest.mark.sim(work_orders=40, seed=12, clustered_errors=True, scope="module")


def _odd(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with category columns the server should not send but might: numbers, a NaN,
    a boolean, an empty string, an unknown key."""
    out = copy.deepcopy(records)
    out[0]["site_id"] = 12
    out[1]["field_engineer_email"] = float("nan")
    out[2]["app_version_id"] = True
    out[3]["field_engineer_name"] = ""
    out[4]["tasks"][0]["name"] = 7
    out[4]["tasks"][1]["task_group_name"] = 2.5
    out[5]["tasks"][0]["state"]["message"] = 3
    out[6]["surprise"] = {"a": [1]}
    return out


def _categories(spec: tuple[normalize.Column, ...]) -> list[str]:
    return [c.name for c in spec if c.kind == "category"]


def _texts(series: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in series.astype(object)]


@pytest.fixture(scope="module")
def records(module_sim: Simulator) -> list[dict[str, Any]]:
    return _odd(list(store_work_orders(module_sim).values())) + small_work_orders()


def test_work_orders_and_tasks_store_the_same_rows(records: list[dict[str, Any]]) -> None:
    for build, table, spec in (
        (normalize.work_orders_frame, "work_orders", normalize.WORK_ORDER_SPEC),
        (normalize.tasks_frame, "tasks", normalize.TASK_SPEC),
    ):
        plain = build(records, categories=False)
        typed = build(records)
        assert list(plain.columns) == list(typed.columns)
        for name in _categories(spec):
            assert isinstance(typed[name].dtype, pd.CategoricalDtype), name
            assert isinstance(plain[name].dtype, pd.StringDtype), name
            assert _texts(plain[name]) == _texts(typed[name]), name
        months = month_of(typed["create_date"])
        stored = to_arrow(table, plain, months)
        assert stored.equals(to_arrow(table, typed, months)), table
        assert stored.num_rows == len(typed) > len(records) - 1
    # the odd values are stored as their texts (as a categorical has always held them)
    frame = normalize.work_orders_frame(records, categories=False)
    wo = to_arrow("work_orders", frame, month_of(frame["create_date"]))
    assert wo.column("site_id")[0].as_py() == "12"
    assert wo.column("app_version_id")[2].as_py() == "True"
    assert wo.column("field_engineer_email")[1].as_py() == "nan"
    assert wo.column("field_engineer_name")[3].as_py() == ""


def test_timelines_store_the_same_rows(module_sim: Simulator) -> None:
    ids = sorted(store_work_orders(module_sim))[:15]
    timelines = {i: store_events(module_sim, i) for i in ids}
    timelines[ids[0]] = [dict(e, user=5) for e in timelines[ids[0]]]
    timelines[ids[1]] = [dict(e, type=None) for e in timelines[ids[1]]]
    plain = normalize.timeline_frame(timelines, categories=False)
    typed = normalize.timeline_frame(timelines)
    for name in _categories(normalize.TIMELINE_SPEC):
        assert _texts(plain[name]) == _texts(typed[name]), name
    months = ["2024-01"] * len(typed)
    stored = to_arrow("timeline", plain, months)
    assert stored.equals(to_arrow("timeline", typed, months))
    assert len(typed) > 15 and set(stored.column("user").to_pylist()) >= {"5"}


def test_a_category_column_of_python_objects_is_stored_as_texts() -> None:
    frame = normalize.tasks_frame(small_work_orders())
    frame["task_name"] = pd.Series(
        ["x", None, "y"] * (len(frame) // 3) + ["x"] * (len(frame) % 3), dtype=object
    )
    stored = to_arrow("tasks", frame, ["none"] * len(frame))
    assert stored.column("task_name").type == pa.string()
    assert stored.column("task_name").to_pylist()[:3] == ["x", None, "y"]


def test_convert_column_without_categories_gives_the_same_texts() -> None:
    values = ["x", 3, None, 2.5, True, "x", float("nan"), ""]
    got = normalize.convert_column(values, "category", categories=False)
    assert isinstance(got.dtype, pd.StringDtype)
    expected = normalize.convert_column(values, "category")
    assert _texts(pd.Series(got)) == _texts(pd.Series(expected))
    assert _texts(pd.Series(got)) == ["x", "3", None, "2.5", "True", "x", "nan", ""]
