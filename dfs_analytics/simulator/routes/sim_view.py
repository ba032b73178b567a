"""Routes of the simulator's own view under ``/_sim/``: ground truth, counters, callbacks and
runtime settings.

Never part of the API and never faulty or slow; the middleware lets only key holders in. These
routes read the store and the counters, and ``PATCH /_sim/config`` changes runtime settings,
checked all before any is changed; they never change work orders.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from ..responses import ApiError, bad_request, json_response, openapi_body
from ..settings import RuntimeConfig, check_setting
from ..state import ConfigDep, SimDep, StoreDep, get_wo
from ..validation import require_object
from .analysis import OBJECT_SCHEMA

router = APIRouter(prefix="/_sim")


@router.get("/truth")
def sim_truth(request: Request, sim: SimDep) -> Response:
    return json_response(request, sim.truth())


@router.get("/work-orders/{wo_id}")
def sim_work_order(request: Request, store: StoreDep, wo_id: str) -> Response:
    with store.lock:
        wo = get_wo(store, wo_id)
        plan = wo.potential_review
        potential = None
        if plan is not None:
            tasks = wo.app_version.tasks_by_id
            potential = {
                "reviewer": plan.reviewer,
                "reviewed_at_start": plan.reviewed_at_start,
                "tasks": [
                    {
                        "task_id": task_id,
                        "task_name": tasks[task_id].name,
                        "analyzed_value": ai,
                        "corrected_value": target,
                    }
                    for task_id, (ai, target) in plan.tasks.items()
                ],
            }
        return json_response(
            request,
            {
                "id": wo.id,
                "truth": wo.truth,
                "app_version": wo.app_version.label,
                "photo_factor": wo.photo_factor,
                "potential_review": potential,
            },
        )


@router.get("/requests")
def sim_requests(request: Request, sim: SimDep) -> Response:
    with sim.count_lock:
        return json_response(
            request,
            {
                "total": sim.counts.get("total", 0),
                "routes": {k: v for k, v in sim.counts.items() if k != "total"},
            },
        )


@router.delete("/requests", status_code=204)
def sim_reset_requests(sim: SimDep) -> Response:
    with sim.count_lock:
        sim.counts.clear()
    return Response(status_code=204)


@router.get("/corrections")
def sim_corrections(request: Request, store: StoreDep) -> Response:
    with store.lock:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for (wo_id, task_id, kind), n in store.correction_calls.items():
            task = store.tasks_by_id[task_id]
            row = rows.setdefault(
                (wo_id, task_id),
                {
                    "work_order_id": wo_id,
                    "task_id": task_id,
                    "task_name": task.name,
                    "calls": 0,
                    "accepted": 0,
                },
            )
            row[kind] = n
        return json_response(
            request,
            {
                "total_calls": sum(r["calls"] for r in rows.values()),
                "total_accepted": sum(r["accepted"] for r in rows.values()),
                "results": list(rows.values()),
            },
        )


@router.get("/callbacks")
def sim_callbacks(request: Request, sim: SimDep) -> Response:
    return json_response(request, {"results": list(sim.callbacks)})


@router.get("/config")
def sim_config(request: Request, config: ConfigDep) -> Response:
    return json_response(request, config.public())


@router.patch("/config", openapi_extra=openapi_body(OBJECT_SCHEMA))
def sim_config_patch(request: Request, config: ConfigDep, body: Any = Body(None)) -> Response:
    body = require_object(body)
    allowed = set(RuntimeConfig.__dataclass_fields__) - {"fault_seed"}
    unknown = set(body) - allowed
    if unknown:
        raise bad_request(
            None,
            f"Unknown settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}.",
        )
    checked = {}
    errors: dict[str, list[str]] = {}
    for key, value in body.items():  # check everything before changing anything
        try:
            checked[key] = check_setting(key, value)
        except ValueError as exc:
            errors[key] = [str(exc)]
    if errors:
        raise ApiError(400, errors)
    for key, value in checked.items():
        setattr(config, key, value)
    return json_response(request, config.public())
