"""The prompt picker (history and templates, fuzzy search) and the dialog that names a new template."""

from __future__ import annotations

import time
from typing import Callable, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.core.templates import PromptEntry, TemplateError, check_name, search
from tui.ui.screens.dialogs import ConfirmScreen
from tui.ui.format import clean
from tui.ui.format import format_ago
from tui.ui.widgets.job_table import plain_text

#: Options drawn at once; the search still runs over every entry.
SHOWN_LIMIT = 200


def entry_label(entry: PromptEntry, now: float) -> Text:
    """One line: templates marked by a word and their name, history entries by their age."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if entry.is_template:
        text.append("template ", style="bold")
        text.append(plain_text(entry.name), style="bold")
        text.append("  ")
    else:
        text.append(f"{format_ago(now - entry.when) if entry.when else '':>8}  ")
    text.append(plain_text(entry.prompt))
    return text


class PromptPicker(ModalScreen[PromptEntry | None]):
    """Type to narrow the list; Enter fills the composer with the highlighted prompt."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close", id="prompt-picker.close"),
        Binding("down", "move(1)", "Next", show=False, id="prompt-picker.down"),
        Binding("up", "move(-1)", "Previous", show=False, id="prompt-picker.up"),
        Binding("pagedown", "move(10)", "Page down", show=False, id="prompt-picker.page-down"),
        Binding("pageup", "move(-10)", "Page up", show=False, id="prompt-picker.page-up"),
        # Priority: the search box would take ctrl+d as "delete the next character".
        Binding("ctrl+d", "delete_template", "Delete template", id="prompt-picker.delete", priority=True),
    ]

    def __init__(self, entries: list[PromptEntry], *,
                 delete_template: Callable[[PromptEntry], str | None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(classes="dialog-screen")
        self.entries = list(entries)
        self.matches: list[PromptEntry] = list(entries)
        self._delete_template = delete_template
        self._clock = clock

    def compose(self) -> ComposeResult:
        templates = sum(1 for e in self.entries if e.is_template)
        with Vertical(classes="dialog picker-dialog"):
            yield Label("Recall a prompt", classes="dialog-title")
            yield Input(placeholder="type to search prompts and template names", compact=True, id="prompt-search")
            yield OptionList(id="prompt-options")
            yield Static(Text(f"{templates} templates · {len(self.entries) - templates} prompts from the history"),
                         id="picker-count", classes="dialog-detail")
            yield Static("Enter fills the form · ctrl+d deletes a template · Escape closes", classes="dialog-detail")

    def on_mount(self) -> None:
        self._show(self.matches)
        self.query_one("#prompt-search", Input).focus()

    def _show(self, matches: list[PromptEntry]) -> None:
        self.matches = matches
        options = self.query_one("#prompt-options", OptionList)
        now = self._clock()
        options.clear_options()
        options.add_options([Option(entry_label(e, now), id=str(i)) for i, e in enumerate(matches[:SHOWN_LIMIT])])
        if matches:
            options.highlighted = 0
        shown = f"{min(len(matches), SHOWN_LIMIT)} of {len(matches)} shown" if len(matches) > SHOWN_LIMIT else \
            f"{len(matches)} match{'es' if len(matches) != 1 else ''}"
        self.query_one("#picker-count", Static).update(Text(shown if matches else "nothing matches"))

    @property
    def highlighted_entry(self) -> PromptEntry | None:
        index = self.query_one("#prompt-options", OptionList).highlighted
        return self.matches[index] if index is not None and index < len(self.matches) else None

    @on(Input.Changed, "#prompt-search")
    def _search(self, event: Input.Changed) -> None:
        self._show(search(self.entries, event.value))

    @on(Input.Submitted, "#prompt-search")
    def _submitted(self) -> None:
        entry = self.highlighted_entry
        if entry is not None:
            self.dismiss(entry)

    @on(OptionList.OptionSelected, "#prompt-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.matches[int(event.option.id)])

    def action_move(self, step: int) -> None:
        options = self.query_one("#prompt-options", OptionList)
        if options.option_count:
            current = options.highlighted or 0
            options.highlighted = max(0, min(options.option_count - 1, current + step))

    def action_delete_template(self) -> None:
        entry = self.highlighted_entry
        if entry is None or not entry.is_template or self._delete_template is None:
            self.notify("highlight a template to delete it", severity="warning", timeout=3)
            return
        delete = self._delete_template

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            error = delete(entry)
            if error:
                self.notify(clean(error), severity="error", timeout=6)
                return
            self.entries = [e for e in self.entries if e is not entry]
            self._show(search(self.entries, self.query_one("#prompt-search", Input).value))
            self.notify(f"template {clean(entry.name)!r} deleted", timeout=3)

        self.app.push_screen(ConfirmScreen(f"Delete the template {clean(entry.name)!r}?",
                                           "Prompts in the history stay."), answered)


class TemplateNameScreen(ModalScreen[str | None]):
    """Ask for a template's name; says when the name would replace an existing template."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel", id="template-name.cancel")]

    def __init__(self, prompt: str, existing: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.prompt = prompt
        self.existing = {name.lower(): name for name in existing}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Save the prompt as a template", classes="dialog-title")
            yield Static(Text(plain_text(self.prompt)[:200]), classes="dialog-detail")
            yield Input(placeholder="template name", compact=True, id="template-name")
            yield Static("", id="template-name-note", classes="field-note")
            yield Static("Enter saves (with the form's model, scene, duration, resolution and images) · Escape cancels",
                        classes="dialog-detail")

    def on_mount(self) -> None:
        self.query_one("#template-name", Input).focus()

    def _note(self, text: str, *, error: bool) -> None:
        note = self.query_one("#template-name-note", Static)
        note.update(Text(text))
        note.set_class(error, "-error")

    @on(Input.Changed, "#template-name")
    def _changed(self, event: Input.Changed) -> None:
        name = " ".join(event.value.split()).lower()
        replaced = self.existing.get(name)
        self._note(f"replaces the template {replaced!r}" if replaced else "", error=False)

    @on(Input.Submitted, "#template-name")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            name = check_name(event.value)
        except TemplateError as exc:
            self._note(str(exc), error=True)
            return
        self.dismiss(name)
