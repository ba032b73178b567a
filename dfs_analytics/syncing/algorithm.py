"""The sync itself: what changed on the server for a query, committed to the dataset.

:func:`sync` (behind :func:`dfs_analytics.sync`), :func:`sync_ids` and
:func:`sync_task_groups` decide what to read;
:class:`~.batches.Committer` writes it, :mod:`.timelines` reads timelines, :mod:`.state`
holds what the sync remembers per client. This module reads the server only through
:class:`~dfs_analytics.client.Client`, never builds a frame for the user (the loaders read the
dataset back), and never writes the dataset but through its committer. The steps of a sync
are in :func:`_sync`'s docstring.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import pandas as pd

from .. import normalize
from ..client import Client
from ..dataset import PARTITION, TIMELINE_AT
from ..errors import IncompleteDataError, NotFoundError, OfflineCacheMiss, SkippedIdWarning
from ..query import canonical, split_filters, to_api_date
from . import limits
from .batches import (
    Committer,
    addressable,
    from_micros,
    micros,
    rate_bar,
    same_date,
    task_group_rows,
)
from .result import SyncResult
from .state import ClientState, client_state, writer
from .timelines import TimelineFetcher, sync_stale_timelines


def sync(
    client: Client,
    *,
    timelines: bool = False,
    progress: bool | None = None,
    **filters: Any,
) -> SyncResult:
    """Bring the client's dataset up to date with the server for ``filters`` (the loaders'
    filters: ``created_after``, ``reviewed``, ``tag``, ...); with ``timelines=True`` their
    timelines too. Network only: returns a :class:`SyncResult`, no frame.

    Commits in batches (each a dataset version): an interrupted sync keeps what it
    committed, and the next call fetches only what is missing or changed. A sync that
    changes nothing commits nothing. Raises SiteMismatchError when the dataset belongs to
    another site, ReadOnlyDatasetError when it cannot be written, OfflineCacheMiss offline.
    """
    with client_state(client).syncing, client.limiter.track() as usage:
        result = _sync(client, timelines=timelines, progress=progress, **filters)
    return _usage(result, usage)


def _usage(result: SyncResult, usage: Any) -> SyncResult:
    """``result`` with the concurrency reached and the 429s received filled in."""
    result.concurrency = usage.peak
    result.concurrency_limit = usage.peak_limit
    result.throttled = usage.throttled
    return result


def _sync(
    client: Client,
    *,
    timelines: bool = False,
    progress: bool | None = None,
    **filters: Any,
) -> SyncResult:
    """The body of :func:`sync`, run under the client's sync lock.

    What a sync does for a query (the loaders' filters):

    1. It reads from the dataset the stored work orders the filters select (ids and dates only).
    2. Nothing stored: it walks the list, page by page as pages arrive, and commits every
       ``BATCH`` work orders or ``BATCH_SECONDS`` seconds, whichever comes first. Each commit is
       a dataset version, so an interrupted sync keeps everything it committed, and the next one
       skips work orders whose stored ``update_date`` equals the listed one.
    3. Something stored: one small request asks what changed (the query ordered by
       ``-update_date``, revalidated with its ``ETag`` when the server sends one). Work orders
       updated since the newest stored one are read and committed. When the server's ``count``
       differs from what the dataset then holds (a deletion, a work order that left the query),
       the list is walked again, and stored work orders it no longer lists are read one by one:
       404 means deleted.
    4. Work orders this client wrote to (corrections, analyses, updates) are always read again.
    5. With ``timelines=True``, it fetches the timelines of the selected work orders whose
       stored timeline was read at another ``update_date`` (or never), in batches as well.

    Memory stays bounded by a batch and the pages in flight, never by the site's size.
    """
    if client.settings.offline:
        raise OfflineCacheMiss(
            "sync() needs the server, and this client is offline (offline=True); the loaders "
            "read the dataset as it is offline."
        )
    started = time.monotonic()
    requests0 = client.requests_sent
    params, local = split_filters(filters)
    state = client_state(client)
    w = writer(client)
    ds = w.dataset
    result = SyncResult(version=ds.version, location=ds.path, filters=canonical(local))
    stats = {"filters": result.filters, "with_timelines": timelines}
    with TimelineFetcher(client, progress) as fetcher:
        committer = Committer(w, result, client, stats, fetcher.submit, all_timelines=timelines)
        index = ds.index(**local)
        committer.months = _by_id(index, PARTITION)
        stored, dirty, mark = _stored_state(index, state)

        def consider(records: Iterable[Any]) -> None:
            _consider(committer, stored, dirty, mark, records)

        walk = not stored
        listed = 0
        if not walk:
            listed, walk = _refresh(client, params, stored, dirty, state, committer, consider)
        if walk:
            listed = _full_walk(client, params, stored, dirty, committer, consider, progress)
        result.listed = listed
        if timelines:
            sync_stale_timelines(
                w, committer, fetcher, index["work_order_id"].tolist(), stored, mark
            )
        committer.finish()
    _warn_skipped(committer.skipped, _SKIPPED)
    result.requests = client.requests_sent - requests0
    result.seconds = time.monotonic() - started
    return result


def sync_ids(
    client: Client, ids: list[str], *, timelines: bool = True, progress: bool | None = None
) -> SyncResult:
    """Sync given work orders (read one by one, revalidated) and, with ``timelines``, their
    timelines. Raises NotFoundError naming an id the server does not know."""
    with client_state(client).syncing, client.limiter.track() as usage:
        result = _sync_ids(client, ids, timelines=timelines, progress=progress)
    return _usage(result, usage)


def _sync_ids(
    client: Client, ids: list[str], *, timelines: bool = True, progress: bool | None = None
) -> SyncResult:
    """The body of :func:`sync_ids`, run under the client's sync lock."""
    started = time.monotonic()
    requests0 = client.requests_sent
    state = client_state(client)
    w = writer(client)
    ds = w.dataset
    result = SyncResult(version=ds.version, location=ds.path, filters={"work_order_ids": len(ids)})
    stats = {"filters": result.filters, "with_timelines": timelines}
    index = ds.index()
    index = index[index["work_order_id"].isin(set(ids))]
    stored, dirty, mark = _stored_state(index, state)

    def one(wo_id: str) -> dict[str, Any]:
        return client.get_work_order(wo_id, include_inputs=False)

    with TimelineFetcher(client, progress) as fetcher:
        committer = Committer(w, result, client, stats, fetcher.submit, all_timelines=timelines)
        committer.months = _by_id(index, PARTITION)
        with ThreadPoolExecutor(max(1, min(client.settings.workers, len(ids)))) as pool:
            records = list(pool.map(one, ids))
        _consider(committer, stored, dirty, mark, records)
        result.listed = len(ids)
        if timelines:
            sync_stale_timelines(w, committer, fetcher, ids, stored, mark)
        committer.finish()
    result.requests = client.requests_sent - requests0
    result.seconds = time.monotonic() - started
    return result


def sync_task_groups(client: Client, *, force: bool = False) -> bool:
    """Bring the dataset's task groups up to date with the server's (one request); returns
    whether a version was committed (only when they changed, or with ``force``: when the
    stored table is another process's commit that no dataset version records yet)."""
    rows = task_group_rows(client.list_task_groups())
    w = writer(client)
    current = w.stored_table("task_groups")
    if not force and current is not None and current.equals(rows):
        return False
    w.commit({"task_groups": (rows, [])}, {"filters": {"task_groups": True}, "complete": True})
    return True


def _stored_state(
    index: pd.DataFrame, state: ClientState
) -> tuple[dict[str, Any], set[str], Callable[[str], pd.Timestamp | None]]:
    """What the dataset holds of the indexed work orders: their stored ``update_date``, the
    ones this client wrote to since they were stored (read again whatever their date), and
    ``mark(id)``, the ``update_date`` its stored timeline was read at (None: none usable)."""
    stored = _dates_by_id(index, "update_date")
    marks = _dates_by_id(index, TIMELINE_AT)
    dirty = state.written_since_stored(index)

    def mark(wo_id: str) -> pd.Timestamp | None:
        m = None if wo_id in dirty else marks.get(wo_id)
        return from_micros(m)

    return stored, dirty, mark


def _by_id(index: pd.DataFrame, column: str) -> dict[str, Any]:
    """``column`` of the index by work order id (lists first: iterating a pandas column
    element by element costs about ten times as much)."""
    return dict(zip(index["work_order_id"].tolist(), index[column].tolist(), strict=True))


def _dates_by_id(index: pd.DataFrame, column: str) -> dict[str, int | None]:
    """A date column of the index by work order id, as :func:`micros` (None: missing): an
    int per work order where a ``pd.Timestamp`` took 3.5x the memory, and 20,000 of them
    about 70 ms to make."""
    dates = pd.to_datetime(index[column], utc=True).dt.as_unit("us")
    values = dates.array.asi8.tolist()
    missing = dates.isna().to_numpy().tolist()
    return dict(
        zip(
            index["work_order_id"].tolist(),
            [None if gone else v for v, gone in zip(values, missing, strict=True)],
            strict=True,
        )
    )


def _consider(
    committer: Committer,
    stored: dict[str, Any],
    dirty: set[str],
    mark: Callable[[str], pd.Timestamp | None],
    records: Iterable[Any],
) -> None:
    """Hand the work orders read from the server to the committer, except those the dataset
    already holds at their ``update_date`` (and this client did not write to since). A
    missing or unparseable date is unknown: that work order goes on, and the committer
    compares its rows with the stored ones."""
    records = [r for r in records if isinstance(r, dict) and isinstance(r.get("id"), str)]
    for record, listed_date in zip(records, _dates(records), strict=True):
        wo_id = record["id"]
        known = wo_id in stored and wo_id not in dirty
        if known and same_date(stored[wo_id], listed_date):
            continue
        committer.add(
            record, wo_id not in stored, mark(wo_id), unknown=known and listed_date is None
        )
        stored[wo_id] = micros(listed_date)


def _dates(records: list[dict[str, Any]]) -> list[pd.Timestamp | None]:
    """The listed ``update_date`` of each record, read as the dataset stores it (None:
    missing or unparseable, that is unknown)."""
    dates = normalize.utc_dates([r.get("update_date") for r in records])
    return [None if pd.isna(ts) else ts for ts in dates.tolist()]


_SKIPPED = (
    "Their timelines were not read, and they cannot be read again one by one (one the list "
    "no longer shows is taken as deleted)."
)


def _warn_skipped(ids: Iterable[str], what: str) -> None:
    """One :class:`SkippedIdWarning` naming the work orders the sync could not ask for by id,
    attributed to the first caller outside the package."""
    ids = sorted(set(ids))
    if not ids:
        return
    shown = ", ".join(repr(i) for i in ids[:10]) + (
        f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    )
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # dfs_analytics/
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"the server listed {len(ids)} work order(s) whose id cannot be used in a URL path "
        f"(empty, '.', '..', or containing '/', '\\' or control characters): {shown}. "
        f"{what} The rest of the load went on; their listed fields are kept.",
        SkippedIdWarning,
        stacklevel=level,
    )


def _refresh(
    client: Client,
    params: dict[str, Any],
    stored: dict[str, Any],
    dirty: set[str],
    state: ClientState,
    committer: Committer,
    consider: Any,
) -> tuple[int, bool]:
    """Incremental refresh. Returns (listed count, whether a full walk is still needed).

    Stored work orders without a known ``update_date`` cannot be found by the date of their
    last change: they are read again one by one, or when there are many (more than a walk
    of the list would cost), the list is walked."""
    undated = sorted(i for i, v in stored.items() if v is None and i not in dirty)
    if undated and (
        len(undated) > max(limits.PROBE_SIZE, len(stored) // _page(client))
        or not all(addressable(i) for i in undated)
    ):
        return 0, True
    reread = sorted(set(dirty) | set(undated))
    key = json.dumps(params, sort_keys=True)
    probe = {**params, "ordering": "-update_date", "page_size": limits.PROBE_SIZE}
    etag = state.etags.get(key)
    headers = {"If-None-Match": etag} if etag and not dirty else None
    response = client.send("GET", "work-orders/", params=probe, headers=headers)
    if response.status_code == 304:
        _reread(client, reread, stored, committer, consider)
        return len(stored), False
    page = client.parse(response)
    if not isinstance(page, dict) or not isinstance(page.get("count"), int):
        return 0, True
    rows = [r for r in page.get("results") or [] if isinstance(r, dict)]
    dates = [d for d in _dates(rows) if d is not None]
    if len(dates) < len(rows) or any(a < b for a, b in itertools.pairwise(dates)):
        return 0, True  # the server ignored the ordering, or cannot order by an unknown date
    known = [v for v in stored.values() if v is not None]
    cursor = from_micros(max(known)) if known else None
    in_window = [d for d in dates if cursor is None or d >= cursor]
    if len(in_window) == len(rows) and page.get("next"):
        since = (
            {**params, "updated_after": to_api_date(cursor.to_pydatetime())} if cursor else params
        )
        for items, _ in client.iter_pages(
            "work-orders/", {**since, "page_size": _page(client)}, window=_window(client)
        ):
            consider(items)
    else:
        consider(r for r, d in zip(rows, dates, strict=True) if cursor is None or d >= cursor)
    _reread(client, reread, stored, committer, consider)
    if page["count"] != len(stored):
        return page["count"], True
    if not dirty and response.headers.get("ETag"):
        state.etags[key] = response.headers["ETag"]
    return page["count"], False


def _reread(
    client: Client, ids: Iterable[str], stored: dict[str, Any], committer: Committer, consider: Any
) -> None:
    """Read work orders one by one (written by this client, undated, or no longer listed):
    404 means deleted. One whose id is no URL path segment cannot be asked for: it is only
    read again when no longer listed, so it is taken as deleted."""
    todo = [i for i in ids if i in stored and not committer.holds(i)]
    for wo_id in [i for i in todo if not addressable(i)]:
        todo.remove(wo_id)
        committer.skipped.add(wo_id)
        stored.pop(wo_id, None)
        committer.delete(wo_id)
    if not todo:
        return

    def one(wo_id: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return wo_id, client.get_work_order(wo_id, include_inputs=False)
        except NotFoundError:
            return wo_id, None

    with ThreadPoolExecutor(min(client.settings.workers, len(todo))) as pool:
        for wo_id, record in pool.map(one, todo):
            if record is None:
                stored.pop(wo_id, None)
                committer.delete(wo_id)
            else:
                stored[wo_id] = None  # force the rewrite
                consider([record])


def _page(client: Client) -> int:
    return min(client.settings.page_size, limits.SYNC_PAGE)


def _window(client: Client) -> int:
    """List pages in flight at once: enough to hide latency, few enough to bound memory."""
    return max(1, min(client.settings.workers, 8))


def _full_walk(
    client: Client,
    params: dict[str, Any],
    stored: dict[str, Any],
    dirty: set[str],
    committer: Committer,
    consider: Any,
    progress: bool | None,
) -> int:
    """Walk the whole list; stored work orders it no longer lists are read one by one."""
    before = committer.months  # the work orders the dataset held when the sync began
    for attempt in range(2):
        listed: set[str] = set()
        count: int | None = None
        committer.synced_at = time.time()
        with rate_bar(client, progress, None, "work orders") as bar:
            for items, n in client.iter_pages(
                "work-orders/", {**params, "page_size": _page(client)}, window=_window(client)
            ):
                if n is not None and bar.total != n:
                    bar.total = n
                    bar.refresh()
                count = n
                listed.update(
                    r["id"] for r in items if isinstance(r, dict) and isinstance(r.get("id"), str)
                )
                consider(items)
                bar.update(len(items))
        if count is None or len(listed) == count:
            break
        if attempt == 1:
            committer.commit()
            raise IncompleteDataError(
                f"GET work-orders/: collected {len(listed)} distinct work orders but the server "
                f"announced {count}, twice. The data probably changed during the walk; narrow "
                "the query (e.g. created_before) or retry."
            )
    # held before, or dated by this walk, and not listed (no set of every id is built)
    gone = [i for i, v in stored.items() if i not in listed and (v is not None or i in before)]
    _reread(client, sorted(gone), stored, committer, consider)
    # dirty work orders that were listed were rewritten; dirty ones no longer listed reread
    return len(listed)
