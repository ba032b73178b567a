"""CONTRACT.md, analyses: analyze, the aggregation and data-conformity rules, sizes, callbacks."""

from __future__ import annotations

import base64
import uuid

import pytest

from .helpers import (
    DATE_RE,
    EVENT_STATE_KEYS,
    GROUP_TASKS,
    STATE_KEYS,
    UUID_RE,
    Api,
    analyze_body,
    assert_error,
    expected_verdict,
    image_url,
    parse_date,
    state_of,
    task_of,
)

MB = 1024 * 1024


def data_uri(mime: str, size: int, prefix: bytes = b"") -> str:
    content = prefix + b"\x00" * (size - len(prefix))
    return f"data:{mime};base64," + base64.b64encode(content).decode()


def last_event(api: Api, wo_id: str) -> dict:
    return api.timeline(wo_id)[-1]


# -- analyze ---------------------------------------------------------------------------------


def test_analyze_sets_the_states_of_one_group(api: Api, new_wo):
    wo_id = new_wo["id"]
    r = api.analyze_raw(
        wo_id,
        "pb-ouvert-apres",
        image_url(
            pb_ouvert_apres_quality=True,
            cables_ranges=False,
            nombre_connecteurs=6,
            couleur_fibre="orange",
            etiquette_lisible=True,
        ),
    )
    assert r.status_code == 200, r.text
    wo = r.json()
    assert wo["id"] == wo_id
    assert UUID_RE.match(wo["latest_analysis_id"])
    assert wo["first_analysis_id"] == wo["latest_analysis_id"]
    expected = {
        "pb_ouvert_apres_quality": (True, "Photo correcte", True),
        "cables_ranges": (False, "Non-conforme", False),
        "nombre_connecteurs": (6, "Conforme", True),
        "couleur_fibre": ("orange", "Conforme", True),
        "etiquette_lisible": (True, "Conforme", True),
    }
    for task in wo["tasks"]:
        state = task["state"]
        if task["task_group_name"] != "pb-ouvert-apres":
            assert state is None, task["name"]  # ONE task group per analysis
            continue
        assert set(state) == STATE_KEYS
        value, message, conform = expected[task["name"]]
        assert state["analyzed_value"] == value
        assert type(state["analyzed_value"]) is type(value)
        assert state["corrected_value"] is None
        assert state["message"] == message
        assert state["is_conform"] is conform
        assert state["analysis_id"] == wo["latest_analysis_id"]
        assert DATE_RE.match(state["update_date"])
        assert (state["message"], state["is_conform"]) == expected_verdict(task, value)
    assert parse_date(wo["update_date"]) > parse_date(new_wo["update_date"])
    # the input is recorded
    (item,) = wo["inputs"]
    assert item["task_group_name"] == "pb-ouvert-apres"
    assert item["analysis_id"] == wo["latest_analysis_id"]
    assert item["conformity_messages"] == []
    assert item["data"]["type"] == "image"
    # and the answer is what a retrieve says
    again = api.retrieve(wo_id)
    assert again["tasks"] == wo["tasks"]
    assert again["progress_score"] == wo["progress_score"]


def test_analysis_event_lists_the_states_of_its_group(api: Api, new_wo):
    wo = api.analyze(new_wo["id"], "releve-optique", mesure_puissance=-21.25)
    event = last_event(api, new_wo["id"])
    assert event["type"] == "analysis"
    assert event["analysis_id"] == wo["latest_analysis_id"]
    assert event["task_group_name"] == "releve-optique"
    assert event["user"] is None  # not from the field: unknown
    by_name = {s["task_name"]: s for s in event["states"]}
    assert set(by_name) == set(GROUP_TASKS["releve-optique"])
    for name, s in by_name.items():
        assert set(s) == EVENT_STATE_KEYS
        state = state_of(wo, name)
        assert s["task_id"] == task_of(wo, name)["id"]
        for key in ("analyzed_value", "corrected_value", "message", "is_conform"):
            assert s[key] == state[key]
    assert by_name["mesure_puissance"]["analyzed_value"] == -21.25
    assert by_name["mesure_puissance"]["message"] == "Dans la plage"


def test_latest_analysis_wins_for_a_not_conform_state(api: Api, new_wo):
    wo_id = new_wo["id"]
    first = api.analyze(wo_id, "pb-ouvert-apres", nombre_connecteurs=14)
    assert state_of(first, "nombre_connecteurs")["message"] == "Trop de connecteurs"
    second = api.analyze(wo_id, "pb-ouvert-apres", nombre_connecteurs=20)
    state = state_of(second, "nombre_connecteurs")
    assert state["analyzed_value"] == 20
    assert state["analysis_id"] == second["latest_analysis_id"]
    assert second["first_analysis_id"] == first["latest_analysis_id"]
    third = api.analyze(wo_id, "pb-ouvert-apres", nombre_connecteurs=4)
    state = state_of(third, "nombre_connecteurs")
    assert (state["analyzed_value"], state["message"], state["is_conform"]) == (4, "Conforme", True)
    assert state["analysis_id"] == third["latest_analysis_id"]


def test_a_conform_uncorrected_state_sticks(api: Api, new_wo):
    wo_id = new_wo["id"]
    first = api.analyze(
        wo_id,
        "pb-ouvert-apres",
        cables_ranges=True,
        nombre_connecteurs=4,
        couleur_fibre="gris",
        etiquette_lisible=True,
    )
    kept = state_of(first, "cables_ranges")
    assert kept["is_conform"] is True
    second = api.analyze(
        wo_id,
        "pb-ouvert-apres",
        cables_ranges=False,
        nombre_connecteurs=4,
        couleur_fibre="vert",
        etiquette_lisible=True,
    )
    assert second["latest_analysis_id"] != first["latest_analysis_id"]
    assert state_of(second, "cables_ranges") == kept  # analysis_id and update_date included
    assert state_of(second, "couleur_fibre")["analyzed_value"] == "vert"
    assert state_of(second, "couleur_fibre")["analysis_id"] == second["latest_analysis_id"]
    assert state_of(second, "nombre_connecteurs") == state_of(first, "nombre_connecteurs")
    # the analysis event lists only the states it changed
    event = last_event(api, wo_id)
    assert event["analysis_id"] == second["latest_analysis_id"]
    assert [s["task_name"] for s in event["states"]] == ["couleur_fibre"]
    # a conform value may replace a conform value
    third = api.analyze(wo_id, "pb-ouvert-apres", nombre_connecteurs=8)
    assert state_of(third, "nombre_connecteurs")["analyzed_value"] == 8
    assert state_of(third, "cables_ranges") == kept


def test_an_analysis_changing_nothing_lists_no_state(api: Api, new_wo):
    wo_id = new_wo["id"]
    values = {"cables_ranges": True, "nombre_connecteurs": 4, "couleur_fibre": "bleu"}
    values["etiquette_lisible"] = False
    first = api.analyze(wo_id, "pb-ouvert-apres", **values)
    second = api.analyze(wo_id, "pb-ouvert-apres", **values)
    assert second["tasks"] == first["tasks"]
    event = last_event(api, wo_id)
    assert event["type"] == "analysis"
    assert event["analysis_id"] == second["latest_analysis_id"]
    assert event["states"] == []


def test_a_corrected_task_takes_the_new_analysis_and_keeps_its_correction(api: Api, new_wo):
    wo_id = new_wo["id"]
    wo = api.analyze(wo_id, "pb-ouvert-apres", cables_ranges=False, nombre_connecteurs=14)
    ids = {t["name"]: t["id"] for t in wo["tasks"]}
    assert api.correct(wo_id, ids["cables_ranges"], True).status_code == 200
    assert api.correct(wo_id, ids["nombre_connecteurs"], 2).status_code == 200
    # the corrected cables_ranges is conform but corrected: it does not stick
    wo = api.analyze(wo_id, "pb-ouvert-apres", cables_ranges=True, nombre_connecteurs=6)
    state = state_of(wo, "cables_ranges")
    assert state["analyzed_value"] is True and state["corrected_value"] is True
    assert state["analysis_id"] == wo["latest_analysis_id"]
    state = state_of(wo, "nombre_connecteurs")
    assert state["analyzed_value"] == 6 and state["corrected_value"] == 2
    assert state["analysis_id"] == wo["latest_analysis_id"]
    # a new analysed value that is not conform: the correction still decides the verdict
    wo = api.analyze(wo_id, "pb-ouvert-apres", cables_ranges=False, nombre_connecteurs=20)
    state = state_of(wo, "cables_ranges")
    assert state["analyzed_value"] is False and state["corrected_value"] is True
    assert (state["message"], state["is_conform"]) == ("Conforme", True)
    state = state_of(wo, "nombre_connecteurs")
    assert state["analyzed_value"] == 20 and state["corrected_value"] == 2
    assert (state["message"], state["is_conform"]) == ("Conforme", True)
    assert state["analysis_id"] == wo["latest_analysis_id"]


# -- data conformity -------------------------------------------------------------------------


def test_a_bad_photo_leaves_the_job_tasks_unanalysed(api: Api, new_wo):
    wo = api.analyze(new_wo["id"], "pm-ouvert-apres", good_photo=False, jarretiere_connectee=True)
    quality = state_of(wo, "pm_ouvert_apres_quality")
    assert (quality["analyzed_value"], quality["message"]) == (False, "Photo incorrecte")
    assert quality["is_conform"] is False
    for name in ("jarretiere_connectee", "bouchon_retire", "numero_serie"):
        assert state_of(wo, name) is None, name
    (item,) = wo["inputs"]
    messages = item["conformity_messages"]
    assert isinstance(messages, list) and messages
    assert all(isinstance(m, str) and m for m in messages)
    event = last_event(api, new_wo["id"])
    assert [s["task_name"] for s in event["states"]] == ["pm_ouvert_apres_quality"]


def test_a_bad_photo_keeps_the_previous_states(api: Api, new_wo):
    wo_id = new_wo["id"]
    first = api.analyze(
        wo_id,
        "pb-ouvert-apres",
        cables_ranges=False,
        nombre_connecteurs=14,
        couleur_fibre="gris",
        etiquette_lisible=False,
    )
    second = api.analyze(
        wo_id,
        "pb-ouvert-apres",
        good_photo=False,
        cables_ranges=True,
        nombre_connecteurs=4,
        couleur_fibre="bleu",
        etiquette_lisible=True,
    )
    for name in ("cables_ranges", "nombre_connecteurs", "couleur_fibre", "etiquette_lisible"):
        assert state_of(second, name) == state_of(first, name), name
    # the photo check itself was conform, so it sticks too
    assert state_of(second, "pb_ouvert_apres_quality") == state_of(first, "pb_ouvert_apres_quality")
    assert second["inputs"][0]["conformity_messages"] == []
    assert second["inputs"][1]["conformity_messages"]
    assert second["inputs"][1]["analysis_id"] == second["latest_analysis_id"]
    # other groups are untouched
    for name in GROUP_TASKS["pb-ferme-avant"]:
        assert state_of(second, name) is None


def test_the_ai_is_deterministic_in_the_image_content(api: Api):
    # the photo passes its check (forced); the measure comes from the content's hash
    prefix = b"dfs-sim:releve_optique_quality=true photo " + uuid.uuid4().hex.encode()
    content = data_uri("image/jpeg", 2048, prefix=prefix)
    a, b = api.create(name="det-a"), api.create(name="det-b")
    wa = api.analyze_raw(a["id"], "releve-optique", content)
    wb = api.analyze_raw(b["id"], "releve-optique", content)
    assert wa.status_code == wb.status_code == 200
    values_a = [t["state"] for t in wa.json()["tasks"] if t["task_group_name"] == "releve-optique"]
    values_b = [t["state"] for t in wb.json()["tasks"] if t["task_group_name"] == "releve-optique"]
    assert [s["analyzed_value"] for s in values_a] == [s["analyzed_value"] for s in values_b]


def test_directives_in_data_uri_content(api: Api, new_wo):
    content = b"dfs-sim:releve_optique_quality=true&dfs-sim:mesure_puissance=-6.5 jpeg..."
    value = "data:image/jpeg;base64," + base64.b64encode(content).decode()
    r = api.analyze_raw(new_wo["id"], "releve-optique", value)
    assert r.status_code == 200, r.text
    state = state_of(r.json(), "mesure_puissance")
    assert (state["analyzed_value"], state["message"]) == (-6.5, "Signal trop fort")


# -- bad analyze bodies ----------------------------------------------------------------------


def test_analyze_unknown_context_group_is_400(api: Api, new_wo):
    r = api.analyze_raw(new_wo["id"], "no-such-group", image_url())
    assert_error(r, 400, "inputs")
    assert api.retrieve(new_wo["id"])["latest_analysis_id"] is None


def test_analyze_a_group_the_types_exclude_is_400(api: Api):
    wo = api.create(name="maint", types=["maintenance"])
    assert_error(api.analyze_raw(wo["id"], "pb-ferme-avant", image_url()), 400, "inputs")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": []},
        {"inputs": "x"},
        {
            "inputs": [
                {"name": "image_input", "data": {"type": "image", "value": "https://a/b.jpg"}}
            ]
        },
        {"inputs": [{"name": "context", "data": {"type": "text", "value": "releve-optique"}}]},
        analyze_body("releve-optique", "ftp://example.com/p.jpg"),
        analyze_body("releve-optique", "data:image/jpeg;base64,@@not base64@@"),
        analyze_body("releve-optique", "https://img.example.com/p.jpg", metadata={"a": [1]}),
    ],
    ids=[
        "empty",
        "no-inputs",
        "inputs-not-a-list",
        "no-context",
        "no-image",
        "bad-scheme",
        "bad-base64",
        "bad-metadata",
    ],
)
def test_analyze_bad_bodies_are_400(api: Api, new_wo, body):
    assert_error(api.post(f"work-orders/{new_wo['id']}/analyze/", json=body), 400)


def test_analyze_unknown_work_order_is_404(api: Api):
    r = api.analyze_raw(str(uuid.uuid4()), "releve-optique", image_url())
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


# -- sizes -----------------------------------------------------------------------------------


def test_an_image_over_5_mb_is_413(api: Api, new_wo):
    r = api.analyze_raw(new_wo["id"], "releve-optique", data_uri("image/jpeg", 5 * MB + 1))
    assert_error(r, 413)
    r = api.analyze_raw(new_wo["id"], "releve-optique", data_uri("image/png", 6 * MB))
    assert_error(r, 413)
    assert api.retrieve(new_wo["id"])["inputs"] == []


def test_an_image_under_5_mb_is_accepted(api: Api, new_wo):
    r = api.analyze_raw(new_wo["id"], "releve-optique", data_uri("image/jpeg", 4_900_000))
    assert r.status_code == 200, r.text[:300]


def test_a_pdf_over_8_mb_is_413(api: Api, new_wo):
    r = api.analyze_raw(new_wo["id"], "releve-optique", data_uri("application/pdf", 8 * MB + 1))
    assert_error(r, 413)
    big = analyze_body("releve-optique", data_uri("application/pdf", 9 * MB))
    big["inputs"][0]["data"]["type"] = "pdf"
    assert_error(api.post(f"work-orders/{new_wo['id']}/analyze/", json=big), 413)


def test_a_6_mb_pdf_is_accepted(api: Api, new_wo):
    r = api.analyze_raw(new_wo["id"], "releve-optique", data_uri("application/pdf", 6 * MB))
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["inputs"]) == 1


# -- callbacks -------------------------------------------------------------------------------


def test_analyze_callback_answers_202_with_an_analysis_id(api: Api, new_wo):
    body = analyze_body(
        "releve-optique",
        image_url(mesure_puissance=-12.5),
        callback_url="http://127.0.0.1:9/callback",  # nothing listens: delivery is not tested here
    )
    r = api.post(f"work-orders/{new_wo['id']}/analyze/callback/", json=body)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert set(answer) == {"analysis_id"}
    assert UUID_RE.match(answer["analysis_id"])


@pytest.mark.parametrize(
    "url",
    ["http://example.com/cb", "http://10.0.0.1/cb", "ftp://127.0.0.1/cb", "not a url", ""],
)
def test_analyze_callback_refuses_non_loopback_receivers(api: Api, new_wo, url):
    body = analyze_body("releve-optique", image_url(), callback_url=url)
    r = api.post(f"work-orders/{new_wo['id']}/analyze/callback/", json=body)
    assert_error(r, 400, "callback_url")


def test_analyze_callback_validates_the_analyze_body(api: Api, new_wo):
    body = analyze_body("no-such-group", image_url(), callback_url="http://127.0.0.1:9/cb")
    assert_error(api.post(f"work-orders/{new_wo['id']}/analyze/callback/", json=body), 400)
    body = analyze_body("releve-optique", image_url())
    assert_error(api.post(f"work-orders/{new_wo['id']}/analyze/callback/", json=body), 400)
    body = analyze_body("releve-optique", image_url(), callback_url="http://127.0.0.1:9/cb")
    r = api.post(f"work-orders/{uuid.uuid4()}/analyze/callback/", json=body)
    assert_error(r, 404)
