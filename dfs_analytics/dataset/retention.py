"""What a dataset keeps: pinned versions, versions whose files were vacuumed, and
:func:`vacuum`, which removes the data files that no kept dataset version needs.

Pins and vacuumed versions are rows of a small Delta table (``retention``) of the dataset,
written by commits that conflict with any other commit about the same version (a pin racing
a vacuum of its version: one of them fails and nothing is lost). Files are removed by
deltalake's own vacuum, told which table versions to keep (those the kept dataset versions
name). It never removes a file of the latest version, of a kept or of a pinned version, never
touches the version table or the Delta logs (they hold the checksums), and never reads rows
of the data tables.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError
from deltalake.transaction import PostCommitHookProperties

from ..errors import (
    ConfigurationError,
    DatasetCorruptError,
    VersionNotFoundError,
    VersionVacuumedError,
)
from .arrow import TABLES
from .export import TableSource
from .integrity import table_dataset
from .location import open_table, short_error, table_exists, table_uri, update_table
from .versions import VersionTable

RETENTION = "retention"  # the table of pins and vacuumed versions
PIN, VACUUMED = "pin", "vacuumed"
DEFAULT_OLDER_THAN = datetime.timedelta(days=7)  # deltalake's own default retention
_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("version", pa.int64()),
        ("note", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
    ]
)
_NO_LOG_CLEANUP = PostCommitHookProperties(cleanup_expired_logs=False)
VACUUM_COLUMNS = ["table", "file", "bytes", "versions"]


class Retention:
    """The ``retention`` table of the dataset at ``location``: pins and vacuumed versions."""

    def __init__(self, location: str, storage_options: Mapping[str, str] | None) -> None:
        self.location = location
        self.storage_options = dict(storage_options) if storage_options else None
        self.uri = table_uri(location, RETENTION)
        self._lock = threading.RLock()
        # the table as last read: a write is based on it, so it conflicts with any commit
        # about the same versions made since (None: it did not exist when last read)
        self._dt: DeltaTable | None = None
        self._frame: tuple[int, pd.DataFrame] | None = None  # (Delta version, rows)

    def frame(self) -> pd.DataFrame:
        """Every row: ``kind, version, note, time`` (empty when nothing was ever pinned or
        vacuumed), read again when the table moved on."""
        with self._lock:
            try:
                if self._dt is None:
                    if not table_exists(self.location, RETENTION, self.storage_options):
                        return _SCHEMA.empty_table().to_pandas()
                    self._dt = DeltaTable(self.uri, storage_options=self.storage_options)
                else:
                    update_table(self._dt, self.location, RETENTION)
                version = self._dt.version()
                if self._frame is None or self._frame[0] != version:
                    rows = self._dt.to_pyarrow_table().select(_SCHEMA.names).to_pandas()
                    self._frame = (version, rows)
                return self._frame[1]
            except (DeltaError, OSError, pa.ArrowException) as exc:
                raise DatasetCorruptError(
                    f"{self.uri}: cannot read the table of pins ({short_error(exc)})."
                ) from None

    def versions(self, kind: str) -> set[int]:
        """The dataset versions with a row of ``kind`` (:data:`PIN` or :data:`VACUUMED`)."""
        frame = self.frame()
        return {int(v) for v in frame.loc[frame["kind"] == kind, "version"]}

    def record(self, kind: str, versions: Iterable[int], note: str = "") -> None:
        """Write a row of ``kind`` for each version, replacing any row of those versions,
        by a commit based on the table as last read (:meth:`frame`): CommitFailedError if
        another commit about one of those versions landed since."""
        wanted = sorted({int(v) for v in versions})
        if not wanted:
            return
        now = pd.Timestamp.now(tz="UTC").floor("us")
        rows = pa.Table.from_pylist(
            [{"kind": kind, "version": v, "note": note, "time": now} for v in wanted],
            schema=_SCHEMA,
        )
        with self._lock:
            base = self._dt
            if base is None:
                # created empty first (two creations at once are harmless), and written as
                # of that empty version: a row another process wrote since conflicts
                write_deltalake(
                    self.uri,
                    _SCHEMA.empty_table(),
                    mode="append",
                    storage_options=self.storage_options,
                )
                base = DeltaTable(self.uri, version=0, storage_options=self.storage_options)
            write_deltalake(
                base,
                rows,
                mode="overwrite",
                predicate=f"version IN ({', '.join(str(v) for v in wanted)})",
                storage_options=self.storage_options,
                post_commithook_properties=_NO_LOG_CLEANUP,
            )
            self._dt = None  # read again next time
            self._frame = None


def retained(
    syncs: pd.DataFrame,
    *,
    keep_versions: int | None,
    older_than: datetime.timedelta | str | None,
    keep: Iterable[int],
    pinned: Iterable[int],
) -> set[int]:
    """The dataset versions a vacuum keeps readable: the latest, ``keep``, ``pinned``, the
    last ``keep_versions`` and those younger than ``older_than`` (both None: younger than
    :data:`DEFAULT_OLDER_THAN`)."""
    versions = [int(v) for v in syncs["version"]]
    if not versions:
        return set()
    kept = {versions[-1], *(int(p) for p in pinned)}
    for v in keep:
        if int(v) not in versions:
            raise VersionNotFoundError(f"keep={v}: the dataset has no such version.")
        kept.add(int(v))
    if keep_versions is not None:
        if keep_versions < 1:
            raise ConfigurationError("keep_versions must be at least 1 (the latest version).")
        kept.update(versions[-keep_versions:])
    if older_than is None and keep_versions is None:
        older_than = DEFAULT_OLDER_THAN
    if older_than is not None:
        try:
            age = pd.Timedelta(older_than)
        except ValueError:
            raise ConfigurationError(
                f"older_than={older_than!r} is not a duration (e.g. '30d', '12h')."
            ) from None
        cutoff = pd.Timestamp.now(tz="UTC") - age
        kept.update(
            int(v) for v, t in zip(syncs["version"], syncs["time"], strict=True) if t > cutoff
        )
    return kept


def vacuum(
    versions: VersionTable,
    retention: Retention,
    kept: set[int],
    gone: set[int],
    dry_run: bool,
) -> pd.DataFrame:
    """Remove (``dry_run``: list) the data files no dataset version of ``kept`` needs; see
    :meth:`Dataset.vacuum`. ``gone`` are the versions already vacuumed, read from the
    retention table with the pins that ``kept`` holds: the versions that lose a file are
    recorded as vacuumed, by a commit that fails if a pin landed since, before any file is
    removed."""
    location, options = versions.location, versions.storage_options
    syncs = versions.frame(fresh=True)
    plans: dict[str, tuple[DeltaTable, list[int], list[str]]] = {}
    for table in TABLES:
        if not table_exists(location, table, options):
            continue
        named = syncs.loc[syncs["version"].isin(kept), f"{table}_version"].dropna()
        need = sorted({int(v) for v in named if v >= 0})
        dt = DeltaTable(table_uri(location, table), storage_options=options)
        files = dt.vacuum(
            retention_hours=0,
            enforce_retention_duration=False,
            dry_run=True,
            keep_versions=need,
        )
        plans[table] = (dt, need, sorted(files))
    rows = []
    lost: set[int] = set()
    for table, (_, _, listed) in plans.items():
        if not listed:
            continue
        fs = TableSource(table_uri(location, table), options).filesystem()
        # deltalake lists every file its log removed, those a vacuum already deleted too
        sizes = {
            i.path: i.size for i in fs.get_file_info(listed) if i.type != pafs.FileType.NotFound
        }
        files = [f for f in listed if f in sizes]
        removed = set(files)
        users: dict[str, list[int]] = {f: [] for f in files}
        for d, tv in zip(syncs["version"], syncs[f"{table}_version"], strict=True):
            if d in kept or d in gone or tv is None or pd.isna(tv) or int(tv) < 0:
                continue
            for f in _files(location, table, int(tv), options) & removed:
                users[f].append(int(d))
        for f in files:
            lost.update(users[f])
            rows.append((table, f, sizes.get(f), sorted(users[f])))
    out = pd.DataFrame(rows, columns=VACUUM_COLUMNS)
    out["bytes"] = out["bytes"].astype("Int64")
    out.attrs["unreadable_versions"] = sorted(lost)
    out.attrs["dry_run"] = dry_run
    if dry_run or not rows:
        return out
    retention.record(VACUUMED, lost, "vacuumed")  # fails if one was pinned meanwhile
    for dt, need, _ in plans.values():
        dt.vacuum(
            retention_hours=0,
            enforce_retention_duration=False,
            dry_run=False,
            keep_versions=need,
            post_commithook_properties=_NO_LOG_CLEANUP,
        )
    return out


def _files(location: str, table: str, version: int, options: Mapping[str, str] | None) -> set[str]:
    """The data files (paths relative to the table) of one version of a table."""
    data = table_dataset(open_table(location, table, version, options), location, table)
    return {f.path for f in data.get_fragments()}


def check_not_vacuumed(retention: Retention, version: int, latest: int | None) -> None:
    """Raise :class:`VersionVacuumedError` when ``version`` (not the latest, which is never
    vacuumed) had its files removed by a vacuum."""
    if version != latest and version in retention.versions(VACUUMED):
        raise VersionVacuumedError(
            f"as_of={version}: this version's files were removed by Dataset.vacuum() (its row "
            "is still in Dataset.history()); read a later version, or pin the versions you "
            "need (Dataset.pin) before vacuuming."
        )
