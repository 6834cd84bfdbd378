"""Session stats: counts by status, median/p90 execution time by model, jobs per hour — kept up to date incrementally."""

from __future__ import annotations

import asyncio
import io
import time
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from tui.ui.app import HailuoApp
from tui.core.catalog import VideoRequest
from tui.core.stats import JobStats, median, percentile
from tui.ui.widgets.stats_panel import StatsPanel

from helpers import app_settings, until

NOW = 1_790_000_000.0
KEY = "sk-stats-test-key-0123456789"


def _job(local_id: str, status: str, model: str = "hailuo-2.3-fast", execution_ms: int | None = None,
         submitted_at: float = NOW - 60) -> SimpleNamespace:
    return SimpleNamespace(local_id=local_id, status=status, model=model, execution_time_ms=execution_ms,
                           submitted_at=submitted_at, is_success=status == "completed")


def test_median_and_nearest_rank_percentile():
    assert median([]) is None and percentile([], 0.9) is None
    assert median([1, 2, 3]) == 2 and median([1, 2, 3, 4]) == 2.5
    values = list(range(1, 11))
    assert percentile(values, 0.9) == 9 and percentile(values, 0.5) == 5 and percentile([7], 0.9) == 7


def test_figures_by_status_model_and_hour():
    stats = JobStats(session_start=NOW - 1800)
    jobs = [_job(f"c{i}", "completed", execution_ms=i * 1000) for i in range(1, 11)]
    jobs += [_job("p1", "completed", model="hailuo-02-pro", execution_ms=200_000),
             _job("f1", "failed", execution_ms=5000),  # a failed job's time is not an execution time
             _job("r1", "processing"),
             _job("old", "completed", model="hailuo-02-pro", execution_ms=100_000, submitted_at=NOW - 2 * 86400),
             _job("zero", "completed", execution_ms=0)]  # 0 = not measured
    stats.reset(jobs)
    snap = stats.snapshot(NOW)
    assert snap.total == 15
    assert snap.by_status == [("completed", 13), ("failed", 1), ("processing", 1)]
    times = {m.model: (m.completed, m.median_s, m.p90_s) for m in snap.models}
    assert times == {"hailuo-2.3-fast": (10, 5.5, 9.0), "hailuo-02-pro": (2, 150.0, 200.0)}
    assert snap.window_jobs == 14 and snap.window_per_hour == 14 / 24
    assert snap.session_jobs == 14 and snap.session_per_hour == 28.0  # 14 jobs in half an hour


def test_changes_and_removals_move_the_figures():
    stats = JobStats(session_start=NOW)
    running = _job("a", "processing")
    stats.reset([running, _job("b", "completed", execution_ms=4000)])
    running.status, running.is_success, running.execution_time_ms = "completed", True, 2000
    assert stats.update(running)
    assert not stats.update(running)  # nothing new
    snap = stats.snapshot(NOW)
    assert snap.by_status == [("completed", 2)] and snap.models[0].median_s == 3.0
    assert stats.remove("b") and not stats.remove("b")
    snap = stats.snapshot(NOW)
    assert snap.total == 1 and snap.models[0].median_s == 2.0 and snap.models[0].p90_s == 2.0
    assert stats.remove("a") and stats.snapshot(NOW).models == [] and stats.snapshot(NOW).by_status == []


_STATUSES = st.sampled_from(["created", "processing", "completed", "failed", "unknown"])
_MODELS = st.sampled_from(["hailuo-2.3-fast", "hailuo-02-pro"])
_OPS = st.lists(st.tuples(st.integers(0, 7), st.booleans(), _STATUSES, _MODELS, st.integers(0, 30),
                          st.floats(0, 3 * 86400)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_incremental_updates_match_a_fresh_count(ops):
    stats = JobStats(session_start=NOW - 3600)
    stats.reset([])
    jobs: dict[str, SimpleNamespace] = {}
    for index, remove, status, model, seconds, age in ops:
        local_id = f"job{index}"
        if remove:
            stats.remove(local_id)
            jobs.pop(local_id, None)
            continue
        job = _job(local_id, status, model, seconds * 1000, NOW - age)
        jobs[local_id] = job
        stats.update(job)
    fresh = JobStats(session_start=NOW - 3600)
    fresh.reset(jobs.values())
    assert stats.snapshot(NOW) == fresh.snapshot(NOW)


async def test_the_panel_toggles_and_follows_jobs_live_without_rescanning(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        await app.service.submit(VideoRequest(prompt="a fox"))
        panel = app.query_one(StatsPanel)
        assert not panel.display
        await pilot.press("t")
        await pilot.pause()
        assert panel.display and app.screen.has_class("-show-stats")

        def text() -> str:
            console = Console(width=150, record=True, file=io.StringIO())
            console.print(panel.content)
            return console.export_text()

        await until(lambda: "completed 1" in text(), pilot=pilot)
        # From now on the history is never read again: every change arrives one job at a time.
        app.service.store.all = lambda: (_ for _ in ()).throw(AssertionError("rescanned the history"))
        failing = f"a {simulator.faults.fail_later_word} crowd"
        await app.service.submit(VideoRequest(prompt="a heron", model="hailuo-02-fast"))
        await app.service.submit(VideoRequest(prompt=failing))
        await until(lambda: "completed 2" in text() and "failed 1" in text(), pilot=pilot)
        assert "hailuo-02-fast" in text() and "hailuo-2.3-fast" in text()
        assert "last 24 h: 3 submitted" in text() and "3 added" in text()
        await pilot.press("t")
        await pilot.pause()
        assert not panel.display


async def test_changes_while_the_history_is_being_counted_are_not_lost(tmp_path, make_simulator, monkeypatch):
    import threading

    from tui.core.stats import JobStats as Stats

    simulator = make_simulator(job_seconds=0.2)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    release = threading.Event()
    original = Stats.reset

    def slow_reset(self, jobs):
        original(self, jobs)
        release.wait(10)  # the count (off the event loop) finishes only when the test says so

    monkeypatch.setattr(Stats, "reset", slow_reset)
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        first = await app.service.submit(VideoRequest(prompt="counted from the history"))
        await until(lambda: first.is_success, pilot=pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.stats is None  # still counting; the dashboard is not held meanwhile
        second = await app.service.submit(VideoRequest(prompt="arrives while counting"))
        third = await app.service.submit(VideoRequest(prompt="so does this one"))
        await until(lambda: second.is_success and third.is_success, pilot=pilot)
        app.service.forget(first.local_id)
        release.set()
        await until(lambda: app.stats is not None, pilot=pilot)
        snapshot = app.stats.snapshot(time.time())
        # The counted job was forgotten meanwhile; the two new ones were added meanwhile.
        assert snapshot.total == 2 and snapshot.by_status == [("completed", 2)]
