"""Video players this machine has, and the command that plays a file in (or beside) the terminal.

Preference: mpv drawing into the terminal (`--vo=kitty` where kitty graphics work, else
`--vo=tct`, true-colour cells), then timg, then ffplay when a desktop session exists (it opens
a window). `found()` is what `hailuo-tui locate` lists; `play_command(path)` the argv to run
with the dashboard suspended, or None when nothing can play here.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Mapping

PLAYERS = ("mpv", "timg", "ffplay")


@dataclass(frozen=True)
class Player:
    name: str
    path: str


def found(env: Mapping[str, str] = os.environ) -> list[Player]:
    """The players on $PATH, in order of preference."""
    search = env.get("PATH")
    players = []
    for name in PLAYERS:
        path = shutil.which(name, path=search)
        if path:
            players.append(Player(name, path))
    return players


def _has_desktop(env: Mapping[str, str]) -> bool:
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def play_command(path: str, *, kitty: bool = False, env: Mapping[str, str] = os.environ) -> list[str] | None:
    """The argv that plays `path` in this terminal (ffplay only with a desktop); None when none can."""
    for player in found(env):
        if player.name == "mpv":
            return [player.path, f"--vo={'kitty' if kitty else 'tct'}", "--really-quiet", "--", path]
        if player.name == "timg":
            return [player.path, "--", path]
        if player.name == "ffplay" and _has_desktop(env):
            return [player.path, "-autoexit", "-loglevel", "error", "--", path]
    return None


def none_found_message(env: Mapping[str, str] = os.environ) -> str:
    if any(p.name == "ffplay" for p in found(env)):
        return "ffplay needs a desktop session; install mpv or timg to play in the terminal"
    return "no video player found: install mpv or timg (or ffplay on a desktop) to play clips here"
