"""Operating the simulator: its counters, its life cycle and its command line."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from dfs_analytics.simulator import Simulator

from .helpers import AUTH

CLI = Path(sys.executable).with_name("dfs-analytics")


def get(sim: Simulator, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(sim.base_url + path, headers=AUTH, timeout=30, **kwargs)


def sim_view(sim: Simulator, path: str) -> Any:
    r = requests.get(sim.url + "/_sim/" + path, headers=sim.auth_headers, timeout=30)
    assert r.status_code == 200
    return r.json()


# --------------------------------------------------------------------------------------------
# /_sim/requests
# --------------------------------------------------------------------------------------------


def test_request_counts_per_route_and_reset(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=20, seed=61)
    assert sim_view(sim, "requests") == {"total": 0, "routes": {}}

    page = get(sim, "work-orders/", params={"page_size": 10}).json()
    assert get(sim, "work-orders/").status_code == 200
    assert requests.get(page["next"], headers=AUTH, timeout=30).status_code == 200
    wo_id = page["results"][0]["id"]
    assert get(sim, f"work-orders/{wo_id}/").status_code == 200
    # without the trailing slash: the same route
    assert get(sim, f"work-orders/{wo_id}").status_code == 200
    assert get(sim, f"work-orders/{uuid.uuid4()}/").status_code == 404
    assert get(sim, f"work-orders/{wo_id}/timeline/").status_code == 200
    r = requests.patch(
        sim.base_url + f"work-orders/{wo_id}/metadata/", headers=AUTH, json={"a": 1}, timeout=30
    )
    assert r.status_code == 200
    # a request without a key was still received
    assert requests.get(sim.base_url + "task-groups/", timeout=30).status_code == 401
    # the simulator's own view is not counted
    for _ in range(3):
        sim_view(sim, "truth")
        sim_view(sim, "config")

    expected = {
        "GET /v0.2/work-orders/": 3,
        "GET /v0.2/work-orders/{wo_id}/": 3,
        "GET /v0.2/work-orders/{wo_id}/timeline/": 1,
        "PATCH /v0.2/work-orders/{wo_id}/metadata/": 1,
        "GET /v0.2/task-groups/": 1,
    }
    counts = sim_view(sim, "requests")
    assert counts == {"total": 9, "routes": expected}
    assert sim.request_counts() == expected

    # throttled and faulty requests were received too
    sim.configure(throttle_rate=1.0)
    for _ in range(2):
        assert get(sim, "task-groups/").status_code == 429
    sim.configure(throttle_rate=0.0, fault_rate=1.0)
    for _ in range(2):
        try:
            r = get(sim, "task-groups/")
            assert r.status_code >= 500
        except requests.RequestException:
            pass
    sim.configure(fault_rate=0.0)
    assert sim.request_counts()["GET /v0.2/task-groups/"] == 5
    assert sim_view(sim, "requests")["total"] == 13

    r = requests.delete(sim.url + "/_sim/requests", headers=AUTH, timeout=30)
    assert r.status_code == 204
    assert sim_view(sim, "requests") == {"total": 0, "routes": {}}
    assert get(sim, "task-groups/").status_code == 200
    assert sim.request_counts() == {"GET /v0.2/task-groups/": 1}
    sim.reset_request_counts()
    assert sim.request_counts() == {}


# --------------------------------------------------------------------------------------------
# /_sim/corrections
# --------------------------------------------------------------------------------------------


def two_way_boolean_tasks(wo: dict[str, Any]) -> list[dict[str, Any]]:
    """Analysed boolean tasks whose rules accept both true and false."""
    return [
        t
        for t in wo["tasks"]
        if t["state"] is not None
        and t["outcome_type"] == "Boolean"
        and {r["schema"].get("const") for r in t["outcome_validation"] or []} == {True, False}
    ]


def test_correction_counts_per_work_order_and_task(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=30, seed=62)
    items = get(sim, "work-orders/", params={"page_size": 100}).json()["results"]
    first, second = [wo for wo in items if two_way_boolean_tasks(wo)][:2]
    task = two_way_boolean_tasks(first)[0]
    other = two_way_boolean_tasks(second)[0]
    assert sim_view(sim, "corrections") == {"total_calls": 0, "total_accepted": 0, "results": []}

    def corrections_of(wo_id: str, task_id: str) -> list[dict[str, Any]]:
        timeline = get(sim, f"work-orders/{wo_id}/timeline/").json()["results"]
        return [
            e
            for e in timeline
            if e["type"] == "correction" and e["states"][0]["task_id"] == task_id
        ]

    events_before = corrections_of(first["id"], task["id"])

    def correct(wo_id: str, task_id: str, value: Any) -> int:
        return requests.patch(
            sim.base_url + f"work-orders/{wo_id}/tasks/{task_id}/correction/",
            headers=AUTH,
            json={"corrected_value": value},
            timeout=30,
        ).status_code

    assert correct(first["id"], task["id"], "true") == 200
    assert correct(first["id"], task["id"], True) == 200  # a repeat is still a correction
    assert correct(first["id"], task["id"], 1) == 400  # not a boolean
    assert correct(first["id"], task["id"], None) == 400  # a correction cannot be cleared
    assert correct(first["id"], task["id"], False) == 200
    assert correct(second["id"], other["id"], "FALSE") == 200
    # unknown tasks and work orders: 404, nothing to count
    assert correct(first["id"], str(uuid.uuid4()), True) == 404
    assert correct(str(uuid.uuid4()), task["id"], True) == 404
    # a task of the other app version is not a task of this work order
    foreign = next(w for w in items if w["app_version_id"] != first["app_version_id"])
    foreign_ids = {t["id"] for t in foreign["tasks"]} - {t["id"] for t in first["tasks"]}
    assert foreign_ids
    assert correct(first["id"], sorted(foreign_ids)[0], True) == 404
    # a never-analysed task of a new work order: the call counts, nothing is accepted
    r = requests.post(sim.base_url + "work-orders/", headers=AUTH, json={"name": "n"}, timeout=30)
    fresh = r.json()
    fresh_task = fresh["tasks"][0]
    assert correct(fresh["id"], fresh_task["id"], True) == 400

    view = sim_view(sim, "corrections")
    rows = {(r["work_order_id"], r["task_id"]): r for r in view["results"]}
    assert set(rows) == {
        (first["id"], task["id"]),
        (second["id"], other["id"]),
        (fresh["id"], fresh_task["id"]),
    }
    assert rows[(first["id"], task["id"])]["calls"] == 5
    assert rows[(first["id"], task["id"])]["accepted"] == 3
    assert rows[(first["id"], task["id"])]["task_name"] == task["name"]
    assert rows[(second["id"], other["id"])]["calls"] == 1
    assert rows[(second["id"], other["id"])]["accepted"] == 1
    assert rows[(fresh["id"], fresh_task["id"])]["calls"] == 1
    assert rows[(fresh["id"], fresh_task["id"])]["accepted"] == 0
    assert view["total_calls"] == 7
    assert view["total_accepted"] == 4
    assert sim.correction_counts() == {
        (first["id"], task["id"]): 3,
        (second["id"], other["id"]): 1,
        (fresh["id"], fresh_task["id"]): 0,
    }
    # each accepted call is one correction event on the timeline
    events = corrections_of(first["id"], task["id"])
    assert len(events) == len(events_before) + 3
    assert [e["states"][0]["corrected_value"] for e in events[-3:]] == [True, True, False]


# --------------------------------------------------------------------------------------------
# Life cycle
# --------------------------------------------------------------------------------------------


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def wait_until(condition: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def test_start_and_stop_leave_no_thread_or_port_behind():
    threads_before = set(threading.enumerate())
    sockets_before = socket_fds()
    sim = Simulator(work_orders=20, seed=63)
    assert "stopped" in repr(sim)
    sim.start()
    assert sim.start() is sim  # starting twice is harmless
    assert "serving" in repr(sim)
    port = sim.port
    assert port > 0
    # a client that keeps its connection open does not keep the server alive
    session = requests.Session()
    assert session.get(sim.base_url + "work-orders/", headers=AUTH, timeout=30).status_code == 200
    assert set(threading.enumerate()) - threads_before
    sim.stop()
    sim.stop()  # stopping twice is harmless
    assert "stopped" in repr(sim)
    assert refused(port)
    session.close()
    assert wait_until(lambda: set(threading.enumerate()) <= threads_before), [
        t.name for t in set(threading.enumerate()) - threads_before
    ]
    assert wait_until(lambda: socket_fds() <= sockets_before), (socket_fds(), sockets_before)
    # the port is free again: a new server can listen on it
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    with Simulator(work_orders=5, seed=63, port=port) as again:
        assert again.port == port
        assert get(again, "work-orders/").json()["count"] == 5
    assert refused(port)


def test_context_manager_stops_on_error():
    threads_before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="boom"), Simulator(work_orders=5, seed=64) as sim:
        port = sim.port
        assert get(sim, "task-groups/").status_code == 200
        raise RuntimeError("boom")
    assert refused(port)
    assert wait_until(lambda: set(threading.enumerate()) <= threads_before)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def test_simulate_help_documents_the_runtime_settings():
    assert CLI.exists(), CLI
    out = subprocess.run(
        [str(CLI), "simulate", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for option in (
        "--port",
        "--work-orders",
        "--seed",
        "--latency",
        "--jitter",
        "--fault-rate",
        "--throttle-rate",
        "--throttle-rps",
        "--retry-after",
        "--auth-status",
    ):
        assert option in out, option
    text = " ".join(out.split()).lower()
    for words in ("latency", "jitter", "429", "retry-after", "500/502/503/504", "dropped", "0:"):
        assert words in text, words


def read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put("")  # end of output


def test_simulate_command_serves_on_a_free_port_and_stops_on_interrupt():
    proc = subprocess.Popen(
        [
            str(CLI),
            "simulate",
            "--port",
            "0",
            "--work-orders",
            "25",
            "--seed",
            "65",
            "--api-key",
            "cli-key",
            "--auth-status",
            "403",
            "--latency",
            "0.01",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        output = []
        base_url = None
        deadline = time.monotonic() + 60
        while base_url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            assert line, "the command ended before serving: " + "".join(output)
            output.append(line)
            match = re.search(r"base URL\s*:\s*(http://127\.0\.0\.1:(\d+)/v0\.2/)", line)
            if match:
                base_url, port = match.group(1), int(match.group(2))
        assert base_url is not None, "".join(output)
        assert port != 0

        r = requests.get(
            base_url + "work-orders/",
            headers={"Authorization": "Token cli-key"},
            params={"page_size": 100},
            timeout=30,
        )
        assert r.status_code == 200
        served = r.json()
        assert served["count"] == 25
        assert requests.get(base_url + "work-orders/", timeout=30).status_code == 403
        sim_url = f"http://127.0.0.1:{port}/_sim/config"
        # the simulator's own view needs the key too
        assert requests.get(sim_url, timeout=30).status_code == 403
        config = requests.get(
            sim_url, headers={"Authorization": "Token cli-key"}, timeout=30
        ).json()
        assert config["latency"] == 0.01
        assert config["auth_status"] == 403
        # the same seed gives the same data in another process
        with Simulator(work_orders=25, seed=65) as local:
            mine = get(local, "work-orders/", params={"page_size": 100}).json()
        assert [w["id"] for w in served["results"]] == [w["id"] for w in mine["results"]]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        rest = []
        while (line := lines.get(timeout=10)) != "":
            rest.append(line)
        assert "Simulator stopped." in "".join(rest)
        assert refused(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
