"""What the dashboard looks like: the same screens as screenshots/, from a fixed history and a frozen clock."""

from __future__ import annotations

import asyncio

import pytest

from tui.ui.app import HailuoApp
from tui.core.config import Settings
from tui.simulator.demo import DEMO_KEY, sample_jobs, write_history

FROZEN_NOW = 1_790_000_000.0


@pytest.fixture
def seeded_app(tmp_path):
    def build() -> HailuoApp:
        write_history(tmp_path / "history.json", sample_jobs(FROZEN_NOW))
        # Polling off and a loopback address that is never reached: nothing on screen moves.
        settings = Settings(api_key=DEMO_KEY, base_url="http://127.0.0.1:9", db_path=tmp_path / "history.json",
                            config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads")
        return HailuoApp(settings, clock=lambda: FROZEN_NOW, poll=False)

    return build


async def _ready(pilot) -> None:
    await asyncio.wait_for(pilot.app.ready.wait(), 60)
    await pilot.pause()


async def _ready_and_settled(pilot) -> None:
    await _ready(pilot)
    await pilot.pause(0.4)  # the debounced validation


def test_main_screen_wide(snap_compare, seeded_app):
    assert snap_compare(seeded_app(), terminal_size=(160, 45), run_before=_ready)


def test_main_screen_80x24(snap_compare, seeded_app):
    assert snap_compare(seeded_app(), terminal_size=(80, 24), run_before=_ready)


def test_detail_of_a_completed_job(snap_compare, seeded_app):
    assert snap_compare(seeded_app(), terminal_size=(160, 45), run_before=_ready, press=["j", "j", "j", "j"])


def test_composer_with_validation_errors(snap_compare, seeded_app):
    async def before(pilot) -> None:
        await _ready(pilot)
        # A blinking cursor would be caught on or off depending on the machine's speed.
        pilot.app.query_one("#prompt").cursor_blink = False
        await pilot.press("n", "ctrl+s")
        # A blinking cursor would make the picture depend on when it is taken: keep it steady (shown).
        pilot.app.query_one("#prompt").cursor_blink = False
        await pilot.pause(0.4)

    assert snap_compare(seeded_app(), terminal_size=(80, 24), run_before=before)


def test_help_screen(snap_compare, seeded_app):
    assert snap_compare(seeded_app(), terminal_size=(100, 40), run_before=_ready, press=["question_mark"])


# -- state without colour, and the Linux console ------------------------------------------------
# NO_COLOR: failures are bold, focus is reversed or a double border, the switch says on/off.
# TERM=linux: ASCII borders, `v`/`^` sort arrows, `~` for a cut text, a reversed cursor row.


def test_main_screen_no_color(snap_compare, seeded_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")  # read (and taken) by the App when it is built

    async def before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("n")  # the composer, its prompt focused
        pilot.app.query_one("#prompt").cursor_blink = False
        await pilot.pause()

    assert snap_compare(seeded_app(), terminal_size=(160, 45), run_before=before)


def test_main_screen_term_linux(snap_compare, seeded_app, monkeypatch):
    from tui.ui import glyphs
    from tui.ui.widgets import composer, detail, job_table, status_line

    monkeypatch.setenv("TERM", "linux")
    for module in (glyphs, composer, detail, job_table, status_line):
        monkeypatch.setattr(module, "GLYPHS", glyphs.PLAIN)
    assert snap_compare(seeded_app(), terminal_size=(80, 24), run_before=_ready)
