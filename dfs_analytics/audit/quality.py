"""The AI as a classifier: :func:`verdict_quality` gives the precision, recall and F1 of its
"not conform" verdict against the verdict a human checked, with intervals that treat each work
order as a cluster.

Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from .frames import (
    TasksFrame,
    as_booleans,
    as_list,
    key_sources,
    reduce_counts,
    require_columns,
    show_missing,
    with_keys,
)
from .stats import cluster_wilson_interval, z_value

COUNTS = ("tp", "fp", "fn", "tn")
QUALITY_COLUMNS = (
    "n_tasks",
    "n_work_orders",
    *COUNTS,
    "precision",
    "precision_low",
    "precision_high",
    "recall",
    "recall_low",
    "recall_high",
    "f1",
    "f1_low",
    "f1_high",
    "prevalence",
    "prevalence_low",
    "prevalence_high",
)
_NEEDED = ("work_order_id", "analyzed", "reviewed", "conformity_status", "is_conform")


def verdict_quality(
    tasks: TasksFrame, by: str | Sequence[str] | None = "task_name", level: float = 0.95
) -> pd.DataFrame:
    """How good the AI's "not conform" verdict is, per group: precision, recall and F1
    against the human-checked verdict.

    Population: the analysed conformity tasks (``analyzed`` and ``conformity_status``) of
    *reviewed* work orders only, the ones whose final verdict a human checked; the figures say
    nothing directly about unreviewed work orders (:func:`site_estimate` does). A task is
    *positive for the AI* when ``ai_is_conform`` is not true (false, or a value that matches
    no rule), and *truly positive* when its final state ``is_conform`` is not true, as
    ``progress_score`` counts it. ``tp``: both say not conform; ``fp``: the AI says not
    conform, the human-checked verdict conform; ``fn``: the AI says conform, the checked
    verdict not conform; ``tn``: both conform.

    ``precision = tp / (tp + fp)`` (of the tasks the AI flags, the share really not conform),
    ``recall = tp / (tp + fn)`` (of the tasks really not conform, the share the AI flags),
    ``f1 = 2 tp / (2 tp + fp + fn)``, and ``prevalence = (tp + fn) / n_tasks`` (the share of
    the counted tasks really not conform: the non-conformity rate of the reviewed work
    orders); NaN without trials.

    A work order is a cluster: its tasks share photos, a technician and a day, so their
    errors come together. The ``level`` intervals are Wilson intervals at the effective sample
    size (the design effect of work orders as clusters,
    :func:`~dfs_analytics.audit.stats.cluster_wilson_interval`): precision's trials are the
    AI's positives, recall's the true positives, F1's ``tp + (fp + fn) / 2`` (an
    approximation), prevalence's every counted task. Where each work order gives one trial,
    as per task name usually, they are plain Wilson intervals.

    ``tasks`` is a pandas or a Dask frame with ``work_order_id``, ``analyzed``, ``reviewed``,
    ``conformity_status``, ``is_conform`` and ``ai_is_conform``. ``by``: column(s) of the frame
    or a time key (``"week"``, ``"month"``...), ``None`` for one overall row. Returns one row
    per group present among the counted tasks, in the order of the ``by`` columns (a missing
    group shown as ``"(none)"``): the ``by`` columns, ``n_tasks``, ``n_work_orders`` (reviewed
    work orders with a counted task), ``tp``, ``fp``, ``fn``, ``tn``, ``precision``,
    ``precision_low``, ``precision_high``, ``recall``, ``recall_low``, ``recall_high``,
    ``f1``, ``f1_low``, ``f1_high``, ``prevalence``, ``prevalence_low``, ``prevalence_high``.
    ``attrs`` holds ``level`` and ``population``.
    """
    keys = as_list(by)
    require_columns(tasks, [*_NEEDED, "ai_is_conform"], "verdict_quality")
    z_value(level)
    sources = key_sources(tasks, keys, "verdict_quality")
    per_work_order = reduce_counts(
        tasks,
        [*sources, *_NEEDED, "ai_is_conform"],
        partial(_work_order_counts, keys=keys),
        partial(_sum_by, keys=[*keys, "work_order_id"]),
    )
    out = _quality(per_work_order, keys, level)
    out.attrs.update(
        level=level,
        population="analysed conformity tasks of reviewed work orders",
    )
    return out


def _work_order_counts(part: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """tp, fp, fn, tn per group of ``keys`` and work order, over the counted tasks of
    ``part``."""
    frame = with_keys(part, keys, "verdict_quality")
    counted = (
        as_booleans(frame["analyzed"])
        & as_booleans(frame["reviewed"])
        & as_booleans(frame["conformity_status"])
    )
    ai = ~as_booleans(frame["ai_is_conform"])  # not conform for the AI (or no rule matched)
    human = ~as_booleans(frame["is_conform"])  # not conform after review
    flags = {
        "tp": counted & ai & human,
        "fp": counted & ai & ~human,
        "fn": counted & ~ai & human,
        "tn": counted & ~ai & ~human,
    }
    counts = frame[keys].assign(
        work_order_id=frame["work_order_id"].astype(str),
        **{name: flag.astype("int64") for name, flag in flags.items()},
    )
    return _sum_by(counts[counted.to_numpy()], [*keys, "work_order_id"])


def _sum_by(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The four counts summed per group of ``keys`` (a missing key is a group)."""
    summed = counts.groupby(keys, observed=True, dropna=False)[list(COUNTS)].sum()
    return summed.reset_index().astype({c: "int64" for c in COUNTS})


def _quality(per_work_order: pd.DataFrame, keys: list[str], level: float) -> pd.DataFrame:
    """The figures of each group from its per-work-order counts."""
    frame = per_work_order.copy()
    tp = frame["tp"].astype(float)
    trials = {
        "precision": (tp, tp + frame["fp"]),
        "recall": (tp, tp + frame["fn"]),
        "f1": (tp, tp + (frame["fp"] + frame["fn"]) / 2),
        "prevalence": (tp + frame["fn"], frame[list(COUNTS)].sum(axis=1).astype(float)),
    }
    sums = {}
    for name, (k, n) in trials.items():
        sums.update(
            {
                f"{name}_k": k,
                f"{name}_n": n,
                f"{name}_kk": k * k,
                f"{name}_nn": n * n,
                f"{name}_kn": k * n,
            }
        )
    frame = frame.assign(**sums, n_tasks=frame[list(COUNTS)].sum(axis=1), n_work_orders=1)
    values = [c for c in frame.columns if c not in keys and c != "work_order_id"]
    if keys:
        groups = frame.groupby(keys, observed=True, dropna=False, sort=True)[values].sum()
        out = groups.reset_index()
    else:
        out = frame[values].sum().to_frame().T
    for name in trials:
        k, n = out[f"{name}_k"].to_numpy(float), out[f"{name}_n"].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        low, high = cluster_wilson_interval(
            k, n, out[f"{name}_kk"], out[f"{name}_nn"], out[f"{name}_kn"], level
        )
        out[f"{name}_low"] = np.where(n > 0, low, np.nan)
        out[f"{name}_high"] = np.where(n > 0, high, np.nan)
    out = out.astype({c: "int64" for c in (*COUNTS, "n_tasks", "n_work_orders")})
    out = out[[*keys, *QUALITY_COLUMNS]]
    if keys:
        out = show_missing(out, keys)
    return out.reset_index(drop=True)
