"""Selected job to frames on screen: the clip local (saved or in the preview cache), and not local (fetched first).

Pilot at 160x45 on a history of 50,000 jobs whose completed ones point at the simulator's
clips (distinct per prompt, as in the demo). For each of `--jobs` jobs never shown before:
select it in the table, then wait for the first screen update after the detail pane's strip
drew that job's frames (the first, middle and last come first, the other two after). Measured
from the selection to that update; also to the app idle again (Pilot's pause: every frame
decoded and drawn, the process no longer busy — the simulator runs in this process too). Also counts the clips decoded while the whole
history was loaded and shown (nothing but the one selected job should be). The baseline is
`read_preview` alone on the same clip (the decode's floor).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, summary, table  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

TARGET = 0.200
SIZE = (160, 45)


def _history(path: Path, n: int, sim, shown: int) -> list[str]:
    """n jobs; the newest `shown` completed ones are real simulator jobs (their clips are served)."""
    from tui.core.records import Job
    from tui.core.store import HistoryStore

    from _common import make_job_docs

    docs = make_job_docs(n)
    picked: list[str] = []
    for doc in reversed(docs):
        if len(picked) == shown:
            break
        if doc.get("status") != "completed":
            continue
        server_id = sim.seed_job(status="completed", prompt=doc["request"]["prompt"])
        doc["server_id"] = server_id
        doc["outputs"] = [f"{sim.base_url}/files/{server_id}.mp4"]
        picked.append(doc["local_id"])
    store = HistoryStore.open(path)
    try:
        for doc in docs:
            store.put(Job.from_doc(doc))
        store.flush()
    finally:
        store.close()
    return picked


async def _measure(tmp: Path, history: int, jobs: int) -> dict[str, list[float] | int]:
    from tui.core import previews as previews_module
    from tui.core.config import Settings
    from tui.core.frame_cache import cache_key
    from tui.simulator import Simulator
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.frame_strip import FrameStrip
    from tui.ui.widgets.job_table import JobTable

    decoded: list[Path] = []
    real_read = previews_module.read_preview

    def counting_read(path, **options):
        decoded.append(Path(path))
        return real_read(path, **options)

    previews_module.read_preview = counting_read
    with Simulator(job_seconds=3600, distinct_videos=True, seed=1) as sim:
        picked = _history(tmp / "history.json", history, sim, 2 * jobs)
        local, remote = picked[:jobs], picked[jobs:]
        settings = Settings(api_key="bench-key-0000000000000", base_url=sim.base_url, db_path=tmp / "history.json",
                            config_file=tmp / "config.toml", download_dir=tmp / "downloads",
                            cache_dir=tmp / "cache", preview="blocks")
        # As the dashboard runs (run_app): the loaded history out of the garbage collector's reach.
        app = HailuoApp(settings, poll=False, freeze_history=True)
        floor: list[float] = []
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.wait_for(app.ready.wait(), 600)
            table_ = app.query_one(JobTable)
            at_start = len(set(decoded))  # clips (a clip is read twice: its first frames, then the rest)
            # "Local": the clip already in the cache directory (as a saved download would be).
            for local_id in local:
                job = app.service.store.get(local_id)
                clip = settings.cache_dir / "videos" / f"{cache_key(local_id, job.outputs[0])}.mp4"
                clip.parent.mkdir(parents=True, exist_ok=True)
                clip.write_bytes(sim.video_for(job.server_id))
                started = time.perf_counter()
                real_read(clip, count=previews_module.FRAMES_PER_CLIP)
                floor.append(time.perf_counter() - started)
            strip = app.query_one("#detail #frames", FrameStrip)
            detail = app.query_one("#detail")
            # "On screen": the first screen update handed to the driver after the strip drew the
            # selected job's frames (headless, so the terminal's own write is not counted).
            watch: dict = {"wanted": None, "drawn": False, "shown": asyncio.Event()}
            real_render, real_display = strip.render, app._display

            def render():
                drawn = real_render()
                if strip.preview is not None and detail.job is not None and detail.job.local_id == watch["wanted"]:
                    watch["drawn"] = True
                return drawn

            def display(screen, renderable) -> None:
                real_display(screen, renderable)
                if renderable is not None and watch["drawn"]:
                    watch["shown"].set()

            strip.render, app._display = render, display

            async def time_selection(local_id: str) -> tuple[float, float]:
                watch.update(wanted=local_id, drawn=False)
                watch["shown"].clear()
                started = time.perf_counter()
                assert table_.select(local_id)
                await asyncio.wait_for(watch["shown"].wait(), 60)
                on_screen = time.perf_counter() - started
                await pilot.pause()  # until the app is idle (the rest of the frames decoded and drawn)
                return on_screen, time.perf_counter() - started

            results = {"local": [], "remote": [], "local_idle": [], "remote_idle": []}
            for name, ids in (("local", local), ("remote", remote)):
                for local_id in ids:
                    if detail.job is not None and detail.job.local_id == local_id:
                        continue  # selected at start-up: already on screen, not a measurement
                    on_screen, idle = await time_selection(local_id)
                    results[name].append(on_screen)
                    results[f"{name}_idle"].append(idle)
        previews_module.read_preview = real_read
        return {**results, "floor": floor, "at_start": at_start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=15, help="jobs timed in each case")
    args = parser.parse_args(argv)
    print(f"Selected job to frames on screen, history of {args.history:,} jobs, Pilot at {SIZE[0]}x{SIZE[1]} "
          f"({machine()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
        figures = asyncio.run(_measure(Path(tmp), args.history, args.jobs))
    rows = []
    for label, key in (("decode alone (read_preview)", "floor"), ("clip local: frames on screen", "local"),
                       ("clip local: app idle again", "local_idle"),
                       ("clip fetched first: frames on screen", "remote"),
                       ("clip fetched first: app idle again", "remote_idle")):
        values = figures[key]
        rows.append([label, f"{statistics.median(values) * 1000:.1f} ms", f"{percentile(values, 0.95) * 1000:.1f} ms",
                     f"{max(values) * 1000:.1f} ms"])
    print(table(rows, ["case", "median", "p95", "max"]))
    print(f"clips decoded while {args.history:,} jobs were loaded and shown: {figures['at_start']} "
          "(the job selected at start-up)")
    floor = statistics.median(figures["floor"])
    for label, key in (("selected job to frames on screen: file local (p95)", "local"),
                       ("selected job to frames on screen: not local (p95)", "remote")):
        ours = percentile(figures[key], 0.95)
        summary(label, f"{floor * 1000:.1f} ms", f"{ours * 1000:.1f} ms", f"{ours / floor:.2f}x",
                f"<= {TARGET * 1000:.0f} ms" if key == "local" else "-", ours <= TARGET if key == "local" else None)
    summary(f"clips decoded at start-up, {args.history:,} jobs", "0", str(figures["at_start"]), "-",
            "<= 1 (the selected job)", figures["at_start"] <= 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
