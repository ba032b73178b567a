"""Loaders: complete, concurrent, incrementally refreshed DataFrames of work orders, tasks,
timelines and task groups, read back from the client's dataset.

Each loader first syncs (:func:`dfs_analytics.sync`), then reads the frame back with the
filters and ``columns=`` pushed down; ``as_of=`` reads a past version without a request, and
``offline=True`` clients read the dataset as it is (:class:`~dfs_analytics.errors.OfflineCacheMiss`
when the query was never synced). Frames carry ``attrs["dfs_provenance"]``: the dataset's path,
version and filters.

This module never speaks HTTP except through the client's endpoint methods, never opens or
writes a client's dataset except through :mod:`dfs_analytics.syncing`, and keeps no state.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from .client import Client
from .dataset import TIMELINE_AT, Dataset, VersionNotFoundError
from .errors import DFSError, OfflineCacheMiss, TableNotSyncedError
from .periods import expand_created_in
from .query import canonical, check_work_order_ids, split_filters
from .syncing import (
    client_dataset,
    existing_dataset,
    sync,
    sync_ids,
    sync_task_groups,
    written,
    written_since_stored,
)


def _read_version(
    client: Client, filters: Mapping[str, Any], timelines: bool, progress: bool | None
) -> Dataset:
    """Sync (online) or check the dataset covers the query (offline); the dataset."""
    if not client.settings.offline:
        sync(client, timelines=timelines, progress=progress, **filters)
        return client_dataset(client)
    _, local = split_filters(filters)
    ds = existing_dataset(client)
    if ds is None:
        raise OfflineCacheMiss(
            "nothing was ever loaded into this client's dataset (offline=True): load once "
            "online first."
        )
    wanted = canonical(local)
    history = ds.history()
    done = history[history["complete"]]
    if timelines:
        done = done[done["with_timelines"]]
    if not any(f == wanted or f == {} for f in done["filters"]):
        raise OfflineCacheMiss(
            f"these work orders ({wanted or 'no filter'}) were never loaded"
            f"{' with their timelines' if timelines else ''} into this client's dataset "
            "(offline=True): load them once online first."
        )
    _check_no_writes(client, ds, local)
    return ds


def _check_no_writes(client: Client, ds: Dataset, local: Mapping[str, Any]) -> None:
    """Raise OfflineCacheMiss when the client wrote to a work order the query selects since
    it was stored (offline, it cannot be read again)."""
    if not written(client):
        return
    dirty = written_since_stored(client, ds.index(**local))
    if dirty:
        raise OfflineCacheMiss(
            f"{len(dirty)} stored work order(s) changed through this client since they were "
            "loaded; load online once to refresh them."
        )


def _hint_name(
    client: Client, ds: Dataset, frame: pd.DataFrame, filters: Mapping[str, Any]
) -> pd.DataFrame:
    """``frame``, after a UserWarning when ``name=`` matched nothing but is a task's (or a
    task group's) name: ``name`` filters work orders by their own name."""
    name = filters.get("name")
    if not isinstance(name, str) or len(frame):
        return frame
    names: set[Any] = set()
    try:
        if ds.table_versions().get("task_groups") is not None:
            groups = ds.task_groups(columns=["task_group_name", "task_name"])
            names = set(groups["task_name"]) | set(groups["task_group_name"])
        elif not client.settings.offline:
            listed = client.list_task_groups()
            names = {g.get("name") for g in listed} | {
                t.get("name") for g in listed for t in g.get("tasks") or []
            }
    except (DFSError, KeyError):  # a hint only: never fail the load for it
        return frame
    if name.strip() in names:
        warnings.warn(
            f"name={name!r} matched no work order, but it is the name of a task (or task "
            "group): the name filter selects work orders by the work order's own name. To "
            "select a task, filter the frame, e.g. tasks[tasks.task_name == "
            f"{name.strip()!r}].",
            UserWarning,
            stacklevel=4,  # the user's call of a loader: loader -> _load -> here
        )
    return frame


def _as_of(client: Client, as_of: Any) -> Dataset:
    ds = existing_dataset(client)
    if ds is None:
        raise VersionNotFoundError(
            f"as_of={as_of!r}: this client's dataset has no version yet; load once first."
        )
    return ds


def _load(
    read: Callable[..., pd.DataFrame],
    client: Client,
    columns: Sequence[str] | None,
    as_of: Any,
    progress: bool | None,
    filters: Mapping[str, Any],
    *,
    timelines: bool = False,
) -> pd.DataFrame:
    """The frame ``read`` (a :class:`~dfs_analytics.dataset.Dataset` method) gives for the
    filters: at ``as_of`` without a request, else after a sync (``timelines``: with the
    timelines), with the hint of :func:`_hint_name`."""
    filters = expand_created_in(filters)  # created_in="2026Q3" -> created_after/_before
    split_filters(filters)  # bad filters fail before anything else
    if as_of is not None:
        return read(_as_of(client, as_of), as_of=as_of, columns=columns, **filters)
    ds = _read_version(client, filters, timelines, progress)
    return _hint_name(client, ds, read(ds, columns=columns, **filters), filters)


# --------------------------------------------------------------------------------------------
# public loaders
# --------------------------------------------------------------------------------------------

_FILTER_DOC = """
    Filters (all optional, combined with AND): ``created_after`` (inclusive),
    ``created_before`` (exclusive), ``created_in`` (a period: ``"2026Q3"``, ``"2026-03"``,
    ``"2026-W10"``, ``"2026-03-05"`` or ``"2026"``, instead of the two dates),
    ``updated_after``, ``updated_before`` (dates as ISO strings,
    ``date``/``datetime`` or pandas ``Timestamp``; naive means UTC), ``reviewed`` (bool),
    ``name`` (exact), ``tag`` (a string or a list: all must match), ``field_engineer_email``.
    ``progress`` shows a progress bar (default: the client's setting). ``columns`` reads
    only these columns. ``as_of`` (a dataset version number or a date/time) returns that
    version's frame, with no request (offline too). The frame's
    ``attrs["dfs_provenance"]`` names the dataset, its version and the filters.
"""


def load_work_orders(
    client: Client,
    *,
    columns: Sequence[str] | None = None,
    as_of: Any = None,
    progress: bool | None = None,
    **filters: Any,
) -> pd.DataFrame:
    """Work orders as a DataFrame, one row each, oldest first.

    Columns: ``work_order_id, name, site_id, app_version_id, create_date, update_date,
    review_date`` (UTC datetimes), ``reviewed``, ``progress_score`` (0-100),
    ``field_engineer_email, field_engineer_name, first_analysis_id, latest_analysis_id,
    tags, types`` (lists), ``n_tasks``, one ``metadata.<key>`` column per metadata key, and
    any other key the server sends.
    """
    return _load(Dataset.work_orders, client, columns, as_of, progress, filters)


def load_tasks(
    client: Client,
    *,
    columns: Sequence[str] | None = None,
    as_of: Any = None,
    progress: bool | None = None,
    **filters: Any,
) -> pd.DataFrame:
    """Tasks with their states, one row per work order x task.

    Columns: ``work_order_id, work_order_name, task_group_name, task_id, task_name,
    outcome_type, conformity_status, analyzed, analyzed_value, corrected_value, value,
    message, is_conform, is_corrected, is_overridden, reviewed, field_engineer_email,
    app_version_id, create_date, update_date, review_date`` and a few more (see
    ``normalize.TASK_SPEC``). ``value`` is the corrected value if any, else the analysed one;
    ``is_overridden`` means corrected to a different value.
    """
    return _load(Dataset.tasks, client, columns, as_of, progress, filters)


def load_timeline(
    client: Client,
    work_order_ids: Iterable[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    as_of: Any = None,
    progress: bool | None = None,
    **filters: Any,
) -> pd.DataFrame:
    """Timeline events, one row per event x task state it changed, oldest first per work order.

    ``work_order_ids=None`` means every work order the filters select (a list of ids: those,
    in that order). Timelines are fetched concurrently, and only for work orders whose
    ``update_date`` moved since they were last read. Columns: ``work_order_id, event_id,
    date, type, user, analysis_id, task_group_name, task_id, task_name, analyzed_value,
    corrected_value, message, is_conform``.
    """
    if work_order_ids is None:
        return _load(Dataset.timeline, client, columns, as_of, progress, filters, timelines=True)
    filters = expand_created_in(filters)
    _, local = split_filters(filters)  # bad filters fail before anything else
    ids = check_work_order_ids(work_order_ids)
    if as_of is not None:
        return _as_of(client, as_of).timeline(
            as_of=as_of, columns=columns, work_order_ids=ids, **filters
        )
    if filters:
        _read_version(client, filters, True, progress)
        ds = client_dataset(client)
        selected = set(ds.index(**local)["work_order_id"])
        ids = [i for i in ids if i in selected]
    elif client.settings.offline:
        ds = _read_version_ids(client, ids)
    else:
        sync_ids(client, ids, timelines=True, progress=progress)
        ds = client_dataset(client)
    return ds.timeline(columns=columns, work_order_ids=ids)


def _read_version_ids(client: Client, ids: list[str]) -> Dataset:
    """Offline: the dataset, when it holds the current timelines of ``ids``."""
    ds = existing_dataset(client)
    if ds is None:
        raise OfflineCacheMiss("nothing was ever loaded into this client's dataset (offline=True).")
    index = ds.index()
    index = index[index["work_order_id"].isin(set(ids))]
    marks, dates = index[TIMELINE_AT], index["update_date"]
    # read at the work order's update_date; an undated one's mark only says it was read
    ready = set(index["work_order_id"][marks.notna() & ((marks == dates) | dates.isna())])
    missing = [i for i in ids if i not in ready]
    if missing:
        raise OfflineCacheMiss(
            f"{len(missing)} timeline(s) are not in the dataset (offline=True); load them "
            "online first."
        )
    _check_no_writes(client, ds, {})
    return ds


def load_task_groups(
    client: Client,
    *,
    columns: Sequence[str] | None = None,
    as_of: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """The site's task groups and their tasks, one row per task.

    Columns: ``task_group_id, task_group_name, order, task_id, task_name, sentence,
    outcome_type, conformity_status, only_for_dashboard, mandatory, outcome_display, rules``
    (the verdict rules: list of dicts with ``schema``, ``sentence``, ``color``, ...).
    ``progress`` is accepted for symmetry with the other loaders (one request).
    """
    if as_of is not None:
        return _as_of(client, as_of).task_groups(as_of=as_of, columns=columns)
    if client.settings.offline:
        ds = existing_dataset(client)
        if ds is None or ds.table_versions()["task_groups"] is None:
            raise OfflineCacheMiss(
                "task groups were never loaded into this client's dataset (offline=True): "
                "load them online first."
            )
        return ds.task_groups(columns=columns)
    if sync_task_groups(client):
        return client_dataset(client).task_groups(columns=columns)
    try:
        return client_dataset(client).task_groups(columns=columns)
    except TableNotSyncedError:
        # another process committed the table but not yet the dataset version that records
        # it: commit them as a version of this client's own (after its commit, by the lock)
        sync_task_groups(client, force=True)
        return client_dataset(client).task_groups(columns=columns)


for _fn in (load_work_orders, load_tasks, load_timeline):
    _fn.__doc__ = (_fn.__doc__ or "") + _FILTER_DOC
