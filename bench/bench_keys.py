"""Responsiveness: keypress-to-repaint latency of the job table while 500 jobs poll and change.

The dashboard runs under Textual's Pilot (headless, 120x40) on a history of `--history` jobs
whose newest `--pending` are running on a simulator in another process; the simulator flips
their status every `--flip-every` seconds, so polls keep changing rows while keys are
pressed. Each of `--presses` key presses (down and up in turn, at uneven intervals so they
land at every phase of the poll and clock work) is timed from the moment Pilot sends it to
the first frame whose table shows the cursor on its new row; the frame is rendered to
terminal bytes as a real terminal would get it.

The baseline is the bare Textual app (Header, Input, DataTable with `--pending` rows, Footer)
driven the same way with nothing else going on.

    python bench/bench_keys.py                                   # 150 presses
    python bench/bench_keys.py --presses 10 --warmup 1 --history 100 --pending 20   # smoke size
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import bare_app_class, percentile, timed_key, watch_frames, machine, summary, table  # noqa: E402
from _workload import TERMINAL_SIZE, Workload  # noqa: E402

TARGET_P95 = 0.050


async def press_and_time(app, pilot, frames, presses: int, cursor: Callable[[], int | None],
                         seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    latencies = []
    for i in range(presses):
        before = cursor() or 0
        key, expected = ("down", before + 1) if i % 2 == 0 else ("up", before - 1)
        latencies.append(await timed_key(pilot, frames, key, expected, "the cursor on its new row", timeout=5))
        await asyncio.sleep(rng.uniform(0.01, 0.06))
    return latencies


async def measure_bare(rows: int, presses: int) -> list[float]:
    from textual.widgets import DataTable

    app = bare_app_class(rows=rows)()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        data_table = app.query_one(DataTable)
        data_table.focus()
        await pilot.pause()
        frames = watch_frames(app, lambda: data_table.cursor_row)
        return await press_and_time(app, pilot, frames, presses, lambda: data_table.cursor_row)


async def measure_ours(load: Workload, presses: int, warmup: float) -> tuple[list[float], int]:
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable

    app = HailuoApp(load.settings(), freeze_history=True)  # as run_app starts it
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        job_table = app.query_one(JobTable)
        job_table.focus()
        await asyncio.sleep(warmup)  # polling under way
        before = await asyncio.to_thread(load.gets)
        frames = watch_frames(app, lambda: job_table.cursor_row)
        latencies = await press_and_time(app, pilot, frames, presses, lambda: job_table.cursor_row)
        polls = await asyncio.to_thread(load.gets) - before
        await app.close_service()
    return latencies, polls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=150)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of polling before the first press")
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=500)
    parser.add_argument("--flip-every", type=float, default=5.0, help="status flip period on the simulator")
    args = parser.parse_args(argv)

    print(f"Keypress to repaint, {args.presses} presses, Pilot at {TERMINAL_SIZE[0]}x{TERMINAL_SIZE[1]} "
          f"({machine()})", flush=True)
    bare = asyncio.run(measure_bare(args.pending, args.presses))
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp:
        with Workload(Path(tmp), history=args.history, pending=args.pending, flip_every=args.flip_every) as load:
            ours, polls = asyncio.run(measure_ours(load, args.presses, args.warmup))
    rows = []
    for label, values in (("bare app (DataTable), idle", bare),
                          (f"ours, {args.pending} pending polling and changing", ours)):
        rows.append([label, f"{percentile(values, 0.5) * 1000:.1f} ms", f"{percentile(values, 0.95) * 1000:.1f} ms",
                     f"{max(values) * 1000:.1f} ms"])
    print(table(rows, ["case", "p50", "p95", "max"]))
    print(f"(ours: {polls} result queries answered while keys were pressed)")
    b95, o95 = percentile(bare, 0.95), percentile(ours, 0.95)
    b50, o50 = percentile(bare, 0.5), percentile(ours, 0.5)
    summary("keypress to repaint: p50", f"{b50 * 1000:.1f} ms", f"{o50 * 1000:.1f} ms", f"{o50 / b50:.2f}x", "-", None)
    summary("keypress to repaint: p95", f"{b95 * 1000:.1f} ms", f"{o95 * 1000:.1f} ms", f"{o95 / b95:.2f}x",
            f"<= {TARGET_P95 * 1000:.0f} ms", o95 <= TARGET_P95)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
