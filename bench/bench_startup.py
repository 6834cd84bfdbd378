"""Start-up: process start to the first frame of the main screen, against a bare Textual app.

Both are fresh headless child processes started the same way (`python bench/bench_startup.py
--child ...`), timed by the parent from spawn. The bare app is Header, Input, DataTable (one
row), Footer. Ours is the real entry point (`hailuo-tui --db PATH`, through the CLI) on a
history of N jobs written by the real store. Figures per child:

- first frame: Textual's Ready event (the first frame of the screen has been displayed);
- newest jobs shown: the first frame that paints jobs in the table (the newest few hundred are
  read from the head of the history first);
- history shown: the first frame that paints the table holding the whole history (ours only;
  the history is read off the event loop, so the screen is up before it is);
- peak RSS: the child's high-water mark once it is fully started, history shown and request
  form built (VmHWM).

    python bench/bench_startup.py                           # 0, 10k, 50k jobs, median of 3
    python bench/bench_startup.py --sizes 0,200 --repeat 1  # smoke size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    bare_app_class, history_bytes, machine, make_history, median, mib, ms, peak_rss_kib, report, run_child, status_kib, summary,
    table,
)

HEADLESS = "textual.drivers.headless_driver:HeadlessDriver"
START_TARGET = 1.3
#: The whole history usable (filter, sort, counts exact): the big-history target (bench_scale's too).
SHOWN_TARGET = 2.0
RSS_TARGET = 2.0


# -- children ------------------------------------------------------------------------------------


def child_bare() -> None:
    def ready(app) -> None:
        report(ready_at=time.time(), shown_at=time.time(), peak_kib=peak_rss_kib(), rss_kib=status_kib("VmRSS"))
        app.exit()

    bare_app_class(ready)().run(headless=True)


def child_ours(db: str) -> None:
    """The real CLI entry point, with the app and its job table wrapped to note their frames."""
    import tui.ui.app as app_module
    from tui.ui.widgets.job_table import JobTable

    marks: dict[str, float] = {}

    class TimedApp(app_module.HailuoApp):
        def on_ready(self) -> None:  # runs before the app's own handler
            marks["ready_at"] = time.time()

        async def _service_opened(self, service) -> None:
            await super()._service_opened(service)
            self.call_after_refresh(self._report_and_quit)

        def _report_and_quit(self) -> None:
            report(**marks, painted={str(n): at for n, at in painted.items()}, jobs=max(painted, default=0),
                   peak_kib=peak_rss_kib(), rss_kib=status_kib("VmRSS"))
            self.call_later(self.action_quit)

    render_line = JobTable.render_line
    painted: dict[int, float] = {}  # jobs in the table -> when a line of it was first painted

    def noting_render_line(table: JobTable, y: int):
        painted.setdefault(table.total_count, time.time())
        return render_line(table, y)

    JobTable.render_line = noting_render_line
    app_module.HailuoApp = TimedApp
    sys.argv = ["hailuo-tui", "--db", db]
    from tui.cli.main import main

    main()


# -- parent --------------------------------------------------------------------------------------


def child_env(tmp: Path) -> dict[str, str]:
    """Headless, a fake key and a closed loopback port: nothing is pending, so nothing is asked."""
    return {"TEXTUAL_DRIVER": HEADLESS, "GPTPROTO_API_KEY": "sk-bench-0000000000",
            "GPTPROTO_BASE_URL": "http://127.0.0.1:9", "HAILUO_TUI_DATA_DIR": str(tmp / "data"),
            "HAILUO_TUI_CONFIG": str(tmp / "none.toml")}


def make_histories(tmp: Path, sizes: list[int]) -> dict[int, Path]:
    paths = {}
    for n in sorted(set(sizes)):
        started = time.perf_counter()
        paths[n] = make_history(tmp / f"h{n}" / "history.json", n)
        print(f"  (history of {n:,} jobs written in {time.perf_counter() - started:.1f} s, "
              f"{history_bytes(paths[n]) / 1e6:.1f} MB)", flush=True)
    return paths


def measure(sizes: list[int], repeat: int, tmp: Path) -> dict[str, list[dict]]:
    """{"bare": [...], n: [...]} runs, interleaved so drift in machine load hits every case alike."""
    paths = make_histories(tmp, sizes)
    env = child_env(tmp)
    # One unmeasured start of each fills the bytecode cache (see _common.child_environ).
    run_child([__file__, "--child", "bare"], env=env)
    run_child([__file__, "--child", "ours", "--db", str(paths[min(sizes)])], env=env)
    results: dict = {"bare": [], **{n: [] for n in sizes}}
    for _ in range(repeat):
        results["bare"].append(run_child([__file__, "--child", "bare"], env=env))
        for n in sizes:
            run = run_child([__file__, "--child", "ours", "--db", str(paths[n])], env=env)
            if run["jobs"] != n:
                raise RuntimeError(f"the table showed {run['jobs']} jobs, expected {n}")
            # From the painted frames: the first with any job, and the first with all of them.
            painted = {int(count): at for count, at in run["painted"].items()}
            shown_at = painted[n]
            newest_at = min((at for count, at in painted.items() if count), default=shown_at)
            run["shown"] = shown_at - run["ready_at"] + run["seconds"]
            run["newest"] = newest_at - run["ready_at"] + run["seconds"]
            results[n].append(run)
    return results


def figures(runs: list[dict]) -> tuple[float, float, float, float]:
    """(first frame s, newest jobs shown s, history shown s, peak KiB): medians of time, the largest peak."""
    first = median([r["seconds"] for r in runs])
    newest = median([r.get("newest", r["seconds"]) for r in runs])
    shown = median([r.get("shown", r["seconds"]) for r in runs])
    return first, newest, shown, max(r["peak_kib"] for r in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["bare", "ours"])
    parser.add_argument("--db")
    parser.add_argument("--sizes", default="0,10000,50000", help="history sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child == "bare":
        child_bare()
        return 0
    if args.child == "ours":
        child_ours(args.db)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"Start-up, headless, median of {args.repeat} ({machine()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        results = measure(sizes, args.repeat, Path(tmp))
    bare_first, _, _, bare_peak = figures(results["bare"])
    rows = [["bare app", ms(bare_first), "1.00x", "", "", "", "", mib(bare_peak), "1.00x"]]
    for n in sizes:
        first, newest, shown, peak = figures(results[n])
        rows.append([f"ours, {n:,} jobs", ms(first), f"{first / bare_first:.2f}x", ms(newest),
                     f"{newest / bare_first:.2f}x", ms(shown), f"{shown / bare_first:.2f}x", mib(peak),
                     f"{peak / bare_peak:.2f}x"])
    print(table(rows, ["case", "first frame", "vs bare", "newest jobs shown", "vs bare", "history shown", "vs bare",
                       "peak RSS", "vs bare"]))
    largest = max(sizes)
    first, newest, shown, peak = figures(results[largest])
    label = f"start-up, {largest:,} jobs"
    summary(f"{label}: first frame", ms(bare_first), ms(first), f"{first / bare_first:.2f}x",
            f"<= {START_TARGET}x", first / bare_first <= START_TARGET)
    summary(f"{label}: newest jobs shown", ms(bare_first), ms(newest), f"{newest / bare_first:.2f}x",
            f"<= {START_TARGET}x (the first frame's target, applied to the first screen of jobs)",
            newest / bare_first <= START_TARGET)
    summary(f"{label}: history shown", ms(bare_first), ms(shown), f"{shown / bare_first:.2f}x",
            f"<= {SHOWN_TARGET}x", shown / bare_first <= SHOWN_TARGET)
    summary(f"{label}: peak RSS", mib(bare_peak), mib(peak), f"{peak / bare_peak:.2f}x",
            f"<= {RSS_TARGET}x", peak / bare_peak <= RSS_TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
