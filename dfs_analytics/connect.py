"""``dfs.connect()``: the client a notebook or a command should use.

A real site comes from the environment (``DFS_BASE_URL`` or ``DFS_SITE_ID`` + ``DFS_REGION``,
``DFS_API_KEY``, ``DFS_CACHE``, ``DFS_DATASET``). The local simulator, whose data is made up,
is used only when asked for: ``dfs.connect(simulator=True)`` or ``DFS_SIMULATOR=1``. Anything
else is an error that says what to set, so a typo never turns into made-up figures.

What the environment says is decided in :mod:`dfs_analytics.config` (:func:`check_environment`,
:func:`simulator_requested`, :func:`~dfs_analytics.config.require_site`); this module only acts
on it. It keeps the simulators it started in its own registry, keyed by client
(:func:`simulator_of`, :func:`is_simulator`), and stops them at exit. It never sets attributes
on a client or a simulator, and never serves made-up data unless asked to.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import Client
from .config import (
    KNOWN_VARIABLES,
    SIMULATOR_NOTE,
    check_environment,
    require_site,
    simulator_requested,
)
from .errors import ConfigurationError
from .simulator.generator import DEFAULT_WORK_ORDERS

if TYPE_CHECKING:
    from .simulator import Simulator

#: What to do instead when no site is configured (the end of connect()'s error).
SIMULATOR_ADVICE = (
    " To try the toolkit on made-up data instead, ask for the local simulator: "
    "dfs.connect(simulator=True), DFS_SIMULATOR=1, or --simulator on the command line."
)

# The simulators connect() started and not yet stopped (stopped at exit), which client talks
# to which of them, and the scratch folders of the running ones: this module's state, on no
# one else's object. A client that is garbage-collected leaves the mapping by itself.
_SIMULATORS: list[Simulator] = []
_SIMULATOR_OF: weakref.WeakKeyDictionary[Client, Simulator] = weakref.WeakKeyDictionary()
_SCRATCH: dict[Simulator, dict[str, Path]] = {}  # simulator -> name -> folder


def connect(
    *,
    simulator: bool | None = None,
    work_orders: int = DEFAULT_WORK_ORDERS,
    seed: int = 0,
    simulator_options: Mapping[str, Any] | None = None,
    **client_options: Any,
) -> Client:
    """A client of the configured site, or of a local simulator when asked for.

    - ``simulator=None`` (default): the simulator if ``DFS_SIMULATOR=1``, else the site named
      by ``DFS_BASE_URL`` or ``DFS_SITE_ID`` (+ ``DFS_REGION``) with ``DFS_API_KEY``
      (``DFS_CACHE``, ``DFS_DATASET`` too). Without them: ConfigurationError naming what to set.
    - ``simulator=True``: a local simulator with ``work_orders`` generated work orders
      (``seed``; ``simulator_options`` such as ``drift`` go to it), started now and stopped when
      Python exits. Its data is made up; :func:`simulator_of` gives the server.
    - ``simulator=False``: the configured site, whatever ``DFS_SIMULATOR`` says.

    An unknown ``DFS_*`` environment variable raises ConfigurationError first
    (:func:`check_environment`). Other keyword arguments go to the client (``max_workers``,
    ``progress``, ``cache`` ...). Returns the :class:`~dfs_analytics.Client`.
    """
    env = os.environ
    check_environment(env)
    wanted = simulator_requested(env) if simulator is None else bool(simulator)
    if not wanted:
        require_site(env, client_options, advice=SIMULATOR_ADVICE)
        return Client.from_env(**client_options)

    from .simulator import Simulator

    sim = Simulator(work_orders=work_orders, seed=seed, **dict(simulator_options or {})).start()
    _SIMULATORS.append(sim)
    client_options.setdefault("cache", None)
    client = Client(sim.base_url, api_key=sim.api_key, **client_options)
    _SIMULATOR_OF[client] = sim
    ignored = [name for name in ("DFS_BASE_URL", "DFS_SITE_ID") if env.get(name)]
    note = f" ({' and '.join(ignored)} ignored)" if ignored else ""
    print(
        f"Using a local simulator {SIMULATOR_NOTE}: {work_orders} made-up work orders "
        f"(seed {seed}) at {sim.base_url}{note}"
    )
    return client


def simulator_of(client: Any) -> Simulator | None:
    """The local simulator :func:`connect` started for ``client`` (still the one after
    :func:`stop`: the client's data stays made up), or None for a client of a real site or
    one built by hand."""
    try:
        return _SIMULATOR_OF.get(client)
    except TypeError:  # not something a weak reference can point at: not connect()'s client
        return None


def is_simulator(client: Any) -> bool:
    """Whether ``client`` talks to a local simulator started by :func:`connect` (its data is
    made up); returns False for a client of a real site."""
    return simulator_of(client) is not None


def data_note(client: Any) -> str:
    """``" (simulator data)"`` for a simulator's client, ``""`` otherwise: a suffix for the
    titles of plots and reports made from the client's data."""
    return f" {SIMULATOR_NOTE}" if is_simulator(client) else ""


def scratch_folder(client: Any, name: str = "scratch") -> Path:
    """A folder for files that belong to ``client``'s simulator (e.g. a campaign journal),
    created empty and removed when the simulator stops; returns its path.

    A simulator forgets everything when it stops, so a journal of corrections sent to it must
    not outlive it (a new simulator would not know its work orders). Raises
    ConfigurationError for a client of a real site: keep those files where you can find them.
    """
    sim = simulator_of(client)
    if sim is None:
        raise ConfigurationError(
            "scratch_folder() is for a simulator's client; for a real site, keep the files "
            "(a campaign journal especially) in a folder of your own."
        )
    folders = _SCRATCH.setdefault(sim, {})
    if name not in folders:
        folders[name] = Path(tempfile.mkdtemp(prefix=f"dfs-simulator-{name}-"))
    return folders[name]


def stop(client: Any) -> None:
    """Stop ``client``'s simulator now (if :func:`connect` started one), remove its scratch
    folders and close the client; returns None. Connected simulators stop at exit anyway."""
    sim = simulator_of(client)
    try:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    finally:
        if sim is not None:
            if sim in _SIMULATORS:
                _SIMULATORS.remove(sim)
            _stop_simulator(sim)


def _stop_simulator(sim: Simulator) -> None:
    try:
        sim.stop()
    finally:
        for folder in _SCRATCH.pop(sim, {}).values():
            shutil.rmtree(folder, ignore_errors=True)


@atexit.register
def _stop_simulators() -> None:
    while _SIMULATORS:
        _stop_simulator(_SIMULATORS.pop())


__all__ = [
    "KNOWN_VARIABLES",
    "SIMULATOR_NOTE",
    "check_environment",
    "connect",
    "data_note",
    "is_simulator",
    "scratch_folder",
    "simulator_of",
    "simulator_requested",
    "stop",
]
