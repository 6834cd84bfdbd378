"""The jobs of this session at a glance: what the terminal title shows, and when "all done" is due.

`SessionTally` is fed every job change the dashboard sees. It counts the jobs running now and
those that ended while it watched, and groups them in rounds: a round starts when a job starts
running while none was, and ends when the last running job of it ends. The end of a round is
the one moment worth a notification when many jobs run together ("12 done · 10 completed ·
2 failed · 4m12s"); a round of one job is announced as that job. Pure: no clock of its own, no
I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def span(seconds: float) -> str:
    """4m12s, 45s, 1h03m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class RoundEnded:
    done: int
    completed: int
    failed: int
    seconds: float
    #: The job, when the round was that job alone.
    only_job: Any = None

    def line(self) -> str:
        return f"{self.done} done · {self.completed} completed · {self.failed} failed · {span(self.seconds)}"


@dataclass
class SessionTally:
    running: set[str] = field(default_factory=set)
    completed: int = 0
    failed: int = 0
    _round_started: float | None = None
    _round_done: int = 0
    _round_completed: int = 0
    _round_failed: int = 0
    _round_last: Any = None

    def start_with(self, pending_ids: list[str], now: float) -> None:
        """Jobs already running when the session opened (resumed from the history)."""
        for local_id in pending_ids:
            self._add(local_id, now)

    def _add(self, local_id: str, now: float) -> None:
        if not self.running:
            self._round_started = now
            self._round_done = self._round_completed = self._round_failed = 0
        self.running.add(local_id)

    def seen(self, job: Any, now: float) -> RoundEnded | None:
        """Take in a job's new state; returns the round that this change ended, if it did."""
        local_id = job.local_id
        if not job.is_finished:
            if job.server_id is not None or job.status == "submitting":
                if local_id not in self.running:
                    self._add(local_id, now)
            return None
        if local_id not in self.running:
            return None
        self.running.discard(local_id)
        self._round_done += 1
        self._round_last = job
        if job.is_success:
            self.completed += 1
            self._round_completed += 1
        else:
            self.failed += 1
            self._round_failed += 1
        if self.running:
            return None
        started = self._round_started if self._round_started is not None else now
        return RoundEnded(self._round_done, self._round_completed, self._round_failed, now - started,
                          self._round_last if self._round_done == 1 else None)

    def forget(self, local_id: str) -> None:
        self.running.discard(local_id)

    @property
    def round_share_done(self) -> int | None:
        """Percent of the current round that has ended (None when nothing runs)."""
        if not self.running:
            return None
        total = self._round_done + len(self.running)
        return int(100 * self._round_done / total) if total else 0
