"""``sync()``: bring a client's dataset up to date with the server, in resumable, bounded batches.

The package behind :func:`dfs_analytics.sync` (named ``syncing`` so that the function
``dfs_analytics.sync`` does not hide it), and the only way to a client's dataset. Its modules:
:mod:`.state` (per-client state; opening a client's dataset), :mod:`.algorithm` (what to read),
:mod:`.batches` (stored rows, commits, the progress bar), :mod:`.timelines`, :mod:`.result`
(``SyncResult``) and :mod:`.limits` (batch and page sizes: setting one here, e.g.
``syncing.BATCH = 100``, changes what the next sync does). It never speaks HTTP but through the
client and never builds a frame for the user.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from . import limits
from .algorithm import sync, sync_ids, sync_task_groups
from .batches import addressable, work_order_tables
from .limits import (
    AHEAD,
    BATCH,
    BATCH_BYTES,
    BATCH_SECONDS,
    CHUNK,
    COMPACT_FILES,
    PROBE_SIZE,
    SYNC_PAGE,
)
from .result import SyncResult
from .state import (
    client_dataset,
    existing_dataset,
    open_dataset,
    writer,
    written,
    written_since_stored,
)

__all__ = [
    "AHEAD",
    "BATCH",
    "BATCH_BYTES",
    "BATCH_SECONDS",
    "CHUNK",
    "COMPACT_FILES",
    "PROBE_SIZE",
    "SYNC_PAGE",
    "SyncResult",
    "addressable",
    "client_dataset",
    "existing_dataset",
    "open_dataset",
    "sync",
    "sync_ids",
    "sync_task_groups",
    "work_order_tables",
    "writer",
    "written",
    "written_since_stored",
]


def __getattr__(name: str) -> Any:
    if name == "dataset":  # renamed: "dataset" names the store (dfs_analytics.dataset) only
        warnings.warn(
            "dfs_analytics.syncing.dataset(client) is deprecated and will be removed in the "
            "next release: use dfs_analytics.syncing.client_dataset(client) (or "
            "dfs_analytics.open_dataset(client)).",
            DeprecationWarning,
            stacklevel=2,
        )
        return client_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "dataset"})


class _Package(types.ModuleType):
    """This package as a module whose size limits, when set (``syncing.BATCH = 100``), are
    set in :mod:`.limits`, where every module of the sync reads them."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in limits.__all__:
            setattr(limits, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
