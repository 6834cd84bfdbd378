"""The job service: its order of operations against a scripted client and store, then whole
lifecycles against the loopback simulator with the real client and store.

Intervals and job times are short so that whole lifecycles take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest

from tui.core.api.errors import (
    ContentPolicyError,
    InvalidKeyError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SubmitOutcomeUnknownError,
)
from tui.core.api.models import Prediction
from tui.core.catalog import VideoRequest
from tui.core.config import Settings
from tui.core.events import JobChanged, JobRemoved, PollerState
from tui.core.jobs import ATTACHED, JobService, SubmitDisabled, SubmitFailed, ValidationFailed
from tui.core.poller import Poller
from tui.core.records import EXPIRED, REJECTED, SUBMITTING, UNKNOWN, UNKNOWN_OUTCOME_MESSAGE, Job

KEY = "sk-test-jobs-0123456789"
FAST = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0, poll_concurrency=8)


def settings_for(sim, db: Path, **changes) -> Settings:
    values = dict(api_key=KEY, base_url=sim.base_url, db_path=db, **FAST)
    values.update(changes)
    return Settings(**values)


def history_text(db: Path) -> str:
    """Everything the history keeps on disk, read without the store."""
    parts = []
    for path in sorted(db.parent.glob(db.name + "*")):
        if path.is_file() and not path.name.endswith(".lock"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def open_store(path: Path, **options):
    from tui.core.store import HistoryStore

    return HistoryStore.open(path, **options)


def jobs_on_disk(db: Path) -> list[Job]:
    """The history as a separate reader sees it."""
    store = open_store(db, read_only=True)
    try:
        return store.all()
    finally:
        store.close()


def posts(sim) -> list:
    return [r for r in sim.requests if r.method == "POST"]


class Recorder:
    """Every event, and for job changes what the job looked like at that moment (jobs are mutable)."""

    def __init__(self, service: JobService) -> None:
        self.events: list = []
        self.seen: list[tuple[str, str, int, str | None, bool]] = []
        service.subscribe(self.on_event)

    def on_event(self, event) -> None:
        self.events.append(event)
        if isinstance(event, JobChanged):
            job = event.job
            self.seen.append((job.local_id, job.status, job.poll_errors, event.previous_status, event.added))

    def changes(self, local_id: str) -> list[tuple[str, int, str | None, bool]]:
        """(status, poll_errors, previous_status, added) of each change of this job."""
        return [entry[1:] for entry in self.seen if entry[0] == local_id]

    def statuses(self, local_id: str) -> list[str]:
        return [entry[0] for entry in self.changes(local_id)]


async def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "history.json"


@pytest.fixture
def png(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "first-frame.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(path)
    return path


# -- order of operations, against a scripted client and an in-memory store --------------------


class ScriptedStore:
    """The store's contract in memory, with a log of what was written and when it was flushed."""

    read_only = False

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.flushed: dict[str, dict] = {}
        self.log: list[tuple] = []
        self.notices: list[str] = []

    def __len__(self) -> int:
        return len(self.jobs)

    def put(self, job: Job) -> None:
        self.jobs[job.local_id] = job
        self.log.append(("put", job.local_id, job.status))

    def get(self, local_id):
        return self.jobs.get(local_id)

    def remove(self, local_id):
        self.jobs.pop(local_id, None)

    def all(self):
        return sorted(self.jobs.values(), key=lambda j: j.submitted_at, reverse=True)

    def pending(self):
        return [j for j in self.all() if j.is_pending]

    def find_by_server_id(self, server_id):
        return next((j for j in self.jobs.values() if j.server_id == server_id), None)

    def find_by_idempotency_key(self, key):
        return next((j for j in self.jobs.values() if j.idempotency_key == key), None)

    def flush(self) -> None:
        self.flushed = {i: json.loads(json.dumps(j.to_doc())) for i, j in self.jobs.items()}
        self.log.append(("flush",))

    async def flush_async(self) -> None:
        self.flush()

    def close(self) -> None:
        self.log.append(("close",))


class ScriptedClient:
    def __init__(self, store: ScriptedStore) -> None:
        self.store = store
        self.create_error: Exception | None = None
        self.create_gate: asyncio.Event | None = None
        self.bodies: list[dict] = []
        self.flushed_at_post: list[dict] = []
        self.answers: dict[str, list] = {}
        self.gets: list[str] = []
        self.closed = False

    async def create(self, model, scene, body):
        self.store.log.append(("POST", model, scene))
        self.flushed_at_post.append(dict(self.store.flushed))
        self.bodies.append(body)
        if self.create_gate is not None:
            await self.create_gate.wait()
        if self.create_error is not None:
            raise self.create_error
        return Prediction(id=f"pred-{len(self.bodies)}", status="created", model=model)

    async def result(self, server_id):
        self.gets.append(server_id)
        queue = self.answers.get(server_id)
        answer = queue.pop(0) if queue and len(queue) > 1 else (queue[0] if queue else "processing")
        if isinstance(answer, Exception):
            raise answer
        return Prediction(id=server_id, status=answer)

    async def aclose(self):
        self.closed = True


def scripted(**settings_changes) -> tuple[JobService, ScriptedStore, ScriptedClient]:
    store = ScriptedStore()
    client = ScriptedClient(store)
    values = dict(api_key=KEY, base_url="http://127.0.0.1:9", db_path=Path("/nonexistent/history.json"), **FAST)
    values.update(settings_changes)
    return JobService(Settings(**values), store, client), store, client


async def test_the_record_is_flushed_before_the_post_and_again_after():
    service, store, client = scripted()
    job = await service.submit(VideoRequest(prompt="a fox"))
    post = store.log.index(("POST", "hailuo-2.3-fast", "text-to-video"))
    assert ("put", job.local_id, SUBMITTING) in store.log[:post]
    assert store.log[post - 1] == ("flush",)
    assert client.flushed_at_post[0][job.local_id]["status"] == SUBMITTING
    assert store.log[post + 1:] == [("put", job.local_id, "created"), ("flush",)]
    assert service.poller.is_tracked("pred-1")
    await service.close()
    assert client.closed and store.log[-1] == ("close",)


async def test_unknown_outcome_is_recorded_flushed_not_tracked_and_raised():
    service, store, client = scripted()
    client.create_error = SubmitOutcomeUnknownError("the connection dropped after sending",
                                                    cause=ServerError("server error", status=502))
    with pytest.raises(SubmitFailed) as caught:
        await service.submit(VideoRequest(prompt="a fox"))
    job = caught.value.job
    # The record says what to do and why the outcome is unknown.
    assert job.status == UNKNOWN and job.error == f"{UNKNOWN_OUTCOME_MESSAGE} Cause: server error"
    assert store.flushed[job.local_id]["status"] == UNKNOWN
    assert caught.value.exit_code == 5 and caught.value.error is client.create_error
    assert service.poller.tracked == frozenset() and len(client.bodies) == 1
    await service.close()


async def test_a_refused_post_is_rejected_with_the_servers_reason():
    service, store, client = scripted()
    client.create_error = ContentPolicyError("the prompt was blocked by the content policy", status=400)
    events = Recorder(service)
    with pytest.raises(SubmitFailed) as caught:
        await service.submit(VideoRequest(prompt="something blocked"))
    job = caught.value.job
    assert job.status == REJECTED and job.error == "the prompt was blocked by the content policy"
    assert store.flushed[job.local_id]["status"] == REJECTED
    assert caught.value.exit_code == 2
    assert events.changes(job.local_id)[-1] == (REJECTED, 0, SUBMITTING, False)
    await service.close()


async def test_stopping_while_the_record_is_written_leaves_no_record_and_sends_nothing():
    service, store, client = scripted()
    writing, release = asyncio.Event(), asyncio.Event()

    async def slow_flush() -> None:
        writing.set()
        await release.wait()

    store.flush_async = slow_flush
    task = asyncio.ensure_future(service.submit(VideoRequest(prompt="a fox")))
    await writing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Nothing left: a SUBMITTING record would come back as an "unknown" job that was never sent.
    assert store.jobs == {} and client.bodies == []
    release.set()
    await service.close()


async def test_stopping_during_the_post_leaves_an_unknown_record():
    service, store, client = scripted()
    client.create_gate = asyncio.Event()
    task = asyncio.ensure_future(service.submit(VideoRequest(prompt="a fox")))
    await wait_for(lambda: client.bodies)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (job,) = store.jobs.values()
    assert job.status == UNKNOWN and store.flushed[job.local_id]["status"] == UNKNOWN
    await service.close()


async def test_invalid_request_is_neither_recorded_nor_sent():
    service, store, client = scripted()
    with pytest.raises(ValidationFailed) as caught:
        await service.submit(VideoRequest(scene="image-to-video", prompt="x", image="/no/such/file.png"))
    assert [e.field for e in caught.value.errors] == ["image"]
    assert store.log == [] and client.bodies == []
    await service.close()


async def test_submitting_without_a_key_is_refused_with_the_reason():
    store = ScriptedStore()
    service = JobService(Settings(api_key=None, db_path=Path("/nonexistent/h.json")), store, None)
    assert service.poller is None and not service.can_submit
    assert "GPTPROTO_API_KEY" in service.submit_disabled_reason
    with pytest.raises(SubmitDisabled):
        await service.submit(VideoRequest(prompt="a fox"))
    assert store.log == []


async def test_local_image_is_sent_as_data_url_but_kept_only_by_checksum(png):
    service, store, client = scripted()
    job = await service.submit(VideoRequest(scene="image-to-video", prompt="a fox", image=str(png)))
    assert client.bodies[0]["image"].startswith("data:image/png;base64,")
    record = store.flushed[job.local_id]["request"]
    assert record["image"]["source"] == str(png) and record["image"]["width"] == 640
    assert record["end_image"] is None
    assert "base64" not in json.dumps(store.flushed)
    await service.close()


async def test_polls_are_written_only_when_something_changed():
    service, store, client = scripted()
    job = await service.submit(VideoRequest(prompt="a fox"))
    events = Recorder(service)
    client.answers["pred-1"] = ["processing"] * 8 + ["completed"]
    puts_before = sum(1 for entry in store.log if entry[0] == "put")
    await service.start()
    await asyncio.wait_for(service.wait([job.local_id]), 5)
    assert len(client.gets) >= 9
    assert events.statuses(job.local_id) == ["processing", "completed"]
    assert sum(1 for entry in store.log if entry[0] == "put") - puts_before == 2
    await service.close()


async def test_poll_failures_show_on_the_job_and_clear_on_success():
    service, store, client = scripted()
    job = await service.submit(VideoRequest(prompt="a fox"))
    events = Recorder(service)
    client.answers["pred-1"] = [ServerError("server error (503)", status=503)] * 3 + ["completed"]
    await service.start()
    await asyncio.wait_for(service.wait([job.local_id]), 5)
    assert [errors for _, errors, _, _ in events.changes(job.local_id)] == [1, 2, 3, 0]
    assert job.poll_errors == 0 and job.last_poll_error is None and job.status == "completed"
    await service.close()


async def test_a_refused_key_while_polling_stops_polling_and_says_why():
    service, store, client = scripted()
    job = await service.submit(VideoRequest(prompt="a fox"))
    events = Recorder(service)
    client.answers["pred-1"] = [InvalidKeyError("the API key was refused (401)", status=401)]
    await service.start()
    await wait_for(lambda: any(isinstance(e, PollerState) and not e.running for e in events.events))
    asked = len(client.gets)
    await asyncio.sleep(0.3)
    assert len(client.gets) == asked
    state = service.poller_state
    assert not state.running and state.last_error == "the API key was refused (401)"
    assert job.last_poll_error == "the API key was refused (401)"
    await service.close()


async def test_rate_limit_is_reported_with_its_wall_clock_end():
    service, store, client = scripted()
    await service.submit(VideoRequest(prompt="a fox"))
    events = Recorder(service)
    client.answers["pred-1"] = [RateLimitedError("too many requests", retry_after=0.4), "processing"]
    before = time.time()
    await service.start()
    await wait_for(lambda: any(isinstance(e, PollerState) and e.rate_limited_until for e in events.events))
    (limited, *_) = [e for e in events.events if isinstance(e, PollerState) and e.rate_limited_until]
    assert before + 0.3 < limited.rate_limited_until < time.time() + 0.5
    await wait_for(lambda: service.poller_state.rate_limited_until is None)
    await service.close()


async def test_old_404_expires_young_404_keeps_polling():
    service, store, client = scripted()
    now = time.time()
    old = Job(local_id="old", request={}, submitted_at=now - 30 * 86400, server_id="old-id", status="processing",
              created_at=now - 8 * 86400)
    young = Job(local_id="young", request={}, submitted_at=now - 5, server_id="young-id", status="processing")
    store.put(old)
    store.put(young)
    client.answers["old-id"] = [NotFoundError("prediction not found", status=404)]
    client.answers["young-id"] = [NotFoundError("prediction not found", status=404)]
    await service.start()
    await asyncio.wait_for(service.wait(["old"]), 5)
    await wait_for(lambda: young.poll_errors >= 3)
    assert old.status == EXPIRED and old.finished_at is not None
    assert young.status == "processing" and young.is_pending and service.poller.is_tracked("young-id")
    await service.close()


# -- against the simulator: submit -----------------------------------------------------------------------------------


async def test_submit_records_then_follows_the_job_to_completion(make_simulator, db):
    sim = make_simulator(job_seconds=0.3, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        assert service.can_submit and service.submit_disabled_reason is None
        job = await service.submit(VideoRequest(prompt="a red fox in snow"))
        assert job.server_id and job.status != SUBMITTING
        (final,) = await asyncio.wait_for(service.wait([job.local_id]), 10)
        assert final.status == "completed" and final.outputs
        changes = recorder.changes(job.local_id)
        assert changes[0] == (SUBMITTING, 0, None, True)
        assert changes[-1][0] == "completed"
    finally:
        await service.close()
    (on_disk,) = jobs_on_disk(db)
    assert on_disk.status == "completed" and on_disk.server_id == job.server_id
    assert len(posts(sim)) == 1


async def test_job_is_on_disk_before_the_post_is_sent(make_simulator, db):
    sim = make_simulator(job_seconds=0.3, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    seen_before_post: list[str] = []
    real_create = service.client.create

    async def create_after_looking(model, scene, body):
        # The POST has not left yet: a separate reader must already find the job.
        seen_before_post.append(history_text(db))
        assert posts(sim) == []
        return await real_create(model, scene, body)

    service.client.create = create_after_looking
    try:
        job = await service.submit(VideoRequest(prompt="a lighthouse at night"))
    finally:
        await service.close()
    assert job.local_id in seen_before_post[0]
    assert SUBMITTING in seen_before_post[0]
    assert len(posts(sim)) == 1


async def test_validation_failure_records_and_sends_nothing(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        with pytest.raises(ValidationFailed) as caught:
            await service.submit(VideoRequest(model="hailuo-2.3-pro", prompt="", resolution="768P"))
        assert {e.field for e in caught.value.errors} == {"prompt", "resolution"}
        assert len(service.store) == 0
    finally:
        await service.close()
    assert sim.requests == []


async def test_dropped_connection_after_create_is_unknown_and_never_resent(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    sim.faults.drop_after_create = 1
    service = JobService.open(settings_for(sim, db))
    try:
        with pytest.raises(SubmitFailed) as caught:
            await service.submit(VideoRequest(prompt="a storm over the sea"))
        failed = caught.value
        assert isinstance(failed.error, SubmitOutcomeUnknownError)
        assert failed.job.status == UNKNOWN and failed.job.error.startswith(UNKNOWN_OUTCOME_MESSAGE)
        assert "the connection was dropped" in failed.job.error
        assert not service.poller.is_tracked(failed.job.server_id or "")
        await asyncio.sleep(0.3)
    finally:
        await service.close()
    assert len(posts(sim)) == 1
    (on_disk,) = jobs_on_disk(db)
    assert on_disk.status == UNKNOWN


async def test_policy_rejection_is_recorded_as_rejected_with_the_reason(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        with pytest.raises(SubmitFailed) as caught:
            await service.submit(VideoRequest(prompt=f"a {sim.faults.policy_word} scene"))
        job = caught.value.job
        assert job.status == REJECTED
        assert job.error and job.error == caught.value.error.message
        assert caught.value.exit_code == 2
    finally:
        await service.close()
    (on_disk,) = jobs_on_disk(db)
    assert on_disk.status == REJECTED and on_disk.server_id is None


async def test_image_to_video_keeps_no_image_bytes_in_history(make_simulator, db, png):
    sim = make_simulator(job_seconds=0.2, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        job = await service.submit(VideoRequest(scene="image-to-video", prompt="the sky clears", image=str(png)))
        await asyncio.wait_for(service.wait([job.local_id]), 10)
    finally:
        await service.close()
    image = job.request["image"]
    assert image["source"] == str(png) and image["width"] == 640 and image["height"] == 400
    assert image["format"] == "PNG" and image["size_bytes"] == png.stat().st_size and len(image["sha256"]) == 64
    text = history_text(db)
    encoded = base64.b64encode(png.read_bytes()).decode()
    assert "base64" not in text and encoded[:64] not in text
    # The server did get the image, as a data: URL.
    (post,) = posts(sim)
    assert "data:image/png;base64," in (post.body if isinstance(post.body, str) else json.dumps(post.body))


async def test_idempotency_key_submits_once(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        first = await service.submit(VideoRequest(prompt="row 1"), idempotency_key="batch-1:row-1")
        again = await service.submit(VideoRequest(prompt="row 1"), idempotency_key="batch-1:row-1")
    finally:
        await service.close()
    assert again.local_id == first.local_id
    assert len(posts(sim)) == 1
    assert jobs_on_disk(db)[0].idempotency_key == "batch-1:row-1"


# -- polling faults ---------------------------------------------------------------------------


async def test_server_errors_and_malformed_answers_count_then_the_job_completes(make_simulator, db):
    sim = make_simulator(job_seconds=0.3, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="waves on rocks"))
        sim.faults.server_errors = 2
        sim.faults.malformed = 1
        await service.start()
        (final,) = await asyncio.wait_for(service.wait([job.local_id]), 10)
    finally:
        await service.close()
    counts = [errors for _, errors, _, _ in recorder.changes(job.local_id)]
    assert max(counts) >= 2  # the failures were counted and shown
    assert final.status == "completed" and final.poll_errors == 0


async def test_429_storm_pauses_polling_and_reports_until_when(make_simulator, db):
    sim = make_simulator(job_seconds=0.2, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="bees on lavender"))
        sim.faults.rate_limit = 3
        sim.faults.retry_after = 0.3
        before = time.time()
        await service.start()
        (final,) = await asyncio.wait_for(service.wait([job.local_id]), 10)
    finally:
        await service.close()
    limited = [e for e in recorder.events if isinstance(e, PollerState) and e.rate_limited_until]
    assert limited and before < limited[0].rate_limited_until < before + 5
    assert "rate-limited" in limited[0].describe()
    assert final.status == "completed"
    # Nobody asked during a pause: the GETs after each 429 wait Retry-After.
    gets = [r for r in sim.requests if r.method == "GET"]
    assert len(gets) < 40


async def test_404_for_an_old_job_means_expired_and_for_a_young_one_a_poll_error(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    now = time.time()
    store = open_store(db)
    old = Job(local_id="old000000001", request={"model": "hailuo-2.3-fast", "prompt": "old"},
              submitted_at=now - 8 * 86400, server_id="gone-old", status="processing")
    young = Job(local_id="young0000001", request={"model": "hailuo-2.3-fast", "prompt": "young"},
                submitted_at=now - 60, server_id="gone-young", status="processing")
    store.put(old)
    store.put(young)
    store.close()
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        await service.start()
        (expired,) = await asyncio.wait_for(service.wait([old.local_id]), 10)
        assert expired.status == EXPIRED
        await wait_for(lambda: (service.store.get(young.local_id).poll_errors or 0) >= 3)
        still = service.store.get(young.local_id)
        assert still.status == "processing" and "not found" in (still.last_poll_error or "").lower()
        assert service.poller.is_tracked("gone-young") and not service.poller.is_tracked("gone-old")
    finally:
        await service.close()
    assert recorder.statuses(old.local_id) == [EXPIRED]


async def test_unknown_status_is_shown_raw_and_polling_continues(make_simulator, db):
    sim = make_simulator(job_seconds=0.4, require_key=KEY)
    sim.faults.odd_status = "warming-up"
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="timelapse of a city"))
        await service.start()
        await wait_for(lambda: "warming-up" in recorder.statuses(job.local_id))
        sim.faults.odd_status = None
        (final,) = await asyncio.wait_for(service.wait([job.local_id]), 10)
    finally:
        await service.close()
    assert final.status == "completed"


async def test_no_event_when_a_poll_changes_nothing(make_simulator, db):
    sim = make_simulator(job_seconds=60, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="slow job"))
        await service.start()
        await asyncio.sleep(0.6)
        gets = [r for r in sim.requests if r.method == "GET"]
        assert len(gets) >= 3
        # Added, then the server id/status, then at most one change (created -> processing).
        assert len(recorder.changes(job.local_id)) <= 3
    finally:
        await service.close()


# -- lifecycle --------------------------------------------------------------------------------


async def test_restart_resumes_pending_jobs(make_simulator, db):
    sim = make_simulator(job_seconds=0.6, require_key=KEY)
    first = JobService.open(settings_for(sim, db))
    try:
        jobs = [await first.submit(VideoRequest(prompt=f"clip {i}")) for i in range(3)]
    finally:
        await first.close()
    assert all(j.is_pending for j in jobs_on_disk(db))
    second = JobService.open(settings_for(sim, db))
    try:
        await second.start()
        final = await asyncio.wait_for(second.wait([j.local_id for j in jobs]), 10)
    finally:
        await second.close()
    assert [j.status for j in final] == ["completed"] * 3
    assert all(j.status == "completed" for j in jobs_on_disk(db))
    assert len(posts(sim)) == 3


async def test_start_spreads_a_large_resume_instead_of_bursting(tmp_path):
    now = time.time()
    store = open_store(tmp_path / "h.json")
    for i in range(50):
        store.put(Job(local_id=f"{i:012d}", request={"prompt": str(i)}, submitted_at=now - 600 + i,
                      server_id=f"srv-{i}", status="processing"))
    settings = Settings(api_key=KEY, base_url="http://127.0.0.1:9", db_path=tmp_path / "h.json")
    calls: list[float] = []

    async def fetch(server_id):
        calls.append(time.monotonic())
        raise NotFoundError("not found", status=404)

    poller = Poller(fetch, rate=100.0, base_interval=5.0, max_interval=5.0)
    service = JobService(settings, store, None, poller=poller)
    await service.start()
    await asyncio.sleep(0.3)
    await poller.stop()
    store.close()
    # 50 jobs at 100/s would fit in 0.5 s: spread over that window, not all at once.
    assert 5 <= len(calls) <= 45


async def test_forget_removes_from_history_and_stops_polling(make_simulator, db):
    sim = make_simulator(job_seconds=60, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="to forget"))
        await service.start()
        service.forget(job.local_id)
        assert service.store.get(job.local_id) is None
        assert not service.poller.is_tracked(job.server_id)
        assert any(isinstance(e, JobRemoved) and e.local_id == job.local_id for e in recorder.events)
        gets_after = len([r for r in sim.requests if r.method == "GET"])
        await asyncio.sleep(0.4)
        assert len([r for r in sim.requests if r.method == "GET"]) <= gets_after + 1
    finally:
        await service.close()
    assert jobs_on_disk(db) == []


async def test_pause_resume_and_refresh(make_simulator, db):
    sim = make_simulator(job_seconds=60, require_key=KEY)
    service = JobService.open(settings_for(sim, db, poll_base_interval=10.0, poll_max_interval=10.0))
    recorder = Recorder(service)
    try:
        job = await service.submit(VideoRequest(prompt="refresh me"))
        await service.start()
        await asyncio.sleep(0.2)
        service.pause()
        assert any(isinstance(e, PollerState) and e.paused for e in recorder.events)
        before = len([r for r in sim.requests if r.method == "GET"])
        service.refresh(job.local_id)  # an explicit refresh asks once, even while paused
        await wait_for(lambda: len([r for r in sim.requests if r.method == "GET"]) == before + 1)
        # Its answer back first: a refresh of a job whose poll is on its way adds none.
        await wait_for(lambda: service.poller.state.in_flight == 0)
        service.resume()
        assert not service.poller_state.paused
        service.refresh_all()
        await wait_for(lambda: len([r for r in sim.requests if r.method == "GET"]) == before + 2)
    finally:
        await service.close()


async def test_attach_records_known_ids_once_and_refuses_unknown_ones(make_simulator, db):
    sim = make_simulator(job_seconds=0.3, require_key=KEY)
    done_id = sim.seed_job(status="completed")
    running_id = sim.seed_job(status="processing")
    service = JobService.open(settings_for(sim, db))
    try:
        attached = await service.attach([done_id, running_id])
        assert [j.server_id for j in attached] == [done_id, running_id]
        assert attached[0].status == "completed" and attached[0].model == "hailuo-2.3-fast"
        assert attached[1].status != ATTACHED
        again = await service.attach([done_id])
        assert again[0].local_id == attached[0].local_id and len(service.store) == 2
        with pytest.raises(NotFoundError) as caught:
            await service.attach(["no-such-prediction"])
        assert "no-such-prediction" in caught.value.message
        assert len(service.store) == 2
        await service.start()
        final = await asyncio.wait_for(service.wait([j.local_id for j in attached]), 10)
        assert [j.status for j in final] == ["completed", "completed"]
    finally:
        await service.close()


async def test_without_a_key_history_opens_but_nothing_is_sent(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    store = open_store(db)
    store.put(Job(local_id="pending00001", request={"prompt": "x"}, submitted_at=time.time(),
                  server_id="srv-1", status="processing"))
    store.close()
    service = JobService.open(settings_for(sim, db, api_key=None))
    recorder = Recorder(service)
    try:
        assert not service.can_submit
        assert "GPTPROTO_API_KEY" in service.submit_disabled_reason
        assert len(service.store) == 1
        await service.start()
        (state,) = [e for e in recorder.events if isinstance(e, PollerState)]
        assert not state.running and state.pending == 1 and "API key" in state.last_error
        await asyncio.sleep(0.2)
    finally:
        await service.close()
    assert sim.requests == []


async def test_a_second_instance_is_read_only_and_cannot_submit(make_simulator, db):
    sim = make_simulator(require_key=KEY)
    first = JobService.open(settings_for(sim, db))
    second = JobService.open(settings_for(sim, db))
    try:
        assert first.can_submit
        assert not second.can_submit and second.submit_disabled_reason
    finally:
        await second.close()
        await first.close()


async def test_close_flushes_and_releases_the_history(make_simulator, db):
    sim = make_simulator(job_seconds=0.2, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    job = await service.submit(VideoRequest(prompt="flush me"))
    await service.start()
    await asyncio.wait_for(service.wait([job.local_id]), 10)
    await service.close()
    again = JobService.open(settings_for(sim, db))
    try:
        assert again.can_submit  # the lock was released
        assert again.store.get(job.local_id).status == "completed"
    finally:
        await again.close()


def test_client_is_built_from_settings(db, make_simulator):
    sim = make_simulator(require_key=KEY)
    service = JobService.open(settings_for(sim, db, auth_scheme="bearer"))
    try:
        from tui.core.api.client import HailuoClient

        assert isinstance(service.client, HailuoClient)
        assert service.poller.concurrency == FAST["poll_concurrency"] and service.poller.rate == FAST["poll_rate"]
    finally:
        asyncio.run(service.close())


# -- hostile answers: one id one job, waits that end, look-ups through the poller ------------------


async def test_attach_looks_ids_up_within_the_pollers_concurrency(make_simulator, db):
    sim = make_simulator(job_seconds=60, require_key=KEY)
    ids = [sim.seed_job(status="processing") for _ in range(30)]
    sim.faults.latency = 0.05
    service = JobService.open(settings_for(sim, db, poll_concurrency=3))
    try:
        attached = await service.attach(ids)
        assert [j.server_id for j in attached] == ids and all(j.status == "processing" for j in attached)
        assert sim.peak_in_flight["GET"] <= 3
        assert len([r for r in sim.requests if r.method == "GET"]) == 30  # each id asked once
    finally:
        await service.close()


async def test_attach_waits_out_a_429_pause_with_the_poller(make_simulator, db):
    sim = make_simulator(job_seconds=60, require_key=KEY)
    ids = [sim.seed_job(status="processing") for _ in range(5)]
    sim.faults.update({"rate_limit": 1, "retry_after": 0.3})
    service = JobService.open(settings_for(sim, db))
    try:
        attached = await service.attach(ids)
        assert all(j.status == "processing" and j.poll_errors == 0 for j in attached)
    finally:
        await service.close()


async def test_a_submit_answered_with_a_known_id_is_a_conflict_naming_the_other_job(make_simulator, db):
    from tui.core.api.errors import DuplicateIdError
    from tui.core.records import CONFLICT

    sim = make_simulator(job_seconds=0.5, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        first = await service.submit(VideoRequest(prompt="first"))
        sim.faults.duplicate_id = 1
        with pytest.raises(SubmitFailed) as caught:
            await service.submit(VideoRequest(prompt="second"))
        assert isinstance(caught.value.error, DuplicateIdError) and caught.value.exit_code == 5
        second = caught.value.job
        assert second.status == CONFLICT and second.server_id is None and second.is_finished
        assert first.server_id in second.error and first.local_id in second.error
        assert service.store.find_by_server_id(first.server_id) is first
        final = await asyncio.wait_for(service.wait([first.local_id, second.local_id]), 15)
        assert [j.status for j in final] == ["completed", CONFLICT]
    finally:
        await service.close()
    assert {j.local_id: j.status for j in jobs_on_disk(db)} == {first.local_id: "completed", second.local_id: CONFLICT}


async def test_a_wait_ends_when_polling_stops_for_the_key_on_another_job(make_simulator, db):
    from tui.core.api.errors import PollingHalted

    sim = make_simulator(job_seconds=60, require_key=KEY)
    service = JobService.open(settings_for(sim, db))
    try:
        other = await service.submit(VideoRequest(prompt="another"))
        mine = await service.submit(VideoRequest(prompt="mine"))
        sim.faults.update({"canned": 10_000, "canned_for": other.server_id, "canned_status": 401,
                           "canned_body": '{"error": {"message": "Invalid API key", "type": "invalid_api_key"}}'})
        await service.start()
        with pytest.raises(PollingHalted) as caught:
            await asyncio.wait_for(service.wait([mine.local_id]), 15)
        assert caught.value.exit_code == 3 and "401" in caught.value.message
    finally:
        await service.close()
