"""The version table (``syncs``) of one dataset, read and checked: what the dataset is of (its
identity), its versions and what ``as_of`` designates, and the SHA-256 each commit recorded for
its data files, against which every data file is checked before it is used.

Every row is checked against the digest its commit recorded, every table version it names
against that table's log. A :class:`VersionTable` is shared by a :class:`Dataset` and the
:class:`Writer` that commits to it; it is thread-safe. It never writes and never reads rows of
the data tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from ..errors import (
    ConfigurationError,
    DatasetCorruptError,
    NotADatasetError,
    VersionNotFoundError,
)
from ..rules import is_missing
from .arrow import TABLES
from .filters import timestamp
from .integrity import (
    NO_LOG_FILE,
    RECORD,
    commit_record,
    damaged_file,
    file_problem,
    row_digest,
    table_dataset,
)
from .location import (
    Identity,
    last_commit,
    open_table,
    short_error,
    table_exists,
    table_uri,
    update_table,
)


class VersionTable:
    """The checked version table of the dataset at ``location``: its identity, its rows
    (one per dataset version) and the checksums its commits recorded.

    Raises :class:`NotADatasetError` when the ``syncs`` table holds no dfs-analytics
    dataset description.
    """

    def __init__(self, location: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.location = location
        self.storage_options = dict(storage_options) if storage_options else None
        self._lock = threading.RLock()  # Delta table objects must not be shared by threads
        self._dt: DeltaTable | None = None  # the syncs table, kept open
        self._frame: pd.DataFrame | None = None
        self._frame_version: int | None = None  # the syncs table's Delta version of _frame
        self._parts: dict[str, pa.Table] = {}  # syncs file -> its rows (a file never changes)
        self._records: dict[int, dict[str, Any]] = {}  # dataset version -> its commit record
        self._sums: tuple[Any, dict[str, dict[str, str]]] | None = None  # checksums(), kept
        self._records_seen = -1  # the last syncs commit whose record was read
        self._latest_dt: dict[str, DeltaTable] = {}
        self._latest_local: dict[str, int] = {}  # a local table -> its last commit seen
        self._verified: set[tuple[str, str]] = set()
        # the frame the rows below were taken from, and its rows by version (see row())
        self._rows: tuple[pd.DataFrame | None, dict[int, pd.Series]] = (None, {})
        self.identity = self._read_identity()

    @property
    def uri(self) -> str:
        """The version table's folder or URI."""
        return table_uri(self.location, "syncs")

    # -- identity -----------------------------------------------------------------------------

    def reload_identity(self, identity: Identity | None = None) -> None:
        """Take ``identity`` (a writer just changed it), or read it again from the ``syncs``
        table (another process may have rebuilt the dataset)."""
        self.identity = identity if identity is not None else self._read_identity()

    def _read_identity(self) -> Identity:
        with self._lock:
            try:
                dt = self._dt
                if dt is not None:
                    update_table(dt, self.location, "syncs")
                else:
                    dt = open_table(self.location, "syncs", storage_options=self.storage_options)
                return Identity.from_description(dt.metadata().description or "")
            except (ValueError, KeyError, TypeError):
                raise NotADatasetError(
                    f"{self.location} holds Delta tables but no dfs-analytics dataset "
                    "description; point at the folder that dfs.sync() wrote."
                ) from None

    # -- the rows -----------------------------------------------------------------------------

    def frame(self, fresh: bool = False, covering: int | None = None) -> pd.DataFrame:
        """The version table, one row per dataset version, oldest first (cached until the
        table moves on; callers must not change it), checked: each row against the digest
        its commit recorded, and each table version it names against that table's log.
        ``fresh``: every file of it is read again. ``covering``: a dataset version the caller
        needs the rows up to; when the cached rows hold it, they are returned without looking
        for newer commits (a version's row never changes)."""
        with self._lock:
            cached = self._frame
            if (
                not fresh
                and covering is not None
                and cached is not None
                and len(cached)
                and int(cached["version"].iloc[-1]) >= covering
            ):
                return cached
            if fresh:
                self._frame_version = None
                self._parts = {}
            try:
                dt = self._dt
                if dt is None:
                    dt = self._dt = open_table(
                        self.location, "syncs", storage_options=self.storage_options
                    )
                else:
                    update_table(dt, self.location, "syncs")
                delta_version = dt.version()
                if self._frame is not None and self._frame_version == delta_version:
                    return self._frame
                data = table_dataset(dt, self.location, "syncs")
                fragments = list(data.get_fragments())
                records = self._read_records(dt, delta_version, data.filesystem)
            except (OSError, pa.ArrowException, DeltaError) as exc:
                raise DatasetCorruptError(
                    f"{self.uri}: cannot read the version table ({short_error(exc)})."
                ) from None
            sums = {
                path: sha
                for meta in records.values()
                if isinstance(meta.get("syncs_file"), dict)
                for path, sha in meta["syncs_file"].items()
            }
            tables = [(f.path, self._part(data, f, sums.get(f.path))) for f in fragments]
            self._check_rows(tables, records)
            if tables:
                frame = pa.concat_tables([t for _, t in tables]).to_pandas()
            else:
                frame = data.schema.empty_table().to_pandas()
            frame = frame.sort_values("version", ignore_index=True)
            self._frame, self._frame_version = frame, delta_version
            self._sums = None
            return frame

    def _part(self, data: pads.Dataset, fragment: Any, want: str | None) -> pa.Table:
        """The rows of one file of the version table, checked against ``want``, the SHA-256
        its commit recorded (a file never changes: each is read once)."""
        if fragment.path in self._parts:
            return self._parts[fragment.path]
        problem = None if want is None else file_problem(data.filesystem, fragment.path, want)
        if problem is not None:
            raise DatasetCorruptError(
                f"{self.uri}/{fragment.path}: this file of the version table is damaged or "
                f"missing ({problem}). Restore it, or sync into a new dataset path."
            )
        try:
            part = self._parts[fragment.path] = fragment.to_table(schema=data.schema)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetCorruptError(
                f"{self.uri}/{fragment.path}: this file of the version table is damaged "
                f"({short_error(exc)}). Restore it, or sync into a new dataset path."
            ) from None
        return part

    def _read_records(
        self, dt: DeltaTable, delta_version: int, filesystem: Any
    ) -> dict[int, dict[str, Any]]:
        """What each commit of the version table recorded for its row (by dataset version):
        ``row`` (the row's digest) and ``files`` (table -> data file -> SHA-256).

        Each commit is read from its own log file, up to ``delta_version`` and no further:
        the table's history would also return commits another process made since, in place
        of older ones."""
        records = self._records
        seen = self._records_seen
        for number in range(seen + 1, delta_version + 1):
            meta = commit_record(filesystem, number)
            if meta is NO_LOG_FILE:  # a log cleaned by another tool: the whole history
                entries = dt.history() if dt.version() == delta_version else []
                for entry in entries:
                    found = entry.get(RECORD)
                    if isinstance(found, dict) and isinstance(found.get("version"), int):
                        records.setdefault(found["version"], found)
                continue
            if isinstance(meta, dict) and isinstance(meta.get("version"), int):
                records[meta["version"]] = meta
        self._records_seen = max(seen, delta_version)
        return records

    def _latest(self, table: str) -> int:
        """The last version in the table's own log (-1: no table)."""
        local = last_commit(self.location, table, self._latest_local.get(table))
        if local is not None:  # a local table: its commit files say, no log is read
            self._latest_local[table] = local
            return local
        dt = self._latest_dt.get(table)
        try:
            if dt is None:
                if not table_exists(self.location, table, self.storage_options):
                    return -1
                dt = self._latest_dt[table] = DeltaTable(
                    table_uri(self.location, table), storage_options=self.storage_options
                )
            else:
                update_table(dt, self.location, table)
            return dt.version()
        except (DeltaError, OSError, ValueError) as exc:
            raise DatasetCorruptError(
                f"{table_uri(self.location, table)}: cannot read this Delta table's log "
                f"({short_error(exc)})."
            ) from None

    def _check_rows(
        self, tables: Sequence[tuple[str, pa.Table]], records: Mapping[int, Mapping[str, Any]]
    ) -> None:
        """Every row of the version table is what its commit wrote (when the commit recorded
        a digest: releases before did not), dataset versions follow each other, and every
        table version a row names exists in that table's log."""
        where: dict[int, str] = {}
        latest: dict[str, int] = {}
        for path, part in tables:
            file = f"{self.uri}/{path}"
            for row in part.to_pylist():
                version = row.get("version")
                if not isinstance(version, int) or version < 0 or version in where:
                    raise DatasetCorruptError(
                        f"{file}: the version table holds an impossible version number "
                        f"({version!r}): the file is damaged. Restore it, or sync into a new "
                        "dataset path."
                    )
                where[version] = file
                meta = records.get(version)
                if meta is not None and meta.get("row") != row_digest(row):
                    raise DatasetCorruptError(
                        f"{file}: the row of version {version} differs from what was written "
                        "(its digest does not match): the file is damaged. Restore it, or sync "
                        "into a new dataset path."
                    )
                for t in TABLES:
                    named = row.get(f"{t}_version")
                    if named is None or named == -1:
                        continue
                    if t not in latest:
                        latest[t] = self._latest(t)
                    if not isinstance(named, int) or not 0 <= named <= latest[t]:
                        raise DatasetCorruptError(
                            f"{file}: version {version} names version {named} of the {t} "
                            f"table, whose log ends at {latest[t]}: a file is damaged. "
                            "Restore it, or sync into a new dataset path."
                        )
        lost = sorted(set(records) - set(where))
        if lost:
            raise DatasetCorruptError(
                f"{self.uri}: version {lost[0]} was written but is not in the version table any "
                "more: one of its files is damaged. Restore it, or sync into a new dataset path."
            )
        if where and sorted(where) != list(range(min(where), min(where) + len(where))):
            gap = next(v for v in sorted(where) if v - min(where) >= len(where))
            raise DatasetCorruptError(
                f"{where[gap]}: the version table jumps to version {gap}: the file is damaged. "
                "Restore it, or sync into a new dataset path."
            )

    # -- checksums ----------------------------------------------------------------------------

    def checksums(self) -> dict[str, dict[str, str]]:
        """Each table's data files -> the SHA-256 recorded when they were written (kept until
        the version table moves on; callers must not change it)."""
        with self._lock:
            self.frame()
            key = (self._frame_version, len(self._records))
            if self._sums is not None and self._sums[0] == key:
                return self._sums[1]
            out: dict[str, dict[str, str]] = {}
            for meta in self._records.values():
                files = meta.get("files")
                if isinstance(files, dict):
                    for table, sums in files.items():
                        if isinstance(sums, dict):
                            out.setdefault(str(table), {}).update(sums)
            self._sums = (key, out)
            return out

    def verify_files(self, table: str, data: pads.Dataset, paths: Iterable[str]) -> None:
        """Check each file of ``table`` against the SHA-256 recorded when it was written, once
        per file for this object (files never change; :func:`integrity.verify` always reads
        them again). Files written before checksums were recorded are not checked. A damaged
        file is a :class:`DatasetCorruptError` naming it."""
        todo = [path for path in paths if (table, path) not in self._verified]
        if not todo:
            return
        sums = self.checksums().get(table, {})
        for path in todo:
            want = sums.get(path)
            if want is None:
                continue
            problem = file_problem(data.filesystem, path, want)
            if problem is not None:
                raise damaged_file(f"{table_uri(self.location, table)}/{path}", problem)
            self._verified.add((table, path))

    # -- as_of --------------------------------------------------------------------------------

    def row(self, as_of: Any = None) -> pd.Series | None:
        """The version table's row of the version ``as_of`` designates (a version number or
        a timestamp: the last version at or before it; None: the latest, or None when there
        is no version yet). An unknown version is a :class:`VersionNotFoundError`."""
        number = isinstance(as_of, (int, np.integer)) and not isinstance(as_of, bool)
        syncs = self.frame(covering=int(as_of) if number else None)
        if not len(syncs):
            if as_of is None:
                return None
            raise VersionNotFoundError(f"as_of={as_of!r}: the dataset has no version yet.")
        if as_of is None:
            return syncs.iloc[-1]
        if number:
            rows = self._rows
            if rows[0] is not syncs:  # rows by version, for this frame (a row never changes)
                rows = self._rows = (syncs, {})
            found = rows[1].get(int(as_of))
            if found is not None:
                return found
            hit = syncs[syncs["version"] == int(as_of)]
            if not len(hit):
                raise VersionNotFoundError(
                    f"as_of={as_of}: no such version; versions go from "
                    f"{int(syncs['version'].iloc[0])} to {int(syncs['version'].iloc[-1])} "
                    "(see Dataset.history())."
                )
            found = rows[1][int(as_of)] = hit.iloc[-1]
            return found
        try:
            moment = timestamp(as_of, "as_of")
        except ConfigurationError:
            raise ConfigurationError(
                f"as_of={as_of!r} is neither a version number nor a date/time."
            ) from None
        earlier = syncs[syncs["time"] <= moment]
        if not len(earlier):
            raise VersionNotFoundError(
                f"as_of={as_of!r} is before the dataset's first version "
                f"({syncs['time'].iloc[0]:%Y-%m-%d %H:%M:%S} UTC)."
            )
        return earlier.iloc[-1]

    def table_versions(self, as_of: Any = None) -> dict[str, int | None]:
        """Each table's Delta version in the dataset version ``as_of`` (None: empty)."""
        row = self.row(as_of)
        out: dict[str, int | None] = {}
        for t in TABLES:
            v = None if row is None else row[f"{t}_version"]
            out[t] = None if v is None or is_missing(v) or int(v) < 0 else int(v)
        return out
