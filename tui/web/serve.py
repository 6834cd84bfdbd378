"""Browser mode: the dashboard in a web page, served by textual-serve.

Every browser tab that opens the page gets its own dashboard process (`python -m tui ...`)
whose screen and keys travel over a WebSocket. What this module adds to textual-serve:

- The API key reaches each dashboard through the environment it inherits, never on its
  command line (which `ps` shows to every user) nor in the page or a URL.
- The page loads nothing from any other host (the terminal font is served from here).
- Requests must name this server by a loopback name when it listens on loopback, and a
  WebSocket must come from a page of this server (its Origin matches its Host): another web
  site open in the same browser cannot drive the dashboard, and DNS rebinding is refused.
- A per-run random token (as Jupyter does) guards the page and the WebSocket: the page
  answers only `/?token=<token>` (the address `serve` prints) and the WebSocket lives at
  `/ws/<token>`, named in that page. Any other local process (another user of a shared
  machine, a script that sends no Origin) gets 403 and cannot type into a dashboard that
  submits billed jobs with the owner's key. Compared in constant time, never logged.
- The page's WebSocket address follows the address the browser used, so an SSH tunnel to
  any local port works.
- Logs never print local variables (textual-serve's default could show the environment,
  and with it the key); stopping the server ends every dashboard it started, each saving
  its history first.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from tui.core.api.errors import redact
from tui.core.config import APP_NAME

log = logging.getLogger("hailuo_tui.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TEMPLATES = Path(__file__).resolve().parent / "templates"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: A dashboard that does not leave within this many seconds of being asked is killed.
STOP_TIMEOUT = 10.0
#: Bytes of randomness in the per-run token (256 bits, URL-safe base64).
TOKEN_BYTES = 32


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The name part of a Host header (`[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`)."""
    return urlsplit(f"//{host_header}").hostname or ""


def dashboard_command(*, demo: bool = False, read_only: bool = False, base_url: str | None = None,
                      db: str | os.PathLike[str] | None = None, python: str = sys.executable) -> str:
    """The shell command textual-serve runs per browser tab. Never the key: that travels in the environment."""
    parts = [python, "-m", "tui"]
    if demo:
        parts.append("--demo")
    if read_only:
        parts.append("--read-only")
    if base_url:
        parts += ["--base-url", base_url]
    if db:
        parts += ["--db", str(db)]
    return shlex.join(parts)


class _Redact(logging.Filter):
    def __init__(self, secret: str | None) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            record.msg = redact(record.getMessage(), self.secret)
            record.args = ()
        return True


class DashboardServer(Server):
    def __init__(self, command: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 title: str = APP_NAME, secret: str | None = None,
                 on_ready: Callable[[str], None] | None = None, token: str | None = None) -> None:
        super().__init__(command, host=host, port=port, title=title, templates_path=TEMPLATES)
        self.loopback_only = is_loopback(host)
        #: Fresh each run unless given: the page and the WebSocket need it (see the module's contract).
        self.token = token or secrets.token_urlsafe(TOKEN_BYTES)
        self.secret = secret
        self.on_ready = on_ready
        self.url = ""
        self._services: set[AppService] = set()
        self._stop: asyncio.Event | None = None

    # -- logging: plain lines, no locals, no key ---------------------------------------------------
    def initialize_logging(self) -> None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_Redact(self.secret))
        for name in ("textual-serve", "hailuo_tui.serve", "aiohttp"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.setLevel(logging.DEBUG if self.debug else logging.WARNING)
            logger.propagate = False

    async def on_startup(self, app: web.Application) -> None:
        """Nothing printed here: `serve()` prints the address once the socket is bound."""

    # -- who may connect ----------------------------------------------------------------------
    def host_allowed(self, request: web.Request) -> bool:
        """When serving on loopback, the browser must have asked for a loopback name (no DNS rebinding)."""
        return not self.loopback_only or is_loopback(_host_name(request.host))

    def origin_allowed(self, request: web.Request) -> bool:
        """A WebSocket from a browser carries the page's origin: it must be this server's own page."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser (a browser always sends it on a WebSocket handshake)
        return urlsplit(origin).netloc.lower() == request.host.lower()

    def token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    # -- the page -------------------------------------------------------------------------------
    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        # textual.js appends "?width=..&height=.." to the address it is given: the token is a path part.
        app.router.add_get("/ws/{token}", self.handle_websocket, name="websocket-token")
        return app

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        if not self.host_allowed(request):
            raise web.HTTPForbidden(text="this dashboard answers only to a loopback address\n")
        if not self.token_matches(request.query.get("token")):
            raise web.HTTPForbidden(text="open the address `hailuo-tui serve` printed: it carries the "
                                         "token this dashboard needs (/?token=...)\n")
        scheme = "wss" if request.secure else "ws"
        return {
            "font_size": max(8, min(40, to_int(request.query.get("fontsize", "16"), 16))),
            # The address the browser used (through a tunnel, a local port of its own).
            "app_websocket_url": f"{scheme}://{request.host}/ws/{self.token}",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not self.host_allowed(request) or not self.origin_allowed(request):
            log.warning("refused a WebSocket from origin %r for host %r",
                        request.headers.get("Origin"), request.host)
            raise web.HTTPForbidden(text="not from this dashboard's page\n")
        if not self.token_matches(request.match_info.get("token")):
            log.warning("refused a WebSocket without this run's token (origin %r)", request.headers.get("Origin"))
            raise web.HTTPForbidden(text="this dashboard needs its token\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = max(20, min(500, to_int(request.query.get("width", "80"), 80)))
        height = max(10, min(300, to_int(request.query.get("height", "24"), 24)))
        await websocket.prepare(request)
        service = AppService(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                             close=websocket.close, download_manager=self.download_manager, debug=self.debug)
        self._services.add(service)
        try:
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one broken session must not stop the server
            log.error("a dashboard session failed", exc_info=False)
        finally:
            await self._stop_service(service)
            if not websocket.closed:
                await websocket.close()
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind = envelope[0]
            data = envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(max(20, min(500, to_int(str(data.get("width")), 80))),
                                                    max(10, min(300, to_int(str(data.get("height")), 24))))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()

    async def _stop_service(self, service: AppService) -> None:
        """Ask the dashboard to leave (it saves its history); kill it if it does not."""
        if service not in self._services:
            return
        self._services.discard(service)
        process = getattr(service, "_process", None)

        async def leave() -> None:
            await service.stop()
            if process is not None:
                await process.wait()  # its output ends before it has let go of the history: wait for the exit

        try:
            await asyncio.wait_for(leave(), STOP_TIMEOUT)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - whatever happened, the process must go
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()

    # -- running ----------------------------------------------------------------------------------
    def serve(self, debug: bool = False) -> None:
        """Serve until SIGINT/SIGTERM/SIGHUP; then every dashboard started here is stopped."""
        self.debug = debug
        self.initialize_logging()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}/?token={self.token}"
            self._stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                try:
                    loop.add_signal_handler(sig, self._stop.set)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
            if self.on_ready is not None:
                self.on_ready(self.url)
            await self._stop.wait()
        finally:
            await asyncio.gather(*(self._stop_service(s) for s in list(self._services)), return_exceptions=True)
            await runner.cleanup()

    def request_exit(self) -> None:
        if self._stop is not None:
            self._stop.set()
