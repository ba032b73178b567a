"""A table's files as an Arrow dataset: the same rows and schema as deltalake's own
``to_pyarrow_dataset``, partition values (null ones included) filled in and usable to skip
files, read with page checksum verification."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable, write_deltalake

from dfs_analytics.dataset.integrity import table_dataset


@pytest.fixture
def table(tmp_path) -> tuple[DeltaTable, str]:
    rows = pa.table(
        {
            "work_order_id": ["a", "b", "c", "d", "e"],
            "n": pa.array([1, 2, None, 4, 5], pa.int64()),
            "create_month": ["2026-01", "2026-02", None, "2026-01", "2026-03"],
            "day": pa.array([1, 2, 3, 1, None], pa.int32()),
        }
    )
    location = str(tmp_path)
    uri = str(tmp_path / "tasks")
    write_deltalake(uri, rows, partition_by=["create_month", "day"])
    write_deltalake(uri, rows.slice(0, 2), mode="append", partition_by=["create_month", "day"])
    return DeltaTable(uri), location


def test_the_same_rows_and_schema_as_deltalakes_dataset(table) -> None:
    dt, location = table
    ours, theirs = table_dataset(dt, location, "tasks"), dt.to_pyarrow_dataset()
    assert ours.schema == theirs.schema
    assert isinstance(ours.filesystem, pafs.SubTreeFileSystem)  # Arrow's own, not Python's
    keys = [("work_order_id", "ascending"), ("n", "ascending")]
    got, want = ours.to_table().sort_by(keys), theirs.to_table().sort_by(keys)
    assert got.num_rows == 7 and got.equals(want)
    assert sorted(f.path for f in ours.get_fragments()) == sorted(
        f.path for f in theirs.get_fragments()
    )


@pytest.mark.parametrize(
    "where",
    [
        pc.field("create_month") == "2026-01",
        pc.field("create_month").is_null(),
        pc.field("day") == 2,
        pc.field("day").is_null() & (pc.field("create_month") == "2026-03"),
    ],
    ids=["month", "null-month", "typed-day", "null-day"],
)
def test_partition_values_select_files_and_rows(table, where) -> None:
    dt, location = table
    ours, theirs = table_dataset(dt, location, "tasks"), dt.to_pyarrow_dataset()
    chosen = list(ours.get_fragments(filter=where))
    assert 0 < len(chosen) < len(list(ours.get_fragments()))  # files are skipped
    keys = [("work_order_id", "ascending"), ("n", "ascending")]
    got = ours.to_table(filter=where).sort_by(keys)
    assert got.num_rows > 0 and got.equals(theirs.to_table(filter=where).sort_by(keys))


def test_an_object_store_location_goes_through_deltalake(table, monkeypatch) -> None:
    dt, _ = table
    calls = []
    original = DeltaTable.to_pyarrow_dataset

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "to_pyarrow_dataset", spy)
    data = table_dataset(dt, "s3://bucket/site", "tasks")
    assert calls and data.to_table().num_rows == 7
    assert not isinstance(data.filesystem, pafs.SubTreeFileSystem)
