"""Audit of the AI's verdicts: how often humans overturn them, where, and since when.

Every function takes a tasks frame (:func:`dfs_analytics.load_tasks`, or for the counting
functions a Dask frame of the same columns) and returns a frame or a dict, so notebook cells
chain. Rates describe the analysed tasks of *reviewed* work orders. The definitions (what
counts, what "overridden" means on each basis, the intervals) are in ``docs/audit.md``.

This package never does I/O (no HTTP, no files, no dataset writes), never changes the frame it
is given, and takes effective values and JSON equality from :mod:`dfs_analytics.rules`.
"""

from __future__ import annotations

from ..errors import AuditInputError
from .bias import review_bias
from .confusion import agreement, confusion
from .drift import drift
from .frames import (
    BASES,
    NO_VERDICT,
    NONE_LABEL,
    NOT_ANALYSED,
    OTHER,
    PROVENANCE_ATTR,
    TIME_KEYS,
    TasksFrame,
    app_version_labels,
    audited,
    provenance,
    show_missing,
)
from .funnel import funnel
from .quality import verdict_quality
from .rates import override_rates, summary
from .samples import ALLOCATIONS, allocate, sample, sample_size
from .site import load_plan, review_sample, save_plan, site_estimate
from .stats import (
    adjust_pvalues,
    beta_binomial_prior,
    beta_cdf,
    beta_quantile,
    binomial_cdf,
    binomial_quantile,
    fisher_exact,
    funnel_limits,
    wilson_interval,
    z_value,
)

__all__ = [
    "ALLOCATIONS",
    "BASES",
    "NONE_LABEL",
    "NOT_ANALYSED",
    "NO_VERDICT",
    "OTHER",
    "PROVENANCE_ATTR",
    "TIME_KEYS",
    "AuditInputError",
    "TasksFrame",
    "adjust_pvalues",
    "agreement",
    "allocate",
    "app_version_labels",
    "audited",
    "beta_binomial_prior",
    "beta_cdf",
    "beta_quantile",
    "binomial_cdf",
    "binomial_quantile",
    "confusion",
    "drift",
    "fisher_exact",
    "funnel",
    "funnel_limits",
    "load_plan",
    "override_rates",
    "provenance",
    "review_bias",
    "review_sample",
    "sample",
    "sample_size",
    "save_plan",
    "show_missing",
    "site_estimate",
    "summary",
    "verdict_quality",
    "wilson_interval",
    "z_value",
]
