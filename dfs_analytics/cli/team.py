"""``sync``, ``status`` and ``vacuum``: the commands of a team's shared dataset, kept fresh by
one scheduled job (cron, a systemd timer, CI) and read by everyone.

``sync`` holds the dataset's sync lock (:func:`dfs_analytics.syncing.state.sync_lock`) so two
scheduled syncs never run at once (exit status :data:`EX_TEMPFAIL` when another holds it),
then keeps :data:`RETENTION` of versions (and every pinned one). ``status`` and ``vacuum`` read
a dataset by its location alone (``--dataset`` or ``DFS_DATASET``): no API key needed. The
site and the credentials come from the ``DFS_*`` environment only; nothing here prints a
secret or sends anything but the sync's reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from ..config import require_site
from ..errors import BusyError, DFSError, NotADatasetError, TableNotSyncedError
from .options import PROG, UsageError, command, date_filters, describe, filters, positive, seconds

#: the exit status of ``sync`` when another sync holds the dataset (sysexits' EX_TEMPFAIL:
#: "try again later", which cron wrappers and systemd understand)
EX_TEMPFAIL = 75
#: what ``sync`` keeps after a successful sync, pinned versions apart
RETENTION = "30 days"


def _dataset_option(p: argparse.ArgumentParser, output: str) -> None:
    p.add_argument(
        "--dataset",
        default=None,
        metavar="URI",
        help="the dataset: a folder or an object-store URI (default: DFS_DATASET, else the "
        "site's own dataset in the cache folder); object-store credentials come from "
        "DFS_STORAGE_OPTIONS (JSON) or the provider's environment",
    )
    p.add_argument("--json", action="store_true", help=f"print {output} as JSON")


def dataset_parsers(sub: argparse._SubParsersAction) -> None:
    """``sync``, ``status`` and ``vacuum``: a team's shared dataset, kept by one scheduled
    job and read by everyone."""
    s = command(
        sub,
        "sync",
        "bring the dataset up to date with the site (for cron, systemd timers and CI)",
        "Sync the site of DFS_BASE_URL or DFS_SITE_ID (+ DFS_REGION) and DFS_API_KEY into its "
        "dataset, then drop the files of versions older than "
        f"{RETENTION} that no pin keeps (--no-vacuum: keep everything). Exit status: 0 "
        f"synced, 1 failed, 2 bad arguments or settings, {EX_TEMPFAIL} another sync of the "
        "dataset is running (try later, or --wait), 130 interrupted.",
    )
    _dataset_option(s, "a summary (its last line of output)")
    s.add_argument("--timelines", action="store_true", help="sync the timelines too")
    date_filters(s)
    s.add_argument(
        "--quiet", action="store_true", help="print nothing on success (errors still show)"
    )
    s.add_argument(
        "--wait",
        type=seconds,
        nargs="?",
        const=math.inf,
        default=0.0,
        metavar="SECONDS",
        help="when another sync of the dataset is running, wait for it (at most SECONDS; "
        f"without a number, as long as it takes) instead of exiting with {EX_TEMPFAIL}",
    )
    s.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help=f"keep every version's files (default: drop what only versions older than "
        f"{RETENTION} use, except pinned versions)",
    )
    st = command(
        sub,
        "status",
        "show the dataset's versions, its last sync and what its tables hold",
        "Read the dataset (no request to the site, no API key needed with --dataset or "
        "DFS_DATASET) and show its versions, its last sync and the rows of each table.",
    )
    _dataset_option(st, "the status")
    v = command(
        sub,
        "vacuum",
        "drop the files only old dataset versions use (pinned versions are kept)",
        "Delete the data files that only old versions of the dataset use; the latest version "
        "and pinned ones (a review plan's, a report's) are always kept, and so are the "
        "versions --keep-versions and --older-than keep.",
    )
    _dataset_option(v, "what was (or would be) removed")
    v.add_argument(
        "--keep-versions", type=positive, default=None, metavar="N", help="keep the last N versions"
    )
    v.add_argument(
        "--older-than",
        default=None,
        metavar="AGE",
        help="keep the versions younger than AGE, e.g. '30 days', '12 hours' (neither this "
        "nor --keep-versions: 7 days)",
    )
    v.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")


class SyncBusyError(BusyError):
    """Another sync holds the dataset: ``sync`` exits with :data:`EX_TEMPFAIL`."""

    def __init__(self, busy: BusyError):
        DFSError.__init__(self, str(busy))
        self.path = busy.path


def _print_json(data: Any) -> None:
    print(json.dumps(data, sort_keys=True, default=str), flush=True)


def _records(frame: Any) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (dates in ISO-8601, numbers as plain numbers)."""
    return list(json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s")))


def _open_dataset(args: argparse.Namespace) -> Any:
    """The dataset ``--dataset`` or ``DFS_DATASET`` names (no site settings needed), else the
    configured site's own dataset; NotADatasetError when nothing was synced there."""
    from ..config import dataset_from_env, reveal_options
    from ..connect import connect
    from ..syncing import existing_dataset, open_dataset

    location, options = dataset_from_env()
    if args.dataset or location:
        return open_dataset(args.dataset or location, storage_options=reveal_options(options))
    require_site(advice=" Or name the dataset: --dataset FOLDER_OR_URI (or DFS_DATASET).")
    client = connect(simulator=False, progress=False)
    ds = existing_dataset(client)
    if ds is None:
        raise NotADatasetError(
            f"no dataset at {client.dataset_location} yet: run '{PROG} sync' first, or name "
            "the dataset with --dataset (or DFS_DATASET)."
        )
    return ds


def _vacuum(ds: Any, **options: Any) -> dict[str, Any]:
    """Run :meth:`Dataset.vacuum` (it keeps the latest and the pinned versions) and say what
    it did: the options, the files removed (or that would be) and their bytes, the versions
    that became unreadable, and ``files_removed``: one record per file."""
    removed = ds.vacuum(**options)
    return {
        **options,
        "removed": len(removed),
        "bytes": int(removed["bytes"].sum()) if len(removed) else 0,
        "unreadable_versions": sorted(int(v) for v in removed.attrs.get("unreadable_versions", [])),
        "files_removed": _records(removed),
    }


def _cmd_sync(args: argparse.Namespace) -> int:
    from ..connect import connect
    from ..syncing import client_dataset, sync, sync_task_groups
    from ..syncing.state import sync_lock

    overrides = {"dataset": args.dataset} if args.dataset else {}
    client = connect(simulator=False, progress=False, **overrides)
    timeout = None if math.isinf(args.wait) else args.wait
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    with client, contextlib.ExitStack() as stack:
        try:
            stack.enter_context(sync_lock(client, timeout=timeout))
        except BusyError as exc:
            raise SyncBusyError(exc) from None
        sent = client.requests_sent
        result = sync(client, timelines=args.timelines, progress=show, **filters(args))
        groups = sync_task_groups(client)  # one request: readers need the task groups too
        ds = client_dataset(client)
        vacuum: dict[str, Any] | None = None
        if args.vacuum:
            try:
                vacuum = _vacuum(ds, older_than=RETENTION)
                vacuum.pop("files_removed")
            except (DFSError, OSError) as exc:  # the sync is done: a warning, not a failure
                vacuum = {"error": describe(exc)}
                print(f"{PROG}: warning: synced, not vacuumed: {vacuum['error']}", file=sys.stderr)
        summary = {
            "dataset": result.location,
            "version": ds.version,
            "changed": result.changed or groups,
            "commits": result.commits + int(groups),
            "filters": result.filters,
            **{name: getattr(result, name) for name in _COUNTS},
            "requests": client.requests_sent - sent,
            "seconds": round(result.seconds, 3),
            "throttled": result.throttled,
            "vacuum": vacuum,
        }
    if args.json:
        _print_json(summary)
    elif not args.quiet:
        counts = ", ".join(f"{name} {summary[name]}" for name in _COUNTS)
        print(
            f"Synced {summary['dataset']}: version {summary['version']} "
            f"({'new' if summary['changed'] else 'unchanged'}); {counts}; "
            f"{summary['requests']} requests in {result.seconds:.1f} s "
            f"({result.throttled} throttled)."
        )
        if vacuum is not None and "error" not in vacuum:
            print(f"Retention: {vacuum['removed']} removed (older than {RETENTION}, not pinned).")
    return 0


#: the counts of a sync, as SyncResult and the dataset's history name them
_COUNTS = ("listed", "fetched", "updated", "deleted", "timelines")


def _last_sync(history: Any) -> dict[str, Any] | None:
    """The versions the last sync that changed something committed, summed up: when it
    started and ended, its filters, its counts (None: no version yet)."""
    # the task groups' own commits (one request each) are not a sync of the work orders
    history = history[[f != {"task_groups": True} for f in history["filters"]]]
    if not len(history):
        return None
    done = [i for i, complete in enumerate(history["complete"][:-1]) if bool(complete)]
    rows = history.iloc[(done[-1] + 1) if done else 0 :]
    last = rows.iloc[-1]
    return {
        "versions": [int(rows["version"].iloc[0]), int(last["version"])],
        "started": rows["time"].iloc[0].isoformat(timespec="seconds"),
        "finished": last["time"].isoformat(timespec="seconds"),
        "filters": last["filters"],
        "with_timelines": bool(last.get("with_timelines", False)),
        "complete": bool(last["complete"]),
        **{name: int(rows[name].sum()) for name in (*_COUNTS[1:], "requests")},
        "seconds": round(float(rows["seconds"].sum()), 3),
    }


def _cmd_status(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..dataset import TABLES

    ds = _open_dataset(args)
    history = ds.history()
    tables: dict[str, int | None] = {}  # None: never synced (its rows are unknown, not none)
    for table in TABLES:
        try:
            ds.check_synced(table)
        except TableNotSyncedError:
            tables[table] = None
            continue
        data = ds.arrow_dataset(table) if len(history) else None
        tables[table] = 0 if data is None else int(data.count_rows())
    pins = _records(ds.pins())
    status = {
        "dataset": ds.path,
        "site": ds.site,
        "version": ds.version,
        "versions": _records(history),
        "last_sync": _last_sync(history),
        "tables": tables,
        "pins": pins,
    }
    if args.json:
        _print_json(status)
        return 0
    print(f"Dataset {ds.path} (site {ds.site})")
    if not len(history):
        print("No version yet: nothing was synced.")
        return 0
    print(f"Version {ds.version}, {len(history)} versions in its history.")
    last = status["last_sync"]
    if last is not None:
        filters = ", ".join(f"{k}={v}" for k, v in last["filters"].items()) or "none"
        print(
            f"Last sync: {last['finished']} (versions {last['versions'][0]}-"
            f"{last['versions'][1]}{'' if last['complete'] else ', interrupted'}); filters: "
            f"{filters}{'; with timelines' if last['with_timelines'] else ''}\n"
            f"  fetched {last['fetched']}, updated {last['updated']}, deleted "
            f"{last['deleted']}, timelines {last['timelines']}; {last['requests']} requests in "
            f"{last['seconds']:.1f} s"
        )
    rows = (f"{t} {'not synced' if n is None else f'{n:,}'}" for t, n in tables.items())
    print("Rows: " + ", ".join(rows))
    if pins:
        print("Pinned: " + ", ".join(f"{p.get('version')} ({p.get('note', '')})" for p in pins))
    shown = history[["version", "time", "fetched", "updated", "deleted", "timelines", "complete"]]
    with pd.option_context("display.width", 160, "display.max_rows", 40):
        print(f"Versions (the last {min(20, len(shown))}):")
        print(shown.tail(20).to_string(index=False))
    return 0


def _cmd_vacuum(args: argparse.Namespace) -> int:
    ds = _open_dataset(args)
    done = _vacuum(
        ds, keep_versions=args.keep_versions, older_than=args.older_than, dry_run=args.dry_run
    )
    if args.json:
        _print_json(done)
        return 0
    rows = done["files_removed"]
    what = "would be removed (dry run: nothing was)" if args.dry_run else "removed"
    gone = ", ".join(str(v) for v in done["unreadable_versions"]) or "none"
    print(
        f"{ds.path}: {len(rows)} files ({done['bytes']:,} bytes) {what}; versions no longer "
        f"readable: {gone}. The latest and the pinned versions are kept."
    )
    for row in rows[:50]:
        print(f"  {row['table']}/{row['file']} ({row['bytes']:,} bytes)")
    if len(rows) > 50:
        print(f"  ... and {len(rows) - 50} more")
    return 0


def check_dataset_args(args: argparse.Namespace) -> None:
    """The checks of ``sync``, ``status`` and ``vacuum`` across arguments and the environment
    (UsageError, ConfigurationError) before any work; returns None."""
    if args.command == "sync":
        if args.json and args.quiet:
            raise UsageError("give --json (a summary) or --quiet (nothing), not both.")
        require_site(advice=" A sync reads that site only (never a simulator).")


#: the commands of this module, by name
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": _cmd_sync,
    "status": _cmd_status,
    "vacuum": _cmd_vacuum,
}
