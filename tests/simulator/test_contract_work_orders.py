"""CONTRACT.md, work orders: create, retrieve, PUT, PATCH, DELETE, types, object shapes, dates."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from dfs_analytics.simulator import SeedSettings, generate
from dfs_analytics.simulator.store import WorkOrder

from .helpers import (
    DATE_RE,
    GROUP_KEYS,
    GROUP_TASKS,
    RULE_KEYS,
    STATE_KEYS,
    TASK_KEYS,
    TYPE_GROUPS,
    UUID_RE,
    WO_TASK_KEYS,
    WORK_ORDER_KEYS,
    Api,
    assert_error,
    parse_date,
    state_of,
    task_of,
)

ALL_TASKS = [t for g in GROUP_TASKS.values() for t in g]


def unique_name() -> str:
    return "wo-" + uuid.uuid4().hex[:16]


# -- create ----------------------------------------------------------------------------------


def test_create_answers_201_with_the_work_order(api: Api, contract_sim):
    name = unique_name()
    body = {
        "name": name,
        "metadata": {"region": "north", "priority": 2, "urgent": True, "ratio": 0.5},
        "tags": ["b2b", "pilot"],
        "types": ["raccordement"],
        "field_engineer_email": "jane.doe@example.com",
    }
    r = api.post("work-orders/", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/json")
    wo = r.json()
    assert set(wo) >= WORK_ORDER_KEYS
    assert UUID_RE.match(wo["id"])
    assert wo["name"] == name
    assert wo["metadata"] == body["metadata"]
    assert wo["tags"] == ["b2b", "pilot"]
    assert wo["types"] == ["raccordement"]
    assert wo["field_engineer_email"] == "jane.doe@example.com"
    assert wo["site_id"] == contract_sim.store.site_id
    assert wo["app_version_id"] == contract_sim.store.app.current.id
    assert wo["review_date"] is None
    assert wo["first_analysis_id"] is None and wo["latest_analysis_id"] is None
    assert wo["progress_score"] == 0
    assert DATE_RE.match(wo["create_date"]) and DATE_RE.match(wo["update_date"])
    assert wo["create_date"] == wo["update_date"]
    assert [t["name"] for t in wo["tasks"]] == ALL_TASKS
    assert all(t["state"] is None for t in wo["tasks"])
    # it is stored: retrieve gives the same work order
    again = api.retrieve(wo["id"])
    assert {k: again[k] for k in WORK_ORDER_KEYS} == {k: wo[k] for k in WORK_ORDER_KEYS}


def test_create_needs_only_a_name(api: Api):
    wo = api.create(name=unique_name())
    assert wo["metadata"] == {}
    assert wo["tags"] == []
    assert wo["types"] == []
    assert wo["field_engineer_email"] is None


def test_create_without_a_name_is_400_naming_it(api: Api):
    assert_error(api.post("work-orders/", json={"tags": ["x"]}), 400, "name")
    assert_error(api.post("work-orders/", json={"name": ""}), 400, "name")


def test_create_name_pattern(api: Api):
    assert api.post("work-orders/", json={"name": "A" * 128}).status_code == 201
    assert api.post("work-orders/", json={"name": "Az09_-x"}).status_code == 201
    for bad in ["A" * 129, "has space", "slash/name", "accentué", "dot.name", 12]:
        assert_error(api.post("work-orders/", json={"name": bad}), 400, "name")


def test_create_name_with_a_trailing_newline_is_400(api: Api):
    # ^[A-Za-z0-9_-]{1,128}$ does not match "abc\n" (JSON-schema / ECMA-262 regex semantics)
    assert_error(api.post("work-orders/", json={"name": "abc\n"}), 400, "name")


def test_names_are_not_unique(api: Api):
    name = unique_name()
    a, b = api.create(name=name), api.create(name=name)
    assert a["id"] != b["id"] and a["name"] == b["name"] == name


def test_create_types_alias_work_order_types(api: Api):
    wo = api.create(name=unique_name(), work_order_types=["maintenance"])
    assert wo["types"] == ["maintenance"]
    assert {t["task_group_name"] for t in wo["tasks"]} == set(TYPE_GROUPS["maintenance"])


def test_create_unknown_type_is_400(api: Api):
    assert_error(api.post("work-orders/", json={"name": "x", "types": ["nope"]}), 400, "types")
    r = api.post("work-orders/", json={"name": "x", "work_order_types": ["nope"]})
    assert_error(r, 400, "work_order_types")
    assert_error(api.post("work-orders/", json={"name": "x", "types": "maintenance"}), 400, "types")


def test_types_select_the_task_list(api: Api):
    none = api.create(name=unique_name())
    assert [t["name"] for t in none["tasks"]] == ALL_TASKS  # none = every task active
    maint = api.create(name=unique_name(), types=["maintenance"])
    expected = [t for g in TYPE_GROUPS["maintenance"] for t in GROUP_TASKS[g]]
    assert [t["name"] for t in maint["tasks"]] == expected
    assert [g["name"] for g in maint["task_groups"]] == TYPE_GROUPS["maintenance"]
    both = api.create(name=unique_name(), types=["maintenance", "raccordement"])
    assert [t["name"] for t in both["tasks"]] == ALL_TASKS
    # changing the types changes the task list
    r = api.patch(f"work-orders/{maint['id']}/", json={"types": ["raccordement"]})
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["tasks"]] == ALL_TASKS
    r = api.patch(f"work-orders/{maint['id']}/", json={"types": ["maintenance"]})
    assert [t["name"] for t in r.json()["tasks"]] == expected


def test_create_rejects_bad_bodies(api: Api):
    assert_error(api.post("work-orders/", json=["name"]), 400)
    r = api.post("work-orders/", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert_error(api.post("work-orders/", json={"name": "x", "tags": "b2b"}), 400, "tags")
    r = api.post("work-orders/", json={"name": "x", "metadata": {"a": [1]}})
    assert_error(r, 400, "metadata")


# -- object shapes ---------------------------------------------------------------------------


def test_retrieve_object_shapes(api: Api, new_wo):
    api.analyze(new_wo["id"], "pb-ouvert-apres", cables_ranges=True, nombre_connecteurs=4)
    wo = api.retrieve(new_wo["id"])
    assert WORK_ORDER_KEYS | {"inputs", "task_groups"} <= set(wo)
    assert isinstance(wo["progress_score"], int) and 0 <= wo["progress_score"] <= 100
    for task in wo["tasks"]:
        assert set(task) >= WO_TASK_KEYS
        assert UUID_RE.match(task["id"])
        assert task["questionnaire_id"] == task["task_group_id"]
        assert task["outcome_type"] in ("Boolean", "Text", "Number")
        assert task["outcome_validation"] is None or isinstance(task["outcome_validation"], list)
        for rule in task["outcome_validation"] or ():
            assert set(rule) >= RULE_KEYS
            assert isinstance(rule["schema"], dict)
            assert isinstance(rule["not_analyzed"], bool)
            assert isinstance(rule["is_conformity_validated"], bool)
        if task["state"] is not None:
            assert set(task["state"]) >= STATE_KEYS
            assert DATE_RE.match(task["state"]["update_date"])
    analysed = {t["name"] for t in wo["tasks"] if t["state"] is not None}
    assert analysed == set(GROUP_TASKS["pb-ouvert-apres"])
    # task groups carry the same tasks (with states) as the flat list
    assert [g["name"] for g in wo["task_groups"]] == list(GROUP_TASKS)
    flat = {t["id"]: t for t in wo["tasks"]}
    for group in wo["task_groups"]:
        assert set(group) >= GROUP_KEYS
        for task in group["tasks"]:
            assert task["questionnaire_id"] == group["id"]
            assert task == flat[task["id"]]


def test_task_ids_match_the_task_groups_endpoint(api: Api, new_wo):
    groups = {g["name"]: g for g in api.get("task-groups/").json()["results"]}
    for task in new_wo["tasks"]:
        group = groups[task["task_group_name"]]
        assert task["task_group_id"] == group["id"]
        public = next(t for t in group["tasks"] if t["id"] == task["id"])
        assert {k: task[k] for k in TASK_KEYS} == public


# -- retrieve --------------------------------------------------------------------------------


def test_retrieve_includes_inputs_by_default(api: Api, new_wo):
    api.analyze(new_wo["id"], "releve-optique", mesure_puissance=-12.5)
    wo = api.retrieve(new_wo["id"])
    assert len(wo["inputs"]) == 1
    assert api.retrieve(new_wo["id"], include_inputs="true")["inputs"] == wo["inputs"]
    without = api.retrieve(new_wo["id"], include_inputs="false")
    assert "inputs" not in without
    assert without["tasks"] == wo["tasks"]


def test_retrieve_include_inputs_must_be_a_boolean(api: Api, new_wo):
    r = api.get(f"work-orders/{new_wo['id']}/", params={"include_inputs": "maybe"})
    assert_error(r, 400, "include_inputs")


def test_retrieve_unknown_work_order_is_404(api: Api):
    body = assert_error(api.get(f"work-orders/{uuid.uuid4()}/"), 404)
    assert body == {"detail": "Not found."}
    assert_error(api.get("work-orders/not-a-uuid/"), 404)


# -- PUT, PATCH ------------------------------------------------------------------------------


def create_fully_set(api: Api) -> dict[str, Any]:
    """A new work order with every optional writable key set (metadata, tags, types, email)."""
    return api.create(
        name=unique_name(),
        metadata={"a": 1},
        tags=["t1"],
        types=["maintenance"],
        field_engineer_email="someone@example.com",
    )


def test_put_replaces_and_resets_omitted_optional_keys(api: Api):
    wo = create_fully_set(api)
    new_name = unique_name()
    r = api.put(f"work-orders/{wo['id']}/", json={"name": new_name})
    assert r.status_code == 200, r.text
    put = r.json()
    assert put["id"] == wo["id"]
    assert put["name"] == new_name
    assert put["metadata"] == {}
    assert put["tags"] == []
    assert put["types"] == []
    assert put["field_engineer_email"] is None
    assert [t["name"] for t in put["tasks"]] == ALL_TASKS
    assert put["create_date"] == wo["create_date"]
    assert parse_date(put["update_date"]) > parse_date(wo["update_date"])
    assert api.retrieve(wo["id"])["name"] == new_name


def test_put_sets_the_whole_writable_set(api: Api, new_wo):
    body = {
        "name": unique_name(),
        "metadata": {"k": "v"},
        "tags": ["x", "y"],
        "types": ["maintenance"],
        "field_engineer_email": "put@example.com",
    }
    put = api.put(f"work-orders/{new_wo['id']}/", json=body).json()
    assert {k: put[k] for k in body} == body


def test_put_needs_a_name(api: Api, new_wo):
    assert_error(api.put(f"work-orders/{new_wo['id']}/", json={"tags": ["a"]}), 400, "name")
    assert api.retrieve(new_wo["id"])["name"] == new_wo["name"]


def test_patch_is_partial(api: Api):
    wo = create_fully_set(api)
    r = api.patch(f"work-orders/{wo['id']}/", json={"tags": ["t2", "t3"]})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["tags"] == ["t2", "t3"]
    for key in ("name", "metadata", "types", "field_engineer_email", "create_date"):
        assert patched[key] == wo[key], key
    assert parse_date(patched["update_date"]) > parse_date(wo["update_date"])
    r = api.patch(
        f"work-orders/{wo['id']}/", json={"name": "renamed", "field_engineer_email": None}
    )
    patched = r.json()
    assert patched["name"] == "renamed"
    assert patched["field_engineer_email"] is None
    assert patched["tags"] == ["t2", "t3"] and patched["metadata"] == {"a": 1}
    # an empty PATCH changes nothing writable
    same = api.patch(f"work-orders/{wo['id']}/", json={}).json()
    assert {k: same[k] for k in ("name", "metadata", "tags", "types")} == {
        k: patched[k] for k in ("name", "metadata", "tags", "types")
    }


def test_patch_validates_what_it_gets(api: Api, new_wo):
    path = f"work-orders/{new_wo['id']}/"
    assert_error(api.patch(path, json={"name": "bad name"}), 400, "name")
    assert_error(api.patch(path, json={"types": ["nope"]}), 400, "types")
    assert_error(api.patch(path, json={"field_engineer_email": "not-an-email"}), 400)
    assert api.retrieve(new_wo["id"])["name"] == new_wo["name"]


def test_put_and_patch_unknown_work_order_is_404(api: Api):
    missing = f"work-orders/{uuid.uuid4()}/"
    assert_error(api.put(missing, json={"name": "x"}), 404)
    assert_error(api.patch(missing, json={"name": "x"}), 404)


# -- DELETE ----------------------------------------------------------------------------------


def test_delete_then_404(api: Api):
    wo = api.create(name=unique_name())
    path = f"work-orders/{wo['id']}/"
    r = api.delete(path)
    assert r.status_code == 204
    assert r.content == b""
    assert api.get(path).json() == {"detail": "Not found."}
    assert api.get(path).status_code == 404
    assert_error(api.delete(path), 404)
    assert_error(api.get(path + "timeline/"), 404)
    assert_error(api.patch(path + "metadata/", json={"a": 1}), 404)
    assert_error(api.patch(path, json={"name": "x"}), 404)
    listed = api.get("work-orders/", params={"name": wo["name"]}).json()
    assert listed["count"] == 0


# -- progress_score --------------------------------------------------------------------------


def test_progress_score_is_rounded_half_up(api: Api, new_wo):
    # no types: 8 conformity_status tasks in the current app version
    counted = [t for t in new_wo["tasks"] if t["conformity_status"]]
    assert len(counted) == 8
    wo_id = new_wo["id"]
    wo = api.analyze(wo_id, "pb-ferme-avant", pb_etiquette_presente=True, photo_environnement=True)
    assert wo["progress_score"] == 13  # 12.5 -> 13 (not 12, as banker's rounding would say)
    wo = api.analyze(
        wo_id,
        "pm-ouvert-apres",
        jarretiere_connectee=True,
        bouchon_retire=True,
        numero_serie="PM48213A77",
    )
    assert wo["progress_score"] == 38  # 3/8 = 37.5
    wo = api.analyze(wo_id, "releve-optique", mesure_puissance=-30)
    assert wo["progress_score"] == 38  # the measure is not conform
    wo = api.analyze(
        wo_id,
        "pb-ouvert-apres",
        cables_ranges=True,
        nombre_connecteurs=14,
        couleur_fibre="gris",
        etiquette_lisible=False,
    )
    assert wo["progress_score"] == 50  # 4/8
    task_id = task_of(wo, "nombre_connecteurs")["id"]
    r = api.correct(wo_id, task_id, 4)
    assert r.status_code == 200, r.text
    wo = api.retrieve(wo_id)
    assert wo["progress_score"] == 63  # 5/8 = 62.5 -> 63 (banker's rounding: 62)
    assert (
        api.get(f"work-orders/{wo_id}/", params={"include_inputs": "false"}).json()[
            "progress_score"
        ]
        == 63
    )


def test_progress_score_counts_only_conformity_status_tasks(api: Api):
    wo = api.create(name=unique_name(), types=["maintenance"])
    # maintenance: jarretiere_connectee, bouchon_retire, mesure_puissance count
    wo = api.analyze(
        wo["id"],
        "pm-ouvert-apres",
        jarretiere_connectee=True,
        bouchon_retire=True,
        numero_serie="PM48213A77",
    )
    # conform, but their conformity_status is false: they do not count
    assert state_of(wo, "numero_serie")["is_conform"] is True
    assert state_of(wo, "pm_ouvert_apres_quality")["is_conform"] is True
    assert wo["progress_score"] == 67  # 2/3 = 66.67 (counting them: 4/5 = 80)


def test_progress_score_follows_a_change_of_types(api: Api, new_wo):
    wo = api.analyze(new_wo["id"], "releve-optique", mesure_puissance=-12.5)
    assert wo["progress_score"] == 13  # 1/8
    r = api.patch(f"work-orders/{wo['id']}/", json={"types": ["maintenance"]})
    assert r.json()["progress_score"] == 33  # 1/3
    listed = api.get("work-orders/", params={"name": wo["name"]}).json()["results"]
    assert [w["progress_score"] for w in listed] == [33]
    r = api.put(f"work-orders/{wo['id']}/", json={"name": wo["name"]})
    assert r.json()["progress_score"] == 13


# -- dates -----------------------------------------------------------------------------------


def test_dates_end_with_z_and_omit_a_zero_fraction(dfs_simulator_factory):
    store = generate(SeedSettings.defaults(work_orders=3, seed=3))
    whole = WorkOrder(
        id=str(uuid.uuid4()),
        name="whole-second",
        site_id=store.site_id,
        app_version=store.app.current,
        create_date=datetime(2026, 3, 5, 8, 52, 30, tzinfo=timezone.utc),
    )
    fraction = WorkOrder(
        id=str(uuid.uuid4()),
        name="fraction",
        site_id=store.site_id,
        app_version=store.app.current,
        create_date=datetime(2026, 3, 5, 8, 52, 30, 110425, tzinfo=timezone.utc),
    )
    store.add(whole)
    store.add(fraction)
    sim = dfs_simulator_factory(store=store)
    api = Api(sim)
    assert api.retrieve(whole.id)["create_date"] == "2026-03-05T08:52:30Z"
    assert api.retrieve(fraction.id)["create_date"] == "2026-03-05T08:52:30.110425Z"
    for wo in api.walk("work-orders/")[0]:
        for key in ("create_date", "update_date", "review_date"):
            assert wo[key] is None or DATE_RE.match(wo[key]), wo[key]
