"""Loads against a rate-limiting simulator complete, are polite, and equal fault-free loads."""

from __future__ import annotations

from pathlib import Path

import dfs_analytics as dfs
from tests.helpers import assert_frames_equal


def test_loads_under_a_rate_limit_equal_a_fault_free_load(
    dfs_simulator_factory, tmp_path: Path
) -> None:
    sim = dfs_simulator_factory(work_orders=60, seed=7)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=tmp_path / "a", progress=False) as c:
        tasks = dfs.load_tasks(c)
        timeline = dfs.load_timeline(c)
    sim.configure(throttle_rps=40.0, latency=0.005)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=tmp_path / "b", progress=False) as c:
        result = dfs.sync(c, timelines=True)
        throttled_tasks = dfs.load_tasks(c)
        throttled_timeline = dfs.load_timeline(c)
        assert result.timelines == 60
        assert result.throttled == c.throttled
        assert 1 <= result.concurrency <= 64 and result.concurrency_limit >= 1
        # polite: the pacer keeps the 429s a small share of what was sent
        assert c.throttled <= 0.15 * c.requests_sent
    assert_frames_equal(tasks, throttled_tasks, ["work_order_id", "task_id"])
    assert_frames_equal(timeline, throttled_timeline, ["work_order_id", "event_id", "task_id"])
