"""What the dashboard remembers between runs that is no setting: the theme picked in the palette.

One small JSON file in the state directory (`ui-state.json`), written atomically. It never
overrides the config file: the theme picked is kept with the config's `theme` of that moment,
and applies only while the config still says the same (an edited config wins). A missing,
damaged or foreign file is read as "nothing remembered".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tui.core.files import FileRefused, read_bounded, write_atomically

UI_STATE_FILE = "ui-state.json"
MAX_BYTES = 64 * 1024


def ui_state_path(state_dir: Path) -> Path:
    return Path(state_dir) / UI_STATE_FILE


def read_ui_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_bounded(path, MAX_BYTES).decode("utf-8"))
    except (FileRefused, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def saved_theme(path: Path, config_theme: str | None) -> str | None:
    """The theme picked last time, if the config's `theme` is still what it was then."""
    state = read_ui_state(path)
    theme = state.get("theme")
    if not isinstance(theme, str) or not theme or state.get("config_theme") != config_theme:
        return None
    return theme


def save_theme(path: Path, theme: str, config_theme: str | None) -> None:
    """Remember `theme` (raises OSError when the state directory cannot be written)."""
    state = read_ui_state(path)
    state.update(theme=theme, config_theme=config_theme)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
