"""The poller: one scheduler task that asks the server about every unfinished job.

Pure asyncio; it knows a `fetch(server_id) -> Prediction` coroutine and nothing else
(no store, no widgets). Every tracked job has a due time in one heap; one sleep waits for
the earliest of them (or for a wake-up: track, refresh, resume). A semaphore bounds the
requests in flight and a token bucket caps the request rate of all jobs together, so 500
pending jobs never become 500 simultaneous requests.

Intervals adapt: a job is asked often right after a status change and less often the
longer it stays quiet, unless a pluggable `schedule` (the ETA-aware one, tui.core.eta) says
otherwise for that job. Errors back a single job off; a 429 pauses every job until
Retry-After has passed (MAX_RETRY_AFTER at most, whatever the header says); a refused key
stops everything until `resume()`.

`look_up(ids)` asks about ids once (e.g. before attaching them) through the same
scheduler: its concurrency, its rate cap and its 429 pause, never around them.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Union

from tui.core.api.errors import ApiError, InvalidKeyError, PermissionDeniedError, RateLimitedError
from tui.core.api.models import Prediction

log = logging.getLogger("hailuo_tui.poller")

Fetch = Callable[[str], Awaitable[Prediction]]
#: A pluggable per-job interval: (server id, seconds its status has been quiet) -> seconds until
#: its next poll, or None to use the poller's own age-based interval (`Poller.interval_for`).
Schedule = Callable[[str, float], Union[float, None]]

#: Pause after a 429 that names no Retry-After.
DEFAULT_RETRY_AFTER = 5.0
#: A Retry-After beyond this is treated as this: a broken or hostile header must not stop
#: polling for hours. The status line shows when the pause ends.
MAX_RETRY_AFTER = 300.0
#: A look-up met by this many 429 pauses in a row answers with the 429 instead of waiting on.
LOOK_UP_RATE_LIMIT_TRIES = 3


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollerStatus:
    running: bool = False
    #: Paused by the user (`pause()`).
    paused: bool = False
    #: Set when the key was refused: nothing is polled until `resume()`.
    halted: str | None = None
    rate_limited_until: float | None = None  # on the poller's clock (monotonic)
    rate_limited_until_wall: float | None = None  # epoch seconds
    rate_limit_capped: bool = False
    tracked: int = 0
    in_flight: int = 0
    last_error: str | None = None

    @property
    def polling(self) -> bool:
        return self.running and not self.paused and self.halted is None


@dataclass(frozen=True)
class Polled:
    server_id: str
    prediction: Prediction


@dataclass(frozen=True)
class PollFailed:
    server_id: str
    error: ApiError
    #: Failed polls of this job in a row (429s are not counted: they pause everyone instead).
    consecutive: int


@dataclass(frozen=True)
class RateLimited:
    until: float  # epoch seconds
    retry_after: float
    #: Pauses in a row without one answer in between: a wait can give up on a 429 that never ends.
    in_a_row: int = 1


@dataclass(frozen=True)
class StateChanged:
    status: PollerStatus


PollEvent = Union[Polled, PollFailed, RateLimited, StateChanged]
PollListener = Callable[[PollEvent], None]


# -- pieces -----------------------------------------------------------------------------------


class TokenBucket:
    """`rate` tokens a second, at most `capacity` saved up; rate <= 0 means no cap."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 when one is)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        # The epsilon keeps float rounding from turning one wait into two.
        if self.tokens >= 1.0 - 1e-9:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        if self.rate <= 0:
            return
        self._refill(now)
        self.tokens -= 1.0


@dataclass
class _Job:
    server_id: str
    status: str | None
    #: Poller-clock time of the last status change: the longer ago, the longer the interval.
    changed_at: float
    due: float = 0.0
    errors: int = 0
    in_flight: bool = False
    #: Bumped on every reschedule; heap entries with an older token are stale.
    token: int = 0
    #: Asked about once for `look_up()`, not followed: no events, gone after its answer.
    probe: bool = False
    #: Futures of `look_up()` calls waiting for this job's next answer.
    waiters: list = field(default_factory=list)
    rate_limited_tries: int = 0


# -- the poller -------------------------------------------------------------------------------


class Poller:
    def __init__(
        self,
        fetch: Fetch,
        *,
        concurrency: int = 8,
        rate: float = 10.0,
        base_interval: float = 2.0,
        max_interval: float = 20.0,
        backoff_fraction: float = 0.5,
        error_max_interval: float | None = None,
        burst: float = 1.0,
        default_retry_after: float = DEFAULT_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        schedule: Schedule | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._fetch = fetch
        self.concurrency = concurrency
        self.rate = rate
        self.base_interval = max(0.0, base_interval)
        self.max_interval = max(self.base_interval, max_interval)
        self.backoff_fraction = backoff_fraction
        self.error_max_interval = error_max_interval if error_max_interval is not None else max(self.max_interval, 60.0)
        self.default_retry_after = default_retry_after
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self.schedule = schedule
        self._bucket = TokenBucket(rate, burst, clock())
        self._slots = asyncio.Semaphore(concurrency)
        self._jobs: dict[str, _Job] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = 0
        # Jobs asked for "now" (refresh): polled before the heap, even while paused by the user.
        self._forced: deque[str] = deque()
        self._forced_set: set[str] = set()
        self._listeners: list[PollListener] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._polls: set[asyncio.Task] = set()
        self._paused = False
        self._halted: str | None = None
        self._rate_limited_until: float | None = None
        self._rate_limited_until_wall: float | None = None
        self._last_error: str | None = None
        self._last_announced: tuple | None = None
        self._pauses_in_a_row = 0
        self._rate_limit_capped = False
        self.requests_sent = 0

    # -- subscribers ------------------------------------------------------------------------
    def subscribe(self, listener: PollListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: PollEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not stop polling
                log.exception("poll listener failed")

    def _announce_state(self) -> None:
        """Emit StateChanged when something a status line shows has changed."""
        status = self.state
        key = (status.running, status.paused, status.halted, status.rate_limited_until, status.last_error)
        if key != self._last_announced:
            self._last_announced = key
            self._emit(StateChanged(status))

    # -- state ------------------------------------------------------------------------------
    @property
    def state(self) -> PollerStatus:
        return PollerStatus(
            running=self._task is not None and not self._task.done(),
            paused=self._paused,
            halted=self._halted,
            rate_limited_until=self._rate_limited_until,
            rate_limited_until_wall=self._rate_limited_until_wall,
            rate_limit_capped=self._rate_limited_until is not None and self._rate_limit_capped,
            tracked=sum(1 for j in self._jobs.values() if not j.probe),
            in_flight=sum(1 for j in self._jobs.values() if j.in_flight),
            last_error=self._last_error,
        )

    @property
    def tracked(self) -> frozenset[str]:
        return frozenset(sid for sid, job in self._jobs.items() if not job.probe)

    def is_tracked(self, server_id: str) -> bool:
        job = self._jobs.get(server_id)
        return job is not None and not job.probe

    def interval_for(self, quiet_seconds: float) -> float:
        """The wait before the next poll of a job whose status has not changed for this long."""
        return min(self.max_interval, max(self.base_interval, quiet_seconds * self.backoff_fraction))

    def next_interval(self, server_id: str, quiet_seconds: float) -> float:
        """The wait before a job's next poll after an answer: the pluggable schedule's, else by age."""
        if self.schedule is not None:
            try:
                chosen = self.schedule(server_id, quiet_seconds)
            except Exception:  # noqa: BLE001 - a broken schedule must not stop polling
                log.exception("poll schedule failed")
                chosen = None
            if chosen is not None:
                return max(0.0, chosen)
        return self.interval_for(quiet_seconds)

    def error_delay(self, consecutive: int) -> float:
        step = max(self.base_interval, 0.05)
        return min(self.error_max_interval, step * 2 ** min(max(consecutive - 1, 0), 30))

    # -- tracking ---------------------------------------------------------------------------
    def track(self, server_id: str, *, status: str | None = None, age: float = 0.0, due_in: float = 0.0) -> None:
        """Poll this job until it ends. `age`: seconds since its status last changed."""
        existing = self._jobs.get(server_id)
        if existing is not None:
            existing.probe = False  # looked up and now followed: it stays after its answer
            return
        now = self._clock()
        job = _Job(server_id, status, changed_at=now - max(0.0, age))
        self._jobs[server_id] = job
        self._idle.clear()
        self._schedule(job, now + max(0.0, due_in))

    def untrack(self, server_id: str) -> None:
        job = self._jobs.pop(server_id, None)
        if job is None:
            return
        self._answer_waiters(job, ApiError("no longer followed"))
        job.token += 1
        self._forced_set.discard(server_id)
        if not self._jobs:
            self._idle.set()
            self._heap.clear()
        self._wake.set()

    async def look_up(self, server_ids: list[str]) -> dict[str, "Prediction | ApiError"]:
        """Ask about each id once, through the scheduler (concurrency, rate cap, 429 pause, even
        while paused by the user); ids already followed get their next answer. A 429 is waited
        out up to LOOK_UP_RATE_LIMIT_TRIES pauses, then answered; a refused key answers all."""
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future] = {}
        for server_id in dict.fromkeys(server_ids):
            future = loop.create_future()
            futures[server_id] = future
            job = self._jobs.get(server_id)
            if job is None:
                job = _Job(server_id, None, changed_at=self._clock(), probe=True)
                self._jobs[server_id] = job
                self._idle.clear()
            job.waiters.append(future)
            self._force(job)
            if self._halted is not None:
                self._answer_waiters(job, InvalidKeyError(self._halted))
        await self.start()
        await asyncio.gather(*futures.values())
        return {server_id: future.result() for server_id, future in futures.items()}

    def _force(self, job: _Job) -> None:
        if job.in_flight or job.server_id in self._forced_set:
            return  # the answer on its way (or asked for) serves the waiters too
        self._forced.append(job.server_id)
        self._forced_set.add(job.server_id)
        self._wake.set()

    def _answer_waiters(self, job: _Job, answer: "Prediction | ApiError") -> None:
        waiters, job.waiters = job.waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(answer)
        if job.probe and self._jobs.get(job.server_id) is job:
            del self._jobs[job.server_id]
            job.token += 1
            self._forced_set.discard(job.server_id)
            if not self._jobs:
                self._idle.set()

    def refresh(self, server_id: str) -> None:
        """Poll this job now (within the concurrency and rate caps), whatever its interval."""
        job = self._jobs.get(server_id)
        if job is None or job.in_flight or server_id in self._forced_set:
            return
        self._forced.append(server_id)
        self._forced_set.add(server_id)
        self._wake.set()

    def refresh_all(self) -> None:
        for server_id in list(self._jobs):
            self.refresh(server_id)

    def pause(self) -> None:
        self._paused = True
        self._wake.set()
        self._announce_state()

    def resume(self) -> None:
        """Undo a pause, and also a stop caused by a refused key (the user may have fixed it)."""
        self._paused = False
        if self._halted is not None:
            self._halted = None
            # The job that hit the refusal gets asked right away.
            now = self._clock()
            for job in self._jobs.values():
                if job.errors and not job.in_flight:
                    self._schedule(job, now)
        self._wake.set()
        self._announce_state()

    def _schedule(self, job: _Job, due: float) -> None:
        job.token += 1
        job.due = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job.server_id, job.token))
        # Reschedules leave stale entries behind; rebuild when they dominate.
        if len(self._heap) > 4 * len(self._jobs) + 64:
            self._heap = [(j.due, i, j.server_id, j.token) for i, j in enumerate(self._jobs.values()) if not j.in_flight]
            heapq.heapify(self._heap)
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="poller")
        self._announce_state()

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._polls) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: nothing to report
                pass
        self._polls.clear()
        for job in list(self._jobs.values()):
            if job.waiters:
                self._answer_waiters(job, ApiError("polling stopped before an answer came"))
        # A poll cancelled before it ran never released its slot: start with fresh ones.
        self._slots = asyncio.Semaphore(self.concurrency)
        for job in self._jobs.values():
            if job.in_flight:
                job.in_flight = False
                self._schedule(job, self._clock())
        self._announce_state()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # -- the scheduler ----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            if self._rate_limited_until is not None and now >= self._rate_limited_until:
                self._rate_limited_until = self._rate_limited_until_wall = None
                self._announce_state()
            if self._halted is not None or self._rate_limited_until is not None:
                if self._rate_limited_until is not None:
                    await self._sleep_or_wake(self._rate_limited_until - now)
                else:
                    await self._wake.wait()
                continue
            server_id, delay = self._next_due(now)
            if server_id is None:
                if delay is None:
                    await self._wake.wait()
                else:
                    await self._sleep_or_wake(delay)
                continue
            if self._slots.locked():
                await self._wake.wait()  # a finishing poll sets it
                continue
            token_wait = self._bucket.wait_time(now)
            if token_wait > 0:
                await self._sleep_or_wake(token_wait)
                continue
            # Not locked (checked above), so this returns at once without yielding.
            await self._slots.acquire()
            self._dispatch(server_id, now)

    def _next_due(self, now: float) -> tuple[str | None, float | None]:
        """The job to poll now, or (None, seconds until one is due / None for never)."""
        while self._forced:
            server_id = self._forced[0]
            job = self._jobs.get(server_id)
            if job is None or job.in_flight or server_id not in self._forced_set:
                self._forced.popleft()
                self._forced_set.discard(server_id)
                continue
            return server_id, 0.0
        if self._paused:
            return None, None
        while self._heap:
            due, _, server_id, token = self._heap[0]
            job = self._jobs.get(server_id)
            if job is None or job.token != token or job.in_flight:
                heapq.heappop(self._heap)
                continue
            if due > now:
                return None, due - now
            return server_id, 0.0
        return None, None

    def _dispatch(self, server_id: str, now: float) -> None:
        job = self._jobs[server_id]
        if server_id in self._forced_set:
            self._forced_set.discard(server_id)
            if self._forced and self._forced[0] == server_id:
                self._forced.popleft()
        job.in_flight = True
        job.token += 1  # its heap entry (if any) is now stale
        self._bucket.take(now)
        self.requests_sent += 1
        task = asyncio.get_running_loop().create_task(self._poll(job), name=f"poll {server_id}")
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _sleep_or_wake(self, delay: float) -> None:
        if delay <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                if not t.done():
                    t.cancel()

    # -- one poll ---------------------------------------------------------------------------
    async def _poll(self, job: _Job) -> None:
        # The scheduler acquired the slot for this poll; it is released here.
        server_id = job.server_id
        try:
            prediction = await self._fetch(server_id)
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            error: ApiError | None = exc
        except Exception as exc:  # noqa: BLE001 - any failure of one poll is that poll's error
            log.exception("poll of %s failed unexpectedly", server_id)
            error = ApiError(f"unexpected error while polling: {type(exc).__name__}")
        else:
            error = None
        finally:
            job.in_flight = False
            self._slots.release()
            self._wake.set()
        if self._jobs.get(server_id) is not job:
            return  # untracked meanwhile
        if error is None:
            self._on_result(job, prediction)
        else:
            self._on_error(job, error)

    def _on_result(self, job: _Job, prediction: Prediction) -> None:
        now = self._clock()
        self._pauses_in_a_row = 0
        job.rate_limited_tries = 0
        probe = job.probe
        self._answer_waiters(job, prediction)
        if probe:
            return
        job.errors = 0
        if job.status is not None and prediction.status != job.status:
            job.changed_at = now
        job.status = prediction.status
        if self._last_error is not None:
            self._last_error = None
            self._announce_state()
        if prediction.is_terminal:
            self.untrack(job.server_id)
        else:
            self._schedule(job, now + self.next_interval(job.server_id, now - job.changed_at))
        self._emit(Polled(job.server_id, prediction))

    def _on_error(self, job: _Job, error: ApiError) -> None:
        now = self._clock()
        if isinstance(error, RateLimitedError):
            retry_after = error.retry_after if error.retry_after is not None and error.retry_after >= 0 else self.default_retry_after
            retry_after = min(retry_after, MAX_RETRY_AFTER)
            until = now + retry_after
            # Answers to requests sent before the pause began are part of it, not new pauses.
            if self._rate_limited_until is None or now >= self._rate_limited_until:
                self._pauses_in_a_row += 1
            if job.waiters:
                job.rate_limited_tries += 1
                if job.rate_limited_tries >= LOOK_UP_RATE_LIMIT_TRIES:
                    job.rate_limited_tries = 0
                    self._answer_waiters(job, error)
                else:
                    self._force(job)
            if job.probe:
                pass  # asked again after the pause through the forced queue, or answered above
            else:
                self._schedule(job, until)
            if self._rate_limited_until is None or until > self._rate_limited_until:
                self._rate_limited_until = until
                self._rate_limited_until_wall = self._wall_clock() + retry_after
                self._rate_limit_capped = error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER
                self._last_error = f"{error.message} (pause capped at {MAX_RETRY_AFTER:g}s)" if (
                    self._rate_limit_capped) else error.message
                self._emit(RateLimited(self._rate_limited_until_wall, retry_after, self._pauses_in_a_row))
                self._announce_state()
            return
        if job.probe or job.waiters:
            probe = job.probe
            self._answer_waiters(job, error)
            if isinstance(error, (InvalidKeyError, PermissionDeniedError)):
                self._halt(error)
            if probe:
                return
        job.errors += 1
        self._last_error = error.message
        if isinstance(error, (InvalidKeyError, PermissionDeniedError)):
            self._halt(error)
            self._schedule(job, now)
        else:
            self._schedule(job, now + self.error_delay(job.errors))
        self._emit(PollFailed(job.server_id, error, job.errors))
        self._announce_state()

    def _halt(self, error: ApiError) -> None:
        """Asking again with a refused key only hammers the server: stop until resumed, and
        answer every look-up waiting (it would wait for ever)."""
        self._halted = error.message
        self._last_error = error.message
        for other in list(self._jobs.values()):
            if other.waiters:
                self._answer_waiters(other, error)
        self._announce_state()
