"""The widgets, driven headlessly (``.value = ...``, ``.click()``) against the simulator."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import widget_views, widgets

pytestmark = pytest.mark.sim(work_orders=120, seed=11)


def _task_option(explorer: widgets.Explorer, name: str) -> str:
    return next(v for label, v in explorer.correct_task.options if label.startswith(name + " "))


def _flip_plan(client: dfs.Client, n: int) -> pd.DataFrame:
    """A campaign plan that flips ``cables_ranges`` on the first ``n`` work orders analysed."""
    tasks = dfs.load_tasks(client)
    picked = tasks[(tasks["task_name"] == "cables_ranges") & tasks["analyzed"]].head(n)
    return pd.DataFrame(
        {
            "work_order_id": picked["work_order_id"].astype(str),
            "task_name": "cables_ranges",
            "corrected_value": [not bool(v) for v in picked["value"]],
        }
    )


def test_explorer_filters_pages_and_views(client) -> None:
    explorer = widgets.Explorer(client, page_size=10)
    assert explorer.last_error is None
    tasks = explorer.tasks
    assert len(tasks) == len(dfs.load_tasks(client))
    assert explorer.page_label.value.endswith(f"({len(tasks)} rows)")

    explorer.task.value = "cables_ranges"
    assert set(explorer.filtered["task_name"].astype(str)) == {"cables_ranges"}
    explorer.overridden.value = True
    assert explorer.filtered["is_overridden"].all()
    n = len(explorer.filtered)
    assert f"({n} rows)" in explorer.page_label.value

    explorer.overridden.value = None
    explorer.verdict.value = "Non conforme"
    assert set(explorer.filtered["message"].astype(str)) == {"Non conforme"}
    explorer.verdict.value = "(any)"
    explorer.task.value = "(any)"

    explorer.view.value = "work orders"
    rows = explorer.rows()
    assert len(rows) == explorer.filtered["work_order_id"].nunique()
    assert {"tasks", "overridden"} <= set(rows.columns)

    pages = -(-len(rows) // 10)
    explorer.next_button.click()
    assert explorer.page_label.value.startswith(f"page 2 of {pages}")
    explorer.prev_button.click()
    explorer.prev_button.click()  # not before the first page
    assert explorer.page_label.value.startswith(f"page 1 of {pages}")


def test_explorer_server_filters_reload(client, sim) -> None:
    explorer = widgets.Explorer(client)
    explorer.reviewed.value = True
    explorer.created_after.value = dt.date(2026, 3, 1)
    explorer.load_button.click()
    assert explorer.last_error is None
    assert explorer.tasks["reviewed"].all()
    assert (explorer.tasks["create_date"] >= pd.Timestamp("2026-03-01", tz="UTC")).all()


def test_explorer_detail_correct_and_refresh(client, sim) -> None:
    explorer = widgets.Explorer(client)
    tasks = explorer.tasks
    row = tasks[(tasks["task_name"] == "cables_ranges") & tasks["analyzed"]].iloc[0]
    explorer.work_order.value = row["work_order_id"]  # choosing a work order opens it
    assert explorer.last_error is None
    assert explorer.detail["work_order"]["id"] == row["work_order_id"]
    assert "cables_ranges" in explorer.detail_html.value
    assert "border-left:4px solid #" in explorer.detail_html.value  # verdicts in rule colours
    assert "created" in explorer.timeline_html.value

    explorer.correct_task.value = _task_option(explorer, "cables_ranges")
    labels = [label for label, _ in explorer.correct_value.options]
    assert labels == ["Conforme (True)", "Non conforme (False)"]
    new = not bool(row["value"])
    explorer.correct_value.value = new
    explorer.correct_button.click()
    assert explorer.last_error is None, explorer.status.value
    assert "Corrected cables_ranges" in explorer.status.value
    assert sim.correction_counts() == {(row["work_order_id"], row["task_id"]): 1}
    # the detail view was read again from the server
    after = explorer.detail["tasks"].set_index("task_name").loc["cables_ranges"]
    assert after["corrected_value"] is new
    # and loads see it too
    fresh = dfs.load_tasks(client).set_index(["work_order_id", "task_name"])
    assert fresh.loc[(row["work_order_id"], "cables_ranges"), "corrected_value"] is new


def test_explorer_shows_errors_inside_and_sends_nothing(client, sim) -> None:
    explorer = widgets.Explorer(client)
    explorer.correct_button.click()  # nothing open yet
    assert explorer.last_error is not None
    assert "open a work order" in explorer.status.value

    row = explorer.tasks[explorer.tasks["analyzed"]].iloc[0]
    explorer.show_work_order(row["work_order_id"])
    explorer.correct_task.value = _task_option(explorer, str(row["task_name"]))
    explorer.correct_text.value = "not a value of any task"
    explorer.correct_button.click()
    assert isinstance(explorer.last_error, dfs.InvalidCorrectionError)
    assert "color:#b00020" in explorer.status.value
    assert sim.correction_counts() == {}

    explorer.show_work_order("no-such-work-order")
    assert isinstance(explorer.last_error, dfs.NotFoundError)


def test_explorer_reanalyze_and_upload(client, sim) -> None:
    explorer = widgets.Explorer(client)
    wo_id = explorer.tasks.loc[explorer.tasks["analyzed"], "work_order_id"].iloc[0]
    explorer.show_work_order(wo_id)
    assert explorer.analyze_groups.options  # groups with stored inputs
    explorer.analyze_groups.value = (explorer.analyze_groups.options[0],)
    before = sim.request_counts().get("POST /v0.2/work-orders/{wo_id}/analyze/", 0)
    explorer.reanalyze_button.click()
    assert explorer.last_error is None, explorer.status.value
    assert "Re-ran the AI" in explorer.status.value
    assert sim.request_counts()["POST /v0.2/work-orders/{wo_id}/analyze/"] == before + 1

    explorer.upload_group.value = "pb-ouvert-apres"
    content = b"\x89PNG\r\n\x1a\n dfs-sim:pb_ouvert_apres_quality=true dfs-sim:cables_ranges=true"
    explorer.upload.value = (
        {
            "name": "p.png",
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": dt.datetime.now(),
        },
    )
    explorer.analyze_button.click()
    assert explorer.last_error is None, explorer.status.value
    assert "Analysed p.png" in explorer.status.value
    states = explorer.detail["tasks"].set_index("task_name")
    assert states.loc["pb_ouvert_apres_quality", "analyzed_value"] is True


def test_campaign_panel_needs_preview_and_confirmation(client, sim, tmp_path: Path) -> None:
    plan = _flip_plan(client, 4)
    panel = widgets.CampaignPanel(dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl"))
    assert "4 row(s) are valid" in panel.problems_html.value
    assert panel.apply_button.disabled and panel.confirm.disabled

    panel.apply()  # not confirmed: refused, nothing sent
    assert panel.last_error is not None and sim.correction_counts() == {}

    panel.preview_button.click()
    assert "apply 4 correction(s)" in panel.confirm.description
    assert not panel.confirm.disabled and panel.apply_button.disabled
    panel.confirm.value = True
    assert not panel.apply_button.disabled
    panel.apply_button.click()
    assert panel.last_error is None, panel.status.value
    assert list(panel.results["status"]) == ["applied"] * 4
    assert panel.progress.value == 4
    assert panel.confirm.value is False and panel.apply_button.disabled  # one click, one run
    assert sorted(sim.correction_counts().values()) == [1, 1, 1, 1]
    assert str((tmp_path / "j.jsonl").resolve()) in panel.journal.value
    # verified on the server after applying
    assert panel.mismatches is not None and panel.mismatches.empty
    assert "Verified: the server has every planned value" in panel.status.value
    assert "every planned value" in panel.verify_html.value


def test_campaign_panel_shows_what_differs_after_applying(client, sim, tmp_path: Path) -> None:
    plan = _flip_plan(client, 3)
    panel = widgets.CampaignPanel(dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl"))
    panel.preview_button.click()
    gone = str(plan["work_order_id"].iloc[1])
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as other:
        other.delete_work_order(gone)  # by someone else, between the preview and the run
    panel.confirm.value = True
    panel.apply_button.click()
    assert panel.last_error is None, panel.status.value
    assert list(panel.results["status"]) == ["applied", "failed", "applied"]
    assert list(panel.mismatches["work_order_id"]) == [gone]
    assert "1 row(s) differ from the plan" in panel.status.value
    assert "color:#b00020" in panel.status.value
    assert gone in panel.verify_html.value


def test_campaign_panel_with_problems_cannot_apply(client, sim, tmp_path: Path) -> None:
    plan = pd.DataFrame(
        {"work_order_id": ["nope"], "task_name": ["cables_ranges"], "corrected_value": ["true"]}
    )
    panel = widgets.CampaignPanel(dfs.Campaign(client, plan, journal=tmp_path / "j.jsonl"))
    assert "1 problem(s)" in panel.problems_html.value
    assert panel.preview_button.disabled and panel.confirm.disabled and panel.apply_button.disabled
    panel.confirm.value = True
    assert panel.apply_button.disabled
    panel.apply()
    assert panel.last_error is not None and sim.correction_counts() == {}


def test_work_order_detail_read_model(client, sim) -> None:
    tasks = dfs.load_tasks(client)
    row = tasks[(tasks["task_name"] == "cables_ranges") & tasks["analyzed"]].iloc[0]
    detail = widget_views.describe(client, row["work_order_id"])
    assert detail["work_order"]["id"] == row["work_order_id"]
    frame = detail["tasks"]
    assert list(frame.columns) == widget_views.DETAIL_COLUMNS
    assert len(frame) == len(tasks[tasks["work_order_id"] == row["work_order_id"]])
    cables = frame.set_index("task_name").loc["cables_ranges"]
    assert cables["value"] is bool(row["value"])
    assert cables["color"].startswith("#")  # the colour of the verdict's rule
    assert [value for value, _ in cables["choices"]] == [True, False]
    assert set(detail["timeline"]["work_order_id"]) == {row["work_order_id"]}
    assert detail["inputs"]  # analysed: its inputs come along


def test_task_and_work_order_rows(client) -> None:
    tasks = dfs.load_tasks(client)
    assert list(widget_views.task_rows(tasks).columns) == widget_views.TASK_COLUMNS
    per_wo = widget_views.work_order_rows(tasks).set_index("work_order_id")
    assert len(per_wo) == tasks["work_order_id"].nunique()
    assert per_wo["tasks"].sum() == len(tasks)
    assert per_wo["overridden"].sum() == tasks["is_overridden"].sum()
    # in order of first appearance
    assert list(per_wo.index) == list(dict.fromkeys(tasks["work_order_id"]))


def _package_imports(module: str) -> set[str]:
    """The package's modules that ``dfs_analytics/<module>.py`` imports, at any level."""
    path = Path(dfs.__file__).with_name(f"{module}.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import / from . import x
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top, _, rest = node.module.partition(".")
            if top == "dfs_analytics":  # from dfs_analytics(.x) import ...
                found.update([rest.split(".")[0]] if rest else (a.name for a in node.names))
        elif isinstance(node, ast.Import):  # import dfs_analytics.x
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == "dfs_analytics":
                    found.add(rest.split(".")[0] or "dfs_analytics")
    return found


def test_widgets_use_only_the_modules_that_act_and_read() -> None:
    allowed = {"actions", "campaign", "review", "loaders", "audit", "plots", "widget_views"}
    allowed.add("_html")
    assert _package_imports("widgets") <= allowed
    assert "loaders" not in _package_imports("actions")  # actions write; views read
