"""Where a dataset lives: object-store URIs without credentials, schemes deltalake cannot
open, ``file:`` URIs, read-only table folders and planted symbolic links all give a typed
error at once (no ANSI codes, no Rust panic), and change nothing.

Syncs go to a real simulator over HTTP; the dataset is under ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone

import pytest

import dfs_analytics as dfs
from tests.helpers import delta

pytestmark = pytest.mark.sim(work_orders=12, seed=9)

CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_SKIP_SIGNATURE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GCE_METADATA_HOST",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
)


@pytest.fixture
def no_credentials(tmp_path, monkeypatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.aws, no gcloud file


def _touch_one(sim) -> None:
    """The server changes a work order, so that the next sync writes every table."""
    with sim.store.lock:
        wo = next(iter(sim.store.work_orders.values()))
        sim.store.touch(wo, datetime.now(timezone.utc))


# -- object stores and schemes ------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["s3://dfs-bucket/site", "gs://dfs-bucket/site", "az://c/site"])
def test_an_object_store_without_credentials_is_a_typed_error_at_once(
    sim, client_for, no_credentials, uri
) -> None:
    started = time.monotonic()
    with pytest.raises(dfs.DatasetLocationError) as caught:
        dfs.open_dataset(uri)
    assert time.monotonic() - started < 5
    text = str(caught.value)
    assert "\x1b" not in text and "no credentials" in text
    assert {"s3": "AWS_ACCESS_KEY_ID", "gs": "GOOGLE_APPLICATION_CREDENTIALS", "az": "AZURE_"}[
        uri.split(":")[0]
    ] in text
    assert isinstance(caught.value, dfs.ConfigurationError)
    # a sync into it is refused the same way, before any request
    before = sim.request_counts()
    started = time.monotonic()
    with pytest.raises(dfs.DatasetLocationError, match="no credentials"):
        dfs.load_tasks(client_for(sim, dataset=uri))
    assert time.monotonic() - started < 5
    assert delta(sim, before) == {}


def test_an_unreachable_object_store_is_a_typed_error_without_ansi_codes(no_credentials) -> None:
    options = {
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "not-a-secret",
        "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
    }
    started = time.monotonic()
    with pytest.raises(dfs.DatasetLocationError) as caught:
        dfs.open_dataset("s3://dfs-bucket/site", storage_options=options)
    assert time.monotonic() - started < 60
    assert "\x1b" not in str(caught.value)
    assert "not-a-secret" not in str(caught.value)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1/site", "https://host/site", "ftp://h/site"])
def test_schemes_deltalake_cannot_open_are_refused_up_front(sim, client_for, uri) -> None:
    with pytest.raises(dfs.DatasetLocationError) as caught:
        dfs.open_dataset(uri)
    text = str(caught.value)
    assert "no 'syncs' table" not in text
    assert "s3://" in text and "file:///" in text  # what is supported
    before = sim.request_counts()
    with pytest.raises(dfs.DatasetLocationError):
        dfs.load_tasks(client_for(sim, dataset=uri))
    assert delta(sim, before) == {}


# -- file: URIs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["file:{}", "file://{}", "file://localhost{}"])
def test_a_file_uri_keeps_the_lock_and_the_tables_together(
    sim, client_for, tmp_path, monkeypatch, form
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    folder = tmp_path / "shared dataset"
    uri = form.format(str(folder).replace(" ", "%20") if "//" in form else str(folder))
    tasks = dfs.load_tasks(client_for(sim, dataset=uri))
    assert (folder / "_dfs.lock").is_file()
    assert (folder / "syncs" / "_delta_log").is_dir()
    assert (folder / "tasks").is_dir()
    assert list(cwd.iterdir()) == [], "something was written under the working folder"
    ds = dfs.open_dataset(uri)
    assert ds.version == dfs.open_dataset(str(folder)).version
    assert len(ds.tasks()) == len(tasks)


def test_a_file_uri_of_another_host_is_refused(tmp_path) -> None:
    with pytest.raises(dfs.DatasetLocationError, match="absolute path on this machine"):
        dfs.open_dataset("file://fileserver/share/site")


# -- read-only table folders --------------------------------------------------------------------


def test_a_read_only_table_folder_is_refused_without_a_panic(sim, client_for, tmp_path) -> None:
    """Only ``tasks/`` is mounted read-only (in a user and mount namespace of its own), and
    the server changed a work order: the sync says which folder it cannot write, writes
    nothing, and nothing from the Rust writer reaches stderr."""
    shared = tmp_path / "shared"
    dfs.load_tasks(client_for(sim, dataset=shared))
    version = dfs.open_dataset(str(shared)).version
    _touch_one(sim)
    script = textwrap.dedent(
        """
        import sys
        import dfs_analytics as dfs
        c = dfs.Client(sys.argv[1], api_key=sys.argv[2], cache=None, dataset=sys.argv[3],
                       progress=False)
        try:
            dfs.load_tasks(c)
            print("written")
        except dfs.ReadOnlyDatasetError as exc:
            print("refused:", exc)
        """
    )
    tasks = shared / "tasks"
    mount = f'mount --bind {tasks} {tasks} && mount -o remount,ro,bind {tasks} && exec "$@"'
    done = subprocess.run(
        [
            *("unshare", "-rm", "sh", "-c", mount, "sh", sys.executable, "-c", script),
            *(sim.base_url, sim.api_key, str(shared)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RUST_BACKTRACE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines and lines[-1].startswith("refused:"), (lines, done.stderr[-2000:])
    assert str(tasks) in lines[-1] and "read-only" in lines[-1]
    assert "panicked" not in done.stderr and "DeltaError" not in done.stderr, done.stderr
    assert dfs.open_dataset(str(shared)).version == version


# -- symbolic links -----------------------------------------------------------------------------


def test_a_planted_lock_link_in_a_new_shared_dataset_is_never_followed(
    sim, client_for, tmp_path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = tmp_path / "victim-file"
    (shared / "_dfs.lock").symlink_to(target)
    with pytest.raises(dfs.UnsafePathError, match=r"_dfs\.lock"):
        dfs.load_tasks(client_for(sim, dataset=shared))
    assert not target.exists(), "the link's target was created"
    assert sorted(p.name for p in shared.iterdir()) == ["_dfs.lock"]


def test_a_lock_replaced_by_a_link_is_never_followed(sim, client_for, tmp_path) -> None:
    shared = tmp_path / "shared"
    client = client_for(sim, dataset=shared)
    dfs.load_tasks(client)
    version = dfs.open_dataset(str(shared)).version
    target = tmp_path / "victim-file"
    target.write_text("keep me")
    target.chmod(0o644)
    (shared / "_dfs.lock").unlink()
    (shared / "_dfs.lock").symlink_to(target)
    _touch_one(sim)
    with pytest.raises(dfs.UnsafePathError):
        dfs.load_tasks(client_for(sim, dataset=shared, cache=tmp_path / "other-cache"))
    assert target.read_text() == "keep me"
    assert (target.stat().st_mode & 0o777) == 0o644
    assert dfs.open_dataset(str(shared)).version == version


def test_write_probes_leave_nothing_behind(sim, client_for, tmp_path) -> None:
    shared = tmp_path / "shared"
    dfs.load_tasks(client_for(sim, dataset=shared))
    _touch_one(sim)
    dfs.load_tasks(client_for(sim, dataset=shared, cache=tmp_path / "other-cache"))
    assert not [p for p in shared.iterdir() if p.name.startswith(".dfs-write-probe-")]
