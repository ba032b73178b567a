"""Client settings: where the API is, the key, the cache, and every behaviour knob, in one object.

Settings come from arguments or from the ``DFS_*`` environment (:meth:`Settings.from_env`;
the variables are listed in docs/architecture.md). This module is the one home of what the
environment says (:func:`check_environment`, :func:`simulator_requested`,
:func:`require_site`) and of the checks on URLs (:func:`normalize_base_url`,
:func:`is_loopback`, :func:`is_loopback_url`).

It never speaks HTTP, never starts a simulator, and never writes, logs or shows the API key
or a secret storage option (:func:`check_storage_options`).
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigurationError

DEFAULT = "default"  # sentinel for "the user's cache folder"
_SITE_GROUPS = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}")
REGIONS = {"eu": "customers.deepomatic.com", "us": "customers.us1.deepomatic.com"}

#: What a title gets when the data behind it comes from the local simulator.
SIMULATOR_NOTE = "(simulator data)"


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


class Secret:
    """A secret string (the API key) whose ``str`` and ``repr`` are masked.

    ``secret == "text"`` compares the value (in constant time); :meth:`reveal` returns it.
    It is not a ``str``, so it cannot end up in a message, a log line or
    ``dataclasses.asdict`` output by accident (``json.dumps`` refuses it). ``copy`` and
    ``deepcopy`` keep it; ``pickle`` drops it (an empty secret comes back).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise ConfigurationError(f"api_key must be a string, got a {type(value).__name__}.")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the ``Authorization`` header."""
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:  # dataclasses.asdict keeps it
        return Secret(self._value)

    def __copy__(self) -> Secret:
        return Secret(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling drops the key: multiprocessing, joblib or a pickle file never carry it
        (unpickled, it is an empty secret; give the key to the other process yourself)."""
        return (Secret, ("",))


def mask_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (``http://user:***@host/``)."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.password is None and "@" not in parts.netloc:
        return str(url)
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = (f"{user}:***@" if parts.password is not None else f"{user}@") + host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def normalize_base_url(url: str) -> str:
    """Lower-case ``v0.2``, add it when the URL has no version segment, end with ``/``.

    Raises ConfigurationError (with any password in the URL masked) for anything but an
    http(s) URL with a host and a valid port.
    """
    text = str(url).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url {mask_url(text)!r} is not an http(s) URL; e.g. 'https://api.<site>."
            "customers.deepomatic.com/v0.2/' or the simulator's 'http://127.0.0.1:8765/v0.2/'."
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(
            f"base_url {mask_url(text)!r} has a bad port: use a number from 1 to 65535, "
            "e.g. 'http://127.0.0.1:8765/v0.2/'."
        )
    path = re.sub(r"/v0\.2(/|$)", "/v0.2/", parts.path, flags=re.IGNORECASE)
    if "/v0.2/" not in path:
        path = path.rstrip("/") + "/v0.2/"
    path = path[: path.index("/v0.2/") + len("/v0.2/")]
    user, at, host = parts.netloc.rpartition("@")
    netloc = user + at + host.lower()  # a password keeps its case
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name, or an IP address with or without brackets) is this machine:
    ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``). Returns False for None,
    ``""`` and every other host, names under ``.localhost`` included: not every resolver keeps
    them on this machine, and a key sent in cleartext must not leave it."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL whose host is this machine (:func:`is_loopback`).

    Returns False for any other scheme, a URL without a host, or text that is not a URL.
    """
    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and is_loopback(host)


#: Parts of a storage option's name that make its value a secret (any case): masked like the
#: API key wherever settings are shown.
SECRET_OPTION_PARTS = ("SECRET", "TOKEN", "PASSWORD", "KEY")


def is_secret_option(name: str) -> bool:
    """Whether the storage option ``name`` holds a secret (its name contains SECRET, TOKEN,
    PASSWORD or KEY, in any case): its value is kept as a :class:`Secret`."""
    upper = str(name).upper()
    return any(part in upper for part in SECRET_OPTION_PARTS)


def check_storage_options(options: Any) -> dict[str, str | Secret] | None:
    """The dataset's object-store options, checked: names and values as text (a number or a
    boolean becomes ``"1"`` / ``"true"``), secret values (:func:`is_secret_option`) as
    :class:`Secret`; None when there are none. A JSON object in text (``DFS_STORAGE_OPTIONS``)
    is read too. Raises ConfigurationError, never quoting a value, for anything else."""
    if options is None:
        return None
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except ValueError as exc:  # the message never quotes the text: it may hold secrets
            raise ConfigurationError(
                "storage_options (DFS_STORAGE_OPTIONS) is not a JSON object (error at "
                f"character {getattr(exc, 'pos', '?')}); e.g. "
                '\'{"aws_region": "eu-west-1", "aws_endpoint_url": "https://..."}\'.'
            ) from None
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            "storage_options must be a mapping of option names to text, e.g. "
            f"{{'aws_region': 'eu-west-1'}}, got a {type(options).__name__}."
        )
    checked: dict[str, str | Secret] = {}
    for name, value in options.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(
                f"storage_options: option names are non-empty text, got {name!r}."
            )
        if isinstance(value, Secret):
            value = value.reveal()
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigurationError(
                f"storage_options[{name!r}] must be text, got a {type(value).__name__}."
            )
        checked[name.strip()] = Secret(value) if is_secret_option(name) else value
    return checked or None


def reveal_options(options: Mapping[str, str | Secret] | None) -> dict[str, str] | None:
    """Storage options as the object store needs them, secrets revealed (None: none). Only
    for the dataset's :class:`~dfs_analytics.dataset.Dataset` or ``Writer``: never print,
    log or store the result."""
    if not options:
        return None
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in options.items()}


@dataclass
class Settings:
    """Every behaviour knob of a :class:`~dfs_analytics.Client`; its repr masks the key.

    ``cache`` is a folder (``None``: no cache at all). Inside it, each (user, base URL, key)
    gets its own sub-folder holding the HTTP cache (``http.sqlite``) and the loaders'
    snapshots, all created readable by the owner only.

    ``api_key`` may be given as a string; it is kept as a :class:`Secret` (masked in ``str``,
    ``repr`` and ``dataclasses.asdict``; ``settings.api_key == "..."`` compares it and
    ``settings.api_key.reveal()`` returns it). A password in ``base_url`` is masked in the
    repr and in error messages (:attr:`display_url`). ``storage_options`` are the dataset's
    object-store options (credentials, region, endpoint: :func:`check_storage_options`); a
    value whose name says SECRET, TOKEN, PASSWORD or KEY is a :class:`Secret`, masked like the
    key (:meth:`dataset_options` reveals them, for the store). ``retry_budget`` bounds the
    seconds one call may spend waiting and retrying. ``max_workers=None`` (the default) lets
    the client find how many requests to keep in flight, up to ``max_concurrency``; a number
    pins it.
    Every value is checked here: a bad one raises ConfigurationError.
    """

    base_url: str
    api_key: Secret | None = None  # masked in repr, str and asdict; .reveal() gives it
    cache: Path | None = None
    offline: bool = False
    max_workers: int | None = None  # None: adaptive concurrency; N pins N requests in flight
    timeout: float = 30.0
    retries: int = 5
    backoff_factor: float = 0.3
    page_size: int = 1000
    progress: bool = True
    allow_insecure_http: bool = False
    dataset: str | None = None  # folder or URI of the dataset; None: inside the cache folder
    retry_budget: float = 300.0  # seconds one call may spend waiting and retrying
    max_concurrency: int = 64  # the most requests in flight the adaptive concurrency reaches
    # the dataset's object-store options; secret values are Secrets (masked in repr and asdict)
    storage_options: dict[str, str | Secret] | None = field(default=None)

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
        self.api_key = _check_key(self.api_key)
        for name in ("max_workers", "page_size", "max_concurrency"):
            value = getattr(self, name)
            if name == "max_workers" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                none = " (or None: adaptive)" if name == "max_workers" else ""
                raise ConfigurationError(f"{name} must be a positive integer{none}, got {value!r}.")
        if self.max_workers is not None and self.max_workers > self.max_concurrency:
            raise ConfigurationError(
                f"max_workers={self.max_workers} is above max_concurrency="
                f"{self.max_concurrency}: raise max_concurrency too, or leave max_workers=None "
                "and let the client find the concurrency the server takes."
            )
        for name, minimum in (("timeout", None), ("retry_budget", 0.0), ("backoff_factor", 0.0)):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or (value < minimum if minimum is not None else value <= 0)
            ):
                what = "a positive" if minimum is None else "a non-negative"
                raise ConfigurationError(
                    f"{name} must be {what} finite number of seconds, got {value!r}."
                )
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ConfigurationError(
                f"retries must be a non-negative integer, got {self.retries!r}."
            )
        for name in ("offline", "allow_insecure_http"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(
                    f"{name} must be True or False, got {getattr(self, name)!r}."
                )
        if self.cache is not None:
            self.cache = Path(self.cache)
            if self.cache.exists() and not self.cache.is_dir():
                raise ConfigurationError(
                    f"cache={str(self.cache)!r} is a file, not a folder: give a folder for the "
                    "cache (it is created if missing), or cache=None for no cache."
                )
        self.page_size = min(self.page_size, 1000)
        if self.dataset is not None:
            text = str(self.dataset).strip()
            if not text:
                raise ConfigurationError("dataset must be a folder path or a URI, got ''.")
            self.dataset = text if "://" in text else str(Path(text).expanduser())
        self.storage_options = check_storage_options(self.storage_options)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("api_key", "base_url")
        )
        key = "'***'" if self.api_key else "None"
        return f"Settings(base_url={mask_url(self.base_url)!r}, {shown}, api_key={key})"

    @property
    def workers(self) -> int:
        """Threads a bulk operation may use: the pinned ``max_workers``, else the ceiling
        (``max_concurrency``); the client's limiter decides how many send at once."""
        return self.max_workers if self.max_workers is not None else self.max_concurrency

    def dataset_options(self) -> dict[str, str] | None:
        """The dataset's storage options with their secrets revealed, for opening the dataset
        only (None: none given); never print, log or store them."""
        return reveal_options(self.storage_options)

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown: any password in it masked."""
        return mask_url(self.base_url)

    @property
    def cache_dir(self) -> Path | None:
        """This (user, base URL, key)'s own cache folder, or None without a cache."""
        if self.cache is None:
            return None
        key_hash = hashlib.sha256(
            (self.api_key.reveal() if self.api_key else "").encode()
        ).hexdigest()
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
        if base_url is not None:
            url = base_url
        elif site_id is not None:
            url = site_base_url(site_id, region)
        else:
            raise ConfigurationError(
                "say where the API is: Client(base_url=...) or "
                "Client(site_id=..., region='eu'|'us'), "
                "or set DFS_BASE_URL or DFS_SITE_ID."
            )
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
        check_environment(env)  # a typo such as DFS_BASE_ULR is an error, not a silent default
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
        if env.get("DFS_STORAGE_OPTIONS", "").strip():
            kwargs["storage_options"] = env["DFS_STORAGE_OPTIONS"]  # JSON, checked by Settings
        kwargs.update(overrides)
        return cls.resolve(**kwargs)


def dataset_from_env(
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, dict[str, str | Secret] | None]:
    """Where a shared dataset is and how to open it, from ``DFS_DATASET`` and
    ``DFS_STORAGE_OPTIONS`` (JSON, checked: secrets as :class:`Secret`), with no site
    settings needed (a reader's command); ``(None, options)`` when ``DFS_DATASET`` is unset."""
    env = os.environ if environ is None else environ
    location = env.get("DFS_DATASET", "").strip() or None
    if location is not None and "://" not in location:
        location = str(Path(location).expanduser())
    return location, check_storage_options(env.get("DFS_STORAGE_OPTIONS") or None)


#: Every ``DFS_*`` environment variable the toolkit reads. ``DFS_REQUIRE_BROWSER`` is read by
#: the test suite only (``1``: a missing Chromium fails the browser test).
KNOWN_VARIABLES = (
    "DFS_BASE_URL",
    "DFS_SITE_ID",
    "DFS_REGION",
    "DFS_API_KEY",
    "DFS_CACHE",
    "DFS_DATASET",
    "DFS_STORAGE_OPTIONS",
    "DFS_SIMULATOR",
    "DFS_REQUIRE_BROWSER",
)


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`~dfs_analytics.ConfigurationError` for a ``DFS_*`` environment variable
    the toolkit does not know (a typo such as ``DFS_BASE_ULR``), naming the nearest known one.

    Returns None when every ``DFS_*`` variable is one of :data:`KNOWN_VARIABLES`.
    """
    env = os.environ if environ is None else environ
    unknown = sorted(
        name for name in env if name.startswith("DFS_") and name not in KNOWN_VARIABLES
    )
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name}{hint}")
    raise ConfigurationError(
        f"unknown environment variable{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(problems)}: dfs-analytics reads only {', '.join(KNOWN_VARIABLES)}. "
        "Rename or unset it."
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def simulator_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``DFS_SIMULATOR`` asks for the local simulator (``1``, ``true``, ``yes``,
    ``on``); returns False when it is unset or ``0``/``false``/``no``/``off``, and raises
    :class:`~dfs_analytics.ConfigurationError` for any other value."""
    env = os.environ if environ is None else environ
    value = env.get("DFS_SIMULATOR", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"DFS_SIMULATOR={env['DFS_SIMULATOR']!r} is not understood: use 1 to ask for the local "
        "simulator (made-up data), 0 or unset for the site in DFS_BASE_URL / DFS_SITE_ID."
    )


def missing_site_settings(
    environ: Mapping[str, str] | None = None, options: Mapping[str, Any] | None = None
) -> list[str]:
    """What is missing to reach a site: a list of the variables to set (``[]`` when a site and
    a key are given), by ``options`` (``base_url``, ``site_id``, ``api_key`` as a client takes
    them) or by the environment (``DFS_BASE_URL`` or ``DFS_SITE_ID``, ``DFS_API_KEY``)."""
    env = os.environ if environ is None else environ
    given = options or {}
    missing = []
    if not (
        given.get("base_url")
        or given.get("site_id")
        or env.get("DFS_BASE_URL")
        or env.get("DFS_SITE_ID")
    ):
        missing.append("DFS_BASE_URL (or DFS_SITE_ID, with DFS_REGION for the US)")
    if not (given.get("api_key") or env.get("DFS_API_KEY", "").strip()):
        missing.append("DFS_API_KEY")
    return missing


def require_site(
    environ: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    advice: str = "",
) -> None:
    """Raise :class:`~dfs_analytics.ConfigurationError` unless a site and its key are given
    (:func:`missing_site_settings`); returns None when they are.

    The message names what to set, then ``advice`` (e.g. how to use the simulator instead).
    When only the key is missing, a bad URL, site id or region in the environment is reported
    first: it is the first thing to fix.
    """
    env = os.environ if environ is None else environ
    given = options or {}
    missing = missing_site_settings(env, given)
    if not missing:
        return
    if missing == ["DFS_API_KEY"] and not (given.get("base_url") or given.get("site_id")):
        Settings.from_env(dict(env))
    raise ConfigurationError(f"no site is configured: set {' and '.join(missing)}.{advice}")


def _check_key(key: Any) -> Secret | None:
    """The API key as a :class:`Secret` (None when empty); ConfigurationError, never quoting
    the key, when it could not travel in an HTTP header."""
    if key is None:
        return None
    text = key.reveal() if isinstance(key, Secret) else key
    if not isinstance(text, str):
        raise ConfigurationError(f"api_key must be a string, got a {type(key).__name__}.")
    text = text.strip()
    if not text:
        return None
    if any(c.isspace() for c in text):
        raise ConfigurationError("api_key contains whitespace; paste the key alone.")
    if not all(" " < c < "\x7f" for c in text):
        raise ConfigurationError(
            "api_key contains characters other than printable ASCII (letters, digits, "
            "punctuation), so it is not an API key; paste the key alone."
        )
    return Secret(text)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "user"
