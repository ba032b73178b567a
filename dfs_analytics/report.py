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
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from . import _html, audit, plots
from ._version import __version__
from .audit.site import pin_version
from .config import SIMULATOR_NOTE, mask_url
from .errors import ConfigurationError
from .rules import is_missing

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#666}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{background:#f4f7fb;border-radius:8px;padding:.8rem 1.1rem;min-width:10rem}
.card b{display:block;font-size:1.5rem}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}
th{background:#f4f7fb}td:first-child,th:first-child{text-align:left}
td{overflow-wrap:anywhere}table.text td:last-child{text-align:left;min-width:16rem}
tr.flag td{background:#fde8ea}img{max-width:100%;height:auto;margin:.5rem 0}
.note{color:#555;font-size:.9rem}
.conclusion{background:#f4f7fb;border-left:4px solid #3b6ea8;padding:.6rem 1rem;margin:1rem 0}
.warning{background:#fff4e5;border-left:4px solid #d98e04;padding:.5rem 1rem}
"""


def _png(draw: Callable[..., Any], size: tuple[float, float]) -> str:
    """The ``<img>`` of a figure of ``size`` inches that ``draw(ax=...)`` plots on."""
    fig = Figure(figsize=size, dpi=110)
    ax = fig.subplots()
    draw(ax=ax)
    fig.tight_layout()
    # the layout is done: without an engine, savefig draws the figure once, not twice
    fig.set_layout_engine(None)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(
    frame: pd.DataFrame,
    percent: tuple[str, ...] = (),
    flag: str | None = None,
    digits: int = 3,
    css_class: str | None = None,
    highlight: Any = None,
) -> str:
    """``frame`` as an HTML table in a box that scrolls sideways rather than overflow the
    page: ``percent`` columns as percentages, other floats to ``digits`` significant digits,
    dates as days; rows whose ``flag`` column is true (or, given ``highlight``, a flag per
    row) highlighted (class ``flag``)."""
    shown = frame.copy()
    for col in shown.columns:
        if col in percent:
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
        elif pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
        elif pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d")
    flags = frame[flag].tolist() if flag and flag in frame else [False] * len(frame)
    if highlight is not None:
        flags = list(highlight)
    classes = ["flag" if not is_missing(f) and f else None for f in flags]
    return (
        f'<div class="scroll">{_html.table(shown, css_class=css_class, row_classes=classes)}</div>'
    )


_TITLES = {"value": "Values changed", "verdict": "Verdicts flipped"}
_MEANING = {
    "value": "Share of audited tasks whose value a human changed (a corrected value different "
    "from the AI's), whether or not the verdict changed with it.",
    "verdict": "Share of audited tasks whose verdict a human flipped (the corrected value "
    "matches another rule than the AI's); tasks without verdict rules are left out.",
}
_QUALITY = ("conformity_status", "is_conform", "ai_is_conform")


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def _span(low: Any, high: Any) -> str:
    """An interval as text: ``5.1% – 6.3%``."""
    return f"{_pct(low)} – {_pct(high)}"


def _with_interval(value: Any, low: Any, high: Any) -> str:
    """A figure with its interval as text: ``70.7% (66.5% – 74.6%)``; empty without data."""
    return "" if pd.isna(value) else f"{_pct(value)} ({_span(low, high)})"


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _masked(location: Any) -> Any:
    """A dataset location or URL as it may be shown: any password in it masked."""
    return None if location is None else mask_url(str(location))


def _gone(location: Any) -> bool:
    """Whether ``location`` is a local folder that no longer exists (an object-store URI is
    never checked)."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        return False
    try:
        return not Path(text.removeprefix("file://")).exists()
    except (OSError, ValueError):
        return False


def _data_line(source: dict[str, Any] | None, dataset_note: str | None = None) -> str:
    """The report's "Data" line: what to reopen to recompute every figure (HTML).
    ``dataset_note`` replaces the dataset's location (e.g. a temporary dataset)."""
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
    location = source.get("dataset")
    if dataset_note is not None:
        dataset = _html.escape(dataset_note)
    elif location is not None and _gone(location):
        dataset = "a local dataset that no longer exists (deleted since the frame was loaded)"
    else:
        dataset = f"dataset <code>{show(_masked(location))}</code>"
    line = (
        f"Data: {dataset}, table "
        f"{show(source.get('table') or 'tasks')}, version {show(source.get('version'))}; "
        f"filters: {_html.escape(shown) if shown else 'none'}"
    )
    if source.get("as_of") is not None:
        line += f"; as of {show(source['as_of'])}"
    return f'<p class="meta">{line}.</p>'


def _version_labels(tasks: pd.DataFrame) -> dict[Any, str]:
    """Readable app-version labels: the version's name where the frame has one, else its
    number in the order the versions first appear, the date of its first work order and the
    start of its id (``v2 from 2026-03-02 (b4be04ef)``)."""
    if "app_version_id" not in tasks.columns:
        return {}
    ids = list(tasks["app_version_id"].dropna().unique())
    names = audit.app_version_labels(ids, tasks)
    first: dict[str, Any] = {}
    if "create_date" in tasks.columns:
        known = tasks[tasks["app_version_id"].notna()]
        dates = pd.to_datetime(known["create_date"], utc=True, errors="coerce")
        first = dates.groupby(known["app_version_id"].astype(str).to_numpy()).min().to_dict()

    def when(version: Any) -> tuple[int, Any, str]:
        date = first.get(str(version))
        return (1, 0, str(version)) if date is None or pd.isna(date) else (0, date, str(version))

    out: dict[Any, str] = {}
    for number, version in enumerate(sorted(ids, key=when), 1):
        short = str(version)[:8]
        if names.get(version, short) != short:  # the frame names it
            out[version] = names[version]
            continue
        date = first.get(str(version))
        since = "" if date is None or pd.isna(date) else f" from {date:%Y-%m-%d}"
        out[version] = f"v{number}{since} ({short})"
    return out


def _by_rate(frame: pd.DataFrame, column: str = "rate") -> pd.DataFrame:
    """Rows by ``column``, highest first, rows without a value last: the order in which the
    report's charts show them, top to bottom."""
    known = frame[frame[column].notna()]
    # ties keep the chart's order: it sorts ascending (stably) and draws from the bottom up
    ordered = known.sort_values(column, kind="stable").iloc[::-1]
    return pd.concat([ordered, frame[frame[column].isna()]])


def _rates_block(per_task: pd.DataFrame, title: str, meaning: str) -> list[str]:
    """A per-task section: the chart and the table, in the same order (highest rate first)."""
    ordered = _by_rate(per_task)
    charted = ordered[ordered["n"] > 0].iloc[::-1]  # the chart draws its first row at the bottom
    return [
        f"<h2>{title}</h2>",
        f'<p class="note">{meaning} Sorted by rate, highest first, in the chart and the table.</p>',
        _png(
            lambda ax: plots.plot_override_rates(charted, ax=ax, sort=False),
            (8, 0.32 * len(charted) + 1.9),
        ),
        _table(ordered, ("rate", "ci_low", "ci_high")),
    ]


def _engineer_table(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """The funnel frame of field engineers, narrow enough for the page: intervals and
    limits as one column each."""
    widest = max(
        (c for c in table.columns if c.startswith("high_")),
        key=lambda c: float(c.removeprefix("high_") or 0),
        default=None,
    )
    limits = {}
    if widest is not None:
        low = "low_" + widest.removeprefix("high_")
        share = table.attrs.get("limits", (0.95, 0.998))
        limits = {
            f"{max(share):.1%} limits": [
                _span(lo, hi) for lo, hi in zip(table[low], table[widest], strict=True)
            ]
        }
    return pd.DataFrame(
        {
            "field engineer": table.iloc[:, 0].to_numpy(),
            "audited": table["n"].to_numpy(),
            "overridden": table["n_overridden"].to_numpy(),
            "rate": table["rate"].to_numpy(),
            "shrunk": table["shrunk"].to_numpy(),
            f"shrunk, {level:.0%} interval": [
                _span(lo, hi)
                for lo, hi in zip(table["shrunk_low"], table["shrunk_high"], strict=True)
            ],
            **limits,
            "outlier": [
                (side or "yes") if flagged else ""
                for flagged, side in zip(
                    table["outlier"], table.get("side", table["outlier"]), strict=True
                )
            ],
        }
    )


# --------------------------------------------------------------------------------------------
# the whole site
# --------------------------------------------------------------------------------------------


def _site_figures(
    tasks: pd.DataFrame, head: dict[str, Any], quality: pd.DataFrame | None, plan: Any, level: float
) -> tuple[pd.DataFrame, list[str]]:
    """The site-wide figures next to their reviewed-only counterparts: one row per figure
    (``figure``, ``estimate``, ``ci_low``, ``ci_high``, ``method``, ``work orders used``,
    ``work orders covered``, ``what it covers and assumes``), and the reasons for any figure
    that could not be computed."""
    reviewed = head["reviewed_work_orders"]
    never = head["work_orders"] - reviewed
    rows: list[dict[str, Any]] = []
    problems: list[str] = []

    def reviewed_only(name: str, value: Any, low: Any, high: Any) -> None:
        rows.append(
            {
                "figure": name,
                "estimate": value,
                "ci_low": low,
                "ci_high": high,
                "method": "reviewed only",
                "work orders used": reviewed,
                "work orders covered": reviewed,
                "what it covers and assumes": f"The {reviewed:,} reviewed work orders only. "
                "No assumption: it counts what reviewers did, but says nothing about the "
                f"{never:,} work orders nobody reviewed.",
            }
        )

    def site(name: str, **options: Any) -> None:
        try:
            found = audit.site_estimate(tasks, level=level, **options)
        except (audit.AuditInputError, ConfigurationError) as exc:
            problems.append(f"{name} ({options.get('method', 'poststratified')}): {exc}")
            return
        for row in found.to_dict("records"):
            pending = (
                f" {row['not_yet_reviewed']:,} sampled work order(s) are not reviewed yet."
                if row.get("not_yet_reviewed")
                else ""
            )
            rows.append(
                {
                    "figure": name,
                    "estimate": row["estimate"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "method": row["method"],
                    "work orders used": row["n_work_orders"],
                    "work orders covered": row["population_work_orders"],
                    "what it covers and assumes": f"The whole site: "
                    f"{row['population_work_orders']:,} work orders. {row['assumption']}" + pending,
                }
            )

    override = "Values changed (override rate)"
    reviewed_only(override, head["override_rate"], head["ci_low"], head["ci_high"])
    site(override, quantity="override_rate", method="poststratified")
    if plan is not None:
        site(override, plan=plan, quantity="override_rate", method="design")
    if quality is not None:
        nonconform = "Not conform after review (non-conformity rate)"
        row = quality.iloc[0]
        reviewed_only(nonconform, row["prevalence"], row["prevalence_low"], row["prevalence_high"])
        site(nonconform, quantity="nonconformity_rate", method="poststratified")
        if plan is not None:
            site(nonconform, plan=plan, quantity="nonconformity_rate", method="design")
            site(nonconform, plan=plan, quantity="nonconformity_rate", method="ppi")
    return pd.DataFrame(rows), problems


def _bias_table(bias: pd.DataFrame, versions: dict[Any, str]) -> pd.DataFrame:
    """The review-bias frame as shown: app versions by label, shares as percentages, the
    columns that matter."""

    def label(value: Any) -> str:
        if isinstance(value, str):
            for version, name in versions.items():
                value = value.replace(str(version), name)
            return value
        return "" if value is None or pd.isna(value) else f"{value:.3g}"

    rows = []
    for row in bias.to_dict("records"):
        share = "share" in str(row["feature"])
        shown = {
            k: _pct(row[k]) if share and not isinstance(row[k], str) else label(row[k])
            for k in ("reviewed", "unreviewed", "difference")
        }
        rows.append(
            {
                "feature": str(row["feature"]).replace("_", " "),
                "test": "means" if row["kind"] == "mean" else "distributions",
                **shown,
                "p-value": label(row["p_value"]),
                "Holm-adjusted": label(row["p_adjusted"]),
                "flagged": "yes" if row["flagged"] else "",
            }
        )
    return pd.DataFrame(rows)


def _whole_site(
    tasks: pd.DataFrame,
    head: dict[str, Any],
    figures: pd.DataFrame,
    problems: list[str],
    bias: pd.DataFrame | None,
    versions: dict[Any, str],
    level: float,
) -> list[str]:
    """The "The whole site" section (HTML parts)."""
    total, reviewed = head["work_orders"], head["reviewed_work_orders"]
    share = head["reviewed_share"]
    parts = [
        "<h2>The whole site</h2>",
        f"<p>{reviewed:,} of {total:,} work orders ({_pct(share)}) were reviewed; "
        f"{total - reviewed:,} ({_pct(1 - share)}) never were. Every other section of this "
        "report describes the reviewed work orders only. This one estimates what a review of "
        "every work order would find, and checks whether the reviewed work orders look like "
        "the rest.</p>",
        "<h3>Are the reviewed work orders like the rest?</h3>",
    ]
    if bias is None:
        parts.append('<p class="note">Review bias cannot be checked on this frame.</p>')
    else:
        flagged = bias.loc[bias["flagged"], "feature"].astype(str).tolist()
        if flagged:
            parts.append(
                '<p class="warning"><b>The review queue does not look random.</b> Reviewed '
                f"work orders differ from the others in {_html.escape(_and(flagged))} "
                "(Holm-adjusted p below 1%). Figures over the reviewed work orders may be "
                "far from the site's: read the site-wide estimates below, and for a figure "
                "that needs no assumption, have a random plan of work orders reviewed "
                "(<code>dfs.audit.review_sample</code>).</p>"
            )
        parts += [
            '<p class="note">Reviewed against unreviewed work orders, on what is known for '
            "all of them: the AI's non-conformity share and the number of analysed tasks "
            "(means, Welch's t-test), app version, field engineer, month and task mix (the "
            "category whose share differs most, chi-square test). <i>difference</i>: of the "
            "means, or the total variation distance of the distributions. Flagged rows "
            "(highlighted) have a Holm-adjusted p-value below 1%.</p>",
            _table(_bias_table(bias, versions), highlight=bias["flagged"].tolist()),
        ]
    parts += [
        "<h3>Site-wide estimates</h3>",
        '<p class="note">Each figure next to the same figure over the reviewed work orders '
        f"only, with its {level:.0%} interval (work orders as clusters). "
        "<i>poststratified</i> reweights the reviews the site already has within strata "
        "known for every work order; <i>design</i> and <i>ppi</i> come from a review plan "
        "(<code>dfs.audit.review_sample</code>) drawn at random, the latter corrected by the "
        "AI's verdicts on every work order. The last column says what each figure covers "
        "and what it assumes.</p>",
    ]
    if len(figures):
        shown = figures.assign(figure=figures["figure"].str.split(" (", regex=False).str[0])
        parts += [
            _png(
                lambda ax: plots.plot_site_estimates(shown, ax=ax),
                (8, 0.4 * len(figures) + 1.6),
            ),
            _table(figures, ("estimate", "ci_low", "ci_high"), css_class="text"),
        ]
    for problem in problems:
        parts.append(f'<p class="note">Not estimated: {_html.escape(problem)}</p>')
    return parts


def _conclusion(
    head: dict[str, Any],
    figures: pd.DataFrame,
    bias: pd.DataFrame | None,
    quality: pd.DataFrame | None,
    level: float,
) -> str:
    """The report's opening paragraph: 3-5 sentences computed from its figures."""
    total, reviewed = head["work_orders"], head["reviewed_work_orders"]
    share = head["reviewed_share"]
    said = [
        f"All {total:,} work orders were reviewed by a human, so the reviewed work orders are "
        "the whole site."
        if total and reviewed == total
        else f"{reviewed:,} of {total:,} work orders ({_pct(share)}) were reviewed by a human; "
        f"the other {_pct(1 - share)} never were."
    ]
    if head["audited_tasks"]:
        said.append(
            f"On the reviewed work orders, reviewers changed the AI's value on "
            f"{_pct(head['override_rate'])} of {head['audited_tasks']:,} analysed tasks "
            f"({level:.0%} CI {_span(head['ci_low'], head['ci_high'])})."
        )
    else:
        said.append("No analysed task of a reviewed work order yet: nothing to audit.")
    overrides = (
        figures[figures["figure"].str.startswith("Values changed")] if len(figures) else figures
    )
    how = {
        "design": "from the random review plan",
        "ppi": "from the random review plan and the AI's verdicts",
        "poststratified": "reweighting the existing reviews (assuming they are random within "
        "strata of what is known for every work order)",
    }
    estimates = [
        f"{_pct(row['estimate'])} ({level:.0%} CI {_span(row['ci_low'], row['ci_high'])}) "
        f"{how.get(row['method'], row['method'])}"
        for row in overrides.to_dict("records")
        if row["method"] != "reviewed only" and not pd.isna(row["estimate"])
    ]
    if estimates:  # the plan's estimate first: it needs no assumption about the queue
        said.append(
            "Across the whole site, the override rate is " + ", and ".join(estimates[::-1]) + "."
        )
    if bias is not None and bias["p_value"].notna().any():
        flagged = bias.loc[bias["flagged"], "feature"].astype(str).tolist()
        if flagged:
            said.append(
                "The review queue looks biased: reviewed work orders differ from the others "
                f"in {_and(flagged)}, so the reviewed-only figures may not hold for the "
                "whole site."
            )
        else:
            said.append(
                "The review queue does not look biased: reviewed and unreviewed work orders "
                "do not differ significantly on anything compared."
            )
    else:
        said.append("Whether the review queue is biased cannot be tested on this frame.")
    if quality is not None and quality["n_tasks"].iloc[0] > 0:
        row = quality.iloc[0]
        said.append(
            f'When the AI says "not conform", it is right {_pct(row["precision"])} of the '
            f"time (precision), and it catches {_pct(row['recall'])} of the tasks really not "
            "conform (recall), on reviewed work orders."
        )
    text = " ".join(_html.escape(s) for s in said)
    return f'<div class="conclusion"><b>In short.</b> {text}</div>'


def _quality_section(per_task: pd.DataFrame, level: float) -> list[str]:
    """The "AI as a classifier" section: chart and table in the same order (best F1 first)."""
    ordered = _by_rate(per_task, "f1")
    shown = pd.DataFrame(
        {
            "task_name": ordered["task_name"].astype(str).to_numpy(),
            "tasks": ordered["n_tasks"].to_numpy(),
            "work orders": ordered["n_work_orders"].to_numpy(),
            **{c: ordered[c].to_numpy() for c in ("tp", "fp", "fn", "tn")},
            **{
                f"{name} ({level:.0%} CI)": [
                    _with_interval(v, lo, hi)
                    for v, lo, hi in zip(
                        ordered[name], ordered[f"{name}_low"], ordered[f"{name}_high"], strict=True
                    )
                ]
                for name in ("precision", "recall", "f1")
            },
        }
    )
    return [
        '<h2>The AI as a classifier: precision and recall of "not conform"</h2>',
        '<p class="note">On the analysed conformity tasks of reviewed work orders: <i>tp</i> '
        "the AI and the checked verdict both say not conform, <i>fp</i> only the AI does, "
        "<i>fn</i> only the checked verdict does, <i>tn</i> both say conform. "
        "<i>Precision</i>: of the tasks the AI finds not conform, the share really not "
        "conform. <i>Recall</i>: of the tasks really not conform, the share the AI finds. "
        "<i>F1</i>: their harmonic mean. Intervals treat each work order as a cluster (its "
        "tasks share photos, a technician and a day); with one task per work order they are "
        "Wilson intervals. Sorted by F1, best first, in the chart and the table.</p>",
        _png(
            lambda ax: plots.plot_verdict_quality(ordered.iloc[::-1], ax=ax, sort=False),
            (8, 0.42 * len(ordered) + 1.9),
        ),
        _table(shown),
    ]


def _kappa_note(agreement: pd.DataFrame) -> str:
    """Why kappa can be low while agreement is high, with this frame's clearest example."""
    note = (
        "Kappa is agreement beyond chance: (observed - expected) / (1 - expected). It is low "
        "when one verdict dominates: if nearly every task is conform, the AI and the reviewer "
        "agree by chance most of the time (the expected agreement is high), so even a high "
        "observed agreement leaves little beyond chance."
    )
    known = agreement.dropna(subset=["observed", "expected", "kappa"])
    known = known[(known["n"] > 0) & (known["expected"] < 1)]
    if len(known):
        row = known.loc[(known["observed"] - known["kappa"]).idxmax()]
        if row["observed"] - row["kappa"] > 0.3:
            note += (
                f" For example {row.iloc[0]}: {row['observed']:.1%} agreement, of which "
                f"{row['expected']:.1%} is expected by chance, so κ = {row['kappa']:.3f}."
            )
    return f'<p class="note">{_html.escape(note)}</p>'


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
    plan: pd.DataFrame | None = None,
    dataset_note: str | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> Path:
    """Write a self-contained HTML audit report of a tasks frame to ``path``; returns the path.

    Opens with a short conclusion computed from the figures (the reviewed share, the
    reviewed-only override rate, the site-wide estimate, whether the review queue looks
    biased, the AI's precision and recall). Sections: headline figures; "The whole site" (the
    reviewed share, :func:`~dfs_analytics.audit.review_bias` with a warning when a feature is
    flagged, :func:`~dfs_analytics.audit.site_estimate` of the override and non-conformity
    rates next to their reviewed-only values, poststratified, and with ``plan`` (a review
    plan of :func:`~dfs_analytics.audit.review_sample` whose work orders were reviewed) the
    design and PPI estimates too, in a chart and a table that says what each covers and
    assumes); both override rates
    per task (charts and tables in the same order, highest rate first) and per task group;
    the AI's precision and recall of "not conform" per task
    (:func:`~dfs_analytics.audit.verdict_quality`); field engineers (funnel plots with
    shrunken rankings and outlier flags, engineer x month heatmap); drift across app versions
    (shown by name, or numbered in order of appearance with their first date and short id) and
    over weeks (significant changes flagged, Holm-adjusted); AI vs final verdict for the
    ``confusion_tasks`` most overridden tasks; Cohen's kappa, with why it is low when one
    verdict dominates; and the definitions used. Plots are PNG images inlined in the file.

    Near the top, a "Data" line states the dataset, version and filters (and ``as_of``) the
    frame was loaded with (``tasks.attrs["dfs_provenance"]``), so the figures can be
    recomputed, or says that the frame has no recorded provenance; a local dataset folder
    that no longer exists is not named, and ``dataset_note`` (e.g. "a temporary dataset")
    replaces the dataset's location. ``simulator=True`` (data from the local simulator, e.g.
    ``simulator=dfs_analytics.connect.is_simulator(client)``) adds "(simulator data)" to the
    title and heading, and says near the top that the figures are made up. The dataset version
    the frame was loaded from is pinned in its dataset (note ``"HTML report <path>"``, opened
    with ``storage_options`` for an object store) so that retention never removes it; a
    dataset that cannot be pinned is a warning (:func:`~dfs_analytics.audit.site.pin_version`).
    A ``plan`` that
    was not drawn from this frame's work orders raises
    :class:`~dfs_analytics.errors.AuditInputError` before anything is written.
    """
    path = Path(path)
    if simulator:
        title = f"{title} {SIMULATOR_NOTE}"
    head = audit.summary(tasks, level=level)  # reads the provenance before any transformation
    reviewed_share = head["reviewed_share"]
    verdicts = "is_verdict_overridden" in tasks.columns
    head_v = audit.summary(tasks, level=level, basis="verdict") if verdicts else None
    bases = ("value", "verdict") if verdicts else ("value",)
    rates = audit.override_rates(tasks, level=level)  # values changed per task
    versions = _version_labels(tasks)
    pct = ("rate", "ci_low", "ci_high")
    has_quality = all(c in tasks.columns for c in _QUALITY)
    quality = audit.verdict_quality(tasks, by=None, level=level) if has_quality else None
    per_task_quality = audit.verdict_quality(tasks, level=level) if has_quality else None
    if plan is not None:  # a plan of other work orders is the caller's mistake: say so now
        audit.site_estimate(tasks, plan, method="design", level=level)
    figures, problems = _site_figures(tasks, head, quality, plan, level)
    bias = None
    if "task_name" in tasks.columns:
        try:
            bias = audit.review_bias(tasks)
        except audit.AuditInputError:
            bias = None
    parts = [
        f"<h1>{_html.escape(title)}</h1>",
        f'<p class="meta">Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by '
        f"dfs-analytics {__version__}"
        + (f" from {_html.escape(mask_url(source))}" if source else "")
        + "</p>",
        _data_line(head["provenance"], dataset_note),
        *(
            [
                '<p class="meta"><b>Made-up data:</b> these figures come from the local '
                "simulator of the Field Services API, not from a real site.</p>"
            ]
            if simulator
            else []
        ),
        _conclusion(head, figures, bias, quality, level),
        '<div class="cards">',
        f'<div class="card">work orders<b>{head["work_orders"]:,}</b></div>',
        f'<div class="card">reviewed<b>{head["reviewed_work_orders"]:,}</b>'
        f"{_pct(reviewed_share)} of work orders</div>",
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
        *_whole_site(tasks, head, figures, problems, bias, versions, level),
    ]
    for basis in bases:
        per_task = (
            rates if basis == "value" else audit.override_rates(tasks, level=level, basis=basis)
        )
        parts += _rates_block(per_task, f"{_TITLES[basis]} per task", _MEANING[basis])
    for basis in bases:
        parts += [
            f"<h2>{_TITLES[basis]} per task group</h2>",
            '<p class="note">Sorted by rate, highest first.</p>',
            _table(
                _by_rate(
                    audit.override_rates(tasks, by="task_group_name", level=level, basis=basis)
                ),
                pct,
            ),
        ]
    if per_task_quality is not None and len(per_task_quality):
        parts += _quality_section(per_task_quality, level)
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
            shown = _engineer_table(table, level)
            parts += [
                f"<h3>{_TITLES[basis]} per field engineer</h3>",
                _png(partial(plots.plot_funnel, table), (8, 5)),
                _table(shown, ("rate", "shrunk"), highlight=table["outlier"].tolist()),
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
        parts += [
            "<h2>Drift across app versions</h2>",
            '<p class="note">App versions are numbered in the order they first appear in '
            "this frame, with the date of their first work order and the start of their "
            "id.</p>",
        ]
        for basis in bases:
            drifts = audit.drift(tasks, by="app_version_id", level=level, alpha=alpha, basis=basis)
            flagged = int(drifts["flagged"].sum())
            shown = drifts.drop(columns=["change", "first_date"], errors="ignore").assign(
                period=drifts["period"].map(lambda v: versions.get(v, v))
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
            _png(partial(plots.plot_drift, weekly), (9, 3.4)),
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
                    partial(plots.plot_confusion, table, task_name=name),
                    (1.4 * len(table.columns) + 3, 0.7 * len(table.index) + 2),
                ),
            ]
    agreement = audit.agreement(tasks)
    parts += [
        "<h2>Agreement (Cohen's kappa)</h2>",
        _kappa_note(agreement),
        _table(_by_rate(agreement, "kappa"), ("observed", "expected")),
        "<h2>Definitions</h2>",
        '<p class="note">A task counts for the audit when the AI analysed it on a work order '
        "that was reviewed in the back office. Its <i>value is changed</i> when a human set a "
        "corrected value different from the AI's; a correction to the same value is "
        "agreement. Its <i>verdict is flipped</i> when the corrected value matches another "
        "verdict rule than the AI's value (rules compared by identity within the app version; "
        "a value matching no rule is a verdict of its own); a corrected serial number that "
        "is still readable changes the value, not the verdict. Tasks without rules have no "
        f"verdict and count only for values. Intervals are {level:.0%} Wilson score "
        "intervals; where several tasks of one work order are pooled, at the effective sample "
        'size of work orders as clusters. Unreviewed work orders count only in "The whole '
        'site", never as agreement. Tasks are keyed by name, which stays the same across app '
        'versions. A missing group (no field engineer) is shown as "(none)".</p>',
    ]
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    loaded = head["provenance"] or {}
    pin_version(
        loaded.get("dataset"), loaded.get("version"), f"HTML report {path}", storage_options
    )
    return path
