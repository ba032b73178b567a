"""The shapes of a bad day, over real HTTP: a token bucket's burst and 429s in short episodes.

``throttle_rps`` with ``throttle_burst`` is a bucket of ``throttle_burst`` tokens refilled at
``throttle_rps`` per second (by default one second's worth); ``throttle_rate`` with
``throttle_burst_len`` answers that share of requests 429 in runs of consecutive requests,
the same runs for the same ``fault_seed``. Each test starts its own :class:`Simulator`.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from dataclasses import dataclass

import pytest
import requests

from dfs_analytics.cli import UsageError, build_parser
from dfs_analytics.simulator import Simulator
from dfs_analytics.simulator.faults import Faults
from dfs_analytics.simulator.settings import RuntimeConfig

KEY = "demo-key"
AUTH = {"Authorization": f"Token {KEY}"}
API = "/v0.2/"


@dataclass
class Answer:
    """One API answer: its status, its Retry-After header and its body."""

    status: int
    retry_after: str | None
    body: bytes


def send(conn: http.client.HTTPConnection, path: str) -> None:
    conn.request("GET", path, headers=AUTH)


def receive(conn: http.client.HTTPConnection) -> Answer:
    r = conn.getresponse()
    return Answer(r.status, r.getheader("Retry-After"), r.read())


def fire_at_once(sim: Simulator, n: int) -> tuple[list[Answer], float]:
    """``n`` API requests sent together from one thread, each on its own connection opened
    beforehand (on ``/_sim/``, never throttled), so they reach the server within a few
    milliseconds on a quiet machine; then their answers and the seconds from the first
    request sent to the last answer read (more than the spread of their arrivals)."""
    conns = [http.client.HTTPConnection(sim.host, sim.port, timeout=30) for _ in range(n)]
    try:
        for c in conns:
            send(c, "/_sim/config")
            assert receive(c).status == 200
        t = time.monotonic()
        for c in conns:
            send(c, API + "work-orders/?page_size=1")
        answers = [receive(c) for c in conns]
        return answers, time.monotonic() - t
    finally:
        for c in conns:
            c.close()


def assert_bucket_of_10_at_100_rps(answers: list[Answer], spread: float) -> None:
    """50 requests at once against 10 tokens refilled at 100 per second: 40 throttled, less
    one per 10 ms the arrivals were spread over (a busy machine spreads them)."""
    throttled = [a for a in answers if a.status == 429]
    assert max(1, 40 - math.ceil(100 * spread) - 1) <= len(throttled) <= 40, (
        len(throttled),
        spread,
    )
    assert all(a.status == 200 for a in answers if a.status != 429)
    for a in throttled:
        assert_throttle_answer(a, 1)


def in_order(sim: Simulator, n: int) -> list[Answer]:
    """``n`` API requests one after the other (the order the server draws its 429s in)."""
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=30)
    try:
        answers = []
        for _ in range(n):
            send(conn, API + "work-orders/?page_size=1")
            answers.append(receive(conn))
        return answers
    finally:
        conn.close()


def runs_of_429(answers: list[Answer]) -> list[int]:
    """The lengths of the runs of consecutive 429 answers."""
    runs, current = [], 0
    for a in answers:
        if a.status == 429:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs + ([current] if current else [])


def assert_throttle_answer(answer: Answer, retry_after: int) -> None:
    assert answer.status == 429
    assert answer.retry_after == str(retry_after)
    assert "throttled" in json.loads(answer.body)["detail"]


def test_small_burst_throttles_what_exceeds_it_and_the_default_burst_does_not():
    with Simulator(work_orders=5, seed=1, throttle_rps=100, throttle_burst=10) as sim:
        assert_bucket_of_10_at_100_rps(*fire_at_once(sim, 50))

        # back to the default at runtime (PATCH /_sim/config): one second's worth, 100 tokens
        r = sim.sim_request("PATCH", "config", json={"throttle_burst": None})
        assert r.json()["throttle_burst"] is None
        time.sleep(1.1)  # the bucket full again
        answers, _ = fire_at_once(sim, 50)
        assert [a.status for a in answers] == [200] * 50

        # and small again, through configure()
        sim.configure(throttle_burst=10)
        time.sleep(0.2)
        assert_bucket_of_10_at_100_rps(*fire_at_once(sim, 50))


def test_default_bucket_holds_one_second_of_requests():
    with Simulator(work_orders=5, seed=1, throttle_rps=100) as sim:
        assert sim.view("config")["throttle_burst"] is None
        answers, _ = fire_at_once(sim, 50)
        assert [a.status for a in answers] == [200] * 50


def test_bucket_grants_its_burst_then_its_rate():
    """The bucket alone, without the network's spread: 50 takes at once, 10 granted."""
    faults = Faults(RuntimeConfig(throttle_rps=100, throttle_burst=10))
    t = time.monotonic()
    waits = [faults.take_token(100, 10) for _ in range(50)]
    refilled = math.ceil(100 * (time.monotonic() - t))  # a token per 10 ms taken
    assert 10 <= sum(w == 0 for w in waits) <= 10 + refilled
    assert all(0 < w <= 0.01 for w in waits if w)
    assert (
        sum(Faults(RuntimeConfig(throttle_rps=100)).take_token(100, 100) == 0 for _ in range(50))
        == 50
    )


def test_sporadic_429s_come_in_runs_of_the_configured_length():
    settings = {"throttle_rate": 0.05, "throttle_burst_len": 5, "retry_after": 1}
    with Simulator(work_orders=5, seed=1, fault_seed=7, **settings) as sim:
        answers = in_order(sim, 600)
    throttled = [a for a in answers if a.status == 429]
    assert all(a.status == 200 for a in answers if a.status != 429)
    for a in throttled:
        assert_throttle_answer(a, 1)
    assert 0.03 <= len(throttled) / len(answers) <= 0.07, len(throttled)
    runs = runs_of_429(answers)
    # every episode is 5 requests long; two episodes may touch, the last may be cut short
    assert len(runs) >= 4
    assert all(r % 5 == 0 for r in runs[:-1]), runs

    # the same seed, the same requests answered 429; another seed, others
    with Simulator(work_orders=5, seed=1, fault_seed=7, **settings) as sim:
        again = in_order(sim, 300)
    assert [a.status for a in again] == [a.status for a in answers[:300]]
    with Simulator(work_orders=5, seed=1, fault_seed=8, **settings) as sim:
        other = in_order(sim, 300)
    assert [a.status for a in other] != [a.status for a in answers[:300]]


def test_an_episode_ends_once_its_retry_after_has_passed():
    """A request that waited its ``Retry-After`` and comes back alone is not throttled again
    by the episode that answered it 429, though fewer than ``throttle_burst_len`` requests
    came since."""
    settings = {"throttle_rate": 0.05, "throttle_burst_len": 5, "retry_after": 1}
    with Simulator(work_orders=5, seed=1, fault_seed=7, **settings) as sim:
        answers = in_order(sim, 200)
        first = next(i for i, a in enumerate(answers) if a.status == 429)
    with Simulator(work_orders=5, seed=1, fault_seed=7, **settings) as sim:
        before = in_order(sim, first + 1)
        assert before[-1].status == 429
        time.sleep(1.05)
        after = in_order(sim, 1)
    assert after[0].status == 200, after[0]
    # without the wait the same request is the episode's second 429
    assert answers[first + 1].status == 429


def test_episodes_are_set_at_runtime():
    with Simulator(work_orders=5, seed=1, fault_seed=3) as sim:
        assert sim.view("config")["throttle_burst_len"] == 1
        sim.sim_request("PATCH", "config", json={"throttle_rate": 0.2, "throttle_burst_len": 10})
        runs = runs_of_429(in_order(sim, 200))
        assert runs and all(r % 10 == 0 for r in runs[:-1]), runs
        sim.configure(throttle_rate=0.0)
        assert all(a.status == 200 for a in in_order(sim, 20))


@pytest.mark.parametrize(
    ("body", "setting"),
    [
        ({"throttle_burst": 0}, "throttle_burst"),
        ({"throttle_burst": 2.5}, "throttle_burst"),
        ({"throttle_burst_len": 0}, "throttle_burst_len"),
        ({"throttle_burst_len": None}, "throttle_burst_len"),
    ],
)
def test_bad_shapes_are_refused(body, setting):
    with Simulator(work_orders=1, seed=1) as sim:
        r = requests.patch(sim.url + "/_sim/config", headers=AUTH, json=body, timeout=30)
        assert r.status_code == 400
        assert setting in r.json()
        with pytest.raises(ValueError, match=setting):
            sim.configure(**body)
    with pytest.raises(ValueError, match=setting):
        Simulator(work_orders=1, **body)


def test_episode_share_matches_the_rate():
    """Over many draws the share of 429s is the rate, whatever the run length."""
    for run in (1, 3, 5, 20):
        faults = Faults(RuntimeConfig(fault_seed=11))
        hits = sum(faults.throttled_at_random(0.05, run) for _ in range(200_000))
        assert abs(hits / 200_000 - 0.05) < 0.005, (run, hits)


def test_simulate_command_takes_the_shapes():
    options = "--throttle-rps 100 --throttle-burst 10 --throttle-burst-len 5 --fault-seed 7"
    args = build_parser().parse_args(["simulate", *options.split()])
    assert (args.throttle_rps, args.throttle_burst) == (100, 10)
    assert (args.throttle_burst_len, args.fault_seed) == (5, 7)
    args = build_parser().parse_args(["simulate"])
    assert (args.throttle_burst, args.throttle_burst_len, args.fault_seed) == (None, 1, None)
    for bad in (["--throttle-burst", "0"], ["--throttle-burst-len", "0.5"]):
        with pytest.raises(UsageError, match=bad[0]):
            build_parser().parse_args(["simulate", *bad])
