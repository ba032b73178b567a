"""The whole site, not only the reviewed work orders: review plans of work orders
(:func:`review_sample`, :func:`save_plan`, :func:`load_plan`) and site-wide estimates with
intervals that treat each work order as a cluster (:func:`site_estimate`).

The population is every work order of the frame given (the loaders' filters define it).
Estimators: stratified Hájek ratio (``design``), power-tuned prediction-powered inference
(``ppi``), and existing reviews reweighted within strata (``poststratified``). Never does I/O
except :func:`save_plan` / :func:`load_plan` (and :func:`pin_version`, which keeps the dataset
version a saved plan was drawn from), and never changes the frame it is given.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..dataset.location import local_path
from ..errors import AuditInputError, ConfigurationError
from .frames import (
    NONE_LABEL,
    as_booleans,
    as_list,
    flag_column,
    provenance,
    require_columns,
    utc_dates,
)
from .samples import ALLOCATIONS, allocate
from .stats import wilson_interval, z_value

AI_NONCONFORMITY = "ai_nonconformity"
"""The stratifier of the AI's verdicts: bands of the share of a work order's analysed
conformity tasks that the AI finds not conform."""

BANDS = (0.0, 0.2, 0.5)
"""Upper edges of the lower ``ai_nonconformity`` bands (0%, up to 20%, up to 50%, above)."""
NO_CONFORMITY_TASK = "no conformity task"

QUANTITIES = ("override_rate", "nonconformity_rate")
METHODS = ("auto", "design", "ppi", "poststratified")
PLAN_COLUMNS = ("work_order_id", "work_order_name", "stratum", "inclusion_probability", "weight")
ESTIMATE_COLUMNS = (
    "estimate",
    "ci_low",
    "ci_high",
    "std_error",
    "method",
    "n_work_orders",
    "n_tasks",
    "not_yet_reviewed",
    "population_work_orders",
    "population_tasks",
    "reviewed_share",
    "assumption",
)
_PLAN_FORMAT = 1


# --------------------------------------------------------------------------------------------
# work orders, and the strata known for every one of them
# --------------------------------------------------------------------------------------------


def _is_tasks_frame(frame: pd.DataFrame) -> bool:
    return "task_name" in frame.columns and "analyzed" in frame.columns


def band_of(share: float) -> str:
    """The ``ai_nonconformity`` band of a share (NaN: the work order has no analysed
    conformity task)."""
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return NO_CONFORMITY_TASK
    labels = band_labels()
    for label, edge in zip(labels, BANDS, strict=False):
        if share <= edge:
            return label
    return labels[len(BANDS)]


def band_labels() -> list[str]:
    """Every ``ai_nonconformity`` band, in order."""
    labels = ["0%"]
    lower = 0.0
    for edge in BANDS[1:]:
        labels.append(f"{lower:.0%}-{edge:.0%}")
        lower = edge
    return [*labels, f"over {lower:.0%}", NO_CONFORMITY_TASK]


def work_order_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per work order of a tasks or work-orders frame: ``work_order_id``,
    ``work_order_name``, ``reviewed``, and, from a tasks frame, ``analysed_tasks``,
    ``conformity_tasks`` (analysed), ``ai_not_conform`` (of those, not conform for the AI),
    ``ai_nonconformity`` (their share; NaN without conformity tasks) and its band, plus every
    column that has one value per work order (app version, field engineer, dates...)."""
    require_columns(frame, ["work_order_id"], "review planning")
    if not isinstance(frame, pd.DataFrame):
        raise AuditInputError(
            f"review planning needs a pandas frame, got {type(frame).__name__}: "
            "compute a Dask frame first."
        )
    keys = frame["work_order_id"].astype(str)
    grouped = frame.groupby(keys, sort=True, observed=True)
    constant = [
        c
        for c in frame.columns
        if c != "work_order_id" and grouped[c].nunique(dropna=False).max() <= 1
    ]
    table = grouped[constant].first() if constant else pd.DataFrame(index=grouped.size().index)
    table.index.name = "work_order_id"
    if "work_order_name" not in table.columns:
        name = "name" if "name" in table.columns else None
        table["work_order_name"] = table[name] if name else pd.NA
    if "reviewed" in frame.columns:  # vectorised: a Python call per work order is slow
        table["reviewed"] = as_booleans(frame["reviewed"]).groupby(keys, sort=True).any()
    elif "review_date" in frame.columns:
        table["reviewed"] = frame["review_date"].notna().groupby(keys, sort=True).any()
    if _is_tasks_frame(frame):
        analysed = as_booleans(frame["analyzed"])
        conformity = analysed & as_booleans(frame.get("conformity_status", analysed & False))
        ai_bad = conformity & ~as_booleans(frame.get("ai_is_conform", conformity))
        counts = (
            pd.DataFrame(
                {
                    "analysed_tasks": analysed.astype("int64"),
                    "conformity_tasks": conformity.astype("int64"),
                    "ai_not_conform": ai_bad.astype("int64"),
                }
            )
            .groupby(keys.to_numpy(), sort=True)
            .sum()
        )
        table = table.join(counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[AI_NONCONFORMITY] = table["ai_not_conform"] / table["conformity_tasks"].where(
                table["conformity_tasks"] > 0
            )
        table[f"{AI_NONCONFORMITY}_band"] = table[AI_NONCONFORMITY].map(band_of)
    return table.reset_index()


def _strata(table: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """The stratum label of each work order: its values of ``by`` joined by " / "."""
    if not by:
        return pd.Series("all", index=table.index)
    parts = []
    for column in by:
        if column == AI_NONCONFORMITY:
            if f"{AI_NONCONFORMITY}_band" not in table.columns:
                raise AuditInputError(
                    "by='ai_nonconformity' needs a tasks frame (dfs.load_tasks): the AI's "
                    "verdicts are on the tasks, not on the work orders."
                )
            parts.append(table[f"{AI_NONCONFORMITY}_band"].astype(str))
        elif column not in table.columns:
            raise AuditInputError(
                f"cannot stratify by {column!r}: it is not a column with one value per work "
                f"order here. Use 'ai_nonconformity' or one of: "
                f"{', '.join(sorted(map(str, table.columns))[:20])}."
            )
        else:
            parts.append(table[column].astype(object).where(table[column].notna(), NONE_LABEL))
    label = parts[0].astype(str)
    for part in parts[1:]:
        label = label + " / " + part.astype(str)
    return label


# --------------------------------------------------------------------------------------------
# review plans
# --------------------------------------------------------------------------------------------


def review_sample(
    frame: pd.DataFrame,
    n: int,
    *,
    by: str | Sequence[str] | None = None,
    allocation: str = "proportional",
    seed: int = 0,
    exclude: Sequence[str] | None = None,
    pilot: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A stratified random sample of ``n`` work orders to review (reviewers review work
    orders, not tasks), drawn without replacement within each stratum.

    ``frame`` is a tasks frame (:func:`dfs_analytics.load_tasks`) or a work-orders frame; its
    work orders are the population (minus ``exclude``, ids that must not be drawn, which
    leave the population). ``by``: columns with one value per work order, and/or
    ``"ai_nonconformity"`` (bands of the share of a work order's conformity tasks the AI finds
    not conform: the best stratifier of what reviewers will find). ``allocation``:
    ``"proportional"`` (to the strata's sizes), ``"equal"``, or ``"neyman"`` (to size times
    the spread of a pilot's per-work-order override rates when ``pilot``, a reviewed tasks
    frame, is given, else of the AI's per-work-order non-conformity). Every stratum gets at
    least 2 work orders (or all it has), so each has a variance.

    Returns one row per sampled work order: ``work_order_id``, ``work_order_name``,
    ``stratum``, ``inclusion_probability`` (n_h / N_h, in (0, 1]) and ``weight`` (its
    inverse). ``plan.attrs["design"]`` holds the strata (population and sample sizes), the
    seed, the allocation, and the filters and dataset version of ``frame``. The same frame,
    ``n`` and seed give the same plan.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigurationError(f"n must be a whole number >= 1, got {n!r}.")
    if allocation not in ALLOCATIONS:
        raise ConfigurationError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}."
        )
    columns = as_list(by)
    table = work_order_table(frame)
    excluded = 0
    if exclude is not None:
        drop = {str(i) for i in exclude}
        keep = ~table["work_order_id"].isin(drop)
        excluded = int((~keep).sum())
        table = table[keep].reset_index(drop=True)
    if table.empty:
        raise AuditInputError("review_sample: the frame holds no work order to sample.")
    table["stratum"] = _strata(table, columns)
    sizes = table.groupby("stratum", sort=True).size()
    labels = list(sizes.index)
    minimum = [min(2, int(s)) for s in sizes]
    if n < sum(minimum):
        raise ConfigurationError(
            f"n={n} is too small for {len(labels)} strata: each needs at least 2 work orders "
            f"(n >= {sum(minimum)}); stratify by fewer columns, or sample more."
        )
    if allocation == "proportional":
        weights = [float(s) for s in sizes]
    elif allocation == "equal":
        weights = [1.0] * len(labels)
    else:
        spread = _neyman_spread(table, pilot)
        weights = [float(sizes[h]) * spread.get(h, 0.5) for h in labels]
    # at least the minimum everywhere, the rest as the allocation says
    room = [int(s) - m for s, m in zip(sizes, minimum, strict=True)]
    extra = allocate(n - sum(minimum), room, weights)
    counts = {h: m + e for h, m, e in zip(labels, minimum, extra, strict=True)}
    rng = np.random.default_rng(seed)
    rows = []
    for h in labels:
        members = table[table["stratum"] == h].sort_values("work_order_id")
        chosen = rng.choice(len(members), size=counts[h], replace=False)
        picked = members.iloc[np.sort(chosen)]
        p = counts[h] / len(members)
        rows.append(
            pd.DataFrame(
                {
                    "work_order_id": picked["work_order_id"].astype(str).to_numpy(),
                    "work_order_name": picked["work_order_name"].to_numpy(),
                    "stratum": h,
                    "inclusion_probability": p,
                    "weight": 1.0 / p,
                }
            )
        )
    plan = pd.concat(rows, ignore_index=True)[list(PLAN_COLUMNS)]
    source = provenance(frame)
    plan.attrs["design"] = {
        "format": _PLAN_FORMAT,
        "by": columns,
        "allocation": allocation,
        "seed": int(seed),
        "n": len(plan),
        "population_work_orders": len(table),
        "excluded_work_orders": excluded,
        "strata": {h: {"population": int(sizes[h]), "sample": counts[h]} for h in labels},
        "bands": list(BANDS),
        "filters": (source or {}).get("filters"),
        "dataset": (source or {}).get("dataset"),
        "version": (source or {}).get("version"),
        "drawn": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return plan


def _neyman_spread(table: pd.DataFrame, pilot: pd.DataFrame | None) -> dict[str, float]:
    """Per stratum, the standard deviation of what the review measures per work order: a
    pilot's override rates when given, else the AI's non-conformity share (floored so that
    no stratum is left out)."""
    if pilot is not None:
        require_columns(pilot, ["work_order_id", "analyzed", "is_overridden"], "neyman")
        analysed = as_booleans(pilot["analyzed"])
        rates = (
            pd.DataFrame(
                {
                    "work_order_id": pilot["work_order_id"].astype(str),
                    "k": (analysed & as_booleans(pilot["is_overridden"])).astype(float),
                    "m": analysed.astype(float),
                }
            )
            .groupby("work_order_id")
            .sum()
        )
        rate = (rates["k"] / rates["m"].where(rates["m"] > 0)).rename("y")
        values = table.join(rate, on="work_order_id")["y"]
    elif AI_NONCONFORMITY in table.columns:
        values = table[AI_NONCONFORMITY]
    else:
        raise ConfigurationError(
            "allocation='neyman' needs a pilot (a reviewed tasks frame) or a tasks frame, whose "
            "AI verdicts give each stratum's spread."
        )
    spread = values.groupby(table["stratum"]).std(ddof=1).fillna(0.0)
    floor = max(float(spread.max()) * 0.1, 0.01)
    return {h: max(float(s), floor) for h, s in spread.items()}


def pin_version(
    location: Any,
    version: Any,
    note: str,
    storage_options: Mapping[str, str] | None = None,
) -> bool:
    """Pin ``version`` of the dataset at ``location`` (what a frame's provenance names) with
    ``note``, so that no vacuum removes the rows a saved result was computed from. Returns
    whether it was pinned: nothing to pin (no location or version, a local folder that is
    gone, such as a temporary dataset) is False, and so is a dataset that cannot be pinned
    (read-only, unreachable), with a warning, never an error: the result itself was saved."""
    if not location or version is None:
        return False
    folder = local_path(str(location))
    if folder is not None and not folder.is_dir():
        return False
    try:
        Dataset(str(location), storage_options=storage_options).pin(int(version), note=note)
    except Exception as exc:  # the result is saved: not pinning it is a warning, not a failure
        warnings.warn(
            f"version {version} of the dataset at {location} was not pinned "
            f"({type(exc).__name__}: {exc}); a vacuum "
            "may remove its files, after which this result can no longer be recomputed from "
            "them.",
            UserWarning,
            stacklevel=3,
        )
        return False
    return True


def save_plan(
    plan: pd.DataFrame, path: str | Path, *, storage_options: Mapping[str, str] | None = None
) -> Path:
    """Write a review plan as ``path`` (a CSV a review team can open: work-order ids, names,
    strata, probabilities) and its design beside it (``path`` with ``.json``); returns the
    CSV path. Nothing is pickled.

    When the plan was drawn from a loaded frame (its design names a dataset and a version),
    that version is pinned in that dataset (note ``"review plan <path>"``; opened with
    ``storage_options`` for an object store) so retention never removes it; a dataset that
    cannot be pinned is a warning (:func:`pin_version`)."""
    design = plan.attrs.get("design")
    if not isinstance(design, dict):
        raise AuditInputError(
            "save_plan needs a plan from dfs.audit.review_sample (its attrs['design'] is "
            "missing; pandas drops attrs in some operations: save the frame it returned)."
        )
    missing = [c for c in PLAN_COLUMNS if c not in plan.columns]
    if missing:
        raise AuditInputError(f"save_plan: the plan lacks the column(s) {', '.join(missing)}.")
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ConfigurationError(f"save_plan writes a .csv file, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    plan.to_csv(path, index=False)
    path.with_suffix(".json").write_text(json.dumps(design, indent=2, sort_keys=True) + "\n")
    pin_version(
        design.get("dataset"), design.get("version"), f"review plan {path}", storage_options
    )
    return path


def load_plan(path: str | Path) -> pd.DataFrame:
    """A review plan written by :func:`save_plan`: the CSV's rows (ids as text) with
    ``attrs["design"]`` read back from the JSON beside it."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise ConfigurationError(
            f"load_plan needs {str(path)!r} and {str(sidecar)!r}, as save_plan writes them."
        )
    plan = pd.read_csv(path, dtype={"work_order_id": str, "work_order_name": str, "stratum": str})
    missing = [c for c in PLAN_COLUMNS if c not in plan.columns]
    if missing:
        raise AuditInputError(f"{str(path)!r} is not a review plan: no {', '.join(missing)}.")
    try:
        design = json.loads(sidecar.read_text())
    except ValueError as exc:
        raise AuditInputError(f"{str(sidecar)!r} is not a plan's design: {exc}") from None
    if not isinstance(design, dict) or "strata" not in design:
        raise AuditInputError(f"{str(sidecar)!r} is not a plan's design (no strata).")
    plan.attrs["design"] = design
    return plan


# --------------------------------------------------------------------------------------------
# site-wide estimates
# --------------------------------------------------------------------------------------------


def _unit_totals(
    tasks: pd.DataFrame, quantity: str, basis: str, by: list[str]
) -> tuple[pd.DataFrame, str]:
    """Per work order (and group of ``by``): ``m`` eligible tasks, ``y`` of them with the
    outcome (meaningful on reviewed work orders only), ``f`` of them the AI predicts to have
    it; and what a task must be to count."""
    analysed = as_booleans(tasks["analyzed"])
    if quantity == "override_rate":
        flag = flag_column(basis)
        require_columns(tasks, [flag], "site_estimate")
        eligible = analysed if basis == "value" else analysed & tasks[flag].notna().to_numpy()
        outcome = eligible & as_booleans(tasks[flag])
        predicted = pd.Series(np.nan, index=tasks.index)
        what = "analysed tasks" + (" with verdict rules" if basis == "verdict" else "")
    else:
        require_columns(
            tasks, ["conformity_status", "is_conform", "ai_is_conform"], "site_estimate"
        )
        eligible = analysed & as_booleans(tasks["conformity_status"])
        outcome = eligible & ~as_booleans(tasks["is_conform"])
        predicted = (eligible & ~as_booleans(tasks["ai_is_conform"])).astype(float)
        what = "analysed conformity tasks"
    frame = pd.DataFrame(
        {
            "work_order_id": tasks["work_order_id"].astype(str),
            "m": eligible.astype(float),
            "y": outcome.astype(float),
            "f": predicted,
        }
    )
    for column in by:
        frame[column] = tasks[column].astype(object).where(tasks[column].notna(), NONE_LABEL)
    units = frame.groupby(["work_order_id", *by], sort=True, dropna=False).agg(
        m=("m", "sum"), y=("y", "sum"), f=("f", "sum")
    )
    return units.reset_index(), what


def site_estimate(
    tasks: pd.DataFrame,
    plan: pd.DataFrame | None = None,
    *,
    quantity: str = "override_rate",
    basis: str = "value",
    by: str | Sequence[str] | None = None,
    method: str = "auto",
    level: float = 0.95,
    also_reviewed: Iterable[str] | None = None,
) -> pd.DataFrame:
    """How good the AI is across the whole population the frame covers, including the work
    orders nobody reviewed, with an interval that treats each work order as a cluster.

    ``quantity``: ``"override_rate"`` (the share of analysed tasks a review would overturn;
    ``basis="verdict"``: would flip the verdict) or ``"nonconformity_rate"`` (the share of
    analysed conformity tasks whose human-checked state is not conform; the AI predicts it
    with ``ai_is_conform``). Unreviewed tasks are never counted as "agreed": nobody looked.

    ``method``:
      - ``"design"`` (needs ``plan``, from :func:`review_sample`): a stratified Hájek ratio
        estimator, work orders as clusters, with the finite-population correction. Sampled
        work orders not yet reviewed (``not_yet_reviewed``) are taken as missing at random
        within their stratum.
      - ``"ppi"`` (needs ``plan``; ``nonconformity_rate`` only): prediction-powered
        inference, power-tuned per stratum: the AI's verdicts on every work order of the
        population correct the design estimate. Never wider than ``"design"`` on the same
        sample (it falls back to it, and says so, where it would be).
      - ``"poststratified"`` (no plan): the reviews the site already has, reweighted within
        strata of what is known for every work order (the AI's non-conformity band, then app
        version or month while every stratum keeps 2 reviewed work orders). Only as good as
        its assumption: reviews are random within these strata.
      - ``"auto"``: ``ppi`` for the non-conformity rate with a plan, ``design`` for the
        override rate with a plan, ``poststratified`` without one.

    ``also_reviewed``: ids of work orders reviewed outside the server's record, counted as
    reviewed (the review bench: ``Review(client, plan).reviewed_work_orders()``, every
    analysed task agreed or corrected; the corrections are on the server, so a frame loaded
    after them holds what the reviewer found).

    Intervals are Wilson intervals at the effective sample size of the estimate's variance
    (Korn and Graubard), at ``level``. ``by`` splits the estimate by task columns (e.g.
    ``"task_name"``) as domains of the same sample.

    Returns one row per group: the ``by`` columns, ``estimate``, ``ci_low``, ``ci_high``,
    ``std_error``, ``method``, ``n_work_orders`` (reviewed and used), ``n_tasks`` (their
    eligible tasks), ``not_yet_reviewed`` (sampled, not yet reviewed), ``population_work_orders``
    and ``population_tasks`` (what the figure covers), ``reviewed_share`` (of the population's
    work orders) and ``assumption`` (a sentence).
    """
    if quantity not in QUANTITIES:
        raise ConfigurationError(
            f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}."
        )
    if basis not in ("value", "verdict"):
        raise ConfigurationError(f"basis must be 'value' or 'verdict', got {basis!r}.")
    if method not in METHODS:
        raise ConfigurationError(f"method must be one of {', '.join(METHODS)}, got {method!r}.")
    z_value(level)
    require_columns(tasks, ["work_order_id", "analyzed", "reviewed"], "site_estimate")
    if method == "auto":
        if plan is None:
            method = "poststratified"
        else:
            method = "ppi" if quantity == "nonconformity_rate" else "design"
    if method in ("design", "ppi") and plan is None:
        raise ConfigurationError(
            f"method={method!r} needs a plan (dfs.audit.review_sample) whose work orders were "
            "reviewed; without one, use method='poststratified'."
        )
    if method == "ppi" and quantity != "nonconformity_rate":
        raise ConfigurationError(
            "method='ppi' needs a quantity the AI predicts: quantity='nonconformity_rate'. The "
            "AI makes no prediction of its own overrides; use method='design'."
        )
    if method == "poststratified" and plan is not None:
        raise ConfigurationError("method='poststratified' takes no plan; use 'design' or 'ppi'.")
    groups = as_list(by)
    require_columns(tasks, groups, "site_estimate")
    table = work_order_table(tasks)
    if also_reviewed is not None:
        extra = {str(i) for i in also_reviewed}
        table["reviewed"] = table["reviewed"].astype(bool) | table["work_order_id"].isin(extra)
    if plan is not None:
        strata, sampled, note = _plan_strata(table, plan)
    else:
        strata, note = _poststrata(table)
        sampled = table.loc[table["reviewed"], "work_order_id"]
    table["stratum"] = strata.to_numpy()
    units, what = _unit_totals(tasks, quantity, basis, groups)
    units = units.merge(
        table[["work_order_id", "stratum", "reviewed"]], on="work_order_id", how="left"
    )
    units["sampled"] = units["work_order_id"].isin(set(sampled))
    rows = []
    grouped = units.groupby(groups, sort=True, dropna=False) if groups else [((), units)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        result = _estimate(part[part["m"] > 0], table, method, level)
        result["assumption"] = _assumption(method, what, note, result.pop("_fallback", False))
        rows.append({**dict(zip(groups, key, strict=True)), **result})
    out = pd.DataFrame(rows, columns=[*groups, *ESTIMATE_COLUMNS])
    out.attrs["quantity"] = quantity
    out.attrs["basis"] = basis
    out.attrs["level"] = level
    return out


def _plan_strata(table: pd.DataFrame, plan: pd.DataFrame) -> tuple[pd.Series, pd.Series, str]:
    """Each work order's stratum under the plan's design, the sampled ids, and a note; raises
    when the frame is not the population the plan was drawn from."""
    design = plan.attrs.get("design")
    if not isinstance(design, dict) or "strata" not in design:
        raise AuditInputError(
            "the plan has no design (attrs['design']): use the frame dfs.audit.review_sample "
            "returned, or dfs.audit.load_plan."
        )
    strata = _strata(table, design.get("by") or [])
    counts = strata.value_counts()
    expected = {h: s["population"] for h, s in design["strata"].items()}
    found = {h: int(counts.get(h, 0)) for h in set(expected) | set(counts.index)}
    if any(found[h] != expected.get(h, 0) for h in found):
        raise AuditInputError(
            "this frame is not the population the plan was drawn from (work orders per stratum "
            f"differ: plan {expected}, frame {found}). Load the frame with the plan's filters "
            f"({design.get('filters')}) and as_of={design.get('version')}."
        )
    sampled = plan["work_order_id"].astype(str)
    unknown = set(sampled) - set(table["work_order_id"])
    if unknown:
        raise AuditInputError(
            f"{len(unknown)} of the plan's work orders are not in this frame "
            f"(e.g. {sorted(unknown)[0]!r}): load it with the plan's filters and as_of."
        )
    return strata, sampled, "the plan's strata"


def _poststrata(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """Strata of what is known for every work order, fine enough to matter and coarse enough
    that each keeps 2 reviewed work orders; and their description."""
    reviewed = table["reviewed"].astype(bool)
    if int(reviewed.sum()) < 2:
        raise AuditInputError(
            "site_estimate needs at least 2 reviewed work orders in the frame; draw a plan "
            "(dfs.audit.review_sample) and have it reviewed."
        )
    base = (
        table[f"{AI_NONCONFORMITY}_band"].astype(str)
        if f"{AI_NONCONFORMITY}_band" in table.columns
        else pd.Series("all", index=table.index)
    )
    base = _merge_thin_bands(base, reviewed)
    candidates = [(base, "the AI's non-conformity band")]
    if "app_version_id" in table.columns:
        version = table["app_version_id"].astype(str)
        candidates.insert(0, (base + " / " + version, "the AI's non-conformity band x app version"))
    if "create_date" in table.columns:
        month = utc_dates(table["create_date"]).dt.strftime("%Y-%m")
        candidates.insert(
            len(candidates) - 1, (base + " / " + month, "the AI's non-conformity band x month")
        )
    for strata, description in candidates:
        per = reviewed.groupby(strata).sum()
        if (per >= 2).all():
            return strata, description
    return base, "the AI's non-conformity band"


def _merge_thin_bands(bands: pd.Series, reviewed: pd.Series) -> pd.Series:
    """Bands with fewer than 2 reviewed work orders merged into their neighbour, in order."""
    known, seen = band_labels(), set(bands)
    order = [b for b in known if b in seen] + sorted(seen - set(known))
    merged = {label: label for label in order}
    groups: list[list[str]] = []
    for label in order:
        if groups and int(reviewed[bands.isin(groups[-1])].sum()) < 2:
            groups[-1].append(label)
        else:
            groups.append([label])
    if len(groups) > 1 and int(reviewed[bands.isin(groups[-1])].sum()) < 2:
        groups[-2].extend(groups.pop())
    for members in groups:
        for label in members:
            merged[label] = " + ".join(members)
    return bands.map(merged)


def _estimate(units: pd.DataFrame, table: pd.DataFrame, method: str, level: float) -> dict:
    """The estimate of one group: ratio of totals over the population's work orders, from
    the reviewed sampled ones, stratum by stratum."""
    population = table[table["work_order_id"].isin(set(units["work_order_id"]))]
    n_pop = len(population)
    out: dict[str, Any] = {
        "method": method,
        "population_work_orders": n_pop,
        "population_tasks": int(units["m"].sum()),
        "reviewed_share": float(population["reviewed"].mean()) if n_pop else math.nan,
    }
    used = units[units["sampled"] & units["reviewed"].astype(bool)]
    out["not_yet_reviewed"] = int((units["sampled"] & ~units["reviewed"].astype(bool)).sum())
    out["n_work_orders"] = int(used["work_order_id"].nunique())
    out["n_tasks"] = int(used["m"].sum())
    size = units.groupby("stratum").size()  # N_h: work orders of the group, per stratum
    stats = []
    for h, part in used.groupby("stratum"):
        stats.append((h, int(size[h]), part))
    covered = sum(n for _, n, _ in stats)
    if not stats:
        return {
            **out,
            "estimate": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "std_error": math.nan,
        }
    # Hájek ratio: totals of y and m estimated stratum by stratum
    y_hat = sum(n / len(p) * p["y"].sum() for _, n, p in stats)
    m_hat = sum(n / len(p) * p["m"].sum() for _, n, p in stats)
    ratio = y_hat / m_hat
    variance = _variance(stats, lambda p: p["y"] - ratio * p["m"]) / m_hat**2
    estimate = ratio
    if method == "ppi":
        estimate, variance, fallback = _ppi(stats, units, ratio, variance, m_hat, level)
        out["_fallback"] = fallback
    low, high = _interval(estimate, variance, out["n_tasks"], level, census=covered == n_pop)
    out.update(
        estimate=float(estimate),
        ci_low=float(low),
        ci_high=float(high),
        std_error=float(math.sqrt(variance)),
    )
    if covered < n_pop:  # strata without a reviewed work order are not covered
        out["population_work_orders"] = covered
    return out


def _variance(stats: list[tuple[Any, int, pd.DataFrame]], residual: Any) -> float:
    """Stratified variance of a total from per-work-order residuals, with the
    finite-population correction; a stratum with one reviewed work order borrows the
    pooled within-stratum variance of the others."""
    terms, pooled = [], []
    for _, n_h, part in stats:
        r = residual(part).to_numpy(dtype=float)
        s2 = float(np.var(r, ddof=1)) if len(r) > 1 else math.nan
        if not math.isnan(s2):
            pooled.append(s2)
        terms.append((n_h, len(r), s2))
    fallback = float(np.mean(pooled)) if pooled else 0.0
    total = 0.0
    for n_h, r_h, s2 in terms:
        s2 = fallback if math.isnan(s2) else s2
        total += n_h**2 * (1 - r_h / n_h) * s2 / r_h
    return max(total, 0.0)


def _ppi(
    stats: list[tuple[Any, int, pd.DataFrame]],
    units: pd.DataFrame,
    ratio: float,
    design_variance: float,
    m_hat: float,
    level: float,
) -> tuple[float, float, bool]:
    """Power-tuned PPI: the design estimate corrected, stratum by stratum, by how far the
    AI's predictions on the sample are from its predictions on the whole stratum. Returns
    the estimate, its variance, and whether it fell back to the design estimate."""
    f_total = units.groupby("stratum")["f"].sum()
    pooled_num = pooled_den = 0.0
    per: dict[Any, tuple[float, float]] = {}
    for h, n_h, part in stats:
        a = (part["y"] - ratio * part["m"]).to_numpy(dtype=float)
        f = part["f"].to_numpy(dtype=float)
        r_h = len(part)
        c_h = n_h**2 * (1 - r_h / n_h) / r_h
        if r_h > 1:
            cov = float(np.cov(a, f, ddof=1)[0, 1])
            var = float(np.var(f, ddof=1))
            per[h] = (cov, var)
            pooled_num += c_h * cov
            pooled_den += c_h * var
    pooled = pooled_num / pooled_den if pooled_den > 0 else 0.0
    shift = 0.0
    lambdas: dict[Any, float] = {}
    for h, n_h, part in stats:
        cov, var = per.get(h, (0.0, 0.0))
        # per stratum when it has enough reviews to estimate its own, else pooled
        lam = cov / var if len(part) >= 10 and var > 0 else pooled
        lambdas[h] = lam
        shift += lam * (n_h / len(part) * part["f"].sum() - float(f_total.get(h, 0.0)))
    estimate = ratio - shift / m_hat

    def residual(p: pd.DataFrame) -> pd.Series:
        return p["y"] - estimate * p["m"] - lambdas[p["stratum"].iloc[0]] * p["f"]

    variance = _variance(stats, residual) / m_hat**2
    wide = _width(estimate, variance, level) > _width(ratio, design_variance, level)
    if variance > design_variance or wide:
        return ratio, design_variance, True
    return estimate, variance, False


def _width(estimate: float, variance: float, level: float) -> float:
    low, high = _interval(estimate, variance, 1, level, census=False)
    return high - low


def _interval(
    estimate: float, variance: float, n_tasks: int, level: float, *, census: bool
) -> tuple[float, float]:
    """A Wilson interval at the effective sample size p(1-p)/variance; a census has none."""
    if census and variance <= 0:
        return estimate, estimate
    p = min(max(estimate, 0.0), 1.0)
    # no spread seen (no event, or all events): as many draws as tasks
    n_eff = p * (1 - p) / variance if variance > 0 and 0 < p < 1 else float(max(n_tasks, 1))
    low, high = wilson_interval(p * n_eff, n_eff, level)
    return float(low), float(high)


def _assumption(method: str, what: str, note: str, fallback: bool) -> str:
    base = {
        "design": f"A random sample of work orders under {note}; sampled work orders not yet "
        "reviewed are taken as missing at random within their stratum.",
        "ppi": f"A random sample of work orders under {note}, corrected by the AI's verdicts "
        "on every work order (prediction-powered, power-tuned); sampled work orders not yet "
        "reviewed are taken as missing at random within their stratum.",
        "poststratified": f"Reviews are random within these strata: {note}. Nobody drew "
        "these reviews at random, so the figure is only as good as this assumption.",
    }[method]
    if fallback:
        base += " The AI's verdicts did not narrow the interval here: it is the design estimate."
    return f"Share of {what}. {base}"
