"""Samples of tasks for human review (:func:`sample`, stratified and seeded) and the sample
size a wanted precision needs (:func:`sample_size`).

Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigurationError
from .frames import (
    as_booleans,
    as_list,
    flag_column,
    require_basis,
    require_columns,
    show_missing,
    with_keys,
)
from .stats import z_value

# --------------------------------------------------------------------------------------------
# samples for human review
# --------------------------------------------------------------------------------------------


ALLOCATIONS = ("proportional", "equal", "neyman")


def allocate(n: int, sizes: Sequence[int], weights: Sequence[float] | None = None) -> list[int]:
    """Split ``n`` draws among strata of ``sizes`` rows in proportion to ``weights`` (default:
    the sizes), by largest remainders, never more than a stratum holds; what a full stratum
    cannot take goes to the others. Ties go to the earlier stratum. Returns the counts
    (summing to ``min(n, sum(sizes))``)."""
    caps = [int(c) for c in sizes]
    weight = [float(w) for w in (weights if weights is not None else caps)]
    counts = [0] * len(caps)
    left = min(int(n), sum(caps))
    while left > 0:
        open_ = [i for i in range(len(caps)) if counts[i] < caps[i]]
        total = sum(weight[i] for i in open_)
        if total <= 0:  # only zero weights left: share the rest equally
            share = {i: 1.0 for i in open_}
            total = float(len(open_))
        else:
            share = {i: weight[i] for i in open_}
        exact = {i: left * share[i] / total for i in open_}
        give = {i: min(math.floor(exact[i]), caps[i] - counts[i]) for i in open_}
        rest = left - sum(give.values())
        order = sorted(open_, key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
        for i in order:
            if rest <= 0:
                break
            if counts[i] + give[i] < caps[i]:
                give[i] += 1
                rest -= 1
        for i in open_:
            counts[i] += give[i]
        given = sum(give.values())
        if given == 0:
            break
        left -= given
    return counts


def sample(
    tasks: pd.DataFrame,
    n: int | None = None,
    by: str | Sequence[str] | None = "task_name",
    seed: int = 0,
    reviewed_only: bool = False,
    only_analysed: bool = True,
    *,
    allocation: str = "proportional",
    n_per_group: int | None = None,
    disputed: bool = False,
    basis: str = "value",
) -> pd.DataFrame:
    """A reproducible stratified sample of tasks for human review.

    ``n`` (default 50) is the size of the whole sample: it is split among the groups of
    ``by`` by ``allocation``: ``"proportional"`` (to each group's size), ``"equal"`` (the
    same number per group) or ``"neyman"`` (to size x sqrt(p (1 - p)), p the group's
    override rate on ``basis`` smoothed as (k + 1) / (n + 2), which spends the reviews where
    the rate is most uncertain); a group never gives more rows than it has, and what it
    cannot give goes to the others, so the result has ``n`` rows (fewer only when the frame
    has fewer). ``n_per_group`` instead takes up to that many rows from every group.
    ``disputed=True`` samples only overridden tasks (changed values, or flipped verdicts on
    ``basis="verdict"``). The same frame, arguments and ``seed`` give the same rows whatever
    the frame's row order (rows are ordered by work order and task before drawing). Returns
    the sampled rows of the input, ordered by group; ``attrs["allocation"]`` is a frame of
    the groups with their ``available`` rows and ``sampled`` count.
    """
    if n_per_group is not None:
        if n is not None:
            raise ConfigurationError("give n (the whole sample) or n_per_group, not both.")
        if not isinstance(n_per_group, int) or isinstance(n_per_group, bool) or n_per_group < 1:
            raise ConfigurationError(
                f"n_per_group must be a positive integer, got {n_per_group!r}."
            )
    total = 50 if n is None else n  # the whole sample's size (unused with n_per_group)
    if n_per_group is None and (not isinstance(total, int) or isinstance(total, bool) or total < 1):
        raise ConfigurationError(f"n must be a positive integer, got {n!r}.")
    if allocation not in ALLOCATIONS:
        raise ConfigurationError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}."
        )
    keys = as_list(by)
    require_columns(tasks, ["work_order_id", "task_id", "analyzed", "reviewed"], "sample")
    flag = flag_column(basis)
    if disputed or allocation == "neyman":
        require_basis(tasks, basis, "sample")
        require_columns(tasks, [flag], "sample")
    frame = with_keys(tasks, keys, "sample")
    if only_analysed:
        frame = frame[as_booleans(frame["analyzed"])]
    if reviewed_only:
        frame = frame[as_booleans(frame["reviewed"])]
    if disputed:
        frame = frame[as_booleans(frame[flag])]
    frame = frame.sort_values(["work_order_id", "task_id"], kind="stable")
    grouped = (
        list(frame.groupby(keys, observed=True, sort=True, dropna=False)) if keys else [((), frame)]
    )
    grouped = [(key, group) for key, group in grouped if len(group)]
    sizes = [len(group) for _, group in grouped]
    if n_per_group is not None:
        counts = [min(n_per_group, size) for size in sizes]
    elif allocation == "equal":
        counts = allocate(total, sizes, [1.0] * len(sizes))
    elif allocation == "neyman":
        spread: list[float] = []
        for (_, group), size in zip(grouped, sizes, strict=True):
            p = (int(as_booleans(group[flag]).sum()) + 1) / (size + 2)
            spread.append(size * math.sqrt(p * (1 - p)))
        counts = allocate(total, sizes, spread)
    else:
        counts = allocate(total, sizes)
    rng = np.random.default_rng(seed)
    picks: list[pd.DataFrame] = []
    for (_, group), size in zip(grouped, counts, strict=True):
        chosen = rng.choice(len(group), size=size, replace=False) if size else np.array([])
        picks.append(group.iloc[np.sort(chosen.astype(int))])
    out = pd.concat(picks) if picks else frame.iloc[0:0]
    plan = pd.DataFrame(
        [
            (*(key if isinstance(key, tuple) else (key,)), size, count)
            for (key, _), size, count in zip(grouped, sizes, counts, strict=True)
        ]
        if keys
        else [(size, count) for size, count in zip(sizes, counts, strict=True)],
        columns=[*keys, "available", "sampled"],
    )
    out.attrs["allocation"] = show_missing(plan, keys)
    return out


def sample_size(
    margin: float = 0.02,
    rate: float | None = None,
    confidence: float = 0.95,
    population: int | None = None,
) -> int:
    """How many tasks to review to estimate a rate within +/- ``margin`` at ``confidence``.

    ``n = z^2 p (1 - p) / margin^2``, rounded up, with p = ``rate`` (an expected rate, e.g.
    last quarter's) or 0.5 when unknown (the largest n: always enough); with ``population``
    (how many tasks there are to draw from) the finite-population correction
    ``n / (1 + (n - 1) / population)`` is applied. Returns a number of tasks.
    """
    if not 0 < margin < 1:
        raise ConfigurationError(f"margin must be between 0 and 1 (a share), got {margin!r}.")
    if rate is not None and not 0 <= rate <= 1:
        raise ConfigurationError(f"rate must be between 0 and 1 (a share), got {rate!r}.")
    z = z_value(confidence)
    p = 0.5 if rate is None else rate
    size = z * z * p * (1 - p) / (margin * margin)
    if population is not None:
        if population < 1:
            raise ConfigurationError(f"population must be positive, got {population!r}.")
        size = size / (1 + (size - 1) / population)
    return max(1, math.ceil(size - 1e-9))
