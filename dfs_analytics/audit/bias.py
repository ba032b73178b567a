"""Are the reviewed work orders like the rest? :func:`review_bias` compares them on everything
known for every work order, so an auditor sees when a review queue was not random.

Each work order is one observation (no clustering to correct for). Never does I/O and never
changes the frame it is given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AuditInputError
from .frames import NONE_LABEL, as_booleans, require_columns, utc_dates
from .site import AI_NONCONFORMITY, work_order_table
from .stats import adjust_pvalues, chi2_sf, student_t_sf

BIAS_COLUMNS = (
    "feature",
    "kind",
    "reviewed",
    "unreviewed",
    "difference",
    "statistic",
    "p_value",
    "p_adjusted",
    "flagged",
)
FLAG_LEVEL = 0.01
"""Holm-adjusted p-values below this flag a feature."""
_NUMERIC = {AI_NONCONFORMITY: "AI non-conformity share", "analysed_tasks": "analysed tasks"}
_CATEGORICAL = ("app_version_id", "field_engineer_email", "month", "task_groups")


def review_bias(tasks: pd.DataFrame, level: float = FLAG_LEVEL) -> pd.DataFrame:
    """Compare reviewed and unreviewed work orders of a tasks frame on what is known for all
    of them: the AI's non-conformity share and the number of analysed tasks (means, Welch's
    t-test), the app version, the field engineer, the month and the task mix (the set of task
    groups analysed) (distributions, chi-square test; categories expected fewer than 5 times
    pooled as "(other)").

    Returns one row per feature: ``feature``, ``kind`` (``"mean"`` or ``"distribution"``),
    ``reviewed`` and ``unreviewed`` (the means, or for a distribution the category whose
    share differs most and its shares), ``difference`` (of the means, or the total variation
    distance of the distributions), ``statistic``, ``p_value``, ``p_adjusted`` (Holm) and
    ``flagged`` (``p_adjusted < level``, 1% by default). ``attrs`` holds the numbers of
    reviewed and unreviewed work orders. With fewer than 2 of either, nothing can be tested:
    p-values are NaN and nothing is flagged.
    """
    require_columns(tasks, ["work_order_id", "reviewed", "analyzed", "task_name"], "review_bias")
    table = work_order_table(tasks)
    if table.empty:
        raise AuditInputError("review_bias: the frame holds no work order.")
    reviewed = table["reviewed"].astype(bool).to_numpy()
    if "create_date" in table.columns:
        table["month"] = utc_dates(table["create_date"]).dt.strftime("%Y-%m")
    groups = (
        tasks.loc[as_booleans(tasks["analyzed"])]
        .groupby(tasks["work_order_id"].astype(str), observed=True)["task_group_name"]
        .agg(lambda s: " + ".join(sorted({str(v) for v in s.dropna()})))
        if "task_group_name" in tasks.columns
        else None
    )
    if groups is not None:
        table["task_groups"] = table["work_order_id"].map(groups).fillna(NONE_LABEL)
    rows = []
    for column, name in _NUMERIC.items():
        if column in table.columns:
            rows.append(_compare_means(name, table[column].to_numpy(dtype=float), reviewed))
    for column in _CATEGORICAL:
        if column in table.columns:
            values = table[column].astype(object).where(table[column].notna(), NONE_LABEL)
            rows.append(_compare_distributions(column, values.astype(str).to_numpy(), reviewed))
    out = pd.DataFrame(rows, columns=list(BIAS_COLUMNS))
    tested = out["p_value"].notna()
    out["p_adjusted"] = np.nan
    if tested.any():
        out.loc[tested, "p_adjusted"] = adjust_pvalues(out.loc[tested, "p_value"].tolist())
    out["flagged"] = (out["p_adjusted"] < level).fillna(False).astype(bool)
    out.attrs["reviewed_work_orders"] = int(reviewed.sum())
    out.attrs["unreviewed_work_orders"] = int((~reviewed).sum())
    return out


def _compare_means(name: str, values: np.ndarray, reviewed: np.ndarray) -> dict[str, Any]:
    a = values[reviewed & ~np.isnan(values)]
    b = values[~reviewed & ~np.isnan(values)]
    row: dict[str, Any] = {
        "feature": name,
        "kind": "mean",
        "statistic": math.nan,
        "p_value": math.nan,
    }
    row["reviewed"] = float(a.mean()) if len(a) else math.nan
    row["unreviewed"] = float(b.mean()) if len(b) else math.nan
    row["difference"] = row["reviewed"] - row["unreviewed"]
    if len(a) < 2 or len(b) < 2:
        return row
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb <= 0:
        row.update(statistic=0.0, p_value=1.0 if row["difference"] == 0 else 0.0)
        return row
    t = row["difference"] / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    row.update(statistic=float(t), p_value=float(min(1.0, 2 * student_t_sf(abs(t), df))))
    return row


def _compare_distributions(name: str, values: np.ndarray, reviewed: np.ndarray) -> dict:
    row = {"feature": name, "kind": "distribution", "statistic": math.nan, "p_value": math.nan}
    table = pd.crosstab(values, reviewed)
    table = table.reindex(columns=[True, False], fill_value=0)
    totals = table.sum(axis=0)
    if (totals < 2).any():
        row.update(reviewed=None, unreviewed=None, difference=math.nan)
        return row
    # categories too rare for the chi-square approximation are pooled
    expected_min = table.sum(axis=1).to_numpy()[:, None] * totals.to_numpy()[None, :] / totals.sum()
    rare = (expected_min < 5).any(axis=1)
    if rare.any():
        table = (
            pd.concat([table[~rare], table[rare].sum().to_frame("(other)").T])
            .groupby(level=0)
            .sum()
        )
    shares = table / totals
    gap = (shares[True] - shares[False]).abs()
    top = gap.idxmax()
    row["reviewed"] = f"{top}: {shares.loc[top, True]:.1%}"
    row["unreviewed"] = f"{top}: {shares.loc[top, False]:.1%}"
    row["difference"] = float(gap.sum() / 2)  # total variation distance
    if len(table) < 2:
        row.update(statistic=0.0, p_value=1.0)
        return row
    observed = table.to_numpy(dtype=float)
    expected = observed.sum(axis=1)[:, None] * observed.sum(axis=0)[None, :] / observed.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    row.update(statistic=chi2, p_value=float(chi2_sf(chi2, df)))
    return row
