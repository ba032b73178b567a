"""The campaign journal on disk.

:class:`dfs_analytics.journal.Journal` on its own, on files in tmp_path: appends read back in
order and durable when they return, what is not a record refused with the file and the line,
what a crash leaves tolerated, reopening, a read-only folder, a new journal owner-only with its
folder made durable, the last event per key. Then the campaign over it, against the simulator:
a bad journal sends nothing, a crash's leftovers are skipped, and a journal written by earlier
versions (the same strings) resumes as it always did.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics.campaign import Action, Event, Journal, JournalError, Status
from dfs_analytics.journal import last_events
from tests.helpers import corrections, events_by_task, patches, plan_frame, targets

pytestmark = pytest.mark.sim(work_orders=40, seed=31)


def a_record(**more: Any) -> bytes:
    record = {"time": "2026-01-01T00:00:00+00:00", "event": "attempt", "key": "wo/t/1", **more}
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def half_a_character() -> bytes:
    """A record cut inside a multi-byte character, as a crash mid-write leaves it."""
    whole = a_record(detail="é")
    return whole[: whole.index("é".encode()) + 1]


# what a crash may leave at the end of a journal (and a later run may have closed)
TORN = {
    "record-cut-short": b'{"time": "2026-01-01T00:00:00+00:00", "event": "attem',
    "cut-inside-a-character": half_a_character(),
    "zero-bytes": b"\x00" * 12,
    "zero-bytes-then-a-cut-record": b"\x00" * 5 + b'{"time": "2026',
}

# lines that are not records: (line, what the error says)
NOT_RECORDS = {
    "array": (b"[1, 2, 3]", "a JSON list, not a record"),
    "string": (b'"attempt"', "a JSON str, not a record"),
    "number": (b"42", "a JSON int, not a record"),
    "null": (b"null", "a JSON NoneType, not a record"),
    "boolean": (b"true", "a JSON bool, not a record"),
    "latin-1": (
        a_record(task_name="caf\xe9").replace("caf\u00e9".encode(), b"caf\xe9")[:-1],
        "bytes that are not UTF-8",
    ),
    "utf-16-mark": (b"\xff\xfe" + a_record()[:-1], "bytes that are not UTF-8 (byte 1 "),
    "continuation-byte": (
        a_record(value="X").replace(b'"X"', b'"\x80"')[:-1],
        "bytes that are not UTF-8",
    ),
    "csv": (b"work_order_id,task_name,corrected_value", "not a JSON record"),
}


# --------------------------------------------------------------------------------------------
# the Journal on its own
# --------------------------------------------------------------------------------------------


def test_appends_read_back_in_order_time_first(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    assert Journal.read(path) == []  # no file yet: nothing journaled
    when = datetime(2026, 1, 2, 3, 4, 5)
    with Journal(path) as journal:
        journal.append({"key": "a", "event": Event.ATTEMPT, "attempt": 1})
        journal.append({"key": "a", "event": Event.APPLIED, "state": {"corrected_value": True}})
        journal.append({"key": "b", "event": "in doubt", "detail": "café", "at": when})

    records = Journal.read(path)

    assert [next(iter(r)) for r in records] == ["time"] * 3
    for record in records:
        assert datetime.fromisoformat(record.pop("time")).utcoffset() is not None
    assert records == [
        {"key": "a", "event": "attempt", "attempt": 1},
        {"key": "a", "event": "applied", "state": {"corrected_value": True}},
        {"key": "b", "event": "in doubt", "detail": "café", "at": str(when)},
    ]
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 3
    assert "café".encode() in raw  # written as UTF-8, not escaped


def test_an_append_is_on_disk_when_it_returns(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    on_disk_at_fsync: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        on_disk_at_fsync.append(path.read_bytes().count(b"\n"))  # flushed before the fsync

    monkeypatch.setattr(os, "fsync", fsync)
    for n in range(1, 4):
        journal.append({"key": "k", "event": Event.ATTEMPT, "attempt": n})
        assert on_disk_at_fsync[-1] == n  # this record was written and fsync'ed
    journal.close()
    assert len(on_disk_at_fsync) == 3


def test_appends_from_many_threads_are_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)

    def write(thread: int) -> None:
        for n in range(40):
            journal.append({"key": f"{thread}/{n}", "event": Event.ATTEMPT, "pad": "x" * 300})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()

    records = Journal.read(path)
    assert len(records) == 320
    assert set(last_events(records)) == {f"{t}/{n}" for t in range(8) for n in range(40)}
    for thread in range(8):  # each thread's records in its own order
        mine = [r["key"] for r in records if r["key"].startswith(f"{thread}/")]
        assert mine == [f"{thread}/{n}" for n in range(40)]


@pytest.mark.parametrize("torn", list(TORN))
def test_a_torn_last_line_is_skipped_and_closed_on_reopening(tmp_path: Path, torn: str) -> None:
    path = tmp_path / "j.jsonl"
    content = a_record(row=0) + a_record(row=1) + TORN[torn]
    path.write_bytes(content)

    assert [r["row"] for r in Journal.read(path)] == [0, 1]

    with Journal(path) as journal:  # a later run
        journal.append({"key": "k", "event": Event.APPLIED, "row": 2})
    assert path.read_bytes().startswith(content)  # nothing rewritten, only appended
    assert [r["row"] for r in Journal.read(path)] == [0, 1, 2]
    with Journal(path) as journal:  # and the run after it
        journal.append({"key": "k", "event": Event.CONFIRMED, "row": 3})
    assert [r["row"] for r in Journal.read(path)] == [0, 1, 2, 3]


def test_reopening_appends_after_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append({"key": "a", "event": Event.ATTEMPT})
    first = path.read_bytes()
    for run in range(1, 3):
        with Journal(path) as journal:
            journal.append({"key": "a", "event": Event.IN_DOUBT, "run": run})

    raw = path.read_bytes()
    assert raw.startswith(first)
    assert b"\n\n" not in raw  # a clean journal gets no empty line on reopening
    records = Journal.read(path)
    assert [r.get("run") for r in records] == [None, 1, 2]
    assert last_events(records) == {"a": "in doubt"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_journal_in_a_read_only_folder_reads_and_appends(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "j.jsonl"
    with Journal(path) as journal:
        journal.append({"key": "a", "event": Event.ATTEMPT})
    folder.chmod(0o555)
    try:
        assert last_events(Journal.read(path)) == {"a": "attempt"}
        with Journal(path) as journal:  # the file is writable; the folder is not written
            journal.append({"key": "a", "event": Event.APPLIED})
        assert last_events(Journal.read(path)) == {"a": "applied"}
    finally:
        folder.chmod(0o755)


def refused(path: Path) -> bool:
    """Whether opening a new journal at ``path`` is refused for want of permission, as a user
    other than root (root may write in any folder: then a forked child asks as ``nobody``)."""

    def attempt() -> bool:
        try:
            Journal(path).close()
        except PermissionError:
            return True
        return False

    if os.geteuid() != 0:
        return attempt()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 2
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = 0 if attempt() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1), status
    return os.WEXITSTATUS(status) == 0


def test_a_new_journal_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    # a folder every user can reach (tmp_path's parents are the owner's only), none can write
    folder = Path(tempfile.mkdtemp(prefix="journal-ro-"))
    control = Path(tempfile.mkdtemp(prefix="journal-rw-"))
    try:
        control.chmod(0o777)  # the same user may write beside it: the refusal is the mode's
        assert not refused(control / "j.jsonl")
        folder.chmod(0o555)
        for path in (folder / "j.jsonl", folder / "new" / "j.jsonl"):
            assert refused(path), path
            assert not path.exists()
            assert Journal.read(path) == []
        assert list(folder.iterdir()) == []  # no file, no folder left behind
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)
        shutil.rmtree(control)


def test_a_new_journal_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        for path in (tmp_path / "j.jsonl", tmp_path / "new" / "folder" / "j.jsonl"):
            Journal(path).close()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    finally:
        os.umask(old)


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


@pytest.mark.parametrize("case", list(NOT_RECORDS))
def test_what_is_not_a_record_is_refused_with_the_file_and_the_line(
    tmp_path: Path, case: str
) -> None:
    line, says = NOT_RECORDS[case]
    path = tmp_path / "j.jsonl"
    path.write_bytes(a_record() + a_record(row=1) + line + b"\n" + a_record(row=2))

    with pytest.raises(JournalError) as caught:
        Journal.read(path)

    error = caught.value
    assert isinstance(error, dfs.ConfigurationError) and isinstance(error, dfs.DFSError)
    assert error.path == path and error.line == 3
    assert str(path) in str(error) and "line 3" in str(error) and says in str(error)


def test_the_last_event_per_key() -> None:
    records = [
        {"key": "a", "event": "attempt"},
        {"key": "b", "event": "attempt"},
        {"event": "attempt"},  # no key: not a row's
        {"key": "", "event": "applied"},
        {"key": "a", "event": "in doubt"},
        {"key": "b", "event": 3},  # not a word: an unknown event
        {"key": "a", "event": "confirmed"},
    ]
    assert last_events(records) == {"a": "confirmed", "b": ""}


# --------------------------------------------------------------------------------------------
# the words on disk and in the frames: enums that are their strings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum", "words"),
    [
        (Event, {"attempt", "applied", "confirmed", "in doubt", "throttled", "failed", "plan"}),
        (
            Status,
            {"applied", "applied earlier", "confirmed", "skipped", "failed", "in doubt"},
        ),
        (Action, {"apply", "skip", "invalid"}),
    ],
    ids=["events", "statuses", "actions"],
)
def test_the_words_are_their_strings(enum: Any, words: set[str]) -> None:
    assert {member.value for member in enum} == words
    for member in enum:
        assert member == member.value and member.value == member
        assert str(member) == f"{member}" == member.value
        assert json.dumps({"event": member}) == json.dumps({"event": member.value})
        assert member.value in {member} and member in {member.value}  # hashed as the string


# --------------------------------------------------------------------------------------------
# the campaign over its journal
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["array", "latin-1", "csv"])
def test_a_bad_journal_sends_nothing_and_stays_as_it_was(
    sim, client, reader, tmp_path: Path, case: str
) -> None:
    line, says = NOT_RECORDS[case]
    journal = tmp_path / "j.jsonl"
    content = a_record() + a_record(row=1) + line + b"\n" + a_record(row=2)
    journal.write_bytes(content)
    campaign = dfs.Campaign(client, plan_frame(targets(reader, 3)), journal=journal)

    with pytest.raises(JournalError, match="line 3") as caught:
        campaign.apply()

    assert str(journal) in str(caught.value) and says in str(caught.value)
    assert patches(sim) == 0 and corrections(sim) == {}
    assert journal.read_bytes() == content  # untouched
    with pytest.raises(JournalError, match="line 3"):
        campaign.journal_status()


def test_the_plan_given_as_the_journal_is_refused(sim, client, reader, tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan_frame(targets(reader, 2)).to_csv(plan, index=False)
    content = plan.read_bytes()
    with pytest.raises(JournalError, match="line 1: not a JSON record"):
        dfs.Campaign(client, plan, journal=plan).apply()
    assert plan.read_bytes() == content
    assert patches(sim) == 0


@pytest.mark.parametrize(
    "left",
    [
        TORN["record-cut-short"],
        a_record() + TORN["zero-bytes"] + b"\n" + TORN["cut-inside-a-character"],
    ],
    ids=["a-record-cut-short", "zero-bytes-closed-then-a-cut-character"],
)
def test_what_a_crash_leaves_is_skipped(sim, client, reader, tmp_path: Path, left: bytes) -> None:
    """A crash's leftovers are never an error, and never swallow the next run's records."""
    items = targets(reader, 3)
    plan = plan_frame(items, forms=False)
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(left)

    result = dfs.Campaign(client, plan, journal=journal).apply()

    assert (result["status"] == "applied").all(), result
    records = Journal.read(journal)
    by_task = events_by_task([r for r in records if "task_id" in r])
    assert by_task == {(i["work_order_id"], i["task_id"]): ["attempt", "applied"] for i in items}
    again = dfs.Campaign(client, plan, journal=journal).apply()
    assert (again["status"] == "applied earlier").all()


def test_a_new_campaign_journal_is_owner_only(sim, client, reader, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        journal = tmp_path / "deeper" / "j.jsonl"
        dfs.Campaign(client, plan_frame(targets(reader, 2)), journal=journal).apply()
    finally:
        os.umask(old)
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600, oct(journal.stat().st_mode)
    records = Journal.read(journal)
    assert records[0]["event"] == "plan"  # the plan's fingerprint, then the rows' records
    assert sorted(r["event"] for r in records[1:]) == ["applied", "applied", "attempt", "attempt"]


RECORD_KEYS = ["time", "key", "base_url", "row", "work_order_id", "task_id", "task_name", "value"]


def old_record(sim, item: dict[str, Any], row: int, event: str, **more: Any) -> str:
    """A journal line as earlier versions wrote it, spelled out here rather than by the code
    under test."""
    record = {
        "time": "2026-01-01T00:00:00.000000+00:00",
        "key": f"{item['work_order_id']}/{item['task_id']}/{json.dumps(item['value'])}",
        "base_url": sim.base_url,
        "row": row,
        "work_order_id": item["work_order_id"],
        "task_id": item["task_id"],
        "task_name": item["task_name"],
        "value": item["value"],
        "event": event,
        **more,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


def test_a_journal_of_earlier_versions_resumes(sim, client, reader, tmp_path: Path) -> None:
    """Rows journaled applied or confirmed are not sent; rows last journaled in doubt,
    throttled, failed or only attempted are checked on the server, then sent; and the new
    records use the same words and the same fields."""
    items = targets(reader, 7)
    plan = plan_frame(items, forms=False)
    histories: list[list[tuple[str, dict[str, Any]]]] = [
        [("attempt", {"attempt": 1}), ("applied", {"attempt": 1, "state": None})],
        [("attempt", {"attempt": 1}), ("in doubt", {"attempt": 1}), ("confirmed", {})],
        [("attempt", {"attempt": 1}), ("in doubt", {"attempt": 1, "detail": "lost"})],
        [("attempt", {"attempt": 1}), ("throttled", {"attempt": 1})],
        [("attempt", {"attempt": 1}), ("failed", {"attempt": 1, "detail": "gave up: 503"})],
        [("attempt", {"attempt": 1})],
        [],
    ]
    journal = tmp_path / "j.jsonl"
    journal.write_text(
        "".join(
            old_record(sim, items[row], row, event, **more)
            for row, history in enumerate(histories)
            for event, more in history
        ),
        encoding="utf-8",
    )
    for item in items[:2]:  # what the journal says was done, was done
        dfs.correct(reader, item["work_order_id"], item["task_id"], item["value"])
    campaign = dfs.Campaign(client, plan, journal=journal)
    assert set(campaign.journal_status().values()) == {
        "applied",
        "confirmed",
        "in doubt",
        "throttled",
        "failed",
        "attempt",
    }
    before = len(Journal.read(journal))

    result = campaign.apply()

    assert list(result["status"]) == ["applied earlier"] * 2 + ["applied"] * 5, result
    assert all(type(status) is str for status in result["status"])  # plain strings
    planned = {(i["work_order_id"], i["task_id"]) for i in items}
    assert corrections(sim) == dict.fromkeys(planned, 1)  # the two earlier ones, five now
    new = json.loads("[" + ",".join(journal.read_text().splitlines()[before:]) + "]")
    # a journal of earlier versions has no plan fingerprint: it gets one, before the rows
    assert new[0]["event"] == "plan" and new[0]["fingerprint"] == campaign.fingerprint()
    new = new[1:]
    assert {r["event"] for r in new} == {"attempt", "applied"}
    for record in new:
        assert list(record)[: len(RECORD_KEYS) + 1] == [*RECORD_KEYS, "event"]
    assert dfs.Campaign(client, plan, journal=journal).verify().empty
