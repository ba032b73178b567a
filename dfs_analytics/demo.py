"""``make demo``: start the local simulator, load its data with the toolkit, summarise, stop."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run_demo(work_orders: int = 500, seed: int = 0, out: str = "demo-output") -> int:
    """Run the demo end to end; returns the process exit status (0 on success)."""
    import dfs_analytics as dfs
    from dfs_analytics.simulator import Simulator

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with (
        Simulator(work_orders=work_orders, seed=seed, latency=0.02) as sim,
        tempfile.TemporaryDirectory() as cache,
    ):
        print(
            f"Simulator: {work_orders} work orders (seed {seed}) at {sim.base_url} "
            f"(ready in {time.perf_counter() - t0:.1f} s, 20 ms latency per request)"
        )
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=cache, max_workers=16)

        t = time.perf_counter()
        tasks = dfs.load_tasks(client)
        timeline = dfs.load_timeline(client)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        dfs.load_timeline(client)
        refresh = time.perf_counter() - t
        work_orders_frame = dfs.load_work_orders(client)

        reviewed = work_orders_frame["reviewed"].mean()
        print(
            f"Loaded {len(work_orders_frame)} work orders, {len(tasks)} task rows and "
            f"{len(timeline)} timeline rows in {cold:.2f} s; a refresh took {refresh:.3f} s."
        )
        print(f"{reviewed:.0%} of work orders were reviewed in the back office.")

        audited = tasks[tasks["reviewed"] & tasks["analyzed"]]
        rates = (
            audited.groupby("task_name", observed=True)["is_overridden"]
            .agg(n="size", overridden="sum")
            .assign(rate=lambda f: f["overridden"] / f["n"])
            .sort_values("rate", ascending=False)
        )
        print("\nHow often reviewers overturned the AI, per task (reviewed, analysed tasks):")
        print(rates.head(8).to_string(float_format=lambda x: f"{x:.1%}"))

        tasks.to_csv(folder / "tasks.csv", index=False)
        timeline.to_csv(folder / "timeline.csv", index=False)
    print(f"\nWrote {folder / 'tasks.csv'} and {folder / 'timeline.csv'}. Simulator stopped.")
    print(
        "Next: `make simulate` serves the simulator on http://127.0.0.1:8765/v0.2/ "
        "(key: demo-key) for your own notebooks."
    )
    return 0
