"""Typed errors: each says the method, the path, the status and the server's detail, and never
contains the key; argument errors are raised before any request is sent."""

from __future__ import annotations

import base64
import traceback
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.client import retry
from tests.helpers import assert_no_secret, closed_port, delta, image_url, task_of

pytestmark = pytest.mark.sim(work_orders=40, seed=11, scope="module")

WRONG_KEY = "wrong-key-Zq81xV0c3"


def full_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: message, repr, traceback, chained ones."""
    return "\n".join([str(exc), repr(exc), *map(str, exc.args), *traceback.format_exception(exc)])


@pytest.fixture
def wo(client) -> dict[str, Any]:
    return client.create_work_order("err-" + uuid.uuid4().hex[:10])


# -- authentication ---------------------------------------------------------------------------


def test_wrong_key_is_an_authentication_error(sim, client_for) -> None:
    client = client_for(sim, api_key=WRONG_KEY)
    with pytest.raises(dfs.AuthenticationError) as info:
        client.list_work_orders()
    err = info.value
    assert isinstance(err, dfs.APIError)
    assert err.status == 401
    assert err.method == "GET"
    assert err.path.startswith("/v0.2/work-orders/")
    assert err.detail == "Invalid token."
    text = str(err)
    assert "GET" in text and "/v0.2/work-orders/" in text and "401" in text
    assert "Invalid token." in text
    assert "API key" in text  # says what to do
    assert_no_secret(full_text(err), WRONG_KEY)
    assert_no_secret(full_text(err), sim.api_key)


def test_wrong_key_on_reads_and_writes(sim, client_for) -> None:
    wo_id = next(iter(sim.store.work_orders))
    client = client_for(sim, api_key=WRONG_KEY)
    calls: list[Callable[[], Any]] = [
        lambda: client.get_work_order(wo_id),
        lambda: client.get_timeline(wo_id),
        lambda: client.list_task_groups(),
        lambda: client.create_work_order("x"),
        lambda: client.patch_metadata(wo_id, {"a": 1}),
        lambda: dfs.load_tasks(client),
        lambda: dfs.load_task_groups(client),
    ]
    for call in calls:
        with pytest.raises(dfs.AuthenticationError) as info:
            call()
        assert info.value.status == 401
        assert_no_secret(full_text(info.value), WRONG_KEY)


def test_auth_status_403_is_an_authentication_error_too(dfs_simulator_factory, client_for):
    sim = dfs_simulator_factory(work_orders=5, seed=1, auth_status=403)
    client = client_for(sim, api_key=WRONG_KEY)
    with pytest.raises(dfs.AuthenticationError) as info:
        client.get_work_order(str(uuid.uuid4()))
    err = info.value
    assert err.status == 403
    assert "403" in str(err) and "GET" in str(err) and "/v0.2/work-orders/" in str(err)
    assert_no_secret(full_text(err), WRONG_KEY)
    with pytest.raises(dfs.AuthenticationError):
        dfs.load_work_orders(client)
    # the right key works on that server
    assert len(dfs.load_work_orders(client_for(sim, cache=None))) == 5


def test_no_key_at_all_is_refused_before_any_request(sim, client_for) -> None:
    client = client_for(sim, api_key=None)
    before = sim.request_counts()
    with pytest.raises(dfs.ConfigurationError, match=r"API key|api_key"):
        client.list_work_orders()
    with pytest.raises(dfs.ConfigurationError):
        dfs.load_tasks(client)
    assert delta(sim, before) == {}


# -- not found, validation, payload -----------------------------------------------------------


def test_unknown_work_order_is_not_found(client) -> None:
    missing = str(uuid.uuid4())
    for call in (
        lambda: client.get_work_order(missing),
        lambda: client.get_timeline(missing),
        lambda: client.patch_metadata(missing, {"a": 1}),
        lambda: client.update_work_order(missing, name="x"),
        lambda: client.delete_work_order(missing),
    ):
        with pytest.raises(dfs.NotFoundError) as info:
            call()
        err = info.value
        assert err.status == 404
        assert missing in err.path
        assert missing in str(err) and "404" in str(err) and "Not found." in str(err)
        assert err.method in str(err)
        assert_no_secret(full_text(err), client.settings.api_key)


def test_unknown_task_is_not_found(client, wo) -> None:
    with pytest.raises(dfs.NotFoundError) as info:
        client.correct(wo["id"], str(uuid.uuid4()), True)
    assert info.value.method == "PATCH"
    assert "/correction/" in info.value.path


def test_bad_correction_value_is_a_validation_error_with_field_messages(client, wo) -> None:
    analysed = client.analyze(
        wo["id"],
        "pm-ouvert-apres",
        image_url(pm_ouvert_apres_quality=True, jarretiere_connectee=True),
    )
    task = task_of(analysed, "jarretiere_connectee")
    with pytest.raises(dfs.ValidationError) as info:
        client.correct(wo["id"], task["id"], "maybe")
    err = info.value
    assert err.status == 400
    assert err.method == "PATCH"
    assert err.path == f"/v0.2/work-orders/{wo['id']}/tasks/{task['id']}/correction/"
    assert set(err.errors) == {"corrected_value"}
    assert err.errors["corrected_value"] and all(
        isinstance(m, str) and m for m in err.errors["corrected_value"]
    )
    text = str(err)
    assert "PATCH" in text and err.path in text and "400" in text
    assert "corrected_value" in text and err.errors["corrected_value"][0] in text
    assert_no_secret(full_text(err), client.settings.api_key)
    # nothing changed
    read = client.get_work_order(wo["id"])
    assert task_of(read, "jarretiere_connectee")["state"]["corrected_value"] is None


def test_correction_of_a_never_analysed_task_is_a_validation_error(client, wo) -> None:
    task = task_of(wo, "mesure_puissance")
    with pytest.raises(dfs.ValidationError) as info:
        client.correct(wo["id"], task["id"], -12)
    assert "detail" in info.value.errors
    assert "never been analysed" in str(info.value)


def test_bad_work_order_fields_are_validation_errors(client) -> None:
    with pytest.raises(dfs.ValidationError) as info:
        client.create_work_order("not a valid name!", field_engineer_email="not-an-email")
    assert set(info.value.errors) == {"name", "field_engineer_email"}
    assert info.value.method == "POST"
    with pytest.raises(dfs.ValidationError) as info:
        client.create_work_order("ok", types=["no-such-type"])
    assert "types" in info.value.errors


def test_six_megabyte_image_is_payload_too_large(sim, client, wo) -> None:
    payload = base64.b64encode(b"\xff" * (6 * 1024 * 1024)).decode()
    before = sim.request_counts()
    with pytest.raises(dfs.PayloadTooLargeError) as info:
        client.analyze(wo["id"], "releve-optique", "data:image/jpeg;base64," + payload)
    err = info.value
    assert err.status == 413
    assert err.method == "POST"
    assert err.path == f"/v0.2/work-orders/{wo['id']}/analyze/"
    assert "413" in str(err) and "5 MB" in str(err)
    assert delta(sim, before) == {"POST /v0.2/work-orders/{wo_id}/analyze/": 1}
    assert client.get_timeline(wo["id"])[-1]["type"] == "created"  # nothing was analysed


# -- transport --------------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 2])
def test_unreachable_host_is_a_transport_error(client_for, tmp_path, retries: int) -> None:
    port = closed_port()

    class Nowhere:
        base_url = f"http://127.0.0.1:{port}/v0.2/"
        api_key = "sk-unreachable-Key-42"

    client = client_for(Nowhere, retries=retries, backoff_factor=0.01, timeout=5)
    wo_id = str(uuid.uuid4())
    with pytest.raises(dfs.TransportError) as info:
        client.get_work_order(wo_id)
    err = info.value
    assert not isinstance(err, dfs.OutcomeUnknownError)
    assert err.method == "GET"
    assert wo_id in err.path
    assert "GET" in str(err) and wo_id in str(err) and f"127.0.0.1:{port}" in str(err)
    assert_no_secret(full_text(err), Nowhere.api_key)
    # a write that never left is a plain TransportError, not an unknown outcome
    with pytest.raises(dfs.TransportError) as info:
        client.create_work_order("x")
    assert not isinstance(info.value, dfs.OutcomeUnknownError)
    assert info.value.method == "POST"
    with pytest.raises(dfs.TransportError):
        dfs.load_work_orders(client)


# -- argument errors before any request --------------------------------------------------------


BAD_FILTERS: list[tuple[str, dict[str, Any], str]] = [
    ("created_after", {"created_after": "yesterday"}, "created_after"),
    ("created_before", {"created_before": "31/12/2026"}, "created_before"),
    ("updated_after", {"updated_after": "2026-13-45"}, "updated_after"),
    ("updated_before", {"updated_before": 20260101}, "updated_before"),
    ("unknown", {"colour": "red"}, "colour"),
    ("typo", {"create_after": "2026-01-01"}, "create_after"),
    ("reviewed", {"reviewed": "yes"}, "reviewed"),
    ("tag", {"tag": ["ok", ""]}, "tag"),
    ("ordering", {"ordering": "sideways"}, "ordering"),
    ("name", {"name": 12}, "name"),
]


@pytest.mark.parametrize(("_id", "filters", "named"), BAD_FILTERS, ids=[b[0] for b in BAD_FILTERS])
def test_bad_filters_raise_before_any_request(
    sim, client_for, _id: str, filters: dict[str, Any], named: str
) -> None:
    client = client_for(sim)
    wo_id = next(iter(sim.store.work_orders))
    before = sim.request_counts()
    for call in (
        lambda: client.list_work_orders(**filters),
        lambda: dfs.load_work_orders(client, **filters),
        lambda: dfs.load_tasks(client, **filters),
        lambda: dfs.load_timeline(client, **filters),
        lambda: dfs.load_timeline(client, work_order_ids=[wo_id], **filters),
    ):
        with pytest.raises(dfs.ConfigurationError, match=named):
            call()
    assert delta(sim, before) == {}


def test_good_date_filters_of_every_kind_are_accepted(sim, client_for) -> None:
    client = client_for(sim, cache=None)

    def ids(value) -> list[str]:
        return [wo["id"] for wo in client.list_work_orders(created_after=value)]

    everything = ids(None)
    # the same instant written four ways selects the same work orders
    eight = [
        ids(v)
        for v in (
            "2026-03-01T08:00:00Z",
            "2026-03-01T09:00:00+01:00",
            pd.Timestamp("2026-03-01T08:00:00", tz="UTC"),
            datetime(2026, 3, 1, 8),
        )
    ]
    assert all(found == eight[0] for found in eight)
    # and midnight, four ways too
    midnight = [
        ids(v)
        for v in (
            "2026-03-01",
            date(2026, 3, 1),
            pd.Timestamp("2026-03-01"),
            "2026-03-01T00:00:00Z",
        )
    ]
    assert all(found == midnight[0] for found in midnight)
    assert 0 < len(eight[0]) <= len(midnight[0]) < len(everything)


# -- offline ----------------------------------------------------------------------------------


OFFLINE_MISSES: dict[str, Callable[[dfs.Client, str], Any]] = {
    "get_work_order": lambda c, wo_id: c.get_work_order(wo_id),
    "get_task_group": lambda c, wo_id: c.get_task_group("releve-optique"),
    "get_timeline": lambda c, wo_id: c.get_timeline(wo_id),
    "create_work_order": lambda c, wo_id: c.create_work_order("x"),
    "patch_metadata": lambda c, wo_id: c.patch_metadata(wo_id, {"a": 1}),
    "load_tasks": lambda c, wo_id: dfs.load_tasks(c),
    "load_work_orders": lambda c, wo_id: dfs.load_work_orders(c),
    "load_timeline": lambda c, wo_id: dfs.load_timeline(c),
    "load_timeline_of_ids": lambda c, wo_id: dfs.load_timeline(c, work_order_ids=[wo_id]),
    "load_task_groups": lambda c, wo_id: dfs.load_task_groups(c),
}


@pytest.mark.parametrize("call", OFFLINE_MISSES.values(), ids=OFFLINE_MISSES.keys())
def test_offline_reads_writes_and_loads_miss_on_an_empty_cache(
    sim, client_for, call: Callable[[dfs.Client, str], Any]
) -> None:
    client = client_for(sim, offline=True)
    wo_id = next(iter(sim.store.work_orders))
    before = sim.request_counts()
    with pytest.raises(dfs.OfflineCacheMiss) as info:
        call(client, wo_id)
    assert "offline" in str(info.value)
    assert_no_secret(full_text(info.value), sim.api_key)
    assert delta(sim, before) == {}


def test_an_offline_miss_names_what_was_asked_for(sim, client_for) -> None:
    client = client_for(sim, offline=True)
    wo_id = next(iter(sim.store.work_orders))
    with pytest.raises(dfs.OfflineCacheMiss, match=wo_id):
        client.get_work_order(wo_id)


def test_an_offline_miss_is_raised_at_once_not_retried(sim, client_for, monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry, "wait", waits.append)
    client = client_for(sim, offline=True)
    for read in (client.get_work_order, client.get_task_group):
        with pytest.raises(dfs.OfflineCacheMiss):
            read(next(iter(sim.store.work_orders)))
    assert waits == []  # the cache answered: no backoff before saying so


def test_offline_serves_a_work_order_read_online(sim, client_for) -> None:
    wo_id = next(iter(sim.store.work_orders))
    online = client_for(sim)
    expected = online.get_work_order(wo_id)
    group = online.get_task_group("releve-optique")
    offline = client_for(sim, offline=True)
    before = sim.request_counts()
    assert offline.get_work_order(wo_id) == expected
    assert offline.get_task_group("releve-optique") == group
    assert delta(sim, before) == {}


def test_a_404_on_the_list_says_the_base_url_looks_wrong(sim, client_for) -> None:
    wrong = type("Wrong", (), {"base_url": sim.url + "/not-the-api/v0.2/", "api_key": sim.api_key})
    client = client_for(wrong, cache=None)
    with pytest.raises(dfs.NotFoundError) as info:
        client.list_work_orders()
    assert "base URL looks wrong" in str(info.value)
    assert "id or name" not in str(info.value)
    # while an unknown id keeps the id hint
    with pytest.raises(dfs.NotFoundError) as info2:
        client_for(sim, cache=None).get_work_order("unknown-id")
    assert "base URL" not in str(info2.value)


def test_a_transport_error_with_a_cache_suggests_offline(client_for, tmp_path) -> None:
    class Nowhere:
        base_url = f"http://127.0.0.1:{closed_port()}/v0.2/"
        api_key = "k"

    cached = client_for(Nowhere, cache=tmp_path / "c", retries=0)
    with pytest.raises(dfs.TransportError, match="offline=True"):
        cached.get_work_order("wo")
    uncached = client_for(Nowhere, cache=None, retries=0)
    with pytest.raises(dfs.TransportError) as info:
        uncached.get_work_order("wo")
    assert "offline=True" not in str(info.value)
