"""One history, many processes: its owner serves it on a private Unix socket, the others ask.

The owner is the process holding the history's lock (the store's `flock`): it alone writes
the files and polls the jobs. `ShareServer` lets the other processes of the same user ask it
to submit, attach and forget, and follow every change it makes; `RemoteService` is what such a
client uses in place of a `JobService` of its own. JSON lines over asyncio streams, one request
a connection; the protocol, and what happens when the owner dies mid-request, are described in
docs/ARCHITECTURE.md ("One history, many terminals"). The API key never crosses the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
import stat
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from tui.core.api import errors as api_errors
from tui.core.api.errors import ApiError, PollingHalted, SubmitOutcomeUnknownError
from tui.core.catalog import FieldError, VideoRequest
from tui.core.eta import EtaBook
from tui.core.events import DownloadFinished, DownloadProgress, EventHub, JobChanged, JobRemoved, Notice, PollerState
from tui.core.records import UNKNOWN, Job, new_local_id

if TYPE_CHECKING:
    from tui.core.config import Settings
    from tui.core.jobs import JobService

log = logging.getLogger("hailuo_tui.share")

PROTOCOL = 1
ENV_RUNTIME_DIR = "HAILUO_TUI_RUNTIME_DIR"
#: No line of the protocol is longer (a job document is a few KB; an attach of many ids less).
MAX_LINE = 1 << 20
#: How long a client that lost its owner tries to take the history over (or find a new owner).
TAKEOVER_SECONDS = 60.0

_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# -- where, and who -------------------------------------------------------------------------------


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the sockets live: `$HAILUO_TUI_RUNTIME_DIR`, else platformdirs' user runtime dir."""
    override = env.get(ENV_RUNTIME_DIR, "").strip()
    if override:
        return Path(override).expanduser()
    import warnings

    from platformdirs import user_runtime_dir

    with warnings.catch_warnings():
        # Without $XDG_RUNTIME_DIR it falls back to /tmp/runtime-<uid> (checked as ours when used).
        warnings.simplefilter("ignore")
        return Path(user_runtime_dir("hailuo-tui"))


def socket_path(history: str | os.PathLike[str], env: Mapping[str, str] = os.environ) -> Path:
    """The socket of one history: named by a digest of its resolved path (short enough for
    the 107 bytes a socket path may have, whatever the history's path)."""
    resolved = str(Path(history).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return runtime_dir(env) / f"h-{digest}.sock"


def peer_refusal(peer_uid: int, own_uid: int | None = None) -> str | None:
    """Why a peer may not use this channel (None when it may): only our own user is served."""
    own = os.getuid() if own_uid is None else own_uid
    if peer_uid != own:
        return f"a process of another user (uid {peer_uid}) is refused: the history is shared with uid {own} only"
    return None


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def socket_refusal(path: Path, own_uid: int | None = None) -> str | None:
    """Why the socket file at `path` is not to be trusted (None when it is): it must be a socket,
    ours, and closed to group and others."""
    own = os.getuid() if own_uid is None else own_uid
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        return f"{path} is not a socket"
    if info.st_uid != own:
        return f"{path} belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o077:
        return f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}, expected 0600)"
    return None


class ShareRefused(Exception):
    """The channel failed a check (wrong mode, owner or peer): it is not used; the message says why."""


class NoOwner(Exception):
    """Nobody answers on the socket: nothing was asked."""


class OwnerGone(Exception):
    """The owner stopped after the request was written and before its answer came back."""


def _line(value: Any) -> bytes:
    # ensure_ascii: any text (a lone surrogate too) crosses as an escape and arrives exactly.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _read(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


# -- errors, both ways ------------------------------------------------------------------------------

_KINDS: dict[str, type[ApiError]] = {}


def _collect_kinds() -> None:
    for value in vars(api_errors).values():
        if isinstance(value, type) and issubclass(value, ApiError):
            _KINDS.setdefault(value.kind, value)


_collect_kinds()


def _api_of(exc: ApiError) -> dict[str, Any]:
    return {"kind": exc.kind, "message": exc.message, "status": exc.status, "exit_code": exc.exit_code,
            "retry_after": getattr(exc, "retry_after", None)}


def _api_error(data: dict[str, Any]) -> ApiError:
    """The ApiError the owner met, of the same class (batch runs check it), message and exit code."""
    cls = _KINDS.get(str(data.get("kind")), ApiError)
    exc = cls.__new__(cls)
    ApiError.__init__(exc, str(data.get("message") or "the owner gave no reason"), status=data.get("status"))
    exc.kind = str(data.get("kind") or cls.kind)
    if isinstance(data.get("exit_code"), int):
        exc.exit_code = data["exit_code"]
    if cls is api_errors.RateLimitedError:
        exc.retry_after = data.get("retry_after")
    if cls is SubmitOutcomeUnknownError:
        exc.cause = None
    return exc


def error_of(exc: BaseException) -> dict[str, Any]:
    """What the owner answers for an exception of the job service."""
    from tui.core import jobs

    if isinstance(exc, jobs.ValidationFailed):
        return {"type": "validation", "fields": [[e.field, e.message] for e in exc.errors]}
    if isinstance(exc, jobs.BudgetRefused):
        return {"type": "budget", "message": str(exc)}
    if isinstance(exc, jobs.SubmitDisabled):
        return {"type": "disabled", "message": str(exc)}
    if isinstance(exc, jobs.HistoryNotWritten):
        return {"type": "not_written", "errno": exc.errno, "reason": exc.strerror}
    if isinstance(exc, jobs.ReadOnlyRefused):
        return {"type": "read_only", "message": str(exc)}
    if isinstance(exc, jobs.SubmitFailed):
        return {"type": "submit_failed", "job": exc.job.to_doc(), "error": _api_of(exc.error)}
    if isinstance(exc, ApiError):
        return {"type": "api", **_api_of(exc)}
    return {"type": "internal", "message": f"the owner of the history failed: {type(exc).__name__}"}


def raise_error(data: Any) -> None:
    """Raise, in the client, the exception the owner's job service raised."""
    from tui.core import jobs

    data = data if isinstance(data, dict) else {}
    kind = data.get("type")
    if kind == "validation":
        raise jobs.ValidationFailed([FieldError(str(f), str(m)) for f, m in data.get("fields") or []])
    if kind == "budget":
        raise jobs.BudgetRefused(str(data.get("message")))
    if kind == "disabled":
        raise jobs.SubmitDisabled(str(data.get("message")))
    if kind == "not_written":
        raise jobs.HistoryNotWritten(OSError(data.get("errno") or 0, str(data.get("reason"))))
    if kind == "read_only":
        raise jobs.ReadOnlyRefused(str(data.get("message")))
    if kind == "submit_failed":
        raise jobs.SubmitFailed(Job.from_doc(data.get("job")), _api_error(data.get("error") or {}))
    if kind == "api":
        raise _api_error(data)
    raise ApiError(str(data.get("message") or "the owner of the history gave no answer"))


# -- the owner's side -------------------------------------------------------------------------------


class EventBacklog:
    """The changes one watching client has not been sent yet, held in a bounded space.

    A client that stops reading (suspended with ctrl+z, a stalled pipe) must not make the owner
    hold every change since: a job's newer change replaces its older unsent one (the client
    gets the job as it is now, with the status it last saw as `previous_status`, so a finish is
    still announced once), the poller's state and a download's progress keep only their newest,
    and of the rest (notices, finished downloads) only the newest `keep` are held.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._pending: dict[Any, Any] = {}
        self._others = 0
        self._other_keys: collections.deque = collections.deque()  # oldest first, sent ones too
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, event: Any) -> None:
        if isinstance(event, JobChanged):
            key: Any = ("job", event.job.local_id)
            older = self._pending.get(key)
            if isinstance(older, JobChanged):
                event = JobChanged(event.job, older.previous_status, older.added or event.added)
        elif isinstance(event, JobRemoved):
            key = ("job", event.local_id)
            if isinstance(self._pending.get(key), JobChanged) and self._pending[key].added:
                del self._pending[key]  # added and gone before the client heard of it
                return
        elif isinstance(event, PollerState):
            key = ("poller",)
        elif isinstance(event, DownloadProgress):
            key = ("progress", event.local_id, event.index)
        else:
            self._others += 1
            key = ("other", self._others)
            self._other_keys.append(key)
            while len(self._other_keys) > self.keep:
                self._pending.pop(self._other_keys.popleft(), None)
        self._pending[key] = event
        self._ready.set()

    async def get(self) -> Any:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        key = next(iter(self._pending))
        return self._pending.pop(key)


class ShareServer:
    """Serves a JobService that owns its history to the user's other processes."""

    def __init__(self, service: "JobService", *, role: str, env: Mapping[str, str] = os.environ) -> None:
        self.service = service
        self.role = role
        self.path = socket_path(service.store.path, env)
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._requests: set[asyncio.Task] = set()

    async def start(self) -> Path:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{directory} is not a directory of this user")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(directory, 0o700)
        # Holding the history's lock proves nobody else serves it: a socket left here by an
        # owner that was killed is stale.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # 0600 from the instant it exists (a chmod after bind would leave a moment open).
        previous = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        self._inode = os.lstat(self.path).st_ino
        return self.path

    async def close(self) -> None:
        """Stop taking requests; those already running (a submit mid-POST) finish and answer first."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()
        if self._requests:
            await asyncio.gather(*list(self._requests), return_exceptions=True)
        for writer in list(self._connections):
            writer.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            refusal = peer_refusal(peer_uid(sock)) if sock is not None else "no peer credentials"
        except OSError:
            refusal = "no peer credentials"
        if refusal is not None:
            log.warning("share: %s", refusal)
            writer.close()
            return
        self._connections.add(writer)
        try:
            line = await reader.readline()
            if not line:
                return
            if self._server is None:
                # Closing: said so, so that the client knows nothing was done and does it itself.
                writer.write(_line({"ok": False, "error": {"type": "closing"}}))
                await writer.drain()
                return
            request = _read(line)
            if request.get("op") == "watch":
                await self._watch(reader, writer)
                return
            # A request runs to its end even if the client goes away: a submit mid-POST must be
            # recorded, whoever is left to hear of it.
            task = asyncio.ensure_future(self._answer(request))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
            answer = await asyncio.shield(task)
            writer.write(_line(answer))
            await writer.drain()
        except (ValueError, UnicodeDecodeError, asyncio.LimitOverrunError):
            with contextlib.suppress(Exception):
                writer.write(_line({"ok": False, "error": {"type": "internal", "message": "not a request"}}))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    def hello(self) -> dict[str, Any]:
        service = self.service
        return {"ok": True, "protocol": PROTOCOL, "pid": os.getpid(), "role": self.role,
                "history": str(Path(service.store.path).resolve()),
                "submit_disabled_reason": service.submit_disabled_reason}

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        service = self.service
        op = request.get("op")
        try:
            if op == "hello":
                return self.hello()
            if op == "flush":
                await service.store.flush_async()
                return {"ok": True}
            if op == "submit":
                raw = request.get("request")
                if not isinstance(raw, dict):
                    raise ValueError("no request")
                key = request.get("idempotency_key")
                job = await service.submit(VideoRequest.from_dict(raw),
                                           idempotency_key=key if isinstance(key, str) else None)
                return {"ok": True, "job": job.to_doc()}
            if op == "attach":
                ids = [str(i) for i in request.get("ids") or []]
                return {"ok": True, "jobs": [job.to_doc() for job in await service.attach(ids)]}
            if op == "forget":
                service.forget(str(request.get("id")))
                await service.store.flush_async()
                return {"ok": True}
            if op == "refresh":
                service.refresh(str(request.get("id")))
                return {"ok": True}
            if op in ("refresh_all", "pause", "resume"):
                getattr(service, op)()
                return {"ok": True}
            if op == "download":
                # Saved by the owner (into its download directory) and recorded on the job; its
                # progress reaches every client as events.
                local_id = str(request.get("id"))
                if local_id in service.downloading:
                    return {"ok": False, "error": {"type": "download", "message": "it is being downloaded already"}}
                service.download_in_background(local_id)
                return {"ok": True}
        except Exception as exc:  # noqa: BLE001 - every failure is answered, never a dead connection
            if not (type(exc).__module__.startswith("tui.") or isinstance(exc, OSError)):
                log.exception("share: %s failed", op)
            return {"ok": False, "error": error_of(exc)}
        return {"ok": False, "error": {"type": "internal", "message": f"unknown request {str(op)[:40]!r}"}}

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Every change from now on, until the client closes."""
        queue = EventBacklog()
        unsubscribe = self.service.subscribe(queue.put)
        closed = asyncio.ensure_future(reader.read())  # the client's EOF ends the stream
        try:
            writer.write(_line({"event": "ready", "pid": os.getpid()}))
            await writer.drain()
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return
                line = self._event_line(getter.result())
                if line is not None:
                    writer.write(line)
                    await writer.drain()
        finally:
            unsubscribe()
            closed.cancel()

    def _event_line(self, event: Any) -> bytes | None:
        if isinstance(event, JobChanged):
            return _line({"event": "job", "job": event.job.to_doc(), "previous_status": event.previous_status,
                          "added": event.added})
        if isinstance(event, JobRemoved):
            return _line({"event": "removed", "id": event.local_id})
        if isinstance(event, PollerState):
            poller = self.service.poller
            halted = poller.state.halted if poller is not None else None
            return _line({"event": "poller", "halted": halted, "state": dataclasses.asdict(event)})
        if isinstance(event, DownloadProgress):
            return _line({"event": "download_progress", "progress": dataclasses.asdict(event)})
        if isinstance(event, DownloadFinished):
            return _line({"event": "download_finished", "finished": dataclasses.asdict(event)})
        if isinstance(event, Notice):
            return _line({"event": "notice", "message": event.message, "severity": event.severity,
                          "topic": event.topic})
        return None


# -- the client's side ------------------------------------------------------------------------------


class OwnerClient:
    """Requests to the owner of one history."""

    def __init__(self, path: Path, hello: dict[str, Any]) -> None:
        self.path = path
        self.hello = hello

    @property
    def pid(self) -> int | None:
        return self.hello.get("pid")

    @property
    def role(self) -> str:
        return str(self.hello.get("role") or "hailuo-tui")

    @classmethod
    async def connect(cls, path: Path) -> "OwnerClient | None":
        """The owner behind `path`, None when nobody answers there. ShareRefused when the socket
        or the process behind it fails a check."""
        client = cls(path, {})
        try:
            client.hello = await client.request({"op": "hello"})
        except (NoOwner, OwnerGone):
            return None
        return client

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            refusal = socket_refusal(self.path)
        except FileNotFoundError:
            raise NoOwner() from None
        if refusal is not None:
            raise ShareRefused(f"the history's socket is not used: {refusal}")
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path), limit=MAX_LINE)
        except (ConnectionRefusedError, FileNotFoundError):
            raise NoOwner() from None
        except OSError as exc:
            raise NoOwner() from exc
        sock = writer.get_extra_info("socket")
        refusal = peer_refusal(peer_uid(sock)) if sock is not None else None
        if refusal is not None:
            writer.close()
            raise ShareRefused(f"the history's socket is not used: {refusal}")
        return reader, writer

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await self.open()
        try:
            try:
                writer.write(_line(message))
                await writer.drain()
                answer = await reader.readline()
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                raise OwnerGone() from None
            if not answer.endswith(b"\n"):
                raise OwnerGone()
            value = _read(answer)
            if not value.get("ok") and (value.get("error") or {}).get("type") == "closing":
                raise NoOwner()  # it stopped before taking the request: nothing was done
            return value
        finally:
            writer.close()


async def find_owner(history: str | os.PathLike[str], env: Mapping[str, str] = os.environ) -> OwnerClient | None:
    """The process serving this history, None when none does. ShareRefused when the socket
    fails a check (another user's, or open to others)."""
    path = socket_path(history, env)
    if not os.path.lexists(path):
        return None
    owner = await OwnerClient.connect(path)
    if owner is None or owner.hello.get("history") != str(Path(history).expanduser().resolve()):
        return None
    return owner


def _absolute(request: VideoRequest) -> VideoRequest:
    """Image paths as the owner (another working directory) must read them."""
    changes = {}
    for name in ("image", "end_image"):
        value = getattr(request, name)
        if isinstance(value, str) and value.strip() and not _URL.match(value.strip()):
            changes[name] = str(Path(value).expanduser().absolute())
    return request.with_changes(**changes) if changes else request


class RemoteService:
    """What the CLI uses of a JobService, carried out by the history's owner.

    `store` is a read-only view of the history (read after the owner flushed, kept current by
    its events). Nothing here polls while the owner lives; when it goes, a `wait()` carries on
    with a JobService of this process (which then owns the history), or with the next owner.
    """

    def __init__(self, settings: "Settings", owner: OwnerClient, store: Any, *, role: str) -> None:
        from tui.core import costs

        self.settings = settings
        self.owner = owner
        self.role = role
        self._store = store
        self.hub = EventHub()
        self.poller = None
        self.prices = costs.PriceTable(settings.prices)
        self.budgets = costs.Budgets.from_settings(settings)
        self.session_jobs: dict[str, Job] = {}
        self.session_start = time.time()
        #: Jobs the owner is downloading now (from its events).
        self.downloading: set[str] = set()
        self.eta = EtaBook()
        self._poller_state = PollerState(running=True)
        #: Asked for (`--read-only`): it follows the owner's changes and changes nothing itself.
        self.read_only_mode = False
        self.local: "JobService | None" = None
        self._halted: str | None = None
        self._wants_polling = False
        self._watch_task: asyncio.Task | None = None
        self._watch_writer: asyncio.StreamWriter | None = None
        self._changed: set[asyncio.Future] = set()
        self._tasks: set[asyncio.Task] = set()
        self._takeover_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, settings: "Settings", owner: OwnerClient, *, role: str = "cli",
                   store: Any | None = None) -> "RemoteService":
        """Follow the owner from now on, then read the history as it has written it so far (a
        store already read here is read again: it may predate what the owner had not flushed)."""
        from tui.core.store import HistoryStore

        service = cls(settings, owner, store, role=role)
        reader = await service._watch_owner()
        try:
            await owner.request({"op": "flush"})
            if store is None:
                service._store = await asyncio.to_thread(HistoryStore.open, settings.db_path, read_only=True)
            else:
                await asyncio.to_thread(store.reload)
        except BaseException:
            await service._stop_watching()
            raise
        service.eta.reset(service._store.all())
        service._watch_task = asyncio.ensure_future(service._follow_owner(reader))
        return service

    # -- what the CLI reads ---------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self.local.store if self.local is not None else self._store

    @property
    def read_only_reason(self) -> str | None:
        if self.read_only_mode:
            from tui.core.jobs import READ_ONLY_MODE

            return READ_ONLY_MODE
        return self.local.read_only_reason if self.local is not None else None

    @property
    def poller_state(self) -> PollerState:
        return self.local.poller_state if self.local is not None else self._poller_state

    @property
    def submit_disabled_reason(self) -> str | None:
        if self.read_only_reason is not None:
            return self.read_only_reason
        if self.local is not None:
            return self.local.submit_disabled_reason
        reason = self.owner.hello.get("submit_disabled_reason")
        return f"the process that owns the history (pid {self.owner.pid}) cannot submit: {reason}" if reason else None

    @property
    def can_submit(self) -> bool:
        return self.submit_disabled_reason is None

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def _refuse_in_read_only(self) -> None:
        from tui.core.jobs import ReadOnlyRefused

        if self.read_only_mode:
            raise ReadOnlyRefused(self.read_only_reason)

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        return self.hub.subscribe(listener)

    def validate(self, request: VideoRequest) -> list[FieldError]:
        from tui.core import catalog

        return catalog.validate(request, allow_uncertain=self.settings.allow_uncertain_resolutions)

    def estimate(self, request: VideoRequest):
        return self.prices.for_request(request)

    def budget_refusal(self, requests: list[VideoRequest], *, batch: bool = False) -> str | None:
        """As the owner would answer, from the history as it is now (the owner checks each submit again)."""
        from tui.core import costs

        return costs.refusal_for_history(requests, self.store, self.session_jobs.values(), self.prices,
                                         self.budgets, now=time.time(), batch=batch)

    # -- what the CLI asks ----------------------------------------------------------------------
    async def submit(self, request: VideoRequest, *, idempotency_key: str | None = None,
                     images: Any = None) -> Job:
        """`images`: what this process already read of the request's files; used when it sends the
        job itself. The owner reads the files by their paths (same user, same machine): their
        bytes do not cross the socket."""
        from tui.core.jobs import SubmitDisabled

        if self.read_only_mode:
            raise SubmitDisabled(self.read_only_reason)
        if self.local is not None:
            return await self.local.submit(request, idempotency_key=idempotency_key, images=images)
        message = {"op": "submit", "request": _absolute(request).to_dict(), "idempotency_key": idempotency_key}
        try:
            answer = await self.owner.request(message)
        except NoOwner:
            # Nothing was asked: this process sends it itself.
            await self._take_over()
            return await self.submit(request, idempotency_key=idempotency_key, images=images)
        except OwnerGone:
            raise self._unanswered_submit(request, idempotency_key) from None
        if not answer.get("ok"):
            raise_error(answer.get("error"))
        job = self._changed_job(Job.from_doc(answer.get("job")), None, added=True)
        self.session_jobs[job.local_id] = job
        return job

    def _unanswered_submit(self, request: VideoRequest, idempotency_key: str | None) -> Exception:
        """The owner went away mid-submit: it may have sent it, so this is an unknown outcome,
        never sent again. The job (if recorded) is the owner's; this stand-in is not stored."""
        from tui.core.jobs import SubmitFailed

        message = (f"the process that owned the history (pid {self.owner.pid}) stopped before answering: the job "
                   "may have been sent and may be billed; it is not sent again. `hailuo-tui list` shows it "
                   "(as unknown) if it was recorded.")
        stand_in = Job(local_id=f"unanswered-{new_local_id()}", request=request.to_dict(), submitted_at=time.time(),
                       idempotency_key=idempotency_key, status=UNKNOWN, error=message)
        failed = SubmitFailed(stand_in, SubmitOutcomeUnknownError(message))
        failed.recorded = False  # the stand-in is in no history: no command may point at it
        return failed

    async def attach(self, server_ids: Iterable[str]) -> list[Job]:
        self._refuse_in_read_only()
        ids = list(server_ids)
        if self.local is None:
            try:
                answer = await self.owner.request({"op": "attach", "ids": ids})
            except (NoOwner, OwnerGone):
                answer = None  # a look-up and a record: safe to do here instead
            if answer is not None:
                if not answer.get("ok"):
                    raise_error(answer.get("error"))
                jobs = [Job.from_doc(doc) for doc in answer.get("jobs") or []]
                return [self._changed_job(job, None, added=self.store.get(job.local_id) is None) for job in jobs]
            await self._take_over()
        return await self.local.attach(ids)

    async def forget_now(self, local_id: str) -> None:
        self._refuse_in_read_only()
        if self.local is None:
            try:
                answer = await self.owner.request({"op": "forget", "id": local_id})
            except (NoOwner, OwnerGone):
                answer = None
            if answer is not None:
                if not answer.get("ok"):
                    raise_error(answer.get("error"))
                if self.store.get(local_id) is not None:
                    self._removed(local_id)
                return
            await self._take_over()
        self.local.forget(local_id)

    def forget(self, local_id: str) -> None:
        """As JobService.forget (a batch drops a refused record, `x` in a dashboard): removed from
        this view now, and from the history by the owner a moment later."""
        self._refuse_in_read_only()
        if self.local is not None:
            self.local.forget(local_id)
            return
        self._removed(local_id)

        async def forget_there() -> None:
            try:
                await self.forget_now(local_id)
            except Exception as exc:  # noqa: BLE001 - told, never a task's lost exception
                self.hub.emit(Notice(f"the history's owner did not forget {local_id}: {exc}", "error"))

        task = asyncio.ensure_future(forget_there())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ask_later(self, message: dict[str, Any]) -> None:
        """A request whose answer nobody waits for (refresh, pause): sent in the background."""

        async def ask() -> None:
            with contextlib.suppress(NoOwner, OwnerGone, ShareRefused):
                await self.owner.request(message)

        task = asyncio.ensure_future(ask())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refresh(self, local_id: str) -> None:
        if self.local is not None:
            self.local.refresh(local_id)
        else:
            self._ask_later({"op": "refresh", "id": local_id})

    def refresh_all(self) -> None:
        if self.local is not None:
            self.local.refresh_all()
        else:
            self._ask_later({"op": "refresh_all"})

    def pause(self) -> None:
        """Polling is the owner's: pausing it pauses it for every terminal on this history."""
        if self.local is not None:
            self.local.pause()
        else:
            self._ask_later({"op": "pause"})

    def resume(self) -> None:
        if self.local is not None:
            self.local.resume()
        else:
            self._ask_later({"op": "resume"})

    async def download(self, local_id: str, *, directory: Path | None = None) -> list:
        """Saved by the owner, which records the files on the job; the progress arrives as its
        events. DownloadError when it ends in one (what was saved is on the job, as at home)."""
        from tui.core.downloads import DownloadError

        if self.local is not None or directory is not None:
            if self.local is None:
                raise DownloadError("a download into another directory is not asked of the history's owner",
                                    exit_code=2)
            return await self.local.download(local_id, directory=directory)
        finished: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_event(event: Any) -> None:
            if isinstance(event, DownloadFinished) and event.local_id == local_id and not finished.done():
                finished.set_result(event)

        unsubscribe = self.hub.subscribe(on_event)
        try:
            try:
                answer = await self.owner.request({"op": "download", "id": local_id})
            except (NoOwner, OwnerGone):
                raise DownloadError("the history's owner went away; download again", exit_code=4) from None
            if not answer.get("ok"):
                raise DownloadError(str((answer.get("error") or {}).get("message") or "not downloaded"), exit_code=2)
            self.downloading.add(local_id)
            result: DownloadFinished = await finished
        finally:
            unsubscribe()
        if result.error:
            raise DownloadError(result.error)
        return list(result.paths)

    async def start(self) -> None:
        """The owner polls; only after a takeover does this process."""
        self._wants_polling = True
        if self.local is not None:
            await self.local.start()

    async def wait(self, local_ids: Iterable[str]) -> list[Job]:
        ids = list(local_ids)
        while True:
            if self.local is not None:
                return await self.local.wait(ids)
            jobs = [self.store.get(i) for i in ids]
            if all(j is None or j.is_finished for j in jobs):
                return [j for j in jobs if j is not None]
            if self._halted is not None:
                raise PollingHalted(f"polling stopped: {self._halted}")
            waiter = asyncio.get_running_loop().create_future()
            self._changed.add(waiter)
            try:
                await waiter
            finally:
                self._changed.discard(waiter)

    async def wait_downloads(self) -> None:
        if self.local is not None:
            await self.local.wait_downloads()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._stop_watching()
        if self.local is not None:
            await self.local.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    # -- following the owner ----------------------------------------------------------------------
    async def _watch_owner(self) -> asyncio.StreamReader:
        reader, writer = await self.owner.open()
        writer.write(_line({"op": "watch"}))
        await writer.drain()
        ready = await reader.readline()
        if not ready.endswith(b"\n"):
            writer.close()
            raise NoOwner()
        self._watch_writer = writer
        return reader

    async def _stop_watching(self) -> None:
        if self._watch_writer is not None:
            self._watch_writer.close()
            self._watch_writer = None
        task, self._watch_task = self._watch_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _follow_owner(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    break
                try:
                    event = _read(line)
                    self._on_owner_event(event)
                except (ValueError, TypeError, KeyError):
                    log.warning("share: an event from the owner was not understood")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        if self._closed:
            return
        # The owner went away: carry on without it.
        try:
            await self._take_over()
        except Exception as exc:  # noqa: BLE001 - a wait must end: it ends with this reason
            self._halted = f"the history's owner stopped and this process could not take over ({exc})"
        self._wake()

    def _on_owner_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "job":
            self._changed_job(Job.from_doc(event.get("job")), event.get("previous_status"),
                              added=bool(event.get("added")))
        elif kind == "removed":
            self._removed(str(event.get("id")))
        elif kind == "poller":
            halted = event.get("halted")
            self._halted = str(halted) if halted else None
            state = event.get("state")
            if isinstance(state, dict):
                self._poller_state = PollerState(**{k: v for k, v in state.items()
                                                    if k in PollerState.__dataclass_fields__})
                self.hub.emit(self._poller_state)
            self._wake()
        elif kind == "download_progress":
            progress = DownloadProgress(**event["progress"])
            self.downloading.add(progress.local_id)
            self.hub.emit(progress)
        elif kind == "download_finished":
            data = dict(event["finished"])
            finished = DownloadFinished(str(data["local_id"]), tuple(data.get("paths") or ()), data.get("error"),
                                        tuple(data.get("outcomes") or ()))
            self.downloading.discard(finished.local_id)
            self.hub.emit(finished)
            self._wake()
        elif kind == "notice":
            self.hub.emit(Notice(str(event.get("message")), str(event.get("severity") or "information"),
                                 topic=event.get("topic")))

    def _changed_job(self, job: Job, previous: str | None, *, added: bool) -> Job:
        """A job as the owner has it now. The object this view holds already is updated in place
        (as a JobService's jobs are), so whoever kept it (a batch's outcomes, the table) sees it."""
        known = self.store.get(job.local_id) if self.store is not None else None
        added = added and known is None  # told once, whichever came first: the answer or the event
        if known is not None and known is not job:
            for name in _JOB_FIELDS:
                setattr(known, name, getattr(job, name))
            job = known
        if self.store is not None:
            self.store.mirror_put(job)
        if job.is_success:
            self.eta.update(job)
        self.hub.emit(JobChanged(job, previous, added=added))
        self._wake()
        return job

    def _removed(self, local_id: str) -> None:
        if self.store is not None:
            self.store.mirror_remove(local_id)
        self.eta.remove(local_id)
        self.hub.emit(JobRemoved(local_id))
        self._wake()

    def _wake(self) -> None:
        for waiter in list(self._changed):
            if not waiter.done():
                waiter.set_result(None)

    async def _take_over(self) -> None:
        """The owner is gone: another client may already own the history (then follow it), else
        this process opens it (the lock is free once the owner's process has ended). A request
        and the event stream may both find the owner gone: one takeover, the other waits for it."""
        async with self._takeover_lock:
            if self.local is None:
                await self._take_over_now()

    async def _take_over_now(self) -> None:
        from tui.core.jobs import JobService
        from tui.core.store import HistoryStore

        gone = self.owner.pid
        if self._watch_task is not asyncio.current_task():
            await self._stop_watching()
        elif self._watch_writer is not None:
            self._watch_writer.close()
            self._watch_writer = None
        deadline = time.monotonic() + TAKEOVER_SECONDS
        while True:
            owner = await find_owner(self.settings.db_path)
            if owner is not None and owner.pid not in (gone, os.getpid()):
                self.owner = owner
                reader = await self._watch_owner()
                await asyncio.to_thread(self._store.reload)  # what was written between the two owners
                self._watch_task = asyncio.ensure_future(self._follow_owner(reader))
                return
            if self.read_only_mode:
                # Watching only: never the writer. The next owner is followed when one comes.
                if time.monotonic() > deadline:
                    raise NoOwner("no process serves the history any more")
                await asyncio.sleep(0.5)
                continue
            # Read as the history this process held was (lazily in the dashboard).
            store = await asyncio.to_thread(HistoryStore.open, self.settings.db_path,
                                            lazy=getattr(self._store, "lazy", False))
            if self._closed:
                store.close()  # closed meanwhile: nobody to carry on for
                raise NoOwner("closed")
            if not store.read_only:
                break
            store.close()
            if time.monotonic() > deadline:
                raise NoOwner("the history stays locked by a process that does not answer")
            await asyncio.sleep(0.05)  # the old owner's process is still ending (its lock goes with it)
        local = JobService.around(self.settings, store)
        local.subscribe(self.hub.emit)
        local.subscribe(lambda _event: self._wake())
        self.local = local
        await local.serve_others(self.role)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None
        if self._wants_polling:
            await local.start()
        self._wake()
