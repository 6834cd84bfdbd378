"""A strip of a clip's frames, drawn as the terminal allows, with the clip's facts.

Rendering (`choose_renderer` decides from the `preview` setting and the environment, including
tmux's `allow-passthrough`):

- **blocks**: Unicode half-blocks ("▀", the upper pixel as foreground, the lower as background)
  work in every colour terminal, over SSH and mosh, in TERM=linux and in browser mode, and go
  through Textual's compositor like any text.
- **kitty**: each frame is transmitted once as a virtual placement (`tui.core.graphics`) and
  drawn as Unicode placeholder cells in the image's id colour. Being text, the placeholders move,
  crop and hide with the pane, and a dialog drawn over the strip covers them. An image no longer
  shown (another job, a resize, the strip hidden — with its pane too, or scrolled out of view —
  or unmounted, the screen covered by another) is deleted from the terminal by id. While
  another screen is on top the strip draws blocks: a modal's tint would change the id colour.
- **sixel** (a subset): the strip draws half-blocks, and once they are painted writes each frame
  as a Sixel image over its tile (cursor positioned, then restored), encoded off the UI loop. It
  is drawn only when the whole strip is visible on the active screen; any repaint of the strip's
  cells by Textual (a toast passing over, a partial scroll) leaves the half-blocks there, which
  show the same picture. Sixel has no delete: Textual's repaint of the cells is what clears it.

Escapes go to the terminal through the app's driver, in order with Textual's own output; the
frames are pictures, never server text.

The strip shows the first, middle and last frames, five when the pane is wide enough; the
frames themselves come from `tui.core.previews` (decoded off the UI loop): this widget only
draws what it is given.
"""

from __future__ import annotations

import os
import subprocess
from typing import Callable, Mapping

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.widget import Widget

from tui.core.frames import Frame, NoPreview, Preview
from tui.core.graphics import (ESC, MAX_CELLS, ImageIds, cell_pixels, cursor_to, kitty_delete,
                               kitty_placeholder_rows, kitty_transmit, sixel)

UPPER_HALF = "▀"
GAP = 1
MIN_TILE = 10
MAX_TILE = 28


def tmux_passthrough(env: Mapping[str, str] = os.environ) -> bool:
    """Inside tmux, whether `allow-passthrough` is on (graphics escapes then reach the outer terminal)."""
    if not env.get("TMUX"):
        return False
    try:
        answer = subprocess.run(["tmux", "show-options", "-gqv", "allow-passthrough"], capture_output=True,
                                text=True, timeout=1.0, env=dict(env))
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.stdout.strip() in ("on", "all")


def terminal_graphics(env: Mapping[str, str] = os.environ) -> str | None:
    """The graphics protocol the terminal announces through its environment: "kitty", "sixel" or None."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if term in ("xterm-kitty", "xterm-ghostty") or env.get("KITTY_WINDOW_ID") or program in ("WezTerm", "ghostty"):
        return "kitty"
    if term in ("foot", "foot-extra", "mlterm", "yaft-256color", "contour") or "sixel" in term:
        return "sixel"
    return None


def choose_renderer(setting: str, env: Mapping[str, str] = os.environ, *, web: bool = False,
                    passthrough=tmux_passthrough) -> str:
    """What the strip should use: "kitty", "sixel", "blocks" or "off".

    `auto` takes the terminal's protocol when it announces one, blocks otherwise; the browser
    and TERM=linux always get blocks; inside tmux a protocol is used only when tmux passes it
    through (`set -g allow-passthrough on`), else blocks.
    """
    if setting == "off":
        return "off"
    if setting == "blocks" or web or env.get("TERM") == "linux":
        return "blocks"
    wanted = terminal_graphics(env) if setting == "auto" else setting
    if wanted is None:
        return "blocks"
    if env.get("TMUX") and not passthrough(env):
        return "blocks"
    return wanted


class HalfBlocks:
    """A picture fitted into `width` × `height` cells of half-blocks (two pixels a cell, one above
    the other), its aspect kept: the rest of the box is blank."""

    def __init__(self, frame: Frame, width: int, height: int) -> None:
        self.frame, self.width, self.height = frame, width, height

    def lines(self) -> list[list[Segment]]:
        from PIL import Image

        scale = min(self.width / self.frame.width, self.height * 2 / self.frame.height)
        pixels_w = max(1, min(self.width, round(self.frame.width * scale)))
        pixels_h = max(1, min(self.height * 2, round(self.frame.height * scale)))
        image = self.frame.image().resize((pixels_w, pixels_h), Image.Resampling.BOX)
        pixels = image.load()
        left = (self.width - pixels_w) // 2
        top = (self.height * 2 - pixels_h) // 2
        blank = Style()
        styles: dict[tuple, Style] = {}  # neighbouring cells repeat colours: one Style each

        def style(upper, lower) -> Style:
            found = styles.get((upper, lower))
            if found is None:
                found = styles[(upper, lower)] = Style(
                    color=Color.from_rgb(*upper) if upper is not None else None,
                    bgcolor=Color.from_rgb(*lower) if lower is not None else None)
            return found

        rows = []
        for y in range(self.height):
            row = [Segment(" " * left, blank)] if left else []
            for x in range(pixels_w):
                upper = pixels[x, 2 * y - top] if 0 <= 2 * y - top < pixels_h else None
                lower = pixels[x, 2 * y + 1 - top] if 0 <= 2 * y + 1 - top < pixels_h else None
                if upper is None and lower is None:
                    row.append(Segment(" ", blank))
                elif upper is None:
                    row.append(Segment("▄", style(lower, None)))
                else:
                    row.append(Segment(UPPER_HALF, style(upper, lower)))
            right = self.width - left - pixels_w
            if right:
                row.append(Segment(" " * right, blank))
            rows.append(list(Segment.simplify(row)))
        return rows


def _stamp(seconds: float) -> str:
    return f"{seconds:.1f} s"


Tile = tuple[str, Frame | None]  # (caption, picture or None when it has none)


def tiles_for(width: int, preview: Preview | None, images: list[tuple[str, Frame | NoPreview]]) -> tuple[list[Tile], int]:
    """What fits `width` cells: the image inputs, then five, three or one of the clip's frames; and the tile width."""
    extra: list[Tile] = [(label, picture if isinstance(picture, Frame) else None) for label, picture in images]
    frames: list[Frame | None] = list(preview.frames) if preview is not None else []
    if preview is not None and preview.coming and len(frames) == preview.coming + 1:
        # The first, middle and last while the others decode: in their places, so nothing moves.
        spread: list[Frame | None] = [frames[0]]
        for frame in frames[1:]:
            spread += [None, frame]
        frames = spread
    choices = [n for n in (5, 3, 1) if n <= len(frames)] or [0]
    for count in choices:
        total = max(1, count + len(extra))
        tile = (width - GAP * (total - 1)) // total
        if tile >= MIN_TILE:
            break
    if count == 3 and len(frames) > 3:
        frames = [frames[0], frames[len(frames) // 2], frames[-1]]  # first, middle, last
    elif count < len(frames):
        frames = [frame for frame in frames if frame is not None][:count]
    shown = extra + [(_stamp(frame.at) if frame is not None else "", frame) for frame in frames]
    return shown, max(2, min(MAX_TILE, tile))


def tile_rows(tile: int, tiles: list[Tile]) -> int:
    """Cells high: the clip's aspect (or the first picture's) at `tile` cells wide, two pixels a cell."""
    pictures = [frame for _, frame in tiles if frame is not None]
    if not pictures:
        return 1
    shape = pictures[-1]  # the clip's frames come last
    return max(1, round(tile * shape.height / shape.width / 2))


#: Drawn pictures by (frame, tile, rows): a repaint of the pane does not rebuild its cells.
_drawn: LRUCache[tuple[int, int, int], tuple[Frame, list[list[Segment]]]] = LRUCache(64)


def _picture(frame: Frame | None, tile: int, rows: int) -> list[list[Segment]]:
    if frame is None:
        return [[Segment("·".center(tile) if y == rows // 2 else " " * tile)] for y in range(rows)]
    key = (id(frame), tile, rows)
    drawn = _drawn.get(key)
    if drawn is None or drawn[0] is not frame:
        drawn = (frame, HalfBlocks(frame, tile, rows).lines())
        _drawn.discard(key)  # (an id reused by a newer frame: LRUCache keeps a key's first value)
        _drawn[key] = drawn
    return drawn[1]


Picture = Callable[[Frame | None, int, int], list[list[Segment]]]


class StripRenderable:
    def __init__(self, preview: Preview | None, width: int, images: list[tuple[str, Frame | NoPreview]],
                 picture: Picture = _picture, on_drawn: Callable[[list[tuple[Frame | None, int, int]]], None] | None = None,
                 ) -> None:
        self.preview, self.width, self.images = preview, width, images
        self.picture, self.on_drawn = picture, on_drawn

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        tiles, tile = tiles_for(min(self.width, options.max_width), self.preview, self.images)
        rows = tile_rows(tile, tiles)
        pictures = [self.picture(frame, tile, rows) for _, frame in tiles]
        if self.on_drawn is not None:
            self.on_drawn([(frame, tile, rows) for _, frame in tiles])
        gap = Segment(" " * GAP)
        for y in range(rows):
            for index, picture in enumerate(pictures):
                if index:
                    yield gap
                yield from picture[y]
            yield Segment.line()
        captions = Text(no_wrap=True, overflow="crop")
        for index, (caption, _) in enumerate(tiles):
            if index:
                captions.append(" " * GAP)
            captions.append(caption.center(tile)[:tile], style="dim")
        yield captions


#: kitty image ids are per terminal: every strip of this process takes them from one counter.
_IMAGE_IDS = ImageIds()
_IDS_SHOWN: set[int] = set()

PictureKey = tuple[int, int, int]  # (id of the frame, tile columns, tile rows)


class FrameStrip(Widget):
    """Frames of one clip and its facts (or a one-line state: loading, no preview), and the
    job's image inputs beside them; `show()` sets what is drawn."""

    DEFAULT_CSS = """
    FrameStrip { height: auto; width: 1fr; }
    FrameStrip .-state { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None, renderer: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.preview: Preview | None = None
        self.state: str = ""
        self.images: list[tuple[str, Frame | NoPreview]] = []
        #: "blocks", "kitty" or "sixel"; None: the app's choice (`preview_renderer`), read at mount.
        self.renderer = renderer
        self._tmux = bool(os.environ.get("TMUX"))
        #: kitty: images in the terminal, by what they picture (the frame kept so its id stays its own).
        self._kitty: dict[PictureKey, tuple[int, Frame]] = {}
        #: sixel: encoded pictures by what they picture, and the tiles last drawn (to draw over).
        self._sixels: dict[PictureKey, tuple[Frame, str]] = {}
        self._sixel_tiles: list[tuple[Frame | None, int, int]] = []
        self._sixel_encoding = False
        #: Cells high kept while loading (the previous pictures' height), 0: none.
        self._reserved = 0

    def on_mount(self) -> None:
        if self.renderer is None:
            self.renderer = getattr(self.app, "preview_renderer", "blocks")
        if self.renderer not in ("kitty", "sixel"):
            self.renderer = "blocks"
        else:
            self.app.screen_change_signal.subscribe(self, self._screen_changed)

    def on_unmount(self) -> None:
        self._forget_kitty(set())

    def on_hide(self) -> None:
        # Off the screen (its pane hidden, scrolled out of view): nothing of it kept in the terminal.
        self._forget_kitty(set())

    def on_show(self) -> None:
        if self.renderer != "blocks":
            self.refresh()  # drawn again: the images sent anew

    def _screen_changed(self, _screen) -> None:
        # Covered by another screen (or back on top): draw blocks, or the pictures again.
        if not self._on_active_screen():
            self._forget_kitty(set())
        self.refresh()

    def _on_active_screen(self) -> bool:
        try:
            return self.screen.is_active
        except Exception:  # not mounted on a screen (yet)
            return False

    def write_escape(self, data: str) -> None:
        """Raw bytes to the terminal, queued in order with Textual's own output."""
        driver = getattr(self.app, "_driver", None)
        if driver is not None and data:
            driver.write(data)

    def show(self, result: Preview | NoPreview | str | None,
             images: list[tuple[str, Frame | NoPreview]] | None = None) -> None:
        """A preview, a reason it has none, a state line ("loading frames…"), or None (nothing)."""
        self._show(result, images, reserve=0)

    def loading(self, state: str) -> None:
        """A state line ("loading frames…") in place of the pictures, the strip keeping its height
        so that the pane below does not move up and back down when the frames arrive."""
        self._show(state, [], reserve=self._height() if self.has_pictures and self.display else 0)

    def _show(self, result: Preview | NoPreview | str | None, images: list[tuple[str, Frame | NoPreview]] | None,
              *, reserve: int) -> None:
        before = self._height()
        self._reserved = reserve
        if images is not None:
            self.images = list(images)
        if isinstance(result, Preview):
            self.preview, self.state = result, result.facts
        elif isinstance(result, NoPreview):
            self.preview, self.state = None, f"no preview: {result.reason}"
        else:
            self.preview, self.state = None, result or ""
        self.display = self.preview is not None or bool(self.state) or bool(self.images)
        if not self.has_pictures:
            self._forget_kitty(set())
            self._sixel_tiles = []
        # The pane is laid out again only when the strip's height changes (the three first frames
        # replaced by five, or one job's frames by another's, keep it): a layout repaints the pane.
        self.refresh(layout=self._height() != before)

    def _height(self) -> int:
        width = self.content_size.width or self.size.width
        return self.get_content_height(None, None, width) if width else -1

    @property
    def has_pictures(self) -> bool:
        return self.preview is not None or any(isinstance(p, Frame) for _, p in self.images)

    def get_content_height(self, container, viewport, width: int) -> int:
        state = 1 if self.state else 0
        if not self.has_pictures:
            return max(state, self._reserved)
        tiles, tile = tiles_for(width, self.preview, self.images)
        return state + tile_rows(tile, tiles) + 1

    def render(self):
        from rich.console import Group

        parts = []
        if self.state:
            parts.append(Text(self.state, style="" if self.preview is not None else "dim"))
        if self.has_pictures:
            width = self.content_size.width or self.size.width
            if self.renderer == "kitty" and self._on_active_screen():
                strip = StripRenderable(self.preview, width, self.images, picture=self._kitty_picture,
                                        on_drawn=self._kitty_drawn)
            elif self.renderer == "sixel":
                strip = StripRenderable(self.preview, width, self.images, on_drawn=self._sixel_drawn)
            else:
                self._forget_kitty(set())
                strip = StripRenderable(self.preview, width, self.images)
            parts.append(strip)
        return Group(*parts)

    # kitty

    def _kitty_picture(self, frame: Frame | None, tile: int, rows: int) -> list[list[Segment]]:
        if frame is None or tile > MAX_CELLS or rows > MAX_CELLS:
            return _picture(frame, tile, rows)
        key = (id(frame), tile, rows)
        known = self._kitty.get(key)
        if known is None or known[1] is not frame:
            image_id = _IMAGE_IDS.take(_IDS_SHOWN)
            self.write_escape(kitty_transmit(image_id, frame.width, frame.height, frame.rgb, columns=tile,
                                             rows=rows, tmux=self._tmux))
            _IDS_SHOWN.add(image_id)
            known = self._kitty[key] = (image_id, frame)
        style = Style(color=Color.from_ansi(known[0]))
        return [[Segment(text, style)] for text in kitty_placeholder_rows(tile, rows)]

    def _kitty_drawn(self, drawn: list[tuple[Frame | None, int, int]]) -> None:
        self._forget_kitty({(id(frame), tile, rows) for frame, tile, rows in drawn if frame is not None})

    def _forget_kitty(self, keep: set[PictureKey]) -> None:
        """Delete from the terminal the images not in `keep` (another job, another size, hidden)."""
        for key in [key for key in self._kitty if key not in keep]:
            image_id, _ = self._kitty.pop(key)
            _IDS_SHOWN.discard(image_id)
            self.write_escape(kitty_delete(image_id, tmux=self._tmux))

    # sixel

    def _sixel_drawn(self, drawn: list[tuple[Frame | None, int, int]]) -> None:
        self._sixel_tiles = drawn
        self.call_after_refresh(self._draw_sixels)

    def _draw_sixels(self) -> None:
        """Each tile's Sixel over its half-blocks, when the whole strip is in view on the active screen."""
        tiles = self._sixel_tiles
        if not tiles or not self.display or not self._on_active_screen():
            return
        missing = [(frame, tile, rows) for frame, tile, rows in tiles
                   if frame is not None and self._sixels.get((id(frame), tile, rows), (None,))[0] is not frame]
        if missing:
            if not self._sixel_encoding:
                self._sixel_encoding = True
                self.run_worker(lambda: self._encode_sixels(missing), thread=True, group="sixel",
                                exit_on_error=False)
            return
        try:
            visible = self.screen.find_widget(self).visible_region
        except Exception:  # no longer on the screen
            return
        region = self.content_region
        top = region.y + (1 if self.state else 0)
        rows = tiles[0][2]
        if visible.y > top or visible.bottom < top + rows or visible.x > region.x or visible.right < region.right:
            return  # partly out of view: the half-blocks stay
        if top + rows >= self.screen.size.height:
            return  # touching the last line, the terminal could scroll
        out = [ESC + "7"]  # the cursor saved: Textual's next update starts where it left it
        x = region.x
        for frame, tile, rows in tiles:
            if frame is not None:
                out.append(cursor_to(x, top) + self._sixels[(id(frame), tile, rows)][1])
            x += tile + GAP
        out.append(ESC + "8")
        self.write_escape("".join(out))

    def _encode_sixels(self, missing: list[tuple[Frame, int, int]]) -> None:
        """In a thread: the tiles' Sixel images, at the cells' pixel size."""
        cell_w, cell_h = cell_pixels()
        encoded = {}
        try:
            for frame, tile, rows in missing:
                scale = min(tile * cell_w / frame.width, rows * cell_h / frame.height)
                size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
                picture = frame.image().resize(size)
                encoded[(id(frame), tile, rows)] = (frame, sixel(*size, picture.tobytes(), tmux=self._tmux))
        finally:
            self.app.call_from_thread(self._sixels_ready, encoded)

    def _sixels_ready(self, encoded: dict) -> None:
        self._sixel_encoding = False
        self._sixels.update(encoded)
        while len(self._sixels) > 32:
            self._sixels.pop(next(iter(self._sixels)))
        if encoded:
            self._draw_sixels()
