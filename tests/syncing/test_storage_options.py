"""A client's storage options: checked and masked in its settings, read from
``DFS_STORAGE_OPTIONS``, and passed wherever the sync opens the client's dataset, so an
object-store dataset syncs with no ``AWS_*`` variable set."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from pathlib import Path

import pytest

import dfs_analytics as dfs
from dfs_analytics import syncing
from dfs_analytics.config import Secret, Settings
from dfs_analytics.errors import ConfigurationError, DatasetLocationError
from dfs_analytics.simulator import Simulator
from tests.helpers import clear_aws_env
from tests.objectstore import SeaweedS3

SECRET = "s3cr3t-value-never-shown"
BASE = "http://127.0.0.1:9/"


def _settings(**kw: object) -> Settings:
    return Settings.resolve(BASE, cache=None, **kw)


def test_secret_options_are_masked_everywhere_they_could_show() -> None:
    options = {
        "aws_access_key_id": "AKIA-ID",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "aws_session_token": SECRET + "-t",
        "password": SECRET + "-p",
        "aws_region": "eu-west-1",
        "allow_http": True,
    }
    s = _settings(storage_options=options)
    assert isinstance(s.storage_options, dict)
    assert isinstance(s.storage_options["AWS_SECRET_ACCESS_KEY"], Secret)
    assert isinstance(s.storage_options["aws_access_key_id"], Secret)  # its name says KEY
    assert s.storage_options["aws_region"] == "eu-west-1"
    assert s.storage_options["allow_http"] == "true"
    shown = [repr(s), str(s), repr(dataclasses.asdict(s))]
    for text in shown:
        assert SECRET not in text and "AKIA-ID" not in text
        assert "eu-west-1" in text  # what is not secret stays visible
    with pytest.raises(TypeError):
        json.dumps(dataclasses.asdict(s)["storage_options"])
    assert SECRET not in repr(pickle.loads(pickle.dumps(s)).dataset_options())
    revealed = s.dataset_options()
    assert revealed is not None and revealed["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert all(isinstance(v, str) for v in revealed.values())


def test_options_from_the_environment_as_json() -> None:
    env = {"DFS_BASE_URL": BASE, "DFS_CACHE": "none"}
    env["DFS_STORAGE_OPTIONS"] = json.dumps({"aws_secret_access_key": SECRET, "aws_region": "x"})
    s = Settings.from_env(env)
    assert s.dataset_options() == {"aws_secret_access_key": SECRET, "aws_region": "x"}
    assert SECRET not in repr(s)
    assert Settings.from_env({**env, "DFS_STORAGE_OPTIONS": ""}).storage_options is None


@pytest.mark.parametrize(
    "bad",
    [
        '{"aws_secret_access_key": "' + SECRET,  # not JSON
        '["' + SECRET + '"]',  # not an object
        '{"aws_secret_access_key": {"nested": "' + SECRET + '"}}',  # not text
    ],
)
def test_bad_options_are_refused_without_quoting_them(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"DFS_BASE_URL": BASE, "DFS_STORAGE_OPTIONS": bad})
    assert SECRET not in str(caught.value)


# -- a real object store, credentials given as storage options only ---------------------------


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the storage options can open the store."""
    clear_aws_env(monkeypatch, tmp_path)


def test_a_client_syncs_an_s3_dataset_with_storage_options_only(
    object_store: SeaweedS3,
    no_aws_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = object_store.uri(request.node.name, "site")
    with Simulator(work_orders=12, seed=3) as sim:
        # without the options, the store is refused before any request
        bare = dfs.Client.from_env(
            base_url=sim.base_url, api_key=sim.api_key, dataset=uri, cache=None, progress=False
        )
        with pytest.raises(DatasetLocationError):
            dfs.sync(bare)
        client = dfs.Client(  # the options given to the Client itself
            sim.base_url,
            api_key=sim.api_key,
            dataset=uri,
            cache=tmp_path / "cache",
            progress=False,
            storage_options=object_store.storage_options,
        )
        with client:
            result = dfs.sync(client, timelines=True)
            assert (result.location, result.version, result.fetched) == (uri, 0, 12)
            assert len(dfs.load_tasks(client)) > 0  # the loaders read it back through it
            assert syncing.existing_dataset(client) is not None
            assert syncing.client_dataset(client).version == 0
            assert object_store.secret_key not in repr(client)
        # a reader opens it with the same options
        ds = dfs.open_dataset(uri, storage_options=object_store.storage_options)
        assert len(ds.work_orders()) == 12
    for record in caplog.records:
        assert object_store.secret_key not in record.getMessage()
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert object_store.secret_key.encode() not in path.read_bytes(), path


def test_the_sync_command_reads_the_store_options_from_the_environment(
    object_store: SeaweedS3,
    no_aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    from dfs_analytics.cli import main

    uri = object_store.uri(request.node.name, "site")
    with Simulator(work_orders=8, seed=4) as sim:
        monkeypatch.setenv("DFS_BASE_URL", sim.base_url)
        monkeypatch.setenv("DFS_API_KEY", sim.api_key)
        monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("DFS_STORAGE_OPTIONS", json.dumps(object_store.storage_options))
        assert main(["sync", "--dataset", uri, "--timelines", "--json"]) == 0
        out, err = capsys.readouterr()
        summary = json.loads(out.strip().splitlines()[-1])
        assert (summary["dataset"], summary["fetched"]) == (uri, 8)
        assert summary["vacuum"]["removed"] == 0
        # a reader: the dataset's location and the store's options, no site settings
        for name in ("DFS_BASE_URL", "DFS_API_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("DFS_DATASET", uri)
        assert main(["status", "--json"]) == 0
        status_out, status_err = capsys.readouterr()
        assert json.loads(status_out.strip().splitlines()[-1])["tables"]["work_orders"] == 8
    for text in (out, err, status_out, status_err):
        assert object_store.secret_key not in text
