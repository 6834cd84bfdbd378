"""Read-only mode (`--read-only`): watch and copy, never submit, attach or forget — in the CLI and the dashboard."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from click.testing import CliRunner
from textual.widgets import Static

from tui.cli import main as cli
from tui.ui.app import HailuoApp
from tui.core.config import Settings
from tui.simulator.demo import write_history
from tui.core.records import Job
from tui.core.store import HistoryStore
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.status_line import StatusLine

from helpers import app_settings, copy_from_the_menu, make_job, started, toasts

KEY = "sk-readonly-test-key-0123456789"


def _job(local_id: str, server_id: str, status: str, prompt: str) -> Job:
    """Submitted a minute ago; a completed one has its output."""
    return make_job(local_id, server_id=server_id, status=status, prompt=prompt, submitted_at=time.time() - 60,
                    outputs=["https://cdn.example/fox.mp4"] if status == "completed" else [])




def _read(path: Path) -> list[Job]:
    store = HistoryStore.open(path, read_only=True)
    try:
        return store.all()
    finally:
        store.close()


def _files(directory: Path) -> dict[str, bytes]:
    """Every history file (snapshot, journal, lock) by name, with its bytes."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name.startswith("history.json")}


def _invoke(*args: str, env: dict[str, str]):
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def _post_count(simulator) -> int:
    return sum(1 for r in simulator.requests if r.method == "POST")


def _settings(tmp_path, base_url, **changes) -> Settings:
    """The shared dashboard settings (helpers.app_settings), read-only."""
    return app_settings(tmp_path, base_url, KEY, **{"read_only": True, **changes})


def test_cli_submit_attach_and_forget_are_refused_with_exit_2(tmp_path, simulator):
    db = tmp_path / "history.json"
    write_history(db, [_job("aaaa00000001", "pred-done-1", "completed", "a red fox in snow")])
    before = _files(tmp_path)
    env = {"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url}
    sid = simulator.seed_job(status="completed")

    for args in (("submit", "--prompt", "a heron over a lake"), ("attach", sid), ("forget", "pred-done-1", "--yes")):
        result = _invoke("--read-only", "--db", str(db), *args, env=env)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: {args[0]} is refused in read-only mode")
        assert "--read-only" in result.stderr and KEY not in result.stderr
    assert _post_count(simulator) == 0
    assert not any(sid in r.path for r in simulator.requests)  # attach did not even look the id up
    assert _files(tmp_path) == before
    assert [j.local_id for j in _read(db)] == ["aaaa00000001"]


def test_cli_read_commands_and_watch_work_without_writing(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    sid = simulator.seed_job(status="processing", prompt="a paper boat")
    db = tmp_path / "history.json"
    write_history(db, [_job("bbbb00000002", sid, "processing", "a paper boat")])
    files = _files(tmp_path)
    (tmp_path / "config.toml").write_text("poll_base_interval = 0.05\npoll_max_interval = 0.2\n")
    env = {"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url}

    listed = _invoke("--read-only", "--db", str(db), "list", "--json", env=env)
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["id"] == sid
    watched = _invoke("--read-only", "--db", str(db), "watch", env=env)
    assert watched.exit_code == 0, watched.output
    assert f"{sid}  completed" in watched.stdout
    # Watching polled the job to its end, but the history file was never written.
    assert _read(db)[0].status == "processing"
    assert _files(tmp_path) == files


async def test_dashboard_refuses_forget_submit_and_clone_but_copies(tmp_path, simulator):
    write_history(tmp_path / "history.json", [_job("cccc00000003", "pred-done-3", "completed", "a red fox in snow")])
    app = HailuoApp(_settings(tmp_path, simulator.base_url))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        table = app.query_one(JobTable)
        assert table.total_count == 1
        assert "read-only" in str(app.query_one(StatusLine).render())

        await pilot.press("x")
        await pilot.pause()
        assert not app.screen.is_modal  # no confirmation: refused outright
        assert any("Forget is off" in t and "--read-only" in t for t in toasts(app))
        assert table.total_count == 1

        await pilot.press("c")
        await pilot.pause()
        assert any("Clone to submit is off" in t for t in toasts(app))
        assert app.query_one("#prompt").text == ""

        await pilot.press("ctrl+s")
        await pilot.pause()
        note = str(app.query_one("#submit-note", Static).render())
        assert "read-only mode" in note
        assert app.query_one("#submit").disabled

        app.query_one(JobTable).focus()
        assert await copy_from_the_menu(app, pilot, "output") == "https://cdn.example/fox.mp4"
    assert _post_count(simulator) == 0
    assert [j.local_id for j in _read(tmp_path / "history.json")] == ["cccc00000003"]


async def test_the_demo_can_be_read_only_too(tmp_path):
    from tui.ui.app import demo_app
    from tui.simulator.demo import DEMO_JOBS, demo_session

    settings = Settings(db_path=tmp_path / "demo-history.json", config_file=tmp_path / "config.toml",
                        download_dir=tmp_path / "downloads", demo=True, read_only=True)
    with demo_session(settings, job_seconds=30) as (demo_settings, seed):
        app = await asyncio.to_thread(demo_app, demo_settings, seed, read_only=True)
        async with app.run_test(size=(160, 45)) as pilot:
            await started(app, pilot)
            assert app.query_one(JobTable).total_count == len(DEMO_JOBS) + 1
            assert "demo · read-only" in str(app.query_one(StatusLine).render())
            await pilot.press("x")
            await pilot.pause()
            assert any("Forget is off" in t for t in toasts(app))
