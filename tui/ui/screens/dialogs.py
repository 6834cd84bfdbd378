"""Small modal screens: yes/no confirmation, the repeat-submit question, the copy menu, and the
help screen built from the bindings."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option


class _Question(ModalScreen[bool]):
    """A question answered yes or no; the keys are the subclass's."""

    YES_LABEL = "Yes  y"
    NO_LABEL = "No  n"

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="dialog-title")
            if self.detail:
                yield Static(Text(self.detail), classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.YES_LABEL, variant="error", id="yes")
                yield Button(self.NO_LABEL, id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ConfirmScreen(_Question):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]


class RepeatSubmitScreen(_Question):
    """The same request again within moments: ctrl+s once more sends it, Escape drops it.
    Enter (on the focused button) drops it too: a second bill needs the deliberate key."""

    AUTO_FOCUS = "#no"
    YES_LABEL = "Send again  ^s"
    NO_LABEL = "Drop  Esc"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "answer(True)", "Send again", id="repeat.send"),
        Binding("escape", "answer(False)", "Drop", id="repeat.drop"),
    ]


class CopyMenu(ModalScreen[str | None]):
    """Pick what to copy; dismisses with the choice's id."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss(None)", "Close", id="copy.close")]

    def __init__(self, choices: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Copy", classes="dialog-title")
            yield OptionList(*[Option(label, id=key) for key, label in self.choices], id="copy-choices")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class HelpScreen(ModalScreen[None]):
    """Every key, read from the active bindings so it never drifts from what the keys do."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss(None)", "Close",
                                                     id="help.close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text()
        group = None
        for section, keys, description in self.rows:
            if section != group:
                group = section
                text.append(f"\n{section}\n", style="bold underline")
            text.append(f"  {keys:<18}", style="bold")
            text.append(f"{description}\n")
        with Vertical(classes="dialog help-dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(text, id="help-text")
            yield Label(self.closing_line(), id="help-closing", classes="dialog-detail")

    def closing_line(self) -> str:
        """How to leave and where the palette is, by the keys in force (the [keymap] can move both)."""
        from tui.ui.keys import key_label, keys_of

        def keys(binding) -> str:
            return " / ".join(key_label(key) for key in keys_of(binding, self.app._keymap))

        palette = next((binding for _key, binding in self.app._bindings if binding.action == "command_palette"), None)
        line = f"{keys(self.BINDINGS[0])} closes"
        if palette is not None:
            line += f" · {keys(palette)} opens the command palette"
        return line
