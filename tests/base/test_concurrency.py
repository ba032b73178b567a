"""The concurrency controller and the pacer decide from synthetic round trips and statuses."""

from __future__ import annotations

import math
import threading

import pytest

import dfs_analytics as dfs
from dfs_analytics.concurrency import ConcurrencyController, Limiter, Pacer


def feed(ctl: ConcurrencyController, rtt: float, answers: int, now: float, step: float) -> float:
    for _ in range(answers):
        now += step
        ctl.on_answer(rtt, saturated=True, now=now)
    return now


def test_grows_while_latency_stays_flat_up_to_the_ceiling() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    feed(ctl, 0.03, 2000, 0.0, 0.002)
    assert ctl.slots == 64  # and never above


@pytest.mark.parametrize(("rtt", "start"), [(0.03, 16), (0.1, 40), (0.15, 60), (0.5, 64)])
def test_the_first_round_trip_sets_the_starting_rate_whatever_the_latency(
    rtt: float, start: int
) -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    feed(ctl, rtt, 16, rtt, 0.001)  # the first 16 requests answered, about together
    assert ctl.slots == start  # START_RATE (400/s) x the round trip, within 16..64


def test_a_cut_before_the_first_round_trip_keeps_the_start_low() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    ctl.on_overload(sent_at=0.0, now=0.15)
    feed(ctl, 0.15, 20, 0.15, 0.01)
    assert ctl.slots < 16


def test_slow_start_doubles_at_most_every_0_2_s() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    feed(ctl, 0.03, 16, 0.0, 0.0001)  # a whole round in 1.6 ms
    assert ctl.slots <= 17


def test_stops_growing_when_latency_rises_and_gives_back_when_queueing() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    now = feed(ctl, 0.03, 200, 0.0, 0.005)
    grown = ctl.slots
    now = feed(ctl, 0.051, 200, now, 0.005)  # 1.7x the baseline: hold
    assert ctl.slots == grown and not ctl.slow_start
    feed(ctl, 0.09, 200, now, 0.005)  # 3x: requests queue, give slots back
    assert ctl.slots < grown


def test_round_trips_stretched_by_the_clients_own_delays_do_not_stop_growth() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    now = feed(ctl, 0.03, 40, 0.0, 0.005)
    feed(ctl, 0.042, 2000, now, 0.002)  # 1.4x the baseline: within the tolerance (1.5x)
    assert ctl.slots == 64 and ctl.slow_start


def test_idle_slots_do_not_grow_the_limit() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    for i in range(500):
        ctl.on_answer(0.03, saturated=False, now=i * 0.01)
    assert ctl.slots == 16


@pytest.mark.parametrize("status", [429, 503, None])
def test_halves_once_per_round_trip_on_overload(status: int | None) -> None:
    times = iter([float(i) for i in range(1000)])
    lim = Limiter(ceiling=64, initial=40, clock=lambda: next(times), sleep=lambda s: None)
    tickets = [lim.acquire() for _ in range(10)]  # sent at 0..9
    lim.release(tickets[0], status)  # at 10: halved
    assert lim.limit == 20
    for t in tickets[1:]:  # sent before the cut: nothing new
        lim.release(t, status)
    assert lim.limit == 20
    lim.release(lim.acquire(), status)  # sent after the cut: halved again
    assert lim.limit == 10


def test_the_floor_and_a_pinned_concurrency_hold() -> None:
    times = iter([float(i) for i in range(1000)])
    lim = Limiter(ceiling=64, clock=lambda: next(times), sleep=lambda s: None)
    for _ in range(20):
        lim.release(lim.acquire(), 503)
    assert lim.limit == 1
    fixed = Limiter(fixed=5, clock=lambda: next(times), sleep=lambda s: None)
    for status in (503, 429, 200, 200):
        fixed.release(fixed.acquire(), status)
    assert fixed.limit == 5


def test_pacer_measures_the_allowed_rate_between_two_spent_budgets() -> None:
    pacer = Pacer()
    for i in range(120):  # 120 answers in the last second, then the budget is spent
        pacer.on_answer(i / 120)
    assert pacer.delay(1.0) == 0.0 and not pacer.active
    pacer.on_throttled(sent_at=0.99, now=1.0)
    assert pacer.active and pacer.current_rate(1.0) == pytest.approx(60.0)  # half: a guess
    for i in range(200):  # 100 per second get through for 2 s
        pacer.on_answer(1.0 + i / 100)
    pacer.on_throttled(sent_at=2.99, now=3.0)  # spent again
    assert pacer.measured
    assert pacer.allowed == pytest.approx(100.0)
    assert pacer.current_rate(3.0) == pytest.approx(90.0)
    assert pacer.current_rate(5.0) == pytest.approx(90.0 * math.exp(0.1))  # relaxes slowly


def test_pacer_spaces_sends_and_ignores_answers_to_older_sends() -> None:
    pacer = Pacer()
    pacer.on_throttled(sent_at=0.0, now=0.0)  # nothing got through lately: the lowest guess
    rate = pacer.current_rate(0.0)
    assert rate == pytest.approx(10.0)
    assert pacer.delay(0.0) == 0.0
    assert pacer.delay(0.0) == pytest.approx(1 / rate, rel=0.01)
    assert not pacer.on_throttled(sent_at=-0.5, now=0.01)  # sent before the pace was set


def test_a_429_below_the_measured_rate_stops_pacing_instead_of_slowing_down() -> None:
    pacer = Pacer()
    pacer.on_throttled(0.0, 0.0)
    for i in range(100):
        pacer.on_answer(i / 100)
    pacer.on_throttled(0.99, 1.0)
    assert pacer.measured and pacer.current_rate(1.0) < pacer.allowed
    pacer.on_throttled(1.5, 1.6)  # random 429 while below the allowed rate
    assert not pacer.active


def test_limiter_is_thread_safe_and_never_exceeds_its_limit() -> None:
    lim = Limiter(fixed=3)
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak
        for _ in range(200):
            ticket = lim.acquire()
            with lock:
                peak = max(peak, lim.in_flight)
            lim.release(ticket, 200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.in_flight == 0 and peak <= 3 and lim.sent == 1600


def test_settings_adaptive_by_default_pinned_by_max_workers() -> None:
    c = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", cache=None, progress=False)
    assert c.settings.max_workers is None and c.settings.workers == 64
    assert c.limiter.controller is not None
    pinned = dfs.Client(
        "http://127.0.0.1:9/v0.2/", api_key="k", cache=None, progress=False, max_workers=4
    )
    assert pinned.concurrency == 4 and pinned.settings.workers == 4
    with pytest.raises(dfs.ConfigurationError, match="max_concurrency"):
        dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", cache=None, max_workers=100)
