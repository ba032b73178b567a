"""``dfs-analytics sync``: a scheduled job's sync of the site in DFS_* into a shared dataset,
over real HTTP with the simulator: its JSON summary, an unchanged second sync, the exit status
when another sync holds the dataset (and --wait), one line on failure."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.cli import EX_TEMPFAIL, main
from dfs_analytics.simulator import Simulator
from dfs_analytics.syncing.state import sync_lock, sync_lock_path
from tests.helpers import closed_port

pytestmark = pytest.mark.sim(work_orders=40, seed=5)
WORK_ORDERS = 40


@pytest.fixture
def site(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The simulator as the site in DFS_*; returns the dataset folder the tests sync into."""
    monkeypatch.setenv("DFS_BASE_URL", sim.base_url)
    monkeypatch.setenv("DFS_API_KEY", sim.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
    for name in ("DFS_DATASET", "DFS_STORAGE_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "shared" / "site"


def _summary(out: str) -> dict[str, Any]:
    """The JSON summary: the last line of stdout."""
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_sync_prints_a_json_summary_and_an_unchanged_site_fetches_nothing(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sync", "--dataset", str(site), "--timelines", "--json", "--no-vacuum"]
    assert main(argv) == 0
    first = _summary(capsys.readouterr().out)
    assert first["dataset"] == str(site)
    assert (first["listed"], first["fetched"], first["timelines"]) == (WORK_ORDERS,) * 3
    assert first["updated"] == first["deleted"] == first["throttled"] == 0
    assert first["changed"] is True and first["requests"] > WORK_ORDERS
    assert isinstance(first["seconds"], float) and first["vacuum"] is None
    ds = dfs.open_dataset(site)
    assert first["version"] == ds.version
    assert len(ds.work_orders()) == WORK_ORDERS and len(ds.task_groups()) > 0

    assert main(argv) == 0
    second = _summary(capsys.readouterr().out)
    assert (second["fetched"], second["updated"], second["deleted"], second["timelines"]) == (
        0,
        0,
        0,
        0,
    )
    assert second["changed"] is False and second["version"] == first["version"]
    assert second["requests"] <= 3  # the probe (and the task groups), nothing else


def test_text_output_quiet_and_filters(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", "--dataset", str(site), "--quiet", "--no-vacuum"]) == 0
    assert capsys.readouterr() == ("", "")
    argv = ["sync", "--dataset", str(site), "--created-after", "2026-03-01", "--no-vacuum"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"Synced {site}: version ") and "requests in" in out
    assert err == ""
    assert main(["sync", "--json", "--quiet"]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_busy_dataset_exits_75_unless_asked_to_wait(
    site: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=site)
    argv = ["sync", "--dataset", str(site), "--json", "--no-vacuum"]
    with sync_lock(client):  # another scheduled sync is running
        assert sync_lock_path(str(site)).exists()
        assert main(argv) == EX_TEMPFAIL
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1
        assert "another sync is running" in err and "--wait" in err
        started = time.monotonic()
        assert main([*argv, "--wait", "0.3"]) == EX_TEMPFAIL  # waited, then gave up
        assert time.monotonic() - started >= 0.3
        capsys.readouterr()
    assert not (site / "syncs").exists()  # nothing was synced meanwhile

    holder = contextlib.ExitStack()
    holder.enter_context(sync_lock(client))
    release = threading.Timer(0.5, holder.close)
    release.start()
    try:
        assert main([*argv, "--wait"]) == 0  # as long as it takes
    finally:
        release.join()
    assert _summary(capsys.readouterr().out)["fetched"] == WORK_ORDERS


def test_failures_are_one_line(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DFS_BASE_URL", "ftp://example.com/v0.2/")  # not an http(s) URL
    assert main(["sync", "--dataset", str(site)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dfs-analytics: error: ") and len(err.strip().splitlines()) == 1

    monkeypatch.setenv("DFS_BASE_URL", f"http://127.0.0.1:{closed_port()}/v0.2/")  # nobody there
    assert main(["sync", "--dataset", str(site), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err

    monkeypatch.delenv("DFS_BASE_URL")
    assert main(["sync", "--dataset", str(site)]) == 2
    assert "DFS_BASE_URL" in capsys.readouterr().err


def test_the_installed_command_for_cron(site: Path, sim: Simulator, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "dfs-analytics"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dfs_analytics.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        DFS_BASE_URL=sim.base_url,
        DFS_API_KEY=sim.api_key,
        DFS_DATASET=str(site),
    )
    done = subprocess.run(
        [*command, "sync", "--timelines", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done.stdout)
    assert summary["dataset"] == str(site) and summary["fetched"] == WORK_ORDERS
    # the default retention ran: nothing of the last 30 days goes
    assert summary["vacuum"] == {
        "older_than": "30 days",
        "removed": 0,
        "bytes": 0,
        "unreadable_versions": [],
    }
    assert sim.api_key not in done.stdout + done.stderr
