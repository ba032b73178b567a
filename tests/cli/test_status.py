"""``dfs-analytics status`` and ``vacuum``: a shared dataset read by its location alone (no
site settings, no API key), after ``dfs-analytics sync`` filled it from the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.cli import main
from dfs_analytics.dataset import Dataset
from dfs_analytics.simulator import Simulator

pytestmark = pytest.mark.sim(work_orders=30, seed=8, scope="module")
WORK_ORDERS = 30


@pytest.fixture
def synced(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dataset synced by the command (with timelines), then no site settings at all."""
    dataset = tmp_path / "site"
    for name in ("DFS_DATASET", "DFS_STORAGE_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DFS_BASE_URL", sim.base_url)
    monkeypatch.setenv("DFS_API_KEY", sim.api_key)
    monkeypatch.setenv("DFS_CACHE", "none")
    assert main(["sync", "--dataset", str(dataset), "--timelines", "--quiet", "--no-vacuum"]) == 0
    for name in ("DFS_BASE_URL", "DFS_API_KEY", "DFS_CACHE"):
        monkeypatch.delenv(name)
    return dataset


def _json(out: str) -> dict[str, Any]:
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_status_as_json(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--dataset", str(synced), "--json"]) == 0
    status = _json(capsys.readouterr().out)
    ds = dfs.open_dataset(synced)
    assert status["dataset"] == str(synced) and status["version"] == ds.version
    assert status["site"] == ds.site
    assert [v["version"] for v in status["versions"]] == ds.history()["version"].tolist()
    assert status["tables"] == {
        "work_orders": WORK_ORDERS,
        "tasks": len(ds.tasks()),
        "timeline": len(ds.timeline()),
        "task_groups": len(ds.task_groups()),
    }
    last = status["last_sync"]
    assert last["fetched"] == last["timelines"] == WORK_ORDERS
    assert last["with_timelines"] is True and last["complete"] is True
    assert last["filters"] == {} and last["finished"] >= last["started"]


def test_status_as_text_from_dfs_dataset(
    synced: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DFS_DATASET", str(synced))  # a reader's only setting
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"Dataset {synced} (site {dfs.open_dataset(synced).site})"
    assert any(line.startswith("Last sync: ") for line in lines)
    assert f"Rows: work_orders {WORK_ORDERS}," in out
    header = lines.index(next(line for line in lines if line.startswith("Versions")))
    assert lines[header + 1].split()[:2] == ["version", "time"]  # the versions' table
    assert len(lines) - header - 2 == len(dfs.open_dataset(synced).history())


def test_status_of_no_dataset_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DFS_DATASET", raising=False)
    (tmp_path / "empty").mkdir()
    assert main(["status", "--dataset", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "not a dfs-analytics dataset" in err and len(err.strip().splitlines()) == 1
    assert main(["status"]) == 2  # neither a dataset nor a site to find one
    assert "--dataset" in capsys.readouterr().err


def test_vacuum_dry_run_says_what_would_go_and_removes_nothing(
    sim: Simulator, synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a second version that rewrites some work orders: the first one's files become old
    wo = Dataset(synced).work_orders(columns=["work_order_id", "reviewed"])
    unreviewed = sorted(wo.loc[~wo["reviewed"].fillna(False).astype(bool), "work_order_id"])
    assert sim.review(unreviewed[:3])["reviewed"]
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=synced)
    assert dfs.sync(client, progress=False).changed
    files = sorted(p for p in synced.rglob("*") if p.is_file())
    argv = ["vacuum", "--dataset", str(synced), "--keep-versions", "1", "--dry-run", "--json"]
    assert main(argv) == 0
    done = _json(capsys.readouterr().out)
    assert done["dry_run"] is True and done["keep_versions"] == 1
    assert done["removed"] == len(done["files_removed"]) > 0 and done["bytes"] > 0
    assert (
        done["unreadable_versions"] and max(done["unreadable_versions"]) < Dataset(synced).version
    )
    assert sorted(p for p in synced.rglob("*") if p.is_file()) == files  # nothing removed
    assert main(["vacuum", "--dataset", str(synced), "--keep-versions", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would be removed (dry run: nothing was)" in out and "tasks/" in out
    assert main(["vacuum", "--dataset", str(synced), "--keep-versions", "0"]) == 2
    assert main(["vacuum", "--dataset", str(synced), "--older-than", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err


def test_tables_never_synced_are_not_counted_as_empty(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "no-timelines"
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=dataset)
    dfs.sync(client, progress=False)  # no timelines, no task groups
    assert main(["status", "--dataset", str(dataset), "--json"]) == 0
    tables = _json(capsys.readouterr().out)["tables"]
    assert tables == {
        "work_orders": WORK_ORDERS,
        "tasks": tables["tasks"],
        "timeline": None,
        "task_groups": None,
    }
    assert main(["status", "--dataset", str(dataset)]) == 0
    assert "timeline not synced" in capsys.readouterr().out
