"""Bad settings and arguments are ConfigurationErrors (never a raw traceback), refused before
any request; errors point at the likely fix; progress bars obey ``TQDM_DISABLE``.

(Bad knobs and base URLs given to the client are in ``test_config.py``.)"""

from __future__ import annotations

import warnings
from datetime import date, datetime

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.query import list_params
from tests.helpers import closed_port, delta

pytestmark = pytest.mark.sim(work_orders=8, seed=12, scope="module")

URL = "http://127.0.0.1:8765/v0.2/"


def test_a_cache_that_is_a_file_is_a_configuration_error(tmp_path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(dfs.ConfigurationError, match="is a file"):
        dfs.Client(URL, api_key="k", cache=path)


@pytest.mark.parametrize(
    "value",
    ["0001-01-01", date(1, 1, 1), datetime(9999, 12, 31), pd.NaT, "9999-12-31T23:59:59+00:00"],
    ids=repr,
)
def test_dates_pandas_cannot_hold_are_configuration_errors(value) -> None:
    with pytest.raises(dfs.ConfigurationError, match="created_after"):
        list_params({"created_after": value})


@pytest.mark.parametrize(
    "filters",
    [
        {"created_after": "0001-01-01"},
        {"updated_before": pd.NaT},
        {"created_after": "2026-03-02", "created_before": "2026-03-01"},
        {"updated_after": "2026-03-01T10:00:00Z", "updated_before": "2026-03-01T09:00:00Z"},
    ],
    ids=repr,
)
def test_loaders_refuse_bad_dates_before_any_request(sim, client_for, filters) -> None:
    client = client_for(sim)
    before = sim.request_counts()
    for load in (dfs.load_work_orders, dfs.load_tasks, dfs.load_timeline, dfs.sync):
        with pytest.raises(dfs.ConfigurationError):
            load(client, **filters)
    assert delta(sim, before) == {}


def test_equal_or_ordered_dates_are_fine() -> None:
    same_day = {"created_after": "2026-03-01", "created_before": "2026-03-01"}
    assert list_params(same_day) == {
        "created_after": "2026-03-01T00:00:00Z",
        "created_before": "2026-03-01T00:00:00Z",
    }
    later = {"updated_after": "2026-03-01", "updated_before": "2026-03-01T00:00:00.5"}
    assert list_params(later) == {
        "updated_after": "2026-03-01T00:00:00Z",
        "updated_before": "2026-03-01T00:00:00.500000Z",
    }


def test_a_404_on_the_list_says_the_base_url_looks_wrong(sim, client_for) -> None:
    wrong = type("Wrong", (), {"base_url": sim.url + "/not-the-api/v0.2/", "api_key": sim.api_key})
    client = client_for(wrong, cache=None)
    with pytest.raises(dfs.NotFoundError) as info:
        client.list_work_orders()
    assert "base URL looks wrong" in str(info.value)
    assert "id or name" not in str(info.value)
    # while an unknown id keeps the id hint
    with pytest.raises(dfs.NotFoundError) as info2:
        client_for(sim, cache=None).get_work_order("unknown-id")
    assert "base URL" not in str(info2.value)


def test_a_transport_error_with_a_cache_suggests_offline(client_for, tmp_path) -> None:
    class Nowhere:
        base_url = f"http://127.0.0.1:{closed_port()}/v0.2/"
        api_key = "k"

    cached = client_for(Nowhere, cache=tmp_path / "c", retries=0)
    with pytest.raises(dfs.TransportError, match="offline=True"):
        cached.get_work_order("wo")
    uncached = client_for(Nowhere, cache=None, retries=0)
    with pytest.raises(dfs.TransportError) as info:
        uncached.get_work_order("wo")
    assert "offline=True" not in str(info.value)


def test_a_task_name_given_as_name_warns(sim, client_for) -> None:
    client = client_for(sim)
    with pytest.warns(UserWarning, match="work order's own name"):
        frame = dfs.load_tasks(client, name="mesure_puissance")
    assert frame.empty
    with pytest.warns(UserWarning, match="work order's own name"):
        dfs.load_work_orders(client, name="releve-optique")
    some_name = dfs.load_work_orders(client)["name"].iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(dfs.load_work_orders(client, name=some_name)) >= 1
        assert dfs.load_work_orders(client, name="NO_SUCH_WORK_ORDER").empty


def _run_slowly(kind: str, sim, client: dfs.Client, reader: dfs.Client, journal) -> None:
    """One long operation of ``kind`` against a simulator slow enough for a bar to show."""
    from tests.helpers import plan_frame, targets

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
