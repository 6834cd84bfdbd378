"""Downloads (`d`) and batch runs (`b`) in the dashboard, driven by keys against the simulator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from textual.widgets import Button, Input, Static

from tui.ui.app import HailuoApp
from tui.core.config import Settings
from tui.ui.screens.batch import BatchScreen, complete_path
from tui.simulator.server import sample_video
from tui.ui.widgets.detail import DetailPane
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.status_line import StatusLine

from helpers import app_settings, started, toasts, until


VIDEO = sample_video()


KEY = "test-key-0123456789abcd"


def _settings(tmp_path, base_url: str, **changes) -> Settings:
    return app_settings(tmp_path, base_url, KEY, **{"submit_rate": 0, **changes})


def _attaching(*sids: str):
    async def attach(app: HailuoApp) -> None:
        await app.service.attach(list(sids))

    return attach


async def _select(app: HailuoApp, pilot, server_id: str) -> None:
    table = app.query_one(JobTable)
    await until(lambda: any(j.server_id == server_id for j in table.visible_jobs()), pilot=pilot)
    table.select(next(j.local_id for j in table.visible_jobs() if j.server_id == server_id))
    table.focus()
    await pilot.pause()


def _file_requests(sim) -> list:
    return [r for r in sim.requests if r.path.startswith("/files/")]


# -- downloads ----------------------------------------------------------------------------------------


async def test_d_downloads_the_selected_jobs_output_and_says_where(tmp_path, make_simulator):
    sim = make_simulator(require_key=KEY)
    sid = sim.seed_job(status="completed")
    app = HailuoApp(_settings(tmp_path, sim.base_url), on_started=_attaching(sid))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _select(app, pilot, sid)
        await pilot.press("d")
        expected = tmp_path / "downloads" / f"{sid}_hailuo-2.3-fast_video.mp4"
        await until(lambda: any(f"saved to {expected}" in t for t in toasts(app)), pilot=pilot)
        assert expected.read_bytes() == VIDEO
        saved = app.query_one("#saved", Static)
        await until(lambda: saved.display, pilot=pilot)
        assert str(expected) in str(saved.render())
        # Pressed again: already there, nothing fetched.
        fetched = len(_file_requests(sim))
        await pilot.press("d")
        await until(lambda: any(f"was already saved as {expected}" in t for t in toasts(app)), pilot=pilot)
        assert len(_file_requests(sim)) == fetched
    assert all("authorization" not in {h.lower() for h in r.headers} for r in _file_requests(sim))


async def test_several_downloads_run_at_once_with_progress_and_the_app_stays_responsive(tmp_path, make_simulator):
    sim = make_simulator()
    first, second = sim.seed_job(status="completed"), sim.seed_job(status="completed")
    sim.faults.file_chunk_delay = 0.3  # about 2 s a file
    app = HailuoApp(_settings(tmp_path, sim.base_url), on_started=_attaching(first, second))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _select(app, pilot, first)
        await pilot.press("d")
        await _select(app, pilot, second)
        await pilot.press("d")
        await until(lambda: len(app.downloads) == 2, pilot=pilot)
        detail = app.query_one(DetailPane)
        await until(lambda: detail.has_class("-downloading"), pilot=pilot)
        assert "Downloading" in str(app.query_one("#download-label", Static).render())
        assert "2 downloading" in str(app.query_one(StatusLine).render())
        # Keys still work while bytes arrive.
        table = app.query_one(JobTable)
        await pilot.press("G")
        bottom = table.selected_job.local_id
        await pilot.press("g")
        assert table.selected_job.local_id != bottom
        await until(lambda: sum("saved to" in t for t in toasts(app)) == 2, pilot=pilot)
        assert not detail.has_class("-downloading") and app.downloads == {}
        assert len(list((tmp_path / "downloads").glob("*.mp4"))) == 2


async def test_quitting_during_a_download_keeps_its_part_for_the_next_time(tmp_path, make_simulator):
    sim = make_simulator()
    sid = sim.seed_job(status="completed")
    sim.faults.file_chunk_delay = 0.3
    app = HailuoApp(_settings(tmp_path, sim.base_url), on_started=_attaching(sid))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _select(app, pilot, sid)
        await pilot.press("d")
        await until(lambda: any(p.received > 0 for p in app.downloads.values()), pilot=pilot)
        await pilot.press("q")
        await until(lambda: not app.is_running, pilot=pilot)
    (part,) = (tmp_path / "downloads").glob("*.mp4.part")
    assert 0 < part.stat().st_size < len(VIDEO) and VIDEO.startswith(part.read_bytes())
    assert not list((tmp_path / "downloads").glob("*.mp4"))


async def test_d_on_a_job_without_output_says_why(tmp_path, make_simulator):
    sim = make_simulator()
    sid = sim.seed_job(status="failed", error="generation failed")
    app = HailuoApp(_settings(tmp_path, sim.base_url), on_started=_attaching(sid))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _select(app, pilot, sid)
        await pilot.press("d")
        await until(lambda: any("ended failed with no output" in t for t in toasts(app)), pilot=pilot)
        said = next(t for t in toasts(app) if "ended failed with no output" in t)
        assert said.count(sid[:12]) == 1, said  # the job named once
    assert _file_requests(sim) == []


async def test_a_failed_download_is_a_toast_with_the_reason(tmp_path, make_simulator):
    sim = make_simulator()
    sid = sim.seed_job(status="completed", outputs=[f"{sim.base_url}/gone/video.mp4"])
    app = HailuoApp(_settings(tmp_path, sim.base_url), on_started=_attaching(sid))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _select(app, pilot, sid)
        await pilot.press("d")
        await until(lambda: any("the output host answered 401" in t for t in toasts(app)), pilot=pilot)
        assert app.downloads == {} and not app.query_one(DetailPane).has_class("-downloading")


async def test_auto_download_saves_a_job_that_completes_in_the_dashboard(tmp_path, make_simulator):
    from textual.widgets import TextArea

    sim = make_simulator(job_seconds=0.3)
    app = HailuoApp(_settings(tmp_path, sim.base_url, auto_download=True))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        app.query_one("#prompt", TextArea).text = "a kite over the dunes"
        await pilot.press("ctrl+s")
        await until(lambda: any("saved to" in t for t in toasts(app)), pilot=pilot)
    assert [p.name.endswith("_a-kite-over-the-dunes.mp4") for p in (tmp_path / "downloads").iterdir()] == [True]


async def test_i_toggles_the_detail_panel_in_the_narrow_layout(tmp_path, make_simulator):
    sim = make_simulator()
    app = HailuoApp(_settings(tmp_path, sim.base_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("i")
        assert app.screen.has_class("-show-detail")
        await pilot.press("i")
        assert not app.screen.has_class("-show-detail")


# -- batch runs ---------------------------------------------------------------------------------------------


def _posts(sim) -> Counter:
    return Counter(json.loads(r.body)["prompt"] for r in sim.requests if r.method == "POST")


async def _check(app: HailuoApp, pilot, path: Path) -> BatchScreen:
    screen = app.screen
    assert isinstance(screen, BatchScreen)
    screen.query_one("#batch-path", Input).value = str(path)
    screen.query_one("#batch-path", Input).focus()
    await pilot.press("enter")
    headline = screen.query_one("#batch-headline", Static)
    await until(lambda: "checking" not in str(headline.render()) and str(headline.render()), pilot=pilot)
    return screen


async def test_b_checks_a_file_shows_every_problem_then_submits_and_reports(tmp_path, make_simulator):
    sim = make_simulator()
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,duration\na fox,6\na heron,7\n,6\n")
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("a fox", "a heron", "a kite")))
    app = HailuoApp(_settings(tmp_path, sim.base_url))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await pilot.press("b")
        await pilot.pause()
        screen = await _check(app, pilot, bad)
        report = str(screen.query_one("#batch-report", Static).render())
        assert "row 2 (line 3): duration: hailuo-2.3-fast at 768P offers 6 s or 10 s, not 7 s" in report
        assert "row 3 (line 4): prompt: a prompt is required" in report
        assert "nothing will be sent" in str(screen.query_one("#batch-headline", Static).render())
        assert screen.query_one("#batch-start", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert sim.requests == []

        await _check(app, pilot, good)
        assert "3 rows: 3 to submit" in str(screen.query_one("#batch-headline", Static).render())
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: app.batch is not None and app.batch.summary is not None, pilot=pilot)
        headline = str(screen.query_one("#batch-headline", Static).render())
        assert headline.startswith("3 submitted, 0 skipped")
        assert table.total_count == 3 and {j.prompt for j in table.visible_jobs()} == {"a fox", "a heron", "a kite"}
        assert any("3 submitted" in t for t in toasts(app))

        # Checked again: everything was submitted, nothing to send.
        await _check(app, pilot, good)
        assert "3 rows: 0 to submit, 3 submitted before (skipped)" in str(screen.query_one("#batch-headline",
                                                                                           Static).render())
        assert screen.query_one("#batch-start", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, BatchScreen)
    assert _posts(sim) == {"a fox": 1, "a heron": 1, "a kite": 1}


async def test_a_batch_goes_on_after_its_dialog_is_closed(tmp_path, make_simulator):
    sim = make_simulator()
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"row {i}"}) + "\n" for i in range(6)))
    # A row every 2 s: the batch is surely still sending when its dialog is closed after the first row.
    app = HailuoApp(_settings(tmp_path, sim.base_url, submit_rate=0.5))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await pilot.press("b")
        await pilot.pause()
        await _check(app, pilot, rows)
        await pilot.press("ctrl+s")
        await until(lambda: app.batch is not None and len(app.batch.settled) >= 1, pilot=pilot)
        await pilot.press("escape")
        assert not isinstance(app.screen, BatchScreen) and app._batch_running
        await until(lambda: "batch" in str(app.query_one(StatusLine).render()), pilot=pilot)
        await until(lambda: app.batch.summary is not None, pilot=pilot)
        assert "batch" not in str(app.query_one(StatusLine).render())
        await pilot.press("b")
        await pilot.pause()
        assert str(app.screen.query_one("#batch-headline", Static).render()).startswith("6 submitted")
        assert app.query_one(JobTable).total_count == 6


def test_path_completion_offers_directories_and_batch_files(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "rows-one.jsonl").write_text("")
    (tmp_path / "rows-two.csv").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / ".hidden.csv").write_text("")
    base = str(tmp_path) + "/"
    assert complete_path(base + "ru") == base + "runs/"
    assert complete_path(base + "r") == base + "rows-one.jsonl"  # several: the first, after their common part
    assert complete_path(base + "rows-t") == base + "rows-two.csv"
    assert complete_path(base + "no") is None  # not a batch file
    assert complete_path(base + "zz") is None
    assert complete_path(base + ".h") == base + ".hidden.csv"


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_help_lists_download_batch_and_detail_keys(tmp_path, make_simulator, size):
    sim = make_simulator()
    app = HailuoApp(_settings(tmp_path, sim.base_url))
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        text = str(app.screen.query_one("#help-text", Static).render())
    for key, description in (("d", "Download outputs"), ("b", "Batch run from a file"), ("i", "Detail")):
        assert any(line.split()[:1] == [key] and description in line for line in text.splitlines()), text
