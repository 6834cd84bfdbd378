"""Desktop notifications through `notify-send`, when a desktop session is there to show them.

The command is run with an argument list (never a shell), in a background thread so the
caller never waits for it, with the API key removed from its environment. Text that came
from the server is made inert first: control characters go, and the characters that the
notification body's markup would act on (`&`, `<`, `>`) are escaped.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from typing import Callable, Mapping, Sequence

from tui.core.config import APP_NAME, ENV_KEY
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
