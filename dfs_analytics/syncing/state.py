"""A client's sync state, and the one place that opens a client's dataset.

Per client (kept in a registry keyed by the client, never on the client object): the work
orders it wrote to (also logged beside its cache, so another process sees them), the probe
ETags, its dataset's writer and reader, and the lock that runs one sync at a time.
:func:`client_dataset`, :func:`writer`, :func:`existing_dataset` and :func:`open_dataset`
are how the rest of the package (and the loaders) reach a dataset, with the client's storage
options (its object-store credentials, revealed only to the store); :func:`sync_lock` is the
lock a scheduled sync holds so that two never run at once. This module never speaks HTTP and
never decides what to sync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import platformdirs

from ..client import Client
from ..dataset import SYNCED_AT, Dataset, NotADatasetError, Writer
from ..dataset.location import local_path, table_exists
from ..errors import ConfigurationError
from ..files import file_lock, lock_beside, private_folder
from ..rules import is_missing


@dataclass
class ClientState:
    """What the sync keeps for one client: writes made through it, probe ETags, its open
    dataset, and the lock that runs one of its syncs at a time."""

    writes: dict[str, float] = field(default_factory=dict)  # work order id -> time of write
    etags: dict[str, str] = field(default_factory=dict)  # query key -> probe ETag
    log: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: Writer | None = None
    reader: Dataset | None = None
    # one sync of a client at a time (loads from several threads share its open tables)
    syncing: threading.RLock = field(default_factory=threading.RLock)

    def on_write(self, work_order_id: str) -> None:
        """Remember (and log beside the cache) that the client wrote to ``work_order_id``."""
        when = time.time()
        with self.lock:
            self.writes[work_order_id] = when
            self.etags.clear()
            if self.log is not None:
                fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(f"{when:.6f} {work_order_id}\n")

    def written(self) -> dict[str, float]:
        """A copy of the writes: work order id -> time of the last write."""
        with self.lock:
            return dict(self.writes)

    def written_since_stored(self, index: pd.DataFrame) -> set[str]:
        """The work orders of ``index`` (rows of :meth:`Dataset.index`) written to since
        they were stored (or stored at an unknown time): what must be read again."""
        writes = self.written()
        if not writes:
            return set()
        index = index[index["work_order_id"].isin(set(writes))]
        return {
            i
            for i, at in zip(
                index["work_order_id"].tolist(), index[SYNCED_AT].tolist(), strict=True
            )
            if is_missing(at) or writes[i] >= at.timestamp()
        }


_STATES: weakref.WeakKeyDictionary[Client, ClientState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def client_state(client: Client) -> ClientState:
    """The client's sync state, created (with the writes its cache's log holds, and a hook
    on the client's writes) the first time it is asked for."""
    with _STATES_LOCK:
        state = _STATES.get(client)
        if state is None:
            state = ClientState()
            if client.cache_dir is not None:
                state.log = client.cache_dir / "writes.log"
                if state.log.exists():
                    state.writes = _read_log(state.log)
            client.on_write(state.on_write)
            _STATES[client] = state
        return state


def _read_log(log: Path) -> dict[str, float]:
    """The writes a log holds: work order id -> time of its last write (a damaged line is
    skipped)."""
    writes: dict[str, float] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        when, _, wo_id = line.partition(" ")
        try:
            writes[wo_id] = max(writes.get(wo_id, 0.0), float(when))
        except ValueError:
            continue
    return writes


def written(client: Client) -> dict[str, float]:
    """The work orders this client (or another process sharing its cache) wrote to since
    they were last read, with the time of the write (what the next sync reads again)."""
    return client_state(client).written()


def written_since_stored(client: Client, index: pd.DataFrame) -> set[str]:
    """The work orders of ``index`` (rows of :meth:`Dataset.index`) this client wrote to
    since they were stored: what a sync reads again, and what an offline read cannot trust."""
    return client_state(client).written_since_stored(index)


def writer(client: Client) -> Writer:
    """The client's dataset, opened for writing (created when new); one per client, kept, so
    its tables stay open between loads, and shared with the other clients of this process
    that write the same dataset (see :func:`_shared_writer`). A dataset removed since it was
    opened is created again."""
    state = client_state(client)
    with state.lock:
        location = client.dataset_location
        own = (
            state.writer if state.writer is not None and state.writer.location == location else None
        )
        state.writer = _shared_writer(client, location, own)
        return state.writer


#: writers kept open in this process for the clients to come, the most recently used last
SHARED_WRITERS = 4
_SHARED: OrderedDict[tuple[str, str, bool, str], Writer] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def _shared_key(client: Client, location: str) -> tuple[str, str, bool, str]:
    """What makes two clients' writers interchangeable: the dataset, the site, privacy and
    the storage options (as a digest: the key holds no secret)."""
    options = json.dumps(sorted((client.settings.dataset_options() or {}).items()))
    digest = hashlib.sha256(options.encode()).hexdigest()
    return (location, client.base_url, client.dataset_is_private, digest)


def _shared_writer(client: Client, location: str, own: Writer | None = None) -> Writer:
    """The writer of the dataset at ``location`` for ``client``: ``own`` (the one the client
    holds already), else the one an earlier client of this process opened with the same key
    (:func:`_shared_key`), checked again, so a new client starts with its tables open and
    its latest frames decoded (a notebook re-creates its client often); else a new one. A
    dataset that disappeared meanwhile is created again."""
    key = _shared_key(client, location)
    with _SHARED_LOCK:
        w = own or _SHARED.get(key)
    try:
        if w is not None:
            w.refresh()
    except NotADatasetError:
        w = None
    if w is None:
        w = _open_writer(client, location)
    with _SHARED_LOCK:
        _SHARED[key] = w
        _SHARED.move_to_end(key)
        while len(_SHARED) > SHARED_WRITERS:
            _SHARED.popitem(last=False)
    return w


def client_dataset(client: Client) -> Dataset:
    """The client's dataset, for reading (created empty when new and writable)."""
    state = client_state(client)
    with state.lock:
        if state.writer is not None and state.writer.location == client.dataset_location:
            return state.writer.dataset
        if state.reader is None or state.reader.location != client.dataset_location:
            location = client.dataset_location
            try:
                state.reader = Dataset(location, storage_options=client.settings.dataset_options())
            except NotADatasetError:
                if client.settings.offline:
                    raise
                state.writer = _shared_writer(client, location)
                return state.writer.dataset
        return state.reader


def open_dataset(
    source: Client | str | os.PathLike[str] | None = None,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> Dataset:
    """Open a dataset for reading: a :class:`~dfs_analytics.Client` (its dataset) or a path /
    object-store URI (a colleague's shared dataset: no API key needed, nothing written).

    Raises NotADatasetError when the path holds no dataset, DatasetCorruptError when its
    files are damaged, DatasetLocationError (at once, before any request) for a scheme
    deltalake cannot open or an object store without credentials (``storage_options`` or the
    provider's environment variables).
    """
    if isinstance(source, Client):
        return client_dataset(source)  # the client's own (created empty when new and writable)
    if source is None:
        raise ConfigurationError("open_dataset(client_or_path): give a Client or a path.")
    if isinstance(source, (os.PathLike, str)):
        return Dataset(os.fspath(source), storage_options=storage_options)
    raise ConfigurationError(
        f"open_dataset needs a Client, a path or a URI, got {type(source).__name__}."
    )


def existing_dataset(client: Client) -> Dataset | None:
    """The client's dataset if one exists at its location, for reading; None when nothing was
    ever synced there (nothing is created: what offline and ``as_of`` reads need). The one
    this client opened before is kept (its tables open, its latest frames decoded) while
    the dataset is there."""
    state = client_state(client)
    location = client.dataset_location
    options = client.settings.dataset_options()
    with state.lock:
        kept = (
            state.writer.dataset
            if state.writer is not None and state.writer.location == location
            else state.reader
            if state.reader is not None and state.reader.location == location
            else None
        )
    if kept is not None and table_exists(location, "syncs", options):
        return kept
    try:
        ds = Dataset(location, storage_options=options)
    except NotADatasetError:
        return None
    with state.lock:
        if state.writer is None or state.writer.location != location:
            state.reader = ds
    return ds


def _open_writer(client: Client, location: str) -> Writer:
    """The client's dataset at ``location`` opened for writing, with its storage options
    (``Client(storage_options=...)`` / ``DFS_STORAGE_OPTIONS``; secrets revealed only here)."""
    return Writer(
        location,
        client.base_url,
        private=client.dataset_is_private,
        storage_options=client.settings.dataset_options(),
    )


def sync_lock_path(location: str) -> Path:
    """The lock file :func:`sync_lock` takes for the dataset at ``location``: beside a local
    dataset folder (``<folder>.lock``, so every user and process of this file system sees
    it), and for an object store in this user's cache folder (``locks/``), which excludes only
    the syncs of this user on this machine."""
    local = local_path(location)
    if local is not None:
        folder = local.expanduser().absolute()
        folder.parent.mkdir(parents=True, exist_ok=True)
        return lock_beside(folder)
    digest = hashlib.sha256(location.encode()).hexdigest()[:24]
    locks = Path(platformdirs.user_cache_dir("dfs-analytics")) / "locks"
    return private_folder(locks, what="the sync lock folder") / f"{digest}.lock"


@contextlib.contextmanager
def sync_lock(client: Client, *, timeout: float | None = 0.0) -> Iterator[None]:
    """Hold, for the ``with`` block, the lock that says "a sync of the client's dataset is
    running" (:func:`sync_lock_path`): what ``dfs-analytics sync`` takes so that a scheduled
    sync never runs on top of another. ``timeout`` is how long to wait for it in seconds
    (0: not at all; None: as long as it takes); past it, :class:`~dfs_analytics.BusyError`
    (nothing was done). :func:`dfs_analytics.sync` itself does not take it: syncs at once are
    safe (their commits take turns), only wasteful."""
    location = client.dataset_location
    with file_lock(
        sync_lock_path(location),
        wait=timeout != 0,
        timeout=timeout,
        what=f"the dataset {location} (another sync is running)",
    ):
        yield
