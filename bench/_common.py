"""Shared pieces of the benchmarks: child-process timing, history generation, printing."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

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


def make_job_docs(n: int, *, pending: int = 0, seed: int = 7, now: float | None = None,
                  pending_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """n realistic job documents, newest `pending` of them still running.

    `pending_ids`: server ids for the running ones (jobs seeded on a simulator), newest last;
    it sets `pending` to its length.
    """
    from tui.core.records import Job

    rng = random.Random(seed)
    now = time.time() if now is None else now
    if pending_ids is not None:
        pending = len(pending_ids)
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
            if pending_ids is not None:
                job.server_id = pending_ids[i - (n - pending)]
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
        if job.is_finished:
            # What `Job.apply` keeps of the last answer, as the simulator sends it.
            job.raw = {"id": job.server_id, "model": model, "outputs": list(job.outputs),
                       "urls": {"get": f"http://127.0.0.1:9/api/v3/predictions/{job.server_id}/result"},
                       "status": job.status, "error": job.error, "executionTime": job.execution_time_ms or 0,
                       "timings": {"inference": job.inference_time_ms or 0},
                       "has_nsfw_contents": list(job.has_nsfw_contents),
                       "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(submitted + 2))}
        docs.append(job.to_doc())
    return docs


def make_history(path: Path, n: int, *, pending: int = 0, pending_ids: list[str] | None = None) -> Path:
    """Write a history of n jobs at path through the real store (then closed)."""
    from tui.core.records import Job
    from tui.core.store import HistoryStore

    path.parent.mkdir(parents=True, exist_ok=True)
    store = HistoryStore.open(path)
    try:
        for doc in make_job_docs(n, pending=pending, pending_ids=pending_ids):
            store.put(Job.from_doc(doc))
        store.flush()
    finally:
        store.close()
    return path


def history_bytes(path: Path) -> int:
    """Size on disk of a history: its snapshot and its journal."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + ".journal")) if p.exists())


_BYTECODE_DIR: str | None = None


def child_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a measured child: this one, plus `env`, with a bytecode cache.

    An installed copy has its modules compiled (pip does it); a source tree run with
    PYTHONDONTWRITEBYTECODE=1 (as here) would compile every module of the app at every
    start, a cost no user pays and a bare app from site-packages does not pay either. So the
    children share a bytecode cache outside the tree (PYTHONPYCACHEPREFIX), which a first,
    unmeasured start fills.
    """
    global _BYTECODE_DIR
    if _BYTECODE_DIR is None:
        import atexit
        import shutil
        import tempfile

        _BYTECODE_DIR = tempfile.mkdtemp(prefix="bench-bytecode-")
        atexit.register(shutil.rmtree, _BYTECODE_DIR, True)
    full_env = {**os.environ, **(env or {}), "PYTHONPYCACHEPREFIX": _BYTECODE_DIR}
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    return full_env


def run_child(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
    """Run a child that prints one JSON line with `ready_at` (epoch s); add wall time from spawn."""
    full_env = child_environ(env)
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


# -- inside a child process ------------------------------------------------------------------------


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kib() -> int:
    """This process's peak RSS. Linux keeps ru_maxrss across exec (it would report the parent's
    peak), so the kernel's high-water mark of the current address space is read first."""
    import resource

    return status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bare_app_class(on_ready=None, rows: int = 1):
    """The baseline every UI benchmark compares with: a bare Textual app with Header, Input,
    DataTable (`rows` rows) and Footer. `on_ready(app)` runs once its first frame is displayed."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Footer, Header, Input

    class BareApp(App):
        def compose(self) -> ComposeResult:
            yield Header()
            yield Input(placeholder="filter")
            table: DataTable = DataTable()
            table.add_columns("id", "model", "status", "prompt")
            table.add_rows([(f"{i:012x}", "m", "s", "p") for i in range(rows)])
            yield table
            yield Footer()

        def on_ready(self) -> None:
            if on_ready is not None:
                on_ready(self)

    return BareApp


def report(**fields: Any) -> None:
    """The one JSON line a child hands to its parent (see run_child)."""
    print(json.dumps(fields), flush=True)


# -- results ---------------------------------------------------------------------------------------

SUMMARY_PREFIX = "SUMMARY"
SUMMARY_FIELDS = ["benchmark", "baseline", "ours", "ratio", "target", "met"]


def summary(benchmark: str, baseline: str, ours: str, ratio: str, target: str, met: bool | None) -> None:
    """One line per target, the same in every script, for bench/run_all to gather into a table."""
    verdict = "n/a" if met is None else ("yes" if met else "NO")
    print(SUMMARY_PREFIX + " | " + " | ".join([benchmark, baseline, ours, ratio, target, verdict]), flush=True)


def parse_summaries(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith(SUMMARY_PREFIX + " | "):
            rows.append([cell.strip() for cell in line[len(SUMMARY_PREFIX) + 3:].split(" | ")])
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def watch_frames(app, probe: Callable[[], object]) -> list[tuple[float, object]]:
    """Note the time and `probe()` of every frame the app displays (rendered to terminal bytes)."""
    frames: list[tuple[float, object]] = []
    original = app._display

    def display(screen, renderable) -> None:
        original(screen, renderable)
        if renderable is not None and hasattr(renderable, "render_segments"):
            renderable.render_segments(app.console)  # what a terminal would be sent
        frames.append((time.perf_counter(), probe()))

    app._display = display
    return frames


async def timed_key(pilot, frames, key: str, expected: object, what: str, timeout: float = 30) -> float:
    """Press `key`; seconds until a frame noted by `watch_frames` has its probe equal `expected`."""
    seen = len(frames)
    started = time.perf_counter()
    await pilot.press(key)
    deadline = started + timeout
    while True:
        hit = next((t for t, state in frames[seen:] if state == expected), None)
        if hit is not None:
            return hit - started
        if time.perf_counter() > deadline:
            last = frames[-1][1] if frames else None
            raise RuntimeError(f"no frame showed {what} ({expected!r}) after {key!r}; last frame: {last!r}")
        await asyncio.sleep(0.0005)
