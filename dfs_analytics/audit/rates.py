"""Override rates per group (changed values or flipped verdicts) with Wilson intervals, and
the headline :func:`summary`.

Rates describe the reviewed work orders' analysed tasks. Never does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from .frames import (
    TasksFrame,
    as_booleans,
    as_list,
    audited,
    audited_mask,
    flag_column,
    key_sources,
    provenance,
    reduce_counts,
    require_basis,
    require_columns,
    show_missing,
    with_keys,
)
from .stats import wilson_interval, z_value

# --------------------------------------------------------------------------------------------
# override rates
# --------------------------------------------------------------------------------------------


def override_rates(
    tasks: TasksFrame,
    by: str | Sequence[str] | None = "task_name",
    reviewed_only: bool = True,
    level: float = 0.95,
    basis: str = "value",
) -> pd.DataFrame:
    """How often humans overturned the AI, per group, with Wilson intervals.

    ``tasks`` is a pandas or a Dask tasks frame; the result is a pandas frame either way.
    ``basis="value"`` counts changed values (``is_overridden``), ``basis="verdict"`` flipped
    verdicts (``is_verdict_overridden``; tasks without rules are left out, so n counts only
    tasks that have a verdict). Returns one row per group of ``by`` (any column(s) of the
    frame, or ``"week"``, ``"month"``, ``"day"``, ``"quarter"`` of ``create_date``; ``None``
    for one overall row): ``n`` (tasks that count for the audit), ``n_overridden``, ``rate``
    (n_overridden / n; NaN when n = 0), ``ci_low``, ``ci_high`` (the ``level`` Wilson
    interval; [0, 1] when n = 0). Groups present in the frame but with no audited task are
    kept with n = 0, so a task never reviewed does not vanish. Rows are ordered by the ``by``
    columns (time keys in date order, categoricals in their categories' order), which keep
    their dtypes; a missing group is shown as ``"(none)"``, last. ``attrs`` holds ``level``
    and ``basis``.
    """
    keys = as_list(by)
    flag = require_basis(tasks, basis, "override_rates")
    require_columns(tasks, ["analyzed", "reviewed", flag], "override_rates")
    z_value(level)
    out = rates_table(tasks, keys, reviewed_only, level, basis, "override_rates")
    out.attrs.update(level=level, basis=basis)
    return out


def rates_table(
    tasks: TasksFrame, keys: list[str], reviewed_only: bool, level: float, basis: str, what: str
) -> pd.DataFrame:
    flag = flag_column(basis)
    sources = key_sources(tasks, keys, what)
    counts = reduce_counts(
        tasks,
        [*sources, "analyzed", "reviewed", flag],
        partial(_override_counts, keys=keys, reviewed_only=reviewed_only, basis=basis),
        partial(sum_counts, keys=keys),
    )
    out = counts.astype({"n": "int64", "n_overridden": "int64"})
    out["rate"] = np.where(out["n"] > 0, out["n_overridden"] / out["n"].where(out["n"] > 0), np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_overridden"], out["n"], level)
    if keys:
        out = show_missing(out.sort_values(keys, kind="stable"), keys)
    return out.reset_index(drop=True)


def _override_counts(
    part: pd.DataFrame, keys: list[str], reviewed_only: bool, basis: str = "value"
) -> pd.DataFrame:
    """Per group of ``keys`` present in ``part`` (missing keys included): ``n`` audited tasks
    (with a verdict, on the verdict basis) and ``n_overridden``, in int64; one row when there
    are no keys."""
    frame = with_keys(part, keys, "override_rates")
    column = frame[flag_column(basis)]
    mask = audited_mask(frame, reviewed_only)
    if basis == "verdict":
        mask &= column.notna().to_numpy()
    counts = frame[keys].assign(
        n=mask.astype("int64"), n_overridden=(mask & as_booleans(column)).astype("int64")
    )
    return sum_counts(counts, keys)


def sum_counts(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    values = [c for c in counts.columns if c not in keys]
    if not keys:
        return counts[values].sum().to_frame().T.astype("int64")
    summed = counts.groupby(keys, observed=True, dropna=False)[values].sum()
    return summed.reset_index()


def summary(tasks: pd.DataFrame, level: float = 0.95, basis: str = "value") -> dict[str, Any]:
    """Headline figures: work orders, audited tasks, overall override rate and its interval.

    Returns a dict: ``work_orders``, ``reviewed_work_orders``, ``tasks``, ``audited_tasks``
    (with a verdict, on ``basis="verdict"``), ``overridden`` (changed values, or flipped
    verdicts on ``basis="verdict"``), ``override_rate`` (a share; NaN without audited tasks),
    ``ci_low``, ``ci_high``, ``level``, ``basis``, and ``provenance`` (:func:`provenance` of
    ``tasks``: dataset path, version, table, filters and as_of the frame was loaded with, or
    None when unrecorded).
    """
    source = provenance(tasks)  # before anything else: attrs do not survive every operation
    flag = require_basis(tasks, basis, "summary")
    require_columns(tasks, ["work_order_id", "analyzed", "reviewed", flag], "summary")
    counted = audited(tasks)
    if basis == "verdict":
        counted = counted[counted[flag].notna()]
    n = len(counted)
    k = int(counted[flag].fillna(False).sum())
    low, high = wilson_interval(k, n, level)
    return {
        "work_orders": int(tasks["work_order_id"].nunique()),
        "reviewed_work_orders": int(
            tasks.loc[tasks["reviewed"].fillna(False).astype(bool), "work_order_id"].nunique()
        ),
        "tasks": len(tasks),
        "audited_tasks": n,
        "overridden": k,
        "override_rate": k / n if n else math.nan,
        "ci_low": float(low),
        "ci_high": float(high),
        "level": level,
        "basis": basis,
        "provenance": source,
    }
