"""Reliability: with faults and throttling on, frames are exactly those of a fault-free load;
reads are retried, and a write whose answer is lost is never re-sent."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import (
    CREATE,
    LIST,
    RETRIEVE,
    TASK_KEYS,
    TIMELINE_KEYS,
    assert_frames_equal,
    assert_no_secret,
    delta,
    store_work_orders,
)

FAULTS = {"fault_rate": 0.1, "throttle_rate": 0.1, "retry_after": 0}


@pytest.mark.parametrize(("data_seed", "fault_seed"), [(1, 101), (2, 202), (3, 303)])
def test_frames_under_faults_equal_a_fault_free_load(
    dfs_simulator_factory, client_for, new_cache, data_seed: int, fault_seed: int
) -> None:
    sim = dfs_simulator_factory(work_orders=150, seed=data_seed, fault_seed=fault_seed)
    clean = client_for(sim, page_size=7, cache=new_cache())
    expected_wo = dfs.load_work_orders(clean)
    expected_tasks = dfs.load_tasks(clean)
    expected_timeline = dfs.load_timeline(clean)
    assert set(expected_wo["work_order_id"]) == set(store_work_orders(sim))

    sim.configure(**FAULTS)
    before = sim.request_counts()
    # each frame from a cold load (a new cache folder): every page and timeline is fetched.
    # About 1 attempt in 5 fails here, and a load sends thousands of requests: with the
    # default 5 retries (one retry layer) one request in ~20,000 would run out, so these
    # clients may retry more (the retry budget still bounds the wait)
    kw = {"page_size": 7, "retries": 12, "backoff_factor": 0.05}
    tasks = dfs.load_tasks(client_for(sim, cache=new_cache(), **kw))
    faulty = client_for(sim, cache=new_cache(), **kw)
    timeline = dfs.load_timeline(faulty)
    work_orders = dfs.load_work_orders(client_for(sim, cache=new_cache(), **kw))
    assert sum(delta(sim, before).values()) > 0

    assert len(tasks) == len(expected_tasks)
    assert not tasks.duplicated(["work_order_id", "task_id"]).any()
    assert len(timeline) == len(expected_timeline)
    assert not timeline.duplicated(["event_id", "task_id"]).any()
    pd.testing.assert_frame_equal(tasks, expected_tasks)
    pd.testing.assert_frame_equal(timeline, expected_timeline)
    pd.testing.assert_frame_equal(work_orders, expected_wo)

    # a refresh under faults changes nothing either
    assert_frames_equal(dfs.load_tasks(faulty), expected_tasks, TASK_KEYS)
    assert_frames_equal(dfs.load_timeline(faulty), expected_timeline, TIMELINE_KEYS)


def test_task_groups_under_faults(dfs_simulator_factory, client_for, new_cache) -> None:
    sim = dfs_simulator_factory(work_orders=10, seed=4, fault_seed=7)
    expected = dfs.load_task_groups(client_for(sim, cache=new_cache()))
    sim.configure(fault_rate=0.3, throttle_rate=0.2, retry_after=0)
    for _ in range(4):
        # half the requests fail: more retries than the default (one retry layer, no nesting)
        got = dfs.load_task_groups(
            client_for(sim, cache=new_cache(), backoff_factor=0.05, retries=10)
        )
        pd.testing.assert_frame_equal(got, expected)


def test_reads_are_retried(dfs_simulator_factory, client_for) -> None:
    sim = dfs_simulator_factory(work_orders=10, seed=4, fault_seed=11)
    client = client_for(sim, backoff_factor=0.01)
    ids = list(store_work_orders(sim))
    sim.configure(fault_rate=0.3)
    before = sim.request_counts()
    for wo_id in ids:
        assert client.get_work_order(wo_id)["id"] == wo_id
        assert client.get_timeline(wo_id)[0]["type"] == "created"
    counted = delta(sim, before)
    assert counted[RETRIEVE] > len(ids)  # some reads were answered only on a retry


def test_lost_create_answer_is_outcome_unknown_and_never_resent(
    dfs_simulator_factory, client_for
) -> None:
    sim = dfs_simulator_factory(
        work_orders=5, seed=4, fault_seed=5, fault_rate=1.0, api_key="sk-rel-" + uuid.uuid4().hex
    )
    client = client_for(sim, backoff_factor=0.01)
    outcomes: list[str] = []
    for _ in range(40):
        name = "lost-" + uuid.uuid4().hex[:8]
        before = sim.request_counts()
        n_before = len(sim.store.work_orders)
        with pytest.raises((dfs.OutcomeUnknownError, dfs.ServerError)) as info:
            client.create_work_order(name)
        assert delta(sim, before) == {CREATE: 1}, "a non-idempotent write was sent again"
        assert len(sim.store.work_orders) - n_before in (0, 1)
        err = info.value
        assert_no_secret(str(err), sim.api_key)
        if isinstance(err, dfs.OutcomeUnknownError):
            assert isinstance(err, dfs.TransportError)
            assert err.method == "POST" and err.path == "/v0.2/work-orders/"
            assert "POST /v0.2/work-orders/" in str(err)
            assert "may or may not" in str(err)
            outcomes.append("unknown")
        else:
            assert err.status >= 500 and err.method == "POST"
            outcomes.append("server")
        if outcomes.count("unknown") >= 3 and "server" in outcomes:
            break
    assert outcomes.count("unknown") >= 3 and "server" in outcomes


def test_other_non_idempotent_writes_are_not_resent(dfs_simulator_factory, client_for) -> None:
    sim = dfs_simulator_factory(work_orders=5, seed=4, fault_seed=9)
    client = client_for(sim, backoff_factor=0.01)
    wo = client.create_work_order("rel-" + uuid.uuid4().hex[:8])
    task = next(t for t in wo["tasks"] if t["name"] == "releve_optique_quality")
    sim.configure(fault_rate=1.0)
    calls = {
        "POST /v0.2/work-orders/{wo_id}/analyze/": lambda: client.analyze(
            wo["id"], "releve-optique", "https://img.example.com/x.jpg"
        ),
        "PATCH /v0.2/work-orders/{wo_id}/metadata/": lambda: client.patch_metadata(
            wo["id"], {"a": 1}
        ),
        "PATCH /v0.2/work-orders/{wo_id}/": lambda: client.update_work_order(wo["id"], tags=["x"]),
        "PATCH /v0.2/work-orders/{wo_id}/tasks/{task_id}/correction/": lambda: client.correct(
            wo["id"], task["id"], True
        ),
    }
    for route, call in calls.items():
        for _ in range(4):
            before = sim.request_counts()
            with pytest.raises((dfs.OutcomeUnknownError, dfs.ServerError)):
                call()
            assert delta(sim, before) == {route: 1}, route


def test_throttled_creates_are_retried_without_doubling(dfs_simulator_factory, client_for) -> None:
    sim = dfs_simulator_factory(
        work_orders=5, seed=4, fault_seed=13, throttle_rate=0.5, retry_after=0
    )
    client = client_for(sim, backoff_factor=0.01, retries=10)
    n_before = len(sim.store.work_orders)
    before = sim.request_counts()
    names = ["thr-" + uuid.uuid4().hex[:8] for _ in range(8)]
    made = [client.create_work_order(name) for name in names]
    assert [w["name"] for w in made] == names
    assert len(sim.store.work_orders) == n_before + 8  # each created exactly once
    assert delta(sim, before)[CREATE] > 8  # 429s (nothing done) were retried


def test_idempotent_writes_are_retried(dfs_simulator_factory, client_for) -> None:
    sim = dfs_simulator_factory(work_orders=5, seed=4, fault_seed=17)
    client = client_for(sim, backoff_factor=0.01)
    wo = client.create_work_order("idem-" + uuid.uuid4().hex[:8])
    sim.configure(fault_rate=0.4)
    for i in range(6):
        assert client.put_metadata(wo["id"], {"step": i}) == {"step": i}
    sim.configure(fault_rate=0)
    assert client.get_work_order(wo["id"])["metadata"] == {"step": 5}


def test_list_walk_under_heavy_faults_is_complete_or_fails_loudly(
    dfs_simulator_factory, client_for, new_cache
) -> None:
    sim = dfs_simulator_factory(work_orders=60, seed=6, fault_seed=23)
    expected = {w for w in store_work_orders(sim)}
    sim.configure(fault_rate=0.3, throttle_rate=0.2, retry_after=0)
    client = client_for(sim, page_size=5, cache=new_cache(), backoff_factor=0.01)
    before = sim.request_counts()
    for _ in range(3):
        try:
            listed = client.list_work_orders()
        except (dfs.ServerError, dfs.TransportError, dfs.ThrottledError):
            continue  # loud, typed: acceptable
        ids = [w["id"] for w in listed]
        assert len(ids) == len(set(ids)) and set(ids) == expected
    assert delta(sim, before)[LIST] > 3 * 12
