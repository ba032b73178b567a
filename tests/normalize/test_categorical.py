"""normalize: categorical and string columns exactly as pandas builds them from the same values."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from dfs_analytics import normalize

CASES = [
    [],
    [None],
    [None, None, None],
    ["a"],
    ["b", None, "a", "b", "nan", "None", ""],
    ["é", "e", "z", "É", "\U0001f600", "Z", " a", "a "],
    ["1", "10", "2", "-1", "1.0"],
]


@pytest.mark.parametrize("texts", CASES, ids=range(len(CASES)))
def test_as_pandas_builds_it(texts: list[str | None]) -> None:
    expected = pd.Categorical(texts)
    got = normalize.categorical(texts)
    pd.testing.assert_extension_array_equal(got, expected)
    assert got.categories.dtype == expected.categories.dtype
    assert got.codes.dtype == expected.codes.dtype


def test_random_columns() -> None:
    rng = random.Random(3)
    for n_distinct in (1, 5, 40, 200, 300):
        names = [f"task_{rng.randrange(10**6)}" for _ in range(n_distinct)]
        texts = [rng.choice(names) if rng.random() > 0.1 else None for _ in range(3000)]
        expected = pd.Categorical(texts)
        got = normalize.categorical(texts)
        pd.testing.assert_extension_array_equal(got, expected)
        assert got.codes.dtype == expected.codes.dtype


def test_what_pandas_refuses_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        pd.Categorical(["\ud800", "a"])
    with pytest.raises(UnicodeEncodeError):
        normalize.categorical(["\ud800", "a"])


def test_convert_column_category() -> None:
    values = ["x", 3, None, 2.5, True, "x"]
    got = normalize.convert_column(values, "category")
    expected = pd.Categorical(["x", "3", None, "2.5", "True", "x"])
    pd.testing.assert_extension_array_equal(got, expected)


STRING_CASES = [
    ["a", None, "é"],
    [],
    [None],
    [1, "a"],
    [float("nan"), "x"],
    [pd.NA, "x"],
    [True, 1.5],
]


@pytest.mark.parametrize("values", STRING_CASES, ids=range(len(STRING_CASES)))
def test_string_columns_as_pandas_reads_them(values: list[object]) -> None:
    expected = pd.array(values, dtype="string")
    got = normalize.convert_column(values, "string")
    pd.testing.assert_extension_array_equal(got, expected)
    assert got._pa_array.type == expected._pa_array.type
