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
    require_basis,
    require_columns,
    show_missing,
    utc_dates,
    with_keys,
)
from .stats import adjust_pvalues, fisher_exact, wilson_interval


def drift(
    tasks: TasksFrame,
    by: str | None = "app_version_id",
    freq: str | None = None,
    within: str | Sequence[str] | None = "task_name",
    reviewed_only: bool = True,
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
    ``ci_high``, ``change`` (rate minus the previous period's), ``p_value`` (Fisher's exact
    test against the previous period), ``p_adjusted`` (``method``: Holm controls the chance of
    any false flag over the whole table; ``"bh"`` the false discovery rate) and ``flagged``
    (``p_adjusted < alpha``).
    """
    if (by is None) == (freq is None):
        raise ConfigurationError("drift needs by=<column> or freq='W'/'M'/..., not both.")
    groups = as_list(within)
    flag = require_basis(tasks, basis, "drift")
    require_columns(tasks, ["analyzed", "reviewed", flag, date_column], "drift")
    sources = key_sources(tasks, groups, "drift")
    if freq is None:
        require_columns(tasks, [by], "drift(by=...)")  # type: ignore[list-item]
    else:
        period_start(pd.Series([], dtype="datetime64[ns, UTC]"), freq)  # a bad freq fails here
    needed = [*sources, date_column, "analyzed", "reviewed", flag]
    counts = reduce_counts(
        tasks,
        needed if freq is not None else [*needed, by],
        partial(
            _drift_counts,
            groups=groups,
            by=by,
            freq=freq,
            reviewed_only=reviewed_only,
            date_column=date_column,
            basis=basis,
        ),
        partial(_drift_sum, keys=[*groups, "period"]),
    )
    counts = show_missing(counts, groups)
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
    stats["ci_low"], stats["ci_high"] = wilson_interval(stats["n_overridden"], stats["n"], level)
    prev = stats.groupby(groups, observed=True, sort=False).shift(1) if groups else stats.shift(1)
    stats["change"] = stats["rate"] - prev["rate"]
    pvalues = []
    for row, before in zip(
        stats.itertuples(index=False), prev.itertuples(index=False), strict=True
    ):
        if is_missing(before.n):
            pvalues.append(np.nan)
        else:
            pvalues.append(
                fisher_exact(
                    int(row.n_overridden), int(row.n), int(before.n_overridden), int(before.n)
                )
            )
    stats["p_value"] = pvalues
    stats["p_adjusted"] = adjust_pvalues(stats["p_value"], method)
    stats["flagged"] = (stats["p_adjusted"] < alpha).fillna(False) if len(stats) else False
    stats["flagged"] = stats["flagged"].astype(bool)
    stats.attrs.update(level=level, alpha=alpha, method=method, basis=basis, by=by, freq=freq)
    return stats.drop(columns="_rank")


def _drift_counts(
    part: pd.DataFrame,
    groups: list[str],
    by: str | None,
    freq: str | None,
    reviewed_only: bool,
    date_column: str,
    basis: str = "value",
) -> pd.DataFrame:
    """Per group of ``groups`` and period (missing ones included) of the audited tasks of
    ``part``: ``first_date`` (earliest ``date_column``), ``n`` and ``n_overridden``."""
    frame = with_keys(part, groups, "drift")
    flag = flag_column(basis)
    mask = audited_mask(frame, reviewed_only)
    if basis == "verdict":
        mask &= frame[flag].notna().to_numpy()
    counted = frame[mask]
    if freq is not None:
        period = period_start(counted[date_column], freq)
    else:
        period = counted[by].astype(object)
    counts = counted[groups].assign(
        period=period,
        first_date=utc_dates(counted[date_column]),
        n=np.ones(len(counted), dtype="int64"),
        n_overridden=as_booleans(counted[flag]).astype("int64"),
    )
    return _drift_sum(counts, [*groups, "period"])


def _drift_sum(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Drift counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    summed = counts.groupby(keys, observed=True, dropna=False).agg(
        first_date=("first_date", "min"), n=("n", "sum"), n_overridden=("n_overridden", "sum")
    )
    return summed.reset_index()
