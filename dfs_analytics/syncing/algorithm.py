"""``sync()``: bring the dataset up to date with the server, in resumable, bounded batches.

The module behind :func:`dfs_analytics.sync` (named ``syncing`` so that the function
``dfs_analytics.sync`` does not hide it). It reads the server only through
:class:`~dfs_analytics.client.Client` and writes only through :class:`dataset.Writer`: it never
speaks HTTP itself, never builds a frame for the user (the loaders read the dataset back), and
never stores its per-client state on the client object (a registry keyed by client holds it).

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

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from . import dataset as store
from . import normalize
from .client import Client, segment
from .errors import (
    ConfigurationError,
    IncompleteDataError,
    NotFoundError,
    OfflineCacheMiss,
    SkippedIdWarning,
)
from .progress import progress_bar
from .query import canonical, split_filters, to_api_date
from .rules import is_missing, none_if_missing

BATCH = 1000  # work orders per commit, at most
BATCH_SECONDS = 2.0  # seconds of work per commit, at most
SYNC_PAGE = 100  # list page size of a sync: small pages keep memory bounded
CHUNK = 500  # work orders parsed into Arrow rows at a time (each parse has a fixed cost)
AHEAD = 1  # chunks of stored work orders' timelines asked for ahead of the one being parsed
PROBE_SIZE = 10
COMPACT_FILES = 64  # compact once the tables hold more data files than this


@dataclass
class SyncResult:
    """What one :func:`sync` did.

    ``version`` is the dataset version after its last commit (the previous version when
    nothing changed); ``listed`` the work orders the server listed for the filters;
    ``fetched`` new ones written, ``updated`` changed ones rewritten, ``deleted`` removed;
    ``timelines`` timelines fetched; ``requests`` HTTP requests sent; ``commits`` dataset
    versions written; ``seconds`` wall time; ``concurrency`` the most requests the client had
    in flight at once during the sync, ``concurrency_limit`` the highest limit it allowed
    (see :mod:`dfs_analytics.concurrency`); ``throttled`` the 429 answers received.
    """

    version: int | None
    dataset: str
    filters: dict[str, Any]
    listed: int = 0
    fetched: int = 0
    updated: int = 0
    deleted: int = 0
    timelines: int = 0
    requests: int = 0
    commits: int = 0
    seconds: float = 0.0
    concurrency: int = 0
    concurrency_limit: int = 0
    throttled: int = 0

    @property
    def changed(self) -> bool:
        return self.commits > 0


# --------------------------------------------------------------------------------------------
# per-client state: writes made through the client, probe ETags
# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    writes: dict[str, float] = field(default_factory=dict)  # work order id -> time of write
    etags: dict[str, str] = field(default_factory=dict)  # query key -> probe ETag
    log: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: store.Writer | None = None
    reader: store.Dataset | None = None
    # one sync of a client at a time (loads from several threads share its open tables)
    syncing: threading.RLock = field(default_factory=threading.RLock)

    def on_write(self, work_order_id: str) -> None:
        when = time.time()
        with self.lock:
            self.writes[work_order_id] = when
            self.etags.clear()
            if self.log is not None:
                import os

                fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(f"{when:.6f} {work_order_id}\n")

    def written(self) -> dict[str, float]:
        with self.lock:
            return dict(self.writes)


_STATES: weakref.WeakKeyDictionary[Client, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(client: Client) -> _State:
    with _STATES_LOCK:
        state = _STATES.get(client)
        if state is None:
            state = _State()
            if client.cache_dir is not None:
                state.log = client.cache_dir / "writes.log"
                if state.log.exists():
                    for line in state.log.read_text(
                        encoding="utf-8", errors="replace"
                    ).splitlines():
                        when, _, wo_id = line.partition(" ")
                        try:
                            state.writes[wo_id] = max(state.writes.get(wo_id, 0.0), float(when))
                        except ValueError:
                            continue
            client.on_write(state.on_write)
            _STATES[client] = state
        return state


def written(client: Client) -> dict[str, float]:
    """The work orders this client (or another process sharing its cache) wrote to since
    they were last read, with the time of the write (what the next sync reads again)."""
    return _state(client).written()


def writer(client: Client) -> store.Writer:
    """The client's dataset, opened for writing (created when new); one per client, kept, so
    its tables stay open between loads."""
    state = _state(client)
    with state.lock:
        w = state.writer
        if w is None or w.location != client.dataset_location:
            w = state.writer = store.Writer(
                client.dataset_location, client.base_url, private=client.dataset_is_private
            )
        else:
            w.refresh()
        return w


def dataset(client: Client) -> store.Dataset:
    """The client's dataset, for reading (created empty when new and writable)."""
    state = _state(client)
    with state.lock:
        if state.writer is not None and state.writer.location == client.dataset_location:
            return state.writer.dataset
        if state.reader is None or state.reader.location != client.dataset_location:
            location = client.dataset_location
            try:
                state.reader = store.Dataset(location)
            except store.NotADatasetError:
                if client.settings.offline:
                    raise
                state.writer = store.Writer(
                    location, client.base_url, private=client.dataset_is_private
                )
                return state.writer.dataset
        return state.reader


def open_dataset(
    source: Client | str | os.PathLike[str] | None = None,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> store.Dataset:
    """Open a dataset for reading: a :class:`~dfs_analytics.Client` (its dataset) or a path /
    object-store URI (a colleague's shared dataset: no API key needed, nothing written).

    Raises NotADatasetError when the path holds no dataset, DatasetCorruptError when its
    files are damaged, DatasetLocationError (at once, before any request) for a scheme
    deltalake cannot open or an object store without credentials (``storage_options`` or the
    provider's environment variables).
    """
    if isinstance(source, Client):
        return dataset(source)  # the client's own (created empty when new and writable)
    if source is None:
        raise ConfigurationError("open_dataset(client_or_path): give a Client or a path.")
    if isinstance(source, (os.PathLike, str)):
        return store.Dataset(os.fspath(source), storage_options=storage_options)
    raise ConfigurationError(
        f"open_dataset needs a Client, a path or a URI, got {type(source).__name__}."
    )


def existing_dataset(client: Client) -> store.Dataset | None:
    """The client's dataset if one exists at its location, for reading; None when nothing was
    ever synced there (nothing is created: what offline and ``as_of`` reads need)."""
    try:
        return store.Dataset(client.dataset_location)
    except store.NotADatasetError:
        return None


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------


def _dates(records: list[dict[str, Any]]) -> list[pd.Timestamp | None]:
    """The listed ``update_date`` of each record, read as the dataset stores it (None:
    missing or unparseable, that is unknown)."""
    dates = normalize.utc_dates([r.get("update_date") for r in records])
    return [None if pd.isna(ts) else ts for ts in dates.tolist()]


def addressable(wo_id: str) -> bool:
    """Whether the API can take ``wo_id`` as a URL path segment (to read the work order or
    its timeline by id): not empty, not ``.`` or ``..``, no ``/``, ``\\`` or control
    character."""
    try:
        segment(wo_id, "work_order_id")
    except ConfigurationError:
        return False
    return True


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
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"the server listed {len(ids)} work order(s) whose id cannot be used in a URL path "
        f"(empty, '.', '..', or containing '/', '\\' or control characters): {shown}. "
        f"{what} The rest of the load went on; their listed fields are kept.",
        SkippedIdWarning,
        stacklevel=level,
    )


def _same_rows(new: pa.Table, old: pa.Table, ids: Iterable[str]) -> set[str]:
    """The ``ids`` whose rows in ``new`` and ``old`` (tables of one stored schema) are the
    same, in the same order, apart from when they were read (a work order's timeline mark
    counts only as "a timeline is held or not") and a work order's place in its batch."""

    def by_id(table: pa.Table) -> dict[str, list[tuple[Any, ...]]]:
        table = table.sort_by([("work_order_id", "ascending"), (store.POS, "ascending")])
        if store.TIMELINE_AT in table.schema.names:
            col = table.schema.get_field_index(store.TIMELINE_AT)
            table = table.set_column(col, store.TIMELINE_AT, pc.is_valid(table.column(col)))
        names = [n for n in table.schema.names if n not in (store.SYNCED_AT, store.POS)]
        out: dict[str, list[tuple[Any, ...]]] = {}
        columns = [table.column(n).to_pylist() for n in names]
        key = names.index("work_order_id")
        for row in zip(*columns, strict=True):
            out.setdefault(row[key], []).append(row)
        return out

    a, b = by_id(new), by_id(old)
    return {i for i in ids if a.get(i, []) == b.get(i, [])}


def _positions(ids: pd.Series) -> np.ndarray:
    return ids.groupby(ids, sort=False).cumcount().to_numpy(dtype=np.int64)


def work_order_tables(
    records: list[dict[str, Any]],
    synced_at: float,
    timeline_at: Mapping[str, pd.Timestamp | None],
) -> tuple[pa.Table, pa.Table]:
    """Stored rows of the ``work_orders`` and ``tasks`` tables for listed work orders."""
    wo = normalize.work_orders_frame(records)
    wo[store.SYNCED_AT] = pd.Timestamp(synced_at, unit="s", tz="UTC")
    wo[store.TIMELINE_AT] = pd.Series(
        [timeline_at.get(i) for i in wo["work_order_id"]], dtype="datetime64[us, UTC]"
    )
    wo_table = store.to_arrow("work_orders", wo, store.month_of(wo["create_date"]))
    tasks = normalize.tasks_frame(records)
    tasks[store.POS] = _positions(tasks["work_order_id"].astype(object))
    tasks_table = store.to_arrow("tasks", tasks, store.month_of(tasks["create_date"]))
    return wo_table, tasks_table


class _Committer:
    """Collects changed work orders and commits them in batches (each a dataset version).

    Records are turned into Arrow rows every ``CHUNK`` work orders, so a batch is held as
    compact columns, not as parsed JSON.
    """

    def __init__(
        self,
        w: store.Writer,
        result: SyncResult,
        client: Client,
        stats: dict,
        timelines: Any = None,
        all_timelines: bool = False,
    ) -> None:
        self.w, self.result, self.client, self.stats = w, result, client, stats
        # a fetcher, whose ``submit`` starts reading one work order's timeline: every changed
        # work order's with ``all_timelines``, else only those whose timeline the dataset
        # held (what is kept stays fresh, in the same version as its work order)
        self.timelines = timelines
        self.all_timelines = all_timelines
        self.prefetch = None if timelines is None else timelines.submit
        self.futures: dict[str, Future[list[dict[str, Any]] | None]] = {}
        self.timelines_done = 0
        self.records: list[dict[str, Any]] = []
        self.timeline_at: dict[str, pd.Timestamp | None] = {}
        self.ids: list[str] = []
        self.tables: list[tuple[pa.Table, pa.Table]] = []
        self.new = 0
        self.changed = 0
        self.deleted: list[str] = []
        self.started = time.monotonic()
        self.synced_at = time.time()
        self.requests0 = client.requests_sent
        self.months: dict[str, str] = {}  # stored work order id -> its partition
        self.seen: set[str] = set()  # every work order added or deleted
        self.last_complete = False
        # stored work orders listed again without a usable update_date: rewritten only when
        # their rows (or their timeline, when read) differ from the stored ones
        self.unknown: set[str] = set()
        # listed work orders whose id is no URL path segment: never asked for by id
        self.skipped: set[str] = set()

    def touched(self, wo_id: str) -> bool:
        return wo_id in self.seen

    def pending(self) -> int:
        return len(self.ids) + len(self.deleted)

    def holds(self, wo_id: str) -> bool:
        return wo_id in self.timeline_at

    def add(
        self,
        record: dict[str, Any],
        is_new: bool,
        timeline_at: pd.Timestamp | None,
        unknown: bool = False,
    ) -> None:
        """Collect a listed work order; ``unknown``: it is stored, and its listed
        ``update_date`` cannot tell whether it changed (its rows are compared instead)."""
        if record["id"] in self.timeline_at:  # listed twice in one batch: keep the newest
            self._flush()
            self.commit()
        self.records.append(record)
        self.ids.append(record["id"])
        self.seen.add(record["id"])
        if unknown:
            self.unknown.add(record["id"])
        if self.prefetch is not None and (self.all_timelines or timeline_at is not None):
            if addressable(record["id"]):
                # its timeline is fetched while the listing goes on
                self.futures[record["id"]] = self.prefetch(record["id"])
            else:
                self.skipped.add(record["id"])
        self.timeline_at[record["id"]] = timeline_at
        if is_new:
            self.new += 1
        else:
            self.changed += 1
        if len(self.records) >= CHUNK:
            self._flush()
        self.maybe_commit()

    def _flush(self) -> None:
        if self.records:
            self.tables.append(work_order_tables(self.records, self.synced_at, self.timeline_at))
            self.records = []

    def delete(self, wo_id: str) -> None:
        self.deleted.append(wo_id)
        self.seen.add(wo_id)
        self.maybe_commit()

    def maybe_commit(self) -> None:
        size = self.pending()
        if size >= BATCH or (size and time.monotonic() - self.started >= BATCH_SECONDS):
            self.commit()

    def commit(self, complete: bool = False) -> None:
        """Write what was collected as one dataset version (nothing collected: nothing)."""
        if not self.pending():
            return
        self._flush()
        ids, gone = list(self.ids), list(self.deleted)
        # partitions where stored rows of these work orders can be (a month never changes)
        months = {self.months[i] for i in gone if i in self.months}
        if any(i not in self.months for i in gone):
            months = None
        wo = tasks = timeline_rows = None
        done: list[str] = []
        if self.tables:
            wo = pa.concat_tables([t[0] for t in self.tables])
            tasks = pa.concat_tables([t[1] for t in self.tables])
            if self.futures:
                wo, timeline_rows, done = self._with_timelines(wo)
        unchanged = self._unchanged(wo, tasks, timeline_rows, done) if self.unknown else set()
        if unchanged:  # read again because their date is unknown, and the same as stored
            keep = pa.array(sorted(set(ids) - unchanged), pa.string())
            wo = wo.filter(pc.is_in(wo.column("work_order_id"), value_set=keep))
            tasks = tasks.filter(pc.is_in(tasks.column("work_order_id"), value_set=keep))
            if timeline_rows is not None:
                timeline_rows = timeline_rows.filter(
                    pc.is_in(timeline_rows.column("work_order_id"), value_set=keep)
                )
            self.result.timelines += sum(1 for i in done if i in unchanged)
            ids = [i for i in ids if i not in unchanged]
            done = [i for i in done if i not in unchanged]
            self.changed -= len(unchanged)
        if ids or gone:
            changes: dict[str, tuple[Any, ...]] = {}
            if ids:
                changes["work_orders"] = (wo, ids + gone, months)
                changes["tasks"] = (tasks, ids + gone, months)
            else:
                changes["work_orders"] = (None, gone, months)
                changes["tasks"] = (None, gone, months)
            if ids and (done or timeline_rows is not None):
                changes["timeline"] = (timeline_rows, list(done) + gone, months)
            elif gone:
                changes["timeline"] = (None, gone, months)
            self.timelines_done = len(done)
            self._write(changes, complete=complete)
            self.result.timelines += self.timelines_done
            self.timelines_done = 0
        self.result.fetched += self.new
        self.result.updated += self.changed
        self.result.deleted += len(gone)
        self.records, self.timeline_at, self.deleted, self.ids, self.tables = [], {}, [], [], []
        self.unknown = set()
        self.new = self.changed = 0
        self.started = time.monotonic()

    def _unchanged(
        self,
        wo: pa.Table | None,
        tasks: pa.Table | None,
        timeline_rows: pa.Table | None,
        done: list[str],
    ) -> set[str]:
        """The work orders of the batch listed without a usable ``update_date`` whose rows
        (and timeline, when it was read) are those the dataset holds: rewriting them would
        change nothing."""
        if wo is None or tasks is None:
            return set()
        ids = sorted(self.unknown & set(wo.column("work_order_id").to_pylist()))
        if not ids:
            return set()
        same = _same_rows(wo, self.w.stored_rows("work_orders", ids), ids)
        same &= _same_rows(tasks, self.w.stored_rows("tasks", ids), ids)
        read = sorted(same & set(done))
        if read:
            new = (
                timeline_rows
                if timeline_rows is not None
                else store.arrow_schema("timeline").empty_table()
            )
            same -= set(read) - _same_rows(new, self.w.stored_rows("timeline", read), read)
        return same

    def _with_timelines(self, wo: pa.Table) -> tuple[pa.Table, pa.Table | None, list[str]]:
        """Fetch the batch's timelines; the work orders marked as read at their listed
        ``update_date`` (undated ones: at the time of the sync, which only says that their
        timeline is held), the timeline rows, and the ids whose timeline was read."""
        ids = wo.column("work_order_id").to_pylist()
        months = dict(zip(ids, wo.column(store.PARTITION).to_pylist(), strict=True))
        events = {i: self.futures.pop(i).result() for i in ids if i in self.futures}
        self.futures.clear()
        done = [i for i in ids if events.get(i) is not None]
        rows = _timeline_rows({i: events[i] for i in done}, months) if done else None
        mask = pc.is_in(wo.column("work_order_id"), value_set=pa.array(done, pa.string()))
        col = wo.schema.get_field_index(store.TIMELINE_AT)
        read_at = pc.coalesce(wo.column("update_date"), wo.column(store.SYNCED_AT))
        marks = pc.if_else(mask, read_at, wo.column(store.TIMELINE_AT))
        return wo.set_column(col, store.TIMELINE_AT, marks), rows, done

    def _write(
        self, changes: Mapping[str, tuple[pa.Table | None, list[str]]], complete: bool
    ) -> None:
        stats = {
            **self.stats,
            "fetched": self.new,
            "updated": self.changed,
            "deleted": len(self.deleted),
            "requests": self.client.requests_sent - self.requests0,
            "seconds": time.monotonic() - self.started,
            "complete": complete,
            "timelines": self.timelines_done,
        }
        self.result.version = self.w.commit(changes, stats)
        self.result.commits += 1
        self.last_complete = complete
        _trim()
        self.requests0 = self.client.requests_sent


# --------------------------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------------------------


def _trim() -> None:
    """Give freed memory back to the system after a batch (glibc keeps it otherwise, and the
    peak would grow with the number of batches)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


def _bar(client: Client, progress: bool | None, total: int | None, desc: str) -> tqdm:
    """A progress bar of work orders with the client's concurrency in its postfix, shown as
    :func:`~dfs_analytics.progress.wanted` decides."""
    return progress_bar(
        progress,
        client.settings.progress,
        total=total,
        desc=desc,
        unit="wo",
        cls=partial(_RateBar, client),  # type: ignore[arg-type]
    )


class _RateBar(tqdm):
    """A progress bar whose postfix shows the client's concurrency (requests in flight / limit)
    and request rate, refreshed at most twice a second."""

    def __init__(self, client: Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = client
        self._shown_at = time.monotonic()
        self._shown_sent = client.requests_sent

    def update(self, n: float | None = 1) -> bool | None:
        out = super().update(n)
        if not self.disable:
            now = time.monotonic()
            if now - self._shown_at >= 0.5:
                self.set_postfix(self.rates(now), refresh=False)
        return out

    def rates(self, now: float) -> dict[str, Any]:
        """The postfix: requests in flight / limit, requests per second since last shown,
        and the 429s received (when any)."""
        sent = self._client.requests_sent
        limiter = self._client.limiter
        postfix: dict[str, Any] = {
            "concurrency": f"{limiter.in_flight}/{limiter.limit}",
            "req/s": f"{(sent - self._shown_sent) / max(now - self._shown_at, 1e-9):.0f}",
        }
        if limiter.throttled:
            postfix["429s"] = limiter.throttled
        self._shown_at, self._shown_sent = now, sent
        return postfix


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
    with _state(client).syncing, client.limiter.track() as usage:
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
    """The body of :func:`sync`, run under the client's sync lock."""
    if client.settings.offline:
        raise OfflineCacheMiss(
            "sync() needs the server, and this client is offline (offline=True); the loaders "
            "read the dataset as it is offline."
        )
    started = time.monotonic()
    requests0 = client.requests_sent
    params, local = split_filters(filters)
    state = _state(client)
    w = writer(client)
    ds = w.dataset
    result = SyncResult(version=ds.version, dataset=ds.path, filters=canonical(local))
    stats = {"filters": result.filters, "with_timelines": timelines}
    with _TimelineFetcher(client, progress) as fetcher:
        committer = _Committer(w, result, client, stats, fetcher, all_timelines=timelines)
        index = ds.index(**local)
        committer.months = dict(zip(index["work_order_id"], index[store.PARTITION], strict=True))
        stored, dirty, mark = _stored_state(index, state)

        def consider(records: Iterable[Any]) -> None:
            _consider(committer, stored, dirty, mark, records)

        walk = not stored
        listed = 0
        if not walk:
            listed, walk = _refresh(client, params, stored, dirty, state, committer, consider)
        if walk:
            listed = _full_walk(client, params, index, stored, dirty, committer, consider, progress)
        result.listed = listed
        if timelines:
            _sync_stale_timelines(
                client, w, committer, fetcher, index["work_order_id"], stored, mark
            )
        _finish(w, committer)
    _warn_skipped(committer.skipped, _SKIPPED)
    result.requests = client.requests_sent - requests0
    result.seconds = time.monotonic() - started
    return result


class _TimelineFetcher:
    """Fetches timelines concurrently, ``CHUNK`` at a time, with a progress bar; its threads
    start with the first timeline asked for."""

    def __init__(self, client: Client, progress: bool | None) -> None:
        self.client, self.progress = client, progress
        self.pool: ThreadPoolExecutor | None = None
        self.bar: tqdm | None = None
        self.lock = threading.Lock()

    def __enter__(self) -> _TimelineFetcher:
        return self

    def _start(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.pool is None:
                # as many threads as the client may have requests in flight: its limiter decides
                self.pool = ThreadPoolExecutor(self.client.settings.workers)
                self.bar = _bar(self.client, self.progress, None, "timelines")
            return self.pool

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.bar is not None:
            self.bar.close()

    def _one(self, wo_id: str) -> list[dict[str, Any]] | None:
        try:
            return self.client.get_timeline(wo_id)
        except NotFoundError:
            return None
        finally:
            if self.bar is not None:
                self.bar.update(1)

    def submit(self, wo_id: str) -> Future[list[dict[str, Any]] | None]:
        """Start reading one work order's timeline (None when the work order is gone)."""
        return self._start().submit(self._one, wo_id)

    def fetch(self, ids: list[str]) -> Iterator[dict[str, list[dict[str, Any]] | None]]:
        """Each id's events (None: the work order is gone), one dict per ``CHUNK`` ids, in
        order. The next ``AHEAD`` chunks are already asked for while one is handed over, so
        the requests in flight do not drain between chunks; at most ``(AHEAD + 1) * CHUNK``
        timelines are held at once."""
        chunks = list(_chunks(ids, CHUNK))
        pending: deque[list[Future[list[dict[str, Any]] | None]]] = deque()
        try:
            for i, chunk in enumerate(chunks):
                while len(pending) <= AHEAD and i + len(pending) < len(chunks):
                    pending.append([self.submit(x) for x in chunks[i + len(pending)]])
                yield dict(zip(chunk, (f.result() for f in pending[0]), strict=True))
                pending.popleft()
        finally:  # stopped early (an error, an interrupt): what is not sent yet never is
            for futures in pending:
                for f in futures:
                    f.cancel()


def _stored_state(
    index: pd.DataFrame, state: _State
) -> tuple[dict[str, Any], set[str], Callable[[str], pd.Timestamp | None]]:
    """What the dataset holds of the indexed work orders: their stored ``update_date``, the
    ones this client wrote to since they were stored (read again whatever their date), and
    ``mark(id)``, the ``update_date`` its stored timeline was read at (None: none usable)."""
    stored = dict(zip(index["work_order_id"], index["update_date"], strict=True))
    synced = dict(zip(index["work_order_id"], index[store.SYNCED_AT], strict=True))
    marks = dict(zip(index["work_order_id"], index[store.TIMELINE_AT], strict=True))
    dirty = {
        i
        for i, when in state.written().items()
        if i in stored and (is_missing(synced[i]) or when >= synced[i].timestamp())
    }

    def mark(wo_id: str) -> pd.Timestamp | None:
        m = None if wo_id in dirty else marks.get(wo_id)
        return none_if_missing(m)

    return stored, dirty, mark


def _consider(
    committer: _Committer,
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
        if known and _same(stored[wo_id], listed_date):
            continue
        committer.add(
            record, wo_id not in stored, mark(wo_id), unknown=known and listed_date is None
        )
        stored[wo_id] = listed_date


def _finish(w: store.Writer, committer: _Committer) -> None:
    """Commit what is left as the version that marks the sync complete; compact the small
    files first when there are many (the last version then names the compacted tables)."""
    if not committer.pending() and not committer.result.commits:
        return  # nothing changed: nothing committed
    if w.small_files() > COMPACT_FILES:
        committer.commit()
        if committer.result.commits:  # (what was pending may have been unchanged)
            w.optimize()
            committer._write({}, complete=True)
        return
    committer.commit(complete=True)  # writes nothing when nothing changed
    if committer.result.commits and not committer.last_complete:
        committer._write({}, complete=True)


def _same(a: Any, b: Any) -> bool:
    """Whether two ``update_date`` values are the same known date: an unknown (missing)
    date is never the same as anything, so what it dates is always read again."""
    if is_missing(a) or is_missing(b):
        return False
    return pd.Timestamp(a) == pd.Timestamp(b)


def _refresh(
    client: Client,
    params: dict[str, Any],
    stored: dict[str, Any],
    dirty: set[str],
    state: _State,
    committer: _Committer,
    consider: Any,
) -> tuple[int, bool]:
    """Incremental refresh. Returns (listed count, whether a full walk is still needed).

    Stored work orders without a known ``update_date`` cannot be found by the date of their
    last change: they are read again one by one, or when there are many (more than a walk
    of the list would cost), the list is walked."""
    undated = sorted(i for i, v in stored.items() if is_missing(v) and i not in dirty)
    if undated and (
        len(undated) > max(PROBE_SIZE, len(stored) // _page(client))
        or not all(addressable(i) for i in undated)
    ):
        return 0, True
    reread = sorted(set(dirty) | set(undated))
    key = json.dumps(params, sort_keys=True)
    probe = {**params, "ordering": "-update_date", "page_size": PROBE_SIZE}
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
    dates = _dates(rows)
    if any(d is None for d in dates) or any(a < b for a, b in itertools.pairwise(dates)):
        return 0, True  # the server ignored the ordering, or cannot order by an unknown date
    known = [pd.Timestamp(v) for v in stored.values() if not is_missing(v)]
    cursor = max(known) if known else None
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
    client: Client, ids: Iterable[str], stored: dict[str, Any], committer: _Committer, consider: Any
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
    return min(client.settings.page_size, SYNC_PAGE)


def _window(client: Client) -> int:
    """List pages in flight at once: enough to hide latency, few enough to bound memory."""
    return max(1, min(client.settings.workers, 8))


def _full_walk(
    client: Client,
    params: dict[str, Any],
    index: pd.DataFrame,
    stored: dict[str, Any],
    dirty: set[str],
    committer: _Committer,
    consider: Any,
    progress: bool | None,
) -> int:
    """Walk the whole list; stored work orders it no longer lists are read one by one."""
    before = set(index["work_order_id"])
    for attempt in range(2):
        listed: set[str] = set()
        count: int | None = None
        committer.synced_at = time.time()
        with _bar(client, progress, None, "work orders") as bar:
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
    gone = (before | {i for i in stored if stored.get(i) is not None}) - listed
    _reread(client, sorted(gone & set(stored)), stored, committer, consider)
    # dirty work orders that were listed were rewritten; dirty ones no longer listed reread
    return len(listed)


def _sync_stale_timelines(
    client: Client,
    w: store.Writer,
    committer: _Committer,
    fetcher: _TimelineFetcher,
    ids: Iterable[str],
    stored: Mapping[str, Any],
    mark: Callable[[str], pd.Timestamp | None],
) -> None:
    """Fetch the timelines of the stored work orders among ``ids`` that this sync did not
    rewrite and whose stored timeline was read at another ``update_date`` (or never)."""
    stale = []
    for i in ids:
        if i in stored and not committer.touched(i) and not _same(stored[i], mark(i)):
            if addressable(i):
                stale.append(i)
            else:
                committer.skipped.add(i)
    if stale:
        committer.commit()
        _sync_timelines(client, w, committer, fetcher, stale)


def _sync_timelines(
    client: Client,
    w: store.Writer,
    committer: _Committer,
    fetcher: _TimelineFetcher,
    ids: list[str],
) -> None:
    """Fetch the timelines of stored work orders that are missing or older than their work
    order (``ids``), in batches; each batch also marks its work orders as read."""
    index = w.dataset.index()
    stale = index[index["work_order_id"].isin(set(ids))]
    if not len(stale):
        return
    months = dict(zip(stale["work_order_id"], stale[store.PARTITION], strict=True))
    updates = dict(zip(stale["work_order_id"], stale["update_date"], strict=True))
    held = set(stale["work_order_id"][stale[store.TIMELINE_AT].notna()])
    batch: list[pa.Table] = []
    batch_ids: list[str] = []
    started = time.monotonic()
    for chunk in fetcher.fetch(stale["work_order_id"].tolist()):
        fetched: dict[str, list[dict[str, Any]]] = {}
        for wo_id, events in chunk.items():
            if events is None:
                committer.delete(wo_id)
            else:
                fetched[wo_id] = events
        if fetched:
            batch.append(_timeline_rows(fetched, months))
            batch_ids.extend(fetched)
        if len(batch_ids) >= BATCH or time.monotonic() - started >= BATCH_SECONDS:
            _commit_timelines(w, committer, batch, batch_ids, updates, held)
            batch, batch_ids, started = [], [], time.monotonic()
    _commit_timelines(w, committer, batch, batch_ids, updates, held)


def _timeline_rows(
    timelines: Mapping[str, list[dict[str, Any]]], months: Mapping[str, str]
) -> pa.Table:
    frame = normalize.timeline_frame(timelines)
    frame[store.POS] = _positions(frame["work_order_id"].astype(object))
    return store.to_arrow(
        "timeline", frame, [months[i] for i in frame["work_order_id"].astype(object)]
    )


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _commit_timelines(
    w: store.Writer,
    committer: _Committer,
    batch: list[pa.Table],
    ids: list[str],
    updates: Mapping[str, Any],
    held: set[str],
) -> None:
    """One version: the timelines' rows, and their work orders marked as read at the
    ``update_date`` they were listed with (undated ones: at this time). Undated work orders
    (read again at every sync) whose timeline is the one held are left out; nothing left:
    no version."""
    if not ids:
        return
    rows = pa.concat_tables(batch)
    undated = [i for i in ids if is_missing(updates.get(i)) and i in held]
    if undated:
        same = _same_rows(rows, w.stored_rows("timeline", undated), undated)
        if same:
            committer.result.timelines += len(same)
            ids = [i for i in ids if i not in same]
            if not ids:
                return
            keep = pa.array(ids, pa.string())
            rows = rows.filter(pc.is_in(rows.column("work_order_id"), value_set=keep))
    wo_rows = w.stored_rows("work_orders", ids)
    now = pd.Timestamp.now(tz="UTC")
    marks = [
        now if is_missing(updates.get(i)) else updates.get(i)
        for i in wo_rows.column("work_order_id").to_pylist()
    ]
    col = wo_rows.schema.get_field_index(store.TIMELINE_AT)
    wo_rows = wo_rows.set_column(
        col,
        store.TIMELINE_AT,
        pa.array(pd.Series(marks, dtype="datetime64[us, UTC]"), pa.timestamp("us", tz="UTC")),
    )
    stats = {**committer.stats, "timelines": len(ids), "complete": False}
    stats["requests"] = committer.client.requests_sent - committer.requests0
    committer.result.version = w.commit(
        {"timeline": (rows, ids, set()), "work_orders": (wo_rows, ids, set())}, stats
    )
    committer.requests0 = committer.client.requests_sent
    committer.result.commits += 1
    committer.last_complete = False
    committer.result.timelines += len(ids)
    _trim()


def sync_ids(
    client: Client, ids: list[str], *, timelines: bool = True, progress: bool | None = None
) -> SyncResult:
    """Sync given work orders (read one by one, revalidated) and, with ``timelines``, their
    timelines. Raises NotFoundError naming an id the server does not know."""
    with _state(client).syncing, client.limiter.track() as usage:
        result = _sync_ids(client, ids, timelines=timelines, progress=progress)
    return _usage(result, usage)


def _sync_ids(
    client: Client, ids: list[str], *, timelines: bool = True, progress: bool | None = None
) -> SyncResult:
    """The body of :func:`sync_ids`, run under the client's sync lock."""
    started = time.monotonic()
    requests0 = client.requests_sent
    state = _state(client)
    w = writer(client)
    ds = w.dataset
    result = SyncResult(version=ds.version, dataset=ds.path, filters={"work_order_ids": len(ids)})
    stats = {"filters": result.filters, "with_timelines": timelines}
    index = ds.index()
    index = index[index["work_order_id"].isin(set(ids))]
    stored, dirty, mark = _stored_state(index, state)

    def one(wo_id: str) -> dict[str, Any]:
        return client.get_work_order(wo_id, include_inputs=False)

    with _TimelineFetcher(client, progress) as fetcher:
        committer = _Committer(w, result, client, stats, fetcher, all_timelines=timelines)
        committer.months = dict(zip(index["work_order_id"], index[store.PARTITION], strict=True))
        with ThreadPoolExecutor(max(1, min(client.settings.workers, len(ids)))) as pool:
            records = list(pool.map(one, ids))
        _consider(committer, stored, dirty, mark, records)
        result.listed = len(ids)
        if timelines:
            _sync_stale_timelines(client, w, committer, fetcher, ids, stored, mark)
        _finish(w, committer)
    result.requests = client.requests_sent - requests0
    result.seconds = time.monotonic() - started
    return result
