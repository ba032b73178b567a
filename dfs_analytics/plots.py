"""matplotlib views of an audit. Each function takes ``ax=None`` and returns the Axes it drew on.

They accept either a tasks frame (and compute what they show with :mod:`dfs_analytics.audit`)
or the frame that audit function returned, so a notebook can plot what it already computed.
``basis="value"`` shows changed values, ``basis="verdict"`` flipped verdicts; titles and axis
labels say which. Periods are shown in date order, app versions by name or short id, and a
missing group as ``"(none)"``.

Plots never compute a figure of their own (every number comes from :mod:`dfs_analytics.audit`),
never show or save a figure (``plt.show``, ``savefig`` are the caller's), and never do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from . import audit
from .audit.frames import require_columns
from .rules import is_missing

_BAR = "#3b6ea8"
_PERCENT = PercentFormatter(xmax=1.0, decimals=None)  # 7.5%, not a rounded 8%
_FLAG = "#d1495b"


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size)
    return new


_COUNTS = {
    "value": ("override rate", "share of audited tasks whose value a human changed"),
    "verdict": ("verdict override rate", "share of audited tasks whose verdict a human flipped"),
}


def _basis_of(frame: pd.DataFrame, basis: str) -> str:
    found = frame.attrs.get("basis", basis) if hasattr(frame, "attrs") else basis
    return found if found in _COUNTS else basis


def _format_key(key: str, value: Any, versions: dict[Any, str] | None = None) -> str:
    """A group value as shown: periods by their name (2026-W10, 2026-03, 2026Q1), app
    versions by name or short id, a missing value as "(none)"."""
    if is_missing(value):
        return audit.NONE_LABEL
    if isinstance(value, pd.Timestamp):
        if key == "week":
            return value.strftime("%G-W%V")
        if key == "month":
            return value.strftime("%Y-%m")
        if key == "quarter":
            return f"{value.year}Q{(value.month - 1) // 3 + 1}"
        return value.strftime("%Y-%m-%d")
    if key == "app_version_id":
        return (versions or {}).get(value) or audit.app_version_labels([value])[value]
    return str(value)


def _grid_and_legend(ax: Axes, legend: Literal["upper left", "upper right"]) -> Axes:
    """``ax`` with a light grid and a small legend at ``legend`` (a matplotlib location)."""
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    return ax


def _label(row: pd.Series, keys: Sequence[str], versions: dict[Any, str] | None = None) -> str:
    return " / ".join(_format_key(key, row[key], versions) for key in keys)


def _group_columns(frame: pd.DataFrame, first_figure: str) -> list[str]:
    """The group columns of an audit frame: those before its first figure (an audit frame
    puts its ``by`` columns first; figures such as a design effect may follow)."""
    columns = list(frame.columns)
    return columns[: columns.index(first_figure)] if first_figure in columns else []


def _whiskers(
    frame: pd.DataFrame, value: str, low: str, high: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A column of figures and the distances to their interval's ends, as ``errorbar`` takes
    them (no whisker where an end is missing)."""
    values = frame[value].to_numpy(dtype=float)
    below = np.nan_to_num(values - frame[low].to_numpy(dtype=float))
    above = np.nan_to_num(frame[high].to_numpy(dtype=float) - values)
    return values, [below, above]


def _is_time(frame: pd.DataFrame, keys: Sequence[str]) -> bool:
    return any(k in audit.TIME_KEYS or pd.api.types.is_datetime64_any_dtype(frame[k]) for k in keys)


def plot_override_rates(
    data: pd.DataFrame,
    by: str | Sequence[str] = "task_name",
    ax: Axes | None = None,
    level: float = 0.95,
    sort: bool = True,
    min_n: int = 1,
    basis: str = "value",
) -> Axes:
    """Override rate per group as dots with ``level`` interval whiskers (the intervals of
    :func:`audit.override_rates`).

    ``data``: a tasks frame, or the frame of :func:`audit.override_rates`. ``basis``:
    changed values or flipped verdicts. Groups with fewer than ``min_n`` audited tasks are
    left out; each label shows its ``n``. Groups are sorted by rate, highest at the top
    (``sort=True``; ``sort=False`` draws the rows as given, the first at the bottom), except
    periods (day, week, month, quarter), which stay in date order, earliest at the top.
    """
    rates = (
        data
        if {"rate", "ci_low", "ci_high", "n"} <= set(data.columns)
        else audit.override_rates(data, by=by, level=level, basis=basis)
    )
    basis = _basis_of(rates, basis)
    keys = _group_columns(rates, "n")
    rates = rates[rates["n"] >= min_n]
    if _is_time(rates, keys):
        rates = rates.iloc[::-1]  # the first period at the top
    elif sort:
        rates = rates.sort_values("rate", kind="stable")
    ax = _axes(ax, (7, max(2.5, 0.32 * len(rates) + 1)))
    y = np.arange(len(rates))
    rate = rates["rate"].to_numpy(dtype=float)
    low = rate - rates["ci_low"].to_numpy(dtype=float)
    high = rates["ci_high"].to_numpy(dtype=float) - rate
    ax.errorbar(rate, y, xerr=[low, high], fmt="o", color=_BAR, ecolor="#7f9cc0", capsize=3, ms=5)
    versions = audit.app_version_labels(rates["app_version_id"]) if "app_version_id" in keys else {}
    ax.set_yticks(
        y, [f"{_label(r, keys, versions)}  (n={int(r['n'])})" for _, r in rates.iterrows()]
    )
    name, meaning = _COUNTS[basis]
    # two short lines: one long line is wider than the chart and gets cut off
    ax.set_xlabel(f"{name}, {rates.attrs.get('level', level):.0%} interval\n({meaning})")
    ax.xaxis.set_major_formatter(_PERCENT)
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        "How often humans change the AI's value"
        if basis == "value"
        else "How often humans flip the AI's verdict"
    )
    return ax


def plot_confusion(
    data: pd.DataFrame,
    task_name: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    normalize: str | None = "index",
    basis: str = "verdict",
) -> Axes:
    """Heatmap of AI verdict (rows) x final verdict (columns), annotated with counts.

    ``data``: a tasks frame, or the count table of :func:`audit.confusion`. ``basis``:
    verdicts (stable labels, each with the sentence(s) it was shown with) or values. Colours
    show the share of each row (``normalize="index"``) or the counts (``normalize=None``).
    """
    if "total" in data.columns and "total" in data.index:
        table = data
    else:
        table = audit.confusion(data, task_name=task_name, basis=basis)
    sentences = table.attrs.get("sentences") or {}
    basis = table.attrs.get("basis", basis)
    counts = table.drop(index="total", columns="total")
    values = counts.to_numpy(dtype=float)
    if normalize == "index":
        sums = values.sum(axis=1, keepdims=True)
        shade = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
    else:
        shade = values / values.max() if values.size and values.max() > 0 else values
    ax = _axes(ax, (1.1 * len(counts.columns) + 3, 0.7 * len(counts.index) + 2))
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1, aspect="auto")

    def shown(label: Any) -> str:
        said = sentences.get(str(label))
        return f"{label}\n({said})" if said and said != str(label) else str(label)

    ax.set_xticks(
        range(len(counts.columns)), [shown(c) for c in counts.columns], rotation=30, ha="right"
    )
    ax.set_yticks(range(len(counts.index)), [shown(i) for i in counts.index])
    what = "value" if basis == "value" else "verdict"
    ax.set_xlabel(f"final {what} (after human review)")
    ax.set_ylabel(f"AI {what}")
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
    title = f"AI {what} vs final {what}"
    if task_name is not None:
        title += f": {task_name if isinstance(task_name, str) else ', '.join(task_name)}"
    ax.set_title(title)
    return ax


def plot_drift(
    data: pd.DataFrame,
    task_name: str | None = None,
    ax: Axes | None = None,
    freq: str = "W",
    basis: str = "value",
    **drift_kwargs: Any,
) -> Axes:
    """Override rate over time with its interval as a band; significant changes marked.

    ``data``: a tasks frame (rates per ``freq`` period of ``create_date``, for ``task_name`` or
    all tasks), or the frame of :func:`audit.drift`. ``basis``: changed values or flipped
    verdicts. Periods are plotted in date order (app versions in the order they appeared).
    """
    if {"period", "rate", "flagged"} <= set(data.columns):
        table = data
    else:
        frame = data if task_name is None else data[data["task_name"] == task_name]
        table = audit.drift(frame, by=None, freq=freq, within=None, basis=basis, **drift_kwargs)
    basis = _basis_of(table, basis)
    if task_name is not None and "task_name" in table.columns:
        table = table[table["task_name"] == task_name]
    if pd.api.types.is_datetime64_any_dtype(table["period"]):
        table = table.sort_values("period", kind="stable")
    elif "first_date" in table.columns:
        table = table.sort_values("first_date", kind="stable")
    name = _COUNTS[basis][0]
    ax = _axes(ax, (8, 3.5))
    ax.set_title(f"{name.capitalize()} over time" + (f": {task_name}" if task_name else ""))
    ax.set_ylabel(name)
    if table.empty:
        ax.plot([], [], "-o", color=_BAR, ms=3, label=name)
        ax.text(0.5, 0.5, "nothing audited yet", ha="center", va="center", transform=ax.transAxes)
        return ax
    x = table["period"]
    numeric = not pd.api.types.is_datetime64_any_dtype(x)
    xs = np.arange(len(table)) if numeric else x
    ax.fill_between(xs, table["ci_low"], table["ci_high"], color=_BAR, alpha=0.2, label="interval")
    ax.plot(xs, table["rate"], "-o", color=_BAR, ms=3, label=name)
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
        versions = table.attrs.get("by") == "app_version_id"
        shown = audit.app_version_labels(x) if versions else {}
        ax.set_xticks(xs, [shown.get(v, str(v)[:12]) for v in x], rotation=20, ha="right")
    else:
        ax.tick_params(axis="x", labelrotation=30)
    ax.yaxis.set_major_formatter(_PERCENT)
    ax.set_ylim(bottom=0)
    return _grid_and_legend(ax, "upper left")


def plot_engineers(
    data: pd.DataFrame,
    ax: Axes | None = None,
    level: float = 0.95,
    min_n: int = 20,
    basis: str = "value",
) -> Axes:
    """Override rate per field engineer, with intervals and the overall rate as a line
    (:func:`plot_funnel` tells who is really out of line)."""
    if {"rate", "n", "n_overridden"} <= set(data.columns):
        rates = data
        total = rates["n"].sum()
        overall = rates["n_overridden"].sum() / total if total else np.nan
    else:
        rates = audit.override_rates(data, by="field_engineer_email", level=level, basis=basis)
        overall = audit.summary(data, level=level, basis=basis)["override_rate"]
    ax = plot_override_rates(rates, ax=ax, min_n=min_n, basis=basis)
    if not np.isnan(overall):
        ax.axvline(overall, color="#888888", ls="--", lw=1, label=f"all engineers ({overall:.1%})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{_COUNTS[_basis_of(rates, basis)][0].capitalize()} per field engineer")
    return ax


def plot_funnel(
    data: pd.DataFrame,
    by: str = "field_engineer_email",
    ax: Axes | None = None,
    basis: str = "value",
    label_outliers: bool = True,
) -> Axes:
    """Funnel plot: each group's rate against its number of audited tasks, with the overall
    rate and its 95% and 99.8% control limits; groups outside the 99.8% limits are outliers
    (red, labelled).

    ``data``: a tasks frame, or the frame of :func:`audit.funnel`. ``basis``: changed values
    or flipped verdicts. Returns the Axes.
    """
    table = data if {"expected", "outlier", "shrunk"} <= set(data.columns) else None
    if table is None:
        table = audit.funnel(data, by=by, basis=basis)
    basis = _basis_of(table, basis)
    keys = [c for c in table.columns if c == by] or [table.columns[0]]
    limits = table.attrs.get("limits", (0.95, 0.998))
    overall = float(table.attrs.get("overall", table["expected"].iloc[0] if len(table) else np.nan))
    shown = table[table["n"] > 0]
    ax = _axes(ax, (8, 5))
    name, meaning = _COUNTS[basis]
    ax.set_title(f"Who is out of line? {name} per {by.replace('_', ' ')} (funnel plot)")
    ax.set_xlabel("audited tasks (n)")
    ax.set_ylabel(f"{name} ({meaning})", fontsize=8)
    if shown.empty or np.isnan(overall):
        ax.text(0.5, 0.5, "nothing audited yet", ha="center", va="center", transform=ax.transAxes)
        return ax
    top = int(shown["n"].max())
    first = max(1, int(shown["n"].min() * 0.5))
    grid = np.unique(np.linspace(first, max(top * 1.1, first + 10), 200).astype(int))
    styles = {min(limits): ("#7f9cc0", "--"), max(limits): ("#555555", "-")}
    for level in sorted(limits):
        low, high = audit.funnel_limits(grid, overall, level)
        colour, dash = styles.get(level, ("#888888", ":"))
        ax.step(grid, high, where="post", color=colour, ls=dash, lw=1, label=f"{level:.1%} limits")
        ax.step(grid, low, where="post", color=colour, ls=dash, lw=1)
    ax.axhline(overall, color="#888888", lw=1, label=f"overall ({overall:.1%})")
    outlier = shown["outlier"].to_numpy(dtype=bool)
    ax.scatter(shown["n"][~outlier], shown["rate"][~outlier], color=_BAR, s=25, zorder=3)
    ax.scatter(
        shown["n"][outlier], shown["rate"][outlier], color=_FLAG, s=40, zorder=4, label="outlier"
    )
    if label_outliers:
        for _, row in shown[outlier].iterrows():
            ax.annotate(
                _label(row, keys),
                (row["n"], row["rate"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    ax.yaxis.set_major_formatter(_PERCENT)
    # the limits of the smallest group and every point in view, not the limits at n = 1
    _, widest = audit.funnel_limits([shown["n"].min()], overall, max(limits))
    ceiling = max(float(shown["rate"].max()), float(widest[0]), overall)
    ax.set_ylim(0, min(1.0, ceiling * 1.15 + 0.005))
    ax.set_xlim(left=0)
    return _grid_and_legend(ax, "upper right")


def plot_heatmap(
    data: pd.DataFrame,
    rows: str = "field_engineer_email",
    cols: str = "month",
    ax: Axes | None = None,
    basis: str = "value",
    level: float = 0.95,
    min_n: int = 1,
) -> Axes:
    """Override rate of ``rows`` x ``cols`` (e.g. engineer x month) as a heatmap; each cell
    shows the rate and its n, cells with fewer than ``min_n`` audited tasks stay blank.

    ``data``: a tasks frame, or the frame of :func:`audit.override_rates` by ``[rows, cols]``.
    ``basis``: changed values or flipped verdicts. Periods run left to right in date order.
    Returns the Axes.
    """
    if {"rate", "n"} <= set(data.columns) and {rows, cols} <= set(data.columns):
        rates = data
    else:
        rates = audit.override_rates(data, by=[rows, cols], level=level, basis=basis)
    basis = _basis_of(rates, basis)
    rates = audit.show_missing(rates, [rows, cols])
    row_keys = list(dict.fromkeys(rates[rows].tolist()))
    col_keys = list(dict.fromkeys(sorted(rates[cols].tolist(), key=_sort_key)))
    rate = np.full((len(row_keys), len(col_keys)), np.nan)
    count = np.zeros((len(row_keys), len(col_keys)), dtype=int)
    r_index = {k: i for i, k in enumerate(row_keys)}
    c_index = {k: j for j, k in enumerate(col_keys)}
    for key_r, key_c, n, value in zip(
        rates[rows], rates[cols], rates["n"], rates["rate"], strict=True
    ):
        i, j = r_index[key_r], c_index[key_c]
        count[i, j] = int(n)
        if n >= min_n and n > 0:
            rate[i, j] = value
    ax = _axes(ax, (1.0 * len(col_keys) + 3.5, 0.45 * len(row_keys) + 1.8))
    finite = rate[np.isfinite(rate)]
    top = max(float(finite.max()) if finite.size else 0.0, 1e-9)
    ax.imshow(np.ma.masked_invalid(rate), cmap="Reds", vmin=0, vmax=top, aspect="auto")
    ax.set_facecolor("#eeeeee")
    versions_r = audit.app_version_labels(row_keys) if rows == "app_version_id" else None
    versions_c = audit.app_version_labels(col_keys) if cols == "app_version_id" else None
    ax.set_xticks(
        range(len(col_keys)),
        [_format_key(cols, k, versions_c) for k in col_keys],
        rotation=30,
        ha="right",
    )
    ax.set_yticks(range(len(row_keys)), [_format_key(rows, k, versions_r) for k in row_keys])
    for i in range(len(row_keys)):
        for j in range(len(col_keys)):
            if np.isfinite(rate[i, j]):
                ax.text(
                    j,
                    i,
                    f"{rate[i, j]:.0%}\nn={count[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rate[i, j] > 0.6 * top else "black",
                )
    name = _COUNTS[basis][0]
    ax.set_title(f"{name.capitalize()} by {rows.replace('_', ' ')} and {cols.replace('_', ' ')}")
    ax.set_xlabel(cols.replace("_", " "))
    ax.set_ylabel(rows.replace("_", " "))
    return ax


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, pd.Timestamp):
        return (0, value.value)
    if value == audit.NONE_LABEL:
        return (2, "")
    return (1, str(value))


def plot_verdict_quality(
    data: pd.DataFrame,
    by: str = "task_name",
    ax: Axes | None = None,
    level: float = 0.95,
    sort: bool = True,
) -> Axes:
    """Precision and recall of the AI's "not conform" verdict per group, as two dots with
    their interval whiskers (work orders as clusters) on each row.

    ``data``: a tasks frame, or the frame of :func:`audit.verdict_quality`. Rows are sorted by
    F1, best at the top (``sort=True``; ``sort=False`` draws them as given, the first at the
    bottom); each label shows the number of counted tasks. Returns the Axes.
    """
    table = (
        data
        if {"precision", "recall", "f1", "n_tasks"} <= set(data.columns)
        else audit.verdict_quality(data, by=by, level=level)
    )
    keys = _group_columns(table, "n_tasks")
    if sort:
        table = table.sort_values("f1", kind="stable", na_position="first")
    ax = _axes(ax, (7, max(2.5, 0.42 * len(table) + 1)))
    y = np.arange(len(table))
    for name, shift, colour in (("precision", 0.15, _BAR), ("recall", -0.15, "#e07b39")):
        value, whiskers = _whiskers(table, name, f"{name}_low", f"{name}_high")
        ax.errorbar(
            value,
            y + shift,
            xerr=whiskers,
            fmt="o",
            color=colour,
            ecolor=colour,
            alpha=0.85,
            capsize=3,
            ms=5,
            label=name,
        )
    ax.set_yticks(y, [f"{_label(r, keys)}  (n={int(r['n_tasks'])})" for _, r in table.iterrows()])
    shown = table.attrs.get("level", level)
    ax.set_xlabel(
        f'precision and recall of "not conform", {shown:.0%} interval\n'
        "(reviewed work orders; work orders as clusters)"
    )
    ax.xaxis.set_major_formatter(_PERCENT)
    ax.set_xlim(0, 1.02)
    ax.set_title("How good is the AI at finding what is not conform?")
    ax.grid(axis="x", alpha=0.3)
    # beside the chart, never over a dot
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax


_METHOD_COLOURS = {
    "reviewed only": "#888888",
    "poststratified": _BAR,
    "design": "#2a9d8f",
    "ppi": "#e07b39",
}


def plot_site_estimates(data: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Site-wide estimates next to their reviewed-only counterparts: one dot with its
    interval whiskers per row, coloured by method, grouped by figure (first figure at the
    top).

    ``data``: one row per estimate with ``figure`` (its name), ``method`` (``"reviewed
    only"``, or the ``method`` of :func:`audit.site_estimate`), ``estimate``, ``ci_low`` and
    ``ci_high``, such as the rows of :func:`audit.site_estimate` given a ``figure`` column.
    Returns the Axes. Raises :class:`~dfs_analytics.AuditInputError` when ``data`` is not
    such a frame.
    """
    require_columns(
        data,
        ["figure", "method", "estimate", "ci_low", "ci_high"],
        "plot_site_estimates",
        kind="a DataFrame of estimates",
        hint="pass rows of dfs.audit.site_estimate with a 'figure' column added, e.g. "
        "est.assign(figure='override rate')",
    )
    rows = data.iloc[::-1].reset_index(drop=True)  # the first row at the top
    ax = _axes(ax, (7, max(2.5, 0.4 * len(rows) + 1.2)))
    y = np.arange(len(rows))
    for method in dict.fromkeys(data["method"]):  # the legend in the order of the rows
        part = rows[rows["method"] == method]
        value, whiskers = _whiskers(part, "estimate", "ci_low", "ci_high")
        colour = _METHOD_COLOURS.get(str(method), "#555555")
        ax.errorbar(
            value,
            y[part.index],
            xerr=whiskers,
            fmt="o",
            color=colour,
            ecolor=colour,
            capsize=3,
            ms=5,
            label=str(method),
        )
    ax.set_yticks(y, [f"{r.figure}: {r.method}" for r in rows.itertuples(index=False)])
    ax.set_xlabel("estimate with its interval (work orders as clusters)")
    ax.xaxis.set_major_formatter(_PERCENT)
    ax.set_xlim(left=0)
    ax.set_title("Reviewed work orders only vs the whole site")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax
