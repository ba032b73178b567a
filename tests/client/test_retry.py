"""One retry layer with a time budget: no call waits past ``retry_budget``, and the error says
how many attempts were made over how long."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import closed_port, delta

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


def test_campaign_max_workers_must_be_positive(sim, client_for, tmp_path: Path) -> None:
    plan = pd.DataFrame(columns=["work_order_id", "task_name", "corrected_value"])
    campaign = dfs.Campaign(client_for(sim, cache=None), plan, journal=tmp_path / "j.jsonl")
    for bad in (0, -2, 1.5):
        with pytest.raises(dfs.ConfigurationError, match="max_workers"):
            campaign.apply(max_workers=bad, progress=False)
