"""`hailuo-tui --demo`: the dashboard against the in-process simulator, with a separate history.

Nothing leaves the machine: the simulator listens on a free loopback port and the key is fake.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from tui.core.config import Settings, demo_db_path

DEMO_KEY = "demo-key-not-secret-0000"
DEMO_JOB_SECONDS = 20.0
DEMO_SEED = 7

#: (status, model, prompt, age in seconds, error)
DEMO_JOBS: tuple[tuple[str, str, str, float, str | None], ...] = (
    ("completed", "hailuo-2.3-fast", "A red fox trotting through fresh snow at dawn, slow dolly shot", 900.0, None),
    ("completed", "hailuo-02-pro", "Waves breaking over black volcanic rocks, drone shot, golden hour", 600.0, None),
    ("processing", "hailuo-2.3-standard", "A paper boat drifting down a rain-soaked city gutter", 8.0, None),
    ("created", "hailuo-2.3-pro", "Time-lapse of a glass greenhouse as clouds race overhead", 1.0, None),
    ("failed", "hailuo-2.3-fast", "A crowd scene that the content policy refuses", 300.0,
     "The request was rejected by the content policy"),
)


def demo_marker(path: Path) -> Path:
    """The file that says a history was made by the demo (and so may be reseeded by it)."""
    return path.with_name(path.name + ".demo")


def _reset_demo_history(path: Path) -> None:
    """Start the demo from the same seeded picture, removing only a history the demo made.

    A history at that path without the demo's mark (one the demo did not create: an older
    demo file, or a real history someone put there) is never deleted: it is moved aside,
    whole, to `<name>.kept-<time>` beside it.
    """
    marker = demo_marker(path)
    own = marker.exists()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for candidate in sorted(path.parent.glob(path.name + "*")):
        if candidate == marker or ".kept-" in candidate.name:
            continue
        try:
            if own:
                candidate.unlink()
            elif candidate.is_file() and not candidate.name.endswith(".lock"):
                os.replace(candidate, candidate.with_name(f"{candidate.name}.kept-{stamp}"))
        except OSError:
            pass
    marker.write_text("This history was created by `hailuo-tui --demo`, which reseeds it at each start.\n",
                      encoding="utf-8")


@contextmanager
def demo_session(settings: Settings, *, job_seconds: float = DEMO_JOB_SECONDS,
                 seed: int = DEMO_SEED) -> Iterator[tuple[Settings, Callable[[Any], Any]]]:
    """A running simulator, settings pointing at it, and the hook that seeds the history once the app runs."""
    from tui.simulator import Simulator

    # The CLI passes the demo history (or the user's --db); anything else gets the demo path.
    db_path = settings.db_path if settings.demo else demo_db_path()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    _reset_demo_history(db_path)
    simulator = Simulator(job_seconds=job_seconds, seed=seed, distinct_videos=True).start()
    try:
        demo_settings = settings.with_changes(base_url=simulator.base_url, api_key=DEMO_KEY, db_path=db_path,
                                              demo=True, read_only=False, auth_scheme="raw")
        yield demo_settings, lambda app: seed_demo_jobs(app.service, simulator)
    finally:
        simulator.stop()


def seed_before_start(settings: Settings, seed: Callable[[Any], Any]) -> None:
    """Run the seeding hook with a service of its own, closed again, before a read-only dashboard opens."""
    import asyncio
    from types import SimpleNamespace

    from tui.core.jobs import JobService

    async def run() -> None:
        service = JobService.open(settings.with_changes(read_only=False))
        try:
            await seed(SimpleNamespace(service=service))
        finally:
            await service.close()

    asyncio.run(run())


async def seed_demo_jobs(service: Any, simulator: Any) -> None:
    """A few jobs in each state, so the first look is not empty."""
    from tui.core.records import UNKNOWN, UNKNOWN_OUTCOME_MESSAGE, Job, new_local_id

    ids = [simulator.seed_job(status=status, model=model, prompt=prompt, age=age, error=error)
           for status, model, prompt, age, error in DEMO_JOBS]
    attached = await service.attach(ids)
    now = time.time()
    from tui.core.catalog import default_resolution
    from tui.core.events import JobChanged

    # Attaching learns only what the API returns; the demo knows what these jobs asked for.
    for job, (_status, model, prompt, age, _error) in zip(attached, DEMO_JOBS):
        job.request.update(model=model, scene="text-to-video", prompt=prompt, duration=6,
                           resolution=default_resolution(model), prompt_expansion=True)
        job.submitted_at = now - age
        service.store.put(job)
        service.hub.emit(JobChanged(job, job.status))
    lost = Job(local_id=new_local_id(), status=UNKNOWN, submitted_at=now - 120.0, error=UNKNOWN_OUTCOME_MESSAGE,
               request={"model": "hailuo-02-fast", "scene": "text-to-video", "duration": 6, "resolution": "768P",
                        "prompt_expansion": True,
                        "prompt": "A lighthouse beam sweeping through fog (the connection dropped mid-submit)"},
               status_history=[["submitting", now - 120.0], [UNKNOWN, now - 90.0]], finished_at=now - 90.0)
    service.store.put(lost)
    service.hub.emit(JobChanged(lost, None, added=True))


def sample_jobs(now: float) -> list[Any]:
    """A fixed set of jobs in every state, with times relative to `now` (screenshots and snapshot tests)."""
    from tui.core.records import UNKNOWN_OUTCOME_MESSAGE, Job

    def job(n: int, status: str, model: str, prompt: str, age: float, run: float, **extra: Any) -> Job:
        submitted = now - age
        history = [["submitting", submitted], ["created", submitted + 1.0]]
        if status not in ("created", "unknown", "submitting"):
            history.append(["processing", submitted + 4.0])
        finished = None
        if status in ("completed", "failed"):
            finished = submitted + run
            history.append([status, finished])
        if status == "unknown":
            history = [["submitting", submitted], ["unknown", submitted + 30.0]]
            finished = submitted + 30.0
        request = {"model": model, "scene": "text-to-video", "prompt": prompt, "duration": 6,
                   "resolution": "1080P" if model.endswith("pro") else "768P", "prompt_expansion": True}
        request.update(extra.pop("request", {}))
        return Job(local_id=f"local-{n:04d}", server_id=None if status == "unknown" else f"{n:02d}f3c9a1d2e84b7c6a5",
                   request=request, submitted_at=submitted, status=status, status_history=history,
                   finished_at=finished, created_at=None if status == "unknown" else submitted + 1.0, **extra)

    cdn = "https://cdn.example.invalid/videos"
    return [
        job(1, "completed", "hailuo-2.3-fast", "A red fox trotting through fresh snow at dawn, slow dolly shot",
            5400, 95, outputs=[f"{cdn}/01-fox.mp4"], inference_time_ms=81250, execution_time_ms=90410,
            has_nsfw_contents=[False], result_url=f"{cdn}/01-fox.json"),
        job(2, "completed", "hailuo-02-pro", "Waves breaking over black volcanic rocks, drone shot, golden hour",
            3600, 240, outputs=[f"{cdn}/02-waves-a.mp4", f"{cdn}/02-waves-b.mp4"], inference_time_ms=220000,
            execution_time_ms=231500, has_nsfw_contents=[False, False]),
        job(3, "failed", "hailuo-2.3-fast", "A dense crowd scene the content policy refuses", 2400, 12,
            error="The request was rejected by the content policy"),
        job(4, "unknown", "hailuo-02-fast", "A lighthouse beam sweeping through fog", 1800, 0,
            error=UNKNOWN_OUTCOME_MESSAGE),
        job(5, "processing", "hailuo-2.3-standard", "A paper boat drifting down a rain-soaked city gutter", 45, 0),
        job(6, "created", "hailuo-2.3-pro", "Time-lapse of a glass greenhouse as clouds race overhead", 6, 0),
    ]


def write_history(path: Path, jobs: list[Any]) -> None:
    """Put jobs into a history file (screenshots, snapshot tests)."""
    from tui.core.store import HistoryStore

    store = HistoryStore.open(path)
    try:
        for job in jobs:
            store.put(job)
        store.flush()
    finally:
        store.close()
