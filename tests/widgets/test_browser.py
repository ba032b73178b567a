"""A real browser: the correction notebook served by Voila, opened in Debian's Chromium driven by
Playwright; a correction clicked in the Explorer widget must reach the simulator exactly once.

Needs /usr/bin/chromium (Debian's package; CI installs it). Without it the test is skipped,
unless DFS_REQUIRE_BROWSER=1 (set by CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests

from tests.helpers import CHROMIUM, chromium_page, voila_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

if not CHROMIUM.exists() and os.environ.get("DFS_REQUIRE_BROWSER") != "1":
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture
def voila(tmp_path: Path, dfs_simulator_factory):
    sim = dfs_simulator_factory(work_orders=400, seed=5)
    notebook = tmp_path / "03_correction_campaign.ipynb"
    # as the notebook says: a site given by DFS_* replaces the simulator it asks for, so the
    # test's own simulator (whose correction counts are checked) is the site here
    text = (ROOT / "notebooks" / notebook.name).read_text()
    asked = "client = dfs.connect(simulator=True, work_orders=600, seed=0)"
    assert asked in text
    notebook.write_text(text.replace(asked, "client = dfs.connect()"))
    with voila_server(tmp_path, notebook.name, sim) as url:
        yield sim, url, tmp_path


def test_a_correction_clicked_in_the_browser_reaches_the_server_once(voila) -> None:
    sim, url, folder = voila
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page(url, ARTIFACTS / "browser_failure.png") as page:
        # Voila runs the notebook, then shows the Explorer; its correction form is folded
        section = page.get_by_text("Correct a task", exact=True)
        section.wait_for(timeout=240_000)
        text = page.inner_text("body")
        found = re.search(r"work order (\S+) task jarretiere_connectee (\S+)", text)
        assert found, text[-2000:]
        wo_id, task_id = found.groups()
        before = sim.correction_counts()
        assert (wo_id, task_id) not in before  # the campaign did not touch this task

        section.click()
        correct = page.locator("button", has_text=re.compile(r"^\W*Correct\W*$"))
        correct.wait_for(timeout=30_000)
        value = page.locator(".widget-dropdown", has_text="Value").locator("select")
        value.select_option(label="Non conforme (False)")
        correct.click()
        page.get_by_text("Corrected jarretiere_connectee").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "browser_correction.png"), full_page=True)

    after = sim.correction_counts()
    assert after[(wo_id, task_id)] == 1
    assert {k: v for k, v in after.items() if k != (wo_id, task_id)} == before
    state = next(
        t["state"]
        for t in requests.get(
            f"{sim.base_url}work-orders/{wo_id}/",
            headers={"Authorization": f"Token {sim.api_key}"},
            timeout=30,
        ).json()["tasks"]
        if t["id"] == task_id
    )
    assert state["corrected_value"] is False
    assert state["message"] == "Non conforme"
    assert (folder / "output" / "campaign.jsonl").exists()  # a real site's journal is kept
