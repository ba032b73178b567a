"""What a sync remembers per work order beyond its index of stored dates: a cold sync keeps
no set of the work orders it added, a refresh only the stored ones it rewrote or deleted,
and the timelines of neither are read again by the same sync."""

from __future__ import annotations

from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.syncing import batches

pytestmark = pytest.mark.sim(work_orders=40, seed=11)


def _remembered(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The ``seen`` set of each committer, as it is when its sync finishes."""
    out: list[set[str]] = []
    finish = batches.Committer.finish

    def recording_finish(self: batches.Committer) -> None:
        out.append(set(self.seen))
        finish(self)

    monkeypatch.setattr(batches.Committer, "finish", recording_finish)
    return out


def test_a_cold_sync_remembers_no_added_work_order(
    sim: Any, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    remembered = _remembered(monkeypatch)
    client = client_for(sim)
    res = dfs.sync(client, timelines=True)
    assert res.fetched == 40 and res.timelines == 40
    assert remembered == [set()]


def test_a_refresh_remembers_only_the_stored_work_orders_it_rewrote(
    sim: Any, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(sim)
    dfs.sync(client, timelines=True)
    ids = sorted(dfs.open_dataset(client).work_orders()["work_order_id"])
    other = client_for(sim, cache=None)
    other.patch_metadata(ids[3], {"region": "zzz"})
    other.delete_work_order(ids[5])
    remembered = _remembered(monkeypatch)
    res = dfs.sync(client, timelines=True)
    assert (res.updated, res.deleted) == (1, 1)
    # the rewritten work order's timeline was read with it, once; no other was read
    assert res.timelines == 1
    assert remembered == [{ids[3], ids[5]}]
