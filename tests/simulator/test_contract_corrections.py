"""CONTRACT.md, corrections: PATCH work-orders/{id}/tasks/{task_id}/correction/."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .helpers import STATE_KEYS, Api, assert_error, parse_date, state_of, task_of

# the AI's values, per task group, of the work orders these tests correct
AI_VALUES = {
    "pb-ferme-avant": {"pb_etiquette_presente": False, "photo_environnement": True},
    "pb-ouvert-apres": {
        "cables_ranges": False,
        "nombre_connecteurs": 14,
        "couleur_fibre": "gris",
        "etiquette_lisible": True,
    },
    "pm-ouvert-apres": {
        "jarretiere_connectee": False,
        "bouchon_retire": True,
        "numero_serie": "PM11408C55",
    },
    "releve-optique": {"mesure_puissance": -30},
}


def analysed_work_order(api: Api, name: str, **values: Any) -> dict[str, Any]:
    """A new work order with every task group analysed once: :data:`AI_VALUES`, except the
    task values given here. Returns the work order after the last analysis."""
    wo = api.create(name=name)
    for group, defaults in AI_VALUES.items():
        wo = api.analyze(wo["id"], group, **{k: values.get(k, v) for k, v in defaults.items()})
    return wo


@pytest.fixture(scope="module")
def analysed(api: Api) -> dict[str, Any]:
    """A work order with every task group analysed once (read-only use: 400 cases)."""
    return analysed_work_order(
        api,
        "corrections-400",
        pb_etiquette_presente=True,
        jarretiere_connectee=True,
        numero_serie="PM48213A77",
        mesure_puissance=-12.5,
    )


def fresh(api: Api) -> dict[str, Any]:
    """A new work order with every task group analysed (for corrections that are accepted)."""
    return analysed_work_order(api, "corrections-" + uuid.uuid4().hex[:8])


def correct(api: Api, wo: dict[str, Any], name: str, value: Any):
    return api.correct(wo["id"], task_of(wo, name)["id"], value)


# -- accepted corrections --------------------------------------------------------------------


def test_a_correction_answers_the_task_id_and_its_new_state(api: Api):
    wo = fresh(api)
    before = state_of(wo, "cables_ranges")
    task_id = task_of(wo, "cables_ranges")["id"]
    r = api.correct(wo["id"], task_id, True)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"id", "state"}
    assert answer["id"] == task_id
    state = answer["state"]
    assert set(state) == STATE_KEYS
    assert state["analyzed_value"] is False
    assert state["corrected_value"] is True
    assert (state["message"], state["is_conform"]) == ("Conforme", True)
    assert state["analysis_id"] == before["analysis_id"]
    assert parse_date(state["update_date"]) > parse_date(before["update_date"])
    after = api.retrieve(wo["id"])
    assert state_of(after, "cables_ranges") == state
    assert after["progress_score"] == wo["progress_score"] + 13  # one more of 8
    assert parse_date(after["update_date"]) > parse_date(wo["update_date"])
    assert after["latest_analysis_id"] == wo["latest_analysis_id"]


def test_a_correction_adds_one_correction_event(api: Api):
    wo = fresh(api)
    before = len(api.timeline(wo["id"]))
    r = correct(api, wo, "nombre_connecteurs", 8)
    assert r.status_code == 200, r.text
    events = api.timeline(wo["id"])
    assert len(events) == before + 1
    event = events[-1]
    assert event["type"] == "correction"
    assert event["analysis_id"] is None
    assert event["task_group_name"] == "pb-ouvert-apres"
    assert event["user"] is None
    (s,) = event["states"]
    assert s["task_id"] == task_of(wo, "nombre_connecteurs")["id"]
    assert s["task_name"] == "nombre_connecteurs"
    assert (s["analyzed_value"], s["corrected_value"]) == (14, 8)
    assert (s["message"], s["is_conform"]) == ("Conforme", True)


def test_a_repeated_correction_is_200_and_adds_an_event_each_time(api: Api):
    wo = fresh(api)
    task = task_of(wo, "couleur_fibre")
    start = len(api.timeline(wo["id"]))
    states = []
    for _ in range(3):
        r = api.correct(wo["id"], task["id"], "bleu")
        assert r.status_code == 200, r.text
        states.append(r.json()["state"])
    assert all(s["corrected_value"] == "bleu" and s["analyzed_value"] == "gris" for s in states)
    events = api.timeline(wo["id"])[start:]
    assert [e["type"] for e in events] == ["correction"] * 3
    for event in events:
        assert event["analysis_id"] is None
        assert event["task_group_name"] == "pb-ouvert-apres"
        assert [s["task_name"] for s in event["states"]] == ["couleur_fibre"]
        assert event["states"][0]["corrected_value"] == "bleu"


def test_a_correction_to_the_analysed_value_is_accepted(api: Api):
    wo = fresh(api)
    r = correct(api, wo, "mesure_puissance", -30)
    assert r.status_code == 200, r.text
    state = r.json()["state"]
    assert state["analyzed_value"] == state["corrected_value"] == -30
    assert (state["message"], state["is_conform"]) == ("Signal trop faible", False)
    assert api.timeline(wo["id"])[-1]["type"] == "correction"


def test_a_correction_can_make_a_task_not_conform(api: Api):
    wo = fresh(api)
    r = correct(api, wo, "etiquette_lisible", False)
    assert r.status_code == 200, r.text
    state = r.json()["state"]
    assert (state["analyzed_value"], state["corrected_value"]) == (True, False)
    assert (state["message"], state["is_conform"]) == ("Non-conforme", False)
    assert wo["progress_score"] == 25  # 2/8
    assert api.retrieve(wo["id"])["progress_score"] == 13  # 1/8 = 12.5


@pytest.mark.parametrize(
    ("task", "value", "expected"),
    [
        ("cables_ranges", True, True),
        ("cables_ranges", "true", True),
        ("cables_ranges", "TRUE", True),
        ("cables_ranges", "True", True),
        ("cables_ranges", "False", False),
        ("cables_ranges", "fAlSe", False),
        ("nombre_connecteurs", 4, 4),
        ("nombre_connecteurs", 4.0, 4),
        ("nombre_connecteurs", "4", 4),
        ("nombre_connecteurs", "13", 13),
        ("mesure_puissance", "-12.5", -12.5),
        ("mesure_puissance", -17.8, -17.8),
        ("mesure_puissance", "-6", -6),
        ("couleur_fibre", "vert", "vert"),
        ("couleur_fibre", "", ""),  # the "Non lisible" rule
        ("numero_serie", "AB12CD34", "AB12CD34"),
        ("numero_serie", "", ""),
        ("photo_environnement", False, False),
        ("photo_environnement", "TRUE", True),
    ],
)
def test_accepted_value_forms(api: Api, task, value, expected):
    wo = fresh(api)
    r = correct(api, wo, task, value)
    assert r.status_code == 200, r.text
    got = r.json()["state"]["corrected_value"]
    assert got == expected
    if isinstance(expected, bool):
        assert isinstance(got, bool)
    elif isinstance(expected, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool)
    else:
        assert isinstance(got, str)


def test_a_task_without_rules_takes_any_value_of_its_type(api: Api):
    wo = fresh(api)
    r = correct(api, wo, "photo_environnement", False)
    assert r.status_code == 200, r.text
    state = r.json()["state"]
    assert state["corrected_value"] is False
    assert state["message"] is None and state["is_conform"] is None  # no rule matches


# -- refused corrections ---------------------------------------------------------------------


def test_a_null_correction_is_400(api: Api, analysed):
    assert_error(correct(api, analysed, "cables_ranges", None), 400, "corrected_value")
    assert_error(correct(api, analysed, "couleur_fibre", None), 400, "corrected_value")


def test_a_missing_corrected_value_is_400(api: Api, analysed):
    task_id = task_of(analysed, "cables_ranges")["id"]
    path = f"work-orders/{analysed['id']}/tasks/{task_id}/correction/"
    assert_error(api.patch(path, json={}), 400, "corrected_value")
    assert_error(api.patch(path, json={"value": True}), 400, "corrected_value")
    assert_error(api.patch(path, json=[True]), 400)
    assert_error(api.patch(path, data=b"nope", headers={"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("value", [0, 1, "0", "1", "yes", "", "t", 1.0, [True], {"v": True}])
def test_a_boolean_task_refuses_non_booleans(api: Api, analysed, value):
    assert_error(correct(api, analysed, "cables_ranges", value), 400, "corrected_value")


@pytest.mark.parametrize("value", [True, False, "abc", "", "4 connecteurs", [4], {"n": 4}])
def test_a_number_task_refuses_non_numbers(api: Api, analysed, value):
    assert_error(correct(api, analysed, "nombre_connecteurs", value), 400, "corrected_value")


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_number_task_refuses_non_finite_strings(api: Api, analysed, value):
    assert_error(correct(api, analysed, "mesure_puissance", value), 400, "corrected_value")


def test_a_number_task_refuses_python_only_numeric_strings(api: Api):
    # "1_2" is not a numeric string (JSON, JavaScript or DRF); Python's float() accepts it
    wo = fresh(api)
    assert_error(correct(api, wo, "nombre_connecteurs", "1_2"), 400, "corrected_value")


@pytest.mark.parametrize("value", [5, 0, True, False, 1.5, ["bleu"], {"c": "bleu"}])
def test_a_text_task_takes_strings_only(api: Api, analysed, value):
    assert_error(correct(api, analysed, "couleur_fibre", value), 400, "corrected_value")


@pytest.mark.parametrize(
    ("task", "value"),
    [
        ("bouchon_retire", False),  # one rule only: true -> OK
        ("bouchon_retire", "false"),
        ("nombre_connecteurs", -1),
        ("nombre_connecteurs", 12.5),
        ("nombre_connecteurs", "2.5"),
        ("couleur_fibre", "violet"),
        ("couleur_fibre", "Bleu"),
        ("numero_serie", "pm48213a77"),
        ("numero_serie", "PM4821"),
    ],
)
def test_a_value_matching_no_rule_is_400(api: Api, analysed, task, value):
    before = state_of(api.retrieve(analysed["id"]), task)
    assert_error(correct(api, analysed, task, value), 400, "corrected_value")
    assert state_of(api.retrieve(analysed["id"]), task) == before


def test_a_pattern_rule_does_not_match_a_trailing_newline(api: Api):
    # the "serie" rule is {"type": "string", "pattern": "^[A-Z0-9]{8,12}$"}: in JSON-schema
    # (ECMA-262) "$" is the end of the string, so "PM48213A77\n" matches no rule
    wo = fresh(api)
    r = correct(api, wo, "numero_serie", "PM48213A77\n")
    assert_error(r, 400, "corrected_value")


def test_a_never_analysed_task_is_400(api: Api, new_wo):
    api.analyze(new_wo["id"], "releve-optique", mesure_puissance=-12.5)
    wo = api.retrieve(new_wo["id"])
    r = correct(api, wo, "cables_ranges", True)
    assert_error(r, 400)
    assert state_of(api.retrieve(new_wo["id"]), "cables_ranges") is None
    # a bad photo leaves job tasks unanalysed: they cannot be corrected either
    wo = api.analyze(new_wo["id"], "pm-ouvert-apres", good_photo=False)
    assert_error(correct(api, wo, "jarretiere_connectee", True), 400)
    # ... but the photo check itself can
    r = correct(api, wo, "pm_ouvert_apres_quality", True)
    assert r.status_code == 200, r.text


def test_refused_corrections_add_no_event(api: Api, analysed):
    before = len(api.timeline(analysed["id"]))
    correct(api, analysed, "cables_ranges", None)
    correct(api, analysed, "cables_ranges", 1)
    correct(api, analysed, "bouchon_retire", False)
    assert len(api.timeline(analysed["id"])) == before


def test_unknown_task_or_work_order_is_404(api: Api, analysed, contract_sim):
    task_id = task_of(analysed, "cables_ranges")["id"]
    assert_error(api.correct(str(uuid.uuid4()), task_id, True), 404)
    r = api.correct(analysed["id"], str(uuid.uuid4()), True)
    assert_error(r, 404)
    assert r.json() == {"detail": "Not found."}
    # the id of the same task in the other app version is not a task of this work order
    old = contract_sim.store.app.versions[0].tasks_by_name["cables_ranges"]
    assert old.id != task_id
    assert_error(api.correct(analysed["id"], old.id, True), 404)


def test_a_task_its_types_exclude_is_404(api: Api, analysed):
    wo = api.create(name="maint-correction", types=["maintenance"])
    task_id = task_of(analysed, "cables_ranges")["id"]  # pb-ouvert-apres: not in maintenance
    assert_error(api.correct(wo["id"], task_id, True), 404)


def test_a_work_order_of_an_older_app_version_keeps_its_task_ids(api: Api, contract_sim):
    old, current = contract_sim.store.app.versions[0], contract_sim.store.app.current
    listed, _ = api.walk("work-orders/", {"reviewed": "false", "page_size": 1000})
    wo = next(
        w for w in listed if w["app_version_id"] == old.id and any(t["state"] for t in w["tasks"])
    )
    assert {t["id"] for t in wo["tasks"]} <= set(old.tasks_by_id)
    task = next(t for t in wo["tasks"] if t["state"] is not None)
    assert api.get(f"task-groups/{task['task_group_id']}/").status_code == 200
    newer = current.tasks_by_name[task["name"]].id
    assert newer != task["id"]
    value = task["state"]["analyzed_value"]
    assert_error(api.correct(wo["id"], newer, value), 404)
    r = api.correct(wo["id"], task["id"], value)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == task["id"]
    assert r.json()["state"]["corrected_value"] == value
