"""Answers whose body drips: headers at once, then the body slower than the client's floor
(:data:`~dfs_analytics.client.safety.MIN_BODY_RATE`, 1 KiB/s over each stretch of
``timeout`` seconds). Each attempt ends as a read timeout within about ``timeout`` seconds,
retried for a read and never for a write, and the error says the body was too slow; a large
answer on a slow but steady link is read whole. Over real HTTP, against the simulator's
``slow_body_rate`` fault, and small hostile servers for chunked and gzip bodies."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

import dfs_analytics as dfs
from dfs_analytics.client.safety import MIN_BODY_RATE, AnswerGuard, read_timeout
from dfs_analytics.simulator import Simulator
from tests.helpers import QuietHandler, local_http_server

pytestmark = pytest.mark.sim(work_orders=30, seed=3)

TIMEOUT = 0.5  # the clients' timeout: each stretch of 0.5 s must bring 512 bytes
STEADY_TIMEOUT = 1.0  # for the answers that must not be cut: room for a busy machine


def sent(sim: Simulator) -> int:
    """The API requests ``sim`` has received so far."""
    return sum(sim.request_counts().values())


def quick(client_for: Callable[..., dfs.Client], sim: Simulator, **kw: Any) -> dfs.Client:
    """A client of ``sim`` with a short timeout and quick retries."""
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("backoff_factor", 0.01)
    return client_for(sim, **kw)


@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cached"])
def test_a_dripping_read_is_retried_then_fails_saying_the_body_was_too_slow(
    sim: Simulator, client_for: Callable[..., dfs.Client], tmp_path: Path, cached: bool
) -> None:
    wo_id = quick(client_for, sim, cache=None).list_work_orders()[0]["id"]
    client = quick(client_for, sim, retries=2, cache=tmp_path / "cache" if cached else None)
    sim.configure(slow_body_rate=1.0, slow_body_bps=100)  # far under the floor
    before = sent(sim)
    started = time.monotonic()
    with pytest.raises(dfs.TransportError) as caught:
        client.request("GET", f"work-orders/{wo_id}/", cached=cached)
    elapsed = time.monotonic() - started
    assert not isinstance(caught.value, dfs.OutcomeUnknownError)
    assert sent(sim) - before == 3  # the first attempt and two retries
    assert elapsed < 3 * TIMEOUT + 2, elapsed  # not 11 KiB at 100 bytes/s (two minutes)
    message = str(caught.value)
    assert "Read timed out" in message and "after 3 attempt(s)" in message
    assert "body came too slowly" in message and "Client(timeout=...)" in message


def test_a_dripping_write_is_outcome_unknown_and_sent_once(
    sim: Simulator, client_for: Callable[..., dfs.Client]
) -> None:
    client = quick(client_for, sim, retries=3, cache=None)
    sim.configure(slow_body_rate=1.0, slow_body_bps=100)
    before = sent(sim)
    with pytest.raises(dfs.OutcomeUnknownError) as caught:
        client.create_work_order("dripped-write")
    assert sent(sim) - before == 1  # never sent again
    assert "may or may not have been applied" in str(caught.value)
    assert "body came too slowly" in str(caught.value)
    sim.configure(slow_body_rate=0.0)
    names = [wo["name"] for wo in client.list_work_orders()]
    assert "dripped-write" in names  # it was applied: only its answer was slow


def test_a_large_answer_on_a_slow_steady_link_is_read_whole(
    sim: Simulator, client_for: Callable[..., dfs.Client]
) -> None:
    client = quick(client_for, sim, retries=0, cache=None, timeout=STEADY_TIMEOUT)
    params = {"page_size": 100}
    fast = client.send("GET", "work-orders/", params=params).content
    assert len(fast) > 250 * 1024
    sim.configure(slow_body_rate=1.0, slow_body_bps=len(fast) / 2.0)  # about 2 s
    before = sent(sim)
    started = time.monotonic()
    slow = client.send("GET", "work-orders/", params=params).content
    elapsed = time.monotonic() - started
    assert slow == fast
    assert elapsed > 1.5 * STEADY_TIMEOUT  # longer than the timeout, yet not cut
    assert sent(sim) - before == 1


@pytest.mark.parametrize(
    ("bps", "cut"), [(4 * MIN_BODY_RATE, False), (0.6 * MIN_BODY_RATE, True)], ids=str
)
def test_the_floor_is_about_one_kib_per_second(
    sim: Simulator, client_for: Callable[..., dfs.Client], bps: float, cut: bool
) -> None:
    """Task groups (9 KiB) at 4 KiB/s take 2.3 s, more than twice the timeout (1 s): read. At
    0.6 KiB/s, each 1 s brings 600 bytes, short of 1 KiB: cut within about the timeout."""
    client = quick(client_for, sim, retries=0, cache=None, timeout=STEADY_TIMEOUT)
    fast = client.request("GET", "task-groups/")
    sim.configure(slow_body_rate=1.0, slow_body_bps=bps)
    started = time.monotonic()
    if cut:
        with pytest.raises(dfs.TransportError, match="too slowly"):
            client.request("GET", "task-groups/")
        assert time.monotonic() - started < 2 * STEADY_TIMEOUT + 1
    else:
        assert client.request("GET", "task-groups/") == fast
        assert time.monotonic() - started > 2 * STEADY_TIMEOUT


def test_a_read_that_dripped_once_is_retried_into_an_answer(
    client_for: Callable[..., dfs.Client], dfs_simulator_factory: Callable[..., Simulator]
) -> None:
    # fault_seed 1: the first draw is under 0.5 (a slow body), the second is not
    sim = dfs_simulator_factory(work_orders=5, seed=3, fault_seed=1)
    fast = quick(client_for, sim, cache=None).request("GET", "task-groups/")
    sim.configure(slow_body_rate=0.5, slow_body_bps=50)
    before = sent(sim)
    client = quick(client_for, sim, retries=3, cache=None)
    assert client.request("GET", "task-groups/") == fast
    assert sent(sim) - before == 2


# -- hostile servers: a chunked body and a gzip body that drip ---------------------------------


class _Drip(QuietHandler):
    """Answers headers at once, then drips its body: ``chunked`` (a chunk of one byte, its
    framing dripped too) or ``gzip`` (a compressed JSON body with a Content-Length), a few
    bytes every 50 ms, for at most 20 s."""

    protocol_version = "HTTP/1.1"
    kind = "chunked"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            pieces = [b"1\r\n", b" \r\n"] * 400
        else:
            body = gzip.compress(json.dumps({"results": ["x" * 50] * 2000}).encode())
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            pieces = [body[i : i + 5] for i in range(0, len(body), 5)]
        self.end_headers()
        self.wfile.flush()
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client has gone
            return


@pytest.mark.parametrize("kind", ["chunked", "gzip"])
def test_a_dripping_chunked_or_gzip_body_is_cut_too(tmp_path: Path, kind: str) -> None:
    class Handler(_Drip):
        pass

    Handler.kind = kind
    with local_http_server(Handler) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}/v0.2/"
        with dfs.Client(base, api_key="k", cache=None, retries=0, timeout=TIMEOUT) as client:
            started = time.monotonic()
            with pytest.raises(dfs.TransportError, match="too slowly"):
                client.request("GET", "task-groups/")
            assert time.monotonic() - started < 2 * TIMEOUT + 1


def test_read_timeout_of_each_form_of_requests_timeout() -> None:
    assert read_timeout(30) == 30.0
    assert read_timeout(2.5) == 2.5
    assert read_timeout((3, 7)) == 7.0
    assert read_timeout(urllib3.Timeout(connect=1, read=4)) == 4.0
    assert read_timeout(None) is None
    assert read_timeout((3, None)) is None
    assert read_timeout(0) is None


def test_a_client_without_a_timeout_still_reads_answers(sim: Simulator) -> None:
    session = requests.Session()
    session.hooks["response"].append(AnswerGuard(sim.base_url, 2**20))
    r = session.get(sim.base_url + "task-groups/", headers={"Authorization": "Token demo-key"})
    assert r.status_code == 200 and r.json()["results"]


def test_a_dripping_body_over_tls_is_cut_too(
    dfs_simulator_factory: Callable[..., Simulator],
    client_for: Callable[..., dfs.Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = dfs_simulator_factory(work_orders=5, seed=3, tls=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_file))
    client = quick(client_for, sim, retries=0, cache=None)
    fast = client.request("GET", "task-groups/")
    sim.configure(slow_body_rate=1.0, slow_body_bps=100)
    started = time.monotonic()
    with pytest.raises(dfs.TransportError, match="too slowly"):
        client.request("GET", "task-groups/")
    assert time.monotonic() - started < 2 * TIMEOUT + 1
    sim.configure(slow_body_rate=0.0)
    assert client.request("GET", "task-groups/") == fast  # the next request is served
