"""The config's [keymap] as a user meets it: the help and the palette say the keys in force,
a wrong id or a stolen key is named at start, and docs/KEYS.md lists every binding id."""

from __future__ import annotations

import re
from pathlib import Path

from textual.command import CommandList
from textual.widgets import Static

from tui.ui.app import HailuoApp
from tui.ui.keys import keymap_problems, keys_markdown
from tui.ui.screens.dialogs import ConfirmScreen, HelpScreen
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.status_line import StatusLine

from helpers import app_settings, started, toasts, until

ROOT = Path(__file__).resolve().parent.parent


def _help_line(text: str, description: str) -> str:
    return next(line for line in text.splitlines() if re.search(rf"\s{re.escape(description)}$", line))


async def test_help_and_palette_show_a_remapped_key_and_the_key_acts(tmp_path):
    from tui.simulator.demo import sample_jobs, write_history

    write_history(tmp_path / "history.json", sample_jobs(1_790_000_000.0))
    app = HailuoApp(app_settings(tmp_path, keymap={"app.forget": "delete"}), poll=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen), pilot=pilot)
        text = str(app.screen.query_one("#help-text", Static).render())
        line = _help_line(text, "Forget")
        assert "delete" in line and not re.search(r"\bx\b", line), line
        assert "p" in _help_line(text, "Pause").split()  # a key not remapped keeps its own
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, HelpScreen), pilot=pilot)

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"forget")
        results = app.screen.query_one(CommandList)
        await until(lambda: any("Forget" in str(results.get_option_at_index(i).prompt)
                                for i in range(results.option_count)), pilot=pilot)
        shown = [str(results.get_option_at_index(i).prompt) for i in range(results.option_count)]
        forget = next(entry for entry in shown if "Forget" in entry)
        assert "key delete" in forget and "key x" not in forget, shown
        await pilot.press("escape")
        await until(lambda: app.screen is app.dashboard, pilot=pilot)

        # The key the help names is the one that acts; the old one does nothing.
        assert app.query_one(JobTable).selected_job is not None
        app.query_one(JobTable).focus()
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("delete")
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot=pilot)


async def test_a_stolen_key_and_an_unknown_id_are_named_at_start_and_the_app_runs_on(tmp_path):
    app = HailuoApp(app_settings(tmp_path, keymap={"app.quit": "n", "app.frobnicate": "f9"}), poll=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await started(app, pilot)
        await until(lambda: len([t for t in toasts(app) if "[keymap]" in t]) == 2, pilot=pilot)
        named = [t for t in toasts(app) if "[keymap]" in t]
        assert any("'app.quit'" in t and "'app.new'" in t and " n " in t for t in named), named
        assert any("'app.frobnicate'" in t and "no binding id" in t for t in named), named
        status = str(app.query_one(StatusLine).render())
        assert "[keymap]" in status and "+1 more" in status
        assert app.is_running


def test_moving_both_keys_of_a_swap_is_no_conflict_and_default_overlaps_are_not_reported():
    assert keymap_problems({"app.quit": "n", "app.new": "N"}) == []
    assert keymap_problems({}) == []  # the bindings as written (v on the screen and the pane) are fine
    assert keymap_problems({"detail.raw": "x"}) == [
        "[keymap] x is bound to both 'app.forget' and 'detail.raw' on the detail pane: only one of them acts"]


def test_docs_keys_md_lists_every_binding_id_as_the_bindings_say():
    """Regenerate with `python -m tui.ui.keys > docs/KEYS.md`."""
    assert (ROOT / "docs" / "KEYS.md").read_text(encoding="utf-8") == keys_markdown()
    for binding_id in ("app.forget", "app.quit", "job-table.sort", "composer.clear", "detail.raw", "confirm.yes"):
        assert f"`{binding_id}`" in keys_markdown()


async def test_the_help_screen_says_the_closing_key_in_force_and_that_key_closes_it(tmp_path):
    app = HailuoApp(app_settings(tmp_path, keymap={"help.close": "f10"}), poll=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen), pilot=pilot)
        closing = str(app.screen.query_one("#help-closing", Static).render())
        assert closing.startswith("f10 closes"), closing
        assert "Esc" not in closing and "ctrl+p opens the command palette" in closing, closing
        await pilot.press("escape")  # no longer a closing key
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f10")
        await until(lambda: not isinstance(app.screen, HelpScreen), pilot=pilot)


async def test_at_80_columns_the_status_line_gives_the_keymap_problem_room_before_the_host(tmp_path):
    app = HailuoApp(app_settings(tmp_path, keymap={"app.frobnicate": "f9"}), poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        status = app.query_one(StatusLine)
        await until(lambda: "[keymap]" in str(status.render()), pilot=pilot)
        visible = str(status.render())[:status.content_region.width]
        assert "[keymap] 'app.frobnicate' is no binding" in visible, visible
        assert app.settings.api_host not in visible  # the host gave way (it is in `locate`)
    wide = HailuoApp(app_settings(tmp_path, keymap={"app.frobnicate": "f9"}), poll=False)
    async with wide.run_test(size=(240, 24)) as pilot:
        await started(wide, pilot)
        status = wide.query_one(StatusLine)
        await until(lambda: "[keymap]" in str(status.render()), pilot=pilot)
        assert wide.settings.api_host in str(status.render())
