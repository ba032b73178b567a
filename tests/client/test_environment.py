"""What a client takes from its environment, read once when it is made: proxies and NO_PROXY,
and never ~/.netrc credentials in place of the API key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import dfs_analytics as dfs
from dfs_analytics.errors import DFSError
from dfs_analytics.simulator import Simulator
from tests.helpers import QuietHandler, local_http_server


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


class _Proxy(QuietHandler):
    """A forward proxy that records the request lines it gets and answers 502."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.requestline)
        self.answer(502)


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    _Proxy.seen = seen
    with local_http_server(_Proxy) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
def test_proxies_and_no_proxy_from_the_environment_hold(
    dfs_simulator: Simulator,
    proxy: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    url, seen = proxy
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, no_proxy)
    client = dfs.Client(
        dfs_simulator.base_url,
        api_key=dfs_simulator.api_key,
        cache=None,
        progress=False,
        retries=0,  # the proxy's 502 is final
    )
    with client:
        if no_proxy:  # the site is exempt: straight to it
            assert client.request("GET", "work-orders/", params={"page_size": 1})["count"] > 0
            assert seen == []
        else:  # through the proxy, which answers 502
            with pytest.raises(DFSError):
                client.request("GET", "work-orders/", params={"page_size": 1})
            assert seen and seen[0].startswith(f"GET {dfs_simulator.base_url}work-orders/")
