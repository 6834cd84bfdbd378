"""The job service's events as Textual messages: one typed message for each kind.

The service emits plain events (tui.core.events) on the app's loop; the app wraps each in the
message of its kind and posts it to the dashboard screen, so every widget update happens in a
message handler, in order. A message whose newer copy makes it worthless (poller state,
download progress of one job) says so with `can_replace`, and queued old ones are dropped.
"""

from __future__ import annotations

import threading
from typing import Any

from textual.message import Message

from tui.core.events import DownloadFinished, DownloadProgress, JobChanged, JobRemoved, Notice, PollerState
from tui.core.records import Job


class JobUpdated(Message):
    """A job was added or changed. Never replaced: each one may carry a status transition."""

    def __init__(self, event: JobChanged) -> None:
        super().__init__()
        self.event = event


class JobForgotten(Message):
    """A job left the history."""

    def __init__(self, event: JobRemoved) -> None:
        super().__init__()
        self.event = event


class NoticePosted(Message):
    """Something to tell the user (a warning, an error, or that a reported problem is over)."""

    def __init__(self, event: Notice) -> None:
        super().__init__()
        self.event = event


class DownloadEnded(Message):
    """A download finished, saved or failed."""

    def __init__(self, event: DownloadFinished) -> None:
        super().__init__()
        self.event = event


class DownloadProgressed(Message):
    """Bytes arrived for a job's download; only the newest for each job matters."""

    def __init__(self, progress: DownloadProgress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgressed) and message.progress.local_id == self.progress.local_id


class PollerStateChanged(Message):
    """Poller state only matters at its newest: older ones may be dropped."""

    def __init__(self, state: PollerState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollerStateChanged)


class HistoryRead(Message):
    """The whole history, read in a thread before the job service is built."""

    def __init__(self, jobs: list[Job]) -> None:
        super().__init__()
        self.jobs = jobs
        #: Set once they are on screen (or will never be), for the reader to go on.
        self.shown = threading.Event()


_MESSAGE_OF = {
    JobChanged: JobUpdated,
    JobRemoved: JobForgotten,
    Notice: NoticePosted,
    DownloadFinished: DownloadEnded,
    DownloadProgress: DownloadProgressed,
    PollerState: PollerStateChanged,
}


def message_for(event: Any) -> Message | None:
    """The message of a service event's kind (None for a kind the dashboard does not show)."""
    kind = _MESSAGE_OF.get(type(event))
    return kind(event) if kind is not None else None
