"""plots: each view renders headless (Agg), from a tasks frame and from the audit's own frame,
draws on the Axes it is given and returns it, and draws what the audit computed."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

import dfs_analytics as dfs
from dfs_analytics import normalize, plots
from tests.helpers import A, B, drift_work_orders, small_work_orders

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ax() -> Iterator[Axes]:
    fig = Figure(figsize=(6, 4))
    yield fig.subplots()


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def rendered(ax: Axes) -> bytes:
    """Draw the Axes' figure to PNG bytes (proves it renders, not only that it was set up)."""
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png")
    data = buf.getvalue()
    assert data.startswith(PNG) and len(data) > 1000
    return data


def errorbar_of(ax: Axes) -> ErrorbarContainer:
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    return bars[0]


def check_errorbar(ax: Axes, rates: pd.DataFrame) -> None:
    """One dot per group (with n > 0), at its rate, whiskers from ci_low to ci_high."""
    bar = errorbar_of(ax)
    line, _, (whiskers,) = bar.lines
    xs = np.asarray(line.get_xdata(), dtype=float)
    assert len(xs) == len(rates)
    assert sorted(xs) == pytest.approx(sorted(rates["rate"]))
    spans = sorted((float(s[:, 0].min()), float(s[:, 0].max())) for s in whiskers.get_segments())
    expected = sorted(zip(rates["ci_low"], rates["ci_high"], strict=True))
    np.testing.assert_allclose(np.array(spans), np.array(expected), atol=1e-12)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(rates)
    for n in rates["n"]:
        assert any(f"(n={n})" in label for label in labels)


# --------------------------------------------------------------------------------------------


def test_backend_is_headless() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_override_rates_from_tasks_frame(tasks, ax) -> None:
    assert plots.plot_override_rates(tasks, ax=ax) is ax
    rates = dfs.override_rates(tasks)
    check_errorbar(ax, rates[rates["n"] > 0])  # "never" (n = 0) is left out
    assert not any("never" in t.get_text() for t in ax.get_yticklabels())
    rendered(ax)


def test_override_rates_from_the_audit_frame(tasks, ax) -> None:
    rates = dfs.override_rates(tasks, by="task_group_name", level=0.9)
    assert plots.plot_override_rates(rates, ax=ax) is ax
    check_errorbar(ax, rates)
    assert "90%" in ax.get_xlabel()
    assert {t.get_text().split()[0] for t in ax.get_yticklabels()} == {"grp-a", "grp-b"}
    rendered(ax)


def test_override_rates_without_ax_makes_its_own(tasks) -> None:
    ax = plots.plot_override_rates(tasks)
    assert isinstance(ax, Axes)
    assert len(errorbar_of(ax).lines[0].get_xdata()) == 3
    rendered(ax)


def test_confusion_heatmap_from_tasks_frame(tasks, ax) -> None:
    assert plots.plot_confusion(tasks, task_name="present", ax=ax) is ax
    counts = dfs.confusion(tasks, task_name="present").drop(index="total", columns="total")
    (image,) = ax.images
    assert image.get_array().shape == counts.shape == (2, 2)
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(v) for v in counts.to_numpy().ravel()]
    # shading: the share of each row
    shares = counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(image.get_array()), shares)
    assert "present" in ax.get_title()
    rendered(ax)


def test_confusion_heatmap_from_the_audit_frame(tasks, ax) -> None:
    table = dfs.confusion(tasks, labels="sentence")
    assert plots.plot_confusion(table, ax=ax, normalize=None) is ax
    counts = table.drop(index="total", columns="total")
    (image,) = ax.images
    assert image.get_array().shape == counts.shape == (7, 7)
    assert [t.get_text() for t in ax.texts] == [str(v) for v in counts.to_numpy().ravel()]
    assert sum(int(t.get_text()) for t in ax.texts) == 18
    assert [t.get_text() for t in ax.get_yticklabels()] == list(counts.index)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(counts.columns)
    assert {"other", "not analysed"} <= set(counts.index)
    rendered(ax)


def test_drift_from_tasks_frame(tasks, ax) -> None:
    assert plots.plot_drift(tasks, ax=ax) is ax
    weekly = dfs.drift(tasks, by=None, freq="W", within=None)
    rate_lines = [line for line in ax.lines if line.get_label() == "override rate"]
    assert len(rate_lines) == 1
    assert list(rate_lines[0].get_ydata()) == pytest.approx(list(weekly["rate"]))
    assert len(rate_lines[0].get_xdata()) == 3
    assert len(ax.collections) >= 1  # the interval band
    rendered(ax)


def test_drift_from_the_audit_frame_with_a_flag(ax) -> None:
    frame = normalize.tasks_frame(drift_work_orders())
    result = dfs.drift(frame)
    assert plots.plot_drift(result, task_name="present", ax=ax) is ax
    present = result[result["task_name"] == "present"]
    (rate_line,) = [line for line in ax.lines if line.get_label() == "override rate"]
    assert list(rate_line.get_ydata()) == pytest.approx(list(present["rate"]))
    # x ticks: the app versions, in order
    assert [t.get_text() for t in ax.get_xticklabels()] == list(present["period"])
    flags = [c for c in ax.collections if c.get_label() == "significant change"]
    assert len(flags) == 1 and len(flags[0].get_offsets()) == 1
    assert "present" in ax.get_title()
    rendered(ax)


def test_drift_of_one_task_from_tasks_frame(tasks, ax) -> None:
    assert plots.plot_drift(tasks, task_name="present", ax=ax) is ax
    (rate_line,) = [line for line in ax.lines if line.get_label() == "override rate"]
    # present per week: 1/2, 1/2 (wo-3 overridden, wo-5 kept), 0/1
    assert list(rate_line.get_ydata()) == pytest.approx([0.5, 0.5, 0.0])
    rendered(ax)


def test_drift_with_nothing_audited_renders_an_empty_axes(ax) -> None:
    # no work order reviewed yet (e.g. only last week's work orders): no period to show
    frame = normalize.tasks_frame([dict(wo, review_date=None) for wo in small_work_orders()])
    assert len(dfs.drift(frame, by=None, freq="W", within=None)) == 0
    assert plots.plot_drift(frame, ax=ax) is ax
    (rate_line,) = [line for line in ax.lines if line.get_label() == "override rate"]
    assert len(rate_line.get_xdata()) == 0
    rendered(ax)


@pytest.mark.parametrize("given", ["tasks frame", "audit frame"])
def test_engineers(tasks, ax, given) -> None:
    # the module's promise: a tasks frame or the frame the audit function returned
    rates = dfs.override_rates(tasks, by="field_engineer_email")
    assert plots.plot_engineers(tasks if given == "tasks frame" else rates, ax=ax, min_n=1) is ax
    check_errorbar(ax, rates[rates["n"] >= 1])
    labels = " ".join(t.get_text() for t in ax.get_yticklabels())
    assert A in labels and B in labels
    overall = [line for line in ax.lines if line.get_label().startswith("all engineers")]
    assert len(overall) == 1
    assert overall[0].get_xdata()[0] == pytest.approx(4 / 12)
    rendered(ax)


def test_every_plot_on_simulator_data(sim_tasks) -> None:
    fig = Figure(figsize=(10, 8))
    axes = fig.subplots(2, 2).ravel()
    rates = dfs.override_rates(sim_tasks)
    assert plots.plot_override_rates(rates, ax=axes[0]) is axes[0]
    check_errorbar(axes[0], rates[rates["n"] > 0])
    name = str(rates.sort_values("rate").iloc[-1]["task_name"])
    assert plots.plot_confusion(sim_tasks, task_name=name, ax=axes[1]) is axes[1]
    counts = dfs.confusion(sim_tasks, task_name=name).drop(index="total", columns="total")
    assert axes[1].images[0].get_array().shape == counts.shape
    assert [t.get_text() for t in axes[1].texts] == [str(v) for v in counts.to_numpy().ravel()]
    assert plots.plot_drift(sim_tasks, ax=axes[2]) is axes[2]
    weeks = dfs.drift(sim_tasks, by=None, freq="W", within=None)
    (rate_line,) = [line for line in axes[2].lines if line.get_label() == "override rate"]
    assert len(rate_line.get_xdata()) == len(weeks) > 10
    assert plots.plot_engineers(sim_tasks, ax=axes[3]) is axes[3]
    engineers = dfs.override_rates(sim_tasks, by="field_engineer_email")
    check_errorbar(axes[3], engineers[engineers["n"] >= 20])
    rendered(axes[0])


# --------------------------------------------------------------------------------------------
# both bases, periods in date order, funnel and heatmap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("basis", ["value", "verdict"])
def test_override_rates_on_both_bases_say_what_they_count(tasks, ax, basis) -> None:
    assert plots.plot_override_rates(tasks, ax=ax, basis=basis) is ax
    rates = dfs.override_rates(tasks, basis=basis)
    check_errorbar(ax, rates[rates["n"] >= 1].sort_values("rate", kind="stable"))
    word = "value" if basis == "value" else "verdict"
    assert word in ax.get_title() and word in ax.get_xlabel()
    rendered(ax)


def test_weekly_rates_are_plotted_in_date_order(ax) -> None:
    frame = normalize.tasks_frame(drift_work_orders())
    weekly = dfs.override_rates(frame, by="week")
    assert plots.plot_override_rates(weekly, ax=ax) is ax
    labels = [t.get_text().split("  ")[0] for t in ax.get_yticklabels()]
    # earliest week at the top (the last tick), named as ISO weeks
    expected = [f"{d:%G-W%V}" for d in weekly[weekly["n"] >= 1]["week"]]
    assert labels[::-1] == expected
    assert all("-W" in label for label in labels)


def test_drift_on_the_verdict_basis(tasks, ax) -> None:
    assert plots.plot_drift(tasks, ax=ax, basis="verdict") is ax
    weekly = dfs.drift(tasks, by=None, freq="W", within=None, basis="verdict")
    (line,) = [line for line in ax.lines if line.get_label() == "verdict override rate"]
    assert list(line.get_ydata()) == pytest.approx(list(weekly["rate"]))
    assert "Verdict override rate" in ax.get_title()
    rendered(ax)


def test_confusion_shows_stable_labels_with_their_sentences(tasks, ax) -> None:
    assert plots.plot_confusion(tasks, task_name="present", ax=ax) is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "conform\n(OK)" in labels and "not conform\n(Missing)" in labels
    assert "verdict" in ax.get_xlabel()
    values = Figure().subplots()
    plots.plot_confusion(tasks, task_name="present", ax=values, basis="value")
    assert {t.get_text() for t in values.get_yticklabels()} == {"true", "false"}
    rendered(ax)


@pytest.mark.parametrize("basis", ["value", "verdict"])
def test_funnel_plot(sim_tasks, ax, basis) -> None:
    table = dfs.funnel(sim_tasks, basis=basis)
    assert plots.plot_funnel(sim_tasks, ax=ax, basis=basis) is ax
    points = [c for c in ax.collections if len(c.get_offsets())]
    shown = table[table["n"] > 0]
    assert sum(len(c.get_offsets()) for c in points) == len(shown)
    outliers = [c for c in ax.collections if c.get_label() == "outlier"]
    assert len(outliers[0].get_offsets()) == int(shown["outlier"].sum())
    assert len(ax.texts) == int(shown["outlier"].sum())  # outliers are labelled
    labels = {line.get_label() for line in ax.lines}
    assert {"95.0% limits", "99.8% limits"} <= labels
    assert any(label.startswith("overall") for label in labels)
    assert ("verdict" in ax.get_title()) == (basis == "verdict")
    # the same from the funnel frame
    other = Figure().subplots()
    assert plots.plot_funnel(table, ax=other) is other
    rendered(ax)


def test_heatmap_shows_rate_and_n_with_none_and_months_in_order(tasks, ax) -> None:
    assert plots.plot_heatmap(tasks, ax=ax) is ax
    rates = dfs.override_rates(tasks, by=["field_engineer_email", "month"])
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows[-1] == "(none)" and "nan" not in rows and "-" not in rows
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2026-03"]
    texts = sorted(t.get_text() for t in ax.texts)
    expected = sorted(f"{r.rate:.0%}\nn={r.n}" for r in rates.itertuples() if r.n > 0)
    assert texts == expected
    rendered(ax)


def test_heatmap_of_simulator_data_by_quarter_on_both_bases(sim_tasks) -> None:
    for basis in ("value", "verdict"):
        ax = Figure(figsize=(12, 6)).subplots()
        assert plots.plot_heatmap(sim_tasks, cols="quarter", ax=ax, basis=basis) is ax
        columns = [t.get_text() for t in ax.get_xticklabels()]
        assert columns == sorted(columns) and all("Q" in c for c in columns)
        assert ("verdict" in ax.get_title().lower()) == (basis == "verdict")
        rendered(ax)


# --------------------------------------------------------------------------------------------
# labels that fit, group labels without figures, precision and recall
# --------------------------------------------------------------------------------------------


def inside_the_figure(ax: Axes) -> bool:
    """Whether the x-axis label is drawn entirely inside its figure (not cut off)."""
    fig = ax.figure
    canvas = FigureCanvasAgg(fig)
    fig.tight_layout()  # as the report does before it saves the PNG
    canvas.draw()  # labels take their places when drawn
    box = ax.xaxis.label.get_window_extent(canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0


@pytest.mark.parametrize("basis", ["value", "verdict"])
def test_the_rates_axis_label_fits_the_report_size(sim_tasks, basis) -> None:
    # the report draws per-task rates 8 inches wide; the label once ran off the edge
    rates = dfs.override_rates(sim_tasks, basis=basis)
    ax = Figure(figsize=(8, 0.32 * len(rates) + 1.9), dpi=110).subplots()
    plots.plot_override_rates(rates, ax=ax, basis=basis)
    assert "95% interval" in ax.get_xlabel()
    assert inside_the_figure(ax), ax.get_xlabel()
    rendered(ax)


def test_figures_after_the_groups_are_not_taken_for_group_labels(tasks, ax) -> None:
    # an audit frame may carry more figures (a design effect) after its counts
    rates = dfs.override_rates(tasks).assign(design_effect=1.0, extra="x")
    plots.plot_override_rates(rates, ax=ax)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(" / " not in label for label in labels), labels
    assert {label.split("  ")[0] for label in labels} == {"present", "power", "serial"}


def test_override_rates_unsorted_draws_rows_as_given(tasks, ax) -> None:
    rates = dfs.override_rates(tasks)
    rates = rates[rates["n"] > 0].iloc[::-1]
    plots.plot_override_rates(rates, ax=ax, sort=False)
    labels = [t.get_text().split("  ")[0] for t in ax.get_yticklabels()]
    assert labels == [str(v) for v in rates["task_name"]]  # the first row at the bottom


def test_verdict_quality_from_tasks_and_from_the_audit_frame(sim_tasks) -> None:
    quality = dfs.audit.verdict_quality(sim_tasks)
    for data in (sim_tasks, quality):
        ax = Figure(figsize=(8, 5)).subplots()
        assert plots.plot_verdict_quality(data, ax=ax) is ax
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [b.get_label() for b in bars] == ["precision", "recall"]
        ordered = quality.sort_values("f1", kind="stable", na_position="first")
        for bar, name in zip(bars, ("precision", "recall"), strict=True):
            line, _, (whiskers,) = bar.lines
            np.testing.assert_allclose(line.get_xdata(), ordered[name].to_numpy(float))
            # a figure without trials (NaN: no task the AI flags...) has no whisker
            drawn = [s for s in whiskers.get_segments() if np.ndim(s) == 2 and np.isfinite(s).all()]
            spans = [(float(s[:, 0].min()), float(s[:, 0].max())) for s in drawn]
            known = ordered[ordered[name].notna()]
            expected = list(zip(known[f"{name}_low"], known[f"{name}_high"], strict=True))
            np.testing.assert_allclose(np.array(spans), np.array(expected), atol=1e-12)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [
            f"{row.task_name}  (n={row.n_tasks})" for row in ordered.itertuples(index=False)
        ]  # best F1 at the top
        assert "precision and recall" in ax.get_xlabel() and inside_the_figure(ax)
        rendered(ax)


def test_site_estimates_of_another_shape_are_a_typed_error(sim_tasks) -> None:
    estimates = dfs.audit.site_estimate(sim_tasks)  # no "figure" column yet
    with pytest.raises(dfs.AuditInputError, match=r"column\(s\) figure, missing"):
        plots.plot_site_estimates(estimates, ax=Figure().subplots())
    with pytest.raises(dfs.AuditInputError, match="needs a DataFrame"):
        plots.plot_site_estimates(estimates.to_dict("records"), ax=Figure().subplots())
    ax = plots.plot_site_estimates(
        estimates.assign(figure="Values changed"), ax=Figure().subplots()
    )
    assert len(ax.get_yticklabels()) == len(estimates)


def test_site_estimates_next_to_the_reviewed_only_figures(sim_tasks) -> None:
    head = dfs.audit.summary(sim_tasks)
    site = dfs.audit.site_estimate(sim_tasks).iloc[0]
    rows = pd.DataFrame(
        [
            {
                "figure": "Values changed",
                "method": "reviewed only",
                "estimate": head["override_rate"],
                "ci_low": head["ci_low"],
                "ci_high": head["ci_high"],
            },
            {"figure": "Values changed", **site[["method", "estimate", "ci_low", "ci_high"]]},
        ]
    )
    ax = Figure(figsize=(8, 3)).subplots()
    assert plots.plot_site_estimates(rows, ax=ax) is ax
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [b.get_label() for b in bars] == ["reviewed only", "poststratified"]
    for bar, row in zip(bars, rows.itertuples(index=False), strict=True):
        line, _, (whiskers,) = bar.lines
        assert list(line.get_xdata()) == pytest.approx([row.estimate])
        (segment,) = whiskers.get_segments()
        assert (segment[:, 0].min(), segment[:, 0].max()) == pytest.approx(
            (row.ci_low, row.ci_high)
        )
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Values changed: poststratified", "Values changed: reviewed only"]
    assert inside_the_figure(ax)
    rendered(ax)
