"""The request form: options follow the model, validation shows in place, submit posts the request."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Button, Input, Select, Static, TextArea

from tui.core.catalog import VideoRequest
from tui.ui.widgets.composer import Composer


class ComposerApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[VideoRequest] = []

    def compose(self) -> ComposeResult:
        yield Composer(id="composer")

    def on_composer_submitted(self, event: Composer.Submitted) -> None:
        self.submitted.append(event.request)


def _error_text(app: App, field: str) -> str:
    widget = app.query_one(f"#{field}-error", Static)
    return str(widget.render()) if widget.has_class("-visible") else ""


def _options(app: App, select_id: str) -> list:
    return [value for _, value in app.query_one(f"#{select_id}", Select)._options if value is not Select.BLANK]


async def test_choosing_a_model_offers_only_what_it_allows_and_replaces_an_impossible_choice():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        composer = app.query_one(Composer)
        assert _options(app, "resolution") == ["768P", "1080P"]
        app.query_one("#duration", Select).value = 10
        await pilot.pause()
        app.query_one("#tier", Select).value = "pro"
        await pilot.pause()
        assert _options(app, "resolution") == ["1080P"]
        assert _options(app, "duration") == [6]
        assert composer.request.model == "hailuo-2.3-pro"
        assert composer.request.resolution == "1080P" and composer.request.duration == 6


async def test_a_choice_the_new_tier_does_not_offer_is_replaced_with_a_word_in_the_form():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        composer = app.query_one(Composer)
        note = app.query_one("#choices-note", Static)
        app.query_one("#duration", Select).value = 10
        await pilot.pause()
        assert not note.has_class("-visible")
        app.query_one("#tier", Select).value = "pro"
        await pilot.pause()
        assert composer.request.duration == 6
        assert note.has_class("-visible") and note.region  # shown, on screen
        said = str(note.render())
        assert "hailuo-2.3-pro" in said and "duration 10 s is now 6 s" in said and "resolution 768P is now 1080P" in said
        # Back to a tier that offers what is chosen: nothing was replaced, nothing said.
        app.query_one("#tier", Select).value = "fast"
        await pilot.pause()
        assert not note.has_class("-visible")
        assert composer.request.duration == 6  # the form does not guess the earlier choice back


async def test_submitting_an_empty_prompt_shows_the_reason_beside_the_field_and_sends_nothing():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.submitted == []
        assert "a prompt is required" in _error_text(app, "prompt")
        app.query_one("#prompt", TextArea).text = "a cat on a skateboard"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [r.prompt for r in app.submitted] == ["a cat on a skateboard"]
        assert _error_text(app, "prompt") == ""
        # The form keeps its values for the next variation.
        assert app.query_one("#prompt", TextArea).text == "a cat on a skateboard"


async def test_validation_follows_typing_after_a_short_pause():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        app.query_one("#prompt", TextArea).focus()
        await pilot.press("x", "backspace")
        await pilot.pause(0.4)
        assert "a prompt is required" in _error_text(app, "prompt")
        await pilot.press(*"hello")
        await pilot.pause(0.4)
        assert _error_text(app, "prompt") == ""
        assert "5 / 5,000" in str(app.query_one("#prompt-count", Static).render())


async def test_images_only_for_image_to_video_and_a_missing_first_frame_is_named():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        composer = app.query_one(Composer)
        assert app.query_one("#image", Input).disabled
        app.query_one("#scene", Select).value = "image-to-video"
        app.query_one("#prompt", TextArea).text = "the statue turns its head"
        await pilot.pause()
        assert not app.query_one("#image", Input).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.submitted == []
        assert "first-frame image" in _error_text(app, "image")
        app.query_one("#image", Input).value = "/no/such/file.png"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.submitted == []
        assert "no such file" in _error_text(app, "image")  # said from stat(), nothing opened
        assert composer.request.image == "/no/such/file.png"


async def test_load_fills_every_field_and_clear_resets_them():
    app = ComposerApp()
    request = VideoRequest(model="hailuo-02-standard", scene="text-to-video", prompt="a lantern in the rain",
                           duration=10, resolution="768P", prompt_expansion=False)
    async with app.run_test(size=(80, 50)) as pilot:
        composer = app.query_one(Composer)
        composer.load(request)
        await pilot.pause()
        assert composer.request == request
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert composer.request == VideoRequest()


async def test_a_disabled_form_says_why_and_does_not_post():
    app = ComposerApp()
    async with app.run_test(size=(80, 50)) as pilot:
        composer = app.query_one(Composer)
        composer.disabled_reason = "no API key: set GPTPROTO_API_KEY to submit"
        app.query_one("#prompt", TextArea).text = "a valid prompt"
        await pilot.pause()
        assert app.query_one("#submit", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.submitted == []
        assert "GPTPROTO_API_KEY" in str(app.query_one("#submit-note", Static).render())
