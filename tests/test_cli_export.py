"""``dfs-analytics export``: frames to CSV / JSON lines, from the local simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    return subprocess.run(
        [sys.executable, "-m", "dfs_analytics.cli", "export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_export_writes_the_same_rows_as_the_loaders(tmp_path: Path) -> None:
    with Simulator(work_orders=60, seed=4) as sim:
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        tasks = dfs.load_tasks(client, created_after="2026-03-01")
        timeline = dfs.load_timeline(client, created_after="2026-03-01")

    done = _run(
        "tasks",
        "--out",
        "out/tasks.csv",
        "--work-orders",
        "60",
        "--seed",
        "4",
        "--created-after",
        "2026-03-01",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "local simulator" in done.stderr
    written = pd.read_csv(tmp_path / "out" / "tasks.csv")
    assert len(written) == len(tasks)
    assert list(written["task_id"]) == list(tasks["task_id"].astype(str))

    done = _run(
        "timeline",
        "--out",
        "tl.jsonl",
        "--work-orders",
        "60",
        "--seed",
        "4",
        "--created-after",
        "2026-03-01",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "tl.jsonl").read_text().splitlines()]
    assert len(rows) == len(timeline)
    # dates keep their microseconds
    assert pd.Timestamp(rows[0]["date"]) == timeline["date"].iloc[0]


def test_export_refuses_an_unknown_format(tmp_path: Path) -> None:
    done = _run("tasks", "--out", "tasks.xlsx", cwd=tmp_path)
    assert done.returncode == 2
    assert ".csv, .json, .jsonl or .parquet" in done.stderr
    assert not (tmp_path / "tasks.xlsx").exists()
