"""The composer in the dashboard, driven by keys: what is sent is what was typed, once; letters
typed on a form field stay in the form; quitting over a draft asks. Against the simulator.

A burst is made here as a terminal makes it: every key put in the app's queue at once, before
the app handles the first (Pilot's `press` waits after each key, which hides the race).
(tests/test_typeahead.py does the same through a real pty.)
"""

from __future__ import annotations

import asyncio
import json
import unicodedata

import pytest
from textual import events
from textual.keys import _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input, Select, TextArea
from textual.widgets._toast import Toast

from tui.ui.app import HailuoApp
from tui.ui.screens.dialogs import ConfirmScreen, RepeatSubmitScreen
from tui.ui.widgets.composer import Composer
from tui.ui.widgets.job_table import JobTable

from helpers import app_settings, posts, until

KEY = "sk-composer-keys-0000"


def burst(app: HailuoApp, *pieces: str) -> None:
    """Queue every key at once: a piece is typed literally, unless it names a key ("ctrl+s")."""
    keys: list[str] = []
    for piece in pieces:
        keys.extend([piece] if piece in ("ctrl+s", "backspace", "space", "left", "enter", "escape") else list(piece))
    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(name))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(name, char)
        event.set_sender(app)
        app._driver.send_message(event)


def sent(sim) -> list[dict]:
    return [json.loads(r.body) for r in posts(sim)]


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def _dashboard_ready(app: HailuoApp, pilot) -> Composer:
    await asyncio.wait_for(app.ready.wait(), 60)
    composer = app.query_one(Composer)
    await until(lambda: composer.disabled_reason is None, pilot=pilot, what="the form enabled")
    return composer


async def _focus(pilot, widget) -> None:
    widget.focus()
    await until(lambda: widget.has_focus, pilot=pilot)


# -- 3. a burst then ctrl+s sends exactly what was typed before ctrl+s -----------------------------
async def test_a_burst_with_corrections_sends_what_the_form_held_at_ctrl_s_and_nothing_typed_after(
        tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await _dashboard_ready(app, pilot)
        prompt = app.query_one("#prompt", TextArea)
        await _focus(pilot, prompt)
        burst(app, "a heron over", "ctrl+s", " and more typed after")
        await until(lambda: len(posts(sim)) == 1, pilot=pilot, what="the POST")
        await until(lambda: prompt.text.endswith("and more typed after"), pilot=pilot, what="the later keys")
        assert sent(sim)[0]["prompt"] == "a heron over"
        assert prompt.text == "a heron over and more typed after"  # kept, not lost, not sent


async def test_a_burst_into_an_image_input_is_in_the_request(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await _dashboard_ready(app, pilot)
        app.query_one("#scene", Select).value = "image-to-video"
        app.query_one("#prompt", TextArea).text = "the first frame comes alive"
        image = app.query_one("#image", Input)
        await until(lambda: not image.disabled, pilot=pilot)
        await _focus(pilot, image)
        burst(app, "https://example.com/frame.png", "ctrl+s")
        await until(lambda: len(posts(sim)) == 1, pilot=pilot, what="the POST")
        assert "https://example.com/frame.png" in json.dumps(sent(sim)[0]) 


# -- 4. every submit says what was sent; an identical one within 10 s asks first -------------------
async def test_every_submit_says_what_was_sent_in_a_toast_visible_at_80x24(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await _dashboard_ready(app, pilot)
        app.query_one("#prompt", TextArea).text = "[bold]a heron[/] lifts off the misty lake at dawn, wings wide open"
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id, pilot=pilot)
        job = table.visible_jobs()[0]
        await until(lambda: any(job.short_id in str(t.render()) for t in app.screen.query(Toast)), pilot=pilot,
                    what="the toast")
        toast = next(t for t in app.screen.query(Toast) if job.short_id in str(t.render()))
        text = str(toast.render())
        assert "Sent" in text and job.model in text
        assert "[bold]a heron[/] lifts off the misty" in text  # the prompt as typed, not as markup
        # On the screen of an 80×24 terminal, whole (once laid out: a busy machine may query it first).
        await until(lambda: toast.region.area > 0, pilot=pilot, what="the toast laid out")
        assert app.screen.region.contains_region(toast.region)


async def test_an_identical_submit_within_10_seconds_asks_ctrl_s_sends_escape_drops(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    clock = Clock()
    app = HailuoApp(app_settings(tmp_path, sim, KEY), clock=clock)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await _dashboard_ready(app, pilot)
        prompt = app.query_one("#prompt", TextArea)
        prompt.text = "a red kite over the hills"
        await _focus(pilot, prompt)
        await pilot.press("ctrl+s")
        await until(lambda: len(posts(sim)) == 1, pilot=pilot)
        clock.now += 3
        await pilot.press("ctrl+s")
        await until(lambda: isinstance(app.screen, RepeatSubmitScreen), pilot=pilot, what="the question")
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, RepeatSubmitScreen), pilot=pilot)
        await pilot.pause()
        assert len(posts(sim)) == 1
        assert prompt.text == "a red kite over the hills"  # nothing lost either
        # Enter on the question drops it too: the second bill needs the deliberate key.
        await pilot.press("ctrl+s")
        await until(lambda: isinstance(app.screen, RepeatSubmitScreen), pilot=pilot)
        await pilot.press("enter")
        await until(lambda: not isinstance(app.screen, RepeatSubmitScreen), pilot=pilot)
        assert len(posts(sim)) == 1
        # ctrl+s twice: asked, then sent again on purpose.
        await pilot.press("ctrl+s")
        await until(lambda: isinstance(app.screen, RepeatSubmitScreen), pilot=pilot)
        await pilot.press("ctrl+s")
        await until(lambda: len(posts(sim)) == 2, pilot=pilot, what="the confirmed repeat")
        assert sent(sim)[1] == sent(sim)[0]
        # A different request goes at once; the same one 10 s after its last send does too.
        await _focus(pilot, prompt)
        prompt.text = "a red kite over the sea"
        await pilot.press("ctrl+s")
        await until(lambda: len(posts(sim)) == 3, pilot=pilot)
        prompt.text = "a red kite over the hills"
        clock.now += 10.5
        await pilot.press("ctrl+s")
        await until(lambda: len(posts(sim)) == 4, pilot=pilot)
        assert not isinstance(app.screen, RepeatSubmitScreen)


# -- 5. letters on a form field are the form's; quitting over a draft asks -----------------------
FIELDS = ["family", "tier", "scene", "prompt", "image", "end_image", "resolution", "duration",
          "prompt_expansion", "submit"]


@pytest.mark.parametrize("field", FIELDS)
async def test_on_every_form_field_letters_are_never_dashboard_actions(field, tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        composer = await _dashboard_ready(app, pilot)
        prompt = app.query_one("#prompt", TextArea)
        prompt.text = "the first job"
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1, pilot=pilot)  # something `c` would clone
        if field in ("image", "end_image"):
            app.query_one("#scene", Select).value = "image-to-video"
            await until(lambda: not app.query_one(f"#{field}").disabled, pilot=pilot)
        draft = "a draft that must survive"
        prompt.text = draft
        widget = app.query_one(f"#{field}")
        await _focus(pilot, widget)
        before = composer.request
        await pilot.press("c", "q", "x", "2", "slash")
        await pilot.press("ctrl+r")  # the form's own key: its picker shows once the letters are handled
        await until(lambda: len(app.screen_stack) == 2, pilot=pilot, what="the picker")
        assert "Recall" in type(app.screen).__name__ or "Prompt" in type(app.screen).__name__
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("escape")
        await until(lambda: len(app.screen_stack) == 1, pilot=pilot)
        typed = "cqx2/" if field in ("prompt", "image", "end_image") else ""
        # (the text was set, not typed: the cursor is at its start)
        expected = typed + before.prompt if field == "prompt" else before.prompt
        assert composer.request.prompt == expected  # `c` cloned nothing over the draft
        if field in ("image", "end_image"):
            assert app.query_one(f"#{field}", Input).value.endswith(typed)
        assert table.status_filter is None and not app.query_one("#filter").display  # `2` and `/` did nothing
        assert app.is_running and table.total_count == 1  # `q` did not quit, `x` forgot nothing


async def test_quit_over_an_unsent_draft_asks_and_no_keeps_the_draft(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        composer = await _dashboard_ready(app, pilot)
        assert not composer.has_unsent_draft
        prompt = app.query_one("#prompt", TextArea)
        await _focus(pilot, prompt)
        await pilot.press(*"a fox in snow")
        assert composer.has_unsent_draft
        table = app.query_one(JobTable)
        await _focus(pilot, table)
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot=pilot, what="the question")
        await pilot.press("n")
        await until(lambda: len(app.screen_stack) == 1, pilot=pilot)
        assert app.is_running and prompt.text == "a fox in snow"
        await pilot.press("ctrl+q")  # Textual's own quit key asks the same
        await until(lambda: isinstance(app.screen, ConfirmScreen), pilot=pilot)
        await pilot.press("escape")
        await until(lambda: len(app.screen_stack) == 1, pilot=pilot)
        # Once sent, the same form is no draft: q quits at once.
        await _focus(pilot, prompt)
        await pilot.press("ctrl+s")
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id, pilot=pilot)
        await until(lambda: not composer.has_unsent_draft, pilot=pilot)
        await _focus(pilot, table)
        await pilot.press("q")
        await until(lambda: not app.is_running, pilot=pilot, what="the app gone")
