"""Incremental refresh, proved with the simulator's request counts, and the cache's security.

A refreshed frame must equal what a cold load (a new client on an empty cache folder) gives.
Clients use ``page_size=7`` so that full walks span many pages; a refresh is one request.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator
from dfs_analytics.syncing import PROBE_SIZE
from tests.helpers import (
    LIST,
    RETRIEVE,
    TASK_KEYS,
    TIMELINE,
    TIMELINE_KEYS,
    VALIDATORS,
    WO_KEYS,
    assert_frames_equal,
    delta,
    timeline_pages,
)

PAGE = 7
# Enough work orders for a full walk of several list pages (4 of PAGE), and for half of them
# to be more than one "what changed?" probe page (PROBE_SIZE + 1); positions below are picked
# from this.
WORK_ORDERS = 2 * (PROBE_SIZE + 1)

pytestmark = [
    pytest.mark.sim(work_orders=WORK_ORDERS, seed=21, variants=VALIDATORS),
    pytest.mark.client(page_size=PAGE),
]

FLIPPABLE = ("pb_etiquette_presente", "cables_ranges", "etiquette_lisible", "jarretiere_connectee")


@pytest.fixture
def cold(sim, client_for, new_cache):
    """``cold()``: (work orders, tasks, timeline) loaded now by a new client on a new cache;
    ``cold(dfs.load_work_orders)``: only what that loader gives (the same first load)."""

    def load(*loaders: Any) -> tuple[pd.DataFrame, ...]:
        fresh = client_for(sim, page_size=PAGE, cache=new_cache())
        return tuple(read(fresh) for read in loaders) if loaders else load_all(fresh)

    return load


def load_all(client: dfs.Client) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return dfs.load_work_orders(client), dfs.load_tasks(client), dfs.load_timeline(client)


def pick(frame: pd.DataFrame, *positions: int) -> list[str]:
    return [str(frame["work_order_id"].iloc[p]) for p in positions]


# -- nothing changed --------------------------------------------------------------------------


def test_second_load_is_one_list_request_and_no_timeline_request(sim, client) -> None:
    _, tasks, timeline = load_all(client)
    before = sim.request_counts()
    again = dfs.load_timeline(client)
    assert delta(sim, before) == {LIST: 1}
    pd.testing.assert_frame_equal(again, timeline)

    before = sim.request_counts()
    again = dfs.load_tasks(client)
    assert delta(sim, before) == {LIST: 1}
    pd.testing.assert_frame_equal(again, tasks)

    before = sim.request_counts()
    dfs.load_work_orders(client)
    assert delta(sim, before) == {LIST: 1}


def test_reloading_an_unchanged_site_returns_identical_work_order_frames(sim, client) -> None:
    first = dfs.load_work_orders(client)
    second = dfs.load_work_orders(client)
    third = dfs.load_work_orders(client)
    pd.testing.assert_frame_equal(second, first)
    pd.testing.assert_frame_equal(third, first)


def test_first_load_walks_every_page(sim, client) -> None:
    before = sim.request_counts()
    wo = dfs.load_work_orders(client)
    assert len(wo) == WORK_ORDERS
    assert -(-WORK_ORDERS // PAGE) > 1  # several pages
    assert delta(sim, before) == {LIST: -(-WORK_ORDERS // PAGE)}
    before = sim.request_counts()
    dfs.load_timeline(client)
    assert delta(sim, before) == {
        LIST: 1,
        TIMELINE: timeline_pages(sim, list(wo["work_order_id"]), PAGE),
    }


# -- changes by someone else ------------------------------------------------------------------


def test_metadata_patch_by_another_client_refetches_exactly_those_timelines(
    sim, client, reader, cold
) -> None:
    wo, _, _ = load_all(client)
    changed = pick(wo, 4, WORK_ORDERS // 2, WORK_ORDERS - 3)
    for wo_id in changed:
        reader.patch_metadata(wo_id, {"region": "zzz", "batch": 7})
    before = sim.request_counts()
    timeline = dfs.load_timeline(client)
    assert delta(sim, before) == {LIST: 1, TIMELINE: timeline_pages(sim, changed, PAGE)}
    for wo_id in changed:
        events = timeline[timeline["work_order_id"] == wo_id]
        assert events["type"].iloc[-1] == "metadata_update"
    before = sim.request_counts()
    tasks = dfs.load_tasks(client)
    assert delta(sim, before) == {LIST: 1}
    _, cold_tasks, cold_timeline = cold()
    assert_frames_equal(timeline, cold_timeline, TIMELINE_KEYS)
    assert_frames_equal(tasks, cold_tasks, TASK_KEYS)


def test_work_orders_after_another_clients_patch_equal_a_cold_load(
    sim, client, reader, cold
) -> None:
    wo = dfs.load_work_orders(client)
    changed = pick(wo, 1, WORK_ORDERS * 5 // 8)
    for wo_id in changed:
        reader.patch_metadata(wo_id, {"region": "zzz", "batch": 7})
    fresh = dfs.load_work_orders(client)
    rows = fresh.set_index("work_order_id").loc[changed]
    assert list(rows["metadata.region"]) == ["zzz", "zzz"]
    assert list(rows["metadata.batch"]) == [7, 7]
    assert_frames_equal(fresh, cold(dfs.load_work_orders)[0], WO_KEYS)


def test_deletion_by_another_client_is_noticed(sim, client, reader, cold) -> None:
    wo, _, _ = load_all(client)
    gone = pick(wo, 0, WORK_ORDERS * 2 // 5)
    for wo_id in gone:
        reader.delete_work_order(wo_id)
    fresh_wo, fresh_tasks, fresh_timeline = load_all(client)
    assert len(fresh_wo) == WORK_ORDERS - len(gone)
    for frame in (fresh_wo, fresh_tasks, fresh_timeline):
        assert not frame["work_order_id"].isin(gone).any()
    cold_wo, cold_tasks, cold_timeline = cold()
    assert_frames_equal(fresh_wo, cold_wo, WO_KEYS)
    assert_frames_equal(fresh_tasks, cold_tasks, TASK_KEYS)
    assert_frames_equal(fresh_timeline, cold_timeline, TIMELINE_KEYS)


def test_creation_by_another_client_appears(sim, client, reader, cold) -> None:
    load_all(client)
    made = reader.create_work_order("late-" + uuid.uuid4().hex[:8], metadata={"region": "west"})
    before = sim.request_counts()
    fresh_wo, fresh_tasks, fresh_timeline = load_all(client)
    assert delta(sim, before) == {LIST: 3, TIMELINE: 1}
    assert fresh_wo["work_order_id"].iloc[-1] == made["id"]
    assert len(fresh_wo) == WORK_ORDERS + 1
    assert (fresh_tasks["work_order_id"] == made["id"]).sum() == len(made["tasks"])
    assert list(fresh_timeline[fresh_timeline["work_order_id"] == made["id"]]["type"]) == [
        "created"
    ]
    cold_wo, cold_tasks, cold_timeline = cold()
    assert_frames_equal(fresh_tasks, cold_tasks, TASK_KEYS)
    assert_frames_equal(fresh_timeline, cold_timeline, TIMELINE_KEYS)
    assert_frames_equal(fresh_wo, cold_wo, WO_KEYS)


def test_many_changes_by_another_client_are_all_picked_up(sim, client, reader, cold) -> None:
    wo, _, _ = load_all(client)
    changed = pick(wo, *range(0, WORK_ORDERS, 2))
    assert len(changed) > PROBE_SIZE  # more than one probe page
    for wo_id in changed:
        reader.patch_metadata(wo_id, {"batch": 1})
    before = sim.request_counts()
    timeline = dfs.load_timeline(client)
    assert delta(sim, before)[TIMELINE] == timeline_pages(sim, changed, PAGE)
    tasks = dfs.load_tasks(client)
    _, cold_tasks, cold_timeline = cold()
    assert_frames_equal(timeline, cold_timeline, TIMELINE_KEYS)
    assert_frames_equal(tasks, cold_tasks, TASK_KEYS)


# -- changes through the same client ----------------------------------------------------------


def _flippable_row(tasks: pd.DataFrame) -> dict[str, Any]:
    candidates = tasks[
        tasks["task_name"].isin(FLIPPABLE) & tasks["analyzed"] & ~tasks["is_corrected"]
    ]
    return candidates.iloc[len(candidates) // 2].to_dict()


def test_correction_through_the_same_client_shows_in_the_next_load(sim, client, cold) -> None:
    _, tasks, _ = load_all(client)
    row = _flippable_row(tasks)
    new_value = not row["analyzed_value"]
    answer = client.correct(row["work_order_id"], str(row["task_id"]), new_value)
    before = sim.request_counts()
    fresh = dfs.load_tasks(client)
    counted = delta(sim, before)
    assert set(counted) <= {LIST, RETRIEVE} and counted[LIST] <= 2
    got = fresh[
        (fresh["work_order_id"] == row["work_order_id"]) & (fresh["task_id"] == row["task_id"])
    ].iloc[0]
    assert got["corrected_value"] is new_value
    assert got["value"] is new_value
    assert got["analyzed_value"] is row["analyzed_value"]
    assert bool(got["is_corrected"]) and bool(got["is_overridden"])
    assert got["message"] == answer["state"]["message"]
    before = sim.request_counts()
    timeline = dfs.load_timeline(client)
    assert delta(sim, before).get(TIMELINE) == timeline_pages(sim, [row["work_order_id"]], PAGE)
    last = timeline[timeline["work_order_id"] == row["work_order_id"]].iloc[-1]
    assert last["type"] == "correction" and last["corrected_value"] is new_value
    _, cold_tasks, cold_timeline = cold()
    assert_frames_equal(fresh, cold_tasks, TASK_KEYS)
    assert_frames_equal(timeline, cold_timeline, TIMELINE_KEYS)


def test_metadata_write_through_the_same_client_shows_in_the_next_load(sim, client) -> None:
    wo = dfs.load_work_orders(client)
    wo_id = pick(wo, 10)[0]
    client.put_metadata(wo_id, {"region": "paris", "checked": False})
    fresh = dfs.load_work_orders(client).set_index("work_order_id")
    assert fresh.loc[wo_id, "metadata.region"] == "paris"
    assert fresh.loc[wo_id, "metadata.checked"] is False
    assert pd.isna(fresh.loc[wo_id, "metadata.created_with"])


def test_deletion_through_the_same_client(sim, client) -> None:
    wo, _, _ = load_all(client)
    gone = pick(wo, 5)[0]
    client.delete_work_order(gone)
    for frame in load_all(client):
        assert gone not in set(frame["work_order_id"])


# -- a new process, offline -------------------------------------------------------------------


def test_a_new_client_on_the_same_cache_refreshes_instead_of_reloading(
    sim, client, client_for, reader
) -> None:
    _, tasks, timeline = load_all(client)
    client.close()
    again = client_for(sim, page_size=PAGE)  # same cache folder, new object ("new process")
    before = sim.request_counts()
    tasks2 = dfs.load_tasks(again)
    timeline2 = dfs.load_timeline(again)
    assert delta(sim, before) == {LIST: 2}
    pd.testing.assert_frame_equal(tasks2, tasks)
    pd.testing.assert_frame_equal(timeline2, timeline)
    # and it refetches only what moved
    changed = pick(tasks2.drop_duplicates("work_order_id"), 2, WORK_ORDERS * 3 // 4)
    for wo_id in changed:
        reader.patch_metadata(wo_id, {"x": 1})
    third = client_for(sim, page_size=PAGE)
    before = sim.request_counts()
    dfs.load_timeline(third)
    assert delta(sim, before) == {LIST: 1, TIMELINE: timeline_pages(sim, changed, PAGE)}


def test_offline_on_the_same_cache_gives_the_same_frames_without_any_request(
    sim, client, client_for, reader
) -> None:
    load_all(client)
    reader.patch_metadata(pick(dfs.load_work_orders(client), 3)[0], {"x": 2})
    wo, tasks, timeline = load_all(client)  # refreshed frames
    groups = dfs.load_task_groups(client)
    offline = client_for(sim, page_size=PAGE, offline=True)
    before = sim.request_counts()
    off_wo, off_tasks, off_timeline = load_all(offline)
    off_groups = dfs.load_task_groups(offline)
    assert delta(sim, before) == {}
    pd.testing.assert_frame_equal(off_wo, wo)
    pd.testing.assert_frame_equal(off_tasks, tasks)
    pd.testing.assert_frame_equal(off_timeline, timeline)
    pd.testing.assert_frame_equal(off_groups, groups)
    # everything was loaded, so a narrower query is answered from the dataset, offline
    urgent = dfs.load_tasks(offline, tag="urgent")
    assert delta(sim, before) == {}
    pd.testing.assert_frame_equal(urgent, dfs.load_tasks(client, tag="urgent"))


def test_offline_query_never_loaded_is_a_clear_miss(sim, client_for, new_cache) -> None:
    cache = new_cache()
    dfs.load_tasks(client_for(sim, cache=cache, page_size=PAGE), reviewed=True)
    offline = client_for(sim, cache=cache, page_size=PAGE, offline=True)
    before = sim.request_counts()
    assert len(dfs.load_tasks(offline, reviewed=True))
    with pytest.raises(dfs.OfflineCacheMiss, match="never loaded"):
        dfs.load_tasks(offline, reviewed=False)
    with pytest.raises(dfs.OfflineCacheMiss, match="timelines"):
        dfs.load_timeline(offline, reviewed=True)
    assert delta(sim, before) == {}


def test_offline_with_another_cache_folder_misses(sim, client, client_for, new_cache) -> None:
    load_all(client)
    offline = client_for(sim, offline=True, cache=new_cache())
    with pytest.raises(dfs.OfflineCacheMiss):
        dfs.load_work_orders(offline)


# -- cache security ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def used_cache(tmp_path_factory) -> Iterator[tuple[Simulator, dfs.Client, Path]]:
    """(simulator with a key easy to find, its client, that client's cache folder) after the
    client used the cache every way it can: loads, single reads, a write, offline loads. Used
    once for the module: its tests only read the folder."""
    key = "dfs-sk-" + uuid.uuid4().hex + "-Secret"
    cache = tmp_path_factory.mktemp("secure") / "secure-cache"
    made: list[dfs.Client] = []

    def make(**kw: Any) -> dfs.Client:
        made.append(dfs.Client(sim.base_url, api_key=key, cache=cache, page_size=PAGE, **kw))
        return made[-1]

    with Simulator(work_orders=2 * PAGE, seed=5, api_key=key) as sim:  # two list pages
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_CACHE_HOME", str(cache.parent / "xdg-cache"))  # as for every test
            client = make(progress=False)
            wo, _, _ = load_all(client)
            dfs.load_task_groups(client)
            client.list_task_groups()
            client.get_task_group("releve-optique")
            wo_id = str(wo["work_order_id"].iloc[0])
            client.get_work_order(wo_id)
            client.get_work_order(wo_id, include_inputs=False)
            client.patch_metadata(wo_id, {"touched": True})
            load_all(client)
            load_all(make(progress=False, offline=True))
        yield sim, client, cache
        for used in made:
            used.close()


def test_the_key_is_in_no_cache_file(used_cache) -> None:
    sim, _, cache = used_cache
    key = sim.api_key.encode()
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in files)
    assert any(p.suffix == ".parquet" for p in files)
    assert not any(p.suffix == ".pkl" for p in files)
    for path in files:
        data = path.read_bytes()
        assert key not in data, f"the API key is stored in {path}"
        assert key.decode().encode("utf-16-le") not in data, path
    assert all(sim.api_key not in str(p) for p in cache.rglob("*"))


def test_cache_files_are_owner_only(used_cache) -> None:
    _, client, _ = used_cache
    root = client.cache_dir
    assert root is not None and root.is_dir()
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wrong.append(f"{path.relative_to(root.parent)}: {oct(mode)} (want {oct(want)})")
    assert not wrong, "cache entries readable by others: " + "; ".join(wrong)
    assert (root / "http.sqlite").exists()
