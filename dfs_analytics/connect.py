"""``dfs.connect()``: the client a notebook or a command should use.

A real site comes from the environment (``DFS_BASE_URL`` or ``DFS_SITE_ID`` + ``DFS_REGION``,
``DFS_API_KEY``, ``DFS_CACHE``, ``DFS_DATASET``). The local simulator, whose data is made up,
is used only when asked for: ``dfs.connect(simulator=True)`` or ``DFS_SIMULATOR=1``. Anything
else is an error that says what to set, so a typo never turns into made-up figures.

:func:`check_environment` refuses ``DFS_*`` variables the toolkit does not know (naming the
nearest known one); :func:`connect` and the ``dfs-analytics`` command call it first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .client import Client
from .config import KNOWN_VARIABLES, check_environment
from .errors import ConfigurationError
from .simulator.generator import DEFAULT_WORK_ORDERS

#: What a title gets when the data behind it comes from the simulator.
SIMULATOR_NOTE = "(simulator data)"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
_SIMULATORS: list[Any] = []


def simulator_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``DFS_SIMULATOR`` asks for the local simulator (``1``, ``true``, ``yes``,
    ``on``); returns False when it is unset or ``0``/``false``/``no``/``off``, and raises
    :class:`~dfs_analytics.ConfigurationError` for any other value."""
    env = os.environ if environ is None else environ
    value = env.get("DFS_SIMULATOR", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"DFS_SIMULATOR={env['DFS_SIMULATOR']!r} is not understood: use 1 to ask for the local "
        "simulator (made-up data), 0 or unset for the site in DFS_BASE_URL / DFS_SITE_ID."
    )


def _missing_settings(env: Mapping[str, str], options: Mapping[str, Any]) -> list[str]:
    missing = []
    if not (
        options.get("base_url")
        or options.get("site_id")
        or env.get("DFS_BASE_URL")
        or env.get("DFS_SITE_ID")
    ):
        missing.append("DFS_BASE_URL (or DFS_SITE_ID, with DFS_REGION for the US)")
    if not (options.get("api_key") or env.get("DFS_API_KEY", "").strip()):
        missing.append("DFS_API_KEY")
    return missing


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
      Python exits. Its data is made up; the client's ``simulator`` attribute is the server.
    - ``simulator=False``: the configured site, whatever ``DFS_SIMULATOR`` says.

    An unknown ``DFS_*`` environment variable raises ConfigurationError first
    (:func:`check_environment`). Other keyword arguments go to the client (``max_workers``,
    ``progress``, ``cache`` ...). Returns the :class:`~dfs_analytics.Client`.
    """
    env = os.environ
    check_environment(env)
    wanted = simulator_requested(env) if simulator is None else bool(simulator)
    if not wanted:
        missing = _missing_settings(env, client_options)
        if missing == ["DFS_API_KEY"] and not (
            client_options.get("base_url") or client_options.get("site_id")
        ):
            from .config import Settings

            Settings.from_env(dict(env))  # a bad URL, site id or region is the first thing to fix
        if missing:
            raise ConfigurationError(
                f"no site is configured: set {' and '.join(missing)}. To try the toolkit on "
                "made-up data instead, ask for the local simulator: dfs.connect(simulator=True), "
                "DFS_SIMULATOR=1, or --simulator on the command line."
            )
        return Client.from_env(**client_options)

    from .simulator import Simulator

    sim = Simulator(work_orders=work_orders, seed=seed, **dict(simulator_options or {})).start()
    _SIMULATORS.append(sim)
    client_options.setdefault("cache", None)
    client = Client(sim.base_url, api_key=sim.api_key, **client_options)
    client.simulator = sim  # type: ignore[attr-defined]
    ignored = [name for name in ("DFS_BASE_URL", "DFS_SITE_ID") if env.get(name)]
    note = f" ({' and '.join(ignored)} ignored)" if ignored else ""
    print(
        f"Using a local simulator {SIMULATOR_NOTE}: {work_orders} made-up work orders "
        f"(seed {seed}) at {sim.base_url}{note}"
    )
    return client


def is_simulator(client: Any) -> bool:
    """Whether ``client`` talks to a local simulator started by :func:`connect` (its data is
    made up); returns False for a client of a real site."""
    return getattr(client, "simulator", None) is not None


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
    sim = getattr(client, "simulator", None)
    if sim is None:
        raise ConfigurationError(
            "scratch_folder() is for a simulator's client; for a real site, keep the files "
            "(a campaign journal especially) in a folder of your own."
        )
    folders: dict[str, Path] = sim.__dict__.setdefault("_dfs_scratch", {})
    if name not in folders:
        folders[name] = Path(tempfile.mkdtemp(prefix=f"dfs-simulator-{name}-"))
    return folders[name]


def stop(client: Any) -> None:
    """Stop ``client``'s simulator now (if :func:`connect` started one), remove its scratch
    folders and close the client; returns None. Connected simulators stop at exit anyway."""
    sim = getattr(client, "simulator", None)
    try:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    finally:
        if sim is not None:
            if sim in _SIMULATORS:
                _SIMULATORS.remove(sim)
            _stop_simulator(sim)


def _stop_simulator(sim: Any) -> None:
    try:
        sim.stop()
    finally:
        for folder in sim.__dict__.pop("_dfs_scratch", {}).values():
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
]
