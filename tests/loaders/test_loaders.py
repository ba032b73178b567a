"""Loaders against the shared simulator (read only): complete frames, filters on every page.

Clients use ``page_size=7`` so that every listing spans many pages.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.simulator import Simulator
from tests.helpers import delta, store_events, store_work_orders

PAGE = 7


def ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def ordered_ids(wos: list[dict[str, Any]]) -> list[str]:
    """Ids in the loaders' order: oldest first (create_date, then id)."""
    return [w["id"] for w in sorted(wos, key=lambda w: (ts(w["create_date"]), w["id"]))]


@pytest.fixture(scope="module", params=[True, False], ids=["validators", "plain-drf"])
def server(request, dfs_simulator) -> Iterator[Simulator]:
    """The shared simulator, and the same data served as a plain Django REST Framework server
    (no ETag or Last-Modified, never 304, ``http://`` next links)."""
    if request.param:
        yield dfs_simulator
        return
    with Simulator(store=dfs_simulator.store, validators=False, next_scheme="http") as plain:
        yield plain


@pytest.fixture
def paged_client(server, client_for) -> dfs.Client:
    """A client of ``server`` reading pages of PAGE work orders."""
    return client_for(server, page_size=PAGE)


@pytest.fixture(scope="module")
def truth(dfs_simulator) -> dict[str, dict[str, Any]]:
    return store_work_orders(dfs_simulator)


@pytest.fixture(scope="module")
def cold(server, tmp_path_factory) -> Iterator[Callable[[str], pd.DataFrame]]:
    """``cold(name)``: the complete frame ``name`` (``work_orders`` or ``tasks``) as a client of
    ``server`` reading pages of PAGE loads it into an empty cache; loaded once per server for
    the tests that only read it (never change the frame)."""
    frames: dict[str, pd.DataFrame] = {}
    loaders = {"work_orders": dfs.load_work_orders, "tasks": dfs.load_tasks}
    made: list[dfs.Client] = []

    def get(name: str) -> pd.DataFrame:
        if name not in frames:
            cache = tmp_path_factory.mktemp(f"cold-{name}")
            made.append(
                dfs.Client(
                    server.base_url,
                    api_key=server.api_key,
                    cache=cache,
                    page_size=PAGE,
                    progress=False,
                )
            )
            frames[name] = loaders[name](made[-1])
        return frames[name]

    yield get
    for client in made:
        client.close()


# -- completeness -----------------------------------------------------------------------------


def test_load_work_orders_is_complete(cold, truth) -> None:
    df = cold("work_orders")
    assert len(df) == len(truth) == 300
    assert df["work_order_id"].is_unique
    assert list(df["work_order_id"]) == ordered_ids(list(truth.values()))
    assert df.index.equals(pd.RangeIndex(len(df)))
    for row in df.itertuples(index=False):
        wo = truth[row.work_order_id]
        assert row.name == wo["name"]
        assert row.create_date == ts(wo["create_date"])
        assert row.update_date == ts(wo["update_date"])
        if wo["review_date"] is None:
            assert pd.isna(row.review_date) and not row.reviewed
        else:
            assert row.review_date == ts(wo["review_date"]) and row.reviewed
        assert row.progress_score == wo["progress_score"]
        assert row.tags == wo["tags"] and row.types == wo["types"]
        assert row.app_version_id == wo["app_version_id"]
        assert row.n_tasks == len(wo["tasks"])
    # metadata keys become columns, values kept
    keys = {k for wo in truth.values() for k in wo["metadata"]}
    assert {f"metadata.{k}" for k in keys} <= set(df.columns)
    for row in df.to_dict("records"):
        for k in keys:
            expected = truth[row["work_order_id"]]["metadata"].get(k)
            got = row[f"metadata.{k}"]
            assert pd.isna(got) if expected is None else got == expected, (k, got, expected)


def test_load_work_orders_dtypes(cold) -> None:
    df = cold("work_orders")
    for col in ("create_date", "update_date", "review_date"):
        assert isinstance(df[col].dtype, pd.DatetimeTZDtype) and str(df[col].dt.tz) == "UTC"
    for col in ("site_id", "app_version_id", "field_engineer_email"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert df["reviewed"].dtype == "boolean"
    assert df["progress_score"].dtype == "Int64"


def test_load_tasks_is_complete_with_the_same_states(cold, truth) -> None:
    df = cold("tasks")
    order = ordered_ids(list(truth.values()))
    expected = [(wo_id, t) for wo_id in order for t in truth[wo_id]["tasks"]]
    assert len(df) == len(expected)
    assert not df.duplicated(["work_order_id", "task_id"]).any()
    assert list(zip(df["work_order_id"], df["task_id"], strict=True)) == [
        (wo_id, t["id"]) for wo_id, t in expected
    ]
    records = df.to_dict("records")
    for row, (wo_id, t) in zip(records, expected, strict=True):
        state = t["state"]
        assert row["task_name"] == t["name"]
        assert row["task_group_name"] == t["task_group_name"]
        assert row["outcome_type"] == t["outcome_type"]
        assert row["conformity_status"] == t["conformity_status"]
        assert row["work_order_name"] == truth[wo_id]["name"]
        if state is None:
            assert not row["analyzed"]
            assert row["analyzed_value"] is None and row["value"] is None
            assert pd.isna(row["message"]) and pd.isna(row["is_conform"])
            continue
        assert row["analyzed_value"] == state["analyzed_value"]
        assert type(row["analyzed_value"]) is type(state["analyzed_value"])
        assert row["corrected_value"] == state["corrected_value"]
        effective = (
            state["corrected_value"]
            if state["corrected_value"] is not None
            else state["analyzed_value"]
        )
        assert row["value"] == effective
        assert (pd.isna(row["message"]) and state["message"] is None) or row["message"] == state[
            "message"
        ]
        assert (pd.isna(row["is_conform"]) and state["is_conform"] is None) or bool(
            row["is_conform"]
        ) == state["is_conform"]
        assert bool(row["is_corrected"]) == (state["corrected_value"] is not None)
        overridden = state["corrected_value"] is not None and not (
            state["corrected_value"] == state["analyzed_value"]
            and type(state["corrected_value"]) is type(state["analyzed_value"])
        )
        assert bool(row["is_overridden"]) == overridden
        assert row["analysis_id"] == state["analysis_id"]
        assert row["state_update_date"] == ts(state["update_date"])


def test_load_tasks_has_some_corrections_and_overrides(cold) -> None:
    # the seeded data has reviews: the frame must show them, not drop them
    df = cold("tasks")
    assert df["is_corrected"].sum() > 0
    assert df["is_overridden"].sum() > 0
    assert (df["is_corrected"] & ~df["is_overridden"]).sum() > 0
    assert (~df["analyzed"]).sum() > 0


def test_load_timeline_is_complete(server, paged_client, truth) -> None:
    df = dfs.load_timeline(paged_client)
    order = ordered_ids(list(truth.values()))
    assert list(dict.fromkeys(df["work_order_id"])) == order
    for wo_id, rows in df.groupby("work_order_id", sort=False, observed=True):
        events = store_events(server, wo_id)
        assert len(rows) == sum(max(1, len(e["states"])) for e in events)
        assert list(dict.fromkeys(rows["event_id"])) == [e["id"] for e in events]
        assert rows["date"].is_monotonic_increasing
    assert df["date"].iloc[0] == ts(store_events(server, order[0])[0]["date"])
    assert isinstance(df["date"].dtype, pd.DatetimeTZDtype)
    assert isinstance(df["type"].dtype, pd.CategoricalDtype)


def test_load_task_groups_is_complete(server, paged_client) -> None:
    df = dfs.load_task_groups(paged_client)
    current = server.store.app.current.groups
    expected = [(g.id, g.name, t.id, t.name) for g in current for t in g.tasks]
    assert (
        list(
            zip(
                df["task_group_id"],
                df["task_group_name"],
                df["task_id"],
                df["task_name"],
                strict=True,
            )
        )
        == expected
    )
    by_id = {t.id: t for g in current for t in g.tasks}
    for row in df.to_dict("records"):
        assert row["rules"] == by_id[row["task_id"]].public["outcome_validation"]
        assert row["outcome_type"] == by_id[row["task_id"]].outcome_type
    assert isinstance(df["task_group_name"].dtype, pd.CategoricalDtype)


# -- filters ----------------------------------------------------------------------------------


def _has_tags(*tags: str) -> Callable[[dict[str, Any]], bool]:
    return lambda w: set(tags) <= set(w["tags"])


def _created(after: Any = None, before: Any = None) -> Callable[[dict[str, Any]], bool]:
    lo, hi = ts(after), ts(before)
    return lambda w: (
        (lo is None or ts(w["create_date"]) >= lo) and (hi is None or ts(w["create_date"]) < hi)
    )


FILTERS: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ("reviewed", {"reviewed": True}, lambda w: w["review_date"] is not None),
    ("not-reviewed", {"reviewed": False}, lambda w: w["review_date"] is None),
    ("tag", {"tag": "b2b"}, _has_tags("b2b")),
    ("two-tags", {"tag": ["b2b", "urgent"]}, _has_tags("b2b", "urgent")),
    ("after-str", {"created_after": "2026-03-01"}, _created(after="2026-03-01")),
    ("before-date", {"created_before": date(2026, 5, 1)}, _created(before="2026-05-01")),
    (
        "between-timestamps",
        {
            "created_after": pd.Timestamp("2026-04-01T12:00:00+02:00"),
            "created_before": "2026-07-01T00:00:00Z",
        },
        _created(after="2026-04-01T10:00:00Z", before="2026-07-01"),
    ),
    (
        "naive-timestamp",
        {"created_before": pd.Timestamp("2026-02-15 06:00")},
        _created(before="2026-02-15T06:00:00Z"),
    ),
    (
        "updated-after",
        {"updated_after": pd.Timestamp("2026-06-01", tz="UTC")},
        lambda w: ts(w["update_date"]) >= ts("2026-06-01"),
    ),
    (
        "engineer",
        {"field_engineer_email": "camille.martin@example.com"},
        lambda w: w["field_engineer_email"] == "camille.martin@example.com",
    ),
    (
        "combined",
        {"reviewed": True, "tag": "b2b", "created_after": "2026-02-01"},
        lambda w: (
            w["review_date"] is not None
            and "b2b" in w["tags"]
            and ts(w["create_date"]) >= ts("2026-02-01")
        ),
    ),
]


@pytest.mark.parametrize(("_id", "filters", "keep"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filters_are_carried_to_every_page(
    server, paged_client, truth, _id: str, filters: dict[str, Any], keep
) -> None:
    expected = ordered_ids([w for w in truth.values() if keep(w)])
    assert 0 < len(expected) < len(truth)  # a real selection (most span many pages)
    wo = dfs.load_work_orders(paged_client, **filters)
    assert list(wo["work_order_id"]) == expected
    tasks = dfs.load_tasks(paged_client, **filters)
    assert list(dict.fromkeys(tasks["work_order_id"])) == expected
    assert len(tasks) == sum(len(truth[i]["tasks"]) for i in expected)
    timeline = dfs.load_timeline(paged_client, **filters)
    assert list(dict.fromkeys(timeline["work_order_id"])) == expected
    assert len(timeline) == sum(
        max(1, len(e["states"])) for i in expected for e in store_events(server, i)
    )


def test_name_filter_can_match_several_work_orders(paged_client, truth) -> None:
    names = pd.Series([w["name"] for w in truth.values()])
    name = names[names.duplicated()].iloc[0]
    expected = ordered_ids([w for w in truth.values() if w["name"] == name])
    assert len(expected) >= 2
    assert list(dfs.load_work_orders(paged_client, name=name)["work_order_id"]) == expected


def test_a_filter_matching_nothing_gives_empty_typed_frames(paged_client) -> None:
    wo = dfs.load_work_orders(paged_client, name="no-such-work-order")
    tasks = dfs.load_tasks(paged_client, name="no-such-work-order")
    timeline = dfs.load_timeline(paged_client, name="no-such-work-order")
    for frame, spec in (
        (wo, normalize.WORK_ORDER_SPEC),
        (tasks, normalize.TASK_SPEC),
        (timeline, normalize.TIMELINE_SPEC),
    ):
        assert len(frame) == 0
        assert [c.name for c in spec] == list(frame.columns[: len(spec)])
    assert isinstance(tasks["create_date"].dtype, pd.DatetimeTZDtype)
    assert tasks["is_overridden"].dtype == "boolean"


def test_different_filters_do_not_mix(paged_client, truth) -> None:
    reviewed = dfs.load_work_orders(paged_client, reviewed=True)
    everything = dfs.load_work_orders(paged_client)
    again = dfs.load_work_orders(paged_client, reviewed=True)
    assert len(everything) == len(truth)
    assert set(reviewed["work_order_id"]) == {
        i for i, w in truth.items() if w["review_date"] is not None
    }
    pd.testing.assert_frame_equal(reviewed, again)


# -- timeline of given work orders --------------------------------------------------------------


def test_load_timeline_of_given_work_orders(server, paged_client, truth) -> None:
    order = ordered_ids(list(truth.values()))
    ids = [order[200], order[3], order[57]]
    df = dfs.load_timeline(paged_client, work_order_ids=ids)
    assert list(dict.fromkeys(df["work_order_id"])) == ids
    for wo_id in ids:
        events = store_events(server, wo_id)
        rows = df[df["work_order_id"] == wo_id]
        assert len(rows) == sum(max(1, len(e["states"])) for e in events)
        assert set(rows["event_id"]) == {e["id"] for e in events}
    # duplicates are ignored
    again = dfs.load_timeline(paged_client, work_order_ids=[ids[0], ids[0]])
    assert set(again["work_order_id"]) == {ids[0]}


def test_load_timeline_of_an_unknown_work_order_is_not_found(paged_client) -> None:
    with pytest.raises(dfs.NotFoundError):
        dfs.load_timeline(paged_client, work_order_ids=["00000000-0000-0000-0000-000000000000"])


# -- frames are the caller's -------------------------------------------------------------------


def test_changing_a_returned_frame_does_not_change_the_next_load(paged_client) -> None:
    first = dfs.load_tasks(paged_client, tag="pilot")
    expected = first.copy(deep=True)
    first["message"] = None
    first.loc[first.index[:5], "work_order_id"] = "mutated"
    first.loc[first.index[:5], "is_conform"] = pd.NA
    pd.testing.assert_frame_equal(dfs.load_tasks(paged_client, tag="pilot"), expected)


def test_progress_false_prints_nothing(paged_client, capfd) -> None:
    dfs.load_work_orders(paged_client, tag="rework")
    dfs.load_timeline(paged_client, tag="rework", progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.sim(work_orders=8, seed=12)
@pytest.mark.parametrize(
    "filters",
    [
        {"created_after": "0001-01-01"},
        {"updated_before": pd.NaT},
        {"created_after": "2026-03-02", "created_before": "2026-03-01"},
        {"updated_after": "2026-03-01T10:00:00Z", "updated_before": "2026-03-01T09:00:00Z"},
    ],
    ids=repr,
)
def test_loaders_refuse_bad_dates_before_any_request(sim, client_for, filters) -> None:
    client = client_for(sim)
    before = sim.request_counts()
    for load in (dfs.load_work_orders, dfs.load_tasks, dfs.load_timeline, dfs.sync):
        with pytest.raises(dfs.ConfigurationError):
            load(client, **filters)
    assert delta(sim, before) == {}


@pytest.mark.sim(work_orders=8, seed=12)
def test_a_task_name_given_as_name_warns(sim, client_for) -> None:
    client = client_for(sim)
    with pytest.warns(UserWarning, match="work order's own name"):
        frame = dfs.load_tasks(client, name="mesure_puissance")
    assert frame.empty
    with pytest.warns(UserWarning, match="work order's own name"):
        dfs.load_work_orders(client, name="releve-optique")
    some_name = dfs.load_work_orders(client)["name"].iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(dfs.load_work_orders(client, name=some_name)) >= 1
        assert dfs.load_work_orders(client, name="NO_SUCH_WORK_ORDER").empty
