"""What a sync holds at once: timelines in flight or waiting as parsed JSON are bounded by
``(AHEAD + 2) * CHUNK`` whatever the batch, and a batch is committed once its Arrow rows
reach ``BATCH_BYTES``; either bound changes the versions, never the rows written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.syncing import batches, limits

# one simulator for the module: its tests only read it
pytestmark = pytest.mark.sim(work_orders=60, seed=5, scope="module")


def _frames(client: dfs.Client) -> list[pd.DataFrame]:
    """The work orders, tasks and timeline the client's dataset holds, in a stable order,
    without the columns that say when they were read."""
    ds = dfs.open_dataset(client)
    out = []
    for frame, keys in (
        (ds.work_orders(), ["work_order_id"]),
        (ds.tasks(), ["work_order_id", "task_name"]),
        (ds.timeline(), None),  # every column
    ):
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
        keys = list(frame.columns) if keys is None else [k for k in keys if k in frame.columns]
        out.append(frame.astype(str).sort_values(keys).reset_index(drop=True))
    return out


@pytest.fixture(scope="module")
def reference(
    module_sim: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[pd.DataFrame]]:
    """The frames of a sync of the module's simulator with the default limits (synced once:
    the tests only compare with them)."""
    cache = tmp_path_factory.mktemp("reference")
    with dfs.Client(
        module_sim.base_url, api_key=module_sim.api_key, cache=cache, progress=False
    ) as client:
        dfs.sync(client, timelines=True)
        yield _frames(client)


def _assert_same_rows(reference: list[pd.DataFrame], client: dfs.Client) -> None:
    """The client's dataset holds the reference's rows."""
    for a, b in zip(reference, _frames(client), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_timelines_held_at_once_are_bounded_and_the_rows_are_the_same(
    sim: Any,
    client_for: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    reference: list[pd.DataFrame],
) -> None:

    held: list[int] = []
    add = batches.Committer.add

    def counting_add(self: batches.Committer, *args: Any, **kwargs: Any) -> None:
        add(self, *args, **kwargs)
        held.append(len(self.futures))

    monkeypatch.setattr(batches.Committer, "add", counting_add)
    monkeypatch.setattr(limits, "CHUNK", 4)
    monkeypatch.setattr(limits, "AHEAD", 1)
    monkeypatch.setattr(limits, "BATCH", 1000)
    monkeypatch.setattr(limits, "BATCH_SECONDS", 1e9)
    client = client_for(sim, cache=tmp_path / "bounded")
    res = dfs.sync(client, timelines=True)
    assert res.commits == 1 and res.timelines == 60  # one batch: only the window bounds it
    assert max(held) <= (limits.AHEAD + 2) * limits.CHUNK
    _assert_same_rows(reference, client)


def test_a_batch_is_committed_once_its_rows_reach_batch_bytes(
    sim: Any,
    client_for: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    reference: list[pd.DataFrame],
) -> None:

    monkeypatch.setattr(limits, "CHUNK", 10)
    monkeypatch.setattr(limits, "BATCH", 1000)
    monkeypatch.setattr(limits, "BATCH_SECONDS", 1e9)
    monkeypatch.setattr(limits, "BATCH_BYTES", 1)
    client = client_for(sim, cache=tmp_path / "by_bytes")
    res = dfs.sync(client, timelines=True)
    # every chunk of 10 fills a batch: 6 data versions and the one that marks it complete
    assert res.commits >= 60 // limits.CHUNK and res.timelines == 60
    _assert_same_rows(reference, client)


POOL_CODE = """
import pyarrow as pa
import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator
before = pa.default_memory_pool().backend_name
with Simulator(work_orders=3, seed=1) as sim:
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=CACHE, progress=False)
    dfs.sync(client)
print(before, pa.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [(None, "system"), ("mimalloc", "mimalloc")],
    ids=["by-default", "the-process-choice"],
)
def test_a_sync_allocates_arrow_memory_through_the_system_allocator(
    tmp_path: Any, chosen: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = POOL_CODE.replace("CACHE", repr(str(tmp_path)))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.split()
    assert after == expected
    if chosen is not None:  # the process's choice was in place before and is kept
        assert before == chosen
