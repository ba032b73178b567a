"""What tests and benchmarks ask a running simulator, in-process or not: the ``/_sim/`` view
with the key (:class:`SimulatorView`), the check of runtime settings before they are sent, and
a throw-away TLS certificate.

This module never starts or stops a server (:mod:`.server` and :mod:`.process` do) and never
needs the ``sim`` extra's server packages.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import requests

from .settings import RuntimeConfig, check_setting

RUNTIME_SETTINGS = {f.name for f in fields(RuntimeConfig)} - {"api_keys"}
"""The runtime settings a simulator takes as keyword arguments (the keys are ``api_key``)."""


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


class SimulatorView:
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

    def review(self, work_order_ids: Iterable[str]) -> dict[str, Any]:
        """Have the simulator's review team review these work orders now
        (``POST /_sim/review``): each one's potential review is carried out (corrections,
        ``review_date``, timeline events); a reviewed work order is left as it is.

        Returns ``{"reviewed": [...], "already_reviewed": [...], "corrections": n}``. An
        unknown id raises ``requests.HTTPError`` (404, the answer names the unknown ids) and
        nothing is reviewed. A single id string is refused (TypeError): pass a list.
        """
        if isinstance(work_order_ids, (str, bytes)):
            raise TypeError("work_order_ids must be a list of work-order ids, not one string")
        ids = [str(i) for i in work_order_ids]
        return self.sim_request("POST", "review", json={"work_order_ids": ids}).json()

    def configure(self, **changes: Any) -> None:
        """Change runtime settings now (e.g. ``fault_rate=0.1``, ``latency=0.03``)."""
        check_runtime(changes)
        self.sim_request("PATCH", "config", json=changes)


def check_runtime(changes: dict[str, Any]) -> dict[str, Any]:
    """Runtime settings as stored; TypeError for an unknown name, ValueError for a bad value."""
    unknown = set(changes) - RUNTIME_SETTINGS
    if unknown:
        raise TypeError(f"unknown runtime settings: {', '.join(sorted(unknown))}")
    checked = {}
    for key, value in changes.items():
        try:
            checked[key] = check_setting(key, value)
        except ValueError as exc:
            raise ValueError(f"{key}={value!r}: {exc}") from None
    return checked
