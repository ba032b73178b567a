"""``dfs-analytics correct plan.csv --journal j.jsonl [--apply]``, run as a child process against
a simulator running in the test process (``DFS_BASE_URL`` / ``DFS_API_KEY``).

Each command is a process forked with the CLI imported (``helpers.Command``): it gets its own
arguments, environment, working folder, standard output and error, and exit status, as the
``dfs-analytics`` script gives them (``sys.exit(main())``).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.files import file_lock
from tests.helpers import Command, patches, targets, text

# the tasks corrected, to a value of helpers.CHOICES each task does not have

pytestmark = pytest.mark.sim(work_orders=100, seed=17)

TASKS = (
    "cables_ranges",
    "jarretiere_connectee",
    "nombre_connecteurs",
    "couleur_fibre",
    "mesure_puissance",
)


def start(args: list[str], tmp_path: Path, sim: Any = None, **extra: str) -> Command:
    """The command with these arguments, in ``tmp_path``, with the environment of the site of
    ``sim`` (none without) and ``extra`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    if sim is not None:
        env["DFS_BASE_URL"] = sim.base_url
        env["DFS_API_KEY"] = sim.api_key
        env["DFS_CACHE"] = str(tmp_path / "cache")
    env.update(extra)
    return Command(args, tmp_path, env)


def run(
    args: list[str], tmp_path: Path, sim: Any = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The command run to its end (see :func:`start`)."""
    return start(args, tmp_path, sim, **extra).wait(timeout=120)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def make_plan(sim, path: Path, n: int = 8) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A CSV plan of ``n`` corrections to new values (one task per work order), plus one row
    already at its value (returned apart)."""
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as client:
        rows = targets(client, n + 1, names=TASKS, per_work_order=1)
    changes, same = rows[:n], rows[n]
    plan = [(r["work_order_id"], r["task_name"], text(r["value"])) for r in changes]
    plan.append((same["work_order_id"], same["task_name"], text(same["current"])))
    pd.DataFrame(plan, columns=["work_order_id", "task_name", "corrected_value"]).to_csv(
        path, index=False
    )
    return changes, same


def test_dry_run_prints_the_preview_and_sends_nothing(sim, tmp_path: Path) -> None:
    changes, same = make_plan(sim, tmp_path / "plan.csv")
    journal = tmp_path / "j.jsonl"

    done = run(["correct", "plan.csv", "--journal", str(journal)], tmp_path, sim)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    for row in [*changes, same]:
        assert row["work_order_id"] in out
        assert row["task_name"] in out
    assert out.count(" apply") >= len(changes)
    assert "skip: already that value" in out
    assert "Dry run" in out and "Nothing was sent" in out and "--apply" in out
    assert patches(sim) == 0
    assert sim.correction_counts() == {}
    assert not journal.exists() or "attempt" not in journal.read_text()


def test_apply_then_apply_again_sends_nothing_new(sim, tmp_path: Path) -> None:
    changes, _ = make_plan(sim, tmp_path / "plan.csv")
    planned = {(r["work_order_id"], r["task_id"]): 1 for r in changes}
    # a notebook's client sharing the command's cache folder, loaded before the command runs
    notebook = dfs.Client(
        sim.base_url, api_key=sim.api_key, cache=tmp_path / "cache", progress=False
    )
    loaded = dfs.load_tasks(notebook)

    done = run(
        ["correct", "plan.csv", "--journal", "j.jsonl", "--apply", "--workers", "3"],
        tmp_path,
        sim,
    )

    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "applied" in done.stdout
    assert "j.jsonl" in done.stdout
    assert sim.correction_counts() == planned
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as client:
        for row in changes:
            wo = client.get_work_order(row["work_order_id"])
            state = next(t for t in wo["tasks"] if t["id"] == row["task_id"])["state"]
            assert _same(state["corrected_value"], row["value"])
    # its next load shows what the command wrote
    tasks = dfs.load_tasks(notebook).set_index(["work_order_id", "task_id"])
    assert len(tasks) == len(loaded)
    for row in changes:
        assert _same(tasks.loc[(row["work_order_id"], row["task_id"]), "value"], row["value"])
    notebook.close()
    records = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "applied" for r in records) == len(changes)
    sent = patches(sim)

    again = run(["correct", "plan.csv", "--journal", "j.jsonl", "--apply"], tmp_path, sim)

    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "applied earlier" in again.stdout
    assert patches(sim) == sent
    assert sim.correction_counts() == planned

    dry = run(["correct", "plan.csv", "--journal", "j.jsonl"], tmp_path, sim)
    assert dry.returncode == 0
    assert f"{{'skip: already that value': {len(changes) + 1}}}" in dry.stdout
    assert patches(sim) == sent


@pytest.mark.parametrize("apply", [False, True])
def test_a_bad_plan_exits_1_with_its_problems(sim, tmp_path: Path, apply: bool) -> None:
    changes, _ = make_plan(sim, tmp_path / "plan.csv", n=2)
    unknown = str(uuid.uuid4())
    with open(tmp_path / "plan.csv", "a") as fh:
        fh.write(f"{unknown},cables_ranges,true\n")
        fh.write(f"{changes[0]['work_order_id']},no_such_task,true\n")
        fh.write(f"{changes[1]['work_order_id']},cables_ranges,peut-etre\n")
    args = ["correct", "plan.csv", "--journal", "j.jsonl"] + (["--apply"] if apply else [])

    done = run(args, tmp_path, sim)

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "3 problem(s)" in done.stdout
    assert "nothing was sent" in done.stdout
    assert unknown in done.stdout
    assert "no_such_task" in done.stdout
    assert "peut-etre" in done.stdout
    assert "Traceback" not in done.stderr
    assert patches(sim) == 0
    assert sim.correction_counts() == {}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'work_order_id,task_name,corrected_value\n"abc,cables_ranges,true\n', "malformed"),
        (b"work_order_id,corrected_value\nabc,true\n", "missing column"),
        (b"", "malformed"),
    ],
)
def test_a_malformed_plan_exits_1(sim, tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "plan.csv").write_bytes(content)
    done = run(["correct", "plan.csv", "--journal", "j.jsonl", "--apply"], tmp_path, sim)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert match in done.stdout
    assert "Traceback" not in done.stderr
    assert patches(sim) == 0


def test_without_a_site_it_exits_2_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "plan.csv").write_text("work_order_id,task_name,corrected_value\nx,y,true\n")
    done = run(["correct", "plan.csv", "--journal", "j.jsonl", "--apply"], tmp_path)
    assert done.returncode == 2
    assert "DFS_BASE_URL" in done.stderr and "DFS_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "j.jsonl").exists()


def test_a_journal_in_use_is_refused_unless_asked_to_wait(sim, tmp_path: Path) -> None:
    changes, _ = make_plan(sim, tmp_path / "plan.csv")
    argv = ["correct", "plan.csv", "--journal", "j.jsonl", "--apply"]
    # another campaign holds the journal (its lock, as Campaign.apply takes it)
    with file_lock(tmp_path / "j.jsonl.lock"):
        refused = run(argv, tmp_path, sim)
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        assert "in use by another process" in refused.stderr and "--wait" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert patches(sim) == 0
        waiting = start([*argv, "--wait"], tmp_path, sim)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=3)  # it waits while the journal is held
        assert patches(sim) == 0
    done = waiting.wait(timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert sim.correction_counts() == {(r["work_order_id"], r["task_id"]): 1 for r in changes}


def test_another_plan_on_a_journal_exits_with_advice(sim, tmp_path: Path) -> None:
    make_plan(sim, tmp_path / "plan.csv", n=2)
    first = run(["correct", "plan.csv", "--journal", "j.jsonl", "--apply"], tmp_path, sim)
    assert first.returncode == 0, first.stderr
    sent = patches(sim)
    make_plan(sim, tmp_path / "plan.csv", n=4)  # the plan file changed since
    second = run(["correct", "plan.csv", "--journal", "j.jsonl", "--apply"], tmp_path, sim)
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert "another plan" in second.stderr and "new journal" in second.stderr
    assert patches(sim) == sent
