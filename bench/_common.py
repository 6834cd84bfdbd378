"""Shared pieces of the benchmarks: child-process timing, history generation, printing."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "a red fox running through fresh snow at dawn, slow motion",
    "timelapse of a city skyline from dusk to night, neon reflections",
    "macro shot of a honeybee landing on a lavender flower",
    "an astronaut floating inside a space station, soft light",
    "waves crashing on black volcanic rocks, drone shot",
]
MODELS = ["hailuo-2.3-fast", "hailuo-2.3-standard", "hailuo-2.3-pro", "hailuo-02-fast"]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def make_job_docs(n: int, *, pending: int = 0, seed: int = 7, now: float | None = None) -> list[dict[str, Any]]:
    """n realistic job documents, newest `pending` of them still running."""
    from tui.records import Job

    rng = random.Random(seed)
    now = time.time() if now is None else now
    docs = []
    for i in range(n):
        submitted = now - (n - i) * 30.0
        model = rng.choice(MODELS)
        res = "1080P" if model.endswith("pro") else "768P"
        job = Job(
            local_id=f"{i:012x}",
            request={"model": model, "scene": "text-to-video", "prompt": rng.choice(PROMPTS) + f" #{i}",
                     "image": None, "end_image": None, "duration": 6, "resolution": res, "prompt_expansion": True},
            submitted_at=submitted,
            server_id=f"sim{i:09d}{rng.getrandbits(32):08x}",
        )
        if i >= n - pending:
            job.set_status("processing", submitted + 1)
        elif rng.random() < 0.1:
            job.set_status("failed", submitted + 60)
            job.error = "content policy violation: the prompt was blocked"
        else:
            job.set_status("completed", submitted + 120)
            job.outputs = [f"http://127.0.0.1:9/files/{job.server_id}.mp4"]
            job.execution_time_ms = rng.randint(60_000, 400_000)
            job.inference_time_ms = job.execution_time_ms
            job.has_nsfw_contents = [False]
        docs.append(job.to_doc())
    return docs


def make_history(path: Path, n: int, *, pending: int = 0) -> Path:
    """Write a history of n jobs at path through the real store (then closed)."""
    from tui.records import Job
    from tui.store import HistoryStore

    path.parent.mkdir(parents=True, exist_ok=True)
    store = HistoryStore.open(path)
    try:
        for doc in make_job_docs(n, pending=pending):
            store.put(Job.from_doc(doc))
        store.flush()
    finally:
        store.close()
    return path


def run_child(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
    """Run a child that prints one JSON line with `ready_at` (epoch s); add wall time from spawn."""
    full_env = {**os.environ, **(env or {})}
    started = time.time()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    result["seconds"] = result["ready_at"] - started
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
