"""Writing a dataset: :class:`Writer` commits batches of stored rows (built by
:mod:`dfs_analytics.syncing`), each commit one dataset version whose ``syncs`` row names every
table's version and records the SHA-256 of each new data file. It creates a new dataset bound
to one site, rebuilds one of another schema version, rewrites partitions an older release left
in another Arrow schema, and compacts small files.

It never speaks HTTP (the rows come built), never holds a secret and never pickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, CommitProperties, PostCommitHookProperties

from ..errors import (
    DatasetCorruptError,
    NotADatasetError,
    ReadOnlyDatasetError,
    SiteMismatchError,
)
from ..files import open_no_follow
from .arrow import PARTITION, POS, SCHEMA_VERSION, SYNCS_SCHEMA, TABLES, arrow_schema
from .integrity import ONE_AT_A_TIME, RECORD, local_table, row_digest, sha256, table_dataset
from .location import (
    Identity,
    check_credentials,
    is_uri,
    local_path,
    short_error,
    site_of,
    table_exists,
    table_uri,
    update_table,
)
from .locks import (
    check_conditional_writes,
    check_writable,
    commit_lock,
    owner_only,
    split_options,
    writing,
)
from .reader import Dataset

_ATTEMPTS = 10  # commits tried before a conflict with other writers is reported
STATS_TRUNCATE = 64  # characters of a string kept in the Delta log's min/max statistics
# min/max statistics of long strings are truncated (a 50 MB name would land in the log twice)
_WRITER_PROPS = WriterProperties(compression="ZSTD", statistics_truncate_length=STATS_TRUNCATE)


def _paths(dt: DeltaTable) -> list[str]:
    """The data files of the table's current version, by their path in its log (as a
    ``pyarrow`` dataset of the table names them), read from the log's add actions: no
    dataset of the files is built."""
    return [str(p) for p in dt.get_add_actions(flatten=False).column("path").to_pylist()]


class Writer:
    """Commits batches to a dataset; each :meth:`commit` is one dataset version.

    ``site`` binds a new dataset to a site; an existing dataset of another site is refused.
    ``private`` keeps folders 0700 and files 0600 (the user's own dataset).

    Any number of processes may write one dataset at once, each version number is taken by
    one commit only: on local folders they take turns (a file lock); on object stores the
    version row is written with a Delta commit that conflicts with any other commit of that
    version (the loser retries with the next number), and rows are never appended blindly
    (a work order's rows replace whatever another writer stored for it), so no lock is
    needed. That relies on the store's conditional writes: an S3 dataset whose options turn
    them off (``AWS_S3_ALLOW_UNSAFE_RENAME=true``, ``aws_conditional_put=disabled``) is
    refused with :class:`DatasetLocationError` unless ``single_writer=True`` (or the storage
    option ``dfs_single_writer='true'``) says this process is the dataset's only writer.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        site: str,
        *,
        private: bool = False,
        storage_options: Mapping[str, str] | None = None,
        single_writer: bool = False,
    ) -> None:
        self.location = os.fspath(location)
        self.site = site_of(site)
        self.private = private
        self.storage_options, single = split_options(storage_options)
        check_credentials(self.location, self.storage_options)  # also refuses bad schemes
        check_conditional_writes(self.location, self.storage_options, single_writer or single)
        # other processes may commit at any time, with no lock: never append blindly
        self.shared = is_uri(self.location)
        self.reset: set[str] = set()  # tables to overwrite at their next write (new schema)
        self._tables: dict[str, DeltaTable] = {}  # kept open: reopening a table reads its log
        self._current: set[str] | None = None  # during a commit: tables known up to date
        self._lock = threading.RLock()
        # (Delta version of ``syncs``, dataset version) of this writer's last commit
        self._syncs_seen: tuple[int, int] | None = None
        local = local_path(self.location)
        if local is not None:
            try:
                local.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
            except OSError as exc:
                raise ReadOnlyDatasetError(
                    f"cannot create the dataset folder {local} ({exc.strerror}); choose a "
                    "writable path with Client(dataset=...) or DFS_DATASET."
                ) from None
            check_writable(local)
        self._conforming: set[tuple[str, str]] = set()  # files known to hold the table's schema
        self._conformed: dict[str, int] = {}  # table -> its last version known to conform
        self._filesystems: dict[str, Any] = {}  # table -> the file system of its data files
        self._checked_at: int | None = None  # the syncs table's version refresh() last checked
        self.dataset = self._open_or_create()
        if self.dataset.schema_version != SCHEMA_VERSION:
            self._rebuild()
        self._conform()
        self._mark_checked()

    def _mark_checked(self) -> None:
        """Remember the version table's commit that :meth:`refresh` has now checked."""
        checked = self._dt("syncs")
        self._checked_at = None if checked is None else checked.version()

    def _exists(self, table: str) -> bool:
        return table_exists(self.location, table, self.storage_options)

    def _open_or_create(self) -> Dataset:
        if not self._exists("syncs"):
            self._check_empty()  # before anything is written there (the lock file)
            identity = Identity(self.site, SCHEMA_VERSION)
            with commit_lock(self.location), owner_only(self.private):
                if not self._exists("syncs"):  # checked again: another writer may be first
                    self._check_empty()
                    # on object stores another process may create it at the same moment:
                    # its empty creation commit then follows ours (or fails), both harmless
                    with contextlib.suppress(CommitFailedError):
                        self._write(
                            "syncs",
                            SYNCS_SCHEMA.empty_table(),
                            mode="append",
                            description=identity.description(),
                        )
        ds = Dataset(self.location, storage_options=self.storage_options)
        if ds.site != self.site:
            raise SiteMismatchError(
                f"the dataset at {self.location} holds {ds.site}, not {self.site}: a dataset "
                "belongs to one site. Use another path for this site (Client(dataset=...))."
            )
        return ds

    def _check_empty(self) -> None:
        """A new dataset goes into an empty folder only (or one holding only our own files)."""
        if any(self._exists(t) for t in TABLES) and not self._exists("syncs"):
            raise NotADatasetError(
                f"{self.location} holds Delta tables but no dfs-analytics 'syncs' table; sync "
                "into an empty folder instead."
            )
        local = local_path(self.location)
        if (
            local is not None
            and local.exists()
            and any(
                # our own files, and a version table another process is creating right now
                p.name not in ("_dfs.lock", "syncs") and not p.name.startswith(".dfs-write-probe-")
                for p in local.iterdir()
            )
        ):
            raise NotADatasetError(
                f"{self.location} is not empty and holds no dfs-analytics dataset; sync into "
                "an empty or new folder."
            )

    def refresh(self) -> None:
        """Check the dataset again before a sync (another process may have rebuilt or
        replaced it): same site, current schema."""
        # a kept table object does not notice that its folder was removed
        syncs = self._dt("syncs") if self._exists("syncs") else None
        if syncs is None:
            raise NotADatasetError(f"the dataset at {self.location} disappeared; sync again.")
        if syncs.version() == self._checked_at:
            return  # no commit since the last check: every commit ends with a version row
        self.dataset.versions.reload_identity()
        if self.dataset.site != self.site:
            raise SiteMismatchError(
                f"the dataset at {self.location} now holds {self.dataset.site}, not "
                f"{self.site}: a dataset belongs to one site."
            )
        if self.dataset.schema_version != SCHEMA_VERSION:
            self._rebuild()
        self._conform()
        self._mark_checked()

    def _rebuild(self) -> None:
        """A dataset written by another release (another schema version): one version that
        empties every table under the current schema, so the next sync reads everything
        again. Older versions stay readable with ``as_of``."""
        ds = self.dataset
        old = ds.schema_version
        with commit_lock(self.location):
            ds.versions.reload_identity()  # another process may have rebuilt it
            if ds.schema_version == SCHEMA_VERSION:
                return
            present = [t for t in TABLES if self._exists(t)]
            self.reset = set(present)
            self._commit(
                {t: (None, []) for t in present},
                {"filters": {"rebuilt_from_schema_version": old}, "complete": False},
            )

    def _foreign_months(self, table: str) -> set[str]:
        """The partitions of the table's latest version holding a file whose Arrow schema is
        not the table's (earlier releases let delta-rs's delete write ``string_view``
        columns, which pyarrow and DuckDB cannot filter alongside ``string`` ones). Each
        file's footer is read once per writer."""
        dt = self._dt(table)
        if dt is None or self._conformed.get(table) == dt.version():
            return set()
        version = dt.version()
        if all((table, path) in self._conforming for path in _paths(dt)):
            self._conformed[table] = version  # no file footer to read: none is new
            return set()
        want = arrow_schema(table)
        data = table_dataset(dt, self.location, table)
        months: set[str] = set()
        for fragment in data.get_fragments():
            if (table, fragment.path) in self._conforming:
                continue
            try:
                have = fragment.physical_schema
            except (OSError, pa.ArrowException) as exc:
                raise DatasetCorruptError(
                    f"{table_uri(self.location, table)}/{fragment.path}: this data file cannot "
                    f"be read ({short_error(exc)}). Restore it, or sync into a new dataset path."
                ) from None
            if any(f.name in want.names and f.type != want.field(f.name).type for f in have):
                value = pads.get_partition_keys(fragment.partition_expression).get(PARTITION)
                months.add(str(value))
            else:
                self._conforming.add((table, fragment.path))
        if not months:
            self._conformed[table] = version
        return months

    def _conform(self) -> None:
        """Rewrite, as one new dataset version, every partition holding a file of another
        Arrow schema (see :meth:`_foreign_months`) with the table's own schema, so that
        every file of the latest version reads and filters alike. Rows do not change."""
        if not any([self._foreign_months(t) for t in TABLES]):
            return
        with commit_lock(self.location), owner_only(self.private):
            rewritten: dict[str, list[str]] = {}
            for table in TABLES:
                for month in sorted(self._foreign_months(table)):
                    latest = self._latest_data(table)
                    assert latest is not None
                    rows = latest.to_table(filter=pc.field(PARTITION) == month)
                    rows = rows.select(arrow_schema(table).names).cast(arrow_schema(table))
                    rows = rows.sort_by([(POS, "ascending")])
                    self._write(
                        table,
                        rows,
                        mode="overwrite",
                        predicate=_in_predicate(PARTITION, [month]),
                        partition_by=_part(table),
                    )
                    rewritten.setdefault(table, []).append(month)
            if rewritten:
                self._commit_tables({}, {"filters": {"rewritten_partitions": rewritten}})

    def _dt(self, table: str) -> DeltaTable | None:
        """The table, kept open and brought up to date (None: it does not exist yet)."""
        with self._lock:
            return self._dt_unlocked(table)

    def _dt_unlocked(self, table: str) -> DeltaTable | None:
        dt = self._tables.get(table)
        if dt is None:
            uri = table_uri(self.location, table)
            if not DeltaTable.is_deltatable(uri, self.storage_options):
                return None
            dt = self._tables[table] = DeltaTable(uri, storage_options=self.storage_options)
        elif self._current is None or table not in self._current:
            update_table(dt, self.location, table)
        if self._current is not None:
            self._current.add(table)
        return dt

    def _write(self, table: str, data: pa.Table, **kw: Any) -> None:
        description = kw.pop("description", None)
        kept = self._tables.get(table)
        before = kept.version() if kept is not None else None
        target: Any = kept or table_uri(self.location, table)
        with writing(self.location):
            write_deltalake(
                target,
                data,
                storage_options=self.storage_options,
                description=description,
                writer_properties=_WRITER_PROPS,
                **kw,
            )
        # the files this write added hold the table's own schema: when it is the only commit
        # since a version known to conform, the new version conforms too (no file footer
        # needs reading before the next sync). The kept table object is at the version the
        # write committed (write_deltalake moves it on).
        if (
            kept is not None
            and before is not None
            and self._conformed.get(table) == before
            and kept.version() == before + 1
        ):
            self._conformed[table] = before + 1
        elif kept is None and not self.shared:
            # this write created the table (a table that exists is kept open before it is
            # written; local writes hold the commit lock): its first version conforms
            self._conformed[table] = 0

    def commit(
        self,
        changes: Mapping[str, tuple[Any, ...]],
        stats: Mapping[str, Any],
    ) -> int:
        """Write one batch and record it as a new dataset version; returns that version.

        ``changes`` maps a table to (rows, work order ids[, months]): the stored rows of those
        work orders are replaced by ``rows`` (None or empty: deleted); ``months``, when
        given, are the partitions the stored rows can be in besides the rows' own.
        ``task_groups`` is replaced whole. Conflicting concurrent commits are retried.
        """
        with commit_lock(self.location):
            for attempt in range(_ATTEMPTS):
                try:
                    return self._commit(changes, stats)
                except CommitFailedError:
                    if attempt == _ATTEMPTS - 1:
                        raise
                    # another process committed meanwhile: start again from its state
                    time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
        raise AssertionError("unreachable")

    def _commit(
        self,
        changes: Mapping[str, tuple[Any, ...]],
        stats: Mapping[str, Any],
    ) -> int:
        # under the commit lock nobody else commits here: each table's log is read once per
        # attempt (a write moves the kept table object to the version it committed)
        self._current = set()
        try:
            with owner_only(self.private):
                return self._commit_tables(changes, stats)
        finally:
            self._current = None

    def _commit_tables(
        self,
        changes: Mapping[str, tuple[Any, ...]],
        stats: Mapping[str, Any],
    ) -> int:
        ds = self.dataset
        # one table after another: written at once, their encoders' buffers added up (a cold
        # sync of 20,000 work orders peaked 16 MB higher), for a commit no faster on 2 cores
        for table, change in changes.items():
            self._replace(table, *change)
        versions = {}
        for t in TABLES:
            dt = self._dt(t)
            versions[f"{t}_version"] = -1 if dt is None else dt.version()
        syncs = self._dt("syncs")
        assert syncs is not None
        seen = self._syncs_seen
        if seen is not None and seen[0] == syncs.version():  # nobody else committed since
            version = seen[1] + 1
        else:
            current = syncs.to_pyarrow_table(columns=["version"]).column("version")
            version = (pc.max(current).as_py() if len(current) else -1) + 1
        row = {
            "version": version,
            "time": pd.Timestamp.now(tz="UTC").floor("us"),
            "schema_version": SCHEMA_VERSION,
            "filters": json.dumps(stats.get("filters") or {}, sort_keys=True, default=str),
            **{k: int(stats.get(k, 0)) for k in ("listed", "fetched", "updated", "deleted")},
            "timelines": int(stats.get("timelines", 0)),
            "requests": int(stats.get("requests", 0)),
            "seconds": float(stats.get("seconds", 0.0)),
            "complete": bool(stats.get("complete", False)),
            "with_timelines": bool(stats.get("with_timelines", False)),
            **versions,
        }
        data = pa.Table.from_pylist([row], schema=SYNCS_SCHEMA)
        record = {
            "version": version,
            "row": row_digest(data.to_pylist()[0]),
            "files": self._new_checksums(),
        }
        kw: dict[str, Any] = {
            "commit_properties": CommitProperties(custom_metadata={RECORD: record}),
            # the log holds the checksums: it is never cleaned up (it is small)
            "post_commithook_properties": PostCommitHookProperties(cleanup_expired_logs=False),
        }
        if ds.schema_version != SCHEMA_VERSION:
            self._write("syncs", data, mode="append", schema_mode="merge", **kw)
            identity = Identity(self.site, SCHEMA_VERSION)
            syncs = self._dt("syncs")
            assert syncs is not None
            syncs.alter.set_table_description(identity.description())
            ds.versions.reload_identity(identity)
        else:
            self._append_syncs(data, record, kw)
        written = self._dt("syncs")
        self._syncs_seen = (written.version(), version) if written is not None else None
        return version

    def _append_syncs(self, data: pa.Table, record: dict[str, Any], kw: dict[str, Any]) -> None:
        """Append the version row: on local datasets, a Parquet file written here by pyarrow,
        with page checksums, whose SHA-256 the same commit records (delta-rs writes neither);
        on object stores, through delta-rs (the row's digest still protects it)."""
        import uuid

        import pyarrow.parquet as pq

        dt = self._dt("syncs")
        assert dt is not None
        local = local_path(self.location)
        if local is None:
            # no lock across processes here: a commit that conflicts with any other commit
            # of this version number (it "reads" the row it writes), so of two writers that
            # took the same number one gets CommitFailedError and retries with the next
            self._write(
                "syncs",
                data,
                mode="overwrite",
                predicate=f"version = {int(record['version'])}",
                **kw,
            )
            return
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="zstd", write_page_checksum=True)
        body = sink.getvalue().to_pybytes()
        name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        record["syncs_file"] = {name: hashlib.sha256(body).hexdigest()}
        try:
            fd = open_no_follow(
                local / "syncs" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, what="file"
            )
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise ReadOnlyDatasetError(
                f"cannot write the dataset at {self.location} ({exc.strerror})."
            ) from None
        stats = {
            "numRecords": data.num_rows,
            "minValues": {"version": record["version"]},
            "maxValues": {"version": record["version"]},
            "nullCount": {"version": 0},
        }
        add = AddAction(
            path=name,
            size=len(body),
            partition_values={},
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=json.dumps(stats),
        )
        kw["commit_properties"] = CommitProperties(custom_metadata={RECORD: record})
        dt.create_write_transaction([add], "append", dt.schema(), **kw)
        # the transaction leaves the kept object at the version before it: move it on, so
        # that the next commit knows its version number without reading the table (the
        # version is committed: failing to move on only costs that read)
        with contextlib.suppress(DeltaError, OSError):
            dt.update_incremental()

    def _new_checksums(self) -> dict[str, dict[str, str]]:
        """The SHA-256 of each data file of the tables' latest versions that no commit has
        recorded yet (those this commit wrote, and those a compaction wrote)."""
        known = self.dataset.versions.checksums()
        out: dict[str, dict[str, str]] = {}
        for table in TABLES:
            dt = self._dt(table)
            if dt is None:
                continue
            have = known.get(table, {})
            added = [path for path in _paths(dt) if path not in have]
            if added:
                filesystem = self._filesystem(table, dt)
                out[table] = {path: sha256(filesystem, path) for path in added}
        return out

    def _filesystem(self, table: str, dt: DeltaTable) -> Any:
        """The file system the table's data files are read through (by their path in the
        log; local files mapped), made once per table."""
        fs = self._filesystems.get(table)
        if fs is None:
            fs = self._filesystems[table] = table_dataset(
                dt, self.location, table, mapped=True
            ).filesystem
        return fs

    def _latest_data(self, table: str) -> pads.Dataset | None:
        """The table's files at its latest version, checked against their checksums."""
        dt = self._dt(table)
        if dt is None:
            return None
        data = table_dataset(dt, self.location, table)
        self.dataset.versions.verify_files(table, data, (f.path for f in data.get_fragments()))
        return data

    def _replace(
        self,
        table: str,
        rows: pa.Table | None,
        ids: Sequence[str],
        months: Iterable[str] | None = None,
    ) -> None:
        exists = self._dt(table) is not None
        empty = rows is None or rows.num_rows == 0
        if table in self.reset:
            self.reset.discard(table)
            if not empty:
                self._write(
                    table,
                    rows,
                    mode="overwrite",
                    schema_mode="overwrite",
                    partition_by=_part(table),
                )
            elif exists:
                self._write(
                    table,
                    arrow_schema(table).empty_table(),
                    mode="overwrite",
                    schema_mode="overwrite",
                    partition_by=_part(table),
                )
            return
        if not exists:
            if empty:
                return
            if not self.shared:
                self._write(table, rows, mode="append", partition_by=_part(table))
                return
            # another process may create the table at the same moment: create it empty (two
            # creations are harmless), then replace the rows of these work orders as below,
            # which conflicts with the other writer's rows instead of adding to them
            self._write(
                table, arrow_schema(table).empty_table(), mode="append", partition_by=_part(table)
            )
            self._dt(table)
        if table == "task_groups":
            self._write(
                table,
                rows if not empty else arrow_schema(table).empty_table(),
                mode="overwrite",
                partition_by=_part(table),
            )
            return
        if months is not None and rows is not None:
            months = set(months) | set(rows.column(PARTITION).to_pylist())
        stored, found_in = self._stored_ids(table, ids, months)
        if not stored and not self.shared:
            if not empty:
                self._write(table, rows, mode="append", partition_by=_part(table))
            return
        where = set(found_in)
        if rows is not None:
            where |= set(rows.column(PARTITION).to_pylist())
        in_months = _in_predicate(PARTITION, sorted(where)) + " AND "
        if empty and not stored:
            return
        if empty:
            # not DeltaTable.delete: it rewrites the files it touches with another Arrow
            # schema (string_view), which pyarrow and DuckDB then cannot filter alongside
            # the other files. An overwrite of nothing under the same predicate removes the
            # same rows and writes what remains of those files with the table's own schema.
            predicate = in_months + _in_predicate("work_order_id", sorted(stored))
            self._write(
                table,
                arrow_schema(table).empty_table(),
                mode="overwrite",
                predicate=predicate,
                partition_by=_part(table),
            )
            return
        predicate = in_months + _in_predicate("work_order_id", sorted(set(ids)))
        self._write(table, rows, mode="overwrite", predicate=predicate, partition_by=_part(table))

    def stored_table(self, table: str) -> pa.Table | None:
        """The whole table at its latest version, in a stable row order (None: no table)."""
        latest = self._latest_data(table)
        if latest is None:
            return None
        data = latest.to_table()
        data = data.select(arrow_schema(table).names).cast(arrow_schema(table))
        return data.sort_by([(POS, "ascending")])

    def stored_rows(self, table: str, ids: Sequence[str]) -> pa.Table:
        """The stored rows (every stored column) of these work orders, at the latest
        table version."""
        latest = self._latest_data(table)
        if latest is None:
            return arrow_schema(table).empty_table()
        data = latest.to_table(
            filter=pc.field("work_order_id").isin(pa.array(list(ids), pa.string()))
        )
        return data.select(arrow_schema(table).names).cast(arrow_schema(table))

    def _stored_ids(
        self, table: str, ids: Sequence[str], months: Iterable[str] | None
    ) -> tuple[set[str], set[str]]:
        """Which of ``ids`` the table holds, and in which partitions (only ``months`` are
        searched when given: a work order's month never changes)."""
        if not ids or self._dt(table) is None:
            return set(), set()
        expr = pc.field("work_order_id").isin(pa.array(list(ids), pa.string()))
        if months is not None:
            expr = pc.field(PARTITION).isin(pa.array(sorted(months), pa.string())) & expr
        dt = self._dt(table)
        assert dt is not None
        data = table_dataset(dt, self.location, table, mapped=True)
        self.dataset.versions.verify_files(
            table, data, [f.path for f in data.get_fragments(filter=expr)]
        )
        # local files one at a time, mapped; object stores fetch theirs at once (their latency
        # hidden)
        lean = ONE_AT_A_TIME if local_table(dt, self.location, table) is not None else {}
        found = data.to_table(columns=["work_order_id", PARTITION], filter=expr, **lean)
        return (
            set(found.column("work_order_id").to_pylist()),
            set(found.column(PARTITION).to_pylist()),
        )

    def optimize(self) -> None:
        """Compact the small files that batch commits leave (not a new dataset version: the
        data are unchanged)."""
        with commit_lock(self.location), owner_only(self.private):
            for table in TABLES:
                dt = self._dt(table)
                if dt is not None:
                    with contextlib.suppress(CommitFailedError):
                        # one partition at a time: each task holds its files' rows
                        dt.optimize.compact(writer_properties=_WRITER_PROPS, max_concurrent_tasks=1)

    def small_files(self) -> int:
        """How many data files the tables have (to decide when to compact)."""
        n = 0
        for table in TABLES:
            dt = self._dt(table)
            if dt is not None:
                n += len(dt.file_uris())
        return n


def _part(table: str) -> list[str]:
    return [PARTITION]


def _in_predicate(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"
