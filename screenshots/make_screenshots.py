"""Regenerate screenshots/*.svg from the real dashboard, headless, against the loopback simulator.

    python screenshots/make_screenshots.py

The history is seeded with fixed jobs and the clock is frozen so the pictures only change when
the interface does. Polling is off for the same reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tui.ui.app import HailuoApp  # noqa: E402
from tui.core.config import Settings  # noqa: E402
from tui.simulator.demo import DEMO_KEY, sample_jobs, write_history  # noqa: E402

FROZEN_NOW = 1_790_000_000.0  # a fixed moment, so "5m ago" never changes
#: Files the downloads and batch pictures show by name: a fixed place, so their paths do not change.
WORK = Path(tempfile.gettempdir()) / "hailuo-tui-screenshots"

Steps = Callable[[HailuoApp, Any, Any], Awaitable[None]]


def make_app(base_url: str, data_dir: Path) -> HailuoApp:
    settings = Settings(api_key=DEMO_KEY, base_url=base_url, db_path=data_dir / "history.json",
                        config_file=data_dir / "config.toml", download_dir=WORK / "downloads", submit_rate=3.0)
    return HailuoApp(settings, clock=lambda: FROZEN_NOW, poll=False)


async def shoot(simulator: Any, data_dir: Path, name: str, size: tuple[int, int], keys: list[str],
                steps: Steps | None = None) -> Path:
    app = make_app(simulator.base_url, data_dir)
    async with app.run_test(size=size, notifications=True) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await pilot.pause()
        for key in keys:
            if key == CLEAR_TOASTS:
                app.clear_notifications()
            else:
                await pilot.press(key)
            await pilot.pause()
        if steps is not None:
            await steps(app, pilot, simulator)
        await pilot.pause(0.3)  # let the debounced validation land
        app.save_screenshot(f"{name}.svg", path=str(HERE))
    return HERE / f"{name}.svg"


async def _until(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise RuntimeError("the screen did not reach the state to capture")
        await pilot.pause(0.05)


async def downloading(app: HailuoApp, pilot: Any, simulator: Any) -> None:
    """One job saved (its toast), the next one half way, with its bar."""
    await pilot.press("d")  # the waves job, two outputs, at full speed
    await _until(pilot, lambda: any("saved to" in str(n.message) for n in app._notifications))
    simulator.faults.file_chunk_delay = 0.5
    await pilot.press("j", "d")  # the fox, slowly
    await _until(pilot, lambda: any(p.received >= 3072 for p in app.downloads.values()))


async def batch_errors(app: HailuoApp, pilot: Any, simulator: Any) -> None:
    await _check(app, pilot, "shots.csv")


async def batch_run(app: HailuoApp, pilot: Any, simulator: Any) -> None:
    await _check(app, pilot, "storyboard.jsonl")
    await pilot.press("ctrl+s")
    await _until(pilot, lambda: app.batch is not None and app.batch.summary is not None)


async def _check(app: HailuoApp, pilot: Any, name: str) -> None:
    box = app.screen.query_one("#batch-path")
    box.value = name
    box.focus()
    await pilot.press("enter")
    await _until(pilot, lambda: "checking" not in str(app.screen.query_one("#batch-headline").render()))


def prepare_files(simulator: Any) -> None:
    """The batch files, and a clean download folder."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "shots.csv").write_text(
        "prompt,model,duration,resolution\n"
        "A red fox trotting through fresh snow at dawn,hailuo-2.3-fast,6,768P\n"
        "Waves breaking over black volcanic rocks,hailuo-2.3-pro,10,1080P\n"
        "A paper boat drifting down a rain-soaked gutter,hailuo-02-standard,6,1080P\n"
        "A glass greenhouse as clouds race overhead,hailuo-02-fast,8,\n"
        ",hailuo-2.3-fast,6,\n", encoding="utf-8")
    rows = [
        {"prompt": "Storyboard 1: a lighthouse keeper climbs the spiral stairs at dusk"},
        {"prompt": "Storyboard 2: the lamp turns, its beam sweeping over a dark sea", "model": "hailuo-2.3-pro"},
        {"prompt": "Storyboard 3: a fishing boat answers with a flashing light", "duration": 10},
        {"prompt": f"Storyboard 4: a {simulator.faults.policy_word} scene the content policy refuses"},
        {"prompt": "Storyboard 5: dawn over the harbour, gulls circling", "model": "hailuo-02-fast"},
    ]
    (WORK / "storyboard.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def seeded_jobs(simulator: Any) -> list[Any]:
    """The sample jobs, the two completed ones pointing at the simulator's real video files."""
    jobs = sample_jobs(FROZEN_NOW)
    for job in jobs:
        if job.outputs:
            job.outputs = [f"{simulator.base_url}/files/{job.server_id}{'' if len(job.outputs) == 1 else f'-{i}'}.mp4"
                           for i in range(1, len(job.outputs) + 1)]
    return jobs


CLEAR_TOASTS = "clear toasts"  # not a key: drops the toasts the keys before it raised

SHOTS: list[tuple[str, tuple[int, int], list[str], Steps | None]] = [
    ("main-wide", (160, 45), [], None),
    ("main-80x24", (80, 24), [], None),
    ("detail-completed", (160, 45), ["j", "j", "j", "j"], None),
    ("composer-errors", (80, 24), ["n", "ctrl+s"], None),
    ("help", (100, 40), ["question_mark"], None),
    ("compare", (120, 40), ["G", "m", "k", "k", "equals_sign", CLEAR_TOASTS], None),
    ("stats", (160, 45), ["t"], None),
    ("downloads", (160, 45), ["j", "j", "j", "j"], downloading),
    ("batch-errors", (160, 45), ["b"], batch_errors),
    ("batch", (160, 45), ["b"], batch_run),
]


async def main() -> None:
    from tui.simulator import Simulator

    with Simulator(job_seconds=20, seed=7) as simulator:
        prepare_files(simulator)
        os.chdir(WORK)  # batch files are typed as relative paths
        for name, size, keys, steps in SHOTS:
            simulator.faults.file_chunk_delay = 0.0
            with tempfile.TemporaryDirectory() as tmp:
                jobs = seeded_jobs(simulator) if name == "downloads" else sample_jobs(FROZEN_NOW)
                write_history(Path(tmp) / "history.json", jobs)
                path = await shoot(simulator, Path(tmp), name, size, keys, steps)
                print(path)


if __name__ == "__main__":
    asyncio.run(main())
