"""pytest fixtures that start the simulator in-process on a free loopback port.

Installed as a pytest plugin with the package, so any project's tests can use them:

- ``dfs_simulator`` (session scope): 300 work orders, seed 0, no latency or faults; shared, so
  tests must not rely on counters or on data other tests may change.
- ``dfs_simulator_factory``: a function taking :class:`Simulator` keyword arguments that starts a
  fresh simulator and stops it at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .server import Simulator


@pytest.fixture(scope="session")
def dfs_simulator() -> Iterator[Simulator]:
    with Simulator(work_orders=300, seed=0) as sim:
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
