"""Who may write a dataset, and when: the commit lock (one committer at a time per dataset,
across threads and, on local folders, processes), the refusal of an object store whose
commits are not conditional writes (:func:`check_conditional_writes`), the umask that keeps
a private dataset owner-only, the check that a local dataset folder is writable before
anything is written, and the translation of "cannot write here" errors into
:class:`ReadOnlyDatasetError`.

It never writes table data and never reads rows.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from deltalake.exceptions import DeltaError

from ..errors import DatasetCorruptError, DatasetLocationError, ReadOnlyDatasetError
from ..files import file_lock, open_no_follow
from .arrow import TABLES
from .location import OBJECT_STORES, local_path, parse_location, short_error

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def commit_lock(location: str) -> Iterator[None]:
    """One committer at a time per dataset: a thread lock, and on local paths a file lock
    shared with other processes (object stores rely on Delta's own commit protocol)."""
    local = local_path(location)
    key = location if local is None else os.path.abspath(local)
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if local is None:
            yield
            return
        # never through a symbolic link (UnsafePathError): a planted link would make the
        # toolkit create or lock another file
        with file_lock(local / "_dfs.lock", what=f"the dataset {location}"):
            yield


#: the storage option (any case) that says "this process is the only writer of the dataset"
SINGLE_WRITER_OPTION = "dfs_single_writer"
_TRUE = ("1", "true", "yes", "on")


def split_options(
    storage_options: Mapping[str, str] | None,
) -> tuple[dict[str, str] | None, bool]:
    """``(deltalake's storage options, single_writer)``: the options without
    :data:`SINGLE_WRITER_OPTION`, and whether it was given as true."""
    if not storage_options:
        return None, False
    options: dict[str, str] = {}
    single = False
    for key, value in storage_options.items():
        if str(key).lower() == SINGLE_WRITER_OPTION:
            single = str(value).strip().lower() in _TRUE
        else:
            options[key] = value
    return options or None, single


def _option(storage_options: Mapping[str, str] | None, *names: str) -> str | None:
    """A storage option (any case, with or without the ``aws_`` prefix), else the matching
    environment variable (upper case), else None."""
    wanted = {n.lower() for n in names}
    for key, value in (storage_options or {}).items():
        if str(key).lower() in wanted:
            return str(value)
    for name in names:
        if name.upper() in os.environ:
            return os.environ[name.upper()]
    return None


def check_conditional_writes(
    location: str, storage_options: Mapping[str, str] | None, single_writer: bool
) -> None:
    """Refuse to write an S3 dataset whose Delta commits would not be conditional writes,
    unless ``single_writer`` says no other process ever writes it.

    deltalake 1.x commits a table version by creating its log file with a conditional put
    (``If-None-Match: *``): of two writers racing for a version, the store refuses one, which
    then retries or fails, and the dataset's versions stay distinct. S3 options can turn that
    off: ``AWS_S3_ALLOW_UNSAFE_RENAME=true`` (copy then delete: the last writer silently
    wins) or ``aws_conditional_put=disabled``. With them two syncs at once can lose rows or
    make the dataset unreadable, so they are refused (:class:`DatasetLocationError`) before
    anything is written. The other object stores and local folders always commit
    atomically."""
    uri = parse_location(location)[0]
    if uri is None or single_writer or OBJECT_STORES[uri.split("://", 1)[0].lower()] != "aws":
        return
    unsafe = _option(storage_options, "aws_s3_allow_unsafe_rename", "allow_unsafe_rename")
    conditional = _option(storage_options, "aws_conditional_put", "conditional_put")
    if (unsafe or "").strip().lower() in _TRUE or (conditional or "").lower() == "disabled":
        raise DatasetLocationError(
            f"{uri}: the storage options turn off conditional writes "
            "(AWS_S3_ALLOW_UNSAFE_RENAME=true or aws_conditional_put=disabled), so two "
            "processes writing the dataset at once could overwrite each other's commits. "
            "Remove that option if the store supports conditional writes (AWS S3, MinIO, "
            "SeaweedFS, R2 do); otherwise make sure only one process ever writes the "
            f"dataset and say so with storage_options={{'{SINGLE_WRITER_OPTION}': 'true'}} "
            "(or single_writer=True). Nothing was written."
        )


_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    """Files and folders created meanwhile are owner-only (``mask=0o077``), whatever the
    process's umask; None leaves it alone."""
    if mask is None:
        yield
        return
    with _UMASK_LOCK:
        old = os.umask(mask | 0o022)
        try:
            yield
        finally:
            os.umask(old)


def owner_only(private: bool) -> contextlib.AbstractContextManager[None]:
    """Files and folders created meanwhile are owner-only when ``private``, else left to the
    process's umask."""
    return _umask(0o077 if private else None)


_READ_ONLY = re.compile(r"os error (13|30)\b|Permission denied|Read-only file system")


@contextlib.contextmanager
def writing(location: str) -> Iterator[None]:
    """Write errors that mean "this process cannot write here" as ReadOnlyDatasetError."""
    try:
        yield
    except PermissionError as exc:
        raise ReadOnlyDatasetError(
            f"cannot write the dataset at {location} ({exc}); sync into a writable "
            "path (Client(dataset=...) or DFS_DATASET)."
        ) from None
    except OSError as exc:
        if getattr(exc, "errno", None) in (13, 30):  # EACCES, EROFS
            raise ReadOnlyDatasetError(
                f"cannot write the dataset at {location} ({exc.strerror})."
            ) from None
        raise
    except DeltaError as exc:  # the Rust writer reports I/O errors in its own type
        if _READ_ONLY.search(str(exc)):
            raise ReadOnlyDatasetError(
                f"cannot write the dataset at {location} ({short_error(exc)}); sync into a "
                "writable path (Client(dataset=...) or DFS_DATASET)."
            ) from None
        raise


def check_writable(local: Path) -> None:
    """Refuse, before anything is written, a dataset folder this process cannot write: a
    real write at its root (permissions, read-only mounts, full disks all show there), then
    every folder of its tables (a read-only table folder would otherwise fail in the middle
    of a commit, inside the Delta writer)."""
    probe = local / f".dfs-write-probe-{secrets.token_hex(8)}"
    try:  # O_EXCL and never through a link: a planted file or link is not touched
        os.close(open_no_follow(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, what="write probe"))
        os.unlink(probe)
    except FileExistsError:
        raise DatasetCorruptError(f"{probe} exists; remove it.") from None
    except OSError as exc:
        raise ReadOnlyDatasetError(
            f"the dataset at {local} is read-only here ({exc.strerror}): read it with "
            "dfs.open_dataset(path), or sync into a writable path "
            "(Client(dataset=...) or DFS_DATASET)."
        ) from None
    for table in (*TABLES, "syncs"):
        root = local / table
        if not root.is_dir() or root.is_symlink():
            continue
        for folder, subfolders, _ in os.walk(root):
            subfolders[:] = [d for d in subfolders if not os.path.islink(os.path.join(folder, d))]
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ReadOnlyDatasetError(
                    f"the dataset at {local} is read-only here: {folder} cannot be written. "
                    "Read it with dfs.open_dataset(path), or sync into a writable path "
                    "(Client(dataset=...) or DFS_DATASET)."
                )
