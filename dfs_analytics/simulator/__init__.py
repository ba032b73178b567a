"""A local simulator of the Deepomatic Field Services API v0.2.

A real HTTP server (FastAPI + uvicorn) with seeded, realistic data, latency, fault injection
and a ground-truth view under ``/_sim/``. Start it in-process::

    from dfs_analytics.simulator import Simulator
    with Simulator(work_orders=500, seed=1, latency=0.03) as sim:
        client = dfs.Client(base_url=sim.base_url, api_key=sim.api_key)

or from a shell: ``dfs-analytics simulate --port 8765``. Needs the ``sim`` extra
(``pip install 'dfs-analytics[sim]'``). The rest of the package never imports it.
"""

from .apps import available_apps, load_app
from .generator import SeedSettings, generate, ground_truth
from .server import Simulator, SimulatorProcess

__all__ = [
    "SeedSettings",
    "Simulator",
    "SimulatorProcess",
    "available_apps",
    "generate",
    "ground_truth",
    "load_app",
]
