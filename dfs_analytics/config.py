"""Client settings: where the API is, the key, the cache, and every behaviour knob, in one object.

Settings come from arguments or from the environment (:meth:`Settings.from_env`):

=================  ========================================================================
``DFS_BASE_URL``   full base URL, e.g. ``http://127.0.0.1:8765/v0.2/`` (wins over a site id)
``DFS_SITE_ID``    the deployed site's id (a full UUID is cut to its first four groups)
``DFS_REGION``     ``eu`` (default) or ``us``
``DFS_API_KEY``    the API key (never written to disk, logs or reprs)
``DFS_CACHE``      the cache folder; ``none`` disables the cache
``DFS_DATASET``    where the loaders' dataset lives: a folder or an object-store URI
                   (default: ``dataset/`` inside the client's cache folder)
=================  ========================================================================
"""

from __future__ import annotations

import getpass
import hashlib
import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigurationError

DEFAULT = "default"  # sentinel for "the user's cache folder"
_SITE_GROUPS = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}")
REGIONS = {"eu": "customers.deepomatic.com", "us": "customers.us1.deepomatic.com"}


def site_base_url(site_id: str, region: str = "eu") -> str:
    """The base URL of a deployed site: ``https://api.{site}.customers[.us1].deepomatic.com/v0.2/``.

    ``site_id`` may be the full site UUID or its first four groups (what the host uses).
    """
    text = str(site_id).strip().lower()
    match = _SITE_GROUPS.match(text)
    if not match or (
        len(text) > len(match.group(0))
        and not re.fullmatch(r"-[0-9a-f]{12}", text[len(match.group(0)) :])
    ):
        raise ConfigurationError(
            f"site_id {site_id!r} is not a site id: expected a UUID such as "
            "'000f0174-bdf0-47b3-bb3e-0123456789ab' or its first four groups "
            "('000f0174-bdf0-47b3-bb3e'); find it under Deployments > site > Credentials."
        )
    key = {"eu": "eu", "us": "us", "us1": "us"}.get(str(region).strip().lower())
    if key is None:
        raise ConfigurationError(f"region {region!r} is unknown: use 'eu' or 'us'.")
    return f"https://api.{match.group(0)}.{REGIONS[key]}/v0.2/"


def normalize_base_url(url: str) -> str:
    """Lower-case ``v0.2``, add it when the URL has no version segment, end with ``/``."""
    text = str(url).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"base_url {url!r} is not an http(s) URL; e.g. 'https://api.<site>.customers."
            "deepomatic.com/v0.2/' or the simulator's 'http://127.0.0.1:8765/v0.2/'."
        )
    path = re.sub(r"/v0\.2(/|$)", "/v0.2/", parts.path, flags=re.IGNORECASE)
    if "/v0.2/" not in path:
        path = path.rstrip("/") + "/v0.2/"
    path = path[: path.index("/v0.2/") + len("/v0.2/")]
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """Every behaviour knob of a :class:`~dfs_analytics.Client`; its repr masks the key.

    ``cache`` is a folder (``None``: no cache at all). Inside it, each (user, base URL, key)
    gets its own sub-folder holding the HTTP cache (``http.sqlite``) and the loaders'
    snapshots, all created readable by the owner only.
    """

    base_url: str
    api_key: str | None = None  # masked by __repr__
    cache: Path | None = None
    offline: bool = False
    max_workers: int = 8
    timeout: float = 30.0
    retries: int = 5
    backoff_factor: float = 0.3
    page_size: int = 1000
    progress: bool = True
    allow_insecure_http: bool = False
    dataset: str | None = None  # folder or URI of the dataset; None: inside the cache folder

    def __post_init__(self) -> None:
        self.base_url = normalize_base_url(self.base_url)
        host = urllib.parse.urlsplit(self.base_url).hostname
        if (
            self.base_url.startswith("http://")
            and not is_loopback(host)
            and not self.allow_insecure_http
        ):
            raise ConfigurationError(
                f"refusing plain http:// to {host}: the API key would travel unencrypted. Use "
                "https://, or pass allow_insecure_http=True if this network is trusted."
            )
        if self.api_key is not None:
            self.api_key = str(self.api_key).strip() or None
            if self.api_key and any(c.isspace() for c in self.api_key):
                raise ConfigurationError("api_key contains whitespace; paste the key alone.")
        for name in ("max_workers", "page_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, got {self.timeout!r}."
            )
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(
                f"retries must be a non-negative integer, got {self.retries!r}."
            )
        self.page_size = min(self.page_size, 1000)
        if self.dataset is not None:
            text = str(self.dataset).strip()
            if not text:
                raise ConfigurationError("dataset must be a folder path or a URI, got ''.")
            self.dataset = text if "://" in text else str(Path(text).expanduser())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "api_key"
        )
        key = "'***'" if self.api_key else "None"
        return f"Settings({shown}, api_key={key})"

    @property
    def cache_dir(self) -> Path | None:
        """This (user, base URL, key)'s own cache folder, or None without a cache."""
        if self.cache is None:
            return None
        key_hash = hashlib.sha256((self.api_key or "").encode()).hexdigest()
        digest = hashlib.sha256(f"{_user()}\n{self.base_url}\n{key_hash}".encode()).hexdigest()[:24]
        return Path(self.cache) / digest

    @classmethod
    def resolve(
        cls,
        base_url: str | None = None,
        *,
        site_id: str | None = None,
        region: str = "eu",
        cache: Any = DEFAULT,
        **kwargs: Any,
    ) -> Settings:
        """Build settings from a base URL or a site id (+ region); ``cache`` may be
        ``"default"`` (the user's cache folder), a path, or ``None`` (no cache)."""
        if base_url is None and site_id is None:
            raise ConfigurationError(
                "say where the API is: Client(base_url=...) or "
                "Client(site_id=..., region='eu'|'us'), "
                "or set DFS_BASE_URL or DFS_SITE_ID."
            )
        url = base_url if base_url is not None else site_base_url(site_id, region)  # type: ignore[arg-type]
        if cache == DEFAULT:
            cache_path: Path | None = Path(platformdirs.user_cache_dir("dfs-analytics"))
        elif cache is None or (
            isinstance(cache, str) and cache.strip().lower() in ("", "none", "off")
        ):
            cache_path = None
        else:
            cache_path = Path(cache).expanduser()
        return cls(base_url=url, cache=cache_path, **kwargs)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``DFS_*`` variables (see the module docstring); ``overrides`` win."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if env.get("DFS_BASE_URL"):
            kwargs["base_url"] = env["DFS_BASE_URL"]
        elif env.get("DFS_SITE_ID"):
            kwargs["site_id"] = env["DFS_SITE_ID"]
            kwargs["region"] = env.get("DFS_REGION") or "eu"
        if env.get("DFS_API_KEY"):
            kwargs["api_key"] = env["DFS_API_KEY"]
        if "DFS_CACHE" in env:
            kwargs["cache"] = env["DFS_CACHE"]
        if env.get("DFS_DATASET"):
            kwargs["dataset"] = env["DFS_DATASET"]
        kwargs.update(overrides)
        return cls.resolve(**kwargs)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "user"
