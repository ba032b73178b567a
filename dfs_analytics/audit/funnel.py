"""Fair rankings of groups (field engineers...): :func:`funnel` limits around the overall
rate and empirical-Bayes shrunken rates, so small groups are not ranked on noise.

Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from .frames import TasksFrame, as_list, refuse_unreviewed, require_basis, require_columns
from .rates import CLUSTER_SUMS, rates_table
from .stats import beta_binomial_prior, beta_quantile, design_effect, funnel_limits, z_value


def funnel(
    tasks: TasksFrame,
    by: str | Sequence[str] = "field_engineer_email",
    basis: str = "value",
    reviewed_only: bool | None = None,
    level: float = 0.95,
    limits: tuple[float, float] = (0.95, 0.998),
) -> pd.DataFrame:
    """Who is really out of line: rates per group against the overall rate, fairly.

    ``tasks`` is a pandas or a Dask tasks frame; the result is a pandas frame. Per group of
    ``by`` (a missing group is ``"(none)"``): ``n``, ``n_overridden``, ``rate`` (raw, NaN
    when n = 0); ``shrunk`` (the empirical-Bayes estimate: the posterior mean under a
    beta-binomial prior fitted to all groups by :func:`beta_binomial_prior`, so small groups
    are pulled towards the overall rate), ``shrunk_low`` / ``shrunk_high`` (its equal-tailed
    ``level`` posterior interval); ``expected`` (the overall rate), ``low_95`` / ``high_95``
    and ``low_998`` / ``high_998`` (funnel control limits for that n, :func:`funnel_limits`,
    at the two ``limits`` levels; the column names follow them), ``outlier`` (outside the
    wider limits) and ``side`` (``"above"`` / ``"below"`` / ``""``). Rows are ordered by
    ``shrunk``, highest first. ``attrs``: ``overall``, ``prior`` (a, b, rho), ``limits``,
    ``level``, ``basis``, ``design_effect``.

    Population: the analysed tasks of *reviewed* work orders only (with a verdict, on
    ``basis="verdict"``); for the whole site use :func:`site_estimate`. Tasks of one work
    order are a cluster: the limits and the shrinkage use effective counts
    (n and n_overridden over the pooled design effect of the groups' work orders), so an
    engineer whose one bad day gave several overrides is not flagged as if they were
    independent; with no clustering the design effect is 1 and nothing changes.
    """
    refuse_unreviewed(reviewed_only, "funnel")
    keys = as_list(by)
    if not keys:
        raise ConfigurationError("funnel needs by=<column(s)> (e.g. field_engineer_email).")
    flag = require_basis(tasks, basis, "funnel")
    require_columns(tasks, ["analyzed", "reviewed", flag], "funnel")
    z_value(level)
    for limit in limits:
        z_value(limit)
    rates = rates_table(tasks, keys, level, basis, "funnel")
    sums = rates[["n_overridden", "n", *CLUSTER_SUMS]].sum()
    deff = float(design_effect(*sums))  # the pooled design effect of work orders as clusters
    rates = rates.drop(columns=["ci_low", "ci_high", "design_effect", *CLUSTER_SUMS])
    # tasks of one work order are a cluster: limits and shrinkage use effective counts
    n = rates["n"].to_numpy(dtype=float) / deff
    k = rates["n_overridden"].to_numpy(dtype=float) / deff
    overall = k.sum() / n.sum() if n.sum() else math.nan
    a, b, rho = beta_binomial_prior(k, n)
    if math.isnan(a):
        rates["shrunk"] = rates["shrunk_low"] = rates["shrunk_high"] = np.nan
    else:
        post_a, post_b = a + k, b + n - k
        rates["shrunk"] = post_a / (post_a + post_b)
        tail = (1 - level) / 2
        rates["shrunk_low"] = [
            beta_quantile(tail, x, y) for x, y in zip(post_a, post_b, strict=True)
        ]
        rates["shrunk_high"] = [
            beta_quantile(1 - tail, x, y) for x, y in zip(post_a, post_b, strict=True)
        ]
    rates["expected"] = overall
    names = []
    for limit in limits:
        name = f"{limit * 100:g}".replace(".", "")
        low, high = funnel_limits(n, overall, limit)
        rates[f"low_{name}"], rates[f"high_{name}"] = low, high
        names.append(name)
    wide = max(zip(limits, names, strict=True))[1]
    rate = rates["rate"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        above = (n > 0) & (rate > rates[f"high_{wide}"].to_numpy(dtype=float))
        below = (n > 0) & (rate < rates[f"low_{wide}"].to_numpy(dtype=float))
    rates["outlier"] = above | below
    rates["side"] = np.where(above, "above", np.where(below, "below", ""))
    rates = rates.sort_values(["shrunk", "n"], ascending=[False, False], kind="stable")
    rates = rates.reset_index(drop=True)
    rates.attrs.update(
        overall=float(overall),
        prior=(float(a), float(b), float(rho)),
        limits=tuple(limits),
        level=level,
        basis=basis,
        by=keys,
        design_effect=deff,
    )
    return rates
