"""The simulator's HTTP application: the Field Services API v0.2 of CONTRACT.md, and ``/_sim/``.

Everything under ``/v0.2/`` behaves like the contract says, including the points it marks
*assumed* (pagination envelope, list filters, timeline, metadata sub-resource, callbacks).
Everything under ``/_sim/`` is the simulator's own: ground truth, request and correction
counts, runtime settings (latency, faults, throttling, validators, link scheme) and the OpenAPI
schema. It is never mixed with the API and never faulty, but it needs the same
``Authorization: Token <key>`` header as the API (any key the API accepts), so whoever can
reach the port cannot read the ground truth or change the keys. Only ``/_sim/openapi.json`` and
``/_sim/docs`` are open: a browser cannot send the header, and the schema holds no data.

Two runtime settings make the simulator answer like a plain Django REST Framework server:

- ``validators`` (default ``True``): GET answers carry a weak ``ETag`` and a matching
  ``If-None-Match`` gets 304. ``False``: no ``ETag`` and no ``Last-Modified`` anywhere, and
  never a 304, as DRF without conditional-request middleware.
- ``next_scheme`` (default ``None``: the scheme the request came in on): ``"http"`` writes
  ``http://`` absolute ``next``/``previous`` links whatever the scheme the simulator is served
  on, as DRF does behind a TLS-terminating proxy that does not forward the scheme.

Choices where the contract is silent are listed in ``docs/simulator.md``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar

import requests
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..rules import InvalidValue, coerce_value, is_number
from .apps import TaskDef
from .generator import ground_truth
from .store import Query as ListQuery
from .store import Store, WorkOrder, dumps, fmt_date, now

PREFIX = "/v0.2"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
IMAGE_LIMIT = 5 * 1024 * 1024
PDF_LIMIT = 8 * 1024 * 1024
ORDERINGS = ("create_date", "-create_date", "update_date", "-update_date")
DIRECTIVE_RE = re.compile(r"dfs-sim:([A-Za-z0-9_]+)=([^;&\s\"'<>]+)")
log = logging.getLogger("dfs_analytics.simulator")


# --------------------------------------------------------------------------------------------
# Runtime settings and simulator state
# --------------------------------------------------------------------------------------------


NEXT_SCHEMES = ("http", "https")
_RATES = ("fault_rate", "throttle_rate")
# paths under /_sim/ that answer without a key: a browser opening the docs cannot send one
OPEN_SIM_PATHS = frozenset({"/_sim/openapi.json", "/_sim/docs", "/_sim/docs/"})


@dataclass
class RuntimeConfig:
    """Knobs that can change while the server runs (``PATCH /_sim/config``).

    ``validators=False`` and ``next_scheme="http"`` make the simulator answer like a plain
    Django REST Framework server (see the module docstring). Every value is checked by
    :func:`check_setting`; a bad one raises ValueError naming the setting.
    """

    api_keys: list[str] = field(default_factory=lambda: ["demo-key"])
    auth_status: int = 401
    latency: float = 0.0  # seconds added to every API request
    jitter: float = 0.0  # plus a uniform random 0..jitter seconds
    fault_rate: float = 0.0  # share of API requests that fail (5xx or dropped connection)
    throttle_rate: float = 0.0  # share of API requests answered 429
    throttle_rps: float = 0.0  # token-bucket limit in requests per second (0: none)
    retry_after: int = 1  # Retry-After seconds sent with a 429
    callback_delay: float = 0.05  # seconds before an analysis callback is processed
    fault_seed: int | None = None
    validators: bool = True  # ETag on GET answers and 304 on a matching If-None-Match
    next_scheme: str | None = None  # scheme of next/previous links (None: the request's)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                setattr(self, f.name, check_setting(f.name, value))
            except ValueError as exc:
                raise ValueError(f"{f.name}={value!r}: {exc}") from None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["api_keys"] = [k[:2] + "***" for k in self.api_keys]
        return data


def check_setting(name: str, value: Any) -> Any:
    """``value`` as runtime setting ``name`` stores it; ValueError says what is expected.

    Numbers keep their kind by setting, not by the value they replace: ``fault_rate`` is
    always a float (``0`` then ``0.1`` stays ``0.1``), ``retry_after`` and ``auth_status``
    are integers. Rates are shares between 0 and 1.
    """
    if name == "api_keys":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(k, str) and k and not any(c.isspace() for c in k) for k in value)
        ):
            raise ValueError(
                "Expected a non-empty list of keys (strings without spaces); an empty list "
                "would lock every client out."
            )
        return list(value)
    if name == "auth_status":
        if isinstance(value, bool) or value not in (401, 403):
            raise ValueError("Expected 401 or 403.")
        return int(value)
    if name == "validators":
        if not isinstance(value, bool):
            raise ValueError("Expected true or false.")
        return value
    if name == "next_scheme":
        if value is not None and value not in NEXT_SCHEMES:
            raise ValueError("Expected 'http', 'https' or null (the scheme of the request).")
        return value
    if name == "fault_seed":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("Expected an integer or null.")
        return value
    if name not in RuntimeConfig.__dataclass_fields__:
        raise ValueError(f"Unknown setting {name!r}.")
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError("Expected a non-negative number.")
    if name == "retry_after":
        if value != int(value):
            raise ValueError("Expected a whole number of seconds.")
        return int(value)
    if name in _RATES and value > 1:
        raise ValueError("Expected a share between 0 and 1.")
    return float(value)


class Faults:
    """Random draws for latency, faults and throttling, and a token bucket."""

    def __init__(self, config: RuntimeConfig):
        self.rng = random.Random(config.fault_seed)
        self.lock = threading.Lock()
        self.tokens = 0.0
        self.stamp = time.monotonic()

    def random(self) -> float:
        with self.lock:
            return self.rng.random()

    def choice(self, seq: list[str]) -> str:
        with self.lock:
            return self.rng.choice(seq)

    def take_token(self, rps: float) -> float:
        """Take one token; return 0 when granted, else the seconds until one is available."""
        with self.lock:
            t = time.monotonic()
            burst = max(1.0, rps)
            self.tokens = min(burst, self.tokens + (t - self.stamp) * rps)
            self.stamp = t
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / rps


class SimState:
    """Everything the running app needs: the store, its settings and the counters."""

    def __init__(self, store: Store, config: RuntimeConfig):
        self.store = store
        self.config = config
        self.faults = Faults(config)
        self.faults.tokens = max(1.0, config.throttle_rps)
        self.counts: Counter[str] = Counter()
        self.count_lock = threading.Lock()
        self.callbacks: list[dict[str, Any]] = []
        self._inputs_by_url: dict[str, dict[str, Any]] | None = None
        self._truth: dict[str, Any] | None = None

    def truth(self) -> dict[str, Any]:
        if self._truth is None:
            self._truth = ground_truth(self.store)
        return self._truth

    def input_by_url(self, url: str) -> dict[str, Any] | None:
        with self.store.lock:
            if self._inputs_by_url is None:
                self._inputs_by_url = {
                    i["data"]["value"]: i
                    for wo in self.store.work_orders.values()
                    for i in wo.inputs
                }
            return self._inputs_by_url.get(url)

    def remember_input(self, item: dict[str, Any]) -> None:
        with self.store.lock:
            if self._inputs_by_url is not None:
                self._inputs_by_url[item["data"]["value"]] = item


# --------------------------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def bad_request(field_name: str | None, message: str) -> ApiError:
    if field_name is None:
        return ApiError(400, {"detail": message})
    return ApiError(400, {field_name: [message]})


def not_found() -> ApiError:
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


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def parse_positive_int(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()):
        raise bad_request(name, "A valid positive integer is required.")
    value = int(raw)
    if value < 1:
        raise bad_request(name, "A valid positive integer is required.")
    return value


def parse_date(name: str, raw: str | None) -> datetime | None:
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    try:
        d = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise bad_request(name, f"Enter a valid ISO-8601 date/time, got {raw!r}.") from None


def parse_bool(name: str, raw: str | None) -> bool | None:
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise bad_request(name, f"Must be 'true' or 'false', got {raw!r}.")


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


def check_scalar_map(name: str, value: Any, *, drop_nulls: bool) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(name, "Expected an object of scalar values.")
    out = {}
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


# --------------------------------------------------------------------------------------------
# The AI
# --------------------------------------------------------------------------------------------


def directives(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in DIRECTIVE_RE.finditer(text)}


def ai_values(
    sim: SimState, wo: WorkOrder, group_name: str, url: str | None, content: bytes | None
) -> dict[str, Any]:
    """The AI's values for the tasks of one group: deterministic in the image content.

    A URL of an input the simulator generated gives that input's original values. Otherwise
    each task's value is drawn from the task's value distribution with a hash of the content and
    the task name. ``dfs-sim:<task_name>=<value>`` anywhere in the URL or the content forces a
    value (so tests can ask for a bad photo or a given verdict).
    """
    group = wo.app_version.groups_by_name[group_name]
    if url is not None and content is None:
        known = sim.input_by_url(url)
        if known is not None and known["task_group_name"] == group_name:
            base = dict(known["_ai"])
            forced = {}
        else:
            base = {}
            forced = directives(urllib.parse.unquote(url))
        key = url.encode()
    else:
        base = {}
        key = content or b""
        forced = directives(key.decode("latin-1"))
    digest = hashlib.sha256(key).digest()
    values: dict[str, Any] = {}
    for task in group.tasks:
        if task.name in forced:
            try:
                values[task.name] = coerce_value(task.outcome_type, forced[task.name])
                continue
            except InvalidValue:
                pass
        if task.name in base:
            values[task.name] = base[task.name]
            continue
        h = hashlib.sha256(digest + task.name.encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        if task.is_quality:
            values[task.name] = u < 0.9
        else:
            total = sum(w for _, w in task.truth)
            x = u * total
            for v, w in task.truth:
                x -= w
                if x < 0:
                    values[task.name] = v
                    break
            else:
                values[task.name] = task.truth[-1][0]
    return values


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


def run_analysis(
    sim: SimState, wo: WorkOrder, parsed: dict[str, Any], analysis_id: str | None = None
) -> None:
    """Analyse one input of one task group and record it (state, input, event, indexes)."""
    store = sim.store
    with store.lock:
        when = now()
        analysis_id = analysis_id or str(uuid.uuid4())
        values = ai_values(sim, wo, parsed["group"], parsed["url"], parsed["content"])
        if parsed["metadata"]:
            wo.metadata.update(parsed["metadata"])
        _, messages = store.apply_analysis(
            wo, parsed["group"], values, when=when, analysis_id=analysis_id, user=None
        )
        input_id = str(uuid.uuid4())
        url = parsed["url"]
        if url is None:
            ext = {"image/png": "png", "application/pdf": "pdf"}.get(parsed["mime"], "jpg")
            url = f"https://storage.example.com/work-orders/{wo.id}/{input_id}.{ext}"
        item = {
            "id": input_id,
            "name": "image_input",
            "task_group_name": parsed["group"],
            "analysis_id": analysis_id,
            "date": fmt_date(when),
            "data": {"type": parsed["type"], "value": url},
            "conformity_messages": messages,
            "_ai": values,
        }
        wo.inputs.append(item)
        sim.remember_input(item)
        store.touch(wo, when)


def is_loopback_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def deliver_callback(
    sim: SimState, wo_id: str, parsed: dict[str, Any], url: str, analysis_id: str
) -> None:
    """Run a callback analysis, then POST the answer to ``url`` (up to 3 retries with backoff)."""
    time.sleep(sim.config.callback_delay)
    store = sim.store
    with store.lock:
        wo = store.work_orders.get(wo_id)
        if wo is None:
            payload = {"analysis_id": analysis_id, "detail": "Not found."}
        else:
            run_analysis(sim, wo, parsed, analysis_id)
            payload = wo.to_dict(inputs=True, task_groups=True)
            payload["analysis_id"] = analysis_id
    record: dict[str, Any] = {"analysis_id": analysis_id, "url": url, "attempts": 0, "status": None}
    sim.callbacks.append(record)
    body = dumps(payload)
    for attempt in range(4):
        record["attempts"] = attempt + 1
        try:
            r = requests.post(
                url, data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            record["status"] = r.status_code
            if r.status_code < 400:
                record["delivered"] = True
                return
        except requests.RequestException as exc:
            record["status"] = f"error: {type(exc).__name__}"
        if attempt < 3:
            time.sleep(0.2 * 2**attempt)
    record["delivered"] = False


# --------------------------------------------------------------------------------------------
# Middleware: trailing slash, auth, latency, throttling, faults, counting
# --------------------------------------------------------------------------------------------


class DropConnection(Exception):
    """Raised on purpose to cut a connection (fault injection); uvicorn closes the socket."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, DropConnection):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def _plain(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
    hdrs = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode(), v.encode()))
    return hdrs, body, status


class SimulatorMiddleware:
    """Pure ASGI middleware so faults can cut a connection after the app has answered."""

    FAULT_BODIES: ClassVar[dict[int, tuple[bytes, str]]] = {
        500: (b'{"detail":"A server error occurred."}', "application/json"),
        502: (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        503: (b"upstream connect error or disconnect/reset before headers", "text/plain"),
        504: (b"<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html"),
    }

    def __init__(self, app: Any, sim: SimState):
        self.app = app
        self.sim = sim

    def _route_name(self, scope: dict[str, Any]) -> str:
        partial = None
        for route in scope["app"].router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {route.path}"
            if match == Match.PARTIAL and partial is None:
                partial = route.path
        return f"{scope['method']} {partial or '(unmatched)'}"

    async def _send_plain(
        self, send: Any, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        hdrs, body, status = _plain(status, body, ctype, headers)
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: dict[str, Any]) -> bool:
        auth = self._auth_words(scope)
        return len(auth) == 2 and auth[0].lower() == "token" and auth[1] in self.sim.config.api_keys

    @staticmethod
    def _auth_words(scope: dict[str, Any]) -> list[str]:
        headers = dict(scope.get("headers") or [])
        return headers.get(b"authorization", b"").decode("latin-1").split()

    async def _deny(self, scope: dict[str, Any], send: Any) -> None:
        cfg = self.sim.config
        detail = (
            "Authentication credentials were not provided."
            if not self._auth_words(scope)
            else "Invalid token."
        )
        extra = {"WWW-Authenticate": "Token"} if cfg.auth_status == 401 else {}
        await self._send_plain(
            send, cfg.auth_status, dumps({"detail": detail}), "application/json", extra
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_sim" or scope["path"].startswith("/_sim/"):
            # the simulator's own view: never faulty or slow, but only for key holders
            if scope["path"] in OPEN_SIM_PATHS or self._authorized(scope):
                await self.app(scope, receive, send)
            else:
                await self._deny(scope, send)
            return
        if not scope["path"].endswith("/"):
            scope = dict(
                scope, path=scope["path"] + "/", raw_path=scope.get("raw_path", b"") + b"/"
            )
        sim, cfg = self.sim, self.sim.config
        with sim.count_lock:
            sim.counts[self._route_name(scope)] += 1
            sim.counts["total"] += 1
        if cfg.latency or cfg.jitter:
            await asyncio.sleep(max(0.0, cfg.latency + sim.faults.random() * cfg.jitter))
        # authentication comes before everything, even for unknown paths
        if not self._authorized(scope):
            await self._deny(scope, send)
            return
        # throttling
        wait = sim.faults.take_token(cfg.throttle_rps) if cfg.throttle_rps > 0 else 0.0
        if wait or (cfg.throttle_rate and sim.faults.random() < cfg.throttle_rate):
            retry = max(cfg.retry_after, math.ceil(wait)) if wait else cfg.retry_after
            await self._send_plain(
                send,
                429,
                dumps({"detail": f"Request was throttled. Expected available in {retry} seconds."}),
                "application/json",
                {"Retry-After": str(retry)},
            )
            return
        # faults: a 5xx before anything happens, or a connection cut (before or after the work)
        if cfg.fault_rate and sim.faults.random() < cfg.fault_rate:
            kind = sim.faults.choice(["500", "502", "503", "504", "drop-before", "drop-after"])
            if kind == "drop-before":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"1000")],
                    }
                )
                raise DropConnection("injected fault: connection dropped before processing")
            if kind != "drop-after":
                status = int(kind)
                body, ctype = self.FAULT_BODIES[status]
                await self._send_plain(send, status, body, ctype)
                return
            await self._cut_after(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _cut_after(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Let the app do the work, then send only half of its answer and cut the connection."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(max(len(body), 2)).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 200), "headers": headers}
        )
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        raise DropConnection("injected fault: connection dropped after processing")


# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------

_OBJ = {"type": "object"}
_WRITABLE_SCHEMA = {
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
_ANALYZE_SCHEMA = {
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
        "metadata": _OBJ,
        "callback_url": {"type": "string"},
    },
}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


def create_app(store: Store, config: RuntimeConfig | None = None) -> FastAPI:
    """Build the FastAPI application serving ``store`` (see the module docstring)."""
    config = config or RuntimeConfig()
    sim = SimState(store, config)
    app = FastAPI(
        title="Deepomatic Field Services API v0.2 (dfs-analytics simulator)",
        version="0.2",
        openapi_url="/_sim/openapi.json",
        docs_url="/_sim/docs",
        redoc_url=None,
    )
    app.state.sim = sim
    app.add_middleware(SimulatorMiddleware, sim=sim)

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

    def get_wo(wo_id: str) -> WorkOrder:
        wo = store.work_orders.get(wo_id)
        if wo is None:
            raise not_found()
        return wo

    def wo_response(
        request: Request, wo: WorkOrder, status: int = 200, *, inputs: bool = True
    ) -> Response:
        return json_response(request, None, status, raw=wo.json("full" if inputs else "detail"))

    def write_event(wo: WorkOrder, type_: str) -> None:
        when = now()
        wo.events.append(Store.event(when, type_))
        store.touch(wo, when)

    # -- work orders ------------------------------------------------------------------------

    @app.post(PREFIX + "/work-orders/", status_code=201, openapi_extra=_body(_WRITABLE_SCHEMA))
    def create_work_order(request: Request, body: Any = Body(None)) -> Response:
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

    @app.get(PREFIX + "/work-orders/")
    def list_work_orders(
        request: Request,
        page: str | None = Query(None),
        page_size: str | None = Query(None),
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
        p = parse_positive_int("page", page, 1)
        size = parse_positive_int("page_size", page_size, 100)
        order = (ordering or "").strip() or "create_date"
        if order not in ORDERINGS:
            raise bad_request(
                "ordering", f"Unknown ordering {ordering!r}; use one of: {', '.join(ORDERINGS)}."
            )
        q = ListQuery(
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
        with store.lock:
            ids = store.query(q)
            start, end, links = page_of(request, len(ids), p, size)
            parts = [store.work_orders[i].list_json() for i in ids[start:end]]
        head = dumps({"count": len(ids), "next": links["next"], "previous": links["previous"]})
        raw = head[:-1] + b',"results":[' + b",".join(parts) + b"]}"
        return json_response(request, None, raw=raw)

    @app.get(PREFIX + "/work-orders/{wo_id}/")
    def retrieve_work_order(
        request: Request, wo_id: str, include_inputs: str | None = Query(None)
    ) -> Response:
        with_inputs = parse_bool("include_inputs", include_inputs)
        with store.lock:
            return wo_response(request, get_wo(wo_id), inputs=with_inputs is not False)

    def update(request: Request, wo_id: str, body: Any, partial: bool) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
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
            write_event(wo, "updated")
            return wo_response(request, wo)

    @app.put(
        PREFIX + "/work-orders/{wo_id}/",
        openapi_extra=_body(dict(_WRITABLE_SCHEMA, required=["name"])),
    )
    def put_work_order(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        return update(request, wo_id, body, partial=False)

    @app.patch(PREFIX + "/work-orders/{wo_id}/", openapi_extra=_body(_WRITABLE_SCHEMA))
    def patch_work_order(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        return update(request, wo_id, body, partial=True)

    @app.delete(PREFIX + "/work-orders/{wo_id}/", status_code=204)
    def delete_work_order(wo_id: str) -> Response:
        with store.lock:
            store.remove(get_wo(wo_id))
        return Response(status_code=204)

    @app.get(PREFIX + "/work-orders/{wo_id}/timeline/")
    def timeline(
        request: Request,
        wo_id: str,
        page: str | None = Query(None),
        page_size: str | None = Query(None),
    ) -> Response:
        p = parse_positive_int("page", page, 1)
        size = parse_positive_int("page_size", page_size, 100)
        with store.lock:
            events = get_wo(wo_id).events
            start, end, links = page_of(request, len(events), p, size)
            return json_response(
                request, {"count": len(events), **links, "results": events[start:end]}
            )

    def metadata_write(request: Request, wo_id: str, body: Any, replace: bool) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
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
            write_event(wo, "metadata_update")
            return json_response(request, wo.metadata)

    _meta_schema = _body(
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        }
    )

    @app.patch(PREFIX + "/work-orders/{wo_id}/metadata/", openapi_extra=_meta_schema)
    def patch_metadata(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        return metadata_write(request, wo_id, body, replace=False)

    @app.put(PREFIX + "/work-orders/{wo_id}/metadata/", openapi_extra=_meta_schema)
    def put_metadata(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        return metadata_write(request, wo_id, body, replace=True)

    # -- task groups ------------------------------------------------------------------------

    @app.get(PREFIX + "/task-groups/")
    def list_task_groups(
        request: Request, page: str | None = Query(None), page_size: str | None = Query(None)
    ) -> Response:
        p = parse_positive_int("page", page, 1)
        size = parse_positive_int("page_size", page_size, 100)
        groups = [g.public for g in store.app.current.groups]
        start, end, links = page_of(request, len(groups), p, size)
        return json_response(request, {"count": len(groups), **links, "results": groups[start:end]})

    @app.get(PREFIX + "/task-groups/{key}/")
    def retrieve_task_group(request: Request, key: str) -> Response:
        found = store.task_groups_by_id.get(key)
        if found is not None:
            return json_response(request, found[1].public)
        group = store.app.current.groups_by_name.get(key)
        if group is None:
            raise not_found()
        return json_response(request, group.public)

    # -- analysis and corrections ------------------------------------------------------------

    @app.post(PREFIX + "/work-orders/{wo_id}/analyze/", openapi_extra=_body(_ANALYZE_SCHEMA))
    def analyze(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
            parsed = parse_analyze(wo, body)
            run_analysis(sim, wo, parsed)
            return wo_response(request, wo)

    @app.post(
        PREFIX + "/work-orders/{wo_id}/analyze/callback/",
        status_code=202,
        openapi_extra=_body(dict(_ANALYZE_SCHEMA, required=["inputs", "callback_url"])),
    )
    def analyze_callback(request: Request, wo_id: str, body: Any = Body(None)) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
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

    @app.patch(
        PREFIX + "/work-orders/{wo_id}/tasks/{task_id}/correction/",
        openapi_extra=_body(
            {
                "type": "object",
                "required": ["corrected_value"],
                "properties": {"corrected_value": {"type": ["boolean", "number", "string"]}},
            }
        ),
    )
    def correct(request: Request, wo_id: str, task_id: str, body: Any = Body(None)) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
            task: TaskDef | None = next((t for t in wo.active_tasks() if t.id == task_id), None)
            if task is None:
                raise not_found()
            store.correction_calls[(wo.id, task.id, "calls")] += 1
            body = require_object(body)
            if "corrected_value" not in body:
                raise bad_request("corrected_value", "This field is required.")
            try:
                value = coerce_value(task.outcome_type, body["corrected_value"])
            except InvalidValue as exc:
                raise bad_request("corrected_value", str(exc)) from None
            if wo.states.get(task.id) is None:
                raise bad_request(
                    None,
                    f"Task {task.name!r} has never been analysed on this work order; "
                    "there is nothing to correct.",
                )
            if not task.allows(value):
                allowed = "; ".join(
                    f"{r.get('sentence')!r}: {json.dumps(r.get('schema'))}"
                    for r in task.rules or ()
                )
                raise bad_request(
                    "corrected_value",
                    f"{value!r} matches no verdict rule of task {task.name!r} (rules: {allowed}).",
                )
            when = now()
            state = store.apply_correction(wo, task, value, when=when)
            store.correction_calls[(wo.id, task.id, "accepted")] += 1
            store.touch(wo, when)
            return json_response(request, {"id": task.id, "state": state})

    # -- the simulator's own view -------------------------------------------------------------

    @app.get("/_sim/truth")
    def sim_truth(request: Request) -> Response:
        return json_response(request, sim.truth())

    @app.get("/_sim/work-orders/{wo_id}")
    def sim_work_order(request: Request, wo_id: str) -> Response:
        with store.lock:
            wo = get_wo(wo_id)
            return json_response(
                request, {"id": wo.id, "truth": wo.truth, "app_version": wo.app_version.label}
            )

    @app.get("/_sim/requests")
    def sim_requests(request: Request) -> Response:
        with sim.count_lock:
            return json_response(
                request,
                {
                    "total": sim.counts.get("total", 0),
                    "routes": {k: v for k, v in sim.counts.items() if k != "total"},
                },
            )

    @app.delete("/_sim/requests", status_code=204)
    def sim_reset_requests() -> Response:
        with sim.count_lock:
            sim.counts.clear()
        return Response(status_code=204)

    @app.get("/_sim/corrections")
    def sim_corrections(request: Request) -> Response:
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

    @app.get("/_sim/callbacks")
    def sim_callbacks(request: Request) -> Response:
        return json_response(request, {"results": list(sim.callbacks)})

    @app.get("/_sim/config")
    def sim_config(request: Request) -> Response:
        return json_response(request, config.public())

    @app.patch("/_sim/config", openapi_extra=_body(_OBJ))
    def sim_config_patch(request: Request, body: Any = Body(None)) -> Response:
        body = require_object(body)
        allowed = set(RuntimeConfig.__dataclass_fields__) - {"fault_seed"}
        unknown = set(body) - allowed
        if unknown:
            raise bad_request(
                None,
                f"Unknown settings: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(allowed))}.",
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

    return app
