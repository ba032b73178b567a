"""``dfs.connect()``: the simulator's made-up data only when asked for; a missing or mistyped
setting is an error naming what to set. Clients talk to simulators over real HTTP."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import dfs_analytics as dfs
from dfs_analytics.connect import (
    KNOWN_VARIABLES,
    check_environment,
    data_note,
    is_simulator,
    scratch_folder,
    simulator_of,
    stop,
)
from dfs_analytics.simulator.generator import DEFAULT_WORK_ORDERS

ROOT = Path(__file__).resolve().parents[2]
connect_module = importlib.import_module("dfs_analytics.connect")  # dfs.connect is the function


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """None of the user's DFS_* settings; caches in tmp_path."""
    import os

    for name in list(os.environ):
        if name.startswith("DFS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def started() -> int:
    """How many simulators connect() has started and not yet stopped."""
    return len(connect_module._SIMULATORS)


def test_a_mistyped_variable_is_an_error_naming_the_right_one(monkeypatch) -> None:
    monkeypatch.setenv("DFS_BASE_ULR", "https://api.example.com/v0.2/")
    monkeypatch.setenv("DFS_API_KEY", "some-key")
    before = started()
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.connect()
    message = str(info.value)
    assert "DFS_BASE_ULR" in message and "did you mean DFS_BASE_URL?" in message
    assert started() == before  # no made-up data behind the user's back
    with pytest.raises(dfs.ConfigurationError, match="DFS_BASE_ULR"):
        dfs.connect(simulator=True)  # even when the simulator is asked for: fix the typo


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("DFS_APIKEY", "DFS_API_KEY"),
        ("DFS_SITEID", "DFS_SITE_ID"),
        ("DFS_SIMULATE", "DFS_SIMULATOR"),
        ("DFS_REGOIN", "DFS_REGION"),
        ("DFS_CACHE_DIR", "DFS_CACHE"),
    ],
)
def test_unknown_variables_name_the_nearest_known_one(name: str, nearest: str) -> None:
    with pytest.raises(dfs.ConfigurationError, match=f"{name} \\(did you mean {nearest}\\?\\)"):
        check_environment({name: "x", "DFS_API_KEY": "k"})


def test_known_variables_pass_the_check() -> None:
    assert check_environment({name: "1" for name in KNOWN_VARIABLES}) is None
    assert check_environment({"PATH": "/bin", "MYDFS_X": "1"}) is None
    with pytest.raises(dfs.ConfigurationError, match="DFS_WHATEVER"):
        check_environment({"DFS_WHATEVER": "1"})  # nothing close: still refused


def test_every_dfs_variable_the_code_reads_is_known() -> None:
    import re

    read: set[str] = set()
    for folder in ("dfs_analytics", "tests", "tools", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"\bDFS_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    # names used in these tests as examples of typos are not read by the code
    examples = {"DFS_BASE_ULR", "DFS_APIKEY", "DFS_SITEID", "DFS_SIMULATE", "DFS_REGOIN"}
    examples |= {"DFS_CACHE_DIR", "DFS_WHATEVER", "DFS_X"}
    assert read - examples <= set(KNOWN_VARIABLES), read - examples - set(KNOWN_VARIABLES)


def test_no_settings_is_an_error_saying_what_to_set() -> None:
    before = started()
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.connect()
    message = str(info.value)
    for needed in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_API_KEY", "simulator=True"):
        assert needed in message
    assert started() == before


def test_a_site_without_a_key_is_an_error_naming_the_key(monkeypatch) -> None:
    monkeypatch.setenv("DFS_BASE_URL", "https://api.example.com/v0.2/")
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.connect()
    assert "DFS_API_KEY" in str(info.value)
    assert "DFS_BASE_URL (or" not in str(info.value)  # the URL is there


def test_a_configured_site_is_used_not_the_simulator(
    dfs_simulator_factory, monkeypatch, tmp_path
) -> None:
    site = dfs_simulator_factory(work_orders=8, seed=5)
    monkeypatch.setenv("DFS_BASE_URL", site.base_url)
    monkeypatch.setenv("DFS_API_KEY", site.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
    before = started()
    client = dfs.connect(progress=False)
    try:
        assert not is_simulator(client)
        assert data_note(client) == ""
        assert client.base_url == site.base_url
        assert started() == before
        assert len(dfs.load_work_orders(client)) == 8
    finally:
        client.close()


def test_simulator_when_asked_for_in_code(capsys) -> None:
    client = dfs.connect(simulator=True, work_orders=12, seed=3, progress=False)
    try:
        assert is_simulator(client)
        assert data_note(client) == " (simulator data)"
        assert "(simulator data)" in capsys.readouterr().out
        assert len(dfs.load_work_orders(client)) == 12  # over real HTTP
    finally:
        stop(client)
    sim = simulator_of(client)
    assert sim is not None and sim not in connect_module._SIMULATORS
    assert is_simulator(client)  # its data stays made up after the simulator stops
    assert "simulator" not in vars(client)  # connect() keeps its own registry


def test_a_client_built_by_hand_has_no_simulator(dfs_simulator) -> None:
    client = dfs.Client(dfs_simulator.base_url, api_key=dfs_simulator.api_key, cache=None)
    assert simulator_of(client) is None and not is_simulator(client)
    assert simulator_of(object()) is None and simulator_of(None) is None


def test_simulator_when_asked_for_in_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DFS_SIMULATOR", "1")
    client = dfs.connect(work_orders=5, progress=False)
    try:
        assert is_simulator(client)
        assert len(dfs.load_task_groups(client)) > 0
    finally:
        stop(client)


def test_simulator_false_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DFS_SIMULATOR", "1")
    with pytest.raises(dfs.ConfigurationError, match="DFS_API_KEY"):
        dfs.connect(simulator=False)


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_dfs_simulator_off_means_the_site(monkeypatch, value: str) -> None:
    monkeypatch.setenv("DFS_SIMULATOR", value)
    with pytest.raises(dfs.ConfigurationError, match="no site is configured"):
        dfs.connect()


def test_a_dfs_simulator_value_that_means_nothing_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv("DFS_SIMULATOR", "maybe")
    with pytest.raises(dfs.ConfigurationError, match="DFS_SIMULATOR='maybe'"):
        dfs.connect()


def test_the_default_size_is_the_simulators() -> None:
    default = inspect.signature(dfs.connect).parameters["work_orders"].default
    assert default == DEFAULT_WORK_ORDERS


def test_a_scratch_folder_lives_as_long_as_its_simulator() -> None:
    client = dfs.connect(simulator=True, work_orders=3, progress=False)
    folder = scratch_folder(client, "campaign")
    assert folder.is_dir() and not any(folder.iterdir())
    assert scratch_folder(client, "campaign") == folder
    (folder / "journal.jsonl").write_text("{}\n")
    stop(client)
    assert not folder.exists()


def test_a_real_site_has_no_scratch_folder(dfs_simulator_factory, tmp_path) -> None:
    site = dfs_simulator_factory(work_orders=2, seed=1)
    client = dfs.Client(site.base_url, api_key=site.api_key, cache=None)
    with pytest.raises(dfs.ConfigurationError, match="real site"):
        scratch_folder(client)
