"""Run the simulator: in-process on a free loopback port (tests, notebooks) or in the foreground.

:class:`Simulator` serves a generated store with uvicorn in a thread; :class:`SimulatorProcess`
(:mod:`.process`, re-exported here) runs ``dfs-analytics simulate`` in its own process; both
read the ``/_sim/`` view with the key (:mod:`.harness`).
This module never answers requests itself (that is :mod:`.app`'s) and, by default, never binds
anything but a loopback address.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .generator import DEFAULT_WORK_ORDERS, SeedSettings, generate
from .harness import RUNTIME_SETTINGS, SimulatorView, check_runtime, self_signed_certificate
from .process import SimulatorProcess
from .settings import RuntimeConfig
from .state import SimState
from .store import Store

__all__ = ["Simulator", "SimulatorProcess", "SimulatorView", "self_signed_certificate", "serve"]


class Simulator(SimulatorView):
    """A running simulator of the Field Services API, as a context manager.

    >>> with Simulator(work_orders=200, seed=0) as sim:
    ...     sim.base_url        # 'http://127.0.0.1:<port>/v0.2/'
    ...     sim.api_key         # 'demo-key'

    Keyword arguments are seed settings (``work_orders`` (default
    :data:`DEFAULT_WORK_ORDERS`), ``seed``, ``app``, ``drift``, ``review_rate``, ... see
    :class:`SeedSettings`) or runtime settings (``latency``, ``jitter``, ``fault_rate``,
    ``throttle_rate``, ``throttle_burst_len``, ``throttle_rps``, ``throttle_burst``,
    ``retry_after``, ``slow_body_rate``, ``slow_body_bps``, ``auth_status``,
    ``callback_delay``, ``fault_seed``, ``validators``, ``next_scheme``); runtime settings can
    also change while it runs, with :meth:`configure`. A bad value raises ValueError before
    anything starts.

    A bad day: ``throttle_rps=100, throttle_burst=10`` is a token bucket allowing 100
    requests per second with bursts of 10 (by default a bucket holds one second's worth);
    ``throttle_rate=0.05, throttle_burst_len=5`` answers 5% of requests 429 (with
    ``Retry-After: retry_after``) in runs of 5 consecutive requests, as gateways do.
    ``slow_body_rate=1, slow_body_bps=100`` sends every answer's headers at once and its body
    at 100 bytes per second, as a stalled proxy does.

    The review model: ``selective_review=True`` (or a strength) lets the AI's verdicts steer
    who gets reviewed, ``clustered_errors=True`` (or a spread) makes each work order's photos
    good or poor so the AI's errors on it come together (both off by default, and then the
    data of a seed is unchanged). :meth:`review` has the review team review work orders now
    (``POST /_sim/review``), and ``truth()["full_review"]`` says what a review of every work
    order would give.

    A plain Django REST Framework server: ``validators=False`` sends no ``ETag`` and no
    ``Last-Modified`` and never answers 304; ``next_scheme="http"`` writes ``http://``
    next/previous links even when served over https (DRF behind a TLS-terminating proxy).

    https: ``tls=True`` serves over TLS with a throw-away self-signed certificate (needs the
    ``openssl`` command); ``certfile``/``keyfile`` serve with your own. Then :attr:`url` and
    :attr:`base_url` start with ``https://`` and :attr:`ca_file` is the certificate a client
    must trust (``requests``' ``verify=``, or the ``REQUESTS_CA_BUNDLE`` variable).
    """

    def __init__(
        self,
        *,
        api_key: str = "demo-key",
        host: str = "127.0.0.1",
        port: int = 0,
        store: Store | None = None,
        validators: bool = True,
        next_scheme: str | None = None,
        tls: bool = False,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        **settings: Any,
    ):
        runtime = {k: settings.pop(k) for k in list(settings) if k in RUNTIME_SETTINGS}
        self.config = RuntimeConfig(
            api_keys=[api_key], validators=validators, next_scheme=next_scheme, **runtime
        )
        if store is None:
            settings.setdefault("work_orders", DEFAULT_WORK_ORDERS)
            self.seed_settings = SeedSettings.defaults(**settings)
            if not isinstance(self.seed_settings.work_orders, int) or (
                self.seed_settings.work_orders < 0
            ):
                raise ValueError(
                    f"work_orders must be a non-negative integer, "
                    f"got {self.seed_settings.work_orders!r}"
                )
        else:
            self.seed_settings = store.settings
        self._store = store
        self.api_key = api_key
        self.host = host
        self.port = port
        self.tls = bool(tls or certfile)
        self.scheme = "https" if self.tls else "http"
        self.certfile = str(certfile) if certfile else None
        self.keyfile = str(keyfile) if keyfile else None
        self.ca_file = self.certfile
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Generate the data (unless a store was given) and serve it; returns once it answers."""
        if self._server is not None:
            return self
        if self.tls and self.certfile is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dfs-simulator-tls-")
            cert, key = self_signed_certificate(self.host, self._tmp.name)
            self.certfile, self.keyfile, self.ca_file = str(cert), str(key), str(cert)
        store = self._store or generate(self.seed_settings)
        self._store = store
        self.app = create_app(store, self.config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=30,
            access_log=False,
            ssl_certfile=self.certfile,
            ssl_keyfile=self.keyfile,
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
        if self._tmp is not None:  # a throw-away certificate: a restart makes another
            self._tmp.cleanup()
            self._tmp = None
            self.certfile = self.keyfile = self.ca_file = None

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
        """Change runtime settings now (e.g. ``fault_rate=0.1``, ``latency=0.03``,
        ``validators=False``); checked like ``PATCH /_sim/config`` (ValueError, TypeError)."""
        for key, value in check_runtime(changes).items():
            setattr(self.config, key, value)

    def _sim_key(self) -> str:
        # the keys may have been changed through PATCH /_sim/config: use one that still works
        keys = self.config.api_keys
        return self.api_key if self.api_key in keys else keys[0]

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
