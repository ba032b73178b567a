"""One test (or a few) per endpoint method of dfs.Client, over HTTP against the simulator.

Each test creates its own work orders on a module simulator and checks the effect on a
following read (which also proves that writes invalidate the cached reads they made stale).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

import dfs_analytics as dfs
from tests.helpers import CREATE, GROUPS, QuietHandler, delta, image_url, local_http_server, task_of

pytestmark = pytest.mark.sim(work_orders=40, seed=11, scope="module")


def unique_name(prefix: str = "wo") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- work orders ------------------------------------------------------------------------------


def test_create_work_order_returns_it_and_a_read_shows_it(sim, client) -> None:
    name = unique_name()
    before = sim.request_counts()
    wo = client.create_work_order(
        name,
        metadata={"region": "north", "lot": 7, "checked": True},
        tags=["b2b", "pilot"],
        types=["maintenance"],
        field_engineer_email="tech@example.com",
    )
    assert delta(sim, before) == {CREATE: 1}
    assert wo["name"] == name
    assert wo["metadata"] == {"region": "north", "lot": 7, "checked": True}
    assert wo["tags"] == ["b2b", "pilot"]
    assert wo["types"] == ["maintenance"]
    assert wo["field_engineer_email"] == "tech@example.com"
    assert wo["review_date"] is None
    assert {t["task_group_name"] for t in wo["tasks"]} == {"pm-ouvert-apres", "releve-optique"}
    assert all(t["state"] is None for t in wo["tasks"])
    assert wo["id"] in sim.store.work_orders

    read = client.get_work_order(wo["id"])
    assert read["id"] == wo["id"]
    assert read["name"] == name
    assert read["metadata"] == wo["metadata"]
    assert read["inputs"] == []


def test_create_work_order_with_only_a_name(client) -> None:
    wo = client.create_work_order(unique_name())
    assert wo["metadata"] == {}
    assert wo["tags"] == []
    assert wo["types"] == []
    assert {t["task_group_name"] for t in wo["tasks"]} == set(GROUPS)


def test_get_work_order_with_and_without_inputs(client) -> None:
    wo = client.create_work_order(unique_name())
    client.analyze(wo["id"], "releve-optique", image_url(releve_optique_quality=True))
    full = client.get_work_order(wo["id"])
    assert len(full["inputs"]) == 1
    assert full["inputs"][0]["task_group_name"] == "releve-optique"
    light = client.get_work_order(wo["id"], include_inputs=False)
    assert "inputs" not in light
    assert light["id"] == wo["id"]
    assert light["tasks"] == full["tasks"]


def test_update_work_order_patch_changes_only_given_fields(sim, client) -> None:
    wo = client.create_work_order(unique_name(), metadata={"region": "east"}, tags=["pilot"])
    client.get_work_order(wo["id"])  # cached read, made stale by the update
    before = sim.request_counts()
    new_name = unique_name("renamed")
    answer = client.update_work_order(wo["id"], name=new_name, tags=["rework", "urgent"])
    assert delta(sim, before) == {"PATCH /v0.2/work-orders/{wo_id}/": 1}
    assert answer["name"] == new_name
    read = client.get_work_order(wo["id"])
    assert read["name"] == new_name
    assert read["tags"] == ["rework", "urgent"]
    assert read["metadata"] == {"region": "east"}  # untouched by a PATCH


def test_update_work_order_replace_puts_the_whole_set(sim, client) -> None:
    wo = client.create_work_order(
        unique_name(),
        metadata={"region": "east"},
        tags=["pilot"],
        field_engineer_email="a@example.com",
    )
    client.get_work_order(wo["id"])
    before = sim.request_counts()
    name = unique_name("put")
    answer = client.update_work_order(wo["id"], replace=True, name=name, types=["maintenance"])
    assert delta(sim, before) == {"PUT /v0.2/work-orders/{wo_id}/": 1}
    assert answer["name"] == name
    read = client.get_work_order(wo["id"])
    assert read["name"] == name
    assert read["types"] == ["maintenance"]
    # omitted optional fields are reset by a PUT
    assert read["metadata"] == {}
    assert read["tags"] == []
    assert read["field_engineer_email"] is None


def test_update_work_order_argument_errors_send_nothing(sim, client) -> None:
    wo = client.create_work_order(unique_name())
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError, match="name"):
        client.update_work_order(wo["id"], replace=True, tags=["x"])
    with pytest.raises(dfs.ConfigurationError, match="colour"):
        client.update_work_order(wo["id"], colour="red")
    with pytest.raises(dfs.ConfigurationError, match="work_order_id"):
        client.get_work_order("")
    assert delta(sim, before) == {}


def test_delete_work_order(sim, client) -> None:
    wo = client.create_work_order(unique_name())
    client.get_work_order(wo["id"])  # cached: must not be served after the delete
    before = sim.request_counts()
    assert client.delete_work_order(wo["id"]) is None
    assert delta(sim, before) == {"DELETE /v0.2/work-orders/{wo_id}/": 1}
    assert wo["id"] not in sim.store.work_orders
    with pytest.raises(dfs.NotFoundError):
        client.get_work_order(wo["id"])
    with pytest.raises(dfs.NotFoundError):
        client.delete_work_order(wo["id"])
    assert wo["id"] not in {w["id"] for w in client.list_work_orders(name=wo["name"])}


# -- listing ----------------------------------------------------------------------------------


def test_list_work_orders_with_filters_over_many_pages(sim, client_for) -> None:
    client = client_for(sim, page_size=2)
    tag = "t" + uuid.uuid4().hex[:8]
    names = [unique_name("list") for _ in range(5)]
    made = [
        client.create_work_order(
            n,
            tags=[tag] + (["urgent"] if i % 2 == 0 else []),
            field_engineer_email="lister@example.com" if i < 2 else None,
        )
        for i, n in enumerate(names)
    ]
    ids = [w["id"] for w in made]

    listed = client.list_work_orders(tag=tag)
    assert [w["id"] for w in listed] == ids  # create_date order, across 3 pages
    assert all("tasks" in w and "inputs" not in w for w in listed)

    assert [w["id"] for w in client.list_work_orders(tag=[tag, "urgent"])] == ids[0::2]
    assert [w["id"] for w in client.list_work_orders(name=names[3])] == [ids[3]]
    assert [
        w["id"] for w in client.list_work_orders(tag=tag, field_engineer_email="lister@example.com")
    ] == ids[:2]
    assert [w["id"] for w in client.list_work_orders(tag=tag, ordering="-create_date")] == ids[::-1]
    third = made[2]["create_date"]
    assert [w["id"] for w in client.list_work_orders(tag=tag, created_after=third)] == ids[2:]
    assert [w["id"] for w in client.list_work_orders(tag=tag, created_before=third)] == ids[:2]
    assert client.list_work_orders(tag=tag, reviewed=True) == []
    assert [w["id"] for w in client.list_work_orders(tag=tag, reviewed=False)] == ids


def test_list_work_orders_without_filters_is_complete(sim, client_for) -> None:
    client = client_for(sim, page_size=7)
    listed = client.list_work_orders()
    ids = [w["id"] for w in listed]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(sim.store.work_orders)


@pytest.mark.parametrize("window", [None, 1, 3])
def test_pages_in_order_or_as_they_come_hold_the_same_items(sim, client_for, window) -> None:
    client = client_for(sim, page_size=7)
    pages_seen: list[tuple[int, int | None]] = []
    items, count = client.paginate(
        "work-orders/", on_page=lambda n, total: pages_seen.append((n, total))
    )
    ids = [w["id"] for w in items]
    assert count == len(ids) and len(pages_seen) == -(-count // 7)
    assert sum(n for n, _ in pages_seen) == count and {t for _, t in pages_seen} == {count}

    ordered = list(client.iter_pages("work-orders/", window=window, ordered=True))
    assert [w["id"] for page, _ in ordered for w in page] == ids
    streamed = list(client.iter_pages("work-orders/", window=window))
    assert sorted(w["id"] for page, _ in streamed for w in page) == sorted(ids)
    assert {n for _, n in ordered + streamed} == {count}


# -- timeline and metadata --------------------------------------------------------------------


def test_get_timeline_follows_writes(client) -> None:
    wo = client.create_work_order(unique_name())
    events = client.get_timeline(wo["id"])
    assert [e["type"] for e in events] == ["created"]
    client.patch_metadata(wo["id"], {"k": "v"})
    client.analyze(wo["id"], "releve-optique", image_url(releve_optique_quality=True))
    events = client.get_timeline(wo["id"])
    assert [e["type"] for e in events] == ["created", "metadata_update", "analysis"]
    assert events[2]["task_group_name"] == "releve-optique"
    assert {s["task_name"] for s in events[2]["states"]} <= {
        "releve_optique_quality",
        "mesure_puissance",
    }


def test_get_timeline_of_many_events_over_pages(sim, client_for) -> None:
    client = client_for(sim, page_size=3)
    wo = client.create_work_order(unique_name())
    for i in range(7):
        client.patch_metadata(wo["id"], {"step": i})
    events = client.get_timeline(wo["id"])
    assert [e["type"] for e in events] == ["created"] + ["metadata_update"] * 7
    assert len({e["id"] for e in events}) == 8


def test_patch_metadata_merges_and_null_removes(client) -> None:
    wo = client.create_work_order(unique_name(), metadata={"a": 1, "b": "x"})
    client.get_work_order(wo["id"])
    assert client.patch_metadata(wo["id"], {"b": None, "c": True}) == {"a": 1, "c": True}
    assert client.get_work_order(wo["id"])["metadata"] == {"a": 1, "c": True}


def test_put_metadata_replaces(client) -> None:
    wo = client.create_work_order(unique_name(), metadata={"a": 1, "b": "x"})
    client.get_work_order(wo["id"])
    assert client.put_metadata(wo["id"], {"z": 2.5, "gone": None}) == {"z": 2.5}
    assert client.get_work_order(wo["id"])["metadata"] == {"z": 2.5}


# -- task groups ------------------------------------------------------------------------------


def test_list_task_groups(sim, client) -> None:
    groups = client.list_task_groups()
    current = sim.store.app.current.groups
    assert [g["name"] for g in groups] == [g.name for g in current]
    assert [g["id"] for g in groups] == [g.id for g in current]
    for group, expected in zip(groups, current, strict=True):
        assert [t["name"] for t in group["tasks"]] == [t.name for t in expected.tasks]


def test_get_task_group_by_id_and_by_name(client) -> None:
    groups = {g["name"]: g for g in client.list_task_groups()}
    group = groups["pb-ouvert-apres"]
    by_name = client.get_task_group("pb-ouvert-apres")
    by_id = client.get_task_group(group["id"])
    assert by_name == by_id == group
    assert [t["outcome_type"] for t in by_id["tasks"]] == [
        "Boolean",
        "Boolean",
        "Number",
        "Text",
        "Boolean",
    ]


def test_get_task_group_of_an_older_app_version_by_id(sim, client) -> None:
    old = sim.store.app.versions[0].groups[0]
    assert old.id not in {g["id"] for g in client.list_task_groups()}
    assert client.get_task_group(old.id)["name"] == old.name


def test_get_task_group_unknown(client) -> None:
    with pytest.raises(dfs.NotFoundError):
        client.get_task_group("no-such-group")


# -- analysis and corrections -----------------------------------------------------------------


def test_analyze_sets_the_states_of_one_group(sim, client) -> None:
    wo = client.create_work_order(unique_name())
    client.get_work_order(wo["id"])  # cached, made stale by the analysis
    before = sim.request_counts()
    answer = client.analyze(
        wo["id"],
        "releve-optique",
        image_url(releve_optique_quality=True, mesure_puissance=-30),
        metadata={"source": "test"},
    )
    assert delta(sim, before) == {"POST /v0.2/work-orders/{wo_id}/analyze/": 1}
    state = task_of(answer, "mesure_puissance")["state"]
    assert state["analyzed_value"] == -30
    assert state["corrected_value"] is None
    assert state["message"] == "Signal trop faible"
    assert state["is_conform"] is False
    assert task_of(answer, "jarretiere_connectee")["state"] is None  # another group

    read = client.get_work_order(wo["id"])
    assert read["latest_analysis_id"] == state["analysis_id"]
    assert task_of(read, "mesure_puissance")["state"] == state
    assert read["metadata"]["source"] == "test"


def test_analyze_argument_errors_send_nothing(sim, client) -> None:
    wo = client.create_work_order(unique_name())
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError):
        client.analyze(wo["id"], "releve-optique", "/local/file.jpg")
    with pytest.raises(dfs.ConfigurationError):
        client.analyze(wo["id"], "", image_url())
    assert delta(sim, before) == {}


class _Receiver(QuietHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.answer(200)


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    with local_http_server(_Receiver) as server:
        server.received = []  # type: ignore[attr-defined]
        yield server


def test_analyze_with_callback(sim, client, receiver) -> None:
    wo = client.create_work_order(unique_name())
    client.get_work_order(wo["id"])
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    analysis_id = client.analyze_with_callback(
        wo["id"], "releve-optique", image_url(releve_optique_quality=True), url
    )
    assert isinstance(analysis_id, str)
    assert uuid.UUID(analysis_id)
    # the analysis runs later: poll the work order (bounded, not a timed assertion)
    deadline = time.monotonic() + 15
    read = client.get_work_order(wo["id"])
    while read["latest_analysis_id"] != analysis_id and time.monotonic() < deadline:
        time.sleep(0.05)
        read = client.get_work_order(wo["id"])
    assert read["latest_analysis_id"] == analysis_id
    assert task_of(read, "releve_optique_quality")["state"]["analysis_id"] == analysis_id
    deadline = time.monotonic() + 15
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.received and receiver.received[0]["analysis_id"] == analysis_id


def test_correct_a_number_task(sim, client) -> None:
    wo = client.create_work_order(unique_name())
    analysed = client.analyze(
        wo["id"], "releve-optique", image_url(releve_optique_quality=True, mesure_puissance=-12)
    )
    task = task_of(analysed, "mesure_puissance")
    assert task["state"]["message"] == "Dans la plage"
    client.get_work_order(wo["id"])  # cached, made stale by the correction
    before = sim.request_counts()
    answer = client.correct(wo["id"], task["id"], -30)
    assert delta(sim, before) == {"PATCH /v0.2/work-orders/{wo_id}/tasks/{task_id}/correction/": 1}
    assert answer["id"] == task["id"]
    assert answer["state"]["analyzed_value"] == -12
    assert answer["state"]["corrected_value"] == -30
    assert answer["state"]["message"] == "Signal trop faible"
    assert answer["state"]["is_conform"] is False
    read = client.get_work_order(wo["id"])
    assert task_of(read, "mesure_puissance")["state"] == answer["state"]
    assert client.get_timeline(wo["id"])[-1]["type"] == "correction"


@pytest.mark.parametrize(
    ("image", "task_name", "sent", "stored", "message"),
    [
        (
            {"pm_ouvert_apres_quality": True, "jarretiere_connectee": False},
            "jarretiere_connectee",
            "TRUE",
            True,
            "Conforme",
        ),
        (
            {"pm_ouvert_apres_quality": True, "numero_serie": "AB12CD34"},
            "numero_serie",
            "",
            "",
            "Non lu",
        ),
    ],
    ids=["boolean-from-its-string-form", "text-emptied"],
)
def test_correct_a_task_stores_the_typed_value_and_its_verdict(
    client, image: dict[str, Any], task_name: str, sent: Any, stored: Any, message: str
) -> None:
    wo = client.create_work_order(unique_name())
    task = task_of(client.analyze(wo["id"], "pm-ouvert-apres", image_url(**image)), task_name)
    analysed = task["state"]["analyzed_value"]
    answer = client.correct(wo["id"], task["id"], sent)
    for state in (
        answer["state"],
        task_of(client.get_work_order(wo["id"], include_inputs=False), task_name)["state"],
    ):
        assert state["corrected_value"] == stored and type(state["corrected_value"]) is type(stored)
        assert state["analyzed_value"] == analysed
        assert state["message"] == message


def _open_files_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process holds open (Linux: /proc/self/fd)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_context_manager_closes_the_cache_file(sim, tmp_path) -> None:
    with dfs.Client(
        sim.base_url, api_key=sim.api_key, cache=tmp_path / "c", progress=False
    ) as client:
        assert client.list_task_groups()
        held = _open_files_under(tmp_path / "c")
        assert any(f.endswith("http.sqlite") for f in held), held  # the cache is open
    assert _open_files_under(tmp_path / "c") == []  # and closed on leaving the block


class _Pages(QuietHandler):
    """A list of 100 page-numbered pages whose page 2 is refused (400); records each page."""

    served: ClassVar[list[int]] = []  # reset by the test that serves it

    def do_GET(self) -> None:
        page = int(self.path.partition("page=")[2] or 1)
        self.served.append(page)
        if page == 2:
            self.answer(400, {"detail": "page 2 is refused"})
            return
        time.sleep(0.02)
        base = f"http://127.0.0.1:{self.server.server_address[1]}/v0.2/things/"
        self.answer(
            200,
            {
                "count": 2000,
                "next": f"{base}?page={page + 1}" if page < 100 else None,
                "previous": None,
                "results": [{"id": f"{page}-{i}"} for i in range(20)],
            },
        )


def test_a_list_that_fails_midway_stops_asking_for_pages() -> None:
    _Pages.served = []
    with (
        local_http_server(_Pages) as server,
        dfs.Client(
            f"http://127.0.0.1:{server.server_address[1]}/v0.2/",
            api_key="k",
            cache=None,
            progress=False,
            max_workers=4,
            retries=0,
        ) as client,
        pytest.raises(dfs.DFSError, match="page 2 is refused"),
    ):
        client.paginate("things/")
    # the first page, then at most a window of pages in flight: not the 99 others
    assert 2 in _Pages.served and len(_Pages.served) <= 1 + 4 + 4
