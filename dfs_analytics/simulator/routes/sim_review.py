"""``POST /_sim/review``: the simulator's review team reviews the work orders it is given, now.

Each work order's potential review (drawn when the data was generated, see :mod:`..review`) is
carried out: its corrections, one ``correction`` event each, then the ``review`` event and the
``review_date``, as a review in the back office leaves them. Reviewing a reviewed work order
changes nothing. Like every ``/_sim/`` route it needs the API key (the middleware checks it) and
is never slow or faulty. This module only checks the body and hands each work order over.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from ..responses import ApiError, bad_request, json_response, openapi_body
from ..review import review_now
from ..seed import DEFAULT_REVIEWER
from ..state import StoreDep
from ..validation import require_object

REVIEW_SCHEMA = {
    "type": "object",
    "required": ["work_order_ids"],
    "properties": {"work_order_ids": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False,
}

router = APIRouter(prefix="/_sim")


@router.post("/review", openapi_extra=openapi_body(REVIEW_SCHEMA))
def sim_review(request: Request, store: StoreDep, body: Any = Body(None)) -> Response:
    """Review the work orders of ``work_order_ids`` now. Answers which were reviewed now, which
    were already reviewed (unchanged) and how many corrections were made; an unknown id is a 404
    naming every unknown id, and then nothing is reviewed."""
    body = require_object(body)
    unknown = set(body) - {"work_order_ids"}
    if unknown:
        raise bad_request(
            None, f"Unknown fields: {', '.join(sorted(unknown))}; expected work_order_ids."
        )
    ids = body.get("work_order_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("work_order_ids", "Expected a list of work-order ids (strings).")
    ids = list(dict.fromkeys(ids))  # each once, in the order given
    settings = store.settings
    default_reviewer = (getattr(settings, "reviewers", None) or [DEFAULT_REVIEWER])[0]
    reviewed: list[str] = []
    already: list[str] = []
    corrections = 0
    with store.lock:
        missing = [i for i in ids if i not in store.work_orders]
        if missing:
            raise ApiError(
                404,
                {
                    "detail": f"Unknown work orders: {', '.join(missing)}. Nothing was reviewed.",
                    "work_order_ids": missing,
                },
            )
        for wo_id in ids:
            made = review_now(store, store.work_orders[wo_id], default_reviewer)
            if made is None:
                already.append(wo_id)
            else:
                reviewed.append(wo_id)
                corrections += made
    return json_response(
        request,
        {"reviewed": reviewed, "already_reviewed": already, "corrections": corrections},
    )
