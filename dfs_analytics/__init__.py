"""dfs-analytics: Field Services data in pandas, audits of AI verdicts, safe corrections.

>>> import dfs_analytics as dfs
>>> client = dfs.Client.from_env()                  # or dfs.Client(base_url=..., api_key=...)
>>> tasks = dfs.load_tasks(client, reviewed=True)   # one row per work order x task
"""

from ._version import __version__ as __version__
from .client import Client, IncompleteDataWarning
from .config import Settings, site_base_url
from .errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    DFSError,
    IncompleteDataError,
    NotFoundError,
    OfflineCacheMiss,
    OutcomeUnknownError,
    PayloadTooLargeError,
    ServerError,
    ThrottledError,
    TransportError,
    ValidationError,
)
from .loaders import load_task_groups, load_tasks, load_timeline, load_work_orders

__all__ = [
    "APIError",
    "AuthenticationError",
    "Client",
    "ConfigurationError",
    "DFSError",
    "IncompleteDataError",
    "IncompleteDataWarning",
    "NotFoundError",
    "OfflineCacheMiss",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "ServerError",
    "Settings",
    "ThrottledError",
    "TransportError",
    "ValidationError",
    "load_task_groups",
    "load_tasks",
    "load_timeline",
    "load_work_orders",
    "site_base_url",
]
