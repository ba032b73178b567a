"""Loading speed on a bad day: sporadic 429s, server errors and tight rate limits.

The simulator runs in its own process (``--work-orders`` work orders, ``--latency`` seconds
per request, seeded faults). Each scenario is one cold ``load_tasks`` + ``load_timeline``
(the public API, default settings, a new client with an empty cache in a temporary folder),
the median of ``--repeat`` runs:

- ``clean``: no fault, no limit; ``naive_clean``: the naive sequential loop of
  ``bench_load.py`` on the same clean server;
- ``sporadic_429``: ``--rate`` (5%) of requests answered 429 with ``Retry-After: 1``, in
  episodes of ``--episode`` (5) consecutive requests, as gateways do; ``faults``: ``--rate``
  of requests failing (a 500/502/503/504, or the connection cut before or after the work);
  ``both``: the two at once;
- ``rate_limit_burst_100`` and ``rate_limit_burst_10``: a token bucket of ``--rps`` requests
  per second holding 100 or 10 tokens: the time against the ideal N/R (N the requests the
  load needs, as on the clean server) and the share of requests answered 429. Their
  ``network_only`` is the same requests without the dataset (the listing, then every
  timeline on the client's threads): the limiter's own figure, which the CPU the load
  spends writing the dataset does not stretch (a busy machine's does, several seconds).

The clean load and the three fault scenarios run interleaved, round by round (clean,
sporadic, faults, both, then again), so that a machine busier in one round than in another
stretches every scenario of that round alike: ``vs_clean_x`` is a scenario's median over the
clean median, and ``round_ratios`` each round's own ratio.

Each figure: ``requests`` (sent by the client, retries included), ``server_requests`` (what
the server received), ``throttled_429`` (429 answers the client got), ``seconds`` and
``vs_clean_x`` (seconds over the clean load's). Prints one JSON object.
Usage: ``python benchmarks/bench_bad_day.py [--quick] [--work-orders 500] [--latency 0.03]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench_load import clock, naive_load, ours  # the same load and naive loop, side by side

import dfs_analytics as dfs
from dfs_analytics.simulator import SimulatorProcess

CLEAN = {"fault_rate": 0.0, "throttle_rate": 0.0, "throttle_rps": 0.0, "throttle_burst": None}


def cold_load(sim: Any) -> dict[str, Any]:
    """One cold load by a new client with an empty cache: seconds, requests, 429s (or the
    error that ended it)."""
    sim.reset_request_counts()
    with tempfile.TemporaryDirectory() as cache:
        c = dfs.Client(sim.base_url, api_key=sim.api_key, cache=cache, progress=False)
        error = None
        t = time.perf_counter()
        try:
            ours(c)
        except Exception as exc:  # a failed load is a figure too
            error = f"{type(exc).__name__}: {exc}"[:200]
        seconds = time.perf_counter() - t
        run = {
            "seconds": round(seconds, 3),
            "requests": c.requests_sent,
            "server_requests": sim.view("requests")["total"],
            "throttled_429": c.limiter.throttled,
        }
        return {**run, "error": error} if error else run


def fetch_only(sim: Any) -> dict[str, Any]:
    """The requests of a cold load without the dataset: the listing, then every work order's
    timeline on as many threads as the client has (as the sync does): seconds, requests,
    429s."""
    sim.reset_request_counts()
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as c:
        t = time.perf_counter()
        ids = [wo["id"] for wo in c.list_work_orders()]
        with ThreadPoolExecutor(c.settings.workers) as pool:
            list(pool.map(c.get_timeline, ids))
        seconds = time.perf_counter() - t
        return {
            "seconds": round(seconds, 3),
            "requests": c.requests_sent,
            "throttled_429": c.limiter.throttled,
        }


def scenario(sim: Any, repeat: int, settle: float = 0.0, **settings: Any) -> dict[str, Any]:
    """The median cold load (by seconds) of ``repeat`` under these runtime settings; the
    server waits ``settle`` seconds before each (a token bucket full again)."""
    return median_of(sim, repeat, cold_load, settle, **settings)


def interleaved(
    sim: Any, repeat: int, scenarios: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The median cold load (by seconds) of each of ``scenarios`` (name: runtime settings),
    run round by round, ``repeat`` rounds; each figure has ``seconds_all`` (in round order)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for _ in range(repeat):
        for name, settings in scenarios.items():
            sim.configure(**{**CLEAN, **settings})
            runs[name].append(cold_load(sim))
    sim.configure(**CLEAN)
    out = {}
    for name, rounds in runs.items():
        middle = sorted(rounds, key=lambda r: r["seconds"])[len(rounds) // 2]
        out[name] = {**middle, "seconds_all": [r["seconds"] for r in rounds]}
    return out


def median_of(
    sim: Any, repeat: int, run: Any, settle: float = 0.0, **settings: Any
) -> dict[str, Any]:
    """The median (by seconds) of ``repeat`` calls of ``run(sim)`` under these runtime
    settings, the server waiting ``settle`` seconds before each; ``seconds_all`` lists them."""
    sim.configure(**{**CLEAN, **settings})
    runs = []
    for _ in range(repeat):
        time.sleep(settle)
        runs.append(run(sim))
    sim.configure(**CLEAN)
    runs.sort(key=lambda r: r["seconds"])
    out = dict(runs[len(runs) // 2])
    if repeat > 1:
        out["seconds_all"] = [r["seconds"] for r in runs]
    return out


def against_ideal(run: dict[str, Any], needed: int, rps: float) -> dict[str, Any]:
    """``run`` with the ideal N/R (``needed`` requests at ``rps``), its time against it and
    the share of requests answered 429."""
    ideal = needed / rps
    return {
        **run,
        "ideal_n_over_r_s": round(ideal, 2),
        "time_vs_n_over_r_x": round(run["seconds"] / ideal, 2),
        "share_429_pct": round(100 * run["throttled_429"] / max(1, run["requests"]), 2),
    }


def with_ratios(
    figure: dict[str, Any], clean: dict[str, Any], rounds: bool = False
) -> dict[str, Any]:
    """``figure`` with ``vs_clean_x``: its seconds over the clean load's; with ``rounds``
    (both ran :func:`interleaved`), ``round_ratios`` too: each round's seconds over that
    round's clean load."""
    out = {**figure, "vs_clean_x": round(figure["seconds"] / clean["seconds"], 2)}
    if rounds and "seconds_all" in figure:
        pairs = zip(figure["seconds_all"], clean["seconds_all"], strict=True)
        out["round_ratios"] = [round(a / b, 2) for a, b in pairs]
    return out


def rate_limited(
    sim: Any, repeat: int, rps: float, burst: int, needed: int, fetched: int
) -> dict[str, Any]:
    """A load under a bucket of ``burst`` tokens refilled at ``rps``: against N/R, N the
    ``needed`` requests of a clean load; and its ``network_only`` figure, N the ``fetched``
    requests of a clean :func:`fetch_only`."""
    bucket = {"throttle_rps": rps, "throttle_burst": burst}
    run = scenario(sim, repeat, settle=1.5, **bucket)
    network = median_of(sim, repeat, fetch_only, settle=1.5, **bucket)
    return {
        **bucket,
        **against_ideal(run, needed, rps),
        "network_only": against_ideal(network, fetched, rps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="loading speed on a bad day")
    parser.add_argument("--work-orders", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--rate", type=float, default=0.05, help="share of 429s, of faults")
    parser.add_argument("--episode", type=int, default=5, help="requests per 429 episode")
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3, help="cold loads per scenario")
    parser.add_argument(
        "--quick", action="store_true", help="100 work orders, one cold load per scenario"
    )
    args = parser.parse_args()
    if args.quick:
        args.work_orders, args.repeat = min(args.work_orders, 100), 1

    out: dict[str, Any] = {
        "benchmark": "bad_day",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 1),  # a busy machine skews it all
        },
        "work_orders": args.work_orders,
        "latency_s": args.latency,
        "repeat": args.repeat,
        "settings": {"rate": args.rate, "episode": args.episode, "rps": args.rps},
    }
    sporadic = {"throttle_rate": args.rate, "throttle_burst_len": args.episode}
    faults = {"fault_rate": args.rate}
    # the server runs in its own process, as a real one would not share our interpreter
    with SimulatorProcess(
        work_orders=args.work_orders, seed=0, latency=args.latency, retry_after=1, fault_seed=1
    ) as sim:
        loads = interleaved(
            sim,
            args.repeat,
            {
                "clean": {},
                "sporadic_429": sporadic,
                "faults": faults,
                "both": {**sporadic, **faults},
            },
        )
        clean = loads["clean"]
        out["clean"] = with_ratios(clean, clean)
        sim.reset_request_counts()
        naive_s = clock(naive_load, sim.base_url, sim.api_key)[0]  # sequential: one is enough
        out["naive_clean"] = {
            "seconds": round(naive_s, 3),
            "server_requests": sim.view("requests")["total"],
            "vs_clean_x": round(naive_s / clean["seconds"], 2),
        }
        for name in ("sporadic_429", "faults", "both"):
            out[name] = with_ratios(loads[name], clean, rounds=True)
        needed, fetched = clean["requests"], fetch_only(sim)["requests"]
        for burst in (100, 10):
            figure = rate_limited(sim, args.repeat, args.rps, burst, needed, fetched)
            out[f"rate_limit_burst_{burst}"] = with_ratios(figure, clean)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
