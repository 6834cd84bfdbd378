"""One history, many terminals: the process that owns a history serves it to the others.

A dashboard (Pilot, in this process) owns the history; the CLI runs as real subprocesses beside
it and submits, attaches and forgets through it, with the exit codes and output of a run alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

import helpers
from helpers import app_settings, posts, until
from tui.core import share
from tui.core.store import HistoryStore

KEY = "sk-test-share-0000000000"


def child_env() -> dict[str, str]:
    return helpers.child_env(KEY)


async def cli(sim, db: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """`python -m tui ARGS` as a user would run it from another terminal."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", *args, "--base-url", cli_url(sim), "--db", str(db),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def running_owner(tmp_path: Path, sim, role: str):
    """A job service that holds the history and serves it, as a dashboard or `watch` does."""
    from tui.core.jobs import JobService

    owner = JobService.open(app_settings(tmp_path, sim, KEY))
    try:
        await owner.serve_others(role)
        await owner.start()
        yield owner
    finally:
        await owner.close()


def cli_url(sim) -> str:
    """The simulator under another name than the dashboard's: the Host header tells who asked."""
    return sim.base_url.replace("127.0.0.1", "localhost")


def gets_of(sim, server_id: str) -> int:
    return sum(1 for r in sim.requests if r.method == "GET" and f"/predictions/{server_id}/" in r.path)


def table_ids(app) -> dict[str, str]:
    from tui.ui.widgets.job_table import JobTable

    table = app.query_one(JobTable)
    return {job.server_id: job.status for job in table.visible_jobs() if job.server_id}


async def test_cli_submits_attaches_and_forgets_through_a_running_dashboard(tmp_path, make_simulator):
    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.6)
    db = tmp_path / "history.json"
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        assert app.service.share is not None
        mode = stat.S_IMODE(os.lstat(app.service.share.path).st_mode)
        assert mode == 0o600

        # submit --json: the job object, exit 0; in the dashboard's table within a second.
        code, out, err = await cli(sim, db, "submit", "--prompt", "a fox  in snow ", "--json")
        assert code == 0, err
        job = json.loads(out)
        assert job["request"]["prompt"] == "a fox  in snow " and job["id"] and job["status"]
        await until(lambda: job["id"] in table_ids(app), 60, pilot=pilot, what="submitted job in the table")
        assert len(posts(sim)) == 1
        assert json.loads(posts(sim)[0].body)["prompt"] == "a fox  in snow "

        # submit --wait follows the job to its end through the owner.
        code, out, err = await cli(sim, db, "submit", "--prompt", "waited for", "--wait")
        assert code == 0, err
        waited = out.split()[0]
        assert "completed" in out
        assert table_ids(app).get(waited) == "completed" or any(
            j.server_id == waited for j in app.service.store.all())

        # An id created elsewhere (directly on the server) is attached through the owner.
        created = sim.seed_job(status="processing", prompt="made elsewhere")
        posts_before = len(posts(sim))
        code, out, err = await cli(sim, db, "attach", created)
        assert code == 0, err
        assert out.startswith(created)
        await until(lambda: created in table_ids(app), 60, pilot=pilot, what="attached job in the table")

        # The CLI's exit codes are unchanged: a bad id is 2, an unknown one 1.
        code, _, err = await cli(sim, db, "attach", "not/an/id")
        assert code == 2 and err.startswith("error: ")
        code, _, err = await cli(sim, db, "attach", "pred_does_not_exist")
        assert code == 1, err

        # forget through the owner: gone from the owner's table.
        code, out, err = await cli(sim, db, "forget", job["id"], "--yes")
        assert code == 0, err
        assert out.startswith("forgot ")
        await until(lambda: job["id"] not in table_ids(app), 60, pilot=pilot, what="forgotten job leaves the table")

        await until(lambda: all(j.is_finished for j in app.service.store.all()), 30, pilot=pilot)
        # Nothing sent twice, and every request came from the owner: the CLI (which addresses the
        # simulator by another name, so its requests would show) never polled nor posted.
        assert len(posts(sim)) == posts_before == 2
        assert gets_of(sim, waited) >= 1 and gets_of(sim, created) >= 1
        assert [r for r in sim.requests if r.host.startswith("localhost")] == []
    ids = {j.server_id for j in HistoryStore.open(db, read_only=True).all()}
    assert created in ids and waited in ids and job["id"] not in ids


async def test_a_attaches_pasted_ids_and_names_a_bad_one_where_it_is_typed(tmp_path, make_simulator):
    from textual.widgets import Button, Static, TextArea

    from helpers import toasts
    from tui.ui.app import HailuoApp
    from tui.ui.screens.attach import AttachScreen

    sim = make_simulator(job_seconds=0.3)
    first, second = sim.seed_job(status="completed", outputs=["https://cdn.example/a.mp4"]), sim.seed_job(status="processing")
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await pilot.press("a")
        await until(lambda: isinstance(app.screen, AttachScreen), 60, pilot=pilot)
        screen = app.screen
        # A bad id is named under the field, and Attach stays off.
        screen.query_one("#attach-ids", TextArea).insert(f"{first}\nnot/an/id")
        await until(lambda: "not/an/id" in str(screen.query_one("#attach-note", Static).render()), 60, pilot=pilot)
        assert screen.query_one("#attach", Button).disabled
        await pilot.press("ctrl+s")
        assert app.screen is screen  # nothing attached with a bad id in the list
        # Pasted ids, one a line or separated by commas, each once.
        area = screen.query_one("#attach-ids", TextArea)
        area.clear()
        area.insert(f"{first}, {second}\n{first}\n")
        await until(lambda: "2 ids to attach" in str(screen.query_one("#attach-note", Static).render()), 10,
                    pilot=pilot)
        await pilot.press("ctrl+s")
        await until(lambda: {first, second} <= set(table_ids(app)), 60, pilot=pilot, what="attached ids in the table")
        await until(lambda: table_ids(app)[second] == "completed", 30, pilot=pilot)
        assert any(t.startswith("Attached 2 jobs") for t in toasts(app))
        assert not posts(sim)


async def test_locate_names_the_socket_and_the_process_that_owns_the_history(tmp_path, make_simulator):
    from tui.core.jobs import JobService

    sim = make_simulator()
    db = tmp_path / "history.json"
    code, out, err = await cli(sim, db, "locate", "--json")
    assert code == 0, err
    alone = json.loads(out)
    assert alone["socket"] == str(share.socket_path(db)) and alone["owner"] is None
    service = JobService.open(app_settings(tmp_path, sim, KEY))
    try:
        await service.serve_others("watch")
        code, out, err = await cli(sim, db, "locate", "--json")
        assert code == 0, err
        assert json.loads(out)["owner"] == {"pid": os.getpid(), "role": "watch"}
        code, out, _ = await cli(sim, db, "locate")
        assert f"pid {os.getpid()} (watch)" in out and str(share.socket_path(db)) in out
    finally:
        await service.close()
    # Gone with its owner.
    assert not os.path.lexists(share.socket_path(db))


def test_a_peer_of_another_user_is_refused():
    assert share.peer_refusal(os.getuid()) is None
    refusal = share.peer_refusal(os.getuid() + 1)
    assert refusal is not None and f"uid {os.getuid() + 1}" in refusal


def test_the_peer_uid_is_read_from_the_kernel():
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert share.peer_uid(left) == os.getuid()


async def test_an_owner_does_not_answer_a_peer_of_another_uid(tmp_path, make_simulator, monkeypatch):
    """The server's check, with the kernel's answer replaced by another uid: the connection is
    closed without a word (the client then treats the history as not served)."""
    from tui.core.jobs import JobService

    sim = make_simulator()
    service = JobService.open(app_settings(tmp_path, sim, KEY))
    try:
        await service.serve_others("dashboard")
        path = share.socket_path(tmp_path / "history.json")
        assert (await share.find_owner(tmp_path / "history.json")) is not None
        monkeypatch.setattr(share, "peer_uid", lambda sock: os.getuid() + 1)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"op":"hello"}\n')
        await writer.drain()
        try:
            answer = await reader.read()
        except ConnectionResetError:  # closed with the request unread
            answer = b""
        assert answer == b""  # closed unanswered
        writer.close()
    finally:
        await service.close()


async def test_a_socket_open_to_other_users_is_refused_and_nothing_goes_through_it(tmp_path, make_simulator):
    from tui.core.jobs import JobService

    sim = make_simulator()
    db = tmp_path / "history.json"
    service = JobService.open(app_settings(tmp_path, sim, KEY))
    try:
        await service.serve_others("dashboard")
        path = share.socket_path(db)
        os.chmod(path, 0o666)
        assert "open to other users (mode 0666" in share.socket_refusal(path)
        with pytest.raises(share.ShareRefused):
            await share.find_owner(db)
        code, _, err = await cli(sim, db, "submit", "--prompt", "never sent")
        assert code == 2 and "mode 0666" in err and KEY not in err
        assert posts(sim) == []
    finally:
        await service.close()


def test_a_file_that_is_not_a_socket_is_refused(tmp_path):
    fake = tmp_path / "h.sock"
    fake.write_text("")
    os.chmod(fake, 0o600)
    assert "is not a socket" in share.socket_refusal(fake)


OWNER = r"""
import asyncio, sys
from pathlib import Path
from tui.core.config import load_settings
from tui.core.jobs import JobService

async def main(base_url, db):
    settings = load_settings(base_url=base_url, db=db)
    service = JobService.open(settings)
    await service.serve_others("watch")
    await service.start()
    print("serving", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await service.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_waiting_submit_carries_on_by_itself_when_the_owner_is_killed(tmp_path, make_simulator):
    import signal

    sim = make_simulator(job_seconds=4.0)
    db = tmp_path / "history.json"
    (tmp_path / "config.toml").write_text("poll_base_interval = 0.1\npoll_max_interval = 0.3\n")
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, sim.base_url, str(db), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    try:
        assert (await asyncio.wait_for(owner.stdout.readline(), 60)).strip() == b"serving"
        waiting = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui", "submit", "--prompt", "outlives its owner", "--wait",
            "--base-url", cli_url(sim), "--db", str(db),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=child_env())
        server_id = (await asyncio.wait_for(waiting.stdout.readline(), 60)).decode().strip()
        assert server_id and len(posts(sim)) == 1
        owner.send_signal(signal.SIGKILL)
        await owner.wait()
        rest, err = await asyncio.wait_for(waiting.communicate(), 60)
        assert waiting.returncode == 0, err.decode()
        assert rest.decode().startswith(f"{server_id}\tcompleted")
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
    # Sent once, by the owner; followed to its end by the client, which polled it itself.
    assert len(posts(sim)) == 1
    assert any(r.host.startswith("localhost") and f"/predictions/{server_id}/" in r.path for r in sim.requests)
    jobs = HistoryStore.open(db, read_only=True).all()
    assert [(j.server_id, j.status) for j in jobs] == [(server_id, "completed")]


#: A dashboard in a process of its own, driven by lines on stdin (`submit PROMPT`, `table`).
DASHBOARD = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[3])
from helpers import app_settings, until
from pathlib import Path
from tui.ui.app import HailuoApp
from tui.ui.widgets.job_table import JobTable
from textual.widgets import TextArea

async def main(base_url, tmp):
    class Sim:
        pass
    sim = Sim()
    sim.base_url = base_url
    app = HailuoApp(app_settings(Path(tmp), sim, sys.argv[4]))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        print("ready", type(app.service).__name__, flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            word, _, rest = line.strip().partition(" ")
            table = app.query_one(JobTable)
            if word == "submit":
                app.query_one("#prompt", TextArea).text = rest
                await pilot.press("ctrl+s")
                await until(lambda: any(j.prompt == rest and j.server_id for j in table.visible_jobs()), pilot=pilot)
                job = next(j for j in table.visible_jobs() if j.prompt == rest)
                print("submitted", job.server_id, flush=True)
            elif word == "table":
                await pilot.pause()
                print(json.dumps({j.server_id: j.status for j in table.visible_jobs()}), flush=True)

asyncio.run(main(*sys.argv[1:3]))
"""


async def submit_here(app, pilot, prompt: str):
    """Type a prompt in this dashboard's composer, ctrl+s, and wait for the server's id."""
    from textual.widgets import TextArea

    from tui.ui.widgets.job_table import JobTable

    app.query_one("#prompt", TextArea).text = prompt
    await pilot.press("ctrl+s")
    table = app.query_one(JobTable)
    await until(lambda: any(j.prompt == prompt and j.server_id for j in table.visible_jobs()), pilot=pilot,
                what=f"{prompt!r} submitted")
    return next(j for j in table.visible_jobs() if j.prompt == prompt)


async def test_two_dashboards_both_submit_and_the_survivor_carries_on_when_the_owner_is_killed(tmp_path, make_simulator):
    import signal

    from textual.widgets import Button

    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=3.0)
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DASHBOARD, sim.base_url, str(tmp_path), str(Path(__file__).parent), KEY,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env())

    async def ask(line: str) -> str:
        owner.stdin.write(line.encode() + b"\n")
        await owner.stdin.drain()
        return (await asyncio.wait_for(owner.stdout.readline(), 60)).decode().strip()

    try:
        assert (await asyncio.wait_for(owner.stdout.readline(), 60)).decode().split() == ["ready", "JobService"]
        # This dashboard addresses the simulator by another name: its own requests would show.
        app = HailuoApp(app_settings(tmp_path, sim, KEY, base_url=cli_url(sim)))
        async with app.run_test(size=(160, 45)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 60)
            assert type(app.service).__name__ == "RemoteService"
            assert app.read_only_reason is None
            assert not app.query_one("#submit", Button).disabled
            # This one submits through the owner: in the owner's table within moments.
            mine = await submit_here(app, pilot, "from the second dashboard")
            deadline = asyncio.get_running_loop().time() + 60
            while mine.server_id not in json.loads(await ask("table")):
                assert asyncio.get_running_loop().time() < deadline
            # The owner submits: pushed to this one.
            theirs = (await ask("submit from the owner")).split()[1]
            await until(lambda: theirs in table_ids(app), 30, pilot=pilot, what="the owner's job shown here")
            assert len(posts(sim)) == 2
            # Every request so far was the owner's: each job polled by one process.
            assert sim.requests and all(r.host.startswith("127.0.0.1") for r in sim.requests)

            owner.send_signal(signal.SIGKILL)
            await owner.wait()
            # The survivor takes the history over: both jobs end in its table, polled by it.
            await until(lambda: app.service.local is not None, 60, pilot=pilot, what="takeover")
            await until(lambda: table_ids(app).get(mine.server_id) == "completed"
                        and table_ids(app).get(theirs) == "completed", 60, pilot=pilot, what="both jobs completed")
            assert any(r.host.startswith("localhost") and f"/predictions/{mine.server_id}/" in r.path
                       for r in sim.requests)
            later = await submit_here(app, pilot, "after the owner died")
            assert later.server_id
            await until(lambda: table_ids(app).get(later.server_id) == "completed", 60, pilot=pilot)
        prompts = sorted(json.loads(p.body)["prompt"] for p in posts(sim))
        assert prompts == ["after the owner died", "from the owner", "from the second dashboard"]
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
    jobs = HistoryStore.open(tmp_path / "history.json", read_only=True).all()
    assert sorted((j.prompt, j.status) for j in jobs) == [("after the owner died", "completed"),
                                                         ("from the owner", "completed"),
                                                         ("from the second dashboard", "completed")]


async def test_a_submit_whose_owner_dies_mid_post_is_unknown_and_never_sent_again(tmp_path, make_simulator):
    import signal

    sim = make_simulator(job_seconds=0.5)
    sim.faults.stall = 1  # the owner's POST reaches the server and hangs there
    sim.faults.stall_seconds = 3.0
    db = tmp_path / "history.json"
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, sim.base_url, str(db), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    try:
        assert (await asyncio.wait_for(owner.stdout.readline(), 60)).strip() == b"serving"
        client = asyncio.ensure_future(cli(sim, db, "submit", "--prompt", "cut off", "--wait"))
        await until(lambda: len(posts(sim)) == 1, 60, what="the owner's POST")
        owner.send_signal(signal.SIGKILL)
        await owner.wait()
        code, out, err = await client
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
    assert code == 5, err
    assert "stopped before answering" in err and "not sent again" in err and KEY not in err
    assert "recorded as" not in err  # no local id that is in no history
    assert out == ""
    assert len(posts(sim)) == 1
    # The owner had recorded it before sending: whoever opens the history next reads it as unknown.
    jobs = HistoryStore.open(db, read_only=True).all()
    assert [(j.prompt, j.status) for j in jobs] == [("cut off", "unknown")]


async def test_a_read_only_dashboard_follows_what_the_owner_writes(tmp_path, make_simulator):
    from tui.core.catalog import VideoRequest
    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.5)
    async with running_owner(tmp_path, sim, "watch") as owner:
        app = HailuoApp(app_settings(tmp_path, sim, KEY, read_only=True, base_url=cli_url(sim)))
        async with app.run_test(size=(160, 45)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 60)
            assert app.read_only_reason is not None and "read-only" in app.read_only_reason
            job = await owner.submit(VideoRequest(prompt="written by the owner"))
            await until(lambda: table_ids(app).get(job.server_id) == "completed", 60, pilot=pilot,
                        what="the owner's job, to its end, in the read-only table")
            owner.forget(job.local_id)
            await until(lambda: job.server_id not in table_ids(app), 60, pilot=pilot)
            await pilot.press("a")
            await pilot.pause()
            assert type(app.screen).__name__ != "AttachScreen"  # refused, with the reason
        assert [r for r in sim.requests if r.host.startswith("localhost")] == []


async def test_batch_beside_a_running_owner_is_sent_through_it(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=0.3)
    db = tmp_path / "history.json"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"row {n}"}) + "\n" for n in range(3)))
    async with running_owner(tmp_path, sim, "dashboard") as owner:
        code, out, err = await cli(sim, db, "batch", str(rows), "--wait", "--json")
        assert code == 0, (out, err)
        summary = json.loads(out)
        assert summary and len(posts(sim)) == 3
        assert sorted(j.prompt for j in owner.store.all()) == ["row 0", "row 1", "row 2"]
        # The same file again: every row is in the owner's history already, nothing is sent.
        code, _, err = await cli(sim, db, "batch", str(rows))
        assert code == 0, err
        assert len(posts(sim)) == 3
    assert [r for r in sim.requests if r.host.startswith("localhost")] == []


async def test_a_second_dashboard_downloads_and_forgets_through_the_owner(tmp_path, make_simulator):
    from helpers import toasts
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable

    sim = make_simulator(job_seconds=0.3)
    sid = sim.seed_job(status="completed")
    async with running_owner(tmp_path, sim, "dashboard") as owner:
        await owner.attach([sid])
        app = HailuoApp(app_settings(tmp_path, sim, KEY, base_url=cli_url(sim)))
        async with app.run_test(size=(160, 45)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 60)
            assert type(app.service).__name__ == "RemoteService"
            table = app.query_one(JobTable)
            await until(lambda: sid in table_ids(app), 30, pilot=pilot)
            table.select(next(j.local_id for j in table.visible_jobs() if j.server_id == sid))
            table.focus()
            await pilot.pause()
            await pilot.press("d")
            expected = tmp_path / "downloads" / f"{sid}_hailuo-2.3-fast_video.mp4"
            await until(lambda: any(f"saved to {expected}" in t for t in toasts(app)), 60, pilot=pilot,
                        what="the download's toast")
            assert expected.stat().st_size > 0
            # Recorded on the job by the owner, and the record shown here.
            local_id = owner.store.find_by_server_id(sid).local_id
            assert [d["path"] for d in owner.store.get(local_id).downloads] == [str(expected)]
            await until(lambda: app.service.store.get(local_id).downloads, 30, pilot=pilot)
            # x forgets it in the owner's history too.
            await pilot.press("x")
            await pilot.press("y")
            await until(lambda: owner.store.get(local_id) is None, 30, pilot=pilot, what="forgotten by the owner")
            assert sid not in table_ids(app)
        assert [r for r in sim.requests if r.host.startswith("localhost")] == []


async def test_cli_submit_with_a_local_image_goes_through_the_owner_which_reads_the_file(tmp_path, make_simulator):
    import base64

    from PIL import Image

    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=60)
    db = tmp_path / "history.json"
    image = tmp_path / "first frame.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(image, format="PNG")
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        code, out, err = await cli(sim, db, "submit", "--prompt", "the first frame moves", "--image", str(image),
                                   "--json")
        assert code == 0, err
        job = json.loads(out)
        await until(lambda: job["id"] in table_ids(app), 60, pilot=pilot, what="the job in the owner's table")
    (sent,) = posts(sim)
    body = json.loads(sent.body)
    assert body["prompt"] == "the first frame moves"
    # The file's bytes, exactly, sent once, by the owner (the CLI addresses the simulator by another name).
    encoded = next(value for value in body.values() if isinstance(value, str) and value.startswith("data:image/png"))
    assert base64.b64decode(encoded.split(",", 1)[1]) == image.read_bytes()
    assert not sent.host.startswith("localhost")


# -- what a client that stops reading costs the owner ----------------------------------------------

async def test_a_client_that_stops_reading_costs_the_owner_one_entry_per_job_and_hears_each_finish_once():
    from tui.core.events import JobChanged, JobRemoved, Notice, PollerState
    from tui.core.share import EventBacklog

    from helpers import make_job

    backlog = EventBacklog(keep=3)
    jobs = [make_job(f"job{n}", status="processing") for n in range(50)]
    for _round in range(200):  # 10,000 changes while nobody reads
        for job in jobs:
            backlog.put(JobChanged(job, "processing"))
    for n in range(10):
        backlog.put(Notice(f"notice {n}"))
        backlog.put(PollerState(pending=n))
    finished = jobs[0]
    finished.status = "succeeded"
    backlog.put(JobChanged(finished, "processing"))
    backlog.put(JobRemoved(jobs[1].local_id))
    assert len(backlog) == 50 + 3 + 1  # a job each, the newest notices, one poller state

    sent = [await backlog.get() for _ in range(len(backlog))]
    changes = [event for event in sent if isinstance(event, JobChanged)]
    assert [event.job.local_id for event in changes] == [job.local_id for job in jobs if job is not jobs[1]]
    done = next(event for event in changes if event.job is finished)
    assert done.previous_status == "processing" and done.status_changed  # the finish is still announced
    assert [event.local_id for event in sent if isinstance(event, JobRemoved)] == [jobs[1].local_id]
    assert [event.message for event in sent if isinstance(event, Notice)] == ["notice 7", "notice 8", "notice 9"]
    assert [event.pending for event in sent if isinstance(event, PollerState)] == [9]


async def test_a_job_added_and_forgotten_before_the_client_read_is_never_sent():
    from tui.core.events import JobChanged, JobRemoved
    from tui.core.share import EventBacklog

    from helpers import make_job

    backlog = EventBacklog()
    job = make_job("brief")
    backlog.put(JobChanged(job, None, added=True))
    backlog.put(JobChanged(job, "queued"))
    backlog.put(JobRemoved(job.local_id))
    assert len(backlog) == 0
