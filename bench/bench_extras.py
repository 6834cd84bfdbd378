"""Benchmark of the operator extras on a large history: the stats panel and the prompt picker.

    python bench/bench_extras.py [--jobs 50000] [--repeat 5]

- stats: `JobStats.reset` over the whole history (once, when the panel is first shown), then the
  cost of one job change (`update`, as a poll result arrives) and of one `snapshot` (the panel
  redraws at most once a second).
- prompts: building the picker's entries from the history (`recent_prompts`, up to 2,000
  distinct prompts), and one fuzzy search over them (run on every keystroke in the picker).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, make_job_docs, median, table  # noqa: E402


def timed(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from tui.core.templates import recent_prompts, search
    from tui.core.records import Job
    from tui.core.stats import JobStats

    jobs = [Job.from_doc(doc) for doc in make_job_docs(args.jobs, pending=100)]
    jobs.reverse()  # newest first, as the store hands them over
    now = time.time()
    stats = JobStats(session_start=now - 3600)
    reset = timed(lambda: stats.reset(jobs), args.repeat)

    rng = random.Random(3)
    changes = []
    for job in rng.sample(jobs, 1000):
        job.status, job.execution_time_ms = "completed", rng.randint(60_000, 400_000)
        changes.append(job)
    start = time.perf_counter()
    for job in changes:
        stats.update(job)
    update = (time.perf_counter() - start) / len(changes)
    snapshot = timed(lambda: stats.snapshot(now), args.repeat * 20)

    entries = recent_prompts(jobs)
    build = timed(lambda: recent_prompts(jobs), args.repeat)
    queries = ["fox", "rdfx snw", "timelapse neon", "zzzz"]
    searches = {q: timed(lambda q=q: search(entries, q), args.repeat) for q in queries}

    print(f"machine: {machine()}; {args.jobs:,} jobs; median of {args.repeat} runs\n")
    rows = [
        ["stats: reset over the history (first show)", f"{reset * 1000:.1f} ms"],
        ["stats: one job change (update)", f"{update * 1e6:.1f} µs"],
        ["stats: one snapshot (each redraw)", f"{snapshot * 1e6:.1f} µs"],
        [f"prompts: picker entries ({len(entries):,} distinct)", f"{build * 1000:.1f} ms"],
    ]
    rows += [[f"prompts: search {q!r} ({len(search(entries, q)):,} matches)", f"{t * 1000:.1f} ms"]
             for q, t in searches.items()]
    print(table(rows, ["what", "time"]))


if __name__ == "__main__":
    main()
