"""The ``dfs-analytics`` command: ``simulate`` (serve the local API simulator) and ``demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _simulate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="serve a local simulator of the Field Services API",
        description=(
            "Serve a local simulator of the Deepomatic Field Services API v0.2 with seeded, "
            "realistic data. The API is at http://HOST:PORT/v0.2/ (send 'Authorization: Token "
            "KEY'); the simulator's own view (ground truth, request counts, runtime settings, "
            "OpenAPI schema) is under http://HOST:PORT/_sim/. Stop with Ctrl-C."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    p.add_argument("--work-orders", type=int, default=2000, help="number of generated work orders")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data")
    p.add_argument("--app", default=None, help="app definition to serve (data/apps/*.json)")
    p.add_argument("--api-key", default="demo-key", help="the API key clients must send")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    p.add_argument(
        "--jitter", type=float, default=0.0, help="plus a random 0..JITTER seconds per request"
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of API requests that fail: a 500/502/503/504 before any work, "
        "or a connection dropped before or after the work is done",
    )
    p.add_argument(
        "--throttle-rate",
        type=float,
        default=0.0,
        help="share of API requests answered 429 with Retry-After",
    )
    p.add_argument(
        "--throttle-rps",
        type=float,
        default=0.0,
        help="answer 429 beyond this many requests per second (0: no limit)",
    )
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429")
    p.add_argument(
        "--auth-status",
        type=int,
        choices=(401, 403),
        default=401,
        help="status of an authentication failure (real servers may send 403)",
    )
    p.add_argument(
        "--drift",
        type=float,
        default=1.0,
        help="multiply the AI error rates by this after the app-version upgrade",
    )
    p.add_argument(
        "--review-rate",
        type=float,
        default=None,
        help="share of work orders reviewed in the back office",
    )
    p.add_argument("--start", default=None, help="first creation date (ISO-8601)")
    p.add_argument("--end", default=None, help="last creation date (ISO-8601)")


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        from .simulator import Simulator
        from .simulator.server import serve
    except ImportError as exc:  # the 'sim' extra is missing
        print(
            f"The simulator needs FastAPI and uvicorn: pip install 'dfs-analytics[sim]' ({exc})",
            file=sys.stderr,
        )
        return 2
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
        throttle_rate=args.throttle_rate,
        throttle_rps=args.throttle_rps,
        retry_after=args.retry_after,
        auth_status=args.auth_status,
        drift=args.drift,
        review_rate=args.review_rate,
        start=args.start,
        end=args.end,
    )
    print(f"Generating {args.work_orders} work orders (seed {args.seed}) ...", flush=True)
    sim.start()
    print(
        f"Field Services API simulator serving {sim.seed_settings.app}\n"
        f"  base URL : {sim.base_url}\n"
        f"  try      : curl -H 'Authorization: Token {args.api_key}' "
        f"'{sim.base_url}work-orders/?page_size=2'\n"
        f"  truth    : {sim.url}/_sim/truth   (also /_sim/requests, /_sim/config, /_sim/docs)\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        serve(sim)
    finally:
        print("Simulator stopped.")
    return 0


def _data_source(args: argparse.Namespace):
    """A client from the DFS_* environment, or a started local simulator and its client."""
    import contextlib
    import os

    from .client import Client

    @contextlib.contextmanager
    def source():
        if os.environ.get("DFS_BASE_URL") or os.environ.get("DFS_SITE_ID"):
            client = Client.from_env()
            yield client, client.base_url
            return
        from .simulator import Simulator

        print(
            f"DFS_BASE_URL / DFS_SITE_ID not set: using the local simulator "
            f"({args.work_orders} work orders, seed {args.seed}).",
            file=sys.stderr,
        )
        with Simulator(work_orders=args.work_orders, seed=args.seed, drift=args.drift) as sim:
            yield Client(sim.base_url, api_key=sim.api_key, cache=None), "the local simulator"

    return source()


def _filters(args: argparse.Namespace) -> dict:
    filters = {"created_after": args.created_after, "created_before": args.created_before}
    return {k: v for k, v in filters.items() if v}


EXPORTS = ("work-orders", "tasks", "timeline", "task-groups")


def _cmd_export(args: argparse.Namespace) -> int:
    from . import loaders

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".json", ".jsonl", ".parquet"):
        print(
            f"--out must end with .csv, .json, .jsonl or .parquet, got {out.name!r}.",
            file=sys.stderr,
        )
        return 2
    with _data_source(args) as (client, _label):
        filters = _filters(args)
        if args.what == "work-orders":
            frame = loaders.load_work_orders(client, **filters)
        elif args.what == "tasks":
            frame = loaders.load_tasks(client, **filters)
        elif args.what == "timeline":
            frame = loaders.load_timeline(client, **filters)
        else:
            frame = loaders.load_task_groups(client)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".parquet":
        try:
            frame.to_parquet(out, index=False)
        except ImportError as exc:
            print(f"Parquet needs pyarrow (pip install pyarrow): {exc}", file=sys.stderr)
            return 2
    else:
        frame.to_json(
            out,
            orient="records",
            lines=suffix == ".jsonl",
            date_format="iso",
            date_unit="us",
            default_handler=str,
        )
    print(f"Wrote {len(frame)} {args.what} rows to {out}.")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .loaders import load_tasks
    from .report import audit_report

    with _data_source(args) as (client, label):
        tasks = load_tasks(client, **_filters(args))
        path = audit_report(tasks, args.out, source=label, level=args.level)
    print(
        f"Wrote {path} ({path.stat().st_size // 1024} KB): open it in a browser; it works offline."
    )
    return 0


def _cmd_correct(args: argparse.Namespace) -> int:
    import os

    import pandas as pd

    from .campaign import Campaign
    from .client import Client

    if not (os.environ.get("DFS_BASE_URL") or os.environ.get("DFS_SITE_ID")):
        print(
            "Set DFS_BASE_URL (or DFS_SITE_ID and DFS_REGION) and DFS_API_KEY to say which "
            "site to correct.",
            file=sys.stderr,
        )
        return 2
    campaign = Campaign(Client.from_env(), args.plan, journal=args.journal)
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
        results = campaign.apply(max_workers=args.workers)
        print(results.to_string(index=False))
        print(f"\n{results['status'].value_counts().to_dict()} (journal: {args.journal})")
        mismatches = campaign.verify()
        if len(mismatches):
            print(f"{len(mismatches)} row(s) differ from the plan on the server:")
            print(mismatches.to_string(index=False))
            return 1
    return 0 if not (results["status"] == "failed").any() else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(work_orders=args.work_orders, seed=args.seed, out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfs-analytics",
        description="Deepomatic Field Services data in pandas: load, audit, correct.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_parser(sub)
    r = sub.add_parser(
        "report",
        help="write a self-contained HTML audit report of the AI's verdicts",
        description="Load the tasks (from DFS_BASE_URL or DFS_SITE_ID + DFS_API_KEY, else from "
        "a local simulator) and write an HTML audit report with inlined plots.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument("--out", default="audit.html", help="the HTML file to write")
    r.add_argument("--created-after", help="only work orders created at or after this date")
    r.add_argument("--created-before", help="only work orders created before this date")
    r.add_argument("--level", type=float, default=0.95, help="confidence level of intervals")
    r.add_argument("--work-orders", type=int, default=2000, help="(simulator) work orders")
    r.add_argument("--seed", type=int, default=0, help="(simulator) seed")
    r.add_argument(
        "--drift",
        type=float,
        default=1.0,
        help="(simulator) AI error multiplier after the app-version upgrade",
    )
    e = sub.add_parser(
        "export",
        help="write work orders, tasks, timelines or task groups to CSV, JSON or Parquet",
        description="Load a frame (from DFS_BASE_URL or DFS_SITE_ID + DFS_API_KEY, else from a "
        "local simulator) and write it to a file; the format follows --out's extension.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("what", choices=EXPORTS, help="which frame")
    e.add_argument("--out", required=True, help="file to write (.csv, .json, .jsonl, .parquet)")
    e.add_argument("--created-after", help="only work orders created at or after this date")
    e.add_argument("--created-before", help="only work orders created before this date")
    e.add_argument("--work-orders", type=int, default=500, help="(simulator) work orders")
    e.add_argument("--seed", type=int, default=0, help="(simulator) seed")
    e.add_argument("--drift", type=float, default=1.0, help="(simulator) drift multiplier")
    c = sub.add_parser(
        "correct",
        help="validate, preview and apply a correction campaign from a CSV plan",
        description="A CSV plan has work_order_id, task_name (or task_id) and corrected_value. "
        "Without --apply this is a dry run that prints the preview. The site comes from "
        "DFS_BASE_URL or DFS_SITE_ID (+ DFS_REGION) and DFS_API_KEY. Re-running with the same "
        "journal resumes: nothing applied is sent twice.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    c.add_argument("plan", help="the CSV plan")
    c.add_argument("--journal", default="campaign.jsonl", help="the JSONL journal (keep it)")
    c.add_argument("--apply", action="store_true", help="apply the plan (default: dry run)")
    c.add_argument("--workers", type=int, default=8, help="concurrent requests")
    d = sub.add_parser("demo", help="start the simulator and show the toolkit at work")
    d.add_argument("--work-orders", type=int, default=500)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="demo-output", help="folder for the demo's files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dfs-analytics`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        return _cmd_simulate(args)
    if args.command == "demo":
        return _cmd_demo(args)
    if args.command == "report":
        return _cmd_report(args)
    if args.command == "correct":
        return _cmd_correct(args)
    if args.command == "export":
        return _cmd_export(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
