"""Downloading outputs: names, Range resume, size checks, no overwrite, no key sent, history records.

Everything runs against the loopback simulator's output files (a real MP4 served with Range
support and file fault knobs); two hosts the simulator cannot imitate (one that ignores Range,
one that under-delivers silently) are httpx mock transports.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tui.core.config import Settings
from tui.core.downloads import (
    ALREADY,
    DOWNLOADED,
    RESUMED,
    Downloader,
    DownloadError,
    RETRIES,
    NothingToDownload,
    output_file_name,
    slugify,
)
from tui.core.events import DownloadFinished, DownloadProgress
from tui.core.jobs import JobService
from tui.core.records import Job
from tui.simulator.server import sample_video

KEY = "sk-test-downloads-0123456789"
FAST = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0)
VIDEO = sample_video()


def no_sleep(_seconds: float):
    async def done() -> None:
        return None

    return done()


def output_url(sim) -> str:
    job_id = sim.seed_job(status="completed")
    return f"{sim.base_url}/files/{job_id}.mp4"


def file_requests(sim) -> list:
    return [r for r in sim.requests if r.path.startswith("/files/")]


def make_job(**changes) -> Job:
    values = dict(local_id="abc123def456", server_id="sim0001abcdef", status="completed",
                  request={"model": "hailuo-2.3-fast", "scene": "text-to-video", "prompt": "a red fox in snow"},
                  submitted_at=1_790_000_000.0, outputs=["https://cdn.example.invalid/v/one.mp4"])
    values.update(changes)
    return Job(**values)


# -- names ---------------------------------------------------------------------------------------


def test_file_name_is_id_model_and_a_short_prompt_slug():
    assert output_file_name(make_job(), 0) == "sim0001abcdef_hailuo-2.3-fast_a-red-fox-in-snow.mp4"


def test_file_names_are_safe_bounded_and_numbered_per_output():
    hostile = make_job(server_id="../../etc/passwd\x00", outputs=["https://h/a.webm?x=1", "https://h/b"],
                       request={"model": "hailuo-02-pro", "prompt": "Ünïcödé /slashes/ \x1b[31mred\x1b[0m " * 20})
    first, second = output_file_name(hostile, 0), output_file_name(hostile, 1)
    for name in (first, second):
        assert "/" not in name and "\x00" not in name and "\x1b" not in name and not name.startswith(".")
        assert len(name.encode()) <= 160
        assert all(ch.isalnum() or ch in "._-" for ch in name)
    assert first.endswith("_1.webm") and second.endswith("_2.mp4")
    assert first.split("_")[2].startswith("unicode-slashes-31mred")


def test_slug_cuts_at_a_word_and_falls_back_when_nothing_latin_is_left():
    assert slugify("one two three four five six seven eight nine ten", limit=20) == "one-two-three-four"
    assert output_file_name(make_job(request={"model": "hailuo-2.3-pro", "prompt": "一只狐狸"}), 0) \
        == "sim0001abcdef_hailuo-2.3-pro_video.mp4"


# -- one file against the simulator ------------------------------------------------------------------


async def test_a_whole_download_matches_the_hosts_bytes_and_reports_progress(simulator, tmp_path):
    url = output_url(simulator)
    seen: list[tuple[int, int | None]] = []
    async with Downloader() as downloader:
        saved = await downloader.fetch(url, tmp_path / "out" / "v.mp4", on_progress=lambda r, t: seen.append((r, t)))
    assert saved.outcome == DOWNLOADED and saved.path == tmp_path / "out" / "v.mp4"
    assert saved.path.read_bytes() == VIDEO and saved.size == len(VIDEO)
    assert not (tmp_path / "out" / "v.mp4.part").exists()
    assert seen[-1] == (len(VIDEO), len(VIDEO))
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)


async def test_a_cut_transfer_is_resumed_with_range_in_the_same_run(simulator, tmp_path):
    url = output_url(simulator)
    simulator.faults.file_cut, simulator.faults.file_cut_after = 1, 2048
    async with Downloader(sleep=no_sleep) as downloader:
        saved = await downloader.fetch(url, tmp_path / "v.mp4")
    assert saved.path.read_bytes() == VIDEO
    ranges = [r.headers.get("Range") for r in file_requests(simulator)]
    assert ranges == [None, "bytes=2048-"]


async def test_an_interrupted_download_resumes_later_from_its_part_file(simulator, tmp_path):
    url = output_url(simulator)
    target = tmp_path / "v.mp4"
    simulator.faults.file_cut, simulator.faults.file_cut_after = 1, 3000
    async with Downloader(retries=0) as downloader:
        with pytest.raises(DownloadError) as stopped:
            await downloader.fetch(url, target)
    assert stopped.value.resumable and "run the download again to resume" in stopped.value.message
    part = tmp_path / "v.mp4.part"
    assert part.read_bytes() == VIDEO[:3000] and not target.exists()

    async with Downloader() as downloader:
        saved = await downloader.fetch(url, target)
    assert saved.outcome == RESUMED
    assert target.read_bytes() == VIDEO and not part.exists()
    assert file_requests(simulator)[-1].headers.get("Range") == "bytes=3000-"
    assert saved.sha256 == __import__("hashlib").sha256(VIDEO).hexdigest()


async def test_a_cancelled_download_keeps_its_part_and_the_next_one_resumes(simulator, tmp_path):
    url = output_url(simulator)
    simulator.faults.file_chunk_delay = 0.05
    target = tmp_path / "v.mp4"
    started = asyncio.Event()
    async with Downloader() as downloader:
        task = asyncio.ensure_future(downloader.fetch(url, target, on_progress=lambda r, t: r > 0 and started.set()))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    kept = (tmp_path / "v.mp4.part").read_bytes()
    assert 0 < len(kept) < len(VIDEO) and VIDEO.startswith(kept)
    simulator.faults.file_chunk_delay = 0
    async with Downloader() as downloader:
        saved = await downloader.fetch(url, target)
    assert saved.outcome == RESUMED and target.read_bytes() == VIDEO


async def test_a_file_that_changes_size_between_pieces_is_refused_and_its_part_removed(simulator, tmp_path):
    url = output_url(simulator)
    simulator.faults.file_cut, simulator.faults.file_cut_after = 1, 2048
    simulator.faults.file_total_extra = 500  # the resumed piece announces a bigger file
    async with Downloader(sleep=no_sleep) as downloader:
        with pytest.raises(DownloadError) as refused:
            await downloader.fetch(url, tmp_path / "v.mp4")
    assert "size mismatch" in refused.value.message and f"{len(VIDEO):,}" in refused.value.message
    assert refused.value.exit_code == 4
    assert list(tmp_path.iterdir()) == []


async def test_a_host_that_keeps_sending_less_than_announced_fails_the_size_check(tmp_path):
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "1000", "Content-Type": "video/mp4"},
                              stream=httpx.ByteStream(b"x" * 600))

    async with Downloader(retries=1, sleep=no_sleep, transport=httpx.MockTransport(short)) as downloader:
        with pytest.raises(DownloadError) as stopped:
            await downloader.fetch("https://cdn.example.invalid/v.mp4", tmp_path / "v.mp4")
    assert "600 of the 1,000 bytes announced" in stopped.value.message
    assert not (tmp_path / "v.mp4").exists()


async def test_a_host_that_ignores_range_restarts_the_part_from_zero(tmp_path):
    body = bytes(range(256)) * 20
    (tmp_path / "v.mp4.part").write_bytes(b"stale bytes from an older file")

    def whole(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("Range") == "bytes=30-"
        return httpx.Response(200, headers={"Content-Type": "video/mp4", "Content-Length": str(len(body))},
                              stream=httpx.ByteStream(body))

    async with Downloader(transport=httpx.MockTransport(whole)) as downloader:
        saved = await downloader.fetch("https://cdn.example.invalid/v.mp4", tmp_path / "v.mp4")
    assert saved.outcome == DOWNLOADED and (tmp_path / "v.mp4").read_bytes() == body


async def test_busy_host_is_retried_after_its_retry_after(simulator, tmp_path):
    url = output_url(simulator)
    simulator.faults.file_errors = 2
    async with Downloader() as downloader:
        saved = await downloader.fetch(url, tmp_path / "v.mp4")
    assert saved.path.read_bytes() == VIDEO and len(file_requests(simulator)) == 3


async def test_a_missing_output_is_one_clear_error_without_leftovers(tmp_path):
    gone = httpx.MockTransport(lambda request: httpx.Response(404, text="gone"))
    async with Downloader(transport=gone) as downloader:
        with pytest.raises(DownloadError) as missing:
            await downloader.fetch("https://cdn.example.invalid/v.mp4", tmp_path / "v.mp4")
    assert missing.value.message == "the output host answered 404; the link may have expired"
    assert list(tmp_path.iterdir()) == []


# -- never overwrite ---------------------------------------------------------------------------------


async def test_a_different_file_with_the_name_is_kept_and_the_download_takes_a_new_name(simulator, tmp_path):
    url = output_url(simulator)
    mine = tmp_path / "v.mp4"
    mine.write_bytes(b"my own edit of the video")
    async with Downloader() as downloader:
        saved = await downloader.fetch(url, mine)
    assert mine.read_bytes() == b"my own edit of the video"
    assert saved.path == tmp_path / "v.2.mp4" and saved.path.read_bytes() == VIDEO
    assert saved.outcome == DOWNLOADED


async def test_the_same_file_already_there_is_reported_not_duplicated(simulator, tmp_path):
    url = output_url(simulator)
    (tmp_path / "v.mp4").write_bytes(VIDEO)
    async with Downloader() as downloader:
        saved = await downloader.fetch(url, tmp_path / "v.mp4")
        assert saved.outcome == ALREADY and saved.path == tmp_path / "v.mp4"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
        # Known from the history and intact on disk: not even asked for again.
        before = len(file_requests(simulator))
        again = await downloader.fetch(url, tmp_path / "v.mp4", known=[saved.record(0.0)])
    assert again.outcome == ALREADY and len(file_requests(simulator)) == before


async def test_two_downloads_to_one_name_at_once_the_second_is_refused(simulator, tmp_path):
    url = output_url(simulator)
    simulator.faults.file_chunk_delay = 0.05
    async with Downloader() as downloader:
        started = asyncio.Event()
        first = asyncio.ensure_future(downloader.fetch(url, tmp_path / "v.mp4",
                                                       on_progress=lambda r, t: r > 0 and started.set()))
        await asyncio.wait_for(started.wait(), 10)
        with pytest.raises(DownloadError) as busy:
            await downloader.fetch(url, tmp_path / "v.mp4")
        assert "being downloaded" in busy.value.message and busy.value.exit_code == 2
        saved = await first
    assert saved.path.read_bytes() == VIDEO


# -- through the job service --------------------------------------------------------------------------


def service_for(sim, tmp_path, **changes) -> JobService:
    values = dict(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json",
                  download_dir=tmp_path / "downloads", **FAST)
    values.update(changes)
    return JobService.open(Settings(**values))


@pytest.mark.parametrize("auth_scheme", ["raw", "bearer"])
async def test_the_key_is_never_sent_to_the_output_host_even_when_it_is_the_api_host(make_simulator, tmp_path,
                                                                                      auth_scheme):
    sim = make_simulator(require_key=KEY)
    sid = sim.seed_job(status="completed", prompt="a heron")
    async with service_for(sim, tmp_path, auth_scheme=auth_scheme) as service:
        (job,) = await service.attach([sid])
        assert job.outputs[0].startswith(sim.base_url)  # same host and port as the API
        await service.download(job.local_id)
    api = [r for r in sim.requests if r.path.startswith("/api/")]
    files = file_requests(sim)
    assert api and all(KEY in r.headers.get("Authorization", "") for r in api)
    assert files and all(name.lower() != "authorization" for r in files for name in r.headers)
    assert all(KEY not in json.dumps(r.headers) for r in files)


async def test_a_download_is_recorded_on_the_job_and_survives_a_restart(make_simulator, tmp_path):
    from tui.core.catalog import VideoRequest

    sim = make_simulator(job_seconds=0.2)
    events: list = []
    async with service_for(sim, tmp_path) as service:
        service.subscribe(events.append)
        await service.start()
        job = await service.submit(VideoRequest(prompt="A heron lifting off a misty lake, at dawn!"))
        await service.wait([job.local_id])
        (saved,) = await service.download(job.local_id)
    sid = job.server_id
    expected = tmp_path / "downloads" / f"{sid}_hailuo-2.3-fast_a-heron-lifting-off-a-misty-lake-at-dawn.mp4"
    assert saved.path == expected and expected.read_bytes() == VIDEO
    progress = [e for e in events if isinstance(e, DownloadProgress)]
    assert progress and progress[-1].received == progress[-1].total == len(VIDEO)
    assert progress[-1].path == str(expected)
    (done,) = [e for e in events if isinstance(e, DownloadFinished)]
    assert done.paths == (str(expected),) and done.error is None and done.outcomes == (DOWNLOADED,)

    from tui.core.store import HistoryStore

    with HistoryStore.open(tmp_path / "history.json", read_only=True) as store:
        (reloaded,) = store.all()
    assert [d["path"] for d in reloaded.downloads] == [str(expected)]
    assert reloaded.to_public()["downloads"] == [{"url": job.outputs[0], "path": str(expected), "size": len(VIDEO)}]


def test_history_documents_from_before_downloads_still_load():
    doc = make_job().to_doc()
    del doc["downloads"]
    assert Job.from_doc(doc).downloads == []


async def test_a_job_without_outputs_says_why_and_fetches_nothing(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=60)
    running = sim.seed_job(status="processing")
    failed = sim.seed_job(status="failed", error="generation failed")
    async with service_for(sim, tmp_path) as service:
        jobs = await service.attach([running, failed])
        with pytest.raises(NothingToDownload) as pending:
            await service.download(jobs[0].local_id)
        with pytest.raises(NothingToDownload) as ended:
            await service.download(jobs[1].local_id)
    # The job is named once, by whoever shows the message (the CLI's `error: ID: ...`, the toast's id).
    assert pending.value.message == "still processing: no output yet"
    assert ended.value.message == "ended failed with no output: generation failed"
    assert pending.value.exit_code == 1 and file_requests(sim) == []


async def test_auto_download_saves_a_job_that_completes_while_watched(make_simulator, tmp_path):
    from tui.core.catalog import VideoRequest

    sim = make_simulator(job_seconds=0.3)
    async with service_for(sim, tmp_path, auto_download=True) as service:
        await service.start()
        job = await service.submit(VideoRequest(prompt="a kite over the dunes"))
        await service.wait([job.local_id])
        await service.wait_downloads()
        assert [Path(d["path"]).read_bytes() for d in job.downloads] == [VIDEO]


async def test_without_auto_download_a_completed_job_is_not_fetched(make_simulator, tmp_path):
    from tui.core.catalog import VideoRequest

    sim = make_simulator(job_seconds=0.3)
    async with service_for(sim, tmp_path) as service:
        await service.start()
        job = await service.submit(VideoRequest(prompt="a kite over the dunes"))
        await service.wait([job.local_id])
        await service.wait_downloads()
    assert job.is_success and job.downloads == [] and file_requests(sim) == []


# -- hostile answers: URLs that are not http(s), Retry-After that says nothing, every output tried --


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "data:video/mp4;base64,AAAA",
                                 "http:///no-host.mp4", "", "ftp://h/a.mp4"])
async def test_a_url_that_is_not_http_is_refused_before_any_file_is_made(url, tmp_path):
    async with Downloader(sleep=no_sleep) as downloader:
        with pytest.raises(DownloadError) as caught:
            await downloader.fetch(url, tmp_path / "out" / "video.mp4")
    assert "connection was dropped" not in caught.value.message
    assert caught.value.message.startswith("the output URL")
    assert not (tmp_path / "out").exists()


async def test_retry_after_that_says_nothing_is_ignored_and_no_empty_part_is_left(make_simulator, tmp_path):
    sim = make_simulator()
    url = output_url(sim)
    sim.faults.update({"file_errors": 100, "retry_after_text": "soon"})
    async with Downloader(sleep=no_sleep) as downloader:
        with pytest.raises(DownloadError) as caught:
            await downloader.fetch(url, tmp_path / "video.mp4")
    assert "the host answered 503" in caught.value.message
    assert list(tmp_path.iterdir()) == []
    assert len(file_requests(sim)) == 1 + RETRIES


async def test_every_output_of_a_job_is_tried_when_one_fails(make_simulator, tmp_path):
    sim = make_simulator()
    good = output_url(sim)
    settings = Settings(api_key=None, base_url=sim.base_url, db_path=tmp_path / "history.json",
                        download_dir=tmp_path / "videos")
    service = JobService.open(settings)
    job = make_job(outputs=["javascript:alert(1)", f"{sim.base_url}/files/nope", good])
    service.store.put(job)
    finished: list = []
    service.subscribe(lambda e: finished.append(e) if isinstance(e, DownloadFinished) else None)
    try:
        with pytest.raises(DownloadError) as caught:
            await service.download(job.local_id)
    finally:
        await service.close()
    assert caught.value.message.startswith("2 of 3 outputs failed (output 1: the output URL 'javascript:")
    assert "output 2: the output host answered 401" in caught.value.message  # not a file path: the API refuses it
    assert [Path(d["path"]).name for d in job.downloads] == [output_file_name(job, 2)]
    assert finished[-1].error == caught.value.message and len(finished[-1].paths) == 1
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [output_file_name(job, 2)]
