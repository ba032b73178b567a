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
"""

from __future__ import annotations

import base64
import json
import mimetypes
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .client import Client
from .errors import ConfigurationError, DFSError
from .rules import InvalidValue, coerce_value, json_equal, matching_rule

IMAGE_LIMIT = 5 * 1024 * 1024
PDF_LIMIT = 8 * 1024 * 1024


class InvalidCorrectionError(ConfigurationError):
    """A correction that the task cannot take (unknown task, value not allowed, never analysed).
    Nothing was sent."""


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
    if value is None or (isinstance(value, float) and value != value):
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


def effective(state: Mapping[str, Any] | None) -> Any:
    """A state's effective value: the corrected one when set, else the analysed one."""
    if not state:
        return None
    corrected = state.get("corrected_value")
    return corrected if corrected is not None else state.get("analyzed_value")


# --------------------------------------------------------------------------------------------
# one work order in detail
# --------------------------------------------------------------------------------------------


def describe(client: Client, work_order_id: str) -> dict[str, Any]:
    """One work order in detail, for a detail view.

    Returns ``{"work_order": dict, "tasks": DataFrame, "timeline": DataFrame, "inputs": list}``
    where the tasks frame has, per task: ``task_group_name, task_id, task_name, outcome_type,
    analyzed_value, corrected_value, value, message, is_conform, color`` (the colour of the
    verdict's rule) and ``choices`` (the values its rules name, for a correction dropdown).
    """
    from .loaders import load_timeline

    work_order = client.get_work_order(work_order_id, include_inputs=True)
    rows = []
    for task in work_order.get("tasks") or ():
        state = task.get("state") or {}
        value = effective(state) if state else None
        rule = matching_rule(task.get("outcome_validation"), value) if state else None
        rows.append(
            {
                "task_group_name": task.get("task_group_name"),
                "task_id": task.get("id"),
                "task_name": task.get("name"),
                "outcome_type": task.get("outcome_type"),
                "analyzed_value": state.get("analyzed_value"),
                "corrected_value": state.get("corrected_value"),
                "value": value,
                "message": state.get("message"),
                "is_conform": state.get("is_conform"),
                "color": (rule or {}).get("color"),
                "choices": allowed_values(task),
            }
        )
    return {
        "work_order": work_order,
        "tasks": pd.DataFrame(
            rows,
            columns=[
                "task_group_name",
                "task_id",
                "task_name",
                "outcome_type",
                "analyzed_value",
                "corrected_value",
                "value",
                "message",
                "is_conform",
                "color",
                "choices",
            ],
        ),
        "timeline": load_timeline(client, [work_order_id], progress=False),
        "inputs": list(work_order.get("inputs") or []),
    }


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
    callback_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Run the AI on one image for one task group of a work order.

    ``image``: an http(s) URL, a file path, or bytes (sent as a data URI with its MIME type;
    over 5 MB for images or 8 MB for PDFs is refused before sending).

    Returns a frame of the group's tasks after the analysis (``value``, ``message``,
    ``is_conform`` ...) with ``before_value``, ``before_message`` and ``changed``. With
    ``callback_url`` the server answers later by POSTing to that URL; the function then returns
    the ``analysis_id`` to wait for (see :class:`CallbackReceiver`).
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
        return client.analyze_with_callback(
            work_order_id, task_group, value, callback_url, metadata=metadata, input_type=input_type
        )
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
    concurrently; a failure on one (``error`` column) does not stop the others. Returns one row
    per task of each re-run group: the value and verdict before and after, and ``changed``.
    """
    ids = list(dict.fromkeys(str(i) for i in work_order_ids))
    wanted = None if task_groups is None else set(task_groups)

    def one(wo_id: str) -> pd.DataFrame:
        try:
            work_order = client.get_work_order(wo_id, include_inputs=True)
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
                work_order = client.analyze(
                    wo_id, group, data["value"], input_type=data.get("type", "image")
                )
                frames.append(_changes(wo_id, before, _group_states(work_order, group)))
            return pd.concat(frames, ignore_index=True)
        except DFSError as exc:
            return pd.DataFrame([{"work_order_id": wo_id, "error": str(exc)}])

    show = client.settings.progress if progress is None else progress
    with (
        ThreadPoolExecutor(max_workers or client.settings.max_workers) as pool,
        tqdm(
            total=len(ids), desc="re-analysing", unit="wo", disable=not show, delay=0.3, leave=False
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


class CallbackReceiver:
    """A small HTTP server that collects analysis callbacks, for notebooks and tests.

    >>> with CallbackReceiver() as receiver:
    ...     analysis_id = analyze(client, wo_id, "roof-before", url, callback_url=receiver.url)
    ...     result = receiver.wait(analysis_id, timeout=30)   # the POSTed work order

    Listens on ``host`` (loopback by default) and a free ``port``; the server must be able to
    reach that address.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/callback"):
        self.payloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._cond:
                    receiver.payloads.append(payload)
                    receiver._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.path = path
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="dfs-callback-receiver"
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def wait(self, analysis_id: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The first payload (with this ``analysis_id``, if given); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for payload in self.payloads:
                    if analysis_id is None or payload.get("analysis_id") == analysis_id:
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no callback{' for analysis ' + analysis_id if analysis_id else ''} "
                        f"within {timeout} s at {self.url}"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
