"""audit on Dask frames: exactly the pandas figures, computed on a distributed cluster.

The tasks come from the simulator over HTTP (``dfs.load_tasks``). The Dask frames are built
the way a dataset hands them over: the same columns, values kept as Python objects (bool,
str, numbers, None), and category columns either categoricals or plain strings. Every result
is compared with ``assert_frame_equal`` to the pandas function on the same rows. The cluster
runs two worker processes, so the per-partition counting really runs out of this process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pytest
from dask.dataframe.utils import clear_known_categories
from distributed import Client, LocalCluster
from pandas.testing import assert_frame_equal

import dfs_analytics as dfs
from dfs_analytics.audit import AuditInputError

PARTITIONS = 4


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[Client]:
    """Two single-threaded worker processes; every compute of this module runs on them. The
    dashboard takes a free port, so parallel test workers never fight over 8787. The workers'
    statistical profiler (a stack sample every 10 ms, for the dashboard) is off: nothing here
    reads it."""
    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        Client(local) as client,
    ):
        yield client


def category_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]


def as_strings(tasks: pd.DataFrame) -> pd.DataFrame:
    """The tasks with every category column as plain strings (missing stays missing)."""
    out = tasks.copy()
    for column in category_columns(tasks):
        out[column] = out[column].astype(str)
    return out


def to_dask(frame: pd.DataFrame, npartitions: int = PARTITIONS) -> Any:
    """A Dask frame of ``frame`` whose object columns stay Python objects (Dask would turn
    them into strings by default, which a dataset's reader does not do to values)."""
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(frame, npartitions=npartitions)


@pytest.fixture(scope="module")
def variants(sim_tasks) -> dict[str, tuple[pd.DataFrame, Any]]:
    """name -> (pandas frame, Dask frame of the same rows)."""
    strings = as_strings(sim_tasks)
    return {
        "categorical": (sim_tasks, to_dask(sim_tasks)),
        "str": (strings, to_dask(strings)),
    }


CALLS: dict[str, Callable[[Any], pd.DataFrame]] = {
    "rates-overall": lambda t: dfs.override_rates(t, by=None),
    "rates-task": lambda t: dfs.override_rates(t),
    "rates-group": lambda t: dfs.override_rates(t, by="task_group_name"),
    "rates-engineer": lambda t: dfs.override_rates(t, by="field_engineer_email"),
    "rates-several": lambda t: dfs.override_rates(t, by=["app_version_id", "task_name"]),
    "rates-group-task": lambda t: dfs.override_rates(t, by=["task_group_name", "task_name"]),
    "rates-week": lambda t: dfs.override_rates(t, by="week"),
    "rates-month-task": lambda t: dfs.override_rates(t, by=["month", "task_name"]),
    "rates-90": lambda t: dfs.override_rates(t, level=0.9),
    "confusion": lambda t: dfs.confusion(t),
    "confusion-index": lambda t: dfs.confusion(t, normalize="index"),
    "confusion-columns": lambda t: dfs.confusion(t, normalize="columns"),
    "confusion-all": lambda t: dfs.confusion(t, normalize="all"),
    "confusion-one-task": lambda t: dfs.confusion(t, task_name="pb_ferme_avant_quality"),
    "confusion-two-tasks": lambda t: dfs.confusion(
        t, task_name=["pb_ferme_avant_quality", "pb_etiquette_presente"], normalize="index"
    ),
    "drift-version": lambda t: dfs.drift(t),
    "drift-version-overall": lambda t: dfs.drift(t, within=None),
    "drift-version-group-bh": lambda t: dfs.drift(t, within="task_group_name", method="bh"),
    "drift-week": lambda t: dfs.drift(t, by=None, freq="W", within=None),
    "drift-month-task": lambda t: dfs.drift(t, by=None, freq="M"),
    "drift-engineer-alpha": lambda t: dfs.drift(
        t, within="field_engineer_email", alpha=0.2, level=0.9
    ),
    "rates-verdict": lambda t: dfs.override_rates(t, basis="verdict"),
    "rates-verdict-engineer": lambda t: dfs.override_rates(
        t, by="field_engineer_email", basis="verdict"
    ),
    "confusion-sentence": lambda t: dfs.confusion(t, labels="sentence"),
    "confusion-values": lambda t: dfs.confusion(
        t, task_name="pb_ferme_avant_quality", basis="value"
    ),
    "drift-verdict": lambda t: dfs.drift(t, basis="verdict"),
    "funnel-engineer": lambda t: dfs.funnel(t),
    "funnel-verdict-task": lambda t: dfs.funnel(t, by="task_name", basis="verdict"),
}


@pytest.mark.parametrize("variant", ["categorical", "str"])
@pytest.mark.parametrize("call", list(CALLS))
def test_dask_gives_exactly_the_pandas_result(variants, variant, call) -> None:
    frame, ddf = variants[variant]
    expected = CALLS[call](frame)
    result = CALLS[call](ddf)
    assert isinstance(result, pd.DataFrame)
    assert_frame_equal(result, expected)
    assert result.attrs == expected.attrs
    assert len(result) > 0


def test_the_fixture_frames_are_what_a_dataset_hands_over(sim_tasks, variants) -> None:
    _, ddf = variants["categorical"]
    assert ddf.npartitions == PARTITIONS
    assert isinstance(ddf["task_name"].dtype, pd.CategoricalDtype)
    part = ddf.partitions[1].compute()
    values = part["analyzed_value"].dropna()
    assert part["analyzed_value"].dtype == object
    assert {type(v) for v in values} & {bool, float, int, str}
    assert not any(isinstance(v, str) and v in ("True", "False") for v in values)
    _, strings = variants["str"]
    assert not category_columns(strings._meta)
    assert pd.api.types.is_string_dtype(strings["task_name"].dtype)
    # the data has what the comparisons need: several versions, weeks, engineers, overrides
    assert sim_tasks["app_version_id"].nunique() > 1
    assert dfs.override_rates(sim_tasks, by="week")["n"].gt(0).sum() > 2
    assert dfs.override_rates(sim_tasks, by=None)["n_overridden"].iloc[0] > 0


def test_strings_and_categoricals_give_the_same_figures(variants) -> None:
    by = ["task_group_name", "task_name"]
    from_categories = dfs.override_rates(variants["categorical"][1], by=by)
    from_strings = dfs.override_rates(variants["str"][1], by=by)
    # same groups, same order (the categories are sorted names), same numbers
    for key in by:
        assert from_categories[key].astype(object).tolist() == from_strings[key].tolist()
    numbers = ["n", "n_overridden", "rate", "ci_low", "ci_high"]
    assert_frame_equal(from_categories[numbers], from_strings[numbers])
    assert_frame_equal(dfs.confusion(variants["categorical"][1]), dfs.confusion(variants["str"][1]))


def test_unknown_categories_differing_per_partition(sim_tasks) -> None:
    """As read from a dataset: each partition knows only the categories it holds."""
    columns = category_columns(sim_tasks)

    def own_categories(part: pd.DataFrame) -> pd.DataFrame:
        part = part.copy()
        for column in columns:
            part[column] = part[column].cat.remove_unused_categories()
        return part

    ordered = to_dask(sim_tasks.sort_values("create_date", kind="stable"), npartitions=5)
    # every category column unknown, declared once in the frame's meta (one column at a time
    # through ``.cat.as_unknown()`` nests an assignment per column for Dask to optimise)
    ddf = ordered.map_partitions(own_categories, meta=clear_known_categories(ordered._meta))
    assert columns and not any(ddf[column].cat.known for column in columns)
    firsts = [ddf.partitions[i].compute() for i in (0, 4)]
    assert list(firsts[0]["app_version_id"].cat.categories) != list(
        firsts[1]["app_version_id"].cat.categories
    )
    same_rows = ddf.compute()  # the reference: what pandas gets from these partitions
    for name in (
        "rates-task",
        "rates-several",
        "rates-week",
        "confusion",
        "confusion-one-task",
        "drift-version",
        "drift-week",
    ):
        assert_frame_equal(CALLS[name](ddf), CALLS[name](same_rows), obj=name)


def test_dask_default_string_conversion_gives_the_pandas_result(sim_tasks) -> None:
    # Dask's own default turns object columns into strings: the figures do not change
    ddf = dd.from_pandas(sim_tasks, npartitions=3)
    same_rows = ddf.compute()
    for name in ("rates-task", "rates-month-task", "confusion-two-tasks", "drift-version"):
        assert_frame_equal(CALLS[name](ddf), CALLS[name](same_rows), obj=name)


NAMED_TASKS = ("confusion-one-task", "confusion-two-tasks", "confusion-values")


@pytest.mark.parametrize("variant", ["categorical", "str"])
@pytest.mark.parametrize("call", [c for c in CALLS if c not in NAMED_TASKS])
def test_empty_dask_frame_gives_the_pandas_result(variants, variant, call) -> None:
    frame, _ = variants[variant]
    empty = frame.iloc[0:0]
    assert_frame_equal(CALLS[call](to_dask(empty, npartitions=1)), CALLS[call](empty))


@pytest.mark.parametrize("call", NAMED_TASKS)
def test_empty_frame_has_no_task_of_that_name(variants, call) -> None:
    empty = variants["categorical"][0].iloc[0:0]
    for given in (empty, to_dask(empty, npartitions=1)):
        with pytest.raises(AuditInputError, match="no task named 'pb_"):
            CALLS[call](given)


def test_only_the_needed_columns_are_read(variants) -> None:
    """A column the audit does not need is never computed: reading it would fail."""
    frame, ddf = variants["categorical"]

    def unreadable(part: pd.Series) -> pd.Series:
        if len(part):
            raise RuntimeError("a column the audit does not need was read")
        return part

    poisoned = ddf.assign(
        work_order_name=ddf["work_order_name"].map_partitions(
            unreadable, meta=ddf._meta["work_order_name"]
        )
    )
    with pytest.raises(RuntimeError, match="does not need"):
        poisoned["work_order_name"].compute()
    for name in ("rates-task", "rates-week", "confusion-two-tasks", "drift-version"):
        assert_frame_equal(CALLS[name](poisoned), CALLS[name](frame), obj=name)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: dfs.override_rates(t.drop(columns=["is_overridden"])), "is_overridden"),
        (lambda t: dfs.override_rates(t, by="nope"), "nope"),
        (lambda t: dfs.override_rates(t.drop(columns=["create_date"]), by="week"), "create_date"),
        (lambda t: dfs.confusion(t.drop(columns=["ai_message"]), labels="sentence"), "ai_message"),
        (lambda t: dfs.confusion(t.drop(columns=["verdict"])), "verdict"),
        (lambda t: dfs.confusion(t, task_name="nope"), "no task named 'nope'"),
        (lambda t: dfs.drift(t.drop(columns=["app_version_id"])), "app_version_id"),
        (lambda t: dfs.drift(t, within="nope"), "nope"),
    ],
)
def test_bad_input_is_named_as_for_pandas(variants, call, message) -> None:
    frame, ddf = variants["categorical"]
    for given in (frame, ddf):
        with pytest.raises(AuditInputError, match=message):
            call(given)


def test_a_dask_series_or_a_list_is_not_a_tasks_frame(variants) -> None:
    _, ddf = variants["categorical"]
    for wrong in (ddf["task_name"], [{"task_name": "a"}]):
        with pytest.raises(AuditInputError, match="DataFrame"):
            dfs.override_rates(wrong)


def test_audit_works_without_dask_installed(tmp_path) -> None:
    # dask made unimportable: the audit module imports and runs on pandas frames
    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"
        "sys.modules['dask.dataframe'] = None\n"
        "import pandas as pd\n"
        "from dfs_analytics import audit\n"
        "frame = pd.DataFrame({'task_name': ['a', 'a', 'b'], 'analyzed': [True] * 3,\n"
        "    'reviewed': [True, True, False], 'is_overridden': [True, False, False]})\n"
        "rates = audit.override_rates(frame)\n"
        "assert rates['n'].tolist() == [2, 0], rates\n"
        "assert sys.modules['dask'] is None  # nothing imported it\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
