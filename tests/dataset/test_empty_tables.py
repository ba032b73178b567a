"""No silent empties: a table no sync ever wrote is a TableNotSyncedError that says which sync
writes it; a table synced with no rows is 0 rows."""

from __future__ import annotations

import pytest

import dfs_analytics as dfs
from dfs_analytics.dataset import Writer
from dfs_analytics.errors import DatasetError, TableNotSyncedError

pytestmark = pytest.mark.sim(work_orders=12, seed=3)


def test_a_table_never_synced_is_an_error_that_says_how_to_sync_it(sim, client_for) -> None:
    client = client_for(sim)
    dfs.sync(client)  # no timelines, no task groups
    ds = dfs.open_dataset(client)
    assert len(ds.tasks()) and len(ds.work_orders())
    with pytest.raises(TableNotSyncedError, match=r"timelines=True") as caught:
        ds.timeline()
    assert isinstance(caught.value, DatasetError) and caught.value.table == "timeline"
    with pytest.raises(TableNotSyncedError, match="load_task_groups"):
        ds.task_groups()
    with pytest.raises(TableNotSyncedError):
        ds.to_dask("timeline")
    first = ds.version
    dfs.sync(client, timelines=True)
    ds = dfs.open_dataset(client)
    assert len(ds.timeline()) > 0
    with pytest.raises(TableNotSyncedError):  # that version still had none
        ds.timeline(as_of=first)


def test_a_table_synced_empty_has_zero_rows(tmp_path) -> None:
    writer = Writer(tmp_path / "ds", "https://site.test")
    ds = writer.dataset
    assert len(ds.tasks()) == 0  # no version yet: nothing to read, every frame empty
    writer.commit({"work_orders": (None, []), "tasks": (None, [])}, {"complete": True})
    assert len(ds.work_orders()) == 0 and len(ds.tasks()) == 0  # synced: none on the server
    with pytest.raises(TableNotSyncedError, match="timelines=True"):
        ds.timeline()
    writer.commit({"timeline": (None, [])}, {"complete": True, "with_timelines": True})
    assert len(ds.timeline()) == 0
    assert len(ds.to_dask("timeline").compute()) == 0
    writer.commit({"task_groups": (None, [])}, {"filters": {"task_groups": True}})
    assert len(ds.task_groups()) == 0
