"""Integrity of the on-disk dataset: bit rot in data files and in the version table is a
``DatasetCorruptError`` naming the file (never a different frame, never a hang),
``Dataset.verify()`` lists damaged files, and huge strings stay out of the Delta log.

Every test syncs a real simulator over HTTP into a dataset under ``tmp_path``.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

import dfs_analytics as dfs
from dfs_analytics import dataset as store
from dfs_analytics.simulator import Simulator

READS: dict[str, Callable[[dfs.Dataset], Any]] = {
    "work_orders": lambda ds: ds.work_orders(),
    "tasks": lambda ds: ds.tasks(),
    "timeline": lambda ds: ds.timeline(),
    "task_groups": lambda ds: ds.task_groups(),
    "history": lambda ds: ds.history().drop(columns=["time"]),
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A small site synced in two steps (several versions), and the frames read from it."""
    root = tmp_path_factory.mktemp("integrity")
    path = root / "ds"
    with (
        Simulator(work_orders=25, seed=17) as sim,
        dfs.Client(
            sim.base_url, api_key=sim.api_key, cache=root / "cache", dataset=path, progress=False
        ) as client,
    ):
        dfs.load_tasks(client, created_in="2026Q1")
        dfs.load_timeline(client)
        dfs.load_task_groups(client)
        ds = dfs.open_dataset(str(path))
        yield path, {name: read(ds) for name, read in READS.items()}


def _flip_bit(path: Path, offset: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _flip(path: Path, rng: random.Random) -> int:
    """Flip one bit of ``path`` drawn with ``rng``; the offset of the byte changed."""
    offset = rng.randrange(path.stat().st_size)
    _flip_bit(path, offset, rng.randrange(8))
    return offset


def _flipped_copies(
    path: Path, tmp_path: Path, files: list[Path], seed: int, count: int, part: range
) -> Iterator[tuple[Path, Path]]:
    """The flips number ``part`` of ``count`` flips drawn with ``seed``: for each, a copy of
    the dataset at ``path`` with one bit flipped in one of ``files`` (relative to it): (copy,
    the file flipped), each copy removed once the caller is done with it. The draws do not
    depend on ``part``: the parts of one ``count`` together make the same ``count`` flips."""
    rng = random.Random(seed)
    for n in range(count):
        relative = files[rng.randrange(len(files))]
        offset = rng.randrange((path / relative).stat().st_size)
        bit = rng.randrange(8)
        if n not in part:
            continue
        copy = tmp_path / f"copy-{n}"
        shutil.copytree(path, copy)
        _flip_bit(copy / relative, offset, bit)
        yield copy, relative
        shutil.rmtree(copy)


def _part_id(part: range) -> str:
    return f"flips-{part.start}-{part.stop - 1}"


def _parts(count: int, size: int) -> list[range]:
    """``range(count)`` in parts of ``size``: parallel workers check the flips part by part."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _outcome(read: Callable[[], Any], seconds: float = 60.0) -> tuple[str, Any]:
    """("value", frame) or ("error", exception), or ("hang", None) after ``seconds``."""
    box: list[tuple[str, Any]] = []

    def run() -> None:
        try:
            box.append(("value", read()))
        except BaseException as exc:  # reported to the test
            box.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return box[0] if box else ("hang", None)


def _same(a: Any, b: Any) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b)
    except AssertionError:
        return False
    return True


def _assert_equal_or_corrupt(copy: Path, victim: Path, expected: dict[str, Any]) -> int:
    """Every read of the damaged copy equals the original or is a DatasetCorruptError; the
    number of reads that raised."""
    errors = 0
    outcome = _outcome(lambda: dfs.open_dataset(str(copy)))
    if outcome[0] == "error" and isinstance(outcome[1], dfs.DatasetCorruptError):
        return 1
    assert outcome[0] == "value", (victim, outcome)
    ds = outcome[1]
    for name, read in READS.items():
        kind, got = _outcome(lambda read=read: read(ds))
        assert kind != "hang", f"{name} hangs after a flip in {victim}"
        if kind == "error":
            assert isinstance(got, dfs.DatasetCorruptError), (victim, name, repr(got))
            errors += 1
        else:
            assert _same(got, expected[name]), f"{name} silently differs after a flip in {victim}"
    return errors


# Every flip in a data file is caught the same way (the file's SHA-256 recorded at write time
# differs), whatever its offset; 20 flips of this seed hit every table at least twice.
DATA_FLIPS = 20


@pytest.mark.parametrize("part", _parts(DATA_FLIPS, 10), ids=_part_id)
def test_single_bit_flips_in_data_files_are_errors_naming_the_file(
    synced, tmp_path, part: range
) -> None:
    path, expected = synced
    ds = dfs.open_dataset(str(path))
    files = sorted(Path(f).relative_to(path) for t in store.TABLES for f in ds.files(t))
    assert len(files) >= 4
    named = 0
    for copy, relative in _flipped_copies(path, tmp_path, files, 20261207, DATA_FLIPS, part):
        victim = copy / relative
        outcome = _outcome(lambda copy=copy: dfs.open_dataset(str(copy)).verify())
        assert outcome[0] == "value", outcome
        report = outcome[1]
        assert list(report.columns) == ["table", "file", "problem"]
        assert report["file"].str.endswith(relative.name).any(), (relative, report)
        assert (report["file"].str.endswith(relative.name)).sum() == 1
        assert report.attrs["files_checked"] >= 1
        # every read is the original frame or a typed error that names the file
        ds = dfs.open_dataset(str(copy))
        table = relative.parts[0]
        kind, got = _outcome(lambda table=table, ds=ds: READS[table](ds))
        assert kind == "error" and isinstance(got, dfs.DatasetCorruptError), (relative, kind)
        named += relative.name in str(got)
        assert _assert_equal_or_corrupt(copy, victim, expected) >= 1
    assert named == len(part)


def test_verify_of_an_intact_dataset_finds_nothing(synced) -> None:
    path, _ = synced
    ds = dfs.open_dataset(str(path))
    for all_versions in (False, True):
        report = ds.verify(all_versions=all_versions)
        assert report.empty, report
        assert report.attrs["files_checked"] >= 4
    assert ds.verify(all_versions=True).attrs["files_checked"] > ds.verify().attrs["files_checked"]


def test_verify_names_a_deleted_file_of_an_older_version(synced, tmp_path) -> None:
    path, _ = synced
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    ds = dfs.open_dataset(str(copy))
    old = {
        f
        for t in store.TABLES
        for v in ds.history()["version"]
        for f in set(ds.files(t, as_of=int(v))) - set(ds.files(t))
    }
    assert old, "no version rewrote a file"
    victim = sorted(old)[0]
    Path(victim).unlink()
    assert ds.verify().empty  # the latest version does not use it
    report = ds.verify(all_versions=True)
    assert list(report["file"]) == [victim]
    assert "missing" in report["problem"].iloc[0]


# Likewise in the version table (its files' SHA-256); 20 flips of this seed hit each of its files.
VERSION_FLIPS = 20


@pytest.mark.parametrize("part", _parts(VERSION_FLIPS, 10), ids=_part_id)
def test_single_bit_flips_in_the_version_table_never_give_other_frames(
    synced, tmp_path, part: range
) -> None:
    path, expected = synced
    files = sorted(p.relative_to(path) for p in (path / "syncs").glob("*.parquet"))
    assert len(files) >= 2
    errors = 0
    for copy, relative in _flipped_copies(path, tmp_path, files, 48, VERSION_FLIPS, part):
        got = _assert_equal_or_corrupt(copy, copy / relative, expected)
        errors += got > 0
        if got:
            with pytest.raises(dfs.DatasetCorruptError, match="syncs"):
                dfs.open_dataset(str(copy)).tasks()
    assert errors == len(part), "a flip in the version table went unnoticed"


def test_a_table_version_beyond_the_log_is_an_error_not_a_hang(synced, tmp_path) -> None:
    """What a flip did to a version table row: its timeline version became 2**48."""
    path, _ = synced
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    syncs = DeltaTable(str(copy / "syncs"))
    table = syncs.to_pyarrow_table()
    last = table.sort_by([("version", "descending")]).slice(0, 1).to_pylist()[0]
    last.update(version=last["version"] + 1, timeline_version=2**48)
    write_deltalake(
        str(copy / "syncs"), pa.Table.from_pylist([last], schema=table.schema), mode="append"
    )
    kind, got = _outcome(lambda: dfs.open_dataset(str(copy)).timeline(), seconds=30)
    assert kind == "error", kind
    assert isinstance(got, dfs.DatasetCorruptError)
    assert "timeline" in str(got) and str(2**48) in str(got)


def test_a_rewritten_version_row_is_noticed(synced, tmp_path) -> None:
    """A row whose content changed but whose commit recorded a digest (the row written by
    this release): the version table is refused, naming its file."""
    path, _ = synced
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    victim = max((copy / "syncs").glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    import pyarrow.parquet as pq

    rows = pq.read_table(victim).to_pylist()
    rows[-1]["tasks_version"] = max(0, rows[-1]["tasks_version"] - 1)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(victim)), victim)
    with pytest.raises(dfs.DatasetCorruptError, match=victim.name):
        dfs.open_dataset(str(copy)).tasks()


# -- statistics of huge strings -----------------------------------------------------------------

NAME_BYTES = 12 * 2**20


def test_a_huge_name_stays_out_of_the_delta_log(dfs_simulator_factory, client_for, tmp_path):
    sim = dfs_simulator_factory(work_orders=6, seed=3)
    with sim.store.lock:
        wo = next(iter(sim.store.work_orders.values()))
        wo.name = "N" * NAME_BYTES
        wo_id = wo.id
    path = tmp_path / "ds"
    tasks = dfs.load_tasks(client_for(sim, dataset=path))
    assert (tasks["work_order_name"] == "N" * NAME_BYTES).any()
    logs = sorted(path.rglob("_delta_log/*.json"))
    assert logs
    log_bytes = sum(p.stat().st_size for p in logs)
    assert log_bytes < 2**20, f"{log_bytes} bytes of Delta log"
    for p in logs:
        for line in p.read_text().splitlines():
            stats = json.loads(line).get("add", {}).get("stats")
            if stats:
                for bound in ("minValues", "maxValues"):
                    for value in json.loads(stats).get(bound, {}).values():
                        assert len(str(value)) <= store.STATS_TRUNCATE + 1
    # reading that one row back, in a fresh process, stays near the size of the string
    script = textwrap.dedent(
        """
        import resource, sys
        import dfs_analytics as dfs
        ds = dfs.open_dataset(sys.argv[1])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row = ds.work_orders(columns=["work_order_id", "name"])
        row = row[row["work_order_id"] == sys.argv[2]]
        assert len(row) == 1 and len(row["name"].iloc[0]) == int(sys.argv[3])
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), wo_id, str(NAME_BYTES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grew = int(done.stdout.split()[-1])
    assert grew < 12 * NAME_BYTES, f"reading one row took {grew / 2**20:.0f} MB"


def test_dask_partitions_check_their_file(synced, tmp_path) -> None:
    path, expected = synced
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    ds = dfs.open_dataset(str(copy))
    assert len(ds.to_dask("tasks").compute()) == len(expected["tasks"])
    victim = Path(sorted(ds.files("tasks"))[0])
    _flip(victim, random.Random(5))
    with pytest.raises(dfs.DatasetCorruptError, match=victim.name):
        dfs.open_dataset(str(copy)).to_dask("tasks").compute()


def test_verify_lists_files_written_without_a_checksum(synced, tmp_path) -> None:
    """Files an older release wrote (no checksum recorded) are read, and listed as
    unverified; the files this release wrote are still checked."""
    path, _ = synced
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    ds = dfs.open_dataset(str(copy))
    rows = DeltaTable(str(copy / "task_groups")).to_pyarrow_table()
    write_deltalake(str(copy / "task_groups"), rows, mode="overwrite")
    syncs = DeltaTable(str(copy / "syncs"))
    table = syncs.to_pyarrow_table()
    last = table.sort_by([("version", "descending")]).slice(0, 1).to_pylist()[0]
    last.update(
        version=last["version"] + 1,
        task_groups_version=DeltaTable(str(copy / "task_groups")).version(),
    )
    write_deltalake(
        str(copy / "syncs"), pa.Table.from_pylist([last], schema=table.schema), mode="append"
    )
    ds = dfs.open_dataset(str(copy))
    assert len(ds.task_groups()) == rows.num_rows
    report = ds.verify()
    assert set(report["table"]) == {"task_groups"}, report
    assert report["problem"].str.contains("no checksum recorded").all()
    assert all(
        Path(f).name in {Path(g).name for g in ds.files("task_groups")} for f in report["file"]
    )
