"""The AI's verdicts against the final ones: :func:`confusion` tables (stable rule labels,
sentences or values) and :func:`agreement` (Cohen's kappa).

Never does I/O and never changes the frame it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AuditInputError, ConfigurationError
from ..rules import NO_RULE, effective_values, is_missing, json_key
from .frames import (
    BASES,
    NO_VERDICT,
    NOT_ANALYSED,
    OTHER,
    TasksFrame,
    as_booleans,
    as_list,
    audited,
    flag_column,
    reduce_counts,
    refuse_unreviewed,
    require_columns,
    show_missing,
    with_keys,
)
from .rates import sum_counts

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
    analysed = as_booleans(frame["analyzed"])
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
    reviewed_only: bool | None = None,
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

    Counts every task of the selected task name(s) on reviewed work orders (an unreviewed
    task's final verdict is the AI's only because nobody looked), including the ones the AI
    never analysed (row and column ``"not analysed"``), so nothing is hidden. Labels are
    ordered by how often they occur (rows plus columns, ties by name), the special buckets
    last. ``normalize``: None (int64
    counts, margins in the ``"total"`` row and column), ``"index"`` (rows sum to 1),
    ``"columns"`` or ``"all"`` (shares, no margins; NaN where a row or column is empty).
    Counts of tasks, without an interval: work orders as clusters change nothing here.
    """
    refuse_unreviewed(reviewed_only, "confusion")
    if basis not in BASES:
        flag_column(basis)
    if labels not in ("verdict", "sentence"):
        raise ConfigurationError("labels must be 'verdict' (stable labels) or 'sentence'.")
    mode = "value" if basis == "value" else labels
    require_columns(
        tasks,
        ["analyzed", "reviewed", "corrected_value", *_CONFUSION_COLUMNS[mode]],
        "confusion"
        if mode != "verdict"
        else "confusion (stable verdict labels; labels='sentence' works on older frames)",
    )
    if normalize not in (None, "index", "columns", "all"):
        raise ConfigurationError("normalize must be None, 'index', 'columns' or 'all'.")
    names = None if task_name is None else as_list(task_name)
    keys = ["reviewed", "ai_verdict", "final_verdict"]
    if names is not None:
        require_columns(tasks, ["task_name"], "confusion(task_name=...)")
        keys.insert(0, "task_name")
    display = mode == "verdict" and {"ai_message", "message"} <= set(tasks.columns)
    if display:
        keys += ["ai_sentence", "final_sentence"]
    needed = ["analyzed", "corrected_value", *_CONFUSION_COLUMNS[mode]]
    if display:
        needed += ["ai_message", "message"]
    counts = reduce_counts(
        tasks,
        [*(["task_name"] if names is not None else []), "reviewed", *needed],
        partial(_confusion_counts, names=names, mode=mode, display=display),
        partial(sum_counts, keys=keys),
    )
    if names is not None:
        unknown = sorted(set(names) - set(counts["task_name"].dropna()))
        if unknown:
            raise AuditInputError(
                f"confusion: no task named {', '.join(map(repr, unknown))} in this frame."
            )
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
        "reviewed": as_booleans(frame["reviewed"]),
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
    return sum_counts(counts, keys)


_SPECIAL = (NO_RULE, OTHER, NO_VERDICT, NOT_ANALYSED)


def _label_order(totals: pd.Series) -> list[str]:
    """Verdict labels by decreasing count (ties by name), the special buckets (``no rule``,
    ``other``, ``no verdict``, ``not analysed``) last."""
    present = [str(v) for v, count in totals.items() if count > 0]
    named = sorted((v for v in present if v not in _SPECIAL), key=lambda v: (-totals[v], v))
    return named + [v for v in _SPECIAL if v in present]


def agreement(
    tasks: pd.DataFrame, by: str | Sequence[str] = "task_name", reviewed_only: bool | None = None
) -> pd.DataFrame:
    """Cohen's kappa between the AI's value and the final value, per group.

    Returns ``by`` columns, ``n`` (audited tasks), ``observed`` (share of identical values),
    ``expected`` (agreement expected by chance from the two marginal distributions) and
    ``kappa`` = (observed - expected) / (1 - expected); NaN when undefined (n = 0, or both
    raters always gave one and the same value). A missing group is shown as ``"(none)"``.

    Population: the analysed tasks of *reviewed* work orders only; for the whole site use
    :func:`site_estimate`. Each task counts once; kappa comes without an interval, so work
    orders as clusters change nothing here.
    """
    refuse_unreviewed(reviewed_only, "agreement")
    keys = as_list(by)
    require_columns(
        tasks, ["analyzed", "reviewed", "analyzed_value", "corrected_value"], "agreement"
    )
    frame = with_keys(tasks, keys, "agreement")
    counted = audited(frame)
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
