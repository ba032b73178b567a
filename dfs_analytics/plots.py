"""matplotlib views of an audit. Each function takes ``ax=None`` and returns the Axes it drew on.

They accept either a tasks frame (and compute what they show with :mod:`dfs_analytics.audit`)
or the frame that audit function returned, so a notebook can plot what it already computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from . import audit

_BAR = "#3b6ea8"
_PERCENT = PercentFormatter(xmax=1.0, decimals=None)  # 7.5%, not a rounded 8%
_FLAG = "#d1495b"


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size)
    return new


def _label(row: pd.Series, keys: Sequence[str]) -> str:
    parts = []
    for key in keys:
        value = row[key]
        if isinstance(value, pd.Timestamp):
            value = value.strftime("%Y-%m-%d")
        parts.append(
            "-" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        )
    return " / ".join(parts)


def plot_override_rates(
    data: pd.DataFrame,
    by: str | Sequence[str] = "task_name",
    ax: Axes | None = None,
    level: float = 0.95,
    sort: bool = True,
    min_n: int = 1,
) -> Axes:
    """Override rate per group as dots with ``level`` Wilson-interval whiskers.

    ``data``: a tasks frame, or the frame of :func:`audit.override_rates`. Groups with fewer
    than ``min_n`` audited tasks are left out; each label shows its ``n``.
    """
    rates = (
        data
        if {"rate", "ci_low", "ci_high", "n"} <= set(data.columns)
        else audit.override_rates(data, by=by, level=level)
    )
    keys = [c for c in rates.columns if c not in ("n", "n_overridden", "rate", "ci_low", "ci_high")]
    rates = rates[rates["n"] >= min_n]
    if sort:
        rates = rates.sort_values("rate", kind="stable")
    ax = _axes(ax, (7, max(2.5, 0.32 * len(rates) + 1)))
    y = np.arange(len(rates))
    rate = rates["rate"].to_numpy(dtype=float)
    low = rate - rates["ci_low"].to_numpy(dtype=float)
    high = rates["ci_high"].to_numpy(dtype=float) - rate
    ax.errorbar(rate, y, xerr=[low, high], fmt="o", color=_BAR, ecolor="#7f9cc0", capsize=3, ms=5)
    ax.set_yticks(y, [f"{_label(r, keys)}  (n={int(r['n'])})" for _, r in rates.iterrows()])
    ax.set_xlabel(
        "override rate (share of audited tasks overturned), "
        f"{rates.attrs.get('level', level):.0%} Wilson interval"
    )
    ax.xaxis.set_major_formatter(_PERCENT)
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("How often humans overturn the AI")
    return ax


def plot_confusion(
    data: pd.DataFrame,
    task_name: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    normalize: str | None = "index",
) -> Axes:
    """Heatmap of AI verdict (rows) x final verdict (columns), annotated with counts.

    ``data``: a tasks frame, or the count table of :func:`audit.confusion`. Colours show the
    share of each row (``normalize="index"``) or the counts (``normalize=None``).
    """
    if "total" in data.columns and "total" in data.index:
        counts = data.drop(index="total", columns="total")
    else:
        counts = audit.confusion(data, task_name=task_name).drop(index="total", columns="total")
    values = counts.to_numpy(dtype=float)
    if normalize == "index":
        sums = values.sum(axis=1, keepdims=True)
        shade = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
    else:
        shade = values / values.max() if values.size and values.max() > 0 else values
    ax = _axes(ax, (1.1 * len(counts.columns) + 3, 0.7 * len(counts.index) + 2))
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(
        range(len(counts.columns)), [str(c) for c in counts.columns], rotation=30, ha="right"
    )
    ax.set_yticks(range(len(counts.index)), [str(i) for i in counts.index])
    ax.set_xlabel("final verdict (after human review)")
    ax.set_ylabel("AI verdict")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                f"{int(values[i, j])}",
                ha="center",
                va="center",
                color="white" if shade[i, j] > 0.6 else "black",
                fontsize=9,
            )
    title = "AI verdict vs final verdict"
    if task_name is not None:
        title += f": {task_name if isinstance(task_name, str) else ', '.join(task_name)}"
    ax.set_title(title)
    return ax


def plot_drift(
    data: pd.DataFrame,
    task_name: str | None = None,
    ax: Axes | None = None,
    freq: str = "W",
    **drift_kwargs: Any,
) -> Axes:
    """Override rate over time with its interval as a band; significant changes marked.

    ``data``: a tasks frame (rates per ``freq`` period of ``create_date``, for ``task_name`` or
    all tasks), or the frame of :func:`audit.drift`.
    """
    if {"period", "rate", "flagged"} <= set(data.columns):
        table = data
    else:
        frame = data if task_name is None else data[data["task_name"] == task_name]
        table = audit.drift(frame, by=None, freq=freq, within=None, **drift_kwargs)
    if task_name is not None and "task_name" in table.columns:
        table = table[table["task_name"] == task_name]
    ax = _axes(ax, (8, 3.5))
    ax.set_title("Override rate over time" + (f": {task_name}" if task_name else ""))
    ax.set_ylabel("override rate")
    if table.empty:
        ax.plot([], [], "-o", color=_BAR, ms=3, label="override rate")
        ax.text(0.5, 0.5, "nothing audited yet", ha="center", va="center", transform=ax.transAxes)
        return ax
    x = table["period"]
    numeric = not pd.api.types.is_datetime64_any_dtype(x)
    xs = np.arange(len(table)) if numeric else x
    ax.fill_between(xs, table["ci_low"], table["ci_high"], color=_BAR, alpha=0.2, label="interval")
    ax.plot(xs, table["rate"], "-o", color=_BAR, ms=3, label="override rate")
    flagged = table["flagged"].to_numpy(dtype=bool)
    if flagged.any():
        ax.scatter(
            np.asarray(xs)[flagged],
            table["rate"].to_numpy()[flagged],
            s=60,
            color=_FLAG,
            zorder=3,
            label="significant change",
        )
    if numeric:
        ax.set_xticks(xs, [str(v)[:12] for v in x], rotation=20, ha="right")
    else:
        ax.tick_params(axis="x", labelrotation=30)
    ax.yaxis.set_major_formatter(_PERCENT)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_engineers(
    data: pd.DataFrame,
    ax: Axes | None = None,
    level: float = 0.95,
    min_n: int = 20,
) -> Axes:
    """Override rate per field engineer, with intervals and the overall rate as a line."""
    if {"rate", "n", "n_overridden"} <= set(data.columns):
        rates = data
        total = rates["n"].sum()
        overall = rates["n_overridden"].sum() / total if total else np.nan
    else:
        rates = audit.override_rates(data, by="field_engineer_email", level=level)
        overall = audit.summary(data, level=level)["override_rate"]
    ax = plot_override_rates(rates, ax=ax, min_n=min_n)
    if not np.isnan(overall):
        ax.axvline(overall, color="#888888", ls="--", lw=1, label=f"all engineers ({overall:.1%})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Override rate per field engineer")
    return ax
