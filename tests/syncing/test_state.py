"""What the sync keeps between clients of one process: the writer of a dataset, shared by
every client that writes it with the same site, privacy and storage options, so a new client
(a notebook re-creates its client often) starts with the tables open and the latest frames
decoded. Every test syncs from a real simulator over HTTP into datasets under ``tmp_path``."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.syncing import state
from tests.helpers import LIST, delta

pytestmark = pytest.mark.sim(work_orders=30, seed=12)


def test_a_new_client_of_the_same_dataset_reads_through_the_open_writer(sim, client_for) -> None:
    first = client_for(sim)
    tasks = dfs.load_tasks(first)
    timeline = dfs.load_timeline(first)
    first.close()
    again = client_for(sim)  # the same cache folder: the same dataset
    before = sim.request_counts()
    pd.testing.assert_frame_equal(dfs.load_tasks(again), tasks)
    pd.testing.assert_frame_equal(dfs.load_timeline(again), timeline)
    assert delta(sim, before) == {LIST: 2}  # each load still asks what changed
    assert dfs.open_dataset(again) is dfs.open_dataset(first)


def test_a_change_made_elsewhere_reaches_the_new_client(sim, client_for, reader) -> None:
    first = client_for(sim)
    tasks = dfs.load_tasks(first)
    wo_id = tasks["work_order_id"].iloc[3]
    reader.patch_metadata(wo_id, {"shared": 1})
    work_orders = dfs.load_work_orders(client_for(sim))
    assert work_orders.set_index("work_order_id").loc[wo_id, "metadata.shared"] == 1
    assert dfs.open_dataset(first).version == dfs.open_dataset(client_for(sim)).version


def test_clients_of_other_datasets_or_settings_get_their_own_writer(
    sim, client_for, tmp_path
) -> None:
    first = client_for(sim)
    dfs.load_work_orders(first)
    other_cache = client_for(sim, cache=tmp_path / "other")
    dfs.load_work_orders(other_cache)
    # the same folder, named as a shared dataset: not private, so not the same writer
    shared = client_for(sim, dataset=first.dataset_location)
    dfs.load_work_orders(shared)
    datasets = {id(dfs.open_dataset(c)) for c in (first, other_cache, shared)}
    assert len(datasets) == 3


def test_a_dataset_removed_meanwhile_is_created_again(sim, client_for) -> None:
    first = client_for(sim)
    work_orders = dfs.load_work_orders(first)
    old = dfs.open_dataset(first)
    shutil.rmtree(first.dataset_location)
    again = client_for(sim)
    pd.testing.assert_frame_equal(
        dfs.load_work_orders(again), work_orders, check_like=True, check_dtype=False
    )
    assert dfs.open_dataset(again) is not old
    assert dfs.open_dataset(again).history()["version"].tolist()[0] == 0


def test_the_same_client_creates_a_removed_dataset_again(sim, client_for) -> None:
    client = client_for(sim)
    work_orders = dfs.load_work_orders(client)
    shutil.rmtree(client.dataset_location)
    pd.testing.assert_frame_equal(
        dfs.load_work_orders(client), work_orders, check_like=True, check_dtype=False
    )
    assert len(dfs.open_dataset(client).history()) >= 1


def test_only_the_latest_writers_are_kept(sim, client_for, tmp_path) -> None:
    clients = [client_for(sim, cache=tmp_path / f"c{n}") for n in range(state.SHARED_WRITERS + 1)]
    for c in clients:
        dfs.load_work_orders(c, created_after="2100-01-01")  # opens the writer, reads nothing
    first_again = client_for(sim, cache=tmp_path / "c0")
    dfs.load_work_orders(first_again, created_after="2100-01-01")
    assert dfs.open_dataset(first_again) is not dfs.open_dataset(clients[0])
    last_again = client_for(sim, cache=tmp_path / f"c{state.SHARED_WRITERS}")
    dfs.load_work_orders(last_again, created_after="2100-01-01")
    assert dfs.open_dataset(last_again) is dfs.open_dataset(clients[-1])


def test_an_offline_client_keeps_the_dataset_it_opened(sim, client_for) -> None:
    online = client_for(sim)
    tasks = dfs.load_tasks(online)
    offline = client_for(sim, offline=True)
    pd.testing.assert_frame_equal(dfs.load_tasks(offline), tasks)
    kept = dfs.open_dataset(offline)
    pd.testing.assert_frame_equal(dfs.load_tasks(offline), tasks)
    assert dfs.open_dataset(offline) is kept
    # a new offline client opens (and checks) the files itself
    assert dfs.open_dataset(client_for(sim, offline=True)) is not kept
    shutil.rmtree(online.dataset_location)
    with pytest.raises(dfs.OfflineCacheMiss):
        dfs.load_tasks(offline)
