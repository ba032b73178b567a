"""The campaign journal on disk: what is not a record is refused with the file and the line,
what a crash leaves is tolerated, a new journal is owner-only and its folder made durable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.campaign import Journal, JournalError
from tests.test_campaign import corrections, events_by_task, patches, plan_frame, targets

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def sim(dfs_simulator_factory):
    return dfs_simulator_factory(work_orders=40, seed=31)


def a_record(**more: Any) -> bytes:
    record = {"time": "2026-01-01T00:00:00+00:00", "event": "attempt", "key": "wo/t/1", **more}
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


# --------------------------------------------------------------------------------------------
# what is not a record: a typed error naming the file and the line, nothing sent
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [b"[1, 2, 3]", b'"attempt"', b"42", b"null", b"true"],
    ids=["array", "string", "number", "null", "boolean"],
)
def test_a_json_line_that_is_not_an_object_is_refused(
    sim, client, reader, tmp_path: Path, line: bytes
) -> None:
    journal = tmp_path / "j.jsonl"
    content = a_record() + a_record(row=1) + line + b"\n" + a_record(row=2)
    journal.write_bytes(content)
    campaign = dfs.Campaign(client, plan_frame(targets(reader, 3)), journal=journal)

    with pytest.raises(JournalError) as caught:
        campaign.apply()

    error = caught.value
    assert isinstance(error, dfs.ConfigurationError) and isinstance(error, dfs.DFSError)
    assert str(journal) in str(error) and "line 3" in str(error)
    assert error.path == journal and error.line == 3
    assert patches(sim) == 0 and corrections(sim) == {}
    assert journal.read_bytes() == content  # untouched
    with pytest.raises(JournalError, match="line 3"):
        campaign.journal_status()


@pytest.mark.parametrize(
    "line",
    [
        a_record(task_name="caf\xe9").replace("caf\u00e9".encode(), b"caf\xe9"),  # Latin-1
        b"\xff\xfe" + a_record(),  # UTF-16 mark
        a_record(value="X").replace(b'"X"', b'"\x80"'),  # a lone continuation byte
    ],
    ids=["latin-1", "utf-16-mark", "continuation-byte"],
)
def test_bytes_that_are_not_utf8_are_refused(
    sim, client, reader, tmp_path: Path, line: bytes
) -> None:
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(a_record() + line + a_record())
    campaign = dfs.Campaign(client, plan_frame(targets(reader, 2)), journal=journal)
    with pytest.raises(JournalError, match=r"line 2: bytes that are not UTF-8") as caught:
        campaign.apply()
    assert str(journal) in str(caught.value)
    assert patches(sim) == 0


def test_a_file_that_is_not_a_journal_is_refused(sim, client, reader, tmp_path: Path) -> None:
    """The plan given as the journal by mistake: refused, and left as it was."""
    plan = tmp_path / "plan.csv"
    plan_frame(targets(reader, 2)).to_csv(plan, index=False)
    content = plan.read_bytes()
    with pytest.raises(JournalError, match="line 1: not a JSON record"):
        dfs.Campaign(client, plan, journal=plan).apply()
    assert plan.read_bytes() == content
    assert patches(sim) == 0


def test_what_a_crash_leaves_is_tolerated(sim, client, reader, tmp_path: Path) -> None:
    """A write cut inside a multi-byte character, closed by a later run, and zero bytes left by
    a lost write: skipped, never an error."""
    items = targets(reader, 3)
    plan = plan_frame(items, forms=False)
    journal = tmp_path / "j.jsonl"
    cut = a_record(detail="é")[: a_record(detail="é").index("é".encode()) + 1]  # half of é
    journal.write_bytes(a_record() + b"\x00" * 12 + b"\n" + cut)

    result = dfs.Campaign(client, plan, journal=journal).apply()

    assert (result["status"] == "applied").all(), result
    records = Journal.read(journal)
    by_task = events_by_task([r for r in records if "task_id" in r])
    assert by_task == {(i["work_order_id"], i["task_id"]): ["attempt", "applied"] for i in items}
    # and the next run reads it all again
    again = dfs.Campaign(client, plan, journal=journal).apply()
    assert (again["status"] == "applied earlier").all()


# --------------------------------------------------------------------------------------------
# a new journal: 0600 whatever the umask, its folder fsync'ed
# --------------------------------------------------------------------------------------------


def test_a_new_journal_is_owner_only_whatever_the_umask(
    sim, client, reader, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        direct = tmp_path / "direct.jsonl"
        Journal(direct).close()
        through_apply = tmp_path / "deeper" / "j.jsonl"
        dfs.Campaign(client, plan_frame(targets(reader, 2)), journal=through_apply).apply()
    finally:
        os.umask(old)
    for path in (direct, through_apply):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert len(Journal.read(through_apply)) == 4


def test_creating_a_journal_fsyncs_its_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[tuple[int, int]] = []  # (device, inode) of every folder fsync'ed
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            synced.append((info.st_dev, info.st_ino))
        real_fsync(fd)

    def ident(path: Path) -> tuple[int, int]:
        info = path.stat()
        return info.st_dev, info.st_ino

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "new" / "folders" / "j.jsonl"
    journal = Journal(path)
    journal.append({"event": "attempt"})
    journal.close()
    # the file's folder, and the folders that hold each newly created folder
    for folder in (path.parent, path.parent.parent, tmp_path):
        assert ident(folder) in synced, folder

    synced.clear()
    Journal(path).close()  # an existing journal: nothing new to make durable
    assert synced == []
