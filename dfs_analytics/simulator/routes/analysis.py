"""Routes that run the AI or override it: analyze, analyze with a callback, correct a task.

The body checks are :mod:`..validation`'s (corrections: the simulator's own JSON-schema judge),
the AI is :mod:`..ai`'s; these routes only tie them to the store under its lock. They never
call a callback URL that is not on this machine, and never check keys or inject faults (the
middleware does).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from ...config import is_loopback_url
from ..ai import deliver_callback, run_analysis
from ..apps import TaskDef
from ..responses import bad_request, json_response, not_found, openapi_body, wo_response
from ..state import SimDep, StoreDep, get_wo
from ..validation import (
    check_allowed,
    corrected_value,
    decode_body,
    parse_analyze,
    require_object,
)
from ..work_order import now
from .work_orders import PREFIX

OBJECT_SCHEMA = {"type": "object"}
ANALYZE_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "data": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
                    },
                },
            },
        },
        "metadata": OBJECT_SCHEMA,
        "callback_url": {"type": "string"},
    },
}
CORRECTION_SCHEMA = {
    "type": "object",
    "required": ["corrected_value"],
    "properties": {"corrected_value": {"type": ["boolean", "number", "string"]}},
}

router = APIRouter(prefix=PREFIX + "/work-orders/{wo_id}")


@router.post("/analyze/", openapi_extra=openapi_body(ANALYZE_SCHEMA))
def analyze(request: Request, sim: SimDep, wo_id: str, body: Any = Body(None)) -> Response:
    store = sim.store
    with store.lock:
        wo = get_wo(store, wo_id)
        parsed = parse_analyze(wo, body)
        run_analysis(sim, wo, parsed)
        return wo_response(request, wo)


@router.post(
    "/analyze/callback/",
    status_code=202,
    openapi_extra=openapi_body(dict(ANALYZE_SCHEMA, required=["inputs", "callback_url"])),
)
def analyze_callback(request: Request, sim: SimDep, wo_id: str, body: Any = Body(None)) -> Response:
    store = sim.store
    with store.lock:
        wo = get_wo(store, wo_id)
        parsed = parse_analyze(wo, body)
    url = decode_body(body).get("callback_url")
    if not isinstance(url, str) or not url:
        raise bad_request("callback_url", "This field is required.")
    if not is_loopback_url(url):
        raise bad_request(
            "callback_url", "The simulator only calls http(s) receivers on loopback addresses."
        )
    analysis_id = str(uuid.uuid4())
    threading.Thread(
        target=deliver_callback,
        args=(sim, wo.id, parsed, url, analysis_id),
        daemon=True,
        name=f"callback-{analysis_id[:8]}",
    ).start()
    return json_response(request, {"analysis_id": analysis_id}, 202)


@router.patch("/tasks/{task_id}/correction/", openapi_extra=openapi_body(CORRECTION_SCHEMA))
def correct(
    request: Request, store: StoreDep, wo_id: str, task_id: str, body: Any = Body(None)
) -> Response:
    with store.lock:
        wo = get_wo(store, wo_id)
        task: TaskDef | None = next((t for t in wo.active_tasks() if t.id == task_id), None)
        if task is None:
            raise not_found()
        store.correction_calls[(wo.id, task.id, "calls")] += 1
        value = corrected_value(task, require_object(body))
        if wo.states.get(task.id) is None:
            raise bad_request(
                None,
                f"Task {task.name!r} has never been analysed on this work order; "
                "there is nothing to correct.",
            )
        check_allowed(task, value)
        when = now()
        state = store.apply_correction(wo, task, value, when=when)
        store.correction_calls[(wo.id, task.id, "accepted")] += 1
        store.touch(wo, when)
        return json_response(request, {"id": task.id, "state": state})
