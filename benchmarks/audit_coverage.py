"""Are the audit's statistics honest? Coverage of the intervals and drift false-flag rates.

For many seeds, the simulator generates work orders, the toolkit loads them over HTTP and
computes per-task override rates with 95% Wilson intervals, which are compared with the
simulator's *true* override probability (from its ground-truth view). Then drift detection
(Fisher's exact test between app versions, Holm-adjusted over all tasks) runs on seeds without
drift (any flag is a false flag) and with the AI's error rates doubled after the upgrade
(flags are detections). Prints one JSON object.

Targets: intervals cover the truth in >= 93% of cases; false-flag rate <= 5% of seeds.
Usage: ``python benchmarks/audit_coverage.py [--seeds 100] [--work-orders 1500]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import dfs_analytics as dfs
from dfs_analytics.simulator import SeedSettings, Simulator, generate


def load(seed: int, work_orders: int, drift: float) -> tuple[Any, dict[str, Any]]:
    store = generate(SeedSettings.defaults(work_orders=work_orders, seed=seed, drift=drift))
    with Simulator(store=store) as sim:
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        return dfs.load_tasks(client), sim.truth()


def main() -> None:
    parser = argparse.ArgumentParser(description="coverage and drift false-flag rates")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--work-orders", type=int, default=1500)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--drift", type=float, default=2.0, help="multiplier for drift seeds")
    args = parser.parse_args()
    t0 = time.perf_counter()

    covered: dict[str, list[bool]] = defaultdict(list)
    false_flags = 0
    false_flag_tasks = 0
    for seed in range(args.seeds):
        tasks, truth = load(seed, args.work_orders, 1.0)
        rates = dfs.override_rates(tasks, level=args.level)
        for row in rates.itertuples(index=False):
            if row.n == 0:
                continue
            p = truth["tasks"][str(row.task_name)]["override_probability"]
            covered[str(row.task_name)].append(row.ci_low <= p <= row.ci_high)
        flags = dfs.drift(tasks, by="app_version_id", level=args.level)["flagged"]
        false_flags += bool(flags.any())
        false_flag_tasks += int(flags.sum())

    detections = 0
    detected_tasks = 0
    drift_seeds = max(10, args.seeds // 5)
    for seed in range(1000, 1000 + drift_seeds):
        tasks, _ = load(seed, args.work_orders, args.drift)
        flags = dfs.drift(tasks, by="app_version_id", level=args.level)["flagged"]
        detections += bool(flags.any())
        detected_tasks += int(flags.sum())

    all_cov = [c for values in covered.values() for c in values]
    per_task = {name: round(sum(v) / len(v), 3) for name, v in sorted(covered.items())}
    print(
        json.dumps(
            {
                "benchmark": "audit_coverage",
                "seeds": args.seeds,
                "work_orders_per_seed": args.work_orders,
                "level": args.level,
                "coverage": {
                    "overall": round(sum(all_cov) / len(all_cov), 4),
                    "intervals": len(all_cov),
                    "worst_task": min(per_task.values()),
                    "per_task": per_task,
                },
                "drift_false_flags": {
                    "seeds_with_a_flag": false_flags,
                    "rate": round(false_flags / args.seeds, 4),
                    "flagged_task_changes": false_flag_tasks,
                },
                "drift_detection": {
                    "drift_multiplier": args.drift,
                    "seeds": drift_seeds,
                    "seeds_with_a_flag": detections,
                    "power": round(detections / drift_seeds, 3),
                    "flagged_task_changes_per_seed": round(detected_tasks / drift_seeds, 2),
                },
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
