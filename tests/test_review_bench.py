"""The review bench, driven headlessly (``.value = ...``, ``.click()``) against the simulator
over HTTP: agreements go to the local review journal, corrections through journaled campaigns,
each reaching the server exactly once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics import review, widgets
from dfs_analytics.rules import effective


@pytest.fixture
def sim(dfs_simulator_factory):
    return dfs_simulator_factory(work_orders=30, seed=11)


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


def test_the_bench_is_a_lazy_name() -> None:
    assert dfs.ReviewBench is widgets.ReviewBench
