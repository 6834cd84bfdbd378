"""Benchmark of the job table: time to first frame and peak memory, then list work on 50,000 jobs.

    python bench/bench_table.py [--repeat 3] [--sizes 0,10000,50000] [--datatable] [--work-jobs 50000]

Each first-frame figure is a fresh headless process (spawn -> the app's first `on_mount` +
`call_after_refresh`), measured by the parent as wall time; the app is Header, Input, table,
Footer. The bare app holds a stock `DataTable` with one row. Jobs are read from a JSON file the
parent writes (as the history store would hand them over), and the child also reports when
its jobs were in memory, so the table's own share is shown apart from loading them. Peak RSS
is the child's own high-water mark at its first frame (RUSAGE_CHILDREN in the parent would
only give the largest child so far, and Linux carries ru_maxrss across exec).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, make_job_docs, median, peak_rss_kib, run_child, status_kib, table  # noqa: E402


# -- child ---------------------------------------------------------------------------------------


def child(kind: str, jobs_file: str | None) -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Footer, Header, Input

    from tui.core.config import styles_dir
    from tui.core.records import Job

    jobs: list[Job] = []
    if jobs_file:
        with open(jobs_file, encoding="utf-8") as handle:
            jobs = [Job.from_doc(doc) for doc in json.load(handle)]
    if os.environ.get("BENCH_GC_FREEZE"):
        import gc

        gc.freeze()  # the loaded history is long-lived: keep it out of every later collection
    loaded_at = time.time()
    loaded_rss_kib = status_kib("VmRSS") or 0

    class BenchApp(App):
        CSS_PATH = [str(styles_dir() / "job_table.tcss")] if kind == "table" else None

        def compose(self) -> ComposeResult:
            yield Header()
            yield Input(placeholder="filter")
            if kind == "table":
                from tui.ui.widgets.job_table import JobTable

                yield JobTable(jobs)
            else:
                data_table: DataTable = DataTable()
                data_table.add_columns("id", "model", "status", "prompt")
                rows = [(j.short_id, j.model, j.status, j.prompt) for j in jobs] or [("x", "m", "s", "p")]
                data_table.add_rows(rows)
                yield data_table
            yield Footer()

        def on_mount(self) -> None:
            self.call_after_refresh(self.ready)

        def ready(self) -> None:
            peak_kib = peak_rss_kib()
            ui_kib = (status_kib("VmRSS") or 0) - loaded_rss_kib
            print(json.dumps({"ready_at": time.time(), "loaded_at": loaded_at, "peak_kib": peak_kib,
                              "ui_kib": ui_kib}), flush=True)
            self.exit()

    BenchApp().run(headless=True)


# -- parent --------------------------------------------------------------------------------------


def first_frames(sizes: list[int], repeat: int, with_datatable: bool) -> None:
    now = time.time()
    cases: list[tuple[str, str, int]] = [("bare app (DataTable, 1 row)", "bare", 0)]
    cases += [(f"JobTable, {n:,} jobs", "table", n) for n in sizes]
    if with_datatable:
        cases += [(f"stock DataTable, {n:,} jobs", "datatable", n) for n in sizes if n]
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[int, str] = {}
        for n in {n for _, _, n in cases if n}:
            path = Path(tmp) / f"jobs-{n}.json"
            docs = make_job_docs(n, pending=min(20, n), now=now)
            docs.reverse()  # newest first, as the history store hands them over
            path.write_text(json.dumps(docs))
            files[n] = str(path)
        results: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
        for _ in range(repeat):
            for label, kind, n in cases:  # interleaved, so drift in machine load hits every case alike
                args = [__file__, "--child", kind] + (["--jobs-file", files[n]] if n else [])
                results[label].append(run_child(args))
    bare = median([r["seconds"] for r in results[cases[0][0]]])
    bare_part = median([r["ready_at"] - r["loaded_at"] for r in results[cases[0][0]]])
    rows = []
    for label, _, _ in cases:
        runs = results[label]
        seconds = median([r["seconds"] for r in runs])
        table_part = median([r["ready_at"] - r["loaded_at"] for r in runs])
        peak = max(r["peak_kib"] for r in runs) / 1024
        ui_mib = median([r["ui_kib"] for r in runs]) / 1024
        rows.append([label, f"{seconds:.3f} s", f"{seconds / bare:.2f}x", f"{table_part:.3f} s",
                     f"{table_part / bare_part:.2f}x", f"{peak:.0f} MiB", f"{ui_mib:.0f} MiB"])
    print(f"First frame, headless, median of {repeat} ({machine()})")
    print("(spawn->frame includes reading the jobs from JSON; jobs->frame is the UI's share)")
    print(table(rows, ["case", "spawn->frame", "vs bare", "jobs->frame", "vs bare", "peak RSS", "RSS jobs->frame"]))


async def list_work(n: int, repeat: int) -> None:
    from textual.app import App, ComposeResult

    from tui.core.records import Job
    from tui.ui.widgets.job_table import JobTable

    now = time.time()
    jobs = [Job.from_doc(doc) for doc in reversed(make_job_docs(n, pending=20, now=now))]

    class WorkApp(App):
        def compose(self) -> ComposeResult:
            yield JobTable(jobs)

    def timed(action, runs: int) -> float:
        best = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            action()
            best = min(best, time.perf_counter() - started)
        return best

    app = WorkApp()
    async with app.run_test(size=(120, 40)) as pilot:
        job_table = app.query_one(JobTable)
        await pilot.pause()
        results: list[list[str]] = []

        def measure(label: str, action, runs: int = repeat) -> None:
            seconds = timed(action, runs)
            shown = f"{seconds * 1000:.1f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} µs"
            results.append([label, shown, f"{job_table.visible_count:,}"])

        def set_attr(name, value_a, value_b):
            def action():
                setattr(job_table, name, value_a)
                setattr(job_table, name, value_b)
            return action

        # Each action sets a value and then a different one, so the reactive really changes every time.
        measure("filter 'fox' + clear (first builds haystacks)", set_attr("filter_text", "fox", ""), runs=1)
        measure("filter 'fox' + clear", set_attr("filter_text", "fox", ""))
        measure("filter 'red fox 2.3' + clear", set_attr("filter_text", "red fox 2.3", ""))
        measure("status filter failed + clear", set_attr("status_filter", "failed", None))
        job_table.filter_text = "fox"
        measure("re-sort by model + by status (filtered view)", set_attr("sort_column", "model", "status"))
        job_table.filter_text = ""
        measure("re-sort by model + by status", set_attr("sort_column", "model", "status"))
        measure("re-sort by prompt + by execution", set_attr("sort_column", "prompt", "execution"))
        measure("reverse + reverse", set_attr("sort_reverse", True, False))
        job_table.sort_column = "submitted"
        job_table.sort_reverse = True
        measure("set_jobs (full reload)", lambda: job_table.set_jobs(jobs))
        target = jobs[n // 2]
        measure("upsert of one existing job", lambda: job_table.upsert(target))
        counter = iter(range(10**9))

        def add_new() -> None:
            new = Job.from_doc({**jobs[-1].to_doc(), "local_id": f"new{next(counter)}", "submitted_at": time.time()})
            job_table.upsert(new)

        measure("upsert of a new job at the top", add_new)
        await pilot.pause()
    print(f"\nList work on {n:,} jobs, best of {repeat} (each row is two changes)")
    print(table(results, ["operation", "time", "rows shown after"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["bare", "table", "datatable"])
    parser.add_argument("--jobs-file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="0,10000,50000")
    parser.add_argument("--datatable", action="store_true", help="also time a stock DataTable at each size (slow)")
    parser.add_argument("--work-jobs", type=int, default=50_000, help="jobs for the filter/sort/upsert timings")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.jobs_file)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    first_frames(sizes, args.repeat, args.datatable)
    asyncio.run(list_work(args.work_jobs, max(3, args.repeat)))


if __name__ == "__main__":
    main()
