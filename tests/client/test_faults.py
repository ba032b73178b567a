"""Under faults and throttling, frames are exactly those of a fault-free load, and a list
walk is complete or fails loudly. (What is retried and what is never re-sent is in
``test_retry.py``.)"""

from __future__ import annotations

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import (
    LIST,
    TASK_KEYS,
    TIMELINE_KEYS,
    assert_frames_equal,
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
