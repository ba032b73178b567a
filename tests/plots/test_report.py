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
from contextlib import nullcontext
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import dfs_analytics as dfs
from dfs_analytics import normalize, plots
from tests.helpers import small_work_orders

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SECTIONS = (
    "The whole site",
    "Are the reviewed work orders like the rest?",
    "Site-wide estimates",
    'The AI as a classifier: precision and recall of "not conform"',
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
    # per week (2), one confusion per most overridden task (3), precision and recall (1),
    # the site-wide estimates (1)
    images = [a for tag, a in doc.tags if tag == "img"]
    assert len(images) == 2 + 2 + 1 + 2 + 3 + 1 + 1
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
                "dataset": "{tmp}/site <1>",
                "version": 12,
                "table": "tasks",
                "filters": {"created_after": "2026-01-01T00:00:00Z", "reviewed": True},
                "as_of": None,
            },
            "Data: dataset <code>{tmp}/site &lt;1&gt;</code>, table tasks, version 12; "
            "filters: created_after=2026-01-01T00:00:00Z, reviewed=True.",
        ),
        (
            {"dataset": "{tmp}/deleted", "version": 2, "table": "tasks", "filters": {}},
            "Data: a local dataset that no longer exists (deleted since the frame was "
            "loaded), table tasks, version 2; filters: none.",
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
    ids=["filters", "deleted", "as-of", "none"],
)
def test_report_states_dataset_version_and_filters(
    tmp_path, provenance: dict[str, Any] | None, expected: str
) -> None:
    tasks = normalize.tasks_frame(small_work_orders())
    if provenance is not None:
        local = provenance["dataset"].startswith("{tmp}")
        provenance = dict(provenance, dataset=provenance["dataset"].replace("{tmp}", str(tmp_path)))
        if local and not provenance["dataset"].endswith("deleted"):
            Path(provenance["dataset"]).mkdir()  # the dataset is where the frame says
        tasks.attrs["dfs_provenance"] = provenance
    # a frame naming a dataset that is not one (or a store it cannot reach) is reported, and
    # the version it names cannot be pinned there: a warning, not an error
    unpinnable = provenance is not None and not provenance["dataset"].endswith("deleted")
    with pytest.warns(UserWarning, match="was not pinned") if unpinnable else nullcontext():
        path = dfs.audit_report(tasks, tmp_path / "report.html")
    check_self_contained(path)
    assert data_line(path.read_text(encoding="utf-8")) == expected.replace("{tmp}", str(tmp_path))


def test_report_of_loaded_tasks_names_their_dataset_version(sim_report, sim_tasks) -> None:
    source = sim_tasks.attrs.get("dfs_provenance")
    assert source, "load_tasks records where its rows come from"
    line = data_line(sim_report.read_text(encoding="utf-8"))
    if Path(source["dataset"]).exists():
        assert f"<code>{html.escape(str(source['dataset']))}</code>" in line
    else:  # a client without cache keeps its dataset in a folder removed when it closes
        assert line.startswith("Data: a local dataset that no longer exists")
        assert str(source["dataset"]) not in line
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
    # 60 work orders already fill every section (the report's cost is its figures, not rows)
    done = subprocess.run(
        [*command, "report", "--out", str(out), "--simulator", "--work-orders", "60"],
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


# --------------------------------------------------------------------------------------------
# the whole site, the AI as a classifier, the conclusion, and what a new user tripped over
# --------------------------------------------------------------------------------------------


def table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading`` (its header row first)."""
    start = text.index(f">{html.escape(heading, quote=False)}</h")
    body = text[start : text.index("</table>", start)]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [
        [html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)]
        for row in rows
    ]


def conclusion_of(text: str) -> str:
    """The opening conclusion's text, checked to come before the first section."""
    match = re.search(r'<div class="conclusion">(.*?)</div>', text, flags=re.S)
    assert match, "the report opens with no conclusion"
    assert match.start() < text.index("<h2>")
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.])\s+(?=[A-Z])", text.strip()) if s]


def pct(value: float) -> str:
    return f"{value:.1%}"


def test_report_opens_with_a_conclusion_computed_from_the_figures(sim_report, sim_tasks) -> None:
    said = conclusion_of(sim_report.read_text(encoding="utf-8"))
    body = said.removeprefix("In short.").strip()
    assert 3 <= len(sentences(body)) <= 5, sentences(body)
    head = dfs.audit.summary(sim_tasks)
    share = head["reviewed_work_orders"] / head["work_orders"]
    assert f"{head['reviewed_work_orders']:,} of {head['work_orders']:,} work orders " in said
    assert f"({pct(share)}) were reviewed" in said
    assert f"changed the AI's value on {pct(head['override_rate'])}" in said
    site = dfs.audit.site_estimate(sim_tasks).iloc[0]
    assert f"the override rate is {pct(site['estimate'])}" in said
    flagged = dfs.audit.review_bias(sim_tasks)["flagged"].any()
    assert ("looks biased" in said) == bool(flagged)
    assert ("does not look biased" in said) == (not flagged)
    quality = dfs.audit.verdict_quality(sim_tasks, by=None).iloc[0]
    assert f"right {pct(quality['precision'])} of the time" in said
    assert f"catches {pct(quality['recall'])}" in said


def test_the_whole_site_section_says_what_each_figure_covers(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    head = dfs.audit.summary(sim_tasks)
    never = head["work_orders"] - head["reviewed_work_orders"]
    assert f"{never:,} ({pct(never / head['work_orders'])}) never were" in text
    rows = table_after(text, "Site-wide estimates")
    header, rows = rows[0], rows[1:]
    assert header[:5] == ["figure", "estimate", "ci_low", "ci_high", "method"]
    methods = [(r[0].split(" (")[0], r[4]) for r in rows]
    assert methods == [
        ("Values changed", "reviewed only"),
        ("Values changed", "poststratified"),
        ("Not conform after review", "reviewed only"),
        ("Not conform after review", "poststratified"),
    ]
    for row in rows:  # every figure says what it covers and what it assumes
        covers = row[-1]
        if row[4] == "reviewed only":
            assert f"The {head['reviewed_work_orders']:,} reviewed work orders only" in covers
            assert f"the {never:,} work orders nobody reviewed" in covers
        else:
            assert covers.startswith("The whole site:")
            assert "Reviews are random within these strata" in covers
    quantities = {
        "Values changed": "override_rate",
        "Not conform after review": "nonconformity_rate",
    }
    for row in rows:
        if row[4] == "poststratified":
            quantity = quantities[row[0].split(" (")[0]]
            site = dfs.audit.site_estimate(sim_tasks, quantity=quantity).iloc[0]
            assert row[1:4] == [pct(site[c]) for c in ("estimate", "ci_low", "ci_high")]
    quality = dfs.audit.verdict_quality(sim_tasks, by=None).iloc[0]
    assert rows[2][1] == pct(quality["prevalence"])
    # the review-bias table: one row per feature compared, as the audit computes it
    bias = dfs.audit.review_bias(sim_tasks)
    shown = table_after(text, "Are the reviewed work orders like the rest?")[1:]
    assert [r[0] for r in shown] == [str(f).replace("_", " ") for f in bias["feature"]]
    assert [r[-1] == "yes" for r in shown] == bias["flagged"].tolist()


def with_review_queue(tasks: pd.DataFrame, keep: set[str]) -> pd.DataFrame:
    """``tasks`` where only the work orders ``keep`` (of those reviewed) count as reviewed."""
    out = tasks.copy()
    out["reviewed"] = (out["reviewed"].fillna(False).astype(bool)) & out["work_order_id"].isin(keep)
    out["reviewed"] = out["reviewed"].astype("boolean")
    return out


def test_a_review_queue_the_ai_steers_is_flagged_and_a_random_one_is_not(
    sim_tasks, tmp_path
) -> None:
    share = dfs.audit.site.work_order_table(sim_tasks).set_index("work_order_id")
    reviewed = share[share["reviewed"]]
    # planted: reviewers only kept the work orders the AI finds partly not conform
    steered = set(reviewed.index[reviewed["ai_nonconformity"] > 0])
    tasks = with_review_queue(sim_tasks, steered)
    assert dfs.audit.review_bias(tasks)["flagged"].any()
    text = dfs.audit_report(tasks, tmp_path / "steered.html").read_text(encoding="utf-8")
    warning = re.search(r'<p class="warning">(.*?)</p>', text, flags=re.S)
    assert warning and "AI non-conformity share" in warning.group(1)
    assert "The review queue looks biased" in conclusion_of(text)
    section = text[text.index(">Are the reviewed work orders like the rest?<") :]
    assert '<tr class="flag">' in section[: section.index("</table>")]
    # random: a seeded half of the same reviews
    rng = np.random.default_rng(4)
    random_half = {w for w in reviewed.index if rng.random() < 0.5}
    tasks = with_review_queue(sim_tasks, random_half)
    assert not dfs.audit.review_bias(tasks)["flagged"].any()
    text = dfs.audit_report(tasks, tmp_path / "random.html").read_text(encoding="utf-8")
    assert '<p class="warning">' not in text
    assert "The review queue does not look biased" in conclusion_of(text)


def test_a_reviewed_plan_adds_the_design_and_ppi_estimates(dfs_simulator_factory, tmp_path) -> None:
    sim = dfs_simulator_factory(work_orders=300, seed=5, selective_review=True)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as client:
        before = dfs.load_tasks(client)
        plan = dfs.audit.review_sample(before, 60, by="ai_nonconformity", seed=2)
        sim.review(plan["work_order_id"].tolist())  # the review team reviews the plan
        tasks = dfs.load_tasks(client)
    path = dfs.audit_report(tasks, tmp_path / "plan.html", plan=plan)
    text = path.read_text(encoding="utf-8")
    check_self_contained(path)
    rows = table_after(text, "Site-wide estimates")[1:]
    found = {(r[0].split(" (")[0], r[4]): r for r in rows}
    expected = {
        ("Values changed", "design"): dict(quantity="override_rate", method="design"),
        ("Not conform after review", "design"): dict(
            quantity="nonconformity_rate", method="design"
        ),
        ("Not conform after review", "ppi"): dict(quantity="nonconformity_rate", method="ppi"),
    }
    for key, options in expected.items():
        site = dfs.audit.site_estimate(tasks, plan, **options).iloc[0]
        assert found[key][1:4] == [pct(site[c]) for c in ("estimate", "ci_low", "ci_high")], key
        assert found[key][5] == str(site["n_work_orders"])
        assert "A random sample of work orders under the plan's strata" in found[key][-1]
    said = conclusion_of(text)
    design = dfs.audit.site_estimate(tasks, plan, method="design").iloc[0]
    assert f"the override rate is {pct(design['estimate'])}" in said
    assert "from the random review plan" in said
    assert 3 <= len(sentences(said.removeprefix("In short.").strip())) <= 5


def test_a_plan_of_other_work_orders_is_refused_before_anything_is_written(
    sim_tasks, tmp_path
) -> None:
    other = normalize.tasks_frame(small_work_orders())
    plan = dfs.audit.review_sample(other, 4, seed=1)
    with pytest.raises(dfs.audit.AuditInputError, match="plan"):
        dfs.audit_report(sim_tasks, tmp_path / "audit.html", plan=plan)
    assert not (tmp_path / "audit.html").exists()


def test_precision_and_recall_per_task_match_the_audit(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    rows = table_after(text, 'The AI as a classifier: precision and recall of "not conform"')
    header, rows = rows[0], rows[1:]
    assert header[:7] == ["task_name", "tasks", "work orders", "tp", "fp", "fn", "tn"]
    quality = dfs.audit.verdict_quality(sim_tasks).set_index("task_name")
    assert len(rows) == len(quality)
    for row in rows:
        want = quality.loc[row[0]]
        assert row[1:7] == [
            str(int(want[c])) for c in ("n_tasks", "n_work_orders", "tp", "fp", "fn", "tn")
        ]
        for cell, name in zip(row[7:10], ("precision", "recall", "f1"), strict=True):
            if pd.isna(want[name]):  # e.g. no task the AI finds not conform: no precision
                assert cell == ""
                continue
            low, high = pct(want[name + "_low"]), pct(want[name + "_high"])
            assert cell == f"{pct(want[name])} ({low} – {high})"
    f1 = [quality.loc[r[0], "f1"] for r in rows]
    assert f1 == sorted(f1, reverse=True)  # best first, like the chart


def test_tables_are_sorted_like_their_charts(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    for basis, heading in (
        ("value", "Values changed per task"),
        ("verdict", "Verdicts flipped per task"),
    ):
        rows = table_after(text, heading)[1:]
        rates = dfs.override_rates(sim_tasks, basis=basis)
        # the chart's order, top to bottom, as the plot draws it
        ax = Figure().subplots()
        plots.plot_override_rates(rates, ax=ax, basis=basis)
        charted = [t.get_text().split("  (n=")[0] for t in ax.get_yticklabels()][::-1]
        shown = [r[0] for r in rows if r[1] != "0"]
        assert shown == charted, (basis, shown, charted)
        assert [r[1] for r in rows[len(shown) :]] == ["0"] * (len(rows) - len(shown))
        for title in (f"{heading.replace(' per task', '')} per task group",):
            group_rates = [float(r[3].rstrip("%")) for r in table_after(text, title)[1:] if r[3]]
            assert group_rates == sorted(group_rates, reverse=True)


def test_tables_fit_the_page(sim_report) -> None:
    text = sim_report.read_text(encoding="utf-8")
    # every table scrolls sideways in its own box instead of widening the page
    assert text.count("<table") == text.count('<div class="scroll"><table')
    assert re.search(r"\.scroll\{[^}]*overflow-x:auto", text)
    # the engineers' tables are narrow: intervals and limits one column each
    for heading in ("Values changed per field engineer", "Verdicts flipped per field engineer"):
        header = table_after(text, heading)[0]
        assert header == [
            "field engineer",
            "audited",
            "overridden",
            "rate",
            "shrunk",
            "shrunk, 95% interval",
            "99.8% limits",
            "outlier",
        ]


def test_app_versions_are_shown_by_a_readable_label(sim_report, sim_tasks) -> None:
    text = sim_report.read_text(encoding="utf-8")
    start = text.index(">Drift across app versions<")
    drift = table_after(text[start:], "Values changed")[1:]  # its first table
    first = (
        sim_tasks.groupby(sim_tasks["app_version_id"].astype(str))["create_date"]
        .min()
        .sort_values()
    )
    labels = {
        version: f"v{i} from {date:%Y-%m-%d} ({version[:8]})"
        for i, (version, date) in enumerate(first.items(), 1)
    }
    assert {r[1] for r in drift} == set(labels.values())
    assert not re.search(r"<td>[0-9a-f]{8}</td>", text)  # never a bare short id


def test_kappa_is_explained_with_this_sites_clearest_example(sim_report, sim_tasks) -> None:
    text = html.unescape(sim_report.read_text(encoding="utf-8"))
    section = text[text.index("Agreement (Cohen's kappa)") :]
    assert "It is low when one verdict dominates" in section
    assert "agree by chance most of the time (the expected agreement is high)" in section
    table = dfs.audit.agreement(sim_tasks)
    row = table.loc[(table["observed"] - table["kappa"]).idxmax()]
    assert (
        f"For example {row['task_name']}: {row['observed']:.1%} agreement, of which "
        f"{row['expected']:.1%} is expected by chance, so κ = {row['kappa']:.3f}."
    ) in section


def test_the_report_module_does_not_import_connect() -> None:
    import ast

    source = (ROOT / "dfs_analytics" / "report.py").read_text(encoding="utf-8")
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "connect" not in imported and "dfs_analytics.connect" not in imported
    from dfs_analytics import config, connect  # noqa: F401  (the old import still works)

    assert sys.modules["dfs_analytics.connect"].SIMULATOR_NOTE == config.SIMULATOR_NOTE


def test_the_demo_report_does_not_name_its_deleted_dataset(tmp_path, monkeypatch, capsys) -> None:
    from dfs_analytics.demo import run_demo

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert run_demo(work_orders=60, seed=2, out=tmp_path / "demo") == 0
    capsys.readouterr()
    text = (tmp_path / "demo" / "audit.html").read_text(encoding="utf-8")
    line = data_line(text)
    assert line.startswith("Data: a temporary dataset (deleted after the demo), table tasks")
    assert "<code>" not in line and "/tmp" not in line


def test_the_report_command_takes_a_saved_plan(dfs_simulator_factory, tmp_path, monkeypatch):
    """`dfs-analytics report --plan plan.csv`: the plan's design estimates join the report."""
    from dfs_analytics.cli import main

    sim = dfs_simulator_factory(work_orders=80, seed=4)
    with dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False) as client:
        plan = dfs.audit.review_sample(dfs.load_tasks(client), 12, seed=2)
    sim.review(list(plan["work_order_id"]))  # the review team reviewed it
    saved = dfs.audit.save_plan(plan, tmp_path / "plan.csv")
    for name in ("DFS_SIMULATOR", "DFS_SITE_ID", "DFS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DFS_BASE_URL", sim.base_url)
    monkeypatch.setenv("DFS_API_KEY", sim.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
    with_plan, without = tmp_path / "with.html", tmp_path / "without.html"
    assert main(["report", "--out", str(with_plan), "--plan", str(saved)]) == 0
    assert main(["report", "--out", str(without)]) == 0
    text = html.unescape(with_plan.read_text(encoding="utf-8"))
    plain = html.unescape(without.read_text(encoding="utf-8"))
    # the plan's rows (design, and PPI for the non-conformity rate) only with --plan
    said = "A random sample of work orders under the plan's strata"
    assert text.count(said) == 3 and said not in plain  # design x 2 quantities, and PPI
