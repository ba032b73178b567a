"""Where a dataset lives and what it is of: local folders, ``file:`` URIs and object-store
URIs (read once, the same way for the lock and the tables), the credentials check that runs
before any request, the site identity a dataset is bound to, and opening one Delta table there
with typed errors.

It never reads rows, never writes, and never holds a secret (credentials are only looked for).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from ..errors import DatasetCorruptError, DatasetLocationError

FORMAT = "dfs-analytics"  # the dataset description's "format"

# object stores deltalake opens, by scheme -> provider (whose credentials they need)
OBJECT_STORES = {
    "s3": "aws",
    "s3a": "aws",
    "gs": "gcp",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "azure": "azure",
    "adl": "azure",
}
_SUPPORTED = "a local path, a file:///absolute/path URI, or an object store: " + ", ".join(
    f"{s}://" for s in OBJECT_STORES
)


def parse_location(location: str) -> tuple[str | None, Path | None]:
    """``(object-store URI, None)`` or ``(None, local folder)``: the one reading of a dataset
    location, so that its lock and its tables are always in the same place. ``file:`` URIs
    (``file:/abs``, ``file:///abs``, ``file://localhost/abs``) are local folders; any other
    ``scheme://`` than an object store raises :class:`DatasetLocationError`."""
    if location[:5].lower() == "file:":
        parts = urllib.parse.urlsplit(location)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise DatasetLocationError(
                f"{location!r}: a file: URI must name an absolute path on this machine "
                "(file:///absolute/path); give the folder's path instead."
            )
        return None, Path(path)
    if "://" in location:
        scheme = location.split("://", 1)[0].lower()
        if scheme not in OBJECT_STORES:
            raise DatasetLocationError(
                f"{scheme}:// is not a dataset location deltalake can open ({location!r}); "
                f"use {_SUPPORTED}. Nothing was read or written."
            )
        return location, None
    return None, Path(location)


def is_uri(location: str) -> bool:
    """Whether ``location`` is an object-store URI (not a local folder)."""
    return parse_location(location)[0] is not None


def local_path(location: str) -> Path | None:
    """The local folder ``location`` names (None: an object store)."""
    return parse_location(location)[1]


def table_uri(location: str, table: str) -> str:
    """The folder or URI of one table of the dataset at ``location``."""
    if is_uri(location):
        return location.rstrip("/") + "/" + table
    local = local_path(location)
    assert local is not None
    return str(local / table)


# what shows that credentials were given, per provider: storage options (any key naming a
# secret, a token, a profile...), environment variables, and the providers' own files
_CREDENTIAL_OPTION = re.compile(
    r"access_key|secret|token|sas|credential|service_account|profile|skip_signature|"
    r"metadata|msi|azure_cli|use_emulator|account_key|bearer|client_id|federated",
    re.IGNORECASE,
)
_CREDENTIAL_ENV = {
    "aws": (
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_SKIP_SIGNATURE",
    ),
    "gcp": (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_PATH",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GCE_METADATA_HOST",
    ),
    "azure": (
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_USE_AZURE_CLI",
        "AZURE_STORAGE_USE_EMULATOR",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ),
}
_CREDENTIAL_FILES = {
    "aws": ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    "gcp": (None, "~/.config/gcloud/application_default_credentials.json"),
    "azure": (None, None),
}
_HOW = {
    "aws": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass "
    "storage_options={'aws_access_key_id': ..., 'aws_secret_access_key': ...}; an EC2 "
    "instance role needs storage_options={'aws_metadata_endpoint': 'http://169.254.169.254'}",
    "gcp": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or pass "
    "storage_options={'google_service_account': '/path/key.json'}; a GCE machine's own "
    "account needs GCE_METADATA_HOST",
    "azure": "set AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN, or AZURE_CLIENT_ID, "
    "AZURE_CLIENT_SECRET and AZURE_TENANT_ID), or pass storage_options={'azure_storage_"
    "account_key': ...}",
}


def check_credentials(location: str, storage_options: Mapping[str, str] | None = None) -> None:
    """Raise :class:`DatasetLocationError` at once, before any request, when ``location`` is an
    object store and neither ``storage_options``, the environment nor the provider's
    credentials file gives credentials (the stores' own credential chains would otherwise
    probe metadata services for a minute, then fail with an untyped error). Local paths
    pass."""
    uri = parse_location(location)[0]
    if uri is None:
        return
    provider = OBJECT_STORES[uri.split("://", 1)[0].lower()]
    if any(_CREDENTIAL_OPTION.search(str(k)) for k in (storage_options or {})):
        return
    if any(os.environ.get(name) for name in _CREDENTIAL_ENV[provider]):
        return
    env, default = _CREDENTIAL_FILES[provider]
    for candidate in (os.environ.get(env) if env else None, default):
        if candidate and Path(candidate).expanduser().is_file():
            return
    raise DatasetLocationError(
        f"no credentials for {uri}: {_HOW[provider]}. Nothing was read or written."
    )


@dataclass(frozen=True)
class Identity:
    """What a dataset is of: its site (base URL, no credentials) and its schema version."""

    site: str
    schema_version: int

    def description(self) -> str:
        """The JSON text stored as the version table's description."""
        return json.dumps(
            {"format": FORMAT, "site": self.site, "schema_version": self.schema_version},
            sort_keys=True,
        )

    @classmethod
    def from_description(cls, text: str) -> Identity:
        """The identity a description holds; ValueError (or KeyError, TypeError) when it is
        not a dfs-analytics dataset's."""
        meta = json.loads(text)
        if meta.get("format") != FORMAT:
            raise ValueError("not a dfs-analytics dataset description")
        return cls(str(meta["site"]), int(meta["schema_version"]))


def site_of(base_url: str) -> str:
    """A base URL without credentials (what a dataset is bound to)."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def short_error(exc: BaseException) -> str:
    """An exception's text on one line, without terminal colours, at most ~300 characters
    (what the Delta and Arrow errors say, fit for a message)."""
    text = " ".join(_ANSI.sub("", str(exc)).replace("\u21b3", ":").split())
    return text[:300] + ("..." if len(text) > 300 else "")


def table_exists(
    location: str, table: str, storage_options: Mapping[str, str] | None = None
) -> bool:
    """Whether the dataset at ``location`` holds the Delta table ``table``. An object store
    that refuses or cannot be reached is a :class:`DatasetLocationError`."""
    local = local_path(location)
    if local is not None:  # its first commit, or a checkpoint: one stat where deltalake lists
        # the log (a negative answer asks deltalake)
        first = _commit_file(local, table, 0)
        if first.exists() or (first.parent / "_last_checkpoint").exists():
            return True
    uri = table_uri(location, table)
    try:
        return DeltaTable.is_deltatable(uri, dict(storage_options) if storage_options else None)
    except (DeltaError, OSError, ValueError) as exc:
        if is_uri(location):  # the store refused or could not be reached
            raise DatasetLocationError(
                f"cannot open {uri}: {short_error(exc)}. Check the URI, the "
                "credentials (storage_options or the environment) and the network."
            ) from None
        return False


def update_table(dt: DeltaTable, location: str, table: str) -> None:
    """Bring ``dt``, a kept object of the dataset's table ``table``, to the latest version of
    its log. On a local dataset only when the log holds the commit file of the version after
    ``dt``'s (one ``stat``, where ``update_incremental`` lists and reads the log: about 1 ms,
    and readers ask before every read); on object stores, always."""
    local = local_path(location)
    if local is not None and not _commit_file(local, table, dt.version() + 1).exists():
        return
    dt.update_incremental()


def last_commit(location: str, table: str, known: int | None = None) -> int | None:
    """The version of the last commit in the log of the table ``table`` of a local dataset
    (-1: no commit), found by looking for the commit files after ``known`` (a version known
    to be committed), or by listing the log when ``known`` is None. None for a dataset on an
    object store (ask deltalake)."""
    local = local_path(location)
    if local is None:
        return None
    if known is None:
        try:
            names = [entry.name for entry in os.scandir(_commit_file(local, table, 0).parent)]
        except FileNotFoundError:
            return -1
        numbers = [
            int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()
        ]
        known = max(numbers, default=-1)
    while _commit_file(local, table, known + 1).exists():
        known += 1
    return known


def _commit_file(local: Path, table: str, version: int) -> Path:
    """The file of commit ``version`` in the log of a local dataset's table."""
    return local / table / "_delta_log" / f"{version:020d}.json"


def open_table(
    location: str,
    table: str,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> DeltaTable:
    """The Delta table ``table`` of the dataset at ``location`` (at ``version``; None: the
    latest). A missing or unreadable table is a :class:`DatasetCorruptError`."""
    uri = table_uri(location, table)
    try:
        return DeltaTable(
            uri, version=version, storage_options=dict(storage_options) if storage_options else None
        )
    except TableNotFoundError as exc:
        raise DatasetCorruptError(
            f"{uri}: the table is missing or its log is damaged ({exc}). "
            "Restore it, or sync into a new dataset path."
        ) from None
    except (DeltaError, OSError, ValueError) as exc:
        raise DatasetCorruptError(
            f"{uri}: cannot read this Delta table ({short_error(exc)}). A file is "
            "damaged or missing: restore it, or sync into a new dataset path."
        ) from None
