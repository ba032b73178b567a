"""CONTRACT.md, ``GET work-orders/``: pagination, filters, ordering and the listed objects."""

from __future__ import annotations

import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from dfs_analytics.simulator import Simulator

from .helpers import (
    DATE_RE,
    LIST_PARAMS,
    STATE_KEYS,
    WO_TASK_KEYS,
    WORK_ORDER_KEYS,
    Api,
    assert_error,
    expected_progress,
    expected_verdict,
    parse_date,
)

TOTAL = 1100  # more than the largest page (1000), to see the clamp


@pytest.fixture(scope="module")
def list_sim() -> Iterator[Simulator]:
    """A simulator that this module only reads: its data does not change under the tests."""
    with Simulator(work_orders=TOTAL, seed=5) as sim:
        yield sim


@pytest.fixture(scope="module")
def lapi(list_sim: Simulator) -> Api:
    return Api(list_sim)


@pytest.fixture(scope="module")
def everything(lapi: Api) -> list[dict[str, Any]]:
    results, count = lapi.walk("work-orders/", {"page_size": 1000})
    assert count == TOTAL == len(results)
    return results


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [wo["id"] for wo in results]


def ordered(results: list[dict[str, Any]], ordering: str = "create_date") -> list[str]:
    key = ordering.lstrip("-")
    rows = sorted(results, key=lambda wo: (parse_date(wo[key]), wo["id"]))
    if ordering.startswith("-"):
        rows.reverse()
    return ids(rows)


def iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- the page envelope and the listed objects --------------------------------------------------


def test_first_page(lapi: Api, list_sim):
    r = lapi.get("work-orders/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    page = r.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == TOTAL
    assert len(page["results"]) == 100  # default page_size
    assert page["previous"] is None
    nxt = urllib.parse.urlsplit(page["next"])
    assert urllib.parse.parse_qs(nxt.query)["page"] == ["2"]
    assert page["next"].startswith(list_sim.base_url + "work-orders/")


def test_listed_work_orders_have_tasks_with_states_and_no_inputs(everything):
    for wo in everything:
        assert set(wo) >= WORK_ORDER_KEYS
        assert "inputs" not in wo
        assert wo["tasks"]
        for task in wo["tasks"]:
            assert set(task) >= WO_TASK_KEYS
            assert isinstance(task["task_group_name"], str) and task["task_group_name"]
            assert task["state"] is None or set(task["state"]) >= STATE_KEYS


def test_a_listed_work_order_is_the_retrieved_one(lapi: Api, everything):
    for wo in everything[::137]:
        one = lapi.retrieve(wo["id"], include_inputs="false")
        assert "inputs" not in one
        assert {k: one[k] for k in wo} == wo


def test_states_verdicts_and_progress_follow_the_rules(everything):
    for wo in everything:
        assert wo["progress_score"] == expected_progress(wo), wo["id"]
        for task in wo["tasks"]:
            state = task["state"]
            if state is None:
                continue
            effective = (
                state["corrected_value"]
                if state["corrected_value"] is not None
                else state["analyzed_value"]
            )
            assert (state["message"], state["is_conform"]) == expected_verdict(task, effective), (
                wo["id"],
                task["name"],
                state,
            )


def test_every_listed_date_is_utc_with_z(everything):
    for wo in everything:
        for key in ("create_date", "update_date", "review_date"):
            assert wo[key] is None or DATE_RE.match(wo[key]), (key, wo[key])
        for task in wo["tasks"]:
            if task["state"] is not None:
                assert DATE_RE.match(task["state"]["update_date"]), task["state"]


# -- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [7, 100, 1000])
def test_walking_next_loses_and_doubles_nothing(lapi: Api, list_sim, everything, page_size):
    results, count = lapi.walk("work-orders/", {"page_size": page_size})
    got = ids(results)
    assert count == TOTAL
    assert len(got) == count
    assert len(set(got)) == len(got)
    assert set(got) == set(list_sim.store.work_orders)
    assert got == ordered(everything)  # stable order: create_date, then id


def test_previous_links_walk_back(lapi: Api):
    pages = []
    url: str | None = lapi.url("work-orders/?page_size=300")
    while url:
        page = lapi.get(url).json()
        pages.append(ids(page["results"]))
        url = page["next"]
    assert len(pages) == 4
    back = []
    url = lapi.get("work-orders/", params={"page_size": 300, "page": 4}).json()["previous"]
    while url:
        page = lapi.get(url).json()
        back.append(ids(page["results"]))
        url = page["previous"]
    assert back == pages[-2::-1]


def test_page_size_is_clamped_at_1000(lapi: Api, everything):
    page = lapi.get("work-orders/", params={"page_size": 5000}).json()
    assert page["count"] == TOTAL
    assert len(page["results"]) == 1000
    assert ids(page["results"]) == ordered(everything)[:1000]
    second = lapi.get(page["next"]).json()
    assert len(second["results"]) == TOTAL - 1000
    assert second["next"] is None
    assert ids(page["results"]) + ids(second["results"]) == ordered(everything)
    other = lapi.get("work-orders/", params={"page_size": 1001, "page": 2}).json()
    assert other["results"] == second["results"]


def test_explicit_pages(lapi: Api, everything):
    order = ordered(everything)
    page = lapi.get("work-orders/", params={"page_size": 100, "page": 11}).json()
    assert ids(page["results"]) == order[1000:1100]
    assert page["next"] is None
    assert page["previous"] is not None
    page = lapi.get("work-orders/", params={"page_size": 250, "page": 5}).json()
    assert ids(page["results"]) == order[1000:]


@pytest.mark.parametrize(("page", "page_size"), [(12, 100), (3, 1000), (3, 5000), (9999, None)])
def test_a_page_past_the_end_is_404(lapi: Api, page, page_size):
    params = {"page": page, "page_size": page_size}
    assert_error(lapi.get("work-orders/", params=params), 404)


def test_an_empty_result_is_200_with_count_0(lapi: Api):
    r = lapi.get("work-orders/", params={"name": "no-such-name"})
    assert r.status_code == 200
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}
    r = lapi.get("work-orders/", params={"tag": "no-such-tag", "page": 1})
    assert r.status_code == 200 and r.json()["count"] == 0
    assert_error(lapi.get("work-orders/", params={"tag": "no-such-tag", "page": 2}), 404)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("page", "1.5"),
        ("page_size", "0"),
        ("page_size", "-5"),
        ("page_size", "ten"),
        ("ordering", "name"),
        ("ordering", "create"),
        ("ordering", "+create_date"),
        ("created_after", "yesterday"),
        ("created_before", "2026-13-01"),
        ("updated_after", "2026-02-30T00:00:00Z"),
        ("updated_before", "12/03/2026"),
        ("reviewed", "maybe"),
        ("reviewed", "yes"),
    ],
)
def test_invalid_query_is_400_naming_the_parameter(lapi: Api, param, value):
    assert_error(lapi.get("work-orders/", params={param: value}), 400, param)


@pytest.mark.parametrize("param", LIST_PARAMS)
def test_a_blank_filter_value_is_ignored(lapi: Api, param):
    plain = lapi.get("work-orders/").json()
    for blank in ("", " "):
        page = lapi.get("work-orders/", params={param: blank}).json()
        assert page["count"] == TOTAL
        assert ids(page["results"]) == ids(plain["results"])


def test_a_blank_tag_among_tags_is_ignored(lapi: Api, everything):
    urgent = [wo for wo in everything if "urgent" in wo["tags"]]
    page = lapi.get("work-orders/", params=[("tag", "urgent"), ("tag", "")]).json()
    assert page["count"] == len(urgent) > 0


# -- filters ---------------------------------------------------------------------------------


def listing(lapi: Api, params: Any) -> list[str]:
    results, count = lapi.walk("work-orders/", params)
    assert len(results) == count
    return ids(results)


@pytest.mark.parametrize("field", ["create_date", "update_date"])
def test_after_is_inclusive_and_before_exclusive(lapi: Api, everything, field):
    prefix = "created" if field == "create_date" else "updated"
    by_date = sorted(everything, key=lambda wo: (parse_date(wo[field]), wo["id"]))
    for pivot in (by_date[1], by_date[550], by_date[-1]):
        when = pivot[field]
        after = listing(lapi, {f"{prefix}_after": when, "page_size": 1000, "ordering": field})
        before = listing(lapi, {f"{prefix}_before": when, "page_size": 1000, "ordering": field})
        d = parse_date(when)
        assert after == [wo["id"] for wo in by_date if parse_date(wo[field]) >= d]
        assert before == [wo["id"] for wo in by_date if parse_date(wo[field]) < d]
        assert pivot["id"] in after and pivot["id"] not in before
        assert len(after) + len(before) == TOTAL


@pytest.mark.parametrize("field", ["create_date", "update_date"])
def test_a_date_range(lapi: Api, everything, field):
    prefix = "created" if field == "create_date" else "updated"
    lo, hi = "2026-03-01T00:00:00Z", "2026-04-15T12:30:00Z"
    got = listing(lapi, {f"{prefix}_after": lo, f"{prefix}_before": hi, "page_size": 50})
    want = [wo for wo in everything if parse_date(lo) <= parse_date(wo[field]) < parse_date(hi)]
    assert got == ordered(want)
    assert 0 < len(got) < TOTAL
    # after > before: nothing, still 200
    page = lapi.get("work-orders/", params={f"{prefix}_after": hi, f"{prefix}_before": lo})
    assert page.status_code == 200 and page.json()["count"] == 0


def test_dates_with_offsets_and_without_time(lapi: Api):
    def count(value: str) -> int:
        return lapi.get("work-orders/", params={"created_after": value}).json()["count"]

    assert count("2026-03-01T02:00:00+02:00") == count("2026-03-01T00:00:00Z")
    assert count("2026-03-01") == count("2026-03-01T00:00:00Z")
    assert count("2026-02-28T19:00:00-05:00") == count("2026-03-01T00:00:00.000Z")


@pytest.mark.parametrize("value", ["true", "false", "TRUE", "False"])
def test_reviewed(lapi: Api, everything, value):
    want = value.lower() == "true"
    got = listing(lapi, {"reviewed": value, "page_size": 1000})
    expected = [wo for wo in everything if (wo["review_date"] is not None) is want]
    assert got == ordered(expected)
    assert 0 < len(got) < TOTAL


def test_name_is_exact(lapi: Api, everything):
    counts = Counter(wo["name"] for wo in everything)
    name, n = counts.most_common(1)[0]
    assert n >= 2  # names are not unique in the generated data
    assert listing(lapi, {"name": name}) == ordered([w for w in everything if w["name"] == name])
    single = next(k for k, v in counts.items() if v == 1)
    assert len(listing(lapi, {"name": single})) == 1
    for near in (single[:-1], single + "0", single.lower(), f" {single}x"):
        if near not in counts:
            assert listing(lapi, {"name": near}) == []


@pytest.mark.parametrize(
    "tags",
    [["urgent"], ["b2b"], ["b2b", "pilot"], ["urgent", "b2b"], ["b2b", "b2b"], ["rework", "nope"]],
)
def test_repeated_tags_must_all_match(lapi: Api, everything, tags):
    got = listing(lapi, [("tag", t) for t in tags] + [("page_size", "10")])
    want = [wo for wo in everything if all(t in wo["tags"] for t in tags)]
    assert got == ordered(want)


def test_tag_walk_via_next_keeps_every_tag(lapi: Api, everything):
    params = [("tag", "b2b"), ("tag", "pilot"), ("page_size", "3")]
    got = listing(lapi, params)
    want = [wo for wo in everything if {"b2b", "pilot"} <= set(wo["tags"])]
    assert len(want) > 3
    assert got == ordered(want)


def test_field_engineer_email(lapi: Api, everything):
    emails = Counter(wo["field_engineer_email"] for wo in everything if wo["field_engineer_email"])
    assert len(emails) > 3
    for email in emails:
        got = listing(lapi, {"field_engineer_email": email, "page_size": 1000})
        assert got == ordered([w for w in everything if w["field_engineer_email"] == email])
    assert listing(lapi, {"field_engineer_email": "nobody@example.com"}) == []


@pytest.mark.parametrize("ordering", ["create_date", "-create_date", "update_date", "-update_date"])
def test_ordering(lapi: Api, everything, ordering):
    got = listing(lapi, {"ordering": ordering, "page_size": 250})
    assert got == ordered(everything, ordering)


FILTERS: list[Callable[[list[dict[str, Any]]], dict[str, Any]]] = [
    lambda e: {"tag": "urgent", "created_after": "2026-05-01T00:00:00Z"},
    lambda e: {"reviewed": "false", "updated_before": "2026-06-01T00:00:00Z"},
    lambda e: {"reviewed": "true", "created_before": "2026-04-01T00:00:00Z", "tag": "b2b"},
    lambda e: {
        "field_engineer_email": e[0]["field_engineer_email"] or e[1]["field_engineer_email"],
        "updated_after": "2026-02-01T00:00:00Z",
        "created_before": "2026-09-01T00:00:00Z",
    },
    lambda e: {"updated_after": "2026-03-01T00:00:00Z", "updated_before": "2026-03-20T00:00:00Z"},
    lambda e: {"name": e[10]["name"], "reviewed": "true" if e[10]["review_date"] else "false"},
]


def local_filter(everything: list[dict[str, Any]], params: dict[str, Any]) -> list[dict]:
    def keeps(wo: dict[str, Any], key: str, value: str) -> bool:
        if key.endswith(("_after", "_before")):
            d = parse_date(wo["create_date" if key.startswith("created") else "update_date"])
            return d >= parse_date(value) if key.endswith("_after") else d < parse_date(value)
        if key == "reviewed":
            return (wo["review_date"] is not None) == (value == "true")
        if key == "tag":
            return value in wo["tags"]
        return wo[key] == value  # name, field_engineer_email: exact

    def ok(wo: dict[str, Any]) -> bool:
        return all(keeps(wo, key, value) for key, value in params.items())

    return [wo for wo in everything if ok(wo)]


@pytest.mark.parametrize("ordering", ["create_date", "-create_date", "update_date", "-update_date"])
@pytest.mark.parametrize("make", FILTERS, ids=[f"filters{i}" for i in range(len(FILTERS))])
def test_filters_combine_with_every_ordering(lapi: Api, everything, make, ordering):
    params = make(everything)
    got = listing(lapi, {**params, "ordering": ordering, "page_size": 40})
    want = local_filter(everything, params)
    assert want, params
    assert got == ordered(want, ordering)


# -- the list follows writes (on the contract tests' own simulator) ---------------------------


def test_the_list_follows_creates_and_writes(api: Api):
    tag = "t-" + uuid.uuid4().hex[:12]
    email = f"{tag}@example.com"
    first, second, third = (
        api.create(name=f"{tag}-{i}", tags=[tag], field_engineer_email=email) for i in range(3)
    )
    by_tag = {"tag": tag}
    assert ids(api.walk("work-orders/", by_tag)[0]) == [first["id"], second["id"], third["id"]]
    # a write moves the first one to the end in update_date order, not in create_date order
    r = api.patch(f"work-orders/{first['id']}/", json={"metadata": {"x": 1}})
    assert r.status_code == 200
    touched = r.json()
    listed = api.walk("work-orders/", {**by_tag, "ordering": "update_date"})[0]
    assert ids(listed) == [second["id"], third["id"], first["id"]]
    assert listed[-1]["metadata"] == {"x": 1}
    assert listed[-1]["update_date"] == touched["update_date"]
    listed = api.walk("work-orders/", {**by_tag, "ordering": "-create_date"})[0]
    assert ids(listed) == [third["id"], second["id"], first["id"]]
    # updated_after is inclusive, updated_before exclusive, on a fresh update_date
    when = touched["update_date"]
    assert ids(api.walk("work-orders/", {**by_tag, "updated_after": when})[0]) == [first["id"]]
    before = api.walk("work-orders/", {**by_tag, "updated_before": when})[0]
    assert ids(before) == [second["id"], third["id"]]
    created = parse_date(first["create_date"])
    got = api.walk("work-orders/", {**by_tag, "created_before": iso(created)})[0]
    assert got == []
    later = iso(created + timedelta(microseconds=1))
    assert ids(api.walk("work-orders/", {**by_tag, "created_before": later})[0]) == [first["id"]]
    # engineer, name and tag changes are seen by the filters
    api.patch(f"work-orders/{second['id']}/", json={"field_engineer_email": "other@example.com"})
    got = api.walk("work-orders/", {"field_engineer_email": email})[0]
    assert ids(got) == [first["id"], third["id"]]
    api.patch(f"work-orders/{third['id']}/", json={"tags": ["other-" + tag], "name": tag})
    assert ids(api.walk("work-orders/", by_tag)[0]) == [first["id"], second["id"]]
    assert ids(api.walk("work-orders/", {"name": tag})[0]) == [third["id"]]
    assert api.walk("work-orders/", {"name": f"{tag}-2"})[0] == []
    # a delete removes it from the list
    assert api.delete(f"work-orders/{first['id']}/").status_code == 204
    assert ids(api.walk("work-orders/", by_tag)[0]) == [second["id"]]


def test_listed_states_follow_analyses_and_corrections(api: Api):
    tag = "s-" + uuid.uuid4().hex[:12]
    wo = api.create(name=tag, tags=[tag])
    api.analyze(wo["id"], "releve-optique", mesure_puissance=-30)
    (listed,) = api.walk("work-orders/", {"tag": tag})[0]
    task = next(t for t in listed["tasks"] if t["name"] == "mesure_puissance")
    assert task["state"]["analyzed_value"] == -30
    assert task["state"]["message"] == "Signal trop faible"
    assert api.correct(wo["id"], task["id"], -12).status_code == 200
    (listed,) = api.walk("work-orders/", {"tag": tag})[0]
    task = next(t for t in listed["tasks"] if t["name"] == "mesure_puissance")
    assert task["state"]["corrected_value"] == -12
    assert listed["progress_score"] == expected_progress(listed) > 0
