"""Loaders: complete, concurrent, incrementally refreshed DataFrames of work orders, tasks,
timelines and task groups.

How a load stays fast and fresh
-------------------------------
The first load of a query walks the whole work-order list (pages fetched concurrently), checks
that it collected exactly ``count`` work orders, normalises them and keeps a *snapshot*: the
frames, each work order's ``update_date``, and the server's ``count``. Timelines are kept per
work order together with the ``update_date`` they were read at.

Every later load asks the server what changed, with one small request: the same query ordered
by ``-update_date``, revalidated with the ``ETag`` of the previous answer (a 304 means nothing
changed). Otherwise the work orders updated since the snapshot's newest ``update_date`` are
read (following pages, or with ``updated_after`` when many changed), merged into the frames,
and only their timelines are fetched again.

Deleted work orders are noticed through ``count``: when the server's count differs from the
number of work orders the merged snapshot holds, the list is walked again in full. Work orders
this client wrote to (corrections, analyses, updates) are always read again.

Snapshots live in memory and, with a cache folder, on disk (``snapshots/``, owner-only), so a
new Python process refreshes instead of reloading, and ``offline=True`` serves them as they are.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import pickle
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from . import normalize
from .client import Client, list_params, to_api_date
from .errors import NotFoundError, OfflineCacheMiss

PROBE_SIZE = 10
SNAPSHOT_VERSION = 1


@dataclass
class ListSnapshot:
    """What is kept of one work-order query between loads."""

    params: dict[str, Any]
    work_orders: pd.DataFrame
    tasks: pd.DataFrame
    updates: dict[str, pd.Timestamp]  # work order id -> update_date
    count: int
    synced_at: float  # time.time() of the last sync with the server
    probe_etag: str | None = None
    created: dict[str, pd.Timestamp | None] = field(default_factory=dict)
    # changes read from the server but not merged into the frames yet (merged on demand, so a
    # timeline refresh does not pay for rebuilding frames it does not return)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    version: int = SNAPSHOT_VERSION

    @property
    def newest(self) -> pd.Timestamp | None:
        return max(self.updates.values()) if self.updates else None

    def ids(self) -> list[str]:
        """Work order ids, oldest first (``create_date``, then id)."""
        far = pd.Timestamp.max.tz_localize("UTC")
        return sorted(self.updates, key=lambda i: (self.created.get(i) or far, i))

    def merged(self) -> ListSnapshot:
        """This snapshot with its pending changes merged into the frames."""
        if not self.pending and not self.removed:
            return self
        out = _merge(self, list(self.pending.values()), self.removed, self.synced_at)
        out.count, out.probe_etag, out.created = self.count, self.probe_etag, self.created
        return out


@dataclass
class TimelineEntry:
    update_date: pd.Timestamp | None
    events: list[dict[str, Any]]
    fetched_at: float


@dataclass
class _Store:
    """Snapshots of one client, in memory and (with a cache folder) on disk."""

    folder: Path | None
    kept: dict[str, Any] = field(default_factory=dict)
    timelines: dict[str, TimelineEntry] | None = None
    writes: dict[str, float] = field(default_factory=dict)  # work order id -> time of last write
    # the last timeline frame built, with the entries it was built from (in memory only)
    timeline_frame: tuple[dict[str, TimelineEntry], pd.DataFrame] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- writes made through this client (or another process sharing the cache) --------------

    def on_write(self, work_order_id: str) -> None:
        with self.lock:
            when = time.time()
            self.writes[work_order_id] = when
            if self.timelines is not None:
                self.timelines.pop(work_order_id, None)
            if self.folder is not None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                fd = os.open(self.folder / "writes.log", flags, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(f"{when:.6f} {work_order_id}\n")

    def _load_writes(self) -> None:
        if self.folder is None:
            return
        path = self.folder / "writes.log"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                when, _, wo_id = line.partition(" ")
                try:
                    self.writes[wo_id] = max(self.writes.get(wo_id, 0.0), float(when))
                except ValueError:
                    continue

    def written_since(self, moment: float) -> set[str]:
        return {wo_id for wo_id, when in self.writes.items() if when >= moment}

    # -- kept objects (list snapshots, task groups) -------------------------------------------

    def get(self, name: str) -> Any:
        with self.lock:
            obj = self.kept.get(name)
            if obj is None and self.folder is not None:
                obj = _read_pickle(self.folder / f"{name}.pkl")
                if obj is not None:
                    self.kept[name] = obj
            return obj

    def put(self, name: str, obj: Any) -> None:
        with self.lock:
            self.kept[name] = obj
            if self.folder is not None:
                _WRITER.submit(self.folder / f"{name}.pkl", obj)

    def get_list(self, key: str) -> ListSnapshot | None:
        snap = self.get(f"list-{key}")
        if isinstance(snap, ListSnapshot) and snap.version == SNAPSHOT_VERSION:
            return snap
        return None

    def put_list(self, key: str, snap: ListSnapshot) -> None:
        self.put(f"list-{key}", snap)

    def list_snapshots(self) -> list[ListSnapshot]:
        with self.lock:
            return [v for v in self.kept.values() if isinstance(v, ListSnapshot)]

    # -- timelines ----------------------------------------------------------------------------

    def get_timelines(self) -> dict[str, TimelineEntry]:
        with self.lock:
            if self.timelines is None:
                loaded = _read_pickle(self.folder / "timelines.pkl") if self.folder else None
                self.timelines = loaded if isinstance(loaded, dict) else {}
                # drop entries older than a write to their work order
                for wo_id, when in self.writes.items():
                    entry = self.timelines.get(wo_id)
                    if entry is not None and entry.fetched_at <= when:
                        del self.timelines[wo_id]
            return self.timelines

    def save_timelines(self) -> None:
        with self.lock:
            if self.folder is not None and self.timelines is not None:
                _WRITER.submit(self.folder / "timelines.pkl", dict(self.timelines))


_STORES_LOCK = threading.Lock()


def _store(client: Client) -> _Store:
    with _STORES_LOCK:
        store = getattr(client, "_snapshot_store", None)
        if store is None:
            folder = None
            if client.cache_dir is not None:
                folder = client.cache_dir / "snapshots"
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
            store = _Store(folder)
            store._load_writes()
            client._snapshot_store = store  # type: ignore[attr-defined]
            client.on_write(store.on_write)
        return store


class _WriteBehind:
    """Writes snapshots to disk on a background thread, once the loads have gone quiet for a
    moment, so a load neither waits for the disk nor shares the CPU with pickling.

    Only the latest object per file is written. Reads of snapshots, and exit, flush first.
    """

    QUIET = 0.3  # seconds without a new snapshot before writing

    def __init__(self) -> None:
        self.pending: dict[Path, Any] = {}
        self.cond = threading.Condition()
        self.last = 0.0
        self.writing = 0
        self.thread: threading.Thread | None = None
        atexit.register(self.flush)

    def submit(self, path: Path, obj: Any) -> None:
        with self.cond:
            self.pending[path] = obj
            self.last = time.monotonic()
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name="dfs-snapshots")
                self.thread.start()
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.pending and time.monotonic() - self.last < self.QUIET:
                    self.cond.wait(self.QUIET)
                if not self.pending:
                    self.thread = None  # under the lock: a new submit starts a new writer
                    return
                batch, self.pending = self.pending, {}
                self.writing += 1
            try:
                self._write(batch)
            finally:
                with self.cond:
                    self.writing -= 1
                    self.cond.notify_all()

    @staticmethod
    def _write(batch: dict[Path, Any]) -> None:
        for path, obj in batch.items():
            try:
                _write_pickle(path, obj)
            except OSError as exc:  # the cache is an optimisation: never fail a load over it
                warnings.warn(f"could not save a snapshot to the cache: {exc}", stacklevel=2)

    def flush(self) -> None:
        with self.cond:
            while self.writing:  # an older batch being written lands first
                self.cond.wait()
            batch, self.pending = self.pending, {}
            self._write(batch)  # holding the lock: no newer write can start meanwhile


_WRITER = _WriteBehind()


def flush_snapshots() -> None:
    """Wait until every snapshot is written to disk (done at exit anyway)."""
    _WRITER.flush()


def _read_pickle(path: Path) -> Any:
    _WRITER.flush()
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None


def _write_pickle(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# syncing a work-order query
# --------------------------------------------------------------------------------------------


def _query_key(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]


def _bar(client: Client, progress: bool | None, total: int | None, desc: str, unit: str) -> tqdm:
    show = client.settings.progress if progress is None else progress
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, delay=0.3, leave=False)


def _full_walk(client: Client, params: dict[str, Any], progress: bool | None) -> ListSnapshot:
    synced_at = time.time()
    with _bar(client, progress, None, "work orders", "wo") as bar:
        lock = threading.Lock()  # pages arrive on several threads

        def on_page(n: int, count: int | None) -> None:
            with lock:
                if count is not None and bar.total != count:
                    bar.total = count
                    bar.refresh()
                # a second walk (after a count mismatch) must not push the bar past the total
                bar.update(min(n, bar.total - bar.n) if bar.total is not None else n)

        records, count = client.paginate("work-orders/", params, on_page=on_page)
    return _snapshot_from(params, records, count if count is not None else len(records), synced_at)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _snapshot_from(
    params: dict[str, Any], records: list[dict[str, Any]], count: int, synced_at: float
) -> ListSnapshot:
    records = _sorted(records)
    return ListSnapshot(
        params=params,
        work_orders=normalize.work_orders_frame(records),
        tasks=normalize.tasks_frame(records),
        updates={r["id"]: _timestamp(r.get("update_date")) for r in records},
        count=count,
        synced_at=synced_at,
        created={r["id"]: _timestamp(r.get("create_date")) for r in records},
    )


def _sorted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (str(r.get("create_date") or ""), str(r.get("id"))))


def _merge(
    snap: ListSnapshot, changed: list[dict[str, Any]], removed: set[str], synced_at: float
) -> ListSnapshot:
    """Replace the rows of ``changed`` work orders and drop ``removed`` ones."""
    ids = {r["id"] for r in changed} | removed
    keep_wo = snap.work_orders[~snap.work_orders["work_order_id"].isin(ids)]
    keep_tasks = snap.tasks[~snap.tasks["work_order_id"].isin(ids)]
    changed = _sorted(changed)
    if changed:
        work_orders = _concat_sorted(
            keep_wo,
            normalize.work_orders_frame(changed),
            ["create_date", "work_order_id"],
            normalize.WORK_ORDER_SPEC,
        )
        tasks = _concat_sorted(
            keep_tasks,
            normalize.tasks_frame(changed),
            ["create_date", "work_order_id"],
            normalize.TASK_SPEC,
        )
    else:
        work_orders, tasks = keep_wo.reset_index(drop=True), keep_tasks.reset_index(drop=True)
    updates = {k: v for k, v in snap.updates.items() if k not in ids}
    updates.update({r["id"]: _timestamp(r.get("update_date")) for r in changed})
    return ListSnapshot(
        snap.params, work_orders, tasks, updates, len(updates), synced_at, snap.probe_etag
    )


def _with_changes(
    snap: ListSnapshot, changed: Mapping[str, dict[str, Any]], removed: set[str], synced_at: float
) -> ListSnapshot:
    """A snapshot that knows of ``changed`` and ``removed`` work orders, frames not rebuilt."""
    updates = {k: v for k, v in snap.updates.items() if k not in removed}
    created = {k: v for k, v in snap.created.items() if k not in removed}
    for wo_id, record in changed.items():
        updates[wo_id] = _timestamp(record.get("update_date"))
        created[wo_id] = _timestamp(record.get("create_date"))
    pending = {k: v for k, v in snap.pending.items() if k not in removed}
    pending.update(changed)
    return ListSnapshot(
        snap.params,
        snap.work_orders,
        snap.tasks,
        updates,
        len(updates),
        synced_at,
        snap.probe_etag,
        created,
        pending,
        (snap.removed | removed) - set(changed),
    )


def _concat_sorted(
    old: pd.DataFrame, new: pd.DataFrame, keys: list[str], spec: tuple[normalize.Column, ...]
) -> pd.DataFrame:
    """Concatenate two frames of one spec as if normalised together: categoricals keep sorted
    categories, extra columns are rebuilt (None where a side lacks them) and come after the
    spec's columns in name order; rows are sorted by ``keys``."""
    if old.empty:
        return new.reset_index(drop=True)
    names = [c.name for c in spec]
    old_part, new_part = old[names].copy(deep=False), new[names].copy(deep=False)
    for col in names:
        a, b = old_part[col].dtype, new_part[col].dtype
        if isinstance(a, pd.CategoricalDtype) and isinstance(b, pd.CategoricalDtype) and a != b:
            if not len(b.categories) or not len(a.categories):  # keep the categories' dtype
                cats = a.categories if len(a.categories) else b.categories
            else:
                cats = a.categories.union(b.categories)
            old_part[col] = old_part[col].cat.set_categories(cats)
            new_part[col] = new_part[col].cat.set_categories(cats)
    frame = pd.concat([old_part, new_part], ignore_index=True)
    extras = sorted((set(old.columns) | set(new.columns)) - set(names))
    for col in extras:
        values = [
            *(_plain(v) for v in (old[col] if col in old else [None] * len(old))),
            *(_plain(v) for v in (new[col] if col in new else [None] * len(new))),
        ]
        frame[col] = normalize.extra_column(values)
    return frame.sort_values(keys, kind="stable", ignore_index=True) if keys else frame


def _plain(value: Any) -> Any:
    """Missing markers (NaN, NA, NaT) back to None, as the API sent them."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value


def sync_work_orders(
    client: Client, *, progress: bool | None = None, frames: bool = True, **filters: Any
) -> ListSnapshot:
    """Bring the snapshot of one work-order query up to date (see the module docstring).

    ``frames=False`` skips rebuilding the frames (the ids and update dates are up to date).
    """
    params = list_params(filters)
    params.pop("ordering", None)
    params["page_size"] = client.settings.page_size
    key = _query_key(params)
    store = _store(client)
    snap = store.get_list(key)
    if client.settings.offline:
        if snap is None:
            raise OfflineCacheMiss(
                "these work orders were never loaded with this client's cache (offline=True): "
                "load them once online first."
            )
        dirty = store.written_since(snap.synced_at) & set(snap.updates)
        if dirty:
            raise OfflineCacheMiss(
                f"{len(dirty)} cached work order(s) changed through this client since they were "
                "loaded; load online once to refresh them."
            )
        return snap.merged() if frames else snap
    previous = snap
    if snap is None:
        snap = _full_walk(client, params, progress)
    else:
        snap = _refresh(client, params, snap, store) or _full_walk(client, params, progress)
    if frames:
        snap = snap.merged()
    if snap is not previous:  # an unchanged snapshot is not written to disk again
        store.put_list(key, snap)
    return snap


def _refresh(
    client: Client, params: dict[str, Any], snap: ListSnapshot, store: _Store
) -> ListSnapshot | None:
    """Incremental refresh; None when a full walk is needed (deletions, odd server)."""
    synced_at = time.time()
    dirty = store.written_since(snap.synced_at)
    probe = {**params, "ordering": "-update_date", "page_size": PROBE_SIZE}
    headers = {"If-None-Match": snap.probe_etag} if snap.probe_etag and not dirty else None
    response = client.send("GET", "work-orders/", params=probe, headers=headers)
    if response.status_code == 304:  # nothing changed: the same snapshot, just checked again
        snap.synced_at = synced_at
        return snap
    page = client.parse(response)
    if not isinstance(page, dict) or not isinstance(page.get("count"), int):
        return None  # no count: cannot tell deletions apart, walk it all
    rows = page.get("results") or []
    dates = [_timestamp(r.get("update_date")) for r in rows]
    if any(d is None for d in dates) or any(a < b for a, b in itertools.pairwise(dates)):
        return None  # the server ignored the ordering
    cursor = snap.newest
    # new or moved since the snapshot (the newest ones at the cursor itself are unchanged)
    changed = [
        r
        for r, d in zip(rows, dates, strict=True)
        if cursor is None or (d >= cursor and snap.updates.get(r["id"]) != d)
    ]
    in_window = [d for d in dates if cursor is None or d >= cursor]
    if len(in_window) == len(rows) and page.get("next"):
        # many changed: read them all with updated_after (pages fetched concurrently)
        window, _ = client.paginate("work-orders/", {**params, "updated_after": _api_date(cursor)})
        changed = [
            r for r in window if snap.updates.get(r["id"]) != _timestamp(r.get("update_date"))
        ]
    by_id = {r["id"]: r for r in changed}
    removed: set[str] = set()
    # work orders this client wrote to are read again even if their update_date did not move
    missed = [i for i in dirty - set(by_id) if i in snap.updates]

    def reread(wo_id: str) -> tuple[str, dict[str, Any] | None]:
        try:
            return wo_id, client.get_work_order(wo_id, include_inputs=False)
        except NotFoundError:
            return wo_id, None

    with ThreadPoolExecutor(client.settings.max_workers) as pool:
        for wo_id, record in pool.map(reread, missed):
            if record is None:
                removed.add(wo_id)
            else:
                by_id[wo_id] = record
    merged_ids = (set(snap.updates) - removed) | set(by_id)
    if page["count"] != len(merged_ids):
        return None  # something was deleted (or the query's set moved): walk it all
    merged = _with_changes(snap, by_id, removed, synced_at)
    merged.count = page["count"]
    merged.probe_etag = response.headers.get("ETag")
    return merged


def _api_date(ts: pd.Timestamp | None) -> str | None:
    if ts is None:
        return None
    return to_api_date(ts.to_pydatetime())


# --------------------------------------------------------------------------------------------
# public loaders
# --------------------------------------------------------------------------------------------

_FILTER_DOC = """
    Filters (all optional, combined with AND): ``created_after`` (inclusive),
    ``created_before`` (exclusive), ``updated_after``, ``updated_before`` (dates as ISO strings,
    ``date``/``datetime`` or pandas ``Timestamp``; naive means UTC), ``reviewed`` (bool),
    ``name`` (exact), ``tag`` (a string or a list: all must match), ``field_engineer_email``.
    ``progress`` shows a progress bar (default: the client's setting).
"""


def load_work_orders(
    client: Client, *, progress: bool | None = None, **filters: Any
) -> pd.DataFrame:
    """Work orders as a DataFrame, one row each, oldest first.

    Columns: ``work_order_id, name, site_id, app_version_id, create_date, update_date,
    review_date`` (UTC datetimes), ``reviewed``, ``progress_score`` (0-100),
    ``field_engineer_email, field_engineer_name, first_analysis_id, latest_analysis_id,
    tags, types`` (lists), ``n_tasks``, one ``metadata.<key>`` column per metadata key, and
    any other key the server sends.
    """
    return sync_work_orders(client, progress=progress, **filters).work_orders.copy()


def load_tasks(client: Client, *, progress: bool | None = None, **filters: Any) -> pd.DataFrame:
    """Tasks with their states, one row per work order x task.

    Columns: ``work_order_id, work_order_name, task_group_name, task_id, task_name,
    outcome_type, conformity_status, analyzed, analyzed_value, corrected_value, value,
    message, is_conform, is_corrected, is_overridden, reviewed, field_engineer_email,
    app_version_id, create_date, update_date, review_date`` and a few more (see
    ``normalize.TASK_SPEC``). ``value`` is the corrected value if any, else the analysed one;
    ``is_overridden`` means corrected to a different value.
    """
    return sync_work_orders(client, progress=progress, **filters).tasks.copy()


def load_timeline(
    client: Client,
    work_order_ids: Iterable[str] | None = None,
    *,
    progress: bool | None = None,
    **filters: Any,
) -> pd.DataFrame:
    """Timeline events, one row per event x task state it changed, oldest first per work order.

    ``work_order_ids=None`` means every work order the filters select. Timelines are fetched
    concurrently, and only for work orders whose ``update_date`` moved since they were last
    read. Columns: ``work_order_id, event_id, date, type, user, analysis_id, task_group_name,
    task_id, task_name, analyzed_value, corrected_value, message, is_conform``.
    """
    store = _store(client)
    if work_order_ids is None:
        snap = sync_work_orders(client, progress=progress, frames=False, **filters)
        wanted = snap.ids()
        updates = snap.updates
    else:
        wanted = list(dict.fromkeys(str(i) for i in work_order_ids))
        updates = _updates_of(client, wanted, filters, progress)
    timelines = store.get_timelines()
    dirty = store.writes
    todo = [
        wo_id
        for wo_id in wanted
        if (entry := timelines.get(wo_id)) is None
        or entry.update_date != updates.get(wo_id)
        or dirty.get(wo_id, 0.0) >= entry.fetched_at
    ]
    if todo and client.settings.offline:
        raise OfflineCacheMiss(
            f"{len(todo)} timeline(s) are not in the cache (offline=True); load them online first."
        )
    if todo:
        _fetch_timelines(client, todo, updates, timelines, progress)
        store.save_timelines()
    return _timeline_frame(store, wanted, set(todo), timelines).copy()


def _timeline_frame(
    store: _Store, wanted: list[str], refetched: set[str], timelines: Mapping[str, TimelineEntry]
) -> pd.DataFrame:
    """The timeline frame of ``wanted``, reusing the rows of the previous one where they were
    built from the very timeline entries still kept (so concurrent loads cannot mix)."""
    with store.lock:
        previous = store.timeline_frame
    entries = {i: timelines[i] for i in wanted}
    if previous is not None:
        prev_entries, prev_frame = previous
        reusable = {
            i for i, e in entries.items() if prev_entries.get(i) is e and i not in refetched
        }
        if len(reusable) == len(entries) and list(prev_entries) == wanted:
            return prev_frame
        kept = prev_frame[prev_frame["work_order_id"].isin(reusable)]
        fresh = normalize.timeline_frame(
            {i: e.events for i, e in entries.items() if i not in reusable}
        )
        position = {wo_id: n for n, wo_id in enumerate(wanted)}
        frame = _concat_sorted(kept, fresh, [], normalize.TIMELINE_SPEC)
        order = frame["work_order_id"].map(position).to_numpy()
        frame = frame.iloc[order.argsort(kind="stable")].reset_index(drop=True)
    else:
        frame = normalize.timeline_frame({i: e.events for i, e in entries.items()})
    with store.lock:
        store.timeline_frame = (entries, frame)
    return frame


def _updates_of(
    client: Client, ids: list[str], filters: Mapping[str, Any], progress: bool | None
) -> dict[str, pd.Timestamp | None]:
    """The current ``update_date`` of given work orders, asked of the server: from the synced
    query when filters are given, else one (revalidated) read per work order. Offline, the
    snapshots' values."""
    known: dict[str, pd.Timestamp | None] = {}
    if filters:
        snap = sync_work_orders(client, progress=progress, frames=False, **filters)
        known.update({i: snap.updates[i] for i in ids if i in snap.updates})
    if client.settings.offline:
        for snapshot in _store(client).list_snapshots():
            for wo_id in ids:
                if known.get(wo_id) is None and snapshot.updates.get(wo_id) is not None:
                    known[wo_id] = snapshot.updates[wo_id]
        return known
    missing = [i for i in ids if i not in known]

    def one(wo_id: str) -> tuple[str, pd.Timestamp | None]:
        return wo_id, _timestamp(
            client.get_work_order(wo_id, include_inputs=False).get("update_date")
        )

    if missing:
        with ThreadPoolExecutor(client.settings.max_workers) as pool:
            known.update(dict(pool.map(one, missing)))
    return known


def _fetch_timelines(
    client: Client,
    ids: list[str],
    updates: Mapping[str, Any],
    timelines: dict[str, TimelineEntry],
    progress: bool | None,
) -> None:
    def one(wo_id: str) -> tuple[str, list[dict[str, Any]], float]:
        fetched_at = time.time()
        return wo_id, client.get_timeline(wo_id), fetched_at

    with (
        _bar(client, progress, len(ids), "timelines", "wo") as bar,
        ThreadPoolExecutor(client.settings.max_workers) as pool,
    ):
        for wo_id, events, fetched_at in pool.map(one, ids):
            timelines[wo_id] = TimelineEntry(updates.get(wo_id), events, fetched_at)
            bar.update(1)


def load_task_groups(client: Client) -> pd.DataFrame:
    """The site's task groups and their tasks, one row per task.

    Columns: ``task_group_id, task_group_name, order, task_id, task_name, sentence,
    outcome_type, conformity_status, only_for_dashboard, mandatory, outcome_display, rules``
    (the verdict rules: list of dicts with ``schema``, ``sentence``, ``color``, ...).
    """
    store = _store(client)
    if client.settings.offline:
        frame = store.get("task-groups")
        if frame is None:
            raise OfflineCacheMiss(
                "task groups were never loaded with this cache (offline=True): "
                "load them online first."
            )
        return frame.copy()
    frame = normalize.task_groups_frame(client.list_task_groups())
    store.put("task-groups", frame)
    return frame.copy()


for _fn in (load_work_orders, load_tasks, load_timeline):
    _fn.__doc__ = (_fn.__doc__ or "") + _FILTER_DOC
