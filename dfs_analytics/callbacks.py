"""The analysis callback receiver: a small local HTTP server that collects the results the
server POSTs back after an analysis (``analyze(..., callback_url=receiver.url)``).

It listens on a random path of a loopback port, accepts JSON objects only, and never reads a
body past its cap. It never sends a request.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CallbackReceiver(AbstractContextManager["CallbackReceiver"]):
    """A small HTTP server that collects analysis callbacks, for notebooks and tests.

    >>> with CallbackReceiver() as receiver:
    ...     analysis_id = analyze(client, wo_id, "roof-before", url, callback_url=receiver)
    ...     result = receiver.wait(analysis_id, timeout=30)   # the POSTed work order

    Listens on ``host`` (loopback by default) and a free ``port``; the server must be able to
    reach that address. Only the server should be able to deliver results, so the receiver:

    - answers only on ``url``, whose path ends in a random token (``path`` is its prefix);
      any other path gets 404;
    - accepts only a JSON object naming its ``analysis_id`` (else 400), of at most
      ``max_body`` bytes (else 413, without reading the rest);
    - hands out a payload only to whoever waits for its id: :meth:`wait` with an id returns
      that analysis' payload; without an id, the first payload of an analysis it was told about
      (:meth:`expect`, :meth:`wait`, or ``analyze(..., callback_url=receiver)``), or of any
      analysis while it knows none. Payloads of analyses it was not told about are kept
      aside (at most ``UNCLAIMED_LIMIT``, oldest dropped first) in case their id is waited
      for later: a callback may arrive before ``analyze`` has returned its id.

    Refused requests are listed in :attr:`refused` (status and reason, the last 100).
    """

    MAX_BODY = 32 * 1024 * 1024  # a work order with its inputs (data URIs of up to 8 MB each)
    UNCLAIMED_LIMIT = 1000
    READ_TIMEOUT = 30.0  # seconds a sender may stall before its connection is dropped

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/callback",
        *,
        max_body: int = MAX_BODY,
    ):
        self.max_body = int(max_body)
        prefix = "/" + path.strip("/") if path.strip("/") else ""
        self.path = f"{prefix}/{secrets.token_urlsafe(32)}"
        self.refused: deque[tuple[int, str]] = deque(maxlen=100)
        self._cond = threading.Condition()
        self._by_id: dict[str, dict[str, Any]] = {}  # first payload per analysis, arrival order
        self._expected: set[str] = set()
        self._unclaimed: deque[str] = deque()
        self._closed = False
        self._server = ThreadingHTTPServer((host, port), _callback_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="dfs-callback-receiver"
        )
        self._thread.start()

    def _origin(self) -> str:
        """``http://host:port`` of the listening server."""
        host, port = self._server.server_address[:2]
        if isinstance(host, (bytes, bytearray)):
            host = host.decode()
        return f"http://{host}:{port}"

    def __repr__(self) -> str:
        return f"<CallbackReceiver {self._origin()}, {len(self._by_id)} payload(s)>"

    @property
    def url(self) -> str:
        """The URL to give the server as ``callback_url`` (it holds the secret token)."""
        return f"{self._origin()}{self.path}"

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """Every accepted payload still held, in arrival order (one per analysis)."""
        with self._cond:
            return list(self._by_id.values())

    def expect(self, *analysis_ids: str) -> None:
        """Tell the receiver which analyses to wait for (their payloads are then kept)."""
        with self._cond:
            for analysis_id in analysis_ids:
                self._expected.add(str(analysis_id))
                if analysis_id in self._unclaimed:
                    self._unclaimed.remove(analysis_id)

    def wait(self, analysis_id: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The POSTed payload of ``analysis_id`` (a dict: the analysed work order plus its
        ``analysis_id``); without an id, the first payload of an expected analysis (see the
        class docstring). Payloads are not consumed. Raises TimeoutError after ``timeout``
        seconds, saying which requests were refused meanwhile, if any."""
        if analysis_id is not None:
            self.expect(analysis_id)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._find(analysis_id)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    refused = ""
                    if self.refused:
                        shown = "; ".join(f"{s} {r}" for s, r in list(self.refused)[-3:])
                        refused = f" ({len(self.refused)} request(s) refused, last: {shown})"
                    raise TimeoutError(
                        f"no callback{' for analysis ' + analysis_id if analysis_id else ''} "
                        f"within {timeout} s at {self.url}{refused}"
                    )
                self._cond.wait(left)

    def _find(self, analysis_id: str | None) -> dict[str, Any] | None:
        if analysis_id is not None:
            return self._by_id.get(analysis_id)
        for key, payload in self._by_id.items():
            if not self._expected or key in self._expected:
                return payload
        return None

    def _accept(self, payload: dict[str, Any]) -> None:
        analysis_id = payload["analysis_id"]
        with self._cond:
            if analysis_id in self._by_id:  # a re-delivery: the first one stands
                return
            self._by_id[analysis_id] = payload
            if analysis_id not in self._expected:
                self._unclaimed.append(analysis_id)
                while len(self._unclaimed) > self.UNCLAIMED_LIMIT:
                    del self._by_id[self._unclaimed.popleft()]
            self._cond.notify_all()

    def _refuse(self, status: int, reason: str) -> None:
        with self._cond:
            self.refused.append((status, reason))

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BodyTooLarge(Exception):
    pass


def _callback_handler(receiver: CallbackReceiver) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one receiver."""

    class Handler(BaseHTTPRequestHandler):
        timeout = receiver.READ_TIMEOUT

        def do_POST(self) -> None:
            target = self.path.split("?", 1)[0]
            if not secrets.compare_digest(target.encode(), receiver.path.encode()):
                self._answer(404, "unknown path")
                return
            try:
                body = self._body(receiver.max_body)
            except _BodyTooLarge as exc:
                self._answer(413, str(exc))
                return
            except ValueError as exc:
                self._answer(400, str(exc))
                return
            if body is None:
                self._answer(411, "a Content-Length or a chunked body is required")
                return
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                self._answer(400, "the body is not JSON")
                return
            if not isinstance(payload, dict):
                self._answer(400, f"a JSON {type(payload).__name__} instead of an object")
                return
            if not isinstance(payload.get("analysis_id"), str) or not payload["analysis_id"]:
                self._answer(400, "the payload names no analysis_id")
                return
            receiver._accept(payload)
            self.send_response(204)
            self.end_headers()

        def _body(self, limit: int) -> bytes | None:
            """The request body, or None when its length is not given; raises _BodyTooLarge
            as soon as it is known to exceed ``limit``, and ValueError when malformed."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._chunked(limit)
            length = self.headers.get("Content-Length")
            if length is None:
                return None
            try:
                size = int(length)
            except ValueError:
                raise ValueError(f"bad Content-Length {length[:40]!r}") from None
            if size < 0:
                raise ValueError(f"bad Content-Length {length[:40]!r}")
            if size > limit:
                raise _BodyTooLarge(f"a body of {size} bytes (the limit is {limit})")
            body = self.rfile.read(size)
            if len(body) < size:
                raise ValueError("the body is shorter than its Content-Length")
            return body

        def _chunked(self, limit: int) -> bytes:
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ValueError("a malformed chunk") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > limit:
                    raise _BodyTooLarge(f"a chunked body over {limit} bytes")
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ValueError("a chunk shorter than announced")
                parts.append(chunk)
                self.rfile.readline(1024)  # the CRLF after the chunk

        def _answer(self, status: int, reason: str) -> None:
            receiver._refuse(status, reason)
            # the rest of a refused body is never read: close rather than resynchronise
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Connection", "close")
            text = reason.encode()
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
