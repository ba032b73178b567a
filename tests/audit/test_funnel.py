"""Fair rankings: funnel limits, empirical-Bayes shrinkage, outliers.

Exact figures on hand-built frames are checked against independent calculations written
here: binomial tails summed with ``math.comb`` and exact fractions, the beta distribution's
CDF for integer parameters through its binomial identity, and the method-of-moments prior
from its formula. On simulator data, flags are checked against the per-engineer ground truth.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import audit, normalize
from dfs_analytics.errors import ConfigurationError
from dfs_analytics.simulator import SeedSettings, generate, ground_truth
from tests.helpers import engineers_frame


def binom_cdf(k: int, n: int, p: Fraction) -> Fraction:
    return sum((math.comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(k + 1)), Fraction(0))


def quantile(q: float, n: int, p: Fraction) -> int:
    return next(r for r in range(n + 1) if binom_cdf(r, n, p) >= Fraction(q))


COUNTS = {
    "a@x": (40, 4),
    "b@x": (120, 30),
    "c@x": (10, 0),
    "d@x": (200, 12),
    "e@x": (6, 3),
    None: (30, 3),
}


def test_funnel_limits_are_exact_binomial_quantiles() -> None:
    tasks = engineers_frame(COUNTS)
    table = dfs.funnel(tasks).set_index("field_engineer_email")
    total_n = sum(n for n, _ in COUNTS.values())
    total_k = sum(k for _, k in COUNTS.values())
    p = Fraction(total_k, total_n)
    assert table.attrs["overall"] == pytest.approx(float(p))
    for email, (n, k) in COUNTS.items():
        row = table.loc[email if email else "(none)"]
        assert (row["n"], row["n_overridden"]) == (n, k)
        assert row["rate"] == pytest.approx(k / n)
        assert row["expected"] == pytest.approx(float(p))
        for level, name in ((0.95, "95"), (0.998, "998")):
            tail = (1 - level) / 2
            assert row[f"low_{name}"] == pytest.approx(quantile(tail, n, p) / n)
            assert row[f"high_{name}"] == pytest.approx(quantile(1 - tail, n, p) / n)
        # outside the 99.8% limits <=> an exact one-sided binomial tail below 0.001
        upper_tail = 1 - binom_cdf(k - 1, n, p)
        lower_tail = binom_cdf(k, n, p)
        assert row["outlier"] == (upper_tail < Fraction(1, 1000) or lower_tail < Fraction(1, 1000))
        assert row["side"] == (
            "above"
            if upper_tail < Fraction(1, 1000)
            else "below"
            if lower_tail < Fraction(1, 1000)
            else ""
        )
    # b (30 / 120 against 52 / 406) is out of line; e (3 / 6) is not: too few tasks to tell
    assert table.loc["b@x", "outlier"] and table.loc["b@x", "side"] == "above"
    assert not table.loc["e@x", "outlier"]
    # the missing engineer is a group of its own
    assert "(none)" in table.index


def test_shrinkage_is_the_beta_binomial_posterior_under_the_moment_prior() -> None:
    tasks = engineers_frame(COUNTS)
    table = dfs.funnel(tasks, level=0.9).set_index("field_engineer_email")
    n = np.array([v[0] for v in COUNTS.values()], dtype=float)
    k = np.array([v[1] for v in COUNTS.values()], dtype=float)
    total = n.sum()
    p = k.sum() / total
    groups = len(n)
    spread = sum(ni * (ki / ni - p) ** 2 for ni, ki in zip(n, k, strict=True))
    rho = (spread / (p * (1 - p)) - (groups - 1)) / (total - (n**2).sum() / total - (groups - 1))
    assert 0 < rho < 1
    a, b = p * (1 / rho - 1), (1 - p) * (1 / rho - 1)
    assert table.attrs["prior"] == pytest.approx((a, b, rho))
    for email, (ni, ki) in COUNTS.items():
        row = table.loc[email if email else "(none)"]
        assert row["shrunk"] == pytest.approx((a + ki) / (a + b + ni))
        # the interval's ends: the posterior CDF there is 5% and 95%
        for end, q in (("shrunk_low", 0.05), ("shrunk_high", 0.95)):
            assert audit.beta_cdf(row[end], a + ki, b + ni - ki) == pytest.approx(q, abs=1e-9)
        # shrunk lies between the raw rate and the overall rate
        assert min(ki / ni, p) - 1e-12 <= row["shrunk"] <= max(ki / ni, p) + 1e-12
    # small groups move most: e (6 tasks) moves further towards p than d (200 tasks)
    moved = {e: abs(table.loc[e, "shrunk"] - table.loc[e, "rate"]) for e in ("d@x", "e@x")}
    assert moved["e@x"] > moved["d@x"]
    # ranked by the shrunken rate
    assert list(table["shrunk"]) == sorted(table["shrunk"], reverse=True)


@pytest.mark.parametrize(("x", "a", "b"), [(0.3, 2, 5), (0.05, 1, 30), (0.9, 7, 2), (0.5, 12, 12)])
def test_beta_cdf_matches_the_binomial_identity(x: float, a: int, b: int) -> None:
    # for integers: P(Beta(a, b) <= x) = P(Binomial(a + b - 1, x) >= a)
    expected = sum(
        math.comb(a + b - 1, j) * x**j * (1 - x) ** (a + b - 1 - j) for j in range(a, a + b)
    )
    assert audit.beta_cdf(x, a, b) == pytest.approx(expected, rel=1e-10)
    assert audit.beta_quantile(audit.beta_cdf(x, a, b), a, b) == pytest.approx(x, abs=1e-9)


def test_no_spread_between_groups_shrinks_all_the_way() -> None:
    same = engineers_frame({"a@x": (50, 5), "b@x": (100, 10), "c@x": (20, 2)})
    table = dfs.funnel(same)
    assert table.attrs["prior"][2] == pytest.approx(1e-6)
    assert np.allclose(table["shrunk"], 0.1, atol=1e-4)
    assert not table["outlier"].any()


def test_funnel_on_the_verdict_basis_and_bad_arguments() -> None:
    tasks = engineers_frame(COUNTS)
    # one Boolean task with two rules: every changed value is a flipped verdict
    pd.testing.assert_frame_equal(
        dfs.funnel(tasks, basis="verdict"),
        dfs.funnel(tasks, basis="value"),
        check_like=True,
    )
    with pytest.raises(ConfigurationError):
        dfs.funnel(tasks, by=None)
    with pytest.raises(ConfigurationError):
        dfs.funnel(tasks, basis="values")


def test_funnel_takes_a_dask_frame() -> None:
    dd = pytest.importorskip("dask.dataframe")
    tasks = engineers_frame(COUNTS)
    ddf = dd.from_pandas(tasks, npartitions=3)
    for basis in ("value", "verdict"):
        pd.testing.assert_frame_equal(
            dfs.funnel(ddf, basis=basis), dfs.funnel(tasks, basis=basis), check_dtype=False
        )


def simulator_seed(seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    store = generate(SeedSettings.defaults(work_orders=1500, seed=seed, extra_engineers=20))
    payload = [wo.to_dict(inputs=False, task_groups=False) for wo in store.work_orders.values()]
    return normalize.tasks_frame(payload), ground_truth(store)


def test_simulator_engineers_differ_and_the_truth_is_exposed() -> None:
    tasks, truth = simulator_seed(3)
    engineers = truth["engineers"]
    assert len(engineers) == 9 + 20
    factors = [e["ai_error_factor"] for e in engineers.values()]
    assert min(factors) < 0.8 and max(factors) > 1.3
    probabilities = [e["override_probability"] for e in engineers.values()]
    site = truth["site_override_probability"]
    assert min(probabilities) < site < max(probabilities)
    # seeded: the same seed gives the same engineers, another seed others
    again = ground_truth(generate(SeedSettings.defaults(work_orders=5, seed=3, extra_engineers=20)))
    assert again["engineers"] == engineers
    other = ground_truth(generate(SeedSettings.defaults(work_orders=5, seed=4, extra_engineers=20)))
    assert other["engineers"] != engineers
    # the empirical rates follow the truth: Wilson intervals cover most true rates
    rates = dfs.override_rates(tasks, by="field_engineer_email")
    covered = [
        r.ci_low <= engineers[str(r.field_engineer_email)]["override_probability"] <= r.ci_high
        for r in rates.itertuples(index=False)
        if r.n > 0
    ]
    assert sum(covered) / len(covered) >= 0.8


def test_funnel_flags_on_simulator_data_point_the_right_way() -> None:
    flagged = right = 0
    for seed in (11, 12, 13):
        tasks, truth = simulator_seed(seed)
        site = truth["site_override_probability"]
        table = dfs.funnel(tasks)
        for row in table[table["outlier"]].itertuples(index=False):
            p = truth["engineers"][str(row.field_engineer_email)]["override_probability"]
            flagged += 1
            right += (p > site) if row.side == "above" else (p < site)
    assert flagged >= 3
    assert right / flagged >= 0.9


def test_funnel_limits_take_an_effective_count_below_one() -> None:
    """A group of one task, over a design effect above 1, is 0.9 of a trial: one trial."""
    from dfs_analytics.audit.stats import funnel_limits

    low, high = funnel_limits([0.9, 1.0, 2.4], 0.2, 0.95)
    assert low.tolist() == [0.0, 0.0, 0.0]
    assert high.tolist() == [1.0, 1.0, 1.0]  # P(X <= 1) = 0.96 < 0.975 for 2 trials
