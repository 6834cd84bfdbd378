"""One line on top: API host, key (masked), pending count, poller state, last error."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.core.events import PollerState
from tui.ui.glyphs import GLYPHS
from tui.ui.widgets.detail import clean


class StatusLine(Static):
    host: reactive[str] = reactive("")
    key: reactive[str] = reactive("no key")
    state: reactive[PollerState | None] = reactive(None)
    last_error: reactive[str | None] = reactive(None)
    #: What `last_error` is about (a Notice topic), so the notice that ends it can clear it.
    last_error_topic: str | None = None
    mode: reactive[str] = reactive("")  # "demo", "read-only"...
    #: Work in the background: "2 downloading 45%", "batch 3/10"... (empty when none).
    activity: reactive[str] = reactive("")
    marked: reactive[str] = reactive("")  # the short id of the job marked for compare
    #: Clocks tick every few seconds, no animation (over SSH, or asked for).
    low_bandwidth: reactive[bool] = reactive(False)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" hailuo ", style="bold reverse")
        if self.mode:
            text.append(f" {self.mode} ", style="bold")
        if self.low_bandwidth:
            text.append(" low-bandwidth ", style="bold")
        text.append(f" {self.host} ")
        # "no key" stands alone (not "key no key"); the mask's ellipsis is the terminal's own glyph.
        key = self.key.replace("…", GLYPHS.ellipsis)
        text.append(f"· {key} " if key == "no key" else f"· key {key} ")
        state = self.state
        if state is not None:
            text.append(f"· {state.pending} pending ")
            described = state.describe()
            text.append(f"· {described} ", style="bold" if described != "running" else "")
        if self.activity:
            text.append(f"· {self.activity} ", style="bold")
        if self.marked:
            text.append(f"· marked {clean(self.marked)} (= compares) ")
        error = self.last_error or (state.last_error if state else None)
        if error:
            text.append(f"· {clean(error)}", style="italic")
        return text
