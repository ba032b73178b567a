"""The API key stays secret: never in cleartext, never to another origin, never in a message.

Ids are ids: a value that would aim a request at another resource ('.', '..', 'a/b') is
refused before anything is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.config import Settings
from dfs_analytics.simulator import Simulator
from tests.helpers import assert_no_secret, closed_port, delta

KEY = "dfs-sk-0123456789abcdef-Secret"


# -- https with http:// next links -------------------------------------------------------------


class Front:
    """A loopback TCP front on its own port: TLS connections are tunnelled, byte for byte, to
    an https simulator; anything in cleartext (plain HTTP) is recorded and answered 502.

    It plays a server behind a TLS-terminating proxy whose framework writes ``http://`` links
    for its own (https) origin: those links lead here in cleartext.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.cleartext: list[bytes] = []  # what plain-HTTP requests sent (headers and all)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":  # a TLS handshake: tunnel it
                with socket.create_connection(("127.0.0.1", self.target_port)) as up:
                    t = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
                    t.start()
                    _pipe(conn, up)
                    t.join(timeout=5)
                return
            data = b""
            conn.settimeout(2)
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            self.cleartext.append(data)
            conn.sendall(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def tls_front(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Simulator, Front]]:
    with Simulator(work_orders=25, seed=3, api_key=KEY, tls=True, next_scheme="http") as sim:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_file))
        front = Front(sim.port)
        try:
            yield sim, front
        finally:
            front.close()


def front_client(front: Front, page_size: int) -> dfs.Client:
    """A client of the TLS front, without a cache."""
    return dfs.Client(
        f"https://127.0.0.1:{front.port}/v0.2/",
        api_key=KEY,
        cache=None,
        progress=False,
        page_size=page_size,
    )


def test_http_next_links_from_an_https_server_are_followed_over_https(tls_front) -> None:
    _sim, front = tls_front
    with front_client(front, page_size=4) as client:
        items = client.list_work_orders()
        pages = list(client.iter_pages("work-orders/"))
    assert len(items) == 25
    assert sum(len(p) for p, _ in pages) == 25
    assert front.cleartext == [], "a request went out in cleartext"


def test_http_next_links_never_carry_the_key_in_cleartext(tls_front) -> None:
    _sim, front = tls_front
    with front_client(front, page_size=10) as client, contextlib.suppress(dfs.DFSError):
        dfs.load_timeline(client)
    leaked = [r for r in front.cleartext if b"authorization" in r.lower()]
    assert leaked == [], leaked[:1]
    assert all(KEY.encode() not in r for r in front.cleartext)


def test_links_to_another_port_or_scheme_are_aimed_at_the_base_url(dfs_simulator) -> None:
    with dfs.Client(dfs_simulator.base_url, api_key=dfs_simulator.api_key, cache=None) as c:
        host = f"127.0.0.1:{dfs_simulator.port}"
        other = f"127.0.0.1:{closed_port()}"
        assert c._same_origin(f"https://{host}/v0.2/work-orders/?page=2") == (
            f"http://{host}/v0.2/work-orders/?page=2"
        )
        assert c._same_origin(f"http://{other}/v0.2/x/") == f"http://{host}/v0.2/x/"
        assert c._same_origin("//evil.example.com/v0.2/x/") == f"http://{host}/v0.2/x/"


# -- ids are ids -------------------------------------------------------------------------------

BAD_IDS = [".", "..", "a/b", "../work-orders", "", "   ", None, 12, ["x"], "a\\b", " . "]


@pytest.fixture(scope="module")
def id_sim() -> Iterator[Simulator]:
    with Simulator(work_orders=5, seed=2) as sim:
        yield sim


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_before_any_request(id_sim, client_for, bad: Any) -> None:
    client = client_for(id_sim, cache=None)
    before = id_sim.request_counts()
    calls = [
        lambda: client.get_work_order(bad),
        lambda: client.delete_work_order(bad),
        lambda: client.get_timeline(bad),
        lambda: client.update_work_order(bad, name="x"),
        lambda: client.patch_metadata(bad, {"a": 1}),
        lambda: client.put_metadata(bad, {"a": 1}),
        lambda: client.get_task_group(bad),
        lambda: client.analyze(bad, "releve-optique", "https://img.example.com/a.jpg"),
        lambda: client.correct(bad, "some-task", True),
        lambda: client.correct("some-wo", bad, True),
    ]
    for call in calls:
        with pytest.raises(dfs.ConfigurationError):
            call()
    assert delta(id_sim, before) == {}


def test_dot_ids_do_not_reach_the_collection(id_sim, client_for) -> None:
    client = client_for(id_sim, cache=None)
    count = len(client.list_work_orders())
    before = id_sim.request_counts()
    with pytest.raises(dfs.ConfigurationError):
        client.delete_work_order(".")
    with pytest.raises(dfs.ConfigurationError):
        client.get_work_order(".")
    assert delta(id_sim, before) == {}
    assert len(client.list_work_orders()) == count


def test_odd_but_valid_ids_are_quoted_into_one_segment(id_sim, client_for) -> None:
    client = client_for(id_sim, cache=None)
    before = id_sim.request_counts()
    for odd in ("a b", "x?y=1", "50%", "#frag", "..x", "é"):
        with pytest.raises(dfs.NotFoundError):
            client.get_work_order(odd)
    routes = delta(id_sim, before)
    assert sum(routes.values()) == 6
    assert all(r.startswith("GET /v0.2/work-orders/") for r in routes), routes
    assert "GET /v0.2/work-orders/" not in routes


# -- no leaks ----------------------------------------------------------------------------------


def test_a_password_in_the_base_url_is_masked_everywhere(tmp_path) -> None:
    port = closed_port()
    client = dfs.Client(
        f"http://alice:Pa55-w0rd@127.0.0.1:{port}/v0.2/",
        api_key=KEY,
        cache=tmp_path / "c",
        retries=0,
        timeout=2,
        progress=False,
    )
    with client:
        texts = [repr(client), repr(client.settings), str(client.settings)]
        texts.append(client.settings.display_url)
        with pytest.raises(dfs.TransportError) as info:
            client.get_work_order("wo-1")
        texts.append(str(info.value))
        with pytest.raises(dfs.TransportError) as info2:
            client.list_work_orders()
        texts.append(str(info2.value))
    for text in texts:
        assert "Pa55-w0rd" not in text, text
        assert KEY not in text, text
    assert "alice:***@" in repr(client.settings)


def test_a_password_in_the_base_url_stays_out_of_the_report(
    dfs_simulator, tmp_path, monkeypatch
) -> None:
    """The report command's "from ..." line shows the site's URL with its password masked."""
    from dfs_analytics.cli import main

    url = dfs_simulator.base_url.replace("http://", "http://alice:Pa55-w0rd@")
    monkeypatch.setenv("DFS_BASE_URL", url)
    monkeypatch.setenv("DFS_API_KEY", dfs_simulator.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Pa55-w0rd" not in html
    assert "from http://alice:***@127.0.0.1" in html


def test_pickling_settings_drops_the_key_and_deepcopy_keeps_it(id_sim) -> None:
    import copy
    import pickle

    with dfs.Client(id_sim.base_url, api_key=KEY, cache=None) as client:
        raw = pickle.dumps(client.settings)
        assert KEY.encode() not in raw
        assert KEY not in raw.decode("latin-1")
        back = pickle.loads(raw)
        assert not back.api_key and back.api_key != KEY
        assert copy.deepcopy(client.settings).api_key == KEY
        assert copy.copy(client.settings.api_key) == KEY


def test_a_bad_base_url_with_a_password_is_refused_without_it() -> None:
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.Client("http://alice:Pa55-w0rd@127.0.0.1:99999/v0.2/", api_key=KEY, cache=None)
    assert "Pa55-w0rd" not in str(info.value)
    assert "port" in str(info.value)


@pytest.mark.parametrize("key", ["clé-€-secret", "key\u2028x", "k\x00ey", "日本語のキー"])
def test_a_key_that_cannot_be_a_header_is_refused_up_front(key: str) -> None:
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.Client("http://127.0.0.1:1/v0.2/", api_key=key, cache=None)
    assert key not in str(info.value)
    assert key.strip() not in repr(info.value)


def test_settings_as_a_dict_do_not_show_the_key(id_sim) -> None:
    with dfs.Client(id_sim.base_url, api_key=KEY, cache=None) as client:
        data = dataclasses.asdict(client.settings)
        assert KEY not in repr(data)
        assert KEY not in str(data)
        with pytest.raises(TypeError):
            json.dumps(data, default=None)  # a Secret is not serialisable: no silent leak
        assert KEY not in json.dumps(data, default=str)
        # still usable: compared with a string, or revealed on purpose
        assert client.settings.api_key == KEY
        assert client.settings.api_key.reveal() == KEY
        assert KEY not in str(client.settings.api_key)
        assert KEY not in f"{client.settings.api_key}"
        replaced = dataclasses.replace(client.settings, offline=True)
        assert replaced.api_key == KEY


def test_settings_take_a_secret_or_a_string(id_sim) -> None:
    a = Settings(base_url=id_sim.base_url, api_key=KEY)
    b = Settings(base_url=id_sim.base_url, api_key=a.api_key)
    assert a.api_key == b.api_key == KEY
    assert a.cache_dir == b.cache_dir


def test_errors_never_show_the_key(id_sim, client_for) -> None:
    client = client_for(id_sim, cache=None)
    with pytest.raises(dfs.NotFoundError) as info:
        client.get_work_order("nope")
    assert_no_secret(str(info.value), client.settings.api_key)
