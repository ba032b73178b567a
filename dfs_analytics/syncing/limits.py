"""The sync's size limits: how much one batch, page, chunk or probe may hold.

Every module of the package reads them here at call time (``limits.BATCH``), so setting one
on the package (``dfs_analytics.syncing.BATCH = 100``, as a test or a tuning session does)
changes what the next sync does. This module holds constants only: it never computes.
"""

from __future__ import annotations

BATCH = 1000  # work orders per commit, at most
BATCH_SECONDS = 2.0  # seconds of work per commit, at most
BATCH_BYTES = 64 * 2**20  # bytes of Arrow rows per commit, at most (long timelines, wide rows)
# list page size of a sync: the pages in flight are most of what a sync holds (a page of 100
# work orders is about 1 MB of JSON and 3 MB as Python objects; 8 pages are in flight)
SYNC_PAGE = 50
# work orders (and timelines) parsed into Arrow rows at a time: each parse has a fixed cost,
# and what waits for one is held as parsed JSON
CHUNK = 250
AHEAD = 1  # chunks of timelines asked for ahead of the one being parsed
PROBE_SIZE = 10  # work orders the "what changed?" request asks for
COMPACT_FILES = 64  # compact once the tables hold more data files than this

__all__ = [
    "AHEAD",
    "BATCH",
    "BATCH_BYTES",
    "BATCH_SECONDS",
    "CHUNK",
    "COMPACT_FILES",
    "PROBE_SIZE",
    "SYNC_PAGE",
]
