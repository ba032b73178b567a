"""Correction campaigns: many corrections, validated first, journaled, resumable, verified.

>>> campaign = dfs.Campaign(client, "plan.csv", journal="fix.jsonl")
>>> campaign.validate()     # problems; nothing is sent while there are any
>>> campaign.preview()      # per row: current value, new value, apply / skip / invalid
>>> campaign.apply()        # concurrent, journaled; run it again to resume
>>> campaign.verify()       # rows whose server state differs from the plan

The preview is what the server held when it was read; :meth:`Campaign.apply` decides each row
again from the task's state read right before sending it (someone may have changed it since).

A plan is a DataFrame or a CSV file with ``work_order_id``, ``task_name`` (or ``task_id``) and
``corrected_value`` (a value, its string form, or a verdict sentence such as "OK").

Never twice, never lost
-----------------------
Every attempt is appended to the JSONL journal and made durable (flushed and fsync'ed)
*before* the request is sent, and its outcome after. Running :meth:`Campaign.apply` again with
the same journal skips what was applied. A row whose outcome is in doubt (sent, but the answer
was lost, the server failed, or the process died) is checked against the server's current state
before anything is re-sent: the platform records every accepted correction call on the work
order's timeline, so a blind re-send would be a visible duplicate. Throttling and server errors
are retried; permanent failures (the server refusing the value) are reported, never dropped.

Retries: the client retries throttling, server errors and lost connections where that cannot
double an effect, within its ``retry_budget`` (see :class:`~dfs_analytics.Client`). The
campaign adds only what the client cannot decide: a correction whose outcome is in doubt is
checked on the server and sent again if it was not applied, at most ``MAX_ATTEMPTS`` times and
never past one ``retry_budget`` per row; a row still throttled or unreachable then is reported
(``failed`` or ``in doubt``) and the next run resumes it.

A new journal file is created owner-only (0600) and its folder fsync'ed. A journal holding
anything but records (and the torn line a crash may leave) raises :class:`JournalError`, naming
the file and the line, before anything is sent.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .actions import effective, find_task, resolve_value
from .client import Client
from .errors import (
    APIError,
    CampaignValidationError,
    ConfigurationError,
    DFSError,
    InvalidCorrectionError,
    JournalError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    ThrottledError,
    TransportError,
)
from .journal import Journal, last_events
from .rules import json_equal

__all__ = [
    "MAX_ATTEMPTS",
    "PLAN_COLUMNS",
    "Campaign",
    "CampaignValidationError",
    "Journal",
    "JournalError",
]

PLAN_COLUMNS = ("work_order_id", "task_name", "task_id", "corrected_value")
MAX_ATTEMPTS = 6


def _pause(seconds: float, deadline: float) -> None:
    """Sleep ``seconds`` (at most 8), never past ``deadline`` (a ``time.monotonic()``)."""
    time.sleep(max(0.0, min(8.0, seconds, deadline - time.monotonic())))


def _key(work_order_id: str, task_id: str, value: Any) -> str:
    return f"{work_order_id}/{task_id}/{json.dumps(value, sort_keys=True)}"


# --------------------------------------------------------------------------------------------
# the campaign
# --------------------------------------------------------------------------------------------


class Campaign:
    """A correction campaign: a plan of corrections applied safely (see the module docstring).

    Args:
        client: the :class:`~dfs_analytics.Client` to send with.
        plan: a DataFrame or CSV path with ``work_order_id``, ``task_name`` or ``task_id``, and
            ``corrected_value``.
        journal: the JSONL journal file; keep it to resume or audit the campaign.
    """

    def __init__(
        self,
        client: Client,
        plan: pd.DataFrame | str | Path,
        journal: str | Path = "campaign.jsonl",
    ):
        self.client = client
        self.journal_path = Path(journal)
        self._structural: list[dict[str, Any]] = []
        self.plan = self._read_plan(plan)
        self._rows: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<Campaign {len(self.plan)} row(s), journal {str(self.journal_path)!r}>"

    # -- the plan ---------------------------------------------------------------------------

    def _read_plan(self, plan: pd.DataFrame | str | Path) -> pd.DataFrame:
        if isinstance(plan, (str, Path)):
            try:
                frame = _read_csv_strictly(Path(plan))
            except FileNotFoundError:
                self._structural.append(
                    {"row": None, "problem": f"plan file {str(plan)!r} not found"}
                )
                return pd.DataFrame(columns=list(PLAN_COLUMNS))
            except (ValueError, csv.Error, UnicodeDecodeError) as exc:
                self._structural.append({"row": None, "problem": f"malformed CSV: {exc}".strip()})
                return pd.DataFrame(columns=list(PLAN_COLUMNS))
        elif isinstance(plan, pd.DataFrame):
            frame = plan.copy()
        else:
            raise ConfigurationError(
                f"plan must be a DataFrame or a CSV path, got {type(plan).__name__}."
            )
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in ("work_order_id", "corrected_value") if c not in frame.columns]
        if "task_name" not in frame.columns and "task_id" not in frame.columns:
            missing.append("task_name (or task_id)")
        if missing:
            self._structural.append(
                {
                    "row": None,
                    "problem": f"missing column(s): {', '.join(missing)}; "
                    "a plan needs work_order_id, "
                    "task_name or task_id, and corrected_value",
                }
            )
        if frame.empty and not self._structural:
            self._structural.append({"row": None, "problem": "the plan has no rows"})
        return frame.reset_index(drop=True)

    def _check(self) -> list[dict[str, Any]]:
        """Resolve every row against the server's current state (cached until apply)."""
        if self._rows is not None:
            return self._rows
        if self._structural:
            self._rows = []
            return self._rows
        frame = self.plan
        ids = [str(v).strip() for v in frame["work_order_id"]]
        work_orders: dict[str, Any] = {}

        def fetch(wo_id: str) -> tuple[str, Any]:
            try:
                return wo_id, self.client.get_work_order(wo_id, include_inputs=False)
            except NotFoundError:
                return wo_id, None

        distinct = sorted({i for i in ids if i})
        # the client's limiter decides how many of these threads send at once
        with ThreadPoolExecutor(max(1, min(self.client.settings.workers, len(distinct)))) as pool:
            work_orders.update(dict(pool.map(fetch, distinct)))
        rows = []
        for i, record in enumerate(frame.to_dict("records")):
            wo_id = ids[i]
            task_ref = _cell(record.get("task_id")) or _cell(record.get("task_name"))
            raw = record.get("corrected_value")
            row: dict[str, Any] = {
                "row": i,
                "work_order_id": wo_id,
                "task": task_ref,
                "corrected_value": raw,
                "task_id": None,
                "task_name": None,
                "value": None,
                "problem": None,
                "state": None,
            }
            work_order = work_orders.get(wo_id) if wo_id else None
            if not wo_id:
                row["problem"] = "no work_order_id"
            elif work_order is None:
                row["problem"] = f"unknown work order {wo_id!r}"
            elif not task_ref:
                row["problem"] = "no task_name or task_id"
            else:
                try:
                    task = find_task(work_order, task_ref)
                    row["task_id"], row["task_name"] = str(task["id"]), task.get("name")
                    row["state"] = task.get("state")
                    if _cell(raw) is None:
                        raise InvalidCorrectionError(
                            f"task {task.get('name')!r}: no corrected_value"
                        )
                    row["value"] = resolve_value(task, raw)
                    if not row["state"] or row["state"].get("analyzed_value") is None:
                        raise InvalidCorrectionError(
                            f"task {task.get('name')!r} was never analysed on this work order: "
                            "there is nothing to correct"
                        )
                except InvalidCorrectionError as exc:
                    row["problem"] = str(exc)
            rows.append(row)
        _mark_duplicates_and_conflicts(rows)
        self._rows = rows
        return rows

    def validate(self) -> pd.DataFrame:
        """Problems that block the campaign: one row per problem (``row`` is the plan's
        0-based row, None for the whole plan). Empty when the plan can be applied."""
        problems = list(self._structural)
        for row in self._check():
            if row["problem"]:
                problems.append(
                    {
                        "row": row["row"],
                        "work_order_id": row["work_order_id"],
                        "task": row["task"],
                        "corrected_value": row["corrected_value"],
                        "problem": row["problem"],
                    }
                )
        return pd.DataFrame(
            problems, columns=["row", "work_order_id", "task", "corrected_value", "problem"]
        )

    def preview(self) -> pd.DataFrame:
        """Per plan row: the current value and verdict, the new value, and the action:
        ``apply``, ``skip: already that value``, ``skip: duplicate of row N`` or
        ``invalid: <why>``. Nothing is sent."""
        out = []
        for row in self._check():
            state = row["state"] or {}
            current = effective(state) if state else None
            if row["problem"]:
                action = f"invalid: {row['problem']}"
            elif "duplicate_of" in row:
                action = f"skip: duplicate of row {row['duplicate_of']}"
            elif state and json_equal(current, row["value"]):
                action = "skip: already that value"
            else:
                action = "apply"
            out.append(
                {
                    "row": row["row"],
                    "work_order_id": row["work_order_id"],
                    "task_name": row["task_name"],
                    "task_id": row["task_id"],
                    "current_value": current,
                    "current_message": state.get("message"),
                    "new_value": row["value"],
                    "action": action,
                }
            )
        for problem in self._structural:
            out.append({"row": None, "action": f"invalid: {problem['problem']}"})
        return pd.DataFrame(
            out,
            columns=[
                "row",
                "work_order_id",
                "task_name",
                "task_id",
                "current_value",
                "current_message",
                "new_value",
                "action",
            ],
        )

    # -- applying ---------------------------------------------------------------------------

    def journal_status(self) -> dict[str, str]:
        """The last journaled event per correction key (``work_order/task/value``); raises
        :class:`JournalError` if the journal holds something that is not a record."""
        return last_events(Journal.read(self.journal_path))

    def apply(
        self,
        max_workers: int | None = None,
        progress: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Apply the plan; returns one row per plan row with its ``status``.

        Each row is decided when it is applied, from the task's state read from the server
        right before sending: what the preview showed may have changed since.

        Statuses: ``applied`` (this run), ``applied earlier`` (found in the journal),
        ``confirmed`` (in doubt, found applied on the server: not re-sent), ``skipped`` (the
        server already had that value, or a duplicate row), ``failed`` (refused for good, or
        the task could not be read; ``detail`` says why), ``in doubt`` (sent, and the server
        could not be asked whether it applied it: run again). ``on_progress(done, total)`` is
        called as rows complete. Raises CampaignValidationError, sending nothing, if
        :meth:`validate` finds problems, and JournalError if the journal is not one.
        """
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1
        ):
            raise ConfigurationError(
                f"max_workers must be a positive integer (or None), got {max_workers!r}."
            )
        records = Journal.read(self.journal_path)
        others = {r.get("base_url") for r in records if isinstance(r.get("base_url"), str)} - {
            self.client.base_url
        }
        if others:
            raise ConfigurationError(
                f"the journal {str(self.journal_path)!r} belongs to a campaign on "
                f"{', '.join(sorted(others))}, not {self.client.base_url}: use another journal "
                "file."
            )
        problems = self.validate()
        if len(problems):
            raise CampaignValidationError(problems)
        done = last_events(records)
        results: list[dict[str, Any]] = []
        show = self.client.settings.progress if progress is None else progress
        todo = []
        for row in self._check():
            key = _key(row["work_order_id"], row["task_id"], row["value"])
            base = {
                "row": row["row"],
                "work_order_id": row["work_order_id"],
                "task_name": row["task_name"],
                "task_id": row["task_id"],
                "value": row["value"],
                "attempts": 0,
                "detail": None,
            }
            last = done.get(key)
            if last in ("applied", "confirmed"):
                results.append({**base, "status": "applied earlier"})
            elif "duplicate_of" in row:
                results.append(
                    {
                        **base,
                        "status": "skipped",
                        "detail": f"duplicate of row {row['duplicate_of']}",
                    }
                )
            else:  # decided from the server's state when its turn comes
                todo.append((row, key, base, last))
        journal = Journal(self.journal_path)
        try:
            with (
                # at most max_workers rows at once; the client's limiter (shared with
                # everything else it sends) decides how many requests are in flight
                ThreadPoolExecutor(max_workers or self.client.settings.workers) as pool,
                tqdm(
                    total=len(todo),
                    desc="corrections",
                    unit="row",
                    disable=not show,
                    delay=0.3,
                    leave=False,
                ) as bar,
            ):
                for n, outcome in enumerate(
                    pool.map(lambda item: self._apply_one_safely(journal, *item), todo), 1
                ):
                    results.append(outcome)
                    bar.update(1)
                    if on_progress is not None:
                        on_progress(n, len(todo))
        finally:
            journal.close()
        self._rows = None  # the server changed: re-check on the next preview
        frame = pd.DataFrame(results).sort_values("row", kind="stable").reset_index(drop=True)
        return frame[
            [
                "row",
                "work_order_id",
                "task_name",
                "task_id",
                "value",
                "status",
                "attempts",
                "detail",
            ]
        ]

    def _read_state(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The task's state on the server now (``{}`` if it has none), read fresh (the client
        retries within its budget); None if it could not be read. Refusals (the work order or
        the task gone, the key revoked) raise."""
        try:
            work_order = self.client.get_work_order(row["work_order_id"], include_inputs=False)
        except (ServerError, ThrottledError, TransportError):
            return None
        return dict(find_task(work_order, row["task_id"]).get("state") or {})

    def _applied_on_server(self, row: dict[str, Any]) -> bool | None:
        """True/False when the server could be asked, None if it could not."""
        state = self._read_state(row)
        if state is None:
            return None
        return state.get("corrected_value") is not None and json_equal(
            state.get("corrected_value"), row["value"]
        )

    def _ids(self, row: dict[str, Any], key: str) -> dict[str, Any]:
        """What every journal record of a row carries."""
        return {
            "key": key,
            "base_url": self.client.base_url,
            "row": row["row"],
            "work_order_id": row["work_order_id"],
            "task_id": row["task_id"],
            "task_name": row["task_name"],
            "value": row["value"],
        }

    def _apply_one_safely(
        self,
        journal: Journal,
        row: dict[str, Any],
        key: str,
        base: dict[str, Any],
        last: str | None,
    ) -> dict[str, Any]:
        """:meth:`_apply_one`, with any other error (the key revoked...) reported on the row
        instead of aborting the campaign. Such a row is journaled "in doubt", so a later run
        checks the server before sending anything."""
        try:
            return self._apply_one(journal, row, key, base, last)
        except DFSError as exc:
            journal.append({**self._ids(row, key), "event": "in doubt", "detail": str(exc)})
            return {
                **base,
                "status": "failed",
                "detail": f"{exc} (a later run checks the server before sending it again)",
            }

    def _apply_one(
        self,
        journal: Journal,
        row: dict[str, Any],
        key: str,
        base: dict[str, Any],
        last: str | None,
    ) -> dict[str, Any]:
        ids = self._ids(row, key)
        # anything sent before is checked on the server before it is sent again
        in_doubt = last is not None
        # and nothing is sent before the task's current state says it is still needed
        decided = False
        attempts = 0
        detail = None
        # one budget per row, as for one call: in-doubt checks and re-sends stay within it
        deadline = time.monotonic() + self.client.settings.retry_budget
        while attempts < MAX_ATTEMPTS and (attempts == 0 or time.monotonic() < deadline):
            if in_doubt or not decided:
                try:
                    state = self._read_state(row)
                except (APIError, InvalidCorrectionError) as exc:
                    if isinstance(exc, APIError) and exc.status >= 500:
                        raise
                    # the work order or the task is gone, or reads are refused: for good
                    journal.append({**ids, "event": "failed", "detail": str(exc)})
                    return {**base, "attempts": attempts, "status": "failed", "detail": str(exc)}
                if state is None and in_doubt:
                    journal.append(
                        {**ids, "event": "in doubt", "detail": "server unreachable for checking"}
                    )
                    return {
                        **base,
                        "attempts": attempts,
                        "status": "in doubt",
                        "detail": "sent, but the server could not be asked whether it applied; "
                        "run apply() again later",
                    }
                if state is None:
                    return {
                        **base,
                        "attempts": attempts,
                        "status": "failed",
                        "detail": "the task's current state could not be read; nothing was sent "
                        "(run apply() again later)",
                    }
                corrected = state.get("corrected_value")
                if in_doubt and corrected is not None and json_equal(corrected, row["value"]):
                    journal.append({**ids, "event": "confirmed"})
                    return {**base, "attempts": attempts, "status": "confirmed"}
                if json_equal(effective(state), row["value"]):
                    return {
                        **base,
                        "attempts": attempts,
                        "status": "skipped",
                        "detail": "already that value",
                    }
                in_doubt, decided = False, True
            attempts += 1
            journal.append({**ids, "event": "attempt", "attempt": attempts})
            try:
                answer = self.client.correct(row["work_order_id"], row["task_id"], row["value"])
            except ThrottledError as exc:  # the client retried it within its budget already
                journal.append({**ids, "event": "throttled", "attempt": attempts})
                detail = str(exc)
                break
            except APIError as exc:
                if exc.status >= 500:  # the server may have done it before failing
                    journal.append(
                        {**ids, "event": "in doubt", "attempt": attempts, "detail": str(exc)}
                    )
                    detail, in_doubt = str(exc), True
                    _pause(0.2 * 2**attempts, deadline)
                    continue
                journal.append({**ids, "event": "failed", "attempt": attempts, "detail": str(exc)})
                return {**base, "attempts": attempts, "status": "failed", "detail": str(exc)}
            except (OutcomeUnknownError, TransportError) as exc:
                journal.append(
                    {**ids, "event": "in doubt", "attempt": attempts, "detail": str(exc)}
                )
                detail = str(exc)
                in_doubt = True
                _pause(0.2 * 2**attempts, deadline)
                continue
            state = (answer or {}).get("state")
            journal.append({**ids, "event": "applied", "attempt": attempts, "state": state})
            return {**base, "attempts": attempts, "status": "applied"}
        if in_doubt:
            applied = self._applied_on_server(row)
            if applied:
                journal.append({**ids, "event": "confirmed"})
                return {**base, "attempts": attempts, "status": "confirmed"}
            if applied is None:  # still unknown: the next run checks before sending
                journal.append({**ids, "event": "in doubt", "attempt": attempts, "detail": detail})
                return {
                    **base,
                    "attempts": attempts,
                    "status": "in doubt",
                    "detail": f"outcome unknown after {attempts} attempts: {detail}; "
                    "run apply() again to check and resume",
                }
        journal.append(
            {**ids, "event": "failed", "attempt": attempts, "detail": f"gave up: {detail}"}
        )
        return {
            **base,
            "attempts": attempts,
            "status": "failed",
            "detail": f"gave up after {attempts} attempts: {detail}",
        }

    # -- checking ---------------------------------------------------------------------------

    def verify(self) -> pd.DataFrame:
        """Plan rows whose task, on the server now, does not have the planned value as its
        effective value (an empty frame means the plan is fully in place)."""
        self._rows = None
        mismatches = []
        for row in self._check():
            if row["problem"]:
                mismatches.append(
                    {
                        "row": row["row"],
                        "work_order_id": row["work_order_id"],
                        "task_name": row["task_name"],
                        "planned_value": row["corrected_value"],
                        "server_value": None,
                        "problem": row["problem"],
                    }
                )
                continue
            state = row["state"] or {}
            if not json_equal(effective(state), row["value"]):
                mismatches.append(
                    {
                        "row": row["row"],
                        "work_order_id": row["work_order_id"],
                        "task_name": row["task_name"],
                        "planned_value": row["value"],
                        "server_value": effective(state),
                        "problem": "differs from the plan",
                    }
                )
        return pd.DataFrame(
            mismatches,
            columns=[
                "row",
                "work_order_id",
                "task_name",
                "planned_value",
                "server_value",
                "problem",
            ],
        )


def _value_key(value: Any) -> str:
    """A text equal for values that are JSON-equal (``1`` and ``1.0``; never ``true`` and 1)."""
    if isinstance(value, bool):
        return f"b:{value}"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"n:{value!r}"
    return "j:" + json.dumps(value, sort_keys=True, default=str)


def _mark_duplicates_and_conflicts(rows: list[dict[str, Any]]) -> None:
    """Rows planning the same task: identical values are one correction (later rows get
    ``duplicate_of``, the first row's number), different values all get a ``problem``.

    Time and memory are linear in the rows: one group-by, one message per conflicting task
    (shared by its rows, and naming at most a few values)."""
    valid = [r for r in rows if r["problem"] is None]
    if len(valid) < 2:
        return
    frame = pd.DataFrame(
        {
            "pos": range(len(valid)),
            "work_order_id": [r["work_order_id"] for r in valid],
            "task_id": [r["task_id"] for r in valid],
            "value": [_value_key(r["value"]) for r in valid],
        }
    )
    by_task = frame.groupby(["work_order_id", "task_id"], sort=False)["value"]
    frame["rows"] = by_task.transform("size")
    frame["values"] = by_task.transform("nunique")
    frame["first"] = frame.groupby(["work_order_id", "task_id"], sort=False)["pos"].transform("min")
    repeated = frame[frame["rows"] > 1]
    if repeated.empty:
        return
    same = repeated[repeated["values"] == 1]
    for pos, first in zip(same["pos"], same["first"], strict=True):
        if pos != first:
            valid[pos]["duplicate_of"] = valid[first]["row"]
    conflicting = repeated[repeated["values"] > 1]
    if conflicting.empty:
        return
    # per conflicting task: each value with its first row and its number of rows
    per_value = (
        conflicting.groupby(["work_order_id", "task_id", "value"], sort=False)["pos"]
        .agg(["min", "size"])
        .sort_values("min", kind="stable")
    )
    shown: dict[tuple[str, str], list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    for (wo_id, task_id, _), first, size in zip(
        per_value.index, per_value["min"], per_value["size"], strict=True
    ):
        task = (wo_id, task_id)
        counts[task] = counts.get(task, 0) + 1
        listed = shown.setdefault(task, [])
        if len(listed) < 4:
            row = valid[first]
            listed.append(
                f"{row['value']!r} in row {row['row']}"
                + (f" and {size - 1} more" if size > 1 else "")
            )
    messages: dict[tuple[str, str], str] = {}
    for pos, wo_id, task_id, n_rows in zip(
        conflicting["pos"],
        conflicting["work_order_id"],
        conflicting["task_id"],
        conflicting["rows"],
        strict=True,
    ):
        task = (wo_id, task_id)
        if task not in messages:
            more = counts[task] - len(shown[task])
            messages[task] = (
                f"conflicting rows for task {valid[pos]['task_name']!r}: {n_rows} rows plan "
                f"{counts[task]} different values ({'; '.join(shown[task])}"
                + (f"; and {more} more value(s)" if more > 0 else "")
                + ")"
            )
        valid[pos]["problem"] = messages[task]


def _read_csv_strictly(path: Path) -> pd.DataFrame:
    """A CSV plan as strings; any row whose field count differs from the header's is an error
    (a shifted row must never become a valid-looking correction)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh, skipinitialspace=True))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError("the file is empty")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ValueError(
            f"line(s) {', '.join(map(str, bad[:10]))} do not have the header's {len(header)} fields"
        )
    return pd.DataFrame(body, columns=header, dtype=str)


def _cell(value: Any) -> Any:
    """A plan cell, with blanks (empty strings, NaN, None) as None."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value
