"""Escape sequences the dashboard writes to its own terminal: notifications, title, tab progress.

Pure functions, no I/O and no Textual: each returns the exact string to write. The promises:
- every piece of text that goes inside a sequence (a job's prompt, an error the server sent) is
  made inert first and then stripped of the characters that end or split a sequence (`;` where
  the format uses it as a separator), so no escape can ride inside a notification;
- inside tmux, a sequence meant for the outer terminal is wrapped for tmux's passthrough
  (`ESC P tmux; … ESC \\`, each ESC inside doubled); tmux only forwards it when its
  `allow-passthrough` option is on (`passthrough_hint` says so once);
- the kind of notification is chosen from what the terminal says it is, and can be forced.
"""

from __future__ import annotations

from typing import Mapping

from tui.core.config import NOTIFY_KINDS
from tui.core.text import one_line

ESC = "\x1b"
BEL = "\a"
ST = ESC + "\\"

MAX_TITLE = 80
MAX_BODY = 200


def safe_text(text: object, limit: int) -> str:
    """One line of plain text fit for the inside of an OSC string: no controls, no escapes, cut."""
    return one_line(text, limit=limit)


def in_tmux(env: Mapping[str, str]) -> bool:
    return bool(env.get("TMUX"))


def tmux_wrap(sequence: str) -> str:
    """The passthrough form tmux forwards to the terminal it runs in."""
    return f"{ESC}Ptmux;{sequence.replace(ESC, ESC + ESC)}{ST}"


def for_terminal(sequence: str, env: Mapping[str, str]) -> str:
    """`sequence` as it must be written from here to reach the real terminal."""
    return tmux_wrap(sequence) if in_tmux(env) else sequence


def detect_kind(env: Mapping[str, str]) -> str:
    """The notification kind this terminal understands, from its environment.

    Inside tmux, TERM names tmux, not the terminal; tmux keeps the outer terminal's
    TERM_PROGRAM when it was started from it, and kitty's KITTY_WINDOW_ID is inherited too.
    """
    program = env.get("TERM_PROGRAM", "").lower()
    term = env.get("TERM", "").lower()
    if env.get("KITTY_WINDOW_ID") or "kitty" in term:
        return "osc99"
    if program in ("iterm.app", "wezterm", "ghostty", "warpterminal") or "ghostty" in term or "wezterm" in term:
        return "osc9"
    if env.get("VTE_VERSION") or "foot" in term or "rxvt" in term or program in ("konsole",):
        return "osc777"
    if env.get("WT_SESSION") or env.get("WEZTERM_PANE"):
        return "osc9"
    if program == "tmux" or in_tmux(env):
        # The outer terminal is unknown: OSC 9 is the most widely shown, and harmless elsewhere.
        return "osc9"
    if env.get("SSH_TTY") or env.get("SSH_CONNECTION"):
        return "osc9"
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return "desktop"
    # Nothing known to show one: stay quiet (the `bell` setting still rings).
    return "off"


def resolve_kind(setting: str, env: Mapping[str, str]) -> str:
    setting = (setting or "auto").lower()
    if setting not in NOTIFY_KINDS:
        raise ValueError(f"notify must be one of {', '.join(NOTIFY_KINDS)}")
    return detect_kind(env) if setting == "auto" else setting


def notification(kind: str, title: str, body: str) -> str | None:
    """The bare sequence (not yet wrapped for tmux) of one notification, or None for kinds that are not sequences."""
    title = safe_text(title, MAX_TITLE)
    body = safe_text(body, MAX_BODY)
    if kind == "osc9":
        # OSC 9 has one field; "9;4;" would read as progress, so a body never starts with "4;".
        text = f"{title}: {body}" if body else title
        return f"{ESC}]9;{text}{BEL}"
    if kind == "osc777":
        # Fields are separated by ';': none may appear inside one.
        return f"{ESC}]777;notify;{title.replace(';', ',')};{body.replace(';', ',')}{BEL}"
    if kind == "osc99":
        # kitty: a title chunk (d=0, not done), then the body with the same id (d=1).
        return (f"{ESC}]99;i=hailuo:d=0:p=title;{title}{ST}"
                f"{ESC}]99;i=hailuo:d=1:p=body;{body}{ST}")
    if kind == "bell":
        return BEL
    return None


def title_sequence(title: str) -> str:
    """OSC 2: the window (or tmux pane) title. Written directly: tmux reads it itself."""
    return f"{ESC}]2;{safe_text(title, MAX_TITLE)}{BEL}"


#: xterm's title stack: save the title before changing it, put it back on exit (xterm, VTE, kitty, iTerm2...).
TITLE_PUSH = f"{ESC}[22;0t"
TITLE_POP = f"{ESC}[23;0t"


def supports_progress(env: Mapping[str, str]) -> bool:
    """Terminals known to show OSC 9;4 progress in the tab (others may print it as a notification)."""
    program = env.get("TERM_PROGRAM", "").lower()
    return bool(env.get("WT_SESSION") or env.get("ConEmuANSI") or program in ("ghostty", "wezterm", "iterm.app")
                or "ghostty" in env.get("TERM", "").lower())


def progress_sequence(percent: int | None) -> str:
    """OSC 9;4: state 1 with a percentage, or 0 to remove it."""
    if percent is None:
        return f"{ESC}]9;4;0;0{BEL}"
    return f"{ESC}]9;4;1;{max(0, min(100, int(percent)))}{BEL}"


def state_title(running: int, completed: int, failed: int, *, name: str = "hailuo") -> str:
    """`hailuo · 3▶ 2✓ 1✗`: the jobs of this session, at a glance."""
    parts = [f"{running}▶"] if running else []
    if completed:
        parts.append(f"{completed}✓")
    if failed:
        parts.append(f"{failed}✗")
    return f"{name} · {' '.join(parts)}" if parts else name


def passthrough_hint() -> str:
    return "tmux is not forwarding notifications: run `tmux set -g allow-passthrough on`"
