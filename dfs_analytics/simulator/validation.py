"""Request validation: query parameters, JSON bodies, work-order fields, analyze bodies and
corrections, each turned into checked Python values or a 400 in the contract's shape.

Corrections are checked by the simulator's own judge (:mod:`.verdicts`, JSON Schema with the
``jsonschema`` library), not by the client's code. This module never changes the store and
never answers a request itself: it returns values or raises :class:`~.responses.ApiError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, Query

from .apps import TaskDef
from .responses import ApiError, bad_request
from .store import Query as ListQuery
from .store import Store
from .verdicts import InvalidCorrection, typed_value
from .work_order import WorkOrder

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IMAGE_LIMIT = 5 * 1024 * 1024
PDF_LIMIT = 8 * 1024 * 1024
ORDERINGS = ("create_date", "-create_date", "update_date", "-update_date")


def parse_positive_int(name: str, raw: str | None, default: int) -> int:
    """A positive integer query parameter; ``default`` when blank, else a 400."""
    if raw is None or raw.strip() == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()):
        raise bad_request(name, "A valid positive integer is required.")
    value = int(raw)
    if value < 1:
        raise bad_request(name, "A valid positive integer is required.")
    return value


async def page_params(
    page: str | None = Query(None), page_size: str | None = Query(None)
) -> tuple[int, int]:
    """The ``page`` (default 1) and ``page_size`` (default 100) of a list request."""
    return parse_positive_int("page", page, 1), parse_positive_int("page_size", page_size, 100)


PageDep = Annotated[tuple[int, int], Depends(page_params)]
"""A list route's ``(page, page_size)``, parsed by :func:`page_params`."""


def parse_date(name: str, raw: str | None) -> datetime | None:
    """An ISO-8601 query parameter as a UTC datetime (naive means UTC); None when blank."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    try:
        d = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise bad_request(name, f"Enter a valid ISO-8601 date/time, got {raw!r}.") from None


def parse_bool(name: str, raw: str | None) -> bool | None:
    """``true``/``1`` or ``false``/``0`` (any case); None when blank, else a 400."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise bad_request(name, f"Must be 'true' or 'false', got {raw!r}.")


def list_query(
    *,
    created_after: str | None,
    created_before: str | None,
    updated_after: str | None,
    updated_before: str | None,
    reviewed: str | None,
    name: str | None,
    tag: list[str] | None,
    field_engineer_email: str | None,
    ordering: str | None,
) -> ListQuery:
    """The normalised query of ``GET work-orders/`` (blank filters ignored)."""
    order = (ordering or "").strip() or "create_date"
    if order not in ORDERINGS:
        raise bad_request(
            "ordering", f"Unknown ordering {ordering!r}; use one of: {', '.join(ORDERINGS)}."
        )
    return ListQuery(
        created_after=parse_date("created_after", created_after),
        created_before=parse_date("created_before", created_before),
        updated_after=parse_date("updated_after", updated_after),
        updated_before=parse_date("updated_before", updated_before),
        reviewed=parse_bool("reviewed", reviewed),
        name=name.strip() if name and name.strip() else None,
        tags=tuple(sorted({t for t in tag or () if t.strip()})),
        field_engineer_email=field_engineer_email.strip()
        if field_engineer_email and field_engineer_email.strip()
        else None,
        ordering=order,
    )


def check_scalar_map(name: str, value: Any, *, drop_nulls: bool) -> dict[str, Any]:
    """An object of scalar values (metadata); nulls dropped when ``drop_nulls``, else kept."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(name, "Expected an object of scalar values.")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            if not drop_nulls:
                out[key] = None
            continue
        if not isinstance(item, (str, bool, int, float)) or (
            isinstance(item, float) and not math.isfinite(item)
        ):
            raise bad_request(name, f"Value of {key!r} must be a string, number or boolean.")
        out[key] = item
    return out


def decode_body(body: Any) -> Any:
    """A body FastAPI could not decode (no JSON content type) is parsed as JSON anyway."""
    if isinstance(body, (bytes, str)):
        try:
            return json.loads(body)
        except ValueError:
            raise bad_request(None, "JSON parse error - the body is not valid JSON.") from None
    return body


def require_object(body: Any) -> dict[str, Any]:
    """The body as a JSON object, else a 400."""
    body = decode_body(body)
    if not isinstance(body, dict):
        kind = type(body).__name__ if body is not None else "nothing"
        raise bad_request("non_field_errors", f"Invalid data. Expected an object, but got {kind}.")
    return body


def writable_fields(store: Store, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate the writable set of a work order; omitted optional keys reset unless ``partial``."""
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if "name" in body or not partial:
        name = body.get("name")
        if name is None or name == "":
            errors["name"] = ["This field is required."]
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name):
            errors["name"] = ["Use 1 to 128 letters, digits, '_' or '-'."]
        else:
            out["name"] = name
    if "metadata" in body or not partial:
        try:
            out["metadata"] = check_scalar_map("metadata", body.get("metadata"), drop_nulls=True)
        except ApiError as exc:
            errors.update(exc.body)
    if "tags" in body or not partial:
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            errors["tags"] = ["Expected a list of non-empty strings."]
        else:
            out["tags"] = list(dict.fromkeys(tags))
    type_key = "types" if "types" in body else "work_order_types"
    if type_key in body or not partial:
        types = body.get(type_key) or []
        known = store.app.current.types
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            errors[type_key] = ["Expected a list of work order type names."]
        elif unknown := [t for t in types if t not in known]:
            errors[type_key] = [
                f"Unknown work order type(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(known)}."
            ]
        else:
            out["types"] = list(dict.fromkeys(types))
    if "field_engineer_email" in body or not partial:
        email = body.get("field_engineer_email")
        if email is not None and (not isinstance(email, str) or not EMAIL_RE.fullmatch(email)):
            errors["field_engineer_email"] = ["Enter a valid email address."]
        else:
            out["field_engineer_email"] = email or None
    if errors:
        raise ApiError(400, errors)
    return out


def parse_analyze(wo: WorkOrder, body: Any) -> dict[str, Any]:
    """Validate an analyze body; return the group name, the image URL or bytes, the metadata."""
    body = require_object(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("inputs", "Expected a non-empty list of inputs.")
    image = context = None
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise bad_request("inputs", "Each input needs a 'name' and a 'data' object.")
        data = item["data"]
        if item.get("name") == "context" or data.get("type") == "text":
            context = data.get("value")
        elif data.get("type") in ("image", "pdf", "file"):
            image = data
    if not isinstance(context, str) or not context:
        raise bad_request("inputs", "A 'context' text input naming the task group is required.")
    active = {g.name for g in wo.app_version.active_groups(wo.types)}
    if context not in active:
        raise bad_request(
            "inputs",
            f"Unknown task group {context!r} for this work order; expected one of: "
            f"{', '.join(sorted(active))}.",
        )
    if image is None or not isinstance(image.get("value"), str) or not image["value"]:
        raise bad_request("inputs", "An image input with a URL or a base64 data URI is required.")
    value: str = image["value"]
    url = content = None
    mime = "image/jpeg"
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or ";base64" not in header:
            raise bad_request("inputs", "A data URI must look like 'data:<mime>;base64,<data>'.")
        mime = header[5:].split(";")[0] or "application/octet-stream"
        if len(payload) * 3 // 4 > PDF_LIMIT + 3:  # too big whatever it is: do not decode
            raise ApiError(
                413, {"detail": "Input too large: images are limited to 5 MB and PDFs to 8 MB."}
            )
        try:
            content = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("inputs", "The image data is not valid base64.") from None
        is_pdf = mime == "application/pdf" or image.get("type") == "pdf"
        limit = PDF_LIMIT if is_pdf else IMAGE_LIMIT
        if len(content) > limit:
            raise ApiError(
                413,
                {
                    "detail": f"Input too large: {len(content)} bytes; the limit is "
                    f"{limit // (1024 * 1024)} MB for {'PDFs' if is_pdf else 'images'}."
                },
            )
    elif value.startswith(("http://", "https://")):
        url = value
    else:
        raise bad_request("inputs", "The image value must be an http(s) URL or a data URI.")
    metadata = check_scalar_map("metadata", body.get("metadata"), drop_nulls=True)
    return {
        "group": context,
        "url": url,
        "content": content,
        "mime": mime,
        "metadata": metadata,
        "type": image.get("type", "image"),
    }


def corrected_value(task: TaskDef, body: dict[str, Any]) -> Any:
    """The ``corrected_value`` of a correction body as a value of the task's type; a 400 when
    it is missing, null or of another type (the rules are checked by :func:`check_allowed`)."""
    if "corrected_value" not in body:
        raise bad_request("corrected_value", "This field is required.")
    try:
        return typed_value(task.outcome_type, body["corrected_value"])
    except InvalidCorrection as exc:
        raise bad_request("corrected_value", str(exc)) from None


def check_allowed(task: TaskDef, value: Any) -> None:
    """A 400 naming the task's rules when ``value`` matches none of them."""
    if not task.allows(value):
        allowed = "; ".join(
            f"{r.get('sentence')!r}: {json.dumps(r.get('schema'))}" for r in task.rules or ()
        )
        raise bad_request(
            "corrected_value",
            f"{value!r} matches no verdict rule of task {task.name!r} (rules: {allowed}).",
        )
