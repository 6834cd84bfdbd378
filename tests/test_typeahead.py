"""Keys as a real terminal delivers them: the dashboard runs in tmux (a real pty) against a
loopback simulator in this process, whose request log says exactly what was sent.

- A burst typed at full speed and ctrl+s right behind it sends the whole burst, never a
  cut-off prompt (it used to send "typeahead trial 4 e" for "typeahead trial 4 ends here").
- With the focus on the Scene select, `c` and `q` are not the dashboard's clone and quit: the
  draft stays and the app keeps running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import posts

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real pty")

# Terminals driven through tmux or a pty run one after another on one worker: two at once
# starve each other's start-up on a 2-core machine.
pytestmark = pytest.mark.xdist_group("terminals")

KEY = "sk-typeahead-test-0000"
BURSTS = 50


class Tmux:
    """One dashboard in its own tmux server (its own socket: no other tmux is touched)."""

    def __init__(self, tmp_path: Path, base_url: str, *, width: int = 160, height: int = 45) -> None:
        self.socket = f"hailuo-typeahead-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GPTPROTO_", "HAILUO_TUI_", "TMUX"))}
        env.update({
            "GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": base_url, "TERM": "xterm-256color",
            "HAILUO_TUI_DB": str(tmp_path / "history.json"), "HAILUO_TUI_CONFIG": str(tmp_path / "config.toml"),
            "HAILUO_TUI_DATA_DIR": str(tmp_path / "data"), "HAILUO_TUI_DOWNLOAD_DIR": str(tmp_path / "downloads"),
        })
        self.exit_file = tmp_path / "exit-status"
        command = f"{sys.executable} -m tui; echo $? > {self.exit_file}"
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command, env=env)

    def _tmux(self, *args: str, env: dict | None = None) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=env,
                              timeout=60)
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def burst(self, text: str, *then: str) -> None:
        """`text` typed literally and the named keys right behind it, in one tmux command."""
        args = ["send-keys", "-t", "t", "-l", text]
        for key in then:
            args += [";", "send-keys", "-t", "t", key]
        self._tmux(*args)

    def keys(self, *names: str) -> None:
        self._tmux("send-keys", "-t", "t", *names)

    def wait_screen(self, predicate, what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what}:\n{text}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return not self.exit_file.exists()

    def close(self) -> None:
        # The dashboard itself is ended by its process id: a terminal that goes away does not
        # always end it (that hang-up is tested on its own elsewhere).
        shell = self._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip()
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", shell], capture_output=True, text=True,
                                  timeout=60).stdout.split() if shell.isdigit() else []
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=60)
        for pid in children:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass


def wait(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout:g}s: {what}")
        time.sleep(0.02)


@pytest.fixture
def dashboard(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=60)
    tmux = Tmux(tmp_path, sim.base_url)
    try:
        # The form is built and the service is open (submit would say why otherwise).
        tmux.wait_screen(lambda s: "Submit ^s" in s and "opening the history" not in s, "the form")
        yield tmux, sim
    finally:
        tmux.close()


def focus_prompt(tmux: Tmux) -> None:
    tmux.keys("n")
    # The form's own keys show in the footer only while the focus is in the form.
    tmux.wait_screen(lambda s: "Clear form" in s, "the focus in the form")


def test_a_burst_then_ctrl_s_sends_exactly_the_burst_every_time(dashboard):
    tmux, sim = dashboard
    focus_prompt(tmux)
    sent: list[str] = []
    for trial in range(BURSTS):
        typed = f"typeahead trial {trial} ends here, after a heron lifts off the misty lake at dawn"
        tmux.burst(typed, "C-s")
        wait(lambda: len(posts(sim)) == trial + 1, f"the POST of trial {trial}")
        sent.append(json.loads(posts(sim)[-1].body)["prompt"])
        assert sent[-1] == typed, f"trial {trial} sent {sent[-1]!r}"
        # The job is on screen, then the form is cleared for the next burst.
        tmux.wait_screen(lambda s: f"trial {trial} ends" in s.split("Prompt")[-1] or "sent as" in s, "the sent job")
        tmux.keys("C-l")
        tmux.wait_screen(lambda s: "0 / 5,000" in s, "the cleared form")
    assert len(sent) == BURSTS and len(posts(sim)) == BURSTS  # each burst once, nothing twice
    assert tmux.running


def test_on_the_scene_select_c_and_q_leave_the_draft_and_the_app_alone(dashboard):
    tmux, sim = dashboard
    focus_prompt(tmux)
    first = "a lighthouse in a winter storm, waves over the rocks"
    tmux.burst(first, "C-s")
    wait(lambda: len(posts(sim)) == 1, "the first job")
    tmux.wait_screen(lambda s: "sent as" in s, "the first job sent")
    tmux.keys("C-l")
    tmux.wait_screen(lambda s: "0 / 5,000" in s, "the cleared form")
    draft = "a fox in deep snow"  # the draft; `c` would put the lighthouse job's prompt over it
    tmux.burst(draft)
    tmux.wait_screen(lambda s: f"{len(draft)} / 5,000" in s, "the draft typed")
    tmux.keys("BTab")  # from the prompt to the Scene select above it
    tmux.keys("Enter")  # its menu opens: the focus is on the Scene select
    tmux.wait_screen(lambda s: "image-to-video" in s, "the Scene menu")
    tmux.keys("Escape")
    tmux.wait_screen(lambda s: "image-to-video" not in s, "the Scene menu closed")
    tmux.keys("c", "q", "c", "q")
    # ctrl+r (the form's recall) takes the same way as c and q from the select to the app:
    # once its picker shows, c and q have been handled.
    tmux.keys("C-r")
    screen = tmux.wait_screen(lambda s: "Recall a prompt" in s, "the prompt picker")
    assert "Quit anyway" not in screen and tmux.running
    tmux.keys("Escape")
    screen = tmux.wait_screen(lambda s: f"{len(draft)} / 5,000" in s and "Clear form" in s, "the form again")
    assert draft in screen and "Quit anyway" not in screen
    assert len(posts(sim)) == 1 and tmux.running


def test_a_filter_typed_in_one_burst_with_its_slash_lands_in_the_filter(dashboard):
    tmux, sim = dashboard
    tmux.keys("Escape")  # the table has the focus, as after start
    tmux.wait_screen(lambda s: "Clear form" not in s, "the focus out of the form")
    tmux.burst("/xo")  # x alone would ask to forget the selected job
    typed = re.compile(r"(^|▕) xo(\s|$)", re.M)
    screen = tmux.wait_screen(lambda s: bool(typed.search(s)) or "Forget" in s, "the filter holding what was typed")
    assert "Forget" not in screen and typed.search(screen), screen
    assert tmux.running
