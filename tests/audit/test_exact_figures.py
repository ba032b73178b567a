"""audit: exact figures on small hand-built tasks frames.

Frames are built with :func:`dfs_analytics.normalize.tasks_frame` from work-order JSON, so they
have the real columns and dtypes (categoricals, nullable booleans, Python-object values, NaN
cells). Every expected figure is computed here by hand: Wilson bounds from the formula with
``NormalDist().inv_cdf``, kappa from the two marginal distributions, Fisher's exact test from
the hypergeometric probabilities, Holm and Benjamini-Hochberg from their definitions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from math import comb
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import audit, normalize
from dfs_analytics.audit import AuditInputError
from dfs_analytics.errors import ConfigurationError
from tests.helpers import V1, V2, A, B, C, drift_work_orders, make_wo, st

# --------------------------------------------------------------------------------------------
# the hand-built work orders of tests/helpers.py, as frames (`tasks` is in the conftest)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def drift_tasks() -> pd.DataFrame:
    return normalize.tasks_frame(drift_work_orders())


# --------------------------------------------------------------------------------------------
# reference computations
# --------------------------------------------------------------------------------------------


def z_of(level: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval, straight from the formula."""
    if n == 0:
        return 0.0, 1.0
    z = z_of(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_two_sided(k1: int, n1: int, k2: int, n2: int) -> Fraction:
    """Fisher's exact test, exactly: the hypergeometric probabilities of all tables with the
    observed margins that are no more likely than the observed one."""
    total, successes = n1 + n2, k1 + k2

    def prob(x: int) -> Fraction:
        return Fraction(comb(successes, x) * comb(total - successes, n1 - x), comb(total, n1))

    observed = prob(k1)
    lo, hi = max(0, successes - n2), min(successes, n1)
    return sum((prob(x) for x in range(lo, hi + 1) if prob(x) <= observed), Fraction(0))


def holm(pvalues: list[float]) -> list[float]:
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * pvalues[i])
        out[i] = min(1.0, running)
    return out


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, m / rank * pvalues[i])
        out[i] = running
    return out


def row_of(frame: pd.DataFrame, **keys: Any) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in keys.items():
        mask &= (frame[key].astype(object) == value).to_numpy(dtype=bool)
    assert mask.sum() == 1, f"expected one row for {keys}, got {int(mask.sum())}"
    return frame[mask].iloc[0]


def clustered_design_effect(tasks: pd.DataFrame, key: str, value: Any) -> float:
    """Recount: the variance of the group's rate with work orders as the units, over the
    binomial variance (at least 1; 1 when each work order gives one task)."""
    counted = tasks[tasks["analyzed"].fillna(False) & tasks["reviewed"].fillna(False)]
    if key in counted.columns:
        counted = counted[counted[key].astype(object) == value]
    per = counted.groupby("work_order_id")["is_overridden"].agg(["sum", "size"])
    if per.empty or per["size"].max() <= 1:
        return 1.0
    p = per["sum"].sum() / per["size"].sum()
    spread = ((per["sum"] - p * per["size"]) ** 2).sum()
    binomial = per["size"].sum() * p * (1 - p)
    return max(1.0, spread / binomial) if binomial else 1.0


def clustered_wilson(tasks: pd.DataFrame, level: float = 0.95, **keys: Any) -> tuple[float, float]:
    """Recount: the Wilson interval of the audited tasks matching ``keys`` at n / design
    effect, their work orders as clusters."""
    counted = tasks
    for key, value in keys.items():
        counted = counted[counted[key].astype(object) == value]
    audited = counted[counted["analyzed"].fillna(False) & counted["reviewed"].fillna(False)]
    n, k = len(audited), int(audited["is_overridden"].fillna(False).sum())
    deff = clustered_design_effect(counted, "", None)
    return wilson(k / deff, n / deff, level)


def check_rates(
    rates: pd.DataFrame,
    expected: dict[Any, tuple[int, int]],
    key: str,
    level: float = 0.95,
    tasks: pd.DataFrame | None = None,
) -> None:
    """Counts as expected; intervals Wilson's, at n / design effect when ``tasks`` says
    the group pools several tasks of a work order."""
    assert len(rates) == len(expected)
    for value, (n, k) in expected.items():
        row = row_of(rates, **{key: value})
        assert row["n"] == n and row["n_overridden"] == k, value
        deff = clustered_design_effect(tasks, key, value) if tasks is not None else 1.0
        assert row["design_effect"] == pytest.approx(deff, abs=1e-12)
        low, high = wilson(k / deff, n / deff, level)
        if n:
            assert row["rate"] == pytest.approx(k / n, abs=1e-15)
        else:
            assert math.isnan(row["rate"])
        assert row["ci_low"] == pytest.approx(low, abs=1e-12), value
        assert row["ci_high"] == pytest.approx(high, abs=1e-12), value


# --------------------------------------------------------------------------------------------
# the frame itself (what the definitions rest on)
# --------------------------------------------------------------------------------------------


def test_hand_built_frame_has_the_real_columns_and_nan_cells(tasks) -> None:
    assert [c.name for c in normalize.TASK_SPEC] == list(tasks.columns)
    assert len(tasks) == 22
    assert isinstance(tasks["task_name"].dtype, pd.CategoricalDtype)
    assert tasks["analyzed"].dtype == "boolean"
    # NaN cells the audit must cope with: no AI verdict, no engineer, no review date
    assert tasks["ai_message"].isna().sum() > 0
    assert tasks["field_engineer_email"].isna().sum() == 2
    assert tasks["review_date"].isna().sum() == 4
    # a correction to the very value the AI gave is not an override
    same = tasks[(tasks["work_order_id"] == "wo-1") & (tasks["task_name"] == "power")].iloc[0]
    assert bool(same["is_corrected"]) and not bool(same["is_overridden"])


def test_audited_keeps_analysed_tasks_of_reviewed_work_orders(tasks) -> None:
    counted = audit.audited(tasks)
    assert len(counted) == 12
    assert counted["analyzed"].all() and counted["reviewed"].all()
    assert "wo-4" not in set(counted["work_order_id"])
    assert "never" not in set(counted["task_name"].astype(str))


# --------------------------------------------------------------------------------------------
# override rates
# --------------------------------------------------------------------------------------------


RATE_COLUMNS = ["n", "n_overridden", "rate", "ci_low", "ci_high", "design_effect"]
"""The columns of override_rates after its ``by`` columns."""
PER_TASK = {"present": (5, 2), "power": (3, 1), "serial": (4, 1), "never": (0, 0)}


@pytest.mark.parametrize(
    ("kwargs", "key", "expected"),
    [
        ({}, "task_name", PER_TASK),
        ({"level": 0.9}, "task_name", PER_TASK),
        ({"by": "task_group_name"}, "task_group_name", {"grp-a": (8, 3), "grp-b": (4, 1)}),
    ],
    ids=["per-task", "level-90", "per-task-group"],
)
def test_override_rates_counts_and_intervals(tasks, kwargs, key, expected) -> None:
    rates = dfs.override_rates(tasks, **kwargs)
    check_rates(rates, expected, key, level=kwargs.get("level", 0.95), tasks=tasks)
    assert rates.attrs["level"] == kwargs.get("level", 0.95)


def test_override_rates_columns_and_dtypes(tasks) -> None:
    rates = dfs.override_rates(tasks)
    assert list(rates.columns) == ["task_name", *RATE_COLUMNS]
    assert rates["n"].dtype == "int64" and rates["n_overridden"].dtype == "int64"
    assert isinstance(rates["task_name"].dtype, pd.CategoricalDtype)
    assert rates.attrs["level"] == 0.95


def test_override_rates_task_never_analysed_is_kept_with_n_zero(tasks) -> None:
    never = row_of(dfs.override_rates(tasks), task_name="never")
    assert never["n"] == 0 and never["n_overridden"] == 0
    assert math.isnan(never["rate"])
    assert (never["ci_low"], never["ci_high"]) == (0.0, 1.0)


def test_override_rates_use_the_exact_normal_quantile_not_1_96(tasks) -> None:
    present = row_of(dfs.override_rates(tasks), task_name="present")
    z = z_of(0.95)
    assert z == pytest.approx(1.959963984540054, abs=1e-15)
    # both bounds solve n (p_hat - p)^2 = z^2 p (1 - p): the Wilson interval's definition
    for bound in (present["ci_low"], present["ci_high"]):
        assert 5 * (0.4 - bound) ** 2 == pytest.approx(z * z * bound * (1 - bound), abs=1e-12)
    # and they are not the bounds of a rounded 1.96
    p, n, z196 = 0.4, 5, 1.96
    denom = 1 + z196**2 / n
    rounded_low = (p + z196**2 / (2 * n)) / denom - z196 / denom * math.sqrt(
        p * (1 - p) / n + z196**2 / (4 * n * n)
    )
    assert abs(present["ci_low"] - rounded_low) > 1e-6


def test_override_rates_level_90_is_narrower(tasks) -> None:
    rates = dfs.override_rates(tasks, level=0.9)
    wide = dfs.override_rates(tasks)
    seen = (rates["n"] > 0).to_numpy()
    width_90 = (rates["ci_high"] - rates["ci_low"]).to_numpy()[seen]
    width_95 = (wide["ci_high"] - wide["ci_low"]).to_numpy()[seen]
    assert (width_90 < width_95).all()


def test_override_rates_keyed_by_name_across_app_versions(tasks) -> None:
    # "present" has a different task id in each app version: one group, not two
    assert tasks.loc[tasks["task_name"] == "present", "task_id"].nunique() == 2
    by_version = dfs.override_rates(tasks, by=["task_name", "app_version_id"])
    present = by_version[by_version["task_name"] == "present"]
    assert sorted(
        zip(present["app_version_id"], present["n"], present["n_overridden"], strict=True)
    ) == [
        (V1, 2, 1),
        (V2, 3, 1),
    ]


def test_override_rates_by_engineer_keeps_engineers_with_n_zero(tasks) -> None:
    rates = dfs.override_rates(tasks, by="field_engineer_email")
    # C's only work order was never reviewed: kept, with n = 0
    expected = {A: (6, 2), B: (5, 2), C: (0, 0)}
    for engineer, (n, k) in expected.items():
        row = row_of(rates, field_engineer_email=engineer)
        assert (row["n"], row["n_overridden"]) == (n, k)
        clustered = clustered_wilson(tasks, field_engineer_email=engineer)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(clustered, abs=1e-12)


def test_override_rates_by_a_list_of_columns(tasks) -> None:
    rates = dfs.override_rates(tasks, by=["field_engineer_email", "app_version_id"])
    assert list(rates.columns[:2]) == ["field_engineer_email", "app_version_id"]
    got = {
        (r.field_engineer_email, r.app_version_id): (r.n, r.n_overridden, r.ci_low, r.ci_high)
        for r in rates.itertuples(index=False)
        if r.field_engineer_email != "(none)"
    }
    # only combinations that occur; the work order without an engineer keeps its own group,
    # shown as "(none)", last
    assert set(got) == {(A, V1), (B, V2), (C, V2)}
    assert rates["field_engineer_email"].notna().all()
    assert rates["field_engineer_email"].iloc[-1] == "(none)"
    no_engineer = rates[rates["field_engineer_email"] == "(none)"]
    assert list(no_engineer["app_version_id"].astype(str)) == [V2]
    for key, (n, k) in {(A, V1): (6, 2), (B, V2): (5, 2), (C, V2): (0, 0)}.items():
        assert got[key][:2] == (n, k)
        clustered = clustered_wilson(tasks, field_engineer_email=key[0], app_version_id=key[1])
        assert got[key][2:] == pytest.approx(clustered, abs=1e-12)


def test_override_rates_by_week(tasks) -> None:
    rates = dfs.override_rates(tasks, by="week")
    assert list(rates.columns) == ["week", *RATE_COLUMNS]
    assert isinstance(rates["week"].dtype, pd.DatetimeTZDtype)
    weeks = [pd.Timestamp(d, tz="UTC") for d in ("2026-03-02", "2026-03-09", "2026-03-16")]
    assert list(rates["week"]) == weeks  # Mondays, in order
    # the week of 9 March also has wo-4 (not reviewed): it does not count
    dates = pd.to_datetime(tasks["create_date"], utc=True).dt.tz_localize(None)
    monday = dates.dt.to_period("W").dt.start_time.dt.tz_localize("UTC")
    expected = dict(zip(weeks, [(6, 2), (5, 2), (1, 0)], strict=True))
    check_rates(rates, expected, "week", tasks=tasks.assign(week=monday))
    assert "week" not in tasks.columns  # the input frame is left alone


def test_time_keys_work_on_a_frame_read_back_from_csv(tasks, tmp_path) -> None:
    """Dates read back from a CSV file are strings: they are parsed, not refused."""
    tasks.to_csv(tmp_path / "tasks.csv", index=False)
    back = pd.read_csv(tmp_path / "tasks.csv")
    assert not pd.api.types.is_datetime64_any_dtype(back["create_date"])  # strings
    expected = dfs.override_rates(tasks, by="week")
    pd.testing.assert_frame_equal(dfs.override_rates(back, by="week"), expected)
    monthly = dfs.override_rates(back, by=["task_name", "month"])
    assert len(monthly) == len(dfs.override_rates(tasks, by=["task_name", "month"]))
    weekly = dfs.drift(back, by=None, freq="W", within=None)
    reference = dfs.drift(tasks, by=None, freq="W", within=None)
    assert list(weekly["period"]) == list(reference["period"])
    assert list(weekly["first_date"]) == list(reference["first_date"])
    assert list(weekly["n_overridden"]) == list(reference["n_overridden"])
    assert len(dfs.sample(back, n=2, by="week", seed=0)) > 0


def test_time_keys_refuse_dates_that_are_not_dates(tasks) -> None:
    frame = tasks.assign(create_date=tasks["create_date"].astype(str))
    frame.loc[frame.index[0], "create_date"] = "last tuesday"
    with pytest.raises(AuditInputError, match=r"create_date.*pd\.to_datetime"):
        dfs.override_rates(frame, by="week")


def test_time_keys_take_naive_dates_as_utc(tasks) -> None:
    naive = tasks.assign(create_date=tasks["create_date"].dt.tz_localize(None))
    pd.testing.assert_frame_equal(
        dfs.override_rates(naive, by="week"), dfs.override_rates(tasks, by="week")
    )


def test_override_rates_no_override_and_all_overridden_bounds() -> None:
    wos = [
        make_wo(
            f"wo-{i}",
            V1,
            A,
            "2026-03-02T12:00:00Z",
            True,
            [("present", st(True, None, "OK")), ("power", st(-30, -10, "In range"))],
        )
        for i in range(7)
    ]
    rates = dfs.override_rates(normalize.tasks_frame(wos))
    present, power = row_of(rates, task_name="present"), row_of(rates, task_name="power")
    assert (present["n"], present["n_overridden"], present["ci_low"]) == (7, 0, 0.0)
    assert present["ci_high"] == pytest.approx(wilson(0, 7)[1], abs=1e-12)
    assert (power["n"], power["n_overridden"], power["ci_high"]) == (7, 7, 1.0)
    assert power["ci_low"] == pytest.approx(wilson(7, 7)[0], abs=1e-12)


def test_wilson_interval_vectorised_matches_the_formula() -> None:
    ks, ns = [0, 1, 5, 10, 0], [10, 10, 10, 10, 0]
    low, high = audit.wilson_interval(ks, ns, level=0.99)
    for k, n, lo, hi in zip(ks, ns, low, high, strict=True):
        assert (lo, hi) == pytest.approx(wilson(k, n, 0.99), abs=1e-12)


def test_summary_headline_figures(tasks) -> None:
    head = audit.summary(tasks)
    assert head["work_orders"] == 6 and head["reviewed_work_orders"] == 5
    assert head["tasks"] == 22 and head["audited_tasks"] == 12 and head["overridden"] == 4
    assert head["override_rate"] == pytest.approx(4 / 12)
    assert (head["ci_low"], head["ci_high"]) == pytest.approx(wilson(4, 12), abs=1e-12)


def test_override_rates_overall_with_by_none(tasks) -> None:
    overall = dfs.override_rates(tasks, by=None)
    assert list(overall.columns) == RATE_COLUMNS
    assert len(overall) == 1
    row = overall.iloc[0]
    assert row["n"] == 12 and row["n_overridden"] == 4  # as summary: 12 audited, 4 overridden
    assert overall["n"].dtype == "int64" and overall["n_overridden"].dtype == "int64"
    assert row["rate"] == pytest.approx(4 / 12, abs=1e-15)
    # 12 tasks of 3 work orders: the interval is Wilson's at 12 / design effect
    low, high = clustered_wilson(tasks)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    # the same as the sum of the per-task rows
    per_task = dfs.override_rates(tasks)
    assert per_task["n"].sum() == row["n"] and per_task["n_overridden"].sum() == 4
    assert dfs.override_rates(tasks, by=[]).equals(overall)


def test_override_rates_overall_of_an_empty_frame(tasks) -> None:
    overall = dfs.override_rates(tasks.iloc[0:0], by=None)
    assert overall[["n", "n_overridden"]].iloc[0].tolist() == [0, 0]
    assert math.isnan(overall["rate"].iloc[0])
    assert (overall["ci_low"].iloc[0], overall["ci_high"].iloc[0]) == (0.0, 1.0)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1])
def test_override_rates_bad_level(tasks, level) -> None:
    with pytest.raises(ConfigurationError, match="level"):
        dfs.override_rates(tasks, level=level)


# --------------------------------------------------------------------------------------------
# confusion
# --------------------------------------------------------------------------------------------

ALL_COUNTS = {
    # (AI verdict, final verdict): count, over the 18 tasks of the 5 reviewed work orders
    ("OK", "OK"): 2,
    ("Missing", "OK"): 1,
    ("OK", "Missing"): 1,
    ("Missing", "Missing"): 1,
    ("In range", "In range"): 1,
    ("Too weak", "Too weak"): 1,
    ("Too weak", "In range"): 1,
    ("not analysed", "In range"): 1,  # wo-5 power: a value entered by a human
    ("Readable", "Readable"): 3,  # including a correction AB123 -> AB124 (same verdict)
    ("other", "other"): 1,  # "??": matches no verdict rule
    ("not analysed", "not analysed"): 5,  # the task "never", on each reviewed work order
}
LABELS = ["OK", "Missing", "In range", "Too weak", "Readable", "other", "not analysed"]


def test_confusion_counts_with_not_analysed_and_other_buckets(tasks) -> None:
    table = dfs.confusion(tasks, labels="sentence")
    assert set(table.index) == {*LABELS, "total"}
    assert set(table.columns) == {*LABELS, "total"}
    # the explicit buckets come last, before the margins
    assert list(table.index[-3:]) == ["other", "not analysed", "total"]
    assert list(table.columns[-3:]) == ["other", "not analysed", "total"]
    for ai in LABELS:
        for final in LABELS:
            assert table.loc[ai, final] == ALL_COUNTS.get((ai, final), 0), (ai, final)
    assert table.loc["total", "total"] == 18 == sum(ALL_COUNTS.values())
    for label in LABELS:
        assert table.loc[label, "total"] == sum(
            v for (ai, _), v in ALL_COUNTS.items() if ai == label
        )
        assert table.loc["total", label] == sum(
            v for (_, final), v in ALL_COUNTS.items() if final == label
        )
    assert (table.dtypes == "int64").all()


def test_confusion_labels_by_count_ties_by_name_whatever_the_row_order(tasks) -> None:
    # rows + columns (ALL_COUNTS): OK 3+3, Readable 3+3, In range 1+3, Missing 2+1,
    # Too weak 2+1; then the explicit buckets
    table = dfs.confusion(tasks, labels="sentence")
    expected = ["OK", "Readable", "In range", "Missing", "Too weak", "other", "not analysed"]
    assert list(table.index) == [*expected, "total"]
    assert list(table.columns) == [*expected, "total"]
    shuffled = tasks.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(dfs.confusion(shuffled, labels="sentence"), table)
    pd.testing.assert_frame_equal(
        dfs.confusion(shuffled, normalize="index", labels="sentence"),
        dfs.confusion(tasks, normalize="index", labels="sentence"),
    )


def test_confusion_of_an_empty_frame(tasks) -> None:
    table = dfs.confusion(tasks.iloc[0:0], labels="sentence")
    assert list(table.index) == ["total"] and list(table.columns) == ["total"]
    assert table.loc["total", "total"] == 0


def test_confusion_of_one_task_across_app_versions(tasks) -> None:
    table = dfs.confusion(tasks, task_name="present", labels="sentence")
    assert set(table.index) == {"OK", "Missing", "total"}
    assert table.loc["OK", "OK"] == 2
    assert table.loc["OK", "Missing"] == 1
    assert table.loc["Missing", "OK"] == 1
    assert table.loc["Missing", "Missing"] == 1
    assert table.loc["total", "total"] == 5


def test_confusion_of_several_tasks_leaves_unreviewed_work_orders_out(tasks) -> None:
    table = dfs.confusion(tasks, task_name=["present", "power"], labels="sentence")
    # wo-4 (not reviewed: present Missing, power In range) is not counted
    assert table.loc["Missing", "Missing"] == 1
    assert table.loc["total", "total"] == 5 + 4
    assert "Readable" not in table.index


@pytest.mark.parametrize(
    "call",
    [
        lambda t: dfs.override_rates(t, reviewed_only=False),
        lambda t: dfs.confusion(t, reviewed_only=False),
        lambda t: dfs.drift(t, reviewed_only=False),
        lambda t: dfs.funnel(t, reviewed_only=False),
        lambda t: dfs.agreement(t, reviewed_only=False),
    ],
    ids=["override_rates", "confusion", "drift", "funnel", "agreement"],
)
def test_reviewed_only_false_is_gone_and_says_where_to_go(tasks, call) -> None:
    """It counted every unreviewed task as agreed: the whole site is site_estimate's."""
    with pytest.raises(dfs.ConfigurationError, match="site_estimate") as info:
        call(tasks)
    assert "agreed" in str(info.value)
    with pytest.warns(DeprecationWarning, match="drop the argument"):
        dfs.override_rates(tasks, reviewed_only=True)


def test_confusion_normalize_modes(tasks) -> None:
    counts = dfs.confusion(tasks, labels="sentence").drop(index="total", columns="total")
    c = counts.to_numpy(dtype=float)

    by_row = dfs.confusion(tasks, normalize="index", labels="sentence")
    assert "total" not in by_row.index and "total" not in by_row.columns
    np.testing.assert_allclose(by_row.to_numpy(), c / c.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(by_row.sum(axis=1).to_numpy(), 1.0)
    assert by_row.loc["not analysed", "In range"] == pytest.approx(1 / 6)
    assert by_row.loc["not analysed", "not analysed"] == pytest.approx(5 / 6)

    by_column = dfs.confusion(tasks, normalize="columns", labels="sentence")
    np.testing.assert_allclose(by_column.to_numpy(), c / c.sum(axis=0, keepdims=True))
    assert by_column.loc["Too weak", "In range"] == pytest.approx(1 / 3)

    overall = dfs.confusion(tasks, normalize="all", labels="sentence")
    np.testing.assert_allclose(overall.to_numpy(), c / 18)
    assert overall.to_numpy().sum() == pytest.approx(1.0)
    assert overall.loc["Readable", "Readable"] == pytest.approx(3 / 18)


def test_confusion_normalize_with_an_empty_column(tasks) -> None:
    # power: the AI did not analyse wo-5's, but every final verdict is a verdict
    counts = dfs.confusion(tasks, task_name="power", labels="sentence")
    assert counts.loc["total", "not analysed"] == 0
    by_column = dfs.confusion(tasks, task_name="power", normalize="columns", labels="sentence")
    assert by_column["not analysed"].isna().all()  # 0 / 0: undefined, not inf
    assert by_column.loc["Too weak", "In range"] == pytest.approx(1 / 3)
    assert by_column.loc["not analysed", "In range"] == pytest.approx(1 / 3)


def test_confusion_bad_arguments(tasks) -> None:
    with pytest.raises(ConfigurationError, match="normalize"):
        dfs.confusion(tasks, normalize="rows")
    with pytest.raises(AuditInputError, match="nope"):
        dfs.confusion(tasks, task_name="nope")


# --------------------------------------------------------------------------------------------
# agreement
# --------------------------------------------------------------------------------------------


def kappa(pairs: list[tuple[Any, Any]]) -> tuple[float, float, float]:
    """Cohen's kappa by hand: observed and chance agreement from the two marginals."""
    n = len(pairs)
    observed = Fraction(sum(a == f for a, f in pairs), n)
    values = {a for a, _ in pairs} | {f for _, f in pairs}
    expected = sum(
        (
            Fraction(sum(a == v for a, _ in pairs), n) * Fraction(sum(f == v for _, f in pairs), n)
            for v in values
        ),
        Fraction(0),
    )
    return float(observed), float(expected), float((observed - expected) / (1 - expected))


def test_agreement_kappa_per_task(tasks) -> None:
    result = dfs.agreement(tasks)
    assert list(result.columns) == ["task_name", "n", "observed", "expected", "kappa"]
    pairs = {
        "present": [(True, True), (False, True), (True, False), (True, True), (False, False)],
        "power": [(-12.5, -12.5), (-30, -30), (-25, -15)],
        "serial": [("AB123", "AB124"), ("??", "??"), ("CD9", "CD9"), ("ZZ1", "ZZ1")],
    }
    for name, values in pairs.items():
        row = row_of(result, task_name=name)
        assert row["n"] == len(values)
        observed, expected, k = kappa(values)
        assert row["observed"] == pytest.approx(observed, abs=1e-12)
        assert row["expected"] == pytest.approx(expected, abs=1e-12)
        assert row["kappa"] == pytest.approx(k, abs=1e-12)
    # the same figures, written out
    assert row_of(result, task_name="present")["kappa"] == pytest.approx(1 / 6)
    assert row_of(result, task_name="power")["kappa"] == pytest.approx(4 / 7)
    assert row_of(result, task_name="serial")["kappa"] == pytest.approx(9 / 13)


def test_agreement_group_with_n_zero_is_kept_with_nan(tasks) -> None:
    # like override_rates, a task never analysed does not vanish: n = 0, kappa undefined
    # (the docstring: "NaN when undefined (n = 0, ...)")
    result = dfs.agreement(tasks)
    assert "never" in set(result["task_name"].astype(str)), result
    never = row_of(result, task_name="never")
    assert never["n"] == 0
    assert math.isnan(never["kappa"]) and math.isnan(never["observed"])


def test_agreement_true_is_not_one_and_one_value_gives_nan() -> None:
    wos = [
        make_wo(
            f"wo-{i}",
            V1,
            A if i < 4 else B,
            "2026-03-02T12:00:00Z",
            True,
            # the Number task "count": the AI says 1, 1.0, 2, 2; B's work orders always 3
            [("count", st([1, 1.0, 2, 2, 3, 3][i], [None, 1, 2, 1.0, None, 3][i], None))],
        )
        for i in range(6)
    ]
    frame = normalize.tasks_frame(wos)
    by_engineer = dfs.agreement(frame, by="field_engineer_email")
    a = row_of(by_engineer, field_engineer_email=A)
    # 1 == 1.0 (JSON equality): pairs (1,1) (1,1) (2,2) (2,1)
    observed, expected, k = kappa([(1, 1), (1, 1), (2, 2), (2, 1)])
    assert (a["observed"], a["expected"], a["kappa"]) == pytest.approx((observed, expected, k))
    b = row_of(by_engineer, field_engineer_email=B)
    assert b["n"] == 2 and b["observed"] == 1.0 and b["expected"] == 1.0
    assert math.isnan(b["kappa"])  # both raters always said the same single value

    # a Boolean True and a Number 1 are different values
    mixed = normalize.tasks_frame(
        [
            make_wo("wo-x", V1, A, "2026-03-02T12:00:00Z", True, [("present", st(True, 1, None))]),
            make_wo("wo-y", V1, A, "2026-03-02T12:00:00Z", True, [("present", st(1, None, None))]),
        ]
    )
    row = row_of(dfs.agreement(mixed), task_name="present")
    assert row["observed"] == 0.5


def test_agreement_and_value_confusion_agree_with_the_override_flag() -> None:
    # 2**53 + 1 and the float 2**53 are different JSON values: an override, and no agreement
    day = "2026-03-02T12:00:00Z"
    frame = normalize.tasks_frame(
        [
            make_wo("wo-x", V1, A, day, True, [("count", st(2**53 + 1, float(2**53), None))]),
            make_wo("wo-y", V1, A, day, True, [("count", st(5, None, None))]),
        ]
    )
    assert frame["is_overridden"].tolist() == [True, False]
    assert row_of(dfs.agreement(frame), task_name="count")["observed"] == 0.5
    counts = dfs.confusion(frame, basis="value").drop(index="total", columns="total")
    assert np.trace(counts.to_numpy()) == 1 and counts.to_numpy().sum() == 2
    # a NaN correction (a frame read back from a file) is no value: the AI's value stands
    read_back = frame.assign(corrected_value=[float("nan"), None])
    assert row_of(dfs.agreement(read_back), task_name="count")["observed"] == 1.0
    counts = dfs.confusion(read_back, basis="value").drop(index="total", columns="total")
    assert np.trace(counts.to_numpy()) == counts.to_numpy().sum() == 2


# --------------------------------------------------------------------------------------------
# Fisher's exact test, multiple-testing adjustments
# --------------------------------------------------------------------------------------------


def test_fisher_exact_tea_tasting() -> None:
    # Fisher's lady tasting tea: [[3, 1], [1, 3]], two-sided p = 34/70 = 0.4857
    assert audit.fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70, abs=1e-12)
    assert audit.fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857, abs=1e-4)
    assert fisher_two_sided(3, 4, 1, 4) == Fraction(34, 70)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [
        (1, 10, 11, 14),  # [[1, 9], [11, 3]]: p = 0.002759
        (15, 30, 1, 30),
        (3, 30, 3, 30),
        (0, 5, 5, 5),
        (2, 5, 2, 6),
        (0, 1, 2, 5),
        (7, 12, 2, 9),
        (0, 40, 0, 25),
    ],
)
def test_fisher_exact_against_the_hypergeometric_formula(k1, n1, k2, n2) -> None:
    expected = float(fisher_two_sided(k1, n1, k2, n2))
    assert audit.fisher_exact(k1, n1, k2, n2) == pytest.approx(expected, rel=1e-9, abs=1e-14)
    # symmetric in the two samples
    assert audit.fisher_exact(k2, n2, k1, n1) == pytest.approx(expected, rel=1e-9, abs=1e-14)


def test_fisher_exact_known_value_and_empty_samples() -> None:
    assert audit.fisher_exact(1, 10, 11, 14) == pytest.approx(0.002759, abs=1e-6)
    assert audit.fisher_exact(0, 0, 3, 10) == 1.0
    assert audit.fisher_exact(3, 10, 0, 0) == 1.0


def test_adjust_pvalues_holm_and_bh_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(audit.adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(audit.adjust_pvalues(p, "holm"), holm(p))
    # BH: p * 4 / rank = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    np.testing.assert_allclose(audit.adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(audit.adjust_pvalues(p, "bh"), benjamini_hochberg(p))


def test_adjust_pvalues_nan_ties_and_cap() -> None:
    p = [float("nan"), 0.2, 0.01, float("nan"), 0.2, 0.6]
    held = [0.2, 0.01, 0.2, 0.6]
    holm_adj = audit.adjust_pvalues(p, "holm")
    bh_adj = audit.adjust_pvalues(p, "bh")
    assert np.isnan(holm_adj[[0, 3]]).all() and np.isnan(bh_adj[[0, 3]]).all()
    np.testing.assert_allclose(holm_adj[[1, 2, 4, 5]], holm(held))
    np.testing.assert_allclose(bh_adj[[1, 2, 4, 5]], benjamini_hochberg(held))
    assert (holm_adj[[1, 2, 4, 5]] <= 1).all()
    assert len(audit.adjust_pvalues([], "holm")) == 0
    with pytest.raises(ConfigurationError):
        audit.adjust_pvalues(p, "bonferroni-ish")


# --------------------------------------------------------------------------------------------
# drift
# --------------------------------------------------------------------------------------------


def test_drift_flags_a_clear_change_and_not_a_steady_rate(drift_tasks) -> None:
    result = dfs.drift(drift_tasks)
    assert list(result.columns) == [
        "task_name",
        "period",
        "first_date",
        "n",
        "n_overridden",
        "rate",
        "ci_low",
        "ci_high",
        "design_effect",
        "change",
        "p_value",
        "p_adjusted",
        "flagged",
    ]
    # one task of each name per work order: no pooling, Wilson and Fisher as they are
    assert (result["design_effect"] == 1).all()
    # periods in the order of their first date (the new version's id sorts first by name)
    present = result[result["task_name"] == "present"]
    power = result[result["task_name"] == "power"]
    assert list(present["period"]) == ["v9-old", "v10-new"]
    assert list(present["n"]) == [30, 30] and list(present["n_overridden"]) == [1, 15]
    assert list(power["n_overridden"]) == [3, 3]
    assert list(present["first_date"]) == [
        pd.Timestamp("2026-01-01T08:00:00Z"),
        pd.Timestamp("2026-02-01T08:00:00Z"),
    ]
    for row in result.itertuples(index=False):
        assert (row.ci_low, row.ci_high) == pytest.approx(
            wilson(row.n_overridden, row.n), abs=1e-12
        )

    p_present = float(fisher_two_sided(15, 30, 1, 30))
    p_power = float(fisher_two_sided(3, 30, 3, 30))
    assert p_power == 1.0
    new_present = row_of(result, task_name="present", period="v10-new")
    new_power = row_of(result, task_name="power", period="v10-new")
    assert new_present["change"] == pytest.approx(14 / 30)
    assert new_present["p_value"] == pytest.approx(p_present, rel=1e-9)
    assert new_power["change"] == pytest.approx(0.0) and new_power["p_value"] == pytest.approx(1)
    adjusted = holm([p_present, p_power])
    assert new_present["p_adjusted"] == pytest.approx(adjusted[0], rel=1e-9)
    assert new_power["p_adjusted"] == pytest.approx(adjusted[1])
    assert bool(new_present["flagged"]) and not bool(new_power["flagged"])
    # the first period has nothing to compare with
    first = result[result["period"] == "v9-old"]
    assert first["change"].isna().all() and first["p_value"].isna().all()
    assert not first["flagged"].any()
    assert result["flagged"].dtype == bool and int(result["flagged"].sum()) == 1
    assert result.attrs["method"] == "holm" and result.attrs["alpha"] == 0.05


def test_drift_no_change_is_not_flagged() -> None:
    wos = drift_work_orders()
    steady = normalize.tasks_frame(
        [{**wo, "tasks": [t for t in wo["tasks"] if t["name"] == "power"]} for wo in wos]
    )
    result = dfs.drift(steady)
    assert not result["flagged"].any()
    assert row_of(result, period="v10-new")["p_value"] == pytest.approx(1.0)


def test_drift_exact_figures_on_the_small_frame_with_bh(tasks) -> None:
    result = dfs.drift(tasks, method="bh")
    # per task, old version then new version (n, overridden); "never" has no audited task
    expected = {
        "present": [(2, 1), (3, 1)],
        "power": [(2, 0), (1, 1)],
        "serial": [(2, 1), (2, 0)],
    }
    assert set(result["task_name"].astype(str)) == set(expected)
    pvalues = []
    for name, ((n0, k0), (n1, k1)) in expected.items():
        rows = result[result["task_name"] == name]
        assert list(rows["period"]) == [V1, V2]
        assert list(zip(rows["n"], rows["n_overridden"], strict=True)) == [(n0, k0), (n1, k1)]
        p = float(fisher_two_sided(k1, n1, k0, n0))
        assert rows.iloc[1]["p_value"] == pytest.approx(p, rel=1e-9)
        assert rows.iloc[1]["change"] == pytest.approx(k1 / n1 - k0 / n0)
        pvalues.append(p)
    new = result[result["period"] == V2]
    np.testing.assert_allclose(new["p_adjusted"], benjamini_hochberg(pvalues), rtol=1e-9)
    assert not result["flagged"].any()
    assert result.attrs["method"] == "bh"


def test_drift_per_week(tasks) -> None:
    result = dfs.drift(tasks, by=None, freq="W", within=None)
    assert list(result["period"]) == [
        pd.Timestamp(d, tz="UTC") for d in ("2026-03-02", "2026-03-09", "2026-03-16")
    ]
    assert list(result["first_date"]) == [
        pd.Timestamp(d) for d in ("2026-03-02T12:00Z", "2026-03-10T12:00Z", "2026-03-17T12:00Z")
    ]
    assert list(zip(result["n"], result["n_overridden"], strict=True)) == [(6, 2), (5, 2), (1, 0)]
    p = [float(fisher_two_sided(2, 5, 2, 6)), float(fisher_two_sided(0, 1, 2, 5))]
    assert math.isnan(result["p_value"].iloc[0])
    np.testing.assert_allclose(result["p_value"].iloc[1:], p, rtol=1e-9)
    np.testing.assert_allclose(result["p_adjusted"].iloc[1:], holm(p), rtol=1e-9)
    np.testing.assert_allclose(result["change"].iloc[1:], [2 / 5 - 2 / 6, 0 - 2 / 5])
    assert not result["flagged"].any()


def test_drift_monthly_flags_a_clear_change(drift_tasks) -> None:
    # "present" only: January 1/30 overridden, February 15/30
    present = drift_tasks[drift_tasks["task_name"] == "present"]
    result = dfs.drift(present, by=None, freq="M", within=None)
    assert list(zip(result["n"], result["n_overridden"], strict=True)) == [(30, 1), (30, 15)]
    assert list(result["flagged"]) == [False, True]
    assert result["p_value"].iloc[1] == pytest.approx(float(fisher_two_sided(15, 30, 1, 30)))


def test_drift_bad_freq_fails_before_reading(tasks) -> None:
    with pytest.raises(ValueError, match="XX"):
        dfs.drift(tasks, by=None, freq="XX")


def test_drift_needs_by_or_freq(tasks) -> None:
    with pytest.raises(ConfigurationError):
        dfs.drift(tasks, by=None, freq=None)
    with pytest.raises(ConfigurationError):
        dfs.drift(tasks, by="app_version_id", freq="W")


# --------------------------------------------------------------------------------------------
# sample
# --------------------------------------------------------------------------------------------


def keys_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(frame["work_order_id"], frame["task_id"].astype(str), strict=True))


def test_sample_is_stratified_and_reproducible(drift_tasks) -> None:
    picked = dfs.sample(drift_tasks, n_per_group=5, seed=7)
    assert picked["task_name"].value_counts().to_dict() == {"present": 5, "power": 5}
    assert not picked.duplicated(["work_order_id", "task_id"]).any()
    # rows of the input, unchanged, ordered by group
    pd.testing.assert_frame_equal(picked, drift_tasks.loc[picked.index])
    names = list(picked["task_name"].astype(str))
    assert names == sorted(names)
    # same seed: same rows
    assert keys_of(dfs.sample(drift_tasks, n_per_group=5, seed=7)) == keys_of(picked)
    # whatever the row order of the frame
    shuffled = drift_tasks.sample(frac=1.0, random_state=123)
    assert keys_of(dfs.sample(shuffled, n_per_group=5, seed=7)) == keys_of(picked)
    reversed_frame = normalize.tasks_frame(list(reversed(drift_work_orders())))
    assert keys_of(dfs.sample(reversed_frame, n_per_group=5, seed=7)) == keys_of(picked)
    # another seed, another sample
    assert keys_of(dfs.sample(drift_tasks, n_per_group=5, seed=8)) != keys_of(picked)


def test_sample_at_most_n_per_group(tasks, drift_tasks) -> None:
    per_group = dfs.sample(tasks, n_per_group=2, by=["task_name", "app_version_id"], seed=1)
    counts = per_group.groupby(["task_name", "app_version_id"], observed=True).size()
    assert (counts <= 2).all()
    # analysed tasks per (task, version): present 2+4, power 2+2, serial 2+2
    assert counts.to_dict() == {
        ("power", V1): 2,
        ("power", V2): 2,
        ("present", V1): 2,
        ("present", V2): 2,
        ("serial", V1): 2,
        ("serial", V2): 2,
    }
    # a group smaller than n is taken whole
    everything = dfs.sample(drift_tasks, n_per_group=100, seed=0)
    assert len(everything) == len(drift_tasks)
    # by week
    weekly = dfs.sample(drift_tasks, n_per_group=3, by="week", seed=0)
    assert (weekly.groupby("week").size() <= 3).all()
    mondays = drift_tasks["create_date"].dt.normalize() - pd.to_timedelta(
        drift_tasks["create_date"].dt.day_of_week, unit="D"
    )
    assert set(weekly["week"]) == set(mondays)


def test_sample_only_analysed_and_reviewed(tasks) -> None:
    picked = dfs.sample(tasks, n_per_group=10)
    assert picked["analyzed"].all()
    assert "never" not in set(picked["task_name"].astype(str))
    assert len(picked) == 14  # every analysed task (fewer than 10 per task)
    reviewed = dfs.sample(tasks, n_per_group=10, reviewed_only=True)
    assert len(reviewed) == 12 and "wo-4" not in set(reviewed["work_order_id"])
    with_unanalysed = dfs.sample(tasks, n_per_group=10, only_analysed=False)
    assert len(with_unanalysed) == len(tasks)
    with pytest.raises(ConfigurationError):
        dfs.sample(tasks, n=0)


# --------------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------------

PROVENANCE = {
    "dataset": "/data/dfs/site-1",
    "version": 12,
    "table": "tasks",
    "filters": {"created_after": "2026-01-01T00:00:00Z"},
    "as_of": None,
}


def test_summary_carries_the_frame_provenance(tasks) -> None:
    tasks.attrs["dfs_provenance"] = PROVENANCE
    head = audit.summary(tasks)
    assert head["provenance"] == PROVENANCE
    # a copy: changing the summary does not change the frame's record
    head["provenance"]["filters"]["created_after"] = "2020-01-01"
    assert tasks.attrs["dfs_provenance"]["filters"] == {"created_after": "2026-01-01T00:00:00Z"}
    assert audit.provenance(tasks) == PROVENANCE
    # the other figures do not depend on it
    assert head["audited_tasks"] == 12 and head["overridden"] == 4


def test_summary_without_provenance_says_none(tasks) -> None:
    assert tasks.attrs.get("dfs_provenance") is None
    assert audit.summary(tasks)["provenance"] is None
    assert audit.provenance(tasks) is None
    tasks.attrs["dfs_provenance"] = "not a record"
    assert audit.provenance(tasks) is None
    assert audit.provenance([1, 2]) is None  # no attrs at all


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "missing"),
    [
        (lambda t: dfs.override_rates(t.drop(columns=["is_overridden"])), "is_overridden"),
        (lambda t: dfs.override_rates(t.drop(columns=["reviewed"])), "reviewed"),
        (lambda t: dfs.override_rates(t.drop(columns=["create_date"]), by="week"), "create_date"),
        (lambda t: dfs.confusion(t.drop(columns=["ai_message"]), labels="sentence"), "ai_message"),
        (lambda t: dfs.confusion(t.drop(columns=["ai_verdict"])), "ai_verdict"),
        (lambda t: dfs.confusion(t.drop(columns=["task_name"]), task_name="x"), "task_name"),
        (lambda t: dfs.agreement(t.drop(columns=["corrected_value"])), "corrected_value"),
        (lambda t: dfs.drift(t.drop(columns=["create_date"])), "create_date"),
        (lambda t: dfs.drift(t.drop(columns=["app_version_id"])), "app_version_id"),
        (lambda t: dfs.sample(t.drop(columns=["task_id"])), "task_id"),
        (lambda t: audit.summary(t.drop(columns=["analyzed"])), "analyzed"),
    ],
)
def test_missing_column_is_named(tasks, call, missing) -> None:
    with pytest.raises(AuditInputError) as info:
        call(tasks)
    assert missing in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: dfs.override_rates(t, by="nope"),
        lambda t: dfs.override_rates(t, by=["task_name", "nope"]),
        lambda t: dfs.agreement(t, by="nope"),
        lambda t: dfs.drift(t, by="nope"),
        lambda t: dfs.drift(t, within="nope"),
        lambda t: dfs.sample(t, by="nope"),
    ],
)
def test_unknown_by_column_is_named(tasks, call) -> None:
    with pytest.raises(AuditInputError) as info:
        call(tasks)
    assert "nope" in str(info.value)


def test_audit_input_error_is_a_clear_key_and_configuration_error() -> None:
    with pytest.raises(AuditInputError) as info:
        dfs.override_rates(pd.DataFrame({"task_name": ["a"]}))
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ConfigurationError)
    text = str(err)
    assert not text.startswith(("'", '"'))  # not quoted like a bare KeyError
    for column in ("analyzed", "reviewed", "is_overridden"):
        assert column in text
    with pytest.raises(AuditInputError, match="DataFrame"):
        dfs.override_rates([{"task_name": "a"}])  # type: ignore[arg-type]


def clustered_frame(overridden_per_work_order: list[int], size: int = 4) -> pd.DataFrame:
    """Reviewed work orders of ``size`` analysed tasks each, the first k of them overridden."""
    rows = []
    for i, k in enumerate(overridden_per_work_order):
        for j in range(size):
            rows.append(
                {
                    "work_order_id": f"wo-{i}",
                    "task_name": f"t{j}",
                    "analyzed": True,
                    "reviewed": True,
                    "is_overridden": j < k,
                }
            )
    return pd.DataFrame(rows).astype(
        {"analyzed": "boolean", "reviewed": "boolean", "is_overridden": "boolean"}
    )


def test_the_interval_widens_when_overrides_come_together_by_work_order() -> None:
    # 40 overrides in 160 tasks: all four tasks of 10 work orders, or one task of each of 40
    together = dfs.override_rates(clustered_frame([4] * 10 + [0] * 30), by=None).iloc[0]
    spread = dfs.override_rates(clustered_frame([1] * 40), by=None).iloc[0]
    assert together["n"] == spread["n"] == 160
    assert together["n_overridden"] == spread["n_overridden"] == 40
    # spread evenly: no clustering, exactly Wilson
    assert spread["design_effect"] == 1
    assert (spread["ci_low"], spread["ci_high"]) == pytest.approx(wilson(40, 160), abs=1e-12)
    # together: the design effect is the cluster size, the interval Wilson's at n / 4
    assert together["design_effect"] == pytest.approx(4.0)
    assert (together["ci_low"], together["ci_high"]) == pytest.approx(wilson(10, 40), abs=1e-12)
    # per task name each work order gives one task: Wilson, whatever the clustering
    per_task = dfs.override_rates(clustered_frame([4] * 10 + [0] * 30))
    assert (per_task["design_effect"] == 1).all()
    for row in per_task.itertuples(index=False):
        assert (row.ci_low, row.ci_high) == pytest.approx(wilson(row.n_overridden, row.n))
    # summary and funnel see the same clusters
    summary = dfs.audit.summary(
        clustered_frame([4] * 10 + [0] * 30).assign(is_verdict_overridden=pd.NA)
    )
    assert summary["design_effect"] == pytest.approx(4.0)
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx(wilson(10, 40), abs=1e-12)
