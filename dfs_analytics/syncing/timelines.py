"""Timelines: read concurrently, and committed with their work orders' "read at" marks.

:class:`TimelineFetcher` reads timelines on the client's threads (a bounded number ahead,
with a progress bar); :func:`sync_stale_timelines` brings the stored timelines that are
missing or older than their work order up to date, in batches, each one dataset version.
This module never lists work orders and never decides which work orders changed (that is
:mod:`.algorithm`'s).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from ..client import Client
from ..dataset import PARTITION, TIMELINE_AT, Writer
from ..errors import NotFoundError
from ..rules import is_missing
from . import limits
from .batches import Committer, Timeline, addressable, rate_bar, same_date, same_rows, timeline_rows


class TimelineFetcher:
    """Fetches timelines concurrently, ``CHUNK`` at a time, with a progress bar; its threads
    start with the first timeline asked for. A context manager: leaving it cancels what was
    not sent yet and closes the bar."""

    def __init__(self, client: Client, progress: bool | None) -> None:
        self.client, self.progress = client, progress
        self.pool: ThreadPoolExecutor | None = None
        self.bar: tqdm | None = None
        self.lock = threading.Lock()

    def __enter__(self) -> TimelineFetcher:
        return self

    def _start(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.pool is None:
                # as many threads as the client may have requests in flight: its limiter decides
                self.pool = ThreadPoolExecutor(self.client.settings.workers)
                self.bar = rate_bar(self.client, self.progress, None, "timelines")
            return self.pool

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.bar is not None:
            self.bar.close()

    def _one(self, wo_id: str) -> Timeline | None:
        try:
            return self.client.get_timeline(wo_id)
        except NotFoundError:
            return None
        finally:
            if self.bar is not None:
                self.bar.update(1)

    def submit(self, wo_id: str) -> Future[Timeline | None]:
        """Start reading one work order's timeline (None when the work order is gone)."""
        return self._start().submit(self._one, wo_id)

    def fetch(self, ids: list[str]) -> Iterator[dict[str, Timeline | None]]:
        """Each id's events (None: the work order is gone), one dict per ``CHUNK`` ids, in
        order. The next ``AHEAD`` chunks are already asked for while one is handed over, so
        the requests in flight do not drain between chunks; at most ``(AHEAD + 1) * CHUNK``
        timelines are held at once."""
        chunks = list(_chunks(ids, limits.CHUNK))
        pending: deque[list[Future[Timeline | None]]] = deque()
        try:
            for i, chunk in enumerate(chunks):
                while len(pending) <= limits.AHEAD and i + len(pending) < len(chunks):
                    pending.append([self.submit(x) for x in chunks[i + len(pending)]])
                yield dict(zip(chunk, (f.result() for f in pending[0]), strict=True))
                pending.popleft()
        finally:  # stopped early (an error, an interrupt): what is not sent yet never is
            for futures in pending:
                for f in futures:
                    f.cancel()


def _chunks(items: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def sync_stale_timelines(
    w: Writer,
    committer: Committer,
    fetcher: TimelineFetcher,
    ids: Iterable[str],
    stored: Mapping[str, Any],
    mark: Callable[[str], pd.Timestamp | None],
) -> None:
    """Fetch the timelines of the stored work orders among ``ids`` that this sync did not
    rewrite and whose stored timeline was read at another ``update_date`` (or never): of
    those the dataset held when it began (``committer.months``; it added the others)."""
    stale = []
    for i in ids:
        if (
            i in stored
            and i in committer.months
            and not committer.touched(i)
            and not same_date(stored[i], mark(i))
        ):
            if addressable(i):
                stale.append(i)
            else:
                committer.skipped.add(i)
    if stale:
        committer.commit()
        _sync_timelines(w, committer, fetcher, stale)


def _sync_timelines(
    w: Writer, committer: Committer, fetcher: TimelineFetcher, ids: list[str]
) -> None:
    """Fetch the timelines of stored work orders that are missing or older than their work
    order (``ids``), in batches; each batch also marks its work orders as read."""
    index = w.dataset.index()
    stale = index[index["work_order_id"].isin(set(ids))]
    if not len(stale):
        return
    ids_now = stale["work_order_id"].tolist()
    months = dict(zip(ids_now, stale[PARTITION].tolist(), strict=True))
    updates = dict(zip(ids_now, stale["update_date"].tolist(), strict=True))
    held = set(stale["work_order_id"][stale[TIMELINE_AT].notna()])
    batch: list[pa.Table] = []
    batch_ids: list[str] = []
    started = time.monotonic()
    for chunk in fetcher.fetch(stale["work_order_id"].tolist()):
        fetched: dict[str, Timeline] = {}
        for wo_id, events in chunk.items():
            if events is None:
                committer.delete(wo_id)
            else:
                fetched[wo_id] = events
        if fetched:
            batch.append(timeline_rows(fetched, months))
            batch_ids.extend(fetched)
        if len(batch_ids) >= limits.BATCH or time.monotonic() - started >= limits.BATCH_SECONDS:
            _commit_timelines(w, committer, batch, batch_ids, updates, held)
            batch, batch_ids, started = [], [], time.monotonic()
    _commit_timelines(w, committer, batch, batch_ids, updates, held)


def _commit_timelines(
    w: Writer,
    committer: Committer,
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
        same = same_rows(rows, w.stored_rows("timeline", undated), undated)
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
    col = wo_rows.schema.get_field_index(TIMELINE_AT)
    wo_rows = wo_rows.set_column(
        col,
        TIMELINE_AT,
        pa.array(pd.Series(marks, dtype="datetime64[us, UTC]"), pa.timestamp("us", tz="UTC")),
    )
    stats = {**committer.stats, "timelines": len(ids), "complete": False}
    stats["requests"] = committer.requests_since()
    committer.record(
        {"timeline": (rows, ids, set()), "work_orders": (wo_rows, ids, set())},
        stats,
        complete=False,
    )
    committer.result.timelines += len(ids)
