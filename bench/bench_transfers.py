"""Benchmark of batch runs and downloads.

    python bench/bench_transfers.py [--rows 10000] [--send 300] [--concurrency 8] [--megabytes 256]

- batch, reading: `read_batch` (parse + catalog check of every row + keys) of a JSON Lines and
  a CSV file of `--rows` text-to-video rows, and the plan of those rows against a history of
  50,000 jobs (one idempotency-key lookup per row).
- batch, sending: `--send` rows submitted through the real job service, history (two fsynced
  appends per row: before and after its POST) and client to the loopback simulator, with no
  submit_rate cap and `--concurrency` at once: rows a second.
- download: one `--megabytes` file streamed by `Downloader.fetch` from an in-memory host (1 MiB
  pieces): what writing the part, hashing it and placing it costs on this disk, in MB/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROMPTS, machine, make_history, table  # noqa: E402


def write_rows(folder: Path, rows: int) -> tuple[Path, Path]:
    models = ["hailuo-2.3-fast", "hailuo-2.3-standard", "hailuo-02-fast"]
    jsonl = folder / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": f"{PROMPTS[i % len(PROMPTS)]} #{i}", "model": models[i % 3],
                                         "duration": 6 if i % 2 else 10}) + "\n" for i in range(rows)))
    csv_path = folder / "rows.csv"
    csv_path.write_text("prompt,model,duration\n" + "".join(
        f"\"{PROMPTS[i % len(PROMPTS)]} #{i}\",{models[i % 3]},{6 if i % 2 else 10}\n" for i in range(rows)))
    return jsonl, csv_path


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


async def send(folder: Path, rows: int, concurrency: int) -> tuple[float, int]:
    from tui.core.batch import BatchRun, read_batch
    from tui.core.config import Settings
    from tui.core.jobs import JobService
    from tui.simulator import Simulator

    path = folder / "send.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"send row {i}"}) + "\n" for i in range(rows)))
    batch_rows, errors = read_batch(path)
    assert not errors
    with Simulator(seed=1, job_seconds=600) as sim:
        settings = Settings(api_key="sk-bench-0000000000", base_url=sim.base_url, db_path=folder / "send.json",
                            submit_rate=0)
        service = JobService.open(settings)
        try:
            start = time.perf_counter()
            summary = await BatchRun(service, batch_rows, concurrency=concurrency).run()
            elapsed = time.perf_counter() - start
        finally:
            await service.close()
        return elapsed, summary.counts["submitted"]


async def download(folder: Path, megabytes: int) -> float:
    import httpx

    from tui.core.downloads import Downloader

    piece = b"\0" * (1 << 20)

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            for _ in range(megabytes):
                yield piece

    def host(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "video/mp4", "Content-Length": str(megabytes << 20)},
                              stream=Body())

    async with Downloader(transport=httpx.MockTransport(host)) as downloader:
        start = time.perf_counter()
        saved = await downloader.fetch("https://cdn.example.invalid/big.mp4", folder / "big.mp4")
        elapsed = time.perf_counter() - start
    assert saved.size == megabytes << 20
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--send", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--megabytes", type=int, default=256)
    args = parser.parse_args()

    from tui.core.batch import plan, read_batch
    from tui.core.store import HistoryStore

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jsonl, csv_path = write_rows(folder, args.rows)
        read_jsonl, (rows, errors) = timed(lambda: read_batch(jsonl))
        read_csv, _ = timed(lambda: read_batch(csv_path))
        assert not errors and len(rows) == args.rows
        with HistoryStore.open(make_history(folder / "history.json", 50_000), read_only=True) as store:
            planned, _ = timed(lambda: plan(store, rows))
        sent, submitted = asyncio.run(send(folder, args.send, args.concurrency))
        fetched = asyncio.run(download(folder, args.megabytes))

    print(f"machine: {machine()}\n")
    print(table([
        [f"read + check {args.rows:,} JSONL rows", f"{read_jsonl * 1000:.0f} ms"],
        [f"read + check {args.rows:,} CSV rows", f"{read_csv * 1000:.0f} ms"],
        [f"plan {args.rows:,} rows against 50,000 jobs", f"{planned * 1000:.0f} ms"],
        [f"send {submitted} rows, concurrency {args.concurrency}, no rate cap",
         f"{sent:.2f} s ({submitted / sent:.0f} rows/s)"],
        [f"download {args.megabytes} MB (write + SHA-256 + place)",
         f"{fetched:.2f} s ({args.megabytes / fetched:.0f} MB/s)"],
    ], ["what", "time"]))


if __name__ == "__main__":
    main()
