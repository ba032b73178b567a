"""dfs.Campaign: validate, preview, apply (journaled, resumable), verify, over real HTTP against
the simulator; with faults and throttling on, every planned correction is accepted exactly once.

Plans are built from what the server holds: each planned value differs from the task's current
effective value, so every applied row is exactly one accepted correction call on the simulator
(``sim.correction_counts()``).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from tests.helpers import (
    CHOICES,
    CORRECTION,
    VALIDATORS,
    corrections,
    events_by_task,
    patches,
    plan_frame,
    py,
    same,
    targets,
    task_of,
    text,
)

FAULTS = {"fault_rate": 0.2, "throttle_rate": 0.1, "retry_after": 0}
PROBLEM_COLUMNS = ["row", "work_order_id", "task", "corrected_value", "problem"]
PREVIEW_COLUMNS = [
    "row",
    "work_order_id",
    "task_name",
    "task_id",
    "current_value",
    "current_message",
    "new_value",
    "action",
]
RESULT_COLUMNS = [
    "row",
    "work_order_id",
    "task_name",
    "task_id",
    "value",
    "status",
    "attempts",
    "detail",
]
VERIFY_COLUMNS = [
    "row",
    "work_order_id",
    "task_name",
    "planned_value",
    "server_value",
    "problem",
]
BOOLEANS = ("pb_etiquette_presente", "cables_ranges", "jarretiere_connectee")


pytestmark = pytest.mark.sim(work_orders=150, seed=31, variants=VALIDATORS)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def missing_or_same(a: Any, b: Any) -> bool:
    """Equal, or both missing (None or NaN)."""
    a, b = py(a), py(b)
    gone_a = a is None or (isinstance(a, float) and a != a)
    gone_b = b is None or (isinstance(b, float) and b != b)
    return (gone_a and gone_b) or (not gone_a and not gone_b and same(a, b))


def complete_work_order(reader: dfs.Client) -> dict[str, Any]:
    """A work order with every task group, every task analysed."""
    for wo in reader.list_work_orders():
        if len(wo["tasks"]) >= 13 and all(
            t["state"] and t["state"]["analyzed_value"] is not None for t in wo["tasks"]
        ):
            return wo
    raise AssertionError("no work order with every task analysed")


def journal_records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    records = [json.loads(line) for line in raw.splitlines()]  # every line is valid JSON
    # the plan's fingerprint comes first, once, before any row's record
    plans = [i for i, record in enumerate(records) if record["event"] == "plan"]
    assert plans == [0], records[:3]
    assert len(records[0]["fingerprint"]) == 64 and records[0]["rows"] >= 1
    for record in records[1:]:
        assert {"time", "event", "work_order_id", "task_id", "value", "row"} <= set(record)
    return records[1:]


def assert_server_has(reader: dfs.Client, items: list[dict[str, Any]]) -> None:
    for item in items:
        state = task_of(reader.get_work_order(item["work_order_id"]), item["task_name"])["state"]
        assert same(state["corrected_value"], item["value"]), item


# --------------------------------------------------------------------------------------------
# a good plan
# --------------------------------------------------------------------------------------------


def test_apply_a_dataframe_plan(sim, client, reader, tmp_path: Path) -> None:
    items = targets(reader, 30)
    plan = plan_frame(items)
    journal = tmp_path / "j.jsonl"
    campaign = dfs.Campaign(client, plan, journal=journal)
    assert isinstance(campaign, dfs.campaign.Campaign)

    problems = campaign.validate()
    assert list(problems.columns) == PROBLEM_COLUMNS
    assert problems.empty

    preview = campaign.preview()
    assert list(preview.columns) == PREVIEW_COLUMNS
    assert list(preview["row"]) == list(range(len(items)))
    assert (preview["action"] == "apply").all()
    for item, row in zip(items, preview.itertuples(index=False), strict=True):
        assert row.work_order_id == item["work_order_id"]
        assert row.task_id == item["task_id"] and row.task_name == item["task_name"]
        assert same(row.current_value, item["current"])
        assert missing_or_same(row.current_message, item["task"]["state"]["message"])
        assert same(row.new_value, item["value"])
    assert patches(sim) == 0 and not journal.exists()  # validate and preview send nothing

    result = campaign.apply()

    assert list(result.columns) == RESULT_COLUMNS
    assert list(result["row"]) == list(range(len(items)))
    assert (result["status"] == "applied").all(), result
    assert (result["attempts"] == 1).all()
    assert result["detail"].isna().all()
    for item, row in zip(items, result.itertuples(index=False), strict=True):
        assert same(row.value, item["value"])
        assert row.task_id == item["task_id"]
    assert corrections(sim) == {(i["work_order_id"], i["task_id"]): 1 for i in items}
    assert_server_has(reader, items)
    assert campaign.verify().empty
    assert list(campaign.verify().columns) == VERIFY_COLUMNS

    # the journal: valid JSON lines, each correction's attempt, then its outcome
    records = journal_records(journal)
    by_task = events_by_task(records)
    assert set(by_task) == {(i["work_order_id"], i["task_id"]) for i in items}
    assert all(events == ["attempt", "applied"] for events in by_task.values())
    for record in records:
        item = items[record["row"]]
        assert record["work_order_id"] == item["work_order_id"]
        assert same(record["value"], item["value"])
        if record["event"] == "applied":
            assert same(record["state"]["corrected_value"], item["value"])


def test_apply_a_csv_plan_then_again_sends_nothing(sim, client, reader, tmp_path: Path) -> None:
    items = targets(reader, 24)
    path = tmp_path / "plan.csv"
    frame = plan_frame(items)
    frame.to_csv(path, index=False)
    assert "Conforme" in path.read_text() or "conforme" in path.read_text()
    journal = tmp_path / "j.jsonl"

    campaign = dfs.Campaign(client, path, journal=journal)
    assert campaign.validate().empty
    preview = campaign.preview()
    assert (preview["action"] == "apply").all()
    assert [same(a, i["value"]) for a, i in zip(preview["new_value"], items, strict=True)] == [
        True
    ] * len(items)
    result = campaign.apply(max_workers=4)
    assert (result["status"] == "applied").all()
    expected = {(i["work_order_id"], i["task_id"]): 1 for i in items}
    assert corrections(sim) == expected
    lines = journal.read_text().splitlines()

    # again, the same object and a new one on the same journal: nothing is sent
    sent = patches(sim)
    again = campaign.apply()
    assert (again["status"] == "applied earlier").all(), again
    resumed = dfs.Campaign(client, path, journal=journal).apply()
    assert (resumed["status"] == "applied earlier").all(), resumed
    assert list(resumed["row"]) == list(range(len(items)))
    assert patches(sim) == sent
    assert corrections(sim) == expected
    assert journal.read_text().splitlines() == lines  # nothing new happened

    # a new journal: the server already has the values, so nothing is sent either
    other = dfs.Campaign(client, path, journal=tmp_path / "other.jsonl")
    assert (other.preview()["action"] == "skip: already that value").all()
    skipped = other.apply()
    assert (skipped["status"] == "skipped").all()
    assert (skipped["detail"] == "already that value").all()
    assert patches(sim) == sent
    assert other.verify().empty


def test_a_plan_with_task_ids_only(sim, client, reader, tmp_path: Path) -> None:
    items = targets(reader, 6)
    path = tmp_path / "plan.csv"
    path.write_text(
        "work_order_id,task_id,corrected_value\n"
        + "".join(f" {i['work_order_id']} , {i['task_id']},{text(i['value'])}\n" for i in items)
    )
    campaign = dfs.Campaign(client, path, journal=tmp_path / "j.jsonl")
    assert campaign.validate().empty
    assert (campaign.apply()["status"] == "applied").all()
    assert corrections(sim) == {(i["work_order_id"], i["task_id"]): 1 for i in items}


# --------------------------------------------------------------------------------------------
# bad plans: a problem table, nothing sent
# --------------------------------------------------------------------------------------------


def test_validate_lists_every_bad_row_and_apply_sends_nothing(
    sim, client, reader, tmp_path: Path
) -> None:
    good, dup = targets(reader, 2)
    conflict = targets(reader, 1, skip=4, names=BOOLEANS)[0]
    other = complete_work_order(reader)
    fresh = client.create_work_order("never-analysed")
    never = next(
        (wo, t)
        for wo in reader.list_work_orders()
        for t in wo["tasks"]
        if t["state"] is None and t["name"] in CHOICES
    )
    rows = [
        (good["work_order_id"], good["task_name"], text(good["value"])),  # 0 ok
        (str(uuid.uuid4()), "cables_ranges", "true"),  # 1 unknown work order
        (other["id"], "no_such_task", "true"),  # 2 unknown task name
        (other["id"], "cables_ranges", "maybe"),  # 3 not a boolean
        (fresh["id"], "cables_ranges", "true"),  # 4 never analysed (new work order)
        (conflict["work_order_id"], conflict["task_name"], text(conflict["value"])),  # 5
        (conflict["work_order_id"], conflict["task_name"], text(conflict["current"])),  # 6
        (good["work_order_id"], good["task_name"], text(good["value"])),  # 7 same as row 0
        (other["id"], "cables_ranges", ""),  # 8 no value
        ("", "cables_ranges", "true"),  # 9 no work order
        (other["id"], "", "true"),  # 10 no task
        (never[0]["id"], never[1]["name"], text(CHOICES[never[1]["name"]][0])),  # 11 never
        (other["id"], "nombre_connecteurs", "-1"),  # 12 no rule allows it
        (other["id"], "bouchon_retire", "KO"),  # 13 not a verdict of that task
        (other["id"], "couleur_fibre", "violet"),  # 14 not allowed
        (dup["work_order_id"], dup["task_name"], text(dup["value"])),  # 15 ok
    ]
    plan = pd.DataFrame(rows, columns=["work_order_id", "task_name", "corrected_value"])
    journal = tmp_path / "j.jsonl"
    before = sim.request_counts()

    campaign = dfs.Campaign(client, plan, journal=journal)
    problems = campaign.validate()

    assert list(problems.columns) == PROBLEM_COLUMNS
    assert sorted(problems["row"].astype(int)) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    why = dict(zip(problems["row"].astype(int), problems["problem"], strict=True))
    assert "unknown work order" in why[1]
    assert "no_such_task" in why[2]
    assert "boolean" in why[3]
    assert "never analysed" in why[4] and "never analysed" in why[11]
    assert "conflicting" in why[5] and "conflicting" in why[6]
    assert "corrected_value" in why[8]
    assert "work_order_id" in why[9]
    assert "task" in why[10]
    for row in (12, 13, 14):
        assert why[row]
    assert all(isinstance(p, str) and p for p in problems["problem"])

    preview = campaign.preview().set_index("row")
    assert preview.loc[0, "action"] == "apply"
    assert preview.loc[7, "action"] == "skip: duplicate of row 0"
    assert preview.loc[15, "action"] == "apply"
    for row in why:
        assert preview.loc[row, "action"].startswith("invalid: "), row

    with pytest.raises(dfs.CampaignValidationError) as info:
        campaign.apply()
    assert "nothing was sent" in str(info.value)
    pd.testing.assert_frame_equal(info.value.problems, problems)
    assert isinstance(info.value, dfs.ConfigurationError)
    assert sim.request_counts().get(CORRECTION, 0) == before.get(CORRECTION, 0)
    assert corrections(sim) == {}
    assert not journal.exists() or all(
        r["event"] not in ("attempt", "applied") for r in journal_records(journal)
    )


def _csv_cases(item: dict[str, Any]) -> dict[str, tuple[bytes | None, str]]:
    """Plan files that are not plans: (content, or None for no file; what the problem says)."""
    wo_id = item["work_order_id"]
    header = b"work_order_id,task_name,corrected_value\n"
    return {
        "missing corrected_value": (
            f"work_order_id,task_name\n{wo_id},cables_ranges\n".encode(),
            "missing column",
        ),
        "missing task columns": (
            f"work_order_id,corrected_value\n{wo_id},true\n".encode(),
            "task_name",
        ),
        "missing work_order_id": (b"task_name,corrected_value\ncables_ranges,true\n", "missing"),
        "unterminated quote": (header + f'"{wo_id},cables_ranges,true\n'.encode(), "malformed"),
        "ragged rows": (
            header + f"{wo_id},cables_ranges,true\n{wo_id},x,true,extra\n".encode(),
            "malformed",
        ),
        # every row one field too many: never read by shifting the columns (the first field
        # taken as an index), which here would give a valid-looking correction of a real task
        "a field too many on every row": (
            header + f"note,{wo_id},{item['task_name']},{text(item['value'])}\n".encode(),
            "malformed",
        ),
        "empty file": (b"", "malformed"),
        "header only": (header, "no rows"),
        "not text": (b"\xff\xfe\x00\x81 plan \x00\xff\n", "malformed"),
        "no file": (None, "not found"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing corrected_value",
        "missing task columns",
        "missing work_order_id",
        "unterminated quote",
        "ragged rows",
        "a field too many on every row",
        "empty file",
        "header only",
        "not text",
        "no file",
    ],
)
def test_a_malformed_csv_gives_a_problem_table(
    sim, client, reader, tmp_path: Path, case: str
) -> None:
    content, match = _csv_cases(targets(reader, 1)[0])[case]
    path = tmp_path / "plan.csv"
    if content is not None:
        path.write_bytes(content)
    before = sim.request_counts()

    campaign = dfs.Campaign(client, path, journal=tmp_path / "j.jsonl")
    problems = campaign.validate()

    assert len(problems) >= 1
    assert list(problems.columns) == PROBLEM_COLUMNS
    assert match in " ".join(problems["problem"]), problems["problem"].tolist()
    assert problems["row"].isna().all()  # about the whole plan, not a row
    assert campaign.preview()["action"].str.startswith("invalid: ").any()
    with pytest.raises(dfs.CampaignValidationError):
        campaign.apply()
    assert sim.request_counts().get(CORRECTION, 0) == before.get(CORRECTION, 0)
    assert corrections(sim) == {}


def test_a_frame_without_the_columns_and_a_plan_of_another_type(
    sim, client, tmp_path: Path
) -> None:
    bad = dfs.Campaign(
        client, pd.DataFrame({"wo": ["x"], "value": ["true"]}), journal=tmp_path / "j.jsonl"
    )
    assert "missing column" in bad.validate()["problem"].iloc[0]
    with pytest.raises(dfs.CampaignValidationError):
        bad.apply()
    with pytest.raises(dfs.ConfigurationError):
        dfs.Campaign(client, 42, journal=tmp_path / "j.jsonl")  # type: ignore[arg-type]
    assert corrections(sim) == {}


@pytest.mark.parametrize(
    "blank", [None, float("nan"), pd.NA, "  "], ids=["none", "nan", "pd-na", "spaces"]
)
def test_blank_cells_of_a_frame_plan(sim, client, reader, tmp_path: Path, blank: Any) -> None:
    """None, NaN, pd.NA and blank text are all "no value": a row without a work order, a task
    or a value has that problem; a blank task_name beside a task_id is none."""
    item, other = targets(reader, 2)
    plan = pd.DataFrame(
        [
            (blank, item["task_name"], None, text(item["value"])),
            (item["work_order_id"], blank, blank, text(item["value"])),
            (item["work_order_id"], item["task_name"], None, blank),
            (other["work_order_id"], blank, other["task_id"], other["value"]),
        ],
        columns=["work_order_id", "task_name", "task_id", "corrected_value"],
        dtype=object,
    )
    campaign = dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl")

    problems = campaign.validate()

    why = dict(zip(problems["row"], problems["problem"], strict=True))
    assert set(why) == {0, 1, 2}, why
    assert why[0] == "no work_order_id"
    assert why[1] == "no task_name or task_id"
    assert why[2] == f"task {item['task_name']!r}: no corrected_value"
    assert campaign.preview()["action"].iloc[3] == "apply"
    with pytest.raises(dfs.CampaignValidationError):
        campaign.apply()
    assert patches(sim) == 0


def test_a_dataframe_plan_with_typed_columns(sim, client, reader, tmp_path: Path) -> None:
    """A plan built with pandas: a bool column, an int64 column (numpy scalars)."""
    booleans = targets(reader, 4, names=BOOLEANS)
    numbers = targets(reader, 4, names=("nombre_connecteurs",))
    for n, items in enumerate((booleans, numbers)):
        plan = pd.DataFrame(
            {
                "work_order_id": [i["work_order_id"] for i in items],
                "task_name": [i["task_name"] for i in items],
                "corrected_value": [i["value"] for i in items],
            }
        )
        assert plan["corrected_value"].dtype != object
        campaign = dfs.Campaign(client, plan, journal=tmp_path / f"j{n}.jsonl")
        assert campaign.validate().empty, campaign.validate()["problem"].tolist()
        assert (campaign.apply()["status"] == "applied").all()
        assert_server_has(reader, items)
    assert set(corrections(sim).values()) == {1}
    assert len(corrections(sim)) == 8


# --------------------------------------------------------------------------------------------
# preview and skips
# --------------------------------------------------------------------------------------------


def test_preview_actions_and_apply_statuses(sim, client, reader, tmp_path: Path) -> None:
    change, keep, other = targets(reader, 3)
    plan = pd.DataFrame(
        [
            (change["work_order_id"], change["task_name"], text(change["value"])),
            (keep["work_order_id"], keep["task_name"], text(keep["current"])),  # already
            (change["work_order_id"], change["task_id"], change["value"]),  # same, by id
            (other["work_order_id"], other["task_name"], other["value"]),
        ],
        columns=["work_order_id", "task_name", "corrected_value"],
    )
    campaign = dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl")
    preview = campaign.preview()
    assert list(preview["action"]) == [
        "apply",
        "skip: already that value",
        "skip: duplicate of row 0",
        "apply",
    ]
    assert same(preview.loc[1, "current_value"], keep["current"])
    assert same(preview.loc[1, "new_value"], keep["current"])
    assert patches(sim) == 0

    result = campaign.apply()
    assert list(result["status"]) == ["applied", "skipped", "skipped", "applied"]
    assert list(result["detail"].iloc[1:3]) == ["already that value", "duplicate of row 0"]
    assert corrections(sim) == {
        (change["work_order_id"], change["task_id"]): 1,
        (other["work_order_id"], other["task_id"]): 1,
    }
    assert campaign.verify().empty
    # after apply, the preview reads the server again
    assert list(campaign.preview()["action"]) == [
        "skip: already that value",
        "skip: already that value",
        "skip: duplicate of row 0",
        "skip: already that value",
    ]


def test_apply_decides_from_the_servers_state_at_apply_time(
    sim, client, reader, tmp_path: Path
) -> None:
    """Between the preview and apply, another user changes tasks: apply fixes a task the
    preview found already right, and sends nothing for one someone already set."""
    fixed, keep, done_by_other, plain = targets(reader, 4)
    plan = pd.DataFrame(
        [
            (fixed["work_order_id"], fixed["task_name"], fixed["current"]),  # already, then not
            (keep["work_order_id"], keep["task_name"], keep["current"]),  # already, and stays
            (done_by_other["work_order_id"], done_by_other["task_name"], done_by_other["value"]),
            (plain["work_order_id"], plain["task_name"], plain["value"]),
        ],
        columns=["work_order_id", "task_name", "corrected_value"],
    )
    campaign = dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl")
    assert list(campaign.preview()["action"]) == [
        "skip: already that value",
        "skip: already that value",
        "apply",
        "apply",
    ]
    # someone else, after the preview
    dfs.correct(reader, fixed["work_order_id"], fixed["task_id"], fixed["value"])
    dfs.correct(
        reader, done_by_other["work_order_id"], done_by_other["task_id"], done_by_other["value"]
    )
    counts = corrections(sim)

    result = campaign.apply()

    assert list(result["status"]) == ["applied", "skipped", "skipped", "applied"], result
    assert list(result["detail"].iloc[1:3]) == ["already that value", "already that value"]
    now = corrections(sim)
    assert now[(fixed["work_order_id"], fixed["task_id"])] == 2  # the other user's, then ours
    assert now[(done_by_other["work_order_id"], done_by_other["task_id"])] == 1  # theirs only
    assert now[(plain["work_order_id"], plain["task_id"])] == 1
    assert sum(now.values()) == sum(counts.values()) + 2
    assert campaign.verify().empty
    server = task_of(reader.get_work_order(fixed["work_order_id"]), fixed["task_name"])
    assert same(server["state"]["corrected_value"], fixed["current"])


def test_thousands_of_conflicting_or_duplicate_rows_validate_correctly(
    sim, client, reader, tmp_path: Path
) -> None:
    """8,000 rows planning two values for one task all conflict, with a short message each
    (the check is linear in the rows); 3,000 rows planning one value (in its different forms)
    for another task are one correction."""
    wo = complete_work_order(reader)
    boolean = task_of(wo, "cables_ranges")
    number = task_of(wo, "nombre_connecteurs")
    conflicting = [
        (wo["id"], "cables_ranges", value) for value in [True, "false", "Conforme"] * 2666
    ] + [(wo["id"], "cables_ranges", False)] * 2
    assert len(conflicting) == 8000
    duplicates = [(wo["id"], "nombre_connecteurs", value) for value in (7, "7", 7.0)] * 1000
    plan = pd.DataFrame(
        conflicting + duplicates, columns=["work_order_id", "task_name", "corrected_value"]
    )
    campaign = dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl")

    problems = campaign.validate()

    assert list(problems["row"]) == list(range(8000))
    messages = set(problems["problem"])
    assert len(messages) == 1, messages
    message = messages.pop()
    assert message.startswith("conflicting rows for task 'cables_ranges': 8000 rows plan 2")
    assert "True in row 0" in message and "False in row 1" in message
    assert len(message) < 300
    assert problems["problem"].str.len().sum() < 8000 * 300  # linear, not quadratic

    preview = campaign.preview().set_index("row")
    actions = preview.loc[8000:, "action"]
    assert actions.iloc[0] in ("apply", "skip: already that value")
    assert (actions.iloc[1:] == "skip: duplicate of row 8000").all()
    assert preview.loc[8000, "task_id"] == number["id"]
    assert (preview.loc[:7999, "task_id"] == boolean["id"]).all()
    with pytest.raises(dfs.CampaignValidationError, match="8000 problem"):
        campaign.apply()
    assert patches(sim) == 0


# --------------------------------------------------------------------------------------------
# resuming: outcomes in doubt are checked, never re-sent blindly
# --------------------------------------------------------------------------------------------


def test_resume_checks_rows_in_doubt_against_the_server(
    sim, client, reader, tmp_path: Path
) -> None:
    items = targets(reader, 12)
    plan = plan_frame(items, forms=False)
    journal = tmp_path / "j.jsonl"
    assert (dfs.Campaign(client, plan, journal=journal).apply()["status"] == "applied").all()
    records = journal_records(journal)

    # as if the process died: rows 0-3 after sending, before their outcome was journaled;
    # rows 4-5 after journaling the attempt, before sending (another user put the old value
    # back, so the server does not have the planned one); rows 6-7 before anything was written
    died_after_send = {0, 1, 2, 3}
    died_before_send = {4, 5}
    never_started = {6, 7}
    kept = [
        r
        for r in records
        if not (r["row"] in died_after_send | died_before_send and r["event"] == "applied")
        and r["row"] not in never_started
    ]
    journal.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"torn": ')
    for row in died_before_send:
        item = items[row]
        dfs.correct(reader, item["work_order_id"], item["task_id"], item["current"])
    counts = corrections(sim)
    sent = patches(sim)

    result = dfs.Campaign(client, plan, journal=journal).apply().set_index("row")

    for row in died_after_send:
        assert result.loc[row, "status"] == "confirmed", result.loc[row]
    for row in died_before_send:
        assert result.loc[row, "status"] == "applied"
    for row in never_started:
        assert result.loc[row, "status"] == "skipped"  # the server already has the value
    for row in set(range(12)) - died_after_send - died_before_send - never_started:
        assert result.loc[row, "status"] == "applied earlier"
    assert patches(sim) == sent + len(died_before_send)
    now = corrections(sim)
    for row, item in enumerate(items):
        key = (item["work_order_id"], item["task_id"])
        assert now[key] == counts[key] + (1 if row in died_before_send else 0)
    assert dfs.Campaign(client, plan, journal=journal).verify().empty


def test_a_row_that_gave_up_in_doubt_is_checked_before_anything_is_resent(
    sim, client, reader, tmp_path: Path
) -> None:
    """A run can end a row with 'failed' ("gave up") while its last attempt is in doubt: every
    attempt's answer was lost and, at the end, the server could not be asked. That row's
    outcome is still in doubt: the next run must check the server before re-sending it."""
    items = targets(reader, 3)
    plan = plan_frame(items, forms=False)
    journal = tmp_path / "j.jsonl"
    assert (dfs.Campaign(client, plan, journal=journal).apply()["status"] == "applied").all()
    records = journal_records(journal)
    # rewrite row 0's history as that run would have journaled it (its correction was applied
    # by the server, but no answer came back)
    first = next(r for r in records if r["row"] == 0)
    ids = {k: first[k] for k in ("key", "row", "work_order_id", "task_id", "task_name", "value")}
    lost = "PATCH ...: the request was sent but its answer was lost (Connection aborted)"
    history = []
    for attempt in range(1, 7):
        history.append({"time": first["time"], **ids, "event": "attempt", "attempt": attempt})
        history.append(
            {"time": first["time"], **ids, "event": "in doubt", "attempt": attempt, "detail": lost}
        )
    history.append(
        {
            "time": first["time"],
            **ids,
            "event": "failed",
            "attempt": 6,
            "detail": f"gave up: {lost}",
        }
    )
    kept = [r for r in records if r["row"] != 0] + history
    journal.write_text("".join(json.dumps(r) + "\n" for r in kept))
    counts = corrections(sim)

    result = dfs.Campaign(client, plan, journal=journal).apply().set_index("row")

    assert result.loc[0, "status"] in ("confirmed", "applied earlier", "skipped"), result.loc[0]
    assert corrections(sim) == counts, "a correction in doubt was sent again without a check"


def test_a_permanent_failure_is_reported_not_dropped(sim, client, reader, tmp_path: Path) -> None:
    items = targets(reader, 8)
    plan = plan_frame(items, forms=False)
    journal = tmp_path / "j.jsonl"
    campaign = dfs.Campaign(client, plan, journal=journal)
    assert (campaign.preview()["action"] == "apply").all()
    gone = items[3]
    reader.delete_work_order(gone["work_order_id"])  # by someone else, after the preview

    try:
        result = campaign.apply()
    except dfs.CampaignValidationError as exc:  # re-validated: also reported, nothing sent
        assert set(exc.problems["work_order_id"]) == {gone["work_order_id"]}
        assert corrections(sim) == {}
        return
    failed = result[result["status"] == "failed"]
    assert set(failed["work_order_id"]) == {gone["work_order_id"]}
    assert failed["detail"].str.contains("404|not found|Not found").all()
    others = result[result["work_order_id"] != gone["work_order_id"]]
    assert (others["status"] == "applied").all()
    outcomes = events_by_task(journal_records(journal))
    assert outcomes[(gone["work_order_id"], gone["task_id"])][-1] == "failed"


# --------------------------------------------------------------------------------------------
# verify, and cached reads after a campaign
# --------------------------------------------------------------------------------------------


def test_verify_finds_rows_changed_by_someone_else(sim, client, reader, tmp_path: Path) -> None:
    items = targets(reader, 10)
    campaign = dfs.Campaign(client, plan_frame(items), journal=tmp_path / "j.jsonl")
    campaign.apply()
    assert campaign.verify().empty

    changed = items[4]
    back = changed["current"]
    dfs.correct(reader, changed["work_order_id"], changed["task_name"], back)

    mismatches = campaign.verify()
    assert list(mismatches.columns) == VERIFY_COLUMNS
    assert len(mismatches) == 1
    row = mismatches.iloc[0]
    assert row["row"] == 4
    assert row["work_order_id"] == changed["work_order_id"]
    assert row["task_name"] == changed["task_name"]
    assert same(row["planned_value"], changed["value"])
    assert same(row["server_value"], back)
    assert row["problem"]


def test_load_tasks_right_after_a_campaign_shows_the_new_values(
    sim, client, reader, tmp_path: Path
) -> None:
    items = targets(reader, 20)
    before = dfs.load_tasks(client)  # fills the cache of this client
    for item in items:
        client.get_work_order(item["work_order_id"])  # and single reads too
    campaign = dfs.Campaign(client, plan_frame(items), journal=tmp_path / "j.jsonl")
    assert (campaign.apply()["status"] == "applied").all()

    after = dfs.load_tasks(client).set_index(["work_order_id", "task_id"])
    assert len(after) == len(before)
    for item in items:
        row = after.loc[(item["work_order_id"], item["task_id"])]
        assert same(row["corrected_value"], item["value"]), item
        assert same(row["value"], item["value"]), item
        assert bool(row["is_corrected"]) is True
        state = task_of(client.get_work_order(item["work_order_id"]), item["task_name"])["state"]
        assert same(state["corrected_value"], item["value"])


# --------------------------------------------------------------------------------------------
# faults and throttling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault_seed", [1, 2, 3])
def test_a_campaign_under_faults_applies_each_correction_exactly_once(
    dfs_simulator_factory, tmp_path: Path, fault_seed: int
) -> None:
    sim = dfs_simulator_factory(work_orders=150, seed=40 + fault_seed, fault_seed=fault_seed)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as clean:
        items = targets(clean, 100)
    plan = plan_frame(items)
    journal = tmp_path / "j.jsonl"
    planned = {(i["work_order_id"], i["task_id"]) for i in items}
    assert len(planned) == 100

    sim.configure(**FAULTS)
    # A request fails (429 or fault) with p = 0.1 + 0.9 * 0.2 = 0.28: at the default 5 retries
    # one of the campaign's few hundred requests runs out of them in about one run in ten, and
    # the row is reported instead of applied. With 20 retries that takes 0.28 ** 21 (~3e-12)
    # per request: the faults still hit every kind of request, the retries always win.
    with dfs.Client(
        sim.base_url,
        api_key=sim.api_key,
        cache=tmp_path / "cache",
        progress=False,
        backoff_factor=0.05,
        retries=20,
    ) as client:
        result = dfs.Campaign(client, plan, journal=journal).apply()

        assert list(result["row"]) == list(range(100))  # every row reported
        assert set(result["status"]) <= {"applied", "confirmed", "failed", "in doubt"}
        reported = result[~result["status"].isin(["applied", "confirmed"])]
        assert reported["detail"].notna().all()
        assert reported.empty, reported  # with retries, every row gets through
        counts = corrections(sim)
        assert {k: counts.get(k, 0) for k in planned} == dict.fromkeys(planned, 1)
        assert set(counts) == planned

        # every row's last journaled event is its outcome
        last = {k: events[-1] for k, events in events_by_task(journal_records(journal)).items()}
        assert set(last) == planned
        assert set(last.values()) <= {"applied", "confirmed"}

        # again, still under faults: nothing new is sent
        again = dfs.Campaign(client, plan, journal=journal).apply()
        assert (again["status"] == "applied earlier").all()
        assert corrections(sim) == counts

    sim.configure(fault_rate=0.0, throttle_rate=0.0)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as clean:
        assert dfs.Campaign(clean, plan, journal=journal).verify().empty
        assert_server_has(clean, items)


def test_a_journal_of_another_site_is_refused(
    sim, client, reader, tmp_path: Path, dfs_simulator_factory
) -> None:
    items = targets(reader, 4)
    journal = tmp_path / "j.jsonl"
    dfs.Campaign(client, plan_frame(items), journal=journal).apply()
    lines = journal.read_text()

    other_sim = dfs_simulator_factory(work_orders=150, seed=31)  # same data, another server
    other = dfs.Client(other_sim.base_url, api_key=other_sim.api_key, cache=None, progress=False)
    with pytest.raises(dfs.ConfigurationError, match="belongs to a campaign on"):
        dfs.Campaign(other, plan_frame(items), journal=journal).apply()
    assert patches(other_sim) == 0  # nothing sent to the other server
    assert journal.read_text() == lines  # and the journal is unchanged


@pytest.mark.sim(work_orders=6, seed=9)
def test_campaign_max_workers_must_be_positive(sim, client_for, tmp_path: Path) -> None:
    plan = pd.DataFrame(columns=["work_order_id", "task_name", "corrected_value"])
    campaign = dfs.Campaign(client_for(sim, cache=None), plan, journal=tmp_path / "j.jsonl")
    for bad in (0, -2, 1.5):
        with pytest.raises(dfs.ConfigurationError, match="max_workers"):
            campaign.apply(max_workers=bad, progress=False)
