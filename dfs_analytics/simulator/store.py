"""The simulator's in-memory state: work orders (:mod:`.work_order`), their task states and
timelines, and indexes.

Everything is kept in plain Python objects behind one lock. List queries are answered from
sorted indexes (``create_date`` and ``update_date``) and inverted indexes (name, tag, field
engineer, reviewed); the id list of a query is cached until the next write, so walking the pages
of one listing costs one index lookup plus a slice per page. A state's verdict is that of its
effective value (:func:`dfs_analytics.rules.effective`) by the task's rules
(:meth:`.apps.TaskDef.verdict`).

This module never validates what it is given (the routes check values first) and never
speaks HTTP.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..rules import effective
from .apps import App, TaskDef
from .work_order import UTC, WorkOrder, dumps, fmt_date, now

__all__ = ["UTC", "Query", "Store", "WorkOrder", "dumps", "fmt_date", "now"]


@dataclass(frozen=True)
class Query:
    """A normalised work-order list query (see CONTRACT.md, ``GET work-orders/``)."""

    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    reviewed: bool | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    field_engineer_email: str | None = None
    ordering: str = "create_date"


class Store:
    """Work orders with their indexes; every public method takes the lock."""

    def __init__(self, app: App, site_id: str):
        self.app = app
        self.site_id = site_id
        self.settings: Any = None  # the SeedSettings the data was generated with
        self.lock = threading.RLock()
        self.work_orders: dict[str, WorkOrder] = {}
        self._by_create: list[tuple[datetime, str]] = []
        self._by_update: list[tuple[datetime, str]] = []
        self._by_name: dict[str, set[str]] = {}
        self._by_tag: dict[str, set[str]] = {}
        self._by_engineer: dict[str, set[str]] = {}
        self._reviewed: set[str] = set()
        self._version = 0
        self._query_cache: OrderedDict[Query, tuple[int, list[str]]] = OrderedDict()
        self.correction_calls: Counter[tuple[str, str, str]] = Counter()  # (wo, task, kind)
        self.task_groups_by_id = {g.id: (v, g) for v in app.versions for g in v.groups}
        self.tasks_by_id = {t.id: t for v in app.versions for t in v.tasks_by_id.values()}

    # -- indexes --------------------------------------------------------------------------

    def bulk_load(self, work_orders: list[WorkOrder]) -> None:
        """Add many work orders at once (used by the generator); builds the indexes in one go."""
        with self.lock:
            for wo in work_orders:
                self.work_orders[wo.id] = wo
                self._index_attrs(wo)
            self._by_create = sorted((w.create_date, w.id) for w in self.work_orders.values())
            self._by_update = sorted((w.update_date, w.id) for w in self.work_orders.values())
            self._changed()

    def _index_attrs(self, wo: WorkOrder) -> None:
        self._by_name.setdefault(wo.name, set()).add(wo.id)
        for tag in set(wo.tags):
            self._by_tag.setdefault(tag, set()).add(wo.id)
        if wo.field_engineer_email:
            self._by_engineer.setdefault(wo.field_engineer_email, set()).add(wo.id)
        if wo.review_date is not None:
            self._reviewed.add(wo.id)

    def _unindex_attrs(self, wo_id: str, name: str, tags: list[str], email: str | None) -> None:
        self._by_name.get(name, set()).discard(wo_id)
        for tag in set(tags):
            self._by_tag.get(tag, set()).discard(wo_id)
        if email:
            self._by_engineer.get(email, set()).discard(wo_id)

    @staticmethod
    def _remove_sorted(seq: list[tuple[datetime, str]], key: tuple[datetime, str]) -> None:
        i = bisect.bisect_left(seq, key)
        if i < len(seq) and seq[i] == key:
            del seq[i]

    def _changed(self) -> None:
        self._version += 1

    def add(self, wo: WorkOrder) -> None:
        with self.lock:
            self.work_orders[wo.id] = wo
            self._index_attrs(wo)
            bisect.insort(self._by_create, (wo.create_date, wo.id))
            bisect.insort(self._by_update, (wo.update_date, wo.id))
            self._changed()

    def remove(self, wo: WorkOrder) -> None:
        with self.lock:
            self._unindex_attrs(wo.id, wo.name, wo.tags, wo.field_engineer_email)
            self._reviewed.discard(wo.id)
            self._remove_sorted(self._by_create, (wo.create_date, wo.id))
            self._remove_sorted(self._by_update, (wo.update_date, wo.id))
            del self.work_orders[wo.id]
            self._changed()

    def touch(self, wo: WorkOrder, when: datetime) -> None:
        """Record that ``wo`` changed at ``when``: moves it in the update index, drops caches."""
        with self.lock:
            when = max(when, wo.update_date)
            self._remove_sorted(self._by_update, (wo.update_date, wo.id))
            wo.update_date = when
            bisect.insort(self._by_update, (wo.update_date, wo.id))
            wo._json = {}
            self._changed()

    def mark_reviewed(self, wo: WorkOrder, when: datetime, *, user: str | None = None) -> None:
        """Record ``wo``'s review at ``when``: its ``review_date``, the ``review`` event, the
        reviewed index and the update index."""
        with self.lock:
            wo.review_date = when
            wo.events.append(self.event(when, "review", user=user))
            self._reviewed.add(wo.id)
            self.touch(wo, when)

    def reindex(self, wo: WorkOrder, before: dict[str, Any]) -> None:
        """Refresh the attribute indexes after name, tags or engineer changed (``before``)."""
        with self.lock:
            self._unindex_attrs(
                wo.id, before["name"], before["tags"], before["field_engineer_email"]
            )
            self._index_attrs(wo)
            self._changed()

    # -- queries --------------------------------------------------------------------------

    def query(self, q: Query) -> list[str]:
        """Ids of the work orders matching ``q``, in its order (``create_date`` then id ...)."""
        with self.lock:
            hit = self._query_cache.get(q)
            if hit is not None and hit[0] == self._version:
                self._query_cache.move_to_end(q)
                return hit[1]
            ids = self._run_query(q)
            self._query_cache[q] = (self._version, ids)
            if len(self._query_cache) > 64:
                self._query_cache.popitem(last=False)
            return ids

    def _run_query(self, q: Query) -> list[str]:
        by_update = q.ordering.lstrip("-") == "update_date"
        seq = self._by_update if by_update else self._by_create
        lo_d, hi_d = (
            (q.updated_after, q.updated_before)
            if by_update
            else (q.created_after, q.created_before)
        )
        lo = bisect.bisect_left(seq, (lo_d, "")) if lo_d else 0
        hi = bisect.bisect_left(seq, (hi_d, "")) if hi_d else len(seq)
        # filters answered by inverted indexes
        sets: list[set[str]] = []
        if q.name is not None:
            sets.append(self._by_name.get(q.name, set()))
        for tag in q.tags:
            sets.append(self._by_tag.get(tag, set()))
        if q.field_engineer_email is not None:
            sets.append(self._by_engineer.get(q.field_engineer_email, set()))
        if q.reviewed is True:
            sets.append(self._reviewed)
        # the date range on the other date, checked per candidate
        other_lo, other_hi = (
            (q.created_after, q.created_before)
            if by_update
            else (q.updated_after, q.updated_before)
        )
        other_attr = "create_date" if by_update else "update_date"

        def keep(wo_id: str) -> bool:
            if q.reviewed is False and wo_id in self._reviewed:
                return False
            if other_lo is not None or other_hi is not None:
                d = getattr(self.work_orders[wo_id], other_attr)
                if other_lo is not None and d < other_lo:
                    return False
                if other_hi is not None and d >= other_hi:
                    return False
            return True

        if sets:
            sets.sort(key=len)
            cand = set(sets[0]).intersection(*sets[1:])
            if len(cand) < hi - lo:
                # few candidates: sort them by the ordering key instead of walking the range
                key_attr = "update_date" if by_update else "create_date"
                rows = []
                for wo_id in cand:
                    d = getattr(self.work_orders[wo_id], key_attr)
                    if (lo_d is None or d >= lo_d) and (hi_d is None or d < hi_d) and keep(wo_id):
                        rows.append((d, wo_id))
                rows.sort()
                ids = [i for _, i in rows]
            else:
                ids = [i for _, i in seq[lo:hi] if i in cand and keep(i)]
        else:
            ids = [i for _, i in seq[lo:hi] if keep(i)]
        if q.ordering.startswith("-"):
            ids.reverse()
        return ids

    # -- task states ----------------------------------------------------------------------

    @staticmethod
    def make_state(
        task: TaskDef,
        analyzed: Any,
        corrected: Any,
        analysis_id: str | None,
        when: datetime,
    ) -> dict[str, Any]:
        """A task state; its verdict is that of its effective value (:func:`rules.effective`)."""
        state: dict[str, Any] = {
            "analyzed_value": analyzed,
            "corrected_value": corrected,
            "message": None,
            "is_conform": None,
            "analysis_id": analysis_id,
            "update_date": fmt_date(when),
        }
        state["message"], state["is_conform"] = task.verdict(effective(state))
        return state

    @staticmethod
    def event(
        when: datetime,
        type_: str,
        *,
        event_id: str | None = None,
        user: str | None = None,
        analysis_id: str | None = None,
        task_group_name: str | None = None,
        states: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": event_id or str(uuid.uuid4()),
            "date": fmt_date(when),
            "type": type_,
            "user": user,
            "analysis_id": analysis_id,
            "task_group_name": task_group_name,
            "states": states or [],
        }

    @staticmethod
    def event_state(task: TaskDef, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "task_id": task.id,
            "task_name": task.name,
            "analyzed_value": state["analyzed_value"],
            "corrected_value": state["corrected_value"],
            "message": state["message"],
            "is_conform": state["is_conform"],
        }

    def apply_analysis(
        self,
        wo: WorkOrder,
        group_name: str,
        values: dict[str, Any],
        *,
        when: datetime,
        analysis_id: str,
        user: str | None = None,
        event_id: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """Apply AI ``values`` (task name -> value) of one analysis of ``group_name``.

        Implements the data-conformity and aggregation rules of CONTRACT.md. Returns
        ``(changed task names, conformity messages)`` and appends the ``analysis`` event.
        Does not touch indexes (callers do, once).
        """
        group = wo.app_version.groups_by_name[group_name]
        changed: list[dict[str, Any]] = []
        messages: list[str] = []
        failed = False
        for task in group.quality_tasks:
            if task.name in values and not task.conform(values[task.name]):
                failed = True
                sentence = task.verdict(values[task.name])[0]
                messages.append(f"{task.public['sentence']}: {sentence or 'not conform'}")
        for task in group.tasks:
            if task.name not in values or (failed and not task.is_quality):
                continue
            new = values[task.name]
            old = wo.states.get(task.id)
            if old is not None:
                if (
                    old["corrected_value"] is None
                    and old["is_conform"] is True
                    and not task.conform(new)
                ):
                    continue  # a conform verdict sticks until a correction says otherwise
                same = old["analyzed_value"] == new and type(old["analyzed_value"]) is type(new)
                if same:
                    continue  # nothing changes: the state keeps its analysis id and date
                corrected = old["corrected_value"]
            else:
                corrected = None
            state = self.make_state(task, new, corrected, analysis_id, when)
            wo.states[task.id] = state
            changed.append(self.event_state(task, state))
        if wo.first_analysis_id is None:
            wo.first_analysis_id = analysis_id
        wo.latest_analysis_id = analysis_id
        wo.events.append(
            self.event(
                when,
                "analysis",
                event_id=event_id,
                user=user,
                analysis_id=analysis_id,
                task_group_name=group_name,
                states=changed,
            )
        )
        wo.compute_progress()
        return [s["task_name"] for s in changed], messages

    def apply_correction(
        self,
        wo: WorkOrder,
        task: TaskDef,
        value: Any,
        *,
        when: datetime,
        user: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Set a human correction (value already checked) and append its ``correction`` event."""
        old = wo.states[task.id]
        state = self.make_state(task, old["analyzed_value"], value, old["analysis_id"], when)
        wo.states[task.id] = state
        wo.events.append(
            self.event(
                when,
                "correction",
                event_id=event_id,
                user=user,
                task_group_name=task.group_name,
                states=[self.event_state(task, state)],
            )
        )
        wo.compute_progress()
        return state
