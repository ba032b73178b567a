"""How many requests a client keeps in flight, and how fast it sends them.

One :class:`Limiter` per :class:`~dfs_analytics.Client`, shared by everything the client does
at once: every attempt takes a slot before it is sent and gives it back when its answer is
read. :class:`ConcurrencyController` sets the number of slots from latency and throttling (in
the manner of TCP Vegas); :class:`Pacer` spaces sends once a 429 says a rate limit is reached.
``Client(max_workers=N)`` pins the slots to N. How both decide: docs/architecture.md.

Never sends a request, never sleeps or waits while holding its lock, and the controllers
never read the clock or the network themselves (they are handed the times).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 12  # slots to start with (adaptive)
START_RATE = 400.0  # requests per second to start at: after the first round trip, slow start
# resumes from START_RATE x the fastest round trip when that is more than INITIAL slots (a
# distant server gets as many requests per second at first as a near one, not fewer)
GROW_RTT = 1.5  # median round trip below this multiple of the baseline: latency is flat
# (1.5, as the rttTolerance of Netflix's Gradient2 limiter: a client's own CPU and scheduling
# delays stretch round trips by that much without any queue at the server)
SHRINK_RTT = 2.0  # median round trip above this multiple: queueing, give slots back
SHRINK = 0.8  # share of the slots kept per round trip spent queueing
BACKOFF = 0.5  # share of the slots kept after a 429 / 503 / lost answer
BASELINE_WINDOWS = 16  # round trips over which the fastest one is the baseline
PACE_SHARE = 0.9  # share of the measured allowed rate the pacer sends at
RELAX = 0.05  # per second: how fast a measured pace rises again (exponentially)
PROBE = math.log(2.0) / 2  # per second: a guessed pace doubles every 2 s until measured
DOUBLING = 0.2  # seconds: slow start doubles the limit at most this often
MEASURE_SECONDS = 0.5  # the shortest span over which the allowed rate is measured
QUIET = 30.0  # seconds without a 429 after which pacing stops
MIN_GUESS = 10.0  # requests per second, the lowest first guess of a pace
MIN_RATE = 0.2  # requests per second, the slowest pace


class ConcurrencyController:
    """Decides the number of requests in flight from round-trip times and overload signals.

    Pure decisions (no lock, no clock of its own): :class:`Limiter` calls it under its lock
    with the times it measured, so tests can feed it synthetic latencies and statuses.
    """

    def __init__(self, initial: int = INITIAL, *, floor: int = 1, ceiling: int = 64) -> None:
        self.floor, self.ceiling = floor, ceiling
        self.limit = float(min(max(initial, floor), ceiling))
        self.slow_start = True
        self.baseline = math.inf  # the fastest recent round trip, in seconds
        self._window_mins: deque[float] = deque(maxlen=BASELINE_WINDOWS)
        self._rtts: list[float] = []  # round-trip times of the answers in this round trip
        self._round_start = -math.inf  # when this round trip began, and the limit then
        self._round_limit = self.limit
        self._busy = False  # every slot was in use at some point in this round trip
        self._last_cut = -math.inf  # when the limit was last cut
        self.cuts = 0  # how many times the limit was cut on overload

    @property
    def slots(self) -> int:
        """The limit as a whole number of slots."""
        return int(self.limit)

    def on_answer(self, rtt: float, saturated: bool, now: float = 0.0) -> None:
        """One answer that says nothing of overload, ``rtt`` seconds after it was sent at
        ``now - rtt``; ``saturated``: every slot was in use when it was sent."""
        rtts = self._rtts
        if not rtts:
            self._round_start, self._round_limit = now, self.limit
        rtts.append(rtt)
        if rtt < self.baseline:
            self.baseline = rtt
        self._busy = self._busy or saturated
        if self.slow_start and saturated and rtt <= self.baseline * GROW_RTT:
            # one more slot per answer (doubling per round trip), but at most doubling per
            # DOUBLING seconds: a server's burst allowance ends before the limit runs away
            cap = self._round_limit * 2.0 ** ((now - self._round_start) / DOUBLING)
            self.limit = min(self.ceiling, self.limit + 1.0, max(self.limit, cap))
        if len(rtts) >= max(4, self.slots):
            self._end_round()

    def _end_round(self) -> None:
        rtts = sorted(self._rtts)
        typical = rtts[len(rtts) // 2]  # the median: a few slow answers do not end growth
        if not self._window_mins and self.slow_start and self.cuts == 0:
            # the first round trip measured: start at START_RATE whatever the latency
            self.limit = max(self.limit, min(self.ceiling, START_RATE * rtts[0]))
        self._window_mins.append(rtts[0])
        self.baseline = min(self._window_mins)
        ratio = typical / self.baseline if self.baseline > 0 else 1.0
        if ratio > SHRINK_RTT:
            self.slow_start = False
            self.limit = max(self.floor, self.limit * SHRINK)
        elif ratio > GROW_RTT:
            self.slow_start = False
        elif self._busy and not self.slow_start:  # grows again, carefully
            self.limit = min(self.ceiling, self.limit + max(1.0, math.sqrt(self.limit)))
        self._rtts, self._busy = [], False

    def on_overload(self, sent_at: float, now: float) -> bool:
        """A 429, a 503 or no answer, for a request sent at ``sent_at``: halve the limit,
        unless it was already cut after that request was sent. Returns whether it was cut."""
        self.slow_start = False
        if sent_at < self._last_cut:
            return False
        self.limit = max(self.floor, self.limit * BACKOFF)
        self._last_cut = now
        self.cuts += 1
        self._rtts, self._busy = [], False
        return True


class Pacer:
    """Spaces sends once the server answered 429, at a rate measured from its answers.

    Pure decisions, called under the :class:`Limiter`'s lock with the current time, so tests
    can feed it synthetic answers.
    """

    def __init__(self) -> None:
        self.active = False
        self.allowed = math.inf  # the rate the server allows, as last measured (requests/s)
        self.rate = math.inf  # the pace as last set (requests/s), before relaxing
        self.measured = False  # ``allowed`` comes from a measurement, not a guess
        self._last_send = -math.inf
        self._anchor = 0.0  # when the pace was last set: the server's budget was spent then
        self._through = 0  # answers that were not 429 since the anchor
        self._last_429 = -math.inf
        self._recent: deque[float] = deque()  # times of answers in the last second

    def on_answer(self, now: float) -> None:
        """An answer (or a lost one) that was not a 429: it went through the server's limit."""
        recent = self._recent
        recent.append(now)
        if recent[0] < now - 1.0:
            while recent and recent[0] < now - 1.0:
                recent.popleft()
        if self.active:
            self._through += 1

    def on_throttled(self, sent_at: float, now: float) -> bool:
        """A 429 for a request sent at ``sent_at``. Returns whether the pace changed.

        Answers to requests sent before the pace was last set say nothing new. A 429 while
        pacing below the measured allowed rate is not explained by the pace (the server
        throttles for another reason, or its limit dropped): pacing stops, and starts afresh
        at the next 429, so that 429s unrelated to the rate cannot drive the pace down.
        """
        self._last_429 = now
        if not self.active:
            # a first guess: half of what got through in the last second; measured below
            self.active, self.measured = True, False
            self.allowed = math.inf
            self._set(max(MIN_GUESS, 0.5 * len(self._recent)), now)
            return True
        if sent_at < self._anchor:
            return False
        span = now - self._anchor
        if self.measured and self.current_rate(now) < self.allowed:
            self.active = False
            return True
        if span < MEASURE_SECONDS or self._through < 2:
            return False  # too soon to measure (a first guess keeps doubling meanwhile)
        # the budget was spent at the anchor and is spent again now: what got through in
        # between is what the server allows over that span, whatever its burst
        self.allowed = self._through / span
        self.measured = True
        self._set(max(MIN_RATE, PACE_SHARE * self.allowed), now)
        return True

    def _set(self, rate: float, now: float) -> None:
        self.rate = rate
        self._anchor = now
        self._through = 0

    def current_rate(self, now: float) -> float:
        """The pace now, in requests per second (infinite when not pacing)."""
        if not self.active:
            return math.inf
        growth = RELAX if self.measured else PROBE
        return self.rate * math.exp(growth * max(0.0, now - self._anchor))

    def delay(self, now: float) -> float:
        """Seconds until the next send may leave: 0 means now (and it is counted as sent);
        otherwise ask again then (nothing is reserved, so a pace that rises is felt at
        once)."""
        if not self.active:
            return 0.0
        if now - self._last_429 > QUIET:
            self.active = False
            return 0.0
        interval = 1.0 / self.current_rate(now)
        due = self._last_send + interval
        if now < due:
            return due - now
        # late by less than one interval: keep the rhythm; later: start it again from now
        self._last_send = due if now - due < interval else now
        return 0.0


@dataclass
class Usage:
    """What a :class:`Limiter` did while a piece of work ran (see :meth:`Limiter.track`):
    ``peak`` the most requests in flight at once, ``peak_limit`` the highest limit,
    ``throttled`` the 429 answers received."""

    peak: int = 0
    peak_limit: int = 0
    throttled: int = 0


class Limiter:
    """The slots one client's requests take (see the module docstring); thread-safe.

    ``fixed`` pins the number of slots; otherwise a :class:`ConcurrencyController` between
    ``floor`` and ``ceiling`` decides it.
    """

    def __init__(
        self,
        *,
        fixed: int | None = None,
        ceiling: int = 64,
        floor: int = 1,
        initial: int = INITIAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fixed = fixed
        self.controller: ConcurrencyController | None = None
        if fixed is None:
            self.controller = ConcurrencyController(initial, floor=floor, ceiling=ceiling)
            self._slots = self.controller.slots
        else:
            self._slots = fixed
        self.pacer = Pacer()
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition(threading.Lock())
        self.in_flight = 0
        self.sent = 0
        self.throttled = 0  # 429 answers received
        self.peak = 0
        self._trackers: list[Usage] = []

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return self._slots

    @property
    def rate(self) -> float | None:
        """The pace in requests per second, or None when not pacing."""
        with self._cond:
            rate = self.pacer.current_rate(self._clock())
        return None if math.isinf(rate) else rate

    def acquire(self) -> tuple[float, bool]:
        """Wait for a slot (and, when pacing, the send's turn); returns the ticket to give
        back to :meth:`release`: the time the request leaves, and whether every slot was in
        use."""
        with self._cond:
            while self.in_flight >= self._slots:
                self._cond.wait()
            self.in_flight += 1
            self.sent += 1
            n = self.in_flight
            if n > self.peak:
                self.peak = n
            for usage in self._trackers:
                if n > usage.peak:
                    usage.peak = n
            now = self._clock()
            wait = self.pacer.delay(now) if self.pacer.active else 0.0
        while wait > 0:  # paced: wait for this send's turn, holding its slot
            self._sleep(min(wait, 0.05))
            with self._cond:
                now = self._clock()
                wait = self.pacer.delay(now)
        return now, n >= self._slots

    def release(self, ticket: tuple[float, bool], status: int | None) -> None:
        """Give the slot back: ``status`` of the answer; None when none came in time (a
        sign of overload), 0 when the connection failed otherwise (no sign either way)."""
        sent_at, saturated = ticket
        with self._cond:
            now = self._clock()
            self.in_flight -= 1
            controller = self.controller
            if status == 429:
                self.throttled += 1
                for usage in self._trackers:
                    usage.throttled += 1
                self.pacer.on_throttled(sent_at, now)
                if controller is not None:
                    controller.on_overload(sent_at, now)
            elif status == 0:
                self.pacer.on_answer(now)
            elif status is None or status == 503:
                self.pacer.on_answer(now)
                if controller is not None:
                    controller.on_overload(sent_at, now)
            else:
                self.pacer.on_answer(now)
                if controller is not None:
                    controller.on_answer(now - sent_at, saturated, now)
            if controller is not None:
                slots = controller.slots
                if slots != self._slots:
                    self._slots = slots
                    for usage in self._trackers:
                        if slots > usage.peak_limit:
                            usage.peak_limit = slots
            free = self._slots - self.in_flight
            if free > 0:
                self._cond.notify(free)

    def cancel(self, ticket: tuple[float, bool]) -> None:
        """Give the slot back without a verdict (the attempt was interrupted here)."""
        with self._cond:
            self.in_flight -= 1
            self._cond.notify()

    def track(self) -> _Tracking:
        """A context manager whose value (a :class:`Usage`) records the peak concurrency
        and the 429s while it is open."""
        return _Tracking(self)

    def __repr__(self) -> str:
        rate = self.rate
        mode = f"fixed={self.fixed}" if self.fixed is not None else "adaptive"
        pace = f", pace={rate:.1f}/s" if rate is not None else ""
        return (
            f"Limiter({mode}, limit={self._slots}, in_flight={self.in_flight}, "
            f"throttled={self.throttled}{pace})"
        )


class _Tracking:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.usage = Usage(peak_limit=limiter.limit)

    def __enter__(self) -> Usage:
        with self.limiter._cond:
            self.limiter._trackers.append(self.usage)
        return self.usage

    def __exit__(self, *exc: object) -> None:
        with self.limiter._cond:
            self.limiter._trackers.remove(self.usage)
