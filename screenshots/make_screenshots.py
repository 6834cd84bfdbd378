"""Regenerate screenshots/*.svg from the real dashboard, headless, against the loopback simulator.

    python screenshots/make_screenshots.py

The history is seeded with fixed jobs and the clock is frozen so the pictures only change when
the interface does. Polling is off for the same reason.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tui.app import HailuoApp  # noqa: E402
from tui.config import Settings  # noqa: E402
from tui.demo import DEMO_KEY, sample_jobs, write_history  # noqa: E402

FROZEN_NOW = 1_790_000_000.0  # a fixed moment, so "5m ago" never changes


def make_app(base_url: str, data_dir: Path) -> HailuoApp:
    settings = Settings(api_key=DEMO_KEY, base_url=base_url, db_path=data_dir / "history.json",
                        config_file=data_dir / "config.toml", download_dir=data_dir / "downloads")
    return HailuoApp(settings, clock=lambda: FROZEN_NOW, poll=False)


async def shoot(base_url: str, data_dir: Path, name: str, size: tuple[int, int], keys: list[str]) -> Path:
    app = make_app(base_url, data_dir)
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.ready.wait(), 10)
        await pilot.pause()
        for key in keys:
            if key == CLEAR_TOASTS:
                app.clear_notifications()
            else:
                await pilot.press(key)
            await pilot.pause()
        await pilot.pause(0.3)  # let the debounced validation land
        app.save_screenshot(f"{name}.svg", path=str(HERE))
    return HERE / f"{name}.svg"


CLEAR_TOASTS = "clear toasts"  # not a key: drops the toasts the keys before it raised

SHOTS = [
    ("main-wide", (160, 45), []),
    ("main-80x24", (80, 24), []),
    ("detail-completed", (160, 45), ["j", "j", "j", "j"]),
    ("composer-errors", (80, 24), ["n", "ctrl+s"]),
    ("help", (100, 40), ["question_mark"]),
    ("compare", (120, 40), ["G", "m", "k", "k", "equals_sign", CLEAR_TOASTS]),
    ("stats", (160, 45), ["t"]),
]


async def main() -> None:
    from tui.simulator import Simulator

    with Simulator(job_seconds=20, seed=7) as simulator:
        for name, size, keys in SHOTS:
            with tempfile.TemporaryDirectory() as tmp:
                write_history(Path(tmp) / "history.json", sample_jobs(FROZEN_NOW))
                path = await shoot(simulator.base_url, Path(tmp), name, size, keys)
                print(path)


if __name__ == "__main__":
    asyncio.run(main())
