"""Notifications: through the terminal (OSC 9 / 777 / 99, also over SSH and through tmux), the
terminal title, and `notify-send` when a desktop session is there to show them.

`TerminalNotifier` picks the channel from the `notify` setting (tui.core.terminal_seq builds
every sequence, inert text inside) and writes through a callable it is given (the app's
driver), so it needs no Textual import and tests read exactly what reached the terminal.
It restores the title it changed: xterm's title stack, or in tmux the pane title it read.

The notify-send command is run with an argument list (never a shell), in a background thread so the
caller never waits for it, with the API key removed from its environment. Text that came
from the server is made inert first: control characters go, and the characters that the
notification body's markup would act on (`&`, `<`, `>`) are escaped.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
from typing import Any, Callable, Mapping, Sequence

from tui.core import terminal_seq as seq
from tui.core.config import APP_NAME, ENV_KEY, over_ssh
from tui.core.text import inert as inert_text

log = logging.getLogger("hailuo_tui.notify")

#: A notification that hangs (no daemon answering) is abandoned after this many seconds.
NOTIFY_TIMEOUT = 10.0
MAX_TITLE = 80
MAX_BODY = 300

def inert(text: object, limit: int) -> str:
    """One or more lines of plain text: no escape sequences or controls, cut to `limit` characters."""
    value = inert_text(text, multiline=True).replace("\t", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def body_markup_escaped(text: str) -> str:
    """notify-send bodies may be read as a small markup language: show these characters literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def desktop_session(env: Mapping[str, str]) -> bool:
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


class DesktopNotifier:
    """Sends one desktop notification per call, when enabled and a desktop session exists."""

    def __init__(self, *, enabled: bool = True, env: Mapping[str, str] | None = None,
                 which: Callable[[str], str | None] = shutil.which,
                 run: Callable[[Sequence[str], Mapping[str, str]], None] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self.enabled = enabled
        self.command = which("notify-send") if enabled and desktop_session(self._env) else None
        self._run = run or _run_quietly

    @property
    def available(self) -> bool:
        return self.enabled and self.command is not None

    def arguments(self, title: str, body: str, *, urgency: str = "normal") -> list[str]:
        """The argument list: options first, then `--` so a title starting with '-' is never an option."""
        assert self.command is not None
        return [self.command, f"--app-name={APP_NAME}", f"--urgency={urgency}", "--",
                " ".join(inert(title, MAX_TITLE).split()) or APP_NAME, body_markup_escaped(inert(body, MAX_BODY))]

    def notify(self, title: str, body: str, *, urgency: str = "normal") -> bool:
        """Start sending; returns at once (False when there is nowhere to send it)."""
        if not self.available:
            return False
        argv = self.arguments(title, body, urgency=urgency)
        child_env = {k: v for k, v in self._env.items() if k != ENV_KEY}
        thread = threading.Thread(target=self._run, args=(argv, child_env), name="notify-send", daemon=True)
        thread.start()
        return True


def _run_quietly(argv: Sequence[str], env: Mapping[str, str]) -> None:
    try:
        subprocess.run(list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=NOTIFY_TIMEOUT, check=False, close_fds=True)
    except (OSError, subprocess.SubprocessError) as exc:  # no daemon, a broken install: never the app's problem
        log.debug("notify-send failed: %s", exc)


Write = Callable[[str], None]


def tmux_passthrough_on(env: Mapping[str, str], run: Callable[..., Any] = subprocess.run) -> bool | None:
    """Whether tmux forwards passthrough sequences (None: not in tmux, or tmux did not answer)."""
    if not seq.in_tmux(env):
        return None
    try:
        done = run(["tmux", "show", "-gv", "allow-passthrough"], capture_output=True, text=True, timeout=2,
                   env={k: v for k, v in env.items() if k != ENV_KEY})
    except (OSError, subprocess.SubprocessError):
        return None
    value = (done.stdout or "").strip().lower()
    return value in ("on", "all") if done.returncode == 0 else None


def tmux_pane_title(env: Mapping[str, str], run: Callable[..., Any] = subprocess.run) -> str | None:
    try:
        done = run(["tmux", "display-message", "-p", "#{pane_title}"], capture_output=True, text=True, timeout=2,
                   env={k: v for k, v in env.items() if k != ENV_KEY})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


class TerminalNotifier:
    """One notification per call through the chosen channel; the title and tab progress besides."""

    def __init__(self, setting: str, write: Write, *, env: Mapping[str, str] | None = None,
                 desktop: DesktopNotifier | None = None, run: Callable[..., Any] = subprocess.run) -> None:
        self._env = dict(os.environ if env is None else env)
        self.setting = (setting or "auto").lower()
        self.kind = seq.resolve_kind(self.setting, self._env)
        self._write = write
        self._run = run
        self.desktop = desktop
        self._title_saved = False
        self._title: str | None = None
        self._tmux_title: str | None = None
        self._progress_shown = False
        self.progress_supported = seq.supports_progress(self._env)

    @property
    def in_tmux(self) -> bool:
        return seq.in_tmux(self._env)

    def _out(self, text: str) -> None:
        try:
            self._write(text)
        except Exception as exc:  # noqa: BLE001 - a terminal that went away must not stop the app
            log.debug("terminal write failed: %s", exc)

    def notify(self, title: str, body: str, *, urgency: str = "normal") -> str | None:
        """Send; returns the channel used ("osc9", "desktop", "bell"...) or None."""
        used: str | None = None
        sequence = seq.notification(self.kind, title, body)
        if sequence is not None and self.kind != "bell":
            self._out(seq.for_terminal(sequence, self._env))
            used = self.kind
        elif self.kind == "bell":
            self._out(seq.BEL)
            used = "bell"
        # notify-send where a desktop is at hand: asked for, or "auto" on this machine's own screen.
        wants_desktop = self.kind == "desktop" or (self.setting == "auto" and not over_ssh(self._env))
        if wants_desktop and self.desktop is not None and self.desktop.notify(title, body, urgency=urgency):
            used = used or "desktop"
        return used

    # -- title ------------------------------------------------------------------------------
    def set_title(self, title: str) -> None:
        if title == self._title:
            return
        if not self._title_saved:
            self._title_saved = True
            if self.in_tmux:
                self._tmux_title = tmux_pane_title(self._env, self._run)
            else:
                self._out(seq.TITLE_PUSH)
        self._title = title
        self._out(seq.title_sequence(title))

    def progress(self, percent: int | None) -> None:
        if not self.progress_supported:
            return
        if percent is None and not self._progress_shown:
            return
        self._progress_shown = percent is not None
        self._out(seq.for_terminal(seq.progress_sequence(percent), self._env))

    def restore(self) -> None:
        """Put back what was there before (on exit)."""
        self.progress(None)
        if not self._title_saved:
            return
        if self.in_tmux:
            # tmux has no title stack: the pane's title read at the start, else tmux's default (the host name).
            self._out(seq.title_sequence(self._tmux_title if self._tmux_title is not None else socket.gethostname()))
        else:
            self._out(seq.TITLE_POP)
        self._title_saved = False
        self._title = None
