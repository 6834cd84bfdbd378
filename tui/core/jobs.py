"""The job service: the one object the dashboard and the headless CLI both use.

It composes the catalog (validation, request bodies), the history store, the API client
and the poller. Its promises:
- a job is on disk (flushed) before its POST leaves, so a crash never loses a billed job;
- a POST whose outcome is unknown is recorded as `unknown` and never re-sent;
- the history never holds image bytes, only where the image came from and its checksum;
- every change a user could see is emitted once, as a `tui.core.events` value;
- one server id belongs to one job: a submit answered with an id the history already has is
  recorded as a `conflict` naming the other job, never followed twice;
- `wait()` ends: when the jobs end, or with PollingHalted when polling stops for the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from tui.core import catalog, costs
from tui.core.api.errors import (
    ApiError,
    DuplicateIdError,
    NotFoundError,
    PollingHalted,
    SubmitOutcomeUnknownError,
    UnusableIdError,
)
from tui.core.api.models import Prediction, usable_prediction_id
from tui.core.catalog import FieldError, VideoRequest
from tui.core.config import ENV_KEY, Settings
from tui.core.events import DownloadFinished, DownloadProgress, EventHub, JobChanged, JobRemoved, Notice, PollerState
from tui.core.eta import Estimate, EtaBook, EtaSchedule
from tui.core.poller import Polled, PollEvent, PollFailed, Poller, RateLimited, StateChanged
from tui.core.records import (
    CONFLICT,
    EXPIRED,
    REJECTED,
    SUBMITTING,
    UNKNOWN,
    UNKNOWN_OUTCOME_MESSAGE,
    Job,
    new_local_id,
)

if TYPE_CHECKING:
    from tui.core.downloads import Downloader, SavedFile
    from tui.core.store import HistoryStore

log = logging.getLogger("hailuo_tui.jobs")

#: Status of an attached id until its first answer arrives (the server's status is not known yet).
ATTACHED = "attached"
EXPIRED_MESSAGE = "the server no longer keeps this prediction (it is older than the retention time)"
NO_KEY_SUBMIT = f"no API key: set {ENV_KEY} to submit (history is read-only)"
NO_KEY_POLL = f"no API key: set {ENV_KEY} to follow running jobs"
READ_ONLY_MODE = "read-only mode (--read-only): watching and copying only, nothing is submitted or forgotten"


def duplicate_id_message(server_id: str, other: Job) -> str:
    return (f"the server answered with id {server_id}, which job {other.local_id} already has: this submit may "
            "have created another job (and may be billed) that the server did not name; it is not followed "
            "and was not re-sent. Check the provider's dashboard.")


def parse_prediction_ids(text: str) -> tuple[list[str], str | None]:
    """Prediction ids pasted as text (one or many, split by spaces, commas or lines; each once,
    in order) and the first problem with them, as a line for the user (None when all are usable)."""
    import re

    ids = list(dict.fromkeys(piece for piece in re.split(r"[\s,;]+", text) if piece))
    for ident in ids:
        why = usable_prediction_id(ident)
        if why is not None:
            shown = ident if len(ident) <= 40 else ident[:39] + "…"
            return ids, f"{shown!r} {why}"
    return ids, None


class ValidationFailed(Exception):
    """The request is wrong; nothing was recorded or sent. `errors` name the fields."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class SubmitFailed(ApiError):
    """The POST failed after the job was recorded: `.job` is the record, `.error` the cause.

    It is an ApiError with the cause's message, kind and exit code, so callers that only
    know ApiError show the right thing.
    """

    def __init__(self, job: Job, error: ApiError) -> None:
        super().__init__(error.message, status=error.status, detail=error.detail)
        self.job = job
        self.error = error
        self.kind = error.kind
        self.exit_code = error.exit_code


class SubmitDisabled(Exception):
    """Submitting is off (no key, read-only history); the message says why."""


class BudgetRefused(SubmitDisabled):
    """Sending this would pass a budget; nothing was recorded or sent. The message is the one line
    that names the budget, what is left and how to change it."""


class ReadOnlyRefused(Exception):
    """A change to the history was asked of a read-only instance; the message says why."""


class HistoryNotWritten(OSError):
    """The job could not be recorded before its POST, so it was not sent; the message says why.
    An OSError (errno and strerror of the failed write) for callers that handle those."""

    def __init__(self, cause: OSError) -> None:
        from tui.core.store import write_failure_reason

        super().__init__(cause.errno, write_failure_reason(cause))
        self.message = f"not sent: the job could not be recorded first ({self.strerror})"

    def __str__(self) -> str:
        return self.message


HISTORY_WRITE = "history-write"


def _image_record(source: str, info: catalog.ImageInfo | None = None) -> dict[str, Any]:
    info = info if info is not None else catalog.inspect_image(source)
    record = info.to_record()
    return {
        "source": record.get("source", source),
        "size_bytes": record.get("size_bytes"),
        "sha256": record.get("sha256"),
        "width": record.get("width"),
        "height": record.get("height"),
        "format": record.get("format"),
    }


def request_record(request: VideoRequest, infos: dict[str, catalog.ImageInfo] | None = None) -> dict[str, Any]:
    """The request as kept in history: images by source and checksum, never their bytes (`infos`:
    what reading them found already, so no file is opened again)."""
    record = request.to_dict()
    for name in ("image", "end_image"):
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            record[name] = _image_record(value, (infos or {}).get(name))
        else:
            record[name] = None
    return record


def prepare_submit(request: VideoRequest, *, allow_uncertain: bool = False,
                   images: catalog.ReadImages | None = None
                   ) -> tuple[list[FieldError], dict[str, Any] | None, dict[str, Any] | None]:
    """(errors, body, record) for a submit, each image file opened once for its checks, its
    data: URL and its checksum — or not at all when `images` (read by the form) is for this
    request. Blocking: run it in a thread. Body and record are None when there are errors."""
    errors = catalog.validate(request, allow_uncertain=allow_uncertain, check_files=False)
    if images is None or not images.matches(request):
        images = catalog.read_images(request)
    errors.extend(images.errors)
    if errors:
        return errors, None, None
    return errors, catalog.api_body(request, images.payloads), request_record(request, images.infos)


class JobService:
    def __init__(
        self,
        settings: Settings,
        store: Any,
        client: Any | None,
        *,
        poller: Poller | None = None,
        read_only: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.hub = EventHub()
        self._read_only = read_only
        self._now = wall_clock
        #: When this service began (the day budget's "today" is the local calendar day).
        self.session_start = wall_clock()
        #: "This session" for budget_session and the stats panel: the jobs this service recorded
        #: for a POST, kept even if forgotten later (forgetting a job does not refund it).
        self.session_jobs: dict[str, Job] = {}
        self.prices = costs.PriceTable(settings.prices)
        self.budgets = costs.Budgets.from_settings(settings)
        #: Expected times to finish, from the history's completed jobs (ETA cells, ETA-aware polling).
        self.eta = EtaBook()
        self.eta.reset(store.all() if hasattr(store, "all") else ())
        if poller is None and client is not None:
            poller = Poller(
                client.result,
                concurrency=settings.poll_concurrency,
                rate=settings.poll_rate,
                base_interval=settings.poll_base_interval,
                max_interval=settings.poll_max_interval,
                schedule=self.eta_schedule() if settings.eta_polling else None,
            )
        self.poller = poller
        if poller is not None:
            poller.subscribe(self._on_poll_event)
        self._change_waiters: set[asyncio.Future] = set()
        self._started = False
        self._closed = False
        self._downloader: Downloader | None = None
        #: Jobs whose outputs are being saved now (local ids): one download per job at a time.
        self.downloading: set[str] = set()
        #: Tasks running a download (started here or by a caller), cancelled by close().
        self._download_tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The socket this service serves its history on to the user's other processes (tui.core.share).
        self.share: Any | None = None
        if hasattr(store, "on_write_error"):
            store.on_write_error = self._on_write_error

    def eta_schedule(self) -> EtaSchedule:
        """The poller's ETA-aware interval for this service's jobs."""

        def lookup(server_id: str) -> tuple[float, Estimate] | None:
            job = self.store.find_by_server_id(server_id)
            if job is None:
                return None
            return max(0.0, self._now() - job.submitted_at), self.eta.estimate(job)

        return EtaSchedule(lookup, base_interval=self.settings.poll_base_interval,
                           max_interval=self.settings.poll_max_interval)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, *, read_only: bool = False) -> "JobService":
        from tui.core.store import HistoryStore

        read_only = read_only or settings.read_only
        return cls.around(settings, HistoryStore.open(settings.db_path, read_only=read_only), read_only=read_only)

    @classmethod
    def around(cls, settings: Settings, store: HistoryStore, *, read_only: bool = False) -> "JobService":
        """The service over a history already open (closed again if the service cannot be built)."""
        try:
            client = _client_for(settings) if settings.has_key else None
            return cls(settings, store, client, read_only=read_only or settings.read_only)
        except BaseException:
            store.close()  # release the writer lock for the next try
            raise

    # -- events -----------------------------------------------------------------------------
    def subscribe(self, listener) -> Callable[[], None]:
        return self.hub.subscribe(listener)

    def _emit(self, event) -> None:
        self.hub.emit(event)
        # A poller state change can end a wait too (polling stopped for the key).
        if isinstance(event, (JobChanged, JobRemoved, PollerState)):
            for waiter in list(self._change_waiters):
                if not waiter.done():
                    waiter.set_result(None)

    # -- capabilities -----------------------------------------------------------------------
    @property
    def read_only(self) -> bool:
        return self._read_only or self.settings.read_only or bool(getattr(self.store, "read_only", False))

    @property
    def read_only_reason(self) -> str | None:
        """Why this instance may not change the history (None when it may)."""
        if self._read_only or self.settings.read_only:
            return READ_ONLY_MODE
        if getattr(self.store, "read_only", False):
            notices = [n for n in getattr(self.store, "notices", []) or [] if "read-only" in n]
            return notices[-1] if notices else "the history is open read-only: submitting is off"
        return None

    @property
    def can_submit(self) -> bool:
        return self.submit_disabled_reason is None

    @property
    def submit_disabled_reason(self) -> str | None:
        if self._read_only or self.settings.read_only:
            return READ_ONLY_MODE  # asked for: say so before anything else
        if not self.settings.has_key or self.client is None:
            return NO_KEY_SUBMIT
        return self.read_only_reason

    @property
    def poller_state(self) -> PollerState:
        if self.poller is None:
            return PollerState(running=False, pending=len(self.store.pending()),
                               last_error=NO_KEY_POLL if not self.settings.has_key else None)
        status = self.poller.state
        return PollerState(
            running=status.running and status.halted is None,
            paused=status.paused,
            rate_limited_until=status.rate_limited_until_wall,
            rate_limit_capped=status.rate_limit_capped,
            pending=status.tracked if self._started else len(self.store.pending()),
            in_flight=status.in_flight,
            last_error=status.halted or status.last_error,
        )

    def _emit_state(self) -> None:
        self._emit(self.poller_state)

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def _on_write_error(self, message: str | None) -> None:
        """From the store's writer thread (or a flush): tell the user on the service's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        notice = (Notice(message, "error", topic=HISTORY_WRITE) if message is not None
                  else Notice("the history is being written again", "information", topic=HISTORY_WRITE))
        try:
            loop.call_soon_threadsafe(self._emit, notice)
        except RuntimeError:
            pass  # the loop closed meanwhile

    # -- serving the history to other processes ---------------------------------------------
    async def serve_others(self, role: str) -> Any | None:
        """Owning the history (its lock), serve it to this user's other processes, so that they
        submit, attach and forget through this one instead of being refused. A socket that
        cannot be made is a notice, never a failure: this process works as before."""
        from tui.core.share import ShareServer

        self._bind_loop()
        if self.share is not None or getattr(self.store, "read_only", True) or not hasattr(self.store, "path"):
            return self.share
        server = ShareServer(self, role=role)
        try:
            await server.start()
        except OSError as exc:
            log.warning("cannot serve the history to other processes: %s", exc)
            self._emit(Notice(f"other terminals cannot use this history meanwhile: cannot make {server.path} "
                              f"({exc.strerror or exc})", "warning"))
            return None
        self.share = server
        return server

    # -- starting ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume every pending job in the history, spread out so a big restart does not burst."""
        self._bind_loop()
        if self.poller is None:
            self._emit_state()
            return
        now = self._now()
        self._settle_shared_ids(now)
        pending = sorted(self.store.pending(), key=lambda j: j.submitted_at, reverse=True)
        rate = self.poller.rate
        window = min(self.poller.max_interval, len(pending) / rate) if rate > 0 else 0.0
        for index, job in enumerate(pending):
            assert job.server_id is not None  # pending implies it
            self.poller.track(job.server_id, status=job.status, age=max(0.0, now - _last_change(job)),
                              due_in=window * index / max(1, len(pending)))
        self._started = True
        await self.poller.start()
        self._emit_state()

    def _settle_shared_ids(self, now: float) -> None:
        """Pending jobs sharing a server id (a history written before conflicts were caught):
        the one the history indexes is followed, the others become conflicts, so no wait
        is left on a job that can never change."""
        if getattr(self.store, "read_only", False):
            return
        for job in self.store.pending():
            owner = self.store.find_by_server_id(job.server_id) if job.server_id else None
            if owner is not None and owner.local_id != job.local_id:
                server_id, job.server_id = job.server_id, None
                self._mark(job, CONFLICT, duplicate_id_message(server_id, owner))

    # -- submitting -------------------------------------------------------------------------
    def validate(self, request: VideoRequest) -> list[FieldError]:
        return catalog.validate(request, allow_uncertain=self.settings.allow_uncertain_resolutions)

    # -- costs ------------------------------------------------------------------------------
    def estimate(self, request: VideoRequest) -> costs.Estimate:
        return self.prices.for_request(request)

    def budget_refusal(self, requests: Sequence[VideoRequest], *, batch: bool = False) -> str | None:
        """Why sending these would pass a budget (one line), or None. The history's jobs count as
        `tui.core.costs` says, those being sent right now included, so concurrent submits (a
        batch's workers, the dashboard beside it) cannot slip past a budget together."""
        return costs.refusal_for_history(requests, self.store, self.session_jobs.values(), self.prices,
                                         self.budgets, now=self._now(), batch=batch)

    async def submit(self, request: VideoRequest, *, idempotency_key: str | None = None,
                     images: catalog.ReadImages | None = None) -> Job:
        """Record, then POST. Raises ValidationFailed before anything is recorded, SubmitFailed after.

        HistoryNotWritten: the record could not be written, so nothing was sent.
        BudgetRefused: it would pass a budget; nothing was recorded or sent.
        `images`: the request's image files as the form read them (not opened again).
        """
        self._bind_loop()
        # Image checks read files (and hash them): off the event loop, and each file once for its
        # checks, the body (with base64 images) and the record. The body is built before recording,
        # so a file that vanishes now cannot leave a record of a POST that was never sent.
        errors, body, record = await asyncio.to_thread(
            prepare_submit, request, allow_uncertain=self.settings.allow_uncertain_resolutions, images=images)
        if errors:
            raise ValidationFailed(errors)
        reason = self.submit_disabled_reason
        if reason is not None:
            raise SubmitDisabled(reason)
        if idempotency_key:
            existing = self.store.find_by_idempotency_key(idempotency_key)
            # A rejected submit created nothing on the server: its key may be sent again.
            if existing is not None and existing.status != REJECTED:
                return existing
        # Checked here, with no await before the record is made: two submits on this loop cannot
        # both pass on the same room left.
        refused = self.budget_refusal([request])
        if refused is not None:
            raise BudgetRefused(refused)
        now = self._now()
        job = Job(local_id=new_local_id(), request=record, submitted_at=now,
                  idempotency_key=idempotency_key, status_history=[[SUBMITTING, now]])
        self.store.put(job)
        self.session_jobs[job.local_id] = job
        try:
            await self.store.flush_async()
        except OSError as exc:
            # Not on disk, so not sent: take the record back, or a later write would turn it
            # into an "unknown" job that never existed.
            self.store.remove(job.local_id)
            raise HistoryNotWritten(exc) from None
        except asyncio.CancelledError:
            # Stopped before the POST left: nothing was sent, so no "unknown" job may be left behind.
            self.store.remove(job.local_id)
            raise
        self._emit(JobChanged(job, None, added=True))
        try:
            prediction = await self.client.create(request.model, request.scene, body)
        except SubmitOutcomeUnknownError as exc:
            cause = exc.cause.message if exc.cause is not None else exc.message
            await self._record_failure(job, UNKNOWN, f"{UNKNOWN_OUTCOME_MESSAGE} Cause: {cause}")
            raise SubmitFailed(job, exc) from exc
        except ApiError as exc:
            await self._record_failure(job, REJECTED, exc.message)
            raise SubmitFailed(job, exc) from exc
        except asyncio.CancelledError:
            # Stopped mid-POST: it may have been sent. Record that before giving up.
            self._mark(job, UNKNOWN, UNKNOWN_OUTCOME_MESSAGE)
            _quiet(self.store.flush)
            raise
        except Exception as exc:  # noqa: BLE001 - an unforeseen failure after sending is an unknown outcome
            log.exception("submit failed unexpectedly")
            await self._record_failure(job, UNKNOWN, UNKNOWN_OUTCOME_MESSAGE)
            raise SubmitFailed(job, SubmitOutcomeUnknownError(UNKNOWN_OUTCOME_MESSAGE)) from exc
        other = self.store.find_by_server_id(prediction.id)
        if other is not None and other.local_id != job.local_id:
            message = duplicate_id_message(prediction.id, other)
            job.raw = prediction.raw
            await self._record_failure(job, CONFLICT, message)
            raise SubmitFailed(job, DuplicateIdError(message))
        job.apply(prediction, self._now())
        self.store.put(job)
        await self._flush_or_tell()
        self._emit(JobChanged(job, SUBMITTING))
        self._track(job)
        return job

    async def _flush_or_tell(self) -> None:
        """Flush after the POST: the job exists now whatever the disk says. A failed write keeps
        it in memory (the writer retries) and the user hears of it through the store's report."""
        try:
            await self.store.flush_async()
        except OSError:
            log.warning("history write failed after a submit; kept in memory")

    def _mark(self, job: Job, status: str, message: str) -> None:
        job.set_status(status, self._now())
        job.error = message
        self.store.put(job)

    async def _record_failure(self, job: Job, status: str, message: str) -> None:
        self._mark(job, status, message)
        await self._flush_or_tell()
        self._emit(JobChanged(job, SUBMITTING))

    def _track(self, job: Job) -> None:
        if self.poller is not None and job.is_pending and job.server_id:
            self.poller.track(job.server_id, status=job.status)
            self._emit_state()

    # -- attaching --------------------------------------------------------------------------
    async def attach(self, server_ids: Iterable[str]) -> list[Job]:
        """Add existing prediction ids to the history (once each) and follow them.

        Each new id is looked up first; an id the server does not know, or a refused key,
        raises before anything is recorded.
        """
        reason = self.read_only_reason
        if reason is not None:
            raise ReadOnlyRefused(reason)
        ids = list(dict.fromkeys(s.strip() for s in server_ids if s and s.strip()))
        for sid in ids:
            why = usable_prediction_id(sid)
            if why is not None:
                raise UnusableIdError(f"{sid!r} {why}")
        existing = {sid: self.store.find_by_server_id(sid) for sid in ids}
        new_ids = [sid for sid in ids if existing[sid] is None]
        answers: dict[str, Prediction | ApiError] = {}
        if new_ids and self.client is not None:
            answers = await self._look_up(new_ids)
            for sid in new_ids:
                answer = answers[sid]
                if isinstance(answer, NotFoundError):
                    raise NotFoundError(f"{sid}: {answer.message}", status=answer.status)
                if isinstance(answer, ApiError) and answer.exit_code == 3:
                    raise answer
        now = self._now()
        result: list[Job] = []
        added: list[Job] = []
        for sid in ids:
            job = existing[sid]
            if job is None:
                job = Job(local_id=new_local_id(), request={"model": "", "scene": "", "prompt": "", "attached": True},
                          submitted_at=now, server_id=sid, status=ATTACHED, status_history=[[ATTACHED, now]])
                answer = answers.get(sid)
                if isinstance(answer, Prediction):
                    job.apply(answer, now)
                    if answer.model:
                        job.request["model"] = answer.model
                elif isinstance(answer, ApiError):
                    job.poll_errors = 1
                    job.last_poll_error = answer.message
                self.store.put(job)
                added.append(job)
            result.append(job)
        if added:
            await self._flush_or_tell()
            for job in added:
                self._emit(JobChanged(job, None, added=True))
                self._track(job)
        return result

    async def _look_up(self, server_ids: list[str]) -> dict[str, Prediction | ApiError]:
        """Through the poller: its concurrency, rate cap and 429 pause hold for look-ups too,
        so attaching is never slower (nor harder on the server) than a poll sweep."""
        if self.poller is not None:
            return await self.poller.look_up(server_ids)

        async def one(sid: str) -> Prediction | ApiError:
            try:
                return await self.client.result(sid)
            except ApiError as exc:
                return exc

        answers = await asyncio.gather(*(one(sid) for sid in server_ids))
        return dict(zip(server_ids, answers))

    # -- poll events ------------------------------------------------------------------------
    def _on_poll_event(self, event: PollEvent) -> None:
        if isinstance(event, Polled):
            self._on_polled(event)
        elif isinstance(event, PollFailed):
            self._on_poll_failed(event)
        elif isinstance(event, (RateLimited, StateChanged)):
            self._emit_state()

    def _on_polled(self, event: Polled) -> None:
        job = self.store.find_by_server_id(event.server_id)
        if job is None:
            return  # forgotten meanwhile
        previous = job.status
        created_before = job.created_at
        changed = job.apply(event.prediction, self._now())
        # Written only when something changed; the store coalesces the writes.
        if changed or job.created_at != created_before:
            self._save(job)
        if changed:
            self._emit(JobChanged(job, previous))
            if (self.settings.auto_download and job.is_success and job.outputs and previous != job.status
                    and not self.read_only):
                self.download_in_background(job.local_id)
        if job.is_finished:
            self._emit_state()

    def _on_poll_failed(self, event: PollFailed) -> None:
        job = self.store.find_by_server_id(event.server_id)
        if job is None:
            return
        previous = job.status
        now = self._now()
        if isinstance(event.error, NotFoundError) and now - _born_at(job) > self.settings.retention_seconds:
            if self.poller is not None:
                self.poller.untrack(event.server_id)
            job.set_status(EXPIRED, now)
            job.error = EXPIRED_MESSAGE
            job.poll_errors = 0
            job.last_poll_error = None
            job.last_poll_error_kind = None
            self._save(job)
            self._emit(JobChanged(job, previous))
            self._emit_state()
            return
        # A 404 for a young job is a poll error like any other: the poller keeps asking, slower.
        job.poll_errors = event.consecutive
        job.last_poll_error = event.error.message
        job.last_poll_error_kind = event.error.kind
        self._save(job)
        self._emit(JobChanged(job, previous))

    def _save(self, job: Job) -> None:
        if job.is_success:
            self.eta.update(job)
        if getattr(self.store, "read_only", False):
            return  # another instance owns the file; this one shows changes in memory only
        try:
            self.store.put(job)
        except Exception:  # noqa: BLE001 - a failed write is reported by the store; keep polling
            log.exception("could not record a poll result")

    # -- user actions -----------------------------------------------------------------------
    def forget(self, local_id: str) -> None:
        """Remove from the history (the job stays on the server) and stop following it."""
        reason = self.read_only_reason
        if reason is not None:
            raise ReadOnlyRefused(reason)
        job = self.store.get(local_id)
        if job is None:
            return
        if job.server_id and self.poller is not None:
            self.poller.untrack(job.server_id)
        self.store.remove(local_id)
        self.eta.remove(local_id)
        self._emit(JobRemoved(local_id))
        self._emit_state()

    def refresh(self, local_id: str) -> None:
        job = self.store.get(local_id)
        if job is None or self.poller is None or not job.server_id or not job.is_pending:
            return
        if not self.poller.is_tracked(job.server_id):
            self.poller.track(job.server_id, status=job.status, age=max(0.0, self._now() - _last_change(job)))
        self.poller.refresh(job.server_id)

    def refresh_all(self) -> None:
        if self.poller is not None:
            self.poller.refresh_all()

    def pause(self) -> None:
        if self.poller is not None:
            self.poller.pause()

    def resume(self) -> None:
        if self.poller is not None:
            self.poller.resume()

    async def check(self, local_id: str, *, attempts: int = 3) -> Job | None:
        """Ask the server once for a pending job's state now (e.g. before downloading it).

        Retried on network errors, 5xx and 429 (with Retry-After); other errors are raised.
        """
        from tui.core.api.errors import NetworkError, RateLimitedError, ServerError

        job = self.store.get(local_id)
        if job is None or self.client is None or not job.server_id or not job.is_pending:
            return job
        for attempt in range(attempts):
            try:
                prediction = await self.client.result(job.server_id)
                break
            except (NetworkError, ServerError, RateLimitedError) as exc:
                if attempt + 1 >= attempts:
                    raise
                await asyncio.sleep(min(getattr(exc, "retry_after", None) or 0.5 * 2 ** attempt, 10.0))
        previous = job.status
        if job.apply(prediction, self._now()):
            self._save(job)
            self._emit(JobChanged(job, previous))
        return job

    # -- downloads --------------------------------------------------------------------------
    def _get_downloader(self) -> "Downloader":
        if self._downloader is None:
            from tui.core.downloads import Downloader

            self._downloader = Downloader(connect_timeout=self.settings.connect_timeout,
                                          read_timeout=self.settings.read_timeout)
        return self._downloader

    async def download(self, local_id: str, *, directory: Path | None = None) -> list["SavedFile"]:
        """Save every output of a job into `directory` (default: the download directory).

        Emits DownloadProgress while bytes arrive and one DownloadFinished at the end; each
        saved file is recorded on the job (when the history is writable). Raises DownloadError
        (NothingToDownload for a job without outputs) with the files saved so far recorded.
        """
        from tui.core.downloads import DownloadError, NothingToDownload, nothing_to_download, output_file_name

        job = self.store.get(local_id)
        if job is None:
            raise DownloadError("no such job in the history", exit_code=2)
        reason = nothing_to_download(job)
        if reason is not None:
            raise NothingToDownload(reason)
        if local_id in self.downloading:
            raise DownloadError("being downloaded already", exit_code=2)  # the caller names the job
        target = Path(directory if directory is not None else self.settings.download_dir).expanduser()
        downloader = self._get_downloader()
        self.downloading.add(local_id)
        task = asyncio.current_task()
        if task is not None:
            self._download_tasks.add(task)
        saved: list[SavedFile] = []
        urls = list(job.outputs)

        def finished(error: str | None) -> DownloadFinished:
            return DownloadFinished(local_id, tuple(str(f.path) for f in saved), error,
                                    tuple(f.outcome for f in saved))

        failures: list[tuple[int, DownloadError]] = []
        try:
            # Every output is tried: one that fails (a dead link, a `javascript:` URL) must not
            # keep the others from being saved.
            for index, url in enumerate(urls):
                destination = target / output_file_name(job, index)

                def progress(received: int, total: int | None, index: int = index, path: Path = destination) -> None:
                    self._emit(DownloadProgress(local_id, index, len(urls), received, total, str(path)))

                try:
                    result = await downloader.fetch(url, destination, known=list(job.downloads), on_progress=progress)
                except DownloadError as exc:
                    if exc.exit_code == 2 and not isinstance(exc, NothingToDownload):
                        raise  # a local problem (directory, disk): the next output meets it too
                    failures.append((index, exc))
                    continue
                saved.append(result)
                self._record_download(job, result)
            if failures:
                raise _combined(failures, len(urls))
        except DownloadError as exc:
            self._emit(finished(exc.message))
            raise
        except asyncio.CancelledError:
            self._emit(finished("stopped; the partial file is kept and the next download resumes it"))
            raise
        finally:
            self.downloading.discard(local_id)
            if task is not None:
                self._download_tasks.discard(task)
        self._emit(finished(None))
        return saved

    def _record_download(self, job: Job, saved: "SavedFile") -> None:
        entry = saved.record(self._now())
        job.downloads = [d for d in job.downloads if d.get("path") != entry["path"]] + [entry]
        self._save(job)
        self._emit(JobChanged(job, job.status))

    def download_in_background(self, local_id: str, *, directory: Path | None = None) -> asyncio.Task:
        """Start `download()` as a task; failures arrive as DownloadFinished events (never raised)."""
        from tui.core.downloads import DownloadError

        async def run() -> None:
            try:
                await self.download(local_id, directory=directory)
            except DownloadError as exc:
                log.info("download of %s failed: %s", local_id, exc.message)
            except Exception as exc:  # noqa: BLE001 - reported to the user, never a crash of the poller
                log.exception("download failed unexpectedly")
                self._emit(Notice(f"download failed: {exc}", "error"))

        task = asyncio.ensure_future(run())
        self._download_tasks.add(task)
        task.add_done_callback(self._download_tasks.discard)
        return task

    async def wait_downloads(self) -> None:
        """Until every download going on has ended."""
        current = asyncio.current_task()
        while others := [t for t in self._download_tasks if t is not current]:
            await asyncio.gather(*others, return_exceptions=True)

    async def wait(self, local_ids: Iterable[str]) -> list[Job]:
        """Until every one of these jobs has ended (a forgotten job counts as ended)."""
        ids = list(local_ids)
        if self.poller is not None:
            await self.poller.start()  # waiting on a job means polling it, even before start()
        while True:
            jobs = [self.store.get(i) for i in ids]
            if all(j is None or j.is_finished for j in jobs):
                return [j for j in jobs if j is not None]
            halted = self.poller.state.halted if self.poller is not None else None
            if halted is not None:
                raise PollingHalted(f"polling stopped: {halted}")
            waiter = asyncio.get_running_loop().create_future()
            self._change_waiters.add(waiter)
            try:
                await waiter
            finally:
                self._change_waiters.discard(waiter)

    async def close(self) -> None:
        """Stop polling, put everything on disk, release the history and the connection."""
        if self._closed:
            return
        self._closed = True
        if self.share is not None:
            # Requests in flight (a submit mid-POST) finish and are answered before anything stops.
            await self.share.close()
        if self.poller is not None:
            await self.poller.stop()
        current = asyncio.current_task()
        downloads = [t for t in self._download_tasks if t is not current]
        for task in downloads:
            task.cancel()  # a cut download keeps its .part; the next one resumes it
        if downloads:
            await asyncio.gather(*downloads, return_exceptions=True)
        if self._downloader is not None:
            await self._downloader.aclose()
        if not getattr(self.store, "read_only", False):
            try:
                await self.store.flush_async()
            except Exception:  # noqa: BLE001 - close() must still release the lock
                log.exception("final flush failed")
        await asyncio.to_thread(self.store.close)
        if self.client is not None:
            await self.client.aclose()

    async def __aenter__(self) -> "JobService":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _client_for(settings: Settings):
    from tui.core.api.client import HailuoClient

    # The poller schedules its own retries (within its rate cap and its 429 pause), so the
    # client does not retry polls behind its back.
    return HailuoClient(
        settings.base_url,
        settings.api_key,
        auth_scheme=settings.auth_scheme,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_connections=max(16, settings.poll_concurrency + 2),
        get_retries=0,
    )


def _combined(failures: list, total: int):
    """One DownloadError for the outputs that failed (each named with its reason)."""
    from tui.core.downloads import DownloadError

    if total == 1:
        return failures[0][1]
    reasons = "; ".join(f"output {index + 1}: {error.message}" for index, error in failures[:3])
    more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    return DownloadError(f"{len(failures)} of {total} outputs failed ({reasons}{more})",
                         exit_code=failures[0][1].exit_code,
                         resumable=any(error.resumable for _, error in failures))


def _born_at(job: Job) -> float:
    """Where retention is counted from: the later of the local submit time and the server's
    time, so a server clock (or answer) far in the past cannot expire a job just submitted."""
    if job.created_at is None:
        return job.submitted_at
    return max(job.submitted_at, job.created_at)


def _last_change(job: Job) -> float:
    if job.status_history:
        try:
            return float(job.status_history[-1][1])
        except (TypeError, ValueError, IndexError):
            pass
    return job.submitted_at


def _quiet(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - best effort while being cancelled
        log.exception("flush while cancelling failed")
