"""The HTTP cache: every successful GET stored whether or not the server sends validators,
shared safely by many processes, and a damaged cache file moved aside instead of failing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator
from tests.helpers import RETRIEVE, VALIDATORS, delta, forked

pytestmark = pytest.mark.sim(work_orders=12, seed=8, variants=VALIDATORS)


def test_single_reads_are_served_offline_after_an_online_read(sim, client_for, tmp_path) -> None:
    cache = tmp_path / "cache"
    online = client_for(sim, cache=cache)
    wo_id = online.list_work_orders()[0]["id"]
    wo = online.get_work_order(wo_id)
    group = online.get_task_group("releve-optique")
    offline = client_for(sim, cache=cache, offline=True)
    before = sim.request_counts()
    assert offline.get_work_order(wo_id) == wo
    assert offline.get_task_group("releve-optique") == group
    assert delta(sim, before) == {}


def test_online_reads_are_revalidated_and_see_changes(sim, client_for, tmp_path) -> None:
    cache = tmp_path / "cache"
    client = client_for(sim, cache=cache)
    other = client_for(sim, cache=None)
    wo_id = client.list_work_orders()[0]["id"]
    client.get_work_order(wo_id)
    before = sim.request_counts()
    client.get_work_order(wo_id)  # one request: conditional (304) or a plain GET
    assert delta(sim, before) == {RETRIEVE: 1}
    other.patch_metadata(wo_id, {"changed": "yes"})
    assert client.get_work_order(wo_id)["metadata"]["changed"] == "yes"
    # and the offline view is the refreshed one
    offline = client_for(sim, cache=cache, offline=True)
    assert offline.get_work_order(wo_id)["metadata"]["changed"] == "yes"


def test_the_http_cache_is_json_never_pickle(sim, client_for, tmp_path) -> None:
    client = client_for(sim, cache=tmp_path / "cache")
    client.get_work_order(client.list_work_orders()[0]["id"])
    client.close()
    db = client.cache_dir / "http.sqlite"
    with sqlite3.connect(db) as con:
        values = [v for (v,) in con.execute("SELECT value FROM responses")]
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    assert values
    for value in values:
        raw = bytes(value) if not isinstance(value, str) else value.encode()
        assert raw.lstrip()[:1] == b"{", raw[:40]  # JSON, not a pickle stream (b"\x80")
    assert mode.lower() == "wal"


# -- a damaged cache ---------------------------------------------------------------------------


def test_a_garbage_cache_file_is_moved_aside_with_a_warning(client_for, tmp_path) -> None:
    sim = Simulator(work_orders=5, seed=1).start()
    try:
        cache = tmp_path / "cache"
        first = client_for(sim, cache=cache)
        wo_id = first.list_work_orders()[0]["id"]
        first.close()
        db = first.cache_dir / "http.sqlite"
        for extra in db.parent.glob("http.sqlite-*"):
            extra.unlink()
        db.write_bytes(b"this is not a database, just garbage " * 200)
        with pytest.warns(UserWarning, match="http.sqlite") as record:
            client = client_for(sim, cache=cache)
        message = str(record[0].message)
        assert str(db) in message
        moved = [p for p in db.parent.iterdir() if p.name.startswith("http.sqlite.corrupt-")]
        assert len(moved) == 1 and str(moved[0]) in message
        assert moved[0].read_bytes().startswith(b"this is not a database")
        assert client.get_work_order(wo_id)["id"] == wo_id  # a working client, a fresh cache
        offline = client_for(sim, cache=cache, offline=True)
        assert offline.get_work_order(wo_id)["id"] == wo_id
    finally:
        sim.stop()


def test_a_cache_path_that_is_a_file_is_a_configuration_error(tmp_path) -> None:
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    with pytest.raises(dfs.ConfigurationError, match="not-a-folder"):
        dfs.Client("http://127.0.0.1:1/v0.2/", api_key="k", cache=path)


# -- many processes, one cache -----------------------------------------------------------------

_CHILD = """
import os, warnings
import dfs_analytics as dfs
warnings.simplefilter("error")  # a moved-aside cache would be a failure here
client = dfs.Client(base_url, api_key=key, cache=cache, progress=False, max_workers=4)
ids = [w["id"] for w in client.list_work_orders()]
for wo_id in ids[n % 3 :: 3]:
    client.get_work_order(wo_id)
    client.get_work_order(wo_id, include_inputs=False)
client.get_task_group("releve-optique")
dfs.load_task_groups(client)
assert len(dfs.load_work_orders(client)) == len(ids)
client.close()
print("ok", len(ids), flush=True)
# what is checked here is done; the native thread pools' teardown at exit is another matter
os._exit(0)
"""

# More processes than the machine has cores (2 on the CI runners), so that several of them
# open, write and commit the one SQLite cache at the same time; each is forked with the package
# imported (helpers.forked), a process of its own with its own connections to the cache.
PROCESSES = 6


def test_many_processes_share_one_cache(tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    work_orders = 20
    with Simulator(work_orders=work_orders, seed=6) as sim:
        # the dataset exists already (creating one from many processes at once is the
        # dataset's concern, not the HTTP cache's)
        with dfs.Client(sim.base_url, api_key=sim.api_key, cache=cache, progress=False) as first:
            dfs.load_work_orders(first)
        outs = [tmp_path / f"child-{n}.out" for n in range(PROCESSES)]
        errs = [tmp_path / f"child-{n}.err" for n in range(PROCESSES)]
        children = [
            forked(
                _CHILD,
                outs[n],
                errors=errs[n],
                base_url=sim.base_url,
                key=sim.api_key,
                cache=str(cache),
                n=n,
            )
            for n in range(PROCESSES)
        ]
        outcomes = []
        for child, out, err in zip(children, outs, errs, strict=True):
            child.join(240)
            if child.exitcode is None:
                child.kill()
                child.join()
            outcomes.append((child.exitcode, out.read_text(), err.read_text()))
    failed = [(rc, out[-200:], err[-800:]) for rc, out, err in outcomes if rc != 0]
    assert not failed, f"{len(failed)} of {PROCESSES} processes failed: {failed[:2]}"
    assert all(out.startswith(f"ok {work_orders}\n") for _, out, _ in outcomes)
    assert not [p for p in cache.rglob("http.sqlite.corrupt-*")]


# -- never through a symbolic link -------------------------------------------------------------


def _site_folder(cache: Path, base_url: str) -> Path:
    """The cache's folder for one site, as the client names it."""
    from dfs_analytics.config import Settings

    folder = Settings(base_url=base_url, api_key="k", cache=cache).cache_dir
    assert folder is not None
    return folder


def test_a_planted_link_in_the_cache_is_refused_and_its_target_untouched(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    (victim / "keep.txt").write_text("mine")
    victim.chmod(0o755)
    cache = tmp_path / "cache"
    base_url = "http://127.0.0.1:1/v0.2/"
    site = _site_folder(cache, base_url)
    site.parent.mkdir(parents=True)
    site.symlink_to(victim, target_is_directory=True)
    with pytest.raises(dfs.UnsafePathError, match="symbolic link"):
        dfs.Client(base_url, api_key="k", cache=cache)
    assert (victim.stat().st_mode & 0o777) == 0o755  # not chmod'ed
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]  # not filled


@pytest.mark.parametrize("name", ["http.sqlite", "http.sqlite-wal"])
def test_a_cache_file_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path, name: str
) -> None:
    target = tmp_path / "precious"
    target.write_text("precious\n")
    target.chmod(0o644)
    cache = tmp_path / "cache"
    base_url = "http://127.0.0.1:1/v0.2/"
    site = _site_folder(cache, base_url)
    site.mkdir(parents=True, mode=0o700)
    (site / name).symlink_to(target)
    with pytest.raises(dfs.UnsafePathError, match="HTTP cache file"):
        dfs.Client(base_url, api_key="k", cache=cache)
    assert target.read_text() == "precious\n" and (target.stat().st_mode & 0o777) == 0o644
