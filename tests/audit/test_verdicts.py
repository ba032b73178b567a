"""Verdict-level overrides and stable verdict labels, on hand-built frames.

Expected figures are recounted here from the work orders' JSON and the rules, independently
of the audit's code: which rule each value matches (first match, by hand), and whether the
corrected value's rule differs from the analysed value's.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.errors import AuditInputError, ConfigurationError
from dfs_analytics.rules import matching_rule, rule_labels, verdict_label
from tests.helpers import small_work_orders


def rule(schema: dict[str, Any], sentence: str, ok: bool | None) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": schema, "sentence": sentence, "color": "#000000"}
    if ok is not None:
        out["is_conformity_validated"] = ok
    return out


def wo(
    wid: str, version: str, rules: list[dict[str, Any]] | None, analysed: Any, corrected: Any
) -> dict[str, Any]:
    name = "cables" if rules in (OLD, NEW) else "serial" if rules == SERIAL else "notes"
    return {
        "id": wid,
        "name": wid,
        "app_version_id": version,
        "create_date": "2026-03-02T10:00:00Z",
        "update_date": "2026-03-03T10:00:00Z",
        "review_date": "2026-03-03T10:00:00Z",
        "field_engineer_email": "a@example.com",
        "tasks": [
            {
                "id": f"{name}-{version}",
                "name": name,
                "task_group_name": "g",
                "outcome_type": "Boolean" if isinstance(analysed, bool) else "Text",
                "outcome_validation": rules,
                "state": {
                    "analyzed_value": analysed,
                    "corrected_value": corrected,
                    "message": (
                        matching_rule(rules, corrected if corrected is not None else analysed) or {}
                    ).get("sentence"),
                    "is_conform": None,
                },
            }
        ],
    }


OLD: list[dict[str, Any]] = []
NEW: list[dict[str, Any]] = []
SERIAL: list[dict[str, Any]] = []
OLD += [rule({"const": True}, "Conforme", True), rule({"const": False}, "Non conforme", False)]
# the upgrade rewords a sentence: same rule, same label
NEW += [rule({"const": True}, "Conforme", True), rule({"const": False}, "Non-conforme", False)]
SERIAL += [rule({"type": "string", "pattern": "^[A-Z0-9]{4}$"}, "Lu", True)]


def test_rule_labels_rest_on_place_and_conformity_not_sentence() -> None:
    assert rule_labels(OLD) == rule_labels(NEW) == ["conform", "not conform"]
    several = [
        rule({"const": 1}, "A", True),
        rule({"const": 2}, "B", False),
        rule({"const": 3}, "C", False),
        rule({"const": 4}, "D", None),
    ]
    assert rule_labels(several) == ["conform", "not conform #1", "not conform #2", "rule #4"]
    assert verdict_label(several, 3) == "not conform #2"
    assert verdict_label(several, 9) == "no rule"
    assert verdict_label([], True) is None and verdict_label(None, True) is None
    assert verdict_label(several, None) is None
    # no value is no verdict, however it is spelled (a NaN would match a number rule's bounds)
    bounded = [rule({"type": "number", "minimum": 0}, "OK", True)]
    for missing in (float("nan"), pd.NA, pd.NaT):
        assert verdict_label(bounded, missing) is None, missing


def frame() -> pd.DataFrame:
    return normalize.tasks_frame(
        [
            wo("w1", "v1", OLD, True, False),  # flipped
            wo("w2", "v2", NEW, False, True),  # flipped, under the reworded sentence
            wo("w3", "v2", NEW, True, True),  # same value: agreement
            wo("w4", "v1", OLD, True, None),  # kept
            wo("w5", "v1", SERIAL, "AB12", "AB13"),  # value changed, still readable: no flip
            wo("w6", "v1", SERIAL, "??", "AB13"),  # "no rule" -> "conform": a flip
            wo("w7", "v2", SERIAL, "AB12", "x"),  # "conform" -> "no rule": a flip
            wo("w8", "v1", [], "free text", "other"),  # no rules: no verdict
            wo("w9", "v2", None, "free text", None),  # no rules: no verdict
        ]
    )


def test_tasks_frame_has_verdict_columns() -> None:
    tasks = frame()
    assert list(tasks["ai_verdict"].astype(object).where(tasks["ai_verdict"].notna(), None)) == [
        "conform",
        "not conform",
        "conform",
        "conform",
        "conform",
        "no rule",
        "conform",
        None,
        None,
    ]
    assert list(tasks["verdict"].astype(object).where(tasks["verdict"].notna(), None)) == [
        "not conform",
        "conform",
        "conform",
        "conform",
        "conform",
        "conform",
        "no rule",
        None,
        None,
    ]
    flips = tasks["is_verdict_overridden"]
    assert str(flips.dtype) == "boolean"
    assert flips.tolist()[:7] == [True, True, False, False, False, True, True]
    assert flips.isna().tolist()[7:] == [True, True]
    # values: w1, w2, w5, w6, w7, w8 changed
    assert tasks["is_overridden"].tolist() == [
        True,
        True,
        False,
        False,
        True,
        True,
        True,
        True,
        False,
    ]


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


def test_verdict_rates_leave_out_tasks_without_rules() -> None:
    tasks = frame()
    values = dfs.override_rates(tasks, by=None)
    verdicts = dfs.override_rates(tasks, by=None, basis="verdict")
    assert (values.loc[0, "n"], values.loc[0, "n_overridden"]) == (9, 6)
    assert (verdicts.loc[0, "n"], verdicts.loc[0, "n_overridden"]) == (7, 4)
    assert verdicts.loc[0, "rate"] == pytest.approx(4 / 7)
    assert (verdicts.loc[0, "ci_low"], verdicts.loc[0, "ci_high"]) == pytest.approx(
        wilson(4, 7), abs=1e-12
    )
    assert verdicts.attrs["basis"] == "verdict" and values.attrs["basis"] == "value"
    by_version = dfs.override_rates(tasks, by="app_version_id", basis="verdict")
    assert by_version.set_index("app_version_id")[["n", "n_overridden"]].to_dict("index") == {
        "v1": {"n": 4, "n_overridden": 2},  # w1, w4, w5, w6 (w8 has no rules)
        "v2": {"n": 3, "n_overridden": 2},  # w2, w3, w7 (w9 has no rules)
    }


def test_verdict_basis_on_the_hand_built_frame_of_test_audit() -> None:
    tasks = normalize.tasks_frame(small_work_orders())
    rates = dfs.override_rates(tasks, basis="verdict").set_index("task_name")
    # present: wo-2 False->True, wo-3 True->False flip (2 / 5);
    # power: wo-3 -25 (Too weak) -> -15 (In range) flips, wo-1 same value (1 / 3);
    # serial: wo-1 AB123 -> AB124 stays readable: no flip (0 / 4); never: no rules (n = 0)
    assert rates.loc["present", ["n", "n_overridden"]].tolist() == [5, 2]
    assert rates.loc["power", ["n", "n_overridden"]].tolist() == [3, 1]
    assert rates.loc["serial", ["n", "n_overridden"]].tolist() == [4, 0]
    assert rates.loc["never", "n"] == 0
    head = dfs.audit.summary(tasks, basis="verdict")
    assert (head["audited_tasks"], head["overridden"], head["basis"]) == (12, 3, "verdict")
    assert dfs.audit.summary(tasks)["overridden"] == 4


def test_confusion_uses_stable_labels_across_a_reworded_sentence() -> None:
    tasks = frame()
    cables = dfs.confusion(tasks, task_name="cables")
    assert list(cables.index) == ["conform", "not conform", "total"]
    assert cables.loc["conform", "not conform"] == 1  # w1
    assert cables.loc["not conform", "conform"] == 1  # w2, whose sentence was reworded
    assert cables.loc["conform", "conform"] == 2
    assert cables.attrs["sentences"]["conform"] == "Conforme"
    # the sentence stays for display: both spellings of the same verdict
    by_sentence = dfs.confusion(tasks, task_name="cables", labels="sentence")
    assert {"Non conforme", "Non-conforme"} <= set(by_sentence.index)


def test_confusion_on_every_task_has_no_rule_and_no_verdict_buckets() -> None:
    table = dfs.confusion(frame())
    assert list(table.index)[-3:] == ["no rule", "no verdict", "total"]
    assert table.loc["no rule", "conform"] == 1  # w6
    assert table.loc["conform", "no rule"] == 1  # w7
    assert table.loc["no verdict", "no verdict"] == 2  # w8, w9
    assert table.loc["total", "total"] == 9


def test_confusion_of_values() -> None:
    table = dfs.confusion(frame(), task_name="cables", basis="value")
    assert table.loc["true", "false"] == 1 and table.loc["false", "true"] == 1
    assert table.loc["true", "true"] == 2
    assert table.attrs["basis"] == "value"


def test_drift_on_the_verdict_basis() -> None:
    tasks = frame()
    result = dfs.drift(tasks, by="app_version_id", within=None, basis="verdict")
    assert result[["period", "n", "n_overridden"]].values.tolist() == [["v1", 4, 2], ["v2", 3, 2]]
    assert result.attrs["basis"] == "verdict"


def test_bad_basis_and_older_frames() -> None:
    tasks = frame()
    with pytest.raises(ConfigurationError, match="basis"):
        dfs.override_rates(tasks, basis="values")
    old = tasks.drop(columns=["is_verdict_overridden", "ai_verdict", "verdict"])
    with pytest.raises(AuditInputError, match="is_verdict_overridden"):
        dfs.override_rates(old, basis="verdict")
    with pytest.raises(AuditInputError, match="is_verdict_overridden"):
        dfs.drift(old, basis="verdict")
    with pytest.raises(AuditInputError, match="ai_verdict"):
        dfs.confusion(old)
    assert dfs.confusion(old, labels="sentence").loc["total", "total"] == 9


def test_missing_groups_are_shown_as_none() -> None:
    tasks = normalize.tasks_frame(small_work_orders())
    rates = dfs.override_rates(tasks, by="field_engineer_email", basis="verdict")
    assert rates["field_engineer_email"].iloc[-1] == "(none)"
    assert rates["field_engineer_email"].notna().all()
    drift = dfs.drift(tasks, by="app_version_id", within="field_engineer_email")
    assert "(none)" in set(drift["field_engineer_email"].astype(str))


def test_app_versions_by_name_or_short_id() -> None:
    long = "6b3f5f0e-2f7d-4d0c-9a39-8f1d2f4c1a00"
    assert dfs.audit.app_version_labels([long, None]) == {long: "6b3f5f0e", None: "(none)"}
    named = pd.DataFrame({"app_version_id": [long, long], "app_version_name": ["2.4.0", "2.4.0"]})
    assert dfs.audit.app_version_labels([long], named) == {long: "2.4.0"}
