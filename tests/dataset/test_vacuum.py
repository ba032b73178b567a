"""Dataset.vacuum, pin and pins on a local dataset: what the latest, kept and pinned versions
need stays; other versions become VersionVacuumedError; a dry run removes nothing."""

from __future__ import annotations

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.errors import VersionNotFoundError, VersionVacuumedError

pytestmark = pytest.mark.sim(work_orders=20, seed=4)


def _versions(sim, client, n: int) -> dict[int, pd.DataFrame]:
    """``n`` syncs, each after reviewing two more work orders: version -> its tasks."""
    made = {}
    for step in range(n):
        if step:
            wo = dfs.load_work_orders(client)
            fresh = wo.loc[~wo["reviewed"].fillna(False).astype(bool), "work_order_id"]
            sim.review(sorted(fresh.astype(str))[:2])
        dfs.sync(client)
        ds = dfs.open_dataset(client)
        made[ds.version] = ds.tasks()
    return made


def test_vacuum_keeps_latest_kept_and_pinned_versions(sim, client_for) -> None:
    client = client_for(sim)
    made = _versions(sim, client, 4)
    ds = dfs.open_dataset(client)
    latest = ds.version
    first = min(made)
    assert len(made) == 4
    ds.pin(first, "audit of January")
    pins = ds.pins()
    assert pins["version"].tolist() == [first] and pins["note"].tolist() == ["audit of January"]
    with pytest.raises(VersionNotFoundError):
        ds.pin(latest + 5, "no such version")

    plan = ds.vacuum(keep_versions=1, dry_run=True)
    assert list(plan.columns) == ["table", "file", "bytes", "versions"]
    assert len(plan) and (plan["bytes"] > 0).all()
    lost = plan.attrs["unreadable_versions"]
    assert lost and first not in lost and latest not in lost
    for v in made:  # a dry run removes nothing
        pd.testing.assert_frame_equal(ds.tasks(as_of=v), made[v])

    done = ds.vacuum(keep_versions=1)
    assert sorted(done["file"]) == sorted(plan["file"])
    assert done.attrs["unreadable_versions"] == lost
    ds = dfs.open_dataset(client)
    for v, frame in made.items():
        if v in lost:
            with pytest.raises(VersionVacuumedError, match="vacuum"):
                ds.tasks(as_of=v)
        else:
            pd.testing.assert_frame_equal(ds.tasks(as_of=v), frame)
    assert ds.verify().empty  # the latest version is intact
    assert ds.vacuum(keep_versions=1).empty  # nothing left to remove
    with pytest.raises(VersionVacuumedError):
        ds.pin(lost[0], "too late")
    assert ds.history()["version"].tolist() == sorted(made)  # the history stays whole


def test_vacuum_by_age_keeps_recent_versions(sim, client_for) -> None:
    client = client_for(sim)
    made = _versions(sim, client, 2)
    ds = dfs.open_dataset(client)
    assert ds.vacuum(older_than="1h").empty  # every version is younger: all kept
    assert ds.vacuum(dry_run=True).empty  # default: 7 days
    keep = min(made)
    assert ds.vacuum(older_than="0s", keep=[keep]).empty  # kept explicitly
    gone = ds.vacuum(older_than=pd.Timedelta(0))
    assert keep in gone.attrs["unreadable_versions"]
