"""The history survives crashes, stays small to update, and never holds image bytes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import tui.core.store as store_module
from tui.core.records import SUBMITTING, UNKNOWN, UNKNOWN_OUTCOME_MESSAGE, Job
from tui.core.store import HistoryStore, ReadOnlyHistoryError


def abandon(store: HistoryStore) -> None:
    """Leave the files as a killed process would: as last flushed, the journal not folded in."""
    import atexit

    atexit.unregister(store.close)
    store._closed = True
    store._wake.set()
    os.close(store._lock_fd)
    store._lock_fd = None


def make_job(n: int, **fields) -> Job:
    job = Job(local_id=f"job{n:06d}", request={"model": "hailuo-2.3-fast", "prompt": f"prompt {n}"},
              submitted_at=1_700_000_000.0 + n, server_id=f"srv{n:06d}")
    for key, value in fields.items():
        setattr(job, key, value)
    return job


def test_jobs_survive_a_reopen_newest_first_and_are_found_by_prefix(tmp_path):
    path = tmp_path / "h" / "history.json"
    with HistoryStore.open(path) as store:
        for n in range(5):
            store.put(make_job(n))
    with HistoryStore.open(path) as store:
        assert [j.local_id for j in store.all()] == [f"job{n:06d}" for n in (4, 3, 2, 1, 0)]
        assert store.find("srv000003").local_id == "job000003"
        assert store.find("job000002").server_id == "srv000002"
        assert store.find("job") is None  # ambiguous prefix
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_a_burst_of_changes_becomes_a_few_appends(tmp_path):
    path = tmp_path / "history.json"
    store = HistoryStore.open(path, flush_interval=0.2)
    store.put(make_job(0))
    store.flush()  # the first write makes the snapshot; what follows is appended
    job = make_job(1)
    for n in range(500):
        job.poll_errors = n
        store.put(job)
    time.sleep(0.6)
    lines = path.with_name("history.json.journal").read_text().splitlines()
    store.close()
    assert 1 <= len(lines) <= 3
    assert json.loads(lines[-1])["doc"]["poll_errors"] == 499


def test_one_change_appends_the_same_few_bytes_whatever_the_history_size(tmp_path):
    sizes = []
    for count in (10, 3000):
        path = tmp_path / f"h{count}" / "history.json"
        with HistoryStore.open(path) as store:
            for n in range(count):
                store.put(make_job(n, status="created"))
        # Closed: every job is in the snapshot and the journal is empty, whatever the writer
        # thread did meanwhile. What one change adds is then the whole journal, however the
        # flushes fall (the writer's own, or this one: they are serialised, one append).
        journal = path.with_name("history.json.journal")
        with HistoryStore.open(path) as store:
            assert not journal.exists() or journal.stat().st_size == 0
            job = store.get("job000001")
            job.set_status("processing")
            store.put(job)
            store.flush()
            sizes.append(journal.stat().st_size)
            assert len(journal.read_bytes().splitlines()) == 1
    assert abs(sizes[0] - sizes[1]) < 16 and max(sizes) < 2000  # only the sequence number grows


def test_a_torn_journal_tail_is_ignored(tmp_path):
    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        store.put(make_job(1))
        store.put(make_job(2))
    with open(path.with_name("history.json.journal"), "ab") as fh:
        fh.write(b'{"seq": 99, "op": "put", "id": "job9", "doc": {"local_')
    with HistoryStore.open(path) as store:
        assert sorted(j.local_id for j in store.all()) == ["job000001", "job000002"]
        store.put(make_job(3))
    with HistoryStore.open(path) as store:
        assert len(store) == 3


def test_a_damaged_line_inside_the_journal_loses_no_entry_after_it(tmp_path):
    path = tmp_path / "history.json"
    journal = path.with_name("history.json.journal")
    store = HistoryStore.open(path, flush_interval=60)
    store.put(make_job(0))
    store.flush()  # the snapshot
    store.remove("job000000")
    store.flush()
    for n in range(1, 4):
        store.put(make_job(n))
        store.flush()  # a line each
    abandon(store)  # a crash: the journal is still there to be damaged
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"seq": 3, "op": "put", "id": "job000002", "doc": {"loc\xff\n'  # a bad sector, say
    journal.write_bytes(b"".join(lines))
    with HistoryStore.open(path, flush_interval=0.05) as store:
        # The job after the damage is there, and stays there after the next write.
        assert sorted(j.local_id for j in store.all()) == ["job000001", "job000003"]
        (notice,) = store.notices
        assert "1 damaged line" in notice and "copy" in notice
        store.put(make_job(4))
    (copy,) = tmp_path.glob("history.json.journal.damaged-*")
    assert copy.read_bytes() == b"".join(lines)
    with HistoryStore.open(path) as store:
        assert sorted(j.local_id for j in store.all()) == ["job000001", "job000003", "job000004"]
        assert store.notices == []  # folded into the snapshot: the damage is not read again


def test_a_corrupt_snapshot_is_moved_aside_and_the_user_told_where(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("{ this is not json")
    with HistoryStore.open(path) as store:
        aside = list(tmp_path.glob("history.json.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_text() == "{ this is not json"
        assert any(str(aside[0]) in notice for notice in store.notices)


def test_compaction_folds_the_journal_into_the_snapshot_and_keeps_everything(tmp_path, monkeypatch):
    monkeypatch.setattr("tui.core.store.JOURNAL_COMPACT_BYTES", 2000)
    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        for n in range(200):
            store.put(make_job(n))
            if n % 20 == 0:
                store.flush()
    assert path.exists() and json.loads(path.read_text())["_meta"]
    with HistoryStore.open(path) as store:
        assert len(store) == 200


def test_no_image_data_is_ever_stored(tmp_path):
    with HistoryStore.open(tmp_path / "history.json") as store:
        job = make_job(1)
        job.request["image"] = "data:image/png;base64,iVBORw0KGgo="
        with pytest.raises(ValueError):
            store.put(job)


def test_a_job_caught_submitting_by_a_crash_comes_back_unknown(tmp_path):
    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        store.put(make_job(1, status="submitting", server_id=None))
    with HistoryStore.open(path) as store:
        job = store.get("job000001")
        assert job.status == UNKNOWN and job.error == UNKNOWN_OUTCOME_MESSAGE


def test_a_full_disk_keeps_the_old_history_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    store = HistoryStore.open(path)
    store.put(make_job(1))
    store.flush()
    store.put(make_job(1, status="processing"))
    store.flush()
    journal = path.with_name("history.json.journal")
    before = journal.read_bytes()
    real_write = os.write

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    store.put(make_job(2))
    with pytest.raises(OSError):
        store.flush()
    assert journal.read_bytes() == before
    assert "disk is full" in store.last_write_error
    monkeypatch.setattr(os, "write", real_write)
    store.flush()  # the job was kept and goes out on the next try
    store.close()
    with HistoryStore.open(path) as again:
        assert len(again) == 2


def test_a_second_instance_is_read_only_while_the_first_writes(tmp_path):
    path = tmp_path / "history.json"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from tui.core.store import HistoryStore
        s = HistoryStore.open({str(path)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        s.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = HistoryStore.open(path)
        assert second.read_only and any("read-only" in n for n in second.notices)
        with pytest.raises(ReadOnlyHistoryError):
            second.put(make_job(1))
        second.close()
    finally:
        holder.communicate("\n", timeout=10)


WRITER = textwrap.dedent("""
    import sys
    from tui.core.records import Job
    from tui.core.store import HistoryStore
    store = HistoryStore.open(sys.argv[1], flush_interval=0.01)
    n = 0
    while True:
        job = Job(local_id=f"{sys.argv[2]}-{n}", request={"prompt": "x" * (n % 300)}, submitted_at=float(n),
                  server_id=f"s{n}")
        store.put(job)
        if n % 3 == 0:
            job.status = "processing"
            store.put(job)
        store.flush()
        print(job.local_id, flush=True)
        n += 1
""")


@pytest.mark.parametrize("runs", [pytest.param(6, id="short"), pytest.param(50, id="long", marks=pytest.mark.slow)])
def test_sigkill_at_random_moments_never_loses_an_acknowledged_job(tmp_path, runs):
    path = tmp_path / "history.json"
    rng = random.Random(runs)
    acknowledged: set[str] = set()
    for run in range(runs):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"r{run}"], stdout=subprocess.PIPE,
                                text=True)
        # Killed at a random moment once it writes (its start-up takes any time on a loaded machine).
        first = proc.stdout.readline()
        time.sleep(rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged |= set((first + out).split())
        with HistoryStore.open(path) as store:  # parses, and takes the lock the dead writer left
            ids = [j.local_id for j in store.all()]
            assert len(ids) == len(set(ids))
            assert acknowledged <= set(ids)
    assert acknowledged


def _compacted(path, count: int, monkeypatch) -> None:
    monkeypatch.setattr("tui.core.store.JOURNAL_COMPACT_BYTES", 2000)
    with HistoryStore.open(path) as store:
        for n in range(count):
            store.put(make_job(n))
            if n % 20 == 0:
                store.flush()


def test_the_snapshot_is_a_tinydb_database_with_one_job_a_line(tmp_path, monkeypatch):
    from tinydb import TinyDB

    path = tmp_path / "history.json"
    _compacted(path, 200, monkeypatch)
    db = TinyDB(path, access_mode="r")
    try:
        in_snapshot = {doc["local_id"] for doc in db.table("jobs").all()}
    finally:
        db.close()
    lines = path.read_bytes().splitlines()
    assert len(in_snapshot) > 150
    assert sum(1 for line in lines if b'"local_id"' in line) == len(in_snapshot)
    assert all(len(line) < 2000 for line in lines)


def test_a_snapshot_on_one_line_as_tinydb_writes_it_still_opens(tmp_path):
    from tinydb import TinyDB

    path = tmp_path / "history.json"
    db = TinyDB(path)
    db.table("jobs").insert_multiple([make_job(n).to_doc() for n in range(30)])
    db.table("_meta").insert({"seq": 0})
    db.close()
    assert len(path.read_bytes().splitlines()) == 1
    with HistoryStore.open(path) as store:
        assert len(store) == 30 and store.get("job000029").server_id == "srv000029"
        assert not store.notices


def test_a_snapshot_cut_short_is_moved_aside_and_the_journal_kept(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    _compacted(path, 200, monkeypatch)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with HistoryStore.open(path) as store:
        assert any("moved aside" in notice for notice in store.notices)
        assert len(list(tmp_path.glob("history.json.corrupt-*"))) == 1
        assert len(store) < 200  # what the journal held since the last compaction


def test_changes_made_while_the_snapshot_is_written_are_kept(tmp_path, monkeypatch):
    import tui.core.store as store_module

    monkeypatch.setattr(store_module, "SLICE", 10)
    path = tmp_path / "history.json"
    store = HistoryStore.open(path)
    for n in range(100):
        store.put(make_job(n))
    store.flush()
    real_chunks = store_module._snapshot_chunks

    def chunks_with_changes_between_slices(tables):
        for index, chunk in enumerate(real_chunks(tables)):
            yield chunk
            if index == 3:  # some jobs written, others not yet: change one of each, remove one of each
                for n in (2, 90):
                    job = store.get(f"job{n:06d}")
                    job.set_status("completed")
                    store.put(job)
                store.remove("job000005")
                store.remove("job000095")
                store.put(make_job(500))

    monkeypatch.setattr(store_module, "_snapshot_chunks", chunks_with_changes_between_slices)
    with store._io_lock:
        store._compact()
    monkeypatch.setattr(store_module, "_snapshot_chunks", real_chunks)
    store.close()
    with HistoryStore.open(path) as again:
        assert len(again) == 99
        assert again.get("job000002").status == "completed" and again.get("job000090").status == "completed"
        assert again.get("job000005") is None and again.get("job000095") is None
        assert again.get("job000500") is not None


def test_each_flush_writes_the_files_once_even_when_it_compacts(tmp_path, monkeypatch):
    import tui.core.store as store_module

    monkeypatch.setattr(store_module, "JOURNAL_COMPACT_BYTES", 3000)
    writes: list[str] = []
    real_atomic, real_append = store_module._atomic_write, HistoryStore._append
    monkeypatch.setattr(store_module, "_atomic_write",
                        lambda path, data, **options: (writes.append(path.name), real_atomic(path, data, **options))[1])
    monkeypatch.setattr(HistoryStore, "_append", lambda self, data: (writes.append("journal"), real_append(self, data))[1])
    path = tmp_path / "history.json"
    store = HistoryStore.open(path, flush_interval=60)  # this test flushes by hand
    for n in range(60):
        store.put(make_job(n))
        before = len(writes)
        store.flush()
        assert len(writes) == before + 1  # one write: an append, or a snapshot in its place
    assert "history.json" in writes and writes.count("journal") > 30
    store.close()
    snapshot_seq = json.loads(path.read_text())["_meta"]["1"]["seq"]
    journal = [json.loads(line) for line in path.with_name("history.json.journal").read_text().splitlines()]
    assert all(line["seq"] > snapshot_seq for line in journal)  # what the snapshot holds was dropped
    with HistoryStore.open(path) as again:
        assert len(again) == 60


def test_many_jobs_saved_at_once_go_into_the_snapshot_not_a_long_journal(tmp_path):
    path = tmp_path / "history.json"
    with HistoryStore.open(path, flush_interval=60) as store:
        for n in range(2500):
            store.put(make_job(n))
        store.flush()
        journal = path.with_name("history.json.journal")
        assert not journal.exists() or journal.stat().st_size == 0
        assert len(json.loads(path.read_text())["jobs"]) == 2500
        store.put(make_job(1, status="processing"))
        store.flush()  # one change: an append again
        assert len(journal.read_text().splitlines()) == 1


def test_the_garbage_collector_is_paused_while_a_history_is_read_and_only_then(tmp_path):
    import gc

    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        for n in range(20):
            store.put(make_job(n))
    seen: list[bool] = []
    real = store_module._shared  # every job read passes there, whichever way it was decoded

    def noting(job):
        seen.append(gc.isenabled())
        return real(job)

    store_module._shared = noting
    try:
        with HistoryStore.open(path) as store:
            assert len(store) == 20 and gc.isenabled()
        path.write_text("{ not json")  # a failed read restores it too
        with HistoryStore.open(path) as store:
            assert store.notices and gc.isenabled()
        gc.disable()  # and one that was off stays off
        try:
            HistoryStore.open(path, read_only=True).close()
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        store_module._shared = real
    assert seen and not any(seen)


def test_a_history_read_for_good_is_out_of_the_collectors_walks_and_one_read_for_a_while_is_not(tmp_path):
    """The dashboard's process holds its history until it ends: what it reads is frozen before
    the collector runs again, so no collection walks 50,000 jobs. A store opened in passing
    (the CLI, a test) leaves the collector as it was."""
    import gc

    path = tmp_path / "history.json"
    with HistoryStore.open(path) as store:
        for n in range(20):
            store.put(make_job(n))

    def tracked(store) -> bool:
        jobs = {id(job) for job in store.all()}
        return any(id(obj) in jobs for obj in gc.get_objects())

    assert gc.get_freeze_count() == 0
    with HistoryStore.open(path, read_only=True) as store:
        assert tracked(store) and gc.get_freeze_count() == 0
    try:
        with HistoryStore.open(path, read_only=True, freeze=True) as store:
            assert gc.get_freeze_count() > 0 and gc.isenabled()
            assert len(store) == 20 and not tracked(store)
    finally:
        gc.unfreeze()  # this test process opens many histories


def test_a_compaction_the_disk_has_no_room_for_becomes_an_append(tmp_path, monkeypatch):
    import errno

    import tui.core.store as store_module

    monkeypatch.setattr(store_module, "JOURNAL_COMPACT_BYTES", 2000)
    path = tmp_path / "history.json"
    store = HistoryStore.open(path, flush_interval=60)
    for n in range(30):
        store.put(make_job(n))
        store.flush()

    def no_room(target, data, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_atomic_write", no_room)  # a new snapshot cannot be written
    journal = path.with_name("history.json.journal")
    snapshot = path.read_bytes()
    store.put(make_job(99, status="processing"))
    store.flush()  # no error: the change went to the journal
    assert json.loads(journal.read_bytes().splitlines()[-1])["doc"]["status"] == "processing"
    assert path.read_bytes() == snapshot and store.last_write_error is None
    store.close()
    monkeypatch.undo()
    with HistoryStore.open(path) as again:
        assert len(again) == 31 and again.get("job000099").status == "processing"


# -- the first glimpse: the newest jobs without reading the whole history ------------------------


def _saved_in_one_snapshot(path, count: int) -> None:
    """A history whose jobs all sit in the snapshot (saved at once, more than a slice)."""
    with HistoryStore.open(path, flush_interval=60) as store:
        for n in random.Random(3).sample(range(count), count):  # put in no particular order
            store.put(make_job(n))
        store.flush()


def test_the_snapshot_holds_the_newest_jobs_first(tmp_path):
    path = tmp_path / "history.json"
    _saved_in_one_snapshot(path, 1500)
    ids = [json.loads(line.split(b'":', 1)[1].rstrip(b","))["local_id"]
           for line in path.read_bytes().splitlines()[1:1501]]
    assert ids == [f"job{n:06d}" for n in range(1499, -1, -1)]


def test_the_newest_jobs_are_read_from_the_head_of_the_history_and_its_journal(tmp_path):
    from tui.core.store import peek_newest

    path = tmp_path / "history.json"
    _saved_in_one_snapshot(path, 1500)
    with HistoryStore.open(path, flush_interval=60) as store:
        store.put(make_job(1499, status="completed", outputs=["https://cdn.example/v.mp4"]))
        store.put(make_job(2000, status=SUBMITTING))  # newer than anything in the snapshot
        store.remove("job001498")
        store.flush()
    with HistoryStore.open(path, read_only=True) as reread:
        whole = [(j.local_id, j.status, j.error) for j in reread.all()][:100]
    newest = peek_newest(path, limit=100)
    # What a full read gives, change for change, including the interrupted submit settled as unknown.
    assert [(j.local_id, j.status, j.error) for j in newest] == whole
    assert whole[0] == ("job002000", UNKNOWN, UNKNOWN_OUTCOME_MESSAGE) and whole[1][1] == "completed"
    assert "job001498" not in {j.local_id for j in newest}
    assert peek_newest(tmp_path / "none.json") == []


def test_no_glimpse_is_guessed_when_it_could_be_wrong_or_slow(tmp_path, monkeypatch):
    from tinydb import TinyDB

    import tui.core.store
    from tui.core.store import peek_newest

    # A snapshot laid out by TinyDB itself (an older file): its head is not the newest jobs.
    old = tmp_path / "old.json"
    db = TinyDB(old)
    db.table("jobs").insert_multiple([make_job(n).to_doc() for n in range(30)])
    db.close()
    assert peek_newest(old) is None
    # A journal too big to read in a moment.
    big = tmp_path / "big.json"
    _saved_in_one_snapshot(big, 1200)
    with HistoryStore.open(big, flush_interval=60) as store:  # a writer runs meanwhile
        for n in range(40):
            store.put(make_job(n, status="processing"))
            store.flush()
        monkeypatch.setattr(tui.core.store, "PEEK_JOURNAL_BYTES", 20_000)
        assert peek_newest(big) is None
        monkeypatch.setattr(tui.core.store, "PEEK_JOURNAL_BYTES", 1 << 20)
        assert len(peek_newest(big, limit=50)) == 50


def test_a_glimpse_never_shows_a_hole_where_older_jobs_were_not_read(tmp_path):
    from tui.core.store import peek_newest

    path = tmp_path / "history.json"
    _saved_in_one_snapshot(path, 1500)
    with HistoryStore.open(path, flush_interval=60) as store:  # a writer runs meanwhile
        store.put(make_job(3, status="failed"))  # far down the snapshot, changed in the journal
        store.flush()
        newest = peek_newest(path, limit=10)
    assert [j.local_id for j in newest] == [f"job{n:06d}" for n in range(1499, 1489, -1)]


def test_a_glimpse_through_a_long_journal_matches_a_full_read(tmp_path):
    from tui.core.store import peek_newest

    path = tmp_path / "history.json"
    _saved_in_one_snapshot(path, 1200)
    rng = random.Random(5)
    store = HistoryStore.open(path, flush_interval=60)  # the glimpse is read while it writes
    try:
        for step in range(300):  # appends only: a quarter of the history is not reached
            n = rng.randrange(1400)
            if rng.random() < 0.1:
                store.remove(f"job{n:06d}")
            else:
                store.put(make_job(n, status=rng.choice(["processing", "completed", "failed"]),
                                   error='he said "submitted_at":1 [bold]' if rng.random() < 0.2 else None))
            store.flush()
        assert len(path.with_name("history.json.journal").read_bytes().splitlines()) > 250
        with HistoryStore.open(path, read_only=True) as reread:
            whole = [(j.local_id, j.status, j.error) for j in reread.all()]
        for limit in (1, 40, 400):
            assert [(j.local_id, j.status, j.error) for j in peek_newest(path, limit=limit)] == whole[:limit]
    finally:
        store.close()


# -- the demo never touches a history it did not create (#11) ----------------------------------

def _seventeen_job_history(path) -> bytes:
    """A real history of 17 jobs, written by the store; its files' bytes, to compare afterwards."""
    with HistoryStore.open(path) as store:
        for n in range(17):
            store.put(make_job(n, status="completed" if n % 2 else "processing"))
    return _history_bytes(path)


def _history_bytes(path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.is_file()}


def test_demo_with_db_is_refused_and_leaves_that_history_byte_identical(tmp_path):
    path = tmp_path / "real" / "history.json"
    before = _seventeen_job_history(path)
    env = {**os.environ, "HAILUO_TUI_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "tui", "--demo", "--db", str(path)], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --demo uses its own history ({tmp_path / 'data' / 'demo-history.json'}) and never opens "
        "another: drop --db to run the demo"]
    assert _history_bytes(path) == before
    with HistoryStore.open(path, read_only=True) as store:
        assert len(store) == 17


def test_serve_demo_with_db_is_refused_too(tmp_path):
    from click.testing import CliRunner

    from tui.cli.main import main

    path = tmp_path / "real" / "history.json"
    before = _seventeen_job_history(path)
    result = CliRunner().invoke(main, ["serve", "--demo", "--db", str(path)])
    assert result.exit_code == 2 and "--demo uses its own history" in result.output
    assert _history_bytes(path) == before


def test_the_demo_ignores_hailuo_tui_db_and_opens_its_own_history(tmp_path, monkeypatch):
    import types

    from click.testing import CliRunner

    from tui.cli.main import main

    path = tmp_path / "real" / "history.json"
    before = _seventeen_job_history(path)
    opened = []
    fake = types.ModuleType("tui.ui.app")
    fake.run_app = lambda settings, *, demo=False: opened.append(settings.db_path) or 0
    monkeypatch.setitem(sys.modules, "tui.ui.app", fake)
    result = CliRunner().invoke(main, ["--demo"], env={"HAILUO_TUI_DB": str(path)})
    assert result.exit_code == 0 and opened == [tmp_path / "data" / "demo-history.json"]
    assert _history_bytes(path) == before


def test_a_history_at_the_demo_path_that_the_demo_did_not_make_is_kept_aside_whole(tmp_path):
    from tui.core.config import Settings
    from tui.simulator.demo import demo_session

    path = tmp_path / "data" / "demo-history.json"
    before = _seventeen_job_history(path)
    settings = Settings(db_path=path, config_file=tmp_path / "config.toml", download_dir=tmp_path / "dl", demo=True)
    with demo_session(settings, job_seconds=30):
        pass
    kept = {p.name.split(".kept-")[0]: p.read_bytes() for p in path.parent.iterdir() if ".kept-" in p.name}
    assert kept == {name: data for name, data in before.items() if not name.endswith(".lock")}
    # The demo's own history (marked as the demo's) is reseeded at the next start: no copy kept.
    with demo_session(settings, job_seconds=30):
        pass
    assert len([p for p in path.parent.iterdir() if ".kept-" in p.name]) == len(kept)


def test_export_never_writes_over_the_history_it_reads(tmp_path):
    path = tmp_path / "real" / "history.json"
    before = _seventeen_job_history(path)
    for target in (path, path.with_name("history.json.journal")):
        result = subprocess.run([sys.executable, "-m", "tui", "--db", str(path), "export", "--format", "json",
                                 "-o", str(target)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "it is one of the history's own files" in result.stderr
    assert _history_bytes(path) == before


# -- the writer never dies, and text is always writable (#12) -----------------------------------

def test_a_lone_surrogate_in_a_job_is_saved_repaired_and_read_back(tmp_path):
    from tinydb import TinyDB

    path = tmp_path / "history.json"
    with HistoryStore.open(path, flush_interval=60) as store:
        store.put(make_job(1, status="failed", error="bad \ud800 text"))
        store.flush()  # the snapshot (first write)
        store.put(make_job(2, status="failed", error="also \udfff bad", request={"prompt": "p \ud83d"}))
        store.flush()  # a journal line
        assert store.last_write_error is None
    with HistoryStore.open(path, read_only=True) as again:
        assert again.get("job000001").error == "bad \ufffd text"
        assert again.get("job000002").error == "also \ufffd bad"
        assert again.get("job000002").request["prompt"] == "p \ufffd"
    with TinyDB(path, access_mode="r") as tiny:
        assert sorted(d["error"] for d in tiny.table("jobs").all()) == ["also \ufffd bad", "bad \ufffd text"]


def test_a_writer_that_raised_keeps_the_batch_says_so_and_writes_again(tmp_path, monkeypatch):
    import tui.core.store as store_module

    path = tmp_path / "history.json"
    reported = []
    store = HistoryStore.open(path, flush_interval=0.05)
    store.on_write_error = reported.append
    store.put(make_job(0, status="created"))
    store.flush()
    real_dumps = store_module._dumps
    failures = []

    def broken_once(value):
        if not failures:
            failures.append(value)
            raise RuntimeError("a bug in serialising")
        return real_dumps(value)

    monkeypatch.setattr(store_module, "_dumps", broken_once)
    store.put(make_job(1, status="processing"))  # the writer thread's flush meets the bug
    deadline = time.monotonic() + 60
    while store.last_write_error is None and not reported and time.monotonic() < deadline:
        time.sleep(0.02)
    assert failures and reported and "unexpected RuntimeError" in reported[0]
    assert store.unexpected_write_errors == 1
    # The thread lives on: it retries the kept batch by itself, and later changes are written too.
    while reported[-1] is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reported[-1] is None and store.last_write_error is None
    store.put(make_job(2, status="created"))
    store.flush()
    abandon(store)  # what is on disk now, without the close's final write
    with HistoryStore.open(path, read_only=True) as again:
        assert again.get("job000001").status == "processing" and again.get("job000002") is not None


def test_a_cli_command_whose_history_write_failed_once_exits_non_zero_and_says_so(tmp_path, monkeypatch,
                                                                                   make_simulator):
    import asyncio

    from click.testing import CliRunner

    import tui.core.store as store_module
    from tui.cli.main import main
    from tui.core.catalog import VideoRequest
    from tui.core.config import Settings
    from tui.core.jobs import JobService

    sim = make_simulator(job_seconds=1.0)
    path = tmp_path / "history.json"
    key = "sk-store-0123456789abcdef"

    async def submit() -> None:
        service = JobService.open(Settings(api_key=key, base_url=sim.base_url, db_path=path))
        await service.submit(VideoRequest(prompt="watched to the end"))
        await service.close()

    asyncio.run(submit())
    (tmp_path / "config.toml").write_text("poll_base_interval = 0.1\npoll_max_interval = 0.3\n")
    real_dumps = store_module._dumps
    failed = []

    def journal_fails_once(value):
        if isinstance(value, dict) and "op" in value and not failed:
            failed.append(value)
            raise RuntimeError("a bug in serialising")
        return real_dumps(value)

    monkeypatch.setattr(store_module, "_dumps", journal_fails_once)
    result = CliRunner().invoke(main, ["--base-url", sim.base_url, "--db", str(path), "watch"],
                                env={"GPTPROTO_API_KEY": key})
    assert failed  # the watch's first write met the bug
    assert result.exit_code == 2, result.output
    assert "had 1 write error(s) along the way; it was written in the end" in result.output
    monkeypatch.undo()
    with HistoryStore.open(path, read_only=True) as again:
        assert [job.status for job in again.all()] == ["completed"]  # writing resumed


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


#: Documents a history may hold beside good ones: (what is odd, the change to a good document).
_ODD_DOCUMENTS = [
    ("a count written as a float", {"execution_time_ms": 1500.0}),
    ("a flag where a count goes", {"poll_errors": True}),
    ("a time before 1970", {"finished_at": -5}),
    ("a whole-number submission time", {"submitted_at": 1_767_225_601}),
    ("raw nests too deep", {"raw": _nested(70)}),
    ("a download record nests too deep", {"downloads": [_nested(6), {"url": "u", "path": "p"}]}),
    ("a request nesting deeper than a request can", {"request": {"model": "m", "prompt": _nested(20)}}),
    ("a status history with entries out of shape", {"status_history": [["queued", 1.0], "junk", ["x"], ["done", 2]]}),
    ("an id too long", {"local_id": "x" * 201}),
    ("no status", {"status": None}),
    ("an output that is no URL", {"outputs": ["https://x/1.mp4", 3]}),
    ("a field this version does not know", {"colour": "red"}),
    ("a lone surrogate in the error", {"error": "bad \ud800 text"}),
    ("a server id of the wrong kind", {"server_id": 12}),
]


def test_a_snapshot_read_in_slices_gives_each_odd_document_what_reading_it_alone_gives(tmp_path, monkeypatch):
    """The snapshot's slices are decoded and checked in one go; an odd document among good ones
    must come out as reading it alone makes it (a field dropped, a job skipped, text repaired),
    and the good ones around it intact."""
    monkeypatch.setattr(store_module, "SLICE", 4)  # slices of good and odd documents mixed
    good = [make_job(n, status="completed", finished_at=1_767_225_700.0 + n,
                     status_history=[["completed", 1_767_225_700.0 + n]]).to_doc() for n in range(30)]
    odd = []
    for n, (_, change) in enumerate(_ODD_DOCUMENTS):
        doc = make_job(100 + n, status="failed", error="content policy", outputs=["https://x/0.mp4"]).to_doc()
        odd.append({**doc, **change})
    docs = good[:15] + [doc for pair in zip(odd, good[15:]) for doc in pair] + good[15 + len(odd):]
    lines = [json.dumps(doc, ensure_ascii=True, separators=(",", ":")) for doc in docs]
    path = tmp_path / "history.json"
    path.write_text('{"jobs":{\n' + ",\n".join(f'"{n}":{line}' for n, line in enumerate(lines, start=1))
                    + '\n},"_meta":{"1":{"seq":0}}}\n')

    alone = [store_module._job_of(store_module._loads(line.encode())) for line in lines]
    expected = {job.local_id: job for job in alone if job is not None}
    with HistoryStore.open(path, read_only=True) as store:
        assert {job.local_id: job for job in store.all()} == expected
        assert any("3 damaged job record(s)" in notice for notice in store.notices), store.notices
    # What reading alone makes of them, as a user sees it.
    by_change = dict(zip((what for what, _ in _ODD_DOCUMENTS), alone[15:15 + 2 * len(odd):2]))
    assert by_change["a count written as a float"].execution_time_ms == 1500
    assert by_change["a flag where a count goes"].poll_errors == 0
    assert by_change["a time before 1970"].finished_at is None
    assert by_change["raw nests too deep"].raw is None
    assert by_change["a download record nests too deep"].downloads == [{"url": "u", "path": "p"}]
    assert by_change["a status history with entries out of shape"].status_history == [["queued", 1.0], ["done", 2]]
    assert by_change["a lone surrogate in the error"].error == "bad \ufffd text"
    assert by_change["a server id of the wrong kind"].server_id is None
    for skipped in ("a request nesting deeper than a request can", "an id too long", "no status"):
        assert by_change[skipped] is None
    assert all(expected[doc["local_id"]].to_doc() == doc for doc in good)
