"""``dfs-analytics demo``: the simulator's made-up data, and every output says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfs_analytics.cli import main


def test_demo_says_its_figures_are_simulator_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--work-orders", "80", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("(simulator data)") >= 4  # banner, tables, drift, report
    assert "made up" in printed
    report = (out / "audit.html").read_text(encoding="utf-8")
    assert "<title>Audit of AI verdicts (simulator data)</title>" in report
