"""The whole site: review plans of work orders, site-wide estimates, review bias.

Figures are checked against independent recounts on frames whose truth is known: synthetic
tasks frames (every work order's outcome drawn here, so a census or the full truth can be
counted directly) and a simulator's frame over real HTTP; PPI is checked against ``ppi_py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import audit

GROUPS = ("g1", "g2", "g3")


def synthetic_tasks(
    work_orders: int,
    *,
    seed: int = 0,
    tasks_per_work_order: int = 3,
    reviewed: np.ndarray | None = None,
    ai_accuracy: float = 0.9,
    cluster: float = 0.0,
) -> pd.DataFrame:
    """A tasks frame whose truth is known: every work order's final verdicts are drawn here
    (``is_conform``), the AI's (``ai_is_conform``) agree with them with ``ai_accuracy``;
    ``cluster`` > 0 makes work orders good or poor as a whole. Every task is analysed and a
    conformity task; a value is "overridden" where the AI and the final verdict differ."""
    rng = np.random.default_rng(seed)
    n = work_orders * tasks_per_work_order
    wo = np.repeat(np.arange(work_orders), tasks_per_work_order)
    poor = rng.random(work_orders) < 0.3
    p_bad = np.where(poor, 0.1 + cluster, 0.1 - cluster * 0.3)[wo].clip(0.01, 0.99)
    final_ok = rng.random(n) >= p_bad
    ai_right = rng.random(n) < ai_accuracy
    ai_ok = np.where(ai_right, final_ok, ~final_ok)
    if reviewed is None:
        reviewed = np.ones(work_orders, dtype=bool)
    ids = np.array([f"wo-{i:06d}" for i in range(work_orders)])
    return pd.DataFrame(
        {
            "work_order_id": ids[wo],
            "work_order_name": np.char.add("WO ", ids[wo]),
            "task_group_name": np.array(GROUPS)[np.arange(n) % len(GROUPS)],
            "task_name": np.array(["t1", "t2", "t3", "t4"])[np.arange(n) % 4],
            "analyzed": True,
            "conformity_status": True,
            "is_conform": final_ok,
            "ai_is_conform": ai_ok,
            "is_overridden": final_ok != ai_ok,
            "is_verdict_overridden": final_ok != ai_ok,
            "reviewed": reviewed[wo],
            "app_version_id": np.where(wo % 2 == 0, "v1", "v2"),
        }
    ).astype({"reviewed": "boolean", "analyzed": "boolean", "is_conform": "boolean"})


def truth(tasks: pd.DataFrame, quantity: str = "override_rate") -> float:
    """The population's figure, recounted directly over every task."""
    if quantity == "override_rate":
        return float(tasks["is_overridden"].mean())
    return float((~tasks["is_conform"].astype(bool)).mean())


def reviewed_only(tasks: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    """The same frame where only ``ids`` were reviewed."""
    out = tasks.copy()
    out["reviewed"] = out["work_order_id"].isin(ids).astype("boolean")
    return out


# --------------------------------------------------------------------------------------------
# review plans
# --------------------------------------------------------------------------------------------


def test_a_plan_samples_work_orders_with_their_inclusion_probabilities() -> None:
    tasks = synthetic_tasks(500, seed=1)
    plan = audit.review_sample(tasks, 60, by="ai_nonconformity", seed=3)
    assert list(plan.columns) == [
        "work_order_id",
        "work_order_name",
        "stratum",
        "inclusion_probability",
        "weight",
    ]
    assert len(plan) == 60 and plan["work_order_id"].is_unique
    assert set(plan["work_order_id"]) <= set(tasks["work_order_id"])
    # recount each work order's band from the tasks, and each stratum's size
    share = (~tasks["ai_is_conform"]).groupby(tasks["work_order_id"]).mean()
    band = share.map(
        lambda s: (
            "0%" if s == 0 else "0%-20%" if s <= 0.2 else "20%-50%" if s <= 0.5 else "over 50%"
        )
    )
    sizes = band.value_counts()
    assert (plan["stratum"] == plan["work_order_id"].map(band)).all()
    per = plan.groupby("stratum").size()
    for stratum, n_h in per.items():
        expected = n_h / sizes[stratum]
        assert np.allclose(plan.loc[plan["stratum"] == stratum, "inclusion_probability"], expected)
    # inclusion probabilities over the population sum to n; weights over the sample to N
    population = band.map(per / sizes)
    assert math.isclose(population.sum(), 60)
    assert math.isclose(plan["weight"].sum(), 500)
    assert ((plan["inclusion_probability"] > 0) & (plan["inclusion_probability"] <= 1)).all()
    design = plan.attrs["design"]
    assert design["seed"] == 3 and design["by"] == ["ai_nonconformity"]
    assert {h: s["population"] for h, s in design["strata"].items()} == sizes.to_dict()
    # proportional: each stratum within one of n * N_h / N (after the minimum of 2)
    for stratum, n_h in per.items():
        assert n_h >= 2 and abs(n_h - 60 * sizes[stratum] / 500) <= 2


def test_plans_are_reproducible_and_allocations_differ() -> None:
    tasks = synthetic_tasks(400, seed=2)
    a = audit.review_sample(tasks, 40, by="app_version_id", seed=7)
    b = audit.review_sample(tasks.sample(frac=1, random_state=5), 40, by="app_version_id", seed=7)
    assert a["work_order_id"].tolist() == b["work_order_id"].tolist()  # row order irrelevant
    c = audit.review_sample(tasks, 40, by="app_version_id", seed=8)
    assert set(c["work_order_id"]) != set(a["work_order_id"])
    equal = audit.review_sample(tasks, 41, by="ai_nonconformity", allocation="equal", seed=1)
    counts = equal.groupby("stratum").size()
    sizes = {h: s["population"] for h, s in equal.attrs["design"]["strata"].items()}
    # equal allocation: as even as the strata allow
    assert counts.max() - counts[[h for h in counts.index if sizes[h] > counts.max()]].min() <= 1
    neyman = audit.review_sample(tasks, 41, by="ai_nonconformity", allocation="neyman", seed=1)
    assert len(neyman) == 41
    excluded = set(a["work_order_id"])
    again = audit.review_sample(tasks, 40, seed=7, exclude=excluded)
    assert not set(again["work_order_id"]) & excluded
    assert again.attrs["design"]["population_work_orders"] == 400 - 40


def test_a_plan_outlives_the_notebook(tmp_path) -> None:
    tasks = synthetic_tasks(300, seed=4)
    plan = audit.review_sample(tasks, 30, by="ai_nonconformity", seed=2)
    path = audit.save_plan(plan, tmp_path / "plan.csv")
    text = path.read_text()
    assert "work_order_name" in text.splitlines()[0] and "WO wo-" in text  # for the reviewers
    back = audit.load_plan(path)
    pd.testing.assert_frame_equal(back, plan, check_dtype=False)
    assert back.attrs["design"]["strata"] == plan.attrs["design"]["strata"]
    reviewed = reviewed_only(tasks, set(plan["work_order_id"]))
    assert audit.site_estimate(reviewed, back).equals(audit.site_estimate(reviewed, plan))


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda t: audit.review_sample(t, 0), dfs.ConfigurationError, "n must be"),
        (
            lambda t: audit.review_sample(t, 3, by="ai_nonconformity"),
            dfs.ConfigurationError,
            "too small",
        ),
        (lambda t: audit.review_sample(t, 10, by="nope"), dfs.AuditInputError, "cannot stratify"),
        (
            lambda t: audit.review_sample(t, 10, allocation="best"),
            dfs.ConfigurationError,
            "allocation",
        ),
        (lambda t: audit.site_estimate(t, method="design"), dfs.ConfigurationError, "needs a plan"),
        (lambda t: audit.site_estimate(t, quantity="x"), dfs.ConfigurationError, "quantity"),
        (
            lambda t: audit.site_estimate(t, audit.review_sample(t, 10), method="ppi"),
            dfs.ConfigurationError,
            "predicts",
        ),
        (
            lambda t: audit.site_estimate(t.iloc[:30], audit.review_sample(t, 10)),
            dfs.AuditInputError,
            "not the population",
        ),
    ],
)
def test_bad_requests_get_typed_errors(call, error, says) -> None:
    with pytest.raises(error, match=says):
        call(synthetic_tasks(200, seed=5))


@pytest.mark.parametrize(
    "call",
    [
        lambda t: audit.site_estimate(t),
        lambda t: audit.review_bias(t),
    ],
    ids=["site_estimate", "review_bias"],
)
def test_creation_dates_that_are_not_dates_are_a_typed_error(call) -> None:
    tasks = synthetic_tasks(60, seed=2).assign(create_date="last tuesday")
    before = tasks.copy()
    with pytest.raises(dfs.AuditInputError, match="'create_date' holds values that are not"):
        call(tasks)
    pd.testing.assert_frame_equal(tasks, before)  # the caller's frame is left as it was
    tasks["create_date"] = "2026-03-04T05:06:07Z"  # ISO-8601 text, as a CSV gives it back
    assert len(call(tasks)) > 0


def test_review_sample_needs_the_tasks_for_the_ai_stratifier() -> None:
    work_orders = synthetic_tasks(50).drop_duplicates("work_order_id")[
        ["work_order_id", "work_order_name", "reviewed", "app_version_id"]
    ]
    assert len(audit.review_sample(work_orders, 10, by="app_version_id")) == 10
    with pytest.raises(dfs.AuditInputError, match="needs a tasks frame"):
        audit.review_sample(work_orders, 10, by="ai_nonconformity")


# --------------------------------------------------------------------------------------------
# site-wide estimates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["override_rate", "nonconformity_rate"])
def test_a_census_gives_the_population_figure_exactly(quantity: str) -> None:
    tasks = synthetic_tasks(120, seed=6)
    plan = audit.review_sample(tasks, 120, by="ai_nonconformity", seed=0)
    assert (plan["inclusion_probability"] == 1).all()
    row = audit.site_estimate(tasks, plan, quantity=quantity, method="design").iloc[0]
    assert math.isclose(row["estimate"], truth(tasks, quantity), rel_tol=1e-12)
    assert row["ci_low"] == row["ci_high"] == row["estimate"]  # nothing left to estimate
    assert row["population_work_orders"] == row["n_work_orders"] == 120
    assert row["population_tasks"] == row["n_tasks"] == 360


def test_the_design_estimate_is_the_weighted_ratio_recounted() -> None:
    tasks = synthetic_tasks(600, seed=7)
    plan = audit.review_sample(tasks, 80, by="ai_nonconformity", seed=1)
    half = set(plan["work_order_id"].iloc[::2]) | set(plan["work_order_id"].iloc[1:20])
    frame = reviewed_only(tasks, half)
    row = audit.site_estimate(frame, plan, method="design").iloc[0]
    # recount: per stratum, reviewed sampled work orders weighted N_h / r_h
    sampled = plan[plan["work_order_id"].isin(half)]
    per_wo = tasks.groupby("work_order_id").agg(
        y=("is_overridden", "sum"), m=("is_overridden", "size")
    )
    sizes = {h: s["population"] for h, s in plan.attrs["design"]["strata"].items()}
    y = m = 0.0
    for stratum, part in sampled.groupby("stratum"):
        w = sizes[stratum] / len(part)
        y += w * per_wo.loc[part["work_order_id"], "y"].sum()
        m += w * per_wo.loc[part["work_order_id"], "m"].sum()
    assert math.isclose(row["estimate"], y / m, rel_tol=1e-12)
    assert row["n_work_orders"] == len(sampled)
    assert row["not_yet_reviewed"] == 80 - len(sampled)
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert "missing at random" in row["assumption"]
    assert row["reviewed_share"] == pytest.approx(len(half) / 600)


def test_ppi_matches_ppi_py_on_the_same_numbers() -> None:
    import ppi_py  # a test dependency (the dev extra)

    population, n = 60_000, 1_500
    tasks = synthetic_tasks(population, seed=8, tasks_per_work_order=1, ai_accuracy=0.95)
    plan = audit.review_sample(tasks, n, seed=4)
    frame = reviewed_only(tasks, set(plan["work_order_id"]))
    row = audit.site_estimate(frame, plan, quantity="nonconformity_rate", method="ppi").iloc[0]
    labelled = tasks.set_index("work_order_id").loc[plan["work_order_id"]]
    y = (~labelled["is_conform"].astype(bool)).to_numpy(dtype=float)
    yhat = (~labelled["ai_is_conform"].astype(bool)).to_numpy(dtype=float)
    unlabelled = (~tasks["ai_is_conform"].astype(bool)).to_numpy(dtype=float)
    point = ppi_py.ppi_mean_pointestimate(y, yhat, unlabelled)
    low, high = ppi_py.ppi_mean_ci(y, yhat, unlabelled, alpha=0.05)
    assert row["method"] == "ppi"
    assert row["estimate"] == pytest.approx(float(np.ravel(point)[0]), abs=2e-3)
    half = (float(np.ravel(high)[0]) - float(np.ravel(low)[0])) / 2
    assert row["std_error"] * 1.959964 == pytest.approx(half, rel=0.05)
    # and the AI's verdicts narrowed the design interval a lot
    design = audit.site_estimate(frame, plan, quantity="nonconformity_rate", method="design")
    assert row["ci_high"] - row["ci_low"] < 0.85 * (design["ci_high"] - design["ci_low"]).iloc[0]


@pytest.mark.parametrize("seed", range(6))
def test_ppi_is_never_wider_than_the_design_estimate(seed: int) -> None:
    tasks = synthetic_tasks(800, seed=seed, ai_accuracy=[0.5, 0.6, 0.8, 0.95, 0.99, 0.7][seed])
    plan = audit.review_sample(tasks, 70, by="ai_nonconformity", seed=seed)
    frame = reviewed_only(tasks, set(plan["work_order_id"]))
    kw = {"quantity": "nonconformity_rate", "by": "task_name"}
    ppi = audit.site_estimate(frame, plan, method="ppi", **kw)
    design = audit.site_estimate(frame, plan, method="design", **kw)
    width = (ppi["ci_high"] - ppi["ci_low"]).to_numpy()
    assert (width <= (design["ci_high"] - design["ci_low"]).to_numpy() + 1e-12).all()


def test_poststratification_corrects_a_queue_the_ai_steers() -> None:
    tasks = synthetic_tasks(3000, seed=9, ai_accuracy=0.8)
    # reviewers look mostly at what the AI flags: selection on the AI's verdicts
    share = (~tasks["ai_is_conform"]).groupby(tasks["work_order_id"]).mean()
    rng = np.random.default_rng(1)
    chosen = set(share.index[rng.random(len(share)) < np.where(share > 0, 0.6, 0.05)])
    frame = reviewed_only(tasks, chosen)
    naive = (
        audit.override_rates(frame, by=None)["rate"].iloc[0]
        if False
        else float(frame.loc[frame["reviewed"].astype(bool), "is_overridden"].mean())
    )
    row = audit.site_estimate(frame).iloc[0]
    target = truth(tasks)
    assert abs(naive - target) > 0.02  # the naive figure is off
    assert row["ci_low"] <= target <= row["ci_high"]
    assert abs(row["estimate"] - target) < abs(naive - target) / 3
    assert row["method"] == "poststratified"
    assert "Reviews are random within these strata" in row["assumption"]
    bias = audit.review_bias(frame)
    flagged = bias.set_index("feature")["flagged"]
    assert flagged["AI non-conformity share"]  # the planted selection is seen


@pytest.mark.parametrize("seed", range(4))
def test_random_reviews_are_not_flagged(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tasks = synthetic_tasks(1500, seed=seed, reviewed=rng.random(1500) < 0.3)
    bias = audit.review_bias(tasks)
    assert list(bias.columns) == [
        "feature",
        "kind",
        "reviewed",
        "unreviewed",
        "difference",
        "statistic",
        "p_value",
        "p_adjusted",
        "flagged",
    ]
    assert bias["p_value"].between(0, 1).all()
    assert not bias["flagged"].any(), bias
    assert bias.attrs["reviewed_work_orders"] + bias.attrs["unreviewed_work_orders"] == 1500


def test_domains_split_the_same_sample() -> None:
    tasks = synthetic_tasks(900, seed=10)
    plan = audit.review_sample(tasks, 90, by="ai_nonconformity", seed=3)
    frame = reviewed_only(tasks, set(plan["work_order_id"]))
    by_group = audit.site_estimate(frame, plan, by="task_group_name", method="design")
    assert by_group["task_group_name"].tolist() == list(GROUPS)
    recount = tasks.groupby("task_group_name")["is_overridden"].size()
    assert by_group.set_index("task_group_name")["population_tasks"].to_dict() == recount.to_dict()
    for _, row in by_group.iterrows():
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]


def test_on_a_simulated_site_every_estimate_says_what_it_covers(sim_tasks) -> None:
    """Over real HTTP: the simulator's tasks frame, its existing reviews poststratified."""
    row = audit.site_estimate(sim_tasks).iloc[0]
    work_orders = sim_tasks["work_order_id"].nunique()
    assert row["population_work_orders"] == work_orders
    assert row["population_tasks"] == int(sim_tasks["analyzed"].fillna(False).sum())
    reviewed = sim_tasks.loc[sim_tasks["reviewed"].fillna(False).astype(bool), "work_order_id"]
    assert row["reviewed_share"] == pytest.approx(reviewed.nunique() / work_orders)
    assert 0 <= row["ci_low"] <= row["estimate"] <= row["ci_high"] <= 1
