"""dfs.CallbackReceiver: only the server that was given its URL can deliver a result.

Requests are sent over real sockets (``http.client``, or raw bytes where a client library
would not send what an attacker can: a huge Content-Length, an endless chunked body); the
legitimate callbacks come from the simulator over HTTP.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

import dfs_analytics as dfs
from dfs_analytics.actions import CallbackReceiver

pytestmark = pytest.mark.sim(work_orders=10, seed=5)

PNG = b"\x89PNG\r\n\x1a\n"


def post(url: str, body: bytes, *, path: str | None = None, **headers: str) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` (or to another ``path`` of its host); the status and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            path if path is not None else parts.path,
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_json(url: str, payload: Any, **kw: Any) -> int:
    return post(url, json.dumps(payload).encode(), **kw)[0]


def raw(url: str, head: bytes, body_chunks: list[bytes] = ()) -> bytes:
    """Send raw bytes (a request head, then body pieces) and return what came back, if any:
    the receiver may answer and close before the body is sent."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        try:
            s.sendall(head)
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:  # the receiver answered and closed without reading the rest
            pass
        answer = b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:  # reset: unread data was left in the receiver's socket
            pass
        return answer


def wait_for_refusals(receiver: CallbackReceiver, n: int) -> None:
    """The receiver logs a refusal as it answers; the sender may have seen only a reset."""
    deadline = time.monotonic() + 5
    while len(receiver.refused) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def a_payload(analysis_id: str | None = None, **more: Any) -> dict[str, Any]:
    return {"analysis_id": analysis_id or str(uuid.uuid4()), "id": "wo", "tasks": [], **more}


def forced_url(**values: Any) -> str:
    query = ";".join(
        f"dfs-sim:{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()
    )
    return f"https://img.example.com/{uuid.uuid4()}.jpg?{query}"


# --------------------------------------------------------------------------------------------
# only on its secret path
# --------------------------------------------------------------------------------------------


def test_the_url_carries_an_unguessable_token_and_other_paths_get_404() -> None:
    with CallbackReceiver() as one, CallbackReceiver() as two:
        token = one.url.rsplit("/", 1)[1]
        assert len(token) >= 32 and one.url != two.url
        assert one.url.startswith("http://127.0.0.1:") and "/callback/" in one.url
        spoofed = a_payload()
        port = urlsplit(one.url).port
        base = f"http://127.0.0.1:{port}"
        for path in ("/callback", "/callback/", "/", "/callback/guess", f"/{token}", "/x/" + token):
            assert post_json(base, spoofed, path=path) == 404, path
        assert post_json(base, spoofed, path=urlsplit(two.url).path) == 404  # another's token
        with pytest.raises(TimeoutError, match="refused"):
            one.wait(timeout=0.3)
        with pytest.raises(TimeoutError):
            one.wait(spoofed["analysis_id"], timeout=0.1)
        assert one.payloads == []
        assert {status for status, _ in one.refused} == {404}

        # the real path (a query string does not matter) still works
        assert post_json(one.url + "?attempt=1", spoofed) == 204
        assert one.wait(spoofed["analysis_id"], timeout=1) == spoofed


# --------------------------------------------------------------------------------------------
# only JSON objects naming an analysis, never breaking later waits
# --------------------------------------------------------------------------------------------


def test_only_json_objects_naming_an_analysis_are_accepted() -> None:
    with CallbackReceiver() as receiver:
        bad: list[bytes] = [
            b"[1, 2, 3]",
            b'"a string"',
            b"42",
            b"null",
            b"{not json",
            b"\xff\xfe{}",
            b"[" * 100_000,  # nesting deep enough to blow a recursive parser
            json.dumps({"id": "wo", "tasks": []}).encode(),  # no analysis_id
            json.dumps({"analysis_id": 7}).encode(),
            json.dumps({"analysis_id": ""}).encode(),
        ]
        for body in bad:
            status, _ = post(receiver.url, body)
            assert status == 400, body[:40]
        assert receiver.payloads == []
        with pytest.raises(TimeoutError):
            receiver.wait(timeout=0.2)

        good = a_payload()
        assert post_json(receiver.url, good) == 204
        assert receiver.wait(timeout=1) == good
        assert receiver.wait(good["analysis_id"], timeout=1) == good
        assert post_json(receiver.url, [good]) == 400  # and later waits still work
        assert receiver.wait(timeout=1) == good


def test_payloads_of_analyses_it_was_not_told_about_are_not_handed_out() -> None:
    with CallbackReceiver() as receiver:
        expected = str(uuid.uuid4())
        receiver.expect(expected)
        stranger = a_payload(tasks=["spoofed"])
        assert post_json(receiver.url, stranger) == 204  # kept aside, never given to wait()
        with pytest.raises(TimeoutError):
            receiver.wait(timeout=0.2)
        mine = a_payload(expected)
        assert post_json(receiver.url, mine) == 204
        assert receiver.wait(timeout=1) == mine
        # a second delivery of the same analysis does not replace the first
        assert post_json(receiver.url, a_payload(expected, tasks=["second"])) == 204
        assert receiver.wait(expected, timeout=1) == mine
        # a callback that arrived before its id was known is found when that id is waited for
        assert receiver.wait(stranger["analysis_id"], timeout=1) == stranger


def test_unclaimed_payloads_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CallbackReceiver, "UNCLAIMED_LIMIT", 3)
    with CallbackReceiver() as receiver:
        receiver.expect("mine")
        assert post_json(receiver.url, a_payload("mine")) == 204
        strangers = [a_payload() for _ in range(5)]
        for payload in strangers:
            assert post_json(receiver.url, payload) == 204
        held = [p["analysis_id"] for p in receiver.payloads]
        assert held == ["mine"] + [p["analysis_id"] for p in strangers[-3:]]


# --------------------------------------------------------------------------------------------
# a size limit, enforced before the body is read
# --------------------------------------------------------------------------------------------


def test_a_huge_content_length_is_refused_before_the_body_is_sent() -> None:
    with CallbackReceiver() as receiver:
        assert receiver.max_body == CallbackReceiver.MAX_BODY
        path = urlsplit(receiver.url).path
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
        ).encode()
        started = time.monotonic()
        answer = raw(receiver.url, head)  # no body at all: the answer must not wait for it
        assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413"), answer
        assert time.monotonic() - started < receiver.READ_TIMEOUT
        assert receiver.refused[-1][0] == 413
        # garbage lengths and no length at all are refused too
        for length, status in (("-1", 400), ("12abc", 400)):
            bad = head.replace(str(200 * 1024 * 1024).encode(), length.encode())
            assert raw(receiver.url, bad).split(b" ", 2)[1] == str(status).encode()
        no_length = f"POST {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        assert raw(receiver.url, no_length).split(b" ", 2)[1] == b"411"

        good = a_payload()
        assert post_json(receiver.url, good) == 204
        assert receiver.wait(timeout=1) == good


def test_a_body_over_the_limit_is_refused_chunked_or_not() -> None:
    limit = 64 * 1024
    with CallbackReceiver(max_body=limit) as receiver:
        path = urlsplit(receiver.url).path
        big = json.dumps(a_payload(padding="x" * (4 * limit))).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(big)}\r\n\r\n"
        ).encode()
        answer = raw(receiver.url, head, [big])
        assert not answer or b" 413 " in answer.split(b"\r\n", 1)[0], answer[:80]
        wait_for_refusals(receiver, 1)
        assert receiver.refused[-1][0] == 413

        # a chunked body that never ends: refused once the limit is passed
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        piece = b"x" * 8192
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        answer = raw(receiver.url, head, [b"1\r\n{\r\n"] + [chunk] * 64)  # 512 KiB
        assert not answer or b" 413 " in answer.split(b"\r\n", 1)[0], answer[:80]
        wait_for_refusals(receiver, 2)
        assert receiver.refused[-1][0] == 413
        assert "chunked" in receiver.refused[-1][1]
        assert receiver.payloads == []

        # a chunked body under the limit is accepted
        good = json.dumps(a_payload()).encode()
        body = f"{len(good):x}\r\n".encode() + good + b"\r\n0\r\n\r\n"
        answer = raw(receiver.url, head + body)
        assert answer.split(b" ", 2)[1] == b"204", answer[:80]
        assert receiver.wait(json.loads(good)["analysis_id"], timeout=1) == json.loads(good)


# --------------------------------------------------------------------------------------------
# the server's callbacks still arrive
# --------------------------------------------------------------------------------------------


def test_callbacks_from_the_server_are_received(sim, client, reader) -> None:
    wo_id = client.create_work_order("callback-receiver")["id"]
    with CallbackReceiver() as receiver:
        # a spoofed payload got in first; with the receiver given to analyze, wait() skips it
        assert post_json(receiver.url, a_payload(tasks=["spoofed"])) == 204
        first = dfs.analyze(
            client,
            wo_id,
            "releve-optique",
            forced_url(releve_optique_quality=True, mesure_puissance=-12.5),
            callback_url=receiver,
        )
        payload = receiver.wait(timeout=30)
        assert payload["analysis_id"] == first and payload["id"] == wo_id
        state = next(t for t in payload["tasks"] if t["name"] == "mesure_puissance")["state"]
        assert state["analyzed_value"] == -12.5

        # given by URL, with a photo sent as bytes
        photo = PNG + b" dfs-sim:releve_optique_quality=true dfs-sim:mesure_puissance=-20 "
        second = dfs.analyze(client, wo_id, "releve-optique", photo, callback_url=receiver.url)
        payload = receiver.wait(second, timeout=30)
        assert payload["analysis_id"] == second
        state = next(t for t in payload["tasks"] if t["name"] == "mesure_puissance")["state"]
        assert state["analyzed_value"] == -20
    assert not receiver.refused
    server = reader.get_work_order(wo_id)
    state = next(t for t in server["tasks"] if t["name"] == "mesure_puissance")["state"]
    assert state["analyzed_value"] == -20
