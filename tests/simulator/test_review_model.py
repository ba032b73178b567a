"""The simulator's review model, checked through the public client and ``/_sim/``.

Every generated work order has a potential review; ``/_sim/truth`` says what a review of every
work order would give, and ``POST /_sim/review`` carries reviews out. The figures here are
recounted from what ``dfs.load_tasks`` reads back, not taken from the simulator's own code.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import requests

import dfs_analytics as dfs
from dfs_analytics.cli import UsageError, build_parser
from dfs_analytics.simulator import SeedSettings, Simulator
from dfs_analytics.simulator.seed import DEFAULT_ERROR_SPREAD, DEFAULT_SELECTION_STRENGTH

pytestmark = pytest.mark.usefixtures("isolated_env")

Loader = Callable[[Simulator], pd.DataFrame]


# --------------------------------------------------------------------------------------------
# Independent recounts
# --------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    a, b = plain(a), plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def is_true(value: Any) -> bool:
    return value is not pd.NA and value is not None and bool(value) is True


def analysed(tasks: pd.DataFrame) -> pd.DataFrame:
    return tasks[tasks["analyzed"].fillna(False).astype(bool)]


def recount(tasks: pd.DataFrame) -> dict[str, int]:
    """The counts of ``full_review["counts"]``, from a task frame's raw columns."""
    counts = dict.fromkeys(
        (
            "tasks",
            "overridden",
            "tasks_with_rules",
            "verdict_overridden",
            "conformity_tasks",
            "not_conform_final",
            "not_conform_ai",
        ),
        0,
    )
    for row in analysed(tasks).itertuples(index=False):
        counts["tasks"] += 1
        corrected = plain(row.corrected_value)
        if corrected is not None and corrected is not pd.NA:
            counts["overridden"] += not same(corrected, row.analyzed_value)
        if row.is_verdict_overridden is not pd.NA:  # tasks with rules
            counts["tasks_with_rules"] += 1
            counts["verdict_overridden"] += bool(row.is_verdict_overridden)
        if is_true(row.conformity_status):
            counts["conformity_tasks"] += 1
            counts["not_conform_final"] += not is_true(row.is_conform)
            counts["not_conform_ai"] += not is_true(row.ai_is_conform)
    return counts


def recount_by_task(tasks: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {
        str(name): recount(group)
        for name, group in analysed(tasks).groupby("task_name", observed=True)
    }


def reviewed_rate(tasks: pd.DataFrame) -> tuple[float, float, int]:
    """The reviewed-only value override rate, its standard error with work orders as clusters
    (and the finite-population correction of a sample of the site's work orders), and the
    number of reviewed work orders."""
    every = analysed(tasks)
    population = every["work_order_id"].nunique()
    reviewed = every[every["reviewed"].astype(bool)]
    per_wo: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in reviewed.itertuples(index=False):
        corrected = plain(row.corrected_value)
        k = corrected is not None and corrected is not pd.NA
        k = k and not same(corrected, row.analyzed_value)
        per_wo[row.work_order_id][0] += int(k)
        per_wo[row.work_order_id][1] += 1
    m = len(per_wo)
    big_k = sum(k for k, _ in per_wo.values())
    big_n = sum(n for _, n in per_wo.values())
    rate = big_k / big_n
    spread = sum((k - rate * n) ** 2 for k, n in per_wo.values())
    var = (1 - m / population) * m / (m - 1) * spread / big_n**2
    return rate, math.sqrt(var), m


def work_order_ids(tasks: pd.DataFrame) -> list[str]:
    return sorted(tasks["work_order_id"].astype(str).unique())


def sim_wo(sim: Simulator, wo_id: str) -> dict[str, Any]:
    return sim.view(f"work-orders/{wo_id}")


def true_values(sim: Simulator, wo_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Work order id -> its true value per task name, as ``sim_wo(...)["truth"]`` gives it
    (through JSON), read from the store of the simulator in this process: one lock rather
    than one request per work order."""
    with sim.store.lock:
        truths = {wo_id: sim.store.work_orders[wo_id].truth for wo_id in wo_ids}
    return json.loads(json.dumps(truths))


def timeline(sim: Simulator, wo_id: str) -> list[dict[str, Any]]:
    r = requests.get(
        f"{sim.base_url}work-orders/{wo_id}/timeline/",
        params={"page_size": 1000},
        headers=sim.auth_headers,
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["results"]


def retrieve(sim: Simulator, wo_id: str) -> dict[str, Any]:
    r = requests.get(f"{sim.base_url}work-orders/{wo_id}/", headers=sim.auth_headers, timeout=30)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def load(client_for: Callable[..., dfs.Client]) -> Loader:
    def run(sim: Simulator) -> pd.DataFrame:
        return dfs.load_tasks(client_for(sim))

    return run


# --------------------------------------------------------------------------------------------
# The truth of a full review
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [{}, {"selective_review": True, "clustered_errors": True, "review_rate": 0.3}],
    ids=["default", "selective-clustered"],
)
def test_full_review_truth_is_what_reviewing_every_work_order_gives(
    dfs_simulator_factory: Callable[..., Simulator], load: Loader, settings: dict[str, Any]
) -> None:
    sim = dfs_simulator_factory(work_orders=400, seed=4, **settings)
    truth = sim.truth()["full_review"]
    before = load(sim)
    # the work orders reviewed in the generated data already carry out their potential review
    start = truth["reviewed_at_start"]
    assert start["work_orders"] == before.loc[before["reviewed"], "work_order_id"].nunique()
    assert start["counts"] == recount(before[before["reviewed"].astype(bool)])
    assert truth["reviewed_work_orders"] == start["work_orders"] < truth["work_orders"] == 400

    answer = sim.review(work_order_ids(before))
    assert len(answer["reviewed"]) == 400 - start["work_orders"]
    assert len(answer["already_reviewed"]) == start["work_orders"]
    after = load(sim)
    assert after["reviewed"].all()
    counts = recount(after)
    assert counts == truth["counts"]
    assert truth["tasks"] == counts["tasks"] > 1000
    assert truth["override_rate"]["value"] == pytest.approx(counts["overridden"] / counts["tasks"])
    assert truth["override_rate"]["verdict"] == pytest.approx(
        counts["verdict_overridden"] / counts["tasks_with_rules"]
    )
    assert truth["nonconformity_rate"]["final"] == pytest.approx(
        counts["not_conform_final"] / counts["conformity_tasks"]
    )
    assert truth["nonconformity_rate"]["ai"] == pytest.approx(
        counts["not_conform_ai"] / counts["conformity_tasks"]
    )
    by_task = recount_by_task(after)
    assert set(by_task) == set(truth["by_task_name"])
    for name, figures in truth["by_task_name"].items():
        assert figures["counts"] == by_task[name], name
    # the AI's side does not move with a review; the final side does
    assert recount(before)["not_conform_ai"] == counts["not_conform_ai"]
    assert recount(before)["overridden"] < counts["overridden"]
    # reviewing again changes nothing
    ids = work_order_ids(before)
    assert sim.review(ids) == {"reviewed": [], "already_reviewed": ids, "corrections": 0}
    assert recount(load(sim)) == counts
    # the truth does not change when the reviews are carried out (it was drawn up front)
    again = sim.truth()["full_review"]
    assert again["counts"] == truth["counts"]
    assert again["reviewed_work_orders"] == 400


def test_a_reviewed_work_orders_corrections_are_its_potential_review(
    dfs_simulator_factory: Callable[..., Simulator],
) -> None:
    sim = dfs_simulator_factory(work_orders=80, seed=9)
    ids = [wo["id"] for wo in _walk(sim)]
    seen = {"reviewed": 0, "unreviewed": 0}
    for wo_id in ids:
        wo = retrieve(sim, wo_id)
        plan = sim_wo(sim, wo_id)["potential_review"]
        assert plan is not None
        assert plan["reviewed_at_start"] is (wo["review_date"] is not None)
        states = {t["id"]: t["state"] for t in wo["tasks"]}
        assert {t["task_id"] for t in plan["tasks"]} == {k for k, s in states.items() if s}
        for item in plan["tasks"]:
            state = states[item["task_id"]]
            assert same(state["analyzed_value"], item["analyzed_value"])
            if wo["review_date"] is not None:
                assert state["corrected_value"] is None or same(
                    state["corrected_value"], item["corrected_value"]
                )
                assert (state["corrected_value"] is None) is (item["corrected_value"] is None)
            else:
                assert state["corrected_value"] is None
        seen["reviewed" if wo["review_date"] else "unreviewed"] += 1
    assert seen["reviewed"] > 10 and seen["unreviewed"] > 10


def _walk(sim: Simulator) -> list[dict[str, Any]]:
    url: str | None = f"{sim.base_url}work-orders/?page_size=1000"
    items: list[dict[str, Any]] = []
    while url:
        page = requests.get(url, headers=sim.auth_headers, timeout=30).json()
        items += page["results"]
        url = page["next"]
    return items


# --------------------------------------------------------------------------------------------
# POST /_sim/review
# --------------------------------------------------------------------------------------------


def test_review_leaves_what_a_review_leaves_and_is_idempotent(
    dfs_simulator_factory: Callable[..., Simulator],
) -> None:
    sim = dfs_simulator_factory(work_orders=150, seed=2)
    items = _walk(sim)
    plans = {wo["id"]: sim_wo(sim, wo["id"])["potential_review"] for wo in items}
    target_id = next(
        wo["id"]
        for wo in items
        if wo["review_date"] is None
        and any(t["corrected_value"] is not None for t in plans[wo["id"]]["tasks"])
    )
    done_id = next(wo["id"] for wo in items if wo["review_date"] is not None)
    plan = plans[target_id]
    before = retrieve(sim, target_id)
    events_before = timeline(sim, target_id)
    done_before = (retrieve(sim, done_id), timeline(sim, done_id))

    answer = sim.review([target_id, done_id])
    expected = [t for t in plan["tasks"] if t["corrected_value"] is not None]
    assert answer == {
        "reviewed": [target_id],
        "already_reviewed": [done_id],
        "corrections": len(expected),
    }
    after = retrieve(sim, target_id)
    events = timeline(sim, target_id)
    assert events[: len(events_before)] == events_before
    new = events[len(events_before) :]
    assert [e["type"] for e in new] == ["correction"] * len(expected) + ["review"]
    assert {e["user"] for e in new} == {plan["reviewer"]}
    dates = [e["date"] for e in events]
    assert dates == sorted(dates)
    for event, item in zip(new, expected, strict=False):
        (state,) = event["states"]
        assert state["task_id"] == item["task_id"]
        assert same(state["corrected_value"], item["corrected_value"])
    assert after["review_date"] == new[-1]["date"] == after["update_date"]
    assert after["update_date"] > before["update_date"]
    states = {t["id"]: t["state"] for t in after["tasks"]}
    for item in plan["tasks"]:
        corrected = states[item["task_id"]]["corrected_value"]
        if item["corrected_value"] is None:
            assert corrected is None
        else:
            assert same(corrected, item["corrected_value"])
    listed = requests.get(
        f"{sim.base_url}work-orders/",
        params={"reviewed": "true", "page_size": 1000},
        headers=sim.auth_headers,
        timeout=30,
    ).json()["results"]
    assert target_id in {wo["id"] for wo in listed}
    # the generated review was left as it was
    assert (retrieve(sim, done_id), timeline(sim, done_id)) == done_before

    # again: nothing changes
    again = sim.review([target_id, target_id])
    assert again == {"reviewed": [], "already_reviewed": [target_id], "corrections": 0}
    assert retrieve(sim, target_id) == after
    assert timeline(sim, target_id) == events


def test_a_work_order_created_through_the_api_is_reviewed_without_corrections(
    dfs_simulator_factory: Callable[..., Simulator],
) -> None:
    sim = dfs_simulator_factory(work_orders=5, seed=1)
    r = requests.post(
        f"{sim.base_url}work-orders/", json={"name": "new"}, headers=sim.auth_headers, timeout=30
    )
    assert r.status_code == 201
    wo_id = r.json()["id"]
    assert sim_wo(sim, wo_id)["potential_review"] is None
    assert sim.review([wo_id]) == {"reviewed": [wo_id], "already_reviewed": [], "corrections": 0}
    assert [e["type"] for e in timeline(sim, wo_id)] == ["created", "review"]
    assert retrieve(sim, wo_id)["review_date"] is not None
    assert sim.truth()["full_review"]["work_orders"] == 5  # not one of the generated


def test_review_refuses_unknown_ids_and_bad_bodies_and_changes_nothing(
    dfs_simulator_factory: Callable[..., Simulator],
) -> None:
    sim = dfs_simulator_factory(work_orders=40, seed=3)
    known = next(wo["id"] for wo in _walk(sim) if wo["review_date"] is None)
    url = sim.url + "/_sim/review"
    body = {"work_order_ids": [known, "nope-1", "nope-2"]}
    r = requests.post(url, json=body, headers=sim.auth_headers, timeout=30)
    assert r.status_code == 404
    assert r.json()["work_order_ids"] == ["nope-1", "nope-2"]
    assert "nope-1" in r.json()["detail"] and "nope-2" in r.json()["detail"]
    assert retrieve(sim, known)["review_date"] is None
    with pytest.raises(requests.HTTPError) as caught:
        sim.review(["nope-3"])
    assert caught.value.response.status_code == 404
    for bad in (
        {},
        {"work_order_ids": known},
        {"work_order_ids": [1]},
        {"work_order_ids": [known], "extra": 1},
        [known],
    ):
        r = requests.post(url, json=bad, headers=sim.auth_headers, timeout=30)
        assert r.status_code == 400, (bad, r.text)
    with pytest.raises(TypeError):
        sim.review(known)
    # the same key as every /_sim/ route
    for headers in ({}, {"Authorization": "Token wrong"}):
        r = requests.post(url, json={"work_order_ids": [known]}, headers=headers, timeout=30)
        assert r.status_code == 401
    assert retrieve(sim, known)["review_date"] is None


# --------------------------------------------------------------------------------------------
# Selective reviews and clustered errors
# --------------------------------------------------------------------------------------------

SITE = {"work_orders": 1500, "seed": 11, "review_rate": 0.3, "clustered_errors": True}


def test_selective_reviews_bias_the_reviewed_only_rate_and_random_ones_do_not(
    dfs_simulator_factory: Callable[..., Simulator], load: Loader
) -> None:
    gaps = {}
    for mode, selective in (("random", False), ("selective", True)):
        sim = dfs_simulator_factory(selective_review=selective, **SITE)
        full = sim.truth()["full_review"]["override_rate"]["value"]
        rate, se, m = reviewed_rate(load(sim))
        assert 350 < m < 550  # review_rate stays the average in both modes
        gaps[mode] = (rate - full) / se
        print(f"{mode}: reviewed-only {rate:.4f} (se {se:.4f}, {m} work orders), full {full:.4f}")
        sim.stop()
    assert abs(gaps["random"]) < 3, gaps
    assert gaps["selective"] > 5, gaps


def within_work_order_correlation(tasks: pd.DataFrame, sim: Simulator) -> float:
    """The correlation of the AI's errors (analysed value != true value) between two job tasks
    of one work order, each centred on its task x engineer x app version mean."""
    truths = true_values(sim, work_order_ids(tasks))
    rows = []
    for row in analysed(tasks).itertuples(index=False):
        name = str(row.task_name)
        if name.endswith("_quality"):
            continue
        wrong = not same(row.analyzed_value, truths[str(row.work_order_id)][name])
        cell = (name, row.field_engineer_email, row.app_version_id)
        rows.append((str(row.work_order_id), cell, float(wrong)))
    cells: dict[Any, list[float]] = defaultdict(list)
    for _, cell, x in rows:
        cells[cell].append(x)
    mean = {cell: sum(xs) / len(xs) for cell, xs in cells.items()}
    by_wo: dict[str, list[float]] = defaultdict(list)
    for wo_id, cell, x in rows:
        by_wo[wo_id].append(x - mean[cell])
    pairs = sum(len(xs) * (len(xs) - 1) for xs in by_wo.values())
    cross = sum(sum(xs) ** 2 - sum(x * x for x in xs) for xs in by_wo.values())
    variance = sum(x * x for xs in by_wo.values() for x in xs) / len(rows)
    return cross / pairs / variance


def test_clustered_errors_come_together_within_a_work_order(
    dfs_simulator_factory: Callable[..., Simulator], load: Loader
) -> None:
    found = {}
    for mode, clustered in (("independent", False), ("clustered", True)):
        sim = dfs_simulator_factory(work_orders=800, seed=5, clustered_errors=clustered)
        found[mode] = within_work_order_correlation(load(sim), sim)
        print(f"{mode}: within-work-order correlation of AI errors {found[mode]:.4f}")
        sim.stop()
    # over seeds 0-9 at this size: independent 0.001 +- 0.008, clustered 0.087 +- 0.020
    assert abs(found["independent"]) < 0.03, found
    assert found["clustered"] > 0.05, found


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def test_mode_settings_are_checked_and_named() -> None:
    on = SeedSettings.defaults(selective_review=True, clustered_errors=True)
    assert on.selective_review == DEFAULT_SELECTION_STRENGTH
    assert on.clustered_errors == DEFAULT_ERROR_SPREAD
    off = SeedSettings.defaults()
    assert off.selective_review == 0 and off.clustered_errors == 0
    for name, value in (
        ("selective_review", -1),
        ("selective_review", "yes"),
        ("selective_review", math.inf),
        ("clustered_errors", 3),
        ("clustered_errors", math.nan),
    ):
        with pytest.raises(ValueError, match=name):
            Simulator(**{name: value})
    args = build_parser().parse_args(["simulate", "--selective-review", "--clustered-errors"])
    assert (args.selective_review, args.clustered_errors) == (10.0, 1.0)
    args = build_parser().parse_args(["simulate", "--selective-review", "4"])
    assert (args.selective_review, args.clustered_errors) == (4.0, 0.0)
    with pytest.raises(UsageError, match="--clustered-errors"):
        build_parser().parse_args(["simulate", "--clustered-errors", "5"])
