"""Audit of the AI's verdicts: how often humans overturn them, where, and since when.

Definitions
-----------
- A task **counts for an audit** when it was analysed (it has an ``analyzed_value``) on a
  reviewed work order (``review_date`` set): only then did a human look at the AI's verdict.
- It is **overridden** when its ``corrected_value`` is set and differs from its
  ``analyzed_value``. A correction to the same value is agreement, not an override.
- Its **verdict is overridden** (``is_verdict_overridden``) when the corrected value matches
  another verdict rule of the task than the AI's value (rules compared by identity within the
  app version; a value that matches no rule is the verdict "no rule"). A changed serial
  number that is still readable changes the value, not the verdict. Tasks without rules
  have no verdict and are left out of verdict-level figures.
- ``basis="value"`` (the default) counts changed values, ``basis="verdict"`` flipped
  verdicts, in :func:`override_rates`, :func:`drift`, :func:`funnel`, :func:`summary`,
  :func:`sample` and the plots; :func:`confusion` tabulates verdicts (stable labels, see
  ``rules.rule_labels``) or values.
- Groups are keyed by task and task-group *names*: ids change between app versions. A
  missing group (no field engineer...) is shown as ``"(none)"``.

Every function takes a tasks frame (:func:`dfs_analytics.load_tasks`) and returns a frame, so
notebook cells chain. Intervals are Wilson score intervals with the exact normal quantile of
the requested ``level``. A frame without the needed columns, or an unknown ``by`` column,
raises :class:`AuditInputError` naming what is missing.

Dask
----
:func:`override_rates`, :func:`confusion`, :func:`drift` and :func:`funnel` also take a Dask
DataFrame (e.g.
``dataset.to_dask("tasks")``) and return a pandas frame, exactly the one they return for the
same rows computed into pandas. Only the needed columns are read, each partition is reduced
to counts per group, the counts are summed in a tree, and the statistics (Wilson intervals,
Fisher tests, labels, ordering) run on that small result in pandas. The pandas path goes
through the very same counts, so there is one implementation of each figure. Dask stays
optional: nothing here imports it (a Dask frame is recognised by its type's module).

Never
-----
This module never does I/O (no HTTP, no files, no dataset writes), never changes the frame it
is given (derived keys go to a copy), and never re-decides what a value is: effective values,
missing values and JSON equality come from :mod:`dfs_analytics.rules`, the override flags from
the tasks frame (:mod:`dfs_analytics.normalize`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from .errors import AuditInputError, ConfigurationError
from .rules import NO_RULE, effective_values, is_missing, json_key

if TYPE_CHECKING:  # Dask is optional: never imported at run time
    import dask.dataframe as dd

TasksFrame: TypeAlias = "pd.DataFrame | dd.DataFrame"
"""A pandas tasks frame, or a Dask DataFrame with the same columns."""

NOT_ANALYSED = "not analysed"
OTHER = "other"
NO_VERDICT = "no verdict"
"""Confusion label of an analysed task without rules: it has no verdict."""
NONE_LABEL = "(none)"
"""How a missing group (a work order without field engineer...) is shown."""
TIME_KEYS = {"day": "D", "week": "W", "month": "M", "quarter": "Q"}
BASES = ("value", "verdict")
_FLAG_COLUMN = {"value": "is_overridden", "verdict": "is_verdict_overridden"}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _is_dask_frame(obj: Any) -> bool:
    """Whether ``obj`` is a Dask DataFrame, without importing dask (it is optional)."""
    kind = type(obj)
    return kind.__module__.startswith("dask") and any(
        base.__name__ == "DataFrame" for base in kind.__mro__
    )


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame) and not _is_dask_frame(frame):
        raise AuditInputError(
            f"{what} needs a tasks DataFrame (from dfs.load_tasks), got {type(frame).__name__}."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AuditInputError(
            f"{what} needs the column(s) {', '.join(missing)}, missing from this frame; "
            "use the frame of dfs.load_tasks (or keep these columns)."
        )


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _key_sources(
    frame: pd.DataFrame, by: list[str], what: str, date_column: str = "create_date"
) -> list[str]:
    """The columns the ``by`` keys are read from (a time key reads ``date_column``); raises
    :class:`AuditInputError` for a key that is neither a column nor a time key."""
    sources: list[str] = []
    for key in by:
        if key in frame.columns:
            sources.append(key)
        elif key in TIME_KEYS:
            _require(frame, [date_column], f"{what}(by={key!r})")
            sources.append(date_column)
        else:
            raise AuditInputError(
                f"{what}: unknown by column {key!r}; use a column of the frame (e.g. task_name, "
                f"task_group_name, field_engineer_email, app_version_id) or one of "
                f"{', '.join(TIME_KEYS)} (periods of {date_column})."
            )
    return sources


def _with_keys(
    tasks: pd.DataFrame, by: list[str], what: str, date_column: str = "create_date"
) -> pd.DataFrame:
    """Add derived time keys (``week`` ...) and check that every ``by`` column exists."""
    _key_sources(tasks, by, what, date_column)
    frame = tasks
    for key in by:
        if key not in frame.columns:
            frame = frame if frame is not tasks else frame.copy()
            frame[key] = _period_start(frame[date_column], TIME_KEYS[key])
    return frame


def _flag_column(basis: str) -> str:
    """The column that says whether a task was overridden on ``basis``."""
    if basis not in _FLAG_COLUMN:
        raise ConfigurationError(
            f"basis must be 'value' (changed values) or 'verdict' (flipped verdicts), "
            f"got {basis!r}."
        )
    return _FLAG_COLUMN[basis]


def _require_basis(frame: Any, basis: str, what: str) -> str:
    column = _flag_column(basis)
    if basis == "verdict" and column not in getattr(frame, "columns", [column]):
        raise AuditInputError(
            f"{what}(basis='verdict') needs the column is_verdict_overridden, missing from "
            "this frame; load the tasks again with dfs.load_tasks (the tasks frame has it "
            "since the dataset's schema 2), or use basis='value'."
        )
    return column


def show_missing(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with missing values of the label columns among ``columns`` (text and
    categorical ones, not dates or numbers) shown as ``"(none)"``; categoricals gain that
    category last. Returns a new frame (the input is not changed)."""
    out = frame
    for col in columns:
        if col not in out.columns:
            continue
        series = out[col]
        if not series.isna().any():
            continue
        if isinstance(series.dtype, pd.CategoricalDtype):
            if NONE_LABEL not in series.cat.categories:
                series = series.cat.add_categories([NONE_LABEL])
            filled = series.fillna(NONE_LABEL)
        elif pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(
            series.dtype
        ):
            filled = series.astype(object).where(series.notna(), NONE_LABEL)
            if pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
                series.dtype
            ):
                filled = filled.astype(series.dtype)
        else:
            continue
        out = out.copy() if out is frame else out
        out[col] = filled
    return out


def app_version_labels(ids: Any, tasks: pd.DataFrame | None = None) -> dict[Any, str]:
    """How to show app versions: ``{app_version_id: label}`` for the ids in ``ids``.

    The label is the version's name where the frame carries one (a column
    ``app_version_name``, ``app_version_label`` or ``app_version`` holding text), otherwise a
    short id (the first 8 characters); a missing id is ``"(none)"``.
    """
    names: dict[Any, str] = {}
    if tasks is not None and "app_version_id" in tasks.columns:
        for column in ("app_version_name", "app_version_label", "app_version"):
            if column in tasks.columns:
                pairs = tasks[["app_version_id", column]].dropna().drop_duplicates("app_version_id")
                names.update(
                    {
                        i: str(v)
                        for i, v in zip(pairs["app_version_id"], pairs[column], strict=True)
                        if isinstance(v, str) and v.strip()
                    }
                )
                break
    out: dict[Any, str] = {}
    for i in pd.unique(pd.Series(list(ids), dtype=object)):
        if is_missing(i):
            out[i] = NONE_LABEL
        else:
            out[i] = names.get(i, str(i)[:8])
    return out


def _reduce(
    tasks: TasksFrame,
    columns: Sequence[str],
    chunk: Callable[[pd.DataFrame], pd.DataFrame],
    aggregate: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """``aggregate(chunk(tasks))`` for a pandas frame. For a Dask frame: only ``columns`` are
    read, ``chunk`` turns each partition into counts, ``aggregate`` sums concatenated counts
    (in a tree), and the small pandas result is computed. ``aggregate`` must be idempotent on
    its own output, so that both paths give the same frame."""
    if isinstance(tasks, pd.DataFrame):
        return aggregate(chunk(tasks))
    frame = tasks[list(dict.fromkeys(columns))]
    meta = aggregate(chunk(frame._meta))
    return frame.reduction(chunk, aggregate=aggregate, meta=meta).compute()


def _utc_dates(dates: pd.Series) -> pd.Series:
    """``dates`` as tz-aware UTC timestamps: strings (a frame read back from CSV or JSON) are
    parsed, naive timestamps are taken as UTC. Raises :class:`AuditInputError` naming the
    column and a value that is not a date."""
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        return dates.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(dates.dtype):
        return dates.dt.tz_localize("UTC")
    try:
        return pd.to_datetime(dates, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise AuditInputError(
            f"column {dates.name!r} holds values that are not ISO-8601 dates "
            f"({str(exc).splitlines()[0]}); parse it "
            f"first, e.g. frame[{dates.name!r}] = pd.to_datetime(frame[{dates.name!r}], "
            "utc=True, format='mixed'), or read the CSV with parse_dates=[...]."
        ) from None


def _period_start(dates: pd.Series, freq: str) -> pd.Series:
    """The start of each date's period, as a tz-aware UTC timestamp (strings are parsed)."""
    naive = _utc_dates(dates).dt.tz_localize(None)
    return naive.dt.to_period(freq).dt.start_time.dt.tz_localize("UTC")


def audited(tasks: pd.DataFrame, reviewed_only: bool = True) -> pd.DataFrame:
    """The tasks that count for an audit: analysed, on a reviewed work order (unless
    ``reviewed_only=False``). Returns those rows of the input."""
    _require(tasks, ["analyzed", "reviewed"], "audited")
    return tasks[_audited_mask(tasks, reviewed_only)]


def _flag(column: pd.Series) -> pd.Series:
    """A nullable flag as plain booleans (missing = False)."""
    return column.fillna(False).astype(bool)


def _audited_mask(tasks: pd.DataFrame, reviewed_only: bool) -> pd.Series:
    mask = _flag(tasks["analyzed"])
    if reviewed_only:
        mask &= _flag(tasks["reviewed"])
    return mask


def z_value(level: float) -> float:
    """The two-sided normal quantile for a confidence ``level`` (1.959963... for 0.95)."""
    # the upper tail must stay a float below 1 (0.9999999999999999 rounds it to 1.0)
    if not 0 < level <= 1 - 1e-10:
        raise ConfigurationError(
            f"level must be a confidence level between 0 and 1 such as 0.95 (at most "
            f"0.9999999999), got {level!r}."
        )
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def wilson_interval(k: Any, n: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval(s) for ``k`` successes out of ``n``; ``n == 0`` gives [0, 1]."""
    z = z_value(level)
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / n, 0.0)
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        low = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
        high = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    # exact edges: no overrides at all -> low is 0; all overridden -> high is 1
    low = np.where((n > 0) & (k == 0), 0.0, low)
    high = np.where((n > 0) & (k == n), 1.0, high)
    return low, high


# --------------------------------------------------------------------------------------------
# override rates
# --------------------------------------------------------------------------------------------


def override_rates(
    tasks: TasksFrame,
    by: str | Sequence[str] | None = "task_name",
    reviewed_only: bool = True,
    level: float = 0.95,
    basis: str = "value",
) -> pd.DataFrame:
    """How often humans overturned the AI, per group, with Wilson intervals.

    ``tasks`` is a pandas or a Dask tasks frame; the result is a pandas frame either way.
    ``basis="value"`` counts changed values (``is_overridden``), ``basis="verdict"`` flipped
    verdicts (``is_verdict_overridden``; tasks without rules are left out, so n counts only
    tasks that have a verdict). Returns one row per group of ``by`` (any column(s) of the
    frame, or ``"week"``, ``"month"``, ``"day"``, ``"quarter"`` of ``create_date``; ``None``
    for one overall row): ``n`` (tasks that count for the audit), ``n_overridden``, ``rate``
    (n_overridden / n; NaN when n = 0), ``ci_low``, ``ci_high`` (the ``level`` Wilson
    interval; [0, 1] when n = 0). Groups present in the frame but with no audited task are
    kept with n = 0, so a task never reviewed does not vanish. Rows are ordered by the ``by``
    columns (time keys in date order, categoricals in their categories' order), which keep
    their dtypes; a missing group is shown as ``"(none)"``, last. ``attrs`` holds ``level``
    and ``basis``.
    """
    keys = _as_list(by)
    flag = _require_basis(tasks, basis, "override_rates")
    _require(tasks, ["analyzed", "reviewed", flag], "override_rates")
    z_value(level)
    out = _rates_table(tasks, keys, reviewed_only, level, basis, "override_rates")
    out.attrs.update(level=level, basis=basis)
    return out


def _rates_table(
    tasks: TasksFrame, keys: list[str], reviewed_only: bool, level: float, basis: str, what: str
) -> pd.DataFrame:
    flag = _flag_column(basis)
    sources = _key_sources(tasks, keys, what)
    counts = _reduce(
        tasks,
        [*sources, "analyzed", "reviewed", flag],
        partial(_override_counts, keys=keys, reviewed_only=reviewed_only, basis=basis),
        partial(_sum_counts, keys=keys),
    )
    out = counts.astype({"n": "int64", "n_overridden": "int64"})
    out["rate"] = np.where(out["n"] > 0, out["n_overridden"] / out["n"].where(out["n"] > 0), np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_overridden"], out["n"], level)
    if keys:
        out = show_missing(out.sort_values(keys, kind="stable"), keys)
    return out.reset_index(drop=True)


def _override_counts(
    part: pd.DataFrame, keys: list[str], reviewed_only: bool, basis: str = "value"
) -> pd.DataFrame:
    """Per group of ``keys`` present in ``part`` (missing keys included): ``n`` audited tasks
    (with a verdict, on the verdict basis) and ``n_overridden``, in int64; one row when there
    are no keys."""
    frame = _with_keys(part, keys, "override_rates")
    column = frame[_flag_column(basis)]
    mask = _audited_mask(frame, reviewed_only)
    if basis == "verdict":
        mask &= column.notna().to_numpy()
    counts = frame[keys].assign(
        n=mask.astype("int64"), n_overridden=(mask & _flag(column)).astype("int64")
    )
    return _sum_counts(counts, keys)


def _sum_counts(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    values = [c for c in counts.columns if c not in keys]
    if not keys:
        return counts[values].sum().to_frame().T.astype("int64")
    summed = counts.groupby(keys, observed=True, dropna=False)[values].sum()
    return summed.reset_index()


# --------------------------------------------------------------------------------------------
# confusion and agreement
# --------------------------------------------------------------------------------------------


# the columns a side of the confusion reads, per mode: (AI's, final)
_VERDICT_COLUMNS = {"verdict": ("ai_verdict", "verdict"), "sentence": ("ai_message", "message")}


def _verdicts(frame: pd.DataFrame, mode: str = "sentence", final: bool = False) -> pd.Series:
    """The AI's (or, with ``final``, the final) label of each task for the confusion table:
    its value's text (``mode="value"``; the final value is the rules' effective value), its
    stable verdict label (``"verdict"``; ``"no verdict"`` when it has none) or its sentence
    (``"sentence"``; ``"other"`` when none); ``"not analysed"`` for a task without value."""
    analysed = _flag(frame["analyzed"])
    if final:
        analysed = analysed | frame["corrected_value"].notna()
    if mode == "value":
        analyzed = frame["analyzed_value"]
        values = effective_values(frame["corrected_value"], analyzed) if final else analyzed
        label = values.map(_value_text)
    else:
        column = frame[_VERDICT_COLUMNS[mode][final]]
        label = column.astype(object).where(
            column.notna(), NO_VERDICT if mode == "verdict" else OTHER
        )
    return label.where(analysed, NOT_ANALYSED)


def _value_text(value: Any) -> str:
    """A task value as a confusion label: JSON spelling for booleans, plain text otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_CONFUSION_COLUMNS = {
    "sentence": ["ai_message", "message"],
    "verdict": ["ai_verdict", "verdict"],
    "value": ["analyzed_value"],
}


def confusion(
    tasks: TasksFrame,
    task_name: str | Sequence[str] | None = None,
    normalize: str | None = None,
    reviewed_only: bool = True,
    basis: str = "verdict",
    labels: str = "verdict",
) -> pd.DataFrame:
    """AI verdict (rows) x final verdict after human review (columns).

    ``tasks`` is a pandas or a Dask tasks frame; the result is a pandas frame either way.
    ``basis="verdict"`` (the default) tabulates verdicts: with ``labels="verdict"`` their
    stable labels (``ai_verdict`` / ``verdict``: ``"conform"``, ``"not conform"``,
    ``"no rule"`` for a value no rule matches, the same across app versions even where the
    sentence was reworded; analysed tasks without rules are ``"no verdict"``), with
    ``labels="sentence"`` the verdict sentences (``ai_message`` / ``message``; a value no
    rule matches is ``"other"``). ``basis="value"`` tabulates the AI's value against the
    final value. ``attrs["sentences"]`` maps each stable label to the sentence(s) seen for
    it, for display.

    Counts every task of the selected task name(s) on reviewed work orders (all of them with
    ``reviewed_only=False``), including the ones the AI never analysed (row and column
    ``"not analysed"``), so nothing is hidden. Labels are ordered by how often they occur
    (rows plus columns, ties by name), the special buckets last. ``normalize``: None (int64
    counts, margins in the ``"total"`` row and column), ``"index"`` (rows sum to 1),
    ``"columns"`` or ``"all"`` (shares, no margins; NaN where a row or column is empty).
    """
    if basis not in BASES:
        _flag_column(basis)
    if labels not in ("verdict", "sentence"):
        raise ConfigurationError("labels must be 'verdict' (stable labels) or 'sentence'.")
    mode = "value" if basis == "value" else labels
    _require(
        tasks,
        ["analyzed", "reviewed", "corrected_value", *_CONFUSION_COLUMNS[mode]],
        "confusion"
        if mode != "verdict"
        else "confusion (stable verdict labels; labels='sentence' works on older frames)",
    )
    if normalize not in (None, "index", "columns", "all"):
        raise ConfigurationError("normalize must be None, 'index', 'columns' or 'all'.")
    names = None if task_name is None else _as_list(task_name)
    keys = ["reviewed", "ai_verdict", "final_verdict"]
    if names is not None:
        _require(tasks, ["task_name"], "confusion(task_name=...)")
        keys.insert(0, "task_name")
    display = mode == "verdict" and {"ai_message", "message"} <= set(tasks.columns)
    if display:
        keys += ["ai_sentence", "final_sentence"]
    needed = ["analyzed", "corrected_value", *_CONFUSION_COLUMNS[mode]]
    if display:
        needed += ["ai_message", "message"]
    counts = _reduce(
        tasks,
        [*(["task_name"] if names is not None else []), "reviewed", *needed],
        partial(_confusion_counts, names=names, mode=mode, display=display),
        partial(_sum_counts, keys=keys),
    )
    if names is not None:
        unknown = sorted(set(names) - set(counts["task_name"].dropna()))
        if unknown:
            raise AuditInputError(
                f"confusion: no task named {', '.join(map(repr, unknown))} in this frame."
            )
    if reviewed_only:
        counts = counts[counts["reviewed"].astype(bool)]
    pairs = counts.groupby(["ai_verdict", "final_verdict"])["count"].sum()
    totals = pairs.groupby(level=0).sum().add(pairs.groupby(level=1).sum(), fill_value=0)
    order = _label_order(totals)
    table = pairs.unstack(fill_value=0) if len(pairs) else pd.DataFrame()
    table = table.reindex(index=order, columns=order, fill_value=0).astype("int64")
    table.index = pd.CategoricalIndex(order, categories=order, name="ai_verdict")
    table.columns = pd.CategoricalIndex(order, categories=order, name="final_verdict")
    sentences = _sentences(counts) if display else {}
    if normalize is None:
        table.loc["total"] = table.sum(axis=0)
        table["total"] = table.sum(axis=1)
    else:
        total = table.to_numpy().sum()
        if normalize == "index":
            table = table.div(table.sum(axis=1).replace(0, np.nan), axis=0)
        elif normalize == "columns":
            table = table.div(table.sum(axis=0).replace(0, np.nan), axis=1)
        else:
            table = table / total if total else table.astype(float)
    table.attrs.update(basis=basis, labels=mode, sentences=sentences)
    return table


def _sentences(counts: pd.DataFrame) -> dict[str, str]:
    """Each stable label's sentence(s), the most frequent first, joined by " / "."""
    rows = pd.concat(
        [
            counts[["ai_verdict", "ai_sentence", "count"]].set_axis(
                ["label", "sentence", "count"], axis=1
            ),
            counts[["final_verdict", "final_sentence", "count"]].set_axis(
                ["label", "sentence", "count"], axis=1
            ),
        ]
    )
    rows = rows[rows["sentence"].notna() & (rows["sentence"] != "")]
    out: dict[str, str] = {}
    for label, group in rows.groupby("label", sort=True):
        seen = group.groupby("sentence")["count"].sum()
        ordered = sorted(seen.index, key=lambda v: (-seen[v], str(v)))
        out[str(label)] = " / ".join(str(v) for v in ordered)
    return out


def _confusion_counts(
    part: pd.DataFrame, names: list[str] | None, mode: str = "sentence", display: bool = False
) -> pd.DataFrame:
    """Tasks per (task name if ``names``), reviewed flag, AI verdict and final verdict (and
    their sentences when ``display``)."""
    frame = part if names is None else part[part["task_name"].isin(names)]
    columns: dict[str, Any] = {
        "reviewed": _flag(frame["reviewed"]),
        "ai_verdict": _verdicts(frame, mode),
        "final_verdict": _verdicts(frame, mode, final=True),
    }
    keys = ["reviewed", "ai_verdict", "final_verdict"]
    if display:
        columns["ai_sentence"] = frame["ai_message"].astype(object).fillna("")
        columns["final_sentence"] = frame["message"].astype(object).fillna("")
        keys += ["ai_sentence", "final_sentence"]
    columns["count"] = np.ones(len(frame), dtype="int64")
    counts = pd.DataFrame(columns, index=frame.index)
    if names is not None:
        counts.insert(0, "task_name", frame["task_name"].astype(object))
        keys.insert(0, "task_name")
    return _sum_counts(counts, keys)


_SPECIAL = (NO_RULE, OTHER, NO_VERDICT, NOT_ANALYSED)


def _label_order(totals: pd.Series) -> list[str]:
    """Verdict labels by decreasing count (ties by name), the special buckets (``no rule``,
    ``other``, ``no verdict``, ``not analysed``) last."""
    present = [v for v, count in totals.items() if count > 0]
    named = sorted((v for v in present if v not in _SPECIAL), key=lambda v: (-totals[v], v))
    return named + [v for v in _SPECIAL if v in present]


def agreement(
    tasks: pd.DataFrame, by: str | Sequence[str] = "task_name", reviewed_only: bool = True
) -> pd.DataFrame:
    """Cohen's kappa between the AI's value and the final value, per group.

    Returns ``by`` columns, ``n`` (audited tasks), ``observed`` (share of identical values),
    ``expected`` (agreement expected by chance from the two marginal distributions) and
    ``kappa`` = (observed - expected) / (1 - expected); NaN when undefined (n = 0, or both
    raters always gave one and the same value). A missing group is shown as ``"(none)"``.
    """
    keys = _as_list(by)
    _require(tasks, ["analyzed", "reviewed", "analyzed_value", "corrected_value"], "agreement")
    frame = _with_keys(tasks, keys, "agreement")
    counted = audited(frame, reviewed_only)
    rows = []
    groups = dict(
        list(counted.groupby(keys, observed=True, dropna=False)) if keys else [((), counted)]
    )
    # groups present in the frame but with nothing audited are kept, with n = 0
    for key in frame[keys].drop_duplicates().itertuples(index=False, name=None) if keys else []:
        k = key if len(keys) > 1 else key[0]
        if not any(_same_key(k, g) for g in groups):
            groups[k] = counted.iloc[0:0]
    for key, group in groups.items():
        ai = [json_key(v) for v in group["analyzed_value"]]
        final_values = effective_values(group["corrected_value"], group["analyzed_value"])
        final = [json_key(v) for v in final_values]
        n = len(ai)
        observed = sum(a == f for a, f in zip(ai, final, strict=True)) / n if n else math.nan
        pa = pd.Series(ai, dtype=object).value_counts(normalize=True)
        pf = pd.Series(final, dtype=object).value_counts(normalize=True)
        expected = (
            float(sum(pa.get(v, 0.0) * pf.get(v, 0.0) for v in set(pa.index) | set(pf.index)))
            if n
            else math.nan
        )
        kappa = (observed - expected) / (1 - expected) if n and expected < 1 else math.nan
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(n=n, observed=observed, expected=expected, kappa=kappa)
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*keys, "n", "observed", "expected", "kappa"])
    if not keys:
        return out
    return show_missing(out.sort_values(keys, kind="stable", ignore_index=True), keys)


def _same_key(a: Any, b: Any) -> bool:
    a_t = a if isinstance(a, tuple) else (a,)
    b_t = b if isinstance(b, tuple) else (b,)
    return len(a_t) == len(b_t) and all(
        is_missing(y) if is_missing(x) else x == y for x, y in zip(a_t, b_t, strict=True)
    )


# --------------------------------------------------------------------------------------------
# drift
# --------------------------------------------------------------------------------------------


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test for k1/n1 vs k2/n2 (no scipy needed)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    total, successes = n1 + n2, k1 + k2

    def logp(x: int) -> float:
        return _lcomb(successes, x) + _lcomb(total - successes, n1 - x) - _lcomb(total, n1)

    lo, hi = max(0, successes - n2), min(successes, n1)
    observed = logp(k1)
    probs = [logp(x) for x in range(lo, hi + 1)]
    cutoff = observed + 1e-7
    p = sum(math.exp(v) for v in probs if v <= cutoff)
    return min(1.0, p)


def _lcomb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiple-testing adjusted p-values: ``"holm"`` (family-wise error) or ``"bh"``
    (Benjamini-Hochberg, false discovery rate). NaN p-values stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q)
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method in ("bh", "fdr_bh"):
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ConfigurationError("method must be 'holm' or 'bh'.")
    result = np.empty(m)
    result[order] = np.clip(adj, 0, 1)
    out[ok] = result
    return out


def drift(
    tasks: TasksFrame,
    by: str | None = "app_version_id",
    freq: str | None = None,
    within: str | Sequence[str] | None = "task_name",
    reviewed_only: bool = True,
    level: float = 0.95,
    alpha: float = 0.05,
    method: str = "holm",
    date_column: str = "create_date",
    basis: str = "value",
) -> pd.DataFrame:
    """The override rate per period, and whether it changed significantly from the previous one.

    ``basis="value"`` counts changed values, ``basis="verdict"`` flipped verdicts (stable
    labels: a sentence reworded by an app upgrade is no flip; tasks without rules left out).

    Periods are the values of ``by`` (default: app versions, ordered by their first
    ``date_column``) or, with ``freq`` (``"W"``, ``"M"``, ``"D"``, ``"Q"``), periods of
    ``date_column``. Rates are computed per group of ``within`` (default: per task name).

    Returns ``within`` columns, ``period``, ``first_date`` (the earliest ``date_column`` of the
    group in that period), ``n``, ``n_overridden``, ``rate``, ``ci_low``,
    ``ci_high``, ``change`` (rate minus the previous period's), ``p_value`` (Fisher's exact
    test against the previous period), ``p_adjusted`` (``method``: Holm controls the chance of
    any false flag over the whole table; ``"bh"`` the false discovery rate) and ``flagged``
    (``p_adjusted < alpha``).
    """
    if (by is None) == (freq is None):
        raise ConfigurationError("drift needs by=<column> or freq='W'/'M'/..., not both.")
    groups = _as_list(within)
    flag = _require_basis(tasks, basis, "drift")
    _require(tasks, ["analyzed", "reviewed", flag, date_column], "drift")
    sources = _key_sources(tasks, groups, "drift")
    if freq is None:
        _require(tasks, [by], "drift(by=...)")  # type: ignore[list-item]
    else:
        _period_start(pd.Series([], dtype="datetime64[ns, UTC]"), freq)  # a bad freq fails here
    needed = [*sources, date_column, "analyzed", "reviewed", flag]
    counts = _reduce(
        tasks,
        needed if freq is not None else [*needed, by],
        partial(
            _drift_counts,
            groups=groups,
            by=by,
            freq=freq,
            reviewed_only=reviewed_only,
            date_column=date_column,
            basis=basis,
        ),
        partial(_drift_sum, keys=[*groups, "period"]),
    )
    counts = show_missing(counts, groups)
    if freq is not None:
        order = sorted(counts["period"].dropna().unique())
    else:
        first = counts.groupby("period")["first_date"].min().sort_values(kind="stable")
        order = list(first.index)
    # rows with a missing group or period count for the period order only
    stats = counts[counts[[*groups, "period"]].notna().all(axis=1)].reset_index(drop=True)
    rank = {p: i for i, p in enumerate(order)}
    stats["_rank"] = stats["period"].map(rank)
    stats = stats.sort_values([*groups, "_rank"], kind="stable").reset_index(drop=True)
    stats["rate"] = stats["n_overridden"] / stats["n"]
    stats["ci_low"], stats["ci_high"] = wilson_interval(stats["n_overridden"], stats["n"], level)
    prev = stats.groupby(groups, observed=True, sort=False).shift(1) if groups else stats.shift(1)
    stats["change"] = stats["rate"] - prev["rate"]
    pvalues = []
    for row, before in zip(
        stats.itertuples(index=False), prev.itertuples(index=False), strict=True
    ):
        if is_missing(before.n):
            pvalues.append(np.nan)
        else:
            pvalues.append(
                fisher_exact(
                    int(row.n_overridden), int(row.n), int(before.n_overridden), int(before.n)
                )
            )
    stats["p_value"] = pvalues
    stats["p_adjusted"] = adjust_pvalues(stats["p_value"], method)
    stats["flagged"] = (stats["p_adjusted"] < alpha).fillna(False) if len(stats) else False
    stats["flagged"] = stats["flagged"].astype(bool)
    stats.attrs.update(level=level, alpha=alpha, method=method, basis=basis, by=by, freq=freq)
    return stats.drop(columns="_rank")


def _drift_counts(
    part: pd.DataFrame,
    groups: list[str],
    by: str | None,
    freq: str | None,
    reviewed_only: bool,
    date_column: str,
    basis: str = "value",
) -> pd.DataFrame:
    """Per group of ``groups`` and period (missing ones included) of the audited tasks of
    ``part``: ``first_date`` (earliest ``date_column``), ``n`` and ``n_overridden``."""
    frame = _with_keys(part, groups, "drift")
    flag = _flag_column(basis)
    mask = _audited_mask(frame, reviewed_only)
    if basis == "verdict":
        mask &= frame[flag].notna().to_numpy()
    counted = frame[mask]
    if freq is not None:
        period = _period_start(counted[date_column], freq)
    else:
        period = counted[by].astype(object)
    counts = counted[groups].assign(
        period=period,
        first_date=_utc_dates(counted[date_column]),
        n=np.ones(len(counted), dtype="int64"),
        n_overridden=_flag(counted[flag]).astype("int64"),
    )
    return _drift_sum(counts, [*groups, "period"])


def _drift_sum(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Drift counts summed per group of ``keys`` (missing keys are a group), keys as columns."""
    summed = counts.groupby(keys, observed=True, dropna=False).agg(
        first_date=("first_date", "min"), n=("n", "sum"), n_overridden=("n_overridden", "sum")
    )
    return summed.reset_index()


# --------------------------------------------------------------------------------------------
# fair rankings: funnel limits and empirical-Bayes shrinkage
# --------------------------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space (no scipy needed)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    logs = np.array(
        [_lcomb(n, x) + x * math.log(p) + (n - x) * math.log1p(-p) for x in range(k + 1)]
    )
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def binomial_quantile(q: float, n: int, p: float) -> int:
    """The smallest r with P(X <= r) >= q, for X ~ Binomial(n, p)."""
    if n <= 0:
        return 0
    if p <= 0:
        return 0
    if p >= 1:
        return n
    pmf = np.exp([_lcomb(n, x) + x * math.log(p) + (n - x) * math.log1p(-p) for x in range(n + 1)])
    cdf = np.cumsum(pmf)
    return int(min(n, np.searchsorted(cdf, q * cdf[-1] - 1e-12)))


def funnel_limits(n: Any, p: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Funnel-plot control limits for a rate out of ``n`` when the true rate is ``p``: the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of Binomial(n, p), divided by n
    (exact quantiles, so a rate outside the limits is a one-sided exact binomial test at
    ``(1 - level) / 2``). Returns (low, high) arrays; NaN where n = 0."""
    sizes = np.atleast_1d(np.asarray(n, dtype=float))
    low = np.full(sizes.shape, np.nan)
    high = np.full(sizes.shape, np.nan)
    tail = (1 - level) / 2
    for i, size in enumerate(sizes):
        if size > 0 and not math.isnan(p):
            m = int(size)
            low[i] = binomial_quantile(tail, m, p) / m
            high[i] = binomial_quantile(1 - tail, m, p) / m
    return low, high


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b): P(X <= x) for X ~ Beta(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """The ``q`` quantile of Beta(a, b), by bisection on :func:`beta_cdf` (to 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def beta_binomial_prior(k: Any, n: Any) -> tuple[float, float, float]:
    """Empirical-Bayes Beta(a, b) prior of the groups' true rates, by the method of moments.

    With p the pooled rate, N = sum(n), G the groups with n > 0 and S = sum(n_i (r_i - p)^2),
    the intra-class correlation rho = 1 / (a + b + 1) is estimated by
    ``(S / (p (1 - p)) - (G - 1)) / (N - sum(n_i^2) / N - (G - 1))`` (unbiased under the
    beta-binomial model), kept within [1e-6, 1 - 1e-6] (no spread between groups: shrink
    all the way). Returns ``(a, b, rho)``; (nan, nan, nan) without data.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    used = n > 0
    k, n = k[used], n[used]
    total = n.sum()
    if total == 0:
        return math.nan, math.nan, math.nan
    p = k.sum() / total
    groups = len(n)
    if p <= 0 or p >= 1 or groups < 2:
        rho = 1e-6
    else:
        spread = float((n * (k / n - p) ** 2).sum())
        denominator = total - (n**2).sum() / total - (groups - 1)
        rho = (spread / (p * (1 - p)) - (groups - 1)) / denominator if denominator > 0 else 0.0
        rho = min(max(rho, 1e-6), 1 - 1e-6)
    strength = 1 / rho - 1
    # a rate of exactly 0 or 1 overall: a proper prior all the same (shrinks towards p)
    p = min(max(p, 1e-9), 1 - 1e-9)
    return p * strength, (1 - p) * strength, rho


def funnel(
    tasks: TasksFrame,
    by: str | Sequence[str] = "field_engineer_email",
    basis: str = "value",
    reviewed_only: bool = True,
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
    ``level``, ``basis``.
    """
    keys = _as_list(by)
    if not keys:
        raise ConfigurationError("funnel needs by=<column(s)> (e.g. field_engineer_email).")
    flag = _require_basis(tasks, basis, "funnel")
    _require(tasks, ["analyzed", "reviewed", flag], "funnel")
    z_value(level)
    for limit in limits:
        z_value(limit)
    rates = _rates_table(tasks, keys, reviewed_only, level, basis, "funnel")
    rates = rates.drop(columns=["ci_low", "ci_high"])
    n = rates["n"].to_numpy(dtype=float)
    k = rates["n_overridden"].to_numpy(dtype=float)
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
    )
    return rates


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
    else:
        n = 50 if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigurationError(f"n must be a positive integer, got {n!r}.")
    if allocation not in ALLOCATIONS:
        raise ConfigurationError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}."
        )
    keys = _as_list(by)
    _require(tasks, ["work_order_id", "task_id", "analyzed", "reviewed"], "sample")
    flag = _flag_column(basis)
    if disputed or allocation == "neyman":
        _require_basis(tasks, basis, "sample")
        _require(tasks, [flag], "sample")
    frame = _with_keys(tasks, keys, "sample")
    if only_analysed:
        frame = frame[_flag(frame["analyzed"])]
    if reviewed_only:
        frame = frame[_flag(frame["reviewed"])]
    if disputed:
        frame = frame[_flag(frame[flag])]
    frame = frame.sort_values(["work_order_id", "task_id"], kind="stable")
    grouped = (
        list(frame.groupby(keys, observed=True, sort=True, dropna=False)) if keys else [((), frame)]
    )
    grouped = [(key, group) for key, group in grouped if len(group)]
    sizes = [len(group) for _, group in grouped]
    if n_per_group is not None:
        counts = [min(n_per_group, size) for size in sizes]
    elif allocation == "equal":
        counts = allocate(n, sizes, [1.0] * len(sizes))  # type: ignore[arg-type]
    elif allocation == "neyman":
        spread = []
        for (_, group), size in zip(grouped, sizes, strict=True):
            p = (int(_flag(group[flag]).sum()) + 1) / (size + 2)
            spread.append(size * math.sqrt(p * (1 - p)))
        counts = allocate(n, sizes, spread)  # type: ignore[arg-type]
    else:
        counts = allocate(n, sizes)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    picks = []
    for (_, group), size in zip(grouped, counts, strict=True):
        chosen = rng.choice(len(group), size=size, replace=False) if size else []
        picks.append(group.iloc[np.sort(np.asarray(chosen, dtype=int))])
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


PROVENANCE_ATTR = "dfs_provenance"


def provenance(frame: Any) -> dict[str, Any] | None:
    """Where a loaded frame's rows come from: a copy of ``frame.attrs["dfs_provenance"]``.

    Returns a dict such as ``{"dataset": "/path", "version": 12, "table": "tasks", "filters":
    {"created_after": "2026-01-01T00:00:00Z"}, "as_of": None}``, or None when the frame carries
    no provenance (built by hand, or attrs lost by a pandas operation). Read it from the frame
    the loader returned: some pandas operations drop ``attrs``.
    """
    attrs = getattr(frame, "attrs", None)
    found = attrs.get(PROVENANCE_ATTR) if isinstance(attrs, Mapping) else None
    return copy.deepcopy(dict(found)) if isinstance(found, Mapping) else None


def summary(tasks: pd.DataFrame, level: float = 0.95, basis: str = "value") -> dict[str, Any]:
    """Headline figures: work orders, audited tasks, overall override rate and its interval.

    Returns a dict: ``work_orders``, ``reviewed_work_orders``, ``tasks``, ``audited_tasks``
    (with a verdict, on ``basis="verdict"``), ``overridden`` (changed values, or flipped
    verdicts on ``basis="verdict"``), ``override_rate`` (a share; NaN without audited tasks),
    ``ci_low``, ``ci_high``, ``level``, ``basis``, and ``provenance`` (:func:`provenance` of
    ``tasks``: dataset path, version, table, filters and as_of the frame was loaded with, or
    None when unrecorded).
    """
    source = provenance(tasks)  # before anything else: attrs do not survive every operation
    flag = _require_basis(tasks, basis, "summary")
    _require(tasks, ["work_order_id", "analyzed", "reviewed", flag], "summary")
    counted = audited(tasks)
    if basis == "verdict":
        counted = counted[counted[flag].notna()]
    n = len(counted)
    k = int(counted[flag].fillna(False).sum())
    low, high = wilson_interval(k, n, level)
    return {
        "work_orders": int(tasks["work_order_id"].nunique()),
        "reviewed_work_orders": int(
            tasks.loc[tasks["reviewed"].fillna(False).astype(bool), "work_order_id"].nunique()
        ),
        "tasks": len(tasks),
        "audited_tasks": n,
        "overridden": k,
        "override_rate": k / n if n else math.nan,
        "ci_low": float(low),
        "ci_high": float(high),
        "level": level,
        "basis": basis,
        "provenance": source,
    }


__all__ = [
    "ALLOCATIONS",
    "BASES",
    "NONE_LABEL",
    "NOT_ANALYSED",
    "NO_VERDICT",
    "OTHER",
    "PROVENANCE_ATTR",
    "AuditInputError",
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
    "override_rates",
    "provenance",
    "sample",
    "sample_size",
    "show_missing",
    "summary",
    "wilson_interval",
    "z_value",
]
