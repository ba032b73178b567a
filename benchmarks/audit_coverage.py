"""Are the audit's statistics honest? Coverage of the intervals and drift false-flag rates.

For many seeds, the simulator generates work orders, the toolkit loads them over HTTP and
computes per-task override rates with 95% Wilson intervals, which are compared with the
simulator's *true* override probability (from its ground-truth view). Then drift detection
(Fisher's exact test between app versions, Holm-adjusted over all tasks) runs on seeds without
drift (any flag is a false flag) and with the AI's error rates doubled after the upgrade
(flags are detections). Prints one JSON object.

Then fair rankings of field engineers: for ``--funnel-seeds`` seeds with per-engineer
differences in photo quality (``--engineers`` extra seeded technicians), :func:`dfs.funnel`
flags engineers outside the 99.8% funnel limits, and the flags are checked against each
engineer's true override probability from the ground truth:

- precision: the share of flagged engineers whose true rate is on the flagged side of the
  site's true rate (above for "above", below for "below"); also for "above" flags alone;
- recall: the share of engineers whose true rate is at least ``--recall-ratio`` times the
  site's (or at most its inverse) that are flagged on that side;
- top-5 overlap: how many of the 5 engineers with the highest true rate are among the top 5
  of the shrunken (empirical-Bayes) ranking, and among the top 5 of the raw rates.

The funnel part builds the tasks frame straight from the simulator's store (the very JSON the
API serves, through the same normalisation), without HTTP, so that many seeds stay quick.

Targets: intervals cover the truth in >= 93% of cases; false-flag rate <= 5% of seeds;
funnel precision >= 90%.
Usage: ``python benchmarks/audit_coverage.py [--seeds 100] [--work-orders 1500]
[--funnel-seeds 60] [--funnel-work-orders 1500] [--engineers 30]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.simulator import SeedSettings, Simulator, generate, ground_truth


def load(seed: int, work_orders: int, drift: float) -> tuple[Any, dict[str, Any]]:
    store = generate(SeedSettings.defaults(work_orders=work_orders, seed=seed, drift=drift))
    with Simulator(store=store) as sim:
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        return dfs.load_tasks(client), sim.truth()


def funnel_seed(seed: int, work_orders: int, engineers: int) -> tuple[Any, dict[str, Any]]:
    """Tasks frame and ground truth of one seed, built without HTTP."""
    store = generate(
        SeedSettings.defaults(work_orders=work_orders, seed=seed, extra_engineers=engineers)
    )
    payload = [wo.to_dict(inputs=False, task_groups=False) for wo in store.work_orders.values()]
    return normalize.tasks_frame(payload), ground_truth(store)


def funnel_figures(seeds: range, work_orders: int, engineers: int, ratio: float) -> dict:
    flagged = right = flagged_above = right_above = 0
    should = found = 0
    overlap_shrunk: list[int] = []
    overlap_raw: list[int] = []
    per_seed_engineers = []
    for seed in seeds:
        tasks, truth = funnel_seed(seed, work_orders, engineers)
        site = truth["site_override_probability"]
        table = dfs.funnel(tasks, by="field_engineer_email")
        table = table[table["n"] > 0]
        true = (
            table["field_engineer_email"]
            .astype(str)
            .map({e: v["override_probability"] for e, v in truth["engineers"].items()})
        )
        per_seed_engineers.append(len(table))
        for side, p in zip(table["side"], true, strict=True):
            if side:
                flagged += 1
                right += (p > site) if side == "above" else (p < site)
            if side == "above":
                flagged_above += 1
                right_above += p > site
            if p >= ratio * site or p <= site / ratio:
                should += 1
                found += side == ("above" if p > site else "below")
        best = set(true.sort_values(ascending=False).index[:5])
        shrunk = set(table["shrunk"].sort_values(ascending=False, kind="stable").index[:5])
        raw = set(table["rate"].sort_values(ascending=False, kind="stable").index[:5])
        overlap_shrunk.append(len(best & shrunk))
        overlap_raw.append(len(best & raw))
    count = len(seeds)
    return {
        "seeds": count,
        "work_orders_per_seed": work_orders,
        "engineers_per_seed": round(sum(per_seed_engineers) / count, 1),
        "limit": 0.998,
        "flagged": flagged,
        "precision": round(right / flagged, 4) if flagged else None,
        "flagged_above": flagged_above,
        "precision_above": round(right_above / flagged_above, 4) if flagged_above else None,
        "recall_ratio": ratio,
        "engineers_far_from_site": should,
        "recall": round(found / should, 4) if should else None,
        "top5_overlap_shrunk": round(sum(overlap_shrunk) / count, 3),
        "top5_overlap_raw": round(sum(overlap_raw) / count, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="coverage and drift false-flag rates")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--work-orders", type=int, default=1500)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--drift", type=float, default=2.0, help="multiplier for drift seeds")
    parser.add_argument("--funnel-seeds", type=int, default=60)
    parser.add_argument("--funnel-work-orders", type=int, default=1500)
    parser.add_argument("--engineers", type=int, default=30, help="extra seeded technicians")
    parser.add_argument("--recall-ratio", type=float, default=1.5)
    parser.add_argument("--only-funnel", action="store_true", help="skip coverage and drift")
    args = parser.parse_args()
    t0 = time.perf_counter()
    funnel = funnel_figures(
        range(2000, 2000 + args.funnel_seeds),
        args.funnel_work_orders,
        args.engineers,
        args.recall_ratio,
    )
    if args.only_funnel:
        print(
            json.dumps(
                {
                    "benchmark": "audit_coverage",
                    "funnel": funnel,
                    "seconds": round(time.perf_counter() - t0, 1),
                },
                indent=2,
            )
        )
        return

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
                "funnel": funnel,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
