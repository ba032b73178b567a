"""A real server that differs from our contract on its *assumed* points.

A small stdlib HTTP server (``ThreadingHTTPServer`` on 127.0.0.1:0, in a thread) plays a
Field Services API that answers lists as bare JSON arrays, or pages them with cursor or
offset ``next`` links, answers 403 to a bad key, sends dates with ``+01:00`` offsets, adds
keys we do not know and leaves out optional ones. The client must load all of it; a listing
whose ``count`` does not add up must raise IncompleteDataError.
"""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import assert_no_secret

N = 10
PARIS = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=PARIS)  # 08:00 UTC


def iso(d: datetime) -> str:
    return d.isoformat()  # e.g. 2026-03-01T09:00:00+01:00


# -- the data a variant server holds ------------------------------------------------------------


def make_work_order(i: int) -> dict[str, Any]:
    created = T0 + timedelta(hours=i)
    wo: dict[str, Any] = {
        "id": f"wo-{i:02d}",
        "name": f"VARIANT_{i}",
        "site_id": "site-x",
        "app_version_id": "v9",
        "create_date": iso(created),
        "update_date": iso(created + timedelta(minutes=30, microseconds=250 * i)),
        "first_analysis_id": f"an-{i}",
        "latest_analysis_id": f"an-{i}",
        "metadata": {"region": "north" if i % 3 else "south"},
        "tags": ["even"] if i % 2 == 0 else ["odd"],
        "types": [],
        "field_engineer_email": f"tech{i % 2}@example.com",
        "field_engineer_name": None,
        # keys our contract does not know
        "priority": "high" if i < 3 else "low",
        "external_ref": 1000 + i,
        # no "review_date" and no "progress_score" (optional keys), except on work order 0
        "tasks": [
            {
                "id": "task-ok",
                "name": "cable_ok",
                "sentence": "Cable OK",
                "outcome_type": "Boolean",
                "conformity_status": True,
                "task_group_id": "grp-1",
                "task_group_name": "grp",
                "weight": 2,  # unknown task key
                "state": {
                    "analyzed_value": i % 2 == 0,
                    "corrected_value": True if i == 1 else None,
                    "message": "OK" if (i % 2 == 0 or i == 1) else "KO",
                    "is_conform": i % 2 == 0 or i == 1,
                    "update_date": iso(created + timedelta(minutes=10)),
                    "confidence": 0.5 + i / 100,  # unknown state key; no "analysis_id"
                },
            },
            {
                "id": "task-power",
                "name": "power",
                "sentence": "Power",
                "outcome_type": "Number",
                "conformity_status": False,
                "task_group_id": "grp-1",
                "task_group_name": "grp",
                "state": None,
            },
        ],
    }
    if i == 0:
        wo["review_date"] = iso(T0 + timedelta(days=1, hours=1))
        wo["progress_score"] = 100
    return wo


def make_timeline(i: int) -> list[dict[str, Any]]:
    created = T0 + timedelta(hours=i)
    return [
        {
            "id": f"ev-{i}-1",
            "date": iso(created),
            "type": "created",
            "user": None,
            "source": "web",  # unknown event key; no analysis_id / task_group_name keys
            "states": [],
        },
        {
            "id": f"ev-{i}-2",
            "date": iso(created + timedelta(minutes=10)),
            "type": "analysis",
            "user": f"tech{i % 2}@example.com",
            "analysis_id": f"an-{i}",
            "task_group_name": "grp",
            "source": "mobile",
            "states": [
                {
                    "task_id": "task-ok",
                    "task_name": "cable_ok",
                    "analyzed_value": i % 2 == 0,
                    "corrected_value": None,
                    "message": "OK" if i % 2 == 0 else "KO",
                    "is_conform": i % 2 == 0,
                    "confidence": 0.5 + i / 100,
                }
            ],
        },
    ]


TASK_GROUPS = [
    {
        "id": "grp-1",
        "name": "grp",
        "order": 1,
        "color": "#ff0000",  # unknown group key
        "tasks": [
            {"id": "task-ok", "name": "cable_ok", "outcome_type": "Boolean", "extra": 1},
            {"id": "task-power", "name": "power", "outcome_type": "Number"},
        ],
    }
]


# -- the server ---------------------------------------------------------------------------------


@dataclass
class Variant:
    """Behaviour of a variant server; ``log`` holds every request's path and query."""

    style: str = "pages"  # array | pages | cursor | offset
    page_size: int = 4  # the server's own maximum page size
    with_count: bool = True
    count_extra: int = 0  # announce that many more items than the list holds
    auth_status: int = 403
    fail_status: int | None = None  # answer every request with an HTML body and this status
    next_host: str | None = None  # put another host in absolute next links
    relative_next: bool = True  # offset style: root-relative next links ("/v0.2/...")
    api_key: str = field(default_factory=lambda: "variant-key-" + uuid.uuid4().hex)
    log: list[str] = field(default_factory=list)
    cursors: dict[str, tuple[dict[str, list[str]], int]] = field(default_factory=dict)
    base_url: str = ""
    work_orders: list[dict[str, Any]] = field(
        default_factory=lambda: [make_work_order(i) for i in range(N)]
    )
    timelines: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {f"wo-{i:02d}": make_timeline(i) for i in range(N)}
    )

    def list_requests(self) -> list[str]:
        return [p for p in self.log if urllib.parse.urlsplit(p).path == "/v0.2/work-orders/"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no delayed-ACK stalls

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def do_GET(self) -> None:
        v = self.server.variant  # type: ignore[attr-defined]
        v.log.append(self.path)
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        if self.headers.get("Authorization") != f"Token {v.api_key}":
            self._json(v.auth_status, {"detail": "You do not have permission to do this."})
            return
        if v.fail_status is not None:
            html = f"<html><body><h1>{v.fail_status} Bad Gateway</h1><p>nginx</p></body></html>"
            self._send(v.fail_status, html.encode(), "text/html")
            return
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        if path == "/v0.2/work-orders/":
            self._list(v, "work-orders", query)
        elif m := re.fullmatch(r"/v0\.2/work-orders/([^/]+)/timeline/", path):
            if m.group(1) not in v.timelines:
                self._json(404, {"detail": "Not found."})
            else:
                self._list(v, f"work-orders/{m.group(1)}/timeline", query)
        elif m := re.fullmatch(r"/v0\.2/work-orders/([^/]+)/", path):
            found = [w for w in v.work_orders if w["id"] == m.group(1)]
            if found:
                self._json(200, found[0])
            else:
                self._json(404, {"detail": "Not found."})
        elif path == "/v0.2/task-groups/":
            self._list(v, "task-groups", query)
        else:
            self._json(404, {"detail": "Not found."})

    def _items(self, v: Variant, resource: str, filters: dict[str, list[str]]) -> list[Any]:
        if resource == "task-groups":
            return TASK_GROUPS
        if resource.endswith("/timeline"):
            return v.timelines[resource.split("/")[1]]
        tags = set(filters.get("tag", []))
        return [w for w in v.work_orders if tags <= set(w["tags"])]

    def _list(self, v: Variant, resource: str, query: dict[str, list[str]]) -> None:
        here = f"http://{v.next_host or self.headers['Host']}/v0.2/{resource}/"
        if v.style == "array":
            self._json(200, self._items(v, resource, query))
            return
        if v.style == "cursor":
            token = (query.get("cursor") or [None])[0]
            if token is None:
                filters, start = query, 0
            elif token in v.cursors:
                filters, start = v.cursors[token]
            else:
                self._json(400, {"cursor": ["Invalid cursor."]})
                return
            items = self._items(v, resource, filters)
            end = start + v.page_size
            nxt = None
            if end < len(items):
                new = "abc" + uuid.uuid4().hex[:8]
                v.cursors[new] = (filters, end)
                nxt = f"{here}?cursor={new}"
            page: dict[str, Any] = {"next": nxt, "previous": None, "results": items[start:end]}
        elif v.style == "offset":
            items = self._items(v, resource, query)
            limit = min(int((query.get("limit") or [v.page_size])[0]), v.page_size)
            start = int((query.get("offset") or [0])[0])
            end = start + limit
            keep = {k: vals for k, vals in query.items() if k not in ("limit", "offset")}
            nxt = None
            if end < len(items):
                q = urllib.parse.urlencode({**keep, "limit": limit, "offset": end}, doseq=True)
                nxt = f"/v0.2/{resource}/?{q}" if v.relative_next else f"{here}?{q}"
            page = {"next": nxt, "previous": None, "results": items[start:end]}
        else:  # DRF page numbers, the server capping page_size at its own maximum
            items = self._items(v, resource, query)
            size = min(int((query.get("page_size") or [v.page_size])[0]), v.page_size)
            number = int((query.get("page") or ["1"])[0])
            pages = max(1, math.ceil(len(items) / size))
            if number > pages:
                self._json(404, {"detail": "Invalid page."})
                return
            nxt = None
            if number < pages:
                q = urllib.parse.urlencode({**query, "page": [str(number + 1)]}, doseq=True)
                nxt = f"{here}?{q}"
            start = (number - 1) * size
            page = {"next": nxt, "previous": None, "results": items[start : start + size]}
        if v.with_count:
            page = {"count": len(items) + v.count_extra, **page}
        self._json(200, page)


@pytest.fixture
def variant_server() -> Iterator[Any]:
    """``variant_server(**Variant fields)``: start a variant server; stopped after the test."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(**kwargs: Any) -> Variant:
        variant = Variant(**kwargs)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.variant = variant  # type: ignore[attr-defined]
        variant.base_url = f"http://127.0.0.1:{server.server_address[1]}/v0.2/"
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return variant

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- what every variant must give -----------------------------------------------------------------


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def check_frames(client: dfs.Client, variant: Variant) -> tuple[pd.DataFrame, ...]:
    wo = dfs.load_work_orders(client)
    assert list(wo["work_order_id"]) == [f"wo-{i:02d}" for i in range(N)]
    assert wo.loc[0, "create_date"] == utc("2026-03-01T08:00:00Z")  # +01:00 -> UTC
    assert wo.loc[3, "create_date"] == utc("2026-03-01T11:00:00Z")
    assert wo.loc[2, "update_date"] == utc("2026-03-01T10:30:00.000500Z")
    assert str(wo["create_date"].dt.tz) == "UTC"
    assert wo.loc[0, "review_date"] == utc("2026-03-02T09:00:00Z")
    assert wo["review_date"][1:].isna().all()  # a missing key is a null
    assert wo.loc[0, "progress_score"] == 100
    assert wo["progress_score"][1:].isna().all()
    assert wo["progress_score"].dtype == "Int64"
    assert list(wo["priority"]) == ["high"] * 3 + ["low"] * 7  # unknown keys are kept
    assert list(wo["external_ref"]) == [1000 + i for i in range(N)]
    assert list(wo["metadata.region"][:3]) == ["south", "north", "north"]

    tasks = dfs.load_tasks(client)
    assert len(tasks) == 2 * N
    ok = tasks[tasks["task_name"] == "cable_ok"].reset_index(drop=True)
    assert list(ok["weight"]) == [2] * N
    assert list(ok["state.confidence"]) == [0.5 + i / 100 for i in range(N)]
    assert ok["analysis_id"].isna().all()
    assert ok.loc[0, "state_update_date"] == utc("2026-03-01T08:10:00Z")
    assert ok.loc[1, "corrected_value"] is True and bool(ok.loc[1, "is_overridden"])
    power = tasks[tasks["task_name"] == "power"]
    assert (~power["analyzed"]).all()
    assert isinstance(tasks["create_date"].dtype, pd.DatetimeTZDtype)

    timeline = dfs.load_timeline(client)
    assert len(timeline) == 2 * N
    assert list(timeline["event_id"][:2]) == ["ev-0-1", "ev-0-2"]
    assert timeline.loc[0, "date"] == utc("2026-03-01T08:00:00Z")
    assert list(timeline["source"][:2]) == ["web", "mobile"]
    assert pd.isna(timeline.loc[0, "analysis_id"])
    assert timeline.loc[1, "state.confidence"] == 0.5
    assert pd.isna(timeline.loc[0, "task_id"])

    groups = dfs.load_task_groups(client)
    assert list(groups["task_id"]) == ["task-ok", "task-power"]
    assert list(groups["task_group.color"]) == ["#ff0000"] * 2
    assert groups.loc[0, "extra"] == 1
    return wo, tasks, timeline, groups


def check_reload(client: dfs.Client, first: tuple[pd.DataFrame, ...]) -> None:
    """A second load (the refresh path, on a server that ignores ``ordering``) is the same."""
    wo, tasks, timeline, _ = first
    pd.testing.assert_frame_equal(dfs.load_work_orders(client), wo)
    pd.testing.assert_frame_equal(dfs.load_tasks(client), tasks)
    pd.testing.assert_frame_equal(dfs.load_timeline(client), timeline)


# -- list styles ------------------------------------------------------------------------------


# name: (the variant's options, what else holds once its frames are checked and reloaded)
LIST_STYLES: dict[str, tuple[dict[str, Any], Callable[[dfs.Client, Any], bool] | None]] = {
    "bare-json-arrays": (
        {"style": "array"},
        lambda client, variant: len(client.list_work_orders()) == N,
    ),
    "page-numbered-with-a-server-page-cap": (
        {"style": "pages"},
        lambda client, variant: len(variant.list_requests()) > 3,
    ),
    "cursor-next-links": (
        {"style": "cursor", "page_size": 3},
        lambda client, variant: any("cursor=abc" in p for p in variant.list_requests()),
    ),
    "cursor-without-count": ({"style": "cursor", "page_size": 3, "with_count": False}, None),
    "absolute-offset-next-links": (
        {"style": "offset", "page_size": 3, "relative_next": False},
        lambda client, variant: any("offset=9" in p for p in variant.list_requests()),
    ),
    # "next": "/v0.2/work-orders/?limit=3&offset=3" is a URL reference to resolve against
    # the page's URL (RFC 3986), i.e. http://host/v0.2/work-orders/?limit=3&offset=3
    "root-relative-next-links": (
        {"style": "offset", "page_size": 3},
        lambda client, variant: any("offset=9" in p for p in variant.list_requests()),
    ),
}


@pytest.mark.parametrize(("options", "then"), LIST_STYLES.values(), ids=LIST_STYLES)
def test_list_styles(
    variant_server,
    client_for,
    options: dict[str, Any],
    then: Callable[[dfs.Client, Any], bool] | None,
) -> None:
    variant = variant_server(**options)
    client = client_for(variant)
    first = check_frames(client, variant)
    check_reload(client, first)
    if then is not None:
        assert then(client, variant)


def test_next_links_to_another_host_are_aimed_back_at_ours(variant_server, client_for) -> None:
    variant = variant_server(style="cursor", page_size=3, next_host="elsewhere.invalid:81")
    client = client_for(variant)
    assert [w["id"] for w in client.list_work_orders()] == [f"wo-{i:02d}" for i in range(N)]
    assert sum("cursor=" in p for p in variant.list_requests()) == 3


@pytest.mark.parametrize("style", ["pages", "cursor", "offset"])
def test_filters_reach_every_page(variant_server, client_for, style: str) -> None:
    variant = variant_server(style=style, page_size=2, relative_next=False)
    client = client_for(variant)
    wo = dfs.load_work_orders(client, tag="even")
    assert list(wo["work_order_id"]) == [f"wo-{i:02d}" for i in range(0, N, 2)]
    assert list(dfs.load_tasks(client, tag="even")["work_order_id"].unique()) == list(
        wo["work_order_id"]
    )
    requests = variant.list_requests()
    assert len(requests) >= 3
    if style != "cursor":  # a cursor carries the filters inside itself
        assert all("tag=even" in p for p in requests), requests


# -- auth -------------------------------------------------------------------------------------


def test_403_for_a_bad_key_is_an_authentication_error(variant_server, client_for) -> None:
    variant = variant_server(style="pages")
    bad = "bad-variant-key-" + uuid.uuid4().hex
    client = client_for(variant, api_key=bad)
    for call in (
        lambda: dfs.load_work_orders(client),
        lambda: client.get_work_order("wo-01"),
        lambda: dfs.load_task_groups(client),
    ):
        with pytest.raises(dfs.AuthenticationError) as info:
            call()
        err = info.value
        assert err.status == 403
        assert "403" in str(err) and "GET" in str(err) and "/v0.2/" in str(err)
        assert "You do not have permission" in str(err)
        assert_no_secret(str(err), bad)
        assert_no_secret(str(err), variant.api_key)


# -- counts that do not add up ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "extra"),
    [("cursor", 2), ("offset", 1), ("offset", 7), ("pages", 1), ("pages", 6)],
)
def test_count_larger_than_the_pages_hold_raises(
    variant_server, client_for, style: str, extra: int
) -> None:
    variant = variant_server(style=style, count_extra=extra, relative_next=False)
    client = client_for(variant)
    with pytest.raises(dfs.IncompleteDataError) as info:
        dfs.load_work_orders(client)
    assert str(N) in str(info.value) and str(N + extra) in str(info.value)
    with pytest.raises(dfs.IncompleteDataError):
        client.list_work_orders()
    with pytest.raises(dfs.IncompleteDataError):
        dfs.load_tasks(client_for(variant, cache=None))


def test_count_mismatch_warns_when_not_strict(variant_server, client_for) -> None:
    variant = variant_server(style="cursor", count_extra=2)
    client = client_for(variant)
    with pytest.warns(dfs.IncompleteDataWarning):
        items, count = client.paginate("work-orders/", strict=False)
    assert len(items) == N and count == N + 2


# -- answers that are not the API's -----------------------------------------------------------


def test_non_json_5xx_is_a_server_error_after_retries(variant_server, client_for) -> None:
    variant = variant_server(fail_status=502)
    client = client_for(variant, retries=2, backoff_factor=0.01)
    with pytest.raises(dfs.ServerError) as info:
        client.get_work_order("wo-01")
    err = info.value
    assert err.status == 502 and err.method == "GET"
    assert "Bad Gateway" in err.detail and "<" not in err.detail
    assert "502" in str(err) and "/v0.2/work-orders/wo-01/" in str(err)
    assert len(variant.log) == 3  # one try and two retries


def test_html_200_is_an_api_error_pointing_at_the_base_url(variant_server, client_for) -> None:
    variant = variant_server(fail_status=200)
    client = client_for(variant)
    with pytest.raises(dfs.APIError) as info:
        client.get_work_order("wo-01")
    assert "base URL" in str(info.value)
    with pytest.raises(dfs.APIError):
        dfs.load_work_orders(client)
