"""Progress bars: shown when asked for, and hidden by ``TQDM_DISABLE`` for every long
operation (a sync, a reanalysis, a correction campaign)."""

from __future__ import annotations

import pytest

import dfs_analytics as dfs
from tests.helpers import plan_frame, targets


def _run_slowly(kind: str, sim, client: dfs.Client, reader: dfs.Client, journal) -> None:
    """One long operation of ``kind`` against a simulator slow enough for a bar to show."""
    ids = [w["id"] for w in reader.list_work_orders()][:6]
    plan = plan_frame(targets(reader, 4)) if kind == "campaign" else None
    sim.configure(latency=0.25)
    try:
        if kind == "sync":
            dfs.load_timeline(client)
        elif kind == "reanalyze":
            dfs.reanalyze(client, ids, task_groups=["releve-optique"], max_workers=1)
        else:
            dfs.Campaign(client, plan, journal=journal).apply(max_workers=1)
    finally:
        sim.configure(latency=0.0)


@pytest.mark.parametrize("kind", ["sync", "reanalyze", "campaign"])
def test_tqdm_disable_hides_every_progress_bar(
    dfs_simulator_factory, client_for, capfd, monkeypatch, tmp_path, kind: str
) -> None:
    sim = dfs_simulator_factory(work_orders=20, seed=3)
    reader = client_for(sim, cache=None, progress=False)
    # shown when asked for: the bar exists, so hiding it below means something
    _run_slowly(kind, sim, client_for(sim, progress=True), reader, tmp_path / "shown.jsonl")
    shown = capfd.readouterr().err
    assert "%|" in shown or "/s]" in shown, shown[-300:]
    monkeypatch.setenv("TQDM_DISABLE", "1")
    hidden = client_for(sim, progress=True, cache=tmp_path / "c2")
    _run_slowly(kind, sim, hidden, reader, tmp_path / "hidden.jsonl")
    err = capfd.readouterr().err
    assert "%|" not in err and "/s]" not in err and "it/s" not in err, err[-300:]
