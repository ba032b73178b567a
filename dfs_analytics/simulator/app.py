"""The simulator's HTTP application: the Field Services API v0.2 of CONTRACT.md, and ``/_sim/``.

Everything under ``/v0.2/`` behaves as the contract says, including its *assumed* points;
everything under ``/_sim/`` is the simulator's own (ground truth, counts, runtime settings,
reviews on demand, the OpenAPI schema), never faulty, and behind the same key as the API
except ``/_sim/openapi.json`` and ``/_sim/docs``. The runtime settings and the choices where
the contract is silent are in ``docs/simulator.md``.

This module only assembles the app: the gate in front (:mod:`.faults`), the error handlers
(:mod:`.responses`) and the routers (:mod:`.routes`), which get the shared
:class:`~.state.SimState` through ``Depends``. It never holds a route or a rule itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from .faults import SimulatorMiddleware
from .responses import install_error_handlers
from .routes import ROUTERS
from .settings import RuntimeConfig
from .state import SimState
from .store import Store

__all__ = ["create_app"]


def create_app(store: Store, config: RuntimeConfig | None = None) -> FastAPI:
    """Build the FastAPI application serving ``store`` (see the module docstring)."""
    config = config or RuntimeConfig()
    sim = SimState(store, config)
    app = FastAPI(
        title="Deepomatic Field Services API v0.2 (dfs-analytics simulator)",
        version="0.2",
        openapi_url="/_sim/openapi.json",
        docs_url="/_sim/docs",
        redoc_url=None,
    )
    app.state.sim = sim
    app.add_middleware(
        SimulatorMiddleware, sim=sim, routes=[r for router in ROUTERS for r in router.routes]
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
