"""pytest fixtures that start the simulator in-process on a free loopback port.

Installed as a pytest plugin with the package, so any project's tests can use them:
``dfs_simulator`` (session scope, :data:`SHARED_WORK_ORDERS` work orders, seed 0, no latency
or faults; shared, so tests must not rely on counters or on data others change) and
``dfs_simulator_factory`` (a function taking :class:`Simulator` keywords that starts a fresh
simulator, stopped at the end of the test). Both serve ``/_sim/`` to the simulator's key only.

The fixtures never leave a simulator running after their scope ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .generator import DEFAULT_WORK_ORDERS
from .server import Simulator

SHARED_WORK_ORDERS = 300
"""The size of the shared ``dfs_simulator`` (the one fixed exception to ``DEFAULT_WORK_ORDERS``)."""

__all__ = ["DEFAULT_WORK_ORDERS", "SHARED_WORK_ORDERS", "dfs_simulator", "dfs_simulator_factory"]


@pytest.fixture(scope="session")
def dfs_simulator() -> Iterator[Simulator]:
    with Simulator(work_orders=SHARED_WORK_ORDERS, seed=0) as sim:
        yield sim


@pytest.fixture
def dfs_simulator_factory() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        sim = Simulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
