"""A review of a plan's sampled work orders, task by task: agree with the AI, or correct it.

>>> review = Review(client, plan)              # a plan from dfs.audit.review_sample
>>> items = review.items(plan["work_order_id"][0])   # its analysed tasks, with their images
>>> review.agree(item.work_order_id, item.task_id)
>>> review.correct(item.work_order_id, item.task_id, False)

A correction goes through a journaled :class:`~dfs_analytics.campaign.Campaign` of its own;
an agreement (no API call) goes to the local review journal (docs/architecture.md, "Reviews").
Never reads work orders but through the client's public methods, never sends a correction but
through :mod:`~dfs_analytics.campaign`, and never writes anything but its journals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .campaign import Campaign, Status
from .errors import ConfigurationError, InvalidCorrectionError
from .files import file_lock, lock_beside
from .journal import Journal, last_events, make_folders
from .normalize import task_row
from .rules import is_missing, matching_rule
from .tasks import allowed_values, find_task, resolve_value

if TYPE_CHECKING:
    from .client import Client

AGREED = "agreed"
CORRECTED = "corrected"
"""The ``event`` of a review journal's records: the auditor agreed, or a correction was
applied (or found applied)."""

# campaign statuses after which the server holds the corrected value
_SETTLED = {Status.APPLIED, Status.APPLIED_EARLIER, Status.CONFIRMED, Status.SKIPPED}


def plan_fingerprint(plan: pd.DataFrame | Iterable[str]) -> str:
    """A short, stable fingerprint (16 hex digits of a SHA-256) of a review plan: of its set
    of work-order ids, so a plan saved and loaded again (:func:`dfs.audit.load_plan`) keeps
    it. ``plan``: a frame with ``work_order_id``, or the ids themselves."""
    ids = _plan_ids(plan)
    text = "\n".join(sorted(set(ids)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def default_journal(client: Client, plan: pd.DataFrame | Iterable[str]) -> Path:
    """The review journal of ``plan`` beside ``client``'s dataset:
    ``<client.dataset_location>/../review-<plan fingerprint>.jsonl``. Raises
    :class:`~dfs_analytics.ConfigurationError` when the dataset is not a local path (an object
    store or a URI): give the journal's path (``journal=``) instead."""
    location = client.dataset_location
    if "://" in location or location[:5].lower() == "file:":
        # a URI's "parent" would be a relative folder of the working directory
        raise ConfigurationError(
            f"the client's dataset is at {location!r}, not a local folder, so a review "
            "journal has no place beside it: give journal= a local .jsonl path."
        )
    return Path(location).parent / f"review-{plan_fingerprint(plan)}.jsonl"


def read_decisions(path: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The last decision per task recorded in a review journal: ``{(work_order_id,
    task_id): record}`` where ``record["event"]`` is ``"agreed"`` or ``"corrected"`` (with
    its ``value``). Empty when there is no journal yet."""
    decisions: dict[tuple[str, str], dict[str, Any]] = {}
    for record in Journal.read(path):
        if record.get("event") in (AGREED, CORRECTED):
            key = (str(record.get("work_order_id")), str(record.get("task_id")))
            decisions[key] = record
    return decisions


def read_agreements(path: str | Path) -> set[tuple[str, str]]:
    """The tasks an auditor agreed with the AI on, as a set of ``(work_order_id, task_id)``,
    read from a review journal (a later correction of a task takes it out)."""
    return {key for key, record in read_decisions(path).items() if record["event"] == AGREED}


@dataclass
class ReviewItem:
    """One analysed task of a sampled work order, as the auditor reviews it."""

    work_order_id: str
    work_order_name: str | None
    task_id: str
    task_name: str | None
    task_group_name: str | None
    outcome_type: str | None
    analyzed_value: Any  # the AI's value
    corrected_value: Any  # a human's correction on the server, if any
    message: str | None  # the verdict of the effective value
    is_conform: Any
    color: str | None  # the colour of the verdict's rule
    ai_message: str | None  # the verdict of the AI's value
    choices: list[tuple[Any, str | None]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # http(s) URLs of its group's inputs
    decision: str | None = None  # "agreed", "corrected" or None (not yet reviewed)
    decided_value: Any = None  # the corrected value, for "corrected"


class Review:
    """The review of a plan's sampled work orders (see the module docstring).

    Args:
        client: the :class:`~dfs_analytics.Client` to read and correct with.
        plan: a review plan (:func:`dfs.audit.review_sample` or :func:`dfs.audit.load_plan`),
            or any frame with ``work_order_id`` (and optionally ``work_order_name``).
        journal: the review journal (JSONL); by default :func:`default_journal`.
    """

    def __init__(
        self,
        client: Client,
        plan: pd.DataFrame,
        journal: str | Path | None = None,
    ):
        self.client = client
        ids = _plan_ids(plan)
        if not ids:
            raise ConfigurationError(
                "the review plan has no work order: give the frame dfs.audit.review_sample "
                "returned (or one with a work_order_id column)."
            )
        self.work_order_ids: list[str] = list(dict.fromkeys(ids))
        self.names: dict[str, str | None] = {}
        if isinstance(plan, pd.DataFrame) and "work_order_name" in plan:
            # row by row: the ids of rows without one are not in ``ids``
            pairs = zip(plan["work_order_id"], plan["work_order_name"], strict=True)
            self.names = {
                str(i): (None if is_missing(n) else str(n)) for i, n in pairs if not is_missing(i)
            }
        self.fingerprint = plan_fingerprint(self.work_order_ids)
        self.journal_path = Path(journal) if journal is not None else default_journal(client, ids)
        self._items: dict[str, list[ReviewItem]] = {}
        # the journal's decisions and the (mtime, size) of the file they were read from
        self._decisions: dict[tuple[str, str], dict[str, Any]] = {}
        self._decisions_stamp: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return (
            f"<Review of {len(self.work_order_ids)} work order(s), journal "
            f"{str(self.journal_path)!r}>"
        )

    @property
    def corrections_folder(self) -> Path:
        """The folder of the corrections' campaign journals, beside the review journal."""
        return self.journal_path.with_name(self.journal_path.stem + "-corrections")

    # -- reading ------------------------------------------------------------------------------

    def items(self, work_order_id: str, *, refresh: bool = False) -> list[ReviewItem]:
        """The analysed tasks of one sampled work order (those with an AI value), in the
        server's order, each with its images and the decision the journal holds. Read once
        from the server (again with ``refresh=True``); raises what the client raises."""
        if work_order_id not in self.work_order_ids:
            raise ConfigurationError(f"work order {work_order_id!r} is not in this review's plan.")
        if refresh or work_order_id not in self._items:
            work_order = self.client.get_work_order(work_order_id, include_inputs=True)
            self._items[work_order_id] = _items_of(
                work_order, self.names.get(work_order_id) or work_order.get("name")
            )
        decisions = self._read_decisions()
        for item in self._items[work_order_id]:
            record = decisions.get((item.work_order_id, item.task_id))
            item.decision = record["event"] if record else None
            item.decided_value = record.get("value") if record else None
        return self._items[work_order_id]

    def remaining(self, work_order_id: str) -> list[ReviewItem]:
        """The tasks of one work order not yet agreed with or corrected."""
        return [item for item in self.items(work_order_id) if item.decision is None]

    def progress(self) -> pd.DataFrame:
        """One row per sampled work order, in the plan's order: ``work_order_id``,
        ``work_order_name``, ``tasks`` (analysed), ``agreed``, ``corrected``, ``remaining``
        and ``done`` (every analysed task decided). Reads each work order once."""
        rows = []
        for wo_id in self.work_order_ids:
            items = self.items(wo_id)
            agreed = sum(item.decision == AGREED for item in items)
            corrected = sum(item.decision == CORRECTED for item in items)
            rows.append(
                {
                    "work_order_id": wo_id,
                    "work_order_name": self.names.get(wo_id)
                    or (items[0].work_order_name if items else None),
                    "tasks": len(items),
                    "agreed": agreed,
                    "corrected": corrected,
                    "remaining": len(items) - agreed - corrected,
                    "done": agreed + corrected == len(items),
                }
            )
        return pd.DataFrame(rows)

    def reviewed_work_orders(self) -> set[str]:
        """The sampled work orders whose every analysed task was decided (agreed or corrected)
        on the bench: reviewed, although the server has no review of them; what
        :func:`dfs_analytics.audit.site_estimate` takes as ``also_reviewed``."""
        progress = self.progress()
        if progress.empty:
            return set()
        return set(progress.loc[progress["done"], "work_order_id"])

    # -- deciding -----------------------------------------------------------------------------

    def agree(self, work_order_id: str, task_id: str) -> bool:
        """Record that the auditor agrees with the AI on a task (in the review journal);
        returns False, writing nothing, when that is already the task's last decision."""
        item = self._item(work_order_id, task_id)
        if self._read_decisions().get((work_order_id, task_id), {}).get("event") == AGREED:
            return False
        with Journal(self.journal_path) as journal:
            journal.append(
                {
                    **self._ids(work_order_id, task_id),
                    "event": AGREED,
                    "value": item.analyzed_value,
                }
            )
        item.decision, item.decided_value = AGREED, item.analyzed_value
        return True

    def correct(self, work_order_id: str, task_id: str, value: Any) -> dict[str, Any]:
        """Correct a task to ``value`` (one of its allowed values, its string form or a verdict
        sentence) through a journaled campaign, then record the decision in the review
        journal. Returns the campaign's row: ``status`` (``applied``, ``applied earlier``
        when this correction was already sent, ``skipped`` when the server already had the
        value, ``confirmed``, ``failed`` or ``in doubt``), ``value``, ``detail`` and
        ``journal`` (the campaign journal). Only a settled correction is recorded as the
        task's decision. Raises :class:`~dfs_analytics.InvalidCorrectionError`, sending
        nothing, for a value the task does not accept."""
        item = self._item(work_order_id, task_id)
        work_order = self.client.get_work_order(work_order_id, include_inputs=False)
        task = find_task(work_order, task_id)
        resolved = resolve_value(task, value)
        key = json.dumps([work_order_id, task_id, resolved], sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        campaign = Campaign(
            self.client,
            pd.DataFrame(
                {
                    "work_order_id": [work_order_id],
                    "task_id": [task_id],
                    "corrected_value": [resolved],
                }
            ),
            journal=self.corrections_folder / f"correction-{digest}.jsonl",
        )
        result = {str(k): v for k, v in campaign.apply(progress=False).iloc[0].items()}
        result["journal"] = str(campaign.journal_path)
        if result["status"] in _SETTLED:
            with Journal(self.journal_path) as journal:
                journal.append(
                    {
                        **self._ids(work_order_id, task_id),
                        "event": CORRECTED,
                        "value": resolved,
                        "status": result["status"],
                        "campaign_journal": campaign.journal_path.name,
                    }
                )
            item.decision, item.decided_value = CORRECTED, resolved
        self.items(work_order_id, refresh=True)
        return result

    def _read_decisions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """:func:`read_decisions` of the review journal, read again only when the file changed
        (its modification time or size; the journal is append-only): :meth:`items` runs for
        every work order a walk or :meth:`progress` passes."""
        try:
            stat = self.journal_path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._decisions_stamp:
            self._decisions = read_decisions(self.journal_path)
            self._decisions_stamp = stamp
        return self._decisions

    def _item(self, work_order_id: str, task_id: str) -> ReviewItem:
        for item in self.items(work_order_id):
            if item.task_id == task_id:
                return item
        raise InvalidCorrectionError(
            f"work order {work_order_id} has no analysed task {task_id!r} to review."
        )

    def _ids(self, work_order_id: str, task_id: str) -> dict[str, Any]:
        """What every review journal record carries."""
        return {
            "key": f"{work_order_id}/{task_id}",
            "base_url": self.client.settings.display_url,  # any password masked
            "plan": self.fingerprint,
            "work_order_id": work_order_id,
            "task_id": task_id,
        }


def _plan_ids(plan: pd.DataFrame | Iterable[str]) -> list[str]:
    """The work-order ids of a plan, as text, in order."""
    if isinstance(plan, pd.DataFrame):
        if "work_order_id" not in plan.columns:
            raise ConfigurationError(
                "a review plan needs a work_order_id column (use dfs.audit.review_sample)."
            )
        return [str(i) for i in plan["work_order_id"] if not is_missing(i)]
    return [str(i) for i in plan]


def _items_of(work_order: dict[str, Any], name: str | None) -> list[ReviewItem]:
    """The analysed tasks of a work order (read with its inputs) as review items."""
    images: dict[str, list[str]] = {}
    for entry in work_order.get("inputs") or ():
        data = entry.get("data") if isinstance(entry, dict) else None
        url = data.get("value") if isinstance(data, dict) else None
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            images.setdefault(str(entry.get("task_group_name")), []).append(url)
    out = []
    for task in work_order.get("tasks") or ():
        row = task_row(str(work_order.get("id")), task)
        if is_missing(row["analyzed_value"]):
            continue
        rules = task.get("outcome_validation")
        rule = matching_rule(rules, row["value"])
        ai_rule = matching_rule(rules, row["analyzed_value"])
        group = row["task_group_name"]
        out.append(
            ReviewItem(
                work_order_id=row["work_order_id"],
                work_order_name=name,
                task_id=str(row["task_id"]),
                task_name=row["task_name"],
                task_group_name=group,
                outcome_type=row["outcome_type"],
                analyzed_value=row["analyzed_value"],
                corrected_value=row["corrected_value"],
                message=row["message"],
                is_conform=row["is_conform"],
                color=(rule or {}).get("color"),
                ai_message=(ai_rule or {}).get("sentence"),
                choices=allowed_values(task),
                images=list(images.get(str(group), [])),
            )
        )
    return out


MARKED = "marked"
"""The ``event`` of a marking journal's record once the server holds the mark."""


def mark_plan(
    client: Client,
    plan: pd.DataFrame | Iterable[str],
    *,
    key: str = "review_plan",
    value: str | None = None,
    journal: str | Path | None = None,
) -> pd.DataFrame:
    """Opt-in: mark a plan's sampled work orders on the server, so a review team finds them
    in its own tools: the metadata key ``key`` set to ``value`` (default: the plan's
    fingerprint) on each, by a metadata PATCH (other keys are kept).

    Journaled like a campaign: each mark is recorded before it is sent and once the server
    has it, in ``journal`` (default: ``review-<fingerprint>-marks.jsonl`` beside the client's
    dataset), under an OS lock held for the whole call. A mark whose outcome is in doubt is
    checked on the server before being sent again, so each work order gets one
    ``metadata_update`` event. Returns one row per work order: ``work_order_id``,
    and ``status`` (``marked``, ``marked earlier`` or ``already marked``)."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(f"key must be a non-empty metadata key, got {key!r}.")
    ids = _plan_ids(plan)
    mark = plan_fingerprint(ids) if value is None else value
    if not isinstance(mark, str) or not mark:
        raise ConfigurationError(f"value must be a non-empty string, got {value!r}.")
    if journal is None:
        review_journal = default_journal(client, ids)
        path = review_journal.with_name(review_journal.stem + "-marks.jsonl")
    else:
        path = Path(journal)
    make_folders(path.parent)
    rows = []
    with file_lock(lock_beside(path), what=f"the marking journal {str(path)!r}"):
        last = last_events(Journal.read(path))
        with Journal(path) as log:
            for wo_id in ids:
                record = {"key": f"{wo_id}/{key}", "work_order_id": wo_id, "mark": mark}
                done = last.get(record["key"])
                if done == MARKED:
                    rows.append({"work_order_id": wo_id, "status": "marked earlier"})
                    continue
                # sent before (in doubt), or never: the server says whether it is needed
                current = (client.get_work_order(wo_id, include_inputs=False) or {}).get(
                    "metadata"
                ) or {}
                if current.get(key) == mark:
                    log.append({**record, "event": MARKED})
                    rows.append({"work_order_id": wo_id, "status": "already marked"})
                    continue
                log.append({**record, "event": "attempt"})
                client.patch_metadata(wo_id, {key: mark})
                log.append({**record, "event": MARKED})
                rows.append({"work_order_id": wo_id, "status": "marked"})
    return pd.DataFrame(rows, columns=["work_order_id", "status"])
