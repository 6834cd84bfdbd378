"""The terminal goes away under a running dashboard: the process ends, status 129, history kept.

Through tmux, as a user runs it: the dashboard in a tmux pane on a loopback simulator with
jobs pending, then `tmux kill-session` (the pty disappears, as when an SSH link drops). The
pane's first process is a small wrapper standing in for the user's shell: it records the
dashboard's exit status, and either passes the kernel's SIGHUP on to it, as an interactive
shell does with its jobs, or keeps it, so that the dashboard learns of the loss from the
terminal alone (EOF/EIO).

Each trial asserts that the process ends (waiting for its pid to go, with a generous overall
timeout), with status 129 and not by being killed, that the history parses with every job once,
holds what the dashboard learned, and is unlocked; the next trial's start is the "next start"
that must resume every pending job (a GET of each before it is killed in turn). The time from
`kill-session` to the pid's end is a figure printed at the end (`pytest -s`), not an
assertion: wall-clock limits fail on a loaded machine.

    pytest -m slow tests/test_hangup.py -s     # 20 trials of each kind
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tui.core.catalog import VideoRequest
from tui.core.config import Settings
from tui.core.jobs import JobService
from tui.core.records import Job
from tui.core.store import HistoryStore

from helpers import FAST_POLLING, until

# Terminals driven through tmux or a pty run one after another on one worker: two at once
# starve each other's start-up on a 2-core machine.
pytestmark = pytest.mark.xdist_group("terminals")

KEY = "sk-hangup-0123456789abcdef"

#: The user's shell in the pane: runs the dashboard, records how it ended.
SHELL = textwrap.dedent("""
    import os, signal, subprocess, sys

    forward, record = sys.argv[1] == "forward", sys.argv[2]
    child = None

    def hang_up(signum, frame):
        if forward and child is not None:
            child.send_signal(signal.SIGHUP)  # what an interactive shell does with its jobs

    signal.signal(signal.SIGHUP, hang_up)  # handled, not ignored: the dashboard starts with the default
    child = subprocess.Popen(sys.argv[3:])
    with open(record + ".pid", "w") as f:
        f.write(str(child.pid))
    status = child.wait()  # 129 for an exit(129); -1 if SIGHUP had killed it
    with open(record + ".tmp", "w") as f:
        f.write(str(status))
    os.replace(record + ".tmp", record)
""")


def _ended(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def _threads(pid: int) -> str:
    """What a process that outlived its terminal is doing, thread by thread (for the failure message)."""
    lines = []
    for task in sorted((Path("/proc") / str(pid) / "task").glob("*")):
        try:
            lines.append(f"{(task / 'comm').read_text().strip()}: {(task / 'wchan').read_text().strip()}")
        except OSError:
            continue
    return "; ".join(lines)


def history(db: Path) -> dict[str, Job]:
    """The history as the next start reads it; asserts it parsed without anything moved aside."""
    with HistoryStore.open(db, read_only=True) as store:
        assert not [n for n in store.notices if "parse" in n or "damaged" in n], store.notices
        jobs = store.all()
    assert len({job.local_id for job in jobs}) == len(jobs)
    return {job.server_id: job for job in jobs}


class Pane:
    """One tmux server of this test's own (its own socket), running one session at a time."""

    def __init__(self, tmp_path: Path, sim) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.socket = f"hailuo-hangup-{os.getpid()}-{id(self)}"
        (tmp_path / "shell.py").write_text(SHELL)
        (tmp_path / "config.toml").write_text(
            "".join(f"{name} = {value}\n" for name, value in FAST_POLLING.items()))
        self.env = {k: v for k, v in os.environ.items() if k not in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL",
                                                                      "HAILUO_TUI_DB", "TMUX")}
        self.env.update(GPTPROTO_API_KEY=KEY, TERM="xterm-256color", HAILUO_TUI_CONFIG=str(tmp_path / "config.toml"),
                        HAILUO_TUI_DATA_DIR=str(tmp_path / "data"))

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, check=check, timeout=60)

    def start(self, db: Path, record: Path, how: str, program: list[str] | None = None) -> int:
        """The dashboard (or `program`, given the same arguments) on `db` in a new session; returns its pid."""
        for leftover in (record, Path(f"{record}.pid")):
            leftover.unlink(missing_ok=True)
        self.tmux("new-session", "-d", "-s", "hangup", "-x", "220", "-y", "30", sys.executable,
                  str(self.tmp_path / "shell.py"), how, str(record),
                  *(program or [sys.executable, "-m", "tui"]), "--base-url", self.sim.base_url, "--db", str(db))
        pid_file = Path(f"{record}.pid")
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the dashboard did not start: " + self.screen()
            time.sleep(0.02)
        return int(pid_file.read_text())

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "hangup", check=False).stdout

    def close(self) -> None:
        self.tmux("kill-server", check=False)


@pytest.fixture
def pane(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=3600)  # every job stays pending for the whole test
    made = Pane(tmp_path, sim)
    yield made
    made.close()


async def _seed_pending(sim, db: Path, count: int) -> list[str]:
    service = JobService.open(Settings(api_key=KEY, base_url=sim.base_url, db_path=db, **FAST_POLLING))
    try:
        jobs = [await service.submit(VideoRequest(prompt=f"pending when the terminal goes {n}")) for n in range(count)]
    finally:
        await service.close()
    assert all(job.status == "created" for job in jobs)
    return [job.server_id for job in jobs]


def _learned_later(sim, db: Path, trial: int) -> str:
    """A job the history says is `created` that the server has moved on: the dashboard must save what it learns."""
    server_id = sim.seed_job(status="processing", prompt=f"moved on in trial {trial}")
    with HistoryStore.open(db) as store:
        store.put(Job(local_id=f"trial{trial:07d}", server_id=server_id, submitted_at=time.time(), status="created",
                      request={"model": "hailuo-2.3-fast", "scene": "text-to-video",
                               "prompt": f"moved on in trial {trial}", "duration": 6, "resolution": "768P",
                               "prompt_expansion": True}))
    return server_id


def _polled_since(sim, server_id: str, since: float) -> int:
    return sum(1 for r in sim.requests if r.method == "GET" and server_id in r.path and r.at >= since)


@pytest.mark.parametrize("how,runs", [
    pytest.param("forward", 3, id="shell's SIGHUP, 3 runs"),
    pytest.param("keep", 2, id="terminal only, 2 runs"),
    pytest.param("forward", 20, id="shell's SIGHUP, 20 runs", marks=pytest.mark.slow),
    pytest.param("keep", 20, id="terminal only, 20 runs", marks=pytest.mark.slow),
])
async def test_tmux_kill_session_with_jobs_pending_ends_the_dashboard_with_129_and_keeps_the_history(
        pane, tmp_path, how, runs):
    sim = pane.sim
    db = tmp_path / "history.json"
    record = tmp_path / "status"
    pending = await _seed_pending(sim, db, 3)
    exit_seconds: list[float] = []
    for trial in range(runs):
        learned = _learned_later(sim, db, trial)
        pending.append(learned)
        started = time.time()
        pid = await asyncio.to_thread(pane.start, db, record, how)
        # The next start resumes every pending job, and learns that this trial's job moved on.
        await until(lambda: all(_polled_since(sim, sid, started) for sid in pending)
                    and _polled_since(sim, learned, started) >= 2,
                    timeout=90, what=f"(trial {trial}: not every pending job polled)\n{pane.screen()}")
        await until(lambda: f"moved on in trial {trial}" in pane.screen(), timeout=60,
                    what=f"(trial {trial}: its job not on screen)\n{pane.screen()}")

        killed_at = time.monotonic()
        pane.tmux("kill-session", "-t", "hangup")
        try:
            await until(lambda: _ended(pid), timeout=60)
        except AssertionError:
            raise AssertionError(f"trial {trial}: the dashboard outlived its terminal: {_threads(pid)}") from None
        exit_seconds.append(time.monotonic() - killed_at)
        await until(record.exists, timeout=30, what=f"(trial {trial}: no exit status recorded)")
        assert record.read_text() == "129", (trial, record.read_text())

        on_disk = history(db)
        assert sorted(on_disk) == sorted(pending), trial  # every job, once
        assert on_disk[learned].status == "processing", (trial, on_disk[learned].status)
        assert all(on_disk[sid].status in ("created", "processing") for sid in pending)
        with HistoryStore.open(db) as again:
            assert not again.read_only, (trial, again.notices)  # the lock went with the process
    print(f"\n{how}: {runs}/{runs} ended with 129; seconds from kill-session to exit: "
          f"min {min(exit_seconds):.2f}, median {statistics.median(exit_seconds):.2f}, max {max(exit_seconds):.2f}")


#: The real dashboard, whose orderly way out hangs (the main thread stuck, as in a write to a
#: terminal that no longer reads): only the watchdog can end it.
STUCK_ON_ITS_WAY_OUT = textwrap.dedent("""
    import sys, time
    from tui.ui.app import HailuoApp

    async def close_service(self):
        time.sleep(3600)

    HailuoApp.close_service = close_service
    from tui.cli.main import main

    sys.argv[0] = "hailuo-tui"
    main()
""")


@pytest.mark.parametrize("how", ["forward", "keep"])
async def test_the_watchdog_ends_a_dashboard_whose_shutdown_hangs_and_saves_what_it_learned(pane, tmp_path, how):
    sim = pane.sim
    db = tmp_path / "history.json"
    record = tmp_path / "status"
    pending = await _seed_pending(sim, db, 2)
    learned = _learned_later(sim, db, 0)
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_ON_ITS_WAY_OUT)
    started = time.time()
    pid = await asyncio.to_thread(pane.start, db, record, how, [sys.executable, str(script)])
    await until(lambda: "moved on in trial 0" in pane.screen() and _polled_since(sim, learned, started) >= 2,
                timeout=90, what=f"(its job not on screen)\n{pane.screen()}")
    killed_at = time.monotonic()
    pane.tmux("kill-session", "-t", "hangup")
    await until(lambda: _ended(pid), timeout=60, what="(the watchdog did not end it)")
    print(f"\nwatchdog ({how}): ended {time.monotonic() - killed_at:.2f}s after kill-session")
    await until(record.exists, timeout=30, what="(no exit status recorded)")
    assert record.read_text() == "129"
    on_disk = history(db)
    assert sorted(on_disk) == sorted(pending + [learned])
    assert on_disk[learned].status == "processing"
    with HistoryStore.open(db) as again:
        assert not again.read_only
