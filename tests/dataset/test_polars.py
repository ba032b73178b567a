"""Dataset.to_polars: a LazyFrame of each table at a dataset version, equal to the pandas
frame of that version on their common columns."""

from __future__ import annotations

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.dataset.arrow import SPECS
from dfs_analytics.errors import TableNotSyncedError

pl = pytest.importorskip("polars")
pytestmark = pytest.mark.sim(work_orders=20, seed=8)

_PLAIN = {"string", "category", "datetime", "boolean", "Int64", "float"}


def _same(lazy: object, frame: pd.DataFrame, table: str) -> None:
    got = lazy.collect().to_pandas()  # type: ignore[attr-defined]
    assert len(got) == len(frame)
    kinds = {c.name: c.kind for c in SPECS[table]}
    cols = [c for c in frame.columns if c in got.columns and kinds.get(c) in _PLAIN]
    assert {"work_order_id", "task_id"} <= set(cols)
    keys = ["work_order_id", "task_id"]

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        out = df[cols].astype(object).where(df[cols].notna(), None).astype(str)
        return out.sort_values(keys, ignore_index=True)

    pd.testing.assert_frame_equal(norm(got), norm(frame))


def test_to_polars_equals_the_pandas_frame_at_every_version(sim, client_for) -> None:
    client = client_for(sim)
    dfs.sync(client)
    wo = dfs.load_work_orders(client)
    with pytest.raises(TableNotSyncedError, match="timelines=True"):
        dfs.open_dataset(client).to_polars("timeline")
    fresh = wo.loc[~wo["reviewed"].fillna(False).astype(bool), "work_order_id"].astype(str)
    sim.review(sorted(fresh)[:3])
    dfs.sync(client)
    ds = dfs.open_dataset(client)
    assert ds.version is not None and ds.version >= 1
    for v in range(ds.version + 1):
        _same(ds.to_polars("tasks", as_of=v), ds.tasks(as_of=v), "tasks")
    assert ds.to_polars("tasks").collect().height == len(ds.tasks())
