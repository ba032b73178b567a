"""Loading speed: the naive loop a user would write vs dfs-analytics, side by side, in one run.

The simulator runs in its own process with 500 work orders. The naive loop: sequential
requests following ``next`` (default page size) for the work-order list, one timeline request
per work order, ``pd.json_normalize`` for the tasks and the timeline.

``concurrency``: a cold ``load_tasks`` + ``load_timeline`` (empty cache) with the default
settings (adaptive concurrency) and with each fixed ``max_workers`` in 8, 16, 32, 64, at 30 ms
and at 150 ms of latency per request: seconds, requests, the concurrency reached (most
requests in flight, highest limit) and the client's CPU time per request (the server is in
another process). Targets: at least 12x faster than the naive loop, and at least 90% of the
speed of the best fixed concurrency.

``throttled``: the same cold load against a server allowing ``--throttle-rps`` requests per
second (a token bucket answering 429 with ``Retry-After``), default settings: the share of
429s (target at most 5%) and the time against N/R, N the requests that got through (target
at most 1.2x).

``http_cpu``: the client's CPU time per request alone (``get_timeline`` for every work
order, no dataset work).

Then, unless ``--quick``, two workloads with default settings, each with its own cache:
``load_timeline`` (one call) and ``load_tasks+load_timeline`` (two calls, each asking the
server what changed): ``cold_s``, ``refresh_unchanged_s``, ``refresh_1pct_changed_s`` (after
another client changed 1% of the work orders), ``offline_new_client_s`` and ``offline_s``;
and ``normalize``: 100,000+ task rows through ``normalize.tasks_frame`` vs
``pd.json_normalize`` (best of 3 each). Prints one JSON object.

Targets there: unchanged refresh >= 25x faster than cold, 1% changed <= 5% of cold,
normalisation >= 8x faster than ``json_normalize``. A refresh always asks the server (one
request per loader call), and a 1%-changed refresh needs two round trips in a row (what
changed, then those timelines): at 30 ms latency that floor alone is ~60 ms.
Usage: ``python benchmarks/bench_load.py [--quick] [--work-orders 500] [--latency 0.03]``.
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

# the work-order keys a user copies onto each task row
WORK_ORDER_META = [
    "id",
    "name",
    "create_date",
    "update_date",
    "review_date",
    "field_engineer_email",
    "app_version_id",
]


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
        meta=WORK_ORDER_META,
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


def measure(
    sim: Any,
    other: dfs.Client,
    cache: str,
    load: Any,
    naive_s: float,
    args: argparse.Namespace,
    round_base: int,
) -> dict[str, Any]:
    """Cold, unchanged (same client, then a new client), 1%-changed and offline timings of
    one workload."""

    def client(**kw: Any) -> dfs.Client:
        return dfs.Client(
            sim.base_url,
            api_key=sim.api_key,
            cache=cache,
            progress=False,
            **kw,
        )

    c = client()
    cold_s, frames = clock(load, c)
    unchanged = [clock(load, c)[0] for _ in range(args.repeat)]
    # a new client of the same dataset (a notebook re-creating its client), nothing changed
    new_client = [clock(load, client())[0] for _ in range(args.repeat)]
    ids = list(frames[0]["work_order_id"].unique())
    changed_times = []
    for r in range(args.repeat):
        for wo_id in ids[r::100][: max(1, args.work_orders // 100)]:
            other.patch_metadata(wo_id, {"bench_round": round_base + r})
        sim.reset_request_counts()
        changed_times.append(clock(load, c)[0])
    changed_requests = sim.request_counts()
    offline_first_s, _ = clock(load, client(offline=True))  # a new client: snapshots from disk
    offline = client(offline=True)
    load(offline)
    offline_times = [clock(load, offline)[0] for _ in range(args.repeat)]
    unchanged_s = statistics.median(unchanged)
    changed_s = statistics.median(changed_times)
    return {
        "rows": [len(f) for f in load(c)],
        "cold_s": round(cold_s, 3),
        "refresh_unchanged_s": round(unchanged_s, 4),
        "new_client_unchanged_s": round(statistics.median(new_client), 4),
        "refresh_1pct_changed_s": round(changed_s, 4),
        "refresh_1pct_changed_requests": changed_requests,
        "offline_new_client_s": round(offline_first_s, 4),
        "offline_s": round(statistics.median(offline_times), 4),
        "ratios": {
            "cold_vs_naive_x": round(naive_s / cold_s, 1),
            "cold_vs_unchanged_refresh_x": round(cold_s / unchanged_s, 1),
            "cold_vs_new_client_unchanged_x": round(cold_s / statistics.median(new_client), 1),
            "changed_1pct_share_of_cold_pct": round(100 * changed_s / cold_s, 2),
        },
    }


def cold_load(sim: Any, load: Any = None, **settings: Any) -> dict[str, Any]:
    """One cold load (empty cache, new client): seconds, requests, 429s, concurrency reached
    and the client's CPU time per request."""
    with tempfile.TemporaryDirectory() as cache:
        c = dfs.Client(sim.base_url, api_key=sim.api_key, cache=cache, progress=False, **settings)
        cpu = time.process_time()
        seconds, _ = clock(load or ours, c)
        cpu = time.process_time() - cpu
        lim = c.limiter
        return {
            "seconds": round(seconds, 3),
            "requests": c.requests_sent,
            "throttled_429": lim.throttled,
            "peak_in_flight": lim.peak,
            "final_limit": lim.limit,
            "cpu_ms_per_request": round(1000 * cpu / max(1, c.requests_sent), 3),
        }


def concurrency(sim: Any, latency: float, naive_s: float, repeat: int) -> dict[str, Any]:
    """Cold loads, adaptive vs each fixed concurrency, at one latency (median of ``repeat``)."""
    sim.configure(latency=latency, throttle_rps=0.0)

    def median(**settings: Any) -> dict[str, Any]:
        runs = [cold_load(sim, **settings) for _ in range(repeat)]
        runs.sort(key=lambda r: r["seconds"])
        return runs[len(runs) // 2]

    fixed = {str(n): median(max_workers=n) for n in (8, 16, 32, 64)}
    adaptive = median()
    best_n, best = min(fixed.items(), key=lambda kv: kv[1]["seconds"])
    return {
        "latency_s": latency,
        "naive_s": round(naive_s, 3),
        "adaptive": adaptive,
        "fixed": fixed,
        "adaptive_vs_naive_x": round(naive_s / adaptive["seconds"], 1),
        "best_fixed": int(best_n),
        "adaptive_share_of_best_fixed_speed_pct": round(
            100 * best["seconds"] / adaptive["seconds"], 1
        ),
    }


def throttled(sim: Any, latency: float, rps: float) -> dict[str, Any]:
    """A cold load against a server allowing ``rps`` requests per second."""
    sim.configure(latency=latency, throttle_rps=rps)
    time.sleep(1.5)  # the server's bucket full again, as a fresh server's
    sim.reset_request_counts()
    run = cold_load(sim)
    sim.configure(throttle_rps=0.0)
    total = sim.view("requests")["total"]
    through = run["requests"] - run["throttled_429"]
    ideal = through / rps
    return {
        "latency_s": latency,
        "throttle_rps": rps,
        **run,
        "server_requests": total,
        "share_429_pct": round(100 * run["throttled_429"] / max(1, run["requests"]), 2),
        "n_over_r_s": round(ideal, 2),
        "time_vs_n_over_r_x": round(run["seconds"] / ideal, 2),
    }


def http_cpu(sim: Any) -> dict[str, Any]:
    """The client's CPU time per request alone: every timeline, no dataset work."""
    from concurrent.futures import ThreadPoolExecutor

    sim.configure(latency=0.03, throttle_rps=0.0)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as c:
        ids = [w["id"] for w in c.list_work_orders()]
        sent0, cpu = c.requests_sent, time.process_time()
        with ThreadPoolExecutor(c.settings.workers) as pool:
            list(pool.map(c.get_timeline, ids))
        cpu = time.process_time() - cpu
        n = c.requests_sent - sent0
    return {"requests": n, "cpu_ms_per_request": round(1000 * cpu / n, 3)}


def naive_requests(sim: Any) -> int:
    """Requests the naive loop sends: the list pages (default page size) and one timeline
    page per work order."""
    c = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
    page = c.request("GET", "work-orders/")
    pages = -(-page["count"] // max(1, len(page["results"])))
    return pages + page["count"]


def clock(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def _workloads() -> dict[str, Any]:
    return {
        # one call: walks the list and reads every timeline
        "load_timeline": lambda c: (dfs.load_timeline(c),),
        # two calls, each asking the server what changed
        "load_tasks+load_timeline": ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="loading speed, naive vs dfs-analytics")
    parser.add_argument("--work-orders", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--slow-latency", type=float, default=0.15)
    parser.add_argument("--throttle-rps", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=5, help="repeats of the fast measurements")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the concurrency, throttling and CPU figures only (median of 3 cold loads); "
        "the naive loop at the slow latency is estimated from the fast one",
    )
    parser.add_argument(
        "--refresh-only",
        action="store_true",
        help="the naive loop and the cold / unchanged / 1%%-changed / offline figures only",
    )
    args = parser.parse_args()
    cold_repeat = min(3, args.repeat) if args.quick else args.repeat

    out: dict[str, Any] = {
        "benchmark": "load",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "work_orders": args.work_orders,
        "latency_s": args.latency,
    }
    # the server runs in its own process, as a real one would not share our interpreter
    with SimulatorProcess(work_orders=args.work_orders, seed=0, latency=args.latency) as sim:
        naive_s, (naive_tasks, naive_tl) = clock(naive_load, sim.base_url, sim.api_key)
        out["naive_s"] = round(naive_s, 3)
        out["naive_rows"] = {"tasks": len(naive_tasks), "timeline_states": len(naive_tl)}
        if args.refresh_only:
            other = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
            for n, (name, load) in enumerate(_workloads().items()):
                with tempfile.TemporaryDirectory() as cache:
                    out[name] = measure(sim, other, cache, load, naive_s, args, round_base=100 * n)
            print(json.dumps(out, indent=2))
            return
        out["concurrency"] = [concurrency(sim, args.latency, naive_s, cold_repeat)]
        sim.configure(latency=args.slow_latency)
        if args.quick:  # sequential: requests x latency more
            slow_naive = naive_s + naive_requests(sim) * (args.slow_latency - args.latency)
        else:
            slow_naive = clock(naive_load, sim.base_url, sim.api_key)[0]
        out["concurrency"].append(concurrency(sim, args.slow_latency, slow_naive, cold_repeat))
        out["throttled"] = throttled(sim, args.latency, args.throttle_rps)
        out["http_cpu"] = http_cpu(sim)
        sim.configure(latency=args.latency, throttle_rps=0.0)
        if args.quick:
            print(json.dumps(out, indent=2))
            return
        other = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        for n, (name, load) in enumerate(_workloads().items()):
            with tempfile.TemporaryDirectory() as cache:
                out[name] = measure(sim, other, cache, load, naive_s, args, round_base=100 * n)
    # normalisation alone, on 100,000+ task rows
    store = generate(SeedSettings.defaults(work_orders=9000, seed=1))
    records = [json.loads(w.list_json()) for w in store.work_orders.values()]
    ours_s = min(clock(normalize.tasks_frame, records)[0] for _ in range(3))
    frame = normalize.tasks_frame(records)
    jn_s = min(
        clock(
            lambda: pd.json_normalize(
                records,
                record_path="tasks",
                meta=WORK_ORDER_META,
                meta_prefix="work_order.",
            )
        )[0]
        for _ in range(3)
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
