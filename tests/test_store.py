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

from tui.records import UNKNOWN, UNKNOWN_OUTCOME_MESSAGE, Job
from tui.store import HistoryStore, ReadOnlyHistoryError


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
                store.put(make_job(n))
            store.flush()
            journal = path.with_name("history.json.journal")
            before = journal.stat().st_size
            job = store.get("job000001")
            job.set_status("processing")
            store.put(job)
            store.flush()
            sizes.append(journal.stat().st_size - before)
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


def test_a_corrupt_snapshot_is_moved_aside_and_the_user_told_where(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("{ this is not json")
    with HistoryStore.open(path) as store:
        aside = list(tmp_path.glob("history.json.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_text() == "{ this is not json"
        assert any(str(aside[0]) in notice for notice in store.notices)


def test_compaction_folds_the_journal_into_the_snapshot_and_keeps_everything(tmp_path, monkeypatch):
    monkeypatch.setattr("tui.store.JOURNAL_COMPACT_BYTES", 2000)
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
        from tui.store import HistoryStore
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
    from tui.records import Job
    from tui.store import HistoryStore
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
        time.sleep(0.3 + rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged |= set(out.split())
        with HistoryStore.open(path) as store:  # parses, and takes the lock the dead writer left
            ids = [j.local_id for j in store.all()]
            assert len(ids) == len(set(ids))
            assert acknowledged <= set(ids)
    assert acknowledged
