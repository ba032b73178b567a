"""``/_sim/`` needs the API key, like the API: nobody without it reads the truth or changes keys.

Only ``/_sim/openapi.json`` and ``/_sim/docs`` stay open (a browser cannot send the header,
and the schema holds no data).
"""

from __future__ import annotations

import uuid

import pytest
import requests

from dfs_analytics.simulator import Simulator

from .helpers import AUTH, KEY

pytestmark = pytest.mark.sim(work_orders=15, seed=71)


def admin_calls(sim: Simulator) -> list[tuple[str, str, dict]]:
    wo_id = next(iter(sim.store.work_orders))
    return [
        ("GET", "truth", {}),
        ("GET", f"work-orders/{wo_id}", {}),
        ("GET", "requests", {}),
        ("DELETE", "requests", {}),
        ("GET", "corrections", {}),
        ("GET", "callbacks", {}),
        ("GET", "config", {}),
        ("PATCH", "config", {"json": {"latency": 0}}),
        ("GET", "no-such-view", {}),
    ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Token wrong"}, {"Authorization": KEY}, {"Authorization": "Bearer x"}],
)
def test_every_sim_endpoint_refuses_a_request_without_a_valid_key(sim, headers):
    for method, path, kwargs in admin_calls(sim):
        r = requests.request(
            method, sim.url + "/_sim/" + path, headers=headers, timeout=30, **kwargs
        )
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["WWW-Authenticate"] == "Token"
        assert isinstance(r.json()["detail"], str)
    # the bare prefix too
    assert requests.get(sim.url + "/_sim", timeout=30).status_code == 401


def test_every_sim_endpoint_answers_the_api_key(sim):
    for method, path, kwargs in admin_calls(sim):
        r = requests.request(method, sim.url + "/_sim/" + path, headers=AUTH, timeout=30, **kwargs)
        expected = 404 if path == "no-such-view" else (204 if method == "DELETE" else 200)
        assert r.status_code == expected, (method, path, r.status_code, r.text[:200])


def test_sim_auth_failure_follows_auth_status(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=5, seed=72, auth_status=403)
    assert requests.get(sim.url + "/_sim/truth", timeout=30).status_code == 403
    assert requests.get(sim.url + "/_sim/truth", headers=AUTH, timeout=30).status_code == 200


def test_schema_and_docs_stay_open(sim):
    r = requests.get(sim.url + "/_sim/openapi.json", timeout=30)
    assert r.status_code == 200
    assert "/v0.2/work-orders/" in r.json()["paths"]
    r = requests.get(sim.url + "/_sim/docs", timeout=30)
    assert r.status_code == 200
    assert "swagger" in r.text.lower()


def test_nobody_without_the_key_can_lock_the_key_out(sim):
    r = requests.patch(sim.url + "/_sim/config", json={"api_keys": ["attacker"]}, timeout=30)
    assert r.status_code == 401
    assert sim.config.api_keys == [KEY]
    assert requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30).status_code == 200
    # nor read the truth or reset the counters
    requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30)
    assert requests.delete(sim.url + "/_sim/requests", timeout=30).status_code == 401
    assert sim.request_counts() == {"GET /v0.2/task-groups/": 2}


def test_an_empty_key_list_is_refused(sim):
    r = requests.patch(sim.url + "/_sim/config", headers=AUTH, json={"api_keys": []}, timeout=30)
    assert r.status_code == 400
    assert "api_keys" in r.json()
    assert sim.config.api_keys == [KEY]


def test_key_rotation_moves_the_sim_view_to_the_new_key(sim):
    r = requests.patch(
        sim.url + "/_sim/config", headers=AUTH, json={"api_keys": ["fresh-key"]}, timeout=30
    )
    assert r.status_code == 200
    assert requests.get(sim.url + "/_sim/truth", headers=AUTH, timeout=30).status_code == 401
    fresh = {"Authorization": "Token fresh-key"}
    assert requests.get(sim.url + "/_sim/truth", headers=fresh, timeout=30).status_code == 200
    # the in-process harness follows the keys it serves
    assert sim.auth_headers == fresh
    assert sim.truth() == requests.get(sim.url + "/_sim/truth", headers=fresh, timeout=30).json()


def test_harness_methods_send_the_key(sim):
    wo = requests.get(
        sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 1}, timeout=30
    ).json()["results"][0]
    assert sim.request_counts() == {"GET /v0.2/work-orders/": 1}
    sim.reset_request_counts()
    assert sim.request_counts() == {}
    assert sim.correction_counts() == {}
    assert sim.truth() == sim.view("truth")
    assert sim.view(f"work-orders/{wo['id']}")["id"] == wo["id"]
    assert sim.view("callbacks") == {"results": []}
    r = sim.sim_request("PATCH", "config", json={"latency": 0.001})
    assert r.json()["latency"] == 0.001
    with pytest.raises(requests.HTTPError):
        sim.view(f"work-orders/{uuid.uuid4()}")
