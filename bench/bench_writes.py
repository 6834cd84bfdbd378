"""Writes: 500 status changes a second for 10 s into the history, while another process reads it.

A child process opens the history (`--history` jobs, the newest `--pending` of them running)
with the real store and applies `--rate` poll answers a second for `--seconds`, each a status
change of a running job (what the job service does with a poll result: `job.apply`, then
`store.put`). A file write is one durable write of a history file (its fsync: a journal
append, or a new snapshot, however many system calls it takes); the kernel's own counters
(/proc/<pid>/io) give the write system calls and the bytes. Meanwhile this process opens the history read-only
again and again (what a second instance or a crash would find) and checks that it always
parses, holds every job, and that every running job has a status the writer gave it.

The baseline is the naive design: one TinyDB `update` per change with TinyDB's default
storage, which rewrites the whole file each time; one such update is timed on a file of the
same history in this run.

    python bench/bench_writes.py                           # 500/s for 10 s, 10,000 jobs
    python bench/bench_writes.py --seconds 1 --rate 100 --history 300 --pending 50   # smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import history_bytes, machine, make_history, make_job_docs, summary, table  # noqa: E402

TARGET = 2.0  # writes per second
STATUSES = ("processing", "queued")


def proc_io() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        values[name.strip()] = int(value)
    return values


# -- the writer (child) --------------------------------------------------------------------------------


def count_file_syncs() -> list[int]:
    """Count fsyncs of regular files (not of directories) from now on: [count]."""
    import stat

    counter = [0]
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            counter[0] += 1
        real_fsync(fd)

    os.fsync = fsync
    return counter


def writer(db: str, seconds: float, rate: float) -> None:
    from tui.core.api.models import Prediction
    from tui.core.store import HistoryStore

    syncs = count_file_syncs()

    store = HistoryStore.open(Path(db))
    running = [job for job in store.all() if job.is_pending]
    # One answer per running job and status, built once: the loop below is the store's work only.
    answers = {(job.server_id, status): Prediction.from_data({"id": job.server_id, "status": status, "outputs": []})
               for job in running for status in STATUSES}
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # go
    before = proc_io()
    syncs_before = syncs[0]
    started = time.monotonic()
    changes = 0
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1  # the changes that should have happened by now
        while changes < due:
            job = running[changes % len(running)]
            status = STATUSES[(changes // len(running) + 1) % 2]
            job.apply(answers[(job.server_id, status)], time.time())
            store.put(job)
            changes += 1
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    during, syncs_during = proc_io(), syncs[0]
    store.close()  # the last coalesced write, and the lock
    after = proc_io()
    print(json.dumps({"changes": changes, "seconds": elapsed, "writes": syncs_during - syncs_before,
                      "syscalls": during["syscw"] - before["syscw"], "bytes": during["wchar"] - before["wchar"],
                      "close_writes": syncs[0] - syncs_during, "close_bytes": after["wchar"] - during["wchar"],
                      "statuses": {job.local_id: job.status for job in running}}), flush=True)


# -- the reader and the baseline (parent) ------------------------------------------------------------


def check_once(db: Path, total: int, running_ids: set[str]) -> str | None:
    """Open the history read-only as another instance would; None when it is whole."""
    from tui.core.store import HistoryStore

    store = HistoryStore.open(db, read_only=True)
    try:
        if store.notices:
            return "; ".join(store.notices)
        if len(store) != total:
            return f"{len(store)} jobs instead of {total}"
        for local_id in running_ids:
            job = store.get(local_id)
            if job is None or job.status not in STATUSES:
                return f"job {local_id} has status {job.status if job else None!r}"
    finally:
        store.close()
    return None


def naive_update_seconds(n: int, tmp: Path) -> tuple[float, int]:
    """One TinyDB `update` of one job's status, default storage, on a file of n jobs."""
    from tinydb import Query, TinyDB

    path = tmp / "naive.json"
    db = TinyDB(path)
    db.table("jobs").insert_multiple(make_job_docs(n, pending=1))
    size = path.stat().st_size
    target = make_job_docs(n, pending=1)[-1]["local_id"]
    started = time.perf_counter()
    db.table("jobs").update({"status": "queued"}, Query().local_id == target)
    seconds = time.perf_counter() - started
    db.close()
    return seconds, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="status changes per second")
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=500)
    args = parser.parse_args(argv)
    if args.writer:
        writer(args.writer, args.seconds, args.rate)
        return 0

    print(f"{args.rate:g} status changes/s for {args.seconds:g} s into a history of {args.history:,} jobs "
          f"({args.pending} running) ({machine()})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp_name:
        tmp = Path(tmp_name)
        db = make_history(tmp / "history" / "history.json", args.history, pending=args.pending)
        size_before = history_bytes(db)
        from tui.core.store import HistoryStore

        with HistoryStore.open(db, read_only=True) as store:
            running_ids = {job.local_id for job in store.all() if job.is_pending}
        child = subprocess.Popen([sys.executable, __file__, "--writer", str(db), "--seconds", str(args.seconds),
                                  "--rate", str(args.rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(child.stdout.readline())
        child.stdin.write("go\n")
        child.stdin.flush()
        reads, problems = 0, []
        while child.poll() is None:
            problem = check_once(db, args.history, running_ids)
            reads += 1
            if problem:
                problems.append(problem)
        result = json.loads(child.stdout.readline())
        if child.wait() != 0:
            raise RuntimeError("the writer failed")
        # After close, the file holds exactly what the writer last had.
        with HistoryStore.open(db, read_only=True) as store:
            final = {local_id: store.get(local_id).status for local_id in running_ids}
        if final != result["statuses"]:
            problems.append("after close, the file differs from the writer's last state")
        size_after = history_bytes(db)
        naive_seconds, naive_size = naive_update_seconds(args.history, tmp)

    seconds = result["seconds"]
    writes_per_s = result["writes"] / seconds
    bytes_per_s = result["bytes"] / seconds
    changes_per_s = result["changes"] / seconds
    naive_bytes_per_s = changes_per_s * naive_size
    rows = [
        ["naive: TinyDB update per change", f"{changes_per_s:.0f}/s (one per change)",
         f"{naive_bytes_per_s / 1e6:,.1f} MB/s", f"{naive_seconds * 1000:.0f} ms per update: at most "
         f"{1 / naive_seconds:.1f} changes/s, {changes_per_s * naive_seconds:.0f}x behind"],
        ["ours: journal appends, coalesced", f"{writes_per_s:.2f}/s", f"{bytes_per_s / 1e3:,.1f} kB/s",
         f"{result['changes']:,} changes in {seconds:.1f} s, {result['syscalls']} write calls; close: "
         f"{result['close_writes']} writes, {result['close_bytes'] / 1e3:.1f} kB"],
    ]
    print(table(rows, ["design", "file writes", "bytes written", "notes"]))
    print(f"history on disk: {size_before / 1e6:.1f} MB before, {size_after / 1e6:.1f} MB "
          f"after; read back {reads} times while writing: "
          f"{'always whole' if not problems else f'{len(problems)} PROBLEMS: ' + problems[0]}")
    summary(f"writes ({args.rate:g} changes/s)", f"{changes_per_s:.0f} writes/s", f"{writes_per_s:.2f} writes/s",
            f"{writes_per_s / changes_per_s:.4f}x", f"<= {TARGET:g} writes/s", writes_per_s <= TARGET)
    summary("writes: bytes", f"{naive_bytes_per_s / 1e6:,.1f} MB/s", f"{bytes_per_s / 1e3:,.1f} kB/s",
            f"{bytes_per_s / naive_bytes_per_s:.5f}x", "proportional to changes", None)
    summary("writes: file always valid", "-", f"{reads} reads, {len(problems)} bad", "-", "always valid",
            not problems and reads > 0)
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
