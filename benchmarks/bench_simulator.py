"""Simulator scale: generation time, and list pages answered from indexes vs a naive scan.

Prints one JSON object. Usage: ``python benchmarks/bench_simulator.py [--work-orders 20000]``.

- ``generate_s``: seconds to generate the work orders (target: 20,000 in under 30 s on 2 cores).
- ``query_ms``: milliseconds to answer one list page in-process, for several filters, with the
  store's indexes (first page: index lookup; later pages: cached id list) side by side with the
  naive way (scan and sort every work order for every page).
- ``http_ms``: the same pages over real HTTP (median of repeated requests).
- ``walk_s``: a full walk of the list over HTTP with ``page_size=1000``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import requests

from dfs_analytics.simulator import SeedSettings, Simulator, generate
from dfs_analytics.simulator.store import Query, Store


def naive_page(store: Store, q: Query, page: int, size: int) -> list[str]:
    """What a simulator without indexes does: scan, filter and sort everything per page."""
    rows = []
    for wo in store.work_orders.values():
        if q.created_after and wo.create_date < q.created_after:
            continue
        if q.created_before and wo.create_date >= q.created_before:
            continue
        if q.reviewed is not None and (wo.review_date is not None) != q.reviewed:
            continue
        if q.field_engineer_email is not None and wo.field_engineer_email != q.field_engineer_email:
            continue
        if any(t not in wo.tags for t in q.tags):
            continue
        rows.append((wo.create_date, wo.id))
    rows.sort()
    return [i for _, i in rows[(page - 1) * size : page * size]]


def timed(fn: Any, repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-orders", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t = time.perf_counter()
    store = generate(SeedSettings.defaults(work_orders=args.work_orders, seed=args.seed))
    generate_s = time.perf_counter() - t

    some_engineer = next(
        w.field_engineer_email for w in store.work_orders.values() if w.field_engineer_email
    )
    queries = {
        "all": Query(),
        "reviewed": Query(reviewed=True),
        "created_range": Query(
            created_after=datetime(2026, 3, 1, tzinfo=timezone.utc),
            created_before=datetime(2026, 4, 1, tzinfo=timezone.utc),
        ),
        "engineer_and_tag": Query(field_engineer_email=some_engineer, tags=("b2b",)),
    }
    query_ms: dict[str, Any] = {}
    for name, q in queries.items():
        deep = max(1, len(store.query(q)) // 100)

        def cold(q: Query = q) -> None:
            store._changed()  # drop the cached id lists, as a write would
            store.query(q)[:100]

        first = timed(cold, 20)
        later = timed(lambda q=q, d=deep: store.query(q)[(d - 1) * 100 : d * 100], 200)
        naive = timed(lambda q=q, d=deep: naive_page(store, q, d, 100), 5)
        query_ms[name] = {
            "matches": len(store.query(q)),
            "indexed_first_page": round(first, 4),
            "indexed_next_page": round(later, 4),
            "naive_per_page": round(naive, 3),
            "speedup_next_page": round(naive / later),
            "speedup_walk_of_all_pages": round(naive * pages / (first + later * (pages - 1)), 1)
            if (pages := max(1, -(-len(store.query(q)) // 100)))
            else None,
        }

    http_ms: dict[str, float] = {}
    with Simulator(store=store) as sim:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {sim.api_key}"
        base = sim.base_url + "work-orders/"
        deep_page = max(1, args.work_orders // 100)
        for label, params in {
            "page_1_size_100": {"page_size": 100},
            f"page_{deep_page}_size_100": {"page_size": 100, "page": deep_page},
            "reviewed_page_2_size_100": {"page_size": 100, "page": 2, "reviewed": "true"},
            "page_1_size_1000": {"page_size": 1000},
        }.items():
            session.get(base, params=params, timeout=60).raise_for_status()  # warm
            http_ms[label] = round(
                timed(lambda p=params: session.get(base, params=p, timeout=60), 10), 2
            )
        t = time.perf_counter()
        url: str | None = base + "?page_size=1000"
        seen = 0
        while url:
            page = session.get(url, timeout=60).json()
            seen += len(page["results"])
            url = page["next"]
        walk_s = time.perf_counter() - t

    print(
        json.dumps(
            {
                "benchmark": "simulator",
                "machine": {
                    "cpus": __import__("os").cpu_count(),
                    "python": platform.python_version(),
                },
                "work_orders": args.work_orders,
                "generate_s": round(generate_s, 2),
                "query_ms": query_ms,
                "http_ms": http_ms,
                "walk_page_size_1000": {"work_orders": seen, "seconds": round(walk_s, 2)},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
