"""What the dashboard remembers between runs: the theme picked in the palette."""

from __future__ import annotations

import asyncio
import json

from tui.core.ui_state import saved_theme, ui_state_path
from tui.ui.app import HailuoApp

from helpers import app_settings, until


async def _pick_theme_in_the_palette(app, pilot, name: str) -> None:
    from textual.command import CommandPalette

    await pilot.press("ctrl+p")
    await until(lambda: isinstance(app.screen, CommandPalette), pilot=pilot)
    await pilot.press(*"theme")
    await pilot.pause(0.3)
    await pilot.press("enter")  # "Theme": the list of themes, a palette of its own
    await until(lambda: isinstance(app.screen, CommandPalette), pilot=pilot)
    await pilot.press(*name)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until(lambda: app.theme == name, pilot=pilot)


async def test_the_theme_picked_in_the_palette_is_the_theme_of_the_next_run(tmp_path):
    app = HailuoApp(app_settings(tmp_path, state_dir=tmp_path / "state"), poll=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        assert app.theme != "nord"
        await _pick_theme_in_the_palette(app, pilot, "nord")
        await until(lambda: saved_theme(ui_state_path(tmp_path / "state"), None) == "nord", pilot=pilot)

    again = HailuoApp(app_settings(tmp_path, state_dir=tmp_path / "state"), poll=False)
    async with again.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(again.ready.wait(), 60)
        assert again.theme == "nord"


async def test_a_theme_set_in_the_config_since_wins_over_the_one_remembered(tmp_path):
    path = ui_state_path(tmp_path / "state")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"theme": "nord", "config_theme": None}))
    app = HailuoApp(app_settings(tmp_path, state_dir=tmp_path / "state", theme="gruvbox"), poll=False)
    async with app.run_test(size=(120, 36)):
        await asyncio.wait_for(app.ready.wait(), 60)
        assert app.theme == "gruvbox"


def test_a_damaged_state_file_remembers_nothing(tmp_path):
    path = ui_state_path(tmp_path)
    for text in ("{", "[1, 2]", '{"theme": 5, "config_theme": null}', "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")):
        path.write_text(text, encoding="latin-1")
        assert saved_theme(path, None) is None
