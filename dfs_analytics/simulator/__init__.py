"""A local simulator of the Deepomatic Field Services API v0.2.

A real HTTP server (FastAPI + uvicorn) with seeded, realistic data, latency, fault injection
and a ground-truth view under ``/_sim/`` (which needs the API key too)::

    with Simulator(seed=1, latency=0.03) as sim:
        client = dfs.Client(base_url=sim.base_url, api_key=sim.api_key)

or ``dfs-analytics simulate --port 8765``. Its modes (plain DRF, TLS, faults, throttling) are
in ``docs/simulator.md``. Serving needs the ``sim`` extra; the generator and the apps import
without it. The rest of the package never imports the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .apps import available_apps, load_app
from .generator import DEFAULT_WORK_ORDERS, SeedSettings, generate, ground_truth

if TYPE_CHECKING:
    from .process import SimulatorProcess
    from .server import Simulator

__all__ = [
    "DEFAULT_WORK_ORDERS",
    "SeedSettings",
    "Simulator",
    "SimulatorProcess",
    "available_apps",
    "generate",
    "ground_truth",
    "load_app",
]


_LAZY = {"Simulator": "server", "SimulatorProcess": "process"}


def __getattr__(name: str) -> Any:
    # the server needs FastAPI and uvicorn (the 'sim' extra): imported on first use only
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
