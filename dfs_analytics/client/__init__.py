"""The HTTP client of the Field Services API: the only package that speaks HTTP.

:class:`Client` (:mod:`.endpoints`) has one method per endpoint and composes the rest:
:mod:`.retry` (retries where a retry cannot double an effect, within a time budget),
:mod:`.safety` (requests stay on the base URL's origin, answers under ``MAX_RESPONSE_BYTES``),
:mod:`.answers` (typed errors, shapes the frames cannot use refused), :mod:`.pages` (a listing
walked whole, within bounds) and :mod:`.cache` (the requests-cache HTTP cache, served offline).
Each module's docstring states its policy; ``MAX_PAGES`` set here changes the walks' bound.

It never builds frames nor writes the dataset (that is :mod:`~dfs_analytics.syncing`'s), never
sends the API key to another origin, nor in cleartext except to a loopback host or when
``allow_insecure_http`` asks for it, and never re-sends a write whose outcome is unknown.
"""

from __future__ import annotations

from ..concurrency import Limiter
from ..config import DEFAULT, Secret, Settings
from ..errors import (
    APIError,
    ConfigurationError,
    IncompleteDataError,
    IncompleteDataWarning,
    InvalidResponseError,
    NotFoundError,
    OfflineCacheMiss,
    OutcomeUnknownError,
    ThrottledError,
    TransportError,
    UnsafePathError,
    error_for_status,
    hint_for,
)
from ..files import open_no_follow, private_folder

# the filter vocabulary lives in query; also importable from here, where it used to live
from ..query import LIST_FILTERS, ORDERINGS, list_params, to_api_date
from .answers import OK_STATUSES
from .cache import SQLITE_TIMEOUT
from .endpoints import Client, RequestOptions
from .pages import MAX_COUNT, MAX_PAGES, PAGE_MARGIN
from .retry import IDEMPOTENT, MAX_BACKOFF, RETRY_STATUSES
from .safety import MAX_REDIRECTS, MAX_RESPONSE_BYTES, READ_CHUNK, segment

__all__ = [
    "DEFAULT",
    "IDEMPOTENT",
    "LIST_FILTERS",
    "MAX_BACKOFF",
    "MAX_COUNT",
    "MAX_PAGES",
    "MAX_REDIRECTS",
    "MAX_RESPONSE_BYTES",
    "OK_STATUSES",
    "ORDERINGS",
    "PAGE_MARGIN",
    "READ_CHUNK",
    "RETRY_STATUSES",
    "SQLITE_TIMEOUT",
    "APIError",
    "Client",
    "ConfigurationError",
    "IncompleteDataError",
    "IncompleteDataWarning",
    "InvalidResponseError",
    "Limiter",
    "NotFoundError",
    "OfflineCacheMiss",
    "OutcomeUnknownError",
    "RequestOptions",
    "Secret",
    "Settings",
    "ThrottledError",
    "TransportError",
    "UnsafePathError",
    "error_for_status",
    "hint_for",
    "list_params",
    "open_no_follow",
    "private_folder",
    "segment",
    "to_api_date",
]
