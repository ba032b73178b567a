"""A campaign process killed with SIGKILL at random moments, then resumed, applies every planned
correction exactly once.

The simulator runs in this process (latency 0.02 s per request); a child process builds a
``dfs.Campaign`` of 150 corrections with its journal in tmp_path and calls
``apply(max_workers=8)``. The parent kills it (SIGKILL) several times, at seeded random
moments, restarts it, and finally lets it finish. The simulator's per-task correction counts
then say whether a correction was lost (0) or sent twice (2). Each child is forked with the
package imported (``helpers.forked``); it builds its own client, so all
that a killed child leaves behind is what it wrote to the journal, its cache and the server.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.campaign import Journal
from dfs_analytics.simulator import Simulator
from tests.helpers import forked, targets

pytestmark = pytest.mark.sim(work_orders=120, seed=7, latency=0.02)

PLANNED = 150
# the tasks corrected (a value each task does not have, picked by helpers.targets)
TASKS = (
    "pb_etiquette_presente",
    "cables_ranges",
    "jarretiere_connectee",
    "photo_environnement",
    "nombre_connecteurs",
    "couleur_fibre",
    "mesure_puissance",
    "numero_serie",
)

# run by ``exec`` in a child forked by ``helpers.forked``, with ``base_url``, ``api_key``,
# ``plan``, ``journal``, ``cache`` and ``ready`` (a pipe's writing end) given
CHILD = """\
import json
import sys

import dfs_analytics as dfs

client = dfs.Client(base_url, api_key=api_key, cache=cache, progress=False)
campaign = dfs.Campaign(client, plan, journal=journal)
ready.send("ready")
ready.close()
result = campaign.apply(max_workers=8)
print("done " + json.dumps(result["status"].value_counts().to_dict()), flush=True)
ok = result["status"].isin(["applied", "applied earlier", "confirmed", "skipped"]).all()
sys.exit(0 if ok else 3)
"""

# name: (seed, kills, how each kill after the first is timed). The first kill of every
# schedule waits for the journal to grow by a random number of lines (so at least one kill
# lands in the middle of the corrections); the next ones wait a random delay after the child
# says it is ready, or for more journal lines.
SCHEDULES = {
    "short-delays": (101, 5, ("delay", 0.1, 0.6)),
    "long-delays": (202, 4, ("delay", 0.1, 1.5)),
    "journal-lines": (303, 5, ("lines", 1, 80)),
}


def _plan(client: dfs.Client) -> pd.DataFrame:
    """PLANNED corrections (at most two per work order), each to a value the task does not
    have; values in their JSON text, as a CSV plan gives them."""
    return pd.DataFrame(
        {
            "work_order_id": item["work_order_id"],
            "task_name": item["task_name"],
            "task_id": item["task_id"],
            "corrected_value": item["value"]
            if isinstance(item["value"], str)
            else json.dumps(item["value"]),
        }
        for item in targets(client, PLANNED, names=TASKS)
    )


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _tail(path: Path) -> str:
    """The end of a child's output (its traceback, if it failed)."""
    try:
        return path.read_text(errors="replace")[-3000:]
    except FileNotFoundError:
        return "(no output)"


def _outcomes(path: Path) -> dict[tuple[str, str], str]:
    """The last journaled event per (work order, task)."""
    last: dict[tuple[str, str], str] = {}
    for record in Journal.read(path):
        if "task_id" in record:
            last[(record["work_order_id"], record["task_id"])] = record["event"]
    return last


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_killed_and_resumed_campaign_applies_each_correction_once(
    sim: Simulator, tmp_path: Path, schedule: str
) -> None:
    seed, kills, (mode, low, high) = SCHEDULES[schedule]
    rng = random.Random(seed)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as parent:
        plan = _plan(parent)
    plan_path = tmp_path / "plan.csv"
    plan.to_csv(plan_path, index=False)
    planned = set(zip(plan["work_order_id"], plan["task_id"], strict=True))
    assert len(planned) == PLANNED
    journal = tmp_path / "campaign.jsonl"
    runs = iter(range(kills + 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")

    def start() -> tuple[BaseProcess, Path]:
        """A child applying the campaign, once it has built it; and the file of its output."""
        output = tmp_path / f"child-{next(runs)}.log"
        ready, ready_there = multiprocessing.Pipe(duplex=False)
        proc = forked(
            CHILD,
            output,
            folder=tmp_path,
            env=env,
            ready=ready_there,
            base_url=sim.base_url,
            api_key=sim.api_key,
            plan=str(plan_path),
            journal=str(journal),
            cache=str(tmp_path / "cache"),
        )
        ready_there.close()
        try:
            started = ready.poll(120) and ready.recv() == "ready"
        except EOFError:  # it ended before saying it was ready
            started = False
        finally:
            ready.close()
        if not started:
            proc.join(10)
            raise AssertionError(f"the child did not start ({proc.exitcode}): {_tail(output)}")
        return proc, output

    log = []
    interrupted = 0
    for round_ in range(kills):
        proc, output = start()
        if round_ == 0 or mode == "lines":
            first = (5, 120) if round_ == 0 else (int(low), int(high))
            target = _lines(journal) + rng.randint(*first)
            while proc.exitcode is None and _lines(journal) < target:
                time.sleep(0.002)
            how = f"after {target} journal lines"
        else:
            delay = rng.uniform(low, high)
            proc.join(delay)
            how = f"after {delay:.2f} s"
        if proc.exitcode is None:
            # it may still finish on its own between the check and the kill: the exit status
            # says which happened
            proc.kill()
        proc.join()
        killed = proc.exitcode == -signal.SIGKILL
        outcomes = _outcomes(journal)
        done = sum(1 for k in planned if outcomes.get(k) in ("applied", "confirmed"))
        log.append(f"round {round_}: {how}, killed={killed}, {done}/{PLANNED} done")
        if killed:
            interrupted += done < PLANNED
        else:
            assert proc.exitcode == 0, (log, _tail(output))

    # the last run, to completion
    proc, output = start()
    proc.join(240)
    assert proc.exitcode == 0, (log, _tail(output))
    assert output.read_text().startswith("done"), _tail(output)
    assert interrupted >= 1, log  # at least one kill hit the campaign in its middle

    counts = sim.correction_counts()
    lost = sorted(k for k in planned if counts.get(k, 0) == 0)
    twice = sorted((k, counts[k]) for k in planned if counts.get(k, 0) > 1)
    assert not lost and not twice, (log, lost, twice)
    assert set(counts) == planned  # nothing else was corrected
    outcomes = _outcomes(journal)
    assert {k: outcomes.get(k) in ("applied", "confirmed") for k in planned} == dict.fromkeys(
        planned, True
    ), log

    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as parent:
        campaign = dfs.Campaign(parent, plan_path, journal=journal)
        assert campaign.verify().empty, log
        again = campaign.apply()
        assert (again["status"] == "applied earlier").all()
    assert sim.correction_counts() == counts
