"""``dfs-analytics`` errors: one clear line on stderr and a non-zero exit, never a traceback
(unless ``--debug``); bad arguments are refused before anything is loaded, served or sent.

The commands run in-process (``main([...])``); where a server is involved it is a real
simulator over HTTP, whose request counts prove that nothing was asked of it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dfs_analytics.cli import describe, main
from dfs_analytics.simulator import Simulator

PROG = "dfs-analytics"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No DFS_* settings of the user; files land in tmp_path."""
    for name in ("DFS_BASE_URL", "DFS_SITE_ID", "DFS_REGION", "DFS_API_KEY", "DFS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def site(dfs_simulator_factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Simulator:
    """A simulator the commands are pointed at through DFS_BASE_URL / DFS_API_KEY."""
    sim = dfs_simulator_factory(work_orders=10, seed=91)
    monkeypatch.setenv("DFS_BASE_URL", sim.base_url)
    monkeypatch.setenv("DFS_API_KEY", sim.api_key)
    monkeypatch.setenv("DFS_CACHE", str(tmp_path / "cache"))
    return sim


def fails(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 2) -> str:
    """Run the command; it must exit ``status`` with exactly one line on stderr, returned."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == status, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PROG) and ": error: " in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Arguments refused before any request: the site's counters stay at zero
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["report", "--level", "5"], "--level"),
        (["report", "--level", "0"], "--level"),
        (["report", "--level", "nan"], "--level"),
        (["report", "--level", "high"], "--level"),
        (["report", "--level", "0.9999999999999999"], "--level"),  # its upper tail is 1.0
        (["report", "--plan", "no-such-plan.csv"], "save_plan"),
        (["report", "--created-after", "0001-01-01T00:00:00+05:00"], "from 1678-01-01"),
        (["report", "--out", "report.pdf"], ".html"),
        (["export", "tasks", "--out", "x.unknownext"], ".csv, .json, .jsonl or .parquet"),
        (["export", "tasks", "--out", "noextension"], ".csv, .json, .jsonl or .parquet"),
        (["export", "tables", "--out", "x.csv"], "invalid choice"),
        (["export", "tasks"], "--out"),
        (["export", "tasks", "--out", "x.csv", "--created-after", "yesterday"], "ISO-8601"),
        (["report", "--created-before", "2026-13-45"], "ISO-8601"),
        (["export", "tasks", "--out", "x.csv", "--created-after", ""], "--created-after"),
        (
            [
                "export",
                "work-orders",
                "--out",
                "x.csv",
                "--created-after",
                "2026-05-01",
                "--created-before",
                "2026-01-01",
            ],
            "must be earlier than",
        ),
        (["export", "tasks", "--out", "x.csv", "--work-orders", "-5"], "--work-orders"),
        (["report", "--work-orders", "0"], "--work-orders"),
        (["report", "--work-orders", "many"], "--work-orders"),
        (["export", "tasks", "--out", "x.csv", "--drift", "-1"], "--drift"),
        (["export", "tasks", "--out", "x.csv", "--no-such-option"], "unrecognized"),
        (["correct", "plan.csv", "--workers", "0"], "--workers"),
        (["nonsense"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_any_request(site, capsys, argv, says):
    line = fails(capsys, *argv)
    assert says in line
    assert site.request_counts() == {}
    assert not [p for p in Path.cwd().iterdir() if p.is_file()]


def test_an_output_folder_that_cannot_exist_fails_before_loading(site, capsys):
    Path("afile").write_text("not a folder")
    line = fails(capsys, "export", "tasks", "--out", "afile/tasks.csv")
    assert "'afile' is a file, not a folder" in line
    line = fails(capsys, "report", "--out", "afile/sub/audit.html")
    assert "afile" in line
    Path("adir.csv").mkdir()
    assert "is a folder" in fails(capsys, "export", "tasks", "--out", "adir.csv")
    assert site.request_counts() == {}


def test_a_missing_plan_fails_before_any_request(site, capsys):
    line = fails(capsys, "correct", "missing.csv", "--journal", "j.jsonl")
    assert "'missing.csv' does not exist" in line
    Path("plans").mkdir()
    assert "is a folder" in fails(capsys, "correct", "plans")
    assert site.request_counts() == {}
    assert not Path("j.jsonl").exists()


def test_demo_refuses_a_file_as_its_output_folder(capsys):
    Path("demo-output").write_text("x")
    assert "is a file" in fails(capsys, "demo", "--out", "demo-output")
    assert "--work-orders" in fails(capsys, "demo", "--work-orders", "-5")


# --------------------------------------------------------------------------------------------
# simulate: nonsense settings are refused before generating or serving anything
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--fault-rate", "2"], "--fault-rate"),
        (["--fault-rate", "-0.1"], "--fault-rate"),
        (["--fault-rate", "nan"], "--fault-rate"),
        (["--fault-rate", "inf"], "--fault-rate"),
        (["--fault-rate", "often"], "--fault-rate"),
        (["--throttle-rate", "1.5"], "--throttle-rate"),
        (["--slow-body-rate", "2"], "--slow-body-rate"),
        (["--slow-body-bps", "0"], "--slow-body-bps"),
        (["--review-rate", "-1"], "--review-rate"),
        (["--work-orders", "-5"], "--work-orders"),
        (["--work-orders", "2.5"], "--work-orders"),
        (["--work-orders", "1000000000"], "--work-orders"),
        (["--latency", "-1"], "--latency"),
        (["--jitter", "nan"], "--jitter"),
        (["--throttle-rps", "-3"], "--throttle-rps"),
        (["--retry-after", "-1"], "--retry-after"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--auth-status", "500"], "--auth-status"),
        (["--drift", "-2"], "--drift"),
        (["--start", "soon"], "--start"),
        (["--start", "2026-06-01", "--end", "2026-01-01"], "must be earlier than"),
        (["--app", "no-such-app"], "fiber-connection"),
        (["--api-key", "two words"], "--api-key"),
        (["--api-key", ""], "--api-key"),
        (["--next-scheme", "ftp"], "--next-scheme"),
        (["--keyfile", "key.pem"], "--keyfile needs --certfile"),
        (["--certfile", "missing.pem"], "is not a file"),
        (["--certfile", "/etc/passwd", "--keyfile", "/etc/passwd"], "PEM certificate"),
        (["--start", "0001-01-01T00:00:00+05:00"], "--start"),  # before the first UTC date
        (["--end", "9999-12-31T23:59:59-05:00"], "--end"),  # after the last one
        (["--host", ""], "--host"),  # would listen on every interface
        (["--host", " "], "--host"),
    ],
)
def test_simulate_refuses_nonsense_in_one_line(capsys, argv, says):
    line = fails(capsys, "simulate", "--port", "0", *argv)
    assert says in line


def test_simulate_on_a_busy_port_says_so(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["simulate", "--port", str(port), "--work-orders", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"{PROG}: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


# --------------------------------------------------------------------------------------------
# Where the data comes from: bad settings, an unreachable server, a wrong key
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DFS_BASE_URL": "not a url"}, "is not an http(s) URL"),
        ({"DFS_BASE_URL": "ftp://example.com/v0.2/"}, "is not an http(s) URL"),
        ({"DFS_BASE_URL": "http://api.example.com/v0.2/"}, "refusing plain http://"),
        ({"DFS_SITE_ID": "not-a-site"}, "is not a site id"),
        ({"DFS_SITE_ID": "000f0174-bdf0-47b3-bb3e", "DFS_REGION": "mars"}, "region"),
    ],
)
def test_bad_site_settings_fail_in_one_line(capsys, monkeypatch, env, says):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DFS_API_KEY", "some-key")
    line = fails(capsys, "export", "tasks", "--out", "tasks.csv")
    assert says in line
    assert not Path("tasks.csv").exists()


def test_an_unreachable_server_fails_in_one_line(capsys, monkeypatch):
    monkeypatch.setenv("DFS_BASE_URL", f"http://127.0.0.1:{free_port()}/v0.2/")
    monkeypatch.setenv("DFS_API_KEY", "some-key")
    monkeypatch.setenv("DFS_CACHE", "none")
    line = fails(capsys, "export", "work-orders", "--out", "wo.csv", status=1)
    assert "127.0.0.1" in line
    assert not Path("wo.csv").exists()


def test_a_wrong_key_fails_in_one_line(site, capsys, monkeypatch):
    monkeypatch.setenv("DFS_API_KEY", "wrong-key")
    line = fails(capsys, "export", "task-groups", "--out", "tg.csv", status=1)
    assert "401" in line
    assert "wrong-key" not in line
    assert not Path("tg.csv").exists()


def test_correct_without_a_site_fails_in_one_line(capsys):
    Path("plan.csv").write_text("work_order_id,task_name,corrected_value\nx,y,true\n")
    line = fails(capsys, "correct", "plan.csv")
    assert "DFS_BASE_URL" in line and "DFS_API_KEY" in line
    assert "simulator" in line  # corrections never go to one


def test_correct_without_a_key_fails_before_any_request(site, capsys, monkeypatch):
    monkeypatch.delenv("DFS_API_KEY")
    Path("plan.csv").write_text("work_order_id,task_name,corrected_value\nx,y,true\n")
    line = fails(capsys, "correct", "plan.csv", "--journal", "j.jsonl")
    assert "DFS_API_KEY" in line and "DFS_BASE_URL (or" not in line
    assert site.request_counts() == {}
    assert not Path("j.jsonl").exists()


# --------------------------------------------------------------------------------------------
# --debug
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_and_still_the_line(capsys, monkeypatch, where):
    monkeypatch.setenv("DFS_BASE_URL", "ftp://example.com/")
    args = ["export", "tasks", "--out", "tasks.csv"]
    argv = ["--debug", *args] if where == "before" else [*args, "--debug"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "ConfigurationError" in err
    assert err.strip().splitlines()[-1].startswith(f"{PROG}: error: base_url 'ftp://example.com/'")


def test_every_kind_of_failure_is_described_in_one_line():
    """What main() prints after ``error:`` for the toolkit's errors, OS errors and the rest."""
    from dfs_analytics.errors import NotFoundError, TransportError

    api = NotFoundError(method="GET", path="/v0.2/work-orders/x/", status=404, detail="Not\nfound.")
    assert describe(api).startswith("GET /v0.2/work-orders/x/ -> 404: Not found.")
    assert describe(TransportError("no answer\nfrom host")) == "no answer from host"
    missing = FileNotFoundError(2, "No such file or directory", "plan.csv")
    assert describe(missing) == "No such file or directory: plan.csv"
    assert describe(RuntimeError("something\n broke")) == "RuntimeError: something broke"
    assert describe(KeyError("x")) == "KeyError: 'x'"
    assert "\n" not in describe(ValueError("a\nb"))
