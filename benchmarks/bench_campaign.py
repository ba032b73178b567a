"""Correction campaign speed: a sequential loop of correction calls vs ``Campaign.apply``.

1,000 corrections each way (on different tasks) against the simulator in its own process with
30 ms latency per request. The campaign runs as documented: ``preview()`` (validation, which
reads every work order of the plan once) then ``apply()`` (every attempt journaled durably),
then ``verify()``; each is timed, and the speed-up is given for ``apply`` and for
``preview`` + ``apply``. Prints one JSON object. Target: ``Campaign.apply`` >= 10x faster than
the loop.
Usage: ``python benchmarks/bench_campaign.py [--corrections 1000] [--latency 0.03]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests

import dfs_analytics as dfs
from dfs_analytics.simulator import SimulatorProcess


def main() -> None:
    parser = argparse.ArgumentParser(description="campaign speed vs a sequential loop")
    parser.add_argument("--corrections", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    n = args.corrections
    work_orders = max(200, (n * 6) // 5)

    with (
        SimulatorProcess(work_orders=work_orders, seed=0, latency=args.latency) as sim,
        tempfile.TemporaryDirectory() as folder,
    ):
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        tasks = dfs.load_tasks(client)
        # Boolean tasks with an OK and a KO rule, analysed: flip their effective value
        flippable = tasks[
            tasks["analyzed"]
            & (tasks["outcome_type"] == "Boolean")
            & tasks["ai_message"].notna()
            & tasks["task_name"].astype(str).str.endswith("_quality").eq(False)
        ]
        flippable = flippable[flippable["task_name"].astype(str) != "bouchon_retire"]
        if len(flippable) < 2 * n:
            raise SystemExit(f"only {len(flippable)} tasks to correct; raise --work-orders")
        rows = flippable.sample(2 * n, random_state=0)
        plan = pd.DataFrame(
            {
                "work_order_id": rows["work_order_id"].astype(str).to_numpy(),
                "task_id": rows["task_id"].astype(str).to_numpy(),
                "corrected_value": [not bool(v) for v in rows["value"]],
            }
        )
        naive_plan, campaign_plan = plan.iloc[:n], plan.iloc[n:]

        session = requests.Session()
        session.headers["Authorization"] = f"Token {sim.api_key}"
        t = time.perf_counter()
        for row in naive_plan.itertuples(index=False):
            r = session.patch(
                f"{sim.base_url}work-orders/{row.work_order_id}/tasks/{row.task_id}/correction/",
                json={"corrected_value": row.corrected_value},
                timeout=30,
            )
            r.raise_for_status()
        naive_s = time.perf_counter() - t

        client = dfs.Client(
            sim.base_url, api_key=sim.api_key, cache=None, progress=False, max_workers=args.workers
        )
        campaign = dfs.Campaign(client, campaign_plan, journal=Path(folder) / "bench.jsonl")
        t = time.perf_counter()
        preview = campaign.preview()  # validation: reads every work order of the plan
        preview_s = time.perf_counter() - t
        t = time.perf_counter()
        results = campaign.apply(max_workers=args.workers, progress=False)
        apply_s = time.perf_counter() - t
        t = time.perf_counter()
        mismatches = campaign.verify()
        verify_s = time.perf_counter() - t
        counts = sim.correction_counts()

    print(
        json.dumps(
            {
                "benchmark": "campaign",
                "machine": {
                    "cpus": __import__("os").cpu_count(),
                    "python": platform.python_version(),
                },
                "corrections": n,
                "latency_s": args.latency,
                "workers": args.workers,
                "sequential_loop_s": round(naive_s, 2),
                "campaign_preview_s": round(preview_s, 2),
                "campaign_apply_s": round(apply_s, 2),
                "speedup_apply_x": round(naive_s / apply_s, 1),
                "speedup_preview_plus_apply_x": round(naive_s / (preview_s + apply_s), 1),
                "planned_actions": preview["action"].value_counts().to_dict(),
                "campaign_verify_s": round(verify_s, 2),
                "statuses": results["status"].value_counts().to_dict(),
                "mismatches_after_verify": len(mismatches),
                "max_accepted_calls_per_task": max(counts.values()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
