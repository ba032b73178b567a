"""Run the simulator: in-process on a free loopback port (tests, notebooks) or in the foreground."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import fields
from typing import Any

import requests
import uvicorn

from .app import RuntimeConfig, SimState, create_app
from .generator import SeedSettings, generate
from .store import Store

_RUNTIME = {f.name for f in fields(RuntimeConfig)} - {"api_keys"}


class _SimulatorView:
    """What a test or benchmark asks a running simulator, over its ``/_sim/`` HTTP view."""

    host: str
    port: int
    api_key: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL, to give to a client: ``http://127.0.0.1:<port>/v0.2/``."""
        return self.url + "/v0.2/"

    def _sim_get(self, path: str) -> Any:
        r = requests.get(self.url + "/_sim/" + path, timeout=30)
        r.raise_for_status()
        return r.json()

    def truth(self) -> dict[str, Any]:
        """Ground truth per task name (``GET /_sim/truth``)."""
        return self._sim_get("truth")

    def request_counts(self) -> dict[str, int]:
        """Requests received per route, e.g. ``{"GET /v0.2/work-orders/": 3}``."""
        return self._sim_get("requests")["routes"]

    def reset_request_counts(self) -> None:
        requests.delete(self.url + "/_sim/requests", timeout=30).raise_for_status()

    def correction_counts(self) -> dict[tuple[str, str], int]:
        """Accepted correction calls per ``(work_order_id, task_id)``."""
        rows = self._sim_get("corrections")["results"]
        return {(r["work_order_id"], r["task_id"]): r["accepted"] for r in rows}

    def configure(self, **changes: Any) -> None:
        """Change runtime settings now (e.g. ``fault_rate=0.1``, ``latency=0.03``)."""
        unknown = set(changes) - _RUNTIME
        if unknown:
            raise TypeError(f"unknown runtime settings: {', '.join(sorted(unknown))}")
        r = requests.patch(self.url + "/_sim/config", json=changes, timeout=30)
        r.raise_for_status()


class Simulator(_SimulatorView):
    """A running simulator of the Field Services API, as a context manager.

    >>> with Simulator(work_orders=200, seed=0) as sim:
    ...     sim.base_url        # 'http://127.0.0.1:<port>/v0.2/'
    ...     sim.api_key         # 'demo-key'

    Keyword arguments are seed settings (``work_orders``, ``seed``, ``app``, ``drift``,
    ``review_rate``, ... see :class:`SeedSettings`) or runtime settings (``latency``,
    ``jitter``, ``fault_rate``, ``throttle_rate``, ``throttle_rps``, ``retry_after``,
    ``auth_status``, ``callback_delay``, ``fault_seed``); runtime settings can also change
    while it runs, with :meth:`configure`.
    """

    def __init__(
        self,
        *,
        api_key: str = "demo-key",
        host: str = "127.0.0.1",
        port: int = 0,
        store: Store | None = None,
        **settings: Any,
    ):
        runtime = {k: settings.pop(k) for k in list(settings) if k in _RUNTIME}
        self.config = RuntimeConfig(api_keys=[api_key], **runtime)
        self.seed_settings = SeedSettings.defaults(**settings) if store is None else store.settings
        self._store = store
        self.api_key = api_key
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Generate the data (unless a store was given) and serve it; returns once it answers."""
        if self._server is not None:
            return self
        store = self._store or generate(self.seed_settings)
        self._store = store
        self.app = create_app(store, self.config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_keep_alive=30, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="dfs-simulator"
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        self._sock = sock
        return self

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._sock.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving {self.base_url}" if self._server else "stopped"
        return (
            f"<Simulator {self.seed_settings.app} seed={self.seed_settings.seed} "
            f"work_orders={self.seed_settings.work_orders} {state}>"
        )

    # -- in-process access ---------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change runtime settings now (e.g. ``fault_rate=0.1``, ``latency=0.03``)."""
        unknown = set(changes) - _RUNTIME
        if unknown:
            raise TypeError(f"unknown runtime settings: {', '.join(sorted(unknown))}")
        if "auth_status" in changes and changes["auth_status"] not in (401, 403):
            raise ValueError(f"auth_status must be 401 or 403, got {changes['auth_status']!r}")
        for key, value in changes.items():
            setattr(self.config, key, value)

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the simulator has not started")
        return self._store

    @property
    def state(self) -> SimState:
        return self.app.state.sim


def serve(simulator: Simulator) -> None:
    """Serve in the foreground until interrupted (``dfs-analytics simulate``)."""
    simulator.start()
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


class SimulatorProcess(_SimulatorView):
    """The simulator in its own process (``dfs-analytics simulate``), as a context manager.

    Benchmarks use it so the server does not share the client's interpreter, as a real server
    would not. Takes the command's options as keyword arguments (``work_orders=500``,
    ``latency=0.03`` ...).
    """

    def __init__(self, *, api_key: str = "demo-key", host: str = "127.0.0.1", **options: Any):
        self.api_key = api_key
        self.host = host
        self.options = options
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SimulatorProcess:
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        args = [
            sys.executable,
            "-m",
            "dfs_analytics.cli",
            "simulate",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
        ]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"the simulator process exited: {err[-2000:]}")
            try:
                requests.get(self.url + "/_sim/config", timeout=1).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the simulator process did not answer in time")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
