"""Servers that never stop talking, and answers from another origin: each is a typed
:class:`dfs.InvalidResponseError` within seconds, with memory bounded, and nothing from it is
stored. Every server here is a small hostile ``http.server`` on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

import dfs_analytics as dfs
from dfs_analytics.client.answers import parse_json
from tests.helpers import QuietHandler, local_http_server

KEY = "hostile-key-Pq83Lw"


def work_order(wo_id: str, **fields: Any) -> dict[str, Any]:
    """A small work order with one analysed Boolean task."""
    wo: dict[str, Any] = {
        "id": wo_id,
        "name": "w",
        "site_id": "s",
        "app_version_id": "v1",
        "create_date": "2026-03-01T10:00:00Z",
        "update_date": "2026-03-01T11:00:00Z",
        "review_date": None,
        "metadata": {},
        "tags": [],
        "types": [],
        "tasks": [
            {
                "id": "t1",
                "name": "present",
                "task_group_name": "g",
                "outcome_type": "Boolean",
                "conformity_status": True,
                "outcome_validation": [],
                "state": {"analyzed_value": True, "corrected_value": None, "message": "OK"},
            }
        ],
    }
    wo.update(fields)
    return wo


def page(results: list[Any], *, count: Any = None, next_url: str | None = None) -> dict[str, Any]:
    """One DRF-style page; ``count=None`` leaves the key out."""
    body: dict[str, Any] = {"next": next_url, "previous": None, "results": results}
    if count is not None:
        body["count"] = count
    return body


class Hostile(QuietHandler):
    """Answers every GET with ``self.reply(path)`` -> (status, body or bytes, headers) and
    records what it was asked (path, whether it carried a key)."""

    hits: ClassVar[list[tuple[str, bool]]] = []

    def do_GET(self) -> None:
        type(self).hits.append((self.path, "Authorization" in self.headers))
        status, body, headers = self.reply(self.path)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v0.2/"


def client_of(server: Any, tmp_path: Path, **kw: Any) -> dfs.Client:
    kw.setdefault("cache", tmp_path / "cache")
    kw.setdefault("progress", False)
    kw.setdefault("retries", 0)
    return dfs.Client(f"http://127.0.0.1:{server.server_address[1]}/v0.2/", api_key=KEY, **kw)


def assert_no_key(exc: BaseException) -> None:
    assert KEY not in f"{exc} {exc!r}"


def cached_rows(tmp_path: Path) -> int:
    """How many answers and redirect aliases the HTTP cache under tmp_path holds."""
    files = list((tmp_path / "cache").rglob("http.sqlite"))
    assert files, "no HTTP cache file"
    con = sqlite3.connect(files[0])
    try:
        return sum(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("responses", "redirects")
        )
    finally:
        con.close()


# -- pagination that never ends -----------------------------------------------------------------


class _FreshCursorSameRow(Hostile):
    """``count`` 1, one row, and a ``next`` that is always a fresh cursor (stops after 300)."""

    hits: ClassVar[list[tuple[str, bool]]] = []

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        more = len(type(self).hits) < 300
        nxt = f"{self.base()}work-orders/?cursor={uuid.uuid4().hex}" if more else None
        return 200, page([work_order("a")], count=1, next_url=nxt), {}


class _FreshCursorFreshRows(Hostile):
    """``count`` 1, but every page a new row and a fresh cursor (stops after 300)."""

    hits: ClassVar[list[tuple[str, bool]]] = []
    with_count: ClassVar[bool] = True

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        more = len(type(self).hits) < 300
        nxt = f"{self.base()}work-orders/?cursor={uuid.uuid4().hex}" if more else None
        count = 1 if type(self).with_count else None
        return 200, page([work_order(uuid.uuid4().hex)], count=count, next_url=nxt), {}


def test_fresh_cursors_over_the_same_row_end_after_the_page_that_adds_nothing(
    tmp_path: Path,
) -> None:
    _FreshCursorSameRow.hits = []
    with local_http_server(_FreshCursorSameRow) as server, client_of(server, tmp_path) as client:
        started = time.monotonic()
        items = client.list_work_orders()
        assert [i["id"] for i in items] == ["a"]
        assert time.monotonic() - started < 5
        # the first page, and the one that added no row: not 300 pages
        assert len(_FreshCursorSameRow.hits) <= 3


def test_fresh_cursors_over_the_same_row_end_in_a_sync_too(tmp_path: Path) -> None:
    _FreshCursorSameRow.hits = []
    with local_http_server(_FreshCursorSameRow) as server, client_of(server, tmp_path) as client:
        frame = dfs.load_work_orders(client)
        assert list(frame["work_order_id"]) == ["a"]
        assert len(_FreshCursorSameRow.hits) <= 10


@pytest.mark.parametrize("with_count", [True, False])
def test_fresh_cursors_with_fresh_rows_stop_at_the_page_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_count: bool
) -> None:
    _FreshCursorFreshRows.hits = []
    _FreshCursorFreshRows.with_count = with_count
    # without a count, the hard page limit bounds the walk (lowered here to keep the test short)
    monkeypatch.setattr("dfs_analytics.client.MAX_PAGES", 40)
    with local_http_server(_FreshCursorFreshRows) as server, client_of(server, tmp_path) as client:
        started = time.monotonic()
        with pytest.raises(dfs.InvalidResponseError) as info:
            client.list_work_orders()
        assert time.monotonic() - started < 10
        assert "GET /v0.2/work-orders/" in str(info.value)
        assert "page" in str(info.value)
        assert_no_key(info.value)
        # count 1: one page plus a small margin; no count: the hard limit
        assert len(_FreshCursorFreshRows.hits) <= (15 if with_count else 41)


class _HugeCount(Hostile):
    """Page-numbered links and a ``count`` set by the test, one row per page; pages past the
    first repeat the same row."""

    hits: ClassVar[list[tuple[str, bool]]] = []
    count: ClassVar[Any] = 10**12

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        nxt = f"{self.base()}work-orders/?page=2&page_size=1000"
        return 200, page([work_order("a")], count=type(self).count, next_url=nxt), {}


@pytest.mark.parametrize("count", [10**12, 10**9, 10**6, -3])
def test_an_impossible_count_is_refused_at_once(tmp_path: Path, count: int) -> None:
    _HugeCount.hits = []
    _HugeCount.count = count
    with local_http_server(_HugeCount) as server, client_of(server, tmp_path) as client:
        started = time.monotonic()
        with pytest.raises(dfs.InvalidResponseError) as info:
            client.list_work_orders()
        assert time.monotonic() - started < 5
        text = str(info.value)
        assert "GET /v0.2/work-orders/" in text and "count" in text
        assert len(_HugeCount.hits) == 1


def test_numbered_pages_that_repeat_one_row_stop_without_walking_the_count(
    tmp_path: Path,
) -> None:
    _HugeCount.hits = []
    _HugeCount.count = 50_000  # a possible count: 50,000 pages of one row
    with local_http_server(_HugeCount) as server, client_of(server, tmp_path) as client:
        started = time.monotonic()
        with pytest.raises(dfs.DFSError):  # the rows do not add up to the count
            client.list_work_orders()
        assert time.monotonic() - started < 10
        # two walks, each of the first page, the one that adds nothing and at most a window
        # of pages in flight: not 50,000
        assert len(_HugeCount.hits) <= 2 * (2 + client.settings.workers)


# -- bodies that inflate -------------------------------------------------------------------------

_MB = 2**20


def gzip_bomb(inflated_mb: int) -> bytes:
    """A gzip body of valid JSON that inflates to about ``inflated_mb`` MiB of blanks (one
    gzip member per MiB, which gzip and urllib3 decode as one stream)."""
    member = gzip.compress(b" " * _MB, 9)
    return (
        gzip.compress(b'{"count": 1, "next": null, "results": [{"id": "a"}]')
        + member * inflated_mb
        + gzip.compress(b"}")
    )


class _Bomb(Hostile):
    hits: ClassVar[list[tuple[str, bool]]] = []
    body: ClassVar[bytes] = b""

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        if "/small/" in path:
            return 200, {"id": "small"}, {}
        return 200, type(self).body, {"Content-Encoding": "gzip"}


_CHILD = textwrap.dedent(
    """
    import json, re, sys, tracemalloc
    import dfs_analytics as dfs

    def status_kb(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

    base, cache, how = sys.argv[1], sys.argv[2], sys.argv[3]
    client = dfs.Client(base, api_key="k", cache=cache, progress=False, retries=0)
    client.request("GET", "small/", cached=True)  # everything a request needs is loaded
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS starts again from now
    before = status_kb("VmRSS")
    tracemalloc.start()
    try:
        if how == "list":
            client.list_work_orders()
        else:
            client.get_work_order("w1")
        outcome = "no error"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    traced = tracemalloc.get_traced_memory()[1] // 1024
    print(json.dumps({"outcome": outcome, "before_kb": before, "peak_kb": status_kb("VmHWM"),
                      "traced_kb": traced}))
    """
)


@pytest.mark.parametrize("how", ["list", "cached read"])
def test_a_gzip_bomb_is_refused_with_memory_bounded(tmp_path: Path, how: str) -> None:
    _Bomb.body = gzip_bomb(2048)  # 2 GB once inflated
    assert len(_Bomb.body) < 4 * _MB
    with local_http_server(_Bomb) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}/v0.2/"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-c", _CHILD, base, str(tmp_path / "cache"), how.split()[0]],
            capture_output=True,
            text=True,
            timeout=300,
        )
        elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["outcome"].startswith("InvalidResponseError"), report["outcome"][:300]
    assert "MiB" in report["outcome"]
    assert "/v0.2/work-orders/" in report["outcome"]
    grown_mb = (report["peak_kb"] - report["before_kb"]) / 1024
    traced_mb = report["traced_kb"] / 1024
    print(f"bomb ({how}): {elapsed:.1f} s; peak RSS {report['peak_kb'] / 1024:.0f} MB, ", end="")
    print(f"{grown_mb:.0f} MB over the {report['before_kb'] / 1024:.0f} MB before; ", end="")
    print(f"Python allocations peaked at {traced_mb:.0f} MB")
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB"
    assert traced_mb < 100
    assert elapsed < 60
    assert cached_rows(tmp_path) == 1  # the small answer only: nothing of the bomb


class _Endless(QuietHandler):
    """Answers with a chunked body that never ends (until the client hangs up)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b" " * 65536
        try:
            self.wfile.write(b'%x\r\n{"results": [\r\n' % len(b'{"results": ['))
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the client hung up
            pass


def test_a_body_that_never_ends_is_refused_at_the_cap(tmp_path: Path) -> None:
    with local_http_server(_Endless) as server, client_of(server, tmp_path) as client:
        started = time.monotonic()
        with pytest.raises(dfs.InvalidResponseError, match="MiB"):
            client.list_work_orders()
        assert time.monotonic() - started < 20


# -- JSON the client cannot use ----------------------------------------------------------------


class _Shapes(Hostile):
    """Work orders, timelines and task groups whose body the test sets."""

    hits: ClassVar[list[tuple[str, bool]]] = []
    bodies: ClassVar[dict[str, Any]] = {}

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        for prefix, body in type(self).bodies.items():
            if path.startswith(prefix):
                return 200, body, {}
        if path.startswith("/v0.2/task-groups/"):
            return 200, page([], count=0), {}
        return 404, {"detail": "Not found."}, {}


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


@pytest.mark.parametrize(
    ("prefix", "call"),
    [
        ("/v0.2/work-orders/?", lambda c: c.list_work_orders()),
        ("/v0.2/work-orders/w1/", lambda c: c.get_work_order("w1")),
        ("/v0.2/work-orders/w1/timeline/", lambda c: c.get_timeline("w1")),
    ],
)
def test_json_nested_five_thousand_deep_is_an_api_error_naming_the_endpoint(
    tmp_path: Path, prefix: str, call: Any
) -> None:
    body = (
        b'{"count": 1, "next": null, "results": [{"id": "a", "metadata": {"x": '
        + deep(5000)
        + b"}}]}"
    )
    if "timeline" not in prefix and "?" not in prefix:
        body = b'{"id": "w1", "tasks": [], "metadata": {"x": ' + deep(5000) + b"}}"
    _Shapes.bodies = {prefix: body}
    with local_http_server(_Shapes) as server, client_of(server, tmp_path) as client:
        with pytest.raises(dfs.InvalidResponseError) as info:
            call(client)
        assert prefix.rstrip("?") in str(info.value)
        assert "deep" in str(info.value)
        assert_no_key(info.value)


class _DeepError(Hostile):
    hits: ClassVar[list[tuple[str, bool]]] = []

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        return 404, b'{"detail": ' + deep(5000) + b"}", {}


def test_an_error_answer_nested_too_deep_keeps_its_status(tmp_path: Path) -> None:
    with local_http_server(_DeepError) as server, client_of(server, tmp_path) as client:
        with pytest.raises(dfs.NotFoundError) as info:
            client.get_work_order("w1")
        assert info.value.status == 404 and "/v0.2/work-orders/w1/" in str(info.value)


def test_json_nested_past_orjson_depth_is_refused_without_recursing() -> None:
    # json's decoder would refuse it too, but only once it has recursed to the interpreter's
    # limit, where any finalizer the garbage collector runs meanwhile fails (pytest then
    # failed this module's tests now and then on "Exception ignored in ...")
    with local_http_server(_DeepError) as server:
        response = requests.get(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10)
    assert response.status_code == 404
    with pytest.raises(RecursionError, match="nested deeper than 1024 levels"):
        parse_json(response)


WO_LIST = "/v0.2/work-orders/?"


@pytest.mark.parametrize(
    ("prefix", "body", "what"),
    [
        (WO_LIST, page([work_order("a", tasks={"t1": {}})], count=1), "tasks"),
        (WO_LIST, page([work_order("a", tasks=["t1"])], count=1), "task"),
        (WO_LIST, page([work_order("a", tasks=[{"id": "t", "state": "OK"}])], count=1), "state"),
        (WO_LIST, page(["a", "b"], count=2), "work order"),
        (WO_LIST, page({"a": work_order("a")}, count=1), "results"),
        (WO_LIST, page([work_order(["a"])], count=1), "id"),
        ("/v0.2/work-orders/w1/", work_order("w1", tasks="none"), "tasks"),
        ("/v0.2/work-orders/w1/", ["not", "an", "object"], "work order"),
        (
            "/v0.2/work-orders/w1/timeline/",
            page([{"id": "e", "type": "analysis", "states": "OK"}], count=1),
            "states",
        ),
        (
            "/v0.2/task-groups/",
            page([{"id": "g", "name": "g", "tasks": {"a": 1}}], count=1),
            "tasks",
        ),
    ],
)
def test_a_shape_the_client_cannot_use_is_an_api_error_naming_the_endpoint(
    tmp_path: Path, prefix: str, body: Any, what: str
) -> None:
    _Shapes.bodies = {prefix: body}
    calls = {
        WO_LIST: lambda c: dfs.load_tasks(c),
        "/v0.2/work-orders/w1/": lambda c: c.get_work_order("w1"),
        "/v0.2/work-orders/w1/timeline/": lambda c: c.get_timeline("w1"),
        "/v0.2/task-groups/": lambda c: dfs.load_task_groups(c),
    }
    with local_http_server(_Shapes) as server, client_of(server, tmp_path) as client:
        with pytest.raises(dfs.InvalidResponseError) as info:
            calls[prefix](client)
        text = str(info.value)
        assert prefix.rstrip("?") in text
        assert what in text
        assert_no_key(info.value)


def test_what_the_contract_only_assumes_is_taken_as_it_comes(tmp_path: Path) -> None:
    """Extra keys, missing optional ones, nulls, a bare array, a count as text: all usable."""
    wo = work_order("a", extra={"nested": [1, 2]}, tasks=None, metadata=None, tags=None)
    del wo["review_date"]
    _Shapes.bodies = {
        WO_LIST: page([wo, work_order("b", tasks=[])], count="2"),
        "/v0.2/work-orders/w1/timeline/": [{"id": "e", "type": "created", "states": None}],
    }
    with local_http_server(_Shapes) as server, client_of(server, tmp_path) as client:
        assert [w["id"] for w in client.list_work_orders()] == ["a", "b"]
        assert client.get_timeline("w1")[0]["id"] == "e"
        assert len(dfs.load_work_orders(client)) == 2


# -- redirects to another origin ----------------------------------------------------------------


class _Foreign(Hostile):
    """Another origin: answers anything with a plausible work order."""

    hits: ClassVar[list[tuple[str, bool]]] = []

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/v0.2/work-orders/?"):
            return 200, page([work_order("foreign")], count=1), {}
        return 200, work_order("w1", name="foreign"), {}


class _Redirecting(Hostile):
    """The site: redirects to ``target`` (a format string taking the foreign port and the
    path), and serves work orders under /moved/ itself."""

    hits: ClassVar[list[tuple[str, bool]]] = []
    target: ClassVar[str] = ""
    foreign_port: ClassVar[int] = 0

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/moved/"):
            return 200, work_order("w1", name="ours"), {}
        if path.startswith("/v0.2/task-groups/"):
            return 200, page([], count=0), {}
        own = self.server.server_address[1]
        location = type(self).target.format(foreign=type(self).foreign_port, own=own, path=path)
        return 302, {"detail": "moved"}, {"Location": location}


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{foreign}{path}",  # another port
        "http://localhost:{own}{path}",  # another host name, same port
        "//127.0.0.1:{foreign}{path}",  # scheme-relative
    ],
)
def test_a_redirect_to_another_origin_is_refused_and_nothing_is_stored(
    tmp_path: Path, target: str
) -> None:
    _Redirecting.hits, _Foreign.hits = [], []
    _Redirecting.target = target
    with local_http_server(_Foreign) as foreign, local_http_server(_Redirecting) as site:
        _Redirecting.foreign_port = foreign.server_address[1]
        with client_of(site, tmp_path) as client:
            with pytest.raises(dfs.InvalidResponseError) as info:
                client.get_work_order("w1")
            text = str(info.value)
            assert "another origin" in text and "/v0.2/work-orders/w1/" in text
            assert_no_key(info.value)
            with pytest.raises(dfs.InvalidResponseError):
                dfs.load_work_orders(client)
    assert cached_rows(tmp_path) == 0
    if "localhost" not in target:
        assert _Foreign.hits == []  # never asked, with or without the key
    datasets = list((tmp_path / "cache").rglob("*.parquet"))
    assert not any("foreign" in p.read_bytes().decode("latin1") for p in datasets)


def test_a_redirect_within_the_origin_is_followed_and_cached(tmp_path: Path) -> None:
    _Redirecting.hits = []
    _Redirecting.target = "/moved{path}"
    with local_http_server(_Redirecting) as site, client_of(site, tmp_path) as client:
        assert client.get_work_order("w1")["name"] == "ours"
        assert all(with_key for _, with_key in _Redirecting.hits)
    assert cached_rows(tmp_path) >= 1


def test_a_redirect_loop_within_the_origin_is_a_typed_error(tmp_path: Path) -> None:
    _Redirecting.hits = []
    _Redirecting.target = "{path}x"  # always somewhere new on the same origin
    with local_http_server(_Redirecting) as site, client_of(site, tmp_path) as client:
        started = time.monotonic()
        with pytest.raises(dfs.InvalidResponseError, match="redirects"):
            client.get_work_order("w1")
        assert time.monotonic() - started < 5
        assert len(_Redirecting.hits) <= 12


class _TurnsForeign(Hostile):
    """The site answers a work order with an ETag, then starts redirecting elsewhere."""

    hits: ClassVar[list[tuple[str, bool]]] = []
    foreign_port: ClassVar[int] = 0

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        if len(type(self).hits) == 1:
            return 200, work_order("w1", name="ours"), {"ETag": '"v1"'}
        location = f"http://127.0.0.1:{type(self).foreign_port}{path}"
        return 302, {"detail": "moved"}, {"Location": location}


def test_a_cached_answer_is_not_replaced_by_another_origin_on_revalidation(
    tmp_path: Path,
) -> None:
    _TurnsForeign.hits, _Foreign.hits = [], []
    with local_http_server(_Foreign) as foreign, local_http_server(_TurnsForeign) as site:
        _TurnsForeign.foreign_port = foreign.server_address[1]
        with client_of(site, tmp_path) as client:
            assert client.get_work_order("w1")["name"] == "ours"
            with pytest.raises(dfs.InvalidResponseError, match="another origin"):
                client.get_work_order("w1")
        with client_of(site, tmp_path, offline=True) as offline:
            assert offline.get_work_order("w1")["name"] == "ours"
    assert _Foreign.hits == []


class _Big(Hostile):
    hits: ClassVar[list[tuple[str, bool]]] = []

    def reply(self, path: str) -> tuple[int, Any, dict[str, str]]:
        return 200, work_order("w1", name="x" * 5000), {}


def test_the_size_cap_is_a_setting_of_the_client(tmp_path: Path) -> None:
    with local_http_server(_Big) as server, client_of(server, tmp_path) as client:
        assert client.max_response_bytes == 64 * 2**20
        assert client.get_work_order("w1")["name"] == "x" * 5000
        client.max_response_bytes = 4096
        with pytest.raises(dfs.InvalidResponseError, match=r"larger than 0\.00390625 MiB"):
            client.get_work_order("w2")
        for bad in (0, -1, 1.5, True, "1"):
            with pytest.raises(dfs.ConfigurationError):
                client.max_response_bytes = bad  # type: ignore[assignment]
        assert client.max_response_bytes == 4096


def test_a_next_page_served_from_another_path_is_checked_as_the_listing(tmp_path: Path) -> None:
    first = page([work_order("a")], count=2, next_url="/v0.2/cursor/c2/")
    _Shapes.bodies = {
        WO_LIST: first,
        "/v0.2/cursor/c2/": page([work_order("b", tasks={"t": 1})], count=2),
    }
    with local_http_server(_Shapes) as server, client_of(server, tmp_path) as client:
        with pytest.raises(dfs.InvalidResponseError, match="'tasks' is an object") as info:
            client.list_work_orders()
        assert "/v0.2/work-orders/" in str(info.value)
        _Shapes.bodies["/v0.2/cursor/c2/"] = page([work_order("b")], count=2)
        assert [w["id"] for w in client.list_work_orders()] == ["a", "b"]
