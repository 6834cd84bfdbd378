"""Notifications: a toast and the bell on a job's end, and `notify-send` when a desktop session exists."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from tui.ui.app import HailuoApp
from tui.core.catalog import VideoRequest
from tui.core.config import Settings, load_settings
from tui.ui.notify import DesktopNotifier

from helpers import app_settings, toasts, until

KEY = "sk-notify-test-key-0123456789"


@pytest.fixture
def fake_notify_send(tmp_path, monkeypatch) -> Path:
    """A notify-send on PATH that records its argument list and whether it saw the key."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "notify-send.log"
    script = bin_dir / "notify-send"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a', encoding='utf-8') as fh:\n"
        "    fh.write(json.dumps({'argv': sys.argv[1:], 'key_in_env': 'GPTPROTO_API_KEY' in os.environ}) + '\\n')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for name in ("SSH_TTY", "SSH_CONNECTION", "TMUX"):  # this machine's own desktop, not a remote session
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GPTPROTO_API_KEY", KEY)
    return log


def _calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _wait_for_calls(log: Path, count: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(_calls(log)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return _calls(log)


def _settings(tmp_path, base_url, **changes) -> Settings:
    """The shared dashboard settings (helpers.app_settings), with the bell on."""
    return app_settings(tmp_path, base_url, KEY, **{"bell": True, **changes})


async def test_completion_and_failure_notify_by_toast_bell_and_desktop(tmp_path, make_simulator, fake_notify_send,
                                                                       monkeypatch):
    """A job that runs alone is announced as itself; jobs that run together, once when the last one ends."""
    # The simulator's clock moves only when told, so "two together" are together on any machine.
    now = [time.time()]
    simulator = make_simulator(job_seconds=5, clock=lambda: now[0])
    monkeypatch.chdir(tmp_path)  # where a shell, had one run the text, would have left its files
    hostile = f"{simulator.faults.fail_later_word} $(touch pwned) `touch pwned2` <b>big</b> & co"
    app = HailuoApp(_settings(tmp_path, simulator.base_url))
    bells: list[float] = []
    monkeypatch.setattr(app, "bell", lambda: bells.append(time.monotonic()))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        ok = await app.service.submit(VideoRequest(prompt="a heron over a misty lake"))
        now[0] += 10
        await until(lambda: ok.is_success and len(bells) == 1, pilot=pilot)
        bad = await app.service.submit(VideoRequest(prompt=hostile))
        now[0] += 10
        await until(lambda: bad.is_finished and len(bells) == 2, pilot=pilot)
        raised = toasts(app)
        assert any(f"{ok.short_id} completed" in t for t in raised)
        assert any(f"{bad.short_id} failed" in t for t in raised)
        # Two together: no toast for the one that completed, one "all done" for both, one bell.
        pair = [await app.service.submit(VideoRequest(prompt=f"together {i}")) for i in range(2)]
        now[0] += 10
        await until(lambda: all(job.is_finished for job in pair) and len(bells) == 3, pilot=pilot)
        raised = toasts(app)
        assert not any(f"{pair[0].short_id} completed" in t for t in raised)
        assert [t for t in raised if t.startswith("2 done")] and "2 done · 2 completed · 0 failed" in raised[-1]
    calls = _wait_for_calls(fake_notify_send, 3)
    by_title = {c["argv"][c["argv"].index("--") + 1]: c for c in calls}
    assert len(calls) == 3 and by_title["hailuo: all done"]["argv"][-1].startswith("2 done · 2 completed · 0 failed")
    done = by_title[f"Video ready: {ok.short_id}"]
    assert done["argv"][-1] == "a heron over a misty lake"
    assert "--app-name=hailuo-tui" in done["argv"] and "--urgency=normal" in done["argv"]
    failed = by_title[f"Job failed: {bad.short_id}"]
    assert "--urgency=critical" in failed["argv"]
    # The text went through as one literal argument: no shell ran it, and the body's markup characters are inert.
    assert "$(touch pwned) `touch pwned2`" in failed["argv"][-1]
    assert "&lt;b&gt;big&lt;/b&gt; &amp; co" in failed["argv"][-1]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert not any(c["key_in_env"] for c in calls)
    assert all(KEY not in " ".join(c["argv"]) for c in calls)


async def test_config_switch_turns_desktop_notifications_off(tmp_path, make_simulator, fake_notify_send):
    (tmp_path / "config.toml").write_text("desktop_notifications = false\n")
    assert load_settings().desktop_notifications is False
    simulator = make_simulator(job_seconds=0.2)
    app = HailuoApp(_settings(tmp_path, simulator.base_url, desktop_notifications=False))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        job = await app.service.submit(VideoRequest(prompt="a quiet one"))
        await until(lambda: job.is_success, pilot=pilot)
        await until(lambda: any("completed" in t for t in toasts(app)), pilot=pilot)
    time.sleep(0.3)
    assert _calls(fake_notify_send) == []


def test_no_desktop_session_or_no_notify_send_means_no_notification(tmp_path):
    sent: list[list[str]] = []

    def run(argv, env):
        sent.append(list(argv))

    found = lambda name: f"/usr/bin/{name}"  # noqa: E731
    assert not DesktopNotifier(env={}, which=found, run=run).notify("t", "b")
    assert not DesktopNotifier(env={"DISPLAY": ":0"}, which=lambda name: None, run=run).notify("t", "b")
    assert not DesktopNotifier(enabled=False, env={"DISPLAY": ":0"}, which=found, run=run).notify("t", "b")
    notifier = DesktopNotifier(env={"WAYLAND_DISPLAY": "wayland-0"}, which=found, run=run)
    assert notifier.notify("-rf title\nwith a break\x1b[31m", "body\x07")
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [["/usr/bin/notify-send", "--app-name=hailuo-tui", "--urgency=normal", "--",
                     "-rf title with a break", "body"]]


def test_a_hanging_notify_send_does_not_hold_the_caller(tmp_path):
    started: list[float] = []

    def slow(argv, env):
        started.append(time.monotonic())
        time.sleep(2)

    notifier = DesktopNotifier(env={"DISPLAY": ":0"}, which=lambda name: "/usr/bin/notify-send", run=slow)
    before = time.monotonic()
    assert notifier.notify("title", "body")
    assert time.monotonic() - before < 0.5
