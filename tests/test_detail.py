"""The detail pane: every field, outputs as selectable lines, raw JSON, and server text kept inert."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import OptionList, Static

from tui.ui.dashboard import curl_command
from tui.core.config import Settings
from tui.core.records import Job
from tui.ui.widgets.detail import DetailPane, clean, phase_times

from helpers import make_job

T0 = 1_800_000_000.0


def _job(**changes) -> Job:
    """An image-to-video job that completed 41 s after its submit at T0, with two outputs."""
    base = dict(
        server_id="srv-abc", status="completed", submitted_at=T0, prompt="a heron takes off",
        request={"scene": "image-to-video",
                 "image": {"source": "/tmp/heron.png", "format": "PNG", "width": 1024, "height": 768,
                           "size_bytes": 204800, "sha256": "0123456789abcdef0123"}},
        outputs=["https://cdn.example/1.mp4", "https://cdn.example/2.mp4"],
        status_history=[["submitting", T0], ["created", T0 + 1], ["processing", T0 + 11], ["completed", T0 + 41]],
        finished_at=T0 + 41, inference_time_ms=28000, execution_time_ms=30500,
        has_nsfw_contents=[False, True], raw={"id": "srv-abc", "status": "completed"},
    )
    base.update(changes)
    return make_job("local-1", **base)


class DetailApp(App):
    def compose(self) -> ComposeResult:
        yield DetailPane(id="detail", clock=lambda: T0 + 100)


def _body(app: App) -> str:
    return str(app.query_one("#detail-body", Static).render())


async def test_every_field_of_a_completed_job_is_shown():
    app = DetailApp()
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(DetailPane).show_job(_job())
        await pilot.pause()
        body = _body(app)
        for expected in ("completed", "srv-abc", "hailuo-2.3-fast", "image-to-video", "768P", "a heron takes off",
                         "/tmp/heron.png", "PNG 1024×768", "200.0 KB", "sha256 0123456789ab",
                         "In created", "10.0 s", "In processing", "30.0 s", "28.0 s", "30.5 s", "41.0 s",
                         "no, yes"):
            assert expected in body, expected
        outputs = app.query_one("#outputs", OptionList)
        assert outputs.option_count == 2
        outputs.highlighted = 1
        assert app.query_one(DetailPane).selected_output == "https://cdn.example/2.mp4"


async def test_markup_and_escape_sequences_from_the_server_are_shown_as_plain_text():
    app = DetailApp()
    hostile = "[bold red]boom[/bold red] \x1b[2J\x1b]52;c;ZXZpbA==\x07done"
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(DetailPane).show_job(_job(status="failed", error=hostile, outputs=[],
                                                request={"model": "m", "scene": "s", "prompt": hostile}))
        await pilot.pause()
        body = _body(app)
        assert "[bold red]boom[/bold red]" in body
        assert "\x1b" not in body and "\x07" not in body
        assert "done" in body


async def test_raw_json_toggles_with_its_key():
    app = DetailApp()
    async with app.run_test(size=(100, 60)) as pilot:
        pane = app.query_one(DetailPane)
        pane.show_job(_job())
        pane.focus()
        await pilot.pause()
        raw = app.query_one("#raw-json", Static)
        assert not raw.display
        await pilot.press("v")
        await pilot.pause()
        assert raw.display and '"status": "completed"' in str(raw.render())
        await pilot.press("v")
        await pilot.pause()
        assert not raw.display


def test_time_in_each_status_comes_from_the_status_history():
    spans = phase_times(_job(), now=T0 + 100)
    assert spans == {"submitting": 1.0, "created": 10.0, "processing": 30.0}


def test_clean_removes_control_characters_and_keeps_newlines():
    assert clean("a\x1b[31mb\x00c\nd\x9b") == "abc\nd"


def test_curl_command_names_the_key_variable_never_the_key():
    settings = Settings(api_key="sk-very-secret-key-1234", base_url="http://127.0.0.1:9999")
    command = curl_command(settings, "srv-abc")
    assert "sk-very-secret" not in command and "1234" not in command
    assert "$GPTPROTO_API_KEY" in command and "/srv-abc/" in command


async def test_the_download_bar_animates_only_while_a_download_of_unknown_size_is_shown():
    from textual.widgets import ProgressBar
    from textual.widgets._progress_bar import Bar

    from tui.core.events import DownloadProgress

    app = DetailApp()
    async with app.run_test(size=(100, 60)) as pilot:
        pane = app.query_one(DetailPane)
        pane.show_job(_job())
        await pilot.pause()
        bar = app.query_one("#download-bar", ProgressBar)
        # Nothing downloading: nothing redraws itself (an idle dashboard must not wake 15 times a second).
        assert bar.query_one(Bar).auto_refresh is None and not pane.has_class("-downloading")
        unknown_size = DownloadProgress("local-1", 0, 2, 1024, None, "/tmp/x.mp4")
        pane.set_download("local-1", unknown_size)
        await pilot.pause()
        assert pane.has_class("-downloading") and bar.query_one(Bar).auto_refresh is not None
        pane.set_download("local-1", None)
        await pilot.pause()
        assert not pane.has_class("-downloading") and bar.query_one(Bar).auto_refresh is None


# -- timings that tick, and unknown shown as unknown ---------------------------------------------


class TickingApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0 + 14

    def compose(self) -> ComposeResult:
        yield DetailPane(id="detail", clock=lambda: self.now)


def _line(body: str, label: str) -> str:
    return next(line for line in body.splitlines() if line.startswith(label))


async def test_a_running_job_s_timings_tick_and_unmeasured_times_are_not_zero():
    from tests.helpers import until

    running = _job(status="processing", finished_at=None, outputs=[], inference_time_ms=0, execution_time_ms=None,
                   status_history=[["submitting", T0], ["created", T0 + 1], ["processing", T0 + 4]])
    app = TickingApp()
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(DetailPane).show_job(running)
        await pilot.pause()
        assert "10.0 s" in _line(_body(app), "In processing")
        assert "0 ms" not in _body(app)
        assert _line(_body(app), "Inference").endswith("not yet measured")
        assert _line(_body(app), "Execution").endswith("not yet measured")
        assert _line(_body(app), "Total").endswith("14.0 s so far")
        app.now = T0 + 34  # no new poll: only the clock moved
        await until(lambda: "30.0 s" in _line(_body(app), "In processing"), pilot=pilot, what="the pane to tick")
        assert _line(_body(app), "Total").endswith("34.0 s so far")


async def test_a_failed_job_s_unmeasured_times_say_unknown_and_units_match_the_table():
    app = DetailApp()
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(DetailPane).show_job(_job(status="failed", outputs=[], inference_time_ms=0, execution_time_ms=0))
        await pilot.pause()
        assert _line(_body(app), "Inference").endswith("unknown")
        assert _line(_body(app), "Execution").endswith("unknown")
        app.query_one(DetailPane).show_job(_job(execution_time_ms=900_000, finished_at=T0 + 20.4))
        await pilot.pause()
        assert _line(_body(app), "Execution").endswith("15m00s")  # as the table says it, not 900000 ms
        assert _line(_body(app), "Total").endswith("15m00s")  # never shorter than the execution


@pytest.mark.parametrize("prompt", ["a heron takes off", "a heron takes off over a misty lake at dawn " * 6])
async def test_a_tick_repaints_only_the_lines_whose_text_changed(prompt):
    """Over a slow link the pane's clock costs its two timing lines, not the pane: a repaint of
    the whole body (two dozen lines) each tick was most of the dashboard's output. Also when the
    prompt wraps over several lines."""
    from tests.helpers import until
    from tui.ui.widgets.live_text import LiveText

    running = _job(status="processing", finished_at=None, outputs=[], inference_time_ms=0, execution_time_ms=None,
                   status_history=[["submitting", T0], ["created", T0 + 1], ["processing", T0 + 4]], prompt=prompt)
    app = TickingApp()
    async with app.run_test(size=(120, 60)) as pilot:
        pane = app.query_one(DetailPane)
        pane.show_job(running)
        await pilot.pause()
        body = app.query_one("#detail-body", LiveText)
        before = [body.render_line(y).text for y in range(body.size.height)]
        dirtied: list[tuple] = []
        original = body._set_dirty
        body._set_dirty = lambda *regions: (dirtied.append(regions), original(*regions))[1]
        app.now = T0 + 34  # only the clock moved
        await until(lambda: "34.0 s so far" in _line(_body(app), "Total"), pilot=pilot, what="the pane to tick")
        await pilot.pause()
        after = [body.render_line(y).text for y in range(body.size.height)]
        changed = {y for y, (old, new) in enumerate(zip(before, after)) if old != new}
        assert len(after) == len(before)
        assert {after[y].split()[0] for y in changed} == {"In", "Total"}  # "In processing", "Total"
        assert dirtied and all(dirtied)  # never the whole widget
        marked = {region.y - body.content_offset.y for call in dirtied for region in call}
        assert marked == changed and all(region.height == 1 for call in dirtied for region in call)
        # What it drew, rendered a line at a time, is what a full repaint would draw.
        from textual.visual import Visual
        width, height = body.size
        assert body._render_cache.lines == Visual.to_strips(body, body.visual, width, height, body.visual_style)
        # The same job with a new status is redrawn the same way: only what differs.
        dirtied.clear()
        pane.show_job(_job(status="queued", finished_at=None, outputs=[], inference_time_ms=0, execution_time_ms=None,
                           status_history=running.status_history, prompt=prompt))
        await pilot.pause()
        assert "queued" in _line(_body(app), "Status")
        rows_marked = {region.y - body.content_offset.y for call in dirtied for region in call}
        assert dirtied and all(dirtied) and 0 in rows_marked and len(rows_marked) < len(after) // 2
        # A body of another height is laid out again and drawn whole.
        dirtied.clear()
        pane.show_job(_job(error="it broke\nover two lines", status="failed"))
        await pilot.pause()
        assert () in dirtied and "it broke" in _body(app)
