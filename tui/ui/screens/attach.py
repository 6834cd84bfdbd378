"""`a`: attach prediction ids made elsewhere (the provider's site, another machine) to the history."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea

from tui.core.jobs import parse_prediction_ids
from tui.core.text import one_line


class AttachScreen(ModalScreen[list[str] | None]):
    """Paste one id or many; each is checked as typed, and the first unusable one is named under
    the field. Dismisses with the ids (each once), or None."""

    AUTO_FOCUS = "#attach-ids"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "attach", "Attach", id="attach.send", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", id="attach.cancel"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Attach prediction ids", classes="dialog-title")
            yield Static("One or more ids, separated by spaces, commas or lines. Each is looked up on the "
                         "server, then followed like a job sent from here.", classes="dialog-detail")
            yield TextArea(id="attach-ids", soft_wrap=True)
            yield Static("", id="attach-note", classes="field-note")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Attach  ^s", variant="primary", id="attach", disabled=True)
                yield Button("Cancel  Esc", id="cancel")

    @property
    def ids(self) -> list[str]:
        return parse_prediction_ids(self.query_one("#attach-ids", TextArea).text)[0]

    @on(TextArea.Changed, "#attach-ids")
    def _check(self) -> None:
        ids, problem = parse_prediction_ids(self.query_one("#attach-ids", TextArea).text)
        note = self.query_one("#attach-note", Static)
        if problem is not None:
            note.update(Text(one_line(problem, limit=200)))
            note.set_class(True, "-error")
        else:
            note.update(Text(f"{len(ids)} id{'s' if len(ids) != 1 else ''} to attach" if ids else ""))
            note.set_class(False, "-error")
        self.query_one("#attach", Button).disabled = problem is not None or not ids

    def action_attach(self) -> None:
        ids, problem = parse_prediction_ids(self.query_one("#attach-ids", TextArea).text)
        if problem is None and ids:
            self.dismiss(ids)
        else:
            self._check()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "attach":
            self.action_attach()
        else:
            self.dismiss(None)
