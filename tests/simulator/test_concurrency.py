"""Many clients at once: parallel page walks, creates, analyses and corrections, over real HTTP.

Sixteen threads, each with its own ``requests.Session``, work against one simulator that adds
20 ms of latency to every request, so that the requests really overlap on the server.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import requests

from dfs_analytics.simulator import Simulator

from .helpers import AUTH

THREADS = 16
CREATES_PER_THREAD = 4
HOT_CORRECTIONS_PER_THREAD = 2
# Enough for every walk to span several pages (of 40 and of 75), which the other threads
# create and correct under
WORK_ORDERS = 150
# generated data lies in the first half of 2020, so work orders created now sort after all of it
# and a walk restricted to ``created_before=END`` is not disturbed by concurrent creates
START, END = "2020-01-01T00:00:00Z", "2020-07-01T00:00:00Z"


def allowed_booleans(task: dict[str, Any]) -> list[bool]:
    """The boolean values a correction of ``task`` may take (its rules' ``const`` values)."""
    rules = task.get("outcome_validation") or []
    if not rules:
        return [True, False]
    return [v for v in (True, False) if any(r["schema"].get("const") is v for r in rules)]


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def effective(state: dict[str, Any]) -> Any:
    if state["corrected_value"] is not None:
        return state["corrected_value"]
    return state["analyzed_value"]


@dataclass
class Log:
    """What one client did and saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    walks: list[tuple[int, list[str]]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    corrections: list[tuple[str, str, Any]] = field(default_factory=list)
    hot_values: list[Any] = field(default_factory=list)


class Client:
    def __init__(self, sim: Simulator, log: Log):
        self.sim = sim
        self.log = log
        self.session = requests.Session()
        self.session.headers.update(AUTH)

    def request(self, method: str, path: str, route: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.sim.base_url + path
        r = self.session.request(method, url, timeout=60, **kwargs)
        self.log.statuses[r.status_code] += 1
        self.log.routes[f"{method} /v0.2/{route}"] += 1
        assert r.status_code < 500, (method, url, r.status_code, r.text[:200])
        return r

    def walk(self, page_size: int) -> None:
        """Follow ``next`` from the first page to the last; record the count and the ids."""
        r = self.request(
            "GET",
            "work-orders/",
            "work-orders/",
            params={"created_before": END, "page_size": page_size},
        )
        assert r.status_code == 200
        page = r.json()
        count, ids = page["count"], [w["id"] for w in page["results"]]
        while page["next"]:
            assert len(page["results"]) == page_size
            r = self.request("GET", page["next"], "work-orders/")
            assert r.status_code == 200
            page = r.json()
            assert page["count"] == count
            ids += [w["id"] for w in page["results"]]
        self.log.walks.append((count, ids))

    def correct(self, wo_id: str, task_id: str, value: Any) -> dict[str, Any]:
        r = self.request(
            "PATCH",
            f"work-orders/{wo_id}/tasks/{task_id}/correction/",
            "work-orders/{wo_id}/tasks/{task_id}/correction/",
            json={"corrected_value": value},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == task_id
        assert body["state"]["corrected_value"] == value
        return body["state"]


@pytest.fixture(scope="module")
def busy_sim():
    with Simulator(work_orders=WORK_ORDERS, seed=21, start=START, end=END) as sim:
        yield sim


def plan(sim: Simulator) -> tuple[list[list[tuple[str, str, bool]]], tuple[str, str]]:
    """Corrections for each thread (distinct tasks), and one task every thread corrects."""
    r = requests.get(
        sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 1000}, timeout=30
    )
    assert r.status_code == 200
    targets, both_ways = [], []
    for wo in r.json()["results"]:
        for task in wo["tasks"]:
            state = task["state"]
            if state is None or task["outcome_type"] != "Boolean":
                continue
            values = allowed_booleans(task)
            flipped = not effective(state)
            targets.append((wo["id"], task["id"], flipped if flipped in values else values[0]))
            if len(values) == 2:
                both_ways.append((wo["id"], task["id"]))
    hot = both_ways[0]
    targets = [t for t in targets if (t[0], t[1]) != hot]
    per_thread = [targets[i::THREADS][:3] for i in range(THREADS)]
    assert all(len(p) == 3 for p in per_thread)
    return per_thread, hot


def run_client(
    sim: Simulator,
    index: int,
    barrier: threading.Barrier,
    corrections: list[tuple[str, str, bool]],
    hot: tuple[str, str],
    groups: list[dict[str, Any]],
) -> Log:
    log = Log()
    client = Client(sim, log)
    barrier.wait(timeout=60)
    client.walk(page_size=40)
    for k in range(CREATES_PER_THREAD):
        name = f"conc-{index}-{k}"
        r = client.request(
            "POST",
            "work-orders/",
            "work-orders/",
            json={"name": name, "tags": ["concurrent", f"client-{index}"]},
        )
        assert r.status_code == 201, r.text
        wo = r.json()
        log.created.append(wo)
        # analyse one group with a good photo, then correct one of its boolean job tasks
        group = groups[(index + k) % len(groups)]
        quality = [t["name"] for t in group["tasks"] if t["name"].endswith("_quality")]
        url = f"https://storage.example.com/concurrent/{name}.jpg?" + "&".join(
            f"dfs-sim:{q}=true" for q in quality
        )
        body = {
            "inputs": [
                {"name": "image_input", "data": {"type": "image", "value": url}},
                {"name": "context", "data": {"type": "text", "value": group["name"]}},
            ]
        }
        r = client.request(
            "POST", f"work-orders/{wo['id']}/analyze/", "work-orders/{wo_id}/analyze/", json=body
        )
        assert r.status_code == 200, r.text
        analysed = r.json()
        job = next(
            t
            for t in analysed["tasks"]
            if t["task_group_name"] == group["name"]
            and t["outcome_type"] == "Boolean"
            and not t["name"].endswith("_quality")
            and t["state"] is not None
        )
        value = allowed_booleans(job)[-1]
        client.correct(wo["id"], job["id"], value)
        log.corrections.append((wo["id"], job["id"], value))
    for wo_id, task_id, value in corrections:
        client.correct(wo_id, task_id, value)
        log.corrections.append((wo_id, task_id, value))
    for j in range(HOT_CORRECTIONS_PER_THREAD):
        value = (index + j) % 2 == 0
        client.correct(*hot, value)
        log.hot_values.append(value)
    client.walk(page_size=75)
    r = client.request(
        "GET", "work-orders/", "work-orders/", params={"tag": f"client-{index}", "page_size": 2}
    )
    assert r.json()["count"] == CREATES_PER_THREAD
    return log


def test_parallel_clients_walk_create_analyse_and_correct(busy_sim):
    sim = busy_sim
    per_thread, hot = plan(sim)
    groups = requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30).json()
    # groups with a boolean job task to correct after the analysis
    groups = [
        g
        for g in groups["results"]
        if any(
            t["outcome_type"] == "Boolean" and not t["name"].endswith("_quality")
            for t in g["tasks"]
        )
    ]
    assert len(groups) >= 2
    hot_timeline = requests.get(
        sim.base_url + f"work-orders/{hot[0]}/timeline/",
        headers=AUTH,
        params={"page_size": 1000},
        timeout=30,
    ).json()
    hot_events_before = sum(
        1
        for e in hot_timeline["results"]
        if e["type"] == "correction" and e["states"][0]["task_id"] == hot[1]
    )
    sim.reset_request_counts()
    sim.configure(latency=0.02)
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [
            pool.submit(run_client, sim, i, barrier, per_thread[i], hot, groups)
            for i in range(THREADS)
        ]
        logs = [f.result(timeout=300) for f in futures]
    sim.configure(latency=0.0)

    # the request counter saw every request, per route
    routes = sum((log.routes for log in logs), Counter())
    assert sim.request_counts() == dict(routes)
    total = requests.get(sim.url + "/_sim/requests", headers=sim.auth_headers, timeout=30).json()[
        "total"
    ]
    assert total == sum(routes.values())

    # no server errors, and in fact no error at all
    statuses = sum((log.statuses for log in logs), Counter())
    assert all(s < 400 for s in statuses), statuses

    # every page walk was complete: unique ids, as many as the count, the same set every time
    walk_sets = set()
    for log in logs:
        assert len(log.walks) == 2
        for count, ids in log.walks:
            assert count == WORK_ORDERS
            assert len(ids) == count
            assert len(set(ids)) == count
            walk_sets.add(frozenset(ids))
    assert len(walk_sets) == 1

    # counts after the concurrent creates
    created = [wo for log in logs for wo in log.created]
    assert len({wo["id"] for wo in created}) == THREADS * CREATES_PER_THREAD
    r = requests.get(
        sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 1000}, timeout=30
    )
    listing = r.json()
    assert listing["count"] == WORK_ORDERS + THREADS * CREATES_PER_THREAD
    assert len({w["id"] for w in listing["results"]}) == listing["count"]
    r = requests.get(
        sim.base_url + "work-orders/", headers=AUTH, params={"tag": "concurrent"}, timeout=30
    )
    assert r.json()["count"] == THREADS * CREATES_PER_THREAD
    assert {w["name"] for w in r.json()["results"]} == {
        f"conc-{i}-{k}" for i in range(THREADS) for k in range(CREATES_PER_THREAD)
    }

    # every correction landed, and the correction counters agree with the calls
    by_id = {w["id"]: w for w in listing["results"]}
    expected = Counter()
    for log in logs:
        for wo_id, task_id, value in log.corrections:
            task = next(t for t in by_id[wo_id]["tasks"] if t["id"] == task_id)
            assert task["state"]["corrected_value"] == value
            expected[(wo_id, task_id)] += 1
    expected[hot] += THREADS * HOT_CORRECTIONS_PER_THREAD
    counts = sim.correction_counts()
    assert counts == dict(expected)
    summary = requests.get(
        sim.url + "/_sim/corrections", headers=sim.auth_headers, timeout=30
    ).json()
    assert summary["total_accepted"] == summary["total_calls"] == sum(expected.values())

    # the task every client corrected: one event per call, the state is the last event's
    timeline = requests.get(
        sim.base_url + f"work-orders/{hot[0]}/timeline/",
        headers=AUTH,
        params={"page_size": 1000},
        timeout=30,
    ).json()["results"]
    hot_events = [
        e for e in timeline if e["type"] == "correction" and e["states"][0]["task_id"] == hot[1]
    ]
    assert len(hot_events) == hot_events_before + THREADS * HOT_CORRECTIONS_PER_THREAD
    hot_task = next(t for t in by_id[hot[0]]["tasks"] if t["id"] == hot[1])
    assert hot_task["state"]["corrected_value"] == hot_events[-1]["states"][0]["corrected_value"]
    dates = [parse_date(e["date"]) for e in timeline]
    assert dates == sorted(dates)


def test_parallel_metadata_merges_lose_no_update(busy_sim):
    sim = busy_sim
    session = requests.Session()
    session.headers.update(AUTH)
    wo = session.get(sim.base_url + "work-orders/", params={"page_size": 1}).json()["results"][0]
    timeline_url = sim.base_url + f"work-orders/{wo['id']}/timeline/"
    events_before = session.get(timeline_url).json()["count"]
    sim.configure(latency=0.02)
    barrier = threading.Barrier(THREADS)

    def merge(index: int) -> list[int]:
        s = requests.Session()
        s.headers.update(AUTH)
        barrier.wait(timeout=60)
        statuses = []
        for j in range(5):
            r = s.patch(
                sim.base_url + f"work-orders/{wo['id']}/metadata/",
                json={f"k{index}_{j}": j, "last_writer": index},
                timeout=60,
            )
            statuses.append(r.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(merge, range(THREADS)))
    sim.configure(latency=0.0)
    assert all(s == 200 for statuses in results for s in statuses), results
    metadata = session.get(sim.base_url + f"work-orders/{wo['id']}/").json()["metadata"]
    for i in range(THREADS):
        for j in range(5):
            assert metadata[f"k{i}_{j}"] == j
    assert metadata["last_writer"] in range(THREADS)
    for key, value in wo["metadata"].items():
        assert metadata[key] == value
    timeline = session.get(timeline_url).json()
    assert timeline["count"] == events_before + THREADS * 5
