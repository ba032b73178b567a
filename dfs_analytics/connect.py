"""``dfs.connect()``: the client a notebook should use — the real site when configured, else a
local simulator started for this Python session."""

from __future__ import annotations

import atexit
import os
from typing import Any

from .client import Client

_SIMULATORS: list[Any] = []


def connect(work_orders: int = 1000, seed: int = 0, **client_options: Any) -> Client:
    """A client of the site named by ``DFS_BASE_URL`` or ``DFS_SITE_ID`` (+ ``DFS_REGION``,
    ``DFS_API_KEY``, ``DFS_CACHE``) when set; otherwise of a local simulator with
    ``work_orders`` generated work orders (``seed``), started now and stopped when Python exits.

    Keyword arguments go to the client (``max_workers``, ``progress`` ...).
    """
    if os.environ.get("DFS_BASE_URL") or os.environ.get("DFS_SITE_ID"):
        return Client.from_env(**client_options)
    from .simulator import Simulator

    sim = Simulator(work_orders=work_orders, seed=seed).start()
    _SIMULATORS.append(sim)
    client_options.setdefault("cache", None)
    client = Client(sim.base_url, api_key=sim.api_key, **client_options)
    client.simulator = sim  # type: ignore[attr-defined]
    print(
        f"DFS_BASE_URL is not set: using a local simulator with {work_orders} work orders "
        f"at {sim.base_url}"
    )
    return client


@atexit.register
def _stop_simulators() -> None:
    while _SIMULATORS:
        _SIMULATORS.pop().stop()
