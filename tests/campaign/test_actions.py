"""dfs.analyze, dfs.reanalyze, dfs.correct and dfs.CallbackReceiver, over real HTTP against the
simulator (in-process, a fresh one per test).

The simulator's AI is deterministic in the image; ``dfs-sim:<task>=<value>`` in an image URL or
in the image bytes forces a task's value, so each test knows what the analysis must give. New
work orders (``POST work-orders/``) are of the current app version (2.4.0: the "conforme" rule
set says "Non-conforme"), with every task group and no state yet.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.actions import IMAGE_LIMIT, PDF_LIMIT, find_task
from dfs_analytics.rules import effective, is_missing
from tests.helpers import CORRECTION, image_url, py, same, task_of

ANALYZE = "POST /v0.2/work-orders/{wo_id}/analyze/"
ANALYZE_CALLBACK = "POST /v0.2/work-orders/{wo_id}/analyze/callback/"

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PDF = b"%PDF-1.7\n"

FRAME_COLUMNS = [
    "work_order_id",
    "task_group_name",
    "task_id",
    "task_name",
    "analyzed_value",
    "corrected_value",
    "value",
    "message",
    "is_conform",
    "before_value",
    "before_message",
    "changed",
]

# pb-ouvert-apres on a 2.4.0 work order: every task forced, with its verdict
BAD_PB = {
    "pb_ouvert_apres_quality": (True, "Photo correcte", True),
    "cables_ranges": (False, "Non-conforme", False),
    "nombre_connecteurs": (14, "Trop de connecteurs", False),
    "couleur_fibre": ("gris", "Couleur inattendue", False),
    "etiquette_lisible": (True, "Conforme", True),
}


pytestmark = pytest.mark.sim(work_orders=120, seed=21)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def forced_bytes(magic: bytes, **values: Any) -> bytes:
    """Image bytes of type ``magic`` that carry the same ``dfs-sim:`` directives as
    ``image_url(**values)``, so the AI's values are forced by the content itself."""
    directives = image_url(**values).partition("?")[2].replace(";", " ")
    return magic + f" {uuid.uuid4()} {directives} ".encode() + bytes(range(256))


def forced(table: dict[str, tuple[Any, str, bool]]) -> dict[str, Any]:
    return {name: value for name, (value, _, _) in table.items()}


def same_or_missing(a: Any, b: Any) -> bool:
    """Equal, or both missing (None, NaN, pd.NA)."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    return same(a, b)


def sent(sim, before: dict[str, int], route: str) -> int:
    return sim.request_counts().get(route, 0) - before.get(route, 0)


def analysed_work_orders(reader: dfs.Client, task_name: str) -> list[dict[str, Any]]:
    """Work orders where ``task_name`` was analysed and never corrected."""
    out = []
    for wo in reader.list_work_orders():
        tasks = [t for t in wo["tasks"] if t["name"] == task_name]
        if tasks and tasks[0]["state"] and tasks[0]["state"]["corrected_value"] is None:
            out.append(wo)
    assert out, f"no work order with {task_name} analysed"
    return out


def rule_sentence(task: dict[str, Any], value: Any) -> str:
    for rule in task["outcome_validation"]:
        schema = rule["schema"]
        if "const" in schema and same(schema["const"], value):
            return rule["sentence"]
    raise AssertionError(f"no const rule for {value!r} on {task['name']}")


def check_frame_against_server(frame: pd.DataFrame, server_wo: dict[str, Any]) -> None:
    for row in frame.itertuples(index=False):
        state = task_of(server_wo, row.task_name)["state"]
        assert state is not None, row.task_name
        assert same(row.analyzed_value, state["analyzed_value"]), row.task_name
        assert row.message == state["message"], row.task_name
        assert row.is_conform == state["is_conform"], row.task_name
        assert same(row.value, effective(state)), row.task_name


# --------------------------------------------------------------------------------------------
# analyze
# --------------------------------------------------------------------------------------------


def test_analyze_url_returns_new_states_with_before_and_changed(sim, client, reader) -> None:
    wo_id = client.create_work_order("analyze-url")["id"]
    url = image_url(**forced(BAD_PB))
    before = sim.request_counts()

    frame = dfs.analyze(client, wo_id, "pb-ouvert-apres", url)

    assert sent(sim, before, ANALYZE) == 1
    assert list(frame.columns) == FRAME_COLUMNS
    assert sorted(frame["task_name"]) == sorted(BAD_PB)
    assert set(frame["work_order_id"]) == {wo_id}
    assert set(frame["task_group_name"]) == {"pb-ouvert-apres"}
    for row in frame.itertuples(index=False):
        value, message, conform = BAD_PB[row.task_name]
        assert same(row.analyzed_value, value), row.task_name
        assert same(row.value, value), row.task_name
        assert row.corrected_value is None
        assert row.message == message
        assert row.is_conform == conform
        assert row.before_value is None and row.before_message is None  # never analysed
        assert bool(row.changed) is True
    server = reader.get_work_order(wo_id)
    check_frame_against_server(frame, server)
    assert server["inputs"][-1]["data"]["value"] == url  # a URL is sent as is
    assert server["inputs"][-1]["task_group_name"] == "pb-ouvert-apres"

    # a second analysis: only what differs is 'changed', with the value it had before
    url2 = image_url(**dict(forced(BAD_PB), cables_ranges=True))
    frame2 = dfs.analyze(client, wo_id, "pb-ouvert-apres", url2).set_index("task_name")
    assert py(frame2.loc["cables_ranges", "before_value"]) is False
    assert frame2.loc["cables_ranges", "before_message"] == "Non-conforme"
    assert py(frame2.loc["cables_ranges", "value"]) is True
    assert frame2.loc["cables_ranges", "message"] == "Conforme"
    assert bool(frame2.loc["cables_ranges", "changed"]) is True
    for name in set(BAD_PB) - {"cables_ranges"}:
        assert bool(frame2.loc[name, "changed"]) is False, name
        assert same(frame2.loc[name, "before_value"], frame2.loc[name, "value"]), name
    check_frame_against_server(frame2.reset_index(), reader.get_work_order(wo_id))


@pytest.mark.parametrize(
    ("magic", "filename", "extension"),
    [(PNG, "photo.png", "png"), (JPEG, "photo.jpg", "jpg"), (PDF, "releve.pdf", "pdf")],
)
def test_analyze_file_path_is_sent_as_a_data_uri_of_its_type(
    sim, client, reader, tmp_path: Path, magic: bytes, filename: str, extension: str
) -> None:
    wo_id = client.create_work_order("analyze-file")["id"]
    data = forced_bytes(magic, releve_optique_quality=True, mesure_puissance=-30.5)
    path = tmp_path / filename
    path.write_bytes(data)

    frame = dfs.analyze(client, wo_id, "releve-optique", path).set_index("task_name")

    # the directive is only in the bytes: the content itself reached the server
    assert frame.loc["mesure_puissance", "value"] == -30.5
    assert frame.loc["mesure_puissance", "message"] == "Signal trop faible"
    assert py(frame.loc["mesure_puissance", "is_conform"]) is False
    stored = reader.get_work_order(wo_id)["inputs"][-1]["data"]["value"]
    assert stored.startswith("https://storage.example.com/")
    assert stored.endswith("." + extension)  # the MIME type of the data URI

    # a str path works as well as a Path
    frame = dfs.analyze(client, wo_id, "releve-optique", str(path))
    assert len(frame) == 2


@pytest.mark.parametrize(("magic", "extension"), [(PNG, "png"), (JPEG, "jpg"), (PDF, "pdf")])
def test_analyze_bytes_is_sent_as_a_data_uri_of_its_type(
    sim, client, reader, magic: bytes, extension: str
) -> None:
    wo_id = client.create_work_order("analyze-bytes")["id"]
    values = {
        "pm_ouvert_apres_quality": True,
        "jarretiere_connectee": False,
        "numero_serie": "ZX81ZX81",
    }
    before = sim.request_counts()

    frame = dfs.analyze(client, wo_id, "pm-ouvert-apres", forced_bytes(magic, **values))

    assert sent(sim, before, ANALYZE) == 1
    by_name = frame.set_index("task_name")
    assert py(by_name.loc["jarretiere_connectee", "value"]) is False
    assert by_name.loc["jarretiere_connectee", "message"] == "Non-conforme"
    assert by_name.loc["numero_serie", "value"] == "ZX81ZX81"
    assert by_name.loc["numero_serie", "message"] == "Lu"
    server = reader.get_work_order(wo_id)
    check_frame_against_server(frame, server)
    assert server["inputs"][-1]["data"]["value"].endswith("." + extension)
    # bytearray and memoryview are bytes too
    dfs.analyze(client, wo_id, "pm-ouvert-apres", bytearray(forced_bytes(magic, **values)))
    dfs.analyze(client, wo_id, "pm-ouvert-apres", memoryview(forced_bytes(magic, **values)))
    assert sent(sim, before, ANALYZE) == 3


def test_a_bad_photo_leaves_the_job_tasks_unanalysed(sim, client) -> None:
    wo_id = client.create_work_order("bad-photo")["id"]
    frame = dfs.analyze(
        client, wo_id, "pb-ferme-avant", image_url(pb_ferme_avant_quality=False)
    ).set_index("task_name")
    assert py(frame.loc["pb_ferme_avant_quality", "value"]) is False
    assert frame.loc["pb_ferme_avant_quality", "message"] == "Photo incorrecte"
    for name in ("pb_etiquette_presente", "photo_environnement"):
        assert frame.loc[name, "value"] is None
        assert bool(frame.loc[name, "changed"]) is False


@pytest.mark.parametrize(
    ("magic", "size"),
    [
        (PNG, IMAGE_LIMIT + 1),
        (JPEG, IMAGE_LIMIT + 1),
        (b"", IMAGE_LIMIT + 1),  # no known type: an image
        (PDF, PDF_LIMIT + 1),
    ],
)
@pytest.mark.parametrize("as_file", [False, True])
def test_oversize_inputs_are_refused_before_sending(
    sim, client, tmp_path: Path, magic: bytes, size: int, as_file: bool
) -> None:
    wo_id = client.create_work_order("too-big")["id"]
    data = magic + b"\0" * (size - len(magic))
    image: Any = data
    if as_file:
        image = tmp_path / "big.bin"
        image.write_bytes(data)
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError, match="limit"):
        dfs.analyze(client, wo_id, "pb-ferme-avant", image)
    assert sim.request_counts() == before  # nothing at all was sent


def test_inputs_at_the_limits_are_sent(sim, client, reader) -> None:
    wo_id = client.create_work_order("at-limits")["id"]
    before = sim.request_counts()
    head = forced_bytes(PNG, pb_ferme_avant_quality=True, pb_etiquette_presente=False)
    image = head + b"\0" * (IMAGE_LIMIT - len(head))  # exactly 5 MB
    frame = dfs.analyze(client, wo_id, "pb-ferme-avant", image).set_index("task_name")
    assert py(frame.loc["pb_etiquette_presente", "value"]) is False
    # a 6 MB PDF: over the image limit, under the PDF one
    head = forced_bytes(PDF, pb_ferme_avant_quality=True, pb_etiquette_presente=True)
    pdf = head + b"\0" * (6 * 1024 * 1024 - len(head))
    frame = dfs.analyze(client, wo_id, "pb-ferme-avant", pdf).set_index("task_name")
    assert py(frame.loc["pb_etiquette_presente", "value"]) is True
    assert sent(sim, before, ANALYZE) == 2
    assert reader.get_work_order(wo_id)["inputs"][-1]["data"]["value"].endswith(".pdf")


def test_analyze_refuses_bad_arguments_before_analysing(sim, client, tmp_path: Path) -> None:
    wo_id = client.create_work_order("bad-args")["id"]
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError, match="neither an http"):
        dfs.analyze(client, wo_id, "pb-ferme-avant", str(tmp_path / "missing.png"))
    with pytest.raises(dfs.ConfigurationError, match="empty"):
        dfs.analyze(client, wo_id, "pb-ferme-avant", b"")
    with pytest.raises(dfs.ConfigurationError):
        dfs.analyze(client, wo_id, "pb-ferme-avant", 12345)  # type: ignore[arg-type]
    assert sim.request_counts() == before
    with pytest.raises(dfs.ConfigurationError, match="no task group 'nope'"):
        dfs.analyze(client, wo_id, "nope", image_url())
    with pytest.raises(dfs.NotFoundError):
        dfs.analyze(client, str(uuid.uuid4()), "pb-ferme-avant", image_url())
    # a group the work order's types do not include
    maintenance = next(wo for wo in client.list_work_orders() if wo["types"] == ["maintenance"])
    with pytest.raises(dfs.ConfigurationError, match="no task group 'pb-ferme-avant'"):
        dfs.analyze(client, maintenance["id"], "pb-ferme-avant", image_url())
    assert sent(sim, before, ANALYZE) == 0


def test_analyze_with_a_callback(sim, client, reader) -> None:
    wo_id = client.create_work_order("callback")["id"]
    with dfs.CallbackReceiver() as receiver:
        assert receiver.url.startswith("http://127.0.0.1:")
        before = sim.request_counts()
        first = dfs.analyze(
            client,
            wo_id,
            "pb-ouvert-apres",
            image_url(**forced(BAD_PB)),
            callback_url=receiver.url,
        )
        second = dfs.analyze(
            client,
            wo_id,
            "releve-optique",
            forced_bytes(PNG, releve_optique_quality=True, mesure_puissance=-12.5),
            callback_url=receiver.url,
        )
        assert isinstance(first, str) and isinstance(second, str) and first != second
        assert sent(sim, before, ANALYZE_CALLBACK) == 2
        assert sent(sim, before, ANALYZE) == 0

        payload2 = receiver.wait(second, timeout=60)
        payload1 = receiver.wait(first, timeout=60)
        assert payload1["analysis_id"] == first and payload2["analysis_id"] == second
        assert payload1["id"] == wo_id == payload2["id"]
        state = task_of(payload1, "cables_ranges")["state"]
        assert state["analyzed_value"] is False and state["message"] == "Non-conforme"
        assert state["analysis_id"] == first
        state = task_of(payload2, "mesure_puissance")["state"]
        assert state["analyzed_value"] == -12.5 and state["message"] == "Dans la plage"
        assert receiver.wait(timeout=1)["analysis_id"] in (first, second)
        with pytest.raises(TimeoutError):
            receiver.wait("no-such-analysis", timeout=0.2)

    server = reader.get_work_order(wo_id)
    assert task_of(server, "cables_ranges")["state"]["analyzed_value"] is False
    assert task_of(server, "mesure_puissance")["state"]["analyzed_value"] == -12.5
    # the client's cached read does not hide the callback's analysis either
    cached = client.get_work_order(wo_id)
    assert task_of(cached, "mesure_puissance")["state"]["analyzed_value"] == -12.5


# --------------------------------------------------------------------------------------------
# reanalyze
# --------------------------------------------------------------------------------------------


def test_reanalyze_resubmits_stored_inputs(sim, client, reader) -> None:
    with_inputs = [wo for wo in reader.list_work_orders() if wo["first_analysis_id"]][:5]
    ids = [wo["id"] for wo in with_inputs]
    full = {i: reader.get_work_order(i) for i in ids}
    groups = {i: {item["task_group_name"] for item in full[i]["inputs"]} for i in ids}
    fresh = client.create_work_order("reanalyze-fresh")["id"]  # no stored input
    unknown = str(uuid.uuid4())
    before = sim.request_counts()

    out = dfs.reanalyze(client, [*ids, fresh, ids[0], unknown], max_workers=4)

    # one analysis per work order and stored group (a repeated id counts once)
    assert sent(sim, before, ANALYZE) == sum(len(g) for g in groups.values())
    assert set(FRAME_COLUMNS) | {"error"} <= set(out.columns)
    errors = out.set_index("work_order_id")["error"]
    assert "no stored input" in errors[fresh]
    assert errors[unknown]  # Not found, reported on its row
    good = out[out["work_order_id"].isin(ids)]
    assert good["error"].isna().all()
    assert not good.duplicated(["work_order_id", "task_id"]).any()
    for wo_id in ids:
        rows = good[good["work_order_id"] == wo_id]
        assert set(rows["task_group_name"]) == groups[wo_id]
        expected_tasks = {
            t["id"] for t in full[wo_id]["tasks"] if t["task_group_name"] in groups[wo_id]
        }
        assert set(rows["task_id"]) == expected_tasks
        old = {t["id"]: t["state"] for t in full[wo_id]["tasks"]}
        now = reader.get_work_order(wo_id)
        for row in rows.itertuples(index=False):
            assert same_or_missing(row.before_value, effective(old[row.task_id]))
            state = task_of(now, row.task_name)["state"]
            assert same_or_missing(row.value, effective(state))
            assert same_or_missing(row.message, (state or {}).get("message"))
            was = old[row.task_id] or {}
            is_now = state or {}
            diff = any(
                not same(was.get(k), is_now.get(k))
                for k in ("analyzed_value", "corrected_value", "message", "is_conform")
            )
            assert bool(row.changed) == diff
        # the inputs re-submitted are the stored ones, in the same groups
        new_inputs = now["inputs"][len(full[wo_id]["inputs"]) :]
        assert len(new_inputs) == len(groups[wo_id])
        latest = {}
        for item in full[wo_id]["inputs"]:
            latest[item["task_group_name"]] = item["data"]["value"]
        assert {i["task_group_name"]: i["data"]["value"] for i in new_inputs} == latest


def test_reanalyze_gives_before_and_after_of_changed_tasks(sim, client, reader) -> None:
    wo_id = client.create_work_order("reanalyze-change")["id"]
    values = {"releve_optique_quality": True, "mesure_puissance": -6.0}
    dfs.analyze(client, wo_id, "releve-optique", image_url(**values))
    # a correction, then a re-analysis: the analysed value stays, the correction too
    dfs.correct(client, wo_id, "mesure_puissance", -10)
    out = dfs.reanalyze(client, [wo_id]).set_index("task_name")
    assert out.loc["mesure_puissance", "before_value"] == -10
    assert out.loc["mesure_puissance", "analyzed_value"] == -6.0
    assert out.loc["mesure_puissance", "corrected_value"] == -10
    assert out.loc["mesure_puissance", "value"] == -10
    assert not out["changed"].any()
    assert out["error"].isna().all()


def test_reanalyze_only_the_given_task_groups(sim, client, reader) -> None:
    ids = [
        wo["id"]
        for wo in reader.list_work_orders()
        if any(t["task_group_name"] == "releve-optique" and t["state"] for t in wo["tasks"])
    ][:6]
    before = sim.request_counts()
    out = dfs.reanalyze(client, ids, task_groups=["releve-optique"])
    assert sent(sim, before, ANALYZE) == len(ids)
    assert set(out["task_group_name"]) == {"releve-optique"}
    assert set(out["work_order_id"]) == set(ids)
    assert out["error"].isna().all()
    assert dfs.reanalyze(client, []).empty


def test_reanalyze_keeps_the_groups_done_and_reports_each_failed_group(sim, client, reader) -> None:
    """A work order whose pb-ouvert-apres input the server no longer takes (its types changed):
    the other group's re-analysis is kept, whether it ran before or after the failure."""
    good_values = {"releve_optique_quality": True, "mesure_puissance": -6.0}
    ids = []
    for order in (("releve-optique", "pb-ouvert-apres"), ("pb-ouvert-apres", "releve-optique")):
        wo_id = client.create_work_order(f"reanalyze-{order[0]}", types=["raccordement"])["id"]
        for group in order:
            values = good_values if group == "releve-optique" else forced(BAD_PB)
            dfs.analyze(client, wo_id, group, image_url(**values))
        dfs.correct(client, wo_id, "mesure_puissance", -10)
        client.update_work_order(wo_id, types=["maintenance"])  # no pb-ouvert-apres any more
        ids.append(wo_id)
    before = sim.request_counts()

    out = dfs.reanalyze(client, ids)

    assert sent(sim, before, ANALYZE) == 4  # every group of every work order was tried
    for wo_id in ids:
        rows = out[out["work_order_id"] == wo_id]
        failed = rows[rows["error"].notna()]
        assert list(failed["task_group_name"]) == ["pb-ouvert-apres"], failed
        assert "pb-ouvert-apres" in failed["error"].iloc[0]
        done = rows[rows["error"].isna()].set_index("task_name")
        assert set(done["task_group_name"]) == {"releve-optique"}
        server = reader.get_work_order(wo_id)
        assert set(done.index) == {
            t["name"] for t in server["tasks"] if t["task_group_name"] == "releve-optique"
        }
        assert done.loc["mesure_puissance", "analyzed_value"] == -6.0
        assert done.loc["mesure_puissance", "before_value"] == -10
        assert done.loc["mesure_puissance", "value"] == -10


# --------------------------------------------------------------------------------------------
# correct
# --------------------------------------------------------------------------------------------


def test_correct_by_task_id_with_a_python_value(sim, client, reader) -> None:
    wo = analysed_work_orders(reader, "cables_ranges")[0]
    task = task_of(wo, "cables_ranges")
    new = not effective(task["state"])
    before = sim.request_counts()

    result = dfs.correct(client, wo["id"], task["id"], new)

    assert sent(sim, before, CORRECTION) == 1
    assert sim.correction_counts() == {(wo["id"], task["id"]): 1}
    assert result["work_order_id"] == wo["id"]
    assert result["task_id"] == task["id"]
    assert result["task_name"] == "cables_ranges"
    assert result["value"] is new
    assert result["before"] == task["state"]
    assert result["after"]["corrected_value"] is new
    assert result["after"]["analyzed_value"] is task["state"]["analyzed_value"]
    assert result["after"]["message"] == rule_sentence(task, new)
    server = task_of(reader.get_work_order(wo["id"]), "cables_ranges")["state"]
    assert server == result["after"]


@pytest.mark.parametrize(
    ("task_name", "given", "expected"),
    [
        ("cables_ranges", "true", True),
        ("cables_ranges", " FALSE ", False),
        ("nombre_connecteurs", "12", 12),
        ("nombre_connecteurs", 3.0, 3),
        ("mesure_puissance", "-20.5", -20.5),
        ("couleur_fibre", "rouge", "rouge"),
        ("numero_serie", "AB12CD34", "AB12CD34"),
        ("bouchon_retire", "OK", True),
        ("couleur_fibre", "Non lisible", ""),
    ],
)
def test_correct_by_task_name_with_string_forms_and_sentences(
    sim, client, reader, task_name: str, given: Any, expected: Any
) -> None:
    wo = analysed_work_orders(reader, task_name)[0]
    task = task_of(wo, task_name)
    result = dfs.correct(client, wo["id"], task_name, given)
    assert same(result["value"], expected)
    state = task_of(reader.get_work_order(wo["id"]), task_name)["state"]
    assert same(state["corrected_value"], expected)
    assert sim.correction_counts() == {(wo["id"], task["id"]): 1}


def test_correct_with_verdict_sentences_of_each_app_version(sim, client, reader) -> None:
    work_orders = analysed_work_orders(reader, "cables_ranges")
    v1 = [
        wo
        for wo in work_orders
        if rule_sentence(task_of(wo, "cables_ranges"), False) == "Non conforme"
    ]
    v2 = [
        wo
        for wo in work_orders
        if rule_sentence(task_of(wo, "cables_ranges"), False) == "Non-conforme"
    ]
    assert v1 and v2
    for wo, sentence, value in [
        (v1[0], "Non conforme", False),
        (v1[1], "Conforme", True),
        (v2[0], "Non-conforme", False),
        (v2[1], "Conforme", True),
    ]:
        result = dfs.correct(client, wo["id"], "cables_ranges", sentence)
        assert result["value"] is value
        assert result["after"]["message"] == sentence
        state = task_of(reader.get_work_order(wo["id"]), "cables_ranges")["state"]
        assert state["corrected_value"] is value and state["message"] == sentence
    # "Non conforme" is not a verdict of 2.4.0 (it says "Non-conforme"): refused, not sent
    before = sim.request_counts()
    with pytest.raises(dfs.InvalidCorrectionError):
        dfs.correct(client, v2[2]["id"], "cables_ranges", "Non conforme")
    assert sent(sim, before, CORRECTION) == 0


@pytest.mark.parametrize(
    ("task_name", "value", "match"),
    [
        ("cables_ranges", "maybe", "boolean"),
        ("cables_ranges", 1, "boolean"),  # never 0/1
        ("cables_ranges", 0, "boolean"),
        ("cables_ranges", None, "needs a value"),
        ("cables_ranges", float("nan"), "needs a value"),
        ("bouchon_retire", False, "none of its verdict rules"),
        ("bouchon_retire", "KO", ""),
        ("nombre_connecteurs", -1, "none of its verdict rules"),
        ("nombre_connecteurs", 4.5, "none of its verdict rules"),
        ("nombre_connecteurs", "douze", "number"),
        ("nombre_connecteurs", True, "number"),
        ("nombre_connecteurs", "Conforme", ""),  # a sentence of a range: no single value
        ("couleur_fibre", "violet", "none of its verdict rules"),
        ("couleur_fibre", 3, "string"),
        ("couleur_fibre", "Conforme", ""),  # four colours say "Conforme": ambiguous
        ("couleur_fibre", "Couleur inattendue", ""),
        ("numero_serie", "abc", "none of its verdict rules"),
        ("mesure_puissance", "fort", "number"),
        ("no_such_task", True, "no task 'no_such_task'"),
        ("00000000-0000-0000-0000-000000000000", True, "no task"),
    ],
)
def test_correct_refuses_what_the_task_cannot_take_and_sends_nothing(
    sim, client, reader, task_name: str, value: Any, match: str
) -> None:
    wo = next(
        w
        for w in analysed_work_orders(reader, "couleur_fibre")
        if all(
            (task_of(w, n)["state"] or {}).get("analyzed_value") is not None
            for n in ("cables_ranges", "bouchon_retire", "nombre_connecteurs", "numero_serie")
        )
        and task_of(w, "mesure_puissance")["state"]
    )
    before = sim.request_counts()
    with pytest.raises(dfs.InvalidCorrectionError, match=match or None):
        dfs.correct(client, wo["id"], task_name, value)
    assert sent(sim, before, CORRECTION) == 0
    assert sim.correction_counts() == {}


def test_correct_refuses_a_never_analysed_task(sim, client, reader) -> None:
    fresh = client.create_work_order("never-analysed")
    before = sim.request_counts()
    for task in ("cables_ranges", task_of(fresh, "mesure_puissance")["id"]):
        with pytest.raises(dfs.InvalidCorrectionError, match="never analysed"):
            dfs.correct(client, fresh["id"], task, "Conforme" if task == "cables_ranges" else -9)
    # a generated work order whose task has no state yet
    never = [
        (wo, t)
        for wo in reader.list_work_orders()
        for t in wo["tasks"]
        if t["state"] is None and t["outcome_type"] == "Boolean" and "quality" not in t["name"]
    ]
    assert never
    wo, task = never[0]
    with pytest.raises(dfs.InvalidCorrectionError, match="never analysed"):
        dfs.correct(client, wo["id"], task["name"], True)
    assert sent(sim, before, CORRECTION) == 0
    assert sim.correction_counts() == {}


def test_find_task_refuses_an_ambiguous_name() -> None:
    # two tasks of one name cannot be built on the simulator: a work order as a real server
    # could send it
    wo = {
        "id": "wo-1",
        "tasks": [
            {"id": "t-1", "name": "photo", "state": None},
            {"id": "t-2", "name": "photo", "state": None},
        ],
    }
    with pytest.raises(dfs.InvalidCorrectionError, match="2 tasks named 'photo'"):
        find_task(wo, "photo")
    assert find_task(wo, "t-2")["id"] == "t-2"


def test_correct_unknown_work_order_is_not_found(sim, client) -> None:
    before = sim.request_counts()
    with pytest.raises(dfs.NotFoundError):
        dfs.correct(client, str(uuid.uuid4()), "cables_ranges", True)
    assert sent(sim, before, CORRECTION) == 0


# --------------------------------------------------------------------------------------------
# cached reads after writes
# --------------------------------------------------------------------------------------------


def test_load_tasks_right_after_actions_shows_the_new_values(sim, client, reader) -> None:
    wo = analysed_work_orders(reader, "jarretiere_connectee")[0]
    task = task_of(wo, "jarretiere_connectee")
    new = not effective(task["state"])
    first = dfs.load_tasks(client)
    client.get_work_order(wo["id"])  # a cached single read as well

    dfs.correct(client, wo["id"], "jarretiere_connectee", new)

    tasks = dfs.load_tasks(client).set_index(["work_order_id", "task_name"])
    row = tasks.loc[(wo["id"], "jarretiere_connectee")]
    assert py(row["corrected_value"]) is new and py(row["value"]) is new
    assert len(tasks) == len(first)
    assert task_of(client.get_work_order(wo["id"]), task["name"])["state"]["corrected_value"] is new

    fresh = client.create_work_order("load-after-analyze")["id"]
    dfs.load_tasks(client)
    dfs.analyze(
        client,
        fresh,
        "releve-optique",
        image_url(releve_optique_quality=True, mesure_puissance=-9),
    )
    tasks = dfs.load_tasks(client).set_index(["work_order_id", "task_name"])
    assert tasks.loc[(fresh, "mesure_puissance"), "value"] == -9
    assert tasks.loc[(fresh, "mesure_puissance"), "message"] == "Dans la plage"
