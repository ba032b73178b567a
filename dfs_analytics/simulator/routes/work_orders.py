"""Routes of the work orders: create, list, retrieve, update, delete, timeline, metadata.

One ``APIRouter`` under ``/v0.2/work-orders/``; the store comes in through ``Depends``. Every
read and write of a work order happens under the store's lock. These routes never analyse or
correct (see :mod:`.analysis`) and never check keys, count requests or inject faults (the
middleware of :mod:`..faults` does).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from ..responses import bad_request, json_response, openapi_body, page_of, wo_response
from ..state import StoreDep, get_wo
from ..store import Store
from ..validation import (
    PageDep,
    check_scalar_map,
    decode_body,
    list_query,
    parse_bool,
    require_object,
    writable_fields,
)
from ..work_order import WorkOrder, dumps, now

PREFIX = "/v0.2"
WRITABLE_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "metadata": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "types": {"type": "array", "items": {"type": "string"}},
        "field_engineer_email": {"type": ["string", "null"]},
    },
}
_META_SCHEMA = openapi_body(
    {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}
)

router = APIRouter(prefix=PREFIX + "/work-orders")


def write_event(store: Store, wo: WorkOrder, type_: str) -> None:
    """Append an event of ``type_`` (no states) and mark the work order changed."""
    when = now()
    wo.events.append(Store.event(when, type_))
    store.touch(wo, when)


@router.post("/", status_code=201, openapi_extra=openapi_body(WRITABLE_SCHEMA))
def create_work_order(request: Request, store: StoreDep, body: Any = Body(None)) -> Response:
    data = writable_fields(store, require_object(body), partial=False)
    with store.lock:
        when = now()
        wo = WorkOrder(
            id=str(uuid.uuid4()),
            name=data["name"],
            site_id=store.site_id,
            app_version=store.app.current,
            create_date=when,
        )
        wo.metadata = data["metadata"]
        wo.tags = data["tags"]
        wo.types = data["types"]
        wo.field_engineer_email = data["field_engineer_email"]
        wo.events.append(Store.event(when, "created"))
        wo.compute_progress()
        store.add(wo)
        return wo_response(request, wo, 201)


@router.get("/")
def list_work_orders(
    request: Request,
    store: StoreDep,
    paging: PageDep,
    created_after: str | None = Query(None),
    created_before: str | None = Query(None),
    updated_after: str | None = Query(None),
    updated_before: str | None = Query(None),
    reviewed: str | None = Query(None),
    name: str | None = Query(None),
    tag: list[str] | None = Query(None),
    field_engineer_email: str | None = Query(None),
    ordering: str | None = Query(None),
) -> Response:
    p, size = paging
    q = list_query(
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        reviewed=reviewed,
        name=name,
        tag=tag,
        field_engineer_email=field_engineer_email,
        ordering=ordering,
    )
    with store.lock:
        ids = store.query(q)
        start, end, links = page_of(request, len(ids), p, size)
        parts = [store.work_orders[i].list_json() for i in ids[start:end]]
    head = dumps({"count": len(ids), "next": links["next"], "previous": links["previous"]})
    raw = head[:-1] + b',"results":[' + b",".join(parts) + b"]}"
    return json_response(request, None, raw=raw)


@router.get("/{wo_id}/")
def retrieve_work_order(
    request: Request, store: StoreDep, wo_id: str, include_inputs: str | None = Query(None)
) -> Response:
    with_inputs = parse_bool("include_inputs", include_inputs)
    with store.lock:
        return wo_response(request, get_wo(store, wo_id), inputs=with_inputs is not False)


def update(request: Request, store: Store, wo_id: str, body: Any, partial: bool) -> Response:
    """PUT (``partial=False``) or PATCH a work order's writable fields."""
    with store.lock:
        wo = get_wo(store, wo_id)
        data = writable_fields(store, require_object(body), partial=partial)
        before = {
            "name": wo.name,
            "tags": wo.tags,
            "field_engineer_email": wo.field_engineer_email,
        }
        for key, value in data.items():
            setattr(wo, key, value)
        if (
            data.get("field_engineer_email", before["field_engineer_email"])
            != before["field_engineer_email"]
        ):
            wo.field_engineer_name = None
        store.reindex(wo, before)
        wo.compute_progress()
        write_event(store, wo, "updated")
        return wo_response(request, wo)


@router.put("/{wo_id}/", openapi_extra=openapi_body(dict(WRITABLE_SCHEMA, required=["name"])))
def put_work_order(
    request: Request, store: StoreDep, wo_id: str, body: Any = Body(None)
) -> Response:
    return update(request, store, wo_id, body, partial=False)


@router.patch("/{wo_id}/", openapi_extra=openapi_body(WRITABLE_SCHEMA))
def patch_work_order(
    request: Request, store: StoreDep, wo_id: str, body: Any = Body(None)
) -> Response:
    return update(request, store, wo_id, body, partial=True)


@router.delete("/{wo_id}/", status_code=204)
def delete_work_order(store: StoreDep, wo_id: str) -> Response:
    with store.lock:
        store.remove(get_wo(store, wo_id))
    return Response(status_code=204)


@router.get("/{wo_id}/timeline/")
def timeline(
    request: Request,
    store: StoreDep,
    wo_id: str,
    paging: PageDep,
) -> Response:
    p, size = paging
    with store.lock:
        events = get_wo(store, wo_id).events
        start, end, links = page_of(request, len(events), p, size)
        return json_response(request, {"count": len(events), **links, "results": events[start:end]})


def metadata_write(
    request: Request, store: Store, wo_id: str, body: Any, replace: bool
) -> Response:
    """PUT (``replace=True``: nulls dropped) or PATCH (nulls delete keys) of the metadata."""
    with store.lock:
        wo = get_wo(store, wo_id)
        body = decode_body(body)
        if not isinstance(body, dict):
            raise bad_request("non_field_errors", "Expected an object of scalar values.")
        values = check_scalar_map("metadata", body, drop_nulls=replace)
        if replace:
            wo.metadata = values
        else:
            merged = dict(wo.metadata)
            for key, value in values.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            wo.metadata = merged
        write_event(store, wo, "metadata_update")
        return json_response(request, wo.metadata)


@router.patch("/{wo_id}/metadata/", openapi_extra=_META_SCHEMA)
def patch_metadata(
    request: Request, store: StoreDep, wo_id: str, body: Any = Body(None)
) -> Response:
    return metadata_write(request, store, wo_id, body, replace=False)


@router.put("/{wo_id}/metadata/", openapi_extra=_META_SCHEMA)
def put_metadata(request: Request, store: StoreDep, wo_id: str, body: Any = Body(None)) -> Response:
    return metadata_write(request, store, wo_id, body, replace=True)
