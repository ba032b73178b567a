"""audit.verdict_quality: precision, recall and F1 of the AI's "not conform" verdict against
the human-checked verdict, on analysed conformity tasks of reviewed work orders, with
intervals that treat each work order as a cluster.

Every expected figure is recounted here, row by row, not with the code under test."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.audit import AuditInputError
from dfs_analytics.errors import ConfigurationError


def recount(tasks: pd.DataFrame, key: str | None) -> dict[Any, dict[str, Any]]:
    """tp, fp, fn, tn and the work orders of each group, one row at a time."""
    out: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "work_orders": set()}
    )

    def true(value: Any) -> bool:
        return value is True or (not pd.isna(value) and bool(value) is True)

    for row in tasks.to_dict("records"):
        if not (true(row["analyzed"]) and true(row["reviewed"]) and true(row["conformity_status"])):
            continue
        ai_bad = not true(row["ai_is_conform"])
        human_bad = not true(row["is_conform"])
        cell = {(True, True): "tp", (True, False): "fp", (False, True): "fn"}.get(
            (ai_bad, human_bad), "tn"
        )
        group = out[None if key is None else str(row[key])]
        group[cell] += 1
        group["work_orders"].add(row["work_order_id"])
    return out


def check_against_recount(result: pd.DataFrame, tasks: pd.DataFrame, key: str | None) -> None:
    expected = recount(tasks, key)
    assert len(result) == len(expected)
    for row in result.to_dict("records"):
        want = expected[None if key is None else str(row[key])]
        for cell in ("tp", "fp", "fn", "tn"):
            assert row[cell] == want[cell], (row.get(key), cell)
        assert row["n_work_orders"] == len(want["work_orders"])
        assert row["n_tasks"] == want["tp"] + want["fp"] + want["fn"] + want["tn"]
        tp, fp, fn = want["tp"], want["fp"], want["fn"]
        for name, value in (
            ("precision", tp / (tp + fp) if tp + fp else math.nan),
            ("recall", tp / (tp + fn) if tp + fn else math.nan),
            ("f1", 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan),
            ("prevalence", (tp + fn) / row["n_tasks"] if row["n_tasks"] else math.nan),
        ):
            if math.isnan(value):
                assert math.isnan(row[name])
            else:
                assert row[name] == pytest.approx(value)
                assert row[f"{name}_low"] <= value <= row[f"{name}_high"]


def test_recount_per_task_on_simulator_data(sim_tasks: pd.DataFrame) -> None:
    result = dfs.audit.verdict_quality(sim_tasks)
    check_against_recount(result, sim_tasks, "task_name")
    # only conformity tasks count: a task without conformity status never shows
    shown = set(result["task_name"].astype(str))
    conformity = sim_tasks.loc[sim_tasks["conformity_status"].fillna(False).astype(bool)]
    assert shown <= set(conformity["task_name"].astype(str))
    assert shown, "the simulator's reviewed work orders have conformity tasks"
    # the AI is a useful classifier on the simulator, not a coin
    overall = dfs.audit.verdict_quality(sim_tasks, by=None)
    check_against_recount(overall, sim_tasks, None)
    assert overall["precision"].iloc[0] > 0.5 and overall["recall"].iloc[0] > 0.5
    assert overall.attrs["population"] == "analysed conformity tasks of reviewed work orders"


def wo_rows(wo: str, cells: list[str], **extra: Any) -> list[dict[str, Any]]:
    """Tasks of one work order: each cell ("tp", "fp", "fn", "tn") is one task."""
    verdicts = {"tp": (False, False), "fp": (False, True), "fn": (True, False), "tn": (True, True)}
    rows = []
    for i, cell in enumerate(cells):
        ai, human = verdicts[cell]
        rows.append(
            {
                "work_order_id": wo,
                "task_name": extra.get("task_name", f"t{i}"),
                "analyzed": True,
                "reviewed": True,
                "conformity_status": True,
                "ai_is_conform": ai,
                "is_conform": human,
                **{k: v for k, v in extra.items() if k != "task_name"},
            }
        )
    return rows


def test_recount_on_a_hand_built_frame() -> None:
    rows = [
        *wo_rows("w1", ["tp", "fp", "tn"], task_name="cable"),
        *wo_rows("w2", ["tp", "fn"], task_name="cable"),
        *wo_rows("w3", ["tn", "tn"], task_name="label"),
        *wo_rows("w4", ["fp"], task_name="label"),
        # not counted: an unreviewed work order, a task never analysed, a task without
        # conformity status
        *wo_rows("w5", ["tp", "tp"], task_name="cable", reviewed=False),
        *wo_rows("w6", ["fp"], task_name="label", analyzed=False),
        *wo_rows("w7", ["fn"], task_name="label", conformity_status=False),
    ]
    # no verdict from the AI (a value no rule matches) is "not conform" for it; a final
    # state that is not true is "not conform" too
    rows += [
        {**wo_rows("w8", ["tp"], task_name="label")[0], "ai_is_conform": None, "is_conform": None}
    ]
    tasks = pd.DataFrame(rows).astype(
        {"ai_is_conform": "boolean", "is_conform": "boolean", "reviewed": "boolean"}
    )
    result = dfs.audit.verdict_quality(tasks)
    check_against_recount(result, tasks, "task_name")
    cable = result[result["task_name"] == "cable"].iloc[0]
    assert (cable["tp"], cable["fp"], cable["fn"], cable["tn"]) == (2, 1, 1, 1)
    assert cable["n_work_orders"] == 2
    assert cable["precision"] == pytest.approx(2 / 3) and cable["recall"] == pytest.approx(2 / 3)
    label = result[result["task_name"] == "label"].iloc[0]
    assert (label["tp"], label["fp"], label["fn"], label["tn"]) == (1, 1, 0, 2)
    assert label["recall"] == 1.0 and label["recall_high"] == 1.0
    overall = dfs.audit.verdict_quality(tasks, by=None).iloc[0]
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (3, 2, 1, 3)
    assert overall["n_work_orders"] == 5
    # the frame given is left as it was
    assert list(tasks.columns) == list(pd.DataFrame(rows).columns)


def test_nothing_reviewed_gives_no_rows_and_nan_overall() -> None:
    tasks = pd.DataFrame(wo_rows("w1", ["tp", "fp"], reviewed=False))
    assert dfs.audit.verdict_quality(tasks).empty
    overall = dfs.audit.verdict_quality(tasks, by=None).iloc[0]
    assert overall["n_tasks"] == 0 and overall["n_work_orders"] == 0
    assert math.isnan(overall["precision"]) and math.isnan(overall["precision_low"])


def precision_width(tasks: pd.DataFrame) -> float:
    row = dfs.audit.verdict_quality(tasks, by=None).iloc[0]
    return float(row["precision_high"] - row["precision_low"])


def test_interval_widens_when_errors_cluster_by_work_order() -> None:
    # 40 work orders of 5 tasks the AI flags: 40 false positives in all. Spread evenly (one
    # per work order) or all in 8 work orders (every task of those wrong)
    spread = pd.DataFrame(
        [r for i in range(40) for r in wo_rows(f"w{i}", ["fp", "tp", "tp", "tp", "tp"])]
    )
    clustered = pd.DataFrame(
        [r for i in range(40) for r in wo_rows(f"w{i}", ["fp"] * 5 if i < 8 else ["tp"] * 5)]
    )
    for frame in (spread, clustered):
        row = dfs.audit.verdict_quality(frame, by=None).iloc[0]
        assert (row["tp"], row["fp"], row["n_work_orders"]) == (160, 40, 40)
    low, high = dfs.audit.wilson_interval(160, 200)
    wilson = float(high - low)
    assert precision_width(spread) == pytest.approx(wilson)  # nothing comes together
    assert precision_width(clustered) > 2 * wilson  # 8 bad work orders, not 40 bad tasks


def test_one_task_per_work_order_gives_the_wilson_interval() -> None:
    cells = ["tp"] * 30 + ["fp"] * 12 + ["fn"] * 7 + ["tn"] * 51
    tasks = pd.DataFrame([r for i, c in enumerate(cells) for r in wo_rows(f"w{i}", [c])])
    row = dfs.audit.verdict_quality(tasks, by=None, level=0.9).iloc[0]
    for name, (k, n) in {"precision": (30, 42), "recall": (30, 37)}.items():
        low, high = dfs.audit.wilson_interval(k, n, 0.9)
        assert row[f"{name}_low"] == pytest.approx(float(low))
        assert row[f"{name}_high"] == pytest.approx(float(high))


def test_groups_by_a_time_key_and_several_columns(sim_tasks: pd.DataFrame) -> None:
    result = dfs.audit.verdict_quality(sim_tasks, by=["task_name", "app_version_id"])
    assert result[["tp", "fp", "fn", "tn"]].to_numpy().sum() == (
        dfs.audit.verdict_quality(sim_tasks, by=None)[["tp", "fp", "fn", "tn"]].to_numpy().sum()
    )
    monthly = dfs.audit.verdict_quality(sim_tasks, by="month")
    assert monthly["month"].is_monotonic_increasing
    assert int(monthly["n_tasks"].sum()) == int(
        dfs.audit.verdict_quality(sim_tasks, by=None)["n_tasks"].iloc[0]
    )


def test_bad_input_is_a_clear_error() -> None:
    tasks = pd.DataFrame(wo_rows("w1", ["tp"]))
    with pytest.raises(AuditInputError, match="ai_is_conform"):
        dfs.audit.verdict_quality(tasks.drop(columns=["ai_is_conform"]))
    with pytest.raises(AuditInputError, match="unknown by column"):
        dfs.audit.verdict_quality(tasks, by="nope")
    with pytest.raises(ConfigurationError, match="level"):
        dfs.audit.verdict_quality(tasks, level=95)


def test_a_dask_frame_gives_the_same_figures(sim_tasks: pd.DataFrame) -> None:
    dd = pytest.importorskip("dask.dataframe")
    columns = [
        "work_order_id",
        "task_name",
        "analyzed",
        "reviewed",
        "conformity_status",
        "ai_is_conform",
        "is_conform",
    ]
    frame = sim_tasks[columns].copy()
    frame["task_name"] = frame["task_name"].astype(str)
    expected = dfs.audit.verdict_quality(frame)
    got = dfs.audit.verdict_quality(dd.from_pandas(frame, npartitions=4))
    # Dask keeps text as its own string type: compare the names as text
    as_text = {"task_name": object}
    pd.testing.assert_frame_equal(got.astype(as_text), expected.astype(as_text))
    np.testing.assert_array_equal(got["n_work_orders"], expected["n_work_orders"])
