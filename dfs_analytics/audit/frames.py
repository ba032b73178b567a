"""The tasks frames the audit reads: required columns, group keys, the audited tasks, the
override flag of a basis, dates, and the provenance a loader records.

Shared by every audit module. Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

from ..errors import AuditInputError, ConfigurationError
from ..rules import is_missing

if TYPE_CHECKING:  # Dask is optional: never imported at run time
    import dask.dataframe as dd

TasksFrame: TypeAlias = "pd.DataFrame | dd.DataFrame"
"""A pandas tasks frame, or a Dask DataFrame with the same columns."""

NOT_ANALYSED = "not analysed"
OTHER = "other"
NO_VERDICT = "no verdict"
"""Confusion label of an analysed task without rules: it has no verdict."""
NONE_LABEL = "(none)"
"""How a missing group (a work order without field engineer...) is shown."""
TIME_KEYS = {"day": "D", "week": "W", "month": "M", "quarter": "Q"}
BASES = ("value", "verdict")
_FLAG_COLUMN = {"value": "is_overridden", "verdict": "is_verdict_overridden"}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _is_dask_frame(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame, without importing dask (it is optional)."""
    kind = type(obj)
    return kind.__module__.startswith("dask") and any(
        base.__name__ == "DataFrame" for base in kind.__mro__
    )


def require_columns(
    frame: TasksFrame,
    columns: Sequence[str],
    what: str,
    kind: str = "a tasks DataFrame (from dfs.load_tasks)",
    hint: str = "use the frame of dfs.load_tasks (or keep these columns)",
) -> None:
    """Raise :class:`AuditInputError` saying what ``what`` needs when ``frame`` is not a
    DataFrame (``kind`` names the one wanted) or lacks some of ``columns`` (``hint`` says
    what to pass instead)."""
    if not isinstance(frame, pd.DataFrame) and not _is_dask_frame(frame):
        raise AuditInputError(f"{what} needs {kind}, got {type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AuditInputError(
            f"{what} needs the column(s) {', '.join(missing)}, missing from this frame; {hint}."
        )


def as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def key_sources(
    frame: TasksFrame, by: list[str], what: str, date_column: str = "create_date"
) -> list[str]:
    """The columns the ``by`` keys are read from (a time key reads ``date_column``); raises
    :class:`AuditInputError` for a key that is neither a column nor a time key."""
    sources: list[str] = []
    for key in by:
        if key in frame.columns:
            sources.append(key)
        elif key in TIME_KEYS:
            require_columns(frame, [date_column], f"{what}(by={key!r})")
            sources.append(date_column)
        else:
            raise AuditInputError(
                f"{what}: unknown by column {key!r}; use a column of the frame (e.g. task_name, "
                f"task_group_name, field_engineer_email, app_version_id) or one of "
                f"{', '.join(TIME_KEYS)} (periods of {date_column})."
            )
    return sources


def with_keys(
    tasks: pd.DataFrame, by: list[str], what: str, date_column: str = "create_date"
) -> pd.DataFrame:
    """Add derived time keys (``week`` ...) and check that every ``by`` column exists."""
    key_sources(tasks, by, what, date_column)
    frame = tasks
    for key in by:
        if key not in frame.columns:
            frame = frame if frame is not tasks else frame.copy()
            frame[key] = period_start(frame[date_column], TIME_KEYS[key])
    return frame


def flag_column(basis: str) -> str:
    """The column that says whether a task was overridden on ``basis``."""
    if basis not in _FLAG_COLUMN:
        raise ConfigurationError(
            f"basis must be 'value' (changed values) or 'verdict' (flipped verdicts), "
            f"got {basis!r}."
        )
    return _FLAG_COLUMN[basis]


def require_basis(frame: Any, basis: str, what: str) -> str:
    column = flag_column(basis)
    if basis == "verdict" and column not in getattr(frame, "columns", [column]):
        raise AuditInputError(
            f"{what}(basis='verdict') needs the column is_verdict_overridden, missing from "
            "this frame; load the tasks again with dfs.load_tasks (the tasks frame has it "
            "since the dataset's schema 2), or use basis='value'."
        )
    return column


def show_missing(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with missing values of the label columns among ``columns`` (text and
    categorical ones, not dates or numbers) shown as ``"(none)"``; categoricals gain that
    category last. Returns a new frame (the input is not changed)."""
    out = frame
    for col in columns:
        if col not in out.columns:
            continue
        series = out[col]
        if not series.isna().any():
            continue
        if isinstance(series.dtype, pd.CategoricalDtype):
            if NONE_LABEL not in series.cat.categories:
                series = series.cat.add_categories([NONE_LABEL])
            filled = series.fillna(NONE_LABEL)
        elif pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(
            series.dtype
        ):
            filled = series.astype(object).where(series.notna(), NONE_LABEL)
            if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
                series.dtype
            ):
                filled = filled.astype(series.dtype)
        else:
            continue
        out = out.copy() if out is frame else out
        out[col] = filled
    return out


def app_version_labels(ids: Any, tasks: pd.DataFrame | None = None) -> dict[Any, str]:
    """How to show app versions: ``{app_version_id: label}`` for the ids in ``ids``.

    The label is the version's name where the frame carries one (a column
    ``app_version_name``, ``app_version_label`` or ``app_version`` holding text), otherwise a
    short id (the first 8 characters); a missing id is ``"(none)"``.
    """
    names: dict[Any, str] = {}
    if tasks is not None and "app_version_id" in tasks.columns:
        for column in ("app_version_name", "app_version_label", "app_version"):
            if column in tasks.columns:
                pairs = tasks[["app_version_id", column]].dropna().drop_duplicates("app_version_id")
                names.update(
                    {
                        i: str(v)
                        for i, v in zip(pairs["app_version_id"], pairs[column], strict=True)
                        if isinstance(v, str) and v.strip()
                    }
                )
                break
    out: dict[Any, str] = {}
    for i in pd.unique(pd.Series(list(ids), dtype=object)):
        if is_missing(i):
            out[i] = NONE_LABEL
        else:
            out[i] = names.get(i, str(i)[:8])
    return out


def reduce_counts(
    tasks: TasksFrame,
    columns: Sequence[str],
    chunk: Callable[[pd.DataFrame], pd.DataFrame],
    aggregate: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """``aggregate(chunk(tasks))`` for a pandas frame. For a Dask frame: only ``columns`` are
    read, ``chunk`` turns each partition into counts, ``aggregate`` sums concatenated counts
    (in a tree), and the small pandas result is computed. ``aggregate`` must be idempotent on
    its own output, so that both paths give the same frame. When ``columns`` hold
    ``work_order_id``, the Dask frame is first shuffled on it, so that every work order is in
    one partition (what cluster sums need), and categories each partition learned on its own
    keep the order pandas gives the same rows."""
    if isinstance(tasks, pd.DataFrame):
        return aggregate(chunk(tasks))
    frame = tasks[list(dict.fromkeys(columns))]
    meta = aggregate(chunk(frame._meta))
    if "work_order_id" not in columns or frame.npartitions == 1:
        return frame.reduction(chunk, aggregate=aggregate, meta=meta).compute()
    import dask

    # categories each partition learned on its own, in partition order, read in the same pass
    unknown = [
        c
        for c in frame.columns
        if isinstance(frame[c].dtype, pd.CategoricalDtype) and not frame[c].cat.known
    ]
    orders = [
        frame[c].map_partitions(
            lambda s: pd.Series([list(s.cat.categories)], dtype=object), meta=(c, object)
        )
        for c in unknown
    ]
    # a work order's tasks in one partition, so its cluster sums are exact
    shuffled = frame.shuffle(on="work_order_id")
    result, *seen = dask.compute(shuffled.reduction(chunk, aggregate=aggregate, meta=meta), *orders)
    # the shuffle mixed the partitions: give categories the order pandas gives the same rows
    for column, lists in zip(unknown, seen, strict=True):
        if column in result.columns and isinstance(result[column].dtype, pd.CategoricalDtype):
            order = list(dict.fromkeys(v for found in lists for v in found))
            extra = [v for v in result[column].cat.categories if v not in set(order)]
            result[column] = result[column].cat.set_categories(order + extra)
    return result


def utc_dates(dates: pd.Series) -> pd.Series:
    """``dates`` as tz-aware UTC timestamps: strings (a frame read back from CSV or JSON) are
    parsed, naive timestamps are taken as UTC. Raises :class:`AuditInputError` naming the
    column and a value that is not a date."""
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        return dates.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(dates.dtype):
        return dates.dt.tz_localize("UTC")
    try:
        return pd.to_datetime(dates, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise AuditInputError(
            f"column {dates.name!r} holds values that are not ISO-8601 dates "
            f"({str(exc).splitlines()[0]}); parse it "
            f"first, e.g. frame[{dates.name!r}] = pd.to_datetime(frame[{dates.name!r}], "
            "utc=True, format='mixed'), or read the CSV with parse_dates=[...]."
        ) from None


def period_start(dates: pd.Series, freq: str) -> pd.Series:
    """The start of each date's period, as a tz-aware UTC timestamp (strings are parsed)."""
    naive = utc_dates(dates).dt.tz_localize(None)
    return naive.dt.to_period(freq).dt.start_time.dt.tz_localize("UTC")


def audited(tasks: pd.DataFrame) -> pd.DataFrame:
    """The tasks that count for an audit: analysed, on a reviewed work order. Returns those
    rows of the input."""
    require_columns(tasks, ["analyzed", "reviewed"], "audited")
    return tasks[audited_mask(tasks)]


def as_booleans(column: pd.Series) -> pd.Series:
    """A nullable flag as plain booleans (missing = False)."""
    return column.fillna(False).astype(bool)


def audited_mask(tasks: pd.DataFrame) -> pd.Series:
    """Analysed tasks of reviewed work orders, as plain booleans."""
    return as_booleans(tasks["analyzed"]) & as_booleans(tasks["reviewed"])


def refuse_unreviewed(reviewed_only: bool | None, what: str) -> None:
    """Rates cover reviewed work orders only: ``reviewed_only=False`` (which counted every
    unreviewed task as "agreed") raises ConfigurationError; ``True`` is what every rate does
    (a DeprecationWarning says to drop it)."""
    if reviewed_only is None:
        return
    if not reviewed_only:
        raise ConfigurationError(
            f"{what}(reviewed_only=False) is gone: it counted every unreviewed task as "
            "'agreed', although nobody looked at it. Rates cover reviewed work orders; for the "
            "whole site use dfs.audit.site_estimate(tasks) (or with a review plan from "
            "dfs.audit.review_sample)."
        )
    warnings.warn(
        f"{what}(reviewed_only=True) is what it always does now; drop the argument.",
        DeprecationWarning,
        stacklevel=3,
    )


PROVENANCE_ATTR = "dfs_provenance"


def provenance(frame: Any) -> dict[str, Any] | None:
    """Where a loaded frame's rows come from: a copy of ``frame.attrs["dfs_provenance"]``.

    Returns a dict such as ``{"dataset": "/path", "version": 12, "table": "tasks", "filters":
    {"created_after": "2026-01-01T00:00:00Z"}, "as_of": None}``, or None when the frame carries
    no provenance (built by hand, or attrs lost by a pandas operation). Read it from the frame
    the loader returned: some pandas operations drop ``attrs``.
    """
    attrs = getattr(frame, "attrs", None)
    found = attrs.get(PROVENANCE_ATTR) if isinstance(attrs, Mapping) else None
    return copy.deepcopy(dict(found)) if isinstance(found, Mapping) else None
