"""Events the job service emits. The UI turns them into Textual messages; the CLI prints them.

They are plain values: nothing here knows of widgets or of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:
    from tui.core.records import Job


@dataclass(frozen=True)
class JobChanged:
    """A job was added or changed (status, outputs, error, poll-error count...)."""

    job: "Job"
    previous_status: str | None = None
    #: True when the job was not in the history before this event.
    added: bool = False

    @property
    def status_changed(self) -> bool:
        return self.previous_status != self.job.status


@dataclass(frozen=True)
class JobRemoved:
    local_id: str


@dataclass(frozen=True)
class PollerState:
    """The poller as a whole: running, paused by the user, or rate limited until a time."""

    running: bool = True
    paused: bool = False
    rate_limited_until: float | None = None  # epoch seconds
    #: The server asked for a longer pause than the poller takes (MAX_RETRY_AFTER).
    rate_limit_capped: bool = False
    pending: int = 0
    in_flight: int = 0
    last_error: str | None = None

    def describe(self) -> str:
        from datetime import datetime

        if self.paused:
            return "paused"
        if self.rate_limited_until is not None:
            until = datetime.fromtimestamp(self.rate_limited_until).strftime("%H:%M:%S")
            return f"rate-limited until {until}" + (" (the server asked for longer; capped at 5 min)"
                                                   if self.rate_limit_capped else "")
        return "running" if self.running else "stopped"


@dataclass(frozen=True)
class Notice:
    """Something the user should read once: a moved-aside file, a read-only history, a write failure."""

    message: str
    severity: str = "information"  # "information" | "warning" | "error"
    #: What it is about, for a status that a later notice replaces (e.g. "history-write").
    topic: str | None = None


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of one output of a job arriving (sent at most a few times a second per download)."""

    local_id: str
    index: int  # which output, from 0
    count: int  # how many outputs the job has
    received: int  # bytes on disk so far, a resumed part included
    total: int | None  # bytes announced by the host; None when it did not say
    path: str  # where the file will be

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.received / self.total) if self.total else None


@dataclass(frozen=True)
class DownloadFinished:
    """A job's download ended: `paths` saved (or already there), or `error` says why it stopped."""

    local_id: str
    paths: tuple[str, ...] = ()
    error: str | None = None
    #: How each file ended: "downloaded", "resumed" or "already there" (same order as `paths`).
    outcomes: tuple[str, ...] = ()


Event = Union[JobChanged, JobRemoved, PollerState, Notice, DownloadProgress, DownloadFinished]
Listener = Callable[[Event], None]


@dataclass
class EventHub:
    """Fan-out of events to listeners; a failing listener never stops the others."""

    listeners: list[Listener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop polling
                import logging

                logging.getLogger("hailuo_tui").exception("event listener failed")
