"""The client of one Field Services site: its sessions, and one method per endpoint.

:class:`Client` composes the rest of the package: every request goes through
:meth:`Client.send` (the retry loop of :mod:`.retry`, the guard of :mod:`.safety`, the HTTP
cache of :mod:`.cache`), every answer through :meth:`Client.parse` (:mod:`.answers`), every
listing through the walk of :mod:`.pages`. Every method returns parsed JSON as the server sent
it; a write forgets the cached reads of the work order it touched, whatever its outcome.

It never builds frames nor writes the dataset, never stores the API key, and never sends a
request the settings forbid (offline, no key).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import tempfile
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from .._version import __version__
from ..concurrency import Limiter
from ..config import DEFAULT, Settings
from ..errors import APIError, ConfigurationError, OfflineCacheMiss
from ..query import list_params
from . import cache, pages
from .answers import OK_STATUSES, read_answer
from .retry import Call, send_with_retries
from .safety import (
    MAX_REDIRECTS,
    MAX_RESPONSE_BYTES,
    AnswerGuard,
    TokenAuth,
    absolute,
    refusals,
    same_origin,
    segment,
    url_path,
)

_TEMP_LOCK = threading.Lock()


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
        storage_options: credentials and settings for an object-store ``dataset`` (as
            deltalake takes them, e.g. ``AWS_ACCESS_KEY_ID``); secret values are masked in
            reprs and never written; default: the store's own environment variables.

    Every method returns parsed JSON (dicts and lists) as the server sent it.

    ``client.max_response_bytes`` (default 64 MiB) is the largest answer the client reads,
    once decompressed; a larger one raises InvalidResponseError (the other bounds are in
    :mod:`.pages` and :mod:`.safety`).
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
        storage_options: Mapping[str, str] | None = None,
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
            storage_options=storage_options,
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
        self._cached = cache.open_session(s.cache, self.cache_dir, offline=s.offline)
        self._plain = requests.Session()
        self._guard = AnswerGuard(s.base_url, MAX_RESPONSE_BYTES)
        # the environment (proxies, NO_PROXY, a CA bundle) is read once, for the site's URL,
        # instead of at every request: the one origin this client talks to
        proxies = requests.utils.get_environ_proxies(s.base_url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        if not proxies and urllib.parse.urlsplit(s.base_url).scheme == "http":
            # no TLS anywhere (redirects stay on this origin): a CA bundle path would only be
            # looked up on disk at every request, for nothing
            verify = True
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
                session.auth = TokenAuth(s.api_key)
        self._base_path = urllib.parse.urlsplit(s.base_url).path
        self._host = urllib.parse.urlsplit(s.base_url).netloc.rpartition("@")[2]  # no password

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

    # -- requests -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's base URL, ending with ``/``."""
        return self.settings.base_url

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as ``work-orders/<id>/``."""
        return self.settings.base_url + path.lstrip("/")

    def _same_origin(self, url: str) -> str:
        """``url`` re-aimed at the base URL's scheme, host and port (see safety.same_origin)."""
        return same_origin(self.settings.base_url, url)

    def send(self, method: str, path_or_url: str, **options: Any) -> requests.Response:
        """Send one request with the retry policy (see :mod:`.retry`); return the last
        response whatever its status.

        Keywords: ``params``, ``body``, ``cached``, ``headers``, as in
        :class:`RequestOptions`. Raises TransportError / OutcomeUnknownError when no answer
        came, OfflineCacheMiss offline, InvalidResponseError for an answer refused before it is
        stored (a redirect to another origin, a body over ``max_response_bytes``). Most callers
        want :meth:`request`, which also maps statuses to errors.
        """
        if "expected" in options:
            raise TypeError("send() returns any status: expected= goes with request()")
        return self._send(method, path_or_url, RequestOptions(**options))

    def _send(self, method: str, path_or_url: str, options: RequestOptions) -> requests.Response:
        """The body of :meth:`send`: check what the settings allow, then send with retries."""
        s = self.settings
        method = method.upper()
        if "://" in path_or_url or path_or_url.startswith(("/", ".")) or "/." in path_or_url:
            url = self._same_origin(absolute(s.base_url, path_or_url))
        else:  # a plain relative API path: on the base URL's origin already
            url = s.base_url + path_or_url
        cached = options.cached and method == "GET"
        if s.offline and not cached:
            raise OfflineCacheMiss(
                f"{method} {url_path(url)}: this client is offline (offline=True) and this "
                "request is not served from the cache. Create the client with offline=False."
            )
        if not s.api_key:
            raise ConfigurationError("no API key: pass Client(api_key=...) or set DFS_API_KEY.")
        session = self._cached if cached else self._plain
        headers = dict(options.headers or {})
        data = None
        if options.body is not None:
            data = json.dumps(options.body, default=str).encode()
            headers["Content-Type"] = "application/json"
        extra = cache.refresh_options(session, url, options.params, offline=s.offline)

        def send_once() -> requests.Response:
            with self._lock:
                self._requests_sent += 1
            if session is self._plain:
                return plain_request(session, method, url, options.params, data, headers, s.timeout)
            return session.request(
                method,
                url,
                params=options.params,
                data=data,
                headers=headers,
                timeout=s.timeout,
                **extra,
            )

        call = Call(method, url_path(url), self._host, self._offline_hint())
        with refusals(method, call.path):
            if s.offline:  # the cache answers: nothing to wait for, nothing to retry
                response = send_once()
            else:
                response = send_with_retries(send_once, call, s, self.limiter)
        if s.offline and response.status_code == 504:  # requests-cache's miss
            raise OfflineCacheMiss(
                f"GET {call.path} is not in the cache (offline=True). Load it once "
                "online first, or create the client with offline=False."
            )
        return response

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
        return read_answer(
            response,
            expected=expected,
            base_path=self._base_path,
            site=self.settings.display_url,
        )

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
        return pages.collect(self._pages_source(), path, params, on_page=on_page, strict=strict)

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
        walk = pages.walk(self._pages_source(), path, params, window=window, ordered=ordered)
        for items, count, bare in walk:
            yield items, len(items) if bare else count

    def _pages_source(self) -> pages.Source:
        """What the walk reads pages through: this client's GET and settings."""

        def get(path_or_url: str, params: Mapping[str, Any] | None) -> Any:
            return self.request("GET", path_or_url, params=params)

        s = self.settings
        return pages.Source(get, s.base_url, s.page_size, s.workers)

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
        body = _analyze_body(task_group, image, metadata, input_type)
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
        body = _analyze_body(task_group, image, metadata, input_type)
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
        base = self.url(self._wo_path(work_order_id))
        cache.forget(
            self._cached, [base, base + "?include_inputs=true", base + "?include_inputs=false"]
        )

    def on_write(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(work_order_id)`` after every write (loaders use it to drop
        snapshots)."""
        with self._lock:
            self._write_listeners.append(listener)

    @staticmethod
    def _wo_path(work_order_id: str) -> str:
        return f"work-orders/{segment(work_order_id, 'work_order_id')}/"


def plain_request(
    session: requests.Session,
    method: str,
    url: str,
    params: Mapping[str, Any] | None,
    data: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> requests.Response:
    """The response of ``session.request(method, url, params=..., data=..., headers=...,
    timeout=...)``: the same request, sent the same way, prepared with half the CPU. While the
    session holds no cookie, no default params and ignores the environment (the client's own
    sessions), what ``prepare_request`` would merge is known (the session's headers, auth and
    hooks), so the request is prepared from them directly; otherwise ``session.request``."""
    if session.cookies or session.params or session.trust_env:
        return session.request(
            method, url, params=params, data=data, headers=headers, timeout=timeout
        )
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    for key in [k for k, v in merged.items() if v is None]:  # as requests' merge drops them
        del merged[key]
    prepared = requests.PreparedRequest()
    prepared.prepare(
        method=method,
        url=url,
        headers=merged,
        data=data or {},
        params=params or {},
        auth=session.auth,
        cookies=RequestsCookieJar(),
        hooks=session.hooks,
    )
    env = session.merge_environment_settings(prepared.url, {}, None, None, None)
    return session.send(prepared, timeout=timeout, allow_redirects=True, **env)


def _analyze_body(
    task_group: str, image: str, metadata: Mapping[str, Any] | None, input_type: str
) -> dict[str, Any]:
    """The body of an analysis of ``image`` for ``task_group``; ConfigurationError, before
    any request, for a task group or an image that cannot be right."""
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
