"""A dataset on a real S3 object store (SeaweedFS, ``object_store``), synced over real HTTP
from the simulator: what teams sharing ``s3://bucket/site`` rely on.

- sync and the loaders with credentials from the environment (as users set them today);
- two processes syncing into one dataset at once;
- ``as_of`` on every version;
- reads (``open_dataset``, DuckDB, Dask) with credentials given as ``storage_options`` only;
- the store itself: conditional writes (``If-None-Match: *``), and concurrent Delta commits
  that never share a table version.
"""

from __future__ import annotations

import os
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

import dfs_analytics as dfs
from dfs_analytics.errors import DatasetLocationError
from dfs_analytics.simulator import Simulator
from tests.helpers import clear_aws_env, forked
from tests.objectstore import SeaweedS3, probe_conditional_writes

# a dozen work orders: several creation-month partitions, and enough unreviewed ones for the
# reviews of each test (a sync's cost on the store is mostly its files, one per partition)
SMALL: dict[str, Any] = {"work_orders": 12, "seed": 11, "latency": 0.0}


def _prefix(request: pytest.FixtureRequest) -> str:
    """A fresh dataset prefix for this test (tests share the server, never a dataset)."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


def _use_env(store: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and endpoint as environment variables, as users give them today."""
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)


def _assert_dask_gives_the_cold_tasks(frame: Any, tasks: pd.DataFrame) -> None:
    """A Dask tasks frame holds the cold load's tasks, and an audit on it gives pandas' result."""
    local = frame.compute()
    assert len(local) == len(tasks)
    assert sorted(local["task_id"].astype(str)) == sorted(tasks["task_id"].astype(str))
    pd.testing.assert_frame_equal(
        dfs.override_rates(frame, by=["task_name"]),
        dfs.override_rates(tasks, by=["task_name"]),
        check_dtype=False,
        check_categorical=False,
    )


def _cold(sim: Simulator, *names: str) -> dict[str, pd.DataFrame]:
    """What the server holds now (these frames; default all four), loaded by a client with no
    dataset and no cache."""
    loaders = {
        "work_orders": dfs.load_work_orders,
        "tasks": dfs.load_tasks,
        "timeline": dfs.load_timeline,
        "task_groups": dfs.load_task_groups,
    }
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as c:
        return {name: loaders[name](c) for name in names or loaders}


def _unreviewed(wo: pd.DataFrame, n: int) -> list[str]:
    """``n`` work orders of the frame ``wo`` that nobody reviewed yet."""
    ids = wo.loc[~wo["reviewed"].fillna(False).astype(bool), "work_order_id"].astype(str)
    assert len(ids) >= n, "the simulator has too few unreviewed work orders for this test"
    return sorted(ids)[:n]


# -- sync and loaders, credentials from the environment -----------------------------------------


def test_sync_and_loaders_on_s3_equal_a_cold_load(
    object_store: SeaweedS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    _use_env(object_store, monkeypatch)
    uri = object_store.uri(_prefix(request), "site")
    with Simulator(**SMALL) as sim:
        client = dfs.Client(
            sim.base_url, api_key=sim.api_key, dataset=uri, cache=tmp_path / "c", progress=False
        )
        with client:
            first = dfs.sync(client, timelines=True)
            assert (first.location, first.version) == (uri, 0)
            assert first.fetched == SMALL["work_orders"] and first.timelines > 0
            cold = _cold(sim)
            loaders = {
                "work_orders": dfs.load_work_orders,
                "tasks": dfs.load_tasks,
                "timeline": dfs.load_timeline,
                "task_groups": dfs.load_task_groups,
            }
            for name, load in loaders.items():
                pd.testing.assert_frame_equal(load(client), cold[name], obj=name)
            # the rows are in the store, not in a local folder
            assert not (tmp_path / "c" / "dataset").exists()
            tasks = DeltaTable(f"{uri}/tasks", storage_options=object_store.storage_options)
            assert tasks.to_pyarrow_table().num_rows == len(cold["tasks"])

            # the server moves on: the next sync follows
            sim.review(_unreviewed(cold["work_orders"], 3))
            second = dfs.sync(client, timelines=True)
            assert second.version is not None and second.version > 0
            assert second.updated == 3 and second.fetched == 0
            again = _cold(sim, "tasks", "timeline")
            assert not again["tasks"].equals(cold["tasks"])
            pd.testing.assert_frame_equal(dfs.load_tasks(client), again["tasks"])
            pd.testing.assert_frame_equal(dfs.load_timeline(client), again["timeline"])
        shared = dfs.open_dataset(uri)  # a colleague: the URI and credentials, no API key
        assert shared.version == second.version
        pd.testing.assert_frame_equal(shared.tasks(), again["tasks"])


# -- two processes at once ----------------------------------------------------------------------

_SYNC_CHILD = textwrap.dedent(
    """
    import json, pathlib, time
    import dfs_analytics as dfs
    from dfs_analytics.dataset import Writer

    def meet(step):
        # both processes reach ``step`` before either goes on
        pathlib.Path(f"{me}-{step}").touch()
        deadline = time.monotonic() + 60
        while not pathlib.Path(f"{other}-{step}").exists() and time.monotonic() < deadline:
            time.sleep(0.005)

    plain_commit = Writer.commit
    met = []

    def commit(self, *args, **kwargs):
        if not met:  # the first commits of both syncs start together, whatever the load
            met.append(True)
            meet("commit")
        return plain_commit(self, *args, **kwargs)

    Writer.commit = commit
    meet("start")
    with dfs.Client(base_url, api_key=key, dataset=uri, cache=cache, progress=False) as c:
        r = dfs.sync(c, timelines=True)
    print(json.dumps({"version": r.version, "commits": r.commits}))
    """
)


def test_two_processes_syncing_one_dataset_at_once(
    object_store: SeaweedS3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    uri = object_store.uri(_prefix(request), "site")
    env = {**os.environ, **object_store.env}
    with Simulator(**SMALL) as sim:
        flags = [tmp_path / "ready-0", tmp_path / "ready-1"]
        logs = [tmp_path / "sync-0.log", tmp_path / "sync-1.log"]
        children = [
            forked(
                _SYNC_CHILD,
                logs[i],
                env=env,
                base_url=sim.base_url,
                key=sim.api_key,
                uri=uri,
                cache=str(tmp_path / f"cache-{i}"),
                me=str(flags[i]),
                other=str(flags[1 - i]),
            )
            for i in (0, 1)
        ]
        for child, log in zip(children, logs, strict=True):
            child.join(120)
            if child.exitcode != 0:  # not the expected failure: a sync that crashed
                pytest.fail(f"a sync failed ({child.exitcode}):\n{log.read_text()[-3000:]}")
        cold = _cold(sim, "work_orders", "tasks", "timeline")
    ds = dfs.open_dataset(uri, storage_options=object_store.storage_options)
    versions = ds.history()["version"].tolist()
    assert versions == list(range(len(versions))), versions
    for name in ("work_orders", "tasks", "timeline"):
        pd.testing.assert_frame_equal(getattr(ds, name)(), cold[name], obj=name)


# -- as_of ----------------------------------------------------------------------------------------


def test_as_of_reads_every_version_as_its_sync_left_it(
    object_store: SeaweedS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    _use_env(object_store, monkeypatch)
    uri = object_store.uri(_prefix(request), "site")
    made: list[tuple[Any, pd.DataFrame]] = []  # (SyncResult, the server's tasks then)
    with Simulator(**SMALL) as sim:
        client = dfs.Client(
            sim.base_url, api_key=sim.api_key, dataset=uri, cache=tmp_path / "c", progress=False
        )
        with client:
            for step in range(3):
                if step:
                    sim.review(_unreviewed(dfs.load_work_orders(client), 2))
                result = dfs.sync(client)
                assert result.changed
                made.append((result, _cold(sim, "tasks")["tasks"]))
            history = dfs.open_dataset(uri).history()
            assert history["version"].tolist() == list(range(len(history)))
            assert int(history["version"].iloc[-1]) == made[-1][0].version
            first = 0
            for result, server_tasks in made:
                rows = history[history["version"].between(first, result.version)]
                assert rows["complete"].tolist()[-1]
                for field in ("fetched", "updated", "deleted"):
                    assert int(rows[field].sum()) == getattr(result, field), field
                for v in range(first, result.version + 1):
                    got = dfs.open_dataset(uri).tasks(as_of=v)
                    if v == result.version:  # the sync's last version: what the server held
                        pd.testing.assert_frame_equal(got, server_tasks, obj=f"as_of={v}")
                    # the loaders read the same version offline, without a request
                    pd.testing.assert_frame_equal(dfs.load_tasks(client, as_of=v), got)
                first = result.version + 1
            assert not made[0][1].equals(made[-1][1]), "the versions should differ"
            at = history["time"].iloc[0]  # a timestamp designates the last version before it
            pd.testing.assert_frame_equal(dfs.open_dataset(uri).tasks(as_of=at), made[0][1])


# -- storage_options only --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synced(
    object_store: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, pd.DataFrame]]:
    """A dataset synced at ``s3://.../site`` (credentials from the environment), and the
    frames a cold load gives: the module's tests only read it."""
    uri = object_store.uri(f"synced-{uuid.uuid4().hex[:8]}", "site")
    with pytest.MonkeyPatch.context() as env, Simulator(**SMALL) as sim:
        for name, value in object_store.env.items():
            env.setenv(name, value)
        cache = tmp_path_factory.mktemp("synced") / "c"
        with dfs.Client(sim.base_url, api_key=sim.api_key, dataset=uri, cache=cache) as client:
            dfs.sync(client, timelines=True, progress=False)
            dfs.load_task_groups(client)
        cold = _cold(sim)
    return uri, cold


def test_open_dataset_and_duckdb_with_storage_options_only(
    object_store: SeaweedS3,
    synced: tuple[str, dict[str, pd.DataFrame]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    uri, cold = synced
    clear_aws_env(monkeypatch, tmp_path)
    with pytest.raises(DatasetLocationError, match="no credentials"):
        dfs.open_dataset(uri)  # refused at once: nothing in the environment
    wrong = {**object_store.storage_options, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    with pytest.raises(DatasetLocationError):
        dfs.open_dataset(uri, storage_options=wrong)
    ds = dfs.open_dataset(uri, storage_options=object_store.storage_options)
    assert ds.version == len(ds.history()) - 1 >= 0
    for name in ("work_orders", "tasks", "timeline", "task_groups"):
        pd.testing.assert_frame_equal(getattr(ds, name)(), cold[name], obj=name)
    con = ds.duckdb()
    got = con.execute(
        "SELECT task_name, count(*) AS n FROM tasks GROUP BY task_name ORDER BY task_name"
    ).df()
    want = cold["tasks"]["task_name"].astype(str).value_counts().sort_index()
    assert got["task_name"].tolist() == want.index.tolist()
    assert got["n"].tolist() == want.tolist()
    for name in ("work_orders", "timeline", "task_groups"):
        (n,) = con.execute(f"SELECT count(*) FROM {name}").fetchone()
        assert n == len(cold[name]), name


def test_to_dask_with_storage_options_only(
    object_store: SeaweedS3,
    synced: tuple[str, dict[str, pd.DataFrame]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    uri, cold = synced
    clear_aws_env(monkeypatch, tmp_path)
    ds = dfs.open_dataset(uri, storage_options=object_store.storage_options)
    frame = ds.to_dask("tasks").compute()  # one partition per file: the files' order
    assert len(frame) == len(cold["tasks"])
    assert sorted(frame["task_id"].astype(str)) == sorted(cold["tasks"]["task_id"].astype(str))


def test_to_dask_on_worker_processes_with_storage_options_only(
    object_store: SeaweedS3,
    synced: tuple[str, dict[str, pd.DataFrame]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A worker process sees no AWS variable either: the storage options travel in the task
    graph (never in its repr), and an audit on the Dask frame gives the pandas result."""
    distributed = pytest.importorskip("distributed")
    uri, cold = synced
    clear_aws_env(monkeypatch, tmp_path)
    ds = dfs.open_dataset(uri, storage_options=object_store.storage_options)
    frame = ds.to_dask("tasks")
    graph = frame.__dask_graph__()
    assert object_store.secret_key not in repr(dict(graph))
    # one worker process is enough: whatever it reads, it reads out of this process, with
    # no AWS variable, from the options in the graph (a second worker only adds start-up CPU)
    with (
        distributed.LocalCluster(  # its HTTP routes on a free port, without the dashboard
            processes=True,
            n_workers=1,
            threads_per_worker=1,
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        distributed.Client(cluster),
    ):
        _assert_dask_gives_the_cold_tasks(frame, cold["tasks"])


def test_to_dask_with_credentials_from_the_environment(
    object_store: SeaweedS3,
    synced: tuple[str, dict[str, pd.DataFrame]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uri, cold = synced
    _use_env(object_store, monkeypatch)
    frame = dfs.open_dataset(uri).to_dask("tasks")
    _assert_dask_gives_the_cold_tasks(frame, cold["tasks"])


# -- the store itself ---------------------------------------------------------------------------


def test_store_authenticates_and_honours_conditional_writes(object_store: SeaweedS3) -> None:
    path = f"/{object_store.bucket}/auth-{uuid.uuid4().hex[:8]}"
    assert object_store.request("PUT", path, b"x")[0] == 200
    assert object_store.request("GET", path, secret_key="wrong-secret")[0] == 403
    seen = probe_conditional_writes(object_store, racers=8)
    assert seen["create"] == 200
    assert seen["create_again"] == 412  # If-None-Match: * on an existing key
    assert seen["wrong_if_match"] == 412
    assert seen["body_kept"]
    assert seen["race"] == [200] + [412] * 7  # one creator among racers


def test_concurrent_delta_writers_never_share_a_table_version(
    object_store: SeaweedS3, request: pytest.FixtureRequest
) -> None:
    """deltalake commits by a conditional put of the next log file: on this store, writers
    racing for a version each get their own."""
    uri = object_store.uri(_prefix(request), "table")
    options = object_store.storage_options
    schema = pa.schema([("writer", pa.int64()), ("round", pa.int64())])
    write_deltalake(uri, schema.empty_table(), storage_options=options)
    writers, rounds = 4, 3
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(me: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                data = pa.table({"writer": [me], "round": [r]}, schema=schema)
                write_deltalake(uri, data, mode="append", storage_options=options)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    table = DeltaTable(uri, storage_options=options)
    versions = sorted(int(h["version"]) for h in table.history())
    assert versions == list(range(writers * rounds + 1))
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted((r["writer"], r["round"]) for r in rows) == [
        (w, r) for w in range(writers) for r in range(rounds)
    ]


def test_conflicting_delta_overwrites_are_refused_not_lost(
    object_store: SeaweedS3, request: pytest.FixtureRequest
) -> None:
    """Two writers that read the same version and overwrite the same partition: one commits,
    the other gets CommitFailedError (what the dataset's writer retries on)."""
    uri = object_store.uri(_prefix(request), "table")
    options = object_store.storage_options
    write_deltalake(
        uri, pa.table({"p": ["a", "b"], "x": [0, 0]}), partition_by=["p"], storage_options=options
    )
    readers = [DeltaTable(uri, storage_options=options) for _ in range(2)]  # both at version 0
    outcome: dict[int, str] = {}

    def overwrite(me: int) -> None:
        try:
            write_deltalake(
                readers[me],
                pa.table({"p": ["a"], "x": [me + 1]}),
                mode="overwrite",
                predicate="p = 'a'",
                partition_by=["p"],
                storage_options=options,
            )
            outcome[me] = "committed"
        except CommitFailedError:
            outcome[me] = "refused"

    threads = [threading.Thread(target=overwrite, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcome.values()) == ["committed", "refused"]
    winner = next(i for i, what in outcome.items() if what == "committed")
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["p"]) == [
        {"p": "a", "x": winner + 1},
        {"p": "b", "x": 0},
    ]


# -- retention ------------------------------------------------------------------------------------


def test_pin_and_vacuum_on_s3(
    object_store: SeaweedS3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Pins recorded in the store; a vacuum removes only what no kept or pinned version
    needs, and an old version read afterwards says it was vacuumed."""
    from dfs_analytics.errors import VersionVacuumedError

    uri = object_store.uri(_prefix(request), "site")
    options = object_store.storage_options
    made: dict[int, pd.DataFrame] = {}
    with Simulator(**SMALL) as sim, pytest.MonkeyPatch.context() as env:
        for name, value in object_store.env.items():
            env.setenv(name, value)
        client = dfs.Client(sim.base_url, api_key=sim.api_key, dataset=uri, cache=tmp_path / "c")
        with client:
            for step in range(3):
                if step:
                    sim.review(_unreviewed(dfs.load_work_orders(client), 2))
                result = dfs.sync(client, progress=False)
                assert result.version is not None
                made[result.version] = dfs.open_dataset(uri).tasks()
    ds = dfs.open_dataset(uri, storage_options=options)
    first, middle, _ = sorted(made)
    ds.pin(middle, "kept for the audit")
    assert dfs.open_dataset(uri, storage_options=options).pins()["version"].tolist() == [middle]
    plan = ds.vacuum(keep_versions=1, dry_run=True)
    lost = plan.attrs["unreadable_versions"]
    # the second sync rewrote partitions of the first: those files only the first needs
    assert len(plan) and lost == [first]
    done = ds.vacuum(keep_versions=1)
    assert sorted(done["file"]) == sorted(plan["file"])
    fresh = dfs.open_dataset(uri, storage_options=options)
    for v, frame in made.items():
        if v in lost:
            with pytest.raises(VersionVacuumedError):
                fresh.tasks(as_of=v)
        else:
            pd.testing.assert_frame_equal(fresh.tasks(as_of=v), frame, obj=f"as_of={v}")
    assert fresh.verify().empty
