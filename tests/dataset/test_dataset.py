"""The on-disk dataset: as_of, column reads, sharing with a colleague, DuckDB and Dask views,
bad or damaged datasets, spec upgrades, owner-only files, loads from several threads.

Every test syncs from a real simulator over HTTP into a dataset under ``tmp_path``; what a
sync commits is in ``tests/syncing/test_sync.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

import dfs_analytics as dfs
from dfs_analytics import dataset as store
from tests.helpers import delta

pytestmark = pytest.mark.sim(work_orders=60, seed=5)


def test_as_of_gives_the_frames_of_that_version_offline_without_a_request(
    sim, client_for, reader
) -> None:
    client = client_for(sim)
    tasks_v1 = dfs.load_tasks(client)
    timeline_v1 = dfs.load_timeline(client)
    v1 = dfs.open_dataset(client).version
    moment = pd.Timestamp.now(tz="UTC")
    time.sleep(0.05)
    wo_id = tasks_v1["work_order_id"].iloc[0]
    reader.patch_metadata(wo_id, {"after": True})
    tasks_v2 = dfs.load_tasks(client)
    dfs.load_timeline(client)
    assert dfs.open_dataset(client).version > v1
    offline = client_for(sim, offline=True)
    before = sim.request_counts()
    pd.testing.assert_frame_equal(dfs.load_tasks(offline, as_of=v1), tasks_v1)
    pd.testing.assert_frame_equal(dfs.load_timeline(offline, as_of=v1), timeline_v1)
    pd.testing.assert_frame_equal(dfs.load_tasks(offline, as_of=moment), tasks_v1)
    pd.testing.assert_frame_equal(dfs.load_tasks(offline), tasks_v2)
    wo_v1 = dfs.load_work_orders(offline, as_of=v1)
    assert "metadata.after" not in wo_v1.columns
    assert delta(sim, before) == {}
    assert dfs.load_tasks(offline, as_of=v1).attrs["dfs_provenance"]["version"] == v1


def test_as_of_that_does_not_exist_is_a_clear_error(sim, client_for) -> None:
    client = client_for(sim)
    dfs.load_tasks(client)
    last = dfs.open_dataset(client).version
    with pytest.raises(dfs.VersionNotFoundError, match="no such version"):
        dfs.load_tasks(client, as_of=last + 10)
    with pytest.raises(dfs.VersionNotFoundError, match="before the dataset's first version"):
        dfs.load_tasks(client, as_of="2001-01-01")
    with pytest.raises(dfs.ConfigurationError, match="as_of"):
        dfs.load_tasks(client, as_of="yesterday-ish")
    fresh = client_for(sim, cache=None)
    with pytest.raises(dfs.VersionNotFoundError):
        dfs.load_tasks(fresh, as_of=0)


def test_columns_are_read_alone_and_in_order(sim, client_for) -> None:
    client = client_for(sim)
    full = dfs.load_tasks(client)
    some = dfs.load_tasks(client, columns=["task_name", "is_overridden", "work_order_id"])
    pd.testing.assert_frame_equal(some, full[["task_name", "is_overridden", "work_order_id"]])
    with pytest.raises(dfs.ConfigurationError, match="unknown column"):
        dfs.load_tasks(client, columns=["nope"])


def test_a_colleague_reads_a_shared_dataset_without_a_key(sim, client_for, tmp_path) -> None:
    shared = tmp_path / "shared" / "site"
    client = client_for(sim, dataset=shared)
    tasks = dfs.load_tasks(client)
    timeline = dfs.load_timeline(client)
    files_before = sorted(p for p in shared.rglob("*") if p.is_file())
    ds = dfs.open_dataset(str(shared))
    assert ds.site == dfs.Client(sim.base_url, cache=None).base_url
    pd.testing.assert_frame_equal(ds.tasks(), tasks)
    pd.testing.assert_frame_equal(ds.timeline(), timeline)
    assert sorted(p for p in shared.rglob("*") if p.is_file()) == files_before
    key = sim.api_key.encode()
    assert all(key not in p.read_bytes() for p in files_before), "the key is in the dataset"


def test_duckdb_views_give_the_same_counts_as_pandas(sim, client_for) -> None:
    client = client_for(sim)
    tasks = dfs.load_tasks(client)
    dfs.load_timeline(client)
    dfs.load_task_groups(client)
    con = dfs.open_dataset(client).duckdb()
    got = con.execute(
        "SELECT task_name, count(*) AS n, sum(CASE WHEN is_overridden THEN 1 ELSE 0 END) AS k "
        "FROM tasks GROUP BY task_name ORDER BY task_name"
    ).df()
    want = (
        tasks.assign(task_name=tasks["task_name"].astype(str))
        .groupby("task_name")["is_overridden"]
        .agg(n="size", k=lambda s: int(s.fillna(False).sum()))
        .reset_index()
    )
    assert got["task_name"].tolist() == want["task_name"].tolist()
    assert got["n"].tolist() == want["n"].tolist()
    assert got["k"].astype(int).tolist() == want["k"].tolist()
    for table in ("work_orders", "timeline", "task_groups"):
        (n,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert n > 0


def test_dask_on_a_local_cluster_equals_pandas(sim, client_for) -> None:
    distributed = pytest.importorskip("distributed")
    client = client_for(sim)
    tasks = dfs.load_tasks(client)
    ds = dfs.open_dataset(client)
    with (
        distributed.LocalCluster(  # its HTTP routes on a free port, without the dashboard
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        distributed.Client(cluster),
    ):
        frame = ds.to_dask("tasks")
        assert frame.npartitions >= 1
        local = frame.compute()  # the same rows in pandas (categoricals as plain strings)
        assert len(local) == len(tasks)
        for name, fn in (
            ("override_rates", lambda f: dfs.override_rates(f, by=["task_name", "month"])),
            ("confusion", dfs.confusion),
            ("drift", dfs.drift),
        ):
            got = fn(frame)
            pd.testing.assert_frame_equal(got, fn(local), obj=name)
            # and the same figures as the loaders' frame, whose names are categoricals
            pd.testing.assert_frame_equal(
                got, fn(tasks), check_dtype=False, check_categorical=False, obj=name
            )


def test_another_sites_dataset_is_refused(dfs_simulator_factory, client_for, tmp_path) -> None:
    a = dfs_simulator_factory(work_orders=10, seed=1)
    b = dfs_simulator_factory(work_orders=10, seed=2)
    path = tmp_path / "site-a"
    dfs.load_tasks(client_for(a, dataset=path))
    version = dfs.open_dataset(str(path)).version
    with pytest.raises(dfs.SiteMismatchError, match="belongs to one site"):
        dfs.load_tasks(client_for(b, dataset=path))
    assert dfs.open_dataset(str(path)).version == version


def test_a_path_that_is_not_a_dataset(sim, client_for, tmp_path) -> None:
    with pytest.raises(dfs.NotADatasetError, match="not a dfs-analytics dataset"):
        dfs.open_dataset(tmp_path / "nothing-here")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(dfs.NotADatasetError, match="not empty"):
        dfs.load_tasks(client_for(sim, dataset=busy))
    assert (busy / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def _data_files(root: Path, table: str) -> list[Path]:
    return sorted((root / table).rglob("*.parquet"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_data_file_is_a_clear_error(sim, client_for, tmp_path, damage) -> None:
    path = tmp_path / "ds"
    client = client_for(sim, dataset=path)
    dfs.load_tasks(client)
    victim = _data_files(path, "tasks")[0]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        victim.write_bytes(b"\x00" * len(data))
    else:
        victim.unlink()
    with pytest.raises(dfs.DatasetCorruptError, match="damaged or missing"):
        dfs.open_dataset(str(path)).tasks()
    offline = client_for(sim, dataset=path, offline=True)
    with pytest.raises(dfs.DatasetCorruptError):
        dfs.load_tasks(offline)


def test_a_damaged_log_is_a_clear_error(sim, client_for, tmp_path) -> None:
    path = tmp_path / "ds"
    dfs.load_tasks(client_for(sim, dataset=path))
    logs = sorted((path / "syncs" / "_delta_log").glob("*.json"))
    logs[-1].write_text("{ not json")
    with pytest.raises(dfs.DatasetError):
        dfs.open_dataset(str(path)).tasks()


def test_a_dataset_of_an_older_spec_is_rebuilt(sim, client_for, tmp_path) -> None:
    path = tmp_path / "ds"
    client = client_for(sim, dataset=path)
    tasks = dfs.load_tasks(client)
    old_version = dfs.open_dataset(str(path)).version
    # what an older release wrote: no 'mandatory' column, schema version 0
    table = DeltaTable(str(path / "tasks")).to_pyarrow_table().drop_columns(["mandatory"])
    write_deltalake(
        str(path / "tasks"),
        table,
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=["create_month"],
    )
    syncs = DeltaTable(str(path / "syncs"))
    last = syncs.to_pyarrow_table().sort_by([("version", "descending")]).slice(0, 1).to_pylist()[0]
    last.update(
        version=last["version"] + 1, tasks_version=DeltaTable(str(path / "tasks")).version()
    )
    write_deltalake(
        str(path / "syncs"),
        pa.Table.from_pylist([last], schema=syncs.to_pyarrow_table().schema),
        mode="append",
    )
    DeltaTable(str(path / "syncs")).alter.set_table_description(
        json.dumps(
            {"format": "dfs-analytics", "site": store.site_of(client.base_url), "schema_version": 0}
        )
    )
    assert dfs.open_dataset(str(path)).schema_version == 0
    old = dfs.open_dataset(str(path)).tasks()
    assert old["mandatory"].isna().all()  # an older version still reads
    again = dfs.load_tasks(client)
    pd.testing.assert_frame_equal(again, tasks)
    ds = dfs.open_dataset(str(path))
    assert ds.schema_version == store.SCHEMA_VERSION
    assert ds.version > old_version
    assert {"rebuilt_from_schema_version": 0} in list(ds.history()["filters"])


def test_default_dataset_and_cache_root_are_owner_only_whatever_the_umask(sim, tmp_path) -> None:
    old = os.umask(0)
    try:
        root = tmp_path / "fresh-cache-root"
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=root, progress=False)
        dfs.load_tasks(client)
        dfs.load_timeline(client)
    finally:
        os.umask(old)
    wrong = []
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        want = 0o700 if p.is_dir() else 0o600
        if mode != want:
            wrong.append(f"{p.relative_to(tmp_path)}: {oct(mode)}")
    assert not wrong, wrong


def test_loads_from_several_threads_on_one_client(sim, client_for) -> None:
    """A notebook's widgets and a background load share one client."""
    from concurrent.futures import ThreadPoolExecutor

    client = client_for(sim)
    cold = client_for(sim, cache=None)
    jobs = [
        lambda: dfs.load_tasks(client),
        lambda: dfs.load_timeline(client),
        lambda: dfs.load_work_orders(client, reviewed=True),
        lambda: dfs.load_tasks(client, reviewed=False),
        lambda: dfs.open_dataset(client).history(),
    ] * 3
    with ThreadPoolExecutor(5) as pool:
        results = [f.result() for f in [pool.submit(job) for job in jobs]]
    expected = [
        dfs.load_tasks(cold),
        dfs.load_timeline(cold),
        dfs.load_work_orders(cold, reviewed=True),
        dfs.load_tasks(cold, reviewed=False),
    ]
    final = list(dfs.open_dataset(client).history()["version"])
    assert final, "the loads left no version in the dataset"
    for i, result in enumerate(results):  # every job's result, not one of each kind
        if i % 5 == 4:  # a history read while the loads ran: what the dataset held then
            assert list(result["version"]) == final[: len(result)], (i, final)
        else:
            pd.testing.assert_frame_equal(result, expected[i % 5], obj=f"job {i}")
