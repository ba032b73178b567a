"""The concurrency controller and the pacer decide from synthetic round trips and statuses."""

from __future__ import annotations

import heapq
import math
import threading

import pytest

import dfs_analytics as dfs
from dfs_analytics.concurrency import (
    CATCH_UP,
    MIN_GUESS,
    RELAX,
    ConcurrencyController,
    Limiter,
    Pacer,
)


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
    for _ in range(8):  # a rate of overload answers (8 of 50) before any round trip
        ctl.on_overload(sent_at=0.0, now=0.15)
    assert ctl.cuts == 1
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


def test_isolated_overload_answers_never_cut_the_limit() -> None:
    ctl = ConcurrencyController(16, ceiling=64)
    now = 0.0
    for _ in range(20):  # a gateway's burst of 5 overload answers every 100 answers: 5%
        for _ in range(5):
            ctl.on_overload(sent_at=now - 0.03, now=now)
        now = feed(ctl, 0.03, 95, now, 0.003)
    assert ctl.cuts == 0 and ctl.slots == 64


@pytest.mark.parametrize("status", [429, 503, None])
def test_a_rate_of_overload_answers_halves_once_per_round_trip(status: int | None) -> None:
    times = iter([float(i) for i in range(10_000)])
    lim = Limiter(ceiling=64, initial=40, clock=lambda: next(times), sleep=lambda s: None)
    tickets = [lim.acquire() for _ in range(20)]
    for ticket in tickets[:7]:  # 7 of the last 50 answers: isolated
        lim.release(ticket, status)
    assert lim.limit == 40
    lim.release(tickets[7], status)  # the 8th: more than 15% of 50, a rate: halved
    assert lim.limit == 20
    for ticket in tickets[8:]:  # sent before the cut: nothing new
        lim.release(ticket, status)
    assert lim.limit == 20
    for _ in range(8):  # sent after the cut: a rate again, halved again
        lim.release(lim.acquire(), status)
    assert lim.limit == 10


def test_the_floor_and_a_pinned_concurrency_hold() -> None:
    times = iter([float(i) for i in range(1000)])
    lim = Limiter(ceiling=64, clock=lambda: next(times), sleep=lambda s: None)
    for _ in range(40):
        lim.release(lim.acquire(), 503)
    assert lim.limit == 1
    fixed = Limiter(fixed=5, clock=lambda: next(times), sleep=lambda s: None)
    for status in (503, 429, 200, 200):
        fixed.release(fixed.acquire(), status)
    assert fixed.limit == 5


def bucket_load(
    pacer: Pacer,
    *,
    seconds: float,
    rps: float = math.inf,
    burst: float = 0.0,
    episodes: tuple[float, ...] = (),
    offered: float = 400.0,
    latency: float = 0.03,
    bunch: float = 0.0,
) -> tuple[int, int]:
    """A synthetic load: ``offered`` sends per second (fewer when the pacer says wait) to a
    server with a token bucket (``burst`` tokens refilled at ``rps``) that answers 429 when
    empty, and to 5 consecutive sends from each of the ``episodes`` times; answers come
    ``latency`` after each send, read in bunches every ``bunch`` seconds. Returns the sends
    and the 429s."""
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, float, bool]] = []  # (read at, sent at, got through)
    episode_ends = [e + 5 / offered for e in episodes]
    sent = throttled = 0
    while t < seconds:
        while pending and pending[0][0] <= t:
            read, sent_at, ok = heapq.heappop(pending)
            if ok:
                pacer.on_answer(sent_at, read)
            else:
                pacer.on_throttled(sent_at, read)
        if pacer.delay(t) == 0.0:
            sent += 1
            decided = t + latency
            if not math.isinf(rps):
                tokens = min(burst, tokens + (decided - stamp) * rps)
                stamp = decided
            ok = tokens >= 1 or math.isinf(rps)
            if ok and not math.isinf(rps):
                tokens -= 1
            if any(e <= t < end for e, end in zip(episodes, episode_ends, strict=True)):
                ok = False
            throttled += not ok
            read = math.ceil(decided / bunch) * bunch if bunch else decided
            heapq.heappush(pending, (read, t, ok))
        t += 1 / offered
    return sent, throttled


@pytest.mark.parametrize("burst", [100, 10])
def test_pacer_finds_a_token_buckets_rate_with_few_429s(burst: int) -> None:
    pacer = Pacer()
    sent, throttled = bucket_load(pacer, seconds=10.0, rps=100.0, burst=burst)
    assert pacer.measured and 90 <= pacer.allowed <= 110, pacer.allowed
    assert 80 <= pacer.current_rate(10.0) <= 110  # relaxing up, to find a raised limit
    assert sent >= 0.85 * (burst + 100 * 10)  # close to what the bucket allows
    assert throttled <= 0.05 * sent, (throttled, sent)


def test_pacer_counts_by_send_time_so_bunched_answers_do_not_skew_it() -> None:
    pacer = Pacer()
    bucket_load(pacer, seconds=6.0, rps=100.0, burst=10, bunch=0.1)  # read 10 times a second
    assert pacer.measured and 90 <= pacer.allowed <= 110, pacer.allowed


def test_isolated_429s_only_slow_a_round_trip_down() -> None:
    pacer = Pacer()
    sent, throttled = bucket_load(pacer, seconds=3.0, episodes=(0.5, 1.0, 1.5, 2.0))
    assert throttled == 20 and not pacer.active and not pacer.measured
    assert sent >= 0.95 * 400 * 3.0  # each suspicion lasted about a round trip


def test_429s_while_sending_well_under_what_got_through_are_not_a_rate_limit() -> None:
    pacer = Pacer()
    for i in range(300):  # 300 answers per second got through
        pacer.on_answer(i / 300 - 0.03, i / 300)
    for i in range(20):  # then a trickle of 10 per second, every other one a 429
        now = 1.0 + i / 10
        (pacer.on_throttled if i % 2 else pacer.on_answer)(now - 0.03, now)
    assert not pacer.active


def test_a_rate_of_429s_is_paced_and_the_pace_relaxes_slowly() -> None:
    pacer = Pacer()
    bucket_load(pacer, seconds=3.0, rps=100.0, burst=10)
    measured_at, pace = pacer._since, pacer.rate  # the pace as last set
    assert pacer.current_rate(measured_at + 5.0) == pytest.approx(pace * math.exp(5 * RELAX))


def test_pacer_spaces_sends_and_catches_up_a_little_when_late() -> None:
    pacer = Pacer()
    pacer.on_throttled(sent_at=0.0, now=0.0)  # nothing got through lately: the lowest guess
    assert pacer.active and pacer.suspect
    assert pacer.current_rate(0.0) == pytest.approx(MIN_GUESS)
    assert pacer.delay(0.0) == 0.0
    assert pacer.delay(0.0) == pytest.approx(1 / MIN_GUESS)
    # woken 1 s late: the send due and CATCH_UP more leave at once, not ten
    assert [pacer.delay(1.0) for _ in range(CATCH_UP + 1)] == [0.0] * (CATCH_UP + 1)
    assert pacer.delay(1.0) > 0


def test_an_interrupted_wait_for_the_pace_gives_the_slot_back() -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    lim = Limiter(fixed=2, sleep=interrupt)
    lim.release(lim.acquire(), 429)  # a first 429: pacing (suspected)
    lim.acquire()  # the first send of the pace leaves at once
    with pytest.raises(KeyboardInterrupt):
        lim.acquire()  # the next waits for its turn, and is interrupted
    assert lim.in_flight == 1


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
