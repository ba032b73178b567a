"""Fault injection, throttling, latency and auth variants of the simulator, over real HTTP.

Every check talks to a running simulator with ``requests``: the knobs are the runtime settings of
``Simulator(...)``, ``Simulator.configure(...)`` and ``PATCH /_sim/config``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
import urllib3

from dfs_analytics.simulator import Simulator

from .helpers import AUTH, KEY

FAULT_STATUSES = {500, 502, 503, 504}
SIM_PATHS = (
    "truth",
    "config",
    "requests",
    "corrections",
    "callbacks",
    "openapi.json",
)


@dataclass
class Outcome:
    """What a client saw of one request: the status (if headers came) and the body it read."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    dropped: bool  # the connection broke before the whole answer arrived

    @property
    def kind(self) -> str:
        """``ok`` (complete, not 5xx), ``500``-``504``, ``drop-before`` or ``drop-after``."""
        if self.dropped:
            # an injected drop before the work sends bare headers (no content type) and no body;
            # a drop after the work sends the app's own headers and half of its body
            if self.status is None or "content-type" not in self.headers:
                return "drop-before"
            return "drop-after"
        if self.status in FAULT_STATUSES:
            return str(self.status)
        return "ok"


def call(session: requests.Session, method: str, url: str, **kwargs) -> Outcome:
    """Send one request and read its answer byte by byte, noting a connection cut."""
    headers = dict(AUTH)
    headers.update(kwargs.pop("headers", {}))
    try:
        r = session.request(method, url, headers=headers, stream=True, timeout=30, **kwargs)
    except requests.ConnectionError:
        return Outcome(None, {}, b"", dropped=True)
    hdrs = {k.lower(): v for k, v in r.headers.items()}
    chunks: list[bytes] = []
    dropped = False
    try:
        for chunk in r.raw.stream(65536, decode_content=False):
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, requests.RequestException):
        dropped = True
    finally:
        r.close()
    return Outcome(r.status_code, hdrs, b"".join(chunks), dropped)


def api_get(sim: Simulator, path: str, **params) -> requests.Response:
    return requests.get(sim.base_url + path, headers=AUTH, params=params, timeout=30)


def sim_config(sim: Simulator) -> dict:
    r = requests.get(sim.url + "/_sim/config", headers=AUTH, timeout=30)
    assert r.status_code == 200
    return r.json()


def patch_config(sim: Simulator, body: object) -> requests.Response:
    return requests.patch(sim.url + "/_sim/config", headers=AUTH, json=body, timeout=30)


def some_work_order(sim: Simulator) -> dict:
    r = api_get(sim, "work-orders/", page_size=1)
    assert r.status_code == 200
    return r.json()["results"][0]


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_full_fault_rate_fails_every_api_request_in_an_injected_way(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=30, seed=1, fault_seed=21)
    wo_id = some_work_order(sim)["id"]
    sim.configure(fault_rate=1.0)
    session = requests.Session()
    requests_to_make = [
        ("GET", "work-orders/", {}),
        ("GET", f"work-orders/{wo_id}/", {}),
        ("GET", f"work-orders/{wo_id}/timeline/", {}),
        ("GET", "task-groups/", {}),
        ("POST", "work-orders/", {"json": {"name": "faulty"}}),
        ("PATCH", f"work-orders/{wo_id}/metadata/", {"json": {"k": "v"}}),
        ("GET", f"work-orders/{uuid.uuid4()}/", {}),  # would be a 404 without faults
    ]
    kinds: Counter[str] = Counter()
    for _ in range(12):
        for method, path, kwargs in requests_to_make:
            outcome = call(session, method, sim.base_url + path, **kwargs)
            assert outcome.kind != "ok", (method, path, outcome)
            kinds[outcome.kind] += 1
    assert sum(kinds.values()) == 12 * len(requests_to_make)
    # all six ways of failing show up in 84 requests
    assert set(kinds) == {"500", "502", "503", "504", "drop-before", "drop-after"}, kinds


def test_sim_paths_never_fail_even_with_full_fault_and_throttle_rates(dfs_simulator_factory):
    sim = dfs_simulator_factory(
        work_orders=20, seed=2, fault_rate=1.0, throttle_rate=1.0, throttle_rps=0.5
    )
    session = requests.Session()
    wo_id = next(iter(sim.store.work_orders))
    for _ in range(10):
        for path in (*SIM_PATHS, f"work-orders/{wo_id}"):
            outcome = call(session, "GET", sim.url + "/_sim/" + path)
            assert outcome.kind == "ok" and outcome.status == 200, (path, outcome)
            json.loads(outcome.body)
    r = patch_config(sim, {"fault_rate": 0, "throttle_rate": 0, "throttle_rps": 0})
    assert r.status_code == 200
    # with the faults switched off the API answers again
    assert api_get(sim, "work-orders/").status_code == 200


def test_fault_bodies_may_not_be_json(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=3, fault_rate=1.0, fault_seed=5)
    session = requests.Session()
    bodies: dict[int, list[bytes]] = {}
    for _ in range(80):
        outcome = call(session, "GET", sim.base_url + "work-orders/")
        if outcome.status in FAULT_STATUSES and not outcome.dropped:
            bodies.setdefault(outcome.status, []).append(outcome.body)
    assert set(bodies) == FAULT_STATUSES

    def is_json(raw: bytes) -> bool:
        try:
            json.loads(raw)
        except ValueError:
            return False
        return True

    non_json = [s for s, raws in bodies.items() for raw in raws if not is_json(raw)]
    assert non_json, "every injected 5xx had a JSON body; the contract allows any body"


def test_dropped_after_write_applied_but_5xx_and_dropped_before_did_not(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=20, seed=4, fault_rate=1.0, fault_seed=1234)
    session = requests.Session()
    seen: dict[str, list[tuple[str, Outcome]]] = {}
    for i in range(150):
        name = f"fault-probe-{i}"
        outcome = call(session, "POST", sim.base_url + "work-orders/", json={"name": name})
        assert outcome.kind != "ok"
        kind = "5xx" if outcome.kind.isdigit() else outcome.kind
        seen.setdefault(kind, []).append((name, outcome))
        if all(len(seen.get(k, ())) >= 2 for k in ("5xx", "drop-before", "drop-after")):
            break
    assert all(len(seen.get(k, ())) >= 2 for k in ("5xx", "drop-before", "drop-after")), seen

    sim.configure(fault_rate=0.0)
    for name, outcome in seen["drop-after"]:
        # the answer was cut half-way, but the work order exists
        assert outcome.status == 201
        assert len(outcome.body) > 0
        match = re.match(rb'\{"id":"([0-9a-f-]{36})"', outcome.body)
        assert match, outcome.body[:80]
        r = api_get(sim, f"work-orders/{match.group(1).decode()}/")
        assert r.status_code == 200
        assert r.json()["name"] == name
        assert api_get(sim, "work-orders/", name=name).json()["count"] == 1
    for kind in ("5xx", "drop-before"):
        for name, _ in seen[kind]:
            assert api_get(sim, "work-orders/", name=name).json()["count"] == 0, (kind, name)
    total = api_get(sim, "work-orders/", page_size=1).json()["count"]
    assert total == 20 + len(seen["drop-after"])


def test_fault_seed_makes_the_fault_sequence_reproducible(dfs_simulator_factory):
    def run(fault_seed: int) -> list[str]:
        sim = dfs_simulator_factory(work_orders=10, seed=0, fault_rate=0.5, fault_seed=fault_seed)
        session = requests.Session()
        kinds = [call(session, "GET", sim.base_url + "task-groups/").kind for _ in range(40)]
        sim.stop()
        return kinds

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert first != other
    assert "ok" in first and set(first) - {"ok"}


def test_faults_can_be_switched_at_runtime_both_ways(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=5)
    session = requests.Session()
    url = sim.base_url + "work-orders/"
    assert all(call(session, "GET", url).kind == "ok" for _ in range(5))

    sim.configure(fault_rate=1.0)
    assert sim_config(sim)["fault_rate"] == 1.0
    assert all(call(session, "GET", url).kind != "ok" for _ in range(10))

    r = patch_config(sim, {"fault_rate": 0})
    assert r.status_code == 200
    assert r.json()["fault_rate"] == 0
    assert sim.config.fault_rate == 0
    assert all(call(session, "GET", url).kind == "ok" for _ in range(5))

    r = patch_config(sim, {"fault_rate": 1})
    assert r.status_code == 200
    assert all(call(session, "GET", url).kind != "ok" for _ in range(10))


# --------------------------------------------------------------------------------------------
# Throttling
# --------------------------------------------------------------------------------------------


def test_throttle_rate_answers_429_with_retry_after(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=6, throttle_rate=1.0, retry_after=7)
    for path in ("work-orders/", "task-groups/", f"work-orders/{uuid.uuid4()}/"):
        r = api_get(sim, path)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "7"
        assert isinstance(r.json()["detail"], str)

    assert patch_config(sim, {"retry_after": 3}).status_code == 200
    r = api_get(sim, "work-orders/")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"

    sim.configure(throttle_rate=0.5)
    statuses = Counter(api_get(sim, "task-groups/").status_code for _ in range(60))
    assert set(statuses) == {200, 429}

    sim.configure(throttle_rate=0.0)
    assert all(api_get(sim, "task-groups/").status_code == 200 for _ in range(10))


def test_throttled_requests_do_no_work(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=6, throttle_rate=1.0)
    for i in range(5):
        r = requests.post(
            sim.base_url + "work-orders/", headers=AUTH, json={"name": f"t{i}"}, timeout=30
        )
        assert r.status_code == 429
    sim.configure(throttle_rate=0.0)
    assert api_get(sim, "work-orders/").json()["count"] == 10


def test_throttle_rps_token_bucket(dfs_simulator_factory):
    rps = 2.0
    sim = dfs_simulator_factory(work_orders=10, seed=7, throttle_rps=rps, retry_after=1)
    session = requests.Session()
    t0 = time.monotonic()
    answers = [
        session.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30) for _ in range(30)
    ]
    elapsed = time.monotonic() - t0
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429}
    assert statuses[0] == 200  # the bucket starts full
    ok = statuses.count(200)
    assert statuses.count(429) >= 1
    # never more than the bucket (rps tokens) plus what refilled during the burst
    assert ok <= rps + rps * elapsed + 1
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert "detail" in r.json()
    # waiting refills the bucket
    time.sleep(1.5)
    assert session.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30).status_code == 200

    # the limit can be lifted at runtime
    assert patch_config(sim, {"throttle_rps": 0}).status_code == 200
    assert all(
        session.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30).status_code == 200
        for _ in range(20)
    )


# --------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------


def timed_get(session: requests.Session, url: str) -> float:
    t0 = time.monotonic()
    r = session.get(url, headers=AUTH, timeout=30)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    return elapsed


def test_latency_and_jitter_slow_requests_down(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=8, latency=0.25)
    session = requests.Session()
    url = sim.base_url + "task-groups/"
    for _ in range(3):
        assert timed_get(session, url) >= 0.25

    sim.configure(latency=0.05, jitter=0.3)
    times = [timed_get(session, url) for _ in range(10)]
    assert min(times) >= 0.05
    # 10 uniform draws of 0..0.3 s add far more than 0.3 s (P(not) < 1e-6)
    assert sum(times) >= 10 * 0.05 + 0.3


def test_latency_changes_at_runtime_through_patch(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=9)
    session = requests.Session()
    url = sim.base_url + "task-groups/"
    r = patch_config(sim, {"latency": 0.3})
    assert r.status_code == 200
    assert r.json()["latency"] == 0.3
    assert sim.config.latency == 0.3
    assert timed_get(session, url) >= 0.3
    sim.configure(latency=0.0)
    assert sim_config(sim)["latency"] == 0.0


# --------------------------------------------------------------------------------------------
# Auth variants
# --------------------------------------------------------------------------------------------


def test_default_auth_failure_is_401(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=10)
    r = requests.get(sim.base_url + "work-orders/", timeout=30)
    assert r.status_code == 401
    assert isinstance(r.json()["detail"], str)
    r = requests.get(
        sim.base_url + "work-orders/", headers={"Authorization": "Token nope"}, timeout=30
    )
    assert r.status_code == 401


def test_auth_status_403_variant(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=10, auth_status=403, fault_rate=1.0)
    cases = [
        ("work-orders/", {}),
        ("work-orders/", {"Authorization": "Token wrong-key"}),
        ("work-orders/", {"Authorization": KEY}),
        (f"work-orders/{uuid.uuid4()}/", {}),
        ("no-such-endpoint/", {}),
    ]
    # authentication comes before everything, injected faults included
    for path, headers in cases:
        r = requests.get(sim.base_url + path, headers=headers, timeout=30)
        assert r.status_code == 403, (path, headers, r.status_code)
        assert isinstance(r.json()["detail"], str)
    sim.configure(fault_rate=0.0)
    assert api_get(sim, "work-orders/").status_code == 200

    # and back to 401 at runtime
    assert patch_config(sim, {"auth_status": 401}).status_code == 200
    assert requests.get(sim.base_url + "work-orders/", timeout=30).status_code == 401


def test_api_keys_change_at_runtime(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=11)
    r = patch_config(sim, {"api_keys": ["fresh-key"]})
    assert r.status_code == 200
    assert "fresh-key" not in json.dumps(r.json())  # keys are masked
    assert api_get(sim, "task-groups/").status_code == 401
    r = requests.get(
        sim.base_url + "task-groups/", headers={"Authorization": "Token fresh-key"}, timeout=30
    )
    assert r.status_code == 200


# --------------------------------------------------------------------------------------------
# Runtime configuration
# --------------------------------------------------------------------------------------------


def test_configure_and_patch_share_one_configuration(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=12)
    sim.configure(latency=0.01, jitter=0.02, throttle_rate=0.0, retry_after=4)
    config = sim_config(sim)
    assert config["latency"] == 0.01
    assert config["jitter"] == 0.02
    assert config["retry_after"] == 4

    r = patch_config(sim, {"retry_after": 9, "throttle_rps": 50})
    assert r.status_code == 200
    assert sim.config.retry_after == 9
    assert sim.config.throttle_rps == 50
    assert sim_config(sim)["retry_after"] == 9

    with pytest.raises(TypeError):
        sim.configure(no_such_setting=1)
    with pytest.raises(TypeError):
        Simulator(no_such_setting=1)


@pytest.mark.parametrize(
    "body",
    [
        {"no_such_setting": 1},
        {"latency": 0.5, "no_such_setting": 1},
        {"fault_seed": 3},  # fixed when the server starts
        {"latency": -1},
        {"fault_rate": "high"},
        {"latency": True},
        {"api_keys": "demo-key"},
        {"api_keys": [""]},
        ["latency", 1],
        "latency",
    ],
)
def test_patch_config_rejects_bad_settings_with_400(dfs_simulator_factory, body):
    sim = dfs_simulator_factory(work_orders=10, seed=13)
    before = sim_config(sim)
    r = patch_config(sim, body)
    assert r.status_code == 400
    assert isinstance(r.json(), dict)
    assert sim_config(sim) == before
    assert api_get(sim, "task-groups/").status_code == 200


def test_rejected_patch_config_changes_nothing(dfs_simulator_factory):
    """A 400 answer must not have applied part of the body (here: the valid ``latency``)."""
    sim = dfs_simulator_factory(work_orders=10, seed=13)
    before = sim_config(sim)
    r = patch_config(sim, {"latency": 0.5, "jitter": -1})
    assert r.status_code == 400
    assert "jitter" in r.json()
    assert sim_config(sim) == before


def test_patch_config_accepts_only_401_or_403_as_auth_status(dfs_simulator_factory):
    """CONTRACT.md: a missing or wrong key is a 401 (a real server may answer 403), nothing else."""
    sim = dfs_simulator_factory(work_orders=10, seed=13)
    r = patch_config(sim, {"auth_status": 500})
    assert r.status_code == 400
    assert requests.get(sim.base_url + "task-groups/", timeout=30).status_code == 401


def test_patch_config_keeps_fractions_after_a_whole_number(dfs_simulator_factory):
    """``fault_rate: 0`` once made every later rate an integer (0.1, 0.5 and 0.3 became 0)."""
    sim = dfs_simulator_factory(work_orders=10, seed=14, fault_seed=3)
    assert patch_config(sim, {"fault_rate": 0, "latency": 0, "throttle_rps": 0}).status_code == 200
    for value in (0.1, 0.5, 0.3):
        r = patch_config(sim, {"fault_rate": value})
        assert r.status_code == 200
        assert r.json()["fault_rate"] == value
        assert sim_config(sim)["fault_rate"] == value
        assert sim.config.fault_rate == value
    assert patch_config(sim, {"latency": 0.002, "throttle_rps": 2.5}).status_code == 200
    assert sim_config(sim)["latency"] == 0.002
    assert sim_config(sim)["throttle_rps"] == 2.5
    assert patch_config(sim, {"throttle_rps": 0}).status_code == 200
    # and the rate is really applied: at 0.5, some of 40 requests fail (P(none) ~ 1e-12)
    assert patch_config(sim, {"fault_rate": 0.5}).status_code == 200
    session = requests.Session()
    kinds = Counter(call(session, "GET", sim.base_url + "task-groups/").kind for _ in range(40))
    assert kinds["ok"] and sum(kinds.values()) > kinds["ok"], kinds
    # whole-number settings stay whole numbers
    assert patch_config(sim, {"retry_after": 2.0}).json()["retry_after"] == 2
    assert patch_config(sim, {"retry_after": 1.5}).status_code == 400
    assert sim.config.retry_after == 2


@pytest.mark.parametrize(
    "body",
    [
        {"fault_rate": 2},
        {"throttle_rate": 1.01},
        {"fault_rate": -0.1},
        {"retry_after": -1},
        {"validators": "false"},
        {"next_scheme": "ftp"},
    ],
)
def test_patch_config_refuses_rates_over_one_and_other_nonsense(dfs_simulator_factory, body):
    sim = dfs_simulator_factory(work_orders=5, seed=15)
    before = sim_config(sim)
    r = patch_config(sim, body)
    assert r.status_code == 400
    assert set(r.json()) == set(body)
    assert sim_config(sim) == before


@pytest.mark.parametrize(
    "settings",
    [{"fault_rate": 2}, {"latency": -1}, {"throttle_rate": float("nan")}, {"auth_status": 500}],
)
def test_bad_runtime_settings_fail_before_starting_and_in_configure(settings):
    with pytest.raises(ValueError, match=next(iter(settings))):
        Simulator(work_orders=5, **settings)
    sim = Simulator(work_orders=5)
    with pytest.raises(ValueError, match=next(iter(settings))):
        sim.configure(**settings)
    assert sim.config.fault_rate == 0.0
