"""The request form: model, scene, prompt, images, duration, resolution, prompt expansion.

It validates as the user types (debounced) with the catalog's messages shown beside each
field, and posts `Composer.Submitted(request)` upward; it never talks to the service itself.

What is submitted is exactly what was typed before the submit key: keys still queued at the
form's fields land first (tui.ui.typeahead). While a field has the focus, printable keys are
the field's or the form's, never the dashboard's single-letter shortcuts. `has_unsent_draft`
says whether quitting would lose something typed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from rich.segment import Segment
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Select, Static, Switch, TextArea

from tui.core import catalog
from tui.ui.glyphs import GLYPHS
from tui.core.catalog import FieldError, VideoRequest
from tui.core.costs import PriceTable
from tui.core.text import inert
from tui.ui.typeahead import settle

FIELDS = ("model", "scene", "prompt", "image", "end_image", "duration", "resolution")
VALIDATE_DELAY = 0.25  # seconds of quiet typing before the form is checked again


def _options(values) -> list[tuple[str, object]]:
    return [(str(v), v) for v in values]


class FieldMessage(Static):
    """One field's validation message (plain text: it may quote what the user typed)."""

    def show(self, messages: list[str]) -> None:
        self.update(Text("\n".join(inert(m) for m in messages)))
        self.set_class(bool(messages), "-visible")


class Composer(VerticalScroll, can_focus=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,ctrl+enter", "submit", "Submit", id="composer.submit", priority=True),
        Binding("ctrl+l", "clear", "Clear form", id="composer.clear"),
        Binding("ctrl+r", "recall", "Recall prompt", id="composer.recall"),
        Binding("ctrl+t", "save_template", "Save as template", show=False, id="composer.save-template"),
    ]

    #: Why submitting is off (no key, read-only history), or None.
    disabled_reason: reactive[str | None] = reactive(None, init=False)

    @dataclass
    class Submitted(Message):
        composer: "Composer"
        request: VideoRequest
        #: The request's image files as the form read them (once, in a thread): the service
        #: sends these bytes and does not open the files again. None without images.
        images: catalog.ReadImages | None = None

        @property
        def control(self) -> "Composer":
            return self.composer

    @dataclass
    class RecallRequested(Message):
        """The user wants to pick an earlier prompt or a template."""

        composer: "Composer"

        @property
        def control(self) -> "Composer":
            return self.composer

    @dataclass
    class SaveTemplateRequested(Message):
        """The user wants the form saved as a named template."""

        composer: "Composer"
        request: VideoRequest

        @property
        def control(self) -> "Composer":
            return self.composer

    def __init__(self, *, allow_uncertain: bool = False, prices: PriceTable | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        # Built as the default scene (text to video) shows it: changing a class or a field's
        # state after mounting would restyle all forty widgets of the form once more.
        super().__init__(id=id, classes=" ".join(filter(None, [classes, "-text-only"])))
        self.allow_uncertain = allow_uncertain
        #: For the estimate line: the config's `[prices]` over the list prices.
        self.prices = prices or PriceTable()
        self._validate_timer: Timer | None = None
        self._errors: list[FieldError] = []
        #: The form was checked since it was last filled (its messages are showing, so a file read
        #: later that found something new must show it too).
        self._checked_since_load = False
        self._listening = False
        #: The request the form held when it was last filled, cleared or sent: nothing typed since.
        self._kept: VideoRequest | None = None
        #: field -> (path, problems) found when the image was last read (on leaving its field).
        self._read_images: dict[str, tuple[str, tuple[str, ...]]] = {}

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        spec = catalog.MODELS[catalog.DEFAULT_MODEL]
        yield Label("New video", classes="composer-title")
        with Horizontal(classes="composer-row"):
            yield Label("Model", classes="field-label")
            yield Select(_options(catalog.FAMILIES), value=spec.family, allow_blank=False, compact=True, id="family")
            yield Select(_options(catalog.TIERS), value=spec.tier, allow_blank=False, compact=True, id="tier")
        yield FieldMessage(id="model-error", classes="field-error")
        with Horizontal(classes="composer-row"):
            yield Label("Scene", classes="field-label")
            yield Select(_options(catalog.SCENES), value="text-to-video", allow_blank=False, compact=True, id="scene")
        yield FieldMessage(id="scene-error", classes="field-error")
        with Horizontal(classes="composer-row"):
            yield Label("Prompt", classes="field-label")
            yield Static("0 / 5,000", id="prompt-count")
        yield TextArea(id="prompt", soft_wrap=True, show_line_numbers=False, compact=True)
        yield FieldMessage(id="prompt-error", classes="field-error")
        with Horizontal(classes="composer-row image-row"):
            yield Label("Image", classes="field-label")
            yield Input(placeholder="first frame: path or https:// URL", compact=True, id="image", disabled=True)
        yield Static("", id="image-info", classes="image-info image-row")
        yield Static("", id="image-thumb", classes="image-thumb image-row")
        yield FieldMessage(id="image-error", classes="field-error")
        with Horizontal(classes="composer-row image-row"):
            yield Label("End image", classes="field-label")
            yield Input(placeholder="last frame (optional)", compact=True, id="end_image", disabled=True)
        yield Static("", id="end_image-info", classes="image-info image-row")
        yield Static("", id="end_image-thumb", classes="image-thumb image-row")
        yield FieldMessage(id="end_image-error", classes="field-error")
        with Horizontal(classes="composer-row"):
            yield Label("Resolution", classes="field-label")
            yield Select(_options(self._resolutions(spec.id)), value=catalog.default_resolution(spec.id),
                         allow_blank=False, compact=True, id="resolution")
        yield FieldMessage(id="resolution-error", classes="field-error")
        with Horizontal(classes="composer-row"):
            yield Label("Duration", classes="field-label")
            yield Select(_options(self._durations(spec.id, catalog.default_resolution(spec.id))),
                         value=catalog.DEFAULT_DURATION, allow_blank=False, compact=True, id="duration")
        yield FieldMessage(id="duration-error", classes="field-error")
        # Says when a choice the new model or resolution does not offer was replaced.
        yield FieldMessage(id="choices-note", classes="choices-note")
        yield Static(Text(self.prices.estimate(spec.id, catalog.default_resolution(spec.id),
                                               catalog.DEFAULT_DURATION).line()), id="estimate", classes="estimate")
        with Horizontal(classes="composer-row"):
            yield Label("Expand prompt", classes="field-label")
            yield Switch(value=True, id="prompt_expansion")
            # The slider alone is colour: under NO_COLOR only this word tells on from off.
            yield Static(GLYPHS.switch_on, id="prompt_expansion-state", classes="switch-state")
        with Horizontal(classes="composer-row submit-row"):
            yield Button("Submit ^s", variant="primary", compact=True, id="submit")
            yield Static("", id="submit-note")

    def on_mount(self) -> None:
        self._sync_scene()
        self._kept = self.request
        # Selects announce their first values after mounting; only the user's changes start validation.
        self.call_after_refresh(self._start_listening)

    def on_switch_changed(self, event: Switch.Changed) -> None:
        if event.switch.id == "prompt_expansion":
            self.query_one("#prompt_expansion-state", Static).update(
                GLYPHS.switch_on if event.value else GLYPHS.switch_off)

    def _start_listening(self) -> None:
        self._listening = True

    # -- reading and writing the form ---------------------------------------------------------
    def _resolutions(self, model: str) -> tuple[str, ...]:
        return catalog.resolutions_for(model, allow_uncertain=self.allow_uncertain)

    def _durations(self, model: str, resolution: str | None) -> tuple[int, ...]:
        return catalog.durations_for(model, resolution, allow_uncertain=self.allow_uncertain) or \
            catalog.durations_for(model)

    @property
    def model(self) -> str:
        return catalog.model_id(self.query_one("#family", Select).value, self.query_one("#tier", Select).value)

    @property
    def request(self) -> VideoRequest:
        """What the form says now."""
        scene = self.query_one("#scene", Select).value
        image = self.query_one("#image", Input).value.strip() or None
        end_image = self.query_one("#end_image", Input).value.strip() or None
        if scene != "image-to-video":
            image = end_image = None  # hidden fields do not travel
        return VideoRequest(
            model=self.model,
            scene=str(scene),
            prompt=self.query_one("#prompt", TextArea).text,
            image=image,
            end_image=end_image,
            duration=int(self.query_one("#duration", Select).value),
            resolution=str(self.query_one("#resolution", Select).value),
            prompt_expansion=self.query_one("#prompt_expansion", Switch).value,
        )

    def load(self, request: VideoRequest) -> None:
        """Fill the form (clone of a job, or a blank request)."""
        spec = catalog.MODELS.get(request.model) or catalog.MODELS[catalog.DEFAULT_MODEL]
        with self.prevent(Select.Changed, Input.Changed, TextArea.Changed):
            self.query_one("#family", Select).value = spec.family
            self.query_one("#tier", Select).value = spec.tier
            self.query_one("#scene", Select).value = request.scene if request.scene in catalog.SCENES else "text-to-video"
            self.query_one("#prompt", TextArea).text = request.prompt or ""
            self.query_one("#image", Input).value = request.image or ""
            self.query_one("#end_image", Input).value = request.end_image or ""
            self.query_one("#prompt_expansion", Switch).value = bool(request.prompt_expansion)
        self._refresh_choices(resolution=request.resolution, duration=request.duration)
        self._update_estimate()
        self._sync_scene()
        self._update_count()
        self._update_images()
        if self._validate_timer is not None:
            self._validate_timer.stop()
        self.show_errors([])
        self._checked_since_load = False
        self._kept = self.request

    def clear(self) -> None:
        self.load(VideoRequest())

    def mark_sent(self, request: VideoRequest) -> None:
        """`request` went to the server (or may have): the form as it was then is no draft."""
        self._kept = request

    @property
    def has_unsent_draft(self) -> bool:
        """Something was typed since the form was last filled, cleared or sent."""
        request = self.request
        typed = bool(request.prompt.strip() or request.image or request.end_image)
        return typed and request != self._kept

    # -- validation -------------------------------------------------------------------------
    def validate_now(self) -> list[FieldError]:
        """Check the form without reading an image file (never on this loop, and on a submit the
        service reads each file once): what `stat()` tells of a path, and what reading it when the
        user left its field found (`_update_images`), if the path is still the same."""
        request = self.request
        errors = catalog.validate(request, allow_uncertain=self.allow_uncertain, check_files=False)
        for name in ("image", "end_image"):
            source = (getattr(request, name) or "").strip()
            if not source:
                continue
            problem = catalog.file_problem(source)
            if problem is not None:
                errors.append(FieldError(name, problem))
            elif self._read_images.get(name, ("", ()))[0] == source:
                errors.extend(FieldError(name, message) for message in self._read_images[name][1])
        self._errors = errors
        self._checked_since_load = True
        self.show_errors(self._errors)
        return self._errors

    def show_errors(self, errors: list[FieldError]) -> None:
        """Show messages beside their fields (also used for the server's refusals)."""
        for name in FIELDS:
            self.query_one(f"#{name}-error", FieldMessage).show([e.message for e in errors if e.field == name])
        other = [str(e) for e in errors if e.field not in FIELDS]
        if other:
            self.set_note("\n".join(other), error=True)

    def set_note(self, text: str, *, error: bool = False) -> None:
        """A line beside the submit button: why submit is off, or how the last submit went."""
        note = self.query_one("#submit-note", Static)
        note.update(Text(inert(text, multiline=True)))
        note.set_class(error, "-error")
        if error:
            # On a short terminal the note sits below the fold: a refusal must not go unseen.
            self.call_after_refresh(note.scroll_visible, animate=False)

    @property
    def errors(self) -> list[FieldError]:
        return list(self._errors)

    def _schedule_validation(self) -> None:
        if not self._listening:
            return
        if self._validate_timer is not None:
            self._validate_timer.stop()
        self._validate_timer = self.set_timer(VALIDATE_DELAY, self.validate_now)

    # -- reactions ------------------------------------------------------------------------------
    def _refresh_choices(self, *, resolution: str | None = None, duration: int | None = None) -> None:
        """Offer only what the model allows; an impossible previous choice becomes the default."""
        model = self.model
        res_select = self.query_one("#resolution", Select)
        dur_select = self.query_one("#duration", Select)
        wanted_res = resolution if resolution is not None else res_select.value
        wanted_dur = duration if duration is not None else dur_select.value
        resolutions = self._resolutions(model)
        new_res = wanted_res if wanted_res in resolutions else catalog.default_resolution(model)
        durations = self._durations(model, new_res)
        new_dur = wanted_dur if wanted_dur in durations else (
            catalog.DEFAULT_DURATION if catalog.DEFAULT_DURATION in durations else durations[0])
        with self.prevent(Select.Changed):
            res_select.set_options(_options(resolutions))
            res_select.value = new_res
            dur_select.set_options(_options(durations))
            dur_select.value = new_dur
        replaced = []
        if wanted_res not in (None, Select.BLANK) and wanted_res != new_res:
            replaced.append(f"resolution {wanted_res} is now {new_res}")
        if wanted_dur not in (None, Select.BLANK) and wanted_dur != new_dur:
            replaced.append(f"duration {wanted_dur} s is now {new_dur} s")
        self.query_one("#choices-note", FieldMessage).show(
            [f"not offered by {model} at {new_res}: {', '.join(replaced)}"] if replaced else [])

    def _sync_scene(self) -> None:
        is_image = self.query_one("#scene", Select).value == "image-to-video"
        self.set_class(not is_image, "-text-only")
        for name in ("image", "end_image"):
            self.query_one(f"#{name}", Input).disabled = not is_image

    def _update_count(self) -> None:
        count = len(self.query_one("#prompt", TextArea).text)
        label = self.query_one("#prompt-count", Static)
        label.update(f"{count:,} / {catalog.PROMPT_MAX_CHARS:,}")
        label.set_class(count > catalog.PROMPT_MAX_CHARS, "-over")

    def _update_estimate(self) -> None:
        """What the form would cost, as soon as the model, resolution or duration changes."""
        try:
            model = self.model
            resolution = str(self.query_one("#resolution", Select).value)
            duration = int(self.query_one("#duration", Select).value)
        except (TypeError, ValueError):
            return  # a Select between options
        self.query_one("#estimate", Static).update(Text(self.prices.estimate(model, resolution, duration).line()))

    def _update_images(self, *, validate: bool = False) -> None:
        """Read what each image field names and show it (its size, a thumbnail, its problems)."""
        self._inspect_images([(name, self.query_one(f"#{name}", Input).value.strip())
                              for name in ("image", "end_image")], validate)

    @work(group="image-inspect", exclusive=True, exit_on_error=False)
    async def _inspect_images(self, fields: list[tuple[str, str]], validate: bool) -> None:
        # In a thread: the file may be large, slow (a network mount) or not a file at all, and the
        # form must keep answering keys meanwhile. A newer read (the user left the field again)
        # cancels this one.
        changed = False
        for name, value in fields:
            info_text = ""
            if value:
                info = await asyncio.to_thread(catalog.inspect_image, value)
                if self.query_one(f"#{name}", Input).value.strip() != value:
                    continue  # edited meanwhile: leaving the field again reads the new path
                changed |= self._read_images.get(name) != (value, info.errors)
                self._read_images[name] = (value, info.errors)
                info_text = info.summary() if info.ok else ""
                if info.ok and not info.is_url:
                    self._show_thumbnail(name, value)
                else:
                    self._hide_thumbnail(name)
            else:
                self._hide_thumbnail(name)
            self.query_one(f"#{name}-info", Static).update(Text(inert(info_text)))
        if validate or (changed and self._checked_since_load):
            self.validate_now()

    def _hide_thumbnail(self, name: str) -> None:
        thumb = self.query_one(f"#{name}-thumb", Static)
        thumb.update("")
        thumb.remove_class("-shown")

    @work(group="thumbnails", exit_on_error=False)
    async def _show_thumbnail(self, name: str, source: str) -> None:
        """The chosen image, small, once it validates (read in a thread: it may be a large file)."""
        from tui.core.previews import image_frame_async
        from tui.ui.widgets.frame_strip import HalfBlocks

        frame = await image_frame_async(source)
        if self.query_one(f"#{name}", Input).value.strip() != source or not hasattr(frame, "rgb"):
            return  # changed meanwhile, or unreadable after all (the field's message says why)
        width = 16
        rows = max(1, round(width * frame.height / frame.width / 2))
        from rich.segment import Segments

        lines = HalfBlocks(frame, width, rows).lines()
        segments = [segment for line in lines for segment in (*line, Segment.line())]
        thumb = self.query_one(f"#{name}-thumb", Static)
        thumb.update(Segments(segments))
        thumb.add_class("-shown")

    @on(Select.Changed, "#family, #tier")
    def _model_changed(self) -> None:
        self._refresh_choices()
        self._update_estimate()
        self._schedule_validation()

    @on(Select.Changed, "#resolution")
    def _resolution_changed(self) -> None:
        self._refresh_choices()
        self._update_estimate()
        self._schedule_validation()

    @on(Select.Changed, "#scene")
    def _scene_changed(self) -> None:
        self._sync_scene()
        self._schedule_validation()

    @on(Select.Changed, "#duration")
    def _duration_changed(self) -> None:
        self.query_one("#choices-note", FieldMessage).show([])  # the user chose: no longer a replacement
        self._update_estimate()
        self._schedule_validation()

    @on(TextArea.Changed, "#prompt")
    def _prompt_changed(self) -> None:
        self._update_count()
        self._schedule_validation()

    @on(Input.Changed, "#image, #end_image")
    def _image_changed(self) -> None:
        self._schedule_validation()

    @on(Input.Submitted, "#image, #end_image")
    def _image_entered(self) -> None:
        self._update_images(validate=True)

    @on(Input.Blurred, "#image, #end_image")
    def _image_left(self) -> None:
        # Reading a file happens when the user leaves the field, not on every keystroke.
        self._update_images()

    @on(Button.Pressed, "#submit")
    async def _button(self, event: Button.Pressed) -> None:
        event.stop()
        await self.action_submit()

    def on_key(self, event: events.Key) -> None:
        """A printable key a field did not take stays in the form: a letter typed on a Select
        or a Switch is never the dashboard's `c` (clone over the draft) or `q` (quit)."""
        if not event.is_printable:
            return
        active = self.screen.active_bindings.get(event.key)
        if active is not None and (active.node is self or self in active.node.ancestors):
            return  # a field's own key (space opens a Select, toggles a Switch)
        event.stop()

    def watch_disabled_reason(self, reason: str | None) -> None:
        self.query_one("#submit", Button).disabled = reason is not None
        self.set_note(reason or "", error=False)

    # -- actions --------------------------------------------------------------------------------
    async def action_submit(self) -> None:
        """Submit what was typed before the submit key (see the module's contract)."""
        if not await settle(self._typing_chain()):
            self.set_note("not sent: the form was still taking keys; press ctrl+s again", error=True)
            return
        await self.submit_now()

    def _typing_chain(self) -> list:
        """The focused field and its ancestors up to this form: where typed keys are queued."""
        focused = self.app.focused
        if focused is None or (focused is not self and self not in focused.ancestors):
            return [self]
        chain = []
        for node in focused.ancestors_with_self:
            chain.append(node)
            if node is self:
                break
        return chain

    async def submit_now(self) -> None:
        """Validate the form as it is and post it. Image files are opened here once, in a thread
        (never on the UI loop), and what was read travels with the request to the service."""
        request = self.request
        errors = self.validate_now()
        if self.disabled_reason is not None:
            self.set_note(self.disabled_reason, error=True)
            return
        if errors:
            self.set_note("not sent: fix the fields marked above", error=True)
            return
        images = None
        if request.image or request.end_image:
            self.set_note(f"reading the image{GLYPHS.ellipsis}")
            images = await asyncio.to_thread(catalog.read_images, request)
            for name, info in images.infos.items():
                self._read_images[name] = (images.sources[name], info.errors)
            if images.errors:
                self.show_errors(list(images.errors))
                self.set_note("not sent: fix the fields marked above", error=True)
                return
        self.set_note(f"sending{GLYPHS.ellipsis}")
        self.post_message(self.Submitted(self, request, images))

    def action_recall(self) -> None:
        self.post_message(self.RecallRequested(self))

    def action_save_template(self) -> None:
        request = self.request
        if not request.prompt.strip():
            self.set_note("write a prompt first: an empty prompt is not saved as a template", error=True)
            return
        self.post_message(self.SaveTemplateRequested(self, request))

    def action_clear(self) -> None:
        self.clear()
        self.set_note(self.disabled_reason or "")
