"""The seeded data generator, seen over HTTP: determinism, realism, timelines, ground truth."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest
import requests

from dfs_analytics.simulator import Simulator, available_apps, load_app

from .helpers import AUTH

APPS = ("fiber-connection", "solar-install")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def get(sim: Simulator, path: str, **params: Any) -> requests.Response:
    r = requests.get(sim.base_url + path, headers=AUTH, params=params, timeout=60)
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return r


def walk(sim: Simulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``next``."""
    page = get(sim, path, page_size=1000, **params).json()
    items = list(page["results"])
    while page["next"]:
        r = requests.get(page["next"], headers=AUTH, timeout=60)
        assert r.status_code == 200
        page = r.json()
        items += page["results"]
    assert len(items) == page["count"]
    return items


def sim_get(sim: Simulator, path: str) -> Any:
    r = requests.get(sim.url + "/_sim/" + path, headers=sim.auth_headers, timeout=60)
    assert r.status_code == 200, (path, r.status_code)
    return r.json()


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def overridden(state: dict[str, Any] | None) -> bool:
    """Corrected to a value different from the analysed one."""
    return (
        state is not None
        and state["corrected_value"] is not None
        and not same_value(state["corrected_value"], state["analyzed_value"])
    )


STATE_KEYS = ("analyzed_value", "corrected_value", "message", "is_conform")


def check_timeline(wo: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Replaying the timeline's states gives the work order's states, dates and analysis ids."""
    assert events, wo["id"]
    assert events[0]["type"] == "created"
    dates = [parse_date(e["date"]) for e in events]
    assert dates == sorted(dates), wo["id"]
    replay: dict[str, dict[str, Any]] = {}
    analysis_of: dict[str, str] = {}
    analyses = []
    for event in events:
        assert event["type"] in (
            "created",
            "analysis",
            "correction",
            "review",
            "metadata_update",
            "updated",
        )
        if event["type"] == "analysis":
            analyses.append(event["analysis_id"])
        elif event["type"] == "correction":
            assert len(event["states"]) == 1
            assert event["analysis_id"] is None
        else:
            assert event["states"] == []
        for s in event["states"]:
            replay[s["task_id"]] = {k: s[k] for k in STATE_KEYS}
            if event["type"] == "analysis":
                analysis_of[s["task_id"]] = event["analysis_id"]
    current = {
        t["id"]: {k: t["state"][k] for k in STATE_KEYS}
        for t in wo["tasks"]
        if t["state"] is not None
    }
    assert replay == current, wo["id"]
    for task in wo["tasks"]:
        if task["state"] is not None:
            assert task["state"]["analysis_id"] == analysis_of[task["id"]]
    assert wo["first_analysis_id"] == (analyses[0] if analyses else None)
    assert wo["latest_analysis_id"] == (analyses[-1] if analyses else None)
    assert parse_date(wo["update_date"]) == dates[-1], wo["id"]
    reviews = [e for e in events if e["type"] == "review"]
    if wo["review_date"] is None:
        assert reviews == []
    else:
        assert len(reviews) == 1
        assert parse_date(wo["review_date"]) == parse_date(reviews[0]["date"])


def check_all_timelines(sim: Simulator, work_orders: list[dict[str, Any]]) -> None:
    session = requests.Session()
    session.headers.update(AUTH)
    for wo in work_orders:
        r = session.get(
            sim.base_url + f"work-orders/{wo['id']}/timeline/", params={"page_size": 1000}
        )
        assert r.status_code == 200
        page = r.json()
        assert page["next"] is None
        check_timeline(wo, page["results"])


# --------------------------------------------------------------------------------------------
# Fixtures: one small and one large simulator for the module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen_sim():
    with Simulator(work_orders=300, seed=41) as sim:
        yield sim


@pytest.fixture(scope="module")
def gen_work_orders(gen_sim):
    return walk(gen_sim, "work-orders/")


@pytest.fixture(scope="module")
def big_sim():
    with Simulator(work_orders=3000, seed=43) as sim:
        yield sim


@pytest.fixture(scope="module")
def big_work_orders(big_sim):
    return walk(big_sim, "work-orders/")


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------


def test_same_seed_same_data_byte_for_byte_and_other_seed_other_data(dfs_simulator_factory):
    a = dfs_simulator_factory(work_orders=120, seed=42)
    b = dfs_simulator_factory(work_orders=120, seed=42)
    c = dfs_simulator_factory(work_orders=120, seed=420)

    def raw(sim: Simulator, path: str, **params: Any) -> bytes:
        # the page links name the server's own port: take it out, compare the rest byte by byte
        return get(sim, path, **params).content.replace(sim.url.encode(), b"http://SIM")

    listings = [
        {"page_size": 50, "page": 1},
        {"page_size": 50, "page": 3},
        {"page_size": 40, "page": 2, "ordering": "-update_date"},
        {"page_size": 1000, "reviewed": "true"},
    ]
    for params in listings:
        assert raw(a, "work-orders/", **params) == raw(b, "work-orders/", **params), params
        assert raw(a, "work-orders/", **params) != raw(c, "work-orders/", **params), params
    ids = [w["id"] for w in get(a, "work-orders/", page_size=1000).json()["results"]]
    for wo_id in ids:
        path = f"work-orders/{wo_id}/timeline/"
        assert raw(a, path) == raw(b, path)
        detail = f"work-orders/{wo_id}/"
        assert raw(a, detail) == raw(b, detail)
    assert sim_get(a, "truth") == sim_get(b, "truth")

    # another seed: other work orders, other names, other timelines
    c_items = get(c, "work-orders/", page_size=1000).json()["results"]
    assert not set(ids) & {w["id"] for w in c_items}
    a_items = get(a, "work-orders/", page_size=1000).json()["results"]
    assert [w["name"] for w in a_items] != [w["name"] for w in c_items]
    assert [w["create_date"] for w in a_items] != [w["create_date"] for w in c_items]
    # ... but the same app: task groups and task ids do not depend on the seed
    assert raw(a, "task-groups/") == raw(c, "task-groups/")
    assert a_items[0]["site_id"] == c_items[0]["site_id"]


# --------------------------------------------------------------------------------------------
# Realism
# --------------------------------------------------------------------------------------------


def test_about_sixty_percent_are_reviewed(big_sim, big_work_orders):
    reviewed = [w for w in big_work_orders if w["review_date"] is not None]
    share = len(reviewed) / len(big_work_orders)
    assert 0.52 < share < 0.68, share
    assert get(big_sim, "work-orders/", reviewed="true", page_size=1).json()["count"] == len(
        reviewed
    )
    for wo in reviewed:
        assert parse_date(wo["review_date"]) > parse_date(wo["create_date"])


def test_review_rate_setting_changes_the_reviewed_share(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=400, seed=44, review_rate=0.2)
    items = walk(sim, "work-orders/")
    share = sum(w["review_date"] is not None for w in items) / len(items)
    assert 0.1 < share < 0.3, share


def test_app_version_upgrade_part_way(big_sim, big_work_orders):
    truth = sim_get(big_sim, "truth")
    versions = sorted(truth["app_versions"], key=lambda v: v["number"])
    assert len(versions) == 2
    old, new = versions[0]["id"], versions[1]["id"]
    by_version: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for wo in big_work_orders:
        by_version[wo["app_version_id"]].append(wo)
    assert set(by_version) == {old, new}
    # the upgrade happens part-way: the later version for the later work orders
    last_old = max(parse_date(w["create_date"]) for w in by_version[old])
    first_new = min(parse_date(w["create_date"]) for w in by_version[new])
    assert last_old < first_new
    assert last_old < parse_date(truth["upgrade_date"]) <= first_new
    share_old = len(by_version[old]) / len(big_work_orders)
    assert 0.5 < share_old < 0.7, share_old

    # task ids change with the version, task names stay
    def tasks_of(version: str) -> dict[str, str]:
        names: dict[str, str] = {}
        for wo in by_version[version]:
            for t in wo["tasks"]:
                assert names.setdefault(t["name"], t["id"]) == t["id"]
        return names

    old_tasks, new_tasks = tasks_of(old), tasks_of(new)
    assert set(old_tasks) <= set(new_tasks)
    assert not set(old_tasks.values()) & set(new_tasks.values())
    # the task-group listing shows the current (later) version
    listed = {t["name"]: t["id"] for g in walk(big_sim, "task-groups/") for t in g["tasks"]}
    assert listed == new_tasks
    # a work order created through the API gets the current version
    r = requests.post(
        big_sim.base_url + "work-orders/", headers=AUTH, json={"name": "fresh"}, timeout=30
    )
    assert r.status_code == 201
    assert r.json()["app_version_id"] == new
    requests.delete(big_sim.base_url + f"work-orders/{r.json()['id']}/", headers=AUTH, timeout=30)


def test_task_types_values_and_unanalysed_tasks(gen_work_orders):
    types_seen = Counter()
    unanalysed = fully_analysed = 0
    python_type = {"Boolean": (bool,), "Text": (str,), "Number": (int, float)}
    for wo in gen_work_orders:
        states = [t["state"] for t in wo["tasks"]]
        unanalysed += sum(s is None for s in states)
        fully_analysed += all(s is not None for s in states)
        for task in wo["tasks"]:
            types_seen[task["outcome_type"]] += 1
            state = task["state"]
            if state is None:
                continue
            for key in ("analyzed_value", "corrected_value"):
                value = state[key]
                if value is None:
                    continue
                assert isinstance(value, python_type[task["outcome_type"]]), (task, state)
                if task["outcome_type"] == "Number":
                    assert not isinstance(value, bool)
    assert set(types_seen) == {"Boolean", "Text", "Number"}
    assert unanalysed > 0  # skipped groups, photos that never passed the quality check
    assert fully_analysed > len(gen_work_orders) / 2
    # work orders have types, and sometimes none (every group active)
    assert any(wo["types"] == [] for wo in gen_work_orders)
    assert any(wo["types"] for wo in gen_work_orders)


def test_corrections_are_mostly_fixes_of_ai_errors(gen_sim, gen_work_orders):
    fixes = wrong_overrides = 0
    for wo in gen_work_orders:
        changed = [t for t in wo["tasks"] if overridden(t["state"])]
        if not changed:
            continue
        assert wo["review_date"] is not None  # generated corrections come from reviews
        view = sim_get(gen_sim, f"work-orders/{wo['id']}")
        assert view["id"] == wo["id"]
        for task in changed:
            truth = view["truth"][task["name"]]
            state = task["state"]
            if same_value(state["corrected_value"], truth):
                fixes += 1
                assert not same_value(state["analyzed_value"], truth)
            else:
                wrong_overrides += 1
    total = fixes + wrong_overrides
    assert total >= 20, total
    assert fixes / total >= 0.7, (fixes, wrong_overrides)


def test_generated_timelines_replay_to_the_current_states(gen_sim, gen_work_orders):
    check_all_timelines(gen_sim, gen_work_orders)
    types = Counter(
        e["type"]
        for wo in gen_work_orders[:50]
        for e in get(gen_sim, f"work-orders/{wo['id']}/timeline/").json()["results"]
    )
    assert {"created", "analysis", "correction", "review"} <= set(types)


def test_timelines_stay_consistent_after_api_writes(dfs_simulator_factory):
    sim = dfs_simulator_factory(
        work_orders=30, seed=45, start="2020-01-01T00:00:00Z", end="2020-03-01T00:00:00Z"
    )
    session = requests.Session()
    session.headers.update(AUTH)
    items = walk(sim, "work-orders/")
    for i, wo in enumerate(items[:10]):
        group = wo["tasks"][0]["task_group_name"]
        body = {
            "inputs": [
                {
                    "name": "image_input",
                    "data": {"type": "image", "value": f"https://example.com/p{i}.jpg"},
                },
                {"name": "context", "data": {"type": "text", "value": group}},
            ]
        }
        r = session.post(sim.base_url + f"work-orders/{wo['id']}/analyze/", json=body)
        assert r.status_code == 200, r.text
        for task in r.json()["tasks"]:
            if task["state"] is not None and task["outcome_type"] == "Boolean":
                r = session.patch(
                    sim.base_url + f"work-orders/{wo['id']}/tasks/{task['id']}/correction/",
                    json={"corrected_value": task["state"]["analyzed_value"]},
                )
                assert r.status_code == 200, r.text
                break
        r = session.patch(sim.base_url + f"work-orders/{wo['id']}/metadata/", json={"i": i})
        assert r.status_code == 200
    check_all_timelines(sim, walk(sim, "work-orders/"))


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def test_ground_truth_has_rates_per_task_and_app_version(gen_sim):
    truth = sim_get(gen_sim, "truth")
    app = load_app(truth["app"])
    version_ids = {v["id"] for v in truth["app_versions"]}
    assert version_ids == {v.id for v in app.versions}
    names = {t.name for v in app.versions for t in v.tasks_by_id.values()}
    assert set(truth["tasks"]) == names
    for name, entry in truth["tasks"].items():
        for key in ("ai_error_rate", "override_probability"):
            assert 0 <= entry[key] <= 1, (name, key)
        in_versions = {v.id for v in app.versions if name in v.tasks_by_name}
        assert set(entry["by_app_version"]) == in_versions, name
        for per_version in entry["by_app_version"].values():
            assert 0 <= per_version["ai_error_rate"] <= 1
            assert 0 <= per_version["override_probability"] <= 1
    # a task added by the upgrade has rates for the later version only
    added = {t for t in app.versions[-1].tasks_by_name} - set(app.versions[0].tasks_by_name)
    assert added
    for name in added:
        assert list(truth["tasks"][name]["by_app_version"]) == [app.versions[-1].id]


def test_empirical_override_rates_match_the_ground_truth(big_sim, big_work_orders):
    truth = sim_get(big_sim, "truth")["tasks"]
    observed: Counter[str] = Counter()
    expected: defaultdict[str, float] = defaultdict(float)
    variance: defaultdict[str, float] = defaultdict(float)
    samples: Counter[str] = Counter()
    for wo in big_work_orders:
        if wo["review_date"] is None:
            continue
        for task in wo["tasks"]:
            if task["state"] is None:
                continue
            p = truth[task["name"]]["by_app_version"][wo["app_version_id"]]["override_probability"]
            samples[task["name"]] += 1
            expected[task["name"]] += p
            variance[task["name"]] += p * (1 - p)
            observed[task["name"]] += overridden(task["state"])
    assert set(samples) == set(truth)
    report = {}
    for name in samples:
        assert samples[name] >= 200, (name, samples[name])
        z = (observed[name] - expected[name]) / math.sqrt(variance[name])
        report[name] = (observed[name], round(expected[name], 1), round(z, 2))
    bad = {name: r for name, r in report.items() if abs(r[2]) >= 4}
    assert not bad, f"override counts far from the ground truth (observed, expected, z): {bad}"
    total_z = (sum(observed.values()) - sum(expected.values())) / math.sqrt(sum(variance.values()))
    assert abs(total_z) < 4, total_z


def test_drift_doubles_the_error_rates_after_the_upgrade(dfs_simulator_factory):
    base = sim_get(dfs_simulator_factory(work_orders=10, seed=46), "truth")
    drifted = sim_get(dfs_simulator_factory(work_orders=10, seed=46, drift=2.0), "truth")
    old, new = (v["id"] for v in sorted(base["app_versions"], key=lambda v: v["number"]))
    assert drifted["settings"]["drift"] == 2.0
    for name, entry in base["tasks"].items():
        d_entry = drifted["tasks"][name]["by_app_version"]
        if old in entry["by_app_version"]:
            assert d_entry[old]["ai_error_rate"] == entry["by_app_version"][old]["ai_error_rate"]
        rate = entry["by_app_version"][new]["ai_error_rate"]
        assert d_entry[new]["ai_error_rate"] == pytest.approx(min(1.0, 2 * rate)), name
        if rate > 0:
            assert (
                d_entry[new]["override_probability"]
                > entry["by_app_version"][new]["override_probability"]
            )


# --------------------------------------------------------------------------------------------
# App definitions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_name", APPS)
def test_every_truth_value_is_allowed_by_its_rules(app_name):
    assert app_name in available_apps()
    app = load_app(app_name)
    assert len(app.versions) == 2
    checked = 0
    for version in app.versions:
        for task in version.tasks_by_id.values():
            assert task.truth, task.name
            for value, weight in task.truth:
                assert weight > 0
                assert task.allows(value), (app_name, version.label, task.name, value)
                checked += 1
    assert checked > 10


def test_second_app_is_served(dfs_simulator_factory):
    sim = dfs_simulator_factory(app="solar-install", work_orders=60, seed=47)
    app = load_app("solar-install")
    groups = walk(sim, "task-groups/")
    assert [g["name"] for g in groups] == [g.name for g in app.current.groups]
    assert {t["id"] for g in groups for t in g["tasks"]} == set(app.current.tasks_by_id)
    items = walk(sim, "work-orders/")
    assert len(items) == 60
    all_names = {t.name for v in app.versions for t in v.tasks_by_id.values()}
    assert {v["app_version_id"] for v in items} <= {v.id for v in app.versions}
    for wo in items:
        assert {t["name"] for t in wo["tasks"]} <= all_names
    truth = sim_get(sim, "truth")
    assert truth["app"] == "solar-install"
    assert set(truth["tasks"]) == all_names
    check_all_timelines(sim, items)
    # the first app's task groups are not there
    fiber = {g.name for g in load_app("fiber-connection").current.groups}
    assert not fiber & {g["name"] for g in groups}


def test_ground_truth_per_engineer_is_served(gen_sim):
    truth = sim_get(gen_sim, "truth")
    engineers = truth["engineers"]
    settings = truth["settings"]
    named = {e["name"] for e in settings["engineers"]}
    assert {e["name"] for e in engineers.values()} == named
    assert "(none)" in engineers  # work orders created without an engineer
    site = truth["site_override_probability"]
    rates = [e["override_probability"] for e in engineers.values()]
    assert min(rates) < site < max(rates)
    # worse photos, more AI errors: the lowest photo quality has the highest factor
    worst = min(engineers.values(), key=lambda e: e["photo_quality"])
    best = max(engineers.values(), key=lambda e: e["photo_quality"])
    assert worst["ai_error_factor"] > best["ai_error_factor"]
    assert worst["override_probability"] > best["override_probability"]
    total = sum(e["weight"] for e in engineers.values())
    assert total == pytest.approx(1.0)
