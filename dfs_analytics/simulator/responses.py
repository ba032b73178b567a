"""How the simulator answers: JSON bodies with ETags, error bodies in the DRF shape, pages.

:class:`ApiError` is what any part of a request raises to answer an error; the handlers that
:func:`install_error_handlers` adds turn it (and FastAPI's own errors) into the contract's
``{"detail": ...}`` or ``{"field": [messages]}`` bodies. This module never reads or changes
the store and never decides whether a request is valid: it only shapes answers.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .work_order import WorkOrder, dumps


class ApiError(Exception):
    """An error answer: ``status``, a JSON ``body`` and extra ``headers``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_request(field_name: str | None, message: str) -> ApiError:
    """A 400 naming ``field_name`` (``{"field": [message]}``), or ``{"detail": message}``."""
    if field_name is None:
        return ApiError(400, {"detail": message})
    return ApiError(400, {field_name: [message]})


def not_found() -> ApiError:
    """The 404 of an unknown resource."""
    return ApiError(404, {"detail": "Not found."})


def json_response(
    request: Request, obj: Any, status: int = 200, raw: bytes | None = None
) -> Response:
    """JSON answer; a GET 200 carries a weak ETag and honours ``If-None-Match`` with 304,
    unless the ``validators`` setting is off (a plain DRF server: no ETag, never 304)."""
    body = raw if raw is not None else dumps(obj)
    headers = {}
    if request.method == "GET" and status == 200 and request.app.state.sim.config.validators:
        etag = 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers["ETag"] = etag
        inm = request.headers.get("if-none-match")
        if inm and etag in [t.strip() for t in inm.split(",")]:
            return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def wo_response(
    request: Request, wo: WorkOrder, status: int = 200, *, inputs: bool = True
) -> Response:
    """A work order as retrieve answers it, with its inputs unless ``inputs=False``."""
    return json_response(request, None, status, raw=wo.json("full" if inputs else "detail"))


def page_of(
    request: Request, total: int, page: int, page_size: int
) -> tuple[int, int, dict[str, Any]]:
    """Bounds of one page and the envelope's links; a page past the end is a 404."""
    page_size = min(page_size, 1000)
    pages = max(1, math.ceil(total / page_size))
    if page > pages:
        raise ApiError(404, {"detail": "Invalid page."})
    start = (page - 1) * page_size
    end = min(start + page_size, total)
    url = request.url
    scheme = request.app.state.sim.config.next_scheme
    if scheme and scheme != url.scheme:
        url = url.replace(scheme=scheme)
    links = {
        "next": str(url.include_query_params(page=page + 1)) if page < pages else None,
        "previous": str(url.include_query_params(page=page - 1)) if page > 1 else None,
    }
    return start, end, links


def openapi_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a route's JSON body with ``schema``."""
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`ApiError` and FastAPI's own errors with the contract's error bodies."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = "Not found." if exc.status_code == 404 else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            if err.get("type") == "json_invalid":
                return JSONResponse(
                    {"detail": "JSON parse error - the body is not valid JSON."}, status_code=400
                )
            errors.setdefault(loc[-1] if loc else "non_field_errors", []).append(
                err.get("msg", "invalid")
            )
        return JSONResponse(errors, status_code=400)
