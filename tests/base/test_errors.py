"""One exception tree: every error and warning the toolkit exports lives in ``errors.py``."""

from __future__ import annotations

import inspect
from pathlib import Path

import dfs_analytics as dfs
from dfs_analytics import errors


def test_every_exported_error_and_warning_lives_in_errors_py() -> None:
    exported = [
        obj
        for name in dfs.__all__
        if inspect.isclass(obj := getattr(dfs, name)) and issubclass(obj, (Exception, Warning))
    ]
    assert len(exported) >= 20
    elsewhere = [c.__name__ for c in exported if c.__module__ != errors.__name__]
    assert not elsewhere, f"defined outside errors.py: {elsewhere}"


def test_every_error_is_a_dfs_error_and_named_in_the_tree() -> None:
    """The tree drawn in docs/architecture.md names every exception and warning class."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    for name, obj in vars(errors).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, Exception)
            and obj.__module__ == errors.__name__
        ):
            assert issubclass(obj, (dfs.DFSError, Warning)), name
            assert name in doc, f"{name} is missing from the exception tree in docs/architecture.md"


def test_modules_still_export_their_errors_where_users_found_them() -> None:
    from dfs_analytics.actions import InvalidCorrectionError
    from dfs_analytics.audit import AuditInputError
    from dfs_analytics.campaign import CampaignValidationError, JournalError
    from dfs_analytics.client import IncompleteDataWarning

    assert InvalidCorrectionError is dfs.InvalidCorrectionError
    assert AuditInputError is dfs.AuditInputError
    assert CampaignValidationError is dfs.CampaignValidationError
    assert JournalError is dfs.JournalError
    assert IncompleteDataWarning is dfs.IncompleteDataWarning
