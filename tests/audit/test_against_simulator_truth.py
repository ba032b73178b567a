"""audit on simulator data over HTTP, checked against the simulator's ground truth.

A few seeds only, to stay fast: the >= 93% coverage over 100 seeds and the false-flag rate are
measured by ``benchmarks/audit_coverage.py``. Here: the 95% intervals cover the true override
probability in most cases, a doubled AI error rate after the app-version upgrade is flagged
for several tasks, and without drift (almost) nothing is flagged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator

WORK_ORDERS = 1200
COVERAGE_SEEDS = (0, 1, 2, 3, 4)
DRIFT_SEEDS = (21, 22, 23)


def load(sim: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
    try:
        return dfs.load_tasks(client), sim.truth()
    finally:
        client.close()


@pytest.fixture(scope="module")
def steady() -> list[tuple[pd.DataFrame, dict[str, Any]]]:
    """Tasks and truth of a few seeds without drift (loaded once for the module's tests)."""
    loaded = []
    for seed in COVERAGE_SEEDS:
        with Simulator(work_orders=WORK_ORDERS, seed=seed, drift=1.0) as sim:
            loaded.append(load(sim))
    return loaded


def test_intervals_cover_the_true_override_probability(steady) -> None:
    covered: list[bool] = []
    for tasks, truth in steady:
        rates = dfs.override_rates(tasks)
        assert set(rates["task_name"].astype(str)) == set(truth["tasks"])
        for row in rates.itertuples(index=False):
            assert row.n > 0, f"task {row.task_name} was never audited in seed {truth['seed']}"
            p = truth["tasks"][str(row.task_name)]["override_probability"]
            assert 0 <= row.ci_low <= row.rate <= row.ci_high <= 1
            covered.append(row.ci_low <= p <= row.ci_high)
    assert len(covered) >= 5 * 10
    coverage = sum(covered) / len(covered)
    assert coverage >= 0.85, f"coverage {coverage:.3f} over {len(covered)} intervals"


def test_per_version_intervals_cover_the_truth(steady) -> None:
    covered: list[bool] = []
    for tasks, truth in steady:
        rates = dfs.override_rates(tasks, by=["task_name", "app_version_id"])
        for row in rates[rates["n"] > 0].itertuples(index=False):
            versions = truth["tasks"][str(row.task_name)]["by_app_version"]
            p = versions[str(row.app_version_id)]["override_probability"]
            covered.append(row.ci_low <= p <= row.ci_high)
    assert sum(covered) / len(covered) >= 0.85


def test_no_drift_flags_nothing_or_almost_nothing(steady) -> None:
    flags = 0
    for tasks, _ in steady[:3]:
        result = dfs.drift(tasks, by="app_version_id")
        assert result["period"].nunique() == 2
        flags += int(result["flagged"].sum())
    assert flags <= 1


def test_doubled_error_rate_is_flagged_for_several_tasks(
    dfs_simulator_factory: Callable[..., Simulator],
) -> None:
    total = 0
    for seed in DRIFT_SEEDS:
        sim = dfs_simulator_factory(work_orders=WORK_ORDERS, seed=seed, drift=2.0)
        tasks, truth = load(sim)
        result = dfs.drift(tasks, by="app_version_id")
        old, new = (v["id"] for v in truth["app_versions"])
        # periods in the order of the versions (the upgrade comes later)
        for _, rows in result.groupby("task_name", observed=True):
            assert list(rows["period"]) in ([old, new], [new])
        flagged = result[result["flagged"]]
        assert len(flagged) >= 2, f"seed {seed}: only {len(flagged)} flag(s)\n{result}"
        total += len(flagged)
        # every flag is an increase after the upgrade, as in the truth
        for row in flagged.itertuples(index=False):
            versions = truth["tasks"][str(row.task_name)]["by_app_version"]
            assert row.period == new
            assert versions[new]["override_probability"] > versions[old]["override_probability"]
            assert row.change > 0 and row.p_adjusted < 0.05
        # the new version's intervals cover the new truth in most cases
        new_rows = result[result["period"] == new]
        covered = [
            r.ci_low
            <= truth["tasks"][str(r.task_name)]["by_app_version"][new]["override_probability"]
            <= r.ci_high
            for r in new_rows.itertuples(index=False)
        ]
        assert sum(covered) / len(covered) >= 0.75
    assert total >= 8, f"{total} flags over {len(DRIFT_SEEDS)} seeds with doubled AI errors"
