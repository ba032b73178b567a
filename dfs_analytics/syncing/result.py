"""``SyncResult``: what one sync did (version, counts, requests, concurrency reached).

A plain record the sync fills in and hands back; it never reads the dataset or the server.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any


@dataclass
class SyncResult:
    """What one :func:`~dfs_analytics.sync` did.

    ``version`` is the dataset version after its last commit (the previous version when
    nothing changed); ``location`` the dataset's folder or URI; ``filters`` the query synced;
    ``listed`` the work orders the server listed for the filters;
    ``fetched`` new ones written, ``updated`` changed ones rewritten, ``deleted`` removed;
    ``timelines`` timelines fetched; ``requests`` HTTP requests sent; ``commits`` dataset
    versions written; ``seconds`` wall time; ``concurrency`` the most requests the client had
    in flight at once during the sync, ``concurrency_limit`` the highest limit it allowed
    (see :mod:`dfs_analytics.concurrency`); ``throttled`` the 429 answers received.
    """

    version: int | None
    location: str
    filters: dict[str, Any]
    listed: int = 0
    fetched: int = 0
    updated: int = 0
    deleted: int = 0
    timelines: int = 0
    requests: int = 0
    commits: int = 0
    seconds: float = 0.0
    concurrency: int = 0
    concurrency_limit: int = 0
    throttled: int = 0

    @property
    def changed(self) -> bool:
        """Whether the sync committed anything (at least one new dataset version)."""
        return self.commits > 0

    @property
    def dataset(self) -> str:
        """Deprecated: the dataset's folder or URI; use :attr:`location`."""
        warnings.warn(
            "SyncResult.dataset is deprecated and will be removed in the next release: use "
            "SyncResult.location (the dataset's folder or URI).",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.location
