"""The fake AI and the analysis callbacks: values for a photo, their recording, and delivery.

:func:`ai_values` gives the AI's values for one task group, deterministic in the photo (its URL
or bytes); ``dfs-sim:<task>=<value>`` in either forces a value. :func:`run_analysis` records an
analysis in the store (states, input, event); :func:`deliver_callback` runs one later and POSTs
the answer to a loopback receiver, with retries. This module never validates a request (see
:mod:`.validation`) and never calls anything but loopback addresses.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
import uuid
from typing import Any

import requests

from .state import SimState
from .verdicts import InvalidCorrection, typed_value
from .work_order import WorkOrder, dumps, fmt_date, now

DIRECTIVE_RE = re.compile(r"dfs-sim:([A-Za-z0-9_]+)=([^;&\s\"'<>]+)")


def directives(text: str) -> dict[str, str]:
    """The ``dfs-sim:<task>=<value>`` directives in ``text``, by task name."""
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
                values[task.name] = typed_value(task.outcome_type, forced[task.name])
                continue
            except InvalidCorrection:
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


def deliver_callback(
    sim: SimState, wo_id: str, parsed: dict[str, Any], url: str, analysis_id: str
) -> None:
    """Run a callback analysis, then POST the answer to ``url`` (up to 3 retries with backoff).

    ``url`` must have passed :func:`~dfs_analytics.config.is_loopback_url` (the route checks
    it)."""
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
