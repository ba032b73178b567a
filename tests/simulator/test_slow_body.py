"""The simulator's slow-body fault, over real HTTP: ``slow_body_rate`` of the API's answers
send their headers at once and their body at ``slow_body_bps`` bytes per second, whole and
unchanged; ``/_sim/`` is never slow; a client that leaves stops the drip."""

from __future__ import annotations

import time

import pytest
import requests

from dfs_analytics.cli import build_parser
from dfs_analytics.cli.options import UsageError
from dfs_analytics.simulator import Simulator

from .helpers import AUTH


def test_a_slow_body_comes_whole_at_the_set_pace_after_headers_at_once(dfs_simulator_factory):
    sim: Simulator = dfs_simulator_factory(work_orders=5, seed=3)
    fast = requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=10)
    size = len(fast.content)
    assert 500 < size < 20_000, size
    bps = size / 1.0  # the whole body in about a second
    sim.configure(slow_body_rate=1.0, slow_body_bps=bps)
    started = time.monotonic()
    with requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=10, stream=True) as r:
        headers_after = time.monotonic() - started
        first = r.raw.read1(64 * 1024)  # what has come so far
        first_after = time.monotonic() - started
        body = first + r.raw.read()
        body_after = time.monotonic() - started
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == size
    assert body == fast.content
    assert headers_after < 0.5
    assert len(first) < size / 2  # the body came in pieces, not at once
    assert first_after < 0.5
    assert 0.8 < body_after < 3.0, body_after


def test_sim_paths_are_never_slow(dfs_simulator_factory):
    sim: Simulator = dfs_simulator_factory(
        work_orders=5, seed=3, slow_body_rate=1.0, slow_body_bps=1
    )
    started = time.monotonic()
    assert sim.view("config")["slow_body_bps"] == 1.0
    assert time.monotonic() - started < 1


def test_slow_body_rate_is_a_share_drawn_from_the_fault_seed(dfs_simulator_factory):
    def slow_ones(seed: int) -> list[bool]:
        sim = dfs_simulator_factory(
            work_orders=5, seed=3, fault_seed=seed, slow_body_rate=0.5, slow_body_bps=20_000
        )
        seen = []
        for _ in range(12):
            started = time.monotonic()
            r = requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=10)
            assert r.status_code == 200
            seen.append(time.monotonic() - started > 0.1)  # a few KiB at 20 KB/s: > 0.1 s
        return seen

    first = slow_ones(5)
    assert 0 < sum(first) < 12
    assert slow_ones(5) == first


def test_a_client_that_leaves_stops_the_drip(dfs_simulator_factory):
    """A body that would take hours stops when the client closes the connection: the server
    stops at once (it would wait for the drip to end otherwise)."""
    sim: Simulator = dfs_simulator_factory(work_orders=5, seed=3)
    sim.configure(slow_body_rate=1.0, slow_body_bps=1)
    with requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=10, stream=True) as r:
        assert r.status_code == 200
        assert r.raw.read(1)
    time.sleep(0.2)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"slow_body_rate": 1.5}, "slow_body_rate"),
        ({"slow_body_rate": -0.1}, "slow_body_rate"),
        ({"slow_body_bps": 0}, "slow_body_bps"),
        ({"slow_body_bps": "fast"}, "slow_body_bps"),
    ],
)
def test_bad_slow_body_settings_are_refused(dfs_simulator_factory, changes, name):
    with pytest.raises(ValueError, match=name):
        Simulator(work_orders=1, **changes)
    sim: Simulator = dfs_simulator_factory(work_orders=1, seed=3)
    with pytest.raises(ValueError):
        sim.configure(**changes)
    assert sim.view("config")["slow_body_rate"] == 0.0


def test_simulate_command_takes_the_slow_body_settings():
    args = build_parser().parse_args(
        ["simulate", "--slow-body-rate", "0.25", "--slow-body-bps", "100"]
    )
    assert (args.slow_body_rate, args.slow_body_bps) == (0.25, 100.0)
    args = build_parser().parse_args(["simulate"])
    assert (args.slow_body_rate, args.slow_body_bps) == (0.0, 1024.0)
    for bad in (["--slow-body-rate", "1.5"], ["--slow-body-bps", "-1"]):
        with pytest.raises(UsageError, match=bad[0]):
            build_parser().parse_args(["simulate", *bad])
