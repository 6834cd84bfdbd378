"""A new user's first look in a real terminal (tmux, 80x24): on the Linux console (TERM=linux)
the dashboard draws with glyphs its font has; under NO_COLOR the prompt-expansion switch still
says whether it is on."""

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

class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")
            time.sleep(0.2)

    def start(self, tmp_path: Path, width: int = 80, height: int = 24, **extra: str) -> None:
        env = {
            "HOME": str(tmp_path / "home"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "TERM": "xterm-256color", "LANG": "C.UTF-8",
            "HAILUO_TUI_DATA_DIR": str(tmp_path / "data"), "HAILUO_TUI_CONFIG": str(tmp_path / "config.toml"),
            "HAILUO_TUI_CACHE_DIR": str(tmp_path / "cache"), **extra,
        }
        command = " ".join(f"{k}='{v}'" for k, v in env.items())
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                 f"env -i {command} {Path(sys.executable).parent / 'hailuo-tui'} --demo")


@pytest.fixture
def tmux(tmp_path):
    session = Tmux(f"hailuo-edges-{os.getpid()}-{tmp_path.name}")
    yield session
    pids = session.run("list-panes", "-a", "-F", "#{pane_pid}").split()
    session.run("kill-server")
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_term_linux_gets_plain_borders_and_arrows(tmp_path, tmux):
    tmux.start(tmp_path, TERM="linux")
    screen = tmux.wait_for("A red fox")
    # The block edges (hkey/vkey) and the triangle sort arrow are not in the console font.
    body = "\n".join(screen.splitlines()[:-1])  # the last line is Textual's own footer
    for missing in "▕▔▲▼⚠…":
        assert missing not in body, (missing, screen)
    assert "-" * 40 in screen  # the detail pane's top border, in ASCII
    assert "vSUBMITTED" in screen  # the sort arrow over the sorted column
    assert "~ " in screen  # a cut prompt ends with a plain mark


def test_no_color_switch_says_on_and_off(tmp_path, tmux):
    tmux.start(tmp_path, NO_COLOR="1")
    tmux.wait_for("A red fox")
    tmux.run("send-keys", "-t", "t", "n")
    screen = tmux.wait_for("Expand prompt")
    assert any(line.startswith(" Expand prompt") and line.rstrip().endswith("on") for line in screen.splitlines()), screen


def test_a_stale_columns_and_lines_in_the_environment_do_not_shrink_the_dashboard(tmp_path, tmux):
    # A parent program (a test runner, a script) that exports COLUMNS=80 LINES=24 used to pin
    # the dashboard to 80x24 in a 160x45 terminal, in the narrow layout with the form hidden.
    tmux.start(tmp_path, width=160, height=45, COLUMNS="80", LINES="24")
    screen = tmux.wait_for("A red fox")
    lines = screen.splitlines()
    assert len(lines) == 45 and len(lines[-1].rstrip()) > 100, screen  # the footer spans the width
    tmux.wait_for("Submit ^s")  # the wide layout, with the composer beside the table
