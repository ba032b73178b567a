"""The on-disk dataset: Delta Lake tables of one site, versioned, shared, read out of core.

Layout (one folder or object-store prefix per site)::

    <root>/work_orders/   Delta table, one row per work order      key work_order_id
    <root>/tasks/         one row per work order x task            key (work_order_id, task_id)
    <root>/timeline/      one row per event x changed task state   key (work_order_id, event_id,
                                                                        task_id)
    <root>/task_groups/   one row per task of each task group      key (task_group_id, task_id)
    <root>/syncs/         one row per dataset version: when, what the sync did, and the
                          version of each table above at that moment

The first four tables are partitioned by the work order's creation month (``create_month``,
``YYYY-MM``), which never changes. The dataset's version is the ``syncs`` table's last row:
reading a version reads every table at the version that row names, so the frames of one
version are always consistent (never tasks of one sync with a timeline of another). A table
commit that a crash left without its ``syncs`` row is invisible until a later commit names it.

Columns are stored as Arrow types: strings (categoricals are decoded on read), UTC
timestamps, nullable booleans and integers; every data file holds its table's schema,
whatever wrote it (deleted rows are removed by rewriting their files through the same writer,
and a writer rewrites any partition an older release left in another schema). Values whose
type varies by task (``value``, ``analyzed_value``, lists such as ``tags``) are stored as JSON
text, and keys the spec does not know (``metadata.<key>``, ...) as one JSON object per row
(``_extra``). Nothing is ever pickled: reading the dataset never runs code.

Integrity: delta-rs (the writer) cannot write Parquet page checksums, so every commit records
the SHA-256 of each data file it adds, and a digest of its own ``syncs`` row, in the metadata
of the ``syncs`` commit (the Delta log). Readers check each data file against it before using
it (once per file per open :class:`Dataset`), check every ``syncs`` row against its digest and
every table version it names against that table's log, and pyarrow verifies page checksums in
any file that has them. A damaged file is a :class:`DatasetCorruptError` naming it, never a
different frame; :meth:`Dataset.verify` re-reads every file and lists what failed. Files written
by releases that did not record checksums are read unchecked, and ``verify()`` lists them.
Column statistics in the Delta log are truncated to ``STATS_TRUNCATE`` characters, so a huge
string never lands in the log.

``Dataset`` reads; :class:`Writer` (used by :mod:`dfs_analytics.syncing`) writes. This module
never speaks HTTP (it takes from :mod:`~dfs_analytics.client` only the filter names and the
date parser, so that both sides read a filter alike), never holds a secret, and never pickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, PostCommitHookProperties

from . import normalize
from .errors import (
    ConfigurationError,
    DatasetCorruptError,
    DatasetError,
    DatasetLocationError,
    NotADatasetError,
    ReadOnlyDatasetError,
    SiteMismatchError,
    VersionNotFoundError,
)
from .files import file_lock, open_no_follow
from .query import LIST_FILTERS, to_api_date
from .rules import is_missing

SCHEMA_VERSION = 2  # 2: tasks gained ai_verdict, verdict, is_verdict_overridden
FRAME_CACHE = 2  # decoded frames kept per table (the latest reads)
FRAME_CACHE_BYTES = 64 * 2**20  # larger frames are not kept
FORMAT = "dfs-analytics"
STATS_TRUNCATE = 64  # characters of a string kept in the Delta log's min/max statistics
TABLES = ("work_orders", "tasks", "timeline", "task_groups")
SPECS: dict[str, tuple[normalize.Column, ...]] = {
    "work_orders": normalize.WORK_ORDER_SPEC,
    "tasks": normalize.TASK_SPEC,
    "timeline": normalize.TIMELINE_SPEC,
    "task_groups": normalize.TASK_GROUP_SPEC,
}
KEYS: dict[str, tuple[str, ...]] = {
    "work_orders": ("work_order_id",),
    "tasks": ("work_order_id", "task_id"),
    "timeline": ("work_order_id", "event_id", "task_id"),
    "task_groups": ("task_group_id", "task_id"),
}
PARTITION = "create_month"
NO_MONTH = "none"  # partition of rows whose work order has no creation date
# stored columns that are not frame columns
POS, EXTRA = "_pos", "_extra"
SYNCED_AT, TIMELINE_AT = "_synced_at", "_timeline_update_date"
_INTERNAL = {PARTITION, POS, EXTRA, SYNCED_AT, TIMELINE_AT}

_ARROW = {
    "string": pa.string(),
    "category": pa.string(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
    "Int64": pa.int64(),
    "float": pa.float64(),
    "object": pa.string(),  # JSON text
}
_SYNCS_SCHEMA = pa.schema(
    [
        ("version", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("schema_version", pa.int64()),
        ("filters", pa.string()),
        ("listed", pa.int64()),
        ("fetched", pa.int64()),
        ("updated", pa.int64()),
        ("deleted", pa.int64()),
        ("timelines", pa.int64()),
        ("requests", pa.int64()),
        ("seconds", pa.float64()),
        ("complete", pa.bool_()),
        ("with_timelines", pa.bool_()),
        *((f"{t}_version", pa.int64()) for t in TABLES),
    ]
)


def arrow_schema(table: str) -> pa.Schema:
    """The stored schema of one table."""
    fields = [pa.field(c.name, _ARROW[c.kind]) for c in SPECS[table]]
    fields.append(pa.field(POS, pa.int64()))
    fields.append(pa.field(EXTRA, pa.string()))
    if table == "work_orders":
        fields.append(pa.field(SYNCED_AT, pa.timestamp("us", tz="UTC")))
        fields.append(pa.field(TIMELINE_AT, pa.timestamp("us", tz="UTC")))
    fields.append(pa.field(PARTITION, pa.string()))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------
# frames <-> Arrow
# --------------------------------------------------------------------------------------------


def _json(value: Any) -> str | None:
    """``value`` as compact JSON text; None for a missing value (None, NaN, NA, NaT)."""
    if is_missing(value):
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _json_array(values: Iterable[Any]) -> pa.Array:
    """A column of Python values as JSON text, encoding each distinct scalar once."""
    memo: dict[tuple[type, Any], str | None] = {}
    out: list[str | None] = []
    for v in values:
        if isinstance(v, (str, bool, int, float)) or v is None:
            key = (type(v), v)
            text = memo.get(key, _MISSING)
            if text is _MISSING:
                text = memo[key] = _json(v)
            out.append(text)  # type: ignore[arg-type]
        else:
            out.append(_json(v))
    return pa.array(out, type=pa.string())


_MISSING: Any = object()


def month_of(dates: pd.Series) -> np.ndarray:
    """``YYYY-MM`` of each UTC date (``none`` where missing): the partition value."""
    out = dates.dt.strftime("%Y-%m").astype(object).to_numpy().copy()
    out[pd.isna(dates).to_numpy()] = NO_MONTH
    return out


def to_arrow(table: str, frame: pd.DataFrame, months: Sequence[str] | np.ndarray) -> pa.Table:
    """One frame of ``table`` (as ``normalize`` builds it, plus the internal columns that are
    present) as an Arrow table of the stored schema. ``months`` is each row's partition."""
    schema = arrow_schema(table)
    spec_names = {c.name for c in SPECS[table]}
    arrays: list[pa.Array] = []
    n = len(frame)
    for col in SPECS[table]:
        series = frame[col.name] if col.name in frame else pd.Series([None] * n, dtype=object)
        if col.kind == "object":
            arrays.append(_json_array(series))
        elif col.kind == "category":
            arrays.append(pa.array(series.astype(object).where(series.notna(), None), pa.string()))
        else:
            arrays.append(pa.Array.from_pandas(series).cast(_ARROW[col.kind], safe=False))
    pos = frame[POS] if POS in frame else pd.Series(np.arange(n))
    arrays.append(pa.array(pos.to_numpy(dtype=np.int64), pa.int64()))
    extras = [c for c in frame.columns if c not in spec_names and c not in _INTERNAL]
    if extras:
        rows: list[str | None] = []
        columns = [frame[c].to_numpy(dtype=object) for c in extras]
        for values in zip(*columns, strict=True):
            found = {k: v for k, v in zip(extras, values, strict=True) if not is_missing(v)}
            rows.append(_json(found) if found else None)
        arrays.append(pa.array(rows, pa.string()))
    else:
        arrays.append(pa.nulls(n, pa.string()))
    if table == "work_orders":
        for name in (SYNCED_AT, TIMELINE_AT):
            values = frame[name] if name in frame else pd.Series([pd.NaT] * n)
            arrays.append(
                pa.Array.from_pandas(pd.to_datetime(values, utc=True)).cast(
                    schema.field(name).type, safe=False
                )
            )
    arrays.append(pa.array(np.asarray(months, dtype=object), pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema)


def _decode_json(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    """JSON text -> Python objects, parsing each distinct text once."""
    values = arr.to_pandas() if hasattr(arr, "to_pandas") else pd.Series(arr)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    parsed = np.empty(len(uniques) + 1, dtype=object)
    parsed[:-1] = [json.loads(u) for u in uniques]
    parsed[-1] = None
    out = np.empty(len(codes), dtype=object)
    out[:] = parsed[np.where(codes < 0, len(uniques), codes)]
    return pd.Series(out, dtype=object)


def _categorical(arr: pa.ChunkedArray) -> pd.Categorical:
    """Strings as a categorical with sorted categories (as ``normalize`` builds them),
    hashing each distinct string once, in Arrow."""
    whole = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(whole) == 0 or whole.null_count == len(whole):
        return pd.Categorical([None] * len(whole))
    enc = whole.dictionary_encode()
    words = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    order = np.argsort(words, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    codes = np.where(idx < 0, -1, rank[np.where(idx < 0, 0, idx)])
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(words[order])))


def _column(arr: pa.ChunkedArray, kind: str) -> Any:
    if kind == "object":
        return _decode_json(arr)
    if kind == "category":
        return _categorical(arr)
    if kind == "text":  # a categorical read as plain strings (Dask partitions)
        return arr.to_pandas().astype("str")
    if kind == "string":
        return arr.to_pandas().astype("string")
    if kind == "datetime":
        return arr.to_pandas().astype("datetime64[us, UTC]")
    if kind == "boolean":
        return arr.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get).astype("boolean")
    if kind == "Int64":
        return arr.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).astype("Int64")
    if kind == "float":
        return arr.to_pandas(types_mapper={pa.float64(): pd.Float64Dtype()}.get).astype("Float64")
    raise ValueError(kind)


def from_arrow(
    table: str,
    data: pa.Table,
    columns: Sequence[str] | None = None,
    *,
    categories: bool = True,
) -> pd.DataFrame:
    """Stored rows of ``table`` as the loaders' frame: the spec's columns with their dtypes,
    then extra keys in name order (or only ``columns``, in that order)."""
    spec = SPECS[table]
    n = data.num_rows
    out: dict[str, Any] = {}
    for col in spec:
        if columns is not None and col.name not in columns:
            continue
        kind = col.kind if categories or col.kind != "category" else "text"
        if col.name in data.column_names:
            out[col.name] = _column(data.column(col.name), kind)
        else:  # written by an older spec: the column is missing, so it is null
            nulls = [None] * n
            out[col.name] = normalize.convert_column(nulls, "string" if kind == "text" else kind)
            if kind == "text":
                out[col.name] = pd.Series([None] * n, dtype="str")
    if EXTRA in data.column_names:
        raw = data.column(EXTRA)
        if raw.null_count < n:
            found: dict[str, dict[int, Any]] = {}
            for row, text in enumerate(raw.to_pylist()):
                if text is not None:
                    for key, value in json.loads(text).items():
                        found.setdefault(key, {})[row] = value
            for key in sorted(found):
                if key in out or (columns is not None and key not in columns):
                    continue
                values: list[Any] = [None] * n
                for row, value in found[key].items():
                    values[row] = value
                out[key] = normalize.extra_column(values)
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            known = [c.name for c in spec]
            raise ConfigurationError(
                f"unknown column(s) {', '.join(map(repr, missing))} in {table}; "
                f"known: {', '.join(known)}, and any extra key the server sent."
            )
        frame = frame[list(columns)]
    return frame


# --------------------------------------------------------------------------------------------
# locations
# --------------------------------------------------------------------------------------------


# object stores deltalake opens, by scheme -> provider (whose credentials they need)
OBJECT_STORES = {
    "s3": "aws",
    "s3a": "aws",
    "gs": "gcp",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "azure": "azure",
    "adl": "azure",
}
_SUPPORTED = "a local path, a file:///absolute/path URI, or an object store: " + ", ".join(
    f"{s}://" for s in OBJECT_STORES
)


def _parse(location: str) -> tuple[str | None, Path | None]:
    """``(object-store URI, None)`` or ``(None, local folder)``: the one reading of a dataset
    location, so that its lock and its tables are always in the same place. ``file:`` URIs
    (``file:/abs``, ``file:///abs``, ``file://localhost/abs``) are local folders; any other
    ``scheme://`` than an object store raises :class:`DatasetLocationError`."""
    if location[:5].lower() == "file:":
        parts = urllib.parse.urlsplit(location)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise DatasetLocationError(
                f"{location!r}: a file: URI must name an absolute path on this machine "
                "(file:///absolute/path); give the folder's path instead."
            )
        return None, Path(path)
    if "://" in location:
        scheme = location.split("://", 1)[0].lower()
        if scheme not in OBJECT_STORES:
            raise DatasetLocationError(
                f"{scheme}:// is not a dataset location deltalake can open ({location!r}); "
                f"use {_SUPPORTED}. Nothing was read or written."
            )
        return location, None
    return None, Path(location)


def _is_uri(location: str) -> bool:
    return _parse(location)[0] is not None


def _local(location: str) -> Path | None:
    return _parse(location)[1]


# what shows that credentials were given, per provider: storage options (any key naming a
# secret, a token, a profile...), environment variables, and the providers' own files
_CREDENTIAL_OPTION = re.compile(
    r"access_key|secret|token|sas|credential|service_account|profile|skip_signature|"
    r"metadata|msi|azure_cli|use_emulator|account_key|bearer|client_id|federated",
    re.IGNORECASE,
)
_CREDENTIAL_ENV = {
    "aws": (
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_SKIP_SIGNATURE",
    ),
    "gcp": (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_PATH",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GCE_METADATA_HOST",
    ),
    "azure": (
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USE_AZURE_CLI",
        "AZURE_STORAGE_USE_EMULATOR",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ),
}
_CREDENTIAL_FILES = {
    "aws": ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    "gcp": (None, "~/.config/gcloud/application_default_credentials.json"),
    "azure": (None, None),
}
_HOW = {
    "aws": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
    "storage_options={'aws_access_key_id': ..., 'aws_secret_access_key': ...}; an EC2 "
    "instance role needs storage_options={'aws_metadata_endpoint': 'http://169.254.169.254'}",
    "gcp": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or pass "
    "storage_options={'google_service_account': '/path/key.json'}; a GCE machine's own "
    "account needs GCE_METADATA_HOST",
    "azure": "set AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN, or AZURE_CLIENT_ID, "
    "AZURE_CLIENT_SECRET and AZURE_TENANT_ID), or pass storage_options={'azure_storage_"
    "account_key': ...}",
}


def check_credentials(location: str, storage_options: Mapping[str, str] | None = None) -> None:
    """Raise :class:`DatasetLocationError` at once, before any request, when ``location`` is an
    object store and neither ``storage_options``, the environment nor the provider's
    credentials file gives credentials (the stores' own credential chains would otherwise
    probe metadata services for a minute, then fail with an untyped error). Local paths
    pass."""
    uri = _parse(location)[0]
    if uri is None:
        return
    provider = OBJECT_STORES[uri.split("://", 1)[0].lower()]
    if any(_CREDENTIAL_OPTION.search(str(k)) for k in (storage_options or {})):
        return
    if any(os.environ.get(name) for name in _CREDENTIAL_ENV[provider]):
        return
    env, default = _CREDENTIAL_FILES[provider]
    for candidate in (os.environ.get(env) if env else None, default):
        if candidate and Path(candidate).expanduser().is_file():
            return
    raise DatasetLocationError(
        f"no credentials for {uri}: {_HOW[provider]}. Nothing was read or written."
    )


@dataclass(frozen=True)
class Identity:
    """What a dataset is of: its site (base URL, no credentials) and its schema version."""

    site: str
    schema_version: int

    def description(self) -> str:
        return json.dumps(
            {"format": FORMAT, "site": self.site, "schema_version": self.schema_version},
            sort_keys=True,
        )


def site_of(base_url: str) -> str:
    """A base URL without credentials (what a dataset is bound to)."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

# the loaders' work-order filters, evaluated on the stored work orders (ordering aside)
_FILTERS = tuple(f for f in LIST_FILTERS if f != "ordering")


def _ts(value: Any, name: str) -> pd.Timestamp:
    return pd.Timestamp(to_api_date(value, name))  # the one parser of user dates


def _locked(method: Any) -> Any:
    """Run a Dataset method under the object's lock: its open tables (Rust objects) and caches
    are shared, and a Delta table object must not be used by two threads at once."""

    def run(self: Dataset, *args: Any, **kwargs: Any) -> Any:
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCKS_GUARD:
                lock = self.__dict__.setdefault("_lock", threading.RLock())
        with lock:
            return method(self, *args, **kwargs)

    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run


_LOCKS_GUARD = threading.Lock()


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
    ) -> None:
        self.location = os.fspath(location)
        self.storage_options = dict(storage_options) if storage_options else None
        check_credentials(self.location, self.storage_options)  # also refuses bad schemes
        if not self._exists("syncs"):
            raise NotADatasetError(
                f"{self.location} is not a dfs-analytics dataset (no 'syncs' table): check the "
                "path, or create one by syncing: dfs.sync(client) with "
                "Client(dataset=...) pointing there."
            )
        self._identity = self._read_identity()

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
        return self._identity.site

    @property
    def schema_version(self) -> int:
        return self._identity.schema_version

    def _uri(self, table: str) -> str:
        return _join(self.location, table)

    def _exists(self, table: str) -> bool:
        try:
            return DeltaTable.is_deltatable(self._uri(table), self.storage_options)
        except (DeltaError, OSError, ValueError) as exc:
            if _is_uri(self.location):  # the store refused or could not be reached
                raise DatasetLocationError(
                    f"cannot open {self._uri(table)}: {_short(exc)}. Check the URI, the "
                    "credentials (storage_options or the environment) and the network."
                ) from None
            return False

    def _table(self, table: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(
                self._uri(table), version=version, storage_options=self.storage_options
            )
        except TableNotFoundError as exc:
            raise DatasetCorruptError(
                f"{self._uri(table)}: the table is missing or its log is damaged ({exc}). "
                "Restore it, or sync into a new dataset path."
            ) from None
        except (DeltaError, OSError, ValueError) as exc:
            raise DatasetCorruptError(
                f"{self._uri(table)}: cannot read this Delta table ({_short(exc)}). A file is "
                "damaged or missing: restore it, or sync into a new dataset path."
            ) from None

    def _reload_identity(self, identity: Identity | None = None) -> None:
        """Take ``identity`` (a writer just changed it), or read it again from the ``syncs``
        table (another process may have rebuilt the dataset)."""
        self._identity = identity if identity is not None else self._read_identity()

    @_locked
    def _read_identity(self) -> Identity:
        try:
            cache = self.__dict__.get("_cache") or {}
            dt = cache.get("syncs_dt")
            if dt is not None:
                dt.update_incremental()
            else:
                dt = self._table("syncs")
            text = dt.metadata().description or ""
            meta = json.loads(text)
            if meta.get("format") != FORMAT:
                raise ValueError("not ours")
            return Identity(str(meta["site"]), int(meta["schema_version"]))
        except (ValueError, KeyError, TypeError):
            raise NotADatasetError(
                f"{self.location} holds Delta tables but no dfs-analytics dataset description; "
                "point at the folder that dfs.sync() wrote."
            ) from None

    # -- versions -----------------------------------------------------------------------------

    @_locked
    def _syncs(self) -> pd.DataFrame:
        """The version table (cached until the table moves on; callers must not change it),
        checked: each row against the digest its commit recorded, and each table version it
        names against that table's log."""
        cache = self.__dict__.setdefault("_cache", {})
        dt = cache.get("syncs_dt")
        try:
            if dt is None:
                dt = cache["syncs_dt"] = self._table("syncs")
            else:
                dt.update_incremental()
            delta_version = dt.version()
            if cache.get("syncs_version") == delta_version:
                return cache["syncs"]
            data = _checked(dt.to_pyarrow_dataset())
            fragments = list(data.get_fragments())
            records = self._records(dt, delta_version, data.filesystem)
        except (OSError, pa.ArrowException, DeltaError) as exc:
            raise DatasetCorruptError(
                f"{self._uri('syncs')}: cannot read the version table ({_short(exc)})."
            ) from None
        parts: dict[str, pa.Table] = cache.setdefault("syncs_parts", {})
        sums = {
            path: sha
            for meta in records.values()
            if isinstance(meta.get("syncs_file"), dict)
            for path, sha in meta["syncs_file"].items()
        }
        tables = []
        for fragment in fragments:
            if fragment.path not in parts:  # a file never changes: each is read once
                want = sums.get(fragment.path)
                problem = (
                    None if want is None else _file_problem(data.filesystem, fragment.path, want)
                )
                if problem is not None:
                    raise DatasetCorruptError(
                        f"{self._uri('syncs')}/{fragment.path}: this file of the version table "
                        f"is damaged or missing ({problem}). Restore it, or sync into a new "
                        "dataset path."
                    )
                try:
                    parts[fragment.path] = fragment.to_table(schema=data.schema)
                except (OSError, pa.ArrowException) as exc:
                    raise DatasetCorruptError(
                        f"{self._uri('syncs')}/{fragment.path}: this file of the version table "
                        f"is damaged ({_short(exc)}). Restore it, or sync into a new dataset "
                        "path."
                    ) from None
            tables.append((fragment.path, parts[fragment.path]))
        self._check_syncs(tables, records)
        if tables:
            frame = pa.concat_tables([t for _, t in tables]).to_pandas()
        else:
            frame = data.schema.empty_table().to_pandas()
        frame = frame.sort_values("version", ignore_index=True)
        cache["syncs"], cache["syncs_version"] = frame, delta_version
        return frame

    def _records(
        self, dt: DeltaTable, delta_version: int, filesystem: Any
    ) -> dict[int, dict[str, Any]]:
        """What each commit of the version table recorded for its row (by dataset version):
        ``row`` (the row's digest) and ``files`` (table -> data file -> SHA-256).

        Each commit is read from its own log file, up to ``delta_version`` and no further:
        the table's history would also return commits another process made since, in place
        of older ones."""
        cache = self.__dict__.setdefault("_cache", {})
        records: dict[int, dict[str, Any]] = cache.setdefault("records", {})
        seen = cache.get("records_seen", -1)
        for number in range(seen + 1, delta_version + 1):
            meta = _commit_record(filesystem, number)
            if meta is _NO_LOG_FILE:  # a log cleaned by another tool: the whole history
                entries = dt.history() if dt.version() == delta_version else []
                for entry in entries:
                    found = entry.get(_RECORD)
                    if isinstance(found, dict) and isinstance(found.get("version"), int):
                        records.setdefault(found["version"], found)
                continue
            if isinstance(meta, dict) and isinstance(meta.get("version"), int):
                records[meta["version"]] = meta
        cache["records_seen"] = max(seen, delta_version)
        return records

    def _checksums(self) -> dict[str, dict[str, str]]:
        """Each table's data files -> the SHA-256 recorded when they were written."""
        self._syncs()
        out: dict[str, dict[str, str]] = {}
        for meta in self.__dict__["_cache"].get("records", {}).values():
            files = meta.get("files")
            if isinstance(files, dict):
                for table, sums in files.items():
                    if isinstance(sums, dict):
                        out.setdefault(str(table), {}).update(sums)
        return out

    def _latest(self, table: str) -> int:
        """The last version in the table's own log (-1: no table)."""
        latest = self.__dict__.setdefault("_cache", {}).setdefault("latest_dt", {})
        dt = latest.get(table)
        try:
            if dt is None:
                if not self._exists(table):
                    return -1
                dt = latest[table] = DeltaTable(
                    self._uri(table), storage_options=self.storage_options
                )
            else:
                dt.update_incremental()
            return dt.version()
        except (DeltaError, OSError, ValueError) as exc:
            raise DatasetCorruptError(
                f"{self._uri(table)}: cannot read this Delta table's log ({_short(exc)})."
            ) from None

    def _check_syncs(
        self, tables: Sequence[tuple[str, pa.Table]], records: Mapping[int, Mapping[str, Any]]
    ) -> None:
        """Every row of the version table is what its commit wrote (when the commit recorded
        a digest: releases before did not), dataset versions follow each other, and every
        table version a row names exists in that table's log."""
        where: dict[int, str] = {}
        latest: dict[str, int] = {}
        for path, part in tables:
            file = f"{self._uri('syncs')}/{path}"
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
                if meta is not None and meta.get("row") != _row_digest(row):
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
                f"{self._uri('syncs')}: version {lost[0]} was written but is not in the version "
                "table any more: one of its files is damaged. Restore it, or sync into a new "
                "dataset path."
            )
        if where and sorted(where) != list(range(min(where), min(where) + len(where))):
            gap = next(v for v in sorted(where) if v - min(where) >= len(where))
            raise DatasetCorruptError(
                f"{where[gap]}: the version table jumps to version {gap}: the file is damaged. "
                "Restore it, or sync into a new dataset path."
            )

    def _verify_files(self, table: str, data: pads.Dataset, paths: Iterable[str]) -> None:
        """Check each file against the SHA-256 recorded when it was written, once per file
        for this object (files never change; :meth:`verify` always reads them again).
        Files written before checksums were recorded are not checked."""
        sums = self._checksums().get(table, {})
        done: set[tuple[str, str]] = self.__dict__.setdefault("_verified", set())
        for path in paths:
            if (table, path) in done:
                continue
            want = sums.get(path)
            if want is None:
                continue
            problem = _file_problem(data.filesystem, path, want)
            if problem is not None:
                raise _damaged_file(f"{self._uri(table)}/{path}", problem)
            done.add((table, path))

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
        problems: list[tuple[str, str, str]] = []
        checked = 0
        cache = self.__dict__.setdefault("_cache", {})
        cache.pop("syncs_version", None)  # read the version table again, every file of it
        cache.pop("syncs_parts", None)
        try:
            syncs = self._syncs()
            sums = self._checksums()
        except DatasetError as exc:
            out = pd.DataFrame([("syncs", self._uri("syncs"), str(exc))], columns=_PROBLEMS)
            out.attrs["files_checked"] = checked
            return out
        rows = syncs if all_versions else syncs.tail(1)
        for table in TABLES:
            versions = sorted({int(v) for v in rows[f"{table}_version"].dropna() if v >= 0})
            seen: set[str] = set()
            for version in versions:
                try:
                    data = _checked(self._table(table, version).to_pyarrow_dataset())
                    fragments = list(data.get_fragments())
                except (DatasetError, DeltaError, OSError, ValueError, pa.ArrowException) as e:
                    problems.append((table, f"{self._uri(table)}@{version}", _short(e)))
                    continue
                for fragment in fragments:
                    if fragment.path in seen:
                        continue
                    seen.add(fragment.path)
                    checked += 1
                    file = f"{self._uri(table)}/{fragment.path}"
                    want = sums.get(table, {}).get(fragment.path)
                    problem = (
                        _file_problem(data.filesystem, fragment.path, want)
                        if want is not None
                        else None
                    )
                    if problem is None:
                        try:  # decodes every page (and checks page checksums where present)
                            fragment.to_table(schema=data.schema)
                        except (OSError, pa.ArrowException) as exc:
                            problem = f"cannot be read ({_short(exc)})"
                    if problem is None and want is None:
                        problem = "no checksum recorded (written by an older release)"
                    if problem is not None:
                        problems.append((table, file, problem))
        out = pd.DataFrame(problems, columns=_PROBLEMS)
        out.attrs["files_checked"] = checked
        return out

    @property
    def version(self) -> int | None:
        """The latest version (None: nothing synced yet)."""
        syncs = self._syncs()
        return int(syncs["version"].iloc[-1]) if len(syncs) else None

    def history(self) -> pd.DataFrame:
        """One row per version, oldest first: ``version, time, filters, listed, fetched,
        updated, deleted, timelines, requests, seconds, complete`` (``complete``: the sync's
        last commit) and each table's own Delta version."""
        syncs = self._syncs().copy()
        syncs["filters"] = [json.loads(f) if f else {} for f in syncs["filters"]]
        return syncs

    def _row(self, as_of: Any = None) -> pd.Series | None:
        syncs = self._syncs()
        if not len(syncs):
            if as_of is None:
                return None
            raise VersionNotFoundError(f"as_of={as_of!r}: the dataset has no version yet.")
        if as_of is None:
            return syncs.iloc[-1]
        if isinstance(as_of, (int, np.integer)) and not isinstance(as_of, bool):
            hit = syncs[syncs["version"] == int(as_of)]
            if not len(hit):
                raise VersionNotFoundError(
                    f"as_of={as_of}: no such version; versions go from "
                    f"{int(syncs['version'].iloc[0])} to {int(syncs['version'].iloc[-1])} "
                    "(see Dataset.history())."
                )
            return hit.iloc[-1]
        try:
            moment = _ts(as_of, "as_of")
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
        row = self._row(as_of)
        out: dict[str, int | None] = {}
        for t in TABLES:
            v = None if row is None else row[f"{t}_version"]
            out[t] = None if is_missing(v) or int(v) < 0 else int(v)
        return out

    def resolve(self, as_of: Any = None) -> int | None:
        """The dataset version that ``as_of`` designates (None: nothing synced yet)."""
        row = self._row(as_of)
        return None if row is None else int(row["version"])

    # -- reads --------------------------------------------------------------------------------

    @_locked
    def arrow_dataset(self, table: str, as_of: Any = None) -> pads.Dataset | None:
        """The table's files at ``as_of`` as a ``pyarrow.dataset.Dataset`` (None: empty),
        each file checked against its recorded checksum first."""
        data = self._arrow(table, as_of)
        if data is not None:
            self._verify_files(table, data, (f.path for f in data.get_fragments()))
        return data

    @_locked
    def _arrow(self, table: str, as_of: Any = None) -> pads.Dataset | None:
        _check_table(table)
        version = self.table_versions(as_of)[table]
        if version is None:
            return None
        cache = self.__dict__.setdefault("_cache", {})
        key = ("arrow", table, version)
        if key in cache:
            return cache[key]
        dt = self._table(table, version)
        try:
            data = _checked(dt.to_pyarrow_dataset())
        except (DeltaError, OSError, ValueError, pa.ArrowException) as exc:
            raise DatasetCorruptError(
                f"{self._uri(table)}: cannot list its files ({_short(exc)})."
            ) from None
        cache[key] = data
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
            fragments = data.get_fragments() if expr is None else data.get_fragments(filter=expr)
            self._verify_files(table, data, [f.path for f in fragments])
            return data.to_table(columns=wanted, filter=expr)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetCorruptError(
                f"{self._uri(table)}: a data file is damaged or missing ({_short(exc)}). "
                "Restore it, or sync into a new dataset path."
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
        unknown = [k for k in filters if k not in _FILTERS]
        if unknown:
            raise ConfigurationError(
                f"unknown filter(s) {', '.join(map(repr, unknown))}; known filters: "
                f"{', '.join(_FILTERS)}."
            )
        filters = {k: v for k, v in filters.items() if v is not None}
        version = self.resolve(as_of)
        key = (
            "selected",
            version,
            json.dumps({k: _plain_filter(v) for k, v in filters.items()}, sort_keys=True),
            tuple(extra),
        )
        cache = self.__dict__.setdefault("_cache", {})
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
        expr = _pushdown(filters)
        need = set(extra) | {"work_order_id"}
        if "reviewed" in filters:
            need.add("review_date")
        if "tag" in filters:
            need.add("tags")
        raw = self._scan("work_orders", as_of, sorted(need), expr)
        frame = raw.to_pandas()
        if "create_date" in frame:
            frame["create_date"] = frame["create_date"].astype("datetime64[us, UTC]")
        if "reviewed" in filters:
            want = filters["reviewed"]
            if not isinstance(want, bool):
                raise ConfigurationError(f"reviewed must be True or False, got {want!r}.")
            frame = frame[frame["review_date"].notna() == want]
        if "tag" in filters:
            tags = filters["tag"]
            tags = {tags} if isinstance(tags, str) else set(tags)
            keep = [
                tags <= set(json.loads(t) if t else [])
                for t in frame["tags"].to_numpy(dtype=object)
            ]
            frame = frame[np.asarray(keep, dtype=bool)]
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
        _check_table(table)
        version = self.resolve(as_of)  # one version for every read below: consistent frames
        given_as_of, as_of = as_of, version
        clean = {k: _plain_filter(v) for k, v in filters.items() if v is not None}
        key = (
            table,
            version,
            None if columns is None else tuple(columns),
            json.dumps(clean, sort_keys=True, default=str),
            None if ids is None else tuple(ids),
        )
        frames = self.__dict__.setdefault("_frames", {})
        if version is not None and key in frames:
            return frames[key].copy()
        expr = None
        order_of: dict[str, int] | None = None
        if table == "work_orders":
            expr = _pushdown({k: v for k, v in filters.items() if v is not None})
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
                months = sorted(set(sel[PARTITION]))
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
            "as_of": None if given_as_of is None else _plain_filter(given_as_of),
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

    def duckdb(self, as_of: Any = None, connection: Any = None) -> Any:
        """A DuckDB connection with views ``work_orders``, ``tasks``, ``timeline`` and
        ``task_groups`` over the dataset's files at ``as_of`` (latest by default).

        The views read the Parquet files through Arrow, so no DuckDB extension is needed.
        Categorical columns are plain strings there, and value columns JSON text.
        """
        import duckdb

        con = connection if connection is not None else duckdb.connect()
        for table in TABLES:
            data = self.arrow_dataset(table, as_of)
            if data is None:
                data = pads.dataset(arrow_schema(table).empty_table())
            con.register(f"_dfs_{table}", data)
            con.execute(f'CREATE OR REPLACE VIEW {table} AS SELECT * FROM "_dfs_{table}"')
        return con

    def files(self, table: str, as_of: Any = None) -> list[str]:
        """The table's data files at ``as_of`` (absolute paths or URIs)."""
        _check_table(table)
        version = self.table_versions(as_of)[table]
        if version is None:
            return []
        return list(self._table(table, version).file_uris())

    def to_dask(self, name: str, as_of: Any = None, columns: Sequence[str] | None = None) -> Any:
        """A Dask DataFrame over the table's files at ``as_of`` (one partition per file), with
        the columns of the pandas frames: value columns decoded from JSON, categorical
        columns as plain strings (partitions would not share their categories). The audit
        functions (``override_rates``, ``confusion``, ``drift``) accept it."""
        try:
            import dask.dataframe as dd
            from dask import delayed
        except ImportError:
            raise ConfigurationError(
                "Dataset.to_dask needs Dask: pip install 'dfs-analytics[dask]'."
            ) from None
        _check_table(name)
        files = self.files(name, as_of)
        meta = from_arrow(name, arrow_schema(name).empty_table(), columns, categories=False)
        if not files:
            return dd.from_pandas(meta, npartitions=1)
        read_cols = None if columns is None else [*columns, POS, EXTRA]
        known = set(arrow_schema(name).names)
        if read_cols is not None:
            read_cols = [c for c in dict.fromkeys(read_cols) if c in known]
        base = self._uri(name).rstrip("/") + "/"
        sums = self._checksums().get(name, {})
        parts = [
            delayed(_read_file)(
                name,
                f,
                read_cols,
                columns,
                sums.get(urllib.parse.unquote(f[len(base) :]) if f.startswith(base) else f),
            )
            for f in files
        ]
        return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _read_file(
    table: str,
    uri: str,
    read_cols: Sequence[str] | None,
    columns: Sequence[str] | None,
    checksum: str | None = None,
) -> pd.DataFrame:
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    if checksum is not None:
        fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else "file://" + uri)
        problem = _file_problem(fs, path, checksum)
        if problem is not None:
            raise _damaged_file(uri, problem)
    try:
        data = pq.read_table(
            uri, columns=list(read_cols) if read_cols else None, page_checksum_verification=True
        )
    except (OSError, pa.ArrowException) as exc:
        raise DatasetCorruptError(f"{uri}: a data file is damaged ({_short(exc)}).") from None
    return from_arrow(table, data, columns, categories=False)


_RECORD = "dfs"  # the key of what a version's commit records in the Delta log
_NO_LOG_FILE = object()


def _commit_record(filesystem: Any, number: int) -> Any:
    """What commit ``number`` of a table recorded under :data:`_RECORD` (None when nothing),
    read from its log file; ``_NO_LOG_FILE`` when that file is gone."""
    try:
        with filesystem.open_input_stream(f"_delta_log/{number:020d}.json") as fh:
            text = fh.read().decode("utf-8")
    except FileNotFoundError:
        return _NO_LOG_FILE
    for line in text.splitlines():
        try:
            action = json.loads(line)
        except ValueError:
            raise DatasetCorruptError(
                f"the version table's log file {number:020d}.json is damaged (not JSON)."
            ) from None
        info = action.get("commitInfo") if isinstance(action, dict) else None
        if isinstance(info, dict):
            meta = info.get(_RECORD)
            if not isinstance(meta, str):
                return meta
            try:
                return json.loads(meta)
            except ValueError:
                raise DatasetCorruptError(
                    f"the version table's log file {number:020d}.json is damaged (its record "
                    "is not JSON)."
                ) from None
    return None


_PROBLEMS = ["table", "file", "problem"]
_SCAN = pads.ParquetFileFormat(
    default_fragment_scan_options=pads.ParquetFragmentScanOptions(
        pre_buffer=True, page_checksum_verification=True
    )
)


def _checked(data: pads.Dataset) -> pads.Dataset:
    """The same files, read with Parquet page checksum verification (for files that carry
    page checksums; delta-rs does not write them, hence the file checksums)."""
    fragments = [
        _SCAN.make_fragment(
            f.path, filesystem=data.filesystem, partition_expression=f.partition_expression
        )
        for f in data.get_fragments()
    ]
    return pads.FileSystemDataset(fragments, data.schema, _SCAN, data.filesystem)


def _sha256(fs: Any, path: str) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (memory stays bounded)."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while block := stream.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def _file_problem(fs: Any, path: str, want: str) -> str | None:
    """What is wrong with a data file whose SHA-256 should be ``want`` (None: nothing)."""
    try:
        got = _sha256(fs, path)
    except FileNotFoundError:
        return "the file is missing"
    except (OSError, pa.ArrowException) as exc:
        return f"the file cannot be read ({_short(exc)})"
    if got != want:
        return "its content differs from the SHA-256 recorded when it was written"
    return None


def _damaged_file(file: str, problem: str) -> DatasetCorruptError:
    """The error for a data file that failed its check (``problem``, from
    :func:`_file_problem`, says how)."""
    return DatasetCorruptError(
        f"{file}: this data file is damaged or missing ({problem}). Restore it, or sync into "
        "a new dataset path; Dataset.verify() lists every damaged file."
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _row_digest(row: Mapping[str, Any]) -> str:
    """The SHA-256 of one version-table row, as written (its stored columns only)."""
    plain = {k: _canonical(row.get(k)) for k in _SYNCS_SCHEMA.names}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


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


def _plain_filter(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, set)):
        return sorted(str(v) for v in value)
    return str(value)


def _pushdown(filters: Mapping[str, Any]) -> pc.Expression | None:
    """Filters that Arrow evaluates while reading (and prunes partitions with)."""
    parts: list[pc.Expression] = []
    for key, value in filters.items():
        if key == "created_after":
            ts = _ts(value, key)
            parts.append(pc.field("create_date") >= pa.scalar(ts, pa.timestamp("us", "UTC")))
            parts.append(pc.field(PARTITION) >= pa.scalar(f"{ts:%Y-%m}"))
        elif key == "created_before":
            ts = _ts(value, key)
            parts.append(pc.field("create_date") < pa.scalar(ts, pa.timestamp("us", "UTC")))
            parts.append(pc.field(PARTITION) <= pa.scalar(f"{ts:%Y-%m}"))
        elif key == "updated_after":
            ts = _ts(value, key)
            parts.append(pc.field("update_date") >= pa.scalar(ts, pa.timestamp("us", "UTC")))
        elif key == "updated_before":
            ts = _ts(value, key)
            parts.append(pc.field("update_date") < pa.scalar(ts, pa.timestamp("us", "UTC")))
        elif key in ("name", "field_engineer_email"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}.")
            parts.append(pc.field(key) == pa.scalar(value))
    if not parts:
        return None
    expr = parts[0]
    for p in parts[1:]:
        expr = expr & p
    return expr


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ConfigurationError(f"unknown table {table!r}; tables: {', '.join(TABLES)}.")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _short(exc: BaseException) -> str:
    text = " ".join(_ANSI.sub("", str(exc)).replace("\u21b3", ":").split())
    return text[:300] + ("..." if len(text) > 300 else "")


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _commit_lock(location: str) -> Iterator[None]:
    """One committer at a time per dataset: a thread lock, and on local paths a file lock
    shared with other processes (object stores rely on Delta's own commit protocol)."""
    local = _local(location)
    key = location if local is None else os.path.abspath(local)
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if local is None:
            yield
            return
        # never through a symbolic link (UnsafePathError): a planted link would make the
        # toolkit create or lock another file
        with file_lock(local / "_dfs.lock", what=f"the dataset {location}"):
            yield


_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    """Files and folders created meanwhile are owner-only (``mask=0o077``), whatever the
    process's umask; None leaves it alone."""
    if mask is None:
        yield
        return
    with _UMASK_LOCK:
        old = os.umask(mask | 0o022)
        try:
            yield
        finally:
            os.umask(old)


class Writer:
    """Commits batches to a dataset; each :meth:`commit` is one dataset version.

    ``site`` binds a new dataset to a site; an existing dataset of another site is refused.
    ``private`` keeps folders 0700 and files 0600 (the user's own dataset).
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        site: str,
        *,
        private: bool = False,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.location = os.fspath(location)
        self.site = site_of(site)
        self.private = private
        self.storage_options = dict(storage_options) if storage_options else None
        check_credentials(self.location, self.storage_options)  # also refuses bad schemes
        self.reset: set[str] = set()  # tables to overwrite at their next write (new schema)
        self._tables: dict[str, DeltaTable] = {}  # kept open: reopening a table reads its log
        self._lock = threading.RLock()
        # (Delta version of ``syncs``, dataset version) of this writer's last commit
        self._syncs_seen: tuple[int, int] | None = None
        local = _local(self.location)
        if local is not None:
            try:
                local.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
            except OSError as exc:
                raise ReadOnlyDatasetError(
                    f"cannot create the dataset folder {local} ({exc.strerror}); choose a "
                    "writable path with Client(dataset=...) or DFS_DATASET."
                ) from None
            _check_writable(local)
        self._conforming: set[tuple[str, str]] = set()  # files known to hold the table's schema
        self._conformed: dict[str, int] = {}  # table -> its last version known to conform
        self.dataset = self._open_or_create()
        if self.dataset.schema_version != SCHEMA_VERSION:
            self._rebuild()
        self._conform()

    def _open_or_create(self) -> Dataset:
        probe = Dataset.__new__(Dataset)
        probe.location, probe.storage_options = self.location, self.storage_options
        if not probe._exists("syncs"):
            self._check_empty(probe)  # before anything is written there (the lock file)
            identity = Identity(self.site, SCHEMA_VERSION)
            with _commit_lock(self.location), _umask(0o077 if self.private else None):
                if not probe._exists("syncs"):  # checked again: another writer may be first
                    self._check_empty(probe)
                    self._write(
                        "syncs",
                        _SYNCS_SCHEMA.empty_table(),
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

    def _check_empty(self, probe: Dataset) -> None:
        """A new dataset goes into an empty folder only (or one holding only our own files)."""
        if any(probe._exists(t) for t in TABLES):
            raise NotADatasetError(
                f"{self.location} holds Delta tables but no dfs-analytics 'syncs' table; sync "
                "into an empty folder instead."
            )
        local = _local(self.location)
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
        syncs = self._dt("syncs")
        if syncs is None:
            raise NotADatasetError(f"the dataset at {self.location} disappeared; sync again.")
        self.dataset._reload_identity()
        if self.dataset.site != self.site:
            raise SiteMismatchError(
                f"the dataset at {self.location} now holds {self.dataset.site}, not "
                f"{self.site}: a dataset belongs to one site."
            )
        if self.dataset.schema_version != SCHEMA_VERSION:
            self._rebuild()
        self._conform()

    def _rebuild(self) -> None:
        """A dataset written by another release (another schema version): one version that
        empties every table under the current schema, so the next sync reads everything
        again. Older versions stay readable with ``as_of``."""
        ds = self.dataset
        old = ds.schema_version
        with _commit_lock(self.location):
            ds._reload_identity()  # another process may have rebuilt it
            if ds.schema_version == SCHEMA_VERSION:
                return
            present = [t for t in TABLES if ds._exists(t)]
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
        want = arrow_schema(table)
        data = dt.to_pyarrow_dataset()
        months: set[str] = set()
        for fragment in data.get_fragments():
            if (table, fragment.path) in self._conforming:
                continue
            try:
                have = fragment.physical_schema
            except (OSError, pa.ArrowException) as exc:
                raise DatasetCorruptError(
                    f"{self.dataset._uri(table)}/{fragment.path}: this data file cannot be read "
                    f"({_short(exc)}). Restore it, or sync into a new dataset path."
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
        with _commit_lock(self.location), _umask(0o077 if self.private else None):
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
            uri = _join(self.location, table)
            if not DeltaTable.is_deltatable(uri, self.storage_options):
                return None
            dt = self._tables[table] = DeltaTable(uri, storage_options=self.storage_options)
        else:
            dt.update_incremental()
        return dt

    def _write(self, table: str, data: pa.Table, **kw: Any) -> None:
        description = kw.pop("description", None)
        target: Any = self._tables.get(table) or _join(self.location, table)
        with self._writing():
            write_deltalake(
                target,
                data,
                storage_options=self.storage_options,
                description=description,
                writer_properties=_WRITER_PROPS,
                **kw,
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Write errors that mean "this process cannot write here" as ReadOnlyDatasetError."""
        try:
            yield
        except PermissionError as exc:
            raise ReadOnlyDatasetError(
                f"cannot write the dataset at {self.location} ({exc}); sync into a writable "
                "path (Client(dataset=...) or DFS_DATASET)."
            ) from None
        except OSError as exc:
            if getattr(exc, "errno", None) in (13, 30):  # EACCES, EROFS
                raise ReadOnlyDatasetError(
                    f"cannot write the dataset at {self.location} ({exc.strerror})."
                ) from None
            raise
        except DeltaError as exc:  # the Rust writer reports I/O errors in its own type
            if _READ_ONLY.search(str(exc)):
                raise ReadOnlyDatasetError(
                    f"cannot write the dataset at {self.location} ({_short(exc)}); sync into a "
                    "writable path (Client(dataset=...) or DFS_DATASET)."
                ) from None
            raise

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
        with _commit_lock(self.location):
            for attempt in range(5):
                try:
                    return self._commit(changes, stats)
                except CommitFailedError:
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _commit(
        self,
        changes: Mapping[str, tuple[Any, ...]],
        stats: Mapping[str, Any],
    ) -> int:
        with _umask(0o077 if self.private else None):
            return self._commit_tables(changes, stats)

    def _commit_tables(
        self,
        changes: Mapping[str, tuple[Any, ...]],
        stats: Mapping[str, Any],
    ) -> int:
        ds = self.dataset
        if len(changes) > 1:  # one writer per table at once (deltalake works outside the GIL)
            with ThreadPoolExecutor(len(changes)) as pool:
                for done in [pool.submit(self._replace, t, *c) for t, c in changes.items()]:
                    done.result()
        else:
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
        data = pa.Table.from_pylist([row], schema=_SYNCS_SCHEMA)
        record = {
            "version": version,
            "row": _row_digest(data.to_pylist()[0]),
            "files": self._new_checksums(),
        }
        kw: dict[str, Any] = {
            "commit_properties": CommitProperties(custom_metadata={_RECORD: record}),
            # the log holds the checksums: it is never cleaned up (it is small)
            "post_commithook_properties": PostCommitHookProperties(cleanup_expired_logs=False),
        }
        if ds.schema_version != SCHEMA_VERSION:
            self._write("syncs", data, mode="append", schema_mode="merge", **kw)
            identity = Identity(self.site, SCHEMA_VERSION)
            syncs = self._dt("syncs")
            assert syncs is not None
            syncs.alter.set_table_description(identity.description())
            ds._reload_identity(identity)
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
        local = _local(self.location)
        if local is None:
            self._write("syncs", data, mode="append", **kw)
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
        kw["commit_properties"] = CommitProperties(custom_metadata={_RECORD: record})
        dt.create_write_transaction([add], "append", dt.schema(), **kw)

    def _new_checksums(self) -> dict[str, dict[str, str]]:
        """The SHA-256 of each data file of the tables' latest versions that no commit has
        recorded yet (those this commit wrote, and those a compaction wrote)."""
        known = self.dataset._checksums()
        out: dict[str, dict[str, str]] = {}
        for table in TABLES:
            dt = self._dt(table)
            if dt is None:
                continue
            data = dt.to_pyarrow_dataset()
            have = known.get(table, {})
            new = {
                f.path: _sha256(data.filesystem, f.path)
                for f in data.get_fragments()
                if f.path not in have
            }
            if new:
                out[table] = new
        return out

    def _latest_data(self, table: str) -> pads.Dataset | None:
        """The table's files at its latest version, checked against their checksums."""
        dt = self._dt(table)
        if dt is None:
            return None
        data = _checked(dt.to_pyarrow_dataset())
        self.dataset._verify_files(table, data, (f.path for f in data.get_fragments()))
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
            if not empty:
                self._write(table, rows, mode="append", partition_by=_part(table))
            return
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
        if not stored:
            if not empty:
                self._write(table, rows, mode="append", partition_by=_part(table))
            return
        where = set(found_in)
        if rows is not None:
            where |= set(rows.column(PARTITION).to_pylist())
        in_months = _in_predicate(PARTITION, sorted(where)) + " AND "
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
        data = _checked(dt.to_pyarrow_dataset())
        self.dataset._verify_files(table, data, [f.path for f in data.get_fragments(filter=expr)])
        found = data.to_table(columns=["work_order_id", PARTITION], filter=expr)
        return (
            set(found.column("work_order_id").to_pylist()),
            set(found.column(PARTITION).to_pylist()),
        )

    def optimize(self) -> None:
        """Compact the small files that batch commits leave (not a new dataset version: the
        data are unchanged)."""
        with _commit_lock(self.location), _umask(0o077 if self.private else None):
            for table in TABLES:
                dt = self._dt(table)
                if dt is not None:
                    with contextlib.suppress(CommitFailedError):
                        dt.optimize.compact(writer_properties=_WRITER_PROPS)

    def small_files(self) -> int:
        """How many data files the tables have (to decide when to compact)."""
        n = 0
        for table in TABLES:
            dt = self._dt(table)
            if dt is not None:
                n += len(dt.file_uris())
        return n


# min/max statistics of long strings are truncated (a 50 MB name would land in the log twice)
_WRITER_PROPS = WriterProperties(compression="ZSTD", statistics_truncate_length=STATS_TRUNCATE)


_READ_ONLY = re.compile(r"os error (13|30)\b|Permission denied|Read-only file system")


def _check_writable(local: Path) -> None:
    """Refuse, before anything is written, a dataset folder this process cannot write: a
    real write at its root (permissions, read-only mounts, full disks all show there), then
    every folder of its tables (a read-only table folder would otherwise fail in the middle
    of a commit, inside the Delta writer)."""
    probe = local / f".dfs-write-probe-{secrets.token_hex(8)}"
    try:  # O_EXCL and never through a link: a planted file or link is not touched
        os.close(open_no_follow(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, what="write probe"))
        os.unlink(probe)
    except FileExistsError:
        raise DatasetCorruptError(f"{probe} exists; remove it.") from None
    except OSError as exc:
        raise ReadOnlyDatasetError(
            f"the dataset at {local} is read-only here ({exc.strerror}): read it with "
            "dfs.open_dataset(path), or sync into a writable path "
            "(Client(dataset=...) or DFS_DATASET)."
        ) from None
    for table in (*TABLES, "syncs"):
        root = local / table
        if not root.is_dir() or root.is_symlink():
            continue
        for folder, subfolders, _ in os.walk(root):
            subfolders[:] = [d for d in subfolders if not os.path.islink(os.path.join(folder, d))]
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ReadOnlyDatasetError(
                    f"the dataset at {local} is read-only here: {folder} cannot be written. "
                    "Read it with dfs.open_dataset(path), or sync into a writable path "
                    "(Client(dataset=...) or DFS_DATASET)."
                )


def _part(table: str) -> list[str]:
    return [PARTITION]


def _join(location: str, table: str) -> str:
    if _is_uri(location):
        return location.rstrip("/") + "/" + table
    local = _local(location)
    assert local is not None
    return str(local / table)


def _in_predicate(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Dataset",
    "Writer",
]
