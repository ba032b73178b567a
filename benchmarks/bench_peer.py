"""A cold load against a peer: dfs-analytics vs a tuned dlt ``rest_api`` pipeline into DuckDB.

One simulator, in its own process (its CPU is not the client's), serves both with the same
data and latency. Each run starts each side in a fresh subprocess with an empty cache or
pipeline folder, the two interleaved (which goes first alternates), and times the load alone:

- dfs-analytics: ``dfs.load_tasks(client)`` then ``dfs.load_timeline(client)`` on a new
  client, default settings; also its process CPU time per request sent.
- dlt: the work-order list (page-numbered ``next`` links, page size 1000) and each work
  order's timeline as a parallel child resource, ``extract.workers`` threads (default 32),
  into DuckDB through Parquet files (its fastest loader format here; ``insert_values``, the
  default, takes 4x as long): ``pipeline.run`` (extract, normalise, load).

dlt lives in its own virtual environment (``--dlt-venv``, default ``~/.cache/dfs-bench-dlt``,
created with ``pip install dlt[duckdb,parquet]`` when missing and reused after): it is never a
dependency of the project. Prints one JSON object: each run's seconds, medians, the ratio
(dlt / dfs-analytics) and the client's CPU per request. No timed assertion.
Usage: ``python benchmarks/bench_peer.py [--runs 3] [--work-orders 500] [--latency 0.03]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

DLT_VENV = pathlib.Path.home() / ".cache" / "dfs-bench-dlt"

# the dlt side, run by the dlt venv's interpreter: argv = base_url api_key folder workers format
DLT_SCRIPT = r"""
import json, os, sys, time
base_url, api_key, folder, workers, file_format = sys.argv[1:6]
os.environ["EXTRACT__WORKERS"] = workers
os.environ["DATA_WRITER__DISABLE_COMPRESSION"] = "true"
os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
import dlt
from dlt.sources.rest_api import rest_api_source

next_link = {"type": "json_link", "next_url_path": "next"}
source = rest_api_source({
    "client": {
        "base_url": base_url,
        "auth": {"type": "api_key", "name": "Authorization",
                 "api_key": "Token " + api_key, "location": "header"},
    },
    "resource_defaults": {"write_disposition": "replace"},
    "resources": [
        {"name": "work_orders", "endpoint": {
            "path": "work-orders/", "params": {"page_size": 1000},
            "data_selector": "results", "paginator": next_link}},
        {"name": "timeline", "parallelized": True, "endpoint": {
            "path": "work-orders/{resources.work_orders.id}/timeline/",
            "params": {"page_size": 1000},
            "data_selector": "results", "paginator": next_link},
         "include_from_parent": ["id"]},
    ],
})
pipeline = dlt.pipeline(pipeline_name="peer", destination=dlt.destinations.duckdb(
    os.path.join(folder, "peer.duckdb")), dataset_name="dfs", pipelines_dir=folder)
cpu, t = time.process_time(), time.perf_counter()
pipeline.run(source, loader_file_format=file_format)
seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
rows = {}
with pipeline.sql_client() as sql:
    for table in ("work_orders", "work_orders__tasks", "timeline", "timeline__states"):
        rows[table] = sql.execute_sql(f"SELECT count(*) FROM {table}")[0][0]
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "rows": rows}))
"""


def toolkit_run(base_url: str, api_key: str) -> dict[str, Any]:
    """The dfs-analytics cold load in this process: seconds, CPU seconds, requests, rows."""
    import dfs_analytics as dfs

    with tempfile.TemporaryDirectory() as cache:
        client = dfs.Client(base_url, api_key=api_key, cache=cache, progress=False)
        cpu, t = time.process_time(), time.perf_counter()
        tasks = dfs.load_tasks(client)
        timeline = dfs.load_timeline(client)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        sent = client.requests_sent
        client.close()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "requests": sent,
        "cpu_ms_per_request": 1000 * cpu / max(1, sent),
        "rows": {"tasks": len(tasks), "timeline": len(timeline)},
    }


def dlt_python(venv: pathlib.Path) -> str:
    """The dlt venv's interpreter, the venv created (``dlt[duckdb,parquet]``) when it is missing."""
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = [str(python), "-c", "import dlt, duckdb, pyarrow"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    print(f"building dlt's venv in {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "dlt[duckdb,parquet]"], check=True)
    return str(python)


def child(command: list[str]) -> dict[str, Any]:
    """Run one side in a new process; its JSON line, plus the process's wall time."""
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="cold load, dfs-analytics vs dlt rest_api")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-orders", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--dlt-workers", type=int, default=32)
    parser.add_argument("--dlt-format", default="parquet", help="dlt's loader file format")
    parser.add_argument("--dlt-venv", type=pathlib.Path, default=DLT_VENV)
    parser.add_argument("--no-dlt", action="store_true", help="the dfs-analytics side only")
    parser.add_argument("--child", nargs=2, metavar=("BASE_URL", "API_KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(toolkit_run(*args.child)))
        return

    from dfs_analytics.simulator import SimulatorProcess

    python = None if args.no_dlt else dlt_python(args.dlt_venv)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    with (
        SimulatorProcess(work_orders=args.work_orders, seed=0, latency=args.latency) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        script = pathlib.Path(tmp, "dlt_side.py")
        script.write_text(DLT_SCRIPT)
        ours_cmd = [sys.executable, __file__, "--child", sim.base_url, sim.api_key]
        for run in range(args.runs):
            sides = ["ours", "dlt"] if run % 2 == 0 else ["dlt", "ours"]
            for side in sides:
                if side == "ours":
                    ours.append(child(ours_cmd))
                elif python is not None:
                    folder = tempfile.mkdtemp(dir=tmp)
                    dlt_cmd = [python, str(script), sim.base_url, sim.api_key, folder]
                    theirs.append(child([*dlt_cmd, str(args.dlt_workers), args.dlt_format]))

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    out: dict[str, Any] = {
        "benchmark": "peer",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "work_orders": args.work_orders,
        "latency_s": args.latency,
        "runs": args.runs,
        "dfs_analytics": {
            "median_s": median(ours, "seconds"),
            "median_cpu_s": median(ours, "cpu_s"),
            "median_cpu_ms_per_request": median(ours, "cpu_ms_per_request"),
            "requests": ours[0]["requests"],
            "rows": ours[0]["rows"],
            "runs_s": [round(r["seconds"], 3) for r in ours],
            "runs_cpu_ms_per_request": [round(r["cpu_ms_per_request"], 3) for r in ours],
        },
    }
    if theirs:
        out["dlt"] = {
            "workers": args.dlt_workers,
            "loader_file_format": args.dlt_format,
            "median_s": median(theirs, "seconds"),
            "median_cpu_s": median(theirs, "cpu_s"),
            "rows": theirs[0]["rows"],
            "runs_s": [round(r["seconds"], 3) for r in theirs],
        }
        out["dlt_over_dfs_analytics_x"] = round(
            statistics.median(r["seconds"] for r in theirs)
            / statistics.median(r["seconds"] for r in ours),
            2,
        )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
