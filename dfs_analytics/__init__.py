"""dfs-analytics: Field Services data in pandas, audits of AI verdicts, safe corrections.

>>> import dfs_analytics as dfs
>>> client = dfs.Client.from_env()                  # or dfs.Client(base_url=..., api_key=...)
>>> tasks = dfs.load_tasks(client, reviewed=True)   # one row per work order x task

This module only re-exports the public names of the modules below it. It never holds logic of
its own, and never imports matplotlib or ipywidgets until ``dfs.plots``, ``dfs.report`` or
``dfs.widgets`` is asked for.
"""

from . import audit
from ._version import __version__ as __version__
from .actions import analyze, correct, reanalyze
from .audit import agreement, confusion, drift, funnel, override_rates, sample, sample_size
from .callbacks import CallbackReceiver
from .campaign import Campaign
from .client import Client
from .config import Settings, site_base_url
from .connect import connect
from .dataset import Dataset
from .errors import (
    APIError,
    AuditInputError,
    AuthenticationError,
    BusyError,
    CampaignValidationError,
    ConfigurationError,
    DatasetCorruptError,
    DatasetError,
    DatasetLocationError,
    DFSError,
    IncompleteDataError,
    IncompleteDataWarning,
    InvalidCorrectionError,
    InvalidResponseError,
    JournalError,
    JournalMismatchError,
    NotADatasetError,
    NotFoundError,
    OfflineCacheMiss,
    OutcomeUnknownError,
    PayloadTooLargeError,
    ReadOnlyDatasetError,
    ServerError,
    SiteMismatchError,
    SkippedIdWarning,
    TableNotSyncedError,
    ThrottledError,
    TransportError,
    UnsafePathError,
    ValidationError,
    VersionNotFoundError,
    VersionVacuumedError,
)
from .loaders import load_task_groups, load_tasks, load_timeline, load_work_orders
from .syncing import SyncResult, open_dataset, sync

_LAZY = {
    "plots": "plots",
    "report": "report",
    "audit_report": "report",
    "widgets": "widgets",
    "Explorer": "widgets",
    "CampaignPanel": "widgets",
    "ReviewBench": "widgets",
}


def __getattr__(name: str):  # matplotlib and ipywidgets are imported only when asked for
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return module if name == _LAZY[name] else getattr(module, name)
    raise AttributeError(f"module 'dfs_analytics' has no attribute {name!r}")


__all__ = [
    "APIError",
    "AuditInputError",
    "AuthenticationError",
    "BusyError",
    "CallbackReceiver",
    "Campaign",
    "CampaignPanel",
    "CampaignValidationError",
    "Client",
    "ConfigurationError",
    "DFSError",
    "Dataset",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetLocationError",
    "Explorer",
    "IncompleteDataError",
    "IncompleteDataWarning",
    "InvalidCorrectionError",
    "InvalidResponseError",
    "JournalError",
    "JournalMismatchError",
    "NotADatasetError",
    "NotFoundError",
    "OfflineCacheMiss",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "ReadOnlyDatasetError",
    "ServerError",
    "Settings",
    "SiteMismatchError",
    "SkippedIdWarning",
    "SyncResult",
    "TableNotSyncedError",
    "ThrottledError",
    "TransportError",
    "UnsafePathError",
    "ValidationError",
    "VersionNotFoundError",
    "VersionVacuumedError",
    "agreement",
    "analyze",
    "audit",
    "audit_report",
    "confusion",
    "connect",
    "correct",
    "drift",
    "funnel",
    "load_task_groups",
    "load_tasks",
    "load_timeline",
    "load_work_orders",
    "open_dataset",
    "override_rates",
    "plots",
    "reanalyze",
    "report",
    "sample",
    "sample_size",
    "site_base_url",
    "sync",
    "widgets",
]
