"""``sync()``: the versions it commits, resuming after a kill, two processes at once, what
it refuses. Every test syncs from a real simulator over HTTP into a dataset under
``tmp_path``; reading the dataset back is in ``tests/dataset/``. The syncs of other processes
run in processes forked with the package imported (``helpers.forked``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import dataset as store
from tests.helpers import LIST, TIMELINE, delta, forked

pytestmark = pytest.mark.sim(work_orders=60, seed=5)


def timeline_requests(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k == TIMELINE or k.endswith("/timeline/"))


# -- sync and versions --------------------------------------------------------------------------


def test_sync_commits_versions_and_a_second_sync_commits_nothing(sim, client_for) -> None:
    client = client_for(sim, page_size=7)
    first = dfs.sync(client, timelines=True)
    assert first.listed == first.fetched == 60
    assert first.timelines == 60 and first.deleted == first.updated == 0
    assert first.commits >= 1 and first.requests > 0 and first.seconds > 0
    ds = dfs.open_dataset(client)
    assert ds.version == first.version
    history = ds.history()
    assert list(history["version"]) == list(range(len(history)))
    assert history["complete"].iloc[-1]
    before = sim.request_counts()
    second = dfs.sync(client, timelines=True)
    assert second.commits == 0 and second.version == first.version
    assert second.fetched == second.updated == second.timelines == 0
    assert delta(sim, before) == {LIST: 1}
    assert dfs.open_dataset(client).version == first.version


def test_a_change_is_one_new_version_with_its_counts(sim, client_for, reader) -> None:
    client = client_for(sim)
    dfs.sync(client, timelines=True)
    wo_id = dfs.load_work_orders(client)["work_order_id"].iloc[4]
    reader.patch_metadata(wo_id, {"touched": 1})
    res = dfs.sync(client, timelines=True)
    assert (res.updated, res.fetched, res.timelines, res.deleted) == (1, 0, 1, 0)
    reader.delete_work_order(wo_id)
    res = dfs.sync(client)
    assert res.deleted == 1
    assert wo_id not in set(dfs.load_work_orders(client)["work_order_id"])


def test_the_sync_module_is_not_hidden_by_the_sync_function() -> None:
    import dfs_analytics.syncing as syncing

    assert dfs.sync is syncing.sync and callable(dfs.sync)
    assert dfs.SyncResult is syncing.SyncResult


def test_sync_result_of_a_filtered_query(sim, client_for) -> None:
    client = client_for(sim)
    res = dfs.sync(client, reviewed=True)
    reviewed = dfs.load_work_orders(client, reviewed=True)
    assert res.listed == len(reviewed) > 0
    assert res.filters == {"reviewed": True}
    assert dfs.open_dataset(client).history()["filters"].iloc[-1] == {"reviewed": True}


# -- resumable ----------------------------------------------------------------------------------

# The killed sync: work orders, and the batch of work orders committed at once. The kill comes
# after the first batch is committed and several batches before the end.
RESUME_WORK_ORDERS = 200
RESUME_BATCH = 50

_CHILD = textwrap.dedent(
    f"""
    import dfs_analytics as dfs
    import dfs_analytics.syncing as s
    s.BATCH = {RESUME_BATCH}
    s.CHUNK = {RESUME_BATCH // 2}
    client = dfs.Client(base_url, api_key=api_key, cache=cache, progress=False, max_workers=4)
    dfs.sync(client, timelines=True)
    print("done")
    """
)


def test_resume_after_kill_fetches_only_what_was_not_committed(
    dfs_simulator_factory, client_for, tmp_path
) -> None:
    sim = dfs_simulator_factory(work_orders=RESUME_WORK_ORDERS, seed=9)
    sim.configure(latency=0.05)
    cache = tmp_path / "cache"
    proc = forked(
        _CHILD, tmp_path / "child.log", base_url=sim.base_url, api_key=sim.api_key, cache=cache
    )
    client = client_for(sim, cache=cache)
    deadline = time.monotonic() + 120
    committed = 0
    try:
        while time.monotonic() < deadline and proc.exitcode is None:
            try:
                history = store.Dataset(client.dataset_location).history()
                committed = int(history["timelines"].sum())
            except (dfs.DatasetError, FileNotFoundError):
                committed = 0
            if committed >= RESUME_BATCH:
                break
            time.sleep(0.05)
        assert proc.exitcode is None, "the sync finished before it could be interrupted"
        proc.kill()  # SIGKILL
    finally:
        proc.join(30)
    history = store.Dataset(client.dataset_location).history()
    committed = int(history["timelines"].sum())
    assert RESUME_BATCH <= committed < RESUME_WORK_ORDERS
    sim.configure(latency=0)
    before = sim.request_counts()
    res = dfs.sync(client, timelines=True)
    fetched = timeline_requests(delta(sim, before))
    assert fetched <= (RESUME_WORK_ORDERS - committed) + RESUME_BATCH, (fetched, committed)
    assert res.timelines == fetched
    cold = client_for(sim, cache=tmp_path / "cold")
    pd.testing.assert_frame_equal(dfs.load_tasks(client), dfs.load_tasks(cold))
    pd.testing.assert_frame_equal(dfs.load_timeline(client), dfs.load_timeline(cold))


def test_two_processes_syncing_one_dataset_at_once(sim, client_for, tmp_path) -> None:
    shared = tmp_path / "shared"
    script = textwrap.dedent(
        """
        import dfs_analytics as dfs
        import dfs_analytics.syncing as s
        s.BATCH = 10
        c = dfs.Client(base_url, api_key=api_key, cache=None, dataset=shared, progress=False)
        r = dfs.sync(c, timelines=True)
        print(r.version)
        """
    )
    logs = [tmp_path / f"child-{i}.log" for i in range(2)]
    keys = {"base_url": sim.base_url, "api_key": sim.api_key, "shared": str(shared)}
    procs = [forked(script, log, **keys) for log in logs]
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    ds = dfs.open_dataset(str(shared))
    history = ds.history()
    assert list(history["version"]) == list(range(len(history)))
    cold = client_for(sim, cache=None)
    order = ["work_order_id", "task_id"]
    got = ds.tasks().sort_values(order, key=lambda s: s.astype(str)).reset_index(drop=True)
    want = dfs.load_tasks(cold).sort_values(order, key=lambda s: s.astype(str))
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True))
    assert len(ds.timeline()) == len(dfs.load_timeline(cold))


# -- bad input ----------------------------------------------------------------------------------


def test_a_read_only_shared_dataset_is_refused_for_sync(sim, client_for, tmp_path) -> None:
    """The shared folder is mounted read-only (in a user and mount namespace of its own):
    reading works, syncing says why it cannot, and nothing changes."""
    shared = tmp_path / "shared"
    dfs.load_tasks(client_for(sim, dataset=shared))
    version = dfs.open_dataset(str(shared)).version
    script = textwrap.dedent(
        """
        import sys
        import dfs_analytics as dfs
        print(len(dfs.open_dataset(sys.argv[3]).tasks()))
        c = dfs.Client(sys.argv[1], api_key=sys.argv[2], cache=None, dataset=sys.argv[3],
                       progress=False)
        try:
            dfs.load_tasks(c)
        except dfs.ReadOnlyDatasetError as exc:
            print("refused:", exc)
        """
    )
    mount = f'mount --bind {shared} {shared} && mount -o remount,ro,bind {shared} && exec "$@"'
    done = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            mount,
            "sh",
            sys.executable,
            "-c",
            script,
            sim.base_url,
            sim.api_key,
            str(shared),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert int(lines[0]) > 0
    assert lines[1].startswith("refused:") and "read-only" in lines[1], lines
    assert dfs.open_dataset(str(shared)).version == version


def test_a_bare_string_of_ids_is_refused_before_any_request(sim, client_for) -> None:
    client = client_for(sim)
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError, match="list of ids"):
        dfs.load_timeline(client, work_order_ids="abc")
    assert delta(sim, before) == {}
