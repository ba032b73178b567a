"""The review bench, driven headlessly (``.value = ...``, ``.click()``) against the simulator
over HTTP: agreements go to the local review journal, corrections through journaled campaigns,
each reaching the server exactly once."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import requests

import dfs_analytics as dfs
from dfs_analytics import review, widgets
from dfs_analytics.rules import effective
from tests.helpers import CHROMIUM, QuietHandler, chromium_page, local_http_server, voila_server

pytestmark = pytest.mark.sim(work_orders=30, seed=11)


class _Site:
    """What ``client_for`` needs of a site: its base URL and API key."""

    def __init__(self, base_url: str, api_key: str):
        self.base_url = base_url
        self.api_key = api_key


@pytest.fixture
def plan(client) -> pd.DataFrame:
    tasks = dfs.load_tasks(client)
    drawn = dfs.audit.review_sample(tasks, 3, seed=1)
    assert len(drawn) == 3
    return drawn


def _correctable(bench: widgets.ReviewBench) -> tuple[int, int, object]:
    """(work order index, task index, value): the first task of the plan's second work order
    with an allowed value other than the one it has."""
    wo_id = bench.review.work_order_ids[1]
    for k, item in enumerate(bench.review.items(wo_id)):
        current = effective(
            {"analyzed_value": item.analyzed_value, "corrected_value": item.corrected_value}
        )
        others = [v for v, _ in item.choices if v != current]
        if others:
            return 1, k, others[0]
    raise AssertionError("no correctable task in the second work order")


def _correct_at(bench: widgets.ReviewBench, wo: int, task: int, value: object) -> dict:
    bench.show(wo, task)
    bench.correct_value.value = value
    bench.correct_button.click()
    assert bench.last_error is None, bench.last_error
    assert bench.last_result is not None
    return bench.last_result


def test_walk_agree_and_correct_exactly_once(client, sim, plan) -> None:
    before = sim.correction_counts()
    bench = widgets.ReviewBench(client, plan)
    assert bench.last_error is None
    journal = bench.review.journal_path
    fingerprint = review.plan_fingerprint(plan)
    assert journal == Path(client.dataset_location).parent / f"review-{fingerprint}.jsonl"
    ids = list(plan["work_order_id"].astype(str))
    assert bench.review.work_order_ids == ids

    # the first task, with the AI's value and verdict and its group's photos
    first = bench.item
    assert first is not None and first.work_order_id == ids[0]
    assert repr(first.analyzed_value) in bench.task_html.value
    assert first.images and all(u.startswith(("http://", "https://")) for u in first.images)
    assert bench.images_html.value.count("<img ") == len(first.images)
    assert "Work order 1 of 3" in bench.header.value

    # agree on the first two tasks: the bench moves on by itself
    bench.agree_button.click()
    second = bench.item
    assert second is not None and second.task_id != first.task_id
    bench.agree_button.click()
    assert bench.last_error is None
    assert review.read_agreements(journal) == {
        (ids[0], first.task_id),
        (ids[0], second.task_id),
    }
    assert sim.correction_counts() == before  # agreeing sends nothing

    # correct one task; clicking correct again on it sends nothing more
    wo, task, value = _correctable(bench)
    target = bench.review.items(ids[wo])[task]
    result = _correct_at(bench, wo, task, value)
    assert result["status"] == "applied"
    key = (ids[wo], target.task_id)
    after = sim.correction_counts()
    assert after[key] == before.get(key, 0) + 1
    again = _correct_at(bench, wo, task, value)
    assert again["status"] == "applied earlier"
    assert sim.correction_counts() == after
    assert bench.review.items(ids[wo])[task].decision == "corrected"
    assert bench.review.items(ids[wo])[task].corrected_value == value

    # a new bench over the same journals knows the decisions and sends nothing again
    rebuilt = widgets.ReviewBench(client, plan)
    assert rebuilt.review.journal_path == journal
    third = _correct_at(rebuilt, wo, task, value)
    assert third["status"] == "applied earlier"
    assert sim.correction_counts() == after
    assert review.read_agreements(journal) == {(ids[0], first.task_id), (ids[0], second.task_id)}
    rebuilt.show(0, 0)
    assert rebuilt.item is not None and rebuilt.item.decision == "agreed"
    assert "agreed" in rebuilt.task_html.value

    # walk the rest of the plan, agreeing on every task left
    for _ in range(500):
        rebuilt.next_open_button.click()
        assert rebuilt.last_error is None
        if "Every task of the plan has a decision" in rebuilt.status.value:
            break
        rebuilt.agree_button.click()
    progress = rebuilt.review.progress()
    assert progress["done"].all(), progress
    assert progress["corrected"].sum() == 1
    assert sim.correction_counts() == after
    agreed = review.read_agreements(journal)
    assert key not in agreed
    assert len(agreed) == progress["tasks"].sum() - 1


def test_a_value_the_task_refuses_sends_nothing(client, sim, plan, tmp_path) -> None:
    before = sim.correction_counts()
    bench = widgets.ReviewBench(client, plan, journal=tmp_path / "mine.jsonl")
    assert bench.review.journal_path == tmp_path / "mine.jsonl"
    item = bench.item
    assert item is not None
    with pytest.raises(dfs.InvalidCorrectionError):
        bench.review.correct(item.work_order_id, item.task_id, "not a value of it")
    assert sim.correction_counts() == before
    assert review.read_decisions(tmp_path / "mine.jsonl") == {}


def test_a_later_correction_replaces_an_agreement(client, sim, plan, tmp_path) -> None:
    bench = widgets.ReviewBench(client, plan, journal=tmp_path / "r.jsonl")
    wo, task, value = _correctable(bench)
    bench.show(wo, task)
    target = bench.item
    assert target is not None
    bench.agree_button.click()
    assert (target.work_order_id, target.task_id) in review.read_agreements(tmp_path / "r.jsonl")
    assert _correct_at(bench, wo, task, value)["status"] == "applied"
    assert review.read_agreements(tmp_path / "r.jsonl") == set()
    decisions = review.read_decisions(tmp_path / "r.jsonl")
    assert decisions[(target.work_order_id, target.task_id)]["value"] == value


def test_only_http_photos_are_shown_and_escaped(sim, client_for, tmp_path) -> None:
    """A server whose inputs name a script, a data URI and a URL that tries to close the
    attribute: only http(s) URLs become images, and their quotes stay inside the attribute."""
    hostile = 'https://cdn.example.com/x.jpg"onerror="alert(1)'

    class _Rewriting(QuietHandler):
        def do_GET(self) -> None:
            upstream = requests.get(
                sim.base_url.rstrip("/").rsplit("/", 1)[0] + self.path,
                headers={"Authorization": self.headers.get("Authorization", "")},
                timeout=30,
            )
            body = upstream.json()
            if isinstance(body, dict) and isinstance(body.get("inputs"), list):
                group = body["inputs"][0]["task_group_name"]
                body["inputs"] = [
                    {"task_group_name": group, "data": {"type": "image", "value": url}}
                    for url in ("javascript:alert(1)", "data:image/png;base64,AAAA", hostile)
                ]
            self.answer(upstream.status_code, body)

    with local_http_server(_Rewriting) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}/v0.2/"
        hostile_client = client_for(_Site(base, sim.api_key))
        tasks = dfs.load_tasks(client_for(sim))
        wo_id = str(tasks.loc[tasks["analyzed"], "work_order_id"].iloc[0])
        group = None
        bench = widgets.ReviewBench(
            hostile_client, pd.DataFrame({"work_order_id": [wo_id]}), journal=tmp_path / "r.jsonl"
        )
        assert bench.last_error is None, bench.last_error
        for _ in range(50):  # find a task of the group the inputs name
            assert bench.item is not None
            if bench.item.images:
                group = bench.item.task_group_name
                break
            bench.step(+1)
        assert group is not None
        assert bench.item.images == [hostile]
        html = bench.images_html.value
        assert html.count("<img ") == 1
        assert "javascript:" not in html and "data:image" not in html
        assert '"onerror="' not in html and "&quot;onerror=&quot;" in html


def test_work_orders_reviewed_on_the_bench_count_in_site_estimate(client, sim, plan) -> None:
    """A sampled work order whose every analysed task was decided on the bench is reviewed,
    although the server has no review of it."""
    bench = review.Review(client, plan, journal=client.cache_dir / "bench.jsonl")
    unreviewed = [
        wo for wo in bench.work_order_ids if not client.get_work_order(wo).get("review_date")
    ]
    assert unreviewed, "the plan needs a work order nobody reviewed"
    target = unreviewed[0]
    assert bench.reviewed_work_orders() == set()
    for item in bench.items(target):
        bench.agree(target, item.task_id)
    assert bench.reviewed_work_orders() == {target}
    tasks = dfs.load_tasks(client)
    before = dfs.audit.site_estimate(tasks, plan, method="design").iloc[0]
    after = dfs.audit.site_estimate(
        tasks, plan, method="design", also_reviewed=bench.reviewed_work_orders()
    ).iloc[0]
    assert after["n_work_orders"] == before["n_work_orders"] + 1
    assert after["not_yet_reviewed"] == before["not_yet_reviewed"] - 1
    counted = tasks[tasks["work_order_id"] == target]
    assert after["n_tasks"] == before["n_tasks"] + int(counted["analyzed"].fillna(False).sum())


def test_marking_a_plan_on_the_server_is_journaled_and_sent_once(
    client, sim, plan, tmp_path
) -> None:
    ids = list(plan["work_order_id"])
    journal = tmp_path / "marks.jsonl"

    def metadata_events(wo_id: str) -> int:
        return sum(e["type"] == "metadata_update" for e in client.get_timeline(wo_id))

    first = review.mark_plan(client, plan, journal=journal)
    assert first["status"].tolist() == ["marked"] * 3
    fingerprint = review.plan_fingerprint(plan)
    for wo_id in ids:
        assert client.get_work_order(wo_id)["metadata"]["review_plan"] == fingerprint
        assert metadata_events(wo_id) == 1
    again = review.mark_plan(client, plan, journal=journal)
    assert again["status"].tolist() == ["marked earlier"] * 3
    # another journal (another machine): the server already has the marks, nothing is sent
    elsewhere = review.mark_plan(client, plan, journal=tmp_path / "other.jsonl")
    assert elsewhere["status"].tolist() == ["already marked"] * 3
    assert [metadata_events(wo_id) for wo_id in ids] == [1, 1, 1]
    # the loaders see the marks: the review team's filter
    frame = dfs.load_work_orders(client)
    marked = frame.loc[frame["metadata.review_plan"] == fingerprint, "work_order_id"]
    assert sorted(marked) == sorted(ids)
    with pytest.raises(dfs.ConfigurationError, match="key"):
        review.mark_plan(client, plan, key=" ", journal=journal)


def test_a_plan_row_without_a_work_order_id_is_left_out(client, tmp_path) -> None:
    plan = pd.DataFrame({"work_order_id": ["a", None, "b"], "work_order_name": ["A", "X", None]})
    bench = review.Review(client, plan, journal=tmp_path / "r.jsonl")
    assert bench.work_order_ids == ["a", "b"]
    assert bench.names == {"a": "A", "b": None}


def test_a_dataset_at_a_uri_needs_a_journal_path(sim, tmp_path, monkeypatch) -> None:
    """A URI has no local folder to put the journal beside: a typed error, nothing written in
    the working directory."""
    monkeypatch.chdir(tmp_path)
    client = dfs.Client(
        sim.base_url, api_key=sim.api_key, cache=None, dataset="s3://bucket/site", progress=False
    )
    plan = pd.DataFrame({"work_order_id": ["a"]})
    with pytest.raises(dfs.ConfigurationError, match="journal="):
        review.Review(client, plan)
    with pytest.raises(dfs.ConfigurationError, match="journal="):
        review.mark_plan(client, plan)
    assert list(tmp_path.iterdir()) == []
    given = review.Review(client, plan, journal=tmp_path / "r.jsonl")
    assert given.journal_path == tmp_path / "r.jsonl"


def test_the_bench_is_a_lazy_name() -> None:
    assert dfs.ReviewBench is widgets.ReviewBench


# -- in a real browser: the bench served by Voila, clicked in Debian's Chromium ----------------


_NOTEBOOK_CELLS = [
    "import dfs_analytics as dfs\nclient = dfs.connect()",
    "plan = dfs.audit.review_sample(dfs.load_tasks(client), 3, seed=1)",
    "bench = dfs.widgets.ReviewBench(client, plan, journal='review.jsonl')\nbench",
]


@pytest.fixture
def voila_bench(tmp_path: Path, sim):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in _NOTEBOOK_CELLS]
    nbformat.write(notebook, tmp_path / "review.ipynb")
    with voila_server(tmp_path, "review.ipynb", sim) as url:
        yield url


@pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("DFS_REQUIRE_BROWSER") != "1",
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
def test_agree_and_correct_clicked_in_the_browser(voila_bench, client, sim, plan, tmp_path) -> None:
    # what the bench will show second (it moves on after an agreement), read here as well
    bench = widgets.ReviewBench(client, plan, journal=tmp_path / "here.jsonl")
    first = bench.item
    bench.step(+1)
    target = bench.item
    assert first is not None and target is not None
    current = effective(
        {"analyzed_value": target.analyzed_value, "corrected_value": target.corrected_value}
    )
    value, sentence = next((v, s) for v, s in target.choices if v != current)
    label = f"{sentence} ({value!r})" if sentence else repr(value)
    before = sim.correction_counts()

    failure = tmp_path / "review_bench_failure.png"
    with chromium_page(voila_bench, failure, height=1600) as page:
        agree = page.locator("button", has_text=re.compile(r"^\W*Agree\W*$"))
        agree.wait_for(timeout=240_000)
        assert page.locator("img").count() >= 1  # the group's photos (http URLs)
        agree.click()
        page.get_by_text(f"Agreed on {first.task_name}.").wait_for(timeout=60_000)
        choice = page.locator(".widget-dropdown", has_text="Correct to").locator("select")
        choice.select_option(label=label)
        correct = page.locator("button", has_text=re.compile(r"^\W*Correct\W*$"))
        correct.click()
        page.get_by_text(f"{target.task_name} corrected to").wait_for(timeout=60_000)
        page.locator("button", has_text=re.compile(r"^\W*$")).first.click()  # back
        page.get_by_text("corrected to", exact=False).first.wait_for(timeout=30_000)
        choice.select_option(label=label)
        correct.click()
        page.get_by_text("applied earlier").wait_for(timeout=60_000)

    after = sim.correction_counts()
    key = (target.work_order_id, target.task_id)
    assert after[key] == before.get(key, 0) + 1
    assert {k: v for k, v in after.items() if k != key} == before
    assert review.read_agreements(tmp_path / "review.jsonl") == {
        (first.work_order_id, first.task_id)
    }
