"""Batches: listed work orders turned into stored rows and committed, one dataset version each.

:class:`Committer` collects the work orders a sync found changed (and their timelines, read
while the listing goes on) and commits them every ``BATCH`` work orders or ``BATCH_SECONDS``
seconds; :func:`work_order_tables`, :func:`timeline_rows` and :func:`task_group_rows` build the
stored rows;
:func:`rate_bar` is the sync's progress bar (the client's concurrency in its postfix). This
module never decides what to read: the sync (:mod:`.algorithm`) hands it the records, and it
never speaks HTTP except through the timeline fetcher it is given.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .. import normalize
from ..client import Client, segment
from ..dataset import (
    NO_MONTH,
    PARTITION,
    POS,
    SYNCED_AT,
    TIMELINE_AT,
    Writer,
    arrow_schema,
    month_of,
    to_arrow,
)
from ..errors import ConfigurationError
from ..progress import progress_bar
from . import limits
from .result import SyncResult

Timeline = list[dict[str, Any]]  # a work order's timeline events, as the API sends them


def addressable(wo_id: str) -> bool:
    """Whether the API can take ``wo_id`` as a URL path segment (to read the work order or
    its timeline by id): not empty, not ``.`` or ``..``, no ``/``, ``\\`` or control
    character."""
    try:
        segment(wo_id, "work_order_id")
    except ConfigurationError:
        return False
    return True


def micros(value: Any) -> int | None:
    """A date as :func:`normalize.micros` gives it, the compact form the sync's index keeps
    (an int is one already, and stays as it is); None when it is missing."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return normalize.micros(value)


def from_micros(value: int | None) -> pd.Timestamp | None:
    """The UTC date of :func:`micros` (None stays None)."""
    if value is None:
        return None
    return pd.Timestamp(np.datetime64(value, "us")).tz_localize("UTC")


def same_date(a: Any, b: Any) -> bool:
    """Whether two ``update_date`` values (dates, or :func:`micros`) are the same known date:
    an unknown (missing) date is never the same as anything, so what it dates is always read
    again."""
    a, b = micros(a), micros(b)
    return a is not None and a == b


def same_rows(new: pa.Table, old: pa.Table, ids: Iterable[str]) -> set[str]:
    """The ``ids`` whose rows in ``new`` and ``old`` (tables of one stored schema) are the
    same, in the same order, apart from when they were read (a work order's timeline mark
    counts only as "a timeline is held or not") and a work order's place in its batch."""

    def by_id(table: pa.Table) -> dict[str, list[tuple[Any, ...]]]:
        table = table.sort_by([("work_order_id", "ascending"), (POS, "ascending")])
        if TIMELINE_AT in table.schema.names:
            col = table.schema.get_field_index(TIMELINE_AT)
            table = table.set_column(col, TIMELINE_AT, pc.is_valid(table.column(col)))
        names = [n for n in table.schema.names if n not in (SYNCED_AT, POS)]
        out: dict[str, list[tuple[Any, ...]]] = {}
        columns = [table.column(n).to_pylist() for n in names]
        key = names.index("work_order_id")
        for row in zip(*columns, strict=True):
            out.setdefault(row[key], []).append(row)
        return out

    a, b = by_id(new), by_id(old)
    return {i for i in ids if a.get(i, []) == b.get(i, [])}


def task_group_rows(groups: list[dict[str, Any]]) -> pa.Table:
    """Stored rows of the ``task_groups`` table for the listed task groups, in listed order."""
    frame = normalize.task_groups_frame(groups)
    frame[POS] = range(len(frame))
    return to_arrow("task_groups", frame, [NO_MONTH] * len(frame))


def _positions(ids: pd.Series) -> np.ndarray:
    """Each row's place among the rows of its work order (0, 1, ...)."""
    return ids.groupby(ids, sort=False).cumcount().to_numpy(dtype=np.int64)


def work_order_tables(
    records: list[dict[str, Any]],
    synced_at: float,
    timeline_at: Mapping[str, pd.Timestamp | None],
) -> tuple[pa.Table, pa.Table]:
    """Stored rows of the ``work_orders`` and ``tasks`` tables for listed work orders."""
    wo = normalize.work_orders_frame(records, categories=False)
    wo[SYNCED_AT] = pd.Timestamp(synced_at, unit="s", tz="UTC")
    wo[TIMELINE_AT] = pd.Series(
        [timeline_at.get(i) for i in wo["work_order_id"]], dtype="datetime64[us, UTC]"
    )
    wo_table = to_arrow("work_orders", wo, month_of(wo["create_date"]))
    tasks = normalize.tasks_frame(records, categories=False)
    tasks[POS] = _positions(tasks["work_order_id"].astype(object))
    tasks_table = to_arrow("tasks", tasks, month_of(tasks["create_date"]))
    return wo_table, tasks_table


def timeline_rows(timelines: Mapping[str, Timeline], months: Mapping[str, str]) -> pa.Table:
    """Stored rows of the ``timeline`` table for work orders' timelines, each in its work
    order's partition (``months``)."""
    frame = normalize.timeline_frame(timelines, categories=False)
    frame[POS] = _positions(frame["work_order_id"].astype(object))
    return to_arrow("timeline", frame, [months[i] for i in frame["work_order_id"].astype(object)])


_LIBC: Any = None
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_KEPT = 2**20  # bytes of free memory a glibc heap may keep on top
_MAPPED = 32 * 2**20  # blocks this large or larger are mapped: glibc's own ceiling for them


def _tune_malloc() -> Any:
    """glibc's C library (None elsewhere), set once to keep at most ``_KEPT`` bytes free on
    top of each heap. By default glibc raises that bound, per process, to twice the largest
    block it mapped and freed (up to 64 MB): after a sync's first commits, each of the
    threads' heaps kept about 17 MB it no longer used (80 MB in all), which
    ``malloc_trim`` does not give back (it never shrinks a thread heap's top). Fixing the
    bound also fixes the size from which blocks are mapped: it is set to ``_MAPPED``, where
    glibc's default ends up anyway; at 1 MB, pandas work in the same process afterwards took
    about 15% more CPU (every large array mapped and faulted in afresh), at 32 MB none
    measurable, for a cold sync's peak within 15 MB of it at 10,000 work orders."""
    global _LIBC
    if _LIBC is None:
        _arrow_pool()
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEPT)
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _MAPPED)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def _arrow_pool() -> None:
    """Arrow allocates through the C library's allocator from the first sync on, unless the
    process chose a pool (``ARROW_DEFAULT_MEMORY_POOL``). Its default here, mimalloc, kept
    pages of earlier batches even after ``release_unused``: a cold sync of 20,000 work orders
    peaked at 362 MB with it, 323 MB without, in the same time."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


def _trim() -> None:
    """Give freed memory back to the system after a batch: Arrow's pool (a pool the process
    chose, such as mimalloc, keeps freed pages for reuse) and glibc's heaps (kept otherwise,
    and the peak would grow with the number of batches)."""
    pa.default_memory_pool().release_unused()
    libc = _tune_malloc()
    if libc is not None:
        libc.malloc_trim(0)


# --------------------------------------------------------------------------------------------
# the progress bar
# --------------------------------------------------------------------------------------------


def rate_bar(client: Client, progress: bool | None, total: int | None, desc: str) -> tqdm:
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


# --------------------------------------------------------------------------------------------
# the committer
# --------------------------------------------------------------------------------------------


class Committer:
    """Collects changed work orders and commits them in batches (each a dataset version).

    Records are turned into Arrow rows every ``CHUNK`` work orders, so a batch is held as
    compact columns, not as parsed JSON. ``prefetch(id)`` starts reading one work order's
    timeline: every changed work order's with ``all_timelines``, else only those whose
    timeline the dataset held (what is kept stays fresh, in the same version as its work
    order); None reads no timeline. Timelines become Arrow rows a chunk at a time too, once
    ``AHEAD`` later chunks are asked for: at most ``(AHEAD + 2) * CHUNK`` are held as parsed
    JSON or in flight, whatever the batch. A batch is committed at ``BATCH`` work orders,
    ``BATCH_SECONDS`` or ``BATCH_BYTES`` of Arrow rows, whichever comes first.
    """

    def __init__(
        self,
        w: Writer,
        result: SyncResult,
        client: Client,
        stats: dict[str, Any],
        prefetch: Callable[[str], Future[Timeline | None]] | None = None,
        all_timelines: bool = False,
    ) -> None:
        self.w, self.result, self.client, self.stats = w, result, client, stats
        _tune_malloc()
        self.all_timelines = all_timelines
        self.prefetch = prefetch
        self.futures: dict[str, Future[Timeline | None]] = {}  # asked for, not yet rows
        self.unread: deque[dict[str, str]] = deque()  # flushed chunks' asked ids -> month
        self.timeline_tables: list[pa.Table] = []  # the batch's timeline rows
        self.timelines_read: list[str] = []  # the batch's work orders whose timeline was read
        self.asked = False  # a timeline of the batch was asked for
        self.held = 0  # bytes of the batch's Arrow rows
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
        # the stored work orders (``months``) added or deleted: the others added are known as
        # such by not being stored, and a cold sync keeps no set of every work order
        self.seen: set[str] = set()
        self.last_complete = False
        # stored work orders listed again without a usable update_date: rewritten only when
        # their rows (or their timeline, when read) differ from the stored ones
        self.unknown: set[str] = set()
        # listed work orders whose id is no URL path segment: never asked for by id
        self.skipped: set[str] = set()

    def touched(self, wo_id: str) -> bool:
        """Whether this sync added or deleted ``wo_id``, a work order the dataset held when
        the sync began (one of ``months``; of the others, it added those it now holds)."""
        return wo_id in self.seen

    def pending(self) -> int:
        """How many work orders wait for the next commit."""
        return len(self.ids) + len(self.deleted)

    def holds(self, wo_id: str) -> bool:
        """Whether ``wo_id`` waits in the current batch."""
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
        if record["id"] in self.months:
            self.seen.add(record["id"])
        if unknown:
            self.unknown.add(record["id"])
        if self.prefetch is not None and (self.all_timelines or timeline_at is not None):
            if addressable(record["id"]):
                # its timeline is fetched while the listing goes on
                self.futures[record["id"]] = self.prefetch(record["id"])
                self.asked = True
            else:
                self.skipped.add(record["id"])
        self.timeline_at[record["id"]] = timeline_at
        if is_new:
            self.new += 1
        else:
            self.changed += 1
        if len(self.records) >= limits.CHUNK:
            self._flush()
        self.maybe_commit()

    def _flush(self) -> None:
        """Turn the collected records into Arrow rows, and the timelines of the chunks
        flushed before the last ``AHEAD`` ones (waiting for them when still in flight)."""
        if not self.records:
            return
        wo, tasks = work_order_tables(self.records, self.synced_at, self.timeline_at)
        self.tables.append((wo, tasks))
        self.held += wo.nbytes + tasks.nbytes
        self.records = []
        if self.futures:
            ids = wo.column("work_order_id").to_pylist()
            months = wo.column(PARTITION).to_pylist()
            asked = {i: m for i, m in zip(ids, months, strict=True) if i in self.futures}
            if asked:
                self.unread.append(asked)
        while len(self.unread) > limits.AHEAD:
            self._read_timelines(self.unread.popleft())

    def _read_timelines(self, asked: Mapping[str, str]) -> None:
        """Wait for the timelines of one flushed chunk (id -> month) and keep them as rows."""
        events = {i: self.futures.pop(i).result() for i in asked}
        read = {i: e for i, e in events.items() if e is not None}
        if read:
            rows = timeline_rows(read, asked)
            self.timeline_tables.append(rows)
            self.timelines_read.extend(read)
            self.held += rows.nbytes

    def delete(self, wo_id: str) -> None:
        """Collect a work order that is gone (its rows are removed at the next commit)."""
        self.deleted.append(wo_id)
        if wo_id in self.months:
            self.seen.add(wo_id)
        self.maybe_commit()

    def maybe_commit(self) -> None:
        """Commit when the batch is full (``BATCH`` work orders, ``BATCH_SECONDS`` or
        ``BATCH_BYTES``)."""
        size = self.pending()
        if size >= limits.BATCH or (
            size
            and (
                time.monotonic() - self.started >= limits.BATCH_SECONDS
                or self.held >= limits.BATCH_BYTES
            )
        ):
            self.commit()

    def commit(self, complete: bool = False) -> None:
        """Write what was collected as one dataset version (nothing collected: nothing)."""
        if not self.pending():
            return
        self._flush()
        while self.unread:
            self._read_timelines(self.unread.popleft())
        ids, gone = list(self.ids), list(self.deleted)
        # partitions where stored rows of these work orders can be (a month never changes)
        months: set[str] | None = {self.months[i] for i in gone if i in self.months}
        if any(i not in self.months for i in gone):
            months = None
        wo = tasks = timeline_rows = None
        done: list[str] = []
        if self.tables:
            wo = pa.concat_tables([t[0] for t in self.tables])
            tasks = pa.concat_tables([t[1] for t in self.tables])
            if self.asked:
                wo, timeline_rows, done = self._with_timelines(wo)
        if self.unknown and wo is not None and tasks is not None:
            unchanged = self._unchanged(wo, tasks, timeline_rows, done)
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
        self.timeline_tables, self.timelines_read, self.asked, self.held = [], [], False, 0
        self.unknown = set()
        self.new = self.changed = 0
        self.started = time.monotonic()

    def finish(self) -> None:
        """Commit what is left as the version that marks the sync complete; compact the small
        files first when there are many (the last version then names the compacted tables)."""
        if not self.pending() and not self.result.commits:
            return  # nothing changed: nothing committed
        if self.w.small_files() > limits.COMPACT_FILES:
            self.commit()
            if self.result.commits:  # (what was pending may have been unchanged)
                self.w.optimize()
                self._write({}, complete=True)
            return
        self.commit(complete=True)  # writes nothing when nothing changed
        if self.result.commits and not self.last_complete:
            self._write({}, complete=True)

    def _unchanged(
        self,
        wo: pa.Table,
        tasks: pa.Table,
        timelines: pa.Table | None,
        done: list[str],
    ) -> set[str]:
        """The work orders of the batch listed without a usable ``update_date`` whose rows
        (and timeline, when it was read) are those the dataset holds: rewriting them would
        change nothing."""
        ids = sorted(self.unknown & set(wo.column("work_order_id").to_pylist()))
        if not ids:
            return set()
        same = same_rows(wo, self.w.stored_rows("work_orders", ids), ids)
        same &= same_rows(tasks, self.w.stored_rows("tasks", ids), ids)
        read = sorted(same & set(done))
        if read:
            new = timelines if timelines is not None else arrow_schema("timeline").empty_table()
            same -= set(read) - same_rows(new, self.w.stored_rows("timeline", read), read)
        return same

    def _with_timelines(self, wo: pa.Table) -> tuple[pa.Table, pa.Table | None, list[str]]:
        """The batch's work orders marked as read at their listed ``update_date`` (undated
        ones: at the time of the sync, which only says that their timeline is held), its
        timeline rows, and the ids whose timeline was read."""
        done = list(self.timelines_read)
        rows = pa.concat_tables(self.timeline_tables) if self.timeline_tables else None
        mask = pc.is_in(wo.column("work_order_id"), value_set=pa.array(done, pa.string()))
        col = wo.schema.get_field_index(TIMELINE_AT)
        read_at = pc.coalesce(wo.column("update_date"), wo.column(SYNCED_AT))
        marks = pc.if_else(mask, read_at, wo.column(TIMELINE_AT))
        return wo.set_column(col, TIMELINE_AT, marks), rows, done

    def _write(self, changes: Mapping[str, tuple[Any, ...]], complete: bool) -> None:
        stats = {
            **self.stats,
            "fetched": self.new,
            "updated": self.changed,
            "deleted": len(self.deleted),
            "requests": self.requests_since(),
            "seconds": time.monotonic() - self.started,
            "complete": complete,
            "timelines": self.timelines_done,
        }
        self.record(changes, stats, complete=complete)

    def requests_since(self) -> int:
        """The requests the client sent since the last version this committer wrote."""
        return self.client.requests_sent - self.requests0

    def record(
        self, changes: Mapping[str, tuple[Any, ...]], stats: dict[str, Any], complete: bool
    ) -> None:
        """Commit ``changes`` (table -> rows, ids they replace[, partitions]) with ``stats``
        as one dataset version, and count it in the result."""
        self.result.version = self.w.commit(changes, stats)
        self.result.commits += 1
        self.last_complete = complete
        _trim()
        self.requests0 = self.client.requests_sent
