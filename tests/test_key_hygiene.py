"""The key is money: it is read from GPTPROTO_API_KEY only, sent only to the configured API
host, and written nowhere else.

One full session (the dashboard driven by Pilot, then every CLI command, in-process and as real
processes) runs with a distinctive key; afterwards every file under the session's directories
and everything it printed, drew or copied is searched for the key. The simulator records which
host and path received an Authorization header.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui.cli import main as cli
from tui.core.config import ConfigError, Settings, load_settings

from helpers import FAST_POLLING, copy_from_the_menu, submit_from_the_composer, toast_titles, toasts, until

KEY = "sk-hygiene-FAKE-not-a-real-key-do-not-leak-000"
#: Any long piece of the key is a leak too (a cut or partly masked key).
PIECES = [KEY, KEY[3:], KEY[11:27], KEY[-16:]]


def leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [piece for piece in PIECES if piece.encode() in data]


def session_env(root: Path, base_url: str) -> dict[str, str]:
    """Everything the program could write to points under `root`."""
    home = root / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GPTPROTO_", "HAILUO_TUI_", "XDG_")) and k != "HOME"}
    env.update({
        "HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_DOWNLOAD_DIR": str(home / "Downloads"), "GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": base_url,
    })
    return env




async def test_a_full_session_leaves_the_key_nowhere_and_sends_it_only_to_the_api_host(
        tmp_path, make_simulator, monkeypatch):
    from textual.widgets import Static

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator(job_seconds=3, require_key=KEY)
    root = tmp_path / "session"
    env = session_env(root, sim.base_url)
    for name in list(os.environ):
        if name.startswith(("GPTPROTO_", "HAILUO_TUI_", "XDG_")) or name == "HOME":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (root / "cwd").mkdir(parents=True)
    monkeypatch.chdir(root / "cwd")
    seen: list[str] = []  # everything printed, drawn, copied or said

    # -- the dashboard ----------------------------------------------------------------------------
    settings = load_settings().with_changes(**FAST_POLLING)
    assert settings.api_key == KEY and KEY not in repr(settings)
    app = HailuoApp(settings)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a heron over a misty lake")
        # A server that echoes the key in an error: it is scrubbed before anyone sees it or it is saved.
        sim.faults.update({"canned": 2, "canned_status": 500,
                           "canned_body": json.dumps({"error": {"message": f"bad key {KEY}"}})})
        await until(lambda: job.poll_errors > 0, pilot=pilot)
        assert job.last_poll_error == "server error (500): bad key ***"
        await asyncio.to_thread(app.service.store.flush)
        seen += [str(app.query_one(StatusLine).render()), str(app.query_one("#detail-body", Static).render())]
        # ...and inside an answer's data, which is kept in the history.
        echo = {"id": job.server_id, "status": "processing", "error": f"echoed {KEY}", "note": KEY}
        sim.faults.update({"canned": 1, "canned_status": 200, "canned_body": json.dumps({"data": echo})})
        await until(lambda: job.error == "echoed ***", pilot=pilot)
        await asyncio.to_thread(app.service.store.flush)
        seen += [str(app.query_one("#detail-body", Static).render()), json.dumps(job.raw)]
        sim.job_seconds = 0.5  # from here on jobs may finish quickly
        await until(lambda: job.is_success, pilot=pilot)
        app.query_one(JobTable).focus()
        await pilot.press("d")  # download the output: the key must not go with it
        await until(lambda: "Downloaded" in toast_titles(app), pilot=pilot)
        copied = {}
        for choice in ("curl", "request", "output", "id"):
            copied[choice] = await copy_from_the_menu(app, pilot, choice)
        seen += copied.values()
        assert "$GPTPROTO_API_KEY" in copied["curl"]  # the curl command names the variable, never the value
        await pilot.press("v")  # the raw answer
        await pilot.pause()
        seen += [str(app.query_one(StatusLine).render()), str(app.query_one("#detail-body", Static).render()),
                 str(app.query_one("#raw-json", Static).render())]
        seen += toasts(app)
        (root / "screenshots").mkdir()
        app.save_screenshot(filename="dashboard.svg", path=str(root / "screenshots"))
        await pilot.press("q")

    # -- the command line, in this process and as real processes --------------------------------------
    runner = CliRunner()

    def invoke(args: list[str]):
        # The CLI runs its own event loop: beside this test's, in a thread.
        return asyncio.to_thread(runner.invoke, cli.main, args, env=env, catch_exceptions=False)

    exports = root / "exports"
    exports.mkdir()
    for args in (["list"], ["list", "--json"], ["show", job.server_id], ["show", job.server_id, "--json"],
                 ["export", "--format", "csv", "-o", str(exports / "jobs.csv")],
                 ["export", "--format", "json", "-o", str(exports / "jobs.json")],
                 ["export", "--format", "csv"], ["locate"], ["locate", "--json"], ["attach", job.server_id],
                 ["download", job.server_id, "--dir", str(root / "downloads-cli")],
                 ["submit", "--prompt", "an echo of the key", "--base-url", "http://127.0.0.1:1"]):
        result = await invoke(args)
        seen += [result.stdout, result.stderr]
    sim.faults.update({"canned": 1, "canned_status": 401,
                       "canned_body": json.dumps({"error": {"message": f"key {KEY} revoked"}})})
    refused = await invoke(["submit", "--prompt", "refused"])
    assert refused.exit_code == 3
    seen += [refused.stdout, refused.stderr]

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, env=env,
                              cwd=root / "cwd", timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    waited = await asyncio.to_thread(run, "submit", "--prompt", "a fox in fresh snow", "--wait", "--json")
    assert waited.returncode == 0, waited.stderr
    pending = await asyncio.to_thread(run, "submit", "--prompt", "a boat in the rain")
    watched = await asyncio.to_thread(run, "watch", "--json")
    seen += [p.stdout + p.stderr for p in (waited, pending, watched)]

    # -- nothing anywhere holds the key --------------------------------------------------------------
    written = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "history.json.journal" for p in written)
    assert any(p.suffix == ".svg" for p in written) and (exports / "jobs.csv").exists()
    # Saved by the dashboard and by the CLI; the preview's copy of the clip sits in the cache (scanned too).
    assert len([p for p in written if p.suffix == ".mp4" and ".cache" not in p.parts]) == 2
    for path in written:
        assert not leaks(path.read_bytes()), path
    for text in seen:
        assert not leaks(text), text
    # The key went to the API host only, and only in the Authorization header.
    api_host = sim.base_url.removeprefix("http://")
    assert sim.authorized() and {r.host for r in sim.authorized()} == {api_host}
    assert [r for r in sim.requests if r.path.startswith("/files/")]
    for record in sim.requests:
        assert not leaks(record.path + record.body)
        assert not leaks(json.dumps({k: v for k, v in record.headers.items() if k.lower() != "authorization"}))
        if record.path.startswith("/files/"):
            assert record.header("Authorization") is None  # output URLs never get it


async def test_a_redirect_to_another_host_never_carries_the_key(make_simulator, tmp_path):
    from tui.core.catalog import VideoRequest
    from tui.core.jobs import JobService

    sim = make_simulator(job_seconds=0.4, require_key=KEY)
    other = make_simulator(host="127.0.0.2")  # another host, listening and recording
    settings = Settings(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json", **FAST_POLLING)
    service = JobService.open(settings)
    try:
        job = await service.submit(VideoRequest(prompt="a redirected fox"))
        # (A redirect to "localhost" on the same port is a row of the fault matrix.)
        for n, location in enumerate((other.base_url + "/api/v3/results/{id}", "//127.0.0.2:1/x")):
            sim.faults.redirect_result_to = location
            before = job.poll_errors
            if n == 0:
                await service.start()
            else:
                service.refresh(job.local_id)
            deadline = time.monotonic() + 10
            while job.poll_errors <= before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert "redirected to another host" in (job.last_poll_error or "")
        sim.faults.redirect_result_to = None
        (job,) = await asyncio.wait_for(service.wait([job.local_id]), 10)
    finally:
        await service.close()
    assert job.status == "completed"
    assert other.requests == []  # not followed at all, so the other host never even got asked
    assert {r.host for r in sim.authorized()} == {sim.base_url.removeprefix("http://")}


# -- a key that is missing, empty or malformed -----------------------------------------------------

BAD_KEYS = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "newline inside": "sk-abc\ndef0123456789",
    "space inside": "sk-abc def0123456789",
    "non-ASCII": "sk-ключ0123456789abcdef",
    "with Bearer": "Bearer sk-abc0123456789",
}


COMMANDS = {"submit": ["submit", "--prompt", "a fox"], "watch": ["watch"], "attach": ["attach", "pred-1"],
            "dashboard": []}
#: Without a key the dashboard opens, read-only, and says how to set one (the test after this).
CASES = [(name, command) for name in BAD_KEYS for command in COMMANDS
         if not (command == "dashboard" and not (BAD_KEYS[name] or "").strip())]


@pytest.mark.parametrize("name, command", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_a_bad_key_is_one_clear_line_never_a_traceback(name, command, tmp_path, monkeypatch):
    from tui.core.records import Job
    from tui.core.store import HistoryStore

    key = BAD_KEYS[name]
    db = tmp_path / "h.json"
    with HistoryStore.open(db) as store:  # something to watch
        store.put(Job(local_id="a1", request={"prompt": "x"}, submitted_at=1.0, server_id="pred-1",
                      status="processing"))
    started = []
    monkeypatch.setattr("tui.ui.app.run_app", lambda *a, **k: started.append(a) or 0)
    env = {"GPTPROTO_API_KEY": key} if key is not None else {}
    result = CliRunner().invoke(cli.main, [*COMMANDS[command], "--db", str(db)], env=env, catch_exceptions=False)
    assert result.exit_code == 3, (result.exit_code, result.output)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "GPTPROTO_API_KEY" in result.stderr
    if key and key.strip():
        assert key not in result.output and key.strip()[3:] not in result.output
    assert started == []  # the dashboard does not start on a key it cannot use


@pytest.mark.parametrize("key", ["", "   "], ids=["empty", "blank"])
async def test_without_a_usable_key_the_dashboard_opens_read_only_and_says_how(key, tmp_path, make_simulator):
    from textual.widgets import Button

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator()
    settings = load_settings(env={"GPTPROTO_API_KEY": key, "HAILUO_TUI_DATA_DIR": str(tmp_path),
                                  "HAILUO_TUI_CONFIG": str(tmp_path / "config.toml")}, base_url=sim.base_url)
    assert settings.api_key is None
    app = HailuoApp(settings)
    async with app.run_test(size=(120, 30)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await pilot.pause()
        assert "no key" in str(app.query_one(StatusLine).render())
        assert app.query_one("#submit", Button).disabled
        assert any("Set GPTPROTO_API_KEY" in t for t in toasts(app))
    assert sim.requests == []


def test_settings_and_cli_state_never_show_the_key():
    from tui.cli.main import State

    assert KEY not in repr(Settings(api_key=KEY)) and KEY not in str(Settings(api_key=KEY))
    assert KEY not in repr(State(secret=KEY))
    with pytest.raises(ConfigError) as info:
        load_settings(env={"GPTPROTO_API_KEY": KEY + "\n" + KEY})
    assert KEY not in str(info.value)
