"""Jupyter apps (ipywidgets 8): browse work orders and tasks, see why a verdict was given,
re-run the AI, correct a task, run a correction campaign with an explicit confirmation, and
walk a review plan task by task (the review bench).

Read models come from :mod:`~dfs_analytics.widget_views`, HTML from :mod:`~dfs_analytics._html`.
Every control is an attribute, so an app can be driven from code or tests; errors are shown
in ``status`` and kept in ``last_error``.

The apps never speak HTTP or use the client themselves (they hand it to the loaders,
``actions``, ``campaign`` and ``review``),
never write anything but through ``actions``, ``campaign`` and ``review``, and never escape
text themselves (``_html`` does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from typing import Any

import ipywidgets as W
import pandas as pd

from . import _html, actions, loaders, widget_views
from .campaign import Campaign
from .review import Review, ReviewItem

_ANY = "(any)"
_TABLE_CSS = (
    "<style>.dfs-t{border-collapse:collapse;font-size:12px}.dfs-t td,.dfs-t th{border:1px solid "
    "#ddd;padding:2px 6px;text-align:left}.dfs-t th{background:#f4f7fb}</style>"
)


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a widget callback, showing any error in the app's status line instead of losing it."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.last_error = None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # shown to the user, never swallowed silently
            self.last_error = exc
            self._say(f"{type(exc).__name__}: {exc}", error=True)
            return None
        finally:
            self._busy(False)

    return wrapper


class _App(W.VBox):
    def __init__(self, **kwargs: Any):
        self.status = W.HTML()
        self.progress = W.IntProgress(
            min=0, max=1, layout=W.Layout(width="300px", visibility="hidden")
        )
        self.last_error: Exception | None = None
        super().__init__(**kwargs)

    def _say(self, message: str, error: bool = False) -> None:
        color = "#b00020" if error else "#333"
        self.status.value = f'<span style="color:{color}">{_html.escape(message)}</span>'

    def _busy(self, on: bool, total: int = 0) -> None:
        self.progress.layout.visibility = "visible" if on else "hidden"
        if on:
            self.progress.max = max(total, 1)
            self.progress.value = 0


def _table(frame: pd.DataFrame, colors: pd.Series | None = None) -> str:
    """A compact table of ``frame`` (``colors``: a colour per row for its ``message`` cells)."""
    if frame.empty:
        return "<i>nothing to show</i>"
    cell_colors = {"message": list(colors)} if colors is not None else None
    return _TABLE_CSS + _html.table(frame, css_class="dfs-t", cell_colors=cell_colors)


class Explorer(_App):
    """Browse work orders and tasks with filters, open one work order, re-run the AI on it, and
    correct its tasks.

    Filters: creation dates and review (sent to the server by :meth:`load`), then task group,
    task, verdict, overridden and field engineer (applied to the loaded rows). The table pages
    through tasks or work orders; choosing a work order (``work_order``) shows its task states
    with their verdicts in their rule colours, and its timeline. ``correct_task`` and
    ``correct_value`` (the values the task's rules allow) with ``correct_button`` correct a
    task; ``reanalyze_button`` re-runs the AI on stored inputs of ``analyze_groups``;
    ``upload`` + ``analyze_button`` runs it on a new photo. The detail view is read again from
    the server after every action.

    ``client``: the :class:`~dfs_analytics.Client` to read and act with; ``page_size``: table
    rows per page; ``load=False`` waits for :meth:`load` (or ``load_button``).
    """

    def __init__(self, client: Any, page_size: int = 15, load: bool = True):
        super().__init__()
        self.client = client
        self.page_size = page_size
        self.tasks = pd.DataFrame()
        self.filtered = pd.DataFrame()
        self.page = 0
        self.detail: dict[str, Any] | None = None
        self.created_after = W.DatePicker(
            description="Created from", style={"description_width": "initial"}
        )
        self.created_before = W.DatePicker(description="before")
        self.reviewed = W.Dropdown(
            options=[(_ANY, None), ("yes", True), ("no", False)], description="Reviewed"
        )
        self.load_button = W.Button(description="Load", button_style="primary", icon="download")
        self.task_group = W.Dropdown(options=[_ANY], description="Task group")
        self.task = W.Dropdown(options=[_ANY], description="Task")
        self.verdict = W.Dropdown(options=[_ANY], description="Verdict")
        self.overridden = W.Dropdown(
            options=[(_ANY, None), ("yes", True), ("no", False)], description="Overridden"
        )
        self.engineer = W.Dropdown(options=[_ANY], description="Engineer")
        self.view = W.ToggleButtons(options=["tasks", "work orders"], value="tasks")
        self.table = W.HTML()
        self.prev_button = W.Button(
            description="", icon="chevron-left", layout=W.Layout(width="40px")
        )
        self.next_button = W.Button(
            description="", icon="chevron-right", layout=W.Layout(width="40px")
        )
        self.page_label = W.Label()
        self.work_order = W.Dropdown(
            options=[], description="Work order", layout=W.Layout(width="480px")
        )
        self.detail_html = W.HTML()
        self.timeline_html = W.HTML()
        self.analyze_groups = W.SelectMultiple(options=[], description="Groups", rows=4)
        self.reanalyze_button = W.Button(description="Re-run AI on stored inputs", icon="refresh")
        self.upload = W.FileUpload(accept="image/*,.pdf", multiple=False, description="Photo")
        self.upload_group = W.Dropdown(options=[], description="For group")
        self.analyze_button = W.Button(description="Analyze photo", icon="camera")
        self.correct_task = W.Dropdown(
            options=[], description="Task", layout=W.Layout(width="420px")
        )
        self.correct_value = W.Dropdown(options=[], description="Value")
        self.correct_text = W.Text(description="or type", placeholder="a value of the task's type")
        self.correct_button = W.Button(description="Correct", button_style="warning", icon="check")

        self.load_button.on_click(lambda _: self.load())
        for control in (
            self.task_group,
            self.task,
            self.verdict,
            self.overridden,
            self.engineer,
            self.view,
        ):
            control.observe(lambda _: self._refilter(), names="value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.work_order.observe(
            lambda change: self.show_work_order(change["new"]) if change["new"] else None,
            names="value",
        )
        self.correct_task.observe(lambda _: self._fill_values(), names="value")
        self.correct_button.on_click(lambda _: self.correct())
        self.reanalyze_button.on_click(lambda _: self.reanalyze())
        self.analyze_button.on_click(lambda _: self.analyze_upload())

        filters = W.VBox(
            [
                W.HBox([self.created_after, self.created_before, self.reviewed, self.load_button]),
                W.HBox([self.task_group, self.task, self.verdict]),
                W.HBox([self.overridden, self.engineer, self.view]),
            ]
        )
        pager = W.HBox([self.prev_button, self.page_label, self.next_button])
        actions_box = W.Accordion(
            children=[
                W.VBox(
                    [
                        W.HBox([self.correct_task, self.correct_value, self.correct_text]),
                        self.correct_button,
                    ]
                ),
                W.VBox(
                    [
                        W.HBox([self.analyze_groups, self.reanalyze_button]),
                        W.HBox([self.upload, self.upload_group, self.analyze_button]),
                    ]
                ),
            ]
        )
        actions_box.set_title(0, "Correct a task")
        actions_box.set_title(1, "Re-run the AI")
        self.children = [
            filters,
            W.HBox([self.progress, self.status]),
            self.table,
            pager,
            W.HTML("<b>Work order</b>"),
            self.work_order,
            self.detail_html,
            actions_box,
            W.HTML("<b>Timeline</b>"),
            self.timeline_html,
        ]
        if load:
            self.load()

    # -- loading and filtering ----------------------------------------------------------------

    def _server_filters(self) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        if isinstance(self.created_after.value, date):
            filters["created_after"] = self.created_after.value
        if isinstance(self.created_before.value, date):
            filters["created_before"] = self.created_before.value
        if self.reviewed.value is not None:
            filters["reviewed"] = self.reviewed.value
        return filters

    @_guarded
    def load(self) -> None:
        """Load (or refresh) the tasks matching the date and review filters."""
        self._busy(True)
        self._say("Loading…")
        self.tasks = loaders.load_tasks(self.client, progress=False, **self._server_filters())
        self._options()
        self._refilter()
        self._say(
            f"{self.tasks['work_order_id'].nunique() if len(self.tasks) else 0} work orders, "
            f"{len(self.tasks)} tasks loaded."
        )

    def _options(self) -> None:
        def choices(col: str) -> list[str]:
            if col not in self.tasks or self.tasks.empty:
                return [_ANY]
            return [_ANY, *sorted(str(v) for v in self.tasks[col].dropna().unique())]

        for control, col in (
            (self.task_group, "task_group_name"),
            (self.task, "task_name"),
            (self.verdict, "message"),
            (self.engineer, "field_engineer_email"),
        ):
            keep = control.value
            control.options = choices(col)
            control.value = keep if keep in control.options else _ANY

    def _refilter(self) -> None:
        frame = self.tasks
        if not frame.empty:
            for control, col in (
                (self.task_group, "task_group_name"),
                (self.task, "task_name"),
                (self.verdict, "message"),
                (self.engineer, "field_engineer_email"),
            ):
                if control.value not in (None, _ANY):
                    frame = frame[frame[col].astype(object) == control.value]
            if self.overridden.value is not None:
                frame = frame[
                    frame["is_overridden"].fillna(False).astype(bool) == self.overridden.value
                ]
        self.filtered = frame
        self.page = 0
        self._render()

    def rows(self) -> pd.DataFrame:
        """What the table shows (all pages): tasks, or one row per work order."""
        frame = self.filtered
        if frame.empty:
            return frame
        if self.view.value == "tasks":
            return widget_views.task_rows(frame)
        return widget_views.work_order_rows(frame)

    def _render(self) -> None:
        rows = self.rows()
        pages = max(1, -(-len(rows) // self.page_size))
        self.page = min(max(self.page, 0), pages - 1)
        shown = rows.iloc[self.page * self.page_size : (self.page + 1) * self.page_size]
        self.table.value = _table(shown)
        self.page_label.value = f"page {self.page + 1} of {pages} ({len(rows)} rows)"
        ids = list(dict.fromkeys(shown["work_order_id"])) if len(shown) else []
        names = dict(
            zip(
                self.filtered.get("work_order_id", []),
                self.filtered.get("work_order_name", []),
                strict=False,
            )
        )
        keep = self.work_order.value
        self.work_order.options = [(f"{names.get(i, '')}  {i}", i) for i in ids] + (
            [(keep, keep)] if keep and keep not in ids else []
        )
        if keep:
            self.work_order.value = keep

    def _turn(self, step: int) -> None:
        self.page += step
        self._render()

    # -- one work order -----------------------------------------------------------------------

    @_guarded
    def show_work_order(self, work_order_id: str) -> None:
        """Show one work order: its task states (verdicts in rule colours) and timeline."""
        self._busy(True)
        detail = widget_views.describe(self.client, work_order_id)
        self.detail = detail
        if self.work_order.value != work_order_id:
            self.work_order.options = (
                [*self.work_order.options, (work_order_id, work_order_id)]
                if work_order_id not in [v for _, v in self.work_order.options]
                else self.work_order.options
            )
            self.work_order.value = work_order_id
        tasks = detail["tasks"]
        shown = tasks[
            [
                "task_group_name",
                "task_name",
                "analyzed_value",
                "corrected_value",
                "message",
                "is_conform",
            ]
        ]
        wo = detail["work_order"]
        facts = {
            "engineer": wo.get("field_engineer_email"),
            "created": wo.get("create_date"),
            "reviewed": wo.get("review_date"),
            "progress": f"{wo.get('progress_score')}%",
        }
        self.detail_html.value = (
            f"<p><b>{_html.escape(wo.get('name'))}</b> — "
            + ", ".join(f"{k} {_html.escape(v)}" for k, v in facts.items())
            + "</p>"
            + _table(shown, tasks["color"])
        )
        timeline = detail["timeline"]
        cols = [
            c
            for c in (
                "date",
                "type",
                "user",
                "task_group_name",
                "task_name",
                "analyzed_value",
                "corrected_value",
                "message",
            )
            if c in timeline
        ]
        self.timeline_html.value = _table(timeline[cols])
        analysed = tasks[tasks["analyzed_value"].notna()]
        self.correct_task.options = [
            (f"{r.task_name} ({r.task_group_name})", r.task_id) for r in analysed.itertuples()
        ]
        groups = sorted(
            {str(i.get("task_group_name")) for i in detail["inputs"] if i.get("task_group_name")}
        )
        self.analyze_groups.options = groups
        self.upload_group.options = sorted({str(g) for g in tasks["task_group_name"].dropna()})
        self._fill_values()
        self._say(f"Work order {work_order_id}: {len(tasks)} tasks, {len(timeline)} timeline rows.")

    def _fill_values(self) -> None:
        if not self.detail or not self.correct_task.value:
            self.correct_value.options = []
            return
        row = self.detail["tasks"][self.detail["tasks"]["task_id"] == self.correct_task.value]
        choices = row["choices"].iloc[0] if len(row) else []
        self.correct_value.options = [
            (f"{sentence} ({value!r})" if sentence else repr(value), value)
            for value, sentence in choices
        ]

    @_guarded
    def correct(self) -> dict[str, Any] | None:
        """Correct the chosen task to the chosen (or typed) value; refreshes from the server."""
        if not self.detail or not self.correct_task.value:
            raise ValueError("open a work order and choose a task first")
        value = self.correct_text.value.strip() or self.correct_value.value
        if value is None or value == "":
            raise ValueError("choose or type a value")
        self._busy(True)
        wo_id = self.detail["work_order"]["id"]
        result = actions.correct(self.client, wo_id, self.correct_task.value, value)
        self.correct_text.value = ""
        task = self.correct_task.value
        self.show_work_order(wo_id)
        self.correct_task.value = task
        self._say(
            f"Corrected {result['task_name']} to {result['value']!r} "
            f"({(result['after'] or {}).get('message')})."
        )
        return result

    @_guarded
    def reanalyze(self) -> pd.DataFrame | None:
        """Re-run the AI on the stored inputs of the chosen groups; refreshes from the server."""
        if not self.detail:
            raise ValueError("open a work order first")
        groups = list(self.analyze_groups.value) or None
        self._busy(True)
        wo_id = self.detail["work_order"]["id"]
        result = actions.reanalyze(self.client, [wo_id], groups, progress=False)
        self.show_work_order(wo_id)
        changed = int(result["changed"].fillna(False).sum()) if "changed" in result else 0
        self._say(f"Re-ran the AI: {changed} task state(s) changed.")
        return result

    @_guarded
    def analyze_upload(self) -> pd.DataFrame | None:
        """Run the AI on the uploaded photo for the chosen group; refreshes from the server."""
        if not self.detail:
            raise ValueError("open a work order first")
        if not self.upload.value:
            raise ValueError("upload a photo first")
        if not self.upload_group.value:
            raise ValueError("choose the task group the photo is for")
        item = self.upload.value[0]
        self._busy(True)
        wo_id = self.detail["work_order"]["id"]
        result = actions.analyze(
            self.client, wo_id, self.upload_group.value, bytes(item["content"])
        )
        self.show_work_order(wo_id)
        self._say(
            f"Analysed {item.get('name')}: {int(result['changed'].sum())} task state(s) changed."
        )
        return result


class CampaignPanel(_App):
    """A correction campaign in a notebook: problems, preview (dry run), an explicit
    confirmation, then apply with a progress bar, per-row results and the journal's path, and
    a verification against the server (rows whose task does not have the planned value).

    ``apply_button`` stays disabled until the plan has no problems, the preview was shown
    (``preview_button``) and ``confirm`` is ticked; it unticks itself after each run. After a
    run, ``results`` holds the per-row outcomes and ``mismatches`` the verification's rows.
    """

    def __init__(self, campaign: Campaign):
        super().__init__()
        self.campaign = campaign
        self.results: pd.DataFrame | None = None
        self.mismatches: pd.DataFrame | None = None
        self.problems_html = W.HTML()
        self.preview_html = W.HTML()
        self.results_html = W.HTML()
        self.verify_html = W.HTML()
        self.journal = W.HTML(
            f"Journal: <code>{_html.escape(campaign.journal_path.resolve())}</code>"
        )
        self.preview_button = W.Button(description="Preview (dry run)", icon="eye")
        self.confirm = W.Checkbox(
            value=False, description="I checked the preview: apply it", indent=False, disabled=True
        )
        self.apply_button = W.Button(
            description="Apply", button_style="danger", icon="play", disabled=True
        )
        self.preview_button.on_click(lambda _: self.preview())
        self.confirm.observe(lambda _: self._arm(), names="value")
        self.apply_button.on_click(lambda _: self.apply())
        self.children = [
            W.HTML("<b>Correction campaign</b>"),
            self.journal,
            self.problems_html,
            W.HBox([self.preview_button, self.confirm, self.apply_button]),
            W.HBox([self.progress, self.status]),
            self.preview_html,
            self.results_html,
            self.verify_html,
        ]
        self.validate()

    @_guarded
    def validate(self) -> pd.DataFrame:
        problems = self.campaign.validate()
        self.problems = problems
        if len(problems):
            self.problems_html.value = (
                f"<b style='color:#b00020'>{len(problems)} problem(s): nothing "
                "can be applied until the plan is fixed.</b>" + _table(problems)
            )
            self.preview_button.disabled = True
        else:
            self.problems_html.value = f"The plan's {len(self.campaign.plan)} row(s) are valid."
        return problems

    @_guarded
    def preview(self) -> pd.DataFrame:
        """Show what would be sent; nothing is sent."""
        preview = self.campaign.preview()
        self.preview_html.value = _table(preview)
        counts = preview["action"].str.split(":").str[0].value_counts().to_dict()
        to_apply = int(counts.get("apply", 0))
        self.confirm.description = f"I checked the preview: apply {to_apply} correction(s)"
        self.confirm.disabled = len(self.problems) > 0
        self._say(f"Dry run: {counts}. Nothing was sent.")
        return preview

    def _arm(self) -> None:
        self.apply_button.disabled = not (self.confirm.value and not self.confirm.disabled)

    @_guarded
    def apply(self) -> pd.DataFrame | None:
        """Apply the plan (only when confirmed), then verify it on the server; shows per-row
        results and the rows that differ from the plan. Returns the per-row results."""
        if not self.confirm.value or self.confirm.disabled:
            raise ValueError("preview the plan and tick the confirmation first")
        self.apply_button.disabled = True
        self._busy(True, total=len(self.campaign.plan))

        def progress(done: int, total: int) -> None:
            self.progress.max = max(total, 1)
            self.progress.value = done

        try:
            self.results = self.campaign.apply(progress=False, on_progress=progress)
        finally:
            self.confirm.value = False
        self.results_html.value = _table(self.results)
        self.verify_html.value = ""
        self.mismatches = self.campaign.verify()
        done = f"Done: {self.results['status'].value_counts().to_dict()}."
        if len(self.mismatches):
            self.verify_html.value = (
                f"<b style='color:#b00020'>{len(self.mismatches)} row(s) differ from the plan "
                "on the server:</b>" + _table(self.mismatches)
            )
            verdict = f"Verified: {len(self.mismatches)} row(s) differ from the plan."
        else:
            self.verify_html.value = "Verified: the server has every planned value."
            verdict = "Verified: the server has every planned value."
        self._say(
            f"{done} {verdict} Journal: {self.campaign.journal_path}",
            error=bool(len(self.mismatches)),
        )
        return self.results


class ReviewBench(_App):
    """Walk an auditor through a review plan's sampled work orders, task by task: the AI's
    value and verdict, the input photos of the task's group (when the server gives their
    http(s) URLs), and two choices: ``agree_button`` (recorded in the local review journal,
    as the API has no "agree" call) or ``correct_value`` + ``correct_button`` (sent through a
    journaled campaign, so each correction reaches the server exactly once, even when clicked
    twice or from a new bench over the same journals). After a choice the bench moves on to
    the next task; ``prev_button`` / ``next_button`` move by hand, ``next_open_button`` to the
    next task without a decision.

    ``client``: the :class:`~dfs_analytics.Client`; ``plan``: a plan from
    :func:`dfs.audit.review_sample` (or :func:`dfs.audit.load_plan`); ``journal``: the review
    journal (default: ``review-<plan fingerprint>.jsonl`` beside the client's dataset). The
    logic is :class:`~dfs_analytics.review.Review` (``bench.review``); ``bench.item`` is the
    task shown and ``bench.last_result`` the last correction's campaign row.
    """

    def __init__(self, client: Any, plan: pd.DataFrame, journal: Any = None):
        super().__init__()
        self.review = Review(client, plan, journal=journal)
        self.position = (0, 0)  # (work order index, task index)
        self.item: ReviewItem | None = None
        self.last_result: dict[str, Any] | None = None
        self.header = W.HTML()
        self.task_html = W.HTML()
        self.images_html = W.HTML()
        self.agree_button = W.Button(description="Agree", button_style="success", icon="check")
        self.correct_value = W.Dropdown(options=[], description="Correct to")
        self.correct_button = W.Button(description="Correct", button_style="warning", icon="edit")
        self.prev_button = W.Button(
            description="", icon="chevron-left", layout=W.Layout(width="40px")
        )
        self.next_button = W.Button(
            description="", icon="chevron-right", layout=W.Layout(width="40px")
        )
        self.next_open_button = W.Button(description="Next undecided", icon="forward")
        self.agree_button.on_click(lambda _: self.agree())
        self.correct_button.on_click(lambda _: self.correct())
        self.prev_button.on_click(lambda _: self.step(-1))
        self.next_button.on_click(lambda _: self.step(+1))
        self.next_open_button.on_click(lambda _: self.next_open())
        self.children = [
            W.HTML("<b>Review</b>"),
            W.HTML(f"Journal: <code>{_html.escape(self.review.journal_path.resolve())}</code>"),
            self.header,
            W.HBox([self.prev_button, self.next_button, self.next_open_button]),
            self.task_html,
            self.images_html,
            W.HBox([self.agree_button, self.correct_value, self.correct_button]),
            W.HBox([self.progress, self.status]),
        ]
        self.show(0, 0)

    @_guarded
    def show(self, work_order: int, task: int) -> None:
        """Show task ``task`` of the plan's work order number ``work_order`` (0-based)."""
        ids = self.review.work_order_ids
        work_order = min(max(work_order, 0), len(ids) - 1)
        items = self.review.items(ids[work_order])
        task = min(max(task, 0), max(len(items) - 1, 0))
        self.position = (work_order, task)
        self.item = items[task] if items else None
        decided = sum(i.decision is not None for i in items)
        self.header.value = (
            f"Work order {work_order + 1} of {len(ids)}: "
            f"<b>{_html.escape(self._name(ids[work_order], items))}</b> — task "
            f"{task + 1 if items else 0} of {len(items)}, {decided} decided"
        )
        item = self.item
        for control in (self.agree_button, self.correct_button, self.correct_value):
            control.disabled = item is None
        if item is None:
            self.task_html.value = "<i>this work order has no analysed task</i>"
            self.images_html.value = ""
            self.correct_value.options = []
            return
        color = _html.color_style(item.color) or ""
        decision = (
            "not decided yet"
            if item.decision is None
            else "agreed"
            if item.decision == "agreed"
            else f"corrected to {item.decided_value!r}"
        )
        self.task_html.value = (
            "<table class='dfs-t'>"
            + "".join(
                f"<tr><th>{_html.escape(k)}</th><td{s}>{_html.escape(v)}</td></tr>"
                for k, v, s in (
                    ("task", f"{item.task_name} ({item.task_group_name})", ""),
                    ("AI value", repr(item.analyzed_value), ""),
                    ("AI verdict", item.ai_message, ""),
                    ("on the server", item.message, f' style="{_html.escape(color)}"'),
                    ("corrected on the server", _html.cell_text(item.corrected_value), ""),
                    ("your decision", decision, ""),
                )
            )
            + "</table>"
        )
        self.images_html.value = (
            "".join(
                f'<img src="{_html.escape(url)}" alt="{_html.escape(item.task_group_name)}" '
                'style="max-width:320px;max-height:240px;margin:4px">'
                for url in item.images
            )
            or "<i>no photo URL from the server</i>"
        )
        self.correct_value.options = [
            (f"{sentence} ({value!r})" if sentence else repr(value), value)
            for value, sentence in item.choices
        ]

    @staticmethod
    def _name(work_order_id: str, items: list[ReviewItem]) -> str:
        name = items[0].work_order_name if items else None
        return f"{name} ({work_order_id})" if name else work_order_id

    @_guarded
    def step(self, delta: int) -> None:
        """Move ``delta`` tasks forward (or back), across work orders."""
        wo, task = self.position
        ids = self.review.work_order_ids
        task += delta
        while 0 <= wo < len(ids):
            count = len(self.review.items(ids[wo]))
            if 0 <= task < count:
                self.show(wo, task)
                return
            if task < 0:
                wo -= 1
                if wo >= 0:
                    task += len(self.review.items(ids[wo]))
            else:
                task -= count
                wo += 1
        self._say("That is the end of the plan." if delta > 0 else "That is its first task.")

    @_guarded
    def next_open(self) -> None:
        """Show the next task without a decision (from the one shown, wrapping around)."""
        ids = self.review.work_order_ids
        start_wo, start_task = self.position
        for offset in range(len(ids) + 1):
            wo = (start_wo + offset) % len(ids)
            for task, item in enumerate(self.review.items(ids[wo])):
                if offset == 0 and task <= start_task and len(ids) > 1:
                    continue
                if item.decision is None:
                    self.show(wo, task)
                    return
        self._say("Every task of the plan has a decision.")

    @_guarded
    def agree(self) -> bool:
        """Agree with the AI on the task shown (review journal), then move on."""
        if self.item is None:
            raise ValueError("there is no task to agree with")
        item = self.item
        new = self.review.agree(item.work_order_id, item.task_id)
        self.step(+1)
        self._say(f"Agreed on {item.task_name}." if new else f"{item.task_name}: already agreed.")
        return new

    @_guarded
    def correct(self) -> dict[str, Any] | None:
        """Correct the task shown to the chosen value (journaled campaign), then move on."""
        if self.item is None:
            raise ValueError("there is no task to correct")
        if not self.correct_value.options:
            raise ValueError("this task names no value to choose")
        item = self.item
        self._busy(True)
        result = self.review.correct(item.work_order_id, item.task_id, self.correct_value.value)
        self.last_result = result
        wo, task = self.position
        self.show(wo, task)
        if result["status"] in ("failed", "in doubt"):
            self._say(
                f"{item.task_name}: {result['status']} ({result.get('detail')}); "
                f"journal {result['journal']}",
                error=True,
            )
            return result
        self.step(+1)
        self._say(f"{item.task_name} corrected to {result['value']!r}: {result['status']}.")
        return result
