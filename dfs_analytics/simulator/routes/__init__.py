"""The simulator's HTTP routes, one ``APIRouter`` per resource group, in the order the app
includes them (the order of the OpenAPI schema).

Routes get the shared state through ``Depends`` (:mod:`..state`); none of them checks keys,
counts requests or injects faults, and none is included anywhere but :func:`..app.create_app`.
"""

from __future__ import annotations

from . import analysis, sim_view, task_groups, work_orders

ROUTERS = (work_orders.router, task_groups.router, analysis.router, sim_view.router)

__all__ = ["ROUTERS"]
