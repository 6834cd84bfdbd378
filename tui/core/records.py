"""The `Job`: one submitted (or attempted) prediction, as kept in the history file.

Times are epoch seconds (UTC) in the file: cheap to load for 50,000 jobs; they become
ISO 8601 only where a person or a script reads them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Annotated, Any, Callable

import msgspec

from tui.core.api.models import FAILURE_STATUSES, SUCCESS_STATUSES, Prediction, is_terminal, showable_time

SCHEMA_VERSION = 1

# Local states, beside the server's statuses.
SUBMITTING = "submitting"  # recorded before the POST is sent
UNKNOWN = "unknown"  # the POST may have reached the server; never re-sent automatically
REJECTED = "rejected"  # the server refused the POST: no job exists there
EXPIRED = "expired"  # a persistent 404 past the retention time
#: The server answered a submit with the id another job of the history already has: which
#: job it created (if any) cannot be known, so it is neither polled nor re-sent.
CONFLICT = "conflict"

UNKNOWN_OUTCOME_MESSAGE = (
    "the submit may have reached the server: the job may exist and may be billed. "
    "It was not re-sent; check the provider's dashboard before submitting again."
)

#: States in which a job will not change any more without the user.
LOCAL_TERMINAL = frozenset({UNKNOWN, REJECTED, EXPIRED, CONFLICT})
#: Names only this program gives. A server status spelled the same (an odd server could say
#: "unknown") is kept apart, so it can neither stop the polling nor pass for a local verdict.
_LOCAL_ONLY = frozenset({SUBMITTING, UNKNOWN, REJECTED, CONFLICT})


def server_status(status: str) -> str:
    """The status to record for what the server said."""
    return f"{status} (server)" if status.lower() in _LOCAL_ONLY else status


def new_local_id() -> str:
    return secrets.token_hex(6)


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC, or None for a time that is absent or cannot be shown (NaN, year 0...)."""
    if not showable_time(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


#: The latest time `datetime` can show (9999-12-31T23:59:59Z).
_LATEST = 253402300799.0
#: The constraints `Job.from_doc` checks, as types: a history's documents are decoded and
#: checked in C (`decode_jobs`), and only a document these refuse is read by `from_doc`.
_Time = Annotated[float, msgspec.Meta(ge=0, le=_LATEST)]
_Count = Annotated[int, msgspec.Meta(ge=0, le=10**15)]


class _Document(msgspec.Struct, gc=False):
    """A job's document as the history holds it, its fields in Job's order."""
    local_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    request: dict[str, Any]
    submitted_at: _Time
    status: Annotated[str, msgspec.Meta(min_length=1)] = SUBMITTING
    server_id: str | None = None
    outputs: list[str] = msgspec.field(default_factory=list)
    outputs_omitted: _Count = 0
    result_url: str | None = None
    error: str | None = None
    execution_time_ms: _Count | None = None
    inference_time_ms: _Count | None = None
    has_nsfw_contents: list[bool] = msgspec.field(default_factory=list)
    created_at: _Time | None = None
    finished_at: _Time | None = None
    last_polled_at: _Time | None = None
    poll_errors: _Count = 0
    last_poll_error: str | None = None
    last_poll_error_kind: str | None = None
    # Decoded as pairs, checked, then made lists (`_settled`), as `from_doc` gives them.
    status_history: list[tuple[str, _Time]] = msgspec.field(default_factory=list)
    raw: dict[str, Any] | None = None
    idempotency_key: str | None = None
    downloads: list[dict[str, Any]] = msgspec.field(default_factory=list)
    schema: int = SCHEMA_VERSION


@dataclass(slots=True, eq=False)
class Job:
    local_id: str
    request: dict[str, Any]
    submitted_at: float
    status: str = SUBMITTING
    server_id: str | None = None
    outputs: list[str] = field(default_factory=list)
    #: Output URLs the server sent beyond the ones kept (OUTPUTS_MAX): counted, not kept.
    outputs_omitted: int = 0
    result_url: str | None = None
    error: str | None = None
    execution_time_ms: int | None = None
    inference_time_ms: int | None = None
    has_nsfw_contents: list[bool] = field(default_factory=list)
    created_at: float | None = None
    finished_at: float | None = None
    last_polled_at: float | None = None
    poll_errors: int = 0
    last_poll_error: str | None = None
    #: The kind of that error (`ApiError.kind`: "malformed", "network", "server_error"...).
    last_poll_error_kind: str | None = None
    #: [status, epoch seconds] each time the status changed, for the detail pane's timings.
    status_history: list[list[Any]] = field(default_factory=list)
    #: The `data` object of the last response, for the raw view.
    raw: dict[str, Any] | None = None
    #: Set by batch runs so that a re-run can skip rows already submitted.
    idempotency_key: str | None = None
    #: Output files saved on this machine: {"url", "path", "size", "sha256", "at"} each.
    #: Absent from documents written before downloads existed; read as empty.
    downloads: list[dict[str, Any]] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    # Equal when every field is: a job read lazily (`LazyJob`) equals the same job read whole.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELD_NAMES)

    __hash__ = None  # type: ignore[assignment]  # mutable: as the dataclass default

    # -- identity ---------------------------------------------------------------
    @property
    def display_id(self) -> str:
        return self.server_id or self.local_id

    @property
    def short_id(self) -> str:
        return self.display_id[:12]

    @property
    def model(self) -> str:
        return str(self.request.get("model", ""))

    @property
    def scene(self) -> str:
        return str(self.request.get("scene", ""))

    @property
    def prompt(self) -> str:
        return str(self.request.get("prompt", ""))

    # -- state ------------------------------------------------------------------
    @property
    def is_pending(self) -> bool:
        """Still to be polled: the server knows it and it has not ended."""
        return self.server_id is not None and self.status not in LOCAL_TERMINAL and not is_terminal(self.status)

    @property
    def is_finished(self) -> bool:
        return self.status in LOCAL_TERMINAL or is_terminal(self.status)

    @property
    def is_success(self) -> bool:
        return self.status.lower() in SUCCESS_STATUSES

    @property
    def is_failure(self) -> bool:
        return self.status.lower() in FAILURE_STATUSES or self.status in (REJECTED, EXPIRED, UNKNOWN, CONFLICT)

    def set_status(self, status: str, now: float | None = None) -> bool:
        """Change the status; returns whether it changed."""
        if status == self.status:
            return False
        now = time.time() if now is None else now
        self.status = status
        self.status_history.append([status, now])
        if (is_terminal(status) or status in LOCAL_TERMINAL) and self.finished_at is None:
            self.finished_at = now
        return True

    def apply(self, prediction: Prediction, now: float | None = None) -> bool:
        """Take in a server answer; returns whether anything a user sees changed."""
        now = time.time() if now is None else now
        before = self.signature()
        if self.server_id is None:
            self.server_id = prediction.id
        self.set_status(server_status(prediction.status), now)
        self.outputs = list(prediction.outputs)
        self.outputs_omitted = prediction.outputs_omitted
        self.result_url = prediction.result_url or self.result_url
        self.error = prediction.error
        self.execution_time_ms = prediction.execution_time_ms
        self.inference_time_ms = prediction.inference_time_ms
        self.has_nsfw_contents = list(prediction.has_nsfw_contents)
        if prediction.created_at is not None:
            self.created_at = prediction.created_at.timestamp()
        self.raw = prediction.raw
        self.last_polled_at = now
        self.poll_errors = 0
        self.last_poll_error = None
        self.last_poll_error_kind = None
        return self.signature() != before

    def signature(self) -> tuple:
        return (self.server_id, self.status, tuple(self.outputs), self.outputs_omitted, self.error,
                self.execution_time_ms, self.poll_errors, self.result_url)

    # -- (de)serialisation ------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """A plain, independent copy for the history file.

        Written by hand rather than with `dataclasses.asdict`, which is 20 times slower: the
        store serialises every job on compaction (50,000 of them) while holding its lock.
        """
        doc = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name in _CONTAINER_FIELDS:
            doc[name] = _copy_json(doc[name])
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Job":
        """A job from a history document, validated: DamagedRecord when it cannot be used (its
        identity, request, submission time or status missing or of the wrong kind); a field that
        only adds detail and is of the wrong kind or out of range is dropped to its default."""
        if not isinstance(doc, dict):
            raise DamagedRecord("not an object")
        local_id = doc.get("local_id")
        if not isinstance(local_id, str) or not local_id or len(local_id) > 200:
            raise DamagedRecord("no usable local_id")
        request = doc.get("request")
        if not isinstance(request, dict) or not _shallow(request, 16):
            raise DamagedRecord("request is not an object")
        submitted_at = _time(doc.get("submitted_at"))
        if submitted_at is None:
            raise DamagedRecord("submitted_at is not a time")
        status = doc.get("status", SUBMITTING)
        if not isinstance(status, str) or not status:
            raise DamagedRecord("status is not text")
        values: dict[str, Any] = {"local_id": local_id, "request": request, "submitted_at": submitted_at,
                                  "status": status}
        for name, check in _OPTIONAL_CHECKS.items():
            if name in doc:
                value = check(doc[name])
                if value is not _UNUSABLE:
                    values[name] = value
        return cls(**values)

    def to_public(self) -> dict[str, Any]:
        """The stable `--json` object (see README "JSON output")."""
        return {
            "id": self.server_id,
            "local_id": self.local_id,
            "model": self.model,
            "scene": self.scene,
            "status": self.status,
            "outputs": list(self.outputs),
            "outputs_omitted": self.outputs_omitted,
            "result_url": self.result_url,
            "error": self.error,
            "execution_time_ms": self.execution_time_ms,
            "inference_time_ms": self.inference_time_ms,
            "has_nsfw_contents": list(self.has_nsfw_contents),
            "created_at": iso(self.created_at),
            "submitted_at": iso(self.submitted_at),
            "finished_at": iso(self.finished_at),
            "poll_errors": self.poll_errors,
            "request": dict(self.request),
            "downloads": [{"url": d.get("url"), "path": d.get("path"), "size": d.get("size")}
                          for d in self.downloads],
        }


_FIELD_NAMES = tuple(f.name for f in fields(Job))


class DamagedRecord(ValueError):
    """A history document that cannot be used as a job."""


_UNUSABLE = object()


def _time(value: Any) -> float | None:
    """An epoch time that can be shown, or None (NaN fails both comparisons)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= _LATEST:
        return None
    return float(value)


def _shallow(value: Any, limit: int) -> bool:
    """Whether JSON-shaped data nests at most `limit` deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def _text_or_none(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else _UNUSABLE


def _optional_time(value: Any) -> Any:
    return None if value is None else (_time(value) if _time(value) is not None else _UNUSABLE)


def _optional_count(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e15:
        return _UNUSABLE
    return int(value)


def _texts(value: Any) -> Any:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else _UNUSABLE


def _flags(value: Any) -> Any:
    return value if isinstance(value, list) and all(isinstance(v, bool) for v in value) else _UNUSABLE


def _status_history(value: Any) -> Any:
    if not isinstance(value, list):
        return _UNUSABLE
    return [entry for entry in value if isinstance(entry, list) and len(entry) == 2
            and isinstance(entry[0], str) and _time(entry[1]) is not None]


def _raw(value: Any) -> Any:
    return value if value is None or (isinstance(value, dict) and _shallow(value, 64)) else _UNUSABLE


def _downloads(value: Any) -> Any:
    return [d for d in value if isinstance(d, dict) and _shallow(d, 4)] if isinstance(value, list) else _UNUSABLE


def _poll_errors(value: Any) -> Any:
    count = _optional_count(value)
    return _UNUSABLE if count is None else count


def _schema(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else _UNUSABLE


_OPTIONAL_CHECKS = {
    "server_id": _text_or_none, "outputs": _texts, "result_url": _text_or_none, "error": _text_or_none,
    "execution_time_ms": _optional_count, "inference_time_ms": _optional_count, "has_nsfw_contents": _flags,
    "created_at": _optional_time, "finished_at": _optional_time, "last_polled_at": _optional_time,
    "poll_errors": _poll_errors, "last_poll_error": _text_or_none, "last_poll_error_kind": _text_or_none,
    "status_history": _status_history, "raw": _raw, "idempotency_key": _text_or_none,
    "downloads": _downloads, "schema": _schema, "outputs_omitted": _poll_errors,  # a count, never None
}
_CONTAINER_FIELDS = ("request", "outputs", "has_nsfw_contents", "status_history", "raw")


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, tuples as lists; everything else shared)."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_json(item) for item in value]
    return value

_JOBS_DECODER = msgspec.json.Decoder(list[_Document])
_fields_of = msgspec.structs.astuple


def decode_jobs(array: bytes) -> list[Job | None] | None:
    """Jobs from a JSON array of history documents, decoded and validated in C (a third of the
    time of `json.loads` plus `from_doc`): None when a document in it breaks a constraint of
    the types above, or the JSON is not plain (a NaN, a lone surrogate), so the caller reads
    each document with `from_doc`, which drops or refuses what it must. A None in the list:
    that document nests too deep, and `from_doc` says what is kept of it. A job given here is
    the job `from_doc` gives for the same document."""
    try:
        docs = _JOBS_DECODER.decode(array)
    except (msgspec.DecodeError, RecursionError, MemoryError):
        return None
    return [Job(*_fields_of(doc)) if _settled(doc) else None for doc in docs]


_FLAT = frozenset({str, int, float, bool, type(None)})


def _settled(doc: _Document) -> bool:
    """Check what the types cannot (how deep a dict nests) and make the status history lists;
    False when `from_doc` must read the document instead."""
    request = doc.request
    if not _FLAT.issuperset(map(type, request.values())) and not _shallow(request, 16):
        return False
    if doc.raw is not None and not _shallow(doc.raw, 64):
        return False
    if doc.downloads and not all(_shallow(d, 4) for d in doc.downloads):
        return False
    # Through a tuple: a list made from it is sized exactly (a job has one or two entries).
    doc.status_history = list(tuple(map(list, doc.status_history)))
    return True


# Every field is validated when read: a new field needs its check here, and its type in _Document.
assert _Document.__struct_fields__ == _FIELD_NAMES
assert set(_OPTIONAL_CHECKS) | {"local_id", "request", "submitted_at", "status"} == set(_FIELD_NAMES)


# -- finished jobs read lazily ------------------------------------------------------------------
#: A job's detail: what only its own views use (the detail pane, copying, downloads, exports).
#: Everything the job table, its counts, the ETA figures and the costs read is kept in memory.
DETAIL_FIELDS = ("outputs", "result_url", "has_nsfw_contents", "last_poll_error", "last_poll_error_kind",
                 "status_history", "raw", "downloads")
_DETAIL = frozenset(DETAIL_FIELDS)
SUMMARY_FIELDS = tuple(name for name in _FIELD_NAMES if name not in _DETAIL)
#: Each detail field's slot: read directly, it tells whether the field is set (`missing_detail`).
_DETAIL_SLOTS = tuple((name, Job.__dict__[name]) for name in DETAIL_FIELDS)


def missing_detail(job: Job) -> list[str]:
    """The detail fields a lazily read job has not read (nor been given) yet."""
    missing = []
    for name, slot in _DETAIL_SLOTS:
        try:
            slot.__get__(job, Job)
        except AttributeError:
            missing.append(name)
    return missing


class LazyJob(Job):
    """A finished job read from the history's snapshot without its detail, which stays in the
    file until something asks for it: then it is read back, for this job and the jobs read
    beside it (`shelf.fill`). A finished job rarely changes and is rarely opened, and its
    detail is most of what it holds (outputs, status history, flags, downloads, and the
    server's whole answer). Anything that reads or sets it sees an ordinary `Job`.
    """

    __slots__ = ("_shelf", "_line")

    def to_doc(self) -> dict[str, Any]:
        missing = missing_detail(self)
        if not missing:
            return Job.to_doc(self)
        # Written out (a compaction) without being kept: the file's copy is read, not held.
        whole = self._shelf.whole(self)
        doc = {name: getattr(whole if name in missing else self, name) for name in _FIELD_NAMES}
        for name in _CONTAINER_FIELDS:
            doc[name] = _copy_json(doc[name])
        return doc


class _Detail:
    """A detail field of `LazyJob`: its slot, read back from the snapshot the first time it is
    read. A descriptor rather than `__getattr__`: a class with `__getattr__` makes every
    attribute read of its objects three times slower (the interpreter no longer specialises
    them), and the table's sorts and filters read the summary of every job."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, job: Any, owner: Any = None) -> Any:
        if job is None:
            return self
        try:
            return self.slot.__get__(job, owner)
        except AttributeError:  # not read yet
            job._shelf.fill(job)
            return self.slot.__get__(job, owner)

    def __set__(self, job: Any, value: Any) -> None:
        self.slot.__set__(job, value)

    def __delete__(self, job: Any) -> None:
        self.slot.__delete__(job)


for _name, _slot in _DETAIL_SLOTS:
    setattr(LazyJob, _name, _Detail(_slot))


def _lazy_constructor() -> Callable[..., LazyJob]:
    """A `LazyJob` from its shelf, its line and its summary fields in order: written out like
    the dataclass's own `__init__` (a loop of setattr calls would double the read's cost)."""
    names = ", ".join(SUMMARY_FIELDS)
    lines = "\n".join(f"    job.{name} = {name}" for name in SUMMARY_FIELDS)
    source = (f"def make(shelf, line, {names}):\n    job = new(LazyJob)\n    job._shelf = shelf\n"
              f"    job._line = line\n{lines}\n    return job\n")
    namespace: dict[str, Any] = {"new": object.__new__, "LazyJob": LazyJob}
    exec(source, namespace)  # noqa: S102 - a constructor built from the field names above
    return namespace["make"]


make_lazy_job = _lazy_constructor()


def _summary_field(info: Any) -> tuple:
    return (info.name, info.type) if info.required else (info.name, info.type, info.default)


#: A document's summary: `_Document`'s fields and checks without the detail, which the decoder
#: skips (checking only that it is JSON).
_Summary = msgspec.defstruct("_Summary", [_summary_field(info) for info in msgspec.structs.fields(_Document)
                                          if info.name not in _DETAIL], gc=False)
_SUMMARIES_DECODER = msgspec.json.Decoder(list[_Summary])


def decode_summaries(array: bytes) -> list[tuple] | None:
    """The summary fields of each document of a JSON array, in `SUMMARY_FIELDS` order, checked as
    `decode_jobs` checks them; None when a document breaks a check or the JSON is not plain (the
    caller then reads the array whole)."""
    try:
        docs = _SUMMARIES_DECODER.decode(array)
    except (msgspec.DecodeError, RecursionError, MemoryError):
        return None
    summaries = []
    for doc in docs:
        request = doc.request
        if not _FLAT.issuperset(map(type, request.values())) and not _shallow(request, 16):
            return None
        summaries.append(_fields_of(doc))
    return summaries


assert all(info.default_factory is msgspec.NODEFAULT for info in msgspec.structs.fields(_Summary))
assert _Summary.__struct_fields__ == SUMMARY_FIELDS
