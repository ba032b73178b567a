"""A work order deleted on the server: every file of the dataset keeps the dataset's schema,
every reader still works and equals a cold load, and every file stays checksummed.

Each test syncs from a real simulator over HTTP into a dataset under ``tmp_path``.
"""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import dfs_analytics as dfs
from dfs_analytics import dataset as store
from tests.helpers import TASK_KEYS, TIMELINE_KEYS, WO_KEYS, assert_frames_equal

pytestmark = pytest.mark.sim(work_orders=30, seed=3)

KEYS = {
    "work_orders": WO_KEYS,
    "tasks": TASK_KEYS,
    "timeline": TIMELINE_KEYS,
    "task_groups": ["task_group_id", "task_id"],
}


def busiest_month(wo: pd.DataFrame) -> tuple[str, list[str]]:
    """The creation month holding the most work orders, and their ids (oldest first)."""
    month = wo["create_date"].dt.strftime("%Y-%m")
    top = month.value_counts().index[0]
    return top, wo.loc[month == top, "work_order_id"].tolist()


def assert_one_schema(ds: dfs.Dataset) -> None:
    """Every data file of the latest version holds the table's stored Arrow schema."""
    for table in store.TABLES:
        want = store.arrow_schema(table)
        for uri in ds.files(table):
            got = pq.read_schema(uri)
            types = {f.name: f.type for f in got if f.name in want.names}
            assert types == {f.name: f.type for f in want if f.name in types}, (table, uri)


def assert_reads_equal_a_cold_load(
    client: dfs.Client, cold: dfs.Client, month: str, ids: list[str]
) -> None:
    """Every loader and reader of ``client``'s dataset equals ``cold``'s fresh load."""
    start = pd.Timestamp(f"{month}-01", tz="UTC")
    window = {
        "created_after": start.isoformat(),
        "created_before": (start + pd.offsets.MonthBegin()).isoformat(),
    }
    loaders = {
        "work_orders": lambda c, **kw: dfs.load_work_orders(c, **kw),
        "tasks": lambda c, **kw: dfs.load_tasks(c, **kw),
        "timeline": lambda c, **kw: dfs.load_timeline(c, **kw),
    }
    for table, load in loaders.items():
        assert_frames_equal(load(client), load(cold), KEYS[table])
        assert_frames_equal(load(client, **window), load(cold, **window), KEYS[table])
    assert_frames_equal(
        dfs.load_timeline(client, ids[:2]), dfs.load_timeline(cold, ids[:2]), TIMELINE_KEYS
    )
    assert_frames_equal(
        dfs.load_task_groups(client), dfs.load_task_groups(cold), KEYS["task_groups"]
    )

    mine, theirs = dfs.open_dataset(client), dfs.open_dataset(cold)
    for table in store.TABLES:
        read = getattr(mine, table)
        assert_frames_equal(read(), getattr(theirs, table)(), KEYS[table])
    assert_frames_equal(
        mine.tasks(columns=["work_order_id", "task_id", "task_name"], **window),
        theirs.tasks(columns=["work_order_id", "task_id", "task_name"], **window),
        TASK_KEYS,
    )
    assert_frames_equal(
        mine.timeline(work_order_ids=ids), theirs.timeline(work_order_ids=ids), TIMELINE_KEYS
    )

    quoted = ", ".join(f"'{i}'" for i in ids)
    query = (
        "SELECT work_order_id, task_id, task_name FROM tasks "
        f"WHERE work_order_id IN ({quoted}) ORDER BY work_order_id, task_id"
    )
    got, want = mine.duckdb().execute(query).df(), theirs.duckdb().execute(query).df()
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, want)
    for table in ("work_orders", "tasks", "timeline"):
        query = f"SELECT count(*) FROM {table} WHERE create_month = '{month}'"
        assert mine.duckdb().execute(query).fetchone() == theirs.duckdb().execute(query).fetchone()

    for table in ("work_orders", "tasks", "timeline"):
        got, want = mine.to_dask(table).compute(), theirs.to_dask(table).compute()
        # (the keys of ``_extra`` columns come in each file's own order)
        assert_frames_equal(got[sorted(got.columns)], want[sorted(want.columns)], KEYS[table])


def test_a_deleted_work_order_leaves_every_reader_working(sim, client_for, new_cache) -> None:
    client = client_for(sim)
    wo = dfs.load_work_orders(client)
    dfs.load_tasks(client)
    dfs.load_timeline(client)
    dfs.load_task_groups(client)
    month, same = busiest_month(wo)
    assert len(same) >= 4

    client.delete_work_order(same[0])  # over HTTP: the server forgets it
    after = dfs.load_work_orders(client)
    assert same[0] not in set(after["work_order_id"])
    ds = dfs.open_dataset(client)
    assert ds.history()["deleted"].iloc[-1] == 1
    # the month the deleted work order shared with others is read by id and by filter
    timeline = dfs.load_timeline(client, [same[1]])
    assert set(timeline["work_order_id"]) == {same[1]}
    assert_one_schema(ds)
    assert ds.verify().empty

    # a second deletion in the same month, then a change of a neighbour: more rewrites
    client.delete_work_order(same[2])
    client.patch_metadata(same[1], {"checked": "yes"})
    dfs.load_timeline(client)
    ds = dfs.open_dataset(client)
    assert_one_schema(ds)
    problems = ds.verify()
    assert problems.empty, problems.to_dict("records")
    assert problems.attrs["files_checked"] > 0

    cold = client_for(sim, cache=new_cache())
    gone = {same[0], same[2]}
    assert not gone & set(dfs.load_work_orders(client)["work_order_id"])
    assert_reads_equal_a_cold_load(client, cold, month, [i for i in same if i not in gone])


def test_deleting_every_work_order_of_a_month(sim, client_for, new_cache) -> None:
    client = client_for(sim)
    wo = dfs.load_work_orders(client)
    dfs.load_timeline(client)
    month = wo["create_date"].dt.strftime("%Y-%m")
    lone = month.value_counts().index[-1]
    ids = wo.loc[month == lone, "work_order_id"].tolist()
    _, busy = busiest_month(wo)
    for wo_id in ids:
        client.delete_work_order(wo_id)
    client.delete_work_order(busy[-1])
    dfs.load_timeline(client)
    ds = dfs.open_dataset(client)
    assert not set(ids) & set(ds.work_orders()["work_order_id"])
    start = pd.Timestamp(f"{lone}-01", tz="UTC")
    end = start + pd.offsets.MonthBegin()
    assert ds.timeline(created_after=start, created_before=end).empty
    assert dfs.load_tasks(client, created_after=start, created_before=end).empty
    assert_one_schema(ds)
    assert ds.verify().empty
    cold = client_for(sim, cache=new_cache())
    assert_reads_equal_a_cold_load(client, cold, lone, busy[:-1])


def test_files_an_earlier_release_deleted_with_delta_rs_are_rewritten(
    sim, client_for, new_cache, tmp_path
) -> None:
    """Earlier releases deleted with delta-rs's ``DeltaTable.delete``, which writes
    ``string_view`` columns: the next writer rewrites those partitions with the table's
    schema, as one new version whose files are checksummed, and every reader works again."""
    cache = new_cache()
    client = client_for(sim, cache=cache)
    wo = dfs.load_work_orders(client)
    dfs.load_timeline(client)
    month, same = busiest_month(wo)
    client.delete_work_order(same[0])
    ds = dfs.open_dataset(client)
    for table in ("work_orders", "tasks", "timeline"):  # what those releases did
        DeltaTable(f"{ds.path}/{table}").delete(
            f"create_month = '{month}' AND work_order_id = '{same[0]}'"
        )
    foreign = [
        uri
        for table in ("work_orders", "tasks", "timeline")
        for uri in DeltaTable(f"{ds.path}/{table}").file_uris()
        if "string_view" in {str(f.type) for f in pq.read_schema(uri)}
    ]
    assert foreign  # the damage this test is about
    versions = len(ds.history())
    client.close()

    again = client_for(sim, cache=cache)  # a new writer on the same dataset
    assert same[0] not in set(dfs.load_work_orders(again)["work_order_id"])
    assert len(dfs.load_tasks(again, created_after=f"{month}-01"))
    timeline = dfs.load_timeline(again, [same[1]])
    assert set(timeline["work_order_id"]) == {same[1]}
    ds = dfs.open_dataset(again)
    history = ds.history()
    assert len(history) > versions
    rewritten = [f for f in history["filters"] if "rewritten_partitions" in f]
    assert rewritten and month in rewritten[0]["rewritten_partitions"]["timeline"]
    assert_one_schema(ds)
    assert ds.verify().empty
    cold = client_for(sim, cache=new_cache())
    assert_reads_equal_a_cold_load(again, cold, month, same[1:])
