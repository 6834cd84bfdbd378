"""Static text that repaints only the lines that changed when it is updated.

A Static repaints its whole region on every update: the detail pane's body, updated each clock
tick for the two timings of a running job, rewrote its twenty-odd lines to the terminal each
time (2.7 KB a tick at 120 columns, most of the output over a slow link). Here an update of the
same height compares the new rendering with the one on screen and marks only the lines that
differ, so the terminal gets those lines alone.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual.widgets import Static


class LiveText(Static):
    #: Lines (content coordinates) the next refresh is limited to; None: the whole widget.
    _only_lines: list[Region] | None = None
    #: What `update_lines` was last given (equal content: nothing to do).
    _given: Any = None
    #: (visual, width, lines it takes) of what is shown, for telling whether an update changes the height.
    _natural: tuple[Any, int, int] | None = None
    #: Each line's rows by (index, text, spans), at the (width, style) of `_lines_for`: see `_strips_by_line`.
    _lines: dict[tuple, list] = {}
    _lines_for: tuple = ()

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
        strips = self._strips_by_line(content, width) if self._by_line(content) else None
        if strips is None:
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

    @staticmethod
    def _by_line(content: Any) -> bool:
        """Plain rich Text (no base style, wrapping left as it is) renders line by line as it does whole."""
        return (isinstance(content, Text) and not content.style and content.justify is None
                and content.overflow is None and content.no_wrap is None)

    def _strips_by_line(self, content: Text, width: int) -> list[Strip]:
        """The rendering of `content`, each line rendered once and kept while it stays the same
        at the same place: a tick that changes two lines renders two lines, not the text."""
        style = self.visual_style
        known = self._lines if self._lines_for == (width, style) else {}
        kept: dict[tuple, list[Strip]] = {}
        strips: list[Strip] = []
        for index, line in enumerate(content.split("\n", allow_blank=True)):
            key = (index, line.plain, tuple(line.spans))
            rows = known.get(key)
            if rows is None:
                # Rendered below `index` blank lines, so its rows carry the offsets they have in the whole.
                placed = Text("\n" * index)
                placed.append_text(line)
                rows = Visual.to_strips(self, visualize(self, placed, markup=False), width, None, style)[index:]
            kept[key] = rows
            strips.extend(rows)
        self._lines, self._lines_for = kept, (width, style)
        return strips

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        if content is not self._given:
            self._given = None  # set some other way: the next update_lines compares renderings
        super().update(content, layout=layout)

    def refresh(self, *regions: Region, **options: Any) -> "LiveText":
        only, self._only_lines = self._only_lines, None
        if only is not None and not regions and not options.get("layout") and not options.get("recompose"):
            regions = tuple(only)
        return super().refresh(*regions, **options)
