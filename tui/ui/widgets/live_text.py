"""Static text that repaints only the lines that changed when it is updated.

A Static repaints its whole region on every update: the detail pane's body, updated each clock
tick for the two timings of a running job, rewrote its twenty-odd lines to the terminal each
time (2.7 KB a tick at 120 columns, most of the output over a slow link). Here an update of the
same height compares the new rendering with the one on screen and marks only the lines that
differ, so the terminal gets those lines alone.
"""

from __future__ import annotations

from typing import Any

from textual.geometry import Region
from textual.visual import Visual, visualize
from textual.widgets import Static


class LiveText(Static):
    #: Lines (content coordinates) the next refresh is limited to; None: the whole widget.
    _only_lines: list[Region] | None = None
    #: What `update_lines` was last given (equal content: nothing to do).
    _given: Any = None
    #: (visual, width, lines it takes) of what is shown, for telling whether an update changes the height.
    _natural: tuple[Any, int, int] | None = None

    def update_lines(self, content: Any) -> None:
        """Show `content`; when it takes as many lines as what is on screen, only the lines that
        differ are repainted (none: nothing happens)."""
        if content == self._given:
            return
        self._given = content
        width, height = self.size
        shown = self._render_cache
        if not self.is_mounted or not width or shown.size != self.size or len(shown.lines) != height:
            self.update(content)
            return
        style = self.visual_style
        if self._natural is None or self._natural[:2] != (self.visual, width):
            self._natural = (self.visual, width, len(Visual.to_strips(self, self.visual, width, None, style)))
        visual = visualize(self, content, markup=self._render_markup)
        strips = Visual.to_strips(self, visual, width, None, style)
        if len(strips) != self._natural[2] or len(strips) > height:
            self.update(content)  # it grows or shrinks: a layout
            return
        strips += shown.lines[len(strips):]  # the blank lines below it stay as they are
        changed = [Region(0, y, width, 1) for y, (old, new) in enumerate(zip(shown.lines, strips)) if old != new]
        if not changed:
            return
        self._only_lines = changed
        super().update(visual, layout=False)
        self._natural = (visual, width, self._natural[2])
        # What was just rendered is what the repaint draws: not rendered a second time.
        self._render_cache = type(shown)(self.size, strips)
        self._dirty_regions.clear()

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        if content is not self._given:
            self._given = None  # set some other way: the next update_lines compares renderings
        super().update(content, layout=layout)

    def refresh(self, *regions: Region, **options: Any) -> "LiveText":
        only, self._only_lines = self._only_lines, None
        if only is not None and not regions and not options.get("layout") and not options.get("recompose"):
            regions = tuple(only)
        return super().refresh(*regions, **options)
