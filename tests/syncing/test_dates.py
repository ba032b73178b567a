"""The sync over a server whose ``update_date`` values are missing, unparseable, written with
nanoseconds or as epoch numbers, and whose ids are not all usable as URL path segments.

A small stdlib HTTP server (``ThreadingHTTPServer`` on 127.0.0.1:0, in a thread) plays the
Field Services API: it pages the work-order list with page-numbered ``next`` links, honours
``ordering=-update_date`` where the dates allow, and serves each work order's timeline. Each
test then uses the public API (``dfs.load_tasks``, ``dfs.load_timeline``, ``dfs.sync``).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import QuietHandler, local_http_server

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
N = 6
EPOCH_T0 = int(T0.timestamp())  # 1772352000


def work_order(i: int, update_date: Any, wo_id: str | None = None) -> dict[str, Any]:
    created = T0 + timedelta(hours=i)
    return {
        "id": wo_id if wo_id is not None else f"wo-{i:02d}",
        "name": f"WO_{i}",
        "site_id": "site-x",
        "app_version_id": "v1",
        "create_date": created.isoformat(),
        "update_date": update_date,
        "review_date": None,
        "tags": [],
        "types": [],
        "metadata": {},
        "tasks": [
            {
                "id": "task-ok",
                "name": "cable_ok",
                "outcome_type": "Boolean",
                "task_group_id": "grp-1",
                "task_group_name": "grp",
                "state": {"analyzed_value": i % 2 == 0, "corrected_value": None},
            }
        ],
    }


def events(i: int, n: int = 2) -> list[dict[str, Any]]:
    created = T0 + timedelta(hours=i)
    return [
        {
            "id": f"ev-{i}-{k}",
            "date": (created + timedelta(minutes=k)).isoformat(),
            "type": "created" if k == 0 else "analysis",
            "user": None,
            "states": [],
        }
        for k in range(n)
    ]


class Site:
    """What the server holds, and the paths of the requests it received."""

    def __init__(self, work_orders: list[dict[str, Any]]) -> None:
        self.api_key = "dates-key-" + uuid.uuid4().hex
        self.work_orders = work_orders
        self.timelines = {
            wo["id"]: events(i) for i, wo in enumerate(work_orders) if isinstance(wo["id"], str)
        }
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.base_url = ""

    def timeline_requests(self) -> list[str]:
        with self.lock:
            return [p for p in self.log if "/timeline/" in p]

    def requests(self) -> int:
        with self.lock:
            return len(self.log)


def _order_key(wo: dict[str, Any]) -> float:
    """The server's own reading of ``update_date`` (for ``ordering``): unknown dates last."""
    value = wo.get("update_date")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value if value < 1e11 else value / 1000)
    try:
        return pd.Timestamp(value).timestamp()
    except (TypeError, ValueError):
        return float("-inf")


class _Handler(QuietHandler):
    site: Site

    def do_GET(self) -> None:
        site = self.site
        with site.lock:
            site.log.append(self.path)
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/v0.2/work-orders/":
            rows = list(site.work_orders)
            if query.get("ordering") == "-update_date":
                rows.sort(key=_order_key, reverse=True)
            size = int(query.get("page_size", 100))
            page = int(query.get("page", 1))
            chunk = rows[(page - 1) * size : page * size]
            nxt = None
            if page * size < len(rows):
                nxt = f"{site.base_url}work-orders/?" + urllib.parse.urlencode(
                    {**query, "page": page + 1}
                )
            self.answer(200, {"count": len(rows), "next": nxt, "previous": None, "results": chunk})
            return
        m = re.fullmatch(r"/v0\.2/work-orders/([^/]+)/timeline/", parts.path)
        if m:
            wo_id = urllib.parse.unquote(m.group(1))
            if wo_id not in site.timelines:
                self.answer(404, {"detail": "Not found."})
                return
            found = site.timelines[wo_id]
            self.answer(200, {"count": len(found), "next": None, "results": found})
            return
        m = re.fullmatch(r"/v0\.2/work-orders/([^/]+)/", parts.path)
        if m:
            wo_id = urllib.parse.unquote(m.group(1))
            for wo in site.work_orders:
                if wo["id"] == wo_id:
                    self.answer(200, wo)
                    return
        self.answer(404, {"detail": "Not found."})


@pytest.fixture
def serve() -> Iterator[Callable[[list[dict[str, Any]]], Site]]:
    """``serve(work_orders)``: a running server holding them, as a :class:`Site`."""
    with_servers: list[Any] = []

    def start(work_orders: list[dict[str, Any]]) -> Site:
        site = Site(work_orders)
        handler = type("Handler", (_Handler,), {"site": site})
        cm = local_http_server(handler)
        server = cm.__enter__()
        with_servers.append(cm)
        site.base_url = f"http://127.0.0.1:{server.server_address[1]}/v0.2/"
        return site

    yield start
    for cm in with_servers:
        cm.__exit__(None, None, None)


def iso(i: int) -> str:
    return (T0 + timedelta(hours=i, minutes=30)).isoformat()


# --------------------------------------------------------------------------------------------
# a missing or unparseable update_date means "unknown": the timeline is always read
# --------------------------------------------------------------------------------------------

UNKNOWN = [None, "yesterday", "", "2026-13-45T99:00:00Z", True, {"at": 1}]


@pytest.mark.parametrize("unknown", UNKNOWN, ids=repr)
def test_tasks_then_timeline_on_one_client_reads_undated_timelines(
    serve, client_for, new_cache, unknown
) -> None:
    site = serve([work_order(i, unknown if i % 2 else iso(i)) for i in range(N)])
    client = client_for(site, cache=new_cache())
    fresh = client_for(site, cache=new_cache())

    tasks = dfs.load_tasks(client)
    assert len(tasks) == N
    timeline = dfs.load_timeline(client)
    expected = dfs.load_timeline(fresh)

    assert len(expected) == 2 * N
    assert sorted(timeline["event_id"]) == sorted(expected["event_id"])
    # the unknown dates are missing values, never a guess
    wo = dfs.load_work_orders(client).set_index("work_order_id")
    assert wo["update_date"].isna().sum() == N // 2


def test_an_undated_work_order_s_timeline_is_read_again_at_every_sync(serve, client_for) -> None:
    site = serve([work_order(i, None) for i in range(N)])
    client = client_for(site)
    first = dfs.load_timeline(client)
    assert len(first) == 2 * N

    # the server adds an event, and still says nothing of when the work order changed
    site.timelines["wo-03"] = events(3, n=3)
    again = dfs.load_timeline(client)

    assert "ev-3-2" in set(again["event_id"])
    assert len(again) == 2 * N + 1


def test_an_unchanged_undated_site_commits_no_new_version(serve, client_for) -> None:
    site = serve([work_order(i, None if i < 3 else iso(i)) for i in range(N)])
    client = client_for(site)
    dfs.sync(client, timelines=True)
    before = len(site.timeline_requests())

    again = dfs.sync(client, timelines=True)

    # the undated timelines are read again (they may have changed), nothing else is
    assert len(site.timeline_requests()) - before == 3
    assert again.commits == 0
    assert not again.changed


# --------------------------------------------------------------------------------------------
# nanosecond and epoch-number dates: normalised, so an unchanged site syncs to nothing
# --------------------------------------------------------------------------------------------

FAR = datetime(9999, 12, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)
EARLY = datetime(1600, 3, 1, 0, 0, 0, 654321, tzinfo=timezone.utc)
SHAPES: dict[str, Callable[[int], Any]] = {
    "nanoseconds": lambda i: (
        (T0 + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S") + f".{123456789 + i:09d}Z"
    ),
    "nanoseconds-offset": lambda i: (
        (T0 + timedelta(hours=i))
        .astimezone(timezone(timedelta(hours=2)))
        .strftime("%Y-%m-%dT%H:%M:%S")
        + ".000000999+02:00"
    ),
    "epoch-seconds": lambda i: EPOCH_T0 + 3600 * i,
    "epoch-seconds-float": lambda i: EPOCH_T0 + 3600 * i + 0.25,
    "epoch-milliseconds": lambda i: (EPOCH_T0 + 3600 * i) * 1000 + 7,
    "epoch-seconds-text": lambda i: str(EPOCH_T0 + 3600 * i),
    # beyond what nanoseconds since 1970 hold in 64 bits (the sync's index keeps microseconds)
    "year-9999": lambda i: (FAR + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    "year-1600": lambda i: (EARLY + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
}
EXPECTED: dict[str, Callable[[int], pd.Timestamp]] = {
    "nanoseconds": lambda i: pd.Timestamp(T0 + timedelta(hours=i, microseconds=123456 + i // 1000)),
    "nanoseconds-offset": lambda i: pd.Timestamp(T0 + timedelta(hours=i)),
    "epoch-seconds": lambda i: pd.Timestamp(T0 + timedelta(hours=i)),
    "epoch-seconds-float": lambda i: pd.Timestamp(T0 + timedelta(hours=i, milliseconds=250)),
    "epoch-milliseconds": lambda i: pd.Timestamp(T0 + timedelta(hours=i, milliseconds=7)),
    "epoch-seconds-text": lambda i: pd.Timestamp(T0 + timedelta(hours=i)),
    "year-9999": lambda i: pd.Timestamp(FAR + timedelta(hours=i)),
    "year-1600": lambda i: pd.Timestamp(EARLY + timedelta(hours=i)),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_an_unchanged_site_syncs_twice_to_nothing(serve, client_for, shape) -> None:
    site = serve([work_order(i, SHAPES[shape](i)) for i in range(N)])
    client = client_for(site)
    first = dfs.sync(client, timelines=True)
    assert first.timelines == N
    timelines_before = len(site.timeline_requests())

    second = dfs.sync(client, timelines=True)

    assert second.commits == 0, second
    assert second.version == first.version
    assert second.updated == 0 and second.timelines == 0
    assert len(site.timeline_requests()) == timelines_before
    wo = dfs.load_work_orders(client)
    got = dict(zip(wo["work_order_id"], wo["update_date"], strict=True))
    for i in range(N):
        assert got[f"wo-{i:02d}"] == EXPECTED[shape](i), (i, got[f"wo-{i:02d}"])


def test_a_work_order_whose_epoch_date_moves_is_read_again(serve, client_for) -> None:
    site = serve([work_order(i, SHAPES["epoch-milliseconds"](i)) for i in range(N)])
    client = client_for(site)
    dfs.sync(client, timelines=True)
    # updated last, 5 s after the newest date the dataset holds
    site.work_orders[2] = work_order(2, SHAPES["epoch-milliseconds"](N - 1) + 5000)
    site.work_orders[2]["name"] = "RENAMED"
    site.timelines["wo-02"] = events(2, n=3)

    again = dfs.sync(client, timelines=True)

    assert again.updated == 1 and again.timelines == 1
    wo = dfs.load_work_orders(client).set_index("work_order_id")
    assert wo.loc["wo-02", "name"] == "RENAMED"
    assert "ev-2-2" in set(dfs.load_timeline(client)["event_id"])


# --------------------------------------------------------------------------------------------
# ids the API cannot take as a path segment
# --------------------------------------------------------------------------------------------

BAD_IDS = ["a/b", ".", "..", "", "x\\y"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_an_id_that_is_no_path_segment_is_skipped_with_a_warning(serve, client_for, bad) -> None:
    wos = [work_order(i, iso(i)) for i in range(N)]
    wos.append(work_order(N, iso(N), wo_id=bad))
    site = serve(wos)
    client = client_for(site)

    with pytest.warns(dfs.SkippedIdWarning, match=re.escape(repr(bad))) as caught:
        timeline = dfs.load_timeline(client)

    assert sorted(set(timeline["work_order_id"])) == [f"wo-{i:02d}" for i in range(N)]
    assert len(timeline) == 2 * N
    assert all(issubclass(w.category, UserWarning) for w in caught)
    # the work order itself was listed, so its tasks are there
    tasks = dfs.load_tasks(client)
    assert bad in set(tasks["work_order_id"])
    # no request ever aimed at another resource
    assert not [p for p in site.log if "/work-orders/./" in p or "/work-orders/../" in p]


def test_tasks_then_timeline_with_a_slash_id_goes_on(serve, client_for) -> None:
    wos = [work_order(i, iso(i)) for i in range(N)]
    wos.insert(3, work_order(N, None, wo_id="site/7"))
    site = serve(wos)
    client = client_for(site)
    dfs.load_tasks(client)

    with pytest.warns(dfs.SkippedIdWarning, match="site/7"):
        timeline = dfs.load_timeline(client)
    assert len(timeline) == 2 * N

    # the id leaves the list: it goes from the dataset, and nothing asks for it by id
    site.work_orders = [wo for wo in site.work_orders if wo["id"] != "site/7"]
    with pytest.warns(dfs.SkippedIdWarning, match="taken as deleted"):
        dfs.load_tasks(client)
    assert "site/7" not in set(dfs.load_work_orders(client)["work_order_id"])


@pytest.mark.parametrize("n", [N, 15], ids=["walked", "read-one-by-one"])
def test_an_undated_work_order_that_changes_is_read_again(serve, client_for, n) -> None:
    # with 15 work orders the newest ten are dated, so the sync asks what changed and then
    # reads the undated one by id; with 6 the undated one is among them and the list is walked
    wos = [work_order(i, iso(i)) for i in range(n)]
    wos[1]["update_date"] = None
    site = serve(wos)
    client = client_for(site)
    dfs.load_tasks(client)
    unchanged = dfs.sync(client)
    assert unchanged.commits == 0

    site.work_orders[1] = {**site.work_orders[1], "name": "RENAMED"}
    again = dfs.sync(client)

    assert again.updated == 1 and again.commits >= 1
    wo = dfs.load_work_orders(client).set_index("work_order_id")
    assert wo.loc["wo-01", "name"] == "RENAMED"
    if n > N:
        assert any(p.startswith("/v0.2/work-orders/wo-01/?") for p in site.log)


def test_undated_timelines_read_online_are_served_offline(serve, client_for) -> None:
    site = serve([work_order(i, None if i % 2 else iso(i)) for i in range(N)])
    online = client_for(site)
    ids = [f"wo-{i:02d}" for i in range(N)]
    assert len(dfs.load_timeline(online, ids)) == 2 * N
    before = site.requests()

    offline = client_for(site, offline=True)
    timeline = dfs.load_timeline(offline, ids)

    assert len(timeline) == 2 * N
    assert site.requests() == before
    # and read online again, an undated timeline is still asked for (it may have changed)
    dfs.load_timeline(online, ids)
    assert len(site.timeline_requests()) == N + N // 2
