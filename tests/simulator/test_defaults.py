"""One default size: every way of starting the simulator generates DEFAULT_WORK_ORDERS work
orders unless told otherwise, so one seed gives the same data everywhere."""

from __future__ import annotations

import inspect
import subprocess
import sys

import requests

from dfs_analytics import cli
from dfs_analytics.demo import run_demo
from dfs_analytics.simulator import DEFAULT_WORK_ORDERS, SeedSettings, Simulator, SimulatorProcess


def test_the_constant_is_what_the_generator_and_the_simulator_use():
    assert SeedSettings().work_orders == DEFAULT_WORK_ORDERS
    assert SeedSettings.defaults().work_orders == DEFAULT_WORK_ORDERS  # data/seed.json agrees
    assert Simulator().seed_settings.work_orders == DEFAULT_WORK_ORDERS
    assert Simulator(work_orders=7).seed_settings.work_orders == 7


def test_every_command_defaults_to_the_constant():
    parser = cli.build_parser()
    for argv in (
        ["simulate"],
        ["report"],
        ["export", "tasks", "--out", "x.csv"],
        ["demo"],
    ):
        assert parser.parse_args(argv).work_orders == DEFAULT_WORK_ORDERS, argv
    assert inspect.signature(run_demo).parameters["work_orders"].default == DEFAULT_WORK_ORDERS


def test_the_factory_and_the_process_default_to_the_constant(dfs_simulator_factory):
    sim = dfs_simulator_factory(seed=3)
    assert len(sim.store.work_orders) == DEFAULT_WORK_ORDERS
    first = requests.get(
        sim.base_url + "work-orders/", headers=sim.auth_headers, params={"page_size": 5}, timeout=30
    ).json()
    assert first["count"] == DEFAULT_WORK_ORDERS

    process = SimulatorProcess(seed=3)
    assert "--work-orders" not in process.command()  # the command's own default
    with process:
        served = requests.get(
            process.base_url + "work-orders/",
            headers=process.auth_headers,
            params={"page_size": 5},
            timeout=30,
        ).json()
    # the same seed, the same data, whichever way it was started
    assert served["count"] == DEFAULT_WORK_ORDERS
    assert [w["id"] for w in served["results"]] == [w["id"] for w in first["results"]]


def test_the_constant_imports_without_the_server():
    """The CLI reads the default at import time: that must not need FastAPI or uvicorn."""
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"
        "from dfs_analytics.simulator import DEFAULT_WORK_ORDERS\n"
        "import dfs_analytics.cli\n"
        "print(DEFAULT_WORK_ORDERS)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(DEFAULT_WORK_ORDERS)
