"""Crash safety of the whole program, not only of the store: a process submitting and polling
killed at random moments, a disk that fills up or turns read-only under a running dashboard,
two instances on one history, and SIGHUP/SIGTERM while jobs poll.

The store's own crash tests (torn journal tails, SIGKILL of a bare writer, a full disk at the
syscall) are in tests/test_store.py; these build on them with the real service and simulator.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tui.core.catalog import VideoRequest
from tui.core.config import Settings
from tui.core.jobs import JobService
from tui.core.records import UNKNOWN
from tui.core.store import HistoryStore

import helpers
from helpers import FAST_POLLING as FAST, app_settings, posts, submit_from_the_composer, toasts, until

# Terminals driven through tmux or a pty run one after another on one worker: two at once
# starve each other's start-up on a 2-core machine.
pytestmark = pytest.mark.xdist_group("terminals")

KEY = "sk-crash-0123456789abcdef"


def child_env() -> dict[str, str]:
    return helpers.child_env(KEY)


def history(db: Path) -> list:
    """The history as a separate reader sees it; asserts it parsed without being moved aside."""
    with HistoryStore.open(db, read_only=True) as store:
        assert not [n for n in store.notices if "parse" in n or "damaged" in n], store.notices
        return store.all()


# -- SIGKILL while submitting and polling ---------------------------------------------------------

SUBMITTER = textwrap.dedent("""
    import asyncio, random, sys
    from tui.core.catalog import VideoRequest
    from tui.core.config import Settings
    from tui.core.jobs import JobService

    async def main(url, db, tag):
        settings = Settings(api_key="%s", base_url=url, db_path=db, poll_base_interval=0.05,
                            poll_max_interval=0.2, poll_rate=200.0)
        service = JobService.open(settings)
        await service.start()  # resumes what earlier runs left pending, while submitting more
        rng = random.Random(tag)
        n = 0
        while True:
            job = await service.submit(VideoRequest(prompt=f"{tag} job {n}"))
            print(job.server_id, flush=True)  # the submit returned: this job must survive anything
            n += 1
            await asyncio.sleep(rng.random() * 0.05)

    asyncio.run(main(*sys.argv[1:]))
""" % KEY)


@pytest.mark.parametrize("runs", [pytest.param(5, id="short"), pytest.param(50, id="long", marks=pytest.mark.slow)])
async def test_sigkill_while_submitting_and_polling_loses_and_repeats_nothing(make_simulator, tmp_path, runs):
    sim = make_simulator(job_seconds=0.5)
    db = tmp_path / "history.json"
    rng = random.Random(runs)
    acknowledged: set[str] = set()
    for run in range(runs):
        child = subprocess.Popen([sys.executable, "-c", SUBMITTER, sim.base_url, str(db), f"r{run}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        first = ""
        if run % 2:
            # Half the kills land while it works (after its first submit returned), the others at
            # any moment, start-up included.
            first = await asyncio.to_thread(child.stdout.readline)
        await asyncio.sleep(rng.random() * 1.0 + (0 if run % 2 else 0.3))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        out = first + out
        assert "Traceback" not in err, err
        acknowledged |= set(out.split())

        jobs = history(db)
        local_ids = [j.local_id for j in jobs]
        server_ids = [j.server_id for j in jobs if j.server_id]
        assert len(local_ids) == len(set(local_ids)), "a job appears twice"
        assert len(server_ids) == len(set(server_ids)), "a server id appears twice"
        assert acknowledged <= set(server_ids), "an acknowledged job was lost"
        # Nothing sent twice: at most one POST per record (a POST cut off by the kill may create
        # nothing), and the only jobs the server has without a record holding their id are those
        # caught between the POST and its answer (recorded unknown).
        assert sim.job_count() <= len(posts(sim)) <= len(jobs)
        unanswered = sim.job_ids() - set(server_ids)
        caught = [j for j in jobs if j.server_id is None]
        assert len(unanswered) <= len(caught) and all(j.status == UNKNOWN for j in caught)

        # Starting again resumes every pending job.
        service = JobService.open(Settings(api_key=KEY, base_url=sim.base_url, db_path=db, **FAST))
        try:
            pending = {j.server_id for j in service.store.pending()}
            await service.start()
            assert service.poller.tracked == pending
        finally:
            await service.close()
    assert len(acknowledged) >= runs // 2  # the kills did land after real work


# -- the disk fills up under a running dashboard ------------------------------------------------------


class FileSizeLimit:
    """RLIMIT_FSIZE for this process: writes past `size` bytes of any file fail with EFBIG (the
    kernel's own failure, as on a full disk). SIGXFSZ is ignored so the write returns an error."""

    def __init__(self) -> None:
        self.saved = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.saved_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(self, size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, self.saved[1]))

    def lift(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, self.saved)

    def restore(self) -> None:
        self.lift()
        signal.signal(signal.SIGXFSZ, self.saved_handler)


@pytest.fixture
def file_size_limit():
    limit = FileSizeLimit()
    yield limit
    limit.restore()




async def test_a_full_disk_under_the_dashboard_keeps_the_file_tells_the_user_and_recovers(
        tmp_path, make_simulator, file_size_limit):
    from textual.widgets import Static, TextArea

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator(job_seconds=4)  # it completes after the disk is full: a change to write
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    journal = tmp_path / "history.json.journal"
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a fox before the disk fills")
        await asyncio.to_thread(app.service.store.flush)
        before = journal.read_bytes()

        file_size_limit.limit(len(before))  # not one more byte fits
        status = app.query_one(StatusLine)
        await until(lambda: "could not write the history" in str(status.render()), pilot=pilot)
        assert "file size limit" in str(status.render())
        assert any("could not write the history" in t for t in toasts(app))
        assert journal.read_bytes() == before  # the old file is intact, not torn

        # The dashboard keeps running: the job completes on screen, keys work.
        await until(lambda: job.status == "completed", pilot=pilot)
        await pilot.press("2")
        assert table.status_filter == "pending"
        # A new submit cannot be recorded first, so it is not sent, and the form keeps it.
        sent = len(posts(sim))
        app.query_one("#prompt", TextArea).text = "a second fox"
        await pilot.press("ctrl+s")
        note = app.query_one("#submit-note", Static)
        await until(lambda: "not sent" in str(note.render()), pilot=pilot)
        assert "could not be recorded" in str(note.render())
        assert app.query_one("#prompt", TextArea).text == "a second fox"
        assert len(posts(sim)) == sent

        # Quitting now would lose what waits in memory: it asks first.
        await pilot.press("q")
        await pilot.pause()
        assert "could not be written" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("n")
        file_size_limit.lift()  # room again: what waited in memory is written, and the user hears of it
        await until(lambda: "could not write" not in str(status.render()), pilot=pilot)
        assert any("written again" in t for t in toasts(app))
        await pilot.press("q")
    (on_disk,) = history(tmp_path / "history.json")
    assert on_disk.server_id == job.server_id and on_disk.status == "completed"


def test_a_disk_that_fills_while_a_submit_is_answered_still_gives_the_id_and_how_to_keep_it(
        tmp_path, make_simulator, monkeypatch, file_size_limit):
    from click.testing import CliRunner

    from tui.cli import main as cli
    from tui.core.api.client import HailuoClient

    sim = make_simulator(job_seconds=0.3)
    db = tmp_path / "history.json"
    real_create = HailuoClient.create

    async def create_then_fill_the_disk(self, model, scene, body):
        prediction = await real_create(self, model, scene, body)
        journal = db.with_name("history.json.journal")  # (the first write made the snapshot: no journal yet)
        file_size_limit.limit(journal.stat().st_size if journal.exists() else 0)  # not one more byte
        return prediction

    monkeypatch.setattr(HailuoClient, "create", create_then_fill_the_disk)
    result = CliRunner().invoke(cli.main, ["submit", "--prompt", "a fox", "--base-url", sim.base_url,
                                           "--db", str(db)], env={"GPTPROTO_API_KEY": KEY}, catch_exceptions=False)
    file_size_limit.lift()
    (server_id,) = result.stdout.split()
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "file size limit" in result.stderr
    assert f"hailuo-tui attach {server_id}" in result.stderr
    # The history holds what it held before (the job as submitting, so: unknown), whole.
    (job,) = history(db)
    assert job.server_id is None and job.status == UNKNOWN
    monkeypatch.setattr(HailuoClient, "create", real_create)
    attached = CliRunner().invoke(cli.main, ["attach", server_id, "--base-url", sim.base_url, "--db", str(db)],
                                  env={"GPTPROTO_API_KEY": KEY}, catch_exceptions=False)
    assert attached.exit_code == 0
    assert server_id in {j.server_id for j in history(db)}
    assert len(posts(sim)) == 1


class ReadOnlyFileSystem:
    """Opening any file below `root` for writing fails with EROFS, as on a file system remounted
    read-only. (Root ignores permission bits, so chmod cannot stand in for it.)"""

    def __init__(self, root: Path, monkeypatch) -> None:
        self.root, self.monkeypatch, self.real_open = str(root), monkeypatch, os.open

    def _open(self, file, flags, *args, **kwargs):
        if str(file).startswith(self.root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return self.real_open(file, flags, *args, **kwargs)

    def on(self) -> None:
        self.monkeypatch.setattr(os, "open", self._open)

    def off(self) -> None:
        self.monkeypatch.setattr(os, "open", self.real_open)


@pytest.fixture
def read_only_fs(tmp_path, monkeypatch) -> ReadOnlyFileSystem:
    return ReadOnlyFileSystem(tmp_path, monkeypatch)


def test_a_read_only_file_system_during_a_write_keeps_the_old_file_and_says_so(tmp_path, read_only_fs):
    from tui.core.records import Job

    path = tmp_path / "history.json"
    store = HistoryStore.open(path)
    reports: list[str | None] = []
    store.on_write_error = reports.append
    store.put(Job(local_id="a1", request={"prompt": "kept"}, submitted_at=1.0, server_id="s1"))
    store.flush()
    journal = path.with_name("history.json.journal")

    def on_disk() -> dict:  # the snapshot (the first write makes it) and the journal, if any
        return {p.name: p.read_bytes() for p in (path, journal) if p.exists()}

    before = on_disk()

    read_only_fs.on()
    store.put(Job(local_id="a2", request={"prompt": "waits"}, submitted_at=2.0, server_id="s2"))
    with pytest.raises(OSError):
        store.flush()
    assert on_disk() == before
    assert reports == [store.last_write_error] and "the file system is read-only" in store.last_write_error
    read_only_fs.off()
    store.flush()  # what waited in memory goes out, and the listener hears that all is well
    assert reports[-1] is None
    store.close()
    assert [j.local_id for j in history(path)] == ["a2", "a1"]


def test_a_directory_that_cannot_be_written_opens_the_history_read_only(tmp_path, read_only_fs):
    from tui.core.records import Job

    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        store.put(Job(local_id="a1", request={"prompt": "kept"}, submitted_at=1.0, server_id="s1"))
    read_only_fs.on()
    with HistoryStore.open(path) as store:
        assert store.read_only and [j.local_id for j in store.all()] == ["a1"]
        assert any("the file system is read-only" in n and "open read-only" in n for n in store.notices)


# -- two instances on one history -------------------------------------------------------------------

INSTANCE = textwrap.dedent("""
    import asyncio, sys
    from tui.core.catalog import VideoRequest
    from tui.core.config import Settings
    from tui.core.jobs import JobService, SubmitDisabled

    async def main(url, db, name):
        settings = Settings(api_key="%s", base_url=url, db_path=db, poll_base_interval=0.05,
                            poll_max_interval=0.2, poll_rate=200.0)
        n = 0
        for line in sys.stdin:
            if line.strip() != "open":
                break
            service = JobService.open(settings)
            if service.can_submit:
                print("writer", flush=True)
            else:
                print("reader", service.submit_disabled_reason, flush=True)
            sys.stdin.readline()  # "submit"
            try:
                job = await service.submit(VideoRequest(prompt=f"{name} {n}"))
                print("submitted", job.server_id, flush=True)
            except SubmitDisabled as exc:
                print("refused", exc, flush=True)
            n += 1
            sys.stdin.readline()  # "close"
            await service.close()
            print("closed", flush=True)

    asyncio.run(main(*sys.argv[1:]))
""" % KEY)


class Instance:
    def __init__(self, sim, db: Path, name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", INSTANCE, sim.base_url, str(db), name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=child_env())

    def say(self, word: str) -> str:
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> str:
        self.proc.stdin.close()  # the instance leaves its loop
        self.proc.wait(timeout=30)
        return self.proc.stderr.read()


def test_two_instances_on_one_history_one_writer_no_corruption_in_20_rounds(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    db = tmp_path / "history.json"
    a, b = Instance(sim, db, "a"), Instance(sim, db, "b")
    submitted: list[str] = []
    rng = random.Random(20)
    try:
        for round_ in range(20):
            first, second = (a, b) if round_ % 2 == 0 else (b, a)
            roles = [first.say("open"), second.say("open")]
            # Exactly one writer; the other says clearly why it only watches.
            assert roles[0] == "writer", roles
            assert roles[1].startswith("reader another hailuo-tui is writing") and "read-only" in roles[1]
            # Both try to submit, in either order: only the writer's job exists.
            order = [first, second] if rng.random() < 0.5 else [second, first]
            answers = {id(i): i.say("submit") for i in order}
            assert answers[id(first)].startswith("submitted ")
            assert answers[id(second)].startswith("refused ") and "read-only" in answers[id(second)]
            submitted.append(answers[id(first)].split()[1])
            # Close in either order; the history is whole after every round.
            for instance in ([first, second] if rng.random() < 0.5 else [second, first]):
                assert instance.say("close") == "closed"
            jobs = history(db)
            assert sorted(j.server_id for j in jobs) == sorted(submitted)
            assert len({j.local_id for j in jobs}) == len(jobs)
    finally:
        errors = a.stop() + b.stop()
    assert "Traceback" not in errors, errors
    assert len(posts(sim)) == 20


async def test_a_second_dashboard_opens_read_only_and_says_so(tmp_path, make_simulator):
    from textual.widgets import Button, Static

    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.3)
    holder = HistoryStore.open(tmp_path / "history.json")  # the first instance, holding the lock
    try:
        app = HailuoApp(app_settings(tmp_path, sim, KEY))
        async with app.run_test(size=(160, 45)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 60)
            await pilot.pause()
            assert any("another hailuo-tui is writing" in t for t in toasts(app))
            assert app.query_one("#submit", Button).disabled
            assert "read-only" in str(app.query_one("#submit-note", Static).render())
    finally:
        holder.close()


# -- SIGHUP and SIGTERM while the dashboard polls ------------------------------------------------------


def _drain(fd: int, sink: bytearray, done: threading.Event) -> None:
    while not done.is_set():
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        sink.extend(data)


def start_dashboard(sim, db: Path, *, controlling_tty: bool, program: list[str] | None = None):
    """`hailuo-tui` (or `program`, given the same arguments) in a pseudo-terminal, as a user
    would run it; returns what it drew."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x18\x00\x78\x00\x00\x00\x00\x00")  # 24 x 120

    def own_terminal() -> None:
        if controlling_tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # so that losing the terminal sends SIGHUP

    # Textual draws on stderr; a traceback would land there too: everything goes to the terminal.
    proc = subprocess.Popen([*(program or [sys.executable, "-m", "tui"]), "--base-url", sim.base_url, "--db", str(db)],
                            stdin=slave, stdout=slave, stderr=slave, env={**child_env(), "TERM": "xterm"},
                            start_new_session=True, preexec_fn=own_terminal)
    os.close(slave)
    screen = bytearray()
    done = threading.Event()
    reader = threading.Thread(target=_drain, args=(master, screen, done), daemon=True)
    reader.start()
    return proc, master, screen, done


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "terminal closed"])
async def test_signals_while_the_dashboard_polls_flush_and_exit_cleanly(make_simulator, tmp_path, how):
    # The simulator's clock moves only when told: the job is `processing` for as long as the
    # test needs, however slowly the dashboard starts on a loaded machine.
    now = [time.time()]
    sim = make_simulator(job_seconds=8, clock=lambda: now[0])
    db = tmp_path / "history.json"
    service = JobService.open(Settings(api_key=KEY, base_url=sim.base_url, db_path=db, **FAST))
    job = await service.submit(VideoRequest(prompt="still running when the terminal goes"))
    await service.close()
    assert job.status == "created"
    now[0] += 3  # past `created`, far from done

    proc, master, screen, done = start_dashboard(sim, db, controlling_tty=how == "terminal closed")
    try:
        # Wait until the dashboard has seen the job move on (a change it holds and must save):
        # a second GET is sent only once the first answer was taken in.
        await until(lambda: sum(r.method == "GET" for r in sim.requests) >= 2, timeout=60,
                    what="(the dashboard never polled twice)")
        if how == "terminal closed":
            os.close(master)  # the SSH connection drops: the kernel sends SIGHUP
            master = None
            expected = 128 + signal.SIGHUP
        else:
            signum = getattr(signal, how)
            proc.send_signal(signum)
            expected = 128 + signum
        await asyncio.to_thread(proc.wait, 30)
        await asyncio.sleep(0.2)  # the last of the output
    finally:
        if proc.poll() is None:
            proc.kill()
        done.set()
        if master is not None:
            os.close(master)
    text = screen.decode(errors="replace")
    assert "Traceback" not in text, text[-2000:]
    assert proc.returncode == expected, (proc.returncode, text[-2000:])
    if how != "terminal closed":
        assert b"\x1b[?1049l" in screen  # the terminal was given back (alternate screen left)
    (on_disk,) = history(db)
    assert on_disk.server_id == job.server_id and on_disk.status == "processing"
    assert tinydb_jobs(db) == {job.server_id: "processing"}  # the history file alone says so
    with HistoryStore.open(db) as again:
        assert not again.read_only  # the lock was released


# -- after every kind of exit, the history file is a TinyDB database holding every job (#11) ------


def tinydb_jobs(db: Path) -> dict:
    """{server id: status} as the TinyDB library itself (unpatched, default storage) reads the file."""
    from tinydb import TinyDB

    with TinyDB(db, access_mode="r") as tiny:
        return {doc["server_id"]: doc["status"] for doc in tiny.table("jobs").all()}


def listed_jobs(db: Path) -> dict:
    """{server id: status} as `hailuo-tui list --json` prints them."""
    import json

    result = subprocess.run([sys.executable, "-m", "tui", "--db", str(db), "list", "--json"],
                            env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return {job["id"]: job["status"] for job in json.loads(result.stdout)}


async def test_a_closed_service_leaves_every_job_and_status_in_the_tinydb_file(simulator, tmp_path):
    db = tmp_path / "history.json"
    service = JobService.open(Settings(api_key=KEY, base_url=simulator.base_url, db_path=db, **FAST))
    jobs = [await service.submit(VideoRequest(prompt=f"fold {n}")) for n in range(3)]
    assert db.exists()  # from the first write on
    service.store.remove(jobs[0].local_id)
    await service.close()
    assert tinydb_jobs(db) == {job.server_id: "created" for job in jobs[1:]} == listed_jobs(db)
    assert db.with_name("history.json.journal").stat().st_size == 0  # folded into the snapshot


def test_a_cli_command_finishing_leaves_the_tinydb_file_complete(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    db = tmp_path / "history.json"
    result = subprocess.run([sys.executable, "-m", "tui", "--base-url", sim.base_url, "--db", str(db),
                             "submit", "--prompt", "a fox", "--wait", "--json"],
                            env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    on_screen = listed_jobs(db)
    assert list(on_screen.values()) == ["completed"]
    assert tinydb_jobs(db) == on_screen


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP"])
async def test_watch_stopped_by_a_signal_leaves_the_tinydb_file_complete(make_simulator, tmp_path, how):
    sim = make_simulator(job_seconds=30)  # `created` for 6 s, then `processing`
    db = tmp_path / "history.json"
    (tmp_path / "config.toml").write_text("poll_base_interval = 0.1\npoll_max_interval = 0.3\n")
    base = [sys.executable, "-m", "tui", "--base-url", sim.base_url, "--db", str(db)]
    for n in range(2):
        submitted = subprocess.run(base + ["submit", "--prompt", f"long job {n}"], env=child_env(),
                                   capture_output=True, text=True, timeout=120)
        assert submitted.returncode == 0, submitted.stderr
    assert set(tinydb_jobs(db).values()) == {"created"}
    last_post = max(r.at for r in sim.requests if r.method == "POST")
    watch = subprocess.Popen(base + ["watch"], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        # Both jobs were polled once `processing`: a change the watch holds and must save.
        def polled_processing() -> set:
            return {r.path for r in sim.requests if r.method == "GET" and r.at > last_post + 7}

        await until(lambda: len(polled_processing()) >= 2, timeout=60)
        watch.send_signal(getattr(signal, how))
        _, err = await asyncio.to_thread(watch.communicate, timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert "Traceback" not in err, err
    assert watch.returncode == 128 + getattr(signal, how)
    on_disk = tinydb_jobs(db)
    assert len(on_disk) == 2 and set(on_disk.values()) == {"processing"}
    assert on_disk == listed_jobs(db)


def test_a_script_reads_the_live_history_through_history_storage_while_a_writer_runs(tmp_path):
    from tinydb import Query, TinyDB

    from tui.core.records import Job
    from tui.core.store import HistoryStorage, ReadOnlyHistoryError

    db = tmp_path / "history.json"
    store = HistoryStore.open(db, flush_interval=60)
    try:
        for n in range(3):
            store.put(Job(local_id=f"live{n}", request={"prompt": f"p{n}"}, submitted_at=1e9 + n, status="created"))
            store.flush()
        store.get("live1").set_status("completed")
        store.put(store.get("live1"))
        store.flush()  # in the journal only: the snapshot holds the first job
        with TinyDB(db, access_mode="r") as plain:
            assert [d["local_id"] for d in plain.table("jobs").all()] == ["live0"]
        with TinyDB(db, storage=HistoryStorage) as tiny:
            jobs = tiny.table("jobs")
            assert [d["local_id"] for d in jobs.search(Query().status == "completed")] == ["live1"]
            assert len(jobs) == 3
            store.remove("live0")
            store.flush()
            assert sorted(d["local_id"] for d in tiny.table("jobs").all()) == ["live1", "live2"]
            with pytest.raises(ReadOnlyHistoryError):
                jobs.insert({"local_id": "intruder"})
    finally:
        store.close()
    with HistoryStore.open(db, read_only=True) as again:
        assert sorted(j.local_id for j in again.all()) == ["live1", "live2"]


# -- a crash of the dashboard exits non-zero -------------------------------------------------------

#: The real CLI entry point, with one dashboard action broken the way a bug would break it.
BROKEN_DASHBOARD = textwrap.dedent("""
    import sys
    from tui.ui.dashboard import DashboardScreen

    def toggle_stats(self):
        raise RuntimeError("a bug in the stats panel")

    DashboardScreen.action_toggle_stats = toggle_stats
    from tui.cli.main import main

    sys.argv[0] = "hailuo-tui"
    main()
""")


async def test_a_crash_of_the_dashboard_exits_non_zero_and_keeps_the_history(make_simulator, tmp_path):
    from tui.ui.lifecycle import EXIT_CRASH

    sim = make_simulator(job_seconds=600)
    db = tmp_path / "history.json"
    service = JobService.open(Settings(api_key=KEY, base_url=sim.base_url, db_path=db, **FAST))
    job = await service.submit(VideoRequest(prompt="pending when the dashboard crashes"))
    await service.close()
    script = tmp_path / "broken.py"
    script.write_text(BROKEN_DASHBOARD)
    started = time.time()
    proc, master, screen, done = start_dashboard(sim, db, controlling_tty=True, program=[sys.executable, str(script)])
    try:
        await until(lambda: any(r.method == "GET" and r.at >= started for r in sim.requests), timeout=60,
                    what="(the dashboard never polled)")
        await until(lambda: b"Status " in screen, timeout=60, what="(the job never in the detail pane)")
        # The broken key, again until it is read: a key typed while the terminal is still being
        # switched to raw mode can be lost, as it would be for a user.
        for _ in range(60):
            os.write(master, b"t")
            try:
                await asyncio.to_thread(proc.wait, 1)
                break
            except subprocess.TimeoutExpired:
                continue
        await until(lambda: b"a bug in the stats panel" in screen, timeout=30, what="(the error never shown)")
    finally:
        if proc.poll() is None:
            proc.kill()
        done.set()
        os.close(master)
    text = screen.decode(errors="replace")
    assert proc.returncode == EXIT_CRASH == 70, (proc.returncode, text[-2000:])
    assert "a bug in the stats panel" in text  # the user is shown what went wrong
    (on_disk,) = history(db)
    assert on_disk.server_id == job.server_id
    with HistoryStore.open(db) as again:
        assert not again.read_only
