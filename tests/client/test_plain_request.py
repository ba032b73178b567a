"""The client's plain GETs and writes: prepared from the session's settings directly, yet
the very request ``Session.request`` would send (URL, headers in order, body, hooks)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from dfs_analytics.client import Client
from dfs_analytics.client.endpoints import plain_request


class Recorder(BaseAdapter):
    """An adapter that records what it is asked to send and answers 200 ``{}``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def session_of(client: Client) -> tuple[requests.Session, Recorder]:
    session = client._plain
    recorder = Recorder()
    session.mount("http://", recorder)
    return session, recorder


def seen(prepared: requests.PreparedRequest, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    return (
        prepared.method,
        prepared.url,
        list(prepared.headers.items()),
        prepared.body,
        {k: list(v) for k, v in prepared.hooks.items()},
        sorted(kwargs.items(), key=str),
    )


API = "http://127.0.0.1:9/v0.2/"
CALLS = [
    ("GET", API + "work-orders/", {"page_size": 100, "x": None}, None, {}),
    ("GET", API + "work-orders/a%20b/timeline/", None, None, {}),
    ("GET", API + "work-orders/?page=2&q=é", {"a": ["1", "2"]}, None, {}),
    ("PATCH", API + "work-orders/a/", None, b'{"name": "x"}', {"If-Match": "e"}),
    ("DELETE", API + "work-orders/a/", None, None, {"accept": "text/plain"}),
    ("POST", API + "work-orders/", {}, b"{}", {"Content-Type": "application/json"}),
]


@pytest.mark.parametrize("call", CALLS, ids=[c[0] + str(i) for i, c in enumerate(CALLS)])
@pytest.mark.parametrize("cookie", [False, True])
def test_the_same_request_as_session_request(call: tuple[Any, ...], cookie: bool) -> None:
    method, url, params, data, headers = call
    client = Client(API, api_key="secret", cache=None, progress=False)
    session, recorder = session_of(client)
    if cookie:  # a server's cookie: the session's own path, which sends it
        session.cookies.set("sid", "1", domain="127.0.0.1", path="/")
    session.request(method, url, params=params, data=data, headers=headers, timeout=5.0)
    plain_request(session, method, url, params, data, headers, 5.0)
    (a, a_kwargs), (b, b_kwargs) = recorder.sent
    assert seen(a, a_kwargs) == seen(b, b_kwargs)
    assert ("Cookie" in a.headers) is cookie
    client.close()
