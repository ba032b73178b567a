"""The simulator's HTTP routes, one ``APIRouter`` per resource group, in the order the app
includes them (the order of the OpenAPI schema).

Routes get the shared state through ``Depends`` (:mod:`..state`). They never check keys, count
requests or inject faults (the gate of :mod:`..faults` does), and are never included anywhere
but in :func:`..app.create_app`.
"""

from __future__ import annotations

from . import analysis, sim_review, sim_view, task_groups, work_orders

ROUTERS = (
    work_orders.router,
    task_groups.router,
    analysis.router,
    sim_view.router,
    sim_review.router,
)

__all__ = ["ROUTERS"]
