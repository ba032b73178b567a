"""What a kept :class:`Dataset` remembers between reads (decoded data files, version rows,
which tables were synced) never makes it read other rows than a dataset opened afresh, and
a commit made through another object is seen at the next read.

Every test syncs from a real simulator over HTTP into a dataset under ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import dfs_analytics as dfs
from dfs_analytics.dataset.reader import DecodedFiles

pytestmark = pytest.mark.sim(work_orders=40, seed=11)


def frames(ds: dfs.Dataset, **kw: object) -> dict[str, pd.DataFrame]:
    return {
        "work_orders": ds.work_orders(**kw),
        "tasks": ds.tasks(**kw),
        "timeline": ds.timeline(**kw),
        "task_columns": ds.tasks(columns=["work_order_id", "task_name"], **kw),
    }


def synced_twice(client: dfs.Client, reader: dfs.Client, load: Any) -> str:
    """Load with ``load``, change one work order through ``reader``, load again: the
    dataset's location (two versions, the second rewriting one partition)."""
    load(client)
    wo_id = dfs.load_work_orders(client)["work_order_id"].iloc[0]
    reader.patch_metadata(wo_id, {"again": True})
    load(client)
    return client.dataset_location


def assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


def test_a_kept_dataset_reads_after_commits_what_a_fresh_one_reads(sim, client_for, reader) -> None:
    client = client_for(sim)
    dfs.load_timeline(client)
    kept = dfs.open_dataset(client.dataset_location)
    first = kept.version
    before = frames(kept)
    ids = before["work_orders"]["work_order_id"].tolist()
    for round_ in range(3):  # each round commits new files in one partition or two
        reader.patch_metadata(ids[round_ * 5], {"round": round_})
        reader.patch_metadata(ids[-1 - round_], {"round": round_})
        dfs.load_tasks(client)
        dfs.load_timeline(client)
        fresh = dfs.open_dataset(client.dataset_location)
        assert kept.version == fresh.version > first  # the other object's commit is seen
        assert_same(frames(kept), frames(fresh))
    assert kept.work_orders()["metadata.round"].notna().sum() == 6
    # the first version still reads as it did
    assert_same(frames(kept, as_of=first), before)


def test_decoded_files_stay_within_their_limit_and_read_what_arrow_reads(
    sim, client_for, reader
) -> None:
    location = synced_twice(client_for(sim), reader, dfs.load_timeline)
    data = dfs.open_dataset(location).arrow_dataset("timeline")
    fragments = list(data.get_fragments())
    assert len(fragments) > 2
    smallest = min(f.to_table(schema=data.schema).nbytes for f in fragments)
    decoded = DecodedFiles(limit=2 * smallest)
    for columns in (data.schema.names, ["work_order_id"], data.schema.names):
        for chosen in (fragments, fragments[::-1], fragments[:1]):
            got = decoded.read("timeline", data, chosen, columns)
            want = pa.concat_tables(
                [f.to_table(schema=data.schema, columns=columns) for f in chosen]
            )
            assert got.equals(want)
            assert decoded.held <= decoded.limit
    assert decoded.read("timeline", data, [], ["work_order_id"]).num_rows == 0
    decoded.clear()
    assert decoded.held == 0


def test_a_version_naming_a_commit_its_table_lost_is_an_error_naming_it(
    sim, client_for, reader
) -> None:
    location = synced_twice(client_for(sim), reader, dfs.load_tasks)
    kept = dfs.open_dataset(location)
    named = kept.table_versions()["tasks"]
    log = Path(location) / "tasks" / "_delta_log"
    (log / f"{named:020d}.json").unlink()  # the table's last commit is lost
    with pytest.raises(dfs.DatasetCorruptError, match=f"names version {named} of the tasks"):
        dfs.open_dataset(location).tasks()
