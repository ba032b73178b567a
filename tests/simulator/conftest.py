"""Fixtures of the simulator's contract tests: ``contract_sim`` (a session simulator of these
tests only, on which write tests create their own work orders), ``api`` and ``new_wo``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dfs_analytics.simulator import Simulator

from .helpers import Api


@pytest.fixture(scope="session")
def contract_sim() -> Iterator[Simulator]:
    """The simulator of the contract tests' writes: fresh work orders are created on it."""
    with Simulator(work_orders=60, seed=7) as sim:
        yield sim


@pytest.fixture(scope="session")
def api(contract_sim: Simulator) -> Api:
    return Api(contract_sim)


@pytest.fixture
def new_wo(api: Api) -> dict[str, Any]:
    """A fresh work order of no type (every task group active)."""
    return api.create(name="contract-" + uuid.uuid4().hex[:12])
