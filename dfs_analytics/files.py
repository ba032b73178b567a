"""Files the toolkit writes for itself: never through a symbolic link, and locks shared
between processes.

:func:`open_no_follow` opens (or creates, owner-only) a file refusing a symbolic link as its
last component; :func:`private_folder` makes or checks a folder the same way; :func:`file_lock`
holds an OS lock on a lock file for a ``with`` block, waiting for it or refusing at once.
A link raises :class:`~dfs_analytics.UnsafePathError`, a lock held elsewhere (when not
waiting) :class:`~dfs_analytics.BusyError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import BusyError, UnsafePathError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_no_follow(path: str | Path, flags: int, mode: int = 0o600, *, what: str = "file") -> int:
    """``os.open(path, flags, mode)`` that never follows a symbolic link at ``path`` itself;
    returns the descriptor. A link, or something that is not a regular file, raises
    :class:`UnsafePathError` (``what`` names the file in its message)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (not _NOFOLLOW and os.path.islink(path)):
            raise UnsafePathError(path, what) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(path, what)
        if not _NOFOLLOW and os.path.islink(path):  # platforms without O_NOFOLLOW
            raise UnsafePathError(path, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_folder(path: str | Path, *, what: str = "folder", mode: int | None = 0o700) -> Path:
    """Make ``path`` (and its missing parents) a folder, and give it ``mode`` (None: leave
    its mode alone); returns it. A symbolic link at ``path``, or a file, raises
    :class:`UnsafePathError`, and nothing is changed: no link is followed to chmod or fill
    its target."""
    folder = Path(path)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700 if mode is not None else 0o777)
        info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(folder, what)
    if mode is not None and stat.S_IMODE(info.st_mode) != mode:
        os.chmod(folder, mode)  # a folder, checked above: not a link's target
    return folder


def lock_beside(path: str | Path) -> Path:
    """The lock file of ``path``: ``<path>.lock`` in the same folder."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def file_lock(
    path: str | Path, *, wait: bool = True, timeout: float | None = None, what: str = "this file"
) -> Iterator[None]:
    """Hold an exclusive OS lock on the file ``path`` (created 0600, never through a link)
    for the ``with`` block. The lock is per open file, so it excludes other processes, other
    threads and other objects of this process alike, and it is released if the process dies.

    ``wait=False`` raises :class:`BusyError` at once when the lock is held; ``timeout``
    (seconds, with ``wait=True``) raises it after that long. Where the platform has no
    ``fcntl`` (Windows), the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = open_no_follow(path, os.O_RDWR | os.O_CREAT, 0o600, what="lock file")
    try:
        if wait and timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + (timeout if wait and timeout else 0.0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise BusyError(path, what) from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
