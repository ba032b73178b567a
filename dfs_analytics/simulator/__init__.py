"""A local simulator of the Deepomatic Field Services API v0.2.

A real HTTP server (FastAPI + uvicorn) with seeded, realistic data, latency, fault injection
and a ground-truth view under ``/_sim/`` (which needs the API key too). Start it in-process::

    from dfs_analytics.simulator import Simulator
    with Simulator(seed=1, latency=0.03) as sim:       # DEFAULT_WORK_ORDERS work orders
        client = dfs.Client(base_url=sim.base_url, api_key=sim.api_key)

or from a shell: ``dfs-analytics simulate --port 8765``. ``Simulator(validators=False,
next_scheme="http")`` (``--no-validators --next-scheme http``) answers like a plain Django REST
Framework server behind a TLS-terminating proxy: no ``ETag``/``Last-Modified``, never 304, and
``http://`` next links; ``Simulator(tls=True)`` serves it over https. Needs the ``sim`` extra
(``pip install 'dfs-analytics[sim]'``) to serve; ``DEFAULT_WORK_ORDERS``, the apps and the
generator import without it (generating data needs it: verdicts are judged with
``jsonschema``). The rest of the package never imports the server; this package never imports
it (FastAPI, uvicorn) before ``Simulator`` or ``SimulatorProcess`` is asked for.
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
