"""Terminal graphics: the bytes that draw a small RGB picture with the kitty graphics protocol or Sixel.

Nothing here writes to a terminal; it builds strings, so the exact bytes can be checked.

kitty: the picture is transmitted once (`ESC _G a=T,U=1,f=24,o=z,...;<base64> ESC \\`, the
payload in chunks of 4096 with `m=1` on all but the last) as a *virtual* placement, and shown by
writing Unicode placeholder cells (U+10EEEE, a row and a column diacritic, the image id as the
foreground colour). The placeholders are ordinary text to the application: they scroll, crop and
hide with the widget that draws them, and a dialog drawn over them covers them. Ids are 16..255
so the id survives as a 256-colour foreground (`38;5;N`) whatever colour depth the application
renders with. `kitty_delete` frees an image (`a=d,d=I`).

Sixel: the picture is quantised to at most 256 colours and written as `ESC P 0;1;0 q ... ESC \\`
(P2=1: pixels not drawn stay as they were), one band of six pixel rows at a time, runs of four or
more encoded as `!<count><char>`.

Inside tmux, every escape goes through its passthrough: `ESC P tmux; <sequence with each ESC
doubled> ESC \\` (tmux needs `allow-passthrough on`; the renderer choice checks it).
"""

from __future__ import annotations

import base64
import re
import zlib

ESC = "\x1b"
ST = ESC + "\\"
CHUNK = 4096
PLACEHOLDER = "\U0010eeee"
#: Ids of images this process transmits: 256-colour foregrounds (0-15 are themed colours, left alone).
FIRST_ID, LAST_ID = 16, 255

#: kitty's row/column diacritics (rowcolumn-diacritics.txt): the n-th stands for row or column n.
DIACRITICS = tuple(chr(code) for code in (
    0x0305, 0x030D, 0x030E, 0x0310, 0x0312, 0x033D, 0x033E, 0x033F, 0x0346, 0x034A, 0x034B, 0x034C,
    0x0350, 0x0351, 0x0352, 0x0357, 0x035B, 0x0363, 0x0364, 0x0365, 0x0366, 0x0367, 0x0368, 0x0369,
    0x036A, 0x036B, 0x036C, 0x036D, 0x036E, 0x036F, 0x0483, 0x0484, 0x0485, 0x0486, 0x0487, 0x0592,
    0x0593, 0x0594, 0x0595, 0x0597, 0x0598, 0x0599, 0x059C, 0x059D, 0x059E, 0x059F, 0x05A0, 0x05A1,
    0x05A8, 0x05A9, 0x05AB, 0x05AC, 0x05AF, 0x05C4, 0x0610, 0x0611, 0x0612, 0x0613, 0x0614, 0x0615,
    0x0616, 0x0617, 0x0657, 0x0658, 0x0659, 0x065A, 0x065B, 0x065D, 0x065E, 0x06D6, 0x06D7, 0x06D8,
))
#: The most cells a placed image may span each way (one diacritic per row and per column).
MAX_CELLS = len(DIACRITICS)


def tmux_wrap(sequence: str) -> str:
    """`sequence` through tmux's passthrough: every ESC inside doubled."""
    return f"{ESC}Ptmux;{sequence.replace(ESC, ESC + ESC)}{ST}"


def kitty_transmit(image_id: int, width: int, height: int, rgb: bytes, *, columns: int, rows: int,
                   tmux: bool = False) -> str:
    """Transmit `rgb` (width × height × 3) as image `image_id`, placed virtually over columns × rows cells."""
    if not FIRST_ID <= image_id <= LAST_ID:
        raise ValueError(f"image id {image_id} outside {FIRST_ID}..{LAST_ID}")
    if not (0 < columns <= MAX_CELLS and 0 < rows <= MAX_CELLS):
        raise ValueError(f"{columns}×{rows} cells: at most {MAX_CELLS} each way")
    if len(rgb) != width * height * 3:
        raise ValueError("rgb is not width × height × 3 bytes")
    payload = base64.b64encode(zlib.compress(rgb, 6)).decode("ascii")
    chunks = [payload[i:i + CHUNK] for i in range(0, len(payload), CHUNK)] or [""]
    keys = f"a=T,U=1,f=24,o=z,s={width},v={height},i={image_id},c={columns},r={rows},q=2"
    parts = []
    for index, chunk in enumerate(chunks):
        more = 1 if index < len(chunks) - 1 else 0
        control = f"{keys},m={more}" if index == 0 else f"m={more}"
        sequence = f"{ESC}_G{control};{chunk}{ST}"
        parts.append(tmux_wrap(sequence) if tmux else sequence)  # tmux: one passthrough per chunk
    return "".join(parts)


def kitty_delete(image_id: int, *, tmux: bool = False) -> str:
    """Free image `image_id` (its data and placements)."""
    sequence = f"{ESC}_Ga=d,d=I,i={image_id},q=2{ST}"
    return tmux_wrap(sequence) if tmux else sequence


def kitty_placeholder_rows(columns: int, rows: int) -> list[str]:
    """The text of each cell row of a virtual placement (drawn in the image id's foreground colour)."""
    return ["".join(PLACEHOLDER + DIACRITICS[row] + DIACRITICS[column] for column in range(columns))
            for row in range(rows)]


class ImageIds:
    """Hands out kitty image ids 16..255 in turn, skipping those still shown."""

    def __init__(self) -> None:
        self._next = FIRST_ID

    def take(self, in_use: set[int]) -> int:
        for _ in range(LAST_ID - FIRST_ID + 1):
            image_id = self._next
            self._next = FIRST_ID if image_id == LAST_ID else image_id + 1
            if image_id not in in_use:
                return image_id
        raise RuntimeError("every image id is in use")


_RUN = re.compile(r"(.)\1{3,}")
_OFFSET = bytes((value + 63) if value < 64 else 0 for value in range(256))


_BIT_TABLES: dict[tuple[int, int], bytes] = {}


def _bit_table(index: int, bit: int) -> bytes:
    """A translate table: palette index `index` becomes 1 << bit, every other byte 0."""
    table = _BIT_TABLES.get((index, bit))
    if table is None:
        table = _BIT_TABLES[(index, bit)] = bytes(index) + bytes((1 << bit,)) + bytes(255 - index)
    return table


def _run_length(line: str) -> str:
    return _RUN.sub(lambda match: f"!{len(match.group(0))}{match.group(1)}", line)


def sixel(width: int, height: int, rgb: bytes, *, colours: int = 256, tmux: bool = False) -> str:
    """`rgb` (width × height × 3) as one Sixel image, quantised to at most `colours` colours."""
    from PIL import Image

    if len(rgb) != width * height * 3:
        raise ValueError("rgb is not width × height × 3 bytes")
    picture = Image.frombytes("RGB", (width, height), rgb)
    indexed = picture.quantize(colors=max(1, min(256, colours)), method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
    palette = indexed.getpalette() or []
    pixels = indexed.tobytes()
    used = sorted(set(pixels))
    out = [f"{ESC}P0;1;0q\"1;1;{width};{height}"]
    for index in used:
        r, g, b = palette[index * 3: index * 3 + 3]
        out.append(f"#{index};2;{round(r * 100 / 255)};{round(g * 100 / 255)};{round(b * 100 / 255)}")
    for top in range(0, height, 6):
        band = [pixels[(top + k) * width:(top + k + 1) * width] for k in range(min(6, height - top))]
        lines = []
        for index in sorted(set(b"".join(band))):
            bits = 0
            for k, row in enumerate(band):
                # This colour's pixels in row k become bit k, byte-wise in C (translate), then OR-ed.
                bits |= int.from_bytes(row.translate(_bit_table(index, k)), "big")
            column_bits = bits.to_bytes(width, "big").translate(_OFFSET).decode("ascii")
            lines.append(f"#{index}{_run_length(column_bits)}")
        out.append("$".join(lines) + ("-" if top + 6 < height else ""))
    out.append(ST)
    sequence = "".join(out)
    return tmux_wrap(sequence) if tmux else sequence


def cursor_to(column: int, row: int) -> str:
    """Move the cursor to a 0-based cell."""
    return f"{ESC}[{row + 1};{column + 1}H"


def cell_pixels(fd: int | None = None) -> tuple[int, int]:
    """One cell's size in pixels from the terminal's window size (TIOCGWINSZ on `fd`, else on
    stdout or stderr, where Textual writes); (10, 20) when no terminal says."""
    import sys

    candidates = [fd] if fd is not None else [stream for stream in (sys.__stdout__, sys.__stderr__) if stream]
    for candidate in candidates:
        try:
            import fcntl
            import struct
            import termios

            number = candidate if isinstance(candidate, int) else candidate.fileno()
            rows, cols, x_pixels, y_pixels = struct.unpack("HHHH", fcntl.ioctl(number, termios.TIOCGWINSZ,
                                                                               b"\0" * 8))
        except (OSError, ValueError, AttributeError, ImportError):
            continue
        if rows and cols and x_pixels and y_pixels:
            return max(1, x_pixels // cols), max(1, y_pixels // rows)
    return 10, 20
