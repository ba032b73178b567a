"""The ``dfs-analytics`` command: ``demo``, ``simulate``, ``export``, ``report``, ``correct``,
and for a team's shared dataset ``sync`` (a scheduled job's), ``status`` and ``vacuum``.

Every argument is checked before anything is loaded or served. A failure prints one line,
``dfs-analytics: error: ...``, on stderr and exits non-zero (2: bad arguments or settings,
1: the work failed, 75: another sync holds the dataset, 130: interrupted); ``--debug`` prints
the traceback as well.

The command only parses, checks and prints: where the data comes from is
:func:`dfs_analytics.connect` (a site from the ``DFS_*`` environment, or the local simulator
with ``--simulator`` / ``DFS_SIMULATOR=1``), what the environment means is
:mod:`dfs_analytics.config`, and the frames come from the loaders. It never reads the
environment or builds a client by itself, and never prints the API key.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import check_environment, require_site, simulator_requested
from ..errors import ConfigurationError, DFSError
from ..simulator.generator import DEFAULT_WORK_ORDERS
from ..simulator.seed import DEFAULT_ERROR_SPREAD, DEFAULT_SELECTION_STRENGTH, MAX_ERROR_SPREAD
from . import team
from .options import (
    FIRST_DATE,
    LAST_DATE,
    MAX_WORK_ORDERS,
    PROG,
    Parser,
    UsageError,
    argument_type,
    bytes_per_second,
    command,
    count,
    date,
    date_filters,
    debug_option,
    describe,
    filters,
    integer,
    level,
    non_negative,
    number,
    parse_date,
    port,
    positive,
    rate,
    seconds,
    spread,
)
from .team import EX_TEMPFAIL, RETENTION, SyncBusyError

__all__ = [
    "COMMANDS",
    "EX_TEMPFAIL",
    "FIRST_DATE",
    "LAST_DATE",
    "MAX_WORK_ORDERS",
    "PROG",
    "RETENTION",
    "SyncBusyError",
    "UsageError",
    "argument_type",
    "build_parser",
    "check_args",
    "count",
    "date",
    "describe",
    "integer",
    "level",
    "main",
    "non_negative",
    "number",
    "port",
    "positive",
    "rate",
    "seconds",
    "spread",
]

EXPORTS = ("work-orders", "tasks", "timeline", "task-groups")
EXPORT_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
REPORT_SUFFIXES = (".html", ".htm")


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "simulate",
        "serve a local simulator of the Field Services API",
        (
            "Serve a local simulator of the Deepomatic Field Services API v0.2 with seeded, "
            "realistic data. The API is at http://HOST:PORT/v0.2/ (send 'Authorization: Token "
            "KEY'); the simulator's own view (ground truth, request counts, runtime settings) is "
            "under http://HOST:PORT/_sim/ and needs the same header (only /_sim/docs and "
            "/_sim/openapi.json are open). --no-validators and --next-scheme http make it "
            "answer like a plain Django REST Framework server behind a TLS-terminating proxy. "
            "Stop with Ctrl-C."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port, default=8765, help="port to listen on (0: any free port)")
    _generated_data_options(p, count)
    p.add_argument("--app", default=None, help="app definition to serve (data/apps/*.json)")
    p.add_argument("--api-key", default="demo-key", help="the API key clients must send")
    p.add_argument("--latency", type=seconds, default=0.0, help="seconds added to every request")
    p.add_argument(
        "--jitter", type=seconds, default=0.0, help="plus a random 0..JITTER seconds per request"
    )
    p.add_argument(
        "--fault-rate",
        type=rate,
        default=0.0,
        help="share (0 to 1) of API requests that fail: a 500/502/503/504 before any work, "
        "or a connection dropped before or after the work is done",
    )
    p.add_argument(
        "--slow-body-rate",
        type=rate,
        default=0.0,
        help="share (0 to 1) of API answers that send their headers at once, then their body "
        "at --slow-body-bps bytes per second (a server or proxy that drips)",
    )
    p.add_argument(
        "--slow-body-bps",
        type=bytes_per_second,
        default=1024.0,
        help="bytes per second of the --slow-body-rate answers' bodies",
    )
    p.add_argument(
        "--throttle-rate",
        type=rate,
        default=0.0,
        help="share (0 to 1) of API requests answered 429 with Retry-After",
    )
    p.add_argument(
        "--throttle-burst-len",
        type=positive,
        default=1,
        help="the --throttle-rate 429s come in runs of this many consecutive requests, as a "
        "gateway's do (1: each request on its own)",
    )
    p.add_argument(
        "--throttle-rps",
        type=seconds,
        default=0.0,
        help="answer 429 beyond this many requests per second (0: no limit)",
    )
    p.add_argument(
        "--throttle-burst",
        type=positive,
        default=None,
        help="requests allowed at once by --throttle-rps: the tokens its bucket holds "
        "(default: one second's worth)",
    )
    p.add_argument(
        "--retry-after", type=non_negative, default=1, help="Retry-After seconds sent with 429"
    )
    p.add_argument(
        "--fault-seed",
        type=integer,
        default=None,
        help="seed of the latency, fault and throttling draws: the same seed, the same "
        "requests hit (default: unseeded)",
    )
    p.add_argument(
        "--auth-status",
        type=integer,
        choices=(401, 403),
        default=401,
        help="status of an authentication failure (real servers may send 403)",
    )
    p.add_argument(
        "--validators",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send an ETag with GET answers and 304 to a matching If-None-Match; "
        "--no-validators: no ETag or Last-Modified and never 304, as plain Django REST Framework",
    )
    p.add_argument(
        "--next-scheme",
        choices=("http", "https"),
        default=None,
        help="scheme of the absolute next/previous links (default: the request's own); 'http' "
        "is what Django REST Framework writes behind a TLS-terminating proxy",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve over https with a throw-away self-signed certificate (needs openssl)",
    )
    p.add_argument("--certfile", default=None, help="serve over https with this certificate")
    p.add_argument("--keyfile", default=None, help="the private key of --certfile")
    p.add_argument(
        "--drift",
        type=seconds,
        default=1.0,
        help="multiply the AI error rates by this after the app-version upgrade",
    )
    p.add_argument(
        "--review-rate",
        type=rate,
        default=None,
        help="share (0 to 1) of work orders reviewed in the back office",
    )
    p.add_argument(
        "--selective-review",
        type=seconds,
        nargs="?",
        const=DEFAULT_SELECTION_STRENGTH,
        default=0.0,
        metavar="STRENGTH",
        help="let the AI's verdicts steer who gets reviewed: work orders it finds largely not "
        "conform are reviewed more often (the log-odds of a review rise by STRENGTH, "
        f"{DEFAULT_SELECTION_STRENGTH:g} if omitted, from none to all of its tasks found "
        "not conform; the review rate stays on average); 0 (default): reviews are random",
    )
    p.add_argument(
        "--clustered-errors",
        type=spread,
        nargs="?",
        const=DEFAULT_ERROR_SPREAD,
        default=0.0,
        metavar="SPREAD",
        help="each work order's photos are good or poor, so the AI's errors on one work order "
        "come together (SPREAD: the standard deviation of the work orders' error factor of "
        f"mean 1, {DEFAULT_ERROR_SPREAD:g} if omitted, at most {MAX_ERROR_SPREAD:g}); 0 (default): "
        "errors independent",
    )
    p.add_argument("--start", type=date, default=None, help="first creation date (ISO-8601)")
    p.add_argument("--end", type=date, default=None, help="last creation date (ISO-8601)")


def _generated_data_options(
    p: argparse.ArgumentParser, work_orders: Callable[[str], int], prefix: str = ""
) -> None:
    """``--work-orders`` (checked by ``work_orders``) and ``--seed``: what a simulator
    generates."""
    p.add_argument(
        "--work-orders",
        type=work_orders,
        default=DEFAULT_WORK_ORDERS,
        help=f"{prefix}number of generated work orders",
    )
    p.add_argument(
        "--seed", type=integer, default=0, help=f"{prefix}random seed: same seed, same data"
    )


def _simulator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--simulator",
        action="store_true",
        default=None,
        help="use a local simulator's made-up data instead of the site in DFS_BASE_URL or "
        "DFS_SITE_ID (also DFS_SIMULATOR=1); the output says '(simulator data)'",
    )
    _generated_data_options(p, positive, "(simulator) ")
    p.add_argument(
        "--drift",
        type=seconds,
        default=1.0,
        help="(simulator) AI error multiplier after the app-version upgrade",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``dfs-analytics`` argument parser, every subcommand in it; errors raise UsageError."""
    parser = Parser(
        prog=PROG,
        description="Deepomatic Field Services data in pandas: load, audit, correct.",
    )
    debug_option(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _simulate_parser(sub)
    r = command(
        sub,
        "report",
        "write a self-contained HTML audit report of the AI's verdicts",
        "Load the tasks (from DFS_BASE_URL or DFS_SITE_ID + DFS_API_KEY, or with "
        "--simulator from a local simulator's made-up data) and write an HTML audit report "
        "with inlined plots.",
    )
    r.add_argument("--out", default="audit.html", help="the HTML file to write (.html)")
    r.add_argument(
        "--plan",
        default=None,
        help="a review plan (the CSV dfs.audit.save_plan wrote, its .json beside it): the "
        "report adds its design and PPI site-wide estimates; load with the filters it was "
        "drawn with",
    )
    date_filters(r)
    r.add_argument(
        "--level", type=level, default=0.95, help="confidence level of intervals (0 to 1)"
    )
    _simulator_options(r)
    e = command(
        sub,
        "export",
        "write work orders, tasks, timelines or task groups to CSV, JSON or Parquet",
        "Load a frame (from DFS_BASE_URL or DFS_SITE_ID + DFS_API_KEY, or with "
        "--simulator from a local simulator's made-up data) and write it to a file; the format "
        "follows --out's extension.",
    )
    e.add_argument("what", choices=EXPORTS, help="which frame")
    e.add_argument("--out", required=True, help="file to write (.csv, .json, .jsonl, .parquet)")
    date_filters(e)
    _simulator_options(e)
    c = command(
        sub,
        "correct",
        "validate, preview and apply a correction campaign from a CSV plan",
        "A CSV plan has work_order_id, task_name (or task_id) and corrected_value. "
        "Without --apply this is a dry run that prints the preview. The site comes from "
        "DFS_BASE_URL or DFS_SITE_ID (+ DFS_REGION) and DFS_API_KEY. Re-running with the same "
        "journal resumes: nothing applied is sent twice.",
    )
    c.add_argument("plan", help="the CSV plan")
    c.add_argument("--journal", default="campaign.jsonl", help="the JSONL journal (keep it)")
    c.add_argument("--apply", action="store_true", help="apply the plan (default: dry run)")
    c.add_argument("--workers", type=positive, default=8, help="concurrent requests")
    c.add_argument(
        "--wait",
        action="store_true",
        help="wait for another campaign applying with the same journal to finish (default: "
        "refuse at once, sending nothing)",
    )
    team.dataset_parsers(sub)
    d = command(sub, "demo", "start the simulator and show the toolkit at work on its made-up data")
    _generated_data_options(d, positive)
    d.add_argument("--out", default="demo-output", help="folder for the demo's files")
    return parser


# --------------------------------------------------------------------------------------------
# Checks that need more than one argument, or the file system: all before any work
# --------------------------------------------------------------------------------------------


def _check_output_file(option: str, out: Path, suffixes: Sequence[str]) -> None:
    if out.suffix.lower() not in suffixes:
        raise UsageError(
            f"{option} must end with {', '.join(suffixes[:-1])} or {suffixes[-1]}, "
            f"got {out.name!r}."
        )
    if out.is_dir():
        raise UsageError(f"{option} {str(out)!r} is a folder; give a file name.")
    _check_writable_folder(option, out.parent)


def _check_writable_folder(option: str, folder: Path) -> None:
    """The folder exists and is writable, or can be created (its nearest ancestor can)."""
    probe = folder if str(folder) else Path(".")
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{option}: {str(probe)!r} is a file, not a folder.")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write in {str(probe)!r} (permission denied).")


def _check_dates(after: str | None, before: str | None, names: tuple[str, str]) -> None:
    if after and before and parse_date(after) >= parse_date(before):
        raise UsageError(f"{names[0]} ({after}) must be earlier than {names[1]} ({before}).")


def check_args(args: argparse.Namespace) -> None:
    """Checks across arguments, the environment and the file system: UsageError (or
    ConfigurationError for an unknown ``DFS_*`` variable) before any work; returns None."""
    if args.command in ("report", "export", "correct", "sync", "status", "vacuum"):
        check_environment()
        simulator_requested()  # a DFS_SIMULATOR value that means nothing fails here
    if args.command in ("report", "export", "sync"):
        _check_dates(
            args.created_after, args.created_before, ("--created-after", "--created-before")
        )
    if args.command == "report":
        _check_output_file("--out", Path(args.out), REPORT_SUFFIXES)
        if args.plan is not None:
            plan = Path(args.plan)
            for needed in (plan, plan.with_suffix(".json")):
                if not needed.is_file():
                    raise UsageError(
                        f"--plan: {str(needed)!r} is not a file; give the CSV that "
                        "dfs.audit.save_plan wrote (its .json beside it)."
                    )
    elif args.command == "export":
        _check_output_file("--out", Path(args.out), EXPORT_SUFFIXES)
    elif args.command in team.COMMANDS:
        team.check_dataset_args(args)
    elif args.command == "demo":
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {str(out)!r} is a file; the demo writes into a folder.")
        _check_writable_folder("--out", out)
    elif args.command == "correct":
        plan = Path(args.plan)
        if not plan.exists():
            raise UsageError(f"the plan file {str(plan)!r} does not exist.")
        if plan.is_dir():
            raise UsageError(f"the plan {str(plan)!r} is a folder; give a CSV file.")
        journal = Path(args.journal)
        if journal.is_dir():
            raise UsageError(f"--journal {str(journal)!r} is a folder; give a file name.")
        _check_writable_folder("--journal", journal.parent)
        require_site(advice=" Corrections go to that site only (never to a simulator).")
    elif args.command == "simulate":
        _check_dates(args.start, args.end, ("--start", "--end"))
        if args.app is not None:
            from ..simulator.apps import available_apps

            apps = available_apps()
            if args.app not in apps:
                raise UsageError(f"--app {args.app!r} is unknown; available: {', '.join(apps)}.")
        if args.keyfile and not args.certfile:
            raise UsageError("--keyfile needs --certfile.")
        if args.tls and args.certfile:
            raise UsageError("give --tls (a throw-away certificate) or --certfile, not both.")
        for option, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
            if path and not Path(path).is_file():
                raise UsageError(f"{option} {path!r} is not a file.")
        if args.certfile:
            _check_certificate(args.certfile, args.keyfile)
        if not args.api_key.strip() or any(ch.isspace() for ch in args.api_key):
            raise UsageError("--api-key must be a non-empty key without spaces.")
        if not args.host.strip() or any(ch.isspace() for ch in args.host):
            raise UsageError(
                f"--host must be an address to listen on, such as 127.0.0.1 (this machine "
                f"only) or 0.0.0.0 (every interface), got {args.host!r}."
            )


def _check_certificate(certfile: str, keyfile: str | None) -> None:
    """The server's certificate and key load as TLS will load them, or UsageError."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # a password that cannot open an encrypted key: never a prompt on the terminal
        context.load_cert_chain(certfile, keyfile, password=b"")
    except (ssl.SSLError, OSError) as exc:
        what = "--certfile and --keyfile" if keyfile else "--certfile"
        raise UsageError(
            f"{what} must hold a PEM certificate and its unencrypted private key "
            f"({getattr(exc, 'reason', None) or exc.__class__.__name__})."
        ) from None


# --------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        from ..simulator import Simulator
        from ..simulator.server import serve
    except ImportError as exc:  # the 'sim' extra is missing
        raise ConfigurationError(
            f"the simulator needs FastAPI and uvicorn: pip install 'dfs-analytics[sim]' ({exc})"
        ) from exc
    sim = Simulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        work_orders=args.work_orders,
        seed=args.seed,
        app=args.app,
        latency=args.latency,
        jitter=args.jitter,
        fault_rate=args.fault_rate,
        slow_body_rate=args.slow_body_rate,
        slow_body_bps=args.slow_body_bps,
        throttle_rate=args.throttle_rate,
        throttle_burst_len=args.throttle_burst_len,
        throttle_rps=args.throttle_rps,
        throttle_burst=args.throttle_burst,
        retry_after=args.retry_after,
        fault_seed=args.fault_seed,
        auth_status=args.auth_status,
        validators=args.validators,
        next_scheme=args.next_scheme,
        tls=args.tls,
        certfile=args.certfile,
        keyfile=args.keyfile,
        drift=args.drift,
        review_rate=args.review_rate,
        selective_review=args.selective_review,
        clustered_errors=args.clustered_errors,
        start=args.start,
        end=args.end,
    )
    print(f"Generating {args.work_orders} work orders (seed {args.seed}) ...", flush=True)
    try:
        sim.start()
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from exc
    auth = f"curl -H 'Authorization: Token {args.api_key}'"
    tls = f"  trust    : {sim.ca_file}   (curl --cacert, REQUESTS_CA_BUNDLE)\n" if sim.tls else ""
    print(
        f"Field Services API simulator serving {sim.seed_settings.app}\n"
        f"  base URL : {sim.base_url}\n"
        f"  try      : {auth} '{sim.base_url}work-orders/?page_size=2'\n"
        f"  truth    : {auth} '{sim.url}/_sim/truth'   "
        "(also /_sim/requests, /_sim/config; /_sim/docs needs no key)\n"
        f"{tls}"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        serve(sim)
    finally:
        print("Simulator stopped.")
    return 0


@contextlib.contextmanager
def _data_source(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """The client :func:`~dfs_analytics.connect.connect` gives for these arguments (a site
    from the DFS_* environment, or with ``--simulator`` / ``DFS_SIMULATOR=1`` a started local
    simulator) and a label of where the data comes from; the simulator stops afterwards."""
    from ..connect import connect, is_simulator, stop

    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the command's own output
        client = connect(
            simulator=args.simulator,
            work_orders=args.work_orders,
            seed=args.seed,
            simulator_options={"drift": args.drift},
        )
    try:
        if is_simulator(client):
            yield client, "the local simulator (made-up data)"
        else:
            yield client, client.settings.display_url  # any password masked
    finally:
        stop(client)


def _cmd_export(args: argparse.Namespace) -> int:
    from .. import loaders
    from ..connect import SIMULATOR_NOTE, is_simulator

    out = Path(args.out)
    with _data_source(args) as (client, _label):
        simulated = is_simulator(client)
        if args.what == "task-groups":
            frame = loaders.load_task_groups(client)
        else:
            load = {
                "work-orders": loaders.load_work_orders,
                "tasks": loaders.load_tasks,
                "timeline": loaders.load_timeline,
            }[args.what]
            frame = load(client, progress=None, **filters(args))
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".parquet":
        try:
            frame.to_parquet(out, index=False)
        except ImportError as exc:
            raise ConfigurationError(f"Parquet needs pyarrow (pip install pyarrow): {exc}") from exc
    else:
        frame.to_json(
            out,
            orient="records",
            lines=suffix == ".jsonl",
            date_format="iso",
            date_unit="us",
            default_handler=str,
        )
    note = f" {SIMULATOR_NOTE}" if simulated else ""
    print(f"Wrote {len(frame)} {args.what} rows{note} to {out}.")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..audit import load_plan
    from ..connect import SIMULATOR_NOTE, is_simulator
    from ..loaders import load_tasks
    from ..report import audit_report

    plan = load_plan(args.plan) if args.plan is not None else None
    with _data_source(args) as (client, label):
        simulated = is_simulator(client)
        tasks = load_tasks(client, progress=None, **filters(args))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        path = audit_report(
            tasks,
            args.out,
            source=label,
            level=args.level,
            simulator=simulated,
            plan=plan,
            storage_options=client.settings.dataset_options(),  # to pin the version read
        )
    note = f" {SIMULATOR_NOTE}" if simulated else ""
    print(
        f"Wrote {path}{note} ({path.stat().st_size // 1024} KB): open it in a browser; it works "
        "offline."
    )
    return 0


def _cmd_correct(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..campaign import Campaign
    from ..connect import connect

    campaign = Campaign(connect(simulator=False), args.plan, journal=args.journal)
    problems = campaign.validate()
    with pd.option_context(
        "display.max_rows", 200, "display.width", 160, "display.max_colwidth", 80
    ):
        if len(problems):
            print(f"The plan has {len(problems)} problem(s); nothing was sent:")
            print(problems.to_string(index=False))
            return 1
        preview = campaign.preview()
        if not args.apply:
            print(preview.to_string(index=False))
            counts = preview["action"].value_counts().to_dict()
            print(
                f"\nDry run: {counts}. Nothing was sent; add --apply to apply "
                f"(journal: {args.journal})."
            )
            return 0
        results = campaign.apply(max_workers=args.workers, wait=args.wait)
        print(results.to_string(index=False))
        print(f"\n{results['status'].value_counts().to_dict()} (journal: {args.journal})")
        mismatches = campaign.verify()
        if len(mismatches):
            print(f"{len(mismatches)} row(s) differ from the plan on the server:")
            print(mismatches.to_string(index=False))
            return 1
    return 0 if not (results["status"] == "failed").any() else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(work_orders=args.work_orders, seed=args.seed, out=args.out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "simulate": _cmd_simulate,
    "demo": _cmd_demo,
    "report": _cmd_report,
    "correct": _cmd_correct,
    "export": _cmd_export,
    **team.COMMANDS,
}


# --------------------------------------------------------------------------------------------
# Errors: one line, not a traceback
# --------------------------------------------------------------------------------------------


def _exit_status(exc: BaseException) -> int:
    if isinstance(exc, SyncBusyError):
        return EX_TEMPFAIL
    return 2 if isinstance(exc, ConfigurationError) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dfs-analytics`` command; returns the exit status.

    Errors print one line on stderr (add ``--debug`` for the traceback): 2 for bad arguments
    or settings (nothing was loaded or sent), 1 when the work failed, 75 (``EX_TEMPFAIL``)
    when another sync holds the dataset, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        check_args(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted.", file=sys.stderr)
        return 130
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        message = str(exc)
        if not message.startswith(PROG):
            message = f"{PROG}: error: {message}"
        print(" ".join(message.split()), file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            traceback.print_exc()
            hint = ""
        else:  # the toolkit's own errors and OS errors say all there is to say
            expected = isinstance(exc, (DFSError, OSError, ImportError))
            hint = "" if expected else " (--debug shows the traceback)"
        print(f"{PROG}: error: {describe(exc)}{hint}", file=sys.stderr)
        return _exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
