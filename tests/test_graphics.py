"""The bytes that reach the terminal for kitty graphics and Sixel, for tiny known pictures."""

from __future__ import annotations

import base64
import os
import re
import zlib

import pytest

from tui.core import graphics
from tui.core.graphics import (DIACRITICS, PLACEHOLDER, ImageIds, kitty_delete, kitty_placeholder_rows,
                               kitty_transmit, sixel, tmux_wrap)

RED_BLUE = bytes([255, 0, 0, 0, 0, 255])  # 2 × 1: a red pixel, then a blue one


def test_kitty_transmits_a_tiny_picture_as_one_chunk_with_a_virtual_placement():
    assert kitty_transmit(16, 2, 1, RED_BLUE, columns=2, rows=1) == (
        "\x1b_Ga=T,U=1,f=24,o=z,s=2,v=1,i=16,c=2,r=1,q=2,m=0;eJz7zwAE/wEG/wH/\x1b\\")


def test_kitty_sends_a_larger_picture_in_chunks_of_4096_that_join_to_the_picture():
    rgb = os.urandom(64 * 48 * 3)  # does not compress: several chunks
    sent = kitty_transmit(200, 64, 48, rgb, columns=12, rows=4)
    messages = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", sent)
    assert "".join(f"\x1b_G{c};{p}\x1b\\" for c, p in messages) == sent  # nothing else in between
    assert len(messages) > 2
    controls = [control for control, _ in messages]
    assert controls[0] == "a=T,U=1,f=24,o=z,s=64,v=48,i=200,c=12,r=4,q=2,m=1"
    assert controls[1:-1] == ["m=1"] * (len(messages) - 2) and controls[-1] == "m=0"
    payloads = [payload for _, payload in messages]
    assert all(len(p) == 4096 for p in payloads[:-1]) and 0 < len(payloads[-1]) <= 4096
    assert zlib.decompress(base64.b64decode("".join(payloads))) == rgb


def test_inside_tmux_each_chunk_is_wrapped_and_every_escape_doubled():
    plain = kitty_transmit(16, 2, 1, RED_BLUE, columns=2, rows=1)
    assert kitty_transmit(16, 2, 1, RED_BLUE, columns=2, rows=1, tmux=True) == (
        "\x1bPtmux;\x1b\x1b_Ga=T,U=1,f=24,o=z,s=2,v=1,i=16,c=2,r=1,q=2,m=0;eJz7zwAE/wEG/wH/\x1b\x1b\\\x1b\\")
    assert tmux_wrap(plain) == kitty_transmit(16, 2, 1, RED_BLUE, columns=2, rows=1, tmux=True)
    many = kitty_transmit(17, 64, 48, os.urandom(64 * 48 * 3), columns=12, rows=4, tmux=True)
    wrapped = re.findall(r"\x1bPtmux;(.*?)\x1b\\(?=\x1bPtmux;|$)", many, flags=re.S)
    assert len(wrapped) > 2 and all(w.startswith("\x1b\x1b_G") and w.endswith("\x1b\x1b\\") for w in wrapped)


def test_kitty_deletes_an_image_by_id_with_its_data():
    assert kitty_delete(42) == "\x1b_Ga=d,d=I,i=42,q=2\x1b\\"
    assert kitty_delete(42, tmux=True) == "\x1bPtmux;\x1b\x1b_Ga=d,d=I,i=42,q=2\x1b\x1b\\\x1b\\"


def test_placeholder_cells_name_their_row_and_column():
    rows = kitty_placeholder_rows(3, 2)
    d = DIACRITICS
    assert rows == [PLACEHOLDER + d[0] + d[0] + PLACEHOLDER + d[0] + d[1] + PLACEHOLDER + d[0] + d[2],
                    PLACEHOLDER + d[1] + d[0] + PLACEHOLDER + d[1] + d[1] + PLACEHOLDER + d[1] + d[2]]
    assert d[:4] == ("\u0305", "\u030d", "\u030e", "\u0310")  # kitty's table, in its order


def test_image_ids_stay_256_colour_foregrounds_and_skip_those_shown():
    ids = ImageIds()
    assert [ids.take(set()) for _ in range(3)] == [16, 17, 18]
    assert ids.take({19, 20}) == 21
    taken = [ids.take(set()) for _ in range(240)]
    assert min(taken) == 16 and max(taken) == 255
    with pytest.raises(RuntimeError):
        ids.take(set(range(16, 256)))
    with pytest.raises(ValueError):
        kitty_transmit(256, 2, 1, RED_BLUE, columns=1, rows=1)


def test_sixel_of_two_colours_one_band():
    # 2 × 2: the top row red, the bottom row blue; each colour's columns carry its row's bit.
    rgb = bytes([255, 0, 0] * 2 + [0, 0, 255] * 2)
    assert sixel(2, 2, rgb) == '\x1bP0;1;0q"1;1;2;2#0;2;100;0;0#1;2;0;0;100#0@@$#1AA\x1b\\'


def test_sixel_bands_of_six_rows_and_runs():
    # 1 × 7: six red rows fill the first band ("~" = all six bits), the green seventh starts the next.
    assert sixel(1, 7, bytes([255, 0, 0] * 6 + [0, 255, 0])) == (
        '\x1bP0;1;0q"1;1;1;7#0;2;0;100;0#1;2;100;0;0#1~-#0@\x1b\\')
    assert sixel(8, 1, bytes(8 * 3)) == '\x1bP0;1;0q"1;1;8;1#0;2;0;0;0#0!8@\x1b\\'


def test_sixel_keeps_to_256_colours_and_wraps_for_tmux():
    noisy = os.urandom(40 * 12 * 3)
    encoded = sixel(40, 12, noisy)
    assert len(set(re.findall(r"#(\d+);2;", encoded))) <= 256
    assert sixel(2, 1, RED_BLUE, tmux=True) == tmux_wrap(sixel(2, 1, RED_BLUE))
    assert sixel(2, 1, RED_BLUE, tmux=True).count("\x1b") == 2 * sixel(2, 1, RED_BLUE).count("\x1b") + 2


def test_cell_pixels_falls_back_when_the_terminal_does_not_say(tmp_path):
    with open(tmp_path / "not-a-tty", "w") as handle:
        assert graphics.cell_pixels(handle.fileno()) == (10, 20)


def test_cell_pixels_reads_the_terminals_window_size():
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 960, 576))
        assert graphics.cell_pixels(slave) == (12, 24)
    finally:
        os.close(master)
        os.close(slave)
