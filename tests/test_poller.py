"""The poller against controllable fetch functions on a fake clock, and against the simulator.

The fake clock only moves when a test advances it; every sleep (the scheduler's and the
fake latency of a fetch) waits on it, so minutes of polling take milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest

from tui.core.api.errors import (
    InvalidKeyError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from tui.core.api.models import Prediction
from tui.core.poller import Polled, PollFailed, Poller, RateLimited, StateChanged


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    @staticmethod
    async def settle() -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self.now = max(self.now, when)
            future.set_result(None)
            await self.settle()
        self.now = target
        await self.settle()


class FakeServer:
    """A fetch function whose answers, latency and failures the test controls."""

    def __init__(self, clock: FakeClock, *, latency: float = 0.0, status: str = "processing") -> None:
        self.clock = clock
        self.latency = latency
        self.statuses: dict[str, str] = {}
        self.default_status = status
        self.failures: dict[str, list[Exception]] = {}
        self.calls: list[tuple[float, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def times(self, server_id: str | None = None) -> list[float]:
        return [t for t, sid in self.calls if server_id is None or sid == server_id]

    async def fetch(self, server_id: str) -> Prediction:
        self.calls.append((self.clock.now, server_id))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await self.clock.sleep(self.latency)
            queue = self.failures.get(server_id)
            if queue:
                raise queue.pop(0)
            return Prediction(id=server_id, status=self.statuses.get(server_id, self.default_status))
        finally:
            self.in_flight -= 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_poller(clock: FakeClock, server: FakeServer, **kwargs) -> tuple[Poller, list]:
    options = dict(concurrency=8, rate=100.0, base_interval=2.0, max_interval=20.0)
    options.update(kwargs)
    poller = Poller(server.fetch, clock=clock, sleep=clock.sleep, wall_clock=clock.wall, **options)
    events: list = []
    poller.subscribe(events.append)
    return poller, events


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


# -- concurrency and rate ---------------------------------------------------------------------


async def test_concurrency_never_exceeds_the_cap_and_every_job_is_asked(clock):
    server = FakeServer(clock, latency=1.0)
    poller, _ = make_poller(clock, server, concurrency=4, rate=1000.0, base_interval=600, max_interval=600)
    for i in range(100):
        poller.track(f"job-{i}")
    started = clock.now
    await poller.start()
    await clock.advance(26.0)
    assert server.max_in_flight == 4
    assert {sid for _, sid in server.calls} == {f"job-{i}" for i in range(100)}
    # 100 jobs, 4 at a time, 1 s each: 25 s, not 100 s and not 1 s.
    assert max(server.times()) - started == pytest.approx(24.0, abs=0.01)
    await poller.stop()


async def test_rate_cap_holds_even_when_concurrency_would_allow_more(clock):
    server = FakeServer(clock, latency=0.05)
    poller, _ = make_poller(clock, server, concurrency=50, rate=5.0, base_interval=0.1, max_interval=0.1)
    for i in range(40):
        poller.track(f"job-{i}")
    await poller.start()
    await clock.advance(30.0)
    starts = server.times()
    assert len(starts) >= 140  # the cap is used, not just respected
    assert min(gaps(starts)) >= 0.2 - 1e-6
    for t in starts:
        assert sum(1 for u in starts if t <= u < t + 1.0) <= 5 + 1
    await poller.stop()


async def test_one_timer_for_all_jobs(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, base_interval=5.0, max_interval=60.0)
    for i in range(300):
        poller.track(f"job-{i}", due_in=i * 0.5)
    await poller.start()
    for _ in range(20):
        await clock.advance(3.7)
        assert clock.sleeping <= 1
    await poller.stop()


# -- adaptive interval ------------------------------------------------------------------------


async def test_interval_backs_off_while_quiet_and_resets_on_a_status_change(clock):
    server = FakeServer(clock, status="processing")
    poller, _ = make_poller(clock, server, base_interval=2.0, max_interval=20.0)
    poller.track("a", status="processing")
    await poller.start()
    await clock.advance(120.0)
    quiet_gaps = gaps(server.times("a"))
    assert quiet_gaps[0] == pytest.approx(2.0)
    assert quiet_gaps == sorted(quiet_gaps)  # never shorter while nothing changes
    assert max(quiet_gaps) == pytest.approx(20.0)  # capped
    polls_before = len(server.times("a"))
    server.statuses["a"] = "running"
    await clock.advance(25.0)
    after = server.times("a")[polls_before - 1:]
    # The poll that saw the change is followed by a short interval again.
    assert gaps(after)[1] == pytest.approx(2.0)
    await poller.stop()


async def test_a_resumed_old_job_starts_at_the_long_interval(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, base_interval=2.0, max_interval=20.0)
    poller.track("old", status="processing", age=3600.0)
    await poller.start()
    await clock.advance(50.0)
    assert gaps(server.times("old"))[0] == pytest.approx(20.0)
    await poller.stop()


# -- ends -------------------------------------------------------------------------------------


async def test_terminal_prediction_untracks_and_wait_idle_returns(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0)
    poller.track("a")
    poller.track("b")
    await poller.start()
    await clock.advance(3.0)
    server.statuses["a"] = "completed"
    await clock.advance(3.0)
    assert poller.tracked == {"b"}
    asked = len(server.times("a"))
    await clock.advance(30.0)
    assert len(server.times("a")) == asked  # never asked again
    waiter = asyncio.ensure_future(poller.wait_idle())
    await clock.settle()
    assert not waiter.done()
    server.statuses["b"] = "failed"
    await clock.advance(30.0)
    assert waiter.done()
    statuses = [e.prediction.status for e in events if isinstance(e, Polled) and e.server_id == "a"]
    assert statuses[-1] == "completed"
    await poller.stop()


async def test_unknown_status_keeps_polling(clock):
    server = FakeServer(clock, status="thinking-about-it")
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=2.0)
    poller.track("a")
    await poller.start()
    await clock.advance(20.0)
    assert len(server.times("a")) >= 8
    assert poller.tracked == {"a"}
    await poller.stop()


# -- errors -----------------------------------------------------------------------------------


async def test_429_pauses_every_job_until_retry_after_then_resumes_by_itself(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    for i in range(5):
        poller.track(f"job-{i}")
    await poller.start()
    await clock.advance(2.5)
    server.failures["job-0"] = [RateLimitedError("too many requests", retry_after=30.0)]
    limited_at = None
    while limited_at is None:
        await clock.advance(0.5)
        limited = [e for e in events if isinstance(e, RateLimited)]
        if limited:
            limited_at = clock.now
    assert limited[0].retry_after == 30.0
    assert poller.state.rate_limited_until is not None
    # The event carries the wall-clock end of the pause.
    assert limited[0].until == pytest.approx(clock.wall() + 30.0, abs=0.6)
    calls_during = len(server.calls)
    await clock.advance(29.0)
    assert len(server.calls) == calls_during  # nobody asked during the pause
    await clock.advance(3.0)
    assert len(server.calls) > calls_during  # resumed without anyone's help
    assert poller.state.rate_limited_until is None
    assert any(isinstance(e, StateChanged) and e.status.rate_limited_until is None for e in events)
    assert not any(isinstance(e, PollFailed) for e in events)  # a 429 is not a job's failure
    await poller.stop()


async def test_429_storm_without_retry_after_uses_the_default_delay_and_never_spins(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=0.5, default_retry_after=5.0)
    server.failures["a"] = [RateLimitedError("slow down") for _ in range(10)]
    poller.track("a")
    await poller.start()
    await clock.advance(60.0)
    times = server.times("a")
    assert min(gaps(times[:11])) >= 5.0 - 1e-6
    assert len([e for e in events if isinstance(e, RateLimited)]) == 10
    await poller.stop()


async def test_server_errors_back_off_one_job_and_count_in_a_row(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0, error_max_interval=8.0)
    server.failures["bad"] = [ServerError("server error (502)", status=502) for _ in range(6)] + [
        MalformedResponseError("the server sent something that is not JSON")]
    poller.track("bad")
    poller.track("good")
    await poller.start()
    await clock.advance(60.0)
    bad_gaps = gaps(server.times("bad"))
    assert bad_gaps[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]  # growing, capped
    failed = [e for e in events if isinstance(e, PollFailed)]
    assert [e.consecutive for e in failed] == [1, 2, 3, 4, 5, 6, 7]
    assert isinstance(failed[-1].error, MalformedResponseError)
    # After a success the count starts over and the short interval is back.
    assert any(isinstance(e, Polled) and e.server_id == "bad" for e in events)
    assert gaps(server.times("bad"))[-1] == pytest.approx(1.0)
    # The other job was not slowed down.
    assert min(gaps(server.times("good"))) == pytest.approx(1.0)
    await poller.stop()


async def test_not_found_is_reported_with_its_count(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0)
    server.failures["gone"] = [NotFoundError("prediction not found", status=404) for _ in range(3)]
    poller.track("gone")
    await poller.start()
    await clock.advance(10.0)
    failed = [e for e in events if isinstance(e, PollFailed)]
    assert [(e.server_id, type(e.error), e.consecutive) for e in failed] == [
        ("gone", NotFoundError, 1), ("gone", NotFoundError, 2), ("gone", NotFoundError, 3)]
    await poller.stop()


async def test_refused_key_stops_everything_until_resumed(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    for i in range(3):
        poller.track(f"job-{i}")
    server.failures["job-1"] = [InvalidKeyError("the API key was refused", status=401)]
    await poller.start()
    await clock.advance(2.0)
    assert poller.state.halted == "the API key was refused"
    assert any(isinstance(e, StateChanged) and e.status.halted for e in events)
    calls = len(server.calls)
    await clock.advance(120.0)
    assert len(server.calls) == calls
    poller.resume()
    await clock.advance(1.0)
    assert poller.state.halted is None
    assert "job-1" in [sid for _, sid in server.calls[calls:]]
    await poller.stop()


async def test_an_unexpected_exception_is_a_poll_failure_not_a_crash(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0)
    server.failures["a"] = [KeyError("boom")]
    poller.track("a")
    await poller.start()
    await clock.advance(5.0)
    assert [type(e) for e in events if isinstance(e, (Polled, PollFailed))][:2] == [PollFailed, Polled]
    assert poller.state.running
    await poller.stop()


async def test_a_failing_listener_does_not_stop_polling(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)

    def broken(event):
        raise RuntimeError("listener bug")

    poller.subscribe(broken)
    poller.track("a")
    await poller.start()
    await clock.advance(5.0)
    assert len([e for e in events if isinstance(e, Polled)]) >= 4
    await poller.stop()


# -- user controls ----------------------------------------------------------------------------


async def test_pause_stops_polling_and_resume_continues(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    poller.track("a")
    await poller.start()
    await clock.advance(3.0)
    poller.pause()
    assert poller.state.paused
    calls = len(server.calls)
    await clock.advance(60.0)
    assert len(server.calls) == calls
    poller.resume()
    await clock.advance(1.5)
    assert len(server.calls) > calls
    await poller.stop()


async def test_refresh_polls_one_job_now_even_at_a_long_interval(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, base_interval=30.0, max_interval=30.0)
    poller.track("a")
    poller.track("b")
    await poller.start()
    await clock.advance(1.0)
    assert len(server.times("a")) == 1
    poller.refresh("a")
    await clock.advance(0.1)
    assert len(server.times("a")) == 2
    assert len(server.times("b")) == 1
    # A refresh is one poll: the job goes back to its interval afterwards.
    await clock.advance(20.0)
    assert len(server.times("a")) == 2
    await poller.stop()


async def test_refresh_all_respects_the_rate_cap(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, rate=10.0, base_interval=300.0, max_interval=300.0)
    for i in range(20):
        poller.track(f"job-{i}")
    await poller.start()
    await clock.advance(5.0)
    first_round = len(server.calls)
    assert first_round == 20
    poller.refresh_all()
    await clock.advance(2.5)
    second = server.times()[first_round:]
    assert len(second) == 20
    assert min(gaps(second)) >= 0.1 - 1e-6
    await poller.stop()


async def test_refresh_while_paused_polls_that_job_once(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    poller.track("a")
    poller.track("b")
    poller.pause()
    await poller.start()
    await clock.advance(5.0)
    assert server.calls == []
    poller.refresh("a")
    await clock.advance(5.0)
    assert [sid for _, sid in server.calls] == ["a"]
    await poller.stop()


async def test_untrack_stops_polling_that_job(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    poller.track("a")
    poller.track("b")
    await poller.start()
    await clock.advance(2.5)
    poller.untrack("a")
    asked = len(server.times("a"))
    await clock.advance(10.0)
    assert len(server.times("a")) == asked
    assert len(server.times("b")) > 5
    await poller.stop()


# -- hostile answers: pauses that cannot last for ever, look-ups through the scheduler ------------


async def test_a_retry_after_of_years_pauses_five_minutes_at_most_and_says_so(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    server.failures["job"] = [RateLimitedError("rate limited (429): retry in 99999999s", retry_after=99999999.0)]
    poller.track("job")
    await poller.start()
    await clock.advance(0.1)
    (limited,) = [e for e in events if isinstance(e, RateLimited)]
    assert limited.retry_after == 300.0 and limited.until == pytest.approx(clock.wall() - 0.1 + 300.0)
    assert poller.state.rate_limit_capped and "pause capped at 300s" in poller.state.last_error
    await clock.advance(299.0)
    assert len(server.times("job")) == 1  # the pause holds for its five minutes...
    await clock.advance(2.0)
    assert server.times("job")[1] == pytest.approx(1300.0)  # ...and not one hour more
    await poller.stop()


async def test_429_pauses_in_a_row_are_counted_and_an_answer_resets_the_count(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server, base_interval=1.0, max_interval=1.0)
    server.failures["job"] = [RateLimitedError("slow down", retry_after=1.0) for _ in range(3)]
    poller.track("job")
    await poller.start()
    await clock.advance(10.0)
    server.failures["job"] = [RateLimitedError("slow down", retry_after=1.0)]
    await clock.advance(5.0)
    counts = [e.in_a_row for e in events if isinstance(e, RateLimited)]
    assert counts == [1, 2, 3, 1]
    await poller.stop()


async def test_look_up_keeps_to_the_concurrency_cap_and_follows_nothing(clock):
    server = FakeServer(clock, latency=1.0)
    poller, events = make_poller(clock, server, concurrency=4, rate=1000.0)
    ids = [f"id-{i}" for i in range(40)]
    task = asyncio.ensure_future(poller.look_up(ids))
    await clock.advance(11.0)
    answers = await asyncio.wait_for(task, 1)
    assert [answers[i].id for i in ids] == ids
    assert server.max_in_flight == 4 and len(server.calls) == 40
    assert max(server.times()) - min(server.times()) == pytest.approx(9.0, abs=0.01)  # 40 ids, 4 at a time
    assert poller.tracked == frozenset() and not any(isinstance(e, (Polled, PollFailed)) for e in events)
    await poller.stop()


async def test_look_up_keeps_to_the_rate_cap(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server, concurrency=8, rate=2.0)
    task = asyncio.ensure_future(poller.look_up([f"id-{i}" for i in range(6)]))
    await clock.advance(5.0)
    await asyncio.wait_for(task, 1)
    assert min(gaps(server.times())) >= 0.5 - 1e-6


async def test_look_up_waits_out_a_429_pause_then_answers(clock):
    server = FakeServer(clock)
    poller, events = make_poller(clock, server)
    server.failures["id-0"] = [RateLimitedError("slow down", retry_after=30.0)]
    task = asyncio.ensure_future(poller.look_up(["id-0", "id-1"]))
    await clock.advance(10.0)
    assert not task.done()  # every look-up waits with the pause
    await clock.advance(25.0)
    answers = await asyncio.wait_for(task, 1)
    assert answers["id-0"].status == "processing" and answers["id-1"].status == "processing"
    assert server.times("id-0")[-1] >= 1030.0
    await poller.stop()


async def test_look_up_answers_a_429_that_never_ends_instead_of_waiting_for_ever(clock):
    server = FakeServer(clock)
    poller, _ = make_poller(clock, server)
    server.failures["id"] = [RateLimitedError("slow down", retry_after=1.0) for _ in range(100)]
    task = asyncio.ensure_future(poller.look_up(["id"]))
    await clock.advance(10.0)
    answers = await asyncio.wait_for(task, 1)
    assert isinstance(answers["id"], RateLimitedError) and len(server.times("id")) == 3
    await poller.stop()


async def test_a_refused_key_answers_every_look_up_and_halts(clock):
    server = FakeServer(clock, latency=1.0)
    poller, _ = make_poller(clock, server, concurrency=1)
    server.failures["id-0"] = [InvalidKeyError("the API key was refused (401)", status=401)]
    task = asyncio.ensure_future(poller.look_up(["id-0", "id-1", "id-2"]))
    await clock.advance(2.0)
    answers = await asyncio.wait_for(task, 1)
    assert all(isinstance(a, InvalidKeyError) for a in answers.values())
    assert poller.state.halted is not None and len(server.calls) == 1
    await poller.stop()
