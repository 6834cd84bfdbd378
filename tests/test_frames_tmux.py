"""The preview as a new user meets it, in a real terminal (tmux): `hailuo-tui --demo`, select a
completed job, its frames appear as coloured half-blocks; the play key hands the terminal to
a player and the dashboard comes back intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Terminals driven through tmux or a pty run one after another on one worker: two at once
# starve each other's start-up on a 2-core machine.
pytestmark = pytest.mark.xdist_group("terminals")

PLAYER = """#!/bin/sh
# Stands in for timg: shows what it was given, then waits for Enter like a player waits for q.
echo "PLAYER GOT $(wc -c < "$2") bytes"
read answer
"""


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30).stdout

    def screen(self, *, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def wait_for(self, text: str, timeout: float = 90.0, *, escapes: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(escapes=escapes)
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")
            time.sleep(0.2)


@pytest.fixture
def tmux(tmp_path):
    session = Tmux(f"hailuo-frames-{os.getpid()}-{tmp_path.name}")
    yield session
    pids = session.run("list-panes", "-a", "-F", "#{pane_pid}").split()
    session.run("kill-server")
    for pid in pids:  # the dashboard itself, should it outlive its terminal
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_demo_frames_appear_as_coloured_blocks_and_play_returns_to_the_dashboard(tmp_path, tmux):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    player = bin_dir / "timg"
    player.write_text(PLAYER)
    player.chmod(0o755)
    env = {
        "HOME": str(tmp_path / "home"), "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "TERM": "xterm-256color", "COLORTERM": "truecolor", "LANG": "C.UTF-8",
        "HAILUO_TUI_DATA_DIR": str(tmp_path / "data"), "HAILUO_TUI_CONFIG": str(tmp_path / "config.toml"),
        "HAILUO_TUI_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = " ".join(f"{k}='{v}'" for k, v in env.items())
    tmux.run("new-session", "-d", "-s", "t", "-x", "160", "-y", "45",
             f"env -i {command} {Path(sys.executable).parent / 'hailuo-tui'} --demo")
    tmux.wait_for("A red fox trotting")
    tmux.wait_for("completed")
    # The fox is the oldest demo job: the last row.
    for _ in range(6):
        tmux.run("send-keys", "-t", "t", "j")
    tmux.run("send-keys", "-t", "t", "Enter")
    screen = tmux.wait_for("2.0 s · 320×180 · 10 fps")
    assert "▀" * 10 in screen
    coloured = tmux.wait_for("\x1b[38;2;", escapes=True)
    strip_rows = [line for line in coloured.splitlines() if "▀" in line and "48;2;" in line]
    assert len(strip_rows) >= 3  # rows of pixels, two a cell, in true colour

    tmux.run("send-keys", "-t", "t", "P")
    clip_bytes = tmux.wait_for("PLAYER GOT")
    assert "Sort column" not in clip_bytes  # the dashboard handed the terminal over
    fetched = next((tmp_path / "cache" / "videos").glob("*.mp4"))
    assert f"PLAYER GOT {fetched.stat().st_size} bytes" in clip_bytes
    tmux.run("send-keys", "-t", "t", "Enter")
    tmux.wait_for("2.0 s · 320×180 · 10 fps")
    # The screen is repainted a region at a time once the terminal is back: the footer may come
    # a frame after the strip.
    back = tmux.wait_for("Sort column")
    assert "A red fox trotting" in back and "2.0 s · 320×180 · 10 fps" in back
    tmux.run("send-keys", "-t", "t", "k", "Enter")  # and it still answers keys: the job above, in full
    tmux.wait_for("drone shot, golden hour")
