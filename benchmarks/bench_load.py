"""Loading speed: the naive loop a user would write vs dfs-analytics, side by side, in one run.

Workload: every work order's tasks and states, and every work order's timeline, from the
simulator with 500 work orders and 30 ms latency per request. Prints one JSON object.

- ``naive_s``: sequential requests following ``next`` (default page size), one timeline request
  per work order, ``pd.json_normalize`` for both frames.
- ``cold_s``: ``load_tasks`` + ``load_timeline`` with an empty cache (16 workers).
- ``refresh_unchanged_s``: the same two calls again, nothing changed on the server.
- ``refresh_1pct_changed_s``: again after another client changed 1% of the work orders.
- ``offline_s``: a new client on the same cache with ``offline=True``.
- ``normalize``: 100,000+ task rows through ``normalize.tasks_frame`` vs ``pd.json_normalize``.

Targets: cold >= 12x faster than naive, unchanged refresh >= 25x faster than cold, 1% changed
<= 5% of cold, normalisation >= 8x faster than ``json_normalize``.
Usage: ``python benchmarks/bench_load.py [--work-orders 500] [--latency 0.03]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from typing import Any

import pandas as pd
import requests

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.simulator import SeedSettings, SimulatorProcess, generate


def naive_load(base_url: str, api_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a user writes first: a loop of requests and ``pd.json_normalize``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {api_key}"
    records: list[dict[str, Any]] = []
    url: str | None = base_url + "work-orders/"
    while url:
        page = session.get(url, timeout=60).json()
        records += page["results"]
        url = page["next"]
    tasks = pd.json_normalize(
        records,
        record_path="tasks",
        meta=[
            "id",
            "name",
            "create_date",
            "update_date",
            "review_date",
            "field_engineer_email",
            "app_version_id",
        ],
        meta_prefix="work_order.",
    )
    events: list[dict[str, Any]] = []
    for wo in records:
        url = base_url + f"work-orders/{wo['id']}/timeline/"
        while url:
            page = session.get(url, timeout=60).json()
            events += [dict(e, work_order_id=wo["id"]) for e in page["results"]]
            url = page["next"]
    timeline = pd.json_normalize(
        events,
        record_path="states",
        meta=["work_order_id", "id", "date", "type", "user", "analysis_id", "task_group_name"],
        meta_prefix="event.",
    )
    return tasks, timeline


def ours(client: dfs.Client) -> tuple[pd.DataFrame, pd.DataFrame]:
    return dfs.load_tasks(client), dfs.load_timeline(client)


def clock(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description="loading speed, naive vs dfs-analytics")
    parser.add_argument("--work-orders", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the fast measurements")
    args = parser.parse_args()

    out: dict[str, Any] = {
        "benchmark": "load",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "work_orders": args.work_orders,
        "latency_s": args.latency,
        "workers": args.workers,
    }
    # the server runs in its own process, as a real one would not share our interpreter
    with (
        SimulatorProcess(work_orders=args.work_orders, seed=0, latency=args.latency) as sim,
        tempfile.TemporaryDirectory() as cache,
    ):
        naive_s, (naive_tasks, naive_tl) = clock(naive_load, sim.base_url, sim.api_key)

        def client(**kw: Any) -> dfs.Client:
            return dfs.Client(
                sim.base_url,
                api_key=sim.api_key,
                cache=cache,
                max_workers=args.workers,
                progress=False,
                **kw,
            )

        c = client()
        cold_s, (tasks, _) = clock(ours, c)
        unchanged = [clock(ours, c)[0] for _ in range(args.repeat)]

        other = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        changed_times = []
        for r in range(args.repeat):
            ids = list(tasks["work_order_id"].unique()[r::100])[: max(1, args.work_orders // 100)]
            for wo_id in ids:
                other.patch_metadata(wo_id, {"bench_round": r})
            sim.reset_request_counts()
            changed_times.append(clock(ours, c)[0])
        changed_requests = sim.request_counts()

        offline = client(offline=True)
        offline_times = [clock(ours, offline)[0] for _ in range(args.repeat)]
        final_tasks, final_tl = ours(c)

        out["rows"] = {
            "tasks": len(final_tasks),
            "timeline": len(final_tl),
            "naive_tasks": len(naive_tasks),
            "naive_timeline_states": len(naive_tl),
        }
        out["naive_s"] = round(naive_s, 3)
        out["cold_s"] = round(cold_s, 3)
        out["refresh_unchanged_s"] = round(statistics.median(unchanged), 4)
        out["refresh_1pct_changed_s"] = round(statistics.median(changed_times), 4)
        out["refresh_1pct_changed_requests"] = changed_requests
        out["offline_s"] = round(statistics.median(offline_times), 4)
        out["ratios"] = {
            "cold_vs_naive_x": round(naive_s / cold_s, 1),
            "cold_vs_unchanged_refresh_x": round(cold_s / statistics.median(unchanged), 1),
            "changed_1pct_share_of_cold_pct": round(
                100 * statistics.median(changed_times) / cold_s, 2
            ),
            "cold_vs_offline_x": round(cold_s / statistics.median(offline_times), 1),
        }

    # normalisation alone, on 100,000+ task rows
    store = generate(SeedSettings.defaults(work_orders=9000, seed=1))
    records = [json.loads(w.list_json()) for w in store.work_orders.values()]
    ours_s, frame = clock(normalize.tasks_frame, records)
    jn_s, _ = clock(
        lambda: pd.json_normalize(
            records,
            record_path="tasks",
            meta=[
                "id",
                "name",
                "create_date",
                "update_date",
                "review_date",
                "field_engineer_email",
                "app_version_id",
            ],
            meta_prefix="work_order.",
        )
    )
    out["normalize"] = {
        "task_rows": len(frame),
        "ours_s": round(ours_s, 3),
        "json_normalize_s": round(jn_s, 3),
        "speedup_x": round(jn_s / ours_s, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
