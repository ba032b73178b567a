"""The simulator in its own process (``dfs-analytics simulate``), as benchmarks use it.

This module never imports the server in this interpreter: the child process serves, this one
only starts it, waits for it to answer and stops it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import requests

from .harness import SimulatorView, self_signed_certificate

# options of ``dfs-analytics simulate`` taking an optional value (a mode and its strength)
_MODE_OPTIONS = frozenset({"selective_review", "clustered_errors"})


class SimulatorProcess(SimulatorView):
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
            if isinstance(value, bool) and key in _MODE_OPTIONS:
                # an option with an optional value: alone it is on, 0 is off
                args += [flag] if value else [flag, "0"]
            elif isinstance(value, bool):
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
