"""Low-bandwidth mode's one process-wide setting: repaints coalesced to a few frames a second.

The rest of the mode lives where it acts: the job table's clock ticks every few seconds, the
stats panel is redrawn as often, animation is off (`App.animation_level`), and the status line
says the mode is on. All of it is chosen once, at start: on over SSH (SSH_TTY /
SSH_CONNECTION), else by `--low-bandwidth` or `low_bandwidth = true` in the config.
"""

from __future__ import annotations

#: Frames a second at most: changes that arrive within a frame are written to the terminal together.
LOW_BANDWIDTH_FPS = 4


def coalesce_repaints(fps: int = LOW_BANDWIDTH_FPS) -> None:
    """Textual writes a screen update at most every `screen.UPDATE_PERIOD` seconds (1/60 by
    default, from TEXTUAL_FPS read at import). Screens created after this call wait longer, so
    a burst of poll results becomes one write instead of many. Call before the app runs; a
    TEXTUAL_FPS the user set is left alone."""
    import os

    if os.environ.get("TEXTUAL_FPS"):
        return
    from textual import screen

    screen.UPDATE_PERIOD = 1 / max(1, fps)
