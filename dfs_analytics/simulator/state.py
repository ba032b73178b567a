"""What the running simulator shares between requests, and the dependencies that hand it out.

:class:`SimState` bundles the store, the runtime settings, the fault draws, the request
counters and the delivered callbacks of one app. Routes receive them through ``Depends``
(:data:`SimDep`, :data:`StoreDep`, :data:`ConfigDep`) instead of closures. This module never
answers a request and never changes the store: it only holds and hands out.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Annotated, Any

from fastapi import Depends, Request

from .faults import Faults
from .generator import ground_truth
from .responses import not_found
from .review import full_review_figures
from .settings import RuntimeConfig
from .store import Store
from .work_order import WorkOrder


class SimState:
    """Everything the running app needs: the store, its settings and the counters."""

    def __init__(self, store: Store, config: RuntimeConfig):
        self.store = store
        self.config = config
        self.faults = Faults(config)
        self.counts: Counter[str] = Counter()
        self.count_lock = threading.Lock()
        self.callbacks: list[dict[str, Any]] = []
        self._inputs_by_url: dict[str, dict[str, Any]] | None = None
        self._truth: dict[str, Any] | None = None

    def truth(self) -> dict[str, Any]:
        """The ground truth of the generated data (the model's part computed once; the
        full-review figures counted again, so a deleted work order leaves them)."""
        if self._truth is None:
            self._truth = ground_truth(self.store)
        return {**self._truth, "full_review": full_review_figures(self.store)}

    def input_by_url(self, url: str) -> dict[str, Any] | None:
        """The stored input whose image URL is ``url``, or None."""
        with self.store.lock:
            if self._inputs_by_url is None:
                self._inputs_by_url = {
                    i["data"]["value"]: i
                    for wo in self.store.work_orders.values()
                    for i in wo.inputs
                }
            return self._inputs_by_url.get(url)

    def remember_input(self, item: dict[str, Any]) -> None:
        """Index a new input by its URL (see :meth:`input_by_url`)."""
        with self.store.lock:
            if self._inputs_by_url is not None:
                self._inputs_by_url[item["data"]["value"]] = item


# async: FastAPI runs them on the event loop instead of a worker thread each
async def get_sim(request: Request) -> SimState:
    """The state of the app serving ``request``."""
    return request.app.state.sim


async def get_store(sim: Annotated[SimState, Depends(get_sim)]) -> Store:
    """The store of the app serving the request."""
    return sim.store


async def get_config(sim: Annotated[SimState, Depends(get_sim)]) -> RuntimeConfig:
    """The runtime settings of the app serving the request."""
    return sim.config


SimDep = Annotated[SimState, Depends(get_sim)]
StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[RuntimeConfig, Depends(get_config)]


def get_wo(store: Store, wo_id: str) -> WorkOrder:
    """The work order ``wo_id`` (call with ``store.lock`` held); 404 when there is none."""
    wo = store.work_orders.get(wo_id)
    if wo is None:
        raise not_found()
    return wo
