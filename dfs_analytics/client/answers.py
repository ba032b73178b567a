"""What an answer must look like for the client to use it, and the typed error of one it cannot.

A successful answer's JSON is read by orjson (about twice as quick as ``json``), falling back to
``requests``' own reading wherever the two could differ, so the values are the same. It is
checked only where the frames need it (a work order's ``tasks`` must be an array of
objects...); extra or missing keys, a bare array, a ``count`` that is not a number are taken
as they come. A failed answer becomes the error its status maps to in
:mod:`dfs_analytics.errors`, with the server's ``detail`` and what to do next.

It never sends a request, never retries, and never changes an answer it accepts.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from collections.abc import Callable, Collection
from typing import Any

import orjson
import requests

from ..errors import InvalidResponseError, ThrottledError, error_for_status, hint_for
from .retry import retry_after, retry_note
from .safety import url_path

OK_STATUSES = frozenset({200, 201, 202, 204})  # what a call expects unless it says otherwise

#: the hint of an answer the client cannot use
SHAPE_HINT = (
    "The server does not answer in the Field Services API's shapes: check the base URL, or "
    "report the answer to the API's maintainers."
)


def read_answer(
    response: requests.Response,
    *,
    expected: Collection[int] = OK_STATUSES,
    base_path: str,
    site: str,
) -> Any:
    """The JSON of a successful response (None for an empty body), or the typed error of a
    failed one. ``base_path`` is the API's base URL path (it says which endpoint answered);
    ``site`` is the base URL as messages show it."""
    method = response.request.method or "GET"
    status = response.status_code
    path = url_path(response.url)
    kind = endpoint_of(response.url, base_path)
    if status in expected and status < 400:
        if not response.content:
            return None
        body = _json_of(response, method, path)
        problem = shape_problem(kind, body) if method == "GET" else None
        if problem:
            raise InvalidResponseError(
                method=method,
                path=path,
                status=status,
                detail=f"{problem}: the client cannot use this answer",
                hint=SHAPE_HINT,
            )
        return body
    try:
        parsed = parse_json(response)
    except (ValueError, RecursionError):  # not JSON, or nested too deep: the text shows
        parsed = None
    hint = None
    if status == 404 and kind == "work orders":
        hint = (
            "The work-order list itself is not there: the base URL looks wrong "
            f"({site}); check the site id and region, or that a "
            "custom base_url ends with the API's /v0.2/."
        )
    note = retry_note(response)
    if note:
        hint = f"{note} " + (hint if hint is not None else hint_for(status))
    err = error_for_status(status)(
        method=method,
        path=path,
        status=status,
        detail=_detail(parsed, response.text),
        body=parsed,
        hint=hint,
    )
    if isinstance(err, ThrottledError):
        err.retry_after = retry_after(response)
    raise err


# an integer past 64 bits is a float to orjson, an int to json: bodies with a run of 19
# digits go to json. Digits become "0" and the rest " " (a C pass, 10x quicker than a regex).
_DIGITS_ONLY = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS = b"0" * 19
_UTF8 = frozenset({"utf-8", "utf8"})
_ORJSON_DEPTH = 1024  # orjson refuses JSON nested deeper than this


def parse_json(response: requests.Response) -> Any:
    """The body's JSON, as ``response.json()`` reads it, read by orjson when it gives the same
    values: a UTF-8 body (declared or guessed) without a number of 19 digits or more. Anything
    orjson refuses (NaN, a lone surrogate, invalid UTF-8, a BOM, nesting past 1024 levels...)
    is read by ``response.json()``, which accepts it or raises its own error.

    JSON nested deeper than orjson reads is a RecursionError at once when the recursion
    limit is below orjson's depth: ``json`` would refuse it too, but only after recursing to
    the limit, where any finalizer the garbage collector runs meanwhile fails."""
    content = response.content
    encoding = response.encoding
    if (encoding is None or encoding.lower() in _UTF8) and (
        _LONG_DIGITS not in content.translate(_DIGITS_ONLY)
    ):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            if str(exc).startswith("depth limit") and sys.getrecursionlimit() <= _ORJSON_DEPTH:
                raise RecursionError(
                    f"the JSON is nested deeper than {_ORJSON_DEPTH} levels"
                ) from None
            # otherwise read (or refused) by requests below, as it always was
    return response.json()


def _json_of(response: requests.Response, method: str, path: str) -> Any:
    """The parsed body of a successful answer; InvalidResponseError if it is not JSON or is
    nested deeper than Python's recursion limit."""
    try:
        return parse_json(response)
    except ValueError:
        raise InvalidResponseError(
            method=method,
            path=path,
            status=response.status_code,
            detail="the answer is not JSON: " + _detail(None, response.text),
            hint="Check that the base URL points at the Field Services API (.../v0.2/).",
        ) from None
    except RecursionError:  # json's decoder nests as deep as the text does
        raise InvalidResponseError(
            method=method,
            path=path,
            status=response.status_code,
            detail="the answer's JSON is nested too deep to read",
            hint=SHAPE_HINT,
        ) from None


def _detail(body: Any, text: str) -> str:
    """The server's message in an error answer: its ``detail``, its per-field messages, or a
    short excerpt of a body that is not JSON (tags removed)."""
    if isinstance(body, dict):
        if "detail" in body and len(body) == 1:
            return str(body["detail"])
        parts = []
        for key, value in body.items():
            msgs = value if isinstance(value, list) else [value]
            parts.append(f"{key}: {' '.join(str(m) for m in msgs)}")
        return "; ".join(parts) or "(empty error body)"
    if isinstance(body, list):
        return "; ".join(str(m) for m in body)
    snippet = re.sub(r"<[^>]+>", " ", (text or "")[:20_000])  # 200 characters are shown
    snippet = " ".join(snippet.split())
    return (snippet[:200] + "...") if len(snippet) > 200 else (snippet or "(no body)")


def endpoint_of(url: str, base_path: str) -> str | None:
    """Which kind of answer a GET of ``url`` gives (``"work orders"``, ``"work order"``,
    ``"timeline"``, ``"task groups"``, ``"task group"``), if known; ``base_path`` is the
    path of the API's base URL."""
    path = urllib.parse.urlsplit(url).path
    if not path.startswith(base_path):
        return None
    parts = path[len(base_path) :].strip("/").split("/")
    if parts[0] == "work-orders":
        return {1: "work orders", 2: "work order"}.get(len(parts)) or (
            "timeline" if len(parts) == 3 and parts[2] == "timeline" else None
        )
    if parts[0] == "task-groups":
        return {1: "task groups", 2: "task group"}.get(len(parts))
    return None


def shape_problem(kind: str | None, body: Any) -> str | None:
    """Why the client cannot use ``body`` as an answer of ``kind`` (see :func:`endpoint_of`),
    or None. A list answer is a page (``results``) or a bare array; a page's other keys are
    checked by the walk."""
    if kind is None:
        return None
    check, is_list = _SHAPES[kind]
    if not is_list:
        return check(body)
    if isinstance(body, dict):
        if "results" not in body:
            return None  # not a page: the walk says so
        items = body["results"]
        if items is None:
            return None
        if not isinstance(items, list):
            return f"'results' is {what(items)}, not an array"
    elif isinstance(body, list):
        items = body
    else:
        return f"the answer is {what(body)}, not a page or an array of {kind}"
    for item in items:
        problem = check(item)
        if problem:
            return problem
    return None


_SCALARS = (str, int, float, bool, type(None))
_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def what(value: Any) -> str:
    """What JSON ``value`` is, as messages say it: ``null``, ``an array``, ``a number``..."""
    if value is None:
        return "null"
    return _KINDS.get(type(value)) or ("a number" if isinstance(value, int | float) else "?")


def _task_problem(task: Any, where: str) -> str | None:
    if not isinstance(task, dict):
        return f"{where}: a task is {what(task)}, not an object"
    for key in ("id", "name", "task_group_name"):
        if not isinstance(task.get(key), _SCALARS):
            return f"{where}: a task's {key!r} is {what(task.get(key))}"
    return None


def _tasks_problem(tasks: Any, where: str) -> str | None:
    """Why ``tasks`` (of a work order or a task group, said by ``where``) is not a usable
    list of tasks, or None."""
    if not isinstance(tasks, list):
        return f"{where}: 'tasks' is {what(tasks)}, not an array"
    for task in tasks:
        problem = _task_problem(task, where)
        if problem:
            return problem
    return None


def _work_order_problem(wo: Any) -> str | None:
    """Why the client cannot use ``wo`` as a work order, or None. Only what the frames need
    is checked: extra keys, missing ones and other types are taken as they come."""
    if not isinstance(wo, dict):
        return f"a work order is {what(wo)}, not an object"
    wo_id = wo.get("id")
    if not isinstance(wo_id, _SCALARS):
        return f"a work order's 'id' is {what(wo_id)}"
    tasks = wo.get("tasks")
    if tasks is None:
        return None
    where = f"work order {str(wo_id)[:80]!r}"
    problem = _tasks_problem(tasks, where)
    if problem:
        return problem
    for task in tasks:
        state = task.get("state")
        if state is not None and not isinstance(state, dict):
            return f"{where}: a task's 'state' is {what(state)}, not an object or null"
    return None


def _event_problem(event: Any) -> str | None:
    """Why the client cannot use ``event`` as a timeline event, or None."""
    if not isinstance(event, dict):
        return f"a timeline event is {what(event)}, not an object"
    if not isinstance(event.get("id"), _SCALARS):
        return f"a timeline event's 'id' is {what(event.get('id'))}"
    states = event.get("states")
    if states is None:
        return None
    if not isinstance(states, list):
        return f"a timeline event's 'states' is {what(states)}, not an array"
    for state in states:
        if state is not None and not isinstance(state, dict):
            return f"a timeline event's state is {what(state)}, not an object"
    return None


def _task_group_problem(group: Any) -> str | None:
    """Why the client cannot use ``group`` as a task group, or None."""
    if not isinstance(group, dict):
        return f"a task group is {what(group)}, not an object"
    for key in ("id", "name"):
        if not isinstance(group.get(key), _SCALARS):
            return f"a task group's {key!r} is {what(group.get(key))}"
    tasks = group.get("tasks")
    if tasks is None:
        return None
    return _tasks_problem(tasks, f"task group {str(group.get('name'))[:80]!r}")


# endpoint kind -> (checker of one item, whether the answer is a list)
_SHAPES: dict[str, tuple[Callable[[Any], str | None], bool]] = {
    "work orders": (_work_order_problem, True),
    "work order": (_work_order_problem, False),
    "timeline": (_event_problem, True),
    "task groups": (_task_group_problem, True),
    "task group": (_task_group_problem, False),
}
