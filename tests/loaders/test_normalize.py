"""normalize: exact values and dtypes of the four frames, on small hand-built JSON."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from dfs_analytics import normalize
from tests.helpers import verdict_rule

UTC = "UTC"


def flag(value: Any) -> bool | None:
    """A nullable boolean cell as None / True / False."""
    return None if pd.isna(value) else bool(value)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert(UTC)


def task(
    tid: str,
    name: str,
    outcome_type: str,
    state: dict[str, Any] | None,
    *,
    group: str = "grp-a",
    conformity: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": tid,
        "name": name,
        "sentence": name.replace("_", " ").capitalize(),
        "mandatory": True,
        "only_for_dashboard": False,
        "conformity_status": conformity,
        "outcome_display": "Select",
        "outcome_type": outcome_type,
        "outcome_validation": [],
        "questionnaire_id": "g-" + group,
        "task_group_id": "g-" + group,
        "task_group_name": group,
        "state": state,
        **extra,
    }


def state(analyzed: Any, corrected: Any, message: str | None, conform: bool | None, **extra):
    return {
        "analyzed_value": analyzed,
        "corrected_value": corrected,
        "message": message,
        "is_conform": conform,
        "analysis_id": "an-1",
        "update_date": "2026-03-05T09:00:00+01:00",
        **extra,
    }


def work_order(wid: str = "wo-1", **overrides: Any) -> dict[str, Any]:
    wo = {
        "id": wid,
        "name": "WO_" + wid,
        "site_id": "site-1",
        "app_version_id": "v1",
        "create_date": "2026-03-05T08:52:30.110425Z",
        "update_date": "2026-03-05T10:00:00+01:00",
        "review_date": None,
        "first_analysis_id": "an-1",
        "latest_analysis_id": "an-2",
        "progress_score": 50,
        "metadata": {"region": "north", "lot": 3},
        "tags": ["b2b"],
        "types": [],
        "field_engineer_email": "tech@example.com",
        "field_engineer_name": "Tech One",
        "tasks": [],
    }
    wo.update(overrides)
    return wo


@pytest.fixture
def wos() -> list[dict[str, Any]]:
    tasks = [
        # Text task never analysed
        task("t-text", "serial", "Text", None),
        # Number task corrected to the very value the AI gave: corrected, not overridden
        task("t-num", "power", "Number", state(-12.5, -12.5, "In range", True)),
        # Boolean task corrected to the other value: overridden
        task(
            "t-bool",
            "label_present",
            "Boolean",
            state(False, True, "OK", True, confidence=0.93),
            weight=2,
        ),
        # Boolean task analysed, not corrected
        task("t-bool2", "cap_removed", "Boolean", state(True, None, "OK", True), group="grp-b"),
    ]
    first = work_order(
        "wo-1",
        tasks=tasks,
        review_date="2026-03-06T12:00:00+01:00",
        priority="high",
    )
    second = work_order(
        "wo-2",
        create_date="2026-03-07T00:30:00-02:00",
        update_date="2026-03-07T03:00:00Z",
        metadata={"region": "south", "checked": True},
        tags=[],
        progress_score=None,
        field_engineer_email=None,
        field_engineer_name=None,
        tasks=[task("t-num", "power", "Number", state(-30, None, "Too weak", False))],
    )
    return [first, second]


# -- work orders ------------------------------------------------------------------------------


def test_work_orders_frame_values(wos) -> None:
    df = normalize.work_orders_frame(wos)
    assert list(df["work_order_id"]) == ["wo-1", "wo-2"]
    assert list(df["name"]) == ["WO_wo-1", "WO_wo-2"]
    assert df.loc[0, "create_date"] == ts("2026-03-05T08:52:30.110425Z")
    assert df.loc[0, "update_date"] == ts("2026-03-05T09:00:00Z")  # +01:00 -> UTC
    assert df.loc[0, "review_date"] == ts("2026-03-06T11:00:00Z")
    assert df.loc[1, "create_date"] == ts("2026-03-07T02:30:00Z")  # -02:00 -> UTC
    assert pd.isna(df.loc[1, "review_date"])
    assert list(df["reviewed"]) == [True, False]
    assert df.loc[0, "progress_score"] == 50
    assert df["progress_score"].isna().tolist() == [False, True]
    assert list(df["n_tasks"]) == [4, 1]
    assert df.loc[0, "tags"] == ["b2b"] and df.loc[1, "tags"] == []
    assert df.loc[0, "field_engineer_email"] == "tech@example.com"
    assert pd.isna(df.loc[1, "field_engineer_email"])


def test_work_orders_frame_keeps_metadata_and_unknown_keys(wos) -> None:
    df = normalize.work_orders_frame(wos)
    assert list(df["metadata.region"]) == ["north", "south"]
    assert df.loc[0, "metadata.lot"] == 3 and pd.isna(df.loc[1, "metadata.lot"])
    assert pd.isna(df.loc[0, "metadata.checked"]) and df.loc[1, "metadata.checked"] is True
    assert df.loc[0, "priority"] == "high" and pd.isna(df.loc[1, "priority"])
    assert "tasks" not in df.columns and "metadata" not in df.columns


def test_work_orders_frame_dtypes(wos) -> None:
    df = normalize.work_orders_frame(wos)
    for col in ("create_date", "update_date", "review_date"):
        assert isinstance(df[col].dtype, pd.DatetimeTZDtype), col
        assert str(df[col].dt.tz) == UTC
    for col in ("site_id", "app_version_id", "field_engineer_email", "field_engineer_name"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert df["reviewed"].dtype == "boolean"
    assert df["progress_score"].dtype == "Int64"
    assert pd.api.types.is_string_dtype(df["work_order_id"])


def test_missing_optional_keys_become_nulls() -> None:
    bare = {"id": "wo-9", "name": "bare", "create_date": "2026-01-01T00:00:00Z"}
    df = normalize.work_orders_frame([bare])
    assert pd.isna(df.loc[0, "review_date"])
    assert pd.isna(df.loc[0, "progress_score"])
    assert pd.isna(df.loc[0, "update_date"])
    assert df.loc[0, "tags"] == [] and df.loc[0, "types"] == []
    tasks = normalize.tasks_frame([bare])
    assert len(tasks) == 0
    assert set(c.name for c in normalize.TASK_SPEC) <= set(tasks.columns)


# -- tasks ------------------------------------------------------------------------------------


def test_tasks_frame_values(wos) -> None:
    df = normalize.tasks_frame(wos)
    assert len(df) == 5
    assert list(df["work_order_id"]) == ["wo-1"] * 4 + ["wo-2"]
    assert list(df["task_id"]) == ["t-text", "t-num", "t-bool", "t-bool2", "t-num"]
    rows = {(r.work_order_id, r.task_id): r for r in df.itertuples(index=False)}

    text = rows["wo-1", "t-text"]
    assert flag(text.analyzed) is False
    assert text.analyzed_value is None and text.corrected_value is None and text.value is None
    assert pd.isna(text.message) and pd.isna(text.is_conform)
    assert flag(text.is_corrected) is False and flag(text.is_overridden) is False

    same = rows["wo-1", "t-num"]
    assert flag(same.analyzed) is True
    assert same.analyzed_value == -12.5 and same.corrected_value == -12.5 and same.value == -12.5
    assert flag(same.is_corrected) is True
    assert flag(same.is_overridden) is False  # corrected to the AI's own value
    assert same.message == "In range" and flag(same.is_conform) is True
    assert same.outcome_type == "Number"

    flipped = rows["wo-1", "t-bool"]
    assert flipped.analyzed_value is False and flipped.corrected_value is True
    assert flipped.value is True
    assert flag(flipped.is_corrected) is True and flag(flipped.is_overridden) is True

    kept = rows["wo-1", "t-bool2"]
    assert kept.value is True
    assert flag(kept.is_corrected) is False and flag(kept.is_overridden) is False
    assert kept.task_group_name == "grp-b"

    other = rows["wo-2", "t-num"]
    assert other.value == -30 and other.message == "Too weak" and flag(other.is_conform) is False
    assert other.work_order_name == "WO_wo-2"
    assert pd.isna(other.field_engineer_email)
    assert flag(other.reviewed) is False
    assert flag(rows["wo-1", "t-num"].reviewed) is True


def test_tasks_frame_work_order_level_columns(wos) -> None:
    df = normalize.tasks_frame(wos)
    first = df[df["work_order_id"] == "wo-1"]
    assert (first["create_date"] == ts("2026-03-05T08:52:30.110425Z")).all()
    assert (first["update_date"] == ts("2026-03-05T09:00:00Z")).all()
    assert (first["review_date"] == ts("2026-03-06T11:00:00Z")).all()
    assert (first["field_engineer_email"] == "tech@example.com").all()
    assert (first["app_version_id"] == "v1").all()
    assert df.loc[1, "state_update_date"] == ts("2026-03-05T08:00:00Z")
    assert pd.isna(df.loc[0, "state_update_date"])


def test_tasks_frame_keeps_unknown_task_and_state_keys(wos) -> None:
    df = normalize.tasks_frame(wos)
    assert "weight" in df.columns and "state.confidence" in df.columns
    assert df.loc[2, "weight"] == 2 and df.loc[2, "state.confidence"] == 0.93
    assert df["weight"].isna().sum() == 4
    assert df["state.confidence"].isna().sum() == 4


def test_tasks_frame_dtypes(wos) -> None:
    df = normalize.tasks_frame(wos)
    for col in ("task_group_name", "task_id", "task_name", "outcome_type", "message"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    for col in (
        "analyzed",
        "conformity_status",
        "is_conform",
        "is_corrected",
        "is_overridden",
        "reviewed",
    ):
        assert df[col].dtype == "boolean", col
    for col in ("create_date", "update_date", "review_date", "state_update_date"):
        assert isinstance(df[col].dtype, pd.DatetimeTZDtype), col
        assert str(df[col].dt.tz) == UTC
    for col in ("analyzed_value", "corrected_value", "value"):
        assert df[col].dtype == object, col
    # values stay Python objects of the task's type
    assert type(df.loc[2, "value"]) is bool
    assert type(df.loc[1, "value"]) is float


@pytest.mark.parametrize(
    ("outcome_type", "analysed", "corrected", "corrected_flag", "overridden", "value"),
    [
        # JSON equality: 3 is 3.0, so a correction to 3.0 is no override
        ("Number", 3, 3.0, True, False, 3.0),
        # true is not 1
        ("Boolean", 1, True, True, True, True),
        ("Text", "AB12", "AB12", True, False, "AB12"),
        # exact: 2**53 + 1 is not the float 2**53
        ("Number", 2**53 + 1, float(2**53), True, True, float(2**53)),
        # a NaN correction is no value: the analysed value stands
        ("Number", -12.5, float("nan"), False, False, -12.5),
    ],
    ids=["int-vs-float", "bool-vs-number", "same-text", "big-int", "nan-correction"],
)
def test_tasks_frame_corrections_follow_the_rules(
    outcome_type, analysed, corrected, corrected_flag, overridden, value
) -> None:
    wo = work_order(
        tasks=[task("t", "count", outcome_type, state(analysed, corrected, "OK", True))]
    )
    df = normalize.tasks_frame([wo])
    assert flag(df.loc[0, "is_corrected"]) is corrected_flag
    assert flag(df.loc[0, "is_overridden"]) is overridden
    assert df.loc[0, "value"] == value and type(df.loc[0, "value"]) is type(value)


# -- timeline ---------------------------------------------------------------------------------


def event(
    eid: str,
    date: str,
    kind: str,
    states: list[dict[str, Any]],
    *,
    user: str | None = None,
    analysis_id: str | None = None,
    group: str | None = "grp-a",
    **extra: Any,
) -> dict[str, Any]:
    """A timeline event as the API sends it."""
    return {
        "id": eid,
        "date": date,
        "type": kind,
        "user": user,
        "analysis_id": analysis_id,
        "task_group_name": group,
        **extra,
        "states": states,
    }


def event_state(
    tid: str, name: str, analysed: Any, corrected: Any, message: str | None, conform: bool | None
) -> dict[str, Any]:
    """A task state changed by a timeline event."""
    return {
        "task_id": tid,
        "task_name": name,
        "analyzed_value": analysed,
        "corrected_value": corrected,
        "message": message,
        "is_conform": conform,
    }


@pytest.fixture
def timelines() -> dict[str, list[dict[str, Any]]]:
    return {
        "wo-1": [
            event("e1", "2026-03-05T09:52:30.110425+01:00", "created", [], group=None),
            event(
                "e2",
                "2026-03-05T09:00:00Z",
                "analysis",
                [
                    event_state("t-num", "power", -12.5, None, "In range", True),
                    {
                        **event_state("t-bool", "label_present", False, None, None, None),
                        "confidence": 0.4,
                    },
                ],
                user="tech@example.com",
                analysis_id="an-1",
                source="mobile",
            ),
        ],
        "wo-2": [
            event(
                "e3",
                "2026-03-07T03:00:00Z",
                "correction",
                [event_state("t-num", "power", -30, -20, "In range", True)],
            )
        ],
    }


def test_timeline_frame_values(timelines) -> None:
    df = normalize.timeline_frame(timelines)
    assert list(df["work_order_id"]) == ["wo-1", "wo-1", "wo-1", "wo-2"]
    assert list(df["event_id"]) == ["e1", "e2", "e2", "e3"]
    assert df.loc[0, "date"] == ts("2026-03-05T08:52:30.110425Z")
    assert df.loc[1, "date"] == ts("2026-03-05T09:00:00Z")
    # an event without states keeps one row with null task columns
    assert pd.isna(df.loc[0, "task_id"]) and pd.isna(df.loc[0, "task_name"])
    assert df.loc[0, "analyzed_value"] is None and pd.isna(df.loc[0, "is_conform"])
    assert list(df["task_name"][1:]) == ["power", "label_present", "power"]
    assert df.loc[1, "analyzed_value"] == -12.5 and flag(df.loc[1, "is_conform"]) is True
    assert df.loc[2, "analyzed_value"] is False and pd.isna(df.loc[2, "is_conform"])
    assert df.loc[3, "corrected_value"] == -20
    assert list(df["type"]) == ["created", "analysis", "analysis", "correction"]
    assert df.loc[1, "user"] == "tech@example.com" and pd.isna(df.loc[0, "user"])
    assert df.loc[1, "source"] == "mobile" and df.loc[2, "source"] == "mobile"
    assert pd.isna(df.loc[0, "source"])
    assert df.loc[2, "state.confidence"] == 0.4 and pd.isna(df.loc[1, "state.confidence"])


def test_timeline_frame_dtypes(timelines) -> None:
    df = normalize.timeline_frame(timelines)
    assert isinstance(df["date"].dtype, pd.DatetimeTZDtype) and str(df["date"].dt.tz) == UTC
    for col in ("type", "user", "task_group_name", "task_id", "task_name", "message"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert df["is_conform"].dtype == "boolean"


# -- task groups ------------------------------------------------------------------------------


def test_task_groups_frame() -> None:
    ok = verdict_rule({"type": "boolean", "const": True}, "OK", True)
    ko = verdict_rule({"type": "boolean", "const": False}, "KO", False)
    groups = [
        {
            "id": "g-a",
            "name": "grp-a",
            "description": "",
            "order": 1,
            "input_examples": [],
            "remote_algorithm_instances": [],
            "tasks": [
                {
                    "id": "t1",
                    "name": "label_present",
                    "sentence": "Label present",
                    "mandatory": True,
                    "only_for_dashboard": False,
                    "conformity_status": True,
                    "outcome_display": "Select",
                    "outcome_type": "Boolean",
                    "outcome_validation": [ok, ko],
                    "questionnaire_id": "g-a",
                    "hint": "new key",
                },
                {
                    "id": "t2",
                    "name": "power",
                    "sentence": "Power",
                    "mandatory": False,
                    "only_for_dashboard": True,
                    "conformity_status": False,
                    "outcome_display": "Input",
                    "outcome_type": "Number",
                    "outcome_validation": None,
                    "questionnaire_id": "g-a",
                },
            ],
        },
        {"id": "g-b", "name": "grp-b", "order": 2, "tasks": []},
    ]
    df = normalize.task_groups_frame(groups)
    assert list(df["task_id"]) == ["t1", "t2"]
    assert list(df["task_group_name"]) == ["grp-a", "grp-a"]
    assert list(df["order"]) == [1, 1]
    assert df.loc[0, "rules"] == [ok, ko]
    assert df.loc[1, "rules"] is None
    assert list(df["conformity_status"]) == [True, False]
    assert df.loc[0, "hint"] == "new key" and pd.isna(df.loc[1, "hint"])
    assert isinstance(df["task_group_name"].dtype, pd.CategoricalDtype)
    assert isinstance(df["task_name"].dtype, pd.CategoricalDtype)
    assert df["only_for_dashboard"].dtype == "boolean"
    assert df["order"].dtype == "Int64"


# -- empty inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "spec"),
    [
        (lambda: normalize.work_orders_frame([]), normalize.WORK_ORDER_SPEC),
        (lambda: normalize.tasks_frame([]), normalize.TASK_SPEC),
        (lambda: normalize.timeline_frame({}), normalize.TIMELINE_SPEC),
        (lambda: normalize.timeline_frame({"wo-1": []}), normalize.TIMELINE_SPEC),
        (lambda: normalize.task_groups_frame([]), normalize.TASK_GROUP_SPEC),
    ],
)
def test_empty_inputs_give_empty_frames_with_every_column(build, spec) -> None:
    df = build()
    assert len(df) == 0
    assert list(df.columns) == [c.name for c in spec]
    for col in spec:
        if col.kind == "datetime":
            assert isinstance(df[col.name].dtype, pd.DatetimeTZDtype), col.name
        elif col.kind == "category":
            assert isinstance(df[col.name].dtype, pd.CategoricalDtype), col.name
        elif col.kind == "boolean":
            assert df[col.name].dtype == "boolean", col.name


DOCUMENTED_COLUMNS = {
    "work_orders": {
        "work_order_id",
        "name",
        "site_id",
        "app_version_id",
        "create_date",
        "update_date",
        "review_date",
        "reviewed",
        "progress_score",
        "field_engineer_email",
        "tags",
        "types",
    },
    "tasks": {
        "work_order_id",
        "work_order_name",
        "task_group_name",
        "task_id",
        "task_name",
        "outcome_type",
        "conformity_status",
        "analyzed",
        "analyzed_value",
        "corrected_value",
        "value",
        "message",
        "is_conform",
        "is_corrected",
        "is_overridden",
        "reviewed",
        "field_engineer_email",
        "app_version_id",
        "create_date",
        "update_date",
        "review_date",
    },
    "timeline": {
        "work_order_id",
        "event_id",
        "date",
        "type",
        "user",
        "analysis_id",
        "task_group_name",
        "task_id",
        "task_name",
        "analyzed_value",
        "corrected_value",
        "message",
        "is_conform",
    },
    "task_groups": {
        "task_group_id",
        "task_group_name",
        "order",
        "task_id",
        "task_name",
        "sentence",
        "outcome_type",
        "conformity_status",
        "only_for_dashboard",
        "rules",
    },
}


@pytest.mark.parametrize("frame", DOCUMENTED_COLUMNS)
def test_documented_minimum_columns_are_there(frame, wos, timelines) -> None:
    built = {
        "work_orders": lambda: normalize.work_orders_frame(wos),
        "tasks": lambda: normalize.tasks_frame(wos),
        "timeline": lambda: normalize.timeline_frame(timelines),
        "task_groups": lambda: normalize.task_groups_frame([]),
    }[frame]()
    assert not DOCUMENTED_COLUMNS[frame] - set(built.columns)


# -- values stay Python objects whatever the mix of types ---------------------------------------


@pytest.mark.parametrize(
    ("tasks", "analysed", "corrected", "value"),
    [
        # a batch whose only corrected task is a Text one: missing values must stay None, as
        # in any other batch, or frames built from different batches do not compare equal
        (
            [
                task("t-text", "serial", "Text", state("PM11408C55", "PM48213A77", "Lu", True)),
                task("t-bool", "label_present", "Boolean", state(True, None, "OK", True)),
                task("t-num", "power", "Number", None),
            ],
            ["PM11408C55", True, None],
            ["PM48213A77", None, None],
            ["PM48213A77", True, None],
        ),
        (
            [
                task("t-a", "serial", "Text", state("AB12CD34", None, "Lu", True)),
                task("t-b", "colour", "Text", None),
            ],
            ["AB12CD34", None],
            [None, None],
            ["AB12CD34", None],
        ),
    ],
    ids=["only-correction-is-text", "every-value-is-text"],
)
def test_value_columns_stay_objects(tasks, analysed, corrected, value) -> None:
    df = normalize.tasks_frame([work_order(tasks=tasks)])
    for col in ("analyzed_value", "corrected_value", "value"):
        assert df[col].dtype == object, (col, df[col].dtype)
    assert df["analyzed_value"].tolist() == analysed
    assert df["corrected_value"].tolist() == corrected
    assert df["value"].tolist() == value


def test_timeline_value_columns_stay_objects_when_every_value_is_a_text() -> None:
    events = {
        "wo-1": [
            event("e1", "2026-03-05T09:00:00Z", "created", [], group=None),
            event(
                "e2",
                "2026-03-05T10:00:00Z",
                "correction",
                [event_state("t-a", "serial", "AB12CD34", "AB12CD35", "Lu", True)],
            ),
        ]
    }
    df = normalize.timeline_frame(events)
    for col in ("analyzed_value", "corrected_value"):
        assert df[col].dtype == object, (col, df[col].dtype)
        assert df[col].tolist()[0] is None
