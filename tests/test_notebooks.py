"""The three notebooks run top to bottom (against the local simulator) and are stored without
outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch) -> None:
    for name in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_API_KEY", "DFS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
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
    assert "local simulator" in text  # no DFS_* environment: the notebook used the simulator
    if path.stem.startswith("02"):
        assert (tmp_path / "audit.html").stat().st_size > 10_000
    if path.stem.startswith("03"):
        journal = [
            json.loads(line) for line in (tmp_path / "campaign.jsonl").read_text().splitlines()
        ]
        assert {r["event"] for r in journal} >= {"attempt", "applied"}
        assert "Empty DataFrame" in text  # verify() found nothing that differs from the plan
