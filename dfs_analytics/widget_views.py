"""What the widgets show, as plain frames: one work order in detail, tasks or work-order rows.

These read models belong to :mod:`~dfs_analytics.widgets` and are kept apart from the ipywidgets
code so they can be read and tested without a notebook. :func:`describe` reads one work order
through the client and its timeline through :mod:`~dfs_analytics.loaders`; :func:`task_rows`
and :func:`work_order_rows` only reshape a loaded tasks frame.

It never writes (corrections and analyses are :mod:`~dfs_analytics.actions`', a review's
agreements and corrections :mod:`~dfs_analytics.review`'s), never renders HTML, and never
decides a value or a verdict, or reads a task's state, itself (:mod:`~dfs_analytics.rules`
and :func:`~dfs_analytics.normalize.task_row` do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .loaders import load_timeline
from .normalize import TASK_ROW_COLUMNS, task_row
from .rules import matching_rule
from .tasks import allowed_values

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "DETAIL_COLUMNS",
    "TASK_COLUMNS",
    "describe",
    "task_rows",
    "work_order_rows",
]

DETAIL_COLUMNS = [
    *(name for name in TASK_ROW_COLUMNS if name != "work_order_id"),  # a task state as a row
    "color",
    "choices",
]
"""The columns of :func:`describe`'s tasks frame."""

TASK_COLUMNS = [
    "work_order_name",
    "work_order_id",
    "task_group_name",
    "task_name",
    "analyzed_value",
    "corrected_value",
    "message",
    "reviewed",
    "field_engineer_email",
    "create_date",
]
"""The columns of :func:`task_rows`."""


def describe(client: Client, work_order_id: str) -> dict[str, Any]:
    """One work order in detail, for a detail view.

    Returns ``{"work_order": dict, "tasks": DataFrame, "timeline": DataFrame, "inputs": list}``
    where the tasks frame has, per task, the columns :data:`DETAIL_COLUMNS`:
    ``task_group_name, task_id, task_name, outcome_type, analyzed_value, corrected_value,
    value, message, is_conform``, ``color`` (the colour of the verdict's rule) and ``choices``
    (the ``(value, sentence)`` pairs its rules name, for a correction dropdown). Raises what
    the client raises (e.g. NotFoundError for an unknown work order).
    """
    work_order = client.get_work_order(work_order_id, include_inputs=True)
    rows = []
    for task in work_order.get("tasks") or ():
        row = task_row(work_order_id, task)
        rule = (
            matching_rule(task.get("outcome_validation"), row["value"])
            if task.get("state")
            else None
        )
        row.update(color=(rule or {}).get("color"), choices=allowed_values(task))
        rows.append(row)
    return {
        "work_order": work_order,
        "tasks": pd.DataFrame(rows, columns=DETAIL_COLUMNS),
        "timeline": load_timeline(client, [work_order_id], progress=False),
        "inputs": list(work_order.get("inputs") or []),
    }


def task_rows(tasks: pd.DataFrame) -> pd.DataFrame:
    """The tasks table of a tasks frame: its :data:`TASK_COLUMNS`, one row per task."""
    return tasks[TASK_COLUMNS]


def work_order_rows(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per work order of a tasks frame, in order of first appearance:
    ``work_order_id, work_order_name, field_engineer_email, create_date, reviewed``, ``tasks``
    (how many) and ``overridden`` (how many of them a human changed)."""
    grouped = tasks.groupby("work_order_id", observed=True, sort=False)
    return pd.DataFrame(
        {
            "work_order_name": grouped["work_order_name"].first(),
            "field_engineer_email": grouped["field_engineer_email"].first(),
            "create_date": grouped["create_date"].first(),
            "reviewed": grouped["reviewed"].first(),
            "tasks": grouped.size(),
            "overridden": grouped["is_overridden"].sum(),
        }
    ).reset_index()
