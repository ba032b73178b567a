"""The review model: what a review of each generated work order would correct, the site-wide
figures a review of every work order would give (:func:`full_review_figures`), and reviews on
demand (:func:`review_now`, ``POST /_sim/review``).

Also here, the two optional modes' draws: who gets reviewed when the AI's verdicts steer the
review queue (:func:`selection_probabilities`), and each work order's photo quality when the
AI's errors cluster by work order (:func:`photo_factor`). See ``docs/simulator.md``.

This module never draws from the generator's own random stream and never speaks HTTP;
:func:`review_now` takes the store's lock itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ..rules import json_equal
from .apps import TaskDef
from .seed import POOR_PHOTO_SHARE
from .store import Store
from .work_order import WorkOrder, now

__all__ = [
    "ai_nonconformity",
    "full_review_figures",
    "photo_factor",
    "review_now",
    "selection_probabilities",
]

_STEP = timedelta(milliseconds=1)  # between the events of one review, so they keep their order


# --------------------------------------------------------------------------------------------
# The optional modes
# --------------------------------------------------------------------------------------------


def ai_nonconformity(wo: WorkOrder) -> float:
    """The share of ``wo``'s analysed conformity tasks whose analysed value the AI finds not
    conform (0 when none is analysed)."""
    counted = [t for t in wo.active_tasks() if t.conformity_status and t.id in wo.states]
    if not counted:
        return 0.0
    flagged = sum(1 for t in counted if not t.conform(wo.states[t.id]["analyzed_value"]))
    return flagged / len(counted)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def selection_probabilities(shares: Sequence[float], rate: float, strength: float) -> list[float]:
    """Review probabilities whose log-odds are ``a + strength * share``, with ``a`` such that
    they average ``rate`` (each work order's AI non-conformity share in ``shares``)."""
    n = len(shares)
    if rate <= 0 or rate >= 1 or strength == 0 or n == 0:
        return [min(max(rate, 0.0), 1.0)] * n
    lo, hi = -60.0, 60.0
    for _ in range(100):  # the mean rises with a: bisection
        mid = (lo + hi) / 2
        if sum(_sigmoid(mid + strength * s) for s in shares) / n < rate:
            lo = mid
        else:
            hi = mid
    a = (lo + hi) / 2
    return [_sigmoid(a + strength * s) for s in shares]


def photo_factor(rng: random.Random, spread: float) -> float:
    """A work order's factor of the AI's error rates: poor photos (:data:`POOR_PHOTO_SHARE` of
    work orders) ``1 + spread * sqrt((1 - q) / q)``, good ones ``1 - spread * sqrt(q / (1 - q))``
    (mean 1, standard deviation ``spread``). Always one draw from ``rng``; 1.0 when ``spread``
    is 0."""
    poor = rng.random() < POOR_PHOTO_SHARE
    if spread <= 0:
        return 1.0
    q = POOR_PHOTO_SHARE
    if poor:
        return 1.0 + spread * math.sqrt((1 - q) / q)
    return max(1.0 - spread * math.sqrt(q / (1 - q)), 0.0)


# --------------------------------------------------------------------------------------------
# What a review of every work order would give
# --------------------------------------------------------------------------------------------


class _Tally:
    __slots__ = ("ai_nc", "conformity", "final_nc", "value_k", "value_n", "verdict_k", "verdict_n")

    def __init__(self) -> None:
        self.value_n = self.value_k = 0
        self.verdict_n = self.verdict_k = 0
        self.conformity = self.final_nc = self.ai_nc = 0

    def add(self, task: TaskDef, ai: Any, target: Any) -> None:
        final = ai if target is None else target
        self.value_n += 1
        self.value_k += target is not None and not json_equal(target, ai)
        if task.judge.has_rules:
            # a verdict is the rule a value matches (no rule is a verdict of its own)
            self.verdict_n += 1
            if target is not None:
                self.verdict_k += task.judge.matching_rule(final) is not (
                    task.judge.matching_rule(ai)
                )
        if task.conformity_status:
            self.conformity += 1
            self.final_nc += task.verdict(final)[1] is not True
            self.ai_nc += task.verdict(ai)[1] is not True

    def figures(self) -> dict[str, Any]:
        def rate(k: int, n: int) -> float | None:
            return k / n if n else None

        return {
            "tasks": self.value_n,
            "override_rate": {
                "value": rate(self.value_k, self.value_n),
                "verdict": rate(self.verdict_k, self.verdict_n),
            },
            "nonconformity_rate": {
                "final": rate(self.final_nc, self.conformity),
                "ai": rate(self.ai_nc, self.conformity),
            },
            "counts": {
                "overridden": self.value_k,
                "tasks": self.value_n,
                "verdict_overridden": self.verdict_k,
                "tasks_with_rules": self.verdict_n,
                "conformity_tasks": self.conformity,
                "not_conform_final": self.final_nc,
                "not_conform_ai": self.ai_nc,
            },
        }


def full_review_figures(store: Store) -> dict[str, Any]:
    """What a review of every generated work order in ``store`` would give, from their
    potential reviews (work orders created through the API have none and are left out).

    Returns ``work_orders`` (generated, still in the store), ``analysed_work_orders``,
    ``reviewed_work_orders`` (reviewed now, whichever way) and the figures of the population:
    ``tasks`` (analysed tasks), ``override_rate`` (``value``: the share of analysed tasks the
    review corrects to a different value, as ``is_overridden``; ``verdict``: the share of
    analysed tasks with rules whose corrected value matches another rule, as
    ``is_verdict_overridden``), ``nonconformity_rate`` (over analysed tasks with
    ``conformity_status``: ``final``, the share whose reviewed value is not conform, as
    ``is_conform`` is not true after the review; ``ai``, the share whose analysed value is not,
    as ``ai_is_conform`` is not true) and their ``counts``; the same per task name
    (``by_task_name``), and over the work orders the generated data shows reviewed
    (``reviewed_at_start``: what a reviewed-only count of the fresh data measures). Rates are
    shares between 0 and 1 (None with nothing to count). Values are those of the generated
    data: a task analysed or corrected again through the API afterwards does not change them.
    """
    with store.lock:
        overall, at_start = _Tally(), _Tally()
        by_task: dict[str, _Tally] = {}
        n_wo = n_analysed = n_start = n_reviewed = 0
        for wo in store.work_orders.values():
            plan = wo.potential_review
            if plan is None:
                continue
            n_wo += 1
            n_analysed += bool(plan.tasks)
            n_start += plan.reviewed_at_start
            n_reviewed += wo.review_date is not None
            tasks = wo.app_version.tasks_by_id
            for task_id, (ai, target) in plan.tasks.items():
                task = tasks[task_id]
                overall.add(task, ai, target)
                by_task.setdefault(task.name, _Tally()).add(task, ai, target)
                if plan.reviewed_at_start:
                    at_start.add(task, ai, target)
    start = at_start.figures()
    start["work_orders"] = n_start
    return {
        "description": (
            "What a review of every generated work order would give (its potential review, "
            "drawn up front; POST /_sim/review carries it out). Rates are shares of analysed "
            "tasks, counted as the client's task frame counts them."
        ),
        "work_orders": n_wo,
        "analysed_work_orders": n_analysed,
        "reviewed_work_orders": n_reviewed,
        **overall.figures(),
        "by_task_name": {name: t.figures() for name, t in sorted(by_task.items())},
        "reviewed_at_start": start,
    }


# --------------------------------------------------------------------------------------------
# Reviewing now
# --------------------------------------------------------------------------------------------


def review_now(store: Store, wo: WorkOrder, default_reviewer: str) -> int | None:
    """Review ``wo`` now as the review team would: its potential review's corrections (one
    ``correction`` event each, by the reviewer), then the ``review`` event and ``review_date``.

    Returns the number of corrections made, or None when ``wo`` was already reviewed (nothing
    changes: reviewing is idempotent). A work order created through the API has no potential
    review: it is reviewed by ``default_reviewer`` with no correction. A task no longer active
    (its work order's types changed) is skipped; one already corrected to the reviewer's value
    is left as it is.
    """
    with store.lock:
        if wo.review_date is not None:
            return None
        plan = wo.potential_review
        reviewer = plan.reviewer if plan is not None else default_reviewer
        when = max(now(), wo.update_date + _STEP)
        active = {t.id: t for t in wo.active_tasks()}
        made = 0
        for task_id, (_, target) in plan.tasks.items() if plan is not None else ():
            task, state = active.get(task_id), wo.states.get(task_id)
            if target is None or task is None or state is None:
                continue
            corrected = state["corrected_value"]
            if corrected is not None and json_equal(corrected, target):
                continue
            store.apply_correction(wo, task, target, when=when, user=reviewer)
            when += _STEP
            made += 1
        store.mark_reviewed(wo, when, user=reviewer)
        return made
