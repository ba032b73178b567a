"""Correction campaigns: many corrections, validated first, journaled, resumable, verified.

>>> campaign = dfs.Campaign(client, "plan.csv", journal="fix.jsonl")
>>> campaign.validate()     # problems; nothing is sent while there are any
>>> campaign.preview()      # per row: current value, new value, apply / skip / invalid
>>> campaign.apply()        # concurrent, journaled; run it again to resume
>>> campaign.verify()       # rows whose server state differs from the plan

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
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .actions import InvalidCorrectionError, effective, find_task, resolve_value
from .client import Client
from .errors import (
    APIError,
    ConfigurationError,
    DFSError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    ThrottledError,
    TransportError,
)
from .rules import json_equal

PLAN_COLUMNS = ("work_order_id", "task_name", "task_id", "corrected_value")
MAX_ATTEMPTS = 6


class CampaignValidationError(ConfigurationError):
    """The plan has problems; nothing was sent. ``problems`` is the validation table."""

    def __init__(self, problems: pd.DataFrame):
        self.problems = problems
        lines = "; ".join(
            f"row {r.row}: {r.problem}" if r.row is not None and r.row == r.row else str(r.problem)
            for r in problems.head(5).itertuples()
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"the plan has {len(problems)} problem(s): {lines}{more}. Fix the plan (see "
            "Campaign.validate()); nothing was sent."
        )


# --------------------------------------------------------------------------------------------
# the journal
# --------------------------------------------------------------------------------------------


class Journal:
    """An append-only JSONL file whose appends return once durable (group-committed fsync)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = (
            self.path.exists()
            and self.path.stat().st_size > 0
            and not _ends_with_newline(self.path)
        )
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        if torn:  # a crash cut the last line: start a new one so no record is glued to it
            self._fh.write("\n")
        self._cond = threading.Condition()
        self._written = 0
        self._durable = 0
        self._syncing = False

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(
            {"time": datetime.now(timezone.utc).isoformat(), **record},
            default=str,
            ensure_ascii=False,
        )
        with self._cond:
            self._fh.write(line + "\n")
            self._written += 1
            mine = self._written
            while self._durable < mine:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target = self._written
                try:
                    self._fh.flush()
                    self._cond.release()
                    try:
                        os.fsync(self._fh.fileno())
                    finally:
                        self._cond.acquire()
                    self._durable = max(self._durable, target)
                finally:  # a disk error fails this append, and never leaves others waiting
                    self._syncing = False
                    self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._fh.close()

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """Every complete record of a journal (a torn last line, from a crash, is ignored)."""
        records = []
        p = Path(path)
        if not p.exists():
            return records
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn write
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


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
        # reads change nothing: they may use more connections than writes
        with ThreadPoolExecutor(2 * self.client.settings.max_workers) as pool:
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
        # the same task planned twice: identical rows are one correction, different ones conflict
        by_task: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if row["problem"] is None:
                by_task.setdefault((row["work_order_id"], row["task_id"]), []).append(row)
        for same in by_task.values():
            if len(same) < 2:
                continue
            if all(json_equal(r["value"], same[0]["value"]) for r in same):
                for r in same[1:]:
                    r["duplicate_of"] = same[0]["row"]
            else:
                listed = ", ".join(f"row {r['row']}: {r['value']!r}" for r in same)
                for r in same:
                    r["problem"] = f"conflicting rows for task {r['task_name']!r} ({listed})"
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
        """The last journaled event per correction key (``work_order/task/value``)."""
        status: dict[str, str] = {}
        for record in Journal.read(self.journal_path):
            key = record.get("key")
            if key:
                status[key] = record.get("event", "")
        return status

    def apply(
        self,
        max_workers: int = 8,
        progress: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Apply the plan; returns one row per plan row with its ``status``.

        Statuses: ``applied`` (this run), ``applied earlier`` (found in the journal),
        ``confirmed`` (in doubt, found applied on the server: not re-sent), ``skipped`` (the
        server already had that value, or a duplicate row), ``failed`` (refused for good;
        ``detail`` says why). ``on_progress(done, total)`` is called as rows complete. Raises
        CampaignValidationError, sending nothing, if :meth:`validate` finds problems.
        """
        problems = self.validate()
        if len(problems):
            raise CampaignValidationError(problems)
        preview = self.preview()
        others = {
            r.get("base_url") for r in Journal.read(self.journal_path) if r.get("base_url")
        } - {self.client.base_url}
        if others:
            raise ConfigurationError(
                f"the journal {str(self.journal_path)!r} belongs to a campaign on "
                f"{', '.join(sorted(others))}, not {self.client.base_url}: use another journal "
                "file."
            )
        done = self.journal_status()
        journal = Journal(self.journal_path)
        results: list[dict[str, Any]] = []
        show = self.client.settings.progress if progress is None else progress
        todo = []
        for row, view in zip(self._check(), preview.itertuples(index=False), strict=True):
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
            elif last in ("attempt", "in doubt", "failed") or view.action == "apply":
                todo.append((row, key, base, last))
            else:
                results.append(
                    {**base, "status": "skipped", "detail": view.action.removeprefix("skip: ")}
                )
        try:
            with (
                ThreadPoolExecutor(max_workers) as pool,
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

    def _server_value(self, work_order_id: str, task_id: str) -> tuple[bool, Any]:
        """Whether the server's task has a corrected value, and that value (fresh read)."""
        work_order = self.client.get_work_order(work_order_id, include_inputs=False)
        task = find_task(work_order, task_id)
        state = task.get("state") or {}
        return state.get("corrected_value") is not None, state.get("corrected_value")

    def _applied_on_server(self, row: dict[str, Any]) -> bool | None:
        """True/False when the server could be asked, None if it could not."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                corrected, value = self._server_value(row["work_order_id"], row["task_id"])
                return corrected and json_equal(value, row["value"])
            except (ServerError, ThrottledError, TransportError):
                time.sleep(min(8.0, 0.5 * 2**attempt))
        return None

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
        """:meth:`_apply_one`, with any other error (the work order deleted meanwhile, the key
        revoked...) reported on the row instead of aborting the campaign. Such a row is
        journaled "in doubt", so a later run checks the server before sending anything."""
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
        attempts = 0
        detail = None
        while attempts < MAX_ATTEMPTS:
            if in_doubt:
                applied = self._applied_on_server(row)
                if applied is None:
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
                if applied:
                    journal.append({**ids, "event": "confirmed"})
                    return {**base, "attempts": attempts, "status": "confirmed"}
                in_doubt = False
            attempts += 1
            journal.append({**ids, "event": "attempt", "attempt": attempts})
            try:
                answer = self.client.correct(row["work_order_id"], row["task_id"], row["value"])
            except ThrottledError as exc:  # refused before doing anything: safe to resend
                journal.append({**ids, "event": "throttled", "attempt": attempts})
                detail = str(exc)
                time.sleep(min(30.0, exc.retry_after or 1.0))
                continue
            except APIError as exc:
                if exc.status >= 500:  # the server may have done it before failing
                    journal.append(
                        {**ids, "event": "in doubt", "attempt": attempts, "detail": str(exc)}
                    )
                    detail, in_doubt = str(exc), True
                    time.sleep(min(8.0, 0.2 * 2**attempts))
                    continue
                journal.append({**ids, "event": "failed", "attempt": attempts, "detail": str(exc)})
                return {**base, "attempts": attempts, "status": "failed", "detail": str(exc)}
            except (OutcomeUnknownError, TransportError) as exc:
                journal.append(
                    {**ids, "event": "in doubt", "attempt": attempts, "detail": str(exc)}
                )
                detail = str(exc)
                in_doubt = True
                time.sleep(min(8.0, 0.2 * 2**attempts))
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
