"""Playing the selected job's clip: in the terminal through a player the machine has, the
dashboard suspended meanwhile (`App.suspend()`) and redrawn after; in browser mode, a new tab.

The clip is the job's saved download or the preview cache's copy (fetched first when neither
is on this machine). A player that fails or is missing is one toast, never a broken screen.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from tui.core import players
from tui.core.frames import NoPreview
from tui.core.text import one_line


async def play_job(app: Any, job: Any) -> None:
    if not job.outputs:
        app.notify("this job has no video yet", severity="warning", timeout=3)
        return
    if app.is_web:
        app.open_url(job.outputs[0], new_tab=True)
        app.notify("opened the video in a new tab", timeout=3)
        return
    previews = app.previews
    if previews is None:
        app.notify("previews are off: the clip is not fetched to play", severity="warning", timeout=4)
        return
    app.notify("fetching the clip to play…", timeout=2)
    clip = await previews.local_clip(job)
    if isinstance(clip, NoPreview):
        app.notify(f"cannot play: {clip.reason}", severity="error", timeout=6)
        return
    command = players.play_command(str(clip), kitty=app.preview_renderer == "kitty")
    if command is None:
        app.notify(players.none_found_message(), severity="warning", timeout=6)
        return
    try:
        with app.suspend():
            answer = subprocess.run(command, check=False, env=dict(os.environ))
    except Exception as exc:  # SuspendNotSupported (headless, some drivers) or a player that cannot start
        app.notify(f"cannot play here: {one_line(str(exc) or type(exc).__name__, limit=120)}",
                   severity="error", timeout=6)
        return
    app.refresh(layout=True)
    if answer.returncode not in (0, None):
        app.notify(f"{os.path.basename(command[0])} ended with status {answer.returncode}",
                   severity="warning", timeout=4)
