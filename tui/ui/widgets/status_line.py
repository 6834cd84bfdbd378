"""One line on top: API host, key (masked), pending count, poller state, last error."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.core.events import PollerState
from tui.ui.glyphs import GLYPHS
from tui.ui.format import clean


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
        # Parts in the order shown, each with the rank at which it gives way when the line is too
        # narrow (higher goes first): an error must stay readable at 80 columns, while the host and
        # the masked key are also in `locate`.
        parts: list[tuple[int, str, str]] = [(0, " hailuo ", "bold reverse")]
        if self.mode:
            parts.append((0, f" {self.mode} ", "bold"))
        if self.low_bandwidth:
            parts.append((0, " low-bandwidth ", "bold"))
        parts.append((3, f" {self.host} ", ""))
        # "no key" stands alone (not "key no key"); the mask's ellipsis is the terminal's own glyph.
        key = self.key.replace("…", GLYPHS.ellipsis)
        parts.append((2, f"· {key} " if key == "no key" else f"· key {key} ", ""))
        state = self.state
        if state is not None:
            parts.append((0, f"· {state.pending} pending ", ""))
            described = state.describe()
            parts.append((0, f"· {described} ", "bold" if described != "running" else ""))
        if self.activity:
            parts.append((0, f"· {self.activity} ", "bold"))
        if self.marked:
            parts.append((1, f"· marked {clean(self.marked)} (= compares) ", ""))
        error = self.last_error or (state.last_error if state else None)
        if error:
            parts.append((0, f"· {clean(error)}", "italic"))
        width = self.content_region.width or self.app.size.width
        for rank in (3, 2, 1):
            if sum(cell_len(text) for _rank, text, _style in parts) <= width:
                break
            parts = [part for part in parts if part[0] != rank]
        text = Text(no_wrap=True, overflow="ellipsis")
        for _rank, part, style in parts:
            text.append(part, style=style)
        return text
