"""A self-contained HTML audit report: tables and PNG plots inlined, opens offline.

:func:`audit_report` turns a tasks frame into one HTML file of figures computed by
:mod:`~dfs_analytics.audit` and drawn by :mod:`~dfs_analytics.plots`; tables and escaping go
through :mod:`~dfs_analytics._html`. It never sends a request, never reads the dataset (the
frame it is given is all it shows) and never writes anything but the one file it is asked for;
the page never refers to an outside resource (no URL, script or stylesheet link).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import _html, audit, plots
from ._version import __version__
from .config import mask_url
from .connect import SIMULATOR_NOTE
from .rules import is_missing

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#666}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{background:#f4f7fb;border-radius:8px;padding:.8rem 1.1rem;min-width:10rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}
th{background:#f4f7fb}td:first-child,th:first-child{text-align:left}
tr.flag td{background:#fde8ea}img{max-width:100%;height:auto;margin:.5rem 0}
.note{color:#555;font-size:.9rem}
"""


def _png(draw: Callable[[Axes], Any], size: tuple[float, float]) -> str:
    fig = Figure(figsize=size, dpi=110)
    ax = fig.subplots()
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(
    frame: pd.DataFrame, percent: tuple[str, ...] = (), flag: str | None = None, digits: int = 3
) -> str:
    """``frame`` as an HTML table: ``percent`` columns as percentages, other floats to
    ``digits`` significant digits, dates as days; rows whose ``flag`` column is true
    highlighted (class ``flag``)."""
    shown = frame.copy()
    for col in shown.columns:
        if col in percent:
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
        elif pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
        elif pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d")
    flags = frame[flag].tolist() if flag and flag in frame else [False] * len(frame)
    classes = ["flag" if not is_missing(f) and f else None for f in flags]
    return _html.table(shown, row_classes=classes)


_TITLES = {"value": "Values changed", "verdict": "Verdicts flipped"}
_MEANING = {
    "value": "Share of audited tasks whose value a human changed (a corrected value different "
    "from the AI's), whether or not the verdict changed with it.",
    "verdict": "Share of audited tasks whose verdict a human flipped (the corrected value "
    "matches another rule than the AI's); tasks without verdict rules are left out.",
}


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def _masked(location: Any) -> Any:
    """A dataset location or URL as it may be shown: any password in it masked."""
    return None if location is None else mask_url(str(location))


def _data_line(source: dict[str, Any] | None) -> str:
    """The report's "Data" line: what to reopen to recompute every figure (HTML)."""
    if source is None:
        return (
            '<p class="meta">Data: this frame has no recorded provenance (no dataset, version '
            "or filters), so these figures cannot be traced back to a dataset version.</p>"
        )

    def show(value: Any) -> str:
        return _html.escape("unknown" if value is None else str(value))

    filters = source.get("filters") or {}
    if isinstance(filters, dict):
        shown = ", ".join(f"{k}={v}" for k, v in filters.items() if v is not None)
    else:
        shown = str(filters)
    line = (
        f"Data: dataset <code>{show(_masked(source.get('dataset')))}</code>, table "
        f"{show(source.get('table') or 'tasks')}, version {show(source.get('version'))}; "
        f"filters: {_html.escape(shown) if shown else 'none'}"
    )
    if source.get("as_of") is not None:
        line += f"; as of {show(source['as_of'])}"
    return f'<p class="meta">{line}.</p>'


def audit_report(
    tasks: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "Audit of AI verdicts",
    level: float = 0.95,
    alpha: float = 0.05,
    confusion_tasks: int = 3,
    source: str | None = None,
    simulator: bool = False,
) -> Path:
    """Write a self-contained HTML audit report of a tasks frame to ``path``; returns the path.

    Sections: headline figures (values changed and verdicts flipped), both rates per task
    (plots and tables) and per task group, field engineers (funnel plots with shrunken
    rankings and outlier flags, engineer x month heatmap), drift across app versions and over
    weeks (significant changes flagged, Holm-adjusted), AI vs final verdict (stable labels)
    for the ``confusion_tasks`` most overridden tasks, Cohen's kappa, and the definitions
    used. Titles say what each figure counts. Plots are PNG images inlined in the file. Near
    the top, a "Data" line states the dataset path, version and filters (and ``as_of``) the
    frame was loaded with (``tasks.attrs["dfs_provenance"]``), so the figures can be
    recomputed, or says that the frame has no recorded provenance. ``simulator=True`` (data
    from the local simulator, e.g. ``simulator=dfs_analytics.connect.is_simulator(client)``)
    adds "(simulator data)" to the title and heading, and says near the top that the figures
    are made up.
    """
    path = Path(path)
    if simulator:
        title = f"{title} {SIMULATOR_NOTE}"
    head = audit.summary(tasks, level=level)  # reads the provenance before any transformation
    verdicts = "is_verdict_overridden" in tasks.columns
    head_v = audit.summary(tasks, level=level, basis="verdict") if verdicts else None
    bases = ("value", "verdict") if verdicts else ("value",)
    rates = audit.override_rates(tasks, level=level)
    pct = ("rate", "ci_low", "ci_high")
    parts = [
        f"<h1>{_html.escape(title)}</h1>",
        f'<p class="meta">Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by '
        f"dfs-analytics {__version__}"
        + (f" from {_html.escape(mask_url(source))}" if source else "")
        + "</p>",
        _data_line(head["provenance"]),
        *(
            [
                '<p class="meta"><b>Made-up data:</b> these figures come from the local '
                "simulator of the Field Services API, not from a real site.</p>"
            ]
            if simulator
            else []
        ),
        '<div class="cards">',
        f'<div class="card">work orders<b>{head["work_orders"]:,}</b></div>',
        f'<div class="card">reviewed<b>{head["reviewed_work_orders"]:,}</b></div>',
        f'<div class="card">audited tasks<b>{head["audited_tasks"]:,}</b></div>',
        f'<div class="card">values changed<b>{_pct(head["override_rate"])}</b>'
        f"{level:.0%} CI {_pct(head['ci_low'])} - {_pct(head['ci_high'])}</div>",
        *(
            [
                f'<div class="card">verdicts flipped<b>{_pct(head_v["override_rate"])}</b>'
                f"{level:.0%} CI {_pct(head_v['ci_low'])} - {_pct(head_v['ci_high'])}"
                f"<br>of {head_v['audited_tasks']:,} tasks with a verdict</div>"
            ]
            if head_v is not None
            else []
        ),
        "</div>",
    ]
    for basis in bases:
        per_task = audit.override_rates(tasks, level=level, basis=basis)
        parts += [
            f"<h2>{_TITLES[basis]} per task</h2>",
            f'<p class="note">{_MEANING[basis]}</p>',
            _png(
                lambda ax, r=per_task: plots.plot_override_rates(r, ax=ax),
                (8, 0.32 * len(per_task) + 1.6),
            ),
            _table(per_task, pct),
        ]
    for basis in bases:
        parts += [
            f"<h2>{_TITLES[basis]} per task group</h2>",
            _table(
                audit.override_rates(tasks, by="task_group_name", level=level, basis=basis), pct
            ),
        ]
    if "field_engineer_email" in tasks and tasks["field_engineer_email"].notna().any():
        parts += [
            "<h2>Field engineers: who is really out of line?</h2>",
            '<p class="note">Funnel plots: each engineer\'s rate against the number of their '
            "audited tasks, with the site's rate and its 95% and 99.8% control limits (exact "
            "binomial). Engineers outside the 99.8% limits are flagged. <i>shrunk</i> is the "
            "empirical-Bayes estimate (beta-binomial): engineers with few tasks are pulled "
            "towards the site's rate, so they do not top or bottom a ranking by chance; the "
            "table is ranked by it.</p>",
        ]
        for basis in bases:
            table = audit.funnel(tasks, by="field_engineer_email", basis=basis, level=level)
            parts += [
                f"<h3>{_TITLES[basis]} per field engineer</h3>",
                _png(lambda ax, t=table: plots.plot_funnel(t, ax=ax), (8, 5)),
                _table(
                    table.drop(columns=["expected"]),
                    (
                        "rate",
                        "shrunk",
                        "shrunk_low",
                        "shrunk_high",
                        *[c for c in table.columns if c.startswith(("low_", "high_"))],
                    ),
                    flag="outlier",
                ),
            ]
        months = audit.override_rates(tasks, by=["field_engineer_email", "month"], level=level)
        n_rows = months["field_engineer_email"].nunique()
        parts += [
            "<h3>Values changed per field engineer and month</h3>",
            _png(
                lambda ax: plots.plot_heatmap(months, ax=ax),
                (max(6.0, 0.9 * months["month"].nunique() + 3.5), 0.45 * n_rows + 1.8),
            ),
        ]
    if "app_version_id" in tasks and tasks["app_version_id"].nunique() > 1:
        names = audit.app_version_labels(tasks["app_version_id"].dropna().unique(), tasks)
        parts += ["<h2>Drift across app versions</h2>"]
        for basis in bases:
            versions = audit.drift(
                tasks, by="app_version_id", level=level, alpha=alpha, basis=basis
            )
            flagged = int(versions["flagged"].sum())
            shown = versions.drop(columns=["change"]).assign(
                period=versions["period"].map(lambda v: names.get(v, v))
            )
            parts += [
                f"<h3>{_TITLES[basis]}</h3>",
                f'<p class="note">{flagged} significant change(s) between consecutive app '
                "versions (Fisher's exact test, Holm-adjusted over the whole table, alpha "
                f"{alpha}); flagged rows are highlighted.</p>",
                _table(shown, pct, flag="flagged"),
            ]
    parts.append("<h2>Per week (all tasks)</h2>")
    for basis in bases:
        weekly = audit.drift(
            tasks, by=None, freq="W", within=None, level=level, alpha=alpha, basis=basis
        )
        parts += [
            f"<h3>{_TITLES[basis]} per week</h3>",
            _png(lambda ax, w=weekly: plots.plot_drift(w, ax=ax), (9, 3.4)),
        ]
    top = rates[rates["n"] > 0].sort_values("rate", ascending=False).head(confusion_tasks)
    if len(top):
        parts.append("<h2>AI verdict vs final verdict</h2>")
        parts.append(
            '<p class="note">Rows: the AI\'s verdict; columns: the verdict after review. '
            "Verdicts are labelled by rule (conform / not conform), which stays the same when "
            "an app upgrade rewords a sentence; the sentences shown for each label are in "
            'brackets. "no rule" is a value no verdict rule matches; "not analysed" a task '
            "the AI never analysed.</p>"
            if verdicts
            else '<p class="note">Rows: the AI\'s verdict; columns: the verdict after '
            'review. "other" is a value no verdict rule matches; "not analysed" a task the '
            "AI never analysed.</p>"
        )
        labels = "verdict" if verdicts else "sentence"
        for name in top["task_name"].astype(str):
            table = audit.confusion(tasks, task_name=name, labels=labels)
            parts += [
                f"<h3>{_html.escape(name)}</h3>",
                _png(
                    lambda ax, t=table, n=name: plots.plot_confusion(t, task_name=n, ax=ax),
                    (1.4 * len(table.columns) + 3, 0.7 * len(table.index) + 2),
                ),
            ]
    parts += [
        "<h2>Agreement (Cohen's kappa)</h2>",
        _table(audit.agreement(tasks), ("observed", "expected")),
        "<h2>Definitions</h2>",
        '<p class="note">A task counts for the audit when the AI analysed it on a work order '
        "that was reviewed in the back office. Its <i>value is changed</i> when a human set a "
        "corrected value different from the AI's; a correction to the same value is "
        "agreement. Its <i>verdict is flipped</i> when the corrected value matches another "
        "verdict rule than the AI's value (rules compared by identity within the app version; "
        "a value matching no rule is a verdict of its own); a corrected serial number that "
        "is still readable changes the value, not the verdict. Tasks without rules have no "
        f"verdict and count only for values. Intervals are {level:.0%} Wilson score "
        "intervals. Tasks are keyed by name, which stays the same across app versions. A "
        'missing group (no field engineer) is shown as "(none)".</p>',
    ]
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
