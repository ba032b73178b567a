"""An append-only JSON-lines journal whose appends return once they are on disk.

A campaign writes what it is about to do, and what happened, to a :class:`Journal` before it
moves on; a later run reads it back (:meth:`Journal.read`) and tells, per key, what happened
last (:func:`last_events`). A new file is created owner-only (0600) and its folder fsync'ed.
A torn last line (what a crash may leave) is skipped on reading and closed on reopening;
anything else that is not a record raises :class:`~dfs_analytics.JournalError`.

Never rewrites, truncates or deletes what is in a journal, never sends anything, and knows
nothing of what the records mean besides their ``key`` and ``event``.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import JournalError
from .files import open_no_follow

# every record starts like this (``time`` is its first key); a torn write is a prefix of one
_RECORD_START = '{"time": "'


class Journal:
    """An append-only JSONL file whose appends return once durable (group-committed fsync).

    Opening creates the file (0600) and its missing folders, or reopens an existing one for
    appending; a symbolic link in its place raises :class:`~dfs_analytics.UnsafePathError`.
    Safe to append to from several threads; use it as a context manager, or :meth:`close` it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        make_folders(self.path.parent)
        flags = os.O_WRONLY | os.O_APPEND
        try:  # never through a symbolic link: it would append to (and fsync) its target
            fd = open_no_follow(self.path, flags | os.O_CREAT | os.O_EXCL, what="journal")
            created = True
        except FileExistsError:
            fd = open_no_follow(self.path, flags, what="journal")
            created = False
        try:
            if created:
                if hasattr(os, "fchmod"):  # the umask may have taken bits away, never added
                    os.fchmod(fd, 0o600)
                _fsync_folder(self.path.parent)  # the new file's entry must be durable too
            torn = (
                not created and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            )
            self._fh = os.fdopen(fd, "a", encoding="utf-8")
        except BaseException:
            os.close(fd)
            raise
        if torn:  # a crash cut the last line: start a new one so no record is glued to it
            self._fh.write("\n")
        self._cond = threading.Condition()
        self._written = 0
        self._durable = 0
        self._syncing = False

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record, stamped with the current ``time`` first; returns (None) once it is
        on disk (flushed and fsync'ed). Values JSON cannot hold are written as their ``str``."""
        line = json.dumps(
            {"time": datetime.now(timezone.utc).isoformat(), **record},
            default=str,
            ensure_ascii=False,
        )
        with self._cond:
            self._fh.write(line + "\n")
            self._written += 1
            mine = self._written
            while self._durable < mine:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target = self._written
                try:
                    self._fh.flush()
                    self._cond.release()
                    try:
                        os.fsync(self._fh.fileno())
                    finally:
                        self._cond.acquire()
                    self._durable = max(self._durable, target)
                finally:  # a disk error fails this append, and never leaves others waiting
                    self._syncing = False
                    self._cond.notify_all()

    def close(self) -> None:
        """Close the file (what was appended is already on disk)."""
        with self._cond:
            self._fh.close()

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """Every complete record of a journal, in order (an empty list if there is no file).
        A symbolic link raises :class:`~dfs_analytics.UnsafePathError`.

        What a crash leaves is skipped: a torn last line, or a torn line that a later run
        closed. Anything else that is not a record raises :class:`JournalError` naming the
        file and the line.
        """
        records: list[dict[str, Any]] = []
        p = Path(path)
        try:
            fd = open_no_follow(p, os.O_RDONLY, what="journal")
        except FileNotFoundError:
            return records
        with open(fd, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    break  # torn write
                record = _parse(p, number, raw[:-1])
                if record is not None:
                    records.append(record)
        return records


def make_folders(folder: str | Path) -> None:
    """Create ``folder`` and its missing parents, each new entry made durable (its parent
    fsync'ed), so a journal created there survives a crash with its folder."""
    folder = Path(folder)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if missing:
        missing[0].mkdir(parents=True, exist_ok=True)
    for entry in missing:
        _fsync_folder(entry.parent)


def last_events(records: list[dict[str, Any]]) -> dict[str, str]:
    """The last ``event`` per ``key`` of these records (``""`` for a record without one);
    records without a key are passed over."""
    status: dict[str, str] = {}
    for record in records:
        key = record.get("key")
        if isinstance(key, str) and key:
            event = record.get("event")
            status[key] = event if isinstance(event, str) else ""
    return status


def _parse(path: Path, number: int, raw: bytes) -> dict[str, Any] | None:
    """One line (without its newline) as a record; None for what a crash leaves."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.reason == "unexpected end of data"  # cut inside a character
        if cut and _torn(raw[: exc.start].decode("utf-8", "replace")):
            return None
        raise JournalError(
            path, number, f"bytes that are not UTF-8 (byte {exc.start + 1} of the line)"
        ) from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        if _torn(text):
            return None
        raise JournalError(path, number, f"not a JSON record: {text[:60]!r}") from None
    if not isinstance(record, dict):
        raise JournalError(
            path, number, f"a JSON {type(record).__name__}, not a record (an object)"
        )
    return record


def _torn(text: str) -> bool:
    """Whether a line that is not JSON is what a crash leaves: the start of a record (after
    any zero bytes a lost write can leave), cut short."""
    text = text.lstrip("\x00").strip()
    return not text or text.startswith(_RECORD_START) or _RECORD_START.startswith(text)


def _fsync_folder(folder: Path) -> None:
    """Make a folder's entries durable, where the platform can (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # folders cannot be opened here (Windows): nothing more can be done
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    """Whether a non-empty file's last byte is a newline."""
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
