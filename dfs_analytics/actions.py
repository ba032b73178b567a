"""Acting on work orders: analyse, re-analyse, correct one task — checked before anything is sent.

- :func:`analyze` sends one image (a URL, a file path or bytes) for one task group and returns
  the group's task states before and after.
- :func:`reanalyze` re-submits work orders' stored inputs, concurrently.
- :func:`correct` sets one task's corrected value, given as a Python value, its string form or
  a verdict sentence of the task's rules ("OK", "KO").
- :class:`CallbackReceiver` collects analysis results that the server POSTs back
  (``analyze(..., callback_url=receiver.url)``).

Writes are never re-sent blindly: a lost answer raises
:class:`~dfs_analytics.errors.OutcomeUnknownError`. For many corrections, use
:class:`dfs_analytics.campaign.Campaign`, which journals and resumes.

This module writes; it never builds read models or views (those of the widgets live in
:mod:`~dfs_analytics.widget_views`), never reads the dataset or imports the loaders, and never
re-implements what a value or a verdict is: :mod:`~dfs_analytics.rules` says that.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from .client import Client
from .errors import ConfigurationError, DFSError, InvalidCorrectionError
from .progress import progress_bar
from .rules import (
    InvalidValue,
    coerce_value,
    effective,
    is_missing,
    json_equal,
    matching_rule,
)

IMAGE_LIMIT = 5 * 1024 * 1024
PDF_LIMIT = 8 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# tasks and values
# --------------------------------------------------------------------------------------------


def find_task(work_order: Mapping[str, Any], task: str) -> Mapping[str, Any]:
    """The task of a work order given by id or by name; raises InvalidCorrectionError."""
    tasks = work_order.get("tasks") or []
    for t in tasks:
        if t.get("id") == task:
            return t
    named = [t for t in tasks if t.get("name") == task]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise InvalidCorrectionError(
            f"work order {work_order.get('id')} has {len(named)} tasks named {task!r}; give the "
            "task id instead."
        )
    names = ", ".join(sorted(str(t.get("name")) for t in tasks))
    raise InvalidCorrectionError(
        f"work order {work_order.get('id')} has no task {task!r} (by id or name); "
        f"its tasks: {names}."
    )


def allowed_values(task: Mapping[str, Any]) -> list[tuple[Any, str | None]]:
    """Values the task's rules name explicitly, with their verdict sentence (for dropdowns).

    Boolean tasks without rules give ``[(True, None), (False, None)]``; rules whose schema is
    a range or a pattern add nothing (any matching value is allowed, see :func:`resolve_value`).
    """
    out: list[tuple[Any, str | None]] = []
    rules = task.get("outcome_validation") or []
    for rule in rules:
        schema = rule.get("schema") or {}
        values = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
        for v in values:
            if not any(json_equal(v, seen) for seen, _ in out):
                out.append((v, rule.get("sentence")))
    if not rules and task.get("outcome_type") == "Boolean":
        out = [(True, None), (False, None)]
    return out


def resolve_value(task: Mapping[str, Any], value: Any) -> Any:
    """The value to send for a correction of ``task``, checked against its type and rules.

    Accepts a Python value, its string form (``"true"``, ``"12.5"``) or a verdict sentence of
    the task's rules (``"OK"``, ``"Non conforme"``) when that sentence names exactly one value.
    Raises InvalidCorrectionError saying what the task accepts.
    """
    outcome_type = task.get("outcome_type") or "Text"
    name = task.get("name")
    rules = task.get("outcome_validation") or []
    if is_missing(value):
        raise InvalidCorrectionError(f"task {name!r}: a correction needs a value (got {value!r}).")
    # a verdict sentence, when it names one value
    if isinstance(value, str) and outcome_type != "Text":
        by_sentence = [v for v, sentence in allowed_values(task) if sentence == value.strip()]
        if len(by_sentence) == 1:
            return by_sentence[0]
    try:
        coerced = coerce_value(outcome_type, value)
    except InvalidValue as exc:
        raise InvalidCorrectionError(
            f"task {name!r} ({outcome_type}): {exc} {_accepted(task)}"
        ) from None
    if rules and matching_rule(rules, coerced) is None:
        if isinstance(value, str) and outcome_type == "Text":
            by_sentence = [v for v, sentence in allowed_values(task) if sentence == value.strip()]
            if len(by_sentence) == 1:
                return by_sentence[0]
        raise InvalidCorrectionError(
            f"task {name!r}: {value!r} matches none of its verdict rules. {_accepted(task)}"
        )
    return coerced


def _accepted(task: Mapping[str, Any]) -> str:
    named = allowed_values(task)
    rules = task.get("outcome_validation") or []
    if named and all(
        ("const" in (r.get("schema") or {}) or "enum" in (r.get("schema") or {})) for r in rules
    ):
        shown = ", ".join(f"{v!r}" + (f" ({s})" if s else "") for v, s in named)
        return f"Allowed: {shown}."
    if rules:
        shown = "; ".join(f"{r.get('sentence')!r}: {json.dumps(r.get('schema'))}" for r in rules)
        return f"Rules: {shown}."
    return f"Any {task.get('outcome_type', '')} value is allowed."


# --------------------------------------------------------------------------------------------
# correct
# --------------------------------------------------------------------------------------------


def correct(client: Client, work_order_id: str, task: str, value: Any) -> dict[str, Any]:
    """Correct one task (by id or name) of one work order; returns what changed.

    The value is checked against the task's type and rules, and the task must have been
    analysed, before anything is sent. Returns ``{"work_order_id", "task_id", "task_name",
    "value", "before", "after"}`` (``before``/``after``: the task's state dicts).
    """
    work_order = client.get_work_order(work_order_id, include_inputs=False)
    target = find_task(work_order, task)
    new_value = resolve_value(target, value)
    before = target.get("state")
    if not before or before.get("analyzed_value") is None:
        raise InvalidCorrectionError(
            f"task {target.get('name')!r} of work order {work_order_id} was never analysed: there "
            "is nothing to correct (analyse it first)."
        )
    answer = client.correct(work_order_id, str(target["id"]), new_value)
    return {
        "work_order_id": work_order_id,
        "task_id": target["id"],
        "task_name": target.get("name"),
        "value": new_value,
        "before": before,
        "after": (answer or {}).get("state"),
    }


# --------------------------------------------------------------------------------------------
# analyze
# --------------------------------------------------------------------------------------------

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"%PDF", "application/pdf"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]


def _mime(data: bytes, filename: str | None = None) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if filename:
        guessed = mimetypes.guess_type(filename)[0]
        if guessed:
            return guessed
    return "application/octet-stream"


def image_value(image: str | Path | bytes) -> tuple[str, str]:
    """``(value, input type)`` for an image: a URL as is, a file or bytes as a data URI.

    Raises ConfigurationError for a missing file or one over the size limit (5 MB for images,
    8 MB for PDFs), before anything is sent.
    """
    filename = None
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return image, "image"
    if isinstance(image, (str, Path)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"image {str(image)!r} is neither an http(s) URL nor an existing file."
            )
        filename = path.name
        data = path.read_bytes()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        raise ConfigurationError(
            f"image must be a URL, a file path or bytes, got {type(image).__name__}."
        )
    mime = _mime(data, filename)
    is_pdf = mime == "application/pdf"
    limit = PDF_LIMIT if is_pdf else IMAGE_LIMIT
    if len(data) > limit:
        raise ConfigurationError(
            f"the {'PDF' if is_pdf else 'image'} is {len(data) / 1024 / 1024:.1f} MB; the limit is "
            f"{limit // 1024 // 1024} MB. Resize or compress it first."
        )
    if not data:
        raise ConfigurationError("the image is empty.")
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{mime};base64,{encoded}", "image"


def _group_states(work_order: Mapping[str, Any], group: str) -> dict[str, Mapping[str, Any]]:
    return {
        str(t.get("id")): t
        for t in work_order.get("tasks") or ()
        if t.get("task_group_name") == group
    }


def _changes(
    work_order_id: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> pd.DataFrame:
    rows = []
    for task_id, task in after.items():
        old = (before.get(task_id) or {}).get("state") or {}
        new = task.get("state") or {}
        rows.append(
            {
                "work_order_id": work_order_id,
                "task_group_name": task.get("task_group_name"),
                "task_id": task_id,
                "task_name": task.get("name"),
                "analyzed_value": new.get("analyzed_value"),
                "corrected_value": new.get("corrected_value"),
                "value": effective(new),
                "message": new.get("message"),
                "is_conform": new.get("is_conform"),
                "before_value": effective(old),
                "before_message": old.get("message"),
                "changed": any(
                    not json_equal(old.get(k), new.get(k))
                    for k in ("analyzed_value", "corrected_value", "message", "is_conform")
                ),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "work_order_id",
            "task_group_name",
            "task_id",
            "task_name",
            "analyzed_value",
            "corrected_value",
            "value",
            "message",
            "is_conform",
            "before_value",
            "before_message",
            "changed",
        ],
    )


def analyze(
    client: Client,
    work_order_id: str,
    task_group: str,
    image: str | Path | bytes,
    *,
    callback_url: str | CallbackReceiver | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Run the AI on one image for one task group of a work order.

    ``image``: an http(s) URL, a file path, or bytes (sent as a data URI with its MIME type;
    over 5 MB for images or 8 MB for PDFs is refused before sending).

    Returns a frame of the group's tasks after the analysis (``value``, ``message``,
    ``is_conform`` ...) with ``before_value``, ``before_message`` and ``changed``. With
    ``callback_url`` (a URL, or a :class:`CallbackReceiver`, which is then told to expect the
    analysis) the server answers later by POSTing to that URL; the function then returns the
    ``analysis_id`` (a str) to wait for.
    """
    value, input_type = image_value(image)
    before_wo = client.get_work_order(work_order_id, include_inputs=False)
    groups = {t.get("task_group_name") for t in before_wo.get("tasks") or ()}
    if task_group not in groups:
        raise ConfigurationError(
            f"work order {work_order_id} has no task group {task_group!r}; its groups: "
            f"{', '.join(sorted(str(g) for g in groups))}."
        )
    if callback_url is not None:
        receiver = callback_url if isinstance(callback_url, CallbackReceiver) else None
        analysis_id = client.analyze_with_callback(
            work_order_id,
            task_group,
            value,
            receiver.url if receiver is not None else str(callback_url),
            metadata=metadata,
            input_type=input_type,
        )
        if receiver is not None:
            receiver.expect(analysis_id)
        return analysis_id
    after_wo = client.analyze(
        work_order_id, task_group, value, metadata=metadata, input_type=input_type
    )
    return _changes(
        work_order_id, _group_states(before_wo, task_group), _group_states(after_wo, task_group)
    )


def reanalyze(
    client: Client,
    work_order_ids: Iterable[str],
    task_groups: Sequence[str] | None = None,
    *,
    max_workers: int | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Re-submit work orders' stored inputs to the AI (the latest input of each task group).

    ``task_groups=None`` re-runs every group that has a stored input. Work orders are processed
    concurrently. Returns one row per task of each re-run group: the value and verdict before
    and after, and ``changed``; ``error`` is null on those rows. A failure is reported on a row
    of its own with its ``error``: per work order when it could not be read (or has no stored
    input), per ``task_group_name`` when that group's analysis failed. A failure never drops
    the results of other groups or work orders.
    """
    ids = list(dict.fromkeys(str(i) for i in work_order_ids))
    wanted = None if task_groups is None else set(task_groups)

    def one(wo_id: str) -> pd.DataFrame:
        try:
            work_order = client.get_work_order(wo_id, include_inputs=True)
        except DFSError as exc:
            return pd.DataFrame([{"work_order_id": wo_id, "error": str(exc)}])
        latest: dict[str, Mapping[str, Any]] = {}
        for item in work_order.get("inputs") or ():
            group = item.get("task_group_name")
            data = item.get("data") or {}
            if group and data.get("value") and (wanted is None or group in wanted):
                latest[group] = item
        if not latest:
            return pd.DataFrame(
                [{"work_order_id": wo_id, "error": "no stored input for these task groups"}]
            )
        frames = []
        for group, item in latest.items():
            before = _group_states(work_order, group)
            data = item["data"]
            try:
                work_order = client.analyze(
                    wo_id, group, data["value"], input_type=data.get("type", "image")
                )
            except DFSError as exc:  # this group only: the others' results stand
                frames.append(
                    pd.DataFrame(
                        [{"work_order_id": wo_id, "task_group_name": group, "error": str(exc)}]
                    )
                )
                continue
            frames.append(_changes(wo_id, before, _group_states(work_order, group)))
        return pd.concat(frames, ignore_index=True)

    with (
        # the client's limiter decides how many of these threads send at once
        ThreadPoolExecutor(max_workers or client.settings.workers) as pool,
        progress_bar(
            progress, client.settings.progress, total=len(ids), desc="re-analysing", unit="wo"
        ) as bar,
    ):
        results = []
        for frame in pool.map(one, ids):
            results.append(frame)
            bar.update(1)
    if not results:
        return _changes("", {}, {}).assign(error=None)
    out = pd.concat(results, ignore_index=True)
    if "error" not in out:
        out["error"] = None
    return out


# --------------------------------------------------------------------------------------------
# callbacks
# --------------------------------------------------------------------------------------------


class CallbackReceiver(AbstractContextManager["CallbackReceiver"]):
    """A small HTTP server that collects analysis callbacks, for notebooks and tests.

    >>> with CallbackReceiver() as receiver:
    ...     analysis_id = analyze(client, wo_id, "roof-before", url, callback_url=receiver)
    ...     result = receiver.wait(analysis_id, timeout=30)   # the POSTed work order

    Listens on ``host`` (loopback by default) and a free ``port``; the server must be able to
    reach that address. Only the server should be able to deliver results, so the receiver:

    - answers only on ``url``, whose path ends in a random token (``path`` is its prefix);
      any other path gets 404;
    - accepts only a JSON object naming its ``analysis_id`` (else 400), of at most
      ``max_body`` bytes (else 413, without reading the rest);
    - hands out a payload only to whoever waits for its id: :meth:`wait` with an id returns
      that analysis' payload; without an id, the first payload of an analysis it was told about
      (:meth:`expect`, :meth:`wait`, or ``analyze(..., callback_url=receiver)``), or of any
      analysis while it knows none. Payloads of analyses it was not told about are kept
      aside (at most ``UNCLAIMED_LIMIT``, oldest dropped first) in case their id is waited
      for later: a callback may arrive before ``analyze`` has returned its id.

    Refused requests are listed in :attr:`refused` (status and reason, the last 100).
    """

    MAX_BODY = 32 * 1024 * 1024  # a work order with its inputs (data URIs of up to 8 MB each)
    UNCLAIMED_LIMIT = 1000
    READ_TIMEOUT = 30.0  # seconds a sender may stall before its connection is dropped

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/callback",
        *,
        max_body: int = MAX_BODY,
    ):
        self.max_body = int(max_body)
        prefix = "/" + path.strip("/") if path.strip("/") else ""
        self.path = f"{prefix}/{secrets.token_urlsafe(32)}"
        self.refused: deque[tuple[int, str]] = deque(maxlen=100)
        self._cond = threading.Condition()
        self._by_id: dict[str, dict[str, Any]] = {}  # first payload per analysis, arrival order
        self._expected: set[str] = set()
        self._unclaimed: deque[str] = deque()
        self._closed = False
        self._server = ThreadingHTTPServer((host, port), _callback_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="dfs-callback-receiver"
        )
        self._thread.start()

    def __repr__(self) -> str:
        host, port = self._server.server_address[:2]
        return f"<CallbackReceiver http://{host}:{port}, {len(self._by_id)} payload(s)>"

    @property
    def url(self) -> str:
        """The URL to give the server as ``callback_url`` (it holds the secret token)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """Every accepted payload still held, in arrival order (one per analysis)."""
        with self._cond:
            return list(self._by_id.values())

    def expect(self, *analysis_ids: str) -> None:
        """Tell the receiver which analyses to wait for (their payloads are then kept)."""
        with self._cond:
            for analysis_id in analysis_ids:
                self._expected.add(str(analysis_id))
                if analysis_id in self._unclaimed:
                    self._unclaimed.remove(analysis_id)

    def wait(self, analysis_id: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The POSTed payload of ``analysis_id`` (a dict: the analysed work order plus its
        ``analysis_id``); without an id, the first payload of an expected analysis (see the
        class docstring). Payloads are not consumed. Raises TimeoutError after ``timeout``
        seconds, saying which requests were refused meanwhile, if any."""
        if analysis_id is not None:
            self.expect(analysis_id)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._find(analysis_id)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    refused = ""
                    if self.refused:
                        shown = "; ".join(f"{s} {r}" for s, r in list(self.refused)[-3:])
                        refused = f" ({len(self.refused)} request(s) refused, last: {shown})"
                    raise TimeoutError(
                        f"no callback{' for analysis ' + analysis_id if analysis_id else ''} "
                        f"within {timeout} s at {self.url}{refused}"
                    )
                self._cond.wait(left)

    def _find(self, analysis_id: str | None) -> dict[str, Any] | None:
        if analysis_id is not None:
            return self._by_id.get(analysis_id)
        for key, payload in self._by_id.items():
            if not self._expected or key in self._expected:
                return payload
        return None

    def _accept(self, payload: dict[str, Any]) -> None:
        analysis_id = payload["analysis_id"]
        with self._cond:
            if analysis_id in self._by_id:  # a re-delivery: the first one stands
                return
            self._by_id[analysis_id] = payload
            if analysis_id not in self._expected:
                self._unclaimed.append(analysis_id)
                while len(self._unclaimed) > self.UNCLAIMED_LIMIT:
                    del self._by_id[self._unclaimed.popleft()]
            self._cond.notify_all()

    def _refuse(self, status: int, reason: str) -> None:
        with self._cond:
            self.refused.append((status, reason))

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BodyTooLarge(Exception):
    pass


def _callback_handler(receiver: CallbackReceiver) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one receiver."""

    class Handler(BaseHTTPRequestHandler):
        timeout = receiver.READ_TIMEOUT

        def do_POST(self) -> None:
            target = self.path.split("?", 1)[0]
            if not secrets.compare_digest(target.encode(), receiver.path.encode()):
                self._answer(404, "unknown path")
                return
            try:
                body = self._body(receiver.max_body)
            except _BodyTooLarge as exc:
                self._answer(413, str(exc))
                return
            except ValueError as exc:
                self._answer(400, str(exc))
                return
            if body is None:
                self._answer(411, "a Content-Length or a chunked body is required")
                return
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                self._answer(400, "the body is not JSON")
                return
            if not isinstance(payload, dict):
                self._answer(400, f"a JSON {type(payload).__name__} instead of an object")
                return
            if not isinstance(payload.get("analysis_id"), str) or not payload["analysis_id"]:
                self._answer(400, "the payload names no analysis_id")
                return
            receiver._accept(payload)
            self.send_response(204)
            self.end_headers()

        def _body(self, limit: int) -> bytes | None:
            """The request body, or None when its length is not given; raises _BodyTooLarge
            as soon as it is known to exceed ``limit``, and ValueError when malformed."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._chunked(limit)
            length = self.headers.get("Content-Length")
            if length is None:
                return None
            try:
                size = int(length)
            except ValueError:
                raise ValueError(f"bad Content-Length {length[:40]!r}") from None
            if size < 0:
                raise ValueError(f"bad Content-Length {length[:40]!r}")
            if size > limit:
                raise _BodyTooLarge(f"a body of {size} bytes (the limit is {limit})")
            body = self.rfile.read(size)
            if len(body) < size:
                raise ValueError("the body is shorter than its Content-Length")
            return body

        def _chunked(self, limit: int) -> bytes:
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ValueError("a malformed chunk") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > limit:
                    raise _BodyTooLarge(f"a chunked body over {limit} bytes")
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ValueError("a chunk shorter than announced")
                parts.append(chunk)
                self.rfile.readline(1024)  # the CRLF after the chunk

        def _answer(self, status: int, reason: str) -> None:
            receiver._refuse(status, reason)
            # the rest of a refused body is never read: close rather than resynchronise
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Connection", "close")
            text = reason.encode()
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
