"""Routes of the task groups: the list (current app version) and one group by id or name.

Task groups are read-only app definitions, so these routes take no lock and never change
anything; keys, counting and faults are the middleware's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..responses import json_response, not_found, page_of
from ..state import StoreDep
from ..validation import PageDep
from .work_orders import PREFIX

router = APIRouter(prefix=PREFIX + "/task-groups")


@router.get("/")
def list_task_groups(request: Request, store: StoreDep, paging: PageDep) -> Response:
    p, size = paging
    groups = [g.public for g in store.app.current.groups]
    start, end, links = page_of(request, len(groups), p, size)
    return json_response(request, {"count": len(groups), **links, "results": groups[start:end]})


@router.get("/{key}/")
def retrieve_task_group(request: Request, store: StoreDep, key: str) -> Response:
    found = store.task_groups_by_id.get(key)
    if found is not None:
        return json_response(request, found[1].public)
    group = store.app.current.groups_by_name.get(key)
    if group is None:
        raise not_found()
    return json_response(request, group.public)
