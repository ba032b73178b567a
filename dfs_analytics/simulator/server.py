"""Run the simulator: in-process on a free loopback port (tests, notebooks) or in the foreground.

:class:`Simulator` serves a generated store with uvicorn in a thread; :class:`SimulatorProcess`
runs ``dfs-analytics simulate`` in its own process; both read the ``/_sim/`` view with the key.
This module never answers requests itself (that is :mod:`.app`'s) and, by default, never binds
anything but a loopback address.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import requests
import uvicorn

from .app import create_app
from .generator import DEFAULT_WORK_ORDERS, SeedSettings, generate
from .settings import RuntimeConfig, check_setting
from .state import SimState
from .store import Store

_RUNTIME = {f.name for f in fields(RuntimeConfig)} - {"api_keys"}


def self_signed_certificate(host: str, folder: str | Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for ``host`` (and ``localhost``), valid two days.

    Returns ``(certificate, private key)`` paths in ``folder``; the certificate is also what a
    client trusts (``verify=certificate``, or ``REQUESTS_CA_BUNDLE``). Needs the ``openssl``
    command.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("serving over https with tls=True needs the 'openssl' command")
    folder = Path(folder)
    cert, key = folder / "simulator-cert.pem", folder / "simulator-key.pem"
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        kind = "IP"
    except OSError:
        kind = "DNS"
    names = f"{kind}:{host}" + ("" if host == "localhost" else ",DNS:localhost")
    done = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName={names}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {done.stderr.strip()[-500:]}")
    return cert, key


class _SimulatorView:
    """What a test or benchmark asks a running simulator, over its ``/_sim/`` HTTP view.

    ``/_sim/`` needs the API key like the API does; these methods send it.
    """

    host: str
    port: int
    api_key: str
    scheme: str = "http"
    ca_file: str | None = None  # the certificate to trust when serving over https

    @property
    def url(self) -> str:
        """The server's root: ``http://127.0.0.1:<port>`` (``https://`` when serving TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL, to give to a client: ``http://127.0.0.1:<port>/v0.2/``."""
        return self.url + "/v0.2/"

    def _sim_key(self) -> str:
        return self.api_key

    @property
    def auth_headers(self) -> dict[str, str]:
        """``{"Authorization": "Token <key>"}``: what the API and ``/_sim/`` both need."""
        return {"Authorization": f"Token {self._sim_key()}"}

    def sim_request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request to ``/_sim/<path>`` with the key; raises on an error status."""
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("verify", self.ca_file or True)
        headers = {**self.auth_headers, **kwargs.pop("headers", {})}
        r = requests.request(method, self.url + "/_sim/" + path, headers=headers, **kwargs)
        r.raise_for_status()
        return r

    def view(self, path: str) -> Any:
        """``GET /_sim/<path>`` as parsed JSON, e.g. ``view("callbacks")``."""
        return self.sim_request("GET", path).json()

    def _sim_get(self, path: str) -> Any:
        return self.view(path)

    def truth(self) -> dict[str, Any]:
        """Ground truth per task name (``GET /_sim/truth``)."""
        return self._sim_get("truth")

    def request_counts(self) -> dict[str, int]:
        """Requests received per route, e.g. ``{"GET /v0.2/work-orders/": 3}``."""
        return self._sim_get("requests")["routes"]

    def reset_request_counts(self) -> None:
        """Forget the request counts (``DELETE /_sim/requests``)."""
        self.sim_request("DELETE", "requests")

    def correction_counts(self) -> dict[tuple[str, str], int]:
        """Accepted correction calls per ``(work_order_id, task_id)``."""
        rows = self._sim_get("corrections")["results"]
        return {(r["work_order_id"], r["task_id"]): r["accepted"] for r in rows}

    def configure(self, **changes: Any) -> None:
        """Change runtime settings now (e.g. ``fault_rate=0.1``, ``latency=0.03``)."""
        _check_runtime(changes)
        self.sim_request("PATCH", "config", json=changes)


def _check_runtime(changes: dict[str, Any]) -> dict[str, Any]:
    """Runtime settings as stored; TypeError for an unknown name, ValueError for a bad value."""
    unknown = set(changes) - _RUNTIME
    if unknown:
        raise TypeError(f"unknown runtime settings: {', '.join(sorted(unknown))}")
    checked = {}
    for key, value in changes.items():
        try:
            checked[key] = check_setting(key, value)
        except ValueError as exc:
            raise ValueError(f"{key}={value!r}: {exc}") from None
    return checked


class Simulator(_SimulatorView):
    """A running simulator of the Field Services API, as a context manager.

    >>> with Simulator(work_orders=200, seed=0) as sim:
    ...     sim.base_url        # 'http://127.0.0.1:<port>/v0.2/'
    ...     sim.api_key         # 'demo-key'

    Keyword arguments are seed settings (``work_orders`` (default
    :data:`DEFAULT_WORK_ORDERS`), ``seed``, ``app``, ``drift``, ``review_rate``, ... see
    :class:`SeedSettings`) or runtime settings (``latency``, ``jitter``, ``fault_rate``,
    ``throttle_rate``, ``throttle_rps``, ``retry_after``, ``auth_status``, ``callback_delay``,
    ``fault_seed``, ``validators``, ``next_scheme``); runtime settings can also change while it
    runs, with :meth:`configure`. A bad value raises ValueError before anything starts.

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
        runtime = {k: settings.pop(k) for k in list(settings) if k in _RUNTIME}
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
        for key, value in _check_runtime(changes).items():
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


class SimulatorProcess(_SimulatorView):
    """The simulator in its own process (``dfs-analytics simulate``), as a context manager.

    Benchmarks use it so the server does not share the client's interpreter, as a real server
    would not. Takes the command's options as keyword arguments (``work_orders=500``,
    ``latency=0.03``, ``validators=False``, ``next_scheme="http"`` ...; a boolean becomes
    ``--name`` or ``--no-name``); ``tls=True`` serves over https with a throw-away certificate
    (:attr:`ca_file`). Without ``work_orders`` it serves :data:`DEFAULT_WORK_ORDERS`.
    """

    def __init__(
        self,
        *,
        api_key: str = "demo-key",
        host: str = "127.0.0.1",
        tls: bool = False,
        **options: Any,
    ):
        self.api_key = api_key
        self.host = host
        self.tls = tls
        self.scheme = "https" if tls or options.get("certfile") else "http"
        self.ca_file = str(options["certfile"]) if options.get("certfile") else None
        self.options = options
        self.port = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The ``dfs-analytics simulate`` command line this process runs."""
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
            flag = "--" + key.replace("_", "-")
            if value is None:
                continue
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                args += [flag, str(value)]
        return args

    def start(self) -> SimulatorProcess:
        """Start the process and return once it answers (RuntimeError if it exits first)."""
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        if self.tls and not self.options.get("certfile"):
            self._tmp = tempfile.TemporaryDirectory(prefix="dfs-simulator-tls-")
            cert, key = self_signed_certificate(self.host, self._tmp.name)
            self.options.update(certfile=str(cert), keyfile=str(key))
            self.ca_file = str(cert)
        self._proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self._proc = None
                self._cleanup()
                raise RuntimeError(f"the simulator process exited: {err[-2000:]}")
            try:
                self.sim_request("GET", "config", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the simulator process did not answer in time")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 seconds)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.options.pop("certfile", None)
            self.options.pop("keyfile", None)
            self.ca_file = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
