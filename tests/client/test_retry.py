"""Retries: what the client sends again, and when it stops.

Reads and idempotent writes are retried through faults and 429s; a non-idempotent write
whose answer is lost is never re-sent (its outcome is unknown); a 429 is retried without
doubling a create. One retry layer with a time budget: no call waits past
``retry_budget``, and the error says how many attempts were made over how long. A retry waits
holding no slot of the limiter; nothing listening on this machine fails fast and says to start
the server. (An answer that is not the API's, retried then refused, is in
``test_variant_server.py``.)"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

import dfs_analytics as dfs
from dfs_analytics.client import retry
from tests.helpers import (
    CREATE,
    RETRIEVE,
    assert_no_secret,
    closed_port,
    delta,
    store_work_orders,
)

pytestmark = pytest.mark.sim(work_orders=6, seed=9)


def test_throttling_stops_at_the_budget(sim, client_for) -> None:
    sim.configure(throttle_rate=1.0, retry_after=1)
    client = client_for(sim, cache=None, retries=50, retry_budget=2.5)
    started = time.monotonic()
    with pytest.raises(dfs.ThrottledError) as info:
        client.list_task_groups()
    took = time.monotonic() - started
    assert took < 4.5, took
    text = str(info.value)
    assert "retry_budget=2.5 s" in text and "attempt(s) over" in text, text
    assert info.value.retry_after == 1


def test_a_retry_after_beyond_the_budget_is_not_waited_for(sim, client_for) -> None:
    sim.configure(throttle_rate=1.0, retry_after=600)
    client = client_for(sim, cache=None, retry_budget=5)
    before = sim.request_counts()
    started = time.monotonic()
    with pytest.raises(dfs.ThrottledError) as info:
        client.get_task_group("releve-optique")
    assert time.monotonic() - started < 3
    assert "the server asked to wait 600 s" in str(info.value)
    assert sum(delta(sim, before).values()) == 1  # one attempt, no hour-long wait


def test_server_errors_stop_at_the_budget(sim, client_for) -> None:
    sim.configure(fault_rate=1.0)
    client = client_for(sim, cache=None, retries=1000, backoff_factor=0.2, retry_budget=2)
    started = time.monotonic()
    with pytest.raises((dfs.ServerError, dfs.TransportError)) as info:
        client.list_work_orders()
    assert time.monotonic() - started < 3.5
    assert "retry_budget=2 s" in str(info.value)


def test_an_unreachable_host_stops_at_the_budget(client_for) -> None:
    class Nowhere:
        base_url = f"http://127.0.0.1:{closed_port()}/v0.2/"
        api_key = "k"

    client = client_for(Nowhere, retries=1000, backoff_factor=0.3, retry_budget=1.5, timeout=1)
    started = time.monotonic()
    with pytest.raises(dfs.TransportError) as info:
        client.list_work_orders()
    assert time.monotonic() - started < 3
    assert "retry_budget=1.5 s" in str(info.value) and "attempt(s) over" in str(info.value)


def test_nothing_listening_on_this_machine_fails_fast_and_says_to_start_it(client_for) -> None:
    port = closed_port()

    class Nowhere:
        base_url = f"http://127.0.0.1:{port}/v0.2/"
        api_key = "k"

    client = client_for(Nowhere, retries=1000, retry_budget=300)
    with pytest.raises(dfs.TransportError) as info:
        client.list_work_orders()
    text = str(info.value)
    assert f"after {retry.LOCAL_RETRIES + 1} attempt(s)" in text, text  # not a 300 s budget
    assert "Nothing is listening" in text and "is the server running?" in text, text
    assert f"`dfs-analytics simulate --port {port}`" in text, text
    assert "offline=True" in text  # there is a cache to read instead


def test_a_retry_waits_for_its_retry_after_holding_no_slot(sim, client_for, monkeypatch) -> None:
    client = client_for(sim, cache=None, max_workers=1)  # one slot: a held one blocks all
    sim.configure(throttle_rate=1.0, retry_after=1)
    waits: list[tuple[float, int]] = []
    meanwhile: list[object] = []

    def wait(seconds: float) -> None:  # the Retry-After wait, replaced by another call
        waits.append((seconds, client.limiter.in_flight))
        if client.limiter.in_flight == 0:  # the one slot is free: another call gets through
            sim.configure(throttle_rate=0.0)
            meanwhile.append(client.list_task_groups())

    monkeypatch.setattr(retry, "wait", wait)
    groups = client.list_task_groups()
    assert waits == [(1.0, 0)]
    assert meanwhile == [groups]
    assert client.limiter.in_flight == 0 and client.throttled == 1


def test_retries_still_get_through_within_the_budget(sim, client_for) -> None:
    expected = client_for(sim, cache=None).list_work_orders()
    sim.configure(fault_rate=0.3, throttle_rate=0.2, retry_after=0, fault_seed=3)
    client = client_for(sim, cache=None, page_size=2, backoff_factor=0.01, retries=12)
    assert client.list_work_orders() == expected


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "5", True])
def test_a_bad_budget_is_a_configuration_error(bad) -> None:
    with pytest.raises(dfs.ConfigurationError, match="retry_budget"):
        dfs.Client("http://127.0.0.1:1/v0.2/", api_key="k", cache=None, retry_budget=bad)


def test_a_throttled_campaign_row_is_reported_within_the_budget(
    sim, client_for, tmp_path: Path
) -> None:
    reader = client_for(sim, cache=None)
    wo = reader.list_work_orders()[0]
    task = next(t for t in wo["tasks"] if t["outcome_type"] == "Boolean" and t["state"])
    value = not (task["state"].get("corrected_value") or task["state"]["analyzed_value"])
    plan = pd.DataFrame(
        [{"work_order_id": wo["id"], "task_name": task["name"], "corrected_value": value}]
    )
    client = client_for(sim, cache=None, retry_budget=2, backoff_factor=0.1)
    campaign = dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl")
    campaign.preview()
    sim.configure(throttle_rate=1.0, retry_after=1)
    started = time.monotonic()
    result = campaign.apply(progress=False)
    took = time.monotonic() - started
    assert took < 10, took  # a read, then a correction: one budget each at most
    assert result["status"].tolist() == ["failed"], result
    sim.configure(throttle_rate=0.0)
    again = campaign.apply(progress=False)
    assert again["status"].tolist() == ["applied"], again


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


def test_idempotent_writes_are_retried(dfs_simulator_factory, client_for) -> None:
    sim = dfs_simulator_factory(work_orders=5, seed=4, fault_seed=17)
    client = client_for(sim, backoff_factor=0.01)
    wo = client.create_work_order("idem-" + uuid.uuid4().hex[:8])
    sim.configure(fault_rate=0.4)
    for i in range(6):
        assert client.put_metadata(wo["id"], {"step": i}) == {"step": i}
    sim.configure(fault_rate=0)
    assert client.get_work_order(wo["id"])["metadata"] == {"step": 5}


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


def test_throttled_after_retries_is_a_throttled_error(dfs_simulator_factory, client_for):
    sim = dfs_simulator_factory(work_orders=5, seed=1, throttle_rate=1.0, retry_after=0)
    client = client_for(sim, retries=2, backoff_factor=0.01)
    before = sim.request_counts()
    with pytest.raises(dfs.ThrottledError) as info:
        client.list_task_groups()
    assert info.value.status == 429
    assert info.value.retry_after == 0
    assert "429" in str(info.value) and "throttled" in str(info.value)
    assert delta(sim, before) == {"GET /v0.2/task-groups/": 3}  # 1 + 2 retries


def _answers(*statuses: int) -> Any:
    """A ``send_once`` answering these statuses in turn (the retry loop's own seam)."""
    queue = list(statuses)

    def send_once() -> requests.Response:
        response = requests.Response()
        response.status_code = queue.pop(0)
        response._content = b"{}"
        return response

    return send_once


def _failing_once(error: Exception) -> Any:
    """A ``send_once`` raising ``error``, then answering 200."""
    attempts = iter([error])

    def send_once() -> requests.Response:
        failure = next(attempts, None)
        if failure is not None:
            raise failure
        return _answers(200)()

    return send_once


@pytest.mark.parametrize(
    ("first", "quick"),
    [(500, True), (502, True), (504, True), (503, False), (429, False)],
)
def test_a_first_retry_waits_long_only_when_the_server_says_it_is_overloaded(
    first, quick, monkeypatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "wait", waits.append)
    settings = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", backoff_factor=0.4).settings
    call = retry.Call("GET", "/v0.2/work-orders/", "127.0.0.1:9")
    response = retry.send_with_retries(_answers(first, first, 200), call, settings, None)
    assert response.status_code == 200 and len(waits) == 2
    if quick:  # a 500, 502 or 504 says nothing of load: at once, but for the jitter
        assert 0 <= waits[0] <= 0.2
    else:  # a 429 or 503 without Retry-After: the backoff
        assert 0.4 <= waits[0] <= 0.6
    assert 0.8 <= waits[1] <= 1.0  # the second retry backs off in every case


def test_a_cut_connection_is_retried_at_once_and_a_timeout_after_the_backoff(
    monkeypatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "wait", waits.append)
    settings = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", backoff_factor=0.4).settings
    call = retry.Call("GET", "/v0.2/work-orders/", "127.0.0.1:9")
    for error, low, high in (
        (requests.exceptions.ChunkedEncodingError("cut"), 0.0, 0.2),
        (requests.exceptions.ReadTimeout("slow"), 0.4, 0.6),
    ):
        waits.clear()
        send_once = _failing_once(error)
        assert retry.send_with_retries(send_once, call, settings, None).status_code == 200
        assert len(waits) == 1 and low <= waits[0] <= high, (error, waits)
