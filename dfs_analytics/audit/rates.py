"""Override rates per group (changed values or flipped verdicts) with intervals that treat
work orders as clusters, and the headline :func:`summary`.

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
    audited_mask,
    flag_column,
    key_sources,
    provenance,
    reduce_counts,
    refuse_unreviewed,
    require_basis,
    require_columns,
    show_missing,
    with_keys,
)
from .stats import cluster_wilson_interval, design_effect, z_value

# --------------------------------------------------------------------------------------------
# override rates
# --------------------------------------------------------------------------------------------


def override_rates(
    tasks: TasksFrame,
    by: str | Sequence[str] | None = "task_name",
    reviewed_only: bool | None = None,
    level: float = 0.95,
    basis: str = "value",
) -> pd.DataFrame:
    """How often humans overturned the AI, per group, on the reviewed work orders.

    ``tasks`` is a pandas or a Dask tasks frame; the result is a pandas frame either way.
    ``basis="value"`` counts changed values (``is_overridden``), ``basis="verdict"`` flipped
    verdicts (``is_verdict_overridden``; tasks without rules are left out, so n counts only
    tasks that have a verdict). Returns one row per group of ``by`` (any column(s) of the
    frame, or ``"week"``, ``"month"``, ``"day"``, ``"quarter"`` of ``create_date``; ``None``
    for one overall row): ``n`` (tasks that count for the audit), ``n_overridden``, ``rate``
    (n_overridden / n; NaN when n = 0), ``ci_low``, ``ci_high`` (the ``level`` interval;
    [0, 1] when n = 0) and ``design_effect``. Tasks of one work order are a cluster: the
    interval is Wilson's at the effective sample size n / design_effect, which is Wilson's
    itself where each work order gives one task to the group (rates per task name) or where
    overrides do not come together by work order. These rates describe the analysed tasks of
    *reviewed* work orders; for the whole site use :func:`site_estimate`. Groups present in
    the frame but with no audited task are kept with n = 0, so a task never reviewed does not
    vanish. Rows are ordered by the ``by`` columns (time keys in date order, categoricals in
    their categories' order), which keep their dtypes; a missing group is shown as
    ``"(none)"``, last. ``attrs`` holds ``level`` and ``basis``.
    """
    refuse_unreviewed(reviewed_only, "override_rates")
    keys = as_list(by)
    flag = require_basis(tasks, basis, "override_rates")
    require_columns(tasks, ["analyzed", "reviewed", flag], "override_rates")
    z_value(level)
    out = rates_table(tasks, keys, level, basis, "override_rates")
    out = out.drop(columns=list(CLUSTER_SUMS))
    out.attrs.update(level=level, basis=basis)
    return out


CLUSTER_SUMS = ("kk", "nn", "kn")
"""Per group, the sums over its work orders of k_i², n_i² and k_i n_i (overridden and audited
tasks of work order i): what a design effect needs (:func:`~.stats.design_effect`)."""


def rates_table(
    tasks: TasksFrame, keys: list[str], level: float, basis: str, what: str
) -> pd.DataFrame:
    """Per group of ``keys``: ``n``, ``n_overridden``, the :data:`CLUSTER_SUMS`, ``rate``,
    ``ci_low``, ``ci_high`` (clustered Wilson) and ``design_effect``."""
    flag = flag_column(basis)
    sources = key_sources(tasks, keys, what)
    clusters = ["work_order_id"] if "work_order_id" in tasks.columns else []
    counts = reduce_counts(
        tasks,
        [*sources, *clusters, "analyzed", "reviewed", flag],
        partial(_override_counts, keys=keys, basis=basis),
        partial(sum_counts, keys=keys),
    )
    out = counts.astype({c: "int64" for c in ("n", "n_overridden", *CLUSTER_SUMS)})
    out.attrs = {}  # a result, not the loaded frame: no provenance carried over
    out["rate"] = np.where(out["n"] > 0, out["n_overridden"] / out["n"].where(out["n"] > 0), np.nan)
    add_cluster_interval(out, level)
    if keys:
        out = show_missing(out.sort_values(keys, kind="stable"), keys)
    return out.reset_index(drop=True)


def cluster_counts(
    frame: pd.DataFrame, keys: list[str], mask: pd.Series | np.ndarray, hit: Any
) -> pd.DataFrame:
    """Per row of ``frame`` with ``keys``: ``n`` (1 where ``mask``), ``n_overridden`` (1 where
    ``mask`` and ``hit``) and, summed per group and work order first, the
    :data:`CLUSTER_SUMS`; a frame without ``work_order_id`` counts each task as its own work
    order. Returns the counts per group of ``keys`` and work order, ready for
    :func:`sum_counts` over ``keys``."""
    n = np.asarray(mask, dtype="int64")
    k = (np.asarray(mask, dtype=bool) & np.asarray(hit, dtype=bool)).astype("int64")
    if "work_order_id" not in frame.columns:
        return frame[keys].assign(n=n, n_overridden=k, kk=k, nn=n, kn=k)
    per = frame[keys].assign(work_order_id=frame["work_order_id"].to_numpy(), n=n, n_overridden=k)
    per = sum_counts(per, [*keys, "work_order_id"])
    return per.drop(columns="work_order_id").assign(
        kk=per["n_overridden"] ** 2, nn=per["n"] ** 2, kn=per["n_overridden"] * per["n"]
    )


def _override_counts(part: pd.DataFrame, keys: list[str], basis: str = "value") -> pd.DataFrame:
    """Per group of ``keys`` present in ``part`` (missing keys included): ``n`` audited tasks
    (with a verdict, on the verdict basis), ``n_overridden`` and the :data:`CLUSTER_SUMS` of
    its work orders, in int64; one row when there are no keys. A work order split over two
    partitions of a Dask frame counts as two (a dataset keeps its tasks in one file)."""
    frame = with_keys(part, keys, "override_rates")
    column = frame[flag_column(basis)]
    mask = audited_mask(frame)
    if basis == "verdict":
        mask &= column.notna().to_numpy()
    return sum_counts(cluster_counts(frame, keys, mask, as_booleans(column)), keys)


def add_cluster_interval(counts: pd.DataFrame, level: float) -> None:
    """Add ``ci_low``, ``ci_high`` (the clustered Wilson interval of ``n_overridden / n``) and
    ``design_effect`` to a frame of override counts with the :data:`CLUSTER_SUMS` columns."""
    k, n = counts["n_overridden"], counts["n"]
    kk, nn, kn = (counts[c] for c in CLUSTER_SUMS)
    counts["ci_low"], counts["ci_high"] = cluster_wilson_interval(k, n, kk, nn, kn, level)
    counts["design_effect"] = design_effect(k, n, kk, nn, kn)


def sum_counts(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    values = [c for c in counts.columns if c not in keys]
    if not keys:
        return counts[values].sum().to_frame().T.astype("int64")
    summed = counts.groupby(keys, observed=True, dropna=False)[values].sum()
    return summed.reset_index()


def summary(tasks: pd.DataFrame, level: float = 0.95, basis: str = "value") -> dict[str, Any]:
    """Headline figures: work orders, audited tasks, overall override rate and its interval.

    Returns a dict: ``work_orders``, ``reviewed_work_orders``, ``reviewed_share`` (of the
    work orders), ``tasks``, ``audited_tasks`` (with a verdict, on ``basis="verdict"``),
    ``overridden`` (changed values, or flipped verdicts on ``basis="verdict"``),
    ``override_rate`` (a share of the reviewed work orders' audited tasks; NaN without any),
    ``ci_low``, ``ci_high`` (work orders as clusters), ``design_effect``, ``level``,
    ``basis``, and ``provenance`` (:func:`provenance` of
    ``tasks``: dataset path, version, table, filters and as_of the frame was loaded with, or
    None when unrecorded).
    """
    source = provenance(tasks)  # before anything else: attrs do not survive every operation
    flag = require_basis(tasks, basis, "summary")
    require_columns(tasks, ["work_order_id", "analyzed", "reviewed", flag], "summary")
    overall = rates_table(tasks, [], level, basis, "summary").iloc[0]
    n, k = int(overall["n"]), int(overall["n_overridden"])
    work_orders = int(tasks["work_order_id"].nunique())
    reviewed = int(tasks.loc[as_booleans(tasks["reviewed"]), "work_order_id"].nunique())
    return {
        "work_orders": work_orders,
        "reviewed_work_orders": reviewed,
        "reviewed_share": reviewed / work_orders if work_orders else math.nan,
        "tasks": len(tasks),
        "audited_tasks": n,
        "overridden": k,
        "override_rate": k / n if n else math.nan,
        "ci_low": float(overall["ci_low"]),
        "ci_high": float(overall["ci_high"]),
        "design_effect": float(overall["design_effect"]),
        "level": level,
        "basis": basis,
        "provenance": source,
    }
