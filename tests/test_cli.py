"""The headless CLI: every command, the JSON object, every exit code.

Fast cases run in-process through click's CliRunner against a temp history; the
end-to-end cases run `python -m tui` in a subprocess against the loopback simulator.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui.cli import main as cli
from tui.cli import common, render
from tui.core.records import Job

from helpers import make_job

KEY = "sk-testkey0123456789abcdef"
PUBLIC_FIELDS = {
    "id", "local_id", "model", "scene", "status", "outputs", "result_url", "error",
    "execution_time_ms", "inference_time_ms", "has_nsfw_contents", "created_at",
    "submitted_at", "finished_at", "poll_errors", "request",
}


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "history.json"


def invoke(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(cli.main, list(args), input=input, env=env, catch_exceptions=False)


def write_history(path: Path, jobs: list[Job]) -> None:
    from tui.core.store import HistoryStore

    store = HistoryStore.open(path)
    for job in jobs:
        store.put(job)
    store.close()


def read_history(path: Path) -> list[Job]:
    from tui.core.store import HistoryStore

    store = HistoryStore.open(path, read_only=True)
    try:
        return store.all()
    finally:
        store.close()


@pytest.fixture
def history(db) -> Path:
    write_history(db, [
        make_job("aaaa00000001", server_id="pred-done-1", status="completed", submitted_at=1_767_225_600.0,
                 outputs=["https://cdn.example/v1.mp4"], execution_time_ms=380841, inference_time_ms=380841,
                 has_nsfw_contents=[False], created_at=1_767_225_601.0, finished_at=1_767_226_000.0),
        make_job("bbbb00000002", server_id="pred-fail-2", status="failed", submitted_at=1_767_225_700.0,
                 prompt="=HYPERLINK(\"http://evil\")", error="content \x1b[31mpolicy\x1b[0m violation\x07"),
        make_job("cccc00000003", server_id="pred-run-3", status="processing", submitted_at=1_767_225_800.0,
                 prompt="line one\nline two\twith tab"),
    ])
    return db


# -- start-up cost ------------------------------------------------------------------------------


def test_help_and_list_import_neither_textual_nor_httpx(tmp_path):
    code = (
        "import sys\n"
        "from tui.cli.main import main\n"
        f"for args in (['--help'], ['list', '--db', {str(tmp_path / 'h.json')!r}]):\n"
        "    try:\n"
        "        main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('textual', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HAILUO_TUI_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("submit", "attach", "list", "show", "forget", "watch", "export", "locate"):
        assert f"  {name}" in result.stdout


# -- settings and the key ---------------------------------------------------------------------------


def test_locate_prints_paths_and_base_url_but_never_the_key(tmp_path):
    result = invoke("locate", "--base-url", "http://127.0.0.1:9", "--db", str(tmp_path / "x.json"),
                    env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 0
    assert str(tmp_path / "config.toml") in result.stdout
    assert str(tmp_path / "x.json") in result.stdout
    assert str(tmp_path / "data") in result.stdout
    assert "http://127.0.0.1:9" in result.stdout
    assert "set" in result.stdout
    assert KEY not in result.output and KEY[-4:] not in result.output


def test_locate_json_and_group_options_apply_to_the_command(tmp_path):
    result = invoke("--db", str(tmp_path / "g.json"), "--base-url", "http://127.0.0.1:7", "locate", "--json")
    info = json.loads(result.stdout)
    assert info["history_file"] == str(tmp_path / "g.json")
    assert info["base_url"] == "http://127.0.0.1:7"
    assert info["api_key"].endswith("not set")
    # The command's own flag wins over the group's.
    result = invoke("--db", str(tmp_path / "g.json"), "locate", "--json", "--db", str(tmp_path / "c.json"))
    assert json.loads(result.stdout)["history_file"] == str(tmp_path / "c.json")


def test_malformed_key_is_one_line_exit_3_and_not_echoed(db):
    bad = "sk-abc def"
    result = invoke("submit", "--prompt", "a fox", "--db", str(db), env={"GPTPROTO_API_KEY": bad})
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "GPTPROTO_API_KEY" in result.stderr and bad not in result.output
    result = invoke("attach", "pred-1", "--db", str(db), env={"GPTPROTO_API_KEY": "Bearersk-x"})
    assert result.exit_code == 3 and "Bearer" in result.stderr


def test_missing_key_is_exit_3_before_anything_is_recorded(db):
    result = invoke("submit", "--prompt", "a fox", "--db", str(db))
    assert result.exit_code == 3
    assert "GPTPROTO_API_KEY" in result.stderr
    assert not db.exists()


def test_bad_config_file_is_one_line_exit_2(tmp_path, db):
    (tmp_path / "config.toml").write_text("base_url = [1, 2\n")
    result = invoke("list", "--db", str(db))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: config file") and result.stderr.count("\n") == 1
    (tmp_path / "config.toml").unlink()
    result = invoke("list", "--base-url", "ftp://nowhere")
    assert result.exit_code == 2 and "base URL" in result.stderr


def test_read_commands_ignore_a_malformed_key(history):
    result = invoke("list", "--db", str(history), env={"GPTPROTO_API_KEY": "bad key"})
    assert result.exit_code == 0 and "pred-done-1" in result.stdout


# -- submit: validation (no network needed) ------------------------------------------------------


def test_invalid_duration_is_exit_2_with_the_fields_message(db):
    result = invoke("submit", "--model", "hailuo-2.3-pro", "--prompt", "a fox", "--duration", "10",
                    "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2
    assert result.stderr == "error: duration: hailuo-2.3-pro at 1080P offers 6 s, not 10 s\n"
    assert not db.exists() or read_history(db) == []


def test_every_field_error_is_reported_one_per_line(tmp_path, db):
    result = invoke("submit", "--scene", "image-to-video", "--prompt", "  ", "--end-image", str(tmp_path / "none.png"),
                    "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: prompt: a prompt is required"
    assert any(line.startswith("error: image: image-to-video needs") for line in lines)
    assert any(line.startswith("error: end_image: no such file") for line in lines)


def test_small_image_is_rejected_with_the_measured_value(tmp_path, db):
    from PIL import Image

    small = tmp_path / "small.png"
    Image.new("RGB", (200, 400)).save(small)
    result = invoke("submit", "--image", str(small), "--prompt", "a fox", "--db", str(db),
                    env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2
    assert result.stderr == "error: image: short side is 200 px; it must be over 300 px\n"


def test_unknown_model_and_resolution_are_usage_errors():
    assert invoke("submit", "--model", "hailuo-9", "--prompt", "x").exit_code == 2
    assert invoke("submit", "--resolution", "4K", "--prompt", "x").exit_code == 2
    result = invoke("submit", "--model", "hailuo-2.3-standard", "--resolution", "1080P", "--prompt", "x",
                    env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2
    assert result.stderr == "error: resolution: hailuo-2.3-standard does not offer 1080P; choose 768P\n"


def test_prompt_dash_reads_stdin_and_is_validated(db):
    long_prompt = "x" * 5001
    result = invoke("submit", "--prompt", "-", "--db", str(db), input=long_prompt + "\n",
                    env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2
    assert "prompt is 5,001 characters" in result.stderr


# -- list / show ------------------------------------------------------------------------------------


def test_list_plain_lines_are_tab_separated_newest_first(history):
    result = invoke("list", "--db", str(history))
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["pred-run-3", "pred-fail-2", "pred-done-1"]
    assert all(len(r) == 6 for r in rows)
    assert rows[0][1:5] == ["processing", "hailuo-2.3-fast", "text-to-video", "2026-01-01T00:03:20Z"]
    assert rows[0][5] == "line one line two with tab"


def test_list_on_a_terminal_is_an_aligned_table(history, monkeypatch):
    monkeypatch.setattr(cli, "is_tty", lambda stream: True)
    result = invoke("list", "--db", str(history))
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "MODEL", "SCENE", "SUBMITTED", "PROMPT"]
    assert lines[1].index("processing") == lines[0].index("STATUS") == lines[3].index("completed")
    assert "\t" not in result.stdout


def test_list_status_filter_and_json(history):
    result = invoke("list", "--status", "FAILED,completed", "--json", "--db", str(history))
    jobs = json.loads(result.stdout)
    assert [j["id"] for j in jobs] == ["pred-fail-2", "pred-done-1"]
    assert all(set(j) >= PUBLIC_FIELDS for j in jobs)
    assert invoke("list", "--status", "expired", "--db", str(history)).stdout == ""


def test_json_job_object_schema(history):
    job = json.loads(invoke("show", "pred-done-1", "--json", "--db", str(history)).stdout)
    assert set(job) >= PUBLIC_FIELDS
    assert job["id"] == "pred-done-1" and job["local_id"] == "aaaa00000001"
    assert job["model"] == "hailuo-2.3-fast" and job["scene"] == "text-to-video"
    assert job["status"] == "completed"
    assert job["outputs"] == ["https://cdn.example/v1.mp4"]
    assert job["error"] is None
    assert job["execution_time_ms"] == 380841 and job["inference_time_ms"] == 380841
    assert job["has_nsfw_contents"] == [False]
    assert job["created_at"] == "2026-01-01T00:00:01Z"
    assert job["submitted_at"] == "2026-01-01T00:00:00Z"
    assert job["finished_at"] == "2026-01-01T00:06:40Z"
    assert job["request"]["prompt"] == "a red fox in snow" and job["request"]["duration"] == 6


def test_show_finds_by_server_id_local_id_and_unique_prefix(history):
    for ident in ("pred-fail-2", "bbbb00000002", "pred-f", "bbbb"):
        result = invoke("show", ident, "--db", str(history))
        assert result.exit_code == 0, ident
        assert "pred-fail-2" in result.stdout
    ambiguous = invoke("show", "pred-", "--db", str(history))
    assert ambiguous.exit_code == 2 and ambiguous.stderr.startswith("error: ")
    missing = invoke("show", "zzz", "--db", str(history))
    assert missing.exit_code == 2 and "zzz" in missing.stderr


def test_show_with_a_prefix_of_three_jobs_says_it_is_ambiguous_and_lists_them(history):
    """As a script meets it: a subprocess, one line on stderr naming every match, exit 2."""
    proc = run_cli("show", "pred-", base_url="http://127.0.0.1:9", db=history)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    line, = proc.stderr.splitlines()
    assert line.startswith("error: 'pred-' is ambiguous: 3 jobs match (")
    assert "no job matches" not in line
    # newest first
    assert line.index("pred-run-3") < line.index("pred-fail-2") < line.index("pred-done-1")
    missing = run_cli("show", "zzz", base_url="http://127.0.0.1:9", db=history)
    assert missing.returncode == 2 and "no job matches 'zzz'" in missing.stderr


def test_server_text_is_printed_without_escape_sequences(history):
    result = invoke("show", "pred-fail-2", "--db", str(history))
    assert "content policy violation" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    as_json = invoke("show", "pred-fail-2", "--json", "--db", str(history)).stdout
    assert "\x1b" not in as_json
    assert json.loads(as_json)["error"] == "content \x1b[31mpolicy\x1b[0m violation\x07"


def test_the_key_never_appears_even_if_the_server_echoes_it(db):
    write_history(db, [make_job("dddd00000004", server_id="pred-4", status="failed",
                                error=f"invalid key {KEY} for this account")])
    for args in (["show", "pred-4"], ["show", "pred-4", "--json"], ["list"], ["export", "--format", "csv"]):
        result = invoke(*args, "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
        assert result.exit_code == 0
        assert KEY not in result.output, args
        if args[0] != "list":
            assert "invalid key" in result.output


# -- forget ----------------------------------------------------------------------------------------


def test_forget_with_yes_removes_only_that_record(history):
    result = invoke("forget", "pred-fail-2", "--yes", "--db", str(history))
    assert result.exit_code == 0
    assert "stays on the server" in result.stdout and "attach pred-fail-2" in result.stdout
    assert [j.server_id for j in read_history(history)] == ["pred-run-3", "pred-done-1"]


def test_forget_asks_on_a_terminal(history, monkeypatch):
    monkeypatch.setattr(cli, "is_tty", lambda stream: True)
    kept = invoke("forget", "pred-done-1", "--db", str(history), input="n\n")
    assert kept.exit_code == 0 and "stays on the server" in kept.stderr
    assert len(read_history(history)) == 3
    gone = invoke("forget", "pred-done-1", "--db", str(history), input="y\n")
    assert gone.exit_code == 0
    assert "pred-done-1" not in [j.server_id for j in read_history(history)]


def test_forget_unknown_id_is_exit_2(history):
    assert invoke("forget", "nope", "--yes", "--db", str(history)).exit_code == 2


# -- export ----------------------------------------------------------------------------------------


def test_export_csv_defuses_formulas_and_strips_controls(history):
    result = invoke("export", "--format", "csv", "--db", str(history))
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    by_id = {r["id"]: r for r in rows}
    assert by_id["pred-fail-2"]["prompt"] == "'=HYPERLINK(\"http://evil\")"
    assert by_id["pred-fail-2"]["error"] == "content policy violation"
    assert by_id["pred-run-3"]["prompt"] == "line one line two with tab"
    assert by_id["pred-done-1"]["outputs"] == "https://cdn.example/v1.mp4"
    assert by_id["pred-done-1"]["execution_time_ms"] == "380841"
    for row in rows:
        for value in row.values():
            assert not any(ord(ch) < 32 for ch in value)
            assert not value.startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize("raw, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "' =1"), ("\r=1", "' =1"), ("  =1", "'  =1"), ("\x1b[2J=1", "'=1"), ("a\x1b[2Jb", "ab"),
    ("plain", "plain"), (None, ""), (5, "5"),
])
def test_csv_cell(raw, cell):
    assert render.csv_cell(raw) == cell


def test_export_json_to_a_file_atomically(history, tmp_path):
    target = tmp_path / "out" / "jobs.json"
    target.parent.mkdir()
    target.write_text("old")
    result = invoke("export", "--format", "json", "-o", str(target), "--db", str(history))
    assert result.exit_code == 0
    jobs = json.loads(target.read_text())
    assert [j["id"] for j in jobs] == ["pred-run-3", "pred-fail-2", "pred-done-1"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["jobs.json"]
    assert "3 jobs" in result.stderr


def test_export_to_an_unwritable_place_is_exit_2_and_leaves_nothing(history, tmp_path):
    result = invoke("export", "--format", "csv", "-o", str(tmp_path / "missing-dir" / "x.csv"), "--db", str(history))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


# -- the dashboard entry ----------------------------------------------------------------------------


def test_no_command_starts_the_dashboard_with_the_settings(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("tui.ui.app")
    fake.run_app = lambda settings, *, demo=False: calls.append((settings, demo)) or 0
    monkeypatch.setitem(sys.modules, "tui.ui.app", fake)
    result = invoke("--read-only", "--db", str(tmp_path / "h.json"), env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 0
    settings, demo = calls[-1]
    assert demo is False and settings.read_only and settings.api_key == KEY
    assert settings.db_path == tmp_path / "h.json"


def test_demo_uses_the_demo_history_and_no_key(monkeypatch, tmp_path):
    calls = []
    fake = types.ModuleType("tui.ui.app")
    fake.run_app = lambda settings, *, demo=False: calls.append((settings, demo)) or 0
    monkeypatch.setitem(sys.modules, "tui.ui.app", fake)
    result = invoke("--demo", env={"GPTPROTO_API_KEY": "malformed key"})
    assert result.exit_code == 0
    settings, demo = calls[-1]
    assert demo is True and settings.demo is True
    assert settings.api_key is None
    assert settings.db_path == tmp_path / "data" / "demo-history.json"


def test_dashboard_exit_code_is_passed_on(monkeypatch):
    fake = types.ModuleType("tui.ui.app")
    fake.run_app = lambda settings, *, demo=False: 3
    monkeypatch.setitem(sys.modules, "tui.ui.app", fake)
    assert invoke("--demo").exit_code == 3


# -- against the simulator: subprocess, as a script would run it --------------------------------------


def run_cli(*args: str, base_url: str, db: Path, key: str | None = KEY, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL", "HAILUO_TUI_DB")}
    if key is not None:
        env["GPTPROTO_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "tui", *args, "--base-url", base_url, "--db", str(db)],
                          capture_output=True, text=True, timeout=timeout, env=env, input=stdin)


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def set_faults(sim, **faults) -> None:
    for name, value in faults.items():
        setattr(sim.faults, name, value)


def posts(sim) -> list:
    return [r for r in sim.requests if r.method == "POST"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_submit_wait_goes_to_completed(make_simulator, db):
    sim = make_simulator(job_seconds=0.3, require_key=KEY)
    proc = run_cli("submit", "--prompt", "a red fox in snow", "--wait", "--json", base_url=sim.base_url, db=db)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)
    assert job["status"] == "completed" and job["outputs"] and job["error"] is None
    assert job["request"]["prompt"] == "a red fox in snow"
    assert job["created_at"].endswith("Z")
    assert len(posts(sim)) == 1
    assert posts(sim)[0].path == "/api/v3/minimax/hailuo-2.3-fast/text-to-video"
    # The history holds the finished job for later commands.
    stored = read_history(db)
    assert [(j.server_id, j.status) for j in stored] == [(job["id"], "completed")]


def test_submit_text_output_is_the_id_then_the_final_state(make_simulator, db):
    sim = make_simulator(job_seconds=0.2)
    proc = run_cli("submit", "--prompt", "a fox", "--wait", base_url=sim.base_url, db=db)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    server_id = lines[0]
    assert lines[1] == f"{server_id}\tcompleted"
    assert lines[2].startswith("  http")
    shown = invoke("show", server_id[:8], "--json", "--db", str(db))
    assert json.loads(shown.stdout)["status"] == "completed"


def test_submit_without_wait_prints_the_id_and_records_it(make_simulator, db):
    sim = make_simulator(job_seconds=30)
    proc = run_cli("submit", "--prompt", "-", "--no-prompt-expansion", base_url=sim.base_url, db=db,
                   stdin="a prompt from stdin\n")
    assert proc.returncode == 0, proc.stderr
    server_id = proc.stdout.strip()
    (job,) = read_history(db)
    assert job.server_id == server_id and job.is_pending
    assert job.request["prompt"] == "a prompt from stdin" and job.request["prompt_expansion"] is False


def test_refused_key_is_exit_3(make_simulator, db):
    sim = make_simulator(require_key="sk-the-right-key-000000")
    proc = run_cli("submit", "--prompt", "a fox", base_url=sim.base_url, db=db)
    assert_clean(proc)
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_dropped_connection_after_create_is_exit_5_and_not_resent(make_simulator, db):
    sim = make_simulator(job_seconds=0.2)
    set_faults(sim, drop_after_create=True)
    proc = run_cli("submit", "--prompt", "a fox", "--wait", base_url=sim.base_url, db=db)
    assert_clean(proc)
    assert proc.returncode == 5
    assert len(posts(sim)) == 1
    (job,) = read_history(db)
    assert job.status == "unknown"
    assert job.local_id in proc.stderr


def test_failed_job_is_exit_1_with_the_servers_error(make_simulator, db):
    sim = make_simulator(job_seconds=0.2)
    set_faults(sim, fail_rate=1.0)
    proc = run_cli("submit", "--prompt", "a fox", "--wait", base_url=sim.base_url, db=db)
    assert_clean(proc)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].endswith("\tfailed")
    assert lines[2].startswith("  error: ")


def test_server_errors_on_every_poll_are_exit_4(make_simulator, db):
    sim = make_simulator(job_seconds=0.2)
    set_faults(sim, get_error_rate=1.0, get_error_status=500)
    proc = run_cli("submit", "--prompt", "a fox", "--wait", "--max-poll-errors", "1", base_url=sim.base_url, db=db,
                   timeout=120)
    assert_clean(proc)
    assert proc.returncode == 4, proc.stderr
    assert "hailuo-tui watch" in proc.stderr
    (job,) = read_history(db)
    assert job.server_id and job.poll_errors >= 1


def test_unreachable_server_is_exit_4(db):
    proc = run_cli("submit", "--prompt", "a fox", base_url=f"http://127.0.0.1:{free_port()}", db=db, timeout=120)
    assert_clean(proc)
    assert proc.returncode == 4
    assert proc.stderr.startswith("error: ")


def test_invalid_duration_in_a_subprocess_is_exit_2_and_sends_nothing(make_simulator, db):
    sim = make_simulator()
    proc = run_cli("submit", "--model", "hailuo-02-pro", "--prompt", "a fox", "--duration", "10",
                   base_url=sim.base_url, db=db)
    assert proc.returncode == 2
    assert proc.stderr == "error: duration: hailuo-02-pro at 1080P offers 6 s, not 10 s\n"
    assert sim.requests == []


def test_attach_adds_a_known_job_and_waits_for_it(make_simulator, db):
    sim = make_simulator(job_seconds=0.2)
    done_id = sim.seed_job(status="completed")
    result = invoke("attach", done_id, "--wait", "--json", "--base-url", sim.base_url, "--db", str(db),
                    env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 0, result.stderr
    (job,) = json.loads(result.stdout)
    assert job["id"] == done_id and job["status"] == "completed"
    # Attaching again does not duplicate the record.
    again = invoke("attach", done_id, "--base-url", sim.base_url, "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
    assert again.exit_code == 0
    assert [j.server_id for j in read_history(db)] == [done_id]


def test_attach_rejects_something_that_is_not_an_id(db):
    result = invoke("attach", "../etc/passwd", "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 2


def test_watch_prints_each_transition_and_exit_status(make_simulator, db):
    sim = make_simulator(job_seconds=0.4)
    for prompt in ("first", "second"):
        proc = run_cli("submit", "--prompt", prompt, base_url=sim.base_url, db=db)
        assert proc.returncode == 0, proc.stderr
    ids = {j.server_id for j in read_history(db)}
    proc = run_cli("watch", "--exit-status", base_url=sim.base_url, db=db)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    finals = [line.split("  ") for line in proc.stdout.splitlines() if "  completed" in line]
    assert {parts[0] for parts in finals} == ids
    assert all(j.status == "completed" for j in read_history(db))
    # Nothing left: exits at once.
    again = run_cli("watch", "--exit-status", base_url=sim.base_url, db=db)
    assert again.returncode == 0 and again.stdout == ""


def test_watch_exit_status_is_1_when_a_job_fails(make_simulator, db):
    sim = make_simulator(job_seconds=0.3)
    assert run_cli("submit", "--prompt", "ok", base_url=sim.base_url, db=db).returncode == 0
    set_faults(sim, fail_rate=1.0)
    assert run_cli("submit", "--prompt", "bad", base_url=sim.base_url, db=db).returncode == 0
    proc = run_cli("watch", "--exit-status", base_url=sim.base_url, db=db)
    assert proc.returncode == 1, proc.stderr
    assert any(line.split("  ")[1] == "failed" for line in proc.stdout.splitlines())
    plain_watch = run_cli("watch", base_url=sim.base_url, db=db)
    assert plain_watch.returncode == 0


def test_watch_json_lines(make_simulator, db):
    sim = make_simulator(job_seconds=0.3)
    assert run_cli("submit", "--prompt", "ok", base_url=sim.base_url, db=db).returncode == 0
    proc = run_cli("watch", "--json", base_url=sim.base_url, db=db)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and all(e["event"] == "status" and set(e["job"]) >= PUBLIC_FIELDS for e in events)
    assert events[-1]["job"]["status"] == "completed"


def test_watch_on_a_terminal_keeps_one_status_line(make_simulator, db, monkeypatch):
    sim = make_simulator(job_seconds=0.3)
    assert run_cli("submit", "--prompt", "ok", base_url=sim.base_url, db=db).returncode == 0
    monkeypatch.setattr(common, "is_tty", lambda stream: True)
    result = invoke("watch", "--base-url", sim.base_url, "--db", str(db), env={"GPTPROTO_API_KEY": KEY})
    assert result.exit_code == 0, result.stderr
    assert "1/1 finished" in result.stderr and "\r\x1b[K" in result.stderr
    assert "completed" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_watch_exits_cleanly_with_history_saved(make_simulator, db, signum):
    # The simulator's clock moves only when told: the job is `processing` for as long as the
    # test needs, however slowly the watcher starts on a loaded machine.
    now = [time.time()]
    sim = make_simulator(job_seconds=40, clock=lambda: now[0])
    proc = run_cli("submit", "--prompt", "a long one", base_url=sim.base_url, db=db)
    assert proc.returncode == 0
    (submitted,) = read_history(db)
    assert submitted.status == "created"
    now[0] += 10  # past `created`, far from done
    env = {**os.environ, "GPTPROTO_API_KEY": KEY}
    watcher = subprocess.Popen([sys.executable, "-m", "tui", "watch", "--base-url", sim.base_url, "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Until the watcher has taken in `processing`, a change only it knows of: a second GET
        # is sent only once the first answer was read.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and sum(r.method == "GET" for r in sim.requests) < 2:
            time.sleep(0.05)
        watcher.send_signal(signum)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert "Traceback" not in err
    assert watcher.returncode == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in err
    (job,) = read_history(db)
    assert job.is_pending and job.status == "processing"  # what it learned was saved before leaving
