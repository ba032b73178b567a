"""The API key is what authenticates every request, whatever the user's ~/.netrc holds."""

from __future__ import annotations

from pathlib import Path

import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator

pytestmark = pytest.mark.usefixtures("isolated_env")


def test_a_netrc_entry_for_the_site_does_not_replace_the_key(
    dfs_simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests reads ~/.netrc (or $NETRC) for a session without its own auth, and its
    # credentials then replace an Authorization header set by default
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with dfs.Client(
        dfs_simulator.base_url, api_key=dfs_simulator.api_key, cache=None, progress=False
    ) as client:
        assert client.request("GET", "work-orders/", params={"page_size": 1})["count"] > 0
        assert dfs_simulator.api_key not in repr(client._plain.auth)
    with dfs.Client(
        dfs_simulator.base_url,
        api_key=dfs_simulator.api_key,
        cache=tmp_path / "cache",
        progress=False,
    ) as cached:  # and through the HTTP cache's session
        assert len(dfs.load_work_orders(cached)) == len(dfs_simulator.store.work_orders)
