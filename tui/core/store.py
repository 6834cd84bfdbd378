"""The job history: a TinyDB snapshot plus an append-only journal, loaded once into memory.

Why two files: with TinyDB's default storage one status change rewrites the whole file
(1.3 s at 50,000 jobs). Here a change is one small appended, fsynced journal line; the
snapshot (a plain TinyDB database, written atomically) is rewritten only when the journal
has grown, in the writer thread. A crash at any instant leaves both files parseable: the
snapshot is replaced by rename, and a torn last journal line is ignored.

The snapshot holds one job a line (still one TinyDB JSON document), so it is read and written
a thousand jobs at a time: a 50,000-job history never sits in memory as one 40 MB string, and
the interpreter is free for the event loop between two slices.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import errno
import fcntl
import gc
import json
import os
import re
import stat
import sys
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tinydb.storages import Storage

from tui.core.api.models import is_terminal
from tui.core.records import (
    LOCAL_TERMINAL, SUBMITTING, UNKNOWN, UNKNOWN_OUTCOME_MESSAGE, DamagedRecord, Job, LazyJob, decode_jobs,
    decode_summaries, make_lazy_job, missing_detail,
)

JOURNAL_COMPACT_BYTES = 4 * 1024 * 1024
#: Jobs parsed or serialised at a time (about 10 ms of work, and the memory of that many only).
SLICE = 1000
_JOBS_TABLE = b'{"jobs":{'


#: Neither history file is read past this size (a 50,000-job history is about 40 MB).
MAX_FILE_BYTES = 1 << 30
#: What reading a file can raise when its content is damaged: it is then used as far as it can
#: be, kept aside and never taken for an empty history.
DAMAGE = (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError, MemoryError)


class DamagedHistory(ValueError):
    """A history file that cannot be read as one (not a regular file, too big, empty)."""


def _open_regular(path: Path):
    """The file opened for reading, None when absent; DamagedHistory when it is no regular file
    (a link to a device, a FIFO) or bigger than MAX_FILE_BYTES, so a read can never hang or fill
    the memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DamagedHistory("it is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise DamagedHistory(f"it is larger than {MAX_FILE_BYTES >> 20} MB")
    return os.fdopen(fd, "rb")


def _sequence(value: Any) -> int:
    """A journal or snapshot sequence number; ValueError when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise DamagedRecord("not a sequence number")
    return value


def _why(exc: BaseException) -> str:
    """A damaged file's fault in a few words (never a traceback)."""
    if isinstance(exc, (DamagedHistory, DamagedRecord)):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "it nests too deep"
    return f"it does not parse: {type(exc).__name__}"


class ReadOnlyHistoryError(Exception):
    """A write was attempted on a history opened read-only."""


def write_failure_reason(exc: OSError) -> str:
    """Why a write failed, in a few words a user can act on."""
    return {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EFBIG: "the file size limit is reached",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EIO: "an I/O error",
    }.get(exc.errno, exc.strerror or str(exc) or type(exc).__name__)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes | Iterable[bytes], *, keep_previous: Path | None = None) -> None:
    """Replace path with data (bytes, or chunks of it): temp file, fsync, rename, dir fsync.
    With `keep_previous`, the file replaced stays there (a hard link, renamed into place, so the
    path itself is never missing)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in ([data] if isinstance(data, bytes) else data):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_previous is not None:
            _link_previous(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _link_previous(path: Path, previous: Path) -> None:
    link = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, previous)
    except FileNotFoundError:
        pass  # nothing to keep yet
    except OSError:
        link.unlink(missing_ok=True)  # no hard links on this file system: no previous copy


def _contains_data_url(value: Any) -> bool:
    if isinstance(value, str):
        return value.lstrip().lower().startswith("data:")
    if isinstance(value, dict):
        return any(_contains_data_url(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_data_url(v) for v in value)
    return False


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _replace_unencodable(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # As bytes: the UTF-8 encoder takes only ASCII text back from a handler.
    return "\ufffd".encode("utf-8") * (error.end - error.start), error.end


codecs.register_error("hailuo-tui-replace", _replace_unencodable)


def _encode(text: str) -> bytes:
    """Text as written to the history files. Whatever a job holds (a lone surrogate from a
    server's JSON escape, say), it is written: what UTF-8 cannot hold becomes U+FFFD."""
    return text.encode("utf-8", errors="hailuo-tui-replace")


def _snapshot_chunks(tables: Iterable[tuple[str, Iterable[tuple[str, Any]]]]) -> Iterator[bytes]:
    """A TinyDB database ({table: {doc_id: doc}}) as JSON with one document a line, in slices."""
    yield b"{"
    for index, (table, docs) in enumerate(tables):
        yield _encode(("," if index else "") + _dumps(table) + ":{\n")
        lines: list[str] = []
        first = True
        for doc_id, doc in docs:
            lines.append(("" if first else ",\n") + _dumps(str(doc_id)) + ":" + _dumps(doc))
            first = False
            if len(lines) >= SLICE:
                yield _encode("".join(lines))
                lines = []
        yield _encode("".join(lines) + "\n}")
    yield b"}\n"


_intern = sys.intern


def _job_of(doc: Any, skipped: list | None = None) -> Job | None:
    """A Job from a history document, validated, its repeated words shared (status, model...);
    None if unusable (the document then goes to `skipped`)."""
    try:
        return _shared(Job.from_doc(doc))
    except DamagedRecord:
        if skipped is not None:
            skipped.append(doc)
        return None


def _shared(job: Job) -> Job:
    """The job with the words thousands of jobs carry (status, model, scene, resolution, a
    common error) held once, not once a job; and equal numbers it holds twice (its finishing
    time, its two durations) one object each."""
    _shared_summary(job)
    finished_at = job.finished_at
    for entry in job.status_history:
        entry[0] = _intern(entry[0])
        if entry[1] == finished_at:
            entry[1] = finished_at
    return job


def _shared_summary(job: Job) -> Job:
    """`_shared` for the fields a `LazyJob` holds (its detail is not read for it)."""
    job.status = _intern(job.status)
    request = job.request
    for key in ("model", "scene", "resolution"):
        value = request.get(key)
        if type(value) is str:
            request[key] = _intern(value)
    error = job.error
    if error is not None and len(error) <= 200:
        job.error = _intern(error)
    if job.inference_time_ms == job.execution_time_ms:
        job.inference_time_ms = job.execution_time_ms
    return job


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _repaired(value: Any) -> Any:
    """JSON-shaped data with its text made encodable: a lone surrogate (valid JSON as an escape)
    becomes U+FFFD, so what is read can be shown and written anywhere."""
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    return value


def _loads(data: bytes) -> Any:
    """json.loads, with text repaired when the bytes hold a surrogate escape (rare: checked first)."""
    value = json.loads(data)
    return _repaired(value) if _SURROGATE_ESCAPE.search(data) else value


def _parsed_or_damaged(line: bytes) -> Any:
    try:
        return _loads(line)
    except DAMAGE:
        return {"unparsed": line[:1_000_000].decode("utf-8", "replace")}  # not a job: skipped, kept aside


def _document_of(line: bytes) -> bytes | None:
    """The document of one line of the jobs table (`"<doc id>":{...},`); None for a blank line.
    Raises _OtherLayout for a line that is not laid out so (the file is then read whole)."""
    line = line.rstrip(b",\r\n")
    if not line:
        return None
    split = line.find(b'":', 1) if line.startswith(b'"') else -1
    if split < 0:
        raise _OtherLayout
    return line[split + 2:]


class _OtherLayout(Exception):
    """The snapshot is not laid out a job a line."""


def _decode_documents(documents: list[bytes], skipped: list | None) -> list[Job | None]:
    """Jobs from a slice of documents, in order; None for one that is not a usable job (it goes
    to `skipped`). Decoded and checked in C; a slice it refuses (a document damaged, or a lone
    surrogate to repair) is read again one document at a time, to lose only what must be lost."""
    array = b"[" + b",".join(documents) + b"]"
    plain = _SURROGATE_ESCAPE.search(array) is None
    decoded = decode_jobs(array) if plain else None
    if decoded is None:
        decoded = [(decode_jobs(b"[" + document + b"]") or [None])[0] if plain else None for document in documents]
    return [_shared(job) if job is not None else _job_of(_parsed_or_damaged(document), skipped)
            for document, job in zip(documents, decoded)]


class SnapshotChanged(OSError):
    """The snapshot a job's detail was to be read back from no longer holds it: another program
    rewrote the file in place (this one only ever replaces it whole)."""


class _SnapshotFile:
    """The snapshot a history was read from, kept open while any job read from it lazily lives:
    a newer snapshot replaces the file by rename, so this one's bytes stay as they were read."""

    def __init__(self, handle) -> None:
        self.name = handle.name
        self.fd = os.dup(handle.fileno())
        weakref.finalize(self, os.close, self.fd)

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise self.changed()
        return data

    def changed(self) -> SnapshotChanged:
        return SnapshotChanged(f"the history {self.name} was changed by another program while open; "
                               "restart to read it again")


_FILL_LOCK = threading.RLock()


class _Shelf:
    """A slice of a snapshot whose finished jobs were read without their detail (`LazyJob`): where
    its lines are, to read them back whole the first time one of them is opened."""

    __slots__ = ("source", "offset", "length", "jobs")

    def __init__(self, source: _SnapshotFile, offset: int, length: int) -> None:
        self.source, self.offset, self.length = source, offset, length
        #: Its lazy jobs: all filled at once (what one opens, the next one usually follows).
        self.jobs: list[LazyJob] | None = []

    def _read_whole(self) -> list[Job | None]:
        documents = []
        for line in self.source.read(self.offset, self.length).split(b"\n"):
            try:
                document = _document_of(line)
            except _OtherLayout:
                document = b"null"
            if document is not None:
                documents.append(document)
        return _decode_documents(documents, None)

    def whole(self, job: LazyJob) -> Job:
        """The job as the snapshot holds it, detail and all (not kept: the last slice read is)."""
        global _last_whole
        with _FILL_LOCK:
            shelf, jobs = _last_whole
            if shelf is not self:
                jobs = self._read_whole()
                _last_whole = (self, jobs)
            found = jobs[job._line] if job._line < len(jobs) else None
            if found is None or found.local_id != job.local_id:
                raise self.source.changed()
            return found

    def fill(self, job: LazyJob) -> None:
        """Give `job`, and every job of this slice still without it, its detail."""
        with _FILL_LOCK:
            if not missing_detail(job):
                return
            waiting = self.jobs or []
            self.jobs = None
            if not any(each is job for each in waiting):  # by identity: `==` would read the detail
                waiting.append(job)
            for each in waiting:
                missing = missing_detail(each)
                if missing:
                    whole = self.whole(each)
                    for name in missing:
                        setattr(each, name, getattr(whole, name))
            if _last_whole[0] is self:
                _forget_read_back()


#: The last slice read back whole for `_Shelf.whole` (a compaction writes a slice's jobs in turn).
_last_whole: tuple[_Shelf | None, list[Job | None]] = (None, [])


def _forget_read_back() -> None:
    """Let the last slice read back go (once its jobs are written, or filled)."""
    global _last_whole
    with _FILL_LOCK:
        _last_whole = (None, [])


def _lazy_slice(documents: list[bytes], shelf: _Shelf) -> list[Job | None] | None:
    """Jobs from a slice with the finished ones' detail left in the file (`LazyJob`); None when
    the slice must be read whole (a document a check refuses, a lone surrogate to repair)."""
    array = b"[" + b",".join(documents) + b"]"
    if _SURROGATE_ESCAPE.search(array) is not None:
        return None
    summaries = decode_summaries(array)
    if summaries is None:
        return None
    jobs: list[Job | None] = []
    running = []
    for line, fields in enumerate(summaries):
        status = fields[3]
        if status in LOCAL_TERMINAL or is_terminal(status):
            jobs.append(_shared_summary(make_lazy_job(shelf, line, *fields)))
        else:
            running.append(line)
            jobs.append(None)
    if running:  # read whole: they change as they are polled
        for line, job in zip(running, _decode_documents([documents[line] for line in running], None)):
            jobs[line] = job
    shelf.jobs = [job for job in jobs if isinstance(job, LazyJob)]
    return jobs


def _let_go(jobs: Iterable[Job]) -> None:
    """Part the lazy jobs of a read from their slices, jobs and slice holding each other: a job
    still shown reads its own detail back alone, and the rest go as soon as nothing holds them
    (a frozen heap would keep a cycle for good)."""
    for job in jobs:
        if isinstance(job, LazyJob):
            try:
                job._shelf.jobs = None
            except AttributeError:  # made whole by `dataclasses.replace`: no slice
                pass


def _read_snapshot_lines(handle, jobs: dict[str, Job], skipped: list, *, lazy: bool = False) -> dict[str, Any] | None:
    """Read the jobs table one slice at a time (the layout `_snapshot_chunks` writes, after its
    first line); returns the other tables, or None when the file is laid out otherwise. With
    `lazy`, finished jobs are read without their detail (`_lazy_slice`)."""
    pending: list[bytes] = []
    source = _SnapshotFile(handle) if lazy else None
    position = handle.tell()
    start = position

    def take() -> None:
        decoded = None
        if source is not None:
            decoded = _lazy_slice(pending, _Shelf(source, start, position - start))
        if decoded is None:
            decoded = _decode_documents(pending, skipped)
        for job in decoded:
            if job is not None:
                jobs[job.local_id] = job
        pending.clear()

    for line in handle:
        if line.startswith(b"}"):
            if pending:
                take()
            tail = (line + handle.read())[1:].strip()
            if tail == b"}":
                return {}
            if not tail.startswith(b","):
                return None
            others = json.loads(b"{" + tail[1:])
            return others if isinstance(others, dict) else None
        try:
            document = _document_of(line)
        except _OtherLayout:
            return None
        if not pending:
            start = position
        position += len(line)
        if document is None:
            continue
        pending.append(document)
        if len(pending) >= SLICE:
            take()
    return None  # the jobs table never ended


def _settle_interrupted_submit(job: Job) -> bool:
    """A job left `submitting` by a crash becomes `unknown`: its POST may have been sent, so
    never guess and never re-send. True when it changed."""
    if job.status != SUBMITTING:
        return False
    job.set_status(UNKNOWN)
    job.error = UNKNOWN_OUTCOME_MESSAGE
    return True


_META_SEQ = re.compile(rb'"_meta":\{\s*"1":\{"seq":(\d+)')


#: `peek_newest` gives up on a journal bigger than this: reading it would no longer be quick
#: (it is folded into the snapshot once it holds a quarter of the history: 12 MB at 50,000 jobs).
PEEK_JOURNAL_BYTES = 32 * 1024 * 1024
#: The start of each journal line, as `_journal_lines_for` writes it, and a job's submission time.
_JOURNAL_HEAD = re.compile(rb'\{"seq":(\d+),"op":"(put|del)","id":("(?:[^"\\]|\\.)*")')
_SUBMITTED_AT = re.compile(rb'"submitted_at":(-?[0-9][0-9.eE+-]*)')


def peek_newest(path: str | os.PathLike[str], limit: int = SLICE) -> list[Job] | None:
    """See `_peek_newest`; None too when the files are damaged (the full read then says how)."""
    try:
        return _peek_newest(path, limit)
    except DAMAGE:
        return None
    except OSError:
        return None


def _peek_newest(path: str | os.PathLike[str], limit: int = SLICE) -> list[Job] | None:
    """The newest `limit` jobs of a history, newest first, read from the head of the snapshot
    (written newest first) and the journal: a first screen in a few milliseconds while the
    whole history loads. Nothing is written or locked. None when that would not be quick (a
    big journal) or not right (a snapshot laid out otherwise, as an older file: only a full
    read can tell which jobs are newest)."""
    path = Path(path).expanduser()
    journal_path = path.with_name(path.name + ".journal")
    try:
        if journal_path.stat().st_size > PEEK_JOURNAL_BYTES:
            return None
    except FileNotFoundError:
        pass
    jobs: dict[str, Job] = {}
    snapshot_seq, complete = 0, True
    handle = _open_regular(path)
    if handle is not None:
        with handle:
            first = handle.readline()
            if first.strip():
                if first.rstrip(b"\r\n") != _JOBS_TABLE:
                    return None
                docs: list[bytes] = []
                complete = False
                for line in handle:
                    if line.startswith(b"}"):
                        complete = True
                        break
                    line = line.rstrip(b",\r\n")
                    split = line.find(b'":', 1)
                    if line and split > 0:
                        docs.append(line[split + 2:])
                    if len(docs) >= limit:
                        break
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 4096))
                found = _META_SEQ.search(handle.read())
                snapshot_seq = int(found.group(1)) if found else 0
                try:
                    parsed = _loads(b"[" + b",".join(docs) + b"]")
                except ValueError:
                    return None
                ordered = [job for job in map(_job_of, parsed) if job is not None]
                if any(a.submitted_at < b.submitted_at for a, b in zip(ordered, ordered[1:])):
                    return None  # not newest first: its head says nothing about the newest jobs
                jobs = {job.local_id: job for job in ordered}
    # Jobs older than the last one read from the snapshot may be missing from its head: show
    # none of them rather than a list with holes.
    oldest = min((job.submitted_at for job in jobs.values()), default=float("-inf")) if not complete else float("-inf")
    # The journal can hold thousands of lines: it is streamed, only the start of each line is
    # read (sequence, op, id, submission time), and only the lines of the jobs that make the
    # list are read again and parsed whole.
    changed: dict[str, tuple[float, int] | None] = {}  # local id -> (submitted at, line offset), None if deleted
    journal = _open_regular(journal_path)
    with journal or nullcontext():
        offset = 0
        for line in journal or ():
            start, offset = offset, offset + len(line)
            head = _JOURNAL_HEAD.match(line)
            if head is None or int(head[1]) <= snapshot_seq:
                continue  # a torn or damaged line (the full read skips it too), or one the snapshot holds
            local_id = json.loads(head[3])
            if head[2] == b"del":
                changed[local_id] = None
                continue
            when = _SUBMITTED_AT.search(line, head.end())
            if when is not None:
                changed[local_id] = (float(when[1]), start)
        candidates: list[tuple[float, Job | int]] = [
            (job.submitted_at, job) for local_id, job in jobs.items() if local_id not in changed]
        candidates += [entry for entry in changed.values() if entry is not None]
        candidates = sorted((c for c in candidates if c[0] >= oldest), key=lambda c: c[0], reverse=True)[:limit]
        newest = []
        for _, source in candidates:
            if isinstance(source, int):  # a journal line's offset
                journal.seek(source)
                try:
                    source = _job_of(_loads(journal.readline())["doc"])
                except (ValueError, KeyError, TypeError):
                    source = None
            if source is not None:
                _settle_interrupted_submit(source)
                newest.append(source)
    return newest


@contextmanager
def _collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Reading a history builds hundreds of thousands of objects that all live on: the cyclic
    garbage collector would walk the growing heap again and again meanwhile (half the time of
    opening 50,000 jobs, and more than half at 100,000). Nothing read is garbage.

    With `freeze`, what was read is then moved out of the collector's sight (`gc.freeze`)
    before it runs again: its first collection would walk all of it (110 ms at 50,000 jobs,
    just as the history is being shown), and so would every full one after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


class HistoryStore:
    def __init__(self, path: Path, *, read_only: bool, flush_interval: float, freeze: bool = False,
                 lazy: bool = False) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.lock_path = path.with_name(path.name + ".lock")
        self.read_only = read_only
        #: Read-only because another process holds the writer lock (that process owns the history).
        self.held_elsewhere = False
        self.flush_interval = flush_interval
        #: What is read is kept out of the garbage collector's walks (see `_collector_paused`):
        #: for a process that holds the history until it ends, not one that opens many.
        self.freeze = freeze
        #: Finished jobs are read without their detail, read back when first used (`LazyJob`):
        #: for the dashboard, which holds the whole history and opens few of its jobs.
        self.lazy = lazy
        self.notices: list[str] = []
        self.last_write_error: str | None = None
        #: Flushes that failed for a reason other than the disk (a bug): a CLI command that saw
        #: one exits non-zero even if writing resumed.
        self.unexpected_write_errors = 0
        #: Called (from whichever thread wrote) with the new `last_write_error` each time it
        #: changes: a message when writes start failing, None when they work again.
        self.on_write_error: Callable[[str | None], None] | None = None
        self._jobs: dict[str, Job] = {}
        self._by_server: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        self._order: list[Job] | None = None
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._seq = 0
        self._snapshot_seq = 0
        self._journal_lines = 0
        self._journal_offset = 0
        self._lock = threading.RLock()
        self._io_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._lock_fd: int | None = None
        self._writer: threading.Thread | None = None
        #: The next flush writes a new snapshot whatever the journal's size (after damage was read).
        self._compact_next = False
        #: The snapshot read was damaged: it is not kept as the previous one when replaced.
        self._snapshot_damaged = False

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, read_only: bool = False, flush_interval: float = 0.5,
             freeze: bool = False, lazy: bool = False) -> "HistoryStore":
        path = Path(path).expanduser()
        store = cls(path, read_only=read_only, flush_interval=flush_interval, freeze=freeze, lazy=lazy)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            store._take_lock()
        store._load()
        if not store.read_only:
            store._writer = threading.Thread(target=store._write_loop, name="history-writer", daemon=True)
            store._writer.start()
            if store._compact_next:
                store._wake.set()
            atexit.register(store.close)
        return store

    def _take_lock(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            self.read_only = True
            self.notices.append(f"cannot write in {self.path.parent} ({write_failure_reason(exc)}); "
                                "the history is open read-only")
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.read_only = True
            self.held_elsewhere = True
            self.notices.append(f"another hailuo-tui is writing {self.path}; this one is read-only (watch only)")
            return
        self._lock_fd = fd

    def _load(self) -> None:
        with _collector_paused(freeze=self.freeze):
            self._load_jobs()

    def _load_jobs(self) -> None:
        jobs: dict[str, Job] = {}
        skipped: list[Any] = []
        self._snapshot_damaged = False
        try:
            self._snapshot_seq = self._read_snapshot(self.path, jobs, skipped)
        except DAMAGE as exc:
            self._snapshot_damaged = True
            self._move_aside(exc)
            jobs, skipped, self._snapshot_seq = {}, [], 0
            self._recover_previous(jobs, skipped)
        if skipped:
            self._snapshot_damaged = True
            self._keep_skipped(skipped)
        if self._snapshot_damaged and not self.read_only:
            self._compact_next = True  # a clean snapshot at the next write
        self._seq = self._snapshot_seq
        self._replay(jobs)
        for job in jobs.values():
            if _settle_interrupted_submit(job) and not self.read_only:
                self._dirty.add(job.local_id)
            self._index(job)

    @property
    def previous_path(self) -> Path:
        """The snapshot before the last compaction: what a damaged snapshot is recovered from."""
        return self.path.with_name(self.path.name + ".prev")

    def _recover_previous(self, jobs: dict[str, Job], skipped: list) -> None:
        try:
            seq = self._read_snapshot(self.previous_path, jobs, skipped)
        except DAMAGE as exc:
            jobs.clear(), skipped.clear()
            self.notices.append(f"the previous snapshot {self.previous_path} is damaged too ({_why(exc)}); "
                                "only the journal's jobs are shown")
            return
        if not self.previous_path.exists():
            return
        self._snapshot_seq = seq
        self.notices.append(f"{len(jobs)} job(s) were recovered from the previous snapshot {self.previous_path}; "
                            "changes made between it and the damaged one may be missing")

    def _read_snapshot(self, path: Path, jobs: dict[str, Job], skipped: list) -> int:
        """Fill jobs from a snapshot (TinyDB's layout, {table: {doc_id: doc}}, read directly:
        TinyDB Document objects for 50,000 jobs would double the start-up cost); its sequence
        number. Documents that are not usable jobs go to `skipped`; a file that cannot be read
        as a history raises one of DAMAGE (an empty one too: the store never writes one)."""
        handle = _open_regular(path)
        if handle is None:
            return 0
        with handle:
            others = None
            if handle.readline().rstrip(b"\r\n") == _JOBS_TABLE:
                others = _read_snapshot_lines(handle, jobs, skipped, lazy=self.lazy)
            if others is None:  # another layout (an older file, or written by TinyDB itself): read it whole
                jobs.clear(), skipped.clear()
                handle.seek(0)
                data = handle.read()
                if not data.strip():
                    raise DamagedHistory("it is empty")
                raw = _loads(data)
                del data
                if not isinstance(raw, dict) or not isinstance(raw.get("jobs", {}), dict):
                    raise DamagedHistory("it is not a TinyDB database")
                for doc in raw.get("jobs", {}).values():
                    job = _job_of(doc, skipped)
                    if job is not None:
                        jobs[job.local_id] = job
                others = raw
        meta = others.get("_meta", {})
        meta = list(meta.values()) if isinstance(meta, dict) else []
        seq = meta[0].get("seq", 0) if meta and isinstance(meta[0], dict) else 0
        return _sequence(seq)

    def _move_aside(self, exc: BaseException) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        if self.read_only:
            self.notices.append(f"the history {self.path} cannot be read ({_why(exc)}); it was left as it is")
            return
        os.replace(self.path, aside)
        self.notices.append(f"the history file cannot be read ({_why(exc)}) and was moved aside to {aside}; "
                            "jobs from its journal were kept")

    def _keep_skipped(self, skipped: list) -> None:
        """Documents that are not usable jobs: kept in a file beside the history, and said so."""
        count = len(skipped)
        if self.read_only:
            self.notices.append(f"{count} damaged job record(s) in {self.path} were skipped; every other job is "
                                "shown (the file is left as it is)")
            return
        aside = self.path.with_name(f"{self.path.name}.skipped-{time.strftime('%Y%m%dT%H%M%S')}")
        lines = []
        for doc in skipped:
            try:
                lines.append(json.dumps(doc, ensure_ascii=True) + "\n")
            except DAMAGE:
                lines.append(json.dumps({"unreadable": type(doc).__name__}) + "\n")
        try:
            _atomic_write(aside, _encode("".join(lines)))
        except OSError as exc:
            where = f"they could not be kept ({write_failure_reason(exc)})"
        else:
            where = f"they are kept in {aside}"
        self.notices.append(f"{count} damaged job record(s) in {self.path} were skipped; every other job is here; "
                            f"{where}")

    def _replay(self, jobs: dict[str, Job]) -> None:
        try:
            handle = _open_regular(self.journal_path)
        except DamagedHistory as exc:
            if self.read_only:
                self.notices.append(f"the journal {self.journal_path} was not read ({_why(exc)})")
                return
            # Appends must go to a real file (a link to /dev/zero would swallow them): this one
            # is kept aside and a new journal starts.
            aside = self.journal_path.with_name(f"{self.journal_path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(self.journal_path, aside)
            self.notices.append(f"the journal {self.journal_path} was not read ({_why(exc)}); it was moved "
                                f"aside to {aside}")
            return
        if handle is None:
            return
        with handle:
            data = handle.read()
        offset = 0
        damaged = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn tail of an interrupted append
            offset += len(line)
            try:
                entry = _loads(line)
                seq, op, local_id = _sequence(entry["seq"]), entry["op"], entry["id"]
                if op not in ("put", "del") or not isinstance(local_id, str):
                    raise DamagedRecord("not a journal entry")
                job = _job_of(entry["doc"]) if op == "put" else None
                if op == "put" and (job is None or job.local_id != local_id):
                    raise DamagedRecord("not a usable job")
            except DAMAGE:
                # A damaged line inside the journal (not an interrupted append, which is only
                # ever the last): skip it, keep every entry after it.
                damaged += 1
                continue
            self._journal_lines += 1
            if seq <= self._snapshot_seq:
                continue
            self._seq = max(self._seq, seq)
            if job is not None:
                jobs[local_id] = job
            else:
                jobs.pop(local_id, None)
        self._journal_offset = offset
        if damaged:
            self._keep_damaged_journal(data, damaged)

    def _keep_damaged_journal(self, data: bytes, damaged: int) -> None:
        """Keep a copy of a journal with damaged lines, and fold what was read into a new
        snapshot at the next write, so the damage is neither lost from view nor read again."""
        if self.read_only:
            self.notices.append(f"the journal {self.journal_path} has {damaged} damaged line(s); they were skipped")
            return
        aside = self.journal_path.with_name(f"{self.journal_path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            _atomic_write(aside, data)
        except OSError as exc:
            aside_note = f"(a copy could not be kept: {write_failure_reason(exc)})"
        else:
            aside_note = f"a copy of it is kept as {aside}"
        self.notices.append(f"the journal {self.journal_path} had {damaged} damaged line(s), skipped; every other "
                            f"entry was kept; {aside_note}")
        self._compact_next = True

    def reload(self) -> None:
        """Read the files again (for a read-only instance watching another writer)."""
        with self._lock:
            _let_go(self._jobs.values())
            self._jobs.clear(), self._by_server.clear(), self._by_key.clear()
            self._order = None
            self._journal_lines = 0
            self._load()

    # -- indexes --------------------------------------------------------------------------
    def _index(self, job: Job) -> None:
        old = self._jobs.get(job.local_id)
        if old is not None and old is not job:
            self._unindex(old)
        self._jobs[job.local_id] = job
        if job.server_id:
            self._by_server[job.server_id] = job.local_id
        if job.idempotency_key:
            self._by_key[job.idempotency_key] = job.local_id
        self._order = None

    def _unindex(self, job: Job) -> None:
        if job.server_id and self._by_server.get(job.server_id) == job.local_id:
            del self._by_server[job.server_id]
        if job.idempotency_key and self._by_key.get(job.idempotency_key) == job.local_id:
            del self._by_key[job.idempotency_key]

    # -- queries --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.all())

    def all(self) -> list[Job]:
        with self._lock:
            if self._order is None:
                self._order = sorted(self._jobs.values(), key=lambda j: j.submitted_at, reverse=True)
            return list(self._order)

    def get(self, local_id: str) -> Job | None:
        return self._jobs.get(local_id)

    def find_by_server_id(self, server_id: str) -> Job | None:
        local_id = self._by_server.get(server_id)
        return self._jobs.get(local_id) if local_id else None

    def find_by_idempotency_key(self, key: str) -> Job | None:
        local_id = self._by_key.get(key)
        return self._jobs.get(local_id) if local_id else None

    def find(self, ident: str) -> Job | None:
        ident = ident.strip()
        if not ident:
            return None
        exact = self._jobs.get(ident) or self.find_by_server_id(ident)
        if exact is not None:
            return exact
        matches = self.matches(ident)
        return matches[0] if len(matches) == 1 else None

    def matches(self, ident: str) -> list[Job]:
        """Every job whose local id or server id starts with `ident`, newest first (an exact id
        is one match whatever else starts with it)."""
        ident = ident.strip()
        if not ident:
            return []
        exact = self._jobs.get(ident) or self.find_by_server_id(ident)
        if exact is not None:
            return [exact]
        found = [j for j in self._jobs.values()
                 if j.local_id.startswith(ident) or (j.server_id or "").startswith(ident)]
        return sorted(found, key=lambda job: job.submitted_at or 0.0, reverse=True)

    def pending(self) -> list[Job]:
        return [job for job in self.all() if job.is_pending]

    # -- a view of another owner's history ----------------------------------------------------
    def mirror_put(self, job: Job) -> None:
        """In memory only, never written: a change another process (the history's owner) made
        and told this read-only view of."""
        with self._lock:
            self._index(job)

    def mirror_remove(self, local_id: str) -> None:
        """In memory only, never written: a job the owner removed."""
        with self._lock:
            job = self._jobs.pop(local_id, None)
            if job is not None:
                self._unindex(job)
                self._order = None

    # -- writes ---------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyHistoryError(f"the history {self.path} is open read-only")

    def put(self, job: Job) -> None:
        self._check_writable()
        if _contains_data_url(job.request):
            raise ValueError("image data must not be stored in the history: keep its path or URL and checksum")
        with self._lock:
            self._index(job)
            self._deleted.discard(job.local_id)
            self._dirty.add(job.local_id)
        self._wake.set()

    def remove(self, local_id: str) -> None:
        self._check_writable()
        with self._lock:
            job = self._jobs.pop(local_id, None)
            if job is None:
                return
            self._unindex(job)
            self._order = None
            self._dirty.discard(local_id)
            self._deleted.add(local_id)
        self._wake.set()

    def flush(self) -> None:
        """Block until everything put so far is on disk.

        One write a call: an append of what changed to the journal, or, once the journal has
        grown past JOURNAL_COMPACT_BYTES (and a quarter of the history), a new snapshot that
        holds the changes instead (also when more than SLICE jobs changed at once). The writer
        calls it at most every `flush_interval`, so the files are written at most
        1 / flush_interval times a second.
        """
        if self.read_only:
            return
        with self._io_lock:
            with self._lock:
                dirty, deleted = self._dirty, self._deleted
                self._dirty, self._deleted = set(), set()
                if not dirty and not deleted and not self._compact_next:
                    return
                # A new snapshot rather than an append once the journal holds a quarter of the
                # history and is big, or this write alone is more than a slice (an import, a
                # first save): it then reads back at snapshot speed, not line by line.
                waiting = len(dirty) + len(deleted)
                compact = self._compact_next or (self._journal_lines + waiting > len(self._jobs) // 4
                                                 and (self._journal_offset > JOURNAL_COMPACT_BYTES or waiting > SLICE))
                # The first write makes the snapshot, so that the history is a TinyDB file from the start.
                compact = compact or not self.path.exists()
            changed_elsewhere = None
            try:
                if compact:
                    try:
                        self._compact()
                        self._compact_next = False
                    except OSError as exc:
                        # A new snapshot needs room that a small append may still find (a full
                        # disk): the changes go to the journal, and folding it in waits.
                        compact = False
                        if isinstance(exc, SnapshotChanged):  # said until it is written again
                            changed_elsewhere = f"{exc}; changes are kept in its journal meanwhile"
                if not compact:
                    lines = self._journal_lines_for(dirty, deleted)
                    _forget_read_back()  # a lazy job's line read its slice back: not kept
                    if lines:
                        self._append(_encode("".join(_dumps(line) + "\n" for line in lines)))
                        self._journal_lines += len(lines)
            except Exception as exc:  # any failure, not only the disk's: the writer must never die
                with self._lock:  # keep them for the next try
                    self._dirty |= {d for d in dirty if d in self._jobs}
                    self._deleted |= deleted
                if isinstance(exc, OSError):
                    reason = write_failure_reason(exc)
                else:
                    self.unexpected_write_errors += 1
                    reason = f"unexpected {type(exc).__name__}"
                message = (f"could not write the history ({reason}); changes are kept in "
                           "memory and written when possible — nothing on disk was lost")
                if message != self.last_write_error:
                    self.last_write_error = message
                    self.notices.append(message)
                    self._report(message)
                raise
            if changed_elsewhere is not None:
                if changed_elsewhere != self.last_write_error:
                    self.last_write_error = changed_elsewhere
                    self.notices.append(changed_elsewhere)
                    self._report(changed_elsewhere)
            elif self.last_write_error is not None:
                self.last_write_error = None
                self._report(None)

    def _report(self, message: str | None) -> None:
        listener = self.on_write_error
        if listener is not None:
            try:
                listener(message)
            except Exception:  # noqa: BLE001 - telling the user must never break writing
                pass

    def _journal_lines_for(self, dirty: set[str], deleted: set[str]) -> list[dict[str, Any]]:
        """The journal lines of these changes, numbered (the jobs as they are now)."""
        lines = []
        with self._lock:
            for local_id in sorted(dirty):
                job = self._jobs.get(local_id)
                if job is not None:
                    self._seq += 1
                    lines.append({"seq": self._seq, "op": "put", "id": local_id, "doc": job.to_doc()})
            for local_id in sorted(deleted):
                self._seq += 1
                lines.append({"seq": self._seq, "op": "del", "id": local_id})
        return lines

    def _append(self, data: bytes) -> None:
        new = not self.journal_path.exists()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Start on a line boundary even after a torn write from an earlier crash.
            size = os.fstat(fd).st_size
            if size > self._journal_offset:
                os.ftruncate(fd, self._journal_offset)
            view = memoryview(data)
            written = 0
            try:
                while view:
                    n = os.write(fd, view)
                    view, written = view[n:], written + n
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, self._journal_offset)
                raise
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.journal_path.parent)
        self._journal_offset += len(data)

    def _fold_journal(self) -> None:
        """On close: the journal's changes go into the snapshot, so that the history file alone,
        read by TinyDB, holds every job as it is now; then the journal is emptied."""
        with self._io_lock:
            if self._journal_lines or self._journal_offset or (self._jobs and not self.path.exists()):
                self._compact()
        self._trim_journal()

    def _trim_journal(self) -> None:
        """Drop journal lines a compaction has put in the snapshot, if no append has since."""
        with self._io_lock:
            try:
                size = self.journal_path.stat().st_size
            except FileNotFoundError:
                return
            if size > self._journal_offset:
                fd = os.open(self.journal_path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, self._journal_offset)
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _compact(self) -> None:
        """Fold the journal into the snapshot. Called with the I/O lock held (no append meanwhile).

        The snapshot is written a slice of jobs at a time, taking the lock for each slice only,
        so the event loop's `put()` never waits long. A job changed after its slice was written
        is dirty, and its journal line (numbered after this snapshot) supersedes it on load.
        """
        with self._lock:
            seq = self._seq
            jobs = list(self._jobs.values())
        # Newest first, so that `peek_newest` finds the first screen at the head of the file.
        ids = [job.local_id for job in sorted(jobs, key=lambda job: job.submitted_at, reverse=True)]
        del jobs

        def docs() -> Iterator[tuple[str, dict[str, Any]]]:
            number = 0
            for start in range(0, len(ids), SLICE):
                with self._lock:
                    chunk = [job.to_doc() for job in map(self._jobs.get, ids[start:start + SLICE]) if job is not None]
                for doc in chunk:
                    number += 1
                    yield str(number), doc

        # The snapshot replaced becomes the previous one, unless it was read damaged (then it is
        # kept aside already, and the previous one stays the last good one).
        try:
            _atomic_write(self.path, _snapshot_chunks([("jobs", docs()), ("_meta", [("1", {"seq": seq})])]),
                          keep_previous=None if self._snapshot_damaged else self.previous_path)
        finally:
            _forget_read_back()
        self._snapshot_damaged = False
        self._snapshot_seq = seq
        # The journal's lines are all in the snapshot now (numbered up to `seq`, so a reload
        # skips them). It is emptied by the next append (it starts at this offset) or on close:
        # not written again now.
        self._journal_offset = 0
        self._journal_lines = 0

    async def flush_async(self) -> None:
        await asyncio.to_thread(self.flush)

    def _write_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            if self._closed:
                break
            time.sleep(self.flush_interval)  # coalesce a burst into one append
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - kept and reported by flush(); retried on the next round
                self._wake.set()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self.read_only:
                try:
                    self.flush()
                    self._fold_journal()
                except Exception:  # noqa: BLE001 - reported in last_write_error; the lock is released below
                    pass
        finally:
            self._closed = True
            self._wake.set()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            atexit.unregister(self.close)

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HistoryStorage(Storage):
    """A read-only TinyDB storage for a history: the snapshot with its journal merged, so a
    script sees every job as it is now, even while a dashboard writes it::

        from tinydb import Query, TinyDB
        from tui.core.store import HistoryStorage
        TinyDB(path, storage=HistoryStorage).table("jobs").search(Query().status == "completed")

    Each read opens the files again (without taking the writer's lock) unless they have not
    changed since the last one. Documents are numbered newest first; a job's identity is its
    `local_id`. Writing through it raises ReadOnlyHistoryError: the history is changed by
    hailuo-tui alone, which keeps its journal and snapshot consistent.
    """

    def __init__(self, path: str | os.PathLike[str], **_options: Any) -> None:
        self.path = Path(path).expanduser()
        self._seen: tuple | None = None
        self._data: dict[str, Any] | None = None

    def _signature(self) -> tuple:
        def stat(p: Path) -> tuple | None:
            try:
                st = p.stat()
            except FileNotFoundError:
                return None
            return st.st_ino, st.st_size, st.st_mtime_ns

        return stat(self.path), stat(self.path.with_name(self.path.name + ".journal"))

    def read(self) -> dict[str, Any] | None:
        seen = self._signature()
        if seen != self._seen or self._data is None:
            store = HistoryStore.open(self.path, read_only=True)
            try:
                jobs = store.all()
            finally:
                store.close()
            self._data = {"jobs": {str(n): job.to_doc() for n, job in enumerate(jobs, start=1)}}
            self._seen = seen
        return {table: dict(docs) for table, docs in self._data.items()}

    def write(self, data: dict[str, Any]) -> None:
        raise ReadOnlyHistoryError(f"the history {self.path} is read-only through HistoryStorage: "
                                   "hailuo-tui alone changes it")

    def close(self) -> None:
        pass
