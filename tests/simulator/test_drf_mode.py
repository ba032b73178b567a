"""The plain Django REST Framework mode: no validators (``ETag``/``Last-Modified``, 304) and
``http://`` next links whatever the scheme served (``next_scheme``), and serving over https."""

from __future__ import annotations

import shutil
import urllib.parse

import pytest
import requests

from dfs_analytics.simulator import Simulator, SimulatorProcess

from .helpers import AUTH

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def get_paths(sim: Simulator) -> list[str]:
    """GET URLs of every kind: lists, a retrieve, a timeline, task groups, the sim view."""
    page = requests.get(
        sim.base_url + "work-orders/", headers=AUTH, params={"page_size": 2}, timeout=30
    ).json()
    wo_id = page["results"][0]["id"]
    group = requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30).json()
    return [
        sim.base_url + "work-orders/",
        page["next"],
        sim.base_url + f"work-orders/{wo_id}/",
        sim.base_url + f"work-orders/{wo_id}/timeline/",
        sim.base_url + "task-groups/",
        sim.base_url + f"task-groups/{group['results'][0]['id']}/",
        sim.url + "/_sim/config",
        sim.url + "/_sim/truth",
    ]


def test_by_default_get_answers_carry_an_etag_and_revalidate_with_304(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=10, seed=81)
    for url in get_paths(sim):
        r = requests.get(url, headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.headers.get("ETag"), url
        again = requests.get(url, headers={**AUTH, "If-None-Match": r.headers["ETag"]}, timeout=30)
        assert again.status_code == 304, url


def test_without_validators_no_etag_no_last_modified_and_never_304(dfs_simulator_factory):
    with_validators = dfs_simulator_factory(work_orders=10, seed=82)
    etags = {
        url.replace(with_validators.url, ""): requests.get(url, headers=AUTH, timeout=30).headers[
            "ETag"
        ]
        for url in get_paths(with_validators)
    }
    sim = dfs_simulator_factory(work_orders=10, seed=82, validators=False)
    assert sim.config.validators is False
    for url in get_paths(sim):
        etag = etags[url.replace(sim.url, "")]  # same seed: the same answers, the same ETags
        for extra in (
            {},
            {"If-None-Match": etag},
            {"If-None-Match": "*"},
            {"If-Modified-Since": "Wed, 01 Jan 2031 00:00:00 GMT"},
        ):
            r = requests.get(url, headers={**AUTH, **extra}, timeout=30)
            assert r.status_code == 200, (url, extra, r.status_code)
            assert "ETag" not in r.headers, url
            assert "Last-Modified" not in r.headers, url
            assert r.content


def test_validators_switch_at_runtime(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=5, seed=83)
    url = sim.base_url + "task-groups/"
    etag = requests.get(url, headers=AUTH, timeout=30).headers["ETag"]

    r = requests.patch(
        sim.url + "/_sim/config", headers=AUTH, json={"validators": False}, timeout=30
    )
    assert r.status_code == 200 and r.json()["validators"] is False
    r = requests.get(url, headers={**AUTH, "If-None-Match": etag}, timeout=30)
    assert r.status_code == 200 and "ETag" not in r.headers

    sim.configure(validators=True)
    r = requests.get(url, headers={**AUTH, "If-None-Match": etag}, timeout=30)
    assert r.status_code == 304

    for bad in ("no", 0, None):
        r = requests.patch(
            sim.url + "/_sim/config", headers=AUTH, json={"validators": bad}, timeout=30
        )
        assert r.status_code == 400 and "validators" in r.json()
    with pytest.raises(ValueError):
        sim.configure(validators="false")


def api_get(sim: Simulator | SimulatorProcess, path: str, **params: object) -> requests.Response:
    """GET ``path`` of the API, trusting the simulator's certificate when it serves https."""
    return requests.get(
        sim.base_url + path, headers=AUTH, params=params, timeout=30, verify=sim.ca_file or True
    )


def links(sim: Simulator, path: str, **params: object) -> tuple[str, str]:
    """The next link of page 1 and the previous link of page 2."""
    first = api_get(sim, path, **params).json()
    # follow it on the scheme actually served, as a client behind the proxy would
    served = urllib.parse.urlsplit(first["next"])._replace(scheme=sim.scheme).geturl()
    second = requests.get(
        served,
        headers=AUTH,
        timeout=30,
        verify=sim.ca_file or True,
    ).json()
    return first["next"], second["previous"]


def test_next_scheme_rewrites_the_links_only(dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=12, seed=84, next_scheme="https")
    nxt, prev = links(sim, "work-orders/", page_size=5)
    assert nxt.startswith(f"https://127.0.0.1:{sim.port}/v0.2/work-orders/")
    assert prev.startswith(f"https://127.0.0.1:{sim.port}/v0.2/work-orders/")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt).query)
    assert query == {"page_size": ["5"], "page": ["2"]}

    sim.configure(next_scheme=None)
    nxt, _ = links(sim, "work-orders/", page_size=5)
    assert nxt.startswith("http://")

    r = requests.patch(
        sim.url + "/_sim/config", headers=AUTH, json={"next_scheme": "ftp"}, timeout=30
    )
    assert r.status_code == 400 and "next_scheme" in r.json()
    with pytest.raises(ValueError):
        Simulator(next_scheme="gopher")


@needs_openssl
def test_served_over_https_with_http_next_links(dfs_simulator_factory):
    """As DRF behind a TLS-terminating proxy: https outside, http:// in the links."""
    sim = dfs_simulator_factory(work_orders=12, seed=85, tls=True, next_scheme="http")
    assert sim.base_url.startswith("https://127.0.0.1:")
    assert sim.ca_file
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sim.base_url + "task-groups/", headers=AUTH, timeout=30)
    r = api_get(sim, "work-orders/", page_size=5)
    assert r.status_code == 200
    nxt = r.json()["next"]
    assert nxt.startswith(f"http://127.0.0.1:{sim.port}/v0.2/work-orders/?")
    for path in ("work-orders/", f"work-orders/{r.json()['results'][0]['id']}/timeline/"):
        nxt, prev = links(sim, path, page_size=1)
        assert nxt.startswith("http://") and prev.startswith("http://")
    # plain http on the TLS port is refused: a client must keep the scheme it started with
    with pytest.raises(requests.ConnectionError):
        requests.get(nxt, headers=AUTH, timeout=30)
    # the harness speaks https too
    assert sim.truth()
    sim.configure(next_scheme=None)
    nxt, _ = links(sim, "work-orders/", page_size=5)
    assert nxt.startswith("https://")


@needs_openssl
def test_the_command_serves_plain_drf_over_https():
    """``dfs-analytics simulate --tls --no-validators --next-scheme http`` in its own process."""
    with SimulatorProcess(
        work_orders=8, seed=86, tls=True, validators=False, next_scheme="http"
    ) as sim:
        assert "--no-validators" in sim.command()
        assert sim.url.startswith("https://")
        r = api_get(sim, "work-orders/", page_size=3)
        assert r.status_code == 200
        assert "ETag" not in r.headers and "Last-Modified" not in r.headers
        assert r.json()["next"].startswith("http://")
        config = sim.view("config")
        assert config["validators"] is False and config["next_scheme"] == "http"
        sim.configure(fault_rate=0.25)
        assert sim.view("config")["fault_rate"] == 0.25
        assert (
            requests.get(sim.url + "/_sim/config", timeout=30, verify=sim.ca_file).status_code
            == 401
        )
