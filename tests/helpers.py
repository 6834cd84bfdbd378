"""Small helpers the reliability tests share (import: `from helpers import ...`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from tui.core.config import Settings

#: Poll fast: a whole job lifecycle takes a fraction of a second against the simulator.
FAST_POLLING = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0)


async def until(predicate: Callable[[], Any], timeout: float = 60.0, *, pilot: Any = None, what: object = "") -> None:
    """Wait until `predicate()` is true: on a Pilot (so the app runs meanwhile) or on the loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout:g}s {what}".rstrip())
        if pilot is not None:
            await pilot.pause(0.02)
        else:
            await asyncio.sleep(0.02)


def app_settings(tmp_path: Path, sim: Any, key: str, **changes: Any) -> Settings:
    """Settings for a dashboard on the simulator, every path inside `tmp_path`."""
    values = dict(api_key=key, base_url=sim.base_url, db_path=tmp_path / "history.json",
                  config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads",
                  cache_dir=tmp_path / "cache", **FAST_POLLING)
    values.update(changes)
    return Settings(**values)


def toasts(app: Any) -> list[str]:
    """Every toast the app has raised, as its text, also those that already left the screen after
    their timeout (which a busy machine can pass before the test looks). Recorded by the
    `toasts_are_recorded` fixture in conftest.py."""
    return list(getattr(app, "_raised_toasts", []))


def toast_titles(app: Any) -> list[str]:
    """The titles of every toast the app has raised (see `toasts`)."""
    return list(getattr(app, "_raised_toast_titles", []))


def posts(sim: Any) -> list:
    return [r for r in sim.requests if r.method == "POST"]


async def submit_from_the_composer(app: Any, pilot: Any, prompt: str) -> tuple[Any, Any]:
    """Once the dashboard is ready: type a prompt, ctrl+s, and wait until the server gave the
    job its id. Returns the job table (focused) and the job."""
    from textual.widgets import TextArea

    from tui.ui.widgets.job_table import JobTable

    await asyncio.wait_for(app.ready.wait(), 60)
    app.query_one("#prompt", TextArea).text = prompt
    await pilot.press("ctrl+s")
    table = app.query_one(JobTable)
    await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id is not None, pilot=pilot)
    table.focus()
    return table, table.visible_jobs()[0]


async def copy_from_the_menu(app: Any, pilot: Any, choice: str) -> str:
    """Press `y` on the selected job, pick `choice` ("id", "output", "request", "curl"...) in the
    copy menu, and return what reached the clipboard."""
    from textual.widgets import OptionList

    await pilot.press("y")
    await pilot.pause()
    options = app.screen.query_one("#copy-choices", OptionList)
    options.highlighted = [o.id for o in options._options].index(choice)
    await pilot.press("enter")
    await pilot.pause()
    return app.clipboard
