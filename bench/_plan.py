"""Every benchmark script with its full arguments (bench/run_all) and its smoke arguments (the
test suite runs each on tiny sizes so the scripts cannot rot; those figures mean nothing).

BENCHMARKS measure the targets, against a baseline measured in the same run; EXTRAS time parts
of the app (the job table's list work, the stats panel, batch runs and downloads) and have no
target: `bench/run_all --extras` runs them too."""

from __future__ import annotations

#: (script, what it measures, full-run arguments, smoke arguments)
BENCHMARKS: list[tuple[str, str, list[str], list[str]]] = [
    ("bench_startup.py", "start-up vs a bare app, 0/10k/50k jobs", [],
     ["--sizes", "0,200", "--repeat", "1"]),
    ("bench_poll.py", "poll sweep vs N·L/C and the naive loop", [],
     ["--jobs", "24", "--latency", "0.02", "--concurrency", "4", "--naive-jobs", "2", "--naive-sleep", "0.05"]),
    ("bench_cpu.py", "idle and busy CPU over 60 s", [],
     ["--seconds", "0.5", "--warmup", "1", "--history", "100", "--pending", "10", "--flip-every", "0.3"]),
    ("bench_writes.py", "500 status changes/s for 10 s", [],
     ["--seconds", "1", "--rate", "100", "--history", "200", "--pending", "20"]),
    ("bench_keys.py", "keypress-to-repaint while 500 jobs poll", [],
     ["--presses", "6", "--warmup", "0.5", "--history", "100", "--pending", "10", "--flip-every", "0.5"]),
    ("bench_output.py", "terminal bytes/s over 60 s", [],
     ["--seconds", "0.5", "--warmup", "1", "--history", "100", "--pending", "10", "--flip-every", "0.3"]),
    ("bench_scale.py", "start-up and memory at 1k..200k jobs", [],
     ["--sizes", "50,200", "--repeat", "1"]),
    ("bench_eta_poll.py", "ETA-aware polling vs today's schedule and a fixed 2 s, 30-120 s jobs, scaled time", [],
     ["--jobs", "6", "--scale", "0.01", "--history", "5"]),
    ("bench_frames.py", "selected job to frames on screen, file local and not", [],
     ["--history", "200", "--jobs", "2"]),
    ("bench_filter.py", "filter as you type and sort at 50,000 and 200,000 jobs", [],
     ["--sizes", "300", "--rounds", "1"]),
]

#: (script, what it measures, smoke arguments)
EXTRAS: list[tuple[str, str, list[str]]] = [
    ("bench_table.py", "job table: first frame, filter, sort, upsert on 50,000 jobs",
     ["--repeat", "1", "--sizes", "0,200", "--work-jobs", "300"]),
    ("bench_extras.py", "stats panel and prompt picker on 50,000 jobs", ["--jobs", "1500", "--repeat", "1"]),
    ("bench_transfers.py", "batch reading and sending, download throughput",
     ["--rows", "100", "--send", "10", "--megabytes", "4"]),
]
