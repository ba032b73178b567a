"""The simulator's gate: key check, request counting, latency, throttling and fault injection.

:class:`SimulatorMiddleware` is a pure ASGI middleware in front of the app, so a fault can cut a
connection even after the app has answered. On ``/v0.2/`` it counts the request, sleeps the
configured latency, refuses a missing or wrong key (before anything else, even an unknown
path), then may answer 429 (a token bucket of ``throttle_burst`` tokens refilled at
``throttle_rps``, or a ``throttle_rate`` share at random, alone or in episodes of
``throttle_burst_len`` consecutive requests) or a 5xx, drop the connection, or send the
body slowly (``slow_body_rate`` of answers at ``slow_body_bps``). ``/_sim/``
is never slow or faulty but needs the key too, except the schema and docs pages.
:class:`Faults` holds the seeded random draws, the 429 episodes and the token bucket. This
module never reads or changes the store and never judges a request's body.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.routing import BaseRoute, Match

from .settings import RuntimeConfig
from .work_order import dumps

if TYPE_CHECKING:
    from .state import SimState

DRIP_STEP = 0.05  # seconds between two pieces of a body sent slowly (slow_body_rate)
# paths under /_sim/ that answer without a key: a browser opening the docs cannot send one
OPEN_SIM_PATHS = frozenset({"/_sim/openapi.json", "/_sim/docs", "/_sim/docs/"})


class Faults:
    """Random draws for latency, faults and throttling, 429 episodes and a token bucket.

    The bucket starts full (:meth:`RuntimeConfig.bucket_size`). 429 episodes draw from their
    own generator, seeded from ``fault_seed`` too, so the requests they hit depend only on the
    order requests arrive, not on how many latency or fault draws came between.
    """

    def __init__(self, config: RuntimeConfig):
        self.rng = random.Random(config.fault_seed)
        seed = None if config.fault_seed is None else f"429-episodes:{config.fault_seed}"
        self.episode_rng = random.Random(seed)
        self.episode_left = 0  # requests still to answer 429 in the current episode
        self.episode_until = 0.0  # monotonic time the current episode ends at the latest
        self.gap_left = 0  # clean requests before the next episode
        self.gap_for: tuple[float, int] | None = None  # the (rate, run) the gap was drawn for
        self.lock = threading.Lock()
        self.tokens = config.bucket_size()
        self.stamp = time.monotonic()

    def random(self) -> float:
        """A uniform draw in [0, 1) from the seeded generator."""
        with self.lock:
            return self.rng.random()

    def choice(self, seq: list[str]) -> str:
        """One item of ``seq`` drawn from the seeded generator."""
        with self.lock:
            return self.rng.choice(seq)

    def throttled_at_random(self, rate: float, run: int, lasts: float = math.inf) -> bool:
        """Whether this request is one of the ``rate`` share answered 429 at random.

        ``run`` 1: each request on its own. Longer: 429s come in episodes of ``run``
        consecutive requests, with gaps of clean requests between them drawn from half to
        one and a half of their mean ``run * (1 - rate) / rate``: the share is ``rate`` over
        a few hundred requests already, not only in the long run. A new ``rate`` or ``run``
        draws the gap again. An episode ends after ``run`` requests or ``lasts`` seconds,
        whichever comes first, as a real one does once its ``Retry-After`` has passed: a
        request retried alone after waiting is not throttled by the same episode again.
        """
        if run <= 1:
            return self.random() < rate
        with self.lock:
            if self.episode_left > 0 and time.monotonic() < self.episode_until:
                self.episode_left -= 1
                return True
            self.episode_left = 0
            if self.gap_for != (rate, run):
                mean = run * (1 - rate) / rate
                self.gap_left = round(mean * (0.5 + self.episode_rng.random()))
                self.gap_for = (rate, run)
            if self.gap_left > 0:
                self.gap_left -= 1
                return False
            self.episode_left = run - 1
            self.episode_until = time.monotonic() + lasts
            self.gap_for = None  # the next gap is drawn after this episode
            return True

    def take_token(self, rps: float, burst: float) -> float:
        """Take one token from a bucket of ``burst`` tokens refilled at ``rps`` per second;
        return 0 when granted, else the seconds until one is available."""
        with self.lock:
            t = time.monotonic()
            self.tokens = min(burst, self.tokens + (t - self.stamp) * rps)
            self.stamp = t
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / rps


class DropConnection(Exception):
    """Raised on purpose to cut a connection (fault injection); uvicorn closes the socket."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, DropConnection):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def _plain(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
    hdrs = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode(), v.encode()))
    return hdrs, body, status


async def _disconnect(receive: Any) -> None:
    """Returns once the client has gone (what is left of the request read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class SimulatorMiddleware:
    """Pure ASGI middleware so faults can cut a connection after the app has answered.

    ``routes`` are the API's routes (full paths), to count requests per route: an included
    router is not a list of routes the middleware could walk.
    """

    FAULT_BODIES: ClassVar[dict[int, tuple[bytes, str]]] = {
        500: (b'{"detail":"A server error occurred."}', "application/json"),
        502: (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        503: (b"upstream connect error or disconnect/reset before headers", "text/plain"),
        504: (b"<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html"),
    }

    def __init__(self, app: Any, sim: SimState, routes: Sequence[BaseRoute]):
        self.app = app
        self.sim = sim
        self.routes = list(routes)  # the API's routes, flat, to name what a request asks

    def _route_name(self, scope: dict[str, Any]) -> str:
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            path = getattr(route, "path", "")  # every API route has one; a BaseRoute need not
            if match == Match.FULL:
                return f"{scope['method']} {path}"
            if match == Match.PARTIAL and partial is None:
                partial = path
        return f"{scope['method']} {partial or '(unmatched)'}"

    async def _send_plain(
        self, send: Any, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        hdrs, body, status = _plain(status, body, ctype, headers)
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: dict[str, Any]) -> bool:
        auth = self._auth_words(scope)
        return len(auth) == 2 and auth[0].lower() == "token" and auth[1] in self.sim.config.api_keys

    @staticmethod
    def _auth_words(scope: dict[str, Any]) -> list[str]:
        headers = dict(scope.get("headers") or [])
        return headers.get(b"authorization", b"").decode("latin-1").split()

    async def _deny(self, scope: dict[str, Any], send: Any) -> None:
        cfg = self.sim.config
        detail = (
            "Authentication credentials were not provided."
            if not self._auth_words(scope)
            else "Invalid token."
        )
        extra = {"WWW-Authenticate": "Token"} if cfg.auth_status == 401 else {}
        await self._send_plain(
            send, cfg.auth_status, dumps({"detail": detail}), "application/json", extra
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_sim" or scope["path"].startswith("/_sim/"):
            # the simulator's own view: never faulty or slow, but only for key holders
            if scope["path"] in OPEN_SIM_PATHS or self._authorized(scope):
                await self.app(scope, receive, send)
            else:
                await self._deny(scope, send)
            return
        if not scope["path"].endswith("/"):
            scope = dict(
                scope, path=scope["path"] + "/", raw_path=scope.get("raw_path", b"") + b"/"
            )
        sim, cfg = self.sim, self.sim.config
        with sim.count_lock:
            sim.counts[self._route_name(scope)] += 1
            sim.counts["total"] += 1
        if cfg.latency or cfg.jitter:
            await asyncio.sleep(max(0.0, cfg.latency + sim.faults.random() * cfg.jitter))
        # authentication comes before everything, even for unknown paths
        if not self._authorized(scope):
            await self._deny(scope, send)
            return
        # throttling
        rps = cfg.throttle_rps
        wait = sim.faults.take_token(rps, cfg.bucket_size()) if rps > 0 else 0.0
        if wait or (
            cfg.throttle_rate
            and sim.faults.throttled_at_random(
                cfg.throttle_rate, cfg.throttle_burst_len, lasts=cfg.retry_after
            )
        ):
            retry = max(cfg.retry_after, math.ceil(wait)) if wait else cfg.retry_after
            await self._send_plain(
                send,
                429,
                dumps({"detail": f"Request was throttled. Expected available in {retry} seconds."}),
                "application/json",
                {"Retry-After": str(retry)},
            )
            return
        # faults: a 5xx before anything happens, or a connection cut (before or after the work)
        if cfg.fault_rate and sim.faults.random() < cfg.fault_rate:
            kind = sim.faults.choice(["500", "502", "503", "504", "drop-before", "drop-after"])
            if kind == "drop-before":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"1000")],
                    }
                )
                raise DropConnection("injected fault: connection dropped before processing")
            if kind != "drop-after":
                status = int(kind)
                body, ctype = self.FAULT_BODIES[status]
                await self._send_plain(send, status, body, ctype)
                return
            await self._cut_after(scope, receive, send)
            return
        if cfg.slow_body_rate and sim.faults.random() < cfg.slow_body_rate:
            await self._drip(scope, receive, send, cfg.slow_body_bps)
            return
        await self.app(scope, receive, send)

    async def _answer_of(
        self, scope: dict[str, Any], receive: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Let the app answer, held back: its status, headers (no Content-Length) and body."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        return start.get("status", 200), headers, b"".join(chunks)

    async def _cut_after(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Let the app do the work, then send only half of its answer and cut the connection."""
        status, headers, body = await self._answer_of(scope, receive)
        headers.append((b"content-length", str(max(len(body), 2)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        raise DropConnection("injected fault: connection dropped after processing")

    async def _drip(self, scope: dict[str, Any], receive: Any, send: Any, bps: float) -> None:
        """Let the app answer, then send its headers at once and its body at ``bps`` bytes
        per second (a piece every 50 ms, or a byte at a time when slower than 20 bytes/s);
        stops early once the client has gone."""
        status, headers, body = await self._answer_of(scope, receive)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        piece = max(1, int(bps * DRIP_STEP))
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            for at in range(0, len(body), piece):
                done, _ = await asyncio.wait({gone}, timeout=piece / bps)
                if done:
                    return
                end = at + piece
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[at:end],
                        "more_body": end < len(body),
                    }
                )
            if not body:
                await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
