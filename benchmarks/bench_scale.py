"""A site at scale: sync throughput, peak memory, refresh cost and out-of-core reads.

For each size (10,000 and 20,000 work orders by default, ``--sizes 10000 20000 100000`` for
all three; zero latency, the simulator in its own process), each step runs in a fresh Python
process so its peak RSS is its own:

- ``cold``: ``dfs.sync(client, timelines=True)`` into an empty dataset (work orders, tasks
  and every timeline): seconds, work orders per second, peak RSS;
- ``unchanged``: a new client with nothing changed on the server, ``load_tasks`` +
  ``load_timeline`` (the full frames back): seconds and share of cold;
- ``changed_1pct``: the same after another client changed 1% of the work orders;
- ``checksums``: in a fresh process, the full frames read back (every data file checked
  against the SHA-256 recorded when it was written), then the same files hashed alone (what
  the check adds to the read), every file ever written hashed (what the commits added to
  the cold sync), and ``Dataset.verify()``;
- ``previous_release_20000``: the previous release's figures at 20,000 work orders (whole
  frames pickled in the cache folder), printed beside these for comparison.

Then, once: override rates per task over 2 million task rows (the 20,000-work-order tasks
table repeated), through DuckDB over the dataset's files, beside pandas on the same frame.

Targets: peak RSS of the cold sync under 400 MB at 20,000, and under 25% growth from 10,000
to 20,000; unchanged at most 3% of cold; 1% changed at most 5% of cold; checksums a few
percent of a read and of the cold sync.
``--cold-only`` runs the cold sync alone, ``--runs N`` times per size (each in a new process, into
a new dataset): peak RSS per run and its spread, the figure the memory target is about.
Prints one JSON object. Usage: ``python benchmarks/bench_scale.py [--sizes 10000 20000]
[--cold-only] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any


def _child(step: str, base_url: str, api_key: str, cache: str, fraction: float) -> None:
    """One measured step, in its own process; prints a JSON line."""
    import dfs_analytics as dfs

    client = dfs.Client(base_url, api_key=api_key, cache=cache, progress=False)
    out: dict[str, Any] = {"step": step}
    start = time.perf_counter()
    if step == "cold":
        res = dfs.sync(client, timelines=True)
        out.update(
            listed=res.listed, commits=res.commits, requests=res.requests, version=res.version
        )
    elif step in ("unchanged", "changed_1pct"):
        tasks = dfs.load_tasks(client)
        timeline = dfs.load_timeline(client)
        out.update(task_rows=len(tasks), timeline_rows=len(timeline))
    elif step == "checksums":
        import hashlib
        from pathlib import Path

        from dfs_analytics.dataset import TABLES

        def sha(path: str) -> str:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(2**20):
                    digest.update(block)
            return digest.hexdigest()

        ds = dfs.open_dataset(client.dataset_location)
        frames = [ds.work_orders(), ds.tasks(), ds.timeline()]
        # the cold sync reads no task groups: that table is unknown, not empty
        with contextlib.suppress(dfs.TableNotSyncedError):
            frames.append(ds.task_groups())
        out["read_s"] = time.perf_counter() - start
        t = time.perf_counter()
        latest = [f for table in TABLES for f in ds.files(table)]
        for f in latest:
            sha(f)
        out["hash_latest_s"] = time.perf_counter() - t
        root = Path(client.dataset_location)
        every = [p for table in TABLES for p in (root / table).rglob("*.parquet")]
        t = time.perf_counter()
        for p in every:
            sha(str(p))
        out.update(
            hash_every_file_s=time.perf_counter() - t,
            files_latest=len(latest),
            files_every=len(every),
            mb_latest=sum(os.path.getsize(f) for f in latest) / 2**20,
            mb_every=sum(p.stat().st_size for p in every) / 2**20,
            rows=sum(len(f) for f in frames),
        )
        t = time.perf_counter()
        report = ds.verify()
        out.update(verify_s=time.perf_counter() - t, verify_problems=len(report))
    elif step == "change":
        other = dfs.Client(base_url, api_key=api_key, cache=None, progress=False)
        ids = dfs.open_dataset(client).work_orders(columns=["work_order_id"])["work_order_id"]
        picked = list(ids[:: max(1, int(1 / fraction))])
        for n, wo_id in enumerate(picked):
            other.patch_metadata(wo_id, {"bench_scale": n})
        out.update(changed=len(picked))
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def _run(step: str, sim: Any, cache: str, fraction: float = 0.01) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        step,
        sim.base_url,
        sim.api_key,
        cache,
        str(fraction),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _duckdb_vs_pandas(cache: str, base_url: str, api_key: str, rows: int) -> dict[str, Any]:
    import deltalake
    import pyarrow as pa
    import pyarrow.compute as pc

    import dfs_analytics as dfs

    client = dfs.Client(base_url, api_key=api_key, cache=cache, progress=False)
    src = dfs.open_dataset(client).arrow_dataset("tasks")
    assert src is not None
    base = src.to_table()
    copies = []
    n = 0
    while n < rows:
        suffix = f"-{len(copies)}"
        ids = pc.binary_join_element_wise(base.column("work_order_id"), pa.scalar(suffix), "")
        copies.append(base.set_column(0, "work_order_id", ids))
        n += base.num_rows
    big = pa.concat_tables(copies).slice(0, rows)
    with tempfile.TemporaryDirectory() as tmp:
        deltalake.write_deltalake(os.path.join(tmp, "tasks"), big, partition_by=["create_month"])
        import pyarrow.dataset as pads

        data = deltalake.DeltaTable(os.path.join(tmp, "tasks")).to_pyarrow_dataset()
        import duckdb

        con = duckdb.connect()
        con.register("tasks", data)
        sql = (
            "SELECT task_name, count(*) FILTER (WHERE is_corrected IS NOT NULL AND reviewed) "
            "AS n, count(*) FILTER (WHERE is_overridden AND reviewed) AS k FROM tasks "
            "GROUP BY task_name ORDER BY task_name"
        )
        t = time.perf_counter()
        duck = con.execute(sql).df()
        duck_s = time.perf_counter() - t
        t = time.perf_counter()
        frame = data.to_table(columns=["task_name", "reviewed", "is_overridden"]).to_pandas()
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        reviewed = frame[frame["reviewed"].fillna(False).astype(bool)]
        pand = (
            reviewed.groupby("task_name")["is_overridden"]
            .agg(n="size", k=lambda s: int(s.fillna(False).astype(bool).sum()))
            .reset_index()
        )
        pandas_s = time.perf_counter() - t
        del pads
    same = duck["k"].astype(int).tolist() == pand["k"].astype(int).tolist()
    return {
        "task_rows": big.num_rows,
        "duckdb_s": round(duck_s, 3),
        "pandas_read_s": round(read_s, 3),
        "pandas_groupby_s": round(pandas_s, 3),
        "same_overridden_counts": same,
    }


def _cold_runs(sizes: list[int], runs: int) -> dict[str, Any]:
    """``runs`` cold syncs per size, each in a new process into a new dataset: seconds and
    peak RSS per run, and the spread of the peaks (largest over smallest, minus one)."""
    import shutil

    from dfs_analytics.simulator import SimulatorProcess

    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "sizes": {}}
    for size in sizes:
        peaks, seconds = [], []
        with SimulatorProcess(work_orders=size, seed=7, latency=0) as sim:
            for _ in range(runs):
                cache = tempfile.mkdtemp(prefix="dfs-bench-scale-")
                try:
                    cold = _run("cold", sim, cache)
                finally:
                    shutil.rmtree(cache, ignore_errors=True)
                peaks.append(round(cold["peak_rss_mb"], 1))
                seconds.append(round(cold["seconds"], 1))
        out["sizes"][size] = {
            "cold_peak_rss_mb": peaks,
            "cold_sync_s": seconds,
            "rss_spread": round(max(peaks) / min(peaks) - 1, 3),
        }
    out["targets"] = {"cold_peak_rss_mb_max": 400, "rss_spread_max": 0.10}
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--duckdb-rows", type=int, default=2_000_000)
    parser.add_argument("--cold-only", action="store_true", help="the cold sync alone")
    parser.add_argument("--runs", type=int, default=1, help="cold syncs per size")
    args = parser.parse_args()
    if args.cold_only:
        print(json.dumps(_cold_runs(args.sizes, args.runs), indent=2))
        return
    from dfs_analytics.simulator import SimulatorProcess

    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sizes": {},
    }
    last_cache = None
    for size in args.sizes:
        with SimulatorProcess(work_orders=size, seed=7, latency=0) as sim:
            cache = tempfile.mkdtemp(prefix="dfs-bench-scale-")
            cold = _run("cold", sim, cache)
            checks = _run("checksums", sim, cache)
            unchanged = _run("unchanged", sim, cache)
            change = _run("change", sim, cache)
            changed = _run("changed_1pct", sim, cache)
            out["sizes"][size] = {
                "cold_sync_s": round(cold["seconds"], 2),
                "cold_work_orders_per_s": round(size / cold["seconds"], 1),
                "cold_peak_rss_mb": round(cold["peak_rss_mb"], 1),
                "cold_commits": cold["commits"],
                "cold_requests": cold["requests"],
                "unchanged_full_frames_s": round(unchanged["seconds"], 3),
                "unchanged_share_of_cold": round(unchanged["seconds"] / cold["seconds"], 4),
                "unchanged_peak_rss_mb": round(unchanged["peak_rss_mb"], 1),
                "changed_work_orders": change["changed"],
                "changed_1pct_s": round(changed["seconds"], 3),
                "changed_1pct_share_of_cold": round(changed["seconds"] / cold["seconds"], 4),
                "checksums": {
                    "read_full_frames_s": round(checks["read_s"], 3),
                    "hash_files_read_s": round(checks["hash_latest_s"], 3),
                    "share_of_read": round(checks["hash_latest_s"] / checks["read_s"], 4),
                    "hash_every_file_written_s": round(checks["hash_every_file_s"], 3),
                    "share_of_cold_sync": round(checks["hash_every_file_s"] / cold["seconds"], 4),
                    "files_read": checks["files_latest"],
                    "mb_read": round(checks["mb_latest"], 1),
                    "files_written": checks["files_every"],
                    "mb_written": round(checks["mb_every"], 1),
                    "verify_s": round(checks["verify_s"], 3),
                    "verify_problems": checks["verify_problems"],
                },
                "task_rows": unchanged["task_rows"],
                "timeline_rows": unchanged["timeline_rows"],
            }
            if size == max(args.sizes):
                out["duckdb_override_rates"] = _duckdb_vs_pandas(
                    cache, sim.base_url, sim.api_key, args.duckdb_rows
                )
            last_cache = cache
    sizes = sorted(out["sizes"])
    if len(sizes) >= 2:
        a, b = out["sizes"][sizes[0]], out["sizes"][sizes[-1]]
        out["rss_growth_when_doubled"] = round(b["cold_peak_rss_mb"] / a["cold_peak_rss_mb"] - 1, 3)
    # the same measurements with the previous release (pickled snapshots of whole frames),
    # 20,000 work orders on this machine, for comparison
    out["previous_release_20000"] = {
        "store": "pickled frames",
        "load_tasks+load_timeline_peak_rss_mb": 1000,
        "cold_load_s": 35.0,
        "unchanged_new_client_s": 4.9,
        "unchanged_share_of_cold": 0.14,
        "resumable": False,
    }
    out["targets"] = {
        "cold_peak_rss_mb_max": 400,
        "rss_growth_max": 0.25,
        "unchanged_share_max": 0.03,
        "changed_1pct_share_max": 0.05,
        "checksum_share_max": 0.05,
    }
    del last_cache
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
