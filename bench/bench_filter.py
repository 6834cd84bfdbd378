"""Filter as you type and sort on a big history: keystroke to the frame that shows the result.

The dashboard runs under Textual's Pilot (headless, 120x40) on a history of `--sizes` jobs, all
finished (nothing polls). Once the whole history is in the table:

- filter: `/`, then queries typed one key at a time and taken back one backspace at a time
  (each key extends or shortens the query), then Escape. Each key is timed from the moment Pilot
  sends it to the first frame whose table shows the new query's rows and match count; both are
  checked against a plain scan of the jobs made by this script beforehand (the count exact, the
  first row the newest matching job).
- sort: `s` through every sort column and back, then `S` (reverse) twice; each timed to the first
  frame whose table is sorted by the new column with the expected job on top.

Frames are rendered to terminal bytes as a real terminal would get them. The baseline is the
bare Textual app (Header, Input, DataTable, Footer) driven the same way: a key typed into its
Input, to the frame showing it there (the floor any keystroke pays). Peak RSS (VmHWM) is read
after the history is shown and again after all the filtering and sorting (what the filter's and
the sort's indexes add).

    python bench/bench_filter.py                                # 50,000 and 200,000 jobs
    python bench/bench_filter.py --sizes 300 --rounds 1         # smoke size
    python bench/bench_filter.py --histories /tmp/filter-hist   # keep the generated histories for the next run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import bare_app_class, percentile, timed_key, watch_frames, child_environ, machine, make_history, status_kib, summary, table  # noqa: E402
from _workload import KEY, TERMINAL_SIZE  # noqa: E402

#: Keystroke to frame, p95, by history size (the targets; sizes in between take the larger one).
FILTER_TARGETS = {50_000: 0.050, 200_000: 0.100}
SORT_TARGET = 0.100
VERBOSE = False  # at 50,000 jobs; reported at every size
#: Typed a key at a time, then taken back a key at a time: narrowing, then widening results.
QUERIES = ("fox snow 7", "hailuo-2.3-pro bee", "failed 12")


# -- what the table must show, worked out apart from the table ----------------------------------------


def expected_filters(jobs, queries) -> dict[str, tuple[int, str | None]]:
    """(match count, newest matching job's local id) for every prefix of every query."""
    from tui.core.text import inert

    haystacks = [(job.submitted_at, job.local_id,
                  inert(f"{job.display_id} {job.local_id} {job.model} {job.status} {job.prompt}").lower())
                 for job in jobs]
    haystacks.sort(reverse=True)  # newest first, as the table shows them by default
    expected: dict[str, tuple[int, str | None]] = {}
    for query in queries:
        for end in range(1, len(query) + 1):
            text = query[:end]
            if text in expected:
                continue
            words = text.lower().split()
            matches = [local_id for _t, local_id, hay in haystacks if all(w in hay for w in words)]
            expected[text] = (len(matches), matches[0] if matches else None)
    return expected


def expected_sorts(jobs) -> list[tuple[str, str, bool, str]]:
    """(key pressed, column, reversed, local id on top) for `s` through every column, then `S` twice."""
    from tui.ui.widgets.job_table import _DEFAULT_REVERSE, SORT_COLUMNS, _sort_key_function

    def top(column: str, reverse: bool) -> str:
        key_of = _sort_key_function(column)
        pick = max if reverse else min
        return pick(jobs, key=key_of).local_id

    steps = []
    columns = list(SORT_COLUMNS[1:]) + [SORT_COLUMNS[0]]
    for column in columns:
        reverse = _DEFAULT_REVERSE.get(column, False)
        steps.append(("s", column, reverse, top(column, reverse)))
    last_column, last_reverse = columns[-1], _DEFAULT_REVERSE.get(columns[-1], False)
    for _ in range(2):
        last_reverse = not last_reverse
        steps.append(("S", last_column, last_reverse, top(last_column, last_reverse)))
    return steps


def expectations(db: str) -> tuple[dict, list]:
    from tui.core.store import HistoryStore

    store = HistoryStore.open(db, read_only=True)
    try:
        jobs = list(store.all())
    finally:
        store.close()
    return expected_filters(jobs, QUERIES), expected_sorts(jobs)


# -- runs ----------------------------------------------------------------------------------------------


def dashboard_env(tmp: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in child_environ().items() if not k.startswith(("TEXTUAL", "GPTPROTO", "HAILUO"))}
    env.update({"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": "http://127.0.0.1:9", "HAILUO_TUI_DB": str(db),
                "HAILUO_TUI_DATA_DIR": str(tmp / "data"), "HAILUO_TUI_CONFIG": str(tmp / "none.toml")})
    return env


async def measure_bare(presses: int) -> list[float]:
    from textual.widgets import Input

    app = bare_app_class(rows=1)()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        box = app.query_one(Input)
        box.focus()
        await pilot.pause()
        frames = watch_frames(app, lambda: box.value)
        latencies = []
        text = ""
        for i in range(presses):
            query = QUERIES[i % len(QUERIES)]
            char = query[len(text) % len(query)]
            key = "space" if char == " " else char
            text += char
            latencies.append(await timed_key(pilot, frames, key, text, "the typed text"))
    return latencies


async def measure_ours(db: Path, tmp: Path, size: int, rounds: int) -> dict[str, object]:
    from tui.core.config import load_settings
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable

    # Worked out in a child process, so that its memory is not counted in this one's peak.
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        filters, sorts = pool.apply(expectations, (str(db),))

    settings = load_settings(env=dashboard_env(tmp, db))
    app = HailuoApp(settings, freeze_history=True)  # as run_app starts it
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await asyncio.wait_for(app.ready.wait(), 300)
        job_table = app.query_one(JobTable)
        while job_table.total_count < size:
            await asyncio.sleep(0.05)
        await pilot.pause()
        rss_shown = status_kib("VmHWM") or 0

        def top_id() -> str | None:
            shown = job_table.visible_jobs(0, 1)
            return shown[0].local_id if shown else None

        def filter_state() -> tuple[str, str | None]:
            return job_table.filter_summary, top_id()

        def sort_state() -> tuple[str, bool, str | None]:
            return job_table.sort_column, job_table.sort_reverse, top_id()

        typed: list[float] = []
        first_keys: list[float] = []
        for _ in range(rounds):
            for query in QUERIES:
                job_table.focus()
                await pilot.press("slash")
                await pilot.pause()
                frames = watch_frames(app, filter_state)
                for end in range(1, len(query) + 1):  # typed
                    count, first = filters[query[:end]]
                    char = query[end - 1]
                    latency = await timed_key(pilot, frames, "space" if char == " " else char,
                                              (f"{count} of {size} jobs match", first), f"'{query[:end]}'")
                    (first_keys if end == 1 else typed).append(latency)
                    if VERBOSE:
                        print(f"  {query[:end]!r}: {latency * 1000:.1f} ms", flush=True)
                for end in range(len(query) - 1, 0, -1):  # taken back
                    count, first = filters[query[:end]]
                    typed.append(await timed_key(pilot, frames, "backspace", (f"{count} of {size} jobs match", first),
                                                 f"'{query[:end]}'"))
                    if VERBOSE:
                        print(f"  back to {query[:end]!r}: {typed[-1] * 1000:.1f} ms", flush=True)
                await pilot.press("escape")  # clears the query
                await pilot.press("escape")  # leaves the box
                while job_table.filter_text or job_table.filter_summary:
                    await asyncio.sleep(0.01)
                del app._display  # back to the class's

        job_table.focus()
        await pilot.pause()
        sort_times: list[float] = []
        for _ in range(rounds):
            frames = watch_frames(app, sort_state)
            for key, column, reverse, first in sorts:
                sort_times.append(await timed_key(pilot, frames, key, (column, reverse, first),
                                                  f"sorted by {column}"))
                if VERBOSE:
                    print(f"  {key} {column}: {sort_times[-1] * 1000:.1f} ms", flush=True)
            del app._display  # back to the class's
            if job_table.sort_column != "submitted" or not job_table.sort_reverse:
                job_table.sort_reverse = True
                await pilot.pause()
        rss_after = status_kib("VmHWM") or 0
        await app.close_service()
    return {"typed": typed, "first": first_keys, "sort": sort_times, "rss_shown": rss_shown, "rss_after": rss_after}


def history_for(size: int, folder: Path) -> Path:
    path = folder / f"history-{size}.json"
    if not path.exists():
        started = time.perf_counter()
        make_history(path, size)
        print(f"(history of {size:,} jobs written in {time.perf_counter() - started:.0f} s)", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,200000")
    parser.add_argument("--rounds", type=int, default=2, help="times every query and every sort is done")
    parser.add_argument("--histories", help="folder to keep generated histories in (reused when present)")
    parser.add_argument("--verbose", action="store_true", help="print every key's time")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"Filter as you type and sort, Pilot at {TERMINAL_SIZE[0]}x{TERMINAL_SIZE[1]} ({machine()}; "
          f"load average {os.getloadavg()[0]:.2f})", flush=True)
    presses = sum(len(q) for q in QUERIES) * 2
    bare = asyncio.run(measure_bare(presses))
    b95 = percentile(bare, 0.95)
    rows = [["bare app: a key typed into its Input", f"{percentile(bare, 0.5) * 1000:.1f} ms",
             f"{b95 * 1000:.1f} ms", f"{max(bare) * 1000:.1f} ms"]]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-filter-") as tmp:
        folder = Path(args.histories) if args.histories else Path(tmp)
        for size in sizes:
            results[size] = asyncio.run(measure_ours(history_for(size, folder), Path(tmp), size, args.rounds))
            r = results[size]
            for label, values in ((f"{size:,} jobs: filter key (extends or shortens)", r["typed"]),
                                  (f"{size:,} jobs: filter, first key", r["first"]),
                                  (f"{size:,} jobs: sort key (s, S)", r["sort"])):
                rows.append([label, f"{percentile(values, 0.5) * 1000:.1f} ms",
                             f"{percentile(values, 0.95) * 1000:.1f} ms", f"{max(values) * 1000:.1f} ms"])
    print(table(rows, ["case", "p50", "p95", "max"]))
    for size, r in results.items():
        print(f"({size:,} jobs: peak RSS {r['rss_shown'] / 1024:.0f} MiB with the history shown, "
              f"{r['rss_after'] / 1024:.0f} MiB after filtering and sorting)")
    print(f"(load average after: {os.getloadavg()[0]:.2f})")
    for size, r in results.items():
        keys = r["typed"] + r["first"]
        target = next((t for s, t in sorted(FILTER_TARGETS.items()) if size <= s), max(FILTER_TARGETS.values()))
        p95 = percentile(keys, 0.95)
        summary(f"filter keystroke p95, {size:,} jobs", f"{b95 * 1000:.1f} ms", f"{p95 * 1000:.1f} ms",
                f"{p95 / b95:.2f}x", f"<= {target * 1000:.0f} ms", p95 <= target)
        s95 = percentile(r["sort"], 0.95)
        summary(f"sort key p95, {size:,} jobs", f"{b95 * 1000:.1f} ms", f"{s95 * 1000:.1f} ms", f"{s95 / b95:.2f}x",
                f"<= {SORT_TARGET * 1000:.0f} ms" if size <= 50_000 else "-",
                s95 <= SORT_TARGET if size <= 50_000 else None)
        summary(f"filter and sort: peak RSS, {size:,} jobs", f"{r['rss_shown'] / 1024:.0f} MiB (history shown)",
                f"{r['rss_after'] / 1024:.0f} MiB", f"{r['rss_after'] / max(1, r['rss_shown']):.2f}x", "no material growth",
                None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
