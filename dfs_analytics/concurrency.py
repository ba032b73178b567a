"""How many requests a client keeps in flight, and how fast it sends them.

One :class:`Limiter` per :class:`~dfs_analytics.Client`, shared by everything the client does
at once: every attempt takes a slot before it is sent and gives it back when its answer is
read. :class:`ConcurrencyController` sets the number of slots from latency and throttling (in
the manner of TCP Vegas); :class:`Pacer` spaces sends once a 429 says a rate limit is reached.
``Client(max_workers=N)`` pins the slots to N. How both decide: docs/architecture.md.

Never sends a request, never sleeps or waits while holding the lock answers are reported
under, and the controllers never read the clock or the network themselves (they are handed
the times).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# -- the number of slots (ConcurrencyController)
INITIAL = 12  # slots to start with (adaptive)
START_RATE = 400.0  # requests per second to start at: after the first round trip, slow start
# resumes from START_RATE x the fastest round trip when that is more than INITIAL slots (a
# distant server gets as many requests per second at first as a near one, not fewer)
GROW_RTT = 1.5  # median round trip below this multiple of the baseline: latency is flat
# (1.5, as the rttTolerance of Netflix's Gradient2 limiter: a client's own CPU and scheduling
# delays stretch round trips by that much without any queue at the server)
SHRINK_RTT = 2.0  # median round trip above this multiple: queueing, give slots back
SHRINK = 0.8  # share of the slots kept per round trip spent queueing
BACKOFF = 0.5  # share of the slots kept when overload signals are a rate (SIGNAL_SHARE)
BASELINE_WINDOWS = 16  # round trips over which the fastest one is the baseline
DOUBLING = 0.2  # seconds: slow start doubles the limit at most this often

# -- what a rate of 429s is (both)
WINDOW = 50  # the answers over which the share of 429s (503s, lost answers) is taken
SIGNAL_SHARE = 0.15  # more than this share of the last WINDOW answers is a rate, not a
# hiccup: a gateway's burst of 5 consecutive 429s among 50 answers is 10%

# -- the send rate (Pacer)
SUSPECT_OK = 10  # answers through after a first 429 that end the suspicion of a rate limit
MIN_GUESS = 10.0  # requests per second, the lowest first guess of a pace
GAP = 0.5  # seconds between the sends of two 429s that are still one run (budget spent)
MIN_SPAN = 0.02  # seconds of sending: the shortest run to guess the allowed rate from
MIN_THROUGH = 2  # requests through during a run, at least, to guess the allowed rate from
MEASURE_SECONDS = 0.5  # a run this long (in seconds of sending), or with
MEASURE_THROUGH = 20  # this many requests through, measures the allowed rate
PACE_SHARE = 0.9  # share of the measured allowed rate the pacer sends at
RELAX = 0.02  # per second: how fast a measured pace rises again (exponentially)
PROBE = math.log(2.0) / 0.5  # per second: an estimated pace doubles every 0.5 s while no 429
GUESS_PROBE = math.log(2.0) / 0.2  # the same before any estimate: a first guess is often far
WELL_UNDER = 0.5  # 429s while sending under this share of what recently got through (or a
# run getting through under this share of the pace) are not explained by the pace
PEAK_SECONDS = 10.0  # how long the most answers that got through in one second is remembered
HISTORY = 3.0  # seconds: how long the send times of requests that got through are kept
QUIET = 30.0  # seconds without a 429 after which pacing stops
MIN_RATE = 0.2  # requests per second, the slowest pace
CATCH_UP = 2  # sends a late pacer may let leave at once to keep its rhythm


class Signals:
    """The last ``size`` answers, and how many of them were signals (429s; for the controller,
    503s and lost answers too). Pure bookkeeping."""

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self.count = 0
        self._flags: deque[bool] = deque()
        self._times: deque[float] = deque()  # when each of them came

    def add(self, signal: bool, now: float) -> None:
        """One answer at ``now``: a signal or not."""
        flags = self._flags
        if len(flags) == self.size:
            self._times.popleft()
            if flags.popleft():
                self.count -= 1
        flags.append(signal)
        self._times.append(now)
        if signal:
            self.count += 1

    def is_rate(self) -> bool:
        """Whether the signals are a rate, not isolated: more than ``SIGNAL_SHARE`` of
        ``size`` answers (of ``size`` even before that many came: a load's first answers are
        too few to tell a rate)."""
        return self.count > SIGNAL_SHARE * self.size

    def answer_rate(self, last: int = 10) -> float:
        """Answers per second over the span of the ``last`` ones (infinite when they came
        at once, 0 with fewer than two)."""
        times = self._times
        n = min(last, len(times))
        if n < 2:
            return 0.0
        span = times[-1] - times[-n]
        return (n - 1) / span if span > 0 else math.inf

    def clear(self) -> None:
        """Forget every answer (after a decision they led to)."""
        self.count = 0
        self._flags.clear()
        self._times.clear()


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
        self._signals = Signals()  # the last answers since that cut: which said overload
        self.cuts = 0  # how many times the limit was cut on overload

    @property
    def slots(self) -> int:
        """The limit as a whole number of slots."""
        return int(self.limit)

    def on_answer(self, rtt: float, saturated: bool, now: float = 0.0) -> None:
        """One answer that says nothing of overload, ``rtt`` seconds after it was sent at
        ``now - rtt``; ``saturated``: every slot was in use when it was sent."""
        if now - rtt >= self._last_cut:
            self._signals.add(False, now)
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
        """A 429, a 503 or no answer, for a request sent at ``sent_at``. Returns whether the
        limit was cut: halved once such answers are a rate (more than ``SIGNAL_SHARE`` of the
        last ``WINDOW`` answers), and once per round trip (answers to requests sent before
        the last cut say nothing new: they are not counted)."""
        if sent_at < self._last_cut:
            return False
        signals = self._signals
        signals.add(True, now)
        if not signals.is_rate():
            return False  # an isolated one (a gateway's hiccup): nothing to learn
        self.slow_start = False
        self.limit = max(self.floor, self.limit * BACKOFF)
        self._last_cut = now
        self.cuts += 1
        signals.clear()
        self._rtts, self._busy = [], False
        return True


class Pacer:
    """Spaces sends once the server answers 429 at a rate, at a rate measured from its answers.

    Pure decisions, called under the :class:`Limiter`'s lock with the current time, so tests
    can feed it synthetic answers.

    A first 429 only makes it suspect a rate limit: it paces at a first guess until
    ``SUSPECT_OK`` answers got through, then stops unless 429s became a rate (more than
    ``SIGNAL_SHARE`` of the last ``WINDOW`` answers): an isolated 429 is a gateway's hiccup,
    retried after its ``Retry-After`` at the cost of a round trip of slower sends. So is a 429
    while sending well under what recently got through (``WELL_UNDER``).

    A run of 429s (sent no more than ``GAP`` seconds apart) says the server's budget stayed
    spent: the requests sent in between that got through, per second of sending, are the rate
    it allows. Counted by the time each request was sent (the order the server saw them in),
    not by when answers were read, so answers read in bunches do not skew it.
    """

    def __init__(self) -> None:
        self.active = False
        self.allowed = math.inf  # the rate the server allows, as last measured (requests/s)
        self.rate = math.inf  # the pace as last set (requests/s), before relaxing or probing
        self.measured = False  # ``allowed`` comes from a measurement, not a guess
        self.suspect = False  # pacing on a first 429, not yet on a rate of them
        self.estimated = False  # the pace comes from what got through during a run of 429s
        self._last_send = -math.inf
        self._since = -math.inf  # when the pace was last set
        self._run = (math.inf, -math.inf)  # when the first and last 429s of a run were sent
        self._through: list[float] = []  # when the recent requests that got through were sent
        self._cleared = 0  # answers that got through since the suspicion began
        self._last_429 = -math.inf
        self._signals = Signals()  # the last answers, and which were 429s
        self._recent: deque[float] = deque()  # times of the answers not 429 in the last second
        self._peak = 0  # the most answers that got through in one second, lately
        self._peak_at = -math.inf

    def on_answer(self, sent_at: float, now: float) -> None:
        """An answer (or a lost one) that was not a 429, to a request sent at ``sent_at``: it
        went through the server's limit."""
        recent = self._recent
        recent.append(now)
        if recent[0] < now - 1.0:
            while recent and recent[0] < now - 1.0:
                recent.popleft()
        if len(recent) >= self._peak or now - self._peak_at > PEAK_SECONDS:
            self._peak, self._peak_at = len(recent), now
        self._signals.add(False, now)
        through = self._through
        if not through or sent_at >= through[-1]:
            through.append(sent_at)
        else:
            bisect.insort(through, sent_at)
        if through[0] < sent_at - HISTORY:
            del through[: bisect.bisect_left(through, sent_at - HISTORY)]
        if self.suspect:
            self._cleared += 1
            if self._cleared >= SUSPECT_OK and not self._signals.is_rate():
                self.active = self.suspect = False  # an isolated 429: back to full speed

    def on_throttled(self, sent_at: float, now: float) -> bool:
        """A 429 for a request sent at ``sent_at``, answered at ``now``. Returns whether the
        pace changed.

        Not pacing, a 429 starts a suspicion at half of what got through in the last second.
        Once 429s are a rate, what got through during their run (once ``MIN_SPAN`` long) is
        the pace, rising by ``PROBE`` while no 429 comes (by ``GUESS_PROBE`` while the pace
        is still the first guess, often far too low); a run ``MEASURE_SECONDS`` long (or
        with ``MEASURE_THROUGH`` requests through) measures the allowed rate, and the pace is
        then ``PACE_SHARE`` of it, rising by ``RELAX``. A run getting through well under the
        pace goes back to guessing (the server's limit dropped); one getting through more
        than the pace raises it (the pace was not what limited).
        """
        first, last = self._run
        if sent_at > last + GAP or sent_at < first - GAP:  # a new run: the budget is spent
            first = last = sent_at
        self._run = first, last = min(first, sent_at), max(last, sent_at)
        self._last_429 = now
        self._signals.add(True, now)
        if not self.active:
            if self._well_under():
                return False
            self.active = self.suspect = True
            self.measured, self.estimated, self.allowed, self._cleared = False, False, math.inf, 0
            self._set(max(MIN_GUESS, 0.5 * len(self._recent)), now)
            self._last_send = now - 1.0 / self.rate  # the rhythm starts with the next send
            return True
        if self.suspect:
            if not self._signals.is_rate():
                return False
            self.suspect = False  # a rate of 429s: a rate limit
        span = last - first
        through = self._through
        n = bisect.bisect_left(through, last) - bisect.bisect_right(through, first)
        if span < MIN_SPAN or n < MIN_THROUGH:
            return False  # too short a run to tell
        estimate, pace = n / span, self.current_rate(now)
        if estimate > pace or not self.estimated:
            # a first estimate, or more got through than the pace sends (a guess too low, or
            # 429s for another reason): pace at it, and measure from here, at that pace only
            # (sends slower than the allowed rate left the server's budget unspent for a
            # while: a run that holds them says too little)
            self.estimated = True
            self._set(max(MIN_GUESS, estimate), now)
        elif self.measured and estimate < WELL_UNDER * pace:
            self.measured, self.allowed = False, math.inf  # the limit dropped: guess again
            self._set(max(MIN_GUESS, estimate), now)
        elif span >= MEASURE_SECONDS or n >= MEASURE_THROUGH:
            self.allowed, self.measured = estimate, True
            self._set(max(MIN_RATE, PACE_SHARE * estimate), now)
        elif self.measured:
            return False
        else:  # a better guess, from a longer run sent faster than the server allows
            self._set(estimate, now)
            return True
        self._run = (sent_at, sent_at)  # the next measure starts here
        return True

    def _well_under(self) -> bool:
        """Whether the client sends (over its last few answers) well under what recently got
        through: then a 429 does not say the rate is too high."""
        return self._signals.answer_rate() < WELL_UNDER * self._peak

    def _set(self, rate: float, now: float) -> None:
        self.rate = rate
        self._since = now

    def current_rate(self, now: float) -> float:
        """The pace now, in requests per second (infinite when not pacing)."""
        if not self.active:
            return math.inf
        if self.measured:
            growth = RELAX
        else:
            growth = 0.0 if self.suspect else PROBE if self.estimated else GUESS_PROBE
        return self.rate * math.exp(growth * max(0.0, now - self._since))

    def delay(self, now: float) -> float:
        """Seconds until the next send may leave: 0 means now (and it is counted as sent);
        otherwise ask again then (nothing is reserved, so a pace that rises is felt at
        once)."""
        if not self.active:
            return 0.0
        if now - self._last_429 > QUIET:
            self.active = self.suspect = False
            return 0.0
        interval = 1.0 / self.current_rate(now)
        due = self._last_send + interval
        if now < due:
            return due - now
        # late (a busy machine wakes sleepers late): keep the rhythm, catching up at most
        # CATCH_UP sends at once; later: start it again from there
        self._last_send = max(due, now - CATCH_UP * interval)
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
        self._turn = threading.Lock()  # held by the one sender waiting for the pace
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
        if wait > 0:
            try:
                now = self._wait_turn()
            except BaseException:  # interrupted while waiting: the slot is given back
                self.cancel((now, False))
                raise
        return now, n >= self._slots

    def _wait_turn(self) -> float:
        """Paced: wait for this send's turn, holding its slot, one sender at a time (the
        others queue on a lock rather than all waking at each turn). Returns the time it
        leaves."""
        with self._turn:
            while True:
                with self._cond:
                    now = self._clock()
                    wait = self.pacer.delay(now)
                if wait <= 0:
                    return now
                self._sleep(min(wait, 0.05))

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
                self.pacer.on_answer(sent_at, now)
            elif status is None or status == 503:
                self.pacer.on_answer(sent_at, now)
                if controller is not None:
                    controller.on_overload(sent_at, now)
            else:
                self.pacer.on_answer(sent_at, now)
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
