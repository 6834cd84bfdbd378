"""Browser mode: `hailuo-tui serve` driven in headless Chromium, and what the server lets through.

The browser is Debian's chromium (/usr/bin/chromium), installed by the session fixture below
when it is missing and the tests run as root; Playwright only drives it (no browser download).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tui.core.records import Job
from tui.web.serve import dashboard_command, is_loopback
from tui.core.store import HistoryStore

from helpers import toasts

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "sk-serve-test-key-0123456789abcdef"

# The page keeps its xterm.js terminal in a local variable. This init script catches the object when
# the page stores it (`this.terminal = ...`), so the test reads the terminal's own text buffer.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  set(value) {
    Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.onData) { window.__terminal = value; }
  },
});
"""
SCREEN_TEXT = """() => {
  const term = window.__terminal;
  if (!term) { return ''; }
  const buffer = term.buffer.active;
  const lines = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    lines.push(line ? line.translateToString(true) : '');
  }
  return lines.join('\\n');
}"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed here (as root) when the machine does not have it yet."""
    if not CHROMIUM.exists():
        with open(Path(tempfile.gettempdir()) / "hailuo-tui-chromium-install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the xdist workers install it once between them
            if not CHROMIUM.exists() and os.geteuid() == 0:
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
                if subprocess.run(install, env=env, capture_output=True).returncode != 0:
                    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
                    subprocess.run(install, env=env, capture_output=True)
    if not CHROMIUM.exists():
        pytest.fail("the browser-mode test needs Debian's chromium: apt-get install --no-install-recommends chromium")
    return str(CHROMIUM)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _read_proc(pid: int, name: str) -> bytes:
    try:
        return (Path("/proc") / str(pid) / name).read_bytes()
    except OSError:
        return b""


class Served:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url  # as printed: http://127.0.0.1:PORT/?token=...
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}/"
        self.token = parse_qs(parts.query)["token"][0]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        process = subprocess.Popen([sys.executable, "-m", "tui", "serve", "--port", "0", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, **(env or {})}, cwd=tmp_path)
        line = process.stdout.readline()  # the first line names the address once the socket is bound
        assert line.startswith("hailuo-tui in the browser: http://127.0.0.1:"), line + process.stderr.read()
        served = Served(process, line.split(": ", 1)[1].strip())
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


def _history(path: Path, simulator) -> None:
    done = simulator.seed_job(status="completed", prompt="a heron lifting off a misty lake")
    running = simulator.seed_job(status="processing", prompt="a paper boat in the rain")
    store = HistoryStore.open(path)
    try:
        for local_id, sid, status, prompt in (("aaaa00000001", done, "completed", "a heron lifting off a misty lake"),
                                              ("bbbb00000002", running, "processing", "a paper boat in the rain")):
            request = {"model": "hailuo-2.3-fast", "scene": "text-to-video", "prompt": prompt, "duration": 6,
                       "resolution": "768P", "prompt_expansion": True}
            store.put(Job(local_id=local_id, server_id=sid, request=request, submitted_at=time.time() - 30,
                          status=status))
        store.flush()
    finally:
        store.close()


def test_the_dashboard_in_chromium_renders_jobs_and_takes_keys(tmp_path, make_simulator, serve, chromium):
    from playwright.sync_api import sync_playwright

    simulator = make_simulator(job_seconds=600)
    db = tmp_path / "history.json"
    _history(db, simulator)
    served = serve("--db", str(db), env={"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url})
    assert KEY not in served.url

    elsewhere: list[str] = []

    def only_loopback(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 800})
        try:
            context.route("**/*", only_loopback)
            page = context.new_page()
            page.add_init_script(CATCH_TERMINAL)
            page.goto(served.url)

            def screen() -> str:
                return page.evaluate(SCREEN_TEXT)

            def wait_for(condition, what: str, timeout: float = 30.0) -> str:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    text = screen()
                    if condition(text):
                        return text
                    page.wait_for_timeout(100)
                raise AssertionError(f"{what} not on the page; it shows:\n{screen()}")

            text = wait_for(lambda t: "a heron lifting" in t and "a paper boat" in t, "the job table")
            assert "127.0.0.1" in text and "key …cdef" in text  # the masked key only
            page.locator(".xterm-screen").click()
            page.keyboard.press("2")  # quick filter: pending jobs only
            wait_for(lambda t: "a paper boat" in t and "a heron lifting" not in t, "the pending filter")
            page.keyboard.press("?")
            wait_for(lambda t: "Keys" in t and "Compare with marked" in t, "the help screen")
            html = page.content()
            assert KEY not in html and KEY not in page.url
            # The key reached the dashboard by its environment, never by a command line `ps` would
            # show. (Looked at while the page is open: a dashboard may end as soon as it closes.)
            dashboards = [pid for pid in _descendants(served.process.pid) if b"tui" in _read_proc(pid, "cmdline")]
            assert all(KEY.encode() not in _read_proc(pid, "cmdline") for pid in [served.process.pid, *dashboards])
            assert any(KEY.encode() in _read_proc(pid, "environ") for pid in dashboards)
        finally:
            context.close()
    assert elsewhere == []  # the page asked no other host for anything


    assert served.stop() == 0
    assert all(not Path(f"/proc/{pid}").exists() or b"zombie" in _read_proc(pid, "status").lower()
               for pid in dashboards)
    _, stderr = served.process.communicate()
    assert KEY not in stderr
    store = HistoryStore.open(db)  # every dashboard left: the history is writable again
    try:
        assert not store.read_only and len(store) == 2
    finally:
        store.close()


def test_other_sites_and_other_host_names_are_refused(serve):
    served = serve("--demo")
    port = urlsplit(served.url).port
    page = httpx.get(served.url)
    assert page.status_code == 200 and "<title>hailuo-tui (demo)</title>" in page.text
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws/{served.token}"' in page.text
    assert "googleapis" not in page.text and "https://" not in page.text
    # Through a tunnel the browser names another port: the page follows it.
    assert f'"ws://localhost:9999/ws/{served.token}"' in httpx.get(served.url, headers={"Host": "localhost:9999"}).text
    # DNS rebinding: a page of another name resolving to this address is refused.
    assert httpx.get(served.url, headers={"Host": f"evil.example:{port}"}).status_code == 403
    handshake = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    refused = httpx.get(f"{served.base}ws/{served.token}", headers={**handshake, "Origin": "http://evil.example"})
    assert refused.status_code == 403
    served.stop()
    assert "refused a WebSocket from origin 'http://evil.example'" in served.process.stderr.read()


def test_without_this_runs_token_the_page_and_the_websocket_are_403_and_nothing_starts(serve, make_simulator):
    """Any local process can reach a loopback port: a script sending no Origin (so the origin
    check lets it through) must still not type into a dashboard that bills the owner's key."""
    import aiohttp

    simulator = make_simulator()
    served = serve(env={"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url})
    assert len(served.token) >= 40 and served.token not in served.process.args  # random, not on a command line
    assert httpx.get(served.url).status_code == 200
    for address in (served.base, f"{served.base}?token=", f"{served.base}?token=wrong{served.token[5:]}",
                    f"{served.base}?token={served.token}x"):
        page = httpx.get(address)
        assert page.status_code == 403 and served.token not in page.text, address
    # A token of another run does not open this one either (each run makes its own).
    other = serve("--demo")
    assert other.token != served.token and httpx.get(f"{served.base}?token={other.token}").status_code == 403

    async def handshake(path: str) -> int:
        async with aiohttp.ClientSession() as session:  # aiohttp sends no Origin unless told to
            try:
                async with session.ws_connect(f"{served.base}{path}?width=80&height=24") as ws:
                    await ws.send_str('["stdin", "a billed prompt\\r"]')
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    for path in ("ws", "ws/wrong-token", f"ws/{served.token[:-1]}", f"ws/{other.token}"):
        assert asyncio.run(handshake(path)) == 403, path
    assert [pid for pid in _descendants(served.process.pid) if b"tui" in _read_proc(pid, "cmdline")] == []
    assert [r for r in simulator.requests if r.method == "POST"] == []
    assert asyncio.run(handshake(f"ws/{served.token}")) == 101  # the token alone lets a client in
    assert served.stop() == 0
    log = served.process.stderr.read()
    assert "refused a WebSocket without this run's token (origin None)" in log and served.token not in log


def test_serve_demo_runs_demo_dashboards_without_the_real_key(serve):
    import aiohttp

    served = serve("--demo", env={"GPTPROTO_API_KEY": KEY})

    async def first_screen() -> bytes:
        received = b""
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{served.base}ws/{served.token}?width=160&height=40",
                                          headers={"Origin": served.base.rstrip("/")}) as ws:
                deadline = time.monotonic() + 30
                while b"Time-lapse" not in received and time.monotonic() < deadline:
                    message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                    if message.type == aiohttp.WSMsgType.BINARY:
                        received += message.data
                    elif message.type != aiohttp.WSMsgType.TEXT:
                        break
                dashboards = [pid for pid in _descendants(served.process.pid)
                              if b"tui" in _read_proc(pid, "cmdline")]
                assert dashboards and all(KEY.encode() not in _read_proc(pid, "environ") for pid in dashboards)
        return received

    screen = asyncio.run(first_screen())
    assert b"demo" in screen and b"Time-lapse" in screen  # a demo job's prompt, on the demo simulator
    assert served.stop() == 0


def test_serve_reports_a_bad_key_a_busy_port_and_warns_about_other_hosts(tmp_path):
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tui", "serve", *args], capture_output=True, text=True,
                              timeout=30, env={**os.environ, **(env or {})})

    bad = run("--port", "0", env={"GPTPROTO_API_KEY": "sk-has space"})
    assert bad.returncode == 3 and bad.stderr.startswith("error: ") and "sk-has space" not in bad.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = run("--port", str(busy.getsockname()[1]))
    assert taken.returncode == 2 and "cannot listen on 127.0.0.1" in taken.stderr
    # An address of the documentation range is not on this machine: the warning comes first, then the refusal.
    elsewhere = run("--host", "192.0.2.10", "--port", "0")
    assert "warning: listening on 192.0.2.10: anyone who can reach it can use this dashboard" in elsewhere.stderr
    assert elsewhere.returncode == 2 and "cannot listen on 192.0.2.10" in elsewhere.stderr


def test_the_dashboard_command_carries_no_key_and_quotes_paths():
    command = dashboard_command(read_only=True, base_url="http://127.0.0.1:8787", db="/tmp/my jobs/h.json",
                                python="/usr/bin/python3")
    assert command == "/usr/bin/python3 -m tui --read-only --base-url http://127.0.0.1:8787 --db '/tmp/my jobs/h.json'"
    assert dashboard_command(demo=True, python="py") == "py -m tui --demo"
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.com", "::"))


async def test_open_in_browser_mode_uses_a_new_tab_and_only_for_web_addresses(tmp_path, monkeypatch):
    from tui.ui.app import HailuoApp
    from tui.core.config import Settings
    from tui.simulator.demo import DEMO_KEY, sample_jobs, write_history
    from tui.ui.widgets.job_table import JobTable

    jobs = sample_jobs(time.time())
    jobs[1].outputs = ["javascript:alert(document.cookie)"]
    write_history(tmp_path / "history.json", jobs)
    settings = Settings(api_key=DEMO_KEY, base_url="http://127.0.0.1:9", db_path=tmp_path / "history.json",
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads")
    app = HailuoApp(settings, poll=False)
    monkeypatch.setattr(HailuoApp, "is_web", property(lambda self: True))
    opened: list[tuple[str, bool]] = []
    monkeypatch.setattr(app, "open_url", lambda url, new_tab=True: opened.append((url, new_tab)))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        table = app.query_one(JobTable)
        table.select(jobs[0].local_id)
        await pilot.press("o")
        await pilot.pause()
        assert opened == [(jobs[0].outputs[0], True)]
        table.select(jobs[1].local_id)
        await pilot.press("o")
        await pilot.pause()
        assert len(opened) == 1  # never opened: copied instead, and said so
        assert app.clipboard == "javascript:alert(document.cookie)"
        assert any("not an http(s) URL" in t for t in toasts(app))


# -- a tab that goes away, a server that goes away: its dashboard ends --------------------------------


def _dashboards(served: "Served") -> list[int]:
    return [pid for pid in _descendants(served.process.pid) if b"tui" in _read_proc(pid, "cmdline")]


def _ended(pid: int) -> bool:
    state = _read_proc(pid, "stat").rsplit(b")", 1)[-1].split()[:1]
    return not state or state[0] in (b"Z", b"X")  # gone, or dead and waiting for its parent


def _wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


async def _open_tab(served: "Served", session, shows: bytes):
    """A WebSocket as the page opens it, once the dashboard shows `shows`."""
    import aiohttp

    ws = await session.ws_connect(f"{served.base}ws/{served.token}?width=160&height=40",
                                 headers={"Origin": served.base.rstrip("/")})
    received = b""
    deadline = time.monotonic() + 60
    while shows not in received:
        assert time.monotonic() < deadline, f"the dashboard never showed {shows!r}: {received[-2000:]!r}"
        message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        if message.type == aiohttp.WSMsgType.BINARY:
            received += message.data
        elif message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the WebSocket ended: {message!r}")
    return ws


@pytest.mark.parametrize("how", ["closed", "dropped"])
def test_a_tab_that_goes_away_ends_its_dashboard_and_the_server_serves_on(tmp_path, make_simulator, serve, how):
    import aiohttp

    simulator = make_simulator(job_seconds=600)
    db = tmp_path / "history.json"
    _history(db, simulator)
    served = serve("--db", str(db), env={"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url})

    async def tab_goes_away() -> list[int]:
        async with aiohttp.ClientSession() as session:
            ws = await _open_tab(served, session, b"paper boat")
            dashboards = _dashboards(served)
            assert dashboards
            if how == "closed":
                await ws.close()  # the tab closed: the browser says goodbye
            else:
                ws._response.connection.transport.abort()  # the network went: no goodbye at all
        return dashboards

    dashboards = asyncio.run(tab_goes_away())
    _wait_until(lambda: all(_ended(pid) for pid in dashboards), f"a dashboard outlived its {how} tab")
    with HistoryStore.open(db) as store:
        assert not store.read_only  # it let go of the history on its way out
        assert {job.local_id for job in store.all()} == {"aaaa00000001", "bbbb00000002"}

    async def another_tab() -> None:
        async with aiohttp.ClientSession() as session:
            await (await _open_tab(served, session, b"paper boat")).close()

    asyncio.run(another_tab())
    assert served.stop() == 0


def test_dashboards_end_when_their_server_is_killed(tmp_path, make_simulator, serve):
    import aiohttp

    simulator = make_simulator(job_seconds=600)
    db = tmp_path / "history.json"
    _history(db, simulator)
    served = serve("--db", str(db), env={"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": simulator.base_url})

    async def open_then_kill_the_server() -> list[int]:
        async with aiohttp.ClientSession() as session:
            await _open_tab(served, session, b"paper boat")
            dashboards = _dashboards(served)
            served.process.kill()  # kill -9: it cannot stop its dashboards itself
            served.process.wait()
        return dashboards

    dashboards = asyncio.run(open_then_kill_the_server())
    assert dashboards
    _wait_until(lambda: all(_ended(pid) for pid in dashboards), "a dashboard outlived its server")
    with HistoryStore.open(db) as store:
        assert not store.read_only
        assert {job.local_id for job in store.all()} == {"aaaa00000001", "bbbb00000002"}
