"""Small helpers the reliability tests share (import: `from helpers import ...`)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Callable

from tui.core.config import Settings

#: Poll fast: a whole job lifecycle takes a fraction of a second against the simulator.
FAST_POLLING = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0)


async def until(predicate: Callable[[], Any], timeout: float = 60.0, *, pilot: Any = None, what: object = "") -> None:
    """Wait until `predicate()` is true: on a Pilot (so the app runs meanwhile) or on the loop.
    `what` names the wait in the error; a callable is asked then (the state that explains it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"condition not reached in {timeout:g}s {said}".rstrip())
        if pilot is not None:
            await pilot.pause(0.02)
        else:
            await asyncio.sleep(0.02)


#: The key of the dashboards the tests build (any text of the right shape: the simulator takes it).
TEST_KEY = "test-key-0123456789abcd"
#: A base URL nothing listens on: for dashboards that never poll or send.
NOWHERE = "http://127.0.0.1:9"


def app_settings(tmp_path: Path, sim: Any = NOWHERE, key: str | None = TEST_KEY, **changes: Any) -> Settings:
    """Settings for a dashboard on the simulator (or a base URL), every path inside `tmp_path`."""
    base_url = sim if isinstance(sim, str) else sim.base_url
    values = dict(api_key=key, base_url=base_url, db_path=tmp_path / "history.json",
                  config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads",
                  cache_dir=tmp_path / "cache", **FAST_POLLING)
    values.update(changes)
    return Settings(**values)


async def started(app: Any, pilot: Any, timeout: float = 60.0) -> None:
    """Until the dashboard's service is open (history read, form built), then one more frame."""
    await asyncio.wait_for(app.ready.wait(), timeout)
    await pilot.pause()


def make_job(local_id: str = "local-1", *, status: str = "processing", server_id: str | None = None,
             prompt: str = "a red fox in snow", submitted_at: float = 1_767_225_600.0,
             request: dict[str, Any] | None = None, **fields: Any) -> Any:
    """A history record as a text-to-video submit of 2.3 fast makes it; `request` changes some of
    its request fields, `fields` the job's own."""
    from tui.core.records import Job

    wanted = {"model": "hailuo-2.3-fast", "scene": "text-to-video", "prompt": prompt, "duration": 6,
              "resolution": "768P", "prompt_expansion": True, "image": None, "end_image": None, **(request or {})}
    return Job(local_id=local_id, request=wanted, submitted_at=submitted_at, status=status, server_id=server_id,
               **fields)


def toasts(app: Any) -> list[str]:
    """Every toast the app has raised, as its text, also those that already left the screen after
    their timeout (which a busy machine can pass before the test looks). Recorded by the
    `toasts_are_recorded` fixture in conftest.py."""
    return list(getattr(app, "_raised_toasts", []))


def toast_titles(app: Any) -> list[str]:
    """The titles of every toast the app has raised (see `toasts`)."""
    return list(getattr(app, "_raised_toast_titles", []))


def child_env(key: str) -> dict[str, str]:
    """This environment for a `hailuo-tui` child process, with `key` as its API key and none of
    the caller's API address or history: the command line decides those."""
    env = {k: v for k, v in os.environ.items() if k not in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL", "HAILUO_TUI_DB")}
    env["GPTPROTO_API_KEY"] = key
    env["PYTHONUNBUFFERED"] = "1"
    return env


def posts(sim: Any) -> list:
    return [r for r in sim.requests if r.method == "POST"]


async def submit_from_the_composer(app: Any, pilot: Any, prompt: str) -> tuple[Any, Any]:
    """Once the dashboard is ready: type a prompt, ctrl+s, and wait until the server gave the
    job its id. Returns the job table (focused) and the job."""
    from textual.widgets import TextArea

    from tui.ui.widgets.composer import Composer
    from tui.ui.widgets.job_table import JobTable

    await asyncio.wait_for(app.ready.wait(), 60)
    composer = app.query_one("#composer", Composer)
    # As a user does it: the form takes the submit once it is there and open for it.
    await until(lambda: composer.disabled_reason is None, pilot=pilot, what="for the form to open")
    app.query_one("#prompt", TextArea).text = prompt
    app.query_one("#prompt", TextArea).focus()
    await pilot.press("ctrl+s")
    table = app.query_one(JobTable)

    def why() -> str:  # what a timeout reports: the form's note and the toasts say why nothing was sent
        return f"(form note: {composer.query_one('#submit-note').render()!s}; toasts: {toasts(app)})"

    await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id is not None, pilot=pilot,
                what=why)
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
