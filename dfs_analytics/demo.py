"""``make demo``: start the local simulator, load its data, audit it, write the HTML report.

The simulator and its client come from :func:`dfs_analytics.connect` (``simulator=True``), the
frames from the loaders, the figures from :mod:`dfs_analytics.audit`. The demo never touches a
real site and never shows its made-up figures without saying they are simulator data.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .simulator.generator import DEFAULT_WORK_ORDERS


def run_demo(
    work_orders: int = DEFAULT_WORK_ORDERS, seed: int = 0, out: str | Path = "demo-output"
) -> int:
    """Run the demo end to end on the simulator's made-up data (every output says so) and stop
    the simulator; returns the exit status (0: success).

    ``work_orders`` defaults to the simulator's :data:`DEFAULT_WORK_ORDERS`, so the demo shows
    the same data as ``dfs-analytics simulate --seed SEED``.
    """
    from dfs_analytics.config import SIMULATOR_NOTE
    from dfs_analytics.connect import connect, stop

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(
        f"dfs-analytics demo {SIMULATOR_NOTE}: every figure below comes from a local simulator "
        "of the Field Services API, whose data is made up.\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        client = connect(
            simulator=True,
            work_orders=work_orders,
            seed=seed,
            simulator_options={"latency": 0.02},
            cache=cache,
            max_workers=16,
        )
        try:
            print(f"20 ms latency per request; ready in {time.perf_counter() - t0:.1f} s.")
            report = _show(client, folder)
        finally:
            stop(client)
    print("\nSimulator stopped.")
    print(
        f"Open the audit report {SIMULATOR_NOTE} in a browser (it works offline): "
        f"{report.resolve()}"
    )
    print(
        "Notebooks: `make notebooks` opens notebooks/ in JupyterLab (01_quickstart, "
        "02_audit_ai_verdicts, 03_correction_campaign); they ask for their own simulator."
    )
    print(
        "Your own data: set DFS_BASE_URL (or DFS_SITE_ID and DFS_REGION) and DFS_API_KEY, then "
        "dfs.connect() in Python, or dfs-analytics report / export without --simulator."
    )
    return 0


def _show(client: Any, folder: Path) -> Path:
    """Load, summarise and report on ``client``'s simulator data, printing as it goes;
    returns the path of the HTML report written in ``folder`` (with ``tasks.csv``)."""
    import dfs_analytics as dfs
    from dfs_analytics.config import SIMULATOR_NOTE

    t = time.perf_counter()
    tasks = dfs.load_tasks(client)
    timeline = dfs.load_timeline(client)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    dfs.load_timeline(client)
    refresh = time.perf_counter() - t
    print(
        f"Loaded {tasks['work_order_id'].nunique()} simulated work orders, {len(tasks)} task "
        f"rows and {len(timeline)} timeline rows in {cold:.2f} s; a refresh took "
        f"{refresh:.3f} s."
    )

    head = dfs.audit.summary(tasks)
    print(
        f"\n{head['reviewed_work_orders']} of {head['work_orders']} work orders were "
        f"reviewed; reviewers overturned the AI on {head['overridden']} of "
        f"{head['audited_tasks']} audited tasks: {head['override_rate']:.1%} "
        f"(95% CI {head['ci_low']:.1%} - {head['ci_high']:.1%})."
    )
    rates = dfs.override_rates(tasks).sort_values("rate", ascending=False).head(6)
    print(f"\nMost overturned tasks {SIMULATOR_NOTE}:")
    for row in rates.itertuples(index=False):
        print(
            f"  {row.task_name:<26} {row.rate:6.1%}  [{row.ci_low:.1%}, {row.ci_high:.1%}]"
            f"  n={row.n}"
        )
    flagged = dfs.drift(tasks, by="app_version_id")
    flagged = flagged[flagged["flagged"]]
    print(
        f"\nSignificant changes at the app-version upgrade {SIMULATOR_NOTE}: {len(flagged)}"
        + "".join(f"\n  {r.task_name}: {r.change:+.1%}" for r in flagged.itertuples())
    )

    report = dfs.audit_report(
        tasks,
        folder / "audit.html",
        source="the local simulator",
        simulator=True,
        dataset_note="a temporary dataset (deleted after the demo)",
    )
    tasks.to_csv(folder / "tasks.csv", index=False)
    return report
