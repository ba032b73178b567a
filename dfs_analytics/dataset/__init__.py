"""The on-disk dataset: Delta Lake tables of one site, versioned, shared, read out of core.

One folder or object-store prefix per site holds ``work_orders``, ``tasks``, ``timeline`` and
``task_groups`` (partitioned by the work order's creation month) and ``syncs``, one row per
dataset version naming each table's version, so the frames of one version are always
consistent. :class:`Dataset` reads (:mod:`.reader`), :class:`Writer` writes (:mod:`.writer`);
:mod:`.arrow` is the stored form, :mod:`.location` where a dataset is, :mod:`.versions` and
:mod:`.integrity` its checked versions and checksums, :mod:`.locks` who may write,
:mod:`.retention` pins and vacuum, :mod:`.export` DuckDB, Dask and Polars.

The store never speaks HTTP (it takes from :mod:`~dfs_analytics.query` only the filter names
and the date parser), never holds a secret, and never pickles: reading it never runs code.
"""

from __future__ import annotations

import os as _os

# deltalake's Rust code allocates through its own jemalloc, which keeps the pages a commit
# freed for 10 s: over a sync of many commits they added up to about 1 MB per commit. Its
# background thread gives them back after 10 ms instead, unless the process set it (read when
# deltalake is first imported; polars' jemalloc reads it too: at 10 ms polars was as quick as
# by default, at 0 ms 40% slower). README, "Memory at scale".
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10")

from ..errors import (
    ConfigurationError,
    DatasetCorruptError,
    DatasetError,
    DatasetLocationError,
    NotADatasetError,
    ReadOnlyDatasetError,
    SiteMismatchError,
    TableNotSyncedError,
    VersionNotFoundError,
    VersionVacuumedError,
)
from .arrow import (
    EXTRA,
    KEYS,
    NO_MONTH,
    PARTITION,
    POS,
    SCHEMA_VERSION,
    SPECS,
    SYNCED_AT,
    SYNCS_SCHEMA,
    TABLES,
    TIMELINE_AT,
    arrow_schema,
    from_arrow,
    month_of,
    to_arrow,
)
from .integrity import verify
from .location import FORMAT, OBJECT_STORES, Identity, check_credentials, site_of
from .reader import FRAME_CACHE, FRAME_CACHE_BYTES, Dataset
from .versions import VersionTable
from .writer import STATS_TRUNCATE, Writer

__all__ = [
    "EXTRA",
    "FORMAT",
    "FRAME_CACHE",
    "FRAME_CACHE_BYTES",
    "KEYS",
    "NO_MONTH",
    "OBJECT_STORES",
    "PARTITION",
    "POS",
    "SCHEMA_VERSION",
    "SPECS",
    "STATS_TRUNCATE",
    "SYNCED_AT",
    "SYNCS_SCHEMA",
    "TABLES",
    "TIMELINE_AT",
    "ConfigurationError",
    "Dataset",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetLocationError",
    "Identity",
    "NotADatasetError",
    "ReadOnlyDatasetError",
    "SiteMismatchError",
    "TableNotSyncedError",
    "VersionNotFoundError",
    "VersionTable",
    "VersionVacuumedError",
    "Writer",
    "arrow_schema",
    "check_credentials",
    "from_arrow",
    "month_of",
    "site_of",
    "to_arrow",
    "verify",
]
