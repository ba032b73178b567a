"""One apply per journal at a time, and one plan per journal.

Two processes applying the same plan with the same journal at the same moment send each
correction exactly once (the second waits for the first, then finds everything applied); with
``wait=False`` the second refuses with ``BusyError`` and sends nothing. A journal records its
plan's fingerprint, and applying another plan with it is refused before anything is sent.
Neither the journal nor its lock file is ever reached through a symbolic link.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

import dfs_analytics as dfs
from dfs_analytics.campaign import Journal
from dfs_analytics.simulator import Simulator
from tests.helpers import corrections, forked, patches, plan_frame, targets

pytestmark = pytest.mark.sim(work_orders=120, seed=41, latency=0.02)

PLANNED = 40

# run in a child forked by helpers.forked, with ``plan``, ``journal`` and ``go`` given
CHILD = """\
import json
import os

import dfs_analytics as dfs

client = dfs.Client(
    os.environ["DFS_BASE_URL"], api_key=os.environ["DFS_API_KEY"], cache=None, progress=False
)
campaign = dfs.Campaign(client, plan, journal=journal)
assert campaign.validate().empty
print("ready", flush=True)
while not os.path.exists(go):  # both processes start applying at the same moment
    pass
result = campaign.apply(max_workers=8)
print(json.dumps(result["status"].value_counts().to_dict()), flush=True)
"""


def _said_ready(output: Path) -> bool:
    return "ready" in output.read_text().splitlines()


def test_two_processes_applying_one_plan_send_each_correction_once(
    sim: Simulator, reader: dfs.Client, tmp_path: Path
) -> None:
    items = targets(reader, PLANNED)
    plan_path = tmp_path / "plan.csv"
    plan_frame(items).to_csv(plan_path, index=False)
    journal, go = tmp_path / "campaign.jsonl", tmp_path / "go"
    env = {**os.environ, "DFS_BASE_URL": sim.base_url, "DFS_API_KEY": sim.api_key}
    env.pop("DFS_CACHE", None)
    outs = [tmp_path / f"child-{n}.out" for n in range(2)]
    errs = [tmp_path / f"child-{n}.err" for n in range(2)]
    for out in outs:
        out.touch()
    procs = [
        forked(
            CHILD,
            outs[n],
            errors=errs[n],
            folder=tmp_path,
            env=env,
            plan=str(plan_path),
            journal=str(journal),
            go=str(go),
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 120
    for proc, out, err in zip(procs, outs, errs, strict=True):
        while not _said_ready(out) and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _said_ready(out), (out.read_text(), err.read_text()[-3000:])
    go.touch()
    results = []
    for proc, out, err in zip(procs, outs, errs, strict=True):
        proc.join(240)
        assert proc.exitcode == 0, err.read_text()[-3000:]
        results.append(json.loads(out.read_text().strip().splitlines()[-1]))

    planned = {(i["work_order_id"], i["task_id"]) for i in items}
    assert len(planned) == PLANNED
    assert corrections(sim) == dict.fromkeys(planned, 1)  # each exactly once, none lost
    # one process applied everything; the other waited, then found it all in the journal
    expected = [{"applied": PLANNED}, {"applied earlier": PLANNED}]
    assert sorted(results, key=json.dumps) == sorted(expected, key=json.dumps), results
    events = [r["event"] for r in Journal.read(journal)]
    assert events.count("plan") == 1 and events.count("applied") == PLANNED


def test_a_second_apply_that_will_not_wait_is_refused_and_sends_nothing(
    sim: Simulator, client: dfs.Client, reader: dfs.Client, tmp_path: Path
) -> None:
    first, second = targets(reader, 2), targets(reader, 4)[2:]
    journal = tmp_path / "j.jsonl"
    holding, release = threading.Event(), threading.Event()

    def hold(done: int, total: int) -> None:  # the first apply, in the middle of its rows
        holding.set()
        release.wait(30)

    campaign = dfs.Campaign(client, plan_frame(first), journal=journal)
    worker = threading.Thread(target=campaign.apply, kwargs={"on_progress": hold})
    worker.start()
    try:
        assert holding.wait(30)
        sent = patches(sim)
        other = dfs.Campaign(reader, plan_frame(first), journal=journal)
        with pytest.raises(dfs.BusyError, match="in use by another process") as info:
            other.apply(wait=False)
        assert info.value.path == campaign.lock_path
        started = time.monotonic()
        with pytest.raises(dfs.BusyError):
            other.apply(timeout=0.3)
        assert time.monotonic() - started >= 0.3
        # another journal is another campaign: it is not held up
        assert (
            (dfs.Campaign(reader, plan_frame(second), journal=tmp_path / "k.jsonl").apply())[
                "status"
            ]
            .eq("applied")
            .all()
        )
        assert patches(sim) == sent + 2  # the refused applies sent nothing
    finally:
        release.set()
        worker.join(60)
    assert not worker.is_alive()
    again = dfs.Campaign(reader, plan_frame(first), journal=journal).apply(wait=False)
    assert again["status"].eq("applied earlier").all()  # the lock was released
    assert set(corrections(sim).values()) == {1}


def test_another_plan_on_a_journal_is_refused_before_anything_is_sent(
    sim: Simulator, client: dfs.Client, reader: dfs.Client, tmp_path: Path
) -> None:
    items = targets(reader, 4)
    journal = tmp_path / "j.jsonl"
    assert (
        dfs.Campaign(client, plan_frame(items[:2]), journal=journal)
        .apply()["status"]
        .eq("applied")
        .all()
    )
    before, lines = patches(sim), journal.read_bytes()
    changed = dfs.Campaign(client, plan_frame(items[1:]), journal=journal)
    with pytest.raises(dfs.JournalMismatchError, match="another plan") as info:
        changed.apply()
    assert "new journal" in str(info.value)
    assert isinstance(info.value, dfs.ConfigurationError)
    assert patches(sim) == before and journal.read_bytes() == lines
    # the same plan, given again in another order and as a CSV file, is the same plan
    csv_path = tmp_path / "plan.csv"
    plan_frame(items[:2]).iloc[::-1].to_csv(csv_path, index=False)
    resumed = dfs.Campaign(client, csv_path, journal=journal)
    assert resumed.fingerprint() == dfs.Campaign(client, plan_frame(items[:2])).fingerprint()
    assert resumed.apply()["status"].eq("applied earlier").all()


def test_the_journal_and_its_lock_are_never_reached_through_a_link(
    sim: Simulator, client: dfs.Client, reader: dfs.Client, tmp_path: Path
) -> None:
    items = targets(reader, 1)
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    link = tmp_path / "j.jsonl"
    link.symlink_to(target)
    with pytest.raises(dfs.UnsafePathError, match="symbolic link"):
        dfs.Campaign(client, plan_frame(items), journal=link).apply()
    with pytest.raises(dfs.UnsafePathError):
        Journal.read(link)
    lock_link = tmp_path / "k.jsonl.lock"
    lock_link.symlink_to(target)
    with pytest.raises(dfs.UnsafePathError, match="lock file"):
        dfs.Campaign(client, plan_frame(items), journal=tmp_path / "k.jsonl").apply()
    assert target.read_text() == "precious\n" and (target.stat().st_mode & 0o777) == 0o644
    assert patches(sim) == 0
    assert not (tmp_path / "k.jsonl").exists()


def test_the_journal_never_holds_a_password_of_the_base_url(
    sim: Simulator, reader: dfs.Client, tmp_path: Path
) -> None:
    url = sim.base_url.replace("http://", "http://alice:Pa55-w0rd@")
    journal = tmp_path / "j.jsonl"
    plan = plan_frame(targets(reader, 2))
    with dfs.Client(url, api_key=sim.api_key, cache=None, progress=False) as client:
        campaign = dfs.Campaign(client, plan, journal=journal)
        assert campaign.apply()["status"].eq("applied").all()
        again = dfs.Campaign(client, plan, journal=journal)
        assert again.apply()["status"].eq("applied earlier").all()  # the same site
    text = journal.read_text()
    assert "Pa55-w0rd" not in text and "alice:***@127.0.0.1" in text
