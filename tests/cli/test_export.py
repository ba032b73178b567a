"""``dfs-analytics export``: frames to CSV / JSON lines, from the local simulator; each command
runs in a child process forked with the CLI imported (``helpers.Command``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator
from tests.helpers import Command


def _run(
    *args: str, cwd: Path, env_vars: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    env["XDG_CACHE_HOME"] = str(cwd / "xdg-cache")
    env.update(env_vars or {})
    return Command(["export", *args], cwd, env).wait(timeout=300)


@pytest.fixture(scope="module")
def loaded() -> dict[str, pd.DataFrame]:
    """What the loaders give from the simulator the exports below ask for."""
    with Simulator(work_orders=60, seed=4) as sim:
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        return {
            "tasks": dfs.load_tasks(client, created_after="2026-03-01"),
            "timeline": dfs.load_timeline(client, created_after="2026-03-01"),
        }


@pytest.mark.parametrize(
    ("what", "out", "option", "env_vars"),
    [
        ("tasks", "out/tasks.csv", ["--simulator"], None),
        ("timeline", "tl.jsonl", [], {"DFS_SIMULATOR": "1"}),  # the other way to ask for it
    ],
)
def test_export_writes_the_same_rows_as_the_loaders(
    tmp_path: Path,
    loaded: dict[str, pd.DataFrame],
    what: str,
    out: str,
    option: list[str],
    env_vars: dict[str, str] | None,
) -> None:
    simulator = ["--work-orders", "60", "--seed", "4", *option]
    done = _run(
        what,
        "--out",
        out,
        *simulator,
        "--created-after",
        "2026-03-01",
        cwd=tmp_path,
        env_vars=env_vars,
    )
    assert done.returncode == 0, done.stderr
    assert "local simulator" in done.stderr
    assert "(simulator data)" in done.stdout  # what was written is made-up data, and says so
    expected = loaded[what]
    if out.endswith(".csv"):
        written = pd.read_csv(tmp_path / out)
        assert len(written) == len(expected)
        assert list(written["task_id"]) == list(expected["task_id"].astype(str))
    else:
        rows = [json.loads(line) for line in (tmp_path / out).read_text().splitlines()]
        assert len(rows) == len(expected)
        # dates keep their microseconds
        assert pd.Timestamp(rows[0]["date"]) == expected["date"].iloc[0]


def test_export_refuses_an_unknown_format(tmp_path: Path) -> None:
    done = _run("tasks", "--out", "tasks.xlsx", cwd=tmp_path)
    assert done.returncode == 2
    assert ".csv, .json, .jsonl or .parquet" in done.stderr
    assert not (tmp_path / "tasks.xlsx").exists()


def test_export_without_a_site_is_an_error_not_made_up_data(tmp_path: Path) -> None:
    done = _run("tasks", "--out", "tasks.csv", "--work-orders", "5", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1
    for needed in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_API_KEY", "--simulator"):
        assert needed in line
    assert "simulator (" not in line  # no simulator was started
    assert not (tmp_path / "tasks.csv").exists()


def test_export_with_a_mistyped_variable_names_the_right_one(tmp_path: Path) -> None:
    done = _run(
        "tasks",
        "--out",
        "tasks.csv",
        cwd=tmp_path,
        env_vars={"DFS_BASE_ULR": "https://api.example.com/v0.2/", "DFS_API_KEY": "some-key"},
    )
    assert done.returncode == 2, done.stderr
    assert "DFS_BASE_ULR" in done.stderr and "did you mean DFS_BASE_URL?" in done.stderr
    assert "some-key" not in done.stderr
    assert not (tmp_path / "tasks.csv").exists()


def test_export_from_a_configured_site_says_nothing_of_a_simulator(tmp_path: Path) -> None:
    with Simulator(work_orders=6, seed=2) as site:
        done = _run(
            "work-orders",
            "--out",
            "wo.csv",
            cwd=tmp_path,
            env_vars={"DFS_BASE_URL": site.base_url, "DFS_API_KEY": site.api_key},
        )
    assert done.returncode == 0, done.stderr
    assert "simulator" not in done.stdout + done.stderr
    assert len(pd.read_csv(tmp_path / "wo.csv")) == 6
