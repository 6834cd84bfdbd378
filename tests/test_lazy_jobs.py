"""The dashboard reads finished jobs without their detail and reads it back when it is used:
whatever is asked of a job read so, the answer is the one a whole read gives."""

from __future__ import annotations

import json
import threading

import pytest
from helpers import app_settings, started, until
from tinydb import TinyDB

import tui.core.store as store_module
from tui.core.records import Job, LazyJob, missing_detail
from tui.core.store import SLICE, HistoryStore, SnapshotChanged

COUNT = 2 * SLICE + 500


def finished_job(n: int) -> Job:
    job = Job(local_id=f"job{n:06d}", request={"model": "hailuo-2.3-fast", "prompt": f"prompt {n}",
                                               "resolution": "768P", "duration": 6},
              submitted_at=1_700_000_000.0 + n, server_id=f"srv{n:06d}")
    job.set_status("processing", job.submitted_at + 1)
    job.set_status("completed", job.submitted_at + 90)
    job.outputs = [f"https://cdn.example/{n}.mp4"]
    job.has_nsfw_contents = [False]
    job.execution_time_ms = 80_000 + n
    job.raw = {"id": job.server_id, "status": "completed", "outputs": list(job.outputs), "n": n}
    job.downloads = [{"url": job.outputs[0], "path": f"/videos/{n}.mp4", "size": n, "sha256": "ab", "at": 1.0}]
    return job


def history(path, count: int = COUNT, running: tuple[int, ...] = ()) -> None:
    """`count` jobs in one snapshot; the ones in `running` still processing."""
    with HistoryStore.open(path, flush_interval=60) as store:
        for n in range(count):
            job = finished_job(n)
            if n in running:
                job.status = "processing"
            store.put(job)


def test_a_lazy_read_gives_the_jobs_a_whole_read_gives_and_holds_no_detail_until_asked(tmp_path):
    path = tmp_path / "history.json"
    history(path, running=(7, COUNT - 3))
    whole = HistoryStore.open(path, read_only=True)
    lazy = HistoryStore.open(path, read_only=True, lazy=True)
    lazy_jobs = lazy.all()
    assert [job.local_id for job in lazy_jobs] == [job.local_id for job in whole.all()]
    # Nothing but the running jobs holds its detail yet; they are read whole.
    assert [job.local_id for job in lazy_jobs if not isinstance(job, LazyJob)] == ["job002497", "job000007"]
    assert all(missing_detail(job) for job in lazy_jobs if isinstance(job, LazyJob))
    # What the table, the counts and the figures read needs no detail.
    for job in lazy_jobs:
        job.is_finished, job.is_pending, job.status, job.model, job.prompt, job.execution_time_ms
    assert all(missing_detail(job) for job in lazy_jobs if isinstance(job, LazyJob))
    for mine, theirs in zip(lazy_jobs, whole.all()):
        assert mine == theirs
        assert mine.to_doc() == theirs.to_doc() and mine.to_public() == theirs.to_public()


def test_opening_one_job_reads_back_its_slice_only(tmp_path):
    path = tmp_path / "history.json"
    history(path)
    store = HistoryStore.open(path, read_only=True, lazy=True)
    newest = store.all()
    assert newest[0].outputs == [f"https://cdn.example/{COUNT - 1}.mp4"]
    read = [job for job in newest if not missing_detail(job)]
    assert len(read) == SLICE and read == newest[:SLICE]  # the snapshot is written newest first
    assert newest[SLICE].status_history[-1][0] == "completed"
    assert sum(not missing_detail(job) for job in newest) == 2 * SLICE


def test_detail_given_before_it_was_read_is_kept_when_the_rest_is_read(tmp_path):
    path = tmp_path / "history.json"
    history(path, count=10)
    job = HistoryStore.open(path, read_only=True, lazy=True).get("job000004")
    job.downloads = []  # the user removed the file (say) before anything read the detail
    assert job.outputs == ["https://cdn.example/4.mp4"]
    assert job.downloads == []
    assert job.to_doc()["downloads"] == []


def test_a_compaction_writes_every_detail_without_keeping_it(tmp_path):
    path = tmp_path / "history.json"
    history(path)
    with HistoryStore.open(path, lazy=True) as store:
        changed = store.get("job000010")
        changed.error = "looked at again"  # a summary field, changed without reading the detail
        store.put(changed)
        store._compact_next = True
        store.flush()  # a whole new snapshot
        # Every job was written with its detail, and none of them holds it now.
        assert all(missing_detail(job) for job in store.all())
    with TinyDB(path, access_mode="r") as tiny:
        docs = {doc["local_id"]: doc for doc in tiny.table("jobs").all()}
    assert len(docs) == COUNT
    assert docs["job000010"]["error"] == "looked at again"
    for n in (0, 20, COUNT - 1):
        assert docs[f"job{n:06d}"] == json.loads(json.dumps(finished_job(n).to_doc()))


def test_a_snapshot_replaced_by_the_writer_still_gives_a_reader_the_detail_it_read(tmp_path):
    path = tmp_path / "history.json"
    history(path, count=50)
    with HistoryStore.open(path, lazy=True) as writer:
        reader = HistoryStore.open(path, read_only=True, lazy=True)
        job = writer.get("job000030")
        job.outputs = ["https://cdn.example/new.mp4"]
        writer.put(job)
        writer._compact_next = True
        writer.flush()  # the file is replaced by another snapshot
        assert reader.get("job000030").outputs == ["https://cdn.example/30.mp4"]  # as it was when read
        reader.reload()
        assert reader.get("job000030").outputs == ["https://cdn.example/new.mp4"]


def test_a_snapshot_rewritten_in_place_by_another_program_is_said_and_never_written_over(tmp_path):
    path = tmp_path / "history.json"
    history(path, count=50)
    with HistoryStore.open(path, lazy=True) as store:
        job = store.get("job000040")
        # Another program writes the file in place (the way TinyDB's own storage does).
        other = path.read_bytes().replace(b'"local_id":"job000040"', b'"local_id":"job999940"')
        with open(path, "r+b") as handle:
            handle.write(other)
        with pytest.raises(SnapshotChanged, match="changed by another program"):
            job.outputs
        job = store.get("job000001")
        job.error = "changed after"
        store.put(job)
        store._compact_next = True
        store.flush()  # a new snapshot cannot be written: the change goes to the journal
        assert "changed by another program" in store.last_write_error
        assert any("changed by another program" in notice for notice in store.notices)
        assert path.read_bytes() == other  # not written over with what could not be read
        journal = path.with_name(path.name + ".journal").read_text()
        assert '"changed after"' in journal
    assert path.read_bytes() == other  # nor on close


def test_two_threads_reading_one_slice_each_see_the_whole_detail(tmp_path):
    path = tmp_path / "history.json"
    history(path)
    jobs = HistoryStore.open(path, read_only=True, lazy=True).all()
    seen: dict[str, list] = {}
    start = threading.Barrier(2)

    def read(name: str, chosen: list[Job]) -> None:
        start.wait()
        seen[name] = [job.outputs[0] for job in chosen]

    threads = [threading.Thread(target=read, args=(name, jobs[offset::7])) for name, offset in (("a", 0), ("b", 3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["a"] == [f"https://cdn.example/{COUNT - 1 - i}.mp4" for i in range(0, COUNT, 7)]
    assert seen["b"] == [f"https://cdn.example/{COUNT - 1 - i}.mp4" for i in range(3, COUNT, 7)]


def test_the_last_slice_a_compaction_read_back_is_let_go(tmp_path):
    path = tmp_path / "history.json"
    history(path)
    with HistoryStore.open(path, lazy=True) as store:
        store._compact_next = True
        store.put(store.all()[-1])
        store.flush()
        assert store_module._last_whole == (None, [])


def test_a_reread_history_lets_the_jobs_it_read_before_go(tmp_path):
    import sys

    path = tmp_path / "history.json"
    history(path, count=50)
    store = HistoryStore.open(path, read_only=True, lazy=True)
    kept = store.get("job000003")  # still shown, say
    old = store.get("job000004")
    store.reload()
    # Held by this test alone (and the call's argument): no slice keeps it, cycle or not.
    assert sys.getrefcount(old) == 2
    assert kept.outputs == ["https://cdn.example/3.mp4"]


async def test_the_dashboard_filters_sorts_and_counts_a_big_history_reading_one_slice_back(tmp_path):
    """What the dashboard does with every job needs no job's detail; opening one reads it."""
    from textual.widgets import OptionList

    from tui.core.job_index import search_text
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable

    settings = app_settings(tmp_path, "http://127.0.0.1:9")
    history(settings.db_path)
    app = HailuoApp(settings, poll=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == COUNT, pilot=pilot)
        await pilot.press("slash", *"prompt 12", "enter")
        matching = [job for job in app.service.store.all() if "12" in search_text(job)]
        assert 0 < len(matching) < COUNT
        await until(lambda: table.visible_count == len(matching), pilot=pilot, what=lambda: table.visible_count)
        await pilot.press("s", "s", "S")
        read = [job for job in app.service.store.all() if not missing_detail(job)]
        assert len(read) <= SLICE  # the selected job's slice, at most
        wanted = next(job for job in table.visible_jobs() if isinstance(job, LazyJob) and missing_detail(job))
        assert table.select(wanted.local_id)
        await app.detail()
        outputs = app.query_one("#outputs", OptionList)
        url = f"https://cdn.example/{int(wanted.local_id[3:])}.mp4"

        def shown() -> list[str]:
            return [str(outputs.get_option_at_index(i).prompt) for i in range(outputs.option_count)]

        await until(lambda: shown() == [url], pilot=pilot, what=shown)


def test_a_lazy_job_changed_and_appended_to_the_journal_keeps_no_slice_in_memory(tmp_path):
    path = tmp_path / "history.json"
    history(path, count=50)
    with HistoryStore.open(path, lazy=True) as store:
        job = store.get("job000020")
        job.error = "noted"
        store.put(job)
        store.flush()  # one journal line, its detail read from the file
        assert store_module._last_whole == (None, [])
        assert missing_detail(job)
    with HistoryStore.open(path) as again:
        assert again.get("job000020").error == "noted"
        assert again.get("job000020").outputs == ["https://cdn.example/20.mp4"]
