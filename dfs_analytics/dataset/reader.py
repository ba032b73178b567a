"""Reading a dataset: :class:`Dataset`, the frames of one site at any version (``as_of``), with
``columns=`` and the loaders' filters pushed down to Arrow, in the loaders' row order, every
data file checked against its recorded SHA-256 before it is used; its history; and the hand-off
to DuckDB and Dask (:mod:`.export`).

It never writes (that is :class:`~dfs_analytics.dataset.writer.Writer`), never speaks HTTP
and never needs an API key.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake.exceptions import CommitFailedError, DeltaError

from ..errors import DatasetCorruptError, NotADatasetError, TableNotSyncedError
from . import export, integrity, retention
from .arrow import (
    EXTRA,
    PARTITION,
    POS,
    SPECS,
    SYNCED_AT,
    TIMELINE_AT,
    arrow_schema,
    check_table,
    from_arrow,
)
from .filters import (
    apply_after_read,
    check_filters,
    columns_needed,
    plain_filter,
    pushdown,
)
from .integrity import table_dataset
from .location import (
    check_credentials,
    local_path,
    open_table,
    short_error,
    table_exists,
    table_uri,
)
from .locks import check_conditional_writes, check_writable, commit_lock, split_options
from .versions import VersionTable

FRAME_CACHE = 2  # decoded frames kept per table (the latest reads)
FRAME_CACHE_BYTES = 64 * 2**20  # larger frames are not kept
FILE_CACHE_BYTES = 32 * 2**20  # decoded data files kept (a file never changes)

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _locked(method: _Method) -> _Method:
    """Run a Dataset method under the object's lock: its caches are shared, and a Delta table
    object must not be used by two threads at once."""

    def run(self: Dataset, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run  # type: ignore[return-value]


class Dataset:
    """A dfs-analytics dataset: the frames of one site, every version kept.

    Open one with :func:`dfs_analytics.open_dataset`. Every reader takes ``as_of=`` (a version
    number or a timestamp: the last version at or before it), ``columns=`` (only these
    columns are read) and the loaders' filters (``created_after``, ``reviewed``, ...),
    evaluated on the stored work orders. No reader sends a request or needs an API key.

    Every data file is checked against the SHA-256 recorded when it was written before it is
    used, and every version row against its digest: damage is a :class:`DatasetCorruptError`
    naming the file. :meth:`verify` re-reads every file and lists what failed.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, str] | None = None,
        single_writer: bool = False,
    ) -> None:
        self.location = os.fspath(location)
        self.storage_options, single = split_options(storage_options)
        #: this process is the dataset's only writer (see :func:`.locks.check_conditional_writes`)
        self.single_writer = single_writer or single
        check_credentials(self.location, self.storage_options)  # also refuses bad schemes
        if not table_exists(self.location, "syncs", self.storage_options):
            raise NotADatasetError(
                f"{self.location} is not a dfs-analytics dataset (no 'syncs' table): check the "
                "path, or create one by syncing: dfs.sync(client) with "
                "Client(dataset=...) pointing there."
            )
        self._lock = threading.RLock()
        self._cache: dict[Any, Any] = {}  # Arrow datasets and selected work orders, by version
        self._frames: dict[Any, pd.DataFrame] = {}  # the latest frames read
        self._decoded = DecodedFiles(FILE_CACHE_BYTES)
        self._synced: set[tuple[str, int]] = set()  # (table, version) check_synced passed
        #: the checked version table: identity, versions, recorded checksums (shared with the
        #: writer that commits to this dataset)
        self.versions = VersionTable(self.location, self.storage_options)
        self._retention = retention.Retention(self.location, self.storage_options)

    # -- where and what -----------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The dataset's folder or URI."""
        return self.location

    def __repr__(self) -> str:
        return f"Dataset({self.location!r}, site={self.site!r}, version={self.version})"

    @property
    def site(self) -> str:
        """The base URL of the site the dataset was made from."""
        return self.versions.identity.site

    @property
    def schema_version(self) -> int:
        """The schema version the dataset was written with."""
        return self.versions.identity.schema_version

    # -- versions -----------------------------------------------------------------------------

    def verify(self, all_versions: bool = False) -> pd.DataFrame:
        """Read every file of the latest version (``all_versions=True``: of every version)
        again, and say what could not be verified.

        Returns a DataFrame with one row per file that failed or could not be checked,
        columns ``table, file, problem`` (empty: everything checked is intact). Problems are
        a damaged or missing file, a content that differs from the SHA-256 recorded when the
        file was written, a damaged version table, or "no checksum recorded" for files
        written by releases that did not record them (read and decoded, but unverified).
        ``frame.attrs["files_checked"]`` is how many files were read. Nothing is written.
        """
        return integrity.verify(self.versions, all_versions)

    @property
    def version(self) -> int | None:
        """The latest version (None: nothing synced yet)."""
        syncs = self.versions.frame()
        return int(syncs["version"].iloc[-1]) if len(syncs) else None

    def history(self) -> pd.DataFrame:
        """One row per version, oldest first: ``version, time, filters, listed, fetched,
        updated, deleted, timelines, requests, seconds, complete`` (``complete``: the sync's
        last commit) and each table's own Delta version."""
        syncs = self.versions.frame().copy()
        syncs["filters"] = [json.loads(f) if f else {} for f in syncs["filters"]]
        return syncs

    def table_versions(self, as_of: Any = None) -> dict[str, int | None]:
        """Each table's Delta version in the dataset version ``as_of`` (None: empty); a
        vacuumed version is a :class:`VersionVacuumedError`."""
        if as_of is not None:
            self.resolve(as_of)
        return self.versions.table_versions(as_of)

    def resolve(self, as_of: Any = None) -> int | None:
        """The dataset version that ``as_of`` designates (None: nothing synced yet); a
        version whose files were vacuumed is a :class:`VersionVacuumedError`."""
        row = self.versions.row(as_of)
        if row is None:
            return None
        if as_of is not None:
            retention.check_not_vacuumed(self._retention, int(row["version"]), self.version)
        return int(row["version"])

    # -- retention ----------------------------------------------------------------------------

    def pin(self, version: int, note: str = "") -> None:
        """Keep ``version`` readable whatever :meth:`vacuum` is asked (``note`` says why),
        recorded in the dataset itself, so every user's vacuum honours it. Pinning a pinned
        version replaces its note. An unknown version is a :class:`VersionNotFoundError`,
        a vacuumed one a :class:`VersionVacuumedError`."""
        self._check_writes()
        with commit_lock(self.location):
            for attempt in range(5):
                self.resolve(int(version))  # exists
                self._retention.frame()  # the pin is written as of this read
                retention.check_not_vacuumed(self._retention, int(version), None)
                try:
                    return self._retention.record(retention.PIN, [int(version)], note)
                except CommitFailedError:  # a vacuum or a pin of it meanwhile: look again
                    if attempt == 4:
                        raise

    def pins(self) -> pd.DataFrame:
        """The pinned versions, one row each, oldest first: ``version, note, time`` (when it
        was pinned)."""
        frame = self._retention.frame()
        frame = frame[frame["kind"] == retention.PIN].sort_values("version")
        return frame[["version", "note", "time"]].reset_index(drop=True)

    def vacuum(
        self,
        *,
        keep_versions: int | None = None,
        older_than: datetime.timedelta | str | None = None,
        keep: Iterable[int] = (),
        dry_run: bool = False,
    ) -> pd.DataFrame:
        """Remove the data files that only old versions need (``dry_run``: only say which).

        Kept readable: the latest version, the versions in ``keep``, every pinned version
        (:meth:`pin`), the last ``keep_versions`` versions and the versions younger than
        ``older_than`` (a ``timedelta`` or a duration such as ``"30d"``; when neither
        ``keep_versions`` nor ``older_than`` is given: 7 days, deltalake's default). Every
        file one of them needs stays; deltalake's own vacuum removes the others (only files
        that a commit removed from its table, never a file being written by a sync). Other
        versions lose their frames: ``as_of`` on them is then a
        :class:`VersionVacuumedError`; their row stays in :meth:`history`. The version
        table and the Delta logs (which hold the checksums) are never removed.

        Returns one row per file removed (or that would be): ``table, file`` (relative to the
        table's folder), ``bytes``, ``versions`` (the dataset versions that needed it and
        become unreadable); ``attrs["unreadable_versions"]`` lists them all.

        On object stores, writes need conditional writes (see :class:`Writer`); a local
        dataset's vacuum waits for a sync in progress (the commit lock).
        """
        self._check_writes()
        with commit_lock(self.location):
            marks = self._retention.frame()  # pins and vacuumed versions, read once
            kept = retention.retained(
                self.versions.frame(fresh=True),
                keep_versions=keep_versions,
                older_than=older_than,
                keep=keep,
                pinned=marks.loc[marks["kind"] == retention.PIN, "version"],
            )
            gone = {int(v) for v in marks.loc[marks["kind"] == retention.VACUUMED, "version"]}
            out = retention.vacuum(self.versions, self._retention, kept, gone, dry_run)
        self._cache.clear()
        self._frames.clear()
        self._decoded.clear()
        return out

    def _check_writes(self) -> None:
        """Refuse, before anything is written, a dataset this process may not write."""
        check_conditional_writes(self.location, self.storage_options, self.single_writer)
        local = local_path(self.location)
        if local is not None:
            check_writable(local)

    def check_synced(self, table: str, as_of: Any = None) -> None:
        """Raise :class:`TableNotSyncedError` when no version up to ``as_of`` wrote ``table``
        (its frame would be empty because the dataset does not know its rows, not because
        there are none). A dataset with no version yet passes (every frame is empty)."""
        check_table(table)
        row = self.versions.row(as_of)
        if row is None or (table, int(row["version"])) in self._synced:
            return
        if self._was_synced(table, int(row["version"])):
            self._synced.add((table, int(row["version"])))  # a version's past never changes
            return
        how = {
            "timeline": "dfs.sync(client, timelines=True) (or dfs.load_timeline(client))",
            "task_groups": "dfs.load_task_groups(client)",
        }.get(table, "dfs.sync(client)")
        raise TableNotSyncedError(
            f"the dataset at {self.location} never synced the {table} table (up to version "
            f"{int(row['version'])}): its rows are unknown, not empty. Sync it with {how}, "
            "then read it again.",
            table,
        )

    def _was_synced(self, table: str, version: int) -> bool:
        """Whether a version up to ``version`` wrote ``table`` (see :meth:`check_synced`)."""
        syncs = self.versions.frame(covering=version)
        upto = syncs[syncs["version"] <= version]
        if (upto[f"{table}_version"].fillna(-1) >= 0).any():
            return True
        groups_only = upto["filters"].map(lambda f: json.loads(f or "{}") == {"task_groups": True})
        if table == "timeline" and upto["with_timelines"].fillna(False).astype(bool).any():
            return True
        if table == "task_groups" and groups_only.any():
            return True
        return table in ("work_orders", "tasks") and bool((~groups_only).any())

    # -- reads --------------------------------------------------------------------------------

    @_locked
    def arrow_dataset(self, table: str, as_of: Any = None) -> pads.Dataset | None:
        """The table's files at ``as_of`` as a ``pyarrow.dataset.Dataset`` (None: empty),
        each file checked against its recorded checksum first."""
        data = self._arrow(table, as_of)
        if data is not None:
            self.versions.verify_files(table, data, (f.path for f in data.get_fragments()))
        return data

    @_locked
    def _arrow(self, table: str, as_of: Any = None) -> pads.Dataset | None:
        check_table(table)
        version = self.table_versions(as_of)[table]
        if version is None:
            return None
        key = ("arrow", table, version)
        if key in self._cache:
            return self._cache[key]
        dt = open_table(self.location, table, version, self.storage_options)
        try:
            data = table_dataset(dt, self.location, table)
        except (DeltaError, OSError, ValueError, pa.ArrowException) as exc:
            raise DatasetCorruptError(
                f"{table_uri(self.location, table)}: cannot list its files ({short_error(exc)})."
            ) from None
        self._cache[key] = data
        return data

    def _scan(
        self,
        table: str,
        as_of: Any,
        columns: Sequence[str] | None,
        expr: pc.Expression | None,
    ) -> pa.Table:
        data = self._arrow(table, as_of)
        schema = arrow_schema(table)
        if data is None:
            return schema.empty_table()
        present = set(data.schema.names)
        wanted = [c for c in (columns or schema.names) if c in present]
        try:
            fragments = list(
                data.get_fragments() if expr is None else data.get_fragments(filter=expr)
            )
            self.versions.verify_files(table, data, [f.path for f in fragments])
            if expr is None:  # whole files: those read before are kept decoded
                return self._decoded.read(table, data, fragments, wanted)
            return data.to_table(columns=wanted, filter=expr)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetCorruptError(
                f"{table_uri(self.location, table)}: a data file is damaged or missing "
                f"({short_error(exc)}). Restore it, or sync into a new dataset path."
            ) from None

    @_locked
    def index(self, as_of: Any = None, **filters: Any) -> pd.DataFrame:
        """Work-order ids with what a sync needs to know of them: ``work_order_id,
        create_date, update_date, create_month, _synced_at, _timeline_update_date``, for the
        work orders that ``filters`` select."""
        cols = ["work_order_id", "create_date", "update_date", PARTITION, SYNCED_AT, TIMELINE_AT]
        return self._selected(as_of, filters, extra=cols)

    @_locked
    def _selected(self, as_of: Any, filters: Mapping[str, Any], extra: Sequence[str]) -> Any:
        """The stored work orders that ``filters`` select (with the ``extra`` columns)."""
        check_filters(filters)
        filters = {k: v for k, v in filters.items() if v is not None}
        version = self.resolve(as_of)
        key = (
            "selected",
            version,
            json.dumps({k: plain_filter(v) for k, v in filters.items()}, sort_keys=True),
            tuple(extra),
        )
        cache = self._cache
        if version is not None and key in cache:
            return cache[key].copy()
        frame = self._select(version, filters, extra)
        if version is not None:  # a version never changes; keep the latest few
            for old in [k for k in cache if k[0] == "selected"][:-7]:
                cache.pop(old, None)
            cache[key] = frame
            return frame.copy()
        return frame

    def _select(self, as_of: Any, filters: Mapping[str, Any], extra: Sequence[str]) -> Any:
        expr = pushdown(filters)
        need = set(extra) | {"work_order_id"} | columns_needed(filters)
        raw = self._scan("work_orders", as_of, sorted(need), expr)
        frame = raw.to_pandas()
        if "create_date" in frame:
            frame["create_date"] = frame["create_date"].astype("datetime64[us, UTC]")
        frame = apply_after_read(frame, filters)
        return frame[[c for c in extra if c in frame.columns]].reset_index(drop=True)

    @_locked
    def _read(
        self,
        table: str,
        as_of: Any,
        columns: Sequence[str] | None,
        filters: Mapping[str, Any],
        ids: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        check_table(table)
        version = self.resolve(as_of)  # one version for every read below: consistent frames
        self.check_synced(table, version)
        given_as_of, as_of = as_of, version
        clean = {k: plain_filter(v) for k, v in filters.items() if v is not None}
        key = (
            table,
            version,
            None if columns is None else tuple(columns),
            json.dumps(clean, sort_keys=True, default=str),
            None if ids is None else tuple(ids),
        )
        frames = self._frames
        if version is not None and key in frames:
            return frames[key].copy()
        expr = None
        order_of: dict[str, int] | None = None
        if table == "work_orders":
            expr = pushdown({k: v for k, v in filters.items() if v is not None})
        if table == "timeline" or (
            table != "task_groups"
            and (ids is not None or any(v is not None for v in filters.values()))
        ):
            months: list[str] | None = None
            if ids is None:
                sel = self._selected(
                    as_of, filters, ["work_order_id", "create_date", PARTITION]
                ).sort_values(["create_date", "work_order_id"], kind="stable")
                wanted = sel["work_order_id"].tolist()
                months = sorted(set(sel[PARTITION].tolist()))
            else:
                wanted = list(dict.fromkeys(ids))
            order_of = {w: n for n, w in enumerate(wanted)}
            if table != "timeline" or ids is not None or filters:
                id_expr = pc.field("work_order_id").isin(pa.array(wanted, pa.string()))
                if months is not None:
                    id_expr = id_expr & pc.field(PARTITION).isin(pa.array(months, pa.string()))
                expr = id_expr if expr is None else expr & id_expr
        if columns is None:  # every column: the extras too
            read: list[str] | None = None
        else:
            known = {c.name for c in SPECS[table]}
            read = [c for c in columns if c in known]
            if any(c not in known for c in columns):
                read.append(EXTRA)
            read = list(dict.fromkeys([*read, *_sort_keys(table), POS]))
        raw = self._scan(table, as_of, read, expr)
        order = _order(table, raw, order_of)
        frame = from_arrow(table, raw, columns)
        if order is not None:
            frame = frame.take(order).reset_index(drop=True)
        frame.attrs["dfs_provenance"] = {
            "dataset": self.location,
            "version": version,
            "table": table,
            "filters": clean,
            "as_of": None if given_as_of is None else plain_filter(given_as_of),
        }
        if version is not None and frame.memory_usage(deep=False).sum() < FRAME_CACHE_BYTES:
            # the last frames read are kept (a version never changes): an unchanged reload
            # is a copy; at most FRAME_CACHE frames per table
            olds = [k for k in frames if k[0] == table]
            for old in olds[: max(0, len(olds) - (FRAME_CACHE - 1))]:
                frames.pop(old, None)
            frames[key] = frame
            return frame.copy()
        return frame

    def work_orders(
        self, *, as_of: Any = None, columns: Sequence[str] | None = None, **filters: Any
    ) -> pd.DataFrame:
        """Work orders, one row each, oldest first (the frame of ``dfs.load_work_orders``)."""
        return self._read("work_orders", as_of, columns, filters)

    def tasks(
        self, *, as_of: Any = None, columns: Sequence[str] | None = None, **filters: Any
    ) -> pd.DataFrame:
        """Tasks with their states, one row per work order x task (``dfs.load_tasks``)."""
        return self._read("tasks", as_of, columns, filters)

    def timeline(
        self,
        *,
        as_of: Any = None,
        columns: Sequence[str] | None = None,
        work_order_ids: Sequence[str] | None = None,
        **filters: Any,
    ) -> pd.DataFrame:
        """Timeline rows, one per event x changed task state (``dfs.load_timeline``)."""
        if work_order_ids is not None:
            return self._read("timeline", as_of, columns, filters, ids=work_order_ids)
        return self._read("timeline", as_of, columns, filters)

    def task_groups(
        self, *, as_of: Any = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The site's task groups, one row per task (``dfs.load_task_groups``)."""
        return self._read("task_groups", as_of, columns, {})

    # -- out of core --------------------------------------------------------------------------

    # -- out of core --------------------------------------------------------------------------

    def duckdb(self, as_of: Any = None, connection: Any = None) -> Any:
        """A DuckDB connection with views ``work_orders``, ``tasks``, ``timeline`` and
        ``task_groups`` over the dataset's files at ``as_of`` (latest by default).

        The views read the Parquet files through Arrow, so no DuckDB extension is needed.
        Categorical columns are plain strings there, and value columns JSON text.
        """
        return export.duckdb(self, as_of, connection)

    def files(self, table: str, as_of: Any = None) -> list[str]:
        """The table's data files at ``as_of`` (absolute paths or URIs)."""
        check_table(table)
        version = self.table_versions(as_of)[table]
        if version is None:
            return []
        return list(open_table(self.location, table, version, self.storage_options).file_uris())

    def to_polars(self, name: str, as_of: Any = None) -> Any:
        """A ``polars.LazyFrame`` of the table ``name`` at the dataset version ``as_of``
        (latest by default): Polars scans the table's own Delta version that this dataset
        version names, with the dataset's storage options, so every table read at one
        ``as_of`` is of one consistent version. Columns are the stored ones of the pandas
        frame (no internal column): value columns (``value``, ``tags``...) are JSON text,
        categorical columns plain strings, and metadata keys the spec does not know are not
        there; rows are in file order (sort them). Polars reads the files itself: they are
        not checked against their recorded SHA-256 (:meth:`verify` does that). Needs the
        ``polars`` extra (``pip install 'dfs-analytics[polars]'``; ImportError otherwise)."""
        return export.to_polars(self, name, as_of)

    def open_version(self, table: str, version: int) -> Any:
        """The Delta table ``table`` at its own ``version`` (a ``deltalake.DeltaTable``); a
        missing or damaged version is a :class:`DatasetCorruptError`."""
        return open_table(self.location, table, version, self.storage_options)

    def to_dask(self, name: str, as_of: Any = None, columns: Sequence[str] | None = None) -> Any:
        """A Dask DataFrame over the table's files at ``as_of`` (one partition per file), with
        the columns of the pandas frames: value columns decoded from JSON, categorical
        columns as plain strings (partitions would not share their categories). The audit
        functions (``override_rates``, ``confusion``, ``drift``) accept it."""
        return export.to_dask(self, name, as_of, columns)


class DecodedFiles:
    """Data files decoded to Arrow, kept up to ``limit`` bytes (least recently used out).

    A data file never changes once written (a new version adds files and removes others),
    so a read of a new version decodes only the files that earlier reads did not: after a
    commit that touched one partition, one file per table. Not thread-safe: a
    :class:`Dataset` uses it under its lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._tables: OrderedDict[tuple[Any, ...], pa.Table] = OrderedDict()

    def read(
        self, table: str, data: pads.Dataset, fragments: Sequence[Any], columns: Sequence[str]
    ) -> pa.Table:
        """The rows of ``fragments`` (files of ``data``, a dataset of ``table``) with
        ``columns``, in fragment order: what ``data.to_table(columns=columns)`` returns."""
        if not fragments:
            return data.schema.empty_table().select(list(columns))
        shape = (table, str(data.schema), tuple(columns))
        parts = []
        for fragment in fragments:
            key = (*shape, fragment.path)
            part = self._tables.get(key)
            if part is None:
                part = fragment.to_table(schema=data.schema, columns=list(columns))
                self._keep(key, part)
            else:
                self._tables.move_to_end(key)
            parts.append(part)
        return pa.concat_tables(parts)

    def _keep(self, key: tuple[Any, ...], part: pa.Table) -> None:
        size = part.nbytes
        if size > self.limit:
            return
        self._tables[key] = part
        self.held += size
        while self.held > self.limit:
            _, old = self._tables.popitem(last=False)
            self.held -= old.nbytes

    def clear(self) -> None:
        """Forget every decoded file."""
        self._tables.clear()
        self.held = 0


def _sort_keys(table: str) -> list[str]:
    if table == "work_orders":
        return ["create_date", "work_order_id"]
    if table == "tasks":
        return ["create_date", "work_order_id"]
    if table == "timeline":
        return ["work_order_id"]
    return []


def _order(table: str, data: pa.Table, order_of: Mapping[str, int] | None) -> np.ndarray | None:
    """Row positions in the loaders' order (work orders oldest first, then the server's order
    within each), or None when the rows already are in that order. Only the key columns are
    sorted; the rows are moved once decoded, where most columns are codes or pointers."""
    if data.num_rows == 0:
        return None
    if table == "timeline" and order_of is not None:
        rank = pc.index_in(data.column("work_order_id"), pa.array(list(order_of), pa.string()))
        keys = pa.table({"_rank": rank, POS: data.column(POS)})
        spec = [("_rank", "ascending"), (POS, "ascending")]
    elif table == "timeline":
        keys = data.select(["work_order_id", POS])
        spec = [("work_order_id", "ascending"), (POS, "ascending")]
    elif table == "task_groups":
        keys = data.select([POS])
        spec = [(POS, "ascending")]
    else:
        keys = data.select(["create_date", "work_order_id", POS])
        spec = [("create_date", "ascending"), ("work_order_id", "ascending"), (POS, "ascending")]
    indices = pc.sort_indices(keys, sort_keys=spec).to_numpy()
    return None if np.array_equal(indices, np.arange(data.num_rows)) else indices
