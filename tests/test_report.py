"""report: ``dfs.audit_report`` and ``dfs-analytics report`` write ONE self-contained HTML file.

Self-contained: every image is an inlined PNG (``data:image/png;base64,...`` that decodes to a
real PNG), and nothing refers to an external resource (no http(s) URL, no script or stylesheet
link). When chromium is installed the report is also opened headless with the network cut off,
and a screenshot is saved under ``test-artifacts/``; the other checks run either way.
"""

from __future__ import annotations

import base64
import binascii
import html
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import dfs_analytics as dfs
from dfs_analytics import normalize

from .conftest import small_work_orders

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SECTIONS = (
    "Values changed per task",
    "Verdicts flipped per task",
    "Values changed per task group",
    "Verdicts flipped per task group",
    "Field engineers: who is really out of line?",
    "Values changed per field engineer",
    "Verdicts flipped per field engineer",
    "Values changed per field engineer and month",
    "Drift across app versions",
    "Per week (all tasks)",
    "Values changed per week",
    "Verdicts flipped per week",
    "AI verdict vs final verdict",
    "Agreement (Cohen's kappa)",
    "Definitions",
)


class _Collect(HTMLParser):
    """Tags and attributes of a document, and its headings' text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3"):
            self._in_heading = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


def parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def check_self_contained(path: Path) -> _Collect:
    """The checks of a self-contained report; returns the parsed document."""
    assert path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>")
    doc = parse(text)
    images = [attrs for tag, attrs in doc.tags if tag == "img"]
    assert images, "the report has no plot"
    for attrs in images:
        src = attrs.get("src") or ""
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), src[:80]
        try:
            data = base64.b64decode(src[len(prefix) :], validate=True)
        except binascii.Error as exc:  # pragma: no cover - the assertion message
            raise AssertionError(f"invalid base64 in an inlined image: {exc}") from exc
        assert data.startswith(PNG) and len(data) > 1000
        assert b"IEND" in data[-16:]  # complete PNG
    # nothing to fetch: no URL at all, no script, no linked stylesheet, no CSS url()/@import
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"(?i)<script|<link|<iframe|<object|<embed|@import|url\(", text)
    for tag, attrs in doc.tags:
        for name in ("src", "href", "srcset", "data", "poster"):
            value = attrs.get(name)
            if value is not None and name == "src" and tag == "img":
                continue
            assert value is None or value.startswith("#"), (tag, name, value)
    return doc


@pytest.fixture(scope="module")
def sim_report(sim_tasks, tmp_path_factory) -> Path:
    """The report of the shared simulator's tasks (``sim_tasks``, from conftest)."""
    out = tmp_path_factory.mktemp("report")
    path = dfs.audit_report(sim_tasks, out / "audit.html")
    return path


def test_report_is_one_self_contained_html_file(sim_report) -> None:
    assert sim_report.name == "audit.html"
    assert [p.name for p in sim_report.parent.iterdir()] == ["audit.html"]  # one file only
    check_self_contained(sim_report)


def test_report_has_the_sections_and_the_tasks(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    doc = parse(text)
    headings = [h.strip() for h in doc.headings]
    for title in SECTIONS:
        assert title in headings, (title, headings)
    for name in sim_tasks["task_name"].astype(str).unique():
        assert name in text, name
    for group in sim_tasks["task_group_name"].astype(str).unique():
        assert group in text, group
    # plots, on both bases: per task (2), funnels per engineer (2), engineer x month (1),
    # per week (2), and one confusion per most overridden task (3)
    images = [a for tag, a in doc.tags if tag == "img"]
    assert len(images) == 2 + 2 + 1 + 2 + 3
    assert sum(1 for tag, _ in doc.tags if tag == "table") >= 5


def test_report_figures_match_the_audit(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    head = dfs.audit.summary(sim_tasks)
    assert f"{head['audited_tasks']:,}" in text
    assert f"{head['override_rate']:.1%}" in text
    flagged = int(dfs.drift(sim_tasks, by="app_version_id")["flagged"].sum())
    assert f"{flagged} significant change(s)" in text
    # both bases, each saying what it counts
    verdicts = dfs.audit.summary(sim_tasks, basis="verdict")
    assert verdicts["overridden"] < head["overridden"]
    assert f"verdicts flipped<b>{verdicts['override_rate']:.1%}</b>" in text
    assert f"values changed<b>{head['override_rate']:.1%}</b>" in text
    assert f"of {verdicts['audited_tasks']:,} tasks with a verdict" in text
    flipped = dfs.drift(sim_tasks, by="app_version_id", basis="verdict")
    assert f"{int(flipped['flagged'].sum())} significant change(s)" in text
    # the funnel's outliers are highlighted, engineers are ranked by the shrunken rate
    table = dfs.funnel(sim_tasks)
    assert text.count('<tr class="flag">') >= int(table["outlier"].sum())
    # app versions by a short id, never a full UUID in the drift table
    for version in sim_tasks["app_version_id"].dropna().unique():
        assert str(version)[:8] in text


def test_report_of_a_small_hand_built_frame(tmp_path) -> None:
    # tasks never analysed, an engineer with n = 0, a work order without an engineer
    tasks = normalize.tasks_frame(small_work_orders())
    path = dfs.audit_report(tasks, tmp_path / "sub" / "small.html", title="Small <audit>")
    assert path == tmp_path / "sub" / "small.html"
    doc = check_self_contained(path)
    text = path.read_text(encoding="utf-8")
    assert "Small &lt;audit&gt;" in text  # the title is escaped
    for name in ("present", "power", "serial", "never"):
        assert name in text
    assert "Drift across app versions" in [h.strip() for h in doc.headings]
    # the work order without an engineer is a group of its own, shown as "(none)"
    assert "<td>(none)</td>" in text and "<td>nan</td>" not in text


def test_report_of_simulator_data_says_so_in_its_title(tmp_path) -> None:
    tasks = normalize.tasks_frame(small_work_orders())
    made_up = parse(
        dfs.audit_report(tasks, tmp_path / "sim.html", simulator=True).read_text(encoding="utf-8")
    )
    assert made_up.headings[0].strip() == "Audit of AI verdicts (simulator data)"
    text = (tmp_path / "sim.html").read_text(encoding="utf-8")
    assert "<title>Audit of AI verdicts (simulator data)</title>" in text
    assert "Made-up data" in text
    real = (dfs.audit_report(tasks, tmp_path / "real.html")).read_text(encoding="utf-8")
    assert "simulator" not in real and "Made-up" not in real


def test_report_when_nothing_was_audited(tmp_path) -> None:
    # e.g. dfs-analytics report --created-after <last week>: no work order reviewed yet
    wos = [dict(wo, review_date=None) for wo in small_work_orders()]
    tasks = normalize.tasks_frame(wos)
    assert dfs.audit.summary(tasks)["audited_tasks"] == 0
    path = dfs.audit_report(tasks, tmp_path / "nothing.html")
    doc = check_self_contained(path)
    headings = [h.strip() for h in doc.headings]
    assert "Values changed per task" in headings and "Definitions" in headings


def data_line(text: str) -> str:
    """The report's "Data" line, checked to come before the first section."""
    match = re.search(r'<p class="meta">(Data: .*?)</p>', text)
    assert match, "the report has no Data line"
    assert match.start() < text.index("<h2>")
    return match.group(1)


@pytest.mark.parametrize(
    ("provenance", "expected"),
    [
        (
            {
                "dataset": "/data/dfs/site <1>",
                "version": 12,
                "table": "tasks",
                "filters": {"created_after": "2026-01-01T00:00:00Z", "reviewed": True},
                "as_of": None,
            },
            "Data: dataset <code>/data/dfs/site &lt;1&gt;</code>, table tasks, version 12; "
            "filters: created_after=2026-01-01T00:00:00Z, reviewed=True.",
        ),
        (
            {
                "dataset": "s3://bucket/dfs",
                "version": 3,
                "table": "tasks",
                "filters": {},
                "as_of": 3,
            },
            "Data: dataset <code>s3://bucket/dfs</code>, table tasks, version 3; filters: none; "
            "as of 3.",
        ),
        (
            None,  # says what is missing
            "Data: this frame has no recorded provenance (no dataset, version or filters), so "
            "these figures cannot be traced back to a dataset version.",
        ),
    ],
    ids=["filters", "as-of", "none"],
)
def test_report_states_dataset_version_and_filters(
    tmp_path, provenance: dict[str, Any] | None, expected: str
) -> None:
    tasks = normalize.tasks_frame(small_work_orders())
    if provenance is not None:
        tasks.attrs["dfs_provenance"] = provenance
    path = dfs.audit_report(tasks, tmp_path / "report.html")
    check_self_contained(path)
    assert data_line(path.read_text(encoding="utf-8")) == expected


def test_report_of_loaded_tasks_names_their_dataset_version(sim_report, sim_tasks) -> None:
    source = sim_tasks.attrs.get("dfs_provenance")
    assert source, "load_tasks records where its rows come from"
    line = data_line(sim_report.read_text(encoding="utf-8"))
    assert f"<code>{html.escape(str(source['dataset']))}</code>" in line
    assert f"version {source['version']};" in line
    assert dfs.audit.summary(sim_tasks)["provenance"] == source


def test_cli_report_with_the_simulator(tmp_path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_API_KEY", "DFS_REGION", "DFS_CACHE")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    env["MPLBACKEND"] = "Agg"
    script = Path(sys.executable).with_name("dfs-analytics")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dfs_analytics.cli"]
    out = tmp_path / "audit.html"
    done = subprocess.run(
        [*command, "report", "--out", str(out), "--simulator", "--work-orders", "300"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "local simulator" in done.stderr
    assert str(out) in done.stdout
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".html"] == ["audit.html"]
    assert "(simulator data)" in done.stdout
    doc = check_self_contained(out)
    headings = [h.strip() for h in doc.headings]
    for title in SECTIONS:
        assert title in headings, title
    # made-up data says so in the title and the heading
    assert headings[0] == "Audit of AI verdicts (simulator data)"
    text = out.read_text(encoding="utf-8")
    assert "<title>Audit of AI verdicts (simulator data)</title>" in text
    assert "Made-up data" in text
    if Path("/usr/bin/chromium").exists():
        screenshot_offline(out, tmp_path)


def screenshot_offline(html: Path, tmp_path: Path) -> None:
    """Open the report in headless chromium with every network request failing, and keep a
    screenshot in test-artifacts/ (proof that it renders offline)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit_report_offline.png"
    shot.unlink(missing_ok=True)
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--proxy-server=127.0.0.1:9",  # any fetch would fail
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1280,2400",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG)
    # not a blank page: the rendered report has many distinct colours
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import image

    pixels = image.imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    flat = (pixels[..., :3] * 255).astype("uint8").reshape(-1, 3)
    assert len({tuple(p) for p in flat[:: max(1, len(flat) // 50000)]}) > 20
    assert (flat < 200).any()  # some dark pixels: text
