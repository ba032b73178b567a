"""The HTTP cache files: where a client keeps the answers of single-resource reads.

One requests-cache SQLite file per cache folder (WAL mode, a busy timeout, JSON entries), made
owner-only and never opened through a symbolic link; a file that is not a usable database is
moved aside with a warning and a fresh cache started. Online, a stored answer with a validator
is revalidated and one without is fetched again; offline, stored answers are served as they
are.

It never pickles (nothing read back from disk runs code), never decides what is cached (the
client asks for single-resource reads only) and never stores an answer the guard refused.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
import requests_cache

from ..errors import ConfigurationError, UnsafePathError
from ..files import open_no_follow, private_folder

SQLITE_TIMEOUT = 60.0  # seconds a process waits for another one's lock on the HTTP cache


def open_session(
    cache_root: Path | None, cache_dir: Path | None, *, offline: bool
) -> requests.Session:
    """The session of cached reads: the HTTP cache in ``cache_dir`` (its folders made
    owner-only first, ``cache_root`` included when it is new), or a plain session when there
    is no cache folder."""
    if cache_dir is None:
        return requests.Session()
    if cache_root is not None and not cache_root.exists():
        private_folder(cache_root, what="cache folder")  # owner-only, whatever the umask
    # never through a link: it would chmod and fill the link's target
    private_folder(cache_dir, what="cache folder")
    return open_http_cache(cache_dir / "http.sqlite", offline=offline)


def open_http_cache(path: str | os.PathLike[str], *, offline: bool) -> requests_cache.CachedSession:
    """The HTTP cache at ``path``: SQLite in WAL mode with a busy timeout, so that processes
    sharing it wait for each other instead of failing. A file that is not a usable SQLite
    database is moved aside (``<name>.corrupt-<time>``) with a warning naming both, and a
    fresh cache is started."""
    path = Path(path)
    for attempt in range(2):
        _private_file(path)
        try:
            _check_sqlite(path)
            return requests_cache.CachedSession(
                str(path),
                backend="sqlite",
                # stored without expiry: refresh_options() decides when to revalidate (online)
                expire_after=requests_cache.NEVER_EXPIRE,
                allowable_methods=("GET",),
                allowable_codes=(200,),
                ignored_parameters=("Authorization",),
                match_headers=False,
                serializer="json",  # never pickle: nothing read back from disk runs code
                only_if_cached=offline,
                stale_if_error=offline,  # offline, entries stored stale by older versions too
                wal=True,
                timeout=SQLITE_TIMEOUT,
                busy_timeout=int(SQLITE_TIMEOUT * 1000),
            )
        except sqlite3.OperationalError as exc:  # locked for too long, not writable...
            raise ConfigurationError(
                f"the HTTP cache {str(path)!r} cannot be opened ({exc}): another process holds "
                "it for too long, or the folder is not writable; or use cache=None."
            ) from None
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            if attempt:
                raise ConfigurationError(
                    f"the HTTP cache {str(path)!r} cannot be used ({exc}); delete it."
                ) from None
            _move_aside(path, exc)
    raise AssertionError("unreachable")  # pragma: no cover


def refresh_options(
    session: requests.Session, url: str, params: Mapping[str, Any] | None, *, offline: bool
) -> dict[str, Any]:
    """The requests-cache keywords of a cached GET: online, revalidate a stored answer that
    has a validator (a 304 keeps it) and fetch again one that has none; offline, or without a
    cache, none (stored answers are served as they are)."""
    if offline or not isinstance(session, requests_cache.CachedSession):
        return {}
    return {"refresh": True} if _has_validator(session, url, params) else {"force_refresh": True}


def forget(session: requests.Session, urls: Iterable[str]) -> None:
    """Drop the stored answers of ``urls`` (nothing without a cache)."""
    if isinstance(session, requests_cache.CachedSession):
        session.cache.delete(urls=list(urls))


def _has_validator(
    session: requests_cache.CachedSession, url: str, params: Mapping[str, Any] | None
) -> bool:
    """Whether the cached answer to this GET (if any) carries an ETag or Last-Modified."""
    try:
        prepared = session.prepare_request(requests.Request("GET", url, params=params))
        stored = session.cache.get_response(session.cache.create_key(prepared))
    except Exception:  # an unreadable entry is fetched again
        return False
    return stored is not None and any(h in stored.headers for h in ("ETag", "Last-Modified"))


def _check_sqlite(path: Path) -> None:
    """Raise sqlite3.DatabaseError if ``path`` is not a readable SQLite database."""
    con = sqlite3.connect(str(path), timeout=SQLITE_TIMEOUT)
    try:
        con.execute(f"PRAGMA busy_timeout={int(SQLITE_TIMEOUT * 1000)}")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        con.close()


def _move_aside(path: Path, exc: BaseException) -> None:
    """Rename a damaged cache file (and its WAL files) out of the way, with a warning."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process moved it first
        return
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.replace(extra, aside.with_name(aside.name + suffix))
    warnings.warn(
        f"the HTTP cache {str(path)!r} was damaged ({exc}); it was moved to {str(aside)!r} and "
        "a fresh cache started (cached single-resource reads will be fetched again).",
        UserWarning,
        stacklevel=5,
    )


def _private_file(path: Path) -> None:
    """Create (or keep) an owner-only file, never through a symbolic link; SQLite's own
    side files must not be links either (it opens them itself)."""
    fd = open_no_follow(path, os.O_CREAT | os.O_RDWR, 0o600, what="HTTP cache file")
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm", "-journal"):
        if os.path.islink(f"{path}{side}"):
            raise UnsafePathError(f"{path}{side}", "HTTP cache file")
