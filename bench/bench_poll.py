"""How long until every one of N pending jobs has been asked once, against two references.

- The floor N·L/C: N requests of latency L, C at a time, nothing wasted.
- The naive loop of the provider's example: one job at a time, GET, sleep, next. It is
  measured on a subset and extrapolated to N (said so in the output): running it for 500
  jobs would take minutes.

Everything runs against the loopback simulator with a fixed latency per request. The
simulator's request log also checks that the poller never went over its rate cap.

    python bench/bench_poll.py                       # 500 jobs, 200 ms, 8 at a time
    python bench/bench_poll.py --jobs 40 --latency 0.05 --concurrency 4   # smoke size
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui.core.api.client import HailuoClient  # noqa: E402
from tui.core.poller import Polled, PollFailed, Poller  # noqa: E402
from tui.simulator import Simulator  # noqa: E402
from _common import summary  # noqa: E402

KEY = "sk-bench-0000000000"


def max_in_window(times: list[float], window: float) -> int:
    """The most requests that arrived within any `window` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def request_times(sim: Simulator, since: float) -> list[float]:
    times = []
    for record in list(sim.requests):
        if record.method != "GET":
            continue
        at = getattr(record, "at", None)
        if at is None:
            at = getattr(record, "timestamp", None)
        if at is not None and at >= since:
            times.append(at)
    return times


async def poll_all_once(sim: Simulator, ids: list[str], *, concurrency: int, rate: float) -> tuple[float, int]:
    client = HailuoClient(sim.base_url, KEY, max_connections=max(16, concurrency), get_retries=0)
    # Intervals far beyond the run: each job is asked exactly once.
    poller = Poller(client.result, concurrency=concurrency, rate=rate, base_interval=3600.0, max_interval=3600.0)
    answered: set[str] = set()
    failures = 0
    done = asyncio.Event()

    def on_event(event) -> None:
        nonlocal failures
        if isinstance(event, Polled):
            answered.add(event.server_id)
        elif isinstance(event, PollFailed):
            failures += 1
        if len(answered) == len(ids):
            done.set()

    poller.subscribe(on_event)
    for sid in ids:
        poller.track(sid, status="processing")
    started = time.perf_counter()
    await poller.start()
    await done.wait()
    elapsed = time.perf_counter() - started
    await poller.stop()
    await client.aclose()
    return elapsed, failures


async def naive_loop(sim: Simulator, ids: list[str], *, sleep: float) -> float:
    """The provider's example in a loop: one GET, then sleep, then the next job."""
    client = HailuoClient(sim.base_url, KEY, get_retries=0)
    started = time.perf_counter()
    for sid in ids:
        await client.result(sid)
        await asyncio.sleep(sleep)
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request on the simulator")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=None,
                        help="rate cap, requests/s (default: 1.5 × concurrency / latency, so the cap is not the bottleneck)")
    parser.add_argument("--naive-jobs", type=int, default=5, help="subset the naive loop is measured on")
    parser.add_argument("--naive-sleep", type=float, default=1.0, help="sleep between two GETs of the naive loop")
    parser.add_argument("--json", action="store_true", help="print one JSON line as well")
    args = parser.parse_args(argv)
    rate = args.rate if args.rate is not None else 1.5 * args.concurrency / max(args.latency, 1e-3)

    sim = Simulator(job_seconds=10 * 24 * 3600, require_key=KEY, seed=1)
    sim.faults.latency = args.latency
    sim.start()
    try:
        ids = [sim.seed_job(status="processing", prompt=f"bench job {i}") for i in range(args.jobs)]
        since = time.time()
        elapsed, failures = asyncio.run(poll_all_once(sim, ids, concurrency=args.concurrency, rate=rate))
        times = request_times(sim, since)
        naive_ids = ids[: max(1, min(args.naive_jobs, len(ids)))]
        naive_subset = asyncio.run(naive_loop(sim, naive_ids, sleep=args.naive_sleep))
    finally:
        sim.stop()

    floor = args.jobs * args.latency / args.concurrency
    naive = naive_subset * args.jobs / len(naive_ids)
    sequential = args.jobs * args.latency
    busiest = max_in_window(times, 1.0)
    allowed = int(rate) + 1  # the bucket holds one token: at most one request beyond the rate
    print(f"{args.jobs} pending jobs, {args.latency * 1000:.0f} ms per request, concurrency {args.concurrency}, "
          f"rate cap {rate:.1f}/s")
    print(f"  poller, every job asked once : {elapsed:8.2f} s  ({failures} failed polls)")
    print(f"  floor N·L/C                  : {floor:8.2f} s  -> ratio {elapsed / floor:.2f} (target <= 1.2)")
    print(f"  naive loop (GET, sleep {args.naive_sleep:g} s) : {naive:8.2f} s  -> {naive / elapsed:.1f}x faster "
          f"(target >= 20) [measured on {len(naive_ids)} jobs: {naive_subset:.2f} s, extrapolated to {args.jobs}]")
    print(f"  one at a time, no sleep      : {sequential:8.2f} s  -> {sequential / elapsed:.1f}x faster (N·L, computed)")
    print(f"  busiest 1 s window           : {busiest} requests (cap {rate:.1f}/s + 1 burst) "
          f"from {len(times)} logged GETs")
    ok = True
    if len(times) < args.jobs:
        print(f"  ! the simulator logged {len(times)} GETs with timestamps, expected {args.jobs}")
        ok = False
    if busiest > allowed:
        print("  ! RATE CAP EXCEEDED")
        ok = False
    summary(f"poll sweep ({args.jobs} jobs, {args.latency * 1000:.0f} ms)", f"N·L/C {floor:.2f} s", f"{elapsed:.2f} s",
            f"{elapsed / floor:.2f}x", "<= 1.2x", elapsed / floor <= 1.2)
    summary("poll sweep vs naive loop", f"{naive:.1f} s", f"{elapsed:.2f} s", f"{naive / elapsed:.1f}x faster",
            ">= 20x faster", naive / elapsed >= 20)
    summary("poll sweep: rate cap", f"{rate:.1f}/s + 1", f"{busiest} in busiest 1 s", "-", "never exceeded",
            busiest <= allowed and len(times) >= args.jobs)
    if args.json:
        print(json.dumps({"jobs": args.jobs, "latency": args.latency, "concurrency": args.concurrency, "rate": rate,
                          "seconds": elapsed, "floor": floor, "ratio_to_floor": elapsed / floor,
                          "naive_seconds_extrapolated": naive, "speedup_vs_naive": naive / elapsed,
                          "busiest_window": busiest, "failures": failures}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
