"""The frame strip where users see it: the detail pane and the compare screen (Pilot and
snapshots, from the demo's clips), the renderer choice, and the play key's toasts."""

from __future__ import annotations

import asyncio

import pytest

from tui.core.config import Settings
from tui.core.frame_cache import cache_key
from tui.core.records import Job
from tui.simulator.demo import DEMO_KEY, sample_jobs, write_history
from tui.simulator.videos import prompt_video
from tui.ui.app import HailuoApp
from tui.ui.widgets.frame_strip import FrameStrip, choose_renderer
from tui.ui.widgets.job_table import JobTable

from helpers import app_settings, submit_from_the_composer, toasts, until

FROZEN_NOW = 1_790_000_000.0
KEY = "sk-test-frames-0000000000"


def _i2v_job(now: float) -> Job:
    request = {"model": "hailuo-2.3-fast", "scene": "image-to-video", "prompt": "The lantern swings in the wind",
               "duration": 6, "resolution": "768P", "prompt_expansion": False,
               "image": {"source": "first.png", "format": "PNG", "width": 64, "height": 36},
               "end_image": {"source": "last.png", "format": "PNG", "width": 64, "height": 36}}
    return Job(local_id="local-0007", server_id="07f3c9a1d2e84b7c6a5", request=request, submitted_at=now - 7200,
               status="completed", status_history=[["submitting", now - 7200], ["completed", now - 7100]],
               finished_at=now - 7100, created_at=now - 7199,
               outputs=["https://cdn.example.invalid/videos/07-lantern.mp4"])


@pytest.fixture
def clips_app(tmp_path, monkeypatch):
    """The snapshot history, its completed jobs' clips already in the preview cache (the demo's
    drawings of their prompts), and an image-to-video job whose images are files here."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 36), (200, 40, 40)).save("first.png")
    Image.new("RGB", (64, 36), (40, 40, 200)).save("last.png")
    jobs = sample_jobs(FROZEN_NOW) + [_i2v_job(FROZEN_NOW)]
    write_history(tmp_path / "history.json", jobs)
    cache = tmp_path / "cache"
    for job in jobs:
        if job.outputs:
            clip = cache / "videos" / f"{cache_key(job.local_id, job.outputs[0])}.mp4"
            clip.parent.mkdir(parents=True, exist_ok=True)
            clip.write_bytes(prompt_video(job.prompt))
    settings = Settings(api_key=DEMO_KEY, base_url="http://127.0.0.1:9", db_path=tmp_path / "history.json",
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads",
                        cache_dir=cache, preview="blocks")
    return HailuoApp(settings, clock=lambda: FROZEN_NOW, poll=False)


async def _show(pilot, local_id: str) -> FrameStrip:
    await asyncio.wait_for(pilot.app.ready.wait(), 60)
    assert pilot.app.query_one(JobTable).select(local_id)
    await pilot.pause()
    strip = pilot.app.query_one("#detail #frames", FrameStrip)
    await until(lambda: complete(strip), pilot=pilot)
    await pilot.pause()
    return strip


def complete(strip: FrameStrip) -> bool:
    """Every frame of the clip is in the strip (the first, middle and last are shown before the others)."""
    return strip.preview is not None and not strip.preview.coming


def test_detail_pane_snapshot_with_half_block_frames(snap_compare, clips_app):
    async def before(pilot) -> None:
        await _show(pilot, "local-0001")

    assert snap_compare(clips_app, terminal_size=(160, 45), run_before=before)


def test_detail_pane_snapshot_of_an_image_to_video_job(snap_compare, clips_app):
    async def before(pilot) -> None:
        strip = await _show(pilot, "local-0007")
        assert [label for label, _ in strip.images] == ["input", "end"]

    assert snap_compare(clips_app, terminal_size=(160, 45), run_before=before)


def test_compare_screen_snapshot_with_both_jobs_frames(snap_compare, clips_app):
    async def before(pilot) -> None:
        await _show(pilot, "local-0001")
        await pilot.press("m")
        await _show(pilot, "local-0002")
        await pilot.press("equals_sign")
        screen = pilot.app.screen
        left, right = screen.query_one("#frames-left", FrameStrip), screen.query_one("#frames-right", FrameStrip)
        await until(lambda: complete(left) and complete(right), pilot=pilot, timeout=30)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(clips_app, terminal_size=(140, 45), run_before=before)


async def test_a_job_that_completes_shows_its_clips_real_facts(tmp_path, make_simulator):
    """End to end: submitted, completed on the simulator, fetched into the cache, decoded, drawn."""
    from tui.simulator import Simulator

    with Simulator(job_seconds=0.3, distinct_videos=True, require_key=KEY) as sim:
        app = HailuoApp(app_settings(tmp_path, sim, KEY, preview="blocks"))
        async with app.run_test(size=(160, 45)) as pilot:
            table, job = await submit_from_the_composer(app, pilot, "a heron lifting off a misty lake")
            strip = app.query_one("#detail #frames", FrameStrip)
            await until(lambda: complete(strip), pilot=pilot)
            assert strip.preview.facts == "2.0 s · 320×180 · 10 fps"
            assert len(strip.preview.frames) == 5
            fetched = [r for r in sim.requests if r.path.startswith("/files/")]
            assert len(fetched) == 1 and fetched[0].header("Authorization") is None  # never the key
            # Kept for the next start: written once the frames are shown, not before.
            await until(lambda: list((tmp_path / "cache" / "frames").glob("*.json")), pilot=pilot,
                        what="(the frames never cached)")
            # Shown again: from memory, no second fetch.
            table.focus()
            await pilot.press("n")
            app.query_one(JobTable).select(job.local_id)
            await pilot.pause()
            assert len([r for r in sim.requests if r.path.startswith("/files/")]) == 1


@pytest.mark.parametrize("served, reason", [
    (b"<html>Access denied</html>", "not a video FFmpeg can read"),
    (b"", "the file is empty"),
    (prompt_video("cut short")[:1500], None),  # truncated: whichever part FFmpeg notices
])
async def test_a_damaged_clip_from_the_host_says_why_in_the_pane(tmp_path, served, reason):
    """The simulator serves a damaged file (fault `file_body`): one line in the pane, no crash, and
    the reason is cached so the file is not fetched and decoded again."""
    from tui.simulator import Simulator

    with Simulator(job_seconds=0.3, require_key=KEY) as sim:
        sim.faults.update({"file_body": served})
        app = HailuoApp(app_settings(tmp_path, sim, KEY, preview="blocks"))
        async with app.run_test(size=(160, 45)) as pilot:
            await submit_from_the_composer(app, pilot, "cut short")
            strip = app.query_one("#detail #frames", FrameStrip)
            await until(lambda: strip.state.startswith("no preview"), pilot=pilot, timeout=30)
            if reason is not None:
                assert strip.state == f"no preview: {reason}"
            assert strip.preview is None and "\n" not in strip.state
            assert app.is_running
        assert len(list((tmp_path / "cache" / "frames").glob("*.json"))) == 1


async def test_the_play_key_without_a_player_says_what_to_install(clips_app, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    async with clips_app.run_test(size=(160, 45)) as pilot:
        await _show(pilot, "local-0001")
        await pilot.press("P")
        await until(lambda: any("no video player found" in t for t in toasts(clips_app)),
                    pilot=pilot, timeout=20)


@pytest.mark.parametrize("setting, env, passthrough, expected", [
    ("auto", {"TERM": "xterm-256color"}, False, "blocks"),
    ("auto", {"TERM": "xterm-kitty"}, False, "kitty"),
    ("auto", {"TERM": "foot"}, False, "sixel"),
    ("auto", {"TERM": "linux", "KITTY_WINDOW_ID": "1"}, False, "blocks"),
    ("auto", {"TERM": "tmux-256color", "TMUX": "/tmp/t,1,0", "KITTY_WINDOW_ID": "1"}, False, "blocks"),
    ("auto", {"TERM": "tmux-256color", "TMUX": "/tmp/t,1,0", "KITTY_WINDOW_ID": "1"}, True, "kitty"),
    ("sixel", {"TERM": "xterm-256color"}, False, "sixel"),
    ("sixel", {"TERM": "xterm-256color", "TMUX": "/tmp/t,1,0"}, False, "blocks"),
    ("blocks", {"TERM": "xterm-kitty"}, False, "blocks"),
    ("off", {"TERM": "xterm-kitty"}, False, "off"),
])
def test_the_renderer_follows_the_setting_and_the_terminal(setting, env, passthrough, expected):
    assert choose_renderer(setting, env, passthrough=lambda _env: passthrough) == expected


def test_the_browser_always_gets_blocks():
    assert choose_renderer("auto", {"TERM": "xterm-kitty"}, web=True) == "blocks"


def test_a_preview_setting_that_does_not_exist_is_one_clear_error(tmp_path):
    from tui.core.config import ConfigError, load_settings

    (tmp_path / "config.toml").write_text('preview = "ascii"\n')
    with pytest.raises(ConfigError, match="preview must be one of auto, kitty, sixel, blocks, off"):
        load_settings(env={"HAILUO_TUI_CONFIG": str(tmp_path / "config.toml")})


async def test_the_composer_shows_the_chosen_image_once_it_validates(tmp_path, monkeypatch):
    from PIL import Image
    from textual.widgets import Input, Select

    from tui.simulator import Simulator

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (640, 360), (200, 40, 40)).save("first.png")  # big enough to validate
    (tmp_path / "fake.png").write_text("not an image")
    with Simulator(require_key=KEY) as sim:
        app = HailuoApp(app_settings(tmp_path, sim, KEY, preview="blocks"))
        async with app.run_test(size=(160, 45)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 60)
            app.query_one("#scene", Select).value = "image-to-video"
            await pilot.pause()
            thumb = app.query_one("#image-thumb")
            field = app.query_one("#image", Input)
            field.value = "fake.png"
            await pilot.pause()
            field.post_message(Input.Submitted(field, field.value))
            await pilot.pause()
            assert not thumb.has_class("-shown")  # an image that does not validate shows nothing
            field.value = "first.png"
            field.post_message(Input.Submitted(field, field.value))
            await until(lambda: thumb.has_class("-shown") and thumb.region.height >= 2, pilot=pilot, timeout=20)
            cells = [segment for y in range(thumb.region.height) for segment in thumb.render_line(y)]
            assert any(segment.text.startswith("▀") and segment.style.color.triplet == (200, 40, 40)
                       for segment in cells if segment.style and segment.style.color)
            app.query_one("#scene", Select).value = "text-to-video"
            await until(lambda: thumb.region.height == 0, pilot=pilot)  # hidden with the image fields


def _kitty_app(tmp_path, monkeypatch, clips_app):
    """The clips dashboard drawing with kitty graphics, and what it writes to the terminal."""
    from textual.drivers.headless_driver import HeadlessDriver

    monkeypatch.delenv("TMUX", raising=False)
    import dataclasses

    clips_app.settings = dataclasses.replace(clips_app.settings, preview="kitty")
    written: list[str] = []
    monkeypatch.setattr(HeadlessDriver, "write", lambda self, data: written.append(data))
    return written


def _transmitted(written: list[str]) -> list[int]:
    import re

    return [int(i) for data in written for i in re.findall(r"\x1b_Ga=T,U=1,[^;]*?,i=(\d+),", data)]


def _deleted(written: list[str]) -> list[int]:
    import re

    return [int(i) for data in written for i in re.findall(r"\x1b_Ga=d,d=I,i=(\d+),", data)]


def _placeholder_ids(strip: FrameStrip) -> set[int]:
    """The image ids the strip's cells show (kitty reads them from the placeholders' colour)."""
    from tui.core.graphics import PLACEHOLDER

    return {segment.style.color.number for y in range(strip.region.height) for segment in strip.render_line(y)
            if PLACEHOLDER in segment.text and segment.style and segment.style.color}


async def test_kitty_draws_each_frame_as_an_image_and_selecting_another_job_deletes_the_old_ones(
        tmp_path, monkeypatch, clips_app):
    written = _kitty_app(tmp_path, monkeypatch, clips_app)
    async with clips_app.run_test(size=(160, 45)) as pilot:
        strip = await _show(pilot, "local-0001")
        await until(lambda: _placeholder_ids(strip), pilot=pilot)
        first = set(_transmitted(written))
        assert _placeholder_ids(strip) == first and len(first) == len(strip.preview.frames)
        assert not set(_deleted(written)) & first

        clips_app.query_one(JobTable).select("local-0002")
        await until(lambda: complete(strip) and _placeholder_ids(strip) - first, pilot=pilot)
        second = _placeholder_ids(strip)
        assert not second & first
        assert first <= set(_deleted(written))  # the old job's images are gone from the terminal
        assert second <= set(_transmitted(written)) and not second & set(_deleted(written))


async def test_kitty_images_are_removed_while_a_dialog_is_over_the_strip(tmp_path, monkeypatch, clips_app):
    written = _kitty_app(tmp_path, monkeypatch, clips_app)
    async with clips_app.run_test(size=(160, 45)) as pilot:
        strip = await _show(pilot, "local-0001")
        await until(lambda: _placeholder_ids(strip), pilot=pilot)
        shown = _placeholder_ids(strip)
        await pilot.press("question_mark")
        await until(lambda: shown <= set(_deleted(written)), pilot=pilot, what="(images left under the dialog)")
        await until(lambda: not _placeholder_ids(strip), pilot=pilot)  # half-blocks under the dialog
        await pilot.press("escape")
        await until(lambda: _placeholder_ids(strip), pilot=pilot)  # drawn again, as new images
        assert not _placeholder_ids(strip) & shown


def test_the_first_frames_take_their_places_among_five_while_the_others_decode(tmp_path):
    from dataclasses import replace

    from tui.core.frames import read_preview
    from tui.ui.widgets.frame_strip import tiles_for

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(prompt_video("a fox in the snow"))
    whole = read_preview(clip, count=5)
    first = replace(whole, frames=(whole.frames[0], whole.frames[2], whole.frames[4]), coming=2)
    shown, tile = tiles_for(100, first, [])
    assert tiles_for(100, whole, [])[1] == tile  # the same tile size: nothing moves when the rest come
    assert [frame for _, frame in shown] == [whole.frames[0], None, whole.frames[2], None, whole.frames[4]]
    narrow, _ = tiles_for(40, first, [])
    assert [frame for _, frame in narrow] == list(first.frames)


async def test_the_strip_keeps_its_height_while_the_next_jobs_frames_load(clips_app):
    async with clips_app.run_test(size=(160, 45)) as pilot:
        strip = await _show(pilot, "local-0001")
        body = clips_app.query_one("#detail-body")
        height, body_at = strip.region.height, body.region.y
        strip.loading("loading frames…")
        await pilot.pause()
        assert strip.region.height == height and body.region.y == body_at
        strip.show(None, images=[])
        await pilot.pause()
        assert strip.region.height == 0


async def test_sixel_draws_each_frame_over_its_tile_once_the_strip_is_painted(tmp_path, monkeypatch, clips_app):
    import dataclasses
    import re

    from textual.drivers.headless_driver import HeadlessDriver

    from tui.core.graphics import cursor_to

    monkeypatch.delenv("TMUX", raising=False)
    clips_app.settings = dataclasses.replace(clips_app.settings, preview="sixel")
    written: list[str] = []
    monkeypatch.setattr(HeadlessDriver, "write", lambda self, data: written.append(data))
    async with clips_app.run_test(size=(160, 45)) as pilot:
        strip = await _show(pilot, "local-0001")
        frames = len(strip.preview.frames)

        def drawn() -> list[str]:
            return [data for data in written if data.startswith("\x1b7") and data.endswith("\x1b8")]

        await until(lambda: drawn() and drawn()[-1].count("\x1bP0;1;0q") == frames, pilot=pilot)
        last = drawn()[-1]
        region = strip.content_region
        top = region.y + 1  # under the facts line
        assert last.startswith("\x1b7" + cursor_to(region.x, top) + "\x1bP0;1;0q")
        columns = [int(c) - 1 for c in re.findall(rf"\x1b\[{top + 1};(\d+)H\x1bP", last)]
        assert len(columns) == frames and columns == sorted(columns) and columns[0] == region.x
        # Under a dialog no Sixel is written (Textual's repaint of the cells covers the old one).
        await pilot.press("question_mark")
        await pilot.pause()
        before = len(drawn())
        strip.refresh()
        await pilot.pause()
        assert len(drawn()) == before


async def test_kitty_images_go_when_the_pane_is_hidden_and_come_back_with_it(tmp_path, monkeypatch, clips_app):
    written = _kitty_app(tmp_path, monkeypatch, clips_app)
    async with clips_app.run_test(size=(160, 45)) as pilot:
        strip = await _show(pilot, "local-0001")
        await until(lambda: _placeholder_ids(strip), pilot=pilot)
        shown = _placeholder_ids(strip)
        detail = clips_app.query_one("#detail")
        detail.display = False
        await until(lambda: shown <= set(_deleted(written)), pilot=pilot, what="(images kept for a hidden pane)")
        sent = len(_transmitted(written))
        detail.display = True
        await until(lambda: len(_transmitted(written)) >= sent + len(shown), pilot=pilot)
        again = _placeholder_ids(strip)
        assert again and not again & set(_deleted(written))  # drawn again, as images still in the terminal
