"""Property-based fuzzing of the simulator's API with schemathesis: no input makes it fail (5xx).

Schemathesis reads the simulator's own OpenAPI schema (``/_sim/openapi.json``) from the running
server and generates requests for every ``/v0.2/`` operation: valid and invalid bodies, query
strings and path parameters. Path ids are often swapped for ids that exist, so that the
generated bodies reach the validation of real work orders, tasks and task groups.

The schema is loaded in a fixture from the running server, and each operation gets its own
bounded Hypothesis search built from ``operation.as_strategy()``: schemathesis' lazy pytest
loader (``schemathesis.pytest.from_fixture``) does not work with pytest 9.2 (it sets
``request.node._nodeid``, which pytest no longer has), and ``schema.parametrize()`` would need
the server to run at import time.

Plain Hypothesis properties follow, for inputs the schema cannot describe: ISO dates over the
whole range of years with offsets, numbers beyond a float, arbitrary metadata bodies.
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from dfs_analytics.simulator import Simulator

from .helpers import AUTH, LIST_PARAMS

# Examples per operation and mode (the search is derandomized, so always the same inputs):
# 15 reach, for every operation, the same set of response statuses as 30 did.
MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_sim():
    with Simulator(work_orders=200, seed=51) as sim:
        yield sim


@pytest.fixture(scope="module")
def known_ids(fuzz_sim) -> dict[str, list[Any]]:
    """Ids that exist: work orders with their analysed tasks, and task-group ids and names."""
    r = requests.get(
        fuzz_sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 1000}, timeout=30
    )
    work_orders = [
        (
            wo["id"],
            [t["id"] for t in wo["tasks"] if t["state"] is not None] or [wo["tasks"][0]["id"]],
        )
        for wo in r.json()["results"]
    ]
    r = requests.get(fuzz_sim.base_url + "task-groups/", headers=AUTH, timeout=30)
    groups = [g["id"] for g in r.json()["results"]] + [g["name"] for g in r.json()["results"]]
    return {"work_orders": work_orders, "groups": groups}


@pytest.fixture(scope="module")
def api_schema(fuzz_sim):
    schema = schemathesis.openapi.from_url(fuzz_sim.url + "/_sim/openapi.json", timeout=30)
    return schema.include(path_regex=r"^/v0\.2/")


def _pick(raw: Any, choices: list[Any]) -> Any | None:
    """A known id for three generated values out of four (deterministic in the value)."""
    h = zlib.crc32(repr(raw).encode())
    if h % 4 == 0:
        return None
    return choices[(h // 4) % len(choices)]


def use_known_ids(case: schemathesis.Case, known: dict[str, list[Any]]) -> None:
    params = case.path_parameters
    if not params:
        return
    if "wo_id" in params:
        # deleting is the one write that would empty the pool: keep it on generated ids mostly
        if case.method.upper() == "DELETE" and zlib.crc32(repr(params).encode()) % 8:
            return
        picked = _pick(params["wo_id"], known["work_orders"])
        if picked is not None:
            wo_id, task_ids = picked
            params["wo_id"] = wo_id
            if "task_id" in params:
                params["task_id"] = task_ids[zlib.crc32(repr(params).encode()) % len(task_ids)]
    if "key" in params:
        picked = _pick(params["key"], known["groups"])
        if picked is not None:
            params["key"] = picked


def fuzz_operation(
    operation: Any, mode: GenerationMode, known: dict[str, list[Any]], statuses: Counter[int]
) -> None:
    """Run one bounded Hypothesis search over ``operation``; raise on the first 5xx."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        use_known_ids(case, known)
        response = case.call(headers=AUTH, timeout=30)
        statuses[response.status_code] += 1
        assert response.status_code != 401, "the API key was not sent"
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_api_fail(api_schema, known_ids, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    # every operation of the API, and none of the simulator's own
    assert len(labels) == 14, labels
    assert all(" /v0.2/" in label for label in labels)
    if mode == GenerationMode.NEGATIVE:
        # an operation whose only input is a free-form path string has no invalid input
        operations = [op for op in operations if len(op.query) or len(op.body)]
        assert len(operations) >= 10
    failures = {}
    statuses: Counter[int] = Counter()
    for operation in operations:
        try:
            fuzz_operation(operation, mode, known_ids, statuses)
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    # the run reached both the happy paths and the validation errors
    assert sum(statuses.values()) >= len(operations) * 5
    assert any(200 <= s < 300 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses), statuses


# --------------------------------------------------------------------------------------------
# Targeted properties with plain Hypothesis: the inputs a schema does not describe well
# --------------------------------------------------------------------------------------------

DATE_PARAMS = {"created_after", "created_before", "updated_after", "updated_before"}


@st.composite
def iso_instants(draw: st.DrawFn) -> str:
    """Any ISO-8601 instant, over the whole range of years, with a ``Z`` or an offset."""
    moment = draw(
        st.one_of(
            st.datetimes(min_value=datetime.min, max_value=datetime.max),
            st.sampled_from([datetime.min, datetime.max]),  # the edges of the range
        )
    )
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    if draw(st.booleans()):
        suffix = "Z"
    else:
        sign = "-" if minutes < 0 else "+"
        suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return moment.isoformat() + suffix


query_values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["true", "false", "create_date", "-update_date", "", " ", "0", "1"]),
)


def param_value(name: str) -> st.SearchStrategy[Any]:
    value = st.one_of(iso_instants(), query_values) if name in DATE_PARAMS else query_values
    if name == "tag":
        return st.lists(value, max_size=3)
    return value


@given(params=st.fixed_dictionaries({}, optional={name: param_value(name) for name in LIST_PARAMS}))
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_list_filters_never_fail(prop_sim, params):
    check_list_query(prop_sim, params)


@given(name=st.sampled_from(sorted(DATE_PARAMS)), value=st.one_of(iso_instants(), query_values))
@example(name="created_after", value="0001-01-01T00:00:00+01:00")
@example(name="updated_before", value="9999-12-31T23:59:59-01:00")
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_date_filters_never_fail(prop_sim, name, value):
    """One date filter alone, so that no other bad parameter answers 400 first."""
    check_list_query(prop_sim, {name: value})


def check_list_query(sim: Simulator, params: dict[str, Any]) -> None:
    r = requests.get(sim.base_url + "work-orders/", headers=AUTH, params=params, timeout=30)
    assert r.status_code in (200, 400, 404), (params, r.status_code, r.text[:200])
    body = r.json()
    if r.status_code == 400:
        # CONTRACT.md: a bad query is a 400 naming the parameter
        assert set(body) & set(params), (params, body)
    elif r.status_code == 200:
        assert len(body["results"]) <= body["count"]


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=2**1024, max_value=10**400),  # beyond any float
    st.integers(min_value=-(10**400), max_value=-(2**1024)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["true", "FALSE", "12.5", "-1e400", "1e400", "nan", "inf", " 3 "]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def prop_sim():
    """A simulator of its own, so that the schemathesis run's deletes do not matter here."""
    with Simulator(work_orders=100, seed=52) as sim:
        yield sim


@pytest.fixture(scope="module")
def analysed_tasks(prop_sim) -> dict[str, list[tuple[str, str]]]:
    """``(work order id, task id)`` of analysed tasks, per outcome type."""
    r = requests.get(
        prop_sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 1000}, timeout=30
    )
    by_type: dict[str, list[tuple[str, str]]] = {}
    for wo in r.json()["results"]:
        for task in wo["tasks"]:
            if task["state"] is not None:
                by_type.setdefault(task["outcome_type"], []).append((wo["id"], task["id"]))
    assert set(by_type) == {"Boolean", "Text", "Number"}
    return by_type


@given(
    kind=st.sampled_from(["Boolean", "Text", "Number"]),
    index=st.integers(min_value=0, max_value=10**6),
    value=json_values,
)
@example(kind="Number", index=0, value=10**400)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_corrections_never_fail(prop_sim, analysed_tasks, kind, index, value):
    wo_id, task_id = analysed_tasks[kind][index % len(analysed_tasks[kind])]
    r = requests.patch(
        prop_sim.base_url + f"work-orders/{wo_id}/tasks/{task_id}/correction/",
        headers=AUTH,
        json={"corrected_value": value},
        timeout=30,
    )
    assert r.status_code in (200, 400), (kind, value, r.status_code, r.text[:200])
    body = r.json()
    if r.status_code == 200:
        assert body["id"] == task_id
        assert body["state"]["corrected_value"] is not None


@given(body=json_values, replace=st.booleans())
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_metadata_writes_never_fail(prop_sim, analysed_tasks, body, replace):
    wo_id = analysed_tasks["Boolean"][0][0]
    r = requests.request(
        "PUT" if replace else "PATCH",
        prop_sim.base_url + f"work-orders/{wo_id}/metadata/",
        headers=AUTH,
        json=body,
        timeout=30,
    )
    assert r.status_code in (200, 400), (body, r.status_code, r.text[:200])
    if r.status_code == 200:
        assert isinstance(r.json(), dict)
        assert all(isinstance(v, (str, int, float, bool)) for v in r.json().values())
        if replace:
            assert r.json() == {k: v for k, v in body.items() if v is not None}
