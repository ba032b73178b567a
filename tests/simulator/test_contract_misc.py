"""CONTRACT.md: auth, errors, trailing slashes, task groups, metadata, timeline, throttling."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from .helpers import (
    DATE_RE,
    EVENT_KEYS,
    EVENT_STATE_KEYS,
    EVENT_TYPES,
    GROUP_KEYS,
    GROUP_TASKS,
    TASK_KEYS,
    Api,
    analyze_body,
    assert_error,
    image_url,
    parse_date,
    task_of,
)

# every row of the endpoints table: (method, path template, body)
ENDPOINTS = [
    ("POST", "work-orders/", {"name": "x"}),
    ("GET", "work-orders/", None),
    ("GET", "work-orders/{wo}/", None),
    ("PUT", "work-orders/{wo}/", {"name": "x"}),
    ("PATCH", "work-orders/{wo}/", {"name": "x"}),
    ("DELETE", "work-orders/{wo}/", None),
    ("GET", "work-orders/{wo}/timeline/", None),
    ("PATCH", "work-orders/{wo}/metadata/", {"a": 1}),
    ("PUT", "work-orders/{wo}/metadata/", {"a": 1}),
    ("GET", "task-groups/", None),
    ("GET", "task-groups/{group}/", None),
    ("POST", "work-orders/{wo}/analyze/", "analyze"),
    ("POST", "work-orders/{wo}/analyze/callback/", "callback"),
    ("PATCH", "work-orders/{wo}/tasks/{task}/correction/", {"corrected_value": True}),
]
ENDPOINT_IDS = [f"{m} {p}" for m, p, _ in ENDPOINTS]


@pytest.fixture(scope="module")
def target(api: Api) -> dict[str, Any]:
    """A work order analysed once, for the auth tests (which must leave it as it is)."""
    wo = api.create(name="auth-target", metadata={"keep": "me"})
    return api.analyze(wo["id"], "pb-ouvert-apres", cables_ranges=False)


def fill(path: str, body: Any, wo: dict[str, Any]) -> tuple[str, Any]:
    path = path.format(
        wo=wo["id"],
        group="releve-optique",
        task=task_of(wo, "cables_ranges")["id"],
    )
    if body == "analyze":
        body = analyze_body("releve-optique", image_url())
    elif body == "callback":
        body = analyze_body("releve-optique", image_url(), callback_url="http://127.0.0.1:9/")
    return path, body


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token wrong-key"},
        {"Authorization": "Token"},
        {"Authorization": "Bearer demo-key"},
        {"Authorization": "demo-key"},
        {"Authorization": "Token demo-key extra"},
    ],
    ids=["none", "wrong-key", "no-key", "bearer", "bare-key", "extra"],
)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_every_endpoint_needs_a_valid_key(api: Api, target, method, path, body, headers):
    path, body = fill(path, body, target)
    r = requests.request(method, api.url(path), json=body, headers=headers, timeout=30)
    assert_error(r, 401)
    assert set(r.json()) == {"detail"}


def test_refused_requests_change_nothing(api: Api, target):
    before = api.retrieve(target["id"])
    events = api.timeline(target["id"])
    for method, path, body in ENDPOINTS:
        path, body = fill(path, body, target)
        r = requests.request(method, api.url(path), json=body, timeout=30)
        assert r.status_code == 401
    after = api.retrieve(target["id"])
    assert after == before
    assert api.timeline(target["id"]) == events


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "no-such-endpoint/"),
        ("GET", "work-orders/{missing}/"),
        ("DELETE", "work-orders/{missing}/"),
        ("GET", "task-groups/no-such-group/"),
        ("POST", "work-orders/{missing}/analyze/"),
        ("PATCH", "work-orders/{missing}/tasks/{missing}/correction/"),
        ("DELETE", "task-groups/"),  # a 405 with a key
        ("GET", "../other/"),
    ],
)
def test_auth_comes_before_everything(api: Api, method, path):
    url = api.url(path.format(missing=uuid.uuid4()))
    r = requests.request(method, url, data=b"{not json", timeout=30)
    assert_error(r, 401)
    r = requests.request(
        method, url, data=b"{not json", headers={"Authorization": "Token nope"}, timeout=30
    )
    assert_error(r, 401)


def test_with_a_key_an_unknown_path_is_404(api: Api):
    r = api.get("no-such-endpoint/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found."}


def test_every_endpoint_answers_with_a_valid_key(api: Api):
    wo = api.create(name="all-endpoints")
    wo = api.analyze(wo["id"], "pb-ouvert-apres", cables_ranges=False)
    expected = [201, 200, 200, 200, 200, None, 200, 200, 200, 200, 200, 200, 202, 200]
    delete_last = None
    for (method, path, body), status in zip(ENDPOINTS, expected, strict=True):
        if method == "DELETE":
            delete_last = fill(path, body, wo)[0]
            continue
        full, body = fill(path, body, wo)
        r = api.request(method, full, json=body)
        assert r.status_code == status, (method, path, r.text)
    assert delete_last is not None
    assert api.delete(delete_last).status_code == 204


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "work-orders/"),
        ("PUT", "work-orders/"),
        ("POST", "work-orders/{wo}/"),
        ("POST", "work-orders/{wo}/timeline/"),
        ("GET", "work-orders/{wo}/metadata/"),
        ("DELETE", "work-orders/{wo}/metadata/"),
        ("POST", "task-groups/"),
        ("DELETE", "task-groups/{group}/"),
        ("GET", "work-orders/{wo}/analyze/"),
        ("GET", "work-orders/{wo}/analyze/callback/"),
        ("GET", "work-orders/{wo}/tasks/{task}/correction/"),
        ("POST", "work-orders/{wo}/tasks/{task}/correction/"),
    ],
)
def test_a_method_not_allowed_is_405(api: Api, target, method, path):
    full, _ = fill(path, None, target)
    r = api.request(method, full, json={})
    assert_error(r, 405)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "work-orders/{missing}/"),
        ("GET", "work-orders/{missing}/timeline/"),
        ("PATCH", "work-orders/{missing}/metadata/"),
        ("PUT", "work-orders/{missing}/metadata/"),
        ("DELETE", "work-orders/{missing}/"),
        ("GET", "task-groups/{missing}/"),
        ("GET", "task-groups/no-such-group/"),
        ("PATCH", "work-orders/{wo}/tasks/{missing}/correction/"),
    ],
)
def test_unknown_work_order_task_or_group_is_404(api: Api, target, method, path):
    full = path.format(missing=uuid.uuid4(), wo=target["id"])
    r = api.request(method, full, json={"a": 1, "corrected_value": True})
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found."}


def test_invalid_bodies_are_400(api: Api, target):
    wo = f"work-orders/{target['id']}/"
    for method, path in [
        ("POST", "work-orders/"),
        ("PUT", wo),
        ("PATCH", wo),
        ("PATCH", wo + "metadata/"),
        ("PUT", wo + "metadata/"),
        ("POST", wo + "analyze/"),
    ]:
        for data in (b"{not json", b"[1, 2]", b'"text"', b"null"):
            r = api.request(method, path, data=data, headers={"Content-Type": "application/json"})
            assert_error(r, 400)


def test_throttled_is_429_with_retry_after(api: Api, contract_sim):
    saved = {"throttle_rate": contract_sim.config.throttle_rate}
    saved["retry_after"] = contract_sim.config.retry_after
    contract_sim.configure(throttle_rate=1.0, retry_after=0)
    try:
        r = api.get("work-orders/")
    finally:
        contract_sim.configure(throttle_rate=0.0)
        contract_sim.configure(**saved)
    assert_error(r, 429)
    assert r.headers["Retry-After"] == "0"
    assert api.get("work-orders/").status_code == 200


# -- paths -----------------------------------------------------------------------------------


def test_paths_without_a_trailing_slash_are_accepted(api: Api, target):
    wo = target["id"]
    assert api.get("work-orders").status_code == 200
    assert api.get("work-orders", params={"page_size": 2}).json()["results"]
    assert api.get(f"work-orders/{wo}").json()["id"] == wo
    assert api.get(f"work-orders/{wo}/timeline").status_code == 200
    assert api.get("task-groups").json()["count"] == 4
    assert api.get("task-groups/releve-optique").json()["name"] == "releve-optique"
    created = api.post("work-orders", json={"name": "no-slash"})
    assert created.status_code == 201
    new = created.json()["id"]
    assert api.patch(f"work-orders/{new}", json={"tags": ["a"]}).json()["tags"] == ["a"]
    assert api.put(f"work-orders/{new}/metadata", json={"m": 1}).json() == {"m": 1}
    r = api.post(f"work-orders/{new}/analyze", json=analyze_body("releve-optique", image_url()))
    assert r.status_code == 200
    task = task_of(r.json(), "releve_optique_quality")["id"]
    r = api.patch(f"work-orders/{new}/tasks/{task}/correction", json={"corrected_value": True})
    assert r.status_code == 200
    assert api.delete(f"work-orders/{new}").status_code == 204


def test_the_base_url_is_v0_2(api: Api, contract_sim):
    assert contract_sim.base_url.endswith("/v0.2/")
    assert requests.get(contract_sim.url + "/v0.2/task-groups/", timeout=30).status_code == 401


# -- task groups -----------------------------------------------------------------------------


def test_task_groups_list_the_current_app_version(api: Api, contract_sim):
    r = api.get("task-groups/")
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 4 and page["next"] is None and page["previous"] is None
    current = contract_sim.store.app.current
    assert [g["id"] for g in page["results"]] == [g.id for g in current.groups]
    assert [g["name"] for g in page["results"]] == list(GROUP_TASKS)
    for group in page["results"]:
        assert set(group) >= GROUP_KEYS
        assert isinstance(group["input_examples"], list)
        assert all(u.startswith("http") for u in group["input_examples"])
        assert [t["name"] for t in group["tasks"]] == GROUP_TASKS[group["name"]]
        for task in group["tasks"]:
            assert set(task) >= TASK_KEYS
            assert task["questionnaire_id"] == group["id"]
            assert "state" not in task


def test_task_groups_pagination(api: Api):
    results, count = api.walk("task-groups/", {"page_size": 3})
    assert count == 4 and len(results) == 4
    assert [g["name"] for g in results] == list(GROUP_TASKS)
    assert_error(api.get("task-groups/", params={"page": 3, "page_size": 3}), 404)
    assert_error(api.get("task-groups/", params={"page": "x"}), 400, "page")
    assert_error(api.get("task-groups/", params={"page_size": "0"}), 400, "page_size")


def test_a_task_group_by_id_or_name(api: Api):
    for group in api.get("task-groups/").json()["results"]:
        assert api.get(f"task-groups/{group['id']}/").json() == group
        assert api.get(f"task-groups/{group['name']}/").json() == group


def test_a_task_group_of_an_older_version_by_id(api: Api, contract_sim):
    old, current = contract_sim.store.app.versions[0], contract_sim.store.app.current
    assert old.id != current.id
    for group in old.groups:
        r = api.get(f"task-groups/{group.id}/")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == group.id
        assert body["name"] == group.name
        assert [t["id"] for t in body["tasks"]] == [t.id for t in group.tasks]
        assert all(t["questionnaire_id"] == group.id for t in body["tasks"])
        # same name, other id in the current version; the name gives the current one
        now = api.get(f"task-groups/{group.name}/").json()
        assert now["id"] == current.groups_by_name[group.name].id != group.id
    old_tasks = api.get(f"task-groups/{old.groups_by_name['pb-ouvert-apres'].id}/").json()
    assert "etiquette_lisible" not in [t["name"] for t in old_tasks["tasks"]]  # since version 2
    listed = {g["id"] for g in api.get("task-groups/").json()["results"]}
    assert listed.isdisjoint(g.id for g in old.groups)


def test_an_unknown_task_group_is_404(api: Api):
    assert api.get("task-groups/nope/").json() == {"detail": "Not found."}
    assert_error(api.get(f"task-groups/{uuid.uuid4()}/"), 404)


# -- metadata --------------------------------------------------------------------------------


def test_metadata_patch_merges_and_null_removes(api: Api):
    wo = api.create(name="meta-patch", metadata={"a": 1, "b": "two", "c": True})
    path = f"work-orders/{wo['id']}/metadata/"
    r = api.patch(path, json={"b": "deux", "d": 4.5, "a": None, "absent": None})
    assert r.status_code == 200, r.text
    assert r.json() == {"b": "deux", "c": True, "d": 4.5}
    assert api.retrieve(wo["id"])["metadata"] == {"b": "deux", "c": True, "d": 4.5}
    assert api.patch(path, json={}).json() == {"b": "deux", "c": True, "d": 4.5}


def test_metadata_put_replaces_and_drops_nulls(api: Api):
    wo = api.create(name="meta-put", metadata={"a": 1, "b": "two"})
    path = f"work-orders/{wo['id']}/metadata/"
    r = api.put(path, json={"x": "y", "z": None, "n": 0, "f": False})
    assert r.status_code == 200, r.text
    assert r.json() == {"x": "y", "n": 0, "f": False}
    assert api.retrieve(wo["id"])["metadata"] == {"x": "y", "n": 0, "f": False}
    assert api.put(path, json={}).json() == {}
    assert api.retrieve(wo["id"])["metadata"] == {}


@pytest.mark.parametrize("value", [[1], {"a": 1}, [], {}])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_metadata_values_must_be_scalars(api: Api, method, value):
    wo = api.create(name="meta-bad", metadata={"keep": 1})
    path = f"work-orders/{wo['id']}/metadata/"
    assert_error(api.request(method, path, json={"ok": "x", "bad": value}), 400)
    assert api.retrieve(wo["id"])["metadata"] == {"keep": 1}
    assert_error(api.request(method, path, json=[["a", 1]]), 400)


def test_metadata_writes_add_a_metadata_update_event(api: Api):
    wo = api.create(name="meta-events")
    path = f"work-orders/{wo['id']}/metadata/"
    api.patch(path, json={"a": 1})
    api.put(path, json={"b": 2})
    events = api.timeline(wo["id"])
    assert [e["type"] for e in events] == ["created", "metadata_update", "metadata_update"]
    for event in events[1:]:
        assert event["states"] == []
        assert event["analysis_id"] is None and event["task_group_name"] is None
    updated = api.retrieve(wo["id"])
    assert parse_date(updated["update_date"]) > parse_date(wo["update_date"])
    assert updated["update_date"] == events[-1]["date"]


# -- timeline --------------------------------------------------------------------------------


def test_the_timeline_of_a_new_work_order(api: Api, new_wo):
    r = api.get(f"work-orders/{new_wo['id']}/timeline/")
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 1
    (event,) = page["results"]
    assert set(event) == EVENT_KEYS
    assert event["type"] == "created"
    assert event["date"] == new_wo["create_date"]
    assert event["states"] == [] and event["analysis_id"] is None
    assert event["task_group_name"] is None


def test_the_timeline_records_every_write_oldest_first(api: Api, new_wo):
    wo_id = new_wo["id"]
    wo = api.analyze(wo_id, "releve-optique", mesure_puissance=-30)
    task_id = task_of(wo, "mesure_puissance")["id"]
    assert api.correct(wo_id, task_id, -12.5).status_code == 200
    assert api.patch(f"work-orders/{wo_id}/metadata/", json={"m": 1}).status_code == 200
    assert api.patch(f"work-orders/{wo_id}/", json={"tags": ["t"]}).status_code == 200
    assert api.put(f"work-orders/{wo_id}/", json={"name": "renamed"}).status_code == 200
    events = api.timeline(wo_id)
    types = [e["type"] for e in events]
    assert types == ["created", "analysis", "correction", "metadata_update", "updated", "updated"]
    dates = [parse_date(e["date"]) for e in events]
    assert dates == sorted(dates)
    assert len({e["id"] for e in events}) == len(events)
    for event in events:
        assert set(event) == EVENT_KEYS
        assert event["type"] in EVENT_TYPES
        assert DATE_RE.match(event["date"])
        for s in event["states"]:
            assert set(s) == EVENT_STATE_KEYS
    assert events[1]["analysis_id"] == wo["latest_analysis_id"]
    assert events[1]["task_group_name"] == "releve-optique"
    assert events[4]["states"] == [] and events[5]["states"] == []
    assert events[4]["task_group_name"] is None and events[4]["analysis_id"] is None


def test_timeline_pagination(api: Api, new_wo):
    wo_id = new_wo["id"]
    for i in range(6):
        api.patch(f"work-orders/{wo_id}/metadata/", json={"i": i})
    everything = api.timeline(wo_id)
    assert len(everything) == 7
    results, count = api.walk(f"work-orders/{wo_id}/timeline/", {"page_size": 2})
    assert count == 7 and results == everything
    page = api.get(f"work-orders/{wo_id}/timeline/", params={"page": 4, "page_size": 2}).json()
    assert page["results"] == everything[6:] and page["next"] is None
    assert page["previous"] is not None
    path = f"work-orders/{wo_id}/timeline/"
    assert_error(api.get(path, params={"page": 5, "page_size": 2}), 404)
    assert_error(api.get(path, params={"page": "0"}), 400, "page")
    assert_error(api.get(path, params={"page_size": "x"}), 400, "page_size")
    assert_error(api.get(f"work-orders/{uuid.uuid4()}/timeline/"), 404)


def test_timeline_users_of_generated_work_orders(api: Api):
    reviewed, _ = api.walk("work-orders/", {"reviewed": "true", "page_size": 1000})
    engineers = [wo for wo in reviewed if wo["field_engineer_email"]]
    assert engineers
    reviewers = set()
    for wo in engineers:
        events = api.timeline(wo["id"])
        dates = [parse_date(e["date"]) for e in events]
        assert dates == sorted(dates), wo["id"]
        assert events[0]["type"] == "created"
        analyses = [e for e in events if e["type"] == "analysis"]
        assert analyses
        for event in analyses:  # analyses from the field: the field engineer
            assert event["user"] == wo["field_engineer_email"]
            assert event["analysis_id"] and event["task_group_name"] in GROUP_TASKS
        (review,) = [e for e in events if e["type"] == "review"]
        assert review["user"] and "@" in review["user"]  # the reviewer
        assert review["user"] != wo["field_engineer_email"]
        assert review["date"] == wo["review_date"]
        reviewers.add(review["user"])
        for event in events:
            if event["type"] == "correction":
                assert event["analysis_id"] is None
                assert len(event["states"]) == 1
                assert event["task_group_name"] in GROUP_TASKS
    assert reviewers
