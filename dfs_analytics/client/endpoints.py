"""The HTTP client of the Field Services API: the only module that speaks HTTP.

One method per endpoint; retries with backoff where a retry cannot double an effect; typed
errors (:mod:`dfs_analytics.errors`); pagination that never truncates; a requests-cache HTTP
cache for single-resource reads, and an offline mode.

It never builds frames nor writes the dataset (that is :mod:`~dfs_analytics.syncing`'s), never
pickles what it caches, never sends the API key to another origin, nor in cleartext except to
a loopback host or when ``allow_insecure_http`` asks for it, and never re-sends a write whose
outcome is unknown.

Retry policy (decided in one place, :meth:`Client.send`; urllib3 itself never retries):

- A connection that could not be opened, and a 429 (the server did nothing), are retried for
  every method, honouring ``Retry-After``.
- 500/502/503/504 and connections cut mid-answer are retried for reads and idempotent writes
  (GET, HEAD, PUT, DELETE) only.
- A non-idempotent write (POST: create, analyze; PATCH: update, metadata merge, correction)
  whose answer is lost raises :class:`~dfs_analytics.errors.OutcomeUnknownError`: it may have
  been applied, and the platform records every call, so it is never blindly re-sent.
- At most ``retries`` retries, and never past ``retry_budget`` seconds for one call: a wait
  (backoff or ``Retry-After``) that would end past the budget is not started, and the error
  says how many attempts were made over how long.

Bounds: whatever a server sends, the client gives up within seconds with a typed
:class:`~dfs_analytics.errors.InvalidResponseError` naming the endpoint, and memory stays
bounded:

- a body is read at most ``max_response_bytes`` (64 MiB) once decompressed, through urllib3's
  bounded decompression, before ``requests`` or the HTTP cache sees it;
- JSON nested deeper than Python's recursion limit, and a shape the frames cannot use (``tasks``
  that is not an array...), are refused; anything the contract only assumes (extra or missing
  keys, a bare array, a ``count`` that is not a number) is taken as it comes;
- a listing ends at a page that adds no row it has not seen, never takes more than
  ``count / page size`` pages plus a margin (``MAX_PAGES`` without a count), and a ``count``
  over ``MAX_COUNT`` or needing more than ``MAX_PAGES`` pages is refused before any page is
  asked for;
- a redirect is followed only within the base URL's origin (scheme, host and port), at most
  ``MAX_REDIRECTS`` times; one to another origin is refused unread, so nothing another origin
  says reaches the HTTP cache or the dataset.

HTTP cache: every successful GET of a single resource is stored (JSON, never pickle). Online,
a stored answer with a validator (``ETag``/``Last-Modified``) is revalidated with a
conditional request; one without is fetched again and replaced. Offline, stored answers are
served as they are.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import email.utils
import inspect
import itertools
import json
import math
import os
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any

import requests
import requests_cache
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from ._version import __version__
from .concurrency import Limiter
from .config import DEFAULT, Secret, Settings
from .errors import (
    APIError,
    ConfigurationError,
    IncompleteDataError,
    IncompleteDataWarning,
    InvalidResponseError,
    NotFoundError,
    OfflineCacheMiss,
    OutcomeUnknownError,
    ThrottledError,
    TransportError,
    UnsafePathError,
    error_for_status,
    hint_for,
)
from .files import open_no_follow, private_folder

# the filter vocabulary lives in query; also importable from here, where it used to live
from .query import LIST_FILTERS, ORDERINGS, list_params, to_api_date  # noqa: F401

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
OK_STATUSES = frozenset({200, 201, 202, 204})  # what a call expects unless it says otherwise
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: the largest answer body the client reads, in bytes once decompressed (64 MiB): more than 50
#: times a list page of 100 work orders (a sync's pages) or 5 times a page of 1000 (the API's
#: largest) with a dozen tasks each, yet small enough that a compression bomb (2 MB that
#: inflate to 2 GB) is refused with memory bounded. ``Client.max_response_bytes`` changes it.
MAX_RESPONSE_BYTES = 64 * 2**20
READ_CHUNK = 256 * 2**10  # bytes read (and decompressed) at a time
#: the largest ``count`` a listing may announce: a walk of more rows would not fit in memory
MAX_COUNT = 10**8
#: the most pages one listing may take (MAX_COUNT rows at the API's 1000 a page): the bound of
#: a listing without a ``count``; with one, ``count / page size`` plus a margin of
#: ``PAGE_MARGIN`` pages or a tenth more, whichever is larger (rows added during the walk)
MAX_PAGES = 100_000
PAGE_MARGIN = 10
MAX_REDIRECTS = 10  # redirects followed (within the base URL's origin) for one request
MAX_BACKOFF = 60.0  # seconds between two attempts, at most (Retry-After aside)
SQLITE_TIMEOUT = 60.0  # seconds a process waits for another one's lock on the HTTP cache
_TEMP_LOCK = threading.Lock()


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


_RETRY_NOTES = _ResponseNotes()


def _detail(body: Any, text: str) -> str:
    if isinstance(body, dict):
        if "detail" in body and len(body) == 1:
            return str(body["detail"])
        parts = []
        for key, value in body.items():
            msgs = value if isinstance(value, list) else [value]
            parts.append(f"{key}: {' '.join(str(m) for m in msgs)}")
        return "; ".join(parts) or "(empty error body)"
    if isinstance(body, list):
        return "; ".join(str(m) for m in body)
    snippet = re.sub(r"<[^>]+>", " ", (text or "")[:20_000])  # 200 characters are shown
    snippet = " ".join(snippet.split())
    return (snippet[:200] + "...") if len(snippet) > 200 else (snippet or "(no body)")


@dataclasses.dataclass(frozen=True, slots=True)
class RequestOptions:
    """What one request carries besides its method and path, defined once for
    :meth:`Client.send`, :meth:`Client.request` and :meth:`Client.parse`.

    ``params``: query parameters; ``body``: a JSON body (``default=str`` for dates and the
    like); ``cached``: read through the HTTP cache (GET only); ``headers``: extra headers
    (``If-None-Match``...); ``expected``: the statuses below 400 that count as success.
    """

    params: Mapping[str, Any] | None = None
    body: Any = None
    cached: bool = False
    headers: Mapping[str, str] | None = None
    expected: Collection[int] = OK_STATUSES


class Client:
    """A client of one Deepomatic Field Services site (or of the local simulator).

    Args:
        base_url: the API's base URL, e.g. ``http://127.0.0.1:8765/v0.2/``; or give
        site_id: the deployed site's id (full UUID or first four groups) and
        region: ``"eu"`` (default) or ``"us"``.
        api_key: the site's API key (sent as ``Authorization: Token ...``, never stored).
        cache: ``"default"`` (the user's cache folder), a folder path, or ``None`` (no cache).
        offline: serve reads from the cache only; a miss raises OfflineCacheMiss.
        max_workers: None (default): the client finds how many requests to keep in flight
            (adaptive, see :mod:`dfs_analytics.concurrency`), between 1 and
            ``max_concurrency``; a number pins it. Either way the limit is shared by
            everything the client does at once, and a 429 starts pacing sends at the rate the
            server allows.
        max_concurrency: the ceiling of the adaptive concurrency (default 64).
        timeout: seconds to wait for the server on each request.
        retries: how many times a retryable failure is retried (at most).
        backoff_factor: seconds before the first retry; doubled at each further one.
        retry_budget: seconds one call may spend waiting and retrying, in all (default 300);
            past it the call raises the last error (ThrottledError, ServerError or
            TransportError), saying how long it waited.
        page_size: list page size asked for (the API caps it at 1000).
        progress: show progress bars on bulk loads.
        allow_insecure_http: allow plain ``http://`` to a non-loopback host.
        dataset: where the loaders keep their Delta Lake dataset: a folder or an object-store
            URI (a shared one, say); default ``dataset/`` inside the cache folder, or a
            temporary folder removed at exit when there is no cache.

    Every method returns parsed JSON (dicts and lists) as the server sent it.

    ``client.max_response_bytes`` (default 64 MiB) is the largest answer the client reads,
    once decompressed; a larger one raises InvalidResponseError (see the module docstring for
    the other bounds).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        site_id: str | None = None,
        region: str = "eu",
        api_key: str | None = None,
        cache: Any = DEFAULT,
        offline: bool = False,
        max_workers: int | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff_factor: float = 0.3,
        page_size: int = 1000,
        progress: bool = True,
        allow_insecure_http: bool = False,
        dataset: str | os.PathLike[str] | None = None,
        retry_budget: float = 300.0,
        max_concurrency: int = 64,
    ):
        self.settings = Settings.resolve(
            base_url,
            site_id=site_id,
            region=region,
            cache=cache,
            api_key=api_key,
            offline=offline,
            max_workers=max_workers,
            timeout=timeout,
            retries=retries,
            backoff_factor=backoff_factor,
            page_size=page_size,
            progress=progress,
            allow_insecure_http=allow_insecure_http,
            dataset=None if dataset is None else os.fspath(dataset),
            retry_budget=retry_budget,
            max_concurrency=max_concurrency,
        )
        self._init_sessions()

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        """A client from ``DFS_BASE_URL`` or ``DFS_SITE_ID`` (+ ``DFS_REGION``), ``DFS_API_KEY``
        and ``DFS_CACHE``; keyword arguments override them."""
        settings = Settings.from_env(**overrides)
        client = cls.__new__(cls)
        client.settings = settings
        client._init_sessions()
        return client

    def _init_sessions(self) -> None:
        s = self.settings
        self._lock = threading.Lock()  # guards the counters and the listeners
        self._requests_sent = 0
        self._write_listeners: list[Callable[[str], None]] = []
        #: the slots every request of this client takes (adaptive unless max_workers is set)
        self.limiter = Limiter(fixed=s.max_workers, ceiling=s.max_concurrency)
        self.cache_dir = s.cache_dir
        if self.cache_dir is not None:
            if s.cache is not None and not s.cache.exists():
                private_folder(s.cache, what="cache folder")  # owner-only, whatever the umask
            # never through a link: it would chmod and fill the link's target
            private_folder(self.cache_dir, what="cache folder")
            self._cached: requests.Session = _open_http_cache(
                self.cache_dir / "http.sqlite", offline=s.offline
            )
        else:
            self._cached = requests.Session()
        self._plain = requests.Session()
        self._guard = _AnswerGuard(s.base_url, MAX_RESPONSE_BYTES)
        # the environment (proxies, NO_PROXY, a CA bundle) is read once, for the site's URL,
        # instead of at every request: the one origin this client talks to
        proxies = requests.utils.get_environ_proxies(s.base_url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        for session in (self._cached, self._plain):
            session.trust_env = False
            session.proxies.update(proxies)
            session.verify = verify
            # urllib3 never retries: send() decides every retry, within the budget
            adapter = HTTPAdapter(
                max_retries=Retry(0, read=False, redirect=False),
                pool_connections=4,
                pool_maxsize=s.workers + 4,
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.hooks["response"].append(self._guard)
            session.max_redirects = MAX_REDIRECTS
            session.headers["User-Agent"] = f"dfs-analytics/{__version__}"
            session.headers["Accept"] = "application/json"
            if s.api_key:
                session.auth = _TokenAuth(s.api_key)
        self._base = urllib.parse.urlsplit(s.base_url)
        self._host = self._base.netloc.rpartition("@")[2]  # shown in messages: no password

    def __repr__(self) -> str:
        return f"Client({self.settings!r})"

    @property
    def concurrency(self) -> int:
        """Requests this client allows in flight now (adaptive unless ``max_workers`` is set)."""
        return self.limiter.limit

    @property
    def throttled(self) -> int:
        """How many 429 (Too Many Requests) answers this client has received."""
        return self.limiter.throttled

    @property
    def max_response_bytes(self) -> int:
        """The largest answer body this client reads, in bytes once decompressed (default
        ``MAX_RESPONSE_BYTES``, 64 MiB); reading stops where a larger one passes it, with
        InvalidResponseError, and nothing of it is stored."""
        return self._guard.limit

    @max_response_bytes.setter
    def max_response_bytes(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"max_response_bytes must be a positive number of bytes, got {value!r}."
            )
        self._guard.limit = value

    @property
    def requests_sent(self) -> int:
        """How many requests this client has sent, retries included."""
        return self._requests_sent

    def _count_request(self) -> None:
        with self._lock:
            self._requests_sent += 1

    @property
    def dataset_location(self) -> str:
        """Where this client's dataset lives: ``Client(dataset=...)`` / ``DFS_DATASET``, else
        ``dataset/`` in the cache folder, else a temporary folder removed at exit."""
        if self.settings.dataset is not None:
            return self.settings.dataset
        if self.cache_dir is not None:
            return str(self.cache_dir / "dataset")
        with _TEMP_LOCK:
            temp = getattr(self, "_temp_dataset", None)
            if temp is None:
                temp = tempfile.mkdtemp(prefix="dfs-dataset-")
                self._temp_dataset = temp
                weakref.finalize(self, shutil.rmtree, temp, ignore_errors=True)
            return os.path.join(temp, "dataset")

    @property
    def dataset_is_private(self) -> bool:
        """Whether the dataset is this user's own (kept 0700/0600), not a shared path."""
        return self.settings.dataset is None

    def close(self) -> None:
        """Close the HTTP sessions and the cache file."""
        self._plain.close()
        self._cached.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as ``work-orders/<id>/``."""
        return self.settings.base_url + path.lstrip("/")

    def _absolute(self, path_or_url: str) -> str:
        """An absolute URL: kept as is, root-relative (``/v0.2/...``) against the host, else
        relative to the base URL."""
        if "://" in path_or_url:
            return path_or_url
        if path_or_url.startswith("/"):
            return urllib.parse.urljoin(self.settings.base_url, path_or_url)
        return self.url(path_or_url)

    def _same_origin(self, url: str) -> str:
        """Keep the key on our origin: a link (a ``next`` page...) to another scheme, host or
        port is re-aimed at the base URL's, so the key never travels in cleartext (an
        ``http://`` link from a server behind a TLS proxy) nor to anyone else."""
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.settings.base_url, url))
        parts = parts._replace(scheme=self._base.scheme, netloc=self._base.netloc)
        return urllib.parse.urlunsplit(parts)

    def _path_of(self, url: str) -> str:
        return _url_path(url)

    def send(self, method: str, path_or_url: str, **options: Any) -> requests.Response:
        """Send one request with the retry policy (see the module docstring); return the last
        response whatever its status.

        Keywords: ``params``, ``body``, ``cached``, ``headers``, as in
        :class:`RequestOptions`. Raises TransportError / OutcomeUnknownError when no answer
        came, OfflineCacheMiss offline, InvalidResponseError for an answer refused before it is
        stored (a redirect to another origin, a body over ``max_response_bytes``). Most callers want
        :meth:`request`, which also maps statuses to errors.
        """
        if "expected" in options:
            raise TypeError("send() returns any status: expected= goes with request()")
        return self._send(method, path_or_url, RequestOptions(**options))

    def _send(self, method: str, path_or_url: str, options: RequestOptions) -> requests.Response:
        """The body of :meth:`send`: one request, retried as the policy allows."""
        params, body, cached = options.params, options.body, options.cached
        headers = options.headers
        method = method.upper()
        if "://" in path_or_url or path_or_url.startswith(("/", ".")) or "/." in path_or_url:
            url = self._same_origin(self._absolute(path_or_url))
        else:  # a plain relative API path: on the base URL's origin already
            url = self.settings.base_url + path_or_url
        if self.settings.offline and not (cached and method == "GET"):
            raise OfflineCacheMiss(
                f"{method} {self._path_of(url)}: this client is offline (offline=True) and this "
                "request is not served from the cache. Create the client with offline=False."
            )
        if not self.settings.api_key:
            raise ConfigurationError("no API key: pass Client(api_key=...) or set DFS_API_KEY.")
        session = self._cached if cached and method == "GET" else self._plain
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body, default=str).encode()
            hdrs["Content-Type"] = "application/json"
        extra: dict[str, Any] = {}
        if isinstance(session, requests_cache.CachedSession) and not self.settings.offline:
            # revalidate what has a validator (304 keeps it); fetch again what has none
            extra = (
                {"refresh": True} if self._has_validator(url, params) else {"force_refresh": True}
            )
        budget = self.settings.retry_budget
        started = time.monotonic()
        attempt = 0
        limiter = None if self.settings.offline else self.limiter
        while True:
            attempt += 1
            self._count_request()
            # one slot of the client's limit per attempt, given back before any wait
            ticket = limiter.acquire() if limiter is not None else None
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=hdrs,
                    timeout=self.settings.timeout,
                    **extra,
                )
                _ = response.content  # a connection cut mid-answer surfaces here
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                if ticket is not None:  # a timeout says overload; a cut connection does not
                    limiter.release(  # type: ignore[union-attr]
                        ticket, None if isinstance(exc, requests.Timeout) else 0
                    )
                path = self._path_of(url)
                reason = _reason(exc)
                sent = not isinstance(exc, requests.ConnectTimeout) and not _never_sent(exc)
                if not sent or method in IDEMPOTENT:
                    delay = self._backoff(attempt)
                    if self._may_retry(attempt, started, delay):
                        time.sleep(delay)
                        continue
                if sent and method not in IDEMPOTENT:
                    raise OutcomeUnknownError(
                        f"{method} {path}: the request was sent but its answer was lost "
                        f"({reason}); "
                        "it may or may not have been applied. Check the server's state before "
                        "sending it again.",
                        method=method,
                        path=path,
                    ) from None
                elapsed = time.monotonic() - started
                raise TransportError(
                    f"{method} {path}: no answer from {self._host} ({reason}) after "
                    f"{attempt} attempt(s) over {elapsed:.1f} s (retries={self.settings.retries}, "
                    f"retry_budget={budget:g} s). Check the base URL / site id and the network."
                    + self._offline_hint(),
                    method=method,
                    path=path,
                ) from None
            except _Refused as refused:  # a redirect elsewhere, a body over the cap
                if ticket is not None:
                    limiter.cancel(ticket)  # type: ignore[union-attr]
                raise refused.error from None
            except requests.TooManyRedirects:
                if ticket is not None:
                    limiter.cancel(ticket)  # type: ignore[union-attr]
                raise InvalidResponseError(
                    method=method,
                    path=self._path_of(url),
                    status=302,
                    detail=f"more than {MAX_REDIRECTS} redirects",
                    hint="The server redirects in a loop; check the base URL.",
                ) from None
            except BaseException:
                if ticket is not None:
                    limiter.cancel(ticket)  # type: ignore[union-attr]
                raise
            status = response.status_code
            if ticket is not None:
                limiter.release(ticket, status)  # type: ignore[union-attr]
            if status == 429 or (status in RETRY_STATUSES and method in IDEMPOTENT):
                advised = _retry_after(response)
                delay = advised if advised is not None else self._backoff(attempt)
                if self._may_retry(attempt, started, delay):
                    response.close()
                    time.sleep(delay)
                    continue
                elapsed = time.monotonic() - started
                note = (
                    f"Gave up after {attempt} attempt(s) over {elapsed:.1f} s "
                    f"(retries={self.settings.retries}, retry_budget={budget:g} s"
                    + (f"; the server asked to wait {advised:g} s more" if advised else "")
                    + ")."
                )
                _RETRY_NOTES.put(response, note)
            break
        if self.settings.offline and response.status_code == 504:  # requests-cache's miss
            raise OfflineCacheMiss(
                f"GET {self._path_of(url)} is not in the cache (offline=True). Load it once "
                "online first, or create the client with offline=False."
            )
        return response

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt``: exponential, with jitter."""
        base = self.settings.backoff_factor * 2 ** (attempt - 1)
        return min(MAX_BACKOFF, base + random.uniform(0, self.settings.backoff_factor / 2))

    def _may_retry(self, attempt: int, started: float, delay: float) -> bool:
        """Whether another attempt is allowed: retries left, and the wait ends in budget."""
        if attempt > self.settings.retries:
            return False
        return time.monotonic() - started + delay <= self.settings.retry_budget

    def _has_validator(self, url: str, params: Mapping[str, Any] | None) -> bool:
        """Whether the cached answer to this GET (if any) carries an ETag or Last-Modified."""
        session = self._cached
        assert isinstance(session, requests_cache.CachedSession)
        try:
            prepared = session.prepare_request(requests.Request("GET", url, params=params))
            stored = session.cache.get_response(session.cache.create_key(prepared))
        except Exception:  # an unreadable entry is fetched again
            return False
        return stored is not None and any(h in stored.headers for h in ("ETag", "Last-Modified"))

    def _offline_hint(self) -> str:
        """A sentence suggesting offline=True when there is a local cache to read."""
        if self.cache_dir is None or self.settings.offline:
            return ""
        return (
            " To work with what is already cached, create the client with offline=True "
            f"(cache: {self.cache_dir})."
        )

    def request(self, method: str, path_or_url: str, **options: Any) -> Any:
        """Send one request and return its parsed JSON body (None for an empty body).

        Keywords: ``params``, ``body``, ``cached`` (read through the HTTP cache, GET only),
        ``headers`` and ``expected`` (the success statuses), as in :class:`RequestOptions`.
        Raises the typed errors of :mod:`dfs_analytics.errors`.
        """
        opts = RequestOptions(**options)
        return self.parse(self._send(method, path_or_url, opts), expected=opts.expected)

    def parse(self, response: requests.Response, *, expected: Collection[int] = OK_STATUSES) -> Any:
        """The JSON of a successful response (None for an empty body), or the typed error of
        a failed one; ``expected`` as in :class:`RequestOptions`."""
        method = response.request.method or "GET"
        status = response.status_code
        path = self._path_of(response.url)
        if status in expected and status < 400:
            if not response.content:
                return None
            try:
                body = response.json()
            except ValueError:
                raise InvalidResponseError(
                    method=method,
                    path=path,
                    status=status,
                    detail="the answer is not JSON: " + _detail(None, response.text),
                    hint="Check that the base URL points at the Field Services API (.../v0.2/).",
                ) from None
            except RecursionError:  # json's decoder nests as deep as the text does
                raise InvalidResponseError(
                    method=method,
                    path=path,
                    status=status,
                    detail="the answer's JSON is nested too deep to read",
                    hint=_SHAPE_HINT,
                ) from None
            if method == "GET":
                problem = _shape_problem(self._endpoint_of(response.url), body)
                if problem:
                    raise InvalidResponseError(
                        method=method,
                        path=path,
                        status=status,
                        detail=f"{problem}: the client cannot use this answer",
                        hint=_SHAPE_HINT,
                    )
            return body
        try:
            parsed = response.json()
        except (ValueError, RecursionError):  # not JSON, or nested too deep: the text shows
            parsed = None
        cls = error_for_status(status)
        hint = None
        if status == 404 and self._is_list_path(response.url):
            hint = (
                "The work-order list itself is not there: the base URL looks wrong "
                f"({self.settings.display_url}); check the site id and region, or that a "
                "custom base_url ends with the API's /v0.2/."
            )
        note = _RETRY_NOTES.get(response)
        if note:
            hint = f"{note} " + (hint if hint is not None else hint_for(status))
        err = cls(
            method=method,
            path=path,
            status=status,
            detail=_detail(parsed, response.text),
            body=parsed,
            hint=hint,
        )
        if isinstance(err, ThrottledError):
            err.retry_after = _retry_after(response)
        raise err

    def _endpoint_of(self, url: str) -> str | None:
        """Which kind of answer a GET of ``url`` gives (a key of ``_SHAPES``), if known."""
        path = urllib.parse.urlsplit(url).path
        base = self._base.path
        if not path.startswith(base):
            return None
        parts = path[len(base) :].strip("/").split("/")
        if parts[0] == "work-orders":
            return {1: "work orders", 2: "work order"}.get(len(parts)) or (
                "timeline" if len(parts) == 3 and parts[2] == "timeline" else None
            )
        if parts[0] == "task-groups":
            return {1: "task groups", 2: "task group"}.get(len(parts))
        return None

    def _is_list_path(self, url: str) -> bool:
        """Whether ``url`` is the work-order list endpoint (whatever its query)."""
        path = urllib.parse.urlsplit(url).path.rstrip("/")
        return path == urllib.parse.urlsplit(self.url("work-orders/")).path.rstrip("/")

    # -- pagination ---------------------------------------------------------------------------

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        on_page: Callable[[int, int | None], None] | None = None,
        strict: bool = True,
    ) -> tuple[list[Any], int | None]:
        """Every item of a list endpoint, in the server's order, and the server's ``count``
        (None when it announces none, as with a bare JSON array).

        Follows ``next`` whatever its style; when it is page-numbered, the remaining pages are
        fetched concurrently. Items are checked against ``count`` (deduplicated by ``id``); a
        mismatch is re-walked once, then raises :class:`IncompleteDataError` (``strict``) or
        warns. ``on_page(n_items, count)`` is called after each page, in order. A listing
        that never ends, or an impossible ``count``, raises :class:`InvalidResponseError`
        (see :meth:`iter_pages`).
        """
        for _ in range(2):
            items: list[Any] = []
            count: int | None = None
            for batch, count, bare in self._pages(path, params, window=None, ordered=True):
                items.extend(batch)
                if on_page:
                    on_page(len(batch), len(batch) if bare else count)
            unique = _dedupe(items)
            if count is None or len(unique) == count:
                return unique, count
        message = (
            f"GET {path}: collected {len(unique)} distinct items but the server announced "
            f"{count}, twice. The data probably changed during the walk; narrow the query "
            "(e.g. created_before) or retry."
        )
        if strict:
            raise IncompleteDataError(message)
        warnings.warn(message, IncompleteDataWarning, stacklevel=2)
        return unique, count

    def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        window: int | None = None,
        ordered: bool = False,
    ) -> Iterator[tuple[list[Any], int | None]]:
        """Yield ``(items, count)`` page by page, holding at most ``window`` pages in memory
        at once (default: 8, or ``max_workers`` when smaller; with ``ordered``, every page).

        Page-numbered links are fetched concurrently: pages then arrive in any order, or in
        the server's order with ``ordered=True``. Other ``next`` styles are followed one by
        one. A bare JSON array is one page whose ``count`` is its length. No deduplication or
        ``count`` check: the caller does it (see :meth:`paginate` for the checked form).

        The walk ends after a page that adds no row it has not seen (by ``id``). It raises
        :class:`InvalidResponseError` for a ``count`` over ``MAX_COUNT`` (or negative, or
        needing more than ``MAX_PAGES`` pages of the first page's size) before asking for a
        second page, and once it has taken ``count / page size`` pages plus a margin
        (``MAX_PAGES`` when there is no count).
        """
        for items, count, bare in self._pages(path, params, window=window, ordered=ordered):
            yield items, len(items) if bare else count

    def _pages(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        *,
        window: int | None,
        ordered: bool,
    ) -> Iterator[tuple[list[Any], int | None, bool]]:
        """The one walk of a list: ``(items, count, bare)`` per page, ``bare`` when the server
        answered a plain JSON array (no ``count``, no pages).

        The walk ends at a null ``next``, or after a page that adds no row it has not seen
        (by ``id``). It raises InvalidResponseError for a ``count`` that cannot be right
        (negative, over ``MAX_COUNT``, or more than ``MAX_PAGES`` pages of the first page's
        size) and past ``count / page size`` pages plus a margin (``MAX_PAGES`` without a
        count), so a server that never stops talking costs seconds, not forever."""
        params = dict(params or {})
        params.setdefault("page_size", self.settings.page_size)
        first = self.request("GET", path, params=params)
        if isinstance(first, list):  # an un-paginated list
            yield first, None, True
            return
        if not isinstance(first, dict) or "results" not in first:
            raise self._walk_error(path, "expected a page with 'results' or a JSON array")
        kind = self._endpoint_of(self._absolute(path))
        items = self._results_of(path, first)
        count = self._count_of(path, first)
        nxt = _resolve(self._absolute(path), first.get("next"))
        limit = self._page_limit(path, count, len(items), nxt)
        seen: set[int] = set()  # hashes of the ids seen: a few bytes a row
        _adds_rows(items, seen)
        yield items, count, False
        pages = 1
        numbered = _numbered_pages(nxt, count, len(items))
        if numbered is not None:
            make, last = numbered
            last_url = make(last)
            last_page = None
            halt = threading.Event()  # set by a page that adds nothing: ask for no more
            for url, page in self._fetch_pages(
                map(make, range(2, last + 1)), last - 1, window, ordered, halt
            ):
                pages += 1
                batch = self._results_of(path, page, url, kind)
                if url == last_url:
                    last_page = page
                if not _adds_rows(batch, seen):
                    halt.set()
                yield batch, count, False
            nxt = None
            if isinstance(last_page, dict) and not halt.is_set():
                nxt = _resolve(last_url, last_page.get("next"))
        seen_next: set[str] = set()
        while nxt:
            if nxt in seen_next:
                raise self._walk_error(path, f"the 'next' link loops ({self._path_of(nxt)})")
            seen_next.add(nxt)
            pages += 1
            if pages > limit:
                raise self._walk_error(
                    path,
                    f"the server kept sending pages: {pages - 1} so far, more than "
                    + (
                        f"a count of {count} in pages of {max(len(items), 1)} allows"
                        if count is not None
                        else f"the {MAX_PAGES:,} a listing may take"
                    ),
                )
            page = self.request("GET", nxt)
            batch = self._results_of(path, page, nxt, kind)
            if isinstance(page, list):
                yield batch, count, False
                break
            yield batch, count, False
            if not _adds_rows(batch, seen):
                break  # a page with nothing new: the rest would not add any either
            nxt = _resolve(nxt, page.get("next"))

    def _results_of(
        self, path: str, page: Any, url: str | None = None, kind: str | None = None
    ) -> list[Any]:
        """The rows of one page (a page object, or a bare array); InvalidResponseError for
        anything else. A page from ``url`` whose path is not the listing's own (a ``next``
        link elsewhere) is checked here as the listing's ``kind``: :meth:`parse` did not."""
        if url is not None and kind is not None and self._endpoint_of(url) != kind:
            problem = _shape_problem(kind, page)
            if problem:
                raise self._walk_error(path, f"{problem}: the client cannot use this answer")
        if isinstance(page, list):
            return page
        if not isinstance(page, dict):
            raise self._walk_error(path, f"a page is {_what(page)}, not an object")
        items = page.get("results")
        if items is None:
            return []
        if not isinstance(items, list):
            raise self._walk_error(path, f"'results' is {_what(items)}, not an array")
        return items

    def _count_of(self, path: str, page: Mapping[str, Any]) -> int | None:
        """The page's ``count`` (None when it has none, or not a number); InvalidResponseError
        for one that cannot be right."""
        count = page.get("count")
        if isinstance(count, bool) or not isinstance(count, int):
            return None
        if count < 0 or count > MAX_COUNT:
            raise self._walk_error(
                path,
                f"'count' is {count}: a listing holds between 0 and {MAX_COUNT:,} rows",
            )
        return count

    def _page_limit(self, path: str, count: int | None, first_len: int, nxt: str | None) -> int:
        """How many pages the walk may take: ``count / page size`` plus a margin (rows added
        during the walk), or ``MAX_PAGES`` without a count."""
        if count is None:
            return MAX_PAGES
        pages = math.ceil(count / max(first_len, 1))
        if nxt and pages > MAX_PAGES:
            raise self._walk_error(
                path,
                f"a 'count' of {count} in pages of {first_len} would take {pages:,} pages, "
                f"more than the {MAX_PAGES:,} a listing may take: the count or the page size "
                "cannot be right",
            )
        return max(pages, 1) + max(PAGE_MARGIN, pages // 10)

    def _walk_error(self, path: str, detail: str) -> InvalidResponseError:
        return InvalidResponseError(
            method="GET",
            path=self._path_of(self._absolute(path)),
            status=200,
            detail=detail,
            hint=_SHAPE_HINT,
        )

    def _fetch_pages(
        self,
        urls: Iterator[str],
        n_urls: int,
        window: int | None,
        ordered: bool,
        halt: threading.Event,
    ) -> Iterator[tuple[str, Any]]:
        """``(url, page)`` of page-numbered ``urls`` (``n_urls`` of them), fetched
        concurrently with at most ``window`` pages held at once; in ``urls`` order when
        ``ordered``, else as they come. Once ``halt`` is set, no further page is asked for
        (those in flight still come). A page that is not there (fewer pages than ``count``
        announced) comes back empty: the caller's ``count`` check notices it."""
        if window is None:
            window = self.settings.workers if ordered else min(self.settings.workers, 8)
        window = max(1, window)

        def fetch(url: str) -> tuple[str, Any]:
            try:
                return url, self.request("GET", url)
            except NotFoundError:
                return url, {"results": [], "next": None}

        with ThreadPoolExecutor(max(1, min(window, n_urls, self.settings.workers))) as pool:
            running = collections.deque(
                pool.submit(fetch, u) for u in itertools.islice(urls, window)
            )
            try:
                while running:
                    if ordered:
                        done: Iterable[Future[tuple[str, Any]]] = (running.popleft(),)
                    else:
                        done, rest = wait(running, return_when=FIRST_COMPLETED)
                        running = collections.deque(rest)
                    for future in done:
                        yield future.result()
                        more = None if halt.is_set() else next(urls, None)
                        if more is not None:
                            running.append(pool.submit(fetch, more))
            finally:  # an error, or the caller stopped: the pages not yet sent never are
                for future in running:
                    future.cancel()

    # -- endpoints ----------------------------------------------------------------------------

    def list_work_orders(self, **filters: Any) -> list[dict[str, Any]]:
        """Every work order matching the filters (``created_after``, ``created_before``,
        ``updated_after``, ``updated_before``, ``reviewed``, ``name``, ``tag``,
        ``field_engineer_email``, ``ordering``), with their tasks and states."""
        items, _ = self.paginate("work-orders/", list_params(filters))
        return items

    def get_work_order(self, work_order_id: str, *, include_inputs: bool = True) -> dict[str, Any]:
        """One work order (with ``inputs`` unless ``include_inputs=False``); cached."""
        return self.request(
            "GET",
            self._wo_path(work_order_id),
            params={"include_inputs": "true" if include_inputs else "false"},
            cached=True,
        )

    def create_work_order(
        self,
        name: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        field_engineer_email: str | None = None,
    ) -> dict[str, Any]:
        """Create a work order; returns it. Not retried if its answer is lost."""
        body: dict[str, Any] = {"name": name}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if tags is not None:
            body["tags"] = list(tags)
        if types is not None:
            body["types"] = list(types)
        if field_engineer_email is not None:
            body["field_engineer_email"] = field_engineer_email
        return self.request("POST", "work-orders/", body=body, expected=(200, 201))

    def update_work_order(
        self, work_order_id: str, *, replace: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Change a work order's ``name``, ``metadata``, ``tags``, ``types`` or
        ``field_engineer_email``. ``replace=True`` sends a PUT (omitted optional fields are
        reset); otherwise a PATCH of the given fields. Returns the work order."""
        allowed = {"name", "metadata", "tags", "types", "field_engineer_email"}
        unknown = set(fields) - allowed
        if unknown:
            raise ConfigurationError(
                f"cannot update {', '.join(sorted(unknown))}; "
                f"writable: {', '.join(sorted(allowed))}."
            )
        if replace and "name" not in fields:
            raise ConfigurationError("a full update (replace=True) needs name=...")
        return self._write(work_order_id, "PUT" if replace else "PATCH", "", body=fields)

    def delete_work_order(self, work_order_id: str) -> None:
        """Delete a work order. Deleting one that is already gone raises NotFoundError."""
        self._write(work_order_id, "DELETE", "", expected=(200, 202, 204))

    def get_timeline(self, work_order_id: str) -> list[dict[str, Any]]:
        """Every timeline event of one work order, oldest first."""
        items, _ = self.paginate(self._wo_path(work_order_id) + "timeline/")
        return items

    def patch_metadata(self, work_order_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``values`` into the metadata (a None value removes the key); returns it all."""
        return self._write(work_order_id, "PATCH", "metadata/", body=dict(values))

    def put_metadata(self, work_order_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the metadata with ``values``; returns it."""
        return self._write(work_order_id, "PUT", "metadata/", body=dict(values))

    def list_task_groups(self) -> list[dict[str, Any]]:
        """The task groups (with their tasks) of the site's current app version(s)."""
        items, _ = self.paginate("task-groups/")
        return items

    def get_task_group(self, id_or_name: str) -> dict[str, Any]:
        """One task group by id (any app version) or name (current version); cached."""
        return self.request(
            "GET", f"task-groups/{segment(id_or_name, 'task group id or name')}/", cached=True
        )

    def analyze(
        self,
        work_order_id: str,
        task_group: str,
        image: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        input_type: str = "image",
    ) -> dict[str, Any]:
        """Analyse one input (an image URL or a ``data:`` URI) for one task group,
        synchronously; returns the work order with its new states. Not retried if lost."""
        body = self._analyze_body(task_group, image, metadata, input_type)
        return self._write(work_order_id, "POST", "analyze/", body=body)

    def analyze_with_callback(
        self,
        work_order_id: str,
        task_group: str,
        image: str,
        callback_url: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        input_type: str = "image",
    ) -> str:
        """Ask for an analysis whose result the server POSTs to ``callback_url``; returns the
        ``analysis_id`` the callback will carry."""
        body = self._analyze_body(task_group, image, metadata, input_type)
        body["callback_url"] = callback_url
        answer = self._write(
            work_order_id, "POST", "analyze/callback/", body=body, expected=(200, 201, 202)
        )
        analysis_id = (answer or {}).get("analysis_id") if isinstance(answer, dict) else None
        if not analysis_id:
            raise APIError(
                method="POST",
                path="analyze/callback/",
                status=202,
                detail="the answer has no analysis_id",
            )
        return str(analysis_id)

    def correct(self, work_order_id: str, task_id: str, value: Any) -> dict[str, Any]:
        """Set a task's corrected value; returns ``{"id": task_id, "state": {...}}``.

        Not retried if its answer is lost (:class:`OutcomeUnknownError`): every accepted call
        is recorded on the platform, so check the state before sending again.
        """
        return self._write(
            work_order_id,
            "PATCH",
            f"tasks/{segment(task_id, 'task_id')}/correction/",
            body={"corrected_value": value},
        )

    def _write(
        self,
        work_order_id: str,
        method: str,
        sub_path: str,
        *,
        body: Any = None,
        expected: Collection[int] = OK_STATUSES,
    ) -> Any:
        """A write to one work order; its cached reads are forgotten whatever the outcome (a
        lost answer may still have been applied)."""
        path = self._wo_path(work_order_id) + sub_path
        try:
            return self.request(method, path, body=body, expected=expected)
        finally:
            self.invalidate(work_order_id)

    # -- cache --------------------------------------------------------------------------------

    def invalidate(self, work_order_id: str) -> None:
        """Forget cached reads of one work order (done after every write to it)."""
        with self._lock:
            listeners = list(self._write_listeners)
        for listener in listeners:
            listener(work_order_id)
        if isinstance(self._cached, requests_cache.CachedSession):
            base = self.url(self._wo_path(work_order_id))
            self._cached.cache.delete(
                urls=[base, base + "?include_inputs=true", base + "?include_inputs=false"]
            )

    def on_write(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(work_order_id)`` after every write (loaders use it to drop
        snapshots)."""
        with self._lock:
            self._write_listeners.append(listener)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _wo_path(work_order_id: str) -> str:
        return f"work-orders/{segment(work_order_id, 'work_order_id')}/"

    @staticmethod
    def _analyze_body(
        task_group: str, image: str, metadata: Mapping[str, Any] | None, input_type: str
    ) -> dict[str, Any]:
        if not isinstance(task_group, str) or not task_group:
            raise ConfigurationError("task_group must be the task group's name.")
        if not isinstance(image, str) or not image.startswith(("http://", "https://", "data:")):
            raise ConfigurationError("image must be an http(s) URL or a data: URI.")
        return {
            "inputs": [
                {"name": "image_input", "data": {"type": input_type, "value": image}},
                {"name": "context", "data": {"type": "text", "value": task_group}},
            ],
            "metadata": dict(metadata or {}),
        }


# --------------------------------------------------------------------------------------------


def _keywords_of_options(method: Callable[..., Any], names: Iterable[str]) -> None:
    """Show ``method(..., **options)`` with the :class:`RequestOptions` fields ``names`` as
    its keywords, in ``help()`` and Jupyter: one definition of them, no per-call cost."""
    sig = inspect.signature(method)
    fields = {f.name: f for f in dataclasses.fields(RequestOptions)}
    keep = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [
        inspect.Parameter(
            n, inspect.Parameter.KEYWORD_ONLY, default=fields[n].default, annotation=fields[n].type
        )
        for n in names
    ]
    method.__signature__ = sig.replace(parameters=keep + extra)  # type: ignore[attr-defined]


_keywords_of_options(Client.send, ("params", "body", "cached", "headers"))
_keywords_of_options(Client.request, ("params", "body", "cached", "headers", "expected"))


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


def _retry_after(response: requests.Response) -> float | None:
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


class _TokenAuth(AuthBase):
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
        return "_TokenAuth(****)"


_SHAPE_HINT = (
    "The server does not answer in the Field Services API's shapes: check the base URL, or "
    "report the answer to the API's maintainers."
)
_SCALARS = (str, int, float, bool, type(None))
_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _what(value: Any) -> str:
    if value is None:
        return "null"
    return _KINDS.get(type(value)) or ("a number" if isinstance(value, int | float) else "?")


def _task_problem(task: Any, where: str) -> str | None:
    if not isinstance(task, dict):
        return f"{where}: a task is {_what(task)}, not an object"
    for key in ("id", "name", "task_group_name"):
        if not isinstance(task.get(key), _SCALARS):
            return f"{where}: a task's {key!r} is {_what(task.get(key))}"
    return None


def _work_order_problem(wo: Any) -> str | None:
    """Why the client cannot use ``wo`` as a work order, or None. Only what the frames need
    is checked: extra keys, missing ones and other types are taken as they come."""
    if not isinstance(wo, dict):
        return f"a work order is {_what(wo)}, not an object"
    wo_id = wo.get("id")
    if not isinstance(wo_id, _SCALARS):
        return f"a work order's 'id' is {_what(wo_id)}"
    tasks = wo.get("tasks")
    if tasks is None:
        return None
    where = f"work order {str(wo_id)[:80]!r}"
    problem = _tasks_problem(tasks, where)
    if problem:
        return problem
    for task in tasks:
        state = task.get("state")
        if state is not None and not isinstance(state, dict):
            return f"{where}: a task's 'state' is {_what(state)}, not an object or null"
    return None


def _tasks_problem(tasks: Any, where: str) -> str | None:
    """Why ``tasks`` (of a work order or a task group, said by ``where``) is not a usable
    list of tasks, or None."""
    if not isinstance(tasks, list):
        return f"{where}: 'tasks' is {_what(tasks)}, not an array"
    for task in tasks:
        problem = _task_problem(task, where)
        if problem:
            return problem
    return None


def _event_problem(event: Any) -> str | None:
    """Why the client cannot use ``event`` as a timeline event, or None."""
    if not isinstance(event, dict):
        return f"a timeline event is {_what(event)}, not an object"
    if not isinstance(event.get("id"), _SCALARS):
        return f"a timeline event's 'id' is {_what(event.get('id'))}"
    states = event.get("states")
    if states is None:
        return None
    if not isinstance(states, list):
        return f"a timeline event's 'states' is {_what(states)}, not an array"
    for state in states:
        if state is not None and not isinstance(state, dict):
            return f"a timeline event's state is {_what(state)}, not an object"
    return None


def _task_group_problem(group: Any) -> str | None:
    """Why the client cannot use ``group`` as a task group, or None."""
    if not isinstance(group, dict):
        return f"a task group is {_what(group)}, not an object"
    for key in ("id", "name"):
        if not isinstance(group.get(key), _SCALARS):
            return f"a task group's {key!r} is {_what(group.get(key))}"
    tasks = group.get("tasks")
    if tasks is None:
        return None
    return _tasks_problem(tasks, f"task group {str(group.get('name'))[:80]!r}")


# endpoint kind -> (checker of one item, whether the answer is a list)
_SHAPES: dict[str, tuple[Callable[[Any], str | None], bool]] = {
    "work orders": (_work_order_problem, True),
    "work order": (_work_order_problem, False),
    "timeline": (_event_problem, True),
    "task groups": (_task_group_problem, True),
    "task group": (_task_group_problem, False),
}


def _shape_problem(kind: str | None, body: Any) -> str | None:
    """Why the client cannot use ``body`` as an answer of ``kind``, or None. A list answer is
    a page (``results``) or a bare array; a page's other keys are checked by the walk."""
    if kind is None:
        return None
    check, is_list = _SHAPES[kind]
    if not is_list:
        return check(body)
    if isinstance(body, dict):
        if "results" not in body:
            return None  # not a page: the walk says so
        items = body["results"]
        if items is None:
            return None
        if not isinstance(items, list):
            return f"'results' is {_what(items)}, not an array"
    elif isinstance(body, list):
        items = body
    else:
        return f"the answer is {_what(body)}, not a page or an array of {kind}"
    for item in items:
        problem = check(item)
        if problem:
            return problem
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port made explicit; no user or password."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a port number: matches no origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_path(url: str) -> str:
    """The path and query of a URL: what messages show of it (never a user or password)."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class _AnswerGuard:
    """A response hook of the client's sessions: every answer (each hop of a redirect
    included) passes here before ``requests`` or the HTTP cache reads its body.

    - A redirect to another origin (scheme, host or port than the base URL's) raises
      InvalidResponseError: it is never followed, so nothing another origin says is stored.
    - The body is read here, ``READ_CHUNK`` bytes at a time through urllib3's bounded
      decompression, and refused past ``limit`` bytes once decompressed: a compression bomb
      costs at most ``limit`` bytes of memory, on the cached path too (requests-cache stores
      the body read here).
    """

    __slots__ = ("limit", "origin")

    def __init__(self, base_url: str, limit: int) -> None:
        self.origin = _origin(base_url)
        self.limit = limit

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.is_redirect:
            target = urllib.parse.urljoin(response.url, response.headers["location"])
            if _origin(target) != self.origin:
                response.close()
                scheme, host, port = _origin(target)
                self._refuse(
                    response,
                    f"redirected to another origin ({scheme}://{host}:{port}); the client "
                    "follows redirects only within the base URL's scheme, host and port",
                    "Check the base URL: if the API has moved, give its new address as the "
                    "base URL.",
                )
        # requests' own flag: a body already read (an answer served from the cache) stays
        if response._content_consumed or response.raw is None:
            return
        chunks = []
        size = 0
        for chunk in response.iter_content(READ_CHUNK):
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

    @staticmethod
    def _refuse(response: requests.Response, detail: str, hint: str) -> None:
        raise _Refused(
            InvalidResponseError(
                method=response.request.method or "GET",
                path=_url_path(response.request.url or response.url),
                status=response.status_code,
                detail=detail,
                hint=hint,
            )
        )


class _Refused(BaseException):
    """Carries an answer's refusal from :class:`_AnswerGuard` to :meth:`Client._send`
    through ``requests`` and requests-cache. Not an ``Exception``: the cache serves its stored
    answer when revalidation raises one, which would hide the refusal."""

    def __init__(self, error: InvalidResponseError) -> None:
        super().__init__()
        self.error = error


def _open_http_cache(path: Any, *, offline: bool) -> requests_cache.CachedSession:
    """The HTTP cache at ``path``: SQLite in WAL mode with a busy timeout, so that processes
    sharing it wait for each other instead of failing. A file that is not a usable SQLite
    database is moved aside (``<name>.corrupt-<time>``) with a warning naming both, and a
    fresh cache is started."""
    from pathlib import Path

    path = Path(path)
    for attempt in range(2):
        _private_file(path)
        try:
            _check_sqlite(path)
            return requests_cache.CachedSession(
                str(path),
                backend="sqlite",
                # stored without expiry: Client.send decides when to revalidate (online)
                expire_after=requests_cache.NEVER_EXPIRE,
                allowable_methods=("GET",),
                allowable_codes=(200,),
                ignored_parameters=("Authorization",),
                match_headers=False,
                serializer="json",  # never pickle: nothing read back from disk runs code
                only_if_cached=offline,
                stale_if_error=offline,  # offline, entries stored stale by older versions too
                wal=True,
                timeout=SQLITE_TIMEOUT,
                busy_timeout=int(SQLITE_TIMEOUT * 1000),
            )
        except sqlite3.OperationalError as exc:  # locked for too long, not writable...
            raise ConfigurationError(
                f"the HTTP cache {str(path)!r} cannot be opened ({exc}): another process holds "
                "it for too long, or the folder is not writable; or use cache=None."
            ) from None
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            if attempt:
                raise ConfigurationError(
                    f"the HTTP cache {str(path)!r} cannot be used ({exc}); delete it."
                ) from None
            _move_aside(path, exc)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_sqlite(path: Any) -> None:
    """Raise sqlite3.DatabaseError if ``path`` is not a readable SQLite database."""
    con = sqlite3.connect(str(path), timeout=SQLITE_TIMEOUT)
    try:
        con.execute(f"PRAGMA busy_timeout={int(SQLITE_TIMEOUT * 1000)}")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        con.close()


def _move_aside(path: Any, exc: BaseException) -> None:
    """Rename a damaged cache file (and its WAL files) out of the way, with a warning."""
    from pathlib import Path

    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process moved it first
        return
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.replace(extra, aside.with_name(aside.name + suffix))
    warnings.warn(
        f"the HTTP cache {str(path)!r} was damaged ({exc}); it was moved to {str(aside)!r} and "
        "a fresh cache started (cached single-resource reads will be fetched again).",
        UserWarning,
        stacklevel=4,
    )


def _resolve(page_url: str, link: Any) -> str | None:
    """A ``next`` link made absolute against the page it came from (relative links happen)."""
    if not isinstance(link, str) or not link:
        return None
    return urllib.parse.urljoin(page_url, link)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        key = item.get("id") if isinstance(item, dict) else None
        if key is None:
            out.append(item)
        elif key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _numbered_pages(
    next_url: Any, count: int | None, first_len: int
) -> tuple[Callable[[int], str], int] | None:
    """When ``next`` is page-numbered (``page=2``) and ``count`` is known: the URL of page
    ``n`` as a function, and the last page's number (URLs are made as they are asked for)."""
    if not isinstance(next_url, str) or count is None or first_len <= 0:
        return None
    parts = urllib.parse.urlsplit(next_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    pages = [v for k, v in query if k == "page"]
    last = math.ceil(count / first_len)
    if len(pages) != 1 or pages[0] != "2" or last < 2:
        return None

    def url_of(n: int) -> str:
        q = [(k, str(n) if k == "page" else v) for k, v in query]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))

    return url_of, last


def _adds_rows(items: list[Any], seen: set[int]) -> bool:
    """Whether ``items`` hold a row whose ``id`` is not in ``seen`` (hashes of ids), adding
    theirs; a row without a usable id counts as new (it cannot be told apart)."""
    new = False
    for item in items:
        key = item.get("id") if isinstance(item, dict) else None
        if key is None:
            new = True
            continue
        try:
            h = hash(key)
        except TypeError:
            new = True
            continue
        if h not in seen:
            seen.add(h)
            new = True
    return new


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


def _private_file(path: Any) -> None:
    """Create (or keep) an owner-only file, never through a symbolic link; SQLite's own
    side files must not be links either (it opens them itself)."""
    fd = open_no_follow(path, os.O_CREAT | os.O_RDWR, 0o600, what="HTTP cache file")
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm", "-journal"):
        if os.path.islink(f"{path}{side}"):
            raise UnsafePathError(f"{path}{side}", "HTTP cache file")
