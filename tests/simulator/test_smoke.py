"""The simulator starts, answers over HTTP, and stops."""

import requests


def test_simulator_serves_the_work_order_list(dfs_simulator):
    r = requests.get(
        dfs_simulator.base_url + "work-orders/",
        headers={"Authorization": f"Token {dfs_simulator.api_key}"},
        timeout=30,
    )
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 300
    assert len(page["results"]) == 100
    assert page["next"].endswith("page=2")
