"""Settings: base URL from a site id or an explicit URL, checks, environment, masked reprs."""

from __future__ import annotations

import math
from pathlib import Path

import platformdirs
import pytest

import dfs_analytics as dfs
from dfs_analytics.config import (
    Settings,
    is_loopback,
    is_loopback_url,
    missing_site_settings,
    require_site,
    simulator_requested,
)

FULL_UUID = "000f0174-bdf0-47b3-bb3e-0123456789ab"
SITE = "000f0174-bdf0-47b3-bb3e"
EU_URL = f"https://api.{SITE}.customers.deepomatic.com/v0.2/"
US_URL = f"https://api.{SITE}.customers.us1.deepomatic.com/v0.2/"
SECRET = "sk-config-Secret-7f3a9c1e5b"


# -- site id and region ------------------------------------------------------------------------


@pytest.mark.parametrize("site_id", [FULL_UUID, SITE, FULL_UUID.upper(), f"  {FULL_UUID}  "])
def test_site_id_gives_the_eu_url_cut_to_four_groups(site_id: str) -> None:
    assert dfs.site_base_url(site_id) == EU_URL
    assert dfs.site_base_url(site_id, "eu") == EU_URL
    client = dfs.Client(site_id=site_id, api_key="k", cache=None)
    assert client.base_url == EU_URL
    assert client.settings.base_url == EU_URL


@pytest.mark.parametrize("region", ["us", "US", " us "])
def test_site_id_gives_the_us_url(region: str) -> None:
    assert dfs.site_base_url(FULL_UUID, region) == US_URL
    client = dfs.Client(site_id=FULL_UUID, region=region, api_key="k", cache=None)
    assert client.base_url == US_URL


@pytest.mark.parametrize(
    "site_id",
    [
        "",
        "not-a-site",
        "000f0174-bdf0-47b3",  # three groups only
        "000f0174-bdf0-47b3-bb3e-0123",  # a truncated fifth group
        "000f0174-bdf0-47b3-bb3e-0123456789ab-ff",  # junk after a full UUID
        "zzzzzzzz-bdf0-47b3-bb3e",
        "000f0174_bdf0_47b3_bb3e",
    ],
)
def test_invalid_site_id_is_a_configuration_error(site_id: str) -> None:
    with pytest.raises(dfs.ConfigurationError, match="site_id"):
        dfs.site_base_url(site_id)
    with pytest.raises(dfs.ConfigurationError):
        dfs.Client(site_id=site_id, api_key="k", cache=None)


@pytest.mark.parametrize("region", ["asia", "", "eu-west-1", "fr"])
def test_unknown_region_is_a_configuration_error(region: str) -> None:
    with pytest.raises(dfs.ConfigurationError, match="region"):
        dfs.site_base_url(FULL_UUID, region)
    with pytest.raises(dfs.ConfigurationError, match="region"):
        dfs.Client(site_id=FULL_UUID, region=region, api_key="k", cache=None)


def test_configuration_error_is_a_value_error_and_a_dfs_error() -> None:
    with pytest.raises(ValueError):
        dfs.site_base_url("nope")
    with pytest.raises(dfs.DFSError):
        dfs.site_base_url("nope")


def test_a_base_url_or_a_site_id_is_required() -> None:
    with pytest.raises(dfs.ConfigurationError, match=r"base_url|site_id"):
        dfs.Client(api_key="k", cache=None)


def test_base_url_wins_over_site_id() -> None:
    client = dfs.Client("http://127.0.0.1:9/v0.2/", site_id=FULL_UUID, api_key="k", cache=None)
    assert client.base_url == "http://127.0.0.1:9/v0.2/"


# -- base URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8765/v0.2/", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/v0.2", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/V0.2/", "http://127.0.0.1:8765/v0.2/"),
        ("HTTP://LOCALHOST:8765/v0.2/", "http://localhost:8765/v0.2/"),
        ("  http://127.0.0.1:8765/v0.2/  ", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/v0.2/work-orders/", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/v0.2/?x=1#frag", "http://127.0.0.1:8765/v0.2/"),
        ("http://127.0.0.1:8765/prefix/api", "http://127.0.0.1:8765/prefix/api/v0.2/"),
        (EU_URL, EU_URL),
        (US_URL.rstrip("/"), US_URL),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    client = dfs.Client(given, api_key="k", cache=None)
    assert client.base_url == expected
    assert client.url("work-orders/") == expected + "work-orders/"
    assert client.url("/task-groups/") == expected + "task-groups/"


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://example.com/v0.2/",
        "ftp://127.0.0.1/v0.2/",
        "api.example.com/v0.2/",
        "not a url",
        "http://",
        "",
        "http://:8765/v0.2/",
        "http://127.0.0.1:99999/v0.2/",
        "http://127.0.0.1:0/v0.2/",
        "http://127.0.0.1:abc/v0.2/",
    ],
)
def test_a_base_url_that_is_not_http_is_refused(bad: str) -> None:
    with pytest.raises(dfs.ConfigurationError, match="base_url"):
        dfs.Client(bad, api_key="k", cache=None)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v0.2/",
        "http://10.0.0.5:8000/v0.2/",
        "http://192.168.1.20/v0.2/",
        f"http://api.{SITE}.customers.deepomatic.com/v0.2/",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(dfs.ConfigurationError, match="http"):
        dfs.Client(url, api_key="k", cache=None)
    client = dfs.Client(url, api_key="k", cache=None, allow_insecure_http=True)
    assert client.base_url.startswith("http://")
    assert client.settings.allow_insecure_http is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/v0.2/",
        "http://127.5.6.7:8765/v0.2/",
        "http://localhost:8765/v0.2/",
        "http://[::1]:8765/v0.2/",
        "https://api.example.com/v0.2/",
    ],
)
def test_loopback_http_and_any_https_are_allowed(url: str) -> None:
    assert dfs.Client(url, api_key="k", cache=None).base_url.endswith("/v0.2/")


# -- other settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_workers": 0},
        {"max_workers": -3},
        {"max_workers": 2.5},
        {"page_size": 0},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": math.inf},
        {"timeout": math.nan},
        {"retries": -1},
        {"retries": True},
        {"retries": 1.5},
        {"backoff_factor": -0.1},
        {"backoff_factor": math.nan},
        {"offline": "yes"},
        {"api_key": "two words"},
    ],
    ids=repr,
)
def test_bad_settings_are_configuration_errors_naming_the_setting(kwargs: dict) -> None:
    name = next(iter(kwargs))
    kwargs.setdefault("api_key", "k")
    with pytest.raises(dfs.ConfigurationError, match=name):
        dfs.Client("http://127.0.0.1:9/v0.2/", cache=None, **kwargs)


def test_page_size_is_capped_at_the_api_maximum() -> None:
    client = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", cache=None, page_size=5000)
    assert client.settings.page_size == 1000


def test_api_key_is_stripped() -> None:
    client = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="  abc  ", cache=None)
    assert client.settings.api_key == "abc"


def test_cache_none_means_no_cache(tmp_path: Path) -> None:
    for off in (None, "none", "None", "off", ""):
        client = dfs.Client("http://127.0.0.1:9/v0.2/", api_key="k", cache=off)
        assert client.settings.cache is None
        assert client.cache_dir is None
    assert not any(tmp_path.rglob("*.sqlite"))


def test_default_cache_is_the_users_cache_folder() -> None:
    # Settings only: building a Client would create the folder.
    settings = Settings.resolve("http://127.0.0.1:9/v0.2/", api_key="k")
    assert settings.cache == Path(platformdirs.user_cache_dir("dfs-analytics"))


def test_cache_folder_is_per_base_url_and_key(tmp_path: Path) -> None:
    def folder(url: str, key: str) -> Path:
        return Settings.resolve(url, api_key=key, cache=tmp_path).cache_dir

    a = folder("http://127.0.0.1:9/v0.2/", "key-a")
    assert a.parent == tmp_path
    assert a == folder("http://127.0.0.1:9/v0.2", "key-a")  # same URL once normalised
    assert a != folder("http://127.0.0.1:9/v0.2/", "key-b")
    assert a != folder("http://127.0.0.1:10/v0.2/", "key-a")
    assert "key-a" not in str(a)


# -- environment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DFS_BASE_URL": "http://127.0.0.1:8765/V0.2"}, "http://127.0.0.1:8765/v0.2/"),
        ({"DFS_SITE_ID": FULL_UUID, "DFS_REGION": "us"}, US_URL),
        ({"DFS_SITE_ID": SITE}, EU_URL),  # the region defaults to eu
        (
            {
                "DFS_BASE_URL": "http://127.0.0.1:8765/v0.2/",
                "DFS_SITE_ID": FULL_UUID,
                "DFS_REGION": "us",
            },
            "http://127.0.0.1:8765/v0.2/",  # the base URL wins over the site id
        ),
    ],
    ids=["base-url", "site-id-us", "site-id-eu", "base-url-wins"],
)
def test_from_env_finds_the_base_url(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in {**env, "DFS_API_KEY": SECRET, "DFS_CACHE": "none"}.items():
        monkeypatch.setenv(name, value)
    client = dfs.Client.from_env()
    assert client.base_url == expected
    assert client.settings.api_key == SECRET
    assert client.settings.cache is None and client.cache_dir is None


def test_from_env_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DFS_SITE_ID", FULL_UUID)
    monkeypatch.setenv("DFS_API_KEY", SECRET)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "envcache"))
    client = dfs.Client.from_env()
    assert client.settings.cache == tmp_path / "envcache"
    assert client.cache_dir is not None and client.cache_dir.parent == tmp_path / "envcache"


def test_from_env_bad_site_id_or_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFS_CACHE", "none")
    monkeypatch.setenv("DFS_SITE_ID", "my-site")
    with pytest.raises(dfs.ConfigurationError, match="site_id"):
        dfs.Client.from_env()
    monkeypatch.setenv("DFS_SITE_ID", FULL_UUID)
    monkeypatch.setenv("DFS_REGION", "mars")
    with pytest.raises(dfs.ConfigurationError, match="region"):
        dfs.Client.from_env()


def test_from_env_without_anything_says_what_to_set() -> None:
    with pytest.raises(dfs.ConfigurationError, match="DFS_BASE_URL"):
        dfs.Client.from_env()


def test_from_env_keyword_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFS_BASE_URL", "http://127.0.0.1:8765/v0.2/")
    monkeypatch.setenv("DFS_API_KEY", SECRET)
    monkeypatch.setenv("DFS_CACHE", "none")
    client = dfs.Client.from_env(api_key="other-key", max_workers=3, progress=False)
    assert client.settings.api_key == "other-key"
    assert client.settings.max_workers == 3
    assert client.settings.progress is False


def test_from_env_talks_to_the_simulator(
    monkeypatch: pytest.MonkeyPatch, dfs_simulator, tmp_path: Path
) -> None:
    monkeypatch.setenv("DFS_BASE_URL", dfs_simulator.base_url)
    monkeypatch.setenv("DFS_API_KEY", dfs_simulator.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "c"))
    with dfs.Client.from_env(progress=False) as client:
        groups = client.list_task_groups()
        assert [g["name"] for g in groups] == [
            g.name for g in dfs_simulator.store.app.current.groups
        ]
        assert client.cache_dir is not None and client.cache_dir.is_relative_to(tmp_path / "c")


# -- the key never shows ----------------------------------------------------------------------


def test_repr_of_client_and_settings_masks_the_key(tmp_path: Path) -> None:
    client = dfs.Client("http://127.0.0.1:9/v0.2/", api_key=SECRET, cache=tmp_path / "c")
    for text in (repr(client), str(client), repr(client.settings), str(client.settings)):
        assert SECRET not in text
        assert SECRET[:12] not in text
        assert "***" in text
        assert "127.0.0.1:9" in text
    # the repr shows the rest of the settings
    assert "max_workers=None" in repr(client.settings)  # adaptive by default
    assert "offline=False" in repr(client.settings)


def test_repr_of_client_from_env_masks_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFS_BASE_URL", "http://127.0.0.1:8765/v0.2/")
    monkeypatch.setenv("DFS_API_KEY", SECRET)
    monkeypatch.setenv("DFS_CACHE", "none")
    client = dfs.Client.from_env()
    assert SECRET not in repr(client)
    assert SECRET not in repr(client.settings)


def test_repr_without_a_key_says_none() -> None:
    settings = Settings.resolve("http://127.0.0.1:9/v0.2/", cache=None)
    assert "api_key=None" in repr(settings)


def test_configuration_errors_never_contain_the_key() -> None:
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.Client("http://api.example.com/v0.2/", api_key=SECRET, cache=None)
    assert SECRET not in str(info.value)
    with pytest.raises(dfs.ConfigurationError) as info:
        dfs.Client("http://127.0.0.1:9/v0.2/", api_key=SECRET + " x", cache=None)
    assert SECRET not in str(info.value)


# -- loopback hosts and URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("api.localhost", False),  # a resolver may send it to DNS
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8765/hook", True),
        ("https://localhost/hook", True),
        ("HTTP://[::1]:9/x", True),
        ("http://example.com/hook", False),
        ("http://10.0.0.5/hook", False),
        ("ftp://127.0.0.1/hook", False),
        ("file:///etc/passwd", False),
        ("127.0.0.1:8765/hook", False),
        ("http://[::1/hook", False),  # not a URL
        ("", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


# -- is a site configured ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "options", "missing"),
    [
        ({}, {}, ["DFS_BASE_URL", "DFS_API_KEY"]),
        ({"DFS_BASE_URL": "https://api.example.com/v0.2/"}, {}, ["DFS_API_KEY"]),
        ({"DFS_SITE_ID": SITE, "DFS_API_KEY": " "}, {}, ["DFS_API_KEY"]),
        ({"DFS_API_KEY": "k"}, {}, ["DFS_BASE_URL"]),
        ({"DFS_SITE_ID": SITE, "DFS_API_KEY": "k"}, {}, []),
        ({}, {"base_url": "https://api.example.com/v0.2/", "api_key": "k"}, []),
        ({"DFS_API_KEY": "k"}, {"site_id": SITE}, []),
    ],
)
def test_missing_site_settings_names_what_to_set(
    env: dict[str, str], options: dict[str, str], missing: list[str]
) -> None:
    found = missing_site_settings(env, options)
    assert [name.split()[0] for name in found] == missing
    if missing:
        with pytest.raises(dfs.ConfigurationError, match="no site is configured") as info:
            require_site(env, options, advice=" Or else.")
        assert all(name in str(info.value) for name in missing)
        assert str(info.value).endswith(" Or else.")
    else:
        assert require_site(env, options) is None


def test_require_site_reports_a_bad_url_before_the_missing_key() -> None:
    with pytest.raises(dfs.ConfigurationError, match="is not an http"):
        require_site({"DFS_BASE_URL": "ftp://example.com/"})
    with pytest.raises(dfs.ConfigurationError, match="region"):
        require_site({"DFS_SITE_ID": SITE, "DFS_REGION": "mars"})


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        *[("1", True), ("true", True), (" YES ", True), ("on", True)],
        *[("0", False), ("false", False), ("no", False), ("off", False), ("", False)],
    ],
)
def test_simulator_requested(value: str, wanted: bool) -> None:
    assert simulator_requested({"DFS_SIMULATOR": value}) is wanted
    assert simulator_requested({}) is False


def test_a_simulator_request_that_means_nothing_is_an_error() -> None:
    with pytest.raises(dfs.ConfigurationError, match="DFS_SIMULATOR='maybe'"):
        simulator_requested({"DFS_SIMULATOR": "maybe"})


def test_a_cache_that_is_a_file_is_a_configuration_error(tmp_path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(dfs.ConfigurationError, match="is a file"):
        dfs.Client("http://127.0.0.1:8765/v0.2/", api_key="k", cache=path)
