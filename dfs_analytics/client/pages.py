"""The walk of a list endpoint: every page, once, within bounds a hostile server cannot stretch.

One walk follows ``next`` whatever its style; page-numbered links are fetched concurrently
(pages in any order, or in the server's with ``ordered``). It ends at a null ``next`` or after
a page that adds no row it has not seen (by ``id``); a ``count`` that cannot be right, or more
pages than ``count / page size`` plus a margin (``MAX_PAGES`` without a count), raises
InvalidResponseError. :func:`collect` checks the rows against ``count``.

It never sends a request itself (the client's GET does), never retries, and never keeps more
than the window of pages it was given.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import sys
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ..errors import (
    IncompleteDataError,
    IncompleteDataWarning,
    InvalidResponseError,
    NotFoundError,
)
from .answers import SHAPE_HINT, endpoint_of, shape_problem, what
from .safety import absolute, url_path

#: the largest ``count`` a listing may announce: a walk of more rows would not fit in memory
MAX_COUNT = 10**8
#: the most pages one listing may take (MAX_COUNT rows at the API's 1000 a page): the bound of
#: a listing without a ``count``; with one, ``count / page size`` plus a margin of
#: ``PAGE_MARGIN`` pages or a tenth more, whichever is larger (rows added during the walk).
#: A walk reads it from ``dfs_analytics.client.MAX_PAGES`` when it starts (see max_pages()).
MAX_PAGES = 100_000
PAGE_MARGIN = 10

#: one page of a walk: its rows, the listing's ``count``, and whether the server answered a
#: bare JSON array (no ``count``, no pages)
Page = tuple[list[Any], int | None, bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """What a walk reads pages through: ``get(path_or_url, params)``, the client's GET
    returning parsed JSON; the API's ``base_url``; the ``page_size`` asked for; and how many
    ``workers`` may fetch pages at once."""

    get: Callable[[str, Mapping[str, Any] | None], Any]
    base_url: str
    page_size: int
    workers: int


def max_pages() -> int:
    """The most pages one listing may take, as the package ``dfs_analytics.client`` says it
    now (``MAX_PAGES`` there may be lowered at run time), else this module's ``MAX_PAGES``."""
    package = sys.modules.get(__package__ or "")
    return int(getattr(package, "MAX_PAGES", MAX_PAGES))


def collect(
    source: Source,
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    on_page: Callable[[int, int | None], None] | None = None,
    strict: bool = True,
) -> tuple[list[Any], int | None]:
    """Every item of the listing at ``path``, in the server's order and deduplicated by
    ``id``, and its ``count`` (None for a bare array). A mismatch with ``count`` is walked
    again once, then raises IncompleteDataError (``strict``) or warns. ``on_page(n_items,
    count)`` is called after each page, in order."""
    for _ in range(2):
        items: list[Any] = []
        count: int | None = None
        for batch, count, bare in walk(source, path, params, window=None, ordered=True):
            items.extend(batch)
            if on_page:
                on_page(len(batch), len(batch) if bare else count)
        unique = dedupe(items)
        if count is None or len(unique) == count:
            return unique, count
    message = (
        f"GET {path}: collected {len(unique)} distinct items but the server announced "
        f"{count}, twice. The data probably changed during the walk; narrow the query "
        "(e.g. created_before) or retry."
    )
    if strict:
        raise IncompleteDataError(message)
    warnings.warn(message, IncompleteDataWarning, stacklevel=3)
    return unique, count


def walk(
    source: Source,
    path: str,
    params: Mapping[str, Any] | None = None,
    *,
    window: int | None = None,
    ordered: bool = False,
) -> Iterator[Page]:
    """The one walk of the listing at ``path``: a :data:`Page` at a time, holding at most
    ``window`` pages at once (default: 8, or ``workers`` when smaller; with ``ordered``,
    ``workers``). Page-numbered links are fetched concurrently, in the server's order with
    ``ordered``; other ``next`` styles one by one. No deduplication nor ``count`` check."""
    query = dict(params or {})
    query.setdefault("page_size", source.page_size)
    return _Walk(source, path).pages(query, window, ordered)


class _Walk:
    """The state of one walk: the listing, the ids seen, the pages taken and the limit."""

    def __init__(self, source: Source, path: str) -> None:
        self.source = source
        self.path = path
        self.url = absolute(source.base_url, path)
        self.base_path = urllib.parse.urlsplit(source.base_url).path
        self.kind = endpoint_of(self.url, self.base_path)
        self.seen: set[int] = set()  # hashes of the ids seen: a few bytes a row
        self.count: int | None = None
        self.first_len = 0
        self.taken = 0  # pages so far
        self.limit = 0

    def pages(self, params: Mapping[str, Any], window: int | None, ordered: bool) -> Iterator[Page]:
        first = self.source.get(self.path, params)
        if isinstance(first, list):  # an un-paginated list
            yield first, None, True
            return
        if not isinstance(first, dict) or "results" not in first:
            raise self.error("expected a page with 'results' or a JSON array")
        items = self.rows(first)
        self.count = self.count_of(first)
        self.first_len = len(items)
        nxt = resolve(self.url, first.get("next"))
        self.limit = self.page_limit(nxt)
        self.taken = 1
        adds_rows(items, self.seen)
        yield items, self.count, False
        numbered = numbered_pages(nxt, self.count, self.first_len)
        if numbered is not None:
            nxt = yield from self.numbered(*numbered, window, ordered)
        yield from self.follow(nxt)

    def numbered(
        self, url_of: Callable[[int], str], last: int, window: int | None, ordered: bool
    ) -> Generator[Page, None, str | None]:
        """Pages 2 to ``last``, fetched concurrently until one adds no row; returns the
        ``next`` link of the last page, if the walk must go on past it."""
        last_url = url_of(last)
        last_page = None
        halt = threading.Event()  # set by a page that adds nothing: ask for no more
        urls = map(url_of, range(2, last + 1))
        for url, page in self.fetch(urls, last - 1, window, ordered, halt):
            self.taken += 1
            batch = self.rows(page, url)
            if url == last_url:
                last_page = page
            if not adds_rows(batch, self.seen):
                halt.set()
            yield batch, self.count, False
        if isinstance(last_page, dict) and not halt.is_set():
            return resolve(last_url, last_page.get("next"))
        return None

    def follow(self, nxt: str | None) -> Iterator[Page]:
        """The pages ``next`` links to, one by one, until a null ``next`` or a page that adds
        no row; InvalidResponseError for a loop or past the page limit."""
        followed: set[str] = set()
        while nxt:
            if nxt in followed:
                raise self.error(f"the 'next' link loops ({url_path(nxt)})")
            followed.add(nxt)
            self.taken += 1
            if self.taken > self.limit:
                raise self.error(
                    f"the server kept sending pages: {self.taken - 1} so far, more than "
                    + (
                        f"a count of {self.count} in pages of {max(self.first_len, 1)} allows"
                        if self.count is not None
                        else f"the {max_pages():,} a listing may take"
                    )
                )
            page = self.source.get(nxt, None)
            batch = self.rows(page, nxt)
            yield batch, self.count, False
            if isinstance(page, list) or not adds_rows(batch, self.seen):
                break  # a bare array ends it; a page with nothing new: the rest adds none
            nxt = resolve(nxt, page.get("next"))

    def fetch(
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
        workers = self.source.workers
        if window is None:
            window = workers if ordered else min(workers, 8)
        window = max(1, window)

        def fetch(url: str) -> tuple[str, Any]:
            try:
                return url, self.source.get(url, None)
            except NotFoundError:
                return url, {"results": [], "next": None}

        with ThreadPoolExecutor(max(1, min(window, n_urls, workers))) as pool:
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

    def rows(self, page: Any, url: str | None = None) -> list[Any]:
        """The rows of one page (a page object, or a bare array); InvalidResponseError for
        anything else. A page from ``url`` whose path is not the listing's own (a ``next``
        link elsewhere) is checked here as the listing's kind: the client's GET did not."""
        kind = self.kind
        if url is not None and kind is not None and endpoint_of(url, self.base_path) != kind:
            problem = shape_problem(kind, page)
            if problem:
                raise self.error(f"{problem}: the client cannot use this answer")
        if isinstance(page, list):
            return page
        if not isinstance(page, dict):
            raise self.error(f"a page is {what(page)}, not an object")
        items = page.get("results")
        if items is None:
            return []
        if not isinstance(items, list):
            raise self.error(f"'results' is {what(items)}, not an array")
        return items

    def count_of(self, page: Mapping[str, Any]) -> int | None:
        """The page's ``count`` (None when it has none, or not a number); InvalidResponseError
        for one that cannot be right."""
        count = page.get("count")
        if isinstance(count, bool) or not isinstance(count, int):
            return None
        if count < 0 or count > MAX_COUNT:
            raise self.error(
                f"'count' is {count}: a listing holds between 0 and {MAX_COUNT:,} rows"
            )
        return count

    def page_limit(self, nxt: str | None) -> int:
        """How many pages the walk may take: ``count / page size`` plus a margin (rows added
        during the walk), or ``max_pages()`` without a count."""
        cap = max_pages()
        if self.count is None:
            return cap
        pages = math.ceil(self.count / max(self.first_len, 1))
        if nxt and pages > cap:
            raise self.error(
                f"a 'count' of {self.count} in pages of {self.first_len} would take "
                f"{pages:,} pages, more than the {cap:,} a listing may take: the count or the "
                "page size cannot be right"
            )
        return max(pages, 1) + max(PAGE_MARGIN, pages // 10)

    def error(self, detail: str) -> InvalidResponseError:
        """The error of a listing the client cannot use."""
        return InvalidResponseError(
            method="GET", path=url_path(self.url), status=200, detail=detail, hint=SHAPE_HINT
        )


def resolve(page_url: str, link: Any) -> str | None:
    """A ``next`` link made absolute against the page it came from (relative links happen)."""
    if not isinstance(link, str) or not link:
        return None
    return urllib.parse.urljoin(page_url, link)


def dedupe(items: list[Any]) -> list[Any]:
    """``items`` without the repeats of an ``id`` (the first kept); rows without one stay."""
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


def numbered_pages(
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


def adds_rows(items: list[Any], seen: set[int]) -> bool:
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
