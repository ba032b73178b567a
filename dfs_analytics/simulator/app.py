"""The simulator's HTTP application: the Field Services API v0.2 of CONTRACT.md, and ``/_sim/``.

Everything under ``/v0.2/`` behaves like the contract says, including the points it marks
*assumed* (pagination envelope, list filters, timeline, metadata sub-resource, callbacks).
Everything under ``/_sim/`` is the simulator's own: ground truth (with what a review of every
work order would give), request and correction counts, runtime settings (latency, faults,
throttling, validators, link scheme), reviews on demand (``POST /_sim/review``: the review team
reviews the work orders it is given, now) and the OpenAPI schema. It is never mixed with the
API and never faulty, but it needs the same ``Authorization: Token <key>`` header as the API
(any key the API accepts), so whoever can reach the port cannot read the ground truth, review
work orders or change the keys. Only ``/_sim/openapi.json`` and
``/_sim/docs`` are open: a browser cannot send the header, and the schema holds no data.

Two runtime settings make the simulator answer like a plain Django REST Framework server:

- ``validators`` (default ``True``): GET answers carry a weak ``ETag`` and a matching
  ``If-None-Match`` gets 304. ``False``: no ``ETag`` and no ``Last-Modified`` anywhere, and
  never a 304, as DRF without conditional-request middleware.
- ``next_scheme`` (default ``None``: the scheme the request came in on): ``"http"`` writes
  ``http://`` absolute ``next``/``previous`` links whatever the scheme the simulator is served
  on, as DRF does behind a TLS-terminating proxy that does not forward the scheme.

Choices where the contract is silent are listed in ``docs/simulator.md``.

This module only assembles the app: the gate in front (:mod:`.faults`: keys, counting,
latency, throttling, faults), the error handlers (:mod:`.responses`) and the routers
(:mod:`.routes`), which get the shared :class:`~.state.SimState` through ``Depends``. It never
holds a route or a rule itself.
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
