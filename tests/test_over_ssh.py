"""Over SSH: terminal notifications (and through tmux), the title, hooks, ETA and the schedule it
drives, the simulator's realistic durations, low-bandwidth mode."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from helpers import app_settings, make_job, until
from tui.core import terminal_seq as seq
from tui.core.catalog import VideoRequest
from tui.core.config import ConfigError, Settings, load_settings
from tui.core.eta import BUILT_IN_LABEL, EtaBook, EtaSchedule, Estimate, eta_text
from tui.core.hooks import HookRunner
from tui.core.poller import Poller
from tui.core.records import SUBMITTING, Job
from tui.core.session import SessionTally
from tui.simulator.server import REALISTIC_SPREAD
from tui.ui.notify import TerminalNotifier

KEY = "sk-over-ssh-test-key-0123456789"
ESC = "\x1b"
HOSTILE = "done\x1b]52;c;cHduZWQ=\x07 \x1b[2J\x07;x\x1b\\ \x9b31m\u202eevil\nline"


# -- escape sequences ---------------------------------------------------------------------------

def _assert_inert_inside(sequence: str, introducer: str) -> None:
    """Only the sequence's own ESC / BEL: nothing the hostile text carried survived inside it."""
    body = sequence[len(introducer):]
    body = body[:-1] if body.endswith(seq.BEL) else body[:-2]
    assert ESC not in body and "\a" not in body and "\x9b" not in body and "\u202e" not in body and "\n" not in body
    assert "cHduZWQ" not in body  # the clipboard write lost its payload too


def _settings(tmp_path, base_url, **changes) -> Settings:
    """The shared dashboard settings (helpers.app_settings), with hooks.log in the test's directory and no notify-send."""
    return app_settings(tmp_path, base_url, KEY, **{"state_dir": tmp_path / "state", "desktop_notifications": False, **changes})


def test_osc9_outside_and_inside_tmux_with_hostile_text() -> None:
    bare = seq.notification("osc9", "Video ready: sim0001", HOSTILE)
    assert bare.startswith(f"{ESC}]9;Video ready: sim0001: done") and bare.endswith(seq.BEL)
    _assert_inert_inside(bare, f"{ESC}]9;")
    assert seq.for_terminal(bare, {}) == bare
    wrapped = seq.for_terminal(bare, {"TMUX": "/tmp/tmux-1000/default,123,0"})
    assert wrapped == f"{ESC}Ptmux;{ESC}{ESC}{bare[1:]}{ESC}\\"
    # Every ESC inside the passthrough is doubled: the only single ones open and close it.
    inner = wrapped[len(f"{ESC}Ptmux;"):-2]
    assert inner.replace(ESC + ESC, "") .count(ESC) == 0


def test_osc777_keeps_its_fields_apart_with_hostile_text() -> None:
    sequence = seq.notification("osc777", "Job failed; sim2", HOSTILE)
    assert sequence.startswith(f"{ESC}]777;notify;Job failed, sim2;done")
    _assert_inert_inside(sequence, f"{ESC}]777;")
    assert sequence[len(f"{ESC}]777;"):-1].count(";") == 2  # notify ; title ; body, nothing more
    wrapped = seq.for_terminal(sequence, {"TMUX": "x"})
    assert wrapped.startswith(f"{ESC}Ptmux;{ESC}{ESC}]777;notify;") and wrapped.endswith(f"{seq.BEL}{ESC}\\")


def test_osc99_for_kitty_title_then_body_with_hostile_text() -> None:
    sequence = seq.notification("osc99", "Video ready", HOSTILE)
    title, body = sequence.split(seq.ST)[:2]
    assert title == f"{ESC}]99;i=hailuo:d=0:p=title;Video ready"
    assert body.startswith(f"{ESC}]99;i=hailuo:d=1:p=body;done")
    assert ESC not in body[1:] and "\a" not in body and "cHduZWQ" not in body
    wrapped = seq.for_terminal(sequence, {"TMUX": "x"})
    assert wrapped.count(f"{ESC}Ptmux;") == 1 and wrapped.endswith(f"{ESC}{ESC}\\{ESC}\\")


def test_title_and_progress_sequences() -> None:
    assert seq.state_title(3, 2, 1) == "hailuo · 3▶ 2✓ 1✗"
    assert seq.state_title(0, 0, 0) == "hailuo"
    assert seq.title_sequence("hailuo · \x1b]0;x\x07 1▶") == f"{ESC}]2;hailuo · 1▶{seq.BEL}"
    assert seq.progress_sequence(40) == f"{ESC}]9;4;1;40{seq.BEL}"
    assert seq.progress_sequence(None) == f"{ESC}]9;4;0;0{seq.BEL}"


def _unwrap_tmux(text: str) -> str:
    """What tmux forwards to the outer terminal from one passthrough."""
    assert text.startswith(f"{ESC}Ptmux;") and text.endswith(seq.ST)
    inner = text[len(f"{ESC}Ptmux;"):-len(seq.ST)]
    assert inner.replace(ESC + ESC, "").count(ESC) == 0  # no lone ESC could end the passthrough early
    return inner.replace(ESC + ESC, ESC)


@pytest.mark.parametrize("kind, introducer", [("osc9", f"{ESC}]9;"), ("osc777", f"{ESC}]777;"), ("osc99", f"{ESC}]99;")])
@pytest.mark.parametrize("inside_tmux", [False, True])
def test_each_kind_writes_one_inert_notification_in_and_out_of_tmux(kind, introducer, inside_tmux) -> None:
    """What the notifier writes for a job whose prompt and error are hostile: one notification of
    the terminal's kind (tmux: in one passthrough the outer terminal receives unchanged), in
    which nothing of the hostile text can act."""
    written: list[str] = []
    env = {"TMUX": "/tmp/tmux-1000/default,1,0"} if inside_tmux else {}
    notifier = TerminalNotifier(kind, written.append, env=env)
    assert notifier.notify(f"Job failed: {HOSTILE}", HOSTILE) == kind and len(written) == 1
    sent = _unwrap_tmux(written[0]) if inside_tmux else written[0]
    assert sent == seq.notification(kind, f"Job failed: {HOSTILE}", HOSTILE)
    for part in (sent.split(seq.ST)[:-1] if kind == "osc99" else [sent]):  # kitty: title, then body
        part = part + seq.ST if kind == "osc99" else part
        _assert_inert_inside(part, introducer)


@pytest.mark.parametrize("inside_tmux", [False, True])
def test_bell_and_off_and_a_hostile_title(inside_tmux) -> None:
    env = {"TMUX": "/tmp/tmux-1000/default,1,0"} if inside_tmux else {}
    written: list[str] = []
    assert TerminalNotifier("bell", written.append, env=env).notify("t", HOSTILE) == "bell" and written == [seq.BEL]
    written.clear()
    assert TerminalNotifier("off", written.append, env=env).notify("t", HOSTILE) is None and written == []
    # The title is tmux's own business (never passed through); hostile text cannot leave it.
    notifier = TerminalNotifier("off", written.append, env=env, run=lambda *a, **k: type("R", (), {"returncode": 1})())
    notifier.set_title(f"hailuo · {HOSTILE}")
    title = written[-1]
    assert title.startswith(f"{ESC}]2;hailuo · done") and title.endswith(seq.BEL)
    _assert_inert_inside(title, f"{ESC}]2;")


@pytest.mark.parametrize("env, kind", [
    ({"KITTY_WINDOW_ID": "1", "TERM": "xterm-kitty"}, "osc99"),
    ({"TERM_PROGRAM": "iTerm.app"}, "osc9"),
    ({"TERM_PROGRAM": "WezTerm"}, "osc9"),
    ({"TERM": "xterm-ghostty"}, "osc9"),
    ({"VTE_VERSION": "7600", "TERM": "xterm-256color"}, "osc777"),
    ({"TERM": "foot"}, "osc777"),
    ({"TMUX": "/tmp/t,1,0", "TERM": "tmux-256color", "KITTY_WINDOW_ID": "3"}, "osc99"),
    ({"TMUX": "/tmp/t,1,0", "TERM": "tmux-256color"}, "osc9"),
    ({"SSH_TTY": "/dev/pts/3", "TERM": "xterm-256color"}, "osc9"),
    ({"DISPLAY": ":0", "TERM": "xterm-256color"}, "desktop"),
    ({"TERM": "linux"}, "off"),
])
def test_the_kind_follows_the_terminal(env, kind) -> None:
    assert seq.detect_kind(env) == kind
    assert seq.resolve_kind("bell", env) == "bell"  # the setting wins over detection


def test_terminal_notifier_writes_what_the_terminal_needs_and_restores_the_title() -> None:
    written: list[str] = []
    pane_titles = []

    def fake_run(argv, **kwargs):  # `tmux display-message -p '#{pane_title}'`
        pane_titles.append(argv)
        return type("Done", (), {"returncode": 0, "stdout": "my shell\n"})()

    inside = TerminalNotifier("osc777", written.append, env={"TMUX": "x"}, run=fake_run)
    assert inside.notify("Job failed: a", HOSTILE) == "osc777"
    assert written[-1].startswith(f"{ESC}Ptmux;{ESC}{ESC}]777;notify;Job failed: a;done")
    inside.set_title("hailuo · 1▶")
    inside.set_title("hailuo · 1▶")  # unchanged: not written again
    inside.restore()
    assert written[1:] == [f"{ESC}]2;hailuo · 1▶{seq.BEL}", f"{ESC}]2;my shell{seq.BEL}"]
    assert pane_titles and pane_titles[0][:2] == ["tmux", "display-message"]

    outside: list[str] = []
    notifier = TerminalNotifier("off", outside.append, env={"TERM_PROGRAM": "WezTerm"})
    assert notifier.notify("t", "b") is None and outside == []
    notifier.set_title("hailuo · 2✓")
    notifier.progress(50)
    notifier.restore()
    assert outside == [seq.TITLE_PUSH, f"{ESC}]2;hailuo · 2✓{seq.BEL}", f"{ESC}]9;4;1;50{seq.BEL}",
                       f"{ESC}]9;4;0;0{seq.BEL}", seq.TITLE_POP]


# -- the session's rounds --------------------------------------------------------------------------

def _job(local_id: str, status: str = "processing", **request) -> Job:
    """A job submitted at 1000.0 that went to `status` then (its status history says so)."""
    job = make_job(local_id, status=SUBMITTING, server_id=f"s-{local_id}", prompt="p", submitted_at=1000.0,
                   request=request)
    job.set_status(status, 1000.0)
    return job


def test_one_round_ends_when_its_last_job_does() -> None:
    tally = SessionTally()
    jobs = [_job(str(i)) for i in range(3)]
    for job in jobs:
        assert tally.seen(job, 0.0) is None
    jobs[0].set_status("completed", 10.0)
    jobs[1].set_status("failed", 20.0)
    assert tally.seen(jobs[0], 10.0) is None and tally.seen(jobs[1], 20.0) is None
    assert tally.round_share_done == 66
    jobs[2].set_status("completed", 252.0)
    ended = tally.seen(jobs[2], 252.0)
    assert ended is not None and ended.line() == "3 done · 2 completed · 1 failed · 4m12s" and ended.only_job is None
    assert seq.state_title(len(tally.running), tally.completed, tally.failed) == "hailuo · 2✓ 1✗"
    alone = _job("9")
    tally.seen(alone, 300.0)
    alone.set_status("completed", 340.0)
    assert tally.seen(alone, 340.0).only_job is alone


# -- hooks -------------------------------------------------------------------------------------------

HOOK = r'''
import json, os, sys, time
payload = json.load(sys.stdin)
record = {"argv": sys.argv[1:], "stdin": payload,
          "env": {k: v for k, v in os.environ.items() if k.startswith("HAILUO_JOB_")},
          "key_anywhere": any("{key}" in v for v in os.environ.values()) or "GPTPROTO_API_KEY" in os.environ}
with open({out!r}, "a", encoding="utf-8") as fh:
    fh.write(json.dumps(record) + "\n")
print("hook says hi")
if payload["status"] == "failed":
    time.sleep(30)
'''


def test_a_hook_is_a_real_child_with_argv_stdin_env_without_the_key_and_a_timeout(tmp_path, monkeypatch) -> None:
    out = tmp_path / "hook.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(HOOK.replace("{key}", KEY).replace("{out!r}", repr(str(out))))
    monkeypatch.chdir(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "GPTPROTO_API_KEY": KEY, "SNEAKY_COPY": f"Bearer {KEY}", "HOME": str(tmp_path)}
    argv = [sys.executable, str(script), "$(touch pwned)", "two words"]
    runner = HookRunner(on_complete=argv, on_fail=argv, log_path=tmp_path / "state" / "hooks.log",
                        timeout=1.5, key=KEY, env=env)
    done = _job("a1b2", prompt="a `touch pwned2` prompt; rm -rf /")
    done.set_status("completed", 1060.0)
    done.outputs = ["https://cdn.example/v.mp4"]
    done.downloads = [{"url": done.outputs[0], "path": str(tmp_path / "v.mp4"), "size": 1, "sha256": "x", "at": 1.0}]
    outcome = runner.run(done)
    assert outcome is not None and not outcome.failed and outcome.exit_code == 0
    record = json.loads(out.read_text().splitlines()[0])
    assert record["argv"] == ["$(touch pwned)", "two words"]  # given as written: no shell
    assert record["stdin"]["id"] == "s-a1b2" and record["stdin"]["request"]["prompt"] == "a `touch pwned2` prompt; rm -rf /"
    assert record["env"] == {"HAILUO_JOB_ID": "s-a1b2", "HAILUO_JOB_STATUS": "completed",
                             "HAILUO_JOB_OUTPUT": "https://cdn.example/v.mp4", "HAILUO_JOB_FILE": str(tmp_path / "v.mp4")}
    assert record["key_anywhere"] is False
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()

    failed = _job("c3d4")
    failed.set_status("failed", 1030.0)
    started = time.monotonic()
    outcome = runner.run(failed)
    assert time.monotonic() - started < 10
    assert outcome.failed and outcome.timed_out and outcome.first_failure
    assert "stopped after its timeout" in outcome.describe()
    again = runner.run(failed)
    assert again.failed and not again.first_failure  # shown once, not at every job
    log = (tmp_path / "state" / "hooks.log").read_text()
    assert "hook says hi" in log and "on_fail job s-c3d4" in log and KEY not in log


def test_a_hook_that_cannot_start_says_why(tmp_path) -> None:
    runner = HookRunner(on_complete=[str(tmp_path / "missing-program")], log_path=tmp_path / "hooks.log")
    job = _job("e5")
    job.set_status("completed", 1010.0)
    outcome = runner.run(job)
    assert outcome.failed and outcome.exit_code is None and "could not start" in outcome.describe()
    assert runner.run(_job("f6")) is None  # still running: no hook


def test_hooks_in_the_config_are_argv_lists(tmp_path) -> None:
    config = tmp_path / "config.toml"
    env = {"HAILUO_TUI_CONFIG": str(config), "HAILUO_TUI_DATA_DIR": str(tmp_path / "data")}
    config.write_text('on_complete = ["notify-me", "--done"]\nnotify = "osc777"\nlow_bandwidth = true\n')
    settings = load_settings(env=env)
    assert settings.on_complete == ("notify-me", "--done") and settings.notify == "osc777" and settings.low_bandwidth_on
    assert settings.state_dir == tmp_path / "data" / "state"
    config.write_text('on_fail = "notify-me --failed"\n')
    with pytest.raises(ConfigError, match="on_fail has the wrong type"):
        load_settings(env=env)
    config.write_text('on_fail = []\n')
    with pytest.raises(ConfigError, match="never run through a shell"):
        load_settings(env=env)
    config.write_text('notify = "popup"\n')
    with pytest.raises(ConfigError, match="notify must be one of auto, osc9"):
        load_settings(env=env)


def test_low_bandwidth_is_on_over_ssh_unless_set(monkeypatch) -> None:
    monkeypatch.delenv("SSH_TTY", raising=False)
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    assert not Settings().low_bandwidth_on
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 5000 10.0.0.1 22")
    assert Settings().low_bandwidth_on and not Settings(low_bandwidth=False).low_bandwidth_on


# -- ETA ---------------------------------------------------------------------------------------------

def _finished(local_id: str, seconds: float, model: str = "hailuo-2.3-fast", duration: int = 6) -> Job:
    job = _job(local_id, model=model, duration=duration)
    job.set_status("completed", job.submitted_at + seconds)
    return job


def test_eta_from_the_history_with_labelled_defaults_first() -> None:
    book = EtaBook()
    book.reset([])
    first = book.estimate(_job("new"))
    assert first.source == BUILT_IN_LABEL and first.built_in and first.median_s == 45.0
    assert book.estimate(_job("long", duration=10)).median_s == 75.0  # scaled with the video's length
    book.reset([_finished(str(i), s) for i, s in enumerate([30, 35, 40, 42, 44, 50, 52, 55, 60, 90])])
    estimate = book.estimate(_job("next"))
    assert (estimate.median_s, estimate.p90_s, estimate.samples, estimate.source) == (47.0, 60, 10, "history")
    # Another kind of the same model borrows the model's figures until it has its own.
    assert book.estimate(_job("other", resolution="1080P")).source == "model history"
    book.update(_finished("x", 500))
    assert book.estimate(_job("next")).p90_s == 90
    book.remove("x")
    assert book.estimate(_job("next")).p90_s == 60
    assert [kind for kind, _ in book.figures()] == [("hailuo-2.3-fast", "text-to-video", "768P", "6")]
    failed = _job("f")
    failed.set_status("failed", 1005.0)
    book.update(failed)  # a failure says nothing about how long a video takes
    assert book.estimate(_job("next")).samples == 10


def test_eta_cell_texts() -> None:
    estimate = Estimate(60.0, 90.0, 10, "history")
    assert eta_text(20, estimate) == "~40s left"
    assert eta_text(70, estimate) == "~20s left"
    assert eta_text(90 + 125, estimate) == "late 2m"


def test_the_schedule_asks_little_before_the_median_and_often_around_it() -> None:
    estimate = Estimate(60.0, 90.0, 10, "history")
    schedule = EtaSchedule(lambda sid: None, base_interval=2.0, max_interval=20.0)
    times, t = [0.0], 0.0
    while t < 200:
        t += schedule.interval(t, estimate)
        times.append(t)
    early = [x for x in times if x < 45]
    window = [x for x in times if 57 <= x <= 90]
    assert times[1] == 2.0  # quick after a submit: a refusal shows at once
    assert len(early) <= 4  # 0, 2, then never further apart than the poller's maximum (20 s)
    assert len(window) >= 2 and max(b - a for a, b in zip(window, window[1:])) <= 17
    late_gaps = [b - a for a, b in zip(times, times[1:]) if a > 100]
    assert late_gaps == sorted(late_gaps) and late_gaps[-1] == 20.0  # backs off, up to the poller's maximum
    assert schedule("unknown-job", 5.0) is None  # the poller's own schedule applies


async def test_the_poller_follows_a_pluggable_schedule() -> None:
    from tui.core.api.models import Prediction

    asked: list[float] = []
    done = asyncio.Event()

    async def fetch(server_id: str) -> Prediction:
        asked.append(time.monotonic())
        if len(asked) == 4:
            done.set()
        return Prediction.from_data({"id": server_id, "status": "processing", "outputs": []})

    intervals = iter([0.01, 0.5, 0.01, 10.0])
    poller = Poller(fetch, base_interval=5.0, max_interval=5.0, rate=0,
                    schedule=lambda sid, quiet: next(intervals))
    poller.track("job-1")
    await poller.start()
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        await poller.stop()
    gaps = [b - a for a, b in zip(asked, asked[1:])]
    assert gaps[1] >= 0.45 and gaps[0] < gaps[1] and gaps[2] < gaps[1]


# -- the simulator's durations -----------------------------------------------------------------------

def test_simulator_durations_drawn_by_model_and_scaled(make_simulator) -> None:
    from tui.core.api.client import HailuoClient  # noqa: F401 - the simulator answers real requests below

    sim = make_simulator(duration_spread=REALISTIC_SPREAD, time_scale=0.01, seed=3)
    lengths = {}
    for model in ("hailuo-2.3-fast", "hailuo-2.3-pro"):
        for i in range(20):
            job = sim._create(model, "text-to-video", {"prompt": f"p{i}"})
            lengths.setdefault(model, []).append(sim.ends_at(job.id) - job.started_at)
    low, high = REALISTIC_SPREAD["hailuo-2.3-fast"]
    assert all(low * 0.01 <= s <= high * 0.01 for s in lengths["hailuo-2.3-fast"])
    assert len(set(lengths["hailuo-2.3-fast"])) > 10  # a spread, not one length
    assert sum(lengths["hailuo-2.3-pro"]) > sum(lengths["hailuo-2.3-fast"])
    again = make_simulator(duration_spread=REALISTIC_SPREAD, time_scale=0.01, seed=3)
    first = again._create("hailuo-2.3-fast", "text-to-video", {"prompt": "p0"})
    assert again.ends_at(first.id) - first.started_at == lengths["hailuo-2.3-fast"][0]  # seeded: runs repeat
    plain = make_simulator(job_seconds=0.5)
    job = plain._create("hailuo-2.3-pro", "text-to-video", {"prompt": "p"})
    assert plain.ends_at(job.id) - job.started_at == 0.5  # the default is unchanged


# -- the dashboard -----------------------------------------------------------------------------------

async def test_the_dashboard_notifies_through_tmux_and_sets_then_restores_the_title(tmp_path, make_simulator,
                                                                                    monkeypatch) -> None:
    from tui.ui.app import HailuoApp

    monkeypatch.setenv("TMUX", "/nonexistent/tmux-test,1,0")
    monkeypatch.setenv("TERM_PROGRAM", "tmux")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no tmux to ask: the pane title is unknown
    sim = make_simulator(job_seconds=0.3)
    app = HailuoApp(_settings(tmp_path, sim))
    written: list[str] = []
    app.signals.notifier._write = written.append
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        job = await app.service.submit(VideoRequest(prompt="a lighthouse; at dusk"))
        await until(lambda: any("]9;Video ready" in w for w in written), pilot=pilot, what="the notification")
        assert job.is_success
    notification = next(w for w in written if "]9;Video ready" in w)
    assert notification == f"{ESC}Ptmux;{ESC}{ESC}]9;Video ready: {job.short_id}: a lighthouse; at dusk{seq.BEL}{ESC}\\"
    titles = [w for w in written if w.startswith(f"{ESC}]2;")]
    assert titles[:3] == [f"{ESC}]2;hailuo{seq.BEL}", f"{ESC}]2;hailuo · 1▶{seq.BEL}", f"{ESC}]2;hailuo · 1✓{seq.BEL}"]
    # tmux could not be asked for the pane's title: it gets tmux's own default back, the host name.
    assert titles[-1] == seq.title_sequence(socket.gethostname()) and written[-1] == titles[-1]


async def test_inside_tmux_without_passthrough_one_hint_says_how_to_turn_it_on(tmp_path, make_simulator,
                                                                               monkeypatch) -> None:
    from helpers import toasts
    from tui.ui.app import HailuoApp

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    fake_tmux = bin_dir / "tmux"  # a real child: answers as a tmux whose allow-passthrough is off
    fake_tmux.write_text(f"#!{sys.executable}\nimport sys\nopen({str(asked)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                         "print('off' if 'allow-passthrough' in sys.argv else 'my pane')\n")
    fake_tmux.chmod(0o755)
    monkeypatch.setenv("TMUX", "/nonexistent/tmux-test,1,0")
    monkeypatch.setenv("TERM_PROGRAM", "tmux")
    monkeypatch.setenv("PATH", str(bin_dir))
    sim = make_simulator()
    app = HailuoApp(_settings(tmp_path, sim, notify="osc9"))
    app.signals.notifier._write = lambda text: None
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await until(lambda: any("allow-passthrough on" in t for t in toasts(app)), pilot=pilot, what="the hint")
        assert "show -gv allow-passthrough" in asked.read_text()
    assert sum("allow-passthrough on" in t for t in toasts(app)) == 1


async def test_low_bandwidth_mode_shows_on_the_status_line_and_slows_the_clocks(tmp_path, make_simulator) -> None:
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator()
    app = HailuoApp(_settings(tmp_path, sim, low_bandwidth=True))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await pilot.pause()
        assert "low-bandwidth" in str(app.query_one(StatusLine).render())
        assert app.query_one(JobTable)._tick_interval == 5.0 and app.animation_level == "none"
        assert app.query_one(JobTable)._coarse_clock  # running jobs' clocks in whole minutes
        await until(lambda: app.screen.query("DetailPane"), pilot=pilot, what="the detail pane")
        assert app.screen.query_one("DetailPane")._tick_interval == 5.0
    normal = HailuoApp(_settings(tmp_path / "n", sim, low_bandwidth=False))
    async with normal.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(normal.ready.wait(), 60)
        assert "low-bandwidth" not in str(normal.query_one(StatusLine).render())
        assert not normal.query_one(JobTable)._coarse_clock


async def test_a_failing_hook_is_shown_once_on_the_status_line(tmp_path, make_simulator) -> None:
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator(job_seconds=0.2)
    marker = tmp_path / "ran"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys\nopen({str(marker)!r}, 'a').write('x')\nsys.exit(3)\n")
    app = HailuoApp(_settings(tmp_path, sim, on_complete=(sys.executable, str(script))))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await app.service.submit(VideoRequest(prompt="first"))
        status = app.query_one(StatusLine)
        await until(lambda: status.last_error is not None, pilot=pilot, what="the hook's failure")
        assert f"on_complete hook {Path(sys.executable).name} exited with 3" in status.last_error and "hooks.log" in status.last_error
        status.last_error = None
        await app.service.submit(VideoRequest(prompt="second"))
        await until(lambda: marker.exists() and len(marker.read_text()) == 2, pilot=pilot, what="the second run")
        await pilot.pause(0.2)
        assert status.last_error is None  # once, not at every job
    assert (tmp_path / "state" / "hooks.log").read_text().count("exited with 3") == 2
