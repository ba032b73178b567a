"""Samples that mean what they say: n rows in total, allocations, disputed rows, sample size.

Allocations are recomputed here from their definitions (Hamilton's largest remainders on
the exact quotas, with Fractions), independently of the audit's code.
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import audit, normalize
from dfs_analytics.errors import ConfigurationError
from tests.helpers import drift_work_orders, engineers_frame, small_work_orders


def hamilton(n: int, weights: list[Fraction]) -> list[int]:
    """Largest remainders, ties to the earlier group (no caps needed in these cases)."""
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


# engineers with 40, 120, 10, 200, 6 and 30 audited tasks (4, 30, 0, 12, 3, 3 overridden)
SIZES = {"a@x": (40, 4), "b@x": (120, 30), "c@x": (10, 0), "d@x": (200, 12), "e@x": (6, 3)}


@pytest.fixture(scope="module")
def engineers() -> pd.DataFrame:
    return engineers_frame(dict(SIZES))


def counts_of(picked: pd.DataFrame) -> dict[str, int]:
    return picked["field_engineer_email"].astype(str).value_counts().to_dict()


def test_n_is_the_size_of_the_whole_sample_proportionally(engineers) -> None:
    picked = dfs.sample(engineers, n=50, by="field_engineer_email")
    assert len(picked) == 50
    emails = sorted(SIZES)
    expected = hamilton(50, [Fraction(SIZES[e][0]) for e in emails])
    assert counts_of(picked) == {e: c for e, c in zip(emails, expected, strict=True) if c}
    plan = picked.attrs["allocation"]
    assert list(plan["sampled"]) == expected and list(plan["available"]) == [
        SIZES[e][0] for e in emails
    ]


def test_equal_allocation_gives_what_small_groups_cannot_to_the_others(engineers) -> None:
    picked = dfs.sample(engineers, n=50, by="field_engineer_email", allocation="equal")
    assert len(picked) == 50
    # 10 each, but e has 6: its 4 go to the others; c then has all its 10, so a, b and d
    # share 50 - 16 = 34 (11.33 each: the remainder to the first)
    assert counts_of(picked) == {"a@x": 12, "b@x": 11, "c@x": 10, "d@x": 11, "e@x": 6}


def test_neyman_allocation_follows_size_times_spread(engineers) -> None:
    picked = dfs.sample(engineers, n=60, by="field_engineer_email", allocation="neyman")
    assert len(picked) == 60
    emails = sorted(SIZES)
    weights = []
    for e in emails:
        size, k = SIZES[e]
        p = (k + 1) / (size + 2)
        weights.append(size * math.sqrt(p * (1 - p)))
    quotas = [60 * w / sum(weights) for w in weights]
    got = counts_of(picked)
    for e, q in zip(emails, quotas, strict=True):
        assert abs(got.get(e, 0) - min(q, SIZES[e][0])) < 1 + 1e-9 or got[e] == SIZES[e][0]
    # b (rate 25%) gets more than its proportional share, d (rate 6%) less
    proportional = counts_of(dfs.sample(engineers, n=60, by="field_engineer_email"))
    assert got["b@x"] > proportional["b@x"] and got["d@x"] < proportional["d@x"]


def test_allocate_caps_and_redistributes() -> None:
    assert audit.allocate(10, [2, 50, 50]) == [0, 5, 5]  # quotas 0.196, 4.902, 4.902
    assert audit.allocate(10, [1, 1, 100], [1, 1, 1]) == [1, 1, 8]
    assert audit.allocate(500, [3, 4]) == [3, 4]
    assert sum(audit.allocate(37, [5, 9, 13, 200], [0, 0, 0, 0])) == 37


def test_n_per_group_keeps_the_former_behaviour(engineers) -> None:
    picked = dfs.sample(engineers, n_per_group=8, by="field_engineer_email", seed=3)
    assert counts_of(picked) == {"a@x": 8, "b@x": 8, "c@x": 8, "d@x": 8, "e@x": 6}
    with pytest.raises(ConfigurationError, match="not both"):
        dfs.sample(engineers, n=5, n_per_group=5)
    with pytest.raises(ConfigurationError):
        dfs.sample(engineers, n_per_group=0)
    with pytest.raises(ConfigurationError, match="allocation"):
        dfs.sample(engineers, allocation="optimal")


def test_disputed_samples_overridden_rows_only(engineers) -> None:
    picked = dfs.sample(engineers, n=20, by="field_engineer_email", disputed=True)
    assert len(picked) == 20 and picked["is_overridden"].all()
    everything = dfs.sample(engineers, n=1000, by=None, disputed=True)
    assert len(everything) == sum(k for _, k in SIZES.values())
    small = normalize.tasks_frame(small_work_orders())
    # on the verdict basis: flipped verdicts only (the readable serial change is left out)
    flips = dfs.sample(small, n=50, by=None, disputed=True, basis="verdict")
    assert flips["is_verdict_overridden"].all()
    assert len(flips) == int(small["is_verdict_overridden"].fillna(False).sum())


def test_results_do_not_depend_on_row_order(engineers) -> None:
    def keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
        return sorted(zip(frame["work_order_id"], frame["task_id"].astype(str), strict=True))

    for allocation in audit.ALLOCATIONS:
        picked = dfs.sample(
            engineers, n=30, by="field_engineer_email", allocation=allocation, seed=5
        )
        shuffled = engineers.sample(frac=1.0, random_state=9)
        again = dfs.sample(shuffled, n=30, by="field_engineer_email", allocation=allocation, seed=5)
        assert keys(again) == keys(picked)
    frame = normalize.tasks_frame(drift_work_orders())
    reversed_frame = normalize.tasks_frame(list(reversed(drift_work_orders())))
    assert keys(dfs.sample(frame, n=7, seed=2)) == keys(dfs.sample(reversed_frame, n=7, seed=2))


def test_missing_group_is_sampled_as_none() -> None:
    frame = engineers_frame({"a@x": (20, 2), None: (20, 2)})
    picked = dfs.sample(frame, n=10, by="field_engineer_email")
    assert len(picked) == 10
    assert list(picked.attrs["allocation"]["field_engineer_email"]) == ["a@x", "(none)"]


@pytest.mark.parametrize(
    ("margin", "rate", "confidence"),
    [(0.02, None, 0.95), (0.05, None, 0.95), (0.02, 0.1, 0.95), (0.01, 0.05, 0.99)],
)
def test_sample_size(margin, rate, confidence) -> None:
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = 0.5 if rate is None else rate
    expected = math.ceil(z * z * p * (1 - p) / margin**2)
    assert dfs.sample_size(margin, rate, confidence) == expected
    assert dfs.audit.sample_size(margin=margin, rate=rate, confidence=confidence) == expected


def test_sample_size_known_values_and_population() -> None:
    assert dfs.sample_size() == 2401  # 1.959964^2 x 0.25 / 0.02^2 = 2400.9
    assert dfs.sample_size(margin=0.05) == 385
    z = NormalDist().inv_cdf(0.975)
    infinite = z * z * 0.25 / 0.02**2
    assert dfs.sample_size(population=1000) == math.ceil(infinite / (1 + (infinite - 1) / 1000))
    assert dfs.sample_size(population=1000) == 707  # 2400.9 / 3.3999 = 706.2
    for bad in ({"margin": 0}, {"margin": 1.5}, {"rate": 2}, {"confidence": 1}):
        with pytest.raises(ConfigurationError):
            dfs.sample_size(**bad)
