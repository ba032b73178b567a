"""Builders and assertions shared by the tests (plain functions and constants, no fixtures).

Request names and counters of a simulator (:func:`counts`, :func:`delta`), its store as the
API shows it (:func:`store_work_orders`, :func:`store_events`), correction plans picked from
what a server holds (:func:`targets`, :func:`plan_frame`), hand-built work orders of the
audit, report and plot tests (:func:`small_work_orders`, :func:`drift_work_orders`,
:func:`engineers_frame`), small loopback HTTP servers (:class:`QuietHandler`,
:func:`local_http_server`), child processes forked with the package imported (:func:`forked`,
:class:`Command`) and the Voila + Chromium helpers of the browser tests.
Fixtures live in ``tests/conftest.py``; this module never starts anything on import.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pandas as pd

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.config import Secret
from dfs_analytics.simulator import Simulator

# ``@pytest.mark.sim(..., variants=VALIDATORS)``: with validators (ETag, 304), and as a plain
# Django REST Framework server (neither)
VALIDATORS: dict[str, dict[str, Any]] = {
    "validators": {"validators": True},
    "plain-drf": {"validators": False},
}

LIST = "GET /v0.2/work-orders/"
RETRIEVE = "GET /v0.2/work-orders/{wo_id}/"
TIMELINE = "GET /v0.2/work-orders/{wo_id}/timeline/"
CREATE = "POST /v0.2/work-orders/"

# fiber-connection (the simulator's default app): task groups and a few tasks by type
GROUPS = ("pb-ferme-avant", "pb-ouvert-apres", "pm-ouvert-apres", "releve-optique")


def counts(sim: Simulator) -> dict[str, int]:
    return dict(sim.request_counts())


def delta(sim: Simulator, before: dict[str, int]) -> dict[str, int]:
    """Requests received since ``before`` (a snapshot of ``sim.request_counts()``)."""
    now = sim.request_counts()
    out = {k: v - before.get(k, 0) for k, v in now.items()}
    return {k: v for k, v in out.items() if v}


def store_work_orders(sim: Simulator) -> dict[str, dict[str, Any]]:
    """The simulator's work orders as the list endpoint shows them, by id."""
    with sim.store.lock:
        return {
            wo_id: wo.to_dict(inputs=False, task_groups=False)
            for wo_id, wo in sim.store.work_orders.items()
        }


def store_events(sim: Simulator, wo_id: str) -> list[dict[str, Any]]:
    with sim.store.lock:
        return [dict(e) for e in sim.store.work_orders[wo_id].events]


def timeline_pages(sim: Simulator, ids: list[str], page_size: int) -> int:
    """How many timeline requests a complete walk of these work orders' timelines takes."""
    with sim.store.lock:
        return sum(max(1, math.ceil(len(sim.store.work_orders[i].events) / page_size)) for i in ids)


def image_url(**forced: Any) -> str:
    """A fresh image URL whose ``dfs-sim:`` directives force the AI's value of some tasks."""
    query = ";".join(f"dfs-sim:{k}={text(v)}" for k, v in forced.items())
    return f"https://img.example.com/{uuid.uuid4()}.jpg" + (f"?{query}" if query else "")


def task_of(wo: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in wo["tasks"] if t["name"] == name]
    assert len(found) == 1, f"task {name!r} is not (once) on work order {wo['id']}"
    return found[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound then closed: connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def by_keys(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The frame sorted by ``keys`` (as text, so category order does not matter) with a fresh
    RangeIndex, for order-free comparisons."""
    return frame.sort_values(keys, kind="stable", key=lambda s: s.astype(str)).reset_index(
        drop=True
    )


def assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    """Same rows (in ``keys`` order), same columns in the same order, same dtypes, same values."""
    pd.testing.assert_frame_equal(by_keys(a, keys), by_keys(b, keys))


WO_KEYS = ["work_order_id"]
TASK_KEYS = ["work_order_id", "task_id"]
TIMELINE_KEYS = ["work_order_id", "date", "event_id", "task_id"]


def assert_no_secret(text: str, key: Any) -> None:
    """``key`` (a string, or the settings' masked Secret) is nowhere in ``text``."""
    key = key.reveal() if isinstance(key, Secret) else key
    assert key not in text, f"the API key leaked into: {text[:300]!r}"


# --------------------------------------------------------------------------------------------
# correction campaigns: plans of (work order, task, new value) picked from what the server holds
# --------------------------------------------------------------------------------------------


CORRECTION = "PATCH /v0.2/work-orders/{wo_id}/tasks/{task_id}/correction/"

# values a correction may take, per task (all allowed by the task's rules)
CHOICES: dict[str, list[Any]] = {
    "pb_etiquette_presente": [True, False],
    "cables_ranges": [True, False],
    "jarretiere_connectee": [True, False],
    "etiquette_lisible": [True, False],
    "photo_environnement": [True, False],  # no rules: any boolean
    "nombre_connecteurs": [2, 13, 7],
    "couleur_fibre": ["vert", "rouge", "bleu"],
    "mesure_puissance": [-15.25, -26.5],
    "numero_serie": ["ZX81ZX81", "AB12CD34EF"],
}


def py(value: Any) -> Any:
    """A numpy scalar (from a frame of one dtype) as its Python value."""
    return value.item() if hasattr(value, "item") else value


def same(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, 1 equals 1.0."""
    a, b = py(a), py(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def text(value: Any) -> str:
    """A value as a plan's CSV cell or a ``dfs-sim:`` directive writes it (booleans in JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def effective(state: dict[str, Any] | None) -> Any:
    """A task state's current value: the corrected one when set, else the analysed one."""
    if not state:
        return None
    if state["corrected_value"] is not None:
        return state["corrected_value"]
    return state["analyzed_value"]


def sentence_of(task: dict[str, Any], value: Any) -> str | None:
    """The verdict sentence naming exactly ``value`` (a const rule), if any."""
    for rule in task["outcome_validation"] or ():
        schema = rule["schema"]
        if "const" in schema and same(schema["const"], value):
            return rule["sentence"]
    return None


def corrections(sim: Simulator) -> dict[tuple[str, str], int]:
    """Accepted corrections per (work order, task) on the simulator."""
    return dict(sim.correction_counts())


def patches(sim: Simulator) -> int:
    """Correction requests the simulator received (accepted or not)."""
    return sim.request_counts().get(CORRECTION, 0)


def targets(
    reader: dfs.Client,
    n: int,
    *,
    skip: int = 0,
    names: tuple[str, ...] = tuple(CHOICES),
    per_work_order: int = 2,
) -> list[dict[str, Any]]:
    """``n`` analysed (work order, task) pairs, each with a value of CHOICES different from the
    task's current one; at most ``per_work_order`` per work order, in a stable order (the
    server's order of work orders, then of tasks). Each is a dict: ``work_order_id``,
    ``task_id``, ``task_name``, ``task`` (its JSON), ``current`` and ``value``."""
    out = []
    for wo in reader.list_work_orders():
        picked = 0
        for task in wo["tasks"]:
            state = task["state"]
            if picked == per_work_order or task["name"] not in names:
                continue
            if not state or state["analyzed_value"] is None:
                continue
            current = effective(state)
            value = next(v for v in CHOICES[task["name"]] if not same(v, current))
            out.append(
                {
                    "work_order_id": wo["id"],
                    "task_id": task["id"],
                    "task_name": task["name"],
                    "task": task,
                    "current": current,
                    "value": value,
                }
            )
            picked += 1
    assert len(out) >= skip + n, "not enough analysed tasks in the simulator"
    return out[skip : skip + n]


def plan_frame(items: list[dict[str, Any]], *, forms: bool = True) -> pd.DataFrame:
    """A plan: Python values, string forms and verdict sentences in turn; every fourth row by
    task id instead of task name."""
    rows = []
    for i, item in enumerate(items):
        value: Any = item["value"]
        if forms and i % 3 == 1:
            value = text(value)
        elif forms and i % 3 == 2:
            value = sentence_of(item["task"], item["value"]) or text(value)
        by_id = forms and i % 4 == 3
        rows.append(
            {
                "work_order_id": item["work_order_id"],
                "task_name": None if by_id else item["task_name"],
                "task_id": item["task_id"] if by_id else None,
                "corrected_value": value,
            }
        )
    return pd.DataFrame(rows, columns=["work_order_id", "task_name", "task_id", "corrected_value"])


def events_by_task(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """A campaign journal's events, in order, per (work order, task)."""
    out: dict[tuple[str, str], list[str]] = {}
    for record in records:
        out.setdefault((record["work_order_id"], record["task_id"]), []).append(record["event"])
    return out


# --------------------------------------------------------------------------------------------
# audit, normalisation and plot tests: hand-built rules, the shared simulator's tasks frame
# --------------------------------------------------------------------------------------------


def verdict_rule(schema: dict[str, Any], sentence: str, ok: bool) -> dict[str, Any]:
    """A verdict rule as the API sends it in a task's ``outcome_validation``."""
    return {
        "schema": schema,
        "sentence": sentence,
        "color": "#000000",
        "not_analyzed": False,
        "is_conformity_validated": ok,
    }


# --------------------------------------------------------------------------------------------
# hand-built work orders of the audit, report and plot tests (tasks: present, power, serial,
# never), and a frame of engineers' audited and overridden counts
# --------------------------------------------------------------------------------------------


RULES = {
    "present": [
        verdict_rule({"type": "boolean", "const": True}, "OK", True),
        verdict_rule({"type": "boolean", "const": False}, "Missing", False),
    ],
    "power": [
        verdict_rule({"type": "number", "minimum": -20}, "In range", True),
        verdict_rule({"type": "number"}, "Too weak", False),
    ],
    # "??" matches no rule: its verdict is "other"
    "serial": [verdict_rule({"type": "string", "pattern": "^[A-Z]{2}[0-9]+$"}, "Readable", True)],
    "never": [],
}
TYPES = {"present": "Boolean", "power": "Number", "serial": "Text", "never": "Text"}
TASK_GROUPS = {"present": "grp-a", "power": "grp-a", "serial": "grp-b", "never": "grp-b"}

A, B, C = "a@example.com", "b@example.com", "c@example.com"
V1, V2 = "av-1", "av-2"


def st(analysed: Any, corrected: Any, message: str | None) -> dict[str, Any]:
    return {
        "analyzed_value": analysed,
        "corrected_value": corrected,
        "message": message,
        "is_conform": None,
        "analysis_id": "an-1",
        "update_date": "2026-03-20T00:00:00Z",
    }


def make_task(name: str, version: str, state: dict[str, Any] | None) -> dict[str, Any]:
    group = TASK_GROUPS.get(name, "grp-a")
    return {
        # ids change between app versions, names stay
        "id": f"{name}-{version}",
        "name": name,
        "sentence": name.capitalize(),
        "mandatory": True,
        "only_for_dashboard": False,
        "conformity_status": True,
        "outcome_display": "Select",
        "outcome_type": TYPES.get(name, "Boolean"),
        "outcome_validation": RULES.get(name, RULES["present"]),
        "task_group_id": f"{group}-{version}",
        "task_group_name": group,
        "state": state,
    }


def make_wo(
    wid: str,
    version: str,
    engineer: str | None,
    date: str,
    reviewed: bool,
    tasks: list[tuple[str, dict[str, Any] | None]],
) -> dict[str, Any]:
    return {
        "id": wid,
        "name": wid.upper(),
        "site_id": "site-1",
        "app_version_id": version,
        "create_date": date,
        "update_date": "2026-03-20T00:00:00Z",
        "review_date": "2026-03-20T00:00:00Z" if reviewed else None,
        "field_engineer_email": engineer,
        "tasks": [make_task(name, version, state) for name, state in tasks],
    }


# Child processes fork from one fork server per test process, which imported the package and
# its CLI once (a fresh interpreter per child spends most of its CPU, ~0.8 s, importing them).
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["dfs_analytics.cli"])

# the start of every forked child: a fresh interpreter's start method (tqdm's lock is then no
# named semaphore a kill would leak), the given environment and folder, and its own output
# (fds 1 and 2 are the fork server's)
_CHILD_START = """\
import multiprocessing, os
multiprocessing.set_start_method("fork", force=True)
os.environ.clear()
os.environ.update(env)
os.chdir(folder)
_out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.dup2(_out, 1)
os.dup2(_out if errors == output else os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
"""


def forked(
    code: str,
    output: Path,
    *,
    errors: Path | None = None,
    folder: Path | None = None,
    env: dict[str, str] | None = None,
    **names: Any,
) -> BaseProcess:
    """A started child process running ``code`` with ``names`` defined, in ``folder`` (default:
    the current one) with the environment ``env`` (default: this process's), its standard
    output to ``output`` and its standard error to ``errors`` (default: the same file).

    Returns the process: ``join()``, ``exitcode`` (``code``'s ``sys.exit`` status; -9 after
    ``kill()``)."""
    names.update(
        env=dict(os.environ if env is None else env),
        folder=str(folder or Path.cwd()),
        output=str(output),
        errors=str(errors or output),
    )
    process = FORKS.Process(target=exec, args=(_CHILD_START + code, names))
    process.start()
    return process


# run by ``exec`` in a forked child, with ``argv`` given: what the ``dfs-analytics`` script does
_CLI = """\
import sys

sys.argv = argv

from dfs_analytics.cli import main

sys.exit(main())
"""


class Command:
    """A ``dfs-analytics`` command (``args`` after the program's name) running in a child
    forked by :func:`forked`, in ``folder`` with the environment ``env``; its standard output
    and error go to ``command-N.out`` and ``command-N.err`` in ``folder``."""

    def __init__(self, args: list[str], folder: Path, env: dict[str, str]) -> None:
        self.args = ["dfs-analytics", *args]
        n = len(list(folder.glob("command-*.out")))
        self.out, self.err = folder / f"command-{n}.out", folder / f"command-{n}.err"
        self.out.touch()
        self.process = forked(
            _CLI, self.out, errors=self.err, folder=folder, env=env, argv=self.args
        )

    def wait(self, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Its exit status and output once it ended; ``subprocess.TimeoutExpired`` if it is
        still running after ``timeout`` seconds."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return subprocess.CompletedProcess(
            self.args, self.process.exitcode, self.out.read_text(), self.err.read_text()
        )


def small_work_orders() -> list[dict[str, Any]]:
    """Six work orders, four tasks (Boolean, Number, Text, a Text task never analysed).

    Audited (reviewed + analysed), per task:
      present: wo-1 kept, wo-2 overridden, wo-3 overridden, wo-5 kept, wo-6 kept  -> 2 / 5
      power:   wo-1 corrected to the same value (agreement), wo-2 kept, wo-3 overridden -> 1 / 3
               (wo-5: not analysed, value entered by a human: does not count)
      serial:  wo-1 overridden, wo-2 kept ("??": no verdict rule), wo-3 same value, wo-5 kept
               -> 1 / 4
      never:   never analysed -> 0 / 0
    wo-4 is not reviewed (engineer C); wo-6 has no engineer.
    """
    return [
        make_wo(
            "wo-1",
            V1,
            A,
            "2026-03-02T12:00:00Z",
            True,
            [
                ("present", st(True, None, "OK")),
                ("power", st(-12.5, -12.5, "In range")),
                ("serial", st("AB123", "AB124", "Readable")),
                ("never", None),
            ],
        ),
        make_wo(
            "wo-2",
            V1,
            A,
            "2026-03-04T12:00:00Z",
            True,
            [
                ("present", st(False, True, "OK")),
                ("power", st(-30, None, "Too weak")),
                ("serial", st("??", None, None)),
                ("never", None),
            ],
        ),
        make_wo(
            "wo-3",
            V2,
            B,
            "2026-03-10T12:00:00Z",
            True,
            [
                ("present", st(True, False, "Missing")),
                ("power", st(-25, -15, "In range")),
                ("serial", st("CD9", "CD9", "Readable")),
                ("never", st(None, None, None)),
            ],
        ),
        make_wo(
            "wo-4",
            V2,
            C,
            "2026-03-11T12:00:00Z",
            False,
            [
                ("present", st(False, None, "Missing")),
                ("power", st(-10, None, "In range")),
                ("serial", None),
                ("never", None),
            ],
        ),
        make_wo(
            "wo-5",
            V2,
            B,
            "2026-03-12T12:00:00Z",
            True,
            [
                ("present", st(True, None, "OK")),
                ("power", st(None, -18, "In range")),
                ("serial", st("ZZ1", None, "Readable")),
                ("never", None),
            ],
        ),
        make_wo(
            "wo-6",
            V2,
            None,
            "2026-03-17T12:00:00Z",
            True,
            [("present", st(False, None, "Missing")), ("never", None)],
        ),
    ]


def small_tasks() -> pd.DataFrame:
    return normalize.tasks_frame(small_work_orders())


def drift_work_orders(
    old: str = "v9-old", new: str = "v10-new", per_version: int = 30
) -> list[dict[str, Any]]:
    """``per_version`` reviewed work orders per app version, two tasks each.

    present: 1 / 30 overridden in the old version, 15 / 30 in the new one (a clear change).
    power:   3 / 30 in both (no change). The new version's id sorts before the old one's, so
    periods must be ordered by date, not by name.
    """
    wos = []
    for v, version in enumerate((old, new)):
        for i in range(per_version):
            present_over = i < (1 if v == 0 else 15)
            power_over = i < 3
            wos.append(
                make_wo(
                    f"wo-{v}-{i:03d}",
                    version,
                    A if i % 2 else B,
                    f"2026-0{1 + v}-{1 + i % 28:02d}T{8 + i // 28:02d}:00:00Z",
                    True,
                    [
                        ("present", st(True, False if present_over else None, "OK")),
                        ("power", st(-12, -30 if power_over else None, "In range")),
                    ],
                )
            )
    return wos


def engineers_frame(counts: dict[str | None, tuple[int, int]]) -> pd.DataFrame:
    """Tasks of engineers: ``{email: (n audited, k overridden)}``, one Boolean task each."""
    wos: list[dict[str, Any]] = []
    for email, (n, k) in counts.items():
        for i in range(n):
            wos.append(
                {
                    "id": f"{email}-{i}",
                    "name": f"W{i}",
                    "app_version_id": "v1",
                    "create_date": "2026-03-02T10:00:00Z",
                    "update_date": "2026-03-03T10:00:00Z",
                    "review_date": "2026-03-03T10:00:00Z",
                    "field_engineer_email": email,
                    "tasks": [
                        {
                            "id": "t",
                            "name": "present",
                            "task_group_name": "g",
                            "outcome_type": "Boolean",
                            "outcome_validation": [
                                {"schema": {"const": True}, "is_conformity_validated": True},
                                {"schema": {"const": False}, "is_conformity_validated": False},
                            ],
                            "state": {
                                "analyzed_value": True,
                                "corrected_value": False if i < k else None,
                            },
                        }
                    ],
                }
            )
    return normalize.tasks_frame(wos)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for the small servers of the tests: no log lines, and
    :meth:`answer` to reply."""

    def answer(self, status: int, body: Any = None) -> None:
        """Reply ``status`` with ``body`` as JSON (None: an empty body)."""
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A loopback HTTP server answering with ``handler``, in a thread, for as long as the block
    runs; ``server.server_address[1]`` is its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------------------------
# a notebook served by Voila, and Debian's Chromium to open it (the browser tests)
# --------------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
# what Chromium needs on a machine with a closed network and no display
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def voila_server(folder: Path, notebook: str, sim: Any) -> Iterator[str]:
    """Serve ``folder/notebook`` with Voila on a free loopback port, its ``DFS_*`` site being
    ``sim``; yields the page's URL once Voila answers, and stops it afterwards."""
    import os
    import sys
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
    env.update(
        DFS_BASE_URL=sim.base_url, DFS_API_KEY=sim.api_key, DFS_CACHE="none", MPLBACKEND="Agg"
    )
    with open(folder / "voila.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voila",
                notebook,
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
                "--Voila.tornado_settings={'xsrf_cookies': False}",
            ],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError((folder / "voila.log").read_text()[-3000:])
                try:
                    requests.get(url + "api", timeout=2)
                    break
                except requests.RequestException:
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def chromium_page(url: str, failure_png: Path, height: int = 1800) -> Iterator[Any]:
    """A page of headless Chromium (Playwright) opened at ``url``; a failure inside the block
    leaves a full-page screenshot at ``failure_png`` before it propagates."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(url, timeout=120_000)
            try:
                yield page
            except Exception:
                page.screenshot(path=str(failure_png), full_page=True)
                raise
        finally:
            browser.close()


def clear_aws_env(monkeypatch: Any, tmp_path: Path) -> None:
    """No AWS credentials anywhere (variables, files, instance metadata) and no dataset
    settings: only what a call is given can open an object store."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("DFS_STORAGE_OPTIONS", raising=False)
    monkeypatch.delenv("DFS_DATASET", raising=False)
