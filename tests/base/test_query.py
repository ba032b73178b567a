"""Query parameters of the list endpoint (``query.list_params``): dates pandas cannot hold
are ConfigurationErrors, equal or ordered bounds are sent as UTC instants.

(Bad knobs and base URLs given to the client are in ``test_config.py``; loaders refusing
bad dates before any request are in ``tests/loaders/test_loaders.py``.)"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.query import list_params


@pytest.mark.parametrize(
    "value",
    ["0001-01-01", date(1, 1, 1), datetime(9999, 12, 31), pd.NaT, "9999-12-31T23:59:59+00:00"],
    ids=repr,
)
def test_dates_pandas_cannot_hold_are_configuration_errors(value) -> None:
    with pytest.raises(dfs.ConfigurationError, match="created_after"):
        list_params({"created_after": value})


def test_equal_or_ordered_dates_are_fine() -> None:
    same_day = {"created_after": "2026-03-01", "created_before": "2026-03-01"}
    assert list_params(same_day) == {
        "created_after": "2026-03-01T00:00:00Z",
        "created_before": "2026-03-01T00:00:00Z",
    }
    later = {"updated_after": "2026-03-01", "updated_before": "2026-03-01T00:00:00.5"}
    assert list_params(later) == {
        "updated_after": "2026-03-01T00:00:00Z",
        "updated_before": "2026-03-01T00:00:00.500000Z",
    }
