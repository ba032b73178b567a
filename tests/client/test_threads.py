"""One client shared by threads: loads in one thread while another sends corrections."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import dfs_analytics as dfs
from tests.helpers import TASK_KEYS, TIMELINE_KEYS, assert_frames_equal

pytestmark = pytest.mark.sim(work_orders=40, seed=17)

ROUNDS = 4


def _corrections(client: dfs.Client, n: int) -> list[tuple[str, str, bool]]:
    """``n`` (work order, task id, new value) flips of analysed Boolean tasks."""
    out = []
    for wo in client.list_work_orders():
        for task in wo["tasks"]:
            state = task.get("state")
            if (
                task["outcome_type"] == "Boolean"
                and state
                and state.get("analyzed_value") is not None
            ):
                current = state["corrected_value"]
                current = state["analyzed_value"] if current is None else current
                out.append((wo["id"], task["id"], not current))
                break
        if len(out) == n:
            break
    return out


def test_loads_and_corrections_in_two_threads_through_one_client(
    sim, client_for, new_cache
) -> None:
    client = client_for(sim, page_size=6, max_workers=4)
    dfs.load_timeline(client)
    todo = _corrections(client, ROUNDS * 3)
    errors: list[BaseException] = []

    def correct(batch: list[tuple[str, str, Any]]) -> None:
        try:
            for wo_id, task_id, value in batch:
                client.correct(wo_id, task_id, value)
        except BaseException as exc:  # reported below
            errors.append(exc)

    for r in range(ROUNDS):
        writer = threading.Thread(target=correct, args=(todo[r * 3 : (r + 1) * 3],))
        writer.start()
        try:
            dfs.load_timeline(client)
            dfs.load_tasks(client)
        finally:
            writer.join(timeout=60)
        assert not errors, errors
    timeline, tasks = dfs.load_timeline(client), dfs.load_tasks(client)
    cold = client_for(sim, cache=new_cache(), page_size=6)
    assert_frames_equal(timeline, dfs.load_timeline(cold), TIMELINE_KEYS)
    assert_frames_equal(tasks, dfs.load_tasks(cold), TASK_KEYS)


def test_listeners_and_counters_under_threads(sim, client_for) -> None:
    client = client_for(sim, cache=None)
    seen: list[str] = []
    lock = threading.Lock()

    def listen(wo_id: str) -> None:
        with lock:
            seen.append(wo_id)

    threads = [threading.Thread(target=client.on_write, args=(listen,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = client.requests_sent
    readers = [threading.Thread(target=client.list_task_groups) for _ in range(8)]
    for t in readers:
        t.start()
    client.invalidate("some-id")
    for t in readers:
        t.join()
    assert len(seen) == 20
    assert client.requests_sent - before == 8
