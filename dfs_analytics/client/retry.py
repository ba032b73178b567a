"""The retry loop: one request sent again while the policy allows, and never past its budget.

A connection that could not be opened and a 429 are retried for every method; 500/502/503/504
and connections cut mid-answer only for idempotent methods (``IDEMPOTENT``). Each wait
(exponential backoff with jitter, or the server's ``Retry-After``) must end within the call's
``retry_budget`` and holds no slot of the limiter; a response given up on carries a note
saying how long the call tried. A connection refused on this machine (nothing listens there)
is tried again only briefly, and the error says to start the server.

It never re-sends a non-idempotent write whose answer was lost (that raises
OutcomeUnknownError), never retries inside urllib3, and never reads or judges a body.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from datetime import datetime, timezone

import requests

from ..concurrency import Limiter
from ..config import Settings, is_loopback
from ..errors import OutcomeUnknownError, TransportError
from .safety import SlowBodyTimeout

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_BACKOFF = 60.0  # seconds between two attempts, at most (Retry-After aside)
#: a connection refused on this machine: retries at most, each after at most LOCAL_BACKOFF
#: seconds (a local server restarting is back within a second; one not started never is)
LOCAL_RETRIES = 2
LOCAL_BACKOFF = 0.25
SIMULATOR_PORT = 8765  # the port ``dfs-analytics simulate`` listens on by default

# failures where no answer came: the request may or may not have left
_NO_ANSWER = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """What messages say of one call: its ``method``, the ``path`` shown (never a user or
    password), the ``host`` it went to, and a ``hint`` added when no answer came."""

    method: str
    path: str
    host: str
    hint: str = ""


def send_with_retries(
    send_once: Callable[[], requests.Response],
    call: Call,
    settings: Settings,
    limiter: Limiter | None,
) -> requests.Response:
    """``send_once()`` until an answer the policy does not retry, or retries and budget run
    out; returns that last response whatever its status (with a :func:`retry_note` when it was
    given up on). Raises TransportError, or OutcomeUnknownError for a non-idempotent write
    whose answer was lost. Every attempt holds one slot of ``limiter`` (None: no limit),
    given back before any wait."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            response = _attempt(send_once, limiter)
        except _NO_ANSWER as exc:
            sent = not isinstance(exc, requests.ConnectTimeout) and not _never_sent(exc)
            local = not sent and _refused_here(exc, call.host)
            if not sent or call.method in IDEMPOTENT:
                # a timeout says the server is overloaded; a cut connection says nothing
                delay = backoff(settings, attempt, quick=not isinstance(exc, requests.Timeout))
                if local:  # nothing listens on this machine: no point in waiting long
                    delay = min(delay, LOCAL_BACKOFF)
                if (not local or attempt <= LOCAL_RETRIES) and _may_retry(
                    settings, attempt, started, delay
                ):
                    wait(delay)
                    continue
            raise _no_answer(call, settings, exc, sent, attempt, started, local) from None
        status = response.status_code
        if status != 429 and not (status in RETRY_STATUSES and call.method in IDEMPOTENT):
            return response
        advised = retry_after(response)
        if advised is not None:
            delay = advised
        else:  # a 429 or a 503 says the server is overloaded; a 500, 502 or 504 does not
            delay = backoff(settings, attempt, quick=status not in (429, 503))
        if not _may_retry(settings, attempt, started, delay):
            _NOTES.put(response, _gave_up(settings, attempt, started, advised))
            return response
        response.close()
        wait(delay)


def wait(seconds: float) -> None:
    """The wait before a retry (the Retry-After or the backoff): a plain sleep, holding no
    slot of the limiter (the attempt gave it back). Returns once ``seconds`` have passed."""
    time.sleep(seconds)


def _attempt(
    send_once: Callable[[], requests.Response], limiter: Limiter | None
) -> requests.Response:
    """One attempt holding one slot of ``limiter``, given back (with what it says of the
    server's load) before any wait: a timeout says overload, a cut connection does not."""
    ticket = limiter.acquire() if limiter is not None else None
    try:
        response = send_once()
        _ = response.content  # a connection cut mid-answer surfaces here
    except _NO_ANSWER as exc:
        if limiter is not None and ticket is not None:
            limiter.release(ticket, None if isinstance(exc, requests.Timeout) else 0)
        raise
    except BaseException:
        if limiter is not None and ticket is not None:
            limiter.cancel(ticket)
        raise
    if limiter is not None and ticket is not None:
        limiter.release(ticket, response.status_code)
    return response


def backoff(settings: Settings, attempt: int, quick: bool = False) -> float:
    """Seconds to wait before retry number ``attempt``: exponential, with jitter. ``quick``
    (the failure says nothing of the server's load: a connection cut, a 500, 502 or 504):
    the first retry waits only the jitter, as urllib3 retries at once, and later ones as
    usual; with 5% of such faults a load's slowest request no longer waits 0.3-0.45 s."""
    jitter = random.uniform(0, settings.backoff_factor / 2)
    if quick and attempt == 1:
        return jitter
    base = settings.backoff_factor * 2 ** (attempt - 1)
    return min(MAX_BACKOFF, base + jitter)


def _may_retry(settings: Settings, attempt: int, started: float, delay: float) -> bool:
    """Whether another attempt is allowed: retries left, and the wait ends in budget."""
    if attempt > settings.retries:
        return False
    return time.monotonic() - started + delay <= settings.retry_budget


def _gave_up(settings: Settings, attempt: int, started: float, advised: float | None) -> str:
    """The note of a response given up on: attempts, time spent, the server's advice."""
    elapsed = time.monotonic() - started
    return (
        f"Gave up after {attempt} attempt(s) over {elapsed:.1f} s "
        f"(retries={settings.retries}, retry_budget={settings.retry_budget:g} s"
        + (f"; the server asked to wait {advised:g} s more" if advised else "")
        + ")."
    )


def _no_answer(
    call: Call,
    settings: Settings,
    exc: BaseException,
    sent: bool,
    attempt: int,
    started: float,
    local: bool = False,
) -> TransportError:
    """The error of a call that got no answer: OutcomeUnknownError for a write that left
    (it may have been applied), else TransportError saying how long the call tried (and, for
    a connection refused on this machine, ``local``, to start the server; for a body that
    came too slowly, why and what to change)."""
    method, path, reason = call.method, call.path, _reason(exc)
    slow = (
        f" The server sent the answer's headers, but {exc.detail}: a slow or stalled link, "
        "or a proxy holding the answer back. A larger Client(timeout=...) gives a slow link "
        "more time (each `timeout` seconds of a body must bring `timeout` KiB)."
        if isinstance(exc, SlowBodyTimeout)
        else ""
    )
    if sent and method not in IDEMPOTENT:
        return OutcomeUnknownError(
            f"{method} {path}: the request was sent but its answer was lost ({reason}); "
            "it may or may not have been applied. Check the server's state before "
            "sending it again." + slow,
            method=method,
            path=path,
        )
    elapsed = time.monotonic() - started
    if slow:
        advice = slow.lstrip()
    elif local:
        advice = not_listening_hint(call.host)
    else:
        advice = "Check the base URL / site id and the network."
    return TransportError(
        f"{method} {path}: no answer from {call.host} ({reason}) after "
        f"{attempt} attempt(s) over {elapsed:.1f} s (retries={settings.retries}, "
        f"retry_budget={settings.retry_budget:g} s). {advice}" + call.hint,
        method=method,
        path=path,
    )


def not_listening_hint(host: str) -> str:
    """What to do when nothing listens at ``host`` (``name:port``) on this machine: start the
    server, or the simulator (``dfs-analytics simulate``) when it is meant to be one."""
    port = urllib.parse.urlsplit("//" + host).port
    command = "dfs-analytics simulate" + (
        f" --port {port}" if port is not None and port != SIMULATOR_PORT else ""
    )
    return (
        f"Nothing is listening at {host} on this machine: is the server running? To serve "
        f"the local simulator there, run `{command}` (and keep it running)."
    )


def _refused_here(exc: BaseException, host: str) -> bool:
    """Whether ``exc`` is a connection refused by this machine (``host`` is a loopback
    address or ``localhost``): nothing listens on that port."""
    if not is_loopback(urllib.parse.urlsplit("//" + host).hostname):
        return False
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:  # the cause sits a few wrappers deep (requests -> urllib3 -> socket)
        err = todo.pop()
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        if isinstance(err, ConnectionRefusedError):
            return True
        seen.add(id(err))
        todo += [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
    return "Connection refused" in repr(exc)


def _never_sent(exc: BaseException) -> bool:
    """Whether a connection error happened before the request left (connection refused, DNS)."""
    text = repr(exc)
    return any(
        s in text
        for s in (
            "NewConnectionError",
            "NameResolutionError",
            "Connection refused",
            "Failed to establish",
        )
    )


def _reason(exc: BaseException) -> str:
    """The short cause of a connection error, as messages show it."""
    text = str(exc)
    for pattern in (
        r"\[Errno -?\d+\] [^'\")]+",
        r"Connection refused",
        r"Read timed out",
        r"IncompleteRead[^)]*\)",
        r"Connection aborted",
        r"RemoteDisconnected[^)]*",
        r"Name or service not known",
    ):
        m = re.search(pattern, text)
        if m:
            return m.group(0)
    return type(exc).__name__


def retry_after(response: requests.Response) -> float | None:
    """The server's ``Retry-After`` in seconds (a number or an HTTP date), if any."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _ResponseNotes:
    """Notes on responses (how a call gave up), kept beside them rather than on them (a
    response is requests' object) and forgotten when the response is."""

    def __init__(self) -> None:
        self._notes: dict[int, str] = {}
        self._lock = threading.Lock()

    def put(self, response: requests.Response, note: str) -> None:
        key = id(response)
        try:
            weakref.finalize(response, self._forget, key)
        except TypeError:  # a response that takes no weak reference: no note
            return
        with self._lock:
            self._notes[key] = note

    def get(self, response: requests.Response) -> str | None:
        """The note put on ``response``, if any."""
        with self._lock:
            return self._notes.get(id(response))

    def _forget(self, key: int) -> None:
        with self._lock:
            self._notes.pop(key, None)


_NOTES = _ResponseNotes()


def retry_note(response: requests.Response) -> str | None:
    """How the retry loop gave up on ``response`` ("Gave up after 6 attempt(s)..."), if it
    did: the start of the error's hint."""
    return _NOTES.get(response)
