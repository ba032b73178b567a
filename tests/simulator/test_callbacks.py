"""Analyses with a callback: the simulator POSTs the analysed work order to a loopback receiver.

The receiver is a real ``http.server`` on a free loopback port, in a thread; it can be told to
fail its first calls, to see the simulator retry (up to 3 times, with backoff).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from dfs_analytics.simulator import Simulator

from .helpers import AUTH

pytestmark = pytest.mark.sim(work_orders=20, seed=31, callback_delay=0.01)


class Receiver:
    """A loopback HTTP server recording the POSTs it gets; the first ``fail`` answer 500."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.cond:
                    receiver.calls.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "raw": raw,
                        }
                    )
                    failing = len(receiver.calls) <= receiver.fail
                    receiver.cond.notify_all()
                status = 500 if failing else 200
                body = b"receiver failure" if failing else b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/analysis"

    def wait_for(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, timeout=timeout), (
                f"expected {n} callback calls, got {len(self.calls)}"
            )
            return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(fail: int = 0) -> Receiver:
        r = Receiver(fail)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def new_work_order(sim: Simulator, name: str) -> dict[str, Any]:
    r = requests.post(sim.base_url + "work-orders/", headers=AUTH, json={"name": name}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def pick_group(wo: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """A task group of ``wo`` with a boolean job task; the group, that task, its quality tasks."""
    for group in wo["task_groups"]:
        tasks = [t for t in wo["tasks"] if t["task_group_id"] == group["id"]]
        quality = [t["name"] for t in tasks if t["name"].endswith("_quality")]
        job = [
            t
            for t in tasks
            if t["outcome_type"] == "Boolean"
            and not t["name"].endswith("_quality")
            and len(t["outcome_validation"] or []) == 2
        ]
        if job and quality:
            return group, job[0], quality
    raise AssertionError("no task group with a two-verdict boolean job task")


def analyze_body(group: str, forced: dict[str, Any], callback_url: str | None) -> dict[str, Any]:
    query = "&".join(f"dfs-sim:{k}={json.dumps(v)}" for k, v in forced.items())
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "image_input",
                "data": {
                    "type": "image",
                    "value": f"https://storage.example.com/cb/{uuid.uuid4()}.jpg?{query}",
                },
            },
            {"name": "context", "data": {"type": "text", "value": group}},
        ],
        "metadata": {"source": "callback-test"},
    }
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def start_callback_analysis(
    sim: Simulator, wo: dict[str, Any], callback_url: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    group, job, quality = pick_group(wo)
    forced = {q: True for q in quality}
    forced[job["name"]] = False
    r = requests.post(
        sim.base_url + f"work-orders/{wo['id']}/analyze/callback/",
        headers=AUTH,
        json=analyze_body(group["name"], forced, callback_url),
        timeout=30,
    )
    assert r.status_code == 202, r.text
    analysis_id = r.json()["analysis_id"]
    uuid.UUID(analysis_id)
    return analysis_id, group, job


def callback_record(sim: Simulator, analysis_id: str, timeout: float = 20) -> dict[str, Any]:
    """The delivery record of one callback, once the simulator is done with it."""
    deadline = time.monotonic() + timeout
    while True:
        rows = requests.get(
            sim.url + "/_sim/callbacks", headers=sim.auth_headers, timeout=30
        ).json()["results"]
        row = next((r for r in rows if r["analysis_id"] == analysis_id), None)
        if row is not None and "delivered" in row:
            return row
        assert time.monotonic() < deadline, f"callback {analysis_id} not finished: {row}"
        time.sleep(0.05)


def test_callback_posts_the_analysed_work_order(sim, receiver_factory):
    receiver = receiver_factory()
    wo = new_work_order(sim, "callback-1")
    assert all(t["state"] is None for t in wo["tasks"])
    analysis_id, group, job = start_callback_analysis(sim, wo, receiver.url())

    (call,) = receiver.wait_for(1)
    assert call["path"] == "/hooks/analysis"
    assert call["content_type"].split(";")[0].strip() == "application/json"
    payload = json.loads(call["raw"])
    assert payload["analysis_id"] == analysis_id
    assert payload["id"] == wo["id"]
    assert payload["latest_analysis_id"] == analysis_id
    assert payload["first_analysis_id"] == analysis_id
    assert payload["metadata"]["source"] == "callback-test"

    # the new states: every task of the analysed group, none elsewhere
    for task in payload["tasks"]:
        if task["task_group_id"] == group["id"]:
            state = task["state"]
            assert state is not None, task["name"]
            assert state["analysis_id"] == analysis_id
            assert state["corrected_value"] is None
        else:
            assert task["state"] is None, task["name"]
    job_state = next(t["state"] for t in payload["tasks"] if t["id"] == job["id"])
    assert job_state["analyzed_value"] is False
    assert job_state["is_conform"] is False
    false_rule = next(r for r in job["outcome_validation"] if r["schema"].get("const") is False)
    assert job_state["message"] == false_rule["sentence"]

    # the same work order as the API now shows
    r = requests.get(sim.base_url + f"work-orders/{wo['id']}/", headers=AUTH, timeout=30)
    now_wo = r.json()
    assert {t["id"]: t["state"] for t in now_wo["tasks"]} == {
        t["id"]: t["state"] for t in payload["tasks"]
    }
    assert now_wo["latest_analysis_id"] == analysis_id
    timeline = requests.get(
        sim.base_url + f"work-orders/{wo['id']}/timeline/", headers=AUTH, timeout=30
    ).json()["results"]
    (event,) = [e for e in timeline if e["type"] == "analysis"]
    assert event["analysis_id"] == analysis_id
    assert event["task_group_name"] == group["name"]

    record = callback_record(sim, analysis_id)
    assert record["url"] == receiver.url()
    assert record["attempts"] == 1
    assert record["status"] == 200
    assert record["delivered"] is True
    assert len(receiver.calls) == 1


def test_callback_is_retried_until_the_receiver_accepts(sim, receiver_factory):
    receiver = receiver_factory(fail=2)
    wo = new_work_order(sim, "callback-2")
    analysis_id, _, _ = start_callback_analysis(sim, wo, receiver.url())
    calls = receiver.wait_for(3)
    # the same payload every time
    assert len({c["raw"] for c in calls}) == 1
    payload = json.loads(calls[-1]["raw"])
    assert payload["analysis_id"] == analysis_id
    assert payload["id"] == wo["id"]
    record = callback_record(sim, analysis_id)
    assert record["attempts"] == 3
    assert record["status"] == 200
    assert record["delivered"] is True
    assert len(receiver.calls) == 3
    # the analysis was run once, whatever the number of deliveries
    timeline = requests.get(
        sim.base_url + f"work-orders/{wo['id']}/timeline/", headers=AUTH, timeout=30
    ).json()["results"]
    assert [e["analysis_id"] for e in timeline if e["type"] == "analysis"] == [analysis_id]


def test_callback_gives_up_after_three_retries(sim, receiver_factory):
    receiver = receiver_factory(fail=10**6)
    wo = new_work_order(sim, "callback-3")
    analysis_id, _, _ = start_callback_analysis(sim, wo, receiver.url())
    record = callback_record(sim, analysis_id, timeout=30)
    assert record["delivered"] is False
    assert record["attempts"] == 4  # one call and three retries
    assert record["status"] == 500
    assert len(receiver.calls) == 4
    assert len({c["raw"] for c in receiver.calls}) == 1


def test_callback_to_a_closed_port_is_recorded_as_undelivered(sim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wo = new_work_order(sim, "callback-4")
    analysis_id, _, _ = start_callback_analysis(sim, wo, f"http://127.0.0.1:{port}/nobody")
    record = callback_record(sim, analysis_id, timeout=30)
    assert record["delivered"] is False
    assert record["attempts"] == 4
    assert str(record["status"]).startswith("error")
    # the analysis itself happened
    r = requests.get(sim.base_url + f"work-orders/{wo['id']}/", headers=AUTH, timeout=30)
    assert r.json()["latest_analysis_id"] == analysis_id


def test_several_callbacks_are_all_recorded(sim, receiver_factory):
    receiver = receiver_factory()
    wo = new_work_order(sim, "callback-5")
    ids = [start_callback_analysis(sim, wo, receiver.url())[0] for _ in range(3)]
    calls = receiver.wait_for(3)
    assert sorted(json.loads(c["raw"])["analysis_id"] for c in calls) == sorted(ids)
    for analysis_id in ids:
        record = callback_record(sim, analysis_id)
        assert record["delivered"] is True
        assert record["attempts"] == 1
    rows = requests.get(sim.url + "/_sim/callbacks", headers=sim.auth_headers, timeout=30).json()[
        "results"
    ]
    assert {r["analysis_id"] for r in rows} == set(ids)


@pytest.mark.parametrize(
    ("callback_url", "field"),
    [
        (None, "callback_url"),
        ("", "callback_url"),
        ("http://example.com/hook", "callback_url"),
        ("http://10.0.0.1:8080/hook", "callback_url"),
        ("ftp://127.0.0.1/hook", "callback_url"),
        ("not a url", "callback_url"),
    ],
)
def test_bad_callback_urls_are_rejected(sim, callback_url, field):
    wo = new_work_order(sim, "callback-bad")
    group, _, _ = pick_group(wo)
    body = analyze_body(group["name"], {}, callback_url)
    r = requests.post(
        sim.base_url + f"work-orders/{wo['id']}/analyze/callback/",
        headers=AUTH,
        json=body,
        timeout=30,
    )
    assert r.status_code == 400
    assert field in r.json()
    assert (
        requests.get(sim.url + "/_sim/callbacks", headers=sim.auth_headers, timeout=30).json()[
            "results"
        ]
        == []
    )
    r = requests.get(sim.base_url + f"work-orders/{wo['id']}/", headers=AUTH, timeout=30)
    assert r.json()["latest_analysis_id"] is None


def test_callback_analysis_of_an_unknown_work_order_is_404(sim, receiver_factory):
    receiver = receiver_factory()
    wo = new_work_order(sim, "callback-404")
    group, _, _ = pick_group(wo)
    r = requests.post(
        sim.base_url + f"work-orders/{uuid.uuid4()}/analyze/callback/",
        headers=AUTH,
        json=analyze_body(group["name"], {}, receiver.url()),
        timeout=30,
    )
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found."}
    assert (
        requests.get(sim.url + "/_sim/callbacks", headers=sim.auth_headers, timeout=30).json()[
            "results"
        ]
        == []
    )
