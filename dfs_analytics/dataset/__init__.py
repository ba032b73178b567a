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
# freed for 10 s: a sync of 3,000 work orders in 101 commits peaked at 400 MB with that and
# 355 MB without, and held 391 against 305 MB after it. jemalloc reads its settings once,
# when deltalake is imported: the variable is set for that moment only, so polars (whose
# jemalloc reads the same variable, and ran 40% slower with it) and child processes never
# see it. A process that set the variable keeps its own. README, "Memory at scale".
if "_RJEM_MALLOC_CONF" not in _os.environ:
    _os.environ["_RJEM_MALLOC_CONF"] = "dirty_decay_ms:0"
    try:
        import deltalake as _deltalake  # noqa: F401
    finally:
        del _os.environ["_RJEM_MALLOC_CONF"]

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
