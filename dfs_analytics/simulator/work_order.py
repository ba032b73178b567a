"""One work order of the simulator and how it is written as JSON (list item, detail, full),
with the date and JSON encodings every answer uses.

A :class:`WorkOrder` is plain data plus cached serialised forms; :class:`~.store.Store` owns
and indexes work orders, and whoever changes one holds the store's lock and tells the store
(``touch``, ``reindex``). This module never takes a lock and never judges a value: the states
it is given carry their verdicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .apps import AppVersion, TaskDef

UTC = timezone.utc


def fmt_date(d: datetime | None) -> str | None:
    """ISO-8601 UTC with ``Z``; the fraction is left out when it is zero."""
    if d is None:
        return None
    d = d.astimezone(UTC)
    if d.microsecond:
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as every answer is written."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class PotentialReview:
    """What a review of one generated work order would do, drawn when the data is generated.

    ``tasks`` maps the id of each analysed task to ``(ai_value, corrected_value)``: the AI's
    value when the data was generated, and the value the reviewer would enter (``None`` when
    the reviewer agrees and enters nothing; the AI's own value when they re-enter it).
    ``reviewed_at_start`` is True for a work order the generated data already shows reviewed:
    its corrections are this potential review.
    """

    reviewer: str
    tasks: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reviewed_at_start: bool = False


class WorkOrder:
    """One work order. ``states`` maps task id to state (None before the first analysis)."""

    __slots__ = (
        "_json",
        "app_version",
        "create_date",
        "events",
        "field_engineer_email",
        "field_engineer_name",
        "first_analysis_id",
        "id",
        "inputs",
        "latest_analysis_id",
        "metadata",
        "name",
        "photo_factor",
        "potential_review",
        "progress_score",
        "review_date",
        "site_id",
        "states",
        "tags",
        "truth",
        "types",
        "update_date",
    )

    def __init__(
        self, *, id: str, name: str, site_id: str, app_version: AppVersion, create_date: datetime
    ):
        self.id = id
        self.site_id = site_id
        self.name = name
        self.app_version = app_version
        self.create_date = create_date
        self.update_date = create_date
        self.review_date: datetime | None = None
        self.first_analysis_id: str | None = None
        self.latest_analysis_id: str | None = None
        self.metadata: dict[str, Any] = {}
        self.tags: list[str] = []
        self.types: list[str] = []
        self.field_engineer_email: str | None = None
        self.field_engineer_name: str | None = None
        self.states: dict[str, dict[str, Any]] = {}
        self.inputs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.truth: dict[str, Any] = {}
        # the review model (generated work orders only): what a reviewer would correct, and
        # the factor of the AI's error rates on this work order's photos (1: no clustering)
        self.potential_review: PotentialReview | None = None
        self.photo_factor = 1.0
        self.progress_score = 0
        self._json: dict[str, bytes] = {}  # serialised forms, dropped on every change

    # -- derived --------------------------------------------------------------------------

    def active_tasks(self) -> list[TaskDef]:
        return [t for g in self.app_version.active_groups(self.types) for t in g.tasks]

    def compute_progress(self) -> None:
        counted = [t for t in self.active_tasks() if t.conformity_status]
        if not counted:
            self.progress_score = 0
            return
        ok = sum(1 for t in counted if (self.states.get(t.id) or {}).get("is_conform") is True)
        # round half up of 100 * ok / total, in integers
        self.progress_score = (200 * ok + len(counted)) // (2 * len(counted))

    # -- serialisation --------------------------------------------------------------------

    def _task_obj(self, t: TaskDef) -> dict[str, Any]:
        obj = dict(t.public)
        obj["task_group_id"] = t.group_id
        obj["task_group_name"] = t.group_name
        obj["state"] = self.states.get(t.id)
        return obj

    def to_dict(self, *, inputs: bool, task_groups: bool) -> dict[str, Any]:
        groups = self.app_version.active_groups(self.types)
        tasks = [self._task_obj(t) for g in groups for t in g.tasks]
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "site_id": self.site_id,
            "app_version_id": self.app_version.id,
            "create_date": fmt_date(self.create_date),
            "update_date": fmt_date(self.update_date),
            "review_date": fmt_date(self.review_date),
            "first_analysis_id": self.first_analysis_id,
            "latest_analysis_id": self.latest_analysis_id,
            "progress_score": self.progress_score,
            "metadata": self.metadata,
            "tags": self.tags,
            "types": self.types,
            "field_engineer_email": self.field_engineer_email,
            "field_engineer_name": self.field_engineer_name,
        }
        if task_groups:
            by_group: dict[str, list[dict[str, Any]]] = {}
            for obj in tasks:
                by_group.setdefault(obj["task_group_id"], []).append(obj)
            out["task_groups"] = [dict(g.public, tasks=by_group.get(g.id, [])) for g in groups]
        out["tasks"] = tasks
        if inputs:
            out["inputs"] = [
                {k: v for k, v in i.items() if not k.startswith("_")} for i in self.inputs
            ]
        return out

    def list_json(self) -> bytes:
        """The work order as it appears in a list page (no inputs, no task groups), cached."""
        return self.json("list")

    def json(self, form: str) -> bytes:
        """The work order serialised as a list item (``list``), or as retrieve answers it
        without (``detail``) or with (``full``) its inputs; cached until it changes."""
        cached = self._json.get(form)
        if cached is None:
            cached = self._json[form] = dumps(
                self.to_dict(inputs=form == "full", task_groups=form != "list")
            )
        return cached
