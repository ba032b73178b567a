"""The three notebooks ask for the local simulator, run top to bottom (again and again) in a
folder of their own, write only under its output/ folder, and are stored without outputs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_audit_ai_verdicts.ipynb",
        "03_correction_campaign.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == []
            assert cell.get("execution_count") is None


# Run before a notebook: records every title given to a plot, printed by RECORDED at the end.
RECORD_TITLES = """
import matplotlib.axes

_titles = []
_set_title = matplotlib.axes.Axes.set_title


def _record_title(self, label, *args, **kwargs):
    _titles.append(str(label))
    return _set_title(self, label, *args, **kwargs)


matplotlib.axes.Axes.set_title = _record_title
"""
RECORDED = "print('PLOT TITLES', _titles)"


def source_tree_files() -> set[str]:
    """Every file under notebooks/ that git does not track, ignored ones included."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored", "notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {line[3:] for line in done.stdout.splitlines() if line[:2] in ("??", "!!")}


@pytest.fixture
def no_site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DFS_* settings: the notebooks must ask for the simulator themselves."""
    for name in list(os.environ):
        if name.startswith("DFS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def run(path: Path, folder: Path) -> tuple[nbformat.NotebookNode, str]:
    """Run a notebook top to bottom in ``folder``; returns it with its outputs, and their text."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [new_code_cell(RECORD_TITLES), *nb.cells, new_code_cell(RECORDED)]
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
    text = "\n".join(
        str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    return nb, text


def first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(cell.source for cell in nb.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_asks_for_the_simulator_and_shows_how_to_use_a_site(path: Path) -> None:
    source = first_code_cell(path)
    assert "dfs.connect(simulator=True" in source
    for name in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_API_KEY", "client = dfs.connect()"):
        assert name in source, name


@pytest.mark.parametrize("path", NOTEBOOKS[:2], ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, no_site: None) -> None:
    before = source_tree_files()
    _, text = run(path, tmp_path)
    assert "local simulator (simulator data)" in text  # asked for, and said
    recorded = text[text.index("PLOT TITLES") + len("PLOT TITLES") :]
    titles = ast.literal_eval(recorded.strip().splitlines()[0])
    if path.stem.startswith("02"):
        report = tmp_path / "output" / "audit.html"
        assert report.stat().st_size > 10_000
        assert "<title>Audit of AI verdicts (simulator data)</title>" in report.read_text()
        # every plot's final title says that the data is made up
        shown = [t for t in titles if t.endswith(" (simulator data)")]
        assert len(shown) == 4, titles
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "xdg-cache") == (
        ["output"] if path.stem.startswith("02") else []
    )
    assert source_tree_files() == before  # nothing left in the source tree


def test_the_campaign_notebook_runs_twice_in_the_same_folder(tmp_path: Path, no_site: None) -> None:
    """Each run has a new simulator: the journal of the previous one must not get in the way."""
    path = NOTEBOOKS[2]
    before = source_tree_files()
    for _ in range(2):
        _, text = run(path, tmp_path)
        assert "local simulator (simulator data)" in text
        assert "journal records:" in text and "'attempt'" in text and "'applied'" in text
        assert "applied earlier" not in text  # nothing was taken from another run's journal
        assert "Empty DataFrame" in text  # verify() found nothing that differs from the plan
    assert [p.name for p in tmp_path.iterdir() if p.name != "xdg-cache"] == []
    assert source_tree_files() == before  # nothing left in the source tree
