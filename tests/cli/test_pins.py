"""Pins: a review plan saved with ``dfs.audit.save_plan`` and an HTML report pin the dataset
version their frame was loaded from, so retention (``dfs-analytics sync``'s, or ``vacuum``)
never removes it; a dataset that cannot be pinned is a warning, never an error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pandas as pd
import pytest

import dfs_analytics as dfs
from dfs_analytics.audit.site import pin_version
from dfs_analytics.cli import main
from dfs_analytics.dataset import Dataset
from dfs_analytics.report import audit_report
from dfs_analytics.simulator import Simulator

pytestmark = pytest.mark.sim(work_orders=40, seed=11)


def _second_version(sim: Simulator, client: dfs.Client) -> None:
    """Review a few work orders and sync again: a newer version rewrites some files."""
    wo = dfs.load_work_orders(client, progress=False)
    unreviewed = sorted(wo.loc[~wo["reviewed"].fillna(False).astype(bool), "work_order_id"])
    assert sim.review(unreviewed[:4])["reviewed"]
    assert dfs.sync(client, progress=False).changed


def test_a_saved_plan_and_a_report_pin_their_version_through_vacuum(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "site"
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=dataset)
    tasks = dfs.load_tasks(client, progress=False)
    version = tasks.attrs["dfs_provenance"]["version"]
    plan = dfs.audit.review_sample(tasks, n=10, by="ai_nonconformity", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pinning a writable dataset warns about nothing
        saved = dfs.audit.save_plan(plan, tmp_path / "plan.csv")
        report = audit_report(tasks, tmp_path / "audit.html")
    pins = Dataset(dataset).pins()
    assert pins["version"].tolist() == [version]
    assert pins["note"].iloc[0] == f"HTML report {report}"  # the latest note of that version
    _second_version(sim, client)
    assert Dataset(dataset).version > version

    assert main(["vacuum", "--dataset", str(dataset), "--keep-versions", "1", "--json"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert version not in done["unreadable_versions"]
    again = Dataset(dataset).tasks(as_of=version)  # still readable: the plan can be redone
    pd.testing.assert_frame_equal(again, tasks, check_like=True)
    assert main(["status", "--dataset", str(dataset), "--json"]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["version"] for p in status["pins"]] == [version]
    assert saved.exists() and saved.with_suffix(".json").exists()


def test_the_plan_note_names_the_plan(sim: Simulator, tmp_path: Path) -> None:
    dataset = tmp_path / "site"
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=dataset)
    tasks = dfs.load_tasks(client, progress=False)
    plan = dfs.audit.review_sample(tasks, n=5, seed=2)
    saved = dfs.audit.save_plan(plan, tmp_path / "plans" / "week-49.csv")
    assert Dataset(dataset).pins().to_dict("records")[0]["note"] == f"review plan {saved}"


def test_a_dataset_that_cannot_be_pinned_is_a_warning(sim: Simulator, tmp_path: Path) -> None:
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=tmp_path / "a")
    tasks = dfs.load_tasks(client, progress=False)
    plan = dfs.audit.review_sample(tasks, n=5, seed=3)
    # the plan names a folder that holds no dataset (moved, replaced): nothing to pin there
    (tmp_path / "elsewhere").mkdir()
    plan.attrs["design"]["dataset"] = str(tmp_path / "elsewhere")
    with pytest.warns(UserWarning, match="was not pinned"):
        saved = dfs.audit.save_plan(plan, tmp_path / "plan.csv")
    assert saved.exists()  # the plan itself was saved
    assert Dataset(tmp_path / "a").pins().empty
    # a frame with no provenance, or a local dataset that is gone: nothing to pin, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pin_version(None, 3, "x") is False
        assert pin_version(str(tmp_path / "gone"), 3, "x") is False


def test_a_read_only_dataset_is_a_warning(sim: Simulator, tmp_path: Path) -> None:
    """The dataset is mounted read-only (in a user and mount namespace of its own, so this
    holds for root too): the report is written, and not pinning its version is a warning."""
    dataset = tmp_path / "site"
    client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, dataset=dataset)
    dfs.load_tasks(client, progress=False)
    pins_before = len(Dataset(str(dataset)).pins())
    script = textwrap.dedent(
        """
        import sys, warnings
        import dfs_analytics as dfs
        from dfs_analytics.report import audit_report
        c = dfs.Client(sys.argv[1], api_key=sys.argv[2], cache=None, dataset=sys.argv[3],
                       offline=True, progress=False)
        tasks = dfs.load_tasks(c)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audit_report(tasks, sys.argv[4])
        print("warned:", " | ".join(str(w.message) for w in caught if w.category is UserWarning))
        """
    )
    mount = f'mount --bind {dataset} {dataset} && mount -o remount,ro,bind {dataset} && exec "$@"'
    done = subprocess.run(
        [
            *("unshare", "-rm", "sh", "-c", mount, "sh", sys.executable, "-c", script),
            *(sim.base_url, sim.api_key, str(dataset), str(tmp_path / "audit.html")),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "was not pinned" in done.stdout.splitlines()[-1], (done.stdout, done.stderr[-2000:])
    assert (tmp_path / "audit.html").exists()
    assert len(Dataset(str(dataset)).pins()) == pins_before
