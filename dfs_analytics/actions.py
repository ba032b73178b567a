"""Acting on work orders: analyse, re-analyse, correct one task — checked before anything is sent.

:func:`analyze` sends one image for one task group and returns the group's tasks before and
after; :func:`reanalyze` re-submits work orders' stored inputs, concurrently; :func:`correct`
sets one task's corrected value (a value, its string form or a verdict sentence). A lost
answer raises :class:`~dfs_analytics.errors.OutcomeUnknownError`; for many corrections use
:class:`~dfs_analytics.campaign.Campaign`, which journals and resumes.

Never re-sends a write blindly, never reads the dataset or imports the loaders, and never
decides a value or builds a task's row itself (:mod:`~dfs_analytics.rules` and
:func:`~dfs_analytics.normalize.task_row` do).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from .callbacks import CallbackReceiver
from .client import Client
from .errors import ConfigurationError, DFSError, InvalidCorrectionError
from .normalize import TASK_ROW_COLUMNS, task_row
from .progress import progress_bar
from .rules import json_equal
from .tasks import allowed_values, find_task, resolve_value  # noqa: F401

IMAGE_LIMIT = 5 * 1024 * 1024
PDF_LIMIT = 8 * 1024 * 1024


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


_STATE_COLUMNS = ("analyzed_value", "corrected_value", "message", "is_conform")
_CHANGE_COLUMNS = [c for c in TASK_ROW_COLUMNS if c != "outcome_type"]


def _changes(
    work_order_id: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> pd.DataFrame:
    """The group's tasks after an analysis, with their value and message before it and
    whether their state ``changed``."""
    rows = []
    for task_id, task in after.items():
        old = task_row(work_order_id, before.get(task_id))
        new = task_row(work_order_id, task)
        rows.append(
            {
                **new,
                "task_id": task_id,
                "before_value": old["value"],
                "before_message": old["message"],
                "changed": any(not json_equal(old[k], new[k]) for k in _STATE_COLUMNS),
            }
        )
    return pd.DataFrame(
        rows, columns=[*_CHANGE_COLUMNS, "before_value", "before_message", "changed"]
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
