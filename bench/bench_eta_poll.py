"""Result queries per completed job, and how late each end is seen: ETA-aware polling against
today's age-based schedule and a fixed 2 s interval, in the same run.

The simulator draws each job's length from a realistic spread by model (30-120 s,
REALISTIC_SPREAD, seeded) and the whole run is scaled in time (`--scale`: 0.05 makes a 60 s
job last 3 s, and every poll interval shrinks by the same factor), so the ratios are those of
real time in a minute or two. Each schedule polls the same jobs (same seed, same lengths) on
a fresh simulator, through the real client and poller; the ETA schedule's figures come from a
history of completed jobs drawn from the same spread. Measured per schedule:

- result queries per completed job (the simulator's own request log);
- the delay from a job's end (on the simulator) to the poll that saw it: median and p90.

    python bench/bench_eta_poll.py                     # 15 jobs, scale 0.1 (about 1 minute)
    python bench/bench_eta_poll.py --jobs 12 --scale 0.02   # smoke size
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui.core.api.client import HailuoClient  # noqa: E402
from tui.core.eta import EtaBook, EtaSchedule  # noqa: E402
from tui.core.poller import Polled, Poller  # noqa: E402
from tui.core.records import Job  # noqa: E402
from tui.simulator import Simulator  # noqa: E402
from tui.simulator.server import REALISTIC_SPREAD  # noqa: E402
from _common import machine, median, summary, table  # noqa: E402

KEY = "sk-bench-0000000000"
MODELS = ["hailuo-2.3-fast", "hailuo-2.3-standard", "hailuo-2.3-pro"]
#: Today's defaults (tui.core.config): base and maximum interval, seconds.
BASE, MAXIMUM, FIXED = 2.0, 20.0, 2.0


def history_book(scale: float, per_model: int, seed: int) -> EtaBook:
    """Completed jobs with lengths drawn from the same spread (another seed): the ETA's figures."""
    rng = random.Random(seed + 1000)
    jobs = []
    for model in MODELS:
        low, high = REALISTIC_SPREAD[model]
        for i in range(per_model):
            seconds = rng.triangular(low, high, low + (high - low) / 3) * scale
            job = Job(local_id=f"{model}-{i}", request={"model": model, "scene": "text-to-video",
                                                       "resolution": "768P", "duration": 6}, submitted_at=1000.0)
            job.set_status("completed", 1000.0 + seconds)
            jobs.append(job)
    book = EtaBook()
    book.reset(jobs)
    return book


async def run_schedule(name: str, *, jobs: int, scale: float, seed: int, book: EtaBook) -> dict:
    sim = Simulator(job_seconds=1.0, require_key=KEY, seed=seed, duration_spread=REALISTIC_SPREAD,
                    time_scale=scale, stop_latency=0.05).start()
    client = HailuoClient(sim.base_url, KEY, max_connections=16, get_retries=0)
    try:
        submitted: dict[str, tuple[float, Job]] = {}
        schedule = None
        if name == "eta":
            def lookup(server_id: str):
                at, job = submitted[server_id]
                return time.time() - at, book.estimate(job)

            schedule = EtaSchedule(lookup, base_interval=BASE * scale, max_interval=MAXIMUM * scale)
        base, most = (FIXED * scale, FIXED * scale) if name == "fixed 2 s" else (BASE * scale, MAXIMUM * scale)
        poller = Poller(client.result, concurrency=8, rate=10.0 / scale, base_interval=base, max_interval=most,
                        schedule=schedule)
        seen_at: dict[str, float] = {}
        everything = asyncio.Event()

        def on_event(event) -> None:
            if isinstance(event, Polled) and event.prediction.is_terminal and event.server_id not in seen_at:
                seen_at[event.server_id] = time.time()
                if len(seen_at) == jobs:
                    everything.set()

        poller.subscribe(on_event)
        await poller.start()
        for i in range(jobs):
            model = MODELS[i % len(MODELS)]
            sim_job = sim._create(model, "text-to-video", {"prompt": f"bench {i}"})
            record = Job(local_id=sim_job.id, request={"model": model, "scene": "text-to-video",
                                                       "resolution": "768P", "duration": 6},
                         submitted_at=time.time(), server_id=sim_job.id)
            submitted[sim_job.id] = (time.time(), record)
            poller.track(sim_job.id, status="created")  # the first poll comes at once, as after a submit
        await asyncio.wait_for(everything.wait(), timeout=600 * scale + 120)
        await poller.stop()
        gets = sum(1 for r in list(sim.requests) if r.method == "GET")
        delays = sorted((seen_at[sid] - sim.ends_at(sid)) / scale for sid in submitted)
        return {"schedule": name, "gets_per_job": gets / jobs, "median_delay": median(delays),
                "p90_delay": delays[max(0, int(0.9 * len(delays)) - 1)]}
    finally:
        await client.aclose()
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=15,
                        help="few enough that the rate cap (10/s, scaled) never binds a fixed 2 s interval")
    parser.add_argument("--scale", type=float, default=0.1, help="real seconds per simulated second")
    parser.add_argument("--history", type=int, default=40, help="completed jobs per model the ETA learns from")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    print(f"{args.jobs} jobs of 30-120 s by model, time scaled by {args.scale:g} ({machine()})", flush=True)
    book = history_book(args.scale, args.history, args.seed)
    results = {}
    for name in ("today", "fixed 2 s", "eta"):
        results[name] = asyncio.run(run_schedule(name, jobs=args.jobs, scale=args.scale, seed=args.seed, book=book))
    rows = [[r["schedule"], f"{r['gets_per_job']:.1f}", f"{r['median_delay']:.1f} s", f"{r['p90_delay']:.1f} s"]
            for r in results.values()]
    print(table(rows, ["schedule", "queries per completed job", "end seen after (median)", "p90"]))
    print("(delays in the simulated seconds of a real run)")
    today, fixed, eta = results["today"], results["fixed 2 s"], results["eta"]
    vs_today = today["gets_per_job"] / eta["gets_per_job"]
    vs_fixed = fixed["gets_per_job"] / eta["gets_per_job"]
    delay_ratio = eta["median_delay"] / max(today["median_delay"], 1e-9)
    summary("ETA polling: queries/job vs today", f"{today['gets_per_job']:.1f}", f"{eta['gets_per_job']:.1f}",
            f"{vs_today:.2f}x fewer", ">= 2x fewer", vs_today >= 2)
    summary("ETA polling: queries/job vs fixed 2 s", f"{fixed['gets_per_job']:.1f}", f"{eta['gets_per_job']:.1f}",
            f"{vs_fixed:.2f}x fewer", ">= 3x fewer", vs_fixed >= 3)
    summary("ETA polling: median end-to-row delay", f"{today['median_delay']:.1f} s", f"{eta['median_delay']:.1f} s",
            f"{delay_ratio:.2f}x", "<= 1.2x today's", delay_ratio <= 1.2)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
