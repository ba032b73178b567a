"""Whether the override rate moved: :func:`drift` across app versions and periods, each change
tested with Fisher's exact test and Holm-adjusted.

Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from ..rules import is_missing
from .frames import (
    TasksFrame,
    as_booleans,
    as_list,
    audited_mask,
    flag_column,
    key_sources,
    period_start,
    reduce_counts,
    refuse_unreviewed,
    require_basis,
    require_columns,
    show_missing,
    utc_dates,
    with_keys,
)
from .rates import CLUSTER_SUMS, add_cluster_interval, cluster_counts
from .stats import adjust_pvalues, design_effect, fisher_exact


def drift(
    tasks: TasksFrame,
    by: str | None = "app_version_id",
    freq: str | None = None,
    within: str | Sequence[str] | None = "task_name",
    reviewed_only: bool | None = None,
    level: float = 0.95,
    alpha: float = 0.05,
    method: str = "holm",
    date_column: str = "create_date",
    basis: str = "value",
) -> pd.DataFrame:
    """The override rate per period, and whether it changed significantly from the previous one.

    ``basis="value"`` counts changed values, ``basis="verdict"`` flipped verdicts (stable
    labels: a sentence reworded by an app upgrade is no flip; tasks without rules left out).

    Periods are the values of ``by`` (default: app versions, ordered by their first
    ``date_column``) or, with ``freq`` (``"W"``, ``"M"``, ``"D"``, ``"Q"``), periods of
    ``date_column``. Rates are computed per group of ``within`` (default: per task name).

    Returns ``within`` columns, ``period``, ``first_date`` (the earliest ``date_column`` of the
    group in that period), ``n``, ``n_overridden``, ``rate``, ``ci_low``,
    ``ci_high``, ``design_effect``, ``change`` (rate minus the previous period's), ``p_value``
    (Fisher's exact test against the previous period), ``p_adjusted`` (``method``: Holm
    controls the chance of any false flag over the whole table; ``"bh"`` the false discovery
    rate) and ``flagged`` (``p_adjusted < alpha``).

    Population: the analysed tasks of *reviewed* work orders only (with a verdict, on
    ``basis="verdict"``); for the whole site use :func:`site_estimate`. Tasks of one work
    order are a cluster: the interval is Wilson's at the effective sample size n /
    design_effect, and Fisher's test takes both periods' counts over their pooled design
    effect.
    """
    refuse_unreviewed(reviewed_only, "drift")
    if (by is None) == (freq is None):
        raise ConfigurationError("drift needs by=<column> or freq='W'/'M'/..., not both.")
    groups = as_list(within)
    flag = require_basis(tasks, basis, "drift")
    require_columns(tasks, ["analyzed", "reviewed", flag, date_column], "drift")
    sources = key_sources(tasks, groups, "drift")
    periods = [] if by is None else [by]  # the column periods are read from (none: dates)
    require_columns(tasks, periods, "drift(by=...)")
    if freq is not None:
        period_start(pd.Series([], dtype="datetime64[ns, UTC]"), freq)  # a bad freq fails here
    clusters = ["work_order_id"] if "work_order_id" in tasks.columns else []
    needed = [*sources, *clusters, date_column, "analyzed", "reviewed", flag]
    counts = reduce_counts(
        tasks,
        [*needed, *periods],
        partial(
            _drift_counts,
            groups=groups,
            by=by,
            freq=freq,
            date_column=date_column,
            basis=basis,
        ),
        partial(_drift_sum, keys=[*groups, "period"]),
    )
    counts = show_missing(counts, groups)
    counts.attrs = {}  # a result, not the loaded frame: no provenance carried over
    if freq is not None:
        order = sorted(counts["period"].dropna().unique())
    else:
        first = counts.groupby("period")["first_date"].min().sort_values(kind="stable")
        order = list(first.index)
    # rows with a missing group or period count for the period order only
    stats = counts[counts[[*groups, "period"]].notna().all(axis=1)].reset_index(drop=True)
    rank = {p: i for i, p in enumerate(order)}
    stats["_rank"] = stats["period"].map(rank)
    stats = stats.sort_values([*groups, "_rank"], kind="stable").reset_index(drop=True)
    stats["rate"] = stats["n_overridden"] / stats["n"]
    add_cluster_interval(stats, level)
    prev = stats.groupby(groups, observed=True, sort=False).shift(1) if groups else stats.shift(1)
    stats["change"] = stats["rate"] - prev["rate"]
    pvalues = []
    for row, before in zip(
        stats.itertuples(index=False), prev.itertuples(index=False), strict=True
    ):
        if is_missing(before.n):
            pvalues.append(np.nan)
            continue
        # work orders as clusters: both periods' counts over their pooled design effect
        pooled = float(
            design_effect(
                *(
                    getattr(row, c) + getattr(before, c)
                    for c in ("n_overridden", "n", *CLUSTER_SUMS)
                )
            )
        )
        pvalues.append(
            fisher_exact(
                *(
                    round(x / pooled)
                    for x in (row.n_overridden, row.n, before.n_overridden, before.n)
                )
            )
        )
    stats["p_value"] = pvalues
    stats["p_adjusted"] = adjust_pvalues(stats["p_value"], method)
    stats["flagged"] = (stats["p_adjusted"] < alpha).fillna(False) if len(stats) else False
    stats["flagged"] = stats["flagged"].astype(bool)
    stats.attrs.update(level=level, alpha=alpha, method=method, basis=basis, by=by, freq=freq)
    return stats.drop(columns=["_rank", *CLUSTER_SUMS])


def _drift_counts(
    part: pd.DataFrame,
    groups: list[str],
    by: str | None,
    freq: str | None,
    date_column: str,
    basis: str = "value",
) -> pd.DataFrame:
    """Per group of ``groups`` and period (missing ones included) of the audited tasks of
    ``part``: ``first_date`` (earliest ``date_column``), ``n``, ``n_overridden`` and the
    cluster sums of its work orders (:data:`~.rates.CLUSTER_SUMS`)."""
    frame = with_keys(part, groups, "drift")
    flag = flag_column(basis)
    mask = audited_mask(frame)
    if basis == "verdict":
        mask &= frame[flag].notna().to_numpy()
    counted = frame[mask]
    if freq is not None:
        period = period_start(counted[date_column], freq)
    else:
        period = counted[by].astype(object)
    keyed = counted[groups].assign(period=period)
    if "work_order_id" in counted.columns:
        keyed["work_order_id"] = counted["work_order_id"].to_numpy()
    counts = cluster_counts(
        keyed, [*groups, "period"], np.ones(len(counted), dtype=bool), as_booleans(counted[flag])
    )
    first = (
        keyed.assign(first_date=utc_dates(counted[date_column]))
        .groupby([*groups, "period"], observed=True, dropna=False)["first_date"]
        .min()
        .reset_index()
    )
    undated = counts.assign(first_date=pd.NaT)  # type: ignore[arg-type]  # stubs: NaT no scalar
    summed = _drift_sum(undated, [*groups, "period"]).drop(columns="first_date")
    return summed.merge(first, on=[*groups, "period"], how="left")


def _drift_sum(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Drift counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    sums = {c: (c, "sum") for c in ("n", "n_overridden", *CLUSTER_SUMS)}
    summed = counts.groupby(keys, observed=True, dropna=False).agg(
        first_date=("first_date", "min"), **sums
    )
    return summed.reset_index()
