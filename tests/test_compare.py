"""Compare two jobs: mark one with `m`, press `=` on another; both side by side, differing rows marked by a class."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Static

from tui.ui.app import HailuoApp
from tui.core.config import Settings
from tui.simulator.demo import DEMO_KEY, sample_jobs, write_history
from tui.ui.screens.compare import CompareScreen, compare_rows
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.status_line import StatusLine

from helpers import toasts

FROZEN_NOW = 1_790_000_000.0


def test_rows_cover_request_timings_and_result_and_flag_differences():
    fox, waves, failed = sample_jobs(FROZEN_NOW)[:3]
    rows = {row.label: row for row in compare_rows(fox, waves, FROZEN_NOW)}
    assert {"Model", "Resolution", "Prompt", "Submitted", "Total", "Execution", "Status", "Outputs"} <= set(rows)
    assert rows["Model"].differs and (rows["Model"].left, rows["Model"].right) == ("hailuo-2.3-fast", "hailuo-02-pro")
    assert rows["Execution"].left == "1m30s" and rows["Execution"].right == "3m51s"
    assert rows["Total"].left == "1m35s" and rows["Total"].right == "4m00s"
    assert not rows["Scene"].differs and not rows["Status"].differs and not rows["Duration"].differs
    against_failed = {row.label: row for row in compare_rows(fox, failed, FROZEN_NOW)}
    assert against_failed["Error"].right == "The request was rejected by the content policy"
    assert against_failed["Status"].differs and not against_failed["Model"].differs


@pytest.fixture
def seeded_app(tmp_path):
    write_history(tmp_path / "history.json", sample_jobs(FROZEN_NOW))
    settings = Settings(api_key=DEMO_KEY, base_url="http://127.0.0.1:9", db_path=tmp_path / "history.json",
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads")
    return HailuoApp(settings, clock=lambda: FROZEN_NOW, poll=False)


async def _ready(pilot) -> None:
    await asyncio.wait_for(pilot.app.ready.wait(), 60)
    await pilot.pause()



def _select(app, local_id: str) -> None:
    assert app.query_one(JobTable).select(local_id)


async def test_mark_then_compare_shows_both_jobs_and_escape_returns(seeded_app):
    app = seeded_app
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(pilot)
        await pilot.press("equals_sign")
        await pilot.pause()
        assert any("mark a job with m first" in t for t in toasts(app))

        _select(app, "local-0001")
        await pilot.press("m")
        await pilot.pause()
        assert "marked 01f3c9a1d2e8" in str(app.query_one(StatusLine).render())
        await pilot.press("equals_sign")
        await pilot.pause()
        assert any("this is the marked job" in t for t in toasts(app))

        _select(app, "local-0002")
        await pilot.press("equals_sign")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        rows = {str(row.query(".compare-label").first(Static).render()): row for row in screen.query(".compare-row")
                if row.query(".compare-label") and not row.has_class("compare-head")}
        assert rows["Model"].has_class("-differs") and rows["Prompt"].has_class("-differs")
        assert not rows["Scene"].has_class("-differs") and not rows["Status"].has_class("-differs")
        cells = [str(cell.render()) for cell in rows["Prompt"].query(".compare-cell")]
        assert cells == ["A red fox trotting through fresh snow at dawn, slow dolly shot",
                         "Waves breaking over black volcanic rocks, drone shot, golden hour"]
        # The dashboard's keys do not act from under the compare screen.
        await pilot.press("x", "c")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert app.query_one(JobTable).selected_job.local_id == "local-0002"

        # m on the marked job unmarks it.
        _select(app, "local-0001")
        await pilot.press("m")
        await pilot.pause()
        assert app.marked is None and "marked" not in str(app.query_one(StatusLine).render())


async def test_compare_is_a_palette_command_and_forgetting_the_marked_job_clears_the_mark(seeded_app):
    app = seeded_app
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Mark for compare" in titles and "Compare with marked" in titles
        _select(app, "local-0003")
        await pilot.press("m")
        _select(app, "local-0005")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"compare with marked")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CompareScreen)
        assert (app.screen.left.local_id, app.screen.right.local_id) == ("local-0003", "local-0005")
        await pilot.press("escape")
        await pilot.pause()
        _select(app, "local-0003")
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.query_one(JobTable).total_count == 5
        assert app.marked is None


def test_compare_screen_snapshot(snap_compare, seeded_app):
    async def before(pilot) -> None:
        await _ready(pilot)
        _select(pilot.app, "local-0001")
        await pilot.press("m")
        _select(pilot.app, "local-0003")
        await pilot.press("equals_sign")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(seeded_app, terminal_size=(120, 40), run_before=before)
