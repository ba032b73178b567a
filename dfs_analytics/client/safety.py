"""What keeps a client's requests on its own site, and its answers bounded.

Origins (scheme, host, port) and the URL paths messages show; links re-aimed at the base URL's
origin; ids checked before they become a path segment; the API key put on each request by the
session's auth; and the answer guard, which refuses a redirect to another origin and a body
over the size cap before ``requests`` or the HTTP cache reads it, and ends as a read timeout
an attempt whose body comes slower than :data:`MIN_BODY_RATE`.

It never sends the key to another origin, never shows a user or password in a message, and
never judges an answer's JSON (that is :mod:`.answers`).
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from requests.auth import AuthBase
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from ..config import Secret
from ..errors import ConfigurationError, InvalidResponseError

#: the largest answer body the client reads, in bytes once decompressed (64 MiB): more than 50
#: times a list page of 100 work orders (a sync's pages) or 5 times a page of 1000 (the API's
#: largest) with a dozen tasks each, yet small enough that a compression bomb (2 MB that
#: inflate to 2 GB) is refused with memory bounded. ``Client.max_response_bytes`` changes it.
MAX_RESPONSE_BYTES = 64 * 2**20
READ_CHUNK = 256 * 2**10  # bytes read (and decompressed) at a time
MAX_REDIRECTS = 10  # redirects followed (within the base URL's origin) for one request
#: the slowest pace an answer's body may keep, in bytes per second on the wire (1 KiB/s, as
#: curl's ``--speed-limit``): every stretch of ``timeout`` seconds must bring ``timeout`` times
#: this many bytes. See :class:`AnswerGuard`.
MIN_BODY_RATE = 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port made explicit; no user or password."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a port number: matches no origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def url_path(url: str) -> str:
    """The path and query of a URL: what messages show of it (never a user or password)."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def absolute(base_url: str, path_or_url: str) -> str:
    """An absolute URL: kept as is, root-relative (``/v0.2/...``) against the base URL's
    host, else relative to the base URL."""
    if "://" in path_or_url:
        return path_or_url
    if path_or_url.startswith("/"):
        return urllib.parse.urljoin(base_url, path_or_url)
    return base_url + path_or_url.lstrip("/")


def same_origin(base_url: str, url: str) -> str:
    """``url`` (relative to ``base_url``, or absolute) re-aimed at the base URL's scheme, host
    and port: the key never travels in cleartext (an ``http://`` link from a server behind a
    TLS proxy) nor to anyone else."""
    base = urllib.parse.urlsplit(base_url)
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(base_url, url))
    parts = parts._replace(scheme=base.scheme, netloc=base.netloc)
    return urllib.parse.urlunsplit(parts)


def segment(value: Any, name: str = "id") -> str:
    """``value`` as one quoted URL path segment; ConfigurationError, before any request, for
    anything that is not an id: a non-string, an empty or blank string, ``.``, ``..``, or a
    string containing ``/`` or ``\\`` (which would aim the request at another resource)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__} {value!r}.")
    text = value.strip()
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise ConfigurationError(
            f"{name} {value!r} is not an id: it must be a non-empty string without '/', and "
            "not '.' or '..'."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigurationError(f"{name} {value!r} contains control characters.")
    return urllib.parse.quote(text, safe="")


class TokenAuth(AuthBase):
    """Puts ``Authorization: Token <key>`` on each request a session prepares.

    Being the session's ``auth`` (not a default header), it also keeps ``requests`` from
    reading ``~/.netrc`` for every request: that costs a file lookup per request, and a netrc
    entry for the site's host would replace the key with its own credentials. ``requests``
    drops the header on a redirect to another host and does not put it back.
    """

    __slots__ = ("_key",)

    def __init__(self, key: Secret) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token {self._key.reveal()}"
        return request

    def __repr__(self) -> str:
        return "TokenAuth(****)"


class AnswerGuard:
    """A response hook of the client's sessions: every answer (each hop of a redirect
    included) passes here before ``requests`` or the HTTP cache reads its body.

    - A redirect to another origin (scheme, host or port than the base URL's) raises
      InvalidResponseError: it is never followed, so nothing another origin says is stored.
    - The body is read here, at most ``READ_CHUNK`` bytes at a time through urllib3's bounded
      decompression, and refused past ``limit`` bytes once decompressed: a compression bomb
      costs at most ``limit`` bytes of memory, on the cached path too (requests-cache stores
      the body read here).
    - The body must keep a pace: each stretch of ``timeout`` seconds (the request's read
      timeout) must bring at least ``timeout * min_rate`` bytes (:data:`MIN_BODY_RATE`,
      1 KiB/s), else the attempt ends as a read timeout (``requests.ReadTimeout``: the retry
      loop retries it when it may). ``timeout`` alone bounds each socket read, so a server
      or proxy dripping a byte every ``timeout - 1`` seconds would hold a request for hours.
      A stretch that has brought its bytes ends there and the next one starts, so a large
      answer on a slow but steady link (above 1 KiB/s) is never cut, whatever its size, and
      a body stalled or dripping is cut ``timeout`` seconds after its last good stretch. The
      pace counts bytes on the wire (compressed), what the link carries. The body is read
      with urllib3's ``read1`` (what has arrived, in one socket read, not ``read(n)``, which
      waits for ``n`` bytes), the pace checked before each, and the socket may wait only
      until the stretch ends: a body that stops is cut on time. A ``read1`` that needs a few
      socket reads before it has anything to return (a chunk's size line, a gzip header)
      checks the pace when it returns, so framing dripped byte by byte is cut a little late.
    """

    __slots__ = ("limit", "min_rate", "origin")

    def __init__(self, base_url: str, limit: int, min_rate: float = MIN_BODY_RATE) -> None:
        self.origin = origin(base_url)
        self.limit = limit
        self.min_rate = min_rate

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.is_redirect:
            target = urllib.parse.urljoin(response.url, response.headers["location"])
            if origin(target) != self.origin:
                response.close()
                scheme, host, port = origin(target)
                self._refuse(
                    response,
                    f"redirected to another origin ({scheme}://{host}:{port}); the client "
                    "follows redirects only within the base URL's scheme, host and port",
                    "Check the base URL: if the API has moved, give its new address as the "
                    "base URL.",
                )
        # requests' own flag: a body already read (an answer served from the cache) stays
        if getattr(response, "_content_consumed", False) or response.raw is None:
            return
        chunks = []
        size = 0
        for chunk in self._pieces(response, read_timeout(kwargs.get("timeout"))):
            size += len(chunk)
            if size > self.limit:
                response.close()
                self._refuse(
                    response,
                    f"the answer is larger than {self.limit / 2**20:g} MiB once decompressed "
                    "(a compression bomb, or a page far larger than any the API sends)",
                    "If the server's pages really are this large, ask for smaller ones "
                    "(Client(page_size=...)) or raise client.max_response_bytes.",
                )
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what requests (and the cache) read from now on

    def _pieces(self, response: requests.Response, timeout: float | None) -> Iterator[bytes]:
        """The body's pieces, decompressed, as they arrive; raises what ``requests`` raises
        for a broken body (ChunkedEncodingError, ContentDecodingError, ConnectionError,
        SSLError), and :class:`SlowBodyTimeout` once the body falls under the pace."""
        raw = response.raw
        if not isinstance(raw, urllib3.HTTPResponse):  # not from the network: read it whole
            yield from response.iter_content(READ_CHUNK)
            return
        pace = _Pace(timeout, self.min_rate) if timeout else None
        sock = getattr(raw.connection, "sock", None)
        try:
            while True:
                if pace is not None:
                    wait = pace.check(raw.tell())
                    if wait is None:
                        raise pace.slow(raw.tell(), response)
                    if isinstance(sock, socket.socket) and raw.connection is not None:
                        sock.settimeout(wait)  # urllib3 sets its own again on the next request
                chunk = raw.read1(READ_CHUNK, decode_content=True)
                if not chunk:
                    return
                yield chunk
        except ReadTimeoutError as exc:  # a socket read waited until the stretch ended
            if pace is None:
                raise requests.ConnectionError(exc) from None
            response.close()
            raise pace.slow(raw.tell(), response) from None
        except SlowBodyTimeout:
            response.close()  # the connection is not reused: its body was left half read
            raise
        except ProtocolError as exc:  # as requests' own reading translates urllib3's errors
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from None
        except SSLError as exc:
            raise requests.exceptions.SSLError(exc) from None

    @staticmethod
    def _refuse(response: requests.Response, detail: str, hint: str) -> None:
        raise _Refused(
            InvalidResponseError(
                method=response.request.method or "GET",
                path=url_path(response.request.url or response.url),
                status=response.status_code,
                detail=detail,
                hint=hint,
            )
        )


def read_timeout(timeout: Any) -> float | None:
    """The read timeout in seconds of a ``requests`` ``timeout`` (a number, a ``(connect,
    read)`` pair or a urllib3 Timeout); None when there is none."""
    if isinstance(timeout, tuple):
        timeout = timeout[-1]
    if isinstance(timeout, urllib3.Timeout):
        timeout = timeout.read_timeout
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return None


class SlowBodyTimeout(requests.exceptions.ReadTimeout):
    """An answer whose body came slower than :data:`MIN_BODY_RATE`: a read timeout (the
    retry loop treats it as no answer). ``detail`` says how slow, for the user's error."""

    def __init__(self, detail: str, response: requests.Response) -> None:
        super().__init__(f"Read timed out: {detail}", response=response, request=response.request)
        self.detail = detail


class _Pace:
    """The pace of one body: stretches of ``window`` seconds from the headers on, each
    ended early once it has brought ``window * rate`` bytes."""

    __slots__ = ("mark", "mark_bytes", "need", "rate", "started", "window")

    def __init__(self, window: float, rate: float) -> None:
        self.window = window
        self.rate = rate
        self.need = window * rate
        self.started = self.mark = time.monotonic()
        self.mark_bytes = 0

    def check(self, received: int) -> float | None:
        """The seconds the next socket read may wait, ``received`` bytes read so far; None
        once the current stretch has ended short (the body is too slow)."""
        now = time.monotonic()
        if received - self.mark_bytes >= self.need:
            self.mark, self.mark_bytes = now, received
        elif now >= self.mark + self.window:
            return None
        return max(self.mark + self.window - now, 0.001)

    def slow(self, received: int, response: requests.Response) -> SlowBodyTimeout:
        """The error of a body that fell under the pace, ``received`` bytes read so far."""
        elapsed = time.monotonic() - self.started
        got = received - self.mark_bytes
        detail = (
            f"the answer's body came too slowly ({got} bytes in the last {self.window:g} s, "
            f"under {self.rate:g} bytes/s; {received} bytes in {elapsed:.1f} s since its "
            "headers)"
        )
        return SlowBodyTimeout(detail, response)


class _Refused(BaseException):
    """Carries an answer's refusal from :class:`AnswerGuard` to :func:`refusals` through
    ``requests`` and requests-cache. Not an ``Exception``: the cache serves its stored answer
    when revalidation raises one, which would hide the refusal."""

    def __init__(self, error: InvalidResponseError) -> None:
        super().__init__()
        self.error = error


@contextlib.contextmanager
def refusals(method: str, path: str) -> Iterator[None]:
    """Turns what the guard refused (a redirect elsewhere, a body over the cap), and a
    redirect loop, into InvalidResponseError for the request ``method path``."""
    try:
        yield
    except _Refused as refused:
        raise refused.error from None
    except requests.TooManyRedirects:
        raise InvalidResponseError(
            method=method,
            path=path,
            status=302,
            detail=f"more than {MAX_REDIRECTS} redirects",
            hint="The server redirects in a loop; check the base URL.",
        ) from None
