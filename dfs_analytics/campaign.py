"""Correction campaigns: many corrections, validated first, journaled, resumable, verified.

>>> campaign = dfs.Campaign(client, "plan.csv", journal="fix.jsonl")
>>> campaign.validate()     # problems; nothing is sent while there are any
>>> campaign.preview()      # per row: current value, new value, apply / skip / invalid
>>> campaign.apply()        # concurrent, journaled; run it again to resume
>>> campaign.verify()       # rows whose server state differs from the plan

Every attempt is journaled durably before it is sent (docs/architecture.md: "never twice,
never lost"). Never speaks HTTP itself (only through the client), never sends anything while
the plan has problems, and never re-sends a correction in doubt without first reading the
task's state on the server.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from .client import Client
from .config import mask_url
from .errors import (
    APIError,
    CampaignValidationError,
    ConfigurationError,
    DFSError,
    InvalidCorrectionError,
    JournalError,
    JournalMismatchError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    ThrottledError,
    TransportError,
)
from .files import file_lock, lock_beside
from .journal import Journal, last_events, make_folders
from .progress import progress_bar
from .rules import effective, is_missing, json_equal, json_key, none_if_missing
from .tasks import find_task, resolve_value

__all__ = [
    "MAX_ATTEMPTS",
    "PLAN_COLUMNS",
    "Action",
    "Campaign",
    "CampaignValidationError",
    "Event",
    "Journal",
    "JournalError",
    "PlanRow",
    "Status",
]

PLAN_COLUMNS = ("work_order_id", "task_name", "task_id", "corrected_value")
MAX_ATTEMPTS = 6


# --------------------------------------------------------------------------------------------
# the words of a campaign: on disk, and in the frames it returns
# --------------------------------------------------------------------------------------------


class _StrEnum(str, Enum):
    """An enum whose members are their strings: equal to, hashed, printed, formatted and
    JSON-serialised as them (``enum.StrEnum`` is Python 3.11+)."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)


class Event(_StrEnum):
    """What a journal record says happened to a row (its ``event``)."""

    ATTEMPT = "attempt"  # about to send: journaled before the request
    APPLIED = "applied"  # the server accepted it
    CONFIRMED = "confirmed"  # its outcome was in doubt; the server has it
    IN_DOUBT = "in doubt"  # sent, outcome unknown: check the server before sending again
    THROTTLED = "throttled"  # still throttled after the client's retries
    FAILED = "failed"  # refused for good, or given up
    PLAN = "plan"  # not a row's: the plan the journal belongs to (its fingerprint)


class Status(_StrEnum):
    """A row's outcome in :meth:`Campaign.apply`'s ``status`` column."""

    APPLIED = "applied"  # this run
    APPLIED_EARLIER = "applied earlier"  # found in the journal: nothing sent
    CONFIRMED = "confirmed"  # in doubt, found applied on the server: not sent again
    SKIPPED = "skipped"  # the server already had the value, or a duplicate row
    FAILED = "failed"  # refused for good, or the task could not be read
    IN_DOUBT = "in doubt"  # sent, and the server could not be asked: run again


class Action(_StrEnum):
    """The start of :meth:`Campaign.preview`'s ``action`` (``"skip: ..."``, ``"invalid: ..."``)."""

    APPLY = "apply"
    SKIP = "skip"
    INVALID = "invalid"


ALREADY = "already that value"
"""Why a row is skipped when the server already has its value."""

# the journaled events after which a row is never sent again
_DONE = (Event.APPLIED, Event.CONFIRMED)

PROBLEM_COLUMNS = ("row", "work_order_id", "task", "corrected_value", "problem")
PREVIEW_COLUMNS = (
    "row",
    "work_order_id",
    "task_name",
    "task_id",
    "current_value",
    "current_message",
    "new_value",
    "action",
)
VERIFY_COLUMNS = (
    "row",
    "work_order_id",
    "task_name",
    "planned_value",
    "server_value",
    "problem",
)


# --------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------


@dataclass
class PlanRow:
    """One row of a plan, as resolved against the server's state when it was read."""

    row: int  # its 0-based place in the plan
    work_order_id: str  # "" when the plan gives none
    task: Any  # the plan's task_id, else its task_name (None when blank)
    corrected_value: Any  # as the plan gives it
    task_id: str | None = None
    task_name: str | None = None
    value: Any = None  # the value to send, checked against the task's type and rules
    state: dict[str, Any] | None = None  # the task's state when read
    problem: str | None = None  # why it cannot be applied
    duplicate_of: int | None = None  # the earlier row planning the same correction

    @property
    def key(self) -> str:
        """The correction's key in the journal: ``work_order/task/value``."""
        return f"{self.work_order_id}/{self.task_id}/{json.dumps(self.value, sort_keys=True)}"


@dataclass
class _Outcome:
    """One row of :meth:`Campaign.apply`'s frame (its fields are the frame's columns)."""

    row: int
    work_order_id: str
    task_name: str | None
    task_id: str | None
    value: Any
    status: str
    attempts: int = 0
    detail: str | None = None


RESULT_COLUMNS = tuple(f.name for f in fields(_Outcome))


@dataclass
class _Job:
    """A row being applied: the journal its records go to, what each of them carries, and
    what was journaled of it before this run."""

    journal: Journal
    row: PlanRow
    ids: dict[str, Any]
    last: str | None  # the last event journaled before this run; None if it was never sent
    attempts: int = 0

    def note(self, event: Event, **more: Any) -> None:
        """Journal ``event`` for this row; returns once it is on disk."""
        self.journal.append({**self.ids, "event": event, **more})

    def outcome(self, status: Status, detail: str | None = None) -> _Outcome:
        """The row's line in the result frame, with the attempts made so far."""
        return _outcome(self.row, status, self.attempts, detail)


def _outcome(
    row: PlanRow, status: Status, attempts: int = 0, detail: str | None = None
) -> _Outcome:
    """A plan row's line in the result frame; the status as its plain string."""
    return _Outcome(
        row=row.row,
        work_order_id=row.work_order_id,
        task_name=row.task_name,
        task_id=row.task_id,
        value=row.value,
        status=str(status),
        attempts=attempts,
        detail=detail,
    )


def _holds(state: dict[str, Any], value: Any) -> bool:
    """Whether a task state's correction is ``value`` (a correction in doubt went through)."""
    corrected = state.get("corrected_value")
    return not is_missing(corrected) and json_equal(corrected, value)


def _pause(seconds: float, deadline: float) -> None:
    """Sleep ``seconds`` (at most 8), never past ``deadline`` (a ``time.monotonic()``)."""
    time.sleep(max(0.0, min(8.0, seconds, deadline - time.monotonic())))


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
        self._rows: list[PlanRow] | None = None

    def __repr__(self) -> str:
        return f"<Campaign {len(self.plan)} row(s), journal {str(self.journal_path)!r}>"

    @property
    def lock_path(self) -> Path:
        """The lock file beside the journal (``<journal>.lock``) held while applying."""
        return lock_beside(self.journal_path)

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

    def _check(self) -> list[PlanRow]:
        """Resolve every row against the server's current state (cached until apply)."""
        if self._rows is not None:
            return self._rows
        if self._structural:
            self._rows = []
            return self._rows
        records = self.plan.to_dict("records")
        ids = [_text(record.get("work_order_id")) for record in records]

        def fetch(wo_id: str) -> tuple[str, Any]:
            try:
                return wo_id, self.client.get_work_order(wo_id, include_inputs=False)
            except NotFoundError:
                return wo_id, None

        distinct = sorted({i for i in ids if i})
        # the client's limiter decides how many of these threads send at once
        with ThreadPoolExecutor(max(1, min(self.client.settings.workers, len(distinct)))) as pool:
            work_orders: dict[str, Any] = dict(pool.map(fetch, distinct))
        rows = []
        for i, record in enumerate(records):
            row = PlanRow(
                row=i,
                work_order_id=ids[i],
                task=_cell(record.get("task_id")) or _cell(record.get("task_name")),
                corrected_value=record.get("corrected_value"),
            )
            work_order = work_orders.get(row.work_order_id) if row.work_order_id else None
            if not row.work_order_id:
                row.problem = "no work_order_id"
            elif work_order is None:
                row.problem = f"unknown work order {row.work_order_id!r}"
            elif not row.task:
                row.problem = "no task_name or task_id"
            else:
                try:
                    _resolve(row, work_order)
                except InvalidCorrectionError as exc:
                    row.problem = str(exc)
            rows.append(row)
        _mark_duplicates_and_conflicts(rows)
        self._rows = rows
        return rows

    def validate(self) -> pd.DataFrame:
        """Problems that block the campaign: one row per problem (``row`` is the plan's
        0-based row, None for the whole plan). Empty when the plan can be applied."""
        problems = list(self._structural)
        for row in self._check():
            if row.problem:
                problems.append(
                    {
                        "row": row.row,
                        "work_order_id": row.work_order_id,
                        "task": row.task,
                        "corrected_value": row.corrected_value,
                        "problem": row.problem,
                    }
                )
        return pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS))

    def preview(self) -> pd.DataFrame:
        """Per plan row: the current value and verdict, the new value, and the action:
        ``apply``, ``skip: already that value``, ``skip: duplicate of row N`` or
        ``invalid: <why>``. Nothing is sent."""
        out = []
        for row in self._check():
            state = row.state or {}
            current = effective(state)
            if row.problem:
                action = f"{Action.INVALID}: {row.problem}"
            elif row.duplicate_of is not None:
                action = f"{Action.SKIP}: duplicate of row {row.duplicate_of}"
            elif state and json_equal(current, row.value):
                action = f"{Action.SKIP}: {ALREADY}"
            else:
                action = str(Action.APPLY)
            out.append(
                {
                    "row": row.row,
                    "work_order_id": row.work_order_id,
                    "task_name": row.task_name,
                    "task_id": row.task_id,
                    "current_value": current,
                    "current_message": state.get("message"),
                    "new_value": row.value,
                    "action": action,
                }
            )
        for problem in self._structural:
            out.append({"row": None, "action": f"{Action.INVALID}: {problem['problem']}"})
        return pd.DataFrame(out, columns=list(PREVIEW_COLUMNS))

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
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """Apply the plan; returns one row per plan row with its ``status``.

        One apply per journal at a time, across processes and threads: an OS lock on the file
        beside the journal (:attr:`lock_path`) is held for the whole apply. Another apply on
        the same journal waits for it (``timeout`` seconds at most, None: as long as it
        takes), or with ``wait=False`` raises :class:`~dfs_analytics.BusyError` at once; either
        way nothing is ever sent twice. The journal records the plan's :meth:`fingerprint`,
        and a journal written for another plan (or site) raises
        :class:`~dfs_analytics.JournalMismatchError`, sending nothing.

        Each row is decided when it is applied, from the task's state read from the server
        right before sending: what the preview showed may have changed since.

        Statuses (:class:`Status`): ``applied`` (this run), ``applied earlier`` (found in the
        journal), ``confirmed`` (in doubt, found applied on the server: not re-sent),
        ``skipped`` (the server already had that value, or a duplicate row), ``failed``
        (refused for good, or the task could not be read; ``detail`` says why), ``in doubt``
        (sent, and the server could not be asked whether it applied it: run again).
        ``on_progress(done, total)`` is called as rows complete. Raises
        CampaignValidationError, sending nothing, if :meth:`validate` finds problems,
        JournalError if the journal is not one, and UnsafePathError if the journal or its
        lock file is a symbolic link.
        """
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1
        ):
            raise ConfigurationError(
                f"max_workers must be a positive integer (or None), got {max_workers!r}."
            )
        make_folders(self.journal_path.parent)  # durable, like the journal it will hold
        # one apply per journal at a time, across processes: each one's read-the-journal,
        # read-the-state, send would otherwise race the other's and send twice
        with file_lock(
            self.lock_path,
            wait=wait,
            timeout=timeout,
            what=f"the campaign journal {str(self.journal_path)!r}",
        ):
            results = self._apply_locked(max_workers, progress, on_progress)
        self._rows = None  # the server changed: re-check on the next preview
        frame = pd.DataFrame([vars(r) for r in results], columns=list(RESULT_COLUMNS))
        return frame.sort_values("row", kind="stable").reset_index(drop=True)

    def _apply_locked(
        self,
        max_workers: int | None,
        progress: bool | None,
        on_progress: Callable[[int, int], None] | None,
    ) -> list[_Outcome]:
        """:meth:`apply` with the journal's lock held: the outcome of every plan row."""
        records = Journal.read(self.journal_path)
        site = self.client.settings.display_url
        others = {
            mask_url(r["base_url"]) for r in records if isinstance(r.get("base_url"), str)
        } - {site}
        if others:
            raise JournalMismatchError(
                f"the journal {str(self.journal_path)!r} belongs to a campaign on "
                f"{', '.join(sorted(others))}, not {site}: use another journal file (nothing "
                "was sent)."
            )
        problems = self.validate()
        if len(problems):
            raise CampaignValidationError(problems)
        fingerprint = self.fingerprint()
        written = [r.get("fingerprint") for r in records if r.get("event") == Event.PLAN]
        if any(f != fingerprint for f in written):
            raise JournalMismatchError(
                f"the journal {str(self.journal_path)!r} was written for another plan "
                f"(fingerprint {written[-1]}, this plan's is {fingerprint}): a journal "
                "belongs to one plan. Start a new journal file for this plan, e.g. "
                "Campaign(client, plan, journal='campaign-2.jsonl') (nothing was sent)."
            )
        done = last_events(records)
        results: list[_Outcome] = []
        with Journal(self.journal_path) as journal:
            if not written:  # the plan this journal belongs to, before any of its rows
                journal.append(
                    {
                        "event": Event.PLAN,
                        "fingerprint": fingerprint,
                        "rows": len(self.plan),
                        "base_url": self.client.settings.display_url,
                    }
                )
            jobs = []
            for row in self._check():
                last = done.get(row.key)
                if last in _DONE:
                    results.append(_outcome(row, Status.APPLIED_EARLIER))
                elif row.duplicate_of is not None:
                    results.append(
                        _outcome(row, Status.SKIPPED, detail=f"duplicate of row {row.duplicate_of}")
                    )
                else:  # decided from the server's state when its turn comes
                    jobs.append(_Job(journal, row, self._ids(row), last))
            with (
                # at most max_workers rows at once; the client's limiter (shared with
                # everything else it sends) decides how many requests are in flight
                ThreadPoolExecutor(max_workers or self.client.settings.workers) as pool,
                progress_bar(
                    progress,
                    self.client.settings.progress,
                    total=len(jobs),
                    desc="corrections",
                    unit="row",
                ) as bar,
            ):
                for n, outcome in enumerate(pool.map(self._apply_one_safely, jobs), 1):
                    results.append(outcome)
                    bar.update(1)
                    if on_progress is not None:
                        on_progress(n, len(jobs))
        return results

    def fingerprint(self) -> str:
        """The plan's fingerprint: a SHA-256 (hex) of its corrections, each as its work order,
        its task as the plan names it and its value as it will be sent; the same whatever the
        rows' order, repeated rows, or whether the plan came as a CSV file or a DataFrame. A
        journal records it, and :meth:`apply` refuses a journal written for another plan."""
        corrections = sorted(
            {
                (row.work_order_id, str(row.task), json.dumps(row.value, sort_keys=True))
                for row in self._check()
                if not row.problem
            }
        )
        text = json.dumps(corrections, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _read_state(self, row: PlanRow) -> dict[str, Any] | None:
        """The task's state on the server now (``{}`` if it has none), read fresh (the client
        retries within its budget); None if it could not be read. Refusals (the work order or
        the task gone, the key revoked) raise."""
        try:
            work_order = self.client.get_work_order(row.work_order_id, include_inputs=False)
        except (ServerError, ThrottledError, TransportError):
            return None
        return dict(find_task(work_order, row.task_id or "").get("state") or {})

    def _ids(self, row: PlanRow) -> dict[str, Any]:
        """What every journal record of a row carries."""
        return {
            "key": row.key,
            "base_url": self.client.settings.display_url,  # any password masked
            "row": row.row,
            "work_order_id": row.work_order_id,
            "task_id": row.task_id,
            "task_name": row.task_name,
            "value": row.value,
        }

    def _apply_one_safely(self, job: _Job) -> _Outcome:
        """:meth:`_apply_one`, with any other error (the key revoked...) reported on the row
        instead of aborting the campaign. Such a row is journaled "in doubt", so a later run
        checks the server before sending anything."""
        try:
            return self._apply_one(job)
        except DFSError as exc:
            job.note(Event.IN_DOUBT, detail=str(exc))
            return job.outcome(
                Status.FAILED, f"{exc} (a later run checks the server before sending it again)"
            )

    def _apply_one(self, job: _Job) -> _Outcome:
        """Send one row's correction when the server's state says it is still needed, checking
        the server before sending again whatever may have been applied; returns its outcome."""
        # anything sent before is checked on the server before it is sent again
        in_doubt = job.last is not None
        # and nothing is sent before the task's current state says it is still needed
        decided = False
        detail = None
        # one budget per row, as for one call: in-doubt checks and re-sends stay within it
        deadline = time.monotonic() + self.client.settings.retry_budget
        while job.attempts < MAX_ATTEMPTS and (job.attempts == 0 or time.monotonic() < deadline):
            if in_doubt or not decided:
                settled = self._before_sending(job, in_doubt)
                if settled is not None:
                    return settled
                in_doubt, decided = False, True
            job.attempts += 1
            job.note(Event.ATTEMPT, attempt=job.attempts)
            try:
                task_id = job.row.task_id
                assert task_id is not None  # a row is resolved to its task before it is sent
                answer = self.client.correct(job.row.work_order_id, task_id, job.row.value)
            except ThrottledError as exc:  # the client retried it within its budget already
                job.note(Event.THROTTLED, attempt=job.attempts)
                detail = str(exc)
                break
            except (APIError, OutcomeUnknownError, TransportError) as exc:
                if isinstance(exc, APIError) and exc.status < 500:  # refused for good
                    job.note(Event.FAILED, attempt=job.attempts, detail=str(exc))
                    return job.outcome(Status.FAILED, str(exc))
                # the server may have done it before failing, or its answer was lost
                job.note(Event.IN_DOUBT, attempt=job.attempts, detail=str(exc))
                detail, in_doubt = str(exc), True
                _pause(0.2 * 2**job.attempts, deadline)
                continue
            job.note(Event.APPLIED, attempt=job.attempts, state=(answer or {}).get("state"))
            return job.outcome(Status.APPLIED)
        return self._give_up(job, in_doubt, detail)

    def _before_sending(self, job: _Job, in_doubt: bool) -> _Outcome | None:
        """Read the task's state before sending: the row's outcome when that settles it (it is
        gone, unreadable, already has the value, or a correction in doubt went through), None
        when the correction is still to be sent."""
        try:
            state = self._read_state(job.row)
        except (APIError, InvalidCorrectionError) as exc:
            if isinstance(exc, APIError) and exc.status >= 500:
                raise
            # the work order or the task is gone, or reads are refused: for good
            job.note(Event.FAILED, detail=str(exc))
            return job.outcome(Status.FAILED, str(exc))
        if state is None and in_doubt:
            job.note(Event.IN_DOUBT, detail="server unreachable for checking")
            return job.outcome(
                Status.IN_DOUBT,
                "sent, but the server could not be asked whether it applied; "
                "run apply() again later",
            )
        if state is None:
            return job.outcome(
                Status.FAILED,
                "the task's current state could not be read; nothing was sent "
                "(run apply() again later)",
            )
        if in_doubt and _holds(state, job.row.value):
            job.note(Event.CONFIRMED)
            return job.outcome(Status.CONFIRMED)
        if json_equal(effective(state), job.row.value):
            return job.outcome(Status.SKIPPED, ALREADY)
        return None

    def _give_up(self, job: _Job, in_doubt: bool, detail: str | None) -> _Outcome:
        """The outcome of a row whose attempts or budget ran out: confirmed if the server has
        it, in doubt if the server cannot say, failed otherwise."""
        if in_doubt:
            state = self._read_state(job.row)
            if state is not None and _holds(state, job.row.value):
                job.note(Event.CONFIRMED)
                return job.outcome(Status.CONFIRMED)
            if state is None:  # still unknown: the next run checks before sending
                job.note(Event.IN_DOUBT, attempt=job.attempts, detail=detail)
                return job.outcome(
                    Status.IN_DOUBT,
                    f"outcome unknown after {job.attempts} attempts: {detail}; "
                    "run apply() again to check and resume",
                )
        job.note(Event.FAILED, attempt=job.attempts, detail=f"gave up: {detail}")
        return job.outcome(Status.FAILED, f"gave up after {job.attempts} attempts: {detail}")

    # -- checking ---------------------------------------------------------------------------

    def verify(self) -> pd.DataFrame:
        """Plan rows whose task, on the server now, does not have the planned value as its
        effective value (an empty frame means the plan is fully in place)."""
        self._rows = None
        mismatches = []
        for row in self._check():
            server = effective(row.state)
            if not row.problem and json_equal(server, row.value):
                continue
            mismatches.append(
                {
                    "row": row.row,
                    "work_order_id": row.work_order_id,
                    "task_name": row.task_name,
                    "planned_value": row.corrected_value if row.problem else row.value,
                    "server_value": None if row.problem else server,
                    "problem": row.problem or "differs from the plan",
                }
            )
        return pd.DataFrame(mismatches, columns=list(VERIFY_COLUMNS))


def _resolve(row: PlanRow, work_order: Any) -> None:
    """Fill a row's task and value from its work order; raises InvalidCorrectionError."""
    task = find_task(work_order, row.task)
    row.task_id, row.task_name = str(task["id"]), task.get("name")
    row.state = task.get("state")
    if _cell(row.corrected_value) is None:
        raise InvalidCorrectionError(f"task {row.task_name!r}: no corrected_value")
    row.value = resolve_value(task, row.corrected_value)
    if not row.state or is_missing(row.state.get("analyzed_value")):
        raise InvalidCorrectionError(
            f"task {row.task_name!r} was never analysed on this work order: "
            "there is nothing to correct"
        )


def _mark_duplicates_and_conflicts(rows: list[PlanRow]) -> None:
    """Rows planning the same task: identical values are one correction (later rows get
    ``duplicate_of``, the first row's number), different values all get a ``problem``.

    Time and memory are linear in the rows: one group-by, one message per conflicting task
    (shared by its rows, and naming at most a few values)."""
    valid = [r for r in rows if r.problem is None]
    if len(valid) < 2:
        return
    frame = pd.DataFrame(
        {
            "pos": range(len(valid)),
            "work_order_id": [r.work_order_id for r in valid],
            "task_id": [r.task_id for r in valid],
            "value": [json_key(r.value) for r in valid],
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
            valid[pos].duplicate_of = valid[first].row
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
                f"{row.value!r} in row {row.row}" + (f" and {size - 1} more" if size > 1 else "")
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
                f"conflicting rows for task {valid[pos].task_name!r}: {n_rows} rows plan "
                f"{counts[task]} different values ({'; '.join(shown[task])}"
                + (f"; and {more} more value(s)" if more > 0 else "")
                + ")"
            )
        valid[pos].problem = messages[task]


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
    """A plan cell, stripped if text; None for a blank (an empty string, or a missing value:
    None, NaN, ``pd.NA``, ``NaT``)."""
    value = none_if_missing(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


def _text(value: Any) -> str:
    """A plan cell as text (a work order id); ``""`` for a blank."""
    value = _cell(value)
    return "" if value is None else str(value).strip()
