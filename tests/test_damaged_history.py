"""Damaged history files: every kind is read as far as it can be, never a traceback (#12).

Each kind damages a real 20-job history (written by the store, with its previous snapshot
beside it) and is opened through the store, through `hailuo-tui list --json`, and (some) by
the dashboard: the good jobs are all there, what could not be used is kept aside, and a notice
says how many and where.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from tui.cli.main import main
from tui.core.records import Job
from tui.core.store import HistoryStore

from helpers import toasts

COUNT = 20


def make_job(n: int, status: str = "completed") -> Job:
    return Job(local_id=f"job{n:06d}", request={"model": "hailuo-2.3-fast", "prompt": f"prompt {n}"},
               submitted_at=1_700_000_000.0 + n, server_id=f"srv{n:06d}", status=status)


def good_history(path: Path) -> None:
    """20 jobs in the snapshot, the snapshot before it kept as `.prev`, the journal empty."""
    with HistoryStore.open(path) as store:
        for n in range(COUNT):
            store.put(make_job(n, "processing"))
    with HistoryStore.open(path) as store:  # a second session: its close makes a new snapshot
        for n in range(COUNT):
            store.put(make_job(n))
    assert path.with_name(path.name + ".prev").exists()


def journal_line(text: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with open(path.with_name(path.name + ".journal"), "ab") as journal:
            journal.write(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return damage


def snapshot_doc(pattern: bytes, replacement: bytes) -> Callable[[Path], None]:
    """Change job 5's document in the snapshot (one job a line)."""
    def damage(path: Path) -> None:
        lines = path.read_bytes().split(b"\n")
        (index,) = [i for i, line in enumerate(lines) if b'"local_id":"job000005"' in line]
        lines[index], count = re.subn(pattern, lambda _: replacement, lines[index], count=1)
        assert count == 1
        path.write_bytes(b"\n".join(lines))
    return damage


def whole_snapshot(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def link_to(target: str, which: str = "") -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        victim = path.with_name(path.name + which)
        victim.unlink(missing_ok=True)
        os.symlink(target, victim)
    return damage


def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


GOOD_DOC = json.dumps(make_job(99).to_doc())
DEEP = 100_000

#: (kind, damage, jobs usable afterwards, words of the notice)
KINDS = [
    ("journal: seq 1e999", journal_line('{"seq":1e999,"op":"put","id":"job000099","doc":%s}\n' % GOOD_DOC),
     COUNT, "damaged line"),
    ("journal: a put with no doc", journal_line('{"seq":999,"op":"put","id":"job000099"}\n'), COUNT, "damaged line"),
    ("journal: a list as id", journal_line('{"seq":999,"op":"put","id":["job000099"],"doc":%s}\n' % GOOD_DOC),
     COUNT, "damaged line"),
    ("journal: an id that is not its job's", journal_line('{"seq":999,"op":"put","id":"other","doc":%s}\n' % GOOD_DOC),
     COUNT, "damaged line"),
    ("journal: an unknown op", journal_line('{"seq":999,"op":"drop","id":"job000001"}\n'), COUNT, "damaged line"),
    ("journal: a line that is not JSON", journal_line(b'{"seq": 999, "op": "put", "id": "job\xff\n'),
     COUNT, "damaged line"),
    ("journal: a doc nested 100,000 deep",
     journal_line('{"seq":999,"op":"put","id":"job000099","doc":' + "[" * DEEP + "]" * DEEP + "}\n"),
     COUNT, "damaged line"),
    ("journal: a job whose status is a number",
     journal_line('{"seq":999,"op":"put","id":"job000099","doc":%s}\n' % GOOD_DOC.replace('"status": "completed"',
                                                                                       '"status": 3')),
     COUNT, "damaged line"),
    ("journal: a link to /dev/zero", link_to("/dev/zero", ".journal"), COUNT, "not a regular file"),
    ("job: submitted_at a string", snapshot_doc(rb'"submitted_at":[^,]*', b'"submitted_at":"yesterday"'),
     COUNT - 1, "1 damaged job record"),
    ("job: submitted_at 1e999", snapshot_doc(rb'"submitted_at":[^,]*', b'"submitted_at":1e999'),
     COUNT - 1, "1 damaged job record"),
    ("job: submitted_at NaN", snapshot_doc(rb'"submitted_at":[^,]*', b'"submitted_at":NaN'),
     COUNT - 1, "1 damaged job record"),
    ("job: submitted_at -1e20", snapshot_doc(rb'"submitted_at":[^,]*', b'"submitted_at":-1e20'),
     COUNT - 1, "1 damaged job record"),
    ("job: status a number", snapshot_doc(rb'"status":"completed"', b'"status":404'),
     COUNT - 1, "1 damaged job record"),
    ("job: request a list", snapshot_doc(rb'"request":\{[^}]*\}', b'"request":["hailuo"]'),
     COUNT - 1, "1 damaged job record"),
    ("job: local_id missing", snapshot_doc(rb'"local_id":"job000005",', b''), COUNT - 1, "1 damaged job record"),
    ("job: a list, not an object", snapshot_doc(rb'\{"local_id".*\}', b'[1,2,3]'), COUNT - 1,
     "1 damaged job record"),
    ("job: a lone surrogate in its error", snapshot_doc(rb'"error":null', rb'"error":"bad \ud800 text"'),
     COUNT, None),
    ("job: raw nested 10,000 deep", snapshot_doc(rb'"raw":null', b'"raw":{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
     COUNT - 1, "1 damaged job record"),
    ("job: a line that is not JSON", snapshot_doc(rb'"status":"completed"', b'"status":"compl\xff'),
     COUNT - 1, "1 damaged job record"),
    ("job: outputs a number", snapshot_doc(rb'"outputs":\[\]', b'"outputs":5'),
     COUNT, None),
    ("job: created_at a string, poll_errors -1", snapshot_doc(rb'"created_at":null,', b'"created_at":"soon","poll_errors":-1,'),
     COUNT, None),
    ("snapshot: truncated to 0 bytes", whole_snapshot(b""), COUNT, "recovered from the previous snapshot"),
    ("snapshot: cut short", cut_short, COUNT, "recovered from the previous snapshot"),
    ("snapshot: nested 100,000 deep", whole_snapshot(b'{"jobs":' + b"[" * DEEP + b"]" * DEEP + b"}"), COUNT,
     "recovered from the previous snapshot"),
    ("snapshot: a JSON list", whole_snapshot(b"[1, 2, 3]\n"), COUNT, "recovered from the previous snapshot"),
    ("snapshot: jobs not an object", whole_snapshot(b'{"jobs": [1, 2]}\n'), COUNT, "recovered from the previous snapshot"),
    ("snapshot: a link to /dev/zero", link_to("/dev/zero"), COUNT, "not a regular file"),
    ("snapshot: a FIFO", fifo, COUNT, "not a regular file"),
    ("snapshot: not UTF-8", whole_snapshot(b'{"jobs":{"1":{"local_id":"\xff\xfe"}}}'), COUNT,
     "recovered from the previous snapshot"),
]
IDS = [kind for kind, *_ in KINDS]


def damaged(tmp_path: Path, damage) -> Path:
    path = tmp_path / "history.json"
    good_history(path)
    damage(path)
    return path


@pytest.mark.parametrize("lazy", [False, True], ids=["whole", "lazy"])
@pytest.mark.parametrize("kind, damage, usable, notice", KINDS, ids=IDS)
def test_a_damaged_history_opens_with_every_good_job_and_says_what_was_kept_aside(tmp_path, kind, damage, usable,
                                                                                  notice, lazy):
    path = damaged(tmp_path, damage)
    with HistoryStore.open(path, flush_interval=0.05, lazy=lazy) as store:
        jobs = store.all()
        assert len(jobs) == usable
        assert all(job.status == "completed" or kind.startswith("snapshot") for job in jobs)
        if notice is None:
            assert store.notices == []
        else:
            assert any(notice in n for n in store.notices), store.notices
            where = [p.name for p in tmp_path.iterdir() if re.search(r"\.(skipped|damaged|corrupt)-", p.name)]
            assert where and any(name in " ".join(store.notices) for name in where)  # kept aside, and said where
        store.put(make_job(50))  # and the history is written as usual afterwards
    with HistoryStore.open(path, lazy=lazy) as again:
        assert len(again) == usable + 1
        assert again.notices == []  # the damage was kept aside, not read again
        for job in again.all():
            job.to_public()  # every field can be shown
    from tinydb import TinyDB

    with TinyDB(path, access_mode="r") as tiny:
        assert len(tiny.table("jobs")) == usable + 1


@pytest.mark.parametrize("kind, damage, usable, notice", KINDS, ids=IDS)
def test_a_damaged_history_read_lazily_gives_what_a_whole_read_gives(tmp_path, kind, damage, usable, notice):
    path = damaged(tmp_path, damage)
    whole = HistoryStore.open(path, read_only=True)
    lazy = HistoryStore.open(path, read_only=True, lazy=True)
    assert lazy.notices == whole.notices
    assert [job.to_doc() for job in lazy.all()] == [job.to_doc() for job in whole.all()]  # detail unread
    assert lazy.all() == whole.all()  # detail read back


@pytest.mark.parametrize("kind, damage, usable, notice", KINDS, ids=IDS)
def test_list_json_on_a_damaged_history_exits_0_with_the_good_jobs_and_a_notice(tmp_path, kind, damage, usable,
                                                                               notice):
    path = damaged(tmp_path, damage)
    result = CliRunner().invoke(main, ["--db", str(path), "list", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert len(json.loads(result.stdout)) == usable
    if notice is not None:
        assert notice in result.stderr


@pytest.mark.parametrize("kind", ["snapshot: truncated to 0 bytes", "job: status a number",
                                  "journal: a put with no doc"])
async def test_the_dashboard_opens_a_damaged_history_and_shows_the_notice(tmp_path, kind):
    from tui.core.config import Settings
    from tui.ui.app import HailuoApp

    from helpers import until

    _, damage, usable, notice = KINDS[IDS.index(kind)]
    path = damaged(tmp_path, damage)
    settings = Settings(api_key="sk-damaged-0123456789abcdef", base_url="http://127.0.0.1:9", db_path=path,
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads")
    app = HailuoApp(settings)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(lambda: any(notice in t for t in toasts(app)), pilot=pilot, timeout=60)
        assert len(app.service.store) == usable
        assert "history not opened" not in str(app.query_one("StatusLine").render())
